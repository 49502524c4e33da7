//! The HTTP side: accept loop, request context, addressing, faults, error rendering, CORS
//! response headers and the access log.

use std::fs::{File, OpenOptions};
use std::future::Future;
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Body;
use base64::Engine;
use bytes::Bytes;
use futures::{Stream, StreamExt};
use hyper::body::Incoming;
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use percent_encoding::percent_decode_str;

use crate::auth::{self, Caller, Credentials, SignedParts};
use crate::error::CosErr;
use crate::header_case::{CaseFixingIo, BODY_LEN_HEADER};
use crate::model::Acl;
use crate::operation::Operation;
use crate::store::Store;
use crate::xml::Xml;
use crate::{ops, sigv4, Config};

/// One kind of injected failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// 503 SlowDown before the request touches storage.
    SlowDown,
    /// The connection is dropped: before any response for requests without a body to send,
    /// half-way through the body for GETs.
    Reset,
    /// `latency_ms` of extra delay before handling.
    Latency,
    /// The request is applied completely, then the connection is closed without an answer.
    DropAnswer,
    /// The request head is read, then nothing is ever answered: the connection is held until
    /// the client closes it (a black-hole server).
    Stall,
}

impl FaultKind {
    pub fn name(self) -> &'static str {
        match self {
            FaultKind::SlowDown => "slowdown",
            FaultKind::Reset => "reset",
            FaultKind::Latency => "latency",
            FaultKind::DropAnswer => "drop-answer",
            FaultKind::Stall => "stall",
        }
    }
}

impl std::fmt::Display for FaultKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for FaultKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "slowdown" => Ok(FaultKind::SlowDown),
            "reset" => Ok(FaultKind::Reset),
            "latency" => Ok(FaultKind::Latency),
            "drop-answer" => Ok(FaultKind::DropAnswer),
            "stall" => Ok(FaultKind::Stall),
            other => Err(format!(
                "unknown fault kind {other:?} (expected slowdown, reset, latency, drop-answer or stall)"
            )),
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct FaultConfig {
    /// Probability in [0, 1] that a request gets a fault.
    pub rate: f64,
    pub kinds: Vec<FaultKind>,
    pub latency: Duration,
    /// Only requests of these operations get faults; empty: every operation.
    pub ops: Vec<Operation>,
    /// Faults left before injection turns itself off; None: no limit.
    pub count: Option<u64>,
}

impl Default for FaultConfig {
    fn default() -> Self {
        FaultConfig {
            rate: 0.0,
            kinds: vec![FaultKind::SlowDown, FaultKind::Reset, FaultKind::Latency],
            latency: Duration::from_millis(50),
            ops: Vec::new(),
            count: None,
        }
    }
}

impl FaultConfig {
    /// Decide the fault for one request of operation `op` (admin requests never get one),
    /// counting it against `count`.
    fn pick(&mut self, op: Operation) -> Option<FaultKind> {
        if op == Operation::Admin
            || self.rate <= 0.0
            || self.kinds.is_empty()
            || self.count == Some(0)
            || (!self.ops.is_empty() && !self.ops.contains(&op))
            || rand::random::<f64>() >= self.rate
        {
            return None;
        }
        let i = rand::random_range(0..self.kinds.len());
        let kind = self.kinds.get(i).copied()?;
        if let Some(n) = &mut self.count {
            *n -= 1;
        }
        Some(kind)
    }

    /// The setting from an admin query:
    /// `rate=R&kinds=K1,K2[&ops=Op1,Op2][&count=N][&latency_ms=M]`.
    pub fn from_query(query: &Query) -> Result<FaultConfig, String> {
        let mut config = FaultConfig::default();
        let mut rate = None;
        for (name, value) in &query.0 {
            match name.as_str() {
                "rate" => {
                    let r: f64 = value
                        .parse()
                        .map_err(|_| format!("rate={value:?} is not a number"))?;
                    if !(0.0..=1.0).contains(&r) {
                        return Err(format!("rate={value} is not between 0 and 1"));
                    }
                    rate = Some(r);
                }
                "kinds" => {
                    config.kinds = split_list(value)
                        .map(str::parse)
                        .collect::<Result<_, _>>()?;
                }
                "ops" => {
                    config.ops = split_list(value)
                        .map(str::parse)
                        .collect::<Result<_, _>>()?;
                }
                "count" => {
                    config.count = Some(
                        value
                            .parse()
                            .map_err(|_| format!("count={value:?} is not a whole number"))?,
                    );
                }
                "latency_ms" => {
                    config.latency = Duration::from_millis(
                        value
                            .parse()
                            .map_err(|_| format!("latency_ms={value:?} is not a whole number"))?,
                    );
                }
                other => return Err(format!("unknown parameter {other:?}")),
            }
        }
        config.rate = rate.ok_or("rate=R is required")?;
        Ok(config)
    }

    /// One line: `rate=1 kinds=drop-answer ops=PutObject count=1 latency_ms=50`.
    pub fn describe(&self) -> String {
        let join = |items: Vec<&str>| {
            if items.is_empty() {
                "all".to_string()
            } else {
                items.join(",")
            }
        };
        format!(
            "rate={} kinds={} ops={} count={} latency_ms={}",
            self.rate,
            self.kinds
                .iter()
                .map(|k| k.name())
                .collect::<Vec<_>>()
                .join(","),
            join(self.ops.iter().map(|o| o.name()).collect()),
            self.count
                .map_or_else(|| "unlimited".to_string(), |n| n.to_string()),
            self.latency.as_millis()
        )
    }
}

fn split_list(value: &str) -> impl Iterator<Item = &str> {
    value.split(',').map(str::trim).filter(|s| !s.is_empty())
}

/// Shared server state.
pub struct App {
    pub store: Store,
    pub credentials: Credentials,
    pub region: String,
    access_log: Option<Mutex<File>>,
    /// The fault setting; changed at runtime through `/_cos-local/faults`.
    faults: Mutex<FaultConfig>,
}

impl App {
    pub fn open(config: Config) -> anyhow::Result<App> {
        crate::clock::set_offset(config.clock_offset_secs);
        let store = Store::open(&config.data_dir)?;
        for bucket in &config.buckets {
            if !ops::valid_bucket_name(bucket) {
                anyhow::bail!("invalid bucket name {bucket:?} (use lowercase letters, digits and '-', like examplebucket-1250000000)");
            }
            store.create_bucket(bucket, Acl::canned("private"))?;
        }
        let access_log = match &config.access_log {
            Some(path) => Some(Mutex::new(
                OpenOptions::new().create(true).append(true).open(path)?,
            )),
            None => None,
        };
        Ok(App {
            store,
            credentials: config.credentials,
            region: config.region,
            access_log,
            faults: Mutex::new(config.faults),
        })
    }

    fn faults(&self) -> std::sync::MutexGuard<'_, FaultConfig> {
        self.faults.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn log_access(&self, line: &str) {
        if let Some(log) = &self.access_log {
            let mut f = log.lock().unwrap_or_else(|p| p.into_inner());
            // One write per line, so concurrent requests never interleave within a line.
            let _ = f.write_all(format!("{line}\n").as_bytes());
            let _ = f.flush();
        }
    }
}

/// The request body as a stream of chunks, counting what was read.
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, String>> + Send>>;

/// Decoded query parameters in request order.
#[derive(Debug, Default, Clone)]
pub struct Query(pub Vec<(String, String)>);

impl Query {
    /// Parse a raw query: split on `&`, then the first `=`; form-decode (`+` is a space).
    pub fn parse(raw: &str) -> Query {
        let decode = |s: &str| {
            let spaced = s.replace('+', " ");
            percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
        };
        Query(
            raw.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (k, v) = p.split_once('=').unwrap_or((p, ""));
                    (decode(k), decode(v))
                })
                .collect(),
        )
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }
}

/// Everything a handler sees about one request.
pub struct Ctx {
    pub app: Arc<App>,
    pub method: Method,
    pub headers: HeaderMap,
    pub query: Query,
    /// None for service-level requests (no bucket in host or path).
    pub bucket: Option<String>,
    /// The decoded object key; empty for bucket-level requests.
    pub key: String,
    /// The operation, from method, key, query and headers.
    pub op: Operation,
    pub caller: Caller,
    pub request_id: String,
    /// The Host header (for Location in Complete and Resource in errors).
    pub host: String,
    body: Option<BodyStream>,
}

impl Ctx {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
    pub fn take_body(&mut self) -> BodyStream {
        self.body
            .take()
            .unwrap_or_else(|| Box::pin(futures::stream::empty()))
    }
    /// Read a small request body (XML) completely, refusing more than `max` bytes.
    pub async fn small_body(&mut self, max: usize) -> Result<String, CosErr> {
        let mut body = self.take_body();
        let mut buf = Vec::new();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|_| {
                CosErr::new(
                    StatusCode::BAD_REQUEST,
                    "IncompleteBody",
                    "The request body was cut short.",
                )
            })?;
            if buf.len() + chunk.len() > max {
                return Err(CosErr::new(
                    StatusCode::BAD_REQUEST,
                    "EntityTooLarge",
                    "The request body is too large.",
                ));
            }
            buf.extend_from_slice(&chunk);
        }
        String::from_utf8(buf).map_err(|_| CosErr::malformed_xml("The body is not UTF-8."))
    }
}

/// The error hyper sees when a `reset` fault drops a connection without a response.
#[derive(Debug)]
struct InjectedReset;
impl std::fmt::Display for InjectedReset {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("connection reset injected by cos-local")
    }
}
impl std::error::Error for InjectedReset {}

/// Accept connections until `shutdown` completes.
pub async fn serve(
    app: Arc<App>,
    listener: tokio::net::TcpListener,
    shutdown: impl Future<Output = ()>,
) {
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: back off instead of spinning.
                tracing::warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        let app = app.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| handle(app.clone(), peer, req));
            let conn = hyper::server::conn::http1::Builder::new()
                .keep_alive(true)
                .serve_connection(TokioIo::new(CaseFixingIo::new(stream)), service);
            if let Err(e) = conn.await {
                tracing::debug!("connection ended: {e}");
            }
        });
    }
}

fn new_request_id() -> String {
    base64::engine::general_purpose::STANDARD.encode(uuid::Uuid::new_v4().as_bytes())
}

/// Split the Host into (bucket, is_virtual_host): `{bucket}.anything` names the bucket, an IP
/// or `localhost` (with or without port) means path style.
fn bucket_from_host(host: &str) -> Option<String> {
    let name = match host.rsplit_once(':') {
        Some((n, p)) if p.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    if name.is_empty() || name.parse::<IpAddr>().is_ok() || name.eq_ignore_ascii_case("localhost") {
        return None;
    }
    let (first, rest) = name.split_once('.')?;
    // `cos.{region}.myqcloud.com` and `service.cos.myqcloud.com` are the path-style endpoints.
    if rest.is_empty() || first == "cos" || first == "service" {
        return None;
    }
    Some(first.to_ascii_lowercase())
}

/// The path prefix of cos-local's own control requests (never a valid bucket name).
pub const ADMIN_PREFIX: &str = "/_cos-local/";

/// Where a request goes: its bucket and key, decoded query and operation.
struct Route {
    decoded_path: String,
    query: Query,
    /// None for service-level requests (no bucket in host or path).
    bucket: Option<String>,
    key: String,
    op: Operation,
}

/// Addressing (virtual host or path style) and the operation.
fn route(
    parts: &hyper::http::request::Parts,
    raw_path: &str,
    raw_query: &str,
    host: &str,
) -> Result<Route, CosErr> {
    // The path is decoded exactly once; `+` stays `+` (cos-protocol.md §2.4).
    let decoded_path = percent_decode_str(raw_path)
        .decode_utf8()
        .map_err(|_| {
            CosErr::new(
                StatusCode::BAD_REQUEST,
                "InvalidURI",
                "The path is not valid UTF-8.",
            )
        })?
        .into_owned();
    let query = Query::parse(raw_query);
    let (bucket, key) = match bucket_from_host(host) {
        Some(bucket) => (
            Some(bucket),
            decoded_path
                .strip_prefix('/')
                .unwrap_or(&decoded_path)
                .to_string(),
        ),
        None => {
            let rest = decoded_path.strip_prefix('/').unwrap_or(&decoded_path);
            match rest.split_once('/') {
                Some((b, k)) => (Some(b.to_string()), k.to_string()),
                None if rest.is_empty() => (None, String::new()),
                None => (Some(rest.to_string()), String::new()),
            }
        }
    };
    let classify_headers = sigv4::headers_for_classification(&parts.headers, raw_query);
    let op = match &bucket {
        None => Operation::classify_service(parts.method.as_str()),
        Some(_) => Operation::classify(
            parts.method.as_str(),
            !key.is_empty(),
            &query.0,
            // An S3 request is classified by its headers' COS twins (x-amz-copy-source...).
            &|name: &str| classify_headers.contains_key(name),
        ),
    };
    Ok(Route {
        decoded_path,
        query,
        bucket,
        key,
        op,
    })
}

/// Handle one request. Returns Err only to drop the connection (injected reset or dropped
/// answer).
async fn handle(
    app: Arc<App>,
    peer: SocketAddr,
    req: Request<Incoming>,
) -> Result<Response<Body>, InjectedReset> {
    let started = Instant::now();
    let request_id = new_request_id();
    let (parts, incoming) = req.into_parts();
    let raw_path = parts.uri.path().to_string();
    let raw_query = parts.uri.query().unwrap_or("").to_string();
    let method = parts.method.clone();
    let bytes_in = Arc::new(AtomicU64::new(0));
    let counter = bytes_in.clone();
    let mut body: BodyStream = Box::pin(Body::new(incoming).into_data_stream().map(move |r| {
        r.inspect(|b| {
            counter.fetch_add(b.len() as u64, Ordering::Relaxed);
        })
        .map_err(|e| e.to_string())
    }));
    let log = |status: u16, out: u64, note: &str, op: Operation| {
        log_line(
            &app, &method, &raw_path, &raw_query, status, &bytes_in, out, started, note, op,
        )
    };

    if raw_path.starts_with(ADMIN_PREFIX) {
        let mut resp = admin(&app, peer, &method, &raw_path, &raw_query);
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            resp.headers_mut()
                .insert(HeaderName::from_static("x-cos-request-id"), v);
        }
        let out = resp
            .headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0);
        log(resp.status().as_u16(), out, "", Operation::Admin);
        mark_body_len(&mut resp, &method);
        return Ok(resp);
    }

    let host = parts
        .headers
        .get(hyper::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("")
        .to_string();
    let route = route(&parts, &raw_path, &raw_query, &host);
    let op = route.as_ref().map_or(Operation::Unknown, |r| r.op);
    let fault = app.faults().pick(op);
    let latency = app.faults().latency;
    match fault {
        Some(FaultKind::Reset) if method != Method::GET => {
            // Dropped before storage is touched, so the failed request changed nothing.
            log(0, 0, "reset", op);
            return Err(InjectedReset);
        }
        Some(FaultKind::Stall) => {
            log(0, 0, "stall", op);
            // Read (and discard) the body so the connection notices when the client gives
            // up and closes it; then never answer.
            while let Some(chunk) = body.next().await {
                if chunk.is_err() {
                    return Err(InjectedReset);
                }
            }
            return std::future::pending().await;
        }
        Some(FaultKind::Latency) => tokio::time::sleep(latency).await,
        _ => {}
    }

    let mut resource = format!("{host}{raw_path}");
    let result = if fault == Some(FaultKind::SlowDown) {
        Err(CosErr::slow_down())
    } else {
        match route {
            Ok(route) => {
                if let Some(b) = &route.bucket {
                    resource = format!("{b}.cos.{}.myqcloud.com/{}", app.region, route.key);
                }
                dispatch_route(&app, &parts, body, route, &host, &request_id).await
            }
            Err(e) => Err(e),
        }
    };

    let origin = parts
        .headers
        .get(hyper::header::ORIGIN)
        .and_then(|o| o.to_str().ok())
        .map(str::to_string);
    let mut resp = match result {
        Ok((resp, bucket)) => {
            let mut resp = resp;
            if let (Some(origin), Some(bucket), false) = (origin, bucket, method == Method::OPTIONS)
            {
                ops::cors::add_actual_request_headers(
                    &app,
                    &bucket,
                    &origin,
                    method.as_str(),
                    resp.headers_mut(),
                );
            }
            resp
        }
        Err(e) => render_error(&e, &method, &resource, &request_id),
    };
    let headers = resp.headers_mut();
    if let Ok(v) = HeaderValue::from_str(&request_id) {
        headers.insert(HeaderName::from_static("x-cos-request-id"), v.clone());
        // S3 clients read the same id under its S3 name.
        headers.insert(HeaderName::from_static("x-amz-request-id"), v);
    }
    headers.insert(
        hyper::header::SERVER,
        HeaderValue::from_static("tencent-cos"),
    );
    // The server's own (possibly --clock-offset shifted) time; hyper adds none when present.
    if let Ok(v) = HeaderValue::from_str(&crate::clock::http_date_now()) {
        headers.insert(hyper::header::DATE, v);
    }
    let status = resp.status().as_u16();
    let out = if method == Method::HEAD {
        0
    } else {
        resp.headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let note = match fault {
        Some(FaultKind::Reset) => {
            resp = cut_body_half_way(resp, out);
            "reset"
        }
        Some(FaultKind::DropAnswer) => {
            // The request has been applied; the client never learns how it went.
            log(status, 0, "drop-answer", op);
            return Err(InjectedReset);
        }
        Some(kind) => kind.name(),
        None => "",
    };
    log(status, out, note, op);
    mark_body_len(&mut resp, &method);
    Ok(resp)
}

/// Auth and dispatch. Returns the response and the bucket it concerned.
async fn dispatch_route(
    app: &Arc<App>,
    parts: &hyper::http::request::Parts,
    body: BodyStream,
    route: Route,
    host: &str,
    request_id: &str,
) -> Result<(Response<Body>, Option<String>), CosErr> {
    crate::clock::check_skew(&parts.headers, &route.query.0, crate::clock::unix_now())?;
    let raw_query = parts.uri.query().unwrap_or("");
    // The S3 dialect (sigv4.rs): verified on the request as sent, then served by the same
    // handlers with the S3 headers given their COS twins.
    let s3 = sigv4::is_sigv4(&parts.headers, raw_query);
    let s3_failure = sigv4::FailureSlot::default();
    let (caller, headers, body) = if s3 {
        let verified = sigv4::verify(
            &sigv4::Request {
                method: parts.method.as_str(),
                raw_path: parts.uri.path(),
                raw_query,
                headers: &parts.headers,
            },
            &app.credentials,
            crate::clock::unix_now(),
        )?;
        let headers = sigv4::translate_headers(&parts.headers);
        let decoded_len = sigv4::decoded_content_length(&parts.headers);
        let body = verified.wrap_body(body, decoded_len, s3_failure.clone());
        (Caller::Signed(verified.access_key), headers, body)
    } else {
        let caller = auth::verify(
            &SignedParts {
                method: parts.method.as_str(),
                decoded_path: &route.decoded_path,
                query: &route.query.0,
                headers: &parts.headers,
            },
            &app.credentials,
            crate::clock::unix_now(),
        )?;
        (caller, parts.headers.clone(), body)
    };
    let bucket = route.bucket;
    let mut ctx = Ctx {
        app: app.clone(),
        method: parts.method.clone(),
        headers,
        query: route.query,
        bucket: bucket.clone(),
        key: route.key,
        op: route.op,
        caller,
        request_id: request_id.to_string(),
        host: host.to_string(),
        body: Some(body),
    };
    let mut resp = match ops::dispatch(&mut ctx).await {
        Ok(resp) => resp,
        // A body check of the S3 dialect that failed half-way is the answer.
        Err(e) => {
            return Err(s3_failure
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
                .unwrap_or(e))
        }
    };
    if s3 {
        sigv4::alias_response_headers(resp.headers_mut());
    }
    Ok((resp, bucket))
}

/// A plain-text answer of an admin request.
fn text_response(status: StatusCode, text: String) -> Response<Body> {
    let text = format!("{text}\n");
    Response::builder()
        .status(status)
        .header(hyper::header::CONTENT_TYPE, "text/plain; charset=utf-8")
        .header(hyper::header::CONTENT_LENGTH, text.len())
        .body(Body::from(text))
        .unwrap_or_else(|_| Response::new(Body::empty()))
}

/// `/_cos-local/faults`: read (GET), replace (PUT) or clear (DELETE) the fault setting.
/// Unsigned, so only loopback peers may use it.
fn admin(app: &App, peer: SocketAddr, method: &Method, path: &str, query: &str) -> Response<Body> {
    if !peer.ip().to_canonical().is_loopback() {
        return text_response(
            StatusCode::FORBIDDEN,
            "cos-local admin requests are accepted from loopback addresses only".to_string(),
        );
    }
    if path != "/_cos-local/faults" {
        return text_response(
            StatusCode::NOT_FOUND,
            format!("no admin resource {path} (try /_cos-local/faults)"),
        );
    }
    let mut faults = app.faults();
    match *method {
        Method::GET => text_response(StatusCode::OK, faults.describe()),
        Method::DELETE => {
            *faults = FaultConfig::default();
            text_response(StatusCode::OK, faults.describe())
        }
        Method::PUT => match FaultConfig::from_query(&Query::parse(query)) {
            Ok(config) => {
                *faults = config;
                text_response(StatusCode::OK, faults.describe())
            }
            Err(reason) => text_response(StatusCode::BAD_REQUEST, reason),
        },
        _ => text_response(
            StatusCode::METHOD_NOT_ALLOWED,
            "use GET, PUT or DELETE on /_cos-local/faults".to_string(),
        ),
    }
}

/// The `<Error>` response (no body for HEAD).
pub fn render_error(
    e: &CosErr,
    method: &Method,
    resource: &str,
    request_id: &str,
) -> Response<Body> {
    let trace_id = new_request_id();
    let mut x = Xml::new();
    x.open("Error")
        .leaf("Code", e.code)
        .leaf("Message", &e.message)
        .leaf("Resource", resource)
        .leaf("RequestId", request_id)
        .leaf("TraceId", &trace_id);
    for (name, value) in &e.extra {
        x.leaf(name, value);
    }
    x.close("Error");
    let body = x.finish();
    let mut builder = Response::builder()
        .status(e.status)
        .header(hyper::header::CONTENT_TYPE, "application/xml")
        .header("x-cos-trace-id", trace_id);
    if e.code == "InvalidRange" {
        builder = builder.header(hyper::header::CONTENT_RANGE, "bytes */*");
    }
    let resp = if method == Method::HEAD {
        builder.body(Body::empty())
    } else {
        builder
            .header(hyper::header::CONTENT_LENGTH, body.len())
            .body(Body::from(body))
    };
    resp.unwrap_or_else(|_| Response::new(Body::empty()))
}

/// Tell [`CaseFixingIo`] how many body bytes follow this response's head.
fn mark_body_len(resp: &mut Response<Body>, method: &Method) {
    use hyper::body::Body as _;
    let status = resp.status();
    let len = if method == Method::HEAD
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED
        || status.is_informational()
    {
        Some(0)
    } else {
        resp.headers()
            .get(hyper::header::CONTENT_LENGTH)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.parse::<u64>().ok())
            .or_else(|| resp.body().size_hint().exact())
    };
    // Without a known length the writer passes the connection through unchanged.
    if let Some(len) = len {
        resp.headers_mut()
            .insert(HeaderName::from_static(BODY_LEN_HEADER), len.into());
    }
}

/// For a `reset` fault on a GET: send the headers and half the body, then break the connection.
fn cut_body_half_way(resp: Response<Body>, len: u64) -> Response<Body> {
    let (parts, body) = resp.into_parts();
    let mut remaining = len / 2;
    let stream = body
        .into_data_stream()
        .map(|r| r.map_err(|e| std::io::Error::other(e.to_string())))
        .take_while(move |r| {
            let keep = match r {
                Ok(chunk) if (chunk.len() as u64) <= remaining => {
                    remaining -= chunk.len() as u64;
                    true
                }
                _ => false,
            };
            futures::future::ready(keep)
        })
        .chain(futures::stream::once(async {
            Err::<Bytes, _>(std::io::Error::other(InjectedReset.to_string()))
        }));
    Response::from_parts(parts, Body::from_stream(stream))
}

#[allow(clippy::too_many_arguments)]
fn log_line(
    app: &App,
    method: &Method,
    path: &str,
    query: &str,
    status: u16,
    bytes_in: &AtomicU64,
    out: u64,
    started: Instant,
    note: &str,
    op: Operation,
) {
    if app.access_log.is_none() {
        return;
    }
    let now = time::OffsetDateTime::now_utc();
    let stamp = now
        .format(time::macros::format_description!(
            "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
        ))
        .unwrap_or_default();
    let target = if query.is_empty() {
        path.to_string()
    } else {
        format!("{path}?{}", redact_query(query))
    };
    let mut line = format!(
        "{stamp} {method} {target} {status} in={} out={out} ms={}",
        bytes_in.load(Ordering::Relaxed),
        started.elapsed().as_millis()
    );
    if !note.is_empty() {
        line.push_str(" fault=");
        line.push_str(note);
    }
    // The operation is always the last field (parsers that read the first fields keep working).
    line.push(' ');
    line.push_str(op.name());
    app.log_access(&line);
}

/// A raw query with the values of presigned URLs' secrets (`q-signature`, `X-Amz-Signature`,
/// a temporary key's `x-cos-security-token` / `X-Amz-Security-Token`) replaced, so the access
/// log never holds a usable credential.
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((name, _))
                if name.eq_ignore_ascii_case("q-signature")
                    || name.eq_ignore_ascii_case("x-cos-security-token")
                    || name.eq_ignore_ascii_case("X-Amz-Signature")
                    || name.eq_ignore_ascii_case("X-Amz-Security-Token") =>
            {
                format!("{name}=REDACTED")
            }
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn access_log_query_hides_signature_and_token() {
        assert_eq!(
            redact_query("q-sign-algorithm=sha1&q-ak=AKID&q-signature=abc123&x-cos-security-token=tok&acl"),
            "q-sign-algorithm=sha1&q-ak=AKID&q-signature=REDACTED&x-cos-security-token=REDACTED&acl"
        );
        assert_eq!(
            redact_query("X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=abc&X-Amz-Date=1"),
            "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Signature=REDACTED&X-Amz-Date=1"
        );
        assert_eq!(
            redact_query("prefix=a%2F&max-keys=2"),
            "prefix=a%2F&max-keys=2"
        );
    }

    #[test]
    fn host_addressing() {
        assert_eq!(
            bucket_from_host("examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com").as_deref(),
            Some("examplebucket-1250000000")
        );
        assert_eq!(
            bucket_from_host("b-1.localhost:9000").as_deref(),
            Some("b-1")
        );
        assert_eq!(bucket_from_host("127.0.0.1:9000"), None);
        assert_eq!(bucket_from_host("localhost:9000"), None);
        assert_eq!(bucket_from_host("localhost"), None);
        assert_eq!(bucket_from_host("[::1]:9000"), None);
        assert_eq!(bucket_from_host("cos.ap-guangzhou.myqcloud.com"), None);
    }

    #[test]
    fn query_form_decoding() {
        let q = Query::parse("prefix=a+b%2Fc&uploads&delimiter=%2F&x=");
        assert_eq!(q.get("prefix"), Some("a b/c"));
        assert!(q.has("uploads"));
        assert_eq!(q.get("uploads"), Some(""));
        assert_eq!(q.get("delimiter"), Some("/"));
        assert_eq!(q.get("x"), Some(""));
    }
}
