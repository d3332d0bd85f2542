//! MemPipe error rules: what subscribers are told, sticky EPIPE, a full pipe
//! that can never drain, invalid errnos.

mod common;

use notification_queue::mempipe::{
    CLOSED_ARG, EINVAL, ENOSPC, EPIPE, Limits, MAX_ERRNO, PipeError, PipeEvent, Reader, pipe,
};
use notification_queue::{Config, NotificationQueue};
use std::time::Duration;

fn queue() -> NotificationQueue {
    NotificationQueue::new(Config::default())
}

fn small() -> Limits {
    Limits::default().segment_size(16)
}

/// Everything the subscription holds (it never blocks).
fn args(sub: &mut notification_queue::Subscription) -> Vec<i64> {
    let mut out = Vec::new();
    while let Ok(a) = sub.try_recv() {
        out.push(a);
    }
    out
}

fn drain(r: &mut Reader) -> (Vec<u8>, Result<(), PipeError>) {
    let mut out = Vec::new();
    let mut buf = [0u8; 7];
    loop {
        match common::read_timeout(r, &mut buf, Duration::from_secs(5)) {
            Ok(0) => return (out, Ok(())),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Err(e)),
        }
    }
}

#[test]
fn subscriber_tells_failure_with_errno_from_close() {
    let q = queue();
    let (mut w, f) = pipe(&q, "failing", small()).unwrap();
    let _r = f.reader().unwrap();
    let mut sub = q.subscribe(w.handle(), 8, "supervisor").unwrap();
    w.write(b"abc").unwrap();
    w.set_error(1).unwrap(); // EPERM: must not look like a close
    let got = args(&mut sub);
    assert_eq!(got, vec![3, -1]);
    let events: Vec<_> = got.into_iter().map(PipeEvent::from_arg).collect();
    assert_eq!(
        events,
        vec![Some(PipeEvent::Data(3)), Some(PipeEvent::Failed(1))]
    );

    let (mut w, f) = pipe(&q, "closing", small()).unwrap();
    let _r = f.reader().unwrap();
    let mut sub = q.subscribe(w.handle(), 8, "supervisor").unwrap();
    w.close().unwrap();
    let got = args(&mut sub);
    assert_eq!(got, vec![CLOSED_ARG]);
    assert_eq!(PipeEvent::from_arg(got[0]), Some(PipeEvent::Closed));
}

#[test]
fn subscriber_sees_epipe_and_enospc_failures() {
    let q = queue();
    let (mut w, f) = pipe(&q, "broken", small()).unwrap();
    let mut sub = q.subscribe(w.handle(), 8, "supervisor").unwrap();
    drop(f.reader().unwrap());
    assert!(w.write(b"x").is_err());
    let got: Vec<_> = args(&mut sub)
        .into_iter()
        .map(PipeEvent::from_arg)
        .collect();
    assert_eq!(got, vec![Some(PipeEvent::Failed(EPIPE))]);

    let (mut w, _f) = pipe(&q, "nospace", small().max_bytes(2)).unwrap();
    let mut sub = q.subscribe(w.handle(), 8, "supervisor").unwrap();
    assert_eq!(w.write(b"abc"), Ok(2));
    assert!(w.write(b"c").is_err());
    let got: Vec<_> = args(&mut sub)
        .into_iter()
        .map(PipeEvent::from_arg)
        .collect();
    assert_eq!(
        got,
        vec![Some(PipeEvent::Data(2)), Some(PipeEvent::Failed(ENOSPC))]
    );
}

#[test]
fn epipe_sticks_once_every_reader_has_gone() {
    let q = queue();
    let (mut w, f) = pipe(&q, "epipe", small()).unwrap();
    let r = f.reader().unwrap();
    assert_eq!(w.write(b"abc"), Ok(3));
    drop(r);
    assert_eq!(
        w.write(b"def"),
        Err(PipeError::BrokenPipe { writer_errno: None })
    );
    assert_eq!(w.error(), Some(EPIPE), "the writer stays failed with EPIPE");
    // A reader joining afterwards does not revive the writer: it reads what
    // was written, then the writer's EPIPE.
    let mut late = f.reader().unwrap();
    assert_eq!(
        w.write(b"ghi"),
        Err(PipeError::BrokenPipe { writer_errno: None })
    );
    assert_eq!(
        drain(&mut late),
        (
            b"abc".to_vec(),
            Err(PipeError::BrokenPipe {
                writer_errno: Some(EPIPE)
            })
        )
    );
}

#[test]
fn writes_before_any_reader_succeed_and_wait_for_late_readers() {
    let q = queue();
    let (mut w, f) = pipe(&q, "early", small()).unwrap();
    assert_eq!(w.write(b"early"), Ok(5));
    assert_eq!(w.error(), None);
    let mut r = f.reader().unwrap();
    w.write(b"!").unwrap();
    w.close().unwrap();
    assert_eq!(drain(&mut r), (b"early!".to_vec(), Ok(())));
}

#[test]
fn full_pipe_that_can_never_drain_fails_with_enospc_and_wakes_readers() {
    let q = queue();
    // Keep-everything mode: the factory lives, so nothing is ever released.
    let (mut w, f) = pipe(&q, "full", small().max_bytes(10)).unwrap();
    let mut r = f.reader().unwrap();
    let reader = std::thread::spawn(move || drain(&mut r));
    assert_eq!(w.write(b"0123456789ab"), Ok(10));
    assert!(matches!(w.write(b"x"), Err(PipeError::Full { limit: 10 })));
    assert_eq!(w.error(), Some(ENOSPC));
    assert_eq!(
        reader.join().unwrap(),
        (
            b"0123456789".to_vec(),
            Err(PipeError::BrokenPipe {
                writer_errno: Some(ENOSPC)
            })
        )
    );
    drop(f);
}

#[test]
fn set_error_zero_is_rejected() {
    let q = queue();
    let (mut w, f) = pipe(&q, "zero", small()).unwrap();
    let _r = f.reader().unwrap();
    for bad in [0, -1, MAX_ERRNO + 1, i32::MIN, i32::MAX] {
        let e = w.set_error(bad).unwrap_err();
        assert_eq!(e, PipeError::InvalidErrno { errno: bad });
        assert_eq!(e.errno(), EINVAL);
    }
    assert_eq!(w.error(), None);
    assert_eq!(w.write(b"a"), Ok(1));
    assert_eq!(w.set_error(MAX_ERRNO), Ok(()));
    assert_eq!(w.error(), Some(MAX_ERRNO));
    // The first error stays.
    assert_eq!(w.set_error(3), Err(PipeError::Failed { errno: MAX_ERRNO }));
}

#[test]
fn broken_pipe_writer_keeps_failing_and_set_error_does_not_replace_it() {
    let q = queue();
    let (mut w, f) = pipe(&q, "sticky", small()).unwrap();
    f.seal(); // no reader can ever join
    for _ in 0..2 {
        assert_eq!(
            w.write(b"a"),
            Err(PipeError::BrokenPipe { writer_errno: None })
        );
        assert_eq!(
            w.write(b""),
            Err(PipeError::BrokenPipe { writer_errno: None })
        );
    }
    assert_eq!(w.error(), Some(EPIPE));
    assert_eq!(
        w.set_error(5),
        Err(PipeError::BrokenPipe { writer_errno: None })
    );
    assert_eq!(w.error(), Some(EPIPE));
}

#[test]
fn reader_set_error_rejects_invalid_errnos_and_changes_nothing() {
    let q = queue();
    let (mut w, f) = pipe(&q, "reader-errno", small()).unwrap();
    let mut r = f.reader().unwrap();
    w.write(b"abc").unwrap();
    for bad in [0, -1, MAX_ERRNO + 1, i32::MIN, i32::MAX] {
        let e = r.set_error(bad).unwrap_err();
        assert_eq!(e, PipeError::InvalidErrno { errno: bad });
        assert_eq!(e.errno(), EINVAL);
        assert_eq!(r.error(), None, "a refused errno sets nothing");
    }
    let mut buf = [0u8; 2];
    assert_eq!(r.try_read(&mut buf), Ok(Some(2)), "reads go on");
    // A valid one fails this reader only; a refused one later keeps it.
    assert_eq!(r.set_error(MAX_ERRNO), Ok(()));
    assert_eq!(r.set_error(0), Err(PipeError::InvalidErrno { errno: 0 }));
    assert_eq!(r.error(), Some(MAX_ERRNO));
    assert_eq!(
        r.try_read(&mut buf),
        Err(PipeError::Reader { errno: MAX_ERRNO })
    );
    assert_eq!(r.set_error(1), Ok(()), "a valid errno replaces it");
    assert_eq!(r.try_read(&mut buf), Err(PipeError::Reader { errno: 1 }));
    r.clear_error();
    assert_eq!(r.try_read(&mut buf), Ok(Some(1)));
    assert_eq!(w.error(), None, "the writer is untouched");
}
