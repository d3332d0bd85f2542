//! The subscription ring: a bounded buffer per subscriber, filled by any
//! number of notifiers, drained by one receiver, so a slow client can never
//! stall a notifier. (The lists of rings per handle are in `state::fanout`;
//! the receiving side, [`Subscription`](crate::Subscription), in `client::subscription`.)
//!
//! # The ring
//!
//! Every [`Subscription`](crate::Subscription) owns a [`Ring`] over `cap` cells (keep-newest
//! rings of one handle and capacity share theirs: see "Shared cells"). Each cell is one
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
//! A ring of capacity `cap` has `n` cells, `cap` rounded up to a power of
//! two, and position `p` lives in cell `p % n` (found with a mask). A cell's
//! stamp only grows. The arguments below need only `n >= cap`: two positions
//! of one cell are at least `n`, so at least `cap`, apart.
//!
//! - **Producers** (notifiers, any number at once). Keep newest: every
//!   keep-newest ring of a handle generation takes its positions from one
//!   counter, the tail of the generation's [`Feed`] (see "One claim per
//!   notify" below): a notify claims one position for all of them, and its
//!   write into each ring is a CAS of `(p, value)` into the cell that
//!   replaces whatever *older* position the cell holds. A producer that
//!   finds a newer position there (it was lapped while preempted) leaves it:
//!   its own position is out of the newest `cap` already. So an obsolete
//!   producer can never overwrite a newer value, and every position among
//!   the newest `cap` claimed is written by its producer, whatever the
//!   interleaving. Keep oldest: the ring has its own `tail`, and a producer
//!   claims a position only while `tail - head < cap` (CAS on `tail`), so
//!   the cell's previous position has been received and nobody else can
//!   write the cell until ours is: the write is a plain (atomic) store.
//!   Producers never wait for anybody and take no lock.
//! - **The receiver** (the `Subscription`, `&mut self`) sits at `head` (a
//!   `u64`; a keep-newest receiver starts at its ring's `start`, the feed's
//!   tail when it subscribed). It loads `head`'s cell, then the tail
//!   (and `end`, once closed): when the stamp says `head` and `head + cap` is not claimed,
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
//! claimed from the ring's `start` on, after any number of notifies, however long the receiver stays
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
//! # One claim per notify
//!
//! A handle generation's subscribers hang off its [`Feed`]: one 128-bit
//! word holding the keep-newest tail (high half, with `CLOSED`) and the
//! address of the current [`SubscriberList`] (low half). A notify claims
//! its position with one CAS on that word that leaves the list as it found
//! it, so the claim also tells it exactly which rings to fill: the list
//! that was current when the position was handed out. Subscribe and
//! unsubscribe (under the registry lock) replace the list with a CAS that
//! leaves the tail as it found it, and a new keep-newest ring's `start` is
//! that tail, stored before the CAS that lists the ring. Both are RMWs of
//! one word, so they are totally ordered:
//! - a notify whose claim comes after the subscribe gets a position
//!   `p >= start` and a list holding the ring (until it unsubscribes), and
//!   its Acquire CAS reads the subscriber's Release CAS, so it sees
//!   `start` and the ring;
//! - a notify whose claim comes before it gets `p < start` and a list
//!   without the ring, and the receiver, starting at `start`, never waits
//!   for `p`.
//!
//! So every position at or after `start` is written into the ring by the
//! notify that claimed it, and none before. This replaces one claim per
//! subscriber (a `fetch_add` on each ring's tail, plus the cache line it
//! dirties) with one per notify. A keep-oldest ring still claims in its own
//! `tail` (its claim depends on how far its own receiver is), after the
//! notify's feed claim.
//!
//! # Shared cells
//!
//! Keep-newest rings of one feed share one [`Cells`] when it has room for
//! each of their capacities (a new ring takes the smallest listed cells
//! with at least `cap` of them, and makes its own only if there are none):
//! position `p` goes into the same cell `p % n` for all of them, written by
//! the same notify, and nothing about a cell depends on who reads it (a
//! stamp is a position of the feed, and receiving is a load). So a notify
//! writes each distinct buffer once (the list keeps them apart,
//! `SubscriberList::newest`): one cell CAS per notify however many
//! subscribers share it, and one buffer in memory. Each ring keeps its own
//! `cap`, `head`, `start`, `skipped`, waker and counts, and every argument
//! above holds per ring unchanged: it is about positions and the cell of a
//! position, needs only `n >= cap` of the ring's own capacity, and a
//! receiver starting at `start` never reads a position below it, whatever
//! an earlier sharer left in the cells.
//!
//! Cells are shared within one feed only: a new feed starts its positions
//! again at 0, and cells written from an old feed's positions would hold
//! newer stamps than its positions for a long time. Subscribe looks for
//! cells to share under a short hold of the registry lock (so that new
//! cells are made outside it), and uses them only if the feed it lists the
//! ring in is the one it found them in; otherwise it makes new ones.
//!
//! # Closing
//!
//! Unregistering the handle closes the feed: a CAS on its word that sets
//! `CLOSED` in the tail, which then stays where it is (the position it
//! closed at). A notify that finds `CLOSED` is after the close: it writes
//! nothing and counts a drop for every listed ring. Every position below
//! the closed tail was claimed before the close and will be written (or
//! lapped by a newer one), so the receiver keeps draining until it has
//! reached the tail and only then reports `Closed`. A keep-oldest ring is
//! closed the same way in its own `tail`, after storing the position it
//! closes at in `end` (its claims are checked against its receiver, and a
//! producer that claimed in the feed before the close may still claim
//! there after it).
//!
//! # Waking
//!
//! A receiver about to sleep registers its waker in the ring's
//! `AtomicWaker`, stores `waiting = true` and adds itself to its feed's
//! count of sleeping receivers (once per sleep, not per poll), issues a
//! `SeqCst` fence and looks at the ring again. A notify writes all its
//! rings, issues one `SeqCst` fence (on x86-64 only if some write was a
//! plain store: a `lock cmpxchg16b` orders the loads after it as the fence
//! would), and then, unless the feed's count is zero,
//! wakes (takes and calls the waker of) each ring whose `waiting` it sees
//! set. Of the two fences one is first in the single `SeqCst` order: if the
//! notify's, the receiver's second look sees the write; if the receiver's,
//! the notify reads a count that includes the receiver (its own decrement
//! comes only after it stops waiting) and sees `waiting` set and the waker
//! registered before it. So no wakeup is lost; a notify when nobody in the
//! handle's feed sleeps costs one load, and a notify to a receiver that is not
//! sleeping a plain load instead of an RMW on the waker.
//! Only the receiver writes `waiting` (it clears it once it has a result);
//! a stale `true` costs a spurious wake. Wakers run outside any lock; a
//! panicking waker is caught and counted. Closing always wakes every listed
//! ring (an RMW on the waker's state after the `CLOSED` CAS, against the
//! receiver's register-then-look, as `AtomicWaker` documents).
//!

use super::budget::Charge;
use crate::error::TryRecvError;
use crate::sync::{Arc, AtomicBool, AtomicU64, AtomicU128, AtomicWaker, Fast128, Hint, Ordering};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr;
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

/// A ring's cells: a power of two of 128-bit words, at least the ring's
/// capacity (see "The ring"), each written by the producer of the position
/// it holds. Keep-newest rings of one feed share one `Cells` when it has
/// room for their capacities (see "Shared cells"); a keep-oldest ring has
/// its own.
#[derive(Debug)]
pub(crate) struct Cells {
    cells: Box<[AtomicU128]>,
    /// `cells.len() - 1`: position `p` lives in cell `p & mask`.
    mask: u64,
    /// The cells' bytes, charged to the queue's budget before they were
    /// made and released when they are freed (the last ring sharing them
    /// goes).
    _charge: Charge,
}

impl Cells {
    /// How many cells a ring of capacity `cap` (`1 ..= MAX_RING`) gets:
    /// `cap` rounded up to a power of two, so that a position's cell is
    /// found with a mask rather than a 64-bit division (which cost a
    /// notify about as much as the rest of its delivery did).
    pub(crate) fn len_for(cap: usize) -> usize {
        cap.max(1).next_power_of_two()
    }

    /// Bytes charged for the cells of a ring of capacity `cap`: their `Arc`
    /// allocation and the cells ([`Cells::len_for`] of them).
    pub(crate) fn budget_bytes(cap: usize) -> usize {
        2 * core::mem::size_of::<usize>()
            + core::mem::size_of::<Self>()
            + Self::len_for(cap).saturating_mul(core::mem::size_of::<AtomicU128>())
    }

    /// The cells of a ring of capacity `cap`, never written; `charge` pays
    /// for them ([`Cells::budget_bytes`]).
    pub(crate) fn new(cap: usize, charge: Charge) -> Self {
        let len = Self::len_for(cap);
        Self {
            cells: (0..len).map(|_| AtomicU128::new(0)).collect(),
            mask: len as u64 - 1,
            _charge: charge,
        }
    }

    /// How many cells there are (a power of two): rings of capacities up
    /// to this can share them.
    pub(crate) fn len(&self) -> u64 {
        self.mask + 1
    }

    #[inline(always)]
    pub(crate) fn cell(&self, pos: u64) -> &AtomicU128 {
        let i = pos & self.mask;
        debug_assert!(i < self.cells.len() as u64);
        // SAFETY: `cells.len()` is a power of two and `mask` is one less,
        // so `pos & mask < cells.len()`.
        unsafe { self.cells.get_unchecked(i as usize) }
    }

    /// Keep newest: stores `value` at the claimed position `pos`, unless the
    /// cell already holds a newer position (then `pos` is out of the newest
    /// `cap` and every receiver of these cells jumps over it).
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
}

/// One subscriber's buffer. Shared by the [`Subscription`](crate::Subscription) (the only
/// receiver) and the subscriber lists (the producers' view).
#[derive(Debug)]
pub(crate) struct Ring {
    /// The cells: the ring's own (keep oldest), or shared with the feed's
    /// other keep-newest rings of the same capacity (see "Shared cells").
    pub(crate) cells: Arc<Cells>,
    pub(crate) cap: u64,
    pub(crate) overflow: Overflow,
    /// Keep newest: the feed's tail when the ring was listed, where its
    /// receiver starts (stored before the list CAS that publishes the ring,
    /// never changed after). Keep oldest: 0.
    pub(crate) start: AtomicU64,
    /// Keep oldest: next position to claim, plus `CLOSED`. (Keep newest
    /// rings claim in their feed.)
    tail: CachePadded<AtomicU64>,
    /// The receiver's position; written only by the receiver.
    pub(crate) head: CachePadded<AtomicU64>,
    /// Keep oldest: position the ring was closed at (valid once `CLOSED`
    /// is seen).
    end: AtomicU64,
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
    /// The ring's bytes (without its cells), charged to the queue's budget
    /// before it was made and released when it is freed (the last `Arc`
    /// goes: the subscription's and every subscriber list's).
    _charge: Charge,
}

impl Ring {
    /// Bytes charged for a ring without its cells ([`Cells::budget_bytes`]):
    /// its `Arc` allocation and its entries in the handle's subscriber list.
    pub(crate) fn budget_bytes() -> usize {
        2 * core::mem::size_of::<usize>()
            + core::mem::size_of::<Self>()
            + 2 * core::mem::size_of::<Arc<Self>>()
    }

    /// A ring of capacity `cap` over `cells` (at least `cap` of them);
    /// `charge` pays for the ring ([`Ring::budget_bytes`]), the cells for
    /// themselves.
    pub(crate) fn new(
        cells: Arc<Cells>,
        cap: usize,
        overflow: Overflow,
        hint: Hint,
        charge: Charge,
    ) -> Self {
        debug_assert!(cells.len() >= cap as u64);
        Self {
            cap: cap as u64,
            cells,
            overflow,
            start: AtomicU64::new(0),
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
        self.cells.cell(pos)
    }

    pub(crate) fn count_drop(&self, n: u64) {
        // Relaxed: a counter, read as a statistic.
        self.dropped.fetch_add(n, Ordering::Relaxed);
    }

    /// A value offered after the close: counted, not stored.
    #[cold]
    pub(crate) fn closed_drop(&self) -> Pushed {
        self.count_drop(1);
        Pushed {
            stored: false,
            dropped: 1,
        }
    }

    /// Keep oldest: claims a position in the ring's own `tail` while the
    /// ring has room, else rejects.
    #[inline(never)]
    pub(crate) fn push_oldest(&self, value: i64) -> Pushed {
        // Relaxed: validated by the CAS below.
        let mut t = self.tail.load(Ordering::Relaxed);
        loop {
            if t & CLOSED != 0 {
                return self.closed_drop();
            }
            // Acquire pairs with the receiver's Release store of `head`: its
            // load of position `t - n` (the cell's previous one; `n >= cap`
            // cells) is then ordered before our store into that cell.
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
        // Nobody else writes this cell until we have: position `t - n` was
        // received (`t - head < cap <= n`), and `t + n` can only be claimed
        // once the receiver has moved past `t`, which it does after reading
        // it.
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

    /// Keep oldest: closes the ring's own `tail` where it stands (see
    /// "Closing"); does not wake (the caller does, for every ring). Only
    /// the unregister of the ring's generation gets here, once.
    pub(crate) fn close_own(&self) {
        // Relaxed: validated by the CAS.
        let mut t = self.tail.load(Ordering::Relaxed);
        while t & CLOSED == 0 {
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
    }

    /// The tail the receiver compares with: the feed's (keep newest) or the
    /// ring's own (keep oldest), with `CLOSED` if closed.
    #[inline(always)]
    fn tail_word(&self, feed: &Feed, fast: Option<Fast128>) -> u64 {
        if self.overflow == Overflow::KeepNewest {
            feed.tail(fast)
        } else {
            // Acquire: pairs with `close_own`'s Release CAS, so `end` is
            // valid; and with producers' claims, as the callers' comments
            // say.
            self.tail.load(Ordering::Acquire)
        }
    }

    /// Positions claimed before the close (or all, while open), and whether
    /// the ring is closed. A closed feed's tail stays where it closed; a
    /// keep-oldest ring's own tail keeps counting claims refused after its
    /// close, so `end` bounds it.
    #[inline(always)]
    pub(crate) fn positions(&self, feed: &Feed, fast: Option<Fast128>) -> (u64, bool) {
        let t = self.tail_word(feed, fast);
        if t & CLOSED == 0 {
            (t, false)
        } else if self.overflow == Overflow::KeepNewest {
            (t & !CLOSED, true)
        } else {
            // Relaxed: ordered by the Acquire load in `tail_word`.
            ((t & !CLOSED).min(self.end.load(Ordering::Relaxed)), true)
        }
    }

    /// Positions claimed before the close (or all, while open).
    pub(crate) fn claimed(&self, feed: &Feed) -> u64 {
        self.positions(feed, Fast128::get()).0
    }

    /// Values this ring was offered and took a position for: claimed from
    /// its `start` on (for the queue's `delivered` statistic).
    pub(crate) fn delivered(&self, feed: &Feed) -> u64 {
        // Relaxed: set before the ring was listed, which the caller saw.
        self.claimed(feed)
            .saturating_sub(self.start.load(Ordering::Relaxed))
    }

    /// Whether the ring is closed (its generation was unregistered).
    pub(crate) fn is_closed(&self, feed: &Feed) -> bool {
        self.tail_word(feed, Fast128::get()) & CLOSED != 0
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
    pub(crate) fn recv(&self, feed: &Feed, head: &mut u64) -> Result<i64, TryRecvError> {
        self.recv_with(feed, head, Fast128::get())
    }

    /// [`recv`](Self::recv), with the caller's check for the inlined 128-bit
    /// atomics (the receiver takes it once).
    #[inline]
    pub(crate) fn recv_with(
        &self,
        feed: &Feed,
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
        // As in `positions` (Acquire).
        let t = self.tail_word(feed, fast);
        // The stamp says `h` (so `h < t`) and `h + cap` is not claimed: the
        // value is ours. (Once closed, `t` has `CLOSED` set, the difference
        // exceeds any `cap`, and `recv_other` decides from `end`.)
        if stamp_of(word) == h + 1 && t.wrapping_sub(h) <= self.cap {
            self.advance(head, h + 1);
            return Ok(value_of(word));
        }
        self.recv_other(feed, head, word, fast)
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
    fn recv_other(
        &self,
        feed: &Feed,
        head: &mut u64,
        word: Word,
        fast: Option<Fast128>,
    ) -> Result<i64, TryRecvError> {
        let h = *head;
        // A fresh look at the tail (and `end`): still after the load of the
        // cell, as the reasoning below needs.
        let (claimed, closed) = self.positions(feed, fast);
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

    pub(crate) fn len(&self, feed: &Feed) -> usize {
        // Relaxed: a statistic.
        let head = self.head.load(Ordering::Relaxed);
        self.claimed(feed).saturating_sub(head).min(self.cap) as usize
    }

    /// Keep newest: values lost so far that no producer counted, the
    /// positions jumped over and those the next receive will jump over.
    /// (A snapshot racing with the receiver's jump may count that jump
    /// twice for the moment.)
    pub(crate) fn overwritten(&self, feed: &Feed) -> u64 {
        if self.overflow != Overflow::KeepNewest {
            return 0;
        }
        // Acquire pairs with the receiver's Release store of `head`, made
        // after its update of `skipped`.
        let head = self.head.load(Ordering::Acquire);
        // Relaxed: see above.
        let skipped = self.skipped.load(Ordering::Relaxed);
        let pending = self
            .claimed(feed)
            .saturating_sub(head)
            .saturating_sub(self.cap);
        skipped + pending
    }

    /// Values lost to this subscriber (see
    /// [`Subscription::dropped`](crate::Subscription::dropped)).
    pub(crate) fn dropped(&self, feed: &Feed) -> u64 {
        // Relaxed: a statistic.
        self.dropped.load(Ordering::Relaxed) + self.overwritten(feed)
    }

    pub(crate) fn info(&self, feed: &Feed) -> SubscriberInfo {
        SubscriberInfo {
            hint: self.hint.clone(),
            len: self.len(feed),
            capacity: self.cap as usize,
            dropped: self.dropped(feed),
            overflow: self.overflow,
        }
    }
}

/// The subscribers of one feed at one time. Immutable once published.
#[derive(Debug)]
pub(crate) struct SubscriberList {
    /// Every listed ring, in subscription order (waking, statistics, dump).
    pub(crate) rings: Box<[Arc<Ring>]>,
    /// The distinct cells of the keep-newest rings: a notify writes each
    /// once (see "Shared cells").
    pub(crate) newest: Box<[Arc<Cells>]>,
    /// The keep-oldest rings: a notify claims in each one's own `tail`.
    pub(crate) oldest: Box<[Arc<Ring>]>,
}

impl SubscriberList {
    /// The list of `rings`, with their keep-newest cells collected once
    /// each and their keep-oldest rings apart. Plain data (allocations), so
    /// it may be built under the registry lock.
    pub(crate) fn new(rings: Vec<Arc<Ring>>) -> Self {
        let mut newest: Vec<Arc<Cells>> = Vec::new();
        let mut oldest = Vec::new();
        for ring in &rings {
            if ring.overflow != Overflow::KeepNewest {
                oldest.push(ring.clone());
            } else if !newest.iter().any(|c| Arc::ptr_eq(c, &ring.cells)) {
                newest.push(ring.cells.clone());
            }
        }
        Self {
            rings: rings.into_boxed_slice(),
            newest: newest.into_boxed_slice(),
            oldest: oldest.into_boxed_slice(),
        }
    }

    /// The cells a new keep-newest ring of capacity `cap` shares: the
    /// smallest listed keep-newest cells with room for `cap`, if any.
    pub(crate) fn shared_cells(&self, cap: u64) -> Option<Arc<Cells>> {
        self.newest
            .iter()
            .filter(|c| c.len() >= cap)
            .min_by_key(|c| c.len())
            .cloned()
    }
}

/// The feed word: the keep-newest tail (plus `CLOSED`) in the high half,
/// the exposed address of the current `Arc<SubscriberList>` (or 0) in the
/// low half.
#[inline(always)]
fn feed_word(tail: u64, list: *const SubscriberList) -> u128 {
    ((tail as u128) << 64) | list.expose_provenance() as u128
}

#[inline(always)]
const fn tail_of(word: u128) -> u64 {
    (word >> 64) as u64
}

#[inline(always)]
fn list_of(word: u128) -> *const SubscriberList {
    // The low half is an address exposed by `feed_word` (or 0, null).
    ptr::with_exposed_provenance(word as u64 as usize)
}

/// What a notify's claim in a [`Feed`] found.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Claim {
    /// The position claimed for every keep-newest ring of `list`, or
    /// `None` if the feed is closed (nothing was claimed; every ring counts
    /// a drop).
    pub(crate) pos: Option<u64>,
    /// The list that was current when the position was claimed (non-null).
    pub(crate) list: *const SubscriberList,
}

/// One handle generation's subscribers and the positions its keep-newest
/// rings share (see "One claim per notify"). The slot owns one `Arc` of
/// its current feed; every subscription of the generation owns another.
#[derive(Debug)]
pub(crate) struct Feed {
    pub(crate) generation: u32,
    /// See [`feed_word`]. The feed owns one strong count of the list.
    word: CachePadded<AtomicU128>,
    /// Receivers of this feed with `waiting` set (see "Waking"): a notify
    /// finding none skips its rings' wakers. Per feed, so receivers of one
    /// handle sleeping and waking never touch a line that notifies of
    /// other handles read.
    pub(crate) sleeping: CachePadded<AtomicU64>,
    /// The feed's bytes, charged to the queue's budget.
    _charge: Charge,
}

impl Feed {
    /// Bytes charged for a feed: its `Arc` allocation.
    pub(crate) fn budget_bytes() -> usize {
        2 * core::mem::size_of::<usize>() + core::mem::size_of::<Self>()
    }

    /// An empty feed of `generation`, its tail at 0.
    pub(crate) fn new(generation: u32, charge: Charge) -> Self {
        Self {
            generation,
            word: CachePadded::new(AtomicU128::new(0)),
            sleeping: CachePadded::new(AtomicU64::new(0)),
            _charge: charge,
        }
    }

    #[inline(always)]
    fn load(&self, fast: Option<Fast128>) -> u128 {
        match fast {
            // As strong as `Acquire`.
            Some(fast) => fast.load(&self.word),
            // Acquire: pairs with the Release CAS that stored the list (its
            // rings and their `start`) and with notifiers' claims.
            None => self.word.load(Ordering::Acquire),
        }
    }

    #[inline(always)]
    fn cas(&self, current: u128, new: u128, fast: Option<Fast128>) -> Result<u128, u128> {
        match fast {
            // `SeqCst`.
            Some(fast) => fast.compare_exchange(&self.word, current, new),
            // AcqRel: Release publishes a new list (and what it points to);
            // Acquire reads the list a subscriber published, and orders a
            // notify's claim after every earlier one. Acquire on failure: the
            // value read is used as the next expected word and its list may
            // be read.
            None => self
                .word
                .compare_exchange(current, new, Ordering::AcqRel, Ordering::Acquire),
        }
    }

    /// The tail, with `CLOSED` once closed.
    #[inline(always)]
    pub(crate) fn tail(&self, fast: Option<Fast128>) -> u64 {
        tail_of(self.load(fast))
    }

    /// The current list (null if none). The caller keeps it alive: pinned,
    /// or holding the registry lock (lists are replaced only under it).
    pub(crate) fn list(&self) -> *const SubscriberList {
        list_of(self.load(Fast128::get()))
    }

    /// Claims the next position for one notify, with the list it is for;
    /// `None` when no ring is listed (nothing claimed). The caller is
    /// pinned (the list is retired through the epoch collector).
    #[inline]
    pub(crate) fn claim(&self, fast: Option<Fast128>) -> Option<Claim> {
        let mut cur = self.load(fast);
        loop {
            let list = list_of(cur);
            if list.is_null() {
                return None;
            }
            let t = tail_of(cur);
            if t & CLOSED != 0 {
                return Some(Claim { pos: None, list });
            }
            match self.cas(cur, feed_word(t + 1, list), fast) {
                Ok(_) => return Some(Claim { pos: Some(t), list }),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Replaces the list with `list` (an `Arc::into_raw`, or null), keeping
    /// the tail; calls `at` with the tail (without `CLOSED`) before each
    /// attempt, so that what it stores is published by the CAS that
    /// succeeds. Returns the old list, whose strong count the caller now
    /// owns (to retire once no lock is held). Caller holds the registry
    /// lock, which serialises list changes.
    pub(crate) fn replace_list(
        &self,
        list: *const SubscriberList,
        at: impl Fn(u64),
    ) -> *const SubscriberList {
        let fast = Fast128::get();
        let mut cur = self.load(fast);
        loop {
            at(tail_of(cur) & !CLOSED);
            match self.cas(cur, feed_word(tail_of(cur), list), fast) {
                Ok(_) => return list_of(cur),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Closes the feed where its tail stands; returns whether this call
    /// closed it.
    pub(crate) fn close(&self) -> bool {
        let fast = Fast128::get();
        let mut cur = self.load(fast);
        loop {
            let t = tail_of(cur);
            if t & CLOSED != 0 {
                return false;
            }
            match self.cas(cur, feed_word(t | CLOSED, list_of(cur)), fast) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        // Acquire: take over the list (we are its last owner: `&mut`).
        let list = list_of(self.word.load(Ordering::Acquire));
        if !list.is_null() {
            // SAFETY: the feed owned one strong count of its current list
            // (stored with `Arc::into_raw`); nobody else can reach the word.
            drop(unsafe { Arc::from_raw(list) });
        }
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
    /// Values this subscriber lost (see [`Subscription::dropped`](crate::Subscription::dropped)).
    pub dropped: u64,
    /// What it keeps when full.
    pub overflow: Overflow,
}

/// A feed with one ring listed, for the unit tests: what a notify
/// (`push`) and a subscription (`recv`) do with it, and states that take
/// billions of notifies to reach.
#[cfg(all(test, not(notification_queue_loom)))]
pub(crate) struct Solo {
    pub(crate) feed: Feed,
    pub(crate) ring: Arc<Ring>,
}

#[cfg(all(test, not(notification_queue_loom)))]
impl Solo {
    /// A ring whose positions start at `start`, as if `start` values had
    /// been pushed and received, so stamps can be driven across their wrap.
    pub(crate) fn starting_at(cap: usize, overflow: Overflow, start: u64) -> Self {
        let budget = Arc::new(super::budget::Budget::new(usize::MAX));
        let charge = || Charge::new(&budget, super::budget::Category::Rings, 0).unwrap();
        let cells = Arc::new(Cells::new(cap, charge()));
        let len = cells.len();
        let ring = Arc::new(Ring::new(cells, cap, overflow, Hint::from(""), charge()));
        let feed = Feed::new(1, charge());
        for i in 0..len {
            // The last position below `start` that lives in cell `i` (none:
            // never written): written and received.
            if start > i {
                let last = start - 1 - (start - 1 - i) % len;
                ring.cell(i).store(pack(last, 0), Ordering::Relaxed);
            }
        }
        let list = Arc::into_raw(Arc::new(SubscriberList::new(alloc::vec![ring.clone()])));
        if overflow == Overflow::KeepNewest {
            feed.word.store(feed_word(start, list), Ordering::Relaxed);
            ring.start.store(start, Ordering::Relaxed);
        } else {
            feed.word.store(feed_word(0, list), Ordering::Relaxed);
            ring.tail.store(start, Ordering::Relaxed);
        }
        ring.head.store(start, Ordering::Relaxed);
        Self { feed, ring }
    }

    /// What a notify does to the ring: claim, then write (or count a drop).
    pub(crate) fn push(&self, value: i64) -> Pushed {
        let fast = Fast128::get();
        let Some(claim) = self.feed.claim(fast) else {
            unreachable!("the ring is listed");
        };
        match (claim.pos, self.ring.overflow) {
            (None, _) => self.ring.closed_drop(),
            (Some(pos), Overflow::KeepNewest) => {
                self.ring.cells.write_newest(pos, value, fast);
                Pushed {
                    stored: true,
                    dropped: 0,
                }
            }
            (Some(_), _) => self.ring.push_oldest(value),
        }
    }

    pub(crate) fn recv(&self, head: &mut u64) -> Result<i64, TryRecvError> {
        self.ring.recv(&self.feed, head)
    }

    pub(crate) fn len(&self) -> usize {
        self.ring.len(&self.feed)
    }

    pub(crate) fn dropped(&self) -> u64 {
        self.ring.dropped(&self.feed)
    }

    /// What unregistering does: closes the feed (and a keep-oldest ring's
    /// own tail).
    pub(crate) fn close(&self) {
        self.feed.close();
        self.ring.close_own();
    }

    /// The state `k` sequential keep-newest pushes of `value(position)`
    /// leave (no receiver running meanwhile), without doing them: only the
    /// last `cap` positions are written.
    fn push_many(&self, k: u64, value: impl Fn(u64) -> i64) {
        let ring = &self.ring;
        assert_eq!(ring.overflow, Overflow::KeepNewest);
        let word = self.feed.word.load(Ordering::Relaxed);
        let t = tail_of(word);
        assert_eq!(t & CLOSED, 0);
        if k <= ring.cap {
            for p in t..t + k {
                self.push(value(p));
            }
            return;
        }
        for p in t + k - ring.cap..t + k {
            ring.cell(p).store(pack(p, value(p)), Ordering::Relaxed);
        }
        self.feed
            .word
            .store(feed_word(t + k, list_of(word)), Ordering::Relaxed);
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
    fn drain(ring: &Solo, head: &mut u64) -> (Vec<Result<i64, TryRecvError>>, TryRecvError) {
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
        // Under Miri a ring of 1000 cells, drained 90 times, takes minutes;
        // 17 (cells rounded up to 32) keeps a capacity that is not a power
        // of two and is larger than the small ones.
        let caps: &[u64] = if cfg!(miri) {
            &[1, 2, 3, 4, 17]
        } else {
            &[1, 2, 3, 4, 1000]
        };
        for &cap in caps {
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
                        let ring = Solo::starting_at(cap as usize, Overflow::KeepNewest, start);
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
                let ring = Solo::starting_at(cap as usize, Overflow::KeepNewest, start);
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
            let ring = Solo::starting_at(2, Overflow::KeepNewest, 0);
            ring.push_many(k, val);
            ring.close();
            let mut head = 0;
            let (got, end) = drain(&ring, &mut head);
            assert_eq!(got, expected(0, k, 2), "k {k}");
            assert_eq!(end, TryRecvError::Closed);
        }
    }
}
