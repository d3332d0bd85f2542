//! The facade: [`NotificationQueue`], the public face of one queue's
//! shared state (`state::Inner`), and [`OwnedHandle`]. Each method checks
//! nothing itself and hands over to the state or builds a client type
//! (`Wait`, `Subscription`).

use crate::client::subscription::Subscription;
use crate::client::wait::{QueueRef, Wait};
use crate::error::QueueError;
use crate::primitives::budget::Budget;
use crate::primitives::slots::Handle;
use crate::state::{Config, HandleInfo, Inner, Snapshot, Stats, SubscribeOptions, WaiterInfo};
use crate::sync::{Arc, Hint};
use alloc::vec::Vec;

/// A queue of notifications keyed by checked handles.
///
/// Cheap to clone (an `Arc`), `Send + Sync`. See the crate docs for the whole
/// life of a handle.
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
///
/// let queue = NotificationQueue::new(Config::default());
/// let h = queue.register("disk-irq").unwrap();
/// let snap = queue.snapshot(h).unwrap();
/// assert_eq!(queue.notify(h, 7), Ok(0)); // nobody waiting yet
/// let got = queue.wait_after(snap).wait().unwrap(); // completes at once
/// assert_eq!((got.arg, got.coalesced), (7, 1));
/// queue.unregister(h).unwrap();
/// assert!(queue.notify(h, 1).is_err());
/// ```
#[derive(Debug, Clone)]
pub struct NotificationQueue {
    pub(crate) inner: Arc<Inner>,
    /// The queue's id (`inner`'s slot table's, which never changes), kept
    /// beside the pointer: `notify` checks a handle's queue with one load
    /// instead of two dependent ones, and touches `inner` only off its fast
    /// path. (A locked RMW waits for the loads and branches before it, so
    /// every dependent load on the way to the CAS adds to each notify.)
    id: u64,
}

impl NotificationQueue {
    /// A new queue with the given limits.
    pub fn new(config: Config) -> Self {
        let inner = Arc::new(Inner::new(config));
        let id = inner.table.id;
        Self { inner, id }
    }

    /// The limits this queue was built with.
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    /// The memory budget (`Config::memory_budget`) that clients built on
    /// this queue (pipes, keyed layers) charge their allocations to.
    pub(crate) fn budget(&self) -> &Budget {
        &self.inner.budget
    }

    /// Registers a new handle with a debug hint.
    ///
    /// Fails with [`QueueError::HandleLimit`] once `max_handles` are live,
    /// and with [`QueueError::MemoryBudget`] when a new bucket of slots
    /// (32, 64, 128, ... slots of 128 bytes) would pass
    /// `Config::memory_budget`.
    pub fn register(&self, hint: impl Into<Hint>) -> Result<Handle, QueueError> {
        self.inner.register(hint.into())
    }

    /// Registers a handle that is unregistered when the guard drops.
    pub fn register_owned(&self, hint: impl Into<Hint>) -> Result<OwnedHandle, QueueError> {
        let handle = self.register(hint)?;
        Ok(OwnedHandle {
            queue: self.clone(),
            handle,
        })
    }

    /// Unregisters `handle`: its waiters complete with [`QueueError::Closed`],
    /// its subscriptions end after draining, and every later use of it fails
    /// with [`QueueError::StaleHandle`] (so a second unregister is an error).
    pub fn unregister(&self, handle: Handle) -> Result<(), QueueError> {
        self.inner.unregister(handle)
    }

    /// Notifies `handle` with `arg`: wakes every pending waiter and delivers
    /// `arg` to every subscriber. Returns how many were woken or delivered to.
    ///
    /// Never blocks on a lock and never runs client code under a lock. It
    /// does run the wakers of this handle's waiters (after taking them out,
    /// with no lock held and no epoch pin), so a waker that blocks blocks
    /// *this* call until it returns; it never blocks notifies, waits,
    /// subscribes or unregisters of other handles (or of this one from other
    /// threads), nor the reclamation of memory. A waker that panics is
    /// caught and counted ([`Stats::waker_panics`]); the others still wake.
    /// Waiters are woken in the order of their entries (the oldest first,
    /// except that an entry freed by a finished wait is reused by the next).
    /// With nobody
    /// waiting or subscribed it is one CAS and allocates nothing.
    #[inline]
    pub fn notify(&self, handle: Handle, arg: i64) -> Result<usize, QueueError> {
        if handle.queue != self.id {
            return Err(QueueError::StaleHandle);
        }
        // SAFETY: `handle.queue` is this queue's id, which is its slot
        // table's (`new`).
        unsafe { self.inner.notify_own(handle, arg) }
    }

    /// Completes the longest-waiting pending wait of `handle` with `arg`,
    /// leaving the others pending, or leaves a permit if none is pending.
    /// Returns how many waits it completed (0 or 1).
    ///
    /// Like a futex `FUTEX_WAKE(1)` or tokio's `Notify::notify_one`, for a
    /// pool of workers waiting on one handle:
    /// - **First in, first out.** Waits are served in the order they first
    ///   registered (their first `Pending` poll), whichever waiter entry
    ///   they occupy. A wait completed this way reports `arg`, its
    ///   snapshot's sequence and `coalesced == 1`. The sequence is not
    ///   bumped, so a plain [`notify`](Self::notify) waiter is not woken.
    /// - **Permits.** With no wait pending, the handle keeps one permit (at
    ///   most one: further `notify_one`s coalesce into it, the latest `arg`
    ///   wins). The next wait of the handle that would otherwise sleep
    ///   (whatever its snapshot) takes it and completes at once with its
    ///   argument. A plain `notify` neither takes nor makes permits;
    ///   [`unregister`](Self::unregister) drops it.
    /// - **Cancellation.** A wait chosen by `notify_one` and dropped (or
    ///   completed by a plain notify) before it reports the argument passes
    ///   it on to the next waiting wait, or leaves it as the permit: a
    ///   `notify_one` is never lost to a cancelled wait.
    ///
    /// Lock-free; wakes at most one waker, with no lock held (see
    /// [`notify`](Self::notify) for what a waker may block). With nobody
    /// waiting it is two loads and one CAS and allocates nothing.
    pub fn notify_one(&self, handle: Handle, arg: i64) -> Result<usize, QueueError> {
        self.inner.notify_some(handle, arg, 1)
    }

    /// Completes the `n` longest-waiting pending waits of `handle` with
    /// `arg` (all of them if fewer wait) and returns how many it completed.
    /// If fewer than `n` were waiting it leaves one permit (never more).
    /// Exactly `n` times [`notify_one`](Self::notify_one) otherwise, in
    /// one call; `n == 0` only checks the handle.
    pub fn notify_n(&self, handle: Handle, arg: i64, n: usize) -> Result<usize, QueueError> {
        self.inner.notify_some(handle, arg, n)
    }

    /// The handle's current sequence: wait for "anything after this" with
    /// [`wait_after`](Self::wait_after).
    #[inline]
    pub fn snapshot(&self, handle: Handle) -> Result<Snapshot, QueueError> {
        self.inner.snapshot(handle)
    }

    /// A wait for any notify after `snapshot`: completes at once if one
    /// already landed. A [`Future`](core::future::Future), and blocking via
    /// [`Wait::wait`], [`Wait::wait_timeout`] and [`Wait::wait_deadline`].
    #[inline]
    pub fn wait_after(&self, snapshot: Snapshot) -> Wait<'_> {
        Wait::new(
            QueueRef::borrowed(&self.inner),
            snapshot.handle,
            Some(snapshot.sequence),
        )
    }

    /// A wait for the next notify of `handle` (snapshot now, then wait).
    #[inline]
    pub fn wait(&self, handle: Handle) -> Wait<'_> {
        let seq = self.snapshot(handle).ok().map(|s| s.sequence);
        Wait::new(QueueRef::borrowed(&self.inner), handle, seq)
    }

    /// [`wait`](Self::wait) as a future that owns a clone of the queue
    /// (`Send + 'static`), for a spawned task or another thread.
    pub fn wait_owned(&self, handle: Handle) -> Wait<'static> {
        let seq = self.snapshot(handle).ok().map(|s| s.sequence);
        Wait::new(QueueRef::owned(self.inner.clone()), handle, seq)
    }

    /// [`wait_after`](Self::wait_after) as a future that owns a clone of
    /// the queue (`Send + 'static`).
    pub fn wait_after_owned(&self, snapshot: Snapshot) -> Wait<'static> {
        Wait::new(
            QueueRef::owned(self.inner.clone()),
            snapshot.handle,
            Some(snapshot.sequence),
        )
    }

    // SUBSCRIBE
    /// Subscribes to `handle` with a buffer of `capacity` values that keeps
    /// the newest when full ([`Overflow::KeepNewest`](crate::Overflow::KeepNewest)).
    ///
    /// Errors: [`QueueError::InvalidCapacity`] for 0 or above
    /// `Config::max_subscriber_capacity`, [`QueueError::StaleHandle`] for an
    /// unregistered or foreign handle, [`QueueError::SubscriberLimit`] when
    /// the handle has `Config::max_subscribers_per_handle` subscriptions,
    /// [`QueueError::MemoryBudget`] when the ring (16 bytes a value, for
    /// `capacity` rounded up to a power of two, plus a header) would pass
    /// `Config::memory_budget`.
    ///
    /// Keep-newest subscriptions of one handle share one buffer of values
    /// when it has room for their capacities (each keeps its own capacity,
    /// position, lag and drop count): a subscription whose capacity fits in
    /// a buffer the handle's keep-newest subscriptions have already costs
    /// only its header, and a notify writes each buffer once for all the
    /// subscriptions that share it. So subscribing the largest capacity
    /// first leaves one buffer for all of them.
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue, QueueError, TryRecvError};
    ///
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let mut sub = queue.subscribe(h, 4, "client").unwrap();
    /// queue.notify(h, 1).unwrap();
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Empty));
    /// assert!(matches!(queue.subscribe(h, 0, "x"), Err(QueueError::InvalidCapacity { .. })));
    /// ```
    pub fn subscribe(
        &self,
        handle: Handle,
        capacity: usize,
        hint: impl Into<Hint>,
    ) -> Result<Subscription, QueueError> {
        self.subscribe_with(handle, SubscribeOptions::new(capacity).hint(hint))
    }

    /// Subscribes to `handle` with explicit [`SubscribeOptions`]; errors as
    /// for [`subscribe`](Self::subscribe).
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue, Overflow, SubscribeOptions, TryRecvError};
    ///
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let opts = SubscribeOptions::new(2).overflow(Overflow::KeepOldest);
    /// let mut sub = queue.subscribe_with(h, opts).unwrap();
    /// for v in 1..=5 {
    ///     queue.notify(h, v).unwrap();
    /// }
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Lagged(3))); // 3, 4, 5 rejected
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// assert_eq!(sub.try_recv(), Ok(2));
    /// ```
    pub fn subscribe_with(
        &self,
        handle: Handle,
        options: SubscribeOptions,
    ) -> Result<Subscription, QueueError> {
        let (ring, feed) = self.inner.subscribe(handle, options)?;
        Ok(Subscription::new(self.inner.clone(), handle, ring, feed))
    }

    /// Whether `handle` is registered (its generation is current).
    pub fn is_registered(&self, handle: Handle) -> bool {
        self.snapshot(handle).is_ok()
    }

    /// Pending waiters of `handle` with their hints (the old `get_waits`).
    pub fn waiters(&self, handle: Handle) -> Result<Vec<WaiterInfo>, QueueError> {
        self.inner.waiters(handle)
    }

    /// Every registered handle with its hint, waiters and subscribers.
    pub fn dump(&self) -> Vec<HandleInfo> {
        self.inner.dump()
    }

    /// The queue's counters. Walks the slot table (O(slots)); meant for
    /// monitoring, not hot paths.
    pub fn stats(&self) -> Stats {
        self.inner.stats()
    }
}

/// A registered handle that unregisters itself when dropped.
///
/// Derefs to [`Handle`]; [`OwnedHandle::into_handle`] gives up ownership.
#[derive(Debug)]
pub struct OwnedHandle {
    queue: NotificationQueue,
    handle: Handle,
}

impl OwnedHandle {
    /// The handle.
    pub fn handle(&self) -> Handle {
        self.handle
    }

    /// Stops owning the handle: it stays registered.
    pub fn into_handle(self) -> Handle {
        self.into_handle_inner().1
    }

    /// Unregisters now.
    pub fn unregister(self) -> Result<(), QueueError> {
        let h = self.into_handle_inner();
        h.0.unregister(h.1)
    }

    fn into_handle_inner(self) -> (NotificationQueue, Handle) {
        let me = core::mem::ManuallyDrop::new(self);
        // SAFETY: `me` is never dropped, so the queue is moved out once.
        let queue = unsafe { core::ptr::read(&me.queue) };
        (queue, me.handle)
    }
}

impl core::ops::Deref for OwnedHandle {
    type Target = Handle;
    fn deref(&self) -> &Handle {
        &self.handle
    }
}

impl Drop for OwnedHandle {
    fn drop(&mut self) {
        // Already unregistered by hand is fine: stale is the expected result.
        let _ = self.queue.unregister(self.handle);
    }
}
