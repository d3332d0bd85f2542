//! The pipe's typed errors and how they map onto errno values,
//! `embedded_io::ErrorKind` and `std::io::ErrorKind`.
//!
//! Every failure a pipe operation can return is one [`PipeError`] variant;
//! nothing on the pipe's public API panics. The mapping follows POSIX pipes:
//! writing to a closed writer is `EBADF`, a reader that drained a failed
//! writer and a writer whose readers are all gone both see `EPIPE`
//! (`BrokenPipe`), and a writer in its own error state returns the errno it
//! was given. No variant maps to `Interrupted`, so `std`'s retry loops
//! (`write_all`, `read_to_end`) never spin on a pipe error.

use crate::QueueError;
use core::fmt;

/// `EBADF`: write after close.
pub const EBADF: i32 = 9;
/// `EPIPE`: broken pipe.
pub const EPIPE: i32 = 32;
/// `ENOSPC`: the pipe's byte limit is reached.
pub const ENOSPC: i32 = 28;
/// `EINVAL`: invalid limits.
pub const EINVAL: i32 = 22;
/// `ETIMEDOUT`: a timed read's or write's timeout or deadline passed.
pub const ETIMEDOUT: i32 = 110;
/// `EMFILE`: the pipe's reader limit is reached.
pub const EMFILE: i32 = 24;
/// `EIO`: the queue refused an operation the pipe needed.
pub const EIO: i32 = 5;
/// `ENXIO`: the producer ended without creating the pipe's writer.
pub const ENXIO: i32 = 6;
/// `EEXIST`: the pipe's writer exists already.
pub const EEXIST: i32 = 17;
/// `ENOMEM`: the allocator refused memory the pipe needed.
pub const ENOMEM: i32 = 12;

/// Why a pipe operation failed.
///
/// ```
/// use notification_queue::mempipe::{PipeError, EBADF};
///
/// let e = PipeError::Closed;
/// assert_eq!(e.errno(), EBADF);
/// assert_eq!(embedded_io::Error::kind(&e), embedded_io::ErrorKind::BrokenPipe);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PipeError {
    /// This end was closed (`EBADF`): a write after the writer's close, a
    /// read after the reader's close, or a second close.
    Closed,
    /// A write after the writer's own [`set_error`](super::Writer::set_error):
    /// the errno it was given.
    Failed {
        /// The writer's errno.
        errno: i32,
    },
    /// Broken pipe (`EPIPE`). For a reader: the writer failed and every byte
    /// it wrote has been read; `writer_errno` carries the writer's errno.
    /// For a writer: at least one reader existed (or no reader can join any
    /// more) and every reader has gone; `writer_errno` is `None`. The writer
    /// then stays failed with `EPIPE`.
    BrokenPipe {
        /// The failed writer's errno, if the writer failed.
        writer_errno: Option<i32>,
    },
    /// This reader's own error ([`Reader::set_error`](super::Reader::set_error)).
    /// No data was consumed.
    Reader {
        /// The reader's errno.
        errno: i32,
    },
    /// Nothing of the write fits under the pipe's byte limit (`ENOSPC`).
    /// In streaming mode this clears as readers advance; while every byte
    /// is kept (new readers may still join) it never would, so the writer
    /// then fails with `ENOSPC`.
    Full {
        /// The limit in bytes ([`Limits::max_bytes`](super::Limits::max_bytes)).
        limit: u64,
    },
    /// [`Limits::max_readers`](super::Limits::max_readers) readers are alive.
    ReaderLimit {
        /// The configured limit.
        limit: usize,
    },
    /// A limit is zero or out of range (`EINVAL`).
    InvalidLimit {
        /// Which limit.
        name: &'static str,
        /// The value given.
        value: u64,
    },
    /// A timed read or write reached its timeout or deadline with nothing
    /// done.
    TimedOut,
    /// An errno outside `1..=`[`MAX_ERRNO`](super::MAX_ERRNO) was given to
    /// [`Writer::set_error`](super::Writer::set_error) or
    /// [`Reader::set_error`](super::Reader::set_error) (`EINVAL`). Nothing
    /// changed.
    InvalidErrno {
        /// The errno given.
        errno: i32,
    },
    /// The allocator refused memory the operation needed (`ENOMEM`), or the
    /// size asked for does not fit the address space. Nothing changed: a
    /// pipe is not created, a write writes nothing.
    OutOfMemory {
        /// Bytes of the refused allocation (saturated at `usize::MAX`).
        bytes: usize,
    },
    /// The writer's [`PipeStorage`](super::PipeStorage) refused a write or
    /// its flush on close: the writer failed with this errno.
    Storage {
        /// The storage's errno.
        errno: i32,
    },
    /// A [`PipeTable`](super::PipeTable) key's producer ended without
    /// creating its writer (`ENXIO`).
    NoWriter,
    /// A [`PipeTable`](super::PipeTable) key's writer exists already
    /// (`EEXIST`).
    Exists,
    /// The notification queue refused an operation: the handle limit when
    /// the pipe is created, or the queue's memory budget
    /// ([`QueueError::MemoryBudget`], `ENOMEM`) when the pipe is created or
    /// a write needs a new segment; like [`OutOfMemory`](Self::OutOfMemory)
    /// that changed nothing (no pipe, nothing of the write written, the
    /// writer still open). Reads never see it: readers do not wait on the
    /// queue.
    Queue(QueueError),
}

impl PipeError {
    /// The errno this error corresponds to.
    pub fn errno(&self) -> i32 {
        match *self {
            Self::Closed => EBADF,
            Self::Failed { errno } | Self::Reader { errno } | Self::Storage { errno } => errno,
            Self::BrokenPipe { .. } => EPIPE,
            Self::Full { .. } => ENOSPC,
            Self::ReaderLimit { .. } => EMFILE,
            Self::InvalidLimit { .. } | Self::InvalidErrno { .. } => EINVAL,
            Self::TimedOut => ETIMEDOUT,
            Self::OutOfMemory { .. } | Self::Queue(QueueError::MemoryBudget { .. }) => ENOMEM,
            Self::Queue(_) => EIO,
            Self::NoWriter => ENXIO,
            Self::Exists => EEXIST,
        }
    }
}

impl From<QueueError> for PipeError {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
}

impl fmt::Display for PipeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Closed => f.write_str("write after close (EBADF)"),
            Self::Failed { errno } => write!(f, "writer failed with errno {errno}"),
            Self::BrokenPipe {
                writer_errno: Some(e),
            } => write!(f, "broken pipe: writer failed with errno {e}"),
            Self::BrokenPipe { writer_errno: None } => f.write_str("broken pipe: no readers left"),
            Self::Reader { errno } => write!(f, "reader failed with errno {errno}"),
            Self::Full { limit } => write!(f, "pipe byte limit reached ({limit})"),
            Self::ReaderLimit { limit } => write!(f, "pipe reader limit reached ({limit})"),
            Self::InvalidLimit { name, value } => write!(f, "invalid pipe limit {name} = {value}"),
            Self::TimedOut => f.write_str("pipe operation timed out"),
            Self::InvalidErrno { errno } => write!(f, "invalid errno {errno} (EINVAL)"),
            Self::OutOfMemory { bytes } => write!(f, "out of memory allocating {bytes} bytes"),
            Self::Queue(e) => write!(f, "notification queue: {e}"),
            Self::Storage { errno } => write!(f, "pipe storage failed with errno {errno}"),
            Self::NoWriter => f.write_str("the producer ended without creating the writer (ENXIO)"),
            Self::Exists => f.write_str("the pipe's writer exists already (EEXIST)"),
        }
    }
}

impl core::error::Error for PipeError {}

impl embedded_io::Error for PipeError {
    fn kind(&self) -> embedded_io::ErrorKind {
        use embedded_io::ErrorKind as K;
        match self {
            Self::Closed | Self::BrokenPipe { .. } => K::BrokenPipe,
            Self::Full { .. }
            | Self::ReaderLimit { .. }
            | Self::OutOfMemory { .. }
            | Self::Queue(QueueError::MemoryBudget { .. }) => K::OutOfMemory,
            Self::InvalidLimit { .. } | Self::InvalidErrno { .. } => K::InvalidInput,
            Self::TimedOut => K::TimedOut,
            Self::Failed { .. } | Self::Reader { .. } | Self::Queue(_) => K::Other,
            Self::NoWriter => K::NotConnected,
            Self::Exists => K::AlreadyExists,
            Self::Storage { .. } => K::Other,
        }
    }
}
