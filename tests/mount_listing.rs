//! Listings through a real mount over cos-local: what `ls` shows, and what it costs.

mod common;

use std::collections::BTreeSet;
use std::process::Command;

use bytes::Bytes;
use common::TestEnv;

fn names(dir: &std::path::Path) -> BTreeSet<String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("read_dir {}: {e}", dir.display()))
        .map(|e| {
            e.expect("dir entry")
                .file_name()
                .into_string()
                .expect("utf-8 name")
        })
        .collect()
}

fn set(v: &[&str]) -> BTreeSet<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// Markers and implicit directories both appear; awkward names survive; a key that is also a
/// prefix shows as the directory; keys that cannot be file names are hidden.
#[test]
fn tree_made_through_the_client_lists_as_expected() {
    let mut env = TestEnv::start();
    env.put("marker/", Bytes::new());
    env.put("implicit/deep/file.txt", "deep");
    env.put("with space/名字 +%#?&=.txt", "odd");
    env.put("both", "i am a file");
    env.put("both/child", "child");
    env.put(&format!("long/{}", "n".repeat(300)), "x");
    env.put("empty//segment", "x");
    env.put("top.txt", "top");
    env.mount(&[]);

    assert_eq!(
        names(&env.mnt),
        set(&[
            "both",
            "empty",
            "implicit",
            "long",
            "marker",
            "top.txt",
            "with space"
        ])
    );
    assert!(env.path("marker").is_dir());
    assert!(names(&env.path("marker")).is_empty());
    assert!(env.path("implicit/deep").is_dir());
    assert_eq!(
        std::fs::read_to_string(env.path("implicit/deep/file.txt")).unwrap(),
        "deep"
    );
    assert_eq!(names(&env.path("with space")), set(&["名字 +%#?&=.txt"]));
    assert_eq!(
        std::fs::read_to_string(env.path("with space/名字 +%#?&=.txt")).unwrap(),
        "odd"
    );
    // key_and_prefix_same_name_directory_wins
    assert!(env.path("both").is_dir());
    assert_eq!(names(&env.path("both")), set(&["child"]));
    // Names over 255 bytes and empty segments cannot be file names: hidden, not a crash.
    // (The client refuses to send `.`/`..` segments at all, so they are covered by unit tests.)
    assert!(names(&env.path("long")).is_empty());
    assert!(names(&env.path("empty")).is_empty());
    let meta = std::fs::metadata(env.path("top.txt")).unwrap();
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(meta.permissions().mode() & 0o7777, 0o644);
    assert_eq!(meta.len(), 3);
}

/// `ls -l` of a directory with 2500 objects written by another tool costs ceil(2500/1000) = 3
/// LIST requests and one HEAD per object (what a listing cannot tell: type, mode, owner); the
/// next `ls -l` costs no HEAD.
#[test]
fn ls_l_of_2500_entries_costs_three_lists_and_heads_only_once() {
    let mut env = TestEnv::start();
    let items: Vec<(String, Bytes)> = (0..2500)
        .map(|i| {
            (
                format!("big/file-{i:04}.dat"),
                Bytes::from(vec![b'x'; i % 10]),
            )
        })
        .collect();
    env.put_many(items);
    env.mount(&[]);
    // Look the directory itself up first; the assertion is about listing it.
    assert!(env.path("big").is_dir());
    let before = env.requests();
    let out = Command::new("ls")
        .arg("-l")
        .arg(env.path("big"))
        .output()
        .expect("run ls");
    assert!(
        out.status.success(),
        "ls failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = env.requests();
    let listing = String::from_utf8_lossy(&out.stdout);
    assert_eq!(listing.lines().filter(|l| l.starts_with('-')).count(), 2500);
    assert!(listing.contains(" 7 ") && listing.contains("file-0007.dat"));
    assert_eq!(after.list - before.list, 3, "LIST requests for ls -l");
    assert_eq!(
        after.head_object - before.head_object,
        2500,
        "HEAD requests for a cold ls -l"
    );
    assert_eq!(after.total - before.total, 2503, "no other request either");

    // Lookups inside the freshly listed directory, hits and misses, cost nothing.
    let before = env.requests();
    assert_eq!(
        std::fs::metadata(env.path("big/file-0009.dat"))
            .unwrap()
            .len(),
        9
    );
    assert!(std::fs::metadata(env.path("big/not-there")).is_err());
    assert_eq!(env.requests().total, before.total);
}

/// A repeated negative lookup is answered from the negative cache: no second request.
#[test]
fn repeated_negative_lookup_costs_no_request() {
    let mut env = TestEnv::start();
    env.put("present", "x");
    env.mount(&[]);
    let missing = env.path("missing-file");
    let err = std::fs::metadata(&missing).unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::NotFound);
    let after_first = env.requests().total;
    for _ in 0..5 {
        assert_eq!(
            std::fs::metadata(&missing).unwrap_err().kind(),
            std::io::ErrorKind::NotFound
        );
    }
    assert_eq!(env.requests().total, after_first);
}
