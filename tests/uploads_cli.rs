//! `cosmount uploads list|abort` against cos-local: incomplete multipart uploads are listed
//! (across pages), and aborted by prefix and age, so their parts stop costing storage.

mod common;

use std::process::Output;

use bytes::Bytes;
use common::{pattern, TestEnv, BUCKET};
use cosmount::cos::store::PutOptions;
use cosmount::cos::ObjectStore;
use futures::stream::{self, StreamExt};

/// Start `n` multipart uploads under `prefix`, each with one part; returns their (key, id).
fn start_uploads(env: &TestEnv, prefix: &str, n: usize) -> Vec<(String, String)> {
    let client = env.client();
    env.rt.block_on(async {
        stream::iter(0..n)
            .map(|i| {
                let c = client.clone();
                let key = format!("{prefix}file-{i:04}.bin");
                async move {
                    let id = ObjectStore::initiate_multipart(&c, &key, &PutOptions::default())
                        .await
                        .unwrap_or_else(|e| panic!("initiate {key}: {e}"));
                    let part = Bytes::from(pattern(1024, i as u64));
                    ObjectStore::upload_part(&c, &key, &id, 1, part)
                        .await
                        .unwrap_or_else(|e| panic!("part of {key}: {e}"));
                    (key, id)
                }
            })
            .buffer_unordered(16)
            .collect()
            .await
    })
}

fn uploads(env: &TestEnv, args: &[&str]) -> Output {
    let mut cmd = std::process::Command::new(common::cosmount_bin());
    cmd.arg("uploads")
        .args(args)
        .args(["--endpoint", &env.endpoint])
        .env("COS_SECRET_ID", common::SECRET_ID)
        .env("COS_SECRET_KEY", common::SECRET_KEY)
        .env_remove("COS_SECURITY_TOKEN");
    cmd.output().expect("run cosmount uploads")
}

fn listed(env: &TestEnv, extra: &[&str]) -> Vec<(String, String)> {
    let mut args = vec!["list", BUCKET];
    args.extend_from_slice(extra);
    let out = uploads(env, &args);
    assert!(
        out.status.success(),
        "list failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut v: Vec<(String, String)> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let f: Vec<&str> = l.split('\t').collect();
            assert_eq!(f.len(), 4, "line {l:?}");
            assert_ne!(f[0], "-", "initiated time missing in {l:?}");
            (f[1].to_string(), f[2].to_string())
        })
        .collect();
    v.sort();
    v
}

#[test]
fn lists_every_upload_across_pages_and_by_prefix() {
    let env = TestEnv::start();
    // More than one page of 1000.
    let mut many = start_uploads(&env, "bulk/", 1003);
    let mut few = start_uploads(&env, "other dir/", 3);
    many.sort();
    few.sort();
    assert_eq!(listed(&env, &["--prefix", "bulk/"]), many);
    assert_eq!(listed(&env, &["--prefix", "other dir/"]), few);
    assert_eq!(listed(&env, &[]).len(), 1006);
}

#[test]
fn abort_respects_age_and_prefix_and_frees_the_uploads() {
    let env = TestEnv::start();
    let doomed = start_uploads(&env, "tmp/", 3);
    let kept = start_uploads(&env, "keep/", 2);

    // Fresh uploads are younger than the default 24 h: nothing happens.
    let out = uploads(&env, &["abort", BUCKET]);
    assert!(out.status.success());
    assert!(
        out.stdout.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert_eq!(listed(&env, &[]).len(), 5);

    // Dry run names them and aborts nothing.
    let out = uploads(
        &env,
        &[
            "abort",
            BUCKET,
            "--older-than",
            "0",
            "--prefix",
            "tmp/",
            "--dry-run",
        ],
    );
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 3);
    assert_eq!(listed(&env, &[]).len(), 5);

    let out = uploads(
        &env,
        &["abort", BUCKET, "--older-than", "0", "--prefix", "tmp/"],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    for (key, id) in &doomed {
        assert!(text.contains(&format!("aborted\t{key}\t{id}")), "{text}");
    }
    let mut kept = kept;
    kept.sort();
    assert_eq!(listed(&env, &[]), kept);

    // The aborted uploads are gone for COS too: another part is NoSuchUpload.
    let (key, id) = &doomed[0];
    let err = env
        .rt
        .block_on(ObjectStore::upload_part(
            &env.client(),
            key,
            id,
            2,
            Bytes::from_static(b"late"),
        ))
        .expect_err("an aborted upload takes no parts");
    assert_eq!(err.status(), Some(404), "{err}");
}

#[test]
fn bad_arguments_and_credentials_fail_clearly() {
    let env = TestEnv::start();
    let out = uploads(&env, &["abort", BUCKET, "--older-than", "1w"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("1w"));

    let out = std::process::Command::new(common::cosmount_bin())
        .args(["uploads", "list", BUCKET, "--endpoint", &env.endpoint])
        .env("COS_SECRET_ID", common::SECRET_ID)
        .env("COS_SECRET_KEY", "wrong-key")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("SignatureDoesNotMatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A writer killed in the middle of a big file leaves its multipart upload behind; the CLI
/// finds it and cleans it up.
#[test]
fn uploads_left_by_a_killed_mount_are_found_and_aborted() {
    use std::io::Write;
    let mut env = TestEnv::start();
    env.mount(&[]);
    std::fs::create_dir(env.path("big")).unwrap();
    let mut f = std::fs::File::create(env.path("big/interrupted.bin")).unwrap();
    // Several parts' worth: the first parts stream up while the file is still open.
    let chunk = pattern(1 << 20, 1);
    for _ in 0..20 {
        f.write_all(&chunk).unwrap();
    }
    f.write_all(&chunk[..1000]).unwrap();
    // Wait (bounded) until the upload exists on the server, then kill the mount outright.
    // Polled in-process: spawning a command would fork this process, and the copy of the
    // open file's descriptor closed at exec makes the kernel send a flush, which would
    // complete the upload.
    let client = env.client();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while std::time::Instant::now() < deadline {
        let page = env
            .rt
            .block_on(client.list_multipart_uploads(&Default::default()))
            .unwrap();
        if !page.uploads.is_empty() {
            break;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let child = env.mount_process().expect("foreground cosmount");
    child.kill().unwrap();
    child.wait().unwrap();
    drop(f);
    env.unmount();

    let left = listed(&env, &[]);
    assert_eq!(
        left.len(),
        1,
        "{left:?}; requests: {}",
        std::fs::read_to_string(&env.access_log).unwrap_or_default()
    );
    assert_eq!(left[0].0, "big/interrupted.bin");
    let out = uploads(&env, &["abort", BUCKET, "--older-than", "0"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(listed(&env, &[]).is_empty());
}
