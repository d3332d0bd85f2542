//! Lock-free notification primitives for an operating-system core.
//!
//! A [`NotificationQueue`] hands out checked [`Handle`]s. Worker threads
//! [`notify`](NotificationQueue::notify) a handle with an `i64` argument (a signal value, or another handle's id);
//! clients wait for it (as a [`Future`] on any executor
//! or blocking a thread), or subscribe with a bounded buffer. A broadcast
//! in-memory pipe ([`mempipe`]) is built on top.
//!
//! What it promises:
//! - **No lost wakeups, by construction.** Take a [`Snapshot`], check your
//!   own condition, then [`wait_after`](NotificationQueue::wait_after) it: a
//!   notify anywhere after the snapshot completes the wait. No lock, no
//!   protocol.
//! - **Checked handles.** A handle carries a generation; a stale one gets
//!   [`QueueError::StaleHandle`], never another handle's notifications.
//! - **notify never blocks on a client.** With nobody waiting it is one CAS,
//!   no lock, no allocation; wakers run outside every lock, and a panicking
//!   waker neither poisons the queue nor stops the others.
//! - **Your own ids.** A [`KeyedQueue`] registers handles under keys you
//!   choose (`u64`, `i64`, strings) and notifies, waits and subscribes by
//!   key; a key registered again is a new generation, never the old one.
//! - **Bounded.** Handles, waiters and subscribers per handle are limited by
//!   [`Config`], each limit a typed error.
//! - **For a kernel too.** `#![no_std]` + `alloc` without the default `std`
//!   feature: the queue, the futures, subscriptions and the pipe (with
//!   `embedded-io`) work with a global allocator alone; `std` adds timed
//!   blocking, `std::io`, caught waker panics, [`KeyedQueue`] and the pipe
//!   table (see the README's "In a kernel").
//!
//! ```
//! use notification_queue::{Config, NotificationQueue, QueueError};
//! use std::thread;
//!
//! let queue = NotificationQueue::new(Config::default());
//! let h = queue.register("worker-done").unwrap();
//!
//! let snap = queue.snapshot(h).unwrap(); // 1. snapshot
//! let q2 = queue.clone();
//! let worker = thread::spawn(move || q2.notify(h, 42));
//! // 2. (check your own condition here) 3. wait for anything after the snapshot
//! let got = queue.wait_after(snap).wait().unwrap();
//! assert_eq!(got.arg, 42);
//! worker.join().unwrap().unwrap();
//!
//! // Unregistering wakes waiters with `Closed`; the handle is stale afterwards.
//! let pending = queue.wait(h);
//! queue.unregister(h).unwrap();
//! assert_eq!(pending.wait(), Err(QueueError::Closed));
//! assert_eq!(queue.notify(h, 1), Err(QueueError::StaleHandle));
//! ```

#![no_std]
#![warn(missing_docs, missing_debug_implementations, unreachable_pub)]
#![deny(unsafe_op_in_unsafe_fn)]

extern crate alloc;
#[cfg(any(feature = "std", test))]
extern crate std;

// The modules form layers; each imports only from the ones above it here.
/// Layer 3: the client types (waits, subscriptions).
mod client;
/// Layer 0: the `sync` shim (atomics, locks, cells, wakers; loom swaps
/// them), epoch reclamation and thread parking; and the error types.
mod error;
/// Layer 5: built on the facade: caller-keyed handles and the pipe.
#[cfg(all(feature = "std", not(notification_queue_loom)))]
mod keyed;
pub mod mempipe;
/// Layer 1: the event count, the subscription ring and the slot table.
mod primitives;
/// Layer 4: the facade, [`NotificationQueue`].
mod queue;
/// Layer 2: one queue's shared state and its operations.
mod state;
mod sync;
/// Layer 0: the events of the optional `tracing` feature (empty without it).
mod trace;

pub use client::subscription::{Recv, Subscription};
pub use client::wait::Wait;
pub use error::{Lagged, QueueError, RecvError, RecvTimeoutError, TryRecvError};
#[cfg(all(feature = "std", not(notification_queue_loom)))]
pub use keyed::KeyedQueue;
pub use primitives::budget::BudgetStats;
pub use primitives::ring::{Overflow, SubscriberInfo};
pub use primitives::slots::Handle;
pub use queue::{NotificationQueue, OwnedHandle};
pub use state::{Config, HandleInfo, Notified, Snapshot, Stats, SubscribeOptions, WaiterInfo};

/// Test hook, not part of the API: how many of the crate's locks the
/// calling thread holds (counted in debug builds with `std`; 0 otherwise).
/// Tests call it from wakers and other client code to check that the crate
/// never runs client code under a lock of its own.
#[doc(hidden)]
pub fn __crate_locks_held() -> usize {
    sync::locks_held()
}

#[cfg(all(feature = "std", not(notification_queue_loom)))]
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<NotificationQueue>();
    assert_send_sync::<Handle>();
    assert_send_sync::<Wait<'static>>();
    assert_send_sync::<OwnedHandle>();
    assert_send_sync::<KeyedQueue<u64>>();
    assert_send_sync::<mempipe::Writer>();
    assert_send_sync::<mempipe::Reader>();
    assert_send_sync::<mempipe::ReaderFactory>();
    assert_send_sync::<mempipe::SharedWriter>();
    assert_send_sync::<mempipe::MergedReader>();
    assert_send_sync::<mempipe::PipeTable<u64>>();
};

/// The README's examples are compiled and run as doctests (they use the
/// `std` parts too).
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The migration guide's examples are compiled and run as doctests.
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../docs/MIGRATING.md")]
struct MigratingDoctests;
