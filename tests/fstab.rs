//! fstab and `mount -t fuse.cosmount` through mount(8) and mount.fuse3, as a system would run
//! them: a temporary fstab (`mount -T FILE`), credentials from a passwd file, cosmount found in
//! /usr/local/bin (mount.fuse3 strips PATH).
//!
//! Needs root, util-linux `mount` and `mount.fuse3` (apt-get install fuse3). The test links
//! the freshly built binary as /usr/local/bin/cosmount for its duration and puts back whatever
//! was there before.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Mutex;

use common::{is_mounted, lazy_unmount, TestEnv, BUCKET, SECRET_ID, SECRET_KEY};

const INSTALLED: &str = "/usr/local/bin/cosmount";

/// The tests of this file share /usr/local/bin/cosmount: one at a time.
static INSTALL_LOCK: Mutex<()> = Mutex::new(());

/// /usr/local/bin/cosmount -> the binary under test, restored on drop (also on failure).
struct Installed {
    backup: Option<PathBuf>,
}

impl Installed {
    fn link() -> Installed {
        let target = Path::new(INSTALLED);
        let backup = if std::fs::symlink_metadata(target).is_ok() {
            let b = PathBuf::from(format!("{INSTALLED}.before-fstab-test"));
            std::fs::rename(target, &b).expect("move the installed cosmount aside");
            Some(b)
        } else {
            None
        };
        std::fs::create_dir_all("/usr/local/bin").unwrap();
        std::os::unix::fs::symlink(common::cosmount_bin(), target)
            .expect("link /usr/local/bin/cosmount");
        Installed { backup }
    }
}

impl Drop for Installed {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(INSTALLED);
        if let Some(b) = self.backup.take() {
            let _ = std::fs::rename(b, INSTALLED);
        }
    }
}

/// Unmounts `dir` on drop, so a failed assertion never leaves a mount behind.
struct MountGuard(PathBuf);

impl Drop for MountGuard {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            lazy_unmount(&self.0);
        }
    }
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("run command");
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}): {}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn mount_helper_available() -> bool {
    ["/sbin/mount.fuse3", "/usr/sbin/mount.fuse3"]
        .iter()
        .any(|p| Path::new(p).exists())
}

/// A cosfs-format passwd file, mode 600 (cosmount refuses looser ones).
fn passwd_file(env: &TestEnv) -> PathBuf {
    let path = env.mnt.parent().unwrap().join("passwd-cosfs");
    std::fs::write(
        &path,
        format!("{BUCKET}:{SECRET_ID}:{SECRET_KEY}\n{SECRET_ID}:{SECRET_KEY}\n"),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    path
}

fn second_mountpoint(env: &TestEnv, name: &str) -> PathBuf {
    let p = env.mnt.parent().unwrap().join(name);
    std::fs::create_dir_all(&p).unwrap();
    std::fs::canonicalize(p).unwrap()
}

#[test]
fn fstab_lines_mount_with_mount_a_and_by_mountpoint() {
    assert!(
        mount_helper_available(),
        "mount.fuse3 is missing: apt-get install fuse3"
    );
    let _lock = INSTALL_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let env = TestEnv::start();
    env.put("hello.txt", "hello from cos");
    let _installed = Installed::link();
    let pw = passwd_file(&env);
    let cosfs_mnt = second_mountpoint(&env, "mnt-cosfs");
    let _g1 = MountGuard(env.mnt.clone());
    let _g2 = MountGuard(cosfs_mnt.clone());

    // One line in cosmount's spelling, one in cosfs's (cosfs#BUCKET, url=).
    let fstab = env.mnt.parent().unwrap().join("fstab");
    std::fs::write(
        &fstab,
        format!(
            "# test fstab\n\
             {BUCKET} {mnt} fuse.cosmount _netdev,allow_other,endpoint={ep},passwd_file={pw} 0 0\n\
             cosfs#{BUCKET} {cmnt} fuse.cosmount _netdev,nofail,url={ep},passwd_file={pw},ro 0 0\n",
            mnt = env.mnt.display(),
            cmnt = cosfs_mnt.display(),
            ep = env.endpoint,
            pw = pw.display(),
        ),
    )
    .unwrap();

    // mount(8) hands the lines to mount.fuse3 with PATH stripped; `env -i` proves nothing else
    // from this process's environment (no COS_* variables, no PATH) is needed.
    run(Command::new("env")
        .args(["-i", "/bin/mount", "-T"])
        .arg(&fstab)
        .arg("-a"));
    assert!(is_mounted(&env.mnt), "mount -a did not mount {:?}", env.mnt);
    assert!(is_mounted(&cosfs_mnt), "the cosfs-style line did not mount");
    assert_eq!(
        std::fs::read_to_string(env.path("hello.txt")).unwrap(),
        "hello from cos"
    );
    assert_eq!(
        std::fs::read_to_string(cosfs_mnt.join("hello.txt")).unwrap(),
        "hello from cos"
    );
    // The ro option reached cosmount.
    let err = std::fs::write(cosfs_mnt.join("new.txt"), "x").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");

    run(Command::new("umount").arg(&env.mnt));
    run(Command::new("umount").arg(&cosfs_mnt));
    assert!(!is_mounted(&env.mnt) && !is_mounted(&cosfs_mnt));

    // `mount DIR` finds the line by its mount point.
    run(Command::new("env")
        .args(["-i", "/bin/mount", "-T"])
        .arg(&fstab)
        .arg(&env.mnt));
    assert!(is_mounted(&env.mnt));
    assert_eq!(
        std::fs::read_to_string(env.path("hello.txt")).unwrap(),
        "hello from cos"
    );
    run(Command::new("umount").arg(&env.mnt));
    assert!(!is_mounted(&env.mnt));
}

#[test]
fn mount_t_fuse_cosmount_and_a_clear_failure() {
    assert!(
        mount_helper_available(),
        "mount.fuse3 is missing: apt-get install fuse3"
    );
    let _lock = INSTALL_LOCK.lock().unwrap_or_else(|p| p.into_inner());
    let env = TestEnv::start();
    env.put("a/b.txt", "bee");
    let _installed = Installed::link();
    let pw = passwd_file(&env);
    let _g = MountGuard(env.mnt.clone());

    let opts = format!("endpoint={},passwd_file={}", env.endpoint, pw.display());
    run(Command::new("env")
        .args(["-i", "/bin/mount", "-t", "fuse.cosmount", BUCKET])
        .arg(&env.mnt)
        .args(["-o", &opts]));
    assert!(is_mounted(&env.mnt));
    assert_eq!(std::fs::read_to_string(env.path("a/b.txt")).unwrap(), "bee");
    run(Command::new("umount").arg(&env.mnt));
    assert!(!is_mounted(&env.mnt));

    // A bucket that does not exist: mount fails, says why, and nothing is mounted.
    let out = Command::new("env")
        .args([
            "-i",
            "/bin/mount",
            "-t",
            "fuse.cosmount",
            "nosuch-1250000000",
        ])
        .arg(&env.mnt)
        .args(["-o", &opts])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not found"), "{err}");
    assert!(!is_mounted(&env.mnt));
}

/// Waits (bounded) until `dir` is no longer a mount point.
fn wait_unmounted(dir: &Path) -> bool {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while std::time::Instant::now() < deadline {
        if !is_mounted(dir) {
            return true;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    false
}

#[test]
fn a_killed_daemon_leaves_a_mount_that_umount_clears() {
    let mut env = TestEnv::start();
    env.put("f.txt", "x");
    env.mount(&[]);
    assert_eq!(std::fs::read_to_string(env.path("f.txt")).unwrap(), "x");
    let child = env.mount_process().expect("foreground cosmount");
    child.kill().unwrap(); // SIGKILL: no chance to unmount
    child.wait().unwrap();
    assert!(is_mounted(&env.mnt), "the kernel keeps the dead mount");
    let err = std::fs::read_dir(&env.mnt).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTCONN), "{err}");
    run(Command::new("umount").arg(&env.mnt));
    assert!(!is_mounted(&env.mnt));
}

#[test]
fn auto_unmount_removes_the_mount_when_the_daemon_dies() {
    let mut env = TestEnv::start();
    env.put("f.txt", "x");
    env.mount(&["-o", "auto_unmount,allow_other"]);
    assert_eq!(std::fs::read_to_string(env.path("f.txt")).unwrap(), "x");
    let child = env.mount_process().expect("foreground cosmount");
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        wait_unmounted(&env.mnt),
        "auto_unmount left the mount behind"
    );
}

/// SIGTERM with a file still open for writing: the mount unmounts and exits, and the
/// half-written file is *not* committed (issue 10 item 4): it stays in the spool journal for
/// `cosmount recover`.
#[test]
fn sigterm_leaves_files_still_open_for_writing_in_the_journal_then_unmounts() {
    use std::io::Write;
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    let opt = format!("cache_dir={}", cache.path().display());
    env.mount(&["-o", &opt]);
    let data = common::pattern(20 << 20, 9);
    let mut f = std::fs::File::create(env.path("open.bin")).unwrap();
    f.write_all(&data).unwrap();
    // The file is still open (never closed) when the service is stopped.
    let child = env.mount_process().expect("foreground cosmount");
    // SAFETY: signalling our own child process.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let status = child.wait().unwrap();
    assert!(status.success(), "cosmount exited with {status}");
    assert!(wait_unmounted(&env.mnt), "SIGTERM left the mount behind");
    drop(f);
    let client = env.client();
    let head = env
        .rt
        .block_on(cosmount::cos::ObjectStore::head_object(&client, "open.bin"));
    assert!(
        head.as_ref().is_err_and(|e| e.is_not_found()),
        "the half-written file must not be committed: {head:?}"
    );
    let scan = cosmount::fs::journal::scan(&cache.path().join("spool")).unwrap();
    let keys: Vec<&str> = scan.leftovers.iter().map(|l| l.key()).collect();
    assert_eq!(keys, vec!["open.bin"], "left in the journal");
    assert_eq!(scan.leftovers[0].size(), Some(data.len() as u64));
}
