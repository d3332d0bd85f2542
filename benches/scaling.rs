//! How cost grows with the work: notify with 1, 10^3 and 10^6 registered
//! handles, register + unregister churn, and memory per handle and per
//! pending waiter.
//!
//! - `scaling_notify_spread`: N handles are registered and notified in a
//!   fixed pseudo-random order, so with 10^6 handles each notify touches a
//!   cold cache line like a real system with many handles would. The floor
//!   is the same walk over N cache-padded `AtomicU64`s (`fetch_add`), which
//!   pays the same cache misses; the sketch walks its `RwLock<HashMap>`.
//!   "Flat" means the crate's ratio to that floor does not grow with N.
//! - `scaling_churn`: register + unregister one handle while 1000 others
//!   are live (the hint is a shared `Arc<str>`, so no hint allocation is
//!   timed), against the sketch's insert + remove.
//! - Memory: a counting `#[global_allocator]` records live heap bytes
//!   around registering handles and parking waiters (nothing is estimated).
//!   The figures are printed and written to `<criterion dir>/memory.json`
//!   for `scripts/bench_report.py`. They are measured before criterion
//!   starts, on one thread, so nothing else allocates meanwhile.

mod common;

use common::{CRATE, CountingWaker, Sketch};
use criterion::{BenchmarkId, Criterion, criterion_group};
use crossbeam_utils::CachePadded;
use notification_queue::{Config, Handle, NotificationQueue, Wait};
use std::alloc::{GlobalAlloc, Layout, System};
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::task::Context;

/// Counts live heap bytes.
struct CountingAlloc;

static LIVE: AtomicI64 = AtomicI64::new(0);

// SAFETY: every method forwards to `System` with the caller's arguments
// unchanged; the counter is bookkeeping only.
unsafe impl GlobalAlloc for CountingAlloc {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            // Relaxed: a statistic read by the same thread.
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            // Relaxed: as in `alloc`.
            LIVE.fetch_add(layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded contract.
        unsafe { System.dealloc(ptr, layout) };
        // Relaxed: as in `alloc`.
        LIVE.fetch_sub(layout.size() as i64, Ordering::Relaxed);
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded contract.
        let p = unsafe { System.realloc(ptr, layout, new_size) };
        if !p.is_null() {
            // Relaxed: as in `alloc`.
            LIVE.fetch_add(new_size as i64 - layout.size() as i64, Ordering::Relaxed);
        }
        p
    }
}

#[global_allocator]
static ALLOC: CountingAlloc = CountingAlloc;

fn live() -> i64 {
    // Relaxed: read on the thread that did the allocations.
    LIVE.load(Ordering::Relaxed)
}

const SIZES: [usize; 3] = [1, 1_000, 1_000_000];

/// A fixed pseudo-random permutation of `0..n` (xorshift-driven shuffle).
fn spread(n: usize) -> Vec<u32> {
    let mut v: Vec<u32> = (0..n as u32).collect();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    for i in (1..n).rev() {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.swap(i, (x % (i as u64 + 1)) as usize);
    }
    v
}

fn register_n(queue: &NotificationQueue, n: usize) -> Vec<Handle> {
    let hint: Arc<str> = Arc::from("scaling");
    (0..n)
        .map(|_| queue.register(hint.clone()).unwrap())
        .collect()
}

/// Walks `order` cyclically, one element per call.
struct Cycle<T> {
    order: Vec<T>,
    at: usize,
}

impl<T: Copy> Cycle<T> {
    #[inline(always)]
    fn next(&mut self) -> T {
        let v = self.order[self.at];
        self.at += 1;
        if self.at == self.order.len() {
            self.at = 0;
        }
        v
    }
}

fn notify_spread(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling_notify_spread");
    for n in SIZES {
        let perm = spread(n);
        {
            let queue = NotificationQueue::new(Config::default().max_handles(n.max(1 << 20)));
            let handles = register_n(&queue, n);
            let mut cyc = Cycle {
                order: perm.iter().map(|&i| handles[i as usize]).collect(),
                at: 0,
            };
            g.bench_with_input(BenchmarkId::new(CRATE, n), &n, |b, _| {
                b.iter(|| black_box(queue.notify(cyc.next(), 1)))
            });
        }
        {
            let counters: Vec<CachePadded<AtomicU64>> =
                (0..n).map(|_| Default::default()).collect();
            let mut cyc = Cycle {
                order: perm.clone(),
                at: 0,
            };
            g.bench_with_input(BenchmarkId::new("atomic_fetch_add", n), &n, |b, _| {
                // Relaxed: the floor (one `lock xadd`).
                b.iter(|| black_box(counters[cyc.next() as usize].fetch_add(1, Ordering::Relaxed)))
            });
        }
        {
            let sketch = Sketch::default();
            for i in 0..n {
                sketch.register(i as u64);
            }
            let mut cyc = Cycle {
                order: perm.iter().map(|&i| i as u64).collect(),
                at: 0,
            };
            g.bench_with_input(BenchmarkId::new("rwlock_hashmap_sketch", n), &n, |b, _| {
                b.iter(|| black_box(sketch.notify(cyc.next(), 1)))
            });
        }
    }
    g.finish();
}

fn churn(c: &mut Criterion) {
    let mut g = c.benchmark_group("scaling_churn");
    let queue = NotificationQueue::new(Config::default());
    let _others = register_n(&queue, 1_000);
    let hint: Arc<str> = Arc::from("churn");
    g.bench_function(CRATE, |b| {
        b.iter(|| {
            let h = queue.register(hint.clone()).unwrap();
            queue.unregister(black_box(h)).unwrap();
        })
    });
    let sketch = Sketch::default();
    for i in 0..1_000 {
        sketch.register(i);
    }
    g.bench_function("rwlock_hashmap_sketch", |b| {
        b.iter(|| {
            sketch.register(black_box(5_000));
            sketch.unregister(black_box(5_000));
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = notify_spread, churn
}

/// One memory figure.
struct Figure {
    scenario: &'static str,
    implementation: &'static str,
    items: usize,
    bytes: i64,
    note: String,
}

impl Figure {
    fn per_item(&self) -> f64 {
        self.bytes as f64 / self.items as f64
    }
}

/// Heap bytes that `f` leaves live, with `keep` holding what it built.
fn measure<T>(f: impl FnOnce() -> T) -> (i64, T) {
    let before = live();
    let kept = f();
    (live() - before, kept)
}

fn handle_figures(out: &mut Vec<Figure>) {
    for n in [1_000usize, 1_000_000] {
        let queue = NotificationQueue::new(Config::default());
        let hint: Arc<str> = Arc::from("h");
        let mut handles = Vec::with_capacity(n);
        let (bytes, ()) = measure(|| {
            for _ in 0..n {
                handles.push(queue.register(hint.clone()).unwrap());
            }
        });
        out.push(Figure {
            scenario: "per registered handle",
            implementation: CRATE,
            items: n,
            bytes,
            note: "slot table + registry; hint shared".into(),
        });
        drop(queue);

        let queue = NotificationQueue::new(Config::default());
        handles.clear();
        let (bytes, ()) = measure(|| {
            for _ in 0..n {
                handles.push(queue.register("handle-x").unwrap());
            }
        });
        out.push(Figure {
            scenario: "per registered handle",
            implementation: CRATE,
            items: n,
            bytes,
            note: "with its own 8-byte hint".into(),
        });
        drop(queue);

        let sketch = Sketch::default();
        let (bytes, ()) = measure(|| {
            for i in 0..n {
                sketch.register(i as u64);
            }
        });
        out.push(Figure {
            scenario: "per registered handle",
            implementation: "rwlock_hashmap_sketch",
            items: n,
            bytes,
            note: "HashMap<u64, Vec<oneshot::Sender>> entry".into(),
        });
    }
}

/// Creates `per_handle` waits on each of `handles`, polls each once (so it
/// is pending and registered) and reports the heap bytes that adds.
fn waiter_figures(out: &mut Vec<Figure>) {
    let (_count, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);
    for (handles, per_handle) in [(1usize, 1000usize), (1000, 1)] {
        let n = handles * per_handle;
        let queue = NotificationQueue::new(Config::default());
        let hs = register_n(&queue, handles);
        let mut waits: Vec<Wait<'_>> = Vec::with_capacity(n);
        let (bytes, ()) = measure(|| {
            for h in &hs {
                for _ in 0..per_handle {
                    waits.push(queue.wait(*h));
                }
            }
            for w in waits.iter_mut() {
                assert!(Pin::new(w).poll(&mut cx).is_pending());
            }
        });
        out.push(Figure {
            scenario: "per pending waiter",
            implementation: CRATE,
            items: n,
            bytes,
            note: format!(
                "{per_handle} waiter(s) on each of {handles} handle(s); heap only, the future itself is {} B",
                size_of::<Wait<'_>>()
            ),
        });
        drop(waits);

        let sketch = Sketch::default();
        for h in 0..handles as u64 {
            sketch.register(h);
        }
        let mut rxs = Vec::with_capacity(n);
        let (bytes, ()) = measure(|| {
            for h in 0..handles as u64 {
                for _ in 0..per_handle {
                    rxs.push(sketch.wait(h).unwrap());
                }
            }
            for r in rxs.iter_mut() {
                assert!(Pin::new(r).poll(&mut cx).is_pending());
            }
        });
        out.push(Figure {
            scenario: "per pending waiter",
            implementation: "rwlock_hashmap_sketch",
            items: n,
            bytes,
            note: format!(
                "{per_handle} waiter(s) on each of {handles} handle(s); oneshot + Vec slot"
            ),
        });

        let events: Vec<event_listener::Event> =
            (0..handles).map(|_| event_listener::Event::new()).collect();
        let mut ls = Vec::with_capacity(n);
        let (bytes, ()) = measure(|| {
            for e in &events {
                for _ in 0..per_handle {
                    ls.push(e.listen());
                }
            }
            for l in ls.iter_mut() {
                assert!(Pin::new(l).poll(&mut cx).is_pending());
            }
        });
        out.push(Figure {
            scenario: "per pending waiter",
            implementation: "event_listener",
            items: n,
            bytes,
            note: format!("{per_handle} listener(s) on each of {handles} event(s)"),
        });
        let notifies: Vec<tokio::sync::Notify> =
            (0..handles).map(|_| tokio::sync::Notify::new()).collect();
        out.push(Figure {
            scenario: "per pending waiter",
            implementation: "tokio_notify",
            items: n,
            bytes: 0,
            note: format!(
                "intrusive: no heap, the future itself is {} B",
                size_of_val(&notifies[0].notified())
            ),
        });
    }
}

fn memory_figures() {
    let mut figs = Vec::new();
    handle_figures(&mut figs);
    waiter_figures(&mut figs);
    let mut json = String::from("{\n  \"unit\": \"bytes\",\n  \"figures\": [\n");
    for (i, f) in figs.iter().enumerate() {
        println!(
            "memory: {:<22} {:<24} {:>8.1} B/item over {} items ({})",
            f.scenario,
            f.implementation,
            f.per_item(),
            f.items,
            f.note
        );
        json.push_str(&format!(
            "    {{\"scenario\": \"{}\", \"implementation\": \"{}\", \"items\": {}, \"bytes\": {}, \"bytes_per_item\": {:.1}, \"note\": \"{}\"}}{}\n",
            f.scenario,
            f.implementation,
            f.items,
            f.bytes,
            f.per_item(),
            f.note,
            if i + 1 == figs.len() { "" } else { "," }
        ));
    }
    json.push_str("  ]\n}\n");
    let dir = std::env::var_os("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(|d| std::path::PathBuf::from(d).join("criterion"))
        })
        .unwrap_or_else(|| "target/criterion".into());
    let path = dir.join("memory.json");
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, json)) {
        eprintln!("memory: could not write {}: {e}", path.display());
    }
}

fn main() {
    memory_figures();
    benches();
    Criterion::default().configure_from_args().final_summary();
}
