//! Core tests over the in-memory store: request counts, listings, reads (no kernel involved).

use std::ffi::OsStr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use fuser::{Errno, FileType};

use crate::cos::memory::{MemoryStore, StoreOp};
use crate::cos::store::PutOptions;

use super::attr::AttrDefaults;
use super::core::{FsConfig, FsCore};
use super::inode::ROOT_INO;
use super::read::BLOCK_SIZE;
use crate::fs::error::ToErrno;

fn config() -> FsConfig {
    FsConfig {
        prefix: String::new(),
        defaults: AttrDefaults {
            uid: 1,
            gid: 2,
            file_mode: 0o644,
            dir_mode: 0o755,
            read_only: true,
        },
        stat_ttl: Duration::from_secs(3600),
        open_trust: Duration::ZERO,
        cache_size: 64 << 20,
        read_only: true,
        meta: crate::fs::names::MetaSource::Head,
        learned_file: None,
    }
}

fn setup(keys: &[(&str, Bytes)]) -> (Arc<MemoryStore>, FsCore<MemoryStore>) {
    let store = Arc::new(MemoryStore::new());
    for (k, v) in keys {
        store.insert(k, v.clone(), &PutOptions::default());
    }
    store.reset_requests();
    let core = FsCore::new(store.clone(), config());
    (store, core)
}

/// Bytes whose value depends on their position, so an off-by-one read fails.
fn pattern(len: usize, seed: u64) -> Bytes {
    (0..len as u64)
        .map(|i| ((i.wrapping_mul(31) ^ (i >> 13) ^ seed) % 251) as u8)
        .collect::<Vec<u8>>()
        .into()
}

async fn names(core: &FsCore<MemoryStore>, ino: u64) -> Vec<(String, FileType)> {
    let fh = core.opendir(ino).unwrap();
    let (_, listing) = core.dir_listing(fh).await.unwrap();
    core.releasedir(fh);
    listing
        .entries
        .iter()
        .map(|e| (e.name.clone(), e.kind.file_type()))
        .collect()
}

#[tokio::test]
async fn listing_shows_markers_implicit_dirs_and_hides_bad_keys() {
    let e = Bytes::new();
    let (_, core) = setup(&[
        ("marker/", e.clone()),
        ("implicit/deep/file", e.clone()),
        ("both", Bytes::from_static(b"file")),
        ("both/child", e.clone()),
        ("a b 中文 +%#?&=", Bytes::from_static(b"x")),
        ("bad//empty-segment", e.clone()),
        ("dot/./x", e.clone()),
        (&"n".repeat(300), e.clone()),
    ]);
    let got = names(&core, ROOT_INO).await;
    let want = vec![
        ("a b 中文 +%#?&=".to_string(), FileType::RegularFile),
        ("bad".to_string(), FileType::Directory),
        ("both".to_string(), FileType::Directory),
        ("dot".to_string(), FileType::Directory),
        ("implicit".to_string(), FileType::Directory),
        ("marker".to_string(), FileType::Directory),
    ];
    assert_eq!(got, want);
    let bad = core.lookup(ROOT_INO, OsStr::new("bad")).await.unwrap();
    assert!(
        names(&core, bad.ino.0).await.is_empty(),
        "the empty segment is hidden"
    );
    let dot = core.lookup(ROOT_INO, OsStr::new("dot")).await.unwrap();
    assert!(
        names(&core, dot.ino.0).await.is_empty(),
        "a `.` segment is hidden"
    );
}

fn big_dir_keys() -> Vec<(String, Bytes)> {
    (0..2500)
        .map(|i| (format!("big/f{i:05}"), Bytes::from(vec![b'x'; i % 7])))
        .collect()
}

/// A cold listing costs one LIST per thousand and one HEAD per entry (what a listing cannot
/// tell: type, mode, owner); the next costs no HEAD, however the listing cache expires.
#[tokio::test]
async fn big_directory_costs_one_list_per_thousand_and_heads_only_when_cold() {
    let keys = big_dir_keys();
    let refs: Vec<(&str, Bytes)> = keys.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let store = Arc::new(MemoryStore::new());
    for (k, v) in &refs {
        store.insert(k, v.clone(), &PutOptions::default());
    }
    // A zero stat_ttl: every listing and lookup goes to COS again.
    let core = FsCore::new(
        store.clone(),
        FsConfig {
            stat_ttl: Duration::ZERO,
            ..config()
        },
    );
    let big = core.lookup(ROOT_INO, OsStr::new("big")).await.unwrap();
    store.reset_requests();
    let listed = names(&core, big.ino.0).await;
    assert_eq!(listed.len(), 2500);
    assert_eq!(store.requests(StoreOp::ListObjects), 3);
    assert_eq!(store.requests(StoreOp::HeadObject), 2500);
    store.reset_requests();
    let again = names(&core, big.ino.0).await;
    assert_eq!(again, listed);
    assert_eq!(store.requests(StoreOp::ListObjects), 3);
    assert_eq!(
        store.requests(StoreOp::HeadObject),
        0,
        "learned per version"
    );
}

#[tokio::test]
async fn lookups_in_a_listed_directory_cost_nothing() {
    let keys = big_dir_keys();
    let refs: Vec<(&str, Bytes)> = keys.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let (store, core) = setup(&refs);
    let big = core.lookup(ROOT_INO, OsStr::new("big")).await.unwrap();
    names(&core, big.ino.0).await;
    store.reset_requests();
    let a = core.lookup(big.ino.0, OsStr::new("f00006")).await.unwrap();
    assert_eq!(a.size, 6);
    let miss = core
        .lookup(big.ino.0, OsStr::new("nope"))
        .await
        .unwrap_err();
    assert_eq!(miss.errno(), Errno::ENOENT);
    assert_eq!(store.total_requests(), 0);
}

#[tokio::test]
async fn meta_list_never_heads() {
    let keys = big_dir_keys();
    let refs: Vec<(&str, Bytes)> = keys.iter().map(|(k, v)| (k.as_str(), v.clone())).collect();
    let store = Arc::new(MemoryStore::new());
    for (k, v) in &refs {
        store.insert(k, v.clone(), &PutOptions::default());
    }
    let core = FsCore::new(
        store.clone(),
        FsConfig {
            meta: crate::fs::names::MetaSource::List,
            ..config()
        },
    );
    let big = core.lookup(ROOT_INO, OsStr::new("big")).await.unwrap();
    assert_eq!(names(&core, big.ino.0).await.len(), 2500);
    let f = core.lookup(big.ino.0, OsStr::new("f00003")).await.unwrap();
    assert_eq!((f.kind, f.perm), (FileType::RegularFile, 0o444));
    assert_eq!(store.requests(StoreOp::HeadObject), 0);
}

#[tokio::test]
async fn negative_lookup_is_cached() {
    let (store, core) = setup(&[("x", Bytes::from_static(b"1"))]);
    for _ in 0..3 {
        let e = core
            .lookup(ROOT_INO, OsStr::new("missing"))
            .await
            .unwrap_err();
        assert_eq!(e.errno(), Errno::ENOENT);
    }
    assert_eq!(store.total_requests(), 1);
}

#[tokio::test]
async fn lookup_finds_files_and_dirs_with_one_request() {
    let (store, core) = setup(&[("f", Bytes::from_static(b"12345")), ("d/x", Bytes::new())]);
    let f = core.lookup(ROOT_INO, OsStr::new("f")).await.unwrap();
    assert_eq!((f.kind, f.size, f.perm), (FileType::RegularFile, 5, 0o444));
    let d = core.lookup(ROOT_INO, OsStr::new("d")).await.unwrap();
    assert_eq!((d.kind, d.perm), (FileType::Directory, 0o555));
    assert_eq!(store.requests(StoreOp::ListObjects), 2);
    // A listing cannot tell "f"'s type and mode, nor "d"'s (on its `d/` marker): one HEAD each.
    assert_eq!(store.requests(StoreOp::HeadObject), 2);
    let long = "x".repeat(256);
    assert_eq!(
        core.lookup(ROOT_INO, OsStr::new(&long))
            .await
            .unwrap_err()
            .errno(),
        Errno::ENAMETOOLONG
    );
}

async fn read_all(core: &FsCore<MemoryStore>, fh: u64, len: u64, chunk: u32) -> Vec<u8> {
    let mut out = Vec::new();
    let mut off = 0;
    loop {
        let b = core.read(fh, off, chunk).await.unwrap();
        if b.is_empty() {
            break;
        }
        off += b.len() as u64;
        out.extend_from_slice(&b);
        assert!(off <= len);
    }
    out
}

#[tokio::test]
async fn reads_are_byte_exact() {
    for (i, len) in [0usize, 1, (1 << 20) + 1, 5 * (1 << 20) + 12345]
        .into_iter()
        .enumerate()
    {
        let data = pattern(len, i as u64);
        let (_, core) = setup(&[("obj", data.clone())]);
        let a = core.lookup(ROOT_INO, OsStr::new("obj")).await.unwrap();
        let (fh, _) = core.open(a.ino.0, false).await.unwrap();
        assert_eq!(
            read_all(&core, fh, len as u64, 128 * 1024).await,
            &data[..],
            "len {len}"
        );
        // Random offsets and sizes, checked against the source.
        let mut x = 12345u64;
        for _ in 0..50 {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let off = if len == 0 { 0 } else { (x >> 20) % len as u64 };
            let size = ((x >> 8) % 300_000) as u32;
            let got = core.read(fh, off, size).await.unwrap();
            let end = (off as usize + size as usize).min(len);
            assert_eq!(&got[..], &data[off as usize..end.max(off as usize)]);
        }
        core.release(fh);
    }
}

#[tokio::test]
async fn random_small_reads_make_one_get_each() {
    let data = pattern(32 << 20, 9);
    let (store, core) = setup(&[("obj", data.clone())]);
    let a = core.lookup(ROOT_INO, OsStr::new("obj")).await.unwrap();
    let (fh, _) = core.open(a.ino.0, false).await.unwrap();
    store.reset_requests();
    let offsets = [20u64 << 20, 3 << 20, 30 << 20, 11 << 20, 25 << 20];
    for off in offsets {
        let got = core.read(fh, off, 4096).await.unwrap();
        assert_eq!(&got[..], &data[off as usize..off as usize + 4096]);
    }
    assert_eq!(store.requests(StoreOp::GetRange), offsets.len() as u64);
}

/// A small read with no stream behind it GETs only its own pages (its first byte costs one
/// small GET); a read of a whole block fetches the block, which then serves the reads inside it.
#[tokio::test]
async fn small_first_reads_fetch_their_pages_and_block_reads_fill_the_cache() {
    let data = pattern(32 << 20, 5);
    let (store, core) = setup(&[("obj", data.clone())]);
    let a = core.lookup(ROOT_INO, OsStr::new("obj")).await.unwrap();
    let (fh, _) = core.open(a.ino.0, false).await.unwrap();
    store.reset_requests();
    let got = core.read(fh, 5000, 10_000).await.unwrap();
    assert_eq!(&got[..], &data[5000..15_000]);
    assert_eq!(store.requests(StoreOp::GetRange), 1);
    assert_eq!(store.range_bytes(), 3 * 4096, "pages 1-3 only");

    // Far enough away to be a seek (no prefetch).
    store.reset_requests();
    let at = 20 << 20;
    let got = core.read(fh, at, BLOCK_SIZE as u32).await.unwrap();
    assert_eq!(&got[..], &data[at as usize..(at + BLOCK_SIZE) as usize]);
    assert_eq!(store.range_bytes(), BLOCK_SIZE);
    let got = core.read(fh, at + 8192, 4096).await.unwrap();
    assert_eq!(&got[..], &data[at as usize + 8192..at as usize + 12_288]);
    assert_eq!(
        store.requests(StoreOp::GetRange),
        1,
        "the second read came from the cached block"
    );
}

/// A small file read whole is fetched whole, and cached: a new handle's read needs no GET.
#[tokio::test]
async fn a_small_file_read_whole_is_cached() {
    let data = pattern(10_000, 6);
    let (store, core) = setup(&[("small", data.clone())]);
    let a = core.lookup(ROOT_INO, OsStr::new("small")).await.unwrap();
    for _ in 0..2 {
        let (fh, _) = core.open(a.ino.0, false).await.unwrap();
        assert_eq!(&core.read(fh, 0, 16_384).await.unwrap()[..], &data[..]);
        core.release(fh);
    }
    assert_eq!(store.requests(StoreOp::GetRange), 1);
}

#[tokio::test]
async fn sequential_reads_prefetch_ahead() {
    let data = pattern(16 << 20, 3);
    let (store, core) = setup(&[("obj", data.clone())]);
    let a = core.lookup(ROOT_INO, OsStr::new("obj")).await.unwrap();
    let (fh, _) = core.open(a.ino.0, false).await.unwrap();
    store.reset_requests();
    assert_eq!(read_all(&core, fh, 16 << 20, 128 * 1024).await, &data[..]);
    // 128 reads of 128 KiB served by far fewer GETs.
    let gets = store.requests(StoreOp::GetRange);
    assert!(gets < 20, "{gets} GETs for 128 sequential reads");
}

#[tokio::test]
async fn changed_object_under_open_reader_is_eio_and_reopen_sees_new_version() {
    let old = pattern(8 << 20, 1);
    let (store, core) = setup(&[("obj", old.clone())]);
    let a = core.lookup(ROOT_INO, OsStr::new("obj")).await.unwrap();
    let (fh, keep) = core.open(a.ino.0, false).await.unwrap();
    assert!(!keep);
    assert_eq!(&core.read(fh, 0, 4096).await.unwrap()[..], &old[..4096]);
    let new = pattern(8 << 20, 2);
    store.insert("obj", new.clone(), &PutOptions::default());
    let e = core.read(fh, 6 << 20, 4096).await.unwrap_err();
    assert_eq!(e.errno(), Errno::EIO);
    core.release(fh);
    let (fh, keep) = core.open(a.ino.0, false).await.unwrap();
    assert!(!keep, "a new ETag must drop the kernel page cache");
    assert_eq!(
        &core.read(fh, 6 << 20, 4096).await.unwrap()[..],
        &new[6 << 20..(6 << 20) + 4096]
    );
    core.release(fh);
    let (_, keep) = core.open(a.ino.0, false).await.unwrap();
    assert!(keep, "same ETag as the last open keeps the page cache");
}

#[tokio::test]
async fn cosfs_metadata_is_known_at_lookup() {
    let store = Arc::new(MemoryStore::new());
    let opts = PutOptions {
        meta: [("mode", "33216"), ("uid", "1234"), ("gid", "5678")]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..Default::default()
    };
    store.insert("m", pattern(5000, 1), &opts);
    let mut cfg = config();
    cfg.read_only = false;
    cfg.defaults.read_only = false;
    let core = FsCore::new(store, cfg);
    let a = core.lookup(ROOT_INO, OsStr::new("m")).await.unwrap();
    assert_eq!(
        (a.perm, a.uid, a.gid),
        (0o700, 1234, 5678),
        "one HEAD tells"
    );
    let (fh, _) = core.open(a.ino.0, false).await.unwrap();
    core.release(fh);
    let a = core.getattr(a.ino.0).await.unwrap();
    assert_eq!((a.perm, a.uid, a.gid), (0o700, 1234, 5678));
}

#[tokio::test]
async fn mount_prefix_maps_the_root() {
    let store = Arc::new(MemoryStore::new());
    store.insert(
        "sub/dir/a",
        Bytes::from_static(b"A"),
        &PutOptions::default(),
    );
    store.insert("other", Bytes::from_static(b"B"), &PutOptions::default());
    let mut cfg = config();
    cfg.prefix = "sub/dir/".into();
    let core = FsCore::new(store, cfg);
    assert_eq!(
        names(&core, ROOT_INO).await,
        vec![("a".to_string(), FileType::RegularFile)]
    );
    assert_eq!(
        core.lookup(ROOT_INO, OsStr::new("other"))
            .await
            .unwrap_err()
            .errno(),
        Errno::ENOENT
    );
}

/// The kernel sends its readahead window as concurrent requests that may arrive out of order;
/// that must not count as seeking (which would drop the prefetch window and refetch).
#[tokio::test]
async fn reordered_readahead_keeps_the_prefetch_window() {
    const MIB: u64 = 1 << 20;
    let data = pattern(32 << 20, 5);
    let (store, core) = setup(&[("obj", data.clone())]);
    let a = core.lookup(ROOT_INO, OsStr::new("obj")).await.unwrap();
    let (fh, _) = core.open(a.ino.0, false).await.unwrap();
    store.reset_requests();
    // 1 MiB requests, each group of four arriving as 0, 3, 1, 2.
    for group in 0..8u64 {
        for i in [0u64, 3, 1, 2] {
            let off = (group * 4 + i) * MIB;
            let got = core.read(fh, off, MIB as u32).await.unwrap();
            assert_eq!(&got[..], &data[off as usize..(off + MIB) as usize]);
        }
    }
    let gets = store.requests(StoreOp::GetRange);
    assert!(
        gets <= 16,
        "{gets} GETs for 32 MiB read with reordered readahead"
    );
}
