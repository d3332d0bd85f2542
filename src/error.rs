//! Typed errors. Every failure reachable from the public API is one of these;
//! nothing in the crate panics on bad input.

use core::fmt;

/// Why a queue operation was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum QueueError {
    /// The handle was never issued by this queue, or it was unregistered
    /// (its slot may since have been reused by a new handle).
    StaleHandle,
    /// The handle was unregistered while the operation was waiting.
    Closed,
    /// A blocking wait reached its timeout or deadline before a notify.
    Timeout,
    /// `Config::max_handles` handles are registered already.
    HandleLimit {
        /// The configured limit.
        limit: usize,
    },
    /// `Config::max_waiters_per_handle` waits are pending on this handle.
    WaiterLimit {
        /// The configured limit.
        limit: usize,
    },
    /// `Config::max_subscribers_per_handle` subscriptions exist on this handle.
    SubscriberLimit {
        /// The configured limit.
        limit: usize,
    },
    /// A capacity of zero, or above `Config::max_subscriber_capacity`.
    InvalidCapacity {
        /// The capacity that was asked for.
        requested: usize,
        /// The largest capacity this queue accepts.
        max: usize,
    },
    /// No handle is registered under this key in a
    /// [`KeyedQueue`](crate::KeyedQueue): never registered, or unregistered
    /// (possibly while the operation ran).
    UnknownKey,
    /// A handle is registered under this key already
    /// ([`KeyedQueue::register`](crate::KeyedQueue::register)).
    DuplicateKey,
    /// The operation would take the bytes the queue holds for its clients
    /// past [`Config::memory_budget`](crate::Config::memory_budget); it
    /// changed nothing. Room comes back as handles' waits, subscriptions,
    /// pipes and keys are freed (see [`Stats::budget`](crate::Stats::budget)).
    MemoryBudget {
        /// Bytes the operation asked for.
        requested: usize,
        /// The configured budget.
        limit: usize,
    },
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::StaleHandle => f.write_str("stale or foreign handle"),
            Self::Closed => f.write_str("handle was unregistered"),
            Self::Timeout => f.write_str("wait timed out"),
            Self::HandleLimit { limit } => write!(f, "handle limit reached ({limit})"),
            Self::WaiterLimit { limit } => write!(f, "waiter limit per handle reached ({limit})"),
            Self::SubscriberLimit { limit } => {
                write!(f, "subscriber limit per handle reached ({limit})")
            }
            Self::InvalidCapacity { requested, max } => {
                write!(f, "invalid capacity {requested} (must be 1..={max})")
            }
            Self::UnknownKey => f.write_str("no handle is registered under this key"),
            Self::DuplicateKey => f.write_str("a handle is registered under this key already"),
            Self::MemoryBudget { requested, limit } => write!(
                f,
                "memory budget exceeded ({requested} more bytes would pass the budget of {limit})"
            ),
        }
    }
}

impl core::error::Error for QueueError {}

/// Why [`Subscription::try_recv`](crate::Subscription::try_recv) returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TryRecvError {
    /// Nothing buffered right now.
    Empty,
    /// This many values were lost (overwritten or rejected) since the last
    /// receive; the next receive goes on with what is buffered.
    Lagged(u64),
    /// The handle was unregistered and everything buffered was received.
    Closed,
}

/// Why [`Recv`](crate::Recv) (or a blocking receive without timeout) returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecvError {
    /// This many values were lost since the last receive.
    Lagged(u64),
    /// The handle was unregistered and everything buffered was received.
    Closed,
}

/// Why [`Subscription::recv_timeout`](crate::Subscription::recv_timeout) / [`Subscription::recv_deadline`](crate::Subscription::recv_deadline)
/// returned no value.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RecvTimeoutError {
    /// This many values were lost since the last receive.
    Lagged(u64),
    /// The handle was unregistered and everything buffered was received.
    Closed,
    /// Nothing arrived before the timeout or deadline.
    Timeout,
}

/// Values lost before the next item of a subscription's `Stream`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lagged(pub u64);

impl fmt::Display for TryRecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Empty => f.write_str("subscription buffer is empty"),
            Self::Lagged(n) => write!(f, "subscriber lagged: {n} values lost"),
            Self::Closed => f.write_str("subscription closed"),
        }
    }
}

impl fmt::Display for RecvError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lagged(n) => write!(f, "subscriber lagged: {n} values lost"),
            Self::Closed => f.write_str("subscription closed"),
        }
    }
}

impl fmt::Display for RecvTimeoutError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lagged(n) => write!(f, "subscriber lagged: {n} values lost"),
            Self::Closed => f.write_str("subscription closed"),
            Self::Timeout => f.write_str("receive timed out"),
        }
    }
}

impl fmt::Display for Lagged {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "subscriber lagged: {} values lost", self.0)
    }
}

impl core::error::Error for TryRecvError {}
impl core::error::Error for RecvError {}
impl core::error::Error for RecvTimeoutError {}
impl core::error::Error for Lagged {}

impl From<RecvError> for RecvTimeoutError {
    fn from(e: RecvError) -> Self {
        match e {
            RecvError::Lagged(n) => Self::Lagged(n),
            RecvError::Closed => Self::Closed,
        }
    }
}
