//! Write safety over a real mount (issue 10): a write that cannot be stored exactly never
//! replaces the committed object, and close() tells the truth.
//!
//! Each test checks the bucket through the COS client, behind the mount's back.

mod common;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::{pattern, TestEnv};
use cosmount::cos::ObjectStore;

const MIB: usize = 1 << 20;

/// The object's bytes as COS holds them (`None` when there is no such object).
fn object(env: &TestEnv, key: &str) -> Option<Vec<u8>> {
    let client = env.client();
    let info = match env.rt.block_on(ObjectStore::head_object(&client, key)) {
        Ok(info) => info,
        Err(e) if e.is_not_found() => return None,
        Err(e) => panic!("HEAD {key}: {e}"),
    };
    if info.size == 0 {
        return Some(Vec::new());
    }
    let got = env
        .rt
        .block_on(ObjectStore::get_range(&client, key, 0, info.size, None))
        .unwrap_or_else(|e| panic!("GET {key}: {e}"));
    Some(got.data.to_vec())
}

fn mount_with_cache(env: &mut TestEnv, cache: &Path, extra: &[&str]) {
    let opt = format!("cache_dir={}", cache.display());
    let mut args = vec!["-o", opt.as_str()];
    args.extend_from_slice(extra);
    env.mount(&args);
}

/// A small tmpfs, unmounted (lazily, also when the test fails) on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    /// `None` when this machine does not let the test mount one (not root).
    fn mount(size: &str) -> Option<Tmpfs> {
        let dir = tempfile::tempdir().unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir.path())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            eprintln!("cannot mount a tmpfs here (needs root); skipping");
            return None;
        }
        Some(Tmpfs { dir })
    }

    fn path(&self) -> PathBuf {
        self.dir.path().to_path_buf()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// Item 1: the spool's disk fills up while `cp` replaces a file. cp sees ENOSPC, close fails
/// as well, and the bucket keeps the old version (on main it got the first 5 MiB of the new
/// file).
#[test]
fn a_full_spool_disk_fails_the_handle_and_keeps_the_old_object() {
    // Declared first, so it is unmounted after the mount that spools into it is gone.
    let Some(tmpfs) = Tmpfs::mount("5m") else {
        return;
    };
    let mut env = TestEnv::start();
    let old = pattern(MIB, 1);
    env.put("full/f.bin", old.clone());
    mount_with_cache(&mut env, &tmpfs.path(), &[]);
    let src = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(src.path(), pattern(20 * MIB, 2)).unwrap();
    let out = Command::new("cp")
        .arg(src.path())
        .arg(env.path("full/f.bin"))
        .output()
        .unwrap();
    assert!(!out.status.success(), "cp must fail on a full spool disk");
    // A later close of a new handle on it still sees the old content...
    assert!(object(&env, "full/f.bin") == Some(old.clone()), "old object kept");
    // ... and writing the file by hand: the write fails, and so does close (sticky).
    let mut f = OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(env.path("full/f.bin"))
        .unwrap();
    let mut failed = false;
    for _ in 0..20 {
        if f.write_all(&pattern(MIB, 3)).is_err() {
            failed = true;
            break;
        }
    }
    assert!(failed, "writes past the spool disk's size fail");
    assert!(f.sync_all().is_err(), "fsync after a failed write fails");
    drop(f);
    assert!(object(&env, "full/f.bin") == Some(old), "old object still kept");
    let _ = File::open(env.path("full")); // the mount is still alive
}

/// A TCP proxy in front of cos-local that flips the first 0xFF byte a client sends (HTTP
/// headers are ASCII, so it lands in a body): a body damaged in transit.
struct CorruptingProxy {
    endpoint: String,
}

impl CorruptingProxy {
    fn start(upstream: &str) -> CorruptingProxy {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::{AtomicBool, Ordering};
        use std::sync::Arc;
        let upstream = upstream.trim_start_matches("http://").to_string();
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let done = Arc::new(AtomicBool::new(false));
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(client) = client else { return };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                let (mut c_read, mut s_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                let done = done.clone();
                std::thread::spawn(move || {
                    use std::io::Read;
                    let mut buf = vec![0u8; 64 << 10];
                    loop {
                        let n = match c_read.read(&mut buf) {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if !done.load(Ordering::SeqCst) {
                            if let Some(at) = buf[..n].iter().position(|b| *b == 0xFF) {
                                buf[at] = 0xFE;
                                done.store(true, Ordering::SeqCst);
                            }
                        }
                        if s_write.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                    let _ = s_write.shutdown(std::net::Shutdown::Write);
                });
                let (mut s_read, mut c_write) = (server, client);
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut s_read, &mut c_write);
                    let _ = c_write.shutdown(std::net::Shutdown::Write);
                });
            }
        });
        CorruptingProxy { endpoint }
    }
}

/// Item 3: every PUT carries Content-MD5, so a body damaged on the way is refused by COS
/// (BadDigest) and the previous version stays. On main the damaged body replaced the object
/// (the CRC-64 check then failed close, too late).
#[test]
fn a_body_damaged_in_transit_never_replaces_the_object() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    env.put("md5/f.bin", b"old version".to_vec());
    let real = env.endpoint.clone();
    let proxy = CorruptingProxy::start(&real);
    env.endpoint = proxy.endpoint.clone();
    mount_with_cache(&mut env, cache.path(), &[]);
    env.endpoint = real;
    let new = vec![0xFFu8; 100_000];
    let written = (|| {
        let mut f = File::create(env.path("md5/f.bin"))?;
        f.write_all(&new)?;
        f.sync_all()
    })();
    let stored = object(&env, "md5/f.bin").unwrap();
    match written {
        Ok(()) => assert!(stored == new, "close succeeded: the object is the new content"),
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
            assert_eq!(stored, b"old version", "a refused upload leaves the old version");
        }
    }
}

/// Item 2: rewrites into parts while they upload. The file is written sequentially (so parts
/// stream up as it grows) with a random 4 KiB rewrite into the part(s) already written after
/// every chunk, and an fsync now and then; the object must equal the local reference. On
/// main two uploads of one part number raced and Complete failed with InvalidPart.
#[test]
fn rewrites_of_parts_in_flight_end_with_the_right_object() {
    use std::os::unix::fs::FileExt;
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    env.put("race/f.bin", pattern(20 * MIB, 4));
    mount_with_cache(&mut env, cache.path(), &["-o", "part_size=1M"]);
    // Half the parts are slow: an earlier upload of a part can then land after a later one.
    env.set_faults("rate=0.5&kinds=latency&ops=UploadPart&latency_ms=150");
    let mut reference = pattern(20 * MIB, 4);
    let f = OpenOptions::new()
        .write(true)
        .open(env.path("race/f.bin"))
        .unwrap();
    let mut x = 0x2545_F491_4F6C_DD1Du64;
    let mut next = |bound: usize| {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        (x % bound as u64) as usize
    };
    const CHUNK: usize = 64 << 10;
    for (i, at) in (0..24 * MIB).step_by(CHUNK).enumerate() {
        let data = pattern(CHUNK, 1000 + i as u64);
        f.write_all_at(&data, at as u64).unwrap();
        if reference.len() < at + CHUNK {
            reference.resize(at + CHUNK, 0);
        }
        reference[at..at + CHUNK].copy_from_slice(&data);
        for _ in 0..2 {
            let off = next(at + CHUNK - 4096);
            let patch = pattern(4096, 5000 + i as u64);
            f.write_all_at(&patch, off as u64).unwrap();
            reference[off..off + 4096].copy_from_slice(&patch);
        }
        if i % 97 == 96 {
            f.sync_all().unwrap();
        }
    }
    f.sync_all().unwrap();
    drop(f);
    let stored = object(&env, "race/f.bin").unwrap();
    assert_eq!(stored.len(), reference.len());
    assert!(stored == reference, "the object equals the local reference");
}
