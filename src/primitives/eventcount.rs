//! One handle's event count: the packed state word and its bounded waiter list.
//!
//! # The state word
//!
//! Every slot has one `AtomicU64`:
//!
//! ```text
//!  63                  27 26              3     2         1          0
//! +----------------------+------------------+--------+-----------+---------+
//! | sequence (37)        | generation (24)  | PERMIT | SUBSCRIBED| WAITERS |
//! +----------------------+------------------+--------+-----------+---------+
//! ```
//!
//! The sequence sits in the top bits so that a notify's new word is one add
//! (its carry falls off the top: the sequence wraps inside its field) and
//! one and (taking `WAITERS`).
//!
//! - *generation*: odd while a handle owns the slot, even while it is free.
//!   A [`Handle`](crate::Handle) carries the odd generation it was issued
//!   with; every operation compares it with the word, so a stale handle can
//!   never act on the slot's next owner.
//! - *sequence*: bumped by every notify (wrapping inside its 37 bits; it
//!   never carries into the generation).
//! - `WAITERS`: set by a waiter after it has published its waker; taken
//!   (cleared) by the notify that will wake it. With the bit clear, notify
//!   knows nobody registered since the previous notify and skips the list.
//! - `SUBSCRIBED`: set while the handle has subscribers; never cleared by
//!   notify.
//! - `PERMIT`: a `notify_one` found no waiter to complete and left one
//!   permit; the next wait that would otherwise sleep takes it (clears it
//!   with the CAS it registers with). notify keeps it; unregister clears it.
//!
//! # Notifying
//!
//! notify is one compare-and-swap on the word: check the generation, bump the
//! sequence, clear `WAITERS`. The generation check sits *inside* the CAS, so a
//! notify racing with unregister + re-register either lands on the old
//! generation (and is seen by its waiters as "notified" or "closed") or fails
//! as stale; it can never bump the new owner's sequence. Only when the value
//! it replaced had `WAITERS` or `SUBSCRIBED` set does notify look further.
//!
//! The argument lives beside the word, in one of [`ARG_CELLS`] cells chosen
//! by the generation (`Slot::args`): notify stores it after its generation
//! check and before its CAS, whose Release publishes it with the new
//! sequence. A notify racing with the unregister of its own handle may store
//! its argument after the generation changed; its CAS then fails and it
//! returns `StaleHandle`, and the stray store lands in the *old* generation's
//! cell, which the slot's next `ARG_CELLS - 1` owners never read. A new
//! owner can only see a stale argument if one notify stays preempted between
//! its generation check and its store for `ARG_CELLS - 1` complete
//! register / unregister lifetimes of the slot and the start of the next.
//! Closing that too would need a second RMW on every notify, which the fast
//! path does not pay.
//!
//! # Generations never repeat
//!
//! A slot's generations only grow: unregister moves the word to the next
//! (even) generation, register to the odd one after it, and a slot whose
//! handle had the last generation ([`MAX_GENERATION`], or the smaller
//! limit a test configures) is retired for good instead of being put back on
//! the free list. So no generation of a slot is ever issued twice, a stale
//! handle is rejected after any number of reuses, and "newer generation" is
//! a plain `>` (used to keep stale waits from touching a newer owner's
//! waiter list). A retired slot costs its 128 bytes once per 2^23
//! register / unregister cycles.
//!
//! # The last close
//!
//! Beside the word each slot keeps the word its last unregister replaced
//! (`Slot::closed`: generation and final sequence). A wait whose handle was
//! unregistered after a notify it has not seen yet reports that notify
//! first (`Notified`), and `Closed` only from a snapshot at the final
//! sequence, as long as the slot has not been closed again by a later owner
//! (then the record is gone and the wait reports `Closed`).
//!
//! # Waiting (the eventcount protocol)
//!
//! A waiter holds a snapshot `s` of the sequence. To sleep it
//! 1. claims an [`Entry`] in the list and registers its waker there, then
//! 2. sets `WAITERS` with a CAS on the word, only while the word still has
//!    its generation and sequence `s` (a stale waiter never touches a newer
//!    owner's word): if the sequence differs from `s` (or the generation
//!    changed) it completes at once; otherwise it sleeps.
//!
//! # Why no wakeup is lost
//!
//! The waiter's CAS (step 2) and the notifier's CAS are read-modify-writes
//! of the same word, so they are totally ordered.
//! - Notifier first: the waiter's CAS fails or is never tried, and the value
//!   it reads has a sequence `!= s`; the waiter does not sleep.
//! - Waiter first: the notifier's CAS replaces a value with `WAITERS` set,
//!   so the notifier scans the list. The waiter's waker registration
//!   happens-before its CAS (Release), which the notifier's CAS reads
//!   (Acquire, directly or via the release sequence of later RMWs), so the
//!   scan sees the entry claimed and its waker present, and wakes it.
//!
//! Unregister is the same argument with "generation changed" for "sequence
//! changed". This is the classic eventcount; we chose it over
//! `event-listener`'s listen-then-check because the snapshot is a plain
//! value: it costs nothing to take, can be taken long before waiting (a pipe
//! reader takes it before checking its buffer), and tells the waker how many
//! notifications it coalesced.
//!
//! # Waking one (`notify_one`, `notify_n`)
//!
//! A claim takes a ticket (registration order) and stores it in the entry's
//! state with the claim. `notify_one` never touches the sequence: if
//! `WAITERS` is set it moves the smallest-ticket `CLAIMED` entry through
//! `NOTIFYING` (storing its argument) to `NOTIFIED` and wakes its waker.
//! With nobody to complete it sets `PERMIT` with a CAS on the word, and the
//! waiter's registration RMW orders the two: a waiter registering after the
//! CAS takes the permit; one registering before it stored its claim before
//! its RMW, so a second look at the entries after the CAS finds it, and the
//! notifier takes the permit back and scans again. (With `WAITERS` clear,
//! the waiter's RMW changes the word and fails the notifier's CAS instead,
//! and no second look is needed.) A waiter checks
//! its entry after registering its waker, so it sees `NOTIFIED` or the
//! notifier sees its waker. An owner leaving a `NOTIFIED` entry it did not
//! report hands the wake on (`notify_one` again); one leaving a `NOTIFYING`
//! entry marks it `ABANDONED` and the notifier frees it and moves on.
//!
//! # Freeing completed waits
//!
//! A plain notify's scan (`take_wakers` with the handle's word) frees the
//! entry of every wait it finds complete as it takes its waker
//! (`Entry::take_done`): one RMW for both, where a take and the owner's later
//! free would be three. The owner then finds its entry gone: every owner
//! operation (`register`, `owner_view`, `release`, hints) first checks that
//! the entry's state still carries its claim's ticket, and leaves an entry
//! that does not alone (another wait may have claimed it since). Only
//! complete waits are freed (the word has moved past the snapshot the
//! entry holds), and only `CLAIMED` entries with their waker in place, so
//! no wait that is still waiting loses its entry and no `notify_one` that
//! chose an entry is lost.
//!
//! # Waiter storage
//!
//! A [`WaiterList`] belongs to one generation of one slot and is created on
//! the first wait. It is a chain of fixed chunks (never freed while the list
//! lives), so entries never move. Waiters hold an `Arc` to it; the slot holds
//! one reference that is retired through crossbeam-epoch when the handle is
//! unregistered or the list is replaced by a newer generation's list, because
//! notifiers read the slot's pointer under an epoch pin without taking a
//! reference.

use super::budget::{Budget, Category};
use crate::error::QueueError;
use crate::sync::{
    Arc, AtomicI64, AtomicPtr, AtomicU64, AtomicUsize, Hint, Mutex, Ordering, UnsafeCell,
};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::mem::MaybeUninit;
use core::ptr;
use core::task::{RawWakerVTable, Waker};

/// A waiter has registered since the last notify (bit 0).
pub(crate) const WAITERS: u64 = 1;
/// The handle has at least one subscriber (bit 1).
pub(crate) const SUBSCRIBED: u64 = 1 << 1;
/// A `notify_one` left a permit for the next wait (bit 2).
pub(crate) const PERMIT: u64 = 1 << 2;
const FLAGS: u64 = WAITERS | SUBSCRIBED | PERMIT;
/// Flags that send a notify down its slow path (not `PERMIT`: a plain
/// notify neither takes nor makes permits).
const SLOW: u64 = WAITERS | SUBSCRIBED;
const GEN_SHIFT: u32 = 3;
/// Generations are 24 bits wide.
pub(crate) const GEN_MASK: u32 = (1 << 24) - 1;
const SEQ_SHIFT: u32 = 27;
const SEQ_BITS: u32 = 64 - SEQ_SHIFT;
/// Mask of a sequence value once shifted down.
pub(crate) const SEQ_VALUE_MASK: u64 = (1 << SEQ_BITS) - 1;
const SEQ_MASK: u64 = SEQ_VALUE_MASK << SEQ_SHIFT;
/// The last generation a slot may be issued with. A slot whose handle of
/// this generation is unregistered is retired for good (never reused), so a
/// generation is never issued twice and generations of one slot only grow.
pub(crate) const MAX_GENERATION: u32 = GEN_MASK;

/// Argument cells per slot (a power of two). Generation `g` writes
/// `args[arg_cell(g)]`, so a stale notify that stores its argument after
/// its handle was unregistered writes a cell that the next
/// `ARG_CELLS - 1` owners of the slot do not read.
pub(crate) const ARG_CELLS: usize = 4;

/// The argument cell of generation `generation`.
#[inline(always)]
pub(crate) const fn arg_cell(generation: u32) -> usize {
    (generation >> 1) as usize & (ARG_CELLS - 1)
}

/// Reads the generation out of a state word.
#[inline(always)]
pub(crate) const fn generation(word: u64) -> u32 {
    (word >> GEN_SHIFT) as u32 & GEN_MASK
}

/// Reads the sequence out of a state word.
#[inline(always)]
pub(crate) const fn sequence(word: u64) -> u64 {
    word >> SEQ_SHIFT
}

/// A fresh word for `generation` with sequence 0 and no flags.
#[inline(always)]
pub(crate) const fn fresh(generation: u32) -> u64 {
    ((generation & GEN_MASK) as u64) << GEN_SHIFT
}

/// Whether `word` belongs to `generation` and has neither waiters nor
/// subscribers (`PERMIT` may be set): the state in which a notify is one
/// CAS. One masked compare, so the fast path checks both with one branch.
#[inline(always)]
pub(crate) const fn is_idle_of(word: u64, generation: u32) -> bool {
    (word ^ fresh(generation)) & (((GEN_MASK as u64) << GEN_SHIFT) | SLOW) == 0
}

/// [`bumped`] for a word with `WAITERS` clear (see [`is_idle_of`]): one add.
#[inline(always)]
pub(crate) const fn bumped_idle(word: u64) -> u64 {
    word.wrapping_add(1 << SEQ_SHIFT)
}

/// The word after one notify: sequence + 1 (wrapping inside its field),
/// `WAITERS` taken, `SUBSCRIBED` kept.
#[inline(always)]
pub(crate) const fn bumped(word: u64) -> u64 {
    word.wrapping_add(1 << SEQ_SHIFT) & !WAITERS
}

/// The word after unregister: the next (even, free) generation, flags cleared.
#[inline(always)]
pub(crate) const fn retired(word: u64) -> u64 {
    let next = generation(word).wrapping_add(1) & GEN_MASK;
    fresh(next) | (word & SEQ_MASK)
}

/// The close record of a word: its generation and sequence, flags cleared.
#[inline(always)]
pub(crate) const fn record(word: u64) -> u64 {
    word & !FLAGS
}

/// Whether the word replaced by a notify asks for the slow path.
#[inline(always)]
pub(crate) const fn needs_slow_path(word: u64) -> bool {
    word & SLOW != 0
}

/// Number of notifications between two sequence values (mod 2^37).
#[inline(always)]
pub(crate) const fn distance(from: u64, to: u64) -> u64 {
    to.wrapping_sub(from) & SEQ_VALUE_MASK
}

/// Entries in a list's first chunk; each further chunk doubles.
const FIRST: usize = 4;

/// Most entries a list ever holds (`u32::MAX`: 128 GiB of entries, far
/// past any budget), so every entry index fits in a `u32`.
pub(crate) const MAX_ENTRIES: usize = u32::MAX as usize;

// Entry states. An entry's state word is `FREE` or
// `ticket << TICKET_SHIFT | flags | tag`: the ticket (from
// `WaiterList::tickets`, taken just before the claim) is the registration
// order `notify_one` serves first in, first out. The ticket in every
// non-free state also keeps a CAS from matching a later owner's state.
//
// - `RESERVED`: just taken by a claimer, which stores its snapshot in the
//   entry's cell and then publishes `CLAIMED` (no one else touches it).
// - `CLAIMED`: owned by a pending wait.
// - `NOTIFYING`: a `notify_one` chose it and is storing its argument.
// - `NOTIFIED`: the argument is stored; the owner completes with it, or
//   hands it on if it completes otherwise or is dropped.
// - `ABANDONED`: the owner left while it was `NOTIFYING`; the notifier frees
//   the entry and passes the notification to the next waiter.
//
// The waker cell beside the state is guarded by the state word itself (so
// registering costs no RMW of its own, and releasing an entry whose waker
// a notifier took costs only the CAS that frees it):
// - `WAKER`: the cell holds the owner's waker for a notifier to take. Only
//   the owner sets it (with the claim's store of `CLAIMED`, or when it
//   registers another waker).
// - `BUSY`: whoever set it (with a CAS from a word without it) has the
//   cell to itself: a notifier taking the waker out, or the owner putting
//   one in or freeing the entry. The others may still change the tag
//   (except to `FREE`, which needs the cell empty); nobody waits for it.
// - `WAKE`: a notifier found the cell `BUSY` and left this instead of the
//   waker it could not take: the holder wakes (the owner its new waker; a
//   taker wakes the one it took anyway).
// The claimer also has the cell to itself while `RESERVED`. A `FREE`
// entry's cell is empty.
const FREE: u64 = 0;
const TAG_BITS: u32 = 3;
const TAG_MASK: u64 = (1 << TAG_BITS) - 1;
const WAKER: u64 = 1 << TAG_BITS;
const BUSY: u64 = 1 << (TAG_BITS + 1);
const WAKE: u64 = 1 << (TAG_BITS + 2);
const TICKET_SHIFT: u32 = TAG_BITS + 3;
const CLAIMED: u64 = 1;
const NOTIFYING: u64 = 2;
const NOTIFIED: u64 = 3;
const ABANDONED: u64 = 4;
const RESERVED: u64 = 5;

#[inline(always)]
const fn tag(state: u64) -> u64 {
    state & TAG_MASK
}

#[inline(always)]
const fn with_tag(state: u64, tag: u64) -> u64 {
    (state & !TAG_MASK) | tag
}

/// Whether `state` is that of the owner that claimed with `ticket` (not
/// free, not another owner's: a notifier may have freed the entry of a
/// completed wait, and another wait may have claimed it since).
#[inline(always)]
const fn owned_by(state: u64, ticket: u64) -> bool {
    tag(state) != FREE && state >> TICKET_SHIFT == ticket
}

/// What identifies a registered waker (its data and vtable pointers, as
/// `Waker::will_wake` compares them); the owner keeps it to skip
/// registering the same waker again.
pub(crate) type WakerId = (*const (), *const RawWakerVTable);

/// The [`WakerId`] of `waker`.
#[inline(always)]
pub(crate) fn waker_id(waker: &Waker) -> WakerId {
    (waker.data(), waker.vtable())
}

/// What an owner finds in its entry ([`Entry::owner_view`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum OwnerView {
    /// Still ours, not chosen by a `notify_one`.
    Held,
    /// Ours, completed by a `notify_one` (its argument is in the entry).
    Notified,
    /// Not ours any more: a plain notify found our wait complete and freed
    /// the entry (see `take_done`). An owner's ticket never comes back, so
    /// the entry stays not ours, and releasing it would do nothing.
    Gone,
}

/// One pending waiter's waker cell. Hints live beside, in
/// `WaiterList::hints`, so an unhinted wait never touches a lock.
#[derive(Debug)]
pub(crate) struct Entry {
    /// `FREE`, or a ticket with flags and a tag (see above); the claimer
    /// owns the entry until it (or, for `ABANDONED`, the notifier) frees it.
    state: AtomicU64,
    /// The owner's waker, guarded by `state` (see `WAKER`, `BUSY`).
    waker: UnsafeCell<Option<Waker>>,
    /// While `CLAIMED`: the owner's snapshot sequence (stored while
    /// `RESERVED`), so `notify_one` can pass by a wait that a plain notify
    /// has completed already. From `NOTIFYING` on: the argument of the
    /// `notify_one` that moved the entry to `NOTIFIED`, written only by
    /// that notifier. (One cell for both keeps an entry at 32 bytes.)
    arg: AtomicI64,
}

// SAFETY: the waker cell is read or written only by the one thread that
// holds it through the state word (`RESERVED` claimer, or the `BUSY`
// holder, or `&mut` access), with Acquire / Release on the transitions that
// hand it over; `Waker` is `Send + Sync`. Everything else is atomic.
unsafe impl Sync for Entry {}
// SAFETY: as above; an `Entry` owns only atomics and a `Waker` (`Send`).
unsafe impl Send for Entry {}

impl Entry {
    fn new() -> Self {
        Self {
            state: AtomicU64::new(FREE),
            waker: UnsafeCell::new(None),
            arg: AtomicI64::new(0),
        }
    }

    /// What the owner that claimed with `ticket` finds in this entry.
    #[inline]
    pub(crate) fn owner_view(&self, ticket: u64) -> OwnerView {
        // Acquire: pairs with the notifier's Release CAS to `NOTIFIED`, so a
        // following `release` reads its argument; and with a notifier's
        // Release free (`take_done`), so the owner's next look at the word
        // sees the notify that completed it.
        let state = self.state.load(Ordering::Acquire);
        if !owned_by(state, ticket) {
            OwnerView::Gone
        } else if tag(state) == NOTIFIED {
            OwnerView::Notified
        } else {
            OwnerView::Held
        }
    }

    /// Moves the cell's waker out.
    ///
    /// # Safety
    ///
    /// The caller holds the cell (`BUSY`, `RESERVED` or `&mut`).
    #[inline(always)]
    unsafe fn cell_take(&self) -> Option<Waker> {
        // SAFETY: per the contract nobody else accesses the cell.
        self.waker.with_mut(|w| unsafe { (*w).take() })
    }

    /// Puts `waker` in the cell; returns what was there.
    ///
    /// # Safety
    ///
    /// As for `cell_take`.
    #[inline(always)]
    unsafe fn cell_put(&self, waker: Waker) -> Option<Waker> {
        // SAFETY: per the contract nobody else accesses the cell.
        self.waker.with_mut(|w| unsafe { (*w).replace(waker) })
    }

    /// Registers `waker` in this entry, claimed with `ticket`, for the next
    /// notifier to take, unless the waker `registered` is still there and
    /// wakes the same task. Runs the waker's clone and drop (client code)
    /// while holding nothing; a notifier racing with us is never made to
    /// wait (it leaves `WAKE`, and we wake the new waker ourselves).
    ///
    /// Returns `false` if the entry is no longer ours: a notifier found our
    /// wait completed and freed it (see `take_done`); the caller's next look
    /// at the handle's word sees the completion.
    pub(crate) fn register(&self, ticket: u64, waker: &Waker, registered: &mut WakerId) -> bool {
        // Acquire: a `BUSY` taker's release of the cell (its Release RMW)
        // is seen before we take the cell below (the CAS re-checks); and a
        // notifier's free, after its look at the word.
        let mut state = self.state.load(Ordering::Acquire);
        if !owned_by(state, ticket) {
            return false;
        }
        let id = waker_id(waker);
        if state & WAKER != 0 && *registered == id {
            // Still there: a notifier that takes it wakes the same task.
            return true;
        }
        let fresh = waker.clone();
        loop {
            if !owned_by(state, ticket) {
                return false;
            }
            if state & BUSY != 0 {
                // A notifier is taking our previous waker out: it completed
                // or closed us first (our Acquire load synchronised with its
                // RMW, so the caller's checks after this see that), and it
                // wakes the old waker. Wake this one too, so the task is
                // polled again even if the caller returned `Pending`.
                fresh.wake();
                return true;
            }
            // Acquire: takes the cell over from a taker's Release.
            match self.state.compare_exchange_weak(
                state,
                (state | BUSY) & !WAKER,
                Ordering::Acquire,
                Ordering::Acquire,
            ) {
                Ok(_) => break,
                Err(actual) => state = actual,
            }
        }
        // SAFETY: we set `BUSY`.
        let old = unsafe { self.cell_put(fresh) };
        *registered = id;
        // `WAKER` is clear (we cleared it; only the owner sets it) and `BUSY`
        // is ours: one xor sets the one and clears the other. AcqRel:
        // Release publishes the waker to the next taker; the RMW also
        // orders this registration before our later RMW on the handle's
        // word, like any registration.
        let prev = self.state.fetch_xor(BUSY | WAKER, Ordering::AcqRel);
        if prev & WAKE != 0 {
            // A notifier found the cell ours: as above, its notify is
            // visible to the caller's checks after this RMW; wake anyway.
            // Relaxed: only a flag; the wake below is what matters.
            self.state.fetch_and(!WAKE, Ordering::Relaxed);
            waker.wake_by_ref();
        }
        drop(old);
        true
    }

    /// Takes the owner's waker out for a notifier (`None` if there is none
    /// to take, or if another holder of the cell will wake it). Never
    /// waits for anyone.
    pub(crate) fn take(&self) -> Option<Waker> {
        // Acquire: pairs with the owner's Release publication of `WAKER`.
        self.take_from(self.state.load(Ordering::Acquire))
    }

    /// [`take`](Self::take) from the state `state` just read.
    fn take_from(&self, mut state: u64) -> Option<Waker> {
        loop {
            let t = tag(state);
            if t == FREE || t == RESERVED {
                return None;
            }
            let next = if state & BUSY != 0 {
                if state & WAKE != 0 {
                    return None;
                }
                // Its holder wakes in our place.
                state | WAKE
            } else if state & WAKER != 0 {
                (state & !WAKER) | BUSY
            } else {
                // Taken already, by a notifier that wakes it.
                return None;
            };
            // AcqRel: Acquire reads the waker the owner published; Release
            // (for `WAKE`) hands our notification to the holder's RMW.
            match self
                .state
                .compare_exchange_weak(state, next, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) if next & BUSY != 0 && state & BUSY == 0 => {
                    // SAFETY: we set `BUSY`.
                    let waker = unsafe { self.cell_take() };
                    // Release: hands the empty cell back (the owner or a
                    // claimer takes it with Acquire). An RMW, as others may
                    // have changed the tag meanwhile; a `WAKE` left by
                    // another notifier is served by the waker we took.
                    self.state.fetch_and(!(BUSY | WAKE), Ordering::Release);
                    return waker;
                }
                Ok(_) => return None,
                Err(actual) => state = actual,
            }
        }
    }

    /// A plain notify's take: if this entry's wait is complete (the
    /// handle's `word` has moved past its snapshot, or to another
    /// generation than `generation`, the list's) and its waker is there to
    /// take, takes the waker *and* frees the entry, so the owner's release
    /// finds it gone and costs no RMW, and the take costs one RMW instead of
    /// two. Otherwise as [`take`](Self::take). Returns the waker and whether
    /// the entry was freed. Never waits for anyone.
    ///
    /// Why the wait is complete: the owner claimed only after a look at the
    /// word that saw its snapshot, and that look happens-before our load of
    /// the word (its claim's Release store of `CLAIMED`, read by our Acquire
    /// load of the state), so our load sees that value or a later one; a
    /// different one is a notify or close after the snapshot. The owner's
    /// next look sees it too: our free is a Release the owner's Acquire
    /// loads of its entry read before it looks at the word again.
    pub(crate) fn take_done(&self, word: &AtomicU64, generation: u32) -> (Option<Waker>, bool) {
        // Acquire: as in `take`, and it orders the loads of the snapshot and
        // of the word below after the claim.
        let mut state = self.state.load(Ordering::Acquire);
        while tag(state) == CLAIMED && state & (WAKER | BUSY) == WAKER {
            // Relaxed: ordered by the Acquire load above. If a `notify_one`
            // has taken the entry meanwhile (storing its argument here), the
            // CAS below fails: the state has changed.
            let start = self.arg.load(Ordering::Relaxed) as u64;
            // Acquire: the notify (or close) we see here happened before us.
            let w = word.load(Ordering::Acquire);
            if self::generation(w) == generation && sequence(w) == start {
                // Still waiting (for a later notify): wake it, keep it.
                break;
            }
            // AcqRel: Acquire takes the cell over from the owner's Release
            // publication of `WAKER`; Release orders our look at the word
            // before the free the owner will see. `BUSY` with tag `FREE`:
            // nobody else touches it (claimers expect `FREE` exactly).
            match self
                .state
                .compare_exchange(state, BUSY, Ordering::AcqRel, Ordering::Acquire)
            {
                Ok(_) => {
                    // SAFETY: we set `BUSY`.
                    let waker = unsafe { self.cell_take() };
                    // Release: the next claimer sees the cell emptied (and
                    // the owner our free). A store: nobody else changes a
                    // `FREE`-tagged word.
                    self.state.store(FREE, Ordering::Release);
                    return (waker, true);
                }
                Err(actual) => state = actual,
            }
        }
        (self.take_from(state), false)
    }

    /// Frees this entry, which the caller owns, from state `state` with
    /// one CAS; returns the waker left in it (to drop or wake outside any
    /// pin), or the actual state if it changed.
    fn free(&self, state: u64) -> Result<Option<Waker>, u64> {
        if state & BUSY != 0 {
            // A notifier is taking the waker out: leave it `BUSY` alone;
            // its release of the cell makes the entry `FREE`. AcqRel: as
            // below.
            return self
                .state
                .compare_exchange(state, BUSY, Ordering::AcqRel, Ordering::Acquire)
                .map(|_| None);
        }
        if state & WAKER != 0 {
            // Hold the cell with tag `FREE`, which no one else touches.
            // Acquire: as in `register`.
            self.state
                .compare_exchange(state, BUSY, Ordering::Acquire, Ordering::Acquire)?;
            // SAFETY: we set `BUSY`.
            let waker = unsafe { self.cell_take() };
            // Release: the next claimer sees the cell emptied. A store:
            // nobody else changes a `FREE`-tagged word.
            self.state.store(FREE, Ordering::Release);
            return Ok(waker);
        }
        // AcqRel: Release hands the entry (empty cell) to the next claimer;
        // Acquire on failure reads a `NOTIFIED` state's argument.
        self.state
            .compare_exchange(state, FREE, Ordering::AcqRel, Ordering::Acquire)
            .map(|_| None)
    }
}

#[derive(Debug)]
struct Chunk {
    /// Index of `entries[0]` in the whole list.
    base: usize,
    entries: Box<[Entry]>,
    /// Next chunk (twice as large); set once (null -> chunk), never changed.
    next: AtomicPtr<Chunk>,
}

impl Chunk {
    fn new(base: usize, len: usize) -> Self {
        Self {
            base,
            entries: (0..len).map(|_| Entry::new()).collect(),
            next: AtomicPtr::new(ptr::null_mut()),
        }
    }
}

/// The waiters of one generation of one slot.
///
/// Entries sit in a chain of chunks of doubling size (4, 8, 16, ...), capped
/// in total at the waiter limit, so an entry never moves and a claim walks
/// O(log n) chunks. `next_free` remembers where the last release or claim
/// left a free entry, so claiming is O(1) in the common case; `high` bounds
/// how far a wake scan has to look.
#[derive(Debug)]
pub(crate) struct WaiterList {
    /// The slot generation this list serves.
    pub(crate) generation: u32,
    /// Most entries this list may ever hold (`max_waiters_per_handle`).
    limit: usize,
    /// One past the highest entry index ever claimed.
    high: AtomicUsize,
    /// Where to start looking for a free entry (a hint; any value is safe).
    next_free: AtomicUsize,
    /// Entries allocated so far (sum of chunk lengths).
    allocated: AtomicUsize,
    /// Registration order: each claim takes the next ticket first.
    tickets: AtomicU64,
    head: Chunk,
    /// Debug hints of hinted waiters, by entry index. Cold: only waits that
    /// carry a hint and the debug dump lock it; never held over client code.
    hints: Mutex<Vec<(usize, u64, Hint)>>,
    /// The queue's budget: the list and each chunk are charged before they
    /// are allocated, and `Drop` releases what the list holds (the list may
    /// be freed by the epoch collector after its queue).
    budget: Arc<Budget>,
}

/// Why [`WaiterList::claim`] found no entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ClaimError {
    /// `limit` entries exist and none was free.
    Full,
    /// A new chunk was needed and the budget refused it.
    Budget(QueueError),
}

/// The `Arc` counts in front of a list's allocation.
const ARC_COUNTS: usize = 2 * core::mem::size_of::<usize>();

/// Outcome of waking a list.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WakeCount {
    pub(crate) woken: usize,
    pub(crate) panicked: usize,
}

impl WakeCount {
    pub(crate) fn add(&mut self, other: WakeCount) {
        self.woken += other.woken;
        self.panicked += other.panicked;
    }
}

/// Wakers taken out of a list, woken after the epoch pin is released (a
/// waker that blocks must not hold back reclamation), like tokio's
/// `WakeList`. Fixed size: collecting them never allocates.
pub(crate) struct WakeBatch {
    /// `wakers[head..len]` are initialised.
    wakers: [MaybeUninit<Waker>; WakeBatch::CAPACITY],
    head: usize,
    len: usize,
}

impl WakeBatch {
    const CAPACITY: usize = 32;

    pub(crate) fn new() -> Self {
        Self {
            wakers: [const { MaybeUninit::uninit() }; Self::CAPACITY],
            head: 0,
            len: 0,
        }
    }

    pub(crate) fn is_full(&self) -> bool {
        self.len == Self::CAPACITY
    }

    pub(crate) fn push(&mut self, waker: Waker) {
        match self.wakers.get_mut(self.len) {
            Some(cell) => {
                cell.write(waker);
                self.len += 1;
            }
            // Callers check `is_full` first; never drop a waker silently.
            None => waker.wake(),
        }
    }

    /// Takes out the next waker, in the order they were pushed (the scan's
    /// entry order).
    fn pop(&mut self) -> Option<Waker> {
        if self.head >= self.len {
            self.head = 0;
            self.len = 0;
            return None;
        }
        let first = self.head;
        self.head += 1;
        let cell = self.wakers.get(first)?;
        // SAFETY: `head <= first < len`, so the cell was initialised by
        // `push`; raising `head` first means it is read out exactly once.
        Some(unsafe { cell.assume_init_read() })
    }

    /// Wakes every collected waker; a panicking one is counted and the
    /// others still wake.
    pub(crate) fn wake(&mut self) -> WakeCount {
        let mut count = WakeCount::default();
        while let Some(waker) = self.pop() {
            count.woken += 1;
            if crate::sync::wake_caught(waker) {
                count.panicked += 1;
            }
        }
        count
    }
}

impl Drop for WakeBatch {
    fn drop(&mut self) {
        // Wakers still here were taken out of their entries but not woken:
        // only if a waker's panic unwound out of `wake` (without `std`,
        // where it cannot be caught). Waking them is always allowed (a
        // spurious wake at worst) and loses no wakeup.
        while let Some(waker) = self.pop() {
            waker.wake();
        }
    }
}

impl WaiterList {
    /// A list in an `Arc`, charged to `budget` (waiters) before anything
    /// is allocated; refused, it allocates nothing. It holds at most
    /// [`MAX_ENTRIES`] entries whatever `limit` asks, so an entry index fits
    /// in a `u32` (which keeps a [`Wait`](crate::Wait) small).
    pub(crate) fn new(
        generation: u32,
        limit: usize,
        budget: &Arc<Budget>,
    ) -> Result<Arc<Self>, QueueError> {
        let limit = limit.min(MAX_ENTRIES);
        let first = FIRST.min(limit);
        budget.try_charge(
            Category::Waiters,
            ARC_COUNTS + core::mem::size_of::<Self>() + first * core::mem::size_of::<Entry>(),
        )?;
        Ok(Arc::new(Self {
            generation,
            limit,
            high: AtomicUsize::new(0),
            next_free: AtomicUsize::new(0),
            allocated: AtomicUsize::new(first),
            tickets: AtomicU64::new(0),
            head: Chunk::new(0, first),
            hints: Mutex::new(Vec::new()),
            budget: budget.clone(),
        }))
    }

    /// The chunk after `chunk`, if one was linked.
    #[inline]
    fn next_chunk(chunk: &Chunk) -> Option<&Chunk> {
        // Acquire pairs with the Release CAS in `grow` that published it.
        let next = chunk.next.load(Ordering::Acquire);
        // SAFETY: a non-null `next` was published by `grow` and is freed only
        // in `Drop` (which needs `&mut self`), so it outlives `chunk`'s borrow.
        unsafe { next.as_ref() }
    }

    /// The chunk holding entry `index`, if allocated.
    #[inline]
    fn chunk_of(&self, index: usize) -> Option<&Chunk> {
        let mut chunk = &self.head;
        while index >= chunk.base + chunk.entries.len() {
            chunk = Self::next_chunk(chunk)?;
        }
        Some(chunk)
    }

    /// Finds and claims a free entry with index in `from..to`.
    #[inline]
    fn claim_in(&self, from: usize, to: usize, claimed: u64) -> Option<(usize, &Entry)> {
        let mut chunk = self.chunk_of(from)?;
        let mut index = from;
        loop {
            let end = (chunk.base + chunk.entries.len()).min(to);
            while index < end {
                if let Some(entry) = chunk.entries.get(index - chunk.base) {
                    if Self::try_take(entry, claimed) {
                        return Some((index, entry));
                    }
                }
                index += 1;
            }
            if index >= to {
                return None;
            }
            chunk = Self::next_chunk(chunk)?;
        }
    }

    fn chunks(&self) -> impl Iterator<Item = &Chunk> {
        let mut next: *const Chunk = &self.head;
        core::iter::from_fn(move || {
            // SAFETY: `next` is the inline head or a chunk published by a
            // successful CAS in `grow`; chunks are freed only in `Drop`,
            // which needs `&mut self`, so they outlive this `&self` borrow.
            let chunk = unsafe { next.as_ref() }?;
            // Acquire pairs with the Release CAS that published the chunk.
            next = chunk.next.load(Ordering::Acquire);
            Some(chunk)
        })
    }

    /// Entries with their list index, starting at the chunk holding `from`.
    fn entries_from(&self, from: usize) -> impl Iterator<Item = (usize, &Entry)> {
        self.chunks()
            .skip_while(move |c| c.base + c.entries.len() <= from)
            .flat_map(|c| {
                c.entries
                    .iter()
                    .enumerate()
                    .map(move |(i, e)| (c.base + i, e))
            })
    }

    fn try_take(entry: &Entry, claimed: u64) -> bool {
        // Relaxed pre-check keeps the claim from bouncing claimed entries'
        // cache lines; Acquire on the CAS takes over an entry the previous
        // owner released with Release, so its waker cell is quiescent.
        entry.state.load(Ordering::Relaxed) == FREE
            && entry
                .state
                .compare_exchange(FREE, claimed, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Claims a free entry: its index, the entry and the claim's ticket
    /// (which tells the owner the entry is still its own). Fails when `limit`
    /// entries are allocated and none was free during the scan, or when a
    /// new chunk was needed and the budget refused it.
    ///
    /// `start` is the claiming wait's snapshot sequence; `waker` (a clone
    /// of the wait's, made by the caller so that no client code runs while
    /// the entry is `RESERVED`) is registered with the claim.
    #[inline(always)]
    pub(crate) fn claim(
        &self,
        start: u64,
        waker: Waker,
    ) -> Result<(usize, &Entry, u64), ClaimError> {
        // Relaxed: the ticket only orders claims among themselves (each
        // claim takes a distinct, increasing one); it is published with the
        // entry's state by the claim CAS.
        let ticket = self.tickets.fetch_add(1, Ordering::Relaxed);
        let reserved = (ticket << TICKET_SHIFT) | RESERVED;
        loop {
            // Relaxed: a hint only; correctness rests on the CAS per entry.
            let from = self.next_free.load(Ordering::Relaxed);
            let found = self
                .claim_in(from, usize::MAX, reserved)
                .or_else(|| self.claim_in(0, from, reserved));
            if let Some((index, entry)) = found {
                // SAFETY: `RESERVED` is ours alone; a free entry's cell is
                // empty, so nothing is dropped here.
                drop(unsafe { entry.cell_put(waker) });
                // Relaxed: published by the Release store below.
                entry.arg.store(start as i64, Ordering::Relaxed);
                // Release: a notifier that Acquire-loads `CLAIMED` reads our
                // snapshot (see `oldest_claimed`) and takes our waker. A
                // plain store: nobody else writes a `RESERVED` entry.
                entry
                    .state
                    .store(with_tag(reserved, CLAIMED) | WAKER, Ordering::Release);
                // Relaxed: hint.
                self.next_free.store(index + 1, Ordering::Relaxed);
                // Relaxed suffices: the claimer publishes its entry (and so
                // this bound) with its Release CAS setting `WAITERS`, which
                // the waking notifier reads with Acquire.
                if index >= self.high.load(Ordering::Relaxed) {
                    self.high.fetch_max(index + 1, Ordering::Relaxed);
                }
                return Ok((index, entry, ticket));
            }
            self.grow()?;
        }
    }

    /// Appends a chunk unless `limit` entries exist, charging it to the
    /// budget first. Returns `Ok` if there may now be room (ours or a
    /// racing thread's chunk was linked).
    fn grow(&self) -> Result<(), ClaimError> {
        let Some(last) = self.chunks().last() else {
            return Err(ClaimError::Full);
        };
        let base = last.base + last.entries.len();
        let len = (last.entries.len() * 2).min(self.limit.saturating_sub(base));
        if len == 0 {
            return Err(ClaimError::Full);
        }
        let bytes = Self::chunk_bytes(len);
        self.budget
            .try_charge(Category::Waiters, bytes)
            .map_err(ClaimError::Budget)?;
        let fresh = Box::into_raw(Box::new(Chunk::new(base, len)));
        // Release publishes the chunk's initialised entries to `chunks()`
        // readers; Acquire on failure is for reading the winner's chunk.
        match last.next.compare_exchange(
            ptr::null_mut(),
            fresh,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            Ok(_) => {
                // Relaxed: a statistic for `footprint`.
                self.allocated.fetch_add(len, Ordering::Relaxed);
            }
            Err(_) => {
                // SAFETY: `fresh` came from `Box::into_raw` above and was
                // never published, so we still own it.
                drop(unsafe { Box::from_raw(fresh) });
                self.budget.release(Category::Waiters, bytes);
            }
        }
        Ok(())
    }

    /// Bytes of a linked chunk of `len` entries.
    fn chunk_bytes(len: usize) -> usize {
        core::mem::size_of::<Chunk>() + len * core::mem::size_of::<Entry>()
    }

    /// Remembers that entry `index` was freed, if it lies below where the
    /// next claim would look: claims stay packed at the front of the list,
    /// so wake scans (bounded by `high`) stay short.
    #[inline(always)]
    fn note_free(&self, index: usize) {
        // Relaxed: a hint; a racing claim or release only makes a claim
        // start a little later or earlier.
        if index < self.next_free.load(Ordering::Relaxed) {
            self.next_free.store(index, Ordering::Relaxed);
        }
    }

    /// Gives entry `index` back, if the claim of `ticket` still owns it (a
    /// plain notify frees the entries of the waits it completes).
    ///
    /// Returns the argument of a `notify_one` that completed the entry
    /// (`NOTIFIED`): the caller either completes with it or hands it on.
    /// An entry caught mid-notify (`NOTIFYING`) is left to its notifier,
    /// which frees it and passes the notification on itself. Drops the
    /// waker left in the entry (client code: the caller holds no lock).
    #[inline]
    pub(crate) fn release(&self, index: usize, entry: &Entry, ticket: u64) -> Option<i64> {
        // Acquire: a `NOTIFIED` state read here makes the notifier's arg
        // store visible.
        let mut state = entry.state.load(Ordering::Acquire);
        loop {
            if !owned_by(state, ticket) {
                // Freed by a notifier that found our wait complete.
                return None;
            }
            let arg = match tag(state) {
                CLAIMED => None,
                // Relaxed: ordered by the Acquire load of `NOTIFIED`; read
                // before the entry is freed (and can be notified again).
                NOTIFIED => Some(entry.arg.load(Ordering::Relaxed)),
                NOTIFYING => {
                    // AcqRel: Release hands the entry to the notifier, which
                    // frees it; Acquire on failure reads a `NOTIFIED`
                    // state's argument. The flags stay (the notifier frees
                    // the cell with the entry).
                    match entry.state.compare_exchange(
                        state,
                        with_tag(state, ABANDONED),
                        Ordering::AcqRel,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => return None,
                        Err(actual) => {
                            state = actual;
                            continue;
                        }
                    }
                }
                // Not ours (cannot happen for an owner): leave it.
                _ => return None,
            };
            match entry.free(state) {
                Ok(waker) => {
                    self.note_free(index);
                    drop(waker);
                    return arg;
                }
                Err(actual) => state = actual,
            }
        }
    }

    /// The claimed entry with the smallest ticket and its state.
    fn oldest_claimed(&self, sequence: u64) -> Option<(usize, &Entry, u64)> {
        // Relaxed: a claimer raises it before its registration RMW on the
        // handle's word, which the caller's Acquire read of the word (or
        // its permit CAS) follows; see `claim`.
        let high = self.high.load(Ordering::Relaxed);
        let mut best: Option<(usize, &Entry, u64)> = None;
        for (index, entry) in self.entries_from(0).take_while(|&(i, _)| i < high) {
            // Acquire: pairs with the claimer's Release store of `CLAIMED`,
            // so the snapshot read below is that owner's (a later owner's
            // entry has another ticket: the CAS in `notify_oldest` fails).
            let state = entry.state.load(Ordering::Acquire);
            if tag(state) != CLAIMED || best.is_some_and(|(_, _, b)| state > b) {
                continue;
            }
            // Relaxed: ordered by the Acquire load above.
            let start = entry.arg.load(Ordering::Relaxed) as u64;
            // A wait whose snapshot is behind the sequence was completed by
            // a plain notify (it reports that when polled): not waiting.
            if start == sequence {
                best = Some((index, entry, state));
            }
        }
        best
    }

    /// Completes up to `max` of the longest-waiting claimed entries with
    /// `arg` (oldest ticket first) and moves their wakers into `batch`
    /// (stopping when it is full). Returns how many entries were completed.
    /// Runs no client code.
    ///
    /// A caller that completed fewer than it wanted leaves a permit with a
    /// CAS on the state word and then asks `has_waiting`: a waiter the scan
    /// missed either registered (its RMW on the word) after that CAS, and
    /// takes the permit, or before it, and then its claim (stored before
    /// its RMW) is visible after the caller's CAS, which reads the RMW's
    /// release sequence with Acquire, so `has_waiting` finds it.
    ///
    /// `sequence` is the handle's sequence as the caller last read it: only
    /// waits from that snapshot are still waiting (an older one was
    /// completed by a plain notify since; if the sequence moved on after the
    /// caller's read, its permit CAS fails and it scans again).
    pub(crate) fn notify_oldest(
        &self,
        max: usize,
        arg: i64,
        sequence: u64,
        batch: &mut WakeBatch,
    ) -> usize {
        let mut done = 0;
        while done < max && !batch.is_full() {
            let Some((index, entry, state)) = self.oldest_claimed(sequence) else {
                break;
            };
            // Acquire: we read the entry's cells after taking it over.
            if entry
                .state
                .compare_exchange(
                    state,
                    with_tag(state, NOTIFYING),
                    Ordering::Acquire,
                    Ordering::Relaxed,
                )
                .is_err()
            {
                continue; // released or taken by another notifier: look again
            }
            // Relaxed: published by the Release CAS to `NOTIFIED` below; only
            // this notifier writes the cell while the entry is `NOTIFYING`.
            entry.arg.store(arg, Ordering::Relaxed);
            let mut current = with_tag(state, NOTIFYING);
            loop {
                if tag(current) == NOTIFYING {
                    // Release publishes the argument to the owner, which
                    // reads it after an Acquire load of `NOTIFIED`; Acquire
                    // on failure sees the owner's cells before we free the
                    // entry. (Failure with `NOTIFYING`: only the flags
                    // changed, a taker or the owner holding the cell.)
                    match entry.state.compare_exchange(
                        current,
                        with_tag(current, NOTIFIED),
                        Ordering::Release,
                        Ordering::Acquire,
                    ) {
                        Ok(_) => {
                            done += 1;
                            // Taken after `NOTIFIED`, on the same word the
                            // owner registers on: either we see its waker
                            // (or leave `WAKE` for it) or it sees
                            // `NOTIFIED`.
                            if let Some(waker) = entry.take() {
                                batch.push(waker);
                            }
                            break;
                        }
                        Err(actual) => current = actual,
                    }
                    continue;
                }
                // `ABANDONED`: the owner left mid-notify; it is ours to
                // free, and the notification goes to the next waiter.
                match entry.free(current) {
                    Ok(waker) => {
                        self.note_free(index);
                        // Woken (spuriously) after the pin rather than
                        // dropped under it: dropping runs client code. The
                        // batch has room: it is checked before each entry.
                        if let Some(waker) = waker {
                            batch.push(waker);
                        }
                        break;
                    }
                    Err(actual) => current = actual,
                }
            }
        }
        done
    }

    /// Whether a claimed entry waits from snapshot `sequence` (see
    /// `notify_oldest`). A scan; only `notify_one` after leaving a permit
    /// while waiters were registered asks.
    pub(crate) fn has_waiting(&self, sequence: u64) -> bool {
        self.oldest_claimed(sequence).is_some()
    }

    /// Sets or clears the debug hint of entry `index` as claimed with
    /// `ticket`, and returns the hint it replaced (a wait that gives its
    /// entry back keeps its hint for its next claim). Also drops the hints of
    /// entries their claims no longer own (freed by a notify, whose owner may
    /// never come back: leaked), so the table holds at most one hint per
    /// claimed entry, plus the new one.
    pub(crate) fn set_hint(&self, index: usize, ticket: u64, hint: Option<Hint>) -> Option<Hint> {
        let mut hints = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        let replaced = hints
            .iter()
            .position(|&(i, t, _)| (i, t) == (index, ticket))
            .map(|at| hints.remove(at).2);
        hints.retain(|&(i, t, _)| {
            self.chunk_of(i)
                .and_then(|c| c.entries.get(i - c.base))
                // Acquire: a statistic's view of the claim.
                .is_some_and(|e| owned_by(e.state.load(Ordering::Acquire), t))
        });
        if let Some(h) = hint {
            hints.push((index, ticket, h));
        }
        replaced
    }

    /// Moves the wakers of claimed entries with index `>= from` into
    /// `batch` until it is full. Returns the index to go on from, or `None`
    /// once the scan reached the end. Runs no client code. With `word` (the
    /// handle's state word: a plain notify's scan), the entries of waits it
    /// finds complete are freed as their wakers are taken (`take_done`).
    #[inline(always)]
    pub(crate) fn take_wakers(
        &self,
        from: usize,
        batch: &mut WakeBatch,
        word: Option<&AtomicU64>,
    ) -> Option<usize> {
        // Relaxed: ordered by the Acquire on the state word (see `claim`).
        let high = self.high.load(Ordering::Relaxed);
        let mut chunk = self.chunk_of(from)?;
        let mut index = from;
        while index < high {
            let end = (chunk.base + chunk.entries.len()).min(high);
            while index < end {
                if batch.is_full() {
                    return Some(index);
                }
                if let Some(entry) = chunk.entries.get(index - chunk.base) {
                    let (waker, freed) = match word {
                        Some(word) => entry.take_done(word, self.generation),
                        None => (entry.take(), false),
                    };
                    if freed {
                        self.note_free(index);
                    }
                    if let Some(waker) = waker {
                        batch.push(waker);
                    }
                }
                index += 1;
            }
            chunk = Self::next_chunk(chunk)?;
        }
        None
    }

    /// Wakes every claimed entry's waker (the caller owns a reference to the
    /// list and holds no epoch pin or lock).
    pub(crate) fn wake_all(&self) -> WakeCount {
        let mut count = WakeCount::default();
        let mut from = 0;
        loop {
            let mut batch = WakeBatch::new();
            let next = self.take_wakers(from, &mut batch, None);
            count.add(batch.wake());
            match next {
                Some(i) => from = i,
                None => return count,
            }
        }
    }

    /// Hints of the claimed entries (debug dump); `None` for unhinted ones.
    pub(crate) fn hints(&self) -> Vec<Option<Hint>> {
        let hints = self.hints.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let high = self.high.load(Ordering::Acquire);
        self.entries_from(0)
            .take_while(|&(i, _)| i < high)
            // Acquire: a statistic, but see a claim that finished.
            .map(|(i, e)| (i, e.state.load(Ordering::Acquire)))
            .filter(|&(_, state)| tag(state) != FREE)
            .map(|(i, state)| {
                let ticket = state >> TICKET_SHIFT;
                hints
                    .iter()
                    .find(|&&(j, t, _)| (j, t) == (i, ticket))
                    .map(|(_, _, h)| h.clone())
            })
            .collect()
    }

    /// Entries claimed right now (a scan; for statistics).
    pub(crate) fn len(&self) -> usize {
        let high = self.high.load(Ordering::Acquire);
        self.entries_from(0)
            .take_while(|&(i, _)| i < high)
            // Acquire: as in `hints`.
            .filter(|(_, e)| tag(e.state.load(Ordering::Acquire)) != FREE)
            .count()
    }

    /// Bytes this list occupies (for memory accounting).
    pub(crate) fn footprint(&self) -> usize {
        let chunks = self.chunks().count();
        core::mem::size_of::<Self>()
            + (chunks - 1) * core::mem::size_of::<Chunk>()
            // Relaxed: a statistic.
            + self.allocated.load(Ordering::Relaxed) * core::mem::size_of::<Entry>()
    }
}

/// Waiter lists kept for reuse, so that after start-up (or after
/// [`ListPool::new`]'s reserve) a wait allocates nothing: a handle's first
/// wait of a generation takes a list from here, and a retired list whose
/// last reference the collector drops comes back here instead of being
/// freed (with its chunks, so its entries need no allocation either).
///
/// The lock is held only to push or pop one `Arc` (the vector's capacity is
/// reserved up front, so neither allocates); a list is reset, which drops
/// any waker left in it (client code), before the lock is taken.
#[derive(Debug)]
pub(crate) struct ListPool {
    lists: Mutex<Vec<Arc<WaiterList>>>,
    /// Most lists kept.
    keep: usize,
}

impl ListPool {
    /// A pool that keeps up to `keep` lists, `reserve` of them allocated
    /// now with room for `entries` waiters each (`limit` waiters at most),
    /// charged to `budget`: as many as it allows.
    pub(crate) fn new(
        keep: usize,
        reserve: usize,
        entries: usize,
        limit: usize,
        budget: &Arc<Budget>,
    ) -> Self {
        let keep = keep.max(reserve);
        let mut lists = Vec::new();
        // Sized by the caller: fallible (a refusal keeps no lists at all,
        // and every list is then made on demand).
        let keep = if lists.try_reserve_exact(keep).is_ok() {
            keep
        } else {
            0
        };
        for _ in 0..reserve.min(keep) {
            let Ok(list) = WaiterList::new(0, limit, budget) else {
                break;
            };
            while list.allocated.load(Ordering::Relaxed) < entries.min(limit) && list.grow().is_ok()
            {
            }
            lists.push(list);
        }
        Self {
            lists: Mutex::new(lists),
            keep,
        }
    }

    /// A list for `generation`: a kept one, or a new one charged to
    /// `budget`.
    pub(crate) fn take(
        &self,
        generation: u32,
        limit: usize,
        budget: &Arc<Budget>,
    ) -> Result<Arc<WaiterList>, QueueError> {
        let kept = self.lists.lock().unwrap_or_else(|e| e.into_inner()).pop();
        if let Some(mut list) = kept {
            // Kept lists are unshared (see `give_back`).
            if let Some(l) = Arc::get_mut(&mut list) {
                if l.limit == limit {
                    l.generation = generation;
                    return Ok(list);
                }
            }
        }
        WaiterList::new(generation, limit, budget)
    }

    /// Takes back a list the collector retired (no pinned reader can see
    /// it): kept if this was its last reference and there is room, else
    /// dropped. Called from deferred functions, never under a crate lock.
    pub(crate) fn give_back(&self, mut list: Arc<WaiterList>) {
        let Some(l) = Arc::get_mut(&mut list) else {
            return; // a wait still holds it; the last holder frees it
        };
        l.reset();
        let mut lists = self.lists.lock().unwrap_or_else(|e| e.into_inner());
        if lists.len() < self.keep {
            lists.push(list);
            return;
        }
        drop(lists);
        drop(list);
    }
}

impl WaiterList {
    /// Readies an unshared list for reuse: every entry free, no waker, no
    /// hint; chunks and `tickets` are kept (tickets only grow).
    fn reset(&mut self) {
        for chunk in self.chunks() {
            for e in chunk.entries.iter() {
                // Relaxed: `&mut self`: no other reference exists.
                e.state.store(FREE, Ordering::Relaxed);
                // SAFETY: `&mut self`: we hold every cell.
                drop(unsafe { e.cell_take() });
            }
        }
        // Relaxed: `&mut self`, as above.
        self.high.store(0, Ordering::Relaxed);
        self.next_free.store(0, Ordering::Relaxed);
        let hints = core::mem::take(&mut *self.hints.lock().unwrap_or_else(|e| e.into_inner()));
        drop(hints);
    }
}

impl Drop for WaiterList {
    fn drop(&mut self) {
        // Everything charged: the list (with its head chunk's entries) and
        // each linked chunk; `footprint` counts exactly those. Released once
        // the chunks are freed (the list itself is freed as this returns).
        let charged = ARC_COUNTS + self.footprint();
        let mut next = self.head.next.load(Ordering::Acquire);
        while !next.is_null() {
            // SAFETY: every non-null `next` was created by `Box::into_raw` in
            // `grow` and linked exactly once; we have `&mut self`, so no
            // reader remains, and each chunk is freed once as we walk on.
            let chunk = unsafe { Box::from_raw(next) };
            next = chunk.next.load(Ordering::Acquire);
        }
        self.budget.release(Category::Waiters, charged);
    }
}

#[cfg(all(test, not(notification_queue_loom)))]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    #[test]
    fn word_encoding_round_trips() {
        let w = fresh(5);
        assert_eq!(generation(w), 5);
        assert_eq!(sequence(w), 0);
        let w = bumped(w | WAITERS | SUBSCRIBED);
        assert_eq!(sequence(w), 1);
        assert_eq!(w & WAITERS, 0);
        assert_ne!(w & SUBSCRIBED, 0);
        assert_eq!(generation(retired(w)), 6);
    }

    #[test]
    fn permit_survives_notify_not_unregister_and_is_no_slow_path() {
        let w = fresh(3) | PERMIT;
        assert!(!needs_slow_path(w));
        assert_ne!(bumped(w) & PERMIT, 0);
        assert_eq!(retired(w) & PERMIT, 0);
        assert_eq!(record(w) & PERMIT, 0);
        assert_eq!(generation(w), 3);
        assert_eq!(sequence(w), 0);
    }

    #[test]
    #[cfg(target_pointer_width = "64")]
    fn entry_is_32_bytes_as_documented() {
        assert_eq!(core::mem::size_of::<Entry>(), 32);
    }

    #[test]
    fn sequence_wraps_without_touching_generation() {
        let w = fresh(7) | (SEQ_MASK);
        let b = bumped(w);
        assert_eq!(generation(b), 7);
        assert_eq!(sequence(b), 0);
        assert_eq!(distance(SEQ_VALUE_MASK, 0), 1);
    }

    #[test]
    fn idle_of_checks_generation_and_slow_flags_only() {
        for generation in [0, 1, 2, 7, GEN_MASK - 1, GEN_MASK] {
            let w = fresh(generation).wrapping_add(5 << SEQ_SHIFT);
            assert!(is_idle_of(w, generation));
            assert!(is_idle_of(w | PERMIT, generation));
            assert!(!is_idle_of(w | WAITERS, generation));
            assert!(!is_idle_of(w | SUBSCRIBED, generation));
            assert!(!is_idle_of(w, generation ^ 1));
            assert!(!is_idle_of(w, generation.wrapping_add(2) & GEN_MASK));
            assert_eq!(bumped_idle(w), bumped(w));
            assert_eq!(bumped_idle(w | PERMIT), bumped(w | PERMIT));
        }
        // The sequence wraps inside its field without touching the rest.
        let top = fresh(3) | SEQ_MASK;
        assert_eq!(bumped_idle(top), fresh(3));
    }

    #[test]
    fn generation_wraps_in_24_bits() {
        let w = fresh(GEN_MASK);
        assert_eq!(generation(retired(w)), 0);
    }

    #[test]
    fn claim_respects_limit_and_reuses() {
        let list = WaiterList::new(1, 20, &unlimited()).unwrap();
        let got: Vec<_> = (0..20).map(|_| list.claim(0, noop()).unwrap()).collect();
        let mut indices: Vec<_> = got.iter().map(|(i, _, _)| *i).collect();
        indices.sort();
        assert_eq!(indices, (0..20).collect::<Vec<_>>());
        assert_eq!(list.claim(0, noop()).err(), Some(ClaimError::Full));
        assert_eq!(list.len(), 20);
        // 4 + 8 + 8 (the last chunk is cut at the limit).
        assert_eq!(
            list.chunks().map(|c| c.entries.len()).collect::<Vec<_>>(),
            [4, 8, 8]
        );
        let (i, e, t) = got[3];
        assert_eq!(list.release(i, e, t), None);
        assert_eq!(list.claim(0, noop()).ok().map(|(j, _, _)| j), Some(i));
        assert_eq!(list.high.load(Ordering::Relaxed), 20);
    }

    #[test]
    fn hints_follow_their_entries() {
        let list = WaiterList::new(1, 8, &unlimited()).unwrap();
        let (a, ea, ta) = list.claim(0, noop()).unwrap();
        let (b, _, _) = list.claim(0, noop()).unwrap();
        assert_eq!(list.set_hint(a, ta, Some("a".into())), None);
        assert_eq!(list.hints(), [Some("a".into()), None]);
        assert_eq!(list.set_hint(a, ta, None), Some("a".into()));
        assert_eq!(list.release(a, ea, ta), None);
        assert_eq!(list.hints(), [None]);
        assert_eq!(b, 1);
    }

    #[test]
    fn chunks_are_charged_and_released() {
        // Room for the list and its first chunk only.
        let first = ARC_COUNTS + size_of::<WaiterList>() + FIRST * size_of::<Entry>();
        let budget = Arc::new(Budget::new(first));
        let list = WaiterList::new(1, 100, &budget).unwrap();
        let got: Vec<_> = (0..FIRST).map(|_| list.claim(0, noop()).unwrap()).collect();
        assert_eq!(got.len(), FIRST);
        let refused = list.claim(0, noop()).err();
        assert!(matches!(refused, Some(ClaimError::Budget(_))));
        assert_eq!(list.chunks().count(), 1);
        assert_eq!(budget.stats().waiters, first);
        drop(got);
        drop(list);
        assert_eq!(budget.stats().held, 0);
        assert!(WaiterList::new(1, 100, &Arc::new(Budget::new(first - 1))).is_err());
    }

    fn noop() -> Waker {
        Waker::noop().clone()
    }

    /// Counts wakes (its `Arc` count tells how many waker clones live).
    #[derive(Default)]
    struct Counting(std::sync::atomic::AtomicUsize);

    impl std::task::Wake for Counting {
        fn wake(self: std::sync::Arc<Self>) {
            self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }

    fn woken(c: &std::sync::Arc<Counting>) -> usize {
        c.0.load(std::sync::atomic::Ordering::SeqCst)
    }

    #[test]
    fn entry_waker_register_take_and_release() {
        use std::sync::Arc as StdArc;
        let list = WaiterList::new(1, 8, &unlimited()).unwrap();
        let a = StdArc::new(Counting::default());
        let wa = Waker::from(a.clone());
        let (i, e, t) = list.claim(0, wa.clone()).unwrap();
        let mut id = waker_id(&wa);
        // Registered with the claim: one clone in the entry.
        assert_eq!(StdArc::strong_count(&a), 3);
        // The same waker again: nothing changes.
        assert!(e.register(t, &wa, &mut id));
        assert_eq!(StdArc::strong_count(&a), 3);
        // Another waker replaces it; the old clone is dropped.
        let b = StdArc::new(Counting::default());
        let wb = Waker::from(b.clone());
        assert!(e.register(t, &wb, &mut id));
        assert_eq!(StdArc::strong_count(&a), 2);
        assert_eq!(StdArc::strong_count(&b), 3);
        assert_eq!(id, waker_id(&wb));
        // A notifier takes it out once; a second take finds nothing.
        let taken = e.take();
        assert!(taken.is_some());
        assert!(e.take().is_none());
        taken.unwrap().wake();
        assert_eq!((woken(&a), woken(&b)), (0, 1));
        // Registering after a take stores the waker again.
        assert!(e.register(t, &wb, &mut id));
        assert_eq!(StdArc::strong_count(&b), 3);
        // Releasing drops the waker left in the entry and frees it.
        assert_eq!(list.release(i, e, t), None);
        assert_eq!(StdArc::strong_count(&b), 2);
        assert_eq!(list.len(), 0);
        assert!(e.take().is_none());
        // A second release (or a register) of the old claim finds it gone.
        assert_eq!(list.release(i, e, t), None);
        assert!(!e.register(t, &wb, &mut id));
        assert_eq!(list.claim(0, noop()).ok().map(|(j, _, _)| j), Some(i));
    }

    #[test]
    fn entry_left_busy_by_a_taker_is_freed_by_the_taker() {
        let list = WaiterList::new(1, 8, &unlimited()).unwrap();
        let (i, e, t) = list.claim(0, noop()).unwrap();
        let claimed = e.state.load(Ordering::Relaxed);
        // As if a notifier held the cell (it took `WAKER` and set `BUSY`).
        e.state.store((claimed & !WAKER) | BUSY, Ordering::Relaxed);
        // SAFETY: single-threaded test: we play the notifier holding it.
        let waker = unsafe { e.cell_take() };
        // The owner leaves meanwhile: the entry waits for the taker.
        assert_eq!(list.release(i, e, t), None);
        assert_eq!(e.state.load(Ordering::Relaxed), BUSY);
        // A second notifier and a claimer both pass it by.
        assert!(e.take().is_none());
        assert_ne!(list.claim(0, noop()).ok().map(|(j, _, _)| j), Some(i));
        // The taker hands the cell back: now it is free.
        e.state.fetch_and(!(BUSY | WAKE), Ordering::Release);
        assert_eq!(e.state.load(Ordering::Relaxed), FREE);
        drop(waker);
    }

    fn unlimited() -> Arc<Budget> {
        Arc::new(Budget::new(usize::MAX))
    }

    #[test]
    fn zero_limit_list_never_claims() {
        let list = WaiterList::new(1, 0, &unlimited()).unwrap();
        assert_eq!(list.claim(0, noop()).err(), Some(ClaimError::Full));
        assert_eq!(list.len(), 0);
    }
}
