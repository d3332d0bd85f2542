//! The `std` build: `std`'s mutex (with a debug lock tracker), the global
//! epoch collector, and panic containment for wakers.

pub(crate) use super::common::*;
pub(crate) use std::thread;

use core::ops::{Deref, DerefMut};
use std::sync::{LockResult, PoisonError};

/// `std::sync::Mutex` that, in debug builds, counts the crate locks the
/// current thread holds, so [`pin`] and [`flush`] can assert that no
/// foreign code (deferred destructors of the global collector) ever runs
/// under one of them. Same API as the parts of `std`'s mutex we use.
#[derive(Debug, Default)]
pub(crate) struct Mutex<T: ?Sized>(std::sync::Mutex<T>);

/// Guard of [`Mutex`]; unlocks (and uncounts) on drop.
#[derive(Debug)]
pub(crate) struct MutexGuard<'a, T: ?Sized> {
    guard: std::sync::MutexGuard<'a, T>,
    _held: Held,
}

impl<T> Mutex<T> {
    pub(crate) const fn new(value: T) -> Self {
        Self(std::sync::Mutex::new(value))
    }
}

impl<T: ?Sized> Mutex<T> {
    pub(crate) fn lock(&self) -> LockResult<MutexGuard<'_, T>> {
        let wrap = |guard| MutexGuard {
            guard,
            _held: Held::new(),
        };
        match self.0.lock() {
            Ok(g) => Ok(wrap(g)),
            Err(e) => Err(PoisonError::new(wrap(e.into_inner()))),
        }
    }
}

impl<T: ?Sized> Deref for MutexGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T: ?Sized> DerefMut for MutexGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

#[cfg(debug_assertions)]
std::thread_local! {
    /// Crate locks held by this thread (debug builds).
    static LOCKS_HELD: core::cell::Cell<usize> = const { core::cell::Cell::new(0) };
}

/// One held crate lock, counted in debug builds.
#[derive(Debug)]
struct Held(());

impl Held {
    fn new() -> Self {
        #[cfg(debug_assertions)]
        let _ = LOCKS_HELD.try_with(|n| n.set(n.get() + 1));
        Self(())
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        #[cfg(debug_assertions)]
        let _ = LOCKS_HELD.try_with(|n| n.set(n.get().saturating_sub(1)));
    }
}

/// Debug builds: panics if the current thread holds a crate lock. Called
/// before anything that may run foreign code (pin, flush).
#[inline(always)]
pub(crate) fn assert_no_lock_held(what: &str) {
    #[cfg(debug_assertions)]
    {
        let held = LOCKS_HELD.try_with(|n| n.get()).unwrap_or(0);
        assert!(
            held == 0,
            "{what} while holding {held} crate lock(s): it may run foreign code"
        );
    }
    #[cfg(not(debug_assertions))]
    let _ = what;
}

/// Crate locks the current thread holds: counted in debug builds, 0 in
/// release builds.
pub(crate) fn locks_held() -> usize {
    #[cfg(debug_assertions)]
    {
        LOCKS_HELD.try_with(|n| n.get()).unwrap_or(0)
    }
    #[cfg(not(debug_assertions))]
    0
}

pub(crate) use crossbeam_epoch::Guard;

/// The `std` build reclaims through crossbeam-epoch's global collector (one
/// per process, pinned through a thread-local handle), so a queue keeps no
/// collector of its own.
#[derive(Debug, Default)]
pub(crate) struct Collector;

impl Collector {
    pub(crate) fn new() -> Self {
        Self
    }

    /// Nothing to do: each thread registers its participant (once) on its
    /// first pin, through crossbeam's thread-local handle.
    pub(crate) fn prewarm(&self) {}
}

/// Pins the current thread in the epoch scheme.
///
/// Never while holding a crate lock: pinning may collect the global
/// collector, running other code's deferred destructors (checked in
/// debug builds).
#[inline]
pub(crate) fn pin(_collector: &Collector) -> Guard {
    assert_no_lock_held("epoch pin");
    crossbeam_epoch::pin()
}

std::thread_local! {
    /// Whether this thread is inside [`flush`] (deferred destructors that
    /// run there may retire, and so flush, again).
    static FLUSHING: core::cell::Cell<bool> = const { core::cell::Cell::new(false) };
}

/// Hands the thread's deferred functions to the global queue and
/// collects, which runs expired deferred functions of *any* code: never
/// while holding a crate lock (checked in debug builds).
///
/// Not nested: a deferred destructor run by this flush that retires
/// again (it drops a `Subscription`, say) leaves its own work in the
/// thread's bag instead of collecting recursively, so a chain of such
/// destructors cannot grow the stack without bound.
pub(crate) fn flush(guard: &Guard) {
    assert_no_lock_held("epoch flush");
    struct Reset;
    impl Drop for Reset {
        fn drop(&mut self) {
            let _ = FLUSHING.try_with(|f| f.set(false));
        }
    }
    // During thread teardown (TLS gone) the work just stays deferred.
    if FLUSHING.try_with(|f| f.replace(true)) != Ok(false) {
        return;
    }
    let _reset = Reset;
    guard.flush();
}

/// Wakes `waker`; returns whether it panicked (caught, so the other wakers
/// of a notify still wake and the queue stays usable).
#[inline]
pub(crate) fn wake_caught(waker: core::task::Waker) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake())).is_err()
}

/// Lets another thread run (a spin that may share its CPU with the thread
/// it waits for).
pub(crate) fn yield_now() {
    std::thread::yield_now()
}
