//! MemPipe readers can always wait, whatever other clients of the queue or
//! other readers of the pipe do: a reader sleeps in a slot of its own, not
//! in the writer handle's (limited) waiter list.

mod common;

use futures::executor::block_on;
use notification_queue::mempipe::{Limits, PipeError, Reader, Writer, pipe};
use notification_queue::{Config, NotificationQueue, QueueError, Wait};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

const WAITERS: usize = 2;

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default().max_waiters_per_handle(WAITERS))
}

fn limits() -> Limits {
    Limits::default().segment_size(16).max_readers(WAITERS)
}

/// A waker that counts its wakes.
#[derive(Default)]
struct Counter(AtomicUsize);

impl Wake for Counter {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Counter>, Waker) {
    let c = Arc::new(Counter::default());
    (c.clone(), Waker::from(c))
}

fn poll<F: Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    Pin::new(f).poll(&mut Context::from_waker(waker))
}

/// Another client fills the writer handle's waiter list to the limit: each
/// wait is polled once, so it holds its entry until dropped.
fn fill_handle_waiters<'q>(q: &'q NotificationQueue, w: &Writer) -> Vec<Wait<'q>> {
    let mut waits: Vec<Wait<'q>> = (0..WAITERS).map(|_| q.wait(w.handle())).collect();
    for wait in &mut waits {
        assert!(poll(wait, Waker::noop()).is_pending());
    }
    // The handle is full for everybody else now.
    let mut extra = q.wait(w.handle());
    assert!(matches!(
        poll(&mut extra, Waker::noop()),
        Poll::Ready(Err(QueueError::WaiterLimit { .. }))
    ));
    waits
}

#[test]
fn timed_read_waits_while_others_hold_every_handle_waiter() {
    let q = queue();
    let (mut w, f) = pipe(&q, "full", limits()).unwrap();
    let mut r = f.reader().unwrap();
    let waits = fill_handle_waiters(&q, &w);
    let mut buf = [0u8; 8];
    // The reader really waits (and times out), instead of failing at once.
    assert_eq!(
        common::read_timeout(&mut r, &mut buf, Duration::from_millis(20)),
        Err(PipeError::TimedOut)
    );
    // A blocking reader on another thread is woken by the write.
    let t = thread::spawn(move || {
        let mut buf = [0u8; 8];
        let n = common::read_timeout(&mut r, &mut buf, Duration::from_secs(30)).unwrap();
        (buf[..n].to_vec(), r)
    });
    while w.waiting_readers() == 0 {
        thread::yield_now();
    }
    w.write(b"data").unwrap();
    let (got, mut r) = t.join().unwrap();
    assert_eq!(got, b"data");
    // And by close.
    let t = thread::spawn(move || r.read(&mut [0u8; 8]));
    while w.waiting_readers() == 0 {
        thread::yield_now();
    }
    drop(waits);
    w.close().unwrap();
    assert_eq!(t.join().unwrap(), Ok(0));
}

#[test]
fn async_read_waits_while_others_hold_every_handle_waiter() {
    let q = queue();
    let (mut w, f) = pipe(&q, "full-async", limits()).unwrap();
    let mut r = f.reader().unwrap();
    let waits = fill_handle_waiters(&q, &w);
    let (wakes, waker) = counting();
    let mut buf = [0u8; 8];
    let mut fut = Box::pin(r.read_async(&mut buf));
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert_eq!(w.waiting_readers(), 1);
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0);
    w.write(b"hey").unwrap();
    assert_eq!(
        wakes.0.load(Ordering::SeqCst),
        1,
        "the write woke the reader"
    );
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(3))
    );
    drop(fut);
    assert_eq!(&buf[..3], b"hey");
    assert_eq!(w.waiting_readers(), 0);
    // The writer still notifies its handle for the outside waiters.
    drop(waits);
    let outside = q.wait(w.handle());
    w.write(b"!").unwrap();
    assert_eq!(block_on(outside).map(|n| n.arg), Ok(1));
    // Close wakes a sleeping async reader too.
    let mut fut = Box::pin(r.read_async(&mut buf));
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(1))
    );
    drop(fut);
    let mut fut = Box::pin(r.read_async(&mut buf));
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    w.close().unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 2, "close woke the reader");
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(0))
    );
}

/// Polls `r.read_async` once and forgets the pending future (its destructor
/// never runs).
fn leak_pending_read(r: &mut Reader) {
    let mut buf = [0u8; 4];
    let mut fut = Box::pin(r.read_async(&mut buf));
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(Waker::noop()))
            .is_pending()
    );
    std::mem::forget(fut);
}

#[test]
fn leaked_read_futures_do_not_stop_other_readers() {
    let q = queue();
    let (mut w, f) = pipe(&q, "leaky", limits()).unwrap();
    let mut leaky = f.reader().unwrap();
    let mut good = f.reader().unwrap();
    for _ in 0..WAITERS * 4 {
        leak_pending_read(&mut leaky);
    }
    // The other reader can still wait, blocking and async.
    let mut buf = [0u8; 4];
    assert_eq!(
        common::read_timeout(&mut good, &mut buf, Duration::from_millis(10)),
        Err(PipeError::TimedOut)
    );
    let (wakes, waker) = counting();
    let mut fut = Box::pin(good.read_async(&mut buf));
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    w.write(b"ok").unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&waker)),
        Poll::Ready(Ok(2))
    );
    drop(fut);
    // And so can the leaky one itself, and outside clients of the handle.
    assert_eq!(leaky.read(&mut buf), Ok(2));
    let mut waits: Vec<Wait<'_>> = (0..WAITERS).map(|_| q.wait(w.handle())).collect();
    for wait in &mut waits {
        assert!(poll(wait, Waker::noop()).is_pending());
    }
    drop(waits);
    let t = thread::spawn(move || {
        let mut buf = [0u8; 4];
        let n = leaky.read(&mut buf).unwrap();
        buf[..n].to_vec()
    });
    while w.waiting_readers() == 0 {
        thread::yield_now();
    }
    w.write(b"end").unwrap();
    assert_eq!(t.join().unwrap(), b"end");
}

#[test]
fn cancelled_read_leaves_no_sleeper_behind() {
    let q = queue();
    let (mut w, f) = pipe(&q, "cancel", limits()).unwrap();
    let mut r = f.reader().unwrap();
    let mut buf = [0u8; 4];
    let (wakes, waker) = counting();
    let mut fut = Box::pin(r.read_async(&mut buf));
    assert!(
        fut.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert_eq!(w.waiting_readers(), 1);
    drop(fut);
    assert_eq!(w.waiting_readers(), 0, "a dropped read disarms its slot");
    w.write(b"x").unwrap();
    assert_eq!(wakes.0.load(Ordering::SeqCst), 0, "nobody to wake");
    assert_eq!(r.read(&mut buf), Ok(1));
}
