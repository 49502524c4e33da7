//! Everything written before a `kill -9` is served identically after a restart on the same
//! data dir: simple and multipart objects, their metadata, ACLs, CORS, and open uploads.

mod common;

use common::{md5_hex, pattern, ServerProcess};
use cos_protocol::crc64;

#[tokio::test]
async fn kill9_then_restart_serves_identical_bytes_and_metadata() {
    let dir = tempfile::tempdir().expect("temp dir");
    let small = pattern(5000, 4);
    let parts = [pattern(1 << 20, 5), pattern(777, 6)];
    let whole = parts.concat();
    let (multipart_etag, pending_upload);
    {
        let mut server = ServerProcess::start(dir.path(), &[]);
        let c = server.client();
        let r = c
            .send(
                "PUT",
                "docs/small.txt",
                &[],
                &[
                    ("Content-Type", "text/plain"),
                    ("x-cos-meta-mode", "33188"),
                    ("x-cos-acl", "public-read"),
                ],
                small.clone(),
            )
            .await;
        assert_eq!(r.status, 200);
        // Overwritten once: only the second version must survive.
        c.put("docs/over", b"first").await;
        c.put("docs/over", b"second").await;
        c.put("gone", b"x").await;
        c.send("DELETE", "gone", &[], &[], vec![]).await;

        let init = c
            .send(
                "POST",
                "big.bin",
                &[("uploads", "")],
                &[("x-cos-meta-k", "v")],
                vec![],
            )
            .await;
        let id = init.element("UploadId").expect("UploadId");
        let mut body = String::from("<CompleteMultipartUpload>");
        for (i, p) in parts.iter().enumerate() {
            let n = (i + 1).to_string();
            let r = c
                .send(
                    "PUT",
                    "big.bin",
                    &[("partNumber", &n), ("uploadId", &id)],
                    &[],
                    p.clone(),
                )
                .await;
            let etag = r.header("etag").expect("etag");
            body.push_str(&format!(
                "<Part><PartNumber>{n}</PartNumber><ETag>{etag}</ETag></Part>"
            ));
        }
        body.push_str("</CompleteMultipartUpload>");
        let r = c
            .send(
                "POST",
                "big.bin",
                &[("uploadId", &id)],
                &[],
                body.into_bytes(),
            )
            .await;
        assert_eq!(r.status, 200, "{}", r.text());
        multipart_etag = c.get("big.bin").await.header("etag").expect("etag");

        let init = c
            .send("POST", "pending", &[("uploads", "")], &[], vec![])
            .await;
        pending_upload = init.element("UploadId").expect("UploadId");
        c.send(
            "PUT",
            "pending",
            &[("partNumber", "1"), ("uploadId", &pending_upload)],
            &[],
            b"part".to_vec(),
        )
        .await;
        server.kill9();
    }

    let server = ServerProcess::start(dir.path(), &[]);
    let c = server.client();
    let r = c.get("docs/small.txt").await;
    assert_eq!(r.body, small);
    assert_eq!(r.header("etag"), Some(format!("\"{}\"", md5_hex(&small))));
    assert_eq!(r.header("content-type").as_deref(), Some("text/plain"));
    assert_eq!(r.header("x-cos-meta-mode").as_deref(), Some("33188"));
    assert_eq!(
        r.header("x-cos-hash-crc64ecma"),
        Some(crc64::checksum(&small).to_string())
    );
    let anon = c
        .send_full(
            "GET",
            common::BUCKET,
            "docs/small.txt",
            &[],
            &[],
            vec![],
            false,
        )
        .await;
    assert_eq!(anon.status, 200, "public-read ACL survives the restart");

    assert_eq!(c.get("docs/over").await.text(), "second");
    assert_eq!(c.get("gone").await.status, 404);

    let r = c.get("big.bin").await;
    assert_eq!(r.body, whole);
    assert_eq!(r.header("etag"), Some(multipart_etag));
    assert_eq!(r.header("x-cos-meta-k").as_deref(), Some("v"));
    assert_eq!(
        r.header("x-cos-hash-crc64ecma"),
        Some(crc64::checksum(&whole).to_string())
    );

    let list = c.send("GET", "", &[], &[], vec![]).await;
    assert_eq!(
        list.elements("Key"),
        ["big.bin", "docs/over", "docs/small.txt"]
    );
    let parts = c
        .send(
            "GET",
            "pending",
            &[("uploadId", &pending_upload)],
            &[],
            vec![],
        )
        .await;
    assert_eq!(parts.status, 200);
    assert_eq!(parts.elements("PartNumber"), ["1"]);

    // Nothing but live files remain on disk: one data file per object.
    let mut data_files = 0;
    for shard in std::fs::read_dir(
        dir.path()
            .join("buckets")
            .join(common::BUCKET)
            .join("objects"),
    )
    .expect("objects dir")
    {
        for f in std::fs::read_dir(shard.expect("shard").path()).expect("shard dir") {
            if f.expect("entry")
                .path()
                .extension()
                .is_some_and(|e| e == "data")
            {
                data_files += 1;
            }
        }
    }
    assert_eq!(data_files, 3);
}

#[tokio::test]
async fn sigterm_stops_cleanly_and_data_survives() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut server = ServerProcess::start(dir.path(), &[]);
    assert_eq!(server.client().put("k", b"kept").await.status, 200);
    let status = server.terminate();
    assert!(status.success(), "exit status {status:?}");
    let server = ServerProcess::start(dir.path(), &[]);
    assert_eq!(server.client().get("k").await.text(), "kept");
}
