//! notify waking 1, 16 and 256 async waiters, against tokio `Notify`,
//! event-listener and the user's sketch.
//!
//! The executor is the smallest there is: futures are polled by hand with a
//! counting waker. One iteration is the whole life of N waits:
//! 1. create N wait futures on one handle (or event),
//! 2. poll each once (they register and return `Pending`),
//! 3. notify once (this crate: `notify`; tokio: `notify_waiters`;
//!    event-listener: `notify(usize::MAX)`; sketch: `notify`),
//! 4. poll each again (`Ready`), then drop them.
//!
//! The `wake_one` group does the same with one wake per cycle
//! (`notify_one`; tokio: `Notify::notify_one`; event-listener:
//! `notify(1)`), then cancels the other waits.
//!
//! The iteration is checked (every waker fired, every future ready) so a
//! peer cannot win by doing less. Throughput is set to N elements: the
//! report divides the median by N to give the cost per waiter.

mod common;

use common::{CRATE, CountingWaker, Sketch};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use notification_queue::{Config, NotificationQueue};
use std::future::Future;
use std::pin::Pin;
use std::task::Context;

const SIZES: [usize; 3] = [1, 16, 256];

/// Polls every future of `futs` once and returns how many were ready.
///
/// # Safety
///
/// The futures must not move while polled or afterwards until dropped in
/// place (the callers reserve the `Vec`'s capacity before filling it and
/// only `clear` it).
unsafe fn poll_all<F: Future>(futs: &mut [F], cx: &mut Context<'_>) -> usize {
    let mut ready = 0;
    for f in futs.iter_mut() {
        // SAFETY: per this function's contract the future stays where it is
        // until it is dropped in place.
        let f = unsafe { Pin::new_unchecked(f) };
        if f.poll(cx).is_ready() {
            ready += 1;
        }
    }
    ready
}

/// One checked cycle over `futs` (already filled with `n` fresh futures).
fn cycle<F: Future>(futs: &mut Vec<F>, notify: impl FnOnce(), cx: &mut Context<'_>) {
    let n = futs.len();
    // SAFETY: `futs` is only cleared (drop in place) below and the caller
    // reserved its capacity, so no element moves after being polled.
    assert_eq!(unsafe { poll_all(futs, cx) }, 0);
    notify();
    // SAFETY: as above.
    assert_eq!(unsafe { poll_all(futs, cx) }, n);
    futs.clear();
}

fn wake(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake_waiters");
    let (count, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);

    let queue = NotificationQueue::new(Config::default());
    let h = queue.register("wake").unwrap();
    let notify = tokio::sync::Notify::new();
    let event = event_listener::Event::new();
    let sketch = Sketch::default();
    sketch.register(0);

    for n in SIZES {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new(CRATE, n), &n, |b, &n| {
            let mut futs = Vec::with_capacity(n);
            b.iter(|| {
                let before = count.wakes();
                futs.extend((0..n).map(|_| queue.wait(h)));
                cycle(&mut futs, || assert_eq!(queue.notify(h, 1), Ok(n)), &mut cx);
                assert_eq!(count.wakes() - before, n);
            })
        });
        g.bench_with_input(BenchmarkId::new("tokio_notify", n), &n, |b, &n| {
            let mut futs = Vec::with_capacity(n);
            b.iter(|| {
                let before = count.wakes();
                futs.extend((0..n).map(|_| notify.notified()));
                cycle(&mut futs, || notify.notify_waiters(), &mut cx);
                assert_eq!(count.wakes() - before, n);
            })
        });
        g.bench_with_input(BenchmarkId::new("event_listener", n), &n, |b, &n| {
            let mut futs = Vec::with_capacity(n);
            b.iter(|| {
                let before = count.wakes();
                futs.extend((0..n).map(|_| event.listen()));
                cycle(
                    &mut futs,
                    || assert_eq!(event.notify(usize::MAX), n),
                    &mut cx,
                );
                assert_eq!(count.wakes() - before, n);
            })
        });
        g.bench_with_input(BenchmarkId::new("rwlock_hashmap_sketch", n), &n, |b, &n| {
            let mut futs = Vec::with_capacity(n);
            b.iter(|| {
                let before = count.wakes();
                futs.extend((0..n).map(|_| sketch.wait(0).unwrap()));
                cycle(&mut futs, || assert_eq!(sketch.notify(0, 1), n), &mut cx);
                assert_eq!(count.wakes() - before, n);
            })
        });
    }
    g.finish();
}

/// One checked `notify_one` cycle: `n` waits register, one notify wakes
/// exactly one of them (the oldest), then all are dropped (the other
/// `n - 1` cancelled).
fn cycle_one<F: Future>(futs: &mut Vec<F>, notify: impl FnOnce(), cx: &mut Context<'_>) {
    // SAFETY: as in `cycle`.
    assert_eq!(unsafe { poll_all(futs, cx) }, 0);
    notify();
    // SAFETY: as above. Only the first is ready; polling it first keeps
    // the others' second poll cheap and equal for every peer.
    assert_eq!(unsafe { poll_all(&mut futs[..1], cx) }, 1);
    futs.clear();
}

/// `notify_one` with 1 and 16 waiters against tokio `Notify::notify_one`
/// and event-listener `Event::notify(1)`. Each iteration is one
/// [`cycle_one`]; the time is per iteration (one wake plus n registrations
/// and n - 1 cancellations).
fn wake_one(c: &mut Criterion) {
    let mut g = c.benchmark_group("wake_one");
    let (count, waker) = CountingWaker::new();
    let mut cx = Context::from_waker(&waker);

    let queue = NotificationQueue::new(Config::default());
    let h = queue.register("wake_one").unwrap();
    let notify = tokio::sync::Notify::new();
    let event = event_listener::Event::new();

    for n in [1usize, 16] {
        g.bench_with_input(BenchmarkId::new(CRATE, n), &n, |b, &n| {
            let mut futs = Vec::with_capacity(n);
            b.iter(|| {
                let before = count.wakes();
                futs.extend((0..n).map(|_| queue.wait(h)));
                cycle_one(
                    &mut futs,
                    || assert_eq!(queue.notify_one(h, 1), Ok(1)),
                    &mut cx,
                );
                assert_eq!(count.wakes() - before, 1);
            })
        });
        g.bench_with_input(BenchmarkId::new("tokio_notify", n), &n, |b, &n| {
            let mut futs = Vec::with_capacity(n);
            b.iter(|| {
                let before = count.wakes();
                futs.extend((0..n).map(|_| notify.notified()));
                cycle_one(&mut futs, || notify.notify_one(), &mut cx);
                assert_eq!(count.wakes() - before, 1);
            })
        });
        g.bench_with_input(BenchmarkId::new("event_listener", n), &n, |b, &n| {
            let mut futs = Vec::with_capacity(n);
            b.iter(|| {
                let before = count.wakes();
                futs.extend((0..n).map(|_| event.listen()));
                cycle_one(&mut futs, || assert_eq!(event.notify(1), 1), &mut cx);
                assert_eq!(count.wakes() - before, 1);
            })
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = wake, wake_one
}
criterion_main!(benches);
