#!/usr/bin/env bash
# Throughput of the record shapes waflog reads and the formats it writes, against
# the plain NDJSON file path, in one run on the same records.
#
# Usage:   bash benches/formats.sh [N]     (N records, default 300000)
# Env:     PROFILE=debug   time the debug build instead of the release build
#          CW=M            records put in CloudWatch Logs (default min(N, 100000):
#                          the local server, moto, holds them in Python)
#          KEEP=1          keep the work directory
#          CARGO_TARGET_DIR is respected when locating the built binary.
#
# It builds waflog (release unless PROFILE=debug), makes N records once with
#   waflog generate --seed 1 --start START --count N --rate 100
# (START: the hour before the last, as CloudWatch Logs takes no event older than 14
# days nor more than 2 hours ahead)
# lays them out as Firehose and CloudWatch Logs deliver them (all files read once
# before timing) and times, each with benches/compare/timeit.py (wall and CPU
# seconds of the waflog process):
#
#   ndjson -> ndjson     waflog transform in.ndjson -o /dev/null      (the baseline)
#   concatenated         in.concat: the records as `{...}{...}` with no delimiter (a
#                        Firehose object), through the streaming splitter
#   json array           in.array.json: one `[{...},{...}]` document
#   cloudwatch export    in.cwexport: `<RFC 3339 time> <json>` lines (an export)
#   -> ocsf              waflog transform in.ndjson --output-format ocsf -o /dev/null
#   -> parquet file      waflog transform in.ndjson --output-format parquet -o out.parquet
#   -> parquet dirs      ... -o lake/ (hour folders)
#   cloudwatch source    waflog transform cloudwatch://GROUP -o /dev/null, CW records
#                        in two streams of a moto_server started here (127.0.0.1)
#
# MB/s is the input's NDJSON size / wall seconds; the last column is each row's
# events/s over the baseline of the same run. The CloudWatch row measures moto (a
# Python server on the same two cores) as much as waflog. Exit 2 on any error (or
# when a row does not read exactly its records); it never fails on speed.
set -euo pipefail

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup formats.sh 300000 "${1:-}"
CW="${CW:-$((N < 100000 ? N : 100000))}"

bench_local_aws waflog-formats-bench

echo "generating $N records and laying them out ..." >&2
START=$(date -u -d '-2 hour' +%Y-%m-%dT%H:00:00Z)
"$BIN" -q generate --seed 1 --start "$START" --count "$N" --rate 100 -o "$WORK/in.ndjson"
python3 - "$WORK" <<'EOF' || die "cannot lay out the files"
import datetime, json, sys
work = sys.argv[1]
lines = [l for l in open(f"{work}/in.ndjson").read().splitlines() if l]
open(f"{work}/in.concat", "w").write("".join(lines))
open(f"{work}/in.array.json", "w").write("[" + ",".join(lines) + "]")
with open(f"{work}/in.cwexport", "w") as f:
    for l in lines:
        ts = json.loads(l)["timestamp"]
        t = datetime.datetime.fromtimestamp(ts / 1000, datetime.timezone.utc)
        f.write(t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ts % 1000:03d}Z {l}\n")
EOF
"$WAFLOG_TEST_PYTHON" - "$WAFLOG_TEST_MOTO" "$WORK/in.ndjson" "$CW" <<'EOF' || die "cannot fill the log group"
import json, sys, boto3
logs = boto3.client('logs', endpoint_url=sys.argv[1], region_name='us-east-1',
                    aws_access_key_id='test', aws_secret_access_key='test')
lines = [l for l in open(sys.argv[2]).read().splitlines() if l][: int(sys.argv[3])]
logs.create_log_group(logGroupName='aws-waf-logs-bench')
for s, part in enumerate((lines[0::2], lines[1::2])):
    name = f'us-east-1_bench_{s}'
    logs.create_log_stream(logGroupName='aws-waf-logs-bench', logStreamName=name)
    events = [dict(timestamp=json.loads(l)['timestamp'], message=l) for l in part]
    for i in range(0, len(events), 5000):
        r = logs.put_log_events(logGroupName='aws-waf-logs-bench', logStreamName=name,
                                logEvents=events[i:i + 5000])
        assert 'rejectedLogEventsInfo' not in r, r
EOF
BYTES=$(stat -c %s "$WORK/in.ndjson")
cat "$WORK"/in.* > /dev/null

BASE=""
printf '| stage | records | wall s | CPU s | events/s | MB/s | vs ndjson |\n|---|---:|---:|---:|---:|---:|---:|\n'
# row LABEL COUNT -- ARGS...: runs waflog with ARGS, prints a table row.
row() {
  local label=$1 count=$2
  shift 3 # LABEL COUNT --
  local log="$WORK/${label// /-}.log" t wall user sys
  t=$("${TIMEIT[@]}" --stderr "$log" -- "$BIN" "$@") || die "$label failed: $(tail -5 "$log")"
  read -r wall user sys <<<"$t"
  grep -q "transformed $count records" "$log" || die "$label did not handle $count records: $(tail -3 "$log")"
  python3 - "$label" "$count" "$wall" "$user" "$sys" "$N" "$BYTES" "${BASE:-0}" <<'EOF'
import sys
label = sys.argv[1]
count, wall, user, sys_, n, size, base = map(float, sys.argv[2:])
eps = count / wall
ratio = f"{eps / base:.2f}" if base else "1.00"
mbs = size * count / n / wall / 1e6
print(f"| {label} | {count:,.0f} | {wall:.2f} | {user + sys_:.2f} | {eps:,.0f} | {mbs:.1f} | {ratio} |")
EOF
  if [[ -z "$BASE" ]]; then BASE=$(python3 -c "print($count / $wall)"); fi
}

row "ndjson -> ndjson" "$N" -- transform "$WORK/in.ndjson" -o /dev/null
row "concatenated" "$N" -- transform "$WORK/in.concat" -o /dev/null
row "json array" "$N" -- transform "$WORK/in.array.json" -o /dev/null
row "cloudwatch export" "$N" -- transform "$WORK/in.cwexport" -o /dev/null
row "-> ocsf" "$N" -- transform "$WORK/in.ndjson" --output-format ocsf -o /dev/null
row "-> parquet file" "$N" -- transform "$WORK/in.ndjson" --output-format parquet -o "$WORK/out.parquet"
row "-> parquet dirs" "$N" -- transform "$WORK/in.ndjson" --output-format parquet -o "$WORK/lake"
row "cloudwatch source" "$CW" -- --endpoint-url "$WAFLOG_TEST_MOTO" transform cloudwatch://aws-waf-logs-bench -o /dev/null
echo "($PROFILE build, $N records, $((BYTES / 1000000)) MB of NDJSON; parquet: $(du -sh "$WORK/out.parquet" | cut -f1); CloudWatch Logs on moto_server $LOCAL_AWS_MOTO_VERSION on this machine)"
