//! `cosmount sign` reproduces every SDK vector byte for byte, and `cosmount presign` the
//! Python SDK's presigned URL; both fail clearly without credentials.

mod sign_vectors_data;

use std::process::Command;

use sign_vectors_data::{pairs, vectors};

fn cosmount() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cosmount"));
    cmd.env_remove("COS_SECURITY_TOKEN")
        .env_remove("COS_REGION")
        .env_remove("COS_ENDPOINT")
        .env("COS_SECRET_ID", "AKIDEXAMPLE")
        .env("COS_SECRET_KEY", "SECRETEXAMPLE");
    cmd
}

/// Run `cmd`, which must succeed (`what` and its stderr say why not), and return its stdout.
fn success_stdout(cmd: &mut Command, what: &str) -> String {
    let out = cmd.output().expect("run cosmount");
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("UTF-8 output")
}

#[test]
fn sign_reproduces_every_sdk_vector() {
    let all = vectors();
    let list = all["vectors"].as_array().expect("vectors array");
    assert!(!list.is_empty());
    for v in list {
        let id = v["id"].as_str().unwrap();
        let mut cmd = cosmount();
        cmd.arg("sign")
            .arg("--method")
            .arg(v["method"].as_str().unwrap())
            .arg("--key")
            .arg(v["key"].as_str().unwrap())
            .arg("--start")
            .arg(v["start_time"].as_i64().unwrap().to_string())
            .arg("--end")
            .arg(v["end_time"].as_i64().unwrap().to_string());
        for (name, value) in pairs(&v["query"]) {
            let p = if value.is_empty() {
                name
            } else {
                format!("{name}={value}")
            };
            cmd.arg("--param").arg(p);
        }
        for (name, value) in pairs(&v["headers"]) {
            cmd.arg("--header").arg(format!("{name}: {value}"));
        }
        if let Some(host) = v["host_signed"].as_str() {
            cmd.arg("--header").arg(format!("Host: {host}"));
        }
        let out = success_stdout(&mut cmd, id);
        let expected = format!("{}\n", v["authorization"].as_str().unwrap());
        assert_eq!(out, expected, "vector {id}");
    }
}

#[test]
fn sign_method_is_case_insensitive_and_params_may_be_bare() {
    let run = |method: &str| {
        let mut cmd = cosmount();
        cmd.args(["sign", "--method", method, "--key", "exampleobject"])
            .args([
                "--param",
                "acl",
                "--start",
                "1700000000",
                "--end",
                "1700003600",
            ])
            .args([
                "--header",
                "Host: examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com",
            ]);
        success_stdout(&mut cmd, method)
    };
    let upper = run("GET");
    assert_eq!(upper, run("get"));
    // Same as the vector get-object-acl.
    let v = vectors();
    let acl = v["vectors"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["id"] == "get-object-acl")
        .unwrap();
    assert_eq!(upper.trim_end(), acl["authorization"].as_str().unwrap());
}

#[test]
fn sign_without_credentials_exits_2_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_cosmount"))
        .env_remove("COS_SECRET_ID")
        .env_remove("COS_SECRET_KEY")
        .args(["sign", "--method", "get", "--key", "a"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("COS_SECRET_ID") && err.contains("COS_SECRET_KEY"),
        "{err}"
    );
}

#[test]
fn sign_default_window_is_now_minus_60_to_now_plus_expires() {
    let now = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64
    };
    let before = now();
    let auth = success_stdout(
        cosmount().args(["sign", "--key", "a", "--expires", "100"]),
        "sign",
    );
    let after = now();
    let window = auth
        .split('&')
        .find_map(|f| f.strip_prefix("q-sign-time="))
        .unwrap();
    let (start, end) = window.split_once(';').unwrap();
    let (start, end): (i64, i64) = (start.parse().unwrap(), end.trim().parse().unwrap());
    assert_eq!(end - start, 160);
    assert!(
        (before - 60..=after - 60).contains(&start),
        "{start} vs {before}..{after}"
    );
}

#[test]
fn presign_matches_the_python_sdk_url() {
    let v = vectors();
    let expected = v["presigned_urls"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["name"] == "get_presigned_url_get")
        .unwrap()["url"]
        .as_str()
        .unwrap()
        .to_string();
    let out = success_stdout(
        cosmount().args([
            "presign",
            "examplebucket-1250000000",
            "中文目录/文件 名.txt",
            "--region",
            "ap-guangzhou",
            "--param",
            "response-content-type=text/plain",
            "--start",
            "1700000000",
            "--end",
            "1700003600",
        ]),
        "presign",
    );
    assert_eq!(out, format!("{expected}\n"));
}

#[test]
fn presign_for_a_local_endpoint_is_path_style_and_carries_the_token() {
    let url = success_stdout(
        cosmount().env("COS_SECURITY_TOKEN", "TOK+/=").args([
            "presign",
            "examplebucket-1250000000",
            "a b.txt",
            "--endpoint",
            "http://127.0.0.1:9000",
            "--method",
            "put",
        ]),
        "presign",
    );
    assert!(
        url.starts_with("http://127.0.0.1:9000/examplebucket-1250000000/a%20b.txt?q-sign-algorithm=sha1&q-ak=AKIDEXAMPLE&"),
        "{url}"
    );
    assert!(
        url.contains("q-url-param-list=x-cos-security-token"),
        "{url}"
    );
    assert!(
        url.trim_end()
            .ends_with("&x-cos-security-token=TOK%2B%2F%3D"),
        "{url}"
    );
}

#[test]
fn presign_without_region_or_endpoint_is_a_usage_error() {
    let out = cosmount()
        .args(["presign", "examplebucket-1250000000", "k"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("region"));
}
