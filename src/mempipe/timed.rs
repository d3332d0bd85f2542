//! The timed blocking forms of the pipe (`std` only: they need a clock).
//! The untimed ones (`read`, `write_wait`, `open_reader`) are in every
//! build.

#[cfg(not(notification_queue_loom))]
use super::SharedWriter;
use super::{MergedReader, PipeError, PipeStorage, PipeTable, Reader, Writer};
use core::hash::Hash;
use std::time::{Duration, Instant};

impl Reader {
    /// [`read`](Self::read) waiting at most `timeout`
    /// ([`PipeError::TimedOut`]).
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, PipeError> {
        self.read_blocking(buf, Instant::now().checked_add(timeout))
    }

    /// [`read`](Self::read) waiting until `deadline` at most
    /// ([`PipeError::TimedOut`]).
    pub fn read_deadline(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, PipeError> {
        self.read_blocking(buf, Some(deadline))
    }
}

impl<S: PipeStorage> Writer<S> {
    /// [`write_wait`](Self::write_wait) waiting at most `timeout`
    /// ([`PipeError::TimedOut`], nothing written).
    pub fn write_timeout(&mut self, buf: &[u8], timeout: Duration) -> Result<usize, PipeError> {
        self.write_blocking(buf, Instant::now().checked_add(timeout))
    }

    /// [`write_wait`](Self::write_wait) waiting until `deadline` at most
    /// ([`PipeError::TimedOut`], nothing written).
    pub fn write_deadline(&mut self, buf: &[u8], deadline: Instant) -> Result<usize, PipeError> {
        self.write_blocking(buf, Some(deadline))
    }
}

// The shared writer is not part of the loom build.
#[cfg(not(notification_queue_loom))]
impl<S: PipeStorage> SharedWriter<S> {
    /// [`write_wait`](Self::write_wait) waiting at most `timeout`.
    pub fn write_timeout(&self, buf: &[u8], timeout: Duration) -> Result<usize, PipeError> {
        self.write_blocking(buf, Instant::now().checked_add(timeout))
    }

    /// [`write_wait`](Self::write_wait) waiting until `deadline` at most.
    pub fn write_deadline(&self, buf: &[u8], deadline: Instant) -> Result<usize, PipeError> {
        self.write_blocking(buf, Some(deadline))
    }
}

impl MergedReader {
    /// [`read`](Self::read) waiting at most `timeout` in all.
    pub fn read_timeout(&mut self, buf: &mut [u8], timeout: Duration) -> Result<usize, PipeError> {
        match Instant::now().checked_add(timeout) {
            Some(d) => self.read_deadline(buf, d),
            None => self.read(buf),
        }
    }

    /// [`read`](Self::read) waiting until `deadline` at most.
    pub fn read_deadline(&mut self, buf: &mut [u8], deadline: Instant) -> Result<usize, PipeError> {
        self.each(buf, 0, |r, b| r.read_deadline(b, deadline), |n| *n == 0)
    }
}

impl<K: Hash + Eq + Clone> PipeTable<K> {
    /// [`open_reader`](Self::open_reader) waiting until `deadline` at most
    /// ([`PipeError::TimedOut`]).
    pub fn open_reader_deadline(&self, key: &K, deadline: Instant) -> Result<Reader, PipeError> {
        self.open_blocking(key, Some(deadline))
    }
}
