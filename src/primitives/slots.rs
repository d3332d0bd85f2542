//! The slot table: where a [`Handle`] points.
//!
//! Slots live in buckets of doubling size (32, 64, 128, ... slots), allocated
//! on demand by `register` and freed only when the queue is dropped. A slot
//! therefore never moves and never dies while the queue lives, so a handle
//! carries its slot's address and notify reaches the slot with no table
//! lookup and no epoch pin, once the handle's queue id matched. Reuse is made safe
//! by the generation in the slot's state word (see `eventcount`), not by
//! freeing memory. Free slots are reused first-in first-out, which spreads
//! generation use over every free slot; a slot whose generations are used
//! up is retired for good (see `eventcount`, "Generations never repeat").
//!
//! Registration itself (free list, hints, counts) is cold and sits behind one
//! mutex that no client code ever runs under.

use super::budget::{Budget, Category};
use super::eventcount::{self, WaiterList};
use super::ring::Feed;
use crate::error::QueueError;
use crate::sync::{Arc, AtomicI64, AtomicPtr, AtomicU64, Hint, Ordering};
use alloc::boxed::Box;
use alloc::collections::VecDeque;
use alloc::vec::Vec;
use core::fmt;
use core::ptr::NonNull;
use crossbeam_utils::CachePadded;

/// A registered handle: slot index plus generation, tied to one queue.
///
/// `Copy` and plain data: holding a `Handle` keeps nothing alive. Once the
/// handle is unregistered every operation with it fails with
/// [`QueueError::StaleHandle`](crate::QueueError::StaleHandle), even after the
/// slot has been given to a new handle, after any number of reuses: no
/// handle is ever issued twice (a slot whose generations run out is retired
/// for good) and a handle of another queue never matches (queue ids are 64
/// bits and never reused in a process).
///
/// # What a holder can do
///
/// A handle is a capability: anyone holding its value can notify it, wait on
/// it, subscribe to it and unregister it. A client that holds or leaks waits
/// or subscriptions uses up only that handle's limits
/// (`max_waiters_per_handle`, `max_subscribers_per_handle`); it cannot make
/// a notify block (wakers run outside every lock; see
/// [`NotificationQueue::notify`](crate::NotificationQueue::notify)), cannot
/// slow or stall other handles, and cannot act on the slot's next owner.
/// Give a handle only to clients you would let close it.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Handle {
    /// The issuing queue's id: 64 bits from a process-wide counter, so no
    /// two queues of one process ever share one and a handle of another
    /// queue is always rejected.
    pub(crate) queue: u64,
    pub(crate) index: u32,
    pub(crate) generation: u32,
    /// Where slot `index` lives in the issuing queue, so an operation
    /// reaches the slot with no table lookup once `queue` matched.
    pub(crate) slot: SlotPtr,
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle")
            .field("queue", &self.queue)
            .field("index", &self.index)
            .field("generation", &self.generation)
            .finish()
    }
}

/// The address of a handle's slot in the queue that issued the handle.
///
/// Plain data: it is dereferenced only by [`SlotTable::slot`], after the
/// handle's queue id matched the table's, so only while the table that
/// computed it is alive (see the SAFETY argument there). It is a function
/// of the queue and the index, so it takes no part in comparisons, hashing
/// or `Debug`.
#[derive(Clone, Copy)]
pub(crate) struct SlotPtr(NonNull<CachePadded<Slot>>);

// SAFETY: a `SlotPtr` is an address, not access: the only dereference is in
// `SlotTable::slot`, through the issuing table borrowed by the caller, and
// `Slot` is `Sync` (atomics only). Moving or sharing the address between
// threads grants nothing the table does not.
unsafe impl Send for SlotPtr {}
// SAFETY: as for `Send`: `&SlotPtr` only reads the address.
unsafe impl Sync for SlotPtr {}

impl PartialEq for SlotPtr {
    fn eq(&self, _: &Self) -> bool {
        // Equal queue ids and indices mean equal addresses.
        true
    }
}

impl Eq for SlotPtr {}

impl PartialOrd for SlotPtr {
    fn partial_cmp(&self, other: &Self) -> Option<core::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for SlotPtr {
    fn cmp(&self, _: &Self) -> core::cmp::Ordering {
        core::cmp::Ordering::Equal
    }
}

impl core::hash::Hash for SlotPtr {
    fn hash<H: core::hash::Hasher>(&self, _: &mut H) {}
}

impl From<Handle> for crate::trace::HandleId {
    fn from(h: Handle) -> Self {
        Self {
            queue: h.queue,
            index: h.index,
            generation: h.generation,
        }
    }
}

impl Handle {
    /// The slot index (stable for this handle's life; reused afterwards).
    pub fn index(&self) -> u32 {
        self.index
    }

    /// The generation this handle was issued with.
    pub fn generation(&self) -> u32 {
        self.generation
    }
}

/// One handle's hot state, on its own cache lines.
#[derive(Debug)]
pub(crate) struct Slot {
    /// Packed generation | sequence | flags (see `eventcount`).
    pub(crate) state: AtomicU64,
    /// Per generation, in the pair `eventcount::arg_cell(generation)`:
    /// `[0]`, the argument of the latest notify (written before the
    /// notify's CAS and published by it), and `[1]`, the argument of the
    /// permit a `notify_one` left (`eventcount::PERMIT`; written before the
    /// CAS that sets the bit and read after the CAS that takes it). Pairs
    /// of 16 bytes, so a state word's generation bits address its pair
    /// with one mask (see `arg_of_word`).
    pub(crate) args: [[AtomicI64; 2]; eventcount::ARG_CELLS],
    /// The state word the last unregister replaced (its generation and final
    /// sequence, flags cleared); see `eventcount`, "The last close".
    pub(crate) closed: AtomicU64,
    /// `Arc::into_raw` of this generation's waiter list, or null.
    pub(crate) waiters: AtomicPtr<WaiterList>,
    /// `Arc::into_raw` of this generation's subscriber feed (see
    /// `state::fanout`), or null.
    pub(crate) subscribers: AtomicPtr<Feed>,
    /// Statistics of every generation of this slot: notifies that found
    /// waiters or subscribers (took the slow path), and wakers they and
    /// unregister woke. Kept per slot, beside the state word the notify
    /// has just written, rather than queue-wide, so notifiers of different
    /// handles never contend for one counter's cache line; and added to
    /// without a read-modify-write (`state::count_without_rmw`).
    pub(crate) slow: AtomicU64,
    pub(crate) wakes: AtomicU64,
}

impl Slot {
    /// The argument cell of `generation`.
    #[inline(always)]
    pub(crate) fn arg(&self, generation: u32) -> &AtomicI64 {
        // `arg_cell` masks with `ARG_CELLS - 1`, so the index is in bounds;
        // the array is indexed with a mask rather than `get` so the fast
        // path has no branch.
        &self.args[eventcount::arg_cell(generation)][0]
    }

    /// The permit argument cell of `generation`.
    #[inline]
    pub(crate) fn permit_arg(&self, generation: u32) -> &AtomicI64 {
        &self.args[eventcount::arg_cell(generation)][1]
    }

    fn new() -> Self {
        Self {
            state: AtomicU64::new(eventcount::fresh(0)),
            args: core::array::from_fn(|_| [AtomicI64::new(0), AtomicI64::new(0)]),
            closed: AtomicU64::new(0),
            waiters: AtomicPtr::new(core::ptr::null_mut()),
            subscribers: AtomicPtr::new(core::ptr::null_mut()),
            slow: AtomicU64::new(0),
            wakes: AtomicU64::new(0),
        }
    }
}

const FIRST_BITS: u32 = 5;
const BUCKETS: usize = 28;

/// Bucket and offset of a slot index.
#[inline(always)]
fn locate(index: u32) -> (usize, usize) {
    let i = index as u64 + (1 << FIRST_BITS);
    let bucket = (63 - i.leading_zeros() - FIRST_BITS) as usize;
    (
        bucket,
        (i - (1u64 << (bucket as u32 + FIRST_BITS))) as usize,
    )
}

#[inline(always)]
fn bucket_len(bucket: usize) -> usize {
    1usize << (bucket as u32 + FIRST_BITS)
}

/// Registration bookkeeping (cold; under `SlotTable::registry`).
#[derive(Debug, Default)]
pub(crate) struct Registry {
    pub(crate) free: VecDeque<u32>,
    pub(crate) next_fresh: u32,
    pub(crate) live: usize,
    pub(crate) hints: Vec<Option<Hint>>,
    /// Notifications counted from handles already unregistered.
    pub(crate) retired_notifications: u64,
    /// Slots retired for good because their generations ran out.
    pub(crate) exhausted: usize,
}

#[derive(Debug)]
pub(crate) struct SlotTable {
    pub(crate) id: u64,
    buckets: [AtomicPtr<CachePadded<Slot>>; BUCKETS],
    /// `buckets[b]` biased back by the first position of bucket `b`
    /// (`1 << (b + FIRST_BITS)`), so slot `index` is `biased[b] + index + 32`
    /// with no offset arithmetic on the notify path. Null until the bucket
    /// exists; written once, right after `buckets[b]`.
    biased: [AtomicPtr<CachePadded<Slot>>; BUCKETS],
    pub(crate) registry: crate::sync::Mutex<Registry>,
}

impl SlotTable {
    pub(crate) fn new(id: u64) -> Self {
        Self {
            id,
            buckets: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())),
            biased: core::array::from_fn(|_| AtomicPtr::new(core::ptr::null_mut())),
            registry: crate::sync::Mutex::new(Registry::default()),
        }
    }

    /// The registration bookkeeping. A poisoned lock is taken over: the
    /// registry is updated in whole steps that cannot panic half-way, and no
    /// client code ever runs under it.
    pub(crate) fn lock_registry(&self) -> crate::sync::MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The slot a handle points at, if this queue issued the handle.
    /// Does not check the generation (callers compare it with the word).
    #[inline(always)]
    pub(crate) fn slot(&self, handle: Handle) -> Option<&Slot> {
        if handle.queue != self.id {
            return None;
        }
        // SAFETY: checked just above.
        Some(unsafe { self.slot_unchecked(handle) })
    }

    /// The slot a handle points at, for a caller that has checked the
    /// handle's queue already.
    ///
    /// # Safety
    ///
    /// `handle.queue` equals this table's `id`.
    #[inline(always)]
    pub(crate) unsafe fn slot_unchecked(&self, handle: Handle) -> &Slot {
        // SAFETY: the caller checked that the handle carries this table's
        // id. Queue ids are never reused in a process, so a handle with
        // this table's id was issued by this table (`Inner::register_quiet`,
        // `Inner::dump`), with `slot` from `slot_ptr_at(handle.index)`: a
        // slot of one of this table's buckets. Buckets are freed only in
        // `Drop`, which needs `&mut self`, and we hold `&self`, so the slot
        // is alive and initialised; `Slot` is all atomics, so a shared
        // reference is sound whatever other threads do with it.
        unsafe { handle.slot.0.as_ref() }
    }

    /// The address of slot `index`, if its bucket exists.
    #[inline(always)]
    pub(crate) fn slot_ptr_at(&self, index: u32) -> Option<SlotPtr> {
        let position = index as u64 + (1 << FIRST_BITS);
        let bucket = (63 - position.leading_zeros() - FIRST_BITS) as usize;
        // Acquire pairs with the Release store in `ensure_bucket`, so the
        // slots' initialisation is visible.
        let biased = self.biased.get(bucket)?.load(Ordering::Acquire);
        if biased.is_null() {
            return None;
        }
        // `position` lies in `bucket`, so this is `base + (position - first)`
        // with `first = 1 << (bucket + FIRST_BITS)`: inside the bucket's
        // allocation (see `ensure_bucket`, which stored `base - first`), so
        // never null.
        NonNull::new(biased.wrapping_add(position as usize)).map(SlotPtr)
    }

    #[inline(always)]
    pub(crate) fn slot_at(&self, index: u32) -> Option<&Slot> {
        let slot = self.slot_ptr_at(index)?;
        // SAFETY: a non-null biased pointer belongs to a live allocation of
        // `bucket_len(bucket)` slots starting at position `first` (freed only
        // in `Drop`, which needs `&mut self`), and `first <= position <
        // first + bucket_len(bucket)` by the choice of `bucket`, so `slot`
        // points at an initialised slot of that allocation.
        Some(unsafe { slot.0.as_ref() })
    }

    /// Allocates up front what registering `n` handles needs: the buckets
    /// of the first `n` slots (as many as `budget` allows) and room in the
    /// registry's vectors.
    pub(crate) fn reserve(&self, n: usize, budget: &Budget) {
        if n == 0 {
            return;
        }
        let n = n.min(u32::MAX as usize);
        let mut reg = self.lock_registry();
        let mut index = 0usize;
        while index < n {
            if self.ensure_bucket(index as u32, budget).is_err() {
                break; // the budget decides: reserve what it allows
            }
            let (bucket, _) = locate(index as u32);
            index = bucket_len(bucket) + index - locate(index as u32).1;
        }
        reg.hints.reserve(n);
        reg.free.reserve(n);
    }

    /// Makes sure the bucket holding `index` exists, charging a new
    /// bucket's bytes to `budget` first (never released: buckets live as
    /// long as the queue). Fails, allocating nothing, if the budget refuses.
    /// Called under the registry lock, so only one thread allocates a
    /// bucket.
    pub(crate) fn ensure_bucket(&self, index: u32, budget: &Budget) -> Result<(), QueueError> {
        let (bucket, _) = locate(index);
        let Some(cell) = self.buckets.get(bucket) else {
            return Ok(());
        };
        // Relaxed: only the registry-lock holder stores to bucket pointers.
        if cell.load(Ordering::Relaxed).is_null() {
            budget.try_charge(
                Category::Slots,
                bucket_len(bucket) * core::mem::size_of::<CachePadded<Slot>>(),
            )?;
            let slots: Box<[CachePadded<Slot>]> = (0..bucket_len(bucket))
                .map(|_| CachePadded::new(Slot::new()))
                .collect();
            let base: *mut CachePadded<Slot> = Box::into_raw(slots).cast();
            // Release publishes the initialised slots to `for_each_slot`.
            cell.store(base, Ordering::Release);
            if let Some(biased) = self.biased.get(bucket) {
                // Release publishes the initialised slots to `slot_at`.
                // `wrapping_sub` keeps the provenance of `base`; `slot_at`
                // adds the position back before any access.
                biased.store(
                    base.wrapping_sub(1 << (bucket as u32 + FIRST_BITS)),
                    Ordering::Release,
                );
            }
        }
        Ok(())
    }

    /// Iterates over every allocated slot with its index.
    pub(crate) fn for_each_slot(&self, mut f: impl FnMut(u32, &Slot)) {
        for (bucket, cell) in self.buckets.iter().enumerate() {
            // Acquire: as in `slot_at`.
            let base = cell.load(Ordering::Acquire);
            if base.is_null() {
                continue;
            }
            let first = (bucket_len(bucket) - (1 << FIRST_BITS)) as u32;
            for offset in 0..bucket_len(bucket) {
                // SAFETY: as in `slot_at`; `offset < bucket_len(bucket)`.
                let slot = unsafe { &*base.add(offset) };
                f(first + offset as u32, slot);
            }
        }
    }

    /// Bytes of slot storage allocated.
    pub(crate) fn slot_bytes(&self) -> usize {
        let mut total = 0;
        for (bucket, cell) in self.buckets.iter().enumerate() {
            // Relaxed: a statistic.
            if !cell.load(Ordering::Relaxed).is_null() {
                total += bucket_len(bucket) * core::mem::size_of::<CachePadded<Slot>>();
            }
        }
        total
    }
}

impl Drop for SlotTable {
    fn drop(&mut self) {
        for (bucket, cell) in self.buckets.iter().enumerate() {
            let base = cell.load(Ordering::Acquire);
            if base.is_null() {
                continue;
            }
            let len = bucket_len(bucket);
            // SAFETY: `base` came from `Box::<[CachePadded<Slot>]>::into_raw`
            // with exactly `len` elements in `ensure_bucket`; `&mut self`
            // means no other reference to the slots remains.
            let slots = unsafe { Box::from_raw(core::ptr::slice_from_raw_parts_mut(base, len)) };
            for slot in slots.iter() {
                release_lists(slot);
            }
            drop(slots);
        }
    }
}

/// Frees the waiter list and subscriber feed a slot still owns when the
/// table is dropped.
fn release_lists(slot: &Slot) {
    // Acquire: take over the list.
    let p = slot.waiters.swap(core::ptr::null_mut(), Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: the slot owned one strong count of this `Arc` (stored with
        // `Arc::into_raw`); the table is being dropped, so no notifier can
        // read the pointer any more.
        drop(unsafe { Arc::from_raw(p) });
    }
    // Acquire: take over the list.
    let p = slot
        .subscribers
        .swap(core::ptr::null_mut(), Ordering::Acquire);
    if !p.is_null() {
        // SAFETY: as above: the table is being dropped (`&mut`) and the slot
        // owned one strong count.
        drop(unsafe { Arc::from_raw(p) });
    }
}

#[cfg(all(test, not(notification_queue_loom)))]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    #[test]
    fn locate_covers_buckets_contiguously() {
        assert_eq!(locate(0), (0, 0));
        assert_eq!(locate(31), (0, 31));
        assert_eq!(locate(32), (1, 0));
        assert_eq!(locate(95), (1, 63));
        assert_eq!(locate(96), (2, 0));
        let (b, o) = locate(u32::MAX);
        assert!(b < BUCKETS);
        assert!(o < bucket_len(b));
    }

    /// A slot stays on its two cache lines (128 bytes with its padding):
    /// the statistics counters fit beside the state word.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn a_slot_is_128_bytes() {
        assert_eq!(
            core::mem::size_of::<crossbeam_utils::CachePadded<Slot>>(),
            128
        );
        // The slow-path counters share the state word's cache line, which
        // the notify that adds to them has just written.
        let line = |offset: usize| offset / 64;
        let state = line(core::mem::offset_of!(Slot, state));
        assert_eq!(line(core::mem::offset_of!(Slot, slow)), state);
        assert_eq!(line(core::mem::offset_of!(Slot, wakes)), state);
    }
}
