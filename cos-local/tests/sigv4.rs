//! The S3 dialect of cos-local: AWS Signature V4 requests (header-signed, presigned, signed
//! payload, aws-chunked bodies) on the same buckets and credentials as q-sign.
//!
//! The requests are signed by the small SigV4 signer below, written from the AWS
//! documentation independently of the server's `sigv4.rs`, and checked against the
//! documentation's published example first.

mod common;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use common::{http, ServerProcess, BUCKET, SECRET_ID, SECRET_KEY};
use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

const REGION: &str = "us-east-1";
const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

// ---- an independent SigV4 signer ----

fn hmac256(key: &[u8], msg: &str) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length");
    mac.update(msg.as_bytes());
    mac.finalize().into_bytes().to_vec()
}

fn sha_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// RFC 3986 encoding, byte by byte: unreserved characters stay, `/` stays when asked.
fn uri_encode(s: &str, keep_slash: bool) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        let keep = b.is_ascii_alphanumeric()
            || matches!(b, b'-' | b'_' | b'.' | b'~')
            || (keep_slash && b == b'/');
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn amz_date(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    let dt = time::OffsetDateTime::from_unix_timestamp(secs).expect("valid time");
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        dt.year(),
        u8::from(dt.month()),
        dt.day(),
        dt.hour(),
        dt.minute(),
        dt.second()
    )
}

fn signing_key(secret: &str, date: &str, region: &str) -> Vec<u8> {
    let k = hmac256(format!("AWS4{secret}").as_bytes(), date);
    let k = hmac256(&k, region);
    let k = hmac256(&k, "s3");
    hmac256(&k, "aws4_request")
}

/// The signature of a request: `headers` are (lower-case name, value), `query` unencoded.
#[allow(clippy::too_many_arguments)]
fn signature(
    secret: &str,
    method: &str,
    path: &str,
    query: &[(String, String)],
    headers: &[(String, String)],
    payload_hash: &str,
    date: &str,
    region: &str,
) -> (String, String) {
    let mut q: Vec<(String, String)> = query
        .iter()
        .map(|(k, v)| (uri_encode(k, false), uri_encode(v, false)))
        .collect();
    q.sort();
    let canonical_query = q
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let mut h: Vec<(String, String)> = headers
        .iter()
        .map(|(k, v)| (k.to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    h.sort();
    let canonical_headers: String = h.iter().map(|(k, v)| format!("{k}:{v}\n")).collect();
    let signed_headers = h
        .iter()
        .map(|(k, _)| k.as_str())
        .collect::<Vec<_>>()
        .join(";");
    let canonical_request = format!(
        "{method}\n{}\n{canonical_query}\n{canonical_headers}\n{signed_headers}\n{payload_hash}",
        uri_encode(path, true)
    );
    let scope = format!("{}/{region}/s3/aws4_request", &date[..8]);
    let string_to_sign = format!(
        "AWS4-HMAC-SHA256\n{date}\n{scope}\n{}",
        sha_hex(canonical_request.as_bytes())
    );
    let sig = hex::encode(hmac256(
        &signing_key(secret, &date[..8], region),
        &string_to_sign,
    ));
    (signed_headers, sig)
}

/// The body of an aws-chunked upload, each chunk signed in a chain from `seed`.
fn chunked_body(secret: &str, date: &str, seed: &str, data: &[u8], chunk: usize) -> Vec<u8> {
    let key = signing_key(secret, &date[..8], REGION);
    let scope = format!("{}/{REGION}/s3/aws4_request", &date[..8]);
    let mut previous = seed.to_string();
    let mut out = Vec::new();
    let mut pieces: Vec<&[u8]> = data.chunks(chunk).collect();
    pieces.push(&[]);
    for piece in pieces {
        let sts = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{date}\n{scope}\n{previous}\n{EMPTY_SHA256}\n{}",
            sha_hex(piece)
        );
        let sig = hex::encode(hmac256(&key, &sts));
        out.extend_from_slice(format!("{:x};chunk-signature={sig}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
        previous = sig;
    }
    out
}

/// The body of a `STREAMING-UNSIGNED-PAYLOAD-TRAILER` upload (what the AWS SDKs send over
/// HTTPS): plain chunks, then the data's CRC-32 as a trailer (`crc_xor` spoils it).
fn unsigned_trailer_body(data: &[u8], chunk: usize, crc_xor: u32) -> Vec<u8> {
    use base64::Engine;
    let mut out = Vec::new();
    for piece in data.chunks(chunk) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    let crc = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC).checksum(data) ^ crc_xor;
    let value = base64::engine::general_purpose::STANDARD.encode(crc.to_be_bytes());
    out.extend_from_slice(format!("0\r\nx-amz-checksum-crc32:{value}\r\n\r\n").as_bytes());
    out
}

#[test]
fn the_test_signer_reproduces_the_aws_documentation_example() {
    // "Example: GET Object" of the AWS Signature Version 4 documentation for S3.
    let headers = vec![
        (
            "host".to_string(),
            "examplebucket.s3.amazonaws.com".to_string(),
        ),
        ("range".to_string(), "bytes=0-9".to_string()),
        ("x-amz-content-sha256".to_string(), EMPTY_SHA256.to_string()),
        ("x-amz-date".to_string(), "20130524T000000Z".to_string()),
    ];
    let (signed, sig) = signature(
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "GET",
        "/test.txt",
        &[],
        &headers,
        EMPTY_SHA256,
        "20130524T000000Z",
        "us-east-1",
    );
    assert_eq!(signed, "host;range;x-amz-content-sha256;x-amz-date");
    assert_eq!(
        sig,
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    );
    // "Example: Presigned URL" (query string authentication) of the same documentation.
    let query: Vec<(String, String)> = [
        ("X-Amz-Algorithm", "AWS4-HMAC-SHA256"),
        (
            "X-Amz-Credential",
            "AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request",
        ),
        ("X-Amz-Date", "20130524T000000Z"),
        ("X-Amz-Expires", "86400"),
        ("X-Amz-SignedHeaders", "host"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    let (_, sig) = signature(
        "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "GET",
        "/test.txt",
        &query,
        &headers[..1],
        "UNSIGNED-PAYLOAD",
        "20130524T000000Z",
        "us-east-1",
    );
    assert_eq!(
        sig,
        "aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404"
    );
}

// ---- a small S3 client on top of it ----

enum Payload<'a> {
    /// x-amz-content-sha256 = the body's hash.
    Signed,
    Unsigned,
    /// x-amz-content-sha256 = this value, whatever the body.
    Claimed(&'a str),
    /// aws-chunked with this chunk size.
    Chunked(usize),
    /// aws-chunked without chunk signatures, a CRC-32 trailer after the last chunk (xor-ed
    /// with the second value: 0 for the right one).
    UnsignedTrailer(usize, u32),
}

struct S3 {
    addr: String,
    access_key: String,
    secret: String,
    /// Seconds added to this machine's clock when signing.
    clock_offset: i64,
    /// Virtual-host style (`{bucket}.localhost:port`) instead of path style.
    virtual_host: bool,
    http: http::Client,
}

struct Resp {
    status: u16,
    headers: http::HeaderMap,
    body: Vec<u8>,
}

impl Resp {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    }
    fn code(&self) -> String {
        self.elements("Code").into_iter().next().unwrap_or_default()
    }
    fn elements(&self, name: &str) -> Vec<String> {
        let t = self.text();
        let (open, close) = (format!("<{name}>"), format!("</{name}>"));
        t.split(&open)
            .skip(1)
            .filter_map(|s| s.split_once(&close).map(|(v, _)| v.to_string()))
            .collect()
    }
}

impl S3 {
    fn new(server: &ServerProcess) -> S3 {
        S3 {
            addr: server.addr.clone(),
            access_key: SECRET_ID.to_string(),
            secret: SECRET_KEY.to_string(),
            clock_offset: 0,
            virtual_host: false,
            http: http::Client::new(),
        }
    }

    fn now(&self) -> SystemTime {
        let now = SystemTime::now();
        let d = Duration::from_secs(self.clock_offset.unsigned_abs());
        if self.clock_offset >= 0 {
            now + d
        } else {
            now - d
        }
    }

    /// (host header, signed path) of an object.
    fn target(&self, key: &str) -> (String, String) {
        if self.virtual_host {
            let port = self.addr.rsplit_once(':').map(|(_, p)| p).unwrap_or("");
            (format!("{BUCKET}.localhost:{port}"), format!("/{key}"))
        } else {
            (self.addr.clone(), format!("/{BUCKET}/{key}"))
        }
    }

    fn url(&self, path: &str, query: &[(String, String)]) -> String {
        let mut url = format!("http://{}{}", self.addr, uri_encode(path, true));
        if !query.is_empty() {
            let qs: Vec<String> = query
                .iter()
                .map(|(k, v)| format!("{}={}", uri_encode(k, false), uri_encode(v, false)))
                .collect();
            url.push('?');
            url.push_str(&qs.join("&"));
        }
        url
    }

    async fn send(
        &self,
        method: &str,
        key: &str,
        query: &[(&str, &str)],
        headers: &[(&str, &str)],
        body: Vec<u8>,
        payload: Payload<'_>,
    ) -> Resp {
        let (host, path) = self.target(key);
        let query: Vec<(String, String)> = query
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        let date = amz_date(self.now());
        let mut signed: Vec<(String, String)> = vec![
            ("host".into(), host.clone()),
            ("x-amz-date".into(), date.clone()),
        ];
        for (n, v) in headers {
            signed.push((n.to_string(), v.to_string()));
        }
        let (payload_hash, chunk) = match payload {
            Payload::Signed => (sha_hex(&body), None),
            Payload::Unsigned => ("UNSIGNED-PAYLOAD".to_string(), None),
            Payload::Claimed(h) => (h.to_string(), None),
            Payload::Chunked(size) | Payload::UnsignedTrailer(size, _) => {
                signed.push(("content-encoding".into(), "aws-chunked".into()));
                signed.push((
                    "x-amz-decoded-content-length".into(),
                    body.len().to_string(),
                ));
                match payload {
                    Payload::UnsignedTrailer(_, xor) => {
                        signed.push(("x-amz-trailer".into(), "x-amz-checksum-crc32".into()));
                        (
                            "STREAMING-UNSIGNED-PAYLOAD-TRAILER".to_string(),
                            Some((size, Some(xor))),
                        )
                    }
                    _ => (
                        "STREAMING-AWS4-HMAC-SHA256-PAYLOAD".to_string(),
                        Some((size, None)),
                    ),
                }
            }
        };
        signed.push(("x-amz-content-sha256".into(), payload_hash.clone()));
        let (signed_headers, sig) = signature(
            &self.secret,
            method,
            &path,
            &query,
            &signed,
            &payload_hash,
            &date,
            REGION,
        );
        let body = match chunk {
            Some((size, None)) => chunked_body(&self.secret, &date, &sig, &body, size),
            Some((size, Some(xor))) => unsigned_trailer_body(&body, size, xor),
            None => body,
        };
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={}/{}/{REGION}/s3/aws4_request, SignedHeaders={signed_headers}, Signature={sig}",
            self.access_key,
            &date[..8]
        );
        let mut req = self
            .http
            .request(
                http::Method::from_bytes(method.as_bytes()).expect("method"),
                self.url(&path, &query),
            )
            .header("authorization", auth);
        for (n, v) in &signed {
            req = req.header(n.as_str(), v.as_str());
        }
        let resp = req.body(body).send().await.expect("response");
        let status = resp.status().as_u16();
        let headers = resp.headers().clone();
        let body = resp.bytes().await.expect("body").to_vec();
        Resp {
            status,
            headers,
            body,
        }
    }

    async fn put(&self, key: &str, headers: &[(&str, &str)], body: &[u8]) -> Resp {
        self.send("PUT", key, &[], headers, body.to_vec(), Payload::Signed)
            .await
    }

    async fn get(&self, key: &str) -> Resp {
        self.send("GET", key, &[], &[], Vec::new(), Payload::Signed)
            .await
    }

    /// A presigned GET URL valid for `expires` seconds from `signed_at`.
    fn presign(&self, key: &str, signed_at: SystemTime, expires: u64) -> String {
        let (host, path) = self.target(key);
        let date = amz_date(signed_at);
        let query: Vec<(String, String)> = [
            ("X-Amz-Algorithm", "AWS4-HMAC-SHA256".to_string()),
            (
                "X-Amz-Credential",
                format!(
                    "{}/{}/{REGION}/s3/aws4_request",
                    self.access_key,
                    &date[..8]
                ),
            ),
            ("X-Amz-Date", date.clone()),
            ("X-Amz-Expires", expires.to_string()),
            ("X-Amz-SignedHeaders", "host".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let (_, sig) = signature(
            &self.secret,
            "GET",
            &path,
            &query,
            &[("host".to_string(), host)],
            "UNSIGNED-PAYLOAD",
            &date,
            REGION,
        );
        let mut q = query;
        q.push(("X-Amz-Signature".to_string(), sig));
        self.url(&path, &q)
    }
}

fn start() -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &[]);
    (dir, server)
}

// ---- the tests ----

#[tokio::test]
async fn header_signed_put_get_head_with_metadata_seen_by_q_sign() {
    let (_dir, server) = start();
    let s3 = S3::new(&server);
    let body = common::pattern(100_000, 3);
    let r = s3
        .put(
            "dir/a b+c.txt",
            &[("x-amz-meta-color", "blue"), ("content-type", "text/plain")],
            &body,
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{}\"", common::md5_hex(&body)))
    );
    assert!(r.header("x-amz-request-id").is_some_and(|v| !v.is_empty()));

    let got = s3.get("dir/a b+c.txt").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, body);
    assert_eq!(got.header("x-amz-meta-color").as_deref(), Some("blue"));
    assert_eq!(got.header("content-type").as_deref(), Some("text/plain"));
    assert!(got.header("last-modified").is_some());

    let ranged = s3
        .send(
            "GET",
            "dir/a b+c.txt",
            &[],
            &[("range", "bytes=10-19")],
            Vec::new(),
            Payload::Unsigned,
        )
        .await;
    assert_eq!(ranged.status, 206);
    assert_eq!(ranged.body, &body[10..20]);

    // The same object through q-sign: the S3 metadata is COS user metadata.
    let c = server.client();
    let head = c.send("HEAD", "dir/a b+c.txt", &[], &[], Vec::new()).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-cos-meta-color").as_deref(), Some("blue"));
    // And the other way round: written through q-sign, read through S3.
    let r = c
        .send(
            "PUT",
            "from-cos",
            &[],
            &[("x-cos-meta-origin", "cos")],
            b"cos body".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    let head = s3
        .send("HEAD", "from-cos", &[], &[], Vec::new(), Payload::Signed)
        .await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("x-amz-meta-origin").as_deref(), Some("cos"));
    assert_eq!(head.header("content-length").as_deref(), Some("8"));

    // Virtual-host style, same credentials, same bucket.
    let vh = S3 {
        virtual_host: true,
        ..S3::new(&server)
    };
    let got = vh.get("from-cos").await;
    assert_eq!(got.status, 200, "{}", got.text());
    assert_eq!(got.body, b"cos body");
}

#[tokio::test]
async fn presigned_get_valid_tampered_and_expired() {
    let (_dir, server) = start();
    let s3 = S3::new(&server);
    assert_eq!(
        s3.put("shared.txt", &[], b"presigned body").await.status,
        200
    );
    let http = http::Client::new();
    let fetch = |url: String| {
        let http = http.clone();
        async move {
            let r = http.get(url).send().await.expect("response");
            let status = r.status().as_u16();
            let body = r.bytes().await.expect("body").to_vec();
            Resp {
                status,
                headers: Default::default(),
                body,
            }
        }
    };

    let url = s3.presign("shared.txt", SystemTime::now(), 300);
    let r = fetch(url.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"presigned body");

    // Signed an hour ago for 24 hours: still valid (a presigned URL is used later).
    let earlier = SystemTime::now() - Duration::from_secs(3600);
    let r = fetch(s3.presign("shared.txt", earlier, 86_400)).await;
    assert_eq!(r.status, 200, "{}", r.text());

    let tampered = url.replace("shared.txt", "shared.txt2");
    let r = fetch(tampered).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "SignatureDoesNotMatch");

    let r = fetch(s3.presign("shared.txt", earlier, 60)).await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "AccessDenied");
    assert!(r.text().contains("expired"), "{}", r.text());

    let wrong = S3 {
        secret: "not-the-secret".to_string(),
        ..S3::new(&server)
    };
    let r = fetch(wrong.presign("shared.txt", SystemTime::now(), 300)).await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (403, "SignatureDoesNotMatch")
    );
}

#[tokio::test]
async fn bad_signature_unknown_key_and_skew_are_refused_and_change_nothing() {
    let (_dir, server) = start();
    let s3 = S3::new(&server);
    assert_eq!(s3.put("k", &[], b"original").await.status, 200);

    let wrong = S3 {
        secret: "not-the-secret".to_string(),
        ..S3::new(&server)
    };
    let r = wrong.put("k", &[], b"overwritten").await;
    assert_eq!(r.status, 403);
    assert_eq!(r.code(), "SignatureDoesNotMatch");
    let r = wrong
        .send("DELETE", "k", &[], &[], Vec::new(), Payload::Signed)
        .await;
    assert_eq!(r.status, 403);

    let unknown = S3 {
        access_key: "AKIDNOBODY".to_string(),
        ..S3::new(&server)
    };
    let r = unknown.get("k").await;
    assert_eq!((r.status, r.code().as_str()), (403, "InvalidAccessKeyId"));

    for offset in [20 * 60, -20 * 60] {
        let skewed = S3 {
            clock_offset: offset,
            ..S3::new(&server)
        };
        let r = skewed.put("k", &[], b"skewed").await;
        assert_eq!(r.status, 403, "offset {offset}");
        assert_eq!(r.code(), "RequestTimeTooSkewed");
    }
    // Ten minutes off is within the 15 allowed.
    let near = S3 {
        clock_offset: 600,
        ..S3::new(&server)
    };
    assert_eq!(near.get("k").await.status, 200);

    assert_eq!(s3.get("k").await.body, b"original");
}

#[tokio::test]
async fn signed_payload_mismatch_stores_nothing() {
    let (_dir, server) = start();
    let s3 = S3::new(&server);
    assert_eq!(s3.put("kept", &[], b"first version").await.status, 200);
    let other = sha_hex(b"something else");
    for key in ["kept", "new"] {
        let r = s3
            .send(
                "PUT",
                key,
                &[],
                &[],
                common::pattern(300_000, 1),
                Payload::Claimed(&other),
            )
            .await;
        assert_eq!(r.status, 400, "{}", r.text());
        assert_eq!(r.code(), "XAmzContentSHA256Mismatch");
    }
    assert_eq!(s3.get("kept").await.body, b"first version");
    let r = s3.get("new").await;
    assert_eq!((r.status, r.code().as_str()), (404, "NoSuchKey"));

    // UNSIGNED-PAYLOAD takes the body as it comes.
    let r = s3
        .send(
            "PUT",
            "new",
            &[],
            &[],
            b"unsigned".to_vec(),
            Payload::Unsigned,
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(s3.get("new").await.body, b"unsigned");
}

#[tokio::test]
async fn aws_chunked_upload_is_decoded_and_its_chunk_signatures_checked() {
    let (_dir, server) = start();
    let s3 = S3::new(&server);
    let data = common::pattern(200_000, 9);
    let r = s3
        .send(
            "PUT",
            "chunked.bin",
            &[],
            &[("x-amz-meta-kind", "chunked")],
            data.clone(),
            Payload::Chunked(64 * 1024),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.header("etag"),
        Some(format!("\"{}\"", common::md5_hex(&data)))
    );
    let got = s3.get("chunked.bin").await;
    assert_eq!(got.body, data);
    assert_eq!(got.header("content-length"), Some("200000".to_string()));
    // aws-chunked is a transfer detail, not the object's Content-Encoding.
    assert_eq!(got.header("content-encoding"), None);
    assert_eq!(got.header("x-amz-meta-kind").as_deref(), Some("chunked"));

    // The unsigned variant with a trailer, as the AWS SDKs send over HTTPS.
    let r = s3
        .send(
            "PUT",
            "trailer.bin",
            &[],
            &[],
            data.clone(),
            Payload::UnsignedTrailer(50_000, 0),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(s3.get("trailer.bin").await.body, data);
    // A trailer checksum that does not match: 400 BadDigest, the old object kept.
    let r = s3
        .send(
            "PUT",
            "trailer.bin",
            &[],
            &[],
            common::pattern(1000, 1),
            Payload::UnsignedTrailer(300, 1),
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "BadDigest"),
        "{}",
        r.text()
    );
    assert_eq!(s3.get("trailer.bin").await.body, data);
    // The same with the checksum in a header (as boto3 sends over HTTP).
    let r = s3
        .put(
            "header-sum.bin",
            &[("x-amz-checksum-crc32", "AAAAAA==")],
            b"not that",
        )
        .await;
    assert_eq!(
        (r.status, r.code().as_str()),
        (400, "BadDigest"),
        "{}",
        r.text()
    );
    let r = s3.get("header-sum.bin").await;
    assert_eq!(r.status, 404);

    // A chunk signed with another key fails the chain: 403, nothing stored.
    let (host, path) = s3.target("tampered.bin");
    let date = amz_date(SystemTime::now());
    let payload = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
    let headers = vec![
        ("host".to_string(), host),
        ("x-amz-date".to_string(), date.clone()),
        ("content-encoding".to_string(), "aws-chunked".to_string()),
        (
            "x-amz-decoded-content-length".to_string(),
            "1000".to_string(),
        ),
        ("x-amz-content-sha256".to_string(), payload.to_string()),
    ];
    let (signed_headers, seed) = signature(
        SECRET_KEY,
        "PUT",
        &path,
        &[],
        &headers,
        payload,
        &date,
        REGION,
    );
    let mut body = chunked_body(SECRET_KEY, &date, &seed, &[7u8; 1000], 512);
    // Flip one data byte of the first chunk.
    let first_data = body.iter().position(|b| *b == b'\n').expect("header line") + 1;
    body[first_data] ^= 1;
    let mut req = http::Client::new()
        .put(s3.url(&path, &[]))
        .header(
            "authorization",
            format!(
                "AWS4-HMAC-SHA256 Credential={SECRET_ID}/{}/{REGION}/s3/aws4_request, SignedHeaders={signed_headers}, Signature={seed}",
                &date[..8]
            ),
        );
    for (n, v) in &headers {
        req = req.header(n.as_str(), v.as_str());
    }
    let r = req.body(body).send().await.expect("response");
    assert_eq!(r.status().as_u16(), 403);
    let text = r.text().await.expect("body");
    assert!(text.contains("SignatureDoesNotMatch"), "{text}");
    let r = s3.get("tampered.bin").await;
    assert_eq!((r.status, r.code().as_str()), (404, "NoSuchKey"));
}

#[tokio::test]
async fn copy_with_metadata_directive_acl_and_storage_class() {
    let (_dir, server) = start();
    let s3 = S3::new(&server);
    let r = s3
        .put(
            "src",
            &[("x-amz-meta-mode", "33188"), ("content-type", "text/plain")],
            b"copy me",
        )
        .await;
    assert_eq!(r.status, 200);
    let source = format!("/{BUCKET}/src");

    // COPY (the default): the source's metadata.
    let r = s3
        .put(
            "copied",
            &[("x-amz-copy-source", &source), ("x-amz-meta-mode", "1")],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(r.text().contains("<CopyObjectResult>"), "{}", r.text());
    let head = s3
        .send("HEAD", "copied", &[], &[], Vec::new(), Payload::Signed)
        .await;
    assert_eq!(head.header("x-amz-meta-mode").as_deref(), Some("33188"));

    // REPLACE: the request's metadata, also onto the object itself (a chmod of s3fs).
    let r = s3
        .put(
            "src",
            &[
                ("x-amz-copy-source", &source),
                ("x-amz-metadata-directive", "REPLACE"),
                ("x-amz-meta-mode", "33261"),
                ("x-amz-storage-class", "STANDARD_IA"),
                ("x-amz-acl", "public-read"),
                ("content-type", "application/x-sh"),
            ],
            b"",
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let head = s3
        .send("HEAD", "src", &[], &[], Vec::new(), Payload::Signed)
        .await;
    assert_eq!(head.header("x-amz-meta-mode").as_deref(), Some("33261"));
    assert_eq!(
        head.header("x-amz-storage-class").as_deref(),
        Some("STANDARD_IA")
    );
    assert_eq!(
        head.header("content-type").as_deref(),
        Some("application/x-sh")
    );
    assert_eq!(s3.get("src").await.body, b"copy me");
    // x-amz-acl public-read: readable without a signature.
    let anon = http::get(format!("http://{}/{BUCKET}/src", server.addr))
        .await
        .expect("response");
    assert_eq!(anon.status().as_u16(), 200);
    // The q-sign side sees the same metadata.
    let head = server
        .client()
        .send("HEAD", "src", &[], &[], Vec::new())
        .await;
    assert_eq!(head.header("x-cos-meta-mode").as_deref(), Some("33261"));

    // Copy to itself without REPLACE is refused, as in S3 and COS.
    let r = s3.put("src", &[("x-amz-copy-source", &source)], b"").await;
    assert_eq!(r.status, 400);
}

#[tokio::test]
async fn list_objects_v2_pages_with_continuation_tokens() {
    let (_dir, server) = start();
    let s3 = S3::new(&server);
    let mut keys = vec!["a/1", "a/2", "a/3", "b/1", "b/x/2", "c", "d", "e e", "f+f"];
    for k in &keys {
        assert_eq!(s3.put(k, &[], k.as_bytes()).await.status, 200);
    }
    keys.sort();

    let list = |query: Vec<(&'static str, String)>| {
        let s3 = &s3;
        async move {
            let mut q: Vec<(&str, &str)> = vec![("list-type", "2")];
            q.extend(query.iter().map(|(k, v)| (*k, v.as_str())));
            let r = s3
                .send("GET", "", &q, &[], Vec::new(), Payload::Signed)
                .await;
            assert_eq!(r.status, 200, "{}", r.text());
            r
        }
    };

    // Pages of two, following NextContinuationToken.
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut q = vec![("max-keys", "2".to_string())];
        if let Some(t) = &token {
            q.push(("continuation-token", t.clone()));
        }
        let r = list(q).await;
        let page = r.elements("Key");
        assert_eq!(r.elements("KeyCount"), vec![page.len().to_string()]);
        assert!(
            r.elements("Owner").is_empty(),
            "no Owner without fetch-owner"
        );
        if let Some(t) = &token {
            assert_eq!(r.elements("ContinuationToken"), vec![t.clone()]);
        }
        seen.extend(page);
        pages += 1;
        match r.elements("NextContinuationToken").into_iter().next() {
            Some(t) => {
                assert_eq!(r.elements("IsTruncated"), vec!["true"]);
                token = Some(t);
            }
            None => {
                assert_eq!(r.elements("IsTruncated"), vec!["false"]);
                break;
            }
        }
        assert!(pages < 20, "paging does not end");
    }
    assert_eq!(pages, 5);
    assert_eq!(seen, keys);

    // start-after, fetch-owner.
    let r = list(vec![
        ("start-after", "b/x/2".to_string()),
        ("fetch-owner", "true".to_string()),
    ])
    .await;
    assert_eq!(r.elements("Key"), vec!["c", "d", "e e", "f+f"]);
    assert_eq!(r.elements("StartAfter"), vec!["b/x/2"]);
    assert_eq!(r.elements("Owner").len(), 4);

    // Delimiter: common prefixes count in KeyCount and page like keys.
    let r = list(vec![
        ("delimiter", "/".to_string()),
        ("max-keys", "3".to_string()),
    ])
    .await;
    assert_eq!(r.elements("Key"), vec!["c"]);
    assert_eq!(
        r.elements("Prefix")
            .into_iter()
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>(),
        vec!["a/", "b/"]
    );
    assert_eq!(r.elements("KeyCount"), vec!["3"]);
    let token = r.elements("NextContinuationToken").remove(0);
    let r = list(vec![
        ("delimiter", "/".to_string()),
        ("continuation-token", token),
    ])
    .await;
    assert_eq!(r.elements("Key"), vec!["d", "e e", "f+f"]);

    // encoding-type=url, as boto3 asks for by default.
    let r = list(vec![
        ("prefix", "e".to_string()),
        ("encoding-type", "url".to_string()),
    ])
    .await;
    assert_eq!(r.elements("Key"), vec!["e%20e"]);

    let r = s3
        .send(
            "GET",
            "",
            &[("list-type", "2"), ("continuation-token", "***")],
            &[],
            Vec::new(),
            Payload::Signed,
        )
        .await;
    assert_eq!(r.status, 400);
}
