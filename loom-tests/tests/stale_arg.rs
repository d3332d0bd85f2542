//! A stale notify's argument never reaches the slot's next owner.
//!
//! notify checks the generation, then stores its argument, then CASes the
//! state word. A notifier that passed the check before an unregister can
//! store its argument after the slot was re-registered and notified by its
//! new owner; its CAS fails (`StaleHandle`). The argument cells are chosen
//! by generation, so the stray store lands in the old generation's cell and
//! the new owner's waiter still reads its own notify's argument. (Keyed
//! re-registration, same key and same slot, makes this interleaving
//! ordinary: a worker notifying by key races the key's restart.)
#![cfg(notification_queue_loom)]

use loom::future::block_on;
use loom::thread;
use notification_queue::{Config, NotificationQueue, QueueError};

/// A notify with a stale handle, racing unregister + re-register of its
/// slot and a notify of the new owner, never changes the argument the new
/// owner's waiter sees.
#[test]
fn stale_notify_arg_vs_new_owner() {
    loom::model(|| {
        let q = NotificationQueue::new(Config::default().max_handles(1));
        let old = q.register("old").unwrap();
        let q2 = q.clone();
        let stale = thread::spawn(move || q2.notify(old, 9));
        q.unregister(old).unwrap();
        let new = q.register("new").unwrap();
        let snap = q.snapshot(new).unwrap();
        q.notify(new, 5).unwrap();
        let got = block_on(q.wait_after(snap)).unwrap();
        let r = stale.join().unwrap();
        assert!(matches!(r, Ok(0) | Err(QueueError::StaleHandle)));
        assert_eq!(got.arg, 5, "the stale notify's argument reached the new owner");
    });
}
