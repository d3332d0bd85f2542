//! notify with nobody listening: this crate against the physical floor and
//! its peers.
//!
//! Three groups, each one run so the ratios come from the same conditions:
//! - `notify_idle_1thread`: one thread notifies one handle in a loop.
//! - `notify_idle_2threads_same`: two threads notify the *same* handle
//!   (every peer shares one object, so the cache line bounces).
//! - `notify_idle_2threads_diff`: two threads notify *different* handles
//!   (independent objects, except where the design shares a lock: the
//!   sketch's global `RwLock<HashMap>`).
//!
//! Peers: a bare `AtomicU64::fetch_add` (one cache-padded counter per handle:
//! the floor any notify must pay), `tokio::sync::Notify::notify_waiters`,
//! `event_listener::Event::notify(1)`, `tokio::sync::watch::Sender::send`
//! (with a live receiver), and the user's sketch (write lock on a map of
//! oneshot lists). Every peer object has been used once by a waiter before
//! the run, so lazily allocated state (event-listener's) is in place, and
//! every object sits on its own cache lines (`CachePadded`, as this crate's
//! slots do), so "different handles" never share a line by accident.
//!
//! Two-thread times are per operation per thread: each thread does `iters`
//! notifies, started together behind a barrier, and the slowest thread's
//! time is reported (see `common::run_threads`). The two threads are pinned
//! to two different CPUs; a parallelism probe printed before the groups
//! (`probe_notify.json` for the report) says whether those two CPUs really
//! ran at once.

mod common;

use common::{CRATE, Sketch, parallelism_probe, run_threads};
use criterion::{Criterion, criterion_group, criterion_main};
use crossbeam_utils::CachePadded;
use notification_queue::{Config, Handle, NotificationQueue};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

type WatchPair = (
    tokio::sync::watch::Sender<i64>,
    tokio::sync::watch::Receiver<i64>,
);

/// The peers for one scenario: two of everything (index 0 and 1). For the
/// "same" scenarios both indices point at one object.
struct Peers {
    queue: NotificationQueue,
    handles: [Handle; 2],
    counters: [CachePadded<AtomicU64>; 2],
    same: bool,
    tokio: [CachePadded<tokio::sync::Notify>; 2],
    listener: [CachePadded<event_listener::Event>; 2],
    watch: [CachePadded<WatchPair>; 2],
    sketch: Sketch,
}

impl Peers {
    fn new(same: bool) -> Self {
        let queue = NotificationQueue::new(Config::default());
        let h0 = queue.register("bench-0").unwrap();
        let h1 = queue.register("bench-1").unwrap();
        let sketch = Sketch::default();
        sketch.register(0);
        sketch.register(1);
        let listener: [CachePadded<event_listener::Event>; 2] = Default::default();
        for e in &listener {
            // Used once, as in real life: allocates its lazy inner state.
            let l = e.listen();
            e.notify(1);
            drop(l);
        }
        Self {
            queue,
            handles: if same { [h0, h0] } else { [h0, h1] },
            counters: Default::default(),
            same,
            tokio: Default::default(),
            listener,
            watch: [
                CachePadded::new(tokio::sync::watch::channel(0)),
                CachePadded::new(tokio::sync::watch::channel(0)),
            ],
            sketch,
        }
    }

    fn idx(&self, t: usize) -> usize {
        if self.same { 0 } else { t }
    }
}

fn one_thread(c: &mut Criterion) {
    let p = Peers::new(true);
    let mut g = c.benchmark_group("notify_idle_1thread");
    g.bench_function(CRATE, |b| {
        let h = p.handles[0];
        b.iter(|| black_box(p.queue.notify(black_box(h), 1)))
    });
    // The same with a new argument every notify: the argument store then
    // precedes the CAS (a repeated argument skips it).
    g.bench_function(format!("{CRATE} (new arg each time)"), |b| {
        let h = p.handles[0];
        let mut arg = 0i64;
        b.iter(|| {
            arg = arg.wrapping_add(1);
            black_box(p.queue.notify(black_box(h), black_box(arg)))
        })
    });
    g.bench_function("atomic_fetch_add", |b| {
        // Relaxed: the floor itself (every ordering is one `lock xadd` on x86).
        b.iter(|| black_box(p.counters[0].fetch_add(1, Ordering::Relaxed)))
    });
    g.bench_function("tokio_notify_waiters", |b| {
        b.iter(|| p.tokio[0].notify_waiters())
    });
    g.bench_function("event_listener_notify", |b| {
        b.iter(|| black_box(p.listener[0].notify(1)))
    });
    g.bench_function("tokio_watch_send", |b| {
        b.iter(|| black_box(p.watch[0].0.send(1).is_ok()))
    });
    g.bench_function("rwlock_hashmap_sketch", |b| {
        b.iter(|| black_box(p.sketch.notify(black_box(0), 1)))
    });
    g.finish();
}

fn two_threads(c: &mut Criterion, same: bool) {
    let p = Peers::new(same);
    let name = if same {
        "notify_idle_2threads_same"
    } else {
        "notify_idle_2threads_diff"
    };
    let mut g = c.benchmark_group(name);
    g.bench_function(CRATE, |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                let h = p.handles[t];
                for _ in 0..n {
                    black_box(p.queue.notify(black_box(h), 1).ok());
                }
            })
        })
    });
    g.bench_function("atomic_fetch_add", |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                let c = &p.counters[p.idx(t)];
                for _ in 0..n {
                    // Relaxed: as in the one-thread floor.
                    black_box(c.fetch_add(1, Ordering::Relaxed));
                }
            })
        })
    });
    g.bench_function("tokio_notify_waiters", |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                let e = &p.tokio[p.idx(t)];
                for _ in 0..n {
                    e.notify_waiters();
                }
            })
        })
    });
    g.bench_function("event_listener_notify", |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                let e = &p.listener[p.idx(t)];
                for _ in 0..n {
                    black_box(e.notify(1));
                }
            })
        })
    });
    g.bench_function("tokio_watch_send", |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                let tx = &p.watch[p.idx(t)].0;
                for _ in 0..n {
                    black_box(tx.send(1).is_ok());
                }
            })
        })
    });
    g.bench_function("rwlock_hashmap_sketch", |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                let key = p.idx(t) as u64;
                for _ in 0..n {
                    black_box(p.sketch.notify(black_box(key), 1));
                }
            })
        })
    });
    g.finish();
}

fn two_threads_same(c: &mut Criterion) {
    parallelism_probe("notify");
    two_threads(c, true);
}

fn two_threads_diff(c: &mut Criterion) {
    two_threads(c, false);
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = one_thread, two_threads_same, two_threads_diff
}
criterion_main!(benches);
