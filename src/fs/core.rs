//! The filesystem core: every operation as an async fn returning `FsResult`. It knows nothing
//! of the FUSE wire protocol (see `mod.rs` for the adapter) nor of HTTP (see `ObjectStore`).

use std::ffi::OsStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use fuser::FileAttr;
use tokio::sync::OnceCell;

use crate::cache::BlockCache;
use crate::cos::ObjectStore;

use super::attr::{file_attr, AttrDefaults, Kind, Stat};
use super::error::{FsError, FsResult};
use super::names::inode::Node;
use super::names::listing::{self as dir, Listing, MAX_NAME_BYTES};
use super::names::{child_path, MetaSource, Names, NamesConfig};
use super::read::ReadHandle;

mod handles;
mod mutate;
use handles::{Handle, HandleTable};
pub use mutate::WriteSettings;

/// COS rejects keys longer than this (cos-protocol.md §11).
pub const MAX_KEY_BYTES: usize = crate::cos::limits::MAX_KEY_BYTES;

/// What the core needs from the mount options.
#[derive(Debug, Clone)]
pub struct FsConfig {
    /// Key prefix of the mount root: "" or ending with `/`.
    pub prefix: String,
    pub defaults: AttrDefaults,
    /// TTL of cosmount's metadata and listing cache.
    pub stat_ttl: Duration,
    /// How long after COS confirmed a file's ETag an open trusts it without a HEAD (the
    /// kernel's attribute timeout, capped by `stat_ttl`; zero: every open sends a HEAD).
    pub open_trust: Duration,
    /// Byte budget of the block cache.
    pub cache_size: u64,
    pub read_only: bool,
    /// Where POSIX metadata comes from (`-o meta=`).
    pub meta: MetaSource,
    /// Where learned metadata is kept across mounts (None: not kept).
    pub learned_file: Option<std::path::PathBuf>,
}

/// An open directory: the listing snapshot readdir pages through, so offsets stay stable.
pub struct DirHandle {
    pub ino: u64,
    pub path: Arc<str>,
    listing: OnceCell<Arc<Listing>>,
}

/// The orchestrator of FUSE operations: namespace state lives in [`Names`], data in the read
/// and write handles and the block cache.
pub struct FsCore<S: ObjectStore> {
    store: Arc<S>,
    cfg: FsConfig,
    names: Names<S>,
    blocks: Arc<BlockCache>,
    /// Every open fh: read, write and directory handles.
    handles: HandleTable<S>,
    /// Files open for writing, and the upload settings (see `mutate.rs`).
    writers: mutate::Writers,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl<S: ObjectStore> FsCore<S> {
    pub fn new(store: Arc<S>, cfg: FsConfig) -> Self {
        let names = Names::new(
            store.clone(),
            NamesConfig {
                prefix: cfg.prefix.clone(),
                stat_ttl: cfg.stat_ttl,
                meta: cfg.meta,
                learned_file: cfg.learned_file.clone(),
            },
        );
        FsCore {
            store,
            names,
            // Registered with the memory limiter (crate::memory), which evicts from it.
            blocks: BlockCache::shared(cfg.cache_size),
            handles: HandleTable::new(),
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

    pub fn names(&self) -> &Names<S> {
        &self.names
    }

    /// The object key of a file path.
    pub(crate) fn file_key(&self, path: &str) -> String {
        self.names.file_key(path)
    }

    /// The key prefix of a directory path ("" or ending with `/`).
    pub(crate) fn dir_prefix(&self, path: &str) -> String {
        self.names.dir_prefix(path)
    }

    pub(crate) fn node(&self, ino: u64) -> FsResult<Node> {
        self.names.node(ino)
    }

    pub fn attr_of(&self, ino: u64, kind: Kind, stat: &Stat) -> FileAttr {
        let mut attr = file_attr(ino, kind, stat, &self.cfg.defaults);
        if self.names.inodes.is_unlinked(ino) {
            attr.nlink = 0;
        }
        attr
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
        let found = match self.lookup_while_writing(&path) {
            Some(writing) => Some(writing),
            None => self.names.lookup(&dir.path, name).await?,
        };
        let (kind, stat) = found.ok_or(FsError::NotFound)?;
        let (ino, kind, stat) = self.names.inodes.remember_kind(&path, kind, stat);
        Ok(self.attr_of(ino, kind, &stat))
    }

    pub fn forget(&self, ino: u64, n: u64) {
        self.names.inodes.forget(ino, n);
    }

    /// Attributes; a file whose metadata is older than the stat TTL is checked against COS
    /// (through its directory's listing, see [`Names::revalidate`]).
    pub async fn getattr(&self, ino: u64) -> FsResult<FileAttr> {
        self.getattr_through(ino, None).await
    }

    /// getattr as fstat(2) sends it, with the handle. A read handle superseded by a write
    /// through this mount gets EIO: the kernel asks this before it would end a read at the
    /// writer's (maybe smaller) size, and a silent early end of file would be a lie about the
    /// version the handle reads.
    pub async fn getattr_through(&self, ino: u64, fh: Option<u64>) -> FsResult<FileAttr> {
        if let Some(handle) = fh.and_then(|fh| self.handles.read(fh)) {
            if handle.is_superseded() {
                return Err(FsError::ObjectChanged {
                    key: handle.key().to_string(),
                    opened: handle.etag().to_string(),
                });
            }
        }
        if let Some(attr) = self.attr_while_writing(ino) {
            return Ok(attr);
        }
        match self.names.revalidate(ino).await? {
            Some(node) => Ok(self.attr_of(ino, node.kind, &node.stat)),
            // Deleted, or now another kind (which gets its own inode on the next lookup).
            None => Err(FsError::NotFound),
        }
    }

    pub fn opendir(&self, ino: u64) -> FsResult<u64> {
        let node = self.node(ino)?;
        if node.kind != Kind::Dir {
            return Err(FsError::NotADirectory);
        }
        let handle = DirHandle {
            ino,
            path: node.path.clone(),
            listing: OnceCell::new(),
        };
        Ok(self.handles.insert(Handle::Dir(Arc::new(handle))))
    }

    /// The open directory's listing, fetched on first use (or taken from the listing cache).
    pub async fn dir_listing(&self, fh: u64) -> FsResult<(Arc<DirHandle>, Arc<Listing>)> {
        let handle = self.handles.dir(fh).ok_or(FsError::BadHandle(fh))?;
        let listing = handle
            .listing
            .get_or_try_init(|| async {
                let l = self.names.listing(&handle.path).await?;
                Ok::<_, FsError>(self.with_files_being_written(&handle.path, l))
            })
            .await?
            .clone();
        Ok((handle, listing))
    }

    /// READDIRPLUS hands the kernel a reference to each entry, like a lookup.
    pub fn remember_entry(&self, dir_path: &str, e: &dir::DirEntry) -> FileAttr {
        let (ino, kind, stat) = self.names.remember_entry(dir_path, e);
        self.attr_of(ino, kind, &stat)
    }

    /// The inode number an entry has (or gets) without adding a kernel reference.
    pub fn peek_entry_ino(&self, dir_path: &str, e: &dir::DirEntry) -> u64 {
        self.names.peek_entry_ino(dir_path, e)
    }

    /// The parent's inode number for `..` (the root is its own parent).
    pub fn parent_ino(&self, path: &str) -> u64 {
        self.names.parent_ino(path)
    }

    pub fn releasedir(&self, fh: u64) {
        self.handles.remove(fh);
    }

    /// Open a file for reading. The first open of a version just looked up needs no request:
    /// the lookup gave its size and ETag (confirmed by COS within `open_trust`), and the first
    /// GET's If-Match validates them (a stale ETag re-opens the handle on the current version,
    /// see [`Self::read`]). Other opens ask COS with a HEAD: older metadata, and an open that
    /// would let the kernel keep its page cache (same ETag as the previous open of the inode),
    /// since the kernel then serves cached pages without asking us.
    /// Returns the handle and whether the kernel may keep its page cache.
    pub async fn open(&self, ino: u64, write: bool) -> FsResult<(u64, bool)> {
        let node = self.node(ino)?;
        if node.kind == Kind::Dir {
            return Err(FsError::IsADirectory);
        }
        if write {
            return Err(FsError::ReadOnly);
        }
        if let Some(fh) = self.share_for_reading(ino) {
            return Ok((fh, false));
        }
        let key = self.file_key(&node.path);
        if let Some(etag) = node.stat.etag.as_deref() {
            let fresh = node.stat_at.elapsed() < self.cfg.open_trust;
            if fresh && !self.names.inodes.was_opened_at(ino, etag) {
                self.names.inodes.note_open(ino, etag);
                let handle = ReadHandle::new(ino, &key, etag, node.stat.size, false);
                let fh = self.handles.insert(Handle::Read(Arc::new(handle)));
                return Ok((fh, false));
            }
        }
        let handle = self.open_current(ino, &key, true).await?;
        let keep_cache = self.names.inodes.note_open(ino, handle.etag());
        let fh = self.handles.insert(Handle::Read(handle));
        Ok((fh, keep_cache))
    }

    /// A read handle on the object's current version, from a HEAD; the kernel's attributes (and
    /// with `drop_pages` its pages) of the inode are dropped if that is another version than it
    /// was told.
    async fn open_current(
        &self,
        ino: u64,
        key: &str,
        drop_pages: bool,
    ) -> FsResult<Arc<ReadHandle>> {
        let info = self.store.head_object(key).await.map_err(|e| {
            if e.is_not_found() {
                FsError::NotFound
            } else {
                FsError::from(e)
            }
        })?;
        self.names.note_opened(ino, key, &info, drop_pages).await?;
        Ok(Arc::new(ReadHandle::new(
            ino, key, &info.etag, info.size, true,
        )))
    }

    pub async fn read(&self, fh: u64, offset: u64, size: u32) -> FsResult<Bytes> {
        if let Some(result) = self.read_writer(fh, offset, size).await {
            return result;
        }
        let handle = self.handles.read(fh).ok_or(FsError::BadHandle(fh))?;
        match handle.read(&self.store, &self.blocks, offset, size).await {
            // The ETag the open took from the lookup is stale, and the reader has seen no byte
            // of it: re-open at the current version, as a HEAD at open would have.
            Err(e)
                if e.is_object_changed() && !handle.is_confirmed() && !handle.is_superseded() =>
            {
                // The handle's own key: the path may have been renamed since the open.
                let key = handle.key().to_string();
                let current = self.open_current(handle.ino, &key, false).await?;
                // The kernel reads up to the size it was told; past a shorter object's end it
                // would fill in zeros: fail this open instead (the next one sees the new size).
                if current.size() < handle.size() {
                    tracing::info!(key, "object shrank since its lookup: this open fails, the next one reads the new version");
                    return Err(e);
                }
                tracing::debug!(key, "ETag from the lookup was stale; re-opening");
                self.names.inodes.note_open(handle.ino, current.etag());
                let handle = self
                    .handles
                    .replace_read(fh, &handle, current)
                    .ok_or(FsError::BadHandle(fh))?;
                handle.read(&self.store, &self.blocks, offset, size).await
            }
            other => other,
        }
    }

    /// Whether the kernel may cache the attributes of `ino`: not while a read handle it
    /// superseded is open, so that reads past the writer's size ask [`Self::getattr_through`].
    pub fn attrs_cacheable(&self, ino: u64) -> bool {
        !self.handles.has_superseded_reader(ino)
    }

    pub fn release(&self, fh: u64) {
        if let Some(handle) = self.handles.read(fh) {
            if handle.is_superseded() {
                // Its reads went through the page cache with its own (old) version.
                self.names.inodes.forget_open(handle.ino);
            }
        }
        self.handles.remove(fh);
    }

    pub fn has_file_handle(&self, fh: u64) -> bool {
        self.handles.read(fh).is_some() || self.is_write_handle(fh)
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
