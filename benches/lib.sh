#!/usr/bin/env bash
# lib.sh: what the bench scripts share; sourced, not run.
#
#   source benches/lib.sh
#   bench_setup NAME DEFAULT_N "${1:-}"
#
# bench_setup checks N (a positive integer, DEFAULT_N when not given), changes to
# the repository root, builds waflog (release, or debug with PROFILE=debug; the
# binary found under CARGO_TARGET_DIR when set) and sets N, PROFILE, ROOT, BIN and
# TIMEIT (benches/compare/timeit.py: wall and CPU seconds of one command).
# die MESSAGE prints "NAME: MESSAGE" and exits 2.

die() {
  echo "${BENCH_NAME:-bench}: $*" >&2
  exit 2
}

bench_setup() {
  BENCH_NAME=$1
  N="${3:-$2}"
  case "$N" in
    '' | *[!0-9]* | 0) die "N must be a positive integer, got '$N'" ;;
  esac
  PROFILE="${PROFILE:-release}"
  ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
  cd "$ROOT"
  local target="${CARGO_TARGET_DIR:-$ROOT/target}"
  if [[ "$PROFILE" == release ]]; then
    cargo build --release -p waflog-cli >&2 || die "build failed"
    BIN="$target/release/waflog"
  else
    cargo build -p waflog-cli >&2 || die "build failed"
    BIN="$target/debug/waflog"
  fi
  TIMEIT=(python3 "$ROOT/benches/compare/timeit.py")
}

# bench_local_aws PREFIX installs the local servers (scripts/local-aws.sh), makes WORK
# (a fresh /tmp/PREFIX.XXXXXX), starts private servers whose pid, port, log and data
# files live under it, exports their endpoints (WAFLOG_TEST_*, test credentials) and,
# at exit, stops them and removes WORK (kept with KEEP=1).
bench_local_aws() {
  # shellcheck source=scripts/local-aws.sh
  source "$ROOT/scripts/local-aws.sh"
  local_aws_install || die "cannot install the local servers"
  WORK="$(mktemp -d "/tmp/$1.XXXXXX")"
  LOCAL_AWS_RUN_DIR="$WORK/run"
  LOCAL_AWS_LOG_DIR="$WORK/logs"
  KINESALITE_PATH="$WORK/run/kinesalite-data"
  export LOCAL_AWS_RUN_DIR LOCAL_AWS_LOG_DIR KINESALITE_PATH
  trap _bench_local_aws_cleanup EXIT
  local_aws_start || die "cannot start the local servers"
  eval "$(local_aws_env)"
}

# shellcheck disable=SC2317  # invoked by the EXIT trap
_bench_local_aws_cleanup() {
  local_aws_stop || true
  if [[ "${KEEP:-0}" == 1 ]]; then
    echo "$BENCH_NAME: work files kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
