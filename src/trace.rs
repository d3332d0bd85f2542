//! Structured events for the optional `tracing` feature: every event the
//! crate emits is one function here, so call sites carry no `cfg`s. Without
//! the feature each function is empty and `#[inline(always)]`: nothing is
//! compiled in, not even the hint look-ups (they are closures that are only
//! called when an event is enabled).
//!
//! Targets and levels (the fields are listed in the README):
//! - `notification_queue::handle`: register / unregister (`DEBUG`).
//! - `notification_queue::limit`: a limit or the memory budget refused an
//!   operation (`WARN`).
//! - `notification_queue::waker`: wakers panicked while being woken (`WARN`).
//! - `notification_queue::subscription`: a receive reported lag (`DEBUG`).
//! - `notification_queue::pipe`: a pipe writer failed (`WARN`) or closed
//!   (`DEBUG`), a reader was failed (`WARN`), a pipe operation was refused
//!   by a limit or the allocator (`WARN`).
//!
//! Callers emit only while holding no lock of the crate: a `tracing`
//! subscriber is client code.

// Which events a build uses depends on its features (the pipe table and the
// keyed layer are std-only; the budget hook awaits its caller).
#![allow(dead_code)]

use crate::error::QueueError;
use crate::sync::Hint;
use core::fmt;

/// A handle's identity as events record it (`queue`, `index`,
/// `generation`). Layer 0 cannot name `Handle`; it converts into this.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HandleId {
    pub(crate) queue: u64,
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

/// The fields of a refused queue operation: its kind and the numbers the
/// error carries.
fn refusal(err: &QueueError) -> (&'static str, Option<u64>, Option<u64>) {
    match *err {
        QueueError::HandleLimit { limit } => ("handle_limit", Some(limit as u64), None),
        QueueError::WaiterLimit { limit } => ("waiter_limit", Some(limit as u64), None),
        QueueError::SubscriberLimit { limit } => ("subscriber_limit", Some(limit as u64), None),
        QueueError::InvalidCapacity { requested, max } => {
            ("invalid_capacity", Some(max as u64), Some(requested as u64))
        }
        QueueError::MemoryBudget { requested, limit } => {
            ("budget", Some(limit as u64), Some(requested as u64))
        }
        _ => ("other", None, None),
    }
}

#[cfg(feature = "tracing")]
mod imp {
    use super::{HandleId, Hint, QueueError, fmt, refusal};
    use tracing::{Level, enabled, event};

    fn split(h: Option<HandleId>) -> (Option<u64>, Option<u32>, Option<u32>) {
        match h {
            Some(h) => (Some(h.queue), Some(h.index), Some(h.generation)),
            None => (None, None, None),
        }
    }

    /// A handle was registered.
    pub(crate) fn registered(h: impl Into<HandleId>, hint: &Hint) {
        let h = h.into();
        event!(
            target: "notification_queue::handle",
            Level::DEBUG,
            queue = h.queue,
            index = h.index,
            generation = h.generation,
            hint = &**hint,
            "handle registered"
        );
    }

    /// A handle was unregistered (`hint`: its hint, taken out of the
    /// registry).
    pub(crate) fn unregistered(h: impl Into<HandleId>, hint: Option<&Hint>) {
        let h = h.into();
        event!(
            target: "notification_queue::handle",
            Level::DEBUG,
            queue = h.queue,
            index = h.index,
            generation = h.generation,
            hint = hint.map(|s| &**s),
            "handle unregistered"
        );
    }

    /// A limit refused a queue operation. `h` is the handle it was for
    /// (none for `register`); `hint` finds its hint, called only if the
    /// event is enabled.
    pub(crate) fn refused(
        h: Option<HandleId>,
        hint: impl FnOnce() -> Option<Hint>,
        err: &QueueError,
    ) {
        if !enabled!(target: "notification_queue::limit", Level::WARN) {
            return;
        }
        let hint = hint();
        let (kind, limit, requested) = refusal(err);
        let (queue, index, generation) = split(h);
        event!(
            target: "notification_queue::limit",
            Level::WARN,
            kind,
            limit,
            requested,
            queue,
            index,
            generation,
            hint = hint.as_deref(),
            error = %err,
            "operation refused by a limit"
        );
    }

    /// The memory budget refused an allocation of `requested` bytes for
    /// `category` (`held` of `budget` bytes in use).
    pub(crate) fn budget_refused(
        h: Option<HandleId>,
        hint: impl FnOnce() -> Option<Hint>,
        category: &'static str,
        requested: usize,
        held: usize,
        budget: usize,
    ) {
        if !enabled!(target: "notification_queue::limit", Level::WARN) {
            return;
        }
        let hint = hint();
        let (queue, index, generation) = split(h);
        event!(
            target: "notification_queue::limit",
            Level::WARN,
            kind = "budget",
            category,
            requested = requested as u64,
            held = held as u64,
            limit = budget as u64,
            queue,
            index,
            generation,
            hint = hint.as_deref(),
            "operation refused by the memory budget"
        );
    }

    /// `count` wakers of `h` panicked while being woken (caught; the others
    /// still woke).
    pub(crate) fn wakers_panicked(
        h: impl Into<HandleId>,
        hint: impl FnOnce() -> Option<Hint>,
        count: u64,
    ) {
        if !enabled!(target: "notification_queue::waker", Level::WARN) {
            return;
        }
        let h = h.into();
        let hint = hint();
        event!(
            target: "notification_queue::waker",
            Level::WARN,
            count,
            queue = h.queue,
            index = h.index,
            generation = h.generation,
            hint = hint.as_deref(),
            "wakers panicked"
        );
    }

    /// A subscriber of `h` (with hint `subscriber`) was told it lost `lost`
    /// values.
    pub(crate) fn lagged(
        h: impl Into<HandleId>,
        hint: impl FnOnce() -> Option<Hint>,
        subscriber: &Hint,
        lost: u64,
    ) {
        if !enabled!(target: "notification_queue::subscription", Level::DEBUG) {
            return;
        }
        let h = h.into();
        let hint = hint();
        event!(
            target: "notification_queue::subscription",
            Level::DEBUG,
            lost,
            queue = h.queue,
            index = h.index,
            generation = h.generation,
            hint = hint.as_deref(),
            subscriber = &**subscriber,
            "subscriber lagged"
        );
    }

    /// A pipe's writer failed with `errno` (`cause`: `set_error`,
    /// `broken_pipe`, `full`, `storage`).
    pub(crate) fn pipe_failed(
        h: impl Into<HandleId>,
        hint: &Hint,
        errno: i32,
        cause: &'static str,
    ) {
        let h = h.into();
        event!(
            target: "notification_queue::pipe",
            Level::WARN,
            errno,
            cause,
            queue = h.queue,
            index = h.index,
            generation = h.generation,
            hint = &**hint,
            "pipe writer failed"
        );
    }

    /// A pipe's writer closed cleanly.
    pub(crate) fn pipe_closed(h: impl Into<HandleId>, hint: &Hint) {
        let h = h.into();
        event!(
            target: "notification_queue::pipe",
            Level::DEBUG,
            queue = h.queue,
            index = h.index,
            generation = h.generation,
            hint = &**hint,
            "pipe writer closed"
        );
    }

    /// One reader of a pipe was failed with `errno` by its owner.
    pub(crate) fn pipe_reader_failed(h: impl Into<HandleId>, hint: &Hint, reader: u64, errno: i32) {
        let h = h.into();
        event!(
            target: "notification_queue::pipe",
            Level::WARN,
            errno,
            reader,
            queue = h.queue,
            index = h.index,
            generation = h.generation,
            hint = &**hint,
            "pipe reader failed"
        );
    }

    /// A limit or the allocator refused a pipe operation (`h`: none while
    /// the pipe is being made); `errno` is the error's.
    pub(crate) fn pipe_refused(
        h: Option<HandleId>,
        hint: &Hint,
        errno: i32,
        err: &(impl fmt::Display + ?Sized),
    ) {
        let (queue, index, generation) = split(h);
        event!(
            target: "notification_queue::pipe",
            Level::WARN,
            errno,
            queue,
            index,
            generation,
            hint = &**hint,
            error = %err,
            "pipe operation refused"
        );
    }

    /// An event kept to be emitted once a lock is released.
    #[derive(Debug, Default)]
    pub(crate) struct Deferred(Option<Kept>);

    #[derive(Debug)]
    enum Kept {
        Registered(HandleId, Hint),
        Refused(QueueError, Hint),
    }

    impl Deferred {
        /// `registered(h, hint)`, later.
        pub(crate) fn registered(h: impl Into<HandleId>, hint: &Hint) -> Self {
            if !enabled!(target: "notification_queue::handle", Level::DEBUG) {
                return Self(None);
            }
            Self(Some(Kept::Registered(h.into(), hint.clone())))
        }

        /// `refused(None, hint, err)`, later (a refused register).
        pub(crate) fn refused(err: QueueError, hint: &Hint) -> Self {
            if !enabled!(target: "notification_queue::limit", Level::WARN) {
                return Self(None);
            }
            Self(Some(Kept::Refused(err, hint.clone())))
        }

        /// Emits the event. Call with no lock of the crate held.
        pub(crate) fn emit(self) {
            match self.0 {
                Some(Kept::Registered(h, hint)) => registered(h, &hint),
                Some(Kept::Refused(err, hint)) => refused(None, || Some(hint), &err),
                None => {}
            }
        }
    }
}

#[cfg(not(feature = "tracing"))]
mod imp {
    // Empty and always inlined: nothing of an event is compiled in.
    use super::{HandleId, Hint, QueueError, fmt};

    #[inline(always)]
    pub(crate) fn registered(_: impl Into<HandleId>, _: &Hint) {}
    #[inline(always)]
    pub(crate) fn unregistered(_: impl Into<HandleId>, _: Option<&Hint>) {}
    #[inline(always)]
    pub(crate) fn refused(_: Option<HandleId>, _: impl FnOnce() -> Option<Hint>, _: &QueueError) {}
    #[inline(always)]
    pub(crate) fn budget_refused(
        _: Option<HandleId>,
        _: impl FnOnce() -> Option<Hint>,
        _: &'static str,
        _: usize,
        _: usize,
        _: usize,
    ) {
    }
    #[inline(always)]
    pub(crate) fn wakers_panicked(
        _: impl Into<HandleId>,
        _: impl FnOnce() -> Option<Hint>,
        _: u64,
    ) {
    }
    #[inline(always)]
    pub(crate) fn lagged(
        _: impl Into<HandleId>,
        _: impl FnOnce() -> Option<Hint>,
        _: &Hint,
        _: u64,
    ) {
    }
    #[inline(always)]
    pub(crate) fn pipe_failed(_: impl Into<HandleId>, _: &Hint, _: i32, _: &'static str) {}
    #[inline(always)]
    pub(crate) fn pipe_closed(_: impl Into<HandleId>, _: &Hint) {}
    #[inline(always)]
    pub(crate) fn pipe_reader_failed(_: impl Into<HandleId>, _: &Hint, _: u64, _: i32) {}
    #[inline(always)]
    pub(crate) fn pipe_refused(
        _: Option<HandleId>,
        _: &Hint,
        _: i32,
        _: &(impl fmt::Display + ?Sized),
    ) {
    }

    /// An event kept to be emitted once a lock is released (nothing here).
    #[derive(Debug, Default)]
    pub(crate) struct Deferred;

    impl Deferred {
        #[inline(always)]
        pub(crate) fn registered(_: impl Into<HandleId>, _: &Hint) -> Self {
            Self
        }
        #[inline(always)]
        pub(crate) fn refused(_: QueueError, _: &Hint) -> Self {
            Self
        }
        #[inline(always)]
        pub(crate) fn emit(self) {}
    }
}

pub(crate) use imp::*;
