//! The `no_std` build (`alloc` only): a spin lock for the cold registry
//! paths, a per-queue epoch collector with a pool of participant handles
//! (there are no thread-locals to hang one per thread on), and wakers that
//! are not caught if they panic.

pub(crate) use super::common::*;

use core::cell::UnsafeCell as CoreUnsafeCell;
use core::fmt;
use core::mem::ManuallyDrop;
use core::ops::{Deref, DerefMut};

/// A spin lock with the parts of `std::sync::Mutex`'s API the crate uses.
/// It guards only cold paths (registration, subscriber-list changes, pipe
/// reader tables) and no client code ever runs under it, so a holder is
/// never preempted by the crate itself; a kernel that takes these paths
/// from interrupt context must mask interrupts around them itself.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T: ?Sized>(spin::Mutex<T>);

/// Guard of [`Mutex`].
pub(crate) type MutexGuard<'a, T> = spin::MutexGuard<'a, T>;

/// What `lock` returns: never poisoned without `std` (there is no unwinding
/// to observe), but shaped like `std`'s `LockResult` so callers are shared.
pub(crate) type LockResult<G> = Result<G, PoisonError<G>>;

/// Never constructed; `std`'s poison error, for the shared call sites.
#[derive(Debug)]
pub(crate) struct PoisonError<G>(G);

impl<G> PoisonError<G> {
    pub(crate) fn into_inner(self) -> G {
        self.0
    }
}

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(spin::Mutex::new(value))
    }
}

impl<T: ?Sized> Mutex<T> {
    pub(crate) fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        Ok(self.0.lock())
    }
}

/// Lock tracking is a debug aid of the `std` build (it needs a
/// thread-local).
#[inline(always)]
pub(crate) fn assert_no_lock_held(_what: &str) {}

pub(crate) use crossbeam_epoch::Guard;

/// Participant handles kept per queue. Each is registered on first use
/// (one allocation of about 2 KiB, once); a pin that finds every one busy
/// (more than this many operations of one queue pinned at once) registers
/// a temporary participant instead, which allocates.
const POOL: usize = 32;

/// One queue's epoch collector and its pool of participant handles.
///
/// Without `std` there is no thread-local to keep a participant per
/// thread, so a pin borrows a free participant from the pool for its
/// duration. A participant's state (`crossbeam_epoch::Local`: a pin count
/// and a bag of deferred functions, no thread identity) is touched only by
/// the one pin that holds its `busy` flag; the flag's Acquire/Release
/// hand-off orders one holder's accesses before the next's.
pub(crate) struct Collector {
    collector: crossbeam_epoch::Collector,
    pool: [Participant; POOL],
}

struct Participant {
    busy: AtomicBool,
    handle: CoreUnsafeCell<Option<crossbeam_epoch::LocalHandle>>,
}

// SAFETY: `handle` is only accessed by the pin that set `busy` (see
// `Collector`), so sharing the pool between threads never lets two threads
// touch one `LocalHandle` at once; a `LocalHandle` has no thread identity,
// and the Acquire/Release on `busy` orders each holder after the previous.
unsafe impl Sync for Participant {}
// SAFETY: as above: moved between threads only as part of the queue, with
// no guard outstanding (a `Pinned` borrows the collector).
unsafe impl Send for Participant {}

impl fmt::Debug for Collector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Collector").finish_non_exhaustive()
    }
}

impl Default for Collector {
    fn default() -> Self {
        Self::new()
    }
}

impl Collector {
    pub(crate) fn new() -> Self {
        Self {
            collector: crossbeam_epoch::Collector::new(),
            pool: core::array::from_fn(|_| Participant {
                busy: AtomicBool::new(false),
                handle: CoreUnsafeCell::new(None),
            }),
        }
    }
}

/// An epoch pin: derefs to crossbeam's `Guard`; gives its participant back
/// to the pool when dropped.
pub(crate) struct Pinned<'a> {
    guard: ManuallyDrop<Guard>,
    participant: Option<&'a Participant>,
}

impl Deref for Pinned<'_> {
    type Target = Guard;
    fn deref(&self) -> &Guard {
        &self.guard
    }
}

impl Drop for Pinned<'_> {
    fn drop(&mut self) {
        // SAFETY: dropped exactly once, here, before the participant is
        // handed back (the guard unpins through it).
        unsafe { ManuallyDrop::drop(&mut self.guard) };
        if let Some(p) = self.participant {
            // Release: our unpin (and any deferred functions we added to the
            // participant's bag) happen before the next holder's accesses.
            p.busy.store(false, Ordering::Release);
        }
    }
}

impl fmt::Debug for Pinned<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pinned").finish_non_exhaustive()
    }
}

/// Pins in `collector`'s epoch through a free participant of its pool.
#[inline]
pub(crate) fn pin(collector: &Collector) -> Pinned<'_> {
    for p in collector.pool.iter() {
        // Relaxed: a hint; the CAS below decides.
        if p.busy.load(Ordering::Relaxed) {
            continue;
        }
        // Acquire: the previous holder's accesses (Release store in
        // `Pinned::drop`) happen before ours.
        if p.busy
            .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            continue;
        }
        // SAFETY: we hold `busy`, so no other pin touches this handle until
        // our `Pinned` is dropped.
        let handle = unsafe { &mut *p.handle.get() };
        let guard = handle
            .get_or_insert_with(|| collector.collector.register())
            .pin();
        return Pinned {
            guard: ManuallyDrop::new(guard),
            participant: Some(p),
        };
    }
    // Every participant busy: a temporary one (the guard keeps it alive
    // until it unpins; it is then unregistered).
    Pinned {
        guard: ManuallyDrop::new(collector.collector.register().pin()),
        participant: None,
    }
}

/// Moves the guard's deferred functions to the collector and collects. The
/// collector is the queue's own, so only this queue's retired lists are
/// freed here (their drops may drop wakers, which is client code: never
/// call this under a crate lock).
pub(crate) fn flush(guard: &Guard) {
    guard.flush();
}

/// Wakes `waker`; returns `false`. Without `std` a panic cannot be caught:
/// a waker that panics unwinds out of the notify that woke it (the other
/// wakers that notify had taken out are still woken, by the batch's drop
/// during the unwind; a second panic then aborts).
#[inline]
pub(crate) fn wake_caught(waker: core::task::Waker) -> bool {
    waker.wake();
    false
}
