//! Crash-safe writes over a real mount (issue 10 items 4, 7, 8): the spool journal after
//! kill -9 and SIGTERM, `cosmount recover`, and no multipart upload left behind by a lost
//! Initiate answer.
//!
//! Each test checks the bucket through the COS client, behind the mount's back.

mod common;

use std::fs::File;
use std::io::Write;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output};
use std::time::{Duration, Instant};

use common::{cosmount_bin, pattern, TestEnv, BUCKET, SECRET_ID, SECRET_KEY};
use cosmount::cos::multipart::ListUploadsParams;

const MIB: usize = 1 << 20;
/// Upper bound for waits on the daemon; only reached when something is broken.
const WAIT: Duration = Duration::from_secs(120);

/// Keys of the bucket's incomplete multipart uploads.
fn pending_uploads(env: &TestEnv) -> Vec<String> {
    let client = env.client();
    let page = env
        .rt
        .block_on(client.list_multipart_uploads(&ListUploadsParams::default()))
        .expect("list multipart uploads");
    page.uploads.into_iter().map(|u| u.key).collect()
}

/// Files in the spool directory (spool files and journal records).
fn spool_entries(cache: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(cache.join("spool"))
        .map(|d| d.map(|e| e.unwrap().path()).collect())
        .unwrap_or_default();
    v.sort();
    v
}

/// `cosmount recover BUCKET --endpoint E --cache-dir CACHE ARGS...`.
fn recover(env: &TestEnv, cache: &Path, args: &[&str]) -> Output {
    Command::new(cosmount_bin())
        .arg("recover")
        .arg(BUCKET)
        .arg("--endpoint")
        .arg(&env.endpoint)
        .arg("--cache-dir")
        .arg(cache)
        .args(args)
        .env("COS_SECRET_ID", SECRET_ID)
        .env("COS_SECRET_KEY", SECRET_KEY)
        .env_remove("COS_SECURITY_TOKEN")
        .output()
        .expect("run cosmount recover")
}

fn text(out: &[u8]) -> String {
    String::from_utf8_lossy(out).into_owned()
}

fn cache_opt(cache: &Path) -> String {
    format!("cache_dir={}", cache.display())
}

/// Wait until `cond` holds (bounded by [`WAIT`], a safety net only).
fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let started = Instant::now();
    while !cond() {
        assert!(started.elapsed() < WAIT, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn log_has(log: &Path, needle: &str) -> bool {
    std::fs::read_to_string(log).is_ok_and(|t| t.contains(needle))
}

/// Wait for the daemon to exit on its own (SIGTERM); kill it at the safety-net deadline.
fn wait_exit(child: &mut Child) {
    let started = Instant::now();
    loop {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        if started.elapsed() > WAIT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon did not exit after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A shell pipeline in its own process group, killed (the whole group) on drop.
struct Group(Child);

impl Group {
    fn spawn(script: &str) -> Group {
        let child = Command::new("bash")
            .arg("-c")
            .arg(script)
            .process_group(0)
            .spawn()
            .expect("spawn bash");
        Group(child)
    }

    fn signal(&self, sig: i32) {
        // SAFETY: signals our own child's process group.
        unsafe { libc::kill(-(self.0.id() as i32), sig) };
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        self.signal(libc::SIGKILL);
        let _ = self.0.wait();
    }
}

/// Items 7/8: kill -9 of the daemon while two writers hold files open after writing 20 MiB
/// each. The bucket has no partial object; the next mount logs both leftovers; `recover`
/// lists them, `--commit` uploads one with the right bytes, `--discard` drops the other, and
/// nothing is left (no spool file, no record, no multipart upload). On main the spool files
/// had no record, the next mount said nothing, and the multipart uploads stayed.
#[test]
fn kill_9_mid_write_leaves_a_journal_that_recover_commits_or_discards() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    let opt = cache_opt(cache.path());
    env.mount(&["-o", &opt]);
    std::fs::create_dir(env.path("crash")).unwrap();
    let a = pattern(20 * MIB, 1);
    let b = pattern(20 * MIB, 2);
    let mut fa = File::create(env.path("crash/a.bin")).unwrap();
    fa.write_all(&a).unwrap();
    let mut fb = File::create(env.path("crash/b.bin")).unwrap();
    fb.write_all(&b).unwrap();

    let daemon = env.mount_process().unwrap();
    daemon.kill().unwrap(); // SIGKILL
    let _ = daemon.wait();
    env.unmount();
    drop(fa);
    drop(fb);

    assert_eq!(env.object_bytes("crash/a.bin"), None, "no partial object");
    assert_eq!(env.object_bytes("crash/b.bin"), None, "no partial object");
    assert!(
        !pending_uploads(&env).is_empty(),
        "the crashed mount's multipart uploads are still there (streamed parts)"
    );

    // The next mount reports what is left, one line per file.
    let log = cache.path().join("second-mount.log");
    env.mount_logged(&["-o", &opt], &log);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("2 unfinished write(s)") && log_text.contains("cosmount recover"),
        "{log_text}"
    );
    assert!(log_text.contains("key=crash/a.bin"), "{log_text}");
    assert!(log_text.contains("key=crash/b.bin"), "{log_text}");
    env.unmount();

    let listed = recover(&env, cache.path(), &[]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    let listing = text(&listed.stdout);
    assert!(
        listing.contains(&format!("open\tcrash/a.bin\t{}\t", 20 * MIB)),
        "{listing}"
    );
    assert!(listing.contains("open\tcrash/b.bin\t"), "{listing}");

    let committed = recover(&env, cache.path(), &["--commit", "--key", "crash/a.bin"]);
    assert!(committed.status.success(), "{}", text(&committed.stderr));
    assert!(text(&committed.stdout).starts_with("committed\tcrash/a.bin\t"));
    assert!(
        env.object_bytes("crash/a.bin").unwrap() == a,
        "the right bytes"
    );

    let discarded = recover(&env, cache.path(), &["--discard", "--key", "crash/b.bin"]);
    assert!(discarded.status.success(), "{}", text(&discarded.stderr));
    assert_eq!(env.object_bytes("crash/b.bin"), None);

    assert_eq!(
        pending_uploads(&env),
        Vec::<String>::new(),
        "no upload left"
    );
    assert_eq!(spool_entries(cache.path()), Vec::<PathBuf>::new());
    let again = recover(&env, cache.path(), &[]);
    assert_eq!(text(&again.stdout), "", "nothing left to list");
}

/// A recovery never overwrites an object that changed since the write began: the spool is
/// kept and the reason printed.
#[test]
fn recover_does_not_overwrite_a_newer_object() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    env.put("c/f.txt", &b"version 1"[..]);
    let opt = cache_opt(cache.path());
    env.mount(&["-o", &opt]);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .open(env.path("c/f.txt"))
        .unwrap();
    f.write_all(b"VERSION").unwrap();
    let daemon = env.mount_process().unwrap();
    daemon.kill().unwrap();
    let _ = daemon.wait();
    env.unmount();
    drop(f);
    // Someone else writes the object meanwhile.
    env.put("c/f.txt", &b"version 2 from elsewhere"[..]);
    let out = recover(&env, cache.path(), &["--commit"]);
    assert!(!out.status.success());
    assert!(
        text(&out.stderr).contains("changed since the write began"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(
        env.object_bytes("c/f.txt").unwrap(),
        b"version 2 from elsewhere"
    );
    assert_eq!(
        spool_entries(cache.path()).len(),
        2,
        "spool and record kept"
    );
    let out = recover(&env, cache.path(), &["--discard"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(spool_entries(cache.path()), Vec::<PathBuf>::new());
}

/// Item 7 (rewrite of an existing object): the journal records which ranges the writer
/// changed, so a recovery commits the old bytes elsewhere and the new ones where written.
#[test]
fn recover_of_a_partial_rewrite_keeps_the_unwritten_bytes() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    let original = pattern(12 * MIB, 5);
    env.put("p/big.bin", original.clone());
    let opt = cache_opt(cache.path());
    env.mount(&["-o", &opt]);
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(env.path("p/big.bin"))
        .unwrap();
    use std::os::unix::fs::FileExt;
    f.write_all_at(b"changed in the middle", 5 * MIB as u64)
        .unwrap();
    f.write_all_at(b"and at the end", 12 * MIB as u64).unwrap();
    let daemon = env.mount_process().unwrap();
    daemon.kill().unwrap();
    let _ = daemon.wait();
    env.unmount();
    drop(f);
    assert!(
        env.object_bytes("p/big.bin").unwrap() == original,
        "untouched"
    );
    let out = recover(&env, cache.path(), &["--commit"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    let mut expected = original;
    expected[5 * MIB..5 * MIB + 21].copy_from_slice(b"changed in the middle");
    expected.extend_from_slice(b"and at the end");
    assert!(env.object_bytes("p/big.bin").unwrap() == expected);
    assert_eq!(spool_entries(cache.path()), Vec::<PathBuf>::new());
    assert_eq!(pending_uploads(&env), Vec::<String>::new());
}

/// Item 4: SIGTERM while `dd` is writing 40 MiB (20 MiB written, the rest not yet), and the
/// writer killed by the same shutdown (as systemd stops a service): the object is not created
/// with a partial body, the log names the key left in the journal, and `recover --commit`
/// stores what had been written. On main the mount uploaded the half-written file.
#[test]
fn sigterm_during_dd_leaves_the_file_in_the_journal() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    let opt = cache_opt(cache.path());
    let log = cache.path().join("mount.log");
    env.mount_logged(&["-o", &opt], &log);
    std::fs::create_dir(env.path("term")).unwrap();
    let src = cache.path().join("src.bin");
    let data = pattern(40 * MIB, 7);
    std::fs::write(&src, &data).unwrap();
    let target = env.path("term/f.bin");
    let dd = Group::spawn(&format!(
        "{{ head -c {half} '{src}'; sleep 600; tail -c +{next} '{src}'; }} | dd of='{target}' bs=1M iflag=fullblock status=none",
        half = 20 * MIB,
        next = 20 * MIB + 1,
        src = src.display(),
        target = target.display()
    ));
    // 20 MiB in the spool: dd now waits for more input, holding the file open.
    wait_for("20 MiB in the spool", || {
        spool_entries(cache.path()).iter().any(|p| {
            p.extension().is_some_and(|x| x == "part")
                && std::fs::metadata(p).is_ok_and(|m| m.len() == 20 * MIB as u64)
        })
    });
    let pid = env.mount_process().unwrap().id() as i32;
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_for("the daemon to see the signal", || {
        log_has(&log, "signal received")
    });
    // The shutdown kills the writer too: its close must not commit the half file.
    dd.signal(libc::SIGTERM);
    wait_exit(env.mount_process().unwrap());
    env.unmount();
    drop(dd);

    assert_eq!(env.object_bytes("term/f.bin"), None, "no partial object");
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("not committed: left in the spool journal")
            && log_text.contains("term/f.bin")
            && log_text.contains("cosmount recover"),
        "{log_text}"
    );
    let listed = recover(&env, cache.path(), &[]);
    assert!(
        text(&listed.stdout).contains(&format!("open\tterm/f.bin\t{}\t", 20 * MIB)),
        "{}",
        text(&listed.stdout)
    );
    let out = recover(&env, cache.path(), &["--commit"]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(
        env.object_bytes("term/f.bin").unwrap()[..] == data[..20 * MIB],
        "what dd had written"
    );
    assert_eq!(pending_uploads(&env), Vec::<String>::new());
    assert_eq!(
        spool_entries(cache.path())
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "part" || x == "journal"))
            .count(),
        0
    );
}

/// Item 4: a file closed before SIGTERM is committed; one closed by its (live) writer during
/// the shutdown too. Only what nobody closed stays in the journal.
#[test]
fn sigterm_still_commits_closed_files() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    let opt = cache_opt(cache.path());
    let log = cache.path().join("mount.log");
    env.mount_logged(&["-o", &opt], &log);
    let done = pattern(3 * MIB, 3);
    std::fs::write(env.path("closed.bin"), &done).unwrap();
    let mut open = File::create(env.path("open.bin")).unwrap();
    open.write_all(&pattern(MIB, 4)).unwrap();
    let pid = env.mount_process().unwrap().id() as i32;
    // SAFETY: signals our own child.
    unsafe { libc::kill(pid, libc::SIGTERM) };
    wait_for("the daemon to see the signal", || {
        log_has(&log, "signal received")
    });
    // A live program closing its file during the shutdown: that close commits.
    open.write_all(b"tail").unwrap();
    drop(open);
    wait_exit(env.mount_process().unwrap());
    env.unmount();
    assert!(env.object_bytes("closed.bin").unwrap() == done);
    let mut expected = pattern(MIB, 4);
    expected.extend_from_slice(b"tail");
    assert!(env.object_bytes("open.bin").unwrap() == expected);
    let listed = recover(&env, cache.path(), &[]);
    assert_eq!(text(&listed.stdout), "", "nothing left in the journal");
}

/// Item 8: the answer to Initiate Multipart Upload is lost after COS applied it; the client's
/// retry starts a second upload. The first is found by listing the key's uploads and aborted:
/// after close, no multipart upload is left (main leaked one per lost answer).
#[test]
fn a_lost_initiate_answer_leaves_no_upload_behind() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    let opt = cache_opt(cache.path());
    env.mount(&["-o", &opt]);
    std::fs::create_dir(env.path("init")).unwrap();
    env.set_faults("rate=1&kinds=drop-answer&ops=InitiateMultipartUpload&count=1");
    let data = pattern(20 * MIB, 11);
    let mut f = File::create(env.path("init/f.bin")).unwrap();
    f.write_all(&data).unwrap();
    f.sync_all().expect("the upload succeeds");
    drop(f);
    env.clear_faults();
    assert!(env.object_bytes("init/f.bin").unwrap() == data);
    let initiates = std::fs::read_to_string(&env.access_log)
        .unwrap()
        .lines()
        .filter(|l| l.ends_with("InitiateMultipartUpload") && l.contains("/init/f.bin"))
        .count();
    assert_eq!(initiates, 2, "the lost answer and the retry");
    assert_eq!(pending_uploads(&env), Vec::<String>::new(), "no leak");
}

/// Access-log lines from line `from` on.
fn access_lines(env: &TestEnv, from: usize) -> Vec<String> {
    std::fs::read_to_string(&env.access_log)
        .unwrap_or_default()
        .lines()
        .skip(from)
        .map(str::to_string)
        .collect()
}

/// Upload Part requests in `lines`: (part number, status, injected fault if any).
fn upload_parts(lines: &[String]) -> Vec<(u32, String, Option<String>)> {
    lines
        .iter()
        .filter(|l| l.ends_with(" UploadPart"))
        .filter_map(|l| {
            let fields: Vec<&str> = l.split(' ').collect();
            let target = fields.get(2)?;
            let number = target
                .split_once('?')?
                .1
                .split('&')
                .find_map(|p| p.strip_prefix("partNumber="))?
                .parse()
                .ok()?;
            let status = fields.get(3)?.to_string();
            let fault = fields
                .iter()
                .find_map(|f| f.strip_prefix("fault="))
                .map(str::to_string);
            Some((number, status, fault))
        })
        .collect()
}

/// Part numbers COS accepted (200) in `lines`, sorted.
fn parts_stored(lines: &[String]) -> Vec<u32> {
    let mut v: Vec<u32> = upload_parts(lines)
        .into_iter()
        .filter(|(_, status, _)| status == "200")
        .map(|(n, _, _)| n)
        .collect();
    v.sort_unstable();
    v
}

/// The object is exactly `data` (compared 8 MiB at a time, through the client).
fn assert_object_is(env: &TestEnv, key: &str, data: &[u8]) {
    use cosmount::cos::ObjectStore;
    let client = env.client();
    let info = env
        .rt
        .block_on(ObjectStore::head_object(&client, key))
        .unwrap_or_else(|e| panic!("HEAD {key}: {e}"));
    assert_eq!(info.size, data.len() as u64, "size of {key}");
    for (i, chunk) in data.chunks(8 * MIB).enumerate() {
        let at = (i * 8 * MIB) as u64;
        let got = env
            .rt
            .block_on(ObjectStore::get_range(
                &client,
                key,
                at,
                chunk.len() as u64,
                None,
            ))
            .unwrap_or_else(|e| panic!("GET {key} at {at}: {e}"));
        assert!(got.data[..] == chunk[..], "{key}: bytes differ at {at}");
    }
}

fn journal_files(cache: &Path) -> Vec<PathBuf> {
    spool_entries(cache)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|x| x == "part" || x == "journal"))
        .collect()
}

/// Issue 10, must show: kill -9 while `close()` of a 200 MiB file is committing, after parts
/// 1-12 were stored (streamed while writing) and parts 13-16 are on the wire (cos-local holds
/// them unanswered). The next mount on the same cache_dir resumes the commit by itself in the
/// background: List Parts, then only parts 13-25 are sent, no part is stored twice, and the
/// object is the file. One log line names the key, parts reused and sent, and the result.
#[test]
fn kill_9_during_close_the_next_mount_resumes_from_list_parts() {
    use std::os::unix::fs::FileExt;
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    let opt = cache_opt(cache.path());
    env.mount(&["-o", &opt]);
    std::fs::create_dir(env.path("big")).unwrap();
    let data = pattern(200 * MIB, 21);
    let half = 100 * MIB;
    let mut f = File::create(env.path("big/f.bin")).unwrap();
    for chunk in data[..half].chunks(MIB) {
        f.write_all(chunk).unwrap();
    }
    // 100 MiB written in order: parts 1-12 (8 MiB each) are streamed; part 13 may still grow.
    wait_for("parts 1-12 stored", || {
        parts_stored(&access_lines(&env, 0)) == (1..=12).collect::<Vec<u32>>()
    });
    // From now on cos-local reads every part and never answers.
    env.set_faults("rate=1&kinds=stall&ops=UploadPart");
    // The rest out of order (the end first), so nothing more streams: close() sends it.
    f.write_all_at(&data[199 * MIB..], 199 * MIB as u64)
        .unwrap();
    for (i, chunk) in data[half..199 * MIB].chunks(MIB).enumerate() {
        f.write_all_at(chunk, (half + i * MIB) as u64).unwrap();
    }
    let closer = std::thread::spawn(move || drop(f));
    // Four parts on the wire fill the upload slots; each slot was freed by recording a
    // finished part, so parts 1-12 are in the journal now.
    wait_for("close() to send parts 13-16", || {
        upload_parts(&access_lines(&env, 0))
            .iter()
            .filter(|(_, _, fault)| fault.as_deref() == Some("stall"))
            .count()
            >= 4
    });
    let daemon = env.mount_process().unwrap();
    daemon.kill().unwrap(); // SIGKILL
    let _ = daemon.wait();
    env.unmount();
    let _ = closer.join();
    env.clear_faults();
    assert_eq!(env.object_bytes("big/f.bin"), None, "no partial object");
    let listed = recover(&env, cache.path(), &["--list"]);
    assert!(
        text(&listed.stdout).contains(&format!("committing\tbig/f.bin\t{}\t", 200 * MIB)),
        "{}",
        text(&listed.stdout)
    );

    let before = access_lines(&env, 0).len();
    let log = cache.path().join("second-mount.log");
    env.mount_logged(&["-o", &opt], &log);
    wait_for("the resumed commit's log line", || {
        log_has(&log, "resumed commit: key=big/f.bin")
    });
    let log_text = std::fs::read_to_string(&log).unwrap();
    let line = log_text
        .lines()
        .find(|l| l.contains("resumed commit: key=big/f.bin"))
        .unwrap();
    assert!(
        line.contains(&format!(
            "size={} parts=25 reused=12 sent=13 result=committed",
            200 * MIB
        )),
        "{line}"
    );
    assert_object_is(&env, "big/f.bin", &data);
    let since = access_lines(&env, before);
    assert!(
        since.iter().any(|l| l.ends_with(" ListParts")),
        "asked COS what it holds"
    );
    assert_eq!(
        parts_stored(&since),
        (13..=25).collect::<Vec<u32>>(),
        "only the missing parts are sent"
    );
    assert_eq!(
        parts_stored(&access_lines(&env, 0)),
        (1..=25).collect::<Vec<u32>>(),
        "no part stored twice"
    );
    assert_eq!(pending_uploads(&env), Vec::<String>::new());
    assert_eq!(journal_files(cache.path()), Vec::<PathBuf>::new());
    // Through the mount too.
    assert_eq!(
        std::fs::metadata(env.path("big/f.bin")).unwrap().len(),
        200 * MIB as u64
    );
}

/// Issue 10, must show: kill -9 mid-`dd` of 200 MiB (100 MiB written, the file still open).
/// The next mount does not commit it (the application had not finished it) and names it in
/// its log; `cosmount recover --list` lists it with its key and size; `--drop KEY` leaves no
/// spool file, no journal record and no multipart upload.
#[test]
fn kill_9_mid_dd_is_listed_not_committed_and_drop_leaves_nothing() {
    let mut env = TestEnv::start();
    let cache = tempfile::tempdir().unwrap();
    let opt = cache_opt(cache.path());
    env.mount(&["-o", &opt]);
    std::fs::create_dir(env.path("dd")).unwrap();
    let src = cache.path().join("src.bin");
    std::fs::write(&src, pattern(200 * MIB, 22)).unwrap();
    let target = env.path("dd/f.bin");
    let dd = Group::spawn(&format!(
        "{{ head -c {half} '{src}'; sleep 600; tail -c +{next} '{src}'; }} | dd of='{target}' bs=1M iflag=fullblock status=none",
        half = 100 * MIB,
        next = 100 * MIB + 1,
        src = src.display(),
        target = target.display()
    ));
    wait_for("100 MiB in the spool and parts streamed", || {
        spool_entries(cache.path()).iter().any(|p| {
            p.extension().is_some_and(|x| x == "part")
                && std::fs::metadata(p).is_ok_and(|m| m.len() == 100 * MIB as u64)
        }) && !parts_stored(&access_lines(&env, 0)).is_empty()
    });
    let daemon = env.mount_process().unwrap();
    daemon.kill().unwrap(); // SIGKILL
    let _ = daemon.wait();
    env.unmount();
    drop(dd);
    assert_eq!(env.object_bytes("dd/f.bin"), None, "no partial object");
    assert_eq!(pending_uploads(&env), vec!["dd/f.bin".to_string()]);

    let log = cache.path().join("second-mount.log");
    env.mount_logged(&["-o", &opt], &log);
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert!(
        log_text.contains("unfinished write: key=dd/f.bin") && log_text.contains("state=open"),
        "{log_text}"
    );
    assert!(!log_text.contains("resumed commit"), "{log_text}");
    assert_eq!(env.object_bytes("dd/f.bin"), None, "not committed");

    // With the mount up (it does not hold the leftover).
    let listed = recover(&env, cache.path(), &["--list"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert!(
        text(&listed.stdout).contains(&format!("open\tdd/f.bin\t{}\t", 100 * MIB)),
        "{}",
        text(&listed.stdout)
    );
    let dropped = recover(&env, cache.path(), &["--drop", "dd/f.bin"]);
    assert!(dropped.status.success(), "{}", text(&dropped.stderr));
    assert!(
        text(&dropped.stdout).starts_with("dropped\tdd/f.bin\t"),
        "{}",
        text(&dropped.stdout)
    );
    assert_eq!(journal_files(cache.path()), Vec::<PathBuf>::new());
    assert_eq!(pending_uploads(&env), Vec::<String>::new());
    assert_eq!(env.object_bytes("dd/f.bin"), None);
    let again = recover(&env, cache.path(), &["--list"]);
    assert_eq!(text(&again.stdout), "", "nothing left to list");
    let unknown = recover(&env, cache.path(), &["--drop", "dd/f.bin"]);
    assert!(
        !unknown.status.success(),
        "dropping what is not there fails"
    );
}
