//! MemPipe's PipeTable: latent pipes keyed by the caller's ids.

// The pipe table needs `std`.
#![cfg(feature = "std")]

use notification_queue::mempipe::{
    ENXIO, Limits, PipeError, PipeInfoState, PipeTable, ReaderInfo, WriterState,
};
use notification_queue::{Config, NotificationQueue};
use std::future::Future;
use std::pin::pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

fn table() -> PipeTable<(u32, u32)> {
    let q = NotificationQueue::new(Config::default());
    PipeTable::new(&q, Limits::default().segment_size(16))
}

fn state(t: &PipeTable<(u32, u32)>, key: (u32, u32)) -> Option<PipeInfoState> {
    t.list().into_iter().find(|i| i.key == key).map(|i| i.state)
}

#[test]
fn reader_opened_before_its_writer_is_woken_by_its_creation() {
    let t = table();
    let c = Arc::new(Count::default());
    let waker = Waker::from(c.clone());
    let mut open = pin!(t.open_reader_async(&(1, 1)));
    assert!(
        open.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert_eq!(
        state(&t, (1, 1)),
        Some(PipeInfoState::Latent { waiting: 1 })
    );
    let mut w = t.create_writer((1, 1)).unwrap();
    assert_eq!(c.0.load(Ordering::SeqCst), 1);
    let Poll::Ready(Ok(mut r)) = open.as_mut().poll(&mut Context::from_waker(&waker)) else {
        panic!("not ready after the writer was created")
    };
    w.write(b"abc").unwrap();
    w.close().unwrap();
    let mut buf = [0u8; 8];
    assert_eq!(r.read(&mut buf), Ok(3));
    assert_eq!(r.read(&mut buf), Ok(0));
}

#[test]
fn producer_end_without_the_writer_fails_waiting_and_later_openers() {
    let t = table();
    let c = Arc::new(Count::default());
    let waker = Waker::from(c.clone());
    let mut open = pin!(t.open_reader_async(&(2, 0)));
    assert!(
        open.as_mut()
            .poll(&mut Context::from_waker(&waker))
            .is_pending()
    );
    assert!(t.try_open_reader(&(2, 1)).unwrap().is_none());
    let _live = t.create_writer((2, 2)).unwrap();
    assert_eq!(t.close_all_leftover_writers(), 2, "the two latent keys");
    assert_eq!(c.0.load(Ordering::SeqCst), 1);
    let got = open.as_mut().poll(&mut Context::from_waker(&waker));
    assert!(matches!(got, Poll::Ready(Err(PipeError::NoWriter))));
    let e = t.open_reader(&(2, 1)).unwrap_err();
    assert_eq!(e, PipeError::NoWriter);
    assert_eq!(e.errno(), ENXIO);
    assert_eq!(state(&t, (2, 1)), Some(PipeInfoState::Abandoned));
    assert!(
        t.try_open_reader(&(2, 2)).unwrap().is_some(),
        "live keys stay"
    );
    // A later producer may create it after all.
    let _w = t.create_writer((2, 1)).unwrap();
    assert!(t.try_open_reader(&(2, 1)).unwrap().is_some());
}

#[test]
fn second_writer_is_exists_and_list_shows_readers_positions_states() {
    let t = table();
    let mut w = t.create_writer((3, 1)).unwrap();
    assert_eq!(t.create_writer((3, 1)).unwrap_err(), PipeError::Exists);
    let mut a = t.open_reader(&(3, 1)).unwrap();
    let b = t
        .try_open_reader_with_hint(&(3, 1), "cat")
        .unwrap()
        .unwrap();
    assert_eq!((a.id(), a.hint()), (0, None));
    assert_eq!((b.id(), b.hint()), (1, Some("cat")));
    w.write(b"hello").unwrap();
    assert_eq!(a.read(&mut [0u8; 2]), Ok(2));
    w.set_error(5).unwrap();
    assert_eq!(
        state(&t, (3, 1)),
        Some(PipeInfoState::Live {
            writer: WriterState::Failed(5),
            written: 5,
            readers: vec![
                ReaderInfo {
                    id: 0,
                    hint: None,
                    position: 2
                },
                ReaderInfo {
                    id: 1,
                    hint: Some("cat".into()),
                    position: 0
                },
            ],
        })
    );
    assert!(t.remove(&(3, 1)));
    assert_eq!(state(&t, (3, 1)), None);
    assert!(!t.remove(&(3, 1)));
}

#[test]
fn timed_open_times_out_and_is_forgotten() {
    let t = table();
    let e = t
        .open_reader_deadline(&(4, 1), Instant::now() + Duration::from_millis(10))
        .unwrap_err();
    assert_eq!(e, PipeError::TimedOut);
    assert_eq!(
        state(&t, (4, 1)),
        Some(PipeInfoState::Latent { waiting: 0 })
    );
    // A dropped async open is forgotten too.
    {
        let mut open = pin!(t.open_reader_async(&(4, 1)));
        assert!(
            open.as_mut()
                .poll(&mut Context::from_waker(Waker::noop()))
                .is_pending()
        );
        assert_eq!(
            state(&t, (4, 1)),
            Some(PipeInfoState::Latent { waiting: 1 })
        );
    }
    assert_eq!(
        state(&t, (4, 1)),
        Some(PipeInfoState::Latent { waiting: 0 })
    );
}

#[test]
fn blocking_open_from_another_thread_gets_the_stream() {
    let t = Arc::new(table());
    let t2 = t.clone();
    let reader = std::thread::spawn(move || {
        let mut r = t2.open_reader(&(5, 1)).unwrap();
        let mut out = Vec::new();
        std::io::Read::read_to_end(&mut r, &mut out).unwrap();
        out
    });
    let mut w = t.create_writer((5, 1)).unwrap();
    w.write(b"data").unwrap();
    w.close().unwrap();
    assert_eq!(reader.join().unwrap(), b"data");
}

/// A waker whose clone and drop call back into the table (client code a
/// runtime controls): the table must never run them under its lock.
mod reentrant {
    use super::*;
    use std::task::{RawWaker, RawWakerVTable};

    type Table = PipeTable<(u32, u32)>;

    fn table_of(data: *const ()) -> &'static Table {
        // SAFETY: `data` is the pointer of the `Arc<Table>` the test keeps
        // alive (leaked below) for the whole process.
        unsafe { &*(data as *const Table) }
    }
    fn clone(data: *const ()) -> RawWaker {
        let _ = table_of(data).list(); // re-enters the table
        RawWaker::new(data, &VTABLE)
    }
    fn wake(data: *const ()) {
        drop_waker(data);
    }
    fn wake_by_ref(_: *const ()) {}
    fn drop_waker(data: *const ()) {
        let _ = table_of(data).list(); // re-enters the table
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);

    /// Runs `f` on a thread and fails if it does not finish within 10 s (a
    /// deadlock on the table's lock; a passing run takes microseconds).
    fn finishes(name: &str, f: impl FnOnce() + Send + 'static) {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            f();
            let _ = tx.send(());
        });
        assert!(
            rx.recv_timeout(Duration::from_secs(10)).is_ok(),
            "{name}: deadlocked on the table's lock"
        );
    }

    #[test]
    fn waker_clone_and_drop_run_outside_the_table_lock() {
        let t: &'static Table = Box::leak(Box::new(table()));
        finishes("latent open, its cancel, creation", move || {
            // SAFETY: the vtable's functions uphold the `RawWaker` contract
            // (no data is owned; the table outlives every clone).
            let waker =
                unsafe { Waker::from_raw(RawWaker::new(t as *const Table as *const (), &VTABLE)) };
            let mut cx = Context::from_waker(&waker);
            {
                let mut open = pin!(t.open_reader_async(&(1, 1)));
                assert!(open.as_mut().poll(&mut cx).is_pending());
                assert!(open.as_mut().poll(&mut cx).is_pending());
            } // dropped: forgets its waker
            let mut open = pin!(t.open_reader_async(&(1, 1)));
            assert!(open.as_mut().poll(&mut cx).is_pending());
            let _w = t.create_writer((1, 1)).unwrap(); // wakes it
            assert!(matches!(open.as_mut().poll(&mut cx), Poll::Ready(Ok(_))));
            let mut open = pin!(t.open_reader_async(&(2, 1)));
            assert!(open.as_mut().poll(&mut cx).is_pending());
            assert_eq!(t.close_all_leftover_writers(), 1);
            assert!(matches!(
                open.as_mut().poll(&mut cx),
                Poll::Ready(Err(PipeError::NoWriter))
            ));
            assert!(t.remove(&(1, 1)));
        });
    }
}
