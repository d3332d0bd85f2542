#!/usr/bin/env bash
# Instructions per idle notify, counted exactly by cachegrind (no hardware
# counters needed): runs examples/notify_fastpath.rs (release build) under
# `valgrind --tool=cachegrind --cache-sim=no` with N and 2N operations, for
# `notify`, the bare `fetch_add` floor and the peers' idle notifies
# (event-listener, tokio `Notify`), and divides the difference of
# the instruction totals by N (set-up and tear-down cancel out).
#
# Usage: scripts/cachegrind.sh [N]          (default N = 1000000)
# Writes <criterion dir>/cachegrind.json for scripts/bench_report.py, where
# the criterion dir is $CRITERION_HOME or ${CARGO_TARGET_DIR:-target}/criterion.
set -euo pipefail
cd "$(dirname "$0")/.."

N="${1:-1000000}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT_DIR="${CRITERION_HOME:-$TARGET_DIR/criterion}"
command -v valgrind >/dev/null || { echo "cachegrind.sh: valgrind not found" >&2; exit 1; }

cargo build --release --example notify_fastpath >&2
BIN="$TARGET_DIR/release/examples/notify_fastpath"

# Total instructions ("I refs") of one run.
irefs() {
    valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        "$BIN" "$1" "$2" 2>&1 >/dev/null |
        sed -n 's/^==[0-9]*== I *refs: *\([0-9,]*\).*/\1/p' | tr -d ,
}

per_op() {
    local mode="$1" a b
    a="$(irefs "$mode" "$N")"
    b="$(irefs "$mode" "$((2 * N))")"
    if [[ -z "$a" || -z "$b" ]]; then
        echo "cachegrind.sh: could not read the instruction count for $mode" >&2
        exit 1
    fi
    awk -v a="$a" -v b="$b" -v n="$N" 'BEGIN { printf "%.2f", (b - a) / n }'
}

NOTIFY="$(per_op notify)"
FETCH_ADD="$(per_op fetch_add)"
EVENT_LISTENER="$(per_op event_listener)"
TOKIO_NOTIFY="$(per_op tokio_notify)"
VERSION="$(valgrind --version)"
echo "instructions per notify (idle):  $NOTIFY"
echo "instructions per fetch_add loop: $FETCH_ADD"
echo "instructions per event_listener::Event::notify (idle): $EVENT_LISTENER"
echo "instructions per tokio::sync::Notify::notify_waiters (idle): $TOKIO_NOTIFY"
echo "(N = $N, $VERSION, difference of runs with N and 2N operations; loop overhead included in both)"

mkdir -p "$OUT_DIR"
cat >"$OUT_DIR/cachegrind.json" <<EOF
{
  "n": $N,
  "valgrind": "$VERSION",
  "command": "scripts/cachegrind.sh $N",
  "instructions_per_notify": $NOTIFY,
  "instructions_per_fetch_add": $FETCH_ADD,
  "instructions_per_event_listener_notify": $EVENT_LISTENER,
  "instructions_per_tokio_notify_waiters": $TOKIO_NOTIFY
}
EOF
