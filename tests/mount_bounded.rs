//! Bounded waits over a real mount: a COS endpoint that accepts connections but never answers
//! makes syscalls fail with EIO within the retry budget, a killed caller is released, and a
//! mount against such an endpoint fails with a clear reason.
//!
//! No timing thresholds: the outer watchdogs only turn a hang into a test failure.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::TestEnv;

/// Only reached when a wait is unbounded (the bug these tests are about).
const WATCHDOG: Duration = Duration::from_secs(180);

/// A loopback TCP proxy to cos-local that can turn into a black hole: once `stall` is set it
/// still accepts connections and reads requests, but forwards nothing and answers nothing.
struct BlackHoleProxy {
    addr: String,
    stall: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
}

impl BlackHoleProxy {
    /// `upstream`: `host:port` to forward to, or `None` for a black hole from the start.
    fn start(upstream: Option<String>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let addr = listener.local_addr().expect("proxy addr").to_string();
        let stall = Arc::new(AtomicBool::new(upstream.is_none()));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        {
            let (stall, stop, conns) = (stall.clone(), stop.clone(), conns.clone());
            thread::spawn(move || {
                for client in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(client) = client else { continue };
                    if let Ok(c) = client.try_clone() {
                        conns.lock().unwrap().push(c);
                    }
                    let server = match (&upstream, stall.load(Ordering::SeqCst)) {
                        (Some(up), false) => TcpStream::connect(up).ok(),
                        _ => None,
                    };
                    let Some(server) = server else {
                        // Black hole: read and drop whatever arrives, never answer.
                        thread::spawn(move || drain(client));
                        continue;
                    };
                    if let Ok(s) = server.try_clone() {
                        conns.lock().unwrap().push(s);
                    }
                    let (c2, s2) = (client.try_clone().unwrap(), server.try_clone().unwrap());
                    let stall_up = stall.clone();
                    thread::spawn(move || pump(client, server, Some(stall_up)));
                    thread::spawn(move || pump(s2, c2, None));
                }
            });
        }
        BlackHoleProxy {
            addr,
            stall,
            stop,
            conns,
        }
    }

    fn endpoint(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// From now on nothing more reaches the server, on new and on pooled connections.
    fn stall(&self) {
        self.stall.store(true, Ordering::SeqCst);
    }
}

impl Drop for BlackHoleProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(&self.addr);
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn drain(mut s: TcpStream) {
    let mut buf = [0u8; 64 << 10];
    while matches!(s.read(&mut buf), Ok(n) if n > 0) {}
}

/// Copy `from` to `to`; with `stall`, bytes read after it is set are dropped instead.
fn pump(mut from: TcpStream, mut to: TcpStream, stall: Option<Arc<AtomicBool>>) {
    let mut buf = vec![0u8; 256 << 10];
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if stall.as_ref().is_some_and(|s| s.load(Ordering::SeqCst)) {
            continue;
        }
        if to.write_all(&buf[..n]).is_err() {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

/// Run `f` on a thread; its result, or a panic if it does not finish before the watchdog.
fn within_watchdog<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(WATCHDOG).unwrap_or_else(|_| {
        panic!("{what} still blocked after {WATCHDOG:?}: the wait is unbounded")
    })
}

fn wait_child(what: &str, child: Child) -> ExitStatus {
    let child = Arc::new(Mutex::new(child));
    let c = child.clone();
    let status = within_watchdog(what, move || loop {
        if let Ok(Some(st)) = c.lock().unwrap().try_wait() {
            return st;
        }
        thread::sleep(Duration::from_millis(20));
    });
    status
}

/// Processes in uninterruptible sleep whose command line mentions `needle`.
fn d_state_processes(needle: &str) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let dir = entry.path();
        let Ok(stat) = std::fs::read_to_string(dir.join("stat")) else {
            continue;
        };
        // `pid (comm) S ...`: the state follows the last ')'.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, r)| r.trim_start().chars().next());
        let cmdline = std::fs::read(dir.join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if state == Some('D') && cmdline.contains(needle) {
            found.push(format!("{}: {cmdline}", dir.display()));
        }
    }
    found
}

/// Mount through the proxy with short limits, so the test runs quickly; caches off, so every
/// syscall below reaches the (stalled) server.
fn mount_via_proxy(env: &mut TestEnv, proxy: &BlackHoleProxy) {
    let endpoint = proxy.endpoint();
    // A later -o endpoint= overrides the harness's --endpoint.
    env.mount(&[
        "-o",
        &format!("endpoint={endpoint}"),
        "-o",
        "stall_timeout=1,retry_budget=3,connect_timeout=1,stat_ttl=0,attr_timeout=0",
    ]);
}

#[test]
fn stalled_server_gives_eio_and_killed_callers_are_released() {
    let mut env = TestEnv::start();
    env.put("present.txt", b"hello".to_vec());
    let upstream = env.endpoint.trim_start_matches("http://").to_string();
    let proxy = BlackHoleProxy::start(Some(upstream));
    mount_via_proxy(&mut env, &proxy);
    // The mount works through the proxy.
    assert_eq!(
        std::fs::read(env.path("present.txt")).expect("read before the stall"),
        b"hello"
    );

    proxy.stall();

    // stat of a name never seen: a lookup that must reach the server.
    let path = env.path("never-seen.txt");
    let err = within_watchdog("stat", move || std::fs::metadata(path))
        .expect_err("stat cannot succeed against a black hole");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "stat: {err}");

    // ls of the root: a listing.
    let root = env.path("");
    let err = within_watchdog("ls", move || {
        std::fs::read_dir(root)?.collect::<Result<Vec<_>, _>>()
    })
    .expect_err("a listing cannot succeed against a black hole");
    assert_eq!(err.raw_os_error(), Some(libc::EIO), "ls: {err}");

    // A cat blocked on the stalled server, then killed: reaped, and nothing left in D state.
    let target = env.path("present.txt");
    let mut cat = Command::new("cat")
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cat");
    thread::sleep(Duration::from_millis(300));
    let pid = cat.id() as i32;
    // SAFETY: signalling our own child.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let _ = cat.try_wait();
    let status = wait_child("killed cat", cat);
    assert!(
        status.signal() == Some(libc::SIGKILL) || !status.success(),
        "cat: {status}"
    );
    let mnt = env.mnt.to_string_lossy().to_string();
    assert_eq!(d_state_processes(&mnt), Vec::<String>::new());

    // The mount itself is still alive and answers once the server is back.
    drop(proxy);
    assert!(env.is_mounted());
}

/// A caller killed while its request waits on a stalled server is released before the retry
/// budget (here 10 min, longer than the watchdog) ends: the daemon sees the pending SIGKILL
/// and drops the request (fuser 0.18 does not pass FUSE_INTERRUPT on).
#[test]
fn a_killed_caller_is_released_before_the_retry_budget_ends() {
    let mut env = TestEnv::start();
    env.put("present.txt", b"hello".to_vec());
    let upstream = env.endpoint.trim_start_matches("http://").to_string();
    let proxy = BlackHoleProxy::start(Some(upstream));
    env.mount(&[
        "-o",
        &format!("endpoint={}", proxy.endpoint()),
        "-o",
        "stall_timeout=1,retry_budget=600,connect_timeout=1,stat_ttl=0,attr_timeout=0",
    ]);
    assert_eq!(std::fs::read(env.path("present.txt")).unwrap(), b"hello");
    proxy.stall();

    let target = env.path("present.txt");
    let cat = Command::new("cat")
        .arg(&target)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cat");
    // Wait until cat waits for the mount's answer (its kernel stack is in a FUSE request).
    let stack = format!("/proc/{}/stack", cat.id());
    within_watchdog("cat to block", move || loop {
        let s = std::fs::read_to_string(&stack).unwrap_or_default();
        if s.contains("fuse") || s.contains("request_wait_answer") {
            return;
        }
        thread::sleep(Duration::from_millis(20));
    });
    // SAFETY: signalling our own child.
    unsafe { libc::kill(cat.id() as i32, libc::SIGKILL) };
    let status = wait_child("killed cat", cat);
    assert_eq!(status.signal(), Some(libc::SIGKILL), "cat: {status}");
    assert_eq!(
        d_state_processes(&env.mnt.to_string_lossy()),
        Vec::<String>::new()
    );
    drop(proxy);
    assert!(env.is_mounted());
}

#[test]
fn mount_against_a_black_hole_fails_with_a_clear_reason() {
    let env = TestEnv::start();
    let hole = BlackHoleProxy::start(None);
    let endpoint = hole.endpoint();
    let child = env
        .cosmount_cmd(&["-o", &format!("endpoint={endpoint}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn cosmount");
    let out = within_watchdog("mount against a black hole", move || {
        child.wait_with_output().expect("cosmount output")
    });
    assert!(!out.status.success(), "the mount must fail");
    assert!(!env.is_mounted());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("endpoint unreachable") && stderr.contains("stopped answering"),
        "unclear reason: {stderr}"
    );
}
