//! Loom models of the queue core. Each test states the property it checks.
#![cfg(notification_queue_loom)]

use loom::future::block_on;
use loom::thread;
use notification_queue::{Config, NotificationQueue, QueueError};

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

/// No lost wakeup: a notify racing with the waiter's registration always
/// completes a wait taken from a snapshot before the notify.
#[test]
fn notify_vs_wait_registration() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let snap = q.snapshot(h).unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            q2.notify(h, 5).unwrap();
        });
        let got = block_on(q.wait_after(snap)).unwrap();
        assert_eq!(got.arg, 5);
        assert_eq!(got.coalesced, 1);
        t.join().unwrap();
    });
}

/// Unregister racing with a waiter's registration always ends the wait
/// with `Closed`, and the handle is stale afterwards.
#[test]
fn unregister_vs_wait() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let snap = q.snapshot(h).unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            q2.unregister(h).unwrap();
        });
        assert_eq!(block_on(q.wait_after(snap)), Err(QueueError::Closed));
        t.join().unwrap();
        assert_eq!(q.notify(h, 1), Err(QueueError::StaleHandle));
    });
}

fn noop_waker() -> std::task::Waker {
    std::task::Waker::noop().clone()
}

fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> std::task::Poll<F::Output> {
    let waker = noop_waker();
    let mut cx = std::task::Context::from_waker(&waker);
    std::pin::Pin::new(f).poll(&mut cx)
}

/// Cancellation: dropping a pending wait while a notify scans the list
/// leaves no waiter entry behind and never wakes a freed waker.
#[test]
fn wait_cancel_vs_notify() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let q2 = q.clone();
        let waiter = thread::spawn(move || {
            let mut w = q2.wait(h);
            let first = poll_once(&mut w);
            drop(w);
            first.is_ready()
        });
        let woken = q.notify(h, 1).unwrap();
        let finished_early = waiter.join().unwrap();
        assert!(woken <= 1);
        assert!(!(finished_early && woken == 1));
        assert!(q.waiters(h).unwrap().is_empty());
        assert_eq!(q.stats().waiters, 0);
    });
}

/// Unregister racing with both a waiter and a notifier: the waiter ends with
/// a notification or `Closed` (never hangs), the notifier either lands or
/// gets `StaleHandle`, and the handle is stale afterwards.
#[test]
fn unregister_vs_wait_vs_notify() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let snap = q.snapshot(h).unwrap();
        let (q2, q3) = (q.clone(), q.clone());
        let notifier = thread::spawn(move || q2.notify(h, 3));
        let unregister = thread::spawn(move || q3.unregister(h));
        let got = block_on(q.wait_after(snap));
        let notified = notifier.join().unwrap();
        unregister.join().unwrap().unwrap();
        match got {
            Ok(n) => {
                assert_eq!(n.arg, 3);
                assert!(notified.is_ok());
            }
            Err(e) => assert_eq!(e, QueueError::Closed),
        }
        assert!(matches!(notified, Ok(_) | Err(QueueError::StaleHandle)));
        assert_eq!(q.notify(h, 1), Err(QueueError::StaleHandle));
    });
}

/// ABA: a stale notify racing with unregister + re-register of the same slot
/// never bumps the new owner's sequence nor wakes its waiter.
#[test]
fn slot_reuse_vs_stale_handle() {
    loom::model(|| {
        let q = NotificationQueue::new(Config::default().max_handles(1));
        let old = q.register("old").unwrap();
        let q2 = q.clone();
        let stale = thread::spawn(move || q2.notify(old, 9));
        q.unregister(old).unwrap();
        let new = q.register("new").unwrap();
        assert_eq!(new.index(), old.index());
        let snap = q.snapshot(new).unwrap();
        let r = stale.join().unwrap();
        assert!(matches!(r, Ok(0) | Err(QueueError::StaleHandle)));
        // Nothing reached the new generation.
        assert_eq!(q.snapshot(new).unwrap(), snap);
        assert_eq!(snap.sequence(), 0);
    });
}

/// Epoch reclamation: a waiter list retired by unregister while a notifier
/// scans it and the next generation installs its own list is only freed
/// after every reader is done (loom + crossbeam_loom check the accesses).
#[test]
fn waiter_list_retire_vs_notify_scan() {
    loom::model(|| {
        let q = NotificationQueue::new(Config::default().max_handles(1));
        let old = q.register("old").unwrap();
        let mut w = q.wait(old);
        assert!(poll_once(&mut w).is_pending());
        let q2 = q.clone();
        let notifier = thread::spawn(move || q2.notify(old, 1));
        q.unregister(old).unwrap();
        let new = q.register("new").unwrap();
        let mut w2 = q.wait(new);
        assert!(poll_once(&mut w2).is_pending());
        let r = notifier.join().unwrap();
        assert!(matches!(r, Ok(_) | Err(QueueError::StaleHandle)));
        assert!(poll_once(&mut w).is_ready());
        drop(w);
        assert_eq!(q.waiters(new).unwrap().len(), 1);
        drop(w2);
        assert!(q.waiters(new).unwrap().is_empty());
    });
}

/// Counts its wakes (plain std atomics: only read after the threads joined).
#[derive(Default)]
struct Counting(std::sync::atomic::AtomicUsize);

impl std::task::Wake for Counting {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

fn poll_with<F: std::future::Future + Unpin>(
    f: &mut F,
    waker: &std::task::Waker,
) -> std::task::Poll<F::Output> {
    let mut cx = std::task::Context::from_waker(waker);
    std::pin::Pin::new(f).poll(&mut cx)
}

/// Re-registration with another waker (the task moved) racing with the
/// notify that takes the first waker out of the entry: the poll either sees
/// the notify, or the newer waker is woken (by the notifier, or by the poll
/// itself when it found the notifier holding the entry's waker cell).
#[test]
fn notify_vs_reregistration_with_another_waker() {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;
    use std::task::{Poll, Waker};
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut w = q.wait(h);
        let first = Arc::new(Counting::default());
        assert!(poll_with(&mut w, &Waker::from(first.clone())).is_pending());
        let q2 = q.clone();
        let t = thread::spawn(move || {
            q2.notify(h, 7).unwrap();
        });
        let second = Arc::new(Counting::default());
        let polled = poll_with(&mut w, &Waker::from(second.clone()));
        t.join().unwrap();
        match polled {
            Poll::Ready(r) => assert_eq!(r.unwrap().arg, 7),
            Poll::Pending => {
                assert!(second.0.load(SeqCst) >= 1, "the newer waker was not woken");
                let again = poll_with(&mut w, Waker::noop());
                assert!(matches!(again, Poll::Ready(Ok(n)) if n.arg == 7));
            }
        }
        drop(w);
        assert_eq!(q.stats().waiters, 0);
    });
}

/// Two notifies racing for one entry's waker cell while the owner frees
/// the entry: every notify lands, nothing is left claimed, and a later wait
/// claims the entry again.
#[test]
fn two_notifies_vs_wait_completion() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut w = q.wait(h);
        assert!(poll_once(&mut w).is_pending());
        let (q2, q3) = (q.clone(), q.clone());
        let a = thread::spawn(move || q2.notify(h, 1).unwrap());
        let b = thread::spawn(move || q3.notify(h, 2).unwrap());
        let got = block_on(&mut w);
        drop(w);
        a.join().unwrap();
        b.join().unwrap();
        assert!(got.is_ok());
        assert_eq!(q.stats().waiters, 0);
        let mut next = q.wait(h);
        assert!(poll_once(&mut next).is_pending());
        assert_eq!(q.stats().waiters, 1);
    });
}
