//! The timed blocking forms of the client types (`std` only: they need a
//! clock). The untimed ones (`Wait::wait`, `Recv::wait`) are in every
//! build.

use super::subscription::Subscription;
use super::wait::Wait;
use crate::error::{QueueError, RecvTimeoutError};
use crate::state::Notified;
use std::time::{Duration, Instant};

impl Wait<'_> {
    /// Blocks for at most `timeout`; [`QueueError::Timeout`] if it elapses.
    pub fn wait_timeout(self, timeout: Duration) -> Result<Notified, QueueError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.block(Some(deadline)),
            None => self.block(None),
        }
    }

    /// Blocks until `deadline`; [`QueueError::Timeout`] if it passes.
    pub fn wait_deadline(self, deadline: Instant) -> Result<Notified, QueueError> {
        self.block(Some(deadline))
    }
}

impl Subscription {
    /// Blocks the thread for the next value, at most `timeout`.
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue, RecvTimeoutError};
    /// use std::time::Duration;
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let mut sub = queue.subscribe(h, 8, "").unwrap();
    /// let t = Duration::from_millis(1);
    /// assert_eq!(sub.recv_timeout(t), Err(RecvTimeoutError::Timeout));
    /// queue.notify(h, 2).unwrap();
    /// assert_eq!(sub.recv_timeout(t), Ok(2));
    /// ```
    pub fn recv_timeout(&mut self, timeout: Duration) -> Result<i64, RecvTimeoutError> {
        match Instant::now().checked_add(timeout) {
            Some(deadline) => self.block(Some(deadline)),
            None => self.block(None),
        }
    }

    /// Blocks the thread for the next value until `deadline`.
    ///
    /// ```
    /// use notification_queue::{Config, NotificationQueue, RecvTimeoutError};
    /// use std::time::Instant;
    /// let queue = NotificationQueue::new(Config::default());
    /// let h = queue.register("h").unwrap();
    /// let mut sub = queue.subscribe(h, 8, "").unwrap();
    /// assert_eq!(sub.recv_deadline(Instant::now()), Err(RecvTimeoutError::Timeout));
    /// ```
    pub fn recv_deadline(&mut self, deadline: Instant) -> Result<i64, RecvTimeoutError> {
        self.block(Some(deadline))
    }
}
