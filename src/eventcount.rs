//! One handle's event count: the packed state word and its bounded waiter list.
//!
//! # The state word
//!
//! Every slot has one `AtomicU64`:
//!
//! ```text
//!  63                        26 25              2    1          0
//! +----------------------------+------------------+-----------+---------+
//! | sequence (38)              | generation (24)  | SUBSCRIBED| WAITERS |
//! +----------------------------+------------------+-----------+---------+
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
//! - *sequence*: bumped by every notify (wrapping inside its 38 bits; it
//!   never carries into the generation).
//! - `WAITERS`: set by a waiter after it has published its waker; taken
//!   (cleared) by the notify that will wake it. With the bit clear, notify
//!   knows nobody registered since the previous notify and skips the list.
//! - `SUBSCRIBED`: set while the handle has subscribers; never cleared by
//!   notify.
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
//! # Waiter storage
//!
//! A [`WaiterList`] belongs to one generation of one slot and is created on
//! the first wait. It is a chain of fixed chunks (never freed while the list
//! lives), so entries never move. Waiters hold an `Arc` to it; the slot holds
//! one reference that is retired through crossbeam-epoch when the handle is
//! unregistered or the list is replaced by a newer generation's list, because
//! notifiers read the slot's pointer under an epoch pin without taking a
//! reference.

use crate::sync::{AtomicPtr, AtomicUsize, AtomicWaker, Hint, Mutex, Ordering};
use core::mem::MaybeUninit;
use core::ptr;
use core::task::Waker;

/// A waiter has registered since the last notify (bit 0).
pub(crate) const WAITERS: u64 = 1;
/// The handle has at least one subscriber (bit 1).
pub(crate) const SUBSCRIBED: u64 = 1 << 1;
const FLAGS: u64 = WAITERS | SUBSCRIBED;
const GEN_SHIFT: u32 = 2;
/// Generations are 24 bits wide.
pub(crate) const GEN_MASK: u32 = (1 << 24) - 1;
const SEQ_SHIFT: u32 = 26;
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
    word & FLAGS != 0
}

/// Number of notifications between two sequence values (mod 2^38).
#[inline(always)]
pub(crate) const fn distance(from: u64, to: u64) -> u64 {
    to.wrapping_sub(from) & SEQ_VALUE_MASK
}

/// Entries in a list's first chunk; each further chunk doubles.
const FIRST: usize = 4;
const FREE: usize = 0;
const CLAIMED: usize = 1;

/// One pending waiter's waker cell. Hints live beside, in
/// `WaiterList::hints`, so an unhinted wait never touches a lock.
#[derive(Debug)]
pub(crate) struct Entry {
    /// `FREE` or `CLAIMED`; the claimer owns the entry until it stores `FREE`.
    state: AtomicUsize,
    pub(crate) waker: AtomicWaker,
}

impl Entry {
    fn new() -> Self {
        Self {
            state: AtomicUsize::new(FREE),
            waker: AtomicWaker::new(),
        }
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
    head: Chunk,
    /// Debug hints of hinted waiters, by entry index. Cold: only waits that
    /// carry a hint and the debug dump lock it; never held over client code.
    hints: Mutex<Vec<(usize, Hint)>>,
}

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
            if std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake())).is_err() {
                count.panicked += 1;
            }
        }
        count
    }
}

impl Drop for WakeBatch {
    fn drop(&mut self) {
        // Unwoken wakers (only if a caller bailed out early) are dropped.
        while let Some(waker) = self.pop() {
            drop(waker);
        }
    }
}

impl WaiterList {
    pub(crate) fn new(generation: u32, limit: usize) -> Self {
        let first = FIRST.min(limit);
        Self {
            generation,
            limit,
            high: AtomicUsize::new(0),
            next_free: AtomicUsize::new(0),
            allocated: AtomicUsize::new(first),
            head: Chunk::new(0, first),
            hints: Mutex::new(Vec::new()),
        }
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
    fn claim_in(&self, from: usize, to: usize) -> Option<(usize, &Entry)> {
        let mut chunk = self.chunk_of(from)?;
        let mut index = from;
        loop {
            let end = (chunk.base + chunk.entries.len()).min(to);
            while index < end {
                if let Some(entry) = chunk.entries.get(index - chunk.base) {
                    if Self::try_take(entry) {
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

    fn try_take(entry: &Entry) -> bool {
        // Relaxed pre-check keeps the claim from bouncing claimed entries'
        // cache lines; Acquire on the CAS takes over an entry the previous
        // owner released with Release, so its waker cell is quiescent.
        entry.state.load(Ordering::Relaxed) == FREE
            && entry
                .state
                .compare_exchange(FREE, CLAIMED, Ordering::Acquire, Ordering::Relaxed)
                .is_ok()
    }

    /// Claims a free entry: its index and the entry. `None` when `limit`
    /// entries are allocated and none was free during the scan.
    pub(crate) fn claim(&self) -> Option<(usize, &Entry)> {
        loop {
            // Relaxed: a hint only; correctness rests on the CAS per entry.
            let start = self.next_free.load(Ordering::Relaxed);
            let found = self
                .claim_in(start, usize::MAX)
                .or_else(|| self.claim_in(0, start));
            if let Some((index, entry)) = found {
                // Relaxed: hint.
                self.next_free.store(index + 1, Ordering::Relaxed);
                // Relaxed suffices: the claimer publishes its entry (and so
                // this bound) with its Release CAS setting `WAITERS`, which
                // the waking notifier reads with Acquire.
                if index >= self.high.load(Ordering::Relaxed) {
                    self.high.fetch_max(index + 1, Ordering::Relaxed);
                }
                return Some((index, entry));
            }
            if !self.grow() {
                return None;
            }
        }
    }

    /// Appends a chunk unless `limit` entries exist. Returns whether there
    /// may now be room (ours or a racing thread's chunk was linked).
    fn grow(&self) -> bool {
        let Some(last) = self.chunks().last() else {
            return false;
        };
        let base = last.base + last.entries.len();
        let len = (last.entries.len() * 2).min(self.limit.saturating_sub(base));
        if len == 0 {
            return false;
        }
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
            }
        }
        true
    }

    /// Gives entry `index` back. The caller must own it (from `claim`).
    pub(crate) fn release(&self, index: usize, entry: &Entry, hinted: bool) {
        drop(entry.waker.take());
        if hinted {
            self.set_hint(index, None);
        }
        // Release: the next claimer (Acquire CAS) sees the cell cleared.
        entry.state.store(FREE, Ordering::Release);
        // Relaxed: hint.
        self.next_free.store(index, Ordering::Relaxed);
    }

    /// Sets or clears the debug hint of entry `index` (owned by the caller).
    pub(crate) fn set_hint(&self, index: usize, hint: Option<Hint>) {
        let mut hints = self.hints.lock().unwrap_or_else(|e| e.into_inner());
        hints.retain(|(i, _)| *i != index);
        if let Some(h) = hint {
            hints.push((index, h));
        }
    }

    /// Moves the wakers of claimed entries with index `>= from` into
    /// `batch` until it is full. Returns the index to go on from, or `None`
    /// once the scan reached the end. Runs no client code.
    pub(crate) fn take_wakers(&self, from: usize, batch: &mut WakeBatch) -> Option<usize> {
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
                    // Relaxed: the waker cell itself synchronises the
                    // hand-over of the waker; a racing release only makes us
                    // see FREE (nothing to wake) or cause a spurious wake of
                    // the next owner.
                    if entry.state.load(Ordering::Relaxed) == CLAIMED {
                        if let Some(waker) = entry.waker.take() {
                            batch.push(waker);
                        }
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
            let next = self.take_wakers(from, &mut batch);
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
            .filter(|(_, e)| e.state.load(Ordering::Acquire) == CLAIMED)
            .map(|(i, _)| hints.iter().find(|(j, _)| *j == i).map(|(_, h)| h.clone()))
            .collect()
    }

    /// Entries claimed right now (a scan; for statistics).
    pub(crate) fn len(&self) -> usize {
        let high = self.high.load(Ordering::Acquire);
        self.entries_from(0)
            .take_while(|&(i, _)| i < high)
            // Acquire: as in `hints`.
            .filter(|(_, e)| e.state.load(Ordering::Acquire) == CLAIMED)
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

impl Drop for WaiterList {
    fn drop(&mut self) {
        let mut next = self.head.next.load(Ordering::Acquire);
        while !next.is_null() {
            // SAFETY: every non-null `next` was created by `Box::into_raw` in
            // `grow` and linked exactly once; we have `&mut self`, so no
            // reader remains, and each chunk is freed once as we walk on.
            let chunk = unsafe { Box::from_raw(next) };
            next = chunk.next.load(Ordering::Acquire);
        }
    }
}

#[cfg(all(test, not(notification_queue_loom)))]
mod tests {
    use super::*;

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
    fn sequence_wraps_without_touching_generation() {
        let w = fresh(7) | (SEQ_MASK);
        let b = bumped(w);
        assert_eq!(generation(b), 7);
        assert_eq!(sequence(b), 0);
        assert_eq!(distance(SEQ_VALUE_MASK, 0), 1);
    }

    #[test]
    fn generation_wraps_in_24_bits() {
        let w = fresh(GEN_MASK);
        assert_eq!(generation(retired(w)), 0);
    }

    #[test]
    fn claim_respects_limit_and_reuses() {
        let list = WaiterList::new(1, 20);
        let got: Vec<_> = (0..20).map(|_| list.claim().unwrap()).collect();
        let mut indices: Vec<_> = got.iter().map(|(i, _)| *i).collect();
        indices.sort();
        assert_eq!(indices, (0..20).collect::<Vec<_>>());
        assert!(list.claim().is_none());
        assert_eq!(list.len(), 20);
        // 4 + 8 + 8 (the last chunk is cut at the limit).
        assert_eq!(
            list.chunks().map(|c| c.entries.len()).collect::<Vec<_>>(),
            [4, 8, 8]
        );
        let (i, e) = got[3];
        list.release(i, e, false);
        assert_eq!(list.claim().map(|(j, _)| j), Some(i));
        assert_eq!(list.high.load(Ordering::Relaxed), 20);
    }

    #[test]
    fn hints_follow_their_entries() {
        let list = WaiterList::new(1, 8);
        let (a, ea) = list.claim().unwrap();
        let (b, _) = list.claim().unwrap();
        list.set_hint(a, Some("a".into()));
        assert_eq!(list.hints(), [Some("a".into()), None]);
        list.release(a, ea, true);
        assert_eq!(list.hints(), [None]);
        assert_eq!(b, 1);
    }

    #[test]
    fn zero_limit_list_never_claims() {
        let list = WaiterList::new(1, 0);
        assert!(list.claim().is_none());
        assert_eq!(list.len(), 0);
    }
}
