//! Epoch pinning without thread-locals: one collector per queue and a pool
//! of participant handles that pins borrow. The `no_std` build uses it
//! (there are no thread-locals to keep a participant per thread), and so
//! does the loom build (crossbeam-epoch's loom mode has no global
//! collector), so the models check the pool too.

use super::{AtomicBool, Ordering};
use core::cell::UnsafeCell as CoreUnsafeCell;
use core::fmt;
use core::mem::ManuallyDrop;
use core::ops::Deref;

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

impl Collector {
    /// Registers every participant of the pool now (one allocation of about
    /// 2 KiB each), so that later pins, from up to [`POOL`] threads at once,
    /// allocate nothing. Queues with reservations call it.
    pub(crate) fn prewarm(&self) {
        for p in self.pool.iter() {
            // Acquire / Release: as in `pin` and `Pinned::drop`.
            if p.busy
                .compare_exchange(false, true, Ordering::Acquire, Ordering::Relaxed)
                .is_err()
            {
                continue; // a pin holds it: registered by that pin
            }
            // SAFETY: we hold `busy`, so no pin touches this handle now.
            let handle = unsafe { &mut *p.handle.get() };
            handle.get_or_insert_with(|| self.collector.register());
            p.busy.store(false, Ordering::Release);
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
