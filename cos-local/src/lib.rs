//! cos-local: a COS-compatible object server on the local disk, for tests, demos and offline
//! use. See README.md for what it implements and how it differs from real COS.
//!
//! Pipeline of one request (`server::handle`): request id and timer, addressing (virtual host or
//! path style), fault injection, signature check (`auth`), dispatch on method + query + headers
//! to one handler per operation (`ops`), COS error rendering, CORS headers, access log.

pub mod auth;
pub mod clock;
pub mod error;
pub mod header_case;
pub mod model;
pub mod operation;
pub mod ops;
pub mod server;
pub mod sigv4;
pub mod store;
pub mod xml;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

pub use auth::Credentials;
pub use operation::Operation;
pub use server::{FaultConfig, FaultKind};

/// The credentials used when none are given (printed at start; see README.md).
pub const DEFAULT_SECRET_ID: &str = "AKIDCOSLOCALEXAMPLE";
pub const DEFAULT_SECRET_KEY: &str = "cos-local-secret-key";
pub const DEFAULT_REGION: &str = "ap-guangzhou";

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Config {
    pub data_dir: PathBuf,
    pub credentials: Credentials,
    /// Buckets created at start if missing.
    pub buckets: Vec<String>,
    pub region: String,
    pub access_log: Option<PathBuf>,
    pub faults: FaultConfig,
    /// Seconds added to the system clock for everything the server dates (`Date`, the skew
    /// check, Last-Modified); process-wide.
    pub clock_offset_secs: i64,
}

impl Config {
    /// A config with the default credentials and region and no faults.
    pub fn new(data_dir: impl Into<PathBuf>) -> Config {
        let mut credentials = Credentials::new();
        credentials.insert(
            DEFAULT_SECRET_ID.to_string(),
            DEFAULT_SECRET_KEY.to_string(),
        );
        Config {
            data_dir: data_dir.into(),
            credentials,
            buckets: Vec::new(),
            region: DEFAULT_REGION.to_string(),
            access_log: None,
            faults: FaultConfig::default(),
            clock_offset_secs: 0,
        }
    }
}

/// A server running in this process (for tests): dropping it stops the accept loop.
pub struct RunningServer {
    pub addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl RunningServer {
    /// Stop accepting and wait for the accept loop to end.
    pub async fn stop(mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let _ = (&mut self.task).await;
    }
}

impl Drop for RunningServer {
    fn drop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

/// Open the store, create the configured buckets, bind `listen` and serve in a background task.
pub async fn spawn(config: Config, listen: SocketAddr) -> anyhow::Result<RunningServer> {
    let app = Arc::new(server::App::open(config)?);
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let addr = listener.local_addr()?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    let task = tokio::spawn(server::serve(app, listener, async {
        let _ = rx.await;
    }));
    Ok(RunningServer {
        addr,
        stop: Some(tx),
        task,
    })
}
