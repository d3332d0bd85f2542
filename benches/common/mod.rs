//! Shared pieces of the benchmark suite.
//!
//! - [`config`]: the criterion settings every group uses, sized so the whole
//!   suite (all bench binaries) finishes in under 15 minutes on two cores.
//! - [`Sketch`]: the user's first design, kept as the baseline to beat: one
//!   `RwLock<HashMap<u64, Vec<oneshot::Sender<i64>>>>`; notify takes the
//!   write lock, takes the handle's `Vec` and sends to each waiter.
//! - [`CountingWaker`]: a waker that only counts wakes, so async benches can
//!   poll futures by hand (a minimal executor) and check every waiter woke.
//! - [`run_threads`]: runs one closure per thread, started together behind
//!   a barrier, and returns the slowest thread's time: the way two-thread
//!   benches turn `iters` operations per thread into a time per operation.
//!   Thread `t` is pinned to CPU `t % cpus`, so with two CPUs the two
//!   threads always run on two different CPUs.
//! - [`pin`], [`unpin`], [`parallelism_probe`]: thread placement for the
//!   two-thread benches, and a measure of how parallel two CPUs really are
//!   (printed, and written to `<criterion dir>/probe_<bench>.json` for the
//!   report).
#![allow(dead_code)] // each bench binary uses a different subset

use criterion::Criterion;
use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier, RwLock};
use std::task::{Wake, Waker};
use std::time::{Duration, Instant};

/// The function id this crate's entries use in every group (the report
/// computes ratios against it).
pub const CRATE: &str = "notification-queue";

/// Criterion settings for the suite: 1 s warm-up, 2 s measurement, 30
/// samples per benchmark.
pub fn config() -> Criterion {
    Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2))
        .sample_size(30)
        .configure_from_args()
}

/// The user's first sketch: a global lock around a map of oneshot senders.
#[derive(Default)]
pub struct Sketch {
    map: RwLock<HashMap<u64, Vec<tokio::sync::oneshot::Sender<i64>>>>,
}

impl Sketch {
    /// Lists `handle` (an empty waiter list).
    pub fn register(&self, handle: u64) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle, Vec::new());
    }

    /// Unlists `handle`, dropping (closing) its waiters.
    pub fn unregister(&self, handle: u64) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&handle);
    }

    /// Adds a waiter to `handle`; `None` if it is not listed.
    pub fn wait(&self, handle: u64) -> Option<tokio::sync::oneshot::Receiver<i64>> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .get_mut(&handle)?
            .push(tx);
        Some(rx)
    }

    /// Wakes every waiter of `handle` with `arg`; returns how many.
    #[inline]
    pub fn notify(&self, handle: u64, arg: i64) -> usize {
        let waiters = {
            let mut map = self.map.write().unwrap_or_else(|e| e.into_inner());
            match map.get_mut(&handle) {
                Some(v) => std::mem::take(v),
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

/// Counts wakes; clone it into as many wakers as needed.
#[derive(Default)]
pub struct CountingWaker {
    wakes: AtomicUsize,
}

impl CountingWaker {
    /// A fresh counter and a `Waker` that bumps it.
    pub fn new() -> (Arc<Self>, Waker) {
        let c = Arc::new(Self::default());
        let w = Waker::from(c.clone());
        (c, w)
    }

    /// Wakes so far.
    pub fn wakes(&self) -> usize {
        self.wakes.load(Ordering::Relaxed)
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // Relaxed: a statistic read by the same thread after the wake.
        self.wakes.fetch_add(1, Ordering::Relaxed);
    }
}

/// Runs `work(thread_index, iters)` on `threads` fresh threads, thread `t`
/// pinned to CPU `t % cpus`, that start together (barrier) and returns the
/// longest time any of them took.
///
/// Each thread does `iters` operations, so the result divided by `iters` is
/// the time one operation takes while the other threads run the same loop.
pub fn run_threads<F>(threads: usize, iters: u64, work: F) -> Duration
where
    F: Fn(usize, u64) + Sync,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        let joins: Vec<_> = (0..threads)
            .map(|t| {
                let (barrier, work) = (&barrier, &work);
                s.spawn(move || {
                    pin(t % cpu_count());
                    barrier.wait();
                    let start = Instant::now();
                    work(t, iters);
                    start.elapsed()
                })
            })
            .collect();
        joins
            .into_iter()
            .map(|j| j.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    })
}

/// Restricts the calling thread to `cpus` (Linux `sched_setaffinity`; a
/// no-op elsewhere or where the OS refuses).
pub fn set_cpus(cpus: impl IntoIterator<Item = usize>) {
    #[cfg(target_os = "linux")]
    // SAFETY: `cpu_set_t` is plain data and all-zero is the empty set;
    // `CPU_SET` only writes bits below `CPU_SETSIZE` (checked), and
    // `sched_setaffinity` reads `size_of::<cpu_set_t>()` bytes of `set`.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for cpu in cpus {
            if cpu < libc::CPU_SETSIZE as usize {
                libc::CPU_SET(cpu, &mut set);
            }
        }
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = cpus.into_iter();
}

/// Pins the calling thread to `cpu`.
pub fn pin(cpu: usize) {
    set_cpus([cpu]);
}

/// Lets the calling thread run on every CPU again.
pub fn unpin() {
    set_cpus(0..libc::CPU_SETSIZE as usize);
}

/// CPUs this process may use.
pub fn cpu_count() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Two threads' time for a fixed amount of private pure-compute work (no
/// memory traffic), pinned to CPUs 0 and 1, over one thread's time for the
/// same work alone on CPU 0: 1.0 on two idle cores, up to 2.0 when the host
/// time-shares the two vCPUs (or other processes hold a CPU). `None` with
/// fewer than two CPUs. Printed with `what` and written to
/// `<criterion dir>/probe_<what>.json`, so the report shows it beside the two-thread groups.
pub fn parallelism_probe(what: &str) -> Option<f64> {
    fn work() -> u64 {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..50_000_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        x
    }
    fn timed(cpu: usize) -> Duration {
        pin(cpu);
        let t0 = Instant::now();
        std::hint::black_box(work());
        t0.elapsed()
    }
    if cpu_count() < 2 {
        println!("parallelism probe ({what}): one CPU only, two-CPU placement not run");
        return None;
    }
    let one = std::thread::scope(|s| s.spawn(|| timed(0)).join().unwrap_or_default());
    let two = std::thread::scope(|s| {
        let a = s.spawn(|| timed(0));
        let b = s.spawn(|| timed(1));
        [a, b]
            .into_iter()
            .map(|t| t.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    });
    let ratio = two.as_secs_f64() / one.as_secs_f64().max(1e-9);
    println!(
        "parallelism probe ({what}): two threads on two CPUs take {ratio:.2}x one thread's time \
         (1.00 = truly parallel, 2.00 = time-shared)"
    );
    let dir = std::env::var_os("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(|d| std::path::PathBuf::from(d).join("criterion"))
        })
        .unwrap_or_else(|| "target/criterion".into());
    let json = format!(
        "{{\n  \"ratio\": {ratio:.3},\n  \"one_thread_ms\": {:.1},\n  \"two_threads_ms\": {:.1},\n  \"bench\": \"{what}\"\n}}\n",
        one.as_secs_f64() * 1e3,
        two.as_secs_f64() * 1e3
    );
    let path = dir.join(format!("probe_{what}.json"));
    if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, json)) {
        eprintln!("probe: could not write {}: {e}", path.display());
    }
    Some(ratio)
}
