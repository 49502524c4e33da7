//! `cosmount recover BUCKET [--cache-dir DIR] [--list | --push KEY | --drop KEY]`: the
//! unfinished writes a crashed or stopped mount left in its spool journal.
//!
//! `--list` (the default) prints them, one tab-separated line each:
//! `STATE KEY SIZE AGE_SECONDS SPOOL_PATH` (STATE: `open` = still open for writing at the
//! crash, `committing` = closed but not confirmed (the next mount resumes those itself),
//! `failed` = its upload failed, or the object changed meanwhile). Files still open at the
//! crash are never committed on their own: the application may not have finished them.
//!
//! `--push KEY` (repeatable) commits that file, but only while the object is still the
//! version the write started from (HEAD: same ETag, or still absent for a new file); if it
//! changed, the spool is kept and the reason printed. A recorded multipart upload is resumed:
//! List Parts tells which parts COS holds, those whose bytes did not change are kept, only
//! the others are sent (a single PUT up to one part). `--drop KEY` (repeatable) aborts the
//! record's multipart upload and deletes spool and record. `--commit` and `--discard` do the
//! same for every unfinished write (or those named by `--key`). Files a running mount holds
//! are never touched.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{ArgGroup, Args};

use super::uploads::{client_for, runtime, Target};
use super::{Failure, EXIT_FAILURE};
use crate::cos::Client;
use crate::fs::journal::{self, Leftover, Resumed, State};
use crate::fs::spool;
use crate::fs::write::WriteConfig;

#[derive(Debug, Args)]
#[command(group(ArgGroup::new("action").multiple(false)))]
pub struct RecoverArgs {
    #[command(flatten)]
    target: Target,
    /// The mount's cache directory (`-o cache_dir=`); default as for a mount
    /// ($XDG_CACHE_HOME/cosmount, /var/cache/cosmount for root, ~/.cache/cosmount).
    #[arg(long, value_name = "DIR")]
    cache_dir: Option<PathBuf>,
    /// List the unfinished writes (the default).
    #[arg(long, group = "action")]
    list: bool,
    /// Commit the unfinished write of KEY (repeatable), only over the version it started
    /// from; a recorded multipart upload is resumed.
    #[arg(long, value_name = "KEY", group = "action", allow_hyphen_values = true)]
    push: Vec<String>,
    /// Abort the multipart upload of KEY's unfinished write and delete its spool file and
    /// record (repeatable).
    #[arg(
        long = "drop",
        value_name = "KEY",
        group = "action",
        allow_hyphen_values = true
    )]
    drop_keys: Vec<String>,
    /// --push every unfinished write of the bucket (or those named by --key).
    #[arg(long, group = "action")]
    commit: bool,
    /// --drop every unfinished write of the bucket (or those named by --key), and spool files
    /// without a record.
    #[arg(long, group = "action")]
    discard: bool,
    /// With --commit / --discard: only this key (repeatable).
    #[arg(long = "key", value_name = "KEY", allow_hyphen_values = true)]
    keys: Vec<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    List,
    Push,
    Drop,
}

impl Action {
    fn done(self) -> &'static str {
        match self {
            Action::List => "listed",
            Action::Push => "committed",
            Action::Drop => "dropped",
        }
    }
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
    let (action, keys) = if !a.push.is_empty() {
        (Action::Push, a.push.clone())
    } else if !a.drop_keys.is_empty() {
        (Action::Drop, a.drop_keys.clone())
    } else if a.commit {
        (Action::Push, a.keys.clone())
    } else if a.discard {
        (Action::Drop, a.keys.clone())
    } else {
        (Action::List, a.keys.clone())
    };
    let cache_dir = a.cache_dir.clone().unwrap_or_else(spool::default_cache_dir);
    let spool_dir = cache_dir.join("spool");
    if !spool_dir.is_dir() {
        eprintln!(
            "no spool directory at {}: nothing to recover",
            spool_dir.display()
        );
        return if action != Action::List && !keys.is_empty() {
            Err(failure(format!(
                "no unfinished write of {}",
                keys.join(", ")
            )))
        } else {
            Ok(())
        };
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
            Ok(r) if !keys.is_empty() && !keys.contains(&r.key) => {}
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
    let missing: Vec<&String> = keys
        .iter()
        .filter(|k| !mine.iter().any(|l| l.key() == k.as_str()))
        .collect();
    if action == Action::List {
        for l in &mine {
            print_line(l);
        }
        for o in &found.orphans {
            println!("orphan\t-\t-\t-\t{}", o.display());
        }
        eprintln!(
            "{} unfinished write(s) of {bucket} in {}{}; --push KEY commits one, --drop KEY deletes one",
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
        let ok = match action {
            Action::Push => rt.block_on(push_one(&client, &spool_dir, l)),
            _ => rt.block_on(drop_one(&client, l)),
        };
        if !ok {
            failures += 1;
        }
    }
    if a.discard && keys.is_empty() && prefix.is_empty() {
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
        action.done()
    );
    if !missing.is_empty() {
        return Err(failure(format!(
            "no unfinished write of {} (in use by a running mount, of another bucket, or not there)",
            missing
                .iter()
                .map(|k| k.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    if failures > 0 {
        return Err(failure(format!(
            "{failures} write(s) could not be {}; their spool files are kept",
            action.done()
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

async fn drop_one(client: &Client, l: &Leftover) -> bool {
    if let Ok(r) = &l.record {
        if let Err(e) = journal::abort_recorded_upload(client, r).await {
            eprintln!("cosmount: {}: {e}; spool kept", r.key);
            return false;
        }
    }
    match journal::remove_leftover(l) {
        Ok(()) => {
            println!("dropped\t{}\t{}", l.key(), l.size().unwrap_or(0));
            true
        }
        Err(e) => {
            eprintln!("cosmount: {}: {e}", l.key());
            false
        }
    }
}

async fn push_one(client: &Client, spool_dir: &std::path::Path, l: &Leftover) -> bool {
    let key = l.key().to_string();
    let size = l.size().unwrap_or(0);
    let cfg = WriteConfig::new(spool_dir.to_path_buf());
    match journal::resume_leftover(Arc::new(client.clone()), cfg, l).await {
        Resumed::Committed { etag, stats } => {
            println!(
                "committed\t{key}\t{size}\t{etag}\tparts={} reused={} sent={}",
                stats.parts,
                stats.reused,
                stats.sent()
            );
            true
        }
        Resumed::AlreadyCommitted { etag } => {
            println!("already committed\t{key}\t{size}\t{etag}");
            true
        }
        Resumed::Conflict { now, was } => {
            eprintln!(
                "cosmount: {key}: the object changed since the write began (now {now}, was {was}); not overwritten, spool kept at {}",
                l.spool_path.display()
            );
            false
        }
        Resumed::NotDone(why) => {
            eprintln!(
                "cosmount: {key}: {why}; spool kept at {}",
                l.spool_path.display()
            );
            false
        }
    }
}
