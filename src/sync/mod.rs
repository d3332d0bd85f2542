//! The one place every atomic, lock, `Arc`, cell and waker cell comes from,
//! and the bottom layer of the crate: the shim, epoch reclamation
//! ([`reclaim`]) and blocking ([`park`]).
//!
//! Three builds, one file each: `std` (`imp_std.rs`), bare `no_std` +
//! `alloc` (`imp_bare.rs`: a spin lock, a per-queue epoch collector, wakers
//! not caught if they panic) and loom (`imp_loom.rs`). A normal build
//! re-exports `core`/`alloc` types (`common.rs`). A model-checking build
//! (`--cfg notification_queue_loom` plus the `loom` feature) swaps in loom's
//! types, so the code loom explores is the code that ships. Nothing else in
//! the crate may name `std::sync::atomic`, `std::sync::Mutex`,
//! `std::cell::UnsafeCell` directly.
//!
//! Two adapters keep both builds on one shape:
//! - [`UnsafeCell`] has loom's closure API (`with` / `with_mut`) in the std
//!   build too (as tokio's `loom/std/unsafe_cell.rs` does).
//! - [`AtomicWaker`] is the crate's own (`atomic_waker.rs`): the algorithm
//!   of the `atomic-waker` crate, made safe against wakers whose `clone`
//!   panics, and written on the shim's atomics so that loom checks it.
//!
//! - `AtomicU128` is `portable-atomic`'s normally (subscription ring cells),
//!   with its x86-64 hardware paths inlined (`atomic128.rs`); the loom
//!   build substitutes a mutex-backed cell, on the same terms.
//!
//! Epoch reclamation goes through [`pin`]: crossbeam-epoch's global collector
//! normally, and under loom a per-queue [`Collector`] (crossbeam-epoch only
//! becomes loom-aware under its own `crossbeam_loom` cfg, where the global
//! collector does not exist).

#![allow(unused_imports, dead_code, unreachable_pub)]

#[cfg(not(notification_queue_loom))]
mod common;

#[cfg(all(
    not(notification_queue_loom),
    target_arch = "x86_64",
    target_feature = "sse",
    not(miri),
    not(target_env = "sgx")
))]
mod atomic128;

#[cfg(all(not(notification_queue_loom), feature = "std"))]
#[path = "imp_std.rs"]
mod imp;

#[cfg(all(not(notification_queue_loom), not(feature = "std")))]
#[path = "imp_bare.rs"]
mod imp;

#[cfg(notification_queue_loom)]
#[path = "imp_loom.rs"]
mod imp;

/// Blocking a thread until a waker fires: `std`'s park / unpark.
#[cfg(feature = "std")]
pub(crate) mod park;

/// Blocking without `std`: spin until the waker fires (no clock, so no
/// timeouts).
#[cfg(not(feature = "std"))]
#[path = "park_spin.rs"]
pub(crate) mod park;

pub(crate) mod reclaim;

/// Spins before a blocking call parks, as crossbeam's channels do: a wake
/// from another CPU that comes within a few microseconds then costs no sleep
/// and no wake-up. Calls `check` after every pause, 128 times (crossbeam's
/// `Backoff` doubles the pauses between checks, which adds up to half the
/// wait again to an event that lands mid-step; 128 pauses are as long as
/// its spin phase). Halfway it yields once: a waker that shares our CPU runs
/// then, instead of after the whole spin, while on an idle CPU the yield
/// returns at once and the spin goes on. Then it checks after each of
/// [`park::yield_checks`] yields: between 4 (as `Backoff`) and 64, adapted
/// per thread by how long its parks last. Returns the first `Some`, or
/// `None` for the caller to park. Does nothing once `deadline` has passed,
/// nor under loom, whose models must see every step.
#[inline]
pub(crate) fn spin_until<T>(
    deadline: &park::Deadline,
    mut check: impl FnMut() -> Option<T>,
) -> Option<T> {
    /// Checks with one pause after each; the one after `SPIN_CHECKS / 2`
    /// yields instead.
    const SPIN_CHECKS: u32 = 128;
    if cfg!(notification_queue_loom) || park::passed(deadline) {
        return None;
    }
    let yield_checks = park::yield_checks();
    for step in 0..SPIN_CHECKS + yield_checks {
        if let Some(done) = check() {
            return Some(done);
        }
        if step < SPIN_CHECKS && step != SPIN_CHECKS / 2 {
            spin_loop();
        } else {
            yield_now();
        }
    }
    check()
}

mod atomic_waker;
pub(crate) use atomic_waker::AtomicWaker;

/// A `SeqCst` fence for a thread that has just executed a successful atomic
/// RMW with Release and Acquire semantics (`AcqRel` or stronger). On x86-64
/// that RMW is a `lock`-prefixed instruction, which the hardware does not
/// reorder with any earlier store or later load (Intel SDM vol. 3, 9.2.2,
/// "Memory Ordering in P6 and More Recent Processor Families"; AMD APM
/// vol. 2, 7.4.2): it already is the full barrier the fence would be, so
/// only the compiler is fenced (its `AcqRel` keeps the compiler from moving
/// earlier accesses after it or later ones before it anyway). This is
/// crossbeam-epoch's substitute for `fence(SeqCst)` when it pins on x86.
/// Everywhere else, and under loom and Miri (which check the language's
/// model, not the hardware's), it is a real `fence(SeqCst)`.
#[inline(always)]
pub(crate) fn fence_after_locked_rmw() {
    #[cfg(all(target_arch = "x86_64", not(notification_queue_loom), not(miri)))]
    core::sync::atomic::compiler_fence(Ordering::SeqCst);
    #[cfg(not(all(target_arch = "x86_64", not(notification_queue_loom), not(miri))))]
    fence(Ordering::SeqCst);
}

#[cfg(any(notification_queue_loom, not(feature = "std")))]
mod epoch_pool;

pub(crate) use imp::*;

#[cfg(all(
    not(notification_queue_loom),
    target_arch = "x86_64",
    target_feature = "sse",
    not(miri),
    not(target_env = "sgx")
))]
pub(crate) use atomic128::Fast as Fast128;

/// Where 128-bit cells have no inlined hardware path (loom, other
/// architectures, x86-64 without SSE): the token is never granted, and
/// callers take the plain `AtomicU128` methods.
#[cfg(not(all(
    not(notification_queue_loom),
    target_arch = "x86_64",
    target_feature = "sse",
    not(miri),
    not(target_env = "sgx")
)))]
#[derive(Debug, Clone, Copy)]
pub(crate) struct Fast128(core::convert::Infallible);

#[cfg(not(all(
    not(notification_queue_loom),
    target_arch = "x86_64",
    target_feature = "sse",
    not(miri),
    not(target_env = "sgx")
)))]
impl Fast128 {
    #[inline(always)]
    pub(crate) fn get() -> Option<Self> {
        None
    }

    pub(crate) fn load(self, _: &AtomicU128) -> u128 {
        match self.0 {}
    }

    pub(crate) fn store(self, _: &AtomicU128, _: u128) {
        match self.0 {}
    }

    pub(crate) fn compare_exchange(self, _: &AtomicU128, _: u128, _: u128) -> Result<u128, u128> {
        match self.0 {}
    }
}

/// Debug hints are plain immutable data shared with callers, never used to
/// synchronise, so they are `alloc`'s `Arc<str>` in every build (loom's
/// `Arc` would leak into the public API).
pub(crate) type Hint = alloc::sync::Arc<str>;
