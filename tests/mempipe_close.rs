//! MemPipe: explicit close of either end, and the writer's state as a
//! reader sees it without reading.

use notification_queue::mempipe::{ENOSPC, EPIPE, Limits, PipeError, WriterState, pipe};
use notification_queue::{Config, NotificationQueue};

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

fn small() -> Limits {
    Limits::default().segment_size(16)
}

#[test]
fn writer_close_returns_ebadf_the_second_time() {
    let q = queue();
    let (mut w, f) = pipe(&q, "close", small()).unwrap();
    let mut r = f.reader().unwrap();
    w.write(b"ab").unwrap();
    assert_eq!(w.close(), Ok(()));
    assert!(w.is_closed());
    let e = w.close().unwrap_err();
    assert_eq!(e, PipeError::Closed);
    assert_eq!(e.errno(), 9);
    assert_eq!(w.write(b"x"), Err(PipeError::Closed));
    assert_eq!(w.set_error(5), Err(PipeError::Closed));
    let mut buf = [0u8; 4];
    assert_eq!(r.read(&mut buf), Ok(2));
    assert_eq!(r.read(&mut buf), Ok(0));
}

#[test]
fn closing_a_failed_writer_keeps_its_error_for_readers() {
    let q = queue();
    let (mut w, f) = pipe(&q, "fail-close", small()).unwrap();
    let mut r = f.reader().unwrap();
    w.set_error(5).unwrap();
    assert_eq!(w.close(), Ok(()));
    assert_eq!(w.close(), Err(PipeError::Closed));
    assert_eq!(w.write(b"x"), Err(PipeError::Closed), "EBADF after close");
    assert_eq!(w.error(), Some(5));
    assert_eq!(w.state(), WriterState::Failed(5));
    assert_eq!(r.writer_state(), WriterState::Failed(5));
    assert_eq!(
        r.read(&mut [0u8; 1]),
        Err(PipeError::BrokenPipe {
            writer_errno: Some(5)
        })
    );
}

#[test]
fn reader_close_returns_ebadf_the_second_time_and_reads_fail() {
    let q = queue();
    let (mut w, f) = pipe(&q, "rclose", small()).unwrap();
    let mut r = f.reader().unwrap();
    let _other = f.reader().unwrap();
    w.write(b"abc").unwrap();
    assert_eq!(f.readers(), 2);
    assert_eq!(r.close(), Ok(()));
    assert_eq!(f.readers(), 1, "the reader left at once");
    assert_eq!(r.close(), Err(PipeError::Closed));
    assert_eq!(r.try_read(&mut [0u8; 4]), Err(PipeError::Closed));
    assert_eq!(r.read(&mut [0u8; 4]), Err(PipeError::Closed));
    drop(r); // dropping a closed reader changes nothing
    assert_eq!(f.readers(), 1);
    assert_eq!(w.write(b"d"), Ok(1));
}

#[test]
fn reader_close_frees_its_hold_on_the_stream_at_once() {
    let q = queue();
    let (mut w, f) = pipe(&q, "hold", small().max_bytes(48)).unwrap();
    let mut slow = f.reader().unwrap();
    let mut fast = f.reader().unwrap();
    f.seal(); // streaming mode
    let data = [7u8; 48];
    assert_eq!(w.write(&data), Ok(48));
    let mut buf = [0u8; 64];
    assert_eq!(fast.read(&mut buf), Ok(48));
    assert!(matches!(w.write(b"x"), Err(PipeError::Full { .. })));
    // The slow reader still exists (not dropped) but closes: room at once.
    slow.close().unwrap();
    assert_eq!(w.write(b"x"), Ok(1));
    // Closing the last reader too: the next write is a broken pipe.
    fast.close().unwrap();
    assert_eq!(
        w.write(b"y"),
        Err(PipeError::BrokenPipe { writer_errno: None })
    );
    assert_eq!(w.error(), Some(EPIPE));
}

#[test]
fn reader_sees_writer_state_while_data_remains() {
    let q = queue();
    let (mut w, f) = pipe(&q, "state", small().max_bytes(8)).unwrap();
    let mut r = f.reader().unwrap();
    assert_eq!(r.writer_state(), WriterState::Open);
    w.write(b"abc").unwrap();
    w.close().unwrap();
    assert_eq!(r.available(), 3);
    assert_eq!(r.writer_state(), WriterState::Closed, "before reading");
    assert_eq!(r.read(&mut [0u8; 8]), Ok(3));
    assert_eq!(r.writer_state(), WriterState::Closed);

    let (mut w, f) = pipe(&q, "state2", small().max_bytes(4)).unwrap();
    let r = f.reader().unwrap();
    assert_eq!(w.write(b"abcdef"), Ok(4));
    assert!(w.write(b"g").is_err());
    assert_eq!(r.available(), 4);
    assert_eq!(r.writer_state(), WriterState::Failed(ENOSPC));
    assert_eq!(w.state(), WriterState::Failed(ENOSPC));
}
