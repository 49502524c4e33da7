//! A recording mock COS for the client tests: an axum server on 127.0.0.1:0 that records every
//! request (method, raw path and query, headers, body), checks its signature the way a COS
//! server would (`sign_with_times` over the decoded path, the listed params and headers), and
//! answers whatever the test's responder returns. The server task is aborted on drop.

#![allow(dead_code)]

pub mod cos_local;
// The cos-local starter is shared with the mount harness.
#[path = "../common/cos_local.rs"]
mod cos_local_process;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::http::{HeaderMap, Request, Response, StatusCode};
use bytes::Bytes;
use cosmount::cos::retry::RetryPolicy;
use cosmount::cos::sign::{encode_name, sign_with_times, AuthFields, SignRequest};
use cosmount::cos::{Client, ClientConfig, Credentials};
use percent_encoding::percent_decode_str;

pub const BUCKET: &str = "examplebucket-1250000000";
pub const SECRET_ID: &str = "AKIDEXAMPLE";
pub const SECRET_KEY: &str = "SECRETEXAMPLE";

/// One request as the mock received it.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    /// Raw request-target path, still percent-encoded.
    pub raw_path: String,
    /// Path decoded once (what COS uses as the key and UriPathname).
    pub path: String,
    pub raw_query: String,
    /// Query form-decoded, in order; a bare `name` has value "".
    pub query: Vec<(String, String)>,
    pub headers: HeaderMap,
    pub body: Bytes,
    /// Whether the Authorization header verifies with SECRET_KEY.
    pub signature_valid: bool,
    /// The q-sign-time of the request, if signed.
    pub sign_time: Option<String>,
}

impl Recorded {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has_param(&self, name: &str) -> bool {
        self.query.iter().any(|(n, _)| n == name)
    }

    /// The key part of a path-style path `/{bucket}/{key}`.
    pub fn key(&self) -> &str {
        self.path
            .strip_prefix(&format!("/{BUCKET}/"))
            .unwrap_or(&self.path)
    }
}

/// What the mock answers.
#[derive(Debug, Clone)]
pub struct Canned {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Canned {
    pub fn status(status: u16) -> Canned {
        Canned {
            status,
            headers: vec![("x-cos-request-id".into(), "mock-req-id".into())],
            body: Vec::new(),
        }
    }

    pub fn ok() -> Canned {
        Canned::status(200)
    }

    pub fn header(mut self, name: &str, value: &str) -> Canned {
        self.headers.push((name.into(), value.into()));
        self
    }

    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Canned {
        self.body = body.into();
        self
    }

    pub fn xml(self, body: &str) -> Canned {
        self.header("Content-Type", "application/xml").body(body)
    }

    /// A COS error with its XML body.
    pub fn error(status: u16, code: &str, message: &str) -> Canned {
        Canned::status(status).xml(&format!(
            "<?xml version='1.0' encoding='utf-8' ?>\n<Error><Code>{code}</Code><Message>{message}</Message>\
<Resource>{BUCKET}/x</Resource><RequestId>req-{code}</RequestId><TraceId>trace-1</TraceId></Error>"
        ))
    }
}

type Responder = dyn Fn(&Recorded, usize) -> Canned + Send + Sync;

pub struct MockCos {
    pub addr: SocketAddr,
    requests: Arc<Mutex<Vec<Recorded>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for MockCos {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn form_decode(s: &str) -> String {
    let spaced = s.replace('+', " ");
    percent_decode_str(&spaced).decode_utf8_lossy().into_owned()
}

fn parse_query(raw: &str) -> Vec<(String, String)> {
    raw.split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (n, v) = p.split_once('=').unwrap_or((p, ""));
            (form_decode(n), form_decode(v))
        })
        .collect()
}

/// Verify like a COS server (cos-protocol.md §2.8).
fn verify(
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &HeaderMap,
) -> (bool, Option<String>) {
    let Some(auth) = headers.get("authorization").and_then(|v| v.to_str().ok()) else {
        return (false, None);
    };
    let Some(fields) = AuthFields::parse(auth) else {
        return (false, None);
    };
    let mut params = Vec::new();
    for name in &fields.url_param_list {
        match query.iter().find(|(n, _)| &encode_name(n) == name) {
            Some(p) => params.push(p.clone()),
            None => return (false, Some(fields.sign_time)),
        }
    }
    let mut signed_headers = Vec::new();
    for name in &fields.header_list {
        match headers.get(name.as_str()).and_then(|v| v.to_str().ok()) {
            Some(v) => signed_headers.push((name.clone(), v.trim().to_string())),
            None => return (false, Some(fields.sign_time)),
        }
    }
    let sig = sign_with_times(
        SECRET_KEY,
        &fields.key_time,
        &fields.sign_time,
        &SignRequest {
            method,
            key: path,
            params: &params,
            headers: &signed_headers,
        },
    );
    (
        fields.ak == SECRET_ID && sig.signature == fields.signature,
        Some(fields.sign_time),
    )
}

impl MockCos {
    /// Start a mock whose answers come from `respond(request, index)` (index counts from 0).
    pub async fn start(
        respond: impl Fn(&Recorded, usize) -> Canned + Send + Sync + 'static,
    ) -> MockCos {
        let requests: Arc<Mutex<Vec<Recorded>>> = Arc::default();
        let respond: Arc<Responder> = Arc::new(respond);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind mock");
        let addr = listener.local_addr().expect("mock addr");
        let reqs = requests.clone();
        let app = axum::Router::new().fallback(move |req: Request<Body>| {
            let reqs = reqs.clone();
            let respond = respond.clone();
            async move {
                let (parts, body) = req.into_parts();
                let body = axum::body::to_bytes(body, usize::MAX)
                    .await
                    .unwrap_or_default();
                let raw_path = parts.uri.path().to_string();
                let path = percent_decode_str(&raw_path)
                    .decode_utf8_lossy()
                    .into_owned();
                let raw_query = parts.uri.query().unwrap_or("").to_string();
                let query = parse_query(&raw_query);
                let method = parts.method.as_str().to_string();
                let (signature_valid, sign_time) = verify(&method, &path, &query, &parts.headers);
                let rec = Recorded {
                    method,
                    raw_path,
                    path,
                    raw_query,
                    query,
                    headers: parts.headers,
                    body,
                    signature_valid,
                    sign_time,
                };
                let index = {
                    let mut all = reqs.lock().unwrap();
                    all.push(rec.clone());
                    all.len() - 1
                };
                let canned = respond(&rec, index);
                let mut resp =
                    Response::builder().status(StatusCode::from_u16(canned.status).unwrap());
                for (n, v) in &canned.headers {
                    resp = resp.header(n.as_str(), v.as_str());
                }
                resp.body(Body::from(canned.body)).unwrap()
            }
        });
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        MockCos {
            addr,
            requests,
            task,
        }
    }

    pub fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Path-style config for this mock; retries wait only a millisecond.
    pub fn config(&self) -> ClientConfig {
        let mut cfg = ClientConfig::new(
            BUCKET,
            "ap-guangzhou",
            Credentials::new(SECRET_ID, SECRET_KEY),
        )
        .with_endpoint(self.endpoint());
        cfg.retry = RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(5),
            budget: Duration::ZERO,
        };
        cfg
    }

    pub fn client(&self) -> Client {
        Client::new(self.config()).expect("client")
    }

    pub fn requests(&self) -> Vec<Recorded> {
        self.requests.lock().unwrap().clone()
    }

    pub fn count(&self) -> usize {
        self.requests.lock().unwrap().len()
    }

    /// The only request received (panics with the list otherwise).
    pub fn single(&self) -> Recorded {
        let all = self.requests();
        assert_eq!(all.len(), 1, "expected exactly one request, got {all:#?}");
        all.into_iter().next().unwrap()
    }
}
