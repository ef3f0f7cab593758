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
