//! The filesystem. `CosFs` is the fuser adapter: each callback only unpacks its arguments,
//! spawns the matching async fn of [`FsCore`] on the tokio runtime, and replies inside the task,
//! so the FUSE loop never waits on the network and a slow listing never stalls a `cat`
//! (a read-only request whose answer is already in memory is answered on the spot).
//!
//! Errors become errno in one place ([`error::FsError::errno`]) and are logged in one place
//! ([`fail`]). The write side (spool, uploads, namespace changes) lives in `write.rs`,
//! `namespace.rs` and `core/mutate.rs`; on a read-only mount its ops answer EROFS.

pub mod attr;
pub mod caller;
pub mod core;
pub mod error;
pub mod journal;
pub mod names;
pub mod namespace;
pub mod read;
pub mod spool;
pub mod user_meta;
pub mod write;
pub mod xattr;

use std::ffi::OsStr;
use std::future::Future;
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::sync::Arc;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, SystemTime};

use fuser::{
    AccessFlags, Errno, FileHandle, Filesystem, FopenFlags, Generation, INodeNo, InitFlags,
    IoctlFlags, KernelConfig, LockOwner, OpenAccMode, OpenFlags, RenameFlags, ReplyAttr,
    ReplyCreate, ReplyData, ReplyDirectory, ReplyDirectoryPlus, ReplyEmpty, ReplyEntry, ReplyIoctl,
    ReplyOpen, ReplyStatfs, ReplyWrite, ReplyXattr, Request, TimeOrNow, WriteFlags,
};
use tokio::runtime::Handle;

use crate::cos::ObjectStore;

pub use self::core::{FsConfig, FsCore, WriteSettings};
use self::error::ToErrno;
pub use self::names::{inode, listing as dir};

/// Kernel background requests (readahead) allowed in flight; fuser's default of 16 starves a
/// network filesystem whose every request waits on the network.
const MAX_BACKGROUND: u16 = 64;

/// Reported by statfs: COS has no capacity limit, so report a large, round 1 PiB free.
const STATFS_BLOCK: u32 = 4096;
const STATFS_BLOCKS: u64 = (1 << 50) / STATFS_BLOCK as u64;
const STATFS_FILES: u64 = 1 << 32;

/// The fuser `Filesystem` for a COS bucket.
pub struct CosFs<S: ObjectStore> {
    core: Arc<FsCore<S>>,
    rt: Handle,
    /// Kernel entry/attribute TTL.
    ttl: Duration,
}

/// Every reply type has `error(Errno)`; this lets one function reply to any op with an error.
pub trait ErrorReply {
    fn reply_error(self, errno: Errno);
}

macro_rules! error_reply {
    ($($t:ty),*) => {$(
        impl ErrorReply for $t {
            fn reply_error(self, errno: Errno) {
                self.error(errno)
            }
        }
    )*};
}
error_reply!(
    ReplyEntry,
    ReplyAttr,
    ReplyData,
    ReplyOpen,
    ReplyEmpty,
    ReplyDirectory,
    ReplyDirectoryPlus,
    ReplyStatfs,
    ReplyWrite,
    ReplyCreate,
    ReplyXattr
);

/// Reply with the error's errno, logging it: routine misses at debug, everything else (with the
/// COS code and request id inside the error's text) at warn.
pub fn fail<R: ErrorReply, E: ToErrno>(op: &'static str, err: E, reply: R) {
    let errno = err.errno();
    if err.is_routine() {
        tracing::debug!(op, errno = errno.code(), "{err}");
    } else {
        tracing::warn!(op, errno = errno.code(), "{err}");
    }
    reply.reply_error(errno);
}

fn xattr_reply(r: xattr::Reply, reply: ReplyXattr) {
    match r {
        xattr::Reply::Size(n) => reply.size(n),
        xattr::Reply::Data(d) => reply.data(&d),
    }
}

impl<S: ObjectStore> CosFs<S> {
    pub fn new(core: Arc<FsCore<S>>, rt: Handle, ttl: Duration) -> Self {
        CosFs { core, rt, ttl }
    }

    /// Like [`Self::spawn`], for requests that only read (a dropped future leaves nothing
    /// half-changed): abandoned when the caller is killed meanwhile (see [`caller`]).
    ///
    /// Most of these are answered from memory (a cached block or attribute, a run already
    /// fetched), so the future is first polled here, on the FUSE thread: a request that is
    /// ready then costs no wakeup of a runtime thread (about 45 µs each on 2 vCPUs, see
    /// `fuse-ceiling.md`). One that has to wait goes to the runtime as it stands; the runtime's
    /// next poll registers its real waker, as every future must allow.
    fn spawn_killable<F, Fut>(&self, req: &Request, op: &'static str, f: F)
    where
        F: FnOnce(Arc<FsCore<S>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let pid = req.pid();
        let mut fut = Box::pin(f(self.core.clone()));
        {
            let _runtime = self.rt.enter();
            let mut cx = Context::from_waker(Waker::noop());
            // A panic must not take the FUSE loop with it (on the runtime it would end only
            // its task): the reply, dropped unanswered, tells the kernel EIO.
            match std::panic::catch_unwind(AssertUnwindSafe(|| fut.as_mut().poll(&mut cx))) {
                Ok(Poll::Pending) => {}
                Ok(Poll::Ready(())) => return,
                Err(_) => {
                    tracing::error!(op, "request panicked; answered EIO");
                    return;
                }
            }
        }
        self.rt.spawn(async move {
            tokio::select! {
                () = fut => {}
                () = caller::killed(pid) => {
                    tracing::info!(op, pid, "caller was killed while its request waited: abandoned");
                }
            }
        });
    }

    /// Run `f(core)` on the runtime; the closure's future owns its reply and answers it.
    fn spawn<F, Fut>(&self, f: F)
    where
        F: FnOnce(Arc<FsCore<S>>) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.rt.spawn(f(self.core.clone()));
    }
}

/// How long the kernel may keep the attributes of `ino` (see [`FsCore::attrs_cacheable`]);
/// asked once the operation is done, so a write open meanwhile is seen.
fn attr_ttl<S: ObjectStore>(core: &FsCore<S>, ino: u64, ttl: Duration) -> Duration {
    if core.attrs_cacheable(ino) {
        ttl
    } else {
        Duration::ZERO
    }
}

impl<S: ObjectStore> Filesystem for CosFs<S> {
    fn init(&mut self, _req: &Request, config: &mut KernelConfig) -> io::Result<()> {
        // READDIRPLUS always (not AUTO): `ls -l` then needs no lookup per entry.
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_DO_READDIRPLUS) {
            tracing::info!("kernel lacks {missing:?}; directory listings use plain READDIR");
        }
        // O_TRUNC arrives with open() instead of a separate truncate: no empty upload first.
        if let Err(missing) = config.add_capabilities(InitFlags::FUSE_ATOMIC_O_TRUNC) {
            tracing::info!("kernel lacks {missing:?}; O_TRUNC is a separate truncate");
        }
        // A writer opened while an old version is being read gets FOPEN_DIRECT_IO; this lets
        // it still be mmap'ed (kernels from 6.6).
        let _ = config.add_capabilities(InitFlags::FUSE_DIRECT_IO_ALLOW_MMAP);
        let _ = config.set_max_background(MAX_BACKGROUND);
        let _ = config.set_congestion_threshold(MAX_BACKGROUND * 3 / 4);
        Ok(())
    }

    fn lookup(&self, req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEntry) {
        let name = name.to_os_string();
        let ttl = self.ttl;
        self.spawn_killable(req, "lookup", move |core| async move {
            match core.lookup(parent.0, &name).await {
                Ok(attr) => {
                    let ttl = attr_ttl(&core, attr.ino.0, ttl);
                    reply.entry(&ttl, &attr, Generation(0))
                }
                Err(e) => fail("lookup", e, reply),
            }
        });
    }

    fn forget(&self, _req: &Request, ino: INodeNo, nlookup: u64) {
        self.core.forget(ino.0, nlookup);
    }

    fn getattr(&self, req: &Request, ino: INodeNo, fh: Option<FileHandle>, reply: ReplyAttr) {
        let ttl = self.ttl;
        self.spawn_killable(req, "getattr", move |core| async move {
            match core.getattr_through(ino.0, fh.map(|fh| fh.0)).await {
                Ok(attr) => reply.attr(&attr_ttl(&core, ino.0, ttl), &attr),
                Err(e) => fail("getattr", e, reply),
            }
        });
    }

    fn open(&self, req: &Request, ino: INodeNo, flags: OpenFlags, reply: ReplyOpen) {
        let write = flags.acc_mode() != OpenAccMode::O_RDONLY
            || flags.0 & (libc::O_TRUNC | libc::O_APPEND) != 0;
        if write {
            let truncate = flags.0 & libc::O_TRUNC != 0;
            let pid = req.pid();
            return self.spawn(move |core| async move {
                match core.open_for_write(ino.0, truncate).await {
                    Ok(fh) => {
                        core.note_opener(fh, pid);
                        // A reader of the old version has the file open: keep this writer's
                        // bytes out of the page cache it reads from.
                        let flags = if core.attrs_cacheable(ino.0) {
                            FopenFlags::empty()
                        } else {
                            FopenFlags::FOPEN_DIRECT_IO
                        };
                        reply.opened(FileHandle(fh), flags)
                    }
                    Err(e) => fail("open", e, reply),
                }
            });
        }
        self.spawn_killable(req, "open", move |core| async move {
            match core.open(ino.0, false).await {
                Ok((fh, keep_cache)) => {
                    let flags = if !core.attrs_cacheable(ino.0) {
                        // A reader of an older version is open: pages this one read would
                        // be served to it.
                        FopenFlags::FOPEN_DIRECT_IO
                    } else if keep_cache {
                        FopenFlags::FOPEN_KEEP_CACHE
                    } else {
                        FopenFlags::empty()
                    };
                    reply.opened(FileHandle(fh), flags)
                }
                Err(e) => fail("open", e, reply),
            }
        });
    }

    fn read(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        size: u32,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyData,
    ) {
        self.spawn_killable(req, "read", move |core| async move {
            match core.read(fh.0, offset, size).await {
                Ok(data) => reply.data(&data),
                Err(e) => fail("read", e, reply),
            }
        });
    }

    fn flush(
        &self,
        req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _lo: LockOwner,
        reply: ReplyEmpty,
    ) {
        // close(2) returns this: the close by the opener of a handle open for writing uploads
        // here and reports the real result (read handles have nothing to flush).
        let pid = Some(req.pid()).filter(|p| *p != 0);
        self.spawn(move |core| async move {
            match core.close_file(fh.0, pid).await {
                Ok(()) => reply.ok(),
                Err(e) => fail("flush", e, reply),
            }
        });
    }

    fn release(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        _flush: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn(move |core| async move {
            core.release_file(fh.0).await;
            reply.ok();
        });
    }

    fn fsync(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        self.spawn(move |core| async move {
            match core.flush_file(fh.0).await {
                Ok(()) => reply.ok(),
                Err(e) => fail("fsync", e, reply),
            }
        });
    }

    fn opendir(&self, _req: &Request, ino: INodeNo, _flags: OpenFlags, reply: ReplyOpen) {
        match self.core.opendir(ino.0) {
            Ok(fh) => reply.opened(FileHandle(fh), FopenFlags::empty()),
            Err(e) => fail("opendir", e, reply),
        }
    }

    fn readdir(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectory,
    ) {
        self.spawn_killable(req, "readdir", move |core| async move {
            let (handle, listing) = match core.dir_listing(fh.0).await {
                Ok(v) => v,
                Err(e) => return fail("readdir", e, reply),
            };
            // Offsets: 0 = ".", 1 = "..", 2 + i = entry i; each entry carries the next offset.
            let mut next = offset;
            if next == 0 {
                if reply.add(ino, 1, fuser::FileType::Directory, ".") {
                    return reply.ok();
                }
                next = 1;
            }
            if next == 1 {
                let parent = INodeNo(core.parent_ino(&handle.path));
                if reply.add(parent, 2, fuser::FileType::Directory, "..") {
                    return reply.ok();
                }
                next = 2;
            }
            let start = usize::try_from(next - 2).unwrap_or(usize::MAX);
            for (i, e) in listing.entries.iter().enumerate().skip(start) {
                let ino = INodeNo(core.peek_entry_ino(&handle.path, e));
                if reply.add(ino, i as u64 + 3, e.kind.file_type(), &e.name) {
                    break;
                }
            }
            reply.ok();
        });
    }

    fn readdirplus(
        &self,
        req: &Request,
        ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        mut reply: ReplyDirectoryPlus,
    ) {
        let ttl = self.ttl;
        self.spawn_killable(req, "readdirplus", move |core| async move {
            let (handle, listing) = match core.dir_listing(fh.0).await {
                Ok(v) => v,
                Err(e) => return fail("readdirplus", e, reply),
            };
            let now = SystemTime::now();
            let mut next = offset;
            // "." and ".." take no kernel reference, so their attributes need no lookup.
            if next == 0 {
                let attr = core.attr_of(ino.0, attr::Kind::Dir, &attr::Stat::directory(now));
                if reply.add(ino, 1, ".", &ttl, &attr, Generation(0)) {
                    return reply.ok();
                }
                next = 1;
            }
            if next == 1 {
                let parent = core.parent_ino(&handle.path);
                let attr = core.attr_of(parent, attr::Kind::Dir, &attr::Stat::directory(now));
                if reply.add(INodeNo(parent), 2, "..", &ttl, &attr, Generation(0)) {
                    return reply.ok();
                }
                next = 2;
            }
            let start = usize::try_from(next - 2).unwrap_or(usize::MAX);
            for (i, e) in listing.entries.iter().enumerate().skip(start) {
                let attr = core.remember_entry(&handle.path, e);
                if reply.add(attr.ino, i as u64 + 3, &e.name, &ttl, &attr, Generation(0)) {
                    // Did not fit: the kernel never saw it, so give the reference back.
                    core.forget(attr.ino.0, 1);
                    break;
                }
            }
            reply.ok();
        });
    }

    fn releasedir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        _flags: OpenFlags,
        reply: ReplyEmpty,
    ) {
        self.core.releasedir(fh.0);
        reply.ok();
    }

    fn fsyncdir(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _datasync: bool,
        reply: ReplyEmpty,
    ) {
        reply.ok();
    }

    fn statfs(&self, _req: &Request, _ino: INodeNo, reply: ReplyStatfs) {
        reply.statfs(
            STATFS_BLOCKS,
            STATFS_BLOCKS,
            STATFS_BLOCKS,
            STATFS_FILES,
            STATFS_FILES,
            STATFS_BLOCK,
            dir::MAX_NAME_BYTES as u32,
            STATFS_BLOCK,
        );
    }

    fn access(&self, _req: &Request, ino: INodeNo, mask: AccessFlags, reply: ReplyEmpty) {
        match self.core.access(ino.0, mask.contains(AccessFlags::W_OK)) {
            Ok(()) => reply.ok(),
            Err(e) => fail("access", e, reply),
        }
    }

    // Extended attributes: see `xattr.rs` for the names and their COS meaning.
    fn getxattr(&self, req: &Request, ino: INodeNo, name: &OsStr, size: u32, reply: ReplyXattr) {
        let name = name.as_bytes().to_vec();
        self.spawn_killable(req, "getxattr", move |core| async move {
            match core.getxattr(ino.0, &name, size).await {
                Ok(r) => xattr_reply(r, reply),
                Err(e) => fail("getxattr", e, reply),
            }
        });
    }

    fn listxattr(&self, req: &Request, ino: INodeNo, size: u32, reply: ReplyXattr) {
        self.spawn_killable(req, "listxattr", move |core| async move {
            match core.listxattr(ino.0, size).await {
                Ok(r) => xattr_reply(r, reply),
                Err(e) => fail("listxattr", e, reply),
            }
        });
    }

    // ---- write operations (core side in core/mutate.rs) ----

    fn setattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        size: Option<u64>,
        atime: Option<TimeOrNow>,
        mtime: Option<TimeOrNow>,
        _ctime: Option<SystemTime>,
        fh: Option<FileHandle>,
        _crtime: Option<SystemTime>,
        _chgtime: Option<SystemTime>,
        _bkuptime: Option<SystemTime>,
        _flags: Option<fuser::BsdFileFlags>,
        reply: ReplyAttr,
    ) {
        let ttl = self.ttl;
        // "now" is resolved here, when the call was made.
        let resolve = |t: TimeOrNow| match t {
            TimeOrNow::SpecificTime(t) => t,
            TimeOrNow::Now => SystemTime::now(),
        };
        let update = namespace::AttrUpdate {
            mode,
            uid,
            gid,
            mtime: mtime.map(resolve),
            atime: atime.map(resolve),
            ctime: None,
        };
        self.spawn(move |core| async move {
            let fh = fh.map(|fh| fh.0);
            match core.setattr(ino.0, fh, update, size).await {
                Ok(attr) => reply.attr(&attr_ttl(&core, ino.0, ttl), &attr),
                Err(e) => fail("setattr", e, reply),
            }
        });
    }

    fn mknod(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        rdev: u32,
        reply: ReplyEntry,
    ) {
        let (name, ttl, uid, gid) = (name.to_os_string(), self.ttl, req.uid(), req.gid());
        self.spawn(move |core| async move {
            match core
                .mknod(parent.0, &name, mode, umask, rdev, (uid, gid))
                .await
            {
                Ok(attr) => reply.entry(&ttl, &attr, Generation(0)),
                Err(e) => fail("mknod", e, reply),
            }
        });
    }

    fn mkdir(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        reply: ReplyEntry,
    ) {
        let (name, ttl, uid, gid) = (name.to_os_string(), self.ttl, req.uid(), req.gid());
        self.spawn(move |core| async move {
            match core.mkdir(parent.0, &name, mode, umask, uid, gid).await {
                Ok(attr) => reply.entry(&ttl, &attr, Generation(0)),
                Err(e) => fail("mkdir", e, reply),
            }
        });
    }

    fn unlink(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_os_string();
        self.spawn(move |core| async move {
            match core.unlink(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => fail("unlink", e, reply),
            }
        });
    }

    fn rmdir(&self, _req: &Request, parent: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.to_os_string();
        self.spawn(move |core| async move {
            match core.rmdir(parent.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => fail("rmdir", e, reply),
            }
        });
    }

    fn symlink(
        &self,
        req: &Request,
        parent: INodeNo,
        link_name: &OsStr,
        target: &Path,
        reply: ReplyEntry,
    ) {
        let (name, target) = (link_name.to_os_string(), target.to_path_buf());
        let (ttl, uid, gid) = (self.ttl, req.uid(), req.gid());
        self.spawn(move |core| async move {
            match core.symlink(parent.0, &name, &target, uid, gid).await {
                Ok(attr) => reply.entry(&ttl, &attr, Generation(0)),
                Err(e) => fail("symlink", e, reply),
            }
        });
    }

    fn readlink(&self, req: &Request, ino: INodeNo, reply: ReplyData) {
        self.spawn_killable(req, "readlink", move |core| async move {
            match core.readlink(ino.0).await {
                Ok(target) => reply.data(&target),
                Err(e) => fail("readlink", e, reply),
            }
        });
    }

    fn rename(
        &self,
        _req: &Request,
        parent: INodeNo,
        name: &OsStr,
        newparent: INodeNo,
        newname: &OsStr,
        flags: RenameFlags,
        reply: ReplyEmpty,
    ) {
        let (name, newname) = (name.to_os_string(), newname.to_os_string());
        self.spawn(move |core| async move {
            match core
                .rename(parent.0, &name, newparent.0, &newname, flags.bits())
                .await
            {
                Ok(()) => reply.ok(),
                Err(e) => fail("rename", e, reply),
            }
        });
    }

    fn link(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _newparent: INodeNo,
        _newname: &OsStr,
        reply: ReplyEntry,
    ) {
        match self.core.link() {
            Ok(attr) => reply.entry(&self.ttl, &attr, Generation(0)),
            Err(e) => fail("link", e, reply),
        }
    }

    fn write(
        &self,
        _req: &Request,
        _ino: INodeNo,
        fh: FileHandle,
        offset: u64,
        data: &[u8],
        _write_flags: WriteFlags,
        _flags: OpenFlags,
        _lock_owner: Option<LockOwner>,
        reply: ReplyWrite,
    ) {
        // The task outlives this callback's buffer.
        let data = data.to_vec();
        self.spawn(move |core| async move {
            match core.write_file(fh.0, offset, &data).await {
                Ok(written) => reply.written(written),
                Err(e) => fail("write", e, reply),
            }
        });
    }

    fn create(
        &self,
        req: &Request,
        parent: INodeNo,
        name: &OsStr,
        mode: u32,
        umask: u32,
        _flags: i32,
        reply: ReplyCreate,
    ) {
        let (name, ttl, uid, gid) = (name.to_os_string(), self.ttl, req.uid(), req.gid());
        let pid = req.pid();
        self.spawn(move |core| async move {
            match core
                .create_file(parent.0, &name, mode, umask, uid, gid)
                .await
            {
                Ok((attr, fh)) => {
                    core.note_opener(fh, pid);
                    reply.created(
                        &ttl,
                        &attr,
                        Generation(0),
                        FileHandle(fh),
                        FopenFlags::empty(),
                    )
                }
                Err(e) => fail("create", e, reply),
            }
        });
    }

    fn setxattr(
        &self,
        _req: &Request,
        ino: INodeNo,
        name: &OsStr,
        value: &[u8],
        flags: i32,
        _position: u32,
        reply: ReplyEmpty,
    ) {
        let (name, value) = (name.as_bytes().to_vec(), value.to_vec());
        self.spawn(move |core| async move {
            match core.setxattr(ino.0, &name, &value, flags).await {
                Ok(()) => reply.ok(),
                Err(e) => fail("setxattr", e, reply),
            }
        });
    }

    fn removexattr(&self, _req: &Request, ino: INodeNo, name: &OsStr, reply: ReplyEmpty) {
        let name = name.as_bytes().to_vec();
        self.spawn(move |core| async move {
            match core.removexattr(ino.0, &name).await {
                Ok(()) => reply.ok(),
                Err(e) => fail("removexattr", e, reply),
            }
        });
    }

    fn fallocate(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _offset: u64,
        _length: u64,
        _mode: i32,
        reply: ReplyEmpty,
    ) {
        // Objects have no preallocation; EOPNOTSUPP makes tools fall back to plain writes.
        tracing::debug!("fallocate refused: COS objects cannot preallocate space");
        reply.error(Errno::EOPNOTSUPP);
    }

    fn ioctl(
        &self,
        _req: &Request,
        _ino: INodeNo,
        _fh: FileHandle,
        _flags: IoctlFlags,
        cmd: u32,
        _in_data: &[u8],
        _out_size: u32,
        reply: ReplyIoctl,
    ) {
        // No file here has device controls: ENOTTY, what a regular file on a local disk
        // answers (tools probe with FS_IOC_GETFLAGS, FICLONE, TCGETS... and move on). Quietly:
        // fuser's default logs a warning for each.
        tracing::trace!(cmd, "ioctl refused with ENOTTY");
        reply.error(Errno::ENOTTY);
    }
}

#[cfg(test)]
mod tests;
