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
use crate::primitives::eventcount::{self, ClaimError, Entry, OwnerView, WaiterList, WakerId};
use crate::primitives::slots::{Handle, Slot, SlotPtr};
use crate::state::{Inner, Notified, Snapshot};
use crate::sync::park;
use crate::sync::{Arc, Hint, Ordering};
use crate::trace;
use core::future::Future;
use core::marker::PhantomData;
use core::pin::Pin;
use core::ptr::NonNull;
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
/// # Size
///
/// A `Wait` is 80 bytes on 64-bit targets, owned or borrowed. Its waiter
/// entry lives in the handle's list, not in the future, so a `Wait` is
/// `Unpin` and may be moved between polls.
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
pub struct Wait<'a> {
    inner: QueueRef<'a>,
    /// The handle's slot, index and generation (its queue is `inner`'s;
    /// see `new`). The slot is dereferenced only while `start` is not
    /// `STALE`.
    slot: SlotPtr,
    index: u32,
    generation: u32,
    /// The snapshot sequence, or `STALE`.
    start: u64,
    /// Our waiter entry, or the hint to list it under once we claim one.
    phase: Phase,
}

impl core::fmt::Debug for Wait<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Wait")
            .field("inner", &self.inner)
            .field("handle", &self.handle())
            .field("start", &self.start())
            .field("phase", &self.phase)
            .finish()
    }
}

/// `Wait::start` of a wait whose handle was stale or of another queue when
/// the wait was made: never a sequence (those fit in 37 bits).
const STALE: u64 = u64::MAX;
const _: () = assert!(STALE > eventcount::SEQ_VALUE_MASK);

/// What a [`Wait`] holds of its handle's waiter list. Two variants with
/// the `Arc` as the niche keep a `Wait` at 80 bytes (a claim and a hint are
/// never needed at once: a claimed wait's hint is in the list's table).
#[derive(Debug)]
enum Phase {
    /// No entry (not registered yet, or given back); the debug hint to
    /// list the wait under once it claims one.
    Unclaimed(Option<Hint>),
    Claimed(Claim),
}

/// A claimed waiter entry and the list that owns it. A plain notify that
/// completes the wait may free the entry (the ticket then no longer
/// matches it).
#[derive(Debug)]
struct Claim {
    list: Arc<WaiterList>,
    /// Points into `list`, which the `Arc` beside keeps alive.
    entry: *const Entry,
    /// The claim's ticket: the entry is ours while its state carries it.
    ticket: u64,
    /// The waker last registered in the entry.
    registered: WakerId,
    /// The entry's index in `list` (lists hold at most `u32::MAX` entries).
    index: u32,
    /// Whether the list's hint table holds a hint for this claim.
    hinted: bool,
}

/// The queue a [`Wait`] belongs to: borrowed, or one strong count of an
/// `Arc<Inner>` for `'static` waits. One word: the `Inner`'s address, with
/// bit 0 set when the count is ours (`Inner` is aligned to more than one
/// byte, so the bit is otherwise clear).
pub(crate) struct QueueRef<'a> {
    ptr: NonNull<Inner>,
    _inner: PhantomData<&'a Inner>,
}

const OWNED: usize = 1;
const _: () = assert!(core::mem::align_of::<Inner>() > OWNED);

impl<'a> QueueRef<'a> {
    /// Borrows `inner` for `'a`.
    #[inline]
    pub(crate) fn borrowed(inner: &'a Inner) -> Self {
        Self {
            ptr: NonNull::from(inner),
            _inner: PhantomData,
        }
    }

    /// Holds `inner`'s strong count until dropped.
    #[inline]
    pub(crate) fn owned(inner: Arc<Inner>) -> QueueRef<'static> {
        let raw = Arc::into_raw(inner).cast_mut();
        QueueRef {
            // SAFETY: `Arc::into_raw` never returns null, and setting bit 0
            // of a non-null address keeps it non-null.
            ptr: unsafe { NonNull::new_unchecked(raw.map_addr(|a| a | OWNED)) },
            _inner: PhantomData,
        }
    }

    #[inline]
    fn is_owned(&self) -> bool {
        self.ptr.as_ptr().addr() & OWNED != 0
    }

    #[inline]
    fn untagged(&self) -> *const Inner {
        self.ptr.as_ptr().map_addr(|a| a & !OWNED).cast_const()
    }
}

impl core::ops::Deref for QueueRef<'_> {
    type Target = Inner;
    #[inline]
    fn deref(&self) -> &Inner {
        // SAFETY: the untagged pointer is the `&'a Inner` we were built
        // from (alive for `'a`, which outlives `self`), or an `Arc<Inner>`
        // whose strong count we hold until `drop`.
        unsafe { &*self.untagged() }
    }
}

impl Drop for QueueRef<'_> {
    #[inline]
    fn drop(&mut self) {
        if self.is_owned() {
            // SAFETY: an owned `QueueRef` holds the strong count that
            // `owned` took from `Arc::into_raw`; it is given back once, here.
            drop(unsafe { Arc::from_raw(self.untagged()) });
        }
    }
}

impl core::fmt::Debug for QueueRef<'_> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("QueueRef")
            .field("owned", &self.is_owned())
            .finish_non_exhaustive()
    }
}

// SAFETY: a `Wait` shares the queue (`&Inner` or `Arc<Inner>`; `Inner` is
// `Send + Sync`) and its entry, which lives in the `Arc<WaiterList>` held
// beside the raw pointer (`Entry` is `Sync`: atomics and a waker cell
// guarded by its state word); the slot pointer is an address into the
// queue's slot table, which the queue keeps alive.
unsafe impl Send for Wait<'_> {}
// SAFETY: `&Wait` exposes nothing that touches the entry or the slot.
unsafe impl Sync for Wait<'_> {}

impl Unpin for Wait<'_> {}

impl<'a> Wait<'a> {
    /// A wait on `handle` from snapshot `start` (`None`: the handle is
    /// stale, the only error a snapshot reports). A handle of another queue
    /// makes a stale wait too, so the slot pointer kept is always one of
    /// `inner`'s.
    #[inline]
    pub(crate) fn new(inner: QueueRef<'a>, handle: Handle, start: Option<u64>) -> Self {
        let start = match start {
            Some(s) if handle.queue == inner.table.id => s,
            _ => STALE,
        };
        Self {
            inner,
            slot: handle.slot,
            index: handle.index,
            generation: handle.generation,
            start,
            phase: Phase::Unclaimed(None),
        }
    }

    /// The handle this wait is on.
    #[inline]
    fn handle(&self) -> Handle {
        Handle {
            queue: self.inner.table.id,
            index: self.index,
            generation: self.generation,
            slot: self.slot,
        }
    }

    /// The snapshot sequence, or the error of a stale handle.
    #[inline]
    fn start(&self) -> Result<u64, QueueError> {
        match self.start {
            STALE => Err(QueueError::StaleHandle),
            s => Ok(s),
        }
    }

    /// The handle's slot.
    ///
    /// # Safety
    ///
    /// `self.start` is not `STALE`.
    #[inline]
    unsafe fn slot(&self) -> &Slot {
        // SAFETY: `start` is not `STALE`, so `new` found the handle's queue
        // id to be `inner`'s table's, as `slot_unchecked` requires.
        unsafe { self.inner.table.slot_unchecked(self.handle()) }
    }

    /// Attaches a debug hint, listed by
    /// [`NotificationQueue::waiters`](crate::NotificationQueue::waiters)
    /// while this wait is pending.
    pub fn with_hint(mut self, hint: impl Into<Hint>) -> Self {
        let hint = hint.into();
        match &mut self.phase {
            Phase::Claimed(c) => {
                c.list.set_hint(c.index as usize, c.ticket, Some(hint));
                c.hinted = true;
            }
            Phase::Unclaimed(h) => *h = Some(hint),
        }
        self
    }

    /// The snapshot this wait completes after.
    pub fn snapshot(&self) -> Result<Snapshot, QueueError> {
        self.start().map(|sequence| Snapshot {
            handle: self.handle(),
            sequence,
        })
    }

    fn check(&self, slot: &Slot, word: u64, start: u64) -> Option<Result<Notified, QueueError>> {
        let generation = self.generation;
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

    /// Takes our claim out of `phase`, leaving it unclaimed with the
    /// claim's hint (taken back from the list's table) for a later claim.
    fn unclaim(phase: &mut Phase) -> Option<Claim> {
        let Phase::Claimed(c) = phase else {
            return None;
        };
        let hint = if c.hinted {
            c.list.set_hint(c.index as usize, c.ticket, None)
        } else {
            None
        };
        match core::mem::replace(phase, Phase::Unclaimed(hint)) {
            Phase::Claimed(c) => Some(c),
            Phase::Unclaimed(_) => None,
        }
    }

    /// Gives our entry back (keeping its hint for a later claim); returns
    /// the argument of a `notify_one` that had chosen us, which the caller
    /// must report or hand on. (An associated function on the field, so a
    /// poll can call it while it borrows the queue.)
    fn take_entry(phase: &mut Phase) -> Option<i64> {
        let c = Self::unclaim(phase)?;
        // SAFETY: `c.entry` lives in `c.list`, which we still hold.
        c.list
            .release(c.index as usize, unsafe { &*c.entry }, c.ticket)
    }

    /// Gives our entry back, passing on a `notify_one` that had chosen us
    /// (to the next waiter, or as the permit).
    #[inline]
    fn release(&mut self) {
        if let Some(arg) = Self::take_entry(&mut self.phase) {
            // Stale: the handle was closed, and its waits with it.
            let _ = self.inner.notify_some(self.handle(), arg, 1);
        }
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
            && eventcount::generation(word) == self.generation
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
                    return Some(slot.permit_arg(self.generation).load(Ordering::Relaxed));
                }
                Err(actual) => word = actual,
            }
        }
        None
    }

    /// Claims an entry in the generation's list with `waker` registered.
    /// `Err(outcome)` ends the wait (an error, or the generation moved on
    /// while we looked).
    fn claim(
        &mut self,
        slot: &Slot,
        start: u64,
        waker: &Waker,
    ) -> Result<(), Poll<Result<Notified, QueueError>>> {
        let list = match self.inner.waiter_list(slot, self.generation) {
            Ok(list) => list,
            Err(e) => return Err(Poll::Ready(Err(e))),
        };
        let Some(list) = list else {
            // The generation moved on while we looked: read the outcome.
            // Acquire: as in `poll_wait`.
            let word = slot.state.load(Ordering::Acquire);
            return Err(Poll::Ready(
                self.check(slot, word, start)
                    .unwrap_or(Err(QueueError::Closed)),
            ));
        };
        // Cloned before the claim: no client code runs while the entry is
        // reserved.
        let (index, entry, ticket) = match list.claim(start, waker.clone()) {
            Ok(claimed) => claimed,
            Err(ClaimError::Full) => {
                let limit = self.inner.config.max_waiters_per_handle;
                let err = QueueError::WaiterLimit { limit };
                let (inner, handle) = (&*self.inner, self.handle());
                trace::refused(Some(handle.into()), || inner.hint_of(handle), &err);
                return Err(Poll::Ready(Err(err)));
            }
            Err(ClaimError::Budget(e)) => return Err(Poll::Ready(Err(e))),
        };
        let entry: *const Entry = entry;
        let hint = match &mut self.phase {
            Phase::Unclaimed(hint) => hint.take(),
            Phase::Claimed(_) => None,
        };
        let hinted = hint.is_some();
        if hinted {
            list.set_hint(index, ticket, hint);
        }
        self.phase = Phase::Claimed(Claim {
            list,
            entry,
            ticket,
            registered: eventcount::waker_id(waker),
            // Lossless: a list holds at most `MAX_ENTRIES` (`u32::MAX`).
            index: index as u32,
            hinted,
        });
        Ok(())
    }

    #[inline(always)]
    fn poll_wait(&mut self, waker: &Waker) -> Poll<Result<Notified, QueueError>> {
        let start = match self.start() {
            Ok(s) => s,
            Err(e) => return Poll::Ready(Err(e)),
        };
        // SAFETY: `start` is not `STALE`. The reference is detached from
        // `self`'s borrow so that the poll can update `self.phase`: the slot
        // lives in the queue's slot table, which `self.inner` keeps alive
        // for all of this call (nothing here drops or replaces `inner`).
        let slot = unsafe { &*(self.slot() as *const Slot) };
        match self.owner_view() {
            // A `notify_one` that chose us comes first: it was delivered to
            // us.
            Some(OwnerView::Notified) => {
                if let Some(arg) = Self::take_entry(&mut self.phase) {
                    return Poll::Ready(Self::one(start, arg));
                }
            }
            // A plain notify completed us and freed our entry (the common
            // way a woken wait finds it): nothing to give back, and the look
            // at the word below sees that notify.
            Some(OwnerView::Gone) => drop(Self::unclaim(&mut self.phase)),
            Some(OwnerView::Held) | None => {}
        }
        // Acquire: see the arg published with a newer sequence.
        let mut word = slot.state.load(Ordering::Acquire);
        if let Some(done) = self.check(slot, word, start) {
            self.release();
            return Poll::Ready(done);
        }
        if let Some(arg) = self.take_permit(slot, word, start) {
            self.release();
            return Poll::Ready(Self::one(start, arg));
        }
        if let Phase::Claimed(c) = &mut self.phase {
            // SAFETY: the entry lives in the list whose `Arc` we hold.
            if !unsafe { &*c.entry }.register(c.ticket, waker, &mut c.registered) {
                // A notify completed us and freed the entry: its change of
                // the word is visible to this look (see `take_done`).
                drop(Self::unclaim(&mut self.phase));
                // Acquire: as above.
                word = slot.state.load(Ordering::Acquire);
                if let Some(done) = self.check(slot, word, start) {
                    return Poll::Ready(done);
                }
                // Only if the sequence wrapped around to our snapshot: wait
                // again, with a new entry (below).
            }
        }
        if let Phase::Unclaimed(_) = self.phase {
            if let Err(done) = self.claim(slot, start, waker) {
                return done;
            }
        }
        // Publish the registration: an RMW that sets `WAITERS`, but only on
        // our own generation's word (a stale wait never touches a newer
        // owner's state). The RMW is a CAS even when the bit is already set:
        // its Release is what orders our registration before the notifier's
        // CAS.
        // The CAS starts from the word read above: if it changed meanwhile,
        // the CAS fails and hands us the current one.
        let registered = loop {
            if eventcount::generation(word) != self.generation
                || eventcount::sequence(word) != start
            {
                break false;
            }
            if word & eventcount::PERMIT != 0 {
                // A permit: take it instead of sleeping.
                match self.take_permit(slot, word, start) {
                    Some(arg) => {
                        self.release();
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
                self.release();
                return Poll::Ready(done);
            }
        }
        // After our registration: a `notify_one` that chose us either sees
        // our waker or is seen here.
        if self.notified_one() {
            if let Some(arg) = Self::take_entry(&mut self.phase) {
                return Poll::Ready(Self::one(start, arg));
            }
        }
        Poll::Pending
    }

    /// Whether a `notify_one` completed our entry.
    fn notified_one(&self) -> bool {
        self.owner_view() == Some(OwnerView::Notified)
    }

    /// What we find in our entry, if we hold one.
    #[inline]
    fn owner_view(&self) -> Option<OwnerView> {
        match &self.phase {
            // SAFETY: the entry lives in the list whose `Arc` we hold.
            Phase::Claimed(c) => Some(unsafe { &*c.entry }.owner_view(c.ticket)),
            Phase::Unclaimed(_) => None,
        }
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

    /// Spins before the caller parks (`sync::spin_until`), looking at the
    /// state word (one load) each time: stops with the outcome once the
    /// wait is over, or early when the handle holds a permit, which the
    /// first poll takes.
    fn spin(&self, deadline: park::Deadline) -> Option<Result<Notified, QueueError>> {
        let start = match self.start() {
            Ok(s) => s,
            Err(e) => return Some(Err(e)),
        };
        // SAFETY: `start` is not `STALE`.
        let slot = unsafe { self.slot() };
        crate::sync::spin_until(&deadline, || {
            // Acquire: see the arg published with a newer sequence.
            let word = slot.state.load(Ordering::Acquire);
            match self.check(slot, word, start) {
                Some(done) => Some(Some(done)),
                None if word & eventcount::PERMIT != 0 => Some(None),
                None => None,
            }
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
        if let Phase::Claimed(_) = self.phase {
            self.release();
        }
    }
}

#[cfg(all(test, target_pointer_width = "64", not(notification_queue_loom)))]
mod tests {
    use super::*;

    #[test]
    fn a_wait_is_80_bytes() {
        // One word each for the queue, the slot, index and generation, and
        // the snapshot; five for the claim (or the hint), the `Arc` in it
        // serving as the niche that tells the two apart.
        assert_eq!(core::mem::size_of::<Wait<'_>>(), 80);
        assert_eq!(core::mem::size_of::<QueueRef<'_>>(), 8);
    }
}
