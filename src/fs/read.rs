//! Read handles and the prefetcher.
//!
//! An open file is read with ranged GETs, each carrying `If-Match: <ETag known at open>`, so a
//! reader never gets a mix of two versions: when the object changes, the next GET answers 412
//! and the read fails with EIO. The ETag and size may come from the lookup rather than a HEAD
//! at open (an *unconfirmed* handle); the first GET's If-Match then validates them, and until
//! one GET has, nothing is served from the block cache (it could hold that ETag's blocks from
//! before an out-of-band overwrite). A 412 on an unconfirmed handle is not an error of the
//! reader: it has seen no byte yet, so the core re-opens it at the current version.
//!
//! Data is fetched in *runs*: one ranged GET covering whole [`BLOCK_SIZE`] blocks (it starts
//! on a block boundary and ends on one or at the object's end, whatever window or budget asked
//! for it), received straight into one buffer (one copy from the network) that its blocks are
//! slices of. The blocks go into the
//! shared LRU [`BlockCache`] (keyed by key + ETag + block), so a second reader, or a reopen of
//! the same version, is served from memory.
//!
//! Prefetch window: a reader that keeps reading where it stopped (give or take
//! [`SEQUENTIAL_SLACK`], because the kernel issues readahead concurrently and slightly out of
//! order) is sequential. From its second sequential read on, the handle keeps `window` bytes
//! ahead of it requested (topped up a whole run at a time, so GETs stay large while each read
//! advances the window by only its own size), split into runs of up to [`MAX_RUN`] so several
//! GETs are in flight; the window starts at [`FIRST_WINDOW`] and doubles on each sequential
//! read up to [`MAX_WINDOW`]. A read anywhere else is a seek: the window drops to zero, and only the
//! blocks the read needs are fetched, not megabytes; a read of at most [`SMALL_READ`] then
//! fetches only its own pages, uncached, so a random 4 KiB read costs one 4 KiB GET. Runs left behind by a seek are not cancelled (a concurrent read may be waiting
//! on them) but finish into the cache.
//!
//! Memory (see `crate::memory`): the blocks a read needs wait for room in the mount's budget;
//! prefetch only takes room that is free, and each sequential stream's window is capped at an
//! equal share of the prefetch budget, so windows shrink as readers are added. Runs fetched
//! ahead and not yet read are given back when someone waits for memory (they are fetched
//! again if still needed).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};

use crate::cache::{Block, BlockCache, BlockKey};
use crate::cos::{CosError, ErrorKind, ObjectStore};
use crate::memory::{self, MemPermit, Reclaim, StreamGuard, Use};

use super::error::{FsError, FsResult};

/// Cache granularity and the smallest GET. 128 KiB is the kernel's default readahead unit, so a
/// random small read fetches no more than the kernel itself would ask for.
pub const BLOCK_SIZE: u64 = 128 * 1024;
/// Prefetch window once a reader is known to be sequential.
pub const FIRST_WINDOW: u64 = 2 * 1024 * 1024;
/// Largest window (the memory budget's share per stream may cap it lower).
pub const MAX_WINDOW: u64 = 64 * 1024 * 1024;
/// Largest single GET; smaller runs mean more parallel GETs within the window.
pub const MAX_RUN: u64 = 8 * 1024 * 1024;
/// Smallest prefetch GET (per-request overhead dominates below this).
const MIN_RUN: u64 = 1024 * 1024;
/// A read of at most this many bytes with no stream behind it fetches just its own pages.
const SMALL_READ: u64 = 64 * 1024;
const PAGE: u64 = 4096;
/// Distance from the expected offset still counted as sequential: the kernel sends its readahead
/// window (`read_ahead_kb`, 4 MiB by default) as concurrent requests that may arrive out of order.
pub const SEQUENTIAL_SLACK: u64 = 8 * 1024 * 1024;

/// A finished run: its bytes in one buffer (which owns the memory permit), and its blocks
/// (slices of it, each `BLOCK_SIZE`, the last maybe shorter).
struct Fetched {
    whole: Bytes,
    blocks: Vec<Block>,
}
type RunBlocks = Arc<Fetched>;
type RunData = Shared<BoxFuture<'static, Result<RunBlocks, Arc<FsError>>>>;

/// One ranged GET of `[start, end)`, in flight or done.
struct Run {
    start: u64,
    end: u64,
    data: RunData,
}

impl Run {
    fn is_done(&self) -> bool {
        self.data.peek().is_some()
    }
}

struct ReadState {
    /// Where the next sequential read would start.
    next_offset: u64,
    /// How many reads in a row were sequential.
    streak: u32,
    window: u64,
    /// Sorted by `start`, non-overlapping.
    runs: VecDeque<Run>,
    /// Counts this handle among the sequential streams sharing the prefetch budget.
    stream: Option<StreamGuard>,
}

/// Per-open state of a file being read.
pub struct ReadHandle {
    pub ino: u64,
    key: Arc<str>,
    etag: Arc<str>,
    size: u64,
    /// A GET (or the HEAD at open) has shown that `etag` is the object's version.
    confirmed: Arc<AtomicBool>,
    /// A write through this mount began on the file after this open: the kernel's size and
    /// pages of the inode are the writer's now, so this handle only serves its own version
    /// (from COS with If-Match, or the block cache) and never re-opens on a 412.
    superseded: AtomicBool,
    state: Arc<Mutex<ReadState>>,
}

/// Part of a read's answer: bytes at hand, or a slice of a run still being fetched.
enum Piece {
    Ready(Bytes),
    Pending {
        data: RunData,
        run_start: u64,
        from: u64,
        to: u64,
    },
}

fn block_floor(x: u64) -> u64 {
    x - x % BLOCK_SIZE
}

fn block_ceil(x: u64) -> u64 {
    x.div_ceil(BLOCK_SIZE).saturating_mul(BLOCK_SIZE)
}

fn lock(m: &Mutex<ReadState>) -> std::sync::MutexGuard<'_, ReadState> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Every open read handle's state, so runs fetched ahead can be given back under pressure.
struct Handles(Mutex<Vec<Weak<Mutex<ReadState>>>>);

fn handles() -> &'static Arc<Handles> {
    static HANDLES: OnceLock<Arc<Handles>> = OnceLock::new();
    HANDLES.get_or_init(|| {
        let h = Arc::new(Handles(Mutex::new(Vec::new())));
        let weak: Weak<dyn Reclaim> = Arc::downgrade(&(h.clone() as Arc<dyn Reclaim>));
        memory::global().add_reclaimer(weak);
        h
    })
}

impl Handles {
    fn add(&self, state: &Arc<Mutex<ReadState>>) {
        let mut list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(Arc::downgrade(state));
    }

    fn live(&self) -> Vec<Arc<Mutex<ReadState>>> {
        let list = self.0.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().filter_map(Weak::upgrade).collect()
    }
}

impl Reclaim for Handles {
    /// Drop finished runs, furthest ahead first in each handle (a read waiting on one keeps
    /// its own reference, so nothing in use is lost).
    fn reclaim(&self, bytes: u64) -> u64 {
        let mut freed = 0;
        for state in self.live() {
            let mut st = lock(&state);
            while freed < bytes {
                match st.runs.back() {
                    Some(r) if r.is_done() => {
                        freed += r.end - r.start;
                        st.runs.pop_back();
                    }
                    _ => break,
                }
            }
            if freed >= bytes {
                break;
            }
        }
        freed
    }

    fn held(&self) -> u64 {
        self.live()
            .iter()
            .map(|s| lock(s).runs.iter().map(|r| r.end - r.start).sum::<u64>())
            .sum()
    }

    fn is_cache(&self) -> bool {
        false
    }
}

impl ReadHandle {
    /// A handle on version `etag` of `key`; `confirmed` when a HEAD has just shown it current.
    pub fn new(ino: u64, key: &str, etag: &str, size: u64, confirmed: bool) -> Self {
        let state = Arc::new(Mutex::new(ReadState {
            next_offset: 0,
            streak: 0,
            window: 0,
            runs: VecDeque::new(),
            stream: None,
        }));
        handles().add(&state);
        ReadHandle {
            ino,
            key: Arc::from(key),
            etag: Arc::from(etag),
            size,
            confirmed: Arc::new(AtomicBool::new(confirmed)),
            superseded: AtomicBool::new(false),
            state,
        }
    }

    /// Mark the handle superseded; true if it was not already.
    pub fn supersede(&self) -> bool {
        !self.superseded.swap(true, Ordering::AcqRel)
    }

    pub fn is_superseded(&self) -> bool {
        self.superseded.load(Ordering::Acquire)
    }

    pub fn etag(&self) -> &str {
        &self.etag
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether a request has shown this handle's version to be the object's (see the module
    /// doc: until then a 412 means "re-open", not "changed under the reader").
    pub fn is_confirmed(&self) -> bool {
        self.confirmed.load(Ordering::Acquire)
    }

    /// Read up to `size` bytes at `offset` (fewer only at the end of the object).
    pub async fn read<S: ObjectStore>(
        &self,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        offset: u64,
        size: u32,
    ) -> FsResult<Bytes> {
        let end = offset.saturating_add(u64::from(size)).min(self.size);
        if offset >= end {
            return Ok(Bytes::new());
        }
        let pieces = self.plan(store, cache, offset, end);
        let mut parts = Vec::new();
        for piece in pieces {
            self.resolve(piece, &mut parts).await?;
        }
        // The common case, a read inside one block, needs no copy.
        if parts.len() == 1 {
            if let Some(only) = parts.pop() {
                return Ok(only);
            }
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for part in parts {
            out.extend_from_slice(&part);
        }
        Ok(out.freeze())
    }

    /// The bytes of one piece, waiting for its GET if needed, appended to `out` as slices of
    /// the blocks (no copy).
    async fn resolve(&self, piece: Piece, out: &mut Vec<Bytes>) -> FsResult<()> {
        match piece {
            Piece::Ready(b) => out.push(b),
            Piece::Pending {
                data,
                run_start,
                from,
                to,
            } => {
                let run = data.await.map_err(FsError::Shared)?;
                let first = ((from - run_start) / BLOCK_SIZE) as usize;
                let last = ((to - 1 - run_start) / BLOCK_SIZE) as usize;
                for block in run.blocks.iter().take(last + 1).skip(first) {
                    block.claim();
                }
                // One slice of the run's buffer, however many blocks it spans: no copy.
                let slice = slice_of(&run.whole, from - run_start, to - run_start)
                    .filter(|s| !s.is_empty())
                    .ok_or_else(|| {
                        let got = (run.whole.len() as u64).saturating_sub(from - run_start);
                        self.short_read(from, to - from, got)
                    })?;
                out.push(slice);
            }
        }
        Ok(())
    }

    fn short_read(&self, offset: u64, wanted: u64, got: u64) -> FsError {
        FsError::ShortRead {
            key: self.key.to_string(),
            offset,
            wanted,
            got,
        }
    }

    /// Decide where each byte of `[offset, end)` comes from, start the GETs that are missing
    /// and the prefetch ahead of them. Holds the state lock, never awaits.
    fn plan<S: ObjectStore>(
        &self,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        offset: u64,
        end: u64,
    ) -> Vec<Piece> {
        let limiter = memory::global();
        // Cached blocks of an ETag not yet confirmed could be of an overwritten version.
        let use_cache = self.is_confirmed();
        let mut st = lock(&self.state);
        let ahead = st
            .runs
            .back()
            .map_or(st.next_offset, |r| r.end.max(st.next_offset));
        let sequential = offset.saturating_add(SEQUENTIAL_SLACK) >= st.next_offset
            && offset <= ahead.saturating_add(SEQUENTIAL_SLACK);
        if sequential {
            st.streak = st.streak.saturating_add(1);
            if st.streak >= 2 {
                if st.stream.is_none() {
                    st.stream = Some(limiter.register_stream());
                }
                // An equal share of the prefetch budget per sequential stream.
                let cap = limiter.prefetch_window().clamp(MIN_RUN, MAX_WINDOW);
                st.window = if st.window == 0 {
                    FIRST_WINDOW
                } else {
                    st.window * 2
                }
                .min(cap);
            }
        } else {
            st.streak = 0;
            st.window = 0;
            st.stream = None;
            st.runs.clear();
        }
        st.next_offset = st.next_offset.max(end);
        if !sequential {
            st.next_offset = end;
        }
        // Runs wholly behind this read are done with; their blocks live on in the cache.
        while st
            .runs
            .front()
            .is_some_and(|r| r.end <= block_floor(offset))
        {
            st.runs.pop_front();
        }

        let mut pieces = Vec::new();
        let mut pos = offset;
        while pos < end {
            if let Some(run) = st.runs.iter().find(|r| r.start <= pos && pos < r.end) {
                let to = end.min(run.end);
                pieces.push(Piece::Pending {
                    data: run.data.clone(),
                    run_start: run.start,
                    from: pos,
                    to,
                });
                pos = to;
                continue;
            }
            let block = pos / BLOCK_SIZE;
            let block_start = block * BLOCK_SIZE;
            // BlockCache::get counts the hit or miss.
            if !use_cache {
                cache.count_miss();
            }
            if let Some(bytes) = use_cache
                .then(|| cache.get(&self.block_key(block)))
                .flatten()
            {
                // A block ends at a block boundary or at the end of the object, so it covers
                // `pos`; a shorter one is not used (progress is guaranteed either way).
                let to = end.min(block_start + bytes.len() as u64);
                if to > pos {
                    if let Some(slice) = slice_of(&bytes, pos - block_start, to - block_start) {
                        pieces.push(Piece::Ready(slice));
                        pos = to;
                        continue;
                    }
                }
            }
            // Missing. A small read with no stream behind it (a handle's first read, a seek)
            // fetches only the pages it asks for: its first byte then costs one small GET
            // (a 128 KiB one took 2.5x as long here). Not cached (the cache holds whole
            // blocks), so only where it fetches less than the block would: a small file is
            // still fetched, and cached, whole.
            let (from, pages_end) = (pos - pos % PAGE, end.next_multiple_of(PAGE).min(self.size));
            let blocks_end = self.block_end(block_ceil(end) / BLOCK_SIZE);
            if st.window == 0
                && end - pos <= SMALL_READ
                && pages_end - from < blocks_end - block_start
            {
                let data = self.spawn_get(store, cache, from, pages_end, None, false);
                pieces.push(Piece::Pending {
                    data,
                    run_start: from,
                    from: pos,
                    to: end,
                });
                pos = end;
                continue;
            }
            // Fetch the blocks this read needs, up to the next run already planned (waiting
            // for memory if need be).
            let next_run = st
                .runs
                .iter()
                .map(|r| r.start)
                .filter(|&s| s > pos)
                .min()
                .unwrap_or(u64::MAX);
            let end_block = block_ceil(end).min(next_run) / BLOCK_SIZE;
            let data = self.start_run(&mut st, store, cache, block, end_block, None);
            let to = end.min(self.block_end(end_block));
            pieces.push(Piece::Pending {
                data,
                run_start: block_start,
                from: pos,
                to,
            });
            pos = to;
        }

        if st.window > 0 {
            // In whole blocks: a run that ended mid-block would leave the next run starting
            // mid-block, and blocks are cached by index.
            let last_block = self.size.div_ceil(BLOCK_SIZE);
            let target = (block_ceil(end.saturating_add(st.window)) / BLOCK_SIZE).min(last_block);
            let run_blocks = (st.window / 4).clamp(MIN_RUN, MAX_RUN) / BLOCK_SIZE;
            let mut from = st
                .runs
                .back()
                .map_or(block_ceil(end), |r| r.end.max(block_ceil(end)))
                .div_ceil(BLOCK_SIZE);
            while from < target {
                // Top up in whole runs: each sequential read moves the target by only its own
                // size (the kernel sends 1 MiB or less), and a GET per read would cost one
                // request's overhead per MiB. The tail of the object may be a shorter run.
                if target - from < run_blocks && target < last_block {
                    break;
                }
                if use_cache && cache.get(&self.block_key(from)).is_some() {
                    from += 1;
                    continue;
                }
                let to = (from + run_blocks).min(target);
                let bytes = self.block_end(to) - from * BLOCK_SIZE;
                // Prefetch takes only free memory: under pressure the window shrinks.
                let Some(permit) = limiter.try_prefetch(bytes) else {
                    st.window = (st.window / 2).max(MIN_RUN);
                    break;
                };
                // The run is kept in `st.runs` (and its task runs on its own).
                drop(self.start_run(&mut st, store, cache, from, to, Some(permit)));
                from = to;
            }
        }
        pieces
    }

    /// Where block `index` ends (the object's end for its last block).
    fn block_end(&self, index: u64) -> u64 {
        index.saturating_mul(BLOCK_SIZE).min(self.size)
    }

    fn block_key(&self, index: u64) -> BlockKey {
        BlockKey {
            key: self.key.clone(),
            etag: self.etag.clone(),
            index,
        }
    }

    /// Spawn the GET of blocks `[first, end_block)` (the last one ends at the object's end),
    /// with the memory already reserved (prefetch) or to be waited for. Taking block indices
    /// rather than offsets keeps every run, and so every cached block, aligned.
    fn start_run<S: ObjectStore>(
        &self,
        st: &mut ReadState,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        first: u64,
        end_block: u64,
        permit: Option<MemPermit>,
    ) -> RunData {
        let start = first * BLOCK_SIZE;
        let end = self.block_end(end_block);
        let data = self.spawn_get(store, cache, start, end, permit, true);
        let at = st
            .runs
            .iter()
            .position(|r| r.start > start)
            .unwrap_or(st.runs.len());
        st.runs.insert(
            at,
            Run {
                start,
                end,
                data: data.clone(),
            },
        );
        data
    }

    /// Spawn the GET of `[start, end)`; `whole_blocks` when it covers whole blocks (see
    /// [`Self::start_run`]), which then go into the block cache.
    fn spawn_get<S: ObjectStore>(
        &self,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        start: u64,
        end: u64,
        permit: Option<MemPermit>,
        whole_blocks: bool,
    ) -> RunData {
        let (store, cache, key, etag, confirmed) = (
            store.clone(),
            cache.clone(),
            self.key.clone(),
            self.etag.clone(),
            self.confirmed.clone(),
        );
        let len = end - start;
        let task = tokio::spawn(async move {
            let mem = match permit {
                Some(p) => p,
                None => memory::global()
                    .acquire(len, Use::Read)
                    .await
                    .map_err(|e| FsError::Internal(e.to_string()))?,
            };
            let got = store
                .get_range_pieces(&key, start, len, Some(&etag), BLOCK_SIZE)
                .await
                .map_err(|e| changed_or(e, &key, &etag))?;
            if got.etag != *etag {
                return Err(FsError::ObjectChanged {
                    key: key.to_string(),
                    opened: etag.to_string(),
                });
            }
            confirmed.store(true, Ordering::Release);
            let received = got.len();
            let aligned = got
                .pieces
                .iter()
                .rev()
                .skip(1)
                .all(|p| p.len() as u64 == BLOCK_SIZE);
            if received != len || (whole_blocks && !aligned) {
                return Err(FsError::ShortRead {
                    key: key.to_string(),
                    offset: start,
                    wanted: len,
                    got: received,
                });
            }
            // The permit lives as long as the buffer: any slice of it (a cached block, a read
            // being answered) keeps the whole run's bytes counted, so the budget is what is
            // resident, however the slices are let go.
            let mem = Arc::new(mem);
            let whole = Bytes::from_owner(Counted {
                data: got.whole,
                _mem: mem.clone(),
            });
            if !whole_blocks {
                return Ok(Arc::new(Fetched {
                    whole,
                    blocks: Vec::new(),
                }));
            }
            let first = start / BLOCK_SIZE;
            let pieces = (0..whole.len().div_ceil(BLOCK_SIZE as usize))
                .map(|i| {
                    let at = i * BLOCK_SIZE as usize;
                    whole.slice(at..(at + BLOCK_SIZE as usize).min(whole.len()))
                })
                .collect();
            let blocks = Block::run(first, pieces, Some(mem));
            cache.insert_run(&key, &etag, first, &blocks);
            Ok(Arc::new(Fetched { whole, blocks }))
        });
        async move {
            match task.await {
                Ok(r) => r.map_err(Arc::new),
                Err(e) => Err(Arc::new(FsError::Internal(format!(
                    "read task failed: {e}"
                )))),
            }
        }
        .boxed()
        .shared()
    }
}

/// A run's buffer together with the memory permit it is counted under.
struct Counted {
    data: Bytes,
    _mem: Arc<MemPermit>,
}

impl AsRef<[u8]> for Counted {
    fn as_ref(&self) -> &[u8] {
        &self.data
    }
}

fn slice_of(b: &Bytes, from: u64, to: u64) -> Option<Bytes> {
    let (from, to) = (usize::try_from(from).ok()?, usize::try_from(to).ok()?);
    (from <= to && to <= b.len()).then(|| b.slice(from..to))
}

/// A 412 on a GET with If-Match means the object changed since open.
fn changed_or(e: CosError, key: &str, etag: &str) -> FsError {
    if e.kind() == ErrorKind::PreconditionFailed {
        FsError::ObjectChanged {
            key: key.to_string(),
            opened: etag.to_string(),
        }
    } else {
        FsError::from(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cos::memory::{MemoryStore, StoreOp};
    use crate::cos::store::PutOptions;

    /// A sequential reader gets the right bytes with large GETs, not one GET per kernel read.
    #[tokio::test]
    async fn sequential_reads_fetch_in_large_runs() {
        const MIB: u64 = 1024 * 1024;
        // Well past MAX_WINDOW, so most of it is read with the window at its steady size.
        let size = 3 * MAX_WINDOW;
        let pattern: Vec<u8> = (0..251u8).collect();
        let mut body = Vec::with_capacity(size as usize + pattern.len());
        while (body.len() as u64) < size {
            body.extend_from_slice(&pattern);
        }
        body.truncate(size as usize);
        let store = Arc::new(MemoryStore::new());
        store.insert("big", body.clone(), &PutOptions::default());
        let etag = store.head_object("big").await.expect("head").etag;
        let cache = Arc::new(BlockCache::new(0));
        let handle = ReadHandle::new(2, "big", &etag, size, true);
        store.reset_requests();

        let mut offset = 0u64;
        while offset < size {
            let got = handle
                .read(&store, &cache, offset, MIB as u32)
                .await
                .expect("read");
            assert_eq!(&got[..], &body[offset as usize..(offset + MIB) as usize]);
            offset += MIB;
        }
        // 192 reads of 1 MiB: a short ramp (runs of 1, 2 and 4 MiB), then 8 MiB runs; one GET
        // per read would be 192.
        let gets = store.requests(StoreOp::GetRange);
        assert!(gets <= 40, "{gets} GETs for 192 sequential 1 MiB reads");
    }
}
