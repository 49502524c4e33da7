//! The namespace tells the truth about metadata through a real mount over cos-local: modes,
//! owners, mtimes and types written by cosfs (or by an earlier mount) survive listings, the
//! kernel forgetting inodes, and remounts; and what that truth costs in requests.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bytes::Bytes;
use common::TestEnv;
use cosmount::cos::store::PutOptions;

/// Make the kernel forget dentries and inodes it does not need (FORGET to the daemon).
fn drop_kernel_caches() {
    std::fs::write("/proc/sys/vm/drop_caches", "2").expect("write /proc/sys/vm/drop_caches");
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("run {cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// (type, permission bits, uid, gid, mtime seconds, link target) of `p`, not following links.
fn entry(p: &Path) -> (String, u32, u32, u32, i64, Option<String>) {
    let m = std::fs::symlink_metadata(p).unwrap_or_else(|e| panic!("lstat {}: {e}", p.display()));
    let kind = if m.file_type().is_symlink() {
        "symlink"
    } else if m.is_dir() {
        "dir"
    } else {
        "file"
    };
    let target = m
        .file_type()
        .is_symlink()
        .then(|| std::fs::read_link(p).unwrap().display().to_string());
    (
        kind.to_string(),
        m.permissions().mode() & 0o7777,
        m.uid(),
        m.gid(),
        m.mtime(),
        target,
    )
}

fn meta(mode: u32, uid: u32, gid: u32, mtime: i64) -> Vec<(&'static str, String)> {
    vec![
        ("mode", mode.to_string()),
        ("uid", uid.to_string()),
        ("gid", gid.to_string()),
        ("mtime", mtime.to_string()),
    ]
}

/// A tree as cosfs writes it (x-cos-meta-mode/uid/gid/mtime, S_IFLNK symlinks, `dir/`
/// markers with modes), archived by `tar` from a fresh mount: every entry keeps its type,
/// mode, owner, mtime and link target, the same as `stat` of it alone says.
#[test]
fn tar_of_a_cosfs_tree_keeps_every_mode_owner_and_symlink() {
    let mut env = TestEnv::start();
    env.put_with_meta("d/", "", &meta(0o040700, 1000, 1000, 1_600_000_000));
    env.put_with_meta("d/f", "data\n", &meta(0o100640, 1001, 1002, 1_600_000_100));
    env.put_with_meta(
        "d/l",
        "/etc/hostname",
        &meta(0o120777, 1003, 1004, 1_600_000_200),
    );
    env.put_with_meta(
        "d/big",
        vec![7u8; 100_000],
        &meta(0o100600, 1005, 1006, 1_600_000_300),
    );
    env.put_with_meta("d/sub/", "", &meta(0o040750, 1007, 1008, 1_600_000_400));
    env.put_with_meta("d/sub/x", "x", &meta(0o100444, 1009, 1010, 1_600_000_500));
    env.mount(&[]);
    let expected = [
        ("d", ("dir", 0o700, 1000, 1000, 1_600_000_000, None)),
        ("d/f", ("file", 0o640, 1001, 1002, 1_600_000_100, None)),
        (
            "d/l",
            (
                "symlink",
                0o777,
                1003,
                1004,
                1_600_000_200,
                Some("/etc/hostname"),
            ),
        ),
        ("d/big", ("file", 0o600, 1005, 1006, 1_600_000_300, None)),
        ("d/sub", ("dir", 0o750, 1007, 1008, 1_600_000_400, None)),
        ("d/sub/x", ("file", 0o444, 1009, 1010, 1_600_000_500, None)),
    ];

    // The archive is made first, on a mount nothing was stat'ed on yet (the listing path).
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("a.tar");
    let out = work.path().join("out");
    std::fs::create_dir(&out).unwrap();
    run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(&env.mnt)
        .arg("d"));
    run(Command::new("tar")
        .arg("--numeric-owner")
        .arg("-xpf")
        .arg(&archive)
        .arg("-C")
        .arg(&out));
    drop_kernel_caches();
    for (rel, (kind, mode, uid, gid, mtime, target)) in expected {
        let want = (
            kind.to_string(),
            mode,
            uid,
            gid,
            mtime,
            target.map(str::to_string),
        );
        assert_eq!(entry(&out.join(rel)), want, "{rel} as tar archived it");
        assert_eq!(entry(&env.path(rel)), want, "{rel} as stat shows it");
    }
    // find and ls -l agree (the listing path again, after the kernel forgot everything).
    drop_kernel_caches();
    let ls = run(Command::new("ls").arg("-ln").arg(env.path("d")));
    assert!(ls.contains("lrwxrwxrwx 1 1003 1004"), "{ls}");
    assert!(ls.contains("drwxr-x--- 2 1007 1008"), "{ls}");
    assert!(ls.contains("-rw-r----- 1 1001 1002"), "{ls}");
    let find = run(Command::new("find")
        .arg(env.path("d"))
        .arg("-printf")
        .arg("%P %y %m %U:%G\n"));
    assert!(find.contains("l l 777 1003:1004"), "{find}");
    assert!(find.contains("sub/x f 444 1009:1010"), "{find}");
}

/// chmod/chown of a directory made through the mount hold after its parent is listed, after
/// the kernel forgets it, and after a remount.
#[test]
fn a_listing_never_resets_what_chmod_and_chown_set() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    let d = env.path("d");
    std::fs::create_dir(&d).unwrap();
    std::fs::set_permissions(&d, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::chown(&d, Some(1000), Some(1000)).unwrap();
    std::fs::write(env.path("d/f"), "x").unwrap();
    std::fs::set_permissions(env.path("d/f"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let check = |env: &TestEnv, when: &str| {
        let m = std::fs::metadata(env.path("d")).unwrap();
        assert_eq!(
            (m.permissions().mode() & 0o7777, m.uid(), m.gid()),
            (0o700, 1000, 1000),
            "directory {when}"
        );
        let f = std::fs::metadata(env.path("d/f")).unwrap();
        assert_eq!(f.permissions().mode() & 0o7777, 0o600, "file {when}");
    };
    check(&env, "right after chmod");
    run(Command::new("ls").arg("-l").arg(&env.mnt));
    run(Command::new("ls").arg("-l").arg(env.path("d")));
    check(&env, "after ls of the parent");
    drop_kernel_caches();
    run(Command::new("ls").arg("-l").arg(&env.mnt));
    check(&env, "after drop_caches and ls");
    env.unmount();
    env.mount(&[]);
    run(Command::new("ls").arg("-l").arg(&env.mnt));
    check(&env, "after a remount");
}

/// A symlink made through the mount stays a symlink when the kernel forgets it, after `ls`
/// of its directory, and after a remount.
#[test]
fn symlinks_stay_symlinks_after_the_kernel_forgets_them() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    std::fs::create_dir(env.path("d")).unwrap();
    std::os::unix::fs::symlink("/etc/hostname", env.path("d/l")).unwrap();
    let check = |env: &TestEnv, when: &str| {
        let m = std::fs::symlink_metadata(env.path("d/l")).unwrap();
        assert!(m.file_type().is_symlink(), "a symlink {when}");
        assert_eq!(
            std::fs::read_link(env.path("d/l")).unwrap(),
            Path::new("/etc/hostname"),
            "readlink {when}"
        );
    };
    check(&env, "right after ln -s");
    drop_kernel_caches();
    check(&env, "after drop_caches");
    run(Command::new("ls").arg("-l").arg(env.path("d")));
    check(&env, "after ls");
    drop_kernel_caches();
    let stat = run(Command::new("stat")
        .arg("-c")
        .arg("%F")
        .arg(env.path("d/l")));
    assert_eq!(stat.trim(), "symbolic link");
    env.unmount();
    env.mount(&[]);
    check(&env, "after a remount");
}

/// An object replaced behind the mount's back by a longer one is read whole once the
/// kernel's attribute TTL has passed (open sees the new version and tells the kernel).
#[test]
fn a_longer_object_replaced_out_of_band_reads_whole() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    std::fs::write(env.path("f"), "old\n").unwrap();
    assert_eq!(std::fs::read(env.path("f")).unwrap(), b"old\n");
    env.put("f", "new new new\n");
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(std::fs::read(env.path("f")).unwrap(), b"new new new\n");
    assert_eq!(std::fs::metadata(env.path("f")).unwrap().len(), 12);
}

/// `ls -l` of 10 000 objects written with modes: one HEAD per object cold, none warm (with a
/// pause between READDIRPLUS and the lstat calls), none after a remount, none with meta=list.
/// Prints the figures the README quotes.
#[test]
fn ls_l_of_10000_objects_costs_heads_once_per_version() {
    const N: usize = 10_000;
    let mut env = TestEnv::start();
    let items: Vec<(String, Bytes)> = (0..N)
        .map(|i| (format!("many/o{i:05}"), Bytes::from(vec![b'x'; 100])))
        .collect();
    let opts = PutOptions {
        meta: meta(0o100600, 1234, 4321, 1_600_000_000)
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..Default::default()
    };
    env.put_many_with(items, opts);
    env.mount(&[]);
    assert!(env.path("many").is_dir());
    let dir = env.path("many");

    let ls_l = |env: &TestEnv, label: &str| {
        let before = env.requests();
        let out = run(Command::new("ls").arg("-ln").arg(&dir));
        let after = env.requests();
        let lines: Vec<&str> = out.lines().filter(|l| l.starts_with('-')).collect();
        assert_eq!(lines.len(), N, "{label}: entries");
        let (list, head) = (
            after.list - before.list,
            after.head_object - before.head_object,
        );
        println!("figure: ls -l of {N} objects, {label}: {list} LIST, {head} HEAD");
        (
            lines
                .iter()
                .all(|l| l.starts_with("-rw------- 1 1234 4321")),
            list,
            head,
        )
    };
    // Each full listing costs ceil(N / 1000) LIST (and the parent's, to look `many` up again,
    // one); how many listings a run makes depends on stat_ttl (10 s), so LIST is bounded below.
    let (modes, list, head) = ls_l(&env, "cold");
    assert!(modes, "every entry shows its mode and owner");
    assert!(list >= 10, "cold LIST {list}");
    assert_eq!(head, N, "cold: one HEAD per object");

    std::thread::sleep(Duration::from_secs(11)); // past stat_ttl: the listing is fetched again
    let (modes, list, head) = ls_l(&env, "warm");
    assert!(modes);
    assert!(list >= 10, "warm LIST {list}");
    assert_eq!(head, 0, "warm: nothing new to learn");

    // READDIRPLUS, then a pause longer than the kernel's 1 s TTL, then lstat of every name.
    let before = env.requests();
    let names = run(Command::new("ls").arg("-f").arg(&dir));
    std::thread::sleep(Duration::from_secs(2));
    let mut stat = Command::new("xargs");
    stat.arg("-0")
        .arg("stat")
        .arg("-c")
        .arg("%a %u")
        .current_dir(&dir);
    let list_of: Vec<&str> = names.lines().filter(|n| *n != "." && *n != "..").collect();
    let mut child = stat
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        for n in &list_of {
            stdin.write_all(n.as_bytes()).unwrap();
            stdin.write_all(b"\0").unwrap();
        }
    }
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let stats = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stats.lines().filter(|l| *l == "600 1234").count(), N);
    let after = env.requests();
    println!(
        "figure: ls -f, sleep 2, stat of {N} names: {} LIST, {} HEAD",
        after.list - before.list,
        after.head_object - before.head_object
    );
    assert_eq!(
        after.head_object - before.head_object,
        0,
        "lstat after the kernel TTL"
    );

    env.unmount();
    env.mount(&[]);
    assert!(env.path("many").is_dir());
    let (modes, list, head) = ls_l(&env, "after a remount");
    assert!(modes);
    assert!(list >= 10);
    assert_eq!(head, 0, "learned metadata is kept across a remount");

    env.unmount();
    env.mount(&["-o", "meta=list"]);
    let before = env.requests();
    let out = run(Command::new("ls").arg("-ln").arg(&dir));
    let after = env.requests();
    assert_eq!(out.lines().filter(|l| l.starts_with('-')).count(), N);
    println!(
        "figure: ls -l of {N} objects, meta=list: {} LIST, {} HEAD",
        after.list - before.list,
        after.head_object - before.head_object
    );
    assert_eq!(
        after.head_object - before.head_object,
        0,
        "meta=list never HEADs"
    );
}

/// An inode number seen by `stat` stays the same after the kernel forgets the inode, and
/// after a rename, while the object exists.
#[test]
fn inode_numbers_are_stable_while_the_object_exists() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    std::fs::create_dir(env.path("d")).unwrap();
    std::fs::write(env.path("d/f"), "x").unwrap();
    let ino = |p: &str| std::fs::symlink_metadata(env.path(p)).unwrap().ino();
    let (d, f) = (ino("d"), ino("d/f"));
    drop_kernel_caches();
    assert_eq!(
        (ino("d"), ino("d/f")),
        (d, f),
        "after the kernel forgot them"
    );
    std::fs::rename(env.path("d/f"), env.path("d/g")).unwrap();
    assert_eq!(ino("d/g"), f, "rename keeps the number");
    drop_kernel_caches();
    assert_eq!(ino("d/g"), f);
}
