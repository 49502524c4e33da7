//! The spool journal: a small sidecar record beside every spool file, so that after kill -9,
//! an OOM kill or a reboot the next mount (and `cosmount recover`) knows what each spool file
//! is: bucket, key, the version the write started from, the byte ranges that only the spool
//! holds, the multipart upload id, and where the write was (open, committing, failed,
//! committed).
//!
//! The record of `spool-XXXX.part` is `spool-XXXX.journal` in the same directory, written
//! atomically (temp file, then rename; fsync of the file and the directory at state changes).
//! It is written *before* the state it describes where that is possible: a range the
//! application writes into is recorded before the bytes go to the spool, the commit state
//! before the commit starts; an upload id can only be recorded once Initiate answered (an
//! Initiate whose answer is lost is cleaned up by listing the key's uploads, see
//! `write.rs`).
//!
//! A running mount holds an exclusive `flock` on each of its spool files. The kernel drops it
//! when the process dies, so a spool file that can be locked belongs to nobody: it is a
//! leftover (see [`scan`]).

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::spool::RangeSet;
use super::write::{recorded_upload_crc, ResumeStats, WriteConfig, WriteHandle};
use crate::cos::acl::{AclHeaders, GrantHeaders};
use crate::cos::store::{ContentHeaders, ObjectInfo, ObjectStore, PutOptions};

/// The record format's version (a record with another version is listed, never acted on).
pub const RECORD_VERSION: u32 = 1;
/// Suffix of spool files.
pub const SPOOL_SUFFIX: &str = ".part";
/// Suffix of journal records.
pub const RECORD_SUFFIX: &str = ".journal";
/// More disjoint written ranges than this and the handle fills the rest of the spool from the
/// base object instead (the record stays small).
pub const MAX_RECORDED_RANGES: usize = 512;

/// Where a write was when its record was last written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    /// Open for writing: the application may not have finished the file. Never committed on
    /// its own; `cosmount recover` lets the user decide.
    Open,
    /// Closed (or fsync'd) and being uploaded.
    Committing,
    /// The upload failed; the spool is kept.
    Failed,
    /// The spool's content is the object: nothing left to do (the spool may go).
    Committed,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Committing => "committing",
            State::Failed => "failed",
            State::Committed => "committed",
        }
    }
}

/// The object whose bytes fill what the spool does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BaseRecord {
    pub key: String,
    pub etag: String,
    /// Bytes `[0, len)` not in `written` are the base object's.
    pub len: u64,
}

/// What the upload carries (headers, user metadata with cosmount's mode/uid/gid/mtime,
/// storage class, canned ACL).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CarriedRecord {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub expires: Option<String>,
    pub meta: BTreeMap<String, String>,
    pub storage_class: Option<String>,
    /// Canned `x-cos-acl`.
    pub acl: Option<String>,
    /// `x-cos-grant-*` values: read, read-acp, write-acp, full-control (explicit grants).
    #[serde(default)]
    pub grants: [Option<String>; 4],
}

impl CarriedRecord {
    pub fn of(opts: &PutOptions) -> Self {
        CarriedRecord {
            content_type: opts.content.content_type.clone(),
            cache_control: opts.content.cache_control.clone(),
            content_disposition: opts.content.content_disposition.clone(),
            content_encoding: opts.content.content_encoding.clone(),
            expires: opts.content.expires.clone(),
            meta: opts.meta.clone(),
            storage_class: opts.storage_class.clone(),
            acl: opts.acl.as_ref().and_then(|a| a.canned.clone()),
            grants: opts.acl.as_ref().map_or_else(Default::default, |a| {
                [
                    a.grants.read.clone(),
                    a.grants.read_acp.clone(),
                    a.grants.write_acp.clone(),
                    a.grants.full_control.clone(),
                ]
            }),
        }
    }

    #[allow(clippy::field_reassign_with_default)]
    pub fn to_options(&self) -> PutOptions {
        // Field by field: PutOptions may grow fields this record does not know.
        let mut opts = PutOptions::default();
        opts.content = ContentHeaders {
            content_type: self.content_type.clone(),
            cache_control: self.cache_control.clone(),
            content_disposition: self.content_disposition.clone(),
            content_encoding: self.content_encoding.clone(),
            expires: self.expires.clone(),
        };
        opts.meta = self.meta.clone();
        opts.storage_class = self.storage_class.clone();
        let [read, read_acp, write_acp, full_control] = self.grants.clone();
        let acl = AclHeaders {
            canned: self.acl.clone(),
            grants: GrantHeaders {
                read,
                write: None,
                read_acp,
                write_acp,
                full_control,
            },
        };
        opts.acl = (acl.canned.is_some() || !acl.grants.is_empty()).then_some(acl);
        opts
    }
}

/// A part of the record's multipart upload that COS confirmed. A resume reuses it only while
/// List Parts still shows this ETag and size, and the file's bytes of the part are still the
/// ones sent (CRC-64 of the spool's range, or an untouched range of the base object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartRecord {
    pub number: u32,
    pub etag: String,
    /// CRC-64 of what was sent (`None`: a server-side copy whose answer had none).
    pub crc64: Option<u64>,
    pub len: u64,
}

/// One journal record (serialized as JSON).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    pub version: u32,
    pub bucket: String,
    /// The full object key (mount prefix included).
    pub key: String,
    /// File name of the spool file (same directory).
    pub spool: String,
    /// The file's size, when the record was written. The size of the content to commit is
    /// `max(spool file length, base.len)` (see [`Record::content_size`]), which stays right
    /// while appends grow the file without rewriting the record.
    pub size: u64,
    /// ETag of the object version the write started from; `None`: there was no object.
    /// A recovery commits only while the object is still that version.
    pub based_on: Option<String>,
    pub base: Option<BaseRecord>,
    /// Ranges below `base.len` that the application wrote (the spool's bytes win there).
    pub written: Vec<(u64, u64)>,
    pub part_size: u64,
    pub upload_id: Option<String>,
    /// Numbers of `parts` (kept for records read by older versions).
    pub parts_done: Vec<u32>,
    /// The confirmed parts of `upload_id` (absent in records of older versions: nothing is
    /// reused then).
    #[serde(default)]
    pub parts: Vec<PartRecord>,
    /// What Initiate of `upload_id` sent (metadata, storage class, ACL: fixed for the upload),
    /// so a resume knows whether the object needs them updated after Complete.
    #[serde(default)]
    pub upload_carried: Option<CarriedRecord>,
    pub state: State,
    pub error: Option<String>,
    /// Unix seconds.
    pub created: u64,
    pub updated: u64,
    pub pid: u32,
    pub carried: CarriedRecord,
}

impl Record {
    /// The size of the file the spool and base describe, given the spool file's length.
    pub fn content_size(&self, spool_len: u64) -> u64 {
        spool_len.max(self.base.as_ref().map_or(0, |b| b.len))
    }

    pub fn written_set(&self) -> RangeSet {
        let mut set = RangeSet::new();
        for &(a, b) in &self.written {
            set.insert(a, b);
        }
        set
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The record path of a spool file.
pub fn record_path(spool: &Path) -> PathBuf {
    let name = spool
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(SPOOL_SUFFIX).unwrap_or(&name);
    spool.with_file_name(format!("{stem}{RECORD_SUFFIX}"))
}

/// The spool path of a record.
pub fn spool_path_of(record: &Path) -> PathBuf {
    let name = record
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let stem = name.strip_suffix(RECORD_SUFFIX).unwrap_or(&name);
    record.with_file_name(format!("{stem}{SPOOL_SUFFIX}"))
}

/// Take the exclusive lock that marks a spool file as in use by this process. Fails with
/// `WouldBlock` when another live process holds it.
pub fn lock_spool(file: &File) -> io::Result<()> {
    // SAFETY: flock on a descriptor we own; no memory is passed.
    if unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Write `record` to `path` atomically: temp file, (fsync), rename, (fsync of the directory).
pub fn write_record(path: &Path, record: &Record, durable: bool) -> io::Result<()> {
    let json = serde_json::to_vec_pretty(record).map_err(io::Error::other)?;
    let tmp = path.with_extension("journal.tmp");
    {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .open(&tmp)?;
        f.write_all(&json)?;
        if durable {
            f.sync_all()?;
        }
    }
    std::fs::rename(&tmp, path)?;
    if durable {
        if let Some(dir) = path.parent() {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
    }
    Ok(())
}

pub fn read_record(path: &Path) -> io::Result<Record> {
    let text = std::fs::read(path)?;
    serde_json::from_slice(&text).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

/// The live record of one write handle.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    pub record: Record,
    written: RangeSet,
    /// The record is on disk.
    saved: bool,
    /// A failure to write the record was logged already.
    warned: bool,
}

impl Journal {
    pub fn new(spool: &Path, bucket: &str, key: &str, part_size: u64) -> Self {
        let now = now_secs();
        Journal {
            path: record_path(spool),
            record: Record {
                version: RECORD_VERSION,
                bucket: bucket.to_string(),
                key: key.to_string(),
                spool: spool
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                size: 0,
                based_on: None,
                base: None,
                written: Vec::new(),
                part_size,
                upload_id: None,
                parts_done: Vec::new(),
                parts: Vec::new(),
                upload_carried: None,
                state: State::Open,
                error: None,
                created: now,
                updated: now,
                pid: std::process::id(),
                carried: CarriedRecord::default(),
            },
            written: RangeSet::new(),
            saved: false,
            warned: false,
        }
    }

    /// Adopt a record read from disk (recovery).
    pub fn adopt(path: PathBuf, record: Record) -> Self {
        let written = record.written_set();
        Journal {
            path,
            record,
            written,
            saved: true,
            warned: false,
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn is_saved(&self) -> bool {
        self.saved
    }

    pub fn written(&self) -> &RangeSet {
        &self.written
    }

    /// Record `[start, end)` as written; true when the recorded set grew (save needed).
    pub fn note_written(&mut self, start: u64, end: u64) -> bool {
        if self.written.covers(start, end) {
            return false;
        }
        self.written.insert(start, end);
        true
    }

    pub fn set_written(&mut self, set: RangeSet) {
        self.written = set;
    }

    /// Write the record now (`durable`: fsync'd). A failure is logged once per handle and
    /// otherwise ignored: the write itself goes on, only its crash safety is reduced.
    pub fn save(&mut self, durable: bool) {
        self.record.written = self.written.ranges().to_vec();
        self.record.updated = now_secs();
        match write_record(&self.path, &self.record, durable) {
            Ok(()) => self.saved = true,
            Err(e) => {
                if !self.warned {
                    self.warned = true;
                    tracing::warn!(key = %self.record.key, record = %self.path.display(),
                        "cannot write the spool journal record (a crash now would lose track of this file): {e}");
                }
            }
        }
    }

    /// Delete the record (the spool's content is committed or discarded).
    pub fn remove(&mut self) {
        if self.saved {
            match std::fs::remove_file(&self.path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => {
                    tracing::warn!(record = %self.path.display(), "cannot remove the journal record: {e}")
                }
            }
            self.saved = false;
        }
    }
}

// ---- process-wide shutdown state ----

static STOPPING: AtomicBool = AtomicBool::new(false);
static COMMITS: AtomicUsize = AtomicUsize::new(0);

/// The mount is stopping (SIGTERM/SIGINT): files still open for writing stay in the journal.
pub fn set_stopping() {
    STOPPING.store(true, Ordering::SeqCst);
}

pub fn stopping() -> bool {
    STOPPING.load(Ordering::SeqCst)
}

/// Commits (uploads started by a close, fsync or release) running now.
pub fn commits_in_progress() -> usize {
    COMMITS.load(Ordering::SeqCst)
}

/// Counts one running commit while alive.
pub struct CommitGuard(());

impl CommitGuard {
    pub fn new() -> Self {
        COMMITS.fetch_add(1, Ordering::SeqCst);
        CommitGuard(())
    }
}

impl Default for CommitGuard {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for CommitGuard {
    fn drop(&mut self) {
        COMMITS.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Is process `pid` (a task id from a FUSE request) exiting (PF_EXITING in
/// /proc/PID/stat's flags)? Its files are then closed by the kernel, not by the program: a
/// close that must not commit while the mount is stopping.
pub fn process_exiting(pid: u32) -> bool {
    const PF_EXITING: u64 = 0x4;
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        // Gone already: it certainly did not close on purpose just now.
        return true;
    };
    // The command name may hold spaces and parentheses: fields start after the last ')'.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return false;
    };
    // rest: " S ppid pgrp session tty tpgid flags ..." -> flags is the 7th field.
    let state = rest.split_whitespace().next().unwrap_or("");
    if state == "Z" || state == "X" {
        return true;
    }
    rest.split_whitespace()
        .nth(6)
        .and_then(|f| f.parse::<u64>().ok())
        .is_some_and(|flags| flags & PF_EXITING != 0)
}

// ---- what is left in a spool directory ----

/// One record found in a spool directory.
#[derive(Debug)]
pub struct Leftover {
    pub record_path: PathBuf,
    pub spool_path: PathBuf,
    /// `Err` when the record could not be read.
    pub record: Result<Record, String>,
    /// Length of the spool file (`None`: missing).
    pub spool_len: Option<u64>,
}

impl Leftover {
    pub fn key(&self) -> &str {
        self.record.as_ref().map_or("?", |r| r.key.as_str())
    }

    /// Content size, when known.
    pub fn size(&self) -> Option<u64> {
        let r = self.record.as_ref().ok()?;
        Some(r.content_size(self.spool_len.unwrap_or(0)))
    }

    pub fn age_secs(&self) -> u64 {
        self.record
            .as_ref()
            .map_or(0, |r| now_secs().saturating_sub(r.created))
    }
}

/// What [`scan`] found: records of writes no live process owns, and spool files with no record.
#[derive(Debug, Default)]
pub struct Scan {
    pub leftovers: Vec<Leftover>,
    /// Spool files without a record and not in use (from a cosmount before the journal).
    pub orphans: Vec<PathBuf>,
    /// Spool files a running mount holds (skipped).
    pub in_use: usize,
}

/// Is the spool file at `path` held by a live process? (Tries its lock, releases it.)
fn in_use(path: &Path) -> bool {
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)
    {
        Ok(f) => match lock_spool(&f) {
            Ok(()) => false,
            Err(e) => e.kind() == io::ErrorKind::WouldBlock,
        },
        Err(_) => false,
    }
}

/// Records and spool files in `dir` that no running process owns.
pub fn scan(dir: &Path) -> io::Result<Scan> {
    let mut out = Scan::default();
    let mut names: Vec<PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    names.sort();
    for path in &names {
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        if name.ends_with(RECORD_SUFFIX) {
            let spool_path = spool_path_of(path);
            if spool_path.exists() && in_use(&spool_path) {
                out.in_use += 1;
                continue;
            }
            let spool_len = std::fs::metadata(&spool_path).ok().map(|m| m.len());
            out.leftovers.push(Leftover {
                record_path: path.clone(),
                spool_path,
                record: read_record(path).map_err(|e| e.to_string()),
                spool_len,
            });
        } else if name.starts_with("spool-") && name.ends_with(SPOOL_SUFFIX) {
            if record_path(path).exists() {
                continue;
            }
            if in_use(path) {
                out.in_use += 1;
            } else {
                out.orphans.push(path.clone());
            }
        }
    }
    Ok(out)
}

/// Delete a leftover's record and spool file.
pub fn remove_leftover(l: &Leftover) -> io::Result<()> {
    for p in [&l.spool_path, &l.record_path] {
        match std::fs::remove_file(p) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// At mount start: drop what is committed already; return the writes of `bucket` that were
/// closed (or fsync'd) but whose commit was not confirmed (state `committing`): the mount
/// resumes those itself ([`resume_leftover`]). Every other unfinished write left by an
/// earlier crash (still open at the crash, failed) is logged at WARN, one line per file,
/// with the command that recovers it: nothing of those is committed on its own.
pub fn report_at_start(dir: &Path, bucket: &str) -> Vec<Leftover> {
    let found = match scan(dir) {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(spool = %dir.display(), "cannot look for unfinished writes: {e}");
            return Vec::new();
        }
    };
    let mut unfinished = Vec::new();
    let mut to_resume = Vec::new();
    for l in found.leftovers {
        match &l.record {
            Ok(r) if r.state == State::Committed => {
                if let Err(e) = remove_leftover(&l) {
                    tracing::debug!(record = %l.record_path.display(), "cannot remove a committed record: {e}");
                }
            }
            Ok(r)
                if r.state == State::Committing
                    && r.bucket == bucket
                    && r.version == RECORD_VERSION
                    && l.spool_len.is_some() =>
            {
                to_resume.push(l)
            }
            _ => unfinished.push(l),
        }
    }
    if !to_resume.is_empty() {
        tracing::info!(
            "{} closed file(s) in {} whose commit an earlier crash interrupted: resuming in the background",
            to_resume.len(),
            dir.display()
        );
    }
    if !unfinished.is_empty() {
        let cache = dir.parent().unwrap_or(dir);
        tracing::warn!(
            "{} unfinished write(s) in {} from an earlier crash or stop; run `cosmount recover {bucket} --cache-dir {}` to list them, then --push KEY or --drop KEY",
            unfinished.len(),
            dir.display(),
            cache.display()
        );
        for l in &unfinished {
            match &l.record {
                Ok(r) => tracing::warn!(
                    "unfinished write: key={} bucket={} size={} state={} age={}s spool={}",
                    r.key,
                    r.bucket,
                    l.size().unwrap_or(0),
                    r.state.as_str(),
                    l.age_secs(),
                    l.spool_path.display()
                ),
                Err(e) => {
                    tracing::warn!("unreadable journal record {}: {e}", l.record_path.display())
                }
            }
        }
    }
    if !found.orphans.is_empty() {
        tracing::warn!(
            "{} spool file(s) without a journal record in {} (from an older cosmount); `cosmount recover --discard` deletes them",
            found.orphans.len(),
            dir.display()
        );
    }
    to_resume
}

/// Resume `leftovers` (from [`report_at_start`]) one after the other, logging one line per
/// file: key, size, parts reused and sent, result. For a mount's background task.
pub async fn resume_at_start<S: ObjectStore>(
    store: Arc<S>,
    cfg: WriteConfig,
    leftovers: Vec<Leftover>,
    mut committed: impl FnMut(&str),
) {
    for l in leftovers {
        let key = l.key().to_string();
        let size = l.size().unwrap_or(0);
        match resume_leftover(store.clone(), cfg.clone(), &l).await {
            Resumed::Committed { etag, stats } => {
                tracing::info!(
                    "resumed commit: key={key} size={size} parts={} reused={} sent={} result=committed etag={etag}{}",
                    stats.parts,
                    stats.reused,
                    stats.sent(),
                    if stats.new_upload { " (new upload)" } else { "" }
                );
                committed(&key);
            }
            Resumed::AlreadyCommitted { etag } => {
                tracing::info!(
                    "resumed commit: key={key} size={size} parts=0 reused=0 sent=0 result=already-committed etag={etag}"
                );
                committed(&key);
            }
            Resumed::Conflict { now, was } => tracing::warn!(
                "resumed commit: key={key} size={size} result=conflict: the object changed since the write began (now {now}, was {was}); not overwritten, spool kept at {} (`cosmount recover` lists it)",
                l.spool_path.display()
            ),
            Resumed::NotDone(why) => tracing::warn!(
                "resumed commit: key={key} size={size} result=not-done: {why}; spool kept at {} (tried again at the next mount, or `cosmount recover --push`)",
                l.spool_path.display()
            ),
        }
    }
}

// ---- resuming what a crash left ----

/// How [`resume_leftover`] ended.
#[derive(Debug)]
pub enum Resumed {
    /// Uploaded: the object is the file now; spool and record are gone.
    Committed { etag: String, stats: ResumeStats },
    /// The crashed mount had committed it after all (its answer was never recorded): spool,
    /// record and upload are cleaned up.
    AlreadyCommitted { etag: String },
    /// The object changed since the write began: it is not overwritten; spool kept, record
    /// marked `failed` with the reason (`cosmount recover` lists it).
    Conflict { now: String, was: String },
    /// Nothing committed, spool and record kept (the next mount or `recover --push` tries
    /// again): why.
    NotDone(String),
}

/// Abort the record's multipart upload (gone already counts as done).
pub async fn abort_recorded_upload<S: ObjectStore>(store: &S, r: &Record) -> Result<(), String> {
    let Some(id) = &r.upload_id else {
        return Ok(());
    };
    match store.abort_multipart(&r.key, id).await {
        Ok(()) => Ok(()),
        Err(e) if e.is_not_found() || e.kind() == crate::cos::ErrorKind::NoSuchUpload => Ok(()),
        Err(e) => Err(format!("aborting upload {id}: {e}")),
    }
}

/// The CRC-64 of the first `len` bytes of a spool file (bytes past its end are zeros).
fn spool_crc(path: &Path, len: u64) -> io::Result<u64> {
    let file = File::open(path)?;
    let mut crc = 0u64;
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(8 << 20);
        let chunk = super::spool::read_spool(&file, at, n as usize)?;
        crc = crate::cos::crc64::combine(crc, crate::cos::crc64::checksum(&chunk), n);
        at += n;
    }
    Ok(crc)
}

/// Is `info` the object the crashed write would have made (its Complete or PUT went through,
/// its record was not updated)? By the recorded parts' combined CRC-64, or, for a file
/// without a base object, the spool's.
fn committed_by_crashed_mount(l: &Leftover, r: &Record, size: u64, info: &ObjectInfo) -> bool {
    if info.size != size || info.crc64.is_none() {
        return false;
    }
    if let Some((crc, count)) = recorded_upload_crc(r, size) {
        if info.crc64 == Some(crc) && info.etag.ends_with(&format!("-{count}")) {
            return true;
        }
    }
    r.base.is_none() && spool_crc(&l.spool_path, size).ok() == info.crc64
}

/// Commit a write a crashed mount left (`l`, not held by a live process), resuming its
/// multipart upload part by part: only parts COS does not hold (List Parts), or whose bytes
/// changed since they were sent, go up again. Never over a newer object: only while the
/// object is still the version the write started from (HEAD; same ETag, or still absent).
/// `cfg` gives the spool directory and parallelism; the part size is the record's.
pub async fn resume_leftover<S: ObjectStore>(
    store: Arc<S>,
    mut cfg: WriteConfig,
    l: &Leftover,
) -> Resumed {
    let r = match &l.record {
        Ok(r) => r.clone(),
        Err(e) => return Resumed::NotDone(format!("unreadable record ({e})")),
    };
    if r.version != RECORD_VERSION {
        return Resumed::NotDone(format!("record version {} not understood", r.version));
    }
    if l.spool_len.is_none() {
        return Resumed::NotDone(format!(
            "the spool file {} is missing; nothing to commit",
            l.spool_path.display()
        ));
    }
    if in_use(&l.spool_path) {
        return Resumed::NotDone("in use by another running cosmount".into());
    }
    let size = l.size().unwrap_or(0);
    let current = match store.head_object(&r.key).await {
        Ok(info) => Some(info),
        Err(e) if e.is_not_found() => None,
        Err(e) => return Resumed::NotDone(format!("HEAD failed: {e}")),
    };
    if let Some(info) = &current {
        if committed_by_crashed_mount(l, &r, size, info) {
            if let Err(e) = abort_recorded_upload(&*store, &r).await {
                tracing::debug!(key = %r.key, "{e}");
            }
            if let Err(e) = remove_leftover(l) {
                tracing::debug!(record = %l.record_path.display(), "cannot remove: {e}");
            }
            return Resumed::AlreadyCommitted {
                etag: info.etag.clone(),
            };
        }
    }
    let unchanged = match (&r.based_on, &current) {
        (Some(etag), Some(info)) => unquote(&info.etag) == unquote(etag),
        (None, None) => true,
        _ => false,
    };
    if !unchanged {
        let now = current
            .as_ref()
            .map_or("absent".to_string(), |i| format!("ETag {}", i.etag));
        let was = r
            .based_on
            .as_ref()
            .map_or("absent".to_string(), |e| format!("ETag {e}"));
        // Not tried again at every mount: listed as failed, with the reason.
        let mut marked = r.clone();
        marked.state = State::Failed;
        marked.error = Some(format!(
            "the object changed since the write began (now {now}, was {was})"
        ));
        marked.updated = now_secs();
        if let Err(e) = write_record(&l.record_path, &marked, true) {
            tracing::debug!(record = %l.record_path.display(), "cannot mark the record: {e}");
        }
        return Resumed::Conflict { now, was };
    }
    cfg.bucket = r.bucket.clone();
    if r.part_size > 0 {
        // The layout the recorded parts were cut with.
        cfg.part_size = r.part_size;
    }
    let mut handle = match WriteHandle::resume(store, cfg, r, l.record_path.clone()) {
        Ok(h) => h,
        Err(e) => return Resumed::NotDone(e.to_string()),
    };
    let stats = match handle.reuse_recorded_parts().await {
        Ok(s) => s,
        Err(e) => return Resumed::NotDone(e.to_string()),
    };
    match handle.flush().await {
        Ok(result) => Resumed::Committed {
            etag: result.etag,
            stats,
        },
        Err(e) => Resumed::NotDone(format!("upload failed: {e}")),
    }
}

fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

/// The unfinished writes this process leaves behind (after a stop), for the shutdown log.
pub fn left_by_this_process(dir: &Path) -> Vec<(String, u64, State)> {
    let pid = std::process::id();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for e in entries.flatten() {
        let path = e.path();
        if !path.to_string_lossy().ends_with(RECORD_SUFFIX) {
            continue;
        }
        let Ok(r) = read_record(&path) else { continue };
        if r.pid != pid || r.state == State::Committed {
            continue;
        }
        let len = std::fs::metadata(spool_path_of(&path)).map_or(0, |m| m.len());
        out.push((r.key.clone(), r.content_size(len), r.state));
    }
    out.sort();
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn record_round_trips_and_paths_pair_up() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool-abc.part");
        std::fs::write(&spool, b"12345").unwrap();
        let mut j = Journal::new(&spool, "b-1", "a/b.txt", 1 << 20);
        assert_eq!(j.path(), dir.path().join("spool-abc.journal"));
        assert_eq!(spool_path_of(j.path()), spool);
        assert!(j.note_written(0, 10));
        assert!(!j.note_written(2, 5));
        j.record.base = Some(BaseRecord {
            key: "a/b.txt".into(),
            etag: "\"e\"".into(),
            len: 100,
        });
        j.save(true);
        let back = read_record(j.path()).unwrap();
        assert_eq!(back.written, vec![(0, 10)]);
        assert_eq!(back.content_size(5), 100);
        let s = scan(dir.path()).unwrap();
        assert_eq!(s.leftovers.len(), 1);
        assert_eq!(s.leftovers[0].key(), "a/b.txt");
        j.remove();
        assert!(!dir.path().join("spool-abc.journal").exists());
        let s = scan(dir.path()).unwrap();
        assert_eq!(s.orphans, vec![spool]);
    }

    #[test]
    fn a_locked_spool_is_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let spool = dir.path().join("spool-x.part");
        let f = File::create(&spool).unwrap();
        lock_spool(&f).unwrap();
        Journal::new(&spool, "b", "k", 1).save(false);
        let s = scan(dir.path()).unwrap();
        assert_eq!((s.leftovers.len(), s.in_use), (0, 1));
        drop(f);
        let s = scan(dir.path()).unwrap();
        assert_eq!((s.leftovers.len(), s.in_use), (1, 0));
    }

    mod resume {
        use super::super::*;
        use crate::cos::memory::{MemoryStore, StoreOp};
        use crate::fs::write::FileAttrs;

        const PART: u64 = 64 * 1024;

        fn data(len: u64, seed: u8) -> Vec<u8> {
            (0..len)
                .map(|i| ((i * 31 + i / 253) as u8).wrapping_add(seed))
                .collect()
        }

        fn cfg(dir: &Path) -> WriteConfig {
            let mut cfg = WriteConfig::new(dir.to_path_buf());
            cfg.part_size = PART;
            // One part at a time: each streamed part is confirmed (and recorded) before the
            // next goes.
            cfg.parallel_parts = 1;
            cfg.bucket = "b-1".into();
            cfg
        }

        /// A crash "now": the spool file and record as they are on disk, copied to `to`
        /// (kill -9 leaves them; the handle is leaked, so nothing it would do at drop runs).
        fn crash(h: WriteHandle<MemoryStore>, to: &Path) {
            let spool = h.spool_path();
            let record = h.journal_path();
            std::fs::copy(&spool, to.join(spool.file_name().unwrap())).unwrap();
            std::fs::copy(&record, to.join(record.file_name().unwrap())).unwrap();
            std::mem::forget(h);
        }

        async fn streamed_then_crashed(
            store: &Arc<MemoryStore>,
            key: &str,
            dir: &Path,
            crashed: &Path,
        ) -> Vec<u8> {
            let mut content = data(5 * PART + PART / 2, 3);
            let mut h = WriteHandle::create(
                store.clone(),
                key,
                cfg(dir),
                FileAttrs::regular(0o644, 1, 1),
            )
            .unwrap();
            for (i, chunk) in content.chunks(8192).enumerate() {
                h.write_at(i as u64 * 8192, chunk).await.unwrap();
            }
            // Part 2 was sent; rewriting it changes the spool, not (yet) the record.
            h.write_at(PART + 5, b"rewritten").await.unwrap();
            content[PART as usize + 5..PART as usize + 14].copy_from_slice(b"rewritten");
            let upload_id = read_record(&h.journal_path()).unwrap().upload_id.unwrap();
            crash(h, crashed);
            // Part 5 was in flight: its (leaked) task still stores it. Wait for that, so the
            // resume's request counts are its own.
            for _ in 0..2000 {
                if store.list_parts_of(key, &upload_id).await.unwrap().len() == 5 {
                    break;
                }
                tokio::time::sleep(std::time::Duration::from_millis(5)).await;
            }
            content
        }

        fn leftover(dir: &Path) -> Leftover {
            let mut s = scan(dir).unwrap();
            assert_eq!(s.leftovers.len(), 1);
            s.leftovers.pop().unwrap()
        }

        #[tokio::test]
        async fn only_parts_cos_lacks_or_that_changed_are_sent_again() {
            let store = Arc::new(MemoryStore::new());
            store.set_min_part_size(PART);
            let (dir, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let content = streamed_then_crashed(&store, "k/f", dir.path(), crashed.path()).await;
            let l = leftover(crashed.path());
            let recorded = l.record.as_ref().unwrap().parts.clone();
            assert_eq!(
                recorded.iter().map(|p| p.number).collect::<Vec<_>>(),
                vec![1, 2, 3, 4],
                "confirmed parts are recorded"
            );
            let sent_before = store.requests(StoreOp::UploadPart);
            match resume_leftover(store.clone(), cfg(crashed.path()), &l).await {
                Resumed::Committed { stats, .. } => assert_eq!(
                    stats,
                    ResumeStats {
                        parts: 6,
                        reused: 3,
                        new_upload: false
                    }
                ),
                other => panic!("{other:?}"),
            }
            assert_eq!(store.get("k/f").unwrap(), content);
            // Part 2 (rewritten), 5 (in flight at the crash) and 6 (never sent).
            assert_eq!(store.requests(StoreOp::UploadPart) - sent_before, 3);
            assert_eq!(store.requests(StoreOp::InitiateMultipart), 1);
            assert!(store.pending_uploads().is_empty());
            assert_eq!(std::fs::read_dir(crashed.path()).unwrap().count(), 0);
        }

        #[tokio::test]
        async fn a_vanished_upload_is_replaced_by_a_new_one() {
            let store = Arc::new(MemoryStore::new());
            store.set_min_part_size(PART);
            let (dir, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let content = streamed_then_crashed(&store, "k/g", dir.path(), crashed.path()).await;
            let l = leftover(crashed.path());
            let r = l.record.as_ref().unwrap();
            store
                .abort_multipart(&r.key, r.upload_id.as_ref().unwrap())
                .await
                .unwrap();
            match resume_leftover(store.clone(), cfg(crashed.path()), &l).await {
                Resumed::Committed { stats, .. } => {
                    assert!(stats.new_upload && stats.reused == 0, "{stats:?}")
                }
                other => panic!("{other:?}"),
            }
            assert_eq!(store.get("k/g").unwrap(), content);
            assert!(store.pending_uploads().is_empty());
        }

        #[tokio::test]
        async fn a_newer_object_is_not_overwritten_and_the_record_says_why() {
            let store = Arc::new(MemoryStore::new());
            store.set_min_part_size(PART);
            let (dir, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            streamed_then_crashed(&store, "k/h", dir.path(), crashed.path()).await;
            store
                .put_object(
                    "k/h",
                    bytes::Bytes::from_static(b"newer"),
                    &Default::default(),
                )
                .await
                .unwrap();
            let l = leftover(crashed.path());
            assert!(matches!(
                resume_leftover(store.clone(), cfg(crashed.path()), &l).await,
                Resumed::Conflict { .. }
            ));
            assert_eq!(store.get("k/h").unwrap(), &b"newer"[..]);
            let r = read_record(&l.record_path).unwrap();
            assert_eq!(r.state, State::Failed);
            assert!(r.error.unwrap().contains("changed since the write began"));
            assert!(l.spool_path.exists(), "spool kept");
        }

        #[tokio::test]
        async fn a_commit_the_crash_hid_is_recognised() {
            let store = Arc::new(MemoryStore::new());
            store.set_min_part_size(PART);
            let (dir, crashed) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let content = data(3 * PART, 7);
            let mut h = WriteHandle::create(
                store.clone(),
                "k/i",
                cfg(dir.path()),
                FileAttrs::regular(0o644, 1, 1),
            )
            .unwrap();
            h.write_at(0, &content).await.unwrap();
            h.flush().await.unwrap();
            // The record as it was just before Complete: every part confirmed, committing.
            let mut r = read_record(&h.journal_path()).unwrap();
            assert_eq!(r.state, State::Committed);
            let spool = crashed.path().join(&r.spool);
            std::fs::write(&spool, &content).unwrap();
            r.state = State::Committing;
            r.upload_id = Some("gone".into());
            r.parts = (1..=3)
                .map(|n| {
                    let part = &content[(n as usize - 1) * PART as usize..][..PART as usize];
                    PartRecord {
                        number: n,
                        etag: "e".into(),
                        crc64: Some(crate::cos::crc64::checksum(part)),
                        len: PART,
                    }
                })
                .collect();
            write_record(&record_path(&spool), &r, false).unwrap();
            drop(h);
            let l = leftover(crashed.path());
            let puts = store.requests(StoreOp::UploadPart);
            assert!(matches!(
                resume_leftover(store.clone(), cfg(crashed.path()), &l).await,
                Resumed::AlreadyCommitted { .. }
            ));
            assert_eq!(store.requests(StoreOp::UploadPart), puts, "nothing sent");
            assert_eq!(store.get("k/i").unwrap(), content);
            assert_eq!(std::fs::read_dir(crashed.path()).unwrap().count(), 0);
        }
    }

    #[test]
    fn this_process_is_not_exiting() {
        assert!(!process_exiting(std::process::id()));
    }
}
