//! The client types: what a caller holds while it waits ([`wait::Wait`])
//! or receives ([`subscription::Subscription`]). They act on the shared
//! state (`state`) and never on each other.

pub(crate) mod subscription;
#[cfg(feature = "std")]
mod timed;
pub(crate) mod wait;
