//! Loom models of `notify_one`: no lost wakeup against registration, and a
//! wake is never lost to a cancelled wait.
#![cfg(notification_queue_loom)]

use loom::future::block_on;
use loom::thread;
use notification_queue::{Config, NotificationQueue, QueueError};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

/// Counts its wakes (plain std atomics: only read after the threads joined).
#[derive(Default)]
struct Counting(AtomicUsize);

impl Wake for Counting {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn poll_with<F: std::future::Future + Unpin>(f: &mut F, waker: &Waker) -> Poll<F::Output> {
    let mut cx = Context::from_waker(waker);
    std::pin::Pin::new(f).poll(&mut cx)
}

/// No lost wakeup: a notify_one racing with a wait's registration either
/// completes the wait or leaves the permit the wait takes.
#[test]
fn notify_one_vs_registration() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            q2.notify_one(h, 5).unwrap();
        });
        let got = block_on(q.wait(h)).unwrap();
        assert_eq!(got.arg, 5);
        t.join().unwrap();
        // The one wake was used: nothing is left over.
        let mut next = q.wait(h);
        assert!(poll_with(&mut next, Waker::noop()).is_pending());
    });
}

/// As above, but an earlier wait left `WAITERS` set, so notify_one scans
/// the list: a wait that registers between that scan and the permit must
/// still complete (the claim count check).
#[test]
fn notify_one_vs_registration_after_a_cancelled_wait() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut gone = q.wait(h);
        assert!(poll_with(&mut gone, Waker::noop()).is_pending());
        drop(gone);
        let q2 = q.clone();
        let t = thread::spawn(move || {
            q2.notify_one(h, 5).unwrap();
        });
        let got = block_on(q.wait(h)).unwrap();
        assert_eq!(got.arg, 5);
        t.join().unwrap();
        let mut next = q.wait(h);
        assert!(poll_with(&mut next, Waker::noop()).is_pending());
    });
}

/// A notify_one racing with the cancellation of the oldest wait: the second
/// wait is woken and completes with the argument, whatever the
/// interleaving (the notifier moves on, or the cancelled wait hands the
/// wake on), and no permit is left behind.
#[test]
fn notify_one_vs_cancel_of_the_chosen_wait() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut first = q.wait_owned(h);
        let mut second = q.wait(h);
        let count = Arc::new(Counting::default());
        let waker = Waker::from(count.clone());
        assert!(poll_with(&mut first, Waker::noop()).is_pending());
        assert!(poll_with(&mut second, &waker).is_pending());
        let canceller = thread::spawn(move || drop(first));
        assert!(q.notify_one(h, 7).unwrap() <= 1);
        canceller.join().unwrap();
        assert_eq!(count.0.load(Ordering::SeqCst), 1, "the second wait was woken");
        match poll_with(&mut second, &waker) {
            Poll::Ready(r) => assert_eq!(r.unwrap().arg, 7),
            Poll::Pending => panic!("the wake was lost"),
        }
        let mut next = q.wait(h);
        assert!(poll_with(&mut next, Waker::noop()).is_pending(), "no permit");
    });
}

/// The same race with no other wait: the wake becomes the permit.
#[test]
fn notify_one_vs_cancel_of_the_only_wait() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut only = q.wait_owned(h);
        assert!(poll_with(&mut only, Waker::noop()).is_pending());
        let canceller = thread::spawn(move || drop(only));
        q.notify_one(h, 3).unwrap();
        canceller.join().unwrap();
        let mut next = q.wait(h);
        match poll_with(&mut next, Waker::noop()) {
            Poll::Ready(r) => assert_eq!(r.unwrap().arg, 3),
            Poll::Pending => panic!("the wake was lost"),
        }
    });
}

/// A wait that a plain notify completed is not waiting any more: a
/// `notify_one` that comes after that notify never spends its wake on it, while a wait that registers concurrently
/// gets it (or the permit it leaves) without the completed wait having to
/// be polled again first.
#[test]
fn notify_one_passes_by_a_wait_completed_by_notify() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut a = q.wait(h);
        assert!(poll_with(&mut a, Waker::noop()).is_pending());
        q.notify(h, 1).unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            q2.notify_one(h, 2).unwrap();
        });
        let mut b = q.wait(h);
        let early = poll_with(&mut b, Waker::noop());
        t.join().unwrap();
        // The notify_one's wake reached `b`, or waits as the permit.
        let b_arg = match early {
            Poll::Ready(r) => r.unwrap().arg,
            Poll::Pending => match poll_with(&mut b, Waker::noop()) {
                Poll::Ready(r) => r.unwrap().arg,
                Poll::Pending => {
                    let mut c = q.wait(h);
                    match poll_with(&mut c, Waker::noop()) {
                        Poll::Ready(r) => r.unwrap().arg,
                        Poll::Pending => panic!("the notify_one's wake was lost"),
                    }
                }
            },
        };
        assert_eq!(b_arg, 2);
        // Checked last: polling `a` first would hand on a wake wrongly
        // spent on it, hiding the fault. `a` was completed by the notify,
        // before the notify_one.
        match poll_with(&mut a, Waker::noop()) {
            Poll::Ready(Ok(n)) => assert_eq!(n.arg, 1),
            other => panic!("a: {other:?}"),
        }
    });
}

/// Re-registration with another waker racing with the `notify_one` that
/// completes the wait: the poll either reports it, or the newer waker is
/// woken and the next poll reports it.
#[test]
fn notify_one_vs_reregistration_with_another_waker() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut w = q.wait(h);
        let first = Arc::new(Counting::default());
        assert!(poll_with(&mut w, &Waker::from(first.clone())).is_pending());
        let q2 = q.clone();
        let t = thread::spawn(move || {
            q2.notify_one(h, 7).unwrap();
        });
        let second = Arc::new(Counting::default());
        let polled = poll_with(&mut w, &Waker::from(second.clone()));
        t.join().unwrap();
        match polled {
            Poll::Ready(r) => assert_eq!(r.unwrap().arg, 7),
            Poll::Pending => {
                assert!(
                    second.0.load(Ordering::SeqCst) >= 1,
                    "the newer waker was not woken"
                );
                let again = poll_with(&mut w, Waker::noop());
                assert!(matches!(again, Poll::Ready(Ok(n)) if n.arg == 7));
            }
        }
    });
}

/// A plain notify frees the entries of the waits it completes, while a new
/// wait claims an entry and the completed wait is dropped: the drop must
/// not touch the entry the new wait may have claimed in its place (its
/// claim's ticket no longer matches), so the new wait is still there for a
/// `notify_one`, which completes it rather than leaving a permit.
#[test]
fn plain_notify_frees_completed_entries_only() {
    loom::model(|| {
        // Room for one waiter: the new wait can only take the entry the
        // notify freed.
        let q = NotificationQueue::new(Config::default().max_waiters_per_handle(1));
        let h = q.register("h").unwrap();
        let mut done = q.wait(h);
        assert!(poll_with(&mut done, Waker::noop()).is_pending());
        let q2 = q.clone();
        let t = thread::spawn(move || {
            q2.notify(h, 1).unwrap();
        });
        let mut next = q.wait(h);
        let first = poll_with(&mut next, Waker::noop());
        drop(done);
        t.join().unwrap();
        match first {
            // Its snapshot was from before the notify.
            Poll::Ready(Ok(got)) => return assert_eq!(got.arg, 1),
            // The notify had not freed the only entry yet.
            Poll::Ready(Err(e)) => return assert!(matches!(e, QueueError::WaiterLimit { .. })),
            Poll::Pending => {}
        }
        if next.snapshot() == q.snapshot(h) {
            // Waiting for the next notify, not polled again: only its
            // entry can tell `notify_one` about it.
            assert_eq!(q.notify_one(h, 7).unwrap(), 1);
            let got = poll_with(&mut next, Waker::noop());
            assert!(matches!(got, Poll::Ready(Ok(n)) if n.arg == 7), "{got:?}");
        } else {
            let got = poll_with(&mut next, Waker::noop());
            assert!(matches!(got, Poll::Ready(Ok(n)) if n.arg == 1), "{got:?}");
        }
    });
}

/// A wait completed by a plain notify (which freed its entry) and polled
/// again with another waker: the poll reports the notify, and nothing of
/// the wait is left (the handle has no pending waiter).
#[test]
fn repoll_after_the_notify_freed_the_entry() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let counting = Arc::new(Counting::default());
        let mut w = q.wait(h);
        assert!(poll_with(&mut w, Waker::noop()).is_pending());
        let q2 = q.clone();
        let t = thread::spawn(move || {
            q2.notify(h, 3).unwrap();
        });
        let waker = Waker::from(counting.clone());
        let got = loop {
            match poll_with(&mut w, &waker) {
                Poll::Ready(got) => break got,
                Poll::Pending => loom::thread::yield_now(),
            }
        };
        assert_eq!(got.unwrap().arg, 3);
        t.join().unwrap();
        drop(w);
        assert_eq!(q.waiters(h).unwrap().len(), 0);
    });
}

/// The wait a plain notify completed (and whose entry it freed) is dropped
/// while a new wait claims an entry: the drop must not touch the entry the
/// new wait may have taken in its place (the old claim's ticket no longer
/// matches it), so the new wait is still there for a `notify_one`.
#[test]
fn drop_of_a_freed_wait_vs_a_new_claim() {
    loom::model(|| {
        let q = NotificationQueue::new(Config::default().max_waiters_per_handle(1));
        let h = q.register("h").unwrap();
        let mut done = q.wait_owned(h);
        assert!(poll_with(&mut done, Waker::noop()).is_pending());
        assert_eq!(q.notify(h, 1).unwrap(), 1);
        let t = thread::spawn(move || drop(done));
        let mut next = q.wait(h);
        assert!(poll_with(&mut next, Waker::noop()).is_pending());
        t.join().unwrap();
        assert_eq!(q.notify_one(h, 7).unwrap(), 1);
        let got = poll_with(&mut next, Waker::noop());
        assert!(matches!(got, Poll::Ready(Ok(n)) if n.arg == 7), "{got:?}");
    });
}
