//! A TTL cache for metadata (lookups, negative lookups, directory listings), LRU-bounded in
//! entries. A listing weighs as many entries as it holds, so one huge directory cannot push the
//! cache past its bound.

use std::hash::Hash;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::lru::WeightedLru;

pub struct TtlCache<K: Hash + Eq, V: Clone> {
    inner: Mutex<WeightedLru<K, (Instant, V)>>,
    ttl: Duration,
}

impl<K: Hash + Eq, V: Clone> TtlCache<K, V> {
    /// `max_entries` is the budget in entry weights; `ttl` zero disables the cache.
    pub fn new(max_entries: usize, ttl: Duration) -> Self {
        Self {
            inner: Mutex::new(WeightedLru::new(max_entries)),
            ttl,
        }
    }

    /// The value if it was stored less than the TTL ago.
    pub fn get(&self, key: &K) -> Option<V> {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let found = match inner.get(key) {
            Some((at, v)) if at.elapsed() < self.ttl => Some(v.clone()),
            Some(_) => {
                inner.remove(key);
                None
            }
            None => None,
        };
        let m = crate::metrics::global();
        let counter = if found.is_some() {
            &m.meta_cache_hits
        } else {
            &m.meta_cache_misses
        };
        crate::metrics::Metrics::add(counter, 1);
        found
    }

    pub fn insert(&self, key: K, value: V, weight: usize) {
        if self.ttl.is_zero() {
            return;
        }
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        inner.insert(key, (Instant::now(), value), weight.max(1));
    }

    /// Replace a fresh entry's value with `f(old)`, keeping its age (so an entry patched by
    /// local changes still expires when the original answer would have). `weight` is the new
    /// value's. No-op when the entry is missing or expired.
    pub fn update(&self, key: &K, f: impl FnOnce(&V) -> (V, usize))
    where
        K: Clone,
    {
        let mut inner = self.inner.lock().unwrap_or_else(|p| p.into_inner());
        let Some((at, old)) = inner.get(key).map(|(at, v)| (*at, v.clone())) else {
            return;
        };
        if at.elapsed() >= self.ttl {
            inner.remove(key);
            return;
        }
        let (new, weight) = f(&old);
        inner.insert(key.clone(), (at, new), weight.max(1));
    }

    pub fn remove(&self, key: &K) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key);
    }

    pub fn ttl(&self) -> Duration {
        self.ttl
    }
}

impl<K: Hash + Eq + Clone, V: Clone> TtlCache<K, V> {
    /// Drop every entry whose key matches (O(entries); for renames of whole directories).
    pub fn remove_where(&self, matches: impl Fn(&K) -> bool) {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove_where(matches);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_and_are_bounded() {
        let c = TtlCache::new(2, Duration::from_secs(3600));
        c.insert("a", Some(1), 1);
        c.insert("neg", None::<i32>, 1);
        assert_eq!(c.get(&"a"), Some(Some(1)));
        assert_eq!(c.get(&"neg"), Some(None)); // a negative entry is a hit
        c.insert("b", Some(2), 1); // bound of 2 entries: "a" (least recent) goes
        assert_eq!(c.get(&"a"), None);

        let expired = TtlCache::new(10, Duration::from_nanos(1));
        expired.insert("x", 1, 1);
        std::thread::sleep(Duration::from_millis(1));
        assert_eq!(expired.get(&"x"), None);

        let off = TtlCache::new(10, Duration::ZERO);
        off.insert("x", 1, 1);
        assert_eq!(off.get(&"x"), None);
    }
}
