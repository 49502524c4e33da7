//! The data block cache: fixed-size blocks of objects, keyed by key + ETag + block index, under
//! a byte budget. Keying by ETag means a changed object can never be served from stale blocks;
//! old versions simply age out.
//!
//! The cache's bytes count against the mount's memory budget (`crate::memory`): each block
//! carries the permit of its memory (shared with the read that fetched it), and the cache is the
//! first to give way when room is short. While anyone waits for memory it does not grow.

use std::sync::atomic::{AtomicU64, Ordering};
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

/// Bytes of one block and the memory reservation of the buffer they are a slice of (given back
/// with the buffer, when its last slice is dropped).
#[derive(Debug, Clone)]
pub struct Block {
    pub data: Bytes,
    mem: Option<Arc<MemPermit>>,
    /// The blocks fetched with this one share one buffer (one GET received in one piece, so a
    /// read spanning them is a slice, not a copy): index range `[first, first + count)`. The
    /// buffer is freed only with its last block, so the cache evicts them together.
    siblings: Siblings,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Siblings {
    first: u64,
    count: u64,
    /// Which buffer (a later GET of the same range has a buffer of its own).
    run: u64,
}

impl Block {
    #[cfg(test)]
    pub fn new(data: Bytes, mem: Option<Arc<MemPermit>>) -> Self {
        Block {
            data,
            mem,
            siblings: Siblings::default(),
        }
    }

    /// The blocks `[first, first + count)` received into one buffer counted under `mem`.
    pub fn run(first: u64, pieces: Vec<Bytes>, mem: Option<Arc<MemPermit>>) -> Vec<Block> {
        static RUNS: AtomicU64 = AtomicU64::new(1);
        let siblings = Siblings {
            first,
            count: pieces.len() as u64,
            run: RUNS.fetch_add(1, Ordering::Relaxed),
        };
        pieces
            .into_iter()
            .map(|data| Block {
                data,
                mem: mem.clone(),
                siblings,
            })
            .collect()
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

    /// A block needed and not taken from the cache (not looked up: see `ReadHandle`).
    pub fn count_miss(&self) {
        crate::metrics::Metrics::add(&crate::metrics::global().block_cache_misses, 1);
    }

    #[cfg(test)]
    pub fn insert(&self, key: BlockKey, block: Block) {
        let (name, etag, index) = (key.key, key.etag, key.index);
        self.insert_run(&name, &etag, index, &[block]);
    }

    /// Keep the blocks of one buffer, `first` on. A block already cached is kept rather than
    /// replaced (same key, ETag and index: the same bytes; replacing it would leave its
    /// siblings holding the old buffer). The memory budget counts the whole buffer for as
    /// long as any of its blocks is held (see `crate::memory`).
    pub fn insert_run(&self, key: &Arc<str>, etag: &Arc<str>, first: u64, blocks: &[Block]) {
        if !self.enabled || blocks.is_empty() {
            return;
        }
        let key_of = |index: u64| BlockKey {
            key: key.clone(),
            etag: etag.clone(),
            index,
        };
        let mut inner = self.lock();
        let new: Vec<(BlockKey, &Block)> = blocks
            .iter()
            .enumerate()
            .map(|(i, b)| (key_of(first + i as u64), b))
            .filter(|(k, _)| inner.peek(k).is_none())
            .collect();
        let weight: usize = new.iter().map(|(_, b)| b.data.len()).sum();
        if new.is_empty() || weight > inner.budget() {
            return;
        }
        // Someone waits for memory: make room for this run rather than grow. Otherwise make
        // room within the budget (here, not in the LRU, so a block's siblings go with it).
        let limit = if memory::global().has_waiters() {
            inner.total_weight()
        } else {
            inner.budget()
        };
        while inner.total_weight() + weight > limit {
            let Some((old_key, old)) = inner.pop_lru() else {
                // Nothing to trade it for: do not keep it.
                return;
            };
            evict_siblings(&mut inner, &old_key, &old);
        }
        for (k, block) in new {
            let weight = block.data.len();
            inner.insert(k, block.clone(), weight);
        }
    }

    /// Bytes currently held.
    pub fn used_bytes(&self) -> usize {
        self.lock().total_weight()
    }
}

/// Drop the blocks that share `evicted`'s buffer (it is freed only when they all go); the
/// bytes they weighed.
fn evict_siblings(lru: &mut WeightedLru<BlockKey, Block>, key: &BlockKey, evicted: &Block) -> u64 {
    let Siblings { first, count, .. } = evicted.siblings;
    let mut freed = 0;
    for index in first..first.saturating_add(count) {
        if index == key.index {
            continue;
        }
        let sibling = BlockKey {
            key: key.key.clone(),
            etag: key.etag.clone(),
            index,
        };
        if lru
            .peek(&sibling)
            .is_some_and(|b| b.siblings == evicted.siblings)
        {
            if let Some(b) = lru.take(&sibling) {
                freed += b.data.len() as u64;
            }
        }
    }
    freed
}

impl Reclaim for BlockCache {
    fn reclaim(&self, bytes: u64) -> u64 {
        let mut inner = self.lock();
        let mut freed = 0u64;
        while freed < bytes {
            let Some((old_key, old)) = inner.pop_lru() else {
                break;
            };
            freed += old.data.len() as u64 + evict_siblings(&mut inner, &old_key, &old);
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

    /// The blocks of one buffer leave together (its memory is freed only with the last one),
    /// even when one of them was used more recently.
    #[test]
    fn blocks_of_one_buffer_are_evicted_together() {
        let c = BlockCache::new(40);
        let whole = Bytes::from_static(b"aaaaaaaaaabbbbbbbbbbcccccccccc");
        let run = Block::run(
            0,
            (0..3).map(|i| whole.slice(i * 10..(i + 1) * 10)).collect(),
            None,
        );
        c.insert_run(&"obj".into(), &"e1".into(), 0, &run);
        assert!(c.get(&k(2)).is_some());
        // Room for 10 more bytes: the least recent block goes, and with it its siblings.
        c.insert(k(7), b(b"0123456789"));
        c.insert(k(8), b(b"0123456789"));
        assert_eq!(
            c.get(&k(2)),
            None,
            "a sibling outlived its buffer's eviction"
        );
        assert_eq!(c.used_bytes(), 20);
        // The newer blocks stay.
        assert!(c.get(&k(8)).is_some());
    }
}
