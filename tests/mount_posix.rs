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
