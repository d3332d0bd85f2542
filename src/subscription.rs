//! Subscriptions: a bounded ring per subscriber, filled by notify, drained by
//! one receiver, so a slow client can never stall a notifier.
//!
//! # The ring
//!
//! Every [`Subscription`] owns a [`Ring`] of `cap` cells. Each cell is one
//! 128-bit atomic (`cmpxchg16b` / `casp`, through `portable-atomic`)
//! holding a *stamp* (the position written there, 63 bits), a `CONSUMED`
//! bit and the `i64` value:
//!
//! ```text
//!  127       126             64 63                    0
//! +----------+-----------------+-----------------------+
//! | CONSUMED | stamp (63)      | value (64)            |
//! +----------+-----------------+-----------------------+
//! ```
//!
//! Positions are handed out by `tail` (a `u64` that never wraps in practice).
//! Position `p` lives in cell `p % cap`. Cell `i` starts with the stamp of
//! position `i - cap` and `CONSUMED` set: "written one lap ago, nothing to
//! lose".
//!
//! - **Producers** (notifiers, any number at once) claim a position `p` and
//!   then CAS their `(p, value)` into the cell. Before each CAS attempt a
//!   producer reads `tail`: if `p + cap` is already claimed, `p` is obsolete
//!   (lapped while it was preempted; the receiver may be past it) and the
//!   producer counts it as dropped instead of writing. Otherwise the cell
//!   holds an older position of the same cell and the CAS replaces it; when
//!   the replaced word's `CONSUMED` bit is clear, the value it overwrote was
//!   never received: it counts one drop. Producers never wait for anybody
//!   and take no lock: a claim is one `fetch_add` (keep newest) or a CAS
//!   loop bounded by other producers' progress (keep oldest), the write one
//!   CAS loop of the same kind.
//! - **The receiver** (the `Subscription`, `&mut self`) sits at `head` (a
//!   `u64`). It loads cell `head % cap`, then `tail` (and `end`, once
//!   closed), and decides from the 64-bit positions first:
//!   nothing claimed at `head`: `Empty` (or `Closed` once `head >= end`);
//!   `head + cap` claimed: the value at `head` is overwritten or about to
//!   be, so it jumps to the oldest position that stays in the ring
//!   (`claimed - cap`) and returns `Lagged(jump)`. Only in the remaining
//!   window, `head < claimed <= head + cap`, does it look at the stamp: a
//!   match that is not consumed is our value (it CASes `CONSUMED` in; a
//!   producer lapping it at that moment makes the CAS fail, and it looks
//!   again), a mismatch means the notifier that claimed `head` has not
//!   written it yet: `Empty`.
//!
//! # Why the lag count is exact
//!
//! Every position below `tail` ends in exactly one of two ways: the receiver
//! consumes it (its CAS on the cell wins), or the receiver passes it in a
//! `Lagged(n)` jump. A jump only passes positions `q < claimed - cap`; for
//! each of them position `q + cap` is claimed, so its producer (or a later
//! one) replaces `q`'s unconsumed value, or `q`'s own producer sees that
//! claim and abandons: either way the producer side counts `q` once in
//! [`Subscription::dropped`]. So, once the producers in flight have
//! finished, the `Lagged` values reported add up to `dropped()` minus drops
//! made after the ring was closed; nothing disappears without being counted.
//! Lag is measured in `u64` positions, so this holds after any number of
//! notifies, however long the receiver stays silent.
//!
//! With [`Overflow::KeepOldest`] a producer claims a position only while
//! `tail - head < cap` (CAS on `tail`), so it never overwrites or abandons; a
//! rejected value is counted in `dropped` and in `rejected`, which the
//! receiver's next receive swaps out and reports as `Lagged(n)` ahead of the
//! (older) values still buffered.
//!
//! # Stamps
//!
//! A stamp is the whole position (positions stay below 2^63: at one notify
//! per nanosecond that is 292 years), so stamps never wrap and are compared
//! exactly. They are still only compared for equality, and only where the
//! 64-bit positions have already narrowed the cell down: the receiver loads
//! the cell before `tail`, and the cell's word was published after its
//! producer's claim, so the cell's position `s` is below the `claimed` it
//! reads; in the window `head < claimed <= head + cap`, `s <= head`, and
//! `s == head` exactly when the stamp says so. Producers compare no stamps
//! at all. Every CAS compares the whole 128-bit word, which never reappears
//! in a cell (its stamp grows).
//!
//! # Closing
//!
//! Unregistering the handle closes each ring: a CAS on `tail` that sets the
//! `CLOSED` bit, after storing the position it closes at in `end`. A claim
//! that returns `CLOSED` is after the close: that producer writes nothing and
//! counts a drop. Every position below `end` was claimed before the close and
//! will be written (or abandoned for a newer one), so the receiver keeps
//! draining until `head >= end` and only then reports `Closed`.
//!
//! # Waking
//!
//! A receiver about to sleep registers its waker in the ring's
//! `AtomicWaker`, stores `waiting = true`, issues a `SeqCst` fence and looks
//! at the ring again. A notify writes all its rings, issues one `SeqCst`
//! fence, and then wakes (takes and calls the waker of) each ring whose
//! `waiting` it sees set. Of the two fences one is first in the single
//! `SeqCst` order: if the notify's, the receiver's second look sees the
//! write; if the receiver's, the notify sees `waiting` set and the waker
//! registered before it. So no wakeup is lost, and a notify to a receiver
//! that is not sleeping costs a plain load instead of an RMW on the waker.
//! Only the receiver writes `waiting` (it clears it once it has a result);
//! a stale `true` costs a spurious wake. Wakers run outside any lock; a
//! panicking waker is caught and counted. Closing always wakes (an RMW on
//! the waker's state after the `CLOSED` CAS, against the receiver's
//! register-then-look, as `AtomicWaker` documents).
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

use crate::QueueError;
use crate::eventcount::{self, SUBSCRIBED, WakeBatch};
use crate::handle::{Handle, Slot};
use crate::queue::{Inner, NotificationQueue};
use crate::sync::{
    Arc, AtomicBool, AtomicU64, AtomicU128, AtomicWaker, Collector, Hint, Ordering, fence,
};
use crate::wait::park;
use core::fmt;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use crossbeam_utils::CachePadded;
use std::time::{Duration, Instant};

/// Largest ring this crate builds, whatever the configuration says.
const MAX_RING: usize = 1 << 24;

/// A cell: `CONSUMED | stamp (63) | value (64)`.
type Word = u128;
const CONSUMED: Word = 1 << 127;
const STAMP_SHIFT: u32 = 64;
const STAMP_MASK: u64 = (1 << 63) - 1;
/// Set in `tail` once the ring is closed.
const CLOSED: u64 = 1 << 63;

#[inline(always)]
const fn pack(pos: u64, value: i64, consumed: bool) -> Word {
    ((consumed as Word) << 127)
        | (((pos & STAMP_MASK) as Word) << STAMP_SHIFT)
        | (value as u64 as Word)
}

#[inline(always)]
const fn value_of(word: Word) -> i64 {
    word as u64 as i64
}

/// Whether the stamp in `word` is `pos` (see "Stamps" in the module docs).
#[inline(always)]
const fn stamp_matches(word: Word, pos: u64) -> bool {
    ((word >> STAMP_SHIFT) as u64 & STAMP_MASK) == (pos & STAMP_MASK)
}

/// What to keep when a subscriber's buffer is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum Overflow {
    /// Overwrite the oldest buffered value (the default: a client usually
    /// wants the latest state). The receiver skips what was overwritten.
    #[default]
    KeepNewest,
    /// Keep what is buffered and drop the incoming (newest) value.
    KeepOldest,
}

/// Outcome of one push into a ring.
#[derive(Debug, Clone, Copy, Default)]
struct Pushed {
    stored: bool,
    dropped: u64,
}

/// One subscriber's buffer. Shared by the [`Subscription`] (the only
/// receiver) and the subscriber lists (the producers' view).
#[derive(Debug)]
pub(crate) struct Ring {
    cells: Box<[AtomicU128]>,
    cap: u64,
    overflow: Overflow,
    /// Next position to claim, plus `CLOSED`.
    tail: CachePadded<AtomicU64>,
    /// The receiver's position; written only by the receiver.
    head: CachePadded<AtomicU64>,
    /// Position the ring was closed at (valid once `CLOSED` is seen).
    end: AtomicU64,
    /// KeepOldest: values rejected and not yet reported as `Lagged`.
    rejected: AtomicU64,
    /// Values lost to this subscriber (overwritten, rejected, abandoned or
    /// offered after close).
    dropped: AtomicU64,
    waker: AtomicWaker,
    /// Set by the receiver before it sleeps, cleared by it once it has a
    /// result; producers skip the waker entirely while it is clear.
    waiting: AtomicBool,
    hint: Hint,
}

impl Ring {
    fn new(cap: usize, overflow: Overflow, hint: Hint) -> Self {
        let cap64 = cap as u64;
        Self {
            cells: (0..cap64)
                .map(|i| AtomicU128::new(pack(i.wrapping_sub(cap64), 0, true)))
                .collect(),
            cap: cap64,
            overflow,
            tail: CachePadded::new(AtomicU64::new(0)),
            head: CachePadded::new(AtomicU64::new(0)),
            end: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            waker: AtomicWaker::new(),
            waiting: AtomicBool::new(false),
            hint,
        }
    }

    #[inline]
    fn cell(&self, pos: u64) -> &AtomicU128 {
        // `cells.len() == cap > 0`, so the index is in bounds.
        &self.cells[(pos % self.cap) as usize]
    }

    fn count_drop(&self, n: u64) {
        // Relaxed: a counter, read as a statistic.
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Offers `value`; never blocks. Does not wake the receiver: the caller
    /// does, after a `SeqCst` fence (see "Waking").
    fn push(&self, value: i64) -> Pushed {
        let pos = match self.overflow {
            Overflow::KeepNewest => {
                // Relaxed: the claim only hands out a position; the value is
                // published by the cell CAS (Release), and `CLOSED` is read
                // from the word's modification order.
                let t = self.tail.fetch_add(1, Ordering::Relaxed);
                if t & CLOSED != 0 {
                    self.count_drop(1);
                    return Pushed {
                        stored: false,
                        dropped: 1,
                    };
                }
                t
            }
            Overflow::KeepOldest => {
                // Relaxed: validated by the CAS below.
                let mut t = self.tail.load(Ordering::Relaxed);
                loop {
                    if t & CLOSED != 0 {
                        self.count_drop(1);
                        return Pushed {
                            stored: false,
                            dropped: 1,
                        };
                    }
                    // Acquire pairs with the receiver's Release store of
                    // `head`: its consuming CAS of position `t - cap` is
                    // then ordered before our write of `t` into that cell.
                    let h = self.head.load(Ordering::Acquire);
                    if t.wrapping_sub(h) >= self.cap {
                        // Relaxed: counters; the receiver swaps `rejected`
                        // out, and the caller's wake tells it to look.
                        self.rejected.fetch_add(1, Ordering::Relaxed);
                        self.count_drop(1);
                        return Pushed {
                            stored: false,
                            dropped: 1,
                        };
                    }
                    // Relaxed: as for the `fetch_add` above.
                    match self.tail.compare_exchange_weak(
                        t,
                        t + 1,
                        Ordering::Relaxed,
                        Ordering::Relaxed,
                    ) {
                        Ok(_) => break t,
                        Err(actual) => t = actual,
                    }
                }
            }
        };
        let dropped = self.write(pos, value);
        Pushed {
            stored: true,
            dropped,
        }
    }

    /// Stores `value` at the claimed position `pos`; returns the drops it
    /// caused (0 or 1).
    ///
    /// Decided from the 64-bit positions, not the 31-bit stamps: once
    /// `pos + cap` is claimed, `pos` is obsolete (the receiver may already
    /// have jumped past it) and is abandoned; before that, the cell holds an
    /// older position of the same cell (it is below `claimed <= pos + cap`),
    /// which we replace.
    fn write(&self, pos: u64, value: i64) -> u64 {
        let cell = self.cell(pos);
        let fresh = pack(pos, value, false);
        // Acquire: a later position found here has its claim on `tail`
        // ordered before our load of `tail` below (as in `recv`).
        let mut cur = cell.load(Ordering::Acquire);
        loop {
            if self.claimed() - pos > self.cap {
                // Lapped between claim and write: `pos + cap` is claimed, so
                // ours is obsolete (lost, and counted).
                self.count_drop(1);
                return 1;
            }
            // Release: the receiver's Acquire load of the cell then also sees
            // our claim on `tail` (it reads `tail` to place the cell).
            // Acquire on failure: as for the load above.
            match cell.compare_exchange_weak(cur, fresh, Ordering::Release, Ordering::Acquire) {
                Ok(_) => {
                    if cur & CONSUMED == 0 {
                        self.count_drop(1);
                        return 1;
                    }
                    return 0;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// Wakes the receiver, outside any lock; returns whether its waker
    /// panicked (caught).
    fn wake(&self) -> bool {
        match self.waker.take() {
            Some(w) => std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| w.wake())).is_err(),
            None => false,
        }
    }

    /// Closes the ring at the current tail (see "Closing"); returns whether
    /// the receiver's waker panicked. Only the unregister of the ring's
    /// generation gets past the `CLOSED` check, so there is one closer.
    fn close(&self) -> bool {
        // Relaxed: validated by the CAS.
        let mut t = self.tail.load(Ordering::Relaxed);
        loop {
            if t & CLOSED != 0 {
                return false;
            }
            // Relaxed: published by the Release CAS below; the receiver reads
            // `end` only after an Acquire load of `tail` that saw `CLOSED`.
            self.end.store(t, Ordering::Relaxed);
            // Release: see the store of `end` above.
            match self.tail.compare_exchange_weak(
                t,
                t | CLOSED,
                Ordering::Release,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => t = actual,
            }
        }
        self.wake()
    }

    /// Positions claimed before the close (or all, while open), and whether
    /// the ring is closed.
    fn positions(&self) -> (u64, bool) {
        // Acquire: pairs with `close`'s Release CAS, so `end` is valid; and
        // with producers' claims, as the callers' comments say.
        let t = self.tail.load(Ordering::Acquire);
        if t & CLOSED != 0 {
            // Relaxed: ordered by the Acquire load above.
            ((t & !CLOSED).min(self.end.load(Ordering::Relaxed)), true)
        } else {
            (t, false)
        }
    }

    /// Positions claimed before the close (or all, while open).
    fn claimed(&self) -> u64 {
        self.positions().0
    }

    /// Moves the receiver to `to`.
    fn advance(&self, head: &mut u64, to: u64) {
        *head = to;
        // Release pairs with KeepOldest producers' Acquire load of `head`.
        self.head.store(to, Ordering::Release);
    }

    /// The receiver's side of [`Subscription::try_recv`]: `head` is its
    /// position (only the one receiver calls this).
    fn recv(&self, head: &mut u64) -> Result<i64, TryRecvError> {
        // Relaxed: only a cheap check; the swap is what takes the count.
        if self.rejected.load(Ordering::Relaxed) != 0 {
            // Relaxed: a counter; the values themselves travel in the cells.
            let n = self.rejected.swap(0, Ordering::Relaxed);
            if n != 0 {
                return Err(TryRecvError::Lagged(n));
            }
        }
        loop {
            let h = *head;
            let cell = self.cell(h);
            // Acquire pairs with the producer's Release CAS: the value, and
            // its earlier claim on `tail`, which the load of `tail` below
            // therefore sees (so the cell's position is below `claimed`).
            let cur = cell.load(Ordering::Acquire);
            // Decide from the 64-bit positions first; the cell is consulted
            // only once they place it in its unambiguous window.
            let (claimed, closed) = self.positions();
            if claimed <= h {
                // Nothing claimed at `h` (once closed, `claimed` is `end`).
                return Err(if closed {
                    TryRecvError::Closed
                } else {
                    TryRecvError::Empty
                });
            }
            if claimed - h > self.cap {
                // Position `h + cap` is claimed: `h` is (or will be)
                // overwritten, and so is everything below `claimed - cap`.
                // Jump to the oldest position that stays in the ring.
                let next = claimed - self.cap;
                self.advance(head, next);
                return Err(TryRecvError::Lagged(next - h));
            }
            // `h < claimed <= h + cap`: the cell holds some position `s`
            // with `s % cap == h % cap` and `s < claimed <= h + cap`, so
            // `s <= h`; and `s == h` exactly when the 31-bit stamps agree,
            // because `s > h - 2^31` (see "Stamps" in the module docs).
            if !stamp_matches(cur, h) {
                // `s < h`: the notifier that claimed `h` has not written it
                // yet.
                return Err(TryRecvError::Empty);
            }
            if cur & CONSUMED != 0 {
                // Only we set CONSUMED and we advance right after; skip.
                self.advance(head, h + 1);
                continue;
            }
            // Relaxed: the word was Acquire-loaded; the CAS only decides
            // whether we or an overwriting producer own this value.
            if cell
                .compare_exchange(cur, cur | CONSUMED, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
            {
                self.advance(head, h + 1);
                return Ok(value_of(cur));
            }
            // Overwritten right now: look again (the positions will say lag).
        }
    }

    fn len(&self) -> usize {
        // Relaxed: a statistic.
        let head = self.head.load(Ordering::Relaxed);
        self.claimed().saturating_sub(head).min(self.cap) as usize
    }

    fn info(&self) -> SubscriberInfo {
        SubscriberInfo {
            hint: self.hint.clone(),
            len: self.len(),
            capacity: self.cap as usize,
            // Relaxed: a statistic.
            dropped: self.dropped.load(Ordering::Relaxed),
            overflow: self.overflow,
        }
    }
}

/// The subscribers of one generation of one slot. Immutable once published.
#[derive(Debug)]
pub(crate) struct SubscriberList {
    generation: u32,
    rings: Box<[Arc<Ring>]>,
}

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
        crate::queue::retire(l.0, &guard);
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
pub(crate) fn deliver(slot: &Slot, prev: u64, arg: i64, inner: &Inner) -> usize {
    let mut batch = WakeBatch::new();
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
        let (mut stored, mut dropped) = (0usize, 0u64);
        for ring in list.rings.iter() {
            let r = ring.push(arg);
            stored += r.stored as usize;
            dropped += r.dropped;
        }
        // SeqCst fence: orders our cell writes before the loads of `waiting`
        // below, against the receiver's store of `waiting` and its fence
        // before it looks at the ring again (see "Waking").
        fence(Ordering::SeqCst);
        let mut rest = None;
        for (i, ring) in list.rings.iter().enumerate() {
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
            }
        }
        // Relaxed: statistics.
        if stored > 0 {
            inner
                .counters
                .delivered
                .fetch_add(stored as u64, Ordering::Relaxed);
        }
        if dropped > 0 {
            inner.counters.dropped.fetch_add(dropped, Ordering::Relaxed);
        }
        (stored, rest)
    };
    let mut panicked = batch.wake().panicked as u64;
    if let Some((list, from)) = rest {
        for ring in list.rings.iter().skip(from) {
            // Relaxed: ordered by the fence in the pinned section.
            if ring.waiting.load(Ordering::Relaxed) {
                panicked += ring.wake() as u64;
            }
        }
    }
    inner.note_panics(panicked);
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
pub(crate) fn close_all(slot: &Slot, inner: &Inner) {
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
    inner.note_panics(panicked);
}

/// Frees the slot's subscriber list when the queue itself is dropped.
pub(crate) fn release(slot: &Slot) {
    // Acquire: take over the list.
    let p = slot
        .subscribers
        .swap(core::ptr::null_mut(), Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: the table is being dropped (`&mut`), so no notifier can
        // still read the pointer; the slot owned one strong count.
        drop(unsafe { Arc::from_raw(p) });
    }
}

/// One subscription, as listed by the debug dump
/// ([`HandleInfo::subscribers`](crate::HandleInfo::subscribers)).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SubscriberInfo {
    /// The subscription's hint.
    pub hint: Hint,
    /// Values buffered, not yet received.
    pub len: usize,
    /// The buffer's capacity.
    pub capacity: usize,
    /// Values this subscriber lost (see [`Subscription::dropped`]).
    pub dropped: u64,
    /// What it keeps when full.
    pub overflow: Overflow,
}

/// Subscribers of `handle` for the debug dump.
pub(crate) fn infos(queue: &NotificationQueue, handle: Handle) -> Vec<SubscriberInfo> {
    let inner = &*queue.inner;
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

/// Options for [`NotificationQueue::subscribe_with`].
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

impl NotificationQueue {
    /// Subscribes to `handle` with a buffer of `capacity` values that keeps
    /// the newest when full ([`Overflow::KeepNewest`]).
    ///
    /// Errors: [`QueueError::InvalidCapacity`] for 0 or above
    /// `Config::max_subscriber_capacity`, [`QueueError::StaleHandle`] for an
    /// unregistered or foreign handle, [`QueueError::SubscriberLimit`] when
    /// the handle has `Config::max_subscribers_per_handle` subscriptions.
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue, QueueError, TryRecvError};
    ///
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let mut sub = queue.subscribe(h, 4, "client").unwrap();
    /// queue.notify(h, 1).unwrap();
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    /// assert!(matches!(queue.subscribe(h, 0, "x"), Err(QueueError::InvalidCapacity { .. })));
    /// ```
    pub fn subscribe(
        &self,
        handle: Handle,
        capacity: usize,
        hint: impl Into<Hint>,
    ) -> Result<Subscription, QueueError> {
        self.subscribe_with(handle, SubscribeOptions::new(capacity).hint(hint))
    }

    /// Subscribes to `handle` with explicit [`SubscribeOptions`]; errors as
    /// for [`subscribe`](Self::subscribe).
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue, Overflow, SubscribeOptions, TryRecvError};
    ///
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let opts = SubscribeOptions::new(2).overflow(Overflow::KeepOldest);
    /// let mut sub = queue.subscribe_with(h, opts).unwrap();
    /// for v in 1..=5 {
    ///     queue.notify(h, v).unwrap();
    /// }
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged(3))); // 3, 4, 5 rejected
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// assert_eq!(sub.try_recv(), Ok(2));
    /// ```
    pub fn subscribe_with(
        &self,
        handle: Handle,
        options: SubscribeOptions,
    ) -> Result<Subscription, QueueError> {
        let inner = &*self.inner;
        let max = inner.config.max_subscriber_capacity.min(MAX_RING);
        if options.capacity == 0 || options.capacity > max {
            return Err(QueueError::InvalidCapacity {
                requested: options.capacity,
                max,
            });
        }
        let slot = inner.table.slot(handle).ok_or(QueueError::StaleHandle)?;
        let ring = Arc::new(Ring::new(options.capacity, options.overflow, options.hint));
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
        retire_lists(&unlinked, &inner.collector);
        outcome?;
        Ok(Subscription {
            queue: self.clone(),
            handle,
            ring,
            head: 0,
            closed: false,
        })
    }
}

/// Why [`Subscription::try_recv`] returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// Nothing buffered right now.
    Empty,
    /// This many values were lost (overwritten or rejected) since the last
    /// receive; the next receive goes on with what is buffered.
    Lagged(u64),
    /// The handle was unregistered and everything buffered was received.
    Closed,
}

/// Why [`Recv`] (or a blocking receive without timeout) returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecvError {
    /// This many values were lost since the last receive.
    Lagged(u64),
    /// The handle was unregistered and everything buffered was received.
    Closed,
}

/// Why [`Subscription::recv_timeout`] / [`Subscription::recv_deadline`]
/// returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecvTimeoutError {
    /// This many values were lost since the last receive.
    Lagged(u64),
    /// The handle was unregistered and everything buffered was received.
    Closed,
    /// Nothing arrived before the timeout or deadline.
    Timeout,
}

/// Values lost before the next item of a subscription's `Stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lagged(pub u64);

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("subscription buffer is empty"),
            Self::Lagged(n) => write!(f, "subscriber lagged: {n} values lost"),
            Self::Closed => f.write_str("subscription closed"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lagged(n) => write!(f, "subscriber lagged: {n} values lost"),
            Self::Closed => f.write_str("subscription closed"),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lagged(n) => write!(f, "subscriber lagged: {n} values lost"),
            Self::Closed => f.write_str("subscription closed"),
            Self::Timeout => f.write_str("receive timed out"),
        }
    }
}

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subscriber lagged: {} values lost", self.0)
    }
}

impl std::error::Error for TryRecvError {}
impl std::error::Error for RecvError {}
impl std::error::Error for RecvTimeoutError {}
impl std::error::Error for Lagged {}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => Self::Lagged(n),
            RecvError::Closed => Self::Closed,
        }
    }
}

/// A bounded channel of one handle's notify arguments.
///
/// Created by [`NotificationQueue::subscribe`]. Owns a clone of the queue,
/// so it is `'static` and `Send`. Dropping it (or
/// [`unsubscribe`](Self::unsubscribe)) unsubscribes.
///
/// notify never waits for a subscription: when the buffer is full the
/// [`Overflow`] policy decides what is lost, and the next receive reports
/// how much as `Lagged(n)` before returning further values. Unregistering
/// the handle ends the subscription after what was already buffered has been
/// received (then `Closed`).
///
/// Receiving: [`try_recv`](Self::try_recv); [`recv`](Self::recv) returns a
/// [`Recv`] future that also blocks with [`Recv::wait`]; thread-blocking
/// [`recv_timeout`](Self::recv_timeout) / [`recv_deadline`](Self::recv_deadline);
/// and, with the `stream` feature, `futures_core::Stream` with items
/// `Result<i64, Lagged>`, ending after `Closed`.
///
/// ```
/// use notification_queue::{Config, NotificationQueue, RecvError, TryRecvError};
///
/// let queue = NotificationQueue::new(Config::default());
/// let h = queue.register("sensor").unwrap();
/// let mut sub = queue.subscribe(h, 2, "display").unwrap();
/// for v in 1..=5 {
///     queue.notify(h, v).unwrap(); // never blocks, even when `sub` is full
/// }
/// assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged(3))); // 1, 2, 3 overwritten
/// assert_eq!(sub.try_recv(), Ok(4));
/// queue.unregister(h).unwrap();
/// assert_eq!(sub.recv().wait(), Ok(5)); // drains what was buffered ...
/// assert_eq!(sub.recv().wait(), Err(RecvError::Closed)); // ... then ends
/// assert_eq!(sub.dropped(), 3);
/// ```
#[derive(Debug)]
pub struct Subscription {
    queue: NotificationQueue,
    handle: Handle,
    ring: Arc<Ring>,
    /// Receiver position (mirrored into `ring.head` for producers).
    head: u64,
    /// `Closed` was reported; sticky.
    closed: bool,
}

impl Subscription {
    /// The handle this subscription listens to.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The buffer's capacity.
    pub fn capacity(&self) -> usize {
        self.ring.cap as usize
    }

    /// Values buffered and not yet received.
    pub fn len(&self) -> usize {
        self.ring.len()
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.ring.overflow
    }

    /// The debug hint.
    pub fn hint(&self) -> &Hint {
        &self.ring.hint
    }

    /// Values this subscriber has lost so far: overwritten before being
    /// received ([`Overflow::KeepNewest`]), rejected while full
    /// ([`Overflow::KeepOldest`]), or offered by a notify that raced with
    /// unregister and arrived after the close. Counted by the notifiers, so
    /// it grows even if the subscriber never receives.
    pub fn dropped(&self) -> u64 {
        // Relaxed: a statistic.
        self.ring.dropped.load(Ordering::Relaxed)
    }

    /// Whether the handle was unregistered (values may still be buffered).
    pub fn is_closed(&self) -> bool {
        // Relaxed: a status snapshot; receiving re-reads it with Acquire.
        self.ring.tail.load(Ordering::Relaxed) & CLOSED != 0
    }

    /// Receives the next value without waiting.
    ///
    /// `Err(Lagged(n))` says `n` values were lost before the next one;
    /// `Err(Closed)` comes once the handle is unregistered and everything
    /// buffered was received. `Empty` may also be returned for a moment while
    /// a notifier that claimed the next position has not yet written it.
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue, TryRecvError};
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let mut sub = queue.subscribe(h, 8, "").unwrap();
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    /// queue.notify(h, 3).unwrap();
    /// assert_eq!(sub.try_recv(), Ok(3));
    /// ```
    pub fn try_recv(&mut self) -> Result<i64, TryRecvError> {
        if self.closed {
            return Err(TryRecvError::Closed);
        }
        let r = self.ring.recv(&mut self.head);
        if r == Err(TryRecvError::Closed) {
            self.closed = true;
        }
        r
    }

    /// One receive attempt that registers `waker` when nothing is there.
    fn poll_recv(&mut self, waker: &Waker) -> Poll<Result<i64, RecvError>> {
        let first = self.try_recv();
        let got = if first == Err(TryRecvError::Empty) {
            self.ring.waker.register(waker);
            // Relaxed: ordered by the fence below.
            self.ring.waiting.store(true, Ordering::Relaxed);
            // SeqCst fence: pairs with the fence in `deliver` (see "Waking").
            fence(Ordering::SeqCst);
            // Look again after registering.
            self.try_recv()
        } else {
            first
        };
        let out = match got {
            Ok(v) => Ok(v),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Empty) => return Poll::Pending,
        };
        // Done waiting: clear `waiting` and drop the waker registered for
        // this receive (if a notify has not taken it), so nothing of it
        // stays behind in the ring.
        self.cancel_wait();
        Poll::Ready(out)
    }

    /// Withdraws a pending receive (its `Recv` was dropped, or a blocking
    /// receive gave up): clears `waiting` so notifies stop looking at the
    /// waker, and takes the waker out and drops it here (no lock is held).
    /// A notify racing with this may still take and wake it once.
    fn cancel_wait(&self) {
        // Relaxed: only the receiver writes `waiting`; a notify that still
        // sees it set only makes a spurious wake.
        if self.ring.waiting.load(Ordering::Relaxed) {
            self.ring.waiting.store(false, Ordering::Relaxed);
            drop(self.ring.waker.take());
        }
    }

    fn block(&mut self, deadline: Option<Instant>) -> Result<i64, RecvTimeoutError> {
        let waker = park::current_waker();
        loop {
            if let Poll::Ready(r) = self.poll_recv(&waker) {
                return r.map_err(Into::into);
            }
            if !park::park_until(deadline) {
                self.cancel_wait();
                return Err(RecvTimeoutError::Timeout);
            }
        }
    }

    /// A future for the next value, for any executor; [`Recv::wait`] blocks
    /// the thread instead.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses nothing: a value is taken from the buffer
    /// only in the poll that returns it.
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue};
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let mut sub = queue.subscribe(h, 8, "").unwrap();
    /// let q2 = queue.clone();
    /// let t = std::thread::spawn(move || q2.notify(h, 9));
    /// assert_eq!(futures::executor::block_on(sub.recv()), Ok(9));
    /// t.join().unwrap().unwrap();
    /// ```
    pub fn recv(&mut self) -> Recv<'_> {
        Recv { sub: self }
    }

    /// Blocks the thread for the next value, at most `timeout`.
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue, RecvTimeoutError};
    /// use std::time::Duration;
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let mut sub = queue.subscribe(h, 8, "").unwrap();
    /// let t = Duration::from_millis(1);
    /// assert_eq!(sub.recv_timeout(t), Err(RecvTimeoutError::Timeout));
    /// queue.notify(h, 2).unwrap();
    /// assert_eq!(sub.recv_timeout(t), Ok(2));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<i64, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.block(Some(deadline)),
            None => self.block(None),
        }
    }

    /// Blocks the thread for the next value until `deadline`.
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue, RecvTimeoutError};
    /// use std::time::Instant;
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let mut sub = queue.subscribe(h, 8, "").unwrap();
    /// assert_eq!(sub.recv_deadline(Instant::now()), Err(RecvTimeoutError::Timeout));
    /// ```
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<i64, RecvTimeoutError> {
        self.block(Some(deadline))
    }

    /// Unsubscribes now (the same as dropping it).
    pub fn unsubscribe(self) {
        drop(self);
    }

    fn detach(&mut self) {
        // Take our waker out first and drop it here, with no lock held: the
        // ring may be freed later on any thread, which must not run client
        // code (a waker's drop).
        drop(self.ring.waker.take());
        // Relaxed: only the receiver writes `waiting`.
        self.ring.waiting.store(false, Ordering::Relaxed);
        let inner = &*self.queue.inner;
        let Some(slot) = inner.table.slot(self.handle) else {
            return;
        };
        // Under the lock: plain data only. No pin, no retire, no drop of a
        // reference that may be the last one (see `retire_lists`).
        let (unlinked, leftover) = {
            let _reg = inner.table.lock_registry();
            let mut rings = current_rings(slot, self.handle.generation);
            let before = rings.len();
            // Our own entry: `self.ring` keeps that allocation alive, so
            // dropping this clone under the lock frees nothing.
            rings.retain(|r| !Arc::ptr_eq(r, &self.ring));
            if rings.len() == before {
                (Unlinked(core::ptr::null()), rings)
            } else {
                let empty = rings.is_empty();
                let unlinked = swap_list(slot, self.handle.generation, rings);
                if empty {
                    clear_subscribed(slot, self.handle.generation);
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

impl Drop for Subscription {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Future of [`Subscription::recv`]: the next value, `Lagged(n)` or
/// `Closed`.
///
/// Dropping it while pending withdraws the wait: its waker is dropped and
/// later notifies do not wake it.
#[must_use = "a Recv does nothing unless polled or waited on"]
#[derive(Debug)]
pub struct Recv<'a> {
    sub: &'a mut Subscription,
}

impl Drop for Recv<'_> {
    fn drop(&mut self) {
        self.sub.cancel_wait();
    }
}

impl Recv<'_> {
    /// Blocks the thread until a value (or `Lagged` / `Closed`).
    pub fn wait(self) -> Result<i64, RecvError> {
        match self.sub.block(None) {
            Ok(v) => Ok(v),
            Err(RecvTimeoutError::Lagged(n)) => Err(RecvError::Lagged(n)),
            // Without a deadline `block` never times out.
            Err(RecvTimeoutError::Closed | RecvTimeoutError::Timeout) => Err(RecvError::Closed),
        }
    }
}

impl Future for Recv<'_> {
    type Output = Result<i64, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().sub.poll_recv(cx.waker())
    }
}

/// Items are `Ok(value)` or `Err(Lagged(n))` (values lost before the next
/// item); the stream ends after the handle is unregistered and the buffer is
/// drained.
#[cfg(feature = "stream")]
impl futures_core::Stream for Subscription {
    type Item = Result<i64, Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().poll_recv(cx.waker()) {
            Poll::Ready(Ok(v)) => Poll::Ready(Some(Ok(v))),
            Poll::Ready(Err(RecvError::Lagged(n))) => Poll::Ready(Some(Err(Lagged(n)))),
            Poll::Ready(Err(RecvError::Closed)) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(feature = "stream")]
impl futures_core::FusedStream for Subscription {
    fn is_terminated(&self) -> bool {
        self.closed
    }
}

/// Test hooks: build ring states that take billions of notifies to reach.
#[cfg(all(test, not(notification_queue_loom)))]
impl Ring {
    /// A ring whose positions start at `start`, as if `start` values had
    /// been pushed and received, so stamps can be driven across their wrap.
    fn starting_at(cap: usize, overflow: Overflow, start: u64) -> Self {
        let ring = Self::new(cap, overflow, Hint::from(""));
        let cap = cap as u64;
        for i in 0..cap {
            // The last position below `start` that lives in cell `i` (one
            // lap before the first, if none): written and received.
            let last = if start > i {
                start - 1 - (start - 1 - i) % cap
            } else {
                i.wrapping_sub(cap)
            };
            ring.cells[i as usize].store(pack(last, 0, true), Ordering::Relaxed);
        }
        ring.tail.store(start, Ordering::Relaxed);
        ring.head.store(start, Ordering::Relaxed);
        ring
    }

    /// The state `k` sequential keep-newest pushes of `value(position)`
    /// leave (no receiver running meanwhile), without doing them: only the
    /// last `cap` positions are written, and every value the pushes would
    /// have overwritten is counted as dropped, as `write` counts it.
    fn push_many(&self, k: u64, value: impl Fn(u64) -> i64) {
        assert_eq!(self.overflow, Overflow::KeepNewest);
        let t = self.tail.load(Ordering::Relaxed);
        assert_eq!(t & CLOSED, 0);
        if k <= self.cap {
            for p in t..t + k {
                self.push(value(p));
            }
            return;
        }
        // Each cell is overwritten at least once: its unreceived value is
        // lost, and so is every position of the batch but the last `cap`.
        let mut drops = k - self.cap;
        for c in self.cells.iter() {
            if c.load(Ordering::Relaxed) & CONSUMED == 0 {
                drops += 1;
            }
        }
        for p in t + k - self.cap..t + k {
            self.cell(p)
                .store(pack(p, value(p), false), Ordering::Relaxed);
        }
        self.tail.store(t + k, Ordering::Relaxed);
        self.count_drop(drops);
    }
}

#[cfg(all(test, not(notification_queue_loom)))]
mod tests {
    use super::*;

    #[test]
    fn stamps_pack_the_low_31_bits_of_the_position() {
        let w = pack(5, -1, false);
        assert!(stamp_matches(w, 5));
        assert!(!stamp_matches(w, 4));
        assert_eq!(value_of(w), -1);
        assert_eq!(w & CONSUMED, 0);
        // Positions 2^31 apart share a stamp: only the 64-bit positions
        // around it (the window) make a match mean "this position".
        let wrapped = pack(STAMP_MASK + 2, 7, true);
        assert!(stamp_matches(wrapped, 1));
        assert!(stamp_matches(wrapped, STAMP_MASK + 2));
        assert_ne!(wrapped & CONSUMED, 0);
        assert_eq!(value_of(wrapped), 7);
        // Initial cells hold "one lap ago".
        let init = pack(0u64.wrapping_sub(4), 0, true);
        assert!(stamp_matches(init, u64::MAX - 3));
    }

    fn val(p: u64) -> i64 {
        (p as i64).wrapping_mul(31).wrapping_add(7)
    }

    /// Receives until `Empty` / `Closed`: the values and lags, in order.
    fn drain(ring: &Ring, head: &mut u64) -> (Vec<Result<i64, TryRecvError>>, TryRecvError) {
        let mut out = Vec::new();
        loop {
            match ring.recv(head) {
                Err(e @ (TryRecvError::Empty | TryRecvError::Closed)) => return (out, e),
                r => out.push(r),
            }
        }
    }

    /// What a silent receiver must see after `k` pushes into `cap` cells
    /// starting at `start`: the exact lag, then the newest `cap` values.
    fn expected(start: u64, k: u64, cap: u64) -> Vec<Result<i64, TryRecvError>> {
        let mut want = Vec::new();
        let first = if k > cap {
            want.push(Err(TryRecvError::Lagged(k - cap)));
            start + k - cap
        } else {
            start
        };
        want.extend((first..start + k).map(|p| Ok(val(p))));
        want
    }

    /// A receiver that never reads gets the exact lag after any number of
    /// notifies, in particular across the 31-bit stamp wrap (2^30 and 2^31
    /// ahead) and far beyond it.
    #[test]
    fn silent_receiver_gets_exact_lag_after_any_number_of_pushes() {
        let half = 1u64 << 30;
        let wrap = 1u64 << 31;
        for cap in [1u64, 2, 3, 4, 1000] {
            for base in [half, wrap, 2 * wrap, 3 * half, 1 << 40] {
                for k in [
                    base - cap - 1,
                    base - 1,
                    base,
                    base + 1,
                    base + cap,
                    base + cap + 1,
                ] {
                    for start in [0u64, 5, wrap - 3] {
                        let ring = Ring::starting_at(cap as usize, Overflow::KeepNewest, start);
                        let mut head = start;
                        ring.push_many(k, val);
                        assert_eq!(ring.len() as u64, k.min(cap));
                        let (got, end) = drain(&ring, &mut head);
                        assert_eq!(
                            got,
                            expected(start, k, cap),
                            "cap {cap}, start {start}, k {k}"
                        );
                        assert_eq!(end, TryRecvError::Empty);
                        assert_eq!(ring.dropped.load(Ordering::Relaxed), k.saturating_sub(cap));
                        // Real pushes after the jump go on normally.
                        ring.push(1);
                        assert_eq!(ring.recv(&mut head), Ok(1));
                    }
                }
            }
        }
    }

    /// Normal traffic straddling the stamp wrap (positions around 2^31 and
    /// 2^32): in-order values, exact lags, drain to `Closed`.
    #[test]
    fn traffic_across_the_stamp_wrap_is_exact() {
        for start in [(1u64 << 31) - 20, (1 << 32) - 20, (3 << 30) - 20] {
            for cap in [1u64, 3, 8] {
                let ring = Ring::starting_at(cap as usize, Overflow::KeepNewest, start);
                let mut head = start;
                let mut pos = start;
                let mut lost = 0;
                for round in 0..20u64 {
                    let k = round % 5 + round % 3 * cap; // sometimes overflows
                    for _ in 0..k {
                        ring.push(val(pos));
                        pos += 1;
                    }
                    let (got, end) = drain(&ring, &mut head);
                    assert_eq!(end, TryRecvError::Empty);
                    assert_eq!(got, expected(pos - k, k, cap), "start {start} cap {cap}");
                    lost += k.saturating_sub(cap);
                }
                assert_eq!(ring.dropped.load(Ordering::Relaxed), lost);
                ring.push(val(pos));
                ring.close();
                assert_eq!(ring.recv(&mut head), Ok(val(pos)));
                assert_eq!(ring.recv(&mut head), Err(TryRecvError::Closed));
            }
        }
    }

    fn noop_cx() -> core::task::Context<'static> {
        core::task::Context::from_waker(Waker::noop())
    }

    /// Cancelling a pending receive (dropping its `Recv`, or a blocking
    /// receive timing out) clears `waiting` and takes the waker out, so
    /// notify goes back to one plain load for this ring.
    #[test]
    fn cancelled_receives_leave_waiting_clear_and_no_waker() {
        let q = NotificationQueue::new(crate::Config::default());
        let h = q.register("h").unwrap();
        let mut sub = q.subscribe(h, 2, "").unwrap();
        {
            let mut fut = sub.recv();
            let poll = Pin::new(&mut fut).poll(&mut noop_cx());
            assert!(poll.is_pending());
        }
        assert!(!sub.ring.waiting.load(Ordering::Relaxed));
        assert!(sub.ring.waker.take().is_none());
        assert_eq!(
            sub.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(!sub.ring.waiting.load(Ordering::Relaxed));
        assert!(sub.ring.waker.take().is_none());
        // A receive that completes after being woken clears it too.
        let mut fut = sub.recv();
        assert!(Pin::new(&mut fut).poll(&mut noop_cx()).is_pending());
        q.notify(h, 1).unwrap();
        assert_eq!(Pin::new(&mut fut).poll(&mut noop_cx()), Poll::Ready(Ok(1)));
        drop(fut);
        assert!(!sub.ring.waiting.load(Ordering::Relaxed));
        assert!(sub.ring.waker.take().is_none());
    }

    /// Closing after a silent stretch longer than the stamp range: the
    /// receiver reports the exact lag, drains, then `Closed`.
    #[test]
    fn close_after_a_wrapped_silent_stretch_drains_exactly() {
        for k in [(1u64 << 30) + 5, (1 << 31) + 5, (1 << 31) + 6] {
            let ring = Ring::starting_at(2, Overflow::KeepNewest, 0);
            ring.push_many(k, val);
            ring.close();
            let mut head = 0;
            let (got, end) = drain(&ring, &mut head);
            assert_eq!(got, expected(0, k, 2), "k {k}");
            assert_eq!(end, TryRecvError::Closed);
        }
    }
}
