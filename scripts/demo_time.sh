#!/usr/bin/env bash
# Wall time of `mempipe_demo` in line mode (3 readers, 4-byte chunks) on
# 20,000 and 200,000 piped lines, with every reader's output checked against
# the expected output (each line's 4-byte chunks, reader by reader).
# Input: `seq -f 'line %g: the quick brown fox jumps over the lazy dog'`.
# Output goes to a file (so the figure is not a terminal's drawing speed).
# Each size runs 3 times; the fastest run counts.
#
# Usage: scripts/demo_time.sh
# Writes <criterion dir>/demo.json for scripts/bench_report.py, where the
# criterion dir is $CRITERION_HOME or ${CARGO_TARGET_DIR:-target}/criterion.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT_DIR="${CRITERION_HOME:-$TARGET_DIR/criterion}"
cargo build --release --bin mempipe_demo >&2
BIN="$TARGET_DIR/release/mempipe_demo"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

runs=()
for lines in 20000 200000; do
    seq -f 'line %g: the quick brown fox jumps over the lazy dog' "$lines" >"$tmp/in"
    python3 - "$tmp/in" >"$tmp/want" <<'PY'
import sys
out = sys.stdout
for line in open(sys.argv[1], "rb"):
    line = line.strip()
    chunks = [line[i:i + 4] for i in range(0, len(line), 4)]
    for r in (1, 2, 3):
        for c in chunks:
            out.write(f"(r{r}): {c.decode()}\n")
PY
    best=""
    for _ in 1 2 3; do
        start=$(date +%s.%N)
        "$BIN" --readers 3 <"$tmp/in" >"$tmp/got"
        end=$(date +%s.%N)
        t=$(awk -v a="$start" -v b="$end" 'BEGIN { printf "%.4f", b - a }')
        if [[ -z "$best" ]] || awk -v t="$t" -v b="$best" 'BEGIN { exit !(t < b) }'; then best="$t"; fi
    done
    if cmp -s "$tmp/want" "$tmp/got"; then exact=true; else exact=false; fi
    # Target: 0.12 s per 20,000 lines, scaled linearly.
    target=$(awk -v n="$lines" 'BEGIN { printf "%g", 0.12 * n / 20000 }')
    echo "mempipe_demo --readers 3, $lines lines: ${best} s (best of 3), output exact: $exact"
    runs+=("    {\"lines\": $lines, \"seconds\": $best, \"exact\": $exact, \"target_s\": $target}")
done
mkdir -p "$OUT_DIR"
{
    printf '{\n  "command": "scripts/demo_time.sh",\n  "readers": 3,\n  "runs": [\n'
    printf '%s,\n' "${runs[0]}"
    printf '%s\n' "${runs[1]}"
    printf '  ]\n}\n'
} >"$OUT_DIR/demo.json"
echo "wrote $OUT_DIR/demo.json"
