//! Handles under the caller's own keys: [`KeyedQueue`].
//!
//! A [`KeyedQueue<K>`] maps keys the caller chooses (`u64`, `i64`, `String`,
//! any `K: Hash + Eq`) to [`Handle`]s of one [`NotificationQueue`], in a
//! sharded concurrent map (`dashmap`). Every operation by key is "look the
//! key up, copy its `Handle` out, release the map, then call the queue", so:
//!
//! - **No client code runs under a map lock.** Wakers run inside `notify`
//!   and `unregister`; they may call back into this `KeyedQueue` (even for
//!   the same key) without deadlocking. Only the key's own `Hash`, `Eq` and
//!   `Drop` run under a shard lock, as in any map, and they must not call
//!   back into the same `KeyedQueue`.
//! - **Generations come from the queue.** A key registered again after
//!   unregister gets a new `Handle` (a new generation). A `Handle` looked up
//!   before stays the old one: the queue answers it with
//!   [`QueueError::StaleHandle`], and a wait on it completes with
//!   [`QueueError::Closed`] and never sees the new generation's notifies.
//! - **Operations by key are linearizable against `unregister(key)`.** An
//!   operation whose handle was unregistered between the lookup and the
//!   queue call is reported as [`QueueError::UnknownKey`], as if it had come
//!   after the unregister (which it did, on the handle). The queue's own
//!   `StaleHandle` is reserved for `Handle`s used directly.
//!
//! `register(key)` holds the key's shard lock across the queue's
//! (client-code-free) `register`, so two racing registrations of one key
//! cannot both win. `unregister(key)` removes the key first and then
//! unregisters its handle outside the lock: from that moment the key is free
//! for a new registration, while the old handle's waiters are woken with
//! `Closed` before `unregister` returns.
//!
//! The map's shard locks are dashmap's, not the crate's `sync` shim's, so
//! this module is left out of model-checking builds; the layer adds no
//! synchronisation of its own, and its races are covered by threaded tests
//! and a fuzz target against a plain `HashMap` model.

use crate::primitives::budget::Category;
use crate::sync::Hint;
use crate::{
    Handle, NotificationQueue, QueueError, Snapshot, SubscribeOptions, Subscription, Wait,
    WaiterInfo,
};
use alloc::vec::Vec;
use core::borrow::Borrow;
use core::fmt;
use core::hash::{BuildHasher, Hash};
use dashmap::DashMap;
use dashmap::mapref::entry::Entry;
use std::collections::hash_map::RandomState;

/// Handles registered under the caller's own keys.
///
/// Owns a clone of a [`NotificationQueue`] and a concurrent map from keys to
/// the handles it registered there. Share it between threads by reference
/// or in an `Arc`. Dropping it unregisters every handle it still holds.
///
/// The whole life of a key:
///
/// ```
/// use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError};
///
/// let keyed = KeyedQueue::<u64>::new(NotificationQueue::new(Config::default()));
/// let old = keyed.register(7, "actor-7")?;            // the caller's own id
/// assert_eq!(keyed.register(7, "again"), Err(QueueError::DuplicateKey));
///
/// // Notify and wait by key: snapshot, check your condition, wait.
/// let wait = keyed.wait(&7)?;
/// assert_eq!(keyed.notify(&7, 42)?, 0);                // nobody polling yet
/// assert_eq!(wait.wait()?.arg, 42);                    // or `.await`
///
/// // Hot loops look the key up once and use the handle directly.
/// let h = keyed.handle(&7)?;
/// assert_eq!(h, old);
/// keyed.queue().notify(h, 1)?;
///
/// // Unregister ends pending waits with `Closed`; the key is free again.
/// let pending = keyed.wait(&7)?;
/// keyed.unregister(&7)?;
/// assert_eq!(pending.wait(), Err(QueueError::Closed));
/// assert_eq!(keyed.notify(&7, 1), Err(QueueError::UnknownKey));
/// assert_eq!(keyed.unregister(&7), Err(QueueError::UnknownKey));
///
/// // Registered again: a new generation, never confused with the old one.
/// let new = keyed.register(7, "actor-7, second life")?;
/// assert_ne!(new, old);
/// assert_eq!(keyed.queue().notify(old, 1), Err(QueueError::StaleHandle));
/// assert_eq!(keyed.keys(), vec![7]);
/// # Ok::<(), QueueError>(())
/// ```
pub struct KeyedQueue<K: Eq + Hash, S: BuildHasher + Clone = RandomState> {
    queue: NotificationQueue,
    map: DashMap<K, Handle, S>,
}

/// Ops by key report a handle that went stale under them as an unknown key
/// (see the module docs: the unregister came first).
fn by_key(e: QueueError) -> QueueError {
    match e {
        QueueError::StaleHandle => QueueError::UnknownKey,
        e => e,
    }
}

/// Budget bytes of one map entry: an estimate, twice the entry's size plus
/// its control byte, for the hash table's load factor and growth slack.
/// Heap memory a key owns (a `String`'s bytes) is not counted.
fn entry_charge<K>() -> usize {
    2 * (core::mem::size_of::<(K, Handle)>() + 1)
}

impl<K: Eq + Hash> KeyedQueue<K> {
    /// An empty keyed layer over `queue` (std's randomly seeded hasher).
    ///
    /// Handles registered on `queue` directly are unaffected; both kinds can
    /// live on one queue.
    pub fn new(queue: NotificationQueue) -> Self {
        Self::with_hasher(queue, RandomState::new())
    }
}

impl<K: Eq + Hash, S: BuildHasher + Clone> KeyedQueue<K, S> {
    /// An empty keyed layer over `queue` that hashes keys with `hasher`.
    ///
    /// ```
    /// use notification_queue::{Config, KeyedQueue, NotificationQueue};
    /// use std::collections::hash_map::RandomState;
    ///
    /// let keyed: KeyedQueue<i64> =
    ///     KeyedQueue::with_hasher(NotificationQueue::new(Config::default()), RandomState::new());
    /// keyed.register(-1, "signal")?;
    /// # Ok::<(), notification_queue::QueueError>(())
    /// ```
    pub fn with_hasher(queue: NotificationQueue, hasher: S) -> Self {
        Self {
            queue,
            map: DashMap::with_hasher(hasher),
        }
    }

    /// The queue the handles live on: use it with a looked-up [`Handle`]
    /// ([`handle`](Self::handle)) on hot paths, for statistics and the dump.
    pub fn queue(&self) -> &NotificationQueue {
        &self.queue
    }

    /// Registers a new handle under `key`, with a debug hint.
    ///
    /// Errors: [`QueueError::DuplicateKey`] if `key` is registered already,
    /// [`QueueError::HandleLimit`] from the queue (the key stays free),
    /// [`QueueError::MemoryBudget`] if the queue's memory budget refuses the
    /// new map entry (an estimate per key, see
    /// [`BudgetStats`](crate::BudgetStats)) or the handle's slot (the key
    /// stays free).
    /// A key whose handle was unregistered directly on the queue (bypassing
    /// this layer) counts as free and is given a new handle.
    ///
    /// ```
    /// use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError};
    ///
    /// let keyed = KeyedQueue::new(NotificationQueue::new(Config::default()));
    /// let h = keyed.register(1u64, "one")?;
    /// assert_eq!(keyed.handle(&1)?, h);
    /// assert_eq!(keyed.register(1, "one again"), Err(QueueError::DuplicateKey));
    /// # Ok::<(), QueueError>(())
    /// ```
    pub fn register(&self, key: K, hint: impl Into<Hint>) -> Result<Handle, QueueError> {
        // Converted before locking: a user's `Into` is client code.
        let hint: Hint = hint.into();
        // The shard stays locked across the queue's `register` (which runs
        // no client code; its event is emitted after the shard is
        // released), so racing registrations of one key serialise.
        let (result, event) = match self.map.entry(key) {
            Entry::Occupied(mut e) => {
                if self.queue.is_registered(*e.get()) {
                    return Err(QueueError::DuplicateKey);
                }
                let (result, event) = self.queue.inner.register_quiet(hint);
                if let Ok(handle) = result {
                    e.insert(handle);
                }
                (result, event)
            }
            Entry::Vacant(e) => {
                // A new entry: charged to the queue's budget first, released
                // again if the queue refuses the handle.
                let budget = self.queue.budget();
                budget.try_charge(Category::Keyed, entry_charge::<K>())?;
                let (result, event) = self.queue.inner.register_quiet(hint);
                match result {
                    Ok(handle) => {
                        e.insert(handle);
                    }
                    Err(_) => budget.release(Category::Keyed, entry_charge::<K>()),
                }
                (result, event)
            }
        };
        event.emit();
        result
    }

    /// Unregisters `key`'s handle: waits on it complete with
    /// [`QueueError::Closed`], its subscriptions end after draining,
    /// [`Handle`]s looked up before become stale, and the key is free.
    ///
    /// Errors: [`QueueError::UnknownKey`] if `key` is not registered (also
    /// for a second unregister, and for a key whose handle was unregistered
    /// directly on the queue, which this call still frees).
    ///
    /// The key is removed from the map first and its handle unregistered
    /// after the map is released (wakers run then), so a racing
    /// `register(key)` may already succeed, with a new handle, before this
    /// call returns.
    ///
    /// ```
    /// use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError};
    ///
    /// let keyed = KeyedQueue::new(NotificationQueue::new(Config::default()));
    /// keyed.register(5i64, "five")?;
    /// let wait = keyed.wait(&5)?;
    /// keyed.unregister(&5)?;
    /// assert_eq!(wait.wait(), Err(QueueError::Closed));
    /// assert_eq!(keyed.unregister(&5), Err(QueueError::UnknownKey));
    /// # Ok::<(), QueueError>(())
    /// ```
    pub fn unregister<Q>(&self, key: &Q) -> Result<(), QueueError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // `remove` releases the shard before returning; the key is dropped
        // at the end of this call, after the wakers ran, under no lock.
        let (_key, handle) = self.map.remove(key).ok_or(QueueError::UnknownKey)?;
        // The entry is out of the map (its slot is free for reuse).
        self.queue
            .budget()
            .release(Category::Keyed, entry_charge::<K>());
        self.queue.unregister(handle).map_err(by_key)
    }

    /// The handle registered under `key` now, for hot loops: notify it with
    /// [`NotificationQueue::notify`] through [`queue`](Self::queue), which
    /// costs no hashing and no map lock. Once `key` is unregistered the
    /// handle is stale ([`QueueError::StaleHandle`]), even if `key` is
    /// registered again.
    ///
    /// ```
    /// use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError};
    ///
    /// let keyed = KeyedQueue::new(NotificationQueue::new(Config::default()));
    /// keyed.register(3u64, "three")?;
    /// let h = keyed.handle(&3)?;
    /// for arg in 0..1000 {
    ///     keyed.queue().notify(h, arg)?;
    /// }
    /// assert_eq!(keyed.handle(&4), Err(QueueError::UnknownKey));
    /// # Ok::<(), QueueError>(())
    /// ```
    pub fn handle<Q>(&self, key: &Q) -> Result<Handle, QueueError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        // The `Ref` guard ends inside the closure: only the `Copy` handle
        // leaves the map.
        self.map
            .get(key)
            .map(|entry| *entry.value())
            .ok_or(QueueError::UnknownKey)
    }

    /// Notifies `key`'s handle with `arg`; returns how many waiters were
    /// woken and subscribers delivered to ([`NotificationQueue::notify`]).
    ///
    /// The handle is copied out of the map and the map released before the
    /// queue's notify runs any waker. Errors: [`QueueError::UnknownKey`] if
    /// `key` is not registered (or was unregistered while this call ran).
    ///
    /// ```
    /// use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError};
    ///
    /// let keyed = KeyedQueue::new(NotificationQueue::new(Config::default()));
    /// keyed.register(9u64, "nine")?;
    /// assert_eq!(keyed.notify(&9, 1), Ok(0));
    /// assert_eq!(keyed.notify(&10, 1), Err(QueueError::UnknownKey));
    /// # Ok::<(), QueueError>(())
    /// ```
    #[inline]
    pub fn notify<Q>(&self, key: &Q, arg: i64) -> Result<usize, QueueError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let handle = self.handle(key)?;
        self.queue.notify(handle, arg).map_err(by_key)
    }

    /// `key`'s handle's current sequence: check your own condition after
    /// taking it, then [`wait_after`](Self::wait_after) it. This is how a
    /// wait by key avoids a lost wakeup without any lock.
    ///
    /// ```
    /// use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError};
    ///
    /// let keyed = KeyedQueue::new(NotificationQueue::new(Config::default()));
    /// keyed.register(1u64, "one")?;
    /// let snap = keyed.snapshot(&1)?;
    /// keyed.notify(&1, 5)?;               // lands between check and wait
    /// assert_eq!(keyed.wait_after(snap).wait()?.arg, 5); // not lost
    /// # Ok::<(), QueueError>(())
    /// ```
    pub fn snapshot<Q>(&self, key: &Q) -> Result<Snapshot, QueueError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let handle = self.handle(key)?;
        self.queue.snapshot(handle).map_err(by_key)
    }

    /// A wait for any notify after `snapshot` (taken with
    /// [`snapshot`](Self::snapshot)); see [`NotificationQueue::wait_after`].
    /// Completes with [`QueueError::Closed`] if the key is unregistered
    /// first, whatever is registered under the key afterwards.
    pub fn wait_after(&self, snapshot: Snapshot) -> Wait<'_> {
        self.queue.wait_after(snapshot)
    }

    /// A wait for the next notify of `key` (snapshot now, wait later).
    ///
    /// The wait belongs to the generation registered now: if `key` is
    /// unregistered before it completes, it completes with
    /// [`QueueError::Closed`], even if `key` is registered again and
    /// notified. Errors: [`QueueError::UnknownKey`] if `key` is not
    /// registered.
    ///
    /// ```
    /// use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError};
    ///
    /// let keyed = KeyedQueue::new(NotificationQueue::new(Config::default()));
    /// keyed.register(2u64, "two")?;
    /// let wait = keyed.wait(&2)?;
    /// keyed.notify(&2, 8)?;
    /// let got = wait.wait()?;
    /// assert_eq!((got.arg, got.coalesced), (8, 1));
    /// assert!(matches!(keyed.wait(&3), Err(QueueError::UnknownKey)));
    /// # Ok::<(), QueueError>(())
    /// ```
    pub fn wait<Q>(&self, key: &Q) -> Result<Wait<'_>, QueueError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let snapshot = self.snapshot(key)?;
        Ok(self.queue.wait_after(snapshot))
    }

    /// [`wait`](Self::wait) as a `Send + 'static` future that owns a clone
    /// of the queue ([`NotificationQueue::wait_owned`]).
    pub fn wait_owned<Q>(&self, key: &Q) -> Result<Wait<'static>, QueueError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let snapshot = self.snapshot(key)?;
        Ok(self.queue.wait_after_owned(snapshot))
    }

    /// Completes the longest-waiting wait of `key`'s handle, or leaves a
    /// permit ([`NotificationQueue::notify_one`]). Errors:
    /// [`QueueError::UnknownKey`] if `key` is not registered.
    pub fn notify_one<Q>(&self, key: &Q, arg: i64) -> Result<usize, QueueError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let handle = self.handle(key)?;
        self.queue.notify_one(handle, arg).map_err(by_key)
    }

    /// Subscribes to `key`'s handle with a buffer of `capacity` values
    /// (keep-newest); see [`NotificationQueue::subscribe`]. The subscription
    /// ends (after draining) when `key` is unregistered, and does not follow
    /// the key to its next registration.
    ///
    /// ```
    /// use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError, TryRecvError};
    ///
    /// let keyed = KeyedQueue::new(NotificationQueue::new(Config::default()));
    /// keyed.register(4u64, "four")?;
    /// let mut sub = keyed.subscribe(&4, 8, "logger")?;
    /// keyed.notify(&4, 1)?;
    /// keyed.unregister(&4)?;
    /// assert_eq!(sub.try_recv(), Ok(1));
    /// assert_eq!(sub.try_recv(), Err(TryRecvError::Closed));
    /// # Ok::<(), QueueError>(())
    /// ```
    pub fn subscribe<Q>(
        &self,
        key: &Q,
        capacity: usize,
        hint: impl Into<Hint>,
    ) -> Result<Subscription, QueueError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.subscribe_with(key, SubscribeOptions::new(capacity).hint(hint))
    }

    /// Subscribes to `key`'s handle with explicit [`SubscribeOptions`]; see
    /// [`NotificationQueue::subscribe_with`].
    pub fn subscribe_with<Q>(
        &self,
        key: &Q,
        options: SubscribeOptions,
    ) -> Result<Subscription, QueueError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let handle = self.handle(key)?;
        self.queue.subscribe_with(handle, options).map_err(by_key)
    }

    /// Pending waits on `key`'s handle, with their hints.
    pub fn waiters<Q>(&self, key: &Q) -> Result<Vec<WaiterInfo>, QueueError>
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        let handle = self.handle(key)?;
        self.queue.waiters(handle).map_err(by_key)
    }

    /// Whether `key` is registered (and its handle live).
    pub fn contains_key<Q>(&self, key: &Q) -> bool
    where
        K: Borrow<Q>,
        Q: Hash + Eq + ?Sized,
    {
        self.handle(key).is_ok_and(|h| self.queue.is_registered(h))
    }

    /// Keys registered now (a snapshot, in no particular order).
    pub fn keys(&self) -> Vec<K>
    where
        K: Clone,
    {
        self.map.iter().map(|e| e.key().clone()).collect()
    }

    /// Keys with their handles (a snapshot, in no particular order).
    pub fn entries(&self) -> Vec<(K, Handle)>
    where
        K: Clone,
    {
        self.map
            .iter()
            .map(|e| (e.key().clone(), *e.value()))
            .collect()
    }

    /// Every key with its pending waits and their hints: a debug dump.
    /// Keys with no pending wait are listed with an empty list.
    ///
    /// ```
    /// use notification_queue::{Config, KeyedQueue, NotificationQueue, QueueError};
    ///
    /// let keyed = KeyedQueue::new(NotificationQueue::new(Config::default()));
    /// keyed.register(1u64, "one")?;
    /// let waits = keyed.waits();
    /// assert_eq!(waits.len(), 1);
    /// assert_eq!(waits[0].0, 1);
    /// assert!(waits[0].1.is_empty());
    /// # Ok::<(), QueueError>(())
    /// ```
    pub fn waits(&self) -> Vec<(K, Vec<WaiterInfo>)>
    where
        K: Clone,
    {
        // Entries are copied out first: the queue is asked with the map
        // released.
        self.entries()
            .into_iter()
            .filter_map(|(k, h)| self.queue.waiters(h).ok().map(|w| (k, w)))
            .collect()
    }

    /// Keys registered now.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether no key is registered.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

impl<K, S> fmt::Debug for KeyedQueue<K, S>
where
    K: Eq + Hash,
    S: BuildHasher + Clone,
{
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyedQueue")
            .field("keys", &self.map.len())
            .finish_non_exhaustive()
    }
}

impl<K: Eq + Hash, S: BuildHasher + Clone> Drop for KeyedQueue<K, S> {
    /// Unregisters every handle still held: their waits complete with
    /// `Closed` and their subscriptions end.
    fn drop(&mut self) {
        // `&mut self`: nobody else can reach the map. The handles are copied
        // out first, so no shard is locked while `unregister` runs wakers.
        let handles: Vec<Handle> = self.map.iter().map(|e| *e.value()).collect();
        // The map is freed right after this; its entries were charged.
        self.queue.budget().release(
            Category::Keyed,
            self.map.len().saturating_mul(entry_charge::<K>()),
        );
        for handle in handles {
            // Already unregistered directly on the queue: nothing to do.
            let _ = self.queue.unregister(handle);
        }
    }
}
