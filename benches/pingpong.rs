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

use common::CRATE;
use criterion::{Criterion, criterion_group, criterion_main};
use notification_queue::{Config, NotificationQueue, QueueError};
use std::sync::{Condvar, Mutex};
use std::thread;
use std::time::Instant;

/// Where the two threads of a ping-pong run: CPU of the bench (ping)
/// thread and CPU of the echo thread.
#[derive(Clone, Copy)]
struct Placement {
    name: &'static str,
    ping: usize,
    echo: usize,
}

/// Restricts the calling thread to `cpus` (Linux `sched_setaffinity`; a
/// no-op elsewhere or where the OS refuses).
fn set_cpus(cpus: impl IntoIterator<Item = usize>) {
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
fn pin(cpu: usize) {
    set_cpus([cpu]);
}

/// Lets the calling thread run on every CPU again.
fn unpin() {
    set_cpus(0..libc::CPU_SETSIZE as usize);
}

/// CPUs this process may use.
fn cpu_count() -> usize {
    thread::available_parallelism().map_or(1, |n| n.get())
}

/// Two threads' time for a fixed amount of private work, pinned to two
/// CPUs, over one thread's time for the same work alone.
fn parallelism_probe() -> f64 {
    fn work() -> u64 {
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for _ in 0..50_000_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
        }
        x
    }
    let one = {
        let t = thread::spawn(|| {
            pin(0);
            let t0 = Instant::now();
            std::hint::black_box(work());
            t0.elapsed()
        });
        t.join().unwrap_or_default()
    };
    let two = {
        let ts: Vec<_> = [0, 1]
            .into_iter()
            .map(|cpu| {
                thread::spawn(move || {
                    pin(cpu);
                    let t0 = Instant::now();
                    std::hint::black_box(work());
                    t0.elapsed()
                })
            })
            .collect();
        ts.into_iter()
            .map(|t| t.join().unwrap_or_default())
            .max()
            .unwrap_or_default()
    };
    two.as_secs_f64() / one.as_secs_f64().max(1e-9)
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
        println!(
            "parallelism probe: two threads on two CPUs take {:.2}x one thread's time",
            parallelism_probe()
        );
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
