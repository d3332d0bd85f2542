//! The pipe's [`Reader`]: a private cursor over the shared buffer.
//!
//! # Reading
//!
//! `try_read` is lock-free: Acquire-load `committed`; if the cursor is below
//! it, copy out (following segment links) and publish the new position
//! (Release, for reclamation). Only when nothing is new does it look at the
//! writer's state, and then it *reloads* `committed` after seeing a terminal
//! state (the writer stores that state after its last commit), so the tail
//! written just before close is always drained before EOF or EPIPE.
//!
//! # Waiting
//!
//! When `try_read` finds nothing: poll a little (bounded backoff), then
//! register the waker in this reader's own slot, arm the slot, fence, and
//! `try_read` again (see `buffer::ReaderSlot` for why a commit or close is
//! never missed). Blocking reads drive the same poll with a waker that
//! unparks the thread. The slot belongs to this reader alone, so no other
//! client of the queue and no other reader can make the wait fail; a read
//! future dropped while pending disarms the slot, and one leaked with
//! `mem::forget` only leaves this reader's slot armed until the next wake.
//!
//! # Errors
//!
//! A reader's own error ([`Reader::set_error`]) is a plain field: it is
//! checked first (so it takes precedence over the writer's), consumes
//! nothing, and nobody else can see it.

use super::buffer::{ReaderSlot, Segment, WriterState};
use super::event::valid_errno;
use super::{PipeError, Shared};
use crate::sync::park;
use crate::sync::{Arc, Ordering, fence};
use crate::trace;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

/// One reader of a pipe ([`ReaderFactory::reader`](super::ReaderFactory::reader)).
///
/// Starts at byte 0 and reads at its own pace. `read` blocks, `try_read`
/// never does, `read_async` is a plain future for any executor, and
/// `read_timeout` / `read_deadline` bound the wait.
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
/// use notification_queue::mempipe::{pipe, Limits, PipeError};
///
/// let q = NotificationQueue::new(Config::default());
/// let (mut w, f) = pipe(&q, "r", Limits::default()).unwrap();
/// let mut r = f.reader().unwrap();
/// let mut buf = [0u8; 4];
/// assert_eq!(r.try_read(&mut buf), Ok(None)); // nothing yet
/// w.write(b"hi").unwrap();
/// r.set_error(7).unwrap(); // this reader only
/// assert_eq!(r.set_error(0), Err(PipeError::InvalidErrno { errno: 0 }));
/// assert_eq!(r.read(&mut buf), Err(PipeError::Reader { errno: 7 }));
/// r.clear_error();
/// assert_eq!(r.read(&mut buf), Ok(2));
/// drop(w); // closes
/// assert_eq!(futures::executor::block_on(r.read_async(&mut buf)), Ok(0));
/// ```
#[derive(Debug)]
pub struct Reader {
    shared: Arc<Shared>,
    cur: Cursor,
}

/// The reader's private position in the chain.
#[derive(Debug)]
struct Cursor {
    /// The segment holding `pos` (or ending exactly at `pos`).
    seg: *const Segment,
    /// Stream offset of `seg`'s first byte.
    base: u64,
    /// Bytes read so far.
    pos: u64,
    seg_size: usize,
    /// This reader's own error.
    error: Option<i32>,
    /// [`Reader::close`] was called: `seg` is never followed again.
    closed: bool,
    slot: Arc<ReaderSlot>,
}

// SAFETY: `seg` is the only field that is not `Send` on its own. It points
// into the chain owned by `Shared`, which the owning `Reader`'s `Arc` keeps
// alive wherever the cursor moves; the writer retires a segment only after
// our published position is strictly past it, and we never go back. The
// segment's bytes are cells read under the `committed` protocol, which holds
// from any thread. So the cursor (and every future borrowing it across an
// await) may move to another thread.
unsafe impl Send for Cursor {}
// SAFETY: through `&Cursor` only plain fields (`pos`, `error`) are read;
// `seg` is dereferenced only by `&mut self` methods (`try_read`, `copy`).
unsafe impl Sync for Cursor {}

impl Cursor {
    #[inline]
    fn try_read(&mut self, shared: &Shared, buf: &mut [u8]) -> Result<Option<usize>, PipeError> {
        let published = &shared.published;
        if self.closed {
            return Err(PipeError::Closed);
        }
        if let Some(errno) = self.error {
            return Err(PipeError::Reader { errno });
        }
        if buf.is_empty() {
            return Ok(Some(0));
        }
        // Acquire: pairs with the writer's Release store made after the
        // bytes and segment links were in place.
        let mut committed = published.committed.load(Ordering::Acquire);
        if self.pos >= committed {
            // Acquire: pairs with the writer's Release store of its terminal
            // state, made after its last commit.
            let state = WriterState::decode(published.state.load(Ordering::Acquire));
            if state == WriterState::Open {
                return Ok(None);
            }
            // Acquire: as above; now the final length.
            committed = published.committed.load(Ordering::Acquire);
            if self.pos >= committed {
                return match state {
                    WriterState::Failed(e) => Err(PipeError::BrokenPipe {
                        writer_errno: Some(e),
                    }),
                    _ => Ok(Some(0)),
                };
            }
        }
        let before = self.pos;
        let n = self.copy(committed, buf);
        // Room for a writer waiting for space appears only when a reader
        // moves strictly past a segment end: check for one only then.
        let shift = self.seg_size.trailing_zeros();
        if n > 0 && (self.pos - 1) >> shift > before.saturating_sub(1) >> shift {
            shared.space.wake_writer();
        }
        Ok(Some(n))
    }

    /// Copies up to `committed - pos` bytes; returns how many.
    fn copy(&mut self, committed: u64, buf: &mut [u8]) -> usize {
        let want = (committed - self.pos).min(buf.len() as u64) as usize;
        let seg = self.seg_size;
        let mut done = 0;
        while done < want {
            let mut off = (self.pos - self.base) as usize;
            if off >= seg {
                // SAFETY: `seg` is live: our published position is at most
                // its end, and the writer retires only segments whose end is
                // strictly below every reader's position.
                // Acquire: pairs with the writer's Release link store.
                let next = unsafe { &*self.seg }.next.load(Ordering::Acquire);
                if next.is_null() {
                    // Unreachable: `committed` past this segment's end means
                    // the writer linked the next one before committing.
                    break;
                }
                self.seg = next;
                self.base += seg as u64;
                off = 0;
            }
            let k = (seg - off).min(want - done);
            let Some(dst) = buf.get_mut(done..done + k) else {
                break;
            };
            // SAFETY: `seg` is live (as above); bytes `pos..pos + k` are
            // below the `committed` we Acquire-loaded, so fully written and
            // never written again.
            unsafe { (*self.seg).read_at(off, dst) };
            done += k;
            self.pos += k as u64;
        }
        // Release: pairs with the writer's Acquire load in `reclaim`: our
        // accesses to segments below `pos` happen-before it reuses them.
        self.slot.pos.store(self.pos, Ordering::Release);
        done
    }
}

/// Polls briefly before sleeping: a writer streaming small writes would
/// otherwise pay a park/unpark round trip per write. Spins with exponential
/// backoff (a few hundred cycles), then, for blocking reads only, yields a
/// few times. Skipped under loom (it adds states, not behaviour).
#[inline]
fn spin(
    cur: &mut Cursor,
    shared: &Shared,
    buf: &mut [u8],
    may_yield: bool,
) -> Result<Option<usize>, PipeError> {
    #[cfg(not(notification_queue_loom))]
    {
        let backoff = crossbeam_utils::Backoff::new();
        for _ in 0..if may_yield { 10 } else { 6 } {
            if may_yield {
                backoff.snooze();
            } else {
                backoff.spin();
            }
            if let Some(n) = cur.try_read(shared, buf)? {
                return Ok(Some(n));
            }
        }
    }
    #[cfg(notification_queue_loom)]
    let _ = (cur, shared, buf, may_yield);
    Ok(None)
}

impl Reader {
    pub(super) fn new(shared: Arc<Shared>, head: *const Segment, slot: Arc<ReaderSlot>) -> Self {
        let seg_size = shared.segment_size;
        Self {
            shared,
            cur: Cursor {
                seg: head,
                base: 0,
                pos: 0,
                seg_size,
                error: None,
                closed: false,
                slot,
            },
        }
    }

    /// Reads what is available now, up to `buf.len()`, without waiting:
    /// `Ok(None)` if nothing is new and the writer is open, `Ok(Some(0))`
    /// at EOF (or for an empty `buf`).
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, PipeError> {
        self.cur.try_read(&self.shared, buf)
    }

    /// Reads at least one byte, waiting (blocking the thread) while there is
    /// nothing new. `Ok(0)` is EOF: the writer closed and every byte has been
    /// read. A failed writer gives [`PipeError::BrokenPipe`] after the drain.
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        self.read_blocking(buf, None)
    }

    pub(super) fn read_blocking(
        &mut self,
        buf: &mut [u8],
        deadline: park::Deadline,
    ) -> Result<usize, PipeError> {
        let parker = park::Parker::new();
        let waker = parker.waker();
        let res = loop {
            if let Poll::Ready(r) = self.poll_read(&waker, buf, true) {
                break r;
            }
            if !parker.park_until(deadline) {
                break Err(PipeError::TimedOut);
            }
        };
        self.disarm();
        res
    }

    /// One attempt of a read: data (or the end) now, else the slot is armed
    /// with `waker` and `Pending` is returned.
    fn poll_read(
        &mut self,
        waker: &Waker,
        buf: &mut [u8],
        may_yield: bool,
    ) -> Poll<Result<usize, PipeError>> {
        let Reader { shared, cur } = self;
        let got = (|| {
            if let Some(n) = cur.try_read(shared, buf)? {
                return Ok(Some(n));
            }
            if let Some(n) = spin(cur, shared, buf, may_yield)? {
                return Ok(Some(n));
            }
            cur.slot.waker.register(waker);
            cur.slot.arm(&shared.sleepers);
            // SeqCst: orders the arming above before the re-check below,
            // against the writer's fence between its commit (or terminal
            // state) and its load of `sleepers` (see `buffer::ReaderSlot`).
            fence(Ordering::SeqCst);
            cur.try_read(shared, buf)
        })();
        match got {
            Ok(None) => Poll::Pending,
            Ok(Some(n)) => {
                cur.slot.disarm(&shared.sleepers);
                Poll::Ready(Ok(n))
            }
            Err(e) => {
                cur.slot.disarm(&shared.sleepers);
                Poll::Ready(Err(e))
            }
        }
    }

    /// Disarms this reader's wake slot (after a read ends, however).
    fn disarm(&mut self) {
        self.cur.slot.disarm(&self.shared.sleepers);
    }

    /// The async form of [`read`](Self::read): a plain future, driven by any
    /// executor. The future is `Send`, so a work-stealing executor may move
    /// it between threads.
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: bytes are consumed only in the poll that returns them.
    /// Dropping the future while it is pending leaves nothing behind.
    pub async fn read_async(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        ReadFuture { reader: self, buf }.await
    }

    /// Fails this reader's reads with [`PipeError::Reader`] until
    /// [`clear_error`](Self::clear_error). Touches neither the writer nor
    /// the other readers; consumes nothing; takes precedence over the
    /// writer's error. A later call replaces the errno.
    ///
    /// `errno` must be in `1..=`[`MAX_ERRNO`](super::MAX_ERRNO), else
    /// [`PipeError::InvalidErrno`] and nothing changes.
    pub fn set_error(&mut self, errno: i32) -> Result<(), PipeError> {
        if !valid_errno(errno) {
            return Err(PipeError::InvalidErrno { errno });
        }
        self.cur.error = Some(errno);
        let shared = &self.shared;
        trace::pipe_reader_failed(shared.handle, &shared.hint, self.cur.slot.id, errno);
        Ok(())
    }

    /// Clears this reader's error; reading resumes where it stopped.
    pub fn clear_error(&mut self) {
        self.cur.error = None;
    }

    /// This reader's own error, if set.
    pub fn error(&self) -> Option<i32> {
        self.cur.error
    }

    /// Closes this reader: it leaves the pipe at once (the writer no longer
    /// keeps bytes for it, nor waits for it, and a writer whose readers
    /// have all gone gets a broken pipe). Later reads, and a second close,
    /// return [`PipeError::Closed`] (`EBADF`). Dropping a reader closes it.
    pub fn close(&mut self) -> Result<(), PipeError> {
        if self.cur.closed {
            return Err(PipeError::Closed);
        }
        self.cur.closed = true;
        self.release();
        Ok(())
    }

    /// Whether [`close`](Self::close) happened.
    pub fn is_closed(&self) -> bool {
        self.cur.closed
    }

    /// The writer's state now (open, closed, or failed with its errno),
    /// without reading: a reader may learn the writer ended while unread
    /// bytes remain ([`available`](Self::available)).
    pub fn writer_state(&self) -> WriterState {
        // Acquire: pairs with the writer's Release store of its state.
        WriterState::decode(self.shared.published.state.load(Ordering::Acquire))
    }

    /// Leaves the pipe (close or drop): the slot stops holding segments and
    /// is removed, the live count drops.
    fn release(&mut self) {
        self.disarm();
        // Release: our last segment accesses happen-before the writer's
        // Acquire load of this slot, which now never holds it back.
        self.cur.slot.pos.store(u64::MAX, Ordering::Release);
        self.shared
            .slots
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|s| !Arc::ptr_eq(s, &self.cur.slot));
        // Release: pairs with the writer's Acquire load in its broken-pipe
        // check. The live count is at least 1 (ours), so no borrow.
        self.shared.readers.fetch_sub(1, Ordering::Release);
        // A writer waiting for space may now have room, or no reader.
        self.shared.space.wake_writer();
    }

    /// This reader's id within its pipe (joining order from 0).
    pub fn id(&self) -> u64 {
        self.cur.slot.id
    }

    /// This reader's debug hint, if given
    /// ([`ReaderFactory::reader_with_hint`](super::ReaderFactory::reader_with_hint)).
    pub fn hint(&self) -> Option<&str> {
        self.cur.slot.hint.as_deref()
    }

    /// Bytes this reader has read.
    pub fn position(&self) -> u64 {
        self.cur.pos
    }

    /// Bytes written but not yet read by this reader (0 once closed).
    pub fn available(&self) -> u64 {
        if self.cur.closed {
            return 0;
        }
        // Acquire: as in `try_read`.
        let committed = self.shared.published.committed.load(Ordering::Acquire);
        committed.saturating_sub(self.cur.pos)
    }

    /// Bytes of segment memory the pipe holds now (see
    /// [`Writer::footprint`](super::Writer::footprint)).
    pub fn footprint(&self) -> usize {
        self.shared.footprint()
    }
}

/// The future of [`Reader::read_async`]: holds only the two borrows.
struct ReadFuture<'a> {
    reader: &'a mut Reader,
    buf: &'a mut [u8],
}

impl Future for ReadFuture<'_> {
    type Output = Result<usize, PipeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.reader.poll_read(cx.waker(), this.buf, false)
    }
}

impl Drop for ReadFuture<'_> {
    fn drop(&mut self) {
        // A read cancelled while pending leaves no armed slot behind.
        self.reader.disarm();
    }
}

impl Drop for Reader {
    fn drop(&mut self) {
        if !self.cur.closed {
            self.release();
        }
    }
}
