//! Blocking without `std`: there is no thread to park and no clock, so a
//! blocking call spins (with `spin_loop` hints) until its waker fires, and
//! has no timed forms. A kernel that can sleep should drive the futures
//! with its own executor instead.

use super::{AtomicUsize, Ordering, spin_loop};
use core::cell::Cell;
use core::task::{RawWaker, RawWakerVTable, Waker};

/// A deadline that never comes: without `std` there is no clock.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Never {}

/// When a blocking call gives up: always `None` (wait for ever).
pub(crate) type Deadline = Option<Never>;

/// Yield checks before a blocking wait spins on its waker: without `std`
/// a yield is only a spin hint, so a fixed few.
pub(crate) fn yield_checks() -> u32 {
    4
}

/// Whether `deadline` has passed: never.
#[inline]
pub(crate) fn passed(_deadline: &Deadline) -> bool {
    false
}

/// Wakes given by every [`Parker`]'s waker, process-wide.
///
/// A blocking call's waker must outlive the call (a notifier may still
/// hold a clone), so a per-call flag would need an allocation per blocking
/// call; without thread-locals it could not be kept per thread either.
/// One static counter needs none: a waker bumps it, a spinner waits until
/// it moves past what it saw before its last poll. A wake meant for another
/// call only makes this one poll again (a spurious wake, always allowed).
/// It wraps after 2^64 wakes (2^32 on 32-bit targets); a spinner would
/// have to miss exactly that many to sleep through one.
static WAKES: AtomicUsize = AtomicUsize::new(0);

static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake, drop_waker);

fn raw() -> RawWaker {
    RawWaker::new(core::ptr::null(), &VTABLE)
}

fn clone(_: *const ()) -> RawWaker {
    raw()
}

fn wake(_: *const ()) {
    // SeqCst: the waking side changed the state it wakes for before this
    // bump; a spinner whose poll missed that change reads the bump after
    // its snapshot (single total order of SeqCst operations).
    WAKES.fetch_add(1, Ordering::SeqCst);
}

fn drop_waker(_: *const ()) {}

/// The blocking side of one blocking call: a waker that bumps [`WAKES`],
/// and a spin until it has moved since the snapshot taken before the last
/// poll. Allocates nothing.
#[derive(Debug)]
pub(crate) struct Parker {
    seen: Cell<usize>,
}

impl Default for Parker {
    fn default() -> Self {
        Self::new()
    }
}

impl Parker {
    /// Takes the first snapshot: call before the first poll.
    pub(crate) fn new() -> Self {
        Self {
            // SeqCst: see `wake`.
            seen: Cell::new(WAKES.load(Ordering::SeqCst)),
        }
    }

    /// A waker that ends the current spin (and any other spinner's).
    pub(crate) fn waker(&self) -> Waker {
        // SAFETY: the vtable's functions ignore the data pointer (null),
        // touch only a static atomic, and are safe from any thread, any
        // number of times: the `RawWaker` contract holds.
        unsafe { Waker::from_raw(raw()) }
    }

    /// Spins until a wake was given since the snapshot (taken before the
    /// poll that returned `Pending`), then takes a new snapshot for the
    /// next poll; always `true` (there are no deadlines).
    pub(crate) fn park_until(&self, _deadline: Deadline) -> bool {
        loop {
            // SeqCst: see `wake`.
            let now = WAKES.load(Ordering::SeqCst);
            if now != self.seen.get() {
                self.seen.set(now);
                return true;
            }
            spin_loop();
        }
    }
}
