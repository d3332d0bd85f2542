//! Differential fuzzing of `PipeTable` against a model of its entries.
//!
//! Operations: opens that do not wait (with and without a debug hint),
//! async opens polled, re-polled and dropped (each with a waker of its own
//! that counts its wakes), timed opens with a deadline already passed,
//! writer creation, `abandon`, `close_all_leftover_writers`, `remove`,
//! writes, closes, failures and drops of the writers, reads, closes and
//! drops of the readers. The model says exactly which opens are listed on a
//! latent key, which wakes each one gets (one per creation or producer end
//! that found it listed, none otherwise), what every open returns (a reader,
//! `Pending`, `NoWriter`, `Exists`, `ReaderLimit`, `TimedOut`), what every
//! read returns, and the whole `list()` (states, waiting counts, writer
//! state, bytes written, every live reader's id, hint and position).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use notification_queue::mempipe::{
    EPIPE, Limits, PipeError, PipeInfoState, PipeTable, Reader, Writer, WriterState,
};
use notification_queue::{Config, NotificationQueue};
use std::collections::BTreeMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Instant;

#[derive(Arbitrary, Debug)]
struct Input {
    max_readers: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    TryOpen(u8, Option<u8>),
    OpenAsync(u8),
    PollOpen(u8),
    DropOpen(u8),
    OpenZero(u8),
    Create(u8),
    Abandon(u8),
    CloseAll,
    Remove(u8),
    Write(u8, Vec<u8>),
    CloseWriter(u8),
    FailWriter(u8, u8),
    DropWriter(u8),
    Read(u8, u8),
    CloseReader(u8),
    DropReader(u8),
}

const KEYS: u8 = 5;
static KEY: [u8; KEYS as usize] = [0, 1, 2, 3, 4];

#[derive(Default)]
struct Count(AtomicUsize);

impl Wake for Count {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// A waker that counts wakes in `c` and fails the run if the table runs
/// any of its code (clone, wake, drop: the runtime's code) under a crate
/// lock (counted in debug builds, which cargo fuzz makes).
fn checking_waker(c: &Arc<Count>) -> Waker {
    use std::task::{RawWaker, RawWakerVTable};
    fn check(what: &str) {
        assert_eq!(
            notification_queue::__crate_locks_held(),
            0,
            "waker {what} under a crate lock"
        );
    }
    fn clone(data: *const ()) -> RawWaker {
        check("clone");
        // SAFETY: `data` is an `Arc<Count>` pointer whose count this waker
        // owns one of; the clone owns the added one.
        unsafe { Arc::increment_strong_count(data as *const Count) };
        RawWaker::new(data, &VTABLE)
    }
    fn wake(data: *const ()) {
        wake_by_ref(data);
        drop_waker(data);
    }
    fn wake_by_ref(data: *const ()) {
        check("wake");
        // SAFETY: as in `clone`: the count owned keeps `data` alive.
        unsafe { &*(data as *const Count) }
            .0
            .fetch_add(1, Ordering::SeqCst);
    }
    fn drop_waker(data: *const ()) {
        check("drop");
        // SAFETY: releases the count this waker owned.
        unsafe { Arc::decrement_strong_count(data as *const Count) };
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, wake, wake_by_ref, drop_waker);
    let data = Arc::into_raw(c.clone()) as *const ();
    // SAFETY: the vtable keeps the `RawWaker` contract (see its functions).
    unsafe { Waker::from_raw(RawWaker::new(data, &VTABLE)) }
}

#[derive(Debug, Clone, PartialEq)]
enum MEntry {
    /// Listed opens (their indices), in listing order.
    Latent(Vec<usize>),
    Live(usize),
    Abandoned,
}

#[derive(Debug, Default)]
struct MPipe {
    data: Vec<u8>,
    state: Option<WriterState>,
    closed: bool,
    broken: bool,
    next_id: u64,
    live: usize,
    ever: bool,
    sealed: bool,
}

#[derive(Debug)]
struct MReader {
    pipe: usize,
    id: u64,
    hint: Option<String>,
    pos: u64,
    closed: bool,
}

struct Model {
    max_readers: usize,
    map: BTreeMap<u8, MEntry>,
    pipes: Vec<MPipe>,
    readers: Vec<Option<MReader>>,
    /// Per open: its key, the wakes it should have had.
    opens: Vec<(u8, usize)>,
}

impl Model {
    fn wake(&mut self, list: Vec<usize>) {
        for i in list {
            self.opens[i].1 += 1;
        }
    }

    /// `poll_open`: `Ok(Some(pipe))` makes a reader; `listed`: the open
    /// that waits (if any).
    fn open(&mut self, key: u8, listed: Option<usize>) -> Result<Option<usize>, PipeError> {
        match self.map.get_mut(&key) {
            Some(MEntry::Live(p)) => {
                let p = *p;
                let pipe = &mut self.pipes[p];
                pipe.next_id += 1;
                if pipe.live >= self.max_readers {
                    return Err(PipeError::ReaderLimit {
                        limit: self.max_readers,
                    });
                }
                pipe.live += 1;
                pipe.ever = true;
                Ok(Some(p))
            }
            Some(MEntry::Abandoned) => Err(PipeError::NoWriter),
            Some(MEntry::Latent(l)) => {
                if let Some(i) = listed
                    && !l.contains(&i)
                {
                    l.push(i);
                }
                Ok(None)
            }
            None => {
                self.map
                    .insert(key, MEntry::Latent(listed.into_iter().collect()));
                Ok(None)
            }
        }
    }

    fn forget(&mut self, key: u8, i: usize) {
        if let Some(MEntry::Latent(l)) = self.map.get_mut(&key) {
            l.retain(|&x| x != i);
        }
    }

    fn abandon(&mut self, key: u8) -> bool {
        let Some(MEntry::Latent(l)) = self.map.get(&key).cloned() else {
            return false;
        };
        self.map.insert(key, MEntry::Abandoned);
        self.wake(l);
        true
    }
}

impl MPipe {
    fn finish(&mut self, s: WriterState) {
        if self.state.is_none() {
            self.state = Some(s);
        }
    }
    fn writable(&self) -> Result<(), PipeError> {
        if self.closed {
            return Err(PipeError::Closed);
        }
        match self.state {
            None => Ok(()),
            Some(WriterState::Failed(_)) if self.broken => {
                Err(PipeError::BrokenPipe { writer_errno: None })
            }
            Some(WriterState::Failed(errno)) => Err(PipeError::Failed { errno }),
            Some(_) => Err(PipeError::Closed),
        }
    }
    fn write(&mut self, b: &[u8]) -> Result<usize, PipeError> {
        self.writable()?;
        if b.is_empty() {
            return Ok(0);
        }
        if self.live == 0 && (self.ever || self.sealed) {
            self.broken = true;
            self.finish(WriterState::Failed(EPIPE));
            return Err(PipeError::BrokenPipe { writer_errno: None });
        }
        self.data.extend_from_slice(b);
        Ok(b.len())
    }
    fn close(&mut self) -> Result<(), PipeError> {
        if self.closed {
            return Err(PipeError::Closed);
        }
        self.closed = true;
        self.finish(WriterState::Closed);
        Ok(())
    }
    fn state(&self) -> WriterState {
        self.state.unwrap_or(WriterState::Open)
    }
}

type OpenFut<'a> = Pin<Box<dyn Future<Output = Result<Reader, PipeError>> + 'a>>;

fn pick<T>(v: &[Option<T>], i: u8) -> Option<usize> {
    if v.is_empty() {
        return None;
    }
    let i = i as usize % v.len();
    v[i].as_ref().map(|_| i)
}

fn run(input: Input) {
    let max_readers = 1 + input.max_readers as usize % 3;
    let queue = NotificationQueue::new(Config::default());
    let table: PipeTable<u8> = PipeTable::new(
        &queue,
        Limits::default().segment_size(8).max_readers(max_readers),
    );
    let mut m = Model {
        max_readers,
        map: BTreeMap::new(),
        pipes: Vec::new(),
        readers: Vec::new(),
        opens: Vec::new(),
    };
    let mut writers: Vec<Option<Writer>> = Vec::new();
    let mut readers: Vec<Option<Reader>> = Vec::new();
    let mut opens: Vec<Option<(OpenFut<'_>, Waker)>> = Vec::new();
    let mut counts: Vec<Arc<Count>> = Vec::new();
    let mut buf = [0u8; 64];

    for op in input.ops {
        match op {
            Op::TryOpen(k, hint) => {
                let k = k % KEYS;
                let hint = hint.map(|h| format!("h{h}"));
                let got = match &hint {
                    Some(h) => table.try_open_reader_with_hint(&KEY[k as usize], h),
                    None => table.try_open_reader(&KEY[k as usize]),
                };
                match (got, m.open(k, None)) {
                    (Ok(Some(r)), Ok(Some(p))) => push_reader(r, p, hint, &mut m, &mut readers),
                    (Ok(None), Ok(None)) => {}
                    (Err(g), Err(w)) => assert_eq!(g, w),
                    (g, w) => panic!("try_open: got {:?}, want {w:?}", g.map(|o| o.is_some())),
                }
            }
            Op::OpenAsync(k) => {
                if opens.len() >= 32 {
                    continue;
                }
                let k = k % KEYS;
                let i = opens.len();
                let c = Arc::new(Count::default());
                let waker = checking_waker(&c);
                counts.push(c);
                m.opens.push((k, 0));
                opens.push(Some((
                    Box::pin(table.open_reader_async(&KEY[k as usize])),
                    waker,
                )));
                poll_open(i, &mut opens, &mut m, &mut readers);
            }
            Op::PollOpen(i) => {
                let Some(i) = pick(&opens, i) else { continue };
                poll_open(i, &mut opens, &mut m, &mut readers);
            }
            Op::DropOpen(i) => {
                let Some(i) = pick(&opens, i) else { continue };
                opens[i] = None;
                m.forget(m.opens[i].0, i);
            }
            Op::OpenZero(k) => {
                let k = k % KEYS;
                let got = table.open_reader_deadline(&KEY[k as usize], Instant::now());
                match (got, m.open(k, None)) {
                    (Ok(r), Ok(Some(p))) => push_reader(r, p, None, &mut m, &mut readers),
                    (Err(PipeError::TimedOut), Ok(None)) => {}
                    (Err(g), Err(w)) => assert_eq!(g, w),
                    (g, w) => panic!("open_deadline: got {:?}, want {w:?}", g.map(|_| ())),
                }
            }
            Op::Create(k) => {
                if writers.len() >= 16 {
                    continue;
                }
                let k = k % KEYS;
                let got = table.create_writer(KEY[k as usize]);
                match m.map.get(&k).cloned() {
                    Some(MEntry::Live(_)) => {
                        assert_eq!(got.map(|_| ()), Err(PipeError::Exists));
                    }
                    old => {
                        writers.push(Some(got.expect("create")));
                        m.pipes.push(MPipe::default());
                        m.map.insert(k, MEntry::Live(m.pipes.len() - 1));
                        if let Some(MEntry::Latent(l)) = old {
                            m.wake(l);
                        }
                    }
                }
            }
            Op::Abandon(k) => {
                let k = k % KEYS;
                assert_eq!(table.abandon(&KEY[k as usize]), m.abandon(k));
            }
            Op::CloseAll => {
                let latent: Vec<u8> = m
                    .map
                    .iter()
                    .filter(|(_, e)| matches!(e, MEntry::Latent(_)))
                    .map(|(k, _)| *k)
                    .collect();
                assert_eq!(table.close_all_leftover_writers(), latent.len());
                for k in latent {
                    m.abandon(k);
                }
            }
            Op::Remove(k) => {
                let k = k % KEYS;
                let want = m.abandon(k)
                    || match m.map.remove(&k) {
                        Some(MEntry::Live(p)) => {
                            m.pipes[p].sealed = true;
                            true
                        }
                        Some(_) => true,
                        None => false,
                    };
                assert_eq!(table.remove(&KEY[k as usize]), want);
            }
            Op::Write(w, bytes) => {
                let Some(w) = pick(&writers, w) else { continue };
                let bytes = &bytes[..bytes.len().min(40)];
                let got = writers[w].as_mut().expect("picked").write(bytes);
                assert_eq!(got, m.pipes[w].write(bytes), "write");
            }
            Op::CloseWriter(w) => {
                let Some(w) = pick(&writers, w) else { continue };
                let got = writers[w].as_mut().expect("picked").close();
                assert_eq!(got, m.pipes[w].close());
            }
            Op::FailWriter(w, e) => {
                let Some(w) = pick(&writers, w) else { continue };
                let errno = 1 + i32::from(e);
                let got = writers[w].as_mut().expect("picked").set_error(errno);
                let p = &mut m.pipes[w];
                let want = p.writable().map(|()| p.finish(WriterState::Failed(errno)));
                assert_eq!(got, want);
            }
            Op::DropWriter(w) => {
                let Some(w) = pick(&writers, w) else { continue };
                writers[w] = None;
                if !m.pipes[w].closed {
                    let _ = m.pipes[w].close();
                }
            }
            Op::Read(r, len) => {
                let Some(i) = pick(&readers, r) else { continue };
                let len = len as usize % 20;
                let got = readers[i]
                    .as_mut()
                    .expect("picked")
                    .try_read(&mut buf[..len]);
                let mr = m.readers[i].as_mut().expect("model");
                let p = &m.pipes[mr.pipe];
                let want = if mr.closed {
                    Err(PipeError::Closed)
                } else if len == 0 {
                    Ok(Some(0))
                } else if mr.pos >= p.data.len() as u64 {
                    match p.state() {
                        WriterState::Open => Ok(None),
                        WriterState::Closed => Ok(Some(0)),
                        WriterState::Failed(e) => Err(PipeError::BrokenPipe {
                            writer_errno: Some(e),
                        }),
                    }
                } else {
                    let n = (p.data.len() - mr.pos as usize).min(len);
                    assert_eq!(
                        got.map(|o| o.map(|n| buf[..n].to_vec())),
                        Ok(Some(p.data[mr.pos as usize..mr.pos as usize + n].to_vec())),
                        "reader {i} bytes"
                    );
                    mr.pos += n as u64;
                    Ok(Some(n))
                };
                assert_eq!(got, want, "read");
            }
            Op::CloseReader(r) => {
                let Some(i) = pick(&readers, r) else { continue };
                let got = readers[i].as_mut().expect("picked").close();
                let mr = m.readers[i].as_mut().expect("model");
                if mr.closed {
                    assert_eq!(got, Err(PipeError::Closed));
                } else {
                    assert_eq!(got, Ok(()));
                    mr.closed = true;
                    m.pipes[mr.pipe].live -= 1;
                }
            }
            Op::DropReader(r) => {
                let Some(i) = pick(&readers, r) else { continue };
                readers[i] = None;
                let mr = m.readers[i].take().expect("model");
                if !mr.closed {
                    m.pipes[mr.pipe].live -= 1;
                }
            }
        }
        for (i, c) in counts.iter().enumerate() {
            assert_eq!(
                c.0.load(Ordering::SeqCst),
                m.opens[i].1,
                "wakes of open {i}"
            );
        }
        check_list(&table, &m);
        for (w, p) in writers.iter().zip(&m.pipes) {
            if let Some(w) = w {
                assert_eq!(w.state(), p.state());
                assert_eq!(w.tell(), p.data.len() as u64);
            }
        }
    }

    // The producer ends: every open still waiting gets its answer.
    let latent = m
        .map
        .values()
        .filter(|e| matches!(e, MEntry::Latent(_)))
        .count();
    assert_eq!(table.close_all_leftover_writers(), latent);
    let keys_latent: Vec<u8> = m.map.keys().copied().collect();
    for k in keys_latent {
        m.abandon(k);
    }
    for i in 0..opens.len() {
        if opens[i].is_some() {
            poll_open(i, &mut opens, &mut m, &mut readers);
        }
    }
    check_list(&table, &m);
    drop(opens);
    // Every writer closes; every reader drains exactly the rest, then ends.
    drop(writers);
    for p in &mut m.pipes {
        if !p.closed {
            let _ = p.close();
        }
    }
    for (i, r) in readers.iter_mut().enumerate() {
        let Some(r) = r.as_mut() else { continue };
        let mr = m.readers[i].as_ref().expect("model");
        if mr.closed {
            continue;
        }
        let p = &m.pipes[mr.pipe];
        let mut rest = Vec::new();
        let end = loop {
            match r.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => rest.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        assert_eq!(&rest[..], &p.data[mr.pos as usize..], "reader {i} tail");
        match p.state() {
            WriterState::Failed(e) => assert_eq!(
                end,
                Err(PipeError::BrokenPipe {
                    writer_errno: Some(e)
                })
            ),
            _ => assert_eq!(end, Ok(())),
        }
    }
    drop(readers);
    drop(table);
    assert_eq!(queue.stats().handles, 0, "every pipe's handle is gone");
}

fn push_reader(
    r: Reader,
    p: usize,
    hint: Option<String>,
    m: &mut Model,
    readers: &mut Vec<Option<Reader>>,
) {
    let id = m.pipes[p].next_id - 1;
    assert_eq!(r.id(), id, "reader id");
    assert_eq!(r.hint(), hint.as_deref(), "reader hint");
    readers.push(Some(r));
    m.readers.push(Some(MReader {
        pipe: p,
        id,
        hint,
        pos: 0,
        closed: false,
    }));
}

/// Polls open `i` once against the model; a finished one is dropped.
fn poll_open(
    i: usize,
    opens: &mut [Option<(OpenFut<'_>, Waker)>],
    m: &mut Model,
    readers: &mut Vec<Option<Reader>>,
) {
    let Some((fut, waker)) = opens[i].as_mut() else {
        return;
    };
    let got = fut.as_mut().poll(&mut Context::from_waker(waker));
    let key = m.opens[i].0;
    let want = m.open(key, Some(i));
    match (got, want) {
        (Poll::Ready(Ok(r)), Ok(Some(p))) => push_reader(r, p, None, m, readers),
        (Poll::Pending, Ok(None)) => return,
        (Poll::Ready(Err(g)), Err(w)) => assert_eq!(g, w),
        (g, w) => panic!("open: got {:?}, want {w:?}", g.map(|r| r.map(|_| ()))),
    }
    opens[i] = None;
}

fn check_list(table: &PipeTable<u8>, m: &Model) {
    let mut got = table.list();
    got.sort_by_key(|i| i.key);
    let got: Vec<(u8, String)> = got
        .into_iter()
        .map(|i| (i.key, format!("{:?}", i.state)))
        .collect();
    let want: Vec<(u8, String)> = m
        .map
        .iter()
        .map(|(k, e)| {
            let st = match e {
                MEntry::Latent(l) => PipeInfoState::Latent { waiting: l.len() },
                MEntry::Abandoned => PipeInfoState::Abandoned,
                MEntry::Live(p) => PipeInfoState::Live {
                    writer: m.pipes[*p].state(),
                    written: m.pipes[*p].data.len() as u64,
                    readers: m
                        .readers
                        .iter()
                        .flatten()
                        .filter(|r| r.pipe == *p && !r.closed)
                        .map(|r| notification_queue::mempipe::ReaderInfo {
                            id: r.id,
                            hint: r.hint.as_deref().map(Into::into),
                            position: r.pos,
                        })
                        .collect(),
                },
            };
            (*k, format!("{st:?}"))
        })
        .collect();
    assert_eq!(got, want, "list");
}

fuzz_target!(|input: Input| run(input));
