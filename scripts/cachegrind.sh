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
#        scripts/cachegrind.sh --idle-only [N]   (idle notify and fetch_add, and
#                                                this crate's fan-out to one
#                                                subscriber and wake of 16
#                                                waiters, only)
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

# Total and locked instructions of one run ("<total> <locked>"): mode, N, K.
# Callgrind with --dump-instr=yes counts executions per instruction address
# (its total is cachegrind's "I refs"); scripts/locked_count.py sums them and
# those of the locked instructions (`lock` prefix, `xchg` with memory).
irefs() {
    local out prof
    prof="$(mktemp)"
    out="$(valgrind --tool=callgrind --dump-instr=yes --callgrind-out-file="$prof" \
        "$BIN" "$1" "$2" "$3" 2>&1 >/dev/null)" || {
        echo "cachegrind.sh: $BIN $1 $2 $3 failed:" >&2
        echo "$out" >&2
        rm -f "$prof"
        exit 1
    }
    python3 scripts/locked_count.py "$prof"
    rm -f "$prof"
}

# Instructions and locked instructions per operation of `mode` run `n` times
# with `k` ("<instructions> <locked>"): (I(2n) - I(n)) / (n * k).
per_op() {
    local mode="$1" n="$2" k="$3" a b
    a="$(irefs "$mode" "$n" "$k")"
    b="$(irefs "$mode" "$((2 * n))" "$k")"
    if [[ -z "$a" || -z "$b" ]]; then
        echo "cachegrind.sh: could not read the instruction count for $mode" >&2
        exit 1
    fi
    awk -v a="$a" -v b="$b" -v n="$n" -v k="$k" 'BEGIN {
        split(a, x, " "); split(b, y, " ");
        printf "%.2f %.2f\n", (y[1] - x[1]) / (n * k), (y[2] - x[2]) / (n * k) }'
}

VERSION="$(valgrind --version)"
ROWS=()
# row scenario implementation k unit mode n
row() {
    local scenario="$1" impl="$2" k="$3" unit="$4" mode="$5" n="$6" v l
    read -r v l < <(per_op "$mode" "$n" "$k")
    printf '%-10s %-28s K=%-4s %8s instructions %6s locked per %s\n' "$scenario" "$impl" "$k" "$v" "$l" "$unit"
    ROWS+=("    {\"scenario\": \"$scenario\", \"implementation\": \"$impl\", \"k\": $k, \"per\": \"$unit\", \"mode\": \"$mode\", \"n\": $n, \"instructions\": $v, \"locked\": $l}")
}

# idle_row VAR implementation mode label: one idle-notify figure, printed as
# "instructions per <label> (idle): <n> (<l> locked)" (check_instructions.sh
# reads the crate's line) and kept in VAR for the JSON summary.
idle_row() {
    local var="$1" impl="$2" mode="$3" label="$4" v l
    read -r v l < <(per_op "$mode" "$N" 1)
    echo "instructions per $label (idle): $v ($l locked)"
    ROWS+=("    {\"scenario\": \"idle\", \"implementation\": \"$impl\", \"k\": 1, \"per\": \"notify\", \"mode\": \"$mode\", \"n\": $N, \"instructions\": $v, \"locked\": $l}")
    printf -v "$var" '%s' "$v"
}

idle_row NOTIFY notification-queue notify "notify"
idle_row FETCH_ADD atomic_fetch_add fetch_add "fetch_add loop"
EXTRA=""
if [[ $IDLE_ONLY == 0 ]]; then
    idle_row EVENT_LISTENER event_listener event_listener "event_listener::Event::notify"
    idle_row TOKIO_NOTIFY tokio_notify tokio_notify "tokio::sync::Notify::notify_waiters"
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
else
    # The fan-out and wake figures check_instructions.sh checks: this
    # crate, one subscriber (25,600 and 51,200 deliveries); 16 waiters
    # (1,000 and 2,000 cycles of 16).
    row fanout notification-queue 1 delivery fanout_crate 25600
    row wake notification-queue 16 waiter wake_crate 1000
fi
echo "(N = $N, $VERSION, difference of runs with N and 2N operations; loop overhead included)"

mkdir -p "$OUT_DIR"
{
    printf '{\n  "n": %s,\n  "valgrind": "%s (callgrind --dump-instr=yes)",\n  "command": "scripts/cachegrind.sh%s %s",\n' \
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
