//! `cos-local`: serve a COS-compatible API from a directory. See README.md.

use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use cos_local::{
    server, Config, FaultConfig, FaultKind, Operation, DEFAULT_SECRET_ID, DEFAULT_SECRET_KEY,
};

#[derive(Parser, Debug)]
#[command(
    name = "cos-local",
    version,
    about = "A COS-compatible object server on the local disk"
)]
struct Args {
    /// Directory holding buckets and objects (created if missing).
    #[arg(long)]
    data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port.
    #[arg(long, default_value = "127.0.0.1:9000")]
    listen: SocketAddr,
    /// SECRETID:SECRETKEY accepted for signed requests (repeatable). Default: the documented
    /// local pair AKIDCOSLOCALEXAMPLE:cos-local-secret-key.
    #[arg(long = "credentials", value_name = "SECRETID:SECRETKEY")]
    credentials: Vec<String>,
    /// Bucket to create at start if missing (repeatable), e.g. examplebucket-1250000000.
    #[arg(long = "bucket", value_name = "NAME")]
    buckets: Vec<String>,
    /// Region reported by GET Bucket location and x-cos-bucket-region.
    #[arg(long, default_value = cos_local::DEFAULT_REGION)]
    region: String,
    /// Append one line per request to this file.
    #[arg(long)]
    access_log: Option<PathBuf>,
    /// Probability (0..1) that a request gets an injected fault.
    #[arg(long, default_value_t = 0.0)]
    fault_rate: f64,
    /// Comma-separated fault kinds: slowdown, reset, latency, drop-answer (apply the request,
    /// then close the connection without an answer), stall (never answer). Default: the first
    /// three. The setting can be changed at runtime: PUT /_cos-local/faults (see README).
    #[arg(long, value_delimiter = ',', default_value = "slowdown,reset,latency")]
    fault_kinds: Vec<FaultKind>,
    /// Comma-separated operation names (COS API names, e.g. PutObject,UploadPart) that faults
    /// are limited to; default: every operation.
    #[arg(long, value_delimiter = ',', value_name = "OPS")]
    fault_ops: Vec<Operation>,
    /// Turn fault injection off by itself after this many injected faults.
    #[arg(long, value_name = "N")]
    fault_count: Option<u64>,
    /// Shift the server's clock by this many seconds (negative: behind): its Date header, the
    /// signature time checks (expiry, 15-minute RequestTimeTooSkewed) and Last-Modified times.
    /// E.g. 7200 makes every client look 2 hours behind.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 0,
        allow_hyphen_values = true
    )]
    clock_offset: i64,
    /// Extra delay of a `latency` fault, in milliseconds.
    #[arg(long, default_value_t = 50)]
    latency_ms: u64,
}

fn config_from(args: &Args) -> anyhow::Result<Config> {
    let mut config = Config::new(&args.data_dir);
    if !args.credentials.is_empty() {
        config.credentials.clear();
        for pair in &args.credentials {
            let (id, key) = pair
                .split_once(':')
                .filter(|(id, key)| !id.is_empty() && !key.is_empty())
                .ok_or_else(|| anyhow::anyhow!("--credentials wants SECRETID:SECRETKEY"))?;
            config.credentials.insert(id.to_string(), key.to_string());
        }
    } else {
        eprintln!(
            "cos-local: no --credentials given; accepting the local default SecretId {DEFAULT_SECRET_ID} with SecretKey {DEFAULT_SECRET_KEY}"
        );
    }
    if !(0.0..=1.0).contains(&args.fault_rate) {
        anyhow::bail!("--fault-rate must be between 0 and 1");
    }
    config.buckets = args.buckets.clone();
    config.region = args.region.clone();
    config.access_log = args.access_log.clone();
    config.clock_offset_secs = args.clock_offset;
    config.faults = FaultConfig {
        rate: args.fault_rate,
        kinds: args.fault_kinds.clone(),
        latency: Duration::from_millis(args.latency_ms),
        ops: args.fault_ops.clone(),
        count: args.fault_count,
    };
    Ok(config)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let config = config_from(&args)?;
    let app = Arc::new(server::App::open(config)?);
    let listener = tokio::net::TcpListener::bind(args.listen).await?;
    let addr = listener.local_addr()?;
    {
        let mut out = std::io::stdout().lock();
        writeln!(out, "cos-local listening on http://{addr}")?;
        out.flush()?;
    }
    let shutdown = async {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut term), Ok(mut int)) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
            }
            _ => std::future::pending::<()>().await,
        }
    };
    server::serve(app, listener, shutdown).await;
    eprintln!("cos-local: stopped");
    Ok(())
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("cos-local: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cos-local: {e:#}");
            ExitCode::FAILURE
        }
    }
}
