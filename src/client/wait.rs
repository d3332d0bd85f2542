//! Waiting: the [`Wait`] future and its blocking forms.
//!
//! A `Wait` holds a sequence snapshot. Each poll first looks at the state
//! word; only if nothing happened does it claim an entry (once), register the
//! waker in it and publish itself with a CAS that sets `WAITERS` on its own
//! generation's word, whose value is checked again (see `eventcount` for why this loses no wakeup).
//! The entry is released the moment the wait completes or is dropped (a
//! plain notify frees the entries of the waits it completes itself, as it
//! takes their wakers), so a cancelled wait leaves nothing behind.
//!
//! The blocking forms drive the same future with a waker that unparks the
//! calling thread, so threads and tasks share one code path.

use crate::error::QueueError;
use crate::primitives::eventcount::{self, ClaimError, Entry, WaiterList, WakerId};
use crate::primitives::slots::{Handle, Slot};
use crate::state::{Inner, Notified, Snapshot};
use crate::sync::park;
use crate::sync::{Arc, Hint, Ordering};
use crate::trace;
use core::future::Future;
use core::pin::Pin;
use core::task::{Context, Poll, Waker};

/// A pending wait for a notify after a snapshot.
///
/// Created by [`NotificationQueue::wait`] or
/// [`NotificationQueue::wait_after`]. Resolves to `Ok(Notified)` on a notify,
/// or `Err(QueueError::Closed)` when the handle is unregistered (or
/// [`QueueError::StaleHandle`] if it already was; [`QueueError::WaiterLimit`]
/// if the handle has `max_waiters_per_handle` pending waits;
/// [`QueueError::MemoryBudget`] if it needed waiter storage the queue's
/// memory budget refused: the first wait of a handle allocates its list and
/// later ones grow it in chunks of doubling size).
///
/// # After unregister
///
/// A wait whose handle is unregistered after a notify it has not seen yet
/// reports that notify first (`Ok`, with its argument), and a wait from the
/// final sequence reports `Closed`, so the outcome does not depend on when
/// the wait is first polled. The record of the last close is kept per slot:
/// only a wait first polled after the slot's *next* owner was unregistered
/// too reports `Closed` without the notifies it missed.
///
/// # Leaked waits
///
/// A pending wait holds one entry of its handle's waiter list (and keeps
/// that list alive). A wait that is leaked (`mem::forget`) keeps its entry
/// until a notify completes it (a plain notify frees the entries of the
/// waits it completes) or the handle is unregistered, and pins at most that
/// one list: at most `max_waiters_per_handle` entries of 32 bytes on 64-bit
/// targets plus a few hundred bytes of list header. Leaking pending waits
/// can use up the handle's waiter limit (later waits get
/// [`QueueError::WaiterLimit`]) but never another handle's, and never
/// blocks or slows a notify. A leaked wait
/// that [`notify_one`](crate::NotificationQueue::notify_one) had chosen
/// keeps that one wake (it is handed on only when a wait completes or is
/// dropped).
///
/// # Cancel safety
///
/// Dropping a `Wait` at any point releases its waiter entry at once; no
/// [`notify`](crate::NotificationQueue::notify) is consumed by a wait
/// (notifications are a counter, not a queue), so a new wait from the same
/// snapshot sees the same outcome. A `notify_one` *is* consumed by the
/// wait that reports it; one that chose a wait dropped before it could
/// report it passes on to the next waiting wait, or becomes the permit.
///
/// # Owned waits
///
/// [`NotificationQueue::wait_owned`](crate::NotificationQueue::wait_owned) and
/// [`NotificationQueue::wait_after_owned`](crate::NotificationQueue::wait_after_owned) return a `Wait<'static>` that
/// holds a clone of the queue: `Send + 'static`, for spawned tasks.
///
/// [`NotificationQueue::wait`]: crate::NotificationQueue::wait
/// [`NotificationQueue::wait_after`]: crate::NotificationQueue::wait_after
#[must_use = "a Wait does nothing unless polled or waited on"]
#[derive(Debug)]
pub struct Wait<'a> {
    inner: QueueRef<'a>,
    handle: Handle,
    /// The snapshot sequence, or the error found while taking it.
    start: Result<u64, QueueError>,
    hint: Option<Hint>,
    /// Our claimed entry and the list that owns it.
    entry: Option<EntryRef>,
}

/// A claimed waiter entry, the list that owns it, the claim's ticket and the
/// waker last registered in it. A plain notify that completes the wait may
/// free the entry (the ticket then no longer matches it).
type EntryRef = (Arc<WaiterList>, usize, *const Entry, u64, WakerId);

/// The queue a [`Wait`] belongs to: borrowed, or owned for `'static` waits.
#[derive(Debug)]
pub(crate) enum QueueRef<'a> {
    Borrowed(&'a Inner),
    Owned(Arc<Inner>),
}

impl core::ops::Deref for QueueRef<'_> {
    type Target = Inner;
    #[inline]
    fn deref(&self) -> &Inner {
        match self {
            QueueRef::Borrowed(inner) => inner,
            QueueRef::Owned(inner) => inner,
        }
    }
}

// SAFETY: the raw entry pointer points into the `Arc<WaiterList>` held beside
// it, and `Entry` is `Sync` (atomics, an `AtomicWaker` and a mutex).
unsafe impl Send for Wait<'_> {}
// SAFETY: `&Wait` exposes nothing that touches the entry.
unsafe impl Sync for Wait<'_> {}

impl Unpin for Wait<'_> {}

impl<'a> Wait<'a> {
    pub(crate) fn new(inner: QueueRef<'a>, handle: Handle, start: Result<u64, QueueError>) -> Self {
        Self {
            inner,
            handle,
            start,
            hint: None,
            entry: None,
        }
    }

    /// Attaches a debug hint, listed by
    /// [`NotificationQueue::waiters`](crate::NotificationQueue::waiters)
    /// while this wait is pending.
    pub fn with_hint(mut self, hint: impl Into<Hint>) -> Self {
        let hint = hint.into();
        if let Some((list, index, _, ticket, _)) = &self.entry {
            list.set_hint(*index, *ticket, Some(hint.clone()));
        }
        self.hint = Some(hint);
        self
    }

    /// The snapshot this wait completes after.
    pub fn snapshot(&self) -> Result<Snapshot, QueueError> {
        self.start.map(|sequence| Snapshot {
            handle: self.handle,
            sequence,
        })
    }

    fn check(&self, slot: &Slot, word: u64, start: u64) -> Option<Result<Notified, QueueError>> {
        let generation = self.handle.generation;
        if eventcount::generation(word) != generation {
            // Closed: report the notifies it has not seen yet first.
            return Some(self.inner.closed_outcome(slot, generation, start, word));
        }
        let sequence = eventcount::sequence(word);
        if sequence == start {
            return None;
        }
        Some(Ok(Notified {
            sequence,
            // Relaxed: ordered after the Acquire load/RMW that gave `word`,
            // which synchronises with the notify's Release CAS.
            arg: slot.arg(generation).load(Ordering::Relaxed),
            coalesced: eventcount::distance(start, sequence),
        }))
    }

    /// Gives our entry back; returns the argument of a `notify_one` that
    /// had chosen us, which the caller must report or hand on.
    /// (An associated function on the fields, so a poll can call it while
    /// it borrows the queue.)
    fn take_entry(entry: &mut Option<EntryRef>, hinted: bool) -> Option<i64> {
        let (list, index, entry, ticket, _) = entry.take()?;
        // SAFETY: `entry` lives in `list`, which we still hold.
        list.release(index, unsafe { &*entry }, ticket, hinted)
    }

    /// Gives our entry back, passing on a `notify_one` that had chosen us
    /// (to the next waiter, or as the permit).
    #[inline]
    fn release_in(inner: &Inner, handle: Handle, entry: &mut Option<EntryRef>, hinted: bool) {
        if let Some(arg) = Self::take_entry(entry, hinted) {
            // Stale: the handle was closed, and its waits with it.
            let _ = inner.notify_some(handle, arg, 1);
        }
    }

    fn release(&mut self) {
        Self::release_in(
            &self.inner,
            self.handle,
            &mut self.entry,
            self.hint.is_some(),
        );
    }

    /// The outcome of a wait completed by `notify_one` or a permit.
    fn one(start: u64, arg: i64) -> Result<Notified, QueueError> {
        Ok(Notified {
            sequence: start,
            arg,
            coalesced: 1,
        })
    }

    /// Takes the handle's permit if it has one, as long as the word is
    /// still at our generation and snapshot. Returns its argument.
    fn take_permit(&self, slot: &Slot, mut word: u64, start: u64) -> Option<i64> {
        while word & eventcount::PERMIT != 0
            && eventcount::generation(word) == self.handle.generation
            && eventcount::sequence(word) == start
        {
            // AcqRel: Acquire reads the permit's argument, stored before
            // the notifier's Release CAS; Release keeps our registration
            // (if any) ordered before later RMWs, as the CAS below does.
            match slot.state.compare_exchange_weak(
                word,
                word & !eventcount::PERMIT,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                // Relaxed: ordered by the Acquire CAS.
                Ok(_) => {
                    return Some(
                        slot.permit_arg(self.handle.generation)
                            .load(Ordering::Relaxed),
                    );
                }
                Err(actual) => word = actual,
            }
        }
        None
    }

    #[inline(always)]
    fn poll_wait(&mut self, waker: &Waker) -> Poll<Result<Notified, QueueError>> {
        let start = match self.start {
            Ok(s) => s,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let Some(slot) = self.inner.table.slot(self.handle) else {
            return Poll::Ready(Err(QueueError::StaleHandle));
        };
        // A `notify_one` that chose us comes first: it was delivered to us.
        if self.notified_one() {
            if let Some(arg) = Self::take_entry(&mut self.entry, self.hint.is_some()) {
                return Poll::Ready(Self::one(start, arg));
            }
        }
        // Acquire: see the arg published with a newer sequence.
        let mut word = slot.state.load(Ordering::Acquire);
        if let Some(done) = self.check(slot, word, start) {
            Self::release_in(
                &self.inner,
                self.handle,
                &mut self.entry,
                self.hint.is_some(),
            );
            return Poll::Ready(done);
        }
        if let Some(arg) = self.take_permit(slot, word, start) {
            Self::release_in(
                &self.inner,
                self.handle,
                &mut self.entry,
                self.hint.is_some(),
            );
            return Poll::Ready(Self::one(start, arg));
        }
        if let Some((_, _, entry, ticket, registered)) = &mut self.entry {
            // SAFETY: the entry lives in the list whose `Arc` we hold.
            if !unsafe { &**entry }.register(*ticket, waker, registered) {
                // A notify completed us and freed the entry: its change of
                // the word is visible to this look (see `take_done`).
                self.entry = None;
                // Acquire: as above.
                word = slot.state.load(Ordering::Acquire);
                if let Some(done) = self.check(slot, word, start) {
                    return Poll::Ready(done);
                }
                // Only if the sequence wrapped around to our snapshot: wait
                // again, with a new entry (below).
            }
        }
        if self.entry.is_none() {
            let list = match self.inner.waiter_list(slot, self.handle.generation) {
                Ok(list) => list,
                Err(e) => return Poll::Ready(Err(e)),
            };
            let Some(list) = list else {
                // The generation moved on while we looked: read the outcome.
                // Acquire: as above.
                let word = slot.state.load(Ordering::Acquire);
                return Poll::Ready(
                    self.check(slot, word, start)
                        .unwrap_or(Err(QueueError::Closed)),
                );
            };
            // Cloned before the claim: no client code runs while the entry
            // is reserved.
            let (index, entry, ticket) = match list.claim(start, waker.clone()) {
                Ok(claimed) => claimed,
                Err(ClaimError::Full) => {
                    let limit = self.inner.config.max_waiters_per_handle;
                    let err = QueueError::WaiterLimit { limit };
                    let (inner, handle) = (&*self.inner, self.handle);
                    trace::refused(Some(handle.into()), || inner.hint_of(handle), &err);
                    return Poll::Ready(Err(err));
                }
                Err(ClaimError::Budget(e)) => return Poll::Ready(Err(e)),
            };
            if let Some(hint) = &self.hint {
                list.set_hint(index, ticket, Some(hint.clone()));
            }
            let entry: *const Entry = entry;
            self.entry = Some((list, index, entry, ticket, eventcount::waker_id(waker)));
        }
        // Publish the registration: an RMW that sets `WAITERS`, but only on
        // our own generation's word (a stale wait never touches a newer
        // owner's state). The RMW is a CAS even when the bit is already set:
        // its Release is what orders our registration before the notifier's
        // CAS.
        // The CAS starts from the word read above: if it changed meanwhile,
        // the CAS fails and hands us the current one.
        let registered = loop {
            if eventcount::generation(word) != self.handle.generation
                || eventcount::sequence(word) != start
            {
                break false;
            }
            if word & eventcount::PERMIT != 0 {
                // A permit: take it instead of sleeping.
                match self.take_permit(slot, word, start) {
                    Some(arg) => {
                        Self::release_in(
                            &self.inner,
                            self.handle,
                            &mut self.entry,
                            self.hint.is_some(),
                        );
                        return Poll::Ready(Self::one(start, arg));
                    }
                    None => {
                        // Acquire: as the CAS below.
                        word = slot.state.load(Ordering::Acquire);
                        continue;
                    }
                }
            }
            // AcqRel: Release publishes the registration above to the
            // notifier whose CAS reads this flag; Acquire sees its arg (or
            // close record) if it came first, for `check` below.
            match slot.state.compare_exchange_weak(
                word,
                word | eventcount::WAITERS,
                Ordering::AcqRel,
                Ordering::Acquire,
            ) {
                Ok(_) => break true,
                Err(actual) => word = actual,
            }
        };
        // Registered: the word had our generation and snapshot, so `check`
        // would find nothing.
        if !registered {
            if let Some(done) = self.check(slot, word, start) {
                Self::release_in(
                    &self.inner,
                    self.handle,
                    &mut self.entry,
                    self.hint.is_some(),
                );
                return Poll::Ready(done);
            }
        }
        // After our registration: a `notify_one` that chose us either sees
        // our waker or is seen here.
        if self.notified_one() {
            if let Some(arg) = Self::take_entry(&mut self.entry, self.hint.is_some()) {
                return Poll::Ready(Self::one(start, arg));
            }
        }
        Poll::Pending
    }

    /// Whether a `notify_one` completed our entry.
    fn notified_one(&self) -> bool {
        self.entry.as_ref().is_some_and(|(_, _, entry, ticket, _)| {
            // SAFETY: the entry lives in the list whose `Arc` we hold.
            unsafe { &**entry }.is_notified(*ticket)
        })
    }

    /// Blocks the thread until a notify after the snapshot, or close.
    ///
    /// Like crossbeam's channels, the blocking forms first spin and yield
    /// for a few microseconds (re-reading the handle's state word) before
    /// they park, so a notify that arrives from another CPU within that time
    /// wakes nobody and costs no context switch.
    pub fn wait(self) -> Result<Notified, QueueError> {
        self.block(None)
    }

    /// The outcome if the wait is over already, without registering.
    fn peek(&self) -> Option<Result<Notified, QueueError>> {
        let start = match self.start {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        let Some(slot) = self.inner.table.slot(self.handle) else {
            return Some(Err(QueueError::StaleHandle));
        };
        // Acquire: see the arg published with a newer sequence.
        self.check(slot, slot.state.load(Ordering::Acquire), start)
    }

    /// Whether the handle holds a `notify_one` permit.
    fn permit_present(&self) -> bool {
        self.inner.table.slot(self.handle).is_some_and(|slot| {
            // Relaxed: a hint to stop spinning; the poll takes the permit
            // with a CAS.
            slot.state.load(Ordering::Relaxed) & eventcount::PERMIT != 0
        })
    }

    /// Spins before the caller parks (`sync::spin_until`), checking the
    /// state word (one load) each time; stops early when the handle holds a
    /// permit, which the first poll takes.
    fn spin(&self, deadline: park::Deadline) -> Option<Result<Notified, QueueError>> {
        crate::sync::spin_until(&deadline, || match self.peek() {
            Some(done) => Some(Some(done)),
            None if self.permit_present() => Some(None),
            None => None,
        })
        .flatten()
    }

    pub(super) fn block(mut self, deadline: park::Deadline) -> Result<Notified, QueueError> {
        if let Some(done) = self.spin(deadline) {
            return done;
        }
        let parker = park::Parker::new();
        let waker = parker.waker();
        loop {
            if let Poll::Ready(r) = self.poll_wait(&waker) {
                return r;
            }
            if !parker.park_until(deadline) {
                return Err(QueueError::Timeout);
            }
        }
    }
}

impl Future for Wait<'_> {
    type Output = Result<Notified, QueueError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().poll_wait(cx.waker())
    }
}

impl Drop for Wait<'_> {
    #[inline]
    fn drop(&mut self) {
        // Checked here, inline: a completed wait (the common drop) has
        // released its entry already and skips the call.
        if self.entry.is_some() {
            self.release();
        }
    }
}
