//! A waker whose clone panics (the runtime's code failing inside a poll):
//! the panic reaches the poller, and the crate is left as if the poll had
//! not happened: nothing registered, nothing leaked, every lock usable.

#![cfg(feature = "std")]

use notification_queue::mempipe::{Limits, PipeTable, pipe};
use notification_queue::{Config, NotificationQueue};
use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, RawWaker, RawWakerVTable, Wake, Waker};

#[derive(Default)]
struct Woken(AtomicUsize);

impl Wake for Woken {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn panicking_clone_waker() -> Waker {
    fn clone(_: *const ()) -> RawWaker {
        panic!("waker clone panics");
    }
    fn other(_: *const ()) {}
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, other, other, other);
    // SAFETY: the functions own nothing; `clone` panics, which the
    // `RawWaker` contract allows (it is the caller's panic to handle).
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

fn poll_panics<F: Future>(f: std::pin::Pin<&mut F>) -> bool {
    let k = panicking_clone_waker();
    let mut cx = Context::from_waker(&k);
    catch_unwind(AssertUnwindSafe(|| {
        let _ = f.poll(&mut cx);
    }))
    .is_err()
}

#[test]
fn a_waker_clone_that_panics_leaves_nothing_behind() {
    let q = NotificationQueue::new(Config::default().max_waiters_per_handle(2));
    let h = q.register("h").unwrap();
    for _ in 0..4 {
        let mut w = pin!(q.wait(h));
        assert!(poll_panics(w.as_mut()));
    }
    assert!(q.waiters(h).unwrap().is_empty(), "a wait stayed registered");
    assert_eq!(q.notify(h, 1), Ok(0));
    // The entries those waits used still sleep and wake normally (no cell
    // left locked, which would wake every later registration at once).
    for _ in 0..4 {
        let woken = Arc::new(Woken::default());
        let k = Waker::from(woken.clone());
        let mut w = pin!(q.wait(h));
        assert!(w.as_mut().poll(&mut Context::from_waker(&k)).is_pending());
        assert_eq!(woken.0.load(Ordering::SeqCst), 0, "woken before any notify");
        assert_eq!(q.notify(h, 1), Ok(1));
        assert_eq!(woken.0.load(Ordering::SeqCst), 1);
        assert!(w.as_mut().poll(&mut Context::from_waker(&k)).is_ready());
    }
    let mut sub = q.subscribe(h, 4, "s").unwrap();
    for _ in 0..4 {
        let mut r = pin!(sub.recv());
        let _ = poll_panics(r.as_mut());
    }
    assert_eq!(q.notify(h, 2), Ok(1));
    assert_eq!(sub.try_recv(), Ok(2));

    let q = NotificationQueue::new(Config::default());
    let (mut wr, f) = pipe(&q, "p", Limits::default().segment_size(16).max_bytes(32)).unwrap();
    let mut r = f.reader().unwrap();
    f.seal();
    let mut buf = [0u8; 8];
    for _ in 0..4 {
        let mut read = pin!(r.read_async(&mut buf));
        let _ = poll_panics(read.as_mut());
    }
    assert_eq!(wr.waiting_readers(), 0);
    wr.write(b"ok").unwrap();
    assert_eq!(r.try_read(&mut buf), Ok(Some(2)));

    let table = PipeTable::new(&q, Limits::default());
    for _ in 0..4 {
        let mut open = pin!(table.open_reader_async(&1u8));
        let _ = poll_panics(open.as_mut());
    }
    let _w = table.create_writer(1).unwrap();
    assert!(table.try_open_reader(&1).unwrap().is_some());
}
