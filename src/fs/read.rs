//! Read handles and the prefetcher.
//!
//! An open file is read with ranged GETs, each carrying `If-Match: <ETag seen at open>`, so a
//! reader never gets a mix of two versions: when the object changes, the next GET answers 412
//! and the read fails with EIO.
//!
//! Data is fetched in *runs*: one ranged GET covering whole [`BLOCK_SIZE`] blocks. A finished run
//! is cut into blocks that go into the shared LRU [`BlockCache`] (keyed by key + ETag + block),
//! so a second reader, or a reopen of the same version, is served from memory.
//!
//! Prefetch window: a reader that keeps reading where it stopped (give or take
//! [`SEQUENTIAL_SLACK`], because the kernel issues readahead concurrently and slightly out of
//! order) is sequential. From its second sequential read on, the handle keeps `window` bytes
//! ahead of it requested (topped up a whole run at a time, so GETs stay large while each read
//! advances the window by only its own size), split into runs of up to [`MAX_RUN`] so several
//! GETs are in flight; the window starts at [`FIRST_WINDOW`] and doubles on each sequential
//! read up to [`MAX_WINDOW`]. A read anywhere else is a seek: the window drops to zero, and only the
//! blocks the read needs are fetched, so random 4 KiB reads cost one 128 KiB GET each, not
//! megabytes. Memory per handle is bounded by the window plus one read; runs left behind by a
//! seek are not cancelled (a concurrent read may be waiting on them) but finish into the cache.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

use bytes::{Bytes, BytesMut};
use futures::future::{BoxFuture, FutureExt, Shared};

use crate::cache::{BlockCache, BlockKey};
use crate::cos::{CosError, ErrorKind, ObjectStore};

use super::error::{FsError, FsResult};

/// Cache granularity and the smallest GET. 128 KiB is the kernel's default readahead unit, so a
/// random small read fetches no more than the kernel itself would ask for.
pub const BLOCK_SIZE: u64 = 128 * 1024;
/// Prefetch window once a reader is known to be sequential.
pub const FIRST_WINDOW: u64 = 2 * 1024 * 1024;
/// Largest window: enough GETs in flight to keep a fast link busy, bounded memory per handle.
pub const MAX_WINDOW: u64 = 64 * 1024 * 1024;
/// Largest single GET; smaller runs mean more parallel GETs within the window.
pub const MAX_RUN: u64 = 8 * 1024 * 1024;
/// Smallest prefetch GET (per-request overhead dominates below this).
const MIN_RUN: u64 = 1024 * 1024;
/// Distance from the expected offset still counted as sequential: the kernel sends its readahead
/// window (`read_ahead_kb`, 4 MiB by default) as concurrent requests that may arrive out of order.
pub const SEQUENTIAL_SLACK: u64 = 8 * 1024 * 1024;

type RunData = Shared<BoxFuture<'static, Result<Bytes, Arc<FsError>>>>;

/// One ranged GET of `[start, end)`, in flight or done.
struct Run {
    start: u64,
    end: u64,
    data: RunData,
}

struct ReadState {
    /// Where the next sequential read would start.
    next_offset: u64,
    /// How many reads in a row were sequential.
    streak: u32,
    window: u64,
    /// Sorted by `start`, non-overlapping.
    runs: VecDeque<Run>,
}

/// Per-open state of a file being read.
pub struct ReadHandle {
    pub ino: u64,
    key: Arc<str>,
    etag: Arc<str>,
    size: u64,
    state: Mutex<ReadState>,
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

impl ReadHandle {
    pub fn new(ino: u64, key: &str, etag: &str, size: u64) -> Self {
        ReadHandle {
            ino,
            key: Arc::from(key),
            etag: Arc::from(etag),
            size,
            state: Mutex::new(ReadState {
                next_offset: 0,
                streak: 0,
                window: 0,
                runs: VecDeque::new(),
            }),
        }
    }

    pub fn etag(&self) -> &str {
        &self.etag
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
        let mut pieces = self.plan(store, cache, offset, end);
        // The common case, a read inside one block or one run, needs no copy.
        if pieces.len() == 1 {
            if let Some(piece) = pieces.pop() {
                return self.resolve(piece).await;
            }
        }
        let mut out = BytesMut::with_capacity((end - offset) as usize);
        for piece in pieces {
            out.extend_from_slice(&self.resolve(piece).await?);
        }
        Ok(out.freeze())
    }

    /// The bytes of one piece, waiting for its GET if needed.
    async fn resolve(&self, piece: Piece) -> FsResult<Bytes> {
        match piece {
            Piece::Ready(b) => Ok(b),
            Piece::Pending {
                data,
                run_start,
                from,
                to,
            } => {
                let bytes = data.await.map_err(FsError::Shared)?;
                slice_of(&bytes, from - run_start, to - run_start)
                    .ok_or_else(|| self.short_read(from, to - from, bytes.len() as u64))
            }
        }
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
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        let ahead = st
            .runs
            .back()
            .map_or(st.next_offset, |r| r.end.max(st.next_offset));
        let sequential = offset.saturating_add(SEQUENTIAL_SLACK) >= st.next_offset
            && offset <= ahead.saturating_add(SEQUENTIAL_SLACK);
        if sequential {
            st.streak = st.streak.saturating_add(1);
            if st.streak >= 2 {
                st.window = if st.window == 0 {
                    FIRST_WINDOW
                } else {
                    (st.window * 2).min(MAX_WINDOW)
                };
            }
        } else {
            st.streak = 0;
            st.window = 0;
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
            if let Some(bytes) = cache.get(&self.block_key(block)) {
                let to = end.min(block_start + bytes.len() as u64);
                if let Some(slice) = slice_of(&bytes, pos - block_start, to - block_start) {
                    pieces.push(Piece::Ready(slice));
                    pos = to;
                    continue;
                }
            }
            // Missing: fetch the blocks this read needs, up to the next run already planned.
            let next_run = st
                .runs
                .iter()
                .map(|r| r.start)
                .filter(|&s| s > pos)
                .min()
                .unwrap_or(u64::MAX);
            let run_end = block_ceil(end).min(next_run).min(self.size);
            self.start_run(&mut st, store, cache, block_start, run_end);
        }

        if st.window > 0 {
            let target = block_ceil(end.saturating_add(st.window)).min(self.size);
            let run_len = (st.window / 4).clamp(MIN_RUN, MAX_RUN);
            let mut from = st
                .runs
                .back()
                .map_or(block_ceil(end), |r| r.end.max(block_ceil(end)));
            while from < target {
                // Top up in whole runs: each sequential read moves the target by only its own
                // size (the kernel sends 1 MiB or less), and a GET per read would cost one
                // request's overhead per MiB. The tail of the object may be a shorter run.
                if target - from < run_len && target < self.size {
                    break;
                }
                if cache.get(&self.block_key(from / BLOCK_SIZE)).is_some() {
                    from += BLOCK_SIZE;
                    continue;
                }
                let to = (from + run_len).min(target);
                self.start_run(&mut st, store, cache, from, to);
                from = to;
            }
        }
        pieces
    }

    fn block_key(&self, index: u64) -> BlockKey {
        BlockKey {
            key: self.key.clone(),
            etag: self.etag.clone(),
            index,
        }
    }

    /// Spawn the GET of `[start, end)` (block aligned, except at the end of the object).
    fn start_run<S: ObjectStore>(
        &self,
        st: &mut ReadState,
        store: &Arc<S>,
        cache: &Arc<BlockCache>,
        start: u64,
        end: u64,
    ) {
        let (store, cache, key, etag) = (
            store.clone(),
            cache.clone(),
            self.key.clone(),
            self.etag.clone(),
        );
        let len = end - start;
        let task = tokio::spawn(async move {
            let got = store
                .get_range(&key, start, len, Some(&etag))
                .await
                .map_err(|e| changed_or(e, &key, &etag))?;
            if got.etag != *etag {
                return Err(FsError::ObjectChanged {
                    key: key.to_string(),
                    opened: etag.to_string(),
                });
            }
            if got.data.len() as u64 != len {
                return Err(FsError::ShortRead {
                    key: key.to_string(),
                    offset: start,
                    wanted: len,
                    got: got.data.len() as u64,
                });
            }
            let mut at = 0u64;
            while at < len {
                let to = (at + BLOCK_SIZE).min(len);
                let index = (start + at) / BLOCK_SIZE;
                let block = BlockKey {
                    key: key.clone(),
                    etag: etag.clone(),
                    index,
                };
                cache.insert(block, got.data.slice(at as usize..to as usize));
                at = to;
            }
            Ok(got.data)
        });
        let data = async move {
            match task.await {
                Ok(r) => r.map_err(Arc::new),
                Err(e) => Err(Arc::new(FsError::Internal(format!(
                    "read task failed: {e}"
                )))),
            }
        }
        .boxed()
        .shared();
        let at = st
            .runs
            .iter()
            .position(|r| r.start > start)
            .unwrap_or(st.runs.len());
        st.runs.insert(at, Run { start, end, data });
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
        let handle = ReadHandle::new(2, "big", &etag, size);
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
