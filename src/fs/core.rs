//! The filesystem core: every operation as an async fn returning `FsResult`. It knows nothing
//! of the FUSE wire protocol (see `mod.rs` for the adapter) nor of HTTP (see `ObjectStore`).

use std::collections::HashMap;
use std::ffi::OsStr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use fuser::FileAttr;
use tokio::sync::OnceCell;

use crate::cache::{BlockCache, TtlCache};
use crate::cos::ObjectStore;
use crate::metrics;

use super::attr::{file_attr, AttrDefaults, Kind, PosixMeta, Stat};
use super::dir::{self, HiddenKeys, Listing, MAX_NAME_BYTES};
use super::error::{FsError, FsResult};
use super::inode::{InodeTable, Node};
use super::read::ReadHandle;

mod mutate;
pub use mutate::WriteSettings;

/// COS rejects keys longer than this (cos-protocol.md §11).
pub const MAX_KEY_BYTES: usize = crate::cos::limits::MAX_KEY_BYTES;
/// Bound of the metadata cache in entries (a listing weighs its entry count).
pub const META_CACHE_ENTRIES: usize = 1_000_000;

/// What the core needs from the mount options.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Key prefix of the mount root: "" or ending with `/`.
    pub prefix: String,
    pub defaults: AttrDefaults,
    /// TTL of cosmount's metadata and listing cache.
    pub stat_ttl: Duration,
    /// Byte budget of the block cache.
    pub cache_size: u64,
    pub read_only: bool,
}

/// An open directory: the listing snapshot readdir pages through, so offsets stay stable.
pub struct DirHandle {
    pub ino: u64,
    pub path: Arc<str>,
    listing: OnceCell<Arc<Listing>>,
}

pub struct FsCore<S: ObjectStore> {
    store: Arc<S>,
    cfg: FsConfig,
    mount_time: SystemTime,
    inodes: InodeTable,
    /// Directory path -> listing; answers lookups (and misses) inside recently listed dirs.
    listings: TtlCache<Arc<str>, Arc<Listing>>,
    /// Path -> what a remote lookup found (`None` = negative entry).
    lookups: TtlCache<String, Option<(Kind, Stat)>>,
    blocks: Arc<BlockCache>,
    hidden: HiddenKeys,
    /// Handles increase monotonically and are never reused, so a stale fh is EBADF.
    next_fh: AtomicU64,
    files: Mutex<HashMap<u64, Arc<ReadHandle>>>,
    dirs: Mutex<HashMap<u64, Arc<DirHandle>>>,
    /// Files open for writing, and the upload settings (see `mutate.rs`).
    writers: mutate::Writers<S>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

impl<S: ObjectStore> FsCore<S> {
    pub fn new(store: Arc<S>, cfg: FsConfig) -> Self {
        let mount_time = SystemTime::now();
        FsCore {
            store,
            mount_time,
            inodes: InodeTable::new(Stat::directory(mount_time)),
            listings: TtlCache::new(META_CACHE_ENTRIES, cfg.stat_ttl),
            lookups: TtlCache::new(META_CACHE_ENTRIES, cfg.stat_ttl),
            // Registered with the memory limiter (crate::memory), which evicts from it.
            blocks: BlockCache::shared(cfg.cache_size),
            hidden: HiddenKeys::default(),
            next_fh: AtomicU64::new(1),
            files: Mutex::new(HashMap::new()),
            dirs: Mutex::new(HashMap::new()),
            writers: mutate::Writers::new(),
            cfg,
        }
    }

    pub fn config(&self) -> &FsConfig {
        &self.cfg
    }

    pub fn store(&self) -> &Arc<S> {
        &self.store
    }

    /// The object key of a file path.
    pub(crate) fn file_key(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.prefix)
    }

    /// The key prefix of a directory path ("" or ending with `/`).
    pub(crate) fn dir_prefix(&self, path: &str) -> String {
        if path.is_empty() {
            self.cfg.prefix.clone()
        } else {
            format!("{}{path}/", self.cfg.prefix)
        }
    }

    pub(crate) fn node(&self, ino: u64) -> FsResult<Node> {
        self.inodes.get(ino).ok_or(FsError::UnknownInode(ino))
    }

    pub fn attr_of(&self, ino: u64, kind: Kind, stat: &Stat) -> FileAttr {
        file_attr(ino, kind, stat, &self.cfg.defaults)
    }

    fn next_handle(&self) -> u64 {
        self.next_fh.fetch_add(1, Ordering::Relaxed)
    }

    /// Find `name` in directory `parent`, from the parent's cached listing, the lookup cache,
    /// or one LIST request; the kernel then holds one more reference to the result.
    pub async fn lookup(&self, parent: u64, name: &OsStr) -> FsResult<FileAttr> {
        let dir = self.node(parent)?;
        if dir.kind != Kind::Dir {
            return Err(FsError::NotADirectory);
        }
        // COS keys are UTF-8, and cannot hold CR/LF: such a name cannot exist.
        let name = name.to_str().ok_or(FsError::NotFound)?;
        if name.len() > MAX_NAME_BYTES {
            return Err(FsError::NameTooLong(format!("{} bytes", name.len())));
        }
        if name.contains(['\n', '\r']) || !dir::valid_name(name) {
            return Err(FsError::NotFound);
        }
        let path = child_path(&dir.path, name);
        let key = self.file_key(&path);
        if key.len() + 1 > MAX_KEY_BYTES {
            return Err(FsError::NameTooLong(format!("key of {} bytes", key.len())));
        }
        let m = metrics::global();
        let found = if let Some(writing) = self.lookup_while_writing(&path) {
            Some(writing)
        } else if let Some(listing) = self.listings.get(&dir.path) {
            metrics::Metrics::add(&m.meta_cache_hits, 1);
            listing.get(name).map(|e| (e.kind, e.stat.clone()))
        } else if let Some(cached) = self.lookups.get(&path) {
            metrics::Metrics::add(&m.meta_cache_hits, 1);
            cached
        } else {
            metrics::Metrics::add(&m.meta_cache_misses, 1);
            let found = dir::lookup_key(&*self.store, &key, self.mount_time).await?;
            self.lookups.insert(path.clone(), found.clone(), 1);
            found
        };
        let found = found.ok_or(FsError::NotFound)?;
        let (kind, stat) = self.refine_lookup(&path, &key, found).await?;
        let (ino, kind, stat) = self.inodes.remember_kind(&path, kind, stat);
        Ok(self.attr_of(ino, kind, &stat))
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.inodes.forget(ino, n);
    }

    /// Attributes; a file whose metadata is older than the stat TTL is checked with one LIST.
    pub async fn getattr(&self, ino: u64) -> FsResult<FileAttr> {
        if let Some(attr) = self.attr_while_writing(ino) {
            return Ok(attr);
        }
        let node = self.node(ino)?;
        if node.kind == Kind::Dir || node.stat_at.elapsed() < self.cfg.stat_ttl {
            return Ok(self.attr_of(ino, node.kind, &node.stat));
        }
        let key = self.file_key(&node.path);
        match dir::lookup_key(&*self.store, &key, self.mount_time).await? {
            Some((Kind::File, stat)) => {
                let node = self
                    .inodes
                    .refresh(ino, stat)
                    .ok_or(FsError::UnknownInode(ino))?;
                Ok(self.attr_of(ino, node.kind, &node.stat))
            }
            // Deleted, or now a directory (which gets its own inode on the next lookup).
            _ => Err(FsError::NotFound),
        }
    }

    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        let node = self.node(ino)?;
        if node.kind != Kind::Dir {
            return Err(FsError::NotADirectory);
        }
        let fh = self.next_handle();
        let handle = DirHandle {
            ino,
            path: node.path.clone(),
            listing: OnceCell::new(),
        };
        lock(&self.dirs).insert(fh, Arc::new(handle));
        Ok(fh)
    }

    /// The open directory's listing, fetched on first use (or taken from the listing cache).
    pub async fn dir_listing(&self, fh: u64) -> FsResult<(Arc<DirHandle>, Arc<Listing>)> {
        let handle = lock(&self.dirs)
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle(fh))?;
        let listing = handle
            .listing
            .get_or_try_init(|| async {
                if let Some(l) = self.listings.get(&handle.path) {
                    return Ok::<_, FsError>(self.with_files_being_written(&handle.path, l));
                }
                let prefix = self.dir_prefix(&handle.path);
                let l = Arc::new(
                    dir::list_dir(&*self.store, &prefix, self.mount_time, &self.hidden).await?,
                );
                self.listings
                    .insert(handle.path.clone(), l.clone(), l.entries.len());
                Ok(self.with_files_being_written(&handle.path, l))
            })
            .await?
            .clone();
        Ok((handle, listing))
    }

    /// READDIRPLUS hands the kernel a reference to each entry, like a lookup.
    pub fn remember_entry(&self, dir_path: &str, e: &dir::DirEntry) -> FileAttr {
        let path = child_path(dir_path, &e.name);
        let (ino, kind, stat) = self.inodes.remember_kind(&path, e.kind, e.stat.clone());
        self.attr_of(ino, kind, &stat)
    }

    /// The inode number an entry has (or gets) without adding a kernel reference (plain
    /// READDIR only reports the number).
    pub fn peek_entry_ino(&self, dir_path: &str, e: &dir::DirEntry) -> u64 {
        let attr = self.remember_entry(dir_path, e);
        self.inodes.forget(attr.ino.0, 1);
        attr.ino.0
    }

    /// The parent's inode number for `..` (the root is its own parent).
    pub fn parent_ino(&self, path: &str) -> u64 {
        let parent = path.rsplit_once('/').map_or("", |(p, _)| p);
        if parent.is_empty() {
            return super::inode::ROOT_INO;
        }
        // Only used for readdir's informational `..` entry: no reference is taken.
        let (ino, _) = self
            .inodes
            .remember(parent, Kind::Dir, Stat::directory(self.mount_time));
        self.inodes.forget(ino, 1);
        ino
    }

    pub fn releasedir(&self, fh: u64) {
        lock(&self.dirs).remove(&fh);
    }

    /// Open a file for reading: one HEAD for the current ETag, size and x-cos-meta-*.
    /// Returns the handle and whether the kernel may keep its page cache (same ETag as the
    /// previous open).
    pub async fn open(&self, ino: u64, write: bool) -> FsResult<(u64, bool)> {
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Err(FsError::IsADirectory);
        }
        if write {
            return Err(FsError::ReadOnly);
        }
        let key = self.file_key(&node.path);
        let info = self.store.head_object(&key).await.map_err(|e| {
            if e.is_not_found() {
                FsError::NotFound
            } else {
                FsError::from(e)
            }
        })?;
        let stat = Stat {
            size: info.size,
            etag: Some(info.etag.clone()),
            mtime: info.last_modified,
            posix: Some(PosixMeta::from_meta(&info.meta)),
        };
        self.inodes.refresh(ino, stat);
        let keep_cache = self.inodes.note_open(ino, &info.etag);
        let fh = self.next_handle();
        lock(&self.files).insert(
            fh,
            Arc::new(ReadHandle::new(ino, &key, &info.etag, info.size)),
        );
        Ok((fh, keep_cache))
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        if let Some(result) = self.read_writer(fh, offset, size).await {
            return result;
        }
        let handle = lock(&self.files)
            .get(&fh)
            .cloned()
            .ok_or(FsError::BadHandle(fh))?;
        handle.read(&self.store, &self.blocks, offset, size).await
    }

    pub fn release(&self, fh: u64) {
        lock(&self.files).remove(&fh);
    }

    pub fn has_file_handle(&self, fh: u64) -> bool {
        lock(&self.files).contains_key(&fh) || self.is_write_handle(fh)
    }

    /// access(2): existence, and EROFS for write access on a read-only mount. Permission bits
    /// are checked by the kernel (the mount uses default_permissions).
    pub fn access(&self, ino: u64, wants_write: bool) -> FsResult<()> {
        self.node(ino)?;
        if wants_write && self.cfg.read_only {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }
}
