#!/usr/bin/env bash
# Runs the cargo-fuzz targets in fuzz/ (see fuzz/fuzz_targets/*.rs).
#
#   scripts/fuzz.sh --ci                 # CI: every target for 27 s on stable
#   scripts/fuzz.sh                      # every target for 10 minutes
#   scripts/fuzz.sh --seconds 3600 queue_ops
#   scripts/fuzz.sh --asan --seconds 600 # AddressSanitizer (RUSTC_BOOTSTRAP=1)
#   scripts/fuzz.sh --jobs 2 ...         # libFuzzer workers per target
#
# Seeds come from the committed corpus fuzz/corpus/<target>/ (read only);
# new inputs go to fuzz/target/corpus/<target>/ (git-ignored), so longer runs
# build on each other. A crash leaves its input in fuzz/artifacts/<target>/
# and fails the script; replay it with
#   cargo fuzz run -s none <target> fuzz/artifacts/<target>/crash-...
# and minimise with `cargo fuzz tmin -s none <target> <file>`.
#
# Env: FUZZ_SECONDS (per target), FUZZ_TARGET_DIR (cargo target dir,
# default fuzz/target), FUZZ_MAX_LEN (libFuzzer -max_len, default 2048).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

ci=0
asan=0
jobs=1
seconds=${FUZZ_SECONDS:-}
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --ci) ci=1 ;;
    --asan) asan=1 ;;
    --seconds) seconds=$2; shift ;;
    --jobs) jobs=$2; shift ;;
    -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
    -*) echo "unknown option $1" >&2; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done
if [ -z "$seconds" ]; then
  # CI: about 2.3 minutes of fuzzing in all, split over the 5 targets.
  if [ $ci = 1 ]; then seconds=27; else seconds=600; fi
fi

if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "fuzz: installing cargo-fuzz"
  cargo install cargo-fuzz --locked
fi

if [ ${#targets[@]} -eq 0 ]; then
  for f in fuzz/fuzz_targets/*.rs; do
    targets+=("$(basename "$f" .rs)")
  done
fi

target_dir=${FUZZ_TARGET_DIR:-$root/fuzz/target}
if [ $asan = 1 ]; then
  # The address sanitizer needs unstable rustc flags; allow them on stable.
  export RUSTC_BOOTSTRAP=1
  sanitizer=(-s address)
else
  sanitizer=(-s none)
fi

cd fuzz
status=0
for t in "${targets[@]}"; do
  work="$target_dir/corpus/$t"
  mkdir -p "$work" "corpus/$t"
  echo "=== fuzz $t: ${seconds}s, sanitizer ${sanitizer[1]}, jobs $jobs"
  start=$SECONDS
  cargo fuzz build "${sanitizer[@]}" --target-dir "$target_dir" "$t"
  echo "(built in $((SECONDS - start))s)"
  log=$(mktemp)
  extra=()
  if [ "$jobs" -gt 1 ]; then
    extra=(-jobs="$jobs" -workers="$jobs")
  fi
  if cargo fuzz run "${sanitizer[@]}" --target-dir "$target_dir" "$t" "$work" "corpus/$t" -- \
      -max_total_time="$seconds" -max_len="${FUZZ_MAX_LEN:-2048}" -print_final_stats=1 \
      "${extra[@]}" >"$log" 2>&1; then
    grep -E '^(Done|stat::number_of_executed_units|stat::average_exec_per_sec|stat::peak_rss_mb)' "$log" || tail -n 5 "$log"
  else
    status=1
    tail -n 60 "$log"
    echo "fuzz $t: FAILED (input saved under fuzz/artifacts/$t/)"
  fi
  rm -f "$log"
done
exit $status
