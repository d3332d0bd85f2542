//! The primitives a queue is made of, each knowing nothing of the queue:
//! - [`budget`]: the memory budget every client allocation is charged to.
//! - [`eventcount`]: the state word of a slot (generation, sequence, flags)
//!   and the waiter lists; why no wakeup is lost.
//! - [`ring`]: one subscriber's bounded ring, with its exact lag count.
//! - [`slots`]: the slot table a [`slots::Handle`] points into, holding a
//!   state word, a waiter list and a subscriber list per slot.

pub(crate) mod budget;
pub(crate) mod eventcount;
pub(crate) mod ring;
pub(crate) mod slots;
