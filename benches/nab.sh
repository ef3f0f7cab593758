#!/usr/bin/env bash
# Score waflog's default time-series detector on the Numenta Anomaly Benchmark (NAB).
#
# Usage:   bash benches/nab.sh [--nab DIR] [--json] [--method likelihood-spatial|likelihood|ratio|...]
#          (arguments are passed to examples/nab.rs; see `bash benches/nab.sh --help`)
#
# What it measures: waflog's default metric detector (`AlgorithmSpec::metric_default()`:
# `ewma_likelihood`, Numenta's anomaly likelihood of the ewma |z| plus HTM's spatial
# rule, as `waflog detect --input-format csv` runs it) is run, one fresh model per
# series, over every row of the 58 labelled NAB series (the likelihood's learning and
# estimation periods are NAB's probationary period, as NAB's HTM detector sets them);
# each row's anomaly score (`--method likelihood` drops the spatial rule, `--method
# ratio` scores the raw |z| by s/(s+threshold), `--method rcf` runs a forest) is scored with
# NAB's method (waflog_core::eval::nab: threshold optimised per profile over the whole
# corpus, normalised so that the null detector scores 0 and the perfect one 100). It
# prints the standard / reward_low_FP_rate / reward_low_FN_rate scores next to published
# scoreboard lines (HTM, Random Cut Forest, Windowed Gaussian, Null) on stdout
# (deterministic), and the wall time on stderr.
#
# Data: the NAB corpus vendored in fixtures/nab (labels/combined_windows.json,
# data/*/*.csv, config/profiles.json); pass --nab DIR to use another copy.
#
# Builds the example in release first (cargo's own output is quiet).
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release -q -p waflog-examples --example nab -- "$@"
