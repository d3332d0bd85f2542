//! Every public type and every future of the crate is `Send` (and `Sync`
//! where sharing makes sense), checked at compile time: a type or future
//! that stops being `Send` fails to build this test. A work-stealing
//! executor moves futures between threads, so a non-`Send` future could not
//! be spawned there at all.

use notification_queue::mempipe::{
    Limits, MergedReader, PipeError, Reader, ReaderFactory, SharedWriter, Writer, pipe,
};
use notification_queue::{
    Config, Handle, HandleInfo, Lagged, NotificationQueue, Notified, Overflow, OwnedHandle,
    QueueError, Recv, RecvError, RecvTimeoutError, Snapshot, Stats, SubscribeOptions,
    SubscriberInfo, Subscription, TryRecvError, Wait, WaiterInfo,
};

fn assert_send<T: Send>() {}
fn assert_sync<T: Sync>() {}
fn assert_send_sync<T: Send + Sync>() {}

/// For futures whose type cannot be named (`async fn`): checks the value.
fn is_send<T: Send>(_: &T) {}
fn is_send_sync<T: Send + Sync>(_: &T) {}

#[test]
fn queue_types_are_send_and_sync() {
    assert_send_sync::<NotificationQueue>();
    assert_send_sync::<Handle>();
    assert_send_sync::<OwnedHandle>();
    assert_send_sync::<Config>();
    assert_send_sync::<Stats>();
    assert_send_sync::<HandleInfo>();
    assert_send_sync::<WaiterInfo>();
    assert_send_sync::<QueueError>();
    assert_send_sync::<Snapshot>();
    assert_send_sync::<Notified>();
    assert_send_sync::<Wait<'static>>();
    assert_send_sync::<Subscription>();
    assert_send_sync::<Recv<'static>>();
    assert_send_sync::<SubscribeOptions>();
    assert_send_sync::<SubscriberInfo>();
    assert_send_sync::<Overflow>();
    assert_send_sync::<Lagged>();
    assert_send_sync::<RecvError>();
    assert_send_sync::<TryRecvError>();
    assert_send_sync::<RecvTimeoutError>();
}

/// The keyed layer (`std` only).
#[cfg(feature = "std")]
#[test]
fn keyed_types_and_futures_are_send_and_sync() {
    use notification_queue::KeyedQueue;
    assert_send_sync::<KeyedQueue<u64>>();
    assert_send_sync::<KeyedQueue<i64>>();
    assert_send_sync::<KeyedQueue<String>>();
    let q = NotificationQueue::new(Config::default());
    let keyed = KeyedQueue::<u64>::new(q.clone());
    keyed.register(1, "k").unwrap();
    let wait = keyed.wait(&1).unwrap();
    is_send_sync(&wait);
}

#[test]
fn mempipe_types_are_send_and_sync() {
    assert_send_sync::<Limits>();
    assert_send_sync::<PipeError>();
    assert_send_sync::<Writer>();
    assert_send_sync::<Reader>();
    assert_send_sync::<ReaderFactory>();
    assert_send_sync::<SharedWriter>();
    assert_send_sync::<MergedReader>();
    // Spelled out once more, so a failure names the trait.
    assert_send::<Reader>();
    assert_sync::<Reader>();
}

#[test]
fn queue_futures_are_send() {
    let q = NotificationQueue::new(Config::default());
    let h = q.register("h").unwrap();
    let wait = q.wait(h);
    is_send_sync(&wait);
    let mut sub = q.subscribe_with(h, SubscribeOptions::new(4)).unwrap();
    let recv = sub.recv();
    is_send_sync(&recv);
    drop(recv);
    drop(wait);
}

#[test]
fn mempipe_futures_are_send() {
    let q = NotificationQueue::new(Config::default());
    let (mut w, f) = pipe(&q, "p", Limits::default()).unwrap();
    let mut r = f.reader().unwrap();
    let mut buf = [0u8; 4];
    {
        let fut = r.read_async(&mut buf);
        is_send(&fut);
    }
    {
        let fut = embedded_io_async::Read::read(&mut r, &mut buf);
        is_send(&fut);
    }
    {
        let fut = embedded_io_async::Read::read_exact(&mut r, &mut buf);
        is_send(&fut);
    }
    {
        let fut = embedded_io_async::Write::write(&mut w, b"x");
        is_send(&fut);
    }
    {
        let fut = embedded_io_async::Write::flush(&mut w);
        is_send(&fut);
    }
    {
        let fut = embedded_io_async::Write::write_all(&mut w, b"x");
        is_send(&fut);
    }
}

/// The futures really run on another thread (what a work-stealing executor
/// does): a read started here completes there after the write.
#[test]
fn read_async_future_moves_between_threads() {
    let q = NotificationQueue::new(Config::default());
    let (mut w, f) = pipe(&q, "moved", Limits::default()).unwrap();
    let mut r = f.reader().unwrap();
    let t = std::thread::spawn(move || {
        let mut buf = [0u8; 8];
        let fut = r.read_async(&mut buf);
        let n = futures::executor::block_on(fut).unwrap();
        buf[..n].to_vec()
    });
    w.write(b"moved").unwrap();
    assert_eq!(t.join().unwrap(), b"moved");
}
