//! The shared state of one queue ([`Inner`]) and the operations on it:
//! register, unregister, notify (all three kinds), snapshots, the fan-out
//! to subscribers ([`fanout`]) and the debug views. The public facade
//! (`NotificationQueue`) and the client types (waits, subscriptions) call
//! into this; it calls only into the primitives below it.
//!
//! The hot path is [`Inner::notify`]: a bucket-pointer load, a load of the
//! slot's state word, a store of the argument and one CAS (see `eventcount`
//! for why that is enough). Everything else here is cold.

mod config;
pub(crate) mod fanout;

use alloc::vec::Vec;
pub use config::Config;
pub use fanout::SubscribeOptions;

use crate::error::QueueError;
use crate::primitives::budget::{Budget, BudgetStats};
use crate::primitives::eventcount::{self, ListPool, WaiterList};
use crate::primitives::slots::{Handle, Slot, SlotTable};
use crate::sync::reclaim;
use crate::sync::{Arc, AtomicU64, Collector, Guard, Hint, Ordering};
use crate::trace;
use crossbeam_utils::CachePadded;

/// Waiter lists kept for reuse beyond the configured reserve (without a
/// memory budget): enough that a steady churn of handles waited on
/// allocates nothing, at a few hundred bytes each.
const KEPT_WAITER_LISTS: usize = 64;

/// Adds `n` to a statistics counter of one slot with a load and a store, not
/// a read-modify-write: a locked instruction on every notify with waiters
/// or subscribers would cost more than the rest of some of those notifies.
/// Exact unless notifies of one handle race; then one may count over
/// another's, and the total comes out lower (see `Stats`).
#[inline(always)]
fn count_without_rmw(counter: &AtomicU64, n: u64) {
    // Relaxed: a statistic, read only by `stats`.
    counter.store(
        counter.load(Ordering::Relaxed).wrapping_add(n),
        Ordering::Relaxed,
    );
}

/// Slow-path counters. Each is touched only off the notify fast path, and
/// none on every slow notify (those are per slot: `Slot::slow`,
/// `Slot::wakes`).
#[derive(Debug, Default)]
pub(crate) struct Counters {
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
    /// Waiter lists kept for reuse (see `ListPool`).
    pub(crate) lists: Arc<ListPool>,
    /// What clients' allocations are charged to (`Config::memory_budget`);
    /// shared with the waiter lists and rings that release into it when
    /// they are freed, possibly after the queue.
    pub(crate) budget: Arc<Budget>,
}

/// A snapshot of the queue's counters ([`NotificationQueue::stats`](crate::NotificationQueue::stats)).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Handles registered now.
    pub handles: usize,
    /// Notifications accepted since the queue was created (sum of the
    /// handles' sequence counters, so it costs notify nothing).
    pub notifications: u64,
    /// Notifies that found waiters or subscribers (took the slow path).
    /// Counted per handle without a locked instruction, so notifies of one
    /// handle that race may be counted once between them: exact when a
    /// handle's notifies do not overlap, a lower bound when they do.
    pub slow_notifications: u64,
    /// Wakers woken (by notifies and unregister; counted like
    /// `slow_notifications`).
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
    /// `mempipe::Writer::footprint`, and [`budget`](Self::budget) for
    /// everything charged to the memory budget).
    pub memory_bytes: usize,
    /// Bytes held against [`Config::memory_budget`], by category, with the
    /// high-water mark and the limit.
    pub budget: BudgetStats,
}

/// One waiting client, as listed by [`NotificationQueue::waiters`](crate::NotificationQueue::waiters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WaiterInfo {
    /// The hint given with [`Wait::with_hint`](crate::Wait::with_hint), if any.
    pub hint: Option<Hint>,
}

/// One registered handle, as listed by [`NotificationQueue::dump`](crate::NotificationQueue::dump).
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
    static NEXT: core::sync::atomic::AtomicU64 = core::sync::atomic::AtomicU64::new(1);
    NEXT.fetch_add(1, core::sync::atomic::Ordering::Relaxed)
}

/// A handle's sequence at one moment ([`NotificationQueue::snapshot`]).
///
/// [`NotificationQueue::snapshot`]: crate::NotificationQueue::snapshot
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Snapshot {
    pub(crate) handle: Handle,
    pub(crate) sequence: u64,
}

impl Snapshot {
    /// The handle this snapshot is of.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The sequence (number of notifies of this handle so far, mod 2^37).
    pub fn sequence(&self) -> u64 {
        self.sequence
    }
}

/// What a completed wait saw.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Notified {
    /// The handle's sequence when the wait completed (a wait completed by
    /// `notify_one` or a permit reports its snapshot's sequence, and
    /// `coalesced == 1`).
    pub sequence: u64,
    /// The argument of the latest notify (see below), or of the
    /// `notify_one` (or its permit) that completed this wait.
    ///
    /// With one notifier per handle this is exactly the argument of the
    /// notify that produced `sequence`. Notifiers racing on one handle
    /// store their arguments before their CASes, so it may then be the
    /// argument of a notify that has not yet bumped the sequence.
    pub arg: i64,
    /// Notifies since the snapshot: how many this wake coalesced. Always at
    /// least 1. Counted modulo 2^37 (like [`Snapshot::sequence`]): only a
    /// wait first polled more than 2^37 notifies (over 1.3 * 10^11) after
    /// its snapshot can read a smaller count, and one polled exactly a
    /// multiple of 2^37 notifies after it sees no change and waits for the
    /// next notify.
    pub coalesced: u64,
}

impl Inner {
    /// A queue's state with the given limits.
    pub(crate) fn new(config: Config) -> Self {
        let limit = config.max_waiters_per_handle;
        let budget = Arc::new(Budget::new(config.memory_budget));
        let inner = Self {
            config,
            table: SlotTable::new(next_queue_id()),
            counters: Counters::default(),
            collector: Collector::new(),
            // With a finite budget only the reserve is kept: a list freed
            // by unregister then makes room in the budget again at once.
            lists: Arc::new(ListPool::new(
                if config.memory_budget == usize::MAX {
                    KEPT_WAITER_LISTS
                } else {
                    0
                },
                // No more lists than handles can hold them at once.
                config.reserved_waiter_lists.min(config.max_handles),
                config.reserved_waiters_per_list,
                limit,
                &budget,
            )),
            budget,
        };
        inner.table.reserve(
            config.reserved_handles.min(config.max_handles),
            &inner.budget,
        );
        if config.reserved_handles > 0 || config.reserved_waiter_lists > 0 {
            // Without `std`, pins borrow participants of a per-queue pool,
            // registered on first use: a queue that preallocates registers
            // them now, so pins from many threads at once allocate nothing.
            inner.collector.prewarm();
        }
        inner
    }

    /// Retires a waiter list unlinked from its slot: once no pinned reader
    /// can see it, it goes back to the pool (or is freed).
    fn retire_waiters(&self, list: *const WaiterList, guard: &Guard) {
        let pool = self.lists.clone();
        reclaim::retire_with(list, guard, move |l| pool.give_back(l));
    }

    pub(crate) fn register(&self, hint: Hint) -> Result<Handle, QueueError> {
        let (result, event) = self.register_quiet(hint);
        event.emit();
        result
    }

    /// `register` that leaves its event to the caller, to emit once it
    /// holds no lock (the keyed layer registers under a map lock).
    pub(crate) fn register_quiet(
        &self,
        hint: Hint,
    ) -> (Result<Handle, QueueError>, trace::Deferred) {
        let inner = self;
        let limit = inner.config.max_handles.min(u32::MAX as usize);
        let mut reg = inner.table.lock_registry();
        if reg.live >= limit {
            let err = QueueError::HandleLimit {
                limit: inner.config.max_handles,
            };
            return (Err(err), trace::Deferred::refused(err, &hint));
        }
        let index = match reg.free.pop_front() {
            Some(i) => i,
            None => {
                let i = reg.next_fresh;
                // First, so a refusal leaves the registry as it was.
                if let Err(err) = inner.table.ensure_bucket(i, &inner.budget) {
                    return (Err(err), trace::Deferred::refused(err, &hint));
                }
                reg.next_fresh += 1;
                reg.hints.push(None);
                i
            }
        };
        let (Some(slot), Some(slot_ptr)) =
            (inner.table.slot_at(index), inner.table.slot_ptr_at(index))
        else {
            // Unreachable: `ensure_bucket` ran for every index handed out.
            reg.free.push_front(index);
            let err = QueueError::HandleLimit { limit };
            return (Err(err), trace::Deferred::refused(err, &hint));
        };
        // Relaxed: only the registry-lock holder changes a free slot's
        // generation; racing RMWs from stale users cannot change it.
        let old = slot.state.load(Ordering::Relaxed);
        let generation = eventcount::generation(old).wrapping_add(1) & eventcount::GEN_MASK;
        // Release: the new generation is published with the slot reset.
        slot.state
            .store(eventcount::fresh(generation), Ordering::Release);
        reg.live += 1;
        let handle = Handle {
            queue: inner.table.id,
            index,
            generation,
            slot: slot_ptr,
        };
        let event = trace::Deferred::registered(handle, &hint);
        if let Some(h) = reg.hints.get_mut(index as usize) {
            *h = Some(hint);
        }
        (Ok(handle), event)
    }

    /// The hint `handle` was registered with, while it is registered (or
    /// until its unregister has finished); for events.
    pub(crate) fn hint_of(&self, handle: Handle) -> Option<Hint> {
        let slot = self.table.slot(handle)?;
        let reg = self.table.lock_registry();
        // Relaxed: the registry lock orders this with register and with
        // the end of unregister, which change the hint under it.
        let generation = eventcount::generation(slot.state.load(Ordering::Relaxed));
        // A retired generation keeps its hint until unregister clears it.
        if generation != handle.generation
            && generation != (handle.generation.wrapping_add(1) & eventcount::GEN_MASK)
        {
            return None;
        }
        reg.hints.get(handle.index as usize).cloned().flatten()
    }

    pub(crate) fn unregister(&self, handle: Handle) -> Result<(), QueueError> {
        let inner = self;
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
            inner.note_wakes(slot, handle, count);
        }
        if !list.is_null() {
            let guard = crate::sync::pin(&inner.collector);
            inner.retire_waiters(list, &guard);
        }
        fanout::close_all(slot, handle, inner);
        // Relaxed: a statistic.
        inner.counters.closes.fetch_add(1, Ordering::Relaxed);
        let mut reg = inner.table.lock_registry();
        reg.live = reg.live.saturating_sub(1);
        reg.retired_notifications = reg
            .retired_notifications
            .wrapping_add(eventcount::sequence(cur));
        let hint = reg
            .hints
            .get_mut(handle.index as usize)
            .and_then(Option::take);
        if handle.generation.saturating_add(2) <= inner.config.generation_limit {
            reg.free.push_back(handle.index);
        } else {
            // Its generations are used up: never reuse it, so no later
            // handle can equal a stale one.
            reg.exhausted += 1;
        }
        drop(reg);
        trace::unregistered(handle, hint.as_ref());
        Ok(())
    }

    /// Bumps the handle's sequence, for a handle whose queue the caller
    /// has checked (`NotificationQueue::notify`, which keeps the id beside
    /// its pointer). `Ok` only after a successful `AcqRel` CAS on the
    /// slot's word (the pipe writer counts on it as its fence: see
    /// `sync::fence_after_locked_rmw`).
    ///
    /// # Safety
    ///
    /// `handle.queue` equals `self.table.id`.
    #[inline(always)]
    pub(crate) unsafe fn notify_own(&self, handle: Handle, arg: i64) -> Result<usize, QueueError> {
        // SAFETY: per this function's contract.
        let slot = unsafe { self.table.slot_unchecked(handle) };
        // Relaxed: the CAS below validates what we read.
        let cur = slot.state.load(Ordering::Relaxed);
        if !eventcount::is_idle_of(cur, handle.generation) {
            // A stale handle, or waiters or subscribers to serve.
            return self.notify_contended(slot, handle, arg, cur);
        }
        // Relaxed: published by the Release half of the CAS below. The
        // word's generation is the handle's, so this is its cell; addressed
        // from the handle, its load need not wait for the word's. The store
        // is skipped when the cell holds `arg` already (a handle notified
        // with the same argument again): a store just before a locked
        // instruction makes it wait for the store to drain, which costs
        // about a third of an idle notify. Either way a waiter that Acquires
        // our CAS reads `arg` or a later argument (our load happens-before
        // its load: read-read coherence), as with an unconditional store.
        let cell = slot.arg(handle.generation);
        if cell.load(Ordering::Relaxed) != arg {
            cell.store(arg, Ordering::Relaxed);
        }
        // AcqRel: Release publishes `arg` with the new sequence to waiters
        // that Acquire-load it; Acquire makes a waiter's waker registration
        // (published by its Release CAS that sets `WAITERS`) visible to the
        // wake scan. A strong CAS: a failure (another notify, or a waiter
        // or subscriber arrived) goes out of line, to `notify_contended`.
        match slot.state.compare_exchange(
            cur,
            eventcount::bumped_idle(cur),
            Ordering::AcqRel,
            Ordering::Relaxed,
        ) {
            Ok(_) => Ok(0),
            Err(actual) => self.notify_contended(slot, handle, arg, actual),
        }
    }

    /// `notify` off its fast path (a stale handle, waiters or subscribers,
    /// or a CAS that lost a race): the same steps in a loop.
    #[cold]
    #[inline(never)]
    fn notify_contended(
        &self,
        slot: &Slot,
        handle: Handle,
        arg: i64,
        mut cur: u64,
    ) -> Result<usize, QueueError> {
        loop {
            if eventcount::generation(cur) != handle.generation {
                return Err(QueueError::StaleHandle);
            }
            // Relaxed and AcqRel: as in `notify`.
            slot.arg(handle.generation).store(arg, Ordering::Relaxed);
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
        Ok(self.notify_slow(slot, handle, cur, arg))
    }

    #[inline]
    pub(crate) fn snapshot(&self, handle: Handle) -> Result<Snapshot, QueueError> {
        let slot = self.table.slot(handle).ok_or(QueueError::StaleHandle)?;
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

    pub(crate) fn waiters(&self, handle: Handle) -> Result<Vec<WaiterInfo>, QueueError> {
        let inner = self;
        let slot = inner.table.slot(handle).ok_or(QueueError::StaleHandle)?;
        self.snapshot(handle)?;
        Ok(inner.waiter_infos(slot, handle.generation))
    }

    pub(crate) fn dump(&self) -> Vec<HandleInfo> {
        let inner = self;
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
            let (Some(slot), Some(slot_ptr)) =
                (inner.table.slot_at(index), inner.table.slot_ptr_at(index))
            else {
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
                slot: slot_ptr,
            };
            out.push(HandleInfo {
                handle,
                hint,
                sequence: eventcount::sequence(word),
                waiters: inner.waiter_infos(slot, generation),
                subscribers: super::state::fanout::infos(inner, handle),
            });
        }
        out
    }

    pub(crate) fn stats(&self) -> Stats {
        let inner = self;
        let (handles, retired, exhausted_slots) = {
            let reg = inner.table.lock_registry();
            (reg.live, reg.retired_notifications, reg.exhausted)
        };
        let mut notifications = retired;
        let (mut slow, mut wakes) = (0u64, 0u64);
        let mut waiters = 0;
        let mut memory = inner.table.slot_bytes();
        let guard = crate::sync::pin(&inner.collector);
        inner.table.for_each_slot(|_, slot| {
            // Relaxed: statistics.
            slow = slow.wrapping_add(slot.slow.load(Ordering::Relaxed));
            wakes = wakes.wrapping_add(slot.wakes.load(Ordering::Relaxed));
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
        let (delivered, overwritten) = fanout::listed_totals(inner);
        let c = &inner.counters;
        // Relaxed: statistics.
        Stats {
            handles,
            notifications,
            slow_notifications: slow,
            wakes,
            waker_panics: c.waker_panics.load(Ordering::Relaxed),
            waiters,
            delivered: c.delivered.load(Ordering::Relaxed) + delivered,
            dropped: c.dropped.load(Ordering::Relaxed) + overwritten,
            exhausted_slots,
            memory_bytes: memory,
            budget: inner.budget.stats(),
        }
    }
}

impl Inner {
    #[cold]
    #[inline(never)]
    fn notify_slow(&self, slot: &Slot, handle: Handle, prev: u64, arg: i64) -> usize {
        // The slot's own counter: its line is the one the notify's CAS just
        // wrote, and no other handle touches it.
        count_without_rmw(&slot.slow, 1);
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
                    unsafe { &*list }.take_wakers(from, &mut batch, Some(&slot.state))
                };
                count.add(batch.wake());
                match next {
                    Some(i) => from = i,
                    None => break,
                }
            }
            self.note_wakes(slot, handle, count);
            n += count.woken;
        }
        if prev & eventcount::SUBSCRIBED != 0 {
            n += fanout::deliver(slot, handle, prev, arg, self);
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
            let scanned = word & eventcount::WAITERS != 0;
            if scanned {
                loop {
                    let mut batch = eventcount::WakeBatch::new();
                    let got = {
                        let _guard = crate::sync::pin(&self.collector);
                        // Acquire pairs with the Release CAS that installed it.
                        let list = slot.waiters.load(Ordering::Acquire);
                        // SAFETY: pinned; the slot's reference is only
                        // released through `retire`, after this pin ends.
                        match unsafe { list.as_ref() } {
                            Some(list) if list.generation == handle.generation => list
                                .notify_oldest(
                                    n - done,
                                    arg,
                                    eventcount::sequence(word),
                                    &mut batch,
                                ),
                            _ => 0,
                        }
                    };
                    // A full batch may have cut the scan short: go on after
                    // waking it.
                    let more = batch.is_full();
                    let count = batch.wake();
                    self.note_wakes(slot, handle, count);
                    done += got;
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
            // registered before us visible to the second look below.
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
            if !scanned {
                // `WAITERS` was clear in the word we replaced: no wait had
                // registered, and any later one sees the permit.
                return Ok(done);
            }
            // A wait that registered between our scan and our CAS (its RMW
            // left the word as it was, `WAITERS` being set) is visible now;
            // one that registers later sees the permit.
            let waiting = {
                let _guard = crate::sync::pin(&self.collector);
                // Acquire pairs with the Release CAS that installed it.
                let list = slot.waiters.load(Ordering::Acquire);
                // SAFETY: pinned (as above).
                unsafe { list.as_ref() }.is_some_and(|l| {
                    l.generation == handle.generation && l.has_waiting(eventcount::sequence(word))
                })
            };
            if !waiting {
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

    pub(crate) fn note_wakes(&self, slot: &Slot, handle: Handle, count: eventcount::WakeCount) {
        // The slot's own counter, as in `notify_slow`.
        if count.woken > 0 {
            count_without_rmw(&slot.wakes, count.woken as u64);
        }
        self.note_panics(handle, count.panicked as u64);
    }

    /// Counts wakers of `handle` that panicked (caught; the others still
    /// woke). Called with no lock held.
    pub(crate) fn note_panics(&self, handle: Handle, panicked: u64) {
        if panicked > 0 {
            // Relaxed: a statistic.
            self.counters
                .waker_panics
                .fetch_add(panicked, Ordering::Relaxed);
            trace::wakers_panicked(handle, || self.hint_of(handle), panicked);
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
    /// (then the wait is over: the caller re-reads the word), or
    /// [`QueueError::MemoryBudget`] if a new list was needed and the budget
    /// refused it (nothing was allocated).
    ///
    /// A stale caller never replaces or removes a newer generation's list:
    /// generations of a slot only grow (see `eventcount`), so a list of a
    /// newer generation ends the search, and a list this call installed is
    /// taken back out if the generation moved on meanwhile.
    #[inline(always)]
    pub(crate) fn waiter_list(
        &self,
        slot: &Slot,
        generation: u32,
    ) -> Result<Option<Arc<WaiterList>>, QueueError> {
        // The common case, inline: the generation's list is installed.
        {
            let _guard = crate::sync::pin(&self.collector);
            // Acquire pairs with the Release CAS that installed the list.
            let cur = slot.waiters.load(Ordering::Acquire);
            // SAFETY: pinned; a non-null pointer is a live `Arc` allocation
            // whose slot reference is only released through `retire`.
            if unsafe { cur.as_ref() }.is_some_and(|list| list.generation == generation) {
                // SAFETY: the slot's strong count keeps the allocation alive
                // while we are pinned, so adding one is sound.
                unsafe { Arc::increment_strong_count(cur) };
                // SAFETY: the count we just added is owned by the result.
                return Ok(Some(unsafe { Arc::from_raw(cur) }));
            }
        }
        self.waiter_list_slow(slot, generation)
    }

    /// `waiter_list` when the slot has no list of this generation yet (or
    /// it changed since the inline look).
    #[cold]
    #[inline(never)]
    fn waiter_list_slow(
        &self,
        slot: &Slot,
        generation: u32,
    ) -> Result<Option<Arc<WaiterList>>, QueueError> {
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
                    return Ok(Some(unsafe { Arc::from_raw(cur) }));
                }
                if list.generation > generation {
                    return Ok(None);
                }
            }
            // Acquire: a generation change seen here is ordered before the
            // install below, so a list is only installed for a generation
            // that was current after `cur` was read.
            if eventcount::generation(slot.state.load(Ordering::Acquire)) != generation {
                return Ok(None);
            }
            let fresh =
                self.lists
                    .take(generation, self.config.max_waiters_per_handle, &self.budget)?;
            let raw = Arc::into_raw(fresh.clone()).cast_mut();
            // AcqRel: Release publishes the list's initialisation; Acquire on
            // failure reads the winner's.
            match slot
                .waiters
                .compare_exchange(cur, raw, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    self.retire_waiters(cur, &guard);
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
                        self.retire_waiters(raw, &guard);
                        return Ok(None);
                    }
                    return Ok(Some(fresh));
                }
                Err(_) => {
                    // SAFETY: `raw` was never published; reclaim its count.
                    drop(unsafe { Arc::from_raw(raw) });
                    // Unshared again: back to the pool.
                    self.lists.give_back(fresh);
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
    ) -> Result<Notified, QueueError> {
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
        Ok(Notified {
            sequence,
            arg,
            coalesced: eventcount::distance(start, sequence),
        })
    }
}
