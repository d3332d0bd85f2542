#!/usr/bin/env bash
# Instructions per operation, counted exactly by cachegrind (no hardware
# counters needed, and independent of what a locked RMW or a cache miss
# costs on the CPU at hand), for this crate and each peer in three
# scenarios, all from examples/notify_fastpath.rs (release build) under
# `valgrind --tool=cachegrind --cache-sim=no`:
#   - idle notify (nobody waiting): `notify`, the bare `fetch_add` floor,
#     event-listener `Event::notify`, tokio `Notify::notify_waiters`;
#     per notify;
#   - wake K = 1, 16, 256 async waiters (create, poll, notify, poll to
#     ready): this crate, tokio `Notify` (`notify_waiters`), event-listener;
#     per waiter;
#   - fan-out to K = 1, 8, 64 subscribers (send, then drain every
#     subscriber): this crate's subscriptions, tokio `broadcast`; per
#     delivery.
# Each mode runs with N and 2N operations and the difference of the two
# instruction totals is divided by N (times K), so set-up, tear-down and
# lazy first-use allocations cancel out. Loop and `black_box` overhead is
# included in every figure.
#
# Usage: scripts/cachegrind.sh [N]          (default N = 1000000 idle notifies;
#                                            wake and fan-out use N/10 waiters
#                                            or deliveries per run)
#        scripts/cachegrind.sh --idle-only [N]   (idle notify and fetch_add only)
# Writes <criterion dir>/cachegrind.json for scripts/bench_report.py, where
# the criterion dir is $CRITERION_HOME or ${CARGO_TARGET_DIR:-target}/criterion.
set -euo pipefail
cd "$(dirname "$0")/.."

IDLE_ONLY=0
if [[ "${1:-}" == --idle-only ]]; then IDLE_ONLY=1; shift; fi
N="${1:-1000000}"
TARGET_DIR="${CARGO_TARGET_DIR:-target}"
OUT_DIR="${CRITERION_HOME:-$TARGET_DIR/criterion}"
command -v valgrind >/dev/null || { echo "cachegrind.sh: valgrind not found" >&2; exit 1; }

cargo build --release --example notify_fastpath >&2
BIN="$TARGET_DIR/release/examples/notify_fastpath"

# Total instructions ("I refs") of one run: mode, N, K.
irefs() {
    local out
    out="$(valgrind --tool=cachegrind --cache-sim=no --cachegrind-out-file=/dev/null \
        "$BIN" "$1" "$2" "$3" 2>&1 >/dev/null)" || {
        echo "cachegrind.sh: $BIN $1 $2 $3 failed:" >&2
        echo "$out" >&2
        exit 1
    }
    sed -n 's/^==[0-9]*== I *refs: *\([0-9,]*\).*/\1/p' <<<"$out" | tr -d ,
}

# Instructions per operation of `mode` run `n` times with `k`:
# (I(2n) - I(n)) / (n * k).
per_op() {
    local mode="$1" n="$2" k="$3" a b
    a="$(irefs "$mode" "$n" "$k")"
    b="$(irefs "$mode" "$((2 * n))" "$k")"
    if [[ -z "$a" || -z "$b" ]]; then
        echo "cachegrind.sh: could not read the instruction count for $mode" >&2
        exit 1
    fi
    awk -v a="$a" -v b="$b" -v n="$n" -v k="$k" 'BEGIN { printf "%.2f", (b - a) / (n * k) }'
}

VERSION="$(valgrind --version)"
ROWS=()
# row scenario implementation k unit mode n
row() {
    local scenario="$1" impl="$2" k="$3" unit="$4" mode="$5" n="$6" v
    v="$(per_op "$mode" "$n" "$k")"
    printf '%-10s %-28s K=%-4s %8s instructions per %s\n' "$scenario" "$impl" "$k" "$v" "$unit"
    ROWS+=("    {\"scenario\": \"$scenario\", \"implementation\": \"$impl\", \"k\": $k, \"per\": \"$unit\", \"mode\": \"$mode\", \"n\": $n, \"instructions\": $v}")
}

NOTIFY="$(per_op notify "$N" 1)"
FETCH_ADD="$(per_op fetch_add "$N" 1)"
echo "instructions per notify (idle):  $NOTIFY"
echo "instructions per fetch_add loop: $FETCH_ADD"
ROWS+=("    {\"scenario\": \"idle\", \"implementation\": \"notification-queue\", \"k\": 1, \"per\": \"notify\", \"mode\": \"notify\", \"n\": $N, \"instructions\": $NOTIFY}")
ROWS+=("    {\"scenario\": \"idle\", \"implementation\": \"atomic_fetch_add\", \"k\": 1, \"per\": \"notify\", \"mode\": \"fetch_add\", \"n\": $N, \"instructions\": $FETCH_ADD}")
EXTRA=""
if [[ $IDLE_ONLY == 0 ]]; then
    EVENT_LISTENER="$(per_op event_listener "$N" 1)"
    TOKIO_NOTIFY="$(per_op tokio_notify "$N" 1)"
    echo "instructions per event_listener::Event::notify (idle): $EVENT_LISTENER"
    echo "instructions per tokio::sync::Notify::notify_waiters (idle): $TOKIO_NOTIFY"
    ROWS+=("    {\"scenario\": \"idle\", \"implementation\": \"event_listener\", \"k\": 1, \"per\": \"notify\", \"mode\": \"event_listener\", \"n\": $N, \"instructions\": $EVENT_LISTENER}")
    ROWS+=("    {\"scenario\": \"idle\", \"implementation\": \"tokio_notify\", \"k\": 1, \"per\": \"notify\", \"mode\": \"tokio_notify\", \"n\": $N, \"instructions\": $TOKIO_NOTIFY}")
    EXTRA=$(printf ',\n  "instructions_per_event_listener_notify": %s,\n  "instructions_per_tokio_notify_waiters": %s' \
        "$EVENT_LISTENER" "$TOKIO_NOTIFY")

    TOTAL=$((N / 10))
    for k in 1 16 256; do
        cycles=$(( TOTAL / k > 0 ? TOTAL / k : 1 ))
        row wake notification-queue "$k" waiter wake_crate "$cycles"
        row wake tokio_notify "$k" waiter wake_tokio "$cycles"
        row wake event_listener "$k" waiter wake_event_listener "$cycles"
    done
    for k in 1 8 64; do
        # Whole batches of 256 sends, so N and 2N drain the same way.
        sends=$(( (TOTAL / k) / 256 * 256 ))
        (( sends > 0 )) || sends=256
        row fanout notification-queue "$k" delivery fanout_crate "$sends"
        row fanout tokio-broadcast "$k" delivery fanout_tokio "$sends"
    done
fi
echo "(N = $N, $VERSION, difference of runs with N and 2N operations; loop overhead included)"

mkdir -p "$OUT_DIR"
{
    printf '{\n  "n": %s,\n  "valgrind": "%s",\n  "command": "scripts/cachegrind.sh%s %s",\n' \
        "$N" "$VERSION" "$([[ $IDLE_ONLY == 1 ]] && echo ' --idle-only')" "$N"
    printf '  "instructions_per_notify": %s,\n  "instructions_per_fetch_add": %s%s,\n' \
        "$NOTIFY" "$FETCH_ADD" "$EXTRA"
    printf '  "rows": [\n'
    for i in "${!ROWS[@]}"; do
        printf '%s%s\n' "${ROWS[$i]}" "$([[ $i -lt $((${#ROWS[@]} - 1)) ]] && echo ,)"
    done
    printf '  ]\n}\n'
} >"$OUT_DIR/cachegrind.json"
echo "wrote $OUT_DIR/cachegrind.json"
