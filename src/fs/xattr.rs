//! Extended attributes: `user.cos.*` views of COS object state, and every other `user.NAME`
//! stored as the object's `x-cos-meta-NAME`.
//!
//! | name | get | set | listed |
//! |---|---|---|---|
//! | `user.cos.acl` | GET `?acl`: the canned value (`default`, `private`, `public-read`, ...) or the grants, one `grant-PERMISSION: id="..."` line each | PUT `?acl` with a canned value or such lines; remove = `default` | yes |
//! | `user.cos.storage_class` | `x-cos-storage-class` (`STANDARD` when COS omits it) | copy onto itself with the new class; remove = `STANDARD` | yes |
//! | `user.cos.etag`, `user.cos.crc64` | ETag (no quotes), `x-cos-hash-crc64ecma` | EPERM | no |
//! | `user.cos.region` (mount root) | the bucket's region | EPERM | no |
//! | `user.NAME` | `x-cos-meta-NAME` | copy onto itself with the new metadata | yes |
//!
//! On the mount root `user.cos.acl` is the bucket's ACL. On a file open for writing, user
//! attributes, the storage class and the ACL (canned or grants) are kept with the pending upload and go up
//! with it (`cp --preserve=xattr` sets them before it closes the new file). The read-only attributes are not
//! listed: `cp --preserve=xattr` and `rsync -X` copy every listed name, and an attribute that can
//! never be set would make every copy inside the mount fail with EPERM.
//!
//! COS's rules for user metadata, and what cosmount does about them:
//! - NAME may hold lower-case ASCII letters, digits, `-` and `.`. COS refuses `_`, header names
//!   are case-insensitive (COS answers them lower-cased), and non-ASCII cannot be a header name:
//!   any other name is EINVAL on set (and ENODATA on get: it cannot exist).
//! - `mode`, `uid`, `gid` and `mtime` are cosmount's own (cosfs-compatible) metadata, managed by
//!   chmod, chown and touch: they are not user attributes (EPERM on set, ENODATA on get).
//! - Values that are printable ASCII without leading or trailing blanks are stored as they
//!   are. Any other value (binary, UTF-8, empty, or starting with the marker itself) is stored
//!   as `base64:` + base64, and decoded again on get.
//! - All user metadata of an object (names + values as stored, cosmount's own included) must
//!   fit in 2 KB: E2BIG past it.
//!
//! Other namespaces: `security.*` get answers ENODATA (what `ls` and `cp` treat as "no label"),
//! every other non-`user.` name, and any set or remove outside `user.`, answers ENOTSUP.

use std::collections::BTreeMap;

use base64::Engine;

use crate::cos::acl::{
    AclHeaders, AclUpdate, Grant, GrantHeaders, Grantee, ALL_USERS_URI, AUTHENTICATED_USERS_URI,
    BUCKET_CANNED_ACLS, GRANT_HEADERS, OBJECT_CANNED_ACLS,
};
use crate::cos::object::STORAGE_CLASSES;
use crate::cos::store::{AclInfo, ObjectInfo, PutOptions};
use crate::cos::{CosError, ErrorKind, ObjectStore};

use super::attr::Kind;
use super::core::FsCore;
use super::error::FsError;
use super::inode::ROOT_INO;
use super::namespace::{self, AclSource, NamespaceConfig, Version};
use super::user_meta;

pub const ACL: &str = "user.cos.acl";
pub const STORAGE_CLASS: &str = "user.cos.storage_class";
pub const ETAG: &str = "user.cos.etag";
pub const CRC64: &str = "user.cos.crc64";
pub const REGION: &str = "user.cos.region";

const USER_PREFIX: &str = "user.";
/// Names under `user.cos.` are cosmount's; unknown ones are refused rather than stored.
const COS_PREFIX: &str = "user.cos.";
/// Metadata cosmount keeps for POSIX attributes (cosfs's convention) and cosfs's xattr blob.
const RESERVED_META: [&str; 8] = [
    "mode",
    "uid",
    "gid",
    "mtime",
    "ctime",
    "atime",
    "rdev",
    user_meta::BLOB_KEY,
];
/// COS allows this much user metadata per object (cos-protocol.md §4.1).
pub const MAX_USER_METADATA: usize = crate::cos::limits::MAX_USER_METADATA;
/// Prefix of a value stored base64-encoded because it is not header-safe as it is.
pub const ENCODED_MARKER: &str = "base64:";

/// Why an xattr operation failed; [`XattrError::errno`] is the one place picking the errno.
#[derive(Debug, thiserror::Error)]
pub enum XattrError {
    #[error("no such attribute")]
    NoData,
    #[error("buffer too small for the attribute ({0} bytes)")]
    Range(usize),
    #[error("attribute {0} is read-only")]
    ReadOnly(String),
    #[error("user metadata would be {0} bytes; COS allows {MAX_USER_METADATA}")]
    TooBig(usize),
    #[error("attribute exists")]
    Exists,
    #[error("not supported: {0}")]
    NotSupported(String),
    /// A name outside `user.*` (system.posix_acl_access, trusted.*): tools probe these on
    /// every copy, so the answer is routine.
    #[error("only user.* attributes are stored ({0})")]
    ForeignNamespace(String),
    #[error("invalid attribute: {0}")]
    Invalid(String),
    #[error(transparent)]
    Fs(#[from] FsError),
}

impl From<CosError> for XattrError {
    fn from(e: CosError) -> Self {
        // A store that keeps no ACLs, or COS refusing an operation it does not offer.
        match e.kind() {
            ErrorKind::NotSupported => XattrError::NotSupported(e.to_string()),
            ErrorKind::NotFound => XattrError::Fs(FsError::NotFound),
            _ => XattrError::Fs(FsError::from(e)),
        }
    }
}

pub type XattrResult<T> = Result<T, XattrError>;

/// What an xattr name means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attr {
    Acl,
    StorageClass,
    Etag,
    Crc64,
    Region,
    /// `user.NAME` <-> `x-cos-meta-NAME`; holds NAME.
    User(String),
}

/// What an operation is about to do with a name; decides the errno of names it cannot use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Use {
    Get,
    Set,
    Remove,
}

fn parse_name(name: &[u8], usage: Use) -> XattrResult<Attr> {
    let Some(rest) = name.strip_prefix(USER_PREFIX.as_bytes()) else {
        // `ls -l` and `cp` ask for security.selinux / security.capability on every file:
        // "no such attribute" is the quiet answer for those.
        if usage == Use::Get && name.starts_with(b"security.") {
            return Err(XattrError::NoData);
        }
        return Err(XattrError::ForeignNamespace(
            String::from_utf8_lossy(name).into_owned(),
        ));
    };
    let full = String::from_utf8_lossy(name);
    if name.starts_with(COS_PREFIX.as_bytes()) {
        return match full.as_ref() {
            ACL => Ok(Attr::Acl),
            STORAGE_CLASS => Ok(Attr::StorageClass),
            ETAG => Ok(Attr::Etag),
            CRC64 => Ok(Attr::Crc64),
            REGION => Ok(Attr::Region),
            other => match usage {
                Use::Set => Err(XattrError::Invalid(format!(
                    "{other}: unknown cosmount attribute (user.cos.* is reserved)"
                ))),
                Use::Get | Use::Remove => Err(XattrError::NoData),
            },
        };
    }
    // Names COS metadata cannot carry may still live in a cosfs blob (see user_meta).
    let meta = std::str::from_utf8(rest)
        .ok()
        .filter(|n| !n.is_empty() && !n.contains(['\0', '"', ',']));
    match (meta, usage) {
        (Some(n), Use::Set) if RESERVED_META.contains(&n) => Err(XattrError::ReadOnly(format!(
            "{full} (cosmount keeps mode/uid/gid/mtime/ctime/atime itself: use chmod, chown, touch)"
        ))),
        (Some(n), _) if RESERVED_META.contains(&n) => Err(XattrError::NoData),
        (Some(n), _) => Ok(Attr::User(n.to_string())),
        (None, Use::Set) => Err(XattrError::Invalid(format!(
            "{full}: COS metadata names may only hold a-z, 0-9, '-' and '.'"
        ))),
        (None, Use::Get | Use::Remove) => Err(XattrError::NoData),
    }
}

/// A name COS can carry as `x-cos-meta-NAME` and give back unchanged.
pub fn valid_meta_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 255
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
}

/// How a value is stored in a header: as it is when that is safe and unambiguous, else
/// base64-encoded behind [`ENCODED_MARKER`].
pub fn encode_value(value: &[u8]) -> String {
    let header_safe = !value.is_empty()
        && value.iter().all(|b| (0x20..0x7f).contains(b))
        && value.first() != Some(&b' ')
        && value.last() != Some(&b' ')
        && !value.starts_with(ENCODED_MARKER.as_bytes());
    if header_safe {
        String::from_utf8_lossy(value).into_owned()
    } else {
        format!(
            "{ENCODED_MARKER}{}",
            base64::engine::general_purpose::STANDARD.encode(value)
        )
    }
}

/// The inverse of [`encode_value`]. A marked value that is not valid base64 (written by some
/// other tool) is returned as it is.
pub fn decode_value(stored: &str) -> Vec<u8> {
    stored
        .strip_prefix(ENCODED_MARKER)
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64.trim())
                .ok()
        })
        .unwrap_or_else(|| stored.as_bytes().to_vec())
}

/// Bytes of user metadata as COS counts them: every name (without `x-cos-meta-`) and value.
pub fn metadata_size(meta: &BTreeMap<String, String>) -> usize {
    meta.iter().map(|(k, v)| k.len() + v.len()).sum()
}

/// A storage class name, upper-cased; EINVAL for one COS does not have.
pub fn parse_storage_class(value: &[u8]) -> XattrResult<String> {
    let text = std::str::from_utf8(value)
        .map(|s| s.trim().to_ascii_uppercase())
        .unwrap_or_default();
    if STORAGE_CLASSES.contains(&text.as_str()) {
        Ok(text)
    } else {
        Err(XattrError::Invalid(format!(
            "unknown storage class {:?} (one of {})",
            String::from_utf8_lossy(value),
            STORAGE_CLASSES.join(", ")
        )))
    }
}

fn grantee_text(g: &Grantee) -> String {
    match g {
        Grantee::CanonicalUser { id, .. } => format!("id=\"{id}\""),
        Grantee::Group { uri } => format!("uri=\"{uri}\""),
    }
}

/// The grants besides the owner's own FULL_CONTROL (which every ACL answer carries).
fn extra_grants(info: &AclInfo) -> Vec<&Grant> {
    info.policy
        .grants
        .iter()
        .filter(|g| {
            !(g.permission == "FULL_CONTROL"
                && matches!(&g.grantee, Grantee::CanonicalUser { id, .. } if *id == info.policy.owner_id))
        })
        .collect()
}

fn is_group(g: &Grant, uri: &str, permission: &str) -> bool {
    g.permission == permission && matches!(&g.grantee, Grantee::Group { uri: u } if u == uri)
}

/// The canned ACL an answer amounts to, if any. The `x-cos-acl` header wins; without it,
/// grants are matched against what each canned ACL grants. COS answers `default` and
/// `private` alike (only the owner's grant), so without the header that shows as `private`.
pub fn canned_of(info: &AclInfo, object: bool) -> Option<String> {
    let allowed: &[&str] = if object {
        &OBJECT_CANNED_ACLS
    } else {
        &BUCKET_CANNED_ACLS
    };
    let extra = extra_grants(info);
    if let Some(c) = info.canned.as_deref() {
        // The header names the canned part; explicit grants on top still need the list form.
        let implied = match c {
            "public-read" => 1,
            "public-read-write" => 2,
            "authenticated-read" => 1,
            _ => 0,
        };
        if allowed.contains(&c) && extra.len() <= implied {
            return Some(c.to_string());
        }
        if allowed.contains(&c) && extra.len() > implied {
            return None;
        }
    }
    match extra.as_slice() {
        [] => Some("private".into()),
        [g] if is_group(g, ALL_USERS_URI, "READ") => Some("public-read".into()),
        [g] if is_group(g, AUTHENTICATED_USERS_URI, "READ") => Some("authenticated-read".into()),
        [a, b]
            if !object
                && is_group(a, ALL_USERS_URI, "READ")
                && is_group(b, ALL_USERS_URI, "WRITE") =>
        {
            Some("public-read-write".into())
        }
        _ => None,
    }
}

/// `user.cos.acl` as text: the canned name, or one `grant-PERMISSION: grantees` line per
/// permission (the same form [`parse_acl`] takes back).
pub fn acl_text(info: &AclInfo, object: bool) -> String {
    if let Some(c) = canned_of(info, object) {
        return c;
    }
    let mut by_permission: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for g in &info.policy.grants {
        by_permission
            .entry(g.permission.to_ascii_lowercase().replace('_', "-"))
            .or_default()
            .push(grantee_text(&g.grantee));
    }
    by_permission
        .into_iter()
        .map(|(p, who)| format!("grant-{p}: {}\n", who.join(",")))
        .collect()
}

/// `user.cos.acl` of ACL headers a pending upload will send: the canned name, or
/// `acl: CANNED` and `grant-PERMISSION: grantees` lines ([`parse_acl`] takes them back).
pub fn headers_text(acl: Option<&AclHeaders>) -> String {
    let Some(acl) = acl.filter(|a| !a.is_default()) else {
        return "default".into();
    };
    if let Some(canned) = acl.canned_only() {
        return canned.to_string();
    }
    let mut out = String::new();
    if let Some(canned) = &acl.canned {
        out.push_str(&format!("acl: {canned}\n"));
    }
    let g = &acl.grants;
    let values = [
        &g.read,
        &g.write,
        &g.read_acp,
        &g.write_acp,
        &g.full_control,
    ];
    for ((header, _), value) in GRANT_HEADERS.iter().zip(values) {
        if let Some(v) = value {
            let name = header.trim_start_matches("x-cos-");
            out.push_str(&format!("{name}: {v}\n"));
        }
    }
    out
}

/// Parse what `setfattr -n user.cos.acl -v VALUE` gives: a canned ACL name, or lines (or
/// `;`-separated items) `grant-read: id="..."`, `grant-full-control: uri="..."`, optionally with
/// an `acl: CANNED` item.
pub fn parse_acl(value: &[u8], object: bool) -> XattrResult<AclUpdate> {
    let invalid = |why: String| XattrError::Invalid(format!("user.cos.acl: {why}"));
    let text = std::str::from_utf8(value).map_err(|_| invalid("not UTF-8".into()))?;
    let canned_names: &[&str] = if object {
        &OBJECT_CANNED_ACLS
    } else {
        &BUCKET_CANNED_ACLS
    };
    let text = text.trim_matches(|c: char| c.is_whitespace() || c == '\0');
    if canned_names.contains(&text) {
        return Ok(AclUpdate::canned(text));
    }
    let mut canned = None;
    let mut grants = GrantHeaders::default();
    for item in text.split(['\n', ';']).map(str::trim) {
        if item.is_empty() {
            continue;
        }
        let (name, who) = item.split_once(':').ok_or_else(|| {
            invalid(format!(
                "{item:?}: expected a canned ACL ({}) or `grant-read: id=\"...\"` lines",
                canned_names.join(", ")
            ))
        })?;
        let (name, who) = (name.trim().to_ascii_lowercase(), who.trim().to_string());
        if who.is_empty() || !who.bytes().all(|b| (0x20..0x7f).contains(&b)) {
            return Err(invalid(format!("{name}: empty or non-ASCII grantee list")));
        }
        let slot = match name.as_str() {
            "acl" if canned_names.contains(&who.as_str()) => &mut canned,
            "grant-read" => &mut grants.read,
            "grant-write" if !object => &mut grants.write,
            "grant-read-acp" => &mut grants.read_acp,
            "grant-write-acp" => &mut grants.write_acp,
            "grant-full-control" => &mut grants.full_control,
            _ => {
                return Err(invalid(format!(
                    "{item:?} is not a canned ACL or a grant line"
                )))
            }
        };
        match slot {
            Some(existing) => {
                existing.push(',');
                existing.push_str(&who);
            }
            None => *slot = Some(who),
        }
    }
    if canned.is_none() && grants == GrantHeaders::default() {
        return Err(invalid("empty ACL".into()));
    }
    Ok(AclUpdate::Headers { canned, grants })
}

/// The reply to getxattr/listxattr: the value, or only its length for a size-0 probe.
#[derive(Debug, PartialEq, Eq)]
pub enum Reply {
    Size(u32),
    Data(Vec<u8>),
}

/// Apply the getxattr/listxattr `size` rules: 0 asks for the length, a buffer too small is
/// ERANGE.
pub fn sized_reply(value: Vec<u8>, size: u32) -> XattrResult<Reply> {
    let len = u32::try_from(value.len()).map_err(|_| XattrError::Range(value.len()))?;
    if size == 0 {
        Ok(Reply::Size(len))
    } else if len > size {
        Err(XattrError::Range(value.len()))
    } else {
        Ok(Reply::Data(value))
    }
}

/// What an inode's xattrs live on.
enum Target {
    /// The mount root: the bucket.
    Bucket,
    /// A file's object, or a directory's `dir/` marker object.
    Object { key: String, kind: Kind },
}

impl<S: ObjectStore> FsCore<S> {
    fn xattr_target(&self, ino: u64) -> XattrResult<Target> {
        if ino == ROOT_INO {
            return Ok(Target::Bucket);
        }
        let node = self.node(ino)?;
        // Files (and symlinks) are their object; a directory is its `dir/` marker.
        let key = if node.kind == Kind::Dir {
            self.dir_prefix(&node.path)
        } else {
            self.file_key(&node.path)
        };
        Ok(Target::Object {
            key,
            kind: node.kind,
        })
    }

    /// HEAD of the object behind an xattr; a directory without a marker object has none.
    async fn head_for_xattr(&self, key: &str, kind: Kind) -> XattrResult<Option<ObjectInfo>> {
        match self.store().head_object(key).await {
            Ok(info) => Ok(Some(info)),
            Err(e) if e.is_not_found() && kind == Kind::Dir => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn getxattr(&self, ino: u64, name: &[u8], size: u32) -> XattrResult<Reply> {
        let attr = parse_name(name, Use::Get)?;
        let value = match self.xattr_target(ino)? {
            Target::Bucket => match attr {
                Attr::Acl => acl_text(&self.store().get_acl(None).await?, false).into_bytes(),
                Attr::Region => self
                    .store()
                    .head_bucket()
                    .await?
                    .region
                    .ok_or(XattrError::NoData)?
                    .into_bytes(),
                _ => return Err(XattrError::NoData),
            },
            Target::Object { key, kind } => {
                if let Some(value) = self.pending_attr(ino, kind, &attr).await {
                    return sized_reply(value?, size);
                }
                if attr == Attr::Acl {
                    if kind == Kind::Dir && self.head_for_xattr(&key, kind).await?.is_none() {
                        return Err(XattrError::NoData);
                    }
                    let info = self.store().get_acl(Some(&key)).await?;
                    acl_text(&info, true).into_bytes()
                } else {
                    let info = self
                        .head_for_xattr(&key, kind)
                        .await?
                        .ok_or(XattrError::NoData)?;
                    object_attr(&info, &attr)?
                }
            }
        };
        sized_reply(value, size)
    }

    pub async fn listxattr(&self, ino: u64, size: u32) -> XattrResult<Reply> {
        let mut names: Vec<String> = Vec::new();
        match self.xattr_target(ino)? {
            Target::Bucket => names.push(ACL.to_string()),
            Target::Object { key, kind } => {
                let pending = match kind {
                    Kind::Dir => None,
                    _ => self.open_writer_options(ino).await,
                };
                let meta = match pending {
                    Some(opts) => Some(opts.meta),
                    None => self.head_for_xattr(&key, kind).await?.map(|i| i.meta),
                };
                if let Some(meta) = meta {
                    names.push(ACL.to_string());
                    names.push(STORAGE_CLASS.to_string());
                    names.extend(
                        user_meta::names(&meta, &RESERVED_META)
                            .into_iter()
                            .map(|n| format!("{USER_PREFIX}{n}")),
                    );
                }
            }
        }
        let mut out = Vec::new();
        for n in names {
            out.extend_from_slice(n.as_bytes());
            out.push(0);
        }
        sized_reply(out, size)
    }

    pub async fn setxattr(
        &self,
        ino: u64,
        name: &[u8],
        value: &[u8],
        flags: i32,
    ) -> XattrResult<()> {
        let attr = parse_name(name, Use::Set)?;
        self.check_xattr_writable()?;
        match (self.xattr_target(ino)?, attr) {
            (_, Attr::Etag | Attr::Crc64 | Attr::Region) => Err(XattrError::ReadOnly(
                String::from_utf8_lossy(name).into_owned(),
            )),
            (Target::Bucket, Attr::Acl) => {
                let update = parse_acl(value, false)?;
                Ok(self.store().put_acl(None, &update).await?)
            }
            (Target::Bucket, _) => Err(XattrError::NotSupported(
                "the mount root is the bucket: only user.cos.acl can be set on it".into(),
            )),
            (Target::Object { kind, .. }, attr)
                if kind != Kind::Dir && self.open_writer_options(ino).await.is_some() =>
            {
                self.set_pending_attr(ino, attr, value, flags).await
            }
            (Target::Object { key, kind }, Attr::Acl) => {
                let update = parse_acl(value, true)?;
                self.existing_object(&key, kind).await?;
                Ok(self.store().put_acl(Some(&key), &update).await?)
            }
            (Target::Object { key, kind }, Attr::StorageClass) => {
                let class = parse_storage_class(value)?;
                let info = self.existing_object(&key, kind).await?;
                self.rewrite_metadata(&key, &info, info.meta.clone(), class)
                    .await
            }
            (Target::Object { key, kind }, Attr::User(meta_name)) => {
                let info = self.existing_object(&key, kind).await?;
                let exists = user_meta::exists(&info.meta, &meta_name);
                if flags & libc::XATTR_CREATE != 0 && exists {
                    return Err(XattrError::Exists);
                }
                if flags & libc::XATTR_REPLACE != 0 && !exists {
                    return Err(XattrError::NoData);
                }
                let mut meta = info.meta.clone();
                user_meta::set(&mut meta, &meta_name, value).map_err(XattrError::Invalid)?;
                let size = metadata_size(&meta);
                if size > MAX_USER_METADATA {
                    return Err(XattrError::TooBig(size));
                }
                let class = info.storage_class.clone();
                self.rewrite_metadata(&key, &info, meta, class).await
            }
        }
    }

    /// Remove a user attribute. Removing `user.cos.acl` or `user.cos.storage_class` puts it
    /// back to its default (`default` ACL, `STANDARD`): `rsync -X` removes on the copy whatever
    /// the source does not have, and a listed attribute that refused removal would fail it.
    pub async fn removexattr(&self, ino: u64, name: &[u8]) -> XattrResult<()> {
        let attr = parse_name(name, Use::Remove)?;
        self.check_xattr_writable()?;
        let target = self.xattr_target(ino)?;
        match (target, attr) {
            (_, Attr::Etag | Attr::Crc64 | Attr::Region) => Err(XattrError::ReadOnly(
                String::from_utf8_lossy(name).into_owned(),
            )),
            (Target::Bucket, Attr::Acl) => Ok(self
                .store()
                .put_acl(None, &AclUpdate::canned("private"))
                .await?),
            (Target::Bucket, _) => Err(XattrError::NoData),
            (Target::Object { kind, .. }, attr)
                if kind != Kind::Dir && self.open_writer_options(ino).await.is_some() =>
            {
                let Some(mut opts) = self.open_writer_options(ino).await else {
                    return Err(XattrError::Fs(FsError::NotFound));
                };
                match attr {
                    Attr::User(meta_name) => {
                        if !user_meta::remove(&mut opts.meta, &meta_name) {
                            return Err(XattrError::NoData);
                        }
                    }
                    Attr::Acl => opts.acl = None,
                    _ => opts.storage_class = None,
                }
                Ok(self.set_open_writer_options(ino, &opts).await?)
            }
            (Target::Object { key, kind }, Attr::Acl) => {
                self.existing_object(&key, kind).await?;
                Ok(self
                    .store()
                    .put_acl(Some(&key), &AclUpdate::canned("default"))
                    .await?)
            }
            (Target::Object { key, kind }, attr) => {
                let info = self
                    .head_for_xattr(&key, kind)
                    .await?
                    .ok_or(XattrError::NoData)?;
                let mut meta = info.meta.clone();
                let mut class = info.storage_class.clone();
                match attr {
                    Attr::User(meta_name) => {
                        if !user_meta::remove(&mut meta, &meta_name) {
                            return Err(XattrError::NoData);
                        }
                    }
                    _ if class == "STANDARD" => return Ok(()),
                    _ => class = "STANDARD".into(),
                }
                self.rewrite_metadata(&key, &info, meta, class).await
            }
        }
    }

    /// An attribute of a file open for writing, as its upload will carry it; `None` when the
    /// file is not being written or the attribute comes from COS anyway (ETag, CRC-64).
    async fn pending_attr(
        &self,
        ino: u64,
        kind: Kind,
        attr: &Attr,
    ) -> Option<XattrResult<Vec<u8>>> {
        if kind == Kind::Dir {
            return None;
        }
        let opts = self.open_writer_options(ino).await?;
        match attr {
            Attr::User(name) => Some(user_meta::get(&opts.meta, name).ok_or(XattrError::NoData)),
            Attr::StorageClass => Some(Ok(opts
                .storage_class
                .unwrap_or_else(|| "STANDARD".into())
                .into_bytes())),
            // What the upload will send (`default` when nothing).
            Attr::Acl => Some(Ok(headers_text(opts.acl.as_ref()).into_bytes())),
            Attr::Etag | Attr::Crc64 | Attr::Region => None,
        }
    }

    /// Set an attribute of a file open for writing: it goes up with the file's upload (so
    /// `cp --preserve=xattr`, which sets attributes before closing, works on new files).
    async fn set_pending_attr(
        &self,
        ino: u64,
        attr: Attr,
        value: &[u8],
        flags: i32,
    ) -> XattrResult<()> {
        let Some(mut opts) = self.open_writer_options(ino).await else {
            return Err(XattrError::Fs(FsError::NotFound));
        };
        match attr {
            Attr::User(name) => {
                let exists = user_meta::exists(&opts.meta, &name);
                if flags & libc::XATTR_CREATE != 0 && exists {
                    return Err(XattrError::Exists);
                }
                if flags & libc::XATTR_REPLACE != 0 && !exists {
                    return Err(XattrError::NoData);
                }
                user_meta::set(&mut opts.meta, &name, value).map_err(XattrError::Invalid)?;
                let size = metadata_size(&opts.meta);
                if size > MAX_USER_METADATA {
                    return Err(XattrError::TooBig(size));
                }
            }
            Attr::StorageClass => opts.storage_class = Some(parse_storage_class(value)?),
            // Sent with the upload (x-cos-acl / x-cos-grant-* of the PUT or Initiate).
            Attr::Acl => match parse_acl(value, true)? {
                AclUpdate::Headers { canned, grants } => {
                    opts.acl = Some(AclHeaders { canned, grants }).filter(|a| !a.is_default());
                }
                AclUpdate::Policy(_) => {
                    return Err(XattrError::Invalid("user.cos.acl: not a header ACL".into()))
                }
            },
            Attr::Etag | Attr::Crc64 | Attr::Region => {
                return Err(XattrError::ReadOnly(format!("{attr:?}")))
            }
        }
        Ok(self.set_open_writer_options(ino, &opts).await?)
    }

    fn check_xattr_writable(&self) -> XattrResult<()> {
        if self.config().read_only {
            return Err(XattrError::Fs(FsError::ReadOnly));
        }
        Ok(())
    }

    /// The object an attribute is set on. A directory without a marker object has nowhere to
    /// keep attributes (mkdir through the mount creates one).
    async fn existing_object(&self, key: &str, kind: Kind) -> XattrResult<ObjectInfo> {
        self.head_for_xattr(key, kind).await?.ok_or_else(|| {
            XattrError::NotSupported(format!(
                "{key} is an implicit directory (no marker object) and cannot hold attributes"
            ))
        })
    }

    /// Copy the object onto itself with new user metadata and storage class: the one
    /// [`namespace::rewrite_in_place`], which sends the object's ACL (canned or grants) with
    /// the copy, since COS does not carry it over (cos-protocol.md §5.1), and `If-Match` on
    /// the ETag seen, so a concurrent overwrite fails the update instead of being undone by it.
    async fn rewrite_metadata(
        &self,
        key: &str,
        info: &ObjectInfo,
        meta: BTreeMap<String, String>,
        storage_class: String,
    ) -> XattrResult<()> {
        debug_assert_eq!(key, info.key);
        let opts = PutOptions {
            content: info.content.clone(),
            meta,
            storage_class: Some(storage_class),
            acl: None,
            content_md5: None,
        };
        namespace::rewrite_in_place(
            &**self.store(),
            &NamespaceConfig::default(),
            &Version::from(info),
            opts,
            AclSource::Fetch,
        )
        .await
        .map_err(|e| XattrError::Fs(FsError::from(e)))?;
        Ok(())
    }
}

/// A HEAD-derived attribute of an object.
fn object_attr(info: &ObjectInfo, attr: &Attr) -> XattrResult<Vec<u8>> {
    match attr {
        Attr::StorageClass => Ok(info.storage_class.clone().into_bytes()),
        Attr::Etag => Ok(info.etag.clone().into_bytes()),
        Attr::Crc64 => info
            .crc64
            .map(|c| c.to_string().into_bytes())
            .ok_or(XattrError::NoData),
        Attr::User(name) => user_meta::get(&info.meta, name).ok_or(XattrError::NoData),
        // The region belongs to the bucket (the mount root); ACLs are fetched apart.
        Attr::Region | Attr::Acl => Err(XattrError::NoData),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cos::acl::AccessControlPolicy;
    #[allow(unused_imports)]
    use crate::fs::error::ToErrno;
    #[allow(unused_imports)]
    use fuser::Errno;

    #[test]
    fn names_map_as_documented() {
        assert_eq!(parse_name(b"user.cos.acl", Use::Get).unwrap(), Attr::Acl);
        assert_eq!(
            parse_name(b"user.color", Use::Set).unwrap(),
            Attr::User("color".into())
        );
        assert_eq!(
            parse_name(b"user.xdg.origin.url", Use::Set).unwrap(),
            Attr::User("xdg.origin.url".into())
        );
        let errno = |n: &[u8], u| parse_name(n, u).unwrap_err().errno();
        // Names COS metadata cannot carry parse (a cosfs blob may hold them); storing one on
        // an object without a blob is EINVAL (user_meta::set).
        assert_eq!(
            parse_name(b"user.has_underscore", Use::Set).unwrap(),
            Attr::User("has_underscore".into())
        );
        assert_eq!(errno(b"user.", Use::Set), Errno::EINVAL);
        assert_eq!(errno(b"user.a\"b", Use::Set), Errno::EINVAL);
        assert_eq!(errno(b"user.mode", Use::Set), Errno::EPERM);
        assert_eq!(errno(b"user.mtime", Use::Get), Errno::ENODATA);
        assert_eq!(errno(b"user.cos.nope", Use::Set), Errno::EINVAL);
        assert_eq!(errno(b"user.cos.nope", Use::Get), Errno::ENODATA);
        assert_eq!(errno(b"security.selinux", Use::Get), Errno::ENODATA);
        assert_eq!(errno(b"security.selinux", Use::Set), Errno::ENOTSUP);
        assert_eq!(errno(b"trusted.x", Use::Get), Errno::ENOTSUP);
        assert_eq!(errno(b"system.posix_acl_access", Use::Get), Errno::ENOTSUP);
    }

    #[test]
    fn values_round_trip_and_only_unsafe_ones_are_encoded() {
        for v in [
            &b"plain value"[..],
            b"",
            b" lead",
            b"trail ",
            b"\x00\xffbinary",
            "中文".as_bytes(),
            b"base64:looks encoded",
            b"line\nbreak",
        ] {
            assert_eq!(decode_value(&encode_value(v)), v, "{v:?}");
        }
        assert_eq!(encode_value(b"plain value"), "plain value");
        assert_eq!(encode_value(b""), "base64:");
        assert!(encode_value("中".as_bytes()).starts_with(ENCODED_MARKER));
        assert_eq!(decode_value("base64:!!not base64"), b"base64:!!not base64");
    }

    #[test]
    fn storage_classes() {
        assert_eq!(parse_storage_class(b"standard_ia").unwrap(), "STANDARD_IA");
        assert_eq!(parse_storage_class(b"ARCHIVE\n").unwrap(), "ARCHIVE");
        assert_eq!(
            parse_storage_class(b"GLACIER").unwrap_err().errno(),
            Errno::EINVAL
        );
    }

    fn owner_grant(id: &str) -> Grant {
        Grant {
            grantee: Grantee::CanonicalUser {
                id: id.into(),
                display_name: None,
            },
            permission: "FULL_CONTROL".into(),
        }
    }

    fn acl(canned: Option<&str>, extra: Vec<Grant>) -> AclInfo {
        let owner = "qcs::cam::uin/1:uin/1";
        let mut grants = vec![owner_grant(owner)];
        grants.extend(extra);
        AclInfo {
            policy: AccessControlPolicy {
                owner_id: owner.into(),
                owner_display_name: None,
                grants,
            },
            canned: canned.map(str::to_string),
        }
    }

    #[test]
    fn acl_shows_canned_names_or_grant_lines() {
        let public = Grant {
            grantee: Grantee::Group {
                uri: ALL_USERS_URI.into(),
            },
            permission: "READ".into(),
        };
        assert_eq!(acl_text(&acl(Some("default"), vec![]), true), "default");
        assert_eq!(acl_text(&acl(None, vec![]), true), "private");
        assert_eq!(
            acl_text(&acl(None, vec![public.clone()]), true),
            "public-read"
        );
        let reader = Grant {
            grantee: Grantee::CanonicalUser {
                id: "qcs::cam::uin/2:uin/2".into(),
                display_name: None,
            },
            permission: "READ".into(),
        };
        let text = acl_text(&acl(Some("default"), vec![reader]), true);
        assert_eq!(
            text,
            "grant-full-control: id=\"qcs::cam::uin/1:uin/1\"\ngrant-read: id=\"qcs::cam::uin/2:uin/2\"\n"
        );
        // The text form is accepted back as it is.
        let AclUpdate::Headers { canned, grants } = parse_acl(text.as_bytes(), true).unwrap()
        else {
            panic!("grant lines must become headers");
        };
        assert_eq!(canned, None);
        assert_eq!(grants.read.as_deref(), Some("id=\"qcs::cam::uin/2:uin/2\""));
        assert_eq!(
            grants.full_control.as_deref(),
            Some("id=\"qcs::cam::uin/1:uin/1\"")
        );
    }

    #[test]
    fn acl_values_are_checked() {
        assert_eq!(
            parse_acl(b"public-read", true).unwrap(),
            AclUpdate::canned("public-read")
        );
        assert_eq!(
            parse_acl(b"public-read-write", false).unwrap(),
            AclUpdate::canned("public-read-write")
        );
        for bad in [
            &b"public-read-write"[..],
            b"everyone",
            b"",
            b"grant-write: id=\"x\"",
        ] {
            assert_eq!(
                parse_acl(bad, true).unwrap_err().errno(),
                Errno::EINVAL,
                "{bad:?}"
            );
        }
    }

    #[test]
    fn size_probe_and_range() {
        assert_eq!(sized_reply(b"abc".to_vec(), 0).unwrap(), Reply::Size(3));
        assert_eq!(
            sized_reply(b"abc".to_vec(), 3).unwrap(),
            Reply::Data(b"abc".to_vec())
        );
        assert_eq!(
            sized_reply(b"abc".to_vec(), 2).unwrap_err().errno(),
            Errno::ERANGE
        );
    }

    #[test]
    fn metadata_budget_counts_names_and_values() {
        let meta: BTreeMap<String, String> = [
            ("mode".to_string(), "33188".to_string()),
            ("a".into(), "xy".into()),
        ]
        .into();
        assert_eq!(metadata_size(&meta), 4 + 5 + 1 + 2);
    }
}
