//! Loom models of subscriptions. Each test states the property it checks.
#![cfg(notification_queue_loom)]

use loom::future::block_on;
use loom::thread;
use notification_queue::{
    Config, NotificationQueue, Overflow, QueueError, RecvError, SubscribeOptions, Subscription,
    TryRecvError,
};

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

/// A notify racing with subscribe delivers to the new subscriber exactly
/// when it reports having delivered to it (it either sees the subscription
/// or linearised before it).
#[test]
fn notify_vs_subscribe() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || q2.notify(h, 1).unwrap());
        let mut sub = q.subscribe(h, 2, "s").unwrap();
        let n = t.join().unwrap();
        let got = sub.try_recv();
        assert_eq!(n == 1, got == Ok(1), "n = {n}, got = {got:?}");
        if n == 0 {
            assert_eq!(got, Err(TryRecvError::Empty));
        }
    });
}

/// No lost wakeup: a receiver going to sleep while a notify writes its ring
/// (the `waiting` flag and the two `SeqCst` fences) always gets the value.
#[test]
fn notify_vs_blocked_receiver() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut sub = q.subscribe(h, 1, "s").unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || {
            q2.notify(h, 1).unwrap();
            q2.notify(h, 2).unwrap();
        });
        let first = block_on(sub.recv());
        // Either 1 was received, or it was overwritten by 2 (capacity 1).
        match first {
            Ok(1) => assert_eq!(block_on(sub.recv()), Ok(2)),
            Err(RecvError::Lagged(1)) => assert_eq!(block_on(sub.recv()), Ok(2)),
            Ok(2) => panic!("2 before 1"),
            other => panic!("unexpected {other:?}"),
        }
        t.join().unwrap();
    });
}

/// Concurrent notify, subscribe and drop of a subscription: an existing
/// subscriber is never lost from the copy-on-write list, and once the
/// transient subscriber is dropped the list holds exactly the survivor.
#[test]
fn notify_vs_subscribe_vs_drop() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut keep = q.subscribe(h, 2, "keep").unwrap();
        let q1 = q.clone();
        let notifier = thread::spawn(move || q1.notify(h, 7).unwrap());
        let q2 = q.clone();
        let churn = thread::spawn(move || {
            let sub = q2.subscribe(h, 2, "churn").unwrap();
            drop(sub);
        });
        let n = notifier.join().unwrap();
        churn.join().unwrap();
        assert!((1..=2).contains(&n));
        assert_eq!(keep.try_recv(), Ok(7));
        assert_eq!(q.dump()[0].subscribers.len(), 1);
        drop(keep);
        assert!(q.dump()[0].subscribers.is_empty());
        assert_eq!(q.notify(h, 8), Ok(0));
    });
}

/// Notify racing with unregister and a blocked receiver: the receiver gets
/// the value exactly when notify stored it, then `Closed` (never hangs); a
/// value that arrived after the close is counted as dropped.
#[test]
fn notify_vs_unregister_vs_receive() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut sub = q.subscribe(h, 2, "s").unwrap();
        let q1 = q.clone();
        let notifier = thread::spawn(move || q1.notify(h, 3));
        let q2 = q.clone();
        let closer = thread::spawn(move || q2.unregister(h).unwrap());
        let mut got = Vec::new();
        loop {
            match block_on(sub.recv()) {
                Ok(v) => got.push(v),
                Err(RecvError::Closed) => break,
                Err(RecvError::Lagged(n)) => panic!("lagged {n}"),
            }
        }
        let n = notifier.join().unwrap();
        closer.join().unwrap();
        match n {
            Ok(1) => assert_eq!((got, sub.dropped()), (vec![3], 0)),
            Ok(0) => assert_eq!((got, sub.dropped()), (vec![], 1)),
            Err(QueueError::StaleHandle) => assert_eq!((got, sub.dropped()), (vec![], 0)),
            other => panic!("unexpected notify result {other:?}"),
        }
    });
}

/// One receive: a value goes to `got`, a lag adds to `lag`, `Empty` does
/// nothing; the subscription must not be closed.
fn step(sub: &mut Subscription, got: &mut Vec<i64>, lag: &mut u64) {
    match sub.try_recv() {
        Ok(v) => got.push(v),
        Err(TryRecvError::Lagged(n)) => *lag += n,
        Err(TryRecvError::Empty) => {}
        Err(TryRecvError::Closed) => panic!("closed"),
    }
}

fn overflow_model(overflow: Overflow) {
    loom::model(move || {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut sub = q
            .subscribe_with(h, SubscribeOptions::new(1).overflow(overflow))
            .unwrap();
        let q1 = q.clone();
        let a = thread::spawn(move || q1.notify(h, 1).unwrap());
        let q2 = q.clone();
        let b = thread::spawn(move || q2.notify(h, 2).unwrap());
        let (mut got, mut lag) = (Vec::new(), 0);
        step(&mut sub, &mut got, &mut lag);
        a.join().unwrap();
        b.join().unwrap();
        for _ in 0..3 {
            step(&mut sub, &mut got, &mut lag);
        }
        assert_eq!(got.len() as u64 + lag, 2, "got {got:?}, lag {lag}");
        assert_eq!(sub.dropped(), lag);
        assert_eq!(q.stats().dropped, lag);
        assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Keep newest, capacity 1, two racing notifiers and a concurrent receive:
/// every value is received or reported in `Lagged`, and the producers'
/// drop count equals the lag reported.
#[test]
fn overflow_accounting_keep_newest() {
    overflow_model(Overflow::KeepNewest);
}

/// Keep oldest: the same accounting when full buffers reject.
#[test]
fn overflow_accounting_keep_oldest() {
    overflow_model(Overflow::KeepOldest);
}

/// Counts wakes; std atomics are fine here (a statistic read after joins).
#[derive(Default)]
struct CountingWaker(std::sync::atomic::AtomicUsize);

impl std::task::Wake for CountingWaker {
    fn wake(self: std::sync::Arc<Self>) {
        self.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
    }
}

impl CountingWaker {
    fn count(&self) -> usize {
        self.0.load(std::sync::atomic::Ordering::SeqCst)
    }
}

/// A `Recv` cancelled (dropped while pending) racing a notify: the value is
/// never lost, the racing notify wakes the cancelled waker at most once, the
/// subscription keeps no clone of it, and later notifies never wake it.
#[test]
fn cancelled_recv_vs_notify() {
    use std::future::Future;
    use std::task::{Context, Poll, Waker};
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut sub = q.subscribe(h, 2, "s").unwrap();
        let counter = std::sync::Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        let q1 = q.clone();
        let t = thread::spawn(move || q1.notify(h, 1).unwrap());
        let first = {
            let mut fut = sub.recv();
            let mut cx = Context::from_waker(&waker);
            std::pin::Pin::new(&mut fut).poll(&mut cx)
        }; // cancelled here if pending
        t.join().unwrap();
        drop(waker);
        assert_eq!(std::sync::Arc::strong_count(&counter), 1, "waker kept");
        let woken = counter.count();
        match first {
            Poll::Ready(v) => {
                assert_eq!(v, Ok(1));
                // The notify that delivered the value may have taken the
                // waker (it saw `waiting`) just before the poll's second look
                // found the value: one wake racing the completion is allowed
                // (a spurious wake, as with any waker), never more.
                assert!(woken <= 1);
            }
            Poll::Pending => {
                assert!(woken <= 1);
                assert_eq!(sub.try_recv(), Ok(1));
            }
        }
        q.notify(h, 2).unwrap();
        assert_eq!(counter.count(), woken, "a cancelled receive was woken");
        assert_eq!(sub.try_recv(), Ok(2));
    });
}

/// A producer lapped between its claim and its write (capacity 1, one
/// notifier racing two more) abandons by position, and the receiver,
/// receiving concurrently, accounts for every value exactly: values plus
/// `Lagged` add up to the notifies, the lag equals the producers' drop
/// count, and values arrive in notify order of each thread.
#[test]
fn lapped_producer_vs_receiver_accounting() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut sub = q.subscribe(h, 1, "s").unwrap();
        let q1 = q.clone();
        let a = thread::spawn(move || q1.notify(h, 1).unwrap());
        let q2 = q.clone();
        let b = thread::spawn(move || {
            q2.notify(h, 2).unwrap();
            q2.notify(h, 3).unwrap();
        });
        let (mut got, mut lag) = (Vec::new(), 0);
        step(&mut sub, &mut got, &mut lag);
        a.join().unwrap();
        b.join().unwrap();
        for _ in 0..3 {
            step(&mut sub, &mut got, &mut lag);
        }
        assert_eq!(got.len() as u64 + lag, 3, "got {got:?}, lag {lag}");
        assert_eq!(sub.dropped(), lag);
        let at = |x: i64| got.iter().position(|&v| v == x);
        if let (Some(two), Some(three)) = (at(2), at(3)) {
            assert!(two < three, "got {got:?}");
        }
        assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Waker code (clone, drop) that re-enters the queue never deadlocks on the
/// waker cell: a waker whose clone or drop unregisters the handle (which
/// closes the ring and takes its waker) either runs outside the cell or,
/// for a clone during a registration, makes the registration wake the
/// waker instead of keeping it; every reference is released either way.
#[test]
fn waker_clone_and_drop_run_outside_the_waker_cell() {
    use std::future::Future;
    use std::task::{Context, RawWaker, RawWakerVTable, Waker};
    // The waker's data: the handle to unregister, and whether to do it on
    // clone (else on drop).
    struct Reentrant {
        owned: std::sync::Mutex<Option<notification_queue::OwnedHandle>>,
        on_clone: bool,
        refs: std::sync::atomic::AtomicUsize,
    }
    impl Reentrant {
        fn fire(&self) {
            let owned = self.owned.lock().unwrap().take();
            drop(owned); // unregisters: closes the ring, takes its waker
        }
    }
    unsafe fn clone(p: *const ()) -> RawWaker {
        // SAFETY: `p` is the `Reentrant` the test keeps alive.
        let r = unsafe { &*(p as *const Reentrant) };
        r.refs.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        if r.on_clone {
            r.fire();
        }
        RawWaker::new(p, &VTABLE)
    }
    unsafe fn noop(_: *const ()) {}
    unsafe fn wake(p: *const ()) {
        // SAFETY: as in `clone`; a wake consumes the waker like a drop.
        unsafe { drop_waker(p) }
    }
    unsafe fn drop_waker(p: *const ()) {
        // SAFETY: as in `clone`.
        let r = unsafe { &*(p as *const Reentrant) };
        r.refs.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
        if !r.on_clone {
            r.fire();
        }
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, noop, drop_waker);
    for on_clone in [true, false] {
        loom::model(move || {
            let q = queue();
            let owned = q.register_owned("h").unwrap();
            let h = *owned;
            let mut sub = q.subscribe(h, 1, "s").unwrap();
            let data = Reentrant {
                owned: std::sync::Mutex::new(Some(owned)),
                on_clone,
                refs: std::sync::atomic::AtomicUsize::new(0),
            };
            let p = &data as *const Reentrant as *const ();
            {
                // SAFETY: the vtable's functions uphold the RawWaker
                // contract for `data`, which outlives the waker.
                let reentrant = unsafe { Waker::from_raw(RawWaker::new(p, &VTABLE)) };
                let mut fut = sub.recv();
                let mut cx = Context::from_waker(&reentrant);
                // Registers (clones) the waker; a second poll with another
                // waker replaces (drops) it.
                let _ = std::pin::Pin::new(&mut fut).poll(&mut cx);
                let mut cx = Context::from_waker(Waker::noop());
                let _ = std::pin::Pin::new(&mut fut).poll(&mut cx);
                std::mem::forget(reentrant); // the test's own reference
            }
            assert!(!q.is_registered(h), "the waker's unregister ran");
            drop(sub); // takes and drops any waker still registered
            assert_eq!(data.refs.load(std::sync::atomic::Ordering::SeqCst), 0);
        });
    }
}

/// Two notifiers lapping each other on one keep-newest ring of capacity 1
/// with a silent receiver: whatever the interleaving, an obsolete producer
/// never overwrites a newer value (it leaves a cell holding a newer
/// position alone), so after the notifies the receiver gets exactly the
/// lag of the two older values and then one value, never `Empty` for a
/// claimed position and never 2 (which one thread sent before 3).
#[test]
fn lapping_notifiers_keep_the_newest_value() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut sub = q.subscribe(h, 1, "s").unwrap();
        let q1 = q.clone();
        let a = thread::spawn(move || q1.notify(h, 1).unwrap());
        let q2 = q.clone();
        let b = thread::spawn(move || {
            q2.notify(h, 2).unwrap();
            q2.notify(h, 3).unwrap();
        });
        a.join().unwrap();
        b.join().unwrap();
        assert_eq!(sub.dropped(), 2);
        assert_eq!(q.stats().dropped, 2);
        assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged(2)));
        let last = sub.try_recv();
        assert!(last == Ok(1) || last == Ok(3), "got {last:?}");
        assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
        assert_eq!(sub.dropped(), 2);
    });
}

/// Two notifiers on one ring racing a receiver that blocks: no wakeup is
/// lost (the first value, or the lag of a rejected keep-oldest one, wakes
/// it; loom reports a deadlock otherwise), and once the notifiers are done
/// values plus lag add up to the two notifies, with the drop count equal
/// to the lag.
fn two_notifiers_vs_blocked_receiver(overflow: Overflow) {
    loom::model(move || {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut sub = q
            .subscribe_with(h, SubscribeOptions::new(1).overflow(overflow))
            .unwrap();
        let q1 = q.clone();
        let a = thread::spawn(move || q1.notify(h, 1).unwrap());
        let q2 = q.clone();
        let b = thread::spawn(move || q2.notify(h, 2).unwrap());
        let (mut got, mut lag) = (Vec::new(), 0);
        match block_on(sub.recv()) {
            Ok(v) => got.push(v),
            Err(RecvError::Lagged(n)) => lag += n,
            Err(RecvError::Closed) => panic!("closed"),
        }
        a.join().unwrap();
        b.join().unwrap();
        loop {
            match sub.try_recv() {
                Ok(v) => got.push(v),
                Err(TryRecvError::Lagged(n)) => lag += n,
                Err(TryRecvError::Empty) => break,
                Err(TryRecvError::Closed) => panic!("closed"),
            }
        }
        assert_eq!(got.len() as u64 + lag, 2, "got {got:?}, lag {lag}");
        assert_eq!(sub.dropped(), lag);
    });
}

/// Keep newest: see [`two_notifiers_vs_blocked_receiver`].
#[test]
fn two_notifiers_vs_blocked_receiver_keep_newest() {
    two_notifiers_vs_blocked_receiver(Overflow::KeepNewest);
}

/// Keep oldest: see [`two_notifiers_vs_blocked_receiver`].
#[test]
fn two_notifiers_vs_blocked_receiver_keep_oldest() {
    two_notifiers_vs_blocked_receiver(Overflow::KeepOldest);
}

/// A notify racing with a second subscribe, while a first subscriber keeps
/// the shared feed busy (so the notify claims a feed position whichever
/// way the race goes): the new subscriber receives the value exactly when
/// the notify counted it, the existing one always does, and values never
/// appear in a ring that started after them. This is the claim that
/// snapshots the list: a position and the list it is for come from one
/// CAS, and a new ring starts at the tail its listing CAS left.
#[test]
fn notify_vs_subscribe_with_a_shared_feed() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut first = q.subscribe(h, 2, "first").unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || q2.notify(h, 1).unwrap());
        let mut second = q.subscribe(h, 2, "second").unwrap();
        let n = t.join().unwrap();
        assert_eq!(first.try_recv(), Ok(1));
        let got = second.try_recv();
        assert_eq!(n == 2, got == Ok(1), "n = {n}, got = {got:?}");
        if n == 1 {
            assert_eq!(got, Err(TryRecvError::Empty));
        }
        // Both go on receiving in step.
        q.notify(h, 2).unwrap();
        assert_eq!(first.try_recv(), Ok(2));
        assert_eq!(second.try_recv(), Ok(2));
        assert_eq!(q.stats().dropped, 0);
    });
}

/// The last unsubscribe unlinks the feed while a notify is on its way to
/// it, and a new subscriber installs a fresh feed: the notify delivers to
/// the old subscriber or to the new one or to nobody, never to a ring it
/// could not count, and the new subscriber never sees a value from before
/// its subscribe returned unless the notify counted it.
#[test]
fn notify_vs_last_unsubscribe_and_resubscribe() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let old = q.subscribe(h, 2, "old").unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || q2.notify(h, 5).unwrap());
        drop(old);
        let mut new = q.subscribe(h, 2, "new").unwrap();
        let n = t.join().unwrap();
        let got = new.try_recv();
        assert!(n <= 1, "n = {n}");
        if got == Ok(5) {
            assert_eq!(n, 1);
        } else {
            assert_eq!(got, Err(TryRecvError::Empty));
        }
        q.notify(h, 6).unwrap();
        assert_eq!(new.try_recv(), Ok(6));
        assert_eq!(q.dump()[0].subscribers.len(), 1);
    });
}

/// A notify of the old generation racing with unregister, a new owner of
/// the slot and its first subscribe (which replaces the old generation's
/// feed): the old subscriber gets the value or counts it dropped and then
/// sees `Closed`; the new owner's subscriber never sees it.
#[test]
fn late_notify_vs_new_generation_feed() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut old = q.subscribe(h, 2, "old").unwrap();
        let q2 = q.clone();
        let t = thread::spawn(move || q2.notify(h, 7));
        q.unregister(h).unwrap();
        let h2 = q.register("h2").unwrap();
        let mut new = q.subscribe(h2, 2, "new").unwrap();
        let n = t.join().unwrap();
        assert_eq!(new.try_recv(), Err(TryRecvError::Empty));
        let got = old.try_recv();
        match n {
            Ok(1) => assert_eq!(got, Ok(7)),
            Ok(0) | Err(QueueError::StaleHandle) => {
                assert_eq!(got, Err(TryRecvError::Closed));
            }
            other => panic!("unexpected notify result {other:?}"),
        }
        if got == Ok(7) {
            assert_eq!(old.try_recv(), Err(TryRecvError::Closed));
        }
        q.notify(h2, 8).unwrap();
        assert_eq!(new.try_recv(), Ok(8));
    });
}

/// A subscriber joining while the last subscriber of the same capacity
/// leaves (which unlinks the feed): a new ring shares the cells of a ring
/// of its own feed only. The old feed's cells hold stamps of positions the
/// new feed has not reached, so a ring sharing them would never see its
/// values.
#[test]
fn subscribe_vs_last_unsubscribe_of_the_same_capacity() {
    loom::model(|| {
        let q = queue();
        let h = q.register("h").unwrap();
        let old = q.subscribe(h, 1, "old").unwrap();
        q.notify(h, 1).unwrap();
        q.notify(h, 2).unwrap();
        let t = thread::spawn(move || drop(old));
        let mut new = q.subscribe(h, 1, "new").unwrap();
        t.join().unwrap();
        assert_eq!(q.notify(h, 3).unwrap(), 1);
        assert_eq!(new.try_recv(), Ok(3));
        assert_eq!(new.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Two notifiers (one notify, then two) into the cells a silent keep-newest
/// subscriber of capacity `silent_cap` made and a busy one of capacity
/// `busy_cap` (at most `silent_cap`) shares, receiving while they run: the
/// cells are written once per notify; the busy one keeps its own capacity
/// (values plus lags add up to the three notifies, and once all three are
/// written it gets at most `busy_cap` more, never an older one the larger
/// cells still hold); the silent one keeps its newest `silent_cap`, the
/// newest of which is the busy one's last.
fn notifiers_into_shared_cells(silent_cap: usize, busy_cap: usize) {
    loom::model(move || {
        let q = queue();
        let h = q.register("h").unwrap();
        let mut silent = q.subscribe(h, silent_cap, "silent").unwrap();
        let mut busy = q.subscribe(h, busy_cap, "busy").unwrap();
        let q1 = q.clone();
        let a = thread::spawn(move || assert_eq!(q1.notify(h, 1).unwrap(), 2));
        let q2 = q.clone();
        let b = thread::spawn(move || {
            assert_eq!(q2.notify(h, 2).unwrap(), 2);
            assert_eq!(q2.notify(h, 3).unwrap(), 2);
        });
        let (mut got, mut lag) = (Vec::new(), 0);
        step(&mut busy, &mut got, &mut lag);
        a.join().unwrap();
        b.join().unwrap();
        let before = got.len();
        for _ in 0..3 {
            step(&mut busy, &mut got, &mut lag);
        }
        assert!(got.len() - before <= busy_cap, "{got:?} lag {lag}");
        assert_eq!(got.len() as u64 + lag, 3, "{got:?} lag {lag}");
        assert_eq!(
            silent.try_recv(),
            Err(TryRecvError::Lagged(3 - silent_cap as u64))
        );
        let kept: Vec<i64> = (0..silent_cap)
            .map(|_| silent.try_recv().unwrap())
            .collect();
        assert!(kept.windows(2).all(|w| w[0] != w[1]), "{kept:?}");
        assert_eq!(got.last(), kept.last(), "{got:?} lag {lag}");
        assert_eq!(silent.try_recv(), Err(TryRecvError::Empty));
    });
}

/// Two subscribers of capacity 1 share one cell.
#[test]
fn notifiers_into_cells_shared_by_two_receivers() {
    notifiers_into_shared_cells(1, 1);
}

/// A subscriber of capacity 1 shares the two cells of one of capacity 2.
#[test]
fn notifiers_into_larger_cells_shared_by_a_smaller_ring() {
    notifiers_into_shared_cells(2, 1);
}
