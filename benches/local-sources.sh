#!/usr/bin/env bash
# Throughput of reading local folders and several files (merged in event time)
# against one file of the same records.
#
# Usage:   bash benches/local-sources.sh [N]     (N records, default 400000)
# Env:     PROFILE=debug   time the debug build instead of the release build
#          KEEP=1          keep the work directory
#          CARGO_TARGET_DIR is respected when locating the built binary.
#
# It builds waflog (release unless PROFILE=debug) and makes N records once with
#   waflog generate --seed 1 --start 2024-05-01T00:00:00Z --count N --rate 50
# then lays the same records out as (all files read once before timing):
#
#   file          in.ndjson                       one plain file (the baseline)
#   file.gz       in.ndjson.gz                    one gzip file
#   dir 5m .gz    waf/AWSLogs/.../YYYY/MM/dd/HH/mm/*.log.gz   WAF's layout, one
#                 gzip object per five minutes of event time (one web ACL)
#   dir 1m plain  one plain file per minute, in one folder
#   2 acls, 2 files the records split into two web ACLs (alternately), one plain
#                 file each, merged by waflog (one file of them is the baseline)
#   2 acls, dir   the two web ACLs in WAF's layout, five-minute gzip objects
#
# and times `waflog transform INPUT -o /dev/null` on each with
# benches/compare/timeit.py (wall and CPU seconds of the waflog process). MB/s is the
# uncompressed NDJSON size / wall seconds; the last column is each row's events/s
# over the one-file baseline of the same run. Exit 2 on any error (or when a row
# does not read exactly N records); it never fails on speed.
set -euo pipefail

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup local-sources.sh 400000 "${1:-}"

WORK="$(mktemp -d /tmp/waflog-local-bench.XXXXXX)"
# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  if [[ "${KEEP:-0}" == 1 ]]; then
    echo "local-sources.sh: work files kept in $WORK" >&2
  else
    rm -rf "$WORK"
  fi
}
trap cleanup EXIT

echo "generating $N records and laying them out ..." >&2
"$BIN" -q generate --seed 1 --start 2024-05-01T00:00:00Z --count "$N" --rate 50 -o "$WORK/in.ndjson"
gzip -1 -c "$WORK/in.ndjson" > "$WORK/in.ndjson.gz"
python3 - "$WORK" <<'EOF' || die "cannot lay out the files"
import gzip, json, os, sys, time
work = sys.argv[1]

def put(path, lines, gz):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    data = "".join(lines).encode()
    with open(path, "wb") as f:
        f.write(gzip.compress(data, 1) if gz else data)

def waf_layout(root, acl, lines):
    """One gzip object per five minutes of event time, in WAF's delivery layout."""
    groups = {}
    for line, tm in lines:
        key = f"{tm.tm_year:04}/{tm.tm_mon:02}/{tm.tm_mday:02}/{tm.tm_hour:02}/{tm.tm_min // 5 * 5:02}"
        groups.setdefault(key, []).append(line)
    for key, group in groups.items():
        stamp = key.replace("/", "")
        folder = f"{root}/AWSLogs/123456789012/WAFLogs/us-east-1/{acl}/{key}"
        put(f"{folder}/123456789012_waflogs_us-east-1_{acl}_{stamp[:8]}T{stamp[8:]}Z_x.log.gz", group, True)

with open(f"{work}/in.ndjson") as f:
    timed = [(line, time.gmtime(json.loads(line)["timestamp"] // 1000)) for line in f]
waf_layout(f"{work}/waf", "acl", timed)
minutes = {}
for line, tm in timed:
    minutes.setdefault(time.strftime("%Y%m%d%H%M", tm), []).append(line)
for minute, lines in minutes.items():
    put(f"{work}/minutes/{minute}.ndjson", lines, False)
# Two web ACLs: the records alternately, each ACL's in event time.
for n, acl in enumerate(["acl-a", "acl-b"]):
    mine = timed[n::2]
    put(f"{work}/{acl}.ndjson", [line for line, _ in mine], False)
    waf_layout(f"{work}/acls", acl, mine)
EOF
BYTES=$(stat -c %s "$WORK/in.ndjson")
FILES_5M=$(find "$WORK/waf" -type f | wc -l)
FILES_1M=$(find "$WORK/minutes" -type f | wc -l)
FILES_ACLS=$(find "$WORK/acls" -type f | wc -l)
find "$WORK" -type f -exec cat {} + > /dev/null

BASE=""
printf '| input | files | wall s | CPU s | events/s | MB/s | vs file |\n|---|---:|---:|---:|---:|---:|---:|\n'
# row LABEL FILES ARGS...: times waflog transform ARGS, prints a table row.
row() {
  local label=$1 files=$2
  shift 2
  local log="$WORK/${label// /-}.log" t wall user sys
  t=$("${TIMEIT[@]}" --stderr "$log" -- "$BIN" transform "$@" -o /dev/null) ||
    die "$label failed: $(tail -5 "$log")"
  read -r wall user sys <<<"$t"
  grep -q "records_in=$N " "$log" || die "$label did not read $N records: $(tail -3 "$log")"
  grep -q "dead_lettered=0 " "$log" || die "$label dead-lettered records: $(tail -3 "$log")"
  python3 - "$label" "$files" "$wall" "$user" "$sys" "$N" "$BYTES" "${BASE:-0}" <<'EOF'
import sys
label, files = sys.argv[1], sys.argv[2]
wall, user, sys_, n, size, base = map(float, sys.argv[3:])
eps = n / wall
ratio = f"{eps / base:.2f}" if base else "1.00"
print(f"| {label} | {files} | {wall:.2f} | {user + sys_:.2f} | {eps:,.0f} | {size / wall / 1e6:.1f} | {ratio} |")
EOF
  if [[ -z "$BASE" ]]; then BASE=$(python3 -c "print($N / $wall)"); fi
}

row "file" 1 "$WORK/in.ndjson"
row "file.gz" 1 "$WORK/in.ndjson.gz"
row "dir 5m .gz" "$FILES_5M" "$WORK/waf"
row "dir 1m plain" "$FILES_1M" "$WORK/minutes"
row "2 acls, 2 files" 2 "$WORK/acl-a.ndjson" "$WORK/acl-b.ndjson"
row "2 acls, dir" "$FILES_ACLS" "$WORK/acls"
echo "($PROFILE build, $N records, $((BYTES / 1000000)) MB of NDJSON, $(nproc) cores)"
