//! Gzip compression on worker threads, in the manner of `pigz`: the text is cut
//! into chunks of [`CHUNK`] bytes, each chunk is deflated on a worker of a
//! [`GzipPool`] into raw DEFLATE blocks ending on a byte boundary (a sync flush;
//! the last chunk ends the stream), and the main thread joins them in order
//! under one gzip header and trailer (RFC 1952: the CRC-32 of the whole text is
//! combined from the chunks' CRCs). The result is a single ordinary gzip member
//! that any reader takes; only the dictionary does not carry across chunks,
//! which costs under 1 % of size at 1 MiB chunks.
//!
//! The main thread keeps reading and routing while the workers compress;
//! [`GzipStream`] bounds the chunks under way per stream, so memory stays at a
//! few chunks per open stream.

use std::collections::VecDeque;
use std::io::Write;
use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use anyhow::Context;
use flate2::{Compress, Compression, Crc, FlushCompress, Status};

/// Bytes of text per chunk.
pub const CHUNK: usize = 1 << 20;
/// Chunks under way per stream before [`GzipStream::write`] waits for the oldest.
const MAX_PENDING: usize = 4;

/// A chunk deflated: its blocks and the CRC-32 of its text.
struct Deflated {
    data: Vec<u8>,
    crc: Crc,
}

struct Job {
    text: Vec<u8>,
    last: bool,
    level: Compression,
    reply: SyncSender<std::io::Result<Deflated>>,
}

/// Worker threads that deflate chunks (as many as the machine has cores, at
/// most 4). They end when the pool is dropped.
pub struct GzipPool {
    jobs: Mutex<Option<SyncSender<Job>>>,
    workers: Mutex<Vec<std::thread::JoinHandle<()>>>,
}

impl std::fmt::Debug for GzipPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipPool").finish_non_exhaustive()
    }
}

/// The process's pool, started on first use.
static SHARED: std::sync::OnceLock<Arc<GzipPool>> = std::sync::OnceLock::new();

impl GzipPool {
    /// The pool every gzip output of the process shares (one worker per core,
    /// at most 4), started on first use.
    pub fn shared() -> anyhow::Result<Arc<GzipPool>> {
        if let Some(p) = SHARED.get() {
            return Ok(Arc::clone(p));
        }
        let pool = GzipPool::new(0)?;
        Ok(Arc::clone(SHARED.get_or_init(|| pool)))
    }

    /// A pool of `threads` workers (0: one per core, at most 4).
    pub fn new(threads: usize) -> anyhow::Result<Arc<GzipPool>> {
        let threads = crate::threads::workers(threads);
        let (tx, rx) = sync_channel::<Job>(threads * 2);
        let rx = Arc::new(Mutex::new(rx));
        let mut workers = Vec::with_capacity(threads);
        for i in 0..threads {
            let rx = Arc::clone(&rx);
            let worker = std::thread::Builder::new()
                .name(format!("waflog-gzip-{i}"))
                .spawn(move || work(&rx))
                .context("cannot start a gzip worker thread")?;
            workers.push(worker);
        }
        Ok(Arc::new(GzipPool {
            jobs: Mutex::new(Some(tx)),
            workers: Mutex::new(workers),
        }))
    }

    fn submit(&self, job: Job) -> anyhow::Result<()> {
        let jobs = self
            .jobs
            .lock()
            .map_err(|_| anyhow::anyhow!("the gzip pool is poisoned"))?
            .clone()
            .context("the gzip pool is closed")?;
        jobs.send(job)
            .map_err(|_| anyhow::anyhow!("the gzip workers stopped"))
    }
}

impl Drop for GzipPool {
    fn drop(&mut self) {
        if let Ok(mut jobs) = self.jobs.lock() {
            jobs.take();
        }
        if let Ok(mut workers) = self.workers.lock() {
            for w in workers.drain(..) {
                let _ = w.join();
            }
        }
    }
}

/// A worker: deflates jobs until the pool's sender is gone.
fn work(rx: &Mutex<Receiver<Job>>) {
    loop {
        let job = match rx.lock() {
            Ok(rx) => rx.recv(),
            Err(_) => return,
        };
        let Ok(job) = job else {
            return;
        };
        let mut crc = Crc::new();
        crc.update(&job.text);
        let data = deflate(&job.text, job.level, job.last).map(|data| Deflated { data, crc });
        // The stream may be gone (an error elsewhere): nothing to tell then.
        let _ = job.reply.send(data);
    }
}

/// Raw DEFLATE blocks of `text`: ending the stream when `last`, else ending on
/// a byte boundary with more to follow (a sync flush).
fn deflate(text: &[u8], level: Compression, last: bool) -> std::io::Result<Vec<u8>> {
    let mut z = Compress::new(level, false);
    let mut out = Vec::with_capacity(text.len() / 3 + 64);
    let flush = if last {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    loop {
        if out.capacity() - out.len() < 64 {
            out.reserve(out.capacity().max(4096));
        }
        let consumed = usize::try_from(z.total_in()).unwrap_or(usize::MAX);
        let status = z
            .compress_vec(&text[consumed.min(text.len())..], &mut out, flush)
            .map_err(std::io::Error::other)?;
        let done_in = usize::try_from(z.total_in()).unwrap_or(usize::MAX) >= text.len();
        match status {
            Status::StreamEnd => return Ok(out),
            // All taken and room left over: the flush is complete.
            Status::Ok | Status::BufError if done_in && !last && out.len() < out.capacity() => {
                return Ok(out);
            }
            Status::Ok | Status::BufError => {}
        }
    }
}

/// One gzip member built from chunks deflated on a [`GzipPool`]: text goes in
/// with [`write`](GzipStream::write), compressed bytes come out in order with
/// [`take_ready`](GzipStream::take_ready) and [`finish`](GzipStream::finish).
pub struct GzipStream {
    pool: Arc<GzipPool>,
    level: Compression,
    text: Vec<u8>,
    pending: VecDeque<Receiver<std::io::Result<Deflated>>>,
    /// Compressed bytes ready, in order (the header first).
    out: Vec<u8>,
    crc: Crc,
}

impl std::fmt::Debug for GzipStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GzipStream")
            .field("text", &self.text.len())
            .field("pending", &self.pending.len())
            .finish_non_exhaustive()
    }
}

/// The gzip header: no name, no time, no extra fields; OS "unknown".
const HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

impl GzipStream {
    /// A stream at `level` on `pool`.
    pub fn new(pool: Arc<GzipPool>, level: Compression) -> GzipStream {
        GzipStream {
            pool,
            level,
            text: Vec::with_capacity(CHUNK + (64 << 10)),
            pending: VecDeque::new(),
            out: HEADER.to_vec(),
            crc: Crc::new(),
        }
    }

    /// Adds text; a full chunk goes to the workers (waiting for the oldest one
    /// when [`MAX_PENDING`] are under way).
    pub fn write(&mut self, text: &[u8]) -> anyhow::Result<()> {
        self.text.extend_from_slice(text);
        if self.text.len() >= CHUNK {
            self.submit(false)?;
        }
        Ok(())
    }

    fn submit(&mut self, last: bool) -> anyhow::Result<()> {
        while self.pending.len() >= MAX_PENDING {
            self.collect_one()?;
        }
        let text = std::mem::replace(&mut self.text, Vec::with_capacity(CHUNK + (64 << 10)));
        let (reply, rx) = sync_channel(1);
        self.pool.submit(Job {
            text,
            last,
            level: self.level,
            reply,
        })?;
        self.pending.push_back(rx);
        Ok(())
    }

    /// Waits for the oldest chunk under way and appends it to the output.
    fn collect_one(&mut self) -> anyhow::Result<()> {
        let Some(rx) = self.pending.pop_front() else {
            return Ok(());
        };
        let chunk = rx
            .recv()
            .map_err(|_| anyhow::anyhow!("a gzip worker stopped"))?
            .context("cannot compress")?;
        self.crc.combine(&chunk.crc);
        self.out.extend_from_slice(&chunk.data);
        Ok(())
    }

    /// Compressed bytes ready so far (all chunks finished in order, without
    /// waiting), taken, once at least `min` bytes are: `None` before that.
    pub fn take_ready(&mut self, min: usize) -> anyhow::Result<Option<Vec<u8>>> {
        while let Some(rx) = self.pending.front() {
            match rx.try_recv() {
                Ok(chunk) => {
                    self.pending.pop_front();
                    let chunk = chunk.context("cannot compress")?;
                    self.crc.combine(&chunk.crc);
                    self.out.extend_from_slice(&chunk.data);
                }
                Err(std::sync::mpsc::TryRecvError::Empty) => break,
                Err(std::sync::mpsc::TryRecvError::Disconnected) => {
                    anyhow::bail!("a gzip worker stopped")
                }
            }
        }
        if self.out.len() >= min && !self.out.is_empty() {
            Ok(Some(std::mem::take(&mut self.out)))
        } else {
            Ok(None)
        }
    }

    /// Sends the text so far to the workers, waits for every chunk, and takes
    /// all the compressed bytes (the text up to here decodes from them).
    pub fn flush(&mut self) -> anyhow::Result<Vec<u8>> {
        if !self.text.is_empty() {
            self.submit(false)?;
        }
        while !self.pending.is_empty() {
            self.collect_one()?;
        }
        Ok(std::mem::take(&mut self.out))
    }

    /// Ends the stream: the rest of the compressed bytes and the trailer (the
    /// stream takes no more text after this).
    pub fn finish(&mut self) -> anyhow::Result<Vec<u8>> {
        self.submit(true)?;
        while !self.pending.is_empty() {
            self.collect_one()?;
        }
        let mut out = std::mem::take(&mut self.out);
        out.extend_from_slice(&self.crc.sum().to_le_bytes());
        out.extend_from_slice(&self.crc.amount().to_le_bytes());
        Ok(out)
    }
}

/// A gzip writer over `W` compressing on the shared pool: `flush` makes all
/// text written so far decodable from `W` (a sync flush, then `W`'s flush).
pub struct GzipWriter<W: Write> {
    z: GzipStream,
    inner: W,
}

impl<W: Write> GzipWriter<W> {
    /// A gzip member written to `inner` at `level`.
    pub fn new(inner: W, level: Compression) -> anyhow::Result<GzipWriter<W>> {
        Ok(GzipWriter {
            z: GzipStream::new(GzipPool::shared()?, level),
            inner,
        })
    }

    /// Ends the member; returns `W` (not flushed).
    pub fn finish(mut self) -> std::io::Result<W> {
        let rest = self.z.finish().map_err(std::io::Error::other)?;
        self.inner.write_all(&rest)?;
        Ok(self.inner)
    }
}

impl<W: Write> Write for GzipWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.z.write(buf).map_err(std::io::Error::other)?;
        if let Some(ready) = self.z.take_ready(CHUNK).map_err(std::io::Error::other)? {
            self.inner.write_all(&ready)?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        let ready = self.z.flush().map_err(std::io::Error::other)?;
        self.inner.write_all(&ready)?;
        self.inner.flush()
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn gunzip(data: &[u8]) -> Vec<u8> {
        // A single-member decoder: the output must be one gzip member.
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(data)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn text(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        let mut t = Vec::with_capacity(n);
        while t.len() < n {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            t.extend_from_slice(format!("{{\"n\":{},\"s\":\"{:x}\"}}\n", x % 1000, x).as_bytes());
        }
        t.truncate(n);
        t
    }

    #[test]
    fn chunks_join_into_one_member_that_decodes_to_the_text() {
        let pool = GzipPool::new(2).unwrap();
        for (n, piece) in [(0, 1), (10, 3), (CHUNK, 1000), (3 * CHUNK + 12_345, 70_000)] {
            let t = text(n, n as u64 + 7);
            let mut z = GzipStream::new(Arc::clone(&pool), Compression::default());
            let mut out = Vec::new();
            for p in t.chunks(piece.max(1)) {
                z.write(p).unwrap();
                if let Some(ready) = z.take_ready(1 << 16).unwrap() {
                    out.extend_from_slice(&ready);
                }
            }
            out.extend_from_slice(&z.finish().unwrap());
            assert_eq!(gunzip(&out), t, "{n} bytes");
            assert_eq!(&out[..2], &[0x1f, 0x8b]);
            // The trailer: CRC-32 and length of the whole text.
            let mut crc = Crc::new();
            crc.update(&t);
            assert_eq!(out[out.len() - 8..out.len() - 4], crc.sum().to_le_bytes());
            assert_eq!(out[out.len() - 4..], (n as u32).to_le_bytes());
        }
    }

    #[test]
    fn a_writer_flushes_decodable_text_and_finishes_one_member() {
        let t = text(2 * CHUNK + 999, 11);
        let mut w = GzipWriter::new(Vec::new(), Compression::fast()).unwrap();
        w.write_all(&t[..1000]).unwrap();
        w.flush().unwrap();
        // After a flush the text so far decodes from what was written.
        let mut partial = Vec::new();
        let _ = flate2::read::GzDecoder::new(&w.inner[..]).read_to_end(&mut partial);
        assert_eq!(partial, &t[..1000]);
        w.write_all(&t[1000..]).unwrap();
        let out = w.finish().unwrap();
        assert_eq!(gunzip(&out), t);
    }

    #[test]
    fn the_size_is_close_to_one_stream() {
        let t = text(4 * CHUNK, 3);
        let pool = GzipPool::new(2).unwrap();
        let mut z = GzipStream::new(pool, Compression::default());
        z.write(&t).unwrap();
        let ours = z.finish().unwrap().len();
        let mut one = flate2::write::GzEncoder::new(Vec::new(), Compression::default());
        std::io::Write::write_all(&mut one, &t).unwrap();
        let one = one.finish().unwrap().len();
        assert!(ours as f64 <= one as f64 * 1.02, "{ours} vs {one}");
    }
}
