//! Object operations of the COS client against a recording mock COS: request lines, the
//! headers sent (signature verified server-side), parsed answers, errors and retries.

mod common_client;

use std::collections::BTreeMap;

use bytes::Bytes;
use common_client::{Canned, MockCos, BUCKET};
use cosmount::cos::object::{Conditions, GetObjectOptions, ResponseOverrides};
use cosmount::cos::store::{ContentHeaders, CopyParams, MetadataDirective, PutOptions};
use cosmount::cos::{CosError, ObjectStore, PutBody};
use futures::StreamExt;

fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

#[tokio::test]
async fn put_object_sends_metadata_md5_and_signed_headers() {
    let mock = MockCos::start(|_, _| {
        Canned::ok()
            .header("ETag", "\"9a0364b9e99bb480dd25e1f0284c8555\"")
            .header("x-cos-hash-crc64ecma", "11051210869376104954")
    })
    .await;
    let client = mock.client();
    let mut meta = BTreeMap::new();
    meta.insert("mode".to_string(), "33188".to_string());
    meta.insert("author".to_string(), "Zhang San".to_string());
    let opts = PutOptions {
        content: ContentHeaders {
            content_type: Some("text/plain".into()),
            cache_control: Some("no-cache".into()),
            content_disposition: Some("attachment; filename=\"a.txt\"".into()),
            content_encoding: Some("gzip".into()),
            expires: Some("Wed, 21 Oct 2030 07:28:00 GMT".into()),
        },
        meta,
        storage_class: Some("STANDARD_IA".into()),
        acl: Some("private".into()),
        content_md5: Some(cosmount::cos::client::content_md5(b"123456789")),
    };
    let result = ObjectStore::put_object(
        &client,
        "dir/中文 a+b.txt",
        Bytes::from_static(b"123456789"),
        &opts,
    )
    .await
    .unwrap();
    assert_eq!(result.etag, "9a0364b9e99bb480dd25e1f0284c8555");
    assert_eq!(result.crc64, Some(11051210869376104954));

    let r = mock.single();
    assert_eq!(r.method, "PUT");
    assert_eq!(
        r.raw_path,
        format!("/{BUCKET}/dir/%E4%B8%AD%E6%96%87%20a%2Bb.txt")
    );
    assert_eq!(r.key(), "dir/中文 a+b.txt");
    assert!(r.signature_valid, "signature must verify: {r:#?}");
    assert_eq!(&r.body[..], b"123456789");
    assert_eq!(r.header("content-length"), Some("9"));
    assert_eq!(r.header("content-md5"), Some("JfnnlDI7RTiF9RgfG2JNCw=="));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert_eq!(r.header("cache-control"), Some("no-cache"));
    assert_eq!(r.header("content-encoding"), Some("gzip"));
    assert_eq!(r.header("x-cos-meta-mode"), Some("33188"));
    assert_eq!(r.header("x-cos-meta-author"), Some("Zhang San"));
    assert_eq!(r.header("x-cos-storage-class"), Some("STANDARD_IA"));
    assert_eq!(r.header("x-cos-acl"), Some("private"));
    assert_eq!(r.header("host"), Some(mock.addr.to_string().as_str()));
    let auth = r.header("authorization").unwrap();
    for signed in [
        "content-length",
        "content-md5",
        "content-type",
        "host",
        "x-cos-acl",
        "x-cos-meta-author",
        "x-cos-meta-mode",
        "x-cos-storage-class",
    ] {
        assert!(auth.contains(signed), "{signed} should be signed: {auth}");
    }
}

#[tokio::test]
async fn put_object_from_file_region_is_resent_on_retry() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool");
    let data = pattern(1 << 20);
    std::fs::write(&path, &data).unwrap();
    let mock = MockCos::start(|_, i| {
        if i == 0 {
            Canned::error(503, "SlowDown", "Please reduce your request rate.")
        } else {
            Canned::ok().header("ETag", "\"e\"")
        }
    })
    .await;
    let body = PutBody::File {
        path: path.clone(),
        offset: 1000,
        len: 600_000,
    };
    mock.client()
        .put_object("spooled.bin", body, &PutOptions::default())
        .await
        .unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    for r in &reqs {
        assert_eq!(&r.body[..], &data[1000..601_000]);
        assert_eq!(r.header("content-length"), Some("600000"));
        assert!(r.signature_valid);
    }
}

#[tokio::test]
async fn head_object_parses_attributes_and_metadata() {
    let mock = MockCos::start(|_, _| {
        Canned::ok()
            .header("Content-Length", "12345")
            .header("Content-Type", "image/png")
            .header("ETag", "\"abc123\"")
            .header("Last-Modified", "Fri, 10 Apr 2020 09:35:05 GMT")
            .header("x-cos-meta-mode", "33188")
            .header("x-cos-meta-MTime", "1586511305")
            .header("x-cos-storage-class", "ARCHIVE")
            .header("x-cos-hash-crc64ecma", "42")
    })
    .await;
    let info = ObjectStore::head_object(&mock.client(), "a.png")
        .await
        .unwrap();
    assert_eq!(info.key, "a.png");
    assert_eq!(info.size, 12345);
    assert_eq!(info.etag, "abc123");
    assert_eq!(info.storage_class, "ARCHIVE");
    assert_eq!(info.crc64, Some(42));
    assert_eq!(info.content.content_type.as_deref(), Some("image/png"));
    assert_eq!(info.meta.get("mode").map(String::as_str), Some("33188"));
    assert_eq!(
        info.meta.get("mtime").map(String::as_str),
        Some("1586511305")
    );
    assert_eq!(
        info.last_modified,
        httpdate::parse_http_date("Fri, 10 Apr 2020 09:35:05 GMT").unwrap()
    );
    let r = mock.single();
    assert_eq!(r.method, "HEAD");
    assert_eq!(r.path, format!("/{BUCKET}/a.png"));
    assert!(r.signature_valid);
}

#[tokio::test]
async fn head_object_defaults_storage_class_to_standard() {
    let mock = MockCos::start(|_, _| {
        Canned::ok()
            .header("Content-Length", "0")
            .header("ETag", "\"d\"")
    })
    .await;
    let info = ObjectStore::head_object(&mock.client(), "dir/")
        .await
        .unwrap();
    assert_eq!(info.storage_class, "STANDARD");
    assert_eq!(info.size, 0);
}

#[tokio::test]
async fn missing_object_is_no_such_key_and_not_retried() {
    // HEAD: no body, the code comes from the status.
    let mock = MockCos::start(|_, _| Canned::status(404)).await;
    let err = ObjectStore::head_object(&mock.client(), "nope")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchKey"));
    assert_eq!(err.status(), Some(404));
    assert_eq!(err.request_id(), Some("mock-req-id"));
    assert_eq!(mock.count(), 1);

    // GET: the XML body's code and request id.
    let mock =
        MockCos::start(|_, _| Canned::error(404, "NoSuchKey", "The specified key does not exist."))
            .await;
    let err = ObjectStore::get_range(&mock.client(), "nope", 0, 10, None)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchKey"));
    assert_eq!(err.request_id(), Some("req-NoSuchKey"));
    assert!(err
        .to_string()
        .contains("The specified key does not exist."));
    assert_eq!(mock.count(), 1, "a 404 must not be retried");
}

#[tokio::test]
async fn head_errors_map_status_to_codes() {
    for (status, code) in [
        (403, "AccessDenied"),
        (412, "PreconditionFailed"),
        (304, "NotModified"),
    ] {
        let mock = MockCos::start(move |_, _| Canned::status(status)).await;
        let conditions = Conditions {
            if_match: Some("abc".into()),
            ..Default::default()
        };
        let err = mock
            .client()
            .head_object("k", &conditions)
            .await
            .unwrap_err();
        assert_eq!(err.code(), Some(code), "status {status}");
        assert_eq!(mock.count(), 1);
        assert_eq!(mock.single().header("if-match"), Some("\"abc\""));
    }
}

#[tokio::test]
async fn slow_down_then_success_is_retried_once() {
    let mock = MockCos::start(|_, i| {
        if i == 0 {
            Canned::error(503, "SlowDown", "Please reduce your request rate.")
        } else {
            Canned::ok()
                .header("Content-Length", "3")
                .header("ETag", "\"e\"")
        }
    })
    .await;
    let info = ObjectStore::head_object(&mock.client(), "k").await.unwrap();
    assert_eq!(info.size, 3);
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn server_errors_are_retried_up_to_max_attempts() {
    let mock = MockCos::start(|_, _| Canned::error(500, "InternalError", "boom")).await;
    let err = ObjectStore::delete_object(&mock.client(), "k")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InternalError"));
    assert_eq!(mock.count(), 5);
}

#[tokio::test]
async fn other_client_errors_are_not_retried() {
    let mock = MockCos::start(|_, _| Canned::error(403, "SignatureDoesNotMatch", "bad")).await;
    let err = ObjectStore::delete_object(&mock.client(), "k")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn clock_skew_is_learned_from_date_and_retried_once() {
    let server_now = std::time::SystemTime::now() + std::time::Duration::from_secs(7200);
    let date = httpdate::fmt_http_date(server_now);
    let mock = MockCos::start(move |r, i| {
        if i == 0 {
            Canned::error(
                403,
                "RequestTimeTooSkewed",
                "The difference between the request time and the server's time is too large.",
            )
            .header("Date", &date)
        } else {
            assert!(r.signature_valid);
            Canned::status(204)
        }
    })
    .await;
    let client = mock.client();
    ObjectStore::delete_object(&client, "k").await.unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let offset = client.clock_offset();
    assert!((7190..=7210).contains(&offset), "offset {offset}");
    // The retry was signed with the server's time.
    let start = |r: &common_client::Recorded| -> i64 {
        r.sign_time
            .as_deref()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(start(&reqs[1]) - start(&reqs[0]) >= 7100);

    // A second skew answer is not retried again within the same call.
    let mock = MockCos::start(|_, _| {
        Canned::error(403, "AccessDenied", "Request has expired")
            .header("Date", "Wed, 25 Nov 2026 10:00:00 GMT")
    })
    .await;
    let err = ObjectStore::delete_object(&mock.client(), "k")
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("AccessDenied"));
    assert_eq!(mock.count(), 2);
}

#[tokio::test]
async fn network_errors_are_retried_then_reported() {
    // A port with nothing listening: bind, note the address, close.
    let addr = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    let mut cfg =
        cosmount::cos::ClientConfig::new(BUCKET, "", cosmount::cos::Credentials::new("id", "key"))
            .with_endpoint(format!("http://{addr}"));
    cfg.retry.base_delay = std::time::Duration::from_millis(1);
    cfg.retry.max_attempts = 2;
    cfg.retry.budget = std::time::Duration::ZERO;
    let client = cosmount::cos::Client::new(cfg).unwrap();
    let err = ObjectStore::head_object(&client, "k").await.unwrap_err();
    assert!(matches!(err, CosError::Network { .. }), "{err:?}");
}

#[tokio::test]
async fn get_range_sends_range_and_if_match() {
    let data = pattern(100);
    let mock = MockCos::start(move |r, _| {
        assert_eq!(r.header("range"), Some("bytes=10-29"));
        Canned::status(206)
            .header("Content-Range", "bytes 10-29/100")
            .header("ETag", "\"v1\"")
            .body(data[10..30].to_vec())
    })
    .await;
    let got = ObjectStore::get_range(&mock.client(), "obj", 10, 20, Some("v1"))
        .await
        .unwrap();
    assert_eq!(&got.data[..], &pattern(100)[10..30]);
    assert_eq!(got.etag, "v1");
    assert_eq!(got.object_size, 100);
    let r = mock.single();
    assert_eq!(r.method, "GET");
    assert_eq!(r.header("if-match"), Some("\"v1\""));
    assert!(r.signature_valid);
    assert!(r.header("authorization").unwrap().contains("range"));
}

#[tokio::test]
async fn get_range_changed_object_is_precondition_failed() {
    let mock = MockCos::start(|_, _| {
        Canned::error(
            412,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        )
    })
    .await;
    let err = ObjectStore::get_range(&mock.client(), "obj", 0, 10, Some("old"))
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("PreconditionFailed"));
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn get_range_past_the_end_is_short() {
    let mock = MockCos::start(|_, _| {
        Canned::status(206)
            .header("Content-Range", "bytes 90-99/100")
            .header("ETag", "\"v1\"")
            .body(pattern(100)[90..].to_vec())
    })
    .await;
    let got = ObjectStore::get_range(&mock.client(), "obj", 90, 4096, None)
        .await
        .unwrap();
    assert_eq!(got.data.len(), 10);
    assert_eq!(got.object_size, 100);
}

#[tokio::test]
async fn get_range_tolerates_a_server_ignoring_range() {
    let mock =
        MockCos::start(|_, _| Canned::ok().header("ETag", "\"v\"").body(pattern(1000))).await;
    let got = ObjectStore::get_range(&mock.client(), "obj", 300, 50, None)
        .await
        .unwrap();
    assert_eq!(&got.data[..], &pattern(1000)[300..350]);
    assert_eq!(got.object_size, 1000);
}

#[tokio::test]
async fn ranged_get_streams_the_body() {
    let data = pattern(3 << 20);
    let expected = data[1000..(2 << 20)].to_vec();
    let mock = MockCos::start(move |_, _| {
        Canned::status(206)
            .header(
                "Content-Range",
                &format!("bytes 1000-{}/{}", (2 << 20) - 1, 3 << 20),
            )
            .header("ETag", "\"v\"")
            .header("Last-Modified", "Fri, 10 Apr 2020 09:35:05 GMT")
            .body(data[1000..(2 << 20)].to_vec())
    })
    .await;
    let opts = GetObjectOptions {
        range: Some((1000, (2 << 20) - 1)),
        overrides: ResponseOverrides {
            content_type: Some("text/plain".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    let out = mock.client().get_object("big.bin", &opts).await.unwrap();
    assert_eq!(out.status, 206);
    assert_eq!(out.info.size, 3 << 20);
    assert_eq!(out.content_length, expected.len() as u64);
    let mut body = out.body;
    let mut got = Vec::new();
    let mut chunks = 0;
    while let Some(chunk) = body.next().await {
        got.extend_from_slice(&chunk.unwrap());
        chunks += 1;
    }
    assert!(chunks > 1, "body should arrive in several chunks");
    assert_eq!(got, expected);
    let r = mock.single();
    assert_eq!(r.param("response-content-type"), Some("text/plain"));
    assert!(r.signature_valid);
}

#[tokio::test]
async fn download_to_file_checks_crc() {
    let data = pattern(100_000);
    let crc = cosmount::cos::crc64::checksum(&data);
    let good = data.clone();
    let mock = MockCos::start(move |r, _| {
        let crc_header = if r.key() == "bad" { crc ^ 1 } else { crc };
        Canned::ok()
            .header("ETag", "\"v\"")
            .header("x-cos-hash-crc64ecma", &crc_header.to_string())
            .body(good.clone())
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("out");
    let info = mock
        .client()
        .download_to_file("good", &Default::default(), &target)
        .await
        .unwrap();
    assert_eq!(info.size, 100_000);
    assert_eq!(std::fs::read(&target).unwrap(), data);
    let bad = dir.path().join("bad");
    let err = mock
        .client()
        .download_to_file("bad", &Default::default(), &bad)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CRC-64 mismatch"), "{err}");
    assert!(!bad.exists(), "a failed download leaves no file");
}

#[tokio::test]
async fn delete_object_sends_delete() {
    let mock = MockCos::start(|_, _| Canned::status(204)).await;
    ObjectStore::delete_object(&mock.client(), "a/b c")
        .await
        .unwrap();
    let r = mock.single();
    assert_eq!(r.method, "DELETE");
    assert_eq!(r.raw_path, format!("/{BUCKET}/a/b%20c"));
    assert!(r.signature_valid);
}

#[tokio::test]
async fn copy_object_sends_source_directive_and_storage_class() {
    let mock = MockCos::start(|_, _| {
        Canned::ok().xml("<CopyObjectResult><ETag>\"e2\"</ETag><CRC64>77</CRC64><LastModified>2020-04-10T18:20:30Z</LastModified></CopyObjectResult>")
    })
    .await;
    let client = mock.client();
    let params = CopyParams {
        source_key: "src dir/a+b.txt".into(),
        directive: MetadataDirective::Copy,
        storage_class: Some("STANDARD_IA".into()),
        acl: None,
        source_if_match: Some("e1".into()),
    };
    let r1 = ObjectStore::copy_object(&client, "dst.txt", &params)
        .await
        .unwrap();
    assert_eq!(r1.etag, "e2");
    assert_eq!(r1.crc64, Some(77));
    let mut meta = BTreeMap::new();
    meta.insert("mode".to_string(), "33261".to_string());
    let replaced = CopyParams {
        source_key: "dst.txt".into(),
        directive: MetadataDirective::Replaced(PutOptions {
            content: ContentHeaders {
                content_type: Some("text/plain".into()),
                ..Default::default()
            },
            meta,
            ..Default::default()
        }),
        storage_class: None,
        acl: None,
        source_if_match: None,
    };
    ObjectStore::copy_object(&client, "dst.txt", &replaced)
        .await
        .unwrap();
    let reqs = mock.requests();
    assert_eq!(reqs.len(), 2);
    let r = &reqs[0];
    assert_eq!(r.method, "PUT");
    assert_eq!(r.key(), "dst.txt");
    assert_eq!(
        r.header("x-cos-copy-source"),
        Some(format!("/{BUCKET}/src%20dir/a%2Bb.txt").as_str())
    );
    assert_eq!(r.header("x-cos-metadata-directive"), Some("Copy"));
    assert_eq!(r.header("x-cos-storage-class"), Some("STANDARD_IA"));
    assert_eq!(r.header("x-cos-copy-source-if-match"), Some("\"e1\""));
    assert!(r.signature_valid);
    let r = &reqs[1];
    assert_eq!(r.header("x-cos-metadata-directive"), Some("Replaced"));
    assert_eq!(r.header("x-cos-meta-mode"), Some("33261"));
    assert_eq!(r.header("content-type"), Some("text/plain"));
    assert!(r.signature_valid);
}

#[tokio::test]
async fn copy_answering_200_with_error_is_an_error() {
    let mock = MockCos::start(|_, _| {
        Canned::ok().xml("<?xml version='1.0' encoding='utf-8' ?>\n<Error><Code>InternalError</Code><Message>copy failed</Message><RequestId>rid-7</RequestId></Error>")
    })
    .await;
    let params = CopyParams {
        source_key: "a".into(),
        directive: MetadataDirective::Copy,
        storage_class: None,
        acl: None,
        source_if_match: None,
    };
    let err = ObjectStore::copy_object(&mock.client(), "b", &params)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("InternalError"));
    assert_eq!(err.status(), Some(200));
    assert_eq!(err.request_id(), Some("rid-7"));
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn key_too_long_is_refused_before_sending() {
    let mock = MockCos::start(|_, _| Canned::ok()).await;
    let key = "k".repeat(851);
    let err = ObjectStore::head_object(&mock.client(), &key)
        .await
        .unwrap_err();
    match err {
        CosError::InvalidInput(m) => assert!(m.contains("KeyTooLong"), "{m}"),
        other => panic!("expected InvalidInput, got {other:?}"),
    }
    assert_eq!(mock.count(), 0);
}

#[tokio::test]
async fn cos_key_too_long_error_is_parsed() {
    let mock =
        MockCos::start(|_, _| Canned::error(400, "KeyTooLong", "Your key is too long")).await;
    let err = ObjectStore::put_object(&mock.client(), "k", Bytes::new(), &PutOptions::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("KeyTooLong"));
    assert_eq!(err.status(), Some(400));
}

#[tokio::test]
async fn temporary_token_is_sent_and_signed() {
    let mock = MockCos::start(|_, _| Canned::status(204)).await;
    let mut cfg = mock.config();
    cfg.credentials = cfg.credentials.with_token("TOKEN+/=abc");
    let client = cosmount::cos::Client::new(cfg).unwrap();
    ObjectStore::delete_object(&client, "k").await.unwrap();
    let r = mock.single();
    assert_eq!(r.header("x-cos-security-token"), Some("TOKEN+/=abc"));
    assert!(r
        .header("authorization")
        .unwrap()
        .contains("x-cos-security-token"));
    assert!(r.signature_valid);
}

#[tokio::test]
async fn ranged_get_cut_short_is_retried_and_never_returned_short() {
    // First answer announces 100 bytes and sends 50 (the connection then breaks).
    let mock = MockCos::start(|_, i| {
        let answer = Canned::status(206)
            .header("Content-Range", "bytes 0-99/100")
            .header("ETag", "\"v\"");
        if i == 0 {
            answer
                .header("Content-Length", "100")
                .body(pattern(100)[..50].to_vec())
        } else {
            answer.body(pattern(100))
        }
    })
    .await;
    let got = ObjectStore::get_range(&mock.client(), "obj", 0, 100, None)
        .await
        .unwrap();
    assert_eq!(&got.data[..], &pattern(100)[..]);
    assert_eq!(mock.count(), 2);
}
