//! Namespace operations at the object level: rename (of a file or of a whole directory
//! prefix), metadata updates (chmod/chown/utimens), directory markers, rmdir's emptiness
//! check, and symlinks. No FUSE types here; the adapter maps [`NsError::errno`].
//!
//! COS has no rename: a rename is a copy then a delete. PUT Copy keeps the ETag, content
//! headers and user metadata (`Copy` directive) but *not* the storage class, so the source's
//! class is passed explicitly. Objects over 5 GB cannot be copied with PUT Copy and go through
//! a multipart upload made of Upload Part Copy requests.
//!
//! COS does not carry the ACL over either, on PUT Object, Initiate or PUT Copy: a rewrite that
//! sends no `x-cos-acl` / `x-cos-grant-*` leaves the object `default` (so in a `public-read`
//! bucket a `private` object would become world-readable). Every rewrite of an existing object
//! therefore reads its ACL first ([`acl_to_keep`], one GET `?acl`) and sends it again *with*
//! the write, never as a PUT `?acl` after it (no window with the wrong ACL). The metadata-only
//! rewrites (chmod, chown, utimens, setxattr, the writer's metadata update) all go through
//! one function, [`rewrite_in_place`]; rename copies carry the ACL to the new key.
//!
//! A directory rename copies every key under the prefix (marker included), then deletes the
//! sources. It is **not atomic**: if it fails halfway, the source tree is still complete and
//! the destination holds a partial copy (never the other way round, so nothing is lost).

// `CosError` is the store trait's error type; boxing it only here would gain nothing.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::time::SystemTime;

use bytes::Bytes;
use std::future::Future;

use futures::stream::{FuturesUnordered, StreamExt};

use super::attr::format_meta_time;
use super::xattr::canned_of;
use crate::cos::acl::{AclHeaders, GrantHeaders, Grantee};
use crate::cos::crc64;
use crate::cos::store::{
    AclInfo, CompletedPart, ContentHeaders, CopyParams, ListEntry, ListParams, MetadataDirective,
    ObjectInfo, ObjectStore, PutOptions, PutResult,
};
use crate::cos::{CosError, ErrorKind};

const MIB: u64 = 1024 * 1024;
/// PUT Copy handles sources up to 5 GB (cos-protocol.md §5.1); bigger ones need part copies.
pub const MAX_SIMPLE_COPY: u64 = 5 * 1024 * MIB;
/// Part size for multipart copies. Copies run inside COS, so big parts just mean fewer requests.
pub const DEFAULT_COPY_PART_SIZE: u64 = 512 * MIB;
/// Copy requests run at the same time during a multipart copy or a directory rename.
pub const DEFAULT_PARALLEL_COPIES: usize = 8;
/// Longest symlink target accepted (Linux PATH_MAX).
pub const MAX_LINK_TARGET: u64 = 4096;
/// COS allows part numbers 1..=10000.
const MAX_PARTS: u64 = crate::cos::limits::MAX_PARTS as u64;
/// Content-Type of directory markers (what s3fs/cosfs use).
pub const DIRECTORY_CONTENT_TYPE: &str = "application/x-directory";

/// Tunables of namespace operations.
#[derive(Debug, Clone)]
pub struct NamespaceConfig {
    /// Above this size a copy is a multipart upload of part copies.
    pub max_simple_copy: u64,
    pub copy_part_size: u64,
    pub parallel_copies: usize,
}

impl Default for NamespaceConfig {
    fn default() -> Self {
        NamespaceConfig {
            max_simple_copy: MAX_SIMPLE_COPY,
            copy_part_size: DEFAULT_COPY_PART_SIZE,
            parallel_copies: DEFAULT_PARALLEL_COPIES,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum NsError {
    #[error("{op} of {key} failed: {source}")]
    Cos {
        op: &'static str,
        key: String,
        source: CosError,
    },
    #[error("directory {dir} is not empty")]
    NotEmpty { dir: String },
    #[error("{key} is not a symbolic link")]
    NotASymlink { key: String },
    #[error("symlink target of {key} is {len} bytes, over {MAX_LINK_TARGET}")]
    LinkTooLong { key: String, len: u64 },
    #[error("cannot move {from} into itself ({to})")]
    IntoItself { from: String, to: String },
    #[error("CRC-64 mismatch copying {key}: source {source_crc}, copy {copy_crc}")]
    ChecksumMismatch {
        key: String,
        source_crc: u64,
        copy_crc: u64,
    },
}

impl NsError {
    fn cos(op: &'static str, key: &str, source: CosError) -> Self {
        NsError::Cos {
            op,
            key: key.to_string(),
            source,
        }
    }
}

pub type NsResult<T> = Result<T, NsError>;

/// Which POSIX attributes to change (`None` keeps the current value).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AttrUpdate {
    /// Permission bits (the type bits of the object are kept).
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<SystemTime>,
    /// Stored only when set explicitly (utimensat); reads do not update it.
    pub atime: Option<SystemTime>,
    /// The change time to record (None: now). Fixed by the caller that also reports it.
    pub ctime: Option<SystemTime>,
}

/// The file type an object stands for: its `x-cos-meta-mode` type bits, else a directory for
/// a key ending in `/`, else a regular file.
pub fn object_type_bits(key: &str, meta: &BTreeMap<String, String>) -> u32 {
    let from_meta = meta
        .get("mode")
        .and_then(|m| m.trim().parse::<u32>().ok())
        .map(|m| m & libc::S_IFMT)
        .filter(|t| *t != 0);
    match from_meta {
        Some(t) => t,
        None if key.ends_with('/') => libc::S_IFDIR,
        None => libc::S_IFREG,
    }
}

/// Is this object a symlink stored the cosfs way?
pub fn is_symlink(info: &ObjectInfo) -> bool {
    object_type_bits(&info.key, &info.meta) == libc::S_IFLNK
}

fn posix_meta(mode: u32, uid: u32, gid: u32, mtime: SystemTime) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("mode".to_string(), mode.to_string()),
        ("uid".to_string(), uid.to_string()),
        ("gid".to_string(), gid.to_string()),
        ("mtime".to_string(), format_meta_time(mtime)),
        ("ctime".to_string(), format_meta_time(mtime)),
    ])
}

/// What a copy should stamp on the destination (the ACL is added by the caller).
fn options_of(info: &ObjectInfo) -> PutOptions {
    PutOptions {
        content: info.content.clone(),
        meta: info.meta.clone(),
        storage_class: Some(info.storage_class.clone()),
        ..Default::default()
    }
}

// ---- ACLs ----

/// What a GET `?acl` answer says a rewrite must send again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeptAcl {
    /// `default` (no grant beyond the owner's implicit one): nothing to send, the common case.
    Default,
    /// Send these headers with the write.
    Send(AclHeaders),
    /// Only the owner's grant and no `x-cos-acl` in the answer: `private` and `default`, which
    /// COS answers alike (cos-local names the canned value, COS's documentation lists no such
    /// header). [`acl_to_keep`] settles it with the bucket's ACL.
    OwnerOnly,
}

/// What an object's ACL answer asks a rewrite to send: the canned value when the answer
/// amounts to one, else every grant as `x-cos-grant-*` headers (the owner's included, so the
/// grant set comes back exactly).
pub fn kept_acl(info: &AclInfo) -> KeptAcl {
    match canned_of(info, true).as_deref() {
        Some("default") => KeptAcl::Default,
        Some("private") if info.canned.is_none() => KeptAcl::OwnerOnly,
        Some(canned) => KeptAcl::Send(AclHeaders::canned(canned)),
        None => KeptAcl::Send(AclHeaders {
            canned: None,
            grants: GrantHeaders::from_grants(&info.policy.grants),
        }),
    }
}

/// The ACL to send again when `key` is rewritten (PUT, Initiate or PUT Copy): one GET
/// `?acl`. `None` when the object's ACL is `default`, so the write sends nothing extra, and
/// for stores that keep no ACLs (NotSupported). Any other failure (e.g. AccessDenied: the
/// credentials may not read ACLs) fails the rewrite rather than resetting the ACL unseen.
///
/// When the answer cannot tell `private` from `default` ([`KeptAcl::OwnerOnly`]), the bucket's
/// ACL decides: in a bucket that grants nothing to anyone but its owner both mean the same and
/// nothing is sent; otherwise `private` is sent (fail closed: a `default` object of a public
/// bucket becomes `private`, never a `private` one public), with a warning.
pub async fn acl_to_keep<S: ObjectStore>(store: &S, key: &str) -> NsResult<Option<AclHeaders>> {
    let info = match store.get_acl(Some(key)).await {
        Ok(info) => info,
        Err(e) if e.kind() == ErrorKind::NotSupported => return Ok(None),
        Err(e) => return Err(NsError::cos("GetObjectACL", key, e)),
    };
    match kept_acl(&info) {
        KeptAcl::Default => Ok(None),
        KeptAcl::Send(headers) => Ok(Some(headers)),
        KeptAcl::OwnerOnly => {
            let bucket_private = match store.get_acl(None).await {
                Ok(bucket) => !bucket
                    .policy
                    .grants
                    .iter()
                    .any(|g| matches!(g.grantee, Grantee::Group { .. })),
                Err(_) => false,
            };
            if bucket_private {
                Ok(None)
            } else {
                tracing::warn!(
                    key,
                    "the ACL answer does not say whether the object is `private` or `default`, \
                     and the bucket is not private: keeping it `private`"
                );
                Ok(Some(AclHeaders::canned("private")))
            }
        }
    }
}

/// Where a rewrite gets the ACL it sends again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclSource {
    /// Ask COS now ([`acl_to_keep`], one GET `?acl`).
    Fetch,
    /// Already known (a writer learned it when the file was opened); `None` = `default`.
    Known(Option<AclHeaders>),
}

/// The version of an object a copy starts from; `If-Match` is sent on its ETag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    pub key: String,
    /// Without quotes.
    pub etag: String,
    pub size: u64,
    /// Checked against the copy's CRC-64 when known.
    pub crc64: Option<u64>,
}

impl From<&ObjectInfo> for Version {
    fn from(info: &ObjectInfo) -> Self {
        Version {
            key: info.key.clone(),
            etag: info.etag.clone(),
            size: info.size,
            crc64: info.crc64,
        }
    }
}

/// The one "rewrite in place" of an object's metadata (chmod, chown, utimens, setxattr, the
/// writer's metadata-only update): copy `version` onto itself with `Replaced` and `opts`
/// (content headers, user metadata, storage class: the caller passes them all, COS keeps
/// nothing of a `Replaced` copy but the bytes), the ACL from `acl` sent with the copy, and
/// `If-Match` on the version's ETag, so a concurrent overwrite fails the update instead of
/// being undone by it. Over `max_simple_copy`, a multipart upload of part copies.
pub async fn rewrite_in_place<S: ObjectStore>(
    store: &S,
    cfg: &NamespaceConfig,
    version: &Version,
    mut opts: PutOptions,
    acl: AclSource,
) -> NsResult<PutResult> {
    opts.acl = match acl {
        AclSource::Fetch => acl_to_keep(store, &version.key).await?,
        AclSource::Known(acl) => acl,
    }
    .filter(|a| !a.is_default());
    copy_version(store, cfg, version, &version.key, opts, false).await
}

/// Copy `source` to `dest` keeping content headers, user metadata, storage class and ACL
/// (one GET `?acl` of the source). Multipart copy above `max_simple_copy`.
pub async fn copy_object<S: ObjectStore>(
    store: &S,
    cfg: &NamespaceConfig,
    source: &ObjectInfo,
    dest: &str,
) -> NsResult<PutResult> {
    let mut opts = options_of(source);
    opts.acl = acl_to_keep(store, &source.key).await?;
    copy_version(store, cfg, &Version::from(source), dest, opts, true).await
}

/// Copy `source` to `dest` with `If-Match` on its ETag. `opts` is everything the destination
/// gets: with `keep_metadata` (the `Copy` directive) a simple copy sends only its storage class
/// and ACL and COS keeps the source's headers and metadata; a multipart copy (over
/// `max_simple_copy`) and `Replaced` send all of it.
async fn copy_version<S: ObjectStore>(
    store: &S,
    cfg: &NamespaceConfig,
    source: &Version,
    dest: &str,
    opts: PutOptions,
    keep_metadata: bool,
) -> NsResult<PutResult> {
    if source.size > cfg.max_simple_copy {
        return multipart_copy(store, cfg, source, dest, &opts).await;
    }
    let params = CopyParams {
        source_key: source.key.clone(),
        storage_class: opts.storage_class.clone(),
        acl: opts.acl.clone(),
        directive: if keep_metadata {
            MetadataDirective::Copy
        } else {
            MetadataDirective::Replaced(opts)
        },
        source_if_match: Some(source.etag.clone()),
    };
    let result = store
        .copy_object(dest, &params)
        .await
        .map_err(|e| NsError::cos("PUT Object - Copy", dest, e))?;
    check_copy_crc(dest, source.crc64, result.crc64)?;
    Ok(result)
}

fn check_copy_crc(key: &str, source: Option<u64>, copy: Option<u64>) -> NsResult<()> {
    match (source, copy) {
        (Some(s), Some(c)) if s != c => Err(NsError::ChecksumMismatch {
            key: key.to_string(),
            source_crc: s,
            copy_crc: c,
        }),
        _ => Ok(()),
    }
}

/// A multipart upload of Upload Part Copy requests (for sources over 5 GB).
async fn multipart_copy<S: ObjectStore>(
    store: &S,
    cfg: &NamespaceConfig,
    source: &Version,
    dest: &str,
    opts: &PutOptions,
) -> NsResult<PutResult> {
    // Keep within 10 000 parts whatever the size.
    let part_size = cfg
        .copy_part_size
        .max(source.size.div_ceil(MAX_PARTS))
        .max(1);
    let count = source.size.div_ceil(part_size).max(1);
    let upload_id = store
        .initiate_multipart(dest, opts)
        .await
        .map_err(|e| NsError::cos("InitiateMultipartUpload", dest, e))?;
    let jobs: Vec<_> = (0..count)
        .map(|index| {
            let first = index * part_size;
            let last = (first + part_size).min(source.size).saturating_sub(1);
            copy_part(
                store,
                dest,
                &upload_id,
                index as u32 + 1,
                &source.key,
                first,
                last,
            )
        })
        .collect();
    let copies = run_bounded(jobs, cfg.parallel_copies).await;
    let mut copies = match copies {
        Ok(c) => c,
        Err(e) => {
            abort_quietly(store, dest, &upload_id).await;
            return Err(e);
        }
    };
    copies.sort_by_key(|(number, _, _)| *number);
    let mut combined = Some(0u64);
    let parts: Vec<CompletedPart> = copies
        .iter()
        .map(|(number, result, len)| {
            combined = match (combined, result.crc64) {
                (Some(acc), Some(crc)) => Some(crc64::combine(acc, crc, *len)),
                _ => None,
            };
            CompletedPart {
                part_number: *number,
                etag: result.etag.clone(),
            }
        })
        .collect();
    let result = match store.complete_multipart(dest, &upload_id, &parts).await {
        Ok(r) => r,
        Err(e) => {
            abort_quietly(store, dest, &upload_id).await;
            return Err(NsError::cos("CompleteMultipartUpload", dest, e));
        }
    };
    check_copy_crc(dest, source.crc64, result.crc64.or(combined))?;
    Ok(result)
}

async fn abort_quietly<S: ObjectStore>(store: &S, key: &str, upload_id: &str) {
    if let Err(e) = store.abort_multipart(key, upload_id).await {
        tracing::warn!(
            key,
            upload_id,
            "aborting a failed multipart copy failed: {e}"
        );
    }
}

/// Run `jobs` with at most `limit` in flight; the first error ends the run (the jobs still
/// running are dropped, i.e. cancelled).
async fn run_bounded<T, F>(jobs: impl IntoIterator<Item = F>, limit: usize) -> NsResult<Vec<T>>
where
    F: Future<Output = NsResult<T>>,
{
    let limit = limit.max(1);
    let mut running = FuturesUnordered::new();
    let mut done = Vec::new();
    for job in jobs {
        if running.len() >= limit {
            if let Some(result) = running.next().await {
                done.push(result?);
            }
        }
        running.push(job);
    }
    while let Some(result) = running.next().await {
        done.push(result?);
    }
    Ok(done)
}

/// One Upload Part Copy of bytes `first..=last` of `source_key`.
async fn copy_part<S: ObjectStore>(
    store: &S,
    dest: &str,
    upload_id: &str,
    number: u32,
    source_key: &str,
    first: u64,
    last: u64,
) -> NsResult<(u32, PutResult, u64)> {
    let result = store
        .upload_part_copy(dest, upload_id, number, source_key, Some((first, last)))
        .await
        .map_err(|e| NsError::cos("UploadPartCopy", dest, e))?;
    Ok((number, result, last + 1 - first))
}

/// Copy one listed object from under `from_dir` to the same place under `to_dir`, with its
/// storage class and ACL (one GET `?acl` per object).
async fn copy_into<S: ObjectStore>(
    store: &S,
    cfg: &NamespaceConfig,
    entry: &ListEntry,
    from_dir: &str,
    to_dir: &str,
) -> NsResult<()> {
    let dest = format!("{to_dir}{}", &entry.key[from_dir.len()..]);
    if entry.size > cfg.max_simple_copy {
        // A part copy must re-stamp headers and metadata: learn them first.
        let info = store
            .head_object(&entry.key)
            .await
            .map_err(|e| NsError::cos("HeadObject", &entry.key, e))?;
        copy_object(store, cfg, &info, &dest).await?;
    } else {
        let opts = PutOptions {
            storage_class: Some(entry.storage_class.clone()),
            acl: acl_to_keep(store, &entry.key).await?,
            ..Default::default()
        };
        let source = Version {
            key: entry.key.clone(),
            etag: entry.etag.clone(),
            size: entry.size,
            crc64: None,
        };
        copy_version(store, cfg, &source, &dest, opts, true).await?;
    }
    Ok(())
}

/// Rename one object (file or symlink): copy, then delete the source. An existing `dest` is
/// replaced. Returns what the copy returned.
pub async fn rename_object<S: ObjectStore>(
    store: &S,
    cfg: &NamespaceConfig,
    source: &ObjectInfo,
    dest: &str,
) -> NsResult<PutResult> {
    if source.key == dest {
        return Ok(PutResult {
            etag: source.etag.clone(),
            crc64: source.crc64,
        });
    }
    let result = copy_object(store, cfg, source, dest).await?;
    store
        .delete_object(&source.key)
        .await
        .map_err(|e| NsError::cos("DeleteObject", &source.key, e))?;
    Ok(result)
}

/// HEAD `from`, then [`rename_object`].
pub async fn rename_key<S: ObjectStore>(
    store: &S,
    cfg: &NamespaceConfig,
    from: &str,
    to: &str,
) -> NsResult<PutResult> {
    let source = store
        .head_object(from)
        .await
        .map_err(|e| NsError::cos("HeadObject", from, e))?;
    rename_object(store, cfg, &source, to).await
}

/// Rename every key under `from_dir` (ends with `/`, marker included) to `to_dir`. Copies all
/// first, then deletes the sources. Returns how many objects moved.
pub async fn rename_dir<S: ObjectStore>(
    store: &S,
    cfg: &NamespaceConfig,
    from_dir: &str,
    to_dir: &str,
) -> NsResult<usize> {
    if to_dir.starts_with(from_dir) {
        return Err(NsError::IntoItself {
            from: from_dir.to_string(),
            to: to_dir.to_string(),
        });
    }
    let mut moved = Vec::new();
    let mut marker: Option<String> = None;
    loop {
        // No delimiter: the whole subtree, in pages of 1000.
        let params = ListParams {
            prefix: from_dir.to_string(),
            delimiter: None,
            marker: marker.clone(),
            max_keys: None,
        };
        let page = store
            .list_objects(&params)
            .await
            .map_err(|e| NsError::cos("ListObjects", from_dir, e))?;
        // Collected first: an iterator adapter held across `.await` trips rustc's higher-ranked
        // lifetime check when the future must be Send.
        let jobs: Vec<_> = page
            .objects
            .iter()
            .map(|entry| copy_into(store, cfg, entry, from_dir, to_dir))
            .collect();
        run_bounded(jobs, cfg.parallel_copies).await?;
        moved.extend(page.objects.iter().map(|o| o.key.clone()));
        match (page.is_truncated, page.next_marker) {
            (true, Some(next)) => marker = Some(next),
            (true, None) => {
                // Defensive: page on from the last key when COS omits NextMarker.
                match page.objects.last() {
                    Some(last) => marker = Some(last.key.clone()),
                    None => break,
                }
            }
            _ => break,
        }
    }
    let jobs: Vec<_> = moved.iter().map(|key| remove_file(store, key)).collect();
    run_bounded(jobs, cfg.parallel_copies).await?;
    Ok(moved.len())
}

/// chmod/chown/utimens on a closed object: [`rewrite_in_place`], re-sending its content
/// headers, user metadata, storage class and ACL with the new POSIX attributes.
pub async fn set_attributes<S: ObjectStore>(
    store: &S,
    cfg: &NamespaceConfig,
    info: &ObjectInfo,
    update: AttrUpdate,
) -> NsResult<PutResult> {
    let mut opts = options_of(info);
    apply_attr_update(&info.key, &mut opts.meta, update);
    rewrite_in_place(store, cfg, &Version::from(info), opts, AclSource::Fetch).await
}

/// Apply `update` to an object's user metadata (what [`set_attributes`] stamps).
pub fn apply_attr_update(key: &str, meta: &mut BTreeMap<String, String>, update: AttrUpdate) {
    let type_bits = object_type_bits(key, meta);
    if let Some(mode) = update.mode {
        meta.insert("mode".into(), (type_bits | (mode & 0o7777)).to_string());
    } else if !meta.contains_key("mode") {
        // Without a mode the reader would guess one; pin the default it would show.
        let default = if type_bits == libc::S_IFDIR {
            0o755
        } else {
            0o644
        };
        meta.insert("mode".into(), (type_bits | default).to_string());
    }
    if let Some(uid) = update.uid {
        meta.insert("uid".into(), uid.to_string());
    }
    if let Some(gid) = update.gid {
        meta.insert("gid".into(), gid.to_string());
    }
    if let Some(mtime) = update.mtime {
        meta.insert("mtime".into(), format_meta_time(mtime));
    }
    if let Some(atime) = update.atime {
        meta.insert("atime".into(), format_meta_time(atime));
    }
    // Every attribute change is a status change.
    let ctime = update.ctime.unwrap_or_else(SystemTime::now);
    meta.insert("ctime".into(), format_meta_time(ctime));
}

/// mkdir: a 0-byte `dir/` marker carrying `S_IFDIR | perm`.
pub async fn make_dir<S: ObjectStore>(
    store: &S,
    dir_key: &str,
    perm: u32,
    (uid, gid): (u32, u32),
    mtime: SystemTime,
) -> NsResult<PutResult> {
    let opts = PutOptions {
        content: ContentHeaders {
            content_type: Some(DIRECTORY_CONTENT_TYPE.to_string()),
            ..Default::default()
        },
        meta: posix_meta(libc::S_IFDIR | (perm & 0o7777), uid, gid, mtime),
        ..Default::default()
    };
    store
        .put_object(dir_key, Bytes::new(), &opts)
        .await
        .map_err(|e| NsError::cos("PutObject", dir_key, e))
}

/// Is the directory `dir_key` (ends with `/`) empty? One small listing: anything under the
/// prefix other than the marker itself makes it non-empty.
pub async fn dir_is_empty<S: ObjectStore>(store: &S, dir_key: &str) -> NsResult<bool> {
    let params = ListParams {
        prefix: dir_key.to_string(),
        delimiter: Some("/".to_string()),
        marker: None,
        max_keys: Some(2),
    };
    let page = store
        .list_objects(&params)
        .await
        .map_err(|e| NsError::cos("ListObjects", dir_key, e))?;
    let has_child =
        page.objects.iter().any(|o| o.key != dir_key) || !page.common_prefixes.is_empty();
    Ok(!has_child)
}

/// rmdir: ENOTEMPTY unless empty, then delete the marker (absent for an implicit directory,
/// which is fine: DELETE of a missing key succeeds).
pub async fn remove_dir<S: ObjectStore>(store: &S, dir_key: &str) -> NsResult<()> {
    if !dir_is_empty(store, dir_key).await? {
        return Err(NsError::NotEmpty {
            dir: dir_key.to_string(),
        });
    }
    store
        .delete_object(dir_key)
        .await
        .map_err(|e| NsError::cos("DeleteObject", dir_key, e))
}

/// unlink: delete the object.
pub async fn remove_file<S: ObjectStore>(store: &S, key: &str) -> NsResult<()> {
    store
        .delete_object(key)
        .await
        .map_err(|e| NsError::cos("DeleteObject", key, e))
}

/// symlink, stored the cosfs way: the body is the target, `x-cos-meta-mode` is
/// `S_IFLNK | 0777`.
pub async fn make_symlink<S: ObjectStore>(
    store: &S,
    key: &str,
    target: &[u8],
    (uid, gid): (u32, u32),
    mtime: SystemTime,
) -> NsResult<PutResult> {
    if target.len() as u64 > MAX_LINK_TARGET {
        return Err(NsError::LinkTooLong {
            key: key.to_string(),
            len: target.len() as u64,
        });
    }
    let opts = PutOptions {
        content: ContentHeaders {
            content_type: Some("application/octet-stream".to_string()),
            ..Default::default()
        },
        meta: posix_meta(libc::S_IFLNK | 0o777, uid, gid, mtime),
        ..Default::default()
    };
    store
        .put_object(key, Bytes::copy_from_slice(target), &opts)
        .await
        .map_err(|e| NsError::cos("PutObject", key, e))
}

/// mknod of a FIFO, socket or device node: an empty object carrying `mode` (type bits
/// included) and, for devices, `rdev`, as s3fs and cosfs store them.
pub async fn make_special<S: ObjectStore>(
    store: &S,
    key: &str,
    mode: u32,
    rdev: u32,
    (uid, gid): (u32, u32),
    mtime: SystemTime,
) -> NsResult<PutResult> {
    let mut meta = posix_meta(mode, uid, gid, mtime);
    if rdev != 0 {
        meta.insert("rdev".to_string(), rdev.to_string());
    }
    let opts = PutOptions {
        meta,
        ..Default::default()
    };
    store
        .put_object(key, Bytes::new(), &opts)
        .await
        .map_err(|e| NsError::cos("PutObject", key, e))
}

/// readlink: the body of a symlink object (`info` from a HEAD, so its mode is known).
pub async fn read_link<S: ObjectStore>(store: &S, info: &ObjectInfo) -> NsResult<Vec<u8>> {
    if !is_symlink(info) {
        return Err(NsError::NotASymlink {
            key: info.key.clone(),
        });
    }
    if info.size > MAX_LINK_TARGET {
        return Err(NsError::LinkTooLong {
            key: info.key.clone(),
            len: info.size,
        });
    }
    if info.size == 0 {
        return Ok(Vec::new());
    }
    let got = store
        .get_range(&info.key, 0, info.size, Some(&info.etag))
        .await
        .map_err(|e| NsError::cos("GetObject", &info.key, e))?;
    Ok(got.data.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cos::acl::GrantHeaders;
    use crate::cos::memory::{MemoryStore, StoreOp};
    #[allow(unused_imports)]
    use crate::fs::error::ToErrno;

    fn ia_options() -> PutOptions {
        PutOptions {
            content: ContentHeaders {
                content_type: Some("image/png".into()),
                content_disposition: Some("inline".into()),
                ..Default::default()
            },
            meta: BTreeMap::from([
                ("mode".to_string(), (libc::S_IFREG | 0o600).to_string()),
                ("note".to_string(), "keep me".to_string()),
            ]),
            storage_class: Some("STANDARD_IA".into()),
            ..Default::default()
        }
    }

    async fn head(store: &MemoryStore, key: &str) -> ObjectInfo {
        store.head_object(key).await.unwrap()
    }

    #[tokio::test]
    async fn rename_keeps_class_headers_and_metadata_and_replaces_target() {
        let store = MemoryStore::new();
        store.insert("a.png", &b"image bytes"[..], &ia_options());
        store.insert("b.png", &b"old target"[..], &PutOptions::default());
        rename_key(&store, &NamespaceConfig::default(), "a.png", "b.png")
            .await
            .unwrap();
        assert!(store.get("a.png").is_none());
        let b = store.object("b.png").unwrap();
        assert_eq!(&b.data[..], b"image bytes");
        assert_eq!(b.storage_class, "STANDARD_IA");
        assert_eq!(b.content.content_disposition.as_deref(), Some("inline"));
        assert_eq!(b.meta["note"], "keep me");
        assert_eq!(store.requests(StoreOp::CopyObject), 1);
        assert_eq!(store.requests(StoreOp::DeleteObject), 1);
    }

    #[tokio::test]
    async fn rename_over_the_simple_copy_limit_uses_part_copies() {
        let store = MemoryStore::new();
        store.set_min_part_size(1000);
        store.set_max_simple_copy(4000);
        let data: Vec<u8> = (0..10_000u32).map(|i| (i % 251) as u8).collect();
        store.insert("big", data.clone(), &ia_options());
        let cfg = NamespaceConfig {
            max_simple_copy: 4000,
            copy_part_size: 3000,
            parallel_copies: 2,
        };
        rename_key(&store, &cfg, "big", "moved/big").await.unwrap();
        let moved = store.object("moved/big").unwrap();
        assert_eq!(moved.data, data);
        assert_eq!(moved.storage_class, "STANDARD_IA");
        assert_eq!(moved.meta["note"], "keep me");
        assert_eq!(moved.content.content_type.as_deref(), Some("image/png"));
        assert_eq!(store.requests(StoreOp::CopyObject), 0);
        assert_eq!(store.requests(StoreOp::UploadPartCopy), 4);
        assert!(store.get("big").is_none());
        assert!(store.pending_uploads().is_empty());
    }

    #[tokio::test]
    async fn a_failed_part_copy_aborts_and_keeps_the_source() {
        let store = MemoryStore::new();
        store.set_min_part_size(1000);
        store.insert("big", vec![7u8; 5000], &PutOptions::default());
        store.fail_after(StoreOp::UploadPartCopy, 1, 1, || {
            MemoryStore::service_error(500, "InternalError")
        });
        let cfg = NamespaceConfig {
            max_simple_copy: 1000,
            copy_part_size: 2000,
            parallel_copies: 1,
        };
        let err = rename_key(&store, &cfg, "big", "dst").await.unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::EIO);
        assert!(store.get("big").is_some());
        assert!(store.get("dst").is_none());
        assert!(store.pending_uploads().is_empty());
    }

    #[tokio::test]
    async fn rename_dir_moves_the_whole_tree_across_pages() {
        let store = MemoryStore::new();
        store.insert("src/", Bytes::new(), &PutOptions::default());
        let mut expected = vec!["dst/".to_string()];
        for i in 0..1200 {
            let rel = format!("d{}/f{i:04}", i % 3);
            store.insert(&format!("src/{rel}"), format!("body {i}"), &ia_options());
            expected.push(format!("dst/{rel}"));
        }
        store.insert("srcx/other", &b"not moved"[..], &PutOptions::default());
        let moved = rename_dir(&store, &NamespaceConfig::default(), "src/", "dst/")
            .await
            .unwrap();
        assert_eq!(moved, 1201);
        expected.push("srcx/other".to_string());
        expected.sort();
        assert_eq!(store.keys(), expected);
        let one = store.object("dst/d1/f0001").unwrap();
        assert_eq!(&one.data[..], b"body 1");
        assert_eq!(one.storage_class, "STANDARD_IA");
        assert_eq!(store.requests(StoreOp::ListObjects), 2, "pages of 1000");
    }

    #[tokio::test]
    async fn rename_dir_into_itself_is_refused() {
        let store = MemoryStore::new();
        let err = rename_dir(&store, &NamespaceConfig::default(), "a/", "a/b/")
            .await
            .unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::EINVAL);
    }

    #[tokio::test]
    async fn set_attributes_copies_onto_itself_keeping_everything_else() {
        let store = MemoryStore::new();
        store.insert("f", &b"data"[..], &ia_options());
        let info = head(&store, "f").await;
        let when = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000);
        let update = AttrUpdate {
            mode: Some(0o755),
            uid: Some(42),
            gid: None,
            mtime: Some(when),
            atime: None,
            ctime: None,
        };
        set_attributes(&store, &NamespaceConfig::default(), &info, update)
            .await
            .unwrap();
        let f = store.object("f").unwrap();
        assert_eq!(f.meta["mode"], (libc::S_IFREG | 0o755).to_string());
        assert_eq!(f.meta["uid"], "42");
        assert_eq!(f.meta["mtime"], "1600000000");
        assert_eq!(f.meta["note"], "keep me");
        assert_eq!(f.storage_class, "STANDARD_IA");
        assert_eq!(f.content.content_type.as_deref(), Some("image/png"));
        assert_eq!(&f.data[..], b"data");
    }

    #[tokio::test]
    async fn mkdir_rmdir_and_the_emptiness_check() {
        let store = MemoryStore::new();
        make_dir(&store, "d/", 0o750, (1, 2), SystemTime::now())
            .await
            .unwrap();
        let marker = store.object("d/").unwrap();
        assert_eq!(marker.data.len(), 0);
        assert_eq!(marker.meta["mode"], (libc::S_IFDIR | 0o750).to_string());
        store.insert("d/sub/x", &b"x"[..], &PutOptions::default());
        store.reset_requests();
        let err = remove_dir(&store, "d/").await.unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::ENOTEMPTY);
        assert_eq!(store.requests(StoreOp::ListObjects), 1);
        assert!(store.get("d/").is_some());
        store.insert("d/sub/x", &b"x"[..], &PutOptions::default());
        remove_file(&store, "d/sub/x").await.unwrap();
        remove_dir(&store, "d/").await.unwrap();
        assert!(store.keys().is_empty());
    }

    #[tokio::test]
    async fn symlinks_round_trip_the_cosfs_way() {
        let store = MemoryStore::new();
        make_symlink(&store, "link", b"../target/file", (5, 6), SystemTime::now())
            .await
            .unwrap();
        let obj = store.object("link").unwrap();
        assert_eq!(&obj.data[..], b"../target/file");
        assert_eq!(obj.meta["mode"], (libc::S_IFLNK | 0o777).to_string());
        let info = head(&store, "link").await;
        assert!(is_symlink(&info));
        assert_eq!(read_link(&store, &info).await.unwrap(), b"../target/file");

        store.insert("plain", &b"x"[..], &PutOptions::default());
        let info = head(&store, "plain").await;
        assert_eq!(
            read_link(&store, &info).await.unwrap_err().errno(),
            fuser::Errno::EINVAL
        );
        let long = vec![b'a'; 5000];
        let err = make_symlink(&store, "l2", &long, (0, 0), SystemTime::now())
            .await
            .unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::ENAMETOOLONG);
    }

    fn acl_store() -> MemoryStore {
        let store = MemoryStore::new();
        store.enable_acls();
        store
    }

    fn with_acl(acl: AclHeaders) -> PutOptions {
        PutOptions {
            acl: Some(acl),
            ..ia_options()
        }
    }

    fn reader_grant() -> AclHeaders {
        AclHeaders {
            canned: None,
            grants: GrantHeaders {
                read: Some("id=\"qcs::cam::uin/2:uin/2\"".into()),
                ..Default::default()
            },
        }
    }

    #[tokio::test]
    async fn set_attributes_sends_the_acl_with_its_copy_for_one_get_acl() {
        let store = acl_store();
        store.insert(
            "f",
            &b"data"[..],
            &with_acl(AclHeaders::canned("public-read")),
        );
        let info = head(&store, "f").await;
        store.reset_requests();
        let update = AttrUpdate {
            mode: Some(0o600),
            ..Default::default()
        };
        set_attributes(&store, &NamespaceConfig::default(), &info, update)
            .await
            .unwrap();
        let f = store.object("f").unwrap();
        assert_eq!(f.acl, Some(AclHeaders::canned("public-read")));
        assert_eq!(f.storage_class, "STANDARD_IA");
        assert_eq!(f.meta["mode"], (libc::S_IFREG | 0o600).to_string());
        assert_eq!(store.requests(StoreOp::GetAcl), 1);
        assert_eq!(store.requests(StoreOp::CopyObject), 1);
        assert_eq!(
            store.requests(StoreOp::PutAcl),
            0,
            "sent with the copy, not after"
        );
    }

    #[tokio::test]
    async fn a_default_acl_sends_nothing_and_a_store_without_acls_still_rewrites() {
        let store = acl_store();
        store.insert("d", &b"data"[..], &ia_options());
        let info = head(&store, "d").await;
        set_attributes(
            &store,
            &NamespaceConfig::default(),
            &info,
            AttrUpdate::default(),
        )
        .await
        .unwrap();
        assert_eq!(store.object("d").unwrap().acl, None);
        assert_eq!(acl_to_keep(&store, "d").await.unwrap(), None);

        // MemoryStore without ACLs answers NotImplemented: nothing to keep, no failure.
        let plain = MemoryStore::new();
        plain.insert("p", &b"data"[..], &ia_options());
        let info = head(&plain, "p").await;
        set_attributes(
            &plain,
            &NamespaceConfig::default(),
            &info,
            AttrUpdate::default(),
        )
        .await
        .unwrap();
        assert_eq!(plain.requests(StoreOp::GetAcl), 1);
        assert_eq!(plain.object("p").unwrap().storage_class, "STANDARD_IA");
    }

    #[tokio::test]
    async fn rename_carries_the_acl_by_simple_and_by_part_copy() {
        let store = acl_store();
        store.set_min_part_size(1000);
        store.set_max_simple_copy(4000);
        store.insert("small", &b"s"[..], &with_acl(reader_grant()));
        store.insert(
            "big",
            vec![3u8; 10_000],
            &with_acl(AclHeaders::canned("private")),
        );
        let cfg = NamespaceConfig {
            max_simple_copy: 4000,
            copy_part_size: 3000,
            parallel_copies: 2,
        };
        rename_key(&store, &cfg, "small", "small2").await.unwrap();
        rename_key(&store, &cfg, "big", "big2").await.unwrap();
        assert_eq!(store.requests(StoreOp::UploadPartCopy), 4);
        let kept = |key: &str| {
            let obj = store.object(key).unwrap();
            (obj.acl, obj.storage_class)
        };
        // The grant list comes back whole: the owner's FULL_CONTROL and the reader's READ.
        let (small_acl, small_class) = kept("small2");
        let grants = small_acl.unwrap().grants;
        assert_eq!(grants.read.as_deref(), Some("id=\"qcs::cam::uin/2:uin/2\""));
        assert!(grants.full_control.is_some());
        assert_eq!(small_class, "STANDARD_IA");
        assert_eq!(
            kept("big2"),
            (Some(AclHeaders::canned("private")), "STANDARD_IA".into())
        );
    }

    #[tokio::test]
    async fn rename_dir_carries_each_objects_acl() {
        let store = acl_store();
        store.insert(
            "src/",
            Bytes::new(),
            &with_acl(AclHeaders::canned("public-read")),
        );
        store.insert("src/a", &b"a"[..], &with_acl(AclHeaders::canned("private")));
        store.insert("src/b", &b"b"[..], &ia_options());
        rename_dir(&store, &NamespaceConfig::default(), "src/", "dst/")
            .await
            .unwrap();
        let acl = |key: &str| store.object(key).unwrap().acl;
        assert_eq!(acl("dst/"), Some(AclHeaders::canned("public-read")));
        assert_eq!(acl("dst/a"), Some(AclHeaders::canned("private")));
        assert_eq!(acl("dst/b"), None);
        assert_eq!(store.object("dst/b").unwrap().storage_class, "STANDARD_IA");
        assert_eq!(store.requests(StoreOp::GetAcl), 3, "one per object");
    }

    #[tokio::test]
    async fn an_unreadable_acl_fails_the_rewrite_and_changes_nothing() {
        let store = acl_store();
        store.insert("f", &b"data"[..], &with_acl(AclHeaders::canned("private")));
        let info = head(&store, "f").await;
        store.fail_next(StoreOp::GetAcl, 1, || {
            MemoryStore::service_error(403, "AccessDenied")
        });
        let update = AttrUpdate {
            mode: Some(0o777),
            ..Default::default()
        };
        let err = set_attributes(&store, &NamespaceConfig::default(), &info, update)
            .await
            .unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::EACCES);
        assert_eq!(store.requests(StoreOp::CopyObject), 0);
        assert_eq!(
            store.object("f").unwrap().meta["mode"],
            (libc::S_IFREG | 0o600).to_string()
        );
    }

    #[tokio::test]
    async fn owner_only_answers_are_settled_by_the_bucket_acl() {
        // Answers without `x-cos-acl`: `private` and `default` look the same.
        let store = acl_store();
        store.set_acl_header(false);
        store.insert("p", &b"x"[..], &with_acl(AclHeaders::canned("private")));
        store.insert("d", &b"x"[..], &ia_options());
        store.insert("r", &b"x"[..], &with_acl(AclHeaders::canned("public-read")));
        // A private bucket: both mean "owner only", nothing to send.
        assert_eq!(acl_to_keep(&store, "p").await.unwrap(), None);
        assert_eq!(acl_to_keep(&store, "d").await.unwrap(), None);
        // A public bucket: fail closed, never let a private object inherit public-read.
        store
            .put_acl(None, &crate::cos::acl::AclUpdate::canned("public-read"))
            .await
            .unwrap();
        for key in ["p", "d"] {
            assert_eq!(
                acl_to_keep(&store, key).await.unwrap(),
                Some(AclHeaders::canned("private")),
                "{key}"
            );
        }
        assert_eq!(
            acl_to_keep(&store, "r").await.unwrap(),
            Some(AclHeaders::canned("public-read"))
        );
    }

    #[tokio::test]
    async fn a_missing_source_is_enoent() {
        let store = MemoryStore::new();
        let err = rename_key(&store, &NamespaceConfig::default(), "nope", "x")
            .await
            .unwrap_err();
        assert_eq!(err.errno(), fuser::Errno::ENOENT);
    }
}
