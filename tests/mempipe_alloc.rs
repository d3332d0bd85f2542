//! MemPipe under memory pressure: a global allocator that refuses, on the
//! test's own thread, every allocation above a size or past a byte budget.
//! Every allocation a pipe sizes from its caller's input must fail into
//! [`PipeError::OutOfMemory`]: no panic, no abort, no leaked handle or
//! memory, and a write that fails writes nothing.

use notification_queue::mempipe::{Limits, PipeError, pipe};
use notification_queue::{Config, NotificationQueue};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

struct Refusing;

thread_local! {
    /// Largest allocation this thread may make (`usize::MAX`: no limit).
    static LIMIT: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Bytes this thread may still allocate (`usize::MAX`: no limit).
    static BUDGET: Cell<usize> = const { Cell::new(usize::MAX) };
    /// Allocations refused on this thread.
    static REFUSED: Cell<u64> = const { Cell::new(0) };
    /// Bytes allocated minus bytes freed on this thread.
    static LIVE: Cell<isize> = const { Cell::new(0) };
}

/// Whether to refuse `size` bytes; charges the budget if not.
fn refuse(size: usize) -> bool {
    let over = LIMIT.try_with(|l| size > l.get()).unwrap_or(false)
        || BUDGET
            .try_with(|b| match b.get().checked_sub(size) {
                Some(left) => {
                    if b.get() != usize::MAX {
                        b.set(left);
                    }
                    false
                }
                None => true,
            })
            .unwrap_or(false);
    if over {
        let _ = REFUSED.try_with(|c| c.set(c.get() + 1));
    }
    over
}

fn live(delta: isize) {
    let _ = LIVE.try_with(|l| l.set(l.get() + delta));
}

// SAFETY: forwards every call to `System` unchanged, except that it returns
// null (allocation failure, allowed by the `GlobalAlloc` contract) for sizes
// over this thread's limit or budget.
unsafe impl GlobalAlloc for Refusing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            live(layout.size() as isize);
        }
        p
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if refuse(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc_zeroed(layout) };
        if !p.is_null() {
            live(layout.size() as isize);
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        live(-(layout.size() as isize));
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        if refuse(new) {
            return std::ptr::null_mut();
        }
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new) };
        if !p.is_null() {
            live(new as isize - layout.size() as isize);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Refusing = Refusing;

/// Runs `f` with allocations above `limit` bytes, or past `budget` bytes in
/// all, refused on this thread; returns its result, how many allocations
/// were refused, and the bytes still held that `f` allocated.
fn with_limits<T>(limit: usize, budget: usize, f: impl FnOnce() -> T) -> (T, u64, isize) {
    let refused = REFUSED.with(Cell::get);
    let held = LIVE.with(Cell::get);
    LIMIT.with(|l| l.set(limit));
    BUDGET.with(|b| b.set(budget));
    let out = f();
    LIMIT.with(|l| l.set(usize::MAX));
    BUDGET.with(|b| b.set(usize::MAX));
    let refused = REFUSED.with(Cell::get) - refused;
    (out, refused, LIVE.with(Cell::get) - held)
}

fn with_limit<T>(limit: usize, f: impl FnOnce() -> T) -> (T, u64) {
    let (out, refused, _) = with_limits(limit, usize::MAX, f);
    (out, refused)
}

const SEG: usize = 64 << 10;

#[test]
fn refusing_allocator_refuses() {
    // Guards the tests below against a limit that silently does nothing.
    let (r, refused) = with_limit(1024, || Vec::<u8>::new().try_reserve_exact(4096));
    assert!(r.is_err());
    assert_eq!(refused, 1);
}

#[test]
fn pipe_creation_out_of_memory_is_typed_and_leaks_nothing() {
    let q = NotificationQueue::new(Config::default().max_waiters_per_handle(1 << 20));
    // (limits, largest allocation allowed, byte budget)
    let cases = [
        // The first segment is too big.
        (Limits::default().segment_size(SEG), SEG / 2, usize::MAX),
        // The preallocated segments run out of budget half way.
        (
            Limits::default()
                .segment_size(1024)
                .initial_capacity(SEG * 4),
            usize::MAX,
            SEG * 2,
        ),
        // The pool of preallocated segments is too big.
        (
            Limits::default().segment_size(16).initial_capacity(1 << 20),
            SEG / 2,
            usize::MAX,
        ),
        // The reader table is sized by `max_readers`.
        (
            Limits::default().segment_size(1024).max_readers(1 << 20),
            SEG / 2,
            usize::MAX,
        ),
    ];
    for (limits, limit, budget) in cases {
        let (got, refused, held) =
            with_limits(limit, budget, || pipe(&q, "oom", limits).map(|_| ()));
        assert!(
            matches!(got, Err(PipeError::OutOfMemory { .. })),
            "{limits:?}: {got:?}"
        );
        assert!(refused > 0, "{limits:?}: nothing was refused");
        assert_eq!(held, 0, "{limits:?}: memory leaked");
        let s = q.stats();
        assert_eq!((s.handles, s.waiters), (0, 0), "{limits:?}: handle leaked");
    }
    // Without the limits the same pipes are fine.
    for (limits, _, _) in cases {
        let (w, f) = pipe(&q, "ok", limits).unwrap();
        drop((w, f));
    }
    assert_eq!(q.stats().handles, 0);
}

#[test]
fn write_that_cannot_grow_writes_nothing_and_loses_nothing() {
    let q = NotificationQueue::new(Config::default());
    let (mut w, f) = pipe(&q, "grow", Limits::default().segment_size(SEG)).unwrap();
    let mut r = f.reader().unwrap();
    let first = vec![1u8; SEG - 10];
    assert_eq!(w.write(&first), Ok(SEG - 10));
    let footprint = w.footprint();

    // A write needing several segments whose budget runs out part way:
    // refused as a whole, and the segments it did get are given back.
    let big = vec![2u8; SEG * 3];
    let (got, refused, held) = with_limits(usize::MAX, SEG + SEG / 2, || w.write(&big));
    assert!(matches!(got, Err(PipeError::OutOfMemory { .. })), "{got:?}");
    assert!(refused > 0);
    assert_eq!(held, 0, "a refused write keeps no memory");
    assert_eq!(w.tell(), (SEG - 10) as u64);
    assert_eq!(w.footprint(), footprint);

    // Needs a second segment: refused. Nothing is written, not even the ten
    // bytes that would fit in the current segment.
    let second: Vec<u8> = (0..100u8).collect();
    let (got, refused, held) = with_limits(SEG / 2, usize::MAX, || w.write(&second));
    assert!(matches!(got, Err(PipeError::OutOfMemory { .. })), "{got:?}");
    assert!(refused > 0);
    assert_eq!(held, 0, "a refused write keeps no memory");
    assert_eq!(w.tell(), (SEG - 10) as u64);
    assert_eq!(w.footprint(), footprint);
    assert_eq!(r.available(), (SEG - 10) as u64);

    // A write that fits without growing still works under the limit.
    let (got, _) = with_limit(SEG / 2, || w.write(&second[..10]));
    assert_eq!(got, Ok(10));

    // Once memory is back, the stream continues where it was.
    assert_eq!(w.write(&second[10..]), Ok(90));
    w.close().unwrap();
    let mut out = Vec::new();
    let mut buf = vec![0u8; 4096];
    loop {
        match r.read(&mut buf).unwrap() {
            0 => break,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
    let mut want = first;
    want.extend_from_slice(&second);
    assert!(out == want, "stream differs");
    drop((r, f, w));
    assert_eq!(q.stats().handles, 0);
}
