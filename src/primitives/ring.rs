//! The subscription ring: a bounded buffer per subscriber, filled by any
//! number of notifiers, drained by one receiver, so a slow client can never
//! stall a notifier. (The lists of rings per handle are in `state::fanout`;
//! the receiving side, [`Subscription`](crate::Subscription), in `client::subscription`.)
//!
//! # The ring
//!
//! Every [`Subscription`](crate::Subscription) owns a [`Ring`] of `cap` cells. Each cell is one
//! 128-bit atomic (`cmpxchg16b` / `casp`, through `portable-atomic`; on
//! x86-64 with SSE the hardware paths are inlined, `sync/atomic128.rs`)
//! holding a *stamp* (the position written there, plus one, so that 0 means
//! "never written"; 63 bits) and the `i64` value:
//!
//! ```text
//!  127  126                64 63                    0
//! +---+---------------------+-----------------------+
//! | 0 | stamp = pos + 1 (63)| value (64)            |
//! +---+---------------------+-----------------------+
//! ```
//!
//! Positions are handed out by `tail` (a `u64` that never wraps in practice).
//! Position `p` lives in cell `p % cap`. A cell's stamp only grows.
//!
//! - **Producers** (notifiers, any number at once). Keep newest: a claim is
//!   one `fetch_add` on `tail`; the write is a CAS of `(p, value)` into the
//!   cell that replaces whatever *older* position the cell holds. A producer
//!   that finds a newer position there (it was lapped while preempted) leaves
//!   it: its own position is out of the newest `cap` already. So an obsolete
//!   producer can never overwrite a newer value, and every position among the
//!   newest `cap` claimed is written by its producer, whatever the
//!   interleaving. Keep oldest: a producer claims a position only while
//!   `tail - head < cap` (CAS on `tail`), so the cell's previous position has
//!   been received and nobody else can write the cell until ours is: the
//!   write is a plain (atomic) store. Producers never wait for anybody and
//!   take no lock.
//! - **The receiver** (the `Subscription`, `&mut self`) sits at `head` (a
//!   `u64`). It loads cell `head % cap`, then `tail` (and `end`, once
//!   closed): when the stamp says `head` and `head + cap` is not claimed,
//!   the value is ours, and receiving it is a load plus a store of `head`
//!   (no read-modify-write). Otherwise it decides from the 64-bit positions:
//!   nothing claimed at `head`: `Empty` (or `Closed` once `head >= end`);
//!   `head + cap` claimed: everything below `claimed - cap` is (or will be)
//!   overwritten, so it jumps to `claimed - cap` and returns `Lagged(jump)`;
//!   in the remaining window `head < claimed <= head + cap` the cell holds a
//!   position `s < claimed <= head + cap` of the same cell, so `s <= head`,
//!   and a stamp other than `head`'s means the notifier that claimed `head`
//!   has not written it yet: `Empty`.
//!
//! # Why the lag count is exact
//!
//! Every position the receiver passes is either returned (the stamp matched)
//! or passed in a `Lagged(n)` jump; the jump is computed from positions
//! alone, so `Lagged` values plus values received add up to the positions
//! claimed, after any number of notifies, however long the receiver stays
//! silent (positions are `u64`, stamps are whole positions and never wrap).
//!
//! The drop count ([`Subscription::dropped`](crate::Subscription::dropped)) is derived from the same
//! positions rather than counted per overwrite (which would need the
//! receiver to take each value with a read-modify-write, to settle a race
//! with the producer overwriting it): keep newest, it is what the receiver
//! has jumped over (`skipped`, written by the receiver only) plus what it
//! will jump over next (`claimed - head - cap`, when positive). Keep oldest,
//! a rejected value is counted in `dropped` and in `rejected`, which the
//! receiver's next receive swaps out and reports as `Lagged(n)` ahead of the
//! (older) values still buffered. Values offered after the close are
//! counted in `dropped` by their producer.
//!
//! # Closing
//!
//! Unregistering the handle closes each ring: a CAS on `tail` that sets the
//! `CLOSED` bit, after storing the position it closes at in `end`. A claim
//! that returns `CLOSED` is after the close: that producer writes nothing and
//! counts a drop. Every position below `end` was claimed before the close and
//! will be written (or lapped by a newer one), so the receiver keeps
//! draining until `head >= end` and only then reports `Closed`.
//!
//! # Waking
//!
//! A receiver about to sleep registers its waker in the ring's
//! `AtomicWaker`, stores `waiting = true` and adds itself to the queue's
//! count of sleeping receivers (once per sleep, not per poll), issues a
//! `SeqCst` fence and looks at the ring again. A notify writes all its
//! rings, issues one `SeqCst` fence, and then, unless the count is zero,
//! wakes (takes and calls the waker of) each ring whose `waiting` it sees
//! set. Of the two fences one is first in the single `SeqCst` order: if the
//! notify's, the receiver's second look sees the write; if the receiver's,
//! the notify reads a count that includes the receiver (its own decrement
//! comes only after it stops waiting) and sees `waiting` set and the waker
//! registered before it. So no wakeup is lost; a notify when nobody in the
//! queue sleeps costs one load, and a notify to a receiver that is not
//! sleeping a plain load instead of an RMW on the waker.
//! Only the receiver writes `waiting` (it clears it once it has a result);
//! a stale `true` costs a spurious wake. Wakers run outside any lock; a
//! panicking waker is caught and counted. Closing always wakes (an RMW on
//! the waker's state after the `CLOSED` CAS, against the receiver's
//! register-then-look, as `AtomicWaker` documents).
//!

use super::budget::Charge;
use crate::error::TryRecvError;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicU128, AtomicWaker, Fast128, Hint, Ordering};
use alloc::boxed::Box;
use crossbeam_utils::CachePadded;

/// Largest ring this crate builds, whatever the configuration says.
pub(crate) const MAX_RING: usize = 1 << 24;

/// A cell: `0 | stamp (63) | value (64)`, the stamp being position + 1.
type Word = u128;
const STAMP_SHIFT: u32 = 64;
/// Set in `tail` once the ring is closed.
pub(crate) const CLOSED: u64 = 1 << 63;

/// The word for position `pos` (below `CLOSED - 1`) holding `value`.
#[inline(always)]
const fn pack(pos: u64, value: i64) -> Word {
    (((pos + 1) as Word) << STAMP_SHIFT) | (value as u64 as Word)
}

#[inline(always)]
const fn value_of(word: Word) -> i64 {
    word as u64 as i64
}

/// The cell's stamp: the position it holds plus one, 0 if never written.
#[inline(always)]
const fn stamp_of(word: Word) -> u64 {
    (word >> STAMP_SHIFT) as u64
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
pub(crate) struct Pushed {
    pub(crate) stored: bool,
    pub(crate) dropped: u64,
}

/// One subscriber's buffer. Shared by the [`Subscription`](crate::Subscription) (the only
/// receiver) and the subscriber lists (the producers' view).
#[derive(Debug)]
pub(crate) struct Ring {
    pub(crate) cells: Box<[AtomicU128]>,
    pub(crate) cap: u64,
    /// `cap - 1` when `cap` is a power of two (cells are then indexed with
    /// a mask instead of a division), else `u64::MAX`.
    mask: u64,
    pub(crate) overflow: Overflow,
    /// Next position to claim, plus `CLOSED`.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// The receiver's position; written only by the receiver.
    pub(crate) head: CachePadded<AtomicU64>,
    /// Position the ring was closed at (valid once `CLOSED` is seen).
    pub(crate) end: AtomicU64,
    /// KeepOldest: values rejected and not yet reported as `Lagged`.
    pub(crate) rejected: AtomicU64,
    /// Values lost that their producers counted: rejected (keep oldest) or
    /// offered after the close.
    pub(crate) dropped: AtomicU64,
    /// Keep newest: positions the receiver has jumped over (reported as
    /// `Lagged`). Written only by the receiver.
    pub(crate) skipped: AtomicU64,
    pub(crate) waker: AtomicWaker,
    /// Set by the receiver before it sleeps, cleared by it once it has a
    /// result; producers skip the waker entirely while it is clear.
    pub(crate) waiting: AtomicBool,
    /// Set once the ring has left its list for good and its totals were
    /// added to the queue's counters (`state::fanout::unlisted`).
    pub(crate) unlisted: AtomicBool,
    pub(crate) hint: Hint,
    /// The ring's bytes, charged to the queue's budget before it was made
    /// and released when it is freed (the last `Arc` goes: the
    /// subscription's and every subscriber list's).
    _charge: Charge,
}

impl Ring {
    /// Bytes charged for a ring of `cap` cells: its `Arc` allocation, the
    /// cells, and its entry in the handle's subscriber list.
    pub(crate) fn budget_bytes(cap: usize) -> usize {
        2 * core::mem::size_of::<usize>()
            + core::mem::size_of::<Self>()
            + cap.saturating_mul(core::mem::size_of::<AtomicU128>())
            + core::mem::size_of::<Arc<Self>>()
    }

    /// A ring of `cap` cells; `charge` pays for it ([`Ring::budget_bytes`]).
    pub(crate) fn new(cap: usize, overflow: Overflow, hint: Hint, charge: Charge) -> Self {
        let cap64 = cap as u64;
        Self {
            cells: (0..cap64).map(|_| AtomicU128::new(0)).collect(),
            cap: cap64,
            mask: if cap64.is_power_of_two() {
                cap64 - 1
            } else {
                u64::MAX
            },
            overflow,
            tail: CachePadded::new(AtomicU64::new(0)),
            head: CachePadded::new(AtomicU64::new(0)),
            end: AtomicU64::new(0),
            rejected: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            skipped: AtomicU64::new(0),
            waker: AtomicWaker::new(),
            waiting: AtomicBool::new(false),
            unlisted: AtomicBool::new(false),
            hint,
            _charge: charge,
        }
    }

    #[inline(always)]
    pub(crate) fn cell(&self, pos: u64) -> &AtomicU128 {
        let i = if self.mask != u64::MAX {
            pos & self.mask
        } else {
            pos % self.cap
        };
        debug_assert!(i < self.cells.len() as u64);
        // SAFETY: `cells.len() == cap > 0`, and `i < cap`: `pos % cap`, or
        // `pos & (cap - 1)` when `cap` is a power of two.
        unsafe { self.cells.get_unchecked(i as usize) }
    }

    pub(crate) fn count_drop(&self, n: u64) {
        // Relaxed: a counter, read as a statistic.
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// A value offered after the close: counted, not stored.
    #[cold]
    fn closed_drop(&self) -> Pushed {
        self.count_drop(1);
        Pushed {
            stored: false,
            dropped: 1,
        }
    }

    /// Offers `value`; never blocks. Does not wake the receiver: the caller
    /// does, after a `SeqCst` fence (see "Waking").
    #[cfg(test)]
    pub(crate) fn push(&self, value: i64) -> Pushed {
        match self.push_with(value, Fast128::get()) {
            Ok(()) => Pushed {
                stored: true,
                dropped: 0,
            },
            Err(other) => other,
        }
    }

    /// [`push`](Self::push), with the caller's check for the inlined
    /// 128-bit atomics (taken once for all the rings of a notify): `Ok` in
    /// the common case (keep newest, open: stored, nothing dropped), else
    /// the outcome of the keep-oldest push or of the close.
    #[inline]
    pub(crate) fn push_with(&self, value: i64, fast: Option<Fast128>) -> Result<(), Pushed> {
        if self.overflow != Overflow::KeepNewest {
            return Err(self.push_oldest(value));
        }
        // Relaxed: the claim only hands out a position; it is published with
        // the value by the cell CAS (Release), and `CLOSED` is read from the
        // word's modification order.
        let t = self.tail.fetch_add(1, Ordering::Relaxed);
        if t & CLOSED != 0 {
            return Err(self.closed_drop());
        }
        self.write_newest(t, value, fast);
        Ok(())
    }

    /// Keep newest: stores `value` at the claimed position `pos`, unless the
    /// cell already holds a newer position (then `pos` is out of the newest
    /// `cap` and the receiver jumps over it).
    #[inline]
    pub(crate) fn write_newest(&self, pos: u64, value: i64, fast: Option<Fast128>) {
        let cell = self.cell(pos);
        let fresh = pack(pos, value);
        if let Some(fast) = fast {
            // The same loop with the inlined hardware atomics (`Acquire`
            // load, `SeqCst` CAS: at least the orderings below).
            let mut cur = fast.load(cell);
            while stamp_of(cur) < stamp_of(fresh) {
                match fast.compare_exchange(cell, cur, fresh) {
                    Ok(_) => return,
                    Err(actual) => cur = actual,
                }
            }
            return;
        }
        // Relaxed: only the expected word for the CAS, which validates it;
        // a newer stamp seen here is final (stamps only grow).
        let mut cur = cell.load(Ordering::Relaxed);
        while stamp_of(cur) < stamp_of(fresh) {
            // Release: the receiver's Acquire load of the cell then also
            // sees our claim on `tail` (it reads `tail` to place the cell).
            // Relaxed on failure: as for the load above.
            match cell.compare_exchange_weak(cur, fresh, Ordering::Release, Ordering::Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// Keep oldest: claims a position while the ring has room, else rejects.
    #[inline(never)]
    fn push_oldest(&self, value: i64) -> Pushed {
        // Relaxed: validated by the CAS below.
        let mut t = self.tail.load(Ordering::Relaxed);
        loop {
            if t & CLOSED != 0 {
                return self.closed_drop();
            }
            // Acquire pairs with the receiver's Release store of `head`: its
            // load of position `t - cap` is then ordered before our store
            // into that cell.
            let h = self.head.load(Ordering::Acquire);
            if t.wrapping_sub(h) >= self.cap {
                // Relaxed: counters; the receiver swaps `rejected` out, and
                // the caller's wake tells it to look.
                self.rejected.fetch_add(1, Ordering::Relaxed);
                self.count_drop(1);
                return Pushed {
                    stored: false,
                    dropped: 1,
                };
            }
            // Relaxed: the claim is published with the value by the Release
            // store below.
            match self
                .tail
                .compare_exchange_weak(t, t + 1, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break,
                Err(actual) => t = actual,
            }
        }
        // Nobody else writes this cell until we have: position `t - cap` was
        // received (`t - head < cap`), and `t + cap` can only be claimed once
        // the receiver has moved past `t`, which it does after reading it.
        // Release: as for the CAS in `write_newest`.
        self.cell(t).store(pack(t, value), Ordering::Release);
        Pushed {
            stored: true,
            dropped: 0,
        }
    }

    /// Wakes the receiver, outside any lock; returns whether its waker
    /// panicked (caught).
    pub(crate) fn wake(&self) -> bool {
        match self.waker.take() {
            Some(w) => crate::sync::wake_caught(w),
            None => false,
        }
    }

    /// Closes the ring at the current tail (see "Closing"); returns whether
    /// the receiver's waker panicked. Only the unregister of the ring's
    /// generation gets past the `CLOSED` check, so there is one closer.
    pub(crate) fn close(&self) -> bool {
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
    #[inline(always)]
    pub(crate) fn positions(&self) -> (u64, bool) {
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
    pub(crate) fn claimed(&self) -> u64 {
        self.positions().0
    }

    /// Moves the receiver to `to`.
    #[inline(always)]
    pub(crate) fn advance(&self, head: &mut u64, to: u64) {
        *head = to;
        // Release pairs with KeepOldest producers' Acquire load of `head`
        // (our load of the cell is ordered before their store into it).
        self.head.store(to, Ordering::Release);
    }

    /// The receiver's side of [`Subscription::try_recv`]: `head` is its
    /// position (only the one receiver calls this).
    #[cfg(test)]
    pub(crate) fn recv(&self, head: &mut u64) -> Result<i64, TryRecvError> {
        self.recv_with(head, Fast128::get())
    }

    /// [`recv`](Self::recv), with the caller's check for the inlined 128-bit
    /// atomics (the receiver takes it once).
    #[inline]
    pub(crate) fn recv_with(
        &self,
        head: &mut u64,
        fast: Option<Fast128>,
    ) -> Result<i64, TryRecvError> {
        if self.overflow != Overflow::KeepNewest {
            // Relaxed: only a cheap check; the swap is what takes the count.
            if self.rejected.load(Ordering::Relaxed) != 0 {
                if let Some(n) = self.take_rejected() {
                    return Err(TryRecvError::Lagged(n));
                }
            }
        }
        let h = *head;
        // Acquire pairs with the producer's Release CAS (or store): the
        // value, and its earlier claim on `tail`, which the load of `tail`
        // below therefore sees (so the cell's position is below `claimed`).
        let cell = self.cell(h);
        let word = match fast {
            // As strong as `Acquire`.
            Some(fast) => fast.load(cell),
            None => cell.load(Ordering::Acquire),
        };
        // Acquire: as in `positions`.
        let t = self.tail.load(Ordering::Acquire);
        // The stamp says `h` (so `h < t`) and `h + cap` is not claimed: the
        // value is ours. (Once closed, `t` has `CLOSED` set, the difference
        // exceeds any `cap`, and `recv_other` decides from `end`.)
        if stamp_of(word) == h + 1 && t.wrapping_sub(h) <= self.cap {
            self.advance(head, h + 1);
            return Ok(value_of(word));
        }
        self.recv_other(head, word)
    }

    /// Keep oldest: takes the count of values rejected since the last
    /// receive, if any.
    #[cold]
    fn take_rejected(&self) -> Option<u64> {
        // Relaxed: a counter; the values themselves travel in the cells.
        let n = self.rejected.swap(0, Ordering::Relaxed);
        (n != 0).then_some(n)
    }

    /// The cell did not hold the receiver's value, or `head + cap` is
    /// claimed: `Empty`, `Closed` or `Lagged`, decided from the positions.
    #[cold]
    fn recv_other(&self, head: &mut u64, word: Word) -> Result<i64, TryRecvError> {
        let h = *head;
        // A fresh look at `tail` (and `end`): still after the load of the
        // cell, as the reasoning below needs.
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
            // Position `h + cap` is claimed: `h` is (or will be) overwritten,
            // and so is everything below `claimed - cap`. Jump to the oldest
            // position that stays in the ring.
            let next = claimed - self.cap;
            // Relaxed: only the receiver writes it; a statistic for others,
            // ordered before the Release store of `head` in `advance`.
            let skipped = self.skipped.load(Ordering::Relaxed);
            self.skipped.store(skipped + (next - h), Ordering::Relaxed);
            self.advance(head, next);
            return Err(TryRecvError::Lagged(next - h));
        }
        // `h < claimed <= h + cap`: the cell holds some position `s` of the
        // same cell with `s < claimed <= h + cap`, so `s <= h`.
        if stamp_of(word) == h + 1 {
            // Ours (the ring is closed, or `tail` moved on since the first
            // look, but not past `h + cap`).
            self.advance(head, h + 1);
            return Ok(value_of(word));
        }
        // `s < h`: the notifier that claimed `h` has not written it yet.
        Err(TryRecvError::Empty)
    }

    pub(crate) fn len(&self) -> usize {
        // Relaxed: a statistic.
        let head = self.head.load(Ordering::Relaxed);
        self.claimed().saturating_sub(head).min(self.cap) as usize
    }

    /// Keep newest: values lost so far that no producer counted, the
    /// positions jumped over and those the next receive will jump over.
    /// (A snapshot racing with the receiver's jump may count that jump
    /// twice for the moment.)
    pub(crate) fn overwritten(&self) -> u64 {
        if self.overflow != Overflow::KeepNewest {
            return 0;
        }
        // Acquire pairs with the receiver's Release store of `head`, made
        // after its update of `skipped`.
        let head = self.head.load(Ordering::Acquire);
        // Relaxed: see above.
        let skipped = self.skipped.load(Ordering::Relaxed);
        let pending = self.claimed().saturating_sub(head).saturating_sub(self.cap);
        skipped + pending
    }

    /// Values lost to this subscriber (see
    /// [`Subscription::dropped`](crate::Subscription::dropped)).
    pub(crate) fn dropped(&self) -> u64 {
        // Relaxed: a statistic.
        self.dropped.load(Ordering::Relaxed) + self.overwritten()
    }

    pub(crate) fn info(&self) -> SubscriberInfo {
        SubscriberInfo {
            hint: self.hint.clone(),
            len: self.len(),
            capacity: self.cap as usize,
            dropped: self.dropped(),
            overflow: self.overflow,
        }
    }
}

/// The subscribers of one generation of one slot. Immutable once published.
#[derive(Debug)]
pub(crate) struct SubscriberList {
    pub(crate) generation: u32,
    pub(crate) rings: Box<[Arc<Ring>]>,
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
    /// Values this subscriber lost (see [`Subscription::dropped`](crate::Subscription::dropped)).
    pub dropped: u64,
    /// What it keeps when full.
    pub overflow: Overflow,
}

/// Test hooks: build ring states that take billions of notifies to reach.
#[cfg(all(test, not(notification_queue_loom)))]
impl Ring {
    /// A ring whose positions start at `start`, as if `start` values had
    /// been pushed and received, so stamps can be driven across their wrap.
    fn starting_at(cap: usize, overflow: Overflow, start: u64) -> Self {
        let budget = Arc::new(super::budget::Budget::new(usize::MAX));
        let charge = Charge::new(&budget, super::budget::Category::Rings, 0);
        let ring = Self::new(cap, overflow, Hint::from(""), charge.unwrap());
        let cap = cap as u64;
        for i in 0..cap {
            // The last position below `start` that lives in cell `i` (none:
            // never written): written and received.
            if start > i {
                let last = start - 1 - (start - 1 - i) % cap;
                ring.cells[i as usize].store(pack(last, 0), Ordering::Relaxed);
            }
        }
        ring.tail.store(start, Ordering::Relaxed);
        ring.head.store(start, Ordering::Relaxed);
        ring
    }

    /// The state `k` sequential keep-newest pushes of `value(position)`
    /// leave (no receiver running meanwhile), without doing them: only the
    /// last `cap` positions are written.
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
        for p in t + k - self.cap..t + k {
            self.cell(p).store(pack(p, value(p)), Ordering::Relaxed);
        }
        self.tail.store(t + k, Ordering::Relaxed);
    }
}

#[cfg(all(test, not(notification_queue_loom)))]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    #[test]
    fn stamps_are_the_whole_position_plus_one() {
        let w = pack(5, -1);
        assert_eq!(stamp_of(w), 6);
        assert_eq!(value_of(w), -1);
        // Far beyond any 32-bit range, still exact.
        let far = pack((1 << 62) + 3, 7);
        assert_eq!(stamp_of(far), (1 << 62) + 4);
        assert_eq!(value_of(far), 7);
        assert_eq!(stamp_of(pack(CLOSED - 2, i64::MIN)), CLOSED - 1);
        // A fresh cell is older than every position.
        assert_eq!(stamp_of(0), 0);
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
    /// notifies, in particular past the points where a 32-bit stamp would
    /// wrap (2^30 and 2^31 ahead) and far beyond them.
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
                        assert_eq!(ring.dropped(), k.saturating_sub(cap));
                        // Real pushes after the jump go on normally.
                        ring.push(1);
                        assert_eq!(ring.recv(&mut head), Ok(1));
                    }
                }
            }
        }
    }

    /// Normal traffic straddling 2^31 and 2^32 (where a 32-bit stamp would
    /// wrap): in-order values, exact lags, drain to `Closed`.
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
                assert_eq!(ring.dropped(), lost);
                ring.push(val(pos));
                ring.close();
                assert_eq!(ring.recv(&mut head), Ok(val(pos)));
                assert_eq!(ring.recv(&mut head), Err(TryRecvError::Closed));
            }
        }
    }

    /// Closing after a silent stretch longer than a 32-bit range: the
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
