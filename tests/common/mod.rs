//! Shared harness for tests that mount for real over cos-local.
//!
//! [`TestEnv`] owns everything a test starts: a cos-local process on a free port with its own
//! temp data dir and access log, the mountpoint, and the cosmount process. Dropping it (also
//! when the test panics) unmounts lazily (`fusermount3 -u -z`, else `umount -l`) and kills the
//! children, so no test leaves a mount or a server behind.
#![allow(dead_code)] // each test binary uses a different part of the harness

use std::ffi::OsStr;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use bytes::Bytes;
use cos_protocol::Operation;
use cosmount::cos::store::PutOptions;
use cosmount::cos::{Client, ClientConfig, Credentials, ObjectStore};

mod cos_local;
use cos_local::{CosLocalArgs, CosLocalProcess};

pub const BUCKET: &str = "test-1250000000";
pub const SECRET_ID: &str = "AKIDTESTHARNESS";
pub const SECRET_KEY: &str = "harness-secret-key";
/// Upper bound for a mount to come up; only reached when something is broken.
const MOUNT_TIMEOUT: Duration = Duration::from_secs(60);

pub fn cosmount_bin() -> &'static str {
    env!("CARGO_BIN_EXE_cosmount")
}

/// Access-log counts by COS operation (cos-local ends every line with the operation's name,
/// the shared table of `cos_protocol::Operation`).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Requests {
    /// GET Bucket (ListObjects) pages.
    pub list: usize,
    pub head_object: usize,
    pub head_bucket: usize,
    pub get_object: usize,
    pub total: usize,
    /// Every operation seen, with its count.
    pub by_op: std::collections::HashMap<Operation, usize>,
}

impl Requests {
    /// How many requests of this operation were logged.
    pub fn count(&self, op: Operation) -> usize {
        self.by_op.get(&op).copied().unwrap_or(0)
    }
}

pub struct TestEnv {
    pub endpoint: String,
    pub mnt: PathBuf,
    pub access_log: PathBuf,
    pub rt: tokio::runtime::Runtime,
    cos_local: CosLocalProcess,
    mount: Option<Child>,
    _tmp: tempfile::TempDir,
}

impl TestEnv {
    /// Start cos-local with the test bucket and credentials; nothing mounted yet.
    pub fn start() -> Self {
        Self::start_with_server_args(&[])
    }

    /// [`TestEnv::start`] with more cos-local arguments (e.g. `--clock-offset 7200`).
    pub fn start_with_server_args(server_args: &[&str]) -> Self {
        let tmp = tempfile::tempdir().expect("temp dir");
        let data = tmp.path().join("data");
        let mnt = tmp.path().join("mnt");
        std::fs::create_dir_all(&mnt).expect("mountpoint");
        let access_log = tmp.path().join("access.log");
        let cos_local = CosLocalProcess::start(
            &CosLocalArgs {
                data_dir: &data,
                bucket: BUCKET,
                secret_id: SECRET_ID,
                secret_key: SECRET_KEY,
            },
            [OsStr::new("--access-log"), access_log.as_os_str()]
                .into_iter()
                .chain(server_args.iter().map(OsStr::new)),
        );
        let rt = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("runtime");
        TestEnv {
            endpoint: cos_local.endpoint.clone(),
            mnt: std::fs::canonicalize(&mnt).expect("canonical mountpoint"),
            access_log,
            rt,
            cos_local,
            mount: None,
            _tmp: tmp,
        }
    }

    /// A COS client for seeding and checking the bucket behind the mount's back.
    pub fn client(&self) -> Client {
        let mut cfg = ClientConfig::new(BUCKET, "", Credentials::new(SECRET_ID, SECRET_KEY));
        cfg.endpoint = Some(self.endpoint.clone());
        Client::new(cfg).expect("client")
    }

    pub fn put(&self, key: &str, body: impl Into<Bytes>) {
        self.put_with_options(key, body, &PutOptions::default());
    }

    /// Put an object through the client with these options (metadata, ACL, class...).
    pub fn put_with_options(&self, key: &str, body: impl Into<Bytes>, opts: &PutOptions) {
        self.rt
            .block_on(ObjectStore::put_object(
                &self.client(),
                key,
                body.into(),
                opts,
            ))
            .unwrap_or_else(|e| panic!("put {key}: {e}"));
    }

    /// Put an object carrying `x-cos-meta-*` (names without the prefix), as cosfs writes them.
    pub fn put_with_meta(&self, key: &str, body: impl Into<Bytes>, meta: &[(&str, String)]) {
        let opts = PutOptions {
            meta: meta
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone()))
                .collect(),
            ..Default::default()
        };
        self.put_with_options(key, body, &opts);
    }

    /// The object's bytes as COS holds them, read through the client (`None`: no object).
    pub fn object_bytes(&self, key: &str) -> Option<Vec<u8>> {
        let client = self.client();
        let info = match self.rt.block_on(ObjectStore::head_object(&client, key)) {
            Ok(info) => info,
            Err(e) if e.is_not_found() => return None,
            Err(e) => panic!("HEAD {key}: {e}"),
        };
        if info.size == 0 {
            return Some(Vec::new());
        }
        let got = self
            .rt
            .block_on(ObjectStore::get_range(&client, key, 0, info.size, None))
            .unwrap_or_else(|e| panic!("GET {key}: {e}"));
        Some(got.data.to_vec())
    }

    /// Put many small objects concurrently.
    pub fn put_many(&self, items: Vec<(String, Bytes)>) {
        self.put_many_with(items, PutOptions::default());
    }

    /// Put many small objects concurrently, all with the same options.
    pub fn put_many_with(&self, items: Vec<(String, Bytes)>, opts: PutOptions) {
        let client = self.client();
        let opts = std::sync::Arc::new(opts);
        self.rt.block_on(async {
            use futures::stream::{self, StreamExt};
            let results: Vec<_> = stream::iter(items)
                .map(|(k, v)| {
                    let c = client.clone();
                    let opts = opts.clone();
                    async move {
                        ObjectStore::put_object(&c, &k, v, &opts)
                            .await
                            .map_err(|e| (k, e))
                    }
                })
                .buffer_unordered(32)
                .collect()
                .await;
            for r in results {
                if let Err((k, e)) = r {
                    panic!("put {k}: {e}");
                }
            }
        });
    }

    /// The base command: source, mountpoint, endpoint and credentials in the environment.
    pub fn cosmount_cmd(&self, extra: &[&str]) -> Command {
        let mut cmd = Command::new(cosmount_bin());
        // The spool and learned metadata stay inside the test's directory (an option in
        // `extra` overrides it).
        let cache_dir = self._tmp.path().join("cache");
        cmd.arg(BUCKET)
            .arg(&self.mnt)
            .arg("--endpoint")
            .arg(&self.endpoint)
            .arg("-o")
            .arg(format!("cache_dir={}", cache_dir.display()))
            .args(extra)
            .env("COS_SECRET_ID", SECRET_ID)
            .env("COS_SECRET_KEY", SECRET_KEY)
            .env_remove("COS_SECURITY_TOKEN")
            .env("HOME", self._tmp.path());
        cmd
    }

    /// Mount in the foreground as a child process and wait until the mount is live.
    pub fn mount(&mut self, extra: &[&str]) {
        let mut args = vec!["-f"];
        args.extend_from_slice(extra);
        let mut child = self
            .cosmount_cmd(&args)
            .env("RUST_LOG", "cosmount=debug")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn cosmount");
        let started = Instant::now();
        while !is_mounted(&self.mnt) {
            if let Ok(Some(status)) = child.try_wait() {
                let mut err = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut err);
                }
                panic!("cosmount exited ({status}) before mounting:\n{err}");
            }
            if started.elapsed() > MOUNT_TIMEOUT {
                let _ = child.kill();
                panic!("mount did not come up within {MOUNT_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        // Drain stderr in the background so a chatty debug log never blocks the daemon.
        if let Some(mut e) = child.stderr.take() {
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut e, &mut std::io::sink());
            });
        }
        self.mount = Some(child);
    }

    /// [`TestEnv::mount`], with the daemon's log (stderr, debug level) going to `log`.
    pub fn mount_logged(&mut self, extra: &[&str], log: &Path) {
        let mut args = vec!["-f"];
        args.extend_from_slice(extra);
        let file = std::fs::File::create(log).expect("log file");
        let mut child = self
            .cosmount_cmd(&args)
            .env("RUST_LOG", "cosmount=debug")
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("spawn cosmount");
        let started = Instant::now();
        while !is_mounted(&self.mnt) {
            if let Ok(Some(status)) = child.try_wait() {
                let err = std::fs::read_to_string(log).unwrap_or_default();
                panic!("cosmount exited ({status}) before mounting:\n{err}");
            }
            if started.elapsed() > MOUNT_TIMEOUT {
                let _ = child.kill();
                panic!("mount did not come up within {MOUNT_TIMEOUT:?}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.mount = Some(child);
    }

    /// Run cosmount in background (daemon) mode and return its output; the caller checks it.
    pub fn mount_background(&self, extra: &[&str]) -> Output {
        self.cosmount_cmd(extra).output().expect("run cosmount")
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.mnt.join(rel)
    }

    pub fn is_mounted(&self) -> bool {
        is_mounted(&self.mnt)
    }

    /// Counts of requests cos-local has logged so far, by operation.
    pub fn requests(&self) -> Requests {
        let text = std::fs::read_to_string(&self.access_log).unwrap_or_default();
        let mut r = Requests::default();
        for line in text.lines() {
            let Some(op) = line
                .rsplit(' ')
                .next()
                .and_then(|name| name.parse::<Operation>().ok())
            else {
                continue;
            };
            r.total += 1;
            *r.by_op.entry(op).or_default() += 1;
        }
        r.list = r.count(Operation::GetBucket);
        r.head_object = r.count(Operation::HeadObject);
        r.head_bucket = r.count(Operation::HeadBucket);
        r.get_object = r.count(Operation::GetObject);
        r
    }

    /// Unmount now (the test checks what happens after).
    pub fn unmount(&mut self) {
        lazy_unmount(&self.mnt);
        if let Some(mut child) = self.mount.take() {
            let deadline = Instant::now() + Duration::from_secs(10);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stop cos-local now, leaving the mount up: later requests fail as if COS were gone.
    pub fn stop_cos_local(&mut self) {
        self.cos_local.stop();
    }

    /// Change cos-local's fault injection at runtime, e.g.
    /// `"rate=1&kinds=drop-answer&ops=CompleteMultipartUpload&count=1"` (README, cos-local
    /// section). Panics with the server's answer unless it is 200.
    pub fn set_faults(&self, query: &str) {
        self.cos_local_admin("PUT", &format!("/_cos-local/faults?{query}"));
    }

    /// Turn cos-local's fault injection off.
    pub fn clear_faults(&self) {
        self.cos_local_admin("DELETE", "/_cos-local/faults");
    }

    /// One unsigned admin request over a plain HTTP/1.1 connection; panics unless 200.
    fn cos_local_admin(&self, method: &str, target: &str) {
        use std::io::Write;
        let addr = self
            .endpoint
            .strip_prefix("http://")
            .unwrap_or(&self.endpoint)
            .trim_end_matches('/');
        let mut stream = std::net::TcpStream::connect(addr)
            .unwrap_or_else(|e| panic!("connect to cos-local at {addr}: {e}"));
        let head = format!(
            "{method} {target} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        stream
            .write_all(head.as_bytes())
            .unwrap_or_else(|e| panic!("send {method} {target}: {e}"));
        let mut answer = String::new();
        stream
            .read_to_string(&mut answer)
            .unwrap_or_else(|e| panic!("read the answer to {method} {target}: {e}"));
        let status = answer.split(' ').nth(1).unwrap_or("");
        assert_eq!(
            status, "200",
            "cos-local refused {method} {target}:\n{answer}"
        );
    }

    /// The foreground cosmount process, for signal tests.
    pub fn mount_process(&mut self) -> Option<&mut Child> {
        self.mount.as_mut()
    }
}

impl Drop for TestEnv {
    fn drop(&mut self) {
        if is_mounted(&self.mnt) {
            lazy_unmount(&self.mnt);
        }
        if let Some(mut child) = self.mount.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        self.cos_local.stop();
    }
}

/// Whether `mnt` is a mount point, from /proc/self/mountinfo (never stat a possibly hung mount).
pub fn is_mounted(mnt: &Path) -> bool {
    let want = mnt.to_string_lossy().replace(' ', "\\040");
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_default()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(want.as_str()))
}

pub fn lazy_unmount(mnt: &Path) {
    let ok = Command::new("fusermount3")
        .args(["-u", "-z"])
        .arg(mnt)
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        let _ = Command::new("umount")
            .arg("-l")
            .arg(mnt)
            .stderr(Stdio::null())
            .status();
    }
}

/// Bytes whose value depends on their position (and a seed), so any off-by-one shows.
pub fn pattern(len: usize, seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    let mut block = 0u64;
    while out.len() < len {
        // Each 8-byte word encodes its own offset and the seed.
        let word = (block.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ seed).to_le_bytes();
        let take = (len - out.len()).min(8);
        out.extend_from_slice(&word[..take]);
        block += 1;
    }
    out
}
