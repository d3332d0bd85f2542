//! Loom models of a handle's generations: stale waits racing a slot's next
//! owner, and a notify racing the unregister of its handle.
#![cfg(notification_queue_loom)]

use loom::thread;
use notification_queue::{Config, NotificationQueue, QueueError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

#[derive(Default)]
struct Count(AtomicUsize);
impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll_once<F: std::future::Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    let mut cx = Context::from_waker(waker);
    std::pin::Pin::new(f).poll(&mut cx)
}

/// A wait of an old generation that passed its generation check, racing
/// unregister + re-register of its slot and a waiter of the new owner,
/// never replaces or touches the new owner's waiter list: the new owner's
/// notify finds and wakes its waiter, and the stale wait ends `Closed`.
#[test]
fn stale_wait_vs_unregister_reregister_and_new_waiter() {
    loom::model(|| {
        let q = NotificationQueue::new(Config::default().max_handles(1));
        let old = q.register("old").unwrap();
        let snap = q.snapshot(old).unwrap();
        let q2 = q.clone();
        // Blocks until its outcome: a stale wait must never sleep through
        // its own close.
        let stale = thread::spawn(move || loom::future::block_on(q2.wait_after(snap)));
        q.unregister(old).unwrap();
        let new = q.register("new").unwrap();
        let count = Arc::new(Count::default());
        let waker = Waker::from(count.clone());
        let mut fresh = q.wait(new);
        assert!(poll_once(&mut fresh, &waker).is_pending());
        assert_eq!(q.notify(new, 5), Ok(1), "the new owner's waiter was lost");
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        assert!(matches!(poll_once(&mut fresh, &waker), Poll::Ready(Ok(n)) if n.arg == 5));
        assert_eq!(stale.join().unwrap(), Err(QueueError::Closed));
    });
}

/// A notify racing the unregister of its handle is either rejected as
/// stale, or reported (with its argument) to a wait from an earlier
/// snapshot that is first polled after the close: never lost to timing.
#[test]
fn notify_vs_unregister_is_reported_before_closed() {
    loom::model(|| {
        let q = NotificationQueue::new(Config::default());
        let h = q.register("h").unwrap();
        let snap = q.snapshot(h).unwrap();
        let q2 = q.clone();
        let notifier = thread::spawn(move || q2.notify(h, 7));
        q.unregister(h).unwrap();
        let notified = notifier.join().unwrap();
        let got = loom::future::block_on(q.wait_after(snap));
        match notified {
            Ok(_) => assert!(matches!(got, Ok(n) if n.arg == 7 && n.coalesced == 1)),
            Err(e) => {
                assert_eq!(e, QueueError::StaleHandle);
                assert_eq!(got, Err(QueueError::Closed));
            }
        }
    });
}
