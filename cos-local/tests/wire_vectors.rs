//! The 20 requests captured from the official SDKs (testdata/cos-sign-vectors.json,
//! `wire_requests`) verify with cos-local's verifier, rebuild the same HttpString, and fail
//! when one byte of the path, a signed header, a signed query value or the signature changes.
//! Plus the SDK flavours the captures do not cover (host signed with its port, unsigned token,
//! presigned URLs) and the expiry / unknown-key errors.

use cos_local::auth::{verify, Caller, Credentials, SignedParts};
use cos_local::server::Query;
use cos_protocol::sign::{sign, KeyTime, SignRequest};
use hyper::header::{HeaderMap, HeaderName, HeaderValue};
use percent_encoding::percent_decode_str;
use serde_json::Value;

/// Inside every capture's validity window (2023).
const NOW: i64 = 1_700_000_100;

fn vectors() -> Value {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../testdata/cos-sign-vectors.json"
    );
    let text = std::fs::read_to_string(path).expect("vector file readable");
    serde_json::from_str(&text).expect("vector file is JSON")
}

fn creds() -> Credentials {
    let mut c = Credentials::new();
    c.insert("AKIDEXAMPLE".into(), "SECRETEXAMPLE".into());
    c
}

/// A captured request as the server would see it.
#[derive(Clone)]
struct Wire {
    method: String,
    target: String,
    headers: Vec<(String, String)>,
}

impl Wire {
    fn from_json(v: &Value) -> Wire {
        Wire {
            method: v["method"].as_str().expect("method").to_string(),
            target: v["request_target"].as_str().expect("target").to_string(),
            headers: v["headers_as_sent"]
                .as_array()
                .expect("headers")
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().expect("name").to_string(),
                        h[1].as_str().expect("value").to_string(),
                    )
                })
                .collect(),
        }
    }

    fn verify(&self, now: i64) -> Result<Caller, cos_local::error::CosErr> {
        let (raw_path, raw_query) = self.target.split_once('?').unwrap_or((&self.target, ""));
        let path = percent_decode_str(raw_path)
            .decode_utf8()
            .expect("utf-8 path")
            .into_owned();
        let query = Query::parse(raw_query);
        let mut headers = HeaderMap::new();
        for (n, v) in &self.headers {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).expect("header name"),
                HeaderValue::from_str(v).expect("header value"),
            );
        }
        verify(
            &SignedParts {
                method: &self.method,
                decoded_path: &path,
                query: &query.0,
                headers: &headers,
            },
            &creds(),
            now,
        )
    }

    fn header_mut(&mut self, name: &str) -> &mut String {
        &mut self
            .headers
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .expect("header present")
            .1
    }

    fn auth_field(&self, field: &str) -> String {
        let auth = self
            .headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("authorization"))
            .expect("authorization")
            .1
            .clone();
        auth.split('&')
            .find_map(|kv| kv.strip_prefix(&format!("{field}=")))
            .unwrap_or("")
            .to_string()
    }
}

/// Change one byte of `s` at `at` into a different printable byte.
fn flip(s: &mut String, at: usize) {
    let mut bytes = s.clone().into_bytes();
    bytes[at] = if bytes[at] == b'a' { b'b' } else { b'a' };
    *s = String::from_utf8(bytes).expect("still utf-8");
}

fn assert_mismatch(wire: &Wire, what: &str, name: &str) {
    match wire.verify(NOW) {
        Err(e) => assert_eq!(e.code, "SignatureDoesNotMatch", "{name}: tampered {what}"),
        Ok(_) => panic!("{name}: tampered {what} still verified"),
    }
}

#[test]
fn all_twenty_captured_requests_verify_and_rebuild_the_http_string() {
    let v = vectors();
    let wires = v["wire_requests"].as_array().expect("wire_requests");
    assert_eq!(wires.len(), 20);
    for w in wires {
        let name = format!("{} {}", w["sdk_call"], w["request_target"]);
        let wire = Wire::from_json(w);
        assert_eq!(
            wire.verify(NOW).map_err(|e| e.code),
            Ok(Caller::Signed("AKIDEXAMPLE".into())),
            "{name}"
        );
        // With a wrong key the server reports the HttpString it built: it must be the one the
        // SDK signed.
        let mut wrong = Credentials::new();
        wrong.insert("AKIDEXAMPLE".into(), "WRONG".into());
        let (raw_path, raw_query) = wire.target.split_once('?').unwrap_or((&wire.target, ""));
        let path = percent_decode_str(raw_path)
            .decode_utf8()
            .expect("utf-8")
            .into_owned();
        let query = Query::parse(raw_query);
        let mut headers = HeaderMap::new();
        for (n, val) in &wire.headers {
            headers.append(
                HeaderName::from_bytes(n.as_bytes()).expect("name"),
                HeaderValue::from_str(val).expect("value"),
            );
        }
        let err = verify(
            &SignedParts {
                method: &wire.method,
                decoded_path: &path,
                query: &query.0,
                headers: &headers,
            },
            &wrong,
            NOW,
        )
        .expect_err("wrong key fails");
        let format_string = err
            .extra
            .iter()
            .find(|(k, _)| *k == "FormatString")
            .map(|(_, v)| v.clone());
        assert_eq!(
            format_string.as_deref(),
            w["http_string_reconstructed_server_side"].as_str(),
            "{name}"
        );
    }
}

#[test]
fn tampering_one_byte_breaks_each_captured_request() {
    let v = vectors();
    for w in v["wire_requests"].as_array().expect("wire_requests") {
        let name = format!("{} {}", w["sdk_call"], w["request_target"]);
        let wire = Wire::from_json(w);

        // The path: one byte more after the leading '/'.
        let mut t = wire.clone();
        t.target.insert(1, 'x');
        assert_mismatch(&t, "path", &name);

        // A signed header value (the first signed one other than host... or host itself).
        let signed_headers = wire.auth_field("q-header-list");
        let first = signed_headers
            .split(';')
            .next()
            .expect("a signed header")
            .to_string();
        let mut t = wire.clone();
        let value = t.header_mut(&first);
        let at = value.len() - 1;
        flip(value, at);
        assert_mismatch(&t, &format!("header {first}"), &name);

        // A signed query value, when the request has one.
        let params = wire.auth_field("q-url-param-list");
        if !params.is_empty() {
            let mut t = wire.clone();
            let (path, query) = t.target.split_once('?').expect("query");
            let first = params.split(';').next().expect("param");
            let tampered: Vec<String> = query
                .split('&')
                .map(|kv| {
                    let (k, val) = kv.split_once('=').unwrap_or((kv, ""));
                    if k.eq_ignore_ascii_case(first) {
                        format!("{k}={val}Z")
                    } else {
                        kv.to_string()
                    }
                })
                .collect();
            t.target = format!("{path}?{}", tampered.join("&"));
            assert_mismatch(&t, &format!("param {first}"), &name);
        }

        // The signature itself.
        let mut t = wire.clone();
        let auth = t.header_mut("authorization");
        let at = auth.len() - 1;
        let mut bytes = auth.clone().into_bytes();
        bytes[at] = if bytes[at] == b'0' { b'1' } else { b'0' };
        *auth = String::from_utf8(bytes).expect("ascii");
        assert_mismatch(&t, "signature", &name);
    }
}

#[test]
fn expired_and_unknown_key_errors() {
    let v = vectors();
    let wire = Wire::from_json(&v["wire_requests"][0]);
    let err = wire.verify(1_800_000_000).expect_err("expired");
    assert_eq!(err.code, "AccessDenied");
    assert_eq!(err.message, "Request has expired");
    assert!(err.extra.iter().any(|(k, _)| *k == "ServerTime"));

    let mut t = wire.clone();
    let auth = t.header_mut("authorization");
    *auth = auth.replace("q-ak=AKIDEXAMPLE", "q-ak=AKIDUNKNOWN");
    assert_eq!(
        t.verify(NOW).expect_err("unknown").code,
        "InvalidAccessKeyId"
    );
}

/// Sign like the Node SDK: Host with its port, the token added after signing, an empty
/// Cache-Control sent but not signed, spaces in the query as %20.
#[test]
fn node_style_request_with_port_and_unsigned_token_verifies() {
    let host = "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com:9000";
    let params = vec![("prefix".to_string(), "a b/".to_string())];
    let signed_headers = vec![("Host".to_string(), host.to_string())];
    let sig = sign(
        "SECRETEXAMPLE",
        KeyTime {
            start: 1_700_000_000,
            end: 1_700_000_900,
        },
        &SignRequest {
            method: "GET",
            key: "/",
            params: &params,
            headers: &signed_headers,
        },
    );
    let wire = Wire {
        method: "GET".into(),
        target: "/?prefix=a%20b%2F".into(),
        headers: vec![
            ("Host".into(), host.into()),
            ("Cache-Control".into(), "".into()),
            ("x-cos-security-token".into(), "TOKEN".into()),
            ("Authorization".into(), sig.authorization("AKIDEXAMPLE")),
        ],
    };
    assert_eq!(
        wire.verify(NOW).map_err(|e| e.code),
        Ok(Caller::Signed("AKIDEXAMPLE".into()))
    );
}

/// Sign like the Python SDK against a local endpoint: the hostname without the port is signed
/// while the Host header carries it; query spaces as `+`.
#[test]
fn python_style_request_signed_without_port_verifies() {
    let params = vec![("prefix".to_string(), "a b".to_string())];
    let signed_headers = vec![("host".to_string(), "127.0.0.1".to_string())];
    let sig = sign(
        "SECRETEXAMPLE",
        KeyTime {
            start: 1_700_000_000,
            end: 1_700_010_000,
        },
        &SignRequest {
            method: "GET",
            key: "/examplebucket-1250000000/",
            params: &params,
            headers: &signed_headers,
        },
    );
    let wire = Wire {
        method: "GET".into(),
        target: "/examplebucket-1250000000/?prefix=a+b".into(),
        headers: vec![
            ("Host".into(), "127.0.0.1:9000".into()),
            ("Authorization".into(), sig.authorization("AKIDEXAMPLE")),
        ],
    };
    assert_eq!(
        wire.verify(NOW).map_err(|e| e.code),
        Ok(Caller::Signed("AKIDEXAMPLE".into()))
    );
}

#[test]
fn presigned_url_verifies_and_tampered_one_does_not() {
    let headers = vec![(
        "host".to_string(),
        "examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com".to_string(),
    )];
    let sig = sign(
        "SECRETEXAMPLE",
        KeyTime {
            start: 1_700_000_000,
            end: 1_700_003_600,
        },
        &SignRequest {
            method: "GET",
            key: "dir/a b.txt",
            params: &[],
            headers: &headers,
        },
    );
    let mut wire = Wire {
        method: "GET".into(),
        target: format!("/dir/a%20b.txt?{}", sig.query_string("AKIDEXAMPLE")),
        headers: vec![("Host".into(), headers[0].1.clone())],
    };
    assert_eq!(
        wire.verify(NOW).map_err(|e| e.code),
        Ok(Caller::Signed("AKIDEXAMPLE".into()))
    );
    wire.target = wire.target.replace("a%20b", "a%20c");
    assert_eq!(
        wire.verify(NOW).expect_err("tampered").code,
        "SignatureDoesNotMatch"
    );
}

#[test]
fn unsigned_request_is_anonymous() {
    let wire = Wire {
        method: "GET".into(),
        target: "/x".into(),
        headers: vec![("Host".into(), "b-1.localhost".into())],
    };
    assert_eq!(wire.verify(NOW).map_err(|e| e.code), Ok(Caller::Anonymous));
}
