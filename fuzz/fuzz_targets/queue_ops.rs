//! Differential fuzzing of the queue core against a plain reference model.
//!
//! The input is a small [`Config`] (limits of a few handles and waiters, so
//! every limit error is reached; `slot_generations` either the default or
//! 1 to 4 handles per slot, so slots are reused and retired within a run)
//! and a sequence of operations: register, unregister, notify, snapshot,
//! wait futures created from a handle or from a saved snapshot, polled with
//! one of three counting wakers, re-polled, dropped or "leaked" (moved out
//! of reach and never polled again, as a `mem::forget` would leave it; the
//! run drops them only at its end), blocking waits with a zero timeout,
//! stale and foreign handles (handles kept after unregister, handles of
//! another queue), subscriptions (subscribe with any capacity and either
//! overflow policy, `try_recv`, a `recv` future polled with a counting
//! waker, drop, length and drop counters), the debug dump and the
//! statistics. Compound operations reach slot reuse on purpose: `Cycle`
//! (unregister, register), `WaitPoll` (a wait polled at once) and `Reuse`
//! (a wait left pending on a handle, maybe a notify it has not seen, the
//! handle unregistered, a new handle registered into the freed slot with a
//! pending wait of its own, the old wait polled, the new handle notified).
//!
//! The model is single-threaded bookkeeping: per slot index the generation,
//! sequence, last argument of the current generation, `WAITERS` flag,
//! current waiter list, subscribers and the *close record* of its last
//! unregister (generation, final sequence, last argument of that
//! generation); the FIFO free list, the generation limit and the count of
//! slots retired because their generations ran out (a slot whose handle had
//! the last generation is never put back on the free list; a new index is
//! taken instead); per list its claimed entries by index (first chunk of 4,
//! doubling up to the limit, the claim hint moved by every claim and
//! release), per wait its snapshot, the list entry it holds and which waker
//! it armed; per subscription its ring as plain positions (`head`, `tail`,
//! every value ever pushed), its rejected and dropped counts and where it
//! was closed.
//!
//! A wait whose generation is gone (its handle was unregistered, whether or
//! not the slot has a new owner) completes from the close record alone:
//! `Notified` with the final sequence and that generation's last argument
//! if the record is its generation's and ends past its snapshot, else
//! `Closed` (also once the slot's next owner was unregistered and the record
//! overwritten). It releases its entry in the old list and never touches the
//! new owner's list or `WAITERS` flag.
//!
//! Every operation's result (errors, counts woken, `Notified { sequence,
//! arg, coalesced }`, handle index and generation, waiter counts and hints,
//! dump, stats including `exhausted_slots`) is compared with the model's
//! prediction. After every step each waker's wake count, the order in which
//! waits were woken (each notify or unregister wakes its waiters by
//! ascending entry index; every poll gets a fresh waker that logs its wait),
//! each known handle's snapshot/registration state and every live owner's
//! waiter count (`waiters()`) are compared too. At the end every wait still
//! in reach and a new wait from every kept snapshot are polled once more and
//! must complete as predicted. So a lost wakeup (an armed waker not woken by
//! a notify), a spurious wake, a wake out of order, a leaked or double-freed
//! waiter entry, a stale handle or stale wait acting on its slot's next
//! owner, a reused retired slot or a wrong outcome after unregister all fail
//! an assertion.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use notification_queue::{
    Config, Handle, KeyedQueue, NotificationQueue, Notified, Overflow, QueueError, RecvError,
    Snapshot, SubscribeOptions, Subscription, TryRecvError, Wait,
};
use std::collections::{HashMap, HashSet, VecDeque};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

#[derive(Arbitrary, Debug)]
struct Input {
    max_handles: u8,
    max_waiters: u8,
    max_subscribers: u8,
    max_capacity: u8,
    /// `Config::slot_generations`: `None` keeps the default (2^23 handles
    /// per slot), `Some(n)` gives `1 + n % 4`, so slots retire quickly.
    slot_generations: Option<u8>,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Register,
    /// Registers a handle on a second queue (a foreign handle for the first).
    RegisterForeign,
    /// Registers a handle on a queue that is then dropped: a foreign handle
    /// whose slot memory is freed (ASan sees any use of it).
    RegisterDropped,
    Unregister(u8),
    Notify(u8, i64),
    Snapshot(u8),
    IsRegistered(u8),
    /// `queue.wait(h)`.
    Wait(u8),
    /// `queue.wait_after(saved snapshot)`.
    WaitAfter(u8),
    WithHint(u8),
    /// Polls wait `.0` with waker `.1 % WAKERS`.
    Poll(u8, u8),
    Drop(u8),
    /// Moves the wait out of reach: never polled or dropped again this run.
    Leak(u8),
    /// `wait_timeout(Duration::ZERO)` on a handle.
    WaitZero(u8),
    Waiters(u8),
    Dump,
    Stats,
    /// Subscribes to handle `.0` with capacity `.1 % 10` (0 and too large
    /// included), keeping the oldest if `.2`.
    Subscribe(u8, u8, bool),
    TryRecv(u8),
    /// Polls a fresh `recv()` future of subscription `.0` with waker `.1`.
    PollRecv(u8, u8),
    DropSub(u8),
    /// Checks `len`, `dropped`, `is_closed` of a subscription.
    SubState(u8),
    /// Unregisters handle `.0`, then registers a new one (which takes the
    /// oldest free slot): reaches slot reuse and retirement quickly.
    Cycle(u8),
    /// `queue.wait(h)` on handle `.0`, polled at once with waker `.1`.
    WaitPoll(u8, u8),
    /// Polls the most recently created wait with waker `.0`.
    PollLast(u8),
    /// A stale wait across a reuse: a wait on handle `.0` polled (pending,
    /// waker `.1`), the handle notified with `.2` if any (a notify the wait
    /// has not seen), unregistered, and a new one registered (the slot is
    /// reused if it was the oldest free one), a wait on the new handle
    /// polled (pending), the old wait polled again, and the new handle
    /// notified.
    Reuse(u8, u8, Option<i64>),
    /// `notify_one(handle .0, .1)`.
    NotifyOne(u8, i64),
    /// `notify_n(handle .0, .1, .2 % 6)` (`n == 0` included).
    NotifyN(u8, i64, u8),
    /// Drops the `.0`-th wait in reach that `notify_one` chose and that has
    /// not reported it yet: the wake passes to the next waiting wait.
    DropChosen(u8),
    /// Two waits on handle `.0` polled pending (wakers `.1`, `.1 + 1`),
    /// `notify_one(.0, .2)`, and the chosen wait dropped at once.
    PassOn(u8, u8, i64),
    /// `keyed.register(key .0 % KEYS)`: the handle is kept like any other.
    KRegister(u8),
    /// `keyed.unregister(&key)`.
    KUnregister(u8),
    /// `keyed.notify(&key, .1)`.
    KNotify(u8, i64),
    /// `keyed.notify_one(&key, .1)`.
    KNotifyOne(u8, i64),
    /// `keyed.wait(&key)`, kept like any other wait.
    KWait(u8),
    /// `keyed.snapshot(&key)`, kept for `WaitAfter`.
    KSnapshot(u8),
    /// `keyed.subscribe(&key, .1 % 10)`, kept like any other subscription.
    KSubscribe(u8, u8),
    /// `keyed.handle(&key)`: the looked-up handle is kept, so every handle
    /// operation above also runs on it after its key moved on.
    KLookup(u8),
    /// `keyed.contains_key(&key)` and `keyed.waiters(&key)`.
    KState(u8),
    /// Unregisters key `.0`, registers it again (a new generation, maybe in
    /// the same slot) and notifies it with `.1`.
    KCycle(u8, i64),
}

/// Keys of the keyed layer (`KeyedQueue<u8>` over the same queue).
const KEYS: u8 = 8;

const WAKERS: usize = 3;
const MAX_HANDLES_KEPT: usize = 48;
const MAX_WAITS: usize = 64;

#[derive(Default)]
struct CountingWaker(AtomicUsize);

/// The waker of one poll of wait `wait`: counts on waker `counter` and
/// logs the wait, so the order of one notify's wakes is seen.
struct WaitWaker {
    wait: usize,
    counter: Arc<CountingWaker>,
    log: Arc<Mutex<Vec<usize>>>,
}

impl Wake for WaitWaker {
    fn wake(self: Arc<Self>) {
        self.counter.0.fetch_add(1, Ordering::SeqCst);
        self.log.lock().expect("log").push(self.wait);
    }
}

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// One slot index of the real queue.
/// The record of a slot's last unregister (what `closed_outcome` reads).
#[derive(Debug, Clone, Copy)]
struct MClose {
    generation: u32,
    /// The final sequence of that generation.
    seq: u64,
    /// The argument of its last notify.
    arg: i64,
}

#[derive(Debug, Clone, Default)]
struct MSlot {
    generation: u32,
    seq: u64,
    /// Argument of the current generation's latest notify.
    arg: i64,
    /// The live handle of this slot, if any.
    handle: Option<Handle>,
    /// The last unregister of this slot (overwritten by the next one).
    closed: Option<MClose>,
    waiters_flag: bool,
    /// Index into `Model::lists` of the slot's current waiter list.
    list: Option<usize>,
    hint: String,
    /// Indices into `Model::subs` of this generation's live subscriptions.
    subs: Vec<usize>,
    /// The `notify_one` permit (its argument): set by a `notify_one` that
    /// completed fewer waits than asked, taken by the next wait that would
    /// sleep, kept by a plain notify, dropped by unregister.
    permit: Option<i64>,
}

#[derive(Debug)]
struct MSub {
    index: u32,
    generation: u32,
    cap: u64,
    keep_oldest: bool,
    hint: String,
    head: u64,
    tail: u64,
    values: Vec<i64>,
    rejected: u64,
    dropped: u64,
    /// `tail` at the close (the handle was unregistered).
    end: Option<u64>,
    /// `Closed` was returned (sticky).
    done: bool,
    armed: Option<usize>,
}

impl MSub {
    fn try_recv(&mut self) -> Result<i64, TryRecvError> {
        if self.done {
            return Err(TryRecvError::Closed);
        }
        if self.rejected != 0 {
            return Err(TryRecvError::Lagged(std::mem::take(&mut self.rejected)));
        }
        if self.head < self.tail {
            if self.tail > self.head + self.cap {
                let next = (self.tail - self.cap).max(self.head + 1);
                let lag = next - self.head;
                self.head = next;
                return Err(TryRecvError::Lagged(lag));
            }
            let v = self.values[self.head as usize];
            self.head += 1;
            return Ok(v);
        }
        if self.end.is_some_and(|e| self.head >= e) {
            self.done = true;
            return Err(TryRecvError::Closed);
        }
        Err(TryRecvError::Empty)
    }
}

/// Entries in a list's first chunk; each later chunk doubles, up to the
/// waiter limit.
const FIRST_CHUNK: usize = 4;

#[derive(Debug, Clone)]
struct MList {
    generation: u32,
    claimed: usize,
    /// Per allocated entry: claimed?
    taken: Vec<bool>,
    /// Where the next claim starts looking (the list's hint).
    next_free: usize,
    /// Length of the last chunk.
    last_chunk: usize,
    limit: usize,
    /// Registration order: every claim attempt takes the next ticket.
    tickets: u64,
}

impl MList {
    fn new(generation: u32, limit: usize) -> Self {
        let first = FIRST_CHUNK.min(limit);
        Self {
            generation,
            claimed: 0,
            taken: vec![false; first],
            next_free: 0,
            last_chunk: first,
            limit,
            tickets: 0,
        }
    }

    /// The entry index a claim takes: the first free one from the hint on,
    /// then from 0, else the first of a new chunk (`None` at the limit).
    /// The claim's ticket is `self.tickets - 1` afterwards.
    fn claim(&mut self) -> Option<usize> {
        self.tickets += 1;
        let start = self.next_free;
        let n = self.taken.len();
        let index = match (start..n).chain(0..start.min(n)).find(|&j| !self.taken[j]) {
            Some(j) => j,
            None => {
                let len = (self.last_chunk * 2).min(self.limit - n);
                if len == 0 {
                    return None;
                }
                self.last_chunk = len;
                self.taken.resize(n + len, false);
                n
            }
        };
        self.taken[index] = true;
        self.claimed += 1;
        self.next_free = index + 1;
        Some(index)
    }

    fn release(&mut self, index: usize) {
        assert!(self.taken[index]);
        self.taken[index] = false;
        self.claimed -= 1;
        // The hint only moves down on release: claims stay packed at the
        // front of the list.
        self.next_free = self.next_free.min(index);
    }
}

#[derive(Debug)]
struct MWait {
    handle: Handle,
    foreign: bool,
    start: Result<u64, QueueError>,
    /// The list this wait holds an entry in.
    entry: Option<usize>,
    /// The entry's index in that list.
    index: usize,
    /// Which waker is registered in the entry (and not yet woken).
    armed: Option<usize>,
    hint: Option<String>,
    leaked: bool,
    /// The entry's ticket (registration order, for `notify_one`).
    ticket: u64,
    /// The argument of a `notify_one` that chose this wait (its entry is
    /// `NOTIFIED`) and that it has not reported yet.
    chosen: Option<i64>,
}

impl MWait {
    fn new(handle: Handle, foreign: bool, start: Result<u64, QueueError>) -> Self {
        Self {
            handle,
            foreign,
            start,
            entry: None,
            index: 0,
            armed: None,
            hint: None,
            leaked: false,
            ticket: 0,
            chosen: None,
        }
    }
}

#[derive(Debug, Default)]
struct Model {
    slots: Vec<MSlot>,
    /// Free slot indices, reused oldest first.
    free: VecDeque<u32>,
    /// The last generation a slot may be issued with (`2n - 1`).
    generation_limit: u32,
    /// Slots retired for good (`Stats::exhausted_slots`).
    exhausted: usize,
    live: usize,
    lists: Vec<MList>,
    waits: Vec<MWait>,
    notifications: u64,
    slow: u64,
    wakes: u64,
    wakes_per_waker: [usize; WAKERS],
    /// Waits woken (by index), in order, since the last step's check.
    wake_log: Vec<usize>,
    subs: Vec<MSub>,
    delivered: u64,
    dropped: u64,
    /// The keyed layer's map: key -> the handle registered under it (an
    /// entry whose handle was unregistered behind the layer's back stays
    /// until the key is registered again or unregistered).
    keys: HashMap<u8, Handle>,
}

impl Model {
    fn slot_of(&self, h: &Handle, foreign: bool) -> Option<&MSlot> {
        if foreign {
            return None;
        }
        self.slots.get(h.index() as usize)
    }

    fn live(&self, h: &Handle, foreign: bool) -> bool {
        self.slot_of(h, foreign)
            .is_some_and(|s| s.generation == h.generation())
    }

    /// The sequence a new wait on `h` starts from (what `queue.wait` takes).
    fn wait_start(&self, h: &Handle, foreign: bool) -> Result<u64, QueueError> {
        if self.live(h, foreign) {
            Ok(self.slots[h.index() as usize].seq)
        } else {
            Err(QueueError::StaleHandle)
        }
    }

    /// Records a new, not yet polled wait; returns its index.
    fn new_wait(&mut self, handle: Handle, foreign: bool, start: Result<u64, QueueError>) -> usize {
        self.waits.push(MWait::new(handle, foreign, start));
        self.waits.len() - 1
    }

    /// A wait of `generation` from `start` once its generation is gone: the
    /// notifies it missed before the last unregister if the slot's close
    /// record is that generation's, else `Closed`.
    fn closed_outcome(slot: &MSlot, generation: u32, start: u64) -> Result<Notified, QueueError> {
        match slot.closed {
            Some(c) if c.generation == generation && c.seq != start => Ok(Notified {
                sequence: c.seq,
                arg: c.arg,
                coalesced: c.seq - start,
            }),
            _ => Err(QueueError::Closed),
        }
    }

    /// Registers into the oldest free slot (or a fresh one); returns the
    /// index and generation the handle must have.
    fn register(&mut self, hint: String) -> (u32, u32) {
        let index = match self.free.pop_front() {
            Some(i) => i,
            None => {
                self.slots.push(MSlot::default());
                (self.slots.len() - 1) as u32
            }
        };
        let s = &mut self.slots[index as usize];
        s.generation += 1;
        assert!(s.generation <= self.generation_limit);
        s.seq = 0;
        s.arg = 0;
        s.waiters_flag = false;
        s.permit = None;
        s.hint = hint;
        assert!(s.subs.is_empty());
        self.live += 1;
        (index, s.generation)
    }

    /// Unregisters the live handle of slot `ix`: wakes its waiters and
    /// subscribers, writes the close record, and frees or retires the slot.
    fn unregister(&mut self, ix: usize) {
        if let Some(list) = self.slots[ix].list.take() {
            self.wake_list(list, None);
        }
        for sub in std::mem::take(&mut self.slots[ix].subs) {
            self.subs[sub].end = Some(self.subs[sub].tail);
            self.wake_sub(sub);
        }
        let s = &mut self.slots[ix];
        s.closed = Some(MClose {
            generation: s.generation,
            seq: s.seq,
            arg: s.arg,
        });
        let last = s.generation;
        s.generation += 1;
        s.waiters_flag = false;
        s.permit = None;
        s.handle = None;
        self.live -= 1;
        if last + 2 <= self.generation_limit {
            self.free.push_back(ix as u32);
        } else {
            self.exhausted += 1;
        }
    }

    /// Wakes the armed waits of `list`, in entry order (logged by wait).
    /// Wakes every armed wait of `list`. With `seq` (a plain notify, which
    /// bumped the sequence to `seq`), the entries of the waits it finds
    /// complete (snapshot not `seq`, not chosen by a `notify_one`, waker in
    /// place) are freed as their wakers are taken.
    fn wake_list(&mut self, list: usize, seq: Option<u64>) -> usize {
        let mut woken: Vec<(usize, usize)> = Vec::new();
        for (i, w) in self.waits.iter_mut().enumerate() {
            if w.entry == Some(list)
                && let Some(k) = w.armed.take()
            {
                self.wakes_per_waker[k] += 1;
                woken.push((w.index, i));
                if let Some(seq) = seq
                    && w.chosen.is_none()
                    && w.start != Ok(seq)
                {
                    self.lists[list].release(w.index);
                    w.entry = None;
                }
            }
        }
        woken.sort();
        self.wake_log.extend(woken.iter().map(|&(_, i)| i));
        self.wakes += woken.len() as u64;
        woken.len()
    }

    fn wake_sub(&mut self, sub: usize) {
        if let Some(k) = self.subs[sub].armed.take() {
            self.wakes_per_waker[k] += 1;
        }
    }

    /// A notify's delivery to subscription `i`; returns whether it was stored.
    fn deliver(&mut self, i: usize, arg: i64) -> bool {
        let s = &mut self.subs[i];
        let full = s.tail - s.head >= s.cap;
        let stored = if full && s.keep_oldest {
            s.rejected += 1;
            s.dropped += 1;
            self.dropped += 1;
            false
        } else {
            if full {
                s.dropped += 1;
                self.dropped += 1;
            }
            s.values.push(arg);
            s.tail += 1;
            self.delivered += 1;
            true
        };
        self.wake_sub(i);
        stored
    }

    /// Gives wait `wait`'s entry back. A `notify_one` that chose it and
    /// that it did not report passes on: to the next waiting wait, or as
    /// the permit (nowhere if the handle is gone).
    fn release(&mut self, wait: usize) {
        if let Some(list) = self.waits[wait].entry.take() {
            self.lists[list].release(self.waits[wait].index);
            self.waits[wait].armed = None;
            if let Some(arg) = self.waits[wait].chosen.take() {
                let (h, foreign) = (self.waits[wait].handle, self.waits[wait].foreign);
                if self.live(&h, foreign) {
                    self.notify_some(h.index() as usize, arg, 1);
                }
            }
        }
    }

    /// A plain notify of the live handle of slot `ix`: bumps the sequence,
    /// wakes the registered waits (if `WAITERS`) and feeds the subscribers.
    /// Returns the count `notify` reports. The permit is kept.
    fn notify(&mut self, ix: usize, arg: i64) -> usize {
        self.notifications += 1;
        let (flag, list, subscribed) = {
            let s = &mut self.slots[ix];
            s.seq += 1;
            s.arg = arg;
            (std::mem::take(&mut s.waiters_flag), s.list, s.subs.clone())
        };
        let mut n = 0;
        if flag || !subscribed.is_empty() {
            self.slow += 1;
        }
        if flag && let Some(list) = list {
            let seq = self.slots[ix].seq;
            n += self.wake_list(list, Some(seq));
        }
        for sub in subscribed {
            n += self.deliver(sub, arg) as usize;
        }
        n
    }

    /// `notify_n(h, arg, n)` on the live handle of slot `ix`: if a wait
    /// registered since the last plain notify (`WAITERS`), completes the
    /// `n` waits holding an entry of the list that no `notify_one` chose
    /// yet, smallest ticket (first registered) first, waking their armed
    /// wakers in that order; leaves the permit (the latest argument wins)
    /// if it completed fewer than `n`. `n == 0` does nothing. Returns how
    /// many it completed. No sequence bump, no subscriber delivery.
    fn notify_some(&mut self, ix: usize, arg: i64, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        let mut done = 0;
        if self.slots[ix].waiters_flag
            && let Some(list) = self.slots[ix].list
        {
            // Only waits from the current sequence still wait: one whose
            // snapshot is older was completed by a plain notify (it reports
            // that when polled) and is passed by.
            let seq = self.slots[ix].seq;
            let mut pending: Vec<(u64, usize)> = self
                .waits
                .iter()
                .enumerate()
                .filter(|(_, w)| {
                    w.entry == Some(list) && w.chosen.is_none() && w.start == Ok(seq)
                })
                .map(|(i, w)| (w.ticket, i))
                .collect();
            pending.sort();
            for &(_, i) in pending.iter().take(n) {
                let w = &mut self.waits[i];
                w.chosen = Some(arg);
                if let Some(k) = w.armed.take() {
                    self.wakes_per_waker[k] += 1;
                    self.wake_log.push(i);
                    self.wakes += 1;
                }
                done += 1;
            }
        }
        if done < n {
            self.slots[ix].permit = Some(arg);
        }
        done
    }

    /// The live handle under `key`, or `UnknownKey` (unmapped, or mapped to
    /// a handle unregistered behind the layer's back).
    fn by_key(&self, key: u8) -> Result<Handle, QueueError> {
        match self.keys.get(&key) {
            Some(h) if self.live(h, false) => Ok(*h),
            _ => Err(QueueError::UnknownKey),
        }
    }

    /// What polling wait `i` with waker `k` returns; updates the model.
    fn poll(&mut self, i: usize, k: usize, limit: usize) -> Poll<Result<Notified, QueueError>> {
        let (handle, foreign, start) = {
            let w = &self.waits[i];
            (w.handle, w.foreign, w.start)
        };
        let start = match start {
            Ok(s) => s,
            Err(e) => return Poll::Ready(Err(e)),
        };
        let Some(slot) = self.slot_of(&handle, foreign).cloned() else {
            return Poll::Ready(Err(QueueError::StaleHandle));
        };
        // A `notify_one` that chose this wait comes first (even after its
        // handle was unregistered): it reports that argument, its snapshot's
        // sequence and `coalesced == 1`, and passes nothing on.
        if self.waits[i].entry.is_some()
            && let Some(arg) = self.waits[i].chosen.take()
        {
            self.release(i);
            return Poll::Ready(Ok(Notified {
                sequence: start,
                arg,
                coalesced: 1,
            }));
        }
        if slot.generation != handle.generation() {
            // A stale wait: its outcome comes from the close record alone;
            // it never touches the slot's newer owner (its list or flag).
            self.release(i);
            return Poll::Ready(Self::closed_outcome(&slot, handle.generation(), start));
        }
        if slot.seq != start {
            self.release(i);
            return Poll::Ready(Ok(Notified {
                sequence: slot.seq,
                arg: slot.arg,
                coalesced: slot.seq - start,
            }));
        }
        // A wait that would sleep takes the permit instead.
        if let Some(arg) = self.slots[handle.index() as usize].permit.take() {
            self.release(i);
            return Poll::Ready(Ok(Notified {
                sequence: start,
                arg,
                coalesced: 1,
            }));
        }
        if self.waits[i].entry.is_none() {
            let ix = handle.index() as usize;
            let list = match slot.list {
                Some(l) if self.lists[l].generation == handle.generation() => l,
                _ => {
                    self.lists.push(MList::new(handle.generation(), limit));
                    let l = self.lists.len() - 1;
                    self.slots[ix].list = Some(l);
                    l
                }
            };
            let Some(index) = self.lists[list].claim() else {
                return Poll::Ready(Err(QueueError::WaiterLimit { limit }));
            };
            self.waits[i].ticket = self.lists[list].tickets - 1;
            self.waits[i].index = index;
            self.waits[i].entry = Some(list);
        }
        self.waits[i].armed = Some(k);
        self.slots[handle.index() as usize].waiters_flag = true;
        Poll::Pending
    }
}

fn poll_wait(w: &mut Wait<'_>, waker: &Waker) -> Poll<Result<Notified, QueueError>> {
    let mut cx = Context::from_waker(waker);
    Pin::new(w).poll(&mut cx)
}

/// Keeps `x` in `v` (at most `MAX_HANDLES_KEPT`; beyond that it replaces
/// an older entry, round-robin).
fn keep<T>(v: &mut Vec<T>, kept: &mut usize, x: T) {
    if v.len() < MAX_HANDLES_KEPT {
        v.push(x);
    } else {
        v[*kept % MAX_HANDLES_KEPT] = x;
    }
    *kept += 1;
}

/// Where a new wait goes: a dropped wait's place (not a leaked one's: the
/// model still tracks its entry), or the end while there are fewer than
/// `MAX_WAITS`.
fn free_wait(waits: &[Option<Wait<'_>>], m: &Model) -> Option<usize> {
    let reuse = waits
        .iter()
        .zip(&m.waits)
        .position(|(w, mw)| w.is_none() && !mw.leaked);
    if let Some(at) = reuse {
        assert!(m.waits[at].entry.is_none() && m.waits[at].armed.is_none());
        return Some(at);
    }
    (waits.len() < MAX_WAITS).then_some(waits.len())
}

fn place_wait<'q>(
    waits: &mut Vec<Option<Wait<'q>>>,
    m: &mut Model,
    at: usize,
    w: Wait<'q>,
    handle: Handle,
    foreign: bool,
    start: Result<u64, QueueError>,
) {
    if at == waits.len() {
        waits.push(Some(w));
        m.new_wait(handle, foreign, start);
    } else {
        waits[at] = Some(w);
        m.waits[at] = MWait::new(handle, foreign, start);
    }
}

/// What subscribing to `h` with capacity `cap` returns (`Ok(())` for a
/// subscription).
fn subscribe_outcome(
    m: &Model,
    h: Handle,
    foreign: bool,
    cap: usize,
    max_capacity: usize,
    max_subscribers: usize,
) -> Result<(), QueueError> {
    if cap == 0 || cap > max_capacity {
        Err(QueueError::InvalidCapacity {
            requested: cap,
            max: max_capacity,
        })
    } else if !m.live(&h, foreign) {
        Err(QueueError::StaleHandle)
    } else if m.slots[h.index() as usize].subs.len() >= max_subscribers {
        Err(QueueError::SubscriberLimit {
            limit: max_subscribers,
        })
    } else {
        Ok(())
    }
}

/// Records a new subscription to the live handle `h`.
fn add_sub(m: &mut Model, h: Handle, cap: usize, keep_oldest: bool, hint: String) {
    let k = m.subs.len();
    m.subs.push(MSub {
        index: h.index(),
        generation: h.generation(),
        cap: cap as u64,
        keep_oldest,
        hint,
        head: 0,
        tail: 0,
        values: Vec::new(),
        rejected: 0,
        dropped: 0,
        end: None,
        done: false,
        armed: None,
    });
    m.slots[h.index() as usize].subs.push(k);
}

fn pick<T>(v: &[T], i: u8) -> Option<usize> {
    if v.is_empty() {
        None
    } else {
        Some(i as usize % v.len())
    }
}

fn run(input: Input) {
    let max_handles = 1 + input.max_handles as usize % 6;
    let max_waiters = 1 + input.max_waiters as usize % 20;
    let max_subscribers = 1 + input.max_subscribers as usize % 4;
    let max_capacity = 1 + input.max_capacity as usize % 8;
    let config = Config::default()
        .max_handles(max_handles)
        .max_waiters_per_handle(max_waiters)
        .max_subscribers_per_handle(max_subscribers)
        .max_subscriber_capacity(max_capacity);
    let (config, generation_limit) = match input.slot_generations {
        Some(n) => {
            let n = 1 + u32::from(n) % 4;
            (config.slot_generations(n), 2 * n - 1)
        }
        // The default: 2^23 handles per slot, generations 1..=2^24 - 1.
        None => (config, (1 << 24) - 1),
    };
    let q = NotificationQueue::new(config);
    let other = NotificationQueue::new(Config::default());
    // The keyed layer over the same queue: its handles are the model's too.
    let keyed: KeyedQueue<u8> = KeyedQueue::new(q.clone());
    // Every handle ever issued by this queue (directly or by key).
    let mut issued: HashSet<Handle> = HashSet::new();
    let counters: Vec<Arc<CountingWaker>> = (0..WAKERS)
        .map(|_| Arc::new(CountingWaker::default()))
        .collect();
    let wakers: Vec<Waker> = counters.iter().map(|c| Waker::from(c.clone())).collect();
    let wake_log: Arc<Mutex<Vec<usize>>> = Arc::default();
    // A fresh waker per poll of a wait (so a re-poll replaces it).
    let wait_waker = |wait: usize, k: usize| {
        Waker::from(Arc::new(WaitWaker {
            wait,
            counter: counters[k].clone(),
            log: wake_log.clone(),
        }))
    };

    let mut m = Model {
        generation_limit,
        ..Model::default()
    };
    // Every handle ever issued (live and stale), with "is it foreign".
    let mut handles: Vec<(Handle, bool)> = Vec::new();
    let mut snapshots: Vec<(Snapshot, bool)> = Vec::new();
    // Real waits, index-aligned with `m.waits`; `None` once dropped or leaked.
    let mut waits: Vec<Option<Wait<'_>>> = Vec::new();
    let mut leaked: Vec<Wait<'_>> = Vec::new();
    // Real subscriptions, index-aligned with `m.subs`; `None` once dropped.
    let mut subs: Vec<Option<Subscription>> = Vec::new();
    let mut registrations = 0u64;
    // Kept handles/snapshots beyond `MAX_HANDLES_KEPT` replace older ones
    // round-robin, so later generations stay reachable.
    let mut kept = 0usize;
    let mut snaps_kept = 0usize;
    // The most recently created wait (for `PollLast`).
    let mut last_wait: Option<usize> = None;

    let mut ops: VecDeque<Op> = input.ops.into();
    while let Some(op) = ops.pop_front() {
        match op {
            Op::Register => {
                let hint = format!("h{registrations}");
                registrations += 1;
                let got = q.register(hint.as_str());
                if m.live >= max_handles {
                    assert_eq!(got, Err(QueueError::HandleLimit { limit: max_handles }));
                    continue;
                }
                let h = got.expect("register below the limit");
                let (index, generation) = m.register(hint);
                assert_eq!((h.index(), h.generation()), (index, generation));
                assert_eq!(h.generation() % 2, 1);
                assert!(issued.insert(h), "handle {h:?} issued twice");
                m.slots[index as usize].handle = Some(h);
                keep(&mut handles, &mut kept, (h, false));
            }
            Op::RegisterForeign => {
                let h = other.register("foreign").expect("default limits");
                keep(&mut handles, &mut kept, (h, true));
            }
            Op::RegisterDropped => {
                let gone = NotificationQueue::new(Config::default());
                let h = gone.register("dropped").expect("default limits");
                drop(gone);
                keep(&mut handles, &mut kept, (h, true));
            }
            Op::Unregister(i) => {
                let Some(i) = pick(&handles, i) else { continue };
                let (h, foreign) = handles[i];
                let got = q.unregister(h);
                if !m.live(&h, foreign) {
                    assert_eq!(got, Err(QueueError::StaleHandle));
                    continue;
                }
                assert_eq!(got, Ok(()));
                m.unregister(h.index() as usize);
            }
            Op::Cycle(i) => {
                ops.push_front(Op::Register);
                ops.push_front(Op::Unregister(i));
                continue;
            }
            Op::Reuse(i, k, arg) => {
                let Some(stale) = free_wait(&waits, &m) else {
                    ops.push_front(Op::Cycle(i));
                    continue;
                };
                // Where `Register` below keeps its handle (see `keep`).
                let newest = if handles.len() < MAX_HANDLES_KEPT {
                    handles.len()
                } else {
                    kept % MAX_HANDLES_KEPT
                };
                let (stale, newest) = (stale as u8, newest as u8);
                let mut steps = vec![Op::Wait(i), Op::Poll(stale, k)];
                steps.extend(arg.map(|arg| Op::Notify(i, arg)));
                steps.extend([
                    Op::Unregister(i),
                    Op::Register,
                    Op::WaitPoll(newest, k.wrapping_add(1)),
                    Op::Poll(stale, k.wrapping_add(2)),
                    Op::Notify(newest, i64::from(k)),
                ]);
                for op in steps.into_iter().rev() {
                    ops.push_front(op);
                }
                continue;
            }
            Op::WaitPoll(i, k) => {
                ops.push_front(Op::PollLast(k));
                ops.push_front(Op::Wait(i));
                continue;
            }
            Op::PollLast(k) => {
                let Some(i) = last_wait else { continue };
                let Some(w) = waits[i].as_mut() else { continue };
                let k = k as usize % WAKERS;
                let got = poll_wait(w, &wait_waker(i, k));
                let want = m.poll(i, k, max_waiters);
                assert_eq!(got, want, "poll of wait {i}: {:?}", m.waits[i]);
            }
            Op::Notify(i, arg) => {
                let Some(i) = pick(&handles, i) else { continue };
                let (h, foreign) = handles[i];
                let got = q.notify(h, arg);
                if !m.live(&h, foreign) {
                    assert_eq!(got, Err(QueueError::StaleHandle));
                    continue;
                }
                assert_eq!(got, Ok(m.notify(h.index() as usize, arg)));
            }
            Op::NotifyOne(i, arg) => {
                let Some(i) = pick(&handles, i) else { continue };
                let (h, foreign) = handles[i];
                let got = q.notify_one(h, arg);
                if !m.live(&h, foreign) {
                    assert_eq!(got, Err(QueueError::StaleHandle));
                    continue;
                }
                assert_eq!(got, Ok(m.notify_some(h.index() as usize, arg, 1)));
            }
            Op::NotifyN(i, arg, n) => {
                let Some(i) = pick(&handles, i) else { continue };
                let (h, foreign) = handles[i];
                let n = n as usize % 6;
                let got = q.notify_n(h, arg, n);
                if !m.live(&h, foreign) {
                    assert_eq!(got, Err(QueueError::StaleHandle));
                    continue;
                }
                assert_eq!(got, Ok(m.notify_some(h.index() as usize, arg, n)));
            }
            Op::DropChosen(i) => {
                let chosen: Vec<usize> = (0..waits.len())
                    .filter(|&j| waits[j].is_some() && m.waits[j].chosen.is_some())
                    .collect();
                let Some(j) = pick(&chosen, i) else { continue };
                waits[chosen[j]] = None;
                m.release(chosen[j]);
            }
            Op::PassOn(i, k, arg) => {
                for op in [
                    Op::WaitPoll(i, k),
                    Op::WaitPoll(i, k.wrapping_add(1)),
                    Op::NotifyOne(i, arg),
                    Op::DropChosen(0),
                ]
                .into_iter()
                .rev()
                {
                    ops.push_front(op);
                }
                continue;
            }
            Op::KRegister(k) => {
                let k = k % KEYS;
                let hint = format!("h{registrations}");
                registrations += 1;
                let got = keyed.register(k, hint.as_str());
                if m.by_key(k).is_ok() {
                    assert_eq!(got, Err(QueueError::DuplicateKey));
                    continue;
                }
                if m.live >= max_handles {
                    assert_eq!(got, Err(QueueError::HandleLimit { limit: max_handles }));
                    continue;
                }
                let h = got.expect("register below the limit");
                // A key registered again is a new generation, never an old
                // handle.
                assert!(issued.insert(h), "handle {h:?} issued twice");
                let (index, generation) = m.register(hint);
                assert_eq!((h.index(), h.generation()), (index, generation));
                m.slots[index as usize].handle = Some(h);
                m.keys.insert(k, h);
                keep(&mut handles, &mut kept, (h, false));
            }
            Op::KUnregister(k) => {
                let k = k % KEYS;
                let got = keyed.unregister(&k);
                match m.keys.remove(&k) {
                    Some(h) if m.live(&h, false) => {
                        assert_eq!(got, Ok(()));
                        m.unregister(h.index() as usize);
                    }
                    _ => assert_eq!(got, Err(QueueError::UnknownKey)),
                }
            }
            Op::KCycle(k, arg) => {
                for op in [Op::KUnregister(k), Op::KRegister(k), Op::KNotify(k, arg)]
                    .into_iter()
                    .rev()
                {
                    ops.push_front(op);
                }
                continue;
            }
            Op::KNotify(k, arg) => {
                let k = k % KEYS;
                let got = keyed.notify(&k, arg);
                match m.by_key(k) {
                    Ok(h) => assert_eq!(got, Ok(m.notify(h.index() as usize, arg))),
                    Err(e) => assert_eq!(got, Err(e)),
                }
            }
            Op::KNotifyOne(k, arg) => {
                let k = k % KEYS;
                let got = keyed.notify_one(&k, arg);
                match m.by_key(k) {
                    Ok(h) => assert_eq!(got, Ok(m.notify_some(h.index() as usize, arg, 1))),
                    Err(e) => assert_eq!(got, Err(e)),
                }
            }
            Op::KWait(k) => {
                let k = k % KEYS;
                let Some(at) = free_wait(&waits, &m) else {
                    continue;
                };
                let got = keyed.wait(&k);
                match m.by_key(k) {
                    Ok(h) => {
                        let w = got.expect("wait on a live key");
                        let start = m.wait_start(&h, false);
                        assert_eq!(
                            w.snapshot().map(|s| (s.handle(), s.sequence())),
                            start.map(|s| (h, s))
                        );
                        place_wait(&mut waits, &mut m, at, w, h, false, start);
                        last_wait = Some(at);
                    }
                    Err(e) => assert_eq!(got.err(), Some(e)),
                }
            }
            Op::KSnapshot(k) => {
                let k = k % KEYS;
                let got = keyed.snapshot(&k);
                match m.by_key(k) {
                    Ok(h) => {
                        let snap = got.expect("snapshot of a live key");
                        assert_eq!(
                            (snap.handle(), snap.sequence()),
                            (h, m.slots[h.index() as usize].seq)
                        );
                        keep(&mut snapshots, &mut snaps_kept, (snap, false));
                    }
                    Err(e) => assert_eq!(got, Err(e)),
                }
            }
            Op::KSubscribe(k, cap) => {
                let k = k % KEYS;
                if subs.len() >= MAX_WAITS {
                    continue;
                }
                let cap = cap as usize % 10;
                let hint = format!("s{}", subs.len());
                let got = keyed.subscribe(&k, cap, hint.as_str());
                // The layer looks the key up, then the queue checks the
                // capacity, then the handle (a dead one is `UnknownKey`).
                let want = match m.keys.get(&k) {
                    None => Err(QueueError::UnknownKey),
                    Some(&h) => subscribe_outcome(&m, h, false, cap, max_capacity, max_subscribers)
                        .map_err(|e| {
                            if e == QueueError::StaleHandle {
                                QueueError::UnknownKey
                            } else {
                                e
                            }
                        }),
                };
                match (got, want) {
                    (Ok(sub), Ok(())) => {
                        let h = m.by_key(k).expect("live key");
                        assert_eq!(sub.handle(), h);
                        assert_eq!(sub.overflow(), Overflow::KeepNewest);
                        add_sub(&mut m, h, cap, false, hint);
                        subs.push(Some(sub));
                    }
                    (got, want) => assert_eq!(got.map(|_| ()), want),
                }
            }
            Op::KLookup(k) => {
                let k = k % KEYS;
                let got = keyed.handle(&k);
                // The map's content, dead entries included.
                assert_eq!(got, m.keys.get(&k).copied().ok_or(QueueError::UnknownKey));
                if let Ok(h) = got {
                    keep(&mut handles, &mut kept, (h, false));
                }
            }
            Op::KState(k) => {
                let k = k % KEYS;
                let want = m.by_key(k);
                assert_eq!(keyed.contains_key(&k), want.is_ok());
                let got = keyed.waiters(&k).map(|w| w.len());
                match want {
                    Ok(h) => {
                        let list = m.slots[h.index() as usize].list;
                        assert_eq!(got, Ok(list.map_or(0, |l| m.lists[l].claimed)));
                    }
                    Err(e) => assert_eq!(got, Err(e)),
                }
            }
            Op::Snapshot(i) => {
                let Some(i) = pick(&handles, i) else { continue };
                let (h, foreign) = handles[i];
                let got = q.snapshot(h);
                if !m.live(&h, foreign) {
                    assert_eq!(got, Err(QueueError::StaleHandle));
                    continue;
                }
                let snap = got.expect("live handle");
                assert_eq!(snap.handle(), h);
                assert_eq!(snap.sequence(), m.slots[h.index() as usize].seq);
                keep(&mut snapshots, &mut snaps_kept, (snap, foreign));
            }
            Op::IsRegistered(i) => {
                let Some(i) = pick(&handles, i) else { continue };
                let (h, foreign) = handles[i];
                assert_eq!(q.is_registered(h), m.live(&h, foreign));
            }
            Op::Wait(i) => {
                let Some(i) = pick(&handles, i) else { continue };
                let Some(at) = free_wait(&waits, &m) else {
                    continue;
                };
                let (h, foreign) = handles[i];
                let start = m.wait_start(&h, foreign);
                let w = q.wait(h);
                assert_eq!(w.snapshot().map(|s| s.sequence()), start);
                place_wait(&mut waits, &mut m, at, w, h, foreign, start);
                last_wait = Some(at);
            }
            Op::WaitAfter(i) => {
                let Some(i) = pick(&snapshots, i) else {
                    continue;
                };
                let Some(at) = free_wait(&waits, &m) else {
                    continue;
                };
                let (snap, foreign) = snapshots[i];
                let w = q.wait_after(snap);
                assert_eq!(w.snapshot(), Ok(snap));
                place_wait(
                    &mut waits,
                    &mut m,
                    at,
                    w,
                    snap.handle(),
                    foreign,
                    Ok(snap.sequence()),
                );
                last_wait = Some(at);
            }
            Op::WithHint(i) => {
                let Some(i) = pick(&waits, i) else { continue };
                let Some(w) = waits[i].take() else { continue };
                let hint = format!("w{i}");
                waits[i] = Some(w.with_hint(hint.as_str()));
                m.waits[i].hint = Some(hint);
            }
            Op::Poll(i, k) => {
                let Some(i) = pick(&waits, i) else { continue };
                let Some(w) = waits[i].as_mut() else { continue };
                let k = k as usize % WAKERS;
                let got = poll_wait(w, &wait_waker(i, k));
                let want = m.poll(i, k, max_waiters);
                assert_eq!(got, want, "poll of wait {i}: {:?}", m.waits[i]);
            }
            Op::Drop(i) => {
                let Some(i) = pick(&waits, i) else { continue };
                if waits[i].take().is_some() {
                    m.release(i);
                }
            }
            Op::Leak(i) => {
                let Some(i) = pick(&waits, i) else { continue };
                if let Some(w) = waits[i].take() {
                    leaked.push(w);
                    m.waits[i].leaked = true;
                }
            }
            Op::WaitZero(i) => {
                let Some(i) = pick(&handles, i) else { continue };
                let (h, foreign) = handles[i];
                let got = q.wait(h).wait_timeout(Duration::ZERO);
                // Model it as a temporary wait: created, polled, dropped.
                let start = m.wait_start(&h, foreign);
                let t = m.new_wait(h, foreign, start);
                let want = match m.poll(t, 0, max_waiters) {
                    Poll::Ready(r) => r,
                    Poll::Pending => Err(QueueError::Timeout),
                };
                // The thread waker is not one of ours: it is never woken.
                m.waits[t].armed = None;
                m.release(t);
                m.waits.pop();
                assert_eq!(got, want);
            }
            Op::Waiters(i) => {
                let Some(i) = pick(&handles, i) else { continue };
                let (h, foreign) = handles[i];
                let got = q.waiters(h);
                if !m.live(&h, foreign) {
                    assert_eq!(got, Err(QueueError::StaleHandle));
                    continue;
                }
                let mut got: Vec<Option<String>> = got
                    .expect("live handle")
                    .into_iter()
                    .map(|w| w.hint.map(|h| h.to_string()))
                    .collect();
                let list = m.slots[h.index() as usize].list;
                let mut want: Vec<Option<String>> = m
                    .waits
                    .iter()
                    .filter(|w| list.is_some() && w.entry == list)
                    .map(|w| w.hint.clone())
                    .collect();
                got.sort();
                want.sort();
                assert_eq!(got, want);
            }
            Op::Dump => {
                let dump = q.dump();
                type Row = (u32, u32, String, u64, usize, Vec<(String, usize, u64)>);
                let mut want: Vec<Row> = m
                    .slots
                    .iter()
                    .enumerate()
                    .filter(|(_, s)| s.generation % 2 == 1)
                    .map(|(ix, s)| {
                        let claimed = s.list.map_or(0, |l| m.lists[l].claimed);
                        let mut subs: Vec<(String, usize, u64)> = s
                            .subs
                            .iter()
                            .map(|&i| {
                                let x = &m.subs[i];
                                let len = (x.tail - x.head).min(x.cap) as usize;
                                (x.hint.clone(), len, x.dropped)
                            })
                            .collect();
                        subs.sort();
                        (
                            ix as u32,
                            s.generation,
                            s.hint.clone(),
                            s.seq,
                            claimed,
                            subs,
                        )
                    })
                    .collect();
                let mut got: Vec<Row> = dump
                    .iter()
                    .map(|d| {
                        let mut subs: Vec<(String, usize, u64)> = d
                            .subscribers
                            .iter()
                            .map(|x| (x.hint.to_string(), x.len, x.dropped))
                            .collect();
                        subs.sort();
                        (
                            d.handle.index(),
                            d.handle.generation(),
                            d.hint.to_string(),
                            d.sequence,
                            d.waiters.len(),
                            subs,
                        )
                    })
                    .collect();
                got.sort();
                want.sort();
                assert_eq!(got, want);
            }
            Op::Stats => {
                let s = q.stats();
                assert_eq!(s.handles, m.live);
                assert_eq!(s.notifications, m.notifications);
                assert_eq!(s.slow_notifications, m.slow);
                assert_eq!(s.wakes, m.wakes);
                assert_eq!(s.waker_panics, 0);
                let waiters: usize = m
                    .slots
                    .iter()
                    .filter_map(|s| s.list)
                    .map(|l| m.lists[l].claimed)
                    .sum();
                assert_eq!(s.waiters, waiters);
                assert_eq!((s.delivered, s.dropped), (m.delivered, m.dropped));
                assert_eq!(s.exhausted_slots, m.exhausted);
                // Slots are a few cache lines each; a list is a few hundred
                // bytes per chunk of 8 entries, and at most `max_handles`
                // lists hang off slots.
                let slots = m.slots.len().next_power_of_two().max(32) * 2;
                let bound = slots * 256 + max_handles * (max_waiters / 8 + 1) * 2048;
                assert!(s.memory_bytes <= bound, "{} > {bound}", s.memory_bytes);
            }
            Op::Subscribe(i, cap, keep_oldest) => {
                let Some(i) = pick(&handles, i) else { continue };
                if subs.len() >= MAX_WAITS {
                    continue;
                }
                let (h, foreign) = handles[i];
                let cap = cap as usize % 10;
                let hint = format!("s{}", subs.len());
                let overflow = if keep_oldest {
                    Overflow::KeepOldest
                } else {
                    Overflow::KeepNewest
                };
                let opts = SubscribeOptions::new(cap)
                    .overflow(overflow)
                    .hint(hint.as_str());
                let got = q.subscribe_with(h, opts);
                let want = subscribe_outcome(&m, h, foreign, cap, max_capacity, max_subscribers);
                match (got, want) {
                    (Ok(sub), Ok(())) => {
                        assert_eq!(sub.handle(), h);
                        assert_eq!(sub.capacity(), cap);
                        assert_eq!(sub.overflow(), overflow);
                        add_sub(&mut m, h, cap, keep_oldest, hint);
                        subs.push(Some(sub));
                    }
                    (got, want) => assert_eq!(got.map(|_| ()), want),
                }
            }
            Op::TryRecv(i) => {
                let Some(i) = pick(&subs, i) else { continue };
                let Some(sub) = subs[i].as_mut() else {
                    continue;
                };
                assert_eq!(sub.try_recv(), m.subs[i].try_recv(), "sub {i}");
            }
            Op::PollRecv(i, k) => {
                let Some(i) = pick(&subs, i) else { continue };
                let Some(sub) = subs[i].as_mut() else {
                    continue;
                };
                let k = k as usize % WAKERS;
                let got = {
                    let mut recv = sub.recv();
                    let mut cx = Context::from_waker(&wakers[k]);
                    Pin::new(&mut recv).poll(&mut cx)
                };
                let want = match m.subs[i].try_recv() {
                    Ok(v) => Poll::Ready(Ok(v)),
                    Err(TryRecvError::Lagged(n)) => Poll::Ready(Err(RecvError::Lagged(n))),
                    Err(TryRecvError::Closed) => Poll::Ready(Err(RecvError::Closed)),
                    Err(TryRecvError::Empty) => {
                        // The `Recv` is dropped right after this poll, and a
                        // cancelled receive leaves nothing behind: no later
                        // notify wakes waker `k`.
                        let _ = k;
                        m.subs[i].armed = None;
                        Poll::Pending
                    }
                };
                assert_eq!(got, want, "recv of sub {i}");
            }
            Op::DropSub(i) => {
                let Some(i) = pick(&subs, i) else { continue };
                if subs[i].take().is_none() {
                    continue;
                }
                let s = &mut m.subs[i];
                s.armed = None;
                let slot = &mut m.slots[s.index as usize];
                if slot.generation == s.generation {
                    slot.subs.retain(|&x| x != i);
                }
            }
            Op::SubState(i) => {
                let Some(i) = pick(&subs, i) else { continue };
                let Some(sub) = subs[i].as_ref() else {
                    continue;
                };
                let s = &m.subs[i];
                assert_eq!(sub.len() as u64, (s.tail - s.head).min(s.cap));
                assert_eq!(sub.is_empty(), s.tail == s.head);
                assert_eq!(sub.dropped(), s.dropped);
                assert_eq!(sub.is_closed(), s.end.is_some());
            }
        }
        // After every step: every waker was woken exactly as predicted, and
        // every known handle answers like the model.
        for (k, c) in counters.iter().enumerate() {
            assert_eq!(
                c.0.load(Ordering::SeqCst),
                m.wakes_per_waker[k],
                "waker {k}"
            );
        }
        // Waiters were woken in entry order.
        let log = std::mem::take(&mut *wake_log.lock().expect("log"));
        assert_eq!(log, std::mem::take(&mut m.wake_log), "wake order");
        for &(h, foreign) in &handles {
            let live = m.live(&h, foreign);
            let snap = q.snapshot(h);
            assert_eq!(snap.is_ok(), live, "{h:?}");
            if let Ok(s) = snap {
                assert_eq!(s.sequence(), m.slots[h.index() as usize].seq);
            }
        }
        // Every live owner's waiters are exactly the model's: a stale wait
        // (of an older generation of the slot) never replaced or emptied
        // the list, and never took an entry in it.
        for s in &m.slots {
            let Some(h) = s.handle else { continue };
            let claimed = s.list.map_or(0, |l| m.lists[l].claimed);
            assert_eq!(q.waiters(h).map(|w| w.len()), Ok(claimed), "{h:?}");
        }
        // The keyed layer maps exactly the model's keys (dead entries
        // included), and lists the waiters of the live ones.
        let mut got: Vec<(u8, Handle)> = keyed.entries();
        got.sort();
        let mut want: Vec<(u8, Handle)> = m.keys.iter().map(|(k, h)| (*k, *h)).collect();
        want.sort();
        assert_eq!(got, want);
        assert_eq!(keyed.len(), m.keys.len());
        let mut got: Vec<(u8, usize)> = keyed
            .waits()
            .into_iter()
            .map(|(k, w)| (k, w.len()))
            .collect();
        got.sort();
        let mut want: Vec<(u8, usize)> = m
            .keys
            .iter()
            .filter(|(_, h)| m.live(h, false))
            .map(|(k, h)| {
                let list = m.slots[h.index() as usize].list;
                (*k, list.map_or(0, |l| m.lists[l].claimed))
            })
            .collect();
        want.sort();
        assert_eq!(got, want);
    }

    // Tear-down: unregistering every live handle wakes every armed waiter
    // (leaked ones included) exactly once.
    for ix in 0..m.slots.len() {
        let generation = m.slots[ix].generation;
        if generation % 2 == 1 {
            let h = q
                .dump()
                .into_iter()
                .find(|d| d.handle.index() == ix as u32)
                .expect("live handle in dump")
                .handle;
            assert_eq!(Some(h), m.slots[ix].handle);
            assert_eq!(h.generation(), generation);
            q.unregister(h).expect("live handle");
            m.unregister(ix);
        }
    }
    for (k, c) in counters.iter().enumerate() {
        assert_eq!(
            c.0.load(Ordering::SeqCst),
            m.wakes_per_waker[k],
            "waker {k}"
        );
    }
    let log = std::mem::take(&mut *wake_log.lock().expect("log"));
    assert_eq!(log, std::mem::take(&mut m.wake_log), "wake order");
    assert!(m.waits.iter().all(|w| w.armed.is_none()));
    // Every live subscription drains what was buffered, then ends.
    for (i, sub) in subs.iter_mut().enumerate() {
        let Some(sub) = sub.as_mut() else { continue };
        assert!(sub.is_closed());
        loop {
            let got = sub.try_recv();
            assert_eq!(got, m.subs[i].try_recv(), "drain of sub {i}");
            if got == Err(TryRecvError::Closed) {
                break;
            }
        }
    }
    // Every wait still in reach now completes: with the notifies it missed
    // if its generation was the last one closed on its slot, else `Closed`.
    for (i, w) in waits.iter_mut().enumerate() {
        let Some(w) = w.as_mut() else { continue };
        let got = poll_wait(w, &wakers[0]);
        let want = m.poll(i, 0, max_waiters);
        assert!(want.is_ready());
        assert_eq!(got, want, "final poll of wait {i}: {:?}", m.waits[i]);
    }
    // So does a new wait from every kept snapshot.
    for &(snap, foreign) in &snapshots {
        let mut w = q.wait_after(snap);
        let got = poll_wait(&mut w, &wakers[0]);
        let t = m.new_wait(snap.handle(), foreign, Ok(snap.sequence()));
        let want = m.poll(t, 0, max_waiters);
        m.waits.pop();
        assert_eq!(got, want, "wait after {snap:?}");
    }
    let s = q.stats();
    assert_eq!((s.handles, s.waiters), (0, 0));
    assert_eq!(s.exhausted_slots, m.exhausted);
    drop(subs);
    drop(waits);
    drop(leaked);
}

fuzz_target!(|input: Input| run(input));
