//! `mempipe_demo`: the old MemPipe demo, plus a throughput mode.
//!
//! Line mode (default): each stdin line, stripped of surrounding whitespace,
//! is written to the pipe until an empty line or EOF; then the writer
//! closes. Readers `r1`, `r2`, ... each read in chunks of `--chunk` bytes
//! and print every chunk as `(r1): hell`. The output is deterministic and is
//! what readers in lockstep with the writer print: chunks follow line
//! boundaries, and each line's chunks are printed reader by reader (`r1`'s,
//! then `r2`'s, ...). Input is taken in batches of the complete lines stdin
//! already holds, so a piped file costs a few thread hand-offs in all while
//! a person typing still sees each line echoed as soon as it is entered.
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

/// One batch of input for the readers: the byte length of each line.
type Batch = Arc<[usize]>;

/// What a reader produced for one batch: its formatted chunk lines and,
/// per input line, where that line's output ends in `text`.
struct Printed {
    text: Vec<u8>,
    line_ends: Vec<usize>,
}

/// A reader thread: for each batch, reads every line's bytes from the pipe
/// in `chunk`-byte pieces (a piece never crosses a line boundary, so the
/// output does not depend on how far the writer has got) and formats them.
fn reader_loop(
    index: usize,
    mut r: Reader,
    chunk: usize,
    batches: mpsc::Receiver<Batch>,
    printed: mpsc::Sender<(usize, Result<Printed, PipeError>)>,
) -> Result<(), PipeError> {
    let mut buf = vec![0u8; chunk];
    // Every output line starts with the same prefix: formatted once.
    let prefix = format!("(r{}): ", index + 1).into_bytes();
    for batch in batches {
        let mut out = Printed {
            text: Vec::new(),
            line_ends: Vec::with_capacity(batch.len()),
        };
        let mut result = Ok(());
        'lines: for &len in batch.iter() {
            let mut left = len;
            while left > 0 {
                let want = left.min(chunk);
                let piece = buf.get_mut(..want).unwrap_or_default();
                let mut got = 0;
                while got < want {
                    let dst = piece.get_mut(got..).unwrap_or_default();
                    // What the pipe holds already, without `read`'s set-up
                    // for sleeping; `read` only when nothing is there.
                    let step = match r.try_read(dst) {
                        Ok(Some(n)) => Ok(n),
                        Ok(None) => r.read(dst),
                        Err(e) => Err(e),
                    };
                    match step {
                        Ok(0) => break,
                        Ok(n) => got += n,
                        Err(e) => {
                            result = Err(e);
                            break 'lines;
                        }
                    }
                }
                if got == 0 {
                    break 'lines; // EOF before the line ended
                }
                // The same bytes as `writeln!(.., "(r{}): {}", index + 1,
                // String::from_utf8_lossy(piece))`, without the formatting
                // machinery per chunk (most of the demo's time otherwise).
                // `from_utf8_lossy` borrows valid UTF-8: no allocation.
                let bytes = piece.get(..got).unwrap_or_default();
                out.text.extend_from_slice(&prefix);
                out.text
                    .extend_from_slice(String::from_utf8_lossy(bytes).as_bytes());
                out.text.push(b'\n');
                left -= got;
            }
            out.line_ends.push(out.text.len());
        }
        if let Err(e) = result {
            // Reported through `printed`; the reader is dropped on return,
            // so it no longer holds the stream back.
            let _ = printed.send((index, Err(e)));
            return Ok(());
        }
        if printed.send((index, Ok(out))).is_err() {
            return Ok(());
        }
    }
    // The writer has closed: everything was read, so this is EOF (or the
    // writer's error).
    loop {
        match r.read(&mut buf)? {
            0 => return Ok(()),
            _ => continue,
        }
    }
}

/// Line mode. Input is taken in batches of the complete lines stdin already
/// holds (one line at a time when a person types, thousands when a file is
/// piped in): the batch is written to the pipe in one write, every reader
/// reads it in `chunk`-byte pieces that follow line boundaries, and the
/// output is assembled line by line, reader by reader, and written with one
/// `write` and one flush per batch. So the output is exactly that of readers
/// in lockstep with the writer, while the threads meet once per batch, not
/// once per line.
fn lines(o: &Opts) -> Result<(), String> {
    let chunk = o.chunk.unwrap_or(4);
    let queue = queue_for(o.readers);
    let limits = Limits::default().max_readers(o.readers);
    let (mut writer, factory) = pipe(&queue, "mempipe_demo", limits).map_err(|e| e.to_string())?;
    let (printed_tx, printed_rx) = mpsc::channel();
    let mut feeds = Vec::with_capacity(o.readers);
    let mut threads = Vec::with_capacity(o.readers);
    for i in 0..o.readers {
        let r = factory.reader().map_err(|e| e.to_string())?;
        let (feed, batches) = mpsc::channel::<Batch>();
        feeds.push(feed);
        let printed = printed_tx.clone();
        threads.push(thread::spawn(move || {
            reader_loop(i, r, chunk, batches, printed)
        }));
    }
    drop(printed_tx);
    // Every reader exists: streaming mode, memory bounded by the unread window.
    factory.seal();

    // A larger buffer than stdin's own 8 KiB: each `read` still returns
    // only what stdin holds at that moment (a typed line, or up to 256 KiB
    // of a piped file), so batches grow only when input is already there.
    let mut input = std::io::BufReader::with_capacity(256 << 10, std::io::stdin().lock());
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    let mut partial: Vec<u8> = Vec::new();
    let mut failed: Vec<Option<PipeError>> = (0..o.readers).map(|_| None).collect();
    let mut done = false;
    while !done {
        // Complete lines in what stdin holds now (at least one read).
        let held = input.fill_buf().map_err(|e| e.to_string())?;
        let at_eof = held.is_empty();
        let take = if at_eof {
            0
        } else {
            match held.iter().rposition(|&b| b == b'\n') {
                Some(last) => last + 1,
                None => {
                    // No line end yet: keep the bytes and read on.
                    partial.extend_from_slice(held);
                    let n = held.len();
                    input.consume(n);
                    continue;
                }
            }
        };
        let mut data = std::mem::take(&mut partial);
        data.extend_from_slice(held.get(..take).unwrap_or_default());
        input.consume(take);
        let mut text = Vec::with_capacity(data.len());
        let mut lens = Vec::new();
        let mut rest: &[u8] = &data;
        while !rest.is_empty() {
            let (line, next) = match rest.iter().position(|&b| b == b'\n') {
                Some(i) => (rest.get(..i).unwrap_or_default(), rest.get(i + 1..)),
                None => (rest, None),
            };
            let line = line.trim_ascii();
            if line.is_empty() {
                done = true; // an empty line ends the input
                break;
            }
            text.extend_from_slice(line);
            lens.push(line.len());
            rest = next.unwrap_or_default();
        }
        if at_eof {
            done = true;
        }
        if lens.is_empty() {
            continue;
        }
        let batch: Batch = lens.into();
        let live: Vec<usize> = (0..o.readers).filter(|&i| failed[i].is_none()).collect();
        for &i in &live {
            let _ = feeds[i].send(batch.clone());
        }
        write_all(&mut writer, &text).map_err(|e| format!("write: {e}"))?;
        let mut printed: Vec<Option<Printed>> = (0..o.readers).map(|_| None).collect();
        for _ in &live {
            match printed_rx.recv() {
                Ok((i, Ok(p))) => printed[i] = Some(p),
                Ok((i, Err(e))) => failed[i] = Some(e),
                Err(_) => break,
            }
        }
        let mut page = Vec::with_capacity(text.len() * 4 * o.readers);
        let mut starts = vec![0usize; o.readers];
        for line in 0..batch.len() {
            for (i, p) in printed.iter().enumerate() {
                let Some(p) = p else { continue };
                let end = p.line_ends.get(line).copied().unwrap_or(p.text.len());
                page.extend_from_slice(p.text.get(starts[i]..end).unwrap_or_default());
                starts[i] = end;
            }
        }
        out.write_all(&page).map_err(|e| e.to_string())?;
        out.flush().map_err(|e| e.to_string())?;
    }
    writer.close().map_err(|e| format!("close: {e}"))?;
    drop(feeds);
    for (i, t) in threads.into_iter().enumerate() {
        let end = match t.join() {
            Ok(r) => r.err().map(|e| e.to_string()),
            Err(_) => Some("reader thread panicked".to_string()),
        };
        if let Some(e) = failed[i].take().map(|e| e.to_string()).or(end) {
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
    writer.close().map_err(|e| format!("close: {e}"))?;
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
