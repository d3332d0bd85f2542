//! A fixed workload for counting instructions with cachegrind
//! (`scripts/cachegrind.sh`): `N` operations of one scenario, for this crate
//! and for its peers.
//!
//! Scenarios (`MODE`, with `K` where it applies):
//! - idle notify, nobody waiting, `N` notifies: `notify` (this crate),
//!   `fetch_add` (a bare `AtomicU64::fetch_add`, the floor),
//!   `event_listener` (`Event::notify(usize::MAX)`), `tokio_notify`
//!   (`Notify::notify_waiters`);
//! - wake, `N` cycles of `K` waiters each (create `K` wait futures, poll
//!   each to `Pending`, notify once, poll each to `Ready`, drop them), on a
//!   hand-rolled executor with a counting waker: `wake_crate`
//!   (`wait` + `notify`), `wake_tokio` (`notified` + `notify_waiters`),
//!   `wake_event_listener` (`listen` + `notify(usize::MAX)`);
//! - fan-out, `N` sends to `K` subscribers, each batch of 256 sends followed
//!   by draining every subscriber: `fanout_crate` (`notify` to `K`
//!   keep-newest subscriptions of capacity 256, `try_recv`),
//!   `fanout_tokio` (`broadcast::channel(256)` with `K` receivers, `send`,
//!   `try_recv`).
//!
//! ```text
//! cargo run --release --example notify_fastpath -- notify 1000000
//! cargo run --release --example notify_fastpath -- wake_crate 10000 16
//! cargo run --release --example notify_fastpath -- fanout_tokio 100000 8
//! ```
//!
//! Every run checks its work (every notify accepted, every waiter woken and
//! ready, every value delivered to every subscriber) and exits non-zero if
//! it was not all done. The script runs each mode with `N` and `2N` and
//! divides the difference of the instruction totals by `N` (by `N * K` for
//! a per-waiter or per-delivery figure), so set-up and tear-down cancel out.

use notification_queue::{Config, NotificationQueue, Subscription};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

const MODES: &str = "notify | fetch_add | event_listener | tokio_notify | \
                     wake_crate | wake_tokio | wake_event_listener | fanout_crate | fanout_tokio";

#[path = "../benches/common/scenarios.rs"]
mod scenarios;
use scenarios::{BATCH, drain_broadcast, drain_subscriptions, fanout, wake_cycles};

fn usage(msg: &str) -> ! {
    eprintln!("usage: notify_fastpath [{MODES}] [N] [K]: {msg}");
    std::process::exit(2);
}

fn arg<T: std::str::FromStr>(a: Option<String>, default: T) -> T
where
    T::Err: std::fmt::Display,
{
    match a.map(|s| s.parse::<T>()) {
        None => default,
        Some(Ok(v)) => v,
        Some(Err(e)) => usage(&e.to_string()),
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "notify".into());
    let n: u64 = arg(args.next(), 1_000_000);
    let k: usize = arg(args.next(), 1);
    if k == 0 {
        usage("K must be at least 1");
    }
    let queue = NotificationQueue::new(Config::default());
    let handle = match queue.register("fastpath") {
        Ok(h) => h,
        Err(e) => {
            eprintln!("register: {e}");
            std::process::exit(1);
        }
    };
    let counter = AtomicU64::new(0);
    // Operations done and checked, against the operations asked for.
    let (ok, expected) = match mode.as_str() {
        "notify" => {
            let mut ok = 0u64;
            for _ in 0..n {
                ok += queue.notify(black_box(handle), black_box(1)).is_ok() as u64;
            }
            (ok, n)
        }
        "event_listener" => {
            let event = event_listener::Event::new();
            for _ in 0..n {
                black_box(black_box(&event).notify(black_box(usize::MAX)));
            }
            (n, n)
        }
        "tokio_notify" => {
            let notify = tokio::sync::Notify::new();
            for _ in 0..n {
                black_box(&notify).notify_waiters();
            }
            (n, n)
        }
        "fetch_add" => {
            for _ in 0..n {
                // Relaxed: the floor being counted; nothing pairs with it.
                black_box(counter.fetch_add(black_box(1), Ordering::Relaxed));
            }
            (n, n)
        }
        "wake_crate" => {
            let woken = wake_cycles(
                n,
                k,
                || queue.wait(handle),
                || {
                    black_box(queue.notify(handle, 1).ok());
                },
            );
            (woken, n * k as u64)
        }
        "wake_tokio" => {
            let notify = tokio::sync::Notify::new();
            let woken = wake_cycles(n, k, || notify.notified(), || notify.notify_waiters());
            (woken, n * k as u64)
        }
        "wake_event_listener" => {
            let event = event_listener::Event::new();
            let woken = wake_cycles(
                n,
                k,
                || event.listen(),
                || {
                    black_box(event.notify(usize::MAX));
                },
            );
            (woken, n * k as u64)
        }
        "fanout_crate" => {
            let mut subs: Vec<Subscription> = Vec::with_capacity(k);
            for _ in 0..k {
                match queue.subscribe(handle, BATCH as usize, "fanout") {
                    Ok(s) => subs.push(s),
                    Err(e) => {
                        eprintln!("subscribe: {e}");
                        std::process::exit(1);
                    }
                }
            }
            let delivered = fanout(
                n,
                |v| {
                    black_box(queue.notify(handle, v).ok());
                },
                || drain_subscriptions(&mut subs),
            );
            (delivered, n * k as u64)
        }
        "fanout_tokio" => {
            let (tx, rx0) = tokio::sync::broadcast::channel::<i64>(BATCH as usize);
            let mut rxs: Vec<_> = (1..k).map(|_| tx.subscribe()).collect();
            rxs.push(rx0);
            let delivered = fanout(
                n,
                |v| {
                    black_box(tx.send(v).is_ok());
                },
                || drain_broadcast(&mut rxs),
            );
            (delivered, n * k as u64)
        }
        other => usage(&format!("unknown mode {other:?}")),
    };
    if ok != expected {
        eprintln!("{mode}: only {ok} of {expected} operations completed");
        std::process::exit(1);
    }
    println!("{mode}: {n} x {k} operations");
}
