//! MemPipe: a broadcast in-memory pipe on top of the notification queue.
//!
//! One [`Writer`] appends bytes; any number of [`Reader`]s, made by a
//! [`ReaderFactory`] at any time, each read the whole stream from byte 0 at
//! their own pace (broadcast, not work-sharing).
//!
//! # How it works
//!
//! - **Buffer** (`buffer`): an append-only chain of fixed-size segments.
//!   Bytes never move, so readers copy without a lock while the writer
//!   appends. The writer publishes the readable length with one `Release`
//!   store; readers `Acquire`-load it (the read path takes no lock).
//! - **Waiting**: every reader has a wake slot of its own (a waker and an
//!   "asleep" flag). A reader with nothing new registers its waker, marks
//!   itself asleep, and checks the buffer again; the writer, after every
//!   commit and on close/failure, wakes the readers marked asleep. A fence
//!   on each side makes sure one of the two sees the other, so a write or
//!   close that lands between the check and the sleep is never missed.
//!   Nothing a reader waits on is shared: other clients of the queue, or a
//!   reader that leaks its read futures, cannot stop a reader from waiting.
//! - **The handle**: the writer also owns one queue handle and notifies it
//!   after every non-empty write and on close/failure (then unregisters
//!   it), for anyone outside the pipe who waits on or subscribes to it
//!   ([`Writer::handle`]). Readers do not use it. The argument is a
//!   [`PipeEvent`]: a commit notifies its length (`>= 0`), a failure
//!   `-errno` (`errno` in `1..=4095`), a clean close [`CLOSED_ARG`]
//!   (`i64::MIN`); decode it with [`PipeEvent::from_arg`].
//! - **Errors that stick**: once every reader that joined has gone, the
//!   next write fails with `EPIPE` and the writer stays failed with it (a
//!   reader joining later reads what was written, then gets EPIPE). While
//!   every byte is kept, a write that finds the byte limit reached fails
//!   the writer with `ENOSPC` (nothing could ever free room); its readers
//!   drain, then get it.
//! - **End of stream**: the writer sets its terminal state after its last
//!   commit; a reader that sees it reloads the length, drains every byte, and
//!   only then returns EOF (closed) or [`PipeError::BrokenPipe`] carrying the
//!   writer's errno (failed).
//! - **Errors are per reader**: [`Reader::set_error`] fails only that reader.
//! - **Memory**: by default every byte is kept (a late reader starts at 0).
//!   Once the factory is sealed or dropped no reader can join, and segments
//!   every live reader has passed are recycled: a long stream runs in
//!   bounded memory ([`Writer::footprint`]). [`Limits::max_bytes`] bounds
//!   the bytes held (all written bytes while keeping everything; the unread
//!   window in streaming mode); a write past it writes what fits, and
//!   [`PipeError::Full`] when nothing fits. In streaming mode a writer can
//!   instead wait for space ([`Writer::write_wait`], `write_timeout`,
//!   `write_deadline`, `write_async`; the `std::io`, `embedded_io` and
//!   `embedded_io_async` writes wait too): it is woken when the slowest
//!   reader moves past a segment end or leaves. Every allocation sized by the
//!   caller is fallible: a refusal is [`PipeError::OutOfMemory`], never a
//!   panic, and a write refused memory writes nothing. Segments are charged
//!   to the queue's memory budget
//!   ([`Config::memory_budget`](crate::Config::memory_budget), shared by
//!   every pipe of the queue) before they are allocated; a refusal there is
//!   [`PipeError::Queue`] carrying
//!   [`QueueError::MemoryBudget`](crate::QueueError::MemoryBudget), on the
//!   same terms.
//!
//! ```
//! use notification_queue::{Config, NotificationQueue};
//! use notification_queue::mempipe::{pipe, Limits, PipeError};
//!
//! let queue = NotificationQueue::new(Config::default());
//! let (mut writer, readers) = pipe(&queue, "demo", Limits::default()).unwrap();
//! let mut r1 = readers.reader().unwrap();
//! assert_eq!(writer.write(b"hello").unwrap(), 5);
//! let mut r2 = readers.reader().unwrap(); // joins late, still starts at 0
//! writer.close().unwrap();
//!
//! let mut buf = [0u8; 4];
//! for r in [&mut r1, &mut r2] {
//!     assert_eq!(r.read(&mut buf).unwrap(), 4);
//!     assert_eq!(&buf, b"hell");
//!     assert_eq!(r.read(&mut buf).unwrap(), 1);
//!     assert_eq!(r.read(&mut buf).unwrap(), 0); // EOF after draining
//! }
//! assert_eq!(writer.write(b"x"), Err(PipeError::Closed));
//! ```

mod buffer;
mod error;
mod event;
mod io;
mod merged;
mod reader;
#[cfg(not(notification_queue_loom))]
mod shared;
#[cfg(feature = "std")]
mod std_io;
mod storage;
#[cfg(feature = "std")]
mod table;
#[cfg(feature = "std")]
mod timed;
mod writer;

use alloc::vec::Vec;
pub use buffer::WriterState;
pub use error::{
    EBADF, EEXIST, EINVAL, EIO, EMFILE, ENOMEM, ENOSPC, ENXIO, EPIPE, ETIMEDOUT, PipeError,
};
pub use event::{CLOSED_ARG, MAX_ERRNO, NotifyArg, PipeEvent};
pub use merged::MergedReader;
pub use reader::Reader;
#[cfg(not(notification_queue_loom))]
pub use shared::SharedWriter;
pub use storage::{NoStorage, PipeStorage};
#[cfg(feature = "std")]
pub use table::{PipeInfo, PipeInfoState, PipeTable};
pub use writer::Writer;

use crate::primitives::budget::{Budget, Category};
use crate::sync::{Arc, AtomicPtr, AtomicU64, AtomicUsize, Hint, Mutex, Ordering};
use crate::trace;
use crate::{Handle, NotificationQueue};
use buffer::{Published, ReaderSlot, Segment, SpaceWait};
use crossbeam_utils::CachePadded;

/// Limits of one pipe. Every limit is checked by [`pipe`]; a zero or
/// out-of-range value is [`PipeError::InvalidLimit`].
///
/// ```
/// use notification_queue::mempipe::Limits;
///
/// let l = Limits::default().max_bytes(1 << 20).segment_size(4096);
/// assert_eq!(l.max_bytes, 1 << 20);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Most bytes held at once (default 256 MiB). Keeping everything, that
    /// is every byte written; in streaming mode, the bytes not yet passed by
    /// the slowest reader (rounded to segments). Room comes back a whole
    /// segment at a time, so in streaming mode a limit of at most one
    /// segment counts as one segment plus one byte.
    pub max_bytes: u64,
    /// Bytes per segment: a power of two in `1..=1 << 30` (default 16 KiB).
    pub segment_size: usize,
    /// Bytes to allocate up front (default 0: one segment), at most
    /// `max_bytes`. Memory the allocator refuses is
    /// [`PipeError::OutOfMemory`] from [`pipe`].
    pub initial_capacity: usize,
    /// Live readers at once (default 64); at most the queue's
    /// `max_waiters_per_handle`. A few words per possible reader are
    /// allocated up front.
    pub max_readers: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_bytes: 256 << 20,
            segment_size: 16 << 10,
            initial_capacity: 0,
            max_readers: 64,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_bytes`].
    pub fn max_bytes(mut self, n: u64) -> Self {
        self.max_bytes = n;
        self
    }
    /// Sets [`Limits::segment_size`].
    pub fn segment_size(mut self, n: usize) -> Self {
        self.segment_size = n;
        self
    }
    /// Sets [`Limits::initial_capacity`].
    pub fn initial_capacity(mut self, n: usize) -> Self {
        self.initial_capacity = n;
        self
    }
    /// Sets [`Limits::max_readers`].
    pub fn max_readers(mut self, n: usize) -> Self {
        self.max_readers = n;
        self
    }

    fn validate(&self, queue: &NotificationQueue) -> Result<(), PipeError> {
        let bad = |name, value: u64| Err(PipeError::InvalidLimit { name, value });
        if self.max_bytes == 0 {
            return bad("max_bytes", 0);
        }
        if !self.segment_size.is_power_of_two() || self.segment_size > 1 << 30 {
            return bad("segment_size", self.segment_size as u64);
        }
        if self.initial_capacity as u64 > self.max_bytes {
            return bad("initial_capacity", self.initial_capacity as u64);
        }
        let waiters = queue.config().max_waiters_per_handle;
        if self.max_readers == 0
            || self.max_readers > waiters
            || self.max_readers as u64 > LIVE_MASK
        {
            return bad("max_readers", self.max_readers as u64);
        }
        Ok(())
    }
}

/// `Shared::readers`: live readers in the low 32 bits.
const LIVE_MASK: u64 = u32::MAX as u64;
/// `Shared::readers`: a reader has existed.
const EVER: u64 = 1 << 32;
/// `Shared::readers`: the factory is gone; no reader can join.
const SEALED: u64 = 1 << 33;

/// State shared by the writer, the factory and the readers.
#[derive(Debug)]
struct Shared {
    queue: NotificationQueue,
    /// The writer's handle (unregistered on close or failure).
    handle: Handle,
    /// The handle's hint (for events, also after it is unregistered).
    hint: Hint,
    /// What readers poll (one cache line).
    published: CachePadded<Published>,
    /// Oldest segment still in the chain. Readers load it only when created
    /// (before `SEALED`, when it is still the first segment); the writer
    /// moves it only after `SEALED`. Drop frees the chain from here.
    head: AtomicPtr<Segment>,
    segment_size: usize,
    limits: Limits,
    /// Live reader count (low 32 bits) | `EVER` | `SEALED`.
    readers: AtomicU64,
    /// Every reader's position slot (dead ones removed on reader drop).
    slots: Mutex<Vec<Arc<ReaderSlot>>>,
    /// Bytes of segment memory allocated now (chain and writer pool).
    allocated: AtomicUsize,
    /// Bytes of bookkeeping charged to the queue's budget with the pipe
    /// (released with the segments of the chain on drop).
    bookkeeping: usize,
    /// Armed reader wake slots (at least their number; see
    /// `ReaderSlot::arm`). The writer scans the slots only when it is not 0.
    sleepers: CachePadded<AtomicUsize>,
    /// Where the writer waits for space (see `buffer::SpaceWait`).
    space: CachePadded<SpaceWait>,
    /// The next reader's id.
    next_id: AtomicU64,
}

impl Shared {
    fn footprint(&self) -> usize {
        // Relaxed: a statistic.
        self.allocated.load(Ordering::Relaxed)
    }

    /// Reports a refused operation (call with no lock held).
    fn trace_refused(&self, e: &PipeError) {
        trace::pipe_refused(Some(self.handle.into()), &self.hint, e.errno(), e);
    }

    /// Reports the writer's terminal event (call with no lock held).
    fn trace_end(&self, event: PipeEvent, cause: &'static str) {
        match event {
            PipeEvent::Failed(errno) => trace::pipe_failed(self.handle, &self.hint, errno, cause),
            _ => trace::pipe_closed(self.handle, &self.hint),
        }
    }

    /// Charges `n` new segments to the queue's budget (before they are
    /// allocated): [`PipeError::Queue`] with
    /// [`QueueError::MemoryBudget`](crate::QueueError::MemoryBudget) if refused.
    fn charge_segments(&self, n: usize) -> Result<(), PipeError> {
        let bytes = n.saturating_mul(segment_charge(self.segment_size));
        Ok(self.queue.budget().try_charge(Category::Pipes, bytes)?)
    }

    /// Releases `n` segments from the budget once they are freed.
    fn release_segments(&self, n: usize) {
        let bytes = n.saturating_mul(segment_charge(self.segment_size));
        self.queue.budget().release(Category::Pipes, bytes);
    }
}

/// Budget bytes of one segment of `size` bytes: its data, its header and
/// its place in the writer's pool.
fn segment_charge(size: usize) -> usize {
    size + core::mem::size_of::<Segment>() + core::mem::size_of::<*mut Segment>()
}

/// Budget bytes of a pipe's fixed bookkeeping: its shared state and the
/// per-reader lists reserved up front (reader position slots themselves are
/// not counted).
fn bookkeeping_charge(limits: &Limits) -> usize {
    let per_reader =
        2 * core::mem::size_of::<Arc<ReaderSlot>>() + core::mem::size_of::<core::task::Waker>();
    2 * core::mem::size_of::<usize>()
        + core::mem::size_of::<Shared>()
        + limits.max_readers.saturating_mul(per_reader)
}

/// Budget bytes charged while a pipe is being built, released if it is not
/// (once `Shared` exists, its drop releases them).
struct Pending<'a> {
    budget: &'a Budget,
    bytes: usize,
}

impl Drop for Pending<'_> {
    fn drop(&mut self) {
        self.budget.release(Category::Pipes, self.bytes);
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        // Acquire: pairs with the writer's Release store when it moved the
        // head (the last `Arc` drop also orders everything before us).
        let head = self.head.load(Ordering::Acquire);
        // SAFETY: the last owner of `Shared` is gone, so no reader or writer
        // can reach the chain any more; each segment is freed once.
        let segments = unsafe { buffer::free_chain(head) };
        // The chain's segments and the bookkeeping, now freed.
        self.release_segments(segments);
        self.queue
            .budget()
            .release(Category::Pipes, self.bookkeeping);
    }
}

/// One live reader of a pipe ([`ReaderFactory::reader_info`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderInfo {
    /// The reader's id within its pipe, in joining order from 0.
    pub id: u64,
    /// Its debug hint ([`ReaderFactory::reader_with_hint`]).
    pub hint: Option<Hint>,
    /// Bytes it has read.
    pub position: u64,
}

/// Makes readers of one pipe. Dropping or [sealing](Self::seal) it turns
/// on streaming mode: no reader can join, so memory every live reader has
/// passed is recycled.
#[derive(Debug)]
pub struct ReaderFactory {
    shared: Arc<Shared>,
}

impl ReaderFactory {
    /// A new reader positioned at byte 0.
    ///
    /// Fails with [`PipeError::ReaderLimit`] once `max_readers` are alive.
    ///
    /// ```
    /// # use notification_queue::{Config, NotificationQueue};
    /// # use notification_queue::mempipe::{pipe, Limits};
    /// let q = NotificationQueue::new(Config::default());
    /// let (mut w, f) = pipe(&q, "p", Limits::default().max_readers(1)).unwrap();
    /// let r = f.reader().unwrap();
    /// assert!(f.reader().is_err());
    /// drop(r);
    /// assert!(f.reader().is_ok());
    /// ```
    pub fn reader(&self) -> Result<Reader, PipeError> {
        self.make_reader(None)
    }

    /// [`reader`](Self::reader) with a debug hint, shown by
    /// [`reader_info`](Self::reader_info) (and a pipe table's listing).
    pub fn reader_with_hint(&self, hint: impl Into<Hint>) -> Result<Reader, PipeError> {
        self.make_reader(Some(hint.into()))
    }

    fn make_reader(&self, hint: Option<Hint>) -> Result<Reader, PipeError> {
        let made = self.make_reader_locked(hint);
        if let Err(e) = &made {
            // After the slot list's lock is released.
            self.shared.trace_refused(e);
        }
        made
    }

    fn make_reader_locked(&self, hint: Option<Hint>) -> Result<Reader, PipeError> {
        let shared = &self.shared;
        let limit = shared.limits.max_readers;
        // Relaxed: a unique number, nothing is published with it.
        let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
        let slot = Arc::new(ReaderSlot::new(id, hint));
        let mut slots = shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        // Room for `max_readers` slots was reserved when the pipe was made
        // and the list never holds more than the live readers, so this
        // allocates nothing; it keeps the push below infallible regardless.
        buffer::try_reserve(&mut slots, 1)?;
        // Relaxed: validated by the CAS.
        let mut cur = shared.readers.load(Ordering::Relaxed);
        loop {
            if (cur & LIVE_MASK) as usize >= limit {
                return Err(PipeError::ReaderLimit { limit });
            }
            // AcqRel: Release publishes the new reader to the writer's
            // broken-pipe check; Acquire orders after earlier drops.
            match shared.readers.compare_exchange_weak(
                cur,
                (cur + 1) | EVER,
                Ordering::AcqRel,
                Ordering::Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        slots.push(slot.clone());
        drop(slots);
        // Acquire: pairs with the writer's Release (never moved before
        // SEALED, and we hold the factory, so this is the first segment).
        let head = shared.head.load(Ordering::Acquire);
        Ok(Reader::new(shared.clone(), head, slot))
    }

    /// Live readers now.
    pub fn readers(&self) -> usize {
        // Relaxed: a statistic.
        (self.shared.readers.load(Ordering::Relaxed) & LIVE_MASK) as usize
    }

    /// The writer's state now (open, closed, failed with its errno).
    pub fn writer_state(&self) -> WriterState {
        // Acquire: pairs with the writer's Release store of its state.
        WriterState::decode(self.shared.published.state.load(Ordering::Acquire))
    }

    /// Bytes the writer has committed.
    pub fn written(&self) -> u64 {
        // Acquire: pairs with the writer's Release commit.
        self.shared.published.committed.load(Ordering::Acquire)
    }

    /// Every live reader (id, hint, position), in joining order; for
    /// debugging.
    pub fn reader_info(&self) -> Vec<ReaderInfo> {
        let slots = self.shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .map(|s| ReaderInfo {
                id: s.id,
                hint: s.hint.clone(),
                // Relaxed: a statistic.
                position: s.pos.load(Ordering::Relaxed),
            })
            .collect()
    }

    /// Stops new readers from joining: streaming mode. Same as dropping.
    pub fn seal(self) {}
}

impl Drop for ReaderFactory {
    fn drop(&mut self) {
        // Release: every reader this factory made (and its slot push) is
        // published to the writer that Acquire-loads `SEALED`.
        self.shared.readers.fetch_or(SEALED, Ordering::Release);
    }
}

/// Creates a pipe whose writer notifies a new handle of `queue` registered
/// with `hint`. Returns the writer and the factory for readers.
///
/// Fails with [`PipeError::InvalidLimit`] on bad limits,
/// [`PipeError::OutOfMemory`] if the memory the limits ask for up front
/// (the first segment, [`Limits::initial_capacity`], a few words per
/// possible reader) cannot be allocated, and [`PipeError::Queue`] if the
/// queue has no free handle or its memory budget refuses the pipe's
/// segments and bookkeeping ([`QueueError::MemoryBudget`](crate::QueueError::MemoryBudget)). A failed call leaves nothing behind: no handle
/// stays registered and no memory is held.
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
/// use notification_queue::mempipe::{pipe, Limits, PipeError};
///
/// let q = NotificationQueue::new(Config::default());
/// assert!(matches!(
///     pipe(&q, "bad", Limits::default().segment_size(1000)),
///     Err(PipeError::InvalidLimit { name: "segment_size", .. })
/// ));
/// let (w, f) = pipe(&q, "ok", Limits::default()).unwrap();
/// assert_eq!(w.tell(), 0);
/// # drop(f);
/// ```
pub fn pipe(
    queue: &NotificationQueue,
    hint: impl Into<Hint>,
    limits: Limits,
) -> Result<(Writer, ReaderFactory), PipeError> {
    pipe_with_storage(queue, hint, limits, NoStorage)
}

/// [`pipe`] whose writer hands every write to `storage` before readers
/// see it, and flushes it on close (see [`PipeStorage`]).
pub fn pipe_with_storage<S: PipeStorage>(
    queue: &NotificationQueue,
    hint: impl Into<Hint>,
    limits: Limits,
    storage: S,
) -> Result<(Writer<S>, ReaderFactory), PipeError> {
    build(queue, hint.into(), limits, storage, Vec::new())
}

/// Makes the pipe ([`make`], reporting a refusal), then copies in the
/// initial bytes that were not adopted.
fn build<S: PipeStorage>(
    queue: &NotificationQueue,
    hint: Hint,
    limits: Limits,
    storage: S,
    initial: Vec<u8>,
) -> Result<(Writer<S>, ReaderFactory), PipeError> {
    let (mut writer, factory, copy) = match make(queue, &hint, limits, storage, initial) {
        Ok(made) => made,
        Err(e) => {
            trace::pipe_refused(None, &hint, e.errno(), &e);
            return Err(e);
        }
    };
    // Copied in as a first write (no reader exists yet, nothing is sealed:
    // only the allocator can refuse it, which the writer reports; the
    // caller checked the limit).
    let mut rest = &copy[..];
    while !rest.is_empty() {
        let n = writer.write(rest)?;
        rest = rest.get(n..).unwrap_or_default();
    }
    Ok((writer, factory))
}

/// [`pipe`] whose stream starts with `initial` (readers read it first; it
/// counts as written). The bytes are adopted without a copy when they fit
/// one segment and their capacity holds a whole segment
/// (`initial.len() <= segment_size <= initial.capacity()`); otherwise they
/// are copied in. More than [`Limits::max_bytes`] is
/// [`PipeError::InvalidLimit`].
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
/// use notification_queue::mempipe::{pipe_with_bytes, Limits};
///
/// let q = NotificationQueue::new(Config::default());
/// let mut bytes = Vec::with_capacity(4096);
/// bytes.extend_from_slice(b"already here");
/// let (w, f) = pipe_with_bytes(&q, "p", Limits::default().segment_size(4096), bytes).unwrap();
/// assert_eq!(w.tell(), 12);
/// let mut r = f.reader().unwrap();
/// let mut buf = [0u8; 32];
/// assert_eq!(r.try_read(&mut buf), Ok(Some(12)));
/// assert_eq!(&buf[..12], b"already here");
/// ```
pub fn pipe_with_bytes(
    queue: &NotificationQueue,
    hint: impl Into<Hint>,
    limits: Limits,
    initial: Vec<u8>,
) -> Result<(Writer, ReaderFactory), PipeError> {
    let hint = hint.into();
    if initial.len() as u64 > limits.max_bytes {
        let e = PipeError::InvalidLimit {
            name: "initial bytes",
            value: initial.len() as u64,
        };
        trace::pipe_refused(None, &hint, e.errno(), &e);
        return Err(e);
    }
    build(queue, hint, limits, NoStorage, initial)
}

/// The writer and the factory, and the initial bytes left to copy in.
type Made<S> = (Writer<S>, ReaderFactory, Vec<u8>);

fn make<S: PipeStorage>(
    queue: &NotificationQueue,
    hint: &Hint,
    limits: Limits,
    storage: S,
    initial: Vec<u8>,
) -> Result<Made<S>, PipeError> {
    limits.validate(queue)?;
    let seg = limits.segment_size;
    let segments = limits.initial_capacity.div_ceil(seg).max(1);
    // More than the address space can hold fails before anything is made.
    segments
        .checked_mul(seg)
        .filter(|&bytes| bytes <= isize::MAX as usize)
        .ok_or(PipeError::OutOfMemory { bytes: usize::MAX })?;
    let extra = segments - 1;
    // The queue's budget is charged for everything first (released again
    // if the pipe is not made; see `Pending`).
    let bookkeeping = bookkeeping_charge(&limits);
    let bytes = segments
        .saturating_mul(segment_charge(seg))
        .saturating_add(bookkeeping);
    queue.budget().try_charge(Category::Pipes, bytes)?;
    let mut pending = Pending {
        budget: queue.budget(),
        bytes,
    };
    // Everything sized by the limits is allocated fallibly, and before the
    // handle is registered, so a refusal leaves nothing behind.
    let mut slots = Vec::new();
    buffer::try_reserve(&mut slots, limits.max_readers)?;
    let mut watched = Vec::new();
    buffer::try_reserve(&mut watched, limits.max_readers)?;
    let mut wakers = Vec::new();
    buffer::try_reserve(&mut wakers, limits.max_readers)?;
    let mut pool = Vec::new();
    buffer::try_reserve(&mut pool, extra.max(writer::POOL_CAP))?;
    let (head, adopted, copy) = if initial.is_empty() {
        (Segment::alloc(seg)?, 0, Vec::new())
    } else {
        let len = initial.len();
        match Segment::adopt(initial, seg) {
            Ok(head) => (head, len, Vec::new()),
            Err(bytes) => (Segment::alloc(seg)?, 0, bytes),
        }
    };
    let handle = buffer::alloc_segments(&mut pool, extra, seg)
        .and_then(|()| queue.register(hint.clone()).map_err(PipeError::from));
    let handle = match handle {
        Ok(h) => h,
        Err(e) => {
            // SAFETY: made above, in no chain, seen by nobody else.
            unsafe { buffer::free_all(pool.into_iter().chain([head])) };
            return Err(e);
        }
    };
    let shared = Arc::new(Shared {
        queue: queue.clone(),
        handle,
        hint: hint.clone(),
        published: CachePadded::new(Published {
            committed: AtomicU64::new(0),
            state: AtomicU64::new(buffer::OPEN),
        }),
        head: AtomicPtr::new(head),
        segment_size: seg,
        limits,
        readers: AtomicU64::new(0),
        slots: Mutex::new(slots),
        allocated: AtomicUsize::new((extra + 1) * seg),
        bookkeeping,
        sleepers: CachePadded::new(AtomicUsize::new(0)),
        space: CachePadded::new(SpaceWait::new()),
        next_id: AtomicU64::new(0),
    });
    // From here `Shared` (and the writer, for its pool) release the charge.
    pending.bytes = 0;
    drop(pending);
    let mut writer = Writer::new(shared.clone(), head, pool, watched, wakers, storage);
    let factory = ReaderFactory { shared };
    if adopted > 0 {
        writer.adopted(adopted as u64);
    }
    Ok((writer, factory, copy))
}
