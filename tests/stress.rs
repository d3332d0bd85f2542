//! Buggy clients, bounded: each test plays one kind of misbehaving client
//! against the queue while a *probe* thread keeps notifying other handles.
//!
//! Every test asserts the same three things:
//! 1. **Other handles keep working.** The probe performs a fixed number of
//!    notifies on its own handle (every 64th with an armed waiter that must
//!    be woken, so the count returned is exact) and must finish them all.
//!    Its ns/op is printed for the report, never asserted (speed is shown by
//!    the criterion benches).
//! 2. **Memory stays bounded.** A counting global allocator records the
//!    high-water mark of live heap bytes during the test (tests run one at a
//!    time, under `SERIAL`), which must stay below a bound derived from the
//!    configured limits; `Stats::memory_bytes` is checked too.
//! 3. **No lost wakeup.** At the end (and in places during), a set of
//!    waiters takes snapshots, some of them register, then one last notify
//!    lands: every one of them must complete with that notify (a lost wakeup
//!    shows as a 10 s timeout, never a hang).
//!
//! The clients: wait futures polled once and leaked (`mem::forget`), wait
//! futures dropped mid-wait, wakers that panic, wakers that block inside
//! `wake` (in a wait and in a subscription), handles unregistered while
//! waited on and notified from several threads, limit exhaustion and
//! recovery, subscribers that never read, and pipe readers that stop
//! mid-stream. The two blocking-waker tests are the regression tests for
//! wakers once run under the epoch pin (a blocked waker then held back the
//! reclamation of every retired list of the queue).
//!
//! `NQ_STRESS_SCALE` (default 1) multiplies the rounds; `scripts/stress.sh`
//! runs it in release at a larger scale. The default keeps the whole file to
//! a few seconds in a debug build.

mod common;

#[cfg(feature = "std")]
use common::PanickingWaker;
use common::{CountingWaker, poll_once};
use notification_queue::mempipe::{Limits, PipeError, Writer, pipe};
use notification_queue::{
    Config, Handle, NotificationQueue, Overflow, QueueError, RecvTimeoutError, SubscribeOptions,
    Subscription, TryRecvError,
};
use std::alloc::{GlobalAlloc, Layout, System};
use std::mem;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Barrier, Mutex, MutexGuard};
use std::task::{Poll, Wake, Waker};
use std::thread;
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------
// Counting allocator: live bytes and their high-water mark.

struct Counting;

static LIVE: AtomicUsize = AtomicUsize::new(0);
static PEAK: AtomicUsize = AtomicUsize::new(0);

fn note_alloc(size: usize) {
    let now = LIVE.fetch_add(size, Ordering::Relaxed) + size;
    PEAK.fetch_max(now, Ordering::Relaxed);
}

// SAFETY: forwards every call to `System` unchanged; only counts bytes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.alloc(layout) };
        if !p.is_null() {
            note_alloc(layout.size());
        }
        p
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new: usize) -> *mut u8 {
        // SAFETY: same contract as the caller's.
        let p = unsafe { System.realloc(ptr, layout, new) };
        if !p.is_null() {
            LIVE.fetch_sub(layout.size(), Ordering::Relaxed);
            note_alloc(new);
        }
        p
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Tests run one at a time so the allocator's high-water mark is theirs.
static SERIAL: Mutex<()> = Mutex::new(());

/// One test's memory window: the high-water mark above the bytes live when
/// it started.
struct MemWindow {
    base: usize,
    _serial: MutexGuard<'static, ()>,
}

impl MemWindow {
    fn start() -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        let base = LIVE.load(Ordering::SeqCst);
        PEAK.store(base, Ordering::SeqCst);
        Self {
            base,
            _serial: serial,
        }
    }
    /// Bytes above the start, now.
    fn live(&self) -> usize {
        LIVE.load(Ordering::SeqCst).saturating_sub(self.base)
    }
    /// Highest bytes above the start so far.
    fn high_water(&self) -> usize {
        PEAK.load(Ordering::SeqCst).saturating_sub(self.base)
    }
}

/// Silences the panics the panicking wakers raise on purpose (thousands of
/// messages otherwise); every other panic goes to the default hook.
#[cfg(feature = "std")]
fn quiet_deliberate_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let deliberate = info
                .payload()
                .downcast_ref::<&str>()
                .is_some_and(|m| m.contains("on purpose"));
            if !deliberate {
                default(info);
            }
        }));
    });
}

fn scale() -> usize {
    std::env::var("NQ_STRESS_SCALE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1)
        .max(1)
}

const LONG: Duration = Duration::from_secs(10);

/// A thread count that exercises races but stays fair on 2 cores.
const THREADS: usize = 4;

// ---------------------------------------------------------------------------
// The probe: a fixed count of notifies on a handle of its own.

struct Probe {
    thread: thread::JoinHandle<(u64, Duration)>,
}

impl Probe {
    /// Starts `ops` notifies on a fresh handle of `q`. Every 64th notify has
    /// one armed waiter and must report exactly one wake.
    fn start(q: &NotificationQueue, ops: u64) -> Self {
        let q = q.clone();
        let thread = thread::spawn(move || {
            let h = q.register("probe").unwrap();
            let (count, waker) = CountingWaker::new();
            let began = Instant::now();
            for i in 0..ops {
                if i % 64 == 0 {
                    let before = count.count();
                    let mut w = q.wait(h);
                    assert!(poll_once(&mut w, &waker).is_pending());
                    assert_eq!(q.notify(h, i as i64), Ok(1), "probe wake {i}");
                    assert_eq!(count.count(), before + 1);
                    assert!(poll_once(&mut w, &waker).is_ready());
                } else {
                    assert_eq!(q.notify(h, i as i64), Ok(0), "probe notify {i}");
                }
            }
            let took = began.elapsed();
            q.unregister(h).unwrap();
            (ops, took)
        });
        Self { thread }
    }

    /// Joins the probe; returns its ns per notify.
    fn finish(self) -> f64 {
        let (ops, took) = self.thread.join().expect("probe thread");
        took.as_nanos() as f64 / ops as f64
    }
}

/// The last-notify check: `n` waiters on `h` take snapshots; half of them
/// register before the notify, half only after it; one notify must complete
/// all of them.
fn last_notify_wakes_everyone(q: &NotificationQueue, h: Handle, n: usize) {
    let before = q.waiters(h).unwrap().len();
    let snapped = Arc::new(Barrier::new(n + 1));
    let notified = Arc::new(Barrier::new(n / 2 + 1));
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let q = q.clone();
            let snapped = snapped.clone();
            let notified = notified.clone();
            thread::spawn(move || {
                let snap = q.snapshot(h).unwrap();
                snapped.wait();
                if i % 2 == 1 {
                    notified.wait();
                }
                common::wait_timeout(q.wait_after(snap), LONG)
            })
        })
        .collect();
    snapped.wait();
    // Synchronise on the queue's own dump: the even half is registered.
    let deadline = Instant::now() + LONG;
    while q.waiters(h).unwrap().len() < before + n.div_ceil(2) {
        assert!(Instant::now() < deadline, "waiters never registered");
        thread::yield_now();
    }
    // (A waiter counted there may still be between claiming its entry and
    // publishing its waker; then it sees the notify itself, so the count
    // notify returns is not asserted: completion is.)
    q.notify(h, -7).unwrap();
    notified.wait();
    for t in threads {
        let got = t.join().unwrap().expect("a waiter missed the last notify");
        assert_eq!(got.arg, -7);
    }
}

fn report(name: &str, rounds: usize, threads: usize, ns_per_op: f64, mem: &MemWindow) {
    eprintln!(
        "stress {name}: rounds {rounds}, threads {threads}, probe {ns_per_op:.0} ns/notify, \
         heap high-water {} B, live at end {} B",
        mem.high_water(),
        mem.live()
    );
}

// ---------------------------------------------------------------------------
// The buggy clients.

/// Futures polled once and leaked with `mem::forget`: the waiter limit caps
/// what one generation can hold, notify still wakes the leaked wakers and
/// frees their entries (their waits are complete), and unregistering gives
/// the next generation its full capacity back. What the
/// leaked futures keep alive (their generation's waiter list) is bounded per
/// round by the limit.
#[test]
fn leaked_wait_futures_are_capped_by_the_waiter_limit() {
    const LIMIT: usize = 32;
    let rounds = 40 * scale();
    let mem = MemWindow::start();
    let q = NotificationQueue::new(Config::default().max_waiters_per_handle(LIMIT));
    let probe = Probe::start(&q, 20_000 * scale() as u64);
    let (count, waker) = CountingWaker::new();
    let mut per_round = Vec::new();
    for round in 0..rounds {
        let at_start = mem.live();
        let h = q.register("leaky").unwrap();
        for i in 0..LIMIT + 8 {
            let mut w = q.wait(h);
            let got = poll_once(&mut w, &waker);
            if i < LIMIT {
                assert!(got.is_pending(), "round {round} wait {i}");
            } else {
                assert_eq!(
                    got,
                    Poll::Ready(Err(QueueError::WaiterLimit { limit: LIMIT }))
                );
            }
            mem::forget(w);
        }
        assert_eq!(q.waiters(h).unwrap().len(), LIMIT);
        let before = count.count();
        assert_eq!(q.notify(h, round as i64), Ok(LIMIT));
        assert_eq!(count.count(), before + LIMIT);
        // The notify completed the leaked waits and freed their entries:
        // the handle has its capacity back, and the limit holds again.
        assert_eq!(q.waiters(h).unwrap().len(), 0);
        let mut again: Vec<_> = (0..LIMIT).map(|_| q.wait(h)).collect();
        for w in &mut again {
            assert!(poll_once(w, &waker).is_pending());
        }
        let mut w = q.wait(h);
        assert_eq!(
            poll_once(&mut w, &waker),
            Poll::Ready(Err(QueueError::WaiterLimit { limit: LIMIT }))
        );
        // Leaked too, still pending: only the unregister frees these.
        again.into_iter().for_each(mem::forget);
        q.unregister(h).unwrap();
        // The leaked entries no longer count (their list left the slot);
        // the probe thread may hold its one transient wait right now.
        assert!(q.waiters(h).is_err());
        assert!(q.stats().waiters <= 1, "{:?}", q.stats());
        per_round.push(mem.live().saturating_sub(at_start));
        // The next generation (same slot, FIFO reuse) has its capacity back.
        let h2 = q.register("next").unwrap();
        let mut ws: Vec<_> = (0..LIMIT).map(|_| q.wait(h2)).collect();
        for w in &mut ws {
            assert!(poll_once(w, &waker).is_pending());
        }
        assert_eq!(q.notify(h2, 1), Ok(LIMIT));
        drop(ws);
        if round == rounds - 1 {
            last_notify_wakes_everyone(&q, h2, THREADS);
        }
        q.unregister(h2).unwrap();
    }
    let ns = probe.finish();
    // What one round leaks: one waiter list of LIMIT entries (a few hundred
    // bytes per entry at most) -- the cap the limit gives.
    let per_round_bound = LIMIT * 512 + 4096;
    let worst = per_round.iter().copied().max().unwrap_or(0);
    assert!(worst <= per_round_bound, "a round leaked {worst} B");
    assert!(mem.high_water() <= rounds * per_round_bound + (1 << 20));
    assert!(q.stats().memory_bytes <= 1 << 16);
    eprintln!("stress leaked futures: worst leak per round {worst} B (bound {per_round_bound})");
    report("leaked futures", rounds, 2 + THREADS, ns, &mem);
}

/// Futures dropped mid-wait from several threads while a notifier runs:
/// nothing is left behind (no entries, no memory growth), and the waiters
/// that stay are woken.
#[test]
fn wait_futures_dropped_mid_wait_leave_nothing_behind() {
    let rounds = 5_000 * scale();
    let mem = MemWindow::start();
    let q = NotificationQueue::new(Config::default().max_waiters_per_handle(64));
    let h = q.register("busy").unwrap();
    let probe = Probe::start(&q, 20_000 * scale() as u64);
    let done = Arc::new(AtomicBool::new(false));
    // The notifier runs until the droppers have done their fixed counts.
    let notifier = {
        let q = q.clone();
        let done = done.clone();
        thread::spawn(move || {
            let mut n = 0u64;
            while !done.load(Ordering::SeqCst) {
                q.notify(h, n as i64).unwrap();
                n += 1;
            }
            n
        })
    };
    let droppers: Vec<_> = (0..THREADS)
        .map(|t| {
            let q = q.clone();
            thread::spawn(move || {
                let (_, waker) = CountingWaker::new();
                for i in 0..rounds {
                    let mut w = q.wait(h);
                    // Some polled once, some twice, some never.
                    if (i + t) % 4 != 3 && poll_once(&mut w, &waker).is_pending() && i % 2 == 0 {
                        let _ = poll_once(&mut w, &waker);
                    }
                    drop(w);
                }
            })
        })
        .collect();
    for d in droppers {
        d.join().unwrap();
    }
    done.store(true, Ordering::SeqCst);
    let notifies = notifier.join().unwrap();
    assert_eq!(q.stats().waiters, 0, "a dropped wait kept its entry");
    assert!(q.waiters(h).unwrap().is_empty());
    last_notify_wakes_everyone(&q, h, THREADS);
    let ns = probe.finish();
    assert!(q.stats().memory_bytes <= 1 << 16);
    // Waits allocate only their list (bounded by 64 entries) and wakers.
    assert!(
        mem.high_water() < 1 << 20,
        "high water {}",
        mem.high_water()
    );
    eprintln!(
        "stress dropped futures: {notifies} notifies raced {} drops",
        rounds * THREADS
    );
    report("dropped futures", rounds, 3 + THREADS, ns, &mem);
}

/// Wakers that panic: every other waiter is still woken, the queue is not
/// poisoned, the panics are counted, and other handles carry on. (Panic
/// containment needs `std`; without it see `queue.rs` and
/// `subscription.rs`.)
#[cfg(feature = "std")]
#[test]
fn panicking_wakers_neither_poison_nor_skip_others() {
    let rounds = 200 * scale();
    quiet_deliberate_panics();
    let mem = MemWindow::start();
    let q = NotificationQueue::new(Config::default());
    let probe = Probe::start(&q, 20_000 * scale() as u64);
    let bad = Waker::from(Arc::new(PanickingWaker));
    let (count, good) = CountingWaker::new();
    let h = q.register("panics").unwrap();
    for round in 0..rounds {
        let mut ws: Vec<_> = (0..8).map(|_| q.wait(h)).collect();
        for (i, w) in ws.iter_mut().enumerate() {
            let waker = if i % 2 == 0 { &bad } else { &good };
            assert!(poll_once(w, waker).is_pending());
        }
        let before = count.count();
        // From another thread: the panics happen on the notifier's thread.
        let q2 = q.clone();
        let woken = thread::spawn(move || q2.notify(h, round as i64))
            .join()
            .expect("a waker's panic escaped notify");
        assert_eq!(woken, Ok(8));
        assert_eq!(count.count(), before + 4);
        for w in &mut ws {
            assert!(poll_once(w, &good).is_ready());
        }
    }
    let s = q.stats();
    assert_eq!(s.waker_panics, 4 * rounds as u64);
    // Unregister wakes panicking wakers too, and survives.
    let mut w = q.wait(h);
    assert!(poll_once(&mut w, &bad).is_pending());
    q.unregister(h).unwrap();
    assert_eq!(
        poll_once(&mut w, &good),
        Poll::Ready(Err(QueueError::Closed))
    );
    let h = q.register("after").unwrap();
    last_notify_wakes_everyone(&q, h, THREADS);
    let ns = probe.finish();
    assert!(
        mem.high_water() < 1 << 20,
        "high water {}",
        mem.high_water()
    );
    report("panicking wakers", rounds, 2 + THREADS, ns, &mem);
}

/// A waker whose `wake` blocks until released.
struct BlockingWaker {
    entered: Mutex<mpsc::Sender<()>>,
    release: Mutex<mpsc::Receiver<()>>,
}

impl Wake for BlockingWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }
    fn wake_by_ref(self: &Arc<Self>) {
        let _ = self.entered.lock().unwrap().send(());
        let _ = self.release.lock().unwrap().recv();
    }
}

/// A waker that blocks for a long time inside `wake`: the notifier that
/// called it is stuck, but notifies, waits, registrations and unregistrations
/// on other handles (and on the same handle) go on from other threads, and
/// memory stays bounded while it is stuck (the stuck notifier holds no lock
/// and must not hold back the reclamation of other handles' waiter lists).
#[test]
fn blocking_waker_does_not_stall_other_handles() {
    blocking_waker_case(false);
}

/// The same with the blocking waker in a subscription's `recv` future: the
/// notifier is stuck delivering to that subscriber.
#[test]
fn blocking_subscriber_waker_does_not_stall_other_handles() {
    blocking_waker_case(true);
}

fn blocking_waker_case(subscriber: bool) {
    let rounds = 300 * scale();
    let mem = MemWindow::start();
    let q = NotificationQueue::new(Config::default().max_waiters_per_handle(16));
    let (entered_tx, entered_rx) = mpsc::channel();
    let (release_tx, release_rx) = mpsc::channel();
    let blocking = Waker::from(Arc::new(BlockingWaker {
        entered: Mutex::new(entered_tx),
        release: Mutex::new(release_rx),
    }));
    let stuck_h = q.register("stuck").unwrap();
    let mut stuck_wait = q.wait(stuck_h);
    let mut stuck_sub = q.subscribe(stuck_h, 4, "stuck").unwrap();
    // Kept pending (not dropped: a dropped `Recv` withdraws its waker).
    let mut stuck_recv = stuck_sub.recv();
    if subscriber {
        assert!(poll_once(&mut stuck_recv, &blocking).is_pending());
    } else {
        assert!(poll_once(&mut stuck_wait, &blocking).is_pending());
    }
    let stuck = {
        let q = q.clone();
        thread::spawn(move || q.notify(stuck_h, 1))
    };
    entered_rx.recv().unwrap(); // the notifier is now inside `wake`
    let probe = Probe::start(&q, 20_000 * scale() as u64);
    // The same handle still takes notifies.
    assert!(q.notify(stuck_h, 2).is_ok());
    // Churn other handles: register, wait, notify, unregister.
    let (count, waker) = CountingWaker::new();
    let mut live_after_warmup = 0;
    for round in 0..rounds {
        let h = q.register("churn").unwrap();
        let mut ws: Vec<_> = (0..4).map(|_| q.wait(h)).collect();
        for w in &mut ws {
            assert!(poll_once(w, &waker).is_pending());
        }
        let before = count.count();
        assert_eq!(q.notify(h, round as i64), Ok(4));
        assert_eq!(count.count(), before + 4);
        drop(ws);
        let mut w = q.wait(h);
        assert!(poll_once(&mut w, &waker).is_pending());
        q.unregister(h).unwrap();
        assert_eq!(
            poll_once(&mut w, &waker),
            Poll::Ready(Err(QueueError::Closed))
        );
        if round == 20 {
            live_after_warmup = mem.live();
        }
    }
    // Let the epoch advance before measuring. Transient pins (the probe, or
    // any thread preempted while pinned on this loaded machine) delay
    // reclamation by a bounded amount that depends on scheduling; a pin
    // held by the stuck notifier would block it for good, however often we
    // flush, and that is what this test is about.
    // crossbeam-epoch frees at most a few bags per collection, so drain the
    // backlog such a window leaves by flushing until the heap is back within
    // the bound, or give up after many tries (the stuck-pin bug never drains).
    for _ in 0..100_000 {
        if mem.live().saturating_sub(live_after_warmup) < 64 * 1024 {
            break;
        }
        flush_reclamation(&q);
        thread::yield_now();
    }
    let live_stuck = mem.live();
    let other = q.register("other").unwrap();
    last_notify_wakes_everyone(&q, other, THREADS);
    let ns = probe.finish();
    release_tx.send(()).unwrap();
    // Woken: the waiter (1) or the subscriber's delivery (1).
    assert!(stuck.join().unwrap().unwrap() >= 1);
    if !subscriber {
        assert!(poll_once(&mut stuck_wait, &waker).is_ready());
    }
    drop(stuck_recv);
    drop(stuck_sub);
    let growth = live_stuck.saturating_sub(live_after_warmup);
    eprintln!(
        "stress blocking waker: {rounds} churn rounds while stuck; live heap grew {growth} B \
         after warm-up"
    );
    // Each churn round retires one waiter list; with the stuck notifier
    // pinning reclamation they would pile up (hundreds of bytes per round).
    assert!(
        growth < 64 * 1024,
        "retired waiter lists piled up while a waker blocked: {growth} B over {rounds} rounds"
    );
    let name = if subscriber {
        "blocking subscriber waker"
    } else {
        "blocking waker"
    };
    report(name, rounds, 3 + THREADS, ns, &mem);
}

/// Runs a collection of the epoch collector `q` retires into: the global
/// one with `std`; without `std` the queue's own, which a retire flushes
/// (a waiter list retired by unregistering a waited-on handle).
fn flush_reclamation(q: &NotificationQueue) {
    #[cfg(feature = "std")]
    {
        let _ = q;
        crossbeam_epoch::pin().flush();
    }
    #[cfg(not(feature = "std"))]
    {
        let h = q.register("flush").unwrap();
        let mut w = q.wait(h);
        assert!(poll_once(&mut w, Waker::noop()).is_pending());
        q.unregister(h).unwrap();
    }
}

/// Handles unregistered while being waited on and notified from several
/// threads, with their slots reused at once: waiters end with a notification
/// or `Closed` (never hang), notifiers get `Ok` or `StaleHandle`, a stale
/// handle never bumps the next owner's sequence, and nothing is left behind.
#[test]
fn unregister_while_waited_and_notified_from_many_threads() {
    let rounds = 150 * scale();
    let mem = MemWindow::start();
    let q = NotificationQueue::new(Config::default().max_handles(8).max_waiters_per_handle(8));
    let probe = Probe::start(&q, 20_000 * scale() as u64);
    let stale_bumps = Arc::new(AtomicU64::new(0));
    let mut outcomes = [0u64; 3]; // notified, closed, limit
    for round in 0..rounds {
        let h = q.register("doomed").unwrap();
        let start = Arc::new(Barrier::new(THREADS + THREADS / 2 + 1));
        let waiters: Vec<_> = (0..THREADS / 2)
            .map(|_| {
                let q = q.clone();
                let start = start.clone();
                thread::spawn(move || {
                    start.wait();
                    let mut seen = [0u64; 3];
                    loop {
                        match common::wait_timeout(q.wait(h), LONG) {
                            Ok(_) => seen[0] += 1,
                            Err(QueueError::Closed) | Err(QueueError::StaleHandle) => {
                                seen[1] += 1;
                                return seen;
                            }
                            Err(QueueError::WaiterLimit { .. }) => {
                                seen[2] += 1;
                                thread::yield_now();
                            }
                            Err(e) => panic!("waiter got {e:?}"),
                        }
                    }
                })
            })
            .collect();
        let notifiers: Vec<_> = (0..THREADS)
            .map(|_| {
                let q = q.clone();
                let start = start.clone();
                thread::spawn(move || {
                    start.wait();
                    for i in 0..1_000 {
                        match q.notify(h, i) {
                            Ok(_) => {}
                            Err(QueueError::StaleHandle) => return,
                            Err(e) => panic!("notifier got {e:?}"),
                        }
                    }
                })
            })
            .collect();
        start.wait();
        // Unregister at a round-dependent point of the notify storm.
        for _ in 0..round % 7 {
            thread::yield_now();
        }
        q.unregister(h).unwrap();
        // Register at once: often the same slot (free slots are reused FIFO).
        let fresh = q.register("reuser").unwrap();
        let seq = q.snapshot(fresh).unwrap().sequence();
        for n in notifiers {
            n.join().unwrap();
        }
        if q.snapshot(fresh).unwrap().sequence() != seq {
            stale_bumps.fetch_add(1, Ordering::SeqCst);
        }
        for w in waiters {
            let seen = w.join().unwrap();
            for k in 0..3 {
                outcomes[k] += seen[k];
            }
        }
        assert_eq!(q.notify(h, 0), Err(QueueError::StaleHandle));
        assert_eq!(
            common::wait_timeout(q.wait(h), LONG),
            Err(QueueError::StaleHandle)
        );
        q.unregister(fresh).unwrap();
        // Only the probe's handle may be left, with at most its own waiter.
        assert!(q.stats().waiters <= 1, "round {round}");
        assert!(q.dump().iter().all(|d| &*d.hint == "probe"));
    }
    assert_eq!(
        stale_bumps.load(Ordering::SeqCst),
        0,
        "a stale notify bumped the new owner"
    );
    let h = q.register("last").unwrap();
    last_notify_wakes_everyone(&q, h, THREADS);
    let ns = probe.finish();
    assert!(q.stats().memory_bytes <= 1 << 16);
    assert!(
        mem.high_water() < 4 << 20,
        "high water {}",
        mem.high_water()
    );
    eprintln!(
        "stress unregister storm: waits notified {}, closed {}, limit {}",
        outcomes[0], outcomes[1], outcomes[2]
    );
    report(
        "unregister storm",
        rounds,
        1 + THREADS / 2 + THREADS,
        ns,
        &mem,
    );
}

/// Exhausting every limit from several threads, then recovering: limit
/// errors are typed, counts never exceed the limits, and once the hogs let
/// go everything works again with the memory of the first round.
#[test]
fn limit_exhaustion_and_recovery() {
    const HANDLES: usize = 16;
    const WAITERS: usize = 8;
    let rounds = 100 * scale();
    let mem = MemWindow::start();
    let q = NotificationQueue::new(
        Config::default()
            .max_handles(HANDLES)
            .max_waiters_per_handle(WAITERS),
    );
    let probe_q = NotificationQueue::new(Config::default());
    let probe = Probe::start(&probe_q, 20_000 * scale() as u64);
    let mut mem_after_first = 0;
    let mut queue_mem_after_first = 0;
    for round in 0..rounds {
        // Several threads race to register; exactly HANDLES succeed.
        let got: Vec<Vec<Handle>> = (0..THREADS)
            .map(|_| {
                let q = q.clone();
                thread::spawn(move || {
                    let mut mine = Vec::new();
                    for _ in 0..HANDLES {
                        match q.register("hog") {
                            Ok(h) => mine.push(h),
                            Err(QueueError::HandleLimit { limit }) => assert_eq!(limit, HANDLES),
                            Err(e) => panic!("register got {e:?}"),
                        }
                    }
                    mine
                })
            })
            .collect::<Vec<_>>()
            .into_iter()
            .map(|t| t.join().unwrap())
            .collect();
        let handles: Vec<Handle> = got.into_iter().flatten().collect();
        assert_eq!(handles.len(), HANDLES);
        assert_eq!(q.stats().handles, HANDLES);
        // Fill every handle's waiters past the limit.
        let (_, waker) = CountingWaker::new();
        let mut waits = Vec::new();
        for &h in &handles {
            for i in 0..WAITERS + 2 {
                let mut w = q.wait(h);
                match poll_once(&mut w, &waker) {
                    Poll::Pending => waits.push(w),
                    Poll::Ready(r) => {
                        assert!(i >= WAITERS);
                        assert_eq!(r, Err(QueueError::WaiterLimit { limit: WAITERS }));
                    }
                }
            }
        }
        assert_eq!(q.stats().waiters, HANDLES * WAITERS);
        // Recovery: notify half (their waits complete and free entries),
        // unregister the rest (their waits close).
        for (i, &h) in handles.iter().enumerate() {
            if i % 2 == 0 {
                assert_eq!(q.notify(h, 1), Ok(WAITERS));
            } else {
                q.unregister(h).unwrap();
            }
        }
        for w in &mut waits {
            assert!(poll_once(w, &waker).is_ready());
        }
        drop(waits);
        assert_eq!(q.stats().waiters, 0);
        for (i, &h) in handles.iter().enumerate() {
            if i % 2 == 0 {
                q.unregister(h).unwrap();
            }
        }
        assert_eq!(q.stats().handles, 0);
        if round == 0 {
            mem_after_first = mem.live();
            queue_mem_after_first = q.stats().memory_bytes;
        } else {
            // Slots and lists are reused, not re-grown.
            assert!(q.stats().memory_bytes <= queue_mem_after_first);
        }
    }
    let h = q.register("after").unwrap();
    last_notify_wakes_everyone(&q, h, THREADS);
    q.unregister(h).unwrap();
    let ns = probe.finish();
    let growth = mem.live().saturating_sub(mem_after_first);
    assert!(
        growth < 64 * 1024,
        "live heap grew {growth} B across rounds"
    );
    report("limit exhaustion", rounds, 1 + THREADS, ns, &mem);
}

/// Subscribers that never read, next to one that does: the notifier never
/// waits, each silent ring holds at most its capacity (memory bounded by
/// subscribers x capacity), every lost value is counted exactly, and when a
/// silent subscriber finally reads it learns how much it missed
/// (`Lagged(n)`) and gets the newest (or oldest) `capacity` values.
#[test]
fn subscribers_that_never_read() {
    const SUBS: usize = 16;
    const CAP: usize = 8;
    let per_thread = 2_000 * scale();
    let mem = MemWindow::start();
    let q = NotificationQueue::new(Config::default().max_subscribers_per_handle(SUBS + 1));
    let probe = Probe::start(&q, 20_000 * scale() as u64);
    let h = q.register("firehose").unwrap();
    let mut silent: Vec<Subscription> = (0..SUBS)
        .map(|i| {
            let overflow = if i % 2 == 0 {
                Overflow::KeepNewest
            } else {
                Overflow::KeepOldest
            };
            let opts = SubscribeOptions::new(CAP).overflow(overflow).hint("silent");
            q.subscribe_with(h, opts).unwrap()
        })
        .collect();
    // One subscriber that does read, on its own thread, until closed.
    let mut reader = q.subscribe(h, CAP, "reader").unwrap();
    let reading = thread::spawn(move || {
        let (mut got, mut lagged) = (0u64, 0u64);
        loop {
            match common::recv_timeout(&mut reader, LONG) {
                Ok(_) => got += 1,
                Err(RecvTimeoutError::Lagged(n)) => lagged += n,
                Err(RecvTimeoutError::Closed) => return (got, lagged),
                Err(e) => panic!("reader got {e:?}"),
            }
        }
    });
    let notifiers: Vec<_> = (0..THREADS / 2)
        .map(|t| {
            let q = q.clone();
            thread::spawn(move || {
                for i in 0..per_thread {
                    let n = q.notify(h, (t * per_thread + i) as i64).unwrap();
                    // Each KeepNewest ring always takes the value.
                    assert!(n >= SUBS / 2, "delivered to {n}");
                }
            })
        })
        .collect();
    for n in notifiers {
        n.join().unwrap();
    }
    let total = (THREADS / 2 * per_thread) as u64;
    let high_during = mem.high_water();
    for s in &silent {
        assert_eq!(s.len(), CAP);
        assert_eq!(s.dropped(), total - CAP as u64, "{:?}", s.overflow());
    }
    // A silent subscriber wakes up: it learns what it missed, then reads.
    for s in &mut silent {
        let keep_oldest = s.overflow() == Overflow::KeepOldest;
        assert_eq!(s.try_recv(), Err(TryRecvError::Lagged(total - CAP as u64)));
        let values: Vec<i64> = (0..CAP).map(|_| s.try_recv().unwrap()).collect();
        assert_eq!(s.try_recv(), Err(TryRecvError::Empty));
        if keep_oldest {
            // The first values each notifier thread sent are among them.
            assert!(values.contains(&0) || values.contains(&(per_thread as i64)));
        }
    }
    let s = q.stats();
    assert_eq!(
        s.dropped,
        (SUBS as u64) * (total - CAP as u64) + reader_drops(&q, h)
    );
    // The last notify reaches waiters too, with the subscribers in place.
    last_notify_wakes_everyone(&q, h, THREADS);
    q.unregister(h).unwrap();
    let (got, lagged) = reading.join().unwrap();
    assert_eq!(got + lagged, total + 1, "the reader lost count");
    drop(silent);
    let ns = probe.finish();
    // Rings: SUBS+1 of CAP 8-byte cells plus bookkeeping.
    let bound = (SUBS + 1) * (CAP * 8 + 1024) + (256 << 10);
    assert!(high_during < bound, "high water {high_during} >= {bound}");
    eprintln!("stress silent subscribers: {total} notifies to {SUBS} silent rings of {CAP}");
    report("silent subscribers", per_thread, 2 + THREADS / 2, ns, &mem);
}

/// The reading subscriber's own drops (it may lag too).
fn reader_drops(q: &NotificationQueue, h: Handle) -> u64 {
    q.dump()
        .into_iter()
        .filter(|d| d.handle == h)
        .flat_map(|d| d.subscribers)
        .filter(|s| &*s.hint == "reader")
        .map(|s| s.dropped)
        .sum()
}

/// Readers that stop mid-pipe. In streaming mode a reader that stops
/// holds back reclamation, so the writer meets the byte limit (`Full`,
/// never a block or a panic) and memory stays at the limit; the other
/// readers get every byte up to there. Once the stalled reader is dropped
/// (or set in error and dropped) the stream flows again, every live reader
/// gets every byte in order, and all of them see EOF after the close.
#[test]
fn readers_that_stop_mid_pipe() {
    const LIMIT: u64 = 64 << 10;
    const SEG: usize = 4 << 10;
    let rounds = 20 * scale();
    let mem = MemWindow::start();
    let q = NotificationQueue::new(Config::default());
    let probe = Probe::start(&q, 20_000 * scale() as u64);
    let mut fulls = 0u64;
    let mut high_footprint = 0;
    for round in 0..rounds {
        let limits = Limits::default()
            .max_bytes(LIMIT)
            .segment_size(SEG)
            .max_readers(8);
        let (mut w, factory) = pipe(&q, "stream", limits).unwrap();
        let stalled: Vec<_> = (0..2).map(|_| factory.reader().unwrap()).collect();
        let live: Vec<_> = (0..THREADS / 2)
            .map(|_| factory.reader().unwrap())
            .collect();
        factory.seal(); // streaming mode
        let total = 4 * LIMIT + round as u64 * 977;
        let readers: Vec<_> = live
            .into_iter()
            .map(|mut r| {
                thread::spawn(move || {
                    let mut buf = vec![0u8; 1500];
                    let mut pos = 0u64;
                    loop {
                        match common::read_timeout(&mut r, &mut buf, LONG) {
                            Ok(0) => return pos,
                            Ok(n) => {
                                for &b in &buf[..n] {
                                    assert_eq!(b, (pos % 251) as u8, "byte {pos}");
                                    pos += 1;
                                }
                            }
                            Err(e) => panic!("live reader got {e:?} at {pos}"),
                        }
                    }
                })
            })
            .collect();
        // The stalled readers read a little, then stop.
        let mut stalled = stalled;
        let mut written = 0u64;
        let chunk: Vec<u8> = (0..7000u64).map(|i| (i % 251) as u8).collect();
        let write_some = |w: &mut Writer, written: &mut u64| -> Result<usize, PipeError> {
            let off = (*written % 251) as usize;
            let want = ((total - *written) as usize).min(chunk.len() - off);
            let n = w.write(&chunk[off..off + want])?;
            *written += n as u64;
            Ok(n)
        };
        write_some(&mut w, &mut written).unwrap();
        let mut buf = [0u8; 100];
        for s in &mut stalled {
            assert_eq!(s.read(&mut buf).unwrap(), 100);
        }
        // Write until the stalled readers hold the stream back.
        let hit_full = loop {
            match write_some(&mut w, &mut written) {
                Ok(_) if written == total => break false,
                Ok(_) => {}
                Err(PipeError::Full { limit }) => {
                    assert_eq!(limit, LIMIT);
                    break true;
                }
                Err(e) => panic!("writer got {e:?}"),
            }
        };
        assert!(hit_full, "the stalled readers did not hold the writer back");
        fulls += 1;
        high_footprint = high_footprint.max(w.footprint());
        // One stalled reader fails itself: that touches nobody else.
        stalled[0].set_error(5).unwrap();
        assert_eq!(
            stalled[0].read(&mut buf),
            Err(PipeError::Reader { errno: 5 })
        );
        // Dropping the stalled readers lets the stream flow again.
        drop(stalled);
        while written < total {
            match write_some(&mut w, &mut written) {
                Ok(_) => {}
                Err(PipeError::Full { .. }) => {
                    fulls += 1;
                    thread::yield_now();
                }
                Err(e) => panic!("writer got {e:?} after the stall"),
            }
            high_footprint = high_footprint.max(w.footprint());
        }
        w.close().unwrap();
        for r in readers {
            assert_eq!(r.join().unwrap(), total, "a live reader lost the tail");
        }
    }
    let ns = probe.finish();
    // Streaming memory: the limit, the segment being filled and the pool.
    let bound = LIMIT as usize + 6 * SEG;
    assert!(
        high_footprint <= bound,
        "footprint {high_footprint} > {bound}"
    );
    assert!(
        mem.high_water() < 4 * bound + (1 << 20),
        "high water {}",
        mem.high_water()
    );
    eprintln!(
        "stress stalled readers: pipe footprint high-water {high_footprint} B (limit {LIMIT}), \
         {fulls} Full results"
    );
    report("stalled readers", rounds, 2 + THREADS / 2, ns, &mem);
}
