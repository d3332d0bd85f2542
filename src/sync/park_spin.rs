//! Blocking without `std`: there is no thread to park and no clock, so a
//! blocking call spins (with `spin_loop` hints) until its waker fires, and
//! has no timed forms. A kernel that can sleep should drive the futures
//! with its own executor instead.

use super::{Arc, AtomicBool, Ordering, spin_loop};
use core::task::Waker;

/// A deadline that never comes: without `std` there is no clock.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Never {}

/// When a blocking call gives up: always `None` (wait for ever).
pub(crate) type Deadline = Option<Never>;

/// Whether `deadline` has passed: never.
#[inline]
pub(crate) fn passed(_deadline: &Deadline) -> bool {
    false
}

/// The flag a [`Parker`]'s waker sets.
#[derive(Debug)]
struct Flag(AtomicBool);

impl alloc::task::Wake for Flag {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // Release: what the waking side did before waking is visible to
        // the spinner's Acquire swap.
        self.0.store(true, Ordering::Release);
    }
}

/// The blocking side of one blocking call: a waker that sets a flag, and a
/// spin until it is set.
#[derive(Debug)]
pub(crate) struct Parker(Arc<Flag>);

impl Default for Parker {
    fn default() -> Self {
        Self::new()
    }
}

impl Parker {
    pub(crate) fn new() -> Self {
        Self(Arc::new(Flag(AtomicBool::new(false))))
    }

    /// A waker that ends the current spin.
    pub(crate) fn waker(&self) -> Waker {
        Waker::from(self.0.clone())
    }

    /// Spins until the waker has fired since the last call; always `true`
    /// (there are no deadlines).
    pub(crate) fn park_until(&self, _deadline: Deadline) -> bool {
        // Acquire: pairs with the waker's Release store.
        while !self.0.0.swap(false, Ordering::Acquire) {
            spin_loop();
        }
        true
    }
}
