//! The pipe's [`Writer`]: append, publish, notify; close and fail.
//!
//! Only the writer mutates the buffer, so its bookkeeping (tail segment,
//! bytes written, its own state, the segment pool) is plain fields behind
//! `&mut self`. A write copies bytes into the tail (linking new segments as
//! needed), stores the new length with `Release`, wakes the sleeping readers
//! (see `buffer::ReaderSlot`), then notifies the pipe's handle with the
//! length. Close and failure store the terminal state with `Release` *after*
//! the last commit, wake the sleeping readers, notify the handle (see
//! `event`) and unregister it; readers then drain and see EOF/EPIPE.
//!
//! Reclamation runs here too (see `buffer`): on every new segment, and when
//! the byte limit is reached, the writer retires segments every live reader
//! has passed, once the factory is sealed.

use super::buffer::{ReaderSlot, Segment, WriterState};
use super::event::{PipeEvent, valid_errno};
use super::storage::{NoStorage, PipeStorage, storage_errno};
use super::{ENOSPC, EPIPE, EVER, LIVE_MASK, PipeError, SEALED, Shared};
use crate::Handle;
use crate::sync::park;
use crate::sync::{Arc, Ordering, fence};
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::ptr;
use core::task::{Context, Poll, Waker};

/// Retired segments kept for reuse (beyond these they are freed).
#[cfg(not(notification_queue_loom))]
pub(super) const POOL_CAP: usize = 4;
/// Under loom keep the pool tiny so models also exercise freeing.
#[cfg(notification_queue_loom)]
pub(super) const POOL_CAP: usize = 1;

/// The writing end of a pipe ([`pipe`](super::pipe)).
///
/// [`write`](Self::write) never blocks: it appends (up to
/// [`Limits::max_bytes`]) and wakes readers. [`write_wait`](Self::write_wait),
/// [`write_timeout`](Self::write_timeout), [`write_deadline`](Self::write_deadline)
/// and [`write_async`](Self::write_async) wait for space in streaming mode,
/// as do the `std::io::Write`, `embedded_io::Write` and
/// `embedded_io_async::Write` impls. Dropping the writer closes it.
///
/// [`Limits::max_bytes`]: super::Limits::max_bytes
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
/// use notification_queue::mempipe::{pipe, Limits, PipeError};
///
/// let q = NotificationQueue::new(Config::default());
/// let (mut w, f) = pipe(&q, "w", Limits::default()).unwrap();
/// let mut r = f.reader().unwrap();
/// assert_eq!(w.write(b""), Ok(0)); // wakes nobody
/// assert_eq!(w.write(b"abc"), Ok(3));
/// assert_eq!(w.tell(), 3);
/// w.set_error(5).unwrap();
/// assert_eq!(w.write(b"x"), Err(PipeError::Failed { errno: 5 }));
/// let mut buf = [0u8; 8];
/// assert_eq!(r.read(&mut buf), Ok(3)); // drains first...
/// assert_eq!(r.read(&mut buf), Err(PipeError::BrokenPipe { writer_errno: Some(5) }));
/// ```
#[derive(Debug)]
pub struct Writer<S: PipeStorage = NoStorage> {
    shared: Arc<Shared>,
    /// The segment being filled (always in the chain).
    tail: *mut Segment,
    /// Stream offset of `tail`'s first byte.
    tail_base: u64,
    /// The oldest segment in the chain (mirrors `Shared::head`).
    head: *mut Segment,
    /// Stream offset of `head`'s first byte.
    head_base: u64,
    /// Bytes written and committed.
    written: u64,
    /// Bytes the next writes may place with no check but this one: room
    /// left in `tail` and under the byte limit, as the last full-path write
    /// found it (room only grows between full-path writes: reclaiming and
    /// sealing happen there). 0 until the first write and once the writer
    /// is closed or has failed, so a write it admits is one of an open
    /// writer that needs no new segment.
    fast_room: u64,
    state: WriterState,
    /// The failure is a broken pipe (writes return `BrokenPipe`).
    broken: bool,
    /// [`close`](Writer::close) was called (writes return `Closed`).
    closed: bool,
    /// Retired (or preallocated) segments no reader can reach. Its
    /// capacity is at least `POOL_CAP`, so retiring never allocates.
    pool: Vec<*mut Segment>,
    /// Every reader's slot, copied once the factory is sealed (room for
    /// `max_readers` reserved up front, so the copy never allocates).
    watched: Vec<Arc<ReaderSlot>>,
    /// Whether `watched` has been filled (the factory was seen sealed).
    sealed: bool,
    /// Wakers taken from reader slots, woken after the slot lock is
    /// released (room for `max_readers` reserved up front).
    wakers: Vec<Waker>,
    /// Where every write goes besides the buffer.
    storage: S,
    /// Set while the writer sits behind a [`SharedWriter`]'s lock: the
    /// notifications a call makes (reader wakes, the handle's notify and
    /// unregister, all of which may run client wakers) are collected here
    /// and delivered by the shared writer after it unlocks, so no client
    /// code runs under its lock.
    ///
    /// [`SharedWriter`]: super::SharedWriter
    pub(super) deferred: Option<Deferred>,
}

/// Notifications a shared writer delivers after unlocking.
#[derive(Debug, Default)]
pub(super) struct Deferred {
    /// Reader wakers taken while locked.
    wakers: Vec<Waker>,
    /// Bytes committed since the last delivery (one coalesced notify).
    data: u64,
    /// The terminal event, if the writer finished, and why.
    end: Option<(PipeEvent, &'static str)>,
    /// A refusal to report (`Full`, `OutOfMemory`).
    refused: Option<PipeError>,
}

impl Deferred {
    /// Wakes, notifies and (after a terminal event) unregisters, in the order
    /// the plain writer does it. The caller holds no lock.
    // The shared writer (its only caller) is left out of the loom build.
    #[cfg_attr(notification_queue_loom, allow(dead_code))]
    pub(super) fn deliver(&mut self, shared: &Shared) {
        for w in self.wakers.drain(..) {
            w.wake();
        }
        if let Some(e) = self.refused.take() {
            shared.trace_refused(&e);
        }
        if self.data > 0 {
            let data = core::mem::take(&mut self.data);
            let _ = shared
                .queue
                .notify(shared.handle, PipeEvent::Data(data).to_arg());
        }
        if let Some((end, cause)) = self.end.take() {
            shared.trace_end(end, cause);
            let _ = shared.queue.notify(shared.handle, end.to_arg());
            let _ = shared.queue.unregister(shared.handle);
        }
    }
}

// SAFETY: the raw segment pointers point into the chain owned by `Shared`
// (kept alive by our `Arc`) or into our own pool; segments are `Sync` data
// (atomics and cells accessed under the publication protocol).
// The storage moves with the writer, so it must be `Send` itself.
unsafe impl<S: PipeStorage + Send> Send for Writer<S> {}
// SAFETY: `&Writer` only reads plain fields (`tell`, `state`, `footprint`)
// and lends `&S` (`storage`), which needs `S: Sync`.
unsafe impl<S: PipeStorage + Sync> Sync for Writer<S> {}

impl<S: PipeStorage> Writer<S> {
    pub(super) fn new(
        shared: Arc<Shared>,
        head: *mut Segment,
        pool: Vec<*mut Segment>,
        watched: Vec<Arc<ReaderSlot>>,
        wakers: Vec<Waker>,
        storage: S,
    ) -> Self {
        Self {
            shared,
            tail: head,
            tail_base: 0,
            head,
            head_base: 0,
            written: 0,
            fast_room: 0,
            state: WriterState::Open,
            broken: false,
            closed: false,
            pool,
            watched,
            sealed: false,
            wakers,
            storage,
            deferred: None,
        }
    }

    /// The writer's shared state (for a shared writer's deferred delivery).
    #[cfg_attr(notification_queue_loom, allow(dead_code))]
    pub(super) fn shared_state(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// The first `len` bytes of the head segment are the stream's initial
    /// bytes (adopted before any reader exists): commit them.
    pub(super) fn adopted(&mut self, len: u64) {
        self.written = len;
        // Release: the adopted bytes are in place; pairs with the readers'
        // Acquire loads of `committed` (no reader exists yet anyway).
        self.shared
            .published
            .committed
            .store(len, Ordering::Release);
    }

    /// The storage every write goes to ([`pipe_with_storage`](super::pipe_with_storage)).
    pub fn storage(&self) -> &S {
        &self.storage
    }

    /// The storage, mutably (for example to read back what it kept).
    pub fn storage_mut(&mut self) -> &mut S {
        &mut self.storage
    }

    /// Appends `buf` and wakes the readers; returns how many bytes were
    /// written. Never waits.
    ///
    /// - Closed: [`PipeError::Closed`]; failed: [`PipeError::Failed`], or
    ///   [`PipeError::BrokenPipe`] after a broken pipe (all even for an
    ///   empty `buf`).
    /// - Empty `buf`: `Ok(0)`, nobody is woken.
    /// - No reader left (one existed, or the factory is gone, and every
    ///   reader has gone): [`PipeError::BrokenPipe`], and the writer stays
    ///   failed with `EPIPE` ([`error`](Self::error)); a reader that joins
    ///   afterwards reads what was written, then gets `BrokenPipe` carrying
    ///   `EPIPE`. Before any reader joined, writes succeed and are kept for
    ///   the readers to come.
    /// - Byte limit: writes what fits; [`PipeError::Full`] if nothing fits.
    ///   While every byte is kept (the factory is alive) a full pipe can
    ///   never drain: that write fails the writer with `ENOSPC`, and its
    ///   readers drain, then get `BrokenPipe` carrying `ENOSPC`.
    /// - The allocator refuses a segment the write needs:
    ///   [`PipeError::OutOfMemory`], and nothing of `buf` is written.
    /// - The queue's memory budget refuses it: [`PipeError::Queue`] carrying
    ///   [`QueueError::MemoryBudget`](crate::QueueError::MemoryBudget);
    ///   nothing of `buf` is written and the writer stays open.
    pub fn write(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        match self.try_write(buf) {
            // Only the non-waiting write reports `Full` (for the waiting
            // forms it means "wait").
            Err(e @ PipeError::Full { .. }) => Err(self.refused(e)),
            r => r,
        }
    }

    /// Reports a refusal now, or after the shared writer's lock is
    /// released; returns it.
    fn refused(&mut self, e: PipeError) -> PipeError {
        match &mut self.deferred {
            Some(d) => d.refused = Some(e),
            None => self.shared.trace_refused(&e),
        }
        e
    }

    /// [`write`](Self::write) without reporting `Full`.
    #[inline]
    pub(super) fn try_write(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        let n = buf.len();
        // The common small write: open, room in the tail segment and under
        // the limit (`fast_room`), a reader may still read. Everything else
        // (errors, empty writes, a new segment, the limit) takes the full
        // path, which makes the same checks in the same order.
        if n != 0 && n as u64 <= self.fast_room && !self.no_readers_left() {
            // The storage keeps the bytes before any reader can see them.
            if let Err(errno) = self.storage.append(self.written, buf) {
                return Err(self.storage_failed(errno));
            }
            let off = (self.written - self.tail_base) as usize;
            // SAFETY: `tail` is live (in the chain, kept by `Shared`) and
            // has `fast_room >= n` bytes left after `off`; the bytes
            // `written..written + n` are at or above `committed`, so no
            // reader reads them until our next commit.
            unsafe { (*self.tail).write_at(off, buf) };
            self.fast_room -= n as u64;
            return Ok(self.commit(n));
        }
        self.write_slow(buf)
    }

    /// Commits `n` more bytes (placed already): publishes them, notifies
    /// the handle, wakes the sleeping readers. Returns `n`.
    #[inline]
    fn commit(&mut self, n: usize) -> usize {
        self.written += n as u64;
        // Release: the bytes (and any new segment links) are in place;
        // pairs with the readers' Acquire loads of `committed`.
        self.shared
            .published
            .committed
            .store(self.written, Ordering::Release);
        let notified = match &mut self.deferred {
            Some(d) => {
                d.data = d.data.saturating_add(n as u64);
                false
            }
            // A failure means someone else unregistered our handle: only
            // its outside waiters and subscribers miss this; readers do not
            // use it.
            None => self
                .shared
                .queue
                .notify(self.shared.handle, PipeEvent::Data(n as u64).to_arg())
                .is_ok(),
        };
        if notified {
            // The notify succeeded, so it ended with a successful `AcqRel`
            // CAS on the handle's word, after our store of `committed`: on
            // x86-64 that locked instruction is the `SeqCst` fence the
            // check of `sleepers` needs, and a second one would only cost
            // time (about a tenth of a 16-byte write with three readers).
            crate::sync::fence_after_locked_rmw();
            self.wake_sleepers();
        } else {
            self.wake_readers();
        }
        n
    }

    /// The storage refused a write: the writer fails with its errno.
    #[cold]
    fn storage_failed(&mut self, errno: i32) -> PipeError {
        let errno = storage_errno(errno);
        self.finish(WriterState::Failed(errno), "storage");
        PipeError::Storage { errno }
    }

    /// [`try_write`](Self::try_write) for every case but the common small
    /// write; sets `fast_room` for the writes after it.
    #[inline(never)]
    fn write_slow(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        self.check_writable()?;
        if buf.is_empty() {
            return Ok(0);
        }
        if self.no_readers_left() {
            self.broken = true;
            self.finish(WriterState::Failed(EPIPE), "broken_pipe");
            return Err(PipeError::BrokenPipe { writer_errno: None });
        }
        let mut room = self.room();
        if room == 0 {
            self.reclaim();
            room = self.room();
            if room == 0 {
                if !self.sealed {
                    // Every byte is kept: nothing will ever free room.
                    self.finish(WriterState::Failed(ENOSPC), "full");
                }
                return Err(PipeError::Full {
                    limit: self.shared.limits.max_bytes,
                });
            }
        }
        let n = room.min(buf.len() as u64) as usize;
        let (now, _) = buf.split_at(n);
        // Every segment the write needs is in the pool before a byte moves,
        // so a refused allocation leaves the stream untouched.
        let need = self.segments_needed(n);
        if need > 0 {
            self.reclaim();
            if let Err(e) = self.reserve(need) {
                return Err(self.refused(e));
            }
        }
        // The storage keeps the bytes before any reader can see them.
        if let Err(errno) = self.storage.append(self.written, now) {
            return Err(self.storage_failed(errno));
        }
        let placed = self.append(now);
        // Room left in the tail segment and under the limit after these
        // bytes (the limit's room only grows until the next full path).
        let seg = self.shared.segment_size as u64;
        let after = self.written + placed as u64;
        self.fast_room = (self.tail_base + seg - after).min(self.room() - placed as u64);
        Ok(self.commit(placed))
    }

    /// [`write`](Self::write) that waits for space instead of returning
    /// [`PipeError::Full`] (streaming mode; while every byte is kept a
    /// full pipe fails with `ENOSPC` instead, see `write`). Writes at least
    /// one byte, or returns an error; woken when the slowest reader moves
    /// past a segment end or leaves (then, with no reader left, it returns
    /// [`PipeError::BrokenPipe`]).
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue};
    /// use notification_queue::mempipe::{pipe, Limits};
    ///
    /// let q = NotificationQueue::new(Config::default());
    /// let (mut w, f) = pipe(&q, "bp", Limits::default().segment_size(16).max_bytes(32)).unwrap();
    /// let mut r = f.reader().unwrap();
    /// f.seal(); // streaming mode
    /// let t = std::thread::spawn(move || {
    ///     let mut buf = [0u8; 64];
    ///     let mut total = 0;
    ///     while let Ok(n @ 1..) = r.read(&mut buf) { total += n; }
    ///     total
    /// });
    /// let mut left = 1000;
    /// while left > 0 {
    ///     left -= w.write_wait(&vec![1u8; left]).unwrap();
    /// }
    /// w.close().unwrap();
    /// assert_eq!(t.join().unwrap(), 1000);
    /// ```
    pub fn write_wait(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        self.write_blocking(buf, None)
    }

    /// The async form of [`write_wait`](Self::write_wait): a plain future
    /// for any executor (`Send`).
    ///
    /// # Cancel safety
    ///
    /// Cancel-safe: bytes are written only in the poll that returns their
    /// count; dropping the future while it waits writes nothing.
    pub async fn write_async(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        WriteFuture { writer: self, buf }.await
    }

    pub(super) fn write_blocking(
        &mut self,
        buf: &[u8],
        deadline: park::Deadline,
    ) -> Result<usize, PipeError> {
        // The common case first: room now, no waker needed.
        match self.try_write(buf) {
            Err(PipeError::Full { .. }) if self.state == WriterState::Open => {}
            done => return done,
        }
        let parker = park::Parker::new();
        let waker = parker.waker();
        let res = loop {
            if let Poll::Ready(r) = self.poll_write(&waker, buf) {
                break r;
            }
            if !parker.park_until(deadline) {
                break Err(PipeError::TimedOut);
            }
        };
        self.shared.space.disarm();
        res
    }

    /// One attempt of a waiting write: done (or failed) now, else the
    /// writer's space wait is armed with `waker` and `Pending` returned.
    pub(super) fn poll_write(
        &mut self,
        waker: &Waker,
        buf: &[u8],
    ) -> Poll<Result<usize, PipeError>> {
        match self.try_write(buf) {
            Err(PipeError::Full { .. }) if self.state == WriterState::Open => {}
            done => return Poll::Ready(done),
        }
        // Full in streaming mode: arm, then retry (it reloads every
        // reader's position after the fence in `arm`).
        self.shared.space.arm(waker);
        match self.try_write(buf) {
            Err(PipeError::Full { .. }) if self.state == WriterState::Open => Poll::Pending,
            done => {
                self.shared.space.disarm();
                Poll::Ready(done)
            }
        }
    }

    /// `Ok` while writes may go on; else the error every write returns.
    fn check_writable(&self) -> Result<(), PipeError> {
        if self.closed {
            return Err(PipeError::Closed);
        }
        match self.state {
            WriterState::Open => Ok(()),
            WriterState::Closed => Err(PipeError::Closed),
            WriterState::Failed(_) if self.broken => {
                Err(PipeError::BrokenPipe { writer_errno: None })
            }
            WriterState::Failed(errno) => Err(PipeError::Failed { errno }),
        }
    }

    /// Every reader that could read has gone: one existed (or the factory
    /// is gone) and none is alive.
    fn no_readers_left(&self) -> bool {
        // Acquire: pairs with the AcqRel/Release RMWs of reader creation,
        // reader drop/close and sealing.
        let readers = self.shared.readers.load(Ordering::Acquire);
        readers & LIVE_MASK == 0 && readers & (EVER | SEALED) != 0
    }

    /// Closes the writer: readers drain what was written, then see EOF (or,
    /// if the writer failed, its error). Later writes return
    /// [`PipeError::Closed`]. A second close is [`PipeError::Closed`]
    /// (`EBADF`) and changes nothing. Dropping the writer closes it.
    pub fn close(&mut self) -> Result<(), PipeError> {
        if self.closed {
            return Err(PipeError::Closed);
        }
        self.closed = true;
        // Every later write takes the full path (and fails there).
        self.fast_room = 0;
        if self.state == WriterState::Open {
            if let Err(errno) = self.storage.flush() {
                let errno = storage_errno(errno);
                self.finish(WriterState::Failed(errno), "storage");
                return Err(PipeError::Storage { errno });
            }
            self.finish(WriterState::Closed, "close");
        }
        Ok(())
    }

    /// Marks the writer failed with `errno`: its writes return
    /// [`PipeError::Failed`], its readers drain what was written, then get
    /// [`PipeError::BrokenPipe`] carrying `errno`, and the handle is
    /// notified [`PipeEvent::Failed`]`(errno)`.
    ///
    /// `errno` must be in `1..=`[`MAX_ERRNO`](super::MAX_ERRNO), else
    /// [`PipeError::InvalidErrno`]. A closed writer returns
    /// [`PipeError::Closed`] and one that failed already keeps its first
    /// error and returns it; neither changes.
    pub fn set_error(&mut self, errno: i32) -> Result<(), PipeError> {
        if !valid_errno(errno) {
            return Err(PipeError::InvalidErrno { errno });
        }
        self.check_writable()?;
        self.finish(WriterState::Failed(errno), "set_error");
        Ok(())
    }

    /// Enters the terminal `state` (`cause` names why, for events).
    fn finish(&mut self, state: WriterState, cause: &'static str) {
        self.state = state;
        // Every later write takes the full path (and fails there).
        self.fast_room = 0;
        // Release: after the last commit; a reader that Acquire-loads the
        // terminal state and then reloads `committed` sees the final length.
        self.shared
            .published
            .state
            .store(state.encode(), Ordering::Release);
        self.wake_readers();
        let event = match state {
            WriterState::Failed(e) => PipeEvent::Failed(e),
            _ => PipeEvent::Closed,
        };
        if let Some(d) = &mut self.deferred {
            d.end = Some((event, cause));
            return;
        }
        self.shared.trace_end(event, cause);
        let _ = self.shared.queue.notify(self.shared.handle, event.to_arg());
        // Wakes every waiter with `Closed`; frees the handle for the queue.
        let _ = self.shared.queue.unregister(self.shared.handle);
    }

    /// Readers asleep in a read now, waiting for data or the end of the
    /// stream (a statistic). A read future that was polled and then leaked
    /// counts until the next write or close wakes it.
    pub fn waiting_readers(&self) -> usize {
        // Relaxed: a statistic.
        self.shared.sleepers.load(Ordering::Relaxed)
    }

    /// Takes the waker a waiting write left in the space wait (and
    /// disarms it), for the caller to drop with no lock held. Only
    /// `SharedWriter` uses it, and that module is left out of loom builds.
    #[cfg(not(notification_queue_loom))]
    pub(super) fn take_space_waker(&mut self) -> Option<core::task::Waker> {
        self.shared.space.disarm();
        self.shared.space.waker.take()
    }

    /// Wakes every sleeping reader, after a commit or the terminal state.
    #[inline]
    fn wake_readers(&mut self) {
        // SeqCst: orders our store of `committed` / the state before the
        // load of `sleepers`, against the reader's fence between arming its
        // slot and re-checking (see `buffer::ReaderSlot`).
        fence(Ordering::SeqCst);
        self.wake_sleepers();
    }

    /// Wakes every armed reader. The caller has fenced (`SeqCst`) since
    /// its store of `committed` or the state.
    #[inline]
    fn wake_sleepers(&mut self) {
        // Relaxed: the caller's fence gives the ordering.
        if self.shared.sleepers.load(Ordering::Relaxed) != 0 {
            self.wake_armed();
        }
    }

    /// Disarms every armed reader slot and wakes its waker.
    #[cold]
    fn wake_armed(&mut self) {
        let slots = self.shared.slots.lock().unwrap_or_else(|e| e.into_inner());
        for slot in slots.iter() {
            if slot.disarm_by_writer(&self.shared.sleepers) {
                if let Some(w) = slot.waker.take() {
                    if self.wakers.len() < self.wakers.capacity() {
                        // Within the reserved capacity: no allocation.
                        self.wakers.push(w);
                    } else {
                        // Not reached: there are at most `max_readers` slots
                        // and room for as many wakers.
                        w.wake();
                    }
                }
            }
        }
        drop(slots);
        if let Some(d) = &mut self.deferred {
            // Behind a shared writer's lock: woken after it unlocks.
            d.wakers.append(&mut self.wakers);
            return;
        }
        // Outside the lock: a waker may run arbitrary code.
        for w in self.wakers.drain(..) {
            w.wake();
        }
    }

    /// Bytes written so far.
    pub fn tell(&self) -> u64 {
        self.written
    }

    /// Whether [`close`](Self::close) happened.
    pub fn is_closed(&self) -> bool {
        self.closed
    }

    /// The state readers see: open, closed, or failed with an errno.
    pub fn state(&self) -> WriterState {
        self.state
    }

    /// The errno the writer failed with, if it failed: the one given to
    /// [`set_error`](Self::set_error), `EPIPE` after a broken pipe, `ENOSPC`
    /// after a full pipe that could never drain.
    pub fn error(&self) -> Option<i32> {
        match self.state {
            WriterState::Failed(e) => Some(e),
            _ => None,
        }
    }

    /// The queue handle this writer notifies. Others may wait on or
    /// subscribe to it; it is unregistered when the writer closes or fails.
    ///
    /// Arguments (decode them with [`PipeEvent::from_arg`]): after every
    /// non-empty write, the bytes it wrote (`>= 0`, saturated at
    /// `i64::MAX`); on failure, `-errno` (`errno` in `1..=4095`: `EPIPE`
    /// for a broken pipe, `ENOSPC` for a full pipe that cannot drain, or
    /// the one given to [`set_error`](Self::set_error)); on a clean close,
    /// [`CLOSED_ARG`](super::CLOSED_ARG) (`i64::MIN`).
    pub fn handle(&self) -> Handle {
        self.shared.handle
    }

    /// Bytes of segment memory the pipe holds now (chain and recycling
    /// pool). Bounded in streaming mode; grows with `tell` otherwise.
    pub fn footprint(&self) -> usize {
        self.shared.footprint()
    }

    /// Bytes the limit still admits. In streaming mode room comes back a
    /// segment at a time (once the slowest reader is strictly past its
    /// end), so a limit of at most one segment counts as one segment plus
    /// one byte: otherwise the writer could wait forever for readers that
    /// have read everything.
    fn room(&self) -> u64 {
        let held = self.written - self.head_base;
        let mut limit = self.shared.limits.max_bytes;
        if self.sealed {
            limit = limit.max(self.shared.segment_size as u64 + 1);
        }
        limit.saturating_sub(held)
    }

    /// New segments `append` links to place `n` more bytes.
    fn segments_needed(&self, n: usize) -> usize {
        let seg = self.shared.segment_size;
        // At most `seg`: `tail` holds the byte at `written` or ends there.
        let used = (self.written - self.tail_base) as usize;
        n.saturating_sub(seg - used).div_ceil(seg)
    }

    /// Makes sure the pool holds at least `need` segments, charging new
    /// ones to the queue's budget first. On failure the pool, the footprint
    /// and the budget are as they were.
    fn reserve(&mut self, need: usize) -> Result<(), PipeError> {
        let have = self.pool.len();
        if have >= need {
            return Ok(());
        }
        let seg = self.shared.segment_size;
        self.shared.charge_segments(need - have)?;
        if let Err(e) = super::buffer::alloc_segments(&mut self.pool, need - have, seg) {
            self.shared.release_segments(need - have);
            return Err(e);
        }
        // Relaxed: a statistic.
        self.shared
            .allocated
            .fetch_add((need - have) * seg, Ordering::Relaxed);
        Ok(())
    }

    /// Copies `src` in at `written`, linking pooled segments as needed;
    /// returns the bytes placed (all of `src` after a successful `reserve`).
    fn append(&mut self, mut src: &[u8]) -> usize {
        let seg = self.shared.segment_size;
        let mut placed = self.written;
        while !src.is_empty() {
            let mut off = (placed - self.tail_base) as usize;
            if off >= seg {
                if !self.grow() {
                    break;
                }
                off = 0;
            }
            let k = (seg - off).min(src.len());
            let (now, rest) = src.split_at(k);
            // SAFETY: `tail` is live (in the chain, kept by `Shared`); the
            // bytes `placed..placed + k` are at or above `committed`, so no
            // reader reads them until our next Release store of `committed`.
            unsafe { (*self.tail).write_at(off, now) };
            src = rest;
            placed += k as u64;
        }
        (placed - self.written) as usize
    }

    /// Links a pooled segment after the tail; `false` if the pool is empty
    /// (never after `reserve`).
    fn grow(&mut self) -> bool {
        let seg = self.shared.segment_size;
        let Some(new) = self.pool.pop() else {
            return false;
        };
        // SAFETY: `new` is ours alone: fresh, or retired after every reader
        // passed it (see `reclaim`).
        let new_ref = unsafe { &*new };
        // Relaxed: no reader can reach `new` until the Release link below.
        new_ref.next.store(ptr::null_mut(), Ordering::Relaxed);
        // SAFETY: `tail` is live (in the chain).
        let tail = unsafe { &*self.tail };
        // Release: pairs with a reader's Acquire load of `next` (the commit
        // that covers the new bytes publishes it too).
        tail.next.store(new, Ordering::Release);
        self.tail = new;
        self.tail_base += seg as u64;
        true
    }

    /// Retires every segment all live readers have passed (streaming mode
    /// only: once the factory is sealed).
    fn reclaim(&mut self) {
        if !self.sealed {
            // Acquire: pairs with the factory's Release `fetch_or(SEALED)`,
            // after which the slot list can only shrink.
            if self.shared.readers.load(Ordering::Acquire) & SEALED == 0 {
                return;
            }
            let slots = self.shared.slots.lock().unwrap_or_else(|e| e.into_inner());
            // `watched` has room for `max_readers` slots (reserved when the
            // pipe was made) and the list holds at most that many, so this
            // never allocates; if it ever had to and could not, reclaiming
            // waits for a later call.
            if super::buffer::try_reserve(&mut self.watched, slots.len()).is_err() {
                return;
            }
            self.watched.extend(slots.iter().cloned());
            self.sealed = true;
        }
        let watched = &self.watched;
        // Acquire: pairs with each reader's Release store of its position
        // after its copy (or of `u64::MAX` on drop), so its accesses to the
        // segments below happen-before we reuse them.
        let min = watched
            .iter()
            .map(|s| s.pos.load(Ordering::Acquire))
            .min()
            .unwrap_or(u64::MAX);
        let seg = self.shared.segment_size;
        while self.head != self.tail && (self.head_base + seg as u64) < min {
            let old = self.head;
            // SAFETY: `old` is in the chain and not the tail, so live.
            // Relaxed: we stored this link ourselves.
            let next = unsafe { &*old }.next.load(Ordering::Relaxed);
            self.head = next;
            self.head_base += seg as u64;
            // Release: pairs with `Shared::drop`'s Acquire load.
            self.shared.head.store(next, Ordering::Release);
            if self.pool.len() < POOL_CAP {
                self.pool.push(old);
            } else {
                // SAFETY: every reader is strictly past `old` (or dropped)
                // and never goes back; no new reader can join; it is out of
                // the chain, so we are its only owner.
                unsafe { Segment::free(old) };
                // Relaxed: a statistic.
                self.shared.allocated.fetch_sub(seg, Ordering::Relaxed);
                self.shared.release_segments(1);
            }
        }
    }
}

/// The future of [`Writer::write_async`]: holds only the two borrows.
struct WriteFuture<'a, S: PipeStorage> {
    writer: &'a mut Writer<S>,
    buf: &'a [u8],
}

impl<S: PipeStorage> Future for WriteFuture<'_, S> {
    type Output = Result<usize, PipeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        this.writer.poll_write(cx.waker(), this.buf)
    }
}

impl<S: PipeStorage> Drop for WriteFuture<'_, S> {
    fn drop(&mut self) {
        // A write cancelled while waiting leaves the wait disarmed.
        self.writer.shared.space.disarm();
    }
}

impl<S: PipeStorage> Drop for Writer<S> {
    fn drop(&mut self) {
        if !self.closed {
            let _ = self.close();
        }
        let seg = self.shared.segment_size;
        let pooled = self.pool.len();
        // SAFETY: pooled segments are out of the chain and ours alone.
        unsafe { super::buffer::free_all(self.pool.drain(..)) };
        // Relaxed: a statistic.
        self.shared
            .allocated
            .fetch_sub(pooled * seg, Ordering::Relaxed);
        self.shared.release_segments(pooled);
    }
}
