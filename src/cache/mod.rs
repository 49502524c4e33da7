//! Caches with budgets: a TTL metadata cache bounded in entries, and a data block cache
//! bounded in bytes. Both are LRU; neither knows about COS or FUSE.

pub mod block;
mod lru;
pub mod meta;

pub use block::{Block, BlockCache, BlockKey};
pub(crate) use lru::WeightedLru;
pub use meta::TtlCache;
