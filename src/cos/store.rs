//! `ObjectStore`: the narrow, typed view of COS that the filesystem is written against.
//!
//! `fs/` only ever sees this trait, never HTTP or XML. [`crate::cos::Client`] implements it for
//! real COS (and cos-local); tests may implement it in memory.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::SystemTime;

use bytes::Bytes;

use super::acl::{AccessControlPolicy, AclHeaders, AclUpdate};
use super::error::{CosError, Result, ServiceError};

/// One object as a listing reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    /// Full key, already URL-decoded.
    pub key: String,
    pub size: u64,
    /// With its quotes stripped.
    pub etag: String,
    pub last_modified: SystemTime,
    /// `STANDARD` when COS omits it.
    pub storage_class: String,
}

/// One page of ListObjects (v1).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPage {
    pub prefix: String,
    pub objects: Vec<ListEntry>,
    /// Decoded common prefixes, each ending with the delimiter.
    pub common_prefixes: Vec<String>,
    pub is_truncated: bool,
    /// Where the next page starts (pass as `marker`); set whenever `is_truncated`.
    pub next_marker: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListParams {
    pub prefix: String,
    pub delimiter: Option<String>,
    pub marker: Option<String>,
    /// 1..=1000; `None` = COS default (1000).
    pub max_keys: Option<u32>,
}

/// What HEAD Object (or a GET's headers) tells about an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    pub key: String,
    pub size: u64,
    /// With its quotes stripped.
    pub etag: String,
    pub last_modified: SystemTime,
    /// `STANDARD` when COS omits `x-cos-storage-class`.
    pub storage_class: String,
    pub crc64: Option<u64>,
    pub content: ContentHeaders,
    /// `x-cos-meta-*` with the prefix removed and the name lower-cased.
    pub meta: BTreeMap<String, String>,
}

/// The standard headers COS stores with an object.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ContentHeaders {
    pub content_type: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
    pub expires: Option<String>,
}

/// Headers for PUT Object, Initiate Multipart Upload, and PUT Copy with `Replaced`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutOptions {
    pub content: ContentHeaders,
    /// Sent as `x-cos-meta-{name}`.
    pub meta: BTreeMap<String, String>,
    /// `x-cos-storage-class`; `None` = bucket default.
    pub storage_class: Option<String>,
    /// `x-cos-acl` and/or `x-cos-grant-*`; `None` = `default` (COS does not keep the ACL of
    /// the object replaced: a rewrite must send it again).
    pub acl: Option<AclHeaders>,
    /// Base64 of the body's MD5; when set COS answers BadDigest on a mismatch.
    pub content_md5: Option<String>,
}

/// What a write returned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PutResult {
    /// With its quotes stripped.
    pub etag: String,
    pub crc64: Option<u64>,
}

/// The bytes of a ranged GET and what the answer said about the object.
#[derive(Debug, Clone)]
pub struct RangeData {
    pub data: Bytes,
    /// The object's ETag at the time of the read (quotes stripped).
    pub etag: String,
    /// Total object size (from Content-Range, or Content-Length for a 200).
    pub object_size: u64,
}

/// The bytes of a ranged GET cut into pieces, slices of one buffer (see
/// [`ObjectStore::get_range_pieces`]).
#[derive(Debug, Clone)]
pub struct RangePieces {
    pub pieces: Vec<Bytes>,
    /// The one buffer the pieces are slices of, in order.
    pub whole: Bytes,
    /// The object's ETag at the time of the read (quotes stripped).
    pub etag: String,
    pub object_size: u64,
}

impl RangePieces {
    /// Cut one buffer into `piece`-byte slices (they share its allocation).
    pub fn slicing(range: RangeData, piece: u64) -> RangePieces {
        let piece = usize::try_from(piece.max(1)).unwrap_or(usize::MAX);
        let data = range.data;
        let pieces = (0..data.len().div_ceil(piece))
            .map(|i| data.slice(i * piece..((i + 1) * piece).min(data.len())))
            .collect();
        RangePieces {
            pieces,
            whole: data,
            etag: range.etag,
            object_size: range.object_size,
        }
    }

    pub fn len(&self) -> u64 {
        self.pieces.iter().map(|p| p.len() as u64).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

// A copy is rare next to the request it makes; boxing the options would only add noise.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MetadataDirective {
    /// Keep the source's metadata and content headers.
    Copy,
    /// Replace them with these.
    Replaced(PutOptions),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyParams {
    pub source_key: String,
    pub directive: MetadataDirective,
    /// COS does not carry the storage class over on copy; pass it explicitly.
    pub storage_class: Option<String>,
    /// Nor the ACL: `x-cos-acl` / `x-cos-grant-*` of the copy, with either directive (with
    /// `Replaced`, this wins over the options' `acl`). `None` = `default`.
    pub acl: Option<AclHeaders>,
    /// `x-cos-copy-source-If-Match`.
    pub source_if_match: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompletedPart {
    pub part_number: u32,
    /// With its quotes stripped; the client adds them back.
    pub etag: String,
}

/// What the bucket check at mount time learns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BucketInfo {
    pub region: Option<String>,
}

/// An ACL as GET `?acl` answers it, with the canned value when the answer names one.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclInfo {
    pub policy: AccessControlPolicy,
    /// The `x-cos-acl` response header. cos-local sends it; COS's documentation lists no such
    /// header, so without it the canned value has to be inferred from the grants.
    pub canned: Option<String>,
}

/// What a store without ACL support answers: 501 NotImplemented, as COS does for an
/// operation it does not offer.
pub fn acl_not_supported() -> CosError {
    CosError::Service(ServiceError {
        status: 501,
        code: "NotImplemented".into(),
        message: "this store keeps no ACLs".into(),
        ..Default::default()
    })
}

/// The operations a filesystem needs. Every method is one COS request (plus retries).
pub trait ObjectStore: Send + Sync + 'static {
    /// HEAD Bucket: Ok if it exists and is readable.
    fn head_bucket(&self) -> impl Future<Output = Result<BucketInfo>> + Send;

    /// GET Bucket (ListObjects v1), always with `encoding-type=url`, decoded back.
    fn list_objects(&self, params: &ListParams) -> impl Future<Output = Result<ListPage>> + Send;

    /// HEAD Object.
    fn head_object(&self, key: &str) -> impl Future<Output = Result<ObjectInfo>> + Send;

    /// GET Object with `Range: bytes=start-(start+len-1)`. With `if_match`, a changed object
    /// answers 412 PreconditionFailed instead of mixing versions.
    fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
        if_match: Option<&str>,
    ) -> impl Future<Output = Result<RangeData>> + Send;

    /// [`ObjectStore::get_range`] with the bytes cut into pieces of `piece` bytes (the last may
    /// be shorter), slices of one buffer (the block cache evicts them together).
    fn get_range_pieces(
        &self,
        key: &str,
        start: u64,
        len: u64,
        if_match: Option<&str>,
        piece: u64,
    ) -> impl Future<Output = Result<RangePieces>> + Send {
        async move {
            let range = self.get_range(key, start, len, if_match).await?;
            Ok(RangePieces::slicing(range, piece))
        }
    }

    /// PUT Object with the whole body.
    fn put_object(
        &self,
        key: &str,
        body: Bytes,
        opts: &PutOptions,
    ) -> impl Future<Output = Result<PutResult>> + Send;

    /// DELETE Object (204 also when it did not exist).
    fn delete_object(&self, key: &str) -> impl Future<Output = Result<()>> + Send;

    /// PUT Object - Copy within the bucket.
    fn copy_object(
        &self,
        dest_key: &str,
        params: &CopyParams,
    ) -> impl Future<Output = Result<PutResult>> + Send;

    /// Initiate Multipart Upload; returns the upload id.
    fn initiate_multipart(
        &self,
        key: &str,
        opts: &PutOptions,
    ) -> impl Future<Output = Result<String>> + Send;

    fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> impl Future<Output = Result<PutResult>> + Send;

    /// Upload Part - Copy of `source_key`, bytes `range` (inclusive) or the whole source.
    fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        source_key: &str,
        range: Option<(u64, u64)>,
    ) -> impl Future<Output = Result<PutResult>> + Send;

    /// Complete Multipart Upload (a 200 with an `<Error>` body is an error).
    fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> impl Future<Output = Result<PutResult>> + Send;

    fn abort_multipart(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<()>> + Send;

    /// The incomplete multipart uploads of exactly `key` (List Multipart Uploads with
    /// `prefix=key`), to find uploads whose Initiate answer was lost. Stores that cannot list
    /// uploads answer none.
    fn list_uploads_of(
        &self,
        key: &str,
    ) -> impl Future<Output = Result<Vec<crate::cos::multipart::UploadInfo>>> + Send {
        let _ = key;
        async { Ok(Vec::new()) }
    }

    /// Every part COS holds of upload `upload_id` of `key` (List Parts, all pages): what a
    /// resumed upload can reuse. Stores that cannot list parts answer none (every part is
    /// then sent again).
    fn list_parts_of(
        &self,
        key: &str,
        upload_id: &str,
    ) -> impl Future<Output = Result<Vec<crate::cos::multipart::PartInfo>>> + Send {
        let _ = (key, upload_id);
        async { Ok(Vec::new()) }
    }

    /// GET `?acl` of the object `key`, or of the bucket when `key` is `None`. Stores that
    /// keep no ACLs (the in-memory test store) answer 501 NotImplemented.
    fn get_acl(&self, key: Option<&str>) -> impl Future<Output = Result<AclInfo>> + Send {
        let _ = key;
        async { Err(acl_not_supported()) }
    }

    /// PUT `?acl` (replaces the whole ACL) of the object `key`, or of the bucket.
    fn put_acl(
        &self,
        key: Option<&str>,
        update: &AclUpdate,
    ) -> impl Future<Output = Result<()>> + Send {
        let _ = (key, update);
        async { Err(acl_not_supported()) }
    }
}
