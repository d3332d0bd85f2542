//! The queue's memory budget (`Config::memory_budget`): every category is
//! refused at the limit with nothing changed, freeing makes room again, the
//! pipes of one queue share it, and no mix of operations (single-threaded
//! or racing) takes the bytes held past it.

mod common;

use common::poll_once;
use notification_queue::mempipe::{EIO, ENOMEM, PipeError, pipe};
use notification_queue::mempipe::{Limits, Reader, ReaderFactory, Writer};
use notification_queue::{
    BudgetStats, Config, Handle, NotificationQueue, QueueError, Subscription, Wait,
};
use std::task::{Poll, Waker};

fn budget(q: &NotificationQueue) -> BudgetStats {
    q.stats().budget
}

fn refused(e: QueueError) -> bool {
    matches!(e, QueueError::MemoryBudget { .. })
}

/// A snapshot that adds up, taken while this test runs nothing
/// concurrently. Other tests' threads may still be running this queue's
/// deferred frees (epoch reclamation runs them on whichever thread
/// collects), and a snapshot that caught one halfway, with that thread
/// preempted, does not add up: it is taken again until it does (every
/// release ends).
fn settled(q: &NotificationQueue) -> BudgetStats {
    until(q, |b| {
        b.slots + b.waiters + b.rings + b.pipes + b.keyed == b.held
    })
}

/// Checks the accounting invariants of a snapshot taken while nothing runs
/// concurrently (see `settled`).
fn check(b: BudgetStats, limit: usize) {
    assert!(b.held <= limit, "held {} > limit {limit}", b.held);
    assert!(
        b.high_water <= limit,
        "high water {} > {limit}",
        b.high_water
    );
    assert!(b.held <= b.high_water);
    assert_eq!(b.slots + b.waiters + b.rings + b.pipes + b.keyed, b.held);
    assert_eq!(b.limit, limit);
}

/// Polls stats until `done` holds. Waiter lists and subscriber lists are
/// freed by the epoch collector; every `stats()` pins, and pinning drives
/// collection, so the release is an event this loop observes (it does not
/// guess a time).
fn until(q: &NotificationQueue, done: impl Fn(&BudgetStats) -> bool) -> BudgetStats {
    for _ in 0..1_000_000 {
        let b = budget(q);
        if done(&b) {
            return b;
        }
        std::thread::yield_now();
    }
    panic!("budget never released: {:?}", budget(q));
}

/// Bytes of the first slot bucket (what the first register charges).
fn first_bucket() -> usize {
    let q = NotificationQueue::new(Config::default());
    q.register("x").unwrap();
    budget(&q).slots
}

fn noop() -> &'static Waker {
    Waker::noop()
}

#[test]
fn unlimited_by_default_and_still_counted() {
    let q = NotificationQueue::new(Config::default());
    assert_eq!(q.config().memory_budget, usize::MAX);
    assert_eq!(budget(&q).limit, usize::MAX);
    assert_eq!(budget(&q).held, 0);
    let h = q.register("h").unwrap();
    let _s = q.subscribe(h, 8, "s").unwrap();
    let b = budget(&q);
    assert!(b.slots > 0 && b.rings > 0);
    check(b, usize::MAX);
}

#[test]
fn slot_buckets_refused_at_the_limit_change_nothing() {
    let bucket = first_bucket();
    let q = NotificationQueue::new(Config::default().memory_budget(bucket));
    let handles: Vec<Handle> = (0..32).map(|_| q.register("h").unwrap()).collect();
    let before = q.stats();
    check(before.budget, bucket);
    assert_eq!(before.budget.slots, bucket);
    // The 33rd handle needs the second bucket.
    let e = q.register("one too many").unwrap_err();
    assert_eq!(
        e,
        QueueError::MemoryBudget {
            requested: 2 * bucket,
            limit: bucket
        }
    );
    assert_eq!(q.stats(), before);
    assert_eq!(q.dump().len(), 32);
    // A freed slot is reused without a charge.
    q.unregister(handles[3]).unwrap();
    q.register("reused").unwrap();
    assert_eq!(budget(&q).slots, bucket);
    // Too small for even one bucket: nothing is ever registered.
    let tiny = NotificationQueue::new(Config::default().memory_budget(bucket - 1));
    assert!(refused(tiny.register("h").unwrap_err()));
    assert_eq!(tiny.stats().handles, 0);
    assert_eq!(budget(&tiny).high_water, 0);
}

/// Pending waits of `h` polled once (each holds a waiter entry).
fn pending<'a>(q: &'a NotificationQueue, h: Handle, n: usize) -> Vec<Wait<'a>> {
    (0..n)
        .map(|_| {
            let mut w = q.wait(h);
            assert!(poll_once(&mut w, noop()).is_pending());
            w
        })
        .collect()
}

/// Bytes held for waiters after each of `n` pending waits on a fresh
/// handle of an unlimited queue.
fn waiter_steps(n: usize) -> Vec<usize> {
    let q = NotificationQueue::new(Config::default());
    let h = q.register("h").unwrap();
    let mut waits = Vec::new();
    (0..n)
        .map(|_| {
            waits.extend(pending(&q, h, 1));
            budget(&q).waiters
        })
        .collect()
}

#[test]
fn waiter_storage_refused_at_the_limit_changes_nothing() {
    let bucket = first_bucket();
    let steps = waiter_steps(16);
    let list = steps[0];
    // The first chunk holds a few entries; the next wait grows the list.
    let first_chunk = steps.iter().take_while(|&&b| b == list).count();
    assert!((1..16).contains(&first_chunk));
    let limit = bucket + list;
    let q = NotificationQueue::new(Config::default().memory_budget(limit));
    let h = q.register("h").unwrap();
    let mut waits = pending(&q, h, first_chunk);
    let before = q.stats();
    assert_eq!(before.waiters, first_chunk);
    let mut w = q.wait(h);
    match poll_once(&mut w, noop()) {
        Poll::Ready(Err(e)) => assert!(refused(e), "{e:?}"),
        other => panic!("expected a budget refusal, got {other:?}"),
    }
    drop(w);
    assert_eq!(q.stats(), before);
    assert_eq!(q.waiters(h).unwrap().len(), first_chunk);
    // A finished wait gives its entry back: the next one fits again.
    waits.pop();
    waits.extend(pending(&q, h, 1));
    assert_eq!(q.stats().waiters, first_chunk);
    check(settled(&q), limit);
    // The notify still reaches every pending wait.
    assert_eq!(q.notify(h, 7).unwrap(), first_chunk);
    for mut w in waits {
        assert!(matches!(poll_once(&mut w, noop()), Poll::Ready(Ok(n)) if n.arg == 7));
    }

    // No room for the list at all: the first wait is refused, nothing held.
    let q = NotificationQueue::new(Config::default().memory_budget(bucket + list - 1));
    let h = q.register("h").unwrap();
    let before = q.stats();
    let mut w = q.wait(h);
    assert!(matches!(poll_once(&mut w, noop()), Poll::Ready(Err(e)) if refused(e)));
    assert_eq!(q.stats(), before);
    // A notify is not lost to the refusal: a new wait from a snapshot sees it.
    let snap = q.snapshot(h).unwrap();
    q.notify(h, 1).unwrap();
    let mut w = q.wait_after(snap);
    assert!(matches!(poll_once(&mut w, noop()), Poll::Ready(Ok(_))));
}

#[test]
fn waiter_lists_are_released_after_unregister() {
    let bucket = first_bucket();
    let list = waiter_steps(1)[0];
    let q = NotificationQueue::new(Config::default().memory_budget(bucket + list));
    let h = q.register("a").unwrap();
    let waits = pending(&q, h, 1);
    let g = q.register("b").unwrap();
    // Only one list fits.
    let mut w = q.wait(g);
    assert!(matches!(poll_once(&mut w, noop()), Poll::Ready(Err(e)) if refused(e)));
    drop(w);
    q.unregister(h).unwrap();
    drop(waits);
    until(&q, |b| b.waiters == 0);
    let w = pending(&q, g, 1);
    assert_eq!(budget(&q).waiters, list);
    drop(w);
}

fn ring_bytes(cap: usize) -> usize {
    let q = NotificationQueue::new(Config::default());
    let h = q.register("h").unwrap();
    let _s = q.subscribe(h, cap, "s").unwrap();
    budget(&q).rings
}

#[test]
fn rings_refused_at_the_limit_change_nothing() {
    let bucket = first_bucket();
    let r8 = ring_bytes(8);
    let r1 = ring_bytes(1);
    assert!(r8 > r1);
    let limit = bucket + r8;
    let q = NotificationQueue::new(Config::default().memory_budget(limit));
    let h = q.register("h").unwrap();
    let mut s = q.subscribe(h, 8, "fits").unwrap();
    let before = q.stats();
    let dump = q.dump();
    assert!(refused(q.subscribe(h, 1, "no room").unwrap_err()));
    assert_eq!(q.stats(), before);
    assert_eq!(q.dump()[0].subscribers, dump[0].subscribers);
    // The refused subscription left no ring behind: one delivery.
    assert_eq!(q.notify(h, 5).unwrap(), 1);
    assert_eq!(s.try_recv(), Ok(5));
    // Room comes back when the ring is freed.
    drop(s);
    until(&q, |b| b.rings == 0);
    let _s = q.subscribe(h, 8, "again").unwrap();
    check(settled(&q), limit);
}

fn pipe_with(q: &NotificationQueue, limits: Limits) -> Result<(Writer, ReaderFactory), PipeError> {
    pipe(q, "p", limits)
}

fn small() -> Limits {
    Limits::default()
        .segment_size(256)
        .max_bytes(1 << 20)
        .max_readers(2)
}

/// Bytes a fresh pipe of `small()` holds, and one more segment.
fn pipe_bytes() -> (usize, usize) {
    let q = NotificationQueue::new(Config::default());
    let (mut w, f) = pipe_with(&q, small()).unwrap();
    let created = budget(&q).pipes;
    w.write(&[1; 257]).unwrap();
    let grown = budget(&q).pipes;
    drop((w, f));
    assert_eq!(budget(&q).pipes, 0);
    (created, grown - created)
}

fn budget_err(e: &PipeError) -> bool {
    matches!(e, PipeError::Queue(QueueError::MemoryBudget { .. }))
}

#[test]
fn pipe_segments_refused_at_the_limit_change_nothing() {
    let bucket = first_bucket();
    let (created, segment) = pipe_bytes();
    let limit = bucket + created + segment;
    let q = NotificationQueue::new(Config::default().memory_budget(limit));
    let (mut w, f) = pipe_with(&q, small()).unwrap();
    let mut r: Reader = f.reader().unwrap();
    assert_eq!(w.write(&[1; 512]).unwrap(), 512); // fills two segments
    let before = q.stats();
    let footprint = w.footprint();
    let e = w.write(&[2; 1]).unwrap_err();
    assert!(budget_err(&e), "{e:?}");
    assert_eq!(e.errno(), ENOMEM);
    assert_ne!(e.errno(), EIO);
    assert_eq!(q.stats(), before);
    assert_eq!((w.tell(), w.footprint(), w.error()), (512, footprint, None));
    let mut buf = [0u8; 1024];
    assert_eq!(r.try_read(&mut buf), Ok(Some(512)));
    assert!(buf[..512].iter().all(|&b| b == 1));
    assert_eq!(r.try_read(&mut buf), Ok(None)); // nothing of the refused write
    // Streaming: once the reader passed the first segment it is reused.
    drop(f);
    assert_eq!(w.write(&[3; 200]).unwrap(), 200);
    assert_eq!(r.try_read(&mut buf), Ok(Some(200)));
    check(settled(&q), limit);
    // The writer is still usable and its close releases everything.
    w.close().unwrap();
    drop((w, r));
    assert_eq!(budget(&q).pipes, 0);
}

#[test]
fn pipes_of_one_queue_share_the_budget() {
    let bucket = first_bucket();
    let (created, _) = pipe_bytes();
    let limit = bucket + 2 * created - 1;
    let q = NotificationQueue::new(Config::default().memory_budget(limit));
    let first = pipe_with(&q, small()).unwrap();
    let before = q.stats();
    let e = pipe_with(&q, small()).unwrap_err();
    assert!(budget_err(&e), "{e:?}");
    // The refused pipe left no handle and no memory behind.
    assert_eq!(q.stats(), before);
    assert_eq!(q.dump().len(), 1);
    drop(first);
    let second = pipe_with(&q, small()).unwrap();
    check(settled(&q), limit);
    drop(second);
    // Everything released but the slot bucket (kept while the queue lives).
    assert_eq!(budget(&q).held, bucket);
}

/// The keyed layer is `std`-only: without it the model's keyed operations
/// do nothing.
#[cfg(feature = "std")]
mod keys {
    use notification_queue::{KeyedQueue, NotificationQueue, QueueError};
    pub type Keys = KeyedQueue<u16>;
    pub fn new(q: &NotificationQueue) -> Keys {
        KeyedQueue::new(q.clone())
    }
    pub fn register(k: &Keys, key: u16) -> Result<(), QueueError> {
        k.register(key, "k").map(drop)
    }
    pub fn unregister(k: &Keys, key: u16) -> Result<(), QueueError> {
        k.unregister(&key)
    }
}

#[cfg(not(feature = "std"))]
mod keys {
    use notification_queue::{NotificationQueue, QueueError};
    pub struct Keys;
    pub fn new(_: &NotificationQueue) -> Keys {
        Keys
    }
    pub fn register(_: &Keys, _: u16) -> Result<(), QueueError> {
        Ok(())
    }
    pub fn unregister(_: &Keys, _: u16) -> Result<(), QueueError> {
        Ok(())
    }
}

#[cfg(feature = "std")]
#[test]
fn keyed_entries_refused_at_the_limit_change_nothing() {
    use notification_queue::KeyedQueue;
    let bucket = first_bucket();
    let entry = {
        let k = KeyedQueue::new(NotificationQueue::new(Config::default()));
        k.register(1u64, "one").unwrap();
        budget(k.queue()).keyed
    };
    assert!(entry > 0);
    let limit = bucket + 2 * entry;
    let k: KeyedQueue<u64> = KeyedQueue::new(NotificationQueue::new(
        Config::default().memory_budget(limit),
    ));
    k.register(1, "one").unwrap();
    k.register(2, "two").unwrap();
    let before = k.queue().stats();
    assert!(refused(k.register(3, "three").unwrap_err()));
    assert_eq!(k.queue().stats(), before);
    assert_eq!(k.handle(&3), Err(QueueError::UnknownKey));
    assert_eq!(k.len(), 2);
    k.unregister(&1).unwrap();
    k.register(3, "three").unwrap();
    check(settled(k.queue()), limit);
    let q = k.queue().clone();
    drop(k);
    assert_eq!(budget(&q).keyed, 0);
}

/// A small deterministic generator (xorshift), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// What the mixed model holds.
#[derive(Default)]
struct World<'a> {
    handles: Vec<Handle>,
    waits: Vec<Wait<'a>>,
    subs: Vec<Subscription>,
    pipes: Vec<(Writer, Option<ReaderFactory>, Vec<Reader>)>,
}

/// One random operation; a budget refusal must change no statistic.
/// Returns whether the budget refused it.
fn step<'a>(
    q: &'a NotificationQueue,
    keyed: &keys::Keys,
    w: &mut World<'a>,
    rng: &mut Rng,
) -> bool {
    let before = q.stats();
    let pick = |rng: &mut Rng, n: usize| if n == 0 { None } else { Some(rng.below(n)) };
    let outcome: Result<(), QueueError> = match rng.below(12) {
        0 => q.register("m").map(|h| w.handles.push(h)),
        1 => match pick(rng, w.handles.len()) {
            Some(i) => q.unregister(w.handles.swap_remove(i)),
            None => Ok(()),
        },
        2 | 3 => match pick(rng, w.handles.len()) {
            Some(i) => {
                let mut wait = q.wait(w.handles[i]);
                match poll_once(&mut wait, noop()) {
                    Poll::Pending => {
                        w.waits.push(wait);
                        Ok(())
                    }
                    Poll::Ready(r) => r.map(drop),
                }
            }
            None => Ok(()),
        },
        4 => match pick(rng, w.waits.len()) {
            Some(i) => {
                drop(w.waits.swap_remove(i));
                Ok(())
            }
            None => Ok(()),
        },
        5 => match pick(rng, w.handles.len()) {
            Some(i) => {
                let cap = 1 + rng.below(64);
                q.subscribe(w.handles[i], cap, "s").map(|s| w.subs.push(s))
            }
            None => Ok(()),
        },
        6 => match pick(rng, w.subs.len()) {
            Some(i) => {
                w.subs.swap_remove(i);
                Ok(())
            }
            None => Ok(()),
        },
        7 => match pipe_with(q, small()) {
            Ok((wr, f)) => {
                let r = f.reader().unwrap();
                w.pipes.push((wr, Some(f), vec![r]));
                Ok(())
            }
            Err(PipeError::Queue(e)) => Err(e),
            Err(e) => panic!("unexpected {e:?}"),
        },
        8 => match pick(rng, w.pipes.len()) {
            Some(i) => {
                let n = 1 + rng.below(600);
                let (wr, f, readers) = &mut w.pipes[i];
                if rng.below(4) == 0 {
                    *f = None; // streaming from now on
                }
                let mut buf = vec![0u8; 700];
                for r in readers.iter_mut() {
                    let _ = r.try_read(&mut buf);
                }
                match wr.write(&vec![9u8; n]) {
                    Ok(_) | Err(PipeError::BrokenPipe { .. }) | Err(PipeError::Full { .. }) => {
                        Ok(())
                    }
                    Err(PipeError::Queue(e)) => {
                        assert!(refused(e));
                        Err(e)
                    }
                    Err(e) => panic!("unexpected {e:?}"),
                }
            }
            None => Ok(()),
        },
        9 => match pick(rng, w.pipes.len()) {
            Some(i) => {
                w.pipes.swap_remove(i);
                Ok(())
            }
            None => Ok(()),
        },
        10 => keys::register(keyed, rng.below(64) as u16),
        _ => keys::unregister(keyed, rng.below(64) as u16),
    };
    match outcome {
        Err(e) if refused(e) => {
            // Pipe creation and keyed registration charge in two steps (the
            // pipe or key, then the handle's slot): refused at the second,
            // the first was held for a moment, which the peak may show.
            // Lists retired earlier may be freed by the epoch collector
            // during the op: a category may shrink, none may grow.
            let (mut before, mut after) = (before, q.stats());
            let (x, y) = (before.budget, after.budget);
            assert!(y.slots <= x.slots && y.waiters <= x.waiters && y.rings <= x.rings);
            assert!(y.pipes <= x.pipes && y.keyed <= x.keyed);
            before.budget = BudgetStats::default();
            after.budget = BudgetStats::default();
            assert_eq!(after, before, "a refused op changed something");
            true
        }
        _ => false,
    }
}

#[test]
fn no_mix_of_operations_passes_the_budget() {
    let bucket = first_bucket();
    let (created, segment) = pipe_bytes();
    for (seed, extra) in [
        (1u64, 3 * segment),
        (7, created + 5 * segment),
        (42, 4 * created),
    ] {
        let limit = bucket + extra;
        let q = NotificationQueue::new(Config::default().memory_budget(limit));
        let keyed = keys::new(&q);
        let mut rng = Rng(seed);
        let mut refusals = 0;
        let mut world = World::default();
        for _ in 0..3000 {
            refusals += usize::from(step(&q, &keyed, &mut world, &mut rng));
            check(settled(&q), limit);
        }
        // The budget was actually reached (the test pushed against it).
        assert!(refusals > 0, "seed {seed}: the budget never refused");
        drop(world);
    }
}

#[test]
fn racing_clients_never_pass_the_budget() {
    let bucket = first_bucket();
    let limit = bucket + 3 * ring_bytes(64);
    let q = NotificationQueue::new(Config::default().memory_budget(limit));
    let h = q.register("h").unwrap();
    std::thread::scope(|s| {
        for t in 0..2 {
            let q = &q;
            s.spawn(move || {
                let mut subs = Vec::new();
                for i in 0..2000 {
                    match q.subscribe(h, 64, "race") {
                        Ok(sub) => subs.push(sub),
                        Err(e) => assert!(refused(e), "{e:?}"),
                    }
                    if (i + t) % 3 == 0 {
                        subs.clear();
                    }
                    let mut w = q.wait(h);
                    let _ = poll_once(&mut w, noop());
                    assert!(budget(q).high_water <= limit);
                }
            });
        }
    });
    check(settled(&q), limit);
}

/// Reservations are sized by the caller: an absurd one is clamped to the
/// queue's limits (and its budget), never a panic.
#[test]
fn absurd_reservations_are_clamped_not_a_panic() {
    let q = NotificationQueue::new(
        Config::default()
            .max_handles(8)
            .max_waiters_per_handle(4)
            .reserve_handles(usize::MAX)
            .reserve_waiters(usize::MAX, usize::MAX),
    );
    let h = q.register("h").unwrap();
    assert_eq!(q.notify(h, 1), Ok(0));
    let q = NotificationQueue::new(
        Config::default()
            .memory_budget(1 << 16)
            .reserve_handles(usize::MAX)
            .reserve_waiters(usize::MAX, usize::MAX),
    );
    assert!(q.stats().budget.held <= 1 << 16);
}

/// Keep-newest subscribers of one handle share one buffer when it has room
/// for them: the second and later of one capacity, or of any smaller one,
/// cost a small fixed amount, not another buffer, while a keep-oldest ring
/// or a larger capacity pays for its own (cells are a power of two: a
/// capacity one past one gets twice the cells).
#[test]
fn keep_newest_subscribers_share_one_buffer_with_room_for_them() {
    const CAP: usize = 4096;
    let buffer = CAP * 16;
    let q = NotificationQueue::new(Config::default());
    let h = q.register("h").unwrap();
    let first = q.subscribe(h, CAP, "first").unwrap();
    let one = budget(&q).rings;
    assert!(one > buffer, "{one}");
    let more: Vec<Subscription> = (0..7)
        .map(|_| q.subscribe(h, CAP, "more").unwrap())
        .collect();
    let eight = budget(&q).rings;
    assert!(
        eight - one < buffer / 8,
        "7 more cost {} bytes",
        eight - one
    );
    let oldest = q
        .subscribe_with(
            h,
            notification_queue::SubscribeOptions::new(CAP)
                .overflow(notification_queue::Overflow::KeepOldest),
        )
        .unwrap();
    assert!(budget(&q).rings - eight > buffer);
    let other = budget(&q).rings;
    let _half = q.subscribe(h, CAP / 2, "half").unwrap();
    let _odd = q.subscribe(h, CAP - 1, "odd").unwrap();
    let smaller = budget(&q).rings - other;
    assert!(smaller < buffer / 8, "2 smaller cost {smaller} bytes");
    let other = budget(&q).rings;
    let _larger = q.subscribe(h, CAP + 1, "larger").unwrap();
    assert!(budget(&q).rings - other > 2 * buffer);
    drop((first, more, oldest));
    check(settled(&q), usize::MAX);
}
