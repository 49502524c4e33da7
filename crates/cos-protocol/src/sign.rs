//! The COS "q-sign" request signature (XML API v5), and presigned URLs.
//!
//! The algorithm, as `shared/cos-protocol.md` §2 states it and the official SDKs compute it:
//!
//! ```text
//! KeyTime      = "{start};{end}"
//! SignKey      = hex(HMAC-SHA1(SecretKey, KeyTime))
//! HttpString   = lower(method) \n UriPathname \n HttpParameters \n HttpHeaders \n
//! StringToSign = "sha1" \n KeyTime \n hex(SHA1(HttpString)) \n
//! Signature    = hex(HMAC-SHA1(SignKey as its 40 hex characters, StringToSign))
//! ```
//!
//! The path line is the raw object key (never percent-encoded, never normalised); names and
//! values of signed params and headers are percent-encoded with only `A-Z a-z 0-9 - _ . ~`
//! kept, names then lower-cased, pairs sorted by the encoded name.
//!
//! This module is shared by the client (signing) and cos-local (verification), so both sides
//! agree by construction and the vectors test both.

use hmac::{Hmac, KeyInit, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use sha1::{Digest, Sha1};

/// Everything except the unreserved set `A-Z a-z 0-9 - _ . ~` is percent-encoded.
const SIGN_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// Percent-encode a header/param value the way the signature wants it (upper-case hex, space
/// as `%20`, `/` encoded).
pub fn encode_component(s: &str) -> String {
    utf8_percent_encode(s, SIGN_ENCODE_SET).to_string()
}

/// Encode then lower-case a header/param name (`partNumber` -> `partnumber`).
pub fn encode_name(s: &str) -> String {
    encode_component(s).to_ascii_lowercase()
}

fn hmac_sha1_hex(key: &[u8], msg: &[u8]) -> String {
    // new_from_slice accepts keys of any length for HMAC; the error arm cannot happen.
    let mut mac = match Hmac::<Sha1>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(msg);
    hex::encode(mac.finalize().into_bytes())
}

fn sha1_hex(msg: &[u8]) -> String {
    hex::encode(Sha1::digest(msg))
}

/// The signing window, in Unix seconds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KeyTime {
    pub start: i64,
    pub end: i64,
}

impl KeyTime {
    /// A window like the Python SDK's: `now - 60 .. now + expires`, which tolerates modest skew.
    pub fn around_now(expires_secs: i64, clock_offset_secs: i64) -> KeyTime {
        let now = unix_now() + clock_offset_secs;
        KeyTime {
            start: now - 60,
            end: now + expires_secs,
        }
    }

    pub fn as_string(&self) -> String {
        format!("{};{}", self.start, self.end)
    }
}

/// Seconds since the Unix epoch (0 if the clock is before 1970, which only a broken machine has).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The parts of a request that are signed.
#[derive(Debug, Clone)]
pub struct SignRequest<'a> {
    /// HTTP method, any case.
    pub method: &'a str,
    /// The raw object key as the user names it (`folder/my file.txt`); `""` or `"/"` for a
    /// bucket-level request. A leading `/` is not doubled.
    pub key: &'a str,
    /// Query parameters to sign, raw (not encoded). A parameter without a value has `""`.
    pub params: &'a [(String, String)],
    /// Headers to sign, raw, exactly as they are sent.
    pub headers: &'a [(String, String)],
}

/// The path line of the HttpString: `/` + the raw key.
pub fn uri_pathname(key: &str) -> String {
    if key.starts_with('/') {
        key.to_string()
    } else {
        format!("/{key}")
    }
}

/// Encoded, sorted `name=value` pairs joined by `&`, and the names joined by `;`.
fn canonical_pairs(pairs: &[(String, String)]) -> (String, String) {
    let mut encoded: Vec<(String, String)> = pairs
        .iter()
        .map(|(n, v)| (encode_name(n), encode_component(v)))
        .collect();
    encoded.sort();
    let joined = encoded
        .iter()
        .map(|(n, v)| format!("{n}={v}"))
        .collect::<Vec<_>>()
        .join("&");
    let names = encoded
        .iter()
        .map(|(n, _)| n.as_str())
        .collect::<Vec<_>>()
        .join(";");
    (joined, names)
}

/// Every intermediate of one signature, for debugging (`cos-local` puts StringToSign in its
/// SignatureDoesNotMatch body) and for the vector tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    pub key_time: String,
    pub sign_key: String,
    pub http_string: String,
    pub string_to_sign: String,
    pub header_list: String,
    pub url_param_list: String,
    pub signature: String,
}

impl Signature {
    /// The `Authorization` header value, fields in the SDKs' order.
    pub fn authorization(&self, secret_id: &str) -> String {
        format!(
            "q-sign-algorithm=sha1&q-ak={}&q-sign-time={kt}&q-key-time={kt}&q-header-list={}&q-url-param-list={}&q-signature={}",
            secret_id,
            self.header_list,
            self.url_param_list,
            self.signature,
            kt = self.key_time
        )
    }

    /// The same seven fields as query parameters for a presigned URL (values encoded as the
    /// Python SDK does, `;` as `%3B`).
    pub fn query_string(&self, secret_id: &str) -> String {
        format!(
            "q-sign-algorithm=sha1&q-ak={}&q-sign-time={kt}&q-key-time={kt}&q-header-list={}&q-url-param-list={}&q-signature={}",
            encode_component(secret_id),
            encode_component(&self.header_list),
            encode_component(&self.url_param_list),
            self.signature,
            kt = encode_component(&self.key_time)
        )
    }
}

/// Compute the signature of `req` with `secret_key` over `key_time`.
pub fn sign(secret_key: &str, key_time: KeyTime, req: &SignRequest<'_>) -> Signature {
    sign_with_times(
        secret_key,
        &key_time.as_string(),
        &key_time.as_string(),
        req,
    )
}

/// Like [`sign`], with q-key-time (for the SignKey) and q-sign-time (in StringToSign) given
/// separately, as a verifying server receives them.
pub fn sign_with_times(
    secret_key: &str,
    key_time: &str,
    sign_time: &str,
    req: &SignRequest<'_>,
) -> Signature {
    let sign_key = hmac_sha1_hex(secret_key.as_bytes(), key_time.as_bytes());
    let (http_params, url_param_list) = canonical_pairs(req.params);
    let (http_headers, header_list) = canonical_pairs(req.headers);
    let http_string = format!(
        "{}\n{}\n{}\n{}\n",
        req.method.to_ascii_lowercase(),
        uri_pathname(req.key),
        http_params,
        http_headers
    );
    let string_to_sign = format!(
        "sha1\n{}\n{}\n",
        sign_time,
        sha1_hex(http_string.as_bytes())
    );
    let signature = hmac_sha1_hex(sign_key.as_bytes(), string_to_sign.as_bytes());
    Signature {
        key_time: key_time.to_string(),
        sign_key,
        http_string,
        string_to_sign,
        header_list,
        url_param_list,
        signature,
    }
}

/// Compare two hex signatures without leaking where they differ.
pub fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The fields of a parsed `Authorization` value (or the `q-*` query parameters).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AuthFields {
    pub algorithm: String,
    pub ak: String,
    pub sign_time: String,
    pub key_time: String,
    pub header_list: Vec<String>,
    pub url_param_list: Vec<String>,
    pub signature: String,
}

impl AuthFields {
    /// Parse `q-sign-algorithm=sha1&q-ak=…&…`. Returns None when a required field is missing.
    pub fn parse(authorization: &str) -> Option<AuthFields> {
        let mut f = AuthFields::default();
        for part in authorization.trim().split('&') {
            let (k, v) = part.split_once('=').unwrap_or((part, ""));
            Self::set_field(&mut f, k, v);
        }
        f.check()
    }

    /// Build from already-decoded query parameters (presigned URL).
    pub fn from_query(params: &[(String, String)]) -> Option<AuthFields> {
        let mut f = AuthFields::default();
        for (k, v) in params {
            Self::set_field(&mut f, k, v);
        }
        f.check()
    }

    fn set_field(f: &mut AuthFields, k: &str, v: &str) {
        let split_list = |v: &str| -> Vec<String> {
            v.split(';')
                .filter(|s| !s.is_empty())
                .map(|s| s.to_ascii_lowercase())
                .collect()
        };
        match k {
            "q-sign-algorithm" => f.algorithm = v.to_string(),
            "q-ak" => f.ak = v.to_string(),
            "q-sign-time" => f.sign_time = v.to_string(),
            "q-key-time" => f.key_time = v.to_string(),
            "q-header-list" => f.header_list = split_list(v),
            "q-url-param-list" => f.url_param_list = split_list(v),
            "q-signature" => f.signature = v.to_string(),
            _ => {}
        }
    }

    fn check(mut self) -> Option<AuthFields> {
        if self.ak.is_empty() || self.signature.is_empty() {
            return None;
        }
        if self.key_time.is_empty() {
            self.key_time = self.sign_time.clone();
        }
        if self.sign_time.is_empty() {
            self.sign_time = self.key_time.clone();
        }
        if self.key_time.is_empty() {
            return None;
        }
        Some(self)
    }

    /// The end of the validity window (min of the two times' ends), if it parses.
    pub fn expires_at(&self) -> Option<i64> {
        let end = |s: &str| {
            s.split_once(';')
                .and_then(|(_, e)| e.trim().parse::<i64>().ok())
        };
        match (end(&self.key_time), end(&self.sign_time)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worked_example_from_protocol_doc() {
        let headers = vec![
            ("Content-Type".to_string(), "text/plain".to_string()),
            ("Content-Length".to_string(), "13".to_string()),
            (
                "Host".to_string(),
                "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com".to_string(),
            ),
            ("x-cos-meta-author".to_string(), "Zhang San".to_string()),
            ("x-cos-meta-Note".to_string(), "a/b c+d".to_string()),
        ];
        let sig = sign(
            "SECRETEXAMPLE",
            KeyTime {
                start: 1700000000,
                end: 1700003600,
            },
            &SignRequest {
                method: "PUT",
                key: "folder/my file.txt",
                params: &[],
                headers: &headers,
            },
        );
        assert_eq!(sig.sign_key, "f5d49e354f47f0490b1a36fcc423ac7faa9fb8e3");
        assert_eq!(sig.signature, "87e60a9d5fcf36e965056706bc4bcaead0fdd0ad");
        assert_eq!(
            sig.header_list,
            "content-length;content-type;host;x-cos-meta-author;x-cos-meta-note"
        );
    }

    #[test]
    fn encoding_keeps_only_unreserved() {
        assert_eq!(encode_component("a b/c+d~e_f.g-h"), "a%20b%2Fc%2Bd~e_f.g-h");
        assert_eq!(encode_component("!'()*"), "%21%27%28%29%2A");
        assert_eq!(encode_component("中"), "%E4%B8%AD");
        assert_eq!(encode_name("partNumber"), "partnumber");
    }

    #[test]
    fn path_is_raw_key() {
        assert_eq!(uri_pathname(""), "/");
        assert_eq!(uri_pathname("/"), "/");
        assert_eq!(uri_pathname("a//b/./c.txt"), "/a//b/./c.txt");
        assert_eq!(uri_pathname("100%/%E4%B8%AD.txt"), "/100%/%E4%B8%AD.txt");
    }

    #[test]
    fn parse_authorization_round_trip() {
        let a = "q-sign-algorithm=sha1&q-ak=AKID&q-sign-time=1;2&q-key-time=1;2&q-header-list=host;x-cos-meta-a&q-url-param-list=&q-signature=abc";
        let f = AuthFields::parse(a).expect("parses");
        assert_eq!(f.ak, "AKID");
        assert_eq!(f.header_list, vec!["host", "x-cos-meta-a"]);
        assert!(f.url_param_list.is_empty());
        assert_eq!(f.expires_at(), Some(2));
        assert!(AuthFields::parse("garbage").is_none());
    }
}
