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
