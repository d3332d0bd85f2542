//! Differential fuzzing of the queue core against a plain reference model.
//!
//! The input is a small [`Config`] (limits of a few handles and waiters, so
//! every limit error is reached) and a sequence of operations: register,
//! unregister, notify, snapshot, wait futures created from a handle or from a
//! saved snapshot, polled with one of three counting wakers, re-polled,
//! dropped or "leaked" (moved out of reach and never polled again, as a
//! `mem::forget` would leave it; the run drops them only at its end), blocking
//! waits with a zero timeout, stale and foreign handles (handles kept after
//! unregister, handles of another queue), subscriptions (subscribe with any
//! capacity and either overflow policy, `try_recv`, a `recv` future polled
//! with a counting waker, drop, length and drop counters), the debug dump and
//! the statistics.
//!
//! The model is single-threaded bookkeeping: per slot index the generation,
//! sequence, last argument, `WAITERS` flag, current waiter list and
//! subscribers; per list how many entries are claimed; per wait its snapshot,
//! the list entry it holds and which waker it armed; per subscription its
//! ring as plain positions (`head`, `tail`, every value ever pushed), its
//! rejected and dropped counts and where it was closed. Every operation's result (errors, counts
//! woken, `Notified { sequence, arg, coalesced }`, handle index and
//! generation, waiter counts and hints, dump, stats) is compared with the
//! model's prediction, and after every step each waker's wake count and each
//! known handle's snapshot/registration state are compared too. So a lost
//! wakeup (an armed waker not woken by a notify), a spurious wake, a leaked or
//! double-freed waiter entry, or a stale handle acting on its slot's next
//! owner all fail an assertion.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use notification_queue::{
    Config, Handle, NotificationQueue, Notified, Overflow, QueueError, RecvError, Snapshot,
    SubscribeOptions, Subscription, TryRecvError, Wait,
};
use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

#[derive(Arbitrary, Debug)]
struct Input {
    max_handles: u8,
    max_waiters: u8,
    max_subscribers: u8,
    max_capacity: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Register,
    /// Registers a handle on a second queue (a foreign handle for the first).
    RegisterForeign,
    Unregister(u8),
    Notify(u8, i32),
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
}

const WAKERS: usize = 3;
const MAX_HANDLES_KEPT: usize = 48;
const MAX_WAITS: usize = 64;

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

/// One slot index of the real queue.
#[derive(Debug, Clone, Default)]
struct MSlot {
    generation: u32,
    seq: u64,
    arg: i32,
    waiters_flag: bool,
    /// Index into `Model::lists` of the slot's current waiter list.
    list: Option<usize>,
    hint: String,
    /// Indices into `Model::subs` of this generation's live subscriptions.
    subs: Vec<usize>,
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
    values: Vec<i32>,
    rejected: u64,
    dropped: u64,
    /// `tail` at the close (the handle was unregistered).
    end: Option<u64>,
    /// `Closed` was returned (sticky).
    done: bool,
    armed: Option<usize>,
}

impl MSub {
    fn try_recv(&mut self) -> Result<i32, TryRecvError> {
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

#[derive(Debug, Clone)]
struct MList {
    generation: u32,
    claimed: usize,
}

#[derive(Debug)]
struct MWait {
    handle: Handle,
    foreign: bool,
    start: Result<u64, QueueError>,
    /// The list this wait holds an entry in.
    entry: Option<usize>,
    /// Which waker is registered in the entry (and not yet woken).
    armed: Option<usize>,
    hint: Option<String>,
    leaked: bool,
}

#[derive(Debug, Default)]
struct Model {
    slots: Vec<MSlot>,
    free: VecDeque<u32>,
    live: usize,
    lists: Vec<MList>,
    waits: Vec<MWait>,
    notifications: u64,
    slow: u64,
    wakes: u64,
    wakes_per_waker: [usize; WAKERS],
    subs: Vec<MSub>,
    delivered: u64,
    dropped: u64,
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
        self.waits.push(MWait {
            handle,
            foreign,
            start,
            entry: None,
            armed: None,
            hint: None,
            leaked: false,
        });
        self.waits.len() - 1
    }

    fn wake_list(&mut self, list: usize) -> usize {
        let mut n = 0;
        for w in &mut self.waits {
            if w.entry == Some(list)
                && let Some(k) = w.armed.take()
            {
                self.wakes_per_waker[k] += 1;
                n += 1;
            }
        }
        self.wakes += n as u64;
        n
    }

    fn wake_sub(&mut self, sub: usize) {
        if let Some(k) = self.subs[sub].armed.take() {
            self.wakes_per_waker[k] += 1;
        }
    }

    /// A notify's delivery to subscription `i`; returns whether it was stored.
    fn deliver(&mut self, i: usize, arg: i32) -> bool {
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

    fn release(&mut self, wait: usize) {
        if let Some(list) = self.waits[wait].entry.take() {
            self.lists[list].claimed -= 1;
            self.waits[wait].armed = None;
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
        if slot.generation != handle.generation() {
            self.release(i);
            return Poll::Ready(Err(QueueError::Closed));
        }
        if slot.seq != start {
            self.release(i);
            return Poll::Ready(Ok(Notified {
                sequence: slot.seq,
                arg: slot.arg,
                coalesced: slot.seq - start,
            }));
        }
        if self.waits[i].entry.is_none() {
            let ix = handle.index() as usize;
            let list = match slot.list {
                Some(l) if self.lists[l].generation == handle.generation() => l,
                _ => {
                    self.lists.push(MList {
                        generation: handle.generation(),
                        claimed: 0,
                    });
                    let l = self.lists.len() - 1;
                    self.slots[ix].list = Some(l);
                    l
                }
            };
            if self.lists[list].claimed >= limit {
                return Poll::Ready(Err(QueueError::WaiterLimit { limit }));
            }
            self.lists[list].claimed += 1;
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
    let q = NotificationQueue::new(config);
    let other = NotificationQueue::new(Config::default());
    let counters: Vec<Arc<CountingWaker>> = (0..WAKERS)
        .map(|_| Arc::new(CountingWaker::default()))
        .collect();
    let wakers: Vec<Waker> = counters.iter().map(|c| Waker::from(c.clone())).collect();

    let mut m = Model::default();
    // Every handle ever issued (live and stale), with "is it foreign".
    let mut handles: Vec<(Handle, bool)> = Vec::new();
    let mut snapshots: Vec<(Snapshot, bool)> = Vec::new();
    // Real waits, index-aligned with `m.waits`; `None` once dropped or leaked.
    let mut waits: Vec<Option<Wait<'_>>> = Vec::new();
    let mut leaked: Vec<Wait<'_>> = Vec::new();
    // Real subscriptions, index-aligned with `m.subs`; `None` once dropped.
    let mut subs: Vec<Option<Subscription>> = Vec::new();
    let mut registrations = 0u64;

    for op in input.ops {
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
                let index = match m.free.pop_front() {
                    Some(i) => i,
                    None => {
                        m.slots.push(MSlot::default());
                        (m.slots.len() - 1) as u32
                    }
                };
                let s = &mut m.slots[index as usize];
                s.generation += 1;
                s.seq = 0;
                s.waiters_flag = false;
                s.hint = hint;
                assert!(s.subs.is_empty());
                m.live += 1;
                assert_eq!((h.index(), h.generation()), (index, s.generation));
                assert_eq!(h.generation() % 2, 1);
                if handles.len() < MAX_HANDLES_KEPT {
                    handles.push((h, false));
                }
            }
            Op::RegisterForeign => {
                let h = other.register("foreign").expect("default limits");
                if handles.len() < MAX_HANDLES_KEPT {
                    handles.push((h, true));
                }
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
                let ix = h.index() as usize;
                if let Some(list) = m.slots[ix].list.take() {
                    m.wake_list(list);
                }
                for sub in std::mem::take(&mut m.slots[ix].subs) {
                    m.subs[sub].end = Some(m.subs[sub].tail);
                    m.wake_sub(sub);
                }
                let s = &mut m.slots[ix];
                s.generation += 1;
                s.waiters_flag = false;
                m.live -= 1;
                m.free.push_back(h.index());
            }
            Op::Notify(i, arg) => {
                let Some(i) = pick(&handles, i) else { continue };
                let (h, foreign) = handles[i];
                let got = q.notify(h, arg);
                if !m.live(&h, foreign) {
                    assert_eq!(got, Err(QueueError::StaleHandle));
                    continue;
                }
                let ix = h.index() as usize;
                m.notifications += 1;
                let (flag, list, subscribed) = {
                    let s = &mut m.slots[ix];
                    s.seq += 1;
                    s.arg = arg;
                    (std::mem::take(&mut s.waiters_flag), s.list, s.subs.clone())
                };
                let mut n = 0;
                if flag || !subscribed.is_empty() {
                    m.slow += 1;
                }
                if flag && let Some(list) = list {
                    n += m.wake_list(list);
                }
                for sub in subscribed {
                    n += m.deliver(sub, arg) as usize;
                }
                assert_eq!(got, Ok(n));
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
                if snapshots.len() < MAX_HANDLES_KEPT {
                    snapshots.push((snap, foreign));
                }
            }
            Op::IsRegistered(i) => {
                let Some(i) = pick(&handles, i) else { continue };
                let (h, foreign) = handles[i];
                assert_eq!(q.is_registered(h), m.live(&h, foreign));
            }
            Op::Wait(i) => {
                let Some(i) = pick(&handles, i) else { continue };
                if waits.len() >= MAX_WAITS {
                    continue;
                }
                let (h, foreign) = handles[i];
                let start = m.wait_start(&h, foreign);
                let w = q.wait(h);
                assert_eq!(w.snapshot().map(|s| s.sequence()), start);
                waits.push(Some(w));
                m.new_wait(h, foreign, start);
            }
            Op::WaitAfter(i) => {
                let Some(i) = pick(&snapshots, i) else {
                    continue;
                };
                if waits.len() >= MAX_WAITS {
                    continue;
                }
                let (snap, foreign) = snapshots[i];
                let w = q.wait_after(snap);
                assert_eq!(w.snapshot(), Ok(snap));
                waits.push(Some(w));
                m.new_wait(snap.handle(), foreign, Ok(snap.sequence()));
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
                let got = poll_wait(w, &wakers[k]);
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
                let want = if cap == 0 || cap > max_capacity {
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
                };
                match (got, want) {
                    (Ok(sub), Ok(())) => {
                        assert_eq!(sub.handle(), h);
                        assert_eq!(sub.capacity(), cap);
                        assert_eq!(sub.overflow(), overflow);
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
                        m.subs[i].armed = Some(k);
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
        for &(h, foreign) in &handles {
            let live = m.live(&h, foreign);
            let snap = q.snapshot(h);
            assert_eq!(snap.is_ok(), live, "{h:?}");
            if let Ok(s) = snap {
                assert_eq!(s.sequence(), m.slots[h.index() as usize].seq);
            }
        }
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
            assert_eq!(h.generation(), generation);
            q.unregister(h).expect("live handle");
            if let Some(list) = m.slots[ix].list.take() {
                m.wake_list(list);
            }
            for sub in std::mem::take(&mut m.slots[ix].subs) {
                m.subs[sub].end = Some(m.subs[sub].tail);
                m.wake_sub(sub);
            }
        }
    }
    for (k, c) in counters.iter().enumerate() {
        assert_eq!(
            c.0.load(Ordering::SeqCst),
            m.wakes_per_waker[k],
            "waker {k}"
        );
    }
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
    let s = q.stats();
    assert_eq!((s.handles, s.waiters), (0, 0));
    drop(subs);
    drop(waits);
    drop(leaked);
}

fuzz_target!(|input: Input| run(input));
