//! `-o metrics_addr=`: the Prometheus endpoint of a live mount counts what reading files costs,
//! and the unmount logs a summary.

mod common;

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use common::{pattern, TestEnv};

/// A port nobody listens on right now.
fn free_addr() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
}

/// Scrape `/metrics`: series (name with labels) -> value.
fn scrape(addr: SocketAddr) -> BTreeMap<String, f64> {
    let mut s = TcpStream::connect(addr).expect("connect to the metrics endpoint");
    s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.0 200"), "{head}");
    body.lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            Some((series.to_string(), value.parse().ok()?))
        })
        .collect()
}

fn get(m: &BTreeMap<String, f64>, series: &str) -> f64 {
    m.get(series).copied().unwrap_or(0.0)
}

/// Sum of a counter over all its label sets whose labels contain `label`.
fn sum(m: &BTreeMap<String, f64>, name: &str, label: &str) -> f64 {
    m.iter()
        .filter(|(k, _)| k.starts_with(&format!("{name}{{")) && k.contains(label))
        .map(|(_, v)| v)
        .sum()
}

#[test]
fn counters_move_as_files_are_read_and_unmount_logs_a_summary() {
    const LEN: usize = 3 << 20;
    let mut env = TestEnv::start();
    let data = pattern(LEN, 11);
    env.put("dir/data.bin", data.clone());
    env.put("dir/small.txt", "small");
    let addr = free_addr();
    let log = env.mnt.parent().unwrap().join("cosmount.log");
    let opts = format!("metrics_addr={addr},log_file={}", log.display());
    let out = env.mount_background(&["-o", &opts]);
    assert!(
        out.status.success(),
        "mount failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );

    let before = scrape(addr);
    // The bucket check at mount time is already counted.
    assert!(
        get(
            &before,
            "cosmount_cos_requests_total{api=\"HeadBucket\",status=\"200\"}"
        ) >= 1.0,
        "{before:?}"
    );
    let got = std::fs::read(env.path("dir/data.bin")).unwrap();
    assert!(got == data, "content differs");
    // A listing, then a lookup answered from it (a name the kernel has not seen).
    let names: Vec<_> = std::fs::read_dir(env.path("dir"))
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(std::fs::metadata(env.path("dir/missing.txt")).is_err());

    let after = scrape(addr);
    let delta = |series: &str| get(&after, series) - get(&before, series);
    assert!(
        sum(&after, "cosmount_cos_requests_total", "api=\"GetObject\"")
            > sum(&before, "cosmount_cos_requests_total", "api=\"GetObject\""),
        "no GetObject counted: {after:?}"
    );
    assert!(
        sum(&after, "cosmount_cos_requests_total", "api=\"GetBucket\"")
            > sum(&before, "cosmount_cos_requests_total", "api=\"GetBucket\""),
        "no GetBucket (ListObjects) counted"
    );
    assert!(
        delta("cosmount_cos_bytes_downloaded_total") >= LEN as f64,
        "downloaded {} bytes for a {LEN}-byte file",
        delta("cosmount_cos_bytes_downloaded_total")
    );
    assert!(delta("cosmount_block_cache_misses_total") >= 1.0);
    assert!(delta("cosmount_metadata_cache_hits_total") >= 1.0);
    assert_eq!(get(&after, "cosmount_uploads_in_flight"), 0.0);

    // Writing counts the upload.
    std::fs::write(env.path("dir/written.bin"), pattern(100_000, 2)).unwrap();
    let written = scrape(addr);
    assert!(
        get(&written, "cosmount_cos_bytes_uploaded_total")
            - get(&after, "cosmount_cos_bytes_uploaded_total")
            >= 100_000.0
    );
    assert!(
        sum(&written, "cosmount_cos_requests_total", "api=\"PutObject\"") >= 1.0,
        "{written:?}"
    );
    // close() returns after FLUSH (the upload); the kernel sends RELEASE, which frees the
    // spool file, asynchronously after that, so wait for it (the bound is only reached when
    // something is broken, not on a loaded machine).
    let mut spool = get(&written, "cosmount_spool_bytes");
    let spool_deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < spool_deadline {
        if spool == 0.0 {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(100));
        spool = get(&scrape(addr), "cosmount_spool_bytes");
    }
    assert_eq!(spool, 0.0, "spool freed once the file is released");

    // An unknown path is a 404, not the metrics.
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /other HTTP/1.0\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.0 404"), "{text}");

    env.unmount();
    // The daemon logs its summary as it exits; wait for it (bounded, in case it never comes).
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut text = String::new();
    while Instant::now() < deadline {
        text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("unmounted") {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        text.contains("unmounted; COS requests"),
        "no summary in the log:\n{text}"
    );
    assert!(
        !text.contains(common::SECRET_KEY),
        "the log shows the secret"
    );
}

#[test]
fn a_taken_metrics_port_fails_the_mount_with_a_reason() {
    let env = TestEnv::start();
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = env.mount_background(&["-o", &format!("metrics_addr={addr}")]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("metrics"), "{err}");
    assert!(!env.is_mounted());
}
