//! notify by the caller's own key against notify by handle and against the
//! user's previous runtime design, nobody waiting, in one run.
//!
//! Entries in each group:
//! - `notification-queue`: `queue.notify(handle, arg)` with a handle looked
//!   up once (the hot-loop path).
//! - `by_key`: `KeyedQueue::<u64>::notify(&key, arg)` (dashmap lookup with
//!   std's hasher, then the same notify).
//! - `by_key_fxhash` (one thread only): the same with a multiply-rotate
//!   hasher, to show how much of the cost is SipHash.
//! - `old_runtime_mutex_hashmap`: the user's runtime as it is today: a
//!   `std::sync::Mutex<HashMap<u64, Vec<oneshot::Sender<i64>>>>`; notify
//!   locks the map, looks the key up, drains the waiters and sends to each
//!   (with nobody waiting: a lock, a lookup and an empty drain).
//!
//! Every structure holds the same 1024 registered keys. Groups:
//! - `keyed_notify_idle_1thread`: one thread notifies one key in a loop.
//! - `keyed_notify_idle_2threads`: two threads at once, each notifying its
//!   own 64 keys in turn (so the map's shards are shared the way a real
//!   key population shares them); time per notify per thread, the slowest
//!   thread's (see `common::run_threads`).

mod common;

use common::{CRATE, run_threads};
use criterion::{Criterion, criterion_group, criterion_main};
use notification_queue::{Config, Handle, KeyedQueue, NotificationQueue};
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};
use std::hint::black_box;
use std::sync::Mutex;

const KEYS: u64 = 1024;
const KEYS_PER_THREAD: usize = 64;

/// The user's runtime today: one mutex around a map from handle ids to the
/// oneshot senders of the tasks waiting on them (`wait_async` pushes one;
/// `notify` drains the list and sends `arg` to each).
#[derive(Default)]
struct OldRuntime {
    map: Mutex<HashMap<u64, Vec<tokio::sync::oneshot::Sender<i64>>>>,
}

impl OldRuntime {
    /// `whitelist(handle)`: lists the id with no waiters.
    fn whitelist(&self, id: u64) {
        self.map
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(id, Vec::new());
    }

    /// `notify(handle, arg)`: wakes every waiter of `id`; returns how many.
    #[inline]
    fn notify(&self, id: u64, arg: i64) -> usize {
        let waiters = {
            let mut map = self.map.lock().unwrap_or_else(|e| e.into_inner());
            match map.get_mut(&id) {
                Some(list) => std::mem::take(list),
                None => return 0,
            }
        };
        let n = waiters.len();
        for tx in waiters {
            let _ = tx.send(arg);
        }
        n
    }
}

/// FxHash's multiply-rotate step for integer keys (no dependency needed).
#[derive(Default, Clone, Copy)]
struct FxHasher(u64);

impl Hasher for FxHasher {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(u64::from(b));
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = (self.0.rotate_left(5) ^ n).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }
    fn finish(&self) -> u64 {
        self.0
    }
}

type Fx = BuildHasherDefault<FxHasher>;

struct Setup {
    keyed: KeyedQueue<u64>,
    keyed_fx: KeyedQueue<u64, Fx>,
    handles: Vec<Handle>,
    old: OldRuntime,
}

impl Setup {
    fn new() -> Self {
        let keyed = KeyedQueue::new(NotificationQueue::new(Config::default()));
        let keyed_fx =
            KeyedQueue::with_hasher(NotificationQueue::new(Config::default()), Fx::default());
        let old = OldRuntime::default();
        let mut handles = Vec::new();
        for id in 0..KEYS {
            handles.push(keyed.register(id, "bench").unwrap());
            keyed_fx.register(id, "bench").unwrap();
            old.whitelist(id);
        }
        Self {
            keyed,
            keyed_fx,
            handles,
            old,
        }
    }

    /// Thread `t`'s keys: every other key from `t`.
    fn keys_of(t: usize) -> Vec<u64> {
        (0..KEYS_PER_THREAD).map(|i| (t + 2 * i) as u64).collect()
    }
}

fn one_thread(c: &mut Criterion) {
    let s = Setup::new();
    let key = 7u64;
    let h = s.handles[key as usize];
    let mut g = c.benchmark_group("keyed_notify_idle_1thread");
    g.bench_function(CRATE, |b| {
        let q = s.keyed.queue();
        b.iter(|| black_box(q.notify(black_box(h), 1)))
    });
    g.bench_function("by_key", |b| {
        b.iter(|| black_box(s.keyed.notify(black_box(&key), 1)))
    });
    g.bench_function("by_key_fxhash", |b| {
        b.iter(|| black_box(s.keyed_fx.notify(black_box(&key), 1)))
    });
    g.bench_function("old_runtime_mutex_hashmap", |b| {
        b.iter(|| black_box(s.old.notify(black_box(key), 1)))
    });
    g.finish();
}

fn two_threads(c: &mut Criterion) {
    let s = Setup::new();
    let keys = [Setup::keys_of(0), Setup::keys_of(1)];
    let handles: [Vec<Handle>; 2] = [
        keys[0].iter().map(|&k| s.handles[k as usize]).collect(),
        keys[1].iter().map(|&k| s.handles[k as usize]).collect(),
    ];
    let mut g = c.benchmark_group("keyed_notify_idle_2threads");
    g.bench_function(CRATE, |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                let q = s.keyed.queue();
                for h in handles[t].iter().cycle().take(n as usize) {
                    black_box(q.notify(black_box(*h), 1).ok());
                }
            })
        })
    });
    g.bench_function("by_key", |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                for k in keys[t].iter().cycle().take(n as usize) {
                    black_box(s.keyed.notify(black_box(k), 1).ok());
                }
            })
        })
    });
    g.bench_function("old_runtime_mutex_hashmap", |b| {
        b.iter_custom(|iters| {
            run_threads(2, iters, |t, n| {
                for k in keys[t].iter().cycle().take(n as usize) {
                    black_box(s.old.notify(black_box(*k), 1));
                }
            })
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = one_thread, two_threads
}
criterion_main!(benches);
