//! The mount command: failures before mounting, options, signals, daemon mode.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::{TestEnv, BUCKET};

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn assert_failed_cleanly(env: &TestEnv, out: &Output, reason: &str) {
    let err = stderr(out);
    assert!(!out.status.success(), "mount should fail; stderr: {err}");
    assert!(
        err.to_lowercase().contains(reason),
        "stderr should mention {reason:?}: {err}"
    );
    assert_eq!(
        err.trim().lines().count(),
        1,
        "one-line reason expected: {err}"
    );
    assert!(!env.is_mounted(), "nothing may stay mounted");
}

#[test]
fn background_mount_with_wrong_key_exits_nonzero_before_mounting() {
    let env = TestEnv::start();
    let out = env
        .cosmount_cmd(&[])
        .env("COS_SECRET_KEY", "not-the-key")
        .output()
        .unwrap();
    assert_failed_cleanly(&env, &out, "signature");
    let out = env
        .cosmount_cmd(&[])
        .env("COS_SECRET_ID", "AKIDUNKNOWN")
        .output()
        .unwrap();
    assert_failed_cleanly(&env, &out, "secretid");
}

#[test]
fn background_mount_of_missing_bucket_exits_nonzero_before_mounting() {
    let env = TestEnv::start();
    let out = Command::new(common::cosmount_bin())
        .arg("nosuchbucket-1250000000")
        .arg(&env.mnt)
        .args(["--endpoint", &env.endpoint])
        .env("COS_SECRET_ID", common::SECRET_ID)
        .env("COS_SECRET_KEY", common::SECRET_KEY)
        .output()
        .unwrap();
    assert_failed_cleanly(&env, &out, "not found");
}

#[test]
fn background_mount_with_unreachable_endpoint_exits_nonzero_before_mounting() {
    let env = TestEnv::start();
    // Port 1 on loopback: connection refused.
    let out = Command::new(common::cosmount_bin())
        .arg(BUCKET)
        .arg(&env.mnt)
        .args(["-o", "endpoint=http://127.0.0.1:1"])
        .env("COS_SECRET_ID", common::SECRET_ID)
        .env("COS_SECRET_KEY", common::SECRET_KEY)
        .output()
        .unwrap();
    assert_failed_cleanly(&env, &out, "unreachable");
}

#[test]
fn foreground_mount_failure_exits_nonzero_too() {
    let env = TestEnv::start();
    let out = env
        .cosmount_cmd(&["-f"])
        .env("COS_SECRET_KEY", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("signature"), "{}", stderr(&out));
    assert!(!env.is_mounted());
}

#[test]
fn background_mount_returns_once_live_and_unmounts() {
    let mut env = TestEnv::start();
    env.put("hello.txt", "hello");
    let out = env.mount_background(&[]);
    assert!(out.status.success(), "stderr: {}", stderr(&out));
    assert!(
        env.is_mounted(),
        "the parent must exit only once the mount is live"
    );
    assert_eq!(
        std::fs::read_to_string(env.path("hello.txt")).unwrap(),
        "hello"
    );
    env.unmount();
    assert!(!env.is_mounted());
}

#[test]
fn unknown_option_is_an_error_naming_it() {
    let env = TestEnv::start();
    let out = env
        .cosmount_cmd(&["-o", "ro,frobnicate,_netdev,x-systemd.automount"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("frobnicate"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("_netdev"));
    assert!(!env.is_mounted());
}

#[test]
fn help_and_version() {
    let out = Command::new(common::cosmount_bin())
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for opt in [
        "--region",
        "--endpoint",
        "--foreground",
        "-o",
        "passwd_file",
        "cache_size",
        "stat_ttl",
        "fstab",
    ] {
        assert!(help.contains(opt), "--help should document {opt}");
    }
    let out = Command::new(common::cosmount_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(env!("CARGO_PKG_VERSION")));
}

#[test]
fn read_only_mount_refuses_writes_with_erofs() {
    let mut env = TestEnv::start();
    env.put("existing.txt", "keep me");
    env.mount(&["-o", "ro"]);
    let erofs = |r: std::io::Result<()>| {
        let e = r.expect_err("write must fail");
        assert_eq!(e.raw_os_error(), Some(libc::EROFS), "{e}");
    };
    erofs(std::fs::write(env.path("new.txt"), "x"));
    erofs(std::fs::write(env.path("existing.txt"), "x"));
    erofs(std::fs::create_dir(env.path("newdir")));
    erofs(std::fs::remove_file(env.path("existing.txt")));
    assert_eq!(
        std::fs::read_to_string(env.path("existing.txt")).unwrap(),
        "keep me"
    );
    let mode = std::fs::metadata(env.path("existing.txt"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o222, 0, "a read-only mount shows no write bits");
}

#[test]
fn sigterm_unmounts_cleanly() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    let child = env.mount_process().expect("foreground mount");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "cosmount did not exit after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "exit status {status}");
    assert!(
        !env.is_mounted(),
        "SIGTERM must not leave a dead mount behind"
    );
}

#[test]
fn group_readable_passwd_file_is_refused() {
    let env = TestEnv::start();
    let dir = tempfile::tempdir().unwrap();
    let pw = dir.path().join("passwd-cosfs");
    std::fs::write(
        &pw,
        format!("{BUCKET}:{}:{}\n", common::SECRET_ID, common::SECRET_KEY),
    )
    .unwrap();
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o644)).unwrap();
    let opt = format!("passwd_file={}", pw.display());
    let out = env.cosmount_cmd(&["-o", &opt]).output().unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("chmod 600"), "{}", stderr(&out));
    assert!(!env.is_mounted());

    // The same file with mode 600 mounts (credentials from the file, not the environment).
    std::fs::set_permissions(&pw, std::fs::Permissions::from_mode(0o600)).unwrap();
    let out = env
        .cosmount_cmd(&["-o", &opt])
        .env_remove("COS_SECRET_ID")
        .env_remove("COS_SECRET_KEY")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.is_mounted());
}
