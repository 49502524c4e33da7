//! One memory budget for everything the daemon holds in RAM for data: block cache, prefetch
//! windows and reads in flight, upload part buffers and listing pages (`-o memory_limit=`).
//!
//! Memory is reserved before it is allocated and handed back when the last holder drops its
//! [`MemPermit`]. A GET's buffer owns its permit, so its bytes count until the last slice of it
//! (a cached block, a read being answered) is dropped: what is counted is what is resident,
//! however the slices are let go. Who gets what:
//! - Bytes a caller is waiting for (the blocks a read needs, a part about to be uploaded, a
//!   listing page) **wait** for room ([`MemoryLimiter::acquire`]); waiters are served in order
//!   (a fair semaphore), so many readers and writers share the budget fairly. Only a single
//!   request larger than the whole budget fails.
//! - Prefetch is **optional** ([`MemoryLimiter::try_prefetch`]): it never waits, and only
//!   starts while the budget is at most [`PREFETCH_SHARE_PERCENT`] used (the rest stays free
//!   for waited-for bytes); each sequential stream gets an equal slice of that share, so
//!   windows shrink as readers are added.
//! - Whatever is held only in case it is needed, cached blocks and prefetched blocks nobody
//!   reads yet, is given back on demand ([`Reclaim`]): whenever room is short, the caches
//!   are asked first, then the read handles drop runs fetched ahead (they are fetched again
//!   if needed). So what a waiter waits for is only memory in flight (GETs, parts being
//!   uploaded), which the client's retry budget bounds: no wait cycle is possible.
//!
//! The limiter is process-wide ([`global`]), like the metrics registry, because its users live
//! in layers that share no state (client, read handles, uploader); [`configure`] sets the
//! budget once at start-up.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock, Weak};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Smallest accepted budget: a few reads of 1 MiB, a part of 8 MiB and a listing page.
pub const MIN_LIMIT: u64 = 16 << 20;
/// Budget when [`configure`] was never called (library users, unit tests).
pub const DEFAULT_LIMIT: u64 = 64 << 20;
/// Share of the budget prefetch may hold in all.
pub const PREFETCH_SHARE_PERCENT: u64 = 75;
/// Accounting granularity (one semaphore permit).
const UNIT: u64 = 4096;

/// What a reservation is for, for the metrics.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// Blocks being read or held for readers (prefetch windows, reads in flight).
    Read,
    /// Upload part buffers.
    Write,
    /// Listing pages and other whole XML answers.
    Listing,
}

impl Use {
    const ALL: [Use; 3] = [Use::Read, Use::Write, Use::Listing];

    fn index(self) -> usize {
        match self {
            Use::Read => 0,
            Use::Write => 1,
            Use::Listing => 2,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Use::Read => "read",
            Use::Write => "write",
            Use::Listing => "listing",
        }
    }
}

/// Something that holds budget it can give back on demand (block cache, read-ahead runs).
pub trait Reclaim: Send + Sync {
    /// Drop held data until about `bytes` are released or nothing is left; returns the
    /// bytes dropped from its books (memory shared with a reader is freed when that lets go).
    fn reclaim(&self, bytes: u64) -> u64;
    /// Bytes it holds now.
    fn held(&self) -> u64;
    /// Whether it is a cache (evicted for prefetch too), not read-ahead (only for waiters).
    fn is_cache(&self) -> bool {
        true
    }
}

#[derive(Debug, thiserror::Error)]
#[error("a single request needs {wanted} bytes of memory, more than the whole memory_limit of {limit} bytes")]
pub struct TooLarge {
    pub wanted: u64,
    pub limit: u64,
}

pub struct MemoryLimiter {
    sem: Arc<Semaphore>,
    total_units: u64,
    /// Callers waiting for room now.
    waiting: AtomicUsize,
    /// Sequential read streams with a prefetch window.
    streams: AtomicUsize,
    /// Bytes held per [`Use`].
    held: [AtomicU64; 3],
    /// Bytes prefetch holds now (part of `held[Read]`).
    prefetching: Arc<AtomicU64>,
    reclaimers: Mutex<Vec<Weak<dyn Reclaim>>>,
}

/// Reserved budget; given back on drop.
pub struct MemPermit {
    _permit: OwnedSemaphorePermit,
    bytes: u64,
    kind: Use,
    /// Set for prefetch until [`MemPermit::claim`].
    prefetch: Option<Arc<AtomicU64>>,
    claimed: AtomicBool,
    limiter: &'static MemoryLimiter,
}

impl std::fmt::Debug for MemPermit {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemPermit")
            .field("bytes", &self.bytes)
            .field("kind", &self.kind)
            .finish()
    }
}

impl MemPermit {
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Prefetched bytes that a reader has reached count as read memory, no longer as prefetch.
    pub fn claim(&self) {
        if let Some(p) = &self.prefetch {
            if !self.claimed.swap(true, Ordering::Relaxed) {
                p.fetch_sub(self.bytes, Ordering::Relaxed);
            }
        }
    }
}

impl Drop for MemPermit {
    fn drop(&mut self) {
        self.limiter.held[self.kind.index()].fetch_sub(self.bytes, Ordering::Relaxed);
        self.claim();
    }
}

/// Counts one sequential stream while alive (see [`MemoryLimiter::prefetch_window`]).
pub struct StreamGuard(&'static MemoryLimiter);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        self.0.streams.fetch_sub(1, Ordering::Relaxed);
    }
}

struct WaitGuard<'a>(&'a AtomicUsize);

impl Drop for WaitGuard<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

fn units(bytes: u64) -> u64 {
    bytes.div_ceil(UNIT).max(1)
}

static GLOBAL: OnceLock<MemoryLimiter> = OnceLock::new();

/// Set the process-wide budget; only the first call (before any use) takes effect. Returns
/// whether it did.
pub fn configure(limit: u64) -> bool {
    let mut set = false;
    GLOBAL.get_or_init(|| {
        set = true;
        MemoryLimiter::new(limit)
    });
    set
}

/// The process-wide limiter.
pub fn global() -> &'static MemoryLimiter {
    GLOBAL.get_or_init(|| MemoryLimiter::new(DEFAULT_LIMIT))
}

impl MemoryLimiter {
    fn new(limit: u64) -> Self {
        let total_units = units(limit.max(MIN_LIMIT));
        MemoryLimiter {
            sem: Arc::new(Semaphore::new(total_units as usize)),
            total_units,
            waiting: AtomicUsize::new(0),
            streams: AtomicUsize::new(0),
            held: Default::default(),
            prefetching: Arc::new(AtomicU64::new(0)),
            reclaimers: Mutex::new(Vec::new()),
        }
    }

    /// The budget in bytes.
    pub fn limit(&self) -> u64 {
        self.total_units * UNIT
    }

    /// Bytes reserved now (cache included).
    pub fn used(&self) -> u64 {
        (self.total_units - self.sem.available_permits() as u64) * UNIT
    }

    /// Bytes held for `kind` (the block cache's share is [`Self::cache_bytes`]).
    pub fn held(&self, kind: Use) -> u64 {
        self.held[kind.index()].load(Ordering::Relaxed)
    }

    /// Bytes the registered caches hold.
    pub fn cache_bytes(&self) -> u64 {
        self.reclaimers()
            .iter()
            .filter(|r| r.is_cache())
            .map(|r| r.held())
            .sum()
    }

    /// Bytes prefetch holds now.
    pub fn prefetch_bytes(&self) -> u64 {
        self.prefetching.load(Ordering::Relaxed)
    }

    /// Whether someone waits for room (the cache then stops growing).
    pub fn has_waiters(&self) -> bool {
        self.waiting.load(Ordering::Relaxed) > 0
    }

    /// Register a cache that gives budget back when room is short.
    pub fn add_reclaimer(&self, r: Weak<dyn Reclaim>) {
        let mut list = self.reclaimers.lock().unwrap_or_else(|p| p.into_inner());
        list.retain(|w| w.strong_count() > 0);
        list.push(r);
    }

    fn reclaimers(&self) -> Vec<Arc<dyn Reclaim>> {
        let list = self.reclaimers.lock().unwrap_or_else(|p| p.into_inner());
        list.iter().filter_map(Weak::upgrade).collect()
    }

    fn free(&self) -> u64 {
        self.sem.available_permits() as u64 * UNIT
    }

    /// Ask the reclaimers, in order, to give back enough for `bytes` more than is free now.
    /// Two rounds: blocks dropped by a read handle may still be in the cache, and the other
    /// way round.
    fn make_room(&self, bytes: u64) {
        let reclaimers = self.reclaimers();
        for _ in 0..2 {
            for r in &reclaimers {
                let short = bytes.saturating_sub(self.free());
                if short == 0 {
                    return;
                }
                r.reclaim(short);
            }
        }
    }

    fn permit(&'static self, p: OwnedSemaphorePermit, bytes: u64, kind: Use) -> MemPermit {
        self.held[kind.index()].fetch_add(bytes, Ordering::Relaxed);
        MemPermit {
            _permit: p,
            bytes,
            kind,
            prefetch: None,
            claimed: AtomicBool::new(false),
            limiter: self,
        }
    }

    /// Reserve `bytes`, waiting (in turn) for room; fails only if `bytes` exceeds the budget.
    pub async fn acquire(&'static self, bytes: u64, kind: Use) -> Result<MemPermit, TooLarge> {
        let n = units(bytes);
        if n > self.total_units {
            return Err(TooLarge {
                wanted: bytes,
                limit: self.limit(),
            });
        }
        // Only a caller first in line may jump in; otherwise it queues behind the waiters.
        if !self.has_waiters() {
            if let Ok(p) = self.sem.clone().try_acquire_many_owned(n as u32) {
                return Ok(self.permit(p, bytes, kind));
            }
            self.make_room(bytes);
            if let Ok(p) = self.sem.clone().try_acquire_many_owned(n as u32) {
                return Ok(self.permit(p, bytes, kind));
            }
        }
        self.waiting.fetch_add(1, Ordering::Relaxed);
        let _guard = WaitGuard(&self.waiting);
        // Room freed since the failed try may have gone to the cache again; evict once more.
        self.make_room(bytes);
        match self.sem.clone().acquire_many_owned(n as u32).await {
            Ok(p) => Ok(self.permit(p, bytes, kind)),
            // The semaphore is never closed.
            Err(_) => Err(TooLarge {
                wanted: bytes,
                limit: self.limit(),
            }),
        }
    }

    /// Reserve `bytes` for prefetch, never waiting: only while the budget stays within the
    /// prefetch share once they are taken. Cached blocks are evicted to make room (not other
    /// streams' prefetch); waiters go first.
    pub fn try_prefetch(&'static self, bytes: u64) -> Option<MemPermit> {
        if self.has_waiters() {
            return None;
        }
        let cap = self.limit() * PREFETCH_SHARE_PERCENT / 100;
        let reserve = self.limit() - cap;
        let n = units(bytes) as u32;
        if self.free() < reserve + bytes {
            for r in self.reclaimers().iter().filter(|r| r.is_cache()) {
                let short = (reserve + bytes).saturating_sub(self.free());
                if short == 0 {
                    break;
                }
                r.reclaim(short);
            }
            if self.free() < reserve + bytes {
                return None;
            }
        }
        let p = self.sem.clone().try_acquire_many_owned(n).ok()?;
        self.prefetching.fetch_add(bytes, Ordering::Relaxed);
        let mut permit = self.permit(p, bytes, Use::Read);
        permit.prefetch = Some(self.prefetching.clone());
        Some(permit)
    }

    /// Count a sequential stream while the guard lives.
    pub fn register_stream(&'static self) -> StreamGuard {
        self.streams.fetch_add(1, Ordering::Relaxed);
        StreamGuard(self)
    }

    /// Largest prefetch window one stream should keep: an equal slice of the prefetch share.
    pub fn prefetch_window(&self) -> u64 {
        let streams = self.streams.load(Ordering::Relaxed).max(1) as u64;
        self.limit() * PREFETCH_SHARE_PERCENT / 100 / streams
    }

    /// `(name, bytes)` of each use, for the metrics.
    pub fn breakdown(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<(&'static str, u64)> =
            Use::ALL.iter().map(|u| (u.name(), self.held(*u))).collect();
        out.push(("cache", self.cache_bytes()));
        out
    }
}

/// Make glibc's allocator hand memory back rather than keep one arena per thread: with the
/// default (8 arenas per core), bytes freed by one runtime thread are not reused by another and
/// the resident size grows well past what is live. The mmap threshold is pinned at 1 MiB:
/// glibc raises it to the largest block freed so far, after which 8 MiB GET buffers come from
/// the heap and stay resident when freed (the receive-buffer pool keeps the ones worth reusing).
/// Measured on 8 parallel readers at `memory_limit=64M`: peak RSS 129-196 MiB without, 100-139
/// MiB with; one cold 1 GiB read, three alternating runs: 0.47-0.49 CPU-s/GB either way.
/// Call once, before threads start.
pub fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only adjusts allocator parameters; called before other threads exist.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 2);
        libc::mallopt(libc::M_MMAP_THRESHOLD, 1 << 20);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leak(limit: u64) -> &'static MemoryLimiter {
        Box::leak(Box::new(MemoryLimiter::new(limit)))
    }

    struct FakeCache {
        held: Mutex<Vec<MemPermit>>,
    }

    impl Reclaim for FakeCache {
        fn reclaim(&self, bytes: u64) -> u64 {
            let mut held = self.held.lock().unwrap();
            let mut freed = 0;
            while freed < bytes {
                let Some(p) = held.pop() else { break };
                freed += p.bytes();
            }
            freed
        }
        fn held(&self) -> u64 {
            self.held.lock().unwrap().iter().map(|p| p.bytes()).sum()
        }
    }

    #[tokio::test]
    async fn waits_for_room_and_refuses_only_what_cannot_fit() {
        let l = leak(16 << 20);
        let a = l.acquire(12 << 20, Use::Write).await.unwrap();
        assert_eq!(l.used(), 12 << 20);
        assert!(l.acquire(17 << 20, Use::Write).await.is_err());
        let waiter = tokio::spawn(l.acquire(8 << 20, Use::Write));
        tokio::task::yield_now().await;
        assert!(!waiter.is_finished());
        drop(a);
        let b = waiter.await.unwrap().unwrap();
        assert_eq!(l.held(Use::Write), 8 << 20);
        drop(b);
        assert_eq!(l.used(), 0);
    }

    #[tokio::test]
    async fn cache_gives_way_and_prefetch_stays_within_its_share() {
        let l = leak(16 << 20);
        let cache = Arc::new(FakeCache {
            held: Mutex::new(Vec::new()),
        });
        let weak: Weak<dyn Reclaim> = Arc::downgrade(&(cache.clone() as Arc<dyn Reclaim>));
        l.add_reclaimer(weak);
        for _ in 0..16 {
            let p = l.acquire(1 << 20, Use::Read).await.unwrap();
            cache.held.lock().unwrap().push(p);
        }
        assert_eq!(l.used(), 16 << 20);
        // A waited-for request evicts cached blocks instead of waiting.
        let w = l.acquire(4 << 20, Use::Write).await.unwrap();
        assert_eq!(cache.held(), 12 << 20);
        // Prefetch may fill the budget up to 75 % (12 MiB, 4 of them already written), evicting
        // the cache for it.
        let mut pre = Vec::new();
        while let Some(p) = l.try_prefetch(1 << 20) {
            pre.push(p);
        }
        assert_eq!(pre.len(), 8);
        assert_eq!(l.prefetch_bytes(), 8 << 20);
        assert_eq!(cache.held(), 0);
        drop(w);
        // Claimed prefetch no longer counts against the share.
        pre.iter().for_each(MemPermit::claim);
        assert_eq!(l.prefetch_bytes(), 0);
        assert!(l.try_prefetch(1 << 20).is_some());
        let _s1 = l.register_stream();
        let s2 = l.register_stream();
        assert_eq!(l.prefetch_window(), 6 << 20);
        drop(s2);
        assert_eq!(l.prefetch_window(), 12 << 20);
    }
}
