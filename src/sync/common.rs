//! What every build but loom's shares: `core` atomics, `alloc`'s `Arc`,
//! `portable-atomic`'s 128-bit cell, and [`UnsafeCell`]
//! with loom's closure API.

#[cfg(all(
    target_arch = "x86_64",
    target_feature = "sse",
    not(miri),
    not(target_env = "sgx")
))]
pub(crate) use super::atomic128::AtomicU128;
pub(crate) use alloc::sync::Arc;
pub(crate) use core::sync::atomic::{
    AtomicBool, AtomicI32, AtomicI64, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, AtomicUsize,
    Ordering, fence,
};
#[cfg(not(all(
    target_arch = "x86_64",
    target_feature = "sse",
    not(miri),
    not(target_env = "sgx")
)))]
pub(crate) use portable_atomic::AtomicU128;

/// `UnsafeCell` with loom's closure-based access API.
#[derive(Debug)]
pub(crate) struct UnsafeCell<T: ?Sized>(core::cell::UnsafeCell<T>);

impl<T> UnsafeCell<T> {
    pub(crate) const fn new(data: T) -> Self {
        Self(core::cell::UnsafeCell::new(data))
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

/// Hint to the CPU that we are spinning.
#[inline(always)]
pub(crate) fn spin_loop() {
    core::hint::spin_loop()
}
