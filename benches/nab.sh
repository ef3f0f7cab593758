#!/usr/bin/env bash
# Scores waflog on the Numenta Anomaly Benchmark (NAB) with NAB's own scorer and with
# waflog's (waflog_core::eval::nab), side by side. See --help.
set -euo pipefail

usage() {
  cat <<'EOF'
usage: bash benches/nab.sh                                               (the full report)
       bash benches/nab.sh [--config CFG] [--name NAME] [--keep DIR]    (CLI mode)
       bash benches/nab.sh --cv                                        (cross-validation)
       bash benches/nab.sh --example [EXAMPLE ARGS...]                 (example mode)
       bash benches/nab.sh --agreement [--keep DIR]                    (scorer agreement mode)
       bash benches/nab.sh --help

Without arguments: the CLI mode for the default metric detector, then for the forest
(--config fixtures/config/nab-rcf.toml --name rcf), then the cross-validation.

Cross-validation (--cv): runs the `nab_cv` example (examples/nab_cv.rs): a grid of the
default detector's three tuned parameters (cad's rest period, range margin and
history; 45 combinations) over the 58 series, each fold's choice made on half of the
files (odd or even by sorted path) and scored on the other half, with waflog's scorer
(about 3 minutes once built).

CLI mode: what a user of `waflog detect --input-format csv` gets on NAB, scored
by NAB's official scorer.
  1. builds `waflog` in release;
  2. runs, for each of the 58 labelled series of fixtures/nab/data, in a fresh process
     (two at a time), `waflog detect --input-format csv FILE --all [--config CFG]`:
     without CFG the default metric detector (`cad`; the default before it, the
     `ensemble` of `artime` and `ewma_likelihood`, is fixtures/config/nab-ensemble.toml),
     with CFG the first of its [[detectors]] (its algorithm; the features are the CSV's
     value column), e.g. a config with one `type = "rcf"` detector;
  3. turns each run's results (NDJSON, one document per data row with --all) into a NAB
     result CSV `timestamp,anomaly_score` (the data file's timestamps; the row count and
     every row's time are checked). Scores are used as they are when all lie in [0, 1]
     (NAB's contract). Otherwise, if none is negative (rcf's raw scores), every score
     of every file becomes s / (1 + s): strictly increasing, so the ranking, and thus
     both NAB scores, are those of the raw scores, but NAB's "detect nothing" threshold
     (1.1) stays above them all;
  4. scores that folder with NAB's scorer (fixtures/nab/scorer/score.sh: NAB's run.py
     --optimize --score --normalize, Python with pandas in a cached venv, see
     fixtures/nab/scorer/README.md) and with waflog's scorer (the `nab` example with
     --scores), and prints both scorers' standard / reward_low_FP_rate /
     reward_low_FN_rate scores, thresholds and raw totals. Fails if they differ by more
     than 0.1 on a profile.
  --config CFG   waflog.toml passed to every `waflog detect` run (default: none)
  --name NAME    the detector name NAB's scorer files the results under (letters and
                 digits; default waflog)
  --keep DIR     write the runs' NDJSON, logs, result CSVs and NAB's per-file score
                 tables under DIR (must be empty or absent) instead of a temporary
                 folder that is deleted
  Measured on 2 busy cores, once built: about 1 minute with the default detector (the
  58 runs take 3 s, NAB's scorer most of the rest), 2 minutes with rcf (runs 38 s);
  plus the release builds, and about 1 minute the first time for the scorer's venv
  and null baseline.

Example mode (--example): runs the `nab` example (examples/nab.rs) in release with the
remaining arguments: a detector or post-processing method run in-process over every
row, scored by waflog's scorer only. `bash benches/nab.sh --example --help` lists its
options: --method (likelihood-spatial, likelihood, ratio, scaled, rcf), --lk-periods
nab|fixed (the likelihood's learning periods from NAB's probation, the default, or
fixed as in the CLI), --files all|odd|even (every other file in path order, for
two-fold cross-validation), --scores DIR (score a folder of result CSVs),
--write-scores DIR, --json, --nab DIR.

Agreement mode (--agreement): scores the synthetic per-row score sets of
fixtures/nab/agreement/ (sparse CSVs, see generate.py there) with NAB's scorer and
waflog's, and prints NAB's thresholds, raw totals and scores in the form of
fixtures/nab/agreement/official.csv, which the core test `official_scorer_agreement`
checks waflog's scorer against.
EOF
}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd -P)
NAB=$ROOT/fixtures/nab
SCORE_SH=$NAB/scorer/score.sh
die() { echo "nab.sh: $*" >&2; exit 1; }

MODE=cli CONFIG= NAME=waflog KEEP=
if [[ $# -eq 0 ]]; then
  # The full report: the default detector, the forest, and the cross-validation.
  bash "${BASH_SOURCE[0]}" --name waflog
  echo
  bash "${BASH_SOURCE[0]}" --config "$ROOT/fixtures/config/nab-rcf.toml" --name rcf
  echo
  exec bash "${BASH_SOURCE[0]}" --cv
fi
case "${1:-}" in
  -h|--help) usage; exit 0;;
  --cv)
    shift
    cd "$ROOT"
    exec cargo run --release -q -p waflog-examples --example nab_cv -- "$@";;
  --example)
    shift
    cd "$ROOT"
    exec cargo run --release -q -p waflog-examples --example nab -- "$@";;
  --agreement) MODE=agreement; shift;;
esac
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) [[ $# -ge 2 ]] || die "--config needs a file"
              [[ -f $2 ]] || die "no config file $2"
              CONFIG=$(realpath "$2"); shift 2;;
    --name) [[ $# -ge 2 ]] || die "--name needs a value"; NAME=$2; shift 2;;
    --keep) [[ $# -ge 2 ]] || die "--keep needs a folder"; KEEP=$2; shift 2;;
    -h|--help) usage; exit 0;;
    *) die "unknown argument '$1' (see --help)";;
  esac
done
[[ $MODE == cli || -z $CONFIG ]] || die "--config is for the CLI mode"
[[ $NAME =~ ^[A-Za-z][A-Za-z0-9]*$ ]] || die "--name: letters and digits only"
command -v python3 >/dev/null || die "python3 is needed"

if [[ -n $KEEP ]]; then
  mkdir -p "$KEEP"
  [[ -z $(ls -A "$KEEP") ]] || die "--keep $KEEP is not empty"
  WORK=$(cd "$KEEP" && pwd -P)
else
  WORK=$(mktemp -d "${TMPDIR:-/tmp}/waflog-nab.XXXXXX")
  trap 'rm -rf "$WORK"' EXIT
fi

cd "$ROOT"
# The `nab` example scores a results folder with waflog's scorer (JSON on stdout).
echo "nab.sh: building the nab example (release)" >&2
cargo build --release -q -p waflog-examples --example nab
TARGET=$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')
EXAMPLE=$TARGET/release/examples/nab
[[ -x $EXAMPLE ]] || die "no $EXAMPLE after the build"

# Scores the results folder $1 with both scorers; $2 is the name for NAB's scorer. Prints
# the comparison table; returns 1 if a profile differs by more than 0.1. NAB's per-file
# tables go to $3 (NAB_SCORER_OUT).
compare() {
  local results=$1 name=$2 tables=$3
  "$EXAMPLE" --scores "$results" --json >"$tables.ours.json" 2>"$tables.ours.log" &
  local ours=$!
  if ! NAB_SCORER_OUT=$tables bash "$SCORE_SH" "$results" "$name" >"$tables.nab.log" 2>&1; then
    cat "$tables.nab.log" >&2
    die "NAB's scorer failed on $results (output above)"
  fi
  wait "$ours" || { cat "$tables.ours.log" >&2; die "waflog's scorer failed on $results"; }
  python3 - "$tables" "$name" "$tables.ours.json" "$tables.nab.log" <<'PYEOF'
import csv, json, os, re, sys
tables, name, ours_path, log = sys.argv[1:5]
ours = json.load(open(ours_path))["profiles"]
final = {}
for line in open(log):
    m = re.match(r"NAB \S+ standard=(\S+) low_fp=(\S+) low_fn=(\S+)", line)
    if m:
        final = dict(zip(("standard", "reward_low_FP_rate", "reward_low_FN_rate"),
                         map(float, m.groups())))
if len(final) != 3:
    sys.exit("nab.sh: no final line in NAB's output " + log)
print("%-20s %10s %10s %7s   %-12s %-12s %11s %11s" % (
    "profile", "NAB", "waflog", "diff", "NAB thresh.", "waflog th.", "NAB raw", "waflog raw"))
bad = []
for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
    rows = list(csv.DictReader(open(os.path.join(tables, "%s_%s_scores.csv" % (name, profile)))))
    total = [r for r in rows if r["Detector"] == "Totals"][0]
    thresholds = {r["Threshold"] for r in rows if r["Detector"] != "Totals"}
    o = ours[profile]
    ot = "none" if o["threshold"] is None else "%.10g" % o["threshold"]
    diff = o["normalized"] - final[profile]
    if abs(diff) > 0.1:
        bad.append(profile)
    print("%-20s %10.2f %10.2f %+7.2f   %-12s %-12s %11.4f %11.4f" % (
        profile, final[profile], o["normalized"], diff,
        "%.10g" % float(thresholds.pop()) if len(thresholds) == 1 else "?",
        ot, float(total["Score"]), o["raw"]))
print("NAB %s standard=%.2f low_fp=%.2f low_fn=%.2f" % (
    name, final["standard"], final["reward_low_FP_rate"], final["reward_low_FN_rate"]))
print("waflog-scorer %s standard=%.2f low_fp=%.2f low_fn=%.2f" % (
    name, ours["standard"]["normalized"], ours["reward_low_FP_rate"]["normalized"],
    ours["reward_low_FN_rate"]["normalized"]))
if bad:
    print("nab.sh: the scorers differ by more than 0.1 on " + ", ".join(bad), file=sys.stderr)
    sys.exit(1)
PYEOF
}

if [[ $MODE == agreement ]]; then
  OUT=$WORK/official.csv
  echo "set,profile,threshold,raw,normalized" >"$OUT"
  for sparse in "$NAB"/agreement/*.csv; do
    set_name=$(basename "$sparse" .csv)
    [[ $set_name == official ]] && continue
    echo "== $set_name" >&2
    python3 - "$NAB" "$sparse" "$WORK/$set_name" <<'PYEOF'
import csv, json, os, sys
nab, sparse, out = sys.argv[1:4]
got = {}
for r in csv.DictReader(open(sparse)):
    got.setdefault(r["file"], {})[int(r["row"])] = r["anomaly_score"]
for name in json.load(open(os.path.join(nab, "labels", "combined_windows.json"))):
    lines = open(os.path.join(nab, "data", name)).read().splitlines()[1:]
    times = [l.split(",")[0] for l in lines if l.strip()]
    rows = got.pop(name, {})
    if any(r >= len(times) for r in rows):
        sys.exit("%s: row beyond %s's %d rows" % (sparse, name, len(times)))
    os.makedirs(os.path.dirname(os.path.join(out, name)), exist_ok=True)
    with open(os.path.join(out, name), "w") as f:
        f.write("timestamp,anomaly_score\n")
        f.writelines("%s,%s\n" % (t, rows.get(i, "0")) for i, t in enumerate(times))
if got:
    sys.exit("%s: unknown series %s" % (sparse, ", ".join(sorted(got))))
PYEOF
    compare "$WORK/$set_name" "agr${set_name//[^A-Za-z0-9]/}" "$WORK/$set_name-tables"
    python3 - "$WORK/$set_name-tables" "agr${set_name//[^A-Za-z0-9]/}" "$set_name" "$WORK/$set_name-tables.nab.log" >>"$OUT" <<'PYEOF'
import csv, os, re, sys
tables, name, set_name, log = sys.argv[1:5]
final = {}
for line in open(log):
    m = re.match(r"Final score for '\S+' detector on '(\S+)' profile = (\S+)", line)
    if m:
        final[m.group(1)] = m.group(2)
for profile in ("standard", "reward_low_FP_rate", "reward_low_FN_rate"):
    rows = list(csv.DictReader(open(os.path.join(tables, "%s_%s_scores.csv" % (name, profile)))))
    total = [r for r in rows if r["Detector"] == "Totals"][0]
    threshold = [r["Threshold"] for r in rows if r["Detector"] != "Totals"][0]
    print("%s,%s,%s,%s,%s" % (set_name, profile, threshold, total["Score"], final[profile]))
PYEOF
  done
  echo "== NAB's figures (the form of fixtures/nab/agreement/official.csv)"
  cat "$OUT"
  exit 0
fi

# --- CLI mode
echo "nab.sh: building waflog (release)" >&2
cargo build --release -q -p waflog-cli --bin waflog
WAFLOG=$TARGET/release/waflog
[[ -x $WAFLOG ]] || die "no $WAFLOG after the build"

mkdir -p "$WORK/runs" "$WORK/results"
(cd "$NAB/data" && find . -name '*.csv' | sed 's|^\./||' | LC_ALL=C sort) >"$WORK/files"
[[ $(wc -l <"$WORK/files") -eq 58 ]] || die "expected 58 data files under $NAB/data"
echo "nab.sh: $WAFLOG detect --input-format csv FILE --all${CONFIG:+ --config $CONFIG}, 58 files, 2 at a time" >&2
started=$(date +%s.%N)
export WAFLOG NAB WORK CONFIG
# One fresh process per file; a failed run leaves its log and makes xargs fail.
if ! xargs -P 2 -I{} bash -c '
    f={}; out=$WORK/runs/${f//\//__}
    "$WAFLOG" detect --input-format csv "$NAB/data/$f" --all ${CONFIG:+--config "$CONFIG"} \
      >"$out.ndjson" 2>"$out.log"
    rc=$?
    if [[ $rc -ne 0 ]]; then
      echo "nab.sh: waflog failed on $f (exit $rc); the end of its log:" >&2
      tail -n 20 "$out.log" >&2
      exit 255
    fi' <"$WORK/files"; then
  die "a waflog run failed (see above)"
fi
elapsed=$(python3 -c "import sys; print('%.1f' % ($(date +%s.%N) - $started))")
echo "nab.sh: 58 runs in $elapsed s" >&2

# NDJSON -> NAB result CSVs: one row per data row, the data file's timestamps.
python3 - "$NAB/data" "$WORK" <<'PYEOF'
import calendar, datetime, json, os, sys
data, work = sys.argv[1:3]
files = open(os.path.join(work, "files")).read().split()
runs, problems = {}, []
for f in files:
    lines = open(os.path.join(data, f)).read().splitlines()[1:]
    times = [l.split(",")[0] for l in lines if l.strip()]
    scores, starts = [], []
    with open(os.path.join(work, "runs", f.replace("/", "__") + ".ndjson")) as nd:
        for line in nd:
            if line.strip():
                doc = json.loads(line)
                scores.append(doc["anomaly_score"])
                starts.append(doc["data_start_time"])
    if len(scores) != len(times):
        problems.append("%s: %d results for %d data rows" % (f, len(scores), len(times)))
        continue
    for i, (t, ms) in enumerate(zip(times, starts)):
        d = datetime.datetime.strptime(t.split(".")[0], "%Y-%m-%d %H:%M:%S")
        if calendar.timegm(d.timetuple()) * 1000 != ms:
            problems.append("%s: row %d is %s, its result starts at %d ms" % (f, i + 1, t, ms))
            break
    runs[f] = (times, scores)
if problems:
    sys.exit("nab.sh: results do not match the data:\n  " + "\n  ".join(problems))
flat = [s for _, scores in runs.values() for s in scores]
if any(s != s for s in flat):
    sys.exit("nab.sh: NaN anomaly scores")
lo, hi = min(flat), max(flat)
squash = not (0 <= lo and hi <= 1)
if squash and lo < 0:
    sys.exit("nab.sh: scores in [%g, %g]: outside [0, 1] and negative, no mapping" % (lo, hi))
if squash:
    print("nab.sh: scores in [%g, %g], outside NAB's [0, 1]: scoring s / (1 + s) for every "
          "score (same ranking, same NAB result)" % (lo, hi), file=sys.stderr)
else:
    print("nab.sh: scores in [%g, %g]" % (lo, hi), file=sys.stderr)
for f, (times, scores) in runs.items():
    path = os.path.join(work, "results", f)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as out:
        out.write("timestamp,anomaly_score\n")
        out.writelines("%s,%r\n" % (t, s / (1 + s) if squash else s)
                       for t, s in zip(times, scores))
PYEOF

echo "nab.sh: scoring with NAB's scorer and waflog's" >&2
echo "waflog detect --input-format csv --all${CONFIG:+ --config $CONFIG}: 58 NAB series, each in a fresh process"
compare "$WORK/results" "$NAME" "$WORK/tables"
