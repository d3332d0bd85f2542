//! A subscriber that never reads still gets the exact lag after more
//! notifies than 31-bit stamps could tell apart (2^31 + 1 into a one-value
//! buffer; the ring's stamps are whole 63-bit positions).
//!
//! 2^31 notifies take 45-50 s in a release build on a busy 2-core machine
//! (about 23 ns each), so debug
//! `cargo test` skips this; CI runs it with
//! `cargo test --release --test lag_wrap`.

use notification_queue::{Config, NotificationQueue, TryRecvError};
use std::time::Instant;

#[test]
#[cfg_attr(debug_assertions, ignore = "2^31 notifies: run with --release")]
fn silent_subscriber_gets_exact_lag_after_2_pow_31_plus_1_notifies() {
    let q = NotificationQueue::new(Config::default());
    let h = q.register("h").unwrap();
    let mut sub = q.subscribe(h, 1, "silent").unwrap();
    let n: u64 = (1 << 31) + 1;
    let started = Instant::now();
    for i in 0..n {
        // The value is the position's low 32 bits.
        q.notify(h, i64::from(i as u32)).unwrap();
    }
    eprintln!("{n} notifies in {:?}", started.elapsed());
    assert_eq!(sub.len(), 1);
    assert_eq!(sub.dropped(), 1 << 31);
    assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged(1 << 31)));
    assert_eq!(sub.try_recv(), Ok(i64::from((n - 1) as u32)));
    assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(q.stats().dropped, 1 << 31);
}
