//! Subscriptions (issue 4): bounded per-subscriber rings. Stub for now: the
//! queue core calls these hooks on its slow path only.

use crate::handle::Slot;
use crate::sync::{Guard, Hint};

/// The subscribers of one slot.
#[derive(Debug)]
pub(crate) struct SubscriberList {}

/// Delivers `arg` to every subscriber of `slot`; returns how many got it.
pub(crate) fn deliver(_slot: &Slot, _arg: i32, _guard: &Guard) -> usize {
    0
}

/// Ends every subscription of `slot` (the handle was unregistered).
pub(crate) fn close_all(_slot: &Slot, _guard: &Guard) {}

/// Frees the slot's subscriber list when the queue itself is dropped.
pub(crate) fn release(_slot: &Slot) {}

/// One subscription, as listed by the debug dump.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberInfo {
    /// The subscription's hint.
    pub hint: Hint,
}

/// Subscribers of `handle` for the debug dump.
pub(crate) fn infos(
    _queue: &crate::NotificationQueue,
    _handle: crate::Handle,
) -> Vec<SubscriberInfo> {
    Vec::new()
}
