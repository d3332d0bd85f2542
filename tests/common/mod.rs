//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Wake, Waker};

/// A waker that counts how often it was woken.
#[derive(Default)]
pub struct CountingWaker(pub AtomicUsize);

impl Wake for CountingWaker {
    fn wake(self: Arc<Self>) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
}

impl CountingWaker {
    pub fn new() -> (Arc<Self>, Waker) {
        let w = Arc::new(Self::default());
        (w.clone(), Waker::from(w))
    }
    pub fn count(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

/// A waker that panics when woken.
pub struct PanickingWaker;

impl Wake for PanickingWaker {
    fn wake(self: Arc<Self>) {
        panic!("this waker panics on purpose");
    }
}

/// Polls a future once with `waker`.
pub fn poll_once<F: std::future::Future + Unpin>(
    f: &mut F,
    waker: &Waker,
) -> std::task::Poll<F::Output> {
    let mut cx = Context::from_waker(waker);
    std::pin::Pin::new(f).poll(&mut cx)
}
