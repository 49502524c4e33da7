//! The COS client: configuration, addressing, signing, one pooled HTTP client, retries.
//!
//! The API families live beside this file (`bucket.rs`, `object.rs`, `multipart.rs`, `acl.rs`,
//! `cors.rs`) as `impl Client` blocks built on `Client::execute`. `impl ObjectStore for
//! Client` (the filesystem's view) is at the end of this file.
//!
//! Addressing: by default `https://{bucket}.cos.{region}.myqcloud.com/{key}`. An endpoint
//! whose host is an IP or `localhost` (or `path_style`) gives `scheme://host:port/{bucket}/{key}`,
//! any other endpoint host `scheme://{bucket}.{host}[:port]/{key}`. The signed `host` is the Host
//! header as sent (with its port); the signed path is the raw (decoded) request path.
//!
//! Retries (see `retry.rs`): network errors, 5xx and `SlowDown`, with capped exponential
//! backoff and jitter, re-sending the body; other 4xx are final, except one retry after a
//! clock-skew answer (`RequestTimeTooSkewed`, or AccessDenied "Request has expired") with the
//! offset learnt from the server's `Date` kept for all later signatures.
//!
//! Bounded waits (see `retry.rs`): a connect timeout, a stall timeout on every attempt (no
//! request body byte sent and no answer byte received for that long), and a retry budget for
//! the whole operation. A server that accepts connections and never answers costs a caller
//! about the budget, then a network error (EIO for the filesystem).

// `CosError` (error.rs) carries its `ServiceError` inline; it is shared by every layer, so
// its size is accepted here rather than boxed.
#![allow(clippy::result_large_err)]

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::acl::AclUpdate;
use super::error::{CosError, Result, ServiceError};
use super::retry::{self, Progress, RetryPolicy, Watch};
use super::sign::{self, KeyTime, SignRequest};
use super::store::{
    AclInfo, BucketInfo, CompletedPart, CopyParams, ListPage, ListParams, ObjectInfo, ObjectStore,
    PutOptions, PutResult, RangeData, RangePieces,
};
use super::xml;
use cos_protocol::Operation;

/// COS refuses keys longer than this many (UTF-8) bytes with `KeyTooLong`.
pub use cos_protocol::limits::MAX_KEY_BYTES;

/// Responses we read whole (XML) are small: a full page of 1000 listed keys of 850 bytes, all
/// percent-encoded, is under 3 MiB. Anything much larger is not a COS answer.
const MAX_XML_BODY: usize = 32 << 20;
/// Error bodies are a few hundred bytes; keep only this much of whatever arrives.
const MAX_ERROR_BODY: usize = 64 << 10;

/// SecretId/SecretKey and an optional temporary-credential token.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub secret_id: String,
    pub secret_key: String,
    /// `x-cos-security-token` for temporary keys (sent and signed).
    pub token: Option<String>,
}

impl Credentials {
    pub fn new(secret_id: impl Into<String>, secret_key: impl Into<String>) -> Self {
        Credentials {
            secret_id: secret_id.into(),
            secret_key: secret_key.into(),
            token: None,
        }
    }

    pub fn with_token(mut self, token: impl Into<String>) -> Self {
        self.token = Some(token.into());
        self
    }
}

/// Never prints the secret key or the token, only whether they are set.
impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish()
    }
}

/// Everything a [`Client`] needs. Build with [`ClientConfig::new`] and adjust fields.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Full bucket name including the APPID, e.g. `examplebucket-1250000000`.
    pub bucket: String,
    /// e.g. `ap-guangzhou`. Required unless `endpoint` is set.
    pub region: String,
    /// `http://127.0.0.1:9000`, `https://cos.ap-guangzhou.myqcloud.com`, ... An IP or
    /// `localhost` host means path style (`/{bucket}/{key}`), any other host virtual-host style
    /// (`{bucket}.{host}`).
    pub endpoint: Option<String>,
    /// Force path style even for a DNS endpoint.
    pub path_style: bool,
    pub credentials: Credentials,
    pub retry: RetryPolicy,
    pub connect_timeout: Duration,
    /// Longest silence of an attempt: no request body byte sent and no byte of the answer
    /// (headers or body) received. Operations where COS works before answering (Complete,
    /// Copy) use [`retry::SERVER_WORK_TIMEOUT`] instead.
    pub stall_timeout: Duration,
    /// Longest one operation keeps trying, retries included (see `retry.rs`).
    pub retry_budget: Duration,
    /// Validity of each request signature (the window starts 60 s in the past).
    pub signature_expires: Duration,
}

impl ClientConfig {
    pub fn new(
        bucket: impl Into<String>,
        region: impl Into<String>,
        credentials: Credentials,
    ) -> Self {
        ClientConfig {
            bucket: bucket.into(),
            region: region.into(),
            endpoint: None,
            path_style: false,
            credentials,
            retry: RetryPolicy::default(),
            connect_timeout: retry::DEFAULT_CONNECT_TIMEOUT,
            stall_timeout: retry::DEFAULT_STALL_TIMEOUT,
            retry_budget: retry::DEFAULT_RETRY_BUDGET,
            signature_expires: Duration::from_secs(3600),
        }
    }

    pub fn with_endpoint(mut self, endpoint: impl Into<String>) -> Self {
        self.endpoint = Some(endpoint.into());
        self
    }
}

/// Bucket names are `{name}-{appid}`: lower-case letters, digits and `-`, not at either end.
fn validate_bucket(bucket: &str) -> Result<()> {
    let ok = !bucket.is_empty()
        && bucket.len() <= 63
        && bucket
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !bucket.starts_with('-')
        && !bucket.ends_with('-');
    if ok {
        Ok(())
    } else {
        Err(CosError::InvalidInput(format!(
            "invalid bucket name {bucket:?}: expected NAME-APPID of lower-case letters, digits and '-'"
        )))
    }
}

fn validate_region(region: &str) -> Result<()> {
    let ok = !region.is_empty()
        && region.len() <= 64
        && region
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    if ok {
        Ok(())
    } else {
        Err(CosError::InvalidInput(format!(
            "invalid region {region:?}: expected e.g. ap-guangzhou"
        )))
    }
}

/// Check an object key before sending it. Keys longer than 850 bytes are refused here with
/// wording containing `KeyTooLong` (the filesystem maps it to ENAMETOOLONG).
pub fn validate_key(key: &str) -> Result<()> {
    if key.is_empty() {
        return Err(CosError::InvalidInput("empty object key".into()));
    }
    if key.len() > MAX_KEY_BYTES {
        return Err(CosError::InvalidInput(format!(
            "KeyTooLong: key too long ({} bytes, COS allows {MAX_KEY_BYTES})",
            key.len()
        )));
    }
    if key.starts_with('/') {
        return Err(CosError::InvalidInput(format!(
            "object key {key:?} starts with '/', which COS does not allow"
        )));
    }
    // URL parsers (WHATWG, and so reqwest) collapse `.`/`..` path segments, even encoded as
    // `%2E`, so such a key would reach another object. Refuse it rather than touch the wrong one.
    if key.split('/').any(|seg| seg == "." || seg == "..") {
        return Err(CosError::InvalidInput(format!(
            "object key {key:?} has a '.' or '..' path segment, which cannot be sent intact"
        )));
    }
    Ok(())
}

/// Wire form of a key in the request path: everything except `A-Za-z0-9-_.~` and `/` encoded.
const PATH_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

pub(crate) fn encode_key_path(key: &str) -> String {
    utf8_percent_encode(key, PATH_ENCODE_SET).to_string()
}

/// Where requests go and what the Host header (which is signed) says.
#[derive(Debug, Clone)]
struct Addressing {
    scheme: String,
    /// Host header value: host, plus `:port` when the URL has a non-default port.
    host_header: String,
    /// `""` for virtual-host style, `/{bucket}` for path style.
    path_prefix: String,
    /// The `x-cos-copy-source` value up to the key (no scheme, no trailing `/`).
    copy_source_base: String,
}

impl Addressing {
    fn from_config(cfg: &ClientConfig) -> Result<Addressing> {
        let Some(endpoint) = cfg.endpoint.as_deref() else {
            validate_region(&cfg.region)?;
            let host = format!("{}.cos.{}.myqcloud.com", cfg.bucket, cfg.region);
            return Ok(Addressing {
                scheme: "https".into(),
                copy_source_base: host.clone(),
                host_header: host,
                path_prefix: String::new(),
            });
        };
        if !cfg.region.is_empty() {
            validate_region(&cfg.region)?;
        }
        let url = Url::parse(endpoint)
            .map_err(|e| CosError::InvalidInput(format!("invalid endpoint {endpoint:?}: {e}")))?;
        if url.scheme() != "http" && url.scheme() != "https" {
            return Err(CosError::InvalidInput(format!(
                "endpoint {endpoint:?} must start with http:// or https://"
            )));
        }
        if !(url.path().is_empty() || url.path() == "/") || url.query().is_some() {
            return Err(CosError::InvalidInput(format!(
                "endpoint {endpoint:?} must not have a path or query"
            )));
        }
        let host_str = match url.host_str() {
            Some(h) if !h.is_empty() => h.to_string(),
            _ => {
                return Err(CosError::InvalidInput(format!(
                    "endpoint {endpoint:?} has no host"
                )))
            }
        };
        // IPv6 hosts come bracketed (`[::1]`); IPv4 parses as an address.
        let is_ip_or_localhost = host_str.starts_with('[')
            || host_str.parse::<std::net::Ipv4Addr>().is_ok()
            || host_str.eq_ignore_ascii_case("localhost");
        let port = url.port().map(|p| format!(":{p}")).unwrap_or_default();
        if cfg.path_style || is_ip_or_localhost {
            Ok(Addressing {
                scheme: url.scheme().into(),
                host_header: format!("{host_str}{port}"),
                path_prefix: format!("/{}", cfg.bucket),
                // cos-local and legacy path-style COS take `/{bucket}/{key}` as copy source.
                copy_source_base: format!("/{}", cfg.bucket),
            })
        } else {
            let vhost = format!("{}.{host_str}", cfg.bucket);
            Ok(Addressing {
                scheme: url.scheme().into(),
                host_header: format!("{vhost}{port}"),
                path_prefix: String::new(),
                copy_source_base: vhost,
            })
        }
    }
}

/// A request body that can be sent again on a retry.
#[derive(Debug, Clone, Default)]
pub enum PutBody {
    #[default]
    Empty,
    Bytes(Bytes),
    /// `len` bytes of the file at `path`, starting at `offset`; re-opened for each attempt.
    File {
        path: PathBuf,
        offset: u64,
        len: u64,
    },
}

impl PutBody {
    pub fn len(&self) -> u64 {
        match self {
            PutBody::Empty => 0,
            PutBody::Bytes(b) => b.len() as u64,
            PutBody::File { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The body for one attempt, in chunks of at most 256 KiB (a file region is never read
    /// whole), each noted in `progress` as it is handed to the connection.
    async fn to_reqwest(&self, progress: &Progress) -> Result<reqwest::Body> {
        const CHUNK: usize = 256 << 10;
        match self {
            PutBody::Empty => Ok(reqwest::Body::from(Bytes::new())),
            PutBody::Bytes(b) if b.len() <= CHUNK => Ok(reqwest::Body::from(b.clone())),
            PutBody::Bytes(b) => {
                let b = b.clone();
                let progress = progress.clone();
                let chunks = (0..b.len().div_ceil(CHUNK)).map(move |i| {
                    progress.touch();
                    Ok::<_, std::io::Error>(b.slice(i * CHUNK..((i + 1) * CHUNK).min(b.len())))
                });
                Ok(reqwest::Body::wrap_stream(futures::stream::iter(chunks)))
            }
            PutBody::File { path, offset, len } => {
                let mut file = tokio::fs::File::open(path).await?;
                let file_len = file.metadata().await?.len();
                if offset.saturating_add(*len) > file_len {
                    return Err(CosError::InvalidInput(format!(
                        "body region {offset}+{len} is past the end of {} ({file_len} bytes)",
                        path.display()
                    )));
                }
                file.seek(std::io::SeekFrom::Start(*offset)).await?;
                let progress = progress.clone();
                let stream = futures::stream::unfold((file, *len), move |(mut file, left)| {
                    let progress = progress.clone();
                    async move {
                        if left == 0 {
                            return None;
                        }
                        progress.touch();
                        let want = left.min(CHUNK as u64) as usize;
                        let mut buf = vec![0u8; want];
                        match file.read_exact(&mut buf).await {
                            Ok(_) => Some((Ok(Bytes::from(buf)), (file, left - want as u64))),
                            Err(e) => Some((Err(e), (file, 0))),
                        }
                    }
                });
                Ok(reqwest::Body::wrap_stream(stream))
            }
        }
    }
}

impl From<Bytes> for PutBody {
    fn from(b: Bytes) -> Self {
        PutBody::Bytes(b)
    }
}

impl From<Vec<u8>> for PutBody {
    fn from(b: Vec<u8>) -> Self {
        PutBody::Bytes(Bytes::from(b))
    }
}

/// One COS request, before addressing and signing.
#[derive(Debug, Clone)]
pub(crate) struct CosRequest {
    pub method: Method,
    /// `None` for a bucket-level request (`/`).
    pub key: Option<String>,
    /// Raw (unencoded) query parameters; `""` for a bare `?uploads`.
    pub query: Vec<(String, String)>,
    /// Raw headers; those COS cares about are signed (see [`is_signed_header`]).
    pub headers: Vec<(String, String)>,
    pub body: PutBody,
}

impl CosRequest {
    pub fn new(method: Method, key: Option<&str>) -> Self {
        CosRequest {
            method,
            key: key.map(str::to_string),
            query: Vec::new(),
            headers: Vec::new(),
            body: PutBody::Empty,
        }
    }

    pub fn query(mut self, name: &str, value: impl Into<String>) -> Self {
        self.query.push((name.to_string(), value.into()));
        self
    }

    pub fn query_opt(self, name: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.query(name, v),
            None => self,
        }
    }

    pub fn header(mut self, name: &str, value: impl Into<String>) -> Self {
        self.headers.push((name.to_string(), value.into()));
        self
    }

    pub fn header_opt(self, name: &str, value: Option<impl Into<String>>) -> Self {
        match value {
            Some(v) => self.header(name, v),
            None => self,
        }
    }

    pub fn body(mut self, body: PutBody) -> Self {
        self.body = body;
        self
    }

    /// An XML body with its Content-Type and Content-MD5.
    pub fn xml_body(self, xml: String) -> Self {
        let md5 = content_md5(xml.as_bytes());
        self.header("Content-Type", "application/xml")
            .header("Content-MD5", md5)
            .body(PutBody::Bytes(Bytes::from(xml)))
    }

    fn on_object(&self) -> bool {
        self.key.is_some()
    }

    /// Whether COS does real work before answering (merging parts, copying data), so a long
    /// silence is normal.
    fn server_works(&self) -> bool {
        operation(self).server_works()
    }
}

/// Base64 of the MD5 of `data`, as Content-MD5 wants it.
pub fn content_md5(data: &[u8]) -> String {
    use base64::Engine;
    use md5::Digest;
    base64::engine::general_purpose::STANDARD.encode(md5::Md5::digest(data))
}

/// The headers the client signs besides `host`: the ones COS documents as meaningful for
/// integrity and every `x-cos-*` (metadata, ACL, storage class, copy source, token).
fn is_signed_header(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    matches!(
        n.as_str(),
        "content-type" | "content-length" | "content-md5" | "range"
    ) || n.starts_with("x-cos-")
}

/// A COS answer whose body is still to be read (GET Object) or was read whole (XML).
pub(crate) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: AnswerBody,
    /// The limits a streamed body is still read under.
    pub watch: Watch,
    /// The memory budget's share of a body read whole (listing pages), held while it lives.
    pub _mem: Option<crate::memory::MemPermit>,
}

pub(crate) enum AnswerBody {
    Streaming(reqwest::Response),
    Whole(Bytes),
}

impl Answer {
    /// The body read whole (only for [`Client::execute_xml`] answers).
    pub fn bytes(&self) -> &[u8] {
        match &self.body {
            AnswerBody::Whole(b) => b,
            AnswerBody::Streaming(_) => &[],
        }
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        header_str(&self.headers, name)
    }
}

pub(crate) fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

struct Inner {
    http: reqwest::Client,
    config: ClientConfig,
    addr: Addressing,
    /// Seconds to add to the local clock when signing, learned from a clock-skew answer.
    clock_offset: AtomicI64,
}

/// A COS client for one bucket. Cheap to clone (shares one connection pool); Send + Sync.
#[derive(Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("bucket", &self.inner.config.bucket)
            .field("endpoint", &self.endpoint_url())
            .finish()
    }
}

/// Make ring the process's rustls crypto provider. reqwest is built without one (Cargo.toml:
/// `rustls-no-provider`, to keep aws-lc-sys out of the build) and panics building a client
/// before one is installed. Calling again, or after another provider was installed, changes
/// nothing.
pub fn install_crypto_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

impl Client {
    pub fn new(config: ClientConfig) -> Result<Client> {
        validate_bucket(&config.bucket)?;
        if config.credentials.secret_id.is_empty() || config.credentials.secret_key.is_empty() {
            return Err(CosError::InvalidInput(
                "SecretId and SecretKey must not be empty".into(),
            ));
        }
        if config.retry.max_attempts == 0 {
            return Err(CosError::InvalidInput(
                "max_attempts must be at least 1".into(),
            ));
        }
        let addr = Addressing::from_config(&config)?;
        // No reqwest read timeout: its first deadline runs from the start of the request,
        // upload included; stalls are watched per attempt instead (`retry::Watch`).
        install_crypto_provider();
        let http = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            // COS answers redirects only for origin-pull setups; a redirect must not be
            // followed with our signature attached to another host.
            .redirect(reqwest::redirect::Policy::none())
            .pool_idle_timeout(Duration::from_secs(50))
            .user_agent(concat!("cosmount/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| CosError::InvalidInput(format!("cannot build HTTP client: {e}")))?;
        Ok(Client {
            inner: Arc::new(Inner {
                http,
                config,
                addr,
                clock_offset: AtomicI64::new(0),
            }),
        })
    }

    pub fn config(&self) -> &ClientConfig {
        &self.inner.config
    }

    /// The same client (same connection pool) with another retry budget, e.g. a short one for
    /// the mount's start-up check.
    pub fn with_retry_budget(&self, budget: Duration) -> Client {
        let mut config = self.inner.config.clone();
        config.retry_budget = budget;
        Client {
            inner: Arc::new(Inner {
                http: self.inner.http.clone(),
                config,
                addr: self.inner.addr.clone(),
                clock_offset: AtomicI64::new(self.clock_offset()),
            }),
        }
    }

    /// The limits of an operation starting now.
    pub(crate) fn watch_for(&self, req: &CosRequest) -> Watch {
        let c = &self.inner.config;
        if req.server_works() {
            let long = retry::SERVER_WORK_TIMEOUT;
            Watch::new(c.stall_timeout.max(long), c.retry_budget.max(long))
        } else {
            Watch::new(c.stall_timeout, c.retry_budget)
        }
    }

    /// The network error for an attempt given up by its watch.
    pub(crate) fn expired_error(&self, why: retry::Expiry) -> CosError {
        CosError::Network {
            endpoint: self.endpoint_url(),
            message: why.describe(),
        }
    }

    pub fn bucket(&self) -> &str {
        &self.inner.config.bucket
    }

    /// `scheme://host[:port]` requests go to (with `/{bucket}` for path style).
    pub fn endpoint_url(&self) -> String {
        let a = &self.inner.addr;
        format!("{}://{}{}", a.scheme, a.host_header, a.path_prefix)
    }

    /// The Host header value (which is signed).
    pub fn host(&self) -> &str {
        &self.inner.addr.host_header
    }

    /// Seconds added to the local clock when signing (non-zero after a clock-skew answer).
    pub fn clock_offset(&self) -> i64 {
        self.inner.clock_offset.load(Ordering::Relaxed)
    }

    /// `x-cos-copy-source` value for `key` in this bucket.
    pub(crate) fn copy_source(&self, key: &str) -> String {
        format!(
            "{}/{}",
            self.inner.addr.copy_source_base,
            encode_key_path(key)
        )
    }

    /// The request path (`/{key}` or `/{bucket}/{key}`), encoded for the wire and raw for
    /// the signature.
    fn paths(&self, key: Option<&str>) -> (String, String) {
        let prefix = &self.inner.addr.path_prefix;
        match key {
            Some(k) => (
                format!("{prefix}/{}", encode_key_path(k)),
                format!("{prefix}/{k}"),
            ),
            None => (format!("{prefix}/"), format!("{prefix}/")),
        }
    }

    /// URL and signature for a request; the signature covers `host`, the query and the
    /// headers [`is_signed_header`] selects.
    fn sign_request(
        &self,
        method: &Method,
        key: Option<&str>,
        query: &[(String, String)],
        headers: &[(String, String)],
        expires: Duration,
    ) -> (String, String, sign::Signature) {
        let (wire_path, signed_path) = self.paths(key);
        let mut signed_headers: Vec<(String, String)> = headers
            .iter()
            .filter(|(n, _)| is_signed_header(n))
            .cloned()
            .collect();
        signed_headers.push(("host".into(), self.inner.addr.host_header.clone()));
        let key_time = KeyTime::around_now(expires.as_secs() as i64, self.clock_offset());
        let signature = sign::sign(
            &self.inner.config.credentials.secret_key,
            key_time,
            &SignRequest {
                method: method.as_str(),
                key: &signed_path,
                params: query,
                headers: &signed_headers,
            },
        );
        let mut url = format!(
            "{}://{}{}",
            self.inner.addr.scheme, self.inner.addr.host_header, wire_path
        );
        let qs = encode_query(query);
        if !qs.is_empty() {
            url.push('?');
            url.push_str(&qs);
        }
        (url, wire_path, signature)
    }

    /// A presigned URL for `method` on `key` (or the bucket when `None`), valid for `expires`.
    /// `query` (e.g. `response-content-type`) is signed and appended. With a temporary token,
    /// it is appended as `x-cos-security-token` and signed.
    pub fn presigned_url(
        &self,
        method: &Method,
        key: Option<&str>,
        query: &[(String, String)],
        expires: Duration,
    ) -> Result<String> {
        let key_time = KeyTime::around_now(expires.as_secs() as i64, self.clock_offset());
        self.presigned_url_with_time(method, key, query, key_time)
    }

    /// [`Client::presigned_url`] for an explicit signing window (reproducible URLs).
    pub fn presigned_url_with_time(
        &self,
        method: &Method,
        key: Option<&str>,
        query: &[(String, String)],
        key_time: KeyTime,
    ) -> Result<String> {
        if let Some(k) = key {
            validate_key(k)?;
        }
        let mut params = query.to_vec();
        if let Some(token) = &self.inner.config.credentials.token {
            params.push(("x-cos-security-token".into(), token.clone()));
        }
        let (wire_path, signed_path) = self.paths(key);
        let signature = sign::sign(
            &self.inner.config.credentials.secret_key,
            key_time,
            &SignRequest {
                method: method.as_str(),
                key: &signed_path,
                params: &params,
                headers: &[("host".into(), self.inner.addr.host_header.clone())],
            },
        );
        let mut url = format!(
            "{}://{}{}?{}",
            self.inner.addr.scheme,
            self.inner.addr.host_header,
            wire_path,
            signature.query_string(&self.inner.config.credentials.secret_id)
        );
        let qs = encode_query(&params);
        if !qs.is_empty() {
            url.push('&');
            url.push_str(&qs);
        }
        Ok(url)
    }

    /// Send once: build, sign, and wait for the status line and headers (the caller bounds
    /// the wait with `progress`).
    async fn send_once(&self, req: &CosRequest, progress: &Progress) -> Result<reqwest::Response> {
        let mut headers = req.headers.clone();
        if let Some(token) = &self.inner.config.credentials.token {
            headers.push(("x-cos-security-token".into(), token.clone()));
        }
        let has_body = matches!(req.method, Method::PUT | Method::POST);
        if has_body {
            headers.push(("Content-Length".into(), req.body.len().to_string()));
        }
        let (url, _, signature) = self.sign_request(
            &req.method,
            req.key.as_deref(),
            &req.query,
            &headers,
            self.inner.config.signature_expires,
        );
        let mut map = HeaderMap::new();
        for (name, value) in &headers {
            let name_h = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| CosError::InvalidInput(format!("invalid header name {name:?}")))?;
            let value_h = HeaderValue::from_str(value).map_err(|_| {
                CosError::InvalidInput(format!(
                    "header {name} has a value that is not valid in HTTP (control or non-ASCII characters)"
                ))
            })?;
            map.append(name_h, value_h);
        }
        map.insert(
            reqwest::header::HOST,
            HeaderValue::from_str(&self.inner.addr.host_header)
                .map_err(|_| CosError::InvalidInput("invalid host".into()))?,
        );
        let auth = signature.authorization(&self.inner.config.credentials.secret_id);
        let mut auth_value = HeaderValue::from_str(&auth)
            .map_err(|_| CosError::InvalidInput("SecretId is not valid in a header".into()))?;
        auth_value.set_sensitive(true);
        map.insert(reqwest::header::AUTHORIZATION, auth_value);

        let mut builder = self
            .inner
            .http
            .request(req.method.clone(), &url)
            .headers(map);
        if has_body {
            builder = builder.body(req.body.to_reqwest(progress).await?);
        }
        let resp = builder.send().await.map_err(|e| self.network_error(&e))?;
        progress.touch();
        Ok(resp)
    }

    fn network_error(&self, e: &reqwest::Error) -> CosError {
        // The chain of sources says "connection refused" / "timed out"; the URL it may carry
        // has no secrets (they travel in the Authorization header).
        let mut message = e.to_string();
        let mut source = std::error::Error::source(e);
        while let Some(s) = source {
            message.push_str(": ");
            message.push_str(&s.to_string());
            source = s.source();
        }
        CosError::Network {
            endpoint: self.endpoint_url(),
            message,
        }
    }

    /// Build the `ServiceError` for a non-2xx answer, reading (a bounded part of) its body.
    async fn error_from_response(
        &self,
        resp: reqwest::Response,
        on_object: bool,
        watch: &Watch,
    ) -> ServiceError {
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = read_limited(resp, MAX_ERROR_BODY, true, watch)
            .await
            .unwrap_or_default();
        let mut err = xml::service_error(status, &body, on_object);
        if err.request_id.is_none() {
            err.request_id = header_str(&headers, "x-cos-request-id").map(str::to_string);
        }
        if err.trace_id.is_none() {
            err.trace_id = header_str(&headers, "x-cos-trace-id").map(str::to_string);
        }
        err.server_date = header_str(&headers, "date").map(str::to_string);
        err
    }

    /// Read a whole (XML) answer body within the memory budget: it waits for room for its
    /// Content-Length (1 MiB if not announced) first. HEAD answers have no body.
    async fn read_whole(
        &self,
        req: &CosRequest,
        resp: reqwest::Response,
        limit: usize,
        watch: &Watch,
    ) -> Result<(Bytes, Option<crate::memory::MemPermit>)> {
        let announced = resp.content_length();
        let mem = if req.method == Method::HEAD || announced == Some(0) {
            None
        } else {
            let want = announced.unwrap_or(1 << 20).min(limit as u64);
            let permit = crate::memory::global()
                .acquire(want, crate::memory::Use::Listing)
                .await
                .map_err(|e| CosError::InvalidResponse(e.to_string()))?;
            Some(permit)
        };
        let body = read_limited(resp, limit, false, watch).await?;
        Ok((body, mem))
    }

    /// Learn the clock offset from a skew answer's `Date`; true if it could be learned and
    /// differs from the one already used (else a retry would be refused the same way).
    fn learn_clock_offset(&self, err: &ServiceError) -> bool {
        let Some(date) = err.server_date.as_deref() else {
            return false;
        };
        let Ok(server) = httpdate::parse_http_date(date) else {
            return false;
        };
        let server_secs = server
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        let offset = server_secs - sign::unix_now();
        let before = self.inner.clock_offset.load(Ordering::Relaxed);
        if (offset - before).abs() < 60 {
            return false;
        }
        self.inner.clock_offset.store(offset, Ordering::Relaxed);
        tracing::warn!(
            offset_secs = offset,
            "COS reports clock skew; signing with the server's time from now on"
        );
        true
    }

    /// Send `req` with retries; the body of a successful answer is left unread (streaming).
    /// `watch` is the operation's: a new one, or that of an operation already under way (a
    /// GET retried because its body was cut short).
    pub(crate) async fn execute_within(&self, req: &CosRequest, watch: Watch) -> Result<Answer> {
        self.execute_inner(req, None, watch).await
    }

    /// Send `req` with retries and read the whole (XML) body of a successful answer; a body
    /// cut short by the network counts as a network error and is retried too.
    pub(crate) async fn execute_xml(&self, req: &CosRequest) -> Result<Answer> {
        self.execute_inner(req, Some(MAX_XML_BODY), self.watch_for(req))
            .await
    }

    async fn execute_inner(
        &self,
        req: &CosRequest,
        read_whole: Option<usize>,
        watch: Watch,
    ) -> Result<Answer> {
        if let Some(k) = &req.key {
            validate_key(k)?;
        }
        let policy = self.inner.config.retry;
        let metrics = crate::metrics::global();
        let api = operation(req).name();
        let mut attempt: u32 = 1;
        let mut skew_retried = false;
        let started = std::time::Instant::now();
        loop {
            let progress = Progress::new();
            let sent = tokio::select! {
                sent = self.send_once(req, &progress) => sent,
                why = watch.expired(&progress) => Err(self.expired_error(why)),
            };
            metrics.record_request(api, sent.as_ref().map_or(0, |r| r.status().as_u16()));
            if sent.is_ok() {
                crate::metrics::Metrics::add(&metrics.bytes_uploaded, req.body.len());
            }
            let outcome = match sent {
                Ok(resp) if resp.status().is_success() => {
                    let status = resp.status();
                    let headers = resp.headers().clone();
                    match read_whole {
                        None => {
                            return Ok(Answer {
                                status,
                                headers,
                                body: AnswerBody::Streaming(resp),
                                watch,
                                _mem: None,
                            })
                        }
                        Some(limit) => match self.read_whole(req, resp, limit, &watch).await {
                            Ok((body, mem)) => {
                                return Ok(Answer {
                                    status,
                                    headers,
                                    body: AnswerBody::Whole(body),
                                    watch,
                                    _mem: mem,
                                })
                            }
                            Err(e) => e,
                        },
                    }
                }
                Ok(resp) => {
                    let err = self
                        .error_from_response(resp, req.on_object(), &watch)
                        .await;
                    if retry::is_clock_skew(&err) && !skew_retried && self.learn_clock_offset(&err)
                    {
                        skew_retried = true;
                        continue;
                    }
                    CosError::Service(err)
                }
                Err(e) => e,
            };
            let delay = policy.delay_after(attempt);
            if !retry::is_transient(&outcome)
                || !policy.should_retry(attempt, started.elapsed(), delay)
                || (attempt >= policy.max_attempts && !watch.allows_retry_after(delay))
            {
                tracing::debug!(method = %req.method, key = ?req.key, attempt, error = %outcome, "COS request failed");
                return Err(outcome);
            }
            crate::metrics::Metrics::add(&metrics.retries, 1);
            tracing::debug!(method = %req.method, key = ?req.key, attempt, ?delay, error = %outcome, "retrying COS request");
            tokio::time::sleep(delay).await;
            attempt += 1;
        }
    }
}

/// The COS operation a request calls (the shared table of cos-protocol), for the request
/// counters (`cosmount_cos_requests_total`) and for how long a silence is normal.
fn operation(req: &CosRequest) -> Operation {
    Operation::classify(
        req.method.as_str(),
        req.key.is_some(),
        &req.query,
        &req.headers,
    )
}

/// Read a body up to `limit` bytes. Over the limit: an error, or (for error bodies,
/// `truncate`) just the first `limit` bytes.
async fn read_limited(
    resp: reqwest::Response,
    limit: usize,
    truncate: bool,
    watch: &Watch,
) -> Result<Bytes> {
    let endpoint = resp.url().origin().ascii_serialization();
    let mut stream = resp.bytes_stream();
    let mut buf = Vec::new();
    let mut last = tokio::time::Instant::now();
    loop {
        let next = watch
            .read(last, stream.next())
            .await
            .map_err(|why| CosError::Network {
                endpoint: endpoint.clone(),
                message: format!("reading the answer: {}", why.describe()),
            })?;
        last = tokio::time::Instant::now();
        let Some(chunk) = next else { break };
        let chunk = chunk.map_err(|e| CosError::Network {
            endpoint: endpoint.clone(),
            message: format!("reading the answer: {e}"),
        })?;
        if buf.len() + chunk.len() > limit {
            if truncate {
                buf.extend_from_slice(&chunk[..limit - buf.len()]);
                break;
            }
            return Err(CosError::InvalidResponse(format!(
                "answer body larger than {limit} bytes"
            )));
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// `name=value&...` for the wire. Values use the strict signature encoding (so `+` is `%2B`
/// and the server's form-decoding gives it back intact); a bare parameter is sent as `name`.
fn encode_query(query: &[(String, String)]) -> String {
    query
        .iter()
        .map(|(n, v)| {
            if v.is_empty() {
                sign::encode_component(n)
            } else {
                format!(
                    "{}={}",
                    sign::encode_component(n),
                    sign::encode_component(v)
                )
            }
        })
        .collect::<Vec<_>>()
        .join("&")
}

// ---------------------------------------------------------------------------------------------
// The filesystem's view.

impl ObjectStore for Client {
    async fn head_bucket(&self) -> Result<BucketInfo> {
        Client::head_bucket(self).await
    }

    async fn list_objects(&self, params: &ListParams) -> Result<ListPage> {
        Client::list_objects(self, params).await
    }

    async fn head_object(&self, key: &str) -> Result<ObjectInfo> {
        Client::head_object(self, key, &Default::default()).await
    }

    async fn get_range(
        &self,
        key: &str,
        start: u64,
        len: u64,
        if_match: Option<&str>,
    ) -> Result<RangeData> {
        Client::get_range(self, key, start, len, if_match).await
    }

    async fn get_range_pieces(
        &self,
        key: &str,
        start: u64,
        len: u64,
        if_match: Option<&str>,
        piece: u64,
    ) -> Result<RangePieces> {
        Client::get_range_pieces(self, key, start, len, if_match, piece).await
    }

    async fn put_object(&self, key: &str, body: Bytes, opts: &PutOptions) -> Result<PutResult> {
        Client::put_object(self, key, PutBody::Bytes(body), opts).await
    }

    async fn delete_object(&self, key: &str) -> Result<()> {
        Client::delete_object(self, key).await
    }

    async fn copy_object(&self, dest_key: &str, params: &CopyParams) -> Result<PutResult> {
        Client::copy_object(self, dest_key, params)
            .await
            .map(|r| r.into())
    }

    async fn initiate_multipart(&self, key: &str, opts: &PutOptions) -> Result<String> {
        Client::initiate_multipart(self, key, opts)
            .await
            .map(|r| r.upload_id)
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: Bytes,
    ) -> Result<PutResult> {
        Client::upload_part(self, key, upload_id, part_number, PutBody::Bytes(body)).await
    }

    async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        source_key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<PutResult> {
        Client::upload_part_copy(self, key, upload_id, part_number, source_key, range)
            .await
            .map(|r| r.into())
    }

    async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<PutResult> {
        Client::complete_multipart(self, key, upload_id, parts)
            .await
            .map(|r| r.into())
    }

    async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        Client::abort_multipart(self, key, upload_id).await
    }

    async fn list_uploads_of(&self, key: &str) -> Result<Vec<crate::cos::multipart::UploadInfo>> {
        // A few pages at most: one key rarely has more than a handful of uploads.
        const MAX_PAGES: usize = 10;
        let mut params = crate::cos::multipart::ListUploadsParams {
            prefix: Some(key.to_string()),
            max_uploads: Some(1000),
            ..Default::default()
        };
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.list_multipart_uploads(&params).await?;
            out.extend(page.uploads.into_iter().filter(|u| u.key == key));
            let next = (page.next_key_marker, page.next_upload_id_marker);
            let moved = next.0.is_some()
                && (next.0 != params.key_marker || next.1 != params.upload_id_marker);
            // Keys sort after `key` once the listing moved past it.
            if !page.is_truncated || !moved || next.0.as_deref() != Some(key) {
                break;
            }
            (params.key_marker, params.upload_id_marker) = next;
        }
        Ok(out)
    }

    async fn list_parts_of(
        &self,
        key: &str,
        upload_id: &str,
    ) -> Result<Vec<crate::cos::multipart::PartInfo>> {
        // 10 pages of 1000: COS's 10 000 parts.
        const MAX_PAGES: usize = 10;
        let mut params = crate::cos::multipart::ListPartsParams {
            max_parts: Some(1000),
            part_number_marker: None,
        };
        let mut out = Vec::new();
        for _ in 0..MAX_PAGES {
            let page = self.list_parts(key, upload_id, &params).await?;
            out.extend(page.parts);
            let next = page.next_part_number_marker;
            // A marker that does not move would page forever.
            if !page.is_truncated || next.is_none() || next == params.part_number_marker {
                break;
            }
            params.part_number_marker = next;
        }
        Ok(out)
    }

    async fn get_acl(&self, key: Option<&str>) -> Result<AclInfo> {
        self.get_acl_with_canned(key).await
    }

    async fn put_acl(&self, key: Option<&str>, update: &AclUpdate) -> Result<()> {
        match key {
            Some(k) => self.put_object_acl(k, update).await,
            None => self.put_bucket_acl(update).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn creds() -> Credentials {
        Credentials::new("AKIDEXAMPLE", "SECRETEXAMPLE")
    }

    #[test]
    fn client_is_cheap_to_share_across_tasks() {
        fn assert_shareable<T: Send + Sync + Clone + 'static>() {}
        assert_shareable::<Client>();
    }

    #[test]
    fn debug_never_shows_secrets() {
        let c = creds().with_token("TOKENSECRET");
        let text = format!("{c:?}");
        assert!(text.contains("AKIDEXAMPLE"));
        assert!(!text.contains("SECRETEXAMPLE"));
        assert!(!text.contains("TOKENSECRET"));
        let cfg = ClientConfig::new("examplebucket-1250000000", "ap-guangzhou", c);
        let text = format!("{cfg:?}");
        assert!(!text.contains("SECRETEXAMPLE") && !text.contains("TOKENSECRET"));
    }

    #[test]
    fn default_addressing_is_virtual_host_https() {
        let c = Client::new(ClientConfig::new(
            "examplebucket-1250000000",
            "ap-guangzhou",
            creds(),
        ))
        .unwrap();
        assert_eq!(
            c.endpoint_url(),
            "https://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com"
        );
        assert_eq!(
            c.copy_source("a b/c.txt"),
            "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/a%20b/c.txt"
        );
    }

    #[test]
    fn ip_and_localhost_endpoints_use_path_style_with_port() {
        for (ep, host) in [
            ("http://127.0.0.1:9000", "127.0.0.1:9000"),
            ("http://localhost:9000/", "localhost:9000"),
            ("http://[::1]:9000", "[::1]:9000"),
        ] {
            let c = Client::new(
                ClientConfig::new("examplebucket-1250000000", "", creds()).with_endpoint(ep),
            )
            .unwrap();
            assert_eq!(c.host(), host);
            assert_eq!(
                c.endpoint_url(),
                format!("http://{host}/examplebucket-1250000000")
            );
            assert_eq!(c.copy_source("k"), "/examplebucket-1250000000/k");
        }
    }

    #[test]
    fn dns_endpoint_uses_virtual_host_unless_path_style() {
        let cfg = ClientConfig::new("b-1", "ap-guangzhou", creds())
            .with_endpoint("https://cos.ap-guangzhou.myqcloud.com");
        let c = Client::new(cfg.clone()).unwrap();
        assert_eq!(c.host(), "b-1.cos.ap-guangzhou.myqcloud.com");
        assert_eq!(
            c.endpoint_url(),
            "https://b-1.cos.ap-guangzhou.myqcloud.com"
        );
        let mut forced = cfg;
        forced.path_style = true;
        let c = Client::new(forced).unwrap();
        assert_eq!(
            c.endpoint_url(),
            "https://cos.ap-guangzhou.myqcloud.com/b-1"
        );
    }

    #[test]
    fn bad_config_is_rejected_clearly() {
        let bad = |cfg: ClientConfig| match Client::new(cfg) {
            Err(CosError::InvalidInput(m)) => m,
            other => panic!("expected InvalidInput, got {other:?}"),
        };
        assert!(bad(ClientConfig::new("Bad_Bucket", "ap-guangzhou", creds())).contains("bucket"));
        assert!(bad(ClientConfig::new("b-1", "", creds())).contains("region"));
        assert!(bad(ClientConfig::new("b-1", "AP GZ", creds())).contains("region"));
        assert!(
            bad(ClientConfig::new("b-1", "r", creds()).with_endpoint("ftp://x")).contains("http")
        );
        assert!(bad(ClientConfig::new("b-1", "r", Credentials::new("", "k"))).contains("SecretId"));
    }

    #[test]
    fn keys_are_checked_before_sending() {
        assert!(validate_key("a/b c.txt").is_ok());
        assert!(validate_key(&"k".repeat(850)).is_ok());
        let Err(CosError::InvalidInput(m)) = validate_key(&"k".repeat(851)) else {
            panic!("851 bytes must be refused");
        };
        assert!(m.contains("KeyTooLong"));
        assert!(validate_key("").is_err());
        assert!(validate_key("/abs").is_err());
        assert!(validate_key("a/../b").is_err());
        assert!(validate_key("a/./b").is_err());
        assert!(validate_key("a/.../b").is_ok());
        assert!(validate_key("a//b").is_ok());
    }

    #[test]
    fn url_parser_collapses_encoded_dot_segments() {
        // Why validate_key refuses `.`/`..` segments: even percent-encoded they are collapsed.
        let u = Url::parse("http://h/a/%2E%2E/b").unwrap();
        assert_eq!(u.path(), "/b");
    }

    #[test]
    fn key_wire_encoding_keeps_slash_and_unreserved() {
        assert_eq!(
            encode_key_path("中文/a b+c%d~e_f-g.h?#&="),
            "%E4%B8%AD%E6%96%87/a%20b%2Bc%25d~e_f-g.h%3F%23%26%3D"
        );
    }

    #[test]
    fn requests_are_counted_under_their_cos_api_name() {
        let name = |req: &CosRequest| operation(req).name();
        let obj = |m: Method| CosRequest::new(m, Some("k"));
        assert_eq!(name(&obj(Method::GET)), "GetObject");
        assert_eq!(name(&obj(Method::HEAD)), "HeadObject");
        assert_eq!(name(&obj(Method::PUT)), "PutObject");
        let copy = obj(Method::PUT).header("x-cos-copy-source", "b/k");
        assert_eq!(name(&copy), "PutObjectCopy");
        assert!(copy.server_works());
        assert_eq!(
            name(
                &obj(Method::PUT)
                    .query("partNumber", "1")
                    .query("uploadId", "u")
            ),
            "UploadPart"
        );
        assert_eq!(
            name(&obj(Method::POST).query("uploadId", "u")),
            "CompleteMultipartUpload"
        );
        assert_eq!(name(&obj(Method::GET).query("acl", "")), "GetObjectAcl");
        let bucket = |m: Method| CosRequest::new(m, None);
        assert_eq!(name(&bucket(Method::GET)), "GetBucket");
        assert_eq!(name(&bucket(Method::HEAD)), "HeadBucket");
        assert_eq!(
            name(&bucket(Method::GET).query("uploads", "")),
            "ListMultipartUploads"
        );
        assert!(!bucket(Method::GET).server_works());
    }

    #[test]
    fn query_wire_encoding() {
        let q = vec![
            ("uploads".to_string(), String::new()),
            ("prefix".to_string(), "a b+c/".to_string()),
        ];
        assert_eq!(encode_query(&q), "uploads&prefix=a%20b%2Bc%2F");
    }
}
