#!/usr/bin/env bash
# The benchmark suite in one command.
#
#   scripts/bench.sh            full run: every criterion bench (`cargo bench`),
#                               then scripts/cachegrind.sh, then
#                               scripts/bench_report.py (BENCHMARKS.md, docs/*.svg).
#                               About 5-15 minutes on 2 cores; run it on a quiet machine.
#   scripts/bench.sh --quick    CI mode: builds every bench and runs each
#                               benchmark once (`cargo bench -- --test`); no report.
#
# Extra arguments after the mode go to the bench binaries (criterion), e.g.
#   scripts/bench.sh --full notify_idle     (only groups matching a filter)
# Results go to ${CARGO_TARGET_DIR:-target}/criterion (or $CRITERION_HOME).
set -euo pipefail
cd "$(dirname "$0")/.."

mode=full
case "${1:-}" in
    --quick) mode=quick; shift ;;
    --full) shift ;;
    -h|--help) sed -n '2,13p' "$0"; exit 0 ;;
esac

if [[ $mode == quick ]]; then
    exec cargo bench -- --test "$@"
fi

TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT_DIR="${CRITERION_HOME:-$TARGET_DIR/criterion}"
mkdir -p "$OUT_DIR"
cmd="cargo bench${*:+ --bench '*' -- $*}"
# Build first so compile time is not part of the run's duration.
cargo bench --no-run
start=$(date +%s)
cargo bench --bench '*' -- "$@"   # criterion binaries only: the libtest harnesses reject criterion flags
end=$(date +%s)
commit="${BENCH_COMMIT:-$(git rev-parse --short HEAD 2>/dev/null || echo unknown)}"
if [[ -z "${BENCH_COMMIT:-}" && -n "$(git status --porcelain -- src benches 2>/dev/null)" ]]; then
    commit="$commit (with uncommitted changes in src/ or benches/)"
fi
cat >"$OUT_DIR/run.json" <<EOF
{
  "command": "$cmd",
  "started_epoch": $start,
  "finished": "$(date -u -d "@$end" '+%Y-%m-%d %H:%M UTC')",
  "duration_s": $((end - start)),
  "commit": "$commit",
  "note": "${BENCH_NOTE:-}"
}
EOF
scripts/cachegrind.sh
python3 scripts/bench_report.py --criterion-dir "$OUT_DIR"
