//! A fixed workload for counting instructions with cachegrind
//! (`scripts/cachegrind.sh`): `N` idle notifies (nobody waiting) on one
//! handle, `N` bare `fetch_add`s for the floor, or `N` idle notifies of a
//! peer (`event_listener::Event::notify(usize::MAX)`,
//! `tokio::sync::Notify::notify_waiters`).
//!
//! ```text
//! cargo run --release --example notify_fastpath -- notify 1000000
//! cargo run --release --example notify_fastpath -- fetch_add 1000000
//! ```
//!
//! The script runs each mode with `N` and `2N` and divides the difference of
//! the instruction totals by `N`, so set-up and tear-down cancel out.

use notification_queue::{Config, NotificationQueue};
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "notify".into());
    let n: u64 = match args.next().map(|s| s.parse()) {
        Some(Ok(n)) => n,
        None => 1_000_000,
        Some(Err(e)) => {
            eprintln!(
                "usage: notify_fastpath [notify|fetch_add|event_listener|tokio_notify] [N]: {e}"
            );
            std::process::exit(2);
        }
    };
    let queue = NotificationQueue::new(Config::default());
    let handle = match queue.register("fastpath") {
        Ok(h) => h,
        Err(e) => {
            eprintln!("register: {e}");
            std::process::exit(1);
        }
    };
    let counter = AtomicU64::new(0);
    let mut ok = 0u64;
    match mode.as_str() {
        "notify" => {
            for _ in 0..n {
                ok += queue.notify(black_box(handle), black_box(1)).is_ok() as u64;
            }
        }
        "event_listener" => {
            let event = event_listener::Event::new();
            for _ in 0..n {
                black_box(black_box(&event).notify(black_box(usize::MAX)));
                ok += 1;
            }
        }
        "tokio_notify" => {
            let notify = tokio::sync::Notify::new();
            for _ in 0..n {
                black_box(&notify).notify_waiters();
                ok += 1;
            }
        }
        "fetch_add" => {
            for _ in 0..n {
                // Relaxed: the floor being counted; nothing pairs with it.
                black_box(counter.fetch_add(black_box(1), Ordering::Relaxed));
                ok += 1;
            }
        }
        other => {
            eprintln!(
                "unknown mode {other:?} (notify | fetch_add | event_listener | tokio_notify)"
            );
            std::process::exit(2);
        }
    }
    if ok != n {
        eprintln!("only {ok} of {n} operations succeeded");
        std::process::exit(1);
    }
    println!("{mode}: {n} operations");
}
