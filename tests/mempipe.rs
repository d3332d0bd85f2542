//! MemPipe: one test (or more) per rule of the writer and the reader.

mod common;

use futures::executor::block_on;
use notification_queue::mempipe::{EBADF, ENOSPC, EPIPE, Limits, PipeError, Reader, Writer, pipe};
use notification_queue::{Config, NotificationQueue, QueueError};
use std::sync::{Arc, Barrier};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::Duration;
#[cfg(feature = "std")]
use std::time::Instant;

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

fn small() -> Limits {
    Limits::default().segment_size(16)
}

fn poll_once<F: std::future::Future + Unpin>(f: &mut F) -> Poll<F::Output> {
    let mut cx = Context::from_waker(Waker::noop());
    std::pin::Pin::new(f).poll(&mut cx)
}

fn read_to_end(r: &mut Reader, chunk: usize) -> Result<Vec<u8>, (Vec<u8>, PipeError)> {
    let mut out = Vec::new();
    let mut buf = vec![0u8; chunk];
    loop {
        match r.read(&mut buf) {
            Ok(0) => return Ok(out),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return Err((out, e)),
        }
    }
}

fn write_all(w: &mut Writer, mut buf: &[u8]) {
    while !buf.is_empty() {
        match w.write(buf) {
            Ok(n) => buf = &buf[n..],
            Err(PipeError::Full { .. }) => thread::yield_now(),
            Err(e) => panic!("write: {e}"),
        }
    }
}

/// A deterministic byte stream with varied write sizes.
fn stream(len: usize) -> Vec<u8> {
    let mut x = 0x2545_f491_u32;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn write_sizes(total: usize) -> Vec<usize> {
    let mut sizes = Vec::new();
    let mut left = total;
    let mut i = 0usize;
    while left > 0 {
        let n = [1, 3, 16, 17, 100, 4096, 5][i % 7].min(left);
        sizes.push(n);
        left -= n;
        i += 1;
    }
    sizes
}

#[test]
fn hello_world_chunks_for_three_readers() {
    let q = queue();
    let (mut w, f) = pipe(&q, "demo", Limits::default()).unwrap();
    let mut readers: Vec<Reader> = (0..3).map(|_| f.reader().unwrap()).collect();
    let mut buf = [0u8; 4];
    w.write(b"hello").unwrap();
    for r in &mut readers {
        assert_eq!(r.read(&mut buf), Ok(4));
        assert_eq!(&buf, b"hell");
        assert_eq!(r.read(&mut buf), Ok(1));
        assert_eq!(&buf[..1], b"o");
    }
    w.write(b"world").unwrap();
    w.close().unwrap();
    for r in &mut readers {
        assert_eq!(r.read(&mut buf), Ok(4));
        assert_eq!(&buf, b"worl");
        assert_eq!(r.read(&mut buf), Ok(1));
        assert_eq!(r.read(&mut buf), Ok(0));
        assert_eq!(r.read(&mut buf), Ok(0), "EOF is sticky");
    }
}

#[test]
fn many_readers_see_identical_bytes_keep_and_streaming() {
    for streaming in [false, true] {
        let q = queue();
        let data = stream(200_000);
        let limits =
            Limits::default()
                .segment_size(64)
                .max_bytes(if streaming { 4096 } else { 1 << 20 });
        let (mut w, f) = pipe(&q, "many", limits).unwrap();
        let readers: Vec<Reader> = (0..8).map(|_| f.reader().unwrap()).collect();
        if streaming {
            f.seal();
        }
        let threads: Vec<_> = readers
            .into_iter()
            .enumerate()
            .map(|(i, mut r)| thread::spawn(move || read_to_end(&mut r, 1 + i * 37).unwrap()))
            .collect();
        let mut off = 0;
        for n in write_sizes(data.len()) {
            write_all(&mut w, &data[off..off + n]);
            off += n;
        }
        w.close().unwrap();
        for t in threads {
            assert!(t.join().unwrap() == data, "streaming={streaming}");
        }
    }
}

#[test]
fn late_reader_starts_at_zero_even_after_close() {
    let q = queue();
    let (mut w, f) = pipe(&q, "late", small()).unwrap();
    let _first = f.reader().unwrap();
    let data = stream(1000);
    write_all(&mut w, &data);
    w.close().unwrap();
    let mut late = f.reader().unwrap();
    assert_eq!(read_to_end(&mut late, 7).unwrap(), data);
}

#[test]
fn close_vs_read_never_loses_the_tail() {
    const ROUNDS: usize = 100_000;
    let q = NotificationQueue::new(Config::default());
    let (to_writer, writers) = crossbeam_channel::bounded::<(Writer, bool)>(1);
    let writer_thread = thread::spawn(move || {
        for (mut w, fail) in writers {
            w.write(b"tail").unwrap();
            if fail {
                w.set_error(11).unwrap();
            } else {
                w.close().unwrap();
            }
        }
    });
    let mut buf = [0u8; 16];
    for round in 0..ROUNDS {
        let fail = round % 4 == 3;
        let (w, f) = pipe(&q, "race", Limits::default().segment_size(2)).unwrap();
        let mut r = f.reader().unwrap();
        to_writer.send((w, fail)).unwrap();
        let mut got = Vec::new();
        let end = loop {
            match r.read(&mut buf) {
                Ok(0) => break None,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(e) => break Some(e),
            }
        };
        assert_eq!(got, b"tail", "round {round}");
        if fail {
            assert_eq!(
                end,
                Some(PipeError::BrokenPipe {
                    writer_errno: Some(11)
                })
            );
        } else {
            assert_eq!(end, None);
        }
    }
    drop(to_writer);
    writer_thread.join().unwrap();
    assert_eq!(q.stats().handles, 0, "every pipe gave its handle back");
}

#[test]
fn empty_write_returns_zero_and_wakes_nobody() {
    let q = queue();
    let (mut w, f) = pipe(&q, "empty", small()).unwrap();
    let _r = f.reader().unwrap();
    let h = w.handle();
    let before = q.snapshot(h).unwrap();
    let mut pending = q.wait(h);
    assert!(poll_once(&mut pending).is_pending());
    assert_eq!(w.write(b""), Ok(0));
    assert_eq!(q.snapshot(h).unwrap(), before, "no notify");
    assert!(poll_once(&mut pending).is_pending());
    assert_eq!(w.write(b"abcde"), Ok(5));
    match poll_once(&mut pending) {
        Poll::Ready(Ok(n)) => assert_eq!(n.arg, 5, "notified with the length"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn write_after_close_is_ebadf_even_empty() {
    let q = queue();
    let (mut w, f) = pipe(&q, "closed", small()).unwrap();
    let mut r = f.reader().unwrap();
    w.close().unwrap();
    assert!(w.is_closed());
    assert_eq!(w.write(b"x"), Err(PipeError::Closed));
    assert_eq!(w.write(b""), Err(PipeError::Closed));
    assert_eq!(PipeError::Closed.errno(), EBADF);
    assert_eq!(
        w.set_error(3),
        Err(PipeError::Closed),
        "refused once closed"
    );
    assert_eq!(w.error(), None);
    assert_eq!(r.read(&mut [0u8; 4]), Ok(0));
    assert!(!q.is_registered(w.handle()), "close unregisters the handle");
}

#[test]
fn error_state_returns_that_error_even_for_empty_writes() {
    let q = queue();
    let (mut w, f) = pipe(&q, "failed", small()).unwrap();
    let _r = f.reader().unwrap();
    w.set_error(5).unwrap();
    assert_eq!(w.set_error(6), Err(PipeError::Failed { errno: 5 })); // first error wins
    assert_eq!(w.error(), Some(5));
    assert_eq!(w.write(b"x"), Err(PipeError::Failed { errno: 5 }));
    assert_eq!(w.write(b""), Err(PipeError::Failed { errno: 5 }));
    w.close().unwrap(); // a failed writer stays failed, but is closed
    assert_eq!(w.error(), Some(5));
    assert_eq!(w.write(b""), Err(PipeError::Closed));
}

#[test]
fn failed_writer_readers_drain_then_epipe_with_errno() {
    let q = queue();
    let (mut w, f) = pipe(&q, "drain", small()).unwrap();
    let mut r1 = f.reader().unwrap();
    let mut r2 = f.reader().unwrap();
    let data = stream(100);
    write_all(&mut w, &data);
    w.set_error(42).unwrap();
    let expect = PipeError::BrokenPipe {
        writer_errno: Some(42),
    };
    for r in [&mut r1, &mut r2] {
        let (got, e) = read_to_end(r, 9).unwrap_err();
        assert_eq!(got, data);
        assert_eq!(e, expect);
        assert_eq!(e.errno(), EPIPE);
        assert_eq!(r.read(&mut [0u8; 1]), Err(expect), "sticky");
    }
    // A reader made after the failure drains too.
    let mut late = f.reader().unwrap();
    assert_eq!(read_to_end(&mut late, 64).unwrap_err(), (data, expect));
}

#[test]
fn reader_errors_are_private_and_take_precedence() {
    let q = queue();
    let (mut w, f) = pipe(&q, "per-reader", small()).unwrap();
    let mut r1 = f.reader().unwrap();
    let mut r2 = f.reader().unwrap();
    w.write(b"abcdef").unwrap();
    r1.set_error(7).unwrap();
    let mut buf = [0u8; 3];
    assert_eq!(r1.read(&mut buf), Err(PipeError::Reader { errno: 7 }));
    assert_eq!(r1.try_read(&mut buf), Err(PipeError::Reader { errno: 7 }));
    assert_eq!(r1.position(), 0, "nothing consumed");
    assert_eq!(r1.error(), Some(7));
    // Neither the other reader nor the writer is touched.
    assert_eq!(r2.read(&mut buf), Ok(3));
    assert_eq!(w.write(b"gh"), Ok(2));
    assert_eq!(w.error(), None);
    // Own error beats the writer's.
    w.set_error(9).unwrap();
    assert_eq!(r1.read(&mut buf), Err(PipeError::Reader { errno: 7 }));
    r1.clear_error();
    assert_eq!(
        read_to_end(&mut r1, 3).unwrap_err(),
        (
            b"abcdefgh".to_vec(),
            PipeError::BrokenPipe {
                writer_errno: Some(9)
            }
        )
    );
    assert_eq!(
        read_to_end(&mut r2, 3).unwrap_err(),
        (
            b"defgh".to_vec(),
            PipeError::BrokenPipe {
                writer_errno: Some(9)
            }
        )
    );
}

#[test]
fn write_with_no_readers_left_is_epipe() {
    let q = queue();
    // Factory alive, no reader ever: writes are kept for future readers.
    let (mut w, f) = pipe(&q, "no-readers", small()).unwrap();
    assert_eq!(w.write(b"early"), Ok(5));
    let r = f.reader().unwrap();
    assert_eq!(f.readers(), 1);
    drop(r);
    assert_eq!(
        w.write(b"x"),
        Err(PipeError::BrokenPipe { writer_errno: None })
    );
    assert_eq!(
        w.write(b""),
        Err(PipeError::BrokenPipe { writer_errno: None }),
        "the writer stays failed with EPIPE"
    );
    assert_eq!(w.error(), Some(EPIPE));
    // A new reader does not revive it: it drains, then gets the EPIPE.
    let mut r = f.reader().unwrap();
    assert_eq!(
        w.write(b"!"),
        Err(PipeError::BrokenPipe { writer_errno: None })
    );
    let mut buf = [0u8; 8];
    assert_eq!(r.read(&mut buf), Ok(5));
    assert_eq!(&buf[..5], b"early");
    assert_eq!(
        r.read(&mut buf),
        Err(PipeError::BrokenPipe {
            writer_errno: Some(EPIPE)
        })
    );

    // No factory and no reader: nobody can ever read.
    let (mut w2, f2) = pipe(&q, "sealed-empty", small()).unwrap();
    drop(f2);
    assert_eq!(
        w2.write(b"x"),
        Err(PipeError::BrokenPipe { writer_errno: None })
    );
}

#[test]
fn invalid_limits_are_typed_errors() {
    let q = NotificationQueue::new(Config::default().max_waiters_per_handle(8));
    let cases = [
        (Limits::default().max_bytes(0), "max_bytes"),
        (Limits::default().segment_size(0), "segment_size"),
        (Limits::default().segment_size(24), "segment_size"),
        (Limits::default().segment_size(1 << 31), "segment_size"),
        (
            Limits::default().max_bytes(10).initial_capacity(11),
            "initial_capacity",
        ),
        (Limits::default().max_readers(0), "max_readers"),
        (Limits::default().max_readers(9), "max_readers"),
    ];
    for (limits, name) in cases {
        match pipe(&q, "bad", limits) {
            Err(e @ PipeError::InvalidLimit { name: n, .. }) => {
                assert_eq!(n, name);
                assert_eq!(e.errno(), notification_queue::mempipe::EINVAL);
                #[cfg(feature = "std")]
                assert_eq!(
                    std::io::Error::from(e).kind(),
                    std::io::ErrorKind::InvalidInput
                );
            }
            other => panic!("{name}: {other:?}"),
        }
    }
    assert_eq!(q.stats().handles, 0, "no handle leaked by a refused pipe");
    let full = NotificationQueue::new(Config::default().max_handles(1));
    let _a = pipe(&full, "a", small()).unwrap();
    assert!(matches!(
        pipe(&full, "b", small()),
        Err(PipeError::Queue(QueueError::HandleLimit { .. }))
    ));
}

#[test]
fn byte_limit_writes_what_fits_then_full() {
    let q = queue();
    let (mut w, f) = pipe(&q, "limit", small().max_bytes(10)).unwrap();
    let mut r = f.reader().unwrap();
    assert_eq!(w.write(b"12345678"), Ok(8));
    assert_eq!(w.write(b"abcde"), Ok(2));
    assert_eq!(w.write(b"z"), Err(PipeError::Full { limit: 10 }));
    assert_eq!(w.tell(), 10);
    #[cfg(feature = "std")]
    {
        let e: std::io::Error = PipeError::Full { limit: 10 }.into();
        assert_eq!(e.kind(), std::io::ErrorKind::OutOfMemory);
    }
    // Keeping everything, reading could never make room: the writer failed
    // with ENOSPC, and the reader drains, then gets it.
    assert_eq!(w.error(), Some(ENOSPC));
    assert_eq!(w.write(b"z"), Err(PipeError::Failed { errno: ENOSPC }));
    let mut buf = [0u8; 16];
    assert_eq!(r.read(&mut buf), Ok(10));
    assert_eq!(
        r.read(&mut buf),
        Err(PipeError::BrokenPipe {
            writer_errno: Some(ENOSPC)
        })
    );
}

#[test]
fn reader_limit_and_initial_capacity() {
    let q = queue();
    let (_w, f) = pipe(
        &q,
        "readers",
        Limits::default()
            .max_readers(2)
            .segment_size(1024)
            .initial_capacity(4096),
    )
    .unwrap();
    assert_eq!(_w.footprint(), 4096, "preallocated");
    let a = f.reader().unwrap();
    let _b = f.reader().unwrap();
    assert_eq!(f.reader().unwrap_err(), PipeError::ReaderLimit { limit: 2 });
    drop(a);
    assert!(f.reader().is_ok());
}

#[test]
fn preallocated_capacity_is_used_before_allocating() {
    let q = queue();
    let (mut w, f) = pipe(
        &q,
        "prealloc",
        Limits::default().segment_size(64).initial_capacity(256),
    )
    .unwrap();
    let mut r = f.reader().unwrap();
    let data = stream(256);
    write_all(&mut w, &data);
    assert_eq!(w.footprint(), 256);
    w.write(b"x").unwrap();
    assert_eq!(w.footprint(), 320);
    w.close().unwrap();
    let mut want = data;
    want.push(b'x');
    assert_eq!(read_to_end(&mut r, 100).unwrap(), want);
}

#[test]
fn streaming_mode_memory_stays_bounded() {
    let q = queue();
    let seg = 1024;
    let limit = 8 * 1024;
    let (mut w, f) = pipe(
        &q,
        "stream",
        Limits::default().segment_size(seg).max_bytes(limit),
    )
    .unwrap();
    let readers: Vec<Reader> = (0..2).map(|_| f.reader().unwrap()).collect();
    drop(f); // streaming mode
    let total: usize = 4 << 20;
    let threads: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            thread::spawn(move || {
                let mut sum = 0u64;
                let mut n = 0usize;
                let mut buf = [0u8; 700];
                loop {
                    match r.read(&mut buf).unwrap() {
                        0 => return (n, sum),
                        k => {
                            sum = buf[..k]
                                .iter()
                                .fold(sum, |s, &b| s.wrapping_mul(31).wrapping_add(b as u64));
                            n += k;
                        }
                    }
                }
            })
        })
        .collect();
    let chunk: Vec<u8> = (0..1000).map(|i| (i % 251) as u8).collect();
    let mut expect = 0u64;
    let mut max_footprint = 0;
    let mut written = 0;
    while written < total {
        write_all(&mut w, &chunk);
        expect = chunk
            .iter()
            .fold(expect, |s, &b| s.wrapping_mul(31).wrapping_add(b as u64));
        written += chunk.len();
        max_footprint = max_footprint.max(w.footprint());
    }
    w.close().unwrap();
    for t in threads {
        assert_eq!(t.join().unwrap(), (written, expect));
    }
    // The limit's segments, the one being filled, the one a reader may sit
    // at the end of, and the recycling pool (4).
    let bound = limit as usize + 6 * seg;
    assert!(
        max_footprint <= bound,
        "footprint {max_footprint} > {bound} after {written} bytes"
    );
}

#[test]
fn keep_everything_footprint_grows_with_the_stream() {
    let q = queue();
    let (mut w, f) = pipe(&q, "keep", Limits::default().segment_size(1024)).unwrap();
    let mut r = f.reader().unwrap();
    write_all(&mut w, &stream(64 * 1024));
    read_to_end_nonblocking(&mut r);
    assert!(
        w.footprint() >= 64 * 1024,
        "every byte kept for late readers"
    );
}

fn read_to_end_nonblocking(r: &mut Reader) -> usize {
    let mut buf = [0u8; 4096];
    let mut n = 0;
    while let Ok(Some(k)) = r.try_read(&mut buf) {
        if k == 0 {
            break;
        }
        n += k;
    }
    n
}

#[test]
fn try_read_and_timeouts() {
    let q = queue();
    let (mut w, f) = pipe(&q, "timeouts", small()).unwrap();
    let mut r = f.reader().unwrap();
    let mut buf = [0u8; 4];
    assert_eq!(r.try_read(&mut buf), Ok(None));
    assert_eq!(r.try_read(&mut []), Ok(Some(0)));
    // The timed forms (std only: they need a clock).
    #[cfg(feature = "std")]
    {
        assert_eq!(
            r.read_timeout(&mut buf, Duration::from_millis(10)),
            Err(PipeError::TimedOut)
        );
        assert_eq!(
            r.read_deadline(&mut buf, Instant::now()),
            Err(PipeError::TimedOut)
        );
        assert_eq!(
            std::io::Error::from(PipeError::TimedOut).kind(),
            std::io::ErrorKind::TimedOut
        );
    }
    w.write(b"ok").unwrap();
    assert_eq!(
        common::read_timeout(&mut r, &mut buf, Duration::from_secs(5)),
        Ok(2)
    );
    assert_eq!(r.available(), 0);
    w.close().unwrap();
    assert_eq!(r.try_read(&mut buf), Ok(Some(0)));
}

#[test]
fn blocked_reader_wakes_on_write_and_close() {
    let q = queue();
    let (mut w, f) = pipe(&q, "wake", small()).unwrap();
    let mut r = f.reader().unwrap();
    let t = thread::spawn(move || read_to_end(&mut r, 64).unwrap());
    // Wait until the reader is really asleep in its read.
    while w.waiting_readers() == 0 {
        thread::yield_now();
    }
    w.write(b"late").unwrap();
    w.close().unwrap();
    assert_eq!(t.join().unwrap(), b"late");
}

#[test]
fn async_reader_wakes_on_write() {
    let q = queue();
    let (mut w, f) = pipe(&q, "async", small()).unwrap();
    let mut r = f.reader().unwrap();
    let t = thread::spawn(move || {
        let mut buf = [0u8; 8];
        let n = block_on(r.read_async(&mut buf)).unwrap();
        buf[..n].to_vec()
    });
    while w.waiting_readers() == 0 {
        thread::yield_now();
    }
    w.write(b"wake").unwrap();
    assert_eq!(t.join().unwrap(), b"wake");
}

#[test]
fn dropping_the_writer_closes() {
    let q = queue();
    let (mut w, f) = pipe(&q, "drop", small()).unwrap();
    let mut r = f.reader().unwrap();
    w.write(b"bye").unwrap();
    drop(w);
    assert_eq!(read_to_end(&mut r, 2).unwrap(), b"bye");
    assert_eq!(q.stats().handles, 0);
}

#[test]
fn foreign_unregister_of_the_handle_does_not_disturb_readers() {
    // Readers wait in their own slots, not on the handle: someone else
    // unregistering it changes nothing for them.
    let q = queue();
    let (mut w, f) = pipe(&q, "foreign", small()).unwrap();
    let mut r = f.reader().unwrap();
    q.unregister(w.handle()).unwrap();
    let t = thread::spawn(move || read_to_end(&mut r, 4));
    while w.waiting_readers() == 0 {
        thread::yield_now();
    }
    assert_eq!(w.write(b"still here"), Ok(10));
    w.close().unwrap();
    assert_eq!(t.join().unwrap().unwrap(), b"still here");
}

#[test]
fn readers_and_writer_in_many_threads_with_barrier_start() {
    // Readers created, started together, and the writer racing them.
    let q = queue();
    let (mut w, f) = pipe(&q, "barrier", Limits::default().segment_size(32)).unwrap();
    let data = stream(50_000);
    let go = Arc::new(Barrier::new(5));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let mut r = f.reader().unwrap();
            let go = go.clone();
            thread::spawn(move || {
                go.wait();
                read_to_end(&mut r, 13).unwrap()
            })
        })
        .collect();
    go.wait();
    for c in data.chunks(77) {
        write_all(&mut w, c);
    }
    drop(w);
    for t in threads {
        assert!(t.join().unwrap() == data);
    }
}

#[test]
fn embedded_io_blocking_traits() {
    use embedded_io::{Error as _, ErrorKind, Read, Write};
    let q = queue();
    let (mut w, f) = pipe(&q, "eio", small()).unwrap();
    let mut r = f.reader().unwrap();
    Write::write_all(&mut w, b"embedded-io").unwrap();
    Write::flush(&mut w).unwrap();
    let mut buf = [0u8; 11];
    Read::read_exact(&mut r, &mut buf).unwrap();
    assert_eq!(&buf, b"embedded-io");
    w.close().unwrap();
    assert_eq!(Read::read(&mut r, &mut buf), Ok(0));
    let e = Write::write(&mut w, b"x").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    assert_eq!(PipeError::Full { limit: 1 }.kind(), ErrorKind::OutOfMemory);
    assert_eq!(PipeError::Reader { errno: 1 }.kind(), ErrorKind::Other);
    assert_eq!(
        PipeError::BrokenPipe {
            writer_errno: Some(1)
        }
        .kind(),
        ErrorKind::BrokenPipe
    );
}

#[test]
fn embedded_io_async_traits() {
    use embedded_io_async::{Read, Write};
    let q = queue();
    let (mut w, f) = pipe(&q, "eio-async", small()).unwrap();
    let mut r = f.reader().unwrap();
    block_on(async {
        Write::write_all(&mut w, b"async bytes").await.unwrap();
        Write::flush(&mut w).await.unwrap();
        w.set_error(4).unwrap();
        let mut buf = [0u8; 11];
        Read::read_exact(&mut r, &mut buf).await.unwrap();
        assert_eq!(&buf, b"async bytes");
        assert_eq!(
            Read::read(&mut r, &mut buf).await,
            Err(PipeError::BrokenPipe {
                writer_errno: Some(4)
            })
        );
        assert_eq!(
            Write::write(&mut w, b"x").await,
            Err(PipeError::Failed { errno: 4 })
        );
    });
}

#[cfg(feature = "std")]
#[test]
fn std_io_traits() {
    use std::io::{ErrorKind, Read, Write};
    let q = queue();
    let (mut w, f) = pipe(&q, "stdio", small()).unwrap();
    let mut r = f.reader().unwrap();
    let data = stream(1000);
    Write::write_all(&mut w, &data).unwrap();
    Write::flush(&mut w).unwrap();
    w.close().unwrap();
    let mut got = Vec::new();
    Read::read_to_end(&mut r, &mut got).unwrap();
    assert_eq!(got, data);
    assert_eq!(
        Write::write(&mut w, b"x").unwrap_err().kind(),
        ErrorKind::BrokenPipe
    );
    // A failed writer surfaces as BrokenPipe after the drain; the source
    // error keeps the errno.
    let (mut w, f) = pipe(&q, "stdio-fail", small()).unwrap();
    let mut r = f.reader().unwrap();
    Write::write_all(&mut w, b"ab").unwrap();
    w.set_error(13).unwrap();
    let mut got = Vec::new();
    let e = Read::read_to_end(&mut r, &mut got).unwrap_err();
    assert_eq!(got, b"ab");
    assert_eq!(e.kind(), ErrorKind::BrokenPipe);
    let inner = e.into_inner().unwrap().downcast::<PipeError>().unwrap();
    assert_eq!(
        *inner,
        PipeError::BrokenPipe {
            writer_errno: Some(13)
        }
    );
}

#[test]
fn huge_initial_capacity_is_a_typed_error_and_leaks_nothing() {
    let q = queue();
    let before = q.stats().handles;
    for (seg, initial) in [
        (16, usize::MAX),
        (1 << 30, usize::MAX),
        (4096, usize::MAX / 2),
        (16, 1usize << 62),
    ] {
        let limits = Limits::default()
            .max_bytes(u64::MAX)
            .segment_size(seg)
            .initial_capacity(initial);
        match pipe(&q, "huge", limits) {
            Err(e @ PipeError::OutOfMemory { .. }) => {
                assert_eq!(e.errno(), notification_queue::mempipe::ENOMEM);
                #[cfg(feature = "std")]
                assert_eq!(
                    std::io::Error::from(e).kind(),
                    std::io::ErrorKind::OutOfMemory
                );
            }
            other => panic!("seg {seg}, initial {initial}: {:?}", other.map(|_| ())),
        }
        assert_eq!(q.stats().handles, before, "handle leaked");
    }
    // The queue is intact: a normal pipe still works.
    let (mut w, f) = pipe(&q, "after", small()).unwrap();
    let mut r = f.reader().unwrap();
    assert_eq!(w.write(b"ok"), Ok(2));
    assert_eq!(r.read(&mut [0u8; 4]), Ok(2));
}

#[test]
fn one_byte_segments_sealed_mid_stream_keep_the_tail() {
    // Once found by fuzzing (the committed `regression-seg1-seal-tail`
    // seed): one-byte segments, a byte limit, a reader that read everything,
    // the factory sealed, then more bytes: the reader gets exactly the tail.
    let q = NotificationQueue::new(Config::default().max_waiters_per_handle(8));
    let limits = Limits::default()
        .segment_size(1)
        .max_bytes(127)
        .max_readers(2)
        .initial_capacity(2);
    let (mut w, f) = pipe(&q, "seg1", limits).unwrap();
    assert_eq!(w.write(&[145, 255, 255, 255, 85]), Ok(5));
    let mut r = f.reader().unwrap();
    let mut buf = [0u8; 73];
    assert_eq!(
        common::read_timeout(&mut r, &mut buf, Duration::ZERO),
        Ok(5)
    );
    assert_eq!(&buf[..5], &[145, 255, 255, 255, 85]);
    f.seal();
    assert_eq!(w.write(&[165, 74]), Ok(2));
    w.close().unwrap();
    assert_eq!(read_to_end(&mut r, 80).unwrap(), [165, 74]);
    drop((r, w));
    assert_eq!(q.stats().handles, 0);
}
