//! Loom models of MemPipe. Each test states the property it checks.
#![cfg(notification_queue_loom)]

use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Waker};
use loom::future::block_on;
use loom::thread;
use notification_queue::mempipe::{Limits, PipeError, Reader, pipe};
use notification_queue::{Config, Handle, NotificationQueue, Wait};

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
            w.close().unwrap();
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
            w.set_error(5).unwrap();
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
            w.close().unwrap();
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

/// A client outside the pipe holding every waiter entry of the writer's
/// handle (one wait, polled once, with a one-waiter queue).
fn hold_the_handle(q: &NotificationQueue, h: Handle) -> Wait<'_> {
    let mut wait = q.wait(h);
    let mut cx = Context::from_waker(Waker::noop());
    assert!(Pin::new(&mut wait).poll(&mut cx).is_pending());
    wait
}

fn one_waiter_queue() -> NotificationQueue {
    NotificationQueue::new(Config::default().max_waiters_per_handle(1))
}

/// No lost wakeup, whatever other clients do: with another client holding
/// the handle's only waiter entry, a reader going to sleep (async) races the
/// writer's commit; the reader always wakes with the byte.
#[test]
fn reader_sleep_vs_commit_with_the_handle_full() {
    loom::model(|| {
        let q = one_waiter_queue();
        let (mut w, f) = pipe(&q, "p", limits().max_readers(1)).unwrap();
        let mut r = f.reader().unwrap();
        let held = hold_the_handle(&q, w.handle());
        let t = thread::spawn(move || {
            assert_eq!(w.write(b"a"), Ok(1));
            w
        });
        let mut buf = [0u8; 2];
        assert_eq!(block_on(r.read_async(&mut buf)), Ok(1));
        assert_eq!(buf[0], b'a');
        let w = t.join().unwrap();
        drop(held);
        drop(w);
    });
}

/// The same race against close, with a blocking read (the thread-parking
/// path): the reader always wakes and sees EOF.
#[test]
fn reader_sleep_vs_close_with_the_handle_full() {
    loom::model(|| {
        let q = one_waiter_queue();
        let (mut w, f) = pipe(&q, "p", limits().max_readers(1)).unwrap();
        let mut r = f.reader().unwrap();
        let held = hold_the_handle(&q, w.handle());
        let t = thread::spawn(move || w.close());
        assert_eq!(r.read(&mut [0u8; 2]), Ok(0));
        assert_eq!(t.join().unwrap(), Ok(()));
        drop(held);
    });
}

/// Two readers sleep at once while the writer commits: each is woken (the
/// writer's scan of the slots races both arming), and each reads the byte.
#[test]
fn two_readers_sleep_vs_commit() {
    loom::model(|| {
        let q = queue();
        let (mut w, f) = pipe(&q, "p", limits()).unwrap();
        let mut r1 = f.reader().unwrap();
        let mut r2 = f.reader().unwrap();
        drop(f);
        let t = thread::spawn(move || {
            let mut buf = [0u8; 1];
            block_on(r2.read_async(&mut buf)).map(|n| (n, buf[0]))
        });
        let tw = thread::spawn(move || {
            assert_eq!(w.write(b"z"), Ok(1));
            w
        });
        let mut buf = [0u8; 1];
        assert_eq!(block_on(r1.read_async(&mut buf)), Ok(1));
        assert_eq!(buf[0], b'z');
        assert_eq!(t.join().unwrap(), Ok((1, b'z')));
        drop(tw.join().unwrap());
    });
}

/// A reader that sleeps again after reading the first of two commits (the
/// second takes the writer's small-write path): whichever commit races its
/// arming sees it asleep and wakes it, or its re-check sees that commit.
/// The reader reads one byte at a time, so it may sleep before each.
#[test]
fn reader_sleeps_between_two_commits() {
    loom::model(|| {
        let q = queue();
        let (mut w, f) = pipe(&q, "p", limits().max_readers(1)).unwrap();
        let mut r = f.reader().unwrap();
        drop(f);
        let t = thread::spawn(move || {
            assert_eq!(w.write(b"a"), Ok(1));
            assert_eq!(w.write(b"b"), Ok(1));
            w
        });
        let mut buf = [0u8; 1];
        assert_eq!(block_on(r.read_async(&mut buf)), Ok(1));
        assert_eq!(buf[0], b'a');
        assert_eq!(block_on(r.read_async(&mut buf)), Ok(1));
        assert_eq!(buf[0], b'b');
        drop(t.join().unwrap());
    });
}

/// No lost wakeup for a writer waiting for space: in streaming mode with
/// the byte limit reached, a writer in `write_async` races a reader that
/// reads past the first segment's end (the only move that frees room); the
/// writer is always woken, its byte lands after the others, and the reader
/// reads the whole stream, then EOF.
#[test]
fn write_wait_vs_read() {
    loom::model(|| {
        let q = queue();
        let (mut w, f) = pipe(&q, "p", limits().segment_size(1).max_bytes(2)).unwrap();
        let mut r = f.reader().unwrap();
        drop(f);
        assert_eq!(w.write(b"ab"), Ok(2));
        let t = thread::spawn(move || drain(&mut r, 2));
        assert_eq!(block_on(w.write_async(b"c")), Ok(1));
        w.close().unwrap();
        assert_eq!(t.join().unwrap(), (b"abc".to_vec(), None));
    });
}

/// A writer waiting for space is woken when the last reader leaves instead
/// of reading (close racing the wait): it never hangs; its write either
/// lands while the reader is leaving or is the broken pipe, and the next
/// one is the broken pipe.
#[test]
fn write_wait_vs_reader_close() {
    loom::model(|| {
        let q = queue();
        let (mut w, f) = pipe(&q, "p", limits().segment_size(1).max_bytes(2)).unwrap();
        let mut r = f.reader().unwrap();
        drop(f);
        assert_eq!(w.write(b"ab"), Ok(2));
        let t = thread::spawn(move || r.close());
        let epipe = Err(PipeError::BrokenPipe { writer_errno: None });
        let got = block_on(w.write_async(b"c"));
        assert!(got == Ok(1) || got == epipe, "{got:?}");
        assert_eq!(t.join().unwrap(), Ok(()));
        assert_eq!(w.write(b"d"), epipe);
    });
}

/// Latent pipes: a reader opening a key before its writer exists races the
/// writer's creation and the producer's end. The opener never hangs: it gets
/// a reader, or `NoWriter` exactly when the end found the key still latent;
/// the creation always succeeds (an abandoned key gets a new pipe).
#[test]
fn latent_open_vs_create_vs_producer_end() {
    use notification_queue::mempipe::PipeTable;
    loom::model(|| {
        let q = queue();
        let t = loom::sync::Arc::new(PipeTable::<u8>::new(&q, limits()));
        let t1 = t.clone();
        let opener = thread::spawn(move || block_on(t1.open_reader_async(&7)).map(|_| ()));
        let t2 = t.clone();
        let creator = thread::spawn(move || t2.create_writer(7).map(|_| ()));
        let ended = t.close_all_leftover_writers();
        assert_eq!(creator.join().unwrap(), Ok(()));
        match opener.join().unwrap() {
            Ok(()) => {}
            Err(e) => {
                assert_eq!(e, PipeError::NoWriter);
                assert_eq!(ended, 1, "NoWriter only if the end found it latent");
            }
        }
    });
}
