//! `notify_one` / `notify_n`: FIFO order, permits, cancellation hand-off,
//! concurrency, and owned waits.

mod common;

use common::{CountingWaker, poll_once};
use notification_queue::{Config, Handle, NotificationQueue, QueueError, Wait};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

fn setup() -> (NotificationQueue, Handle) {
    let q = NotificationQueue::new(Config::default());
    let h = q.register("pool").unwrap();
    (q, h)
}

/// Polls `w` and returns the argument if it completed.
fn arg_if_ready(w: &mut Wait<'_>, waker: &Waker) -> Option<i64> {
    match poll_once(w, waker) {
        Poll::Ready(r) => Some(r.unwrap().arg),
        Poll::Pending => None,
    }
}

#[test]
fn notify_one_completes_the_oldest_wait_even_in_a_reused_entry() {
    let (q, h) = setup();
    let (_, waker) = CountingWaker::new();
    let mut waits: Vec<Wait<'_>> = (0..4).map(|_| q.wait(h)).collect();
    for w in &mut waits {
        assert!(poll_once(w, &waker).is_pending());
    }
    // Free entry 1, then a new wait reuses it: it is the youngest.
    drop(waits.remove(1));
    let mut young = q.wait(h);
    assert!(poll_once(&mut young, &waker).is_pending());
    waits.push(young);
    // Registration order is now: old 0, old 2, old 3, young (in entry 1).
    for (round, expected) in [0usize, 1, 2, 3].into_iter().enumerate() {
        assert_eq!(q.notify_one(h, 10 + round as i64), Ok(1));
        for (i, w) in waits.iter_mut().enumerate() {
            let got = arg_if_ready(w, &waker);
            if i == expected {
                assert_eq!(got, Some(10 + round as i64), "round {round}");
            } else if i > expected {
                assert_eq!(got, None, "round {round}: wait {i} completed early");
            }
        }
    }
}

#[test]
fn notify_one_wakes_one_waker_and_does_not_bump_the_sequence() {
    let (q, h) = setup();
    let (count, waker) = CountingWaker::new();
    let before = q.snapshot(h).unwrap();
    let mut a = q.wait(h);
    let mut b = q.wait(h);
    assert!(poll_once(&mut a, &waker).is_pending());
    assert!(poll_once(&mut b, &waker).is_pending());
    assert_eq!(q.notify_one(h, 3), Ok(1));
    assert_eq!(count.count(), 1);
    assert_eq!(q.snapshot(h).unwrap(), before);
    let got = match poll_once(&mut a, &waker) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("the oldest wait must complete"),
    };
    assert_eq!(
        (got.arg, got.coalesced, got.sequence),
        (3, 1, before.sequence())
    );
    assert!(poll_once(&mut b, &waker).is_pending());
    // A plain notify still completes the rest.
    assert_eq!(q.notify(h, 4), Ok(1));
    assert_eq!(arg_if_ready(&mut b, &waker), Some(4));
}

#[test]
fn notify_n_with_more_than_waiting_leaves_one_permit() {
    let (q, h) = setup();
    let (_, waker) = CountingWaker::new();
    let mut waits: Vec<Wait<'_>> = (0..3).map(|_| q.wait(h)).collect();
    for w in &mut waits {
        assert!(poll_once(w, &waker).is_pending());
    }
    assert_eq!(q.notify_n(h, 5, 10), Ok(3));
    for w in &mut waits {
        assert_eq!(arg_if_ready(w, &waker), Some(5));
    }
    let mut next = q.wait(h);
    assert_eq!(arg_if_ready(&mut next, &waker), Some(5), "the permit");
    let mut after = q.wait(h);
    assert_eq!(arg_if_ready(&mut after, &waker), None, "only one permit");
}

#[test]
fn notify_n_completes_exactly_n_of_more() {
    let (q, h) = setup();
    let (_, waker) = CountingWaker::new();
    let mut waits: Vec<Wait<'_>> = (0..40).map(|_| q.wait(h)).collect();
    for w in &mut waits {
        assert!(poll_once(w, &waker).is_pending());
    }
    // More than one wake batch (32 wakers).
    assert_eq!(q.notify_n(h, 9, 35), Ok(35));
    let ready: Vec<bool> = waits
        .iter_mut()
        .map(|w| arg_if_ready(w, &waker).is_some())
        .collect();
    assert_eq!(ready, (0..40).map(|i| i < 35).collect::<Vec<_>>());
    assert_eq!(q.notify_n(h, 9, 0), Ok(0));
    let mut fresh = q.wait(h);
    assert!(poll_once(&mut fresh, &waker).is_pending(), "no permit");
}

#[test]
fn a_permit_is_stored_taken_once_and_coalesced() {
    let (q, h) = setup();
    let (_, waker) = CountingWaker::new();
    let old = q.snapshot(h).unwrap();
    assert_eq!(q.notify_one(h, 1), Ok(0));
    assert_eq!(q.notify_one(h, 2), Ok(0));
    assert_eq!(q.notify_one(h, 3), Ok(0));
    // Any wait takes it, even one from a snapshot taken before.
    let mut w = q.wait_after(old);
    assert_eq!(arg_if_ready(&mut w, &waker), Some(3), "latest arg wins");
    let mut w2 = q.wait(h);
    assert_eq!(arg_if_ready(&mut w2, &waker), None, "coalesced to one");
    drop(w2);
    // Blocking waits take it too.
    assert_eq!(q.notify_one(h, 4), Ok(0));
    assert_eq!(q.wait(h).wait().unwrap().arg, 4);
}

#[test]
fn plain_notify_neither_takes_nor_makes_permits() {
    let (q, h) = setup();
    let (_, waker) = CountingWaker::new();
    assert_eq!(q.notify(h, 1), Ok(0));
    let mut w = q.wait(h);
    assert_eq!(arg_if_ready(&mut w, &waker), None, "notify made no permit");
    drop(w);
    assert_eq!(q.notify_one(h, 7), Ok(0));
    let snap = q.snapshot(h).unwrap();
    assert_eq!(q.notify(h, 8), Ok(0));
    // A wait from before that notify completes by the sequence and leaves
    // the permit alone...
    let mut by_seq = q.wait_after(snap);
    assert_eq!(arg_if_ready(&mut by_seq, &waker), Some(8));
    // ...which the next wait that would sleep takes.
    let mut w = q.wait(h);
    assert_eq!(arg_if_ready(&mut w, &waker), Some(7));
}

#[test]
fn unregister_drops_the_permit() {
    let q = NotificationQueue::new(Config::default().max_handles(1));
    let (_, waker) = CountingWaker::new();
    let h = q.register("a").unwrap();
    assert_eq!(q.notify_one(h, 1), Ok(0));
    q.unregister(h).unwrap();
    assert_eq!(q.notify_one(h, 1), Err(QueueError::StaleHandle));
    let h2 = q.register("b").unwrap();
    assert_eq!(h2.index(), h.index(), "same slot, next generation");
    let mut w = q.wait(h2);
    assert_eq!(arg_if_ready(&mut w, &waker), None);
}

#[test]
fn a_chosen_wait_dropped_before_it_reports_hands_the_wake_on() {
    let (q, h) = setup();
    let (first_count, first_waker) = CountingWaker::new();
    let (second_count, second_waker) = CountingWaker::new();
    let mut first = q.wait(h);
    let mut second = q.wait(h);
    assert!(poll_once(&mut first, &first_waker).is_pending());
    assert!(poll_once(&mut second, &second_waker).is_pending());
    assert_eq!(q.notify_one(h, 6), Ok(1));
    assert_eq!(first_count.count(), 1);
    assert_eq!(second_count.count(), 0);
    drop(first); // cancelled before it re-polled
    assert_eq!(second_count.count(), 1, "the wake moved on");
    assert_eq!(arg_if_ready(&mut second, &second_waker), Some(6));
}

#[test]
fn a_chosen_wait_dropped_with_nobody_else_waiting_leaves_a_permit() {
    let (q, h) = setup();
    let (_, waker) = CountingWaker::new();
    let mut only = q.wait(h);
    assert!(poll_once(&mut only, &waker).is_pending());
    assert_eq!(q.notify_one(h, 2), Ok(1));
    drop(only);
    let mut next = q.wait(h);
    assert_eq!(arg_if_ready(&mut next, &waker), Some(2));
}

#[test]
fn a_plain_waiter_does_not_swallow_the_wake_of_a_wait_that_completed_otherwise() {
    let (q, h) = setup();
    let (_, waker) = CountingWaker::new();
    let snap = q.snapshot(h).unwrap();
    let mut a = q.wait_after(snap);
    assert!(poll_once(&mut a, &waker).is_pending());
    let mut b = q.wait_after(snap);
    assert!(poll_once(&mut b, &waker).is_pending());
    assert_eq!(q.notify_one(h, 1), Ok(1)); // chooses `a`
    // `a` reports the notify_one; `b` still waits.
    assert_eq!(arg_if_ready(&mut a, &waker), Some(1));
    assert_eq!(arg_if_ready(&mut b, &waker), None);
}

/// A wait blocked on its own thread: polled by hand once (so it has
/// registered when the barrier releases), then parked until ready.
fn registered_waiter(
    q: NotificationQueue,
    h: Handle,
    registered: Arc<Barrier>,
    done: Arc<AtomicUsize>,
) -> thread::JoinHandle<i64> {
    thread::spawn(move || {
        let me = thread::current();
        let waker = Waker::from(Arc::new(Unpark(me)));
        let mut w = q.wait(h);
        let first = poll_once(&mut w, &waker);
        assert!(first.is_pending());
        registered.wait();
        loop {
            if let Poll::Ready(r) = poll_once(&mut w, &waker) {
                done.fetch_add(1, Ordering::SeqCst);
                return r.unwrap().arg;
            }
            thread::park();
        }
    })
}

struct Unpark(thread::Thread);
impl std::task::Wake for Unpark {
    fn wake(self: Arc<Self>) {
        self.0.unpark();
    }
}

#[test]
fn notify_one_from_many_threads_completes_exactly_that_many_waits() {
    const WAITERS: usize = 16;
    const NOTIFIERS: usize = 4;
    const PER_NOTIFIER: usize = 3;
    let (q, h) = setup();
    let registered = Arc::new(Barrier::new(WAITERS + NOTIFIERS));
    let done = Arc::new(AtomicUsize::new(0));
    let waiters: Vec<_> = (0..WAITERS)
        .map(|_| registered_waiter(q.clone(), h, registered.clone(), done.clone()))
        .collect();
    let notifiers: Vec<_> = (0..NOTIFIERS)
        .map(|_| {
            let q = q.clone();
            let registered = registered.clone();
            thread::spawn(move || {
                registered.wait();
                (0..PER_NOTIFIER)
                    .map(|_| q.notify_one(h, 1).unwrap())
                    .sum::<usize>()
            })
        })
        .collect();
    let woken: usize = notifiers.into_iter().map(|t| t.join().unwrap()).sum();
    let k = NOTIFIERS * PER_NOTIFIER;
    // Every wait had registered: each notify_one completed one, none made
    // a permit.
    assert_eq!(woken, k);
    // Exactly the others are still pending.
    assert_eq!(q.notify_n(h, 2, usize::MAX), Ok(WAITERS - k));
    let args: Vec<i64> = waiters.into_iter().map(|t| t.join().unwrap()).collect();
    assert_eq!(args.iter().filter(|&&a| a == 1).count(), k);
    assert_eq!(args.iter().filter(|&&a| a == 2).count(), WAITERS - k);
    assert_eq!(done.load(Ordering::SeqCst), WAITERS);
}

#[test]
fn racing_blocking_waits_and_notify_one_lose_no_wake() {
    // Waits register while notifies run; each notify_one completes a wait
    // or leaves the permit. With one notify_one per completed wait (the
    // notifier waits for each completion before the next), none may be
    // lost: every round ends.
    const ROUNDS: usize = 300;
    let (q, h) = setup();
    let (tx, rx) = std::sync::mpsc::channel();
    let q2 = q.clone();
    let waiter = thread::spawn(move || {
        for i in 0..ROUNDS {
            let got = common::wait_timeout(q2.wait(h), Duration::from_secs(10)).unwrap();
            assert_eq!(got.arg, i as i64);
            tx.send(()).unwrap();
        }
    });
    for i in 0..ROUNDS {
        q.notify_one(h, i as i64).unwrap();
        rx.recv_timeout(Duration::from_secs(10))
            .expect("a notify_one was lost");
    }
    waiter.join().unwrap();
}

#[test]
fn owned_wait_completes_on_another_thread() {
    let (q, h) = setup();
    let w: Wait<'static> = q.wait_owned(h);
    let t = thread::spawn(move || w.wait().unwrap().arg);
    // Whether it registered yet or not: a notify_one completes it, or
    // leaves the permit it takes.
    assert!(q.notify_one(h, 11).unwrap() <= 1);
    assert_eq!(t.join().unwrap(), 11);
    let snap = q.snapshot(h).unwrap();
    let w = q.wait_after_owned(snap);
    drop(q); // the wait keeps the queue alive
    let deadline = Instant::now() + Duration::from_millis(1);
    assert_eq!(common::wait_deadline(w, deadline), Err(QueueError::Timeout));
}

#[test]
fn owned_wait_spawned_on_tokio() {
    let (q, h) = setup();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let task = rt.spawn(q.wait_owned(h));
    let (tx, rx) = std::sync::mpsc::channel();
    let q2 = q.clone();
    let notifier = thread::spawn(move || {
        let n = q2.notify_one(h, 21).unwrap();
        tx.send(n).unwrap();
    });
    let got = rt.block_on(task).unwrap().unwrap();
    assert_eq!(got.arg, 21);
    assert!(rx.recv().unwrap() <= 1);
    notifier.join().unwrap();
}

#[cfg(feature = "std")]
#[test]
fn keyed_notify_one_and_owned_wait() {
    use notification_queue::KeyedQueue;
    let keyed = KeyedQueue::new(NotificationQueue::new(Config::default()));
    keyed.register(1u64, "one").unwrap();
    let w: Wait<'static> = keyed.wait_owned(&1).unwrap();
    let t = thread::spawn(move || w.wait().unwrap().arg);
    assert!(keyed.notify_one(&1, 4).unwrap() <= 1);
    assert_eq!(t.join().unwrap(), 4);
    assert!(matches!(keyed.wait_owned(&2), Err(QueueError::UnknownKey)));
    assert_eq!(keyed.notify_one(&2, 1), Err(QueueError::UnknownKey));
}

/// A wait that a plain notify already completed (woken, not yet polled
/// again) is not waiting any more: `notify_one` passes it by and completes
/// the wait that still sleeps. Choosing the completed one would turn two
/// wakes into one and leave the sleeper asleep.
#[test]
fn notify_one_after_notify_completes_the_wait_still_sleeping() {
    let (q, h) = setup();
    let (ca, wa) = CountingWaker::new();
    let (cb, wb) = CountingWaker::new();
    let mut a = q.wait(h);
    assert!(poll_once(&mut a, &wa).is_pending());
    assert_eq!(q.notify(h, 1), Ok(1));
    assert_eq!(ca.count(), 1);
    let mut b = q.wait(h);
    assert!(poll_once(&mut b, &wb).is_pending());
    assert_eq!(q.notify_one(h, 2), Ok(1));
    assert_eq!(cb.count(), 1, "the sleeping wait was not woken");
    assert_eq!(arg_if_ready(&mut b, &wb), Some(2));
    // The first wait reports the plain notify it was woken for.
    let got = match poll_once(&mut a, &wa) {
        Poll::Ready(r) => r.unwrap(),
        Poll::Pending => panic!("a notified wait must complete"),
    };
    assert_eq!((got.arg, got.coalesced), (1, 1));
    // Nothing was left over: no permit, so the next wait sleeps.
    let mut c = q.wait(h);
    assert!(poll_once(&mut c, &wa).is_pending());
}

/// A plain notify frees the waiter entries of the waits it completes, at
/// once: with room for one waiter, a completed wait that has not been
/// polled again no longer holds the handle's only entry, and when it is
/// finally polled and dropped it leaves alone the entry the next wait took
/// (that wait still gets a `notify_one`, and hints stay with their waits).
#[test]
fn a_plain_notify_frees_the_entries_of_the_waits_it_completes() {
    let q = NotificationQueue::new(Config::default().max_waiters_per_handle(1));
    let h = q.register("one").unwrap();
    let (count, waker) = CountingWaker::new();
    let mut done = q.wait(h).with_hint("done");
    assert!(poll_once(&mut done, &waker).is_pending());
    let mut refused = q.wait(h);
    assert!(matches!(
        poll_once(&mut refused, &waker),
        Poll::Ready(Err(QueueError::WaiterLimit { .. }))
    ));
    assert_eq!(q.notify(h, 1).unwrap(), 1);
    assert_eq!(count.count(), 1);
    let mut next = q.wait(h).with_hint("next");
    assert!(poll_once(&mut next, &waker).is_pending());
    assert_eq!(q.waiters(h).unwrap().len(), 1);
    // The completed wait reports its notify and leaves `next` alone.
    assert_eq!(arg_if_ready(&mut done, &waker), Some(1));
    drop(done);
    let listed = q.waiters(h).unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].hint.as_deref(), Some("next"));
    assert_eq!(q.notify_one(h, 7).unwrap(), 1);
    assert_eq!(arg_if_ready(&mut next, &waker), Some(7));
}
