//! Reclamation: lists unlinked from a slot are freed through the epoch
//! collector once no pinned reader can still see them.

use super::{Arc, Guard};

/// A raw `Arc` pointer handed to the epoch collector.
struct Retired<T>(*const T);
// SAFETY: `T: Send + Sync`, so the `Arc<T>` the pointer stands for may be
// dropped on any thread; it is turned back into an `Arc` exactly once.
unsafe impl<T: Send + Sync> Send for Retired<T> {}

/// Drops a slot's reference to a list (`Arc::into_raw`; null is ignored)
/// once no pinned reader can hold it. Used for waiter and subscriber lists.
///
/// Flushes, which runs other code's deferred destructors (they may re-enter
/// this queue): never call it while holding a lock of the crate (checked in
/// debug builds), and pin for it only after unlocking.
pub(crate) fn retire<T: Send + Sync + 'static>(list: *const T, guard: &Guard) {
    retire_with(list, guard, drop);
}

/// [`retire`], handing the slot's reference to `then` (instead of dropping
/// it) once no pinned reader can hold the pointer: a pool takes it back.
pub(crate) fn retire_with<T: Send + Sync + 'static>(
    list: *const T,
    guard: &Guard,
    then: impl FnOnce(Arc<T>) + Send + 'static,
) {
    if list.is_null() {
        return;
    }
    let retired = Retired(list);
    // SAFETY: `list` was unlinked from its slot by the caller's swap/CAS, so
    // readers that can still see it are pinned now; the deferred function
    // runs after they unpin. The slot's strong count is turned back into an
    // `Arc` exactly once, there.
    unsafe {
        guard.defer_unchecked(move || {
            let r = retired;
            then(Arc::from_raw(r.0));
        });
    }
    // Retiring is cold (unregister, list replacement): hand the thread's
    // deferred drops to the global queue now rather than when its local bag
    // fills, so retired lists are freed promptly instead of up to a bag (64
    // lists) late per thread. (Not nested: see `sync::flush`.)
    crate::sync::flush(guard);
}
