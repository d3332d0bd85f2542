//! One queue's memory budget: a byte count that every allocation made on
//! behalf of clients is charged against *before* it is made, and released
//! from once the memory is really freed.
//!
//! Lock-free: the total is one `AtomicUsize` moved by CAS, and a charge
//! that would take it past the limit fails without touching it, so the
//! total never exceeds the limit, however charges race. Per-category
//! counters and the high-water mark are updated after the total (so a
//! snapshot taken while charges race may see them a step apart).
//!
//! Every counter is `Relaxed`: the budget publishes no memory (each
//! allocation is published by its own structure's orderings), and a single
//! atomic's read-modify-writes form one total order whatever the ordering,
//! which is all the limit check needs.

use crate::error::QueueError;
use crate::sync::{Arc, AtomicUsize, Ordering};

/// What a charge pays for (see [`BudgetStats`] for what each one covers).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Category {
    Slots = 0,
    Waiters = 1,
    Rings = 2,
    Pipes = 3,
    Keyed = 4,
}

const CATEGORIES: usize = 5;

/// Bytes a queue holds against its budget ([`Stats::budget`](crate::Stats::budget)).
///
/// Each category is what the queue allocated for clients and holds now:
/// - `slots`: the slot table's buckets (exact; kept until the queue drops).
/// - `waiters`: waiter lists (their chunks of entries, exact; freed through
///   the epoch collector, so released a little after the last wait leaves).
/// - `rings`: subscription buffers (the ring and its cells, plus its entry
///   in the handle's subscriber list; released when the subscription and
///   every list holding the ring are gone).
/// - `pipes`: pipe segments (data, header and a pool pointer each; freed
///   when every reader has passed them in streaming mode, or with the pipe)
///   and each pipe's fixed bookkeeping (its shared state and the per-reader
///   lists reserved from its reader limit).
/// - `keyed`: [`KeyedQueue`](crate::KeyedQueue) map entries (an estimate per
///   key: twice the entry's size, for the hash table's slack; heap memory a
///   key owns is not counted).
///
/// Not counted: hint strings (the caller's), the registry's per-slot
/// bookkeeping (about 20 bytes a slot), hint lists of hinted waits, reader
/// position slots of pipes, and lists being replaced or awaiting epoch
/// reclamation. The sum of the categories is `held`, at most `limit`,
/// except in a snapshot taken while another thread is halfway through a
/// charge or release (the snapshot is read again a few times for one that
/// adds up, but a thread preempted halfway can outlast that).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetStats {
    /// The configured budget ([`Config::memory_budget`](crate::Config::memory_budget);
    /// `usize::MAX` when unlimited).
    pub limit: usize,
    /// Bytes held now (the sum of the categories below).
    pub held: usize,
    /// The most bytes ever held at once.
    pub high_water: usize,
    /// Slot table buckets.
    pub slots: usize,
    /// Waiter lists.
    pub waiters: usize,
    /// Subscription rings.
    pub rings: usize,
    /// Pipe segments and bookkeeping.
    pub pipes: usize,
    /// Keyed-handle map entries.
    pub keyed: usize,
}

/// A queue's budget (see the module docs).
#[derive(Debug)]
pub(crate) struct Budget {
    limit: usize,
    total: AtomicUsize,
    high_water: AtomicUsize,
    held: [AtomicUsize; CATEGORIES],
}

impl Budget {
    pub(crate) fn new(limit: usize) -> Self {
        Self {
            limit,
            total: AtomicUsize::new(0),
            high_water: AtomicUsize::new(0),
            held: core::array::from_fn(|_| AtomicUsize::new(0)),
        }
    }

    /// Charges `bytes` to `category`, or fails with
    /// [`QueueError::MemoryBudget`] and charges nothing.
    pub(crate) fn try_charge(&self, category: Category, bytes: usize) -> Result<(), QueueError> {
        let refused = QueueError::MemoryBudget {
            requested: bytes,
            limit: self.limit,
        };
        // Relaxed: see the module docs (the CAS checks what we read).
        let mut cur = self.total.load(Ordering::Relaxed);
        let next = loop {
            let next = match cur.checked_add(bytes) {
                Some(n) if n <= self.limit => n,
                _ => return Err(refused),
            };
            // Relaxed: see the module docs.
            match self
                .total
                .compare_exchange_weak(cur, next, Ordering::Relaxed, Ordering::Relaxed)
            {
                Ok(_) => break next,
                Err(actual) => cur = actual,
            }
        };
        if let Some(held) = self.held.get(category as usize) {
            // Relaxed: a statistic.
            held.fetch_add(bytes, Ordering::Relaxed);
        }
        // Relaxed: a statistic.
        self.high_water.fetch_max(next, Ordering::Relaxed);
        Ok(())
    }

    /// Gives back `bytes` charged to `category` earlier.
    pub(crate) fn release(&self, category: Category, bytes: usize) {
        if bytes == 0 {
            return;
        }
        if let Some(held) = self.held.get(category as usize) {
            // Relaxed: a statistic.
            held.fetch_sub(bytes, Ordering::Relaxed);
        }
        // Relaxed: see the module docs. Released only after the memory is
        // freed (or was never allocated), so a charge that fits now fits
        // in the memory actually held.
        self.total.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// A snapshot whose categories add up to `held`, as far as it can
    /// tell. A charge or release changes a category and the total one after
    /// the other, and epoch reclamation releases on whichever thread
    /// collects, so one read of each can catch one half done: the snapshot
    /// is read again (up to [`SNAPSHOT_TRIES`] times) until the total is the
    /// same before and after the categories and they add up to it. A thread
    /// preempted halfway through a charge or release for longer than that
    /// leaves a snapshot that does not add up until it runs again.
    pub(crate) fn stats(&self) -> BudgetStats {
        let mut snapshot = self.read();
        for _ in 1..SNAPSHOT_TRIES {
            // Relaxed: a statistic, compared with the one read before.
            let after = self.total.load(Ordering::Relaxed);
            if after == snapshot.held && snapshot.categories() == snapshot.held {
                break;
            }
            crate::sync::spin_loop();
            snapshot = self.read();
        }
        snapshot
    }

    fn read(&self) -> BudgetStats {
        // Relaxed: statistics.
        let held = |c: Category| {
            self.held
                .get(c as usize)
                .map_or(0, |h| h.load(Ordering::Relaxed))
        };
        BudgetStats {
            limit: self.limit,
            held: self.total.load(Ordering::Relaxed),
            high_water: self.high_water.load(Ordering::Relaxed),
            slots: held(Category::Slots),
            waiters: held(Category::Waiters),
            rings: held(Category::Rings),
            pipes: held(Category::Pipes),
            keyed: held(Category::Keyed),
        }
    }
}

/// How many reads [`Budget::stats`] makes at most for a snapshot that adds
/// up.
const SNAPSHOT_TRIES: usize = 64;

impl BudgetStats {
    /// The sum of the categories (wrapping: a torn read must not panic).
    fn categories(&self) -> usize {
        [self.slots, self.waiters, self.rings, self.pipes, self.keyed]
            .iter()
            .fold(0, |sum, &c| sum.wrapping_add(c))
    }
}

/// Bytes charged to a budget, released when this is dropped: owned by the
/// structure whose memory it pays for, so the release runs when that is
/// freed.
#[derive(Debug)]
pub(crate) struct Charge {
    budget: Arc<Budget>,
    category: Category,
    bytes: usize,
}

impl Charge {
    /// Charges `bytes` to `category` of `budget`, or fails and charges nothing.
    pub(crate) fn new(
        budget: &Arc<Budget>,
        category: Category,
        bytes: usize,
    ) -> Result<Self, QueueError> {
        budget.try_charge(category, bytes)?;
        Ok(Self {
            budget: budget.clone(),
            category,
            bytes,
        })
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.budget.release(self.category, self.bytes);
    }
}

#[cfg(all(test, not(notification_queue_loom)))]
mod tests {
    use super::*;

    #[test]
    fn charges_up_to_the_limit_and_no_further() {
        let b = Budget::new(100);
        assert!(b.try_charge(Category::Rings, 60).is_ok());
        assert_eq!(
            b.try_charge(Category::Pipes, 41),
            Err(QueueError::MemoryBudget {
                requested: 41,
                limit: 100
            })
        );
        assert!(b.try_charge(Category::Pipes, 40).is_ok());
        assert!(b.try_charge(Category::Keyed, 1).is_err());
        let s = b.stats();
        assert_eq!((s.held, s.rings, s.pipes, s.keyed), (100, 60, 40, 0));
        b.release(Category::Rings, 60);
        let s = b.stats();
        assert_eq!((s.held, s.high_water, s.rings), (40, 100, 0));
        assert!(b.try_charge(Category::Slots, usize::MAX).is_err());
        assert_eq!(b.stats().held, 40);
    }

    #[test]
    fn a_charge_releases_on_drop() {
        let b = Arc::new(Budget::new(10));
        let c = Charge::new(&b, Category::Waiters, 10);
        assert!(c.is_ok());
        assert!(Charge::new(&b, Category::Waiters, 1).is_err());
        drop(c);
        assert_eq!(b.stats().held, 0);
        assert_eq!(b.stats().high_water, 10);
    }

    #[test]
    fn racing_charges_never_exceed_the_limit() {
        let b = Arc::new(Budget::new(1000));
        let threads: std::vec::Vec<_> = (0..2)
            .map(|_| {
                let b = b.clone();
                std::thread::spawn(move || {
                    // Fewer under Miri, which runs every step ~1000x slower.
                    let rounds = if cfg!(miri) { 300 } else { 20_000 };
                    for _ in 0..rounds {
                        if b.try_charge(Category::Rings, 7).is_ok() {
                            assert!(b.stats().held <= 1000);
                            b.release(Category::Rings, 7);
                        }
                    }
                })
            })
            .collect();
        for t in threads {
            assert!(t.join().is_ok());
        }
        assert_eq!(b.stats().held, 0);
        assert!(b.stats().high_water <= 1000);
    }
}
