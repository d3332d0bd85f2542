//! MemPipe throughput: 1 writer, 1/3/8 readers, writes of 16 B, 4 KiB and
//! 64 KiB, 1 MiB written per iteration.
//!
//! Contenders, all in one run, each reader copying out every byte:
//! - `keep`: MemPipe keeping every byte (factory alive);
//! - `keep_bufwriter` (16 B writes only): the same through
//!   `std::io::BufWriter::with_capacity(4096, writer)`, so bytes are
//!   published 4 KiB at a time (readers see a write only once its 4 KiB
//!   fill up, or at the end): what batching buys when a write need not be
//!   visible at once;
//! - `stream`: MemPipe in streaming mode (factory dropped, 256 KiB byte
//!   limit, segments recycled; the writer yields while the limit is full);
//! - `tokio_broadcast`: `tokio::sync::broadcast` of `Bytes::copy_from_slice`
//!   chunks (capacity large enough that nobody lags);
//! - `mutex_condvar`: a `Mutex<Vec<u8>>` + `Condvar` pipe;
//! - `vec_floor`: single-threaded append of the same writes into a `Vec`,
//!   then one copy-out per reader (the floor: no concurrency at all).
//!
//! Freed memory is kept mapped (`stable_allocator`), so no implementation's
//! time depends on page faults that the process's earlier frees decide.
//!
//! Two more groups, one reader each, streaming mode, writes that wait for
//! space (`write_wait`):
//! - `mempipe_shared/<write>`: the plain `Writer` (`single`) against a
//!   `SharedWriter` written by 1 and by 2 threads (`shared_1t`,
//!   `shared_2t`, each thread writing its share of the stream);
//! - `mempipe_backpressure/<write>`: blocking back-pressure with a 64 KiB
//!   byte budget (`mempipe_wait`) against a bounded
//!   `tokio::sync::mpsc` of `Bytes` holding as many chunks as fit in the
//!   same budget (`tokio_mpsc_bytes`, `blocking_send` / `blocking_recv`).
//!
//! Throughput is bytes delivered to all readers (written bytes x readers).
//! Threads are spawned per iteration; the clock starts at a barrier after
//! they exist and stops when all have joined.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use notification_queue::mempipe::{Limits, Reader, pipe};
use notification_queue::{Config, NotificationQueue};
use std::hint::black_box;

#[path = "common/pipes.rs"]
mod pipes;
use pipes::{
    Mode, READ_BUF, TOTAL, broadcast_once, data, floor_once, mempipe_once, stable_allocator, timed,
};
use std::sync::{Arc, Condvar, Mutex};
use std::thread;
use std::time::Duration;

#[derive(Default)]
struct LockedPipe {
    state: Mutex<(Vec<u8>, bool)>,
    cv: Condvar,
}

fn condvar_once(src: &[u8], write: usize, readers: usize) -> Duration {
    let p = Arc::new(LockedPipe::default());
    let writer_pipe = p.clone();
    timed(
        readers,
        |_| {
            let p = p.clone();
            Box::new(move || {
                let mut buf = vec![0u8; READ_BUF];
                let mut pos = 0;
                loop {
                    let mut g = p.state.lock().unwrap();
                    while g.0.len() == pos && !g.1 {
                        g = p.cv.wait(g).unwrap();
                    }
                    if g.0.len() == pos {
                        break;
                    }
                    let k = (g.0.len() - pos).min(READ_BUF);
                    buf[..k].copy_from_slice(&g.0[pos..pos + k]);
                    drop(g);
                    black_box(&buf);
                    pos += k;
                }
                assert_eq!(pos, TOTAL);
            })
        },
        move || {
            for chunk in src.chunks(write) {
                writer_pipe.state.lock().unwrap().0.extend_from_slice(chunk);
                writer_pipe.cv.notify_all();
            }
            writer_pipe.state.lock().unwrap().1 = true;
            writer_pipe.cv.notify_all();
        },
    )
}

fn bench(c: &mut Criterion) {
    stable_allocator();
    let src = data();
    for readers in [1usize, 3, 8] {
        let mut g = c.benchmark_group(format!("mempipe/{readers}r"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(500))
            .measurement_time(Duration::from_millis(1500))
            .throughput(Throughput::Bytes((TOTAL * readers) as u64));
        for write in [16usize, 4 << 10, 64 << 10] {
            let src = &src[..];
            g.bench_function(BenchmarkId::new("keep", write), |b| {
                b.iter_custom(|n| {
                    (0..n)
                        .map(|_| mempipe_once(src, write, readers, Mode::Keep))
                        .sum()
                })
            });
            if write == 16 && cfg!(feature = "std") {
                g.bench_function(BenchmarkId::new("keep_bufwriter", write), |b| {
                    b.iter_custom(|n| {
                        (0..n)
                            .map(|_| mempipe_once(src, write, readers, Mode::KeepBuffered))
                            .sum()
                    })
                });
            }
            g.bench_function(BenchmarkId::new("stream", write), |b| {
                b.iter_custom(|n| {
                    (0..n)
                        .map(|_| mempipe_once(src, write, readers, Mode::Stream))
                        .sum()
                })
            });
            g.bench_function(BenchmarkId::new("tokio_broadcast", write), |b| {
                b.iter_custom(|n| (0..n).map(|_| broadcast_once(src, write, readers)).sum())
            });
            g.bench_function(BenchmarkId::new("mutex_condvar", write), |b| {
                b.iter_custom(|n| (0..n).map(|_| condvar_once(src, write, readers)).sum())
            });
            g.bench_function(BenchmarkId::new("vec_floor", write), |b| {
                b.iter_custom(|n| (0..n).map(|_| floor_once(src, write, readers)).sum())
            });
        }
        g.finish();
    }
}

/// Reads `r` to EOF, copying every byte out; returns the count.
fn read_all(mut r: Reader) -> usize {
    let mut buf = vec![0u8; READ_BUF];
    let mut n = 0;
    loop {
        match r.read(&mut buf).unwrap() {
            0 => return n,
            k => n += k,
        }
        black_box(&buf);
    }
}

fn waiting_pipe(budget: u64) -> (NotificationQueue, Limits) {
    let q = NotificationQueue::new(Config::default());
    (q, Limits::default().max_bytes(budget).segment_size(4 << 10))
}

/// `threads == 0`: the plain writer; else a `SharedWriter` on that many
/// threads.
fn shared_once(src: &[u8], write: usize, threads: usize) -> Duration {
    let (q, limits) = waiting_pipe(256 << 10);
    let (mut w, f) = pipe(&q, "bench", limits).unwrap();
    let r = Mutex::new(Some(f.reader().unwrap()));
    drop(f);
    timed(
        1,
        |_| {
            let r = r.lock().unwrap().take().unwrap();
            Box::new(move || assert_eq!(read_all(r), TOTAL))
        },
        move || {
            if threads == 0 {
                for chunk in src.chunks(write) {
                    let mut c = chunk;
                    while !c.is_empty() {
                        c = &c[w.write_wait(c).unwrap()..];
                    }
                }
                w.close().unwrap();
                return;
            }
            let w = w.into_shared();
            thread::scope(|s| {
                for part in src.chunks(TOTAL / threads) {
                    let w = w.clone();
                    s.spawn(move || {
                        for chunk in part.chunks(write) {
                            let mut c = chunk;
                            while !c.is_empty() {
                                c = &c[w.write_wait(c).unwrap()..];
                            }
                        }
                    });
                }
            });
            w.close().unwrap();
        },
    )
}

const BUDGET: usize = 64 << 10;

fn backpressure_once(src: &[u8], write: usize) -> Duration {
    let (q, limits) = waiting_pipe(BUDGET as u64);
    let (w, f) = pipe(&q, "bench", limits).unwrap();
    let r = Mutex::new(Some(f.reader().unwrap()));
    drop(f);
    let w = Mutex::new(Some(w));
    timed(
        1,
        |_| {
            let r = r.lock().unwrap().take().unwrap();
            Box::new(move || assert_eq!(read_all(r), TOTAL))
        },
        || {
            let mut w = w.lock().unwrap().take().unwrap();
            for chunk in src.chunks(write) {
                let mut c = chunk;
                while !c.is_empty() {
                    c = &c[w.write_wait(c).unwrap()..];
                }
            }
            w.close().unwrap();
        },
    )
}

fn mpsc_once(src: &[u8], write: usize) -> Duration {
    let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>((BUDGET / write).max(1));
    let rx = Mutex::new(Some(rx));
    timed(
        1,
        |_| {
            let mut rx = rx.lock().unwrap().take().unwrap();
            Box::new(move || {
                let mut buf = vec![0u8; READ_BUF];
                let mut n = 0;
                while let Some(b) = rx.blocking_recv() {
                    buf[..b.len()].copy_from_slice(&b);
                    black_box(&buf);
                    n += b.len();
                }
                assert_eq!(n, TOTAL);
            })
        },
        move || {
            for chunk in src.chunks(write) {
                tx.blocking_send(Bytes::copy_from_slice(chunk)).unwrap();
            }
        },
    )
}

fn bench_wait(c: &mut Criterion) {
    let src = data();
    let src = &src[..];
    for write in [16usize, 4 << 10] {
        let mut g = c.benchmark_group(format!("mempipe_shared/{write}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(1500))
            .throughput(Throughput::Bytes(TOTAL as u64));
        for (name, threads) in [("single", 0), ("shared_1t", 1), ("shared_2t", 2)] {
            g.bench_function(name, |b| {
                b.iter_custom(|n| (0..n).map(|_| shared_once(src, write, threads)).sum())
            });
        }
        g.finish();
        let mut g = c.benchmark_group(format!("mempipe_backpressure/{write}"));
        g.sample_size(10)
            .warm_up_time(Duration::from_millis(300))
            .measurement_time(Duration::from_millis(1500))
            .throughput(Throughput::Bytes(TOTAL as u64));
        g.bench_function("mempipe_wait", |b| {
            b.iter_custom(|n| (0..n).map(|_| backpressure_once(src, write)).sum())
        });
        g.bench_function("tokio_mpsc_bytes", |b| {
            b.iter_custom(|n| (0..n).map(|_| mpsc_once(src, write)).sum())
        });
        g.finish();
    }
}

criterion_group!(benches, bench, bench_wait);
criterion_main!(benches);
