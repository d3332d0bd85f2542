//! Loom models of MemPipe. Each test states the property it checks.
#![cfg(notification_queue_loom)]

use loom::future::block_on;
use loom::thread;
use notification_queue::mempipe::{Limits, PipeError, Reader, pipe};
use notification_queue::{Config, NotificationQueue};

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default().max_waiters_per_handle(4))
}

fn limits() -> Limits {
    Limits::default().segment_size(2).max_readers(2)
}

/// Reads (async, one `chunk` at a time) until EOF or an error.
fn drain(r: &mut Reader, chunk: usize) -> (Vec<u8>, Option<PipeError>) {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match block_on(r.read_async(&mut buf)) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// No lost tail: a write spanning two segments followed by close, racing a
/// reader, is always read in full before EOF, and the reader never hangs.
#[test]
fn write_close_vs_read() {
    loom::model(|| {
        let q = queue();
        let (mut w, f) = pipe(&q, "p", limits()).unwrap();
        let mut r = f.reader().unwrap();
        let t = thread::spawn(move || {
            assert_eq!(w.write(b"abc"), Ok(3));
            w.close();
        });
        assert_eq!(drain(&mut r, 2), (b"abc".to_vec(), None));
        t.join().unwrap();
    });
}

/// Drain, then EPIPE: a writer failing right after its last write, racing a
/// reader, never costs the reader a byte, and the EPIPE carries its errno.
#[test]
fn set_error_vs_read() {
    loom::model(|| {
        let q = queue();
        let (mut w, f) = pipe(&q, "p", limits()).unwrap();
        let mut r = f.reader().unwrap();
        let t = thread::spawn(move || {
            assert_eq!(w.write(b"ab"), Ok(2));
            w.set_error(5);
        });
        let expect = PipeError::BrokenPipe {
            writer_errno: Some(5),
        };
        assert_eq!(drain(&mut r, 1), (b"ab".to_vec(), Some(expect)));
        t.join().unwrap();
    });
}

/// Streaming reclamation: with the factory dropped, the writer retires and
/// reuses a segment while a reader copies; no recycled byte is rewritten
/// while the reader may still read it (loom checks every byte cell), and the
/// reader sees exactly the stream. The reader polls with `try_read` so the
/// model explores the buffer, not the wait protocol (checked above).
#[test]
fn reclaim_vs_read() {
    loom::model(|| {
        let q = queue();
        let (mut w, f) = pipe(&q, "p", limits().segment_size(1)).unwrap();
        let mut r = f.reader().unwrap();
        drop(f);
        let t = thread::spawn(move || {
            for b in [b"a", b"b", b"c"] {
                assert_eq!(w.write(b), Ok(1));
            }
            let footprint = w.footprint();
            w.close();
            footprint
        });
        let mut got = Vec::new();
        let mut buf = [0u8; 1];
        loop {
            match r.try_read(&mut buf).unwrap() {
                Some(0) => break,
                Some(n) => got.extend_from_slice(&buf[..n]),
                None => thread::yield_now(),
            }
        }
        assert_eq!(got, b"abc");
        let footprint = t.join().unwrap();
        assert!(footprint <= 3);
    });
}
