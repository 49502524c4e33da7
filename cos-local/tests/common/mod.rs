//! Test helpers: a cos-local child process that is killed on drop, and a small signing client.

#![allow(dead_code)]

pub mod http;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use cos_protocol::sign::{sign, KeyTime, SignRequest};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

pub const SECRET_ID: &str = "AKIDTEST";
pub const SECRET_KEY: &str = "test-secret-key";
pub const BUCKET: &str = "examplebucket-1250000000";

/// A running `cos-local` binary; killed (SIGKILL) and reaped on drop, also when a test fails.
pub struct ServerProcess {
    child: Child,
    pub addr: String,
    pub data_dir: PathBuf,
}

impl ServerProcess {
    pub fn start(data_dir: &Path, extra: &[&str]) -> ServerProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_cos-local"))
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", "127.0.0.1:0"])
            .args(["--credentials", &format!("{SECRET_ID}:{SECRET_KEY}")])
            .args(["--bucket", BUCKET])
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("cos-local starts");
        let stdout = child.stdout.take().expect("stdout piped");
        let mut line = String::new();
        BufReader::new(stdout)
            .read_line(&mut line)
            .expect("reads the listening line");
        let addr = line
            .trim()
            .strip_prefix("cos-local listening on http://")
            .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
            .to_string();
        ServerProcess {
            child,
            addr,
            data_dir: data_dir.to_path_buf(),
        }
    }

    /// `kill -9` now (the Drop does the same for a server still running).
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Send SIGTERM and wait for the exit status.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let pid = libc::pid_t::try_from(self.child.id()).expect("pid fits");
        // SAFETY: plain kill(2) on our own child, which has not been reaped yet.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        self.child.wait().expect("child exits")
    }

    pub fn client(&self) -> Client {
        Client::new(&self.addr, SECRET_ID, SECRET_KEY)
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Encode a key for the request path like the Python SDK (`/` and `-_.~` kept).
const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
const QUERY_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

pub fn encode_path(key: &str) -> String {
    utf8_percent_encode(key, PATH_SET).to_string()
}

/// A path-style client that signs host, content headers, x-cos-* and all query params.
pub struct Client {
    pub addr: String,
    pub secret_id: String,
    pub secret_key: String,
    /// Seconds added to this machine's clock when signing (a client whose clock is off).
    pub clock_offset: i64,
    http: http::Client,
}

pub struct Resp {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    /// The `<Code>` of an error body.
    pub fn code(&self) -> String {
        let t = self.text();
        t.split_once("<Code>")
            .and_then(|(_, r)| r.split_once("</Code>"))
            .map(|(c, _)| c.to_string())
            .unwrap_or_default()
    }
    /// Text of the first `<name>` element.
    pub fn element(&self, name: &str) -> Option<String> {
        let t = self.text();
        let (_, rest) = t.split_once(&format!("<{name}>"))?;
        let (v, _) = rest.split_once(&format!("</{name}>"))?;
        Some(v.to_string())
    }
    pub fn elements(&self, name: &str) -> Vec<String> {
        let t = self.text();
        let open = format!("<{name}>");
        let close = format!("</{name}>");
        t.split(&open)
            .skip(1)
            .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string()))
            .collect()
    }
}

impl Client {
    pub fn new(addr: &str, id: &str, key: &str) -> Client {
        Client {
            addr: addr.to_string(),
            secret_id: id.to_string(),
            secret_key: key.to_string(),
            clock_offset: 0,
            http: http::Client::new(),
        }
    }

    /// Send a signed (or, with `signed = false`, anonymous) request to `/{bucket}/{key}`.
    #[allow(clippy::too_many_arguments)]
    pub async fn send_full(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
        signed: bool,
    ) -> Resp {
        self.try_send_full(method, bucket, key, query, headers, body, signed)
            .await
            .expect("request and response body complete")
    }

    /// Like `send_full`, but a broken connection or a short body is an Err.
    #[allow(clippy::too_many_arguments)]
    pub async fn try_send_full(
        &self,
        method: &str,
        bucket: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
        signed: bool,
    ) -> Result<Resp, http::Error> {
        let path = if bucket.is_empty() {
            "/".to_string()
        } else {
            format!("/{bucket}/{}", encode_path(key))
        };
        let qs: Vec<String> = query
            .iter()
            .map(|(k, v)| {
                if v.is_empty() {
                    format!("{k}=")
                } else {
                    format!("{k}={}", utf8_percent_encode(v, QUERY_SET))
                }
            })
            .collect();
        let url = if qs.is_empty() {
            format!("http://{}{path}", self.addr)
        } else {
            format!("http://{}{path}?{}", self.addr, qs.join("&"))
        };
        let method_v = http::Method::from_bytes(method.as_bytes()).expect("method");
        let mut req = self.http.request(method_v, &url);
        let mut to_sign: Vec<(String, String)> = vec![("host".into(), self.addr.clone())];
        for (n, v) in headers {
            req = req.header(*n, *v);
            to_sign.push((n.to_string(), v.to_string()));
        }
        if signed {
            let params: Vec<(String, String)> = query
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            let signed_key = if bucket.is_empty() {
                "/".to_string()
            } else {
                format!("/{bucket}/{key}")
            };
            let sig = sign(
                &self.secret_key,
                KeyTime::around_now(600, self.clock_offset),
                &SignRequest {
                    method,
                    key: &signed_key,
                    params: &params,
                    headers: &to_sign,
                },
            );
            req = req.header("Authorization", sig.authorization(&self.secret_id));
        }
        let resp = req.body(body).send().await?;
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await?.to_vec();
        Ok(Resp {
            status,
            headers,
            body,
        })
    }

    pub async fn send(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
    ) -> Resp {
        self.send_full(method, BUCKET, key, query, headers, body, true)
            .await
    }

    pub async fn put(&self, key: &str, body: &[u8]) -> Resp {
        self.send("PUT", key, &[], &[], body.to_vec()).await
    }

    pub async fn get(&self, key: &str) -> Resp {
        self.send("GET", key, &[], &[], Vec::new()).await
    }
}

/// Bytes that depend on their position, so an off-by-one shows.
pub fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i * 31 + seed as usize) % 251) as u8)
        .collect()
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::{Digest, Md5};
    hex::encode(Md5::digest(data))
}

/// Send one signed request over a raw TCP connection, byte for byte (the URL parser of an
/// HTTP client would normalise `..` segments away). Returns the whole response text.
pub fn raw_signed_request(
    addr: &str,
    method: &str,
    bucket: &str,
    key: &str,
    body: &[u8],
) -> String {
    use std::io::{Read, Write};
    let headers = vec![
        ("host".to_string(), addr.to_string()),
        ("content-length".to_string(), body.len().to_string()),
    ];
    let signed_key = format!("/{bucket}/{key}");
    let sig = sign(
        SECRET_KEY,
        KeyTime::around_now(600, 0),
        &SignRequest {
            method,
            key: &signed_key,
            params: &[],
            headers: &headers,
        },
    );
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let head = format!(
        "{method} /{bucket}/{} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: {}\r\nAuthorization: {}\r\nConnection: close\r\n\r\n",
        encode_path(key),
        body.len(),
        sig.authorization(SECRET_ID)
    );
    stream.write_all(head.as_bytes()).expect("write head");
    stream.write_all(body).expect("write body");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read response");
    String::from_utf8_lossy(&out).into_owned()
}

/// Send an unsigned admin request (`/_cos-local/...`) over a raw connection; returns the
/// status and the body text.
pub fn admin_request(addr: &str, method: &str, path_and_query: &str) -> (u16, String) {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(addr).expect("connect");
    let head = format!(
        "{method} {path_and_query} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).expect("write head");
    let mut out = Vec::new();
    stream.read_to_end(&mut out).expect("read response");
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

impl ServerProcess {
    /// Replace the fault setting at runtime (`PUT /_cos-local/faults?{query}`); panics unless 200.
    pub fn set_faults(&self, query: &str) -> String {
        let (status, body) =
            admin_request(&self.addr, "PUT", &format!("/_cos-local/faults?{query}"));
        assert_eq!(status, 200, "set faults {query}: {body}");
        body
    }

    pub fn clear_faults(&self) {
        let (status, body) = admin_request(&self.addr, "DELETE", "/_cos-local/faults");
        assert_eq!(status, 200, "clear faults: {body}");
    }
}
