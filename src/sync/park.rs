//! Thread parking behind a `Waker`, through the sync shim's thread type
//! (`std` builds; `park_spin.rs` without `std`).

use crate::sync::thread;
use core::task::Waker;
use std::time::Duration;

struct Unparker(thread::Thread);

impl std::task::Wake for Unparker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &std::sync::Arc<Self>) {
        self.0.unpark();
    }
}

/// A waker that unparks the calling thread.
#[cfg(not(notification_queue_loom))]
fn current_waker() -> Waker {
    std::thread_local! {
        static WAKER: Waker = Waker::from(std::sync::Arc::new(Unparker(thread::current())));
    }
    WAKER.with(Waker::clone)
}

/// A waker that unparks the calling thread.
#[cfg(notification_queue_loom)]
fn current_waker() -> Waker {
    Waker::from(std::sync::Arc::new(Unparker(thread::current())))
}

fn park() {
    thread::park();
}

#[cfg(not(notification_queue_loom))]
fn park_timeout(d: Duration) {
    thread::park_timeout(d);
}

/// Loom has no timed park; models never time out.
#[cfg(notification_queue_loom)]
fn park_timeout(_d: Duration) {
    thread::park();
}

/// When a blocking call gives up: `None` waits for ever.
pub(crate) type Deadline = Option<std::time::Instant>;

/// Yield checks a blocking wait makes after its pause phase: at least
/// this many (crossbeam's `Backoff` yields about as often) ...
const MIN_YIELDS: u32 = 4;
/// ... and at most this many (a few tens of microseconds of `sched_yield`
/// on an idle CPU).
const MAX_YIELDS: u32 = 64;
/// A park that ended sooner than this was woken by a notify a longer yield
/// phase could have seen: the thread's next waits yield twice as long. On a
/// virtual machine a parked thread's CPU halts, and waking it costs tens of
/// microseconds; two threads that each park every round trip stay that slow
/// for good, while two that each catch the other's notify in the yield phase
/// stay fast, so without this a ping-pong settles into either mode by chance.
const SHORT_PARK: Duration = Duration::from_micros(100);
/// A park longer than this was a real wait: the next waits yield half as
/// long, so a thread that mostly waits for long spends little time yielding.
const LONG_PARK: Duration = Duration::from_millis(1);

std::thread_local! {
    /// This thread's yield budget, adapted by [`note_park`].
    static YIELDS: core::cell::Cell<u32> = const { core::cell::Cell::new(MIN_YIELDS) };
}

/// How many yield checks this thread's next blocking wait makes before it
/// parks (between 4 and 64; adapted by [`note_park`]).
pub(crate) fn yield_checks() -> u32 {
    YIELDS.with(core::cell::Cell::get)
}

/// Adapts the yield budget after a park of `parked`.
fn note_park(parked: Duration) {
    YIELDS.with(|y| {
        let n = y.get();
        if parked < SHORT_PARK {
            y.set((n * 2).min(MAX_YIELDS));
        } else if parked > LONG_PARK {
            y.set((n / 2).max(MIN_YIELDS));
        }
    });
}

/// Whether `deadline` has passed.
#[inline]
pub(crate) fn passed(deadline: &Deadline) -> bool {
    deadline.is_some_and(|d| d <= std::time::Instant::now())
}

/// The blocking side of one blocking call: a waker for its future, and the
/// park that waits for that waker.
#[derive(Debug, Default)]
pub(crate) struct Parker(());

impl Parker {
    pub(crate) fn new() -> Self {
        Self(())
    }

    /// A waker that unparks the calling thread.
    pub(crate) fn waker(&self) -> Waker {
        current_waker()
    }

    /// One step of a blocking loop: parks until woken or until `deadline`
    /// (`None`: no deadline). Returns `false`, without parking, once the
    /// deadline has passed; the caller then times out.
    ///
    /// How long the park lasted adapts this thread's yield budget
    /// ([`yield_checks`]).
    pub(crate) fn park_until(&self, deadline: Deadline) -> bool {
        let start = std::time::Instant::now();
        match deadline {
            None => park(),
            Some(d) => {
                if start >= d {
                    return false;
                }
                park_timeout(d - start);
            }
        }
        note_park(start.elapsed());
        true
    }
}

#[cfg(all(test, not(notification_queue_loom)))]
mod tests {
    use super::*;

    #[test]
    fn yield_budget_doubles_after_short_parks_and_halves_after_long_ones() {
        // Each test runs on its own thread: the budget starts at the minimum.
        assert_eq!(yield_checks(), MIN_YIELDS);
        note_park(Duration::from_micros(20));
        assert_eq!(yield_checks(), 2 * MIN_YIELDS);
        for _ in 0..10 {
            note_park(Duration::ZERO);
        }
        assert_eq!(yield_checks(), MAX_YIELDS, "capped");
        // Between the two bounds: unchanged.
        note_park(Duration::from_micros(500));
        assert_eq!(yield_checks(), MAX_YIELDS);
        note_park(Duration::from_millis(5));
        assert_eq!(yield_checks(), MAX_YIELDS / 2);
        for _ in 0..10 {
            note_park(Duration::from_secs(1));
        }
        assert_eq!(yield_checks(), MIN_YIELDS, "floored");
    }

    #[test]
    fn a_park_adapts_the_budget_of_its_own_thread_only() {
        let parker = Parker::new();
        parker.waker().wake(); // unparked before parking: a short park ...
        let before = std::time::Instant::now();
        assert!(parker.park_until(None));
        // ... unless this thread was descheduled for long (a loaded host):
        // then it may count as an ordinary one and leave the budget alone.
        if before.elapsed() < SHORT_PARK {
            assert_eq!(yield_checks(), 2 * MIN_YIELDS);
        } else {
            assert!(matches!(yield_checks(), MIN_YIELDS | 8));
        }
        note_park(Duration::ZERO);
        let mine = yield_checks();
        assert!(mine > MIN_YIELDS);
        let other = std::thread::spawn(yield_checks).join().ok();
        assert_eq!(other, Some(MIN_YIELDS));
    }
}
