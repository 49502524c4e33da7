//! `MemoryStore`: an in-memory [`ObjectStore`] for unit tests of the filesystem core.
//!
//! It emulates the COS rules a filesystem can trip over, so a test against it fails where real COS
//! would: 404 `NoSuchKey`/`NoSuchUpload`, 412 on a failed `If-Match`, 416 for a range past the end,
//! `EntityTooSmall` for a non-last part under 1 MiB at Complete, `InvalidPart`/`InvalidPartOrder`
//! for a bad part list, a copy onto itself that must use `Replaced`, a storage class that is *not*
//! inherited by a copy, and ListObjects paging (prefix, delimiter, marker, max-keys, `NextMarker`).
//!
//! Tests can also:
//! - count requests per operation ([`MemoryStore::requests`]), to assert what an fs op costs;
//! - make calls fail deterministically ([`MemoryStore::fail_next`]: "the next N calls of op X fail
//!   with this error", optionally after letting some calls through);
//! - add latency per op and read the peak number of calls in flight at once
//!   ([`MemoryStore::set_latency`], [`MemoryStore::peak_in_flight`]), to check concurrency bounds;
//! - read and plant objects directly ([`MemoryStore::get`], [`MemoryStore::insert`]).
//!
//! Everything lives in RAM: keep test objects small (limits such as the minimum part size and the
//! largest simple copy can be lowered for that).

// `CosError` is the trait's error type; boxing it here would only differ from the real client.
#![allow(clippy::result_large_err)]

use std::collections::{BTreeMap, HashMap};
use std::ops::Bound;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime};

use bytes::{Bytes, BytesMut};
use cos_protocol::limits;
use md5::{Digest, Md5};

use super::acl::{
    AccessControlPolicy, AclHeaders, AclUpdate, Grant, GrantHeaders, Grantee, ALL_USERS_URI,
    GRANT_HEADERS,
};
use super::crc64;
use super::error::{CosError, Result, ServiceError};
use super::store::{
    acl_not_supported, AclInfo, BucketInfo, CompletedPart, ContentHeaders, CopyParams, ListEntry,
    ListPage, ListParams, MetadataDirective, ObjectInfo, ObjectStore, PutOptions, PutResult,
    RangeData,
};

/// COS refuses a non-last part smaller than this at Complete (cos-protocol.md §6).
pub const COS_MIN_PART_SIZE: u64 = limits::MIN_PART_SIZE;
/// COS recommends multipart copy above this size for PUT Copy (cos-protocol.md §5.1).
pub const COS_MAX_SIMPLE_COPY: u64 = limits::MAX_PUT_OBJECT_BYTES;
/// Part numbers run 1..=10000 (cos-protocol.md §6).
pub const COS_MAX_PART_NUMBER: u32 = limits::MAX_PARTS;
/// Longest key COS accepts, in bytes (cos-protocol.md §11).
pub const COS_MAX_KEY_LEN: usize = limits::MAX_KEY_BYTES;
/// ListObjects answers at most this many entries per page.
const MAX_LIST_KEYS: u32 = limits::MAX_LIST_KEYS;

/// One kind of [`ObjectStore`] call, for counters, latency and failure injection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum StoreOp {
    HeadBucket,
    ListObjects,
    HeadObject,
    GetRange,
    PutObject,
    DeleteObject,
    CopyObject,
    InitiateMultipart,
    UploadPart,
    UploadPartCopy,
    CompleteMultipart,
    AbortMultipart,
    GetAcl,
    PutAcl,
}

impl StoreOp {
    pub const ALL: [StoreOp; 14] = [
        StoreOp::HeadBucket,
        StoreOp::ListObjects,
        StoreOp::HeadObject,
        StoreOp::GetRange,
        StoreOp::PutObject,
        StoreOp::DeleteObject,
        StoreOp::CopyObject,
        StoreOp::InitiateMultipart,
        StoreOp::UploadPart,
        StoreOp::UploadPartCopy,
        StoreOp::CompleteMultipart,
        StoreOp::AbortMultipart,
        StoreOp::GetAcl,
        StoreOp::PutAcl,
    ];

    fn index(self) -> usize {
        self as usize
    }
}

/// An object as the store keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredObject {
    pub data: Bytes,
    /// Without quotes.
    pub etag: String,
    pub crc64: u64,
    pub last_modified: SystemTime,
    pub storage_class: String,
    pub content: ContentHeaders,
    pub meta: BTreeMap<String, String>,
    /// The ACL headers the write that made this object sent (`None`: `default`). Like COS,
    /// a PUT, Complete or copy that sends none leaves the new object `default`.
    pub acl: Option<AclHeaders>,
}

impl StoredObject {
    /// A fresh object as a simple PUT with `opts` would store it.
    fn new(data: Bytes, opts: &PutOptions) -> Self {
        StoredObject {
            etag: md5_hex(&data),
            crc64: crc64::checksum(&data),
            last_modified: SystemTime::now(),
            storage_class: storage_class_or_standard(opts.storage_class.as_deref()),
            content: opts.content.clone(),
            meta: lowercase_meta(&opts.meta),
            acl: opts.acl.clone().filter(|a| !a.is_default()),
            data,
        }
    }

    fn info(&self, key: &str) -> ObjectInfo {
        ObjectInfo {
            key: key.to_string(),
            size: self.data.len() as u64,
            etag: self.etag.clone(),
            last_modified: self.last_modified,
            storage_class: self.storage_class.clone(),
            crc64: Some(self.crc64),
            content: self.content.clone(),
            meta: self.meta.clone(),
        }
    }
}

#[derive(Debug)]
struct PendingPart {
    data: Bytes,
    etag: String,
    crc64: u64,
}

#[derive(Debug)]
struct PendingUpload {
    key: String,
    opts: PutOptions,
    parts: BTreeMap<u32, PendingPart>,
}

type ErrorFactory = Arc<dyn Fn() -> CosError + Send + Sync>;

struct Fault {
    op: StoreOp,
    /// Calls of `op` still let through before failures start.
    skip: u64,
    /// Calls of `op` still to fail.
    remaining: u64,
    make: ErrorFactory,
}

#[derive(Default)]
struct State {
    objects: BTreeMap<String, StoredObject>,
    uploads: HashMap<String, PendingUpload>,
    faults: Vec<Fault>,
    /// Per op: how many more answers report a wrong CRC-64.
    corrupt_crc: HashMap<StoreOp, u64>,
    latency: HashMap<StoreOp, Duration>,
    /// The bucket's ACL, once PUT `?acl` set one (`private` until then).
    bucket_acl: Option<AclHeaders>,
}

/// An in-memory bucket implementing [`ObjectStore`]. Cheap to share behind an `Arc`.
pub struct MemoryStore {
    state: Mutex<State>,
    requests: [AtomicU64; StoreOp::ALL.len()],
    in_flight: [AtomicU64; StoreOp::ALL.len()],
    peak_in_flight: [AtomicU64; StoreOp::ALL.len()],
    /// Bytes answered by ranged GETs.
    range_bytes: AtomicU64,
    next_id: AtomicU64,
    min_part_size: AtomicU64,
    max_simple_copy: AtomicU64,
    /// GET/PUT `?acl` answer (instead of 501 NotImplemented) once [`MemoryStore::enable_acls`].
    acls: AtomicBool,
    /// GET `?acl` answers carry `x-cos-acl` (as cos-local's do; COS documents no such header).
    acl_header: AtomicBool,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl std::fmt::Debug for MemoryStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MemoryStore")
            .field("objects", &self.lock().objects.len())
            .finish_non_exhaustive()
    }
}

/// Decrements the in-flight gauge of an op when the call ends (also on early return).
struct InFlight<'a>(&'a AtomicU64);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

impl MemoryStore {
    /// An empty bucket with COS's limits.
    pub fn new() -> Self {
        MemoryStore {
            state: Mutex::new(State::default()),
            requests: Default::default(),
            in_flight: Default::default(),
            peak_in_flight: Default::default(),
            range_bytes: AtomicU64::new(0),
            next_id: AtomicU64::new(1),
            min_part_size: AtomicU64::new(COS_MIN_PART_SIZE),
            max_simple_copy: AtomicU64::new(COS_MAX_SIMPLE_COPY),
            acls: AtomicBool::new(false),
            acl_header: AtomicBool::new(true),
        }
    }

    /// Whether GET `?acl` answers name the canned ACL in `x-cos-acl` (default yes). Without
    /// it, `private` and `default` answer alike, as COS documents its answers.
    pub fn set_acl_header(&self, on: bool) {
        self.acl_header.store(on, Ordering::SeqCst);
    }

    /// Answer GET/PUT `?acl` of objects as COS does (by default the store keeps no ACLs and
    /// answers 501 NotImplemented, like a store without the feature).
    pub fn enable_acls(&self) {
        self.acls.store(true, Ordering::SeqCst);
    }

    /// Lower (or raise) the smallest non-last part Complete accepts, so tests can use small parts.
    pub fn set_min_part_size(&self, bytes: u64) {
        self.min_part_size.store(bytes, Ordering::SeqCst);
    }

    /// Largest source PUT Copy accepts (`EntityTooLarge` above), so tests can exercise the
    /// multipart-copy path without gigabytes of RAM.
    pub fn set_max_simple_copy(&self, bytes: u64) {
        self.max_simple_copy.store(bytes, Ordering::SeqCst);
    }

    /// Requests made for `op` so far (failed ones included, as they would be on the wire).
    pub fn requests(&self, op: StoreOp) -> u64 {
        self.requests[op.index()].load(Ordering::SeqCst)
    }

    /// Requests made so far, all ops together.
    pub fn total_requests(&self) -> u64 {
        StoreOp::ALL.iter().map(|op| self.requests(*op)).sum()
    }

    /// Non-zero request counters, for assertion messages.
    pub fn request_counts(&self) -> BTreeMap<StoreOp, u64> {
        StoreOp::ALL
            .iter()
            .map(|op| (*op, self.requests(*op)))
            .filter(|(_, n)| *n > 0)
            .collect()
    }

    /// Zero every request counter and peak gauge.
    pub fn reset_requests(&self) {
        for i in 0..StoreOp::ALL.len() {
            self.requests[i].store(0, Ordering::SeqCst);
            self.peak_in_flight[i].store(0, Ordering::SeqCst);
        }
        self.range_bytes.store(0, Ordering::SeqCst);
    }

    /// Bytes the ranged GETs answered since the counters were last reset.
    pub fn range_bytes(&self) -> u64 {
        self.range_bytes.load(Ordering::SeqCst)
    }

    /// The most calls of `op` that were running at the same time (meaningful with latency set).
    pub fn peak_in_flight(&self, op: StoreOp) -> u64 {
        self.peak_in_flight[op.index()].load(Ordering::SeqCst)
    }

    /// Every call of `op` sleeps this long before answering.
    pub fn set_latency(&self, op: StoreOp, latency: Duration) {
        self.lock().latency.insert(op, latency);
    }

    /// The next `times` calls of `op` fail with the error `make` builds.
    pub fn fail_next(
        &self,
        op: StoreOp,
        times: u64,
        make: impl Fn() -> CosError + Send + Sync + 'static,
    ) {
        self.fail_after(op, 0, times, make);
    }

    /// Let `skip` calls of `op` through, then fail the `times` after them.
    pub fn fail_after(
        &self,
        op: StoreOp,
        skip: u64,
        times: u64,
        make: impl Fn() -> CosError + Send + Sync + 'static,
    ) {
        self.lock().faults.push(Fault {
            op,
            skip,
            remaining: times,
            make: Arc::new(make),
        });
    }

    /// The next `times` successful calls of `op` report a wrong CRC-64 (the data is stored
    /// intact), to test that callers check what COS says it stored.
    pub fn corrupt_next_crc(&self, op: StoreOp, times: u64) {
        self.lock().corrupt_crc.insert(op, times);
    }

    /// Apply a pending CRC corruption for `op` to an answer.
    fn report(&self, op: StoreOp, mut result: PutResult) -> PutResult {
        let mut state = self.lock();
        if let Some(left) = state.corrupt_crc.get_mut(&op).filter(|n| **n > 0) {
            *left -= 1;
            result.crc64 = result.crc64.map(|c| c ^ 0xDEAD_BEEF);
        }
        result
    }

    /// Drop every pending injected failure.
    pub fn clear_faults(&self) {
        self.lock().faults.clear();
    }

    /// A COS-style service error, as tests want to inject them (`503 SlowDown`, `500 InternalError`...).
    pub fn service_error(status: u16, code: &str) -> CosError {
        CosError::Service(ServiceError {
            status,
            code: code.to_string(),
            message: format!("injected {code}"),
            request_id: Some("memory-injected".to_string()),
            ..Default::default()
        })
    }

    /// Plant an object as a simple PUT with `opts` would (no request counted).
    pub fn insert(&self, key: &str, data: impl Into<Bytes>, opts: &PutOptions) -> PutResult {
        let obj = StoredObject::new(data.into(), opts);
        let result = PutResult {
            etag: obj.etag.clone(),
            crc64: Some(obj.crc64),
        };
        self.lock().objects.insert(key.to_string(), obj);
        result
    }

    /// The body of `key`, if it exists (no request counted).
    pub fn get(&self, key: &str) -> Option<Bytes> {
        self.lock().objects.get(key).map(|o| o.data.clone())
    }

    /// The whole stored object, if it exists (no request counted).
    pub fn object(&self, key: &str) -> Option<StoredObject> {
        self.lock().objects.get(key).cloned()
    }

    /// Every key, in order (no request counted).
    pub fn keys(&self) -> Vec<String> {
        self.lock().objects.keys().cloned().collect()
    }

    /// Keys of multipart uploads initiated and neither completed nor aborted.
    pub fn pending_uploads(&self) -> Vec<String> {
        let mut keys: Vec<String> = self
            .lock()
            .uploads
            .values()
            .map(|u| u.key.clone())
            .collect();
        keys.sort();
        keys
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A test that panicked while holding the lock must not hide the real failure behind a
        // poison error in every later call.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Count the call, apply latency and injected failures. The returned guard keeps the call
    /// counted as in flight.
    async fn begin(&self, op: StoreOp) -> Result<InFlight<'_>> {
        let i = op.index();
        self.requests[i].fetch_add(1, Ordering::SeqCst);
        let now = self.in_flight[i].fetch_add(1, Ordering::SeqCst) + 1;
        self.peak_in_flight[i].fetch_max(now, Ordering::SeqCst);
        let guard = InFlight(&self.in_flight[i]);
        let latency = self.lock().latency.get(&op).copied();
        if let Some(latency) = latency {
            tokio::time::sleep(latency).await;
        }
        let injected = {
            let mut state = self.lock();
            let mut make = None;
            for fault in state.faults.iter_mut().filter(|f| f.op == op) {
                if fault.skip > 0 {
                    fault.skip -= 1;
                } else if fault.remaining > 0 {
                    fault.remaining -= 1;
                    make = Some(fault.make.clone());
                    break;
                }
            }
            state.faults.retain(|f| f.remaining > 0);
            make
        };
        match injected {
            Some(make) => Err(make()),
            None => Ok(guard),
        }
    }

    fn request_id(&self) -> String {
        format!("memory-{}", self.next_id.fetch_add(1, Ordering::SeqCst))
    }

    fn error(&self, status: u16, code: &str, message: &str) -> CosError {
        CosError::Service(ServiceError {
            status,
            code: code.to_string(),
            message: message.to_string(),
            request_id: Some(self.request_id()),
            ..Default::default()
        })
    }

    fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() || key.starts_with('/') {
            return Err(self.error(400, "InvalidObjectName", "invalid object name"));
        }
        if key.len() > COS_MAX_KEY_LEN {
            return Err(self.error(400, "KeyTooLong", "the key is longer than 850 bytes"));
        }
        Ok(())
    }

    fn no_such_key(&self) -> CosError {
        self.error(404, "NoSuchKey", "The specified key does not exist.")
    }

    fn no_such_upload(&self) -> CosError {
        self.error(404, "NoSuchUpload", "The specified upload does not exist.")
    }

    fn list(&self, params: &ListParams) -> Result<ListPage> {
        let max_keys = params.max_keys.unwrap_or(MAX_LIST_KEYS);
        if max_keys == 0 || max_keys > MAX_LIST_KEYS {
            return Err(self.error(400, "InvalidArgument", "max-keys must be 1..1000"));
        }
        let delimiter = params.delimiter.as_deref().filter(|d| !d.is_empty());
        let marker = params.marker.clone().unwrap_or_default();
        let state = self.lock();
        let mut page = ListPage {
            prefix: params.prefix.clone(),
            ..Default::default()
        };
        let mut emitted = 0u32;
        let mut last_emitted: Option<String> = None;
        // Keys sharing a prefix are contiguous in byte order: start at the later of prefix and
        // marker, stop at the first key without the prefix.
        let start = if marker.as_str() >= params.prefix.as_str() {
            Bound::Excluded(marker.as_str())
        } else {
            Bound::Included(params.prefix.as_str())
        };
        for (key, obj) in state.objects.range::<str, _>((start, Bound::Unbounded)) {
            if !key.starts_with(params.prefix.as_str()) {
                break;
            }
            let rest = &key[params.prefix.len()..];
            let common = delimiter.and_then(|d| {
                rest.find(d)
                    .map(|i| format!("{}{}", params.prefix, &rest[..i + d.len()]))
            });
            if let Some(cp) = &common {
                // The marker may itself be a common prefix: its keys were already reported.
                if cp.as_str() <= marker.as_str() || page.common_prefixes.last() == Some(cp) {
                    continue;
                }
            }
            if emitted == max_keys {
                page.is_truncated = true;
                page.next_marker = last_emitted;
                return Ok(page);
            }
            emitted += 1;
            match common {
                Some(cp) => {
                    last_emitted = Some(cp.clone());
                    page.common_prefixes.push(cp);
                }
                None => {
                    last_emitted = Some(key.clone());
                    page.objects.push(ListEntry {
                        key: key.clone(),
                        size: obj.data.len() as u64,
                        etag: obj.etag.clone(),
                        last_modified: obj.last_modified,
                        storage_class: obj.storage_class.clone(),
                    });
                }
            }
        }
        Ok(page)
    }
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(Md5::digest(data))
}

fn storage_class_or_standard(class: Option<&str>) -> String {
    class.unwrap_or("STANDARD").to_ascii_uppercase()
}

/// COS lower-cases header names, hence user metadata names.
fn lowercase_meta(meta: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    meta.iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.clone()))
        .collect()
}

impl ObjectStore for MemoryStore {
    async fn head_bucket(&self) -> Result<BucketInfo> {
        let _call = self.begin(StoreOp::HeadBucket).await?;
        Ok(BucketInfo {
            region: Some("memory".to_string()),
        })
    }

    async fn list_objects(&self, params: &ListParams) -> Result<ListPage> {
        let _call = self.begin(StoreOp::ListObjects).await?;
        self.list(params)
    }

    async fn head_object(&self, key: &str) -> Result<ObjectInfo> {
        let _call = self.begin(StoreOp::HeadObject).await?;
        let state = self.lock();
        match state.objects.get(key) {
            Some(obj) => Ok(obj.info(key)),
            None => Err(self.no_such_key()),
        }
    }

    async fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
        if_match: Option<&str>,
    ) -> Result<RangeData> {
        let _call = self.begin(StoreOp::GetRange).await?;
        let state = self.lock();
        let obj = state.objects.get(key).ok_or_else(|| self.no_such_key())?;
        if let Some(expected) = if_match {
            if expected.trim_matches('"') != obj.etag {
                return Err(self.error(412, "PreconditionFailed", "If-Match failed"));
            }
        }
        let size = obj.data.len() as u64;
        if len == 0 {
            return Err(self.error(400, "InvalidArgument", "empty range"));
        }
        if start >= size {
            return Err(self.error(
                416,
                "InvalidRange",
                "The requested range is not satisfiable",
            ));
        }
        let end = start.saturating_add(len).min(size);
        self.range_bytes.fetch_add(end - start, Ordering::SeqCst);
        Ok(RangeData {
            data: obj.data.slice(start as usize..end as usize),
            etag: obj.etag.clone(),
            object_size: size,
        })
    }

    async fn put_object(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<PutResult> {
        let _call = self.begin(StoreOp::PutObject).await?;
        self.check_key(key)?;
        if let Some(md5) = &opts.content_md5 {
            use base64::Engine;
            let actual = base64::engine::general_purpose::STANDARD.encode(Md5::digest(&body));
            if &actual != md5 {
                return Err(self.error(400, "BadDigest", "Content-MD5 does not match the body"));
            }
        }
        let obj = StoredObject::new(body, opts);
        let result = PutResult {
            etag: obj.etag.clone(),
            crc64: Some(obj.crc64),
        };
        self.lock().objects.insert(key.to_string(), obj);
        Ok(self.report(StoreOp::PutObject, result))
    }

    async fn delete_object(&self, key: &str) -> Result<()> {
        let _call = self.begin(StoreOp::DeleteObject).await?;
        self.lock().objects.remove(key);
        Ok(())
    }

    async fn copy_object(&self, dest_key: &str, params: &CopyParams) -> Result<PutResult> {
        let _call = self.begin(StoreOp::CopyObject).await?;
        self.check_key(dest_key)?;
        let mut state = self.lock();
        let source = state
            .objects
            .get(&params.source_key)
            .ok_or_else(|| self.no_such_key())?;
        if let Some(expected) = &params.source_if_match {
            if expected.trim_matches('"') != source.etag {
                return Err(self.error(412, "PreconditionFailed", "copy source If-Match failed"));
            }
        }
        if source.data.len() as u64 > self.max_simple_copy.load(Ordering::SeqCst) {
            return Err(self.error(
                400,
                "EntityTooLarge",
                "source too large for PUT Copy; use Upload Part Copy",
            ));
        }
        let mut copy = source.clone();
        match &params.directive {
            MetadataDirective::Copy => {
                if params.source_key == dest_key {
                    return Err(self.error(
                        400,
                        "InvalidRequest",
                        "copying an object onto itself requires x-cos-metadata-directive: Replaced",
                    ));
                }
            }
            MetadataDirective::Replaced(opts) => {
                copy.content = opts.content.clone();
                copy.meta = lowercase_meta(&opts.meta);
            }
        }
        // Nor the ACL: the copy is `default` unless the request sets one.
        copy.acl = params
            .acl
            .clone()
            .or_else(|| match &params.directive {
                MetadataDirective::Replaced(opts) => opts.acl.clone(),
                MetadataDirective::Copy => None,
            })
            .filter(|a| !a.is_default());
        // COS does not inherit the storage class on copy.
        copy.storage_class = storage_class_or_standard(params.storage_class.as_deref());
        copy.last_modified = SystemTime::now();
        let result = PutResult {
            etag: copy.etag.clone(),
            crc64: Some(copy.crc64),
        };
        state.objects.insert(dest_key.to_string(), copy);
        drop(state);
        Ok(self.report(StoreOp::CopyObject, result))
    }

    async fn initiate_multipart(&self, key: &str, opts: &PutOptions) -> Result<String> {
        let _call = self.begin(StoreOp::InitiateMultipart).await?;
        self.check_key(key)?;
        let id = format!("upload-{}", self.next_id.fetch_add(1, Ordering::SeqCst));
        self.lock().uploads.insert(
            id.clone(),
            PendingUpload {
                key: key.to_string(),
                opts: opts.clone(),
                parts: BTreeMap::new(),
            },
        );
        Ok(id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<PutResult> {
        let _call = self.begin(StoreOp::UploadPart).await?;
        let result = self.store_part(key, upload_id, part_number, body)?;
        Ok(self.report(StoreOp::UploadPart, result))
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        source_key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<PutResult> {
        let _call = self.begin(StoreOp::UploadPartCopy).await?;
        let data = {
            let state = self.lock();
            let source = state
                .objects
                .get(source_key)
                .ok_or_else(|| self.no_such_key())?;
            match range {
                None => source.data.clone(),
                Some((first, last)) => {
                    if first > last || last >= source.data.len() as u64 {
                        return Err(self.error(
                            400,
                            "InvalidArgument",
                            "x-cos-copy-source-range outside the source object",
                        ));
                    }
                    source.data.slice(first as usize..last as usize + 1)
                }
            }
        };
        let result = self.store_part(key, upload_id, part_number, data)?;
        Ok(self.report(StoreOp::UploadPartCopy, result))
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<PutResult> {
        let _call = self.begin(StoreOp::CompleteMultipart).await?;
        let mut state = self.lock();
        let upload = match state.uploads.get(upload_id) {
            Some(u) if u.key == key => u,
            _ => return Err(self.no_such_upload()),
        };
        if parts.is_empty() {
            return Err(self.error(400, "MalformedXML", "no parts in CompleteMultipartUpload"));
        }
        let min_part = self.min_part_size.load(Ordering::SeqCst);
        let mut body = BytesMut::new();
        let mut md5_concat = Vec::with_capacity(parts.len() * 16);
        let mut crc = 0u64;
        for (i, part) in parts.iter().enumerate() {
            if i > 0 && part.part_number <= parts[i - 1].part_number {
                return Err(self.error(400, "InvalidPartOrder", "parts must be ascending"));
            }
            // COS documents the part list as continuous from 1.
            if part.part_number as usize != i + 1 {
                return Err(self.error(400, "InvalidPart", "part numbers are not continuous"));
            }
            let stored = upload
                .parts
                .get(&part.part_number)
                .filter(|p| p.etag == part.etag.trim_matches('"'))
                .ok_or_else(|| self.error(400, "InvalidPart", "unknown part or ETag mismatch"))?;
            let is_last = i + 1 == parts.len();
            if !is_last && (stored.data.len() as u64) < min_part {
                return Err(self.error(400, "EntityTooSmall", "a non-last part is under 1 MB"));
            }
            let part_md5 = hex::decode(&stored.etag).unwrap_or_default();
            md5_concat.extend_from_slice(&part_md5);
            crc = crc64::combine(crc, stored.crc64, stored.data.len() as u64);
            body.extend_from_slice(&stored.data);
        }
        let obj = StoredObject {
            data: body.freeze(),
            etag: format!("{}-{}", md5_hex(&md5_concat), parts.len()),
            crc64: crc,
            last_modified: SystemTime::now(),
            storage_class: storage_class_or_standard(upload.opts.storage_class.as_deref()),
            content: upload.opts.content.clone(),
            meta: lowercase_meta(&upload.opts.meta),
            acl: upload.opts.acl.clone().filter(|a| !a.is_default()),
        };
        let result = PutResult {
            etag: obj.etag.clone(),
            crc64: Some(obj.crc64),
        };
        state.uploads.remove(upload_id);
        state.objects.insert(key.to_string(), obj);
        drop(state);
        Ok(self.report(StoreOp::CompleteMultipart, result))
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        let _call = self.begin(StoreOp::AbortMultipart).await?;
        let mut state = self.lock();
        match state.uploads.get(upload_id) {
            Some(u) if u.key == key => {
                state.uploads.remove(upload_id);
                Ok(())
            }
            _ => Err(self.no_such_upload()),
        }
    }

    async fn list_parts_of(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<crate::cos::multipart::PartInfo>> {
        let state = self.lock();
        match state.uploads.get(upload_id) {
            Some(u) if u.key == key => Ok(u
                .parts
                .iter()
                .map(|(n, p)| crate::cos::multipart::PartInfo {
                    part_number: *n,
                    etag: p.etag.clone(),
                    size: p.data.len() as u64,
                    last_modified: None,
                })
                .collect()),
            _ => Err(self.no_such_upload()),
        }
    }

    async fn get_acl(&self, key: Option<&str>) -> Result<AclInfo> {
        let _call = self.begin(StoreOp::GetAcl).await?;
        if !self.acls.load(Ordering::SeqCst) {
            return Err(acl_not_supported());
        }
        let state = self.lock();
        let mut info = match key {
            None => acl_info(Some(
                state
                    .bucket_acl
                    .as_ref()
                    .unwrap_or(&AclHeaders::canned("private")),
            )),
            Some(key) => {
                let obj = state.objects.get(key).ok_or_else(|| self.no_such_key())?;
                acl_info(obj.acl.as_ref())
            }
        };
        if !self.acl_header.load(Ordering::SeqCst) {
            info.canned = None;
        }
        Ok(info)
    }

    async fn put_acl(&self, key: Option<&str>, update: &AclUpdate) -> Result<()> {
        let _call = self.begin(StoreOp::PutAcl).await?;
        if !self.acls.load(Ordering::SeqCst) {
            return Err(acl_not_supported());
        }
        let acl = match update {
            AclUpdate::Headers { canned, grants } => AclHeaders {
                canned: canned.clone(),
                grants: grants.clone(),
            },
            AclUpdate::Policy(p) => AclHeaders {
                canned: None,
                grants: GrantHeaders::from_grants(&p.grants),
            },
        };
        let mut state = self.lock();
        let Some(key) = key else {
            state.bucket_acl = Some(acl);
            return Ok(());
        };
        let obj = state
            .objects
            .get_mut(key)
            .ok_or_else(|| self.no_such_key())?;
        obj.acl = Some(acl).filter(|a| !a.is_default());
        Ok(())
    }
}

/// The owner every ACL answer of the memory store names.
pub const MEMORY_OWNER: &str = "qcs::cam::uin/1:uin/1";

/// A GET `?acl` answer for stored ACL headers, rendered as cos-local does: the owner's
/// FULL_CONTROL, the canned ACL's group grant, the explicit grants; `x-cos-acl` names the
/// canned part (`default` when none).
fn acl_info(acl: Option<&AclHeaders>) -> AclInfo {
    let mut grants = vec![Grant {
        grantee: Grantee::CanonicalUser {
            id: MEMORY_OWNER.into(),
            display_name: None,
        },
        permission: "FULL_CONTROL".into(),
    }];
    let canned = acl.and_then(|a| a.canned.clone());
    if matches!(canned.as_deref(), Some("public-read" | "public-read-write")) {
        grants.push(Grant {
            grantee: Grantee::Group {
                uri: ALL_USERS_URI.into(),
            },
            permission: "READ".into(),
        });
    }
    if let Some(acl) = acl {
        let values = [
            &acl.grants.read,
            &acl.grants.write,
            &acl.grants.read_acp,
            &acl.grants.write_acp,
            &acl.grants.full_control,
        ];
        for ((_, permission), value) in GRANT_HEADERS.iter().zip(values) {
            for item in value.iter().flat_map(|v| v.split(',')) {
                let Some((kind, who)) = item.trim().split_once('=') else {
                    continue;
                };
                let who = who.trim().trim_matches('"').to_string();
                let grantee = match kind.trim() {
                    "uri" => Grantee::Group { uri: who },
                    _ => Grantee::CanonicalUser {
                        id: who,
                        display_name: None,
                    },
                };
                let grant = Grant {
                    grantee,
                    permission: permission.to_string(),
                };
                if !grants.contains(&grant) {
                    grants.push(grant);
                }
            }
        }
    }
    AclInfo {
        policy: AccessControlPolicy {
            owner_id: MEMORY_OWNER.into(),
            owner_display_name: None,
            grants,
        },
        canned: Some(canned.unwrap_or_else(|| "default".into())),
    }
}

impl MemoryStore {
    fn store_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        data: Bytes,
    ) -> Result<PutResult> {
        if !(1..=COS_MAX_PART_NUMBER).contains(&part_number) {
            return Err(self.error(400, "InvalidArgument", "partNumber must be 1..10000"));
        }
        let mut state = self.lock();
        let upload = match state.uploads.get_mut(upload_id) {
            Some(u) if u.key == key => u,
            _ => return Err(self.no_such_upload()),
        };
        let part = PendingPart {
            etag: md5_hex(&data),
            crc64: crc64::checksum(&data),
            data,
        };
        let result = PutResult {
            etag: part.etag.clone(),
            crc64: Some(part.crc64),
        };
        upload.parts.insert(part_number, part);
        Ok(result)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store() -> MemoryStore {
        MemoryStore::new()
    }

    fn list(prefix: &str, delimiter: Option<&str>, marker: Option<&str>, max: u32) -> ListParams {
        ListParams {
            prefix: prefix.to_string(),
            delimiter: delimiter.map(str::to_string),
            marker: marker.map(str::to_string),
            max_keys: Some(max),
        }
    }

    #[tokio::test]
    async fn put_get_head_delete_round_trip() {
        let s = store();
        let put = s
            .put_object(
                "a/b.txt",
                Bytes::from_static(b"hello"),
                &PutOptions::default(),
            )
            .await
            .unwrap();
        assert_eq!(put.etag, "5d41402abc4b2a76b9719d911017c592");
        assert_eq!(put.crc64, Some(crc64::checksum(b"hello")));
        let range = s.get_range("a/b.txt", 1, 3, None).await.unwrap();
        assert_eq!(&range.data[..], b"ell");
        assert_eq!(range.object_size, 5);
        let info = s.head_object("a/b.txt").await.unwrap();
        assert_eq!((info.size, info.storage_class.as_str()), (5, "STANDARD"));
        s.delete_object("a/b.txt").await.unwrap();
        let err = s.head_object("a/b.txt").await.unwrap_err();
        assert_eq!(err.code(), Some("NoSuchKey"));
        assert_eq!(s.requests(StoreOp::HeadObject), 2);
        assert_eq!(s.requests(StoreOp::PutObject), 1);
    }

    #[tokio::test]
    async fn ranges_follow_cos_rules() {
        let s = store();
        s.insert("k", &b"0123456789"[..], &PutOptions::default());
        // A range running past the end is clamped; one starting past it is 416.
        assert_eq!(
            &s.get_range("k", 8, 100, None).await.unwrap().data[..],
            b"89"
        );
        assert_eq!(
            s.get_range("k", 10, 1, None).await.unwrap_err().status(),
            Some(416)
        );
        let err = s.get_range("k", 0, 1, Some("\"nope\"")).await.unwrap_err();
        assert_eq!(err.code(), Some("PreconditionFailed"));
        let etag = s.object("k").unwrap().etag;
        assert!(s.get_range("k", 0, 1, Some(&etag)).await.is_ok());
    }

    #[tokio::test]
    async fn listing_with_delimiter_pages_like_cos() {
        let s = store();
        for key in ["d/", "d/a", "d/b/1", "d/b/2", "d/c", "d/e/x", "e"] {
            s.insert(key, Bytes::new(), &PutOptions::default());
        }
        let page = s
            .list_objects(&list("d/", Some("/"), None, 1000))
            .await
            .unwrap();
        let keys: Vec<_> = page.objects.iter().map(|o| o.key.as_str()).collect();
        assert_eq!(keys, ["d/", "d/a", "d/c"]);
        assert_eq!(page.common_prefixes, ["d/b/", "d/e/"]);
        assert!(!page.is_truncated);

        // Page by two: entries and common prefixes both count toward max-keys.
        let mut seen = Vec::new();
        let mut marker = None;
        loop {
            let page = s
                .list_objects(&list("d/", Some("/"), marker.as_deref(), 2))
                .await
                .unwrap();
            seen.extend(page.objects.iter().map(|o| o.key.clone()));
            seen.extend(page.common_prefixes.iter().cloned());
            if !page.is_truncated {
                break;
            }
            marker = page.next_marker.clone();
            assert!(marker.is_some());
        }
        seen.sort();
        assert_eq!(seen, ["d/", "d/a", "d/b/", "d/c", "d/e/"]);

        let flat = s.list_objects(&list("d/", None, None, 1000)).await.unwrap();
        assert_eq!(flat.objects.len(), 6);
        assert!(flat.common_prefixes.is_empty());
    }

    #[tokio::test]
    async fn multipart_enforces_part_rules_and_combines_crc() {
        let s = store();
        s.set_min_part_size(4);
        let id = s
            .initiate_multipart("big", &PutOptions::default())
            .await
            .unwrap();
        let p1 = s
            .upload_part("big", &id, 1, Bytes::from_static(b"abc"))
            .await
            .unwrap();
        let p2 = s
            .upload_part("big", &id, 2, Bytes::from_static(b"defg"))
            .await
            .unwrap();
        let parts = |a: &PutResult, b: &PutResult| {
            vec![
                CompletedPart {
                    part_number: 1,
                    etag: a.etag.clone(),
                },
                CompletedPart {
                    part_number: 2,
                    etag: b.etag.clone(),
                },
            ]
        };
        let err = s
            .complete_multipart("big", &id, &parts(&p1, &p2))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("EntityTooSmall"));
        let p1 = s
            .upload_part("big", &id, 1, Bytes::from_static(b"abcd"))
            .await
            .unwrap();
        let done = s
            .complete_multipart("big", &id, &parts(&p1, &p2))
            .await
            .unwrap();
        assert!(done.etag.ends_with("-2"));
        assert_eq!(done.crc64, Some(crc64::checksum(b"abcddefg")));
        assert_eq!(&s.get("big").unwrap()[..], b"abcddefg");
        assert!(s.pending_uploads().is_empty());
        let err = s.abort_multipart("big", &id).await.unwrap_err();
        assert_eq!(err.code(), Some("NoSuchUpload"));
    }

    #[tokio::test]
    async fn part_copy_takes_a_range_of_the_source() {
        let s = store();
        s.set_min_part_size(1);
        s.insert("src", &b"0123456789"[..], &PutOptions::default());
        let id = s
            .initiate_multipart("dst", &PutOptions::default())
            .await
            .unwrap();
        let p1 = s
            .upload_part_copy("dst", &id, 1, "src", Some((2, 4)))
            .await
            .unwrap();
        let p2 = s
            .upload_part("dst", &id, 2, Bytes::from_static(b"xy"))
            .await
            .unwrap();
        let parts = [
            CompletedPart {
                part_number: 1,
                etag: p1.etag,
            },
            CompletedPart {
                part_number: 2,
                etag: p2.etag,
            },
        ];
        s.complete_multipart("dst", &id, &parts).await.unwrap();
        assert_eq!(&s.get("dst").unwrap()[..], b"234xy");
        let err = s
            .upload_part_copy("dst", "upload-x", 1, "src", None)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some("NoSuchUpload"));
    }

    #[tokio::test]
    async fn copy_does_not_inherit_storage_class_and_self_copy_needs_replaced() {
        let s = store();
        let opts = PutOptions {
            storage_class: Some("STANDARD_IA".into()),
            meta: BTreeMap::from([("mode".to_string(), "33188".to_string())]),
            ..Default::default()
        };
        s.insert("a", &b"x"[..], &opts);
        let copy = CopyParams {
            source_key: "a".into(),
            directive: MetadataDirective::Copy,
            storage_class: None,
            acl: None,
            source_if_match: None,
        };
        s.copy_object("b", &copy).await.unwrap();
        let b = s.object("b").unwrap();
        assert_eq!(b.storage_class, "STANDARD");
        assert_eq!(b.meta.get("mode").map(String::as_str), Some("33188"));
        let err = s.copy_object("a", &copy).await.unwrap_err();
        assert_eq!(err.code(), Some("InvalidRequest"));
    }

    #[tokio::test]
    async fn injected_failures_hit_the_chosen_calls_only() {
        let s = store();
        s.fail_after(StoreOp::PutObject, 1, 2, || {
            MemoryStore::service_error(503, "SlowDown")
        });
        let opts = PutOptions::default();
        let put = |k: &'static str| s.put_object(k, Bytes::new(), &opts);
        assert!(put("1").await.is_ok());
        assert_eq!(put("2").await.unwrap_err().code(), Some("SlowDown"));
        assert_eq!(put("3").await.unwrap_err().code(), Some("SlowDown"));
        assert!(put("4").await.is_ok());
        assert_eq!(s.requests(StoreOp::PutObject), 4);
        assert_eq!(s.keys(), ["1", "4"]);
    }
}
