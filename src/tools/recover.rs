//! `cosmount recover BUCKET [--cache-dir DIR] [--commit|--discard] [--key KEY]...`: the
//! unfinished writes a crashed or stopped mount left in its spool journal.
//!
//! Without `--commit` or `--discard` it lists them, one tab-separated line each:
//! `STATE KEY SIZE AGE_SECONDS SPOOL_PATH` (STATE: `open` = still open for writing at the
//! crash, `committing` = closed but not confirmed, `failed` = its upload failed). Nothing
//! is committed on its own: the application may not have finished the file.
//!
//! `--commit` uploads each spool as its object, but only while the object is still the
//! version the write started from (HEAD: same ETag, or still absent for a new file); if it
//! changed, the spool is kept and the reason printed. The record's multipart upload is
//! aborted first; the upload itself is a fresh one (a single PUT up to one part, else
//! multipart, with server-side copies of the unchanged parts of the base object).
//! `--discard` deletes spool and record and aborts their multipart uploads. Files a running
//! mount holds are never touched.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::Args;

use super::uploads::{client_for, runtime, Target};
use super::{Failure, EXIT_FAILURE};
use crate::cos::crc64;
use crate::cos::{Client, ObjectStore};
use crate::fs::journal::{self, Leftover, Record, State};
use crate::fs::spool;
use crate::fs::write::{WriteConfig, WriteHandle};

#[derive(Debug, Args)]
pub struct RecoverArgs {
    #[command(flatten)]
    target: Target,
    /// The mount's cache directory (`-o cache_dir=`); default as for a mount
    /// ($XDG_CACHE_HOME/cosmount, /var/cache/cosmount for root, ~/.cache/cosmount).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// Upload each unfinished write as its object (only over the version it started from).
    #[arg(long, conflicts_with = "discard")]
    commit: bool,
    /// Delete each unfinished write and abort its multipart upload.
    #[arg(long)]
    discard: bool,
    /// Only this key (repeatable); default: every unfinished write of the bucket.
    #[arg(long = "key", value_name = "KEY", allow_hyphen_values = true)]
    keys: Vec<String>,
}

pub fn run(a: RecoverArgs) -> ExitCode {
    match recover(a) {
        Ok(()) => ExitCode::SUCCESS,
        Err(f) => {
            eprintln!("cosmount: {}", f.message);
            ExitCode::from(f.code)
        }
    }
}

fn failure(message: String) -> Failure {
    Failure {
        message,
        code: EXIT_FAILURE,
    }
}

fn recover(a: RecoverArgs) -> Result<(), Failure> {
    let bucket = a
        .target
        .bucket()
        .strip_prefix("cosfs#")
        .unwrap_or(a.target.bucket())
        .to_string();
    let cache_dir = a.cache_dir.clone().unwrap_or_else(spool::default_cache_dir);
    let spool_dir = cache_dir.join("spool");
    if !spool_dir.is_dir() {
        eprintln!(
            "no spool directory at {}: nothing to recover",
            spool_dir.display()
        );
        return Ok(());
    }
    let found = journal::scan(&spool_dir)
        .map_err(|e| failure(format!("reading {}: {e}", spool_dir.display())))?;
    let prefix = a.target.prefix().to_string();
    let mut mine = Vec::new();
    let mut other_buckets = 0usize;
    for l in found.leftovers {
        match &l.record {
            Ok(r) if r.bucket != bucket && !r.bucket.is_empty() => other_buckets += 1,
            Ok(r) if !r.key.starts_with(&prefix) => {}
            Ok(r) if !a.keys.is_empty() && !a.keys.contains(&r.key) => {}
            Ok(r) if r.state == State::Committed => {
                // Nothing pending: the object holds it. Clean up quietly.
                let _ = journal::remove_leftover(&l);
            }
            _ => mine.push(l),
        }
    }
    if found.in_use > 0 {
        eprintln!(
            "{} spool file(s) in use by a running mount left alone",
            found.in_use
        );
    }
    if other_buckets > 0 {
        eprintln!("{other_buckets} unfinished write(s) of other buckets left alone");
    }
    if !a.commit && !a.discard {
        for l in &mine {
            print_line(l);
        }
        if !found.orphans.is_empty() {
            for o in &found.orphans {
                println!("orphan\t-\t-\t-\t{}", o.display());
            }
        }
        eprintln!(
            "{} unfinished write(s) of {bucket} in {}{}; --commit uploads them, --discard deletes them",
            mine.len(),
            spool_dir.display(),
            if found.orphans.is_empty() {
                String::new()
            } else {
                format!(
                    ", {} spool file(s) without a record (--discard deletes them)",
                    found.orphans.len()
                )
            }
        );
        return Ok(());
    }
    let client = client_for(&a.target)?;
    let rt = runtime()?;
    let mut failures = 0usize;
    for l in &mine {
        let ok = if a.commit {
            rt.block_on(commit_one(&client, &spool_dir, &bucket, l))
        } else {
            rt.block_on(discard_one(&client, l))
        };
        if !ok {
            failures += 1;
        }
    }
    if a.discard && a.keys.is_empty() && prefix.is_empty() {
        for o in &found.orphans {
            match std::fs::remove_file(o) {
                Ok(()) => println!("deleted orphan\t{}", o.display()),
                Err(e) => {
                    failures += 1;
                    eprintln!("cosmount: deleting {}: {e}", o.display());
                }
            }
        }
    }
    eprintln!(
        "{} write(s) {}, {failures} not",
        mine.len() - failures.min(mine.len()),
        if a.commit { "committed" } else { "discarded" }
    );
    if failures > 0 {
        return Err(failure(format!(
            "{failures} write(s) could not be {}; their spool files are kept",
            if a.commit { "committed" } else { "discarded" }
        )));
    }
    Ok(())
}

fn print_line(l: &Leftover) {
    match &l.record {
        Ok(r) => println!(
            "{}\t{}\t{}\t{}\t{}",
            r.state.as_str(),
            r.key,
            l.size().unwrap_or(0),
            l.age_secs(),
            l.spool_path.display()
        ),
        Err(e) => println!("unreadable\t-\t-\t-\t{} ({e})", l.record_path.display()),
    }
}

/// Abort the record's multipart upload (gone already counts as done).
async fn abort_recorded(client: &Client, r: &Record) -> Result<(), String> {
    let Some(id) = &r.upload_id else {
        return Ok(());
    };
    match client.abort_multipart(&r.key, id).await {
        Ok(()) => Ok(()),
        // NoSuchUpload: the daemon (or COS) already ended it.
        Err(e) if e.is_not_found() || e.kind() == crate::cos::ErrorKind::NoSuchUpload => Ok(()),
        Err(e) => Err(format!("aborting upload {id}: {e}")),
    }
}

async fn discard_one(client: &Client, l: &Leftover) -> bool {
    if let Ok(r) = &l.record {
        if let Err(e) = abort_recorded(client, r).await {
            eprintln!("cosmount: {}: {e}; spool kept", r.key);
            return false;
        }
    }
    match journal::remove_leftover(l) {
        Ok(()) => {
            println!("discarded\t{}\t{}", l.key(), l.size().unwrap_or(0));
            true
        }
        Err(e) => {
            eprintln!("cosmount: {}: {e}", l.key());
            false
        }
    }
}

/// The CRC-64 of the first `len` bytes of a spool file (bytes past its end are zeros).
fn spool_crc(l: &Leftover, len: u64) -> std::io::Result<u64> {
    let file = std::fs::File::open(&l.spool_path)?;
    let mut crc = 0u64;
    let mut at = 0u64;
    while at < len {
        let n = (len - at).min(8 << 20);
        let chunk = spool::read_spool(&file, at, n as usize)?;
        crc = crc64::combine(crc, crc64::checksum(&chunk), n);
        at += n;
    }
    Ok(crc)
}

async fn commit_one(
    client: &Client,
    spool_dir: &std::path::Path,
    bucket: &str,
    l: &Leftover,
) -> bool {
    let r = match &l.record {
        Ok(r) => r.clone(),
        Err(e) => {
            eprintln!(
                "cosmount: {}: unreadable record ({e}); left alone",
                l.record_path.display()
            );
            return false;
        }
    };
    if r.version != journal::RECORD_VERSION {
        eprintln!(
            "cosmount: {}: record version {} not understood; left alone",
            r.key, r.version
        );
        return false;
    }
    if l.spool_len.is_none() {
        eprintln!(
            "cosmount: {}: the spool file {} is missing; nothing to commit (use --discard)",
            r.key,
            l.spool_path.display()
        );
        return false;
    }
    let size = l.size().unwrap_or(0);
    let head = ObjectStore::head_object(client, &r.key).await;
    let current = match head {
        Ok(info) => Some(info),
        Err(e) if e.is_not_found() => None,
        Err(e) => {
            eprintln!("cosmount: {}: HEAD failed: {e}; spool kept", r.key);
            return false;
        }
    };
    let unchanged = match (&r.based_on, &current) {
        (Some(etag), Some(info)) => &info.etag == etag,
        (None, None) => true,
        _ => false,
    };
    if !unchanged {
        // Committed by the crashed mount after all (its answer never recorded)?
        if let (None, Some(info)) = (&r.base, &current) {
            if info.size == size && info.crc64.is_some() && spool_crc(l, size).ok() == info.crc64 {
                let _ = abort_recorded(client, &r).await;
                let _ = journal::remove_leftover(l);
                println!("already committed\t{}\t{size}\t{}", r.key, info.etag);
                return true;
            }
        }
        let now = current
            .as_ref()
            .map_or("absent".to_string(), |i| format!("ETag {}", i.etag));
        let was = r
            .based_on
            .as_ref()
            .map_or("absent".to_string(), |e| format!("ETag {e}"));
        eprintln!(
            "cosmount: {}: the object changed since the write began (now {now}, was {was}); not overwritten, spool kept at {}",
            r.key,
            l.spool_path.display()
        );
        return false;
    }
    if let Err(e) = abort_recorded(client, &r).await {
        eprintln!("cosmount: {}: {e}; spool kept", r.key);
        return false;
    }
    let mut cfg = WriteConfig::new(spool_dir.to_path_buf());
    cfg.bucket = bucket.to_string();
    if r.part_size > 0 {
        cfg.part_size = r.part_size;
    }
    let key = r.key.clone();
    let mut handle =
        match WriteHandle::resume(Arc::new(client.clone()), cfg, r, l.record_path.clone()) {
            Ok(h) => h,
            Err(e) => {
                eprintln!("cosmount: {key}: {e}; spool kept");
                return false;
            }
        };
    match handle.flush().await {
        Ok(result) => {
            println!("committed\t{key}\t{size}\t{}", result.etag);
            true
        }
        Err(e) => {
            eprintln!(
                "cosmount: {key}: upload failed: {e}; spool kept at {}",
                l.spool_path.display()
            );
            false
        }
    }
}
