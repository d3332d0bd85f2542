//! The subscription ring: a bounded buffer per subscriber, filled by any
//! number of notifiers, drained by one receiver, so a slow client can never
//! stall a notifier. (The lists of rings per handle are in `state::fanout`;
//! the receiving side, [`Subscription`](crate::Subscription), in `client::subscription`.)
//!
//! # The ring
//!
//! Every [`Subscription`](crate::Subscription) owns a [`Ring`] of `cap` cells. Each cell is one
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

use super::budget::Charge;
use crate::error::TryRecvError;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicU128, AtomicWaker, Hint, Ordering};
use alloc::boxed::Box;
use crossbeam_utils::CachePadded;

/// Largest ring this crate builds, whatever the configuration says.
pub(crate) const MAX_RING: usize = 1 << 24;

/// A cell: `CONSUMED | stamp (63) | value (64)`.
type Word = u128;
const CONSUMED: Word = 1 << 127;
const STAMP_SHIFT: u32 = 64;
const STAMP_MASK: u64 = (1 << 63) - 1;
/// Set in `tail` once the ring is closed.
pub(crate) const CLOSED: u64 = 1 << 63;

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
    pub(crate) overflow: Overflow,
    /// Next position to claim, plus `CLOSED`.
    pub(crate) tail: CachePadded<AtomicU64>,
    /// The receiver's position; written only by the receiver.
    pub(crate) head: CachePadded<AtomicU64>,
    /// Position the ring was closed at (valid once `CLOSED` is seen).
    pub(crate) end: AtomicU64,
    /// KeepOldest: values rejected and not yet reported as `Lagged`.
    pub(crate) rejected: AtomicU64,
    /// Values lost to this subscriber (overwritten, rejected, abandoned or
    /// offered after close).
    pub(crate) dropped: AtomicU64,
    pub(crate) waker: AtomicWaker,
    /// Set by the receiver before it sleeps, cleared by it once it has a
    /// result; producers skip the waker entirely while it is clear.
    pub(crate) waiting: AtomicBool,
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
            _charge: charge,
        }
    }

    #[inline]
    pub(crate) fn cell(&self, pos: u64) -> &AtomicU128 {
        // `cells.len() == cap > 0`, so the index is in bounds.
        &self.cells[(pos % self.cap) as usize]
    }

    pub(crate) fn count_drop(&self, n: u64) {
        // Relaxed: a counter, read as a statistic.
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// Offers `value`; never blocks. Does not wake the receiver: the caller
    /// does, after a `SeqCst` fence (see "Waking").
    pub(crate) fn push(&self, value: i64) -> Pushed {
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
    pub(crate) fn write(&self, pos: u64, value: i64) -> u64 {
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
    pub(crate) fn advance(&self, head: &mut u64, to: u64) {
        *head = to;
        // Release pairs with KeepOldest producers' Acquire load of `head`.
        self.head.store(to, Ordering::Release);
    }

    /// The receiver's side of [`Subscription::try_recv`]: `head` is its
    /// position (only the one receiver calls this).
    pub(crate) fn recv(&self, head: &mut u64) -> Result<i64, TryRecvError> {
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

    pub(crate) fn len(&self) -> usize {
        // Relaxed: a statistic.
        let head = self.head.load(Ordering::Relaxed);
        self.claimed().saturating_sub(head).min(self.cap) as usize
    }

    pub(crate) fn info(&self) -> SubscriberInfo {
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
    use std::prelude::rust_2024::*;

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
