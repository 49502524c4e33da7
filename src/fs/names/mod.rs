//! The namespace's one owner: which names exist and what they are.
//!
//! `Names` holds every piece of namespace state the mount keeps, and is the only code that
//! changes or invalidates it:
//! - the inode table (`inode.rs`): inode number <-> path, the kernel's lookup counts, and the
//!   stat last reported for each inode;
//! - directory listings (`listing.rs`), kept for `stat_ttl`, *completed* before anyone sees
//!   them: every entry carries its type and POSIX metadata (below);
//! - lookups of single names outside a cached listing, positive and negative, for `stat_ttl`;
//! - what HEAD requests learned, per object version (`learned.rs`), never expired by time and
//!   never overwritten by a listing of the same version.
//!
//! Files being written are an overlay the core puts on top (their size is the writer's); the
//! handles that write them live in the core's handle tables.
//!
//! # Truth at a known cost
//! A listing shows size, ETag and LastModified only. An entry whose version has nothing learned
//! is resolved by a HEAD (of the object, or of a directory's `dir/` marker) before the listing
//! is used, up to [`HEAD_PARALLELISM`] at a time. So a cold `ls -l` of N objects costs
//! ceil(N/1000) LIST + N HEAD, a warm one ceil(N/1000) LIST + 0 HEAD, whatever the kernel's
//! TTLs do in between; objects cosmount wrote itself cost no HEAD. With `meta=list` no HEAD is
//! ever made for metadata: entries get the mount's defaults (and symlinks written by other
//! tools look like files).
//!
//! An expired listing is fetched again whole (once, however many lookups wait for it) when it
//! held at most [`WHOLE_REFRESH_MAX`] entries, so a long `cp -r` costs a LIST per directory per
//! `stat_ttl`, not one per file.

pub mod inode;
pub mod learned;
pub mod listing;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use fuser::{INodeNo, Notifier};
use futures::stream::{self, StreamExt};

use crate::cache::TtlCache;
use crate::cos::store::ObjectInfo;
use crate::cos::ObjectStore;

use super::attr::{Kind, PosixMeta, Stat};
use super::error::{FsError, FsResult};
use super::namespace;
use inode::{InodeTable, Node};
use learned::{Known, Learned, LearnedMeta, Version};
use listing::{DirEntry, HiddenKeys, Listing};

/// What a name is: its kind and stat.
pub type Found = (Kind, Stat);

/// HEADs in flight while a listing is completed.
pub const HEAD_PARALLELISM: usize = 32;
/// An expired listing up to this many entries is fetched again whole when a lookup needs it.
pub const WHOLE_REFRESH_MAX: usize = 10_000;
/// Bound of the listing and lookup caches in entries (a listing weighs its entry count).
pub const META_CACHE_ENTRIES: usize = 1_000_000;
/// Bytes of learned metadata kept (about 5 000 records per MiB).
pub const LEARNED_BYTES: usize = 64 << 20;
/// How many directories remember their last entry count (for the whole-refresh decision).
const LISTED_DIRS: usize = 100_000;
/// Invalidations queued for the notifier thread at most.
const INVALIDATION_QUEUE: usize = 4096;
/// How long an open() waits for the kernel to take a cache invalidation.
const INVALIDATE_WAIT: Duration = Duration::from_secs(2);

/// Where POSIX metadata comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum MetaSource {
    /// HEAD every object whose version has nothing learned (cosfs-faithful; the default).
    #[default]
    Head,
    /// Listings only: the mount's defaults for what cosmount did not write itself.
    List,
}

pub struct NamesConfig {
    /// Key prefix of the mount root: "" or ending with `/`.
    pub prefix: String,
    pub stat_ttl: Duration,
    pub meta: MetaSource,
    /// Where learned metadata is saved at unmount (None: not saved).
    pub learned_file: Option<PathBuf>,
}

pub struct Names<S: ObjectStore> {
    store: Arc<S>,
    cfg: NamesConfig,
    mount_time: SystemTime,
    pub(crate) inodes: InodeTable,
    /// Directory path -> its completed listing.
    listings: TtlCache<Arc<str>, Arc<Listing>>,
    /// Path -> what a remote lookup found (`None` = negative entry).
    lookups: TtlCache<String, Option<(Kind, Stat)>>,
    /// Directory path -> entries its last listing had.
    listed: Mutex<lru::LruCache<Arc<str>, usize>>,
    /// One listing fetch per directory at a time.
    flights: Mutex<HashMap<Arc<str>, Arc<tokio::sync::Mutex<()>>>>,
    learned: LearnedMeta,
    hidden: HiddenKeys,
    notifier: OnceLock<Notifier>,
    /// Inode invalidations waiting for the notifier thread (bounded; best effort).
    invalidations: OnceLock<std::sync::mpsc::SyncSender<u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

pub fn child_path(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}/{name}")
    }
}

pub fn parent_of(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(p, _)| p)
}

pub fn name_of(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// Is `path` strictly below directory `dir` (a non-empty path)?
pub fn is_under(path: &str, dir: &str) -> bool {
    path.len() > dir.len() && path.starts_with(dir) && path.as_bytes()[dir.len()] == b'/'
}

/// The kind a HEAD reveals.
pub fn kind_of(info: &ObjectInfo) -> Kind {
    match Kind::from_type_bits(namespace::object_type_bits(&info.key, &info.meta)) {
        // An object (not a `dir/` marker) whose mode says directory: shown as a file.
        Kind::Dir => Kind::File,
        k => k,
    }
}

/// What a HEAD says about a file, as a stat.
pub fn stat_of(info: &ObjectInfo) -> Stat {
    Stat {
        size: info.size,
        etag: Some(info.etag.clone()),
        mtime: info.last_modified,
        posix: Some(PosixMeta::from_meta(&info.meta)),
    }
}

/// Did the object behind a stat change (another version)?
fn version_changed(old: &Stat, new: &Stat) -> bool {
    old.etag.is_some() && (old.etag != new.etag || old.size != new.size)
}

impl<S: ObjectStore> Names<S> {
    pub fn new(store: Arc<S>, cfg: NamesConfig) -> Self {
        let mount_time = SystemTime::now();
        let learned = LearnedMeta::new(LEARNED_BYTES);
        if let Some(path) = &cfg.learned_file {
            match learned.load(path) {
                Ok(0) => {}
                Ok(n) => {
                    tracing::debug!(records = n, path = %path.display(), "learned metadata loaded")
                }
                Err(e) => {
                    tracing::warn!(path = %path.display(), "learned metadata not loaded: {e}")
                }
            }
        }
        Names {
            store,
            mount_time,
            inodes: InodeTable::new(Stat::directory(mount_time)),
            listings: TtlCache::new(META_CACHE_ENTRIES, cfg.stat_ttl),
            lookups: TtlCache::new(META_CACHE_ENTRIES, cfg.stat_ttl),
            listed: Mutex::new(lru::LruCache::new(
                std::num::NonZeroUsize::new(LISTED_DIRS).unwrap_or(std::num::NonZeroUsize::MIN),
            )),
            flights: Mutex::new(HashMap::new()),
            learned,
            hidden: HiddenKeys::default(),
            notifier: OnceLock::new(),
            invalidations: OnceLock::new(),
            cfg,
        }
    }

    /// The kernel channel, once the session exists: lets a version change reach the kernel.
    pub fn set_notifier(&self, notifier: Notifier) {
        let (tx, rx) = std::sync::mpsc::sync_channel::<u64>(INVALIDATION_QUEUE);
        let worker = notifier.clone();
        // One thread sends them: a notification can wait for the kernel, which may itself
        // wait for a reply of ours, so never from a request's task.
        let spawned = std::thread::Builder::new()
            .name("cosmount-inval".into())
            .spawn(move || {
                while let Ok(ino) = rx.recv() {
                    if let Err(e) = worker.inval_inode(INodeNo(ino), 0, 0) {
                        tracing::debug!(ino, "inode invalidation: {e}");
                    }
                }
            });
        if spawned.is_ok() {
            let _ = self.invalidations.set(tx);
        }
        let _ = self.notifier.set(notifier);
    }

    /// Save learned metadata for the next mount (at unmount).
    pub fn save_learned(&self) {
        let Some(path) = &self.cfg.learned_file else {
            return;
        };
        match self.learned.save(path) {
            Ok(n) => tracing::debug!(records = n, path = %path.display(), "learned metadata saved"),
            Err(e) => tracing::warn!(path = %path.display(), "learned metadata not saved: {e}"),
        }
    }

    /// The object key of a file path.
    pub fn file_key(&self, path: &str) -> String {
        format!("{}{path}", self.cfg.prefix)
    }

    /// The key prefix of a directory path ("" or ending with `/`); also its marker's key.
    pub fn dir_prefix(&self, path: &str) -> String {
        if path.is_empty() {
            self.cfg.prefix.clone()
        } else {
            format!("{}{path}/", self.cfg.prefix)
        }
    }

    pub fn node(&self, ino: u64) -> FsResult<Node> {
        self.inodes.get(ino).ok_or(FsError::UnknownInode(ino))
    }

    // ---- reading the namespace ----

    /// The completed listing of directory `path`: cached, or fetched (one fetch at a time per
    /// directory; the others wait for it and share it).
    pub async fn listing(&self, path: &Arc<str>) -> FsResult<Arc<Listing>> {
        if let Some(l) = self.listings.get(path) {
            return Ok(l);
        }
        let gate = lock(&self.flights).entry(path.clone()).or_default().clone();
        let result = {
            let _turn = gate.lock().await;
            match self.listings.get(path) {
                Some(l) => Ok(l),
                None => self.fetch_listing(path).await,
            }
        };
        let mut flights = lock(&self.flights);
        if flights.get(path).is_some_and(|g| Arc::strong_count(g) <= 2) {
            flights.remove(path);
        }
        result
    }

    async fn fetch_listing(&self, path: &Arc<str>) -> FsResult<Arc<Listing>> {
        let prefix = self.dir_prefix(path);
        let (raw, marker) =
            listing::list_dir(&*self.store, &prefix, self.mount_time, &self.hidden).await?;
        if !path.is_empty() {
            self.check_marker(&prefix, marker.as_ref());
        }
        let l = Arc::new(self.complete(&prefix, raw).await?);
        for e in &l.entries {
            self.note_seen(&child_path(path, &e.name), e.kind, &e.stat);
        }
        self.listings
            .insert(path.clone(), l.clone(), l.entries.len());
        lock(&self.listed).put(path.clone(), l.entries.len());
        Ok(l)
    }

    /// A directory's own listing shows its marker: a record learned for another marker version
    /// (or for a marker that is gone) is dropped.
    fn check_marker(&self, marker_key: &str, seen: Option<&Version>) {
        let Some(rec) = self.learned.any(marker_key) else {
            return;
        };
        let implied = rec.version == Version::implied();
        match seen {
            // Made by this mount (mkdir, chmod): the marker's version was not known until now.
            Some(v) if rec.version.last_modified.is_none() => self.learned.insert(
                marker_key,
                Learned {
                    version: v.clone(),
                    ..rec
                },
            ),
            Some(v) => {
                if implied || !matches!(self.learned.check(marker_key, v), Known::Same(_)) {
                    self.learned.remove(marker_key);
                }
            }
            None => {
                if !implied {
                    self.learned.remove(marker_key);
                }
            }
        }
    }

    /// Give every entry its type and POSIX metadata: from what was learned for its version,
    /// else (with `meta=head`) from a HEAD. An object deleted since the listing is dropped.
    async fn complete(&self, prefix: &str, raw: Listing) -> FsResult<Listing> {
        let mut entries = raw.entries;
        let mut unknown = Vec::new();
        for (i, e) in entries.iter_mut().enumerate() {
            let key = format!("{prefix}{}", e.name);
            if !self.apply_learned(&key, e) {
                unknown.push((i, key));
            }
        }
        if unknown.is_empty() || self.cfg.meta == MetaSource::List {
            return Ok(Listing::from_entries(entries));
        }
        let resolved: Vec<(usize, FsResult<Option<Found>>)> =
            stream::iter(unknown.into_iter().map(|(i, key)| {
                let (kind, stat) = (entries[i].kind, entries[i].stat.clone());
                async move { (i, self.head_entry(&key, kind, stat).await) }
            }))
            .buffer_unordered(HEAD_PARALLELISM)
            .collect()
            .await;
        let mut gone = Vec::new();
        for (i, r) in resolved {
            match r? {
                Some((kind, stat)) => {
                    entries[i].kind = kind;
                    entries[i].stat = stat;
                }
                None => gone.push(i),
            }
        }
        gone.sort_unstable();
        for i in gone.into_iter().rev() {
            entries.remove(i);
        }
        Ok(Listing::from_entries(entries))
    }

    /// Fill `e` from a learned record of its version; false when nothing applies.
    fn apply_learned(&self, key: &str, e: &mut DirEntry) -> bool {
        let rec = match e.kind {
            Kind::Dir => self.learned.any(&format!("{key}/")),
            Kind::File | Kind::Symlink | Kind::Special(_) => match &e.stat.etag {
                Some(etag) => {
                    let seen = Version::seen(etag, e.stat.size, e.stat.mtime);
                    match self.learned.check(key, &seen) {
                        Known::Same(rec) => Some(rec),
                        Known::Unknown => None,
                    }
                }
                None => None,
            },
        };
        match rec {
            Some(rec) => {
                if e.kind != Kind::Dir {
                    e.kind = rec.kind;
                }
                e.stat.posix = Some(rec.posix);
                true
            }
            None => false,
        }
    }

    /// One HEAD for an entry nothing is known about; records what it learned. `None`: the
    /// object is gone.
    async fn head_entry(
        &self,
        key: &str,
        kind: Kind,
        stat: Stat,
    ) -> FsResult<Option<(Kind, Stat)>> {
        if kind == Kind::Dir {
            let marker = format!("{key}/");
            let (version, posix) = match self.store.head_object(&marker).await {
                Ok(info) => (
                    Version::seen(&info.etag, info.size, info.last_modified),
                    PosixMeta::from_meta(&info.meta),
                ),
                // Implied by its children: the mount's defaults, and nothing to ask again.
                Err(e) if e.is_not_found() => (Version::implied(), PosixMeta::default()),
                Err(e) => return Err(e.into()),
            };
            self.learned.insert(
                &marker,
                Learned {
                    version,
                    kind: Kind::Dir,
                    posix: posix.clone(),
                },
            );
            return Ok(Some((
                Kind::Dir,
                Stat {
                    posix: Some(posix),
                    ..stat
                },
            )));
        }
        let info = match self.store.head_object(key).await {
            Ok(info) => info,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let kind = kind_of(&info);
        let stat = stat_of(&info);
        self.learn_head(key, &info);
        Ok(Some((kind, stat)))
    }

    /// Record what a HEAD of a file said (any caller that did one: open, readlink, setattr).
    pub fn learn_head(&self, key: &str, info: &ObjectInfo) {
        self.learned.insert(
            key,
            Learned {
                version: Version::seen(&info.etag, info.size, info.last_modified),
                kind: kind_of(info),
                posix: PosixMeta::from_meta(&info.meta),
            },
        );
    }

    /// Resolve one entry found by a single-key LIST (no listing cached).
    async fn resolve_one(
        &self,
        key: &str,
        kind: Kind,
        stat: Stat,
    ) -> FsResult<Option<(Kind, Stat)>> {
        let mut e = DirEntry {
            name: String::new(),
            kind,
            stat,
        };
        if self.apply_learned(key, &mut e) || self.cfg.meta == MetaSource::List {
            return Ok(Some((e.kind, e.stat)));
        }
        self.head_entry(key, e.kind, e.stat).await
    }

    /// What `name` in directory `dir_path` is: from the directory's listing (fetched again
    /// whole if it expired and was small), else the lookup cache, else one LIST.
    pub async fn lookup(&self, dir_path: &Arc<str>, name: &str) -> FsResult<Option<(Kind, Stat)>> {
        let path = child_path(dir_path, name);
        if let Some(l) = self.listings.get(dir_path) {
            return Ok(l.get(name).map(|e| (e.kind, e.stat.clone())));
        }
        // With stat_ttl=0 nothing is cached, so a whole listing per lookup would only cost more.
        let was_listed = lock(&self.listed).get(dir_path).copied();
        if !self.cfg.stat_ttl.is_zero() && was_listed.is_some_and(|n| n <= WHOLE_REFRESH_MAX) {
            let l = self.listing(dir_path).await?;
            return Ok(l.get(name).map(|e| (e.kind, e.stat.clone())));
        }
        if let Some(cached) = self.lookups.get(&path) {
            return Ok(cached);
        }
        let key = self.file_key(&path);
        let found = match listing::lookup_key(&*self.store, &key, self.mount_time).await? {
            Some((kind, stat)) => self.resolve_one(&key, kind, stat).await?,
            None => None,
        };
        if let Some((kind, stat)) = &found {
            self.note_seen(&path, *kind, stat);
        }
        self.lookups.insert(path, found.clone(), 1);
        Ok(found)
    }

    /// The attributes of `ino`, checked against COS (through the parent's listing or a lookup)
    /// when older than `stat_ttl`. `None`: the object is gone or is no longer this kind.
    pub async fn revalidate(&self, ino: u64) -> FsResult<Option<Node>> {
        let node = self.node(ino)?;
        if node.kind == Kind::Dir || node.stat_at.elapsed() < self.cfg.stat_ttl {
            return Ok(Some(node));
        }
        let parent: Arc<str> = Arc::from(parent_of(&node.path));
        match self.lookup(&parent, name_of(&node.path)).await? {
            Some((kind, stat)) if kind == node.kind => {
                self.note_seen(&node.path, kind, &stat);
                Ok(self.inodes.get(ino))
            }
            _ => Ok(None),
        }
    }

    /// COS showed `path` as `kind` with `stat` (a listing, a lookup, a HEAD at open): the inode
    /// takes it, and when the version changed the kernel drops what it cached of the inode.
    pub fn note_seen(&self, path: &str, kind: Kind, stat: &Stat) {
        let Some((ino, node)) = self.inodes.by_path(path) else {
            return;
        };
        if node.kind != kind {
            return;
        }
        let changed = version_changed(&node.stat, stat);
        self.inodes.refresh(ino, stat.clone());
        if changed {
            self.invalidate_kernel(ino);
        }
    }

    /// An open() saw the object's current version with a HEAD: record it everywhere (inode,
    /// parent listing, learned metadata). If it is another version than the kernel was told,
    /// the kernel's attributes (and with `drop_pages` its pages) of the inode are dropped before
    /// this returns, so a longer object is read whole. From inside a READ, pages must be kept:
    /// the kernel holds the ones being read locked until the reply, and a size change drops
    /// the others anyway once the kernel fetches the new attributes.
    pub async fn note_opened(
        &self,
        ino: u64,
        key: &str,
        info: &ObjectInfo,
        drop_pages: bool,
    ) -> FsResult<Node> {
        let node = self.node(ino)?;
        let stat = stat_of(info);
        self.learn_head(key, info);
        let changed = version_changed(&node.stat, &stat);
        let node = self
            .inodes
            .refresh(ino, stat.clone())
            .ok_or(FsError::UnknownInode(ino))?;
        self.patch_parent_listing(
            &node.path,
            Some(DirEntry {
                name: name_of(&node.path).to_string(),
                kind: node.kind,
                stat,
            }),
        );
        if changed {
            if let Some(n) = self.notifier.get().cloned() {
                // Offset -1: the kernel drops the attributes only.
                let offset = if drop_pages { 0 } else { -1 };
                let task =
                    tokio::task::spawn_blocking(move || n.inval_inode(INodeNo(ino), offset, 0));
                match tokio::time::timeout(INVALIDATE_WAIT, task).await {
                    Ok(Ok(Err(e))) => tracing::debug!(ino, "inode invalidation: {e}"),
                    Err(_) => tracing::debug!(ino, "inode invalidation still pending"),
                    _ => {}
                }
            }
        }
        Ok(node)
    }

    /// Drop the kernel's cached attributes and pages of `ino`, without waiting (the kernel
    /// may need a reply of ours first to take it). When the queue is full the kernel still
    /// drops them when its `attr_timeout` ends and the next open sees the new ETag.
    fn invalidate_kernel(&self, ino: u64) {
        if let Some(tx) = self.invalidations.get() {
            if tx.try_send(ino).is_err() {
                tracing::debug!(ino, "inode invalidation queue full");
            }
        }
    }

    /// READDIRPLUS hands the kernel a reference to each entry, like a lookup.
    pub fn remember_entry(&self, dir_path: &str, e: &DirEntry) -> (u64, Kind, Stat) {
        self.inodes
            .remember_kind(&child_path(dir_path, &e.name), e.kind, e.stat.clone())
    }

    /// The inode number an entry has (or gets) without adding a kernel reference (plain
    /// READDIR only reports the number).
    pub fn peek_entry_ino(&self, dir_path: &str, e: &DirEntry) -> u64 {
        let (ino, _, _) = self.remember_entry(dir_path, e);
        self.inodes.forget(ino, 1);
        ino
    }

    /// The parent's inode number for `..` (the root is its own parent).
    pub fn parent_ino(&self, path: &str) -> u64 {
        let parent = parent_of(path);
        if parent.is_empty() {
            return inode::ROOT_INO;
        }
        if let Some((ino, _)) = self.inodes.by_path(parent) {
            return ino;
        }
        // Only used for readdir's informational `..` entry: no reference is taken.
        let (ino, _) = self
            .inodes
            .remember(parent, Kind::Dir, Stat::directory(self.mount_time));
        self.inodes.forget(ino, 1);
        ino
    }

    /// What is at `path` by what is cached (a known inode, the parent's listing, a lookup),
    /// else by one LIST. No HEAD: only the kind is needed.
    pub async fn kind_at(&self, path: &str) -> FsResult<Option<Kind>> {
        if let Some((_, node)) = self.inodes.by_path(path) {
            return Ok(Some(node.kind));
        }
        if let Some(listing) = self.listings.get(&Arc::from(parent_of(path))) {
            return Ok(listing.get(name_of(path)).map(|e| e.kind));
        }
        if let Some(cached) = self.lookups.get(&path.to_string()) {
            return Ok(cached.map(|(kind, _)| kind));
        }
        let found =
            listing::lookup_key(&*self.store, &self.file_key(path), self.mount_time).await?;
        Ok(found.map(|(kind, _)| kind))
    }

    // ---- changes made through the mount: the only invalidation code ----

    /// Forget cached knowledge about `path` and its parent's listing.
    pub fn invalidate_path(&self, path: &str) {
        self.listings.remove(&Arc::from(parent_of(path)));
        self.lookups.remove(&path.to_string());
    }

    /// Forget cached knowledge about `path` and everything under it.
    pub fn invalidate_tree(&self, path: &str) {
        self.invalidate_path(path);
        self.forget_under(path);
    }

    /// Forget the cached listings of directory `path` and below, lookups and learned metadata
    /// below it.
    fn forget_under(&self, path: &str) {
        self.listings
            .remove_where(|p: &Arc<str>| &**p == path || is_under(p, path));
        self.lookups.remove_where(|p: &String| is_under(p, path));
        if !path.is_empty() {
            self.learned.remove_under(&self.dir_prefix(path));
        }
    }

    /// `path` is gone: a later lookup answers ENOENT without asking COS (whose listings may
    /// still show it for a while), and the parent's cached listing no longer shows it.
    pub fn note_removed(&self, path: &str) {
        self.inodes.unlink_path(path);
        self.patch_parent_listing(path, None);
        self.lookups.insert(path.to_string(), None, 1);
        self.learned.remove(&self.file_key(path));
        self.learned.remove(&self.dir_prefix(path));
    }

    /// cosmount made `path` `kind` with `stat` (a write, mkdir, symlink, chmod): what it wrote
    /// is learned (so no HEAD is needed to know it), and the parent's cached listing is patched
    /// rather than dropped, so the next lookups in that directory, e.g. of the next file
    /// `cp -r` creates, are still answered without a LIST.
    pub fn note_present(&self, path: &str, kind: Kind, stat: Stat) {
        self.lookups.remove(&path.to_string());
        if let Some(posix) = &stat.posix {
            let (key, etag) = match kind {
                Kind::Dir => (self.dir_prefix(path), stat.etag.clone().unwrap_or_default()),
                Kind::File | Kind::Symlink | Kind::Special(_) => {
                    (self.file_key(path), stat.etag.clone().unwrap_or_default())
                }
            };
            if kind == Kind::Dir || !etag.is_empty() {
                let size = if kind == Kind::Dir { 0 } else { stat.size };
                self.learned.insert(
                    &key,
                    Learned {
                        version: Version::written(&etag, size),
                        kind,
                        posix: posix.clone(),
                    },
                );
            }
        }
        let name = name_of(path).to_string();
        self.patch_parent_listing(path, Some(DirEntry { name, kind, stat }));
    }

    /// A new, empty directory: its listing is known without asking (the lookup before mkdir
    /// found nothing under that name), which spares a LIST for each name created in it next.
    pub fn note_new_dir(&self, path: &str) {
        self.listings
            .insert(Arc::from(path), Arc::new(Listing::default()), 1);
    }

    /// `from` was renamed to `to` (a file, or a directory with everything under it).
    pub fn note_renamed(&self, from: &str, to: &str, kind: Kind) {
        self.inodes.rename_path(from, to);
        match kind {
            Kind::Dir => {
                self.invalidate_tree(from);
                self.invalidate_tree(to);
            }
            Kind::File | Kind::Symlink | Kind::Special(_) => {
                self.learned.remove(&self.file_key(from));
                self.learned.remove(&self.file_key(to));
                self.invalidate_path(from);
                self.lookups.insert(from.to_string(), None, 1);
                self.invalidate_path(to);
            }
        }
    }

    fn patch_parent_listing(&self, path: &str, entry: Option<DirEntry>) {
        let name = name_of(path);
        self.listings
            .update(&Arc::from(parent_of(path)), |listing| {
                let patched = match entry {
                    Some(e) => listing.with_entry(e),
                    None => listing.without(name),
                };
                let weight = patched.entries.len();
                (Arc::new(patched), weight)
            });
    }
}
