//! The single-threaded wake and fan-out loops shared by
//! `examples/notify_fastpath.rs` (instruction counts, `scripts/cachegrind.sh`)
//! and `benches/ratios.rs` (interleaved timing), so both measure the same
//! work.
#![allow(dead_code)] // each user takes a different subset

use notification_queue::Subscription;
use std::future::Future;
use std::hint::black_box;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Wake, Waker};

/// Sends between drains in the fan-out loop (and the capacity of every
/// buffer it fills, so nothing is ever overwritten).
pub const BATCH: u64 = 256;

/// Counts wakes.
#[derive(Default)]
struct CountingWaker(AtomicU64);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        // Relaxed: a statistic read by the same thread after the wake.
        self.0.fetch_add(1, Ordering::Relaxed);
    }
}

/// Polls every future of `futs` once; returns how many were ready.
///
/// # Safety
///
/// The futures must not move until dropped in place: the caller reserves
/// the `Vec`'s capacity before filling it and only `clear`s it.
unsafe fn poll_all<F: Future>(futs: &mut [F], cx: &mut Context<'_>) -> usize {
    let mut ready = 0;
    for f in futs.iter_mut() {
        // SAFETY: per this function's contract the future stays where it is
        // until it is dropped in place.
        let f = unsafe { Pin::new_unchecked(f) };
        ready += f.poll(cx).is_ready() as usize;
    }
    ready
}

/// `cycles` wake cycles of `k` waiters made by `make` (each created,
/// polled to `Pending`, woken by one `notify`, polled to `Ready` and
/// dropped), on a hand-rolled executor with a counting waker; returns how
/// many waiters completed (woken once and ready).
pub fn wake_cycles<F: Future>(
    cycles: u64,
    k: usize,
    mut make: impl FnMut() -> F,
    mut notify: impl FnMut(),
) -> u64 {
    let counter = Arc::new(CountingWaker::default());
    let waker = Waker::from(counter.clone());
    let mut cx = Context::from_waker(&waker);
    let mut futs = Vec::with_capacity(k);
    let mut done = 0u64;
    for _ in 0..cycles {
        let before = counter.0.load(Ordering::Relaxed);
        futs.extend((0..k).map(|_| make()));
        // SAFETY: `futs` reserved `k` slots above and is only cleared
        // (drop in place) below, so no future moves after being polled.
        let early = unsafe { poll_all(&mut futs, &mut cx) };
        notify();
        // SAFETY: as above.
        let ready = unsafe { poll_all(&mut futs, &mut cx) };
        futs.clear();
        let woken = counter.0.load(Ordering::Relaxed) - before;
        if early == 0 && ready == k && woken == k as u64 {
            done += k as u64;
        }
    }
    done
}

/// `sends` sends in batches of [`BATCH`], each batch followed by `drain`;
/// returns the deliveries `drain` reported.
pub fn fanout(sends: u64, mut send: impl FnMut(i64), mut drain: impl FnMut() -> u64) -> u64 {
    let mut left = sends;
    let mut delivered = 0;
    while left > 0 {
        let b = left.min(BATCH);
        for i in 0..b {
            send(black_box(i as i64));
        }
        delivered += drain();
        left -= b;
    }
    delivered
}

/// Receives everything `subs` hold; returns how many values (a fan-out
/// `drain` for this crate's subscriptions).
pub fn drain_subscriptions(subs: &mut [Subscription]) -> u64 {
    let mut got = 0;
    for s in subs.iter_mut() {
        while let Ok(v) = s.try_recv() {
            black_box(v);
            got += 1;
        }
    }
    got
}

/// The same for tokio `broadcast` receivers.
pub fn drain_broadcast(rxs: &mut [tokio::sync::broadcast::Receiver<i64>]) -> u64 {
    let mut got = 0;
    for rx in rxs.iter_mut() {
        while let Ok(v) = rx.try_recv() {
            black_box(v);
            got += 1;
        }
    }
    got
}
