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
