//! Sub-resources cos-local does not implement (`?tagging`, `?versioning`, ...) are answered
//! 501 NotImplemented and never fall through to the plain operation: the object and the bucket
//! are unchanged afterwards. Parameters that are not sub-resources keep working.

mod common;

use common::{Client, Resp, ServerProcess, BUCKET};

const OBJECT: &str = "dir/object.txt";
const BODY: &[u8] = b"precious bytes";

fn assert_not_implemented(r: &Resp, what: &str) {
    assert_eq!(r.status, 501, "{what}: {}", r.text());
    if !what.starts_with("HEAD") {
        assert_eq!(r.code(), "NotImplemented", "{what}: {}", r.text());
        assert!(r.element("RequestId").is_some(), "{what}: {}", r.text());
    }
}

async fn assert_object_unchanged(c: &Client, what: &str) {
    let r = c.get(OBJECT).await;
    assert_eq!(r.status, 200, "{what}: object gone");
    assert_eq!(r.body, BODY, "{what}: object changed");
    assert_eq!(
        r.header("x-cos-meta-color").as_deref(),
        Some("blue"),
        "{what}"
    );
}

async fn seeded() -> (tempfile::TempDir, ServerProcess) {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &[]);
    let c = server.client();
    let r = c
        .send(
            "PUT",
            OBJECT,
            &[],
            &[("x-cos-meta-color", "blue")],
            BODY.to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    (dir, server)
}

#[tokio::test]
async fn object_sub_resources_never_touch_the_object() {
    let (_dir, server) = seeded().await;
    let c = server.client();
    let xml =
        b"<Tagging><TagSet><Tag><Key>a</Key><Value>b</Value></Tag></TagSet></Tagging>".to_vec();
    let cases: &[(&str, &str)] = &[
        ("PUT", "tagging"),
        ("GET", "tagging"),
        ("DELETE", "tagging"),
        ("PUT", "symlink"),
        ("GET", "symlink"),
        ("POST", "restore"),
        ("POST", "select"),
        ("POST", "append"),
        ("PUT", "retention"),
        ("PUT", "legal-hold"),
        ("HEAD", "tagging"),
        ("DELETE", "acl"),
        ("PUT", "Tagging"),
    ];
    for (method, sub) in cases {
        let what = format!("{method} /{OBJECT}?{sub}");
        let r = c.send(method, OBJECT, &[(sub, "")], &[], xml.clone()).await;
        assert_not_implemented(&r, &what);
        assert_object_unchanged(&c, &what).await;
    }
    // The symlink request of the issue: PUT with x-cos-symlink-target and no body.
    let r = c
        .send(
            "PUT",
            OBJECT,
            &[("symlink", "")],
            &[("x-cos-symlink-target", "other")],
            vec![],
        )
        .await;
    assert_not_implemented(&r, "PUT ?symlink with target");
    assert_object_unchanged(&c, "PUT ?symlink with target").await;
    // append with a position, as the Append Object API sends it.
    let r = c
        .send(
            "POST",
            OBJECT,
            &[("append", ""), ("position", "0")],
            &[],
            b"more".to_vec(),
        )
        .await;
    assert_not_implemented(&r, "POST ?append&position=0");
    assert_object_unchanged(&c, "POST ?append").await;
}

#[tokio::test]
async fn bucket_sub_resources_never_touch_the_bucket() {
    let (_dir, server) = seeded().await;
    let c = server.client();
    let empty = "empty-1250000000";
    assert_eq!(
        c.send_full("PUT", empty, "", &[], &[], vec![], true)
            .await
            .status,
        200
    );
    let subs = [
        "lifecycle",
        "policy",
        "website",
        "tagging",
        "domain",
        "inventory",
        "replication",
        "encryption",
        "origin",
        "logging",
        "referer",
        "intelligenttiering",
        "versioning",
        "accelerate",
        "notification",
        "object-lock",
    ];
    for sub in subs {
        for method in ["DELETE", "PUT", "GET"] {
            for bucket in [empty, BUCKET] {
                let what = format!("{method} /{bucket}/?{sub}");
                let r = c
                    .send_full(
                        method,
                        bucket,
                        "",
                        &[(sub, "")],
                        &[],
                        b"<X/>".to_vec(),
                        true,
                    )
                    .await;
                assert_not_implemented(&r, &what);
                let head = c
                    .send_full("HEAD", bucket, "", &[], &[], vec![], true)
                    .await;
                assert_eq!(head.status, 200, "{what}: bucket gone");
            }
        }
    }
    // GET ?versions is not a listing.
    let r = c.send("GET", "", &[("versions", "")], &[], vec![]).await;
    assert_not_implemented(&r, "GET /?versions");
    // PUT ?versioning is not PUT Bucket.
    let r = c.send("PUT", "", &[("versioning", "")], &[], vec![]).await;
    assert_not_implemented(&r, "PUT /?versioning");
    // An implemented sub-resource with the wrong method changes nothing either.
    let r = c.send("DELETE", "", &[("uploads", "")], &[], vec![]).await;
    assert_not_implemented(&r, "DELETE /?uploads");
    assert_object_unchanged(&c, "bucket-level requests").await;
    let list = c.send("GET", "", &[], &[], vec![]).await;
    assert_eq!(list.elements("Key"), [OBJECT]);
}

#[tokio::test]
async fn parameters_that_are_not_sub_resources_keep_working() {
    let (_dir, server) = seeded().await;
    let c = server.client();
    let r = c
        .send(
            "GET",
            OBJECT,
            &[("response-content-type", "text/x-test")],
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type").as_deref(), Some("text/x-test"));
    assert_eq!(r.body, BODY);
    let r = c
        .send("GET", OBJECT, &[("versionId", "null")], &[], vec![])
        .await;
    assert_eq!((r.status, r.body.as_slice()), (200, BODY));
    let r = c
        .send(
            "GET",
            "",
            &[("prefix", "dir/"), ("max-keys", "10")],
            &[],
            vec![],
        )
        .await;
    assert_eq!(r.elements("Key"), [OBJECT]);
    // Implemented sub-resources still work.
    let r = c.send("GET", OBJECT, &[("acl", "")], &[], vec![]).await;
    assert_eq!(r.status, 200);
    assert!(r.text().contains("AccessControlPolicy"));
    let r = c.send("GET", "", &[("location", "")], &[], vec![]).await;
    assert_eq!(r.status, 200);
    let r = c
        .send("POST", OBJECT, &[("uploads", "")], &[], vec![])
        .await;
    assert_eq!(r.status, 200);
    let upload_id = r.element("UploadId").expect("upload id");
    let r = c
        .send(
            "PUT",
            OBJECT,
            &[("partNumber", "1"), ("uploadId", &upload_id)],
            &[],
            b"p".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    let r = c
        .send("GET", OBJECT, &[("uploadId", &upload_id)], &[], vec![])
        .await;
    assert_eq!(r.elements("PartNumber"), ["1"]);
    let r = c
        .send("DELETE", OBJECT, &[("uploadId", &upload_id)], &[], vec![])
        .await;
    assert_eq!(r.status, 204);
    assert_object_unchanged(&c, "after the multipart calls").await;
}
