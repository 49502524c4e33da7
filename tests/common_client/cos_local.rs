//! A cos-local process for round-trip tests: its own temp data dir, a free port, the test
//! credentials; killed (and its data removed) on drop, also when the test panics.

use super::cos_local_process::{CosLocalArgs, CosLocalProcess};
use super::{BUCKET, SECRET_ID, SECRET_KEY};

pub struct CosLocal {
    // Declared before `_data` so the process is killed before its data dir is removed.
    _process: CosLocalProcess,
    /// `http://127.0.0.1:PORT`
    pub endpoint: String,
    _data: tempfile::TempDir,
}

impl CosLocal {
    /// Start with the test bucket and credentials, plus `extra` arguments (e.g. faults).
    pub fn start(extra: &[&str]) -> CosLocal {
        let data = tempfile::tempdir().expect("temp dir");
        let args = CosLocalArgs {
            data_dir: data.path(),
            bucket: BUCKET,
            secret_id: SECRET_ID,
            secret_key: SECRET_KEY,
        };
        let region = ["--region", "ap-guangzhou"];
        let process = CosLocalProcess::start(&args, region.iter().chain(extra));
        CosLocal {
            endpoint: process.endpoint.clone(),
            _process: process,
            _data: data,
        }
    }
}
