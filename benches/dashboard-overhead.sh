#!/usr/bin/env bash
# What the live dashboard costs detection: `waflog detect` over one file with and
# without --dashboard, in the same run.
#
# Usage:   bash benches/dashboard-overhead.sh [HOURS] [ROUNDS]   (default 6 h, 3 rounds)
# Env:     PROFILE=debug   time the debug build instead of the release build
#          KEEP=1          keep the work directory
#          CARGO_TARGET_DIR is respected when locating the built binary.
#
# It builds waflog, makes HOURS of simulated traffic once with five episodes
# (waflog generate --seed 42 ... -o in.ndjson, read once before timing), then
# times ROUNDS times, alternating (benches/compare/timeit.py: wall and CPU
# seconds of the waflog process):
#
#   plain      waflog detect --all --alerts in.ndjson -o /dev/null           (the baseline)
#   dashboard  the same with --dashboard 127.0.0.1:0 --linger 0s
#
# and prints the median of each, events/s and the ratio of the dashboard's
# events/s to the baseline's. No browser is connected: this is the cost of keeping
# the board and pushing updates; a connected page adds the serialisation of each
# update once per page.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

hours=${1:-6}
rounds=${2:-3}
profile=${PROFILE:-release}
target=${CARGO_TARGET_DIR:-target}
if [[ $profile == release ]]; then
  cargo build --release -p waflog-cli >&2
else
  cargo build -p waflog-cli >&2
fi
waflog="$target/$profile/waflog"

work=$(mktemp -d)
if [[ -z ${KEEP:-} ]]; then trap 'rm -rf "$work"' EXIT; else echo "work directory: $work" >&2; fi

"$waflog" -q generate --seed 42 --start 2024-05-01T00:00:00Z --duration "${hours}h" \
  --inject country:1h:10m --inject action:2h:10m:0.05 --inject httpStatus:3h:5m:0.3 \
  --inject flood:4h:5m:8 --inject httpSourceName:5h:10m -o "$work/in.ndjson"
cat "$work/in.ndjson" > /dev/null
events=$(wc -l < "$work/in.ndjson")
echo "input: $events records, $(du -m "$work/in.ndjson" | cut -f1) MB ($profile build)" >&2

: > "$work/plain.txt"
: > "$work/dashboard.txt"
for _ in $(seq "$rounds"); do
  python3 benches/compare/timeit.py --stderr /dev/null -- "$waflog" -q detect --all --alerts \
    "$work/in.ndjson" -o /dev/null >> "$work/plain.txt"
  python3 benches/compare/timeit.py --stderr /dev/null -- "$waflog" -q detect --all --alerts \
    --dashboard 127.0.0.1:0 --linger 0s "$work/in.ndjson" -o /dev/null >> "$work/dashboard.txt"
done

python3 - "$events" "$work/plain.txt" "$work/dashboard.txt" <<'PY'
import statistics, sys
events = int(sys.argv[1])
def median(path):
    rows = [list(map(float, l.split())) for l in open(path) if l.strip()]
    return statistics.median(r[0] for r in rows), statistics.median(r[1] + r[2] for r in rows)
base_wall, base_cpu = median(sys.argv[2])
print(f"{'run':<10} {'wall s':>8} {'cpu s':>8} {'events/s':>12} {'ratio':>7}")
for name, path in [("plain", sys.argv[2]), ("dashboard", sys.argv[3])]:
    wall, cpu = median(path)
    print(f"{name:<10} {wall:8.2f} {cpu:8.2f} {events / wall:12,.0f} {base_wall / wall:7.2f}")
PY
