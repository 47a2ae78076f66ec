//! The state store's read cache: what this process last read or wrote of recently used keys.
//!
//! The OX subscriber is the only writer of the state store's buckets, so what it wrote last is
//! what a bucket holds. Without the cache a change read its object three times (for its scope,
//! for the apply and for the DN its put replaces), rewrote the DN index every time, and a group
//! change looked up each member's DN and state twice (for its scope and for the apply).
//!
//! A fetch that overlaps a write of the same key is not cached: it may have brought the value
//! from before the write. The least recently used keys go first.

use std::collections::HashMap;
use std::future::Future;
use std::num::NonZeroUsize;
use std::sync::Mutex;

pub(super) struct Cache<V> {
    inner: Mutex<Inner<V>>,
}

struct Inner<V> {
    entries: lru::LruCache<String, V>,
    /// Keys being fetched now → (fetches, written since the first of them started).
    fetching: HashMap<String, (usize, bool)>,
}

impl<V: Clone> Cache<V> {
    pub(super) fn new(capacity: usize) -> Self {
        let capacity = NonZeroUsize::new(capacity).unwrap_or(NonZeroUsize::MIN);
        Self {
            inner: Mutex::new(Inner {
                entries: lru::LruCache::new(capacity),
                fetching: HashMap::new(),
            }),
        }
    }

    /// The value of `key`: cached, or from `fetch` (and then cached, unless written meanwhile).
    pub(super) async fn get_or_fetch<E, Fut>(
        &self,
        key: &str,
        fetch: impl FnOnce() -> Fut,
    ) -> Result<V, E>
    where
        Fut: Future<Output = Result<V, E>>,
    {
        {
            let mut inner = self.lock();
            if let Some(value) = inner.entries.get(key) {
                return Ok(value.clone());
            }
            inner.fetching.entry(key.to_owned()).or_default().0 += 1;
        }
        let fetched = fetch().await;
        let mut inner = self.lock();
        let written_meanwhile = match inner.fetching.get_mut(key) {
            Some((fetches, written)) => {
                let written = *written;
                *fetches -= 1;
                if *fetches == 0 {
                    inner.fetching.remove(key);
                }
                written
            }
            None => true,
        };
        if let (Ok(value), false) = (&fetched, written_meanwhile) {
            inner.entries.put(key.to_owned(), value.clone());
        }
        fetched
    }

    /// The cached value of `key`, if any.
    #[cfg(test)]
    fn peek(&self, key: &str) -> Option<V> {
        self.lock().entries.peek(key).cloned()
    }

    /// Records a write of `key`: what the bucket holds now, or `None` when that is not known
    /// (the write failed).
    pub(super) fn written(&self, key: &str, now: Option<V>) {
        let mut inner = self.lock();
        if let Some((_, written)) = inner.fetching.get_mut(key) {
            *written = true;
        }
        match now {
            Some(now) => {
                inner.entries.put(key.to_owned(), now);
            }
            None => {
                inner.entries.pop(key);
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<V>> {
        crate::locks::lock(&self.inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn fetch(cache: &Cache<u64>, key: &str, value: u64) -> u64 {
        cache
            .get_or_fetch(key, || async move { Ok::<_, ()>(value) })
            .await
            .unwrap()
    }

    #[tokio::test]
    async fn a_fetch_that_overlaps_a_write_does_not_replace_what_was_written() {
        let cache = Cache::new(8);
        let (fetch_started, write_done) = (tokio::sync::Notify::new(), tokio::sync::Notify::new());
        let slow_fetch = cache.get_or_fetch("a", || async {
            fetch_started.notify_one();
            write_done.notified().await;
            // Fetched from before the write.
            Ok::<_, ()>(1)
        });
        let write = async {
            fetch_started.notified().await;
            cache.written("a", Some(2));
            write_done.notify_one();
        };
        let (fetched, ()) = tokio::join!(slow_fetch, write);
        assert_eq!(fetched, Ok(1));
        assert_eq!(cache.peek("a"), Some(2));

        // Once no fetch overlaps a write, fetched values are cached.
        assert_eq!(fetch(&cache, "b", 5).await, 5);
        assert_eq!(fetch(&cache, "b", 6).await, 5, "served from the cache");
    }

    #[tokio::test]
    async fn a_failed_write_or_fetch_leaves_nothing_cached() {
        let cache = Cache::new(8);
        cache.written("a", Some(1));
        cache.written("a", None);
        assert_eq!(cache.peek("a"), None);
        let failed = cache
            .get_or_fetch("b", || async { Err::<u64, _>("down") })
            .await;
        assert_eq!(failed, Err("down"));
        assert_eq!(cache.peek("b"), None);
    }

    #[tokio::test]
    async fn the_least_recently_used_key_goes_first() {
        let cache = Cache::new(2);
        cache.written("a", Some(1));
        cache.written("b", Some(2));
        assert_eq!(fetch(&cache, "a", 0).await, 1);
        cache.written("c", Some(3));
        assert_eq!(cache.peek("b"), None);
        assert_eq!(cache.peek("a"), Some(1));
    }
}
