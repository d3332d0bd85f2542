//! [`PipeTable`]: pipes keyed by the caller's ids, readers that may open a
//! pipe before its writer exists.
//!
//! One mutex guards the map; it is held only to look up or change an entry
//! (never while a waker runs or a reader reads). An entry is *latent*
//! (readers asked for it, no writer yet: their wakers are listed), *live*
//! (the writer exists: the entry holds the pipe's [`ReaderFactory`]) or
//! *abandoned* (the producer ended without creating the writer). Creating
//! the writer or abandoning the entry wakes the listed openers, who then
//! look again.

use super::{Limits, PipeError, Reader, ReaderFactory, ReaderInfo, Writer, WriterState, pipe};
use crate::NotificationQueue;
use crate::sync::park;
use crate::sync::{Mutex, MutexGuard};
use alloc::vec::Vec;
use core::future::Future;
use core::hash::Hash;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};
use std::collections::HashMap;

#[derive(Debug)]
enum Entry {
    Latent(Vec<Waker>),
    Live(ReaderFactory),
    Abandoned,
}

/// One entry of [`PipeTable::list`], for debugging.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PipeInfo<K> {
    /// The caller's id.
    pub key: K,
    /// Where the entry stands.
    pub state: PipeInfoState,
}

/// Where a [`PipeTable`] entry stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipeInfoState {
    /// Readers asked for it; no writer yet. How many openers wait.
    Latent {
        /// Openers waiting now.
        waiting: usize,
    },
    /// The writer exists.
    Live {
        /// The writer's state.
        writer: WriterState,
        /// Bytes written.
        written: u64,
        /// Every live reader: id, hint, position.
        readers: Vec<ReaderInfo>,
    },
    /// The producer ended without creating the writer.
    Abandoned,
}

/// Pipes keyed by the caller's ids (for example `(actor, fd)`).
///
/// Readers may open a key before its writer exists and wait for it; when
/// the producer ends without creating that writer
/// ([`close_all_leftover_writers`](Self::close_all_leftover_writers) or
/// [`abandon`](Self::abandon)), they get [`PipeError::NoWriter`].
///
/// The table runs no waker code (clone, wake, drop) and drops no pipe
/// under its lock. The key type's `Hash`, `Eq` and `Clone` do run under it,
/// as with any map behind a lock: they must not call back into the table.
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
/// use notification_queue::mempipe::{Limits, PipeError, PipeTable};
///
/// let q = NotificationQueue::new(Config::default());
/// let table = PipeTable::new(&q, Limits::default());
/// assert!(table.try_open_reader(&(1, 1)).unwrap().is_none()); // latent
/// let mut w = table.create_writer((1, 1)).unwrap();
/// let mut r = table.try_open_reader(&(1, 1)).unwrap().unwrap();
/// w.write(b"hi").unwrap();
/// w.close().unwrap();
/// let mut buf = [0u8; 4];
/// assert_eq!(r.read(&mut buf), Ok(2));
///
/// assert!(table.try_open_reader(&(2, 1)).unwrap().is_none());
/// assert_eq!(table.close_all_leftover_writers(), 1);
/// assert_eq!(table.open_reader(&(2, 1)).unwrap_err(), PipeError::NoWriter);
/// ```
#[derive(Debug)]
pub struct PipeTable<K> {
    queue: NotificationQueue,
    limits: Limits,
    map: Mutex<HashMap<K, Entry>>,
}

impl<K: Hash + Eq + Clone> PipeTable<K> {
    /// An empty table whose pipes notify handles of `queue` and use
    /// `limits`.
    pub fn new(queue: &NotificationQueue, limits: Limits) -> Self {
        Self {
            queue: queue.clone(),
            limits,
            map: Mutex::new(HashMap::new()),
        }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<K, Entry>> {
        self.map.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates the writer of `key` and wakes the readers waiting for it.
    /// A key whose writer exists already is [`PipeError::Exists`]; an
    /// abandoned key gets a new pipe. Errors of [`pipe`] pass through.
    pub fn create_writer(&self, key: K) -> Result<Writer, PipeError> {
        if let Some(Entry::Live(_)) = self.lock().get(&key) {
            return Err(PipeError::Exists);
        }
        // Made with the map unlocked: making (or dropping) a pipe registers
        // (unregisters) a handle, which emits events and runs wakers.
        let (writer, factory) = pipe(&self.queue, "pipe-table", self.limits)?;
        let mut map = self.lock();
        if let Some(Entry::Live(_)) = map.get(&key) {
            // Another writer was created meanwhile: ours goes, unlocked.
            drop(map);
            return Err(PipeError::Exists);
        }
        if let Err(e) = try_reserve_map(&mut map) {
            drop(map);
            return Err(e);
        }
        let old = map.insert(key, Entry::Live(factory));
        drop(map);
        if let Some(Entry::Latent(wakers)) = old {
            wakers.into_iter().for_each(Waker::wake);
        }
        Ok(writer)
    }

    /// A reader of `key` now, `Ok(None)` if its writer does not exist yet
    /// (the key is then listed as latent), [`PipeError::NoWriter`] if the
    /// producer ended without creating it.
    pub fn try_open_reader(&self, key: &K) -> Result<Option<Reader>, PipeError> {
        self.poll_open(key, None, None).map(|p| match p {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        })
    }

    /// [`try_open_reader`](Self::try_open_reader) naming the reader with a
    /// debug hint (shown by [`list`](Self::list)).
    pub fn try_open_reader_with_hint(
        &self,
        key: &K,
        hint: &str,
    ) -> Result<Option<Reader>, PipeError> {
        self.poll_open(key, None, Some(hint)).map(|p| match p {
            Poll::Ready(r) => Some(r),
            Poll::Pending => None,
        })
    }

    /// A reader of `key`, waiting (blocking the thread) for its writer.
    pub fn open_reader(&self, key: &K) -> Result<Reader, PipeError> {
        self.open_blocking(key, None)
    }

    /// The async form of [`open_reader`](Self::open_reader).
    pub async fn open_reader_async(&self, key: &K) -> Result<Reader, PipeError> {
        OpenFuture {
            table: self,
            key,
            waker: None,
        }
        .await
    }

    pub(super) fn open_blocking(
        &self,
        key: &K,
        deadline: park::Deadline,
    ) -> Result<Reader, PipeError> {
        let parker = park::Parker::new();
        let waker = parker.waker();
        loop {
            if let Poll::Ready(r) = self.poll_open(key, Some(&waker), None)? {
                return Ok(r);
            }
            if !parker.park_until(deadline) {
                self.forget(key, &waker);
                return Err(PipeError::TimedOut);
            }
        }
    }

    /// One attempt to open `key`, listing `waker` if it is latent.
    ///
    /// No client code runs under the map's lock: `waker` is cloned before
    /// locking and a clone not kept is dropped after unlocking (a waker's
    /// clone and drop are the runtime's code, and may call back into the
    /// table).
    fn poll_open(
        &self,
        key: &K,
        waker: Option<&Waker>,
        hint: Option<&str>,
    ) -> Result<Poll<Reader>, PipeError> {
        let mut spare = waker.cloned();
        let res = self.poll_open_locked(key, &mut spare, hint);
        drop(spare); // unlocked
        res
    }

    /// [`poll_open`](Self::poll_open) under the lock; takes `spare` if it
    /// lists it.
    fn poll_open_locked(
        &self,
        key: &K,
        spare: &mut Option<Waker>,
        hint: Option<&str>,
    ) -> Result<Poll<Reader>, PipeError> {
        let mut map = self.lock();
        match map.get_mut(key) {
            Some(Entry::Live(f)) => match hint {
                Some(h) => f.reader_with_hint(h),
                None => f.reader(),
            }
            .map(Poll::Ready),
            Some(Entry::Abandoned) => Err(PipeError::NoWriter),
            Some(Entry::Latent(wakers)) => {
                if let Some(w) = spare.as_ref() {
                    // `will_wake` compares the wakers' data and vtable
                    // pointers only: no client code.
                    if !wakers.iter().any(|x| x.will_wake(w)) {
                        super::buffer::try_reserve(wakers, 1)?;
                        wakers.extend(spare.take());
                    }
                }
                Ok(Poll::Pending)
            }
            None => {
                let mut wakers = Vec::new();
                if spare.is_some() {
                    super::buffer::try_reserve(&mut wakers, 1)?;
                }
                try_reserve_map(&mut map)?;
                wakers.extend(spare.take());
                map.insert(key.clone(), Entry::Latent(wakers));
                Ok(Poll::Pending)
            }
        }
    }

    /// Removes `waker` from `key`'s openers (a timed-out or dropped open);
    /// the removed clones are dropped after unlocking.
    fn forget(&self, key: &K, waker: &Waker) {
        let mut gone = Vec::new();
        if let Some(Entry::Latent(wakers)) = self.lock().get_mut(key) {
            let mut i = 0;
            while i < wakers.len() {
                if wakers[i].will_wake(waker) {
                    // Moving a waker out runs no client code.
                    let w = wakers.swap_remove(i);
                    if gone.try_reserve(1).is_ok() {
                        gone.push(w);
                    } else {
                        // Out of memory for the list of removed wakers:
                        // put it back rather than drop it under the lock
                        // (it stays listed: at worst a spurious wake).
                        wakers.push(w);
                        break;
                    }
                } else {
                    i += 1;
                }
            }
        }
        drop(gone); // unlocked
    }

    /// The producer of `key` ended without creating its writer: waiting
    /// openers (and later ones) get [`PipeError::NoWriter`]. Returns
    /// whether `key` was latent. A live key is left alone.
    pub fn abandon(&self, key: &K) -> bool {
        let mut map = self.lock();
        let Some(entry) = map.get_mut(key) else {
            return false;
        };
        if !matches!(entry, Entry::Latent(_)) {
            return false;
        }
        let Entry::Latent(wakers) = core::mem::replace(entry, Entry::Abandoned) else {
            return false;
        };
        drop(map);
        wakers.into_iter().for_each(Waker::wake);
        true
    }

    /// [`abandon`](Self::abandon) for every latent key (the producer
    /// ended); returns how many there were.
    pub fn close_all_leftover_writers(&self) -> usize {
        let mut woken = Vec::new();
        let mut n = 0;
        let mut map = self.lock();
        for entry in map.values_mut() {
            if let Entry::Latent(_) = entry {
                if let Entry::Latent(w) = core::mem::replace(entry, Entry::Abandoned) {
                    woken.push(w);
                }
                n += 1;
            }
        }
        drop(map);
        woken.into_iter().flatten().for_each(Waker::wake);
        n
    }

    /// Removes `key`: a live pipe stops taking new readers (streaming
    /// mode); a latent one is [abandoned](Self::abandon) instead (its
    /// openers must learn it). Returns whether the key was there.
    pub fn remove(&self, key: &K) -> bool {
        if self.abandon(key) {
            return true;
        }
        let removed = self.lock().remove(key);
        // Dropped unlocked: a pipe's reader factory may wake a writer.
        removed.is_some()
    }

    /// Every entry with its readers, positions and states (for debugging).
    pub fn list(&self) -> Vec<PipeInfo<K>> {
        self.lock()
            .iter()
            .map(|(k, e)| PipeInfo {
                key: k.clone(),
                state: match e {
                    Entry::Latent(w) => PipeInfoState::Latent { waiting: w.len() },
                    Entry::Abandoned => PipeInfoState::Abandoned,
                    Entry::Live(f) => PipeInfoState::Live {
                        writer: f.writer_state(),
                        written: f.written(),
                        readers: f.reader_info(),
                    },
                },
            })
            .collect()
    }
}

struct OpenFuture<'a, K: Hash + Eq + Clone> {
    table: &'a PipeTable<K>,
    key: &'a K,
    /// The waker listed by the last pending poll.
    waker: Option<Waker>,
}

impl<K: Hash + Eq + Clone> Drop for OpenFuture<'_, K> {
    fn drop(&mut self) {
        if let Some(w) = self.waker.take() {
            self.table.forget(self.key, &w);
        }
    }
}

impl<K: Hash + Eq + Clone> Future for OpenFuture<'_, K> {
    type Output = Result<Reader, PipeError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let this = self.get_mut();
        match this.table.poll_open(this.key, Some(cx.waker()), None) {
            Ok(Poll::Ready(r)) => {
                this.waker = None;
                Poll::Ready(Ok(r))
            }
            Ok(Poll::Pending) => {
                this.waker = Some(cx.waker().clone());
                Poll::Pending
            }
            Err(e) => {
                this.waker = None;
                Poll::Ready(Err(e))
            }
        }
    }
}

/// Reserves room for one more entry in `m`, or [`PipeError::OutOfMemory`].
fn try_reserve_map<K: core::hash::Hash + Eq, V>(
    m: &mut std::collections::HashMap<K, V>,
) -> Result<(), PipeError> {
    m.try_reserve(1).map_err(|_| PipeError::OutOfMemory {
        bytes: core::mem::size_of::<(K, V)>(),
    })
}
