//! The `tracing` feature's events: each category with its target, level and
//! fields, recorded by a small hand-written subscriber. Every event is also
//! re-entered: the subscriber calls back into the crate (taking the lock the
//! event's code path would have held), so an event emitted under a crate
//! lock deadlocks, and the watchdog below turns that into a failure.
#![cfg(feature = "tracing")]

use notification_queue::mempipe::{self, ENOSPC, EPIPE, Limits, PipeError, PipeStorage};
use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError, TryRecvError};
use std::collections::BTreeMap;
use std::fmt;
use std::future::Future;
use std::pin::pin;
use std::sync::{Arc, Mutex, mpsc};
use std::task::{Context, Wake, Waker};
use std::time::Duration;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record};
use tracing::{Event, Level, Metadata, Subscriber};

#[derive(Debug, Clone)]
struct Recorded {
    target: String,
    level: Level,
    fields: BTreeMap<String, String>,
}

impl Recorded {
    fn field(&self, name: &str) -> Option<&str> {
        self.fields.get(name).map(String::as_str)
    }
}

type Hook = Box<dyn Fn(&Recorded) + Send + Sync>;

/// Records every event; runs `hook` on each (outside its own lock).
#[derive(Clone, Default)]
struct Recorder {
    events: Arc<Mutex<Vec<Recorded>>>,
    hook: Arc<Mutex<Option<Hook>>>,
}

impl Recorder {
    fn events(&self) -> Vec<Recorded> {
        self.events.lock().unwrap().clone()
    }

    /// The events of `target` with message `message`.
    fn find(&self, target: &str, message: &str) -> Vec<Recorded> {
        self.events()
            .into_iter()
            .filter(|e| e.target == target && e.field("message") == Some(message))
            .collect()
    }

    fn one(&self, target: &str, message: &str) -> Recorded {
        let found = self.find(target, message);
        assert_eq!(found.len(), 1, "{target} / {message}: {:?}", self.events());
        found.into_iter().next().unwrap()
    }

    fn set_hook(&self, hook: impl Fn(&Recorded) + Send + Sync + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }
}

struct Fields<'a>(&'a mut BTreeMap<String, String>);

impl Visit for Fields<'_> {
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.0
            .insert(field.name().to_string(), format!("{value:?}"));
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        self.0.insert(field.name().to_string(), value.to_string());
    }
}

impl Subscriber for Recorder {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &Attributes<'_>) -> Id {
        Id::from_u64(1)
    }
    fn record(&self, _: &Id, _: &Record<'_>) {}
    fn record_follows_from(&self, _: &Id, _: &Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut fields = BTreeMap::new();
        event.record(&mut Fields(&mut fields));
        let rec = Recorded {
            target: event.metadata().target().to_string(),
            level: *event.metadata().level(),
            fields,
        };
        self.events.lock().unwrap().push(rec.clone());
        // Taken out while it runs (a hook may emit events itself).
        let hook = self.hook.lock().unwrap().take();
        if let Some(h) = &hook {
            h(&rec);
        }
        if let Some(h) = hook {
            self.hook.lock().unwrap().get_or_insert(h);
        }
    }
    fn enter(&self, _: &Id) {}
    fn exit(&self, _: &Id) {}
}

/// Runs `body` with a fresh recorder as the thread's subscriber, on its own
/// thread; fails (instead of hanging) if it does not finish in 20 s.
fn traced(body: impl FnOnce(&Recorder) + Send + 'static) {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let rec = Recorder::default();
        tracing::subscriber::with_default(rec.clone(), || body(&rec));
        let _ = tx.send(());
    });
    match rx.recv_timeout(Duration::from_secs(20)) {
        Ok(()) => {}
        Err(mpsc::RecvTimeoutError::Disconnected) => panic!("the traced body panicked"),
        Err(mpsc::RecvTimeoutError::Timeout) => {
            panic!("deadlock: an event was emitted under a crate lock")
        }
    }
}

#[test]
fn register_and_unregister_are_debug_events_with_the_hint() {
    traced(|rec| {
        let q = NotificationQueue::new(Config::default());
        let q2 = q.clone();
        // Re-entry: `stats` takes the registry lock.
        rec.set_hook(move |_| {
            let _ = q2.stats();
        });
        let h = q.register("worker").unwrap();
        let e = rec.one("notification_queue::handle", "handle registered");
        assert_eq!(e.level, Level::DEBUG);
        assert_eq!(e.field("hint"), Some("worker"));
        assert_eq!(e.field("index"), Some(h.index().to_string().as_str()));
        assert_eq!(
            e.field("generation"),
            Some(h.generation().to_string().as_str())
        );
        assert!(e.field("queue").is_some());
        q.unregister(h).unwrap();
        let e = rec.one("notification_queue::handle", "handle unregistered");
        assert_eq!(e.level, Level::DEBUG);
        assert_eq!(e.field("hint"), Some("worker"));
        assert_eq!(e.field("index"), Some(h.index().to_string().as_str()));
        // A refused unregister is no event.
        assert_eq!(q.unregister(h), Err(QueueError::StaleHandle));
        assert_eq!(
            rec.find("notification_queue::handle", "handle unregistered")
                .len(),
            1
        );
    });
}

#[test]
fn keyed_register_emits_after_releasing_the_shard() {
    traced(|rec| {
        let keyed = Arc::new(KeyedQueue::new(NotificationQueue::new(Config::default())));
        let k2 = keyed.clone();
        // Re-entry: looking the key up takes its shard lock.
        rec.set_hook(move |_| {
            let _ = k2.handle(&7u64);
        });
        let h = keyed.register(7u64, "seven").unwrap();
        let e = rec.one("notification_queue::handle", "handle registered");
        assert_eq!(e.field("hint"), Some("seven"));
        assert_eq!(e.field("index"), Some(h.index().to_string().as_str()));
    });
}

fn refusal(rec: &Recorder, kind: &str) -> Recorded {
    let found: Vec<_> = rec
        .find("notification_queue::limit", "operation refused by a limit")
        .into_iter()
        .filter(|e| e.field("kind") == Some(kind))
        .collect();
    assert_eq!(found.len(), 1, "{kind}: {:?}", rec.events());
    let e = found.into_iter().next().unwrap();
    assert_eq!(e.level, Level::WARN);
    e
}

#[test]
fn limit_refusals_are_warnings_with_the_limit_and_the_hint() {
    traced(|rec| {
        let q = NotificationQueue::new(
            Config::default()
                .max_handles(1)
                .max_waiters_per_handle(1)
                .max_subscribers_per_handle(1)
                .max_subscriber_capacity(8),
        );
        let q2 = q.clone();
        rec.set_hook(move |_| {
            let _ = q2.stats();
        });
        let h = q.register("only").unwrap();

        assert_eq!(
            q.register("one too many"),
            Err(QueueError::HandleLimit { limit: 1 })
        );
        let e = refusal(rec, "handle_limit");
        assert_eq!(e.field("limit"), Some("1"));
        assert_eq!(e.field("hint"), Some("one too many"));
        assert_eq!(e.field("index"), None);

        let mut cx = Context::from_waker(Waker::noop());
        let mut first = pin!(q.wait(h));
        assert!(first.as_mut().poll(&mut cx).is_pending());
        let mut second = pin!(q.wait(h));
        assert_eq!(
            second.as_mut().poll(&mut cx),
            std::task::Poll::Ready(Err(QueueError::WaiterLimit { limit: 1 }))
        );
        let e = refusal(rec, "waiter_limit");
        assert_eq!(e.field("limit"), Some("1"));
        assert_eq!(e.field("hint"), Some("only"));
        assert_eq!(e.field("index"), Some(h.index().to_string().as_str()));

        let _sub = q.subscribe(h, 4, "a").unwrap();
        assert!(matches!(
            q.subscribe(h, 4, "b"),
            Err(QueueError::SubscriberLimit { limit: 1 })
        ));
        let e = refusal(rec, "subscriber_limit");
        assert_eq!(e.field("limit"), Some("1"));
        assert_eq!(e.field("hint"), Some("only"));

        assert!(matches!(
            q.subscribe(h, 9, "c"),
            Err(QueueError::InvalidCapacity {
                requested: 9,
                max: 8
            })
        ));
        let e = refusal(rec, "invalid_capacity");
        assert_eq!(e.field("limit"), Some("8"));
        assert_eq!(e.field("requested"), Some("9"));
        assert_eq!(e.field("hint"), Some("only"));
    });
}

struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("waker panics on purpose");
    }
}

#[test]
fn panicking_wakers_are_warnings_with_the_count_and_the_hint() {
    traced(|rec| {
        let q = NotificationQueue::new(Config::default());
        let q2 = q.clone();
        rec.set_hook(move |_| {
            let _ = q2.stats();
        });
        let h = q.register("flaky").unwrap();
        let waker = Waker::from(Arc::new(PanickingWaker));
        let mut cx = Context::from_waker(&waker);
        let mut w = pin!(q.wait(h));
        assert!(w.as_mut().poll(&mut cx).is_pending());
        // The panic message of the caught waker goes to stderr; expected.
        assert_eq!(q.notify(h, 1), Ok(1));
        assert_eq!(q.stats().waker_panics, 1);
        let e = rec.one("notification_queue::waker", "wakers panicked");
        assert_eq!(e.level, Level::WARN);
        assert_eq!(e.field("count"), Some("1"));
        assert_eq!(e.field("hint"), Some("flaky"));
        assert_eq!(e.field("index"), Some(h.index().to_string().as_str()));
    });
}

#[test]
fn lagged_subscribers_are_debug_events_with_the_loss() {
    traced(|rec| {
        let q = NotificationQueue::new(Config::default());
        let h = q.register("sensor").unwrap();
        let mut sub = q.subscribe(h, 2, "display").unwrap();
        for v in 1..=5 {
            q.notify(h, v).unwrap();
        }
        assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged(3)));
        assert_eq!(sub.try_recv(), Ok(4));
        let e = rec.one("notification_queue::subscription", "subscriber lagged");
        assert_eq!(e.level, Level::DEBUG);
        assert_eq!(e.field("lost"), Some("3"));
        assert_eq!(e.field("hint"), Some("sensor"));
        assert_eq!(e.field("subscriber"), Some("display"));
    });
}

fn failed(rec: &Recorder) -> Vec<Recorded> {
    rec.find("notification_queue::pipe", "pipe writer failed")
}

#[test]
fn pipe_failures_and_close_carry_errno_cause_and_hint() {
    traced(|rec| {
        let q = NotificationQueue::new(Config::default());

        // set_error
        let (mut w, f) = mempipe::pipe(&q, "p-err", Limits::default()).unwrap();
        w.set_error(7).unwrap();
        let e = failed(rec).pop().unwrap();
        assert_eq!(e.level, Level::WARN);
        assert_eq!(e.field("errno"), Some("7"));
        assert_eq!(e.field("cause"), Some("set_error"));
        assert_eq!(e.field("hint"), Some("p-err"));
        assert_eq!(
            e.field("index"),
            Some(w.handle().index().to_string().as_str())
        );
        drop((w, f));

        // broken pipe
        let (mut w, f) = mempipe::pipe(&q, "p-epipe", Limits::default()).unwrap();
        drop(f.reader().unwrap());
        assert_eq!(
            w.write(b"x"),
            Err(PipeError::BrokenPipe { writer_errno: None })
        );
        let e = failed(rec).pop().unwrap();
        assert_eq!(e.field("errno"), Some(EPIPE.to_string().as_str()));
        assert_eq!(e.field("cause"), Some("broken_pipe"));
        assert_eq!(e.field("hint"), Some("p-epipe"));
        drop((w, f));

        // full while every byte is kept: ENOSPC, and the refusal
        let limits = Limits::default().segment_size(64).max_bytes(64);
        let (mut w, f) = mempipe::pipe(&q, "p-full", limits).unwrap();
        assert_eq!(w.write(&[0; 64]), Ok(64));
        assert_eq!(w.write(b"x"), Err(PipeError::Full { limit: 64 }));
        let e = failed(rec).pop().unwrap();
        assert_eq!(e.field("errno"), Some(ENOSPC.to_string().as_str()));
        assert_eq!(e.field("cause"), Some("full"));
        let e = rec.one("notification_queue::pipe", "pipe operation refused");
        assert_eq!(e.level, Level::WARN);
        assert_eq!(e.field("errno"), Some(ENOSPC.to_string().as_str()));
        assert_eq!(e.field("hint"), Some("p-full"));
        drop((w, f));

        // a clean close is a debug event
        let (mut w, f) = mempipe::pipe(&q, "p-close", Limits::default()).unwrap();
        w.close().unwrap();
        let e = rec.one("notification_queue::pipe", "pipe writer closed");
        assert_eq!(e.level, Level::DEBUG);
        assert_eq!(e.field("hint"), Some("p-close"));
        drop(f);

        // a failed reader
        let (_w, f) = mempipe::pipe(&q, "p-reader", Limits::default()).unwrap();
        let mut r = f.reader().unwrap();
        r.set_error(5).unwrap();
        let e = rec.one("notification_queue::pipe", "pipe reader failed");
        assert_eq!(e.level, Level::WARN);
        assert_eq!(e.field("errno"), Some("5"));
        assert_eq!(e.field("reader"), Some("0"));
        assert_eq!(e.field("hint"), Some("p-reader"));
    });
}

#[derive(Debug)]
struct FailingStorage;

impl PipeStorage for FailingStorage {
    fn append(&mut self, _: u64, _: &[u8]) -> Result<(), i32> {
        Err(28)
    }
}

#[test]
fn storage_errors_and_pipe_limits_are_reported() {
    traced(|rec| {
        let q = NotificationQueue::new(Config::default());
        let (mut w, _f) =
            mempipe::pipe_with_storage(&q, "p-store", Limits::default(), FailingStorage).unwrap();
        assert_eq!(w.write(b"x"), Err(PipeError::Storage { errno: 28 }));
        let e = failed(rec).pop().unwrap();
        assert_eq!(e.field("cause"), Some("storage"));
        assert_eq!(e.field("errno"), Some("28"));
        assert_eq!(e.field("hint"), Some("p-store"));

        let (_w, f) = mempipe::pipe(&q, "p-readers", Limits::default().max_readers(1)).unwrap();
        let _r = f.reader().unwrap();
        assert_eq!(f.reader().err(), Some(PipeError::ReaderLimit { limit: 1 }));
        let e = rec
            .find("notification_queue::pipe", "pipe operation refused")
            .pop()
            .unwrap();
        assert_eq!(e.field("errno"), Some(mempipe::EMFILE.to_string().as_str()));
        assert_eq!(e.field("hint"), Some("p-readers"));
        assert!(e.field("index").is_some());

        assert!(matches!(
            mempipe::pipe(&q, "p-bad", Limits::default().segment_size(1000)),
            Err(PipeError::InvalidLimit { .. })
        ));
        let e = rec
            .find("notification_queue::pipe", "pipe operation refused")
            .pop()
            .unwrap();
        assert_eq!(e.field("errno"), Some(mempipe::EINVAL.to_string().as_str()));
        assert_eq!(e.field("hint"), Some("p-bad"));
        assert_eq!(e.field("index"), None);
    });
}

#[test]
fn shared_writer_events_come_after_its_lock_is_released() {
    traced(|rec| {
        let q = NotificationQueue::new(Config::default());
        let limits = Limits::default().segment_size(64).max_bytes(64);
        let (w, _f) = mempipe::pipe(&q, "p-shared", limits).unwrap();
        let shared = w.into_shared();
        let s2 = shared.clone();
        // Re-entry: every method of a shared writer takes its lock.
        rec.set_hook(move |_| {
            let _ = s2.tell();
        });
        assert_eq!(shared.write(&[0; 64]), Ok(64));
        assert_eq!(shared.write(b"x"), Err(PipeError::Full { limit: 64 }));
        let e = failed(rec).pop().unwrap();
        assert_eq!(e.field("cause"), Some("full"));
        assert_eq!(e.field("hint"), Some("p-shared"));
        let e = rec.one("notification_queue::pipe", "pipe operation refused");
        assert_eq!(e.field("hint"), Some("p-shared"));
    });
}

#[test]
fn pipe_table_makes_pipes_with_its_map_unlocked() {
    traced(|rec| {
        let q = NotificationQueue::new(Config::default());
        let table = Arc::new(mempipe::PipeTable::new(&q, Limits::default()));
        let t2 = table.clone();
        // Re-entry: opening a reader takes the table's lock.
        rec.set_hook(move |_| {
            let _ = t2.try_open_reader(&1u64);
        });
        let w = table.create_writer(1u64).unwrap();
        let e = rec.one("notification_queue::handle", "handle registered");
        assert_eq!(
            e.field("index"),
            Some(w.handle().index().to_string().as_str())
        );
        assert!(matches!(table.create_writer(1u64), Err(PipeError::Exists)));
    });
}
