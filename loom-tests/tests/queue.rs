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
