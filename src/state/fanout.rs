//! Fan-out: the subscriber lists of each slot, and delivering a notify to
//! them. (The ring itself is `primitives::ring`; the receiver,
//! `client::subscription`.)
//!
//! # The subscriber list
//!
//! A slot's `subscribers` pointer is an `Arc<SubscriberList>` (raw): an
//! immutable array of `Arc<Ring>` for one handle generation. notify takes a
//! reference to it under a short epoch pin and delivers (and wakes) after
//! unpinning, so a receiver's waker that blocks cannot hold back the
//! collector; the slot's own reference is what the epoch protects.
//! subscribe / unsubscribe build a new list (copy on write) and swap it in
//! under the slot table's registry mutex, which notify never takes; they
//! retire the old list through the epoch collector only after unlocking.
//! Under that mutex only plain data is touched: no epoch pin, flush or
//! collection (any of which may run other code's deferred destructors, which
//! may re-enter this queue and take the same mutex), no waker, and no drop
//! of a reference that may be the last one. Debug builds assert that no
//! crate lock is held when pinning or flushing.
//!
//! # Subscribing versus notify (the `SUBSCRIBED` bit)
//!
//! subscribe installs the new list, then sets `SUBSCRIBED` with a CAS on the
//! state word that checks the generation (the CAS is done even when the bit
//! is already set, so it is always an RMW in the word's order). A notify's
//! CAS on the same word is either before that CAS (the notify happened before
//! the subscription existed) or after it. After: it replaced a word with
//! `SUBSCRIBED` set (notify keeps the bit, and nothing clears it while our
//! ring is listed), and its Acquire CAS reads our Release CAS through the
//! word's release sequence, so its load of the list pointer sees our list
//! or a later one, which holds our ring until we unsubscribe.
//!
//! The last unsubscribe of a generation clears `SUBSCRIBED` (so the handle's
//! notify is back to one CAS). This cannot lose a delivery to a concurrent
//! subscriber: setting and clearing happen under the same mutex together with
//! the list change, so a subscriber's (install, set) pair is entirely before
//! the clearer's (remove, clear), in which case its ring is in the list and
//! the list is not empty and the bit is not cleared, or entirely after it,
//! in which case it sets the bit again.
//!
//! A list belongs to one generation: notify passes the generation of the
//! word it replaced, and delivers only to a list of that generation, so a
//! late notify of an unregistered handle never reaches the next owner's
//! subscribers. (Such a late notify finds the old generation's closed rings
//! and counts its value as dropped there; only if the old subscriptions are
//! all gone, or the next owner has already subscribed, does it find no list,
//! and then its return value says it delivered to nobody.)

use super::Inner;
use crate::error::QueueError;
use crate::primitives::budget::{Category, Charge};
use crate::primitives::eventcount::{self, SUBSCRIBED, WakeBatch};
use crate::primitives::ring::{MAX_RING, Overflow, Ring, SubscriberInfo, SubscriberList};
use crate::primitives::slots::{Handle, Slot};
use crate::sync::{Arc, Collector, Hint, Ordering, fence};
use crate::trace;
use alloc::vec::Vec;

/// Publishes `rings` as the slot's list (null if empty) and returns the old
/// one, for [`retire_lists`] after the lock is released. Caller holds the
/// registry lock (which serialises every list change).
///
/// Touches plain data only (an allocation and a swap), so it may run under
/// the lock: retiring (pin, defer, flush) must not, since a flush runs
/// other code's deferred destructors.
#[must_use = "the old list must be retired"]
fn swap_list(slot: &Slot, generation: u32, rings: Vec<Arc<Ring>>) -> Unlinked {
    let fresh = if rings.is_empty() {
        core::ptr::null_mut()
    } else {
        Arc::into_raw(Arc::new(SubscriberList {
            generation,
            rings: rings.into_boxed_slice(),
        }))
        .cast_mut()
    };
    // AcqRel: Release publishes the new list to notifiers (Acquire load in
    // `deliver`); Acquire takes over the old one for retiring.
    Unlinked(slot.subscribers.swap(fresh, Ordering::AcqRel).cast_const())
}

/// A list unlinked from its slot (or null) that still owns the slot's
/// strong count: pass it to [`retire_lists`] once no crate lock is held.
struct Unlinked(*const SubscriberList);

/// Retires unlinked lists through the epoch collector. Pins and flushes, so
/// it runs other code's deferred destructors (which may re-enter this
/// queue): never call it while holding any lock of the crate.
fn retire_lists(lists: &[Unlinked], collector: &Collector) {
    if lists.iter().all(|l| l.0.is_null()) {
        return;
    }
    let guard = crate::sync::pin(collector);
    for l in lists {
        crate::sync::reclaim::retire(l.0, &guard);
    }
}

/// The rings listed for `generation` now. Caller holds the registry lock:
/// lists are unlinked only under it, so the current one stays alive (the
/// slot owns a strong count) without pinning.
fn current_rings(slot: &Slot, generation: u32) -> Vec<Arc<Ring>> {
    // Acquire: see the list's initialisation.
    let p = slot.subscribers.load(Ordering::Acquire);
    // SAFETY: the slot owns one strong count of the current list, which is
    // released only after an unlink (`swap_list`, under the registry lock
    // we hold) or when the table is dropped (`release`, `&mut`).
    match unsafe { p.as_ref() } {
        Some(list) if list.generation == generation => list.rings.to_vec(),
        _ => Vec::new(),
    }
}

/// Delivers `arg` to every subscriber of the generation in `prev` (the word
/// the notify replaced); returns how many buffers took it.
///
/// The rings are filled under a short epoch pin and the receivers' wakers
/// taken out into a fixed batch; they are woken after unpinning, so a waker
/// that blocks does not hold back the reclamation of every other handle's
/// retired lists. Only past `WakeBatch` capacity sleeping receivers is a
/// reference to the list taken (two RMWs) to wake the rest unpinned.
pub(crate) fn deliver(slot: &Slot, handle: Handle, prev: u64, arg: i64, inner: &Inner) -> usize {
    let mut batch = WakeBatch::new();
    let mut woken = false;
    let (stored, rest) = {
        let _guard = crate::sync::pin(&inner.collector);
        // Acquire pairs with the Release swap in `replace_list`.
        let p = slot.subscribers.load(Ordering::Acquire);
        // SAFETY: pinned, and lists are freed only through `retire` after
        // every pin that could see `p` has ended.
        let Some(list) = (unsafe { p.as_ref() }) else {
            return 0;
        };
        if list.generation != eventcount::generation(prev) {
            return 0;
        }
        // Counted as exceptions: almost every push stores and drops nothing.
        let (mut refused, mut dropped) = (0usize, 0u64);
        let fast = crate::sync::Fast128::get();
        for ring in list.rings.iter() {
            if let Err(r) = ring.push_with(arg, fast) {
                refused += !r.stored as usize;
                dropped += r.dropped;
            }
        }
        let stored = list.rings.len() - refused;
        // SeqCst fence: orders our cell writes before the loads of `waiting`
        // below, against the receiver's store of `waiting` and its fence
        // before it looks at the ring again (see "Waking").
        fence(Ordering::SeqCst);
        let mut rest = None;
        // Relaxed: ordered by the fence above, like the loads of `waiting`:
        // a receiver counts itself before its fence, so a notify that could
        // miss its `waiting` cannot read a count without it (see "Waking").
        // Nobody asleep anywhere in the queue: skip the scan.
        let rings = if inner.counters.sleeping.load(Ordering::Relaxed) == 0 {
            &[][..]
        } else {
            &list.rings[..]
        };
        for (i, ring) in rings.iter().enumerate() {
            // Relaxed: ordered by the fence above.
            if !ring.waiting.load(Ordering::Relaxed) {
                continue;
            }
            if batch.is_full() {
                // SAFETY: pinned (see above), so the slot's strong count
                // keeps the allocation alive and adding one is sound.
                unsafe { Arc::increment_strong_count(p) };
                // SAFETY: the count just added is owned by this `Arc`.
                rest = Some((unsafe { Arc::from_raw(p) }, i));
                break;
            }
            if let Some(w) = ring.waker.take() {
                batch.push(w);
                woken = true;
            }
        }
        // `Stats::delivered` is counted from the rings' positions
        // (`listed_totals`), not here. Relaxed: a statistic.
        if dropped > 0 {
            inner.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        (stored, rest)
    };
    // Most deliveries find nobody asleep: skip the (empty) batch then.
    let mut panicked = if woken {
        batch.wake().panicked as u64
    } else {
        0
    };
    if let Some((list, from)) = rest {
        for ring in list.rings.iter().skip(from) {
            // Relaxed: ordered by the fence in the pinned section.
            if ring.waiting.load(Ordering::Relaxed) {
                panicked += ring.wake() as u64;
            }
        }
    }
    inner.note_panics(handle, panicked);
    stored
}

/// The slot's list, with a strong reference taken under a short pin.
fn current_list(slot: &Slot, collector: &Collector) -> Option<Arc<SubscriberList>> {
    let _guard = crate::sync::pin(collector);
    // Acquire pairs with the Release swap in `replace_list`.
    let p = slot.subscribers.load(Ordering::Acquire);
    if p.is_null() {
        return None;
    }
    // SAFETY: pinned, and the slot's strong count is only released through
    // `retire` after every pin that could see `p` has ended, so the
    // allocation is alive and adding a count is sound.
    unsafe { Arc::increment_strong_count(p) };
    // SAFETY: the count just added is owned by this `Arc`.
    Some(unsafe { Arc::from_raw(p) })
}

/// Ends every subscription of `slot` (the handle was unregistered; the
/// generation was bumped before this call). Wakes the receivers unpinned,
/// as `deliver` does.
///
/// The list stays linked: a notify of the old generation whose CAS came
/// before the unregister may still be on its way to it, and must find the
/// rings (closed, so it counts its value as dropped) rather than nothing.
/// Each ring leaves the list when its `Subscription` is dropped; the next
/// owner's first subscribe replaces a list of an older generation.
pub(crate) fn close_all(slot: &Slot, handle: Handle, inner: &Inner) {
    // No lock: a subscriber whose generation-checked CAS succeeded installed
    // its list before that CAS, which the unregister's CAS (before this
    // call) read, so this load sees its list or a later one built from it.
    let Some(l) = current_list(slot, &inner.collector) else {
        return;
    };
    // A list of an older generation (its subscriptions not yet dropped) is
    // closed already; closing a closed ring does nothing.
    let mut panicked = 0u64;
    for ring in l.rings.iter() {
        panicked += ring.close() as u64;
    }
    inner.note_panics(handle, panicked);
}

/// What every listed ring holds in its positions, for [`Stats`](crate::Stats):
/// values stored (positions claimed before any close: every one was
/// written, or lapped by a newer one) and keep-newest values overwritten
/// that no producer counted (see "Why the lag count is exact" in
/// `primitives::ring`). Counting these from positions costs a notify
/// nothing; a ring leaving its list adds its own to the queue's counters
/// ([`unlisted`]).
pub(crate) fn listed_totals(inner: &Inner) -> (u64, u64) {
    let (mut delivered, mut overwritten) = (0u64, 0u64);
    let _guard = crate::sync::pin(&inner.collector);
    inner.table.for_each_slot(|_, slot| {
        // Acquire: see the list's initialisation.
        let p = slot.subscribers.load(Ordering::Acquire);
        // SAFETY: pinned; lists are freed only through `retire`.
        if let Some(list) = unsafe { p.as_ref() } {
            for r in list.rings.iter() {
                delivered += r.claimed();
                overwritten += r.overwritten();
            }
        }
    });
    (delivered, overwritten)
}

/// `ring` left its handle's list for good (its `Subscription` ended, or a
/// new owner of the slot replaced its closed generation's list): adds what
/// its positions hold to the queue's counters (see [`listed_totals`]), the
/// first time only.
pub(crate) fn unlisted(inner: &Inner, ring: &Ring) {
    // Relaxed: only the flag's own value matters (whoever swaps it first
    // adds the totals).
    if ring.unlisted.swap(true, Ordering::Relaxed) {
        return;
    }
    // Relaxed: statistics.
    inner
        .counters
        .delivered
        .fetch_add(ring.claimed(), Ordering::Relaxed);
    let n = ring.overwritten();
    if n > 0 {
        inner.counters.dropped.fetch_add(n, Ordering::Relaxed);
    }
}

/// Subscribers of `handle` for the debug dump.
pub(crate) fn infos(inner: &Inner, handle: Handle) -> Vec<SubscriberInfo> {
    let Some(slot) = inner.table.slot(handle) else {
        return Vec::new();
    };
    let _guard = crate::sync::pin(&inner.collector);
    // Acquire: see the list's initialisation.
    let p = slot.subscribers.load(Ordering::Acquire);
    // SAFETY: pinned; lists are freed only through `retire`.
    match unsafe { p.as_ref() } {
        Some(list) if list.generation == handle.generation => {
            list.rings.iter().map(|r| r.info()).collect()
        }
        _ => Vec::new(),
    }
}

/// Options for [`NotificationQueue::subscribe_with`](crate::NotificationQueue::subscribe_with).
///
/// ```
/// use notification_queue::{Overflow, SubscribeOptions};
/// let opts = SubscribeOptions::new(16).overflow(Overflow::KeepOldest).hint("log");
/// assert_eq!(opts.capacity, 16);
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Buffer size (1 ..= `Config::max_subscriber_capacity`).
    pub capacity: usize,
    /// What to keep when the buffer is full.
    pub overflow: Overflow,
    /// Debug hint listed by the dump.
    pub hint: Hint,
}

impl SubscribeOptions {
    /// Options with `capacity`, [`Overflow::KeepNewest`] and an empty hint.
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity,
            overflow: Overflow::KeepNewest,
            hint: Hint::from(""),
        }
    }

    /// Sets the overflow policy.
    pub fn overflow(mut self, overflow: Overflow) -> Self {
        self.overflow = overflow;
        self
    }

    /// Sets the debug hint.
    pub fn hint(mut self, hint: impl Into<Hint>) -> Self {
        self.hint = hint.into();
        self
    }
}

impl Inner {
    /// Adds a ring of `options` to `handle`'s subscribers and returns it
    /// (the receiver's side is `client::subscription`).
    pub(crate) fn subscribe(
        &self,
        handle: Handle,
        options: SubscribeOptions,
    ) -> Result<Arc<Ring>, QueueError> {
        let inner = self;
        let max = inner.config.max_subscriber_capacity.min(MAX_RING);
        if options.capacity == 0 || options.capacity > max {
            let err = QueueError::InvalidCapacity {
                requested: options.capacity,
                max,
            };
            trace::refused(Some(handle.into()), || inner.hint_of(handle), &err);
            return Err(err);
        }
        let slot = inner.table.slot(handle).ok_or(QueueError::StaleHandle)?;
        // Charged before anything is allocated; a refusal changes nothing.
        // Any other failure below drops the ring, which releases it.
        let charge = Charge::new(
            &inner.budget,
            Category::Rings,
            Ring::budget_bytes(options.capacity),
        )?;
        let ring = Arc::new(Ring::new(
            options.capacity,
            options.overflow,
            options.hint,
            charge,
        ));
        // Under the lock: plain data only (see `swap_list`). Unlinked lists
        // and leftover ring references are dealt with after unlocking.
        let mut unlinked = [Unlinked(core::ptr::null()), Unlinked(core::ptr::null())];
        let mut leftover = Vec::new();
        let outcome = (|| {
            let _reg = inner.table.lock_registry();
            // Relaxed: validated by the generation-checking CAS below.
            if eventcount::generation(slot.state.load(Ordering::Relaxed)) != handle.generation {
                return Err(QueueError::StaleHandle);
            }
            let mut rings = current_rings(slot, handle.generation);
            let limit = inner.config.max_subscribers_per_handle;
            if rings.len() >= limit {
                leftover = rings;
                return Err(QueueError::SubscriberLimit { limit });
            }
            rings.push(ring.clone());
            unlinked[0] = swap_list(slot, handle.generation, rings);
            // The linearisation point (see "Subscribing versus notify").
            // Relaxed: validated by the CAS.
            let mut cur = slot.state.load(Ordering::Relaxed);
            loop {
                if eventcount::generation(cur) != handle.generation {
                    // Unregistered since our check: take our ring out again
                    // (no receiver will ever read it).
                    let mut rings = current_rings(slot, handle.generation);
                    rings.retain(|r| !Arc::ptr_eq(r, &ring));
                    unlinked[1] = swap_list(slot, handle.generation, rings);
                    return Err(QueueError::StaleHandle);
                }
                // AcqRel: Release publishes our list (stored above) to
                // notifies whose CAS reads this word; Acquire orders us
                // after them.
                match slot.state.compare_exchange_weak(
                    cur,
                    cur | SUBSCRIBED,
                    Ordering::AcqRel,
                    Ordering::Relaxed,
                ) {
                    Ok(_) => return Ok(()),
                    Err(actual) => cur = actual,
                }
            }
        })();
        drop(leftover);
        // A list of an older generation just replaced: its rings (closed,
        // so their positions no longer move) leave the statistics' view.
        for l in &unlinked {
            // SAFETY: `swap_list` moved the slot's strong count of the list
            // to `l`, so it is alive until `retire_lists` below.
            if let Some(old) = unsafe { l.0.as_ref() } {
                if old.generation != handle.generation {
                    old.rings.iter().for_each(|r| unlisted(inner, r));
                }
            }
        }
        if outcome.is_err() {
            // Our ring was listed for a moment (taken out again, or never
            // listed): what it got counts, once.
            unlisted(inner, &ring);
        }
        retire_lists(&unlinked, &inner.collector);
        if let Err(err @ QueueError::SubscriberLimit { .. }) = outcome {
            trace::refused(Some(handle.into()), || inner.hint_of(handle), &err);
        }
        outcome?;
        Ok(ring)
    }
}

impl Inner {
    /// Takes `ring` out of `handle`'s subscribers (a `Subscription` ends).
    pub(crate) fn unsubscribe(&self, handle: Handle, ring: &Arc<Ring>) {
        let inner = self;
        let Some(slot) = inner.table.slot(handle) else {
            return;
        };
        // Under the lock: plain data only. No pin, no retire, no drop of a
        // reference that may be the last one (see `retire_lists`).
        let (unlinked, leftover) = {
            let _reg = inner.table.lock_registry();
            let mut rings = current_rings(slot, handle.generation);
            let before = rings.len();
            // Our own entry: `ring` keeps that allocation alive, so
            // dropping this clone under the lock frees nothing.
            rings.retain(|r| !Arc::ptr_eq(r, ring));
            if rings.len() == before {
                (Unlinked(core::ptr::null()), rings)
            } else {
                let empty = rings.is_empty();
                let unlinked = swap_list(slot, handle.generation, rings);
                if empty {
                    clear_subscribed(slot, handle.generation);
                }
                (unlinked, Vec::new())
            }
        };
        drop(leftover);
        retire_lists(&[unlinked], &inner.collector);
    }
}

/// Clears `SUBSCRIBED` after the last unsubscribe of `generation`. Caller
/// holds the registry lock (see the module docs for why a concurrent
/// subscriber loses nothing: it sets the bit under this same lock).
fn clear_subscribed(slot: &Slot, generation: u32) {
    // Relaxed: validated by the CAS.
    let mut cur = slot.state.load(Ordering::Relaxed);
    while eventcount::generation(cur) == generation {
        // Relaxed: no data is published by clearing the flag; the list (now
        // null) was published by `swap_list`.
        match slot.state.compare_exchange_weak(
            cur,
            cur & !SUBSCRIBED,
            Ordering::Relaxed,
            Ordering::Relaxed,
        ) {
            Ok(_) => break,
            Err(actual) => cur = actual,
        }
    }
}
