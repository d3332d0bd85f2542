//! MemPipe's SharedWriter: several threads, each write contiguous.

mod common;

use notification_queue::mempipe::{Limits, PipeError, Reader, WriterState, pipe};
use notification_queue::{Config, NotificationQueue};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

fn read_all(mut r: Reader) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 29];
    loop {
        match r.read(&mut buf).unwrap() {
            0 => return out,
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

/// Splits the stream into runs of equal bytes and checks each run is a
/// whole record of `len` bytes.
fn assert_records(out: &[u8], len: usize, count: usize) {
    assert_eq!(out.len(), len * count);
    for rec in out.chunks(len) {
        assert!(rec.iter().all(|&b| b == rec[0]), "interleaved: {rec:?}");
    }
}

#[test]
fn threads_write_records_contiguously_through_back_pressure() {
    const THREADS: usize = 4;
    const RECORDS: usize = 200;
    const LEN: usize = 37;
    let q = queue();
    let (w, f) = pipe(
        &q,
        "shared",
        Limits::default().segment_size(16).max_bytes(64),
    )
    .unwrap();
    let r = f.reader().unwrap();
    f.seal();
    let reader = thread::spawn(move || read_all(r));
    let w = w.into_shared();
    let writers: Vec<_> = (0..THREADS)
        .map(|t| {
            let w = w.clone();
            thread::spawn(move || {
                for i in 0..RECORDS {
                    let b = (t * RECORDS + i) as u8;
                    w.write_all(&[b; LEN]).unwrap();
                }
            })
        })
        .collect();
    for t in writers {
        t.join().unwrap();
    }
    assert_eq!(w.tell(), (THREADS * RECORDS * LEN) as u64);
    w.close().unwrap();
    assert_eq!(w.close(), Err(PipeError::Closed));
    assert_records(&reader.join().unwrap(), LEN, THREADS * RECORDS);
}

#[test]
fn each_write_wait_is_contiguous() {
    // 3 threads x 80 writes: every write has a tag byte of its own.
    let q = queue();
    let (w, f) = pipe(
        &q,
        "shared-wait",
        Limits::default().segment_size(16).max_bytes(64),
    )
    .unwrap();
    let r = f.reader().unwrap();
    f.seal();
    let reader = thread::spawn(move || read_all(r));
    let w = w.into_shared();
    let threads: Vec<_> = (0..3u8)
        .map(|t| {
            let w = w.clone();
            thread::spawn(move || {
                (0..80u8)
                    .map(|i| {
                        let tag = t * 80 + i;
                        (tag, w.write_wait(&[tag; 40]).unwrap())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut runs: Vec<(u8, usize)> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    w.close().unwrap();
    let out = reader.join().unwrap();
    // The stream, as runs of one byte value, is exactly the writes.
    let mut pieces: Vec<(u8, usize)> = Vec::new();
    for &b in &out {
        match pieces.last_mut() {
            Some((pb, n)) if *pb == b => *n += 1,
            _ => pieces.push((b, 1)),
        }
    }
    runs.sort();
    pieces.sort();
    assert_eq!(pieces, runs);
}

#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[test]
fn two_async_writers_waiting_for_space_are_both_woken() {
    let q = queue();
    let (w, f) = pipe(
        &q,
        "async",
        Limits::default().segment_size(16).max_bytes(32),
    )
    .unwrap();
    let mut r = f.reader().unwrap();
    f.seal();
    let w = w.into_shared();
    assert_eq!(w.write(&[0u8; 32]), Ok(32));
    let (c1, c2) = (Arc::new(Count::default()), Arc::new(Count::default()));
    let (k1, k2) = (Waker::from(c1.clone()), Waker::from(c2.clone()));
    let mut f1 = pin!(w.write_async(b"one"));
    let mut f2 = pin!(w.write_async(b"two"));
    assert!(f1.as_mut().poll(&mut Context::from_waker(&k1)).is_pending());
    assert!(f2.as_mut().poll(&mut Context::from_waker(&k2)).is_pending());
    let mut buf = [0u8; 17];
    assert_eq!(r.read(&mut buf), Ok(17));
    assert_eq!(c1.0.load(Ordering::SeqCst), 1);
    assert_eq!(c2.0.load(Ordering::SeqCst), 1);
    // The first takes some room; the second is told to retry again.
    assert_eq!(
        f2.as_mut().poll(&mut Context::from_waker(&k2)),
        Poll::Ready(Ok(3))
    );
    assert_eq!(
        f1.as_mut().poll(&mut Context::from_waker(&k1)),
        Poll::Ready(Ok(3))
    );
}

#[test]
fn close_wakes_a_waiting_shared_writer_with_ebadf() {
    let q = queue();
    let (w, f) = pipe(
        &q,
        "close",
        Limits::default().segment_size(16).max_bytes(32),
    )
    .unwrap();
    let _r = f.reader().unwrap();
    f.seal();
    let w = w.into_shared();
    assert_eq!(w.write(&[0u8; 40]), Ok(32));
    let c = Arc::new(Count::default());
    let k = Waker::from(c.clone());
    let mut fut = pin!(w.write_async(b"x"));
    assert!(fut.as_mut().poll(&mut Context::from_waker(&k)).is_pending());
    w.close().unwrap();
    assert_eq!(c.0.load(Ordering::SeqCst), 1);
    assert_eq!(
        fut.as_mut().poll(&mut Context::from_waker(&k)),
        Poll::Ready(Err(PipeError::Closed))
    );
    assert_eq!(w.state(), WriterState::Closed);
}

#[test]
fn last_clone_dropped_closes_the_pipe() {
    let q = queue();
    let (w, f) = pipe(&q, "drop", Limits::default()).unwrap();
    let r = f.reader().unwrap();
    let w = w.into_shared();
    let w2 = w.clone();
    w.write(b"ab").unwrap();
    drop(w);
    assert_eq!(r.writer_state(), WriterState::Open);
    w2.write(b"c").unwrap();
    drop(w2);
    assert_eq!(r.writer_state(), WriterState::Closed);
    assert_eq!(read_all(r), b"abc");
}

/// Wakers are the runtime's code: a shared writer never clones, wakes or
/// drops one under its locks (waiting, woken, retried, cancelled and
/// timed out).
#[test]
fn shared_writer_runs_no_waker_code_under_its_locks() {
    let q = queue();
    let (w, f) = pipe(
        &q,
        "locks",
        Limits::default().segment_size(16).max_bytes(32),
    )
    .unwrap();
    let mut r = f.reader().unwrap();
    f.seal();
    let w = w.into_shared();
    assert_eq!(w.write(&[0u8; 32]), Ok(32));
    let (k, violations) = common::lock_checking_waker();
    {
        let mut f1 = pin!(w.write_async(b"one"));
        let mut f2 = pin!(w.write_async(b"two"));
        assert!(f1.as_mut().poll(&mut Context::from_waker(&k)).is_pending());
        assert!(f1.as_mut().poll(&mut Context::from_waker(&k)).is_pending());
        assert!(f2.as_mut().poll(&mut Context::from_waker(&k)).is_pending());
        let mut buf = [0u8; 17];
        assert_eq!(r.read(&mut buf), Ok(17)); // wakes them
        assert_eq!(
            f1.as_mut().poll(&mut Context::from_waker(&k)),
            Poll::Ready(Ok(3))
        );
        assert!(f2.as_mut().poll(&mut Context::from_waker(&k)).is_ready());
    }
    assert!(w.write(&[2u8; 64]).is_ok()); // full again
    let mut pending = Box::pin(w.write_async(&[1u8; 64]));
    assert!(
        pending
            .as_mut()
            .poll(&mut Context::from_waker(&k))
            .is_pending()
    );
    drop(pending); // cancelled: its waker is withdrawn
    drop(k);
    assert_eq!(
        violations.load(Ordering::SeqCst),
        0,
        "waker code ran under a crate lock"
    );
}
