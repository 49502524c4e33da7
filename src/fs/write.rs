//! Write handles: the spool, the uploader and its state machine, for one open file.
//!
//! # Model
//! A [`WriteHandle`] owns a spool file (see [`super::spool`]) that mirrors the file's bytes.
//! Bytes the application wrote are *dirty*; bytes of the object being modified (the *base*)
//! that nobody changed are fetched from COS into the spool only when needed (lazily), or not at
//! all when a whole part of them can be copied server-side with Upload Part Copy.
//!
//! # States
//! `Spooling -> Uploading -> Completed | Failed`. A handle is `Spooling` while it accepts
//! writes; `flush()`/`close()` move it to `Uploading`, then `Completed` (the new version is
//! visible) or `Failed`. `Completed` goes back to `Spooling` on the next write (the file stays
//! writable after an fsync). `Failed` is sticky: every later write, flush and close returns
//! the same error, the spool file is kept on disk and its path logged, and any multipart
//! upload is aborted (best effort). Nothing half-written ever becomes the object: a single PUT
//! and a multipart Complete each replace the object atomically.
//!
//! # Parts
//! Files up to one part (`part_size`, default 8 MiB) go up with one PUT. Bigger files use a
//! multipart upload whose part layout is a fixed function of the part number, so it does not
//! need the final size: parts 1..=1000 are `part_size`, parts 1001..=2000 twice that, then 4x,
//! 8x... (capped at COS's 5 GiB part limit). With the 8 MiB default, 10 000 parts hold about
//! 7.8 TiB. While the application writes sequentially, every part it has written past is
//! uploaded at once (at most `parallel_parts` in flight, fewer when parts grow, so part
//! buffers stay within `parallel_parts * part_size` bytes of RAM); close() then only waits for
//! the tail and Complete. A later write into an uploaded part just marks it for re-upload.
//!
//! # Integrity
//! Every part and PUT carries the CRC-64 of what was sent; COS's `x-cos-hash-crc64ecma` must
//! match, and the Complete CRC must match the parts' CRCs combined.
//!
//! # Crash safety
//! Each handle keeps a journal record beside its spool file (see [`super::journal`]): the
//! key, the version it started from, the ranges of the base object it overwrote, the upload
//! id with its confirmed parts, and the state (open, committing, failed, committed). After
//! kill -9 the next mount resumes closed files (see `journal::resume_leftover`) and logs the
//! rest for `cosmount recover`; [`WriteHandle::resume`] and
//! [`WriteHandle::reuse_recorded_parts`] take the recorded upload over, part by part. A multipart upload whose Initiate answer may have been lost (the request
//! failed, or the client retried it) is looked up by listing the key's uploads, and every
//! upload of the key initiated since the request began, other than the one in use, is
//! aborted.

// `CosError` is the store trait's error type; boxing it only here would gain nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use tokio::task::JoinSet;

use super::journal::{
    self, BaseRecord, CarriedRecord, CommitGuard, Journal, PartRecord, Record, State,
};
use super::namespace;
use super::spool::{read_spool, RangeSet, SpoolFile};
use crate::cos::acl::AclHeaders;
use crate::cos::crc64;
use crate::cos::store::{
    CompletedPart, ContentHeaders, ObjectInfo, ObjectStore, PutOptions, PutResult,
};
use crate::cos::CosError;

const MIB: u64 = 1024 * 1024;
/// Default part size: big enough for throughput, small enough that 4 parts in flight stay cheap.
pub const DEFAULT_PART_SIZE: u64 = 8 * MIB;
/// Default number of parts uploaded at the same time.
pub const DEFAULT_PARALLEL_PARTS: usize = 4;
/// COS allows part numbers 1..=10000 (https://cloud.tencent.com/document/product/436/7750).
pub const MAX_PARTS: u32 = crate::cos::limits::MAX_PARTS;
/// COS's largest part (5 GB).
pub const MAX_PART_SIZE: u64 = crate::cos::limits::MAX_PART_SIZE;
/// The part size doubles after each this many parts.
pub const PARTS_PER_SIZE_STEP: u32 = 1000;
/// Gaps to fetch closer than this are fetched with one ranged GET (a request costs more than
/// a few hundred KiB of transfer).
const COALESCE_GAP: u64 = MIB;
/// Largest ranged GET used to fill the spool from the base object (bounds RAM per fetch).
const FETCH_CHUNK: u64 = 8 * MIB;

/// Tunables of the uploader.
#[derive(Debug, Clone)]
pub struct WriteConfig {
    /// Size of parts 1..=1000; later parts grow (see the module doc). Also the largest file
    /// uploaded with a single PUT.
    pub part_size: u64,
    /// Parts uploaded concurrently per handle.
    pub parallel_parts: usize,
    /// Directory for spool files (created by the caller, see [`super::spool::spool_dir`]).
    pub spool_dir: PathBuf,
    /// The bucket, as written into the spool journal's records.
    pub bucket: String,
}

impl WriteConfig {
    pub fn new(spool_dir: PathBuf) -> Self {
        WriteConfig {
            part_size: DEFAULT_PART_SIZE,
            parallel_parts: DEFAULT_PARALLEL_PARTS,
            spool_dir,
            bucket: String::new(),
        }
    }
}

/// Where each part of a multipart upload lies. A pure function of the part number, so parts
/// can be uploaded before the file's final size is known.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PartLayout {
    base: u64,
}

impl PartLayout {
    pub fn new(part_size: u64) -> Self {
        PartLayout {
            base: part_size.clamp(1, MAX_PART_SIZE),
        }
    }

    /// The size of the first parts, also the largest single-PUT file.
    pub fn first_part_size(self) -> u64 {
        self.base
    }

    fn step_len(self, step: u32) -> u64 {
        self.base
            .checked_shl(step)
            .unwrap_or(MAX_PART_SIZE)
            .min(MAX_PART_SIZE)
    }

    /// Length of part `number` (1-based) when it is not the last part.
    pub fn part_len(self, number: u32) -> u64 {
        self.step_len(number.saturating_sub(1) / PARTS_PER_SIZE_STEP)
    }

    /// Offset of the first byte of part `number` (1-based; `MAX_PARTS + 1` gives the capacity).
    pub fn part_start(self, number: u32) -> u64 {
        let index = number.saturating_sub(1);
        let full_steps = index / PARTS_PER_SIZE_STEP;
        let mut start = 0u64;
        for step in 0..full_steps {
            start += u64::from(PARTS_PER_SIZE_STEP) * self.step_len(step);
        }
        start + u64::from(index % PARTS_PER_SIZE_STEP) * self.step_len(full_steps)
    }

    /// The part holding byte `offset`.
    pub fn part_containing(self, offset: u64) -> u32 {
        let mut start = 0u64;
        let mut step = 0u32;
        loop {
            let len = self.step_len(step);
            let step_bytes = u64::from(PARTS_PER_SIZE_STEP) * len;
            if offset < start + step_bytes || step + 1 >= MAX_PARTS / PARTS_PER_SIZE_STEP {
                let within = ((offset - start) / len) as u32;
                return step * PARTS_PER_SIZE_STEP + within + 1;
            }
            start += step_bytes;
            step += 1;
        }
    }

    /// Number of parts of a file of `size` bytes (0 for an empty file).
    pub fn part_count(self, size: u64) -> u32 {
        if size == 0 {
            0
        } else {
            self.part_containing(size - 1)
        }
    }

    /// The byte range `[start, end)` of part `number` in a file of `size` bytes.
    pub fn part_range(self, number: u32, size: u64) -> (u64, u64) {
        let start = self.part_start(number);
        (start, (start + self.part_len(number)).min(size))
    }

    /// The largest file the layout can hold.
    pub fn capacity(self) -> u64 {
        self.part_start(MAX_PARTS + 1)
    }
}

/// POSIX attributes kept in `x-cos-meta-mode/uid/gid/mtime/ctime` (cosfs compatible,
/// decimal; `atime` only when set explicitly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileAttrs {
    /// Full `st_mode`, type bits included.
    pub mode: u32,
    pub uid: u32,
    pub gid: u32,
    pub mtime: SystemTime,
    /// The last change of data or attributes.
    pub ctime: SystemTime,
    pub atime: Option<SystemTime>,
}

impl FileAttrs {
    /// A regular file with permission bits `perm`, owned by `uid:gid`, modified now.
    pub fn regular(perm: u32, uid: u32, gid: u32) -> Self {
        let now = SystemTime::now();
        FileAttrs {
            mode: libc::S_IFREG | (perm & 0o7777),
            uid,
            gid,
            mtime: now,
            ctime: now,
            atime: None,
        }
    }

    /// Write these attributes into user metadata (names without `x-cos-meta-`).
    pub fn store_in(&self, meta: &mut BTreeMap<String, String>) {
        let mode = if self.mode & libc::S_IFMT == 0 {
            self.mode | libc::S_IFREG
        } else {
            self.mode
        };
        meta.insert("mode".into(), mode.to_string());
        meta.insert("uid".into(), self.uid.to_string());
        meta.insert("gid".into(), self.gid.to_string());
        meta.insert("mtime".into(), format_meta_time(self.mtime));
        meta.insert("ctime".into(), format_meta_time(self.ctime));
        if let Some(atime) = self.atime {
            meta.insert("atime".into(), format_meta_time(atime));
        }
    }
}

use super::attr::{format_meta_time, parse_meta_time};

impl FileAttrs {
    /// The attributes stored in user metadata by [`FileAttrs::store_in`]; what is missing
    /// is a 0644 file of the current user, modified now.
    pub fn from_meta(meta: &BTreeMap<String, String>) -> Self {
        let num = |name: &str| meta.get(name).and_then(|v| v.trim().parse::<u64>().ok());
        let time = |name: &str| meta.get(name).and_then(|v| parse_meta_time(v));
        // SAFETY: getuid/getgid cannot fail.
        let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
        let mode = num("mode").map_or(libc::S_IFREG | 0o644, |m| m as u32);
        let mtime = time("mtime").unwrap_or_else(SystemTime::now);
        FileAttrs {
            mode: libc::S_IFREG | (mode & 0o7777),
            uid: num("uid").map_or(uid, |v| v as u32),
            gid: num("gid").map_or(gid, |v| v as u32),
            mtime,
            ctime: time("ctime").unwrap_or(mtime),
            atime: time("atime"),
        }
    }
}

/// Whole seconds since the epoch (times before it count as 0).
pub fn unix_seconds(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// Why a write, flush or close failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum WriteError {
    /// A COS request failed (after the client's retries).
    #[error("{op} of {key} failed: {source}")]
    Cos {
        op: &'static str,
        key: String,
        source: Arc<CosError>,
    },
    /// The local spool file could not be written or read.
    #[error("spool file {}: {source}", path.display())]
    Spool {
        path: PathBuf,
        source: Arc<io::Error>,
    },
    /// COS stored something else than what was sent.
    #[error("CRC-64 mismatch on {what} of {key}: sent {sent}, COS reports {stored}")]
    ChecksumMismatch {
        key: String,
        what: String,
        sent: u64,
        stored: u64,
    },
    /// The file grew past what the part layout can upload.
    #[error("file size {size} exceeds the largest uploadable object ({max} bytes)")]
    TooLarge { size: u64, max: u64 },
    /// An upload task died (panicked or was cancelled).
    #[error("upload task for {key} ended abnormally: {message}")]
    Internal { key: String, message: String },
}

impl WriteError {
    fn cos(op: &'static str, key: &str, err: CosError) -> Self {
        WriteError::Cos {
            op,
            key: key.to_string(),
            source: Arc::new(err),
        }
    }

    /// The COS error code, when COS answered.
    pub fn cos_code(&self) -> Option<&str> {
        match self {
            WriteError::Cos { source, .. } => source.code(),
            _ => None,
        }
    }

    /// The COS request id, when COS answered.
    pub fn request_id(&self) -> Option<&str> {
        match self {
            WriteError::Cos { source, .. } => source.request_id(),
            _ => None,
        }
    }
}

/// The visible state of a handle (see the module doc).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteState {
    Spooling,
    Uploading,
    Completed(PutResult),
    Failed(String),
}

enum Phase {
    Spooling,
    Uploading,
    Completed(PutResult),
    Failed(WriteError),
}

/// The object being modified: unchanged bytes below `len` are read from it.
#[derive(Debug, Clone)]
struct Base {
    key: String,
    etag: String,
    /// Bytes `[0, len)` of the file not dirty still equal the base object's.
    len: u64,
}

struct DonePart {
    etag: String,
    crc64: Option<u64>,
    len: u64,
}

enum PartSlot {
    /// Being uploaded by the task `task`. `stale`: the part was written to since the task
    /// read it, so its result will be dropped and the part sent again, but only after this
    /// task ended: two uploads of one part number never overlap (the later one could land
    /// first, and Complete would then name an ETag COS no longer holds).
    InFlight {
        task: u64,
        stale: bool,
    },
    Done(DonePart),
}

struct PartOutcome {
    number: u32,
    task: u64,
    result: Result<DonePart, WriteError>,
}

enum PartSource {
    Spool {
        file: Arc<File>,
        path: PathBuf,
        offset: u64,
        len: u64,
    },
    Copy {
        source_key: String,
        first: u64,
        last: u64,
    },
}

struct Multipart {
    upload_id: String,
    parts: BTreeMap<u32, PartSlot>,
    tasks: JoinSet<PartOutcome>,
    next_task: u64,
    /// The user metadata sent with Initiate (it cannot change afterwards).
    initiated_meta: BTreeMap<String, String>,
    /// The storage class sent with Initiate.
    initiated_class: Option<String>,
    /// The ACL sent with Initiate.
    initiated_acl: Option<AclHeaders>,
}

/// One file open for writing. Not internally synchronized: the caller serializes calls (e.g.
/// behind a `tokio::sync::Mutex`); [`WriteHandle::shared_size`] is readable without it.
pub struct WriteHandle<S: ObjectStore> {
    store: Arc<S>,
    key: String,
    cfg: WriteConfig,
    layout: PartLayout,
    spool: SpoolFile,
    size: Arc<AtomicU64>,
    attrs: FileAttrs,
    /// Content headers, user metadata and storage class to upload with (carried over from the
    /// object being replaced, content type guessed for a new one).
    carried: PutOptions,
    base: Option<Base>,
    /// Bytes written by the application (must be uploaded, never copied).
    dirty: RangeSet,
    /// Bytes of the spool holding the file's current content (dirty or fetched).
    present: RangeSet,
    phase: Phase,
    data_changed: bool,
    meta_changed: bool,
    upload: Option<Multipart>,
    /// First part not yet considered for upload while streaming.
    next_stream_part: u32,
    /// The only change is the open itself (O_TRUNC, or O_CREAT of a new file): a close
    /// before any write (a shell's dup'd descriptor) must not commit an empty object; release
    /// or fsync do.
    open_truncate_only: bool,
    /// ETag of the object version this write started from (`None`: there was none); a
    /// recovery commits only over that version.
    based_on: Option<String>,
    /// The spool journal's record for this handle.
    journal: Journal,
    /// Taken over from a crashed mount's journal ([`WriteHandle::resume`]): a failure keeps
    /// the recorded upload (and the state `committing`) for the next try.
    resumed: bool,
    /// Parts of a resumed upload as the record lists them, not yet checked against List
    /// Parts and the spool (kept in the record until then).
    recorded_parts: Vec<PartRecord>,
}

/// What [`WriteHandle::reuse_recorded_parts`] made of the crashed mount's upload.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ResumeStats {
    /// Pieces the file goes up in: its parts, or 1 for a single PUT.
    pub parts: u32,
    /// Parts COS already holds, reused instead of sent again.
    pub reused: u32,
    /// The recorded upload was gone (or there was none): a new one is started.
    pub new_upload: bool,
}

impl ResumeStats {
    /// Pieces still to send.
    pub fn sent(&self) -> u32 {
        self.parts - self.reused.min(self.parts)
    }
}

impl<S: ObjectStore> std::fmt::Debug for WriteHandle<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteHandle")
            .field("key", &self.key)
            .field("size", &self.size())
            .field("state", &self.state())
            .finish_non_exhaustive()
    }
}

/// Content-Type for a new object, guessed from its name.
pub fn guess_content_type(key: &str) -> String {
    mime_guess::from_path(key)
        .first_raw()
        .unwrap_or("application/octet-stream")
        .to_string()
}

impl<S: ObjectStore> WriteHandle<S> {
    /// A new, empty file at `key` (the object appears on the first flush or close).
    pub fn create(
        store: Arc<S>,
        key: &str,
        cfg: WriteConfig,
        attrs: FileAttrs,
    ) -> Result<Self, WriteError> {
        let carried = PutOptions {
            content: ContentHeaders {
                content_type: Some(guess_content_type(key)),
                ..Default::default()
            },
            ..Default::default()
        };
        let mut handle = Self::new(store, key, cfg, attrs, carried, None, 0)?;
        handle.data_changed = true;
        // Like O_TRUNC: a close before any write does not commit the empty file yet.
        handle.open_truncate_only = true;
        handle.journal_sync(State::Open, true);
        Ok(handle)
    }

    /// Open the existing object `info` for writing. With `truncate` (O_TRUNC) its content is
    /// dropped; otherwise it is fetched lazily, part by part, when a write or the upload needs
    /// it. Its content headers, user metadata and storage class are kept.
    pub fn open_existing(
        store: Arc<S>,
        info: &ObjectInfo,
        truncate: bool,
        cfg: WriteConfig,
        attrs: FileAttrs,
    ) -> Result<Self, WriteError> {
        let mut meta = info.meta.clone();
        for name in ["mode", "uid", "gid", "mtime"] {
            meta.remove(name);
        }
        let mut content = info.content.clone();
        if content.content_type.is_none() {
            content.content_type = Some(guess_content_type(&info.key));
        }
        let carried = PutOptions {
            content,
            meta,
            storage_class: Some(info.storage_class.clone()),
            ..Default::default()
        };
        let (base, size) = if truncate {
            (None, 0)
        } else {
            let base = Base {
                key: info.key.clone(),
                etag: info.etag.clone(),
                len: info.size,
            };
            (Some(base), info.size)
        };
        let mut handle = Self::new(store, &info.key, cfg, attrs, carried, base, size)?;
        handle.based_on = Some(info.etag.clone());
        handle.data_changed = truncate && info.size > 0;
        handle.open_truncate_only = handle.data_changed;
        if handle.data_changed {
            handle.attrs.mtime = SystemTime::now();
            handle.attrs.ctime = handle.attrs.mtime;
            handle.journal_sync(State::Open, true);
        }
        Ok(handle)
    }

    /// Take over a spool file left by an earlier mount (its journal `record`, read from
    /// `record_path`) to commit it: the content is the spool's bytes where the record says
    /// they were written (or everywhere, without a base), the base object's elsewhere. The
    /// caller has checked that the object is still the version the write started from. The
    /// record's multipart upload is kept: [`WriteHandle::reuse_recorded_parts`] learns from
    /// List Parts which of its parts can stay, then [`WriteHandle::flush`] sends the others
    /// and completes it. On success the spool file and record are removed when the handle
    /// goes away; on failure both are kept, with the upload, in state `committing`.
    pub fn resume(
        store: Arc<S>,
        cfg: WriteConfig,
        record: Record,
        record_path: PathBuf,
    ) -> Result<Self, WriteError> {
        let spool_path = journal::spool_path_of(&record_path);
        let spool_err = |e: io::Error| WriteError::Spool {
            path: spool_path.clone(),
            source: Arc::new(e),
        };
        let spool = SpoolFile::adopt(&spool_path).map_err(spool_err)?;
        let size = record.content_size(spool.disk_len().map_err(spool_err)?);
        let base = record.base.as_ref().map(|b| Base {
            key: b.key.clone(),
            etag: b.etag.clone(),
            len: b.len.min(size),
        });
        let mut dirty = match &base {
            Some(b) => {
                let mut set = record.written_set();
                set.truncate(b.len);
                set
            }
            None => RangeSet::new(),
        };
        dirty.insert(base.as_ref().map_or(0, |b| b.len), size);
        let mut carried = record.carried.to_options();
        let attrs = FileAttrs::from_meta(&carried.meta);
        for name in ["mode", "uid", "gid", "mtime"] {
            carried.meta.remove(name);
        }
        let mut record = record;
        record.pid = std::process::id();
        let upload_id = record.upload_id.clone();
        let upload_carried = record.upload_carried.clone();
        let recorded_parts = std::mem::take(&mut record.parts);
        let mut journal = Journal::adopt(record_path, record);
        journal.set_written(dirty.clone());
        let mut handle = WriteHandle {
            store,
            key: journal.record.key.clone(),
            layout: PartLayout::new(cfg.part_size),
            cfg,
            spool,
            size: Arc::new(AtomicU64::new(size)),
            attrs,
            carried,
            base,
            present: dirty.clone(),
            dirty,
            phase: Phase::Spooling,
            data_changed: true,
            meta_changed: false,
            upload: None,
            next_stream_part: 1,
            open_truncate_only: false,
            based_on: journal.record.based_on.clone(),
            journal,
            resumed: true,
            recorded_parts,
        };
        if let Some(upload_id) = upload_id {
            let wanted = handle.put_options();
            // What Initiate sent is fixed for the upload; an older record did not say, so
            // assume what the record carries now.
            let initiated = upload_carried.map_or_else(|| wanted.clone(), |c| c.to_options());
            // Changed after Initiate (chmod, xattr): updated after Complete.
            handle.meta_changed = initiated.meta != wanted.meta
                || initiated.storage_class != wanted.storage_class
                || initiated.acl != wanted.acl;
            handle.upload = Some(Multipart {
                upload_id,
                parts: BTreeMap::new(),
                tasks: JoinSet::new(),
                next_task: 0,
                initiated_meta: initiated.meta,
                initiated_class: initiated.storage_class,
                initiated_acl: initiated.acl,
            });
        }
        Ok(handle)
    }

    /// For a handle from [`WriteHandle::resume`], before its flush: ask COS (List Parts)
    /// what it holds of the recorded upload, and keep each recorded part whose ETag and size
    /// COS still shows and whose bytes did not change since it was sent (CRC-64 of the
    /// spool's range, or a range of the base object nobody wrote). The flush then sends only
    /// the others. An upload COS no longer knows (NoSuchUpload) is replaced by a new one at
    /// the flush. Any other error is returned with nothing changed: drop the handle, the
    /// record stays as it was.
    pub async fn reuse_recorded_parts(&mut self) -> Result<ResumeStats, WriteError> {
        let size = self.size();
        let multipart = size > self.layout.first_part_size();
        let count = if multipart {
            self.layout.part_count(size)
        } else {
            1
        };
        let mut stats = ResumeStats {
            parts: count,
            reused: 0,
            new_upload: self.upload.is_none(),
        };
        let Some(upload_id) = self.upload.as_ref().map(|u| u.upload_id.clone()) else {
            self.recorded_parts.clear();
            return Ok(stats);
        };
        if !multipart {
            // One PUT now; the flush aborts the recorded upload.
            self.recorded_parts.clear();
            return Ok(stats);
        }
        let listed = match self.store.list_parts_of(&self.key, &upload_id).await {
            Ok(parts) => parts,
            Err(e) if e.kind() == crate::cos::ErrorKind::NoSuchUpload || e.is_not_found() => {
                tracing::info!(key = %self.key, %upload_id,
                    "the crashed mount's multipart upload is gone; starting a new one");
                self.upload = None;
                self.recorded_parts.clear();
                stats.new_upload = true;
                return Ok(stats);
            }
            Err(e) => return Err(WriteError::cos("ListParts", &self.key, e)),
        };
        let held: BTreeMap<u32, (String, u64)> = listed
            .into_iter()
            .map(|p| (p.part_number, (unquote(&p.etag).to_string(), p.size)))
            .collect();
        let recorded = self.recorded_parts.clone();
        let mut reused = Vec::new();
        for part in recorded {
            let number = part.number;
            if number == 0 || number > count {
                continue;
            }
            let (start, end) = self.layout.part_range(number, size);
            let same_on_cos = held
                .get(&number)
                .is_some_and(|(etag, len)| *etag == unquote(&part.etag) && *len == part.len);
            if part.len != end - start || !same_on_cos {
                continue;
            }
            if !self.part_unchanged(&part, start, end).await? {
                continue;
            }
            reused.push((
                number,
                DonePart {
                    etag: part.etag.clone(),
                    crc64: part.crc64,
                    len: part.len,
                },
            ));
        }
        stats.reused = reused.len() as u32;
        if let Some(upload) = &mut self.upload {
            for (number, done) in reused {
                upload.parts.insert(number, PartSlot::Done(done));
            }
        }
        self.recorded_parts.clear();
        Ok(stats)
    }

    /// Are the file's bytes `[start, end)` still what recorded `part` sent?
    async fn part_unchanged(
        &mut self,
        part: &PartRecord,
        start: u64,
        end: u64,
    ) -> Result<bool, WriteError> {
        // Nobody wrote the range, and the base object is the version the write started from
        // (the caller checked): the part holds the base's bytes, however it was sent.
        let from_base = self
            .base
            .as_ref()
            .is_some_and(|b| end <= b.len && !self.dirty.intersects(start, end));
        if from_base {
            return Ok(true);
        }
        let Some(sent) = part.crc64 else {
            return Ok(false);
        };
        // The spool may have been written again after the part was sent: compare its bytes.
        self.ensure_local(start, end).await?;
        let (_, crc, _mem) = read_with_crc(
            self.spool.file(),
            self.spool.path().to_path_buf(),
            start,
            end - start,
        )
        .await?;
        Ok(crc == sent)
    }

    fn new(
        store: Arc<S>,
        key: &str,
        cfg: WriteConfig,
        attrs: FileAttrs,
        carried: PutOptions,
        base: Option<Base>,
        size: u64,
    ) -> Result<Self, WriteError> {
        let spool = SpoolFile::create(&cfg.spool_dir).map_err(|e| WriteError::Spool {
            path: cfg.spool_dir.clone(),
            source: Arc::new(e),
        })?;
        let journal = Journal::new(spool.path(), &cfg.bucket, key, cfg.part_size);
        Ok(WriteHandle {
            store,
            key: key.to_string(),
            layout: PartLayout::new(cfg.part_size),
            cfg,
            spool,
            size: Arc::new(AtomicU64::new(size)),
            attrs,
            carried,
            base,
            dirty: RangeSet::new(),
            present: RangeSet::new(),
            phase: Phase::Spooling,
            data_changed: false,
            meta_changed: false,
            upload: None,
            next_stream_part: 1,
            open_truncate_only: false,
            based_on: None,
            journal,
            resumed: false,
            recorded_parts: Vec::new(),
        })
    }

    /// Bring the journal record up to date with the handle and write it (`durable`: fsync'd).
    fn journal_sync(&mut self, state: State, durable: bool) {
        let opts = self.put_options();
        let r = &mut self.journal.record;
        r.key = self.key.clone();
        r.size = self.size.load(Ordering::SeqCst);
        r.based_on = self.based_on.clone();
        r.base = self.base.as_ref().map(|b| BaseRecord {
            key: b.key.clone(),
            etag: b.etag.clone(),
            len: b.len,
        });
        r.carried = CarriedRecord::of(&opts);
        r.upload_id = self.upload.as_ref().map(|u| u.upload_id.clone());
        r.upload_carried = self.upload.as_ref().map(|u| {
            CarriedRecord::of(&PutOptions {
                meta: u.initiated_meta.clone(),
                storage_class: u.initiated_class.clone(),
                acl: u.initiated_acl.clone(),
                ..Default::default()
            })
        });
        let mut parts: Vec<PartRecord> = self.upload.as_ref().map_or_else(Vec::new, |u| {
            u.parts
                .iter()
                .filter_map(|(n, p)| match p {
                    PartSlot::Done(d) => Some(PartRecord {
                        number: *n,
                        etag: d.etag.clone(),
                        crc64: d.crc64,
                        len: d.len,
                    }),
                    PartSlot::InFlight { .. } => None,
                })
                .collect()
        });
        // Parts of a resumed upload not checked yet stay recorded (a crash now keeps them).
        if self.upload.is_some() {
            for p in &self.recorded_parts {
                if !parts.iter().any(|q| q.number == p.number) {
                    parts.push(p.clone());
                }
            }
            parts.sort_by_key(|p| p.number);
        }
        r.parts_done = parts.iter().map(|p| p.number).collect();
        r.parts = parts;
        r.state = state;
        r.error = match &self.phase {
            Phase::Failed(e) => Some(e.to_string()),
            _ => None,
        };
        self.journal.save(durable);
    }

    /// The record's state, for updates that do not change it.
    fn journal_state(&self) -> State {
        self.journal.record.state
    }

    /// Path of the journal record (beside the spool file).
    pub fn journal_path(&self) -> PathBuf {
        self.journal.path().to_path_buf()
    }

    pub fn key(&self) -> &str {
        &self.key
    }

    /// The file's current size, as stat should show it while it is being written.
    pub fn size(&self) -> u64 {
        self.size.load(Ordering::SeqCst)
    }

    /// The size, shared, for readers that must not wait for a busy handle.
    pub fn shared_size(&self) -> Arc<AtomicU64> {
        self.size.clone()
    }

    pub fn attrs(&self) -> FileAttrs {
        self.attrs
    }

    /// The spool file's path (it is kept there when an upload failed).
    pub fn spool_path(&self) -> PathBuf {
        self.spool.path().to_path_buf()
    }

    pub fn state(&self) -> WriteState {
        match &self.phase {
            Phase::Spooling => WriteState::Spooling,
            Phase::Uploading => WriteState::Uploading,
            Phase::Completed(r) => WriteState::Completed(r.clone()),
            Phase::Failed(e) => WriteState::Failed(e.to_string()),
        }
    }

    /// After a successful upload, free the spool's disk space (the object in COS now holds
    /// every byte; later reads or writes fetch what they need again). For close(2), where the
    /// handle is usually about to go away; fsync keeps the local copy.
    pub fn drop_local_copy(&mut self) {
        if !matches!(self.phase, Phase::Completed(_)) || self.is_dirty() {
            return;
        }
        match self.spool.set_len(0) {
            Ok(()) => self.present = RangeSet::new(),
            Err(e) => tracing::debug!(key = %self.key, "could not shrink the spool file: {e}"),
        }
    }

    /// Forget the changes: the file was deleted while open, nothing is to be uploaded (the
    /// spool file goes away with the handle).
    pub fn discard(&mut self) {
        self.data_changed = false;
        self.meta_changed = false;
        if !matches!(self.phase, Phase::Failed(_)) {
            self.journal.remove();
        }
    }

    /// Parts of the current multipart upload started or finished (0 when none is running).
    pub fn parts_in_upload(&self) -> usize {
        self.upload.as_ref().map_or(0, |u| u.parts.len())
    }

    /// Is there anything a flush would upload?
    pub fn is_dirty(&self) -> bool {
        self.data_changed || self.meta_changed
    }

    /// The sticky error of a failed handle, if any (what a flush that does not commit reports).
    pub fn check_failed(&self) -> Result<(), WriteError> {
        self.check_usable()
    }

    fn check_usable(&self) -> Result<(), WriteError> {
        match &self.phase {
            Phase::Failed(e) => Err(e.clone()),
            _ => Ok(()),
        }
    }

    fn spool_error(&self, e: io::Error) -> WriteError {
        WriteError::Spool {
            path: self.spool.path().to_path_buf(),
            source: Arc::new(e),
        }
    }

    /// Is the O_TRUNC of the open the only change so far (see the field)?
    pub fn only_open_truncate(&self) -> bool {
        self.open_truncate_only && self.is_dirty()
    }

    fn touch(&mut self) {
        self.open_truncate_only = false;
        self.data_changed = true;
        self.attrs.mtime = SystemTime::now();
        self.attrs.ctime = self.attrs.mtime;
        if matches!(self.phase, Phase::Completed(_)) {
            self.phase = Phase::Spooling;
        }
        if !self.journal.is_saved() || self.journal_state() != State::Open {
            self.journal_sync(State::Open, true);
        }
    }

    /// Before the application's bytes `[offset, end)` go to the spool: record the part of
    /// them that lies over the base object (bytes past its end are the spool's anyway). With
    /// too many disjoint ranges, the rest of the base is fetched into the spool once and the
    /// whole base range recorded instead.
    async fn journal_written(&mut self, offset: u64, end: u64) -> Result<(), WriteError> {
        let Some(base_len) = self.base.as_ref().map(|b| b.len) else {
            return Ok(());
        };
        if offset >= base_len || !self.journal.note_written(offset, end.min(base_len)) {
            return Ok(());
        }
        if self.journal.written().ranges().len() > journal::MAX_RECORDED_RANGES {
            self.ensure_local(0, base_len).await?;
            let mut all = RangeSet::new();
            all.insert(0, base_len);
            self.journal.set_written(all);
        }
        let state = self.journal_state();
        self.journal_sync(state, false);
        Ok(())
    }

    /// Write `data` at `offset` (past the end leaves a hole of zeros).
    pub async fn write_at(&mut self, offset: u64, data: &[u8]) -> Result<(), WriteError> {
        self.check_usable()?;
        if data.is_empty() {
            return Ok(());
        }
        let max = self.layout.capacity();
        let end = offset
            .checked_add(data.len() as u64)
            .filter(|end| *end <= max)
            .ok_or(WriteError::TooLarge {
                size: offset.saturating_add(data.len() as u64),
                max,
            })?;
        let old_size = self.size();
        self.touch();
        // Whatever happens to the spool write, parts covering the range are no longer valid.
        self.invalidate(offset.min(old_size), end);
        if let Err(e) = self.journal_written(offset, end).await {
            return Err(self.fail(e).await);
        }
        if let Err(e) = self.spool.write_at(offset, data) {
            // The spool no longer mirrors what the application wrote (a full disk, an I/O
            // error): the file must never be committed from it. Fail for good.
            self.dirty.insert(offset, end);
            self.present.insert(offset, end);
            let err = self.spool_error(e);
            return Err(self.fail(err).await);
        }
        self.dirty.insert(offset, end);
        self.present.insert(offset, end);
        if end > old_size {
            // A hole between the old end and `offset` reads as zeros from the sparse spool.
            self.dirty.insert(old_size, offset);
            self.present.insert(old_size, offset);
            self.size.store(end, Ordering::SeqCst);
        }
        if offset == old_size {
            self.stream_ready_parts().await?;
        }
        Ok(())
    }

    /// Set the file's size: shrinking drops the tail, growing appends zeros.
    pub async fn truncate(&mut self, new_size: u64) -> Result<(), WriteError> {
        self.check_usable()?;
        let max = self.layout.capacity();
        if new_size > max {
            return Err(WriteError::TooLarge {
                size: new_size,
                max,
            });
        }
        let old_size = self.size();
        if new_size == old_size {
            self.touch();
            return Ok(());
        }
        self.touch();
        if let Err(e) = self.spool.set_len(new_size) {
            let err = self.spool_error(e);
            return Err(self.fail(err).await);
        }
        if new_size < old_size {
            self.dirty.truncate(new_size);
            self.present.truncate(new_size);
            if let Some(base) = &mut self.base {
                base.len = base.len.min(new_size);
            }
            let mut written = self.journal.written().clone();
            written.truncate(new_size);
            self.journal.set_written(written);
            // The part now holding the last byte changed length, later ones are gone.
            self.invalidate(new_size.saturating_sub(1), u64::MAX);
        } else {
            self.dirty.insert(old_size, new_size);
            self.present.insert(old_size, new_size);
            self.invalidate(old_size.saturating_sub(1), new_size);
        }
        self.size.store(new_size, Ordering::SeqCst);
        self.journal_sync(State::Open, false);
        Ok(())
    }

    /// Change mode, owner or mtime; they go up with the next upload (or as a metadata-only
    /// update when the data did not change).
    pub fn set_attrs(
        &mut self,
        mode: Option<u32>,
        uid: Option<u32>,
        gid: Option<u32>,
        mtime: Option<SystemTime>,
        atime: Option<SystemTime>,
    ) -> Result<(), WriteError> {
        self.check_usable()?;
        self.attrs.ctime = SystemTime::now();
        if atime.is_some() {
            self.attrs.atime = atime;
        }
        if let Some(mode) = mode {
            // chmod changes permission bits only; the file stays a regular file.
            self.attrs.mode = (self.attrs.mode & libc::S_IFMT) | (mode & 0o7777);
        }
        if let Some(uid) = uid {
            self.attrs.uid = uid;
        }
        if let Some(gid) = gid {
            self.attrs.gid = gid;
        }
        if let Some(mtime) = mtime {
            self.attrs.mtime = mtime;
        }
        self.meta_changed = true;
        self.open_truncate_only = false;
        if matches!(self.phase, Phase::Completed(_)) {
            self.phase = Phase::Spooling;
        }
        let durable = !self.journal.is_saved();
        self.journal_sync(State::Open, durable);
        Ok(())
    }

    /// Upload with this ACL (what the object being replaced has, see
    /// [`namespace::acl_to_keep`]): COS resets the ACL on every PUT and Initiate that does not
    /// send it. Not a change of its own (nothing is uploaded for it).
    pub fn with_acl(mut self, acl: Option<AclHeaders>) -> Self {
        self.carried.acl = acl.filter(|a| !a.is_default());
        self
    }

    /// Read the file's current content (for reads through a handle open for writing).
    /// The content headers, user metadata, storage class and ACL the next upload
    /// carries (cosmount's own mode/uid/gid/mtime are added at upload time).
    pub fn carried(&self) -> &PutOptions {
        &self.carried
    }

    /// Change what the next upload carries (xattrs set while the file is open). Like
    /// [`WriteHandle::set_attrs`], it goes up with the data, or as a metadata-only update.
    pub fn update_carried(
        &mut self,
        change: impl FnOnce(&mut PutOptions),
    ) -> Result<(), WriteError> {
        self.check_usable()?;
        change(&mut self.carried);
        self.meta_changed = true;
        self.open_truncate_only = false;
        if matches!(self.phase, Phase::Completed(_)) {
            self.phase = Phase::Spooling;
        }
        let durable = !self.journal.is_saved();
        self.journal_sync(State::Open, durable);
        Ok(())
    }

    pub async fn read_at(&mut self, offset: u64, len: u64) -> Result<Bytes, WriteError> {
        self.check_usable()?;
        let size = self.size();
        if offset >= size || len == 0 {
            return Ok(Bytes::new());
        }
        let end = offset.saturating_add(len).min(size);
        self.ensure_local(offset, end).await?;
        let file = self.spool.file();
        let path = self.spool.path().to_path_buf();
        read_blocking(file, path, offset, end - offset).await
    }

    /// Upload what is there now; the handle stays writable. Returns the new object's ETag/CRC.
    pub async fn flush(&mut self) -> Result<PutResult, WriteError> {
        self.check_usable()?;
        if !self.is_dirty() {
            if let Phase::Completed(r) = &self.phase {
                return Ok(r.clone());
            }
            if let Some(base) = &self.base {
                return Ok(PutResult {
                    etag: base.etag.clone(),
                    crc64: None,
                });
            }
        }
        self.phase = Phase::Uploading;
        // Counted until the upload ends, so a stopping mount waits for it.
        let _commit = CommitGuard::new();
        self.journal_sync(State::Committing, true);
        let outcome = if self.data_changed || self.base.is_none() {
            self.upload_data().await
        } else {
            self.update_metadata_only().await
        };
        match outcome {
            Ok(result) => {
                self.completed(result.clone());
                Ok(result)
            }
            Err(e) => Err(self.fail(e).await),
        }
    }

    /// Flush and end the handle. On success the spool is deleted; on failure it is kept.
    pub async fn close(mut self) -> Result<PutResult, WriteError> {
        self.flush().await
    }

    /// Follow a rename of the file while it is open: the object now lives at `new_key` with
    /// ETag `new_etag` (a copy of what the last flush uploaded). Call after a successful
    /// [`WriteHandle::flush`], so nothing is pending.
    pub fn retarget(&mut self, new_key: &str, new_etag: &str) {
        self.key = new_key.to_string();
        if let Some(base) = &mut self.base {
            base.key = new_key.to_string();
            base.etag = new_etag.to_string();
        }
        self.based_on = Some(new_etag.to_string());
        if self.journal.is_saved() {
            let state = self.journal_state();
            self.journal_sync(state, false);
        }
    }

    fn put_options(&self) -> PutOptions {
        let mut opts = self.carried.clone();
        self.attrs.store_in(&mut opts.meta);
        opts
    }

    /// Drop uploaded parts overlapping `[start, end)`.
    fn invalidate(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let first = self.layout.part_containing(start);
        self.next_stream_part = self.next_stream_part.min(first);
        if let Some(upload) = &mut self.upload {
            let last = self.layout.part_containing(
                end.saturating_sub(1)
                    .min(self.layout.capacity().saturating_sub(1)),
            );
            let touched: Vec<u32> = upload.parts.range(first..=last).map(|(n, _)| *n).collect();
            for number in touched {
                match upload.parts.get_mut(&number) {
                    Some(PartSlot::InFlight { stale, .. }) => *stale = true,
                    _ => {
                        upload.parts.remove(&number);
                    }
                }
            }
        }
    }

    /// Fill `[start, end)` of the spool with the base object's bytes where nothing local is.
    async fn ensure_local(&mut self, start: u64, end: u64) -> Result<(), WriteError> {
        let Some(base) = self.base.clone() else {
            return Ok(());
        };
        let end = end.min(base.len);
        let gaps = self.present.gaps(start, end);
        for (span_start, span_end) in coalesce(&gaps, COALESCE_GAP) {
            let mut at = span_start;
            while at < span_end {
                let len = (span_end - at).min(FETCH_CHUNK);
                let got = self
                    .store
                    .get_range(&base.key, at, len, Some(&base.etag))
                    .await
                    .map_err(|e| WriteError::cos("GetObject", &base.key, e))?;
                if got.data.len() as u64 != len {
                    return Err(WriteError::Internal {
                        key: base.key.clone(),
                        message: format!(
                            "ranged GET at {at} returned {} bytes, expected {len}",
                            got.data.len()
                        ),
                    });
                }
                // Only the gaps are written: bytes in between are the application's.
                for &(gap_start, gap_end) in &gaps {
                    let (from, to) = (gap_start.max(at), gap_end.min(at + len));
                    if from >= to {
                        continue;
                    }
                    let slice = &got.data[(from - at) as usize..(to - at) as usize];
                    self.spool
                        .write_at(from, slice)
                        .map_err(|e| self.spool_error(e))?;
                    self.present.insert(from, to);
                }
                at += len;
            }
        }
        Ok(())
    }

    /// While streaming, upload every part the application has written past.
    async fn stream_ready_parts(&mut self) -> Result<(), WriteError> {
        let size = self.size();
        if size <= self.layout.first_part_size() {
            return Ok(());
        }
        loop {
            let number = self.next_stream_part;
            let (_, end) = self.layout.part_range(number, u64::MAX);
            // Strictly below: the part holding the last byte may still grow.
            if end >= size || number > MAX_PARTS {
                return Ok(());
            }
            let already = self.upload.as_ref().is_some_and(|u| {
                matches!(
                    u.parts.get(&number),
                    Some(PartSlot::Done(_) | PartSlot::InFlight { stale: false, .. })
                )
            });
            if !already {
                if let Err(e) = self.dispatch_part(number, size).await {
                    return Err(self.fail(e).await);
                }
            }
            self.next_stream_part = number + 1;
        }
    }

    async fn ensure_upload(&mut self) -> Result<(), WriteError> {
        if self.upload.is_some() {
            return Ok(());
        }
        let opts = self.put_options();
        let retries = &crate::metrics::global().retries;
        let retries_before = retries.load(Ordering::Relaxed);
        let started = SystemTime::now();
        let initiated = self.store.initiate_multipart(&self.key, &opts).await;
        // A retried Initiate may have been applied by an attempt whose answer was lost (the
        // retry then starts a second upload); a failed one may have been applied too. Either
        // way, uploads of this key started since `started` that are not ours are leaks.
        let retried = retries.load(Ordering::Relaxed) != retries_before;
        let upload_id = match initiated {
            Ok(id) => {
                if retried {
                    self.abort_strays(started, Some(&id)).await;
                }
                id
            }
            Err(e) => {
                if retried || e.status().is_none_or(|s| s >= 500) {
                    self.abort_strays(started, None).await;
                }
                return Err(WriteError::cos("InitiateMultipartUpload", &self.key, e));
            }
        };
        tracing::debug!(key = %self.key, %upload_id, "multipart upload started");
        self.upload = Some(Multipart {
            upload_id,
            parts: BTreeMap::new(),
            tasks: JoinSet::new(),
            next_task: 0,
            initiated_meta: opts.meta,
            initiated_class: opts.storage_class,
            initiated_acl: opts.acl,
        });
        // The upload id, so a recovery after a crash can abort it.
        let state = self.journal_state();
        self.journal_sync(state, true);
        Ok(())
    }

    /// Abort the uploads of this key initiated at or after `since` (COS gives whole seconds)
    /// other than `keep`: ones this handle started whose Initiate answer never arrived.
    async fn abort_strays(&self, since: SystemTime, keep: Option<&str>) {
        let since_secs = unix_seconds(since);
        let uploads = match self.store.list_uploads_of(&self.key).await {
            Ok(u) => u,
            Err(e) => {
                tracing::warn!(key = %self.key,
                    "cannot list the key's multipart uploads after an uncertain Initiate (an upload may leak; `cosmount uploads abort` cleans up): {e}");
                return;
            }
        };
        for u in uploads {
            let ours_in_time = u.key == self.key
                && Some(u.upload_id.as_str()) != keep
                && u.initiated.is_some_and(|t| unix_seconds(t) >= since_secs);
            if !ours_in_time {
                continue;
            }
            match self.store.abort_multipart(&self.key, &u.upload_id).await {
                Ok(()) => tracing::info!(key = %self.key, upload_id = %u.upload_id,
                    "aborted a multipart upload whose Initiate answer was lost"),
                Err(e) => tracing::warn!(key = %self.key, upload_id = %u.upload_id,
                    "aborting a multipart upload whose Initiate answer was lost failed: {e}"),
            }
        }
    }

    /// How many parts of this size may be in flight: `parallel_parts`, fewer once parts grow
    /// past `part_size`, so their buffers stay within `parallel_parts * part_size`.
    fn parallel_limit(&self, number: u32) -> usize {
        let budget = self.cfg.parallel_parts.max(1) as u64 * self.layout.first_part_size();
        let by_memory = (budget / self.layout.part_len(number).max(1)).max(1);
        (by_memory as usize).min(self.cfg.parallel_parts.max(1))
    }

    /// Start uploading part `number` of a file of `size` bytes (waits for a free slot).
    async fn dispatch_part(&mut self, number: u32, size: u64) -> Result<(), WriteError> {
        self.ensure_upload().await?;
        let (start, end) = self.layout.part_range(number, size);
        let copyable = self
            .base
            .as_ref()
            .filter(|b| end <= b.len && !self.dirty.intersects(start, end))
            .map(|b| b.key.clone());
        let source = match copyable {
            Some(source_key) => PartSource::Copy {
                source_key,
                first: start,
                last: end - 1,
            },
            None => {
                self.ensure_local(start, end).await?;
                PartSource::Spool {
                    file: self.spool.file(),
                    path: self.spool.path().to_path_buf(),
                    offset: start,
                    len: end - start,
                }
            }
        };
        // One upload per part number at a time: wait for an earlier (stale) one to end.
        while self
            .upload
            .as_ref()
            .is_some_and(|u| matches!(u.parts.get(&number), Some(PartSlot::InFlight { .. })))
        {
            self.reap_one().await?;
        }
        let limit = self.parallel_limit(number);
        while self.upload.as_ref().is_some_and(|u| u.tasks.len() >= limit) {
            self.reap_one().await?;
        }
        let Some(upload) = &mut self.upload else {
            return Err(self.internal("multipart upload vanished"));
        };
        let task = upload.next_task;
        upload.next_task += 1;
        upload
            .parts
            .insert(number, PartSlot::InFlight { task, stale: false });
        let store = self.store.clone();
        let key = self.key.clone();
        let upload_id = upload.upload_id.clone();
        upload.tasks.spawn(async move {
            let result = upload_one_part(&*store, &key, &upload_id, number, source).await;
            PartOutcome {
                number,
                task,
                result,
            }
        });
        Ok(())
    }

    fn internal(&self, message: &str) -> WriteError {
        WriteError::Internal {
            key: self.key.clone(),
            message: message.to_string(),
        }
    }

    /// Wait for one part task and record its result (a stale result is dropped).
    async fn reap_one(&mut self) -> Result<(), WriteError> {
        let total = self.size();
        let Some(upload) = &mut self.upload else {
            return Ok(());
        };
        let Some(joined) = upload.tasks.join_next().await else {
            return Ok(());
        };
        let outcome = match joined {
            Ok(outcome) => outcome,
            Err(e) => {
                return Err(WriteError::Internal {
                    key: self.key.clone(),
                    message: e.to_string(),
                })
            }
        };
        match upload.parts.get(&outcome.number) {
            Some(PartSlot::InFlight { task, stale }) if *task == outcome.task => {
                if *stale {
                    // Rewritten while this upload ran: a fresh upload replaces it.
                    upload.parts.remove(&outcome.number);
                    return Ok(());
                }
            }
            _ => return Ok(()),
        }
        match outcome.result {
            Ok(done) => {
                upload.parts.insert(outcome.number, PartSlot::Done(done));
                let sent: u64 = upload
                    .parts
                    .values()
                    .map(|p| match p {
                        PartSlot::Done(d) => d.len,
                        _ => 0,
                    })
                    .sum();
                crate::metrics::global().upload_progress(&self.key, sent, total);
                let state = self.journal_state();
                self.journal_sync(state, false);
                Ok(())
            }
            Err(e) => {
                upload.parts.remove(&outcome.number);
                Err(e)
            }
        }
    }

    async fn upload_data(&mut self) -> Result<PutResult, WriteError> {
        let size = self.size();
        if size <= self.layout.first_part_size() {
            return self.put_whole(size).await;
        }
        self.ensure_upload().await?;
        let count = self.layout.part_count(size);
        for number in 1..=count {
            let (start, end) = self.layout.part_range(number, size);
            let ready = match self.upload.as_ref().and_then(|u| u.parts.get(&number)) {
                Some(PartSlot::InFlight { stale, .. }) => !*stale,
                Some(PartSlot::Done(done)) => done.len == end - start,
                None => false,
            };
            if !ready {
                self.dispatch_part(number, size).await?;
            }
        }
        while self.upload.as_ref().is_some_and(|u| !u.tasks.is_empty()) {
            self.reap_one().await?;
        }
        let Some(upload) = self.upload.take() else {
            return Err(self.internal("multipart upload vanished"));
        };
        let mut parts = Vec::with_capacity(count as usize);
        let mut combined = Some(0u64);
        for number in 1..=count {
            let Some(PartSlot::Done(done)) = upload.parts.get(&number) else {
                self.upload = Some(upload);
                return Err(self.internal(&format!("part {number} missing at Complete")));
            };
            combined = match (combined, done.crc64) {
                (Some(acc), Some(crc)) => Some(crc64::combine(acc, crc, done.len)),
                _ => None,
            };
            parts.push(CompletedPart {
                part_number: number,
                etag: done.etag.clone(),
            });
        }
        let result = self
            .store
            .complete_multipart(&self.key, &upload.upload_id, &parts)
            .await;
        let result = match result {
            Ok(r) => r,
            // The answer to an earlier try was lost and that try completed the upload: the
            // retry finds no upload. Committed if the object is exactly what we sent.
            Err(e) if e.code() == Some("NoSuchUpload") => {
                match self.committed_anyway(size, combined, count).await {
                    Some(r) => r,
                    None => {
                        self.upload = Some(upload);
                        return Err(WriteError::cos("CompleteMultipartUpload", &self.key, e));
                    }
                }
            }
            Err(e) => {
                self.upload = Some(upload);
                return Err(WriteError::cos("CompleteMultipartUpload", &self.key, e));
            }
        };
        if let (Some(sent), Some(stored)) = (combined, result.crc64) {
            if sent != stored {
                return Err(WriteError::ChecksumMismatch {
                    key: self.key.clone(),
                    what: "the completed object".into(),
                    sent,
                    stored,
                });
            }
        }
        // Metadata is fixed at Initiate; an explicit chmod/chown/utimens since then needs a
        // metadata update (data already safe, so a failure here is only logged).
        let wanted = self.put_options();
        let differs = wanted.meta != upload.initiated_meta
            || wanted.storage_class != upload.initiated_class
            || wanted.acl != upload.initiated_acl;
        if self.meta_changed && differs {
            let base_etag = result.etag.clone();
            match self.copy_metadata_onto_itself(&base_etag).await {
                Ok(r) => return Ok(r),
                Err(e) => tracing::warn!(
                    key = %self.key, etag = %base_etag,
                    "uploaded, but updating mode/owner/mtime afterwards failed: {e}"
                ),
            }
        }
        Ok(result)
    }

    /// After Complete answered NoSuchUpload: is the object the one this upload made (its
    /// size, `count` parts, and the CRC-64 of what was sent)?
    async fn committed_anyway(
        &self,
        size: u64,
        sent_crc: Option<u64>,
        count: u32,
    ) -> Option<PutResult> {
        let info = self.store.head_object(&self.key).await.ok()?;
        let same = info.size == size
            && sent_crc.is_some()
            && info.crc64 == sent_crc
            && info.etag.ends_with(&format!("-{count}"));
        if !same {
            return None;
        }
        tracing::info!(key = %self.key, etag = %info.etag,
            "Complete answered NoSuchUpload, but the object is the one uploaded (an earlier answer was lost)");
        Some(PutResult {
            etag: info.etag,
            crc64: info.crc64,
        })
    }

    async fn put_whole(&mut self, size: u64) -> Result<PutResult, WriteError> {
        if let Some(upload) = self.upload.take() {
            // The file shrank below one part after streaming began.
            let _ = self.abort_upload(upload).await;
            let state = self.journal_state();
            self.journal_sync(state, false);
        }
        self.ensure_local(0, size).await?;
        // `_mem`: the body's share of the memory budget, held until the upload is done.
        let (body, sent, _mem) =
            read_with_crc(self.spool.file(), self.spool.path().to_path_buf(), 0, size).await?;
        let result = self
            .store
            .put_object(&self.key, body, &self.put_options())
            .await
            .map_err(|e| WriteError::cos("PutObject", &self.key, e))?;
        check_crc(&self.key, "the object", sent, result.crc64)?;
        Ok(result)
    }

    async fn update_metadata_only(&mut self) -> Result<PutResult, WriteError> {
        let etag = match &self.base {
            Some(base) => base.etag.clone(),
            None => return self.upload_data().await,
        };
        self.copy_metadata_onto_itself(&etag).await
    }

    /// The metadata-only update of the object this handle last saw (ETag `etag`): the one
    /// [`namespace::rewrite_in_place`], with the ACL learned at open (or set since).
    async fn copy_metadata_onto_itself(&self, etag: &str) -> Result<PutResult, WriteError> {
        let opts = self.put_options();
        let version = namespace::Version {
            key: self.key.clone(),
            etag: etag.to_string(),
            size: self.size(),
            crc64: None,
        };
        let acl = namespace::AclSource::Known(opts.acl.clone());
        namespace::rewrite_in_place(
            &*self.store,
            &namespace::NamespaceConfig::default(),
            &version,
            opts,
            acl,
        )
        .await
        .map_err(|e| match e {
            namespace::NsError::Cos { op, key, source } => WriteError::cos(op, &key, source),
            other => WriteError::Internal {
                key: self.key.clone(),
                message: other.to_string(),
            },
        })
    }

    fn completed(&mut self, result: PutResult) {
        crate::metrics::global().upload_finished(&self.key);
        let size = self.size();
        // The new object is now the base: unchanged parts of it can be copied by later uploads.
        self.base = Some(Base {
            key: self.key.clone(),
            etag: result.etag.clone(),
            len: size,
        });
        self.dirty = RangeSet::new();
        self.data_changed = false;
        self.meta_changed = false;
        self.next_stream_part = 1;
        self.open_truncate_only = false;
        self.based_on = Some(result.etag.clone());
        self.phase = Phase::Completed(result);
        // Nothing pending: the record says so (a crash now leaves nothing to recover).
        self.journal.set_written(RangeSet::new());
        self.journal_sync(State::Committed, false);
    }

    /// Abort a multipart upload. Returns it back when the abort failed (so its id stays in
    /// the journal record for `cosmount recover` to abort).
    async fn abort_upload(&self, mut upload: Multipart) -> Option<Multipart> {
        upload.tasks.shutdown().await;
        match self
            .store
            .abort_multipart(&self.key, &upload.upload_id)
            .await
        {
            Ok(()) => None,
            Err(e) if e.is_not_found() => None,
            Err(e) => {
                tracing::warn!(key = %self.key, upload_id = %upload.upload_id,
                    "aborting the failed multipart upload failed (`cosmount recover` or `cosmount uploads abort` cleans up): {e}");
                Some(upload)
            }
        }
    }

    /// Enter the sticky failed state: abort the upload, keep the spool, log where it is.
    /// A resumed handle keeps its upload and the record's state `committing` instead, so the
    /// next mount (or `cosmount recover --push`) tries again from what COS holds.
    async fn fail(&mut self, err: WriteError) -> WriteError {
        crate::metrics::global().upload_finished(&self.key);
        if let Some(mut upload) = self.upload.take() {
            if self.resumed {
                upload.tasks.shutdown().await;
                self.upload = Some(upload);
            } else {
                // A failed abort keeps the id for the record (and so for `cosmount recover`).
                self.upload = self.abort_upload(upload).await;
            }
        }
        let spool = match self.spool.keep() {
            Ok(path) => path.display().to_string(),
            Err(e) => format!("(could not keep {}: {e})", self.spool.path().display()),
        };
        tracing::error!(
            key = %self.key,
            code = err.cos_code().unwrap_or("-"),
            request_id = err.request_id().unwrap_or("-"),
            spool = %spool,
            "upload failed, the written data is kept in the spool file: {err}"
        );
        self.phase = Phase::Failed(err.clone());
        let state = if self.resumed {
            State::Committing
        } else {
            State::Failed
        };
        self.journal_sync(state, true);
        // A kept upload is not used again: the handle is failed for good.
        self.upload = None;
        err
    }
}

impl<S: ObjectStore> Drop for WriteHandle<S> {
    fn drop(&mut self) {
        crate::metrics::global().upload_finished(&self.key);
        // Dropped with data never uploaded (the mount went away before close): keep it, and
        // its journal record, for `cosmount recover`.
        if self.is_dirty() && !self.spool.is_kept() {
            match self.spool.keep() {
                Ok(path) => tracing::warn!(key = %self.key, spool = %path.display(),
                    "file dropped before its upload; the written data is kept in the spool file (see `cosmount recover`)"),
                Err(e) => tracing::error!(key = %self.key, "could not keep the spool file: {e}"),
            }
        }
        // Nothing pending and not failed: the spool goes (it is temporary), so does its record.
        if !self.spool.is_kept() {
            self.journal.remove();
        }
        // A handle dropped without close (e.g. the mount going away) must not leave a pending
        // multipart upload costing storage. A resumed one keeps it: its record still names it
        // for the next try (or `cosmount recover --drop`).
        if self.resumed && self.spool.is_kept() {
            return;
        }
        if let Some(upload) = self.upload.take() {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                let store = self.store.clone();
                let key = self.key.clone();
                rt.spawn(async move {
                    let _ = store.abort_multipart(&key, &upload.upload_id).await;
                });
            }
        }
    }
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// The object the record's upload makes when completed, if the record lists every part of a
/// file of `size` bytes with its CRC: (combined CRC-64, number of parts). A crash after
/// Complete but before the record said so leaves exactly that object.
pub fn recorded_upload_crc(record: &Record, size: u64) -> Option<(u64, u32)> {
    let layout = PartLayout::new(record.part_size);
    if size <= layout.first_part_size() || record.upload_id.is_none() {
        return None;
    }
    let count = layout.part_count(size);
    if record.parts.len() != count as usize {
        return None;
    }
    let mut crc = 0u64;
    for (i, part) in record.parts.iter().enumerate() {
        let (start, end) = layout.part_range(i as u32 + 1, size);
        if part.number != i as u32 + 1 || part.len != end - start {
            return None;
        }
        crc = crc64::combine(crc, part.crc64?, part.len);
    }
    Some((crc, count))
}

/// Merge sorted ranges whose distance is at most `max_hole`.
fn coalesce(ranges: &[(u64, u64)], max_hole: u64) -> Vec<(u64, u64)> {
    let mut merged: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &(start, end) in ranges {
        match merged.last_mut() {
            Some(last) if start.saturating_sub(last.1) <= max_hole => last.1 = last.1.max(end),
            _ => merged.push((start, end)),
        }
    }
    merged
}

fn check_crc(key: &str, what: &str, sent: u64, stored: Option<u64>) -> Result<(), WriteError> {
    match stored {
        Some(stored) if stored != sent => Err(WriteError::ChecksumMismatch {
            key: key.to_string(),
            what: what.to_string(),
            sent,
            stored,
        }),
        _ => Ok(()),
    }
}

async fn read_blocking(
    file: Arc<File>,
    path: PathBuf,
    offset: u64,
    len: u64,
) -> Result<Bytes, WriteError> {
    let joined = tokio::task::spawn_blocking(move || read_spool(&file, offset, len as usize)).await;
    match joined {
        Ok(Ok(data)) => Ok(data),
        Ok(Err(e)) => Err(WriteError::Spool {
            path,
            source: Arc::new(e),
        }),
        Err(e) => Err(WriteError::Spool {
            path,
            source: Arc::new(io::Error::other(e.to_string())),
        }),
    }
}

/// Read a range of the spool and its CRC-64, both off the async workers (a part is megabytes:
/// hashing it inline would stall other operations' tasks). The buffer first waits for its room
/// in the mount's memory budget (crate::memory); the caller holds the permit while uploading.
async fn read_with_crc(
    file: Arc<File>,
    path: PathBuf,
    offset: u64,
    len: u64,
) -> Result<(Bytes, u64, crate::memory::MemPermit), WriteError> {
    let mem = crate::memory::global()
        .acquire(len, crate::memory::Use::Write)
        .await
        .map_err(|e| WriteError::Spool {
            path: path.clone(),
            source: Arc::new(io::Error::other(e.to_string())),
        })?;
    let joined = tokio::task::spawn_blocking(move || {
        read_spool(&file, offset, len as usize).map(|data| {
            let crc = crc64::checksum(&data);
            (data, crc)
        })
    })
    .await;
    match joined {
        Ok(Ok((data, crc))) => Ok((data, crc, mem)),
        Ok(Err(e)) => Err(WriteError::Spool {
            path,
            source: Arc::new(e),
        }),
        Err(e) => Err(WriteError::Spool {
            path,
            source: Arc::new(io::Error::other(e.to_string())),
        }),
    }
}

async fn upload_one_part<S: ObjectStore>(
    store: &S,
    key: &str,
    upload_id: &str,
    number: u32,
    source: PartSource,
) -> Result<DonePart, WriteError> {
    match source {
        PartSource::Spool {
            file,
            path,
            offset,
            len,
        } => {
            // `_mem` is held until the part is uploaded.
            let (body, sent, _mem) = read_with_crc(file, path, offset, len).await?;
            let result = store
                .upload_part(key, upload_id, number, body)
                .await
                .map_err(|e| WriteError::cos("UploadPart", key, e))?;
            check_crc(key, &format!("part {number}"), sent, result.crc64)?;
            Ok(DonePart {
                etag: result.etag,
                crc64: Some(sent),
                len,
            })
        }
        PartSource::Copy {
            source_key,
            first,
            last,
        } => {
            let result = store
                .upload_part_copy(key, upload_id, number, &source_key, Some((first, last)))
                .await
                .map_err(|e| WriteError::cos("UploadPartCopy", key, e))?;
            Ok(DonePart {
                etag: result.etag,
                crc64: result.crc64,
                len: last - first + 1,
            })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cos::memory::{MemoryStore, StoreOp};
    #[allow(unused_imports)]
    use crate::fs::error::ToErrno;
    use rand::{Rng, SeedableRng};

    /// Small parts keep tests fast; the store accepts them as COS accepts 1 MiB ones.
    const PART: u64 = 64 * 1024;

    struct Fixture {
        store: Arc<MemoryStore>,
        dir: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            let store = Arc::new(MemoryStore::new());
            store.set_min_part_size(PART);
            Fixture {
                store,
                dir: tempfile::tempdir().unwrap(),
            }
        }

        fn cfg(&self) -> WriteConfig {
            WriteConfig {
                part_size: PART,
                parallel_parts: 4,
                spool_dir: self.dir.path().to_path_buf(),
                bucket: "b-1".into(),
            }
        }

        fn create(&self, key: &str) -> WriteHandle<MemoryStore> {
            WriteHandle::create(self.store.clone(), key, self.cfg(), attrs()).unwrap()
        }

        async fn open(&self, key: &str, truncate: bool) -> WriteHandle<MemoryStore> {
            let info = self.store.head_object(key).await.unwrap();
            WriteHandle::open_existing(self.store.clone(), &info, truncate, self.cfg(), attrs())
                .unwrap()
        }

        fn spool_files(&self) -> Vec<PathBuf> {
            std::fs::read_dir(self.dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect()
        }
    }

    fn attrs() -> FileAttrs {
        FileAttrs {
            mode: libc::S_IFREG | 0o640,
            uid: 1000,
            gid: 100,
            mtime: UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            ctime: UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            atime: None,
        }
    }

    /// Content that depends on the position, so an off-by-one shows.
    fn pattern(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| ((i as u64 * 31 + i as u64 / 251) as u8).wrapping_add(seed))
            .collect()
    }

    async fn write_in_chunks(h: &mut WriteHandle<MemoryStore>, data: &[u8], chunk: usize) {
        for (i, piece) in data.chunks(chunk).enumerate() {
            h.write_at((i * chunk) as u64, piece).await.unwrap();
        }
    }

    #[test]
    fn part_layout_grows_every_thousand_parts_and_fits_ten_thousand() {
        let l = PartLayout::new(8 * MIB);
        assert_eq!(l.part_len(1), 8 * MIB);
        assert_eq!(l.part_len(1000), 8 * MIB);
        assert_eq!(l.part_len(1001), 16 * MIB);
        assert_eq!(l.part_start(1001), 1000 * 8 * MIB);
        assert_eq!(l.part_start(1002), 1000 * 8 * MIB + 16 * MIB);
        assert!(
            l.capacity() > 7 * 1024 * 1024 * MIB,
            "8 MiB parts hold over 7 TiB"
        );
        assert_eq!(l.part_count(l.capacity()), MAX_PARTS);
        for number in [1, 2, 999, 1000, 1001, 2500, 9999, 10_000] {
            let start = l.part_start(number);
            assert_eq!(l.part_containing(start), number);
            assert_eq!(l.part_containing(start + l.part_len(number) - 1), number);
        }
        assert_eq!(l.part_count(0), 0);
        assert_eq!(l.part_count(8 * MIB), 1);
        assert_eq!(l.part_count(8 * MIB + 1), 2);
    }

    #[tokio::test]
    async fn small_file_goes_up_with_one_put_and_cosfs_metadata() {
        let f = Fixture::new();
        let mut h = f.create("docs/a.txt");
        let data = pattern(1000, 1);
        write_in_chunks(&mut h, &data, 300).await;
        assert_eq!(h.size(), 1000);
        assert_eq!(h.state(), WriteState::Spooling);
        let result = h.close().await.unwrap();
        let obj = f.store.object("docs/a.txt").unwrap();
        assert_eq!(obj.data, data);
        assert_eq!(result.etag, obj.etag);
        assert_eq!(obj.meta["mode"], (libc::S_IFREG | 0o640).to_string());
        assert_eq!(obj.meta["uid"], "1000");
        assert_eq!(obj.meta["gid"], "100");
        assert!(
            crate::fs::attr::parse_meta_time(&obj.meta["mtime"]).unwrap()
                > UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000),
            "writes bump mtime"
        );
        assert_eq!(obj.meta["ctime"], obj.meta["mtime"], "and ctime with it");
        assert_eq!(obj.content.content_type.as_deref(), Some("text/plain"));
        assert_eq!(f.store.requests(StoreOp::PutObject), 1);
        assert_eq!(f.store.requests(StoreOp::InitiateMultipart), 0);
        assert!(f.spool_files().is_empty(), "spool removed after success");
    }

    #[tokio::test]
    async fn an_empty_new_file_becomes_an_empty_object() {
        let f = Fixture::new();
        f.create("empty").close().await.unwrap();
        assert_eq!(f.store.get("empty").unwrap().len(), 0);
    }

    #[tokio::test]
    async fn exactly_one_part_is_a_put_and_one_byte_more_is_multipart() {
        let f = Fixture::new();
        for (key, len) in [("one", PART), ("two", PART + 1), ("less", PART - 1)] {
            let mut h = f.create(key);
            let data = pattern(len as usize, 7);
            write_in_chunks(&mut h, &data, 4096).await;
            h.close().await.unwrap();
            assert_eq!(f.store.get(key).unwrap(), data, "{key}");
        }
        assert_eq!(f.store.requests(StoreOp::PutObject), 2);
        assert_eq!(f.store.requests(StoreOp::CompleteMultipart), 1);
        assert_eq!(f.store.requests(StoreOp::UploadPart), 2);
        assert!(f.store.object("two").unwrap().etag.ends_with("-2"));
    }

    #[tokio::test]
    async fn sequential_writes_stream_parts_before_close() {
        let f = Fixture::new();
        let mut h = f.create("big.bin");
        let data = pattern((5 * PART + PART / 2) as usize, 3);
        write_in_chunks(&mut h, &data, 16 * 1024).await;
        // Parts 1..=5 were written past, so they are already on their way.
        assert_eq!(h.parts_in_upload(), 5);
        assert_eq!(f.store.requests(StoreOp::PutObject), 0);
        h.close().await.unwrap();
        assert_eq!(f.store.get("big.bin").unwrap(), data);
        assert_eq!(
            f.store.requests(StoreOp::UploadPart),
            6,
            "each part uploaded once"
        );
        assert!(f.store.pending_uploads().is_empty());
    }

    #[tokio::test]
    async fn at_most_parallel_parts_are_in_flight() {
        let f = Fixture::new();
        f.store
            .set_latency(StoreOp::UploadPart, std::time::Duration::from_millis(20));
        let mut cfg = f.cfg();
        cfg.parallel_parts = 2;
        let mut h = WriteHandle::create(f.store.clone(), "p", cfg, attrs()).unwrap();
        let data = pattern((8 * PART) as usize, 9);
        write_in_chunks(&mut h, &data, PART as usize / 2).await;
        h.close().await.unwrap();
        assert_eq!(f.store.get("p").unwrap(), data);
        assert_eq!(f.store.peak_in_flight(StoreOp::UploadPart), 2);
    }

    #[tokio::test]
    async fn rewriting_an_uploaded_part_uploads_it_again() {
        let f = Fixture::new();
        let mut h = f.create("r");
        let mut data = pattern((3 * PART) as usize, 5);
        write_in_chunks(&mut h, &data, 8192).await;
        // Part 1 is already streamed; change a byte in it.
        h.write_at(10, b"Z").await.unwrap();
        data[10] = b'Z';
        h.close().await.unwrap();
        assert_eq!(f.store.get("r").unwrap(), data);
    }

    #[tokio::test]
    async fn modifying_keeps_headers_user_metadata_and_storage_class() {
        let f = Fixture::new();
        let opts = PutOptions {
            content: ContentHeaders {
                content_type: Some("application/x-custom".into()),
                cache_control: Some("no-cache".into()),
                ..Default::default()
            },
            meta: BTreeMap::from([("color".to_string(), "blue".to_string())]),
            storage_class: Some("STANDARD_IA".into()),
            ..Default::default()
        };
        let original = pattern(10_000, 2);
        f.store.insert("m.dat", original.clone(), &opts);
        let mut h = f.open("m.dat", false).await;
        assert_eq!(h.size(), 10_000);
        h.write_at(100, b"XYZ").await.unwrap();
        h.close().await.unwrap();
        let obj = f.store.object("m.dat").unwrap();
        let mut expected = original;
        expected[100..103].copy_from_slice(b"XYZ");
        assert_eq!(obj.data, expected);
        assert_eq!(obj.storage_class, "STANDARD_IA");
        assert_eq!(obj.content, opts.content);
        assert_eq!(obj.meta["color"], "blue");
        assert_eq!(obj.meta["uid"], "1000");
    }

    #[tokio::test]
    async fn rewrites_send_the_acl_learned_at_open_with_put_initiate_and_copy() {
        let f = Fixture::new();
        let acl = AclHeaders::canned("public-read");
        let opts = PutOptions {
            storage_class: Some("STANDARD_IA".into()),
            acl: Some(acl.clone()),
            ..Default::default()
        };
        // One PUT (small), one multipart upload (Initiate carries it), one metadata-only copy.
        f.store.insert("small", &b"old"[..], &opts);
        f.store.insert("big", pattern(3 * PART as usize, 1), &opts);
        f.store.insert("meta", &b"same"[..], &opts);
        for key in ["small", "big", "meta"] {
            let mut h = f
                .open(key, key == "small")
                .await
                .with_acl(Some(acl.clone()));
            match key {
                "small" => h.write_at(0, b"new").await.unwrap(),
                "big" => h.write_at(10, b"XYZ").await.unwrap(),
                _ => h.set_attrs(Some(0o600), None, None, None, None).unwrap(),
            }
            h.close().await.unwrap();
            let obj = f.store.object(key).unwrap();
            assert_eq!(obj.acl.as_ref(), Some(&acl), "{key}");
            assert_eq!(obj.storage_class, "STANDARD_IA", "{key}");
        }
        assert!(f.store.requests(StoreOp::InitiateMultipart) >= 1);
        assert_eq!(f.store.requests(StoreOp::CopyObject), 1);
        assert_eq!(&f.store.object("small").unwrap().data[..], b"new");
        // Without an ACL (a `default` object), nothing is sent and the result is `default`.
        let mut h = f.open("small", true).await;
        h.write_at(0, b"x").await.unwrap();
        h.close().await.unwrap();
        assert_eq!(f.store.object("small").unwrap().acl, None);
    }

    #[tokio::test]
    async fn open_with_truncate_and_append_and_unchanged_open() {
        let f = Fixture::new();
        f.store
            .insert("t", &b"old content"[..], &PutOptions::default());
        let mut h = f.open("t", true).await;
        assert_eq!(h.size(), 0);
        h.write_at(0, b"new").await.unwrap();
        h.close().await.unwrap();
        assert_eq!(&f.store.get("t").unwrap()[..], b"new");

        let mut h = f.open("t", false).await;
        h.write_at(3, b"+more").await.unwrap();
        h.close().await.unwrap();
        assert_eq!(&f.store.get("t").unwrap()[..], b"new+more");

        // Opened for writing but never written: no request at close.
        f.store.reset_requests();
        f.open("t", false).await.close().await.unwrap();
        assert_eq!(
            f.store.request_counts(),
            BTreeMap::from([(StoreOp::HeadObject, 1)])
        );
    }

    #[tokio::test]
    async fn truncate_shrinks_and_grows_with_zeros() {
        let f = Fixture::new();
        f.store
            .insert("z", pattern(5000, 4), &PutOptions::default());
        let mut reference = pattern(5000, 4);
        let mut h = f.open("z", false).await;
        h.truncate(1000).await.unwrap();
        reference.truncate(1000);
        h.truncate(3000).await.unwrap();
        reference.resize(3000, 0);
        h.write_at(2000, b"mid").await.unwrap();
        reference[2000..2003].copy_from_slice(b"mid");
        assert_eq!(h.size(), 3000);
        assert_eq!(h.read_at(0, 5000).await.unwrap(), reference);
        h.close().await.unwrap();
        assert_eq!(f.store.get("z").unwrap(), reference);
    }

    #[tokio::test]
    async fn unchanged_parts_of_a_large_object_are_copied_server_side() {
        let f = Fixture::new();
        let original = pattern((6 * PART) as usize, 6);
        f.store
            .insert("huge", original.clone(), &PutOptions::default());
        let mut h = f.open("huge", false).await;
        let at = (2 * PART + 100) as usize;
        h.write_at(at as u64, b"changed").await.unwrap();
        h.close().await.unwrap();
        let mut expected = original;
        expected[at..at + 7].copy_from_slice(b"changed");
        assert_eq!(f.store.get("huge").unwrap(), expected);
        assert_eq!(f.store.requests(StoreOp::UploadPartCopy), 5);
        assert_eq!(f.store.requests(StoreOp::UploadPart), 1);
        // Only the rest of the changed part was downloaded, in one ranged GET.
        assert_eq!(f.store.requests(StoreOp::GetRange), 1);
    }

    #[tokio::test]
    async fn flush_publishes_and_the_handle_stays_writable() {
        let f = Fixture::new();
        let mut h = f.create("f");
        let first = pattern((2 * PART + 10) as usize, 8);
        write_in_chunks(&mut h, &first, 10_000).await;
        h.flush().await.unwrap();
        assert!(matches!(h.state(), WriteState::Completed(_)));
        assert_eq!(f.store.get("f").unwrap(), first);
        h.write_at(first.len() as u64, b"tail").await.unwrap();
        assert_eq!(h.state(), WriteState::Spooling);
        f.store.reset_requests();
        h.close().await.unwrap();
        let mut all = first;
        all.extend_from_slice(b"tail");
        assert_eq!(f.store.get("f").unwrap(), all);
        // The two untouched full parts were copied, not sent again.
        assert_eq!(f.store.requests(StoreOp::UploadPartCopy), 2);
        assert_eq!(f.store.requests(StoreOp::UploadPart), 1);
    }

    #[tokio::test]
    async fn dropping_the_local_copy_after_an_upload_frees_disk_and_refetches() {
        let f = Fixture::new();
        let mut h = f.create("d");
        let first = pattern((2 * PART + 100) as usize, 4);
        write_in_chunks(&mut h, &first, 9000).await;
        h.flush().await.unwrap();
        h.drop_local_copy();
        let spool = h.spool_path();
        assert_eq!(
            std::fs::metadata(&spool).unwrap().len(),
            0,
            "disk space freed"
        );
        // The handle still works: reads and a write in the middle fetch what they need.
        assert_eq!(h.read_at(0, 50).await.unwrap(), first[..50]);
        h.write_at(PART + 5, b"mid").await.unwrap();
        h.close().await.unwrap();
        let mut expected = first;
        expected[(PART + 5) as usize..(PART + 8) as usize].copy_from_slice(b"mid");
        assert_eq!(f.store.get("d").unwrap(), expected);
    }

    #[tokio::test]
    async fn random_writes_and_truncates_match_a_reference() {
        let f = Fixture::new();
        let mut rng = rand::rngs::StdRng::seed_from_u64(42);
        let mut reference = pattern((4 * PART + 777) as usize, 11);
        f.store
            .insert("rnd", reference.clone(), &PutOptions::default());
        let mut h = f.open("rnd", false).await;
        for step in 0..200 {
            match rng.random_range(0..10) {
                0 => {
                    let len = rng.random_range(0..6 * PART) as usize;
                    h.truncate(len as u64).await.unwrap();
                    reference.resize(len, 0);
                }
                1 => {
                    h.flush().await.unwrap();
                    assert_eq!(f.store.get("rnd").unwrap(), reference, "after flush {step}");
                }
                _ => {
                    let off = rng.random_range(0..6 * PART) as usize;
                    let len = rng.random_range(1..PART as usize / 2);
                    let data = pattern(len, step as u8);
                    h.write_at(off as u64, &data).await.unwrap();
                    if reference.len() < off + len {
                        reference.resize(off + len, 0);
                    }
                    reference[off..off + len].copy_from_slice(&data);
                }
            }
            assert_eq!(h.size(), reference.len() as u64);
        }
        assert_eq!(h.read_at(0, u64::MAX).await.unwrap(), reference);
        h.close().await.unwrap();
        assert_eq!(f.store.get("rnd").unwrap(), reference);
        assert!(f.store.pending_uploads().is_empty());
    }

    #[tokio::test]
    async fn a_failed_part_fails_close_sticks_keeps_spool_and_aborts() {
        let f = Fixture::new();
        f.store
            .insert("keep", &b"previous version"[..], &PutOptions::default());
        f.store.fail_after(StoreOp::UploadPart, 1, 1, || {
            MemoryStore::service_error(500, "InternalError")
        });
        let mut h = f.open("keep", true).await;
        let data = pattern((3 * PART) as usize, 12);
        // Streaming may already see the failure during a write; either way close must fail.
        for (i, piece) in data.chunks(8192).enumerate() {
            if h.write_at((i * 8192) as u64, piece).await.is_err() {
                break;
            }
        }
        let err = h.flush().await.unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::EIO);
        assert_eq!(err.cos_code(), Some("InternalError"));
        assert!(err.request_id().is_some());
        assert!(matches!(h.state(), WriteState::Failed(_)));
        // Sticky: later calls give the same error.
        assert_eq!(
            h.write_at(0, b"x").await.unwrap_err().cos_code(),
            Some("InternalError")
        );
        let spool = h.spool_path();
        assert_eq!(
            h.close().await.unwrap_err().cos_code(),
            Some("InternalError")
        );
        assert!(spool.exists(), "spool kept after a failed upload");
        assert_eq!(std::fs::read(&spool).unwrap()[..8192], data[..8192]);
        assert!(
            f.store.pending_uploads().is_empty(),
            "multipart upload aborted"
        );
        assert_eq!(&f.store.get("keep").unwrap()[..], b"previous version");
    }

    #[tokio::test]
    async fn a_failed_put_leaves_the_old_version_and_no_placeholder() {
        let f = Fixture::new();
        f.store.fail_next(StoreOp::PutObject, 1, || {
            MemoryStore::service_error(403, "AccessDenied")
        });
        let mut h = f.create("new.txt");
        h.write_at(0, b"data").await.unwrap();
        let err = h.close().await.unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::EACCES);
        assert!(f.store.get("new.txt").is_none());
        let files = f.spool_files();
        assert_eq!(
            files.len(),
            2,
            "spool and its journal record kept: {files:?}"
        );
        let record = files
            .iter()
            .find(|p| p.to_string_lossy().ends_with(".journal"));
        let record = journal::read_record(record.unwrap()).unwrap();
        assert_eq!(
            (record.key.as_str(), record.state),
            ("new.txt", State::Failed)
        );
    }

    #[tokio::test]
    async fn a_crc_mismatch_is_an_error() {
        let f = Fixture::new();
        f.store.corrupt_next_crc(StoreOp::PutObject, 1);
        let mut h = f.create("c");
        h.write_at(0, b"payload").await.unwrap();
        let err = h.close().await.unwrap_err();
        assert!(matches!(err, WriteError::ChecksumMismatch { .. }), "{err}");

        f.store.corrupt_next_crc(StoreOp::UploadPart, 1);
        let mut h = f.create("c2");
        write_in_chunks(&mut h, &pattern((2 * PART) as usize, 1), 8192).await;
        let err = h.close().await.unwrap_err();
        assert!(matches!(err, WriteError::ChecksumMismatch { .. }), "{err}");
    }

    #[tokio::test]
    async fn attribute_changes_ride_along_or_go_up_alone() {
        let f = Fixture::new();
        let mut h = f.create("a");
        h.write_at(0, b"abc").await.unwrap();
        let when = UNIX_EPOCH + std::time::Duration::from_secs(1_234_567_890);
        h.set_attrs(Some(0o600), Some(7), Some(8), Some(when), None)
            .unwrap();
        h.close().await.unwrap();
        let obj = f.store.object("a").unwrap();
        assert_eq!(obj.meta["mode"], (libc::S_IFREG | 0o600).to_string());
        assert_eq!(
            (obj.meta["uid"].as_str(), obj.meta["gid"].as_str()),
            ("7", "8")
        );
        assert_eq!(obj.meta["mtime"], "1234567890");

        // Metadata only: one copy onto itself, no data transfer.
        f.store.reset_requests();
        let mut h = f.open("a", false).await;
        h.set_attrs(Some(0o644), None, None, None, None).unwrap();
        h.close().await.unwrap();
        assert_eq!(f.store.requests(StoreOp::CopyObject), 1);
        assert_eq!(f.store.requests(StoreOp::PutObject), 0);
        let obj = f.store.object("a").unwrap();
        assert_eq!(&obj.data[..], b"abc");
        assert_eq!(obj.meta["mode"], (libc::S_IFREG | 0o644).to_string());
    }

    #[tokio::test]
    async fn chmod_during_a_streamed_upload_is_applied_after_complete() {
        let f = Fixture::new();
        let mut h = f.create("s");
        write_in_chunks(&mut h, &pattern((3 * PART) as usize, 2), 8192).await;
        h.set_attrs(Some(0o600), None, None, None, None).unwrap();
        h.close().await.unwrap();
        let obj = f.store.object("s").unwrap();
        assert_eq!(obj.meta["mode"], (libc::S_IFREG | 0o600).to_string());
        assert_eq!(obj.data.len() as u64, 3 * PART);
    }
}
