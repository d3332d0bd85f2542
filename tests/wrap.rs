//! Wrap-around runs at full scale. They take seconds in release and far too
//! long in debug, so a debug `cargo test` skips them; CI runs
//! `cargo test --release --test wrap`.

use notification_queue::{Config, NotificationQueue, QueueError};

/// 2^23 register / unregister cycles use up every generation of a slot. A
/// handle kept from the first cycle must be rejected at every step, and no
/// handle may ever be issued twice.
#[test]
#[cfg_attr(debug_assertions, ignore = "2^23 cycles: run with --release")]
fn a_stale_handle_is_rejected_after_every_generation_of_its_slot() {
    let q = NotificationQueue::new(Config::default().max_handles(1));
    let first = q.register("first").unwrap();
    q.unregister(first).unwrap();
    let cycles = (1u64 << 23) + 4;
    let mut slots_seen = vec![first.index()];
    for _ in 0..cycles {
        let h = q.register("cycle").unwrap();
        if h.index() == first.index() {
            assert!(h.generation() > first.generation());
        } else if !slots_seen.contains(&h.index()) {
            slots_seen.push(h.index());
        }
        assert_eq!(q.notify(first, 1), Err(QueueError::StaleHandle));
        q.unregister(h).unwrap();
    }
    assert_eq!(q.notify(first, 1), Err(QueueError::StaleHandle));
    assert_eq!(q.unregister(first), Err(QueueError::StaleHandle));
    assert_eq!(q.stats().exhausted_slots, 1);
    assert_eq!(
        slots_seen.len(),
        2,
        "the slot was retired once, then a new one was used"
    );
}
