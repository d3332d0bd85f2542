//! No operation that takes the queue's registry lock may run foreign code
//! under it. The foreign code here is the most dangerous kind: a deferred
//! destructor sitting in crossbeam-epoch's process-wide global queue, which
//! any thread's pin / flush may run, and which re-enters the same queue (it
//! drops a `Subscription` and an `OwnedHandle`, both of which take the
//! registry lock). If any operation flushes, collects or pins while holding
//! the lock, that destructor runs under it and the thread deadlocks on
//! itself.
//!
//! Each test plants such a destructor (`pin().defer(..)` + `flush()`, so it
//! is sealed into the global queue), then runs the operation, many times,
//! on a worker thread. The main thread waits for each iteration with a
//! generous `recv_timeout`: a deadlock detector, not synchronisation (a
//! healthy iteration takes microseconds).

// The planted destructors go through crossbeam-epoch's global collector,
// which only the `std` build uses (without `std` each queue has its own).
#![cfg(feature = "std")]

use notification_queue::{
    Config, Handle, NotificationQueue, OwnedHandle, QueueError, Subscription,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::mpsc;
use std::task::{Context, Waker};
use std::thread;
use std::time::Duration;

const ITERATIONS: usize = 300;
const DEADLOCK: Duration = Duration::from_secs(10);

fn queue() -> NotificationQueue {
    // Planted destructors subscribe to the shared handle and may wait a
    // while in the global queue: room for all of them.
    NotificationQueue::new(Config::default().max_subscribers_per_handle(1 << 16))
}

/// Drops a subscription and an owned handle of `queue` when dropped: both
/// re-enter the queue and take its registry lock.
struct Reenter {
    _sub: Subscription,
    _owned: OwnedHandle,
    _sub_on_shared: Option<Subscription>,
}

/// A re-entering destructor for `q` (built before any is planted, so that
/// building one never runs another).
fn reenter(q: &NotificationQueue, shared: Option<Handle>) -> Reenter {
    let owned = q.register_owned("reenter").unwrap();
    Reenter {
        _sub: q.subscribe(*owned, 1, "reenter").unwrap(),
        _owned: owned,
        _sub_on_shared: shared.map(|h| q.subscribe(h, 1, "reenter-shared").unwrap()),
    }
}

/// Plants `item`'s destructor in crossbeam-epoch's global queue.
fn plant(item: Reenter) {
    let guard = crossbeam_epoch::pin();
    guard.defer(move || drop(item));
    // Seal the thread's bag into the global queue, where any thread's next
    // collection (a later pin or flush) runs it.
    guard.flush();
}

/// Runs `op` `ITERATIONS` times on a worker thread, each right after
/// planting a re-entering destructor; fails if an iteration does not finish.
fn run(name: &str, op: impl Fn(&NotificationQueue, Handle, usize) + Send + 'static) {
    run_on(queue(), true, name, op);
}

/// `run` on a given queue; the planted destructors also drop a
/// subscription of the handle `op` gets if `subscribe_shared`.
fn run_on(
    q: NotificationQueue,
    subscribe_shared: bool,
    name: &str,
    op: impl Fn(&NotificationQueue, Handle, usize) + Send + 'static,
) {
    let shared = q.register("shared").unwrap();
    let on_shared = subscribe_shared.then_some(shared);
    let items: Vec<Reenter> = (0..ITERATIONS).map(|_| reenter(&q, on_shared)).collect();
    let (tx, rx) = mpsc::channel();
    let worker = {
        let q = q.clone();
        thread::spawn(move || {
            for (i, item) in items.into_iter().enumerate() {
                plant(item);
                op(&q, shared, i);
                if tx.send(i).is_err() {
                    return;
                }
            }
        })
    };
    for i in 0..ITERATIONS {
        match rx.recv_timeout(DEADLOCK) {
            Ok(got) => assert_eq!(got, i),
            Err(mpsc::RecvTimeoutError::Timeout) => {
                panic!("{name}: iteration {i} deadlocked (no progress for {DEADLOCK:?})")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                panic!("{name}: worker died at iteration {i}: {:?}", worker.join())
            }
        }
    }
    worker.join().unwrap();
}

#[test]
fn subscribe_and_unsubscribe_run_no_foreign_code_under_the_registry_lock() {
    run("subscribe/unsubscribe", |q, h, _| {
        let a = q.subscribe(h, 4, "a").unwrap();
        let b = q.subscribe(h, 4, "b").unwrap();
        a.unsubscribe();
        drop(b);
    });
}

#[test]
fn last_unsubscribe_runs_no_foreign_code_under_the_registry_lock() {
    run("last unsubscribe", |q, _, _| {
        let h = q.register("own").unwrap();
        let sub = q.subscribe(h, 4, "only").unwrap();
        drop(sub); // the last one: clears SUBSCRIBED too
        q.unregister(h).unwrap();
    });
}

#[test]
fn failed_subscribe_runs_no_foreign_code_under_the_registry_lock() {
    run("subscribe to a stale handle", |q, _, _| {
        let h = q.register("stale").unwrap();
        q.unregister(h).unwrap();
        assert_eq!(
            q.subscribe(h, 4, "stale").err(),
            Some(QueueError::StaleHandle)
        );
    });
    let q = NotificationQueue::new(Config::default().max_subscribers_per_handle(1));
    run_on(q, false, "subscribe over the limit", |q, h, i| {
        let keep = (i == 0).then(|| q.subscribe(h, 4, "first").unwrap());
        std::mem::forget(keep); // stays subscribed: the limit is reached
        assert!(matches!(
            q.subscribe(h, 4, "second"),
            Err(QueueError::SubscriberLimit { .. })
        ));
    });
}

#[test]
fn register_and_unregister_run_no_foreign_code_under_the_registry_lock() {
    run("register/unregister", |q, _, _| {
        let h = q.register("op").unwrap();
        // A pending wait, so unregister has a waiter list to retire.
        let mut wait = q.wait(h);
        let waker = Waker::noop();
        let mut cx = Context::from_waker(waker);
        assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
        drop(wait);
        q.unregister(h).unwrap();
        drop(q.register_owned("owned").unwrap());
    });
}

#[test]
fn dump_and_stats_run_no_foreign_code_under_the_registry_lock() {
    run("dump/stats", |q, _, _| {
        assert!(!q.dump().is_empty());
        assert!(q.stats().handles >= 1);
    });
}
