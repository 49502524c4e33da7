//! POSIX file types an object store can hold, through a real mount over cos-local: FIFOs and
//! sockets are empty objects whose `x-cos-meta-mode` carries the type (as s3fs and cosfs
//! store them), so buckets stay interchangeable.

mod common;

use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::process::Command;

use common::TestEnv;
use cosmount::cos::ObjectStore;

fn head_mode(env: &TestEnv, key: &str) -> (u64, u32) {
    let info = env
        .rt
        .block_on(ObjectStore::head_object(&env.client(), key))
        .unwrap_or_else(|e| panic!("HEAD {key}: {e}"));
    let mode = info
        .meta
        .get("mode")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    (info.size, mode)
}

#[test]
fn fifos_and_sockets_are_stored_and_shown_with_their_type() {
    let mut env = TestEnv::start();
    // Written by cosfs: an empty object with S_IFIFO | 0640.
    env.put_with_meta(
        "from-cosfs.fifo",
        "",
        &[("mode", (libc::S_IFIFO | 0o640).to_string())],
    );
    env.mount(&[]);

    let out = Command::new("mkfifo")
        .arg("-m")
        .arg("0620")
        .arg(env.path("p"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let m = std::fs::symlink_metadata(env.path("p")).unwrap();
    assert!(m.file_type().is_fifo());
    assert_eq!(m.permissions().mode() & 0o7777, 0o620);
    assert_eq!(
        head_mode(&env, "p"),
        (0, libc::S_IFIFO | 0o620),
        "the object in the bucket"
    );

    // bind(2) of a unix socket is a mknod(S_IFSOCK).
    let sock = env.path("s.sock");
    let listener = std::os::unix::net::UnixListener::bind(&sock).expect("bind a socket");
    drop(listener);
    assert!(std::fs::symlink_metadata(&sock)
        .unwrap()
        .file_type()
        .is_socket());
    assert_eq!(head_mode(&env, "s.sock").1 & libc::S_IFMT, libc::S_IFSOCK);

    let c = std::fs::symlink_metadata(env.path("from-cosfs.fifo")).unwrap();
    assert!(c.file_type().is_fifo(), "a cosfs FIFO is a FIFO");
    assert_eq!(c.mode() & 0o7777, 0o640);

    // chmod keeps the type; the kernel forgetting it does too.
    std::fs::set_permissions(env.path("p"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(head_mode(&env, "p"), (0, libc::S_IFIFO | 0o600));
    std::fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
    let ls = Command::new("ls").arg("-l").arg(&env.mnt).output().unwrap();
    let ls = String::from_utf8_lossy(&ls.stdout);
    assert!(
        ls.lines()
            .any(|l| l.starts_with("prw------- ") && l.ends_with(" p")),
        "{ls}"
    );
    assert!(
        ls.lines()
            .any(|l| l.starts_with('s') && l.ends_with(" s.sock")),
        "{ls}"
    );

    std::fs::remove_file(env.path("p")).unwrap();
    assert!(std::fs::symlink_metadata(env.path("p")).is_err());
}

/// mtime keeps nanoseconds, atime is kept when set explicitly, ctime moves on chmod, and
/// mode 0000 stays 0000, in metadata other clients read (checked through the client too).
#[test]
fn times_with_nanoseconds_ctime_atime_and_mode_zero() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    let f = env.path("f");
    std::fs::write(&f, "x").unwrap();
    let run = |args: &[&str]| {
        let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let path = f.to_str().unwrap();
    run(&[
        "touch",
        "-m",
        "-d",
        "2021-03-04 05:06:07.123456789 UTC",
        path,
    ]);
    run(&["touch", "-a", "-d", "2020-01-02 03:04:05.5 UTC", path]);
    let before_chmod = std::fs::metadata(&f).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o000)).unwrap();
    let check = |env: &TestEnv, when: &str| {
        let m = std::fs::metadata(env.path("f")).unwrap();
        assert_eq!(
            (m.mtime(), m.mtime_nsec()),
            (1_614_834_367, 123_456_789),
            "mtime {when}"
        );
        assert_eq!(
            (m.atime(), m.atime_nsec()),
            (1_577_934_245, 500_000_000),
            "atime {when}"
        );
        assert_eq!(m.mode() & 0o7777, 0, "chmod 000 {when}");
        assert!(
            (m.ctime(), m.ctime_nsec()) > (before_chmod.ctime(), before_chmod.ctime_nsec()),
            "chmod moves ctime {when}"
        );
    };
    check(&env, "at once");
    let ctime = |env: &TestEnv| {
        let m = std::fs::metadata(env.path("f")).unwrap();
        (m.ctime(), m.ctime_nsec())
    };
    let before_read = ctime(&env);
    let _ = std::fs::read(env.path("f")); // mode 0000: root reads anyway
    assert_eq!(ctime(&env), before_read, "a read does not change ctime");
    let info = env
        .rt
        .block_on(ObjectStore::head_object(&env.client(), "f"))
        .unwrap();
    assert_eq!(
        info.meta.get("mtime").map(String::as_str),
        Some("1614834367.123456789")
    );
    assert_eq!(
        info.meta.get("atime").map(String::as_str),
        Some("1577934245.500000000")
    );
    assert!(info.meta.contains_key("ctime"));
    std::fs::write("/proc/sys/vm/drop_caches", "2").unwrap();
    check(&env, "after drop_caches");
    env.unmount();
    env.mount(&[]);
    check(&env, "after a remount");
}

/// An open file that is unlinked (or replaced by a rename) reports st_nlink 0.
#[test]
fn an_open_unlinked_file_has_no_links() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    std::fs::write(env.path("gone"), "still here").unwrap();
    std::fs::write(env.path("old"), "old").unwrap();
    std::fs::write(env.path("new"), "new").unwrap();
    let f = std::fs::File::open(env.path("gone")).unwrap();
    assert_eq!(f.metadata().unwrap().nlink(), 1);
    std::fs::remove_file(env.path("gone")).unwrap();
    assert_eq!(f.metadata().unwrap().nlink(), 0, "unlinked while open");
    let old = std::fs::File::open(env.path("old")).unwrap();
    std::fs::rename(env.path("new"), env.path("old")).unwrap();
    assert_eq!(old.metadata().unwrap().nlink(), 0, "replaced by a rename");
    assert_eq!(std::fs::metadata(env.path("old")).unwrap().nlink(), 1);
}
