//! Fault injection and the access log: injected failures are what the flags say, and never
//! leave a half-written or changed object behind.

mod common;

use std::time::Duration;

use common::{admin_request, pattern, ServerProcess, BUCKET};

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
    // The operation name is the last field.
    let ops: Vec<&str> = fields.iter().map(|f| *f.last().expect("fields")).collect();
    assert_eq!(ops, ["PutObject", "GetObject", "GetBucket", "GetObject"]);
}

#[tokio::test]
async fn drop_answer_applies_the_put_but_sends_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &[]);
    let c = server.client();
    let line = server.set_faults("rate=1&kinds=drop-answer");
    assert!(line.contains("kinds=drop-answer"), "{line}");
    let data = pattern(300_000, 5);
    let put = c
        .try_send_full("PUT", BUCKET, "dropped", &[], &[], data.clone(), true)
        .await;
    assert!(put.is_err(), "a drop-answer PUT must get no answer");
    server.clear_faults();
    // The PUT was applied: a second request finds the object.
    let got = c.get("dropped").await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, data);
}

#[tokio::test]
async fn ops_filter_hits_only_the_named_operation_and_count_turns_itself_off() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("access.log");
    let log_arg = log.to_str().expect("utf-8 path").to_string();
    let server = ServerProcess::start(&dir.path().join("data"), &["--access-log", &log_arg]);
    let c = server.client();
    assert_eq!(c.put("k", b"one").await.status, 200);
    server.set_faults("rate=1&kinds=slowdown&ops=PutObject&count=2");
    // Not a PutObject: never faulted.
    assert_eq!(c.get("k").await.status, 200);
    assert_eq!(c.send("HEAD", "k", &[], &[], vec![]).await.status, 200);
    // The first two PUTs get the fault and change nothing ...
    for _ in 0..2 {
        let r = c.put("k", b"two").await;
        assert_eq!((r.status, r.code()), (503, "SlowDown".to_string()));
    }
    assert_eq!(c.get("k").await.body, b"one");
    // ... then injection is off by itself.
    let (status, setting) = admin_request(&server.addr, "GET", "/_cos-local/faults");
    assert_eq!(status, 200);
    assert!(setting.contains("count=0"), "{setting}");
    assert_eq!(c.put("k", b"three").await.status, 200);
    assert_eq!(c.get("k").await.body, b"three");

    let text = std::fs::read_to_string(&log).expect("access log");
    let faulted: Vec<&str> = text.lines().filter(|l| l.contains("fault=")).collect();
    assert_eq!(faulted.len(), 2, "{text}");
    assert!(faulted.iter().all(|l| l.ends_with(" PutObject")), "{text}");
    assert!(text
        .lines()
        .any(|l| l.contains("/_cos-local/faults") && l.ends_with(" Admin")));
}

#[tokio::test]
async fn stall_never_answers() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &[]);
    server.set_faults("rate=1&kinds=stall&ops=GetObject");
    let url = format!("http://{}/{BUCKET}/missing", server.addr);
    let client = common::http::Client::with_timeout(Duration::from_secs(1));
    let err = client
        .get(&url)
        .send()
        .await
        .expect_err("a stalled request never completes");
    assert!(err.is_timeout(), "{err}");
    // Other operations are still served, and clearing the faults ends the stall for new requests.
    assert_eq!(server.client().put("k", b"x").await.status, 200);
    server.clear_faults();
    assert_eq!(server.client().get("k").await.status, 200);
}

#[tokio::test]
async fn admin_requests_check_their_parameters() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &[]);
    for bad in [
        "rate=2&kinds=slowdown",
        "rate=1&kinds=explode",
        "rate=1&ops=NoSuchOp",
        "kinds=slowdown",
        "rate=1&count=-1",
        "rate=1&bogus=1",
    ] {
        let (status, body) =
            admin_request(&server.addr, "PUT", &format!("/_cos-local/faults?{bad}"));
        assert_eq!(status, 400, "{bad}: {body}");
        assert!(!body.trim().is_empty());
    }
    let (status, _) = admin_request(&server.addr, "GET", "/_cos-local/other");
    assert_eq!(status, 404);
    // Nothing was changed by the refused settings.
    assert_eq!(server.client().put("k", b"x").await.status, 200);
}
