#!/usr/bin/env bash
# local-aws.sh: install, start and stop real local AWS-compatible servers for
# waflog's integration tests, all bound to 127.0.0.1:
#   - moto_server (moto[server]==5.2.5, in a venv at .tools/venv): S3, Kinesis, ...
#   - kinesalite (kinesalite@3.3.3, npm, in .tools/node): Kinesis with on-disk
#     persistence (LevelDB) in $KINESALITE_PATH, so a restart keeps the data.
#   - duckdb (duckdb==1.4.4 and pytz from PyPI, in the same venv): not a server; the
#     Parquet tests read waflog's files back with it (waflog-cli/tests/parquet.rs).
#   - s3s-fs (s3s-fs@0.14.1 from crates.io, `cargo install` into .tools/s3s): an S3
#     server that checks SigV4 signatures; installed only, the tests start it
#     (waflog-cli/tests/sigv4.rs). 0.14.1 is the last release that builds with
#     Rust 1.95.
#
# As a command (from anywhere):
#   bash scripts/local-aws.sh install   # idempotent; needs python3 (venv) and npm
#   bash scripts/local-aws.sh start     # free ports, start both, wait until ready
#   bash scripts/local-aws.sh env       # print `export ...` lines for the tests
#   bash scripts/local-aws.sh stop      # stop what `start` started (safe twice)
#   eval "$(bash scripts/local-aws.sh env)"
#
# As a library (bash):
#   source scripts/local-aws.sh
#   local_aws_install && local_aws_start && eval "$(local_aws_env)"
#   ...
#   local_aws_stop
#
# Layout (everything under .tools/, which git ignores):
#   .tools/venv/                  python venv with moto[server] and duckdb
#   .tools/node/node_modules/     kinesalite and its dependencies
#   .tools/run/                   pid and port files ($LOCAL_AWS_RUN_DIR)
#   .tools/logs/moto.log, kinesalite.log   ($LOCAL_AWS_LOG_DIR)
#   .tools/kinesalite-data/       default $KINESALITE_PATH
#
# Environment (all optional):
#   LOCAL_AWS_RUN_DIR  where pid/port files go (default .tools/run); one
#                      directory = one independent pair of servers
#   LOCAL_AWS_LOG_DIR  where logs go (default .tools/logs)
#   KINESALITE_PATH    kinesalite's data directory (default .tools/kinesalite-data)
#   LOCAL_AWS_TIMEOUT  seconds to wait for each server to answer (default 30)
#
# The library does not change the caller's shell options; its functions return
# non-zero with a message on stderr when something fails.

LOCAL_AWS_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LOCAL_AWS_TOOLS="$LOCAL_AWS_ROOT/.tools"
LOCAL_AWS_VENV="$LOCAL_AWS_TOOLS/venv"
LOCAL_AWS_NODE_PREFIX="$LOCAL_AWS_TOOLS/node"
LOCAL_AWS_MOTO_VERSION="5.2.5"
LOCAL_AWS_KINESALITE_VERSION="3.3.3"
LOCAL_AWS_DUCKDB_VERSION="1.4.4"
# DuckDB's Python client needs pytz to hand over TIMESTAMP WITH TIME ZONE values.
LOCAL_AWS_PYTZ_VERSION="2025.2"
LOCAL_AWS_S3S_VERSION="0.14.1"
LOCAL_AWS_S3S_ROOT="$LOCAL_AWS_TOOLS/s3s"

_local_aws_log() { printf 'local-aws: %s\n' "$*" >&2; }

_local_aws_run_dir() { printf '%s\n' "${LOCAL_AWS_RUN_DIR:-$LOCAL_AWS_TOOLS/run}"; }
_local_aws_log_dir() { printf '%s\n' "${LOCAL_AWS_LOG_DIR:-$LOCAL_AWS_TOOLS/logs}"; }
_local_aws_kinesalite_path() { printf '%s\n' "${KINESALITE_PATH:-$LOCAL_AWS_TOOLS/kinesalite-data}"; }

# Milliseconds since the epoch (for timing messages).
_local_aws_now_ms() { date +%s%3N; }

# ---------------------------------------------------------------------------
# install
# ---------------------------------------------------------------------------

# True when the venv has moto at exactly the pinned version, with the server
# extra's packages importable.
_local_aws_moto_installed() {
  [[ -x "$LOCAL_AWS_VENV/bin/python" && -x "$LOCAL_AWS_VENV/bin/moto_server" ]] || return 1
  "$LOCAL_AWS_VENV/bin/python" - "$LOCAL_AWS_MOTO_VERSION" >/dev/null 2>&1 <<'EOF'
import importlib.metadata as md, sys
assert md.version("moto") == sys.argv[1]
import flask, flask_cors, boto3  # noqa: F401  (moto[server] and moto's own deps)
EOF
}

# True when the venv has duckdb at exactly the pinned version.
_local_aws_duckdb_installed() {
  "$LOCAL_AWS_VENV/bin/python" - "$LOCAL_AWS_DUCKDB_VERSION" "$LOCAL_AWS_PYTZ_VERSION" >/dev/null 2>&1 <<'EOF'
import importlib.metadata as md, sys
assert md.version("duckdb") == sys.argv[1]
assert md.version("pytz") == sys.argv[2]
import duckdb, pytz  # noqa: F401
EOF
}

# True when kinesalite is installed at exactly the pinned version.
_local_aws_kinesalite_installed() {
  local pkg="$LOCAL_AWS_NODE_PREFIX/node_modules/kinesalite/package.json"
  [[ -f "$pkg" ]] || return 1
  node -e 'process.exit(require(process.argv[1]).version === process.argv[2] ? 0 : 1)' \
    "$pkg" "$LOCAL_AWS_KINESALITE_VERSION" 2>/dev/null || return 1
  # leveldown (persistence) is an optional native dependency: npm skips it
  # silently when it cannot be built, so check that it loads.
  node -e 'require(process.argv[1])' "$LOCAL_AWS_NODE_PREFIX/node_modules/leveldown" 2>/dev/null
}

local_aws_install() {
  local t0 t1
  t0=$(_local_aws_now_ms)
  mkdir -p "$LOCAL_AWS_TOOLS" || return 1

  if _local_aws_moto_installed; then
    _local_aws_log "moto[server]==$LOCAL_AWS_MOTO_VERSION already installed in .tools/venv"
  else
    command -v python3 >/dev/null || { _local_aws_log "error: python3 not found"; return 1; }
    # A venv left half-made (or made by another python) is rebuilt from scratch.
    if [[ -d "$LOCAL_AWS_VENV" && ! -x "$LOCAL_AWS_VENV/bin/python" ]]; then
      rm -rf "$LOCAL_AWS_VENV"
    fi
    if [[ ! -x "$LOCAL_AWS_VENV/bin/python" ]]; then
      _local_aws_log "creating .tools/venv"
      if ! python3 -m venv "$LOCAL_AWS_VENV"; then
        rm -rf "$LOCAL_AWS_VENV"
        _local_aws_log "error: 'python3 -m venv' failed (on Debian: apt-get install -y python3-venv)"
        return 1
      fi
    fi
    _local_aws_log "installing moto[server]==$LOCAL_AWS_MOTO_VERSION into .tools/venv"
    "$LOCAL_AWS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "moto[server]==$LOCAL_AWS_MOTO_VERSION" || { _local_aws_log "error: pip install failed"; return 1; }
    _local_aws_moto_installed || { _local_aws_log "error: moto not importable after install"; return 1; }
  fi

  if _local_aws_duckdb_installed; then
    _local_aws_log "duckdb==$LOCAL_AWS_DUCKDB_VERSION already installed in .tools/venv"
  else
    _local_aws_log "installing duckdb==$LOCAL_AWS_DUCKDB_VERSION into .tools/venv"
    "$LOCAL_AWS_VENV/bin/python" -m pip install --quiet --disable-pip-version-check \
      "duckdb==$LOCAL_AWS_DUCKDB_VERSION" "pytz==$LOCAL_AWS_PYTZ_VERSION" || { _local_aws_log "error: pip install duckdb failed"; return 1; }
    _local_aws_duckdb_installed || { _local_aws_log "error: duckdb not importable after install"; return 1; }
  fi

  if _local_aws_kinesalite_installed; then
    _local_aws_log "kinesalite@$LOCAL_AWS_KINESALITE_VERSION already installed in .tools/node"
  else
    if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
      _local_aws_log "error: node and npm are needed (Debian: apt-get install -y nodejs npm)"
      return 1
    fi
    _local_aws_log "installing kinesalite@$LOCAL_AWS_KINESALITE_VERSION into .tools/node"
    mkdir -p "$LOCAL_AWS_NODE_PREFIX" || return 1
    npm install --prefix "$LOCAL_AWS_NODE_PREFIX" --no-audit --no-fund --loglevel=error \
      "kinesalite@$LOCAL_AWS_KINESALITE_VERSION" >&2 || { _local_aws_log "error: npm install failed"; return 1; }
    _local_aws_kinesalite_installed || { _local_aws_log "error: kinesalite missing after install"; return 1; }
  fi

  if [[ -x "$LOCAL_AWS_S3S_ROOT/bin/s3s-fs" ]] \
    && "$LOCAL_AWS_S3S_ROOT/bin/s3s-fs" --version 2>/dev/null | grep -q "$LOCAL_AWS_S3S_VERSION"; then
    _local_aws_log "s3s-fs@$LOCAL_AWS_S3S_VERSION already installed in .tools/s3s"
  else
    command -v cargo >/dev/null || { _local_aws_log "error: cargo not found (for s3s-fs)"; return 1; }
    _local_aws_log "installing s3s-fs@$LOCAL_AWS_S3S_VERSION into .tools/s3s (cargo install, a few minutes)"
    cargo install --quiet --locked --features binary --root "$LOCAL_AWS_S3S_ROOT" \
      "s3s-fs@$LOCAL_AWS_S3S_VERSION" || { _local_aws_log "error: cargo install s3s-fs failed"; return 1; }
  fi

  t1=$(_local_aws_now_ms)
  _local_aws_log "install done in $(( (t1 - t0) / 1000 )).$(printf '%03d' $(( (t1 - t0) % 1000 )))s"
}

# ---------------------------------------------------------------------------
# start / stop
# ---------------------------------------------------------------------------

# Prints a TCP port that is free on 127.0.0.1 right now.
_local_aws_free_port() {
  python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()'
}

# True if the pid in file $1 is alive and its command line contains $2
# (guards against killing an unrelated process that reused the pid).
_local_aws_pid_alive() {
  local pidfile=$1 pattern=$2 pid
  [[ -f "$pidfile" ]] || return 1
  pid=$(<"$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 1
  kill -0 "$pid" 2>/dev/null || return 1
  if [[ -r "/proc/$pid/cmdline" ]]; then
    tr '\0' ' ' <"/proc/$pid/cmdline" | grep -qF -- "$pattern" || return 1
  fi
  return 0
}

# HTTP status code of GET $1 ("000" when nothing answers).
_local_aws_http_code() {
  curl -s -o /dev/null --max-time 2 -w '%{http_code}' "$1" 2>/dev/null || true
}

# Waits until GET $url answers with an acceptable code; fails early if the
# process dies; on failure prints the log tail.
#   _local_aws_wait NAME URL PIDFILE PATTERN LOG ACCEPT_REGEX
_local_aws_wait() {
  local name=$1 url=$2 pidfile=$3 pattern=$4 log=$5 accept=$6
  local timeout=${LOCAL_AWS_TIMEOUT:-30} t0 code
  t0=$(date +%s)
  while :; do
    code=$(_local_aws_http_code "$url")
    if [[ "$code" =~ $accept ]]; then
      return 0
    fi
    if ! _local_aws_pid_alive "$pidfile" "$pattern"; then
      _local_aws_log "error: $name exited before answering on $url; last lines of $log:"
      tail -n 30 "$log" >&2
      return 1
    fi
    if (( $(date +%s) - t0 >= timeout )); then
      _local_aws_log "error: $name did not answer on $url within ${timeout}s (last HTTP code $code); last lines of $log:"
      tail -n 30 "$log" >&2
      return 1
    fi
    sleep 0.2
  done
}

# Each server is launched in the background (_local_aws_launch_*), then waited
# for (_local_aws_ready_*), so that both start up at the same time.

_local_aws_launch_moto() {
  local run log port
  run=$(_local_aws_run_dir); log="$(_local_aws_log_dir)/moto.log"
  if _local_aws_pid_alive "$run/moto.pid" moto_server && [[ -f "$run/moto.port" ]]; then
    _local_aws_log "moto_server already running (pid $(<"$run/moto.pid"), port $(<"$run/moto.port"))"
    return 0
  fi
  [[ -x "$LOCAL_AWS_VENV/bin/moto_server" ]] || { _local_aws_log "error: moto not installed (run: bash scripts/local-aws.sh install)"; return 1; }
  port=$(_local_aws_free_port) || return 1
  printf -- '--- %s: starting on 127.0.0.1:%s\n' "$(date -u +%FT%TZ)" "$port" >>"$log"
  "$LOCAL_AWS_VENV/bin/moto_server" -H 127.0.0.1 -p "$port" >>"$log" 2>&1 </dev/null &
  echo $! >"$run/moto.pid"
  echo "$port" >"$run/moto.port"
}

_local_aws_ready_moto() {
  local run log port
  run=$(_local_aws_run_dir); log="$(_local_aws_log_dir)/moto.log"
  port=$(<"$run/moto.port")
  # /moto-api/ is moto's dashboard: 200 once the server serves requests.
  _local_aws_wait moto_server "http://127.0.0.1:$port/moto-api/" "$run/moto.pid" moto_server "$log" '^[234][0-9][0-9]$' || return 1
  _local_aws_log "moto_server up on http://127.0.0.1:$port (pid $(<"$run/moto.pid"))"
}

_local_aws_launch_kinesalite() {
  local run log port data
  run=$(_local_aws_run_dir); log="$(_local_aws_log_dir)/kinesalite.log"
  if _local_aws_pid_alive "$run/kinesalite.pid" kinesalite.js && [[ -f "$run/kinesalite.port" ]]; then
    _local_aws_log "kinesalite already running (pid $(<"$run/kinesalite.pid"), port $(<"$run/kinesalite.port"))"
    return 0
  fi
  _local_aws_kinesalite_installed || { _local_aws_log "error: kinesalite not installed (run: bash scripts/local-aws.sh install)"; return 1; }
  data=$(_local_aws_kinesalite_path)
  mkdir -p "$data" || return 1
  data=$(cd "$data" && pwd)
  port=$(_local_aws_free_port) || return 1
  printf -- '--- %s: starting on 127.0.0.1:%s\n' "$(date -u +%FT%TZ)" "$port" >>"$log"
  KINESALITE_PATH="$data" KINESALITE_PORT="$port" \
    NODE_PATH="$LOCAL_AWS_NODE_PREFIX/node_modules" \
    node "$LOCAL_AWS_ROOT/scripts/kinesalite.js" >>"$log" 2>&1 </dev/null &
  echo $! >"$run/kinesalite.pid"
  echo "$port" >"$run/kinesalite.port"
  echo "$data" >"$run/kinesalite.path"
}

_local_aws_ready_kinesalite() {
  local run log port
  run=$(_local_aws_run_dir); log="$(_local_aws_log_dir)/kinesalite.log"
  port=$(<"$run/kinesalite.port")
  # Any HTTP answer means it is up (a bare GET gets a 4xx from kinesalite).
  _local_aws_wait kinesalite "http://127.0.0.1:$port/" "$run/kinesalite.pid" kinesalite.js "$log" '^[1-5][0-9][0-9]$' || return 1
  _local_aws_log "kinesalite up on http://127.0.0.1:$port (pid $(<"$run/kinesalite.pid"), data $(<"$run/kinesalite.path"))"
}

local_aws_start() {
  local t0 t1 run
  t0=$(_local_aws_now_ms)
  command -v curl >/dev/null || { _local_aws_log "error: curl not found"; return 1; }
  run=$(_local_aws_run_dir)
  mkdir -p "$run" "$(_local_aws_log_dir)" || return 1
  if ! { _local_aws_launch_moto && _local_aws_launch_kinesalite &&
    _local_aws_ready_moto && _local_aws_ready_kinesalite; }; then
    local_aws_stop
    return 1
  fi
  t1=$(_local_aws_now_ms)
  _local_aws_log "servers ready in $(( (t1 - t0) / 1000 )).$(printf '%03d' $(( (t1 - t0) % 1000 )))s"
}

# Stops one server: TERM, wait up to 10 s, then KILL; removes its files.
_local_aws_stop_one() {
  local name=$1 pattern=$2 run pid i
  run=$(_local_aws_run_dir)
  if _local_aws_pid_alive "$run/$name.pid" "$pattern"; then
    pid=$(<"$run/$name.pid")
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      _local_aws_log "$name (pid $pid) ignored SIGTERM; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
    fi
    # Reap it when it is our own child (sourced use); harmless otherwise.
    wait "$pid" 2>/dev/null || true
    _local_aws_log "stopped $name (pid $pid)"
  fi
  rm -f "$run/$name.pid" "$run/$name.port" "$run/$name.path"
}

local_aws_stop() {
  _local_aws_stop_one moto moto_server
  _local_aws_stop_one kinesalite kinesalite.js
  return 0
}

# ---------------------------------------------------------------------------
# env
# ---------------------------------------------------------------------------

# Prints `export` lines describing the running servers and the test tooling.
local_aws_env() {
  local run moto_port kin_port kin_path
  run=$(_local_aws_run_dir)
  if [[ ! -f "$run/moto.port" || ! -f "$run/kinesalite.port" ]]; then
    _local_aws_log "error: servers not started (run: bash scripts/local-aws.sh start)"
    return 1
  fi
  moto_port=$(<"$run/moto.port")
  kin_port=$(<"$run/kinesalite.port")
  kin_path=$(<"$run/kinesalite.path")
  printf 'export %s=%q\n' \
    WAFLOG_TEST_MOTO "http://127.0.0.1:$moto_port" \
    WAFLOG_TEST_KINESALITE "http://127.0.0.1:$kin_port" \
    WAFLOG_TEST_KINESALITE_PATH "$kin_path" \
    WAFLOG_TEST_KINESALITE_SCRIPT "$LOCAL_AWS_ROOT/scripts/kinesalite.js" \
    WAFLOG_TEST_NODE_PATH "$LOCAL_AWS_NODE_PREFIX/node_modules" \
    WAFLOG_TEST_FAULT_PROXY "$LOCAL_AWS_ROOT/scripts/fault_proxy.py" \
    WAFLOG_TEST_PYTHON "$LOCAL_AWS_VENV/bin/python" \
    WAFLOG_TEST_S3S_FS "$LOCAL_AWS_S3S_ROOT/bin/s3s-fs" \
    AWS_ACCESS_KEY_ID test \
    AWS_SECRET_ACCESS_KEY test \
    AWS_REGION us-east-1 \
    AWS_EC2_METADATA_DISABLED true
}

# ---------------------------------------------------------------------------
# command-line entry point (only when executed, not when sourced)
# ---------------------------------------------------------------------------

_local_aws_main() {
  case "${1:-}" in
    install) local_aws_install ;;
    start) local_aws_start ;;
    stop) local_aws_stop ;;
    env) local_aws_env ;;
    *)
      echo "usage: bash scripts/local-aws.sh install|start|stop|env" >&2
      return 2
      ;;
  esac
}

if [[ "${BASH_SOURCE[0]}" == "$0" ]]; then
  set -uo pipefail
  _local_aws_main "$@"
  exit $?
fi
