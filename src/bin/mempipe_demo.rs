//! `mempipe_demo`: the old MemPipe demo, plus a throughput mode.
//!
//! Line mode (default): each stdin line, stripped of surrounding whitespace,
//! is written to the pipe until an empty line or EOF; then the writer
//! closes. Readers `r1`, `r2`, ... each read in chunks of `--chunk` bytes
//! and print every chunk as `(r1): hell`. The output is deterministic: after
//! each line the writer waits until every reader has consumed it (so chunks
//! follow line boundaries, as in the old demo where readers kept up), then
//! prints that line's chunks reader by reader (`r1`'s, then `r2`'s, ...).
//!
//! ```text
//! $ printf 'hello\nworld\n' | mempipe_demo --readers 1
//! (r1): hell
//! (r1): o
//! (r1): worl
//! (r1): d
//! ```
//!
//! Throughput mode (`--throughput`): the writer generates `--bytes` bytes in
//! writes of `--write-size`, readers copy them out in `--chunk` reads, and
//! the demo reports MB/s per reader and in aggregate (bytes delivered to all
//! readers / slowest reader's time). The factory is dropped once the readers
//! exist (streaming mode, bounded memory) unless `--keep` is given; the
//! writer retries (yielding) while the byte limit is full.
//!
//! Bad flags print the usage and exit with code 2.

use notification_queue::mempipe::{Limits, PipeError, Reader, Writer, pipe};
use notification_queue::{Config, NotificationQueue};
use std::io::{BufRead, Write as _};
use std::process::ExitCode;
use std::sync::mpsc;
use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Instant;

const USAGE: &str = "\
usage: mempipe_demo [--readers N] [--chunk N] [--throughput [--bytes N]
                    [--write-size N] [--limit N] [--keep]] [--help]

Line mode (default): stdin lines (stripped) are written to a MemPipe until an
empty line or EOF; readers r1..rN print every chunk as `(r1): hell`.

  --readers N     number of readers (default 3, 1..=1024)
  --chunk N       bytes per read (default 4; 64K in throughput mode)
  --throughput    generate --bytes bytes and report MB/s instead of chunks
  --bytes N       bytes to generate in throughput mode (default 256M)
  --write-size N  bytes per write in throughput mode (default 64K)
  --limit N       pipe byte limit in throughput mode (default 16M streaming)
  --keep          keep every byte (no streaming reclamation)
  --help          this text

N accepts a K, M or G suffix (binary: 64K = 65536).";

#[derive(Debug, Clone, PartialEq)]
struct Opts {
    readers: usize,
    chunk: Option<usize>,
    throughput: bool,
    bytes: u64,
    write_size: usize,
    limit: Option<u64>,
    keep: bool,
}

fn parse_size(s: &str) -> Option<u64> {
    let (digits, mult) = match s.as_bytes().last()? {
        b'k' | b'K' => (&s[..s.len() - 1], 1u64 << 10),
        b'm' | b'M' => (&s[..s.len() - 1], 1 << 20),
        b'g' | b'G' => (&s[..s.len() - 1], 1 << 30),
        _ => (s, 1),
    };
    digits.parse::<u64>().ok()?.checked_mul(mult)
}

/// `Ok(None)` means `--help`.
fn parse(args: &[String]) -> Result<Option<Opts>, String> {
    let mut o = Opts {
        readers: 3,
        chunk: None,
        throughput: false,
        bytes: 256 << 20,
        write_size: 64 << 10,
        limit: None,
        keep: false,
    };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut value = |name: &str| -> Result<u64, String> {
            let v = it.next().ok_or_else(|| format!("{name} needs a value"))?;
            match parse_size(v) {
                Some(n) if n > 0 => Ok(n),
                _ => Err(format!("{name}: bad value {v:?}")),
            }
        };
        match a.as_str() {
            "--help" | "-h" => return Ok(None),
            "--throughput" => o.throughput = true,
            "--keep" => o.keep = true,
            "--readers" => {
                let n = value("--readers")?;
                if n > 1024 {
                    return Err("--readers: at most 1024".into());
                }
                o.readers = n as usize;
            }
            "--chunk" => o.chunk = Some(to_usize(value("--chunk")?, "--chunk")?),
            "--bytes" => o.bytes = value("--bytes")?,
            "--write-size" => o.write_size = to_usize(value("--write-size")?, "--write-size")?,
            "--limit" => o.limit = Some(value("--limit")?),
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(o))
}

fn to_usize(n: u64, name: &str) -> Result<usize, String> {
    match usize::try_from(n) {
        Ok(n) if n <= 1 << 30 => Ok(n),
        _ => Err(format!("{name}: at most 1G")),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let opts = match parse(&args) {
        Ok(Some(o)) => o,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("mempipe_demo: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    let result = if opts.throughput {
        throughput(&opts)
    } else {
        lines(&opts)
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mempipe_demo: {e}");
            ExitCode::FAILURE
        }
    }
}

fn queue_for(readers: usize) -> NotificationQueue {
    NotificationQueue::new(Config::default().max_waiters_per_handle(readers.max(1024)))
}

fn write_all(w: &mut Writer, mut buf: &[u8]) -> Result<(), PipeError> {
    while !buf.is_empty() {
        match w.write(buf) {
            Ok(n) => buf = buf.get(n..).unwrap_or(&[]),
            // Streaming mode: space comes back as readers advance.
            Err(PipeError::Full { .. }) => thread::yield_now(),
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

enum Msg {
    Chunk(usize, Vec<u8>),
    End(usize, Result<(), PipeError>),
}

fn lines(o: &Opts) -> Result<(), String> {
    let chunk = o.chunk.unwrap_or(4);
    let queue = queue_for(o.readers);
    let limits = Limits::default().max_readers(o.readers);
    let (mut writer, factory) = pipe(&queue, "mempipe_demo", limits).map_err(|e| e.to_string())?;
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for i in 0..o.readers {
        let mut r = factory.reader().map_err(|e| e.to_string())?;
        let tx = tx.clone();
        threads.push(thread::spawn(move || {
            let mut buf = vec![0u8; chunk];
            let end = loop {
                match r.read(&mut buf) {
                    Ok(0) => break Ok(()),
                    Ok(n) => {
                        let _ = tx.send(Msg::Chunk(i, buf.get(..n).unwrap_or(&[]).to_vec()));
                    }
                    Err(e) => break Err(e),
                }
            };
            let _ = tx.send(Msg::End(i, end));
        }));
    }
    drop(tx);
    let mut got = vec![0u64; o.readers];
    let mut ended: Vec<Option<Result<(), PipeError>>> = (0..o.readers).map(|_| None).collect();
    let mut pending: Vec<Vec<Vec<u8>>> = vec![Vec::new(); o.readers];
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut flush = |pending: &mut Vec<Vec<Vec<u8>>>| -> Result<(), String> {
        for (i, chunks) in pending.iter_mut().enumerate() {
            for c in chunks.drain(..) {
                writeln!(out, "(r{}): {}", i + 1, String::from_utf8_lossy(&c))
                    .map_err(|e| e.to_string())?;
            }
        }
        out.flush().map_err(|e| e.to_string())
    };
    let recv_until = |target: u64,
                      got: &mut Vec<u64>,
                      ended: &mut Vec<Option<Result<(), PipeError>>>,
                      pending: &mut Vec<Vec<Vec<u8>>>| {
        while (0..got.len()).any(|i| ended[i].is_none() && got[i] < target) {
            match rx.recv() {
                Ok(Msg::Chunk(i, c)) => {
                    got[i] += c.len() as u64;
                    pending[i].push(c);
                }
                Ok(Msg::End(i, r)) => ended[i] = Some(r),
                Err(_) => break,
            }
        }
    };
    let stdin = std::io::stdin();
    let mut input = stdin.lock();
    let mut line = Vec::new();
    loop {
        line.clear();
        let n = input
            .read_until(b'\n', &mut line)
            .map_err(|e| e.to_string())?;
        let text = line.trim_ascii();
        if n == 0 || text.is_empty() {
            break;
        }
        write_all(&mut writer, text).map_err(|e| format!("write: {e}"))?;
        // Lockstep: every reader consumes this line before the next write.
        recv_until(writer.tell(), &mut got, &mut ended, &mut pending);
        flush(&mut pending)?;
    }
    writer.close();
    recv_until(u64::MAX, &mut got, &mut ended, &mut pending);
    flush(&mut pending)?;
    for t in threads {
        let _ = t.join();
    }
    for (i, e) in ended.iter().enumerate() {
        if let Some(Err(e)) = e {
            eprintln!("(r{}): error: {e}", i + 1);
        }
    }
    Ok(())
}

fn throughput(o: &Opts) -> Result<(), String> {
    let chunk = o.chunk.unwrap_or(64 << 10);
    let queue = queue_for(o.readers);
    let limit = match (o.limit, o.keep) {
        (Some(l), _) => l,
        (None, true) => o.bytes,
        (None, false) => 16 << 20,
    };
    let limits = Limits::default()
        .max_readers(o.readers)
        .max_bytes(limit)
        .segment_size(64 << 10);
    let (mut writer, factory) = pipe(&queue, "mempipe_demo", limits).map_err(|e| e.to_string())?;
    let readers: Vec<Reader> = (0..o.readers)
        .map(|_| factory.reader())
        .collect::<Result<_, _>>()
        .map_err(|e| e.to_string())?;
    if !o.keep {
        factory.seal();
    }
    let start = Arc::new(Barrier::new(o.readers + 1));
    let threads: Vec<_> = readers
        .into_iter()
        .map(|mut r| {
            let start = start.clone();
            thread::spawn(move || -> Result<(u64, f64), PipeError> {
                let mut buf = vec![0u8; chunk];
                start.wait();
                let t0 = Instant::now();
                let mut total = 0u64;
                loop {
                    match r.read(&mut buf)? {
                        0 => return Ok((total, t0.elapsed().as_secs_f64())),
                        n => total += n as u64,
                    }
                }
            })
        })
        .collect();
    let data: Vec<u8> = (0..o.write_size).map(|i| (i % 251) as u8).collect();
    start.wait();
    let t0 = Instant::now();
    let mut left = o.bytes;
    while left > 0 {
        let n = left.min(data.len() as u64) as usize;
        write_all(&mut writer, data.get(..n).unwrap_or(&[])).map_err(|e| format!("write: {e}"))?;
        left -= n as u64;
    }
    let wsecs = t0.elapsed().as_secs_f64();
    let footprint = writer.footprint();
    writer.close();
    let mb = |bytes: u64, secs: f64| bytes as f64 / 1e6 / secs.max(1e-9);
    println!(
        "writer: {} bytes in {:.3} s, {:.1} MB/s (footprint at end {} KiB)",
        o.bytes,
        wsecs,
        mb(o.bytes, wsecs),
        footprint >> 10
    );
    let (mut sum, mut slowest) = (0u64, 0f64);
    for (i, t) in threads.into_iter().enumerate() {
        match t.join() {
            Ok(Ok((bytes, secs))) => {
                println!("(r{}): {bytes} bytes, {:.1} MB/s", i + 1, mb(bytes, secs));
                sum += bytes;
                slowest = slowest.max(secs);
            }
            Ok(Err(e)) => println!("(r{}): error: {e}", i + 1),
            Err(_) => println!("(r{}): panicked", i + 1),
        }
    }
    println!(
        "aggregate: {sum} bytes to {} readers, {:.1} MB/s",
        o.readers,
        mb(sum, slowest)
    );
    Ok(())
}
