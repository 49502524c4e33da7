//! The data block cache: fixed-size blocks of objects, keyed by key + ETag + block index, under
//! a byte budget. Keying by ETag means a changed object can never be served from stale blocks;
//! old versions simply age out.
//!
//! The cache's bytes count against the mount's memory budget (`crate::memory`): each block
//! carries the permit of its memory (shared with the read that fetched it), and the cache is the
//! first to give way when room is short. While anyone waits for memory it does not grow.

use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;

use super::lru::WeightedLru;
use crate::memory::{self, MemPermit, Reclaim};

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct BlockKey {
    pub key: Arc<str>,
    pub etag: Arc<str>,
    pub index: u64,
}

/// Bytes of one block and the memory reservation they live under (given back when the last
/// holder, cache or read, drops it).
#[derive(Debug, Clone)]
pub struct Block {
    pub data: Bytes,
    mem: Option<Arc<MemPermit>>,
}

impl Block {
    pub fn new(data: Bytes, mem: Option<Arc<MemPermit>>) -> Self {
        Block { data, mem }
    }

    /// Count the block as read, no longer as prefetch (see [`MemPermit::claim`]).
    pub fn claim(&self) {
        if let Some(m) = &self.mem {
            m.claim();
        }
    }
}

pub struct BlockCache {
    inner: Mutex<WeightedLru<BlockKey, Block>>,
    enabled: bool,
}

impl BlockCache {
    pub fn new(budget_bytes: u64) -> Self {
        // Never more than the whole memory budget, whatever cache_size says.
        let budget =
            usize::try_from(budget_bytes.min(memory::global().limit())).unwrap_or(usize::MAX);
        Self {
            inner: Mutex::new(WeightedLru::new(budget)),
            enabled: budget > 0,
        }
    }

    /// A cache registered with the memory limiter, which evicts from it when room is short.
    pub fn shared(budget_bytes: u64) -> Arc<Self> {
        let cache = Arc::new(Self::new(budget_bytes));
        let weak: Weak<dyn Reclaim> = Arc::downgrade(&(cache.clone() as Arc<dyn Reclaim>));
        memory::global().add_reclaimer(weak);
        cache
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WeightedLru<BlockKey, Block>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, key: &BlockKey) -> Option<Bytes> {
        if !self.enabled {
            return None;
        }
        let found = self.lock().get(key).map(|b| b.data.clone());
        let m = crate::metrics::global();
        let counter = if found.is_some() {
            &m.block_cache_hits
        } else {
            &m.block_cache_misses
        };
        crate::metrics::Metrics::add(counter, 1);
        found
    }

    pub fn insert(&self, key: BlockKey, block: Block) {
        if !self.enabled {
            return;
        }
        let weight = block.data.len();
        let mut inner = self.lock();
        if memory::global().has_waiters() {
            // Someone waits for memory: make room for this block rather than grow.
            let mut freed = 0;
            while freed < weight {
                let Some((_, old)) = inner.pop_lru() else {
                    // Nothing to trade it for: do not keep it.
                    return;
                };
                freed += old.data.len();
            }
        }
        inner.insert(key, block, weight);
    }

    /// Bytes currently held.
    pub fn used_bytes(&self) -> usize {
        self.lock().total_weight()
    }
}

impl Reclaim for BlockCache {
    fn reclaim(&self, bytes: u64) -> u64 {
        let mut inner = self.lock();
        let mut freed = 0u64;
        while freed < bytes {
            let Some((_, old)) = inner.pop_lru() else {
                break;
            };
            freed += old.data.len() as u64;
        }
        freed
    }

    fn held(&self) -> u64 {
        self.used_bytes() as u64
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

    fn b(data: &'static [u8]) -> Block {
        Block::new(Bytes::from_static(data), None)
    }

    #[test]
    fn stays_under_budget_and_keys_by_etag() {
        let c = BlockCache::new(10);
        c.insert(k(0), b(b"01234"));
        c.insert(k(1), b(b"56789"));
        c.insert(k(2), b(b"abcde"));
        assert!(c.used_bytes() <= 10);
        assert_eq!(c.get(&k(0)), None);
        assert_eq!(c.get(&k(2)).as_deref(), Some(&b"abcde"[..]));
        let other_version = BlockKey {
            etag: "e2".into(),
            ..k(2)
        };
        assert_eq!(c.get(&other_version), None);
        let off = BlockCache::new(0);
        off.insert(k(0), b(b"x"));
        assert_eq!(off.get(&k(0)), None);
    }

    #[test]
    fn gives_back_blocks_on_demand() {
        let c = BlockCache::new(100);
        for i in 0..4 {
            c.insert(k(i), b(b"0123456789"));
        }
        assert_eq!(c.reclaim(15), 20);
        assert_eq!(c.held(), 20);
        assert_eq!(c.get(&k(0)), None);
        assert!(c.get(&k(3)).is_some());
    }
}
