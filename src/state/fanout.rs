//! Fan-out: the subscriber lists of each slot, and delivering a notify to
//! them. (The ring itself is `primitives::ring`; the receiver,
//! `client::subscription`.)
//!
//! # The feed and its lists
//!
//! A slot's `subscribers` pointer is an `Arc<Feed>` (raw) for one handle
//! generation: the keep-newest positions its rings share and the current
//! `SubscriberList`, an immutable array of `Arc<Ring>`, both in one 128-bit
//! word (see "One claim per notify" in `primitives::ring`). notify claims
//! its position and reads the list with one CAS under a short epoch pin and
//! wakes after unpinning, so a receiver's waker that blocks cannot hold
//! back the collector. subscribe / unsubscribe build a new list (copy on
//! write) and swap it into the feed under the slot table's registry mutex,
//! which notify never takes; they retire the old list through the epoch
//! collector only after unlocking. The first subscribe of a generation
//! installs a new feed; the last unsubscribe unlinks it (so an idle handle
//! holds no feed), and both retire the feed they replaced the same way.
//! Every subscription also owns an `Arc` of its feed, for its positions.
//! Under that mutex only plain data is touched: no epoch pin, flush or
//! collection (any of which may run other code's deferred destructors, which
//! may re-enter this queue and take the same mutex), no waker, and no drop
//! of a reference that may be the last one. Debug builds assert that no
//! crate lock is held when pinning or flushing.
//!
//! # Subscribing versus notify (the `SUBSCRIBED` bit)
//!
//! subscribe installs the generation's feed (if it is the first) and the new
//! list, then sets `SUBSCRIBED` with a CAS on the state word that checks the
//! generation (the CAS is done even when the bit is already set, so it is
//! always an RMW in the word's order). A notify's CAS on the same word is
//! either before that CAS or after it. After: it replaced a word with
//! `SUBSCRIBED` set (notify keeps the bit, and nothing clears it while our
//! ring is listed), and its Acquire CAS reads our Release CAS through the
//! word's release sequence, so its load of the feed pointer sees our feed
//! and its claim our list or a later one, which holds our ring until we
//! unsubscribe. Before: the notify happened before the subscription
//! existed, unless other subscribers sent it to the feed and its claim came
//! after our listing; then it delivers to our ring too, and counts it (it
//! was concurrent with the subscribe, so either outcome is a linearisation).
//!
//! The last unsubscribe of a generation clears `SUBSCRIBED` (so the handle's
//! notify is back to one CAS). This cannot lose a delivery to a concurrent
//! subscriber: setting and clearing happen under the same mutex together with
//! the list change, so a subscriber's (install, set) pair is entirely before
//! the clearer's (remove, clear), in which case its ring is in the list and
//! the list is not empty and the bit is not cleared, or entirely after it,
//! in which case it sets the bit again.
//!
//! A feed belongs to one generation: notify passes the generation of the
//! word it replaced, and delivers only to a feed of that generation, so a
//! late notify of an unregistered handle never reaches the next owner's
//! subscribers. (Such a late notify finds the old generation's closed feed
//! and counts its value as dropped in each ring; only if the old
//! subscriptions are all gone, or the next owner has already subscribed,
//! does it find no feed, and then its return value says it delivered to
//! nobody.)

use super::Inner;
use crate::error::QueueError;
use crate::primitives::budget::{Category, Charge};
use crate::primitives::eventcount::{self, SUBSCRIBED, WakeBatch};
use crate::primitives::ring::{
    Cells, Feed, MAX_RING, Overflow, Ring, SubscriberInfo, SubscriberList,
};
use crate::primitives::slots::{Handle, Slot};
use crate::sync::{Arc, Collector, Fast128, Hint, Ordering, fence};
use crate::trace;
use alloc::vec::Vec;
use core::ptr;

/// Lists and feeds unlinked under the registry lock, whose strong counts
/// the caller now owns: pass them to [`retire`] once no crate lock is held.
struct Unlinked {
    lists: [*const SubscriberList; 2],
    feeds: [*const Feed; 2],
}

impl Unlinked {
    const fn new() -> Self {
        Self {
            lists: [ptr::null(); 2],
            feeds: [ptr::null(); 2],
        }
    }
}

/// Retires what was unlinked through the epoch collector. Pins and flushes,
/// so it runs other code's deferred destructors (which may re-enter this
/// queue): never call it while holding any lock of the crate.
fn retire(unlinked: &Unlinked, collector: &Collector) {
    let no_lists = unlinked.lists.iter().all(|l| l.is_null());
    if no_lists && unlinked.feeds.iter().all(|f| f.is_null()) {
        return;
    }
    let guard = crate::sync::pin(collector);
    for &l in &unlinked.lists {
        crate::sync::reclaim::retire(l, &guard);
    }
    for &f in &unlinked.feeds {
        crate::sync::reclaim::retire(f, &guard);
    }
}

/// A new list of `rings` for a feed (null if empty), as `Arc::into_raw`.
/// Plain data (an allocation), so it may run under the registry lock.
fn new_list(rings: Vec<Arc<Ring>>) -> *const SubscriberList {
    if rings.is_empty() {
        ptr::null()
    } else {
        Arc::into_raw(Arc::new(SubscriberList::new(rings)))
    }
}

/// The slot's feed if it belongs to `generation`. Caller holds the
/// registry lock: feeds are unlinked only under it, so the slot's strong
/// count keeps the feed alive without pinning.
fn feed_locked(slot: &Slot, generation: u32) -> Option<&Feed> {
    // Acquire: see the feed's initialisation.
    let p = slot.subscribers.load(Ordering::Acquire);
    // SAFETY: the slot owns one strong count of its feed, released only
    // after an unlink (under the registry lock we hold) or when the table
    // is dropped (`release`, `&mut`).
    unsafe { p.as_ref() }.filter(|f| f.generation == generation)
}

/// The rings `feed` lists now. Caller holds the registry lock: lists are
/// replaced only under it, so the current one stays alive (the feed owns a
/// strong count) without pinning.
fn rings_locked(feed: &Feed) -> Vec<Arc<Ring>> {
    // SAFETY: see above.
    match unsafe { feed.list().as_ref() } {
        Some(list) => list.rings.to_vec(),
        None => Vec::new(),
    }
}

/// Takes `ring` out of `feed`'s list; once the list is empty, unlinks the
/// feed from the slot if it is the slot's, and clears `SUBSCRIBED`. Caller
/// holds the registry lock; what it unlinks goes into slot `at` of
/// `unlinked`, and the returned references are dropped after unlocking.
#[must_use = "drop the leftover references after unlocking"]
fn remove_locked(
    slot: &Slot,
    feed: &Feed,
    ring: &Arc<Ring>,
    unlinked: &mut Unlinked,
    at: usize,
) -> Vec<Arc<Ring>> {
    let mut rings = rings_locked(feed);
    let before = rings.len();
    // Our own entry: `ring` keeps that allocation alive, so dropping this
    // clone under the lock frees nothing.
    rings.retain(|r| !Arc::ptr_eq(r, ring));
    if rings.len() == before {
        return rings;
    }
    let empty = rings.is_empty();
    unlinked.lists[at] = feed.replace_list(new_list(rings), |_| {});
    // Relaxed: only changed under the lock we hold.
    if empty && ptr::eq(slot.subscribers.load(Ordering::Relaxed), feed) {
        // AcqRel: as in `subscribe`.
        unlinked.feeds[at] = slot
            .subscribers
            .swap(ptr::null_mut(), Ordering::AcqRel)
            .cast_const();
        clear_subscribed(slot, feed.generation);
    }
    Vec::new()
}

/// Delivers `arg` to every subscriber of the generation in `prev` (the word
/// the notify replaced); returns how many buffers took it.
///
/// One claim in the generation's feed gives the position for every
/// keep-newest ring and the list to fill (see "One claim per notify" in
/// `primitives::ring`). The rings are filled under a short epoch pin and
/// the receivers' wakers taken out into a fixed batch; they are woken after
/// unpinning, so a waker that blocks does not hold back the reclamation of
/// every other handle's retired lists. Only past `WakeBatch` capacity
/// sleeping receivers is a reference to the list taken (two RMWs) to wake
/// the rest unpinned.
pub(crate) fn deliver(slot: &Slot, handle: Handle, prev: u64, arg: i64, inner: &Inner) -> usize {
    let mut batch = WakeBatch::new();
    let mut woken = false;
    let (stored, rest) = {
        let _guard = crate::sync::pin(&inner.collector);
        // Acquire pairs with the Release swap in `subscribe`.
        let f = slot.subscribers.load(Ordering::Acquire);
        // SAFETY: pinned, and feeds are freed only through `retire` after
        // every pin that could see `f` has ended.
        let Some(feed) = (unsafe { f.as_ref() }) else {
            return 0;
        };
        if feed.generation != eventcount::generation(prev) {
            return 0;
        }
        let fast = Fast128::get();
        let Some(claim) = feed.claim(fast) else {
            return 0;
        };
        // SAFETY: pinned, and a list replaced in its feed is retired
        // through the epoch collector after every pin that could see it.
        let list = unsafe { &*claim.list };
        // Counted as exceptions: almost every push stores and drops nothing.
        let (mut refused, mut dropped) = (0usize, 0u64);
        // Whether a value went into a cell by a plain store (keep oldest)
        // rather than a hardware `lock cmpxchg16b` (see the fence below).
        let mut stored_plain = fast.is_none();
        match claim.pos {
            Some(pos) => {
                // Each keep-newest buffer once, however many rings share it.
                for cells in list.newest.iter() {
                    cells.write_newest(pos, arg, fast);
                }
                for ring in list.oldest.iter() {
                    let r = ring.push_oldest(arg);
                    refused += !r.stored as usize;
                    dropped += r.dropped;
                    stored_plain |= r.stored;
                }
            }
            None => {
                // Closed: every listed ring counts a value offered after
                // the close.
                for ring in list.rings.iter() {
                    dropped += ring.closed_drop().dropped;
                }
                refused = list.rings.len();
            }
        }
        let stored = list.rings.len() - refused;
        // SeqCst fence: orders our cell writes before the loads of `waiting`
        // below, against the receiver's store of `waiting` and its fence
        // before it looks at the ring again (see "Waking"). Not needed when
        // every cell write was a `lock cmpxchg16b` (the inlined x86-64 path,
        // keep newest): a locked instruction is a full barrier (reads are
        // not reordered with locked instructions: Intel SDM vol. 3, "Memory
        // Ordering in P6 and More Recent Processor Families"; AMD APM vol. 2,
        // "Memory Barrier Interaction with Memory Types"), and the asm is a
        // compiler barrier, so the loads below are ordered after each write
        // as the fence would order them. A lapped write that found a newer
        // stamp wrote nothing, and the newer writer checks for itself.
        if stored_plain {
            fence(Ordering::SeqCst);
        }
        let mut rest = None;
        // Relaxed: ordered by the fence above, like the loads of `waiting`:
        // a receiver counts itself before its fence, so a notify that could
        // miss its `waiting` cannot read a count without it (see "Waking").
        // Nobody of this feed asleep: skip the scan.
        let rings = if feed.sleeping.load(Ordering::Relaxed) == 0 {
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
                // SAFETY: pinned (see above), so the feed's strong count
                // keeps the allocation alive and adding one is sound.
                unsafe { Arc::increment_strong_count(claim.list) };
                // SAFETY: the count just added is owned by this `Arc`.
                rest = Some((unsafe { Arc::from_raw(claim.list) }, i));
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

/// The slot's feed, with a strong reference taken under a short pin.
fn current_feed(slot: &Slot, collector: &Collector) -> Option<Arc<Feed>> {
    let _guard = crate::sync::pin(collector);
    // Acquire pairs with the Release swap in `subscribe`.
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

/// `feed`'s current list, with a strong reference taken under a short pin.
fn current_list(feed: &Feed, collector: &Collector) -> Option<Arc<SubscriberList>> {
    let _guard = crate::sync::pin(collector);
    let p = feed.list();
    if p.is_null() {
        return None;
    }
    // SAFETY: pinned, and a list replaced in its feed is retired through
    // the epoch collector, so the allocation is alive and adding a count is
    // sound.
    unsafe { Arc::increment_strong_count(p) };
    // SAFETY: the count just added is owned by this `Arc`.
    Some(unsafe { Arc::from_raw(p) })
}

/// Ends every subscription of `slot` (the handle was unregistered; the
/// generation was bumped before this call): closes the generation's feed,
/// and each keep-oldest ring's own positions, then wakes every receiver,
/// unpinned, as `deliver` does.
///
/// The feed stays linked: a notify of the old generation whose CAS came
/// before the unregister may still be on its way to it, and must find it
/// (closed, so it counts its value as dropped) rather than nothing. It
/// leaves the slot when its last subscription is dropped, or when the next
/// owner's first subscribe replaces it.
pub(crate) fn close_all(slot: &Slot, handle: Handle, inner: &Inner) {
    // No lock: a subscriber whose generation-checked CAS succeeded installed
    // its feed and list before that CAS, which the unregister's CAS (before
    // this call) read, so these loads see them or later ones.
    let Some(feed) = current_feed(slot, &inner.collector) else {
        return;
    };
    // A feed of an older generation was closed by its own unregister.
    if feed.generation != handle.generation || !feed.close() {
        return;
    }
    let Some(list) = current_list(&feed, &inner.collector) else {
        return;
    };
    let mut panicked = 0u64;
    for ring in list.rings.iter() {
        if ring.overflow != Overflow::KeepNewest {
            ring.close_own();
        }
        panicked += ring.wake() as u64;
    }
    inner.note_panics(handle, panicked);
}

/// What every listed ring holds in its positions, for [`Stats`](crate::Stats):
/// values stored (positions claimed from the ring's start and before any
/// close: every one was written, or lapped by a newer one) and keep-newest
/// values overwritten that no producer counted (see "Why the lag count is
/// exact" in `primitives::ring`). Counting these from positions costs a
/// notify nothing; a ring leaving its list adds its own to the queue's
/// counters ([`unlisted`]).
pub(crate) fn listed_totals(inner: &Inner) -> (u64, u64) {
    let (mut delivered, mut overwritten) = (0u64, 0u64);
    let _guard = crate::sync::pin(&inner.collector);
    inner.table.for_each_slot(|_, slot| {
        // Acquire: see the feed's initialisation.
        let f = slot.subscribers.load(Ordering::Acquire);
        // SAFETY: pinned; feeds and lists are freed only through `retire`.
        let Some(feed) = (unsafe { f.as_ref() }) else {
            return;
        };
        // SAFETY: as above.
        if let Some(list) = unsafe { feed.list().as_ref() } {
            for r in list.rings.iter() {
                delivered += r.delivered(feed);
                overwritten += r.overwritten(feed);
            }
        }
    });
    (delivered, overwritten)
}

/// `ring` left its feed's list for good (its `Subscription` ended, or a new
/// owner of the slot replaced its closed generation's feed): adds what its
/// positions hold to the queue's counters (see [`listed_totals`]), the
/// first time only.
pub(crate) fn unlisted(inner: &Inner, ring: &Ring, feed: &Feed) {
    // Relaxed: only the flag's own value matters (whoever swaps it first
    // adds the totals).
    if ring.unlisted.swap(true, Ordering::Relaxed) {
        return;
    }
    // Relaxed: statistics.
    inner
        .counters
        .delivered
        .fetch_add(ring.delivered(feed), Ordering::Relaxed);
    let n = ring.overwritten(feed);
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
    // Acquire: see the feed's initialisation.
    let f = slot.subscribers.load(Ordering::Acquire);
    // SAFETY: pinned; feeds and lists are freed only through `retire`.
    let feed = unsafe { f.as_ref() }.filter(|f| f.generation == handle.generation);
    let Some(feed) = feed else {
        return Vec::new();
    };
    // SAFETY: as above.
    match unsafe { feed.list().as_ref() } {
        Some(list) => list.rings.iter().map(|r| r.info(feed)).collect(),
        None => Vec::new(),
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
    /// with its feed (the receiver's side is `client::subscription`).
    pub(crate) fn subscribe(
        &self,
        handle: Handle,
        options: SubscribeOptions,
    ) -> Result<(Arc<Ring>, Arc<Feed>), QueueError> {
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
        let cap = options.capacity;
        let keep_newest = options.overflow == Overflow::KeepNewest;
        // Charged before anything is allocated; a refusal changes nothing.
        // Any other failure below drops what was made, which releases it.
        let ring_charge = Charge::new(&inner.budget, Category::Rings, Ring::budget_bytes())?;
        // Keep newest: the cells of a listed keep-newest ring of the same
        // capacity, to share (see "Shared cells" in `primitives::ring`),
        // looked up under a short hold of the registry lock so that new
        // cells are made (and charged) outside it.
        let peeked = if keep_newest {
            let _reg = inner.table.lock_registry();
            feed_locked(slot, handle.generation).and_then(|feed| {
                // SAFETY: lists are replaced only under the registry lock
                // we hold, and the feed owns a strong count of its list.
                let cells = unsafe { feed.list().as_ref() }?.shared_cells(cap as u64)?;
                Some((arc_of_locked(feed), cells))
            })
        } else {
            None
        };
        let mut fresh = match peeked {
            Some(_) => None,
            None => Some(new_cells(inner, cap)?),
        };
        // Unit tests change the handle's subscribers here, between the look
        // and the locked section, to reach the rare re-look.
        #[cfg(test)]
        tests::between_look_and_lock();
        // Under the lock: plain data only (allocations, swaps and CASes).
        // Unlinked lists and feeds and leftover ring references are dealt
        // with after unlocking.
        let mut unlinked = Unlinked::new();
        let mut leftover = Vec::new();
        let mut listed_in: Option<Arc<Feed>> = None;
        let mut made: Option<Arc<Ring>> = None;
        let outcome = (|| {
            let _reg = inner.table.lock_registry();
            // Relaxed: validated by the generation-checking CAS below.
            if eventcount::generation(slot.state.load(Ordering::Relaxed)) != handle.generation {
                return Err(QueueError::StaleHandle);
            }
            let current = feed_locked(slot, handle.generation);
            let mut rings = current.map(rings_locked).unwrap_or_default();
            let limit = inner.config.max_subscribers_per_handle;
            if rings.len() >= limit {
                leftover = rings;
                return Err(QueueError::SubscriberLimit { limit });
            }
            // Cells hold positions of one feed: shared only within it. The
            // peeked feed is still alive (we hold it), so its address is
            // not another feed's. Decided before anything changes, so that
            // a refusal leaves the handle as it was.
            let cells = match (&peeked, current, fresh.take()) {
                (Some((f, c)), Some(cur), _) if ptr::eq(Arc::as_ptr(f), cur) => c.clone(),
                (_, _, Some(c)) => c,
                // The feed was replaced since the look (rare): new cells.
                (_, _, None) => new_cells(inner, cap)?,
            };
            let feed = match current {
                Some(feed) => arc_of_locked(feed),
                None => {
                    // The generation's first subscriber: a new feed replaces
                    // the slot's (none, or an older generation's).
                    let bytes = Feed::budget_bytes();
                    let charge = Charge::new(&inner.budget, Category::Rings, bytes)?;
                    let feed = Arc::new(Feed::new(handle.generation, charge));
                    // AcqRel: Release publishes the feed to notifiers
                    // (Acquire load in `deliver`); Acquire takes over the
                    // old one for retiring.
                    unlinked.feeds[0] = slot
                        .subscribers
                        .swap(Arc::into_raw(feed.clone()).cast_mut(), Ordering::AcqRel)
                        .cast_const();
                    feed
                }
            };
            let ring = Ring::new(cells, cap, options.overflow, options.hint, ring_charge);
            let ring = made.insert(Arc::new(ring));
            rings.push(ring.clone());
            // The ring starts at the tail its listing CAS leaves (see "One
            // claim per notify"), and so does its receiver, whose position
            // `head` mirrors for the ring's length and drop count. Relaxed:
            // published by that Release CAS.
            unlinked.lists[0] = feed.replace_list(new_list(rings), |tail| {
                if keep_newest {
                    ring.start.store(tail, Ordering::Relaxed);
                    ring.head.store(tail, Ordering::Relaxed);
                }
            });
            let feed = listed_in.insert(feed);
            // The linearisation point (see "Subscribing versus notify").
            // Relaxed: validated by the CAS.
            let mut cur = slot.state.load(Ordering::Relaxed);
            loop {
                if eventcount::generation(cur) != handle.generation {
                    // Unregistered since our check: take our ring out again
                    // (no receiver will ever read it).
                    leftover = remove_locked(slot, feed, ring, &mut unlinked, 1);
                    return Err(QueueError::StaleHandle);
                }
                // AcqRel: Release publishes our feed and list (stored
                // above) to notifies whose CAS reads this word; Acquire
                // orders us after them.
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
        drop(peeked);
        drop(fresh);
        {
            // A feed of an older generation just replaced: its rings (closed,
            // so their positions no longer move) leave the statistics' view.
            // Pinned: its list may be replaced (and retired) by one of its
            // subscriptions ending meanwhile.
            let _guard = crate::sync::pin(&inner.collector);
            // SAFETY: the slot's strong count of the replaced feed is ours
            // until `retire` below.
            if let Some(old) = unsafe { unlinked.feeds[0].as_ref() } {
                // SAFETY: pinned; lists are freed only through `retire`.
                if let Some(list) = unsafe { old.list().as_ref() } {
                    list.rings.iter().for_each(|r| unlisted(inner, r, old));
                }
            }
        }
        if let (Err(_), Some(feed), Some(ring)) = (&outcome, &listed_in, &made) {
            // Our ring was listed for a moment (then taken out again): what
            // it got counts, once.
            unlisted(inner, ring, feed);
        }
        retire(&unlinked, &inner.collector);
        if let Err(err @ QueueError::SubscriberLimit { .. }) = outcome {
            trace::refused(Some(handle.into()), || inner.hint_of(handle), &err);
        }
        outcome?;
        match (made, listed_in) {
            (Some(ring), Some(feed)) => Ok((ring, feed)),
            _ => Err(QueueError::StaleHandle),
        }
    }
}

/// A strong reference to `feed`, the slot's. Caller holds the registry
/// lock, under which the slot's own count is released only after an
/// unlink, so adding one is sound.
fn arc_of_locked(feed: &Feed) -> Arc<Feed> {
    let p: *const Feed = feed;
    // SAFETY: see above.
    unsafe { Arc::increment_strong_count(p) };
    // SAFETY: the count just added is owned by this `Arc`.
    unsafe { Arc::from_raw(p) }
}

/// New cells for a ring of `cap`, charged first.
fn new_cells(inner: &Inner, cap: usize) -> Result<Arc<Cells>, QueueError> {
    let charge = Charge::new(&inner.budget, Category::Rings, Cells::budget_bytes(cap))?;
    Ok(Arc::new(Cells::new(cap, charge)))
}

impl Inner {
    /// Takes `ring` out of its feed's list (a `Subscription` ends).
    pub(crate) fn unsubscribe(&self, handle: Handle, feed: &Feed, ring: &Arc<Ring>) {
        let inner = self;
        let Some(slot) = inner.table.slot(handle) else {
            return;
        };
        // Under the lock: plain data only. No pin, no retire, no drop of a
        // reference that may be the last one (see `retire`).
        let mut unlinked = Unlinked::new();
        let leftover = {
            let _reg = inner.table.lock_registry();
            remove_locked(slot, feed, ring, &mut unlinked, 0)
        };
        drop(leftover);
        retire(&unlinked, &inner.collector);
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

#[cfg(test)]
mod tests {
    use crate::primitives::ring::{Cells, Feed, Ring};
    use crate::{Config, NotificationQueue, QueueError};
    use alloc::boxed::Box;
    use core::cell::RefCell;
    use core::sync::atomic::Ordering;

    std::thread_local! {
        /// What `subscribe` runs between its look for cells to share and
        /// its locked section, once (this thread's next subscribe only).
        static BETWEEN: RefCell<Option<Box<dyn FnOnce()>>> = RefCell::new(None);
    }

    pub(super) fn between_look_and_lock() {
        if let Some(f) = BETWEEN.with(|b| b.borrow_mut().take()) {
            f();
        }
    }

    /// A subscriber finds cells to share in the handle's feed; before it
    /// takes the lock, the last subscriber leaves and the feed goes. Its
    /// re-look needs new cells, and the budget refuses them: the handle
    /// must be left as it was (no feed of its own, nothing held for
    /// subscribers), not with an empty feed holding its charge.
    #[test]
    fn a_refusal_in_the_re_look_leaves_no_feed_behind() {
        const CAP: usize = 64;
        let probe = NotificationQueue::new(Config::default());
        probe.register("h").unwrap();
        let slots = probe.stats().budget.held;
        let (ring, cells, feed) = (
            Ring::budget_bytes(),
            Cells::budget_bytes(CAP),
            Feed::budget_bytes(),
        );
        assert!(
            cells > ring,
            "the refusal must be the cells', whatever the old ring holds"
        );
        // Room for: the old subscriber (ring, cells, feed), the new ring,
        // and one more feed, but not for new cells on top.
        let limit = slots + 2 * ring + cells + 2 * feed;
        let q = NotificationQueue::new(Config::default().memory_budget(limit));
        let h = q.register("h").unwrap();
        assert_eq!(q.stats().budget.held, slots);
        let old = q.subscribe(h, CAP, "old").unwrap();
        BETWEEN.with(|b| *b.borrow_mut() = Some(Box::new(move || drop(old))));
        let err = q.subscribe(h, CAP, "new").unwrap_err();
        assert!(matches!(err, QueueError::MemoryBudget { .. }), "{err:?}");
        let slot = q.inner.table.slot(h).unwrap();
        assert!(slot.subscribers.load(Ordering::Relaxed).is_null());
        assert_eq!(
            slot.state.load(Ordering::Relaxed) & crate::primitives::eventcount::SUBSCRIBED,
            0
        );
        // Everything retired comes back (epoch reclamation is deferred).
        for _ in 0..1_000_000 {
            if q.stats().budget.rings == 0 {
                break;
            }
            std::thread::yield_now();
        }
        assert_eq!(q.stats().budget.rings, 0);
        // And the handle takes a subscriber again.
        let mut s = q.subscribe(h, CAP, "again").unwrap();
        assert_eq!(q.notify(h, 7).unwrap(), 1);
        assert_eq!(s.try_recv(), Ok(7));
    }
}
