//! An LRU map with a weight budget: each entry has a weight (1 for metadata, its byte length for
//! data blocks) and the least recently used entries are evicted while the total is over budget.

use std::hash::Hash;

pub(crate) struct WeightedLru<K: Hash + Eq, V> {
    map: lru::LruCache<K, (usize, V)>,
    total: usize,
    budget: usize,
}

impl<K: Hash + Eq, V> WeightedLru<K, V> {
    pub(crate) fn new(budget: usize) -> Self {
        Self {
            map: lru::LruCache::unbounded(),
            total: 0,
            budget,
        }
    }

    pub(crate) fn get(&mut self, key: &K) -> Option<&V> {
        self.map.get(key).map(|(_, v)| v)
    }

    /// Insert (replacing any old value). An entry heavier than the whole budget is not kept.
    pub(crate) fn insert(&mut self, key: K, value: V, weight: usize) {
        if let Some((old, _)) = self.map.pop(&key) {
            self.total -= old;
        }
        if weight > self.budget {
            return;
        }
        self.map.put(key, (weight, value));
        self.total += weight;
        while self.total > self.budget {
            match self.map.pop_lru() {
                Some((_, (w, _))) => self.total -= w,
                None => break,
            }
        }
    }

    /// The value at `key`, without making it more recently used.
    pub(crate) fn peek(&self, key: &K) -> Option<&V> {
        self.map.peek(key).map(|(_, v)| v)
    }

    /// Remove and return the value at `key`.
    pub(crate) fn take(&mut self, key: &K) -> Option<V> {
        let (w, v) = self.map.pop(key)?;
        self.total -= w;
        Some(v)
    }

    pub(crate) fn remove(&mut self, key: &K) {
        if let Some((w, _)) = self.map.pop(key) {
            self.total -= w;
        }
    }

    /// Remove and return the least recently used entry.
    pub(crate) fn pop_lru(&mut self) -> Option<(K, V)> {
        let (k, (w, v)) = self.map.pop_lru()?;
        self.total -= w;
        Some((k, v))
    }

    /// Most recently used first.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&K, &V)> {
        self.map.iter().map(|(k, (_, v))| (k, v))
    }

    pub(crate) fn budget(&self) -> usize {
        self.budget
    }

    pub(crate) fn total_weight(&self) -> usize {
        self.total
    }

    pub(crate) fn len(&self) -> usize {
        self.map.len()
    }
}

impl<K: Hash + Eq + Clone, V> WeightedLru<K, V> {
    pub(crate) fn remove_where(&mut self, matches: impl Fn(&K) -> bool) {
        let doomed: Vec<K> = self
            .map
            .iter()
            .filter(|(k, _)| matches(k))
            .map(|(k, _)| k.clone())
            .collect();
        for key in doomed {
            self.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn evicts_least_recently_used_over_budget() {
        let mut l = WeightedLru::new(10);
        l.insert("a", 1, 4);
        l.insert("b", 2, 4);
        assert_eq!(l.get(&"a"), Some(&1)); // a is now most recent
        l.insert("c", 3, 4); // 12 > 10: b goes
        assert_eq!(l.get(&"b"), None);
        assert_eq!(l.get(&"a"), Some(&1));
        assert_eq!(l.get(&"c"), Some(&3));
        assert_eq!(l.total_weight(), 8);
        l.insert("huge", 9, 11); // heavier than the budget: not kept, nothing evicted
        assert_eq!((l.len(), l.get(&"huge")), (2, None));
        l.insert("a", 5, 1); // replace updates the weight
        assert_eq!(l.total_weight(), 5);
        l.remove(&"c");
        assert_eq!(l.total_weight(), 1);
    }
}
