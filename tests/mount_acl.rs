//! Every rewrite keeps the object's ACL and storage class (issue 9, item 3), through a real
//! mount over cos-local, checked through the COS client (GET `?acl`, HEAD) and with anonymous
//! (unsigned) GETs.
//!
//! COS resets the ACL of what PUT Object, Initiate Multipart Upload and PUT Copy write unless
//! the request sends it again, and cos-local does the same: without care, `chmod 600` of a
//! `private` object in a `public-read` bucket would make it world-readable.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;

use bytes::Bytes;
use common::{pattern, TestEnv, BUCKET};
use cosmount::cos::acl::{AclHeaders, AclUpdate, GrantHeaders, Grantee, ALL_USERS_URI};
use cosmount::cos::store::{AclInfo, PutOptions};
use cosmount::cos::ObjectStore;

const IA: &str = "STANDARD_IA";
const READER: &str = "qcs::cam::uin/100000000002:uin/100000000002";

/// Run a command line; panics with its stderr unless it succeeds.
fn run(cmd: &str, args: &[&str]) {
    let out = Command::new(cmd).args(args).output().expect("spawn");
    assert!(
        out.status.success(),
        "{cmd} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn sh(script: &str, dir: &Path) {
    let out = Command::new("sh")
        .arg("-c")
        .arg(script)
        .current_dir(dir)
        .output()
        .expect("spawn sh");
    assert!(
        out.status.success(),
        "sh -c {script:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Put `key` through the client with this ACL and storage class.
fn put_with(env: &TestEnv, key: &str, body: impl Into<Bytes>, acl: Option<AclHeaders>) {
    let opts = PutOptions {
        storage_class: Some(IA.into()),
        acl,
        ..Default::default()
    };
    env.put_with_options(key, body, &opts);
}

fn acl_of(env: &TestEnv, key: &str) -> AclInfo {
    env.rt
        .block_on(env.client().get_acl_with_canned(Some(key)))
        .unwrap_or_else(|e| panic!("GET ?acl of {key}: {e}"))
}

fn is_public(acl: &AclInfo) -> bool {
    acl.policy.grants.iter().any(|g| {
        g.permission == "READ"
            && g.grantee
                == Grantee::Group {
                    uri: ALL_USERS_URI.into(),
                }
    })
}

/// `key` still has the `public-read` ACL and the STANDARD_IA class it was uploaded with.
fn assert_public_read_ia(env: &TestEnv, key: &str, after: &str) {
    let acl = acl_of(env, key);
    assert_eq!(
        acl.canned.as_deref(),
        Some("public-read"),
        "ACL of {key} after {after}: {acl:?}"
    );
    assert!(is_public(&acl), "{key} after {after}: {acl:?}");
    let info = env
        .rt
        .block_on(ObjectStore::head_object(&env.client(), key))
        .unwrap_or_else(|e| panic!("HEAD {key}: {e}"));
    assert_eq!(
        info.storage_class, IA,
        "storage class of {key} after {after}"
    );
}

/// An unsigned GET of `key`, as anyone on the internet could send it: the status.
fn anonymous_get(env: &TestEnv, key: &str) -> (u16, Vec<u8>) {
    let url = format!("{}/{BUCKET}/{key}", env.endpoint);
    env.rt.block_on(async {
        // reqwest is built without a TLS provider: cosmount installs ring.
        cosmount::cos::client::install_crypto_provider();
        let resp = reqwest::get(&url).await.expect("anonymous GET");
        let status = resp.status().as_u16();
        (status, resp.bytes().await.unwrap_or_default().to_vec())
    })
}

/// `setfattr -n user.x -v 1 PATH`, as the raw syscall (the attr tools may be missing).
fn set_user_x(p: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(p.as_os_str().as_bytes()).unwrap();
    let name = c"user.x";
    let value = b"1";
    // SAFETY: valid C strings and a value slice.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            0,
        )
    };
    assert_eq!(
        rc,
        0,
        "setxattr user.x: {}",
        std::io::Error::last_os_error()
    );
}

/// Requests in cos-local's access log so far: (GET `?acl` of objects, all of them).
fn acl_gets(env: &TestEnv) -> (usize, usize) {
    let log = std::fs::read_to_string(&env.access_log).unwrap_or_default();
    let gets = log
        .lines()
        .filter(|l| {
            let mut f = l.split(' ');
            let (_, method, target) = (f.next(), f.next(), f.next().unwrap_or(""));
            method == Some("GET") && (target.ends_with("?acl") || target.contains("?acl&"))
        })
        .count();
    (gets, log.lines().count())
}

fn mode_of(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o7777
}

#[test]
fn every_rewrite_keeps_a_public_read_acl_and_the_storage_class() {
    let mut env = TestEnv::start();
    let public = || Some(AclHeaders::canned("public-read"));
    for name in [
        "chmod", "chown", "touch", "mv", "cp", "echo", "truncate", "append", "setfattr", "big",
    ] {
        put_with(
            &env,
            &format!("{name}.txt"),
            format!("{name} body\n"),
            public(),
        );
    }
    put_with(&env, "tree/inner.txt", "inner\n", public());
    let marker = PutOptions {
        acl: public(),
        ..Default::default()
    };
    env.rt
        .block_on(ObjectStore::put_object(
            &env.client(),
            "tree/",
            Bytes::new(),
            &marker,
        ))
        .unwrap();
    env.mount(&[]);
    let p = |name: &str| env.path(name);
    let mnt = env.mnt.clone();

    // Metadata-only rewrites: copy onto itself with Replaced.
    run("chmod", &["600", p("chmod.txt").to_str().unwrap()]);
    assert_public_read_ia(&env, "chmod.txt", "chmod 600");
    assert_eq!(mode_of(&p("chmod.txt")), 0o600);

    run("chown", &["1234:5678", p("chown.txt").to_str().unwrap()]);
    assert_public_read_ia(&env, "chown.txt", "chown");
    assert_eq!(std::fs::metadata(p("chown.txt")).unwrap().uid(), 1234);

    run(
        "touch",
        &[
            "-d",
            "2020-01-02 03:04:05 UTC",
            p("touch.txt").to_str().unwrap(),
        ],
    );
    assert_public_read_ia(&env, "touch.txt", "touch -d");

    set_user_x(&p("setfattr.txt"));
    assert_public_read_ia(&env, "setfattr.txt", "setfattr user.x");

    // Rename: PUT Copy to the new key, then DELETE; a directory rename copies each key.
    run(
        "mv",
        &[
            p("mv.txt").to_str().unwrap(),
            p("moved.txt").to_str().unwrap(),
        ],
    );
    assert_public_read_ia(&env, "moved.txt", "mv");
    assert_eq!(std::fs::read(p("moved.txt")).unwrap(), b"mv body\n");
    run(
        "mv",
        &[p("tree").to_str().unwrap(), p("tree2").to_str().unwrap()],
    );
    assert_eq!(
        acl_of(&env, "tree2/inner.txt").canned.as_deref(),
        Some("public-read")
    );
    assert_public_read_ia(&env, "tree2/inner.txt", "mv of its directory");
    assert_eq!(
        acl_of(&env, "tree2/").canned.as_deref(),
        Some("public-read"),
        "the directory marker"
    );

    // Data rewrites: PUT (or Initiate) of an object that existed when it was opened.
    std::fs::write(mnt.join("source.txt"), b"new content\n").unwrap();
    run(
        "cp",
        &[
            p("source.txt").to_str().unwrap(),
            p("cp.txt").to_str().unwrap(),
        ],
    );
    assert_public_read_ia(&env, "cp.txt", "cp over it");
    assert_eq!(std::fs::read(p("cp.txt")).unwrap(), b"new content\n");

    sh("echo replaced > echo.txt", &mnt);
    assert_public_read_ia(&env, "echo.txt", "echo >");
    assert_eq!(std::fs::read(p("echo.txt")).unwrap(), b"replaced\n");

    run(
        "truncate",
        &["-s", "3", p("truncate.txt").to_str().unwrap()],
    );
    assert_public_read_ia(&env, "truncate.txt", "truncate -s 3");
    assert_eq!(std::fs::read(p("truncate.txt")).unwrap(), b"tru");

    sh("echo more >> append.txt", &mnt);
    assert_public_read_ia(&env, "append.txt", "append (>>)");
    assert_eq!(
        std::fs::read(p("append.txt")).unwrap(),
        b"append body\nmore\n"
    );

    // Over one part (8 MiB): a multipart upload, whose Initiate carries the ACL.
    let big = pattern(9 << 20, 9);
    std::fs::write(mnt.join("big.src"), &big).unwrap();
    run(
        "cp",
        &[
            p("big.src").to_str().unwrap(),
            p("big.txt").to_str().unwrap(),
        ],
    );
    assert_public_read_ia(&env, "big.txt", "cp of 9 MiB over it (multipart)");
    assert!(std::fs::read(p("big.txt")).unwrap() == big);

    // And every public-read object is still readable by anyone.
    for key in ["chmod.txt", "moved.txt", "echo.txt", "big.txt"] {
        assert_eq!(anonymous_get(&env, key).0, 200, "{key}");
    }
    env.unmount();
}

#[test]
fn explicit_grants_survive_chmod_rename_and_overwrite() {
    let mut env = TestEnv::start();
    let grants = AclHeaders {
        canned: None,
        grants: GrantHeaders {
            read: Some(format!("id=\"{READER}\"")),
            ..Default::default()
        },
    };
    for key in ["g-chmod.txt", "g-mv.txt", "g-echo.txt"] {
        put_with(&env, key, "granted\n", Some(grants.clone()));
    }
    env.mount(&[]);
    let mnt = env.mnt.clone();
    let reader_can_read = |acl: &AclInfo| {
        acl.policy.grants.iter().any(|g| {
            g.permission == "READ"
                && matches!(&g.grantee, Grantee::CanonicalUser { id, .. } if id == READER)
        })
    };

    run("chmod", &["640", mnt.join("g-chmod.txt").to_str().unwrap()]);
    sh("mv g-mv.txt g-moved.txt && echo new > g-echo.txt", &mnt);
    for key in ["g-chmod.txt", "g-moved.txt", "g-echo.txt"] {
        let acl = acl_of(&env, key);
        assert!(reader_can_read(&acl), "{key}: {acl:?}");
        assert!(!is_public(&acl), "{key}: {acl:?}");
    }
    env.unmount();
}

#[test]
fn a_private_object_in_a_public_bucket_stays_private() {
    let mut env = TestEnv::start();
    env.rt
        .block_on(
            env.client()
                .put_bucket_acl(&AclUpdate::canned("public-read")),
        )
        .unwrap();
    put_with(
        &env,
        "secret.txt",
        "top secret\n",
        Some(AclHeaders::canned("private")),
    );
    put_with(&env, "open.txt", "for everyone\n", None);
    assert_eq!(anonymous_get(&env, "secret.txt").0, 403, "before");
    assert_eq!(anonymous_get(&env, "open.txt").0, 200, "before");

    env.mount(&[]);
    let secret = env.path("secret.txt");
    std::fs::metadata(&secret).unwrap();
    let (acl_before, total_before) = acl_gets(&env);
    run("chmod", &["600", secret.to_str().unwrap()]);
    let (acl_after, total_after) = acl_gets(&env);
    // The price of keeping the ACL: one GET ?acl per rewrite.
    assert_eq!(acl_after - acl_before, 1, "GET ?acl for one chmod");
    eprintln!("chmod: {} requests", total_after - total_before);
    assert_eq!(anonymous_get(&env, "secret.txt").0, 403, "after chmod 600");
    assert_eq!(mode_of(&secret), 0o600);
    assert_eq!(
        acl_of(&env, "secret.txt").canned.as_deref(),
        Some("private")
    );

    let moved = env.path("secret2.txt");
    let (acl_before, total_before) = acl_gets(&env);
    run("mv", &[secret.to_str().unwrap(), moved.to_str().unwrap()]);
    let (acl_after, total_after) = acl_gets(&env);
    assert_eq!(acl_after - acl_before, 1, "GET ?acl for one mv");
    eprintln!("mv: {} requests", total_after - total_before);
    let (status, body) = anonymous_get(&env, "secret2.txt");
    assert_eq!(status, 403, "after mv: {}", String::from_utf8_lossy(&body));
    assert_eq!(std::fs::read(&moved).unwrap(), b"top secret\n");
    assert_eq!(mode_of(&moved), 0o600);

    let (acl_before, total_before) = acl_gets(&env);
    sh("echo still secret > secret2.txt", &env.mnt.clone());
    let (acl_after, total_after) = acl_gets(&env);
    assert_eq!(acl_after - acl_before, 1, "GET ?acl for one overwrite");
    eprintln!("overwrite: {} requests", total_after - total_before);
    assert_eq!(anonymous_get(&env, "secret2.txt").0, 403, "after overwrite");
    assert_eq!(std::fs::read(&moved).unwrap(), b"still secret\n");

    // A `default` object (inheriting the public bucket) is left as it was: still public,
    // and no ACL is sent for it.
    run("chmod", &["644", env.path("open.txt").to_str().unwrap()]);
    let (status, body) = anonymous_get(&env, "open.txt");
    assert_eq!((status, body.as_slice()), (200, &b"for everyone\n"[..]));
    assert_eq!(acl_of(&env, "open.txt").canned.as_deref(), Some("default"));
    env.unmount();
}
