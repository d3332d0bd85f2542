//! The MemPipe throughput scenarios shared by `benches/mempipe.rs`
//! (criterion) and `benches/ratios.rs` (interleaved rounds): one writer,
//! `readers` readers, 1 MiB written in `write`-byte writes, every reader
//! copying out every byte; see `benches/mempipe.rs` for the contenders.
#![allow(dead_code)] // each bench binary uses a different subset

use bytes::Bytes;
use notification_queue::mempipe::{Limits, PipeError, pipe};
use notification_queue::{Config, NotificationQueue};
use std::hint::black_box;
use std::sync::{Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant};

pub const TOTAL: usize = 1 << 20;
pub const READ_BUF: usize = 64 << 10;

pub fn data() -> Vec<u8> {
    (0..TOTAL).map(|i| (i % 251) as u8).collect()
}

/// Runs `readers` reader closures and a writer closure on threads, timing
/// from a common barrier to the last join.
pub fn timed<R, W>(readers: usize, reader: R, writer: W) -> Duration
where
    R: Fn(usize) -> Box<dyn FnOnce() + Send>,
    W: FnOnce() + Send,
{
    let go = Arc::new(Barrier::new(readers + 1));
    thread::scope(|s| {
        let hs: Vec<_> = (0..readers)
            .map(|i| {
                let f = reader(i);
                let go = go.clone();
                s.spawn(move || {
                    go.wait();
                    f();
                })
            })
            .collect();
        go.wait();
        let t0 = Instant::now();
        writer();
        for h in hs {
            h.join().unwrap();
        }
        t0.elapsed()
    })
}

/// How the writer of [`mempipe_once`] writes.
#[derive(Clone, Copy, PartialEq)]
pub enum Mode {
    Keep,
    KeepBuffered,
    Stream,
}

pub fn mempipe_once(src: &[u8], write: usize, readers: usize, mode: Mode) -> Duration {
    let streaming = mode == Mode::Stream;
    let q = NotificationQueue::new(Config::default());
    let limit = if streaming { 256 << 10 } else { TOTAL as u64 };
    let limits = Limits::default().max_bytes(limit).segment_size(16 << 10);
    let (mut w, f) = pipe(&q, "bench", limits).unwrap();
    let rs: Vec<_> = (0..readers).map(|_| f.reader().unwrap()).collect();
    let keep_factory = if streaming {
        drop(f);
        None
    } else {
        Some(f)
    };
    let rs = Mutex::new(rs.into_iter().map(Some).collect::<Vec<_>>());
    let d = timed(
        readers,
        |i| {
            let mut r = rs.lock().unwrap()[i].take().unwrap();
            Box::new(move || {
                let mut buf = vec![0u8; READ_BUF];
                let mut n = 0;
                loop {
                    match r.read(&mut buf).unwrap() {
                        0 => break,
                        k => n += k,
                    }
                    black_box(&buf);
                }
                assert_eq!(n, TOTAL);
            })
        },
        move || {
            // `std::io::Write` for the pipe needs the `std` feature (the
            // row is only registered with it).
            #[cfg(feature = "std")]
            if mode == Mode::KeepBuffered {
                // Keeping every byte, the pipe is never full.
                let mut bw = std::io::BufWriter::with_capacity(4096, w);
                for chunk in src.chunks(write) {
                    std::io::Write::write_all(&mut bw, chunk).unwrap();
                }
                let mut w = bw.into_inner().map_err(|e| e.into_error()).unwrap();
                w.close().unwrap();
                return;
            }
            for chunk in src.chunks(write) {
                let mut c = chunk;
                while !c.is_empty() {
                    match w.write(c) {
                        Ok(k) => c = &c[k..],
                        Err(PipeError::Full { .. }) => thread::yield_now(),
                        Err(e) => panic!("{e}"),
                    }
                }
            }
            w.close().unwrap();
        },
    );
    drop(keep_factory);
    d
}

pub fn broadcast_once(src: &[u8], write: usize, readers: usize) -> Duration {
    let msgs = TOTAL.div_ceil(write);
    let (tx, _) = tokio::sync::broadcast::channel::<Bytes>(msgs.next_power_of_two());
    let rxs = Mutex::new(
        (0..readers)
            .map(|_| Some(tx.subscribe()))
            .collect::<Vec<_>>(),
    );
    timed(
        readers,
        |i| {
            let mut rx = rxs.lock().unwrap()[i].take().unwrap();
            Box::new(move || {
                let mut buf = vec![0u8; READ_BUF];
                let mut n = 0;
                while let Ok(b) = rx.blocking_recv() {
                    buf[..b.len()].copy_from_slice(&b);
                    black_box(&buf);
                    n += b.len();
                }
                assert_eq!(n, TOTAL);
            })
        },
        move || {
            for chunk in src.chunks(write) {
                tx.send(Bytes::copy_from_slice(chunk)).unwrap();
            }
            drop(tx);
        },
    )
}

pub fn floor_once(src: &[u8], write: usize, readers: usize) -> Duration {
    let t0 = Instant::now();
    let mut v = Vec::new();
    for chunk in src.chunks(write) {
        v.extend_from_slice(chunk);
    }
    let mut buf = vec![0u8; READ_BUF];
    for _ in 0..readers {
        for c in v.chunks(READ_BUF) {
            buf[..c.len()].copy_from_slice(c);
            black_box(&buf);
        }
    }
    black_box(&v);
    t0.elapsed()
}

/// Keeps glibc's allocator from handing memory back to the kernel between
/// iterations, so every implementation (the floor's `Vec`, the pipe's
/// segments, tokio's `Bytes`) appends into memory that is already mapped,
/// whatever the process freed before. This rules out page faults as a
/// difference between runs; it did not remove the swing of `vec_floor` at
/// 16 B (0.4-0.5 ms when its group runs alone, 1.4-2 ms in full runs on a
/// shared host), whose cause is still open.
pub fn stable_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: `mallopt` only sets allocator parameters; called before the
    // benchmark threads start.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, i32::MAX);
    }
}
