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
    pub(crate) fn park_until(&self, deadline: Deadline) -> bool {
        match deadline {
            None => park(),
            Some(d) => {
                let now = std::time::Instant::now();
                if now >= d {
                    return false;
                }
                park_timeout(d - now);
            }
        }
        true
    }
}
