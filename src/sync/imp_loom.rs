//! The model-checking build: loom's types, and stand-ins for the cells
//! loom cannot see.

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

    pub(crate) fn store(&self, v: u128, _: Ordering) {
        *self.v.lock().unwrap_or_else(|e| e.into_inner()) = v;
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

pub(crate) use super::epoch_pool::{Collector, Guard, Pinned, flush, pin};

/// Lock tracking is a debug aid of the std build only.
#[inline(always)]
pub(crate) fn assert_no_lock_held(_what: &str) {}

/// Crate locks the current thread holds: not counted in this build.
pub(crate) fn locks_held() -> usize {
    0
}

/// Under loom a spin must yield so the model can make progress.
pub(crate) fn spin_loop() {
    loom::thread::yield_now()
}

/// Wakes `waker`; returns whether it panicked (caught, as in the `std`
/// build).
pub(crate) fn wake_caught(waker: Waker) -> bool {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| waker.wake())).is_err()
}

/// Lets another thread run (a loom yield).
pub(crate) fn yield_now() {
    loom::thread::yield_now()
}
