//! cos-local over HTTP, through a signing client: what a COS user would check.

mod common;

use common::{md5_hex, pattern, Client, ServerProcess, BUCKET};
use cos_protocol::crc64;

fn start() -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &[]);
    (dir, server)
}

/// An anonymous CORS preflight for `doc` from `http://a.example.com`, asking for `method`.
async fn preflight(c: &Client, method: &str) -> common::Resp {
    c.send_full(
        "OPTIONS",
        BUCKET,
        "doc",
        &[],
        &[
            ("Origin", "http://a.example.com"),
            ("Access-Control-Request-Method", method),
        ],
        vec![],
        false,
    )
    .await
}

#[tokio::test]
async fn put_get_head_delete_keep_bytes_and_metadata() {
    let (_dir, server) = start();
    let c = server.client();
    let data = pattern(100_000, 1);
    let put = c
        .send(
            "PUT",
            "dir/my file.txt",
            &[],
            &[
                ("Content-Type", "text/plain"),
                ("x-cos-meta-author", "Zhang San"),
                ("Cache-Control", "no-cache"),
                ("x-cos-storage-class", "STANDARD_IA"),
            ],
            data.clone(),
        )
        .await;
    assert_eq!(put.status, 200, "{}", put.text());
    assert_eq!(put.header("etag"), Some(format!("\"{}\"", md5_hex(&data))));
    assert_eq!(
        put.header("x-cos-hash-crc64ecma"),
        Some(crc64::checksum(&data).to_string())
    );
    assert!(put.header("x-cos-request-id").is_some());

    // More than 2 KB of user metadata is refused, and nothing is stored.
    let big = "v".repeat(2048);
    let r = c
        .send(
            "PUT",
            "too-much-meta",
            &[],
            &[("x-cos-meta-big", big.as_str())],
            b"x".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "MetadataTooLarge".to_string()));
    assert_eq!(c.get("too-much-meta").await.status, 404);

    let get = c.get("dir/my file.txt").await;
    assert_eq!(get.status, 200);
    assert_eq!(get.body, data);
    assert_eq!(get.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(
        get.header("x-cos-meta-author").as_deref(),
        Some("Zhang San")
    );
    assert_eq!(get.header("cache-control").as_deref(), Some("no-cache"));
    assert_eq!(
        get.header("x-cos-storage-class").as_deref(),
        Some("STANDARD_IA")
    );
    assert!(get
        .header("last-modified")
        .is_some_and(|d| d.ends_with(" GMT")));

    let head = c.send("HEAD", "dir/my file.txt", &[], &[], vec![]).await;
    assert_eq!(head.status, 200);
    assert_eq!(head.header("content-length"), Some(data.len().to_string()));
    assert!(head.body.is_empty());

    let del = c.send("DELETE", "dir/my file.txt", &[], &[], vec![]).await;
    assert_eq!(del.status, 204);
    let gone = c.get("dir/my file.txt").await;
    assert_eq!((gone.status, gone.code()), (404, "NoSuchKey".to_string()));
    assert!(gone.element("RequestId").is_some() && gone.element("Resource").is_some());
    let head_gone = c.send("HEAD", "dir/my file.txt", &[], &[], vec![]).await;
    assert_eq!(head_gone.status, 404);
    assert!(head_gone.body.is_empty());
    // Deleting a missing key is still 204.
    assert_eq!(
        c.send("DELETE", "nothing", &[], &[], vec![]).await.status,
        204
    );
}

#[tokio::test]
async fn awkward_keys_coexist_and_long_keys_are_refused() {
    let (_dir, server) = start();
    let c = server.client();
    let long = "k".repeat(850);
    let keys = [
        "a",
        "a/b",
        "a/b/",
        "a+b%c d",
        "中文/文件 名.txt",
        "x//y",
        long.as_str(),
    ];
    for (i, k) in keys.iter().enumerate() {
        let r = c.put(k, format!("body {i}").as_bytes()).await;
        assert_eq!(r.status, 200, "{k}: {}", r.text());
    }
    for (i, k) in keys.iter().enumerate() {
        let r = c.get(k).await;
        assert_eq!(r.text(), format!("body {i}"), "{k}");
    }
    // `..` and `a/../b` are plain keys (sent raw: HTTP clients would normalise them).
    for k in ["..", "a/../b", "x//y/./z"] {
        let put = common::raw_signed_request(&server.addr, "PUT", BUCKET, k, k.as_bytes());
        assert!(put.starts_with("HTTP/1.1 200"), "{k}: {put}");
        let get = common::raw_signed_request(&server.addr, "GET", BUCKET, k, b"");
        assert!(
            get.starts_with("HTTP/1.1 200") && get.ends_with(&format!("\r\n\r\n{k}")),
            "{k}: {get}"
        );
    }
    assert_eq!(c.get("a").await.text(), "body 0");
    let too_long = "k".repeat(851);
    let r = c.put(&too_long, b"x").await;
    assert_eq!((r.status, r.code()), (400, "KeyTooLong".to_string()));
}

#[tokio::test]
async fn ranges_and_conditionals() {
    let (_dir, server) = start();
    let c = server.client();
    let data = pattern(1000, 7);
    let etag = format!("\"{}\"", md5_hex(&data));
    c.put("r", &data).await;
    let r = c
        .send("GET", "r", &[], &[("Range", "bytes=10-19")], vec![])
        .await;
    assert_eq!(r.status, 206);
    assert_eq!(r.body, data[10..20]);
    assert_eq!(
        r.header("content-range").as_deref(),
        Some("bytes 10-19/1000")
    );
    let r = c
        .send("GET", "r", &[], &[("Range", "bytes=990-")], vec![])
        .await;
    assert_eq!(r.body, data[990..]);
    let r = c
        .send("GET", "r", &[], &[("Range", "bytes=-5")], vec![])
        .await;
    assert_eq!(r.body, data[995..]);
    let r = c
        .send("GET", "r", &[], &[("Range", "bytes=1000-1001")], vec![])
        .await;
    assert_eq!((r.status, r.code()), (416, "InvalidRange".to_string()));

    let r = c
        .send("GET", "r", &[], &[("If-None-Match", &etag)], vec![])
        .await;
    assert_eq!(r.status, 304);
    let r = c
        .send("GET", "r", &[], &[("If-Match", "\"0000\"")], vec![])
        .await;
    assert_eq!(
        (r.status, r.code()),
        (412, "PreconditionFailed".to_string())
    );
    let r = c
        .send("GET", "r", &[], &[("If-Match", &etag)], vec![])
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .send(
            "GET",
            "r",
            &[],
            &[("If-Modified-Since", "Fri, 10 Apr 2099 09:35:05 GMT")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 304);
    let r = c
        .send(
            "GET",
            "r",
            &[],
            &[("If-Unmodified-Since", "Fri, 10 Apr 2020 09:35:05 GMT")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 412);

    // Content-MD5: wrong -> BadDigest, malformed -> InvalidDigest, nothing stored.
    let r = c
        .send(
            "PUT",
            "md5",
            &[],
            &[("Content-MD5", "AAAAAAAAAAAAAAAAAAAAAA==")],
            b"abc".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "BadDigest".to_string()));
    let r = c
        .send(
            "PUT",
            "md5",
            &[],
            &[("Content-MD5", "nope")],
            b"abc".to_vec(),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidDigest".to_string()));
    assert_eq!(c.get("md5").await.status, 404);
    let r = c
        .send(
            "PUT",
            "md5",
            &[],
            &[("Content-MD5", "kAFQmDzST7DWlj99KOF/cg==")],
            b"abc".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
}

#[tokio::test]
async fn listing_with_prefix_delimiter_marker_and_pages() {
    let (_dir, server) = start();
    let c = server.client();
    for k in [
        "dir/",
        "dir/a.txt",
        "dir/b c.txt",
        "dir/sub/x",
        "dir/sub/y",
        "dir/z/1",
        "top",
        "中/文",
    ] {
        c.put(k, b"1").await;
    }
    let r = c
        .send(
            "GET",
            "",
            &[
                ("prefix", "dir/"),
                ("delimiter", "/"),
                ("encoding-type", "url"),
            ],
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.elements("Key"), ["dir/", "dir/a.txt", "dir/b%20c.txt"]);
    assert_eq!(
        r.elements("Prefix")[1..],
        ["dir/sub/".to_string(), "dir/z/".to_string()]
    );
    assert_eq!(r.element("IsTruncated").as_deref(), Some("false"));

    // Pages of 2 entries (CommonPrefixes count) with NextMarker.
    let mut marker = String::new();
    let mut seen = Vec::new();
    loop {
        let r = c
            .send(
                "GET",
                "",
                &[
                    ("prefix", "dir/"),
                    ("delimiter", "/"),
                    ("marker", &marker),
                    ("max-keys", "2"),
                ],
                &[],
                vec![],
            )
            .await;
        let mut page = r.elements("Key");
        page.extend(r.elements("Prefix").into_iter().skip(1));
        assert!(page.len() <= 2);
        seen.extend(page);
        if r.element("IsTruncated").as_deref() == Some("true") {
            marker = r.element("NextMarker").expect("NextMarker when truncated");
        } else {
            break;
        }
    }
    seen.sort();
    assert_eq!(
        seen,
        ["dir/", "dir/a.txt", "dir/b c.txt", "dir/sub/", "dir/z/"]
    );

    let r = c
        .send("GET", "", &[("encoding-type", "url")], &[], vec![])
        .await;
    assert!(r
        .elements("Key")
        .contains(&"%E4%B8%AD/%E6%96%87".to_string()));
    assert_eq!(
        r.header("x-cos-bucket-region").as_deref(),
        Some("ap-guangzhou")
    );
}

#[tokio::test]
async fn multipart_upload_with_cos_rules() {
    let (_dir, server) = start();
    let c = server.client();
    let init = c
        .send(
            "POST",
            "big/file.bin",
            &[("uploads", "")],
            &[("x-cos-meta-k", "v")],
            vec![],
        )
        .await;
    assert_eq!(init.status, 200, "{}", init.text());
    let id = init.element("UploadId").expect("UploadId");
    let parts = [pattern(1 << 20, 1), pattern(1 << 20, 2), pattern(12345, 3)];
    let mut etags = Vec::new();
    for (i, p) in parts.iter().enumerate() {
        let n = (i + 1).to_string();
        let r = c
            .send(
                "PUT",
                "big/file.bin",
                &[("partNumber", &n), ("uploadId", &id)],
                &[],
                p.clone(),
            )
            .await;
        assert_eq!(r.status, 200);
        assert_eq!(
            r.header("x-cos-hash-crc64ecma"),
            Some(crc64::checksum(p).to_string())
        );
        etags.push(r.header("etag").expect("part etag"));
    }
    let listed = c
        .send("GET", "big/file.bin", &[("uploadId", &id)], &[], vec![])
        .await;
    assert_eq!(listed.elements("PartNumber"), ["1", "2", "3"]);
    let uploads = c.send("GET", "", &[("uploads", "")], &[], vec![]).await;
    assert_eq!(uploads.elements("UploadId"), vec![id.clone()]);

    let body = |list: &[(usize, &str)]| {
        let mut s = String::from("<CompleteMultipartUpload>");
        for (n, e) in list {
            s.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{}</ETag></Part>",
                e.replace('"', "&quot;")
            ));
        }
        s.push_str("</CompleteMultipartUpload>");
        s.into_bytes()
    };
    let r = c
        .send(
            "POST",
            "big/file.bin",
            &[("uploadId", &id)],
            &[],
            body(&[(1, &etags[0]), (2, "\"bad\"")]),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidPart".to_string()));
    let r = c
        .send(
            "POST",
            "big/file.bin",
            &[("uploadId", &id)],
            &[],
            body(&[(2, &etags[1]), (1, &etags[0])]),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidPartOrder".to_string()));
    let r = c
        .send(
            "POST",
            "big/file.bin",
            &[("uploadId", &id)],
            &[],
            body(&[(1, &etags[0]), (3, &etags[2]), (2, &etags[1])]),
        )
        .await;
    assert_eq!(r.code(), "InvalidPartOrder");
    // COS wants parts continuous from 1: a gap is InvalidPart even with valid ETags.
    let r = c
        .send(
            "POST",
            "big/file.bin",
            &[("uploadId", &id)],
            &[],
            body(&[(1, &etags[0]), (3, &etags[2])]),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidPart".to_string()));
    let r = c
        .send(
            "POST",
            "big/file.bin",
            &[("uploadId", &id)],
            &[],
            body(&[(1, &etags[0]), (2, &etags[1]), (3, &etags[2])]),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let whole: Vec<u8> = parts.concat();
    let mut md5s = Vec::new();
    for p in &parts {
        md5s.extend(hex::decode(md5_hex(p)).expect("hex"));
    }
    let want_etag = format!("&quot;{}-3&quot;", md5_hex(&md5s));
    assert_eq!(r.element("ETag"), Some(want_etag));
    assert_eq!(
        r.header("x-cos-hash-crc64ecma"),
        Some(crc64::checksum(&whole).to_string())
    );
    let got = c.get("big/file.bin").await;
    assert_eq!(got.body, whole);
    assert_eq!(got.header("x-cos-meta-k").as_deref(), Some("v"));
    assert_eq!(
        got.header("x-cos-hash-crc64ecma"),
        Some(crc64::checksum(&whole).to_string())
    );

    // The upload is gone after Complete.
    let r = c
        .send(
            "POST",
            "big/file.bin",
            &[("uploadId", &id)],
            &[],
            body(&[(1, &etags[0])]),
        )
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchUpload".to_string()));

    // EntityTooSmall: a small part that is not the last.
    let init = c
        .send("POST", "small", &[("uploads", "")], &[], vec![])
        .await;
    let id2 = init.element("UploadId").expect("UploadId");
    let e1 = c
        .send(
            "PUT",
            "small",
            &[("partNumber", "1"), ("uploadId", &id2)],
            &[],
            b"tiny".to_vec(),
        )
        .await
        .header("etag")
        .expect("etag");
    let e2 = c
        .send(
            "PUT",
            "small",
            &[("partNumber", "2"), ("uploadId", &id2)],
            &[],
            b"tiny".to_vec(),
        )
        .await
        .header("etag")
        .expect("etag");
    let r = c
        .send(
            "POST",
            "small",
            &[("uploadId", &id2)],
            &[],
            body(&[(1, &e1), (2, &e2)]),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "EntityTooSmall".to_string()));
    let r = c
        .send(
            "PUT",
            "small",
            &[("partNumber", "10001"), ("uploadId", &id2)],
            &[],
            b"x".to_vec(),
        )
        .await;
    assert_eq!(r.status, 400);
    assert_eq!(
        c.send("DELETE", "small", &[("uploadId", &id2)], &[], vec![])
            .await
            .status,
        204
    );
    let r = c
        .send("DELETE", "small", &[("uploadId", &id2)], &[], vec![])
        .await;
    assert_eq!((r.status, r.code()), (404, "NoSuchUpload".to_string()));
}

#[tokio::test]
async fn copy_object_and_part_copy() {
    let (_dir, server) = start();
    let c = server.client();
    let data = pattern(3 << 20, 9);
    c.send(
        "PUT",
        "src file",
        &[],
        &[
            ("x-cos-meta-a", "1"),
            ("x-cos-storage-class", "STANDARD_IA"),
        ],
        data.clone(),
    )
    .await;
    let source = format!("{BUCKET}.cos.ap-guangzhou.myqcloud.com/src%20file");
    let r = c
        .send("PUT", "dst", &[], &[("x-cos-copy-source", &source)], vec![])
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        r.element("ETag"),
        Some(format!("&quot;{}&quot;", md5_hex(&data)))
    );
    assert_eq!(r.element("CRC64"), Some(crc64::checksum(&data).to_string()));
    let got = c.get("dst").await;
    assert_eq!(got.body, data);
    assert_eq!(got.header("x-cos-meta-a").as_deref(), Some("1"));
    assert_eq!(
        got.header("x-cos-storage-class"),
        None,
        "storage class is not inherited"
    );

    let r = c
        .send(
            "PUT",
            "src file",
            &[],
            &[("x-cos-copy-source", &source)],
            vec![],
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "InvalidRequest".to_string()));
    let r = c
        .send(
            "PUT",
            "src file",
            &[],
            &[
                ("x-cos-copy-source", &source),
                ("x-cos-metadata-directive", "Replaced"),
                ("x-cos-meta-b", "2"),
                ("Content-Type", "text/x"),
            ],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
    let got = c.send("HEAD", "src file", &[], &[], vec![]).await;
    assert_eq!(got.header("x-cos-meta-b").as_deref(), Some("2"));
    assert_eq!(got.header("x-cos-meta-a"), None);

    let r = c
        .send(
            "PUT",
            "dst2",
            &[],
            &[
                ("x-cos-copy-source", &source),
                ("x-cos-copy-source-If-Match", "\"nope\""),
            ],
            vec![],
        )
        .await;
    assert_eq!(r.status, 412);

    // Upload Part Copy with a range, path-style source form.
    let init = c
        .send("POST", "assembled", &[("uploads", "")], &[], vec![])
        .await;
    let id = init.element("UploadId").expect("UploadId");
    let src2 = format!("/{BUCKET}/src%20file");
    let p1 = c
        .send(
            "PUT",
            "assembled",
            &[("partNumber", "1"), ("uploadId", &id)],
            &[
                ("x-cos-copy-source", &src2),
                ("x-cos-copy-source-range", "bytes=0-1048575"),
            ],
            vec![],
        )
        .await;
    assert_eq!(p1.status, 200, "{}", p1.text());
    let p2 = c
        .send(
            "PUT",
            "assembled",
            &[("partNumber", "2"), ("uploadId", &id)],
            &[
                ("x-cos-copy-source", &src2),
                ("x-cos-copy-source-range", "bytes=1048576-1048675"),
            ],
            vec![],
        )
        .await;
    let e1 = p1.element("ETag").expect("etag").replace("&quot;", "\"");
    let e2 = p2.element("ETag").expect("etag").replace("&quot;", "\"");
    let body = format!("<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>{e1}</ETag></Part><Part><PartNumber>2</PartNumber><ETag>{e2}</ETag></Part></CompleteMultipartUpload>");
    let r = c
        .send(
            "POST",
            "assembled",
            &[("uploadId", &id)],
            &[],
            body.into_bytes(),
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(c.get("assembled").await.body, data[..1048676]);
}

#[tokio::test]
async fn signature_and_access_errors() {
    let (_dir, server) = start();
    let c = server.client();
    c.put("private", b"secret").await;
    let wrong = Client::new(&server.addr, common::SECRET_ID, "wrong-key");
    let r = wrong.get("private").await;
    assert_eq!(
        (r.status, r.code()),
        (403, "SignatureDoesNotMatch".to_string())
    );
    assert!(r
        .element("StringToSign")
        .is_some_and(|s| s.starts_with("sha1\n")));
    assert!(r
        .element("FormatString")
        .is_some_and(|s| s.starts_with("get\n/examplebucket-1250000000/private\n")));
    let unknown = Client::new(&server.addr, "AKIDNOBODY", "k");
    assert_eq!(unknown.get("private").await.code(), "InvalidAccessKeyId");

    let anon = c
        .send_full("GET", BUCKET, "private", &[], &[], vec![], false)
        .await;
    assert_eq!(
        (anon.status, anon.code()),
        (403, "AccessDenied".to_string())
    );
    assert_eq!(
        c.send_full("GET", "nosuchbucket-1", "k", &[], &[], vec![], true)
            .await
            .code(),
        "NoSuchBucket"
    );
}

#[tokio::test]
async fn open_reader_keeps_old_bytes_across_overwrite_and_last_writer_wins() {
    let (_dir, server) = start();
    let c = server.client();
    let old = pattern(8 << 20, 1);
    c.put("obj", &old).await;

    // Start a GET and read only its first chunk...
    let url = format!("http://{}/{BUCKET}/obj", server.addr);
    let headers = vec![("host".to_string(), server.addr.clone())];
    let signed_key = format!("/{BUCKET}/obj");
    let sig = cos_protocol::sign::sign(
        common::SECRET_KEY,
        cos_protocol::sign::KeyTime::around_now(600, 0),
        &cos_protocol::sign::SignRequest {
            method: "GET",
            key: &signed_key,
            params: &[],
            headers: &headers,
        },
    );
    let mut resp = common::http::Client::new()
        .get(&url)
        .header("Authorization", sig.authorization(common::SECRET_ID))
        .send()
        .await
        .expect("GET starts");
    let mut received = resp
        .chunk()
        .await
        .expect("first chunk")
        .expect("some bytes")
        .to_vec();

    // ...overwrite and delete the object meanwhile...
    let new = pattern(8 << 20, 2);
    assert_eq!(c.put("obj", &new).await.status, 200);
    assert_eq!(c.send("DELETE", "obj", &[], &[], vec![]).await.status, 204);

    // ...and the open reader still gets exactly the old version.
    while let Some(chunk) = resp.chunk().await.expect("chunk") {
        received.extend_from_slice(&chunk);
    }
    assert_eq!(received.len(), old.len());
    assert!(received == old, "reader saw a mix of versions");

    // Concurrent writers of one key: the result is one complete body, never a mix.
    let bodies: Vec<Vec<u8>> = (0..4u8).map(|i| pattern(2 << 20, 10 + i)).collect();
    let puts = bodies.iter().map(|b| c.put("race", b));
    for r in futures::future::join_all(puts).await {
        assert_eq!(r.status, 200);
    }
    let got = c.get("race").await.body;
    assert!(
        bodies.contains(&got),
        "the stored object is one of the written bodies"
    );
}

#[tokio::test]
async fn buckets_acl_cors_and_delete_multiple() {
    let (_dir, server) = start();
    let c = server.client();
    let other = "other-1250000000";
    assert_eq!(
        c.send_full("PUT", other, "", &[], &[], vec![], true)
            .await
            .status,
        200
    );
    let again = c.send_full("PUT", other, "", &[], &[], vec![], true).await;
    assert_eq!(
        (again.status, again.code()),
        (409, "BucketAlreadyExists".to_string())
    );
    let head = c.send_full("HEAD", other, "", &[], &[], vec![], true).await;
    assert_eq!(
        head.header("x-cos-bucket-region").as_deref(),
        Some("ap-guangzhou")
    );
    let loc = c
        .send_full("GET", other, "", &[("location", "")], &[], vec![], true)
        .await;
    assert_eq!(
        loc.element("LocationConstraint").as_deref(),
        Some("ap-guangzhou")
    );
    c.send_full("PUT", other, "k", &[], &[], b"x".to_vec(), true)
        .await;
    let busy = c
        .send_full("DELETE", other, "", &[], &[], vec![], true)
        .await;
    assert_eq!(
        (busy.status, busy.code()),
        (409, "BucketNotEmpty".to_string())
    );
    c.send_full("DELETE", other, "k", &[], &[], vec![], true)
        .await;
    assert_eq!(
        c.send_full("DELETE", other, "", &[], &[], vec![], true)
            .await
            .status,
        204
    );
    assert_eq!(
        c.send_full("HEAD", other, "", &[], &[], vec![], true)
            .await
            .status,
        404
    );

    // Bucket ACL public-read lets anonymous callers list and read, not write.
    c.put("doc", b"hello").await;
    let anon_list = c
        .send_full("GET", BUCKET, "", &[], &[], vec![], false)
        .await;
    assert_eq!(anon_list.status, 403);
    let r = c
        .send(
            "PUT",
            "",
            &[("acl", "")],
            &[("x-cos-acl", "public-read")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    let acl = c.send("GET", "", &[("acl", "")], &[], vec![]).await;
    assert!(acl.text().contains("<URI>http://cam.qcloud.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission>"));
    assert_eq!(
        c.send_full("GET", BUCKET, "", &[], &[], vec![], false)
            .await
            .status,
        200
    );
    assert_eq!(
        c.send_full("GET", BUCKET, "doc", &[], &[], vec![], false)
            .await
            .text(),
        "hello"
    );
    assert_eq!(
        c.send_full("PUT", BUCKET, "w", &[], &[], b"x".to_vec(), false)
            .await
            .status,
        403
    );
    // An object ACL of its own overrides the bucket's.
    let r = c
        .send(
            "PUT",
            "doc",
            &[("acl", "")],
            &[("x-cos-acl", "private")],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(
        c.send_full("GET", BUCKET, "doc", &[], &[], vec![], false)
            .await
            .status,
        403
    );

    // CORS: none yet, then a rule, a preflight, and a refused preflight.
    let none = c.send("GET", "", &[("cors", "")], &[], vec![]).await;
    assert_eq!(
        (none.status, none.code()),
        (404, "NoSuchCORSConfiguration".to_string())
    );
    let rules = "<CORSConfiguration><CORSRule><AllowedOrigin>http://*.example.com</AllowedOrigin>\
                 <AllowedMethod>GET</AllowedMethod><AllowedHeader>*</AllowedHeader>\
                 <ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>60</MaxAgeSeconds></CORSRule></CORSConfiguration>";
    assert_eq!(
        c.send("PUT", "", &[("cors", "")], &[], rules.as_bytes().to_vec())
            .await
            .status,
        200
    );
    let got = c.send("GET", "", &[("cors", "")], &[], vec![]).await;
    assert_eq!(
        got.element("AllowedOrigin").as_deref(),
        Some("http://*.example.com")
    );
    let pre = preflight(&c, "GET").await;
    assert_eq!(pre.status, 200);
    assert_eq!(
        pre.header("access-control-allow-origin").as_deref(),
        Some("http://a.example.com")
    );
    assert_eq!(pre.header("access-control-max-age").as_deref(), Some("60"));
    let refused = preflight(&c, "PUT").await;
    assert_eq!(refused.status, 403);
    assert_eq!(
        c.send("DELETE", "", &[("cors", "")], &[], vec![])
            .await
            .status,
        204
    );

    // Delete Multiple: verbose lists each key; more than 1000 keys is MalformedXML.
    c.put("m1", b"1").await;
    c.put("m 2", b"2").await;
    let body = "<Delete><Quiet>false</Quiet><Object><Key>m1</Key></Object><Object><Key>m 2</Key></Object></Delete>";
    let r = c
        .send("POST", "", &[("delete", "")], &[], body.as_bytes().to_vec())
        .await;
    assert_eq!(r.elements("Key"), ["m1", "m 2"]);
    assert_eq!(c.get("m1").await.status, 404);
    let many: String = (0..1001)
        .map(|i| format!("<Object><Key>k{i}</Key></Object>"))
        .collect();
    let r = c
        .send(
            "POST",
            "",
            &[("delete", "")],
            &[],
            format!("<Delete>{many}</Delete>").into_bytes(),
        )
        .await;
    assert_eq!((r.status, r.code()), (400, "MalformedXML".to_string()));
}
