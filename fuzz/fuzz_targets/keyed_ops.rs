//! Differential fuzzing of the keyed layer (`KeyedQueue<u8>`) against a
//! plain `HashMap` model.
//!
//! The input is a handle limit (1 to 8, so `HandleLimit` is reached) and a
//! sequence of operations on eight keys: register, unregister and register
//! again; unregister a key's handle directly on the queue (bypassing the
//! layer); notify, snapshot, wait (fresh, after a saved snapshot, and with a
//! zero timeout), waiter lists, `waits()`, `contains_key`, subscribe and
//! `try_recv` by key; look a key's handle up and keep it, then notify, wait
//! on, unregister or test that handle after its key has moved on (stale
//! looked-up handles). Waits are polled with their own counting waker,
//! dropped, or left pending.
//!
//! The model: the map `key -> Handle` (an entry whose handle died behind the
//! layer's back stays until register or unregister replaces it), and per
//! handle ever issued whether it is live, its sequence and last argument;
//! per wait its handle, start, whether it holds a waiter entry and whether
//! its waker is armed; per subscription its ring as positions. Every
//! result (errors, counts woken, `Notified`, snapshots, handles) is
//! compared with the model, and after every step: each wait's wake count
//! (an armed waker not woken by a notify of its generation, or woken by
//! another generation's, fails), the key set, `len`, live handles and
//! pending waiters in the queue's stats. Every handle `register` returns
//! must never have been issued before (a new generation, never an old one).
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use notification_queue::{
    Config, Handle, KeyedQueue, NotificationQueue, Notified, QueueError, Snapshot, Subscription,
    TryRecvError, Wait,
};
use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

#[derive(Arbitrary, Debug)]
struct Input {
    max_handles: u8,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug, Clone, Copy)]
enum Op {
    Register(u8),
    Unregister(u8),
    /// `queue().unregister(handle of key)`, bypassing the layer.
    UnregisterDirect(u8),
    Notify(u8, i64),
    /// Saves `handle(&key)` for the `*Looked` operations.
    Lookup(u8),
    NotifyLooked(u8, i64),
    UnregisterLooked(u8),
    IsRegisteredLooked(u8),
    /// `queue().wait(looked-up handle)`.
    WaitLooked(u8),
    /// `wait(&key)`.
    Wait(u8),
    /// Saves `snapshot(&key)` for `WaitAfter`.
    Snapshot(u8),
    WaitAfter(u8),
    Poll(u8),
    DropWait(u8),
    /// `wait(&key)?.wait_timeout(Duration::ZERO)`.
    WaitZero(u8),
    /// `subscribe(&key, .1 % 5)` (capacity 0 included).
    Subscribe(u8, u8),
    TryRecv(u8),
    DropSub(u8),
    Waiters(u8),
    Waits,
    ContainsKey(u8),
}

const KEYS: u8 = 8;
const MAX_KEPT: usize = 32;
const MAX_WAITS: usize = 64;

#[derive(Default)]
struct CountingWaker(AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

#[derive(Debug)]
struct MHandle {
    live: bool,
    seq: u64,
    arg: i64,
    /// The slot's close count right after this handle's close: the slot's
    /// close record is this handle's while the count is unchanged.
    closed_as: u64,
}

struct MWait {
    handle: Handle,
    start: Result<u64, QueueError>,
    /// Holds a waiter entry (polled to `Pending`, not completed, dropped,
    /// or freed by the notify that completed it).
    claimed: bool,
    /// Its waker is registered and not yet woken.
    armed: bool,
    wakes: usize,
    counter: Arc<CountingWaker>,
    waker: Waker,
    gone: bool,
}

struct MSub {
    handle: Handle,
    cap: u64,
    values: Vec<i64>,
    head: u64,
    tail: u64,
    end: Option<u64>,
    done: bool,
    gone: bool,
}

impl MSub {
    /// Keep-newest ring semantics (as in the queue_ops model).
    fn try_recv(&mut self) -> Result<i64, TryRecvError> {
        if self.done {
            return Err(TryRecvError::Closed);
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

#[derive(Default)]
struct Model {
    /// Unregisters per slot index (the slot keeps a record of its last one).
    closes: HashMap<u32, u64>,
    keys: HashMap<u8, Handle>,
    handles: HashMap<Handle, MHandle>,
    live: usize,
    waits: Vec<MWait>,
    subs: Vec<MSub>,
}

impl Model {
    fn is_live(&self, h: &Handle) -> bool {
        self.handles.get(h).is_some_and(|m| m.live)
    }

    /// The live handle of `key`, or the error an operation by key reports.
    fn by_key(&self, key: u8) -> Result<Handle, QueueError> {
        match self.keys.get(&key) {
            Some(h) if self.is_live(h) => Ok(*h),
            _ => Err(QueueError::UnknownKey),
        }
    }

    /// The handle was unregistered: waits woken, subscriptions closed.
    fn kill(&mut self, h: Handle) {
        let closes = self.closes.entry(h.index()).or_insert(0);
        *closes += 1;
        if let Some(m) = self.handles.get_mut(&h) {
            m.live = false;
            m.closed_as = *closes;
        }
        self.live -= 1;
        for w in self.waits.iter_mut().filter(|w| !w.gone && w.handle == h) {
            if std::mem::take(&mut w.armed) {
                w.wakes += 1;
            }
        }
        for s in self.subs.iter_mut().filter(|s| !s.gone && s.handle == h) {
            if s.end.is_none() {
                s.end = Some(s.tail);
            }
        }
    }

    /// A plain notify: wakes every armed wait of `h` and frees the entries
    /// of those it completes (every one whose snapshot is behind), as the
    /// queue does when it takes their wakers.
    fn notify(&mut self, h: Handle, arg: i64) -> usize {
        let m = self.handles.get_mut(&h).expect("live handle");
        m.seq += 1;
        m.arg = arg;
        let seq = m.seq;
        let mut n = 0;
        for w in self.waits.iter_mut().filter(|w| !w.gone && w.handle == h) {
            if std::mem::take(&mut w.armed) {
                w.wakes += 1;
                n += 1;
                if w.start != Ok(seq) {
                    w.claimed = false;
                }
            }
        }
        for s in self.subs.iter_mut().filter(|s| !s.gone && s.handle == h) {
            if s.end.is_none() {
                s.values.push(arg);
                s.tail += 1;
                n += 1;
            }
        }
        n
    }

    fn new_wait(&mut self, handle: Handle, start: Result<u64, QueueError>) {
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(counter.clone());
        self.waits.push(MWait {
            handle,
            start,
            claimed: false,
            armed: false,
            wakes: 0,
            counter,
            waker,
            gone: false,
        });
    }

    /// What polling wait `i` returns; updates its entry and waker state.
    fn poll(&mut self, i: usize) -> Poll<Result<Notified, QueueError>> {
        let w = &self.waits[i];
        let ready = match w.start {
            Err(e) => Some(Err(e)),
            Ok(start) => match self.handles.get(&w.handle) {
                // Closed: the notifies it had not seen come first, while the
                // slot's close record is still this handle's.
                Some(m)
                    if !m.live
                        && m.seq != start
                        && self.closes.get(&w.handle.index()) == Some(&m.closed_as) =>
                {
                    Some(Ok(Notified {
                        sequence: m.seq,
                        arg: m.arg,
                        coalesced: m.seq - start,
                    }))
                }
                Some(m) if !m.live => Some(Err(QueueError::Closed)),
                Some(m) if m.seq != start => Some(Ok(Notified {
                    sequence: m.seq,
                    arg: m.arg,
                    coalesced: m.seq - start,
                })),
                Some(_) => None,
                None => Some(Err(QueueError::StaleHandle)),
            },
        };
        let w = &mut self.waits[i];
        match ready {
            Some(r) => {
                w.claimed = false;
                w.armed = false;
                w.gone = true;
                Poll::Ready(r)
            }
            None => {
                w.claimed = true;
                w.armed = true;
                Poll::Pending
            }
        }
    }

    fn claimed_on(&self, h: Handle) -> usize {
        self.waits
            .iter()
            .filter(|w| !w.gone && w.claimed && w.handle == h)
            .count()
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
    let max_handles = 1 + input.max_handles as usize % 8;
    let queue = NotificationQueue::new(Config::default().max_handles(max_handles));
    let keyed: KeyedQueue<u8> = KeyedQueue::new(queue.clone());
    let mut m = Model::default();
    let mut issued: HashSet<Handle> = HashSet::new();
    let mut looked: Vec<Handle> = Vec::new();
    let mut snapshots: Vec<Snapshot> = Vec::new();
    let mut waits: Vec<Option<Wait<'_>>> = Vec::new();
    let mut subs: Vec<Option<Subscription>> = Vec::new();

    for op in input.ops {
        match op {
            Op::Register(k) => {
                let k = k % KEYS;
                let got = keyed.register(k, "fuzz");
                if m.by_key(k).is_ok() {
                    assert_eq!(got, Err(QueueError::DuplicateKey));
                } else if m.live >= max_handles {
                    assert_eq!(got, Err(QueueError::HandleLimit { limit: max_handles }));
                } else {
                    let h = got.expect("register below the limit");
                    assert!(issued.insert(h), "handle {h:?} issued twice");
                    m.keys.insert(k, h);
                    m.handles.insert(
                        h,
                        MHandle {
                            live: true,
                            seq: 0,
                            closed_as: 0,
                            arg: 0,
                        },
                    );
                    m.live += 1;
                }
            }
            Op::Unregister(k) => {
                let k = k % KEYS;
                let got = keyed.unregister(&k);
                match m.keys.remove(&k) {
                    Some(h) if m.is_live(&h) => {
                        assert_eq!(got, Ok(()));
                        m.kill(h);
                    }
                    _ => assert_eq!(got, Err(QueueError::UnknownKey)),
                }
            }
            Op::UnregisterDirect(k) => {
                let k = k % KEYS;
                let Some(&h) = m.keys.get(&k) else {
                    assert_eq!(keyed.handle(&k), Err(QueueError::UnknownKey));
                    continue;
                };
                assert_eq!(keyed.handle(&k), Ok(h));
                let got = keyed.queue().unregister(h);
                if m.is_live(&h) {
                    assert_eq!(got, Ok(()));
                    m.kill(h);
                } else {
                    assert_eq!(got, Err(QueueError::StaleHandle));
                }
            }
            Op::Notify(k, arg) => {
                let k = k % KEYS;
                let got = keyed.notify(&k, arg);
                match m.by_key(k) {
                    Ok(h) => assert_eq!(got, Ok(m.notify(h, arg))),
                    Err(e) => assert_eq!(got, Err(e)),
                }
            }
            Op::Lookup(k) => {
                let k = k % KEYS;
                let got = keyed.handle(&k);
                // The map's content, dead entries included.
                assert_eq!(got, m.keys.get(&k).copied().ok_or(QueueError::UnknownKey));
                if let Ok(h) = got
                    && looked.len() < MAX_KEPT
                {
                    looked.push(h);
                }
            }
            Op::NotifyLooked(i, arg) => {
                let Some(i) = pick(&looked, i) else { continue };
                let h = looked[i];
                let got = keyed.queue().notify(h, arg);
                if m.is_live(&h) {
                    assert_eq!(got, Ok(m.notify(h, arg)));
                } else {
                    assert_eq!(got, Err(QueueError::StaleHandle));
                }
            }
            Op::UnregisterLooked(i) => {
                let Some(i) = pick(&looked, i) else { continue };
                let h = looked[i];
                let got = keyed.queue().unregister(h);
                if m.is_live(&h) {
                    assert_eq!(got, Ok(()));
                    m.kill(h);
                } else {
                    assert_eq!(got, Err(QueueError::StaleHandle));
                }
            }
            Op::IsRegisteredLooked(i) => {
                let Some(i) = pick(&looked, i) else { continue };
                let h = looked[i];
                assert_eq!(keyed.queue().is_registered(h), m.is_live(&h));
            }
            Op::WaitLooked(i) => {
                let Some(i) = pick(&looked, i) else { continue };
                if waits.len() >= MAX_WAITS {
                    continue;
                }
                let h = looked[i];
                let w = keyed.queue().wait(h);
                let start = if m.is_live(&h) {
                    Ok(m.handles[&h].seq)
                } else {
                    Err(QueueError::StaleHandle)
                };
                assert_eq!(w.snapshot().map(|s| s.sequence()), start);
                waits.push(Some(w));
                m.new_wait(h, start);
            }
            Op::Wait(k) => {
                let k = k % KEYS;
                if waits.len() >= MAX_WAITS {
                    continue;
                }
                let got = keyed.wait(&k);
                match m.by_key(k) {
                    Ok(h) => {
                        let w = got.expect("wait on a live key");
                        let seq = m.handles[&h].seq;
                        assert_eq!(
                            w.snapshot().map(|s| (s.handle(), s.sequence())),
                            Ok((h, seq))
                        );
                        waits.push(Some(w));
                        m.new_wait(h, Ok(seq));
                    }
                    Err(e) => assert_eq!(got.err(), Some(e)),
                }
            }
            Op::Snapshot(k) => {
                let k = k % KEYS;
                let got = keyed.snapshot(&k);
                match m.by_key(k) {
                    Ok(h) => {
                        let s = got.expect("snapshot of a live key");
                        assert_eq!((s.handle(), s.sequence()), (h, m.handles[&h].seq));
                        if snapshots.len() < MAX_KEPT {
                            snapshots.push(s);
                        }
                    }
                    Err(e) => assert_eq!(got, Err(e)),
                }
            }
            Op::WaitAfter(i) => {
                let Some(i) = pick(&snapshots, i) else {
                    continue;
                };
                if waits.len() >= MAX_WAITS {
                    continue;
                }
                let s = snapshots[i];
                let w = keyed.wait_after(s);
                assert_eq!(w.snapshot(), Ok(s));
                waits.push(Some(w));
                m.new_wait(s.handle(), Ok(s.sequence()));
            }
            Op::Poll(i) => {
                let Some(i) = pick(&waits, i) else { continue };
                let Some(w) = waits[i].as_mut() else { continue };
                let waker = m.waits[i].waker.clone();
                let got = poll_wait(w, &waker);
                let want = m.poll(i);
                assert_eq!(got, want, "poll of wait {i}");
                if got.is_ready() {
                    waits[i] = None;
                }
            }
            Op::DropWait(i) => {
                let Some(i) = pick(&waits, i) else { continue };
                if waits[i].take().is_some() {
                    let w = &mut m.waits[i];
                    w.gone = true;
                    w.claimed = false;
                    w.armed = false;
                }
            }
            Op::WaitZero(k) => {
                let k = k % KEYS;
                let got = keyed.wait(&k).and_then(|w| w.wait_timeout(Duration::ZERO));
                match m.by_key(k) {
                    Ok(_) => assert_eq!(got, Err(QueueError::Timeout)),
                    Err(e) => assert_eq!(got, Err(e)),
                }
            }
            Op::Subscribe(k, cap) => {
                let k = k % KEYS;
                let cap = cap as usize % 5;
                if subs.len() >= MAX_KEPT {
                    continue;
                }
                let got = keyed.subscribe(&k, cap, "fuzz");
                let mapped = m.keys.contains_key(&k);
                match m.by_key(k) {
                    Ok(h) if cap > 0 => {
                        let s = got.expect("subscribe to a live key");
                        assert_eq!(s.handle(), h);
                        subs.push(Some(s));
                        m.subs.push(MSub {
                            handle: h,
                            cap: cap as u64,
                            values: Vec::new(),
                            head: 0,
                            tail: 0,
                            end: None,
                            done: false,
                            gone: false,
                        });
                    }
                    // The capacity is checked by the queue, after the lookup.
                    _ if mapped && cap == 0 => assert!(
                        matches!(got, Err(QueueError::InvalidCapacity { requested: 0, .. })),
                        "{got:?}"
                    ),
                    _ => assert!(matches!(got, Err(QueueError::UnknownKey)), "{got:?}"),
                }
            }
            Op::TryRecv(i) => {
                let Some(i) = pick(&subs, i) else { continue };
                let Some(s) = subs[i].as_mut() else { continue };
                assert_eq!(s.try_recv(), m.subs[i].try_recv(), "try_recv of sub {i}");
            }
            Op::DropSub(i) => {
                let Some(i) = pick(&subs, i) else { continue };
                if subs[i].take().is_some() {
                    m.subs[i].gone = true;
                }
            }
            Op::Waiters(k) => {
                let k = k % KEYS;
                let got = keyed.waiters(&k).map(|w| w.len());
                match m.by_key(k) {
                    Ok(h) => assert_eq!(got, Ok(m.claimed_on(h))),
                    Err(e) => assert_eq!(got, Err(e)),
                }
            }
            Op::Waits => {
                let mut got: Vec<(u8, usize)> = keyed
                    .waits()
                    .into_iter()
                    .map(|(k, w)| (k, w.len()))
                    .collect();
                got.sort();
                let mut want: Vec<(u8, usize)> = m
                    .keys
                    .iter()
                    .filter(|(_, h)| m.is_live(h))
                    .map(|(k, h)| (*k, m.claimed_on(*h)))
                    .collect();
                want.sort();
                assert_eq!(got, want);
            }
            Op::ContainsKey(k) => {
                let k = k % KEYS;
                assert_eq!(keyed.contains_key(&k), m.by_key(k).is_ok());
            }
        }

        // After every step: wakes, the key set, live handles, pending waits.
        for (i, w) in m.waits.iter().enumerate() {
            assert_eq!(
                w.counter.0.load(Ordering::SeqCst),
                w.wakes,
                "wakes of wait {i}"
            );
        }
        let mut keys = keyed.keys();
        keys.sort();
        let mut want: Vec<u8> = m.keys.keys().copied().collect();
        want.sort();
        assert_eq!(keys, want);
        assert_eq!(keyed.len(), m.keys.len());
        let stats = keyed.queue().stats();
        assert_eq!(stats.handles, m.live);
        let pending: usize = m
            .waits
            .iter()
            .filter(|w| !w.gone && w.claimed && m.is_live(&w.handle))
            .count();
        assert_eq!(stats.waiters, pending);
    }

    // Dropping the layer unregisters what it still holds; pending waits
    // borrow it, so they go first.
    drop(waits);
    drop(subs);
    drop(keyed);
    let live_outside: usize = m
        .handles
        .iter()
        .filter(|(h, mh)| mh.live && !m.keys.values().any(|k| k == *h))
        .count();
    assert_eq!(live_outside, 0, "every live handle has its key");
    assert_eq!(queue.stats().handles, 0);
}

fuzz_target!(|input: Input| run(input));
