//! Extended attributes through a real mount over cos-local, checked with getfattr/setfattr (or
//! the raw syscalls, where the errno matters) and against the object through the COS client:
//! `x-cos-meta-*`, `x-cos-storage-class`, the ACL, ETag and CRC-64.

mod common;

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::process::Command;

use common::{pattern, TestEnv};
use cosmount::cos::acl::Grantee;
use cosmount::cos::store::ObjectInfo;
use cosmount::cos::ObjectStore;

const ALL_USERS: &str = "http://cam.qcloud.com/groups/global/AllUsers";

fn c_path(p: &Path) -> CString {
    CString::new(p.as_os_str().as_bytes()).unwrap()
}

/// getxattr(2) with a buffer of `size` bytes: the value, or the errno.
fn getxattr(p: &Path, name: &str, size: usize) -> Result<Vec<u8>, i32> {
    let (path, name) = (c_path(p), CString::new(name).unwrap());
    let mut buf = vec![0u8; size];
    // SAFETY: valid C strings and a buffer of `size` bytes.
    let n = unsafe {
        libc::getxattr(
            path.as_ptr(),
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            buf.len(),
        )
    };
    if n < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    buf.truncate(n as usize);
    Ok(buf)
}

/// The size-0 probe: the value's length.
fn xattr_len(p: &Path, name: &str) -> Result<usize, i32> {
    let (path, name) = (c_path(p), CString::new(name).unwrap());
    // SAFETY: a null buffer of size 0 asks for the length only.
    let n = unsafe { libc::getxattr(path.as_ptr(), name.as_ptr(), std::ptr::null_mut(), 0) };
    if n < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(n as usize)
}

fn setxattr(p: &Path, name: &str, value: &[u8], flags: i32) -> Result<(), i32> {
    let (path, name) = (c_path(p), CString::new(name).unwrap());
    // SAFETY: valid C strings and a value slice.
    let rc = unsafe {
        libc::setxattr(
            path.as_ptr(),
            name.as_ptr(),
            value.as_ptr().cast(),
            value.len(),
            flags,
        )
    };
    if rc < 0 {
        return Err(std::io::Error::last_os_error().raw_os_error().unwrap_or(0));
    }
    Ok(())
}

fn listxattr(p: &Path) -> Vec<String> {
    let path = c_path(p);
    let mut buf = vec![0u8; 64 * 1024];
    // SAFETY: valid path and buffer.
    let n = unsafe { libc::listxattr(path.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    assert!(n >= 0, "listxattr: {}", std::io::Error::last_os_error());
    buf.truncate(n as usize);
    buf.split(|b| *b == 0)
        .filter(|s| !s.is_empty())
        .map(|s| String::from_utf8_lossy(s).into_owned())
        .collect()
}

fn setfattr(args: &[&str], file: &Path) {
    let out = Command::new("setfattr")
        .args(args)
        .arg(file)
        .output()
        .expect("setfattr (apt-get install attr)");
    assert!(
        out.status.success(),
        "setfattr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// `getfattr --only-values -n NAME FILE`: the raw value bytes.
fn getfattr(name: &str, file: &Path) -> Vec<u8> {
    let out = Command::new("getfattr")
        .args(["--only-values", "--absolute-names", "-n", name])
        .arg(file)
        .output()
        .expect("getfattr (apt-get install attr)");
    assert!(
        out.status.success(),
        "getfattr -n {name}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

fn head(env: &TestEnv, key: &str) -> ObjectInfo {
    env.rt
        .block_on(ObjectStore::head_object(&env.client(), key))
        .unwrap_or_else(|e| panic!("HEAD {key}: {e}"))
}

fn put_with_meta(env: &TestEnv, key: &str, body: Vec<u8>, meta: &[(&str, &str)]) {
    let meta: Vec<(&str, String)> = meta.iter().map(|(k, v)| (*k, v.to_string())).collect();
    env.put_with_meta(key, body, &meta);
}

#[test]
fn user_attributes_are_x_cos_meta_and_round_trip() {
    let mut env = TestEnv::start();
    let body = pattern(3000, 7);
    put_with_meta(
        &env,
        "dir/f.txt",
        body.clone(),
        &[("mode", "33188"), ("from-sdk", "yes")],
    );
    env.mount(&[]);
    let f = env.path("dir/f.txt");

    setfattr(&["-n", "user.color", "-v", "blue"], &f);
    assert_eq!(getfattr("user.color", &f), b"blue");
    assert_eq!(head(&env, "dir/f.txt").meta["color"], "blue");

    // Metadata set by another client shows up; cosmount's own keys do not.
    assert_eq!(getfattr("user.from-sdk", &f), b"yes");
    let names = listxattr(&f);
    for want in [
        "user.color",
        "user.from-sdk",
        "user.cos.acl",
        "user.cos.storage_class",
    ] {
        assert!(names.contains(&want.to_string()), "{want} not in {names:?}");
    }
    assert!(!names.iter().any(|n| n == "user.mode"), "{names:?}");
    assert_eq!(getxattr(&f, "user.mode", 100), Err(libc::ENODATA));

    // Not header-safe: stored base64-encoded, read back byte for byte.
    let binary = "颜色\n\0\u{1}end".as_bytes();
    setxattr(&f, "user.label", binary, 0).unwrap();
    assert_eq!(getxattr(&f, "user.label", 100).unwrap(), binary);
    let stored = head(&env, "dir/f.txt").meta["label"].clone();
    assert!(stored.starts_with("base64:"), "{stored}");

    // Dotted names (xdg) are fine.
    setfattr(&["-n", "user.xdg.origin.url", "-v", "https://x/y"], &f);
    assert_eq!(
        head(&env, "dir/f.txt").meta["xdg.origin.url"],
        "https://x/y"
    );

    // Remove.
    setfattr(&["-x", "user.color"], &f);
    assert!(!head(&env, "dir/f.txt").meta.contains_key("color"));
    assert_eq!(getxattr(&f, "user.color", 100), Err(libc::ENODATA));
    // Removing what is not there.
    let out = Command::new("setfattr")
        .args(["-x", "user.color"])
        .arg(&f)
        .output()
        .unwrap();
    assert!(!out.status.success());

    // XATTR_CREATE / XATTR_REPLACE.
    assert_eq!(
        setxattr(&f, "user.label", b"x", libc::XATTR_CREATE),
        Err(libc::EEXIST)
    );
    assert_eq!(
        setxattr(&f, "user.nope", b"x", libc::XATTR_REPLACE),
        Err(libc::ENODATA)
    );

    // The data and cosmount's own metadata are untouched by all this.
    assert_eq!(std::fs::read(&f).unwrap(), body);
    let info = head(&env, "dir/f.txt");
    assert_eq!(info.meta["mode"], "33188");
    assert_eq!(info.meta["from-sdk"], "yes");
}

#[test]
fn storage_class_is_read_and_set_by_copy_onto_itself() {
    let mut env = TestEnv::start();
    let body = pattern(5000, 3);
    put_with_meta(&env, "cold.bin", body.clone(), &[("keep", "me")]);
    env.mount(&[]);
    let f = env.path("cold.bin");

    assert_eq!(getfattr("user.cos.storage_class", &f), b"STANDARD");
    setfattr(&["-n", "user.cos.storage_class", "-v", "STANDARD_IA"], &f);
    let info = head(&env, "cold.bin");
    assert_eq!(info.storage_class, "STANDARD_IA");
    assert_eq!(info.meta["keep"], "me", "user metadata survives the copy");
    assert_eq!(getfattr("user.cos.storage_class", &f), b"STANDARD_IA");

    // Lower case is accepted, an unknown class is EINVAL and changes nothing.
    setxattr(&f, "user.cos.storage_class", b"archive", 0).unwrap();
    assert_eq!(head(&env, "cold.bin").storage_class, "ARCHIVE");
    setxattr(&f, "user.cos.storage_class", b"INTELLIGENT_TIERING", 0).unwrap();
    assert_eq!(
        setxattr(&f, "user.cos.storage_class", b"GLACIER", 0),
        Err(libc::EINVAL)
    );
    assert_eq!(head(&env, "cold.bin").storage_class, "INTELLIGENT_TIERING");

    // Setting a user attribute keeps the class (COS would reset it to STANDARD otherwise).
    setfattr(&["-n", "user.more", "-v", "1"], &f);
    assert_eq!(head(&env, "cold.bin").storage_class, "INTELLIGENT_TIERING");
    assert_eq!(std::fs::read(&f).unwrap(), body);

    // Removing it (as rsync -X does for what its source lacks) means back to STANDARD.
    setfattr(&["-x", "user.cos.storage_class"], &f);
    assert_eq!(head(&env, "cold.bin").storage_class, "STANDARD");
    assert_eq!(head(&env, "cold.bin").meta["more"], "1");
}

#[test]
fn acl_is_shown_canned_or_as_grants_and_set_through_the_acl_api() {
    let mut env = TestEnv::start();
    env.put("doc.txt", "hello");
    env.mount(&[]);
    let f = env.path("doc.txt");
    let client = env.client();

    assert_eq!(getfattr("user.cos.acl", &f), b"default");
    setfattr(&["-n", "user.cos.acl", "-v", "public-read"], &f);
    let acl = env.rt.block_on(client.get_object_acl("doc.txt")).unwrap();
    assert!(
        acl.grants.iter().any(|g| g.permission == "READ"
            && g.grantee
                == Grantee::Group {
                    uri: ALL_USERS.into()
                }),
        "{acl:?}"
    );
    assert_eq!(getfattr("user.cos.acl", &f), b"public-read");

    // Changing user metadata (a copy onto itself) keeps the ACL.
    setfattr(&["-n", "user.tag", "-v", "v1"], &f);
    assert_eq!(getfattr("user.cos.acl", &f), b"public-read");

    // Explicit grants: shown one permission per line, accepted back in the same form.
    let grants = "grant-read: id=\"qcs::cam::uin/100000000002:uin/100000000002\"\n";
    setxattr(&f, "user.cos.acl", grants.as_bytes(), 0).unwrap();
    let acl = env.rt.block_on(client.get_object_acl("doc.txt")).unwrap();
    assert!(
        acl.grants.iter().any(|g| g.permission == "READ"
            && matches!(&g.grantee, Grantee::CanonicalUser { id, .. }
                if id == "qcs::cam::uin/100000000002:uin/100000000002")),
        "{acl:?}"
    );
    let shown = String::from_utf8(getfattr("user.cos.acl", &f)).unwrap();
    assert!(shown.contains(grants.trim_end()), "{shown}");
    // ... and survive a metadata update too.
    setfattr(&["-n", "user.tag", "-v", "v2"], &f);
    let shown_after = String::from_utf8(getfattr("user.cos.acl", &f)).unwrap();
    assert_eq!(shown_after, shown);

    assert_eq!(
        setxattr(&f, "user.cos.acl", b"everyone-may-write", 0),
        Err(libc::EINVAL)
    );
    // Removing the ACL means `default` again.
    setfattr(&["-x", "user.cos.acl"], &f);
    assert_eq!(getfattr("user.cos.acl", &f), b"default");

    // The mount root is the bucket.
    let root = env.mnt.clone();
    assert_eq!(getfattr("user.cos.acl", &root), b"private");
    setfattr(&["-n", "user.cos.acl", "-v", "public-read"], &root);
    let bucket_acl = env.rt.block_on(client.get_bucket_acl()).unwrap();
    assert!(
        bucket_acl.grants.iter().any(|g| g.permission == "READ"
            && g.grantee
                == Grantee::Group {
                    uri: ALL_USERS.into()
                }),
        "{bucket_acl:?}"
    );
    assert_eq!(getfattr("user.cos.acl", &root), b"public-read");
}

#[test]
fn read_only_attributes_and_errno_rules() {
    let mut env = TestEnv::start();
    env.put("a.txt", "some bytes");
    env.mount(&[]);
    let f = env.path("a.txt");
    let info = head(&env, "a.txt");

    assert_eq!(getfattr("user.cos.etag", &f), info.etag.as_bytes());
    assert_eq!(
        getfattr("user.cos.crc64", &f),
        info.crc64
            .expect("cos-local sends a CRC-64")
            .to_string()
            .as_bytes()
    );
    let region = getfattr("user.cos.region", &env.mnt);
    assert!(!region.is_empty());
    // Readable by name, not listed (copies must not try to set them).
    let names = listxattr(&f);
    assert!(!names.iter().any(|n| n == "user.cos.etag"), "{names:?}");

    for ro in ["user.cos.etag", "user.cos.crc64"] {
        assert_eq!(setxattr(&f, ro, b"x", 0), Err(libc::EPERM), "{ro}");
    }
    assert_eq!(
        setxattr(&env.mnt, "user.cos.region", b"x", 0),
        Err(libc::EPERM)
    );
    assert_eq!(setxattr(&f, "user.mode", b"1", 0), Err(libc::EPERM));
    assert_eq!(setxattr(&f, "user.cos.other", b"1", 0), Err(libc::EINVAL));
    assert_eq!(setxattr(&f, "user.Upper", b"1", 0), Err(libc::EINVAL));
    assert_eq!(setxattr(&f, "user.snake_case", b"1", 0), Err(libc::EINVAL));
    assert_eq!(setxattr(&f, "user.ünï", b"1", 0), Err(libc::EINVAL));
    assert_eq!(setxattr(&f, "trusted.x", b"1", 0), Err(libc::ENOTSUP));
    assert_eq!(getxattr(&f, "trusted.x", 10), Err(libc::ENOTSUP));
    assert_eq!(getxattr(&f, "security.selinux", 10), Err(libc::ENODATA));
    assert_eq!(getxattr(&f, "user.missing", 10), Err(libc::ENODATA));

    // Size probe and a buffer too small.
    setxattr(&f, "user.k", b"0123456789", 0).unwrap();
    assert_eq!(xattr_len(&f, "user.k"), Ok(10));
    assert_eq!(getxattr(&f, "user.k", 4), Err(libc::ERANGE));
    assert_eq!(getxattr(&f, "user.k", 10).unwrap(), b"0123456789");

    // COS keeps at most 2 KB of user metadata per object.
    let big = vec![b'v'; 2100];
    assert_eq!(setxattr(&f, "user.big", &big, 0), Err(libc::E2BIG));
    assert!(!head(&env, "a.txt").meta.contains_key("big"));
    setxattr(&f, "user.fits", &vec![b'v'; 1500], 0).unwrap();
    assert_eq!(
        setxattr(&f, "user.more", &vec![b'v'; 600], 0),
        Err(libc::E2BIG)
    );
    assert_eq!(std::fs::read(&f).unwrap(), b"some bytes");
}

#[test]
fn attributes_survive_a_remount() {
    let mut env = TestEnv::start();
    env.put("keep.txt", "x");
    env.mount(&[]);
    setfattr(&["-n", "user.owner", "-v", "team-a"], &env.path("keep.txt"));
    setfattr(
        &["-n", "user.cos.storage_class", "-v", "STANDARD_IA"],
        &env.path("keep.txt"),
    );
    env.unmount();
    env.mount(&[]);
    let f = env.path("keep.txt");
    assert_eq!(getfattr("user.owner", &f), b"team-a");
    assert_eq!(getfattr("user.cos.storage_class", &f), b"STANDARD_IA");
    // getfattr -d dumps what listxattr lists.
    let out = Command::new("getfattr")
        .args(["-d", "--absolute-names"])
        .arg(&f)
        .output()
        .unwrap();
    let dump = String::from_utf8_lossy(&out.stdout);
    assert!(dump.contains("user.owner=\"team-a\""), "{dump}");
}

#[test]
fn read_only_mount_refuses_changes_but_reads() {
    let mut env = TestEnv::start();
    put_with_meta(&env, "r.txt", b"r".to_vec(), &[("a", "b")]);
    env.mount(&["-o", "ro"]);
    let f = env.path("r.txt");
    assert_eq!(getfattr("user.a", &f), b"b");
    assert_eq!(setxattr(&f, "user.a", b"c", 0), Err(libc::EROFS));
}

/// `cp --preserve=xattr` and `rsync -X` set attributes on the new file before closing it: they
/// must go up with the upload.
#[test]
fn cp_and_rsync_carry_user_attributes_into_new_objects() {
    let mut env = TestEnv::start();
    env.mount(&[]);
    let local = env.mnt.parent().unwrap().join("local");
    std::fs::create_dir_all(&local).unwrap();
    let src = local.join("src.txt");
    std::fs::write(&src, "payload").unwrap();
    setfattr(&["-n", "user.project", "-v", "apollo"], &src);
    setfattr(&["-n", "user.cos.storage_class", "-v", "STANDARD_IA"], &src);

    let out = Command::new("cp")
        .arg("--preserve=xattr")
        .arg(&src)
        .arg(env.path("copied.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "cp: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let info = head(&env, "copied.txt");
    assert_eq!(info.meta["project"], "apollo");
    assert_eq!(info.storage_class, "STANDARD_IA");
    assert_eq!(std::fs::read(env.path("copied.txt")).unwrap(), b"payload");

    let out = Command::new("rsync")
        .arg("-X")
        .arg(&src)
        .arg(env.path("synced.txt"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "rsync: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(head(&env, "synced.txt").meta["project"], "apollo");

    // And back out of the mount onto local disk.
    let back = local.join("back.txt");
    let out = Command::new("cp")
        .arg("--preserve=xattr")
        .arg(env.path("copied.txt"))
        .arg(&back)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(getfattr("user.project", &back), b"apollo");
}

#[test]
fn storage_class_set_on_an_open_file_applies_to_its_upload() {
    use std::io::Write;
    use std::os::fd::AsRawFd;
    let mut env = TestEnv::start();
    env.mount(&[]);
    let path = env.path("written.bin");
    let data = pattern(3 << 20, 5);
    let mut f = std::fs::File::create(&path).unwrap();
    f.write_all(&data[..1 << 20]).unwrap();
    let name = CString::new("user.cos.storage_class").unwrap();
    // SAFETY: an open fd, a C string and a value slice.
    let rc = unsafe {
        libc::fsetxattr(
            f.as_raw_fd(),
            name.as_ptr(),
            b"ARCHIVE".as_ptr().cast(),
            7,
            0,
        )
    };
    assert_eq!(rc, 0, "{}", std::io::Error::last_os_error());
    assert_eq!(getfattr("user.cos.storage_class", &path), b"ARCHIVE");
    f.write_all(&data[1 << 20..]).unwrap();
    drop(f);
    let info = head(&env, "written.bin");
    assert_eq!(info.storage_class, "ARCHIVE");
    assert_eq!(info.size, data.len() as u64);
}

#[test]
fn attributes_follow_a_rename_and_live_on_directory_markers() {
    let mut env = TestEnv::start();
    put_with_meta(&env, "old.txt", b"data".to_vec(), &[("tag", "x")]);
    env.mount(&[]);
    setfattr(
        &["-n", "user.cos.storage_class", "-v", "STANDARD_IA"],
        &env.path("old.txt"),
    );
    std::fs::rename(env.path("old.txt"), env.path("new.txt")).unwrap();
    let info = head(&env, "new.txt");
    assert_eq!(info.meta["tag"], "x");
    assert_eq!(info.storage_class, "STANDARD_IA");
    assert_eq!(getfattr("user.tag", &env.path("new.txt")), b"x");

    std::fs::create_dir(env.path("d")).unwrap();
    setfattr(&["-n", "user.kind", "-v", "folder"], &env.path("d"));
    assert_eq!(head(&env, "d/").meta["kind"], "folder");
    assert_eq!(getfattr("user.kind", &env.path("d")), b"folder");
}

/// cosfs and s3fs keep user xattrs in one `x-cos-meta-xattr` blob (URL-encoded JSON of
/// base64 values): cosmount shows them as `user.*` and keeps the blob up to date, so cosfs
/// still sees every attribute after a change through cosmount.
#[test]
fn the_cosfs_xattr_blob_is_read_and_kept_up_to_date() {
    let mut env = TestEnv::start();
    // {"user.Color":"blue"} as cosfs stores it.
    let blob = "%7B%22user.Color%22%3A%22Ymx1ZQ%3D%3D%22%7D";
    env.put_with_meta("f", "data", &[("xattr", blob.to_string())]);
    env.mount(&[]);
    let f = env.path("f");
    assert_eq!(getxattr(&f, "user.Color", 64), Ok(b"blue".to_vec()));
    let list = Command::new("getfattr").arg("-d").arg(&f).output().unwrap();
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(list.contains("user.Color=\"blue\""), "{list}");
    assert!(
        !list.contains("user.xattr"),
        "the blob itself is not an attribute: {list}"
    );

    let ok = Command::new("setfattr")
        .args(["-n", "user.tag", "-v", "new"])
        .arg(&f)
        .status()
        .unwrap();
    assert!(ok.success());
    let info = env
        .rt
        .block_on(ObjectStore::head_object(&env.client(), "f"))
        .unwrap();
    assert!(
        !info.meta.contains_key("tag"),
        "kept in the blob, where cosfs reads it"
    );
    let stored = cosmount::fs::user_meta::decode_blob(&info.meta["xattr"]);
    assert_eq!(
        stored,
        BTreeMap::from([
            ("user.Color".to_string(), b"blue".to_vec()),
            ("user.tag".to_string(), b"new".to_vec()),
        ])
    );
    let ok = Command::new("setfattr")
        .args(["-x", "user.Color"])
        .arg(&f)
        .status()
        .unwrap();
    assert!(ok.success());
    assert_eq!(getxattr(&f, "user.Color", 64), Err(libc::ENODATA));
    assert_eq!(getxattr(&f, "user.tag", 64), Ok(b"new".to_vec()));
    assert_eq!(std::fs::read(&f).unwrap(), b"data");
}
