//! [`MergedReader`]: several pipes read as one stream, in order.

use super::{PipeError, Reader};
use alloc::collections::VecDeque;

/// Reads a list of pipes as one stream: each pipe is drained to its EOF,
/// then the next one starts; EOF comes after the last. A pipe's error (its
/// writer failed, or the reader's own error) is passed through as it is,
/// and stays (as the pipe's own reader's does) until
/// [`skip`](Self::skip) moves on to the next pipe.
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
/// use notification_queue::mempipe::{pipe, Limits, MergedReader, PipeError};
///
/// let q = NotificationQueue::new(Config::default());
/// let (mut w1, f1) = pipe(&q, "a", Limits::default()).unwrap();
/// let (mut w2, f2) = pipe(&q, "b", Limits::default()).unwrap();
/// let mut m = MergedReader::new([f1.reader().unwrap(), f2.reader().unwrap()]);
/// w2.write(b"world").unwrap();
/// w2.close().unwrap();
/// w1.write(b"hello ").unwrap();
/// w1.close().unwrap();
/// let (mut out, mut buf) = (Vec::new(), [0u8; 4]);
/// loop {
///     match m.read(&mut buf).unwrap() {
///         0 => break, // EOF of the last pipe
///         n => out.extend_from_slice(&buf[..n]),
///     }
/// }
/// assert_eq!(out, b"hello world");
/// ```
#[derive(Debug, Default)]
pub struct MergedReader {
    readers: VecDeque<Reader>,
}

impl MergedReader {
    /// A reader over `readers`, in this order.
    pub fn new(readers: impl IntoIterator<Item = Reader>) -> Self {
        Self {
            readers: readers.into_iter().collect(),
        }
    }

    /// Appends a pipe after the others.
    pub fn push(&mut self, reader: Reader) {
        self.readers.push_back(reader);
    }

    /// Pipes not yet drained (the current one included).
    pub fn remaining(&self) -> usize {
        self.readers.len()
    }

    /// The pipe being read now.
    pub fn current(&self) -> Option<&Reader> {
        self.readers.front()
    }

    /// Drops (closes) the current pipe and moves on to the next; `false`
    /// if there was none.
    pub fn skip(&mut self) -> bool {
        self.readers.pop_front().is_some()
    }

    /// [`Reader::try_read`] across the pipes: `Ok(None)` if the current
    /// pipe has nothing yet, `Ok(Some(0))` after the last pipe's EOF (or
    /// for an empty `buf`).
    pub fn try_read(&mut self, buf: &mut [u8]) -> Result<Option<usize>, PipeError> {
        self.each(buf, Some(0), |r, b| r.try_read(b), |n| *n == Some(0))
    }

    /// [`Reader::read`] across the pipes: `Ok(0)` only after the last
    /// pipe's EOF (or for an empty `buf`).
    pub fn read(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        self.each(buf, 0, |r, b| r.read(b), |n| *n == 0)
    }

    /// The async form of [`read`](Self::read). Cancel-safe, as
    /// [`Reader::read_async`].
    pub async fn read_async(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        loop {
            let Some(r) = self.readers.front_mut() else {
                return Ok(0);
            };
            match r.read_async(buf).await {
                Ok(0) if !buf.is_empty() => {
                    self.readers.pop_front();
                }
                other => return other,
            }
        }
    }

    /// Runs `op` on the current pipe, moving on at its EOF (`eof` of the
    /// result, for a non-empty `buf`); `end` once no pipe is left.
    pub(super) fn each<T>(
        &mut self,
        buf: &mut [u8],
        end: T,
        mut op: impl FnMut(&mut Reader, &mut [u8]) -> Result<T, PipeError>,
        eof: impl Fn(&T) -> bool,
    ) -> Result<T, PipeError> {
        loop {
            let Some(r) = self.readers.front_mut() else {
                return Ok(end);
            };
            let got = op(r, buf)?;
            if buf.is_empty() || !eof(&got) {
                return Ok(got);
            }
            self.readers.pop_front();
        }
    }
}

impl embedded_io::ErrorType for MergedReader {
    type Error = PipeError;
}

impl embedded_io::Read for MergedReader {
    fn read(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        MergedReader::read(self, buf)
    }
}

impl embedded_io_async::Read for MergedReader {
    async fn read(&mut self, buf: &mut [u8]) -> Result<usize, PipeError> {
        self.read_async(buf).await
    }
}
