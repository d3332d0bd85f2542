//! Differential fuzzing of MemPipe against a `Vec<u8>` model.
//!
//! The input picks small [`Limits`] (segments of 1 to 64 bytes, a byte limit
//! of a few hundred, up to four readers, some bytes preallocated) and a
//! sequence of operations: writes of arbitrary bytes (empty ones included),
//! reads of arbitrary sizes by several readers (non-blocking, and blocking
//! with a zero timeout), reader-side `set_error` / `clear_error`, reader
//! drop and creation, sealing the factory (streaming mode, where segments
//! every reader has passed are recycled), writer `close` and `set_error`.
//!
//! The model is the stream as a `Vec<u8>`, each reader's position and
//! error, the writer's state, and the two offsets that decide the byte limit
//! (`head_base`: the first byte still held; `tail_base`: the start of the
//! segment being filled), advanced by the documented rule: in streaming
//! mode a segment is released once every live reader is strictly past its
//! end, checked whenever a segment is added or the limit is hit. Every
//! result is compared: bytes read (content included), `Ok(None)` for
//! "nothing yet", EOF only after the full drain, `BrokenPipe` carrying the
//! writer's errno, `Reader { errno }` for a reader's own error (and never for
//! the others), `Full`, `Closed`, `Failed`, writer-side `BrokenPipe` once
//! every reader is gone, `tell`, `available`, `position`, and a bound on
//! `footprint`. At the end the writer closes (or stays failed) and every
//! reader must drain exactly the model's remaining bytes, then end.
#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use notification_queue::mempipe::{Limits, PipeError, Reader, ReaderFactory, Writer, pipe};
use notification_queue::{Config, NotificationQueue};
use std::time::Duration;

#[derive(Arbitrary, Debug)]
struct Input {
    seg_shift: u8,
    max_bytes: u16,
    max_readers: u8,
    initial: u16,
    ops: Vec<Op>,
}

#[derive(Arbitrary, Debug)]
enum Op {
    Write(Vec<u8>),
    /// `try_read` by reader `.0` into a buffer of `.1 % 80` bytes.
    TryRead(u8, u8),
    /// `read_timeout(Duration::ZERO)`.
    ReadZero(u8, u8),
    NewReader,
    DropReader(u8),
    ReaderSetError(u8, i32),
    ReaderClearError(u8),
    Seal,
    Close,
    WriterSetError(i32),
    Check,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WState {
    Open,
    Closed,
    Failed(i32),
}

#[derive(Debug)]
struct MReader {
    pos: u64,
    error: Option<i32>,
}

struct Model {
    seg: u64,
    max_bytes: u64,
    max_readers: usize,
    data: Vec<u8>,
    state: WState,
    sealed: bool,
    ever: bool,
    head_base: u64,
    tail_base: u64,
    readers: Vec<Option<MReader>>,
}

impl Model {
    fn live(&self) -> usize {
        self.readers.iter().filter(|r| r.is_some()).count()
    }

    fn written(&self) -> u64 {
        self.data.len() as u64
    }

    /// The writer's `reclaim`: streaming mode only.
    fn reclaim(&mut self) {
        if !self.sealed {
            return;
        }
        let min = self
            .readers
            .iter()
            .flatten()
            .map(|r| r.pos)
            .min()
            .unwrap_or(u64::MAX);
        while self.head_base < self.tail_base && self.head_base + self.seg < min {
            self.head_base += self.seg;
        }
    }

    fn room(&self) -> u64 {
        self.max_bytes
            .saturating_sub(self.written() - self.head_base)
    }

    fn write(&mut self, buf: &[u8]) -> Result<usize, PipeError> {
        match self.state {
            WState::Open => {}
            WState::Closed => return Err(PipeError::Closed),
            WState::Failed(errno) => return Err(PipeError::Failed { errno }),
        }
        if buf.is_empty() {
            return Ok(0);
        }
        if self.live() == 0 && (self.ever || self.sealed) {
            return Err(PipeError::BrokenPipe { writer_errno: None });
        }
        let mut room = self.room();
        if room == 0 {
            self.reclaim();
            room = self.room();
            if room == 0 {
                return Err(PipeError::Full {
                    limit: self.max_bytes,
                });
            }
        }
        let n = room.min(buf.len() as u64) as usize;
        // `append`: a new segment whenever the tail one is full.
        let mut placed = self.written();
        let end = placed + n as u64;
        while placed < end {
            if placed - self.tail_base >= self.seg {
                self.reclaim();
                self.tail_base += self.seg;
            }
            let k = (self.seg - (placed - self.tail_base)).min(end - placed);
            placed += k;
        }
        self.data.extend_from_slice(&buf[..n]);
        Ok(n)
    }

    /// `try_read` of reader `i` with a buffer of `len`: the bytes read.
    fn try_read(&mut self, i: usize, len: usize) -> Result<Option<Vec<u8>>, PipeError> {
        let written = self.written();
        let state = self.state;
        let Some(r) = self.readers[i].as_mut() else {
            unreachable!()
        };
        if let Some(errno) = r.error {
            return Err(PipeError::Reader { errno });
        }
        if len == 0 {
            return Ok(Some(Vec::new()));
        }
        if r.pos >= written {
            return match state {
                WState::Open => Ok(None),
                WState::Failed(e) => Err(PipeError::BrokenPipe {
                    writer_errno: Some(e),
                }),
                WState::Closed => Ok(Some(Vec::new())),
            };
        }
        let n = ((written - r.pos) as usize).min(len);
        let out = self.data[r.pos as usize..r.pos as usize + n].to_vec();
        r.pos += n as u64;
        Ok(Some(out))
    }

    fn finish(&mut self, state: WState) {
        if self.state == WState::Open {
            self.state = state;
        }
    }
}

fn pick_reader(readers: &[Option<Reader>], i: u8) -> Option<usize> {
    if readers.is_empty() {
        return None;
    }
    let i = i as usize % readers.len();
    readers[i].as_ref().map(|_| i)
}

fn check_reader(m: &Model, readers: &[Option<Reader>], i: usize) {
    let (Some(r), Some(mr)) = (readers[i].as_ref(), m.readers[i].as_ref()) else {
        return;
    };
    assert_eq!(r.position(), mr.pos, "reader {i} position");
    assert_eq!(r.available(), m.written() - mr.pos, "reader {i} available");
    assert_eq!(r.error(), mr.error, "reader {i} error");
}

fn run(input: Input) {
    let seg = 1usize << (input.seg_shift % 7);
    let max_bytes = 1 + input.max_bytes as u64 % 300;
    let max_readers = 1 + input.max_readers as usize % 4;
    let initial = (input.initial as u64 % (max_bytes + 1)) as usize;
    let queue = NotificationQueue::new(Config::default().max_waiters_per_handle(8));
    let limits = Limits::default()
        .segment_size(seg)
        .max_bytes(max_bytes)
        .max_readers(max_readers)
        .initial_capacity(initial);
    let (writer, factory) = pipe(&queue, "fuzz", limits).expect("valid limits");
    let mut writer: Writer = writer;
    let mut factory: Option<ReaderFactory> = Some(factory);
    let mut readers: Vec<Option<Reader>> = Vec::new();
    let mut m = Model {
        seg: seg as u64,
        max_bytes,
        max_readers,
        data: Vec::new(),
        state: WState::Open,
        sealed: false,
        ever: false,
        head_base: 0,
        tail_base: 0,
        readers: Vec::new(),
    };
    // Worst case held: the limit (rounded up to segments, plus the segment
    // being filled) and the recycling pool of 4, or what was preallocated.
    let footprint_bound =
        ((max_bytes.div_ceil(seg as u64) + 2 + 4) as usize * seg).max(initial.div_ceil(seg) * seg);
    let mut buf = vec![0u8; 80];

    for op in input.ops {
        match op {
            Op::Write(bytes) => {
                let bytes = &bytes[..bytes.len().min(100)];
                let got = writer.write(bytes);
                let want = m.write(bytes);
                assert_eq!(got, want, "write of {}", bytes.len());
                assert_eq!(writer.tell(), m.written());
            }
            Op::TryRead(i, len) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                let len = len as usize % 80;
                let got = readers[i]
                    .as_mut()
                    .expect("picked")
                    .try_read(&mut buf[..len]);
                let want = m.try_read(i, len);
                match (got, want) {
                    (Ok(Some(n)), Ok(Some(bytes))) => {
                        assert_eq!(&buf[..n], &bytes[..], "reader {i} bytes");
                    }
                    (got, want) => assert_eq!(got, want.map(|o| o.map(|b| b.len()))),
                }
            }
            Op::ReadZero(i, len) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                let len = len as usize % 80;
                let got = readers[i]
                    .as_mut()
                    .expect("picked")
                    .read_timeout(&mut buf[..len], Duration::ZERO);
                let want = m.try_read(i, len);
                match (got, want) {
                    (Ok(n), Ok(Some(bytes))) => {
                        assert_eq!(&buf[..n], &bytes[..], "reader {i} bytes");
                    }
                    (Err(PipeError::TimedOut), Ok(None)) => {}
                    (Err(got), Err(want)) => assert_eq!(got, want),
                    (got, want) => panic!("read_timeout: got {got:?}, want {want:?}"),
                }
            }
            Op::NewReader => {
                let Some(f) = factory.as_ref() else { continue };
                if readers.len() >= 16 {
                    continue;
                }
                let got = f.reader();
                if m.live() >= m.max_readers {
                    assert_eq!(
                        got.map(|_| ()),
                        Err(PipeError::ReaderLimit {
                            limit: m.max_readers
                        })
                    );
                    continue;
                }
                readers.push(Some(got.expect("below the reader limit")));
                m.readers.push(Some(MReader {
                    pos: 0,
                    error: None,
                }));
                m.ever = true;
                assert_eq!(f.readers(), m.live());
            }
            Op::DropReader(i) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                readers[i] = None;
                m.readers[i] = None;
            }
            Op::ReaderSetError(i, errno) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                readers[i].as_mut().expect("picked").set_error(errno);
                m.readers[i].as_mut().expect("model").error = Some(errno);
            }
            Op::ReaderClearError(i) => {
                let Some(i) = pick_reader(&readers, i) else {
                    continue;
                };
                readers[i].as_mut().expect("picked").clear_error();
                m.readers[i].as_mut().expect("model").error = None;
            }
            Op::Seal => {
                if let Some(f) = factory.take() {
                    f.seal();
                    m.sealed = true;
                }
            }
            Op::Close => {
                writer.close();
                m.finish(WState::Closed);
            }
            Op::WriterSetError(errno) => {
                writer.set_error(errno);
                m.finish(WState::Failed(errno));
            }
            Op::Check => {}
        }
        assert_eq!(writer.tell(), m.written());
        assert_eq!(writer.is_closed(), m.state == WState::Closed);
        let err = match m.state {
            WState::Failed(e) => Some(e),
            _ => None,
        };
        assert_eq!(writer.error(), err);
        assert!(
            writer.footprint() <= footprint_bound,
            "footprint {} > {footprint_bound}",
            writer.footprint()
        );
        for i in 0..readers.len() {
            check_reader(&m, &readers, i);
        }
    }

    // The end: the writer closes (a failed one stays failed); every reader
    // clears its own error and drains exactly the rest of the stream.
    writer.close();
    m.finish(WState::Closed);
    for (i, r) in readers.iter_mut().enumerate() {
        let Some(r) = r.as_mut() else { continue };
        r.clear_error();
        let mr = m.readers[i].as_mut().expect("model");
        mr.error = None;
        let mut rest = Vec::new();
        let end = loop {
            match r.read(&mut buf) {
                Ok(0) => break Ok(()),
                Ok(n) => rest.extend_from_slice(&buf[..n]),
                Err(e) => break Err(e),
            }
        };
        assert_eq!(&rest[..], &m.data[mr.pos as usize..], "reader {i} tail");
        match m.state {
            WState::Failed(e) => assert_eq!(
                end,
                Err(PipeError::BrokenPipe {
                    writer_errno: Some(e)
                })
            ),
            _ => assert_eq!(end, Ok(())),
        }
    }
    drop(readers);
    drop(factory);
    drop(writer);
    let s = queue.stats();
    assert_eq!((s.handles, s.waiters), (0, 0));
}

fuzz_target!(|input: Input| run(input));
