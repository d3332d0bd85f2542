//! The `no_std` build (`alloc` only): a spin lock for the cold registry
//! paths, a per-queue epoch collector with a pool of participant handles
//! (there are no thread-locals to hang one per thread on), and wakers that
//! are not caught if they panic.

pub(crate) use super::common::*;

use core::fmt;
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

/// Crate locks the current thread holds: not counted in this build.
pub(crate) fn locks_held() -> usize {
    0
}

pub(crate) use super::epoch_pool::{Collector, Guard, Pinned, flush, pin};

/// Wakes `waker`; returns `false`. Without `std` a panic cannot be caught:
/// a waker that panics unwinds out of the notify that woke it (the other
/// wakers that notify had taken out are still woken, by the batch's drop
/// during the unwind; a second panic then aborts).
#[inline]
pub(crate) fn wake_caught(waker: core::task::Waker) -> bool {
    waker.wake();
    false
}

/// Lets another thread run: without an OS to yield to, a spin hint.
pub(crate) fn yield_now() {
    core::hint::spin_loop()
}
