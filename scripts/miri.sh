#!/usr/bin/env bash
# Miri (nightly) over the library's unit tests and a subset of the
# integration tests: the single-threaded and few-thread ones that touch every
# unsafe path (slot table, waiter lists and their epoch retirement, wait
# futures, subscription rings and lists, MemPipe segments and reclamation).
# The long stress tests are left out (Miri runs ~1000x slower).
#
#   scripts/miri.sh            # the subset below
#   scripts/miri.sh --all      # every unit and integration test (slow)
#
# crossbeam-epoch needs -Zmiri-tree-borrows and leaks its global collector
# on purpose, hence -Zmiri-ignore-leaks. Not run in CI (needs nightly+miri):
#   rustup toolchain install nightly --component miri rust-src
set -euo pipefail
cd "$(dirname "$0")/.."
export MIRIFLAGS="${MIRIFLAGS:--Zmiri-tree-borrows -Zmiri-ignore-leaks}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
if ! cargo +nightly miri --version >/dev/null 2>&1; then
  rustup component add --toolchain nightly miri rust-src
fi
cargo +nightly miri setup
# `miri --test FILE -- NAME...`: every NAME must be a test in tests/FILE.rs
# (a filter that matches nothing runs nothing, without an error, so a
# renamed test would silently leave the subset).
miri() {
  echo "=== miri $*"
  if [ "${1:-}" = "--test" ]; then
    local file="tests/$2.rs" name
    for name in "${@:4}"; do
      grep -q "fn $name(" "$file" || { echo "miri.sh: no test $name in $file" >&2; exit 1; }
    done
  fi
  cargo +nightly miri test "$@"
}

if [ "${1:-}" = "--all" ]; then
  miri --lib --tests
  exit
fi

miri --lib
miri --test queue -- \
  notify_before_wait_completes_at_once_and_reports_coalesced \
  wait_for_next_ignores_earlier_notifies \
  async_wait_is_woken_by_notify_from_another_thread \
  dropping_a_pending_wait_releases_its_entry \
  completed_wait_releases_its_entry \
  stale_handle_after_slot_reuse_is_rejected_everywhere \
  handles_of_another_queue_are_stale \
  unregister_wakes_every_async_waiter_with_closed \
  owned_handle_unregisters_on_drop \
  handle_limit_is_typed_and_recovers \
  waiter_limit_is_typed_and_recovers \
  panicking_waker_neither_poisons_nor_blocks_the_others \
  debug_dump_lists_handles_waiters_and_hints \
  stats_count_notifications_and_wakes
miri --test waker_panics
miri --test waker_locks
miri --test subscription -- \
  values_arrive_in_order_per_subscriber \
  overflow_keeps_newest_and_reports_exact_lag \
  overflow_keep_oldest_rejects_and_reports_exact_lag \
  dropping_unsubscribes_and_frees_the_limit \
  unregister_ends_subscriptions_after_drain \
  new_owner_of_a_slot_never_sees_old_subscribers \
  every_error_case_is_typed \
  async_recv_is_woken_and_cancel_safe \
  panicking_receiver_waker_does_not_stop_delivery \
  subscription_moves_to_another_thread \
  dump_lists_subscribers_with_hints_and_depths \
  subscribers_sharing_a_buffer_keep_their_own_positions \
  rings_of_mixed_capacities_and_policies_keep_their_own_limits \
  smaller_rings_share_larger_cells_and_keep_their_own_capacity
miri --test mempipe -- \
  hello_world_chunks_for_three_readers \
  late_reader_starts_at_zero_even_after_close \
  empty_write_returns_zero_and_wakes_nobody \
  write_after_close_is_ebadf_even_empty \
  failed_writer_readers_drain_then_epipe_with_errno \
  reader_errors_are_private_and_take_precedence \
  write_with_no_readers_left_is_epipe \
  byte_limit_writes_what_fits_then_full \
  reader_limit_and_initial_capacity \
  preallocated_capacity_is_used_before_allocating \
  dropping_the_writer_closes \
  embedded_io_blocking_traits \
  std_io_traits
