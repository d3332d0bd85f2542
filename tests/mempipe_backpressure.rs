//! MemPipe back-pressure in streaming mode: writes that wait for space.

use notification_queue::mempipe::{ENOSPC, Limits, PipeError, Reader, pipe};
use notification_queue::{Config, NotificationQueue};
use std::future::Future;
use std::pin::{Pin, pin};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::thread;

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

fn stream(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 7 % 251) as u8).collect()
}

fn read_all(mut r: Reader) -> Result<Vec<u8>, PipeError> {
    let mut out = Vec::new();
    let mut buf = [0u8; 13];
    loop {
        match r.read(&mut buf)? {
            0 => return Ok(out),
            n => out.extend_from_slice(&buf[..n]),
        }
    }
}

#[cfg(feature = "std")]
#[test]
fn std_io_write_all_waits_for_a_slow_reader() {
    let q = queue();
    let (mut w, f) = pipe(&q, "io", Limits::default().segment_size(16).max_bytes(64)).unwrap();
    let r = f.reader().unwrap();
    f.seal();
    let reader = thread::spawn(move || read_all(r));
    let data = stream(64 << 10);
    std::io::Write::write_all(&mut w, &data).unwrap();
    w.close().unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), data);
}

#[test]
fn embedded_io_write_all_waits_for_a_slow_reader() {
    let q = queue();
    let (mut w, f) = pipe(&q, "eio", Limits::default().segment_size(16).max_bytes(64)).unwrap();
    let r = f.reader().unwrap();
    f.seal();
    let reader = thread::spawn(move || read_all(r));
    let data = stream(64 << 10);
    embedded_io::Write::write_all(&mut w, &data).unwrap();
    w.close().unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), data);
}

/// A waker that counts its wakes.
#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn counting() -> (Arc<Count>, Waker) {
    let c = Arc::new(Count::default());
    (c.clone(), Waker::from(c))
}

fn poll<F: Future>(f: Pin<&mut F>, w: &Waker) -> Poll<F::Output> {
    f.poll(&mut Context::from_waker(w))
}

#[test]
fn async_write_waits_until_the_slowest_reader_passes_a_segment_end() {
    let q = queue();
    let (mut w, f) = pipe(
        &q,
        "async",
        Limits::default().segment_size(16).max_bytes(32),
    )
    .unwrap();
    let mut slow = f.reader().unwrap();
    let mut fast = f.reader().unwrap();
    f.seal();
    assert_eq!(w.write(&[1u8; 32]), Ok(32));
    let mut buf = [0u8; 64];
    assert_eq!(fast.read(&mut buf), Ok(32));
    let (count, waker) = counting();
    let mut fut = pin!(w.write_async(b"next"));
    assert!(poll(fut.as_mut(), &waker).is_pending());
    // Within the first segment: no room can appear, nobody is woken.
    assert_eq!(slow.read(&mut buf[..10]), Ok(10));
    assert_eq!(count.0.load(Ordering::SeqCst), 0);
    assert!(poll(fut.as_mut(), &waker).is_pending());
    // Exactly at the segment end: still held (the reader may follow `next`).
    assert_eq!(slow.read(&mut buf[..6]), Ok(6));
    assert!(poll(fut.as_mut(), &waker).is_pending());
    // Past it: the writer is woken and writes.
    assert_eq!(slow.read(&mut buf[..1]), Ok(1));
    assert_eq!(count.0.load(Ordering::SeqCst), 1, "woken once");
    assert_eq!(poll(fut.as_mut(), &waker), Poll::Ready(Ok(4)));
}

#[test]
fn waiting_writer_gets_broken_pipe_when_the_last_reader_closes() {
    let q = queue();
    let (mut w, f) = pipe(
        &q,
        "epipe",
        Limits::default().segment_size(16).max_bytes(32),
    )
    .unwrap();
    let mut r = f.reader().unwrap();
    f.seal();
    assert_eq!(w.write(&[1u8; 40]), Ok(32));
    let (count, waker) = counting();
    {
        let mut fut = pin!(w.write_async(b"x"));
        assert!(poll(fut.as_mut(), &waker).is_pending());
        r.close().unwrap();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            1,
            "the close woke the writer"
        );
        assert_eq!(
            poll(fut.as_mut(), &waker),
            Poll::Ready(Err(PipeError::BrokenPipe { writer_errno: None }))
        );
    }
    assert_eq!(w.error(), Some(notification_queue::mempipe::EPIPE));
}

#[test]
fn blocking_write_wakes_when_a_reader_thread_drains() {
    let q = queue();
    let (mut w, f) = pipe(
        &q,
        "block",
        Limits::default().segment_size(16).max_bytes(32),
    )
    .unwrap();
    let r = f.reader().unwrap();
    f.seal();
    assert_eq!(w.write(&[1u8; 32]), Ok(32));
    let (tx, rx) = std::sync::mpsc::channel();
    let reader = thread::spawn(move || {
        // Start only once the writer is known to be blocked on a full pipe.
        rx.recv().unwrap();
        read_all(r)
    });
    assert!(matches!(w.write(b"more"), Err(PipeError::Full { .. })));
    tx.send(()).unwrap();
    assert_eq!(w.write_wait(b"more"), Ok(4));
    w.close().unwrap();
    let mut expect = vec![1u8; 32];
    expect.extend_from_slice(b"more");
    assert_eq!(reader.join().unwrap().unwrap(), expect);
}

#[cfg(feature = "std")]
#[test]
fn write_timeout_and_deadline_time_out_writing_nothing() {
    use notification_queue::mempipe::WriterState;
    use std::time::{Duration, Instant};
    let q = queue();
    let (mut w, f) = pipe(
        &q,
        "timeout",
        Limits::default().segment_size(16).max_bytes(32),
    )
    .unwrap();
    let mut r = f.reader().unwrap();
    f.seal();
    assert_eq!(w.write(&[1u8; 32]), Ok(32));
    let t0 = Instant::now();
    assert_eq!(
        w.write_timeout(b"x", Duration::from_millis(20)),
        Err(PipeError::TimedOut)
    );
    assert!(t0.elapsed() >= Duration::from_millis(20));
    assert_eq!(
        w.write_deadline(b"x", Instant::now()),
        Err(PipeError::TimedOut)
    );
    assert_eq!(w.tell(), 32, "nothing written");
    assert_eq!(w.state(), WriterState::Open);
    let mut buf = [0u8; 64];
    assert_eq!(r.read(&mut buf), Ok(32));
    assert_eq!(w.write_timeout(b"x", Duration::from_secs(5)), Ok(1));
}

#[test]
fn waiting_write_while_keeping_everything_fails_with_enospc_at_once() {
    let q = queue();
    let (mut w, f) = pipe(&q, "keep", Limits::default().segment_size(16).max_bytes(8)).unwrap();
    let _r = f.reader().unwrap();
    assert_eq!(w.write_wait(&[0u8; 10]), Ok(8));
    assert_eq!(w.write_wait(b"x"), Err(PipeError::Full { limit: 8 }));
    assert_eq!(w.error(), Some(ENOSPC));
    #[cfg(feature = "std")]
    {
        let e = std::io::Write::write_all(&mut w, b"y").unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::Other);
    }
}

#[test]
fn streaming_limit_below_a_segment_still_flows() {
    let q = queue();
    let (mut w, f) = pipe(&q, "tiny", Limits::default().segment_size(16).max_bytes(4)).unwrap();
    let r = f.reader().unwrap();
    f.seal();
    let reader = thread::spawn(move || read_all(r));
    let data = stream(4096);
    #[cfg(feature = "std")]
    std::io::Write::write_all(&mut w, &data).unwrap();
    #[cfg(not(feature = "std"))]
    embedded_io::Write::write_all(&mut w, &data).unwrap();
    w.close().unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), data);
}

#[test]
fn async_io_write_all_through_a_small_pipe() {
    let q = queue();
    let (mut w, f) = pipe(&q, "eioa", Limits::default().segment_size(16).max_bytes(48)).unwrap();
    let r = f.reader().unwrap();
    f.seal();
    let reader = thread::spawn(move || read_all(r));
    let data = stream(32 << 10);
    futures::executor::block_on(embedded_io_async::Write::write_all(&mut w, &data)).unwrap();
    w.close().unwrap();
    assert_eq!(reader.join().unwrap().unwrap(), data);
}
