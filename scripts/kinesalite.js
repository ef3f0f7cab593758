// kinesalite.js: run kinesalite (a local Kinesis) bound to 127.0.0.1 only.
//
// kinesalite's own CLI listens on every interface, so the test tooling starts it
// through its JS API instead. Started by scripts/local-aws.sh, and usable by
// integration tests that want a private instance (e.g. to restart it):
//
//   KINESALITE_PATH=/tmp/data KINESALITE_PORT=0 \
//   NODE_PATH=.tools/node/node_modules node scripts/kinesalite.js
//
// Environment:
//   KINESALITE_PATH  data directory (LevelDB); data survives a restart.
//                    Unset or empty: in memory.
//   KINESALITE_PORT  TCP port on 127.0.0.1 (default 0: the OS picks one)
//   NODE_PATH        where to find the kinesalite module (.tools/node/node_modules)
//
// Prints one line `LISTENING <port>` on stdout once it accepts connections.
// SIGTERM/SIGINT close the server and the database cleanly, then exit 0.
'use strict'

const path = require('path')

function loadKinesalite() {
  try {
    return require('kinesalite')
  } catch (err) {
    // Fall back to the project's .tools/node when NODE_PATH is not set.
    return require(path.join(__dirname, '..', '.tools', 'node', 'node_modules', 'kinesalite'))
  }
}

const kinesalite = loadKinesalite()
const port = parseInt(process.env.KINESALITE_PORT || '0', 10)
const server = kinesalite({
  path: process.env.KINESALITE_PATH || undefined,
  createStreamMs: 0,
  deleteStreamMs: 0,
  updateStreamMs: 0,
  shardLimit: 100,
})

server.listen(port, '127.0.0.1', (err) => {
  if (err) {
    console.error(`kinesalite: listen failed: ${err.stack || err}`)
    process.exit(1)
  }
  console.log(`LISTENING ${server.address().port}`)
  console.error(`kinesalite: listening on 127.0.0.1:${server.address().port}, ` +
    `data ${process.env.KINESALITE_PATH || '(in memory)'}`)
})

let stopping = false
function stop(signal) {
  if (stopping) return
  stopping = true
  console.error(`kinesalite: ${signal}, closing`)
  // Do not wait forever for clients that keep connections open.
  setTimeout(() => process.exit(0), 3000).unref()
  if (server.closeIdleConnections) server.closeIdleConnections()
  // kinesalite's close() closes the LevelDB store before the HTTP server.
  server.close((err) => {
    if (err) console.error(`kinesalite: close: ${err}`)
    process.exit(0)
  })
}
process.on('SIGTERM', () => stop('SIGTERM'))
process.on('SIGINT', () => stop('SIGINT'))
