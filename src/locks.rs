//! Locking a mutex that another task may have poisoned.

use std::sync::{Mutex, MutexGuard, PoisonError};

/// Locks `mutex`. A panic in another task must not take the daemon (or the emulator) down, and
/// every critical section this crate has leaves the data consistent, so a poisoned lock is still
/// usable.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}
