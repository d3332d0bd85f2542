//! MemPipe's MergedReader: several pipes read as one stream, in order.

mod common;

use notification_queue::mempipe::{Limits, MergedReader, PipeError, pipe};
use notification_queue::{Config, NotificationQueue};

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

#[test]
fn pipes_are_drained_in_order_then_eof() {
    let q = queue();
    let mut ws = Vec::new();
    let mut rs = Vec::new();
    for i in 0..3 {
        let (w, f) = pipe(&q, format!("p{i}"), Limits::default().segment_size(16)).unwrap();
        rs.push(f.reader().unwrap());
        ws.push(w);
    }
    let mut m = MergedReader::new(rs);
    // Written out of order: the merged stream is still in list order.
    for i in [2usize, 0, 1] {
        ws[i].write(format!("<{i}>").as_bytes()).unwrap();
    }
    let mut buf = [0u8; 64];
    assert_eq!(m.try_read(&mut buf), Ok(Some(3)));
    assert_eq!(&buf[..3], b"<0>");
    assert_eq!(m.try_read(&mut buf), Ok(None), "pipe 0 is still open");
    ws[0].close().unwrap();
    ws[1].close().unwrap();
    assert_eq!(m.read(&mut buf), Ok(3));
    assert_eq!(&buf[..3], b"<1>");
    assert_eq!(m.remaining(), 2);
    assert_eq!(m.read(&mut []), Ok(0), "an empty read is not EOF");
    assert_eq!(m.remaining(), 2);
    ws[2].close().unwrap();
    assert_eq!(common::read_to_end(&mut m), b"<2>");
    assert_eq!(m.remaining(), 0);
    assert_eq!(m.try_read(&mut buf), Ok(Some(0)));
}

#[test]
fn errors_pass_through_and_skip_moves_on() {
    let q = queue();
    let (mut w1, f1) = pipe(&q, "a", Limits::default()).unwrap();
    let (mut w2, f2) = pipe(&q, "b", Limits::default()).unwrap();
    let mut m = MergedReader::new([f1.reader().unwrap(), f2.reader().unwrap()]);
    w1.write(b"ab").unwrap();
    w1.set_error(5).unwrap();
    w2.write(b"cd").unwrap();
    w2.close().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(m.read(&mut buf), Ok(2));
    let e = PipeError::BrokenPipe {
        writer_errno: Some(5),
    };
    assert_eq!(m.read(&mut buf), Err(e));
    assert_eq!(m.read(&mut buf), Err(e), "the error stays");
    assert!(m.skip());
    assert_eq!(futures::executor::block_on(m.read_async(&mut buf)), Ok(2));
    assert_eq!(&buf[..2], b"cd");
    assert_eq!(futures::executor::block_on(m.read_async(&mut buf)), Ok(0));
}

#[test]
fn blocking_read_waits_for_the_current_pipe() {
    let q = queue();
    let (mut w1, f1) = pipe(&q, "a", Limits::default()).unwrap();
    let (mut w2, f2) = pipe(&q, "b", Limits::default()).unwrap();
    let mut m = MergedReader::new([f1.reader().unwrap(), f2.reader().unwrap()]);
    let t = std::thread::spawn(move || common::read_to_end(&mut m));
    w2.write(b"second").unwrap();
    w2.close().unwrap();
    w1.write(b"first ").unwrap();
    w1.close().unwrap();
    assert_eq!(t.join().unwrap(), b"first second");
}
