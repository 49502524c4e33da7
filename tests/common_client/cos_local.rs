//! A cos-local process for round-trip tests: its own temp data dir, a free port, the test
//! credentials; killed (and its data removed) on drop, also when the test panics.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;

use super::{BUCKET, SECRET_ID, SECRET_KEY};

/// target/debug (the test executable lives in its `deps/`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// cos-local is another package of the workspace; build it once if it is missing.
fn cos_local_bin() -> PathBuf {
    static BUILD: Once = Once::new();
    let bin = target_dir().join("cos-local");
    BUILD.call_once(|| {
        if !bin.exists() {
            let status = Command::new(env!("CARGO"))
                .args(["build", "-p", "cos-local"])
                .current_dir(env!("CARGO_MANIFEST_DIR"))
                .status();
            assert!(
                matches!(status, Ok(s) if s.success()),
                "cos-local is not built and `cargo build -p cos-local` failed"
            );
        }
    });
    assert!(
        bin.exists(),
        "cos-local missing at {}: run `cargo build -p cos-local`",
        bin.display()
    );
    bin
}

pub struct CosLocal {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    _data: tempfile::TempDir,
}

impl CosLocal {
    /// Start with the test bucket and credentials, plus `extra` arguments (e.g. faults).
    pub fn start(extra: &[&str]) -> CosLocal {
        let data = tempfile::tempdir().expect("temp dir");
        let mut child = Command::new(cos_local_bin())
            .arg("--data-dir")
            .arg(data.path())
            .args([
                "--listen",
                "127.0.0.1:0",
                "--bucket",
                BUCKET,
                "--region",
                "ap-guangzhou",
            ])
            .arg("--credentials")
            .arg(format!("{SECRET_ID}:{SECRET_KEY}"))
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn cos-local");
        let stdout = child.stdout.take().expect("cos-local stdout");
        let mut reader = BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let Some(endpoint) = line.trim().strip_prefix("cos-local listening on ") else {
            let _ = child.kill();
            let _ = child.wait();
            panic!("cos-local did not report its address (got {line:?})");
        };
        let endpoint = endpoint.to_string();
        // Keep draining stdout so cos-local never blocks on a full pipe.
        std::thread::spawn(move || {
            let mut sink = String::new();
            while reader.read_line(&mut sink).map(|n| n > 0).unwrap_or(false) {
                sink.clear();
            }
        });
        CosLocal {
            child,
            endpoint,
            _data: data,
        }
    }
}

impl Drop for CosLocal {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
