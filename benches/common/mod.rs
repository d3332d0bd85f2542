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

/// Runs `work(thread_index, iters)` on `threads` fresh threads that start
/// together (barrier) and returns the longest time any of them took.
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
