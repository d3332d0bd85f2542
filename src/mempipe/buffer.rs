//! The append-only segmented buffer and the words readers poll.
//!
//! # Layout
//!
//! Bytes live in fixed-size [`Segment`]s linked by `next` pointers. The
//! writer fills the tail segment; when it is full it links a new one
//! (`next.store(Release)`). A segment is never resized or moved, so a reader
//! may copy out of it while the writer appends further on.
//!
//! # Publication
//!
//! [`Published::committed`] is the number of bytes readers may read. The
//! writer copies bytes in, links any new segment, and only then stores the
//! new length with `Release`. A reader `Acquire`-loads it, so every byte
//! below it (and every `next` link it needs to reach them) is visible.
//! [`Published::state`] says whether the writer is open, closed or failed;
//! the writer sets it (Release) only after its last commit, so a reader that
//! sees a terminal state and *then* loads `committed` has the final length:
//! it drains everything, then reports EOF or EPIPE. No lock on this path.
//!
//! # Reclamation (streaming mode)
//!
//! Every reader publishes its position in a [`ReaderSlot`] (`Release`, after
//! its copy). Once no new reader can join (`SEALED`), the writer loads every
//! slot (`Acquire`) and retires each segment whose *end is strictly below*
//! the smallest position: a reader at exactly a segment's end may still hold
//! that segment to follow its `next`, while a reader past the end has already
//! switched to a later segment and, since positions only grow, never looks
//! back. All of a reader's accesses to a retired segment happen-before the
//! writer's Acquire load of its position, so the writer may reuse the
//! segment at once (no epoch needed): it goes to the writer's small pool or
//! is freed. A dropped reader stores `u64::MAX`.
//!
//! # Cells
//!
//! Each byte is a `crate::sync::UnsafeCell`, so under loom every byte a
//! reader copies is checked against the writer's write of it. In the normal
//! build a byte is a `MaybeUninit<u8>`: a segment is allocated without
//! being zeroed (a reader only reads bytes below `committed`, which the
//! writer wrote), and bytes are copied in and out with plain memory copies.

use super::PipeError;
use crate::sync::{
    AtomicBool, AtomicPtr, AtomicU64, AtomicUsize, AtomicWaker, Ordering, UnsafeCell, fence,
};
use alloc::boxed::Box;
use alloc::vec::Vec;
use core::ptr;
use crossbeam_utils::CachePadded;

/// Writer state (in [`Published::state`]): open.
pub(super) const OPEN: u64 = 0;
/// Writer state: closed cleanly.
pub(super) const CLOSED: u64 = 1;
/// Writer state: failed; the errno is in the high 32 bits.
pub(super) const FAILED: u64 = 2;

/// The writer's state as everyone sees it ([`Writer::state`],
/// [`Reader::writer_state`]).
///
/// [`Writer::state`]: super::Writer::state
/// [`Reader::writer_state`]: super::Reader::writer_state
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WriterState {
    /// Writes may still come.
    Open,
    /// Closed cleanly: readers get EOF after the last byte.
    Closed,
    /// Failed with this errno: readers get
    /// [`PipeError::BrokenPipe`] carrying it after the last byte.
    Failed(i32),
}

impl WriterState {
    pub(super) fn decode(word: u64) -> Self {
        match word & 0b11 {
            OPEN => Self::Open,
            FAILED => Self::Failed((word >> 32) as u32 as i32),
            _ => Self::Closed,
        }
    }

    pub(super) fn encode(self) -> u64 {
        match self {
            Self::Open => OPEN,
            Self::Closed => CLOSED,
            Self::Failed(e) => FAILED | (u64::from(e as u32) << 32),
        }
    }
}

/// The two words readers poll, on one cache line of their own.
#[derive(Debug)]
pub(super) struct Published {
    /// Bytes readers may read. Written only by the writer (Release, after
    /// the bytes and links are in place).
    pub(super) committed: AtomicU64,
    /// [`WriterState`] encoded. Written only by the writer (Release, after
    /// its last commit).
    pub(super) state: AtomicU64,
}

/// A segment byte: uninitialised until the writer writes it (the normal
/// build); a zeroed `u8` under loom (whose cells are built one by one).
#[cfg(not(notification_queue_loom))]
type Byte = core::mem::MaybeUninit<u8>;
/// A segment byte (loom): a `u8`.
#[cfg(notification_queue_loom)]
type Byte = u8;

/// One fixed-size block of the buffer.
#[derive(Debug)]
pub(super) struct Segment {
    data: Vec<UnsafeCell<Byte>>,
    /// The following segment, or null while this is the tail. Set once per
    /// life in the chain (Release), by the writer.
    pub(super) next: AtomicPtr<Segment>,
}

impl Segment {
    /// Allocates a segment of `size` bytes (not zeroed outside loom) and
    /// leaks it as a raw pointer; [`Segment::free`] releases it. A refused
    /// allocation is [`PipeError::OutOfMemory`], never an abort.
    pub(super) fn alloc(size: usize) -> Result<*mut Segment, PipeError> {
        let data = new_cells(size).ok_or(PipeError::OutOfMemory { bytes: size })?;
        Ok(Box::into_raw(Box::new(Segment {
            data,
            next: AtomicPtr::new(ptr::null_mut()),
        })))
    }

    /// Makes a segment of `size` bytes out of `bytes` without copying them,
    /// if they fit (`len <= size <= capacity`: the segment is the first
    /// `size` bytes of the capacity, nothing is reallocated); else gives
    /// them back.
    #[cfg(not(notification_queue_loom))]
    pub(super) fn adopt(bytes: Vec<u8>, size: usize) -> Result<*mut Segment, Vec<u8>> {
        if bytes.len() > size || bytes.capacity() < size {
            return Err(bytes);
        }
        let mut bytes = core::mem::ManuallyDrop::new(bytes);
        let (p, cap) = (bytes.as_mut_ptr(), bytes.capacity());
        // SAFETY: a cell has the size and alignment of `u8` (asserted above
        // `new_cells`) and may hold any byte, initialised or not, so the
        // first `size <= cap` elements are valid cells; the allocation came
        // from the global allocator as `[u8; cap]`, the layout of
        // `[UnsafeCell<Byte>; cap]`; the original `Vec` is never used or
        // dropped again (`ManuallyDrop`).
        let data = unsafe { Vec::from_raw_parts(p.cast::<UnsafeCell<Byte>>(), size, cap) };
        Ok(Box::into_raw(Box::new(Segment {
            data,
            next: AtomicPtr::new(ptr::null_mut()),
        })))
    }

    /// Loom's cells are not bytes: always copy.
    #[cfg(notification_queue_loom)]
    pub(super) fn adopt(bytes: Vec<u8>, _size: usize) -> Result<*mut Segment, Vec<u8>> {
        Err(bytes)
    }

    /// Frees a segment made by [`Segment::alloc`] or [`Segment::adopt`].
    ///
    /// # Safety
    ///
    /// `seg` came from `alloc`, is freed once, and nobody accesses it after.
    pub(super) unsafe fn free(seg: *mut Segment) {
        // SAFETY: by the caller's contract this is the unique owner.
        drop(unsafe { Box::from_raw(seg) });
    }

    /// Copies `src` in at `off` (clipped to the segment).
    ///
    /// # Safety
    ///
    /// Only the writer calls this, and only for bytes no reader may read yet
    /// (at or above `committed`) or in a segment no reader can reach.
    #[cfg(not(notification_queue_loom))]
    #[inline]
    pub(super) unsafe fn write_at(&self, off: usize, src: &[u8]) {
        let cells = self.data.get(off..).unwrap_or(&[]);
        let k = cells.len().min(src.len());
        // SAFETY: a cell is one byte (asserted at compile time, above
        // `new_cells`), so `cells` is `cells.len() >= k` contiguous
        // bytes, all inside `UnsafeCell`s, which a pointer derived from the
        // shared slice may write. The caller guarantees no reader accesses
        // them until a later commit covers them, and the writer is the only
        // mutator; `src` is caller memory, never a segment's.
        unsafe { ptr::copy_nonoverlapping(src.as_ptr(), cells.as_ptr() as *mut u8, k) };
    }

    /// Copies `src` in at `off` (clipped to the segment), byte by byte so
    /// loom checks every cell.
    ///
    /// # Safety
    ///
    /// As in the normal build.
    #[cfg(notification_queue_loom)]
    pub(super) unsafe fn write_at(&self, off: usize, src: &[u8]) {
        let cells = self.data.get(off..).unwrap_or(&[]);
        for (cell, &b) in cells.iter().zip(src) {
            // SAFETY: the caller guarantees no reader accesses this byte
            // until a later commit covers it, and the writer is the only
            // mutator.
            cell.with_mut(|p| unsafe { *p = b });
        }
    }

    /// Copies bytes from `off` into `dst` (clipped to the segment).
    ///
    /// # Safety
    ///
    /// Every byte read is below a `committed` value the caller Acquire-
    /// loaded, so the writer wrote it before and never writes it again
    /// while the segment stays in the chain for this reader.
    #[cfg(not(notification_queue_loom))]
    #[inline]
    pub(super) unsafe fn read_at(&self, off: usize, dst: &mut [u8]) {
        let cells = self.data.get(off..).unwrap_or(&[]);
        let k = cells.len().min(dst.len());
        // SAFETY: `cells` is `k` or more contiguous bytes (as in
        // `write_at`); by the caller's contract the writer's writes of them
        // happen-before our Acquire of `committed` and none races; `dst` is
        // the caller's buffer, never a segment.
        unsafe { ptr::copy_nonoverlapping(cells.as_ptr() as *const u8, dst.as_mut_ptr(), k) };
    }

    /// Copies bytes from `off` into `dst` (clipped to the segment), byte by
    /// byte so loom checks every cell.
    ///
    /// # Safety
    ///
    /// As in the normal build.
    #[cfg(notification_queue_loom)]
    pub(super) unsafe fn read_at(&self, off: usize, dst: &mut [u8]) {
        let cells = self.data.get(off..).unwrap_or(&[]);
        for (d, cell) in dst.iter_mut().zip(cells) {
            // SAFETY: see the caller's contract: the write of this byte
            // happens-before our Acquire of `committed`, and no write races.
            *d = cell.with(|p| unsafe { *p });
        }
    }
}

/// What a reader shares with the writer: its position (for reclamation)
/// and its wake slot (for waiting).
///
/// # Wake slot
///
/// A reader with nothing to read registers its waker here, then *arms* the
/// slot (`Shared::sleepers` incremented first, then `armed` set), issues a
/// `SeqCst` fence and checks `committed` and the writer's state again. The
/// writer, after storing `committed` or its terminal state, issues a
/// `SeqCst` fence and loads `sleepers`; if it is not zero it disarms every
/// armed slot (`armed.swap(false)`) and wakes its waker. The two fences are
/// ordered one way or the other: either the reader's re-check sees the new
/// length (and it does not sleep), or the writer's load sees the reader's
/// increment and its scan sees the armed flag. So no wakeup is lost, and
/// every reader has a slot of its own: no other client, and no other
/// reader, can stop it from waiting.
///
/// After a commit the writer's fence is the notify of its handle when that
/// succeeds: its `lock cmpxchg` on x86-64 orders the store of `committed`
/// before the load of `sleepers` as `mfence` would
/// (`sync::fence_after_locked_rmw`); loom and Miri check the protocol with
/// the real fence.
#[derive(Debug)]
pub(super) struct ReaderSlot {
    /// Bytes this reader has finished copying; `u64::MAX` once dropped.
    pub(super) pos: CachePadded<AtomicU64>,
    /// The waker of the reader's pending read.
    pub(super) waker: AtomicWaker,
    /// Set while the reader sleeps (counted in `Shared::sleepers`); cleared
    /// by whoever swaps it back to `false`, who then decrements the count.
    pub(super) armed: AtomicBool,
    /// The reader's id within its pipe (for debugging).
    pub(super) id: u64,
    /// The reader's debug hint, if given.
    pub(super) hint: Option<crate::sync::Hint>,
}

impl ReaderSlot {
    pub(super) fn new(id: u64, hint: Option<crate::sync::Hint>) -> Self {
        Self {
            pos: CachePadded::new(AtomicU64::new(0)),
            waker: AtomicWaker::new(),
            armed: AtomicBool::new(false),
            id,
            hint,
        }
    }

    /// Arms the slot (the waker is registered already); the caller then
    /// issues a `SeqCst` fence and re-checks the stream.
    pub(super) fn arm(&self, sleepers: &AtomicUsize) {
        // Incremented before `armed` is set, so whoever clears `armed` (and
        // decrements) is ordered after this increment: the count never
        // drops below the number of armed slots.
        sleepers.fetch_add(1, Ordering::SeqCst);
        if self.armed.swap(true, Ordering::SeqCst) {
            // Already armed (and counted) by an earlier poll.
            sleepers.fetch_sub(1, Ordering::SeqCst);
        }
    }

    /// The writer's disarm: `true` if this call disarmed the slot (then it
    /// wakes the waker).
    pub(super) fn disarm_by_writer(&self, sleepers: &AtomicUsize) -> bool {
        // No fast check: the writer must see an arming that its fence
        // ordered before it (the swap reads the latest value).
        if self.armed.swap(false, Ordering::SeqCst) {
            sleepers.fetch_sub(1, Ordering::SeqCst);
            return true;
        }
        false
    }

    /// The owning reader's disarm; `true` if this call disarmed the slot.
    pub(super) fn disarm(&self, sleepers: &AtomicUsize) -> bool {
        // Relaxed: only the owning reader calls this. It sees its own arming;
        // a `false` can only come from a disarm that already decremented.
        if !self.armed.load(Ordering::Relaxed) {
            return false;
        }
        if self.armed.swap(false, Ordering::SeqCst) {
            sleepers.fetch_sub(1, Ordering::SeqCst);
            return true;
        }
        false
    }
}

/// Where a writer waits for space (streaming mode, byte limit reached).
///
/// Room appears only when the slowest reader moves strictly past a segment
/// end (reclamation works in whole segments), or leaves. So a reader
/// checks `waiting` only when a read crosses a segment end, and on close:
/// within a segment its read path does nothing more than before.
///
/// The writer registers its waker, stores `waiting`, issues a `SeqCst`
/// fence and retries (reloading every reader's position). A reader stores
/// its position (or leaves), issues a `SeqCst` fence and loads `waiting`;
/// if set, it clears it and wakes the waker. The two fences are ordered one
/// way or the other: either the writer's retry sees the new position, or
/// the reader sees `waiting` and wakes it. No wakeup is lost.
#[derive(Debug)]
pub(super) struct SpaceWait {
    /// A writer is (about to be) asleep waiting for space.
    pub(super) waiting: AtomicBool,
    /// The waiting writer's waker.
    pub(super) waker: AtomicWaker,
}

impl SpaceWait {
    pub(super) fn new() -> Self {
        Self {
            waiting: AtomicBool::new(false),
            waker: AtomicWaker::new(),
        }
    }

    /// The writer's arming; the caller then retries (after the fence).
    pub(super) fn arm(&self, waker: &core::task::Waker) {
        self.waker.register(waker);
        // Relaxed: the SeqCst fence below orders it before the retry.
        self.waiting.store(true, Ordering::Relaxed);
        // SeqCst: orders `waiting` before the writer's reload of the reader
        // positions, against `wake_writer`'s fence.
        fence(Ordering::SeqCst);
    }

    /// The writer's disarm after its wait ended, however.
    pub(super) fn disarm(&self) {
        // Relaxed: only the writer sets it; a reader that still sees `true`
        // only wakes a waker that is no longer waited on.
        self.waiting.store(false, Ordering::Relaxed);
    }

    /// A reader moved past a segment end or left: wakes a waiting writer.
    pub(super) fn wake_writer(&self) {
        // SeqCst: orders the reader's position store (or its leaving) before
        // the load of `waiting`, against the writer's fence in `arm`.
        fence(Ordering::SeqCst);
        // Relaxed: the fence above gives the ordering; the swap makes one
        // reader the waker.
        if self.waiting.load(Ordering::Relaxed) && self.waiting.swap(false, Ordering::Relaxed) {
            self.waker.wake();
        }
    }
}

// A byte cell is one byte holding a (maybe uninitialised) `u8` (checked
// at compile time): the normal build copies slices of cells as plain bytes.
#[cfg(not(notification_queue_loom))]
const _: () = assert!(
    core::mem::size_of::<UnsafeCell<Byte>>() == 1 && core::mem::align_of::<UnsafeCell<Byte>>() == 1
);

/// `size` byte cells, not initialised, or `None` if the allocator refuses
/// them.
///
/// Not zeroed: a reader reads only bytes the writer wrote (below
/// `committed`), so zeroing would only cost a pass over the memory. A large
/// segment costs address space, not resident memory, until written (the
/// allocator maps it untouched): an `initial_capacity` far beyond the
/// machine's memory ends in a refused allocation, not in the kernel's
/// out-of-memory killer.
#[cfg(not(notification_queue_loom))]
fn new_cells(size: usize) -> Option<Vec<UnsafeCell<Byte>>> {
    use alloc::alloc::{Layout, alloc};
    if size == 0 {
        return Some(Vec::new());
    }
    let layout = Layout::array::<UnsafeCell<Byte>>(size).ok()?;
    // SAFETY: `layout` has a non-zero size (`size > 0`, element size 1).
    let p = unsafe { alloc(layout) }.cast::<UnsafeCell<Byte>>();
    if p.is_null() {
        return None;
    }
    // SAFETY: `p` was allocated by the global allocator with the layout of
    // `[UnsafeCell<Byte>; size]` (so capacity = length = `size`), and every
    // element is valid uninitialised: a cell holds a `MaybeUninit<u8>`.
    Some(unsafe { Vec::from_raw_parts(p, size, size) })
}

/// `size` zeroed byte cells, or `None` if the allocator refuses them
/// (loom's cells are built one by one).
#[cfg(notification_queue_loom)]
fn new_cells(size: usize) -> Option<Vec<UnsafeCell<Byte>>> {
    let mut data = Vec::new();
    data.try_reserve_exact(size).ok()?;
    data.resize_with(size, || UnsafeCell::new(0u8));
    Some(data)
}

/// Reserves room for `additional` more elements in `v`, or
/// [`PipeError::OutOfMemory`].
pub(super) fn try_reserve<T>(v: &mut Vec<T>, additional: usize) -> Result<(), PipeError> {
    v.try_reserve(additional)
        .map_err(|_| PipeError::OutOfMemory {
            bytes: additional.saturating_mul(core::mem::size_of::<T>()),
        })
}

/// Appends `n` fresh segments of `size` bytes to `pool`. On failure the
/// segments it added are freed again and `pool` is as it was.
pub(super) fn alloc_segments(
    pool: &mut Vec<*mut Segment>,
    n: usize,
    size: usize,
) -> Result<(), PipeError> {
    try_reserve(pool, n)?;
    let before = pool.len();
    for _ in 0..n {
        match Segment::alloc(size) {
            // Within the reserved capacity: no allocation.
            Ok(s) => pool.push(s),
            Err(e) => {
                // SAFETY: the segments from `before` on were made just now,
                // are in no chain and nobody else has seen them.
                unsafe { free_all(pool.drain(before..)) };
                return Err(e);
            }
        }
    }
    Ok(())
}

/// Frees segments that are in no chain (a writer's pool).
///
/// # Safety
///
/// The caller owns every segment in `segs` and nobody accesses them after.
pub(super) unsafe fn free_all(segs: impl IntoIterator<Item = *mut Segment>) {
    for s in segs {
        // SAFETY: owned (caller's contract), freed once.
        unsafe { Segment::free(s) };
    }
}

/// Frees a chain of segments starting at `head`; returns how many.
///
/// # Safety
///
/// The caller owns every segment of the chain and nobody accesses them after.
pub(super) unsafe fn free_chain(mut head: *mut Segment) -> usize {
    let mut freed = 0;
    while !head.is_null() {
        // SAFETY: `head` is a live segment we own (caller's contract).
        // Acquire: pairs with the Release link store (trivially ordered here
        // by the caller's exclusive ownership, but cheap and uniform).
        let next = unsafe { &*head }.next.load(Ordering::Acquire);
        // SAFETY: owned, freed once, not touched again.
        unsafe { Segment::free(head) };
        freed += 1;
        head = next;
    }
    freed
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    #[test]
    fn state_roundtrip() {
        for s in [
            WriterState::Open,
            WriterState::Closed,
            WriterState::Failed(5),
            WriterState::Failed(-1),
            WriterState::Failed(i32::MAX),
        ] {
            assert_eq!(WriterState::decode(s.encode()), s);
        }
    }

    #[test]
    fn segment_copies_clip() {
        let s = Segment::alloc(4).unwrap();
        // SAFETY: single-threaded test owns the segment; it reads only
        // bytes it wrote.
        unsafe {
            (*s).write_at(0, b"xy");
            (*s).write_at(2, b"abcdef");
            let mut out = [0u8; 8];
            (*s).read_at(0, &mut out);
            assert_eq!(&out[..5], b"xyab\0", "clipped at the segment's end");
            (*s).read_at(3, &mut out);
            assert_eq!(&out[..2], b"by", "one byte read, the rest untouched");
            Segment::free(s);
        }
    }
}
