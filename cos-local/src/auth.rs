//! Request signature verification (cos-protocol.md §2.8), as a pure function of the request
//! parts, the known credentials and the current time, so tests can pin `now`.
//!
//! Both official SDK flavours are accepted: the host signed with or without its port, the
//! security token signed or not, query values with `+` or `%20` for a space, and empty-valued
//! headers left unsigned. Tokens are not validated: any token with a known SecretId passes.

use std::collections::HashMap;

use cos_protocol::sign::{constant_time_eq, encode_name, sign_with_times, AuthFields, SignRequest};
use hyper::header::HeaderMap;
use hyper::StatusCode;

use crate::error::CosErr;

/// SecretId -> SecretKey.
pub type Credentials = HashMap<String, String>;

/// The parts of a received request that the signature covers.
pub struct SignedParts<'a> {
    pub method: &'a str,
    /// The request-target path percent-decoded once (`+` kept), i.e. the UriPathname the client
    /// signed: `/key` for virtual-host requests, `/bucket/key` for path style.
    pub decoded_path: &'a str,
    /// The query, form-decoded, in request order (a key without `=` has value `""`).
    pub query: &'a [(String, String)],
    pub headers: &'a HeaderMap,
}

/// Who made the request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Caller {
    Anonymous,
    /// A verified request signed with this SecretId.
    Signed(String),
}

/// The auth fields of the request: the Authorization header, else the `q-*` query params.
fn auth_fields(parts: &SignedParts<'_>) -> Option<AuthFields> {
    if let Some(value) = parts.headers.get(hyper::header::AUTHORIZATION) {
        let text = String::from_utf8_lossy(value.as_bytes());
        return AuthFields::parse(&text);
    }
    if parts.query.iter().any(|(k, _)| k == "q-signature") {
        return AuthFields::from_query(parts.query);
    }
    None
}

/// True if the request carries any signature material at all (a broken one is an error, not
/// an anonymous request).
fn has_auth_material(parts: &SignedParts<'_>) -> bool {
    parts.headers.contains_key(hyper::header::AUTHORIZATION)
        || parts.query.iter().any(|(k, _)| k.starts_with("q-sign"))
}

/// Verify the signature of a request.
pub fn verify(parts: &SignedParts<'_>, creds: &Credentials, now: i64) -> Result<Caller, CosErr> {
    let Some(fields) = auth_fields(parts) else {
        if has_auth_material(parts) {
            return Err(CosErr::access_denied(
                "The Authorization value is malformed.",
            ));
        }
        return Ok(Caller::Anonymous);
    };
    if !fields.algorithm.is_empty() && !fields.algorithm.eq_ignore_ascii_case("sha1") {
        return Err(CosErr::invalid_argument("q-sign-algorithm must be sha1."));
    }
    let Some(secret_key) = creds.get(&fields.ak) else {
        return Err(CosErr::new(
            StatusCode::FORBIDDEN,
            "InvalidAccessKeyId",
            "The SecretId you provided does not exist in our records.",
        ));
    };
    match fields.expires_at() {
        Some(end) if now <= end => {}
        Some(_) => {
            return Err(
                CosErr::access_denied("Request has expired").with("ServerTime", server_time(now))
            );
        }
        None => {
            return Err(CosErr::access_denied("The q-sign-time value is malformed."));
        }
    }

    let params = signed_params(parts.query, &fields.url_param_list);
    let mut first_attempt = None;
    for headers in signed_header_variants(parts.headers, &fields.header_list) {
        let (Some(params), Some(headers)) = (params.as_ref(), headers) else {
            continue;
        };
        let sig = sign_with_times(
            secret_key,
            &fields.key_time,
            &fields.sign_time,
            &SignRequest {
                method: parts.method,
                key: parts.decoded_path,
                params,
                headers: &headers,
            },
        );
        if constant_time_eq(&sig.signature, &fields.signature.to_ascii_lowercase()) {
            return Ok(Caller::Signed(fields.ak));
        }
        first_attempt.get_or_insert(sig);
    }
    let mut err = CosErr::new(
        StatusCode::FORBIDDEN,
        "SignatureDoesNotMatch",
        "The Signature you specified does not match what we calculated.",
    );
    match first_attempt {
        Some(sig) => {
            err = err
                .with("StringToSign", sig.string_to_sign)
                .with("FormatString", sig.http_string);
        }
        None => {
            err.message = "A header or parameter listed in q-header-list or q-url-param-list \
                           is missing from the request."
                .to_string();
        }
    }
    Err(err)
}

/// The query params named by q-url-param-list, raw (the signer encodes them). A listed param
/// that is absent makes the whole list unusable (None). A name listed twice takes successive
/// values (the Go SDK signs duplicate keys that way).
fn signed_params(query: &[(String, String)], listed: &[String]) -> Option<Vec<(String, String)>> {
    let mut used = vec![false; query.len()];
    let mut out = Vec::with_capacity(listed.len());
    for name in listed {
        let idx = query
            .iter()
            .enumerate()
            .position(|(i, (k, _))| !used[i] && encode_name(k) == *name)?;
        used[idx] = true;
        out.push(query[idx].clone());
    }
    Some(out)
}

/// The listed headers' values (trimmed), once with Host as sent and, when Host carries a port,
/// once more with the port stripped (the Python SDK signs the bare hostname). None = a listed
/// header is absent.
fn signed_header_variants(
    headers: &HeaderMap,
    listed: &[String],
) -> Vec<Option<Vec<(String, String)>>> {
    let mut values = Vec::with_capacity(listed.len());
    for name in listed {
        match headers.get(name.as_str()) {
            Some(v) => values.push((
                name.clone(),
                String::from_utf8_lossy(v.as_bytes()).trim().to_string(),
            )),
            None => return vec![None],
        }
    }
    let mut variants = vec![Some(values.clone())];
    if let Some(pos) = values.iter().position(|(n, _)| n == "host") {
        if let Some(bare) = strip_port(&values[pos].1) {
            values[pos].1 = bare;
            variants.push(Some(values));
        }
    }
    variants
}

/// `host:port` -> `host` (also `[v6]:port`); None when there is no port.
fn strip_port(host: &str) -> Option<String> {
    if let Some(rest) = host.strip_prefix('[') {
        let (addr, after) = rest.split_once(']')?;
        return after.starts_with(':').then(|| format!("[{addr}]"));
    }
    let (name, port) = host.rsplit_once(':')?;
    (!port.is_empty() && port.bytes().all(|b| b.is_ascii_digit())).then(|| name.to_string())
}

/// ISO-8601 UTC, as COS writes `<ServerTime>`.
fn server_time(now: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(now)
        .ok()
        .and_then(|t| {
            t.format(&time::format_description::well_known::Rfc3339)
                .ok()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strip_port_forms() {
        assert_eq!(strip_port("127.0.0.1:9000").as_deref(), Some("127.0.0.1"));
        assert_eq!(strip_port("b.localhost:80").as_deref(), Some("b.localhost"));
        assert_eq!(strip_port("example.com"), None);
        assert_eq!(strip_port("[::1]:9000").as_deref(), Some("[::1]"));
        assert_eq!(strip_port("[::1]"), None);
    }
}
