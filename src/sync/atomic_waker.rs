//! [`AtomicWaker`]: one task's waker cell, registered by the waiting side
//! and taken by the waking side, without locks.
//!
//! The algorithm of the `atomic-waker` crate (from `futures`), with one
//! change: a waker whose `clone` panics cannot leave the cell locked. In
//! `atomic-waker` a panicking clone leaves the state at `REGISTERING` for
//! good; every later registration of that cell then only wakes its waker at
//! once instead of storing it, so every later wait on that waiter entry
//! spins instead of sleeping. Here the clone runs under a guard that
//! unlocks on unwind (tokio's `AtomicWaker` guards the same step), and the
//! waker a registration replaces is dropped after unlocking. Built on the
//! shim's atomics and cell, so the loom models check this code itself.

use super::{AtomicUsize, Ordering, UnsafeCell, spin_loop};
use core::fmt;
use core::task::Waker;

/// Idle: the cell may be registered or taken.
const WAITING: usize = 0;
/// A registration holds the cell.
const REGISTERING: usize = 0b01;
/// A waker takes (or took, during a registration) the cell's waker.
const WAKING: usize = 0b10;

/// A cell holding at most one waker: `register` from the task that waits,
/// `take` / `wake` from whoever wakes it. Never blocks.
pub(crate) struct AtomicWaker {
    state: AtomicUsize,
    waker: UnsafeCell<Option<Waker>>,
}

// SAFETY: the waker slot is only accessed by the holder of `REGISTERING`
// (register) or of `WAKING` taken from `WAITING` (take), which exclude one
// another through `state`; `Waker` is `Send + Sync`.
unsafe impl Send for AtomicWaker {}
// SAFETY: as above.
unsafe impl Sync for AtomicWaker {}

impl fmt::Debug for AtomicWaker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicWaker").finish_non_exhaustive()
    }
}

impl Default for AtomicWaker {
    fn default() -> Self {
        Self::new()
    }
}

/// Unlocks the cell if a waker's `clone` unwinds out of `register`.
struct Unlock<'a>(&'a AtomicUsize);

impl Drop for Unlock<'_> {
    fn drop(&mut self) {
        // AcqRel: as the normal unlock. A wake that came meanwhile was for
        // the waker still stored, that is, for the task whose poll is
        // unwinding; its next poll re-checks what it waits for anyway.
        self.0.swap(WAITING, Ordering::AcqRel);
    }
}

impl AtomicWaker {
    pub(crate) fn new() -> Self {
        Self {
            state: AtomicUsize::new(WAITING),
            waker: UnsafeCell::new(None),
        }
    }

    /// Stores `waker` (a clone of it, unless the stored one already wakes
    /// the same task). If a wake races with this registration, `waker` is
    /// woken instead: the caller checks its condition after registering
    /// and may see a spurious wake, never a lost one.
    pub(crate) fn register(&self, waker: &Waker) {
        // Acquire: the previous holder's writes to the slot (a registration
        // or a take) happen before ours.
        match self
            .state
            .compare_exchange(WAITING, REGISTERING, Ordering::Acquire, Ordering::Acquire)
            .unwrap_or_else(|x| x)
        {
            WAITING => {
                // SAFETY (both closures): `REGISTERING` gives this thread
                // sole access to the slot until it leaves that state.
                // `will_wake` compares pointers only: no waker code.
                let same = self
                    .waker
                    .with(|w| unsafe { (*w).as_ref().is_some_and(|old| old.will_wake(waker)) });
                let old = if same {
                    None
                } else {
                    let unlock = Unlock(&self.state);
                    let fresh = waker.clone(); // client code: may unwind
                    core::mem::forget(unlock);
                    // SAFETY: as above.
                    self.waker.with_mut(|w| unsafe { (*w).replace(fresh) })
                };
                // AcqRel: Release publishes the slot to the next holder;
                // Acquire (on failure) takes the racing wakers' releases.
                match self.state.compare_exchange(
                    REGISTERING,
                    WAITING,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    Ok(_) => drop(old), // unlocked: client code
                    Err(_) => {
                        // A wake came while we held the cell (the state is
                        // `REGISTERING | WAKING`): it left the waker to us.
                        // SAFETY: we still hold `REGISTERING`.
                        let now = self.waker.with_mut(|w| unsafe { (*w).take() });
                        // AcqRel: releases the slot, takes the wakers'
                        // releases.
                        self.state.swap(WAITING, Ordering::AcqRel);
                        if let Some(w) = now {
                            w.wake();
                        }
                        drop(old);
                    }
                }
            }
            WAKING => {
                // A take is running on the old waker: have the task poll
                // again rather than wait for the slot.
                waker.wake_by_ref();
                spin_loop();
            }
            _ => {
                // Another registration holds the cell: the crate registers
                // each cell from one wait (or receiver, or reader) at a
                // time, so this is not reached.
            }
        }
    }

    /// Takes the stored waker out (to wake or drop unlocked), or `None` if
    /// there is none or a registration holds the cell (which then sees the
    /// `WAKING` bit and wakes its waker itself).
    pub(crate) fn take(&self) -> Option<Waker> {
        // AcqRel: Acquire sees the registration's slot write; Release makes
        // our `WAKING` visible to a registration that then wakes itself.
        match self.state.fetch_or(WAKING, Ordering::AcqRel) {
            WAITING => {
                // SAFETY: `WAKING` taken from `WAITING` gives sole access
                // to the slot until it is cleared.
                let w = self.waker.with_mut(|w| unsafe { (*w).take() });
                // Release: the emptied slot before the next holder.
                self.state.fetch_and(!WAKING, Ordering::Release);
                w
            }
            _ => None,
        }
    }

    /// Takes the stored waker and wakes it.
    pub(crate) fn wake(&self) {
        if let Some(w) = self.take() {
            w.wake();
        }
    }
}

#[cfg(all(test, feature = "std", not(notification_queue_loom)))]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize as StdUsize;
    use std::task::Wake;

    #[derive(Default)]
    struct Count(StdUsize);
    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    #[test]
    fn register_take_wake() {
        let cell = AtomicWaker::new();
        assert!(cell.take().is_none());
        let c = Arc::new(Count::default());
        let w = Waker::from(c.clone());
        cell.register(&w);
        cell.register(&w); // the same task: kept, not cloned again
        assert_eq!(Arc::strong_count(&c), 3); // ours, `w`, the cell's
        cell.wake();
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
        assert!(cell.take().is_none());
        let d = Arc::new(Count::default());
        cell.register(&w);
        cell.register(&Waker::from(d.clone())); // replaces (drops) `w`'s clone
        assert_eq!(Arc::strong_count(&c), 2);
        cell.wake();
        assert_eq!(
            (c.0.load(Ordering::SeqCst), d.0.load(Ordering::SeqCst)),
            (1, 1)
        );
    }

    #[test]
    fn a_panicking_clone_leaves_the_cell_usable() {
        use core::task::{RawWaker, RawWakerVTable};
        fn clone(_: *const ()) -> RawWaker {
            panic!("clone panics");
        }
        fn noop(_: *const ()) {}
        static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, noop, noop, noop);
        // SAFETY: the functions own nothing; `clone` panics, which the
        // caller catches below.
        let bad = unsafe { Waker::from_raw(RawWaker::new(core::ptr::null(), &VTABLE)) };
        let cell = AtomicWaker::new();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| cell.register(&bad)));
        assert!(r.is_err());
        let c = Arc::new(Count::default());
        cell.register(&Waker::from(c.clone()));
        assert_eq!(
            c.0.load(Ordering::SeqCst),
            0,
            "woken at once: cell left locked"
        );
        cell.wake();
        assert_eq!(c.0.load(Ordering::SeqCst), 1);
    }
}
