#!/usr/bin/env bash
# The parse ceiling (issue 19): waflog's per-line transform against serde_json,
# sonic-rs and simd-json on the same generated records, in one process.
#
# Usage:   bash benches/parse-ceiling.sh [N]     (N records, default 300000)
# Env:     NATIVE=1   build with -C target-cpu=native (the SIMD parsers' best case)
#
# benches/ceiling is a crate of its own, outside the workspace, so that the parsers
# it measures are not dependencies of waflog; it is built in release mode under
# target/parse-ceiling. The records come from
#   waflog generate --seed 1 --start 2024-05-01T00:00:00Z --count N
# See benches/ceiling/src/main.rs for what each row does. Reports speed and never
# fails on it; exit 2 on any error.
set -euo pipefail

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup parse-ceiling.sh 300000 "${1:-}"

WORK="$(mktemp -d /tmp/waflog-ceiling.XXXXXX)"
trap 'rm -rf "$WORK"' EXIT
"$BIN" -q generate --seed 1 --start 2024-05-01T00:00:00Z --count "$N" -o "$WORK/in.ndjson" ||
  die "waflog generate failed"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}/parse-ceiling"
if [[ "${NATIVE:-0}" == 1 ]]; then
  export RUSTFLAGS="${RUSTFLAGS:-} -C target-cpu=native"
  TARGET="$TARGET-native"
fi
CARGO_TARGET_DIR="$TARGET" cargo build --release --manifest-path "$ROOT/benches/ceiling/Cargo.toml" >&2 ||
  die "cannot build benches/ceiling"
"$TARGET/release/waflog-parse-ceiling" "$WORK/in.ndjson" 3 || die "the ceiling run failed"
