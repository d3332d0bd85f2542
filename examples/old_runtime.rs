//! The old runtime's wait/notify pattern, on this crate.
//!
//! ```text
//! cargo run --example old_runtime
//! ```
//!
//! The old runtime (`NotificationQueueArc`) had actors that `whitelist`ed a
//! handle under an id from the runtime's own id generator, waited on it with
//! `get_lock()` + `wait_async(handle, hint, lock)` whenever their inbox was
//! empty, and were woken by worker threads calling `notify(handle, arg)`;
//! `unlist(handle)` woke them a last time with `-1`. Here the same shape
//! runs on a [`KeyedQueue<i64>`]: the ids are still the runtime's, the lock
//! dance is a snapshot taken before the inbox check, and the end of an
//! actor's handle is `Err(Closed)` instead of a `-1`. See docs/MIGRATING.md.

use notification_queue::{Config, Handle, KeyedQueue, NotificationQueue, QueueError};
use std::collections::VecDeque;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// The runtime's own id generator: the queue never chooses an actor's id.
struct IdGen(AtomicI64);

impl IdGen {
    fn next(&self) -> i64 {
        // Relaxed: ids only need to be unique.
        self.0.fetch_add(1, Ordering::Relaxed)
    }
}

/// An actor: its id and an inbox the workers push to before notifying.
struct Actor {
    id: i64,
    inbox: Mutex<VecDeque<i64>>,
}

impl Actor {
    fn drain(&self, into: &mut Vec<i64>) -> usize {
        let mut inbox = self.inbox.lock().unwrap_or_else(|e| e.into_inner());
        let n = inbox.len();
        into.extend(inbox.drain(..));
        n
    }
}

/// The actor's loop. Old code:
///
/// ```text
/// loop {
///     let lock = queue.get_lock();
///     if inbox_is_empty() {
///         queue.wait_async(handle, "inbox", lock).await;   // () even after unlist
///     }
///     ...
/// }
/// ```
async fn actor_main(keyed: Arc<KeyedQueue<i64>>, me: Arc<Actor>) -> Result<Vec<i64>, QueueError> {
    let mut got = Vec::new();
    loop {
        // 1. Snapshot (no lock), 2. check the condition, 3. wait for
        // anything after the snapshot: a notify between 2 and 3 is not lost.
        let snap = match keyed.snapshot(&me.id) {
            Ok(snap) => snap,
            Err(QueueError::UnknownKey) => break, // unlisted before we looked
            Err(e) => return Err(e),
        };
        if me.drain(&mut got) > 0 {
            continue;
        }
        let hint = format!("actor-{} inbox", me.id);
        match keyed.wait_after(snap).with_hint(hint).await {
            Ok(_notified) => {}               // something arrived
            Err(QueueError::Closed) => break, // old: woken by unlist's -1
            Err(e) => return Err(e),
        }
    }
    me.drain(&mut got); // what was pushed before the close
    Ok(got)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // old: let queue = NotificationQueueArc::new();
    let keyed = Arc::new(KeyedQueue::<i64>::new(NotificationQueue::new(
        Config::default(),
    )));
    let idgen = IdGen(AtomicI64::new(1000));

    // old: queue.whitelist(Handle::new(id), "actor-..."), once per actor.
    let actors: Vec<Arc<Actor>> = (0..3)
        .map(|_| {
            Arc::new(Actor {
                id: idgen.next(),
                inbox: Mutex::new(VecDeque::new()),
            })
        })
        .collect();
    for a in &actors {
        keyed.register(a.id, format!("actor-{}", a.id))?;
    }
    let ids: Vec<i64> = actors.iter().map(|a| a.id).collect();
    println!("registered actors {ids:?} under the runtime's own ids");
    // old: a second whitelist of one id logged a warning and overwrote it.
    println!(
        "whitelist({}) again: {:?}",
        ids[0],
        keyed.register(ids[0], "again")
    );

    let rt = tokio::runtime::Builder::new_current_thread().build()?;
    let results = rt.block_on(async {
        let tasks: Vec<_> = actors
            .iter()
            .map(|a| tokio::spawn(actor_main(keyed.clone(), a.clone())))
            .collect();

        // A worker thread: pushes to inboxes and notifies, first by key,
        // then (hot loop) through handles it looked up once.
        let (done_tx, done_rx) = tokio::sync::oneshot::channel();
        let worker = {
            let keyed = keyed.clone();
            let actors = actors.clone();
            std::thread::spawn(move || -> Result<usize, QueueError> {
                let mut sent = 0;
                for a in &actors {
                    a.inbox
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push_back(a.id * 10);
                    keyed.notify(&a.id, 1)?; // old: queue.notify(Handle::new(id), arg)
                    sent += 1;
                }
                let handles: Vec<Handle> = actors
                    .iter()
                    .map(|a| keyed.handle(&a.id))
                    .collect::<Result<_, _>>()?;
                for round in 1..=2 {
                    for (a, &h) in actors.iter().zip(&handles) {
                        a.inbox
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push_back(a.id * 10 + round);
                        keyed.queue().notify(h, 1)?;
                        sent += 1;
                    }
                }
                let _ = done_tx.send(());
                Ok(sent)
            })
        };
        let _ = done_rx.await;
        let sent = worker.join().map_err(|_| QueueError::Closed)??;
        println!("worker: {sent} messages pushed and notified");

        // old: queue.get_waits(). Let the actors reach their waits first.
        while keyed.waits().iter().any(|(_, w)| w.is_empty()) {
            tokio::task::yield_now().await;
        }
        let mut waits: Vec<(i64, Vec<String>)> = keyed
            .waits()
            .into_iter()
            .map(|(id, w)| {
                let hints = w.into_iter().filter_map(|i| i.hint).map(|h| h.to_string());
                (id, hints.collect())
            })
            .collect();
        waits.sort();
        println!("waits: {waits:?}");

        // old: queue.unlist(handle) for each actor: waiters woke with -1.
        for id in &ids {
            keyed.unregister(id)?;
        }
        let mut results = Vec::new();
        for (a, t) in actors.iter().zip(tasks) {
            let got = t.await.map_err(|_| QueueError::Closed)??;
            results.push((a.id, got));
        }
        Ok::<_, QueueError>(results)
    })?;
    for (id, got) in &results {
        println!("actor {id}: received {got:?}, then Closed");
    }

    // Typed errors where the old runtime was silent.
    println!(
        "notify({}) after unlist: {:?}",
        ids[0],
        keyed.notify(&ids[0], 1)
    );
    let old = keyed.register(ids[0], "actor, second life")?;
    keyed.unregister(&ids[0])?;
    let new = keyed.register(ids[0], "actor, third life")?;
    println!(
        "{} registered again: a new handle ({}), the old one is stale: {:?}",
        ids[0],
        old != new,
        keyed.queue().notify(old, 1)
    );
    Ok(())
}
