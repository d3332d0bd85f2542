//! [`PipeStorage`]: where a pipe's bytes are kept besides its buffer.

use super::EIO;
use super::event::valid_errno;

/// Storage a writer hands every write to, in order, before readers can see
/// it, and flushes on close (a key-value store, a file, a log).
///
/// The writer is generic over it; the default [`NoStorage`] does nothing
/// and compiles away, so a plain pipe pays nothing. An error (an errno in
/// `1..=4095`; anything else counts as `EIO`) fails the writer with that
/// errno: the write (or close) returns [`PipeError::Storage`], later writes
/// [`PipeError::Failed`], and readers drain what was committed before it,
/// then get [`PipeError::BrokenPipe`] carrying it. A write the storage
/// refused is not seen by any reader.
///
/// [`PipeError::Storage`]: super::PipeError::Storage
/// [`PipeError::Failed`]: super::PipeError::Failed
/// [`PipeError::BrokenPipe`]: super::PipeError::BrokenPipe
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
/// use notification_queue::mempipe::{pipe_with_storage, Limits, PipeError, PipeStorage};
///
/// #[derive(Debug, Default)]
/// struct Kv { saved: Vec<u8>, flushed: bool }
/// impl PipeStorage for Kv {
///     fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<(), i32> {
///         assert_eq!(offset, self.saved.len() as u64);
///         self.saved.extend_from_slice(bytes);
///         Ok(())
///     }
///     fn flush(&mut self) -> Result<(), i32> {
///         self.flushed = true;
///         Ok(())
///     }
/// }
///
/// let q = NotificationQueue::new(Config::default());
/// let (mut w, f) = pipe_with_storage(&q, "kv", Limits::default(), Kv::default()).unwrap();
/// let _r = f.reader().unwrap();
/// w.write(b"persist me").unwrap();
/// w.close().unwrap();
/// assert_eq!(w.storage().saved, b"persist me");
/// assert!(w.storage().flushed);
/// ```
pub trait PipeStorage {
    /// Keeps `bytes`, the stream from `offset` on (each call continues
    /// where the previous one ended). `Err(errno)` refuses them.
    fn append(&mut self, offset: u64, bytes: &[u8]) -> Result<(), i32>;

    /// Makes everything kept durable; called once, on close.
    fn flush(&mut self) -> Result<(), i32> {
        Ok(())
    }
}

/// No storage besides the pipe's own buffer (the default).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct NoStorage;

impl PipeStorage for NoStorage {
    #[inline(always)]
    fn append(&mut self, _offset: u64, _bytes: &[u8]) -> Result<(), i32> {
        Ok(())
    }
}

/// A storage errno as the writer's: outside `1..=4095` it is `EIO`.
pub(super) fn storage_errno(errno: i32) -> i32 {
    if valid_errno(errno) { errno } else { EIO }
}
