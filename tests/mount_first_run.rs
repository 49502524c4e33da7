//! A first run with no surprises: mountpoint checks, the log file, credentials errors, the
//! environment of the daemon, and no warnings in the log of an ordinary session.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::time::{Duration, Instant};

use common::TestEnv;

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn second_mount_on_a_fuse_mount_is_refused_and_the_first_keeps_working() {
    let mut env = TestEnv::start();
    env.put("a.txt", "first");
    env.mount(&[]);
    let out = env.mount_background(&[]);
    assert!(!out.status.success(), "second mount must fail");
    assert!(
        stderr(&out).contains("already a FUSE mount"),
        "{}",
        stderr(&out)
    );
    assert_eq!(std::fs::read_to_string(env.path("a.txt")).unwrap(), "first");
}

#[test]
fn non_empty_mountpoint_is_refused_unless_nonempty() {
    let mut env = TestEnv::start();
    std::fs::write(env.mnt.join("local.txt"), "hidden").unwrap();
    let out = env.mount_background(&[]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("-o nonempty"), "{}", stderr(&out));
    assert!(!env.is_mounted());
    let out = env.mount_background(&["-o", "nonempty"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(env.is_mounted());
    env.unmount();
}

#[test]
fn unopenable_log_file_fails_the_mount_and_new_ones_are_0600() {
    let mut env = TestEnv::start();
    let dir = tempfile::tempdir().unwrap();
    let bad = format!("log_file={}/no/such/dir/log", dir.path().display());
    let out = env.mount_background(&["-o", &bad]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("cannot open log file"),
        "{}",
        stderr(&out)
    );
    assert!(!env.is_mounted());

    let log = dir.path().join("cosmount.log");
    let out = env.mount_background(&["-o", &format!("log_file={}", log.display())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mode = std::fs::metadata(&log).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    env.unmount();
}

#[test]
fn passwd_file_directory_is_named() {
    let env = TestEnv::start();
    let dir = tempfile::tempdir().unwrap();
    let out = env
        .cosmount_cmd(&["-o", &format!("passwd_file={}", dir.path().display())])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("is a directory"), "{}", stderr(&out));
    assert!(!stderr(&out).contains("mode"), "{}", stderr(&out));
}

/// The pid of the cosmount daemon serving `mnt`, from /proc/*/cmdline.
fn daemon_pid(mnt: &std::path::Path) -> Option<u32> {
    let want = mnt.as_os_str().as_encoded_bytes();
    std::fs::read_dir("/proc").ok()?.flatten().find_map(|e| {
        let pid: u32 = e.file_name().to_str()?.parse().ok()?;
        let cmd = std::fs::read(e.path().join("cmdline")).ok()?;
        let args: Vec<&[u8]> = cmd.split(|b| *b == 0).collect();
        (args.first()?.ends_with(b"cosmount") && args.contains(&want)).then_some(pid)
    })
}

#[test]
fn daemon_environment_holds_no_secret() {
    let mut env = TestEnv::start();
    let out = env
        .cosmount_cmd(&[])
        .env("COS_SECURITY_TOKEN", "token-sekrit-value")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = daemon_pid(&env.mnt).expect("daemon process");
    let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap();
    let text = String::from_utf8_lossy(&environ);
    assert!(text.contains("COS_SECRET_ID="), "the id may stay");
    for secret in [
        "COS_SECRET_KEY",
        common::SECRET_KEY,
        "COS_SECURITY_TOKEN",
        "token-sekrit-value",
    ] {
        assert!(!text.contains(secret), "{secret} still in the environment");
    }
    env.unmount();
}

#[test]
fn ordinary_session_logs_no_warning() {
    let mut env = TestEnv::start();
    env.put("a.txt", "hello");
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("cosmount.log");
    let out = env.mount_background(&["-o", &format!("log_file={}", log.display())]);
    assert!(out.status.success(), "{}", stderr(&out));
    let pid = daemon_pid(&env.mnt).expect("daemon process");
    assert_eq!(std::fs::read_to_string(env.path("a.txt")).unwrap(), "hello");
    std::fs::write(env.path("b.txt"), "new").unwrap();
    let _ = std::fs::read_dir(&env.mnt).unwrap().count();
    // ioctl probes (what lsattr and cp do) answer ENOTTY, quietly.
    let _ = std::process::Command::new("lsattr")
        .arg(env.path("a.txt"))
        .output();
    env.unmount();
    // Wait for the daemon to exit: the unmount messages come last.
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::path::Path::new(&format!("/proc/{pid}/cmdline")).exists()
        && std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
    {
        assert!(Instant::now() < deadline, "daemon did not exit");
        std::thread::sleep(Duration::from_millis(50));
    }
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("unmounted"), "{text}");
    let warns: Vec<&str> = text.lines().filter(|l| l.contains(" WARN ")).collect();
    assert!(
        warns.is_empty(),
        "warnings in the log:\n{}",
        warns.join("\n")
    );
}

/// A client clock 2 h behind the server's: the start-up check learns the offset from the
/// server's Date and the mount comes up and works (COS refuses requests more than 15 min off).
#[test]
fn a_clock_two_hours_behind_the_server_mounts_and_works() {
    let mut env = TestEnv::start_with_server_args(&["--clock-offset", "7200"]);
    env.put("seed.txt", "seed");
    env.mount(&[]);
    assert_eq!(std::fs::read(env.path("seed.txt")).unwrap(), b"seed");
    std::fs::write(env.path("new.txt"), b"written with a skewed clock").unwrap();
    let info = env
        .rt
        .block_on(cosmount::cos::ObjectStore::head_object(
            &env.client(),
            "new.txt",
        ))
        .unwrap();
    assert_eq!(info.size, 27);
}
