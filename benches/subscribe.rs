//! notify fan-out to subscribers: this crate against its peers.
//!
//! One group per fan-out (1, 8 and 64 subscribers). In each, one thread sends
//! batches of `BATCH` values, then drains every receiver, so no buffer is
//! ever full and every send is a real delivery. Both halves are timed: a
//! delivery is only done once the subscriber has the value, and the peers
//! split that work differently (tokio's broadcast sends once and makes each
//! receiver clone out of the shared slot; this crate writes each distinct
//! buffer once at send, and keep-newest subscribers share one buffer that
//! has room for their capacities). The time is per send; criterion's throughput line (elements =
//! fan-out) gives the time per delivery.
//!
//! Peers:
//! - `notification-queue`: `notify` on a handle with N keep-newest
//!   subscriptions of capacity `BATCH` (one shared buffer); and, at 8,
//!   with capacities `BATCH`, `2 * BATCH`, ..., `128 * BATCH` (8 buffers),
//!   and with 8 mixed capacities that are not powers of two, in no order
//!   (2 buffers: of 1024 and 2048 cells).
//! - `crossbeam-channel`: N `bounded(BATCH)` channels, `try_send` to each.
//! - `tokio-broadcast`: one `broadcast::channel(BATCH)` with N receivers,
//!   `send` once.
//!
//! `subscribe_fanout_1_2threads`: two threads, pinned to two CPUs, each
//! sending to its own handle with one subscriber (tokio: its own channel
//! with one receiver), each batch followed by a drain; time per send per
//! thread.

mod common;

use common::{CRATE, run_threads};
use criterion::measurement::WallTime;
use criterion::{BenchmarkGroup, Criterion, Throughput, criterion_group, criterion_main};
use notification_queue::{Config, Handle, NotificationQueue, Subscription};
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

const BATCH: u64 = 256;
const FANOUT: [usize; 3] = [1, 8, 64];

/// Runs `iters` sends in batches of `BATCH`, each batch followed by a
/// drain of every receiver; times both.
fn batched(iters: u64, mut send: impl FnMut(i64), mut drain: impl FnMut()) -> Duration {
    let start = Instant::now();
    let mut left = iters;
    while left > 0 {
        let n = left.min(BATCH);
        for i in 0..n {
            send(black_box(i as i64));
        }
        drain();
        left -= n;
    }
    start.elapsed()
}

/// This crate's entry: `notify` on `h` with one keep-newest subscription
/// per capacity in `caps`, each drained after every batch; checks that no
/// value was dropped.
fn bench_crate(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    queue: &NotificationQueue,
    h: Handle,
    caps: Vec<usize>,
) {
    let mut subs: Vec<Subscription> = caps
        .into_iter()
        .map(|cap| queue.subscribe(h, cap, "bench").unwrap())
        .collect();
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            batched(
                iters,
                |v| {
                    black_box(queue.notify(h, v).unwrap());
                },
                || {
                    for s in subs.iter_mut() {
                        while s.try_recv().is_ok() {}
                    }
                },
            )
        })
    });
    assert_eq!(subs.iter().map(Subscription::dropped).sum::<u64>(), 0);
}

fn fanout(c: &mut Criterion) {
    for &n in &FANOUT {
        let mut group = c.benchmark_group(format!("subscribe_fanout_{n}"));
        group.throughput(Throughput::Elements(n as u64));

        let queue = NotificationQueue::new(Config::default());
        let h = queue.register("bench").unwrap();
        bench_crate(&mut group, CRATE, &queue, h, vec![BATCH as usize; n]);
        // The same with every capacity different and each larger than the
        // last (a subscriber shares only a buffer with room for its
        // capacity), so no two subscribers share a buffer: the notify
        // writes one cell per subscriber.
        if n == 8 {
            let caps = (0..n).map(|i| (BATCH as usize) << i).collect();
            let name = format!("{CRATE} (distinct capacities)");
            bench_crate(&mut group, &name, &queue, h, caps);
            // Capacities as an application might pick them: each shares
            // the smallest buffer with room for it (1024 or 2048 cells).
            let caps = vec![1000, 300, 256, 2000, 700, 500, 400, 1500];
            let name = format!("{CRATE} (mixed capacities)");
            bench_crate(&mut group, &name, &queue, h, caps);
        }

        let chans: Vec<_> = (0..n)
            .map(|_| crossbeam_channel::bounded::<i64>(BATCH as usize))
            .collect();
        group.bench_function("crossbeam-channel", |b| {
            b.iter_custom(|iters| {
                batched(
                    iters,
                    |v| {
                        for (tx, _) in &chans {
                            black_box(tx.try_send(v).is_ok());
                        }
                    },
                    || {
                        for (_, rx) in &chans {
                            while rx.try_recv().is_ok() {}
                        }
                    },
                )
            })
        });
        drop(chans);

        let (tx, rx0) = tokio::sync::broadcast::channel::<i64>(BATCH as usize);
        let mut rxs: Vec<_> = (1..n).map(|_| tx.subscribe()).collect();
        rxs.push(rx0);
        group.bench_function("tokio-broadcast", |b| {
            b.iter_custom(|iters| {
                batched(
                    iters,
                    |v| {
                        black_box(tx.send(v).is_ok());
                    },
                    || {
                        for rx in rxs.iter_mut() {
                            while rx.try_recv().is_ok() {}
                        }
                    },
                )
            })
        });
        group.finish();
    }
}

/// Two threads on two CPUs, each notifying its own handle with one
/// keep-newest subscriber (and draining it after every batch), against
/// two tokio `broadcast` channels with one receiver each: handles that
/// share nothing must not slow each other down (no queue-wide counter or
/// line on the path of a notify with subscribers). Time per send per
/// thread.
fn fanout_two_threads(c: &mut Criterion) {
    let mut group = c.benchmark_group("subscribe_fanout_1_2threads");
    let queue = NotificationQueue::new(Config::default());
    let handles: Vec<Handle> = (0..2).map(|_| queue.register("bench").unwrap()).collect();
    let subs: Vec<Mutex<Subscription>> = handles
        .iter()
        .map(|&h| Mutex::new(queue.subscribe(h, BATCH as usize, "bench").unwrap()))
        .collect();
    group.bench_function(CRATE, |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                let h = handles[t];
                let mut sub = subs[t].lock().unwrap();
                batched(
                    n,
                    |v| {
                        black_box(queue.notify(h, v).unwrap());
                    },
                    || while sub.try_recv().is_ok() {},
                );
            })
        })
    });
    let chans: Vec<_> = (0..2)
        .map(|_| {
            let (tx, rx) = tokio::sync::broadcast::channel::<i64>(BATCH as usize);
            (tx, Mutex::new(rx))
        })
        .collect();
    group.bench_function("tokio-broadcast", |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                let (tx, rx) = &chans[t];
                let mut rx = rx.lock().unwrap();
                batched(
                    n,
                    |v| {
                        black_box(tx.send(v).is_ok());
                    },
                    || while rx.try_recv().is_ok() {},
                );
            })
        })
    });
    group.finish();
    for s in subs {
        assert_eq!(s.into_inner().unwrap().dropped(), 0);
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = fanout, fanout_two_threads
}
criterion_main!(benches);
