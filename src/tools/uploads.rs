//! `cosmount uploads list|abort BUCKET`: find and clean up incomplete multipart uploads.
//!
//! An upload that was never completed (a writer killed mid-file, a crashed mount) keeps its
//! parts, and COS keeps charging for them until the upload is aborted. `list` pages through List
//! Multipart Uploads; `abort` aborts the ones older than `--older-than` (default 24 h, so that
//! uploads a running mount is still making are left alone).
//!
//! Output: `list` prints one tab-separated line per upload (`INITIATED KEY UPLOAD_ID
//! STORAGE_CLASS`, the time in RFC 3339 UTC or `-`), `abort` one `aborted KEY UPLOAD_ID` line
//! per upload; a summary goes to stderr. Credentials and endpoint are found as for a mount.

use std::process::ExitCode;
use std::time::{Duration, SystemTime};

use clap::{Args, Subcommand};

use crate::cos::multipart::{ListUploadsParams, UploadInfo};
use crate::cos::{Client, ClientConfig};
use crate::credentials::{self, Lookup};

use super::{env_var, usage, Failure, EXIT_FAILURE};

/// Uploads younger than this are assumed to belong to a writer still at work.
const DEFAULT_OLDER_THAN: &str = "24h";
/// A listing that keeps answering "truncated" without moving its markers is a broken server;
/// stop rather than loop forever.
const MAX_PAGES: usize = 1_000_000;

#[derive(Debug, Subcommand)]
pub enum UploadsCommand {
    /// List incomplete multipart uploads.
    List(ListArgs),
    /// Abort incomplete multipart uploads (their parts are deleted).
    Abort(AbortArgs),
}

#[derive(Debug, Args)]
pub struct Target {
    /// Bucket name with APPID, e.g. examplebucket-1250000000 (cosfs#BUCKET accepted).
    bucket: String,
    /// Only uploads whose key starts with this prefix.
    #[arg(long, default_value = "")]
    prefix: String,
    /// COS region, e.g. ap-guangzhou (needed unless --endpoint is given).
    #[arg(long)]
    region: Option<String>,
    /// Endpoint URL, e.g. http://127.0.0.1:9000 for cos-local (alias: --url).
    #[arg(long, alias = "url")]
    endpoint: Option<String>,
    /// Use path-style addressing even for a host name.
    #[arg(long)]
    path_style: bool,
    /// Read the credentials from this cosfs-format file (else COS_SECRET_ID/COS_SECRET_KEY,
    /// ~/.passwd-cosfs, /etc/passwd-cosfs, as for a mount).
    #[arg(long, value_name = "PATH")]
    passwd_file: Option<std::path::PathBuf>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    #[command(flatten)]
    target: Target,
}

#[derive(Debug, Args)]
pub struct AbortArgs {
    #[command(flatten)]
    target: Target,
    /// Only uploads initiated at least this long ago: 0, 90s, 30m, 24h, 7d.
    #[arg(long, default_value = DEFAULT_OLDER_THAN, value_parser = parse_age)]
    older_than: Duration,
    /// Print what would be aborted, abort nothing.
    #[arg(long)]
    dry_run: bool,
}

/// `0`, `90s`, `30m`, `24h`, `7d` (a bare number is seconds).
pub fn parse_age(text: &str) -> Result<Duration, String> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: u64 = num
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 90s, 30m, 24h or 7d"))?;
    let secs = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("{text:?}: unit must be s, m, h or d")),
    };
    n.checked_mul(secs)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{text:?} is too long"))
}

pub fn run(cmd: UploadsCommand) -> ExitCode {
    let result = match cmd {
        UploadsCommand::List(a) => list(a),
        UploadsCommand::Abort(a) => abort(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("cosmount: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

impl Target {
    pub(super) fn bucket(&self) -> &str {
        &self.bucket
    }

    pub(super) fn prefix(&self) -> &str {
        &self.prefix
    }
}

pub(super) fn client_for(t: &Target) -> Result<Client, Failure> {
    let bucket = t.bucket.strip_prefix("cosfs#").unwrap_or(&t.bucket);
    let (creds, _source) =
        credentials::resolve(bucket, &Lookup::from_process(t.passwd_file.as_deref()))
            .map_err(|e| usage(e.to_string()))?;
    let mut cos_creds = crate::cos::Credentials::new(creds.secret_id, creds.secret_key);
    cos_creds.token = creds.security_token;
    let mut cfg = ClientConfig::new(
        bucket,
        t.region
            .clone()
            .or_else(|| env_var("COS_REGION"))
            .unwrap_or_default(),
        cos_creds,
    );
    cfg.endpoint = t.endpoint.clone().or_else(|| env_var("COS_ENDPOINT"));
    cfg.path_style = t.path_style;
    if cfg.endpoint.is_none() && cfg.region.is_empty() {
        return Err(usage("no region: pass --region REGION, or --endpoint URL"));
    }
    Client::new(cfg).map_err(|e| usage(e.to_string()))
}

pub(super) fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure {
            message: format!("cannot start the async runtime: {e}"),
            code: EXIT_FAILURE,
        })
}

/// Every incomplete upload under `prefix`, page by page (1000 per request).
async fn all_uploads(client: &Client, prefix: &str) -> Result<Vec<UploadInfo>, Failure> {
    let failed = |e: crate::cos::CosError| Failure {
        message: format!("listing multipart uploads: {e}"),
        code: EXIT_FAILURE,
    };
    let mut params = ListUploadsParams {
        prefix: Some(prefix.to_string()).filter(|p| !p.is_empty()),
        max_uploads: Some(1000),
        ..Default::default()
    };
    let mut out = Vec::new();
    for _ in 0..MAX_PAGES {
        let page = client
            .list_multipart_uploads(&params)
            .await
            .map_err(failed)?;
        out.extend(page.uploads);
        if !page.is_truncated {
            return Ok(out);
        }
        let next = (page.next_key_marker, page.next_upload_id_marker);
        let moved =
            next.0.is_some() && (next.0 != params.key_marker || next.1 != params.upload_id_marker);
        if !moved {
            return Err(Failure {
                message: "the upload listing is truncated but gives no next marker".into(),
                code: EXIT_FAILURE,
            });
        }
        (params.key_marker, params.upload_id_marker) = next;
    }
    Err(Failure {
        message: format!("the upload listing did not end after {MAX_PAGES} pages"),
        code: EXIT_FAILURE,
    })
}

fn initiated_text(t: Option<SystemTime>) -> String {
    t.and_then(|t| {
        time::OffsetDateTime::from(t)
            .format(&time::format_description::well_known::Rfc3339)
            .ok()
    })
    .unwrap_or_else(|| "-".into())
}

fn list(a: ListArgs) -> Result<(), Failure> {
    let client = client_for(&a.target)?;
    let uploads = runtime()?.block_on(all_uploads(&client, &a.target.prefix))?;
    for u in &uploads {
        println!(
            "{}\t{}\t{}\t{}",
            initiated_text(u.initiated),
            u.key,
            u.upload_id,
            u.storage_class.as_deref().unwrap_or("STANDARD")
        );
    }
    eprintln!("{} incomplete upload(s)", uploads.len());
    Ok(())
}

/// Whether an upload is old enough to abort. One without a readable start time is only
/// aborted when every upload is asked for (`--older-than 0`).
fn is_old_enough(u: &UploadInfo, older_than: Duration, now: SystemTime) -> bool {
    if older_than.is_zero() {
        return true;
    }
    u.initiated
        .and_then(|t| now.duration_since(t).ok())
        .is_some_and(|age| age >= older_than)
}

fn abort(a: AbortArgs) -> Result<(), Failure> {
    let client = client_for(&a.target)?;
    let rt = runtime()?;
    let uploads = rt.block_on(all_uploads(&client, &a.target.prefix))?;
    let now = SystemTime::now();
    let (old, young): (Vec<_>, Vec<_>) = uploads
        .into_iter()
        .partition(|u| is_old_enough(u, a.older_than, now));
    let mut failures = 0usize;
    for u in &old {
        if a.dry_run {
            println!("would abort\t{}\t{}", u.key, u.upload_id);
            continue;
        }
        match rt.block_on(client.abort_multipart(&u.key, &u.upload_id)) {
            Ok(()) => println!("aborted\t{}\t{}", u.key, u.upload_id),
            // Completed or aborted by someone else since the listing: nothing left to clean.
            Err(e) if e.status() == Some(404) => {
                println!("gone\t{}\t{}", u.key, u.upload_id)
            }
            Err(e) => {
                failures += 1;
                eprintln!("cosmount: aborting {} {}: {e}", u.key, u.upload_id);
            }
        }
    }
    eprintln!(
        "{} upload(s) {}, {} younger than {}s left alone, {failures} failed",
        old.len() - failures,
        if a.dry_run { "to abort" } else { "aborted" },
        young.len(),
        a.older_than.as_secs()
    );
    if failures > 0 {
        return Err(Failure {
            message: format!("{failures} abort(s) failed"),
            code: EXIT_FAILURE,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ages() {
        assert_eq!(parse_age("0"), Ok(Duration::ZERO));
        assert_eq!(parse_age("90s"), Ok(Duration::from_secs(90)));
        assert_eq!(parse_age("30m"), Ok(Duration::from_secs(1800)));
        assert_eq!(parse_age("24h"), Ok(Duration::from_secs(86_400)));
        assert_eq!(parse_age("7d"), Ok(Duration::from_secs(604_800)));
        assert!(parse_age("1w").is_err());
        assert!(parse_age("h").is_err());
        assert!(parse_age("99999999999999999999d").is_err());
    }

    #[test]
    fn age_filter() {
        let now = SystemTime::now();
        let up = |age: Option<u64>| UploadInfo {
            key: "k".into(),
            upload_id: "u".into(),
            storage_class: None,
            initiated: age.map(|s| now - Duration::from_secs(s)),
        };
        let day = Duration::from_secs(86_400);
        assert!(is_old_enough(&up(Some(90_000)), day, now));
        assert!(!is_old_enough(&up(Some(60)), day, now));
        assert!(!is_old_enough(&up(None), day, now));
        assert!(is_old_enough(&up(None), Duration::ZERO, now));
    }
}
