//! The emulated server's capacity, so that a client's concurrency can be shown to find the knee
//! and to protect OX (`docs/ox-emulator.md`, "Capacity"):
//!
//! - **workers**: at most this many SOAP calls are worked on at once (their latency and their
//!   state change); calls beyond it queue, as in OX's limited pool of worker threads — latency
//!   climbs, throughput does not;
//! - **overload beyond**: a call arriving while this many are in the server (worked on or
//!   queued) is refused at once with HTTP 503 and `Retry-After: 1`, what the servlet container
//!   in front of an overloaded OX answers — a transient fault.
//!
//! Both are off by default (unlimited, like the emulator always was).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The capacity switches (`--workers`, `--overload-beyond`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CapacitySettings {
    /// Calls worked on at once; `None`: unlimited.
    pub workers: Option<usize>,
    /// Calls in the server (worked on or queued) beyond which a new one is refused; `None`:
    /// never.
    pub overload_beyond: Option<usize>,
}

/// The server's capacity at run time.
pub(crate) struct Capacity {
    settings: CapacitySettings,
    workers: Option<Arc<Semaphore>>,
    /// Calls in the server now (worked on or waiting for a worker).
    inside: Arc<AtomicUsize>,
}

/// A call refused because the server is overloaded.
#[derive(Debug)]
pub(crate) struct Overloaded;

/// One call's place in the server: counted while it is inside, and its worker (if workers
/// are limited); dropped when the answer is ready.
pub(crate) struct Slot {
    _inside: Inside,
    _worker: Option<OwnedSemaphorePermit>,
}

/// Counts one call as inside the server until dropped.
struct Inside(Arc<AtomicUsize>);

impl Drop for Inside {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Capacity {
    pub(crate) fn new(settings: CapacitySettings) -> Self {
        Self {
            settings,
            workers: settings.workers.map(|n| Arc::new(Semaphore::new(n.max(1)))),
            inside: Arc::new(AtomicUsize::new(0)),
        }
    }

    /// Admits one call: refused if the server is overloaded, else it waits for a worker.
    pub(crate) async fn enter(&self) -> Result<Slot, Overloaded> {
        let before = self.inside.fetch_add(1, Ordering::SeqCst);
        // Counted first, and uncounted when dropped, also when refused.
        let inside = Inside(self.inside.clone());
        if self
            .settings
            .overload_beyond
            .is_some_and(|limit| before >= limit)
        {
            return Err(Overloaded);
        }
        let worker = match &self.workers {
            // Never closed: the semaphore lives as long as the server.
            Some(workers) => Some(
                workers
                    .clone()
                    .acquire_owned()
                    .await
                    .map_err(|_| Overloaded)?,
            ),
            None => None,
        };
        Ok(Slot {
            _inside: inside,
            _worker: worker,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[tokio::test]
    async fn calls_beyond_the_workers_wait_for_one() {
        let capacity = Capacity::new(CapacitySettings {
            workers: Some(1),
            overload_beyond: None,
        });
        let first = capacity.enter().await.unwrap();
        let second = tokio::time::timeout(Duration::from_millis(50), capacity.enter()).await;
        assert!(second.is_err(), "the second call queues");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), capacity.enter()).await;
        assert!(second.is_ok(), "and is worked on once the first is done");
    }

    #[tokio::test]
    async fn a_call_beyond_the_overload_limit_is_refused_and_counts_nothing() {
        let capacity = Capacity::new(CapacitySettings {
            workers: None,
            overload_beyond: Some(2),
        });
        let a = capacity.enter().await.unwrap();
        let _b = capacity.enter().await.unwrap();
        assert!(capacity.enter().await.is_err());
        assert!(capacity.enter().await.is_err());
        drop(a);
        assert!(capacity.enter().await.is_ok());
    }
}
