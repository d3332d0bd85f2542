//! The [`NotificationQueue`] facade: configuration, register / unregister,
//! notify, statistics and the debug dump.
//!
//! The hot path is [`NotificationQueue::notify`]: a bucket-pointer load, a
//! load of the slot's state word, a store of the argument and one CAS (see
//! `eventcount` for why that is enough). Everything else here is cold.

use crate::eventcount::{self, WaiterList};
use crate::handle::{Handle, Slot, SlotTable};
use crate::sync::{Arc, AtomicU64, Collector, Guard, Hint, Ordering};
use crate::wait::QueueRef;
use crate::{QueueError, Snapshot, Wait};
use crossbeam_utils::CachePadded;

/// Limits of a [`NotificationQueue`]. Every limit is enforced with a typed
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
    /// Pending waits per handle (default 1024).
    pub max_waiters_per_handle: usize,
    /// Subscriptions per handle (default 64).
    pub max_subscribers_per_handle: usize,
    /// Largest buffer a subscription may ask for (default 1 << 16).
    pub max_subscriber_capacity: usize,
    /// Last generation a slot may be issued with (tests shrink it to reach
    /// slot retirement quickly; see [`Config::slot_generations`]).
    generation_limit: u32,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_handles: 1 << 20,
            max_waiters_per_handle: 1024,
            max_subscribers_per_handle: 64,
            max_subscriber_capacity: 1 << 16,
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

/// Slow-path counters. Each is touched only off the notify fast path.
#[derive(Debug, Default)]
pub(crate) struct Counters {
    pub(crate) slow_notifies: CachePadded<AtomicU64>,
    pub(crate) wakes: CachePadded<AtomicU64>,
    pub(crate) waker_panics: CachePadded<AtomicU64>,
    pub(crate) closes: CachePadded<AtomicU64>,
    /// Subscription counters (owned by `subscription`).
    pub(crate) delivered: CachePadded<AtomicU64>,
    pub(crate) dropped: CachePadded<AtomicU64>,
}

#[derive(Debug)]
pub(crate) struct Inner {
    pub(crate) config: Config,
    pub(crate) table: SlotTable,
    pub(crate) counters: Counters,
    pub(crate) collector: Collector,
}

/// A queue of notifications keyed by checked handles.
///
/// Cheap to clone (an `Arc`), `Send + Sync`. See the crate docs for the whole
/// life of a handle.
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
///
/// let queue = NotificationQueue::new(Config::default());
/// let h = queue.register("disk-irq").unwrap();
/// let snap = queue.snapshot(h).unwrap();
/// assert_eq!(queue.notify(h, 7), Ok(0)); // nobody waiting yet
/// let got = queue.wait_after(snap).wait().unwrap(); // completes at once
/// assert_eq!((got.arg, got.coalesced), (7, 1));
/// queue.unregister(h).unwrap();
/// assert!(queue.notify(h, 1).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct NotificationQueue {
    pub(crate) inner: Arc<Inner>,
}

/// A snapshot of the queue's counters ([`NotificationQueue::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Handles registered now.
    pub handles: usize,
    /// Notifications accepted since the queue was created (sum of the
    /// handles' sequence counters, so it costs notify nothing).
    pub notifications: u64,
    /// Notifies that found waiters or subscribers (took the slow path).
    pub slow_notifications: u64,
    /// Wakers woken.
    pub wakes: u64,
    /// Wakers that panicked while being woken (caught; others still woke).
    pub waker_panics: u64,
    /// Pending waits on all handles now.
    pub waiters: usize,
    /// Values delivered into subscription buffers.
    pub delivered: u64,
    /// Values subscribers lost: overwritten in a full keep-newest buffer,
    /// rejected by a full keep-oldest buffer, or arriving after a close.
    /// Each is reported to its subscriber as lag.
    pub dropped: u64,
    /// Slots retired for good because every generation they can carry was
    /// used (one per 2^23 register / unregister cycles of a slot): a stale
    /// handle can never match a newer one.
    pub exhausted_slots: usize,
    /// Bytes held by slots and waiter lists (not counting hints, subscriber
    /// rings or pipe buffers; see `Subscription::capacity` and
    /// `mempipe::Writer::footprint`).
    pub memory_bytes: usize,
}

/// One waiting client, as listed by [`NotificationQueue::waiters`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiterInfo {
    /// The hint given with [`Wait::with_hint`], if any.
    pub hint: Option<Hint>,
}

/// One registered handle, as listed by [`NotificationQueue::dump`].
#[derive(Debug, Clone)]
pub struct HandleInfo {
    /// The handle.
    pub handle: Handle,
    /// Its debug hint.
    pub hint: Hint,
    /// Its sequence (notifications so far).
    pub sequence: u64,
    /// Its pending waiters.
    pub waiters: Vec<WaiterInfo>,
    /// Its subscribers.
    pub subscribers: Vec<crate::SubscriberInfo>,
}

fn next_queue_id() -> u64 {
    // Identity only (never used to synchronise memory), so this counter is
    // the one atomic outside the `sync` shim: loom cannot host statics.
    // 64 bits never wrap (a billion queues a second for 584 years).
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

/// Frees the lists a slot still owns when the table is dropped.
pub(crate) fn release_slot_lists(slot: &Slot) {
    let p = slot.waiters.swap(core::ptr::null_mut(), Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: the slot owned one strong count of this `Arc` (stored with
        // `Arc::into_raw`); the table is being dropped, so no notifier can
        // read the pointer any more.
        drop(unsafe { Arc::from_raw(p) });
    }
    crate::subscription::release(slot);
}

/// A raw `Arc` pointer handed to the epoch collector.
struct Retired<T>(*const T);
// SAFETY: `T: Send + Sync`, so the `Arc<T>` the pointer stands for may be
// dropped on any thread; it is turned back into an `Arc` exactly once.
unsafe impl<T: Send + Sync> Send for Retired<T> {}

/// Drops a slot's reference to a list (`Arc::into_raw`; null is ignored)
/// once no pinned reader can hold it. Used for waiter and subscriber lists.
///
/// Flushes, which runs other code's deferred destructors (they may re-enter
/// this queue): never call it while holding a lock of the crate (checked in
/// debug builds), and pin for it only after unlocking.
pub(crate) fn retire<T: Send + Sync + 'static>(list: *const T, guard: &Guard) {
    if list.is_null() {
        return;
    }
    let retired = Retired(list);
    // SAFETY: `list` was unlinked from its slot by the caller's swap/CAS, so
    // readers that can still see it are pinned now; the deferred drop runs
    // after they unpin. The slot's strong count is released exactly once.
    unsafe {
        guard.defer_unchecked(move || {
            let r = retired;
            drop(Arc::from_raw(r.0));
        });
    }
    // Retiring is cold (unregister, list replacement): hand the thread's
    // deferred drops to the global queue now rather than when its local bag
    // fills, so retired lists are freed promptly instead of up to a bag (64
    // lists) late per thread. (Not nested: see `sync::flush`.)
    crate::sync::flush(guard);
}

impl NotificationQueue {
    /// A new queue with the given limits.
    pub fn new(config: Config) -> Self {
        Self {
            inner: Arc::new(Inner {
                config,
                table: SlotTable::new(next_queue_id()),
                counters: Counters::default(),
                collector: Collector::new(),
            }),
        }
    }

    /// The limits this queue was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// Registers a new handle with a debug hint.
    ///
    /// Fails with [`QueueError::HandleLimit`] once `max_handles` are live.
    pub fn register(&self, hint: impl Into<Hint>) -> Result<Handle, QueueError> {
        let inner = &*self.inner;
        let limit = inner.config.max_handles.min(u32::MAX as usize);
        let hint = hint.into();
        let mut reg = inner.table.lock_registry();
        if reg.live >= limit {
            return Err(QueueError::HandleLimit {
                limit: inner.config.max_handles,
            });
        }
        let index = match reg.free.pop_front() {
            Some(i) => i,
            None => {
                let i = reg.next_fresh;
                inner.table.ensure_bucket(i);
                reg.next_fresh += 1;
                reg.hints.push(None);
                i
            }
        };
        let Some(slot) = inner.table.slot_at(index) else {
            // Unreachable: `ensure_bucket` ran for every index handed out.
            reg.free.push_front(index);
            return Err(QueueError::HandleLimit { limit });
        };
        // Relaxed: only the registry-lock holder changes a free slot's
        // generation; racing RMWs from stale users cannot change it.
        let old = slot.state.load(Ordering::Relaxed);
        let generation = eventcount::generation(old).wrapping_add(1) & eventcount::GEN_MASK;
        // Release: the new generation is published with the slot reset.
        slot.state
            .store(eventcount::fresh(generation), Ordering::Release);
        reg.live += 1;
        if let Some(h) = reg.hints.get_mut(index as usize) {
            *h = Some(hint);
        }
        Ok(Handle {
            queue: inner.table.id,
            index,
            generation,
        })
    }

    /// Registers a handle that is unregistered when the guard drops.
    pub fn register_owned(&self, hint: impl Into<Hint>) -> Result<OwnedHandle, QueueError> {
        let handle = self.register(hint)?;
        Ok(OwnedHandle {
            queue: self.clone(),
            handle,
        })
    }

    /// Unregisters `handle`: its waiters complete with [`QueueError::Closed`],
    /// its subscriptions end after draining, and every later use of it fails
    /// with [`QueueError::StaleHandle`] (so a second unregister is an error).
    pub fn unregister(&self, handle: Handle) -> Result<(), QueueError> {
        let inner = &*self.inner;
        let slot = inner.table.slot(handle).ok_or(QueueError::StaleHandle)?;
        // Relaxed: validated by the CAS.
        let mut cur = slot.state.load(Ordering::Relaxed);
        loop {
            if eventcount::generation(cur) != handle.generation {
                return Err(QueueError::StaleHandle);
            }
            // AcqRel: Acquire sees waiter registrations published by their
            // RMW on the word (as in notify); Release orders the close
            // before waiters that read the new generation.
            match slot.state.compare_exchange_weak(
                cur,
                eventcount::retired(cur),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        // The close record, for waits that first look after the slot has
        // a new owner (until then the retired word itself keeps the final
        // sequence). Release: the slot is handed out again only after this
        // (through the registry lock below and register's Release store of
        // the new word), so a wait that reads the new owner's word sees it.
        slot.closed
            .store(eventcount::record(cur), Ordering::Release);
        let list = slot.waiters.swap(core::ptr::null_mut(), Ordering::AcqRel);
        if !list.is_null() {
            // Woken before pinning: a waker that blocks must not hold back
            // the reclamation of every other handle's retired lists.
            // SAFETY: the swap moved the slot's strong count to us, so the
            // list is alive until we retire it below.
            let count = unsafe { &*list }.wake_all();
            inner.note_wakes(count);
        }
        if !list.is_null() {
            let guard = crate::sync::pin(&inner.collector);
            retire(list, &guard);
        }
        crate::subscription::close_all(slot, inner);
        // Relaxed: a statistic.
        inner.counters.closes.fetch_add(1, Ordering::Relaxed);
        let mut reg = inner.table.lock_registry();
        reg.live = reg.live.saturating_sub(1);
        reg.retired_notifications = reg
            .retired_notifications
            .wrapping_add(eventcount::sequence(cur));
        if let Some(h) = reg.hints.get_mut(handle.index as usize) {
            *h = None;
        }
        if handle.generation.saturating_add(2) <= inner.config.generation_limit {
            reg.free.push_back(handle.index);
        } else {
            // Its generations are used up: never reuse it, so no later
            // handle can equal a stale one.
            reg.exhausted += 1;
        }
        Ok(())
    }

    /// Notifies `handle` with `arg`: wakes every pending waiter and delivers
    /// `arg` to every subscriber. Returns how many were woken or delivered to.
    ///
    /// Never blocks on a lock and never runs client code under a lock. It
    /// does run the wakers of this handle's waiters (after taking them out,
    /// with no lock held and no epoch pin), so a waker that blocks blocks
    /// *this* call until it returns; it never blocks notifies, waits,
    /// subscribes or unregisters of other handles (or of this one from other
    /// threads), nor the reclamation of memory. A waker that panics is
    /// caught and counted ([`Stats::waker_panics`]); the others still wake.
    /// Waiters are woken in the order of their entries (the oldest first,
    /// except that an entry freed by a finished wait is reused by the next).
    /// With nobody
    /// waiting or subscribed it is one CAS and allocates nothing.
    #[inline]
    pub fn notify(&self, handle: Handle, arg: i64) -> Result<usize, QueueError> {
        let inner = &*self.inner;
        let slot = inner.table.slot(handle).ok_or(QueueError::StaleHandle)?;
        // Relaxed: the CAS below validates what we read.
        let mut cur = slot.state.load(Ordering::Relaxed);
        loop {
            if eventcount::generation(cur) != handle.generation {
                return Err(QueueError::StaleHandle);
            }
            // Relaxed: published by the Release half of the CAS below.
            slot.arg(handle.generation).store(arg, Ordering::Relaxed);
            // AcqRel: Release publishes `arg` with the new sequence to
            // waiters that Acquire-load it; Acquire makes a waiter's waker
            // registration (published by its Release CAS that sets `WAITERS`) visible to
            // the wake scan.
            match slot.state.compare_exchange_weak(
                cur,
                eventcount::bumped(cur),
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if !eventcount::needs_slow_path(cur) {
            return Ok(0);
        }
        Ok(inner.notify_slow(slot, cur, arg))
    }

    /// Completes the longest-waiting pending wait of `handle` with `arg`,
    /// leaving the others pending, or leaves a permit if none is pending.
    /// Returns how many waits it completed (0 or 1).
    ///
    /// Like a futex `FUTEX_WAKE(1)` or tokio's `Notify::notify_one`, for a
    /// pool of workers waiting on one handle:
    /// - **First in, first out.** Waits are served in the order they first
    ///   registered (their first `Pending` poll), whichever waiter entry
    ///   they occupy. A wait completed this way reports `arg`, its
    ///   snapshot's sequence and `coalesced == 1`. The sequence is not
    ///   bumped, so a plain [`notify`](Self::notify) waiter is not woken.
    /// - **Permits.** With no wait pending, the handle keeps one permit (at
    ///   most one: further `notify_one`s coalesce into it, the latest `arg`
    ///   wins). The next wait of the handle that would otherwise sleep
    ///   (whatever its snapshot) takes it and completes at once with its
    ///   argument. A plain `notify` neither takes nor makes permits;
    ///   [`unregister`](Self::unregister) drops it.
    /// - **Cancellation.** A wait chosen by `notify_one` and dropped (or
    ///   completed by a plain notify) before it reports the argument passes
    ///   it on to the next waiting wait, or leaves it as the permit: a
    ///   `notify_one` is never lost to a cancelled wait.
    ///
    /// Lock-free; wakes at most one waker, with no lock held (see
    /// [`notify`](Self::notify) for what a waker may block). With nobody
    /// waiting it is two loads and one CAS and allocates nothing.
    pub fn notify_one(&self, handle: Handle, arg: i64) -> Result<usize, QueueError> {
        self.inner.notify_some(handle, arg, 1)
    }

    /// Completes the `n` longest-waiting pending waits of `handle` with
    /// `arg` (all of them if fewer wait) and returns how many it completed.
    /// If fewer than `n` were waiting it leaves one permit (never more).
    /// Exactly `n` times [`notify_one`](Self::notify_one) otherwise, in
    /// one call; `n == 0` only checks the handle.
    pub fn notify_n(&self, handle: Handle, arg: i64, n: usize) -> Result<usize, QueueError> {
        self.inner.notify_some(handle, arg, n)
    }

    /// The handle's current sequence: wait for "anything after this" with
    /// [`wait_after`](Self::wait_after).
    pub fn snapshot(&self, handle: Handle) -> Result<Snapshot, QueueError> {
        let slot = self
            .inner
            .table
            .slot(handle)
            .ok_or(QueueError::StaleHandle)?;
        // Acquire: a later check of the caller's own condition must see what
        // notifiers published before the sequence we record.
        let word = slot.state.load(Ordering::Acquire);
        if eventcount::generation(word) != handle.generation {
            return Err(QueueError::StaleHandle);
        }
        Ok(Snapshot {
            handle,
            sequence: eventcount::sequence(word),
        })
    }

    /// A wait for any notify after `snapshot`: completes at once if one
    /// already landed. A [`Future`](core::future::Future), and blocking via
    /// [`Wait::wait`], [`Wait::wait_timeout`] and [`Wait::wait_deadline`].
    pub fn wait_after(&self, snapshot: Snapshot) -> Wait<'_> {
        Wait::new(
            QueueRef::Borrowed(&self.inner),
            snapshot.handle,
            Ok(snapshot.sequence),
        )
    }

    /// A wait for the next notify of `handle` (snapshot now, then wait).
    pub fn wait(&self, handle: Handle) -> Wait<'_> {
        let seq = self.snapshot(handle).map(|s| s.sequence);
        Wait::new(QueueRef::Borrowed(&self.inner), handle, seq)
    }

    /// [`wait`](Self::wait) as a future that owns a clone of the queue
    /// (`Send + 'static`), for a spawned task or another thread.
    pub fn wait_owned(&self, handle: Handle) -> Wait<'static> {
        let seq = self.snapshot(handle).map(|s| s.sequence);
        Wait::new(QueueRef::Owned(self.inner.clone()), handle, seq)
    }

    /// [`wait_after`](Self::wait_after) as a future that owns a clone of
    /// the queue (`Send + 'static`).
    pub fn wait_after_owned(&self, snapshot: Snapshot) -> Wait<'static> {
        Wait::new(
            QueueRef::Owned(self.inner.clone()),
            snapshot.handle,
            Ok(snapshot.sequence),
        )
    }

    /// Whether `handle` is registered (its generation is current).
    pub fn is_registered(&self, handle: Handle) -> bool {
        self.snapshot(handle).is_ok()
    }

    /// Pending waiters of `handle` with their hints (the old `get_waits`).
    pub fn waiters(&self, handle: Handle) -> Result<Vec<WaiterInfo>, QueueError> {
        let inner = &*self.inner;
        let slot = inner.table.slot(handle).ok_or(QueueError::StaleHandle)?;
        self.snapshot(handle)?;
        Ok(inner.waiter_infos(slot, handle.generation))
    }

    /// Every registered handle with its hint, waiters and subscribers.
    pub fn dump(&self) -> Vec<HandleInfo> {
        let inner = &*self.inner;
        let hints: Vec<(u32, Hint)> = {
            let reg = inner.table.lock_registry();
            reg.hints
                .iter()
                .enumerate()
                .filter_map(|(i, h)| h.clone().map(|h| (i as u32, h)))
                .collect()
        };
        let mut out = Vec::with_capacity(hints.len());
        for (index, hint) in hints {
            let Some(slot) = inner.table.slot_at(index) else {
                continue;
            };
            // Acquire: as in `snapshot`.
            let word = slot.state.load(Ordering::Acquire);
            let generation = eventcount::generation(word);
            if generation % 2 == 0 {
                continue; // unregistered since we read the hints
            }
            let handle = Handle {
                queue: inner.table.id,
                index,
                generation,
            };
            out.push(HandleInfo {
                handle,
                hint,
                sequence: eventcount::sequence(word),
                waiters: inner.waiter_infos(slot, generation),
                subscribers: crate::subscription::infos(self, handle),
            });
        }
        out
    }

    /// The queue's counters. Walks the slot table (O(slots)); meant for
    /// monitoring, not hot paths.
    pub fn stats(&self) -> Stats {
        let inner = &*self.inner;
        let (handles, retired, exhausted_slots) = {
            let reg = inner.table.lock_registry();
            (reg.live, reg.retired_notifications, reg.exhausted)
        };
        let mut notifications = retired;
        let mut waiters = 0;
        let mut memory = inner.table.slot_bytes();
        let guard = crate::sync::pin(&inner.collector);
        inner.table.for_each_slot(|_, slot| {
            // Relaxed: statistics.
            let word = slot.state.load(Ordering::Relaxed);
            if eventcount::generation(word) % 2 == 1 {
                notifications = notifications.wrapping_add(eventcount::sequence(word));
            }
            // Acquire: see the list's initialisation.
            let list = slot.waiters.load(Ordering::Acquire);
            if !list.is_null() {
                // SAFETY: pinned; retired lists are freed after unpinning.
                let list = unsafe { &*list };
                waiters += list.len();
                memory += list.footprint();
            }
        });
        drop(guard);
        let c = &inner.counters;
        // Relaxed: statistics.
        Stats {
            handles,
            notifications,
            slow_notifications: c.slow_notifies.load(Ordering::Relaxed),
            wakes: c.wakes.load(Ordering::Relaxed),
            waker_panics: c.waker_panics.load(Ordering::Relaxed),
            waiters,
            delivered: c.delivered.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            exhausted_slots,
            memory_bytes: memory,
        }
    }
}

impl Inner {
    #[cold]
    #[inline(never)]
    fn notify_slow(&self, slot: &Slot, prev: u64, arg: i64) -> usize {
        // Relaxed: statistic.
        self.counters.slow_notifies.fetch_add(1, Ordering::Relaxed);
        let mut n = 0;
        if prev & eventcount::WAITERS != 0 {
            // Wakers are taken out under a short epoch pin and woken after
            // it ends, in batches: a waker that blocks must not hold back the
            // reclamation of every other handle's retired lists.
            let mut count = eventcount::WakeCount::default();
            let mut batch = eventcount::WakeBatch::new();
            let mut from = 0;
            let mut first: *const WaiterList = core::ptr::null();
            loop {
                let next = {
                    let _guard = crate::sync::pin(&self.collector);
                    // Acquire pairs with the Release CAS that installed the list.
                    let list = slot.waiters.load(Ordering::Acquire);
                    if list.is_null() || (!first.is_null() && !core::ptr::eq(list, first)) {
                        // Gone or replaced since the last batch: unregister
                        // (or the next generation) has woken its waiters.
                        break;
                    }
                    first = list;
                    // SAFETY: pinned; the slot's reference is only released
                    // through `retire`, after this pin ends.
                    unsafe { &*list }.take_wakers(from, &mut batch)
                };
                count.add(batch.wake());
                match next {
                    Some(i) => from = i,
                    None => break,
                }
            }
            self.note_wakes(count);
            n += count.woken;
        }
        if prev & eventcount::SUBSCRIBED != 0 {
            n += crate::subscription::deliver(slot, prev, arg, self);
        }
        n
    }

    /// `notify_one` / `notify_n`: completes up to `n` of the oldest waits,
    /// then leaves a permit if it completed fewer (see `notify_oldest` for
    /// why no registration racing with the permit is missed).
    pub(crate) fn notify_some(
        &self,
        handle: Handle,
        arg: i64,
        n: usize,
    ) -> Result<usize, QueueError> {
        let slot = self.table.slot(handle).ok_or(QueueError::StaleHandle)?;
        let mut done = 0;
        // Acquire: as in the waiter's first look; the CASes below check it.
        let mut word = slot.state.load(Ordering::Acquire);
        loop {
            if eventcount::generation(word) != handle.generation {
                // Unregistered meanwhile: its waits complete as closed.
                return if done > 0 {
                    Ok(done)
                } else {
                    Err(QueueError::StaleHandle)
                };
            }
            if done >= n {
                return Ok(done);
            }
            let mut seen_claims = None;
            if word & eventcount::WAITERS != 0 {
                loop {
                    let mut batch = eventcount::WakeBatch::new();
                    let (got, claims) = {
                        let _guard = crate::sync::pin(&self.collector);
                        // Acquire pairs with the Release CAS that installed it.
                        let list = slot.waiters.load(Ordering::Acquire);
                        // SAFETY: pinned; the slot's reference is only
                        // released through `retire`, after this pin ends.
                        match unsafe { list.as_ref() } {
                            Some(list) if list.generation == handle.generation => {
                                list.notify_oldest(n - done, arg, &mut batch)
                            }
                            _ => (0, 0),
                        }
                    };
                    // A full batch may have cut the scan short: go on after
                    // waking it.
                    let more = batch.is_full();
                    let count = batch.wake();
                    self.note_wakes(count);
                    done += got;
                    seen_claims = Some(claims);
                    if done >= n || !more {
                        break;
                    }
                }
                if done >= n {
                    return Ok(done);
                }
            }
            // Leave (or renew) the permit. The CAS runs even if the bit is
            // set: it is what orders us after a waiter's registration RMW.
            // Relaxed: published by the Release half of the CAS below.
            slot.permit_arg(handle.generation)
                .store(arg, Ordering::Relaxed);
            // AcqRel: Release publishes the permit's argument to the wait
            // that takes it; Acquire makes the claims of waiters that
            // registered before us visible to the check below.
            match slot.state.compare_exchange(
                word,
                word | eventcount::PERMIT,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => word |= eventcount::PERMIT,
                Err(actual) => {
                    word = actual;
                    continue;
                }
            }
            let Some(before) = seen_claims else {
                // `WAITERS` was clear in the word we replaced: no wait had
                // registered, and any later one sees the permit.
                return Ok(done);
            };
            let now = {
                let _guard = crate::sync::pin(&self.collector);
                // Acquire pairs with the Release CAS that installed it.
                let list = slot.waiters.load(Ordering::Acquire);
                // SAFETY: pinned (as above).
                unsafe { list.as_ref() }.map_or(before, |l| l.claims())
            };
            if now == before {
                return Ok(done);
            }
            // A wait may have registered between our scan and our CAS without
            // seeing the permit: take the permit back (if nobody took it) and
            // look again.
            loop {
                if eventcount::generation(word) != handle.generation
                    || word & eventcount::PERMIT == 0
                {
                    // Closed, or a wait took the permit: delivered.
                    return Ok(done);
                }
                // AcqRel: as the CAS above (we rescan after it).
                match slot.state.compare_exchange(
                    word,
                    word & !eventcount::PERMIT,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => {
                        word &= !eventcount::PERMIT;
                        break;
                    }
                    Err(actual) => word = actual,
                }
            }
        }
    }

    pub(crate) fn note_wakes(&self, count: eventcount::WakeCount) {
        // Relaxed: statistics.
        if count.woken > 0 {
            self.counters
                .wakes
                .fetch_add(count.woken as u64, Ordering::Relaxed);
        }
        self.note_panics(count.panicked as u64);
    }

    /// Counts wakers that panicked (caught; the others still woke).
    pub(crate) fn note_panics(&self, panicked: u64) {
        if panicked > 0 {
            // Relaxed: a statistic.
            self.counters
                .waker_panics
                .fetch_add(panicked, Ordering::Relaxed);
        }
    }

    fn waiter_infos(&self, slot: &Slot, generation: u32) -> Vec<WaiterInfo> {
        let _guard = crate::sync::pin(&self.collector);
        // Acquire: see the list's initialisation.
        let list = slot.waiters.load(Ordering::Acquire);
        if list.is_null() {
            return Vec::new();
        }
        // SAFETY: pinned (see `notify_slow`).
        let list = unsafe { &*list };
        if list.generation != generation {
            return Vec::new();
        }
        list.hints()
            .into_iter()
            .map(|hint| WaiterInfo { hint })
            .collect()
    }

    /// This generation's waiter list, created on first use. Returns a new
    /// strong reference, or `None` if `generation` is no longer the slot's
    /// (then the wait is over: the caller re-reads the word).
    ///
    /// A stale caller never replaces or removes a newer generation's list:
    /// generations of a slot only grow (see `eventcount`), so a list of a
    /// newer generation ends the search, and a list this call installed is
    /// taken back out if the generation moved on meanwhile.
    pub(crate) fn waiter_list(&self, slot: &Slot, generation: u32) -> Option<Arc<WaiterList>> {
        let guard = crate::sync::pin(&self.collector);
        loop {
            // Acquire pairs with the Release CAS that installed the list.
            let cur = slot.waiters.load(Ordering::Acquire);
            // SAFETY: pinned; a non-null pointer is a live `Arc` allocation
            // whose slot reference is only released through `retire`.
            if let Some(list) = unsafe { cur.as_ref() } {
                if list.generation == generation {
                    // SAFETY: the slot's strong count keeps the allocation
                    // alive while we are pinned, so adding one is sound.
                    unsafe { Arc::increment_strong_count(cur) };
                    // SAFETY: the count we just added is owned by the result.
                    return Some(unsafe { Arc::from_raw(cur) });
                }
                if list.generation > generation {
                    return None;
                }
            }
            // Acquire: a generation change seen here is ordered before the
            // install below, so a list is only installed for a generation
            // that was current after `cur` was read.
            if eventcount::generation(slot.state.load(Ordering::Acquire)) != generation {
                return None;
            }
            let fresh = Arc::new(WaiterList::new(
                generation,
                self.config.max_waiters_per_handle,
            ));
            let raw = Arc::into_raw(fresh.clone()).cast_mut();
            // AcqRel: Release publishes the list's initialisation; Acquire on
            // failure reads the winner's.
            match slot
                .waiters
                .compare_exchange(cur, raw, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    retire(cur, &guard);
                    // Acquire: an unregister whose swap of the list pointer
                    // came before our CAS did not see our list; our CAS read
                    // its Release swap (or a later RMW), so its earlier CAS on
                    // the word is visible here and we take the list back out
                    // ourselves. A later swap finds our list and retires it.
                    if eventcount::generation(slot.state.load(Ordering::Acquire)) != generation
                        && slot
                            .waiters
                            .compare_exchange(
                                raw,
                                core::ptr::null_mut(),
                                Ordering::AcqRel,
                                Ordering::Relaxed,
                            )
                            .is_ok()
                    {
                        retire(raw, &guard);
                        return None;
                    }
                    return Some(fresh);
                }
                Err(_) => {
                    // SAFETY: `raw` was never published; reclaim its count.
                    drop(unsafe { Arc::from_raw(raw) });
                }
            }
        }
    }

    /// The outcome for a wait of `generation` from sequence `start` once the
    /// word shows another generation: the notify it has not seen yet if the
    /// last close record is its generation's and ends past `start`, else
    /// `Closed`.
    pub(crate) fn closed_outcome(
        &self,
        slot: &Slot,
        generation: u32,
        start: u64,
        word: u64,
    ) -> Result<crate::Notified, QueueError> {
        let freed = generation.wrapping_add(1) & eventcount::GEN_MASK;
        let reused = eventcount::generation(word) != freed;
        let record = if reused {
            // Acquire: the caller saw a later owner's word (Acquire), whose
            // register came after the Release store of the record; this
            // load sees that record or a later one.
            let record = slot.closed.load(Ordering::Acquire);
            if eventcount::generation(record) != generation {
                return Err(QueueError::Closed);
            }
            record
        } else {
            // Not yet reused: the retired word keeps the final sequence.
            word
        };
        let sequence = eventcount::sequence(record);
        if sequence == start {
            return Err(QueueError::Closed);
        }
        // Relaxed: ordered after the Acquire load of the word (or record),
        // which the generation's last notify's Release CAS precedes; its
        // argument store precedes that CAS.
        let arg = slot.arg(generation).load(Ordering::Relaxed);
        if reused {
            // The cell is reused only by the owner `ARG_CELLS` generations
            // on, registered after `ARG_CELLS - 1` later closes, each of
            // which rewrites the record first: re-reading it catches a
            // reader that was preempted that long. Acquire fence: keeps the
            // re-read after the cell read.
            crate::sync::fence(Ordering::Acquire);
            // Relaxed: ordered by the fence above.
            if slot.closed.load(Ordering::Relaxed) != record {
                return Err(QueueError::Closed);
            }
        }
        Ok(crate::Notified {
            sequence,
            arg,
            coalesced: eventcount::distance(start, sequence),
        })
    }
}

/// A registered handle that unregisters itself when dropped.
///
/// Derefs to [`Handle`]; [`OwnedHandle::into_handle`] gives up ownership.
#[derive(Debug)]
pub struct OwnedHandle {
    queue: NotificationQueue,
    handle: Handle,
}

impl OwnedHandle {
    /// The handle.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Stops owning the handle: it stays registered.
    pub fn into_handle(self) -> Handle {
        self.into_handle_inner().1
    }

    /// Unregisters now.
    pub fn unregister(self) -> Result<(), QueueError> {
        let h = self.into_handle_inner();
        h.0.unregister(h.1)
    }

    fn into_handle_inner(self) -> (NotificationQueue, Handle) {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never dropped, so the queue is moved out once.
        let queue = unsafe { core::ptr::read(&me.queue) };
        (queue, me.handle)
    }
}

impl core::ops::Deref for OwnedHandle {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for OwnedHandle {
    fn drop(&mut self) {
        // Already unregistered by hand is fine: stale is the expected result.
        let _ = self.queue.unregister(self.handle);
    }
}
