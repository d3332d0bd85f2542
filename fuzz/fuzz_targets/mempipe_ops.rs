//! Differential fuzzing of MemPipe against a `Vec<u8>` model.
//!
//! The input picks small [`Limits`] (segments of 1 to 64 bytes, a byte limit
//! of a few hundred, up to four readers, some bytes preallocated) and a
//! sequence of operations: writes of arbitrary bytes (empty ones included),
//! reads of arbitrary sizes by several readers (non-blocking, and blocking
//! with a zero timeout), reader-side `set_error` / `clear_error`, reader
//! drop and creation, sealing the factory (streaming mode, where segments
//! every reader has passed are recycled), writer `close` and `set_error`.
//!
//! The model is the stream as a `Vec<u8>`, each reader's position and
//! error, the writer's state, and the two offsets that decide the byte limit
//! (`head_base`: the first byte still held; `tail_base`: the start of the
//! segment being filled), advanced by the documented rule: in streaming
//! mode a segment is released once every live reader is strictly past its
//! end, checked whenever a segment is added or the limit is hit. Every
//! result is compared: bytes read (content included), `Ok(None)` for
//! "nothing yet", EOF only after the full drain, `BrokenPipe` carrying the
//! writer's errno, `Reader { errno }` for a reader's own error (and never for
//! the others), `Full`, `Closed`, `Failed`, writer-side `BrokenPipe` once
//! every reader is gone, `tell`, `available`, `position`, and a bound on
//! `footprint`. At the end the writer closes (or stays failed) and every
//! reader must drain exactly the model's remaining bytes, then end.
//!
//! Beyond that: explicit close of either end (a second close is
//! `Closed`), the sticky writer errors (EPIPE once every reader has gone,
//! ENOSPC when a kept-everything pipe is full, invalid errnos refused),
//! back-pressure (waiting writes with a zero timeout and async writes polled
//! once, dropped or leaked, against the non-blocking write's `Full`: a wait
//! ends exactly when the write would not be `Full` in streaming mode), the
//! writer's state as readers see it, and the shared writer (the writer
//! turned into a `SharedWriter` mid-run, written from other threads too).
//!
//! Other clients and misbehaving readers are part of the input too: waits
//! held on the writer's handle by a client outside the pipe (up to the
//! queue's waiter limit and beyond), read futures polled once and leaked
//! with `mem::forget`, and pipes created with huge initial capacities. None
//! of them may change what any reader reads or make a read fail
//! (`read_timeout` must still time out, the final blocking drain must still
//! end), `Writer::waiting_readers` must count exactly the readers whose
//! leaked read is still armed, and a pipe whose initial capacity cannot be
//! allocated must be `OutOfMemory` with no handle left behind.
//!
//! Half the inputs run the pipe over a `PipeStorage` that the input can
//! make refuse its appends or its flush (with any errno, invalid ones
//! included). The model then says exactly what the storage holds (every
//! committed byte, in order, nothing a refused write offered), how many
//! times it was flushed (once, on a close of an open writer), and the typed
//! errors: the refused write (or close) returns `Storage { errno }` (`EIO`
//! for an errno outside `1..=4095`), later writes `Failed`, the handle is
//! notified the failure, and every reader drains, then gets `BrokenPipe`
//! carrying the errno.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use notification_queue::mempipe::{
    EIO, ENOSPC, EPIPE, Limits, MAX_ERRNO, NoStorage, PipeError, PipeStorage, Reader,
    ReaderFactory, SharedWriter, Writer, WriterState, pipe, pipe_with_storage,
};
use notification_queue::{Config, NotificationQueue, QueueError, Wait};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

#[derive(Arbitrary, Debug)]
struct Input {
    /// Run over a `FuzzStore` (else `NoStorage`).
    stored: bool,
    seg_shift: u8,
    max_bytes: u16,
    max_readers: u8,
    initial: u16,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Write(Vec<u8>),
    /// `try_read` by reader `.0` into a buffer of `.1 % 80` bytes.
    TryRead(u8, u8),
    /// `read_timeout(Duration::ZERO)`.
    ReadZero(u8, u8),
    NewReader,
    DropReader(u8),
    ReaderSetError(u8, i32),
    ReaderClearError(u8),
    Seal,
    Close,
    WriterSetError(i32),
    Check,
    /// A client outside the pipe waits on the writer's handle (polled once
    /// and held until `DropForeignWaits`).
    ForeignWait,
    DropForeignWaits,
    /// Reader `.0` polls `read_async` into `.1 % 80` bytes once; a pending
    /// future is leaked (`mem::forget`), its slot left armed.
    LeakRead(u8, u8),
    /// `pipe` with an initial capacity of `.0` (taken modulo 4097 unless its
    /// top bit is set: then far beyond any address space) and segments of
    /// `1 << (.1 % 31)` bytes, with no byte limit.
    BigPipe(u64, u8),
    /// `Reader::close` of reader `.0` (it stays in place, closed).
    CloseReader(u8),
    /// `write_timeout(Duration::ZERO)`: waits for space, times out at once.
    WriteZero(Vec<u8>),
    /// `write_async` polled once; a pending future is dropped (`false`) or
    /// leaked (`true`).
    WriteAsync(Vec<u8>, bool),
    /// Turn the writer into a `SharedWriter` (once).
    Share,
    /// A write by a clone of the shared writer on another thread (joined).
    WriteFromThread(Vec<u8>),
    /// The storage refuses every append from now on with this errno
    /// (`None`: accepts again). Nothing without a storage.
    StorageRefuse(Option<i32>),
    /// The storage refuses its flush with this errno (`None`: accepts).
    StorageRefuseFlush(Option<i32>),
}

/// What the fuzzed storage was told and what it kept.
#[derive(Debug, Default)]
struct StoreCtl {
    kept: Vec<u8>,
    refuse: Option<i32>,
    refuse_flush: Option<i32>,
    flushes: usize,
}

/// A storage shared with the harness, so it can be steered and inspected
/// wherever the writer is (behind a shared writer, on another thread).
#[derive(Debug, Clone, Default)]
struct FuzzStore(Arc<Mutex<StoreCtl>>);

impl FuzzStore {
    fn ctl(&self) -> std::sync::MutexGuard<'_, StoreCtl> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl PipeStorage for FuzzStore {
    fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<(), i32> {
        let mut c = self.ctl();
        assert_eq!(offset, c.kept.len() as u64, "appends continue in order");
        assert!(!bytes.is_empty(), "an empty append");
        if let Some(e) = c.refuse {
            return Err(e);
        }
        c.kept.extend_from_slice(bytes);
        Ok(())
    }
    fn flush(&mut self) -> Result<(), i32> {
        let mut c = self.ctl();
        c.flushes += 1;
        match c.refuse_flush {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }
}

/// The model of the storage.
#[derive(Debug, Default)]
struct MStore {
    refuse: Option<i32>,
    refuse_flush: Option<i32>,
    flushes: usize,
}

/// A storage errno as the writer takes it: outside `1..=4095` it is `EIO`.
fn storage_errno(e: i32) -> i32 {
    if (1..=MAX_ERRNO).contains(&e) { e } else { EIO }
}

/// Leaked read futures stay reachable from here (so a leak checker does not
/// report them); at most `LEAK_CAP` addresses are kept, further ones are
/// leaked unrecorded. Never dropped: a dropped pending read disarms its
/// reader's slot, which the model (rightly) does not expect of a leak, and
/// these futures borrow readers and buffers of earlier inputs.
static LEAKED: Mutex<Vec<usize>> = Mutex::new(Vec::new());
const LEAK_CAP: usize = 1 << 14;

/// A waker that does nothing but fail the run if the pipe runs any of its
/// code (clone, wake, drop: the runtime's code) under a crate lock
/// (counted in debug builds, which cargo fuzz makes).
fn checking_waker() -> Waker {
    use std::task::{RawWaker, RawWakerVTable};
    fn check() {
        assert_eq!(
            notification_queue::__crate_locks_held(),
            0,
            "waker code under a crate lock"
        );
    }
    fn clone(_: *const ()) -> RawWaker {
        check();
        RawWaker::new(std::ptr::null(), &VTABLE)
    }
    fn other(_: *const ()) {
        check();
    }
    static VTABLE: RawWakerVTable = RawWakerVTable::new(clone, other, other, other);
    // SAFETY: the vtable's functions own nothing and are safe to call from
    // any thread any number of times.
    unsafe { Waker::from_raw(RawWaker::new(std::ptr::null(), &VTABLE)) }
}

/// Polls `fut` once with a checking waker; leaks it if it is pending.
fn poll_and_leak<F: Future>(fut: F) -> Poll<F::Output> {
    let mut fut = Box::pin(fut);
    let got = fut
        .as_mut()
        .poll(&mut Context::from_waker(&checking_waker()));
    if got.is_pending() {
        let mut leaked = LEAKED.lock().unwrap_or_else(|e| e.into_inner());
        // SAFETY: the future is never moved out of its box nor dropped;
        // only its address is kept (or not even that, past the cap).
        let raw = Box::into_raw(unsafe { Pin::into_inner_unchecked(fut) });
        if leaked.len() < LEAK_CAP {
            leaked.push(raw as *mut () as usize);
        }
    }
    got
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WState {
    Open,
    Closed,
    Failed(i32),
}

#[derive(Debug)]
struct MReader {
    pos: u64,
    error: Option<i32>,
    /// A leaked read future left this reader's wake slot armed.
    armed: bool,
    /// `Reader::close` was called.
    closed: bool,
}

struct Model {
    seg: u64,
    max_bytes: u64,
    max_readers: usize,
    data: Vec<u8>,
    state: WState,
    /// `Writer::close` was called.
    closed: bool,
    /// The failure is a broken pipe.
    broken: bool,
    sealed: bool,
    /// The writer has seen the seal (in its `reclaim`).
    w_sealed: bool,
    ever: bool,
    head_base: u64,
    tail_base: u64,
    readers: Vec<Option<MReader>>,
    /// The storage, if the pipe has one.
    store: Option<MStore>,
}

impl Model {
    fn live(&self) -> usize {
        self.readers.iter().flatten().filter(|r| !r.closed).count()
    }

    fn written(&self) -> u64 {
        self.data.len() as u64
    }

    /// The writer's `reclaim`: streaming mode only.
    fn reclaim(&mut self) {
        if !self.sealed {
            return;
        }
        self.w_sealed = true;
        let min = self
            .readers
            .iter()
            .flatten()
            .filter(|r| !r.closed)
            .map(|r| r.pos)
            .min()
            .unwrap_or(u64::MAX);
        while self.head_base < self.tail_base && self.head_base + self.seg < min {
            self.head_base += self.seg;
        }
    }

    /// In streaming mode (as the writer sees it) a limit of at most one
    /// segment counts as one segment plus one byte.
    fn room(&self) -> u64 {
        let limit = if self.w_sealed {
            self.max_bytes.max(self.seg + 1)
        } else {
            self.max_bytes
        };
        limit.saturating_sub(self.written() - self.head_base)
    }

    fn writable(&self) -> Result<(), PipeError> {
        if self.closed {
            return Err(PipeError::Closed);
        }
        match self.state {
            WState::Open => Ok(()),
            WState::Closed => Err(PipeError::Closed),
            WState::Failed(_) if self.broken => Err(PipeError::BrokenPipe { writer_errno: None }),
            WState::Failed(errno) => Err(PipeError::Failed { errno }),
        }
    }

    fn write(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        self.writable()?;
        if buf.is_empty() {
            return Ok(0);
        }
        if self.live() == 0 && (self.ever || self.sealed) {
            self.broken = true;
            self.finish(WState::Failed(EPIPE));
            return Err(PipeError::BrokenPipe { writer_errno: None });
        }
        let mut room = self.room();
        if room == 0 {
            self.reclaim();
            room = self.room();
            if room == 0 {
                if !self.w_sealed {
                    self.finish(WState::Failed(ENOSPC));
                }
                return Err(PipeError::Full {
                    limit: self.max_bytes,
                });
            }
        }
        let n = room.min(buf.len() as u64) as usize;
        // The storage sees the bytes before anyone else; a refusal fails
        // the writer and commits nothing.
        if let Some(e) = self.store.as_ref().and_then(|s| s.refuse) {
            let errno = storage_errno(e);
            self.finish(WState::Failed(errno));
            return Err(PipeError::Storage { errno });
        }
        // `append`: a new segment whenever the tail one is full.
        let mut placed = self.written();
        let end = placed + n as u64;
        while placed < end {
            if placed - self.tail_base >= self.seg {
                self.reclaim();
                self.tail_base += self.seg;
            }
            let k = (self.seg - (placed - self.tail_base)).min(end - placed);
            placed += k;
        }
        self.data.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// `try_read` of reader `i` with a buffer of `len`: the bytes read.
    fn try_read(&mut self, i: usize, len: usize) -> Result<Option<Vec<u8>>, PipeError> {
        let written = self.written();
        let state = self.state;
        let Some(r) = self.readers[i].as_mut() else {
            unreachable!()
        };
        if r.closed {
            return Err(PipeError::Closed);
        }
        if let Some(errno) = r.error {
            return Err(PipeError::Reader { errno });
        }
        if len == 0 {
            return Ok(Some(Vec::new()));
        }
        if r.pos >= written {
            return match state {
                WState::Open => Ok(None),
                WState::Failed(e) => Err(PipeError::BrokenPipe {
                    writer_errno: Some(e),
                }),
                WState::Closed => Ok(Some(Vec::new())),
            };
        }
        let n = ((written - r.pos) as usize).min(len);
        let out = self.data[r.pos as usize..r.pos as usize + n].to_vec();
        r.pos += n as u64;
        Ok(Some(out))
    }

    fn finish(&mut self, state: WState) {
        if self.state == WState::Open {
            self.state = state;
            self.wake_all();
        }
    }

    /// The writer woke every sleeping reader (a commit or the end).
    fn wake_all(&mut self) {
        for r in self.readers.iter_mut().flatten() {
            r.armed = false;
        }
    }

    /// A waiting write: `Ok(None)` where it would wait (`Full` while the
    /// writer stays open: streaming mode).
    fn write_waiting(&mut self, buf: &[u8]) -> Result<Option<usize>, PipeError> {
        match self.write(buf) {
            Err(PipeError::Full { .. }) if self.state == WState::Open => Ok(None),
            other => other.map(Some),
        }
    }

    fn set_error(&mut self, errno: i32) -> Result<(), PipeError> {
        if !(1..=MAX_ERRNO).contains(&errno) {
            return Err(PipeError::InvalidErrno { errno });
        }
        self.writable()?;
        self.finish(WState::Failed(errno));
        Ok(())
    }

    fn close(&mut self) -> Result<(), PipeError> {
        if self.closed {
            return Err(PipeError::Closed);
        }
        self.closed = true;
        if self.state == WState::Open
            && let Some(s) = self.store.as_mut()
        {
            s.flushes += 1;
            if let Some(e) = s.refuse_flush {
                let errno = storage_errno(e);
                self.finish(WState::Failed(errno));
                return Err(PipeError::Storage { errno });
            }
        }
        self.finish(WState::Closed);
        Ok(())
    }

    fn writer_state(&self) -> WriterState {
        match self.state {
            WState::Open => WriterState::Open,
            WState::Closed => WriterState::Closed,
            WState::Failed(e) => WriterState::Failed(e),
        }
    }

    fn armed(&self) -> usize {
        self.readers.iter().flatten().filter(|r| r.armed).count()
    }
}

/// The writer under test: the plain one, or shared after `Op::Share`.
enum W<S: PipeStorage> {
    Single(Writer<S>),
    Shared(SharedWriter<S>),
}

impl<S: PipeStorage> W<S> {
    fn write(&mut self, b: &[u8]) -> Result<usize, PipeError> {
        match self {
            W::Single(w) => w.write(b),
            W::Shared(w) => w.write(b),
        }
    }
    fn write_zero(&mut self, b: &[u8]) -> Result<usize, PipeError> {
        match self {
            W::Single(w) => w.write_timeout(b, Duration::ZERO),
            W::Shared(w) => w.write_timeout(b, Duration::ZERO),
        }
    }
    fn write_async(&mut self, b: &[u8], leak: bool) -> Poll<Result<usize, PipeError>> {
        let fut: Pin<Box<dyn Future<Output = Result<usize, PipeError>> + '_>> = match self {
            W::Single(w) => Box::pin(w.write_async(b)),
            W::Shared(w) => Box::pin(w.write_async(b)),
        };
        if leak {
            poll_and_leak(fut)
        } else {
            let mut fut = fut;
            fut.as_mut()
                .poll(&mut Context::from_waker(&checking_waker()))
        }
    }
    fn close(&mut self) -> Result<(), PipeError> {
        match self {
            W::Single(w) => w.close(),
            W::Shared(w) => w.close(),
        }
    }
    fn set_error(&mut self, e: i32) -> Result<(), PipeError> {
        match self {
            W::Single(w) => w.set_error(e),
            W::Shared(w) => w.set_error(e),
        }
    }
    fn tell(&self) -> u64 {
        match self {
            W::Single(w) => w.tell(),
            W::Shared(w) => w.tell(),
        }
    }
    fn is_closed(&self) -> bool {
        match self {
            W::Single(w) => w.is_closed(),
            W::Shared(w) => w.is_closed(),
        }
    }
    fn error(&self) -> Option<i32> {
        match self {
            W::Single(w) => w.error(),
            W::Shared(w) => w.error(),
        }
    }
    fn state(&self) -> WriterState {
        match self {
            W::Single(w) => w.state(),
            W::Shared(w) => w.state(),
        }
    }
    fn handle(&self) -> notification_queue::Handle {
        match self {
            W::Single(w) => w.handle(),
            W::Shared(w) => w.handle(),
        }
    }
    fn footprint(&self) -> usize {
        match self {
            W::Single(w) => w.footprint(),
            W::Shared(w) => w.footprint(),
        }
    }
    fn waiting_readers(&self) -> usize {
        match self {
            W::Single(w) => w.waiting_readers(),
            W::Shared(w) => w.waiting_readers(),
        }
    }
}

fn pick_reader(readers: &[Option<Reader>], i: u8) -> Option<usize> {
    if readers.is_empty() {
        return None;
    }
    let i = i as usize % readers.len();
    readers[i].as_ref().map(|_| i)
}

fn check_reader(m: &Model, readers: &[Option<Reader>], i: usize) {
    let (Some(r), Some(mr)) = (readers[i].as_ref(), m.readers[i].as_ref()) else {
        return;
    };
    assert_eq!(r.position(), mr.pos, "reader {i} position");
    let available = if mr.closed { 0 } else { m.written() - mr.pos };
    assert_eq!(r.available(), available, "reader {i} available");
    assert_eq!(r.error(), mr.error, "reader {i} error");
    assert_eq!(r.is_closed(), mr.closed, "reader {i} closed");
    assert_eq!(
        r.writer_state(),
        m.writer_state(),
        "reader {i} sees the writer"
    );
}

/// The storage holds exactly the committed stream and was flushed as often
/// as the model says.
fn check_store(m: &Model, store: Option<&FuzzStore>) {
    let (Some(st), Some(ms)) = (store, m.store.as_ref()) else {
        return;
    };
    let c = st.ctl();
    assert_eq!(c.kept, m.data, "the storage holds the stream");
    assert_eq!(c.flushes, ms.flushes, "flushes");
}

fn run(input: Input) {
    if input.stored {
        let store = FuzzStore::default();
        run_with(input, store.clone(), Some(store));
    } else {
        run_with(input, NoStorage, None);
    }
}

fn run_with<S: PipeStorage + Send>(input: Input, storage: S, store: Option<FuzzStore>) {
    let seg = 1usize << (input.seg_shift % 7);
    let max_bytes = 1 + input.max_bytes as u64 % 300;
    let max_readers = 1 + input.max_readers as usize % 4;
    let initial = (input.initial as u64 % (max_bytes + 1)) as usize;
    const WAITERS: usize = 8;
    let queue = NotificationQueue::new(Config::default().max_waiters_per_handle(WAITERS));
    let limits = Limits::default()
        .segment_size(seg)
        .max_bytes(max_bytes)
        .max_readers(max_readers)
        .initial_capacity(initial);
    let (writer, factory) =
        pipe_with_storage(&queue, "fuzz", limits, storage).expect("valid limits");
    let mut writer = W::Single(writer);
    let mut factory: Option<ReaderFactory> = Some(factory);
    let mut readers: Vec<Option<Reader>> = Vec::new();
    let mut m = Model {
        seg: seg as u64,
        max_bytes,
        max_readers,
        data: Vec::new(),
        state: WState::Open,
        closed: false,
        broken: false,
        sealed: false,
        w_sealed: false,
        ever: false,
        head_base: 0,
        tail_base: 0,
        readers: Vec::new(),
        store: store.as_ref().map(|_| MStore::default()),
    };
    // Worst case held: the limit (rounded up to segments, plus the segment
    // being filled) and the recycling pool of 4, or what was preallocated.
    let lim = max_bytes.max(seg as u64 + 1);
    let footprint_bound =
        ((lim.div_ceil(seg as u64) + 2 + 4) as usize * seg).max(initial.div_ceil(seg) * seg);
    let mut buf = vec![0u8; 80];
    let mut foreign: Vec<Wait<'_>> = Vec::new();

    for op in input.ops {
        match op {
            Op::Write(bytes) => {
                let bytes = &bytes[..bytes.len().min(100)];
                let got = writer.write(bytes);
                let want = m.write(bytes);
                assert_eq!(got, want, "write of {}", bytes.len());
                if matches!(got, Ok(n) if n > 0) {
                    m.wake_all();
                }
                assert_eq!(writer.tell(), m.written());
            }
            Op::TryRead(i, len) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                let len = len as usize % 80;
                let got = readers[i]
                    .as_mut()
                    .expect("picked")
                    .try_read(&mut buf[..len]);
                let want = m.try_read(i, len);
                match (got, want) {
                    (Ok(Some(n)), Ok(Some(bytes))) => {
                        assert_eq!(&buf[..n], &bytes[..], "reader {i} bytes");
                    }
                    (got, want) => assert_eq!(got, want.map(|o| o.map(|b| b.len()))),
                }
            }
            Op::ReadZero(i, len) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                let len = len as usize % 80;
                let got = readers[i]
                    .as_mut()
                    .expect("picked")
                    .read_timeout(&mut buf[..len], Duration::ZERO);
                let want = m.try_read(i, len);
                // A blocking read, however it ends, leaves its slot disarmed.
                m.readers[i].as_mut().expect("model").armed = false;
                match (got, want) {
                    (Ok(n), Ok(Some(bytes))) => {
                        assert_eq!(&buf[..n], &bytes[..], "reader {i} bytes");
                    }
                    (Err(PipeError::TimedOut), Ok(None)) => {}
                    (Err(got), Err(want)) => assert_eq!(got, want),
                    (got, want) => panic!("read_timeout: got {got:?}, want {want:?}"),
                }
            }
            Op::NewReader => {
                let Some(f) = factory.as_ref() else { continue };
                if readers.len() >= 16 {
                    continue;
                }
                let got = f.reader();
                if m.live() >= m.max_readers {
                    assert_eq!(
                        got.map(|_| ()),
                        Err(PipeError::ReaderLimit {
                            limit: m.max_readers
                        })
                    );
                    continue;
                }
                readers.push(Some(got.expect("below the reader limit")));
                m.readers.push(Some(MReader {
                    pos: 0,
                    error: None,
                    armed: false,
                    closed: false,
                }));
                m.ever = true;
                assert_eq!(f.readers(), m.live());
            }
            Op::DropReader(i) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                // Dropping a reader disarms its slot.
                readers[i] = None;
                m.readers[i] = None;
            }
            Op::ReaderSetError(i, errno) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                // Mostly valid errnos, sometimes not (0 included).
                let errno = if errno < 0 { errno } else { errno % 5000 };
                let got = readers[i].as_mut().expect("picked").set_error(errno);
                if (1..=MAX_ERRNO).contains(&errno) {
                    assert_eq!(got, Ok(()));
                    m.readers[i].as_mut().expect("model").error = Some(errno);
                } else {
                    // Refused: the reader's error stays as it was.
                    assert_eq!(got, Err(PipeError::InvalidErrno { errno }));
                }
            }
            Op::ReaderClearError(i) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                readers[i].as_mut().expect("picked").clear_error();
                m.readers[i].as_mut().expect("model").error = None;
            }
            Op::Seal => {
                if let Some(f) = factory.take() {
                    f.seal();
                    m.sealed = true;
                }
            }
            Op::Close => {
                assert_eq!(writer.close(), m.close());
            }
            Op::WriterSetError(errno) => {
                // Mostly valid errnos, sometimes not.
                let errno = if errno < 0 { errno } else { errno % 5000 };
                assert_eq!(writer.set_error(errno), m.set_error(errno));
            }
            Op::CloseReader(i) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                let got = readers[i].as_mut().expect("picked").close();
                let mr = m.readers[i].as_mut().expect("model");
                if mr.closed {
                    assert_eq!(got, Err(PipeError::Closed));
                } else {
                    assert_eq!(got, Ok(()));
                    mr.closed = true;
                    mr.armed = false;
                }
            }
            Op::WriteZero(bytes) => {
                let bytes = &bytes[..bytes.len().min(100)];
                let got = writer.write_zero(bytes);
                let want = m.write_waiting(bytes);
                match (got, want) {
                    (Err(PipeError::TimedOut), Ok(None)) => {}
                    (got, want) => assert_eq!(got.map(Some), want, "write_timeout"),
                }
                if matches!(got, Ok(n) if n > 0) {
                    m.wake_all();
                }
            }
            Op::WriteAsync(bytes, leak) => {
                let bytes = &bytes[..bytes.len().min(100)];
                let got = writer.write_async(bytes, leak);
                let want = m.write_waiting(bytes);
                match (got, want) {
                    (Poll::Pending, Ok(None)) => {}
                    (Poll::Ready(got), want) => {
                        assert_eq!(got.map(Some), want, "write_async");
                        if matches!(got, Ok(n) if n > 0) {
                            m.wake_all();
                        }
                    }
                    (got, want) => panic!("write_async: got {got:?}, want {want:?}"),
                }
            }
            Op::Share => {
                writer = match writer {
                    W::Single(w) => W::Shared(w.into_shared()),
                    shared => shared,
                };
            }
            Op::WriteFromThread(bytes) => {
                let W::Shared(w) = &writer else { continue };
                let bytes = &bytes[..bytes.len().min(100)];
                let w = w.clone();
                let got = std::thread::scope(|s| s.spawn(|| w.write(bytes)).join())
                    .expect("writer thread");
                drop(w);
                let want = m.write(bytes);
                assert_eq!(got, want, "write from a thread");
                if matches!(got, Ok(n) if n > 0) {
                    m.wake_all();
                }
            }
            Op::Check => {}
            Op::StorageRefuse(e) => {
                if let (Some(st), Some(ms)) = (&store, m.store.as_mut()) {
                    st.ctl().refuse = e;
                    ms.refuse = e;
                }
            }
            Op::StorageRefuseFlush(e) => {
                if let (Some(st), Some(ms)) = (&store, m.store.as_mut()) {
                    st.ctl().refuse_flush = e;
                    ms.refuse_flush = e;
                }
            }
            Op::ForeignWait => {
                if foreign.len() > WAITERS + 2 {
                    continue;
                }
                // The waits still holding entries: those from the current
                // sequence. A notify that moved the sequence past a wait's
                // snapshot completed it and freed its entry.
                let now = queue.snapshot(writer.handle());
                let held = foreign
                    .iter()
                    .filter(|w| now.is_ok() && w.snapshot() == now)
                    .count();
                let mut wait = queue.wait(writer.handle());
                let got = Pin::new(&mut wait).poll(&mut Context::from_waker(&checking_waker()));
                let full = held >= WAITERS;
                match got {
                    Poll::Pending => {
                        assert!(!full, "a wait beyond the waiter limit");
                        foreign.push(wait);
                    }
                    Poll::Ready(Err(QueueError::WaiterLimit { .. })) => assert!(full),
                    // The handle is gone (writer closed or failed), or this
                    // wait's snapshot is already behind.
                    Poll::Ready(Err(QueueError::StaleHandle | QueueError::Closed)) => {
                        assert_ne!(m.state, WState::Open)
                    }
                    Poll::Ready(other) => panic!("foreign wait: {other:?}"),
                }
            }
            Op::DropForeignWaits => foreign.clear(),
            Op::LeakRead(i, len) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                let len = len as usize % 80;
                let r = readers[i].as_mut().expect("picked");
                let got = poll_and_leak(r.read_async(&mut buf[..len]));
                let want = m.try_read(i, len);
                // A read that ends (with data, EOF or an error) disarms the
                // reader's slot; a pending one arms it.
                m.readers[i].as_mut().expect("model").armed = got.is_pending();
                match (got, want) {
                    (Poll::Ready(Ok(n)), Ok(Some(bytes))) => {
                        assert_eq!(&buf[..n], &bytes[..], "reader {i} bytes");
                    }
                    (Poll::Pending, Ok(None)) => {}
                    (Poll::Ready(Err(got)), Err(want)) => assert_eq!(got, want),
                    (got, want) => panic!("read_async: got {got:?}, want {want:?}"),
                }
            }
            Op::BigPipe(initial, seg_shift) => {
                let huge = initial >> 63 == 1;
                let initial = if huge {
                    initial as usize
                } else {
                    (initial % 4097) as usize
                };
                let limits = Limits::default()
                    .segment_size(1 << (seg_shift % 31))
                    .max_bytes(u64::MAX)
                    .max_readers(2)
                    .initial_capacity(initial);
                let handles = queue.stats().handles;
                match pipe(&queue, "big", limits) {
                    Ok((w, f)) => {
                        assert!(!huge, "{initial} bytes allocated?");
                        assert_eq!(queue.stats().handles, handles + 1);
                        drop((w, f));
                    }
                    Err(PipeError::OutOfMemory { .. }) => assert!(huge),
                    Err(e) => panic!("pipe with initial capacity {initial}: {e:?}"),
                }
                assert_eq!(queue.stats().handles, handles, "handle leaked");
            }
        }
        assert_eq!(writer.waiting_readers(), m.armed(), "armed reader slots");
        assert_eq!(writer.tell(), m.written());
        assert_eq!(writer.is_closed(), m.closed);
        assert_eq!(writer.state(), m.writer_state());
        let err = match m.state {
            WState::Failed(e) => Some(e),
            _ => None,
        };
        assert_eq!(writer.error(), err);
        assert!(
            writer.footprint() <= footprint_bound,
            "footprint {} > {footprint_bound}",
            writer.footprint()
        );
        for i in 0..readers.len() {
            check_reader(&m, &readers, i);
        }
        check_store(&m, store.as_ref());
    }

    // The end: the writer closes (a failed one stays failed); every reader
    // clears its own error and drains exactly the rest of the stream.
    assert_eq!(writer.close(), m.close());
    check_store(&m, store.as_ref());
    for (i, r) in readers.iter_mut().enumerate() {
        let Some(r) = r.as_mut() else { continue };
        r.clear_error();
        let mr = m.readers[i].as_mut().expect("model");
        if mr.closed {
            assert_eq!(r.read(&mut buf), Err(PipeError::Closed));
            continue;
        }
        mr.error = None;
        let mut rest = Vec::new();
        let end = loop {
            match r.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => rest.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        assert_eq!(&rest[..], &m.data[mr.pos as usize..], "reader {i} tail");
        match m.state {
            WState::Failed(e) => assert_eq!(
                end,
                Err(PipeError::BrokenPipe {
                    writer_errno: Some(e)
                })
            ),
            _ => assert_eq!(end, Ok(())),
        }
    }
    assert_eq!(writer.waiting_readers(), 0);
    drop(foreign);
    drop(readers);
    drop(factory);
    drop(writer);
    let s = queue.stats();
    assert_eq!((s.handles, s.waiters), (0, 0));
}

fuzz_target!(|input: Input| run(input));
