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
//! Epoch reclamation goes through [`pin`]: crossbeam-epoch's global collector
//! normally, and under loom a per-queue [`Collector`] (crossbeam-epoch only
//! becomes loom-aware under its own `crossbeam_loom` cfg, where the global
//! collector does not exist).

#![allow(unused_imports, dead_code, unreachable_pub)]

#[cfg(not(notification_queue_loom))]
mod imp {
    pub(crate) use std::sync::atomic::{
        AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        fence,
    };
    pub(crate) use std::sync::{Arc, Mutex, MutexGuard};
    pub(crate) use std::thread;

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
    #[inline]
    pub(crate) fn pin(_collector: &Collector) -> Guard {
        crossbeam_epoch::pin()
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
        AtomicBool, AtomicI32, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize, Ordering,
        fence,
    };
    pub(crate) use loom::sync::{Arc, Mutex, MutexGuard};
    pub(crate) use loom::thread;

    use core::task::Waker;

    /// Loom stand-in for `atomic_waker::AtomicWaker` (see the module docs).
    #[derive(Debug, Default)]
    pub(crate) struct AtomicWaker {
        waker: Mutex<Option<Waker>>,
    }

    impl AtomicWaker {
        pub(crate) fn new() -> Self {
            Self::default()
        }

        pub(crate) fn register(&self, waker: &Waker) {
            let mut slot = self.waker.lock().unwrap_or_else(|e| e.into_inner());
            match &*slot {
                Some(old) if old.will_wake(waker) => {}
                _ => *slot = Some(waker.clone()),
            }
        }

        pub(crate) fn take(&self) -> Option<Waker> {
            self.waker.lock().unwrap_or_else(|e| e.into_inner()).take()
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
