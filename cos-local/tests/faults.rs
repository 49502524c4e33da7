//! Fault injection and the access log: injected failures are what the flags say, and never
//! leave a half-written or changed object behind.

mod common;

use common::{pattern, ServerProcess, BUCKET};

#[tokio::test]
async fn slowdown_faults_answer_503_and_store_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    {
        let server = ServerProcess::start(
            dir.path(),
            &["--fault-rate", "1", "--fault-kinds", "slowdown"],
        );
        let c = server.client();
        let r = c.put("k", b"data").await;
        assert_eq!((r.status, r.code()), (503, "SlowDown".to_string()));
        assert!(r.header("x-cos-request-id").is_some());
    }
    let server = ServerProcess::start(dir.path(), &[]);
    assert_eq!(server.client().get("k").await.status, 404);
}

#[tokio::test]
async fn reset_faults_drop_the_connection_and_never_corrupt_data() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = pattern(1 << 20, 3);
    {
        let server = ServerProcess::start(dir.path(), &[]);
        assert_eq!(server.client().put("k", &data).await.status, 200);
    }
    let server = ServerProcess::start(dir.path(), &["--fault-rate", "1", "--fault-kinds", "reset"]);
    let c = server.client();
    // A PUT is cut off before any response and changes nothing.
    let put = c
        .try_send_full("PUT", BUCKET, "k", &[], &[], b"other".to_vec(), true)
        .await;
    assert!(put.is_err(), "a reset PUT must fail on the client");
    // A GET sends headers, then only part of the body.
    let get = c
        .try_send_full("GET", BUCKET, "k", &[], &[], vec![], true)
        .await;
    assert!(get.is_err(), "a reset GET must not deliver a complete body");
    drop(server);

    let server = ServerProcess::start(dir.path(), &[]);
    assert_eq!(server.client().get("k").await.body, data);
}

#[tokio::test]
async fn latency_faults_still_serve_and_access_log_counts_requests() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let log_arg = log.to_str().expect("utf-8 path").to_string();
    let data_dir = dir.path().join("data");
    let server = ServerProcess::start(
        &data_dir,
        &[
            "--fault-rate",
            "1",
            "--fault-kinds",
            "latency",
            "--latency-ms",
            "1",
            "--access-log",
            &log_arg,
        ],
    );
    let c = server.client();
    assert_eq!(c.put("dir/a b", b"12345").await.status, 200);
    assert_eq!(c.get("dir/a b").await.body, b"12345");
    assert_eq!(
        c.send("GET", "", &[("prefix", "dir/")], &[], vec![])
            .await
            .status,
        200
    );
    assert_eq!(c.get("missing").await.status, 404);

    let text = std::fs::read_to_string(&log).expect("access log");
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    let fields: Vec<Vec<&str>> = lines.iter().map(|l| l.split(' ').collect()).collect();
    assert!(fields[0][0].ends_with('Z') && fields[0][0].contains('T'));
    assert_eq!(
        &fields[0][1..6],
        [
            "PUT",
            &format!("/{BUCKET}/dir/a%20b"),
            "200",
            "in=5",
            "out=0"
        ]
    );
    assert_eq!(
        &fields[1][1..6],
        [
            "GET",
            &format!("/{BUCKET}/dir/a%20b"),
            "200",
            "in=0",
            "out=5"
        ]
    );
    assert_eq!(
        &fields[2][1..3],
        ["GET", &format!("/{BUCKET}/?prefix=dir%2F")]
    );
    assert_eq!(&fields[3][2..4], [&format!("/{BUCKET}/missing"), "404"]);
    assert!(fields
        .iter()
        .all(|f| f[6].starts_with("ms=") && f[7] == "fault=latency"));
}
