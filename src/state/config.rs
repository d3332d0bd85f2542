//! [`Config`]: a queue's limits.

use crate::primitives::eventcount;

/// Limits of a [`NotificationQueue`](crate::NotificationQueue). Every limit is enforced with a typed
/// error, never a panic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Handles registered at once (default 1 << 20). This also bounds the
    /// slot table: each slot is a `CachePadded` (128 bytes on x86_64 and
    /// aarch64: two cache lines, so handles
    /// notified from different threads never share one) and slots come in
    /// doubling buckets, so the table holds at most about
    /// `256 * max_handles` bytes (128 MiB to 256 MiB at the default).
    pub max_handles: usize,
    /// Pending waits per handle (default 1024; values past `u32::MAX` act
    /// as `u32::MAX`).
    pub max_waiters_per_handle: usize,
    /// Subscriptions per handle (default 64).
    pub max_subscribers_per_handle: usize,
    /// Largest buffer a subscription may ask for (default 1 << 16).
    pub max_subscriber_capacity: usize,
    /// Handles whose slots are allocated up front (default 0, at most
    /// `max_handles`; as many as [`Config::memory_budget`] allows): registering
    /// up to this many handles at once allocates nothing (give `register`
    /// an `Arc<str>` hint to keep the hint from allocating too). Without
    /// `std`, a queue with any reservation also registers its epoch
    /// participants up front (32, about 2 KiB each), so that pins from many
    /// threads at once allocate nothing either.
    pub reserved_handles: usize,
    /// Waiter lists allocated up front (default 0). A handle's first wait
    /// of a registration takes a list; a list comes back for reuse when the
    /// handle is unregistered (and its last wait is gone), so with this many
    /// handles waited on at once, waiting allocates nothing. Reserved lists
    /// count against [`Config::memory_budget`] (as many are reserved as it
    /// allows; at most `max_handles`). Without a budget, up to 64 more
    /// lists freed by unregister are kept for reuse too.
    pub reserved_waiter_lists: usize,
    /// Waiter entries each reserved list holds up front (default 4, at most
    /// `max_waiters_per_handle`): that many waits on one handle at once
    /// allocate nothing.
    pub reserved_waiters_per_list: usize,
    /// Bytes the queue may hold on behalf of its clients at once (default
    /// `usize::MAX`: unlimited): slot buckets, waiter lists, subscription
    /// rings, the segments of pipes on this queue and the entries of
    /// [`KeyedQueue`](crate::KeyedQueue)s over it, all charged to this one
    /// budget. An operation that would pass it fails with
    /// [`QueueError::MemoryBudget`](crate::QueueError::MemoryBudget) (pipes:
    /// [`PipeError::Queue`](crate::mempipe::PipeError::Queue) carrying it)
    /// and changes nothing. Notify never allocates and never charges.
    /// [`Stats::budget`](crate::Stats::budget) reports what is held, by
    /// category, and the high-water mark.
    pub memory_budget: usize,
    /// Last generation a slot may be issued with (tests shrink it to reach
    /// slot retirement quickly; see [`Config::slot_generations`]).
    pub(crate) generation_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_handles: 1 << 20,
            max_waiters_per_handle: 1024,
            max_subscribers_per_handle: 64,
            max_subscriber_capacity: 1 << 16,
            reserved_handles: 0,
            reserved_waiter_lists: 0,
            reserved_waiters_per_list: 4,
            memory_budget: usize::MAX,
            generation_limit: eventcount::MAX_GENERATION,
        }
    }
}

impl Config {
    /// Sets [`Config::max_handles`].
    pub fn max_handles(mut self, n: usize) -> Self {
        self.max_handles = n;
        self
    }
    /// Sets [`Config::max_waiters_per_handle`].
    pub fn max_waiters_per_handle(mut self, n: usize) -> Self {
        self.max_waiters_per_handle = n;
        self
    }
    /// Sets [`Config::max_subscribers_per_handle`].
    pub fn max_subscribers_per_handle(mut self, n: usize) -> Self {
        self.max_subscribers_per_handle = n;
        self
    }
    /// Sets [`Config::max_subscriber_capacity`].
    pub fn max_subscriber_capacity(mut self, n: usize) -> Self {
        self.max_subscriber_capacity = n;
        self
    }
    /// Sets [`Config::reserved_handles`].
    pub fn reserve_handles(mut self, n: usize) -> Self {
        self.reserved_handles = n;
        self
    }
    /// Sets [`Config::reserved_waiter_lists`] and
    /// [`Config::reserved_waiters_per_list`]: `lists` handles with up to
    /// `waiters` waits each at once wait without allocating.
    pub fn reserve_waiters(mut self, lists: usize, waiters: usize) -> Self {
        self.reserved_waiter_lists = lists;
        self.reserved_waiters_per_list = waiters;
        self
    }
    /// Sets [`Config::memory_budget`] (bytes).
    pub fn memory_budget(mut self, bytes: usize) -> Self {
        self.memory_budget = bytes;
        self
    }
    /// How many handles one slot may carry before it is retired for good
    /// (clamped to `1..=2^23`, the default). Only tests and fuzzing want
    /// fewer: they reach slot retirement in a few cycles instead of 2^23.
    #[doc(hidden)]
    pub fn slot_generations(mut self, n: u32) -> Self {
        let n = n.clamp(1, eventcount::MAX_GENERATION / 2 + 1);
        // Handle generations are the odd numbers 1, 3, ..., 2n - 1.
        self.generation_limit = 2 * n - 1;
        self
    }
}
