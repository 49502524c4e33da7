//! Write safety over a real mount (issue 10): a write that cannot be stored exactly never
//! replaces the committed object, and close() tells the truth.
//!
//! Each test checks the bucket through the COS client, behind the mount's back.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{pattern, TestEnv};
use cosmount::cos::ObjectStore;

const MIB: usize = 1 << 20;

/// The object's bytes as COS holds them (`None` when there is no such object).
fn object(env: &TestEnv, key: &str) -> Option<Vec<u8>> {
    let client = env.client();
    let info = match env.rt.block_on(ObjectStore::head_object(&client, key)) {
        Ok(info) => info,
        Err(e) if e.is_not_found() => return None,
        Err(e) => panic!("HEAD {key}: {e}"),
    };
    if info.size == 0 {
        return Some(Vec::new());
    }
    let got = env
        .rt
        .block_on(ObjectStore::get_range(&client, key, 0, info.size, None))
        .unwrap_or_else(|e| panic!("GET {key}: {e}"));
    Some(got.data.to_vec())
}

fn mount_with_cache(env: &mut TestEnv, cache: &Path, extra: &[&str]) {
    let opt = format!("cache_dir={}", cache.display());
    let mut args = vec!["-o", opt.as_str()];
    args.extend_from_slice(extra);
    env.mount(&args);
}

/// A small tmpfs, unmounted (lazily, also when the test fails) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this machine does not let the test mount one (not root).
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot mount a tmpfs here (needs root); skipping");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Item 1: the spool's disk fills up while `cp` replaces a file. cp sees ENOSPC, close fails
/// as well, and the bucket keeps the old version (on main it got the first 5 MiB of the new
/// file).
#[test]
fn a_full_spool_disk_fails_the_handle_and_keeps_the_old_object() {
    // Declared first, so it is unmounted after the mount that spools into it is gone.
    let Some(tmpfs) = Tmpfs::mount("5m") else {
        return;
    };
    let mut env = TestEnv::start();
    let old = pattern(MIB, 1);
    env.put("full/f.bin", old.clone());
    mount_with_cache(&mut env, &tmpfs.path(), &[]);
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), pattern(20 * MIB, 2)).unwrap();
    let out = Command::new("cp")
        .arg(src.path())
        .arg(env.path("full/f.bin"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "cp must fail on a full spool disk");
    // A later close of a new handle on it still sees the old content...
    assert!(object(&env, "full/f.bin") == Some(old.clone()), "old object kept");
    // ... and writing the file by hand: the write fails, and so does close (sticky).
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(env.path("full/f.bin"))
        .unwrap();
    let mut failed = false;
    for _ in 0..20 {
        if f.write_all(&pattern(MIB, 3)).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "writes past the spool disk's size fail");
    assert!(f.sync_all().is_err(), "fsync after a failed write fails");
    drop(f);
    assert!(object(&env, "full/f.bin") == Some(old), "old object still kept");
    let _ = File::open(env.path("full")); // the mount is still alive
}
