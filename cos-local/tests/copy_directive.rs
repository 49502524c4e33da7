//! `x-cos-metadata-directive` in COS's spelling (Copy / Replaced) and S3's (COPY / REPLACE),
//! in any case: cosfs sends `REPLACE` for every rename, chmod, chown, utimens and setxattr.

mod common;

use common::{ServerProcess, BUCKET};

#[tokio::test]
async fn metadata_directive_in_both_spellings_and_any_case() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &[]);
    let c = server.client();
    let r = c
        .send(
            "PUT",
            "src",
            &[],
            &[("x-cos-meta-mode", "33188"), ("content-type", "text/plain")],
            b"body".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    let source = format!("{BUCKET}.cos.ap-guangzhou.myqcloud.com/src");

    for (i, directive) in ["Copy", "COPY", "copy", "CoPy"].iter().enumerate() {
        let dst = format!("copied-{i}");
        let r = c
            .send(
                "PUT",
                &dst,
                &[],
                &[
                    ("x-cos-copy-source", &source),
                    ("x-cos-metadata-directive", directive),
                    ("x-cos-meta-mode", "1"),
                ],
                vec![],
            )
            .await;
        assert_eq!(r.status, 200, "{directive}: {}", r.text());
        let got = c.get(&dst).await;
        assert_eq!(got.body, b"body");
        // Copy keeps the source's metadata (the request's is ignored).
        assert_eq!(
            got.header("x-cos-meta-mode").as_deref(),
            Some("33188"),
            "{directive}"
        );
    }

    for (i, directive) in ["Replaced", "REPLACE", "replace", "REPLACED", "replaced"]
        .iter()
        .enumerate()
    {
        // Onto itself, as cosfs does a chmod: only the metadata changes.
        let mode = format!("3318{i}");
        let r = c
            .send(
                "PUT",
                "src",
                &[],
                &[
                    ("x-cos-copy-source", &source),
                    ("x-cos-metadata-directive", directive),
                    ("x-cos-meta-mode", &mode),
                    ("content-type", "text/plain"),
                ],
                vec![],
            )
            .await;
        assert_eq!(r.status, 200, "{directive}: {}", r.text());
        let got = c.get("src").await;
        assert_eq!(got.body, b"body");
        assert_eq!(
            got.header("x-cos-meta-mode").as_deref(),
            Some(mode.as_str()),
            "{directive}"
        );
    }

    // A rename as cosfs does it: copy with REPLACE to the new name, then delete the old one.
    let r = c
        .send(
            "PUT",
            "renamed",
            &[],
            &[
                ("x-cos-copy-source", &source),
                ("x-cos-metadata-directive", "REPLACE"),
                ("x-cos-meta-mode", "33261"),
            ],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(c.send("DELETE", "src", &[], &[], vec![]).await.status, 204);
    let got = c.get("renamed").await;
    assert_eq!((got.status, got.body.as_slice()), (200, b"body".as_slice()));
    assert_eq!(got.header("x-cos-meta-mode").as_deref(), Some("33261"));

    // Anything else is still refused, and copying onto itself with COPY still needs REPLACE.
    let renamed = format!("{BUCKET}.cos.ap-guangzhou.myqcloud.com/renamed");
    for (directive, code) in [("MOVE", "InvalidArgument"), ("COPY", "InvalidRequest")] {
        let r = c
            .send(
                "PUT",
                "renamed",
                &[],
                &[
                    ("x-cos-copy-source", &renamed),
                    ("x-cos-metadata-directive", directive),
                ],
                vec![],
            )
            .await;
        assert_eq!((r.status, r.code()), (400, code.to_string()), "{directive}");
    }
}

/// COS does not carry the ACL over on PUT Copy (either directive): the copy is `default`
/// unless the request sends `x-cos-acl` / `x-cos-grant-*`, which it accepts with both.
#[tokio::test]
async fn copy_takes_the_acl_from_the_request_with_either_directive() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &[]);
    let c = server.client();
    let r = c
        .send(
            "PUT",
            "src",
            &[],
            &[("x-cos-acl", "public-read"), ("content-type", "text/plain")],
            b"body".to_vec(),
        )
        .await;
    assert_eq!(r.status, 200);
    let source = format!("{BUCKET}.cos.ap-guangzhou.myqcloud.com/src");
    let acl_of = |key: &'static str| {
        let c = &c;
        async move {
            let r = c.send("GET", key, &[("acl", "")], &[], vec![]).await;
            assert_eq!(r.status, 200, "{}", r.text());
            (r.header("x-cos-acl"), r.text())
        }
    };
    let reader = "id=\"qcs::cam::uin/2:uin/2\"";
    /// Destination, directive, extra headers.
    type Case<'a> = (&'a str, &'a str, &'a [(&'a str, &'a str)]);
    let cases: [Case; 5] = [
        ("plain-copy", "Copy", &[]),
        ("acl-copy", "Copy", &[("x-cos-acl", "public-read")]),
        ("grant-copy", "Copy", &[("x-cos-grant-read", reader)]),
        ("acl-replaced", "Replaced", &[("x-cos-acl", "private")]),
        ("src", "Replaced", &[("x-cos-acl", "public-read")]),
    ];
    for (dst, directive, extra) in cases {
        let mut headers = vec![
            ("x-cos-copy-source", source.as_str()),
            ("x-cos-metadata-directive", directive),
        ];
        headers.extend_from_slice(extra);
        let r = c.send("PUT", dst, &[], &headers, vec![]).await;
        assert_eq!(r.status, 200, "{dst}: {}", r.text());
    }
    assert_eq!(acl_of("plain-copy").await.0.as_deref(), Some("default"));
    let (canned, body) = acl_of("acl-copy").await;
    assert_eq!(canned.as_deref(), Some("public-read"));
    assert!(body.contains("AllUsers"), "{body}");
    let (_, body) = acl_of("grant-copy").await;
    assert!(
        body.contains("qcs::cam::uin/2:uin/2") && !body.contains("AllUsers"),
        "{body}"
    );
    assert_eq!(acl_of("acl-replaced").await.0.as_deref(), Some("private"));
    assert_eq!(acl_of("src").await.0.as_deref(), Some("public-read"));
    // A copy onto itself without the ACL resets it, as on COS.
    let r = c
        .send(
            "PUT",
            "src",
            &[],
            &[
                ("x-cos-copy-source", source.as_str()),
                ("x-cos-metadata-directive", "Replaced"),
            ],
            vec![],
        )
        .await;
    assert_eq!(r.status, 200);
    assert_eq!(acl_of("src").await.0.as_deref(), Some("default"));
}
