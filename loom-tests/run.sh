#!/usr/bin/env bash
# Runs the loom models. CI uses the default bound; people can go further:
#   loom-tests/run.sh                 # LOOM_MAX_PREEMPTIONS=2 (CI)
#   loom-tests/run.sh --exhaustive    # no preemption bound (slow)
#   loom-tests/run.sh queue           # one model file (tests/queue.rs)
#   loom-tests/run.sh queue <filter>  # models of that file matching <filter>
set -euo pipefail
cd "$(dirname "$0")"
if [ "${1:-}" = "--exhaustive" ]; then
  shift
  unset LOOM_MAX_PREEMPTIONS
else
  export LOOM_MAX_PREEMPTIONS="${LOOM_MAX_PREEMPTIONS:-2}"
fi
export RUSTFLAGS="--cfg notification_queue_loom --cfg crossbeam_loom ${RUSTFLAGS:-}"
export LOOM_MAX_BRANCHES="${LOOM_MAX_BRANCHES:-10000}"
echo "loom: LOOM_MAX_PREEMPTIONS=${LOOM_MAX_PREEMPTIONS:-unbounded}"
files=()
if [ -n "${1:-}" ] && [ -f "tests/$1.rs" ]; then
  files=(--test "$1")
  shift
fi
exec cargo test --release --target-dir "${LOOM_TARGET_DIR:-target}" "${files[@]}" -- --test-threads="${LOOM_TEST_THREADS:-2}" "$@"
