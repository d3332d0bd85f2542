//! Blocking ping-pong between two threads: one round trip per iteration.
//!
//! The bench thread sends "ping" and blocks until the echo thread answers
//! "pong". Peers: this crate (two handles; each side takes a snapshot, then
//! `wait_after(snapshot).wait()`), `std::sync::mpsc` channels,
//! `crossbeam-channel` `bounded(1)` channels, and a `Mutex` + two `Condvar`s
//! around a turn counter. The echo thread lives for the whole benchmark and
//! is stopped by closing its inbound side (unregister / drop / a flag).
//!
//! The crate's protocol, with `a` = ping handle and `b` = pong handle:
//! - ping side: `snap_b = snapshot(b)`, `notify(a)`, `wait_after(snap_b)`;
//! - echo side: `wait_after(snap_a)`, `snap_a = snapshot(a)`, `notify(b)`.
//!
//! The echo side re-takes its snapshot before answering, and the ping side
//! takes its snapshot before pinging, so no notify can fall between a
//! snapshot and the wait that uses it unnoticed.

mod common;

use common::CRATE;
use criterion::{Criterion, criterion_group, criterion_main};
use notification_queue::{Config, NotificationQueue, QueueError};
use std::sync::{Condvar, Mutex};
use std::thread;

fn crate_pingpong(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let queue = NotificationQueue::new(Config::default());
    let a = queue.register("ping").unwrap();
    let b = queue.register("pong").unwrap();
    thread::scope(|s| {
        let q = &queue;
        let mut snap_a = q.snapshot(a).unwrap();
        s.spawn(move || {
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

fn mpsc_pingpong(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let (ping_tx, ping_rx) = std::sync::mpsc::channel::<u32>();
    let (pong_tx, pong_rx) = std::sync::mpsc::channel::<u32>();
    thread::scope(|s| {
        s.spawn(move || {
            while let Ok(v) = ping_rx.recv() {
                if pong_tx.send(v).is_err() {
                    return;
                }
            }
        });
        c.bench_function("std_mpsc", |bench| {
            bench.iter(|| {
                ping_tx.send(1).unwrap();
                pong_rx.recv().unwrap()
            })
        });
        drop(ping_tx);
    });
}

fn crossbeam_pingpong(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let (ping_tx, ping_rx) = crossbeam_channel::bounded::<u32>(1);
    let (pong_tx, pong_rx) = crossbeam_channel::bounded::<u32>(1);
    thread::scope(|s| {
        s.spawn(move || {
            while let Ok(v) = ping_rx.recv() {
                if pong_tx.send(v).is_err() {
                    return;
                }
            }
        });
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

fn condvar_pingpong(c: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>) {
    let turn = Turn {
        state: Mutex::new(0),
        to_echo: Condvar::new(),
        to_ping: Condvar::new(),
    };
    thread::scope(|s| {
        let t = &turn;
        s.spawn(move || {
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
    let mut g = c.benchmark_group("pingpong_roundtrip");
    crate_pingpong(&mut g);
    mpsc_pingpong(&mut g);
    crossbeam_pingpong(&mut g);
    condvar_pingpong(&mut g);
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = pingpong
}
criterion_main!(benches);
