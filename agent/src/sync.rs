//! Locking for the short, never-across-await critical sections of the agent (eBPF map handles,
//! caches, registries).

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `m`; a lock poisoned by a panic elsewhere still yields its data (every structure
/// behind these locks stays consistent between statements).
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}
