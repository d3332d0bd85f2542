//! MemPipe small writes: a write that fits in the current segment and
//! under the byte limit keeps every rule of the writer (the same results,
//! the same handle events, the same bytes), and a reader that sleeps
//! before every write is always woken.

use notification_queue::mempipe::{
    ENOSPC, Limits, PipeError, PipeEvent, PipeStorage, pipe, pipe_with_storage,
};
use notification_queue::{Config, NotificationQueue};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

fn bytes(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + 3) as u8).collect()
}

/// Keep-everything mode, 16-byte segments, a 40-byte limit, 5-byte writes:
/// writes inside a segment, across segment ends and up to the limit all
/// succeed with one `Data(5)` event each; the write after the limit is
/// `Full` and fails the writer with `ENOSPC`; the reader gets every byte in
/// order, then the `ENOSPC`.
#[test]
fn small_writes_fill_segments_and_the_limit_exactly() {
    let q = queue();
    let limits = Limits::default().segment_size(16).max_bytes(40);
    let (mut w, f) = pipe(&q, "small", limits).unwrap();
    let mut r = f.reader().unwrap();
    let mut sub = q.subscribe(w.handle(), 16, "events").unwrap();
    let data = bytes(40);
    for chunk in data.chunks(5) {
        assert_eq!(w.write(chunk), Ok(5));
    }
    assert_eq!(w.tell(), 40);
    assert_eq!(w.write(b"x"), Err(PipeError::Full { limit: 40 }));
    assert_eq!(w.error(), Some(ENOSPC));
    assert_eq!(w.write(b"y"), Err(PipeError::Failed { errno: ENOSPC }));
    let mut events = Vec::new();
    while let Ok(arg) = sub.try_recv() {
        events.push(PipeEvent::from_arg(arg).unwrap());
    }
    let mut expect = vec![PipeEvent::Data(5); 8];
    expect.push(PipeEvent::Failed(ENOSPC));
    assert_eq!(events, expect);
    let mut got = Vec::new();
    let mut buf = [0u8; 7];
    let end = loop {
        match r.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => break e,
        }
    };
    assert_eq!(got, data);
    assert_eq!(
        end,
        PipeError::BrokenPipe {
            writer_errno: Some(ENOSPC)
        }
    );
}

/// Streaming mode, 8-byte segments, a 16-byte limit, 3-byte writes: writes
/// go until the limit, then `Full`; after the reader catches up (segments
/// recycled) they go on; the reader sees exactly the stream.
#[test]
fn small_writes_in_streaming_mode_stop_at_the_limit_and_resume() {
    let q = queue();
    let limits = Limits::default().segment_size(8).max_bytes(16);
    let (mut w, f) = pipe(&q, "stream", limits).unwrap();
    let mut r = f.reader().unwrap();
    drop(f);
    let data = bytes(3000);
    let mut sent = 0;
    let mut got = Vec::new();
    let mut buf = [0u8; 5];
    let mut fulls = 0;
    while sent < data.len() {
        let end = (sent + 3).min(data.len());
        match w.write(&data[sent..end]) {
            Ok(n) => {
                assert!(n >= 1 && n <= end - sent);
                sent += n;
            }
            Err(PipeError::Full { limit: 16 }) => {
                fulls += 1;
                while let Some(n @ 1..) = r.try_read(&mut buf).unwrap() {
                    got.extend_from_slice(&buf[..n]);
                }
            }
            Err(e) => panic!("write: {e}"),
        }
        assert!(w.footprint() <= 4 * 8, "{}", w.footprint());
    }
    w.close().unwrap();
    loop {
        match r.read(&mut buf).unwrap() {
            0 => break,
            n => got.extend_from_slice(&buf[..n]),
        }
    }
    assert_eq!(got, data);
    assert!(fulls > 100, "{fulls}");
}

/// A small write after the last reader left is the broken pipe, as any
/// write is; so are the writes after close or an error.
#[test]
fn small_writes_after_the_readers_left_closed_or_failed() {
    let q = queue();
    let (mut w, f) = pipe(&q, "gone", Limits::default()).unwrap();
    let r = f.reader().unwrap();
    assert_eq!(w.write(b"ab"), Ok(2));
    assert_eq!(w.write(b"cd"), Ok(2));
    drop(r);
    let epipe = Err(PipeError::BrokenPipe { writer_errno: None });
    assert_eq!(w.write(b"e"), epipe);
    assert_eq!(w.write(b"f"), epipe);

    let (mut w, f) = pipe(&q, "closed", Limits::default()).unwrap();
    let _r = f.reader().unwrap();
    assert_eq!(w.write(b"ab"), Ok(2));
    assert_eq!(w.write(b"cd"), Ok(2));
    w.close().unwrap();
    assert_eq!(w.write(b"e"), Err(PipeError::Closed));

    let (mut w, f) = pipe(&q, "failed", Limits::default()).unwrap();
    let _r = f.reader().unwrap();
    assert_eq!(w.write(b"ab"), Ok(2));
    assert_eq!(w.write(b"cd"), Ok(2));
    w.set_error(3).unwrap();
    assert_eq!(w.write(b"e"), Err(PipeError::Failed { errno: 3 }));
}

/// A storage that refuses its third append.
#[derive(Default)]
struct FailsThird {
    kept: Vec<u8>,
    calls: usize,
}

impl PipeStorage for FailsThird {
    fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<(), i32> {
        self.calls += 1;
        if self.calls == 3 {
            return Err(28);
        }
        assert_eq!(offset, self.kept.len() as u64);
        self.kept.extend_from_slice(bytes);
        Ok(())
    }
}

/// A small write the storage refuses fails the writer with the storage's
/// errno and reaches no reader: the reader drains the writes before it,
/// then gets that errno.
#[test]
fn a_small_write_the_storage_refuses_fails_the_writer() {
    let q = queue();
    let (mut w, f) =
        pipe_with_storage(&q, "storage", Limits::default(), FailsThird::default()).unwrap();
    let mut r = f.reader().unwrap();
    assert_eq!(w.write(b"ab"), Ok(2));
    assert_eq!(w.write(b"cd"), Ok(2));
    assert_eq!(w.write(b"ef"), Err(PipeError::Storage { errno: 28 }));
    assert_eq!(w.error(), Some(28));
    assert_eq!(w.storage().kept, b"abcd");
    let mut buf = [0u8; 8];
    assert_eq!(r.read(&mut buf), Ok(4));
    assert_eq!(&buf[..4], b"abcd");
    assert_eq!(
        r.read(&mut buf),
        Err(PipeError::BrokenPipe {
            writer_errno: Some(28)
        })
    );
}

/// No lost wakeup: before every one-byte write the writer waits until the
/// reader is asleep in a blocking read (its slot armed), then writes; the
/// reader acknowledges each byte. A write that failed to wake the reader
/// would leave the acknowledgement missing (the test fails after 10 s
/// rather than hanging).
#[test]
fn a_reader_asleep_before_every_small_write_is_always_woken() {
    const N: usize = 2000;
    let q = queue();
    let (mut w, f) = pipe(&q, "pingpong", Limits::default().segment_size(64)).unwrap();
    let mut r = f.reader().unwrap();
    drop(f);
    let (ack, acks) = mpsc::channel();
    let t = thread::spawn(move || {
        let mut buf = [0u8; 1];
        for i in 0..N {
            assert_eq!(r.read(&mut buf), Ok(1));
            assert_eq!(buf[0], i as u8);
            ack.send(()).unwrap();
        }
        assert_eq!(r.read(&mut buf), Ok(0));
    });
    for i in 0..N {
        while w.waiting_readers() == 0 {
            thread::yield_now();
        }
        assert_eq!(w.write(&[i as u8]), Ok(1));
        acks.recv_timeout(Duration::from_secs(10))
            .unwrap_or_else(|e| panic!("write {i} did not wake the reader: {e}"));
    }
    w.close().unwrap();
    t.join().unwrap();
}
