//! Object operations: HEAD, GET (streamed), PUT, DELETE, OPTIONS, DELETE Multiple, PUT Copy.
//! Object ACL is in `acl.rs`.

// `CosError` (error.rs) carries its `ServiceError` inline; it is shared by every layer, so
// its size is accepted here rather than boxed.
#![allow(clippy::result_large_err)]

use std::collections::BTreeMap;
use std::path::Path;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use futures::{Stream, StreamExt};
use reqwest::header::HeaderMap;
use reqwest::Method;
use tokio::io::AsyncWriteExt;

use super::client::{header_str, AnswerBody, Client, CosRequest, PutBody};
use super::crc64::Crc64;
use super::error::{CosError, Result, ServiceError};
use super::retry::Watch;
use super::store::{
    ContentHeaders, CopyParams, MetadataDirective, ObjectInfo, PutOptions, PutResult, RangeData,
    RangePieces,
};
use super::xml::{self, parse_xml_time, unquote_etag};

/// Object storage classes COS knows (cos-protocol.md §4.5), as `x-cos-storage-class` spells them.
pub use cos_protocol::storage_class::STORAGE_CLASSES;

/// Base64 MD5 of a request body, for its Content-MD5 header. Hashed off the async workers
/// (a part is megabytes), a file region in 1 MiB reads.
pub(crate) async fn body_md5(body: &PutBody) -> Result<String> {
    use base64::Engine;
    use md5::Digest;
    let body = body.clone();
    let joined = tokio::task::spawn_blocking(move || -> Result<String> {
        let mut hasher = md5::Md5::new();
        match &body {
            PutBody::Empty => {}
            PutBody::Bytes(b) => hasher.update(b),
            PutBody::File { path, offset, len } => {
                use std::io::{Read, Seek};
                let mut file = std::fs::File::open(path)?;
                file.seek(std::io::SeekFrom::Start(*offset))?;
                let mut left = *len;
                let mut buf = vec![0u8; (1 << 20).min(left as usize)];
                while left > 0 {
                    let want = left.min(buf.len() as u64) as usize;
                    file.read_exact(&mut buf[..want])?;
                    hasher.update(&buf[..want]);
                    left -= want as u64;
                }
            }
        }
        Ok(base64::engine::general_purpose::STANDARD.encode(hasher.finalize()))
    })
    .await;
    joined.map_err(|e| CosError::InvalidInput(format!("hashing the body failed: {e}")))?
}

/// DELETE Multiple Objects takes at most this many keys per request.
pub use cos_protocol::limits::MAX_DELETE_KEYS;

/// Conditional request headers (GET and HEAD). ETags may be given with or without quotes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<SystemTime>,
    pub if_unmodified_since: Option<SystemTime>,
}

/// `response-*` query parameters: COS answers with these header values instead of the stored ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResponseOverrides {
    pub content_type: Option<String>,
    pub content_language: Option<String>,
    pub expires: Option<String>,
    pub cache_control: Option<String>,
    pub content_disposition: Option<String>,
    pub content_encoding: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GetObjectOptions {
    /// Inclusive byte range `(first, last)`; COS supports a single range only.
    pub range: Option<(u64, u64)>,
    pub conditions: Conditions,
    pub overrides: ResponseOverrides,
}

/// `Content-Range: bytes first-last/total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentRange {
    pub first: u64,
    pub last: u64,
    pub total: u64,
}

/// A GET Object answer: its headers, and the body still streaming from the network.
pub struct GetObjectOutput {
    /// 200 (whole object) or 206 (range).
    pub status: u16,
    /// `size` is the whole object's size (from Content-Range for a 206).
    pub info: ObjectInfo,
    /// Bytes in this answer's body.
    pub content_length: u64,
    pub content_range: Option<ContentRange>,
    pub body: ByteStream,
}

impl std::fmt::Debug for GetObjectOutput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GetObjectOutput")
            .field("status", &self.status)
            .field("info", &self.info)
            .field("content_length", &self.content_length)
            .field("content_range", &self.content_range)
            .finish_non_exhaustive()
    }
}

/// A response body as a stream of chunks. It ends with an error if the connection closes
/// before Content-Length bytes arrived, so a short body is never taken for a whole one, and
/// with a network error when the body stalls or the operation's retry budget is spent with
/// nothing moving (see `retry::Watch`).
pub struct ByteStream {
    inner: Pin<Box<dyn Stream<Item = Result<Bytes>> + Send>>,
    /// Content-Length of the answer.
    expected: u64,
}

impl ByteStream {
    fn from_response(resp: reqwest::Response, expected: u64, watch: Watch) -> ByteStream {
        // Scheme, host and port only: enough to say who stopped talking.
        let endpoint = resp.url().origin().ascii_serialization();
        let chunks = resp.bytes_stream();
        let stream = futures::stream::unfold(
            (chunks, 0u64, false, tokio::time::Instant::now()),
            move |(mut chunks, received, done, last)| {
                let endpoint = endpoint.clone();
                async move {
                    if done {
                        return None;
                    }
                    let next = match watch.read(last, chunks.next()).await {
                        Ok(next) => next,
                        Err(why) => {
                            let e = CosError::Network {
                                endpoint,
                                message: format!(
                                    "reading object body after {received} of {expected} bytes: {}",
                                    why.describe()
                                ),
                            };
                            return Some((Err(e), (chunks, received, true, last)));
                        }
                    };
                    let last = tokio::time::Instant::now();
                    match next {
                        Some(Ok(chunk)) => {
                            crate::metrics::Metrics::add(
                                &crate::metrics::global().bytes_downloaded,
                                chunk.len() as u64,
                            );
                            let received = received + chunk.len() as u64;
                            if received > expected {
                                let e = CosError::InvalidResponse(format!(
                                    "body longer than its Content-Length {expected}"
                                ));
                                return Some((Err(e), (chunks, received, true, last)));
                            }
                            Some((Ok(chunk), (chunks, received, false, last)))
                        }
                        Some(Err(e)) => {
                            let e = CosError::Network {
                                endpoint,
                                message: format!("reading object body: {e}"),
                            };
                            Some((Err(e), (chunks, received, true, last)))
                        }
                        None if received < expected => {
                            let e = CosError::Network {
                                endpoint,
                                message: format!(
                                    "object body ended after {received} of {expected} bytes"
                                ),
                            };
                            Some((Err(e), (chunks, received, true, last)))
                        }
                        None => None,
                    }
                }
            },
        );
        ByteStream {
            inner: Box::pin(stream),
            expected,
        }
    }

    /// Read the rest of the body into memory; refuses more than `limit` bytes.
    pub async fn collect(mut self, limit: u64) -> Result<Bytes> {
        // One allocation of the announced size (the stream refuses more than that anyway).
        let mut buf = Vec::with_capacity(self.expected.min(limit) as usize);
        while let Some(chunk) = self.inner.next().await {
            let chunk = chunk?;
            if buf.len() as u64 + chunk.len() as u64 > limit {
                return Err(CosError::InvalidResponse(format!(
                    "body larger than the expected {limit} bytes"
                )));
            }
            buf.extend_from_slice(&chunk);
        }
        Ok(Bytes::from(buf))
    }
}

impl Stream for ByteStream {
    type Item = Result<Bytes>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

/// Result of PUT Copy (and Upload Part Copy).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyResult {
    /// Quotes stripped.
    pub etag: String,
    pub crc64: Option<u64>,
    pub last_modified: Option<SystemTime>,
    pub version_id: Option<String>,
}

impl From<CopyResult> for PutResult {
    fn from(c: CopyResult) -> Self {
        PutResult {
            etag: c.etag,
            crc64: c.crc64,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeletedObject {
    pub key: String,
    pub version_id: Option<String>,
    pub delete_marker: bool,
    pub delete_marker_version_id: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteObjectError {
    pub key: String,
    pub version_id: Option<String>,
    pub code: String,
    pub message: String,
}

/// DELETE Multiple Objects: HTTP 200 even when some keys failed; check `errors`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DeleteResult {
    /// Listed only in verbose mode.
    pub deleted: Vec<DeletedObject>,
    pub errors: Vec<DeleteObjectError>,
}

/// What an OPTIONS (CORS preflight) answer allows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreflightResult {
    pub allow_origin: Option<String>,
    pub allow_methods: Vec<String>,
    pub allow_headers: Vec<String>,
    pub expose_headers: Vec<String>,
    pub max_age: Option<u64>,
}

/// `"etag"`, whether or not the caller quoted it.
pub(crate) fn quote_etag(etag: &str) -> String {
    format!("\"{}\"", etag.trim().trim_matches('"'))
}

fn parse_u64_header(headers: &HeaderMap, name: &str) -> Result<Option<u64>> {
    match header_str(headers, name) {
        None => Ok(None),
        Some(v) => v
            .trim()
            .parse::<u64>()
            .map(Some)
            .map_err(|_| CosError::InvalidResponse(format!("bad {name} header {v:?}"))),
    }
}

/// `bytes first-last/total`.
fn parse_content_range(v: &str) -> Option<ContentRange> {
    let rest = v.trim().strip_prefix("bytes")?.trim_start();
    let (range, total) = rest.split_once('/')?;
    let (first, last) = range.split_once('-')?;
    let cr = ContentRange {
        first: first.trim().parse().ok()?,
        last: last.trim().parse().ok()?,
        total: total.trim().parse().ok()?,
    };
    (cr.first <= cr.last && cr.last < cr.total).then_some(cr)
}

/// Object attributes from HEAD/GET headers; `size` is supplied by the caller.
pub(crate) fn info_from_headers(key: &str, headers: &HeaderMap, size: u64) -> ObjectInfo {
    let text = |name: &str| header_str(headers, name).map(str::to_string);
    let mut meta = BTreeMap::new();
    for (name, value) in headers {
        if let Some(suffix) = name.as_str().strip_prefix("x-cos-meta-") {
            // Values should be ASCII; keep anything else readable rather than dropping it.
            meta.insert(
                suffix.to_ascii_lowercase(),
                String::from_utf8_lossy(value.as_bytes()).into_owned(),
            );
        }
    }
    ObjectInfo {
        key: key.to_string(),
        size,
        etag: text("etag").map(|e| unquote_etag(&e)).unwrap_or_default(),
        last_modified: header_str(headers, "last-modified")
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .unwrap_or(UNIX_EPOCH),
        storage_class: text("x-cos-storage-class")
            .filter(|s| !s.is_empty())
            .unwrap_or_else(|| "STANDARD".into()),
        crc64: header_str(headers, "x-cos-hash-crc64ecma").and_then(|v| v.trim().parse().ok()),
        content: ContentHeaders {
            content_type: text("content-type"),
            cache_control: text("cache-control"),
            content_disposition: text("content-disposition"),
            content_encoding: text("content-encoding"),
            expires: text("expires"),
        },
        meta,
    }
}

pub(crate) fn put_result_from_headers(headers: &HeaderMap) -> PutResult {
    PutResult {
        etag: header_str(headers, "etag")
            .map(unquote_etag)
            .unwrap_or_default(),
        crc64: header_str(headers, "x-cos-hash-crc64ecma").and_then(|v| v.trim().parse().ok()),
    }
}

/// The headers PUT Object, Initiate Multipart Upload and a `Replaced` copy store.
pub(crate) fn apply_put_options(mut req: CosRequest, opts: &PutOptions) -> CosRequest {
    let c = &opts.content;
    req = req
        .header_opt("Content-Type", c.content_type.clone())
        .header_opt("Cache-Control", c.cache_control.clone())
        .header_opt("Content-Disposition", c.content_disposition.clone())
        .header_opt("Content-Encoding", c.content_encoding.clone())
        .header_opt("Expires", c.expires.clone())
        .header_opt("x-cos-storage-class", opts.storage_class.clone());
    if let Some(acl) = &opts.acl {
        req = acl.apply(req);
    }
    for (name, value) in &opts.meta {
        req = req.header(&format!("x-cos-meta-{name}"), value.clone());
    }
    req
}

fn apply_conditions(req: CosRequest, c: &Conditions) -> CosRequest {
    req.header_opt("If-Match", c.if_match.as_deref().map(quote_etag))
        .header_opt("If-None-Match", c.if_none_match.as_deref().map(quote_etag))
        .header_opt(
            "If-Modified-Since",
            c.if_modified_since.map(httpdate::fmt_http_date),
        )
        .header_opt(
            "If-Unmodified-Since",
            c.if_unmodified_since.map(httpdate::fmt_http_date),
        )
}

/// A 200 whose body is `<Error>` (Copy, Upload Part Copy, Complete) is a failure.
pub(crate) fn error_in_body(body: &[u8], headers: &HeaderMap) -> Option<CosError> {
    if xml::root_element(body).as_deref() != Some("Error") {
        return None;
    }
    let mut err: ServiceError = xml::service_error(200, body, true);
    if err.request_id.is_none() {
        err.request_id = header_str(headers, "x-cos-request-id").map(str::to_string);
    }
    Some(CosError::Service(err))
}

/// Parse a CopyObjectResult / CopyPartResult body (after checking for `<Error>`).
pub(crate) fn copy_result(body: &[u8], headers: &HeaderMap, what: &str) -> Result<CopyResult> {
    if let Some(e) = error_in_body(body, headers) {
        return Err(e);
    }
    let raw: xml::CopyResultXml = xml::parse(body, what)?;
    let etag = unquote_etag(&raw.etag);
    if etag.is_empty() {
        return Err(CosError::InvalidResponse(format!("{what} without an ETag")));
    }
    Ok(CopyResult {
        etag,
        crc64: raw
            .crc64
            .as_deref()
            .and_then(|v| v.trim().parse().ok())
            .or_else(|| {
                header_str(headers, "x-cos-hash-crc64ecma").and_then(|v| v.trim().parse().ok())
            }),
        last_modified: parse_xml_time(&raw.last_modified),
        version_id: raw.version_id.filter(|v| !v.is_empty()),
    })
}

impl Client {
    /// HEAD Object. Errors carry codes derived from the status (no body): NoSuchKey,
    /// AccessDenied, PreconditionFailed, NotModified.
    pub async fn head_object(&self, key: &str, conditions: &Conditions) -> Result<ObjectInfo> {
        let req = apply_conditions(CosRequest::new(Method::HEAD, Some(key)), conditions);
        let answer = self.execute_xml(&req).await?;
        let size = parse_u64_header(&answer.headers, "content-length")?.unwrap_or(0);
        Ok(info_from_headers(key, &answer.headers, size))
    }

    /// GET Object; the body streams (see [`ByteStream`]).
    pub async fn get_object(&self, key: &str, opts: &GetObjectOptions) -> Result<GetObjectOutput> {
        self.get_object_within(key, opts, None).await
    }

    /// GET Object within the budget of `watch` (an operation already under way), or a new one.
    async fn get_object_within(
        &self,
        key: &str,
        opts: &GetObjectOptions,
        watch: Option<Watch>,
    ) -> Result<GetObjectOutput> {
        let mut req = CosRequest::new(Method::GET, Some(key));
        if let Some((first, last)) = opts.range {
            if first > last {
                return Err(CosError::InvalidInput(format!(
                    "range {first}-{last} is empty"
                )));
            }
            req = req.header("Range", format!("bytes={first}-{last}"));
        }
        req = apply_conditions(req, &opts.conditions);
        let o = &opts.overrides;
        req = req
            .query_opt("response-content-type", o.content_type.clone())
            .query_opt("response-content-language", o.content_language.clone())
            .query_opt("response-expires", o.expires.clone())
            .query_opt("response-cache-control", o.cache_control.clone())
            .query_opt(
                "response-content-disposition",
                o.content_disposition.clone(),
            )
            .query_opt("response-content-encoding", o.content_encoding.clone());
        let watch = watch.unwrap_or_else(|| self.watch_for(&req));
        let answer = self.execute_within(&req, watch).await?;
        let content_length =
            parse_u64_header(&answer.headers, "content-length")?.ok_or_else(|| {
                CosError::InvalidResponse("GET Object answer without Content-Length".into())
            })?;
        let content_range = if answer.status.as_u16() == 206 {
            let raw = header_str(&answer.headers, "content-range").unwrap_or_default();
            let cr = parse_content_range(raw).ok_or_else(|| {
                CosError::InvalidResponse(format!("bad Content-Range {raw:?} on a 206"))
            })?;
            if cr.last - cr.first + 1 != content_length {
                return Err(CosError::InvalidResponse(format!(
                    "Content-Range {raw:?} disagrees with Content-Length {content_length}"
                )));
            }
            Some(cr)
        } else {
            None
        };
        let size = content_range.map_or(content_length, |cr| cr.total);
        let info = info_from_headers(key, &answer.headers, size);
        let AnswerBody::Streaming(resp) = answer.body else {
            return Err(CosError::InvalidResponse(
                "GET answer was not streamed".into(),
            ));
        };
        Ok(GetObjectOutput {
            status: answer.status.as_u16(),
            info,
            content_length,
            content_range,
            body: ByteStream::from_response(resp, content_length, answer.watch),
        })
    }

    /// `len` bytes from `start` (fewer at the end of the object), in memory; what a FUSE read
    /// needs. With `if_match`, an object changed since (other ETag) answers 412
    /// PreconditionFailed rather than bytes of another version.
    pub async fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
        if_match: Option<&str>,
    ) -> Result<RangeData> {
        let mut got = self
            .get_range_pieces(key, start, len, if_match, len.max(1))
            .await?;
        Ok(RangeData {
            data: got.pieces.pop().unwrap_or_default(),
            etag: got.etag,
            object_size: got.object_size,
        })
    }

    /// [`Client::get_range`] with the body received straight into `piece`-byte buffers (one
    /// copy from the network buffers, no joining or cutting afterwards).
    pub async fn get_range_pieces(
        &self,
        key: &str,
        start: u64,
        len: u64,
        if_match: Option<&str>,
        piece: u64,
    ) -> Result<RangePieces> {
        let conditions = Conditions {
            if_match: if_match.map(str::to_string),
            ..Default::default()
        };
        if len == 0 {
            // An empty range cannot be expressed as `bytes=a-b`; HEAD gives the same facts.
            let info = self.head_object(key, &conditions).await?;
            return Ok(RangePieces {
                pieces: Vec::new(),
                whole: Bytes::new(),
                etag: info.etag,
                object_size: info.size,
            });
        }
        let opts = GetObjectOptions {
            range: Some((start, start.saturating_add(len - 1))),
            conditions,
            ..Default::default()
        };
        // The request itself is retried inside `get_object`; a body cut off half-way is
        // retried here, with the same policy and within the same budget, since the bytes are
        // wanted in memory anyway.
        let policy = self.config().retry;
        let watch = self.watch_for(&CosRequest::new(Method::GET, Some(key)));
        let mut attempt = 1;
        loop {
            // Errors before the body (already retried inside) are final here.
            let out = self.get_object_within(key, &opts, Some(watch)).await?;
            match read_range_body(out, start, len, piece).await {
                Err(e @ CosError::Network { .. })
                    if attempt < policy.max_attempts
                        && watch.allows_retry_after(policy.delay_after(attempt)) =>
                {
                    tracing::debug!(key, attempt, error = %e, "retrying a ranged GET cut short");
                    tokio::time::sleep(policy.delay_after(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// GET Object into `path` (created or truncated), streaming. For a whole-object download
    /// the CRC-64 is checked against `x-cos-hash-crc64ecma` when COS sends one. A body cut
    /// off by the network starts over (same retry policy). On failure the partial file is
    /// removed.
    pub async fn download_to_file(
        &self,
        key: &str,
        opts: &GetObjectOptions,
        path: &Path,
    ) -> Result<ObjectInfo> {
        let policy = self.config().retry;
        let watch = self.watch_for(&CosRequest::new(Method::GET, Some(key)));
        let mut attempt = 1;
        loop {
            let out = self.get_object_within(key, opts, Some(watch)).await?;
            match write_body_to_file(key, out, path).await {
                Err(e @ CosError::Network { .. }) if attempt < policy.max_attempts => {
                    tracing::debug!(key, attempt, error = %e, "retrying a download cut short");
                    tokio::time::sleep(policy.delay_after(attempt)).await;
                    attempt += 1;
                }
                other => return other,
            }
        }
    }

    /// PUT Object. The body is re-sent on a retry (from memory or re-read from the file).
    pub async fn put_object(
        &self,
        key: &str,
        body: PutBody,
        opts: &PutOptions,
    ) -> Result<PutResult> {
        // Content-MD5 always: COS then rejects a body damaged on the way (400 BadDigest)
        // instead of storing it over the previous version.
        let md5 = match &opts.content_md5 {
            Some(md5) => md5.clone(),
            None => body_md5(&body).await?,
        };
        let req = apply_put_options(CosRequest::new(Method::PUT, Some(key)), opts)
            .header("Content-MD5", md5)
            .body(body);
        let answer = self.execute_xml(&req).await?;
        Ok(put_result_from_headers(&answer.headers))
    }

    /// DELETE Object (204, also when the key did not exist).
    pub async fn delete_object(&self, key: &str) -> Result<()> {
        let req = CosRequest::new(Method::DELETE, Some(key));
        self.execute_xml(&req).await.map(|_| ())
    }

    /// OPTIONS Object: a CORS preflight for `origin` wanting `method` with `request_headers`.
    /// 403 when no CORS rule allows it.
    pub async fn options_object(
        &self,
        key: &str,
        origin: &str,
        method: &str,
        request_headers: &[&str],
    ) -> Result<PreflightResult> {
        let mut req = CosRequest::new(Method::OPTIONS, Some(key))
            .header("Origin", origin)
            .header("Access-Control-Request-Method", method);
        if !request_headers.is_empty() {
            req = req.header("Access-Control-Request-Headers", request_headers.join(","));
        }
        let answer = self.execute_xml(&req).await?;
        let list = |name: &str| -> Vec<String> {
            answer
                .header(name)
                .map(|v| {
                    v.split(',')
                        .map(|s| s.trim().to_string())
                        .filter(|s| !s.is_empty())
                        .collect()
                })
                .unwrap_or_default()
        };
        Ok(PreflightResult {
            allow_origin: answer
                .header("access-control-allow-origin")
                .map(str::to_string),
            allow_methods: list("access-control-allow-methods"),
            allow_headers: list("access-control-allow-headers"),
            expose_headers: list("access-control-expose-headers"),
            max_age: answer
                .header("access-control-max-age")
                .and_then(|v| v.trim().parse().ok()),
        })
    }

    /// DELETE Multiple Objects (POST /?delete), at most 1000 keys. In quiet mode only failures
    /// are listed. An empty `keys` sends nothing.
    pub async fn delete_objects(&self, keys: &[&str], quiet: bool) -> Result<DeleteResult> {
        if keys.is_empty() {
            return Ok(DeleteResult::default());
        }
        if keys.len() > MAX_DELETE_KEYS {
            return Err(CosError::InvalidInput(format!(
                "delete multiple takes at most {MAX_DELETE_KEYS} keys, not {}",
                keys.len()
            )));
        }
        for key in keys {
            super::client::validate_key(key)?;
        }
        let req = CosRequest::new(Method::POST, None)
            .query("delete", "")
            .xml_body(xml::delete_body(keys, quiet));
        let answer = self.execute_xml(&req).await?;
        if answer.bytes().iter().all(u8::is_ascii_whitespace) {
            return Ok(DeleteResult::default());
        }
        let raw: xml::DeleteResultXml = xml::parse(answer.bytes(), "DeleteResult")?;
        Ok(DeleteResult {
            deleted: raw
                .deleted
                .into_iter()
                .map(|d| DeletedObject {
                    key: d.key,
                    version_id: d.version_id.filter(|v| !v.is_empty()),
                    delete_marker: d.delete_marker.is_some_and(|m| m.trim() == "true"),
                    delete_marker_version_id: d.delete_marker_version_id.filter(|v| !v.is_empty()),
                })
                .collect(),
            errors: raw
                .errors
                .into_iter()
                .map(|e| DeleteObjectError {
                    key: e.key,
                    version_id: e.version_id.filter(|v| !v.is_empty()),
                    code: e.code,
                    message: e.message,
                })
                .collect(),
        })
    }

    /// PUT Object - Copy from `params.source_key` in this bucket. COS does not carry the
    /// storage class nor the ACL over, so `params.storage_class` and `params.acl` are sent
    /// explicitly when set (with either directive). A 200 whose
    /// body is `<Error>`, or that lacks an ETag, is an error.
    pub async fn copy_object(&self, dest_key: &str, params: &CopyParams) -> Result<CopyResult> {
        super::client::validate_key(&params.source_key)?;
        let mut req = CosRequest::new(Method::PUT, Some(dest_key))
            .header("x-cos-copy-source", self.copy_source(&params.source_key))
            .header_opt(
                "x-cos-copy-source-If-Match",
                params.source_if_match.as_deref().map(quote_etag),
            );
        let mut storage_class = params.storage_class.clone();
        let mut acl = params.acl.clone();
        match &params.directive {
            MetadataDirective::Copy => {
                req = req.header("x-cos-metadata-directive", "Copy");
            }
            MetadataDirective::Replaced(opts) => {
                req = req.header("x-cos-metadata-directive", "Replaced");
                let mut opts = opts.clone();
                storage_class = storage_class.or(opts.storage_class.take());
                acl = acl.or(opts.acl.take());
                req = apply_put_options(req, &opts);
            }
        }
        req = req.header_opt("x-cos-storage-class", storage_class);
        if let Some(acl) = &acl {
            req = acl.apply(req);
        }
        let answer = self.execute_xml(&req).await?;
        copy_result(answer.bytes(), &answer.headers, "CopyObjectResult")
    }
}

/// The bytes of a ranged GET answer: `len` from `start` (fewer at the end of the object), in
/// buffers of `piece` bytes.
async fn read_range_body(
    out: GetObjectOutput,
    start: u64,
    len: u64,
    piece: u64,
) -> Result<RangePieces> {
    let etag = out.info.etag.clone();
    let object_size = out.info.size;
    // A server that ignores Range sends the whole object from 0: skip up to `start`.
    let mut skip = match out.content_range {
        Some(cr) if cr.first != start => {
            return Err(CosError::InvalidResponse(format!(
                "asked for bytes from {start}, got {}-{}",
                cr.first, cr.last
            )))
        }
        Some(_) => 0,
        None => start,
    };
    let want = len.min(out.content_length.saturating_sub(skip));
    // One buffer for the whole range (the caller reserved `len` bytes of memory for it), cut
    // into pieces at the end: a read spanning pieces is then a slice of it, not a copy.
    let mut cur = super::buffers::take(usize::try_from(want).unwrap_or(0));
    let mut got = 0u64;
    let mut body = out.body;
    while got < want {
        let Some(chunk) = body.next().await else {
            break;
        };
        let mut chunk = &chunk?[..];
        if skip > 0 {
            let n = skip.min(chunk.len() as u64) as usize;
            skip -= n as u64;
            chunk = &chunk[n..];
        }
        let n = (want - got).min(chunk.len() as u64) as usize;
        cur.extend_from_slice(&chunk[..n]);
        got += n as u64;
    }
    if got < want {
        return Err(CosError::InvalidResponse(format!(
            "object body ended after {got} of {want} bytes"
        )));
    }
    Ok(RangePieces::slicing(
        RangeData {
            data: super::buffers::freeze(cur),
            etag,
            object_size,
        },
        piece,
    ))
}

/// Stream a GET answer into `path`, checking the whole-object CRC-64; removes the file on error.
async fn write_body_to_file(key: &str, out: GetObjectOutput, path: &Path) -> Result<ObjectInfo> {
    let result = async {
        let mut file = tokio::fs::File::create(path).await?;
        let mut crc = Crc64::new();
        let mut body = out.body;
        while let Some(chunk) = body.next().await {
            let chunk = chunk?;
            crc.update(&chunk);
            file.write_all(&chunk).await?;
        }
        file.flush().await?;
        file.sync_all().await?;
        let computed = crc.finish();
        if let (None, Some(expected)) = (out.content_range, out.info.crc64) {
            if expected != computed {
                return Err(CosError::InvalidResponse(format!(
                    "CRC-64 mismatch for {key}: COS says {expected}, received {computed}"
                )));
            }
        }
        Ok(())
    }
    .await;
    match result {
        Ok(()) => Ok(out.info),
        Err(e) => {
            let _ = tokio::fs::remove_file(path).await;
            Err(e)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_parsing() {
        assert_eq!(
            parse_content_range("bytes 0-9/100"),
            Some(ContentRange {
                first: 0,
                last: 9,
                total: 100
            })
        );
        assert_eq!(parse_content_range("bytes 9-0/100"), None);
        assert_eq!(parse_content_range("bytes 0-100/100"), None);
        assert_eq!(parse_content_range("bytes */100"), None);
        assert_eq!(parse_content_range("garbage"), None);
    }

    #[test]
    fn copy_errors_inside_200_are_errors() {
        let headers = HeaderMap::new();
        let e = copy_result(
            b"<?xml version='1.0'?><Error><Code>InternalError</Code><Message>m</Message><RequestId>r1</RequestId></Error>",
            &headers,
            "copy",
        )
        .unwrap_err();
        assert_eq!(e.code(), Some("InternalError"));
        assert_eq!(e.status(), Some(200));
        assert_eq!(e.request_id(), Some("r1"));
        assert!(matches!(
            copy_result(b"<CopyObjectResult></CopyObjectResult>", &headers, "copy"),
            Err(CosError::InvalidResponse(_))
        ));
        let ok = copy_result(
            b"<CopyObjectResult><ETag>&quot;e1&quot;</ETag><CRC64>42</CRC64><LastModified>2020-04-10T18:20:30Z</LastModified></CopyObjectResult>",
            &headers,
            "copy",
        )
        .unwrap();
        assert_eq!(ok.etag, "e1");
        assert_eq!(ok.crc64, Some(42));
        assert!(ok.last_modified.is_some());
    }
}
