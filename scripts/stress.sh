#!/usr/bin/env bash
# Runs the buggy-client stress suite (tests/stress.rs) in release and prints
# its figures (rounds, threads, probe ns/notify, heap high-water marks).
#
#   scripts/stress.sh --ci          # CI scale (NQ_STRESS_SCALE=20)
#   scripts/stress.sh               # longer: NQ_STRESS_SCALE=200
#   scripts/stress.sh --scale 1000  # any scale; extra args go to the test
#                                   # binary (e.g. a test name filter)
#
# `cargo test` runs the same suite at scale 1 in debug (a second or two).
set -euo pipefail
cd "$(dirname "$0")/.."
scale=${NQ_STRESS_SCALE:-200}
args=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) scale=${NQ_STRESS_SCALE:-20} ;;
    --scale) scale=$2; shift ;;
    -h|--help) sed -n '2,10p' "$0"; exit 0 ;;
    *) args+=("$1") ;;
  esac
  shift
done
echo "stress: NQ_STRESS_SCALE=$scale (release)"
start=$SECONDS
NQ_STRESS_SCALE=$scale cargo test --release --test stress -- --nocapture "${args[@]}" 2>&1 |
  grep -Ev '^\s*$'
echo "stress: done in $((SECONDS - start))s (build included)"
