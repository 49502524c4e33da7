//! Writes through a real mount over cos-local: byte-exact round trips (checked through the
//! mount after a remount and through the COS client), modifications of existing files against
//! a local reference, and a failed upload that must fail close() and keep the spool.

mod common;

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::unix::fs::FileExt;
use std::path::Path;

use common::{pattern, TestEnv};
use cosmount::cos::crc64;
use cosmount::cos::ObjectStore;

/// One modification, applied to a file given by path.
type Step = Box<dyn Fn(&Path)>;

/// A spool directory of the test's own, so the test can look at what is kept there.
fn mount_with_spool(env: &mut TestEnv, spool: &Path) {
    let opt = format!("cache_dir={}", spool.display());
    env.mount(&["-o", &opt]);
}

fn write_file(path: &Path, data: &[u8], chunk: usize) {
    let mut f = File::create(path).unwrap();
    for piece in data.chunks(chunk.max(1)) {
        f.write_all(piece).unwrap();
    }
    // close() returns the upload's result: surface it.
    f.sync_all().unwrap();
}

/// Size and CRC-64 of the object as COS stores it.
fn object_crc(env: &TestEnv, key: &str) -> (u64, Option<u64>) {
    let client = env.client();
    let info = env
        .rt
        .block_on(ObjectStore::head_object(&client, key))
        .unwrap_or_else(|e| panic!("HEAD {key}: {e}"));
    (info.size, info.crc64)
}

fn object_bytes(env: &TestEnv, key: &str, len: u64) -> Vec<u8> {
    if len == 0 {
        return Vec::new();
    }
    let client = env.client();
    env.rt
        .block_on(ObjectStore::get_range(&client, key, 0, len, None))
        .unwrap_or_else(|e| panic!("GET {key}: {e}"))
        .data
        .to_vec()
}

fn read_crc(path: &Path) -> (u64, u64) {
    let mut f = File::open(path).unwrap();
    let mut crc = crc64::Crc64::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut len = 0u64;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        crc.update(&buf[..n]);
        len += n as u64;
    }
    (len, crc.finish())
}

/// 0 B, 1 B, 5 MiB and 8 MiB ± 1 (the single-PUT / multipart boundary), then 100 MiB and
/// 300 MiB streamed as multipart uploads; each checked through the COS client (size, CRC-64,
/// and bytes for the small ones) and through the mount after a remount.
#[test]
fn round_trips_are_byte_exact_at_every_size_boundary() {
    const MIB: usize = 1 << 20;
    let sizes = [
        0,
        1,
        5 * MIB,
        8 * MIB - 1,
        8 * MIB,
        8 * MIB + 1,
        100 * MIB,
        300 * MIB,
    ];
    let spool = tempfile::tempdir().unwrap();
    let mut env = TestEnv::start();
    mount_with_spool(&mut env, spool.path());
    std::fs::create_dir(env.path("rt")).unwrap();
    let mut expected = Vec::new();
    for (i, len) in sizes.iter().enumerate() {
        let name = format!("rt/size-{len}");
        let data = pattern(*len, i as u64 + 1);
        write_file(&env.path(&name), &data, 1 << 20);
        let crc = crc64::checksum(&data);
        let (size, stored_crc) = object_crc(&env, &name);
        assert_eq!(size, *len as u64, "{name}: size in COS");
        assert_eq!(stored_crc, Some(crc), "{name}: CRC-64 in COS");
        if *len <= 8 * MIB + 1 {
            assert!(
                object_bytes(&env, &name, size) == data,
                "{name}: bytes in COS"
            );
        }
        expected.push((name, *len as u64, crc));
    }
    // close() frees the spool's space before it returns (the file itself goes at release,
    // which the kernel sends right after).
    for entry in std::fs::read_dir(spool.path().join("spool")).unwrap() {
        // A file may vanish between listing and stat: that release came first.
        if let Ok(meta) = entry.unwrap().metadata() {
            assert_eq!(
                meta.len(),
                0,
                "no spooled data left after successful uploads"
            );
        }
    }

    env.unmount();
    mount_with_spool(&mut env, spool.path());
    for (name, len, crc) in expected {
        assert_eq!(
            read_crc(&env.path(&name)),
            (len, crc),
            "{name} after remount"
        );
    }
}

/// Overwrite, truncate down and up, append and scattered writes on existing files, each
/// mirrored on a local reference file; the mount and COS must match the reference.
#[test]
fn modifications_match_a_local_reference_file() {
    let mut env = TestEnv::start();
    let spool = tempfile::tempdir().unwrap();
    let reference_dir = tempfile::tempdir().unwrap();
    // A small file and one spanning several parts (to exercise server-side part copies).
    env.put("mod/small.txt", pattern(10_000, 5));
    env.put("mod/big.bin", pattern(20 << 20, 6));
    mount_with_spool(&mut env, spool.path());

    for (name, len) in [("mod/small.txt", 10_000usize), ("mod/big.bin", 20 << 20)] {
        let seed = if len == 10_000 { 5 } else { 6 };
        let reference = reference_dir.path().join(name.replace('/', "_"));
        std::fs::write(&reference, pattern(len, seed)).unwrap();
        let target = env.path(name);
        let mut x = 0x9E37_79B9u64;
        let mut next = |bound: u64| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x % bound.max(1)
        };
        // Each step runs on both files, each opened and closed like a real program would.
        let steps: Vec<Step> = vec![
            // Scattered writes at random offsets (some past the end: a hole).
            Box::new({
                let offsets: Vec<(u64, usize)> = (0..20)
                    .map(|_| (next(len as u64 + 5000), 1 + next(70_000) as usize))
                    .collect();
                move |p: &Path| {
                    let f = OpenOptions::new().write(true).open(p).unwrap();
                    for (i, (off, n)) in offsets.iter().enumerate() {
                        f.write_all_at(&pattern(*n, 100 + i as u64), *off).unwrap();
                    }
                    f.sync_all().unwrap();
                }
            }),
            // Append.
            Box::new(|p: &Path| {
                let mut f = OpenOptions::new().append(true).open(p).unwrap();
                f.write_all(b"appended tail\n").unwrap();
            }),
            // Truncate to smaller, then larger (zeros), then write in the middle.
            Box::new({
                let small = len as u64 / 3;
                move |p: &Path| {
                    let f = OpenOptions::new().write(true).open(p).unwrap();
                    f.set_len(small).unwrap();
                    f.set_len(small + 100_000).unwrap();
                    f.write_all_at(b"inside the grown zeros", small + 50_000)
                        .unwrap();
                }
            }),
            // Overwrite in place (no truncation) from the start.
            Box::new(|p: &Path| {
                let mut f = OpenOptions::new().write(true).open(p).unwrap();
                f.seek(SeekFrom::Start(0)).unwrap();
                f.write_all(b"HEADER").unwrap();
            }),
        ];
        for (i, step) in steps.iter().enumerate() {
            step(&reference);
            step(&target);
            let want = std::fs::read(&reference).unwrap();
            let got = std::fs::read(&target).unwrap();
            assert!(got == want, "{name}: mount differs after step {i}");
            let (size, crc) = object_crc(&env, name);
            assert_eq!(
                size,
                want.len() as u64,
                "{name}: size in COS after step {i}"
            );
            assert_eq!(
                crc,
                Some(crc64::checksum(&want)),
                "{name}: COS after step {i}"
            );
        }
        // O_TRUNC rewrite.
        std::fs::write(&target, b"replaced").unwrap();
        assert_eq!(object_bytes(&env, name, 8), b"replaced");
        assert_eq!(object_crc(&env, name).0, 8);
    }
}

/// The upload fails (cos-local is gone when the file is closed): close() reports EIO, the
/// written data stays in the spool directory, and no partial object appears.
#[test]
fn a_failed_upload_fails_close_and_keeps_the_spool() {
    let mut env = TestEnv::start();
    let spool = tempfile::tempdir().unwrap();
    env.put("keep/existing.txt", b"old version".to_vec());
    // No retry budget: the server is gone for good, the test need not wait for it.
    let opt = format!("cache_dir={},retry_budget=0", spool.path().display());
    env.mount(&["-o", &opt]);
    let data = pattern(3 << 20, 9);
    let mut f = File::create(env.path("keep/new.bin")).unwrap();
    f.write_all(&data).unwrap();
    env.stop_cos_local();
    let err = f
        .sync_all()
        .expect_err("fsync must report the failed upload");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "{err}");
    drop(f);
    let kept: Vec<Vec<u8>> = std::fs::read_dir(spool.path().join("spool"))
        .unwrap()
        .map(|e| std::fs::read(e.unwrap().path()).unwrap())
        .collect();
    assert!(
        kept.contains(&data),
        "the written bytes are kept in the spool"
    );
}
