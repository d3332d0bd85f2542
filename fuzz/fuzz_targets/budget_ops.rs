//! Fuzzing the queue's memory budget (`Config::memory_budget`).
//!
//! The input is a small budget (the first slot bucket plus 0 to 256 KiB)
//! and a sequence of operations by every kind of client the budget covers:
//! register and unregister handles; waits polled once (left pending, so
//! they hold waiter entries), dropped, completed by notify; subscriptions
//! of any capacity, received from and dropped; pipes of small segments,
//! with readers, writes of up to 4 KiB, reads, sealing (streaming mode) and
//! drops; keyed registrations and unregistrations on a `KeyedQueue` over
//! the same queue.
//!
//! After every operation the budget's snapshot must hold `held <= limit`,
//! `high_water <= limit` and `held` equal to the sum of its categories. An
//! operation refused with `QueueError::MemoryBudget` (or a pipe's
//! `PipeError::Queue` carrying it) must change nothing: every other
//! statistic is as before and no budget category grew (one may shrink:
//! lists retired earlier can be freed by the epoch collector meanwhile);
//! a refused write leaves the writer open with its position unchanged; a
//! refused keyed registration leaves the key unknown. At the end every
//! handle is unregistered and everything dropped: the pipes and keyed
//! categories must be back at zero at once, the waiter and ring categories
//! once the epoch collector has run.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use notification_queue::mempipe::{Limits, PipeError, Reader, ReaderFactory, Writer, pipe};
use notification_queue::{
    BudgetStats, Config, Handle, KeyedQueue, NotificationQueue, QueueError, Stats, Subscription,
    Wait,
};
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};

#[derive(Arbitrary, Debug)]
struct Input {
    /// Budget above the first slot bucket, in 4-byte units.
    extra: u16,
    /// Reservations (handles, waiter lists, entries per list); 255 asks
    /// for `usize::MAX`: clamped by the limits and the budget.
    reserve: [u8; 3],
    ops: Vec<Op>,
}

/// A reservation request from one input byte (255: as many as possible).
fn reservation(b: u8) -> usize {
    if b == u8::MAX { usize::MAX } else { b as usize }
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Register,
    Unregister(u8),
    Wait(u8),
    DropWait(u8),
    Notify(u8, i64),
    /// Capacity `1 + .1`.
    Subscribe(u8, u8),
    TryRecv(u8),
    DropSub(u8),
    /// Segment size `16 << (.0 % 6)`, up to `1 + .1 % 4` readers.
    Pipe(u8, u8),
    Reader(u8),
    /// Writes `.1 % 4096` bytes.
    Write(u8, u16),
    Read(u8),
    Seal(u8),
    DropPipe(u8),
    KeyedRegister(u8),
    KeyedUnregister(u8),
}

struct PipeEnd {
    writer: Writer,
    factory: Option<ReaderFactory>,
    readers: Vec<Reader>,
}

struct World<'a> {
    handles: Vec<Handle>,
    waits: Vec<Wait<'a>>,
    subs: Vec<Subscription>,
    pipes: Vec<PipeEnd>,
}

const MAX_KEPT: usize = 48;

fn pick<T>(v: &[T], i: u8) -> Option<usize> {
    if v.is_empty() {
        None
    } else {
        Some(i as usize % v.len())
    }
}

fn refused(e: &QueueError) -> bool {
    matches!(e, QueueError::MemoryBudget { .. })
}

fn pipe_refused(e: &PipeError) -> bool {
    matches!(e, PipeError::Queue(q) if refused(q))
}

fn check(b: &BudgetStats, limit: usize) {
    assert_eq!(b.limit, limit);
    assert!(b.held <= limit, "held {} past the limit {limit}", b.held);
    assert!(
        b.high_water <= limit,
        "high water {} past {limit}",
        b.high_water
    );
    assert!(b.held <= b.high_water);
    assert_eq!(b.slots + b.waiters + b.rings + b.pipes + b.keyed, b.held);
}

/// A refused operation changed nothing (see the module docs).
fn unchanged(before: &Stats, after: &Stats) {
    let (x, y) = (before.budget, after.budget);
    assert!(y.slots <= x.slots && y.waiters <= x.waiters && y.rings <= x.rings);
    assert!(y.pipes <= x.pipes && y.keyed <= x.keyed);
    let (mut before, mut after) = (*before, *after);
    before.budget = BudgetStats::default();
    after.budget = BudgetStats::default();
    assert_eq!(before, after, "a refused operation changed the queue");
}

/// Bytes of the first slot bucket (what the first register charges).
fn first_bucket() -> usize {
    let q = NotificationQueue::new(Config::default());
    let _ = q.register("probe");
    q.stats().budget.slots
}

fn poll<F: Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    Pin::new(f).poll(&mut cx)
}

/// Runs one operation; returns whether the budget refused it.
fn step<'a>(q: &'a NotificationQueue, keyed: &KeyedQueue<u8>, w: &mut World<'a>, op: Op) -> bool {
    match op {
        Op::Register => {
            if w.handles.len() < MAX_KEPT {
                match q.register("h") {
                    Ok(h) => w.handles.push(h),
                    Err(e) => return refused(&e),
                }
            }
        }
        Op::Unregister(i) => {
            if let Some(i) = pick(&w.handles, i) {
                assert_eq!(q.unregister(w.handles.swap_remove(i)), Ok(()));
            }
        }
        Op::Wait(i) => {
            if let Some(i) = pick(&w.handles, i) {
                if w.waits.len() < MAX_KEPT {
                    let mut wait = q.wait(w.handles[i]);
                    match poll(&mut wait) {
                        Poll::Pending => w.waits.push(wait),
                        Poll::Ready(Err(e)) => {
                            assert!(refused(&e) || e == QueueError::WaiterLimit { limit: 1024 });
                            return refused(&e);
                        }
                        Poll::Ready(Ok(_)) => {}
                    }
                }
            }
        }
        Op::DropWait(i) => {
            if let Some(i) = pick(&w.waits, i) {
                drop(w.waits.swap_remove(i));
            }
        }
        Op::Notify(i, arg) => {
            if let Some(i) = pick(&w.handles, i) {
                assert!(q.notify(w.handles[i], arg).is_ok());
                // Completed waits give their entries back.
                w.waits.retain_mut(|wait| poll(wait).is_pending());
            }
        }
        Op::Subscribe(i, cap) => {
            if let Some(i) = pick(&w.handles, i) {
                if w.subs.len() < MAX_KEPT {
                    let h = w.handles[i];
                    let before = q
                        .dump()
                        .iter()
                        .find(|d| d.handle == h)
                        .map(|d| d.subscribers.len());
                    match q.subscribe(h, 1 + cap as usize, "s") {
                        Ok(s) => w.subs.push(s),
                        Err(e) => {
                            assert!(refused(&e) || matches!(e, QueueError::SubscriberLimit { .. }));
                            let after = q
                                .dump()
                                .iter()
                                .find(|d| d.handle == h)
                                .map(|d| d.subscribers.len());
                            assert_eq!(before, after);
                            return refused(&e);
                        }
                    }
                }
            }
        }
        Op::TryRecv(i) => {
            if let Some(i) = pick(&w.subs, i) {
                let _ = w.subs[i].try_recv();
            }
        }
        Op::DropSub(i) => {
            if let Some(i) = pick(&w.subs, i) {
                drop(w.subs.swap_remove(i));
            }
        }
        Op::Pipe(seg, readers) => {
            if w.pipes.len() < 8 {
                let limits = Limits::default()
                    .segment_size(16 << (seg % 6))
                    .max_bytes(1 << 16)
                    .max_readers(1 + readers as usize % 4);
                let handles = q.stats().handles;
                match pipe(q, "p", limits) {
                    Ok((writer, factory)) => w.pipes.push(PipeEnd {
                        writer,
                        factory: Some(factory),
                        readers: Vec::new(),
                    }),
                    Err(e) => {
                        assert!(pipe_refused(&e), "{e:?}");
                        assert_eq!(q.stats().handles, handles);
                        return true;
                    }
                }
            }
        }
        Op::Reader(i) => {
            if let Some(i) = pick(&w.pipes, i) {
                let p = &mut w.pipes[i];
                if let Some(f) = &p.factory {
                    if let Ok(r) = f.reader() {
                        p.readers.push(r);
                    }
                }
            }
        }
        Op::Write(i, n) => {
            if let Some(i) = pick(&w.pipes, i) {
                let p = &mut w.pipes[i];
                let (tell, state) = (p.writer.tell(), p.writer.state());
                let bytes = vec![0xA5u8; n as usize % 4096];
                match p.writer.write(&bytes) {
                    Ok(_) => {}
                    Err(e) if pipe_refused(&e) => {
                        assert_eq!((p.writer.tell(), p.writer.state()), (tell, state));
                        return true;
                    }
                    Err(
                        PipeError::Full { .. }
                        | PipeError::BrokenPipe { .. }
                        | PipeError::Failed { .. },
                    ) => {}
                    Err(e) => panic!("unexpected write error {e:?}"),
                }
            }
        }
        Op::Read(i) => {
            if let Some(i) = pick(&w.pipes, i) {
                let mut buf = [0u8; 2048];
                for r in &mut w.pipes[i].readers {
                    let _ = r.try_read(&mut buf);
                }
            }
        }
        Op::Seal(i) => {
            if let Some(i) = pick(&w.pipes, i) {
                w.pipes[i].factory = None;
            }
        }
        Op::DropPipe(i) => {
            if let Some(i) = pick(&w.pipes, i) {
                drop(w.pipes.swap_remove(i));
            }
        }
        Op::KeyedRegister(k) => {
            let k = k % 16;
            let len = keyed.len();
            let known = keyed.handle(&k).is_ok();
            if let Err(e) = keyed.register(k, "k") {
                if refused(&e) {
                    assert_eq!(keyed.len(), len);
                    assert_eq!(keyed.handle(&k).is_ok(), known);
                    return true;
                }
                assert!(matches!(
                    e,
                    QueueError::DuplicateKey | QueueError::HandleLimit { .. }
                ));
            }
        }
        Op::KeyedUnregister(k) => {
            let _ = keyed.unregister(&(k % 16));
        }
    }
    false
}

fuzz_target!(|input: Input| {
    let limit = first_bucket() + input.extra as usize * 4;
    let q = NotificationQueue::new(
        Config::default()
            .memory_budget(limit)
            .reserve_handles(reservation(input.reserve[0]))
            .reserve_waiters(reservation(input.reserve[1]), reservation(input.reserve[2])),
    );
    let reserved = q.stats().budget;
    assert!(reserved.held <= limit, "reservations passed the budget");
    let keyed: KeyedQueue<u8> = KeyedQueue::new(q.clone());
    let mut world = World {
        handles: Vec::new(),
        waits: Vec::new(),
        subs: Vec::new(),
        pipes: Vec::new(),
    };
    for op in input.ops.iter().take(256) {
        let before = q.stats();
        let was_refused = step(&q, &keyed, &mut world, *op);
        let after = q.stats();
        check(&after.budget, limit);
        if was_refused {
            unchanged(&before, &after);
        }
    }
    // A live handle keeps its waiter list: unregister them all.
    for h in world.handles.drain(..) {
        assert_eq!(q.unregister(h), Ok(()));
    }
    drop(world);
    drop(keyed);
    let b = q.stats().budget;
    check(&b, limit);
    assert_eq!((b.pipes, b.keyed), (0, 0), "{b:?}");
    // Retired lists (and the rings they hold) go once the collector runs;
    // every `stats` pins, and pinning drives collection.
    let mut b = b;
    // Reserved waiter lists stay in the queue's pool (with any chunks they
    // grew meanwhile): only without a reserve must every list go.
    let lists_kept = reserved.waiters != 0;
    for _ in 0..100_000 {
        if (b.waiters == 0 || lists_kept) && b.rings == 0 {
            break;
        }
        b = q.stats().budget;
    }
    assert_eq!(b.rings, 0, "{b:?}");
    assert!(b.waiters == 0 || lists_kept, "{b:?}");
});
