//! [`SharedWriter`]: one pipe writer used from several threads.
//!
//! The [`Writer`] sits behind a mutex, so each write is one contiguous run
//! of bytes in the stream; the plain `Writer` stays as it is (no lock, no
//! extra check on its path). Waiting for space does not hold the lock:
//! every waiting caller's waker goes into a list, and the writer's single
//! space wait is armed with a waker that wakes the whole list. Whenever a
//! write completes, or the writer closes or fails, the callers still in
//! the list are woken to try again, so a completed write that disarmed the
//! space wait never leaves another caller asleep.

use super::{NoStorage, PipeError, PipeStorage, Writer, WriterState};
use crate::Handle;
use crate::sync::park;
use crate::sync::{Arc, AtomicUsize, Mutex, MutexGuard, Ordering};
use alloc::task::Wake;
use alloc::vec::Vec;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

/// A pipe writer shared by several threads: `Clone`, `Send` and `Sync`
/// ([`Writer::into_shared`]).
///
/// Each write is contiguous in the stream: the bytes one call writes are
/// never interleaved with another call's. [`write_all`](Self::write_all)
/// makes a whole buffer contiguous (other writers wait meanwhile). The pipe
/// closes when [`close`](Self::close) is called or the last clone is
/// dropped.
///
/// Wakers (of writers waiting for space and of readers) are cloned, woken
/// and dropped with no lock held. A [`PipeStorage`]'s methods do run under
/// the writer's lock (that is what keeps the stored stream in write
/// order): they must not call back into the same writer.
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
/// use notification_queue::mempipe::{pipe, Limits};
///
/// let q = NotificationQueue::new(Config::default());
/// let (w, f) = pipe(&q, "shared", Limits::default()).unwrap();
/// let mut r = f.reader().unwrap();
/// let w = w.into_shared();
/// let threads: Vec<_> = (0..2u8)
///     .map(|i| {
///         let w = w.clone();
///         std::thread::spawn(move || w.write_all(&[b'a' + i; 100]).unwrap())
///     })
///     .collect();
/// threads.into_iter().for_each(|t| t.join().unwrap());
/// w.close().unwrap();
/// let (mut out, mut buf) = (Vec::new(), [0u8; 64]);
/// loop {
///     match r.read(&mut buf).unwrap() {
///         0 => break,
///         n => out.extend_from_slice(&buf[..n]),
///     }
/// }
/// assert_eq!(out.len(), 200);
/// assert!(out[..100].iter().all(|&b| b == out[0])); // one run each
/// ```
#[derive(Debug)]
pub struct SharedWriter<S: PipeStorage = NoStorage> {
    inner: Arc<Inner<S>>,
}

impl<S: PipeStorage> Clone for SharedWriter<S> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

#[derive(Debug)]
struct Inner<S: PipeStorage> {
    writer: Mutex<Writer<S>>,
    /// Callers waiting for space (and the space wait's own waker, which
    /// wakes them all).
    waiters: Arc<Waiters>,
    fanout: Waker,
}

#[derive(Debug, Default)]
struct Waiters {
    list: Mutex<Vec<Waker>>,
    /// `list.len()`, updated under `list`'s lock, read without it: a caller
    /// is listed while holding the writer's lock, so anyone who takes that
    /// lock after it sees the count (the lock orders the two).
    len: AtomicUsize,
}

impl Waiters {
    fn lock(&self) -> WaitersGuard<'_> {
        WaitersGuard {
            list: self.list.lock().unwrap_or_else(|e| e.into_inner()),
            len: &self.len,
        }
    }

    /// Lists the waker in `mine` (a clone the caller made with no lock
    /// held) unless an equal one is listed already; a clone not kept stays
    /// in `mine` for the caller to drop once it holds no lock (a waker's
    /// clone and drop are client code).
    fn add(&self, mine: &mut Option<Waker>) -> Result<(), PipeError> {
        let Some(waker) = mine.as_ref() else {
            return Ok(());
        };
        let mut list = self.lock();
        // `will_wake` compares pointers only: no client code.
        if list.iter().any(|w| w.will_wake(waker)) {
            return Ok(());
        }
        super::buffer::try_reserve(&mut list, 1)?;
        list.extend(mine.take());
        Ok(())
    }

    /// Takes `me`'s listed clone out (at most one: `add` lists no
    /// duplicates), for the caller to drop unlocked.
    fn take(list: &mut Vec<Waker>, me: &Waker) -> Option<Waker> {
        let i = list.iter().position(|w| w.will_wake(me))?;
        Some(list.swap_remove(i))
    }

    /// Removes `me` (a cancelled or timed-out wait); its clone is dropped
    /// after unlocking.
    fn remove(&self, me: &Waker) {
        let mine = Self::take(&mut self.lock(), me);
        drop(mine); // unlocked
    }

    /// Removes `me`, then wakes (and removes) everyone else.
    fn done(&self, me: Option<&Waker>) {
        // Relaxed: see `len` (the writer's lock gives the ordering).
        if self.len.load(Ordering::Relaxed) == 0 {
            return;
        }
        let mut list = self.lock();
        let mine = me.and_then(|me| Self::take(&mut list, me));
        let woken = core::mem::take(&mut *list);
        drop(list);
        // Outside the lock: a waker may run arbitrary code.
        drop(mine);
        woken.into_iter().for_each(Waker::wake);
    }
}

/// The waiter list, locked; keeps `Waiters::len` in step on drop.
struct WaitersGuard<'a> {
    list: MutexGuard<'a, Vec<Waker>>,
    len: &'a AtomicUsize,
}

impl core::ops::Deref for WaitersGuard<'_> {
    type Target = Vec<Waker>;
    fn deref(&self) -> &Vec<Waker> {
        &self.list
    }
}

impl core::ops::DerefMut for WaitersGuard<'_> {
    fn deref_mut(&mut self) -> &mut Vec<Waker> {
        &mut self.list
    }
}

impl Drop for WaitersGuard<'_> {
    fn drop(&mut self) {
        // Relaxed: read under the writer's lock ordering (see `len`).
        self.len.store(self.list.len(), Ordering::Relaxed);
    }
}

impl Wake for Waiters {
    fn wake(self: Arc<Self>) {
        self.done(None);
    }

    fn wake_by_ref(self: &Arc<Self>) {
        self.done(None);
    }
}

impl<S: PipeStorage> Writer<S> {
    /// Turns this writer into a [`SharedWriter`] for several threads.
    pub fn into_shared(mut self) -> SharedWriter<S> {
        self.deferred = Some(Default::default());
        // A waker a waiting write of this writer left (a cancelled or
        // leaked future) is dropped here, with no lock held: from now on
        // the space wait holds the shared writer's own waker, and replacing
        // a client's waker there would drop it under the writer's lock.
        drop(self.take_space_waker());
        let waiters = Arc::new(Waiters::default());
        SharedWriter {
            inner: Arc::new(Inner {
                writer: Mutex::new(self),
                fanout: Waker::from(waiters.clone()),
                waiters,
            }),
        }
    }
}

impl<S: PipeStorage> SharedWriter<S> {
    fn lock(&self) -> Locked<'_, S> {
        // A panic while writing leaves the writer consistent (it commits
        // only after copying), so a poisoned lock is used as is.
        Locked(Some(
            self.inner.writer.lock().unwrap_or_else(|e| e.into_inner()),
        ))
    }

    /// [`Writer::write`]: never waits.
    pub fn write(&self, buf: &[u8]) -> Result<usize, PipeError> {
        let r = self.lock().write(buf);
        self.inner.waiters.done(None);
        r
    }

    /// [`Writer::write_wait`]: waits for space (without holding the lock),
    /// then writes at least one byte, contiguously.
    pub fn write_wait(&self, buf: &[u8]) -> Result<usize, PipeError> {
        self.write_blocking(buf, None)
    }

    /// The async form of [`write_wait`](Self::write_wait). Cancel-safe:
    /// bytes are written only in the poll that returns their count.
    pub async fn write_async(&self, buf: &[u8]) -> Result<usize, PipeError> {
        SharedWriteFuture {
            writer: self,
            buf,
            waker: None,
        }
        .await
    }

    /// Writes all of `buf` as one contiguous run, waiting for space as
    /// needed; other writers wait until it is done. On an error, the bytes
    /// before it stay written.
    pub fn write_all(&self, mut buf: &[u8]) -> Result<(), PipeError> {
        let mut w = self.lock();
        let res = loop {
            if buf.is_empty() {
                break Ok(());
            }
            match w.write_wait(buf) {
                Ok(n) => buf = buf.get(n..).unwrap_or_default(),
                Err(e) => break Err(e),
            }
        };
        drop(w);
        self.inner.waiters.done(None);
        res
    }

    pub(super) fn write_blocking(
        &self,
        buf: &[u8],
        deadline: park::Deadline,
    ) -> Result<usize, PipeError> {
        if let Some(done) = self.write_now(buf) {
            return done;
        }
        let parker = park::Parker::new();
        let waker = parker.waker();
        loop {
            if let Poll::Ready(r) = self.poll_write(&waker, buf) {
                break r;
            }
            if !parker.park_until(deadline) {
                self.inner.waiters.remove(&waker);
                break Err(PipeError::TimedOut);
            }
        }
    }

    /// A write that would not wait: `None` if it must (streaming mode, no
    /// room).
    fn write_now(&self, buf: &[u8]) -> Option<Result<usize, PipeError>> {
        let mut w = self.lock();
        let got = match w.try_write(buf) {
            Err(PipeError::Full { .. }) if w.state() == WriterState::Open => return None,
            got => got,
        };
        drop(w);
        self.inner.waiters.done(None);
        Some(got)
    }

    fn poll_write(&self, waker: &Waker, buf: &[u8]) -> Poll<Result<usize, PipeError>> {
        if let Some(done) = self.write_now(buf) {
            return Poll::Ready(done);
        }
        // Cloned (and, if not kept, dropped) with no lock held.
        let mut mine = Some(waker.clone());
        let mut w = self.lock();
        // Listed before the attempt: a wake of the space wait after it
        // reaches us.
        if let Err(e) = self.inner.waiters.add(&mut mine) {
            drop(w);
            drop(mine);
            return Poll::Ready(Err(e));
        }
        let got = w.poll_write(&self.inner.fanout, buf);
        drop(w);
        drop(mine);
        if got.is_ready() {
            // This write may have disarmed the space wait: the others retry.
            self.inner.waiters.done(Some(waker));
        }
        got
    }

    /// Closes the pipe for every clone ([`Writer::close`]); a second close
    /// is [`PipeError::Closed`]. Callers waiting for space are woken and
    /// get [`PipeError::Closed`].
    pub fn close(&self) -> Result<(), PipeError> {
        let r = self.lock().close();
        self.inner.waiters.done(None);
        r
    }

    /// [`Writer::set_error`] for every clone; callers waiting for space are
    /// woken and get the error.
    pub fn set_error(&self, errno: i32) -> Result<(), PipeError> {
        let r = self.lock().set_error(errno);
        self.inner.waiters.done(None);
        r
    }

    /// [`Writer::tell`].
    pub fn tell(&self) -> u64 {
        self.lock().tell()
    }

    /// [`Writer::state`].
    pub fn state(&self) -> WriterState {
        self.lock().state()
    }

    /// [`Writer::error`].
    pub fn error(&self) -> Option<i32> {
        self.lock().error()
    }

    /// [`Writer::is_closed`].
    pub fn is_closed(&self) -> bool {
        self.lock().is_closed()
    }

    /// [`Writer::handle`].
    pub fn handle(&self) -> Handle {
        self.lock().handle()
    }

    /// [`Writer::waiting_readers`].
    pub fn waiting_readers(&self) -> usize {
        self.lock().waiting_readers()
    }

    /// [`Writer::footprint`].
    pub fn footprint(&self) -> usize {
        self.lock().footprint()
    }
}

/// The future of [`SharedWriter::write_async`].
struct SharedWriteFuture<'a, S: PipeStorage> {
    writer: &'a SharedWriter<S>,
    buf: &'a [u8],
    /// The waker listed by the last pending poll.
    waker: Option<Waker>,
}

impl<S: PipeStorage> Future for SharedWriteFuture<'_, S> {
    type Output = Result<usize, PipeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        let got = this.writer.poll_write(cx.waker(), this.buf);
        this.waker = got.is_pending().then(|| cx.waker().clone());
        got
    }
}

impl<S: PipeStorage> Drop for SharedWriteFuture<'_, S> {
    fn drop(&mut self) {
        if let Some(me) = self.waker.take() {
            self.writer.inner.waiters.remove(&me);
        }
    }
}

impl<S: PipeStorage> embedded_io::ErrorType for SharedWriter<S> {
    type Error = PipeError;
}

impl<S: PipeStorage> embedded_io::Write for SharedWriter<S> {
    fn write(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        SharedWriter::write_wait(self, buf)
    }

    fn flush(&mut self) -> Result<(), PipeError> {
        Ok(())
    }
}

impl<S: PipeStorage> embedded_io_async::Write for SharedWriter<S> {
    async fn write(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        self.write_async(buf).await
    }

    async fn flush(&mut self) -> Result<(), PipeError> {
        Ok(())
    }
}

/// The locked writer. Dropping it unlocks first and then delivers the
/// notifications the calls made (reader wakes, the handle's notify and
/// unregister), so no client waker ever runs under the writer's lock.
struct Locked<'a, S: PipeStorage>(Option<MutexGuard<'a, Writer<S>>>);

impl<S: PipeStorage> core::ops::Deref for Locked<'_, S> {
    type Target = Writer<S>;
    fn deref(&self) -> &Writer<S> {
        match &self.0 {
            Some(g) => g,
            // `0` is `Some` until `drop`.
            None => unreachable!("a Locked writer is only emptied by drop"),
        }
    }
}

impl<S: PipeStorage> core::ops::DerefMut for Locked<'_, S> {
    fn deref_mut(&mut self) -> &mut Writer<S> {
        match &mut self.0 {
            Some(g) => g,
            None => unreachable!("a Locked writer is only emptied by drop"),
        }
    }
}

impl<S: PipeStorage> Drop for Locked<'_, S> {
    fn drop(&mut self) {
        let Some(mut guard) = self.0.take() else {
            return;
        };
        let pending = guard.deferred.as_mut().map(core::mem::take);
        let shared = guard.shared_state().clone();
        drop(guard);
        if let Some(mut pending) = pending {
            pending.deliver(&shared);
        }
    }
}
