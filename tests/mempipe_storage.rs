//! MemPipe storage: a writer's `PipeStorage`, and initial bytes adopted
//! without a copy.

mod common;

use notification_queue::mempipe::{
    EIO, Limits, PipeError, PipeEvent, PipeStorage, WriterState, pipe_with_bytes, pipe_with_storage,
};
use notification_queue::{Config, NotificationQueue};
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Refuses, on the thread that asks, every allocation of at least
/// `REFUSE_FROM` bytes (0: refuse nothing).
struct Refusing;

thread_local! {
    static REFUSE_FROM: Cell<usize> = const { Cell::new(0) };
}

fn refused(size: usize) -> bool {
    REFUSE_FROM
        .try_with(|r| r.get() != 0 && size >= r.get())
        .unwrap_or(false)
}

// SAFETY: forwards to `System`, or returns null (a refusal) before it.
unsafe impl GlobalAlloc for Refusing {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if refused(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if refused(layout.size()) {
            return std::ptr::null_mut();
        }
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: the caller's contract, forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Refusing = Refusing;

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

/// Keeps what it is given; refuses the write at `fail_at` (by count) and
/// the flush if asked to, with `errno`.
#[derive(Debug, Default)]
struct Kv {
    kept: Vec<u8>,
    writes: usize,
    fail_at: Option<usize>,
    fail_flush: bool,
    errno: i32,
    flushed: bool,
}

impl PipeStorage for Kv {
    fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<(), i32> {
        assert_eq!(offset, self.kept.len() as u64, "in order, no gap");
        self.writes += 1;
        if self.fail_at == Some(self.writes) {
            return Err(self.errno);
        }
        self.kept.extend_from_slice(bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), i32> {
        if self.fail_flush {
            return Err(self.errno);
        }
        self.flushed = true;
        Ok(())
    }
}

#[test]
fn storage_keeps_exactly_what_readers_see_and_is_flushed_on_close() {
    let q = queue();
    let (mut w, f) =
        pipe_with_storage(&q, "kv", Limits::default().max_bytes(10), Kv::default()).unwrap();
    let mut r = f.reader().unwrap();
    f.seal();
    assert_eq!(w.write(b"0123456"), Ok(7));
    assert_eq!(w.write(b"789abc"), Ok(3), "what fits");
    w.close().unwrap();
    assert_eq!(w.storage().kept, b"0123456789");
    assert!(w.storage().flushed);
    assert_eq!(common::read_to_end(&mut r), w.storage().kept);
}

#[test]
fn storage_error_fails_the_writer_and_reaches_readers_after_the_drain() {
    let q = queue();
    let kv = Kv {
        fail_at: Some(2),
        errno: 28,
        ..Kv::default()
    };
    let (mut w, f) = pipe_with_storage(&q, "kv", Limits::default(), kv).unwrap();
    let mut r = f.reader().unwrap();
    let mut sub = q.subscribe(w.handle(), 4, "supervisor").unwrap();
    assert_eq!(w.write(b"ok"), Ok(2));
    assert_eq!(w.write(b"lost"), Err(PipeError::Storage { errno: 28 }));
    assert_eq!(w.write(b"x"), Err(PipeError::Failed { errno: 28 }));
    assert_eq!(w.state(), WriterState::Failed(28));
    assert_eq!(
        PipeEvent::from_arg(sub.try_recv().unwrap()),
        Some(PipeEvent::Data(2))
    );
    assert_eq!(
        PipeEvent::from_arg(sub.try_recv().unwrap()),
        Some(PipeEvent::Failed(28))
    );
    let mut buf = [0u8; 8];
    assert_eq!(r.read(&mut buf), Ok(2), "the refused bytes are never seen");
    assert_eq!(
        r.read(&mut buf),
        Err(PipeError::BrokenPipe {
            writer_errno: Some(28)
        })
    );
}

#[test]
fn flush_error_on_close_fails_the_writer_and_bad_errnos_are_eio() {
    let q = queue();
    let kv = Kv {
        fail_flush: true,
        errno: 0, // not an errno: EIO
        ..Kv::default()
    };
    let (mut w, f) = pipe_with_storage(&q, "kv", Limits::default(), kv).unwrap();
    let mut r = f.reader().unwrap();
    w.write(b"abc").unwrap();
    assert_eq!(w.close(), Err(PipeError::Storage { errno: EIO }));
    assert_eq!(w.close(), Err(PipeError::Closed));
    assert_eq!(r.writer_state(), WriterState::Failed(EIO));
    let mut buf = [0u8; 8];
    assert_eq!(r.read(&mut buf), Ok(3));
    assert_eq!(
        r.read(&mut buf),
        Err(PipeError::BrokenPipe {
            writer_errno: Some(EIO)
        })
    );
}

#[test]
fn initial_bytes_that_fit_a_segment_are_adopted_without_allocating_one() {
    const SEG: usize = 1 << 20;
    let q = queue();
    let mut bytes = Vec::with_capacity(SEG);
    bytes.extend_from_slice(b"from the caller");
    let limits = Limits::default()
        .segment_size(SEG)
        .max_bytes(4 * SEG as u64);
    // No allocation of a segment's size may succeed now: adopting needs none.
    REFUSE_FROM.with(|r| r.set(SEG));
    let adopted = pipe_with_bytes(&q, "adopt", limits, bytes);
    // Copying would need one: it is refused.
    let copied = pipe_with_bytes(&q, "copy", limits, b"small capacity".to_vec());
    REFUSE_FROM.with(|r| r.set(0));
    assert!(matches!(copied, Err(PipeError::OutOfMemory { .. })));
    let (mut w, f) = adopted.unwrap();
    assert_eq!(w.tell(), 15);
    let mut r = f.reader().unwrap();
    w.write(b"!").unwrap();
    w.close().unwrap();
    assert_eq!(common::read_to_end(&mut r), b"from the caller!");
}

#[test]
fn initial_bytes_beyond_a_segment_are_copied_and_beyond_the_limit_refused() {
    let q = queue();
    let data: Vec<u8> = (0..100u8).collect();
    let limits = Limits::default().segment_size(16).max_bytes(100);
    let (w, f) = pipe_with_bytes(&q, "copy", limits, data.clone()).unwrap();
    assert_eq!(w.tell(), 100);
    let mut r = f.reader().unwrap();
    drop(w);
    assert_eq!(common::read_to_end(&mut r), data);
    assert_eq!(
        pipe_with_bytes(&q, "big", limits, vec![0; 101]).unwrap_err(),
        PipeError::InvalidLimit {
            name: "initial bytes",
            value: 101
        }
    );
}
