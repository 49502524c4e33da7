//! The data block cache: fixed-size blocks of objects, keyed by key + ETag + block index, under
//! a byte budget. Keying by ETag means a changed object can never be served from stale blocks;
//! old versions simply age out.

use std::sync::{Arc, Mutex};

use bytes::Bytes;

use super::lru::WeightedLru;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub key: Arc<str>,
    pub etag: Arc<str>,
    pub index: u64,
}

pub struct BlockCache {
    inner: Mutex<WeightedLru<BlockKey, Bytes>>,
    enabled: bool,
}

impl BlockCache {
    pub fn new(budget_bytes: u64) -> Self {
        let budget = usize::try_from(budget_bytes).unwrap_or(usize::MAX);
        Self {
            inner: Mutex::new(WeightedLru::new(budget)),
            enabled: budget > 0,
        }
    }

    pub fn get(&self, key: &BlockKey) -> Option<Bytes> {
        if !self.enabled {
            return None;
        }
        let found = self
            .inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .cloned();
        let m = crate::metrics::global();
        let counter = if found.is_some() {
            &m.block_cache_hits
        } else {
            &m.block_cache_misses
        };
        crate::metrics::Metrics::add(counter, 1);
        found
    }

    pub fn insert(&self, key: BlockKey, data: Bytes) {
        if !self.enabled {
            return;
        }
        let weight = data.len();
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(key, data, weight);
    }

    /// Bytes currently held.
    pub fn used_bytes(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .total_weight()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(i: u64) -> BlockKey {
        BlockKey {
            key: "obj".into(),
            etag: "e1".into(),
            index: i,
        }
    }

    #[test]
    fn stays_under_budget_and_keys_by_etag() {
        let c = BlockCache::new(10);
        c.insert(k(0), Bytes::from_static(b"01234"));
        c.insert(k(1), Bytes::from_static(b"56789"));
        c.insert(k(2), Bytes::from_static(b"abcde"));
        assert!(c.used_bytes() <= 10);
        assert_eq!(c.get(&k(0)), None);
        assert_eq!(c.get(&k(2)).as_deref(), Some(&b"abcde"[..]));
        let other_version = BlockKey {
            etag: "e2".into(),
            ..k(2)
        };
        assert_eq!(c.get(&other_version), None);
        let off = BlockCache::new(0);
        off.insert(k(0), Bytes::from_static(b"x"));
        assert_eq!(off.get(&k(0)), None);
    }
}
