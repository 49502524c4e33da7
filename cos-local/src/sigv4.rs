//! The S3 dialect: AWS Signature Version 4 verification beside q-sign, on the same buckets and
//! the same credentials (SecretId = access key id, SecretKey = secret access key).
//!
//! Verified: the `Authorization: AWS4-HMAC-SHA256 Credential=...` header form and the
//! presigned query form (`X-Amz-Algorithm`, `X-Amz-Credential`, `X-Amz-Date`, `X-Amz-Expires`,
//! `X-Amz-SignedHeaders`, `X-Amz-Signature`); any region and the services `s3` and `cos` in the
//! credential scope; the payload as `UNSIGNED-PAYLOAD`, as the hex SHA-256 of the body (checked
//! while the body streams in: a mismatch is 400 XAmzContentSHA256Mismatch and nothing is
//! stored), or as an `aws-chunked` body (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD`, every chunk
//! signature checked; `STREAMING-UNSIGNED-PAYLOAD-TRAILER` and
//! `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER` decoded, the trailer signature read but not
//! checked). Flexible checksums (`x-amz-checksum-*`, in a header or a trailer) are checked
//! (400 BadDigest). A request time more than 15 minutes away from the server's is 403
//! RequestTimeTooSkewed.
//!
//! The request is then served by the COS handlers: [`translate_headers`] gives every S3 header
//! with a COS meaning its `x-cos-*` twin (`x-amz-meta-*`, `x-amz-copy-source*`,
//! `x-amz-metadata-directive`, `x-amz-acl`, `x-amz-grant-*`, `x-amz-storage-class`), and
//! [`alias_response_headers`] gives the answer the `x-amz-*` names S3 clients read.

use std::sync::{Arc, Mutex};

use bytes::{Buf, Bytes, BytesMut};
use futures::StreamExt;
use hmac::{Hmac, KeyInit, Mac};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use hyper::StatusCode;
use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha2::{Digest, Sha256};

use crate::auth::Credentials;
use crate::error::CosErr;
use crate::server::BodyStream;

pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
pub const STREAMING_PAYLOAD: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
pub const STREAMING_PAYLOAD_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// The hex SHA-256 of nothing.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// How far a request's time may be from the server's.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
/// The longest validity of a presigned URL (7 days, as S3).
pub const MAX_EXPIRES_SECS: i64 = 7 * 24 * 3600;
/// The longest chunk header line of an aws-chunked body (`size;chunk-signature=64 hex`, or a
/// trailer line) that is accepted.
const MAX_CHUNK_LINE: usize = 4096;

/// Unreserved characters (RFC 3986) stay, everything else is `%XX` (upper-case hex).
const URI_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');
/// The same, with `/` kept (object paths).
const PATH_SET: &AsciiSet = &URI_SET.remove(b'/');

/// True if the request is signed the S3 way (header or presigned query form). A Signature
/// Version 2 request (`AWS AKID:sig`, `?AWSAccessKeyId=..&Signature=..`) counts too, so that
/// [`verify`] refuses it instead of it passing as anonymous.
pub fn is_sigv4(headers: &HeaderMap, raw_query: &str) -> bool {
    if let Some(auth) = headers.get(hyper::header::AUTHORIZATION) {
        return auth.as_bytes().starts_with(ALGORITHM.as_bytes())
            || auth.as_bytes().starts_with(b"AWS ");
    }
    raw_query.split('&').any(|p| {
        matches!(
            p.split('=').next(),
            Some("X-Amz-Algorithm" | "AWSAccessKeyId")
        )
    })
}

fn sigv2_refused() -> CosErr {
    CosErr::invalid_request(
        "cos-local verifies AWS Signature Version 4 only (AWS4-HMAC-SHA256); sign with \
         signature version 4 (boto3: Config(signature_version=\"s3v4\")).",
    )
}

/// The parts of a received request the signature covers, as they came over the wire.
pub struct Request<'a> {
    pub method: &'a str,
    /// The request-target path, still percent-encoded as sent.
    pub raw_path: &'a str,
    pub raw_query: &'a str,
    pub headers: &'a HeaderMap,
}

/// What the signature says about the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    Unsigned,
    /// The body's SHA-256, to be checked as it streams in.
    Sha256([u8; 32]),
    /// An aws-chunked body; `signed`: every chunk carries a signature chained from the seed
    /// signature; `trailer`: trailing headers follow the last chunk.
    Chunked {
        signed: bool,
        trailer: bool,
    },
}

/// A verified request.
#[derive(Debug, Clone)]
pub struct Verified {
    pub access_key: String,
    pub payload: Payload,
    /// The flexible checksum (`x-amz-checksum-*`) the body must match, if the request names one.
    pub checksum: Option<ChecksumSpec>,
    signing_key: [u8; 32],
    /// The request's signature, the seed of the chunk signature chain.
    seed_signature: String,
    amz_date: String,
    scope: String,
}

fn malformed_header(message: impl Into<String>) -> CosErr {
    CosErr::new(
        StatusCode::BAD_REQUEST,
        "AuthorizationHeaderMalformed",
        message,
    )
}

fn malformed_query(message: impl Into<String>) -> CosErr {
    CosErr::new(
        StatusCode::BAD_REQUEST,
        "AuthorizationQueryParametersError",
        message,
    )
}

fn signature_mismatch() -> CosErr {
    CosErr::new(
        StatusCode::FORBIDDEN,
        "SignatureDoesNotMatch",
        "The request signature we calculated does not match the signature you provided. \
         Check your key and signing method.",
    )
}

/// `X-Amz-Credential` / `Credential=`: `AKID/20130524/us-east-1/s3/aws4_request`.
struct Credential {
    access_key: String,
    date: String,
    region: String,
    service: String,
}

fn parse_credential(value: &str) -> Option<Credential> {
    // The access key id itself never contains '/', so split from the right.
    let mut parts = value.rsplitn(5, '/');
    let terminator = parts.next()?;
    let service = parts.next()?;
    let region = parts.next()?;
    let date = parts.next()?;
    let access_key = parts.next()?;
    let ok = terminator == "aws4_request"
        && (service == "s3" || service == "cos")
        && date.len() == 8
        && date.bytes().all(|b| b.is_ascii_digit())
        && !access_key.is_empty();
    ok.then(|| Credential {
        access_key: access_key.to_string(),
        date: date.to_string(),
        region: region.to_string(),
        service: service.to_string(),
    })
}

/// `20130524T000000Z` -> Unix seconds.
pub fn parse_amz_date(value: &str) -> Option<i64> {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(value, &fmt)
        .ok()
        .map(|t| t.assume_utc().unix_timestamp())
}

/// Unix seconds -> `20130524T000000Z`.
pub fn format_amz_date(secs: i64) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::OffsetDateTime::from_unix_timestamp(secs)
        .ok()
        .and_then(|t| t.format(&fmt).ok())
        .unwrap_or_default()
}

fn hmac(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // HMAC takes keys of any length; the error arm cannot happen.
    match Hmac::<Sha256>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(msg);
            mac.finalize().into_bytes().into()
        }
        Err(_) => [0; 32],
    }
}

fn sha256_hex(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// The SigV4 signing key of a secret for a date, region and service.
pub fn signing_key(secret: &str, date: &str, region: &str, service: &str) -> [u8; 32] {
    let k = hmac(format!("AWS4{secret}").as_bytes(), date.as_bytes());
    let k = hmac(&k, region.as_bytes());
    let k = hmac(&k, service.as_bytes());
    hmac(&k, b"aws4_request")
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The canonical query string: every parameter (but `X-Amz-Signature` of a presigned URL)
/// percent-decoded, then encoded the SigV4 way and sorted by name, then value.
fn canonical_query(raw_query: &str, presigned: bool) -> String {
    let mut pairs: Vec<(String, String)> = raw_query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            let dec = |s: &str| percent_decode_str(s).collect::<Vec<u8>>();
            let enc = |b: Vec<u8>| percent_encoding::percent_encode(&b, URI_SET).to_string();
            (enc(dec(k)), enc(dec(v)))
        })
        .filter(|(k, _)| !(presigned && k == "X-Amz-Signature"))
        .collect();
    pairs.sort();
    pairs
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("&")
}

/// The canonical URIs a client may have signed: the path as sent and the path re-encoded the
/// SigV4 way (clients differ in which characters they leave unencoded on the wire).
fn canonical_uris(raw_path: &str) -> Vec<String> {
    let raw = if raw_path.is_empty() { "/" } else { raw_path };
    let decoded = percent_decode_str(raw).collect::<Vec<u8>>();
    let reencoded = percent_encoding::percent_encode(&decoded, PATH_SET).to_string();
    let mut out = vec![raw.to_string()];
    if reencoded != raw {
        out.push(reencoded);
    }
    out
}

/// `name:value\n` for every signed header: values of a repeated header joined by `,`, each
/// trimmed, runs of spaces folded into one. None: a signed header is absent.
fn canonical_headers(headers: &HeaderMap, signed: &[&str]) -> Option<String> {
    let mut out = String::new();
    for name in signed {
        let mut values = headers.get_all(*name).iter().peekable();
        values.peek()?;
        let joined = values
            .map(|v| {
                String::from_utf8_lossy(v.as_bytes())
                    .split_whitespace()
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join(",");
        out.push_str(name);
        out.push(':');
        out.push_str(&joined);
        out.push('\n');
    }
    Some(out)
}

/// The canonical request and its string to sign.
#[derive(Debug, Clone)]
pub struct Canonical {
    pub canonical_request: String,
    pub string_to_sign: String,
}

#[allow(clippy::too_many_arguments)]
fn canonical(
    method: &str,
    uri: &str,
    query: &str,
    headers: &str,
    signed_headers: &str,
    payload_hash: &str,
    amz_date: &str,
    scope: &str,
) -> Canonical {
    let canonical_request =
        format!("{method}\n{uri}\n{query}\n{headers}\n{signed_headers}\n{payload_hash}");
    let string_to_sign = format!(
        "{ALGORITHM}\n{amz_date}\n{scope}\n{}",
        sha256_hex(canonical_request.as_bytes())
    );
    Canonical {
        canonical_request,
        string_to_sign,
    }
}

/// The signature fields of a request, from either form.
struct Fields {
    credential: Credential,
    signed_headers: String,
    signature: String,
    amz_date: String,
    /// Presigned: seconds the URL stays valid.
    expires: Option<i64>,
    payload_hash: String,
}

fn header_str<'h>(headers: &'h HeaderMap, name: &str) -> Option<&'h str> {
    headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
}

fn header_fields(auth: &str, headers: &HeaderMap) -> Result<Fields, CosErr> {
    let rest = auth
        .strip_prefix(ALGORITHM)
        .ok_or_else(|| malformed_header("The authorization header is malformed."))?;
    let (mut credential, mut signed_headers, mut signature) = (None, None, None);
    for part in rest.split(',') {
        let Some((name, value)) = part.trim().split_once('=') else {
            continue;
        };
        match name.trim() {
            "Credential" => credential = Some(value.trim()),
            "SignedHeaders" => signed_headers = Some(value.trim()),
            "Signature" => signature = Some(value.trim()),
            _ => {}
        }
    }
    let (Some(credential), Some(signed_headers), Some(signature)) =
        (credential, signed_headers, signature)
    else {
        return Err(malformed_header(
            "The authorization header is malformed; it must hold Credential, SignedHeaders \
             and Signature.",
        ));
    };
    let credential = parse_credential(credential).ok_or_else(|| {
        malformed_header(
            "The authorization header is malformed; the Credential is mal-formed; expecting \
             \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
        )
    })?;
    let amz_date = match header_str(headers, "x-amz-date") {
        Some(d) => d.to_string(),
        None => header_str(headers, "date")
            .and_then(|d| httpdate::parse_http_date(d).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| format_amz_date(d.as_secs() as i64))
            .ok_or_else(|| {
                CosErr::access_denied(
                    "AWS authentication requires a valid Date or x-amz-date header",
                )
            })?,
    };
    let payload_hash = header_str(headers, "x-amz-content-sha256")
        .ok_or_else(|| {
            CosErr::invalid_request(
                "Missing required header for this request: x-amz-content-sha256",
            )
        })?
        .to_string();
    Ok(Fields {
        credential,
        signed_headers: signed_headers.to_string(),
        signature: signature.to_string(),
        amz_date,
        expires: None,
        payload_hash,
    })
}

fn query_fields(raw_query: &str, headers: &HeaderMap) -> Result<Fields, CosErr> {
    let get = |name: &str| {
        raw_query.split('&').find_map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (k == name).then(|| percent_decode_str(v).decode_utf8_lossy().into_owned())
        })
    };
    let need = |name: &str| {
        get(name).ok_or_else(|| {
            malformed_query(format!(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, \
                 X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and \
                 X-Amz-Expires parameters; {name} is missing."
            ))
        })
    };
    if need("X-Amz-Algorithm")? != ALGORITHM {
        return Err(malformed_query(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"",
        ));
    }
    let credential = parse_credential(&need("X-Amz-Credential")?).ok_or_else(|| {
        malformed_query(
            "Error parsing the X-Amz-Credential parameter; expecting \
             \"<YOUR-AKID>/YYYYMMDD/REGION/SERVICE/aws4_request\".",
        )
    })?;
    let expires = need("X-Amz-Expires")?
        .parse::<i64>()
        .ok()
        .filter(|e| *e >= 0)
        .ok_or_else(|| malformed_query("X-Amz-Expires should be a number"))?;
    if expires > MAX_EXPIRES_SECS {
        return Err(malformed_query(
            "X-Amz-Expires must be less than a week (in seconds) that is 604800",
        ));
    }
    Ok(Fields {
        credential,
        signed_headers: need("X-Amz-SignedHeaders")?,
        signature: need("X-Amz-Signature")?,
        amz_date: need("X-Amz-Date")?,
        expires: Some(expires),
        payload_hash: header_str(headers, "x-amz-content-sha256")
            .unwrap_or(UNSIGNED_PAYLOAD)
            .to_string(),
    })
}

fn skewed(request_time: &str, now: i64) -> CosErr {
    CosErr::new(
        StatusCode::FORBIDDEN,
        "RequestTimeTooSkewed",
        "The difference between the request time and the current time is too large.",
    )
    .with("RequestTime", request_time.to_string())
    .with("ServerTime", format_amz_date(now))
    .with(
        "MaxAllowedSkewMilliseconds",
        (MAX_SKEW_SECS * 1000).to_string(),
    )
}

fn parse_payload(hash: &str) -> Result<Payload, CosErr> {
    match hash {
        UNSIGNED_PAYLOAD => Ok(Payload::Unsigned),
        STREAMING_PAYLOAD => Ok(Payload::Chunked {
            signed: true,
            trailer: false,
        }),
        STREAMING_PAYLOAD_TRAILER => Ok(Payload::Chunked {
            signed: true,
            trailer: true,
        }),
        STREAMING_UNSIGNED_TRAILER => Ok(Payload::Chunked {
            signed: false,
            trailer: true,
        }),
        h => {
            let mut digest = [0u8; 32];
            match hex::decode_to_slice(h, &mut digest) {
                Ok(()) => Ok(Payload::Sha256(digest)),
                Err(_) => Err(CosErr::new(
                    StatusCode::BAD_REQUEST,
                    "InvalidArgument",
                    "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, \
                     STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-UNSIGNED-PAYLOAD-TRAILER, \
                     STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER or a valid sha256 value.",
                )),
            }
        }
    }
}

/// Verify the SigV4 signature of a request received at `now` (Unix seconds, server time).
pub fn verify(req: &Request<'_>, creds: &Credentials, now: i64) -> Result<Verified, CosErr> {
    let auth = req
        .headers
        .get(hyper::header::AUTHORIZATION)
        .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
    let fields = match &auth {
        Some(auth) if auth.starts_with("AWS ") => return Err(sigv2_refused()),
        Some(auth) => header_fields(auth, req.headers)?,
        None if !req.raw_query.contains("X-Amz-Algorithm") => return Err(sigv2_refused()),
        None => query_fields(req.raw_query, req.headers)?,
    };
    let presigned = fields.expires.is_some();
    let Some(date) = parse_amz_date(&fields.amz_date) else {
        return Err(CosErr::access_denied(format!(
            "X-Amz-Date {:?} is not in the ISO 8601 basic format YYYYMMDD'T'HHMMSS'Z'.",
            fields.amz_date
        )));
    };
    match fields.expires {
        // A presigned URL is used long after it was signed; only a date in the future is a
        // clock that is off.
        Some(expires) => {
            if date - now > MAX_SKEW_SECS {
                return Err(skewed(&fields.amz_date, now));
            }
            if now > date + expires {
                return Err(CosErr::access_denied("Request has expired")
                    .with("X-Amz-Expires", expires.to_string())
                    .with("Expires", format_amz_date(date + expires))
                    .with("ServerTime", format_amz_date(now)));
            }
        }
        None => {
            if (date - now).abs() > MAX_SKEW_SECS {
                return Err(skewed(&fields.amz_date, now));
            }
        }
    }
    let cred = &fields.credential;
    if !fields.amz_date.starts_with(&cred.date) {
        let err = format!(
            "The credential's date {} is not the request's date {}.",
            cred.date, fields.amz_date
        );
        return Err(if presigned {
            malformed_query(err)
        } else {
            malformed_header(err)
        });
    }
    let Some(secret) = creds.get(&cred.access_key) else {
        return Err(CosErr::new(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The AWS Access Key Id you provided does not exist in our records.",
        ));
    };
    let payload = parse_payload(&fields.payload_hash)?;
    let checksum = checksum_spec(req.headers)?;
    if presigned && matches!(payload, Payload::Chunked { .. }) {
        return Err(malformed_query(
            "A presigned request cannot carry an aws-chunked body.",
        ));
    }
    let signed: Vec<&str> = fields.signed_headers.split(';').collect();
    if !signed.contains(&"host") {
        return Err(CosErr::access_denied(
            "The host header must be signed (SignedHeaders has no host).",
        ));
    }
    let scope = format!(
        "{}/{}/{}/aws4_request",
        cred.date, cred.region, cred.service
    );
    let key = signing_key(secret, &cred.date, &cred.region, &cred.service);
    let Some(headers) = canonical_headers(req.headers, &signed) else {
        return Err(signature_mismatch()
            .with("SignedHeaders", fields.signed_headers.clone())
            .with("Reason", "a signed header is missing from the request"));
    };
    let query = canonical_query(req.raw_query, presigned);
    let mut first = None;
    for uri in canonical_uris(req.raw_path) {
        let c = canonical(
            req.method,
            &uri,
            &query,
            &headers,
            &fields.signed_headers,
            &fields.payload_hash,
            &fields.amz_date,
            &scope,
        );
        let sig = hex::encode(hmac(&key, c.string_to_sign.as_bytes()));
        if constant_time_eq(
            sig.as_bytes(),
            fields.signature.to_ascii_lowercase().as_bytes(),
        ) {
            return Ok(Verified {
                access_key: cred.access_key.clone(),
                payload,
                checksum,
                signing_key: key,
                seed_signature: sig,
                amz_date: fields.amz_date,
                scope,
            });
        }
        first.get_or_insert(c);
    }
    let mut err = signature_mismatch().with("AWSAccessKeyId", cred.access_key.clone());
    if let Some(c) = first {
        err = err
            .with("StringToSign", c.string_to_sign)
            .with("CanonicalRequest", c.canonical_request);
    }
    Err(err)
}

/// Where a body check that failed half-way records its error, so the request is answered with
/// it (instead of the handler's "the body was cut short").
pub type FailureSlot = Arc<Mutex<Option<CosErr>>>;

fn record(slot: &FailureSlot, err: CosErr) -> String {
    let message = err.message.clone();
    let mut guard = slot.lock().unwrap_or_else(|p| p.into_inner());
    guard.get_or_insert(err);
    message
}

impl Verified {
    /// The body as the handlers should see it: checked against the signed SHA-256, or
    /// aws-chunked decoded with its chunk signatures checked. A failed check ends the stream
    /// with an error (so nothing is stored) and records the S3 error in `slot`.
    pub fn wrap_body(
        &self,
        body: BodyStream,
        decoded_len: Option<u64>,
        slot: FailureSlot,
    ) -> BodyStream {
        let checksum = self.checksum.clone().map(BodyChecksum::new);
        match &self.payload {
            Payload::Unsigned if checksum.is_none() => body,
            Payload::Unsigned => checked(body, None, checksum, slot),
            Payload::Sha256(expected) => checked(body, Some(*expected), checksum, slot),
            Payload::Chunked { signed, .. } => {
                let chain = signed.then(|| ChunkChain {
                    key: self.signing_key,
                    amz_date: self.amz_date.clone(),
                    scope: self.scope.clone(),
                    previous: self.seed_signature.clone(),
                });
                decode_chunked(body, chain, decoded_len, checksum, slot)
            }
        }
    }
}

// ---- flexible checksums (x-amz-checksum-*) ----

static CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);
static CRC32C: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
static CRC64NVME: crc::Crc<u64> = crc::Crc::<u64>::new(&crc::CRC_64_NVME);

/// The checksum algorithms of S3's `x-amz-checksum-{name}` headers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// The header carrying it: `x-amz-checksum-crc32`, ...
    pub fn header(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    fn from_header(name: &str) -> Option<ChecksumAlgorithm> {
        Self::ALL
            .into_iter()
            .find(|a| a.header().eq_ignore_ascii_case(name.trim()))
    }
}

/// Which checksum the body must match: the value from the header, or (None) from a trailer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumSpec {
    pub algorithm: ChecksumAlgorithm,
    pub expected: Option<Vec<u8>>,
}

/// The request's flexible checksum: an `x-amz-checksum-*` header (base64 of the big-endian
/// digest), else the one `x-amz-trailer` announces for an aws-chunked body.
pub fn checksum_spec(headers: &HeaderMap) -> Result<Option<ChecksumSpec>, CosErr> {
    for algorithm in ChecksumAlgorithm::ALL {
        if let Some(value) = header_str(headers, algorithm.header()) {
            use base64::Engine;
            let expected = base64::engine::general_purpose::STANDARD
                .decode(value)
                .map_err(|_| {
                    CosErr::invalid_request(format!(
                        "Value for {} header is invalid.",
                        algorithm.header()
                    ))
                })?;
            return Ok(Some(ChecksumSpec {
                algorithm,
                expected: Some(expected),
            }));
        }
    }
    Ok(header_str(headers, "x-amz-trailer")
        .and_then(ChecksumAlgorithm::from_header)
        .map(|algorithm| ChecksumSpec {
            algorithm,
            expected: None,
        }))
}

enum ChecksumState {
    Crc32(crc::Digest<'static, u32>),
    Crc32c(crc::Digest<'static, u32>),
    Crc64(crc::Digest<'static, u64>),
    Sha1(sha1::Sha1),
    Sha256(Sha256),
}

/// A checksum being computed over a body.
struct BodyChecksum {
    spec: ChecksumSpec,
    state: ChecksumState,
}

impl BodyChecksum {
    fn new(spec: ChecksumSpec) -> BodyChecksum {
        let state = match spec.algorithm {
            ChecksumAlgorithm::Crc32 => ChecksumState::Crc32(CRC32.digest()),
            ChecksumAlgorithm::Crc32c => ChecksumState::Crc32c(CRC32C.digest()),
            ChecksumAlgorithm::Crc64Nvme => ChecksumState::Crc64(CRC64NVME.digest()),
            ChecksumAlgorithm::Sha1 => ChecksumState::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => ChecksumState::Sha256(Sha256::new()),
        };
        BodyChecksum { spec, state }
    }

    fn update(&mut self, data: &[u8]) {
        match &mut self.state {
            ChecksumState::Crc32(d) | ChecksumState::Crc32c(d) => d.update(data),
            ChecksumState::Crc64(d) => d.update(data),
            ChecksumState::Sha1(h) => sha1::Digest::update(h, data),
            ChecksumState::Sha256(h) => h.update(data),
        }
    }

    /// Set the expected value from a trailer line `x-amz-checksum-crc32:BASE64`.
    fn take_trailer(&mut self, line: &str) {
        use base64::Engine;
        let Some((name, value)) = line.split_once(':') else {
            return;
        };
        if name
            .trim()
            .eq_ignore_ascii_case(self.spec.algorithm.header())
        {
            // An undecodable value can never match: keep it as bytes that differ from any digest.
            self.spec.expected = Some(
                base64::engine::general_purpose::STANDARD
                    .decode(value.trim())
                    .unwrap_or_else(|_| vec![0xff; 65]),
            );
        }
    }

    /// Ok when no value was given or the digest matches it.
    fn finish(self) -> Result<(), CosErr> {
        let digest: Vec<u8> = match self.state {
            ChecksumState::Crc32(d) | ChecksumState::Crc32c(d) => {
                d.finalize().to_be_bytes().to_vec()
            }
            ChecksumState::Crc64(d) => d.finalize().to_be_bytes().to_vec(),
            ChecksumState::Sha1(h) => sha1::Digest::finalize(h).to_vec(),
            ChecksumState::Sha256(h) => h.finalize().to_vec(),
        };
        match &self.spec.expected {
            Some(expected) if *expected != digest => Err(CosErr::new(
                StatusCode::BAD_REQUEST,
                "BadDigest",
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    self.spec.algorithm.header()
                ),
            )),
            _ => Ok(()),
        }
    }
}

fn sha256_mismatch() -> CosErr {
    CosErr::new(
        StatusCode::BAD_REQUEST,
        "XAmzContentSHA256Mismatch",
        "The provided 'x-amz-content-sha256' header does not match what was computed.",
    )
}

/// The body passed through while its SHA-256 (when signed) and flexible checksum (when given)
/// are computed, checked at its end.
fn checked(
    body: BodyStream,
    sha256: Option<[u8; 32]>,
    checksum: Option<BodyChecksum>,
    slot: FailureSlot,
) -> BodyStream {
    struct St {
        body: BodyStream,
        /// None once the stream has ended (or failed).
        hashers: Option<(Option<Sha256>, Option<BodyChecksum>)>,
        expected: Option<[u8; 32]>,
        slot: FailureSlot,
    }
    let st = St {
        body,
        hashers: Some((sha256.map(|_| Sha256::new()), checksum)),
        expected: sha256,
        slot,
    };
    Box::pin(futures::stream::unfold(st, |mut st| async move {
        let (sha, sum) = st.hashers.as_mut()?;
        match st.body.next().await {
            Some(Ok(chunk)) => {
                if let Some(h) = sha {
                    h.update(&chunk);
                }
                if let Some(c) = sum {
                    c.update(&chunk);
                }
                Some((Ok(chunk), st))
            }
            Some(Err(e)) => {
                st.hashers = None;
                Some((Err(e), st))
            }
            None => {
                let (sha, sum) = st.hashers.take()?;
                if let (Some(h), Some(expected)) = (sha, st.expected) {
                    let digest: [u8; 32] = h.finalize().into();
                    if digest != expected {
                        let message = record(&st.slot, sha256_mismatch());
                        return Some((Err(message), st));
                    }
                }
                if let Some(Err(e)) = sum.map(BodyChecksum::finish) {
                    let message = record(&st.slot, e);
                    return Some((Err(message), st));
                }
                None
            }
        }
    }))
}

/// The chain of chunk signatures of a `STREAMING-AWS4-HMAC-SHA256-PAYLOAD` body.
struct ChunkChain {
    key: [u8; 32],
    amz_date: String,
    scope: String,
    previous: String,
}

impl ChunkChain {
    /// The signature the chunk whose data hashes to `data_sha256` must carry.
    fn next_signature(&self, data_sha256: &[u8]) -> String {
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256-PAYLOAD\n{}\n{}\n{}\n{EMPTY_SHA256}\n{}",
            self.amz_date,
            self.scope,
            self.previous,
            hex::encode(data_sha256)
        );
        hex::encode(hmac(&self.key, string_to_sign.as_bytes()))
    }
}

enum Phase {
    /// Expecting `hex-size[;chunk-signature=sig]\r\n`.
    Header,
    /// Inside a chunk's data.
    Data {
        remaining: u64,
        last: bool,
        signature: Option<String>,
        hasher: Sha256,
    },
    /// Expecting the `\r\n` after a chunk's data (none after the last, empty, chunk).
    DataEnd {
        last: bool,
        signature: Option<String>,
        digest: [u8; 32],
    },
    /// After the last (empty) chunk: trailer lines until an empty line (or the end).
    Trailer,
    Done,
}

struct Decoder {
    body: BodyStream,
    buf: BytesMut,
    phase: Phase,
    chain: Option<ChunkChain>,
    decoded_len: Option<u64>,
    checksum: Option<BodyChecksum>,
    seen: u64,
    body_ended: bool,
    slot: FailureSlot,
}

fn chunk_error(message: &str) -> CosErr {
    CosErr::new(
        StatusCode::BAD_REQUEST,
        "IncompleteBody",
        format!("The aws-chunked body is malformed: {message}."),
    )
}

impl Decoder {
    /// Read more of the raw body into `buf`; false at its end.
    async fn fill(&mut self) -> Result<bool, String> {
        if self.body_ended {
            return Ok(false);
        }
        match self.body.next().await {
            Some(Ok(chunk)) => {
                self.buf.extend_from_slice(&chunk);
                Ok(true)
            }
            Some(Err(e)) => Err(e),
            None => {
                self.body_ended = true;
                Ok(false)
            }
        }
    }

    /// The next `\r\n`-terminated line (without it), reading as needed. None at the end of
    /// the body with nothing buffered.
    async fn line(&mut self) -> Result<Option<String>, CosErr> {
        loop {
            if let Some(pos) = self.buf.windows(2).position(|w| w == b"\r\n") {
                let line = self.buf.split_to(pos);
                self.buf.advance(2);
                return Ok(Some(String::from_utf8_lossy(&line).into_owned()));
            }
            if self.buf.len() > MAX_CHUNK_LINE {
                return Err(chunk_error("a chunk header line is too long"));
            }
            match self.fill().await {
                Ok(true) => {}
                Ok(false) if self.buf.is_empty() => return Ok(None),
                Ok(false) => return Err(chunk_error("the body ends inside a chunk header")),
                Err(_) => return Err(chunk_error("the body was cut short")),
            }
        }
    }

    /// One step: Ok(Some(data)) to pass on, Ok(None) at the end.
    async fn step(&mut self) -> Result<Option<Bytes>, CosErr> {
        loop {
            match std::mem::replace(&mut self.phase, Phase::Done) {
                Phase::Done => return Ok(None),
                Phase::Header => {
                    let Some(line) = self.line().await? else {
                        return Err(chunk_error("the body ends before the last chunk"));
                    };
                    let (size, ext) = line.split_once(';').unwrap_or((&line, ""));
                    let size = u64::from_str_radix(size.trim(), 16)
                        .map_err(|_| chunk_error("a chunk size is not hex"))?;
                    let signature = ext
                        .split(';')
                        .find_map(|e| e.trim().strip_prefix("chunk-signature="))
                        .map(str::to_string);
                    if self.chain.is_some() && signature.is_none() {
                        return Err(chunk_error("a chunk has no chunk-signature"));
                    }
                    self.phase = Phase::Data {
                        remaining: size,
                        last: size == 0,
                        signature,
                        hasher: Sha256::new(),
                    };
                }
                Phase::Data {
                    remaining,
                    last,
                    signature,
                    mut hasher,
                } => {
                    if remaining == 0 {
                        self.phase = Phase::DataEnd {
                            last,
                            signature,
                            digest: hasher.finalize().into(),
                        };
                        continue;
                    }
                    if self.buf.is_empty() {
                        match self.fill().await {
                            Ok(true) => {}
                            Ok(false) => return Err(chunk_error("the body ends inside a chunk")),
                            Err(_) => return Err(chunk_error("the body was cut short")),
                        }
                    }
                    let take = remaining.min(self.buf.len() as u64) as usize;
                    let data = self.buf.split_to(take).freeze();
                    hasher.update(&data);
                    if let Some(c) = &mut self.checksum {
                        c.update(&data);
                    }
                    self.seen += data.len() as u64;
                    self.phase = Phase::Data {
                        remaining: remaining - take as u64,
                        last,
                        signature,
                        hasher,
                    };
                    if !data.is_empty() {
                        return Ok(Some(data));
                    }
                }
                Phase::DataEnd {
                    last,
                    signature,
                    digest,
                } => {
                    if let Some(chain) = &mut self.chain {
                        let want = chain.next_signature(&digest);
                        let given = signature.unwrap_or_default().to_ascii_lowercase();
                        if !constant_time_eq(want.as_bytes(), given.as_bytes()) {
                            return Err(signature_mismatch().with(
                                "Reason",
                                "a chunk signature of the aws-chunked body does not match",
                            ));
                        }
                        chain.previous = want;
                    }
                    if last {
                        if let Some(len) = self.decoded_len {
                            if len != self.seen {
                                return Err(chunk_error(
                                    "its data is not x-amz-decoded-content-length bytes",
                                ));
                            }
                        }
                        self.phase = Phase::Trailer;
                        continue;
                    }
                    match self.line().await? {
                        Some(l) if l.is_empty() => self.phase = Phase::Header,
                        _ => return Err(chunk_error("a chunk's data is not followed by CRLF")),
                    }
                }
                Phase::Trailer => {
                    // Trailing headers until the empty line that ends the body: the checksum
                    // is checked, the trailer signature is not.
                    match self.line().await? {
                        Some(l) if !l.is_empty() => {
                            if let Some(c) = &mut self.checksum {
                                c.take_trailer(&l);
                            }
                            self.phase = Phase::Trailer;
                        }
                        _ => {
                            if let Some(c) = self.checksum.take() {
                                c.finish()?;
                            }
                            return Ok(None);
                        }
                    }
                }
            }
        }
    }
}

fn decode_chunked(
    body: BodyStream,
    chain: Option<ChunkChain>,
    decoded_len: Option<u64>,
    checksum: Option<BodyChecksum>,
    slot: FailureSlot,
) -> BodyStream {
    let decoder = Decoder {
        body,
        buf: BytesMut::new(),
        phase: Phase::Header,
        chain,
        decoded_len,
        checksum,
        seen: 0,
        body_ended: false,
        slot,
    };
    Box::pin(futures::stream::unfold(decoder, |mut d| async move {
        match d.step().await {
            Ok(Some(data)) => Some((Ok(data), d)),
            Ok(None) => None,
            Err(e) => {
                d.phase = Phase::Done;
                let message = record(&d.slot, e);
                Some((Err(message), d))
            }
        }
    }))
}

/// The `x-amz-*` request headers (after the prefix) that mean the same as their `x-cos-*` twin.
fn cos_twin(rest: &str) -> bool {
    rest.starts_with("meta-")
        || rest.starts_with("copy-source")
        || rest.starts_with("grant-")
        || matches!(rest, "metadata-directive" | "acl" | "storage-class")
}

/// The request headers the COS handlers should see: every S3 header with a COS meaning gets
/// its `x-cos-*` twin (unless the request carries that one too), S3 storage class names that
/// COS spells otherwise are renamed, `aws-chunked` leaves Content-Encoding and the
/// Content-Length becomes `x-amz-decoded-content-length`.
pub fn translate_headers(headers: &HeaderMap) -> HeaderMap {
    let mut out = headers.clone();
    for (name, value) in headers {
        let Some(rest) = name.as_str().strip_prefix("x-amz-") else {
            continue;
        };
        if !cos_twin(rest) {
            continue;
        }
        let Ok(twin) = HeaderName::from_bytes(format!("x-cos-{rest}").as_bytes()) else {
            continue;
        };
        if headers.contains_key(&twin) {
            continue;
        }
        let value = if rest == "storage-class" {
            match value.to_str().map(|v| v.trim().to_ascii_uppercase()) {
                Ok(v) if v == "GLACIER" => HeaderValue::from_static("ARCHIVE"),
                Ok(v) if v == "REDUCED_REDUNDANCY" => HeaderValue::from_static("STANDARD"),
                _ => value.clone(),
            }
        } else {
            value.clone()
        };
        out.append(twin, value);
    }
    if let Some(enc) = header_str(headers, "content-encoding") {
        let kept: Vec<&str> = enc
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
            .collect();
        if kept.is_empty() {
            out.remove(hyper::header::CONTENT_ENCODING);
        } else if let Ok(v) = HeaderValue::from_str(&kept.join(",")) {
            out.insert(hyper::header::CONTENT_ENCODING, v);
        }
    }
    if let Some(len) = header_str(headers, "x-amz-decoded-content-length") {
        if let Ok(v) = HeaderValue::from_str(len) {
            out.insert(hyper::header::CONTENT_LENGTH, v);
        }
    }
    out
}

/// The headers a request's operation is classified by: [`translate_headers`] for an S3
/// request, the request's own otherwise.
pub fn headers_for_classification<'h>(
    headers: &'h HeaderMap,
    raw_query: &str,
) -> std::borrow::Cow<'h, HeaderMap> {
    if is_sigv4(headers, raw_query) {
        std::borrow::Cow::Owned(translate_headers(headers))
    } else {
        std::borrow::Cow::Borrowed(headers)
    }
}

/// `x-amz-decoded-content-length`, the size of an aws-chunked body's data.
pub fn decoded_content_length(headers: &HeaderMap) -> Option<u64> {
    header_str(headers, "x-amz-decoded-content-length").and_then(|v| v.parse().ok())
}

/// Give a COS answer the `x-amz-*` names S3 clients read: user metadata, storage class,
/// version id, server-side encryption.
pub fn alias_response_headers(headers: &mut HeaderMap) {
    let mut add = Vec::new();
    for (name, value) in headers.iter() {
        let Some(rest) = name.as_str().strip_prefix("x-cos-") else {
            continue;
        };
        if rest.starts_with("meta-")
            || rest.starts_with("server-side-encryption")
            || matches!(rest, "storage-class" | "version-id" | "delete-marker")
        {
            if let Ok(n) = HeaderName::from_bytes(format!("x-amz-{rest}").as_bytes()) {
                if !headers.contains_key(&n) {
                    add.push((n, value.clone()));
                }
            }
        }
    }
    for (n, v) in add {
        headers.append(n, v);
    }
}

/// Encode a key for a path the SigV4 way (`/` kept); for clients and tests.
pub fn encode_path(path: &str) -> String {
    utf8_percent_encode(path, PATH_SET).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    // The examples of the AWS documentation "Signature Calculations for the Authorization
    // Header" / "Query String Authentication" / "Transferring Payload in Multiple Chunks".
    const AK: &str = "AKIAIOSFODNN7EXAMPLE";
    const SK: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";

    fn creds() -> Credentials {
        let mut c = Credentials::new();
        c.insert(AK.to_string(), SK.to_string());
        c
    }

    fn now_2013() -> i64 {
        parse_amz_date("20130524T000000Z").unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (n, v) in pairs {
            h.append(
                HeaderName::from_bytes(n.as_bytes()).unwrap(),
                HeaderValue::from_str(v).unwrap(),
            );
        }
        h
    }

    #[test]
    fn aws_doc_get_object_vector() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";
        let h = headers(&[
            ("host", "examplebucket.s3.amazonaws.com"),
            ("range", "bytes=0-9"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
            ("authorization", auth),
        ]);
        let req = Request {
            method: "GET",
            raw_path: "/test.txt",
            raw_query: "",
            headers: &h,
        };
        let v = verify(&req, &creds(), now_2013()).unwrap();
        assert_eq!(v.access_key, AK);
        // One character off: SignatureDoesNotMatch.
        let bad = auth.replace("bdb41", "bdb42");
        let mut h2 = h.clone();
        h2.insert("authorization", HeaderValue::from_str(&bad).unwrap());
        let e = verify(
            &Request {
                headers: &h2,
                ..req
            },
            &creds(),
            now_2013(),
        )
        .unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "SignatureDoesNotMatch"));
        // An hour later: skewed.
        let e = verify(&req, &creds(), now_2013() + 3600).unwrap_err();
        assert_eq!(e.code, "RequestTimeTooSkewed");
    }

    #[test]
    fn aws_doc_presigned_vector() {
        let q = "X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host&X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";
        let h = headers(&[("host", "examplebucket.s3.amazonaws.com")]);
        let req = Request {
            method: "GET",
            raw_path: "/test.txt",
            raw_query: q,
            headers: &h,
        };
        assert!(is_sigv4(&h, q));
        assert!(verify(&req, &creds(), now_2013() + 3600).is_ok());
        let e = verify(&req, &creds(), now_2013() + 86_401).unwrap_err();
        assert_eq!((e.status.as_u16(), e.code), (403, "AccessDenied"));
    }

    #[test]
    fn aws_doc_chunked_vector() {
        let auth = "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request,SignedHeaders=content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;x-amz-decoded-content-length;x-amz-storage-class,Signature=4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9";
        let h = headers(&[
            ("host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("authorization", auth),
            ("x-amz-content-sha256", STREAMING_PAYLOAD),
            ("content-encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
            ("content-length", "66824"),
        ]);
        let req = Request {
            method: "PUT",
            raw_path: "/examplebucket/chunkObject.txt",
            raw_query: "",
            headers: &h,
        };
        let v = verify(&req, &creds(), now_2013()).unwrap();
        let mut body = Vec::new();
        body.extend_from_slice(b"10000;chunk-signature=ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648\r\n");
        body.extend_from_slice(&[b'a'; 65536]);
        body.extend_from_slice(b"\r\n400;chunk-signature=0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497\r\n");
        body.extend_from_slice(&[b'a'; 1024]);
        body.extend_from_slice(b"\r\n0;chunk-signature=b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9\r\n\r\n");
        assert_eq!(body.len(), 66824);
        let run = |body: Vec<u8>, piece: usize| {
            let chunks: Vec<Result<Bytes, String>> = body
                .chunks(piece)
                .map(|c| Ok(Bytes::copy_from_slice(c)))
                .collect();
            let slot = FailureSlot::default();
            let stream = v.wrap_body(
                Box::pin(futures::stream::iter(chunks)),
                Some(66560),
                slot.clone(),
            );
            let out: Vec<Result<Bytes, String>> =
                futures::executor::block_on(stream.collect::<Vec<_>>());
            let data: Vec<u8> = out
                .iter()
                .filter_map(|r| r.as_ref().ok())
                .flat_map(|b| b.to_vec())
                .collect();
            let failed = out.iter().any(|r| r.is_err());
            let code = slot.lock().unwrap().as_ref().map(|e| e.code);
            (data, failed, code)
        };
        for piece in [1, 7, 1000, 70_000] {
            let (data, failed, _) = run(body.clone(), piece);
            assert!(!failed, "piece {piece}");
            assert_eq!(data.len(), 66560);
            assert!(data.iter().all(|b| *b == b'a'));
        }
        // One byte of the data changed: the chunk signature no longer matches.
        let mut tampered = body.clone();
        tampered[200] = b'b';
        let (_, failed, code) = run(tampered, 4096);
        assert!(failed);
        assert_eq!(code, Some("SignatureDoesNotMatch"));
        // Cut before the last chunk.
        let (_, failed, code) = run(body[..66000].to_vec(), 4096);
        assert!(failed);
        assert_eq!(code, Some("IncompleteBody"));

        let t = translate_headers(&h);
        assert_eq!(t.get("content-length").unwrap(), "66560");
        assert!(t.get("content-encoding").is_none());
        assert_eq!(t.get("x-cos-storage-class").unwrap(), "STANDARD");
    }

    #[test]
    fn unsigned_trailer_body() {
        let v = Verified {
            access_key: AK.into(),
            payload: Payload::Chunked {
                signed: false,
                trailer: true,
            },
            checksum: None,
            signing_key: [0; 32],
            seed_signature: String::new(),
            amz_date: String::new(),
            scope: String::new(),
        };
        let body =
            b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n".to_vec();
        let stream = v.wrap_body(
            Box::pin(futures::stream::iter(vec![Ok(Bytes::from(body))])),
            Some(11),
            FailureSlot::default(),
        );
        let out: Vec<_> = futures::executor::block_on(stream.collect::<Vec<_>>());
        let data: Vec<u8> = out.into_iter().flat_map(|r| r.unwrap().to_vec()).collect();
        assert_eq!(data, b"hello world");
    }

    #[test]
    fn flexible_checksums_in_headers_and_trailers() {
        let run = |payload: Payload, spec: Option<ChecksumSpec>, body: &'static [u8]| {
            let v = Verified {
                access_key: AK.into(),
                payload,
                checksum: spec,
                signing_key: [0; 32],
                seed_signature: String::new(),
                amz_date: String::new(),
                scope: String::new(),
            };
            let slot = FailureSlot::default();
            let stream = v.wrap_body(
                Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(body))])),
                None,
                slot.clone(),
            );
            let out: Vec<_> = futures::executor::block_on(stream.collect::<Vec<_>>());
            let code = slot.lock().unwrap().as_ref().map(|e| e.code);
            (out.iter().any(|r| r.is_err()), code)
        };
        // CRC-32 of "hello world" is 0x0d4a1185.
        let h = headers(&[("x-amz-checksum-crc32", "DUoRhQ==")]);
        let spec = checksum_spec(&h).unwrap();
        assert_eq!(
            run(Payload::Unsigned, spec.clone(), b"hello world"),
            (false, None)
        );
        assert_eq!(
            run(Payload::Unsigned, spec, b"hello worle"),
            (true, Some("BadDigest"))
        );
        let bad = headers(&[("x-amz-checksum-sha256", "not base64!")]);
        assert_eq!(checksum_spec(&bad).unwrap_err().code, "InvalidRequest");
        // SHA-256 of "abc", base64.
        let h = headers(&[(
            "x-amz-checksum-sha256",
            "ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=",
        )]);
        let spec = checksum_spec(&h).unwrap();
        assert_eq!(run(Payload::Unsigned, spec.clone(), b"abc"), (false, None));
        assert!(run(Payload::Unsigned, spec, b"abd").0);
        // Announced by x-amz-trailer, given after the last chunk.
        let h = headers(&[("x-amz-trailer", "x-amz-checksum-crc32")]);
        let spec = checksum_spec(&h).unwrap();
        let chunked = Payload::Chunked {
            signed: false,
            trailer: true,
        };
        assert_eq!(
            run(
                chunked.clone(),
                spec.clone(),
                b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:DUoRhQ==\r\n\r\n"
            ),
            (false, None)
        );
        assert_eq!(
            run(
                chunked,
                spec,
                b"5\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n"
            ),
            (true, Some("BadDigest"))
        );
        // CRC-32C and CRC-64/NVME check values of "123456789".
        let digest = |a: ChecksumAlgorithm| {
            let mut c = BodyChecksum::new(ChecksumSpec {
                algorithm: a,
                expected: None,
            });
            c.update(b"123456789");
            match c.state {
                ChecksumState::Crc32(d) | ChecksumState::Crc32c(d) => d.finalize() as u64,
                ChecksumState::Crc64(d) => d.finalize(),
                _ => 0,
            }
        };
        assert_eq!(digest(ChecksumAlgorithm::Crc32), 0xcbf43926);
        assert_eq!(digest(ChecksumAlgorithm::Crc32c), 0xe3069283);
        assert_eq!(digest(ChecksumAlgorithm::Crc64Nvme), 0xae8b14860a799888);
    }

    #[test]
    fn signed_payload_mismatch() {
        let v = Verified {
            access_key: AK.into(),
            payload: Payload::Sha256(Sha256::digest(b"abc").into()),
            checksum: None,
            signing_key: [0; 32],
            seed_signature: String::new(),
            amz_date: String::new(),
            scope: String::new(),
        };
        let run = |data: &'static [u8]| {
            let slot = FailureSlot::default();
            let stream = v.wrap_body(
                Box::pin(futures::stream::iter(vec![Ok(Bytes::from_static(data))])),
                None,
                slot.clone(),
            );
            let out: Vec<_> = futures::executor::block_on(stream.collect::<Vec<_>>());
            let code = slot.lock().unwrap().as_ref().map(|e| e.code);
            (out.iter().any(|r| r.is_err()), code)
        };
        assert_eq!(run(b"abc"), (false, None));
        assert_eq!(run(b"abd"), (true, Some("XAmzContentSHA256Mismatch")));
    }

    #[test]
    fn canonical_forms() {
        assert_eq!(
            canonical_query("prefix=a%2Fb&list-type=2&acl&x=a b", false),
            "acl=&list-type=2&prefix=a%2Fb&x=a%20b"
        );
        assert_eq!(
            canonical_uris("/b/a%20b!.txt"),
            vec!["/b/a%20b!.txt".to_string(), "/b/a%20b%21.txt".to_string()]
        );
        let h = headers(&[("x-a", "  one   two "), ("x-a", "three")]);
        assert_eq!(
            canonical_headers(&h, &["x-a"]).unwrap(),
            "x-a:one two,three\n"
        );
        assert!(canonical_headers(&h, &["x-b"]).is_none());
    }

    #[test]
    fn header_translation() {
        let h = headers(&[
            ("x-amz-meta-color", "blue"),
            ("x-amz-copy-source", "/b/k"),
            ("x-amz-metadata-directive", "REPLACE"),
            ("x-amz-acl", "public-read"),
            ("x-amz-storage-class", "GLACIER"),
            ("x-amz-date", "20130524T000000Z"),
            ("content-encoding", "aws-chunked,gzip"),
        ]);
        let t = translate_headers(&h);
        assert_eq!(t.get("x-cos-meta-color").unwrap(), "blue");
        assert_eq!(t.get("x-cos-copy-source").unwrap(), "/b/k");
        assert_eq!(t.get("x-cos-metadata-directive").unwrap(), "REPLACE");
        assert_eq!(t.get("x-cos-acl").unwrap(), "public-read");
        assert_eq!(t.get("x-cos-storage-class").unwrap(), "ARCHIVE");
        assert!(t.get("x-cos-date").is_none());
        assert_eq!(t.get("content-encoding").unwrap(), "gzip");
        let mut r = headers(&[("x-cos-meta-color", "blue"), ("etag", "\"x\"")]);
        alias_response_headers(&mut r);
        assert_eq!(r.get("x-amz-meta-color").unwrap(), "blue");
    }
}
