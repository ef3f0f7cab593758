#!/usr/bin/env bash
# test.sh: waflog's whole test suite, with real local AWS-compatible servers.
#
#   bash scripts/test.sh [cargo test args...]     e.g. bash scripts/test.sh -p waflog-cli
#
# Installs the test tooling (scripts/local-aws.sh install: moto_server in
# .tools/venv, kinesalite in .tools/node; Debian's chromium and chromium-driver
# for the browser tests, with apt-get; each a no-op once done), starts a private
# pair of servers on free 127.0.0.1 ports, exports WAFLOG_TEST_* and test AWS
# credentials (see `bash scripts/local-aws.sh env`), runs
# `cargo test --workspace "$@"`, stops the servers on exit (also on Ctrl-C or
# SIGTERM) and exits with cargo's exit code.
#
# Each run has its own pid/port directory (.tools/run/test-PID), its own
# kinesalite data directory inside it and its own logs (.tools/logs/test-PID,
# kept only when the run fails), so concurrent runs and servers started by hand
# with `bash scripts/local-aws.sh start` do not interfere.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

# shellcheck source=scripts/local-aws.sh
source scripts/local-aws.sh

local_aws_install

# The dashboard's browser tests (waflog-cli/tests/dashboard.rs) drive Debian's
# headless Chromium through its chromedriver; install both when missing.
if [[ ! -x /usr/bin/chromium || ! -x /usr/bin/chromedriver ]]; then
  echo "test.sh: installing Debian's chromium and chromium-driver for the browser tests" >&2
  sudo_cmd=()
  [[ $(id -u) -eq 0 ]] || sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq \
    chromium chromium-driver >/dev/null
fi
export WAFLOG_TEST_CHROMIUM=/usr/bin/chromium WAFLOG_TEST_CHROMEDRIVER=/usr/bin/chromedriver

LOCAL_AWS_RUN_DIR="$PWD/.tools/run/test-$$"
LOCAL_AWS_LOG_DIR="$PWD/.tools/logs/test-$$"
KINESALITE_PATH="$LOCAL_AWS_RUN_DIR/kinesalite-data"
export LOCAL_AWS_RUN_DIR LOCAL_AWS_LOG_DIR KINESALITE_PATH

# shellcheck disable=SC2317  # invoked by the EXIT trap
cleanup() {
  local rc=$?
  trap - EXIT INT TERM
  local_aws_stop
  rm -rf "$LOCAL_AWS_RUN_DIR"
  if [[ $rc -eq 0 ]]; then
    rm -rf "$LOCAL_AWS_LOG_DIR"
  else
    echo "test.sh: exit code $rc; server logs kept in $LOCAL_AWS_LOG_DIR" >&2
  fi
  exit "$rc"
}
trap cleanup EXIT

# cargo runs in its own process group (job control on just for its launch), so
# that SIGINT/SIGTERM sent to this script reach cargo and its test binaries
# right away (a foreground child would delay the trap until it ends), without
# signalling whoever started this script.
cargo_pid=""
# shellcheck disable=SC2317  # invoked by the INT/TERM traps
on_signal() {
  local sig=$1 code=$2
  trap '' INT TERM
  if [[ -n "$cargo_pid" ]] && kill -0 "$cargo_pid" 2>/dev/null; then
    kill -"$sig" -- "-$cargo_pid" 2>/dev/null || true
    wait "$cargo_pid" 2>/dev/null || true
  fi
  exit "$code"
}
trap 'on_signal INT 130' INT
trap 'on_signal TERM 143' TERM

local_aws_start
eval "$(local_aws_env)"

rc=0
set -m
cargo test --workspace "$@" &
cargo_pid=$!
set +m
wait "$cargo_pid" || rc=$?
exit "$rc"
