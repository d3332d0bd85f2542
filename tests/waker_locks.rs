//! Wakers are the runtime's code: the crate never clones, wakes or drops
//! one while it holds a lock of its own (a waker that calls back into the
//! crate would deadlock, and a slow one would stall other clients). Every
//! future of the crate is driven here with a waker that counts the times it
//! runs under a crate lock (counted in debug builds with `std`).

#![cfg(feature = "std")]

mod common;

use notification_queue::mempipe::{Limits, PipeTable, pipe};
use notification_queue::{Config, KeyedQueue, NotificationQueue};
use std::future::Future;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};

#[test]
fn no_waker_code_runs_under_a_crate_lock() {
    let (k, violations) = common::lock_checking_waker();
    let mut cx = Context::from_waker(&k);
    let q = NotificationQueue::new(Config::default());

    // Waits: pending twice, woken, ready; notify_one; cancelled; closed.
    let h = q.register("waits").unwrap();
    {
        let mut a = pin!(q.wait(h));
        let mut b = pin!(q.wait(h));
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(a.as_mut().poll(&mut cx).is_pending());
        assert!(b.as_mut().poll(&mut cx).is_pending());
        q.notify_one(h, 1).unwrap();
        assert!(matches!(a.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
        q.notify(h, 2).unwrap();
        assert!(matches!(b.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    }
    {
        let mut c = pin!(q.wait(h));
        assert!(c.as_mut().poll(&mut cx).is_pending());
    } // cancelled
    let mut d = Box::pin(q.wait_owned(h));
    assert!(d.as_mut().poll(&mut cx).is_pending());

    // Subscriptions: a pending recv, delivered; a cancelled one.
    let mut sub = q.subscribe(h, 4, "sub").unwrap();
    {
        let mut r = pin!(sub.recv());
        assert!(r.as_mut().poll(&mut cx).is_pending());
        q.notify(h, 3).unwrap();
        assert!(matches!(r.as_mut().poll(&mut cx), Poll::Ready(Ok(3))));
    }
    {
        let mut r = pin!(sub.recv());
        assert!(r.as_mut().poll(&mut cx).is_pending());
    }
    q.unregister(h).unwrap(); // wakes `d` and the subscription with Closed
    assert!(d.as_mut().poll(&mut cx).is_ready()); // notified by 3, or closed
    drop(d);
    drop(sub);

    // Keyed waits.
    let keyed = KeyedQueue::<u64>::new(q.clone());
    keyed.register(7, "seven").unwrap();
    {
        let mut w = pin!(keyed.wait(&7).unwrap());
        assert!(w.as_mut().poll(&mut cx).is_pending());
        keyed.notify(&7, 1).unwrap();
        assert!(matches!(w.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    }
    keyed.unregister(&7).unwrap();

    // Pipes: a pending read woken by a write; a cancelled read; a writer
    // waiting for space, woken by a read; a cancelled write; close.
    let (mut w, f) = pipe(&q, "pipe", Limits::default().segment_size(16).max_bytes(32)).unwrap();
    let mut r = f.reader().unwrap();
    f.seal();
    let mut buf = [0u8; 8];
    {
        let mut read = pin!(r.read_async(&mut buf));
        assert!(read.as_mut().poll(&mut cx).is_pending());
        w.write(b"abc").unwrap();
        assert_eq!(read.as_mut().poll(&mut cx), Poll::Ready(Ok(3)));
    }
    {
        let mut read = pin!(r.read_async(&mut buf));
        assert!(read.as_mut().poll(&mut cx).is_pending());
    }
    assert!(w.write(&[0u8; 64]).is_ok()); // full
    {
        let mut write = pin!(w.write_async(b"more"));
        assert!(write.as_mut().poll(&mut cx).is_pending());
        let mut big = [0u8; 32];
        assert!(r.read(&mut big).unwrap() > 16); // passes a segment end
        assert!(matches!(write.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    }
    assert!(w.write(&[0u8; 64]).is_ok());
    {
        let mut write = pin!(w.write_async(b"more"));
        assert!(write.as_mut().poll(&mut cx).is_pending());
    }
    w.close().unwrap();

    // A waiting write leaked, then the writer shared: the shared writer's
    // own waits must not drop the leaked write's waker under its lock.
    let (mut w, f) = pipe(
        &q,
        "share",
        Limits::default().segment_size(16).max_bytes(32),
    )
    .unwrap();
    let _r2 = f.reader().unwrap();
    f.seal();
    assert!(w.write(&[0u8; 64]).is_ok()); // full
    {
        let mut write = Box::pin(w.write_async(b"leaked"));
        assert!(write.as_mut().poll(&mut cx).is_pending());
        std::mem::forget(write);
    }
    let shared = w.into_shared();
    assert_eq!(
        shared.write_timeout(b"x", std::time::Duration::ZERO),
        Err(notification_queue::mempipe::PipeError::TimedOut)
    );
    drop(shared);

    // Latent pipes: an open waiting for its writer; a cancelled one; one
    // failed by the producer's end.
    let table = PipeTable::new(&q, Limits::default());
    {
        let mut open = pin!(table.open_reader_async(&1u32));
        assert!(open.as_mut().poll(&mut cx).is_pending());
        let _w = table.create_writer(1).unwrap();
        assert!(matches!(open.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
    }
    {
        let mut open = pin!(table.open_reader_async(&2u32));
        assert!(open.as_mut().poll(&mut cx).is_pending());
    }
    {
        let mut open = pin!(table.open_reader_async(&3u32));
        assert!(open.as_mut().poll(&mut cx).is_pending());
        assert_eq!(table.close_all_leftover_writers(), 2);
        assert!(matches!(open.as_mut().poll(&mut cx), Poll::Ready(Err(_))));
    }

    drop(k);
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "waker code ran under a crate lock"
    );
}
