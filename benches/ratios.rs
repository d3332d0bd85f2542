//! Interleaved ratios: this crate against a peer, measured in alternating
//! rounds, so a noisy or time-shared host moves both sides of a ratio
//! together instead of whichever criterion group it happened to hit.
//!
//! Criterion measures one implementation after another; on a shared host a
//! burst of load during one of them moves their ratio by 10-30%. Here every
//! round runs each implementation of a scenario once, for the same number
//! of operations (a batch of about [`BATCH_MS`] ms, sized once), in an
//! order that alternates between rounds, and the ratio is taken per round:
//! the table gives the median of [`ROUNDS`] per-round ratios with its
//! interquartile range, beside each side's median time per operation.
//!
//! Scenarios, the same work as the criterion groups (and, for the
//! single-threaded ones, `examples/notify_fastpath.rs`):
//! - `idle`: one notify with nobody waiting, against a bare
//!   `AtomicU64::fetch_add` (the floor), tokio `Notify::notify_waiters` and
//!   event-listener `Event::notify(usize::MAX)`;
//! - `wake/K`: per waiter, `K` waits created, polled to `Pending`, woken by
//!   one notify, polled to `Ready` and dropped, on a hand-rolled executor
//!   with a counting waker, against tokio `Notify` (`notified` +
//!   `notify_waiters`) and event-listener;
//! - `fanout/K`: per delivery, sends in batches of 256 to `K` keep-newest
//!   subscribers of capacity 256, each batch followed by draining every
//!   subscriber, against tokio `broadcast::channel(256)` with `K` receivers;
//! - `pipe_stream/16`: MemPipe with 3 reader threads and 16-byte writes,
//!   1 MiB per transfer, streaming, against tokio `broadcast` of `Bytes`
//!   (the groups of `benches/mempipe.rs`, whose code this shares; each
//!   transfer times itself from a barrier after its threads exist).
//!
//! Keeping every byte against the single-threaded `Vec` floor is not
//! here: interleaved with the other transfers, the floor itself took
//! 0.5 ms to 2 ms in one process (the allocator state they leave behind
//! moves it), so it would not be a floor. `benches/mempipe.rs` has it.
//!
//! Every batch checks its work (every waiter woken, every value delivered)
//! and panics if it was not all done. With `--test` (as `cargo bench --
//! --test` passes) each scenario runs one small batch and nothing is
//! written. A positional argument keeps only scenarios whose name contains
//! it. Other arguments (criterion's) are ignored. The results also go to
//! `<criterion dir>/ratios.json` for `scripts/bench_report.py`.

mod common;
#[path = "common/pipes.rs"]
mod pipes;
#[path = "common/scenarios.rs"]
mod scenarios;

use notification_queue::{Config, Handle, NotificationQueue, Subscription};
use pipes::Mode;
use scenarios::{BATCH as FANOUT_BATCH, drain_broadcast, drain_subscriptions, fanout, wake_cycles};
use std::future::Future;
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Rounds per scenario.
const ROUNDS: usize = 41;
/// Target time of one batch of one implementation.
const BATCH_MS: u64 = 4;

/// One implementation of a scenario: runs `n` operations and returns how
/// many completed as they should (checked against `n`), and their time if
/// it measures that itself (the pipe scenarios, which leave out spawning
/// their threads); else the caller times the call.
type Run<'a> = Box<dyn FnMut(u64) -> (u64, Option<Duration>) + 'a>;

/// A [`Run`] the caller times.
fn count<'a>(mut f: impl FnMut(u64) -> u64 + 'a) -> Run<'a> {
    Box::new(move |n| (f(n), None))
}

/// A [`Run`] of `n` one-shot pipe transfers, each timing itself.
fn transfers<'a>(mut once: impl FnMut() -> Duration + 'a) -> Run<'a> {
    Box::new(move |n| (n, Some((0..n).map(|_| once()).sum())))
}

struct Scenario<'a> {
    name: String,
    /// What one operation is, for the table.
    unit: &'static str,
    /// This crate first, then its peers.
    impls: Vec<(&'static str, Run<'a>)>,
}

/// `n` waiters through `scenarios::wake_cycles` in cycles of `k`.
fn wake_waiters<F: Future>(n: u64, k: usize, make: impl FnMut() -> F, notify: impl FnMut()) -> u64 {
    wake_cycles(n.div_ceil(k as u64), k, make, notify).min(n)
}

/// `n` deliveries to `k` receivers through `scenarios::fanout`.
fn deliveries(n: u64, k: usize, send: impl FnMut(i64), drain: impl FnMut() -> u64) -> u64 {
    fanout(n.div_ceil(k as u64), send, drain).min(n)
}

fn idle<'a>(q: &'a NotificationQueue, h: Handle) -> Scenario<'a> {
    let counter = AtomicU64::new(0);
    let tokio = tokio::sync::Notify::new();
    let event = event_listener::Event::new();
    Scenario {
        name: "idle".into(),
        unit: "notify",
        impls: vec![
            (
                common::CRATE,
                count(move |n| {
                    let mut ok = 0;
                    for _ in 0..n {
                        ok += q.notify(black_box(h), black_box(1)).is_ok() as u64;
                    }
                    ok
                }),
            ),
            (
                "atomic_fetch_add",
                count(move |n| {
                    for _ in 0..n {
                        // Relaxed: the floor being measured.
                        black_box(counter.fetch_add(black_box(1), Ordering::Relaxed));
                    }
                    n
                }),
            ),
            (
                "tokio_notify_waiters",
                count(move |n| {
                    for _ in 0..n {
                        black_box(&tokio).notify_waiters();
                    }
                    n
                }),
            ),
            (
                "event_listener_notify",
                count(move |n| {
                    for _ in 0..n {
                        black_box(black_box(&event).notify(black_box(usize::MAX)));
                    }
                    n
                }),
            ),
        ],
    }
}

fn wake<'a>(q: &'a NotificationQueue, h: Handle, k: usize) -> Scenario<'a> {
    let tokio = tokio::sync::Notify::new();
    let event = event_listener::Event::new();
    Scenario {
        name: format!("wake/{k}"),
        unit: "waiter",
        impls: vec![
            (
                common::CRATE,
                count(move |n| {
                    wake_waiters(
                        n,
                        k,
                        || q.wait(h),
                        || {
                            black_box(q.notify(h, 1).ok());
                        },
                    )
                }),
            ),
            (
                "tokio_notify",
                count(move |n| wake_waiters(n, k, || tokio.notified(), || tokio.notify_waiters())),
            ),
            (
                "event_listener",
                count(move |n| {
                    wake_waiters(
                        n,
                        k,
                        || event.listen(),
                        || {
                            black_box(event.notify(usize::MAX));
                        },
                    )
                }),
            ),
        ],
    }
}

fn fan<'a>(q: &'a NotificationQueue, h: Handle, k: usize) -> Scenario<'a> {
    let mut subs: Vec<Subscription> = (0..k)
        .map(|_| q.subscribe(h, FANOUT_BATCH as usize, "ratios"))
        .collect::<Result<_, _>>()
        .expect("subscribe");
    let (tx, rx0) = tokio::sync::broadcast::channel::<i64>(FANOUT_BATCH as usize);
    let mut rxs: Vec<_> = (1..k).map(|_| tx.subscribe()).collect();
    rxs.push(rx0);
    Scenario {
        name: format!("fanout/{k}"),
        unit: "delivery",
        impls: vec![
            (
                common::CRATE,
                count(move |n| {
                    deliveries(
                        n,
                        k,
                        |v| {
                            black_box(q.notify(h, v).ok());
                        },
                        || drain_subscriptions(&mut subs),
                    )
                }),
            ),
            (
                "tokio_broadcast",
                count(move |n| {
                    deliveries(
                        n,
                        k,
                        |v| {
                            black_box(tx.send(v).is_ok());
                        },
                        || drain_broadcast(&mut rxs),
                    )
                }),
            ),
        ],
    }
}

/// MemPipe, 3 readers, 16-byte writes (1 MiB per transfer), streaming,
/// against tokio `broadcast` of `Bytes`.
fn pipes<'a>(src: &'a [u8]) -> Vec<Scenario<'a>> {
    const READERS: usize = 3;
    const WRITE: usize = 16;
    vec![Scenario {
        name: "pipe_stream/16".into(),
        unit: "MiB to 3 readers",
        impls: vec![
            (
                common::CRATE,
                transfers(move || pipes::mempipe_once(src, WRITE, READERS, Mode::Stream)),
            ),
            (
                "tokio_broadcast",
                transfers(move || pipes::broadcast_once(src, WRITE, READERS)),
            ),
        ],
    }]
}

/// Runs `n` operations of `run`, checks they all completed, returns the
/// time.
fn timed(name: &str, imp: &str, run: &mut Run<'_>, n: u64) -> Duration {
    let t0 = Instant::now();
    let (ok, own) = run(n);
    let d = own.unwrap_or_else(|| t0.elapsed());
    assert_eq!(
        ok, n,
        "{name} / {imp}: only {ok} of {n} operations completed"
    );
    d
}

/// Operations per batch: doubled until one batch of the slowest
/// implementation takes [`BATCH_MS`].
fn batch_size(s: &mut Scenario<'_>) -> u64 {
    let mut n = 1;
    loop {
        let slowest = s
            .impls
            .iter_mut()
            .map(|(imp, run)| timed(&s.name, imp, run, n))
            .max()
            .unwrap_or_default();
        if slowest >= Duration::from_millis(BATCH_MS) || n >= 1 << 32 {
            return n;
        }
        n *= 2;
    }
}

fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

struct Row {
    scenario: String,
    unit: &'static str,
    peer: &'static str,
    crate_ns: f64,
    peer_ns: f64,
    median: f64,
    p25: f64,
    p75: f64,
}

/// Measures `s` in [`ROUNDS`] interleaved rounds; one row per peer.
fn measure(mut s: Scenario<'_>) -> Vec<Row> {
    let n = batch_size(&mut s);
    // Warm-up: one more batch each.
    for (imp, run) in s.impls.iter_mut() {
        timed(&s.name, imp, run, n);
    }
    let m = s.impls.len();
    let mut times = vec![Vec::with_capacity(ROUNDS); m];
    for round in 0..ROUNDS {
        // Alternate the order (forwards, backwards), so a drift within a
        // round weighs on every implementation alike.
        let order: Vec<usize> = if round % 2 == 0 {
            (0..m).collect()
        } else {
            (0..m).rev().collect()
        };
        for i in order {
            let (imp, run) = &mut s.impls[i];
            let d = timed(&s.name, imp, run, n);
            times[i].push(d.as_secs_f64() * 1e9 / n as f64);
        }
    }
    let median_of = |v: &[f64]| {
        let mut v = v.to_vec();
        v.sort_by(f64::total_cmp);
        quantile(&v, 0.5)
    };
    (1..m)
        .map(|p| {
            let mut ratios: Vec<f64> = times[0].iter().zip(&times[p]).map(|(a, b)| a / b).collect();
            ratios.sort_by(f64::total_cmp);
            Row {
                scenario: s.name.clone(),
                unit: s.unit,
                peer: s.impls[p].0,
                crate_ns: median_of(&times[0]),
                peer_ns: median_of(&times[p]),
                median: quantile(&ratios, 0.5),
                p25: quantile(&ratios, 0.25),
                p75: quantile(&ratios, 0.75),
            }
        })
        .collect()
}

fn out_dir() -> std::path::PathBuf {
    std::env::var_os("CRITERION_HOME")
        .map(std::path::PathBuf::from)
        .or_else(|| {
            std::env::var_os("CARGO_TARGET_DIR")
                .map(|d| std::path::PathBuf::from(d).join("criterion"))
        })
        .unwrap_or_else(|| "target/criterion".into())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let test = args.iter().any(|a| a == "--test");
    // Criterion's flags that take a value, whose value is not a filter.
    const WITH_VALUE: &[&str] = &[
        "--warm-up-time",
        "--measurement-time",
        "--sample-size",
        "--save-baseline",
        "--baseline",
        "--output-format",
        "--color",
        "--profile-time",
        "--nresamples",
        "--noise-threshold",
        "--confidence-level",
        "--significance-level",
        "--plotting-backend",
    ];
    let mut filter = None;
    let mut i = 0;
    while i < args.len() {
        if WITH_VALUE.contains(&args[i].as_str()) {
            i += 2;
            continue;
        }
        if !args[i].starts_with('-') {
            filter = Some(args[i].clone());
        }
        i += 1;
    }
    let q = NotificationQueue::new(Config::default());
    let h = q.register("ratios").expect("register");
    let wanted = |name: &str| filter.as_deref().is_none_or(|f| name.contains(f));
    let mut rows = Vec::new();
    let mut run = |s: Scenario<'_>| {
        if !wanted(&s.name) {
            return;
        }
        if test {
            smoke(s);
        } else {
            rows.extend(measure(s));
        }
    };
    run(idle(&q, h));
    for k in [1, 16, 256] {
        run(wake(&q, h, k));
    }
    for k in [1, 8, 64] {
        // A handle per fan-out, so that its subscribers are its own.
        let h = q.register("fanout").expect("register");
        run(fan(&q, h, k));
    }
    pipes::stable_allocator();
    let src = pipes::data();
    for s in pipes(&src) {
        run(s);
    }
    if test {
        println!("ratios: every scenario ran and checked its work");
        return;
    }
    println!(
        "\n{:<12} {:<22} {:>13} {:>13} {:>9} {:>17}",
        "scenario", "peer", "crate ns/op", "peer ns/op", "ratio", "IQR of ratios"
    );
    for r in &rows {
        println!(
            "{:<12} {:<22} {:>13.2} {:>13.2} {:>8.2}x {:>8.2} - {:.2}",
            r.scenario, r.peer, r.crate_ns, r.peer_ns, r.median, r.p25, r.p75
        );
    }
    let json_rows: Vec<String> = rows
        .iter()
        .map(|r| {
            format!(
                "    {{\"scenario\": \"{}\", \"unit\": \"{}\", \"peer\": \"{}\", \"crate_ns\": {:.3}, \
                 \"peer_ns\": {:.3}, \"ratio\": {:.4}, \"p25\": {:.4}, \"p75\": {:.4}}}",
                r.scenario, r.unit, r.peer, r.crate_ns, r.peer_ns, r.median, r.p25, r.p75
            )
        })
        .collect();
    let json = format!(
        "{{\n  \"rounds\": {ROUNDS},\n  \"batch_ms\": {BATCH_MS},\n  \"rows\": [\n{}\n  ]\n}}\n",
        json_rows.join(",\n")
    );
    let dir = out_dir();
    let path = dir.join("ratios.json");
    match std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, json)) {
        Ok(()) => println!("ratios: written to {}", path.display()),
        Err(e) => eprintln!("ratios: could not write {}: {e}", path.display()),
    }
}

/// `--test`: one small batch of every implementation, checked (one
/// transfer for the pipe scenarios).
fn smoke(mut s: Scenario<'_>) {
    let n = if s.name.starts_with("pipe") { 1 } else { 256 };
    for (imp, run) in s.impls.iter_mut() {
        timed(&s.name, imp, run, n);
    }
}
