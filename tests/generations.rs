//! Handle generations, slot reuse and the edges of a handle's life: stale
//! handles after any number of reuses, a notify just before unregister, stale
//! waits racing a new owner, wake order, and wakers that block.

mod common;

use common::{CountingWaker, poll_once};
use notification_queue::{Config, NotificationQueue, QueueError};
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Poll, Wake, Waker};
use std::thread;
use std::time::Duration;

#[test]
fn a_slot_whose_generations_run_out_is_retired_and_old_handles_stay_stale() {
    let q = NotificationQueue::new(Config::default().slot_generations(3));
    let mut issued = Vec::new();
    for _ in 0..10 {
        let h = q.register("cycle").unwrap();
        assert!(
            !issued.contains(&h),
            "a handle was issued twice: {h:?} after {issued:?}"
        );
        for old in &issued {
            assert_eq!(q.notify(*old, 1), Err(QueueError::StaleHandle));
            assert!(!q.is_registered(*old));
        }
        q.unregister(h).unwrap();
        issued.push(h);
    }
    // Three handles per slot: indices 0, 0, 0, 1, 1, 1, 2, ...
    let indices: Vec<u32> = issued.iter().map(|h| h.index()).collect();
    assert_eq!(indices, [0, 0, 0, 1, 1, 1, 2, 2, 2, 3]);
    assert_eq!(q.stats().exhausted_slots, 3);
    for old in &issued {
        assert_eq!(q.unregister(*old), Err(QueueError::StaleHandle));
    }
}

#[test]
fn one_generation_per_slot_still_works() {
    let q = NotificationQueue::new(Config::default().slot_generations(1));
    let a = q.register("a").unwrap();
    q.unregister(a).unwrap();
    let b = q.register("b").unwrap();
    assert_ne!(a.index(), b.index());
    assert_eq!(q.notify(a, 1), Err(QueueError::StaleHandle));
    assert_eq!(q.notify(b, 1), Ok(0));
}

#[test]
fn a_notify_just_before_unregister_is_reported_before_closed() {
    let q = NotificationQueue::new(Config::default());
    let h = q.register("h").unwrap();
    let snap = q.snapshot(h).unwrap();
    q.notify(h, 41).unwrap();
    q.notify(h, 42).unwrap();
    let after = q.snapshot(h).unwrap();
    q.unregister(h).unwrap();
    // First polled after the close: the notifies come first...
    let got = q.wait_after(snap).wait().unwrap();
    assert_eq!((got.arg, got.coalesced, got.sequence), (42, 2, 2));
    // ...as often as a wait from that snapshot asks, and a wait from the
    // final sequence gets `Closed`.
    assert_eq!(q.wait_after(snap).wait().map(|n| n.arg), Ok(42));
    assert_eq!(q.wait_after(after).wait(), Err(QueueError::Closed));
    // A new wait on the stale handle cannot even take a snapshot.
    assert_eq!(q.wait(h).wait(), Err(QueueError::StaleHandle));

    // The record survives the slot's next owner and its notifies...
    let next = q.register("next").unwrap();
    assert_eq!(next.index(), h.index());
    q.notify(next, 7).unwrap();
    let got = q.wait_after(snap).wait().unwrap();
    assert_eq!((got.arg, got.coalesced), (42, 2));
    // ...until that owner is closed in turn (documented: then `Closed`).
    q.unregister(next).unwrap();
    assert_eq!(q.wait_after(snap).wait(), Err(QueueError::Closed));
}

#[test]
fn a_pending_wait_woken_by_unregister_reports_the_notify_it_missed() {
    let q = NotificationQueue::new(Config::default());
    let h = q.register("h").unwrap();
    let mut wait = q.wait(h);
    let (count, waker) = CountingWaker::new();
    assert!(poll_once(&mut wait, &waker).is_pending());
    // Notify and unregister before the woken task runs.
    q.notify(h, 9).unwrap();
    q.unregister(h).unwrap();
    assert!(count.count() >= 1);
    match poll_once(&mut wait, &waker) {
        Poll::Ready(Ok(n)) => assert_eq!((n.arg, n.coalesced), (9, 1)),
        other => panic!("expected the notify first, got {other:?}"),
    }
}

#[test]
fn a_stale_wait_never_hides_the_next_owners_waiters() {
    // A wait of an old generation, first polled after the slot has a new
    // owner with waiters, must neither replace nor touch their list.
    let q = NotificationQueue::new(Config::default());
    let old = q.register("old").unwrap();
    let mut stale = q.wait(old);
    q.unregister(old).unwrap();
    let new = q.register("new").unwrap();
    assert_eq!(new.index(), old.index());
    let mut fresh = q.wait(new).with_hint("new-waiter");
    let (count, waker) = CountingWaker::new();
    assert!(poll_once(&mut fresh, &waker).is_pending());
    assert_eq!(
        poll_once(&mut stale, &waker),
        Poll::Ready(Err(QueueError::Closed))
    );
    assert_eq!(q.waiters(new).unwrap().len(), 1);
    assert_eq!(q.notify(new, 3), Ok(1));
    assert_eq!(count.count(), 1);
    assert!(matches!(poll_once(&mut fresh, &waker), Poll::Ready(Ok(n)) if n.arg == 3));
}

#[test]
fn stale_waits_racing_reuse_never_strand_a_new_owners_waiter() {
    // Threads keep polling waits of old generations while the main thread
    // cycles the slot and parks a waiter of each new generation; every such
    // waiter must be woken by its own notify.
    let q = NotificationQueue::new(Config::default().max_handles(1));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let (tx, rx) = mpsc::channel::<notification_queue::Handle>();
    let rx = Arc::new(Mutex::new(rx));
    let pollers: Vec<_> = (0..2)
        .map(|_| {
            let (q, stop, rx) = (q.clone(), stop.clone(), rx.clone());
            thread::spawn(move || {
                let waker = Waker::noop();
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let h = match rx.lock().unwrap().recv_timeout(Duration::from_millis(1)) {
                        Ok(h) => h,
                        Err(_) => continue,
                    };
                    let mut w = q.wait(h);
                    for _ in 0..4 {
                        if poll_once(&mut w, waker).is_ready() {
                            break;
                        }
                    }
                }
            })
        })
        .collect();
    for round in 0..2000 {
        let h = q.register("h").unwrap();
        tx.send(h).unwrap();
        tx.send(h).unwrap();
        let mut w = q.wait(h);
        let (count, waker) = CountingWaker::new();
        assert!(poll_once(&mut w, &waker).is_pending());
        q.notify(h, round).unwrap();
        assert_eq!(
            count.count(),
            1,
            "round {round}: the new owner's waiter was not woken"
        );
        assert!(matches!(poll_once(&mut w, &waker), Poll::Ready(Ok(n)) if n.arg == round));
        q.unregister(h).unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    for p in pollers {
        p.join().unwrap();
    }
}

/// A waker that records its id when woken.
struct OrderWaker(usize, Arc<Mutex<Vec<usize>>>);
impl Wake for OrderWaker {
    fn wake(self: Arc<Self>) {
        self.1.lock().unwrap().push(self.0);
    }
}

#[test]
fn notify_wakes_waiters_oldest_entry_first() {
    let q = NotificationQueue::new(Config::default());
    let h = q.register("h").unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let mut waits: Vec<_> = (0..40).map(|_| q.wait(h)).collect();
    for (i, w) in waits.iter_mut().enumerate() {
        let waker = Waker::from(Arc::new(OrderWaker(i, order.clone())));
        assert!(poll_once(w, &waker).is_pending());
    }
    assert_eq!(q.notify(h, 1), Ok(40));
    assert_eq!(*order.lock().unwrap(), (0..40).collect::<Vec<_>>());
}

/// A waker that blocks its waking thread until released.
struct BlockingWaker {
    entered: mpsc::SyncSender<()>,
    release: Mutex<mpsc::Receiver<()>>,
}
impl Wake for BlockingWaker {
    fn wake(self: Arc<Self>) {
        let _ = self.entered.send(());
        let _ = self.release.lock().unwrap().recv();
    }
}

#[test]
fn a_blocking_waker_blocks_only_the_notify_that_runs_it() {
    let q = NotificationQueue::new(Config::default());
    let a = q.register("a").unwrap();
    let b = q.register("b").unwrap();
    let (entered_tx, entered_rx) = mpsc::sync_channel(1);
    let (release_tx, release_rx) = mpsc::channel();
    let blocking = Waker::from(Arc::new(BlockingWaker {
        entered: entered_tx,
        release: Mutex::new(release_rx),
    }));
    let mut wa = q.wait(a);
    assert!(poll_once(&mut wa, &blocking).is_pending());
    let q2 = q.clone();
    let stuck = thread::spawn(move || q2.notify(a, 1));
    entered_rx.recv().unwrap(); // the notify of `a` is inside the waker now
    // Every other handle keeps working: notify, wait, subscribe, unregister,
    // register (and the epoch collector keeps reclaiming).
    for i in 0..1000 {
        let mut wb = q.wait(b);
        let (count, waker) = CountingWaker::new();
        assert!(poll_once(&mut wb, &waker).is_pending());
        assert_eq!(q.notify(b, i), Ok(1));
        assert_eq!(count.count(), 1);
        let c = q.register("c").unwrap();
        let mut wc = q.wait(c);
        assert!(poll_once(&mut wc, &waker).is_pending());
        q.unregister(c).unwrap();
        assert_eq!(
            poll_once(&mut wc, &waker),
            Poll::Ready(Err(QueueError::Closed))
        );
    }
    // Even `a` itself can be notified again from another thread.
    assert_eq!(q.notify(a, 2), Ok(0));
    release_tx.send(()).unwrap();
    assert_eq!(stuck.join().unwrap(), Ok(1));
    assert!(matches!(
        poll_once(&mut wa, Waker::noop()),
        Poll::Ready(Ok(_))
    ));
}

/// A handle carries its slot's address; only a handle of the same queue is
/// ever followed there. A handle of a dropped queue (whose slot memory is
/// freed, and may be the memory of the queue it is used on) and a handle of
/// a live other queue with the same index and generation are stale for
/// every operation, and leave the queue they are used on untouched.
#[test]
fn handles_of_other_queues_are_stale_everywhere_even_after_their_queue_is_dropped() {
    let dropped_handle = {
        let old = NotificationQueue::new(Config::default());
        old.register("old").unwrap()
    };
    let q = NotificationQueue::new(Config::default());
    let own = q.register("own").unwrap();
    let other = NotificationQueue::new(Config::default());
    let twin = other.register("twin").unwrap();
    assert_eq!(
        (twin.index(), twin.generation()),
        (own.index(), own.generation())
    );
    assert_ne!(twin, own);
    for h in [dropped_handle, twin] {
        assert_eq!(q.notify(h, 1), Err(QueueError::StaleHandle));
        assert_eq!(q.notify_one(h, 1), Err(QueueError::StaleHandle));
        assert_eq!(q.notify_n(h, 1, 3), Err(QueueError::StaleHandle));
        assert_eq!(q.snapshot(h).err(), Some(QueueError::StaleHandle));
        assert_eq!(q.waiters(h).err(), Some(QueueError::StaleHandle));
        assert_eq!(q.subscribe(h, 4, "x").err(), Some(QueueError::StaleHandle));
        let waker = Waker::from(Arc::new(CountingWaker::default()));
        let mut wait = q.wait(h);
        assert!(matches!(
            poll_once(&mut wait, &waker),
            Poll::Ready(Err(QueueError::StaleHandle))
        ));
        assert_eq!(q.unregister(h), Err(QueueError::StaleHandle));
    }
    // A snapshot of the other queue's handle makes a stale wait here too,
    // borrowed or owned, polled or blocking.
    let snap = other.snapshot(twin).unwrap();
    let waker = Waker::from(Arc::new(CountingWaker::default()));
    let mut wait = q.wait_after(snap);
    assert_eq!(wait.snapshot().err(), Some(QueueError::StaleHandle));
    assert!(matches!(
        poll_once(&mut wait, &waker),
        Poll::Ready(Err(QueueError::StaleHandle))
    ));
    assert_eq!(
        q.wait_after_owned(snap).wait().err(),
        Some(QueueError::StaleHandle)
    );
    // Nothing reached `own`'s slot.
    assert_eq!(q.snapshot(own).unwrap().sequence(), 0);
    assert_eq!(q.notify(own, 5), Ok(0));
    assert_eq!(q.snapshot(own).unwrap().sequence(), 1);
    // The twin's own queue is untouched too.
    assert_eq!(other.snapshot(twin).unwrap().sequence(), 0);
}

/// The handles `dump` rebuilds are the registered handles: equal, with the
/// same hash and order, and usable.
#[test]
fn dumped_handles_equal_and_hash_like_the_registered_ones() {
    use std::collections::hash_map::DefaultHasher;
    use std::hash::{Hash, Hasher};
    let hash = |h: &notification_queue::Handle| {
        let mut s = DefaultHasher::new();
        h.hash(&mut s);
        s.finish()
    };
    let q = NotificationQueue::new(Config::default());
    let mut registered: Vec<_> = (0..40)
        .map(|i| q.register(format!("h{i}")).unwrap())
        .collect();
    registered.sort();
    let mut dumped: Vec<_> = q.dump().into_iter().map(|i| i.handle).collect();
    dumped.sort();
    assert_eq!(dumped, registered);
    for (d, r) in dumped.iter().zip(&registered) {
        assert_eq!(hash(d), hash(r));
        assert_eq!(format!("{d:?}"), format!("{r:?}"));
        assert_eq!(q.notify(*d, 1), Ok(0));
    }
}
