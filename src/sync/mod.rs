//! The one place every atomic, lock, `Arc`, cell and waker cell comes from.
//!
//! A normal build re-exports `std`/`core` types. A model-checking build
//! (`--cfg notification_queue_loom` plus the `loom` feature) swaps in loom's
//! types, so the code loom explores is the code that ships. Nothing else in
//! the crate may name `std::sync::atomic`, `std::sync::Mutex`,
//! `std::cell::UnsafeCell` or `atomic_waker` directly.
//!
//! Two adapters keep both builds on one shape:
//! - [`UnsafeCell`] has loom's closure API (`with` / `with_mut`) in the std
//!   build too (as tokio's `loom/std/unsafe_cell.rs` does).
//! - [`AtomicWaker`] is the `atomic-waker` crate normally. That crate uses
//!   `core` atomics that loom cannot see, so the loom build substitutes a
//!   mutex-backed cell with the same three operations (`register`, `take`,
//!   `wake`). The models therefore check *our* protocol around the waker
//!   cell, assuming the cell itself is linearizable (which `atomic-waker`
//!   is, and is tested for upstream).
//!
//! - `AtomicU128` is `portable-atomic`'s normally (subscription ring cells);
//!   the loom build substitutes a mutex-backed cell, on the same terms.
//!
//! Epoch reclamation goes through [`pin`]: crossbeam-epoch's global collector
//! normally, and under loom a per-queue [`Collector`] (crossbeam-epoch only
//! becomes loom-aware under its own `crossbeam_loom` cfg, where the global
//! collector does not exist).

#![allow(unused_imports, dead_code, unreachable_pub)]

pub(crate) mod park;
pub(crate) mod reclaim;

#[cfg(not(notification_queue_loom))]
mod imp {
    pub(crate) use std::sync::Arc;
    pub(crate) use std::sync::atomic::{
        AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize,
        Ordering, fence,
    };
    pub(crate) use std::thread;

    pub(crate) use portable_atomic::AtomicU128;

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

    pub(crate) use atomic_waker::AtomicWaker;

    /// `UnsafeCell` with loom's closure-based access API.
    #[derive(Debug)]
    pub(crate) struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

    impl<T> UnsafeCell<T> {
        pub(crate) const fn new(data: T) -> Self {
            Self(std::cell::UnsafeCell::new(data))
        }
    }

    impl<T: ?Sized> UnsafeCell<T> {
        #[inline(always)]
        pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
            f(self.0.get())
        }

        #[inline(always)]
        pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
            f(self.0.get())
        }
    }

    pub(crate) use crossbeam_epoch::{Collector, Guard};

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

    /// Hint to the CPU that we are spinning.
    #[inline(always)]
    pub(crate) fn spin_loop() {
        std::hint::spin_loop()
    }
}

#[cfg(notification_queue_loom)]
mod imp {
    pub(crate) use loom::cell::UnsafeCell;
    pub(crate) use loom::sync::atomic::{
        AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize,
        Ordering, fence,
    };
    pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
    pub(crate) use loom::thread;

    use core::task::Waker;

    /// Loom stand-in for `portable_atomic::AtomicU128` (loom has no 128-bit
    /// atomics): a loom mutex around the value, so every operation is one
    /// linearizable step loom can interleave. As for [`AtomicWaker`], the
    /// models check our protocol around the cell, assuming the cell itself
    /// is linearizable (which `cmpxchg16b` / `casp` are). Orderings are
    /// accepted and ignored: the mutex is stronger than any of them.
    #[derive(Debug)]
    pub(crate) struct AtomicU128 {
        v: Mutex<u128>,
    }

    impl AtomicU128 {
        pub(crate) fn new(v: u128) -> Self {
            Self { v: Mutex::new(v) }
        }

        pub(crate) fn load(&self, _: Ordering) -> u128 {
            *self.v.lock().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn compare_exchange(
            &self,
            current: u128,
            new: u128,
            _: Ordering,
            _: Ordering,
        ) -> Result<u128, u128> {
            let mut v = self.v.lock().unwrap_or_else(|e| e.into_inner());
            if *v == current {
                *v = new;
                Ok(current)
            } else {
                Err(*v)
            }
        }

        pub(crate) fn compare_exchange_weak(
            &self,
            current: u128,
            new: u128,
            success: Ordering,
            failure: Ordering,
        ) -> Result<u128, u128> {
            self.compare_exchange(current, new, success, failure)
        }
    }

    /// Loom stand-in for `atomic_waker::AtomicWaker` (see the module docs).
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker {
        waker: Mutex<Option<Waker>>,
    }

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        /// Like `atomic_waker`, runs no waker code under the lock: the new
        /// waker is cloned with the lock released, and the one it replaces
        /// is dropped after unlocking (clone and drop may run client code).
        pub(crate) fn register(&self, waker: &Waker) {
            {
                let slot = self.lock();
                // `will_wake` compares pointers only; it runs no waker code.
                if slot.as_ref().is_some_and(|old| old.will_wake(waker)) {
                    return;
                }
            }
            let fresh = waker.clone();
            let old = self.lock().replace(fresh);
            drop(old);
        }

        /// Takes the waker out; the caller drops or wakes it, unlocked.
        pub(crate) fn take(&self) -> Option<Waker> {
            let mut slot = self.lock();
            slot.take()
        }

        fn lock(&self) -> MutexGuard<'_, Option<Waker>> {
            self.waker.lock().unwrap_or_else(|e| e.into_inner())
        }

        pub(crate) fn wake(&self) {
            if let Some(w) = self.take() {
                w.wake();
            }
        }
    }

    pub(crate) use crossbeam_epoch::{Collector, Guard};

    /// Pins through the queue's own collector (no global collector under loom).
    pub(crate) fn pin(collector: &Collector) -> Guard {
        collector.register().pin()
    }

    /// Flushes the guard's deferred functions (the per-queue collector under
    /// loom runs only this queue's own retirements).
    pub(crate) fn flush(guard: &Guard) {
        guard.flush();
    }

    /// Lock tracking is a debug aid of the std build only.
    #[inline(always)]
    pub(crate) fn assert_no_lock_held(_what: &str) {}

    /// Under loom a spin must yield so the model can make progress.
    pub(crate) fn spin_loop() {
        loom::thread::yield_now()
    }
}

pub(crate) use imp::*;

/// Debug hints are plain immutable data shared with callers, never used to
/// synchronise, so they are `std`'s `Arc<str>` in every build (loom's `Arc`
/// would leak into the public API).
pub(crate) type Hint = std::sync::Arc<str>;
