#!/usr/bin/env bash
# Compare `waflog transform` with the seed's way of computing the indicators.
#
# Usage:   bash benches/compare.sh [N]          (N records, default 1000000)
# Env:     WORKDIR=DIR  work in DIR instead of a fresh mktemp dir under /tmp
#          KEEP=1       keep the work files (input, the three outputs, logs)
#          CARGO_TARGET_DIR is respected when locating the built binary.
#
# What it measures, in one run, on the same input file, file to file, one thread each:
#   waflog   target/release/waflog transform --threads 1 in.ndjson -o waflog.ndjson
#            and the same with --threads 2 (its output compared byte for byte)
#            target/release/waflog detect --all --threads 1 in.ndjson -o detect.ndjson
#            and the same with --threads 2 (the six built-in detectors; results
#            compared byte for byte)
#   python   python3 benches/compare/seed_transform.py in.ndjson py.ndjson
#            (the seed's Firehose transform Lambda per record: json.loads, indicators,
#            json.dumps; stdlib only)
#   jq       jq -c -f benches/compare/transform.jq in.ndjson > jq.ndjson
# and two peers, each skipped with a note when it cannot be installed here:
#   jaq      the same filter through jaq, the Rust jq (crate `jaq`, installed once with
#            `cargo install jaq --locked --root .tools/jaq`)
#   orjson   seed_transform.py --orjson: the seed's transform with orjson (PyPI, in a
#            virtualenv at .tools/bench-venv)
# and `waflog generate` writing the same N records. The input is made once with
#   waflog generate --seed 1 --start 2024-05-01T00:00:00Z --count N
# and read once before timing (warm page cache); `sync` runs before each timed command
# so that no earlier output is still being written back. Each command is timed by
# benches/compare/timeit.py: wall time with time.perf_counter around fork+wait, and
# user+sys CPU time from the child's rusage.
#
# Then benches/compare/check_agree.py checks that the three outputs agree on every line
# (same line count; the ten indicators present/absent alike with equal values; the
# same integer timestamp). The script prints a table (seconds, events/s, MB/s =
# input bytes / wall seconds / 1e6, CPU seconds) and the waflog/python and waflog/jq
# throughput ratios. It reports speed and never fails on it; it exits 1 if the outputs
# disagree (or a --threads 2 output differs from its --threads 1 run), 2 on any other
# error.
set -euo pipefail

N="${1:-1000000}"
case "$N" in
  '' | *[!0-9]* | 0) echo "compare.sh: N must be a positive integer, got '$N'" >&2; exit 2 ;;
esac

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
HERE="$ROOT/benches/compare"
cd "$ROOT"

die() { echo "compare.sh: $*" >&2; exit 2; }

# --- tools ---------------------------------------------------------------------------
command -v python3 >/dev/null 2>&1 || die "python3 is required but not installed"
if ! command -v jq >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== jq not found; installing it with apt-get"
    apt-get update -qq && apt-get install -y -qq jq >/dev/null
  fi
  command -v jq >/dev/null 2>&1 ||
    die "jq is required but not installed (install it, e.g. 'apt-get install jq', or run as root)"
fi

# Peers: installed once under .tools (ignored by git); a failed install skips the peer.
TOOLS="$ROOT/.tools"
mkdir -p "$TOOLS"
JAQ=""
if command -v jaq >/dev/null 2>&1; then
  JAQ="$(command -v jaq)"
elif [ -x "$TOOLS/jaq/bin/jaq" ]; then
  JAQ="$TOOLS/jaq/bin/jaq"
else
  echo "== jaq not found; cargo install jaq --locked --root .tools/jaq (once, a few minutes)"
  if cargo install jaq --locked --root "$TOOLS/jaq" >"$TOOLS/jaq-install.log" 2>&1; then
    JAQ="$TOOLS/jaq/bin/jaq"
  else
    echo "   jaq could not be installed (.tools/jaq-install.log): skipped"
  fi
fi
ORJSON_PY="$TOOLS/bench-venv/bin/python"
if ! "$ORJSON_PY" -c 'import orjson' >/dev/null 2>&1; then
  echo "== installing orjson into .tools/bench-venv"
  if ! { python3 -m venv "$TOOLS/bench-venv" &&
    "$TOOLS/bench-venv/bin/pip" install -q orjson; } >"$TOOLS/bench-venv.log" 2>&1; then
    echo "   orjson could not be installed (.tools/bench-venv.log): skipped"
    ORJSON_PY=""
  fi
fi

# --- build ---------------------------------------------------------------------------
echo "== cargo build --release -p waflog-cli"
cargo build --release -p waflog-cli
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
case "$TARGET_DIR" in /*) ;; *) TARGET_DIR="$ROOT/$TARGET_DIR" ;; esac
BIN="$TARGET_DIR/release/waflog"
[ -x "$BIN" ] || die "built binary not found at $BIN"

# --- work dir --------------------------------------------------------------------------
CREATED_WORK=0
if [ -n "${WORKDIR:-}" ]; then
  [ -d "$WORKDIR" ] || { mkdir -p "$WORKDIR"; CREATED_WORK=1; }
  WORK="$(cd "$WORKDIR" && pwd)"
else
  WORK="$(mktemp -d /tmp/waflog-compare.XXXXXX)"
  CREATED_WORK=1
fi
WORK_FILES=(in.ndjson gen.ndjson waflog.ndjson waflog2.ndjson waflog2.log py.ndjson jq.ndjson jaq.ndjson orjson.ndjson
  generate.log generate-timed.log waflog.log py.log jq.log jaq.log orjson.log check.log)
cleanup() {
  if [ "${KEEP:-0}" = 1 ]; then
    echo "== kept work files in $WORK"
  elif [ "$CREATED_WORK" = 1 ]; then
    rm -rf -- "$WORK"
  else
    (cd "$WORK" && rm -f -- "${WORK_FILES[@]}")
  fi
}
trap cleanup EXIT

GEN_ARGS=(generate --seed 1 --start 2024-05-01T00:00:00Z --count "$N")

# Runs `timeit.py ARGS...` and sets WALL CPU_U CPU_S; on failure shows the log and exits.
# usage: timed NAME LOG [--stdout FILE] -- CMD...
timed() {
  local name="$1" log="$2" res
  shift 2
  # Earlier runs' output still being written back to disk would slow this one
  # (the kernel throttles writers when dirty pages pile up): start clean.
  sync
  if ! res="$(python3 "$HERE/timeit.py" --stderr "$log" "$@")"; then
    echo "compare.sh: $name failed; last lines of $log:" >&2
    tail -n 20 "$log" >&2 || true
    exit 2
  fi
  read -r WALL CPU_U CPU_S <<<"$res"
}

# --- input -----------------------------------------------------------------------------
echo "== work dir $WORK"
echo "== generating $N records: waflog ${GEN_ARGS[*]} -o in.ndjson"
"$BIN" "${GEN_ARGS[@]}" -o "$WORK/in.ndjson" 2>"$WORK/generate.log" ||
  { tail -n 20 "$WORK/generate.log" >&2; die "waflog generate failed"; }
BYTES="$(wc -c <"$WORK/in.ndjson" | tr -d ' ')"
LINES="$(wc -l <"$WORK/in.ndjson" | tr -d ' ')"
[ "$LINES" = "$N" ] || die "generated $LINES lines, expected $N"
FREE_KB="$(df -Pk "$WORK" | awk 'NR == 2 { print $4 }')"
if [ -n "$FREE_KB" ] && [ "$FREE_KB" -lt $((BYTES / 1024 * 4)) ]; then
  echo "compare.sh: warning: $((FREE_KB / 1024)) MiB free in $WORK; the outputs need about $((BYTES / 1048576 * 4)) MiB" >&2
fi

# --- timed runs ------------------------------------------------------------------------
echo "== timing (input: $N records, $BYTES bytes)"
timed "waflog generate" "$WORK/generate-timed.log" -- "$BIN" "${GEN_ARGS[@]}" -o "$WORK/gen.ndjson"
GEN_WALL="$WALL" GEN_USER="$CPU_U" GEN_SYS="$CPU_S"
if cmp -s "$WORK/in.ndjson" "$WORK/gen.ndjson"; then GEN_SAME=yes; else GEN_SAME=NO; fi
rm -f "$WORK/gen.ndjson"

cat "$WORK/in.ndjson" >/dev/null # warm-up read: every tool starts with the input cached

timed "waflog transform" "$WORK/waflog.log" -- \
  "$BIN" transform --threads 1 "$WORK/in.ndjson" -o "$WORK/waflog.ndjson"
W_WALL="$WALL" W_USER="$CPU_U" W_SYS="$CPU_S"
echo "   waflog  ${W_WALL}s"

# The same with two worker threads (the default on two cores): byte-identical.
timed "waflog transform --threads 2" "$WORK/waflog2.log" -- \
  "$BIN" transform --threads 2 "$WORK/in.ndjson" -o "$WORK/waflog2.ndjson"
W2_WALL="$WALL" W2_USER="$CPU_U" W2_SYS="$CPU_S"
if cmp -s "$WORK/waflog.ndjson" "$WORK/waflog2.ndjson"; then W2_SAME=yes; else W2_SAME=NO; fi
rm -f "$WORK/waflog2.ndjson"
echo "   waflog --threads 2  ${W2_WALL}s"

# Detection with the six built-in detectors, one thread and two workers: the same
# results byte for byte.
timed "waflog detect --threads 1" "$WORK/detect.log" -- \
  "$BIN" detect --all --threads 1 "$WORK/in.ndjson" -o "$WORK/detect.ndjson"
D_WALL="$WALL" D_USER="$CPU_U" D_SYS="$CPU_S"
echo "   waflog detect  ${D_WALL}s"
timed "waflog detect --threads 2" "$WORK/detect2.log" -- \
  "$BIN" detect --all --threads 2 "$WORK/in.ndjson" -o "$WORK/detect2.ndjson"
D2_WALL="$WALL" D2_USER="$CPU_U" D2_SYS="$CPU_S"
if cmp -s "$WORK/detect.ndjson" "$WORK/detect2.ndjson"; then D2_SAME=yes; else D2_SAME=NO; fi
rm -f "$WORK/detect.ndjson" "$WORK/detect2.ndjson"
echo "   waflog detect --threads 2  ${D2_WALL}s"

timed "python seed_transform.py" "$WORK/py.log" -- \
  python3 "$HERE/seed_transform.py" "$WORK/in.ndjson" "$WORK/py.ndjson"
P_WALL="$WALL" P_USER="$CPU_U" P_SYS="$CPU_S"
echo "   python  ${P_WALL}s"

timed "jq" "$WORK/jq.log" --stdout "$WORK/jq.ndjson" -- \
  jq -c -f "$HERE/transform.jq" "$WORK/in.ndjson"
J_WALL="$WALL" J_USER="$CPU_U" J_SYS="$CPU_S"
echo "   jq      ${J_WALL}s"

OUTPUTS=("$WORK/waflog.ndjson" "$WORK/py.ndjson" "$WORK/jq.ndjson")
PEERS=""
JQ_W="" JQ_U="" JQ_S="" OJ_W="" OJ_U="" OJ_S=""
if [ -n "$JAQ" ]; then
  timed "jaq" "$WORK/jaq.log" --stdout "$WORK/jaq.ndjson" -- \
    "$JAQ" -c -f "$HERE/transform.jq" "$WORK/in.ndjson"
  JQ_W="$WALL" JQ_U="$CPU_U" JQ_S="$CPU_S"
  echo "   jaq     ${JQ_W}s"
  OUTPUTS+=("$WORK/jaq.ndjson")
  PEERS="$PEERS, jaq"
fi
if [ -n "$ORJSON_PY" ]; then
  timed "python orjson" "$WORK/orjson.log" -- \
    "$ORJSON_PY" "$HERE/seed_transform.py" --orjson "$WORK/in.ndjson" "$WORK/orjson.ndjson"
  OJ_W="$WALL" OJ_U="$CPU_U" OJ_S="$CPU_S"
  echo "   orjson  ${OJ_W}s"
  OUTPUTS+=("$WORK/orjson.ndjson")
  PEERS="$PEERS, python+orjson"
fi

# --- agreement -------------------------------------------------------------------------
echo "== checking that the ${#OUTPUTS[@]} outputs agree on every line"
AGREE=yes
if COMPARED="$(python3 "$HERE/check_agree.py" "${OUTPUTS[@]}" 2>"$WORK/check.log")"; then
  [ "$COMPARED" = "$N" ] || { echo "compared $COMPARED lines, expected $N" >"$WORK/check.log"; AGREE=no; }
else
  AGREE=no
fi
[ "$AGREE" = yes ] || cat "$WORK/check.log" >&2

# --- report ----------------------------------------------------------------------------
echo
echo "waflog $("$BIN" --version | awk '{ print $NF }'), $(python3 --version 2>&1), $(jq --version)${JAQ:+, $("$JAQ" --version)}${ORJSON_PY:+, orjson $("$ORJSON_PY" -c 'import orjson; print(orjson.__version__)')}"
echo "cpu: $(awk -F': ' '/^model name/ { print $2; exit }' /proc/cpuinfo 2>/dev/null || echo unknown), $(nproc 2>/dev/null || echo '?') cores; every tool runs on one thread (waflog also with --threads 2)"
echo "input: $N records, $BYTES bytes ($(awk -v b="$BYTES" -v n="$N" 'BEGIN { printf "%.0f", b / n }') bytes/record)"
echo
awk -v n="$N" -v bytes="$BYTES" \
  -v ww="$W_WALL" -v wu="$W_USER" -v ws="$W_SYS" \
  -v w2w="$W2_WALL" -v w2u="$W2_USER" -v w2s="$W2_SYS" \
  -v dw="$D_WALL" -v du="$D_USER" -v ds="$D_SYS" \
  -v d2w="$D2_WALL" -v d2u="$D2_USER" -v d2s="$D2_SYS" \
  -v pw="$P_WALL" -v pu="$P_USER" -v ps="$P_SYS" \
  -v jw="$J_WALL" -v ju="$J_USER" -v js="$J_SYS" \
  -v qw="$JQ_W" -v qu="$JQ_U" -v qs="$JQ_S" \
  -v ow="$OJ_W" -v ou="$OJ_U" -v os="$OJ_S" \
  -v gw="$GEN_WALL" -v gu="$GEN_USER" -v gs="$GEN_SYS" 'BEGIN {
  fmt = "%-18s %10s %14s %10s %10s %10s\n"
  printf fmt, "tool", "seconds", "events/s", "MB/s", "user s", "sys s"
  row("waflog transform", ww, wu, ws)
  row("waflog --threads 2", w2w, w2u, w2s)
  row("detect --threads 1", dw, du, ds)
  row("detect --threads 2", d2w, d2u, d2s)
  row("python (seed)", pw, pu, ps)
  row("jq", jw, ju, js)
  if (qw != "") row("jaq", qw, qu, qs)
  if (ow != "") row("python + orjson", ow, ou, os)
  print ""
  printf "waflog/python  %8.1fx   (throughput ratio, this run)\n", pw / ww
  printf "waflog/jq      %8.1fx\n", jw / ww
  if (qw != "") printf "waflog/jaq     %8.1fx\n", qw / ww
  if (ow != "") printf "waflog/orjson  %8.1fx\n", ow / ww
  printf "--threads 2 / 1 %7.2fx   (python / waflog --threads 2: %.1fx)\n", ww / w2w, pw / w2w
  printf "detect --threads 2 / 1 %.2fx\n", dw / d2w
  print ""
  printf "waflog generate: %.3f s for %d records, %.0f events/s, %.1f MB/s written (user %.2f s, sys %.2f s)\n", gw, n, n / gw, bytes / gw / 1e6, gu, gs
}
function row(name, wall, user, sys) {
  printf "%-18s %10.3f %14.0f %10.1f %10.2f %10.2f\n", name, wall, n / wall, bytes / wall / 1e6, user, sys
}'
echo "generate output identical to the input (determinism): $GEN_SAME"
echo "--threads 2 output identical to --threads 1: $W2_SAME"
echo "detect --threads 2 results identical to --threads 1: $D2_SAME"
if [ "$AGREE" = yes ]; then
  echo "agreement: all $COMPARED lines agree (waflog, python, jq$PEERS)"
else
  echo "agreement: FAILED: $(cat "$WORK/check.log")"
fi
echo
REPEAT="bash benches/compare.sh $N"
[ -n "${CARGO_TARGET_DIR:-}" ] && REPEAT="CARGO_TARGET_DIR=$CARGO_TARGET_DIR $REPEAT"
echo "repeat with:  (cd $ROOT && $REPEAT)"

[ "$AGREE" = yes ] && [ "$W2_SAME" = yes ] && [ "$D2_SAME" = yes ] || exit 1
