//! Blocking ping-pong between two threads: one round trip per iteration.
//!
//! The bench thread sends "ping" and blocks until the echo thread answers
//! "pong". Peers: this crate (two handles; each side takes a snapshot, then
//! `wait_after(snapshot).wait()`), `std::sync::mpsc` channels,
//! `crossbeam-channel` `bounded(1)` channels, and a `Mutex` + two `Condvar`s
//! around a turn counter. The echo thread lives for the whole benchmark and
//! is stopped by closing its inbound side (unregister / drop / a flag).
//!
//! Every peer runs in two placements, each its own group: both threads
//! pinned to one CPU (`pingpong_roundtrip/same_cpu`: every round trip is two
//! context switches) and the two threads pinned to two CPUs
//! (`pingpong_roundtrip/two_cpus`: every round trip crosses cores, so the
//! cost of a wake-up from sleep, or of spinning instead, shows). Before the
//! groups run, a parallelism probe prints how long two threads on two CPUs
//! take for the same work as one thread alone (1.0 on an idle two-core
//! machine; a host that time-shares the vCPUs shows up as a larger ratio,
//! and the `two_cpus` figures are then not comparable across machines).
//!
//! The crate's protocol, with `a` = ping handle and `b` = pong handle:
//! - ping side: `snap_b = snapshot(b)`, `notify(a)`, `wait_after(snap_b)`;
//! - echo side: `wait_after(snap_a)`, `snap_a = snapshot(a)`, `notify(b)`.
//!
//! The echo side re-takes its snapshot before answering, and the ping side
//! takes its snapshot before pinging, so no notify can fall between a
//! snapshot and the wait that uses it unnoticed.

mod common;

use common::{CRATE, cpu_count, parallelism_probe, pin, unpin};
use criterion::{Criterion, criterion_group, criterion_main};
use notification_queue::{Config, NotificationQueue, QueueError};
use std::sync::{Condvar, Mutex};
use std::thread;

/// Where the two threads of a ping-pong run: CPU of the bench (ping)
/// thread and CPU of the echo thread.
#[derive(Clone, Copy)]
struct Placement {
    name: &'static str,
    ping: usize,
    echo: usize,
}

fn crate_pingpong(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    at: Placement,
) {
    let queue = NotificationQueue::new(Config::default());
    let a = queue.register("ping").unwrap();
    let b = queue.register("pong").unwrap();
    thread::scope(|s| {
        let q = &queue;
        let mut snap_a = q.snapshot(a).unwrap();
        s.spawn(move || {
            pin(at.echo);
            loop {
                match q.wait_after(snap_a).wait() {
                    Ok(_) => {}
                    Err(QueueError::Closed) => return,
                    Err(e) => panic!("echo: {e}"),
                }
                snap_a = q.snapshot(a).unwrap();
                q.notify(b, 2).unwrap();
            }
        });
        pin(at.ping);
        c.bench_function(CRATE, |bench| {
            bench.iter(|| {
                let snap_b = q.snapshot(b).unwrap();
                q.notify(a, 1).unwrap();
                q.wait_after(snap_b).wait().unwrap()
            })
        });
        q.unregister(a).unwrap();
    });
}

fn mpsc_pingpong(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    at: Placement,
) {
    let (ping_tx, ping_rx) = std::sync::mpsc::channel::<u32>();
    let (pong_tx, pong_rx) = std::sync::mpsc::channel::<u32>();
    thread::scope(|s| {
        s.spawn(move || {
            pin(at.echo);
            while let Ok(v) = ping_rx.recv() {
                if pong_tx.send(v).is_err() {
                    return;
                }
            }
        });
        pin(at.ping);
        c.bench_function("std_mpsc", |bench| {
            bench.iter(|| {
                ping_tx.send(1).unwrap();
                pong_rx.recv().unwrap()
            })
        });
        drop(ping_tx);
    });
}

fn crossbeam_pingpong(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    at: Placement,
) {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<u32>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<u32>(1);
    thread::scope(|s| {
        s.spawn(move || {
            pin(at.echo);
            while let Ok(v) = ping_rx.recv() {
                if pong_tx.send(v).is_err() {
                    return;
                }
            }
        });
        pin(at.ping);
        c.bench_function("crossbeam_bounded1", |bench| {
            bench.iter(|| {
                ping_tx.send(1).unwrap();
                pong_rx.recv().unwrap()
            })
        });
        drop(ping_tx);
    });
}

/// Turn counter: odd = ping pending (echo's turn), even = pong given.
/// `u64::MAX` = stop.
struct Turn {
    state: Mutex<u64>,
    to_echo: Condvar,
    to_ping: Condvar,
}

fn condvar_pingpong(
    c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    at: Placement,
) {
    let turn = Turn {
        state: Mutex::new(0),
        to_echo: Condvar::new(),
        to_ping: Condvar::new(),
    };
    thread::scope(|s| {
        let t = &turn;
        s.spawn(move || {
            pin(at.echo);
            let mut st = t.state.lock().unwrap();
            loop {
                while *st % 2 == 0 {
                    st = t.to_echo.wait(st).unwrap();
                }
                if *st == u64::MAX {
                    return;
                }
                *st += 1;
                t.to_ping.notify_one();
            }
        });
        pin(at.ping);
        c.bench_function("mutex_condvar", |bench| {
            bench.iter(|| {
                let mut st = t.state.lock().unwrap();
                *st += 1;
                t.to_echo.notify_one();
                while *st % 2 == 1 {
                    st = t.to_ping.wait(st).unwrap();
                }
            })
        });
        *t.state.lock().unwrap() = u64::MAX;
        t.to_echo.notify_one();
    });
}

fn pingpong(c: &mut Criterion) {
    let cpus = cpu_count();
    let mut placements = vec![Placement {
        name: "same_cpu",
        ping: 0,
        echo: 0,
    }];
    if cpus >= 2 {
        placements.push(Placement {
            name: "two_cpus",
            ping: 0,
            echo: 1,
        });
        parallelism_probe("pingpong");
    }
    for at in placements {
        let mut g = c.benchmark_group(format!("pingpong_roundtrip/{}", at.name));
        crate_pingpong(&mut g, at);
        mpsc_pingpong(&mut g, at);
        crossbeam_pingpong(&mut g, at);
        condvar_pingpong(&mut g, at);
        g.finish();
        unpin();
    }
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = pingpong
}
criterion_main!(benches);
