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
//! Each byte is a `crate::sync::UnsafeCell<u8>`, so under loom every byte a
//! reader copies is checked against the writer's write of it. In the normal
//! build the per-byte loops compile to plain memory copies.

use crate::sync::{AtomicPtr, AtomicU64, Ordering, UnsafeCell};
use core::ptr;
use crossbeam_utils::CachePadded;

/// Writer state (in [`Published::state`]): open.
pub(super) const OPEN: u64 = 0;
/// Writer state: closed cleanly.
pub(super) const CLOSED: u64 = 1;
/// Writer state: failed; the errno is in the high 32 bits.
pub(super) const FAILED: u64 = 2;

/// Decoded writer state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum WriterState {
    Open,
    Closed,
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

/// One fixed-size block of the buffer.
#[derive(Debug)]
pub(super) struct Segment {
    data: Box<[UnsafeCell<u8>]>,
    /// The following segment, or null while this is the tail. Set once per
    /// life in the chain (Release), by the writer.
    pub(super) next: AtomicPtr<Segment>,
}

impl Segment {
    /// Allocates a zeroed segment of `size` bytes and leaks it as a raw
    /// pointer; [`Segment::free`] releases it.
    pub(super) fn alloc(size: usize) -> *mut Segment {
        let data = (0..size).map(|_| UnsafeCell::new(0u8)).collect();
        Box::into_raw(Box::new(Segment {
            data,
            next: AtomicPtr::new(ptr::null_mut()),
        }))
    }

    /// Frees a segment made by [`Segment::alloc`].
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
    #[inline]
    pub(super) unsafe fn write_at(&self, off: usize, src: &[u8]) {
        let cells = self.data.get(off..).unwrap_or(&[]);
        for (cell, &b) in cells.iter().zip(src) {
            // SAFETY: the caller guarantees no reader accesses this byte
            // until a later Release store of `committed` covers it, and the
            // writer is the only mutator.
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
    #[inline]
    pub(super) unsafe fn read_at(&self, off: usize, dst: &mut [u8]) {
        let cells = self.data.get(off..).unwrap_or(&[]);
        for (d, cell) in dst.iter_mut().zip(cells) {
            // SAFETY: see the caller's contract: the write of this byte
            // happens-before our Acquire of `committed`, and no write races.
            *d = cell.with(|p| unsafe { *p });
        }
    }
}

/// A reader's published position (for reclamation).
#[derive(Debug)]
pub(super) struct ReaderSlot {
    /// Bytes this reader has finished copying; `u64::MAX` once dropped.
    pub(super) pos: CachePadded<AtomicU64>,
}

impl ReaderSlot {
    pub(super) fn new() -> Self {
        Self {
            pos: CachePadded::new(AtomicU64::new(0)),
        }
    }
}

/// Frees a chain of segments starting at `head`.
///
/// # Safety
///
/// The caller owns every segment of the chain and nobody accesses them after.
pub(super) unsafe fn free_chain(mut head: *mut Segment) {
    while !head.is_null() {
        // SAFETY: `head` is a live segment we own (caller's contract).
        // Acquire: pairs with the Release link store (trivially ordered here
        // by the caller's exclusive ownership, but cheap and uniform).
        let next = unsafe { &*head }.next.load(Ordering::Acquire);
        // SAFETY: owned, freed once, not touched again.
        unsafe { Segment::free(head) };
        head = next;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
        let s = Segment::alloc(4);
        // SAFETY: single-threaded test owns the segment.
        unsafe {
            (*s).write_at(2, b"abcdef");
            let mut out = [0u8; 8];
            (*s).read_at(0, &mut out);
            assert_eq!(&out[..4], b"\0\0ab");
            Segment::free(s);
        }
    }
}
