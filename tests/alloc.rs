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

fn noop_cx() -> std::task::Context<'static> {
    std::task::Context::from_waker(std::task::Waker::noop())
}

/// With handles, waiter lists and pipe bytes reserved in the configuration,
/// registering, waiting (async waits polled to pending, notified, polled to
/// ready), receiving from a subscription and writing to a pipe up to the
/// reserve allocate nothing after start-up.
#[test]
fn reserved_paths_allocate_nothing() {
    use notification_queue::mempipe::{Limits, pipe};
    use std::future::Future;
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::Poll;

    const HANDLES: usize = 16;
    const WAITS: usize = 4;
    const ROUNDS: usize = 3;
    let q = NotificationQueue::new(
        Config::default()
            .reserve_handles(HANDLES + 2) // and the warm-up handle, the pipe's
            .reserve_waiters(HANDLES * ROUNDS + 1, WAITS),
    );
    let hint: Arc<str> = Arc::from("reserved");
    // Start-up: this thread's epoch participant and a subscription (whose
    // creation allocates its ring), and a pipe with its bytes reserved.
    // Also this thread's one-time set-up: its epoch participant (a wait
    // that sleeps pins) and its parking waker (a blocking read).
    let warm = q.register(hint.clone()).unwrap();
    let mut w = q.wait(warm);
    assert!(Pin::new(&mut w).poll(&mut noop_cx()).is_pending());
    q.notify(warm, 1).unwrap();
    assert!(matches!(
        Pin::new(&mut w).poll(&mut noop_cx()),
        Poll::Ready(Ok(_))
    ));
    drop(w);
    let mut sub = q.subscribe(warm, 64, hint.clone()).unwrap();
    let limits = Limits::default()
        .segment_size(1 << 12)
        .initial_capacity(1 << 16);
    let (mut writer, readers) = pipe(&q, hint.clone(), limits).unwrap();
    let mut reader = readers.reader().unwrap();
    let mut handles = Vec::with_capacity(HANDLES);
    let mut waits = Vec::with_capacity(HANDLES * WAITS);
    let mut buf = [0u8; 64];
    writer.write(b"warm").unwrap();
    assert_eq!(reader.read(&mut buf).unwrap(), 4);

    let mut counted = 0;
    for round in 0..ROUNDS as i64 {
        let before = allocations();
        for _ in 0..HANDLES {
            handles.push(q.register(hint.clone()).unwrap());
        }
        for &h in &handles {
            for _ in 0..WAITS {
                let mut w = q.wait_owned(h);
                assert!(Pin::new(&mut w).poll(&mut noop_cx()).is_pending());
                waits.push(w);
            }
        }
        for &h in &handles {
            assert_eq!(q.notify(h, round), Ok(WAITS));
        }
        for w in waits.iter_mut() {
            match Pin::new(w).poll(&mut noop_cx()) {
                Poll::Ready(Ok(n)) => assert_eq!(n.arg, round),
                other => panic!("wait not complete: {other:?}"),
            }
        }
        waits.clear();
        q.notify(warm, round).unwrap();
        assert_eq!(sub.try_recv(), Ok(round));
        let mut r = sub.recv();
        assert!(Pin::new(&mut r).poll(&mut noop_cx()).is_pending());
        drop(r);
        for _ in 0..64 {
            writer.write(&[round as u8; 100]).unwrap();
        }
        for _ in 0..100 {
            assert_eq!(reader.read(&mut buf).unwrap(), 64);
        }
        counted += allocations() - before;
        // Unregistering retires the handles' waiter lists through the
        // epoch collector (whose queue of deferred work allocates): not
        // counted.
        for h in handles.drain(..) {
            q.unregister(h).unwrap();
        }
    }
    assert_eq!(counted, 0, "a reserved path allocated");
}

/// A blocking wait that really sleeps (its waiter is seen in `waiters()`
/// before the notify) allocates nothing after this thread's one-time
/// set-up, with or without `std` (without it, blocking spins on a static
/// wake counter instead of allocating a flag per call).
#[test]
fn blocking_wait_that_sleeps_allocates_nothing() {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let q = Arc::new(NotificationQueue::new(
        Config::default().reserve_handles(4).reserve_waiters(4, 4),
    ));
    let h = q.register("blocking").unwrap();
    let done = Arc::new(AtomicBool::new(false));
    let notifier = {
        let (q, done) = (q.clone(), done.clone());
        std::thread::spawn(move || {
            let mut round = 0;
            while !done.load(Ordering::Acquire) {
                // Notify only once the waiter is registered: a real sleep.
                if q.waiters(h).map(|w| !w.is_empty()).unwrap_or(false) {
                    q.notify(h, round).unwrap();
                    round += 1;
                }
                std::hint::spin_loop();
            }
        })
    };
    // Warm-up: this thread's epoch participant and parking waker.
    let snap = q.snapshot(h).unwrap();
    q.wait_after(snap).wait().unwrap();

    let before = allocations();
    for _ in 0..100 {
        let snap = q.snapshot(h).unwrap();
        q.wait_after(snap).wait().unwrap();
    }
    let counted = allocations() - before;
    done.store(true, Ordering::Release);
    notifier.join().unwrap();
    assert_eq!(counted, 0, "a sleeping blocking wait allocated");
}
