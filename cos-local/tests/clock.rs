//! The server clock (`--clock-offset`) and COS's 15-minute skew rule.

mod common;

use std::time::{SystemTime, UNIX_EPOCH};

use common::ServerProcess;

fn unix(t: SystemTime) -> i64 {
    t.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64
}

fn header_time(r: &common::Resp, name: &str) -> i64 {
    let v = r.header(name).unwrap_or_else(|| panic!("{name} header"));
    unix(httpdate::parse_http_date(&v).expect("http date"))
}

#[tokio::test]
async fn a_client_clock_ahead_by_more_than_15_minutes_is_refused() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &[]);
    let mut c = server.client();
    // The signing window starts a minute before the client's now: 17 minutes ahead is 16.
    c.clock_offset = 17 * 60;
    let r = c.put("k", b"x").await;
    assert_eq!(
        (r.status, r.code()),
        (403, "RequestTimeTooSkewed".to_string()),
        "{}",
        r.text()
    );
    assert!(r.element("ServerTime").is_some());
    // Nothing was stored; a client within the limit is served.
    c.clock_offset = 10 * 60;
    assert_eq!(c.get("k").await.status, 404);
    assert_eq!(c.put("k", b"x").await.status, 200);
    // A Date header far off is refused too, in both directions.
    c.clock_offset = 0;
    let now = SystemTime::now();
    let hour = std::time::Duration::from_secs(3600);
    for t in [now - 2 * hour, now + hour] {
        let date = httpdate::fmt_http_date(t);
        let r = c.send("GET", "k", &[], &[("date", &date)], vec![]).await;
        assert_eq!(
            (r.status, r.code()),
            (403, "RequestTimeTooSkewed".to_string()),
            "Date {date}"
        );
    }
}

#[tokio::test]
async fn clock_offset_shifts_date_skew_and_last_modified() {
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &["--clock-offset", "7200"]);
    let before = unix(SystemTime::now());
    // A client with a correct clock is now 2 hours behind the server: its signature expired.
    let mut c = server.client();
    let r = c.put("k", b"x").await;
    assert_eq!(
        (r.status, r.code()),
        (403, "AccessDenied".to_string()),
        "{}",
        r.text()
    );
    let server_date = header_time(&r, "date");
    let after = unix(SystemTime::now());
    assert!(
        server_date >= before + 7200 - 1 && server_date <= after + 7200 + 1,
        "Date {server_date} is not the shifted clock ({before}..{after} + 7200)"
    );
    // A client that follows the server's clock is served, and Last-Modified is server time.
    c.clock_offset = 7200;
    assert_eq!(c.put("k", b"x").await.status, 200);
    let got = c.get("k").await;
    let modified = header_time(&got, "last-modified");
    assert!(modified >= before + 7200 - 1, "Last-Modified {modified}");

    // A negative offset: the server 1 hour behind, so a correct client is 1 hour ahead.
    drop(server);
    let dir = tempfile::tempdir().expect("temp dir");
    let server = ServerProcess::start(dir.path(), &["--clock-offset", "-3600"]);
    let r = server.client().put("k", b"x").await;
    assert_eq!(
        (r.status, r.code()),
        (403, "RequestTimeTooSkewed".to_string())
    );
}
