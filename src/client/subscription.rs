//! The receiving side of a subscription: [`Subscription`] and its [`Recv`]
//! future. The ring it drains is `primitives::ring`; how notify fills it,
//! `state::fanout`.

use crate::error::{RecvError, RecvTimeoutError, TryRecvError};
use crate::primitives::ring::{Feed, Overflow, Ring};
use crate::primitives::slots::Handle;
use crate::state::Inner;
use crate::sync::park;
use crate::sync::{Arc, Fast128, Hint, Ordering, fence};
use crate::trace;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

/// A bounded channel of one handle's notify arguments.
///
/// Created by [`NotificationQueue::subscribe`](crate::NotificationQueue::subscribe). Owns a clone of the queue,
/// so it is `'static` and `Send`. Dropping it (or
/// [`unsubscribe`](Self::unsubscribe)) unsubscribes.
///
/// notify never waits for a subscription: when the buffer is full the
/// [`Overflow`] policy decides what is lost, and the next receive reports
/// how much as `Lagged(n)` before returning further values. Unregistering
/// the handle ends the subscription after what was already buffered has been
/// received (then `Closed`).
///
/// Receiving: [`try_recv`](Self::try_recv); [`recv`](Self::recv) returns a
/// [`Recv`] future that also blocks with [`Recv::wait`]; thread-blocking
/// [`recv_timeout`](Self::recv_timeout) / [`recv_deadline`](Self::recv_deadline);
/// and, with the `stream` feature, `futures_core::Stream` with items
/// `Result<i64, Lagged>`, ending after `Closed`.
///
/// ```
/// use notification_queue::{Config, NotificationQueue, RecvError, TryRecvError};
///
/// let queue = NotificationQueue::new(Config::default());
/// let h = queue.register("sensor").unwrap();
/// let mut sub = queue.subscribe(h, 2, "display").unwrap();
/// for v in 1..=5 {
///     queue.notify(h, v).unwrap(); // never blocks, even when `sub` is full
/// }
/// assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged(3))); // 1, 2, 3 overwritten
/// assert_eq!(sub.try_recv(), Ok(4));
/// queue.unregister(h).unwrap();
/// assert_eq!(sub.recv().wait(), Ok(5)); // drains what was buffered ...
/// assert_eq!(sub.recv().wait(), Err(RecvError::Closed)); // ... then ends
/// assert_eq!(sub.dropped(), 3);
/// ```
#[derive(Debug)]
pub struct Subscription {
    inner: Arc<Inner>,
    handle: Handle,
    ring: Arc<Ring>,
    /// The feed the ring is listed in (its keep-newest positions).
    feed: Arc<Feed>,
    /// Receiver position (mirrored into `ring.head` for producers).
    head: u64,
    /// `Closed` was reported; sticky.
    closed: bool,
    /// The CPU's inlined 128-bit atomics, checked once.
    fast: Option<Fast128>,
}

impl Subscription {
    pub(crate) fn new(inner: Arc<Inner>, handle: Handle, ring: Arc<Ring>, feed: Arc<Feed>) -> Self {
        // Relaxed: stored before the ring was listed, by this thread.
        let head = ring.start.load(Ordering::Relaxed);
        Self {
            inner,
            handle,
            ring,
            feed,
            head,
            closed: false,
            fast: Fast128::get(),
        }
    }

    /// The handle this subscription listens to.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// The buffer's capacity.
    pub fn capacity(&self) -> usize {
        self.ring.cap as usize
    }

    /// Values buffered and not yet received.
    pub fn len(&self) -> usize {
        self.ring.len(&self.feed)
    }

    /// Whether nothing is buffered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The overflow policy.
    pub fn overflow(&self) -> Overflow {
        self.ring.overflow
    }

    /// The debug hint.
    pub fn hint(&self) -> &Hint {
        &self.ring.hint
    }

    /// Values this subscriber has lost so far: overwritten before being
    /// received ([`Overflow::KeepNewest`]), rejected while full
    /// ([`Overflow::KeepOldest`]), or offered by a notify that raced with
    /// unregister and arrived after the close. Counted from the buffer's
    /// positions, so it grows even if the subscriber never receives, and
    /// adds up to the `Lagged` counts reported plus what the next receive
    /// will report.
    pub fn dropped(&self) -> u64 {
        self.ring.dropped(&self.feed)
    }

    /// Whether the handle was unregistered (values may still be buffered).
    pub fn is_closed(&self) -> bool {
        // Relaxed: a status snapshot; receiving re-reads it with Acquire.
        self.ring.is_closed(&self.feed)
    }

    /// Receives the next value without waiting.
    ///
    /// `Err(Lagged(n))` says `n` values were lost before the next one;
    /// `Err(Closed)` comes once the handle is unregistered and everything
    /// buffered was received. `Empty` may also be returned for a moment while
    /// a notifier that claimed the next position has not yet written it.
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue, TryRecvError};
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let mut sub = queue.subscribe(h, 8, "").unwrap();
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    /// queue.notify(h, 3).unwrap();
    /// assert_eq!(sub.try_recv(), Ok(3));
    /// ```
    #[inline]
    pub fn try_recv(&mut self) -> Result<i64, TryRecvError> {
        if self.closed {
            return Err(TryRecvError::Closed);
        }
        match self.ring.recv_with(&self.feed, &mut self.head, self.fast) {
            Ok(v) => Ok(v),
            Err(e) => self.not_received(e),
        }
    }

    /// `try_recv` found no value: notes `Closed` (sticky) or traces the lag.
    #[cold]
    fn not_received(&mut self, e: TryRecvError) -> Result<i64, TryRecvError> {
        match e {
            TryRecvError::Closed => self.closed = true,
            TryRecvError::Lagged(n) => {
                let (inner, handle) = (&self.inner, self.handle);
                trace::lagged(handle, || inner.hint_of(handle), &self.ring.hint, n);
            }
            _ => {}
        }
        Err(e)
    }

    /// One receive attempt that registers `waker` when nothing is there.
    fn poll_recv(&mut self, waker: &Waker) -> Poll<Result<i64, RecvError>> {
        let first = self.try_recv();
        let got = if first == Err(TryRecvError::Empty) {
            self.ring.waker.register(waker);
            // Relaxed: only the receiver writes `waiting`.
            if !self.ring.waiting.load(Ordering::Relaxed) {
                // Relaxed: both ordered by the fence below.
                self.ring.waiting.store(true, Ordering::Relaxed);
                self.feed.sleeping.fetch_add(1, Ordering::Relaxed);
            }
            // SeqCst fence: pairs with the fence in `deliver` (see "Waking").
            fence(Ordering::SeqCst);
            // Look again after registering.
            self.try_recv()
        } else {
            first
        };
        let out = match got {
            Ok(v) => Ok(v),
            Err(TryRecvError::Lagged(n)) => Err(RecvError::Lagged(n)),
            Err(TryRecvError::Closed) => Err(RecvError::Closed),
            Err(TryRecvError::Empty) => return Poll::Pending,
        };
        // Done waiting: clear `waiting` and drop the waker registered for
        // this receive (if a notify has not taken it), so nothing of it
        // stays behind in the ring.
        self.cancel_wait();
        Poll::Ready(out)
    }

    /// Withdraws a pending receive (its `Recv` was dropped, or a blocking
    /// receive gave up): clears `waiting` so notifies stop looking at the
    /// waker, and takes the waker out and drops it here (no lock is held).
    /// A notify racing with this may still take and wake it once.
    fn cancel_wait(&self) {
        // Relaxed: only the receiver writes `waiting`; a notify that still
        // sees it set only makes a spurious wake.
        if self.ring.waiting.load(Ordering::Relaxed) {
            self.stop_waiting();
            drop(self.ring.waker.take());
        }
    }

    /// Clears `waiting` (set) and takes this receiver out of its feed's
    /// count of sleeping receivers.
    fn stop_waiting(&self) {
        // Relaxed: only the receiver writes `waiting`; a notify that still
        // sees it (or the count) only makes a spurious wake (or scan).
        self.ring.waiting.store(false, Ordering::Relaxed);
        self.feed.sleeping.fetch_sub(1, Ordering::Relaxed);
    }

    pub(super) fn block(&mut self, deadline: park::Deadline) -> Result<i64, RecvTimeoutError> {
        // A value (or the end) that comes within the spin costs no park.
        let got = crate::sync::spin_until(&deadline, || match self.try_recv() {
            Err(TryRecvError::Empty) => None,
            other => Some(other),
        });
        match got {
            Some(Ok(v)) => return Ok(v),
            Some(Err(TryRecvError::Lagged(n))) => return Err(RecvTimeoutError::Lagged(n)),
            Some(Err(TryRecvError::Closed)) => return Err(RecvTimeoutError::Closed),
            Some(Err(TryRecvError::Empty)) | None => {}
        }
        let parker = park::Parker::new();
        let waker = parker.waker();
        loop {
            if let Poll::Ready(r) = self.poll_recv(&waker) {
                return r.map_err(Into::into);
            }
            if !parker.park_until(deadline) {
                self.cancel_wait();
                return Err(RecvTimeoutError::Timeout);
            }
        }
    }

    /// A future for the next value, for any executor; [`Recv::wait`] blocks
    /// the thread instead.
    ///
    /// # Cancel safety
    ///
    /// Dropping the future loses nothing: a value is taken from the buffer
    /// only in the poll that returns it.
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue};
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let mut sub = queue.subscribe(h, 8, "").unwrap();
    /// let q2 = queue.clone();
    /// let t = std::thread::spawn(move || q2.notify(h, 9));
    /// assert_eq!(futures::executor::block_on(sub.recv()), Ok(9));
    /// t.join().unwrap().unwrap();
    /// ```
    pub fn recv(&mut self) -> Recv<'_> {
        Recv { sub: self }
    }

    /// Unsubscribes now (the same as dropping it).
    pub fn unsubscribe(self) {
        drop(self);
    }

    fn detach(&mut self) {
        // Take our waker out first and drop it here, with no lock held: the
        // ring may be freed later on any thread, which must not run client
        // code (a waker's drop).
        drop(self.ring.waker.take());
        // Relaxed: only the receiver writes `waiting`.
        if self.ring.waiting.load(Ordering::Relaxed) {
            self.stop_waiting();
        }
        self.inner.unsubscribe(self.handle, &self.feed, &self.ring);
        // The queue's statistics count a listed ring's overwritten values
        // from its positions; an unlisted one's are added up here.
        crate::state::fanout::unlisted(&self.inner, &self.ring, &self.feed);
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.detach();
    }
}

/// Future of [`Subscription::recv`]: the next value, `Lagged(n)` or
/// `Closed`.
///
/// Dropping it while pending withdraws the wait: its waker is dropped and
/// later notifies do not wake it.
#[must_use = "a Recv does nothing unless polled or waited on"]
#[derive(Debug)]
pub struct Recv<'a> {
    sub: &'a mut Subscription,
}

impl Drop for Recv<'_> {
    fn drop(&mut self) {
        self.sub.cancel_wait();
    }
}

impl Recv<'_> {
    /// Blocks the thread until a value (or `Lagged` / `Closed`).
    pub fn wait(self) -> Result<i64, RecvError> {
        match self.sub.block(None) {
            Ok(v) => Ok(v),
            Err(RecvTimeoutError::Lagged(n)) => Err(RecvError::Lagged(n)),
            // Without a deadline `block` never times out.
            Err(RecvTimeoutError::Closed | RecvTimeoutError::Timeout) => Err(RecvError::Closed),
        }
    }
}

impl Future for Recv<'_> {
    type Output = Result<i64, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().sub.poll_recv(cx.waker())
    }
}

/// Items are `Ok(value)` or `Err(Lagged(n))` (values lost before the next
/// item); the stream ends after the handle is unregistered and the buffer is
/// drained.
#[cfg(feature = "stream")]
impl futures_core::Stream for Subscription {
    type Item = Result<i64, crate::error::Lagged>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match self.get_mut().poll_recv(cx.waker()) {
            Poll::Ready(Ok(v)) => Poll::Ready(Some(Ok(v))),
            Poll::Ready(Err(RecvError::Lagged(n))) => {
                Poll::Ready(Some(Err(crate::error::Lagged(n))))
            }
            Poll::Ready(Err(RecvError::Closed)) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }
}

#[cfg(feature = "stream")]
impl futures_core::FusedStream for Subscription {
    fn is_terminated(&self) -> bool {
        self.closed
    }
}

#[cfg(all(test, feature = "std", not(notification_queue_loom)))]
mod tests {
    use super::*;
    use crate::NotificationQueue;
    use core::task::Waker;
    use std::prelude::rust_2024::*;
    use std::time::Duration;

    fn noop_cx() -> core::task::Context<'static> {
        core::task::Context::from_waker(Waker::noop())
    }

    /// Cancelling a pending receive (dropping its `Recv`, or a blocking
    /// receive timing out) clears `waiting` and takes the waker out, so
    /// notify goes back to one plain load for this ring.
    #[test]
    fn cancelled_receives_leave_waiting_clear_and_no_waker() {
        let q = NotificationQueue::new(crate::Config::default());
        let h = q.register("h").unwrap();
        let mut sub = q.subscribe(h, 2, "").unwrap();
        {
            let mut fut = sub.recv();
            let poll = Pin::new(&mut fut).poll(&mut noop_cx());
            assert!(poll.is_pending());
        }
        assert!(!sub.ring.waiting.load(Ordering::Relaxed));
        assert!(sub.ring.waker.take().is_none());
        assert_eq!(
            sub.recv_timeout(Duration::from_millis(1)),
            Err(RecvTimeoutError::Timeout)
        );
        assert!(!sub.ring.waiting.load(Ordering::Relaxed));
        assert!(sub.ring.waker.take().is_none());
        // A receive that completes after being woken clears it too.
        let mut fut = sub.recv();
        assert!(Pin::new(&mut fut).poll(&mut noop_cx()).is_pending());
        q.notify(h, 1).unwrap();
        assert_eq!(Pin::new(&mut fut).poll(&mut noop_cx()), Poll::Ready(Ok(1)));
        drop(fut);
        assert!(!sub.ring.waiting.load(Ordering::Relaxed));
        assert!(sub.ring.waker.take().is_none());
    }
}
