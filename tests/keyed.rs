//! The keyed layer's promises: typed errors for duplicate, unknown and
//! unregistered keys; a key registered again is a new generation; waits and
//! looked-up handles of the old generation never see the new one; no map
//! lock is held while client code (wakers) runs; and the races of register,
//! unregister, notify and wait on one key.

// The keyed layer needs `std` (it is built on a concurrent map).
#![cfg(feature = "std")]

mod common;

use common::{CountingWaker, poll_once};
use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError, TryRecvError};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex};
use std::task::{Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

fn keyed() -> KeyedQueue<u64> {
    KeyedQueue::new(NotificationQueue::new(Config::default()))
}

/// Runs `a` and `b` on two threads released together by a barrier and
/// returns both results.
fn race<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let barrier = Barrier::new(2);
    thread::scope(|s| {
        let ta = s.spawn(|| {
            barrier.wait();
            a()
        });
        let tb = s.spawn(|| {
            barrier.wait();
            b()
        });
        (ta.join().unwrap(), tb.join().unwrap())
    })
}

#[test]
fn life_of_a_key_with_typed_errors_at_every_step() {
    let k = keyed();
    // Unknown key: every operation by key says so.
    assert_eq!(k.handle(&1), Err(QueueError::UnknownKey));
    assert_eq!(k.notify(&1, 0), Err(QueueError::UnknownKey));
    assert_eq!(k.snapshot(&1), Err(QueueError::UnknownKey));
    assert!(matches!(k.wait(&1), Err(QueueError::UnknownKey)));
    assert!(matches!(
        k.subscribe(&1, 4, "s"),
        Err(QueueError::UnknownKey)
    ));
    assert_eq!(k.waiters(&1), Err(QueueError::UnknownKey));
    assert_eq!(k.unregister(&1), Err(QueueError::UnknownKey));
    assert!(!k.contains_key(&1));

    let h = k.register(1, "one").unwrap();
    assert_eq!(k.register(1, "dup"), Err(QueueError::DuplicateKey));
    assert_eq!(k.handle(&1), Ok(h), "a duplicate keeps the first handle");
    assert!(k.contains_key(&1));
    assert_eq!((k.len(), k.keys()), (1, vec![1]));
    assert_eq!(k.entries(), vec![(1, h)]);

    let snap = k.snapshot(&1).unwrap();
    assert_eq!(k.notify(&1, 10), Ok(0));
    let got = k.wait_after(snap).wait().unwrap();
    assert_eq!((got.arg, got.coalesced), (10, 1));
    // The looked-up handle is the queue's fast path, on the same generation.
    assert_eq!(k.queue().notify(h, 11), Ok(0));
    assert_eq!(k.snapshot(&1).unwrap().sequence(), snap.sequence() + 2);

    k.unregister(&1).unwrap();
    assert_eq!(k.unregister(&1), Err(QueueError::UnknownKey), "double");
    assert_eq!(k.notify(&1, 0), Err(QueueError::UnknownKey));
    assert_eq!(k.queue().notify(h, 0), Err(QueueError::StaleHandle));
    assert!(k.is_empty());
    assert_eq!(k.queue().stats().handles, 0);

    let h2 = k.register(1, "one, again").unwrap();
    assert_ne!(h2, h, "a new generation");
    assert_eq!(k.queue().notify(h, 0), Err(QueueError::StaleHandle));
    assert_eq!(k.queue().snapshot(h), Err(QueueError::StaleHandle));
    assert_eq!(k.queue().wait(h).wait(), Err(QueueError::StaleHandle));
    assert_eq!(k.notify(&1, 0), Ok(0));
}

#[test]
fn handle_limit_leaves_the_key_free() {
    let k = KeyedQueue::new(NotificationQueue::new(Config::default().max_handles(1)));
    k.register(1u64, "one").unwrap();
    assert_eq!(
        k.register(2, "two"),
        Err(QueueError::HandleLimit { limit: 1 })
    );
    assert!(!k.contains_key(&2));
    assert_eq!(k.keys(), vec![1]);
    k.unregister(&1).unwrap();
    k.register(2, "two").unwrap();
    assert_eq!(k.keys(), vec![2]);
}

#[test]
fn wait_by_key_before_reregistration_is_closed_and_never_sees_the_new_generation() {
    let k = keyed();
    let old = k.register(5, "gen 1").unwrap();
    let (count, waker) = CountingWaker::new();
    let mut w = k.wait(&5).unwrap();
    assert!(poll_once(&mut w, &waker).is_pending());

    k.unregister(&5).unwrap();
    assert_eq!(count.count(), 1, "unregister wakes the pending wait");
    let new = k.register(5, "gen 2").unwrap();
    assert_ne!(new, old);
    // The new generation's notifies: nobody of the old one is woken.
    let (new_count, new_waker) = CountingWaker::new();
    let mut w_new = k.wait(&5).unwrap();
    assert!(poll_once(&mut w_new, &new_waker).is_pending());
    assert_eq!(k.notify(&5, 99), Ok(1));
    assert_eq!(count.count(), 1, "the old wait is not woken by gen 2");
    assert_eq!(new_count.count(), 1);

    assert_eq!(
        poll_once(&mut w, &waker),
        Poll::Ready(Err(QueueError::Closed))
    );
    match poll_once(&mut w_new, &new_waker) {
        Poll::Ready(Ok(n)) => assert_eq!(n.arg, 99),
        other => panic!("gen 2 wait: {other:?}"),
    }
}

#[test]
fn wait_by_key_started_before_unregister_and_reregister_completes_closed_threads() {
    let k = keyed();
    for round in 0..300 {
        k.register(7, "actor").unwrap();
        let (started_tx, started_rx) = mpsc::channel();
        let result = thread::scope(|s| {
            let waiter = s.spawn(|| {
                let w = k.wait(&7).unwrap(); // the snapshot: the wait starts
                started_tx.send(()).unwrap();
                w.wait()
            });
            started_rx.recv().unwrap();
            k.unregister(&7).unwrap();
            k.register(7, "actor, next life").unwrap();
            for arg in 0..4 {
                k.notify(&7, arg).unwrap();
            }
            waiter.join().unwrap()
        });
        assert_eq!(result, Err(QueueError::Closed), "round {round}");
        k.unregister(&7).unwrap();
    }
}

#[test]
fn race_register_vs_unregister_of_one_key() {
    let k = keyed();
    for round in 0..1000 {
        // Start absent: register either wins after the unregister, or the
        // unregister removes what register just added.
        let (reg, unreg) = race(|| k.register(1, "r"), || k.unregister(&1));
        let h = reg.unwrap_or_else(|e| panic!("round {round}: register {e:?}"));
        match unreg {
            Ok(()) => {
                assert!(!k.contains_key(&1));
                assert_eq!(k.queue().notify(h, 0), Err(QueueError::StaleHandle));
            }
            Err(QueueError::UnknownKey) => {
                assert_eq!(k.handle(&1), Ok(h));
                assert_eq!(k.queue().notify(h, 0), Ok(0));
            }
            Err(e) => panic!("round {round}: unregister {e:?}"),
        }
        assert_eq!(k.queue().stats().handles, k.len(), "no handle leaked");

        // Start present (h0): register fails as a duplicate before the
        // unregister, or wins the freed key after it.
        let h0 = match k.handle(&1) {
            Ok(h) => h,
            Err(_) => k.register(1, "r0").unwrap(),
        };
        let (reg, unreg) = race(|| k.register(1, "r1"), || k.unregister(&1));
        assert_eq!(unreg, Ok(()), "round {round}");
        assert_eq!(k.queue().notify(h0, 0), Err(QueueError::StaleHandle));
        match reg {
            Err(QueueError::DuplicateKey) => assert!(!k.contains_key(&1)),
            Ok(h1) => {
                assert_ne!(h1, h0);
                assert_eq!(k.handle(&1), Ok(h1));
                assert_eq!(k.queue().notify(h1, 0), Ok(0));
                k.unregister(&1).unwrap();
            }
            Err(e) => panic!("round {round}: register {e:?}"),
        }
        assert_eq!(k.queue().stats().handles, k.len(), "no handle leaked");
        assert!(k.is_empty());
    }
}

#[test]
fn race_two_registers_of_one_key_exactly_one_wins() {
    let k = keyed();
    for round in 0..1000 {
        let (a, b) = race(|| k.register(3, "a"), || k.register(3, "b"));
        let winner = match (a, b) {
            (Ok(h), Err(QueueError::DuplicateKey)) | (Err(QueueError::DuplicateKey), Ok(h)) => h,
            other => panic!("round {round}: {other:?}"),
        };
        assert_eq!(k.handle(&3), Ok(winner));
        assert_eq!(k.queue().stats().handles, 1);
        k.unregister(&3).unwrap();
    }
}

#[test]
fn race_unregister_vs_notify_of_one_key() {
    let k = keyed();
    for round in 0..1000 {
        let h = k.register(2, "n").unwrap();
        let (count, waker) = CountingWaker::new();
        let mut w = k.wait(&2).unwrap();
        assert!(poll_once(&mut w, &waker).is_pending());
        let ((by_key, by_handle), unreg) = race(
            || (k.notify(&2, 1), k.queue().notify(h, 2)),
            || k.unregister(&2),
        );
        assert_eq!(unreg, Ok(()), "round {round}");
        // By key: before the unregister (Ok, the waiter woken or already
        // being closed) or after it (UnknownKey), never StaleHandle.
        assert!(
            matches!(by_key, Ok(0 | 1) | Err(QueueError::UnknownKey)),
            "round {round}: by key {by_key:?}"
        );
        // By handle: the queue's own answer.
        assert!(
            matches!(by_handle, Ok(0 | 1) | Err(QueueError::StaleHandle)),
            "round {round}: by handle {by_handle:?}"
        );
        assert!(count.count() >= 1, "round {round}: the wait was woken");
        // A notify that landed before the unregister is reported first;
        // with none, the wait ends `Closed`.
        let landed = by_key.is_ok() || by_handle.is_ok();
        match poll_once(&mut w, &waker) {
            Poll::Ready(Ok(n)) => assert!(landed && (n.arg == 1 || n.arg == 2), "round {round}"),
            Poll::Ready(Err(QueueError::Closed)) => assert!(!landed, "round {round}: notify lost"),
            other => panic!("round {round}: {other:?}"),
        }
        drop(w);
        let stats = k.queue().stats();
        assert_eq!((stats.handles, stats.waiters), (0, 0), "round {round}");
    }
}

#[test]
fn race_notify_by_key_vs_unregister_and_reregister() {
    // A notifier hammers the key by key while the main thread cycles it
    // through generations, each with a blocking waiter started right after
    // its register. notify by key only ever succeeds or finds the key
    // unknown; every wait ends with a notify or Closed; nothing leaks.
    let k = keyed();
    let stop = AtomicBool::new(false);
    let (notified, unknown) = thread::scope(|s| {
        let notifier = s.spawn(|| {
            let (mut ok, mut unknown) = (0u64, 0u64);
            while !stop.load(Ordering::Relaxed) {
                match k.notify(&9, 1) {
                    Ok(_) => ok += 1,
                    Err(QueueError::UnknownKey) => unknown += 1,
                    Err(e) => panic!("notify by key: {e:?}"),
                }
            }
            (ok, unknown)
        });
        for round in 0..300 {
            k.register(9, "cycled").unwrap();
            let w = k.wait(&9).unwrap();
            let waiter = s.spawn(move || w.wait());
            k.unregister(&9).unwrap();
            match waiter.join().unwrap() {
                Ok(n) => assert_eq!(n.arg, 1, "round {round}"),
                Err(QueueError::Closed) => {}
                Err(e) => panic!("round {round}: wait {e:?}"),
            }
        }
        stop.store(true, Ordering::Relaxed);
        notifier.join().unwrap()
    });
    assert!(notified + unknown > 0);
    let stats = k.queue().stats();
    assert_eq!((stats.handles, stats.waiters), (0, 0));
}

/// A waker that calls back into the keyed queue when woken: it would
/// deadlock if the notifier held a map guard of the same shard.
struct ReentrantWaker {
    keyed: Arc<KeyedQueue<u64>>,
    log: Mutex<Vec<String>>,
}

impl Wake for ReentrantWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let k = &self.keyed;
        let r = (
            k.keys().len(),
            k.notify(&1, 5),
            k.unregister(&1),
            k.register(1, "re-registered from a waker"),
            k.register(100, "another key"),
        );
        self.log.lock().unwrap().push(format!("{r:?}"));
    }
}

#[test]
fn wakers_run_with_no_map_lock_held_and_may_call_back_in() {
    let keyed = Arc::new(keyed());
    let (done_tx, done_rx) = mpsc::channel();
    let k2 = keyed.clone();
    // On its own thread so that a deadlock fails the test instead of hanging
    // it: the channel below gives up after a generous bound.
    let worker = thread::spawn(move || {
        let rw = Arc::new(ReentrantWaker {
            keyed: k2.clone(),
            log: Mutex::new(Vec::new()),
        });
        let waker = Waker::from(rw.clone());
        // Woken inside notify by key.
        k2.register(1, "one").unwrap();
        let mut w = k2.wait(&1).unwrap();
        assert!(poll_once(&mut w, &waker).is_pending());
        let n = k2.notify(&1, 1);
        drop(w);
        // Woken inside unregister by key.
        k2.unregister(&100).unwrap();
        let mut w = k2.wait(&1).unwrap();
        assert!(poll_once(&mut w, &waker).is_pending());
        let u = k2.unregister(&1);
        drop(w);
        let log = rw.log.lock().unwrap().clone();
        done_tx.send((n, u, log)).unwrap();
    });
    let (n, u, log) = done_rx
        .recv_timeout(Duration::from_secs(60))
        .expect("a waker calling back into the keyed queue deadlocked");
    worker.join().unwrap();
    assert_eq!(n, Ok(1));
    assert_eq!(u, Ok(()));
    assert_eq!(log.len(), 2);
    // Inside notify(1): 1 key; notify(1) finds nobody; unregister(1) frees
    // it; register(1) and register(100) succeed.
    assert!(log[0].starts_with("(1, Ok(0), Ok(()), Ok("), "{}", log[0]);
    // Inside unregister(1): the key is already free (removed before the
    // wakers ran), so the waker's own register(1) succeeds.
    assert!(
        log[1].starts_with("(0, Err(UnknownKey), Err(UnknownKey), Ok("),
        "{}",
        log[1]
    );
    assert_eq!(keyed.keys().len(), 2);
}

#[test]
fn subscription_by_key_drains_then_ends_and_does_not_follow_the_key() {
    let k = keyed();
    k.register(4, "gen 1").unwrap();
    let mut sub = k.subscribe(&4, 8, "logger").unwrap();
    assert_eq!(k.notify(&4, 1), Ok(1));
    k.unregister(&4).unwrap();
    k.register(4, "gen 2").unwrap();
    assert_eq!(k.notify(&4, 2), Ok(0), "the old subscription is not here");
    assert_eq!(sub.try_recv(), Ok(1));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    assert!(matches!(
        k.subscribe(&4, 0, "zero"),
        Err(QueueError::InvalidCapacity { .. })
    ));
}

#[test]
fn generic_keys_strings_by_borrowed_str_and_negative_i64() {
    let s = KeyedQueue::<String>::new(NotificationQueue::new(Config::default()));
    s.register("stdout".to_string(), "pipe").unwrap();
    assert_eq!(s.notify("stdout", 1), Ok(0));
    assert_eq!(s.notify("stderr", 1), Err(QueueError::UnknownKey));
    s.unregister("stdout").unwrap();

    let i = KeyedQueue::<i64>::new(NotificationQueue::new(Config::default()));
    i.register(-1, "signal").unwrap();
    i.register(i64::MAX, "max").unwrap();
    assert_eq!(i.notify(&-1, 3), Ok(0));
    let mut keys = i.keys();
    keys.sort();
    assert_eq!(keys, vec![-1, i64::MAX]);
}

#[test]
fn handle_unregistered_directly_on_the_queue_makes_its_key_unknown_and_free() {
    let k = keyed();
    let h = k.register(6, "six").unwrap();
    k.queue().unregister(h).unwrap();
    assert_eq!(k.notify(&6, 0), Err(QueueError::UnknownKey));
    assert!(matches!(k.wait(&6), Err(QueueError::UnknownKey)));
    assert!(!k.contains_key(&6));
    // register replaces the dead entry ...
    let h2 = k.register(6, "six again").unwrap();
    assert_ne!(h2, h);
    assert_eq!(k.notify(&6, 0), Ok(0));
    // ... and unregister frees such a key too.
    k.queue().unregister(h2).unwrap();
    assert_eq!(k.unregister(&6), Err(QueueError::UnknownKey));
    assert!(k.is_empty());
}

#[test]
fn dropping_the_keyed_queue_unregisters_its_handles() {
    let queue = NotificationQueue::new(Config::default());
    let other = queue.register("not keyed").unwrap();
    let k = KeyedQueue::new(queue.clone());
    let h = k.register(1u64, "one").unwrap();
    k.register(2, "two").unwrap();
    let pending = queue.wait(h);
    drop(k);
    assert_eq!(pending.wait(), Err(QueueError::Closed));
    assert_eq!(queue.stats().handles, 1);
    assert_eq!(queue.notify(other, 1), Ok(0));
}

#[test]
fn waits_and_waiters_list_hints_by_key() {
    let k = keyed();
    k.register(1, "one").unwrap();
    k.register(2, "two").unwrap();
    let (_, waker) = CountingWaker::new();
    let mut w = k.wait(&1).unwrap().with_hint("client-a");
    assert!(poll_once(&mut w, &waker).is_pending());
    let hints: Vec<_> = k
        .waiters(&1)
        .unwrap()
        .into_iter()
        .map(|w| w.hint.map(|h| h.to_string()))
        .collect();
    assert_eq!(hints, vec![Some("client-a".to_string())]);
    let mut waits = k.waits();
    waits.sort_by_key(|(key, _)| *key);
    assert_eq!(waits.len(), 2);
    assert_eq!((waits[0].0, waits[0].1.len()), (1, 1));
    assert_eq!((waits[1].0, waits[1].1.len()), (2, 0));
}

#[test]
fn wait_by_key_is_a_future_on_any_executor() {
    let k = keyed();
    k.register(8, "async").unwrap();
    let wait = k.wait(&8).unwrap();
    let got = thread::scope(|s| {
        s.spawn(|| k.notify(&8, 80).unwrap());
        futures::executor::block_on(wait)
    });
    assert_eq!(got.unwrap().arg, 80);
}

#[test]
fn concurrent_registrations_of_distinct_keys_all_land() {
    let k = keyed();
    let (a, b) = race(
        || {
            (0..500u64)
                .map(|i| k.register(2 * i, "even"))
                .collect::<Vec<_>>()
        },
        || {
            (0..500u64)
                .map(|i| k.register(2 * i + 1, "odd"))
                .collect::<Vec<_>>()
        },
    );
    assert!(a.iter().chain(&b).all(Result::is_ok));
    assert_eq!(k.len(), 1000);
    assert_eq!(k.queue().stats().handles, 1000);
    let (a, b) = race(
        || {
            (0..500u64)
                .map(|i| k.unregister(&(2 * i)))
                .collect::<Vec<_>>()
        },
        || {
            (0..500u64)
                .map(|i| k.unregister(&(2 * i + 1)))
                .collect::<Vec<_>>()
        },
    );
    assert!(a.iter().chain(&b).all(Result::is_ok));
    assert!(k.is_empty());
    assert_eq!(k.queue().stats().handles, 0);
}
