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

/// One access-log line: operation, status, bytes received.
#[derive(Debug, Clone)]
struct Logged {
    op: String,
    status: u16,
    bytes_in: u64,
}

/// The requests cos-local logged on object `key`, in order.
fn requests_on(env: &TestEnv, key: &str) -> Vec<Logged> {
    let text = std::fs::read_to_string(&env.access_log).unwrap_or_default();
    let want = format!("/{}/{key}", common::BUCKET);
    text.lines()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split(' ').collect();
            let target = fields.get(2)?;
            let (path, query) = target.split_once('?').unwrap_or((target, ""));
            if path != want {
                return None;
            }
            let bytes_in = fields
                .iter()
                .find_map(|f| f.strip_prefix("in="))
                .and_then(|v| v.parse().ok())
                .unwrap_or(0);
            let _ = query;
            Some(Logged {
                op: fields.last()?.to_string(),
                status: fields.get(3)?.parse().ok()?,
                bytes_in,
            })
        })
        .collect()
}

/// How many successful requests of operation `op` were made on `key`.
fn count_ok(env: &TestEnv, key: &str, op: &str) -> usize {
    requests_on(env, key)
        .iter()
        .filter(|r| r.op == op && r.status < 300)
        .count()
}

fn sh(script: &str) -> std::process::Output {
    Command::new("bash").arg("-c").arg(script).output().unwrap()
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
        let _ = Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
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
    assert!(
        env.object_bytes("full/f.bin") == Some(old.clone()),
        "old object kept"
    );
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
    assert!(
        env.object_bytes("full/f.bin") == Some(old),
        "old object still kept"
    );
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
                let (mut c_read, mut s_write) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
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
    let stored = env.object_bytes("md5/f.bin").unwrap();
    match written {
        Ok(()) => assert!(
            stored == new,
            "close succeeded: the object is the new content"
        ),
        Err(e) => {
            assert_eq!(e.raw_os_error(), Some(libc::EIO), "{e}");
            assert_eq!(
                stored, b"old version",
                "a refused upload leaves the old version"
            );
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
    let stored = env.object_bytes("race/f.bin").unwrap();
    assert_eq!(stored.len(), reference.len());
    assert!(stored == reference, "the object equals the local reference");
}

/// Item 5: bash closes a dup of the fresh O_TRUNC descriptor before `printf` writes: that
/// close must not upload an empty object (main sent two PUTs, the first of 0 bytes). And a
/// loop whose every `head` closes a dup of the redirected stdout commits once, at the shell's
/// own close (main committed at each of the 12).
#[test]
fn only_the_openers_close_commits_and_never_an_untouched_truncation() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    env.put("sh/x.txt", b"old content".to_vec());
    mount_with_cache(&mut env, cache.path(), &[]);
    let file = env.path("sh/x.txt");
    let out = sh(&format!("printf x > '{}'", file.display()));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(env.object_bytes("sh/x.txt").unwrap(), b"x");
    let puts: Vec<u64> = requests_on(&env, "sh/x.txt")
        .iter()
        .filter(|r| r.op == "PutObject")
        .map(|r| r.bytes_in)
        .collect();
    // The seed (11 bytes), then exactly one PUT, of the final content.
    assert_eq!(puts, vec![11, 1], "one PUT of the final content");

    let looped = env.path("sh/loop.bin");
    let out = sh(&format!(
        "for i in $(seq 12); do head -c 1M /dev/urandom; done > '{}'",
        looped.display()
    ));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(env.object_bytes("sh/loop.bin").unwrap().len(), 12 * MIB);
    let commits = count_ok(&env, "sh/loop.bin", "CompleteMultipartUpload")
        + count_ok(&env, "sh/loop.bin", "PutObject");
    assert_eq!(commits, 1, "one commit for the whole loop");

    // `: > f` still truncates (committed when the handle is released).
    let out = sh(&format!(": > '{}'", file.display()));
    assert!(out.status.success(), "{out:?}");
    assert_eq!(std::fs::metadata(&file).unwrap().len(), 0);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    // Poll the size only: a HEAD-then-GET read could race the commit it waits for.
    let size = |env: &TestEnv| {
        env.rt
            .block_on(ObjectStore::head_object(&env.client(), "sh/x.txt"))
            .map(|info| info.size)
            .ok()
    };
    while size(&env) != Some(0) {
        assert!(
            std::time::Instant::now() < deadline,
            "truncation committed at release"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// Item 6: two O_APPEND writers through the same mount share one open file: no line lost
/// (main lost half of them: each handle uploaded its own spool).
#[test]
fn two_appending_writers_lose_no_line() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    env.put("app/log.txt", b"start\n".to_vec());
    mount_with_cache(&mut env, cache.path(), &[]);
    let path = env.path("app/log.txt");
    let mut a = OpenOptions::new().append(true).open(&path).unwrap();
    let mut b = OpenOptions::new().append(true).open(&path).unwrap();
    for i in 0..200 {
        a.write_all(format!("a {i}\n").as_bytes()).unwrap();
        b.write_all(format!("b {i}\n").as_bytes()).unwrap();
    }
    a.sync_all().unwrap();
    drop(a);
    b.sync_all().unwrap();
    drop(b);
    let text = String::from_utf8(env.object_bytes("app/log.txt").unwrap()).unwrap();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 401, "every line kept");
    assert_eq!(lines[0], "start");
    for i in 0..200 {
        assert!(lines.contains(&format!("a {i}").as_str()), "a {i}");
        assert!(lines.contains(&format!("b {i}").as_str()), "b {i}");
    }
    assert_eq!(
        std::fs::read_to_string(&path).unwrap(),
        text,
        "the mount agrees"
    );
}

/// Read `f` from its current offset to the end: the bytes, and the error that ended the
/// reading early, if any.
fn read_rest(f: &mut File) -> (Vec<u8>, Option<std::io::Error>) {
    use std::io::Read;
    let mut out = Vec::new();
    let mut buf = vec![0u8; 256 * 1024];
    loop {
        match f.read(&mut buf) {
            Ok(0) => return (out, None),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) => return (out, Some(e)),
        }
    }
}

/// What a reader of v1 may see when the same mount overwrites the file: all of v1, or a prefix
/// of v1 and then EIO. Never bytes of the new version, never an early end of file.
fn assert_one_version(seen: &[u8], ended: Option<std::io::Error>, v1: &[u8], what: &str) {
    assert!(seen.len() <= v1.len(), "{what}: read past v1's end");
    let bad = seen.iter().zip(v1).position(|(a, b)| a != b);
    assert_eq!(bad, None, "{what}: byte {bad:?} is not v1's");
    match ended {
        None => assert_eq!(seen.len(), v1.len(), "{what}: early end of file"),
        Some(e) => assert_eq!(e.raw_os_error(), Some(libc::EIO), "{what}: {e}"),
    }
}

fn drop_kernel_caches() {
    // Pages and dentries/inodes: the reader must not depend on what the kernel kept.
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

/// Item 6, readers: a handle that opened v1 keeps reading v1 (or gets EIO) while the same
/// mount overwrites the file, also after the new version is committed (main showed it an
/// early end of file, or v1 followed by v2 bytes from the shared page cache).
#[test]
fn a_reader_of_the_old_version_sees_it_or_eio_while_the_same_mount_overwrites() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    let v1 = pattern(20 * MIB, 61);
    let v2 = pattern(12 * MIB, 62);
    env.put("ow/a.bin", v1.clone());
    env.put("ow/b.bin", v1.clone());
    mount_with_cache(&mut env, cache.path(), &[]);

    // a: the overwrite is committed (close) while the reader is a third of the way in.
    let path = env.path("ow/a.bin");
    let mut reader = File::open(&path).unwrap();
    let mut head = vec![0u8; 6 * MIB];
    std::io::Read::read_exact(&mut reader, &mut head).unwrap();
    assert!(head[..] == v1[..6 * MIB]);
    let mut w = File::create(&path).unwrap();
    w.write_all(&v2).unwrap();
    drop(w);
    assert!(env.object_bytes("ow/a.bin").unwrap() == v2, "v2 committed");
    drop_kernel_caches();
    // A third handle reads v2 meanwhile: its pages must not reach the old reader.
    assert!(std::fs::read(&path).unwrap() == v2, "a new open reads v2");
    let (rest, ended) = read_rest(&mut reader);
    head.extend_from_slice(&rest);
    assert_one_version(&head, ended, &v1, "after the commit");
    drop(reader);
    let again = std::fs::read(&path).unwrap();
    let bad = again.iter().zip(&v2).position(|(a, b)| a != b);
    assert!(
        again == v2,
        "a new open reads v2: {} bytes, first bad {bad:?}",
        again.len()
    );

    // b: the writer is still open (nothing committed) with fewer bytes than the reader's
    // position; a reader opened meanwhile reads what the writer wrote, as on a local disk.
    let path = env.path("ow/b.bin");
    let mut reader = File::open(&path).unwrap();
    let mut head = vec![0u8; MIB];
    std::io::Read::read_exact(&mut reader, &mut head).unwrap();
    let mut w = File::create(&path).unwrap();
    w.write_all(&v2[..3 * MIB]).unwrap();
    drop_kernel_caches();
    let (rest, ended) = read_rest(&mut reader);
    head.extend_from_slice(&rest);
    assert_one_version(&head, ended, &v1, "while the writer is open");
    assert!(
        env.object_bytes("ow/b.bin").unwrap() == v1,
        "nothing committed yet"
    );
    let late = std::fs::read(&path).unwrap();
    assert!(
        late[..] == v2[..3 * MIB],
        "a reader opened after the writer sees its bytes"
    );
    w.write_all(&v2[3 * MIB..]).unwrap();
    drop(w);
    drop(reader);
    assert!(env.object_bytes("ow/b.bin").unwrap() == v2);
    assert!(std::fs::read(&path).unwrap() == v2);

    // c: a rewrite in the middle (no O_TRUNC) while the reader is before it.
    env.put("ow/c.bin", v1.clone());
    let path = env.path("ow/c.bin");
    let mut reader = File::open(&path).unwrap();
    let mut head = vec![0u8; MIB];
    std::io::Read::read_exact(&mut reader, &mut head).unwrap();
    let mut w = OpenOptions::new().write(true).open(&path).unwrap();
    std::os::unix::fs::FileExt::write_all_at(&w, &v2[..MIB], 8 * MIB as u64).unwrap();
    let (rest, ended) = read_rest(&mut reader);
    head.extend_from_slice(&rest);
    assert_one_version(&head, ended, &v1, "beside a rewrite in the middle");
    w.flush().unwrap();
    drop(w);
    let mut want = v1.clone();
    want[8 * MIB..9 * MIB].copy_from_slice(&v2[..MIB]);
    assert!(env.object_bytes("ow/c.bin").unwrap() == want);
}

/// Item 8: the answer to Complete is lost after COS applied it; the client's retry gets
/// NoSuchUpload. The object is checked (size, part count, CRC-64 of what was sent) before
/// calling that a failure: close succeeds (main returned EIO for a committed object).
#[test]
fn a_lost_complete_answer_is_checked_against_the_object() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    mount_with_cache(&mut env, cache.path(), &[]);
    std::fs::create_dir(env.path("lost")).unwrap();
    env.set_faults("rate=1&kinds=drop-answer&ops=CompleteMultipartUpload&count=1");
    let data = pattern(10 * MIB, 8);
    let mut f = File::create(env.path("lost/f.bin")).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all()
        .expect("fsync succeeds: the object is committed");
    drop(f);
    env.clear_faults();
    assert!(env.object_bytes("lost/f.bin").unwrap() == data);
}

/// Item 8: a 5 s outage (every request answered 503 SlowDown) does not fail a write: the
/// retry budget is tens of seconds (main gave up after about 1.5 s).
#[test]
fn a_five_second_outage_does_not_fail_a_write() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    mount_with_cache(&mut env, cache.path(), &[]);
    std::fs::create_dir(env.path("outage")).unwrap();
    let data = pattern(3 * MIB, 9);
    let mut f = File::create(env.path("outage/f.bin")).unwrap();
    f.write_all(&data).unwrap();
    env.set_faults("rate=1&kinds=slowdown");
    // The fsync (the upload) runs during the outage; the server comes back 5 s later.
    let syncing = std::thread::spawn(move || f.sync_all());
    std::thread::sleep(std::time::Duration::from_secs(5));
    env.clear_faults();
    let synced = syncing.join().unwrap();
    synced.expect("the write survives the outage");
    assert!(env.object_bytes("outage/f.bin").unwrap() == data);
}
