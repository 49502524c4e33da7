//! The mutating half of the core: files open for writing, and namespace changes (create,
//! mkdir, unlink, rmdir, rename, symlink, setattr). The object-level work is in
//! [`crate::fs::write`] and [`crate::fs::namespace`]; this module keeps the core's caches
//! truthful around it: every change updates the inode table and drops the listing and lookup
//! cache entries it makes stale, so `ls` right after `mv`, `rm` or `cp` shows the new state.

use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use bytes::Bytes;
use fuser::FileAttr;

use super::{child_path, lock, FsCore, MAX_KEY_BYTES};
use crate::cos::store::{ObjectInfo, PutOptions};
use crate::cos::ObjectStore;
use crate::fs::attr::{Kind, PosixMeta, Stat};
use crate::fs::error::{FsError, FsResult};
use crate::fs::names::listing::{self as dir, MAX_NAME_BYTES};
use crate::fs::names::{is_under, parent_of};

use super::handles::Handle;
use crate::fs::namespace::{self, AttrUpdate, NamespaceConfig};
use crate::fs::spool;
use crate::fs::write::{FileAttrs, WriteConfig, WriteHandle};

/// Where and how files are uploaded.
#[derive(Debug, Clone)]
pub struct WriteSettings {
    pub write: WriteConfig,
    pub namespace: NamespaceConfig,
}

impl WriteSettings {
    /// Defaults, spooling under `cache_dir/spool` (created, mode 0700).
    pub fn in_cache_dir(cache_dir: &Path) -> std::io::Result<Self> {
        Ok(WriteSettings {
            write: WriteConfig::new(spool::spool_dir(cache_dir)?),
            namespace: NamespaceConfig::default(),
        })
    }
}

/// One file open for writing: shared by every write handle (fh) open on the inode, as a
/// local file is, so two writers through this mount see each other's bytes and there is one
/// spool and one upload per file.
pub(super) struct OpenWriter<S: ObjectStore> {
    ino: u64,
    /// Follows renames of the file while it is open.
    path: Mutex<String>,
    handle: tokio::sync::Mutex<WriteHandle<S>>,
    /// The handle's size, readable while an upload holds the handle.
    size: Arc<AtomicU64>,
    /// The file was unlinked while open: its data must not be uploaded any more.
    unlinked: AtomicBool,
}

impl<S: ObjectStore> OpenWriter<S> {
    fn path(&self) -> String {
        lock(&self.path).clone()
    }
}

/// How many times release commits a file that setattr changed meanwhile.
const RELEASE_COMMIT_ROUNDS: usize = 3;

/// The write side's settings inside the core (the open files are in the handle table).
pub(super) struct Writers {
    settings: Mutex<Option<WriteSettings>>,
}

impl Writers {
    pub(super) fn new() -> Self {
        Writers {
            settings: Mutex::new(None),
        }
    }
}

/// The process (thread group) of a task id, as FUSE requests carry the calling thread's id.
fn thread_group_of(pid: u32) -> u32 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("Tgid:"))
                .and_then(|v| v.trim().parse().ok())
        })
        .unwrap_or(pid)
}

fn posix_of(attrs: &FileAttrs) -> PosixMeta {
    PosixMeta {
        mode: Some(attrs.mode),
        uid: Some(attrs.uid),
        gid: Some(attrs.gid),
        mtime: Some(attrs.mtime),
        ctime: Some(attrs.ctime),
        atime: attrs.atime,
    }
}

/// Bytes COS cannot hold in a key (cos-protocol.md §11), or that no name may contain.
fn invalid_name_byte(b: u8) -> bool {
    matches!(b, b'\n' | b'\r' | 0x18..=0x1B | b'/' | 0)
}

impl<S: ObjectStore> FsCore<S> {
    /// Use these upload settings (spool directory, part size...) instead of the defaults.
    pub fn set_write_settings(&self, settings: WriteSettings) {
        *lock(&self.writers.settings) = Some(settings);
    }

    /// The upload settings; the first use without explicit settings creates the default spool
    /// directory (`$XDG_CACHE_HOME/cosmount`, or `/var/cache/cosmount` for root).
    fn write_settings(&self) -> FsResult<WriteSettings> {
        let mut settings = lock(&self.writers.settings);
        if let Some(s) = settings.as_ref() {
            return Ok(s.clone());
        }
        let cache_dir = spool::default_cache_dir();
        let s = WriteSettings::in_cache_dir(&cache_dir).map_err(|e| {
            FsError::Internal(format!(
                "cannot create the spool directory under {}: {e}",
                cache_dir.display()
            ))
        })?;
        *settings = Some(s.clone());
        Ok(s)
    }

    fn check_writable(&self) -> FsResult<()> {
        if self.cfg.read_only {
            return Err(FsError::ReadOnly);
        }
        Ok(())
    }

    /// Path and key of a new entry `name` in directory `parent`, checked against COS's rules.
    fn new_child(&self, parent: u64, name: &OsStr) -> FsResult<(String, String)> {
        let dir = self.node(parent)?;
        if dir.kind != Kind::Dir {
            return Err(FsError::NotADirectory);
        }
        let bytes = name.as_bytes();
        if bytes.len() > MAX_NAME_BYTES {
            return Err(FsError::NameTooLong(format!("{} bytes", bytes.len())));
        }
        let name = name
            .to_str()
            .ok_or_else(|| FsError::InvalidName("not UTF-8".into()))?;
        if bytes.iter().any(|b| invalid_name_byte(*b)) || !dir::valid_name(name) {
            return Err(FsError::InvalidName(name.escape_debug().to_string()));
        }
        let path = child_path(&dir.path, name);
        let key = self.file_key(&path);
        // Room for the `/` of a directory marker too.
        if key.len() + 1 > MAX_KEY_BYTES {
            return Err(FsError::NameTooLong(format!("key of {} bytes", key.len())));
        }
        Ok((path, key))
    }

    fn writer(&self, fh: u64) -> Option<Arc<OpenWriter<S>>> {
        self.handles.write(fh)
    }

    /// The open files matching `pred`, each once (however many fhs share it).
    fn writers_where(&self, pred: impl Fn(&OpenWriter<S>) -> bool) -> Vec<Arc<OpenWriter<S>>> {
        self.handles.writers_where(pred)
    }

    /// The file already open for writing on `ino` (not unlinked), to share.
    fn open_writer_of(&self, ino: u64) -> Option<Arc<OpenWriter<S>>> {
        self.writers_where(|w| w.ino == ino && !w.unlinked.load(Ordering::SeqCst))
            .into_iter()
            .next()
    }

    /// One more fh on an open file.
    fn share_writer(&self, writer: Arc<OpenWriter<S>>) -> u64 {
        self.handles.insert(Handle::Write {
            file: writer,
            opener: None,
            read_only: false,
        })
    }

    /// An open for reading of a file open for writing through this mount: it shares the open
    /// file and reads what was written, as on a local disk (a handle on the committed object
    /// would show the writer's size with the old bytes).
    pub(super) fn share_for_reading(&self, ino: u64) -> Option<u64> {
        let writer = self.open_writer_of(ino)?;
        Some(self.handles.insert(Handle::Write {
            file: writer,
            opener: None,
            read_only: true,
        }))
    }

    /// Remember which process opened `fh` (the FUSE request's pid): only its close commits.
    pub fn note_opener(&self, fh: u64, pid: u32) {
        if self.is_write_handle(fh) {
            self.handles.set_opener(fh, thread_group_of(pid));
        }
    }

    fn register_writer(&self, ino: u64, path: &str, handle: WriteHandle<S>) -> u64 {
        let writer = OpenWriter {
            ino,
            path: Mutex::new(path.to_string()),
            size: handle.shared_size(),
            handle: tokio::sync::Mutex::new(handle),
            unlinked: AtomicBool::new(false),
        };
        self.handles.insert(Handle::Write {
            file: Arc::new(writer),
            opener: None,
            read_only: false,
        })
    }

    /// Is `fh` a handle open for writing?
    pub fn is_write_handle(&self, fh: u64) -> bool {
        self.handles.write(fh).is_some()
    }

    /// Attributes of an inode some handle is writing: the size it has now.
    pub(super) fn attr_while_writing(&self, ino: u64) -> Option<FileAttr> {
        let size = self
            .writers_where(|w| w.ino == ino)
            .first()
            .map(|w| w.size.load(Ordering::SeqCst))?;
        let node = self.node(ino).ok()?;
        let stat = Stat { size, ..node.stat };
        Some(self.attr_of(ino, node.kind, &stat))
    }

    /// A lookup of a path some handle is writing (possibly not uploaded yet).
    pub(super) fn lookup_while_writing(&self, path: &str) -> Option<(Kind, Stat)> {
        let writer = self
            .writers_where(|w| !w.unlinked.load(Ordering::SeqCst) && w.path() == path)
            .into_iter()
            .next()?;
        let node = self.node(writer.ino).ok()?;
        let size = writer.size.load(Ordering::SeqCst);
        Some((Kind::File, Stat { size, ..node.stat }))
    }

    /// A directory's listing plus the files being written in it that COS does not list yet
    /// (created and not uploaded so far).
    pub(super) fn with_files_being_written(
        &self,
        dir_path: &str,
        listing: Arc<dir::Listing>,
    ) -> Arc<dir::Listing> {
        let extra: Vec<dir::DirEntry> = self
            .writers_where(|w| !w.unlinked.load(Ordering::SeqCst))
            .into_iter()
            .filter_map(|w| {
                let path = w.path();
                if parent_of(&path) != dir_path {
                    return None;
                }
                let name = path.rsplit('/').next().unwrap_or(&path).to_string();
                if listing.get(&name).is_some() {
                    return None;
                }
                let (kind, stat) = self.lookup_while_writing(&path)?;
                Some(dir::DirEntry { name, kind, stat })
            })
            .collect();
        if extra.is_empty() {
            listing
        } else {
            Arc::new(listing.with_extra(extra))
        }
    }

    // ---- files open for writing ----

    /// create(2): a new, empty file open for writing. The object appears at the first flush
    /// (close or fsync), never as a placeholder before.
    pub async fn create_file(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<(FileAttr, u64)> {
        self.check_writable()?;
        let (path, key) = self.new_child(parent, name)?;
        let settings = self.write_settings()?;
        let attrs = FileAttrs::regular(mode & !umask, uid, gid);
        let handle = WriteHandle::create(self.store.clone(), &key, settings.write, attrs)?;
        let stat = Stat {
            size: 0,
            etag: None,
            mtime: attrs.mtime,
            posix: Some(posix_of(&attrs)),
        };
        let (ino, stat) = self.names.inodes.remember(&path, Kind::File, stat);
        self.names.inodes.set_stat(ino, stat.clone());
        let fh = self.register_writer(ino, &path, handle);
        self.names.note_present(&path, Kind::File, stat.clone());
        Ok((self.attr_of(ino, Kind::File, &stat), fh))
    }

    /// open(2) for writing: one HEAD for the object's size, ETag and metadata, and one GET
    /// `?acl` for the ACL its upload must send again. Its content is fetched lazily when a
    /// write needs it (never with `truncate`, O_TRUNC).
    ///
    /// Read handles already open on the file are superseded (see [`ReadHandle`]): from now on
    /// the kernel's size and pages of the inode follow the writer.
    pub async fn open_for_write(&self, ino: u64, truncate: bool) -> FsResult<u64> {
        let fh = self.open_for_write_unchecked(ino, truncate).await?;
        self.handles.supersede_readers(ino);
        Ok(fh)
    }

    async fn open_for_write_unchecked(&self, ino: u64, truncate: bool) -> FsResult<u64> {
        self.check_writable()?;
        let node = self.node(ino)?;
        match node.kind {
            Kind::Dir => return Err(FsError::IsADirectory),
            // The kernel resolves symlinks before open; one reaching here is not writable.
            Kind::Symlink => return Err(FsError::InvalidArgument("open of a symlink")),
            // FIFOs and sockets are opened by the kernel itself; device nodes are inert (nodev).
            Kind::Special(_) => return Err(FsError::InvalidArgument("open of a special file")),
            Kind::File => {}
        }
        if let Some(writer) = self.open_writer_of(ino) {
            return self.share_open_file(writer, truncate).await;
        }
        let key = self.file_key(&node.path);
        let settings = self.write_settings()?;
        let handle = match self.store.head_object(&key).await {
            Ok(info) => {
                let attrs = self.attrs_from_meta(&info);
                // The upload replaces the object, and COS resets the ACL of what a PUT or
                // Initiate writes unless it is sent again: learn it now (one GET `?acl`).
                let acl = namespace::acl_to_keep(&*self.store, &key).await?;
                WriteHandle::open_existing(
                    self.store.clone(),
                    &info,
                    truncate,
                    settings.write,
                    attrs,
                )?
                .with_acl(acl)
            }
            // Not uploaded yet (created by a handle still open) or deleted behind our back:
            // start from an empty file, as a new one.
            Err(e) if e.is_not_found() => {
                let posix = node.stat.posix.clone().unwrap_or_default();
                let d = &self.cfg.defaults;
                let attrs = FileAttrs {
                    mode: libc::S_IFREG | (posix.mode.unwrap_or(d.file_mode) & 0o7777),
                    uid: posix.uid.unwrap_or(d.uid),
                    gid: posix.gid.unwrap_or(d.gid),
                    mtime: SystemTime::now(),
                    ctime: SystemTime::now(),
                    atime: None,
                };
                WriteHandle::create(self.store.clone(), &key, settings.write, attrs)?
            }
            Err(e) => return Err(e.into()),
        };
        let stat = Stat {
            size: handle.size(),
            posix: Some(posix_of(&handle.attrs())),
            ..node.stat.clone()
        };
        // Another open of the inode may have won the race while we asked COS: share it.
        if let Some(writer) = self.open_writer_of(ino) {
            drop(handle);
            return self.share_open_file(writer, truncate).await;
        }
        self.names.inodes.set_stat(ino, stat);
        Ok(self.register_writer(ino, &node.path, handle))
    }

    /// open(2) of a file already open for writing: one more fh on the same spool and upload
    /// (O_TRUNC empties it, as on a local file).
    async fn share_open_file(&self, writer: Arc<OpenWriter<S>>, truncate: bool) -> FsResult<u64> {
        if truncate {
            let mut handle = writer.handle.lock().await;
            handle.truncate(0).await?;
            if let Ok(node) = self.node(writer.ino) {
                let stat = Stat {
                    size: 0,
                    mtime: handle.attrs().mtime,
                    ..node.stat
                };
                self.names.inodes.set_stat(writer.ino, stat);
            }
        }
        Ok(self.share_writer(writer))
    }

    fn attrs_from_meta(&self, info: &ObjectInfo) -> FileAttrs {
        let posix = PosixMeta::from_meta(&info.meta);
        let d = &self.cfg.defaults;
        FileAttrs {
            mode: libc::S_IFREG | (posix.mode.unwrap_or(d.file_mode) & 0o7777),
            uid: posix.uid.unwrap_or(d.uid),
            gid: posix.gid.unwrap_or(d.gid),
            mtime: posix.mtime.unwrap_or(info.last_modified),
            ctime: posix.ctime.or(posix.mtime).unwrap_or(info.last_modified),
            atime: posix.atime,
        }
    }

    pub async fn write_file(&self, fh: u64, offset: u64, data: &[u8]) -> FsResult<u32> {
        let writer = self.writer(fh).ok_or(FsError::BadHandle(fh))?;
        let len = u32::try_from(data.len()).map_err(|_| FsError::InvalidArgument("write size"))?;
        writer.handle.lock().await.write_at(offset, data).await?;
        Ok(len)
    }

    /// Reads through a handle open for writing see what was written.
    pub(super) async fn read_writer(
        &self,
        fh: u64,
        offset: u64,
        size: u32,
    ) -> Option<FsResult<Bytes>> {
        let writer = self.writer(fh)?;
        let mut handle = writer.handle.lock().await;
        Some(
            handle
                .read_at(offset, u64::from(size))
                .await
                .map_err(FsError::from),
        )
    }

    /// fsync (and the upload half of close): upload what was written; the real result is
    /// returned.
    pub async fn flush_file(&self, fh: u64) -> FsResult<()> {
        let Some(writer) = self.writer(fh) else {
            return if self.has_file_handle(fh) {
                Ok(())
            } else {
                Err(FsError::BadHandle(fh))
            };
        };
        self.upload(&writer).await
    }

    /// flush as close(2) sends it, from process `pid`. Every close(2) of every descriptor
    /// sends one (a shell's dup'd stdout, each child of `{ ...; } > f`), and close returns its
    /// answer. So only the close by the process that opened the handle commits (uploads) the
    /// file, and only once something was written (`printf x > f` closes a dup of the fresh
    /// O_TRUNC descriptor before writing: that must not upload an empty object); other
    /// flushes report an earlier failure, if any. What no flush committed, release does; fsync
    /// always commits. After a commit by the handle's last fh the spool's disk space is freed
    /// at once (release follows; close returns before it).
    pub async fn close_file(&self, fh: u64, pid: Option<u32>) -> FsResult<()> {
        let Some(writer) = self.writer(fh) else {
            return self.flush_file(fh).await;
        };
        if self.handles.is_read_only_share(fh) {
            // A reader's close commits nothing and reports no writer's error.
            return Ok(());
        }
        let opener = self.handles.opener(fh);
        let by_opener = match (opener, pid) {
            (Some(opener), Some(pid)) => thread_group_of(pid) == opener,
            _ => true,
        };
        // While the mount stops (SIGTERM), a close by a dying process (killed by the same
        // shutdown) is the kernel's, not the program's: the file may be half-written, so it
        // stays in the spool journal instead of being committed.
        let dying =
            crate::fs::journal::stopping() && pid.is_some_and(crate::fs::journal::process_exiting);
        {
            let handle = writer.handle.lock().await;
            if !by_opener || dying || handle.only_open_truncate() {
                return handle.check_failed().map_err(FsError::from);
            }
        }
        self.upload(&writer).await?;
        if self.fhs_of(&writer) == 1 {
            writer.handle.lock().await.drop_local_copy();
        }
        Ok(())
    }

    /// How many fhs share this open file.
    fn fhs_of(&self, writer: &Arc<OpenWriter<S>>) -> usize {
        self.handles.fhs_of(writer)
    }

    async fn upload(&self, writer: &OpenWriter<S>) -> FsResult<()> {
        let mut handle = writer.handle.lock().await;
        if writer.unlinked.load(Ordering::SeqCst) {
            handle.discard();
            return Ok(());
        }
        if !handle.is_dirty() {
            // Still report a failure from earlier (the state is sticky).
            handle.flush().await?;
            return Ok(());
        }
        let result = handle.flush().await?;
        let path = writer.path();
        let stat = Stat {
            size: handle.size(),
            etag: Some(result.etag),
            mtime: handle.attrs().mtime,
            posix: Some(posix_of(&handle.attrs())),
        };
        self.names.inodes.set_stat(writer.ino, stat.clone());
        self.names.note_present(&path, Kind::File, stat);
        Ok(())
    }

    /// release: the last close of a handle. When it is the last fh on the file, this uploads
    /// what no flush committed (its error can only be logged: release has no caller to tell).
    pub async fn release_file(&self, fh: u64) {
        let Some(writer) = self.writer(fh) else {
            self.release(fh);
            return;
        };
        if self.handles.remove_if_shared(fh, &writer) {
            return;
        }
        if crate::fs::journal::stopping() {
            // Stopping: what no close committed stays in the spool journal (the handle's
            // drop keeps its spool file and record).
            self.handles.remove(fh);
            return;
        }
        // Still registered while it uploads: an open meanwhile shares it, never reads a stale
        // object. A setattr that found it registered may change it after the upload: upload
        // again, and unregister under the handle's lock, so no change is left on a handle
        // nobody will commit (setattr checks the registration under that lock too).
        for _ in 0..RELEASE_COMMIT_ROUNDS {
            if let Err(e) = self.upload(&writer).await {
                tracing::error!(path = %writer.path(), "upload at release failed: {e}");
                break;
            }
            let handle = writer.handle.lock().await;
            if !handle.is_dirty() {
                self.handles.remove(fh);
                return;
            }
        }
        self.handles.remove(fh);
    }

    /// What a file open for writing will be uploaded with (headers, user metadata with
    /// cosmount's own mode/uid/gid/mtime, storage class, canned ACL), or `None` when no write
    /// handle is open on `ino`. For xattrs, which must see and change the pending upload.
    pub(crate) async fn open_writer_options(&self, ino: u64) -> Option<PutOptions> {
        let writer = self.writers_where(|w| w.ino == ino).into_iter().next()?;
        let handle = writer.handle.lock().await;
        let mut opts = handle.carried().clone();
        handle.attrs().store_in(&mut opts.meta);
        Some(opts)
    }

    /// Make every write handle open on `ino` upload with `opts` (as given by
    /// [`FsCore::open_writer_options`], changed); cosmount's own metadata keys in it are
    /// replaced by the handle's current attributes at upload time.
    pub(crate) async fn set_open_writer_options(
        &self,
        ino: u64,
        opts: &PutOptions,
    ) -> FsResult<()> {
        for writer in self.writers_where(|w| w.ino == ino) {
            let mut handle = writer.handle.lock().await;
            handle.update_carried(|carried| *carried = opts.clone())?;
        }
        Ok(())
    }

    // ---- attributes ----

    /// setattr: truncate and chmod/chown/utimens. On a file open for writing they ride along
    /// with its upload; otherwise truncate rewrites the object and the rest is a metadata-only
    /// update (copy onto itself).
    #[allow(clippy::too_many_arguments)]
    pub async fn setattr(
        &self,
        ino: u64,
        fh: Option<u64>,
        update: AttrUpdate,
        size: Option<u64>,
    ) -> FsResult<FileAttr> {
        let AttrUpdate {
            mode,
            uid,
            gid,
            mtime,
            atime,
            ..
        } = update;
        let node = self.node(ino)?;
        let changes_meta = update != AttrUpdate::default();
        if size.is_none() && !changes_meta {
            return self.getattr(ino).await;
        }
        self.check_writable()?;
        if size.is_some() && node.kind == Kind::Dir {
            return Err(FsError::IsADirectory);
        }
        let writer = fh
            .and_then(|fh| self.writer(fh))
            .or_else(|| self.writers_where(|w| w.ino == ino).into_iter().next());
        if let Some(writer) = writer {
            let mut handle = writer.handle.lock().await;
            // A writer being released may have been unregistered while we waited for its
            // lock (release unregisters under it): then the object itself is changed, below.
            if self.handles.fhs_of(&writer) == 0 {
                drop(handle);
                return Box::pin(self.setattr(ino, None, update, size)).await;
            }
            if let Some(size) = size {
                handle.truncate(size).await?;
            }
            if changes_meta {
                handle.set_attrs(mode, uid, gid, mtime, atime)?;
            }
            let stat = Stat {
                size: handle.size(),
                mtime: handle.attrs().mtime,
                posix: Some(posix_of(&handle.attrs())),
                ..node.stat.clone()
            };
            let node = self
                .names
                .inodes
                .set_stat(ino, stat)
                .ok_or(FsError::UnknownInode(ino))?;
            return Ok(self.attr_of(ino, node.kind, &node.stat));
        }
        if let Some(size) = size {
            // truncate(2) of a file nobody has open: rewrite it (content fetched as needed).
            let fh = self.open_for_write(ino, size == 0).await?;
            let result = async {
                let writer = self.writer(fh).ok_or(FsError::BadHandle(fh))?;
                {
                    let mut handle = writer.handle.lock().await;
                    handle.truncate(size).await?;
                    if changes_meta {
                        handle.set_attrs(mode, uid, gid, mtime, atime)?;
                    }
                }
                self.upload(&writer).await
            }
            .await;
            self.release_file(fh).await;
            result?;
            let node = self.node(ino)?;
            return Ok(self.attr_of(ino, node.kind, &node.stat));
        }
        let stat = self.update_metadata(&node.path, node.kind, update).await?;
        let node = self
            .names
            .inodes
            .set_stat(ino, stat.clone())
            .ok_or(FsError::UnknownInode(ino))?;
        // What the copy wrote is now what COS holds: learned, and patched into the listing.
        self.names.note_present(&node.path, node.kind, stat);
        Ok(self.attr_of(ino, node.kind, &node.stat))
    }

    /// chmod/chown/utimens on a closed object (a directory's marker, created if the directory
    /// is only implied by its children). Returns the new stat.
    async fn update_metadata(
        &self,
        path: &str,
        kind: Kind,
        mut update: AttrUpdate,
    ) -> FsResult<Stat> {
        // One change time for what is stored and what is reported.
        update.ctime.get_or_insert_with(SystemTime::now);
        let settings = self.write_settings()?;
        let key = match kind {
            Kind::Dir if path.is_empty() => {
                // The mount root has no object to carry metadata.
                return Err(FsError::Unsupported(
                    "changing the attributes of the mount root",
                ));
            }
            Kind::Dir => self.dir_prefix(path),
            Kind::File | Kind::Symlink | Kind::Special(_) => self.file_key(path),
        };
        let info = match self.store.head_object(&key).await {
            Ok(info) => info,
            Err(e) if e.is_not_found() && kind == Kind::Dir => {
                let d = &self.cfg.defaults;
                let perm = update.mode.unwrap_or(d.dir_mode);
                let uid = update.uid.unwrap_or(d.uid);
                let gid = update.gid.unwrap_or(d.gid);
                namespace::make_dir(&*self.store, &key, perm, (uid, gid), SystemTime::now())
                    .await?;
                self.store.head_object(&key).await?
            }
            Err(e) if e.is_not_found() => return Err(FsError::NotFound),
            Err(e) => return Err(e.into()),
        };
        let mut meta = info.meta.clone();
        namespace::apply_attr_update(&key, &mut meta, update);
        let result =
            namespace::set_attributes(&*self.store, &settings.namespace, &info, update).await?;
        let posix = PosixMeta::from_meta(&meta);
        Ok(Stat {
            size: if kind == Kind::Dir { 0 } else { info.size },
            etag: if kind == Kind::Dir {
                None
            } else {
                Some(result.etag)
            },
            mtime: posix.mtime.unwrap_or(info.last_modified),
            posix: Some(posix),
        })
    }

    // ---- namespace ----

    /// mkdir: a `dir/` marker carrying the mode.
    pub async fn mkdir(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        uid: u32,
        gid: u32,
    ) -> FsResult<FileAttr> {
        self.check_writable()?;
        let (path, key) = self.new_child(parent, name)?;
        let perm = mode & !umask & 0o7777;
        let now = SystemTime::now();
        namespace::make_dir(&*self.store, &format!("{key}/"), perm, (uid, gid), now).await?;
        let stat = Stat {
            posix: Some(PosixMeta {
                mode: Some(libc::S_IFDIR | perm),
                uid: Some(uid),
                gid: Some(gid),
                mtime: Some(now),
                ctime: Some(now),
                atime: None,
            }),
            ..Stat::directory(now)
        };
        let (ino, stat) = self.names.inodes.remember(&path, Kind::Dir, stat);
        self.names.note_present(&path, Kind::Dir, stat.clone());
        self.names.note_new_dir(&path);
        Ok(self.attr_of(ino, Kind::Dir, &stat))
    }

    /// mknod: a regular file (an empty object), or a FIFO, socket or device node stored as
    /// s3fs and cosfs store them: an empty object whose `x-cos-meta-mode` carries the type
    /// (and `x-cos-meta-rdev` the device number).
    pub async fn mknod(
        &self,
        parent: u64,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        (uid, gid): (u32, u32),
    ) -> FsResult<FileAttr> {
        let kind = Kind::from_type_bits(mode & libc::S_IFMT);
        if let Kind::Special(type_bits) = kind {
            self.check_writable()?;
            let (path, key) = self.new_child(parent, name)?;
            let perm = mode & !umask & 0o7777;
            let now = SystemTime::now();
            let result = namespace::make_special(
                &*self.store,
                &key,
                type_bits | perm,
                rdev,
                (uid, gid),
                now,
            )
            .await?;
            let stat = Stat {
                size: 0,
                etag: Some(result.etag),
                mtime: now,
                posix: Some(PosixMeta {
                    mode: Some(type_bits | perm),
                    uid: Some(uid),
                    gid: Some(gid),
                    mtime: Some(now),
                    ctime: Some(now),
                    atime: None,
                }),
            };
            let (ino, stat) = self.names.inodes.remember(&path, kind, stat);
            self.names.note_present(&path, kind, stat.clone());
            return Ok(self.attr_of(ino, kind, &stat));
        }
        if kind != Kind::File {
            return Err(FsError::InvalidArgument("mknod of this file type"));
        }
        let (attr, fh) = self
            .create_file(parent, name, mode, umask, uid, gid)
            .await?;
        let writer = self.writer(fh).ok_or(FsError::BadHandle(fh))?;
        let uploaded = self.upload(&writer).await;
        self.handles.remove(fh);
        uploaded?;
        let node = self.node(attr.ino.0)?;
        Ok(self.attr_of(attr.ino.0, node.kind, &node.stat))
    }

    /// unlink: DELETE the object. A handle still writing it stops uploading.
    pub async fn unlink(&self, parent: u64, name: &OsStr) -> FsResult<()> {
        self.check_writable()?;
        let (path, key) = self.new_child(parent, name)?;
        for writer in self.writers_where(|w| w.path() == path) {
            writer.unlinked.store(true, Ordering::SeqCst);
        }
        namespace::remove_file(&*self.store, &key).await?;
        self.names.note_removed(&path);
        Ok(())
    }

    /// rmdir: ENOTEMPTY unless empty (in COS and among files still being written).
    pub async fn rmdir(&self, parent: u64, name: &OsStr) -> FsResult<()> {
        self.check_writable()?;
        let (path, key) = self.new_child(parent, name)?;
        let pending = self
            .writers_where(|w| !w.unlinked.load(Ordering::SeqCst) && is_under(&w.path(), &path));
        if !pending.is_empty() {
            return Err(FsError::NotEmpty);
        }
        namespace::remove_dir(&*self.store, &format!("{key}/")).await?;
        self.names.note_removed(&path);
        self.names.invalidate_tree(&path);
        Ok(())
    }

    /// symlink, stored the cosfs way (body = target, mode S_IFLNK|0777).
    pub async fn symlink(
        &self,
        parent: u64,
        name: &OsStr,
        target: &Path,
        uid: u32,
        gid: u32,
    ) -> FsResult<FileAttr> {
        self.check_writable()?;
        let (path, key) = self.new_child(parent, name)?;
        let target = target.as_os_str().as_bytes();
        let now = SystemTime::now();
        let result = namespace::make_symlink(&*self.store, &key, target, (uid, gid), now).await?;
        let stat = Stat {
            size: target.len() as u64,
            etag: Some(result.etag),
            mtime: now,
            posix: Some(PosixMeta {
                mode: Some(libc::S_IFLNK | 0o777),
                uid: Some(uid),
                gid: Some(gid),
                mtime: Some(now),
                ctime: Some(now),
                atime: None,
            }),
        };
        let (ino, stat) = self.names.inodes.remember(&path, Kind::Symlink, stat);
        // Learned as a symlink: listings of this version show it as one.
        self.names.note_present(&path, Kind::Symlink, stat.clone());
        Ok(self.attr_of(ino, Kind::Symlink, &stat))
    }

    pub async fn readlink(&self, ino: u64) -> FsResult<Vec<u8>> {
        let node = self.node(ino)?;
        let key = self.file_key(&node.path);
        let info = match self.store.head_object(&key).await {
            Ok(info) => info,
            Err(e) if e.is_not_found() => return Err(FsError::NotFound),
            Err(e) => return Err(e.into()),
        };
        Ok(namespace::read_link(&*self.store, &info).await?)
    }

    /// What is at `path` now: a file being written, or what the namespace knows or lists.
    async fn resolve(&self, path: &str) -> FsResult<Option<Kind>> {
        if self.lookup_while_writing(path).is_some() {
            return Ok(Some(Kind::File));
        }
        self.names.kind_at(path).await
    }

    /// rename: copy then delete (a directory: every key under it; not atomic). Files still
    /// open for writing are uploaded first and follow the rename.
    pub async fn rename(
        &self,
        parent: u64,
        name: &OsStr,
        new_parent: u64,
        new_name: &OsStr,
        flags: u32,
    ) -> FsResult<()> {
        self.check_writable()?;
        if flags & libc::RENAME_EXCHANGE != 0 {
            return Err(FsError::InvalidArgument("RENAME_EXCHANGE is not supported"));
        }
        let (from, from_key) = self.new_child(parent, name)?;
        let (to, to_key) = self.new_child(new_parent, new_name)?;
        if from == to {
            return Ok(());
        }
        let kind = self.resolve(&from).await?.ok_or(FsError::NotFound)?;
        let target = self.resolve(&to).await?;
        if flags & libc::RENAME_NOREPLACE != 0 && target.is_some() {
            return Err(FsError::Exists);
        }
        let settings = self.write_settings()?;
        match kind {
            Kind::Dir => {
                if is_under(&to, &from) {
                    return Err(FsError::InvalidArgument(
                        "cannot move a directory into itself",
                    ));
                }
                let to_prefix = self.dir_prefix(&to);
                match target {
                    Some(Kind::Dir)
                        if !namespace::dir_is_empty(&*self.store, &to_prefix).await? =>
                    {
                        return Err(FsError::NotEmpty);
                    }
                    Some(Kind::File | Kind::Symlink | Kind::Special(_)) => {
                        return Err(FsError::NotADirectory)
                    }
                    Some(Kind::Dir) | None => {}
                }
                let moving = self.writers_where(|w| is_under(&w.path(), &from));
                for writer in &moving {
                    self.upload(writer).await?;
                }
                let from_prefix = self.dir_prefix(&from);
                namespace::rename_dir(&*self.store, &settings.namespace, &from_prefix, &to_prefix)
                    .await?;
                for writer in &moving {
                    let new_path = format!("{to}{}", &writer.path()[from.len()..]);
                    self.retarget(writer, &new_path).await?;
                }
                self.names.note_renamed(&from, &to, Kind::Dir);
            }
            Kind::File | Kind::Symlink | Kind::Special(_) => {
                if target == Some(Kind::Dir) {
                    return Err(FsError::IsADirectory);
                }
                let moving =
                    self.writers_where(|w| !w.unlinked.load(Ordering::SeqCst) && w.path() == from);
                // A handle writing the replaced target must not resurrect it.
                let replaced = self.writers_where(|w| w.path() == to);
                for writer in &moving {
                    self.upload(writer).await?;
                }
                let result =
                    namespace::rename_key(&*self.store, &settings.namespace, &from_key, &to_key)
                        .await?;
                for writer in &moving {
                    *lock(&writer.path) = to.clone();
                    writer.handle.lock().await.retarget(&to_key, &result.etag);
                }
                for writer in &replaced {
                    writer.unlinked.store(true, Ordering::SeqCst);
                }
                self.names.note_renamed(&from, &to, kind);
                if let Some((ino, node)) = self.names.inodes.by_path(&to) {
                    let stat = Stat {
                        etag: Some(result.etag.clone()),
                        ..node.stat
                    };
                    self.names.inodes.set_stat(ino, stat);
                }
            }
        }
        Ok(())
    }

    /// A file open for writing moved to `new_path` with its directory: point its handle at
    /// the copy (whose ETag a HEAD tells).
    async fn retarget(&self, writer: &OpenWriter<S>, new_path: &str) -> FsResult<()> {
        let key = self.file_key(new_path);
        let info = self.store.head_object(&key).await?;
        *lock(&writer.path) = new_path.to_string();
        writer.handle.lock().await.retarget(&key, &info.etag);
        Ok(())
    }

    /// link(2): COS has no hard links.
    pub fn link(&self) -> FsResult<FileAttr> {
        Err(FsError::Unsupported("hard links cannot be stored in COS"))
    }
}

#[cfg(test)]
mod tests {
    #[allow(unused_imports)]
    use crate::fs::error::ToErrno;
    use std::ffi::OsStr;
    use std::time::Duration;

    use fuser::{Errno, FileType};

    use super::*;
    use crate::cos::memory::{MemoryStore, StoreOp};
    use crate::fs::attr::AttrDefaults;
    use crate::fs::core::FsConfig;
    use crate::fs::inode::ROOT_INO;

    struct Fixture {
        store: Arc<MemoryStore>,
        core: FsCore<MemoryStore>,
        _spool: tempfile::TempDir,
    }

    fn fixture() -> Fixture {
        let store = Arc::new(MemoryStore::new());
        let cfg = FsConfig {
            prefix: String::new(),
            defaults: AttrDefaults {
                uid: 1,
                gid: 2,
                file_mode: 0o644,
                dir_mode: 0o755,
                read_only: false,
            },
            stat_ttl: Duration::from_secs(3600),
            open_trust: Duration::ZERO,
            cache_size: 16 << 20,
            read_only: false,
            meta: crate::fs::names::MetaSource::Head,
            learned_file: None,
        };
        let core = FsCore::new(store.clone(), cfg);
        let spool = tempfile::tempdir().unwrap();
        let mut settings = WriteSettings::in_cache_dir(spool.path()).unwrap();
        settings.write.part_size = 64 * 1024;
        store.set_min_part_size(64 * 1024);
        core.set_write_settings(settings);
        Fixture {
            store,
            core,
            _spool: spool,
        }
    }

    impl Fixture {
        async fn write_file(&self, parent: u64, name: &str, data: &[u8]) -> u64 {
            let (attr, fh) = self
                .core
                .create_file(parent, OsStr::new(name), 0o640, 0o022, 7, 8)
                .await
                .unwrap();
            for (i, chunk) in data.chunks(10_000).enumerate() {
                self.core
                    .write_file(fh, (i * 10_000) as u64, chunk)
                    .await
                    .unwrap();
            }
            self.core.flush_file(fh).await.unwrap();
            self.core.release_file(fh).await;
            attr.ino.0
        }

        async fn names(&self, ino: u64) -> Vec<(String, FileType)> {
            let fh = self.core.opendir(ino).unwrap();
            let (_, listing) = self.core.dir_listing(fh).await.unwrap();
            self.core.releasedir(fh);
            listing
                .entries
                .iter()
                .map(|e| (e.name.clone(), e.kind.file_type()))
                .collect()
        }

        async fn lookup(&self, parent: u64, name: &str) -> Result<FileAttr, Errno> {
            self.core
                .lookup(parent, OsStr::new(name))
                .await
                .map_err(|e| e.errno())
        }
    }

    fn names(list: &[(&str, FileType)]) -> Vec<(String, FileType)> {
        list.iter().map(|(n, t)| (n.to_string(), *t)).collect()
    }

    #[tokio::test]
    async fn created_file_is_uploaded_on_flush_and_listed_right_after() {
        let f = fixture();
        // Cache the root listing first: the create must not leave it stale.
        assert!(f.names(ROOT_INO).await.is_empty());
        let data: Vec<u8> = (0..150_000u32).map(|i| (i % 253) as u8).collect();
        let (attr, fh) = f
            .core
            .create_file(ROOT_INO, OsStr::new("a.bin"), 0o640, 0o022, 7, 8)
            .await
            .unwrap();
        assert_eq!(attr.perm, 0o640);
        assert!(
            f.store.get("a.bin").is_none(),
            "no placeholder before the upload"
        );
        // Yet the directory shows it while it is being written.
        assert_eq!(
            f.names(ROOT_INO).await,
            names(&[("a.bin", FileType::RegularFile)])
        );
        f.core.write_file(fh, 0, &data).await.unwrap();
        assert_eq!(f.core.getattr(attr.ino.0).await.unwrap().size, 150_000);
        assert_eq!(
            f.core.read(fh, 149_990, 100).await.unwrap(),
            &data[149_990..]
        );
        f.core.flush_file(fh).await.unwrap();
        f.core.release_file(fh).await;
        assert_eq!(f.store.get("a.bin").unwrap(), data);
        let obj = f.store.object("a.bin").unwrap();
        assert_eq!(obj.meta["uid"], "7");
        assert_eq!(
            f.names(ROOT_INO).await,
            names(&[("a.bin", FileType::RegularFile)])
        );
    }

    /// What `cp -r` does: mkdir, then for each file a lookup that misses and a create. The
    /// misses are answered from the (patched) listings: no LIST at all.
    #[tokio::test]
    async fn creating_a_tree_costs_no_listing() {
        let f = fixture();
        assert!(f.names(ROOT_INO).await.is_empty());
        f.store.reset_requests();
        assert_eq!(f.lookup(ROOT_INO, "copy").await.unwrap_err(), Errno::ENOENT);
        let d = f
            .core
            .mkdir(ROOT_INO, OsStr::new("copy"), 0o755, 0o022, 1, 2)
            .await
            .unwrap()
            .ino
            .0;
        for i in 0..20 {
            let name = format!("f{i}");
            assert_eq!(f.lookup(d, &name).await.unwrap_err(), Errno::ENOENT);
            f.write_file(d, &name, name.as_bytes()).await;
        }
        assert_eq!(f.store.requests(StoreOp::ListObjects), 0);
        assert_eq!(f.store.requests(StoreOp::PutObject), 21);
        assert_eq!(f.names(d).await.len(), 20);
        assert_eq!(
            f.names(ROOT_INO).await,
            names(&[("copy", FileType::Directory)])
        );
        assert_eq!(f.store.requests(StoreOp::ListObjects), 0);
    }

    #[tokio::test]
    async fn overwrite_append_and_truncate_through_the_core() {
        let f = fixture();
        let ino = f.write_file(ROOT_INO, "t", b"hello world").await;
        let fh = f.core.open_for_write(ino, false).await.unwrap();
        f.core.write_file(fh, 11, b"!!").await.unwrap();
        f.core.write_file(fh, 0, b"H").await.unwrap();
        f.core.release_file(fh).await;
        assert_eq!(&f.store.get("t").unwrap()[..], b"Hello world!!");
        let attr = f
            .core
            .setattr(ino, None, AttrUpdate::default(), Some(5))
            .await
            .unwrap();
        assert_eq!(attr.size, 5);
        assert_eq!(&f.store.get("t").unwrap()[..], b"Hello");
        let fh = f.core.open_for_write(ino, true).await.unwrap();
        f.core.write_file(fh, 0, b"new").await.unwrap();
        f.core.flush_file(fh).await.unwrap();
        f.core.release_file(fh).await;
        assert_eq!(&f.store.get("t").unwrap()[..], b"new");
    }

    #[tokio::test]
    async fn chmod_chown_utimens_persist_in_cosfs_metadata() {
        let f = fixture();
        let ino = f.write_file(ROOT_INO, "m", b"x").await;
        let when = SystemTime::UNIX_EPOCH + Duration::from_secs(1_500_000_000);
        let attr = f
            .core
            .setattr(
                ino,
                None,
                AttrUpdate {
                    mode: Some(0o600),
                    uid: Some(42),
                    gid: Some(43),
                    mtime: Some(when),
                    atime: None,
                    ctime: None,
                },
                None,
            )
            .await
            .unwrap();
        assert_eq!(
            (attr.perm, attr.uid, attr.gid, attr.mtime),
            (0o600, 42, 43, when)
        );
        let obj = f.store.object("m").unwrap();
        assert_eq!(obj.meta["mode"], (libc::S_IFREG | 0o600).to_string());
        assert_eq!(obj.meta["mtime"], "1500000000");
        assert_eq!(&obj.data[..], b"x");
    }

    #[tokio::test]
    async fn rename_file_and_directory_keep_listings_truthful() {
        let f = fixture();
        let d = f
            .core
            .mkdir(ROOT_INO, OsStr::new("d"), 0o755, 0o022, 1, 2)
            .await
            .unwrap()
            .ino
            .0;
        for i in 0..5 {
            f.write_file(d, &format!("f{i}"), format!("body {i}").as_bytes())
                .await;
        }
        assert_eq!(f.names(d).await.len(), 5);
        f.core
            .rename(d, OsStr::new("f0"), ROOT_INO, OsStr::new("top"), 0)
            .await
            .unwrap();
        assert_eq!(f.names(d).await.len(), 4);
        assert_eq!(&f.store.get("top").unwrap()[..], b"body 0");
        assert_eq!(f.lookup(d, "f0").await.unwrap_err(), Errno::ENOENT);

        f.core
            .rename(ROOT_INO, OsStr::new("d"), ROOT_INO, OsStr::new("e"), 0)
            .await
            .unwrap();
        assert_eq!(
            f.names(ROOT_INO).await,
            names(&[("e", FileType::Directory), ("top", FileType::RegularFile)])
        );
        // The renamed directory keeps its inode; its listing shows the moved files.
        assert_eq!(f.names(d).await.len(), 4);
        assert_eq!(&f.store.get("e/f3").unwrap()[..], b"body 3");
        assert!(f.store.get("d/").is_none());
        assert!(f.store.get("e/").is_some());
        assert_eq!(f.lookup(ROOT_INO, "d").await.unwrap_err(), Errno::ENOENT);
    }

    #[tokio::test]
    async fn rename_of_a_file_still_open_for_writing_follows_it() {
        let f = fixture();
        let (_, fh) = f
            .core
            .create_file(ROOT_INO, OsStr::new("tmp"), 0o644, 0, 0, 0)
            .await
            .unwrap();
        f.core.write_file(fh, 0, b"first").await.unwrap();
        f.core
            .rename(
                ROOT_INO,
                OsStr::new("tmp"),
                ROOT_INO,
                OsStr::new("final"),
                0,
            )
            .await
            .unwrap();
        f.core.write_file(fh, 5, b" second").await.unwrap();
        f.core.flush_file(fh).await.unwrap();
        f.core.release_file(fh).await;
        assert!(f.store.get("tmp").is_none());
        assert_eq!(&f.store.get("final").unwrap()[..], b"first second");
    }

    #[tokio::test]
    async fn rmdir_refuses_non_empty_and_unlink_removes() {
        let f = fixture();
        let d = f
            .core
            .mkdir(ROOT_INO, OsStr::new("d"), 0o750, 0, 1, 2)
            .await
            .unwrap();
        assert_eq!(d.perm, 0o750);
        f.write_file(d.ino.0, "x", b"1").await;
        let err = f.core.rmdir(ROOT_INO, OsStr::new("d")).await.unwrap_err();
        assert_eq!(err.errno(), Errno::ENOTEMPTY);
        f.core.unlink(d.ino.0, OsStr::new("x")).await.unwrap();
        assert!(f.names(d.ino.0).await.is_empty());
        f.core.rmdir(ROOT_INO, OsStr::new("d")).await.unwrap();
        assert!(f.store.keys().is_empty());
        assert_eq!(f.lookup(ROOT_INO, "d").await.unwrap_err(), Errno::ENOENT);
    }

    #[tokio::test]
    async fn unlinking_a_file_being_written_stops_its_upload() {
        let f = fixture();
        let (_, fh) = f
            .core
            .create_file(ROOT_INO, OsStr::new("gone"), 0o644, 0, 0, 0)
            .await
            .unwrap();
        f.core.write_file(fh, 0, b"data").await.unwrap();
        f.core.unlink(ROOT_INO, OsStr::new("gone")).await.unwrap();
        f.core.flush_file(fh).await.unwrap();
        f.core.release_file(fh).await;
        assert!(f.store.get("gone").is_none());
    }

    #[tokio::test]
    async fn symlinks_are_recognised_after_a_remount() {
        let f = fixture();
        let attr = f
            .core
            .symlink(ROOT_INO, OsStr::new("l"), Path::new("../t"), 3, 4)
            .await
            .unwrap();
        assert_eq!(attr.kind, FileType::Symlink);
        assert_eq!(f.core.readlink(attr.ino.0).await.unwrap(), b"../t");
        // A fresh core over the same bucket (a remount) finds it with one HEAD.
        let again = FsCore::new(f.store.clone(), f.core.cfg.clone());
        let attr = again.lookup(ROOT_INO, OsStr::new("l")).await.unwrap();
        assert_eq!((attr.kind, attr.uid), (FileType::Symlink, 3));
        assert_eq!(again.readlink(attr.ino.0).await.unwrap(), b"../t");
    }

    #[tokio::test]
    async fn a_failed_upload_fails_flush_and_keeps_the_old_version() {
        let f = fixture();
        let ino = f.write_file(ROOT_INO, "k", b"old").await;
        f.store.fail_next(StoreOp::PutObject, 100, || {
            MemoryStore::service_error(503, "SlowDown")
        });
        let fh = f.core.open_for_write(ino, true).await.unwrap();
        f.core.write_file(fh, 0, b"new data").await.unwrap();
        let err = f.core.flush_file(fh).await.unwrap_err();
        assert_eq!(err.errno(), Errno::EIO);
        f.core.release_file(fh).await;
        f.store.clear_faults();
        assert_eq!(&f.store.get("k").unwrap()[..], b"old");
        let spooled: Vec<_> = std::fs::read_dir(f._spool.path().join("spool"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|x| x == "part"))
            .map(|p| std::fs::read(p).unwrap())
            .collect();
        assert_eq!(
            spooled,
            vec![b"new data".to_vec()],
            "the data is kept in the spool"
        );
    }

    #[tokio::test]
    async fn hard_links_are_refused_fifos_stored_and_read_only_mounts_refuse_writes() {
        let f = fixture();
        assert_eq!(f.core.link().unwrap_err().errno(), Errno::EPERM);
        let attr = f
            .core
            .mknod(
                ROOT_INO,
                OsStr::new("fifo"),
                libc::S_IFIFO | 0o644,
                0o022,
                0,
                (7, 8),
            )
            .await
            .unwrap();
        assert_eq!(
            (attr.kind, attr.perm, attr.uid),
            (FileType::NamedPipe, 0o644, 7)
        );
        let info = f.store.head_object("fifo").await.unwrap();
        assert_eq!(
            (info.size, info.meta.get("mode").map(String::as_str)),
            (0, Some("4516"))
        );
        let mut cfg = f.core.cfg.clone();
        cfg.read_only = true;
        let ro = FsCore::new(f.store.clone(), cfg);
        let err = ro
            .create_file(ROOT_INO, OsStr::new("x"), 0o644, 0, 0, 0)
            .await
            .unwrap_err();
        assert_eq!(err.errno(), Errno::EROFS);
    }
}
