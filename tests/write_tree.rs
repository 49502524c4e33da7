//! Namespace operations and everyday tools through a real mount over cos-local: renames of
//! files and trees, rmdir of a non-empty directory, attributes and symlinks across a remount,
//! `cp -r` / `rsync -a` / `diff -r`, `tar x`, and `git commit` inside the mount.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, UNIX_EPOCH};

use common::{pattern, TestEnv};
use cosmount::cos::store::ListParams;
use cosmount::cos::ObjectStore;

/// Every key under `prefix`, through the COS client.
fn keys_under(env: &TestEnv, prefix: &str) -> Vec<String> {
    let client = env.client();
    let mut keys = Vec::new();
    let mut marker = None;
    loop {
        let params = ListParams {
            prefix: prefix.to_string(),
            delimiter: None,
            marker: marker.clone(),
            max_keys: None,
        };
        let page = env
            .rt
            .block_on(ObjectStore::list_objects(&client, &params))
            .unwrap();
        keys.extend(page.objects.into_iter().map(|o| o.key));
        match (page.is_truncated, page.next_marker) {
            (true, Some(next)) => marker = Some(next),
            _ => return keys,
        }
    }
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn sorted_names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn renames_of_files_and_of_a_tree_of_200_files() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    let root = env.path("r");
    std::fs::create_dir(&root).unwrap();
    std::fs::write(root.join("a.txt"), b"file a").unwrap();
    std::fs::write(root.join("b.txt"), b"file b").unwrap();

    // Plain rename, then a rename onto an existing file (which it replaces).
    std::fs::rename(root.join("a.txt"), root.join("c.txt")).unwrap();
    assert_eq!(sorted_names(&root), ["b.txt", "c.txt"]);
    std::fs::rename(root.join("c.txt"), root.join("b.txt")).unwrap();
    assert_eq!(sorted_names(&root), ["b.txt"]);
    assert_eq!(std::fs::read(root.join("b.txt")).unwrap(), b"file a");

    // A tree of 200 files in nested directories.
    let tree = root.join("tree");
    for i in 0..200 {
        let dir = tree.join(format!("d{}", i % 4)).join(format!("e{}", i % 3));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("f{i:03}")), pattern(100 + i, i as u64)).unwrap();
    }
    std::fs::rename(&tree, root.join("moved")).unwrap();
    assert_eq!(sorted_names(&root), ["b.txt", "moved"]);
    assert!(!tree.exists());
    for i in 0..200 {
        let p = root
            .join("moved")
            .join(format!("d{}", i % 4))
            .join(format!("e{}", i % 3))
            .join(format!("f{i:03}"));
        assert_eq!(
            std::fs::read(&p).unwrap(),
            pattern(100 + i, i as u64),
            "{p:?}"
        );
    }
    let moved = keys_under(&env, "r/moved/");
    assert_eq!(moved.iter().filter(|k| !k.ends_with('/')).count(), 200);
    assert!(
        keys_under(&env, "r/tree/").is_empty(),
        "nothing left under the old name"
    );
}

#[test]
fn rmdir_of_a_non_empty_directory_fails() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    let d = env.path("full");
    std::fs::create_dir(&d).unwrap();
    std::fs::write(d.join("x"), b"x").unwrap();
    let err = std::fs::remove_dir(&d).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOTEMPTY));
    assert!(d.join("x").exists());
    std::fs::remove_file(d.join("x")).unwrap();
    std::fs::remove_dir(&d).unwrap();
    assert!(!d.exists());
    assert!(keys_under(&env, "full").is_empty());
}

#[test]
fn attributes_and_symlinks_survive_a_remount() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    let f = env.path("attrs.txt");
    std::fs::write(&f, b"attributes").unwrap();
    std::fs::set_permissions(&f, std::fs::Permissions::from_mode(0o600)).unwrap();
    std::os::unix::fs::chown(&f, Some(1234), Some(5678)).unwrap();
    let when = UNIX_EPOCH + Duration::from_secs(1_600_000_000);
    std::fs::File::options()
        .write(true)
        .open(&f)
        .unwrap()
        .set_modified(when)
        .unwrap();
    std::fs::create_dir(env.path("dir")).unwrap();
    std::fs::set_permissions(env.path("dir"), std::fs::Permissions::from_mode(0o700)).unwrap();
    std::os::unix::fs::symlink("attrs.txt", env.path("link")).unwrap();
    std::os::unix::fs::symlink("../somewhere/else", env.path("dir/dangling")).unwrap();

    env.unmount();
    env.mount(&[]);
    let m = std::fs::metadata(&f).unwrap();
    assert_eq!(m.mode() & 0o7777, 0o600);
    assert_eq!((m.uid(), m.gid()), (1234, 5678));
    assert_eq!(m.modified().unwrap(), when);
    assert_eq!(
        std::fs::metadata(env.path("dir")).unwrap().mode() & 0o7777,
        0o700
    );
    assert_eq!(
        std::fs::read_link(env.path("link")).unwrap(),
        Path::new("attrs.txt")
    );
    assert_eq!(std::fs::read(env.path("link")).unwrap(), b"attributes");
    assert_eq!(
        std::fs::read_link(env.path("dir/dangling")).unwrap(),
        Path::new("../somewhere/else")
    );
}

/// `cp -r` of 1000 small files into the mount, `rsync -a` back out, `diff -r` equal.
#[test]
fn cp_rsync_and_diff_of_a_thousand_small_files() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("src");
    for i in 0..1000 {
        let dir = src.join(format!("d{:02}", i % 10));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join(format!("f{i:04}.txt")),
            pattern(i % 5000, i as u64),
        )
        .unwrap();
    }
    run(Command::new("cp").arg("-r").arg(&src).arg(env.path("copy")));
    assert_eq!(
        keys_under(&env, "copy/")
            .iter()
            .filter(|k| !k.ends_with('/'))
            .count(),
        1000
    );
    let back = local.path().join("back");
    run(Command::new("rsync")
        .arg("-a")
        .arg(format!("{}/", env.path("copy").display()))
        .arg(&back));
    run(Command::new("diff").arg("-r").arg(&src).arg(&back));
    run(Command::new("diff")
        .arg("-r")
        .arg(&src)
        .arg(env.path("copy")));
}

#[test]
fn tar_extracts_into_the_mount() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    let local = tempfile::tempdir().unwrap();
    let src = local.path().join("pkg");
    std::fs::create_dir_all(src.join("bin")).unwrap();
    std::fs::create_dir_all(src.join("share/doc")).unwrap();
    std::fs::write(src.join("bin/tool"), pattern(300_000, 1)).unwrap();
    std::fs::set_permissions(src.join("bin/tool"), std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(src.join("share/doc/README"), b"read me\n").unwrap();
    std::os::unix::fs::symlink("bin/tool", src.join("tool-link")).unwrap();
    let archive = local.path().join("pkg.tar");
    run(Command::new("tar")
        .arg("-cf")
        .arg(&archive)
        .arg("-C")
        .arg(local.path())
        .arg("pkg"));
    run(Command::new("tar")
        .arg("-xf")
        .arg(&archive)
        .arg("-C")
        .arg(&env.mnt));
    run(Command::new("diff")
        .arg("-r")
        .arg(&src)
        .arg(env.path("pkg")));
    let mode = std::fs::metadata(env.path("pkg/bin/tool")).unwrap().mode();
    assert_eq!(mode & 0o777, 0o755);
    assert_eq!(
        std::fs::read_link(env.path("pkg/tool-link")).unwrap(),
        Path::new("bin/tool")
    );
}

#[test]
fn git_init_add_commit_inside_the_mount() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    let repo = env.path("repo");
    std::fs::create_dir(&repo).unwrap();
    std::fs::write(repo.join("hello.txt"), b"hello from cosmount\n").unwrap();
    std::fs::create_dir(repo.join("src")).unwrap();
    std::fs::write(repo.join("src/main.rs"), b"fn main() {}\n").unwrap();
    let git = |args: &[&str]| {
        run(Command::new("git")
            .args(args)
            .current_dir(&repo)
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .env("HOME", repo.parent().unwrap()))
    };
    git(&["init", "-q"]);
    git(&["add", "."]);
    git(&["commit", "-q", "-m", "first commit"]);
    let log = git(&["log", "--oneline"]);
    assert!(log.contains("first commit"), "{log}");
    git(&["fsck", "--no-progress"]);
    let status = git(&["status", "--porcelain"]);
    assert!(status.is_empty(), "clean tree expected, got {status}");
}
