//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};

/// A waker that counts how often it was woken.
#[derive(Default)]
pub struct CountingWaker(pub AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    pub fn new() -> (Arc<Self>, Waker) {
        let w = Arc::new(Self::default());
        (w.clone(), Waker::from(w))
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A waker that panics when woken.
pub struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("this waker panics on purpose");
    }
}

/// Polls a future once with `waker`.
pub fn poll_once<F: std::future::Future + Unpin>(
    f: &mut F,
    waker: &Waker,
) -> std::task::Poll<F::Output> {
    let mut cx = Context::from_waker(waker);
    std::pin::Pin::new(f).poll(&mut cx)
}

// ---------------------------------------------------------------------------
// Bounded blocking for both builds.
//
// Tests that use a timed blocking form only to turn a lost wakeup into a
// failure (instead of a hang), or to check that something does not block,
// call these. With `std` they are the crate's own timed forms (so the
// crate's thread-parking path stays under test); without `std` the crate
// has no clock and no timed forms, so they drive the crate's future on this
// thread with a waker that unparks it, giving up at the deadline (the
// future is then dropped, which withdraws its waker, as a timed-out
// blocking call does). The test code itself always has `std`.

use notification_queue::mempipe::{PipeError, PipeStorage, Reader, Writer};
use notification_queue::{Notified, QueueError, RecvTimeoutError, Subscription, Wait};
use std::time::{Duration, Instant};

/// A waker that unparks the thread that made it.
struct Unpark(std::thread::Thread);

impl Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        self.0.unpark();
    }
}

/// Polls `fut` on this thread, parking between polls, until it completes
/// (`Some`) or `deadline` passes (`None`; `None` deadline: no limit). A
/// future that is ready is reported even when the deadline has passed.
pub fn block_on_deadline<F: std::future::Future>(
    fut: F,
    deadline: Option<Instant>,
) -> Option<F::Output> {
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut fut = std::pin::pin!(fut);
    loop {
        if let std::task::Poll::Ready(out) = fut.as_mut().poll(&mut cx) {
            return Some(out);
        }
        match deadline {
            None => std::thread::park(),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    return None;
                }
                std::thread::park_timeout(d - now);
            }
        }
    }
}

/// [`block_on_deadline`] for at most `timeout` from now.
pub fn block_on_timeout<F: std::future::Future>(fut: F, timeout: Duration) -> Option<F::Output> {
    block_on_deadline(fut, Instant::now().checked_add(timeout))
}

/// `w.wait_timeout(timeout)`.
pub fn wait_timeout(w: Wait<'_>, timeout: Duration) -> Result<Notified, QueueError> {
    #[cfg(feature = "std")]
    return w.wait_timeout(timeout);
    #[cfg(not(feature = "std"))]
    return block_on_timeout(w, timeout).unwrap_or(Err(QueueError::Timeout));
}

/// `w.wait_deadline(deadline)`.
pub fn wait_deadline(w: Wait<'_>, deadline: Instant) -> Result<Notified, QueueError> {
    #[cfg(feature = "std")]
    return w.wait_deadline(deadline);
    #[cfg(not(feature = "std"))]
    return block_on_deadline(w, Some(deadline)).unwrap_or(Err(QueueError::Timeout));
}

/// `sub.recv_timeout(timeout)`.
pub fn recv_timeout(sub: &mut Subscription, timeout: Duration) -> Result<i64, RecvTimeoutError> {
    #[cfg(feature = "std")]
    return sub.recv_timeout(timeout);
    #[cfg(not(feature = "std"))]
    return match block_on_timeout(sub.recv(), timeout) {
        Some(r) => r.map_err(RecvTimeoutError::from),
        None => Err(RecvTimeoutError::Timeout),
    };
}

/// `sub.recv_deadline(deadline)`.
pub fn recv_deadline(sub: &mut Subscription, deadline: Instant) -> Result<i64, RecvTimeoutError> {
    #[cfg(feature = "std")]
    return sub.recv_deadline(deadline);
    #[cfg(not(feature = "std"))]
    return match block_on_deadline(sub.recv(), Some(deadline)) {
        Some(r) => r.map_err(RecvTimeoutError::from),
        None => Err(RecvTimeoutError::Timeout),
    };
}

/// `r.read_timeout(buf, timeout)`.
pub fn read_timeout(r: &mut Reader, buf: &mut [u8], timeout: Duration) -> Result<usize, PipeError> {
    #[cfg(feature = "std")]
    return r.read_timeout(buf, timeout);
    #[cfg(not(feature = "std"))]
    return block_on_timeout(r.read_async(buf), timeout).unwrap_or(Err(PipeError::TimedOut));
}

/// `w.write_timeout(buf, timeout)`.
pub fn write_timeout<S: PipeStorage>(
    w: &mut Writer<S>,
    buf: &[u8],
    timeout: Duration,
) -> Result<usize, PipeError> {
    #[cfg(feature = "std")]
    return w.write_timeout(buf, timeout);
    #[cfg(not(feature = "std"))]
    return block_on_timeout(w.write_async(buf), timeout).unwrap_or(Err(PipeError::TimedOut));
}

/// Reads `r` to its end (`std::io::Read::read_to_end` with `std`, the
/// `embedded_io::Read` impl without); panics on an error.
#[cfg(feature = "std")]
pub fn read_to_end(r: &mut impl std::io::Read) -> Vec<u8> {
    let mut out = Vec::new();
    r.read_to_end(&mut out).unwrap();
    out
}

/// Reads `r` to its end (`std::io::Read::read_to_end` with `std`, the
/// `embedded_io::Read` impl without); panics on an error.
#[cfg(not(feature = "std"))]
pub fn read_to_end(r: &mut impl embedded_io::Read) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 64];
    loop {
        match r.read(&mut buf).unwrap() {
            0 => return out,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// A waker that counts, in `violations`, every clone, wake and drop run
/// while the calling thread holds one of the crate's locks (debug builds
/// with `std` count them; elsewhere the check is vacuous). Client code
/// must never run under a crate lock.
pub fn lock_checking_waker() -> (
    std::task::Waker,
    std::sync::Arc<std::sync::atomic::AtomicUsize>,
) {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::task::{RawWaker, RawWakerVTable, Waker};

    fn check(data: *const ()) {
        if notification_queue::__crate_locks_held() != 0 {
            // SAFETY: `data` comes from `Arc::into_raw` and every waker
            // holds one strong count (see `clone` / `drop_waker`).
            let v = unsafe { &*(data as *const AtomicUsize) };
            v.fetch_add(1, Ordering::SeqCst);
        }
    }
    fn clone(data: *const ()) -> RawWaker {
        check(data);
        // SAFETY: as in `check`; the new waker owns the added count.
        unsafe { Arc::increment_strong_count(data as *const AtomicUsize) };
        RawWaker::new(data, &VTABLE)
    }
    fn wake(data: *const ()) {
        check(data);
        drop_waker(data);
    }
    fn wake_by_ref(data: *const ()) {
        check(data);
    }
    fn drop_waker(data: *const ()) {
        check(data);
        // SAFETY: releases the count this waker owned.
        unsafe { Arc::decrement_strong_count(data as *const AtomicUsize) };
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

    let violations = Arc::new(AtomicUsize::new(0));
    let data = Arc::into_raw(violations.clone()) as *const ();
    // SAFETY: the vtable keeps the `RawWaker` contract: the data pointer's
    // `Arc` count is owned by each waker and released by its drop.
    let waker = unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) };
    (waker, violations)
}
