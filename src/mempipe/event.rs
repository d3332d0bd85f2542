//! What the writer's handle is notified with, and how to read it back.
//!
//! This module is the only place the encoding lives: the writer builds its
//! arguments with [`PipeEvent::to_arg`] and subscribers decode them with
//! [`PipeEvent::from_arg`].
//!
//! | event                         | argument                          |
//! |-------------------------------|-----------------------------------|
//! | a commit of `n` bytes         | `n` (saturated at `i64::MAX`), `>= 0` |
//! | failure with errno `e`        | `-e`, `e` in `1..=`[`MAX_ERRNO`]  |
//! | clean close                   | [`CLOSED_ARG`] (`i64::MIN`)       |
//!
//! The three ranges do not overlap, so a supervisor tells a clean close from
//! any failure (`EPERM` included) without holding a reader. Values outside
//! them (`-4096 ..= i64::MIN + 1`) are never sent by a pipe.

/// The notification argument type of the queue.
pub type NotifyArg = i64;

/// The largest errno a pipe accepts (as Linux: `1..=4095`).
pub const MAX_ERRNO: i32 = 4095;

/// The argument of a clean close.
pub const CLOSED_ARG: NotifyArg = NotifyArg::MIN;

/// One notification of a pipe writer's handle, decoded.
///
/// ```
/// use notification_queue::{Config, NotificationQueue};
/// use notification_queue::mempipe::{pipe, Limits, PipeEvent};
///
/// let q = NotificationQueue::new(Config::default());
/// let (mut w, f) = pipe(&q, "p", Limits::default()).unwrap();
/// let _r = f.reader().unwrap();
/// let mut sub = q.subscribe(w.handle(), 4, "supervisor").unwrap();
/// w.write(b"abc").unwrap();
/// w.set_error(1).unwrap(); // EPERM
/// assert_eq!(PipeEvent::from_arg(sub.try_recv().unwrap()), Some(PipeEvent::Data(3)));
/// assert_eq!(PipeEvent::from_arg(sub.try_recv().unwrap()), Some(PipeEvent::Failed(1)));
/// assert_eq!(PipeEvent::from_arg(i64::MIN), Some(PipeEvent::Closed));
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PipeEvent {
    /// A write committed this many bytes (saturated at `i64::MAX`).
    Data(u64),
    /// The writer closed cleanly.
    Closed,
    /// The writer failed with this errno (`1..=`[`MAX_ERRNO`]).
    Failed(i32),
}

impl PipeEvent {
    /// Decodes a notification argument; `None` for a value no pipe sends.
    pub fn from_arg(arg: NotifyArg) -> Option<Self> {
        match arg {
            CLOSED_ARG => Some(Self::Closed),
            0.. => Some(Self::Data(arg as u64)),
            e if e >= -i64::from(MAX_ERRNO) => Some(Self::Failed((-e) as i32)),
            _ => None,
        }
    }

    /// The argument this event is notified with. An errno outside
    /// `1..=`[`MAX_ERRNO`] (never accepted by a pipe) encodes as `EIO`.
    #[inline]
    pub fn to_arg(self) -> NotifyArg {
        match self {
            Self::Data(n) => NotifyArg::try_from(n).unwrap_or(NotifyArg::MAX),
            Self::Closed => CLOSED_ARG,
            Self::Failed(e) if valid_errno(e) => -i64::from(e),
            Self::Failed(_) => -i64::from(super::EIO),
        }
    }
}

/// Whether `errno` is one a pipe accepts (`1..=`[`MAX_ERRNO`]).
pub(super) fn valid_errno(errno: i32) -> bool {
    (1..=MAX_ERRNO).contains(&errno)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::prelude::rust_2024::*;

    #[test]
    fn roundtrip_and_disjoint() {
        for ev in [
            PipeEvent::Data(0),
            PipeEvent::Data(5),
            PipeEvent::Data(i64::MAX as u64),
            PipeEvent::Closed,
            PipeEvent::Failed(1),
            PipeEvent::Failed(MAX_ERRNO),
        ] {
            assert_eq!(PipeEvent::from_arg(ev.to_arg()), Some(ev));
        }
        assert_eq!(PipeEvent::Data(u64::MAX).to_arg(), i64::MAX);
        assert_eq!(PipeEvent::from_arg(-i64::from(MAX_ERRNO) - 1), None);
        assert_eq!(PipeEvent::from_arg(i64::MIN + 1), None);
        assert_ne!(PipeEvent::Failed(1).to_arg(), PipeEvent::Closed.to_arg());
    }
}
