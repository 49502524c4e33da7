//! Real round trips of the client against cos-local (the COS-compatible server of this
//! workspace): what goes up comes back byte for byte, with the metadata, listings and errors
//! COS would give; and injected faults are ridden out by the client's retries.

mod common_client;

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use common_client::cos_local::CosLocal;
use common_client::{BUCKET, SECRET_ID};
use cosmount::cos::acl::AclUpdate;
use cosmount::cos::cors::{CorsConfiguration, CorsRule};
use cosmount::cos::multipart::{ListPartsParams, ListUploadsParams};
use cosmount::cos::object::GetObjectOptions;
use cosmount::cos::retry::RetryPolicy;
use cosmount::cos::store::{
    CompletedPart, ContentHeaders, CopyParams, ListParams, MetadataDirective, PutOptions,
};
use cosmount::cos::{Client, ClientConfig, Credentials, ObjectStore, PutBody};
use md5::Digest;

const MIB: usize = 1 << 20;

fn client_for(server: &CosLocal, secret_key: &str) -> Client {
    let mut cfg = ClientConfig::new(BUCKET, "", Credentials::new(SECRET_ID, secret_key))
        .with_endpoint(server.endpoint.clone());
    cfg.retry = RetryPolicy {
        max_attempts: 10,
        base_delay: Duration::from_millis(1),
        max_delay: Duration::from_millis(20),
        budget: Duration::ZERO,
    };
    Client::new(cfg).expect("client")
}

fn client(server: &CosLocal) -> Client {
    client_for(server, common_client::SECRET_KEY)
}

/// Content that depends on the position and a seed, so a shifted or mixed read fails.
fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u64 * 31 + seed as u64 * 7 + (i as u64 >> 12)) % 251) as u8)
        .collect()
}

fn md5_hex(data: &[u8]) -> String {
    hex::encode(md5::Md5::digest(data))
}

#[tokio::test]
async fn object_round_trip() {
    let server = CosLocal::start(&[]);
    let c = client(&server);
    let info = ObjectStore::head_bucket(&c).await.unwrap();
    assert_eq!(info.region.as_deref(), Some("ap-guangzhou"));
    assert_eq!(c.get_bucket_location().await.unwrap(), "ap-guangzhou");

    let data = pattern(300_000, 1);
    let mut meta = BTreeMap::new();
    meta.insert("mode".to_string(), "33188".to_string());
    meta.insert("note".to_string(), "a/b c+d".to_string());
    let opts = PutOptions {
        content: ContentHeaders {
            content_type: Some("text/plain".into()),
            cache_control: Some("max-age=60".into()),
            ..Default::default()
        },
        meta,
        content_md5: Some(cosmount::cos::client::content_md5(&data)),
        ..Default::default()
    };
    let key = "dir/中文 a+b%c#d?e&f=g.txt";
    let put = ObjectStore::put_object(&c, key, Bytes::from(data.clone()), &opts)
        .await
        .unwrap();
    assert_eq!(put.etag, md5_hex(&data));
    assert_eq!(put.crc64, Some(cosmount::cos::crc64::checksum(&data)));

    let head = ObjectStore::head_object(&c, key).await.unwrap();
    assert_eq!(head.size, data.len() as u64);
    assert_eq!(head.etag, put.etag);
    assert_eq!(head.crc64, put.crc64);
    assert_eq!(head.storage_class, "STANDARD");
    assert_eq!(head.content.content_type.as_deref(), Some("text/plain"));
    assert_eq!(head.content.cache_control.as_deref(), Some("max-age=60"));
    assert_eq!(head.meta.get("mode").map(String::as_str), Some("33188"));
    assert_eq!(head.meta.get("note").map(String::as_str), Some("a/b c+d"));

    let range = ObjectStore::get_range(&c, key, 1000, 5000, Some(&put.etag))
        .await
        .unwrap();
    assert_eq!(&range.data[..], &data[1000..6000]);
    assert_eq!(range.object_size, data.len() as u64);
    let tail = ObjectStore::get_range(&c, key, 299_990, 100, None)
        .await
        .unwrap();
    assert_eq!(&tail.data[..], &data[299_990..]);
    let stale = ObjectStore::get_range(&c, key, 0, 10, Some("0123456789abcdef0123456789abcdef"))
        .await
        .unwrap_err();
    assert_eq!(stale.code(), Some("PreconditionFailed"));
    let past_end = ObjectStore::get_range(&c, key, 300_000, 10, None)
        .await
        .unwrap_err();
    assert_eq!(past_end.code(), Some("InvalidRange"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("copy");
    c.download_to_file(key, &GetObjectOptions::default(), &file)
        .await
        .unwrap();
    assert_eq!(std::fs::read(&file).unwrap(), data);

    // A body from a file region.
    let spool = dir.path().join("spool");
    let big = pattern(2 * MIB + 17, 2);
    std::fs::write(&spool, &big).unwrap();
    let region = PutBody::File {
        path: spool.clone(),
        offset: 17,
        len: 2 * MIB as u64,
    };
    c.put_object("from-file.bin", region, &PutOptions::default())
        .await
        .unwrap();
    let back = ObjectStore::get_range(&c, "from-file.bin", 0, 4 * MIB as u64, None)
        .await
        .unwrap();
    assert_eq!(back.data.len(), 2 * MIB);
    assert!(
        back.data[..] == big[17..],
        "file-region body must round-trip"
    );

    // Copy keeps content; the storage class is what the request says.
    let copy = CopyParams {
        source_key: key.into(),
        directive: MetadataDirective::Copy,
        storage_class: Some("STANDARD_IA".into()),
        acl: None,
        source_if_match: Some(put.etag.clone()),
    };
    let copied = ObjectStore::copy_object(&c, "copy/了.txt", &copy)
        .await
        .unwrap();
    assert_eq!(copied.etag, put.etag);
    let h = ObjectStore::head_object(&c, "copy/了.txt").await.unwrap();
    assert_eq!(h.storage_class, "STANDARD_IA");
    assert_eq!(h.meta.get("mode").map(String::as_str), Some("33188"));

    // Metadata-only update: copy onto itself with Replaced.
    let mut meta = BTreeMap::new();
    meta.insert("mode".to_string(), "33261".to_string());
    let replace = CopyParams {
        source_key: "copy/了.txt".into(),
        directive: MetadataDirective::Replaced(PutOptions {
            content: ContentHeaders {
                content_type: Some("application/x-sh".into()),
                ..Default::default()
            },
            meta,
            ..Default::default()
        }),
        storage_class: Some("STANDARD_IA".into()),
        acl: None,
        source_if_match: None,
    };
    ObjectStore::copy_object(&c, "copy/了.txt", &replace)
        .await
        .unwrap();
    let h = ObjectStore::head_object(&c, "copy/了.txt").await.unwrap();
    assert_eq!(h.meta.get("mode").map(String::as_str), Some("33261"));
    assert_eq!(h.meta.get("note"), None);
    assert_eq!(h.content.content_type.as_deref(), Some("application/x-sh"));
    assert_eq!(h.storage_class, "STANDARD_IA");
    let whole = ObjectStore::get_range(&c, "copy/了.txt", 0, 1 << 20, None)
        .await
        .unwrap();
    assert_eq!(&whole.data[..], &data[..]);

    // Delete, then it is gone (and deleting again is fine).
    ObjectStore::delete_object(&c, key).await.unwrap();
    ObjectStore::delete_object(&c, key).await.unwrap();
    let gone = ObjectStore::head_object(&c, key).await.unwrap_err();
    assert_eq!(gone.code(), Some("NoSuchKey"));
    let gone = ObjectStore::get_range(&c, key, 0, 1, None)
        .await
        .unwrap_err();
    assert_eq!(gone.code(), Some("NoSuchKey"));
    assert!(gone.request_id().is_some());

    // Presigned GET works without any header.
    let url = c
        .presigned_url(
            &reqwest::Method::GET,
            Some("copy/了.txt"),
            &[],
            Duration::from_secs(300),
        )
        .unwrap();
    // reqwest is built without a TLS provider: cosmount installs ring.
    cosmount::cos::client::install_crypto_provider();
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(&resp.bytes().await.unwrap()[..], &data[..]);
}

#[tokio::test]
async fn listing_round_trip_with_awkward_keys() {
    let server = CosLocal::start(&[]);
    let c = client(&server);
    let keys = [
        "a/",
        "a/ space.txt",
        "a/中文.txt",
        "a/p+q.txt",
        "a/pct%41.txt",
        "a/q?#&=.txt",
        "a/sub/deep.txt",
        "a/sub2/x",
        "b.txt",
    ];
    for k in keys {
        ObjectStore::put_object(
            &c,
            k,
            Bytes::from(k.as_bytes().to_vec()),
            &PutOptions::default(),
        )
        .await
        .unwrap();
    }
    // One page of 3 at a time, following NextMarker.
    let mut params = ListParams {
        prefix: "a/".into(),
        delimiter: Some("/".into()),
        marker: None,
        max_keys: Some(3),
    };
    let (mut objects, mut prefixes, mut pages) = (Vec::new(), Vec::new(), 0);
    loop {
        let page = ObjectStore::list_objects(&c, &params).await.unwrap();
        pages += 1;
        objects.extend(page.objects.iter().map(|o| (o.key.clone(), o.size)));
        prefixes.extend(page.common_prefixes.clone());
        if !page.is_truncated {
            break;
        }
        params.marker = page.next_marker.clone();
        assert!(params.marker.is_some());
    }
    assert_eq!(pages, 3);
    let names: Vec<&str> = objects.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        [
            "a/",
            "a/ space.txt",
            "a/p+q.txt",
            "a/pct%41.txt",
            "a/q?#&=.txt",
            "a/中文.txt"
        ]
    );
    assert!(objects.iter().all(|(k, size)| *size == k.len() as u64));
    assert_eq!(prefixes, ["a/sub/", "a/sub2/"]);

    let (all, _) = c.list_all("", None).await.unwrap();
    assert_eq!(all.len(), keys.len());

    let result = c.delete_objects(&keys, false).await.unwrap();
    assert_eq!(result.deleted.len(), keys.len());
    assert!(result.errors.is_empty());
    let empty = ObjectStore::list_objects(&c, &ListParams::default())
        .await
        .unwrap();
    assert!(empty.objects.is_empty());
}

#[tokio::test]
async fn multipart_round_trip() {
    let server = CosLocal::start(&[]);
    let c = client(&server);
    let part1 = pattern(MIB, 3);
    let part2 = pattern(MIB, 4);
    let part3 = pattern(12345, 5);
    let opts = PutOptions {
        storage_class: Some("STANDARD_IA".into()),
        ..Default::default()
    };
    let key = "big/multi part.bin";
    let upload = ObjectStore::initiate_multipart(&c, key, &opts)
        .await
        .unwrap();
    let uploads = c
        .list_multipart_uploads(&ListUploadsParams::default())
        .await
        .unwrap();
    assert!(uploads
        .uploads
        .iter()
        .any(|u| u.key == key && u.upload_id == upload));

    let mut parts = Vec::new();
    for (n, body) in [(1u32, &part1), (2, &part2), (3, &part3)] {
        let r = ObjectStore::upload_part(&c, key, &upload, n, Bytes::from(body.clone()))
            .await
            .unwrap();
        assert_eq!(r.etag, md5_hex(body));
        parts.push(CompletedPart {
            part_number: n,
            etag: r.etag,
        });
    }
    let listed = c
        .list_parts(
            key,
            &upload,
            &ListPartsParams {
                max_parts: Some(2),
                part_number_marker: None,
            },
        )
        .await
        .unwrap();
    assert!(listed.is_truncated);
    assert_eq!(listed.parts.len(), 2);
    let rest = c
        .list_parts(
            key,
            &upload,
            &ListPartsParams {
                max_parts: Some(2),
                part_number_marker: listed.next_part_number_marker,
            },
        )
        .await
        .unwrap();
    assert_eq!(rest.parts.len(), 1);
    assert_eq!(rest.parts[0].part_number, 3);
    assert_eq!(rest.parts[0].size, 12345);

    let done = ObjectStore::complete_multipart(&c, key, &upload, &parts)
        .await
        .unwrap();
    assert!(done.etag.ends_with("-3"), "{}", done.etag);
    let mut whole = part1.clone();
    whole.extend_from_slice(&part2);
    whole.extend_from_slice(&part3);
    if let Some(crc) = done.crc64 {
        assert_eq!(crc, cosmount::cos::crc64::checksum(&whole));
    }
    let head = ObjectStore::head_object(&c, key).await.unwrap();
    assert_eq!(head.size, whole.len() as u64);
    assert_eq!(head.storage_class, "STANDARD_IA");
    let back = ObjectStore::get_range(&c, key, 0, whole.len() as u64, Some(&done.etag))
        .await
        .unwrap();
    assert!(back.data[..] == whole[..]);

    // Upload Part Copy: a new object from ranges of the old one.
    let upload2 = ObjectStore::initiate_multipart(&c, "copied.bin", &PutOptions::default())
        .await
        .unwrap();
    let p1 = ObjectStore::upload_part_copy(
        &c,
        "copied.bin",
        &upload2,
        1,
        key,
        Some((MIB as u64, 2 * MIB as u64 - 1)),
    )
    .await
    .unwrap();
    let p2 = ObjectStore::upload_part_copy(&c, "copied.bin", &upload2, 2, key, Some((0, 99)))
        .await
        .unwrap();
    let parts2 = [
        CompletedPart {
            part_number: 1,
            etag: p1.etag,
        },
        CompletedPart {
            part_number: 2,
            etag: p2.etag,
        },
    ];
    ObjectStore::complete_multipart(&c, "copied.bin", &upload2, &parts2)
        .await
        .unwrap();
    let copied = ObjectStore::get_range(&c, "copied.bin", 0, 4 * MIB as u64, None)
        .await
        .unwrap();
    let mut expected = part2.clone();
    expected.extend_from_slice(&part1[..100]);
    assert!(copied.data[..] == expected[..]);

    // Errors COS gives: a small non-last part, an unknown upload.
    let upload3 = ObjectStore::initiate_multipart(&c, "small.bin", &PutOptions::default())
        .await
        .unwrap();
    let a = ObjectStore::upload_part(&c, "small.bin", &upload3, 1, Bytes::from_static(b"tiny"))
        .await
        .unwrap();
    let b = ObjectStore::upload_part(&c, "small.bin", &upload3, 2, Bytes::from_static(b"tail"))
        .await
        .unwrap();
    let small = [
        CompletedPart {
            part_number: 1,
            etag: a.etag,
        },
        CompletedPart {
            part_number: 2,
            etag: b.etag,
        },
    ];
    let err = ObjectStore::complete_multipart(&c, "small.bin", &upload3, &small)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("EntityTooSmall"));
    ObjectStore::abort_multipart(&c, "small.bin", &upload3)
        .await
        .unwrap();
    let err = ObjectStore::complete_multipart(&c, "small.bin", &upload3, &small)
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchUpload"));
    let none = c
        .list_multipart_uploads(&ListUploadsParams::default())
        .await
        .unwrap();
    assert!(none.uploads.is_empty(), "{none:?}");
}

#[tokio::test]
async fn acl_and_cors_round_trip() {
    let server = CosLocal::start(&[]);
    let c = client(&server);
    ObjectStore::put_object(
        &c,
        "page.html",
        Bytes::from_static(b"<html/>"),
        &PutOptions::default(),
    )
    .await
    .unwrap();
    c.put_object_acl("page.html", &AclUpdate::canned("public-read"))
        .await
        .unwrap();
    let acl = c.get_object_acl("page.html").await.unwrap();
    assert!(
        acl.grants.iter().any(|g| g.permission == "READ"
            && matches!(&g.grantee, cosmount::cos::acl::Grantee::Group { uri } if uri.ends_with("AllUsers"))),
        "{acl:?}"
    );
    // Public-read: an unsigned GET works.
    let url = format!("{}/{BUCKET}/page.html", server.endpoint);
    // reqwest is built without a TLS provider: cosmount installs ring.
    cosmount::cos::client::install_crypto_provider();
    let resp = reqwest::get(&url).await.unwrap();
    assert_eq!(resp.status(), 200);
    c.put_bucket_acl(&AclUpdate::canned("private"))
        .await
        .unwrap();
    c.get_bucket_acl().await.unwrap();

    let err = c.get_bucket_cors().await.unwrap_err();
    assert_eq!(err.code(), Some("NoSuchCORSConfiguration"));
    let config = CorsConfiguration {
        rules: vec![CorsRule {
            id: Some("web".into()),
            allowed_origins: vec!["https://www.example.com".into()],
            allowed_methods: vec!["GET".into(), "PUT".into()],
            allowed_headers: vec!["*".into()],
            expose_headers: vec!["ETag".into()],
            max_age_seconds: Some(600),
        }],
    };
    c.put_bucket_cors(&config).await.unwrap();
    assert_eq!(c.get_bucket_cors().await.unwrap(), config);
    let ok = c
        .options_object(
            "page.html",
            "https://www.example.com",
            "PUT",
            &["content-type"],
        )
        .await
        .unwrap();
    assert_eq!(ok.allow_origin.as_deref(), Some("https://www.example.com"));
    let denied = c
        .options_object("page.html", "https://evil.example", "GET", &[])
        .await
        .unwrap_err();
    assert_eq!(denied.status(), Some(403));
    c.delete_bucket_cors().await.unwrap();
    assert!(c.get_bucket_cors().await.is_err());
}

#[tokio::test]
async fn wrong_secret_and_missing_bucket_are_reported() {
    let server = CosLocal::start(&[]);
    let wrong = client_for(&server, "not-the-secret");
    let err = ObjectStore::list_objects(&wrong, &ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("SignatureDoesNotMatch"));
    assert_eq!(err.status(), Some(403));
    let err = ObjectStore::head_bucket(&wrong).await.unwrap_err();
    assert_eq!(
        err.code(),
        Some("AccessDenied"),
        "HEAD has no body: code from the status"
    );

    let mut cfg = ClientConfig::new(
        "nosuchbucket-1250000000",
        "",
        Credentials::new(SECRET_ID, common_client::SECRET_KEY),
    )
    .with_endpoint(server.endpoint.clone());
    cfg.retry.base_delay = Duration::from_millis(1);
    let missing = Client::new(cfg).unwrap();
    let err = ObjectStore::head_bucket(&missing).await.unwrap_err();
    assert_eq!(err.code(), Some("NoSuchBucket"));
    let err = ObjectStore::list_objects(&missing, &ListParams::default())
        .await
        .unwrap_err();
    assert_eq!(err.code(), Some("NoSuchBucket"));
}

#[tokio::test]
async fn injected_faults_are_ridden_out_by_retries() {
    // A fifth of requests get 503 SlowDown or a dropped connection (GET bodies cut half-way).
    let log_dir = tempfile::tempdir().unwrap();
    let log = log_dir.path().join("access.log");
    let log_arg = log.to_str().unwrap();
    let server = CosLocal::start(&[
        "--fault-rate",
        "0.2",
        "--fault-kinds",
        "slowdown,reset",
        "--access-log",
        log_arg,
    ]);
    let c = client(&server);
    let mut expected = BTreeMap::new();
    for i in 0..20u8 {
        let key = format!("f/{i:02}");
        let data = pattern(50_000 + i as usize * 1000, i);
        ObjectStore::put_object(&c, &key, Bytes::from(data.clone()), &PutOptions::default())
            .await
            .unwrap();
        expected.insert(key, data);
    }
    let (listed, _) = c.list_all("f/", None).await.unwrap();
    assert_eq!(listed.len(), 20);
    for (key, data) in &expected {
        let got = ObjectStore::get_range(&c, key, 0, data.len() as u64, None)
            .await
            .unwrap();
        assert!(got.data[..] == data[..], "{key} must come back intact");
    }
    let upload = ObjectStore::initiate_multipart(&c, "f/multi", &PutOptions::default())
        .await
        .unwrap();
    let a = pattern(MIB, 9);
    let b = pattern(1000, 10);
    let pa = ObjectStore::upload_part(&c, "f/multi", &upload, 1, Bytes::from(a.clone()))
        .await
        .unwrap();
    let pb = ObjectStore::upload_part(&c, "f/multi", &upload, 2, Bytes::from(b.clone()))
        .await
        .unwrap();
    let parts = [
        CompletedPart {
            part_number: 1,
            etag: pa.etag,
        },
        CompletedPart {
            part_number: 2,
            etag: pb.etag,
        },
    ];
    ObjectStore::complete_multipart(&c, "f/multi", &upload, &parts)
        .await
        .unwrap();
    let got = ObjectStore::get_range(&c, "f/multi", 0, 2 * MIB as u64, None)
        .await
        .unwrap();
    assert_eq!(got.data.len(), a.len() + b.len());
    assert!(got.data[..a.len()] == a[..] && got.data[a.len()..] == b[..]);
    // The faults really happened (and were retried), not just configured.
    let text = std::fs::read_to_string(&log).unwrap();
    let faults = text
        .lines()
        .filter(|l| l.contains("reset") || l.contains("slowdown"))
        .count();
    assert!(faults > 0, "no fault was injected:\n{text}");
}

/// Figures for the record, not a test of speed (no assertion on time). Run with
/// `cargo test --test client_cos_local -- --ignored --nocapture throughput`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore]
async fn throughput_figures() {
    use std::time::Instant;
    const SIZE: usize = 256 * MIB;
    let server = CosLocal::start(&[]);
    let c = client(&server);
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("src");
    let data = pattern(SIZE, 7);
    std::fs::write(&src, &data).unwrap();
    let mb = SIZE as f64 / MIB as f64;

    let t = Instant::now();
    let body = PutBody::File {
        path: src.clone(),
        offset: 0,
        len: SIZE as u64,
    };
    c.put_object("big", body, &PutOptions::default())
        .await
        .unwrap();
    println!(
        "PUT from file      {:8.1} MiB/s",
        mb / t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let dst = dir.path().join("dst");
    c.download_to_file("big", &GetObjectOptions::default(), &dst)
        .await
        .unwrap();
    println!(
        "GET to file (+CRC) {:8.1} MiB/s",
        mb / t.elapsed().as_secs_f64()
    );

    let t = Instant::now();
    let chunk = 8 * MIB as u64;
    let mut tasks = Vec::new();
    for i in 0..(SIZE as u64 / chunk) {
        let c = c.clone();
        tasks.push(tokio::spawn(async move {
            ObjectStore::get_range(&c, "big", i * chunk, chunk, None)
                .await
                .map(|r| r.data.len())
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.unwrap().unwrap();
    }
    assert_eq!(total, SIZE);
    println!(
        "32 x 8 MiB ranged GETs, all in flight {:8.1} MiB/s",
        mb / t.elapsed().as_secs_f64()
    );
    assert!(std::fs::read(&dst).unwrap() == data);
}
