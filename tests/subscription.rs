//! Subscriptions: ordering, overflow accounting, unsubscribe, close after
//! drain, a stalled subscriber never stalling notify, concurrent notifiers,
//! every error case.

mod common;

use common::{CountingWaker, PanickingWaker, poll_once};
use notification_queue::{
    Config, NotificationQueue, Overflow, QueueError, RecvError, RecvTimeoutError, SubscribeOptions,
    Subscription, TryRecvError,
};
use std::sync::{Arc, Barrier};
use std::task::Poll;
use std::thread;
use std::time::{Duration, Instant};

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

/// Receives until `Empty`, returning the values and the total lag reported.
fn drain(sub: &mut Subscription) -> (Vec<i64>, u64) {
    let (mut values, mut lag) = (Vec::new(), 0);
    loop {
        match sub.try_recv() {
            Ok(v) => values.push(v),
            Err(TryRecvError::Lagged(n)) => lag += n,
            Err(TryRecvError::Empty | TryRecvError::Closed) => return (values, lag),
        }
    }
}

#[test]
fn values_arrive_in_order_per_subscriber() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut a = q.subscribe(h, 1000, "a").unwrap();
    let mut b = q.subscribe(h, 1000, "b").unwrap();
    for v in 0..1000 {
        assert_eq!(q.notify(h, v), Ok(2));
    }
    let want: Vec<i64> = (0..1000).collect();
    assert_eq!(drain(&mut a), (want.clone(), 0));
    assert_eq!(drain(&mut b), (want, 0));
    let s = q.stats();
    assert_eq!((s.delivered, s.dropped), (2000, 0));
}

#[test]
fn overflow_keeps_newest_and_reports_exact_lag() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, 4, "s").unwrap();
    for v in 0..10 {
        assert_eq!(q.notify(h, v), Ok(1));
    }
    assert_eq!(sub.len(), 4);
    assert_eq!(sub.dropped(), 6);
    assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged(6)));
    for v in 6..10 {
        assert_eq!(sub.try_recv(), Ok(v));
    }
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    // Partly drained, then overflowed again: only the overwritten count.
    q.notify(h, 10).unwrap();
    q.notify(h, 11).unwrap();
    assert_eq!(sub.try_recv(), Ok(10));
    for v in 12..20 {
        q.notify(h, v).unwrap();
    }
    // Buffered: 11..19 (9 values) into 4 cells: 11..15 lost.
    assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged(5)));
    assert_eq!(drain(&mut sub), ((16..20).collect(), 0));
    assert_eq!(sub.dropped(), 11);
    let s = q.stats();
    assert_eq!((s.delivered, s.dropped), (20, 11));
}

#[test]
fn overflow_keep_oldest_rejects_and_reports_exact_lag() {
    let q = queue();
    let h = q.register("h").unwrap();
    let opts = SubscribeOptions::new(3)
        .overflow(Overflow::KeepOldest)
        .hint("old");
    let mut sub = q.subscribe_with(h, opts).unwrap();
    assert_eq!(sub.overflow(), Overflow::KeepOldest);
    for v in 1..=7 {
        // Rejected values are not delivered.
        assert_eq!(q.notify(h, v), Ok(usize::from(v <= 3)));
    }
    assert_eq!(sub.dropped(), 4);
    assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged(4)));
    assert_eq!(drain(&mut sub), (vec![1, 2, 3], 0));
    q.notify(h, 8).unwrap();
    assert_eq!(sub.try_recv(), Ok(8));
    let s = q.stats();
    assert_eq!((s.delivered, s.dropped), (4, 4));
}

#[test]
fn dropping_unsubscribes_and_frees_the_limit() {
    let q = NotificationQueue::new(Config::default().max_subscribers_per_handle(2));
    let h = q.register("h").unwrap();
    let a = q.subscribe(h, 4, "a").unwrap();
    let b = q.subscribe(h, 4, "b").unwrap();
    assert_eq!(
        q.subscribe(h, 4, "c").err(),
        Some(QueueError::SubscriberLimit { limit: 2 })
    );
    assert_eq!(q.notify(h, 1), Ok(2));
    drop(a);
    assert_eq!(q.dump()[0].subscribers.len(), 1);
    assert_eq!(q.notify(h, 2), Ok(1));
    let c = q.subscribe(h, 4, "c").unwrap();
    assert_eq!(q.notify(h, 3), Ok(2));
    b.unsubscribe();
    drop(c);
    assert!(q.dump()[0].subscribers.is_empty());
    // With the last subscriber gone notify is back on its fast path.
    let slow = q.stats().slow_notifications;
    assert_eq!(q.notify(h, 4), Ok(0));
    assert_eq!(q.stats().slow_notifications, slow);
}

#[test]
fn unregister_ends_subscriptions_after_drain() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, 8, "s").unwrap();
    let mut other = q.subscribe(h, 8, "t").unwrap();
    for v in 1..=3 {
        q.notify(h, v).unwrap();
    }
    q.unregister(h).unwrap();
    assert!(sub.is_closed());
    assert_eq!(sub.len(), 3);
    assert_eq!(sub.try_recv(), Ok(1));
    assert_eq!(sub.recv().wait(), Ok(2));
    assert_eq!(
        common::recv_timeout(&mut sub, Duration::from_secs(5)),
        Ok(3)
    );
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    assert_eq!(sub.recv().wait(), Err(RecvError::Closed));
    assert_eq!(
        common::recv_deadline(&mut sub, Instant::now() + Duration::from_secs(5)),
        Err(RecvTimeoutError::Closed)
    );
    assert_eq!(
        futures::executor::block_on(other.recv()),
        Ok(1),
        "the other subscriber drains too"
    );
    assert_eq!(q.notify(h, 4), Err(QueueError::StaleHandle));
}

#[test]
fn blocked_receiver_is_ended_by_unregister() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, 8, "s").unwrap();
    let t = thread::spawn(move || sub.recv().wait());
    // Whether the receiver is parked yet or not, the outcome is Closed.
    q.unregister(h).unwrap();
    assert_eq!(t.join().unwrap(), Err(RecvError::Closed));
}

#[test]
fn new_owner_of_a_slot_never_sees_old_subscribers() {
    let q = queue();
    let h1 = q.register("old").unwrap();
    let mut old = q.subscribe(h1, 8, "old-sub").unwrap();
    q.unregister(h1).unwrap();
    let h2 = q.register("new").unwrap();
    assert_eq!(h2.index(), h1.index(), "the slot is reused");
    assert_eq!(q.notify(h2, 9), Ok(0));
    assert!(q.dump()[0].subscribers.is_empty());
    assert_eq!(old.try_recv(), Err(TryRecvError::Closed));
    let mut new = q.subscribe(h2, 8, "new-sub").unwrap();
    drop(old); // must not remove the new owner's subscriber
    assert_eq!(q.notify(h2, 10), Ok(1));
    assert_eq!(new.try_recv(), Ok(10));
}

#[test]
fn subscriber_that_never_reads_does_not_stall_notify() {
    const N: i64 = 100_000;
    let q = queue();
    let h = q.register("h").unwrap();
    let stuck = q.subscribe(h, 8, "stuck").unwrap();
    let stuck_old = q
        .subscribe_with(h, SubscribeOptions::new(8).overflow(Overflow::KeepOldest))
        .unwrap();
    let mut live = q.subscribe(h, 1, "live").unwrap();
    for v in 0..N {
        // Returns (does not wait for the stuck subscribers) and the
        // keep-newest one still takes every value.
        let n = q.notify(h, v).unwrap();
        assert_eq!(n, if v < 8 { 3 } else { 2 });
        assert_eq!(live.try_recv(), Ok(v), "the reading subscriber keeps up");
    }
    assert_eq!(stuck.len(), 8);
    assert_eq!(stuck.dropped(), (N - 8) as u64);
    assert_eq!(stuck_old.dropped(), (N - 8) as u64);
    assert_eq!(live.dropped(), 0);
    let info = &q.dump()[0].subscribers;
    let stuck_info = info.iter().find(|i| &*i.hint == "stuck").unwrap();
    assert_eq!(
        (stuck_info.len, stuck_info.capacity, stuck_info.dropped),
        (8, 8, (N - 8) as u64)
    );
    assert_eq!(q.stats().dropped, 2 * (N - 8) as u64);
}

#[test]
fn many_notifiers_into_one_subscriber_lose_nothing_below_capacity() {
    const THREADS: i64 = 4;
    const PER: i64 = 2500;
    let q = queue();
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, (THREADS * PER) as usize, "s").unwrap();
    let barrier = Arc::new(Barrier::new(THREADS as usize));
    let joins: Vec<_> = (0..THREADS)
        .map(|t| {
            let (q, barrier) = (q.clone(), barrier.clone());
            thread::spawn(move || {
                barrier.wait();
                for i in 0..PER {
                    assert_eq!(q.notify(h, t * PER + i), Ok(1));
                }
            })
        })
        .collect();
    // Receive concurrently with the notifiers.
    let mut got = Vec::new();
    while got.len() < (THREADS * PER) as usize {
        match common::recv_timeout(&mut sub, Duration::from_secs(10)) {
            Ok(v) => got.push(v),
            other => panic!("unexpected {other:?} after {} values", got.len()),
        }
    }
    for j in joins {
        j.join().unwrap();
    }
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(sub.dropped(), 0);
    // Each notifier's values arrive in its own order.
    for t in 0..THREADS {
        let mine: Vec<i64> = got.iter().copied().filter(|v| v / PER == t).collect();
        assert_eq!(mine, (t * PER..(t + 1) * PER).collect::<Vec<_>>());
    }
}

#[test]
fn racing_notifiers_and_a_small_buffer_account_for_every_value() {
    const THREADS: i64 = 3;
    const PER: i64 = 20_000;
    for overflow in [Overflow::KeepNewest, Overflow::KeepOldest] {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut sub = q
            .subscribe_with(h, SubscribeOptions::new(4).overflow(overflow))
            .unwrap();
        let joins: Vec<_> = (0..THREADS)
            .map(|t| {
                let q = q.clone();
                thread::spawn(move || {
                    for i in 0..PER {
                        q.notify(h, t * PER + i).unwrap();
                    }
                })
            })
            .collect();
        let (mut got, mut lag) = (Vec::new(), 0u64);
        while joins.iter().any(|j| !j.is_finished()) {
            let (v, l) = drain(&mut sub);
            got.extend(v);
            lag += l;
        }
        for j in joins {
            j.join().unwrap();
        }
        let (v, l) = drain(&mut sub);
        got.extend(v);
        lag += l;
        let total = (THREADS * PER) as u64;
        assert_eq!(got.len() as u64 + lag, total, "{overflow:?}");
        assert_eq!(sub.dropped(), lag, "{overflow:?}");
        assert_eq!(q.stats().dropped, lag, "{overflow:?}");
        for t in 0..THREADS {
            let mine: Vec<i64> = got.iter().copied().filter(|v| v / PER == t).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "{overflow:?}");
        }
    }
}

#[test]
fn every_error_case_is_typed() {
    let q = NotificationQueue::new(
        Config::default()
            .max_subscriber_capacity(16)
            .max_subscribers_per_handle(1),
    );
    let h = q.register("h").unwrap();
    assert_eq!(
        q.subscribe(h, 0, "zero").err(),
        Some(QueueError::InvalidCapacity {
            requested: 0,
            max: 16
        })
    );
    assert_eq!(
        q.subscribe(h, 17, "big").err(),
        Some(QueueError::InvalidCapacity {
            requested: 17,
            max: 16
        })
    );
    let _one = q.subscribe(h, 16, "max is fine").unwrap();
    assert_eq!(
        q.subscribe(h, 1, "two").err(),
        Some(QueueError::SubscriberLimit { limit: 1 })
    );
    let other = queue();
    let foreign = other.register("foreign").unwrap();
    assert_eq!(
        q.subscribe(foreign, 1, "f").err(),
        Some(QueueError::StaleHandle)
    );
    q.unregister(h).unwrap();
    assert_eq!(
        q.subscribe(h, 1, "late").err(),
        Some(QueueError::StaleHandle)
    );
    let h2 = q.register("reused").unwrap();
    assert_eq!(h2.index(), h.index());
    assert_eq!(
        q.subscribe(h, 1, "stale").err(),
        Some(QueueError::StaleHandle)
    );
    let huge = NotificationQueue::new(Config::default().max_subscriber_capacity(usize::MAX));
    let hh = huge.register("h").unwrap();
    assert!(matches!(
        huge.subscribe(hh, usize::MAX, "x"),
        Err(QueueError::InvalidCapacity { .. })
    ));
    assert_eq!(
        TryRecvError::Lagged(3).to_string(),
        "subscriber lagged: 3 values lost"
    );
}

#[test]
fn async_recv_is_woken_and_cancel_safe() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, 4, "s").unwrap();
    let (count, waker) = CountingWaker::new();
    {
        let mut fut = sub.recv();
        assert_eq!(poll_once(&mut fut, &waker), Poll::Pending);
        q.notify(h, 5).unwrap();
        assert_eq!(count.count(), 1);
        // Dropped before being polled again: the value stays buffered.
    }
    assert_eq!(sub.len(), 1);
    let mut fut = sub.recv();
    assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Ok(5)));
}

#[cfg(feature = "std")]
#[test]
fn panicking_receiver_waker_does_not_stop_delivery() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut bad = q.subscribe(h, 4, "bad").unwrap();
    let mut good = q.subscribe(h, 4, "good").unwrap();
    let (count, waker) = CountingWaker::new();
    let panicking = std::task::Waker::from(Arc::new(PanickingWaker));
    let mut f1 = bad.recv();
    assert_eq!(poll_once(&mut f1, &panicking), Poll::Pending);
    let mut f2 = good.recv();
    assert_eq!(poll_once(&mut f2, &waker), Poll::Pending);
    assert_eq!(q.notify(h, 7), Ok(2));
    assert_eq!(count.count(), 1);
    assert_eq!(q.stats().waker_panics, 1);
    assert_eq!(poll_once(&mut f2, &waker), Poll::Ready(Ok(7)));
    assert_eq!(poll_once(&mut f1, &waker), Poll::Ready(Ok(7)));
}

/// Without `std` the panic unwinds out of notify (it cannot be caught in
/// the crate), but the value reached both subscriptions and the other
/// receiver was still woken.
#[cfg(not(feature = "std"))]
#[test]
fn panicking_receiver_waker_unwinds_but_does_not_stop_delivery() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut bad = q.subscribe(h, 4, "bad").unwrap();
    let mut good = q.subscribe(h, 4, "good").unwrap();
    let (count, waker) = CountingWaker::new();
    let panicking = std::task::Waker::from(Arc::new(PanickingWaker));
    let mut f1 = bad.recv();
    assert_eq!(poll_once(&mut f1, &panicking), Poll::Pending);
    let mut f2 = good.recv();
    assert_eq!(poll_once(&mut f2, &waker), Poll::Pending);
    let notified = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| q.notify(h, 7)));
    assert!(notified.is_err(), "the waker's panic was not propagated");
    assert_eq!(count.count(), 1);
    assert_eq!(poll_once(&mut f2, &waker), Poll::Ready(Ok(7)));
    assert_eq!(poll_once(&mut f1, &waker), Poll::Ready(Ok(7)));
    // Still usable.
    drop((f1, f2));
    assert_eq!(q.notify(h, 8), Ok(2));
    assert_eq!(bad.try_recv(), Ok(8));
    assert_eq!(good.try_recv(), Ok(8));
}

#[cfg(feature = "std")]
#[test]
fn recv_timeout_and_deadline_time_out() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, 4, "s").unwrap();
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(5)),
        Err(RecvTimeoutError::Timeout)
    );
    assert_eq!(
        sub.recv_deadline(Instant::now()),
        Err(RecvTimeoutError::Timeout)
    );
    for v in 0..6 {
        q.notify(h, v).unwrap();
    }
    assert_eq!(
        sub.recv_timeout(Duration::MAX),
        Err(RecvTimeoutError::Lagged(2))
    );
    assert_eq!(sub.recv_timeout(Duration::MAX), Ok(2));
}

#[test]
fn subscription_moves_to_another_thread() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, 4, "s").unwrap();
    q.notify(h, 1).unwrap();
    let got = thread::spawn(move || sub.try_recv()).join().unwrap();
    assert_eq!(got, Ok(1));
}

#[test]
fn dump_lists_subscribers_with_hints_and_depths() {
    let q = queue();
    let h = q.register("h").unwrap();
    let _a = q.subscribe(h, 2, "alpha").unwrap();
    let _b = q
        .subscribe_with(
            h,
            SubscribeOptions::new(8)
                .overflow(Overflow::KeepOldest)
                .hint("beta"),
        )
        .unwrap();
    for v in 0..3 {
        q.notify(h, v).unwrap();
    }
    let subs = &q.dump()[0].subscribers;
    let view: Vec<(&str, usize, usize, u64, Overflow)> = subs
        .iter()
        .map(|s| (&*s.hint, s.len, s.capacity, s.dropped, s.overflow))
        .collect();
    assert_eq!(
        view,
        vec![
            ("alpha", 2, 2, 1, Overflow::KeepNewest),
            ("beta", 3, 8, 0, Overflow::KeepOldest)
        ]
    );
}

#[cfg(feature = "stream")]
#[test]
fn stream_yields_values_lag_and_ends_after_close() {
    use futures::StreamExt;
    let q = queue();
    let h = q.register("h").unwrap();
    let sub = q.subscribe(h, 2, "s").unwrap();
    for v in 0..4 {
        q.notify(h, v).unwrap();
    }
    q.unregister(h).unwrap();
    let items: Vec<_> = futures::executor::block_on(sub.collect());
    use notification_queue::Lagged;
    assert_eq!(items, vec![Err(Lagged(2)), Ok(2), Ok(3)]);
}

#[test]
fn notify_wakes_more_sleeping_receivers_than_one_wake_batch() {
    let q = NotificationQueue::new(Config::default().max_subscribers_per_handle(100));
    let h = q.register("h").unwrap();
    let mut subs: Vec<_> = (0..70).map(|_| q.subscribe(h, 4, "s").unwrap()).collect();
    let wakers: Vec<_> = (0..70).map(|_| CountingWaker::new()).collect();
    let mut recvs: Vec<_> = subs.iter_mut().map(|s| s.recv()).collect();
    for (r, (_, waker)) in recvs.iter_mut().zip(&wakers) {
        assert!(poll_once(r, waker).is_pending());
    }
    assert_eq!(q.notify(h, 5), Ok(70));
    for (r, (count, waker)) in recvs.iter_mut().zip(&wakers) {
        assert_eq!(count.count(), 1);
        assert_eq!(poll_once(r, waker), Poll::Ready(Ok(5)));
    }
}

/// A `Recv` dropped while pending leaves nothing registered: the next notify
/// wakes nobody and the subscription holds no clone of the waker.
#[test]
fn dropped_pending_recv_leaves_no_waker_behind() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, 4, "s").unwrap();
    let (count, waker) = CountingWaker::new();
    {
        let mut fut = sub.recv();
        assert_eq!(poll_once(&mut fut, &waker), Poll::Pending);
        assert_eq!(Arc::strong_count(&count), 3); // ours, `waker`, registered
    } // cancelled
    assert_eq!(
        Arc::strong_count(&count),
        2,
        "the subscription kept the waker"
    );
    q.notify(h, 1).unwrap();
    assert_eq!(count.count(), 0, "a cancelled receive was woken");
    // Nothing was lost by cancelling.
    assert_eq!(sub.try_recv(), Ok(1));
}

/// The same for a blocking receive that times out: it leaves no thread
/// waker behind.
#[cfg(feature = "std")]
#[test]
fn timed_out_recv_leaves_no_waker_behind() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, 4, "s").unwrap();
    assert_eq!(
        sub.recv_timeout(Duration::from_millis(1)),
        Err(RecvTimeoutError::Timeout)
    );
    let (count, waker) = CountingWaker::new();
    // A later pending poll registers its own waker, and a notify wakes it
    // (the cleanup must not break registration).
    let mut fut = sub.recv();
    assert_eq!(poll_once(&mut fut, &waker), Poll::Pending);
    q.notify(h, 2).unwrap();
    assert_eq!(count.count(), 1);
    assert_eq!(poll_once(&mut fut, &waker), Poll::Ready(Ok(2)));
}

/// `Stats::delivered` and `Stats::dropped` stay exact when a handle's slot
/// gets a new owner who subscribes while the old generation's subscription
/// is still alive (its closed ring leaves the slot's list then), and after
/// that subscription is dropped: each value counts once.
#[test]
fn stats_stay_exact_when_a_slot_changes_owner_under_a_live_subscription() {
    let q = NotificationQueue::new(Config::default().max_handles(1));
    let h = q.register("old").unwrap();
    let mut old = q.subscribe(h, 2, "old").unwrap();
    for v in 0..5 {
        q.notify(h, v).unwrap();
    }
    assert_eq!((q.stats().delivered, q.stats().dropped), (5, 3));
    q.unregister(h).unwrap();
    let h2 = q.register("new").unwrap();
    assert_eq!(h2.index(), h.index(), "one slot: reused");
    let mut new = q.subscribe(h2, 1, "new").unwrap();
    q.notify(h2, 7).unwrap();
    q.notify(h2, 8).unwrap();
    assert_eq!((q.stats().delivered, q.stats().dropped), (7, 4));
    assert_eq!(old.try_recv(), Err(TryRecvError::Lagged(3)));
    assert_eq!(old.try_recv(), Ok(3));
    assert_eq!((q.stats().delivered, q.stats().dropped), (7, 4));
    drop(old);
    assert_eq!((q.stats().delivered, q.stats().dropped), (7, 4));
    assert_eq!(new.try_recv(), Err(TryRecvError::Lagged(1)));
    drop(new);
    assert_eq!((q.stats().delivered, q.stats().dropped), (7, 4));
}

/// A blocking receive that finds its outcome while it spins (before it
/// parks) reports the same things in the same order as a poll: the lag
/// first, then the values kept, then `Closed` after the drain.
#[test]
fn blocking_recv_reports_lag_values_and_close_in_order() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, 2, "").unwrap();
    for v in 1..=5 {
        q.notify(h, v).unwrap();
    }
    assert_eq!(sub.recv().wait(), Err(RecvError::Lagged(3)));
    assert_eq!(sub.recv().wait(), Ok(4));
    assert_eq!(sub.recv().wait(), Ok(5));
    q.unregister(h).unwrap();
    assert_eq!(sub.recv().wait(), Err(RecvError::Closed));
}

/// Two threads answer each other through blocking receives on two
/// subscriptions: every value arrives, in order, whether a receive finds it
/// while spinning or after parking.
#[test]
fn blocking_recv_ping_pong_delivers_every_value() {
    const ROUNDS: i64 = 20_000;
    let q = queue();
    let (ping, pong) = (q.register("ping").unwrap(), q.register("pong").unwrap());
    let mut ping_sub = q.subscribe(ping, 4, "").unwrap();
    let mut pong_sub = q.subscribe(pong, 4, "").unwrap();
    let q2 = q.clone();
    let echo = thread::spawn(move || {
        for i in 0..ROUNDS {
            assert_eq!(ping_sub.recv().wait(), Ok(i));
            q2.notify(pong, -i).unwrap();
        }
    });
    for i in 0..ROUNDS {
        q.notify(ping, i).unwrap();
        assert_eq!(pong_sub.recv().wait(), Ok(-i));
    }
    echo.join().unwrap();
    assert_eq!(pong_sub.try_recv(), Err(TryRecvError::Empty));
}

/// Subscribers that join a handle while another thread notifies it: each
/// one gets exactly the values notified after it joined (never one whose
/// notify returned before its subscribe began, and every one from some
/// point on, in order and without gaps, whatever its overflow policy), and
/// the notifies' return values add up to the values received. This is
/// what one shared position counter per handle must keep: a position and
/// the list of rings it is for are claimed together.
#[test]
fn subscribers_joining_a_busy_handle_get_exactly_what_came_after_them() {
    use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
    const N: i64 = 20_000;
    const JOINERS: usize = 24;
    let q = queue();
    let h = q.register("h").unwrap();
    // Keeps the feed busy from the start.
    let mut first = q.subscribe(h, N as usize, "first").unwrap();
    let published = Arc::new(AtomicI64::new(-1));
    let counted = Arc::new(AtomicU64::new(0));
    let start = Arc::new(Barrier::new(2));
    let notifier = {
        let (q, published, counted, start) =
            (q.clone(), published.clone(), counted.clone(), start.clone());
        thread::spawn(move || {
            start.wait();
            for v in 0..N {
                let n = q.notify(h, v).unwrap();
                counted.fetch_add(n as u64, Ordering::Relaxed);
                published.store(v, Ordering::Release);
            }
        })
    };
    start.wait();
    let mut joined = Vec::new();
    for i in 0..JOINERS {
        let before = published.load(Ordering::Acquire);
        let overflow = if i % 2 == 0 {
            Overflow::KeepNewest
        } else {
            Overflow::KeepOldest
        };
        let opts = SubscribeOptions::new(N as usize).overflow(overflow);
        joined.push((before, q.subscribe_with(h, opts).unwrap()));
        // Spread the joins over the stream (no sleep: the notifier's
        // progress is what we wait for).
        let target = (i as i64 + 1) * N / (JOINERS as i64 + 1);
        while published.load(Ordering::Acquire) < target {
            std::hint::spin_loop();
        }
    }
    notifier.join().unwrap();
    let mut received = 0u64;
    let (all, lag) = drain(&mut first);
    assert_eq!((all, lag), ((0..N).collect::<Vec<_>>(), 0));
    received += N as u64;
    for (before, mut sub) in joined {
        let (values, lag) = drain(&mut sub);
        assert_eq!(lag, 0, "{:?}", sub.overflow());
        let Some(&first_value) = values.first() else {
            // Joined after the last notify claimed its position.
            continue;
        };
        assert!(
            first_value > before,
            "got {first_value}, notified before joining"
        );
        let want: Vec<i64> = (first_value..N).collect();
        assert_eq!(values, want, "{:?}", sub.overflow());
        received += values.len() as u64;
    }
    assert_eq!(counted.load(Ordering::Relaxed), received);
    assert_eq!(q.stats().delivered, received);
    assert_eq!(q.stats().dropped, 0);
}

/// A subscriber that joins after values were notified starts empty: its
/// length, drop count and dump entry count only what came after it, while
/// an earlier subscriber's show its own overflow.
#[test]
fn a_late_subscriber_starts_empty_in_len_dropped_and_dump() {
    let q = queue();
    let h = q.register("h").unwrap();
    let early = q.subscribe(h, 2, "early").unwrap();
    for v in 0..5 {
        q.notify(h, v).unwrap();
    }
    let mut late = q.subscribe(h, 2, "late").unwrap();
    assert_eq!((late.len(), late.dropped()), (0, 0));
    assert_eq!((early.len(), early.dropped()), (2, 3));
    let info = |name: &str| {
        let dump = q.dump();
        let s = dump[0]
            .subscribers
            .iter()
            .find(|s| &*s.hint == name)
            .cloned();
        s.map(|s| (s.len, s.dropped))
    };
    assert_eq!(info("late"), Some((0, 0)));
    assert_eq!(info("early"), Some((2, 3)));
    q.notify(h, 5).unwrap();
    assert_eq!((late.len(), late.dropped()), (1, 0));
    assert_eq!(info("late"), Some((1, 0)));
    assert_eq!(late.try_recv(), Ok(5));
    assert_eq!((late.len(), late.dropped()), (0, 0));
    // The early one, never drained, lost 0, 1, 2 and now 3.
    assert_eq!(early.dropped(), 4);
    assert_eq!(q.stats().dropped, 4);
}

/// Keep-newest subscribers of one handle with the same capacity share one
/// buffer, yet each keeps its own position: a reader that drains often, one
/// that never does until the end and one that joins late each get exactly
/// their own values and lags, and dropping one leaves the others whole.
#[test]
fn subscribers_sharing_a_buffer_keep_their_own_positions() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut eager = q.subscribe(h, 4, "eager").unwrap();
    let mut silent = q.subscribe(h, 4, "silent").unwrap();
    let mut eager_got = Vec::new();
    for v in 0..5 {
        q.notify(h, v).unwrap();
        assert_eq!(eager.try_recv(), Ok(v));
        eager_got.push(v);
    }
    let mut late = q.subscribe(h, 4, "late").unwrap();
    let gone = q.subscribe(h, 4, "dropped").unwrap();
    for v in 5..12 {
        assert_eq!(q.notify(h, v).unwrap(), 4);
        if v % 2 == 0 {
            let (values, lag) = drain(&mut eager);
            assert_eq!(lag, 0);
            eager_got.extend(values);
        }
    }
    drop(gone);
    for v in 12..14 {
        assert_eq!(q.notify(h, v).unwrap(), 3);
    }
    let (values, lag) = drain(&mut eager);
    eager_got.extend(values);
    assert_eq!((eager_got, lag), ((0..14).collect::<Vec<_>>(), 0));
    // 14 values into 4 cells: the newest 4, and an exact lag for the rest.
    assert_eq!(silent.dropped(), 10);
    assert_eq!(drain(&mut silent), ((10..14).collect::<Vec<_>>(), 10));
    // Joined after 5 values: 9 since, of which the newest 4 stay.
    assert_eq!(late.len(), 4);
    assert_eq!(drain(&mut late), ((10..14).collect::<Vec<_>>(), 5));
    // And the dropped one had 7 values in 4 cells when it went.
    assert_eq!(q.stats().dropped, 10 + 5 + 3);
}

/// Rings of different capacities and policies on one handle each keep
/// their own capacity: a keep-newest ring keeps exactly its newest `cap`
/// values whether it has cells of its own or shares larger ones, and a
/// keep-oldest ring has its own buffer.
#[test]
fn rings_of_mixed_capacities_and_policies_keep_their_own_limits() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut two = q.subscribe(h, 2, "two").unwrap();
    let mut three = q.subscribe(h, 3, "three").unwrap();
    let mut oldest = q
        .subscribe_with(h, SubscribeOptions::new(2).overflow(Overflow::KeepOldest))
        .unwrap();
    let mut two_again = q.subscribe(h, 2, "two again").unwrap();
    for v in 0..5 {
        assert_eq!(q.notify(h, v).unwrap(), 3 + (v < 2) as usize);
    }
    assert_eq!(drain(&mut two), (vec![3, 4], 3));
    assert_eq!(drain(&mut three), (vec![2, 3, 4], 2));
    assert_eq!(drain(&mut oldest), (vec![0, 1], 3));
    assert_eq!(drain(&mut two_again), (vec![3, 4], 3));
}

/// A keep-newest ring shares the smallest listed cells with room for its
/// capacity, even a larger one, and still keeps exactly its own newest
/// `cap` values, with exact lags and lengths, at capacities that are not
/// powers of two; a ring too large for every listed buffer makes its own,
/// and the smaller ones keep theirs when it comes and goes.
#[test]
fn smaller_rings_share_larger_cells_and_keep_their_own_capacity() {
    let q = queue();
    let h = q.register("h").unwrap();
    let mut eight = q.subscribe(h, 8, "eight").unwrap();
    let mut three = q.subscribe(h, 3, "three").unwrap();
    let mut five = q.subscribe(h, 5, "five").unwrap();
    for v in 0..10 {
        assert_eq!(q.notify(h, v).unwrap(), 3);
    }
    assert_eq!((eight.len(), three.len(), five.len()), (8, 3, 5));
    assert_eq!(
        (eight.dropped(), three.dropped(), five.dropped()),
        (2, 7, 5)
    );
    assert_eq!(drain(&mut three), (vec![7, 8, 9], 7));
    assert_eq!(drain(&mut five), ((5..10).collect(), 5));
    let mut large = q.subscribe(h, 9, "nine").unwrap();
    for v in 10..30 {
        assert_eq!(q.notify(h, v).unwrap(), 4);
    }
    assert_eq!(drain(&mut eight), ((22..30).collect(), 22));
    assert_eq!(drain(&mut three), (vec![27, 28, 29], 17));
    assert_eq!(drain(&mut large), ((21..30).collect(), 11));
    drop(large);
    assert_eq!(q.notify(h, 30).unwrap(), 3);
    assert_eq!(drain(&mut five), ((26..31).collect(), 16));
    assert_eq!(drain(&mut three), (vec![30], 0));
}
