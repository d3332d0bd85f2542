//! The queue core's promises, one test (or more) each.

mod common;

use common::{CountingWaker, PanickingWaker, poll_once};
use notification_queue::{Config, NotificationQueue, QueueError};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::task::{Poll, Waker};
use std::thread;
use std::time::Duration;
#[cfg(feature = "std")]
use std::time::Instant;

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

#[test]
fn notify_before_wait_completes_at_once_and_reports_coalesced() {
    let q = queue();
    let h = q.register("h").unwrap();
    let snap = q.snapshot(h).unwrap();
    for arg in [1, 2, 3] {
        assert_eq!(q.notify(h, arg), Ok(0));
    }
    let got = q.wait_after(snap).wait().unwrap();
    assert_eq!(got.arg, 3);
    assert_eq!(got.coalesced, 3);
    assert_eq!(got.sequence, snap.sequence() + 3);
}

#[test]
fn wait_for_next_ignores_earlier_notifies() {
    let q = queue();
    let h = q.register("h").unwrap();
    q.notify(h, 1).unwrap();
    let (_, waker) = CountingWaker::new();
    let mut w = q.wait(h);
    assert!(poll_once(&mut w, &waker).is_pending());
    assert_eq!(q.notify(h, 9), Ok(1));
    match poll_once(&mut w, &waker) {
        Poll::Ready(Ok(n)) => assert_eq!((n.arg, n.coalesced), (9, 1)),
        other => panic!("expected a notification, got {other:?}"),
    }
}

#[test]
fn async_wait_is_woken_by_notify_from_another_thread() {
    let q = queue();
    let h = q.register("h").unwrap();
    let snap = q.snapshot(h).unwrap();
    let q2 = q.clone();
    let t = thread::spawn(move || {
        // Notify once the waiter has claimed its entry. Its waker may not be
        // published yet (the dump lists claimed entries), so the notify may
        // wake 0 or 1: either way the wait below must complete.
        while q2.waiters(h).unwrap().is_empty() {
            thread::yield_now();
        }
        q2.notify(h, 77).unwrap()
    });
    let got = futures::executor::block_on(q.wait_after(snap)).unwrap();
    assert_eq!((got.arg, got.coalesced), (77, 1));
    assert!(t.join().unwrap() <= 1);
}

/// The lost-wakeup stress test: 10^6 ping-pong rounds between two threads,
/// each round a notify racing with the other side's "check, then wait".
/// A lost wakeup shows as a timeout (10 s per wait; a round takes
/// microseconds), never as a hang.
#[test]
fn no_lost_wakeup_stress_million_rounds() {
    const ROUNDS: u64 = 1_000_000;
    let q = queue();
    let ping = q.register("ping").unwrap();
    let pong = q.register("pong").unwrap();
    let ball = Arc::new(AtomicU64::new(0)); // even: ping's turn, odd: pong's
    let limit = Duration::from_secs(10);

    let side =
        |me: u64, wake_other: notification_queue::Handle, mine: notification_queue::Handle| {
            let q = q.clone();
            let ball = ball.clone();
            thread::spawn(move || {
                let mut waits = 0u64;
                for round in 0..ROUNDS {
                    let want = round * 2 + me;
                    loop {
                        let snap = q.snapshot(mine).unwrap();
                        if ball.load(Ordering::Acquire) == want {
                            break;
                        }
                        waits += 1;
                        common::wait_timeout(q.wait_after(snap), limit)
                            .unwrap_or_else(|e| panic!("lost wakeup at round {round}: {e}"));
                    }
                    ball.store(want + 1, Ordering::Release);
                    q.notify(wake_other, want as i64).unwrap();
                }
                waits
            })
        };
    let a = side(0, pong, ping);
    let b = side(1, ping, pong);
    let waits = a.join().unwrap() + b.join().unwrap();
    assert_eq!(ball.load(Ordering::SeqCst), ROUNDS * 2);
    assert!(waits > 0, "the test never raced a wait against a notify");
}

#[test]
fn dropping_a_pending_wait_releases_its_entry() {
    let q = queue();
    let h = q.register("h").unwrap();
    let (_, waker) = CountingWaker::new();
    let mut waits: Vec<_> = (0..20)
        .map(|i| q.wait(h).with_hint(format!("w{i}")))
        .collect();
    for w in &mut waits {
        assert!(poll_once(w, &waker).is_pending());
    }
    assert_eq!(q.waiters(h).unwrap().len(), 20);
    assert_eq!(q.stats().waiters, 20);
    waits.truncate(5);
    assert_eq!(q.waiters(h).unwrap().len(), 5);
    drop(waits);
    assert!(q.waiters(h).unwrap().is_empty());
    assert_eq!(q.stats().waiters, 0);
    // A notify after every wait was cancelled wakes nobody.
    assert_eq!(q.notify(h, 1), Ok(0));
}

#[test]
fn completed_wait_releases_its_entry() {
    let q = queue();
    let h = q.register("h").unwrap();
    let (_, waker) = CountingWaker::new();
    let mut w = q.wait(h);
    assert!(poll_once(&mut w, &waker).is_pending());
    q.notify(h, 1).unwrap();
    assert!(poll_once(&mut w, &waker).is_ready());
    assert!(q.waiters(h).unwrap().is_empty());
}

#[test]
fn stale_handle_after_slot_reuse_is_rejected_everywhere() {
    let q = NotificationQueue::new(Config::default().max_handles(1));
    let old = q.register("old").unwrap();
    let (_, waker) = CountingWaker::new();
    let mut old_wait = q.wait(old);
    assert!(poll_once(&mut old_wait, &waker).is_pending());
    q.unregister(old).unwrap();
    let new = q.register("new").unwrap();
    assert_eq!(
        new.index(),
        old.index(),
        "the slot must be reused for this test"
    );
    assert_ne!(new.generation(), old.generation());

    assert_eq!(q.notify(old, 1), Err(QueueError::StaleHandle));
    assert_eq!(q.snapshot(old), Err(QueueError::StaleHandle));
    assert_eq!(q.unregister(old), Err(QueueError::StaleHandle));
    assert!(q.waiters(old).is_err());
    assert_eq!(q.wait(old).wait(), Err(QueueError::StaleHandle));

    // The new owner's notifications never reach the old wait...
    let snap = q.snapshot(new).unwrap();
    q.notify(new, 5).unwrap();
    assert_eq!(
        poll_once(&mut old_wait, &waker),
        Poll::Ready(Err(QueueError::Closed))
    );
    // ...and the stale notify above did not count on the new handle.
    let got = q.wait_after(snap).wait().unwrap();
    assert_eq!((got.arg, got.coalesced), (5, 1));
}

#[test]
fn handles_of_another_queue_are_stale() {
    let a = queue();
    let b = queue();
    let ha = a.register("a").unwrap();
    let _hb = b.register("b").unwrap();
    assert_eq!(b.notify(ha, 1), Err(QueueError::StaleHandle));
    assert_eq!(b.unregister(ha), Err(QueueError::StaleHandle));
}

#[test]
fn double_unregister_is_a_typed_error() {
    let q = queue();
    let h = q.register("h").unwrap();
    assert_eq!(q.unregister(h), Ok(()));
    assert_eq!(q.unregister(h), Err(QueueError::StaleHandle));
    assert_eq!(q.stats().handles, 0);
}

#[test]
fn unregister_wakes_every_async_waiter_with_closed() {
    let q = queue();
    let h = q.register("h").unwrap();
    let wakers: Vec<_> = (0..50).map(|_| CountingWaker::new()).collect();
    let mut waits: Vec<_> = (0..50).map(|_| q.wait(h)).collect();
    for (w, (_, waker)) in waits.iter_mut().zip(&wakers) {
        assert!(poll_once(w, waker).is_pending());
    }
    q.unregister(h).unwrap();
    for (w, (count, waker)) in waits.iter_mut().zip(&wakers) {
        assert_eq!(count.count(), 1);
        assert_eq!(poll_once(w, waker), Poll::Ready(Err(QueueError::Closed)));
    }
}

#[test]
fn unregister_wakes_every_blocked_thread_with_closed() {
    let q = queue();
    let h = q.register("h").unwrap();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let q = q.clone();
            let snap = q.snapshot(h).unwrap();
            thread::spawn(move || q.wait_after(snap).wait())
        })
        .collect();
    while q.waiters(h).unwrap().len() < 4 {
        thread::yield_now();
    }
    q.unregister(h).unwrap();
    for t in threads {
        assert_eq!(t.join().unwrap(), Err(QueueError::Closed));
    }
}

#[test]
fn owned_handle_unregisters_on_drop() {
    let q = queue();
    let owned = q.register_owned("owned").unwrap();
    let h = *owned;
    let snap = q.snapshot(h).unwrap();
    assert_eq!(q.stats().handles, 1);
    drop(owned);
    assert_eq!(q.stats().handles, 0);
    assert_eq!(q.wait_after(snap).wait(), Err(QueueError::Closed));
    let kept = q.register_owned("kept").unwrap().into_handle();
    assert!(q.is_registered(kept));
    let explicit = q.register_owned("explicit").unwrap();
    let e = explicit.handle();
    assert_eq!(explicit.unregister(), Ok(()));
    assert!(!q.is_registered(e));
}

#[test]
fn handle_limit_is_typed_and_recovers() {
    let q = NotificationQueue::new(Config::default().max_handles(2));
    let a = q.register("a").unwrap();
    let _b = q.register("b").unwrap();
    assert_eq!(q.register("c"), Err(QueueError::HandleLimit { limit: 2 }));
    q.unregister(a).unwrap();
    assert!(q.register("c").is_ok());
    let none = NotificationQueue::new(Config::default().max_handles(0));
    assert_eq!(
        none.register("x"),
        Err(QueueError::HandleLimit { limit: 0 })
    );
}

#[test]
fn waiter_limit_is_typed_and_recovers() {
    let q = NotificationQueue::new(Config::default().max_waiters_per_handle(3));
    let h = q.register("h").unwrap();
    let (_, waker) = CountingWaker::new();
    let mut waits: Vec<_> = (0..3).map(|_| q.wait(h)).collect();
    for w in &mut waits {
        assert!(poll_once(w, &waker).is_pending());
    }
    let mut extra = q.wait(h);
    assert_eq!(
        poll_once(&mut extra, &waker),
        Poll::Ready(Err(QueueError::WaiterLimit { limit: 3 }))
    );
    waits.pop();
    let mut again = q.wait(h);
    assert!(poll_once(&mut again, &waker).is_pending());
    // Zero waiters allowed: every wait that would sleep is refused.
    let z = NotificationQueue::new(Config::default().max_waiters_per_handle(0));
    let hz = z.register("z").unwrap();
    assert_eq!(z.wait(hz).wait(), Err(QueueError::WaiterLimit { limit: 0 }));
}

/// With `std` a panicking waker is contained: notify reports the wakes and
/// counts the panic.
#[cfg(feature = "std")]
#[test]
fn panicking_waker_neither_poisons_nor_blocks_the_others() {
    let q = queue();
    let h = q.register("h").unwrap();
    let panicky = Waker::from(Arc::new(PanickingWaker));
    let good: Vec<_> = (0..4).map(|_| CountingWaker::new()).collect();
    let mut waits: Vec<_> = (0..5).map(|_| q.wait(h)).collect();
    // Put the panicking waker in the middle of the list.
    for (i, w) in waits.iter_mut().enumerate() {
        let waker = match i {
            2 => &panicky,
            i if i < 2 => &good[i].1,
            i => &good[i - 1].1,
        };
        assert!(poll_once(w, waker).is_pending());
    }
    assert_eq!(q.notify(h, 3), Ok(5));
    for (count, _) in &good {
        assert_eq!(count.count(), 1);
    }
    assert_eq!(q.stats().waker_panics, 1);
    // Still fully usable: register, wait, notify, unregister.
    let h2 = q.register("after").unwrap();
    let snap = q.snapshot(h2).unwrap();
    q.notify(h2, 1).unwrap();
    assert!(q.wait_after(snap).wait().is_ok());
    q.unregister(h).unwrap();
    q.unregister(h2).unwrap();
}

/// Without `std` a panic cannot be caught inside the crate: it unwinds out
/// of the notify that ran the waker. The other wakers that notify took out
/// are still woken, every wait sees the notification, and the queue stays
/// usable.
#[cfg(not(feature = "std"))]
#[test]
fn panicking_waker_unwinds_out_of_notify_but_wakes_the_others() {
    let q = queue();
    let h = q.register("h").unwrap();
    let panicky = Waker::from(Arc::new(PanickingWaker));
    let good: Vec<_> = (0..4).map(|_| CountingWaker::new()).collect();
    let mut waits: Vec<_> = (0..5).map(|_| q.wait(h)).collect();
    // Put the panicking waker in the middle of the list.
    for (i, w) in waits.iter_mut().enumerate() {
        let waker = match i {
            2 => &panicky,
            i if i < 2 => &good[i].1,
            i => &good[i - 1].1,
        };
        assert!(poll_once(w, waker).is_pending());
    }
    let notified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.notify(h, 3)));
    assert!(notified.is_err(), "the waker's panic was not propagated");
    for (count, _) in &good {
        assert_eq!(count.count(), 1);
    }
    let (_, quiet) = CountingWaker::new();
    for w in &mut waits {
        match poll_once(w, &quiet) {
            Poll::Ready(Ok(n)) => assert_eq!(n.arg, 3),
            other => panic!("a wait missed the notify: {other:?}"),
        }
    }
    // Still fully usable: register, wait, notify, unregister.
    let h2 = q.register("after").unwrap();
    let snap = q.snapshot(h2).unwrap();
    q.notify(h2, 1).unwrap();
    assert!(q.wait_after(snap).wait().is_ok());
    q.unregister(h).unwrap();
    q.unregister(h2).unwrap();
}

#[cfg(feature = "std")]
#[test]
fn timeouts_and_deadlines() {
    let q = queue();
    let h = q.register("h").unwrap();
    assert_eq!(
        q.wait(h).wait_timeout(Duration::from_millis(5)),
        Err(QueueError::Timeout)
    );
    let past = Instant::now();
    assert_eq!(q.wait(h).wait_deadline(past), Err(QueueError::Timeout));
    // A notify already landed: a deadline in the past still reports it.
    let snap = q.snapshot(h).unwrap();
    q.notify(h, 4).unwrap();
    assert_eq!(q.wait_after(snap).wait_deadline(past).map(|n| n.arg), Ok(4));
    // A huge timeout does not overflow.
    q.notify(h, 5).unwrap();
    assert!(q.wait_after(snap).wait_timeout(Duration::MAX).is_ok());
    // After a timed-out wait nothing is left behind.
    assert!(q.waiters(h).unwrap().is_empty());
}

#[test]
fn debug_dump_lists_handles_waiters_and_hints() {
    let q = queue();
    let a = q.register("disk").unwrap();
    let b = q.register("net").unwrap();
    let (_, waker) = CountingWaker::new();
    let mut w1 = q.wait(a).with_hint("reader-1");
    let mut w2 = q.wait(a).with_hint("reader-2");
    assert!(poll_once(&mut w1, &waker).is_pending());
    assert!(poll_once(&mut w2, &waker).is_pending());
    let dump = q.dump();
    assert_eq!(dump.len(), 2);
    let disk = dump.iter().find(|i| i.handle == a).unwrap();
    assert_eq!(&*disk.hint, "disk");
    let mut hints: Vec<_> = disk
        .waiters
        .iter()
        .map(|w| w.hint.as_deref().unwrap().to_owned())
        .collect();
    hints.sort();
    assert_eq!(hints, ["reader-1", "reader-2"]);
    let net = dump.iter().find(|i| i.handle == b).unwrap();
    assert!(net.waiters.is_empty());
    q.unregister(b).unwrap();
    assert_eq!(q.dump().len(), 1);
}

/// A hint given to a wait that is already pending (registered) is listed
/// at once, a second one replaces it, and a wait that completes or is
/// dropped leaves no hint behind.
#[test]
fn hints_given_to_pending_waits_replace_and_leave_with_them() {
    let q = queue();
    let h = q.register("h").unwrap();
    let (_, waker) = CountingWaker::new();
    let hints = |q: &NotificationQueue| {
        let mut v: Vec<_> = q
            .waiters(h)
            .unwrap()
            .into_iter()
            .map(|w| w.hint.as_deref().map(str::to_owned))
            .collect();
        v.sort();
        v
    };
    let mut a = q.wait(h);
    let mut b = q.wait(h);
    assert!(poll_once(&mut a, &waker).is_pending());
    assert!(poll_once(&mut b, &waker).is_pending());
    assert_eq!(hints(&q), [None, None]);
    let late: std::sync::Arc<str> = "late".into();
    let later: std::sync::Arc<str> = "later".into();
    let a = a.with_hint(late.clone());
    assert_eq!(hints(&q), [None, Some("late".to_owned())]);
    let mut a = a.with_hint(later.clone());
    assert_eq!(hints(&q), [None, Some("later".to_owned())]);
    // The replaced hint is not kept anywhere.
    assert_eq!(std::sync::Arc::strong_count(&late), 1);
    // Still pending after the move, and still registered.
    assert!(poll_once(&mut a, &waker).is_pending());
    let b = b.with_hint("b");
    drop(b);
    assert_eq!(hints(&q), [Some("later".to_owned())]);
    q.notify(h, 1).unwrap();
    assert!(poll_once(&mut a, &waker).is_ready());
    assert_eq!(hints(&q), Vec::<Option<String>>::new());
    drop(a);
    assert_eq!(hints(&q), Vec::<Option<String>>::new());
    // Nor is the last one, once its wait is gone: the list's table let go.
    assert_eq!(std::sync::Arc::strong_count(&later), 1);
}

#[test]
fn stats_count_notifications_and_wakes() {
    let q = queue();
    let a = q.register("a").unwrap();
    let b = q.register("b").unwrap();
    for _ in 0..10 {
        q.notify(a, 0).unwrap();
    }
    q.notify(b, 0).unwrap();
    q.unregister(b).unwrap();
    let (_, waker) = CountingWaker::new();
    let mut w = q.wait(a);
    assert!(poll_once(&mut w, &waker).is_pending());
    q.notify(a, 0).unwrap();
    let s = q.stats();
    assert_eq!(s.handles, 1);
    assert_eq!(s.notifications, 12);
    assert_eq!(s.wakes, 1);
    assert_eq!(s.slow_notifications, 1);
    assert!(s.memory_bytes > 0);
}

#[test]
fn many_notifier_threads_with_a_blocked_waiter_lose_no_wakeup() {
    const THREADS: usize = 2;
    const PER_THREAD: u64 = 50_000;
    let q = queue();
    let h = q.register("h").unwrap();
    let done = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let notifiers: Vec<_> = (0..THREADS)
        .map(|_| {
            let (q, done, start) = (q.clone(), done.clone(), start.clone());
            thread::spawn(move || {
                start.wait();
                for _ in 0..PER_THREAD {
                    done.fetch_add(1, Ordering::Release);
                    q.notify(h, 1).unwrap();
                }
            })
        })
        .collect();
    start.wait();
    let target = THREADS as u64 * PER_THREAD;
    loop {
        let snap = q.snapshot(h).unwrap();
        if done.load(Ordering::Acquire) == target {
            break;
        }
        common::wait_timeout(q.wait_after(snap), Duration::from_secs(10)).unwrap();
    }
    for t in notifiers {
        t.join().unwrap();
    }
    assert_eq!(q.stats().notifications, target);
}

#[test]
fn unregister_racing_waiters_and_notifiers_never_strands_a_waiter() {
    for _ in 0..200 {
        let q = queue();
        let h = q.register("h").unwrap();
        let go = Arc::new(Barrier::new(4));
        let stop = Arc::new(AtomicBool::new(false));
        let waiters: Vec<_> = (0..2)
            .map(|_| {
                let (q, go) = (q.clone(), go.clone());
                thread::spawn(move || {
                    go.wait();
                    loop {
                        match common::wait_timeout(q.wait(h), Duration::from_secs(10)) {
                            Ok(_) => continue,
                            Err(e) => return e,
                        }
                    }
                })
            })
            .collect();
        let notifier = {
            let (q, go, stop) = (q.clone(), go.clone(), stop.clone());
            thread::spawn(move || {
                go.wait();
                while !stop.load(Ordering::Relaxed) {
                    if q.notify(h, 1).is_err() {
                        break;
                    }
                }
            })
        };
        go.wait();
        q.unregister(h).unwrap();
        stop.store(true, Ordering::Relaxed);
        for w in waiters {
            let e = w.join().unwrap();
            assert!(
                matches!(e, QueueError::Closed | QueueError::StaleHandle),
                "{e:?}"
            );
        }
        notifier.join().unwrap();
    }
}

#[test]
fn notify_wakes_more_waiters_than_one_wake_batch() {
    let q = queue();
    let h = q.register("h").unwrap();
    let wakers: Vec<_> = (0..100).map(|_| CountingWaker::new()).collect();
    let mut waits: Vec<_> = (0..100).map(|_| q.wait(h)).collect();
    for (w, (_, waker)) in waits.iter_mut().zip(&wakers) {
        assert!(poll_once(w, waker).is_pending());
    }
    assert_eq!(q.notify(h, 8), Ok(100));
    for (w, (count, waker)) in waits.iter_mut().zip(&wakers) {
        assert_eq!(count.count(), 1);
        assert!(matches!(poll_once(w, waker), Poll::Ready(Ok(n)) if n.arg == 8));
    }
    assert_eq!(q.stats().wakes, 100);
}

#[test]
fn sixty_four_bit_arguments_reach_waits_and_subscribers_unchanged() {
    let q = queue();
    let h = q.register("wide").unwrap();
    let mut sub = q.subscribe(h, 8, "wide-sub").unwrap();
    // Another handle's identity as a 64-bit value, and the extremes.
    let other = q.register("other").unwrap();
    let id = (i64::from(other.index()) << 32) | i64::from(other.generation());
    for arg in [i64::MIN, -1, 0, 1 << 40, id, i64::MAX] {
        let snap = q.snapshot(h).unwrap();
        assert_eq!(q.notify(h, arg), Ok(1));
        assert_eq!(q.wait_after(snap).wait().map(|n| n.arg), Ok(arg));
        assert_eq!(sub.try_recv(), Ok(arg));
    }
}
