//! notify's fast path allocates nothing: a counting global allocator proves it.

use notification_queue::{Config, NotificationQueue};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Counting;

thread_local! {
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: forwards every call to `System` unchanged; only counts (per thread,
// so other test threads do not disturb the count).
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocations() -> u64 {
    ALLOCS.with(Cell::get)
}

#[test]
fn notify_fast_path_allocates_nothing() {
    let q = NotificationQueue::new(Config::default());
    let handles: Vec<_> = (0..100)
        .map(|i| q.register(format!("h{i}")).unwrap())
        .collect();
    let stale = q.register("stale").unwrap();
    q.unregister(stale).unwrap();
    // A handle that had a waiter once: after the wake the flag is clear and
    // notify is back on the fast path.
    let h = handles[0];
    let snap = q.snapshot(h).unwrap();
    q.notify(h, 0).unwrap();
    q.wait_after(snap).wait().unwrap();

    let before = allocations();
    for round in 0..10_000 {
        for &h in &handles {
            assert_eq!(q.notify(h, round), Ok(0));
        }
        assert!(q.notify(stale, round).is_err());
    }
    let snap = q.snapshot(h).unwrap();
    assert_eq!(snap.sequence(), 10_001);
    assert_eq!(allocations() - before, 0, "notify allocated");
}

#[test]
fn counting_allocator_sees_allocations() {
    // Guards the test above against a silently broken counter.
    let before = allocations();
    let v = std::hint::black_box(vec![1u8; 64]);
    drop(v);
    assert!(allocations() > before);
}
