#!/usr/bin/env bash
# Throughput of waflog's S3 and Kinesis sources and sinks against the local servers.
#
# Usage:   bash benches/aws-throughput.sh [N]     (N records, default 300000)
# Env:     PROFILE=debug   time the debug build instead of the release build
#          BASELINE=BIN    also time the sinks with another waflog binary (an
#                          earlier revision's release build) in the same run, and
#                          print each sink's ratio to it
#          KEEP=1          keep the work directory
#          CARGO_TARGET_DIR is respected when locating the built binary.
#
# It builds waflog (release unless PROFILE=debug), installs and starts private local
# servers with scripts/local-aws.sh (moto_server for S3, kinesalite for Kinesis, both
# on 127.0.0.1, stopped at exit), makes N records once with
#   waflog generate --seed 1 --start 2024-05-01T00:00:00Z --count N
# (plain NDJSON and a .gz copy, both read once before timing), then times, each with
# benches/compare/timeit.py (wall and CPU seconds of the waflog process):
#
#   file            waflog transform in.ndjson -o /dev/null        (the baseline)
#   file.gz         waflog transform in.ndjson.gz -o /dev/null
#   generate        waflog generate ... -o /dev/null               (the sinks' producer alone)
#   file -> .gz     waflog transform in.ndjson -o out.ndjson.gz    (gzip on worker threads)
#   s3 sink         waflog generate ... -o s3://B/waf/             (gzip objects, 5-min spans)
#   s3 source       waflog transform s3://B/waf/ -o /dev/null      (list, GET, gunzip, parse)
#   kinesis sink, 1 in flight   ... -o kinesis://S1 --kinesis-in-flight 1   (4 shards)
#   kinesis sink    waflog generate ... -o kinesis://S             (PutRecords, 4 shards,
#                                                                    the default 4 in flight)
#   kinesis source  waflog transform kinesis://S --idle-exit 1s -o /dev/null
#
# The sinks are fed by `waflog generate` (the same N records as in.ndjson), so that
# the sources read raw WAF records like the file baseline does (a transform of
# already transformed records takes a slower path); the generate row shows what the
# producer alone costs.
# For the Kinesis source the wall time excludes the idle wait before exit (the
# "no record for ..." time it logs). MB/s is the uncompressed NDJSON size / wall
# seconds. The "vs file" column is the ratio of each stage's events/s to the file
# baseline measured in the same run (the issue's target: S3 source >= 0.8). The
# server column is the CPU seconds the local server (moto or kinesalite) spent
# during the stage: a server near wall x its cores bounds that stage.
# The numbers are those of the local servers (Python and Node.js, on the same
# machine), not of AWS; the script reports speed and never fails on it. Exit 2 on
# any error.
set -euo pipefail

# shellcheck source=benches/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
bench_setup aws-throughput.sh 300000 "${1:-}"

bench_local_aws waflog-aws-bench

aws_py() {
  local endpoint=$1 code=$2
  "$WAFLOG_TEST_PYTHON" - "$endpoint" <<EOF || die "setup failed: $code"
import sys, time, boto3
kw = dict(endpoint_url=sys.argv[1], region_name='us-east-1', aws_access_key_id='test', aws_secret_access_key='test')
s3 = boto3.client('s3', **kw)
kinesis = boto3.client('kinesis', **kw)
$code
EOF
}
aws_py "$WAFLOG_TEST_MOTO" "s3.create_bucket(Bucket='bench')"
aws_py "$WAFLOG_TEST_KINESALITE" "for s in ['bench', 'bench1', 'bench0']:
    kinesis.create_stream(StreamName=s, ShardCount=4)
    for _ in range(100):
        if kinesis.describe_stream_summary(StreamName=s)['StreamDescriptionSummary']['StreamStatus'] == 'ACTIVE': break
        time.sleep(0.1)"

echo "generating $N records ..." >&2
"$BIN" -q generate --seed 1 --start 2024-05-01T00:00:00Z --count "$N" -o "$WORK/in.ndjson"
gzip -c "$WORK/in.ndjson" > "$WORK/in.ndjson.gz"
BYTES=$(stat -c %s "$WORK/in.ndjson")
cat "$WORK/in.ndjson" "$WORK/in.ndjson.gz" > /dev/null

# CPU seconds (user + system) the server behind ENDPOINT has used so far.
server_cpu() {
  local name=moto
  [[ "$1" == "$WAFLOG_TEST_KINESALITE" ]] && name=kinesalite
  awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15 + $16 + $17) / hz}' "/proc/$(<"$LOCAL_AWS_RUN_DIR/$name.pid")/stat"
}

BASE=""
declare -A EPS
printf '| stage | wall s | CPU s | server CPU s | events/s | MB/s | vs file |\n|---|---:|---:|---:|---:|---:|---:|\n'
# row LABEL ENDPOINT [--idle] [--bin B] -- ARGS...: runs waflog (or B) with ARGS,
# prints a table row.
row() {
  local label=$1 endpoint=$2 idle=0 bin=$BIN
  shift 2
  if [[ "$1" == --idle ]]; then idle=1; shift; fi
  if [[ "$1" == --bin ]]; then bin=$2; shift 2; fi
  shift # --
  local log="$WORK/${label// /-}.log" t wall user sys cpu0 cpu1
  cpu0=$(server_cpu "$endpoint")
  t=$("${TIMEIT[@]}" --stderr "$log" -- "$bin" --endpoint-url "$endpoint" "$@") ||
    die "$label failed: $(tail -5 "$log")"
  cpu1=$(server_cpu "$endpoint")
  read -r wall user sys <<<"$t"
  grep -q "$N records\|of $N\|transformed $N\|generated $N" "$log" || die "$label did not handle $N records: $(tail -3 "$log")"
  if [[ $idle == 1 ]]; then
    local waited
    waited=$(sed -n 's/.*no record for \([0-9.]*\)s, stopping.*/\1/p' "$log" | tail -1)
    [[ -n "$waited" ]] || die "$label: no idle-exit time in its log"
    wall=$(python3 -c "print($wall - $waited)")
  fi
  python3 - "$label" "$wall" "$user" "$sys" "$N" "$BYTES" "${BASE:-0}" "$cpu0" "$cpu1" <<'EOF'
import sys
label, wall, user, sys_, n, size, base, c0, c1 = sys.argv[1], *map(float, sys.argv[2:])
eps = n / wall
ratio = f"{eps / base:.2f}" if base else "1.00"
print(f"| {label} | {wall:.2f} | {user + sys_:.2f} | {c1 - c0:.2f} | {eps:,.0f} | {size / wall / 1e6:.1f} | {ratio} |")
EOF
  EPS[$label]=$(python3 -c "print($N / $wall)")
  if [[ -z "$BASE" ]]; then BASE=${EPS[$label]}; fi
}

row "file" "$WAFLOG_TEST_MOTO" -- transform "$WORK/in.ndjson" -o /dev/null
row "file.gz" "$WAFLOG_TEST_MOTO" -- transform "$WORK/in.ndjson.gz" -o /dev/null
row "file -> .gz" "$WAFLOG_TEST_MOTO" -- transform "$WORK/in.ndjson" -o "$WORK/out.ndjson.gz"
GEN=(generate --seed 1 --start 2024-05-01T00:00:00Z --count "$N")
row "generate" "$WAFLOG_TEST_MOTO" -- "${GEN[@]}" -o /dev/null
row "s3 sink" "$WAFLOG_TEST_MOTO" -- "${GEN[@]}" -o s3://bench/waf/
row "s3 source" "$WAFLOG_TEST_MOTO" -- transform s3://bench/waf/ -o /dev/null
row "kinesis sink, 1 in flight" "$WAFLOG_TEST_KINESALITE" -- "${GEN[@]}" -o kinesis://bench1 --kinesis-in-flight 1
row "kinesis sink" "$WAFLOG_TEST_KINESALITE" -- "${GEN[@]}" -o kinesis://bench
row "kinesis source" "$WAFLOG_TEST_KINESALITE" --idle -- transform kinesis://bench --idle-exit 1s -o /dev/null
if [[ -n "${BASELINE:-}" ]]; then
  [[ -x "$BASELINE" ]] || die "BASELINE=$BASELINE is not an executable"
  row "file -> .gz, baseline" "$WAFLOG_TEST_MOTO" --bin "$BASELINE" -- transform "$WORK/in.ndjson" -o "$WORK/base.ndjson.gz"
  row "s3 sink, baseline" "$WAFLOG_TEST_MOTO" --bin "$BASELINE" -- "${GEN[@]}" -o s3://bench/base/
  row "kinesis sink, baseline" "$WAFLOG_TEST_KINESALITE" --bin "$BASELINE" -- "${GEN[@]}" -o kinesis://bench0
  for stage in "file -> .gz" "s3 sink" "kinesis sink"; do
    python3 -c "print(f'$stage: {${EPS[$stage]} / ${EPS["$stage, baseline"]}:.2f}x the baseline ($BASELINE)')"
  done
fi
echo "($PROFILE build, $N records, $((BYTES / 1000000)) MB of NDJSON; servers: moto_server $LOCAL_AWS_MOTO_VERSION for S3, kinesalite $LOCAL_AWS_KINESALITE_VERSION for Kinesis, on this machine)"
