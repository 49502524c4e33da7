//! A cos-local child process, shared by the mount harness (`common`) and the client tests
//! (`common_client`, which includes this file by path): find or build the binary, start it on a
//! free port, read the address it reports, and kill it on drop (also when the test panics).

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;

/// target/debug (or the profile in use): the test executable lives in its `deps/`.
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    exe.parent()
        .and_then(Path::parent)
        .expect("target dir")
        .to_path_buf()
}

/// cos-local is another package of the workspace, so cargo does not build it for our tests;
/// build it once if it is missing.
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
                "cos-local is not built and `cargo build -p cos-local` failed; build it first"
            );
        }
    });
    assert!(
        bin.exists(),
        "cos-local binary missing at {}: run `cargo build -p cos-local`",
        bin.display()
    );
    bin
}

/// What a running cos-local needs to be told.
pub struct CosLocalArgs<'a> {
    pub data_dir: &'a Path,
    pub bucket: &'a str,
    pub secret_id: &'a str,
    pub secret_key: &'a str,
}

pub struct CosLocalProcess {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
}

impl CosLocalProcess {
    /// Start on 127.0.0.1:0 with one bucket and one credential pair, plus `extra` arguments
    /// (region, access log, faults...); returns once cos-local has reported its address.
    pub fn start<I, S>(args: &CosLocalArgs, extra: I) -> CosLocalProcess
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut child = Command::new(cos_local_bin())
            .arg("--data-dir")
            .arg(args.data_dir)
            .args(["--listen", "127.0.0.1:0", "--bucket", args.bucket])
            .arg("--credentials")
            .arg(format!("{}:{}", args.secret_id, args.secret_key))
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
        CosLocalProcess { child, endpoint }
    }

    /// Kill it now; later requests fail as if COS were gone.
    pub fn stop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for CosLocalProcess {
    fn drop(&mut self) {
        self.stop();
    }
}
