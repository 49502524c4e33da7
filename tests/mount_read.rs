//! Reads through a real mount over cos-local: exact bytes, random access, changed objects.

mod common;

use std::fs::File;
use std::io::Read;
use std::os::unix::fs::FileExt;

use common::{pattern, TestEnv};

#[test]
fn small_and_odd_sizes_read_byte_for_byte() {
    let mut env = TestEnv::start();
    let sizes = [0usize, 1, (1 << 20) + 1];
    for (i, len) in sizes.iter().enumerate() {
        env.put(&format!("obj-{len}"), pattern(*len, i as u64));
    }
    env.mount(&[]);
    for (i, len) in sizes.iter().enumerate() {
        let got = std::fs::read(env.path(&format!("obj-{len}"))).unwrap();
        assert_eq!(got.len(), *len);
        assert!(
            got == pattern(*len, i as u64),
            "content of obj-{len} differs"
        );
    }
}

/// 100 MiB read sequentially, compared chunk by chunk, then random offsets checked.
#[test]
fn hundred_mib_object_reads_exactly_sequentially_and_at_random_offsets() {
    const LEN: usize = 100 << 20;
    let mut env = TestEnv::start();
    let data = pattern(LEN, 42);
    env.put("big/100MiB.bin", data.clone());
    env.mount(&[]);

    let mut f = File::open(env.path("big/100MiB.bin")).unwrap();
    assert_eq!(f.metadata().unwrap().len(), LEN as u64);
    let mut buf = vec![0u8; 1 << 20];
    let mut at = 0usize;
    loop {
        let n = f.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        assert!(
            buf[..n] == data[at..at + n],
            "mismatch in the chunk at offset {at}"
        );
        at += n;
    }
    assert_eq!(at, LEN);

    // A fresh handle, random offsets and sizes (pread), against the source.
    let f = File::open(env.path("big/100MiB.bin")).unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    for _ in 0..200 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let off = (x % LEN as u64) as usize;
        let len = ((x >> 40) % 200_000) as usize + 1;
        let mut got = vec![0u8; len];
        let n = f.read_at(&mut got, off as u64).unwrap();
        let want = &data[off..(off + len).min(LEN)];
        assert_eq!(n, want.len(), "short read at {off}");
        assert!(&got[..n] == want, "mismatch at offset {off} len {len}");
    }
}

/// If the object is overwritten while a reader has it open, the reader gets EIO for data it
/// has not read yet, never bytes of the new version mixed with the old.
#[test]
fn object_overwritten_under_open_reader_gives_eio_not_mixed_bytes() {
    const LEN: usize = 24 << 20;
    let mut env = TestEnv::start();
    let old = pattern(LEN, 1);
    env.put("changing.bin", old.clone());
    env.mount(&[]);

    let f = File::open(env.path("changing.bin")).unwrap();
    let mut head = vec![0u8; 4096];
    f.read_at(&mut head, 0).unwrap();
    assert!(head == old[..4096]);

    env.put("changing.bin", pattern(LEN, 2));

    // Far from anything read or prefetched so far: needs a new GET, which must fail.
    let mut tail = vec![0u8; 4096];
    let err = f.read_at(&mut tail, (LEN - 8192) as u64).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "got {err}");
    drop(f);

    // A new open sees the new version, whole.
    let now = std::fs::read(env.path("changing.bin")).unwrap();
    assert!(
        now == pattern(LEN, 2),
        "reopened file must be the new version"
    );
}

/// The first open of a version just looked up sends no HEAD (the lookup gave its size and
/// ETag; the GET's If-Match checks them). If the object was overwritten by another client after
/// the lookup, the read returns the current version whole, or EIO, never the new bytes under
/// the old size; a reopen of a version already read asks COS before the kernel may keep its
/// pages.
#[test]
fn first_open_needs_no_head_and_a_stale_lookup_reads_the_current_version() {
    let mut env = TestEnv::start();
    env.put("a.bin", pattern(300_000, 1));
    env.put("grow.bin", pattern(1000, 2));
    env.put("shrink.bin", pattern(3 << 20, 3));
    // A long stat TTL and attribute timeout: the mount keeps believing the lookup's ETag and
    // size, so only the GET can find out.
    env.mount(&["-o", "stat_ttl=600,attr_timeout=600"]);
    for name in ["a.bin", "grow.bin", "shrink.bin"] {
        std::fs::metadata(env.path(name)).unwrap();
    }

    let before = env.requests();
    let got = std::fs::read(env.path("a.bin")).unwrap();
    let after = env.requests();
    assert!(got == pattern(300_000, 1), "content of a.bin differs");
    assert_eq!(after.head_object, before.head_object, "open sent a HEAD");
    assert!(after.get_object > before.get_object);

    env.put("grow.bin", pattern(5 << 20, 4));
    env.put("shrink.bin", pattern(10, 5));
    let grown = std::fs::read(env.path("grow.bin")).unwrap();
    assert_eq!(grown.len(), 5 << 20, "grown object read with its old size");
    assert!(grown == pattern(5 << 20, 4), "content of grow.bin differs");
    // A shorter object cannot be served under the size the kernel was told (it would pad it
    // with zeros): that open fails with EIO, the next one reads it.
    match std::fs::read(env.path("shrink.bin")) {
        Ok(got) => assert!(got == pattern(10, 5), "shrink.bin: {} bytes", got.len()),
        Err(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "got {e}"),
    }
    let shrunk = std::fs::read(env.path("shrink.bin")).unwrap();
    assert!(
        shrunk == pattern(10, 5),
        "shrink.bin: {} bytes",
        shrunk.len()
    );
    assert_eq!(
        std::fs::metadata(env.path("grow.bin")).unwrap().len(),
        5 << 20
    );

    // a.bin was read once: its next open asks (the kernel would otherwise serve its pages),
    // and sees an overwrite of the same size.
    env.put("a.bin", pattern(300_000, 6));
    let before = env.requests();
    let again = std::fs::read(env.path("a.bin")).unwrap();
    assert!(
        again == pattern(300_000, 6),
        "reopen served the old version"
    );
    assert_eq!(env.requests().head_object, before.head_object + 1);
}

/// Read `path` on another thread; `None` if it has not returned after `patience` (a read that
/// spins in the daemon must fail the test, not hang the suite).
fn read_within(path: std::path::PathBuf, patience: std::time::Duration) -> Option<Vec<u8>> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(std::fs::read(&path).expect("read"));
    });
    rx.recv_timeout(patience).ok()
}

/// A memory budget whose prefetch share is not a whole number of blocks (75 % of 17 MiB is
/// 12.75 MiB) once cut prefetch runs mid-block: the next read spun in the daemon until it was
/// OOM-killed, and blocks fetched from such an offset were cached under the index of the
/// block they started in, so a later read served shifted bytes. The file is read whole, then
/// (after the kernel's pages are dropped) its tail again, which the block cache still holds.
#[test]
fn a_budget_of_odd_size_reads_the_same_bytes_from_cos_and_from_the_block_cache() {
    const LEN: usize = 40 << 20;
    const TAIL: usize = 4 << 20;
    let patience = std::time::Duration::from_secs(120);
    let mut env = TestEnv::start();
    let data = pattern(LEN, 17);
    env.put("odd.bin", data.clone());
    env.mount(&["-o", "memory_limit=17M,cache_size=16M"]);
    let first = read_within(env.path("odd.bin"), patience).expect("first read never returned");
    assert!(first == data, "first read (from COS): wrong bytes");
    std::fs::write("/proc/sys/vm/drop_caches", "1").expect("drop_caches");
    // The first GET of a new handle checks the ETag the lookup gave (If-Match) before any
    // cached block is trusted: let it fetch the last byte, then count.
    let f = File::open(env.path("odd.bin")).unwrap();
    let mut last = [0u8; 1];
    f.read_exact_at(&mut last, (LEN - 1) as u64).unwrap();
    let gets_first = env.requests().get_object;
    let mut tail = vec![0u8; TAIL];
    f.read_exact_at(&mut tail, (LEN - TAIL) as u64).unwrap();
    assert!(
        tail[..] == data[LEN - TAIL..],
        "the tail read again (from the block cache): wrong bytes"
    );
    let gets_tail = env.requests().get_object - gets_first;
    assert_eq!(
        gets_tail, 0,
        "the tail was fetched again, not served from the block cache"
    );
}
