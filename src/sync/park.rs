//! Thread parking behind a `Waker`, through the sync shim's thread type.

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
pub(crate) fn current_waker() -> Waker {
    std::thread_local! {
        static WAKER: Waker = Waker::from(std::sync::Arc::new(Unparker(thread::current())));
    }
    WAKER.with(Waker::clone)
}

/// A waker that unparks the calling thread.
#[cfg(notification_queue_loom)]
pub(crate) fn current_waker() -> Waker {
    Waker::from(std::sync::Arc::new(Unparker(thread::current())))
}

pub(crate) fn park() {
    thread::park();
}

#[cfg(not(notification_queue_loom))]
pub(crate) fn park_timeout(d: Duration) {
    thread::park_timeout(d);
}

/// Loom has no timed park; models never time out.
#[cfg(notification_queue_loom)]
pub(crate) fn park_timeout(_d: Duration) {
    thread::park();
}

/// One step of a blocking loop: parks until woken or until `deadline`
/// (`None`: no deadline). Returns `false`, without parking, once the
/// deadline has passed; the caller then times out.
pub(crate) fn park_until(deadline: Option<std::time::Instant>) -> bool {
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
