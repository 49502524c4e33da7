//! `cosmount BUCKET MOUNTPOINT [-o opts]`: parse, check the bucket, mount, serve.
//!
//! Background mode (the default, and what mount(8) needs) follows the fork-first recipe: the
//! process forks before any thread or tokio runtime exists. The child starts a new session,
//! builds the runtime, checks the bucket (HEAD Bucket), mounts, and then reports one status
//! line on a pipe: `ok`, or the reason it failed. The parent waits for that line (with a
//! timeout), prints the reason if any, and exits 0 only when the mount is live. So a wrong key
//! or a missing bucket fails the `mount` command itself, before anything is mounted.
//!
//! SIGTERM and SIGINT unmount cleanly (fuser installs no handler; without one a killed daemon
//! leaves a dead ENOTCONN mount behind). Files already closed and being committed finish
//! (bounded wait); files still open for writing are *not* committed half-written: they stay in
//! the spool journal, the log names them, and `cosmount recover` commits or discards them.

use std::ffi::OsString;
use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{anyhow, Context};
use fuser::{Config, MountOption, Session, SessionACL};

use crate::cli::{self, MountConfig, Parsed};
use crate::cos::store::ListParams;
use crate::cos::{Client, ClientConfig, CosError, ObjectStore};
use crate::credentials::{self, Credentials, Lookup};
use crate::fs::attr::AttrDefaults;
use crate::fs::{CosFs, FsConfig, FsCore, WriteSettings};

/// How long the parent waits for the child's status line. The bucket check retries network
/// errors with backoff, so this is generous; a mount that takes longer is reported as failed.
const STATUS_TIMEOUT: Duration = Duration::from_secs(90);

/// Retry budget of the start-up bucket check: a black-hole endpoint (accepts, never answers)
/// fails the mount after about this long, plus one stall timeout at most.
const STARTUP_CHECK_BUDGET: Duration = Duration::from_secs(10);

/// How long SIGTERM/SIGINT wait for commits of closed files to finish before unmounting
/// (below systemd's default 90 s stop timeout).
const SHUTDOWN_UPLOAD_TIMEOUT: Duration = Duration::from_secs(60);

/// After the unmount, how long open files may keep the detached mount served before exit.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Exit codes: 0 mounted (or help/version), 1 mount failed, 2 bad command line.
const EXIT_MOUNT_FAILED: u8 = 1;
const EXIT_USAGE: u8 = 2;

pub fn main(args: Vec<OsString>) -> ExitCode {
    let cfg = match cli::parse(args) {
        Ok(Parsed::Mount(cfg)) => *cfg,
        Ok(Parsed::Clap(e)) => {
            let _ = e.print();
            return ExitCode::from(e.exit_code().clamp(0, 255) as u8);
        }
        Err(e) => {
            eprintln!("cosmount: {e}");
            return ExitCode::from(EXIT_USAGE);
        }
    };
    let lookup = Lookup::from_process(cfg.passwd_file.as_deref());
    let creds = match credentials::resolve(&cfg.bucket, &lookup) {
        Ok((creds, source)) => {
            // Logging is not set up yet; the source is logged again once it is.
            (creds, source.to_string())
        }
        Err(e) => {
            eprintln!("cosmount: {e}");
            return ExitCode::from(EXIT_MOUNT_FAILED);
        }
    };
    // Still one thread: the only safe moment to change the environment. The secrets are in
    // `creds` now; children (fusermount3) and /proc/PID/environ must not see them.
    credentials::scrub_environment();
    if let Err(e) = check_mountpoint(&cfg) {
        eprintln!("cosmount: {e:#}");
        return ExitCode::from(EXIT_MOUNT_FAILED);
    }
    if cfg.foreground {
        init_logging(&cfg, LogTo::Stderr);
        match serve(&cfg, creds, &mut None) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("cosmount: {e:#}");
                ExitCode::from(EXIT_MOUNT_FAILED)
            }
        }
    } else {
        daemonize(&cfg, creds)
    }
}

/// `/dev/fd/N`: mount.fuse3 (drop_privileges) already mounted and passes the /dev/fuse fd.
fn dev_fd(mountpoint: &Path) -> Option<i32> {
    mountpoint.to_str()?.strip_prefix("/dev/fd/")?.parse().ok()
}

/// Refuse a mountpoint that is already a FUSE mount (a second daemon would stack on the first),
/// is not a directory, or is not empty (its files would be hidden) unless `-o nonempty`.
fn check_mountpoint(cfg: &MountConfig) -> anyhow::Result<()> {
    let mountpoint = cfg.mountpoint.as_path();
    if dev_fd(mountpoint).is_some() {
        return Ok(());
    }
    // Before any stat: a FUSE mount whose daemon died answers ENOTCONN, a hung one never.
    let info = std::fs::read_to_string("/proc/self/mountinfo").unwrap_or_default();
    if let Some(m) = top_mount(&info, &absolute(mountpoint)) {
        if m.fstype == "fuse" || m.fstype.starts_with("fuse.") || m.fstype == "fuseblk" {
            return Err(anyhow!(
                "mountpoint {} is already a FUSE mount ({} {}); unmount it first: fusermount3 -u {}",
                mountpoint.display(),
                m.fstype,
                m.source,
                mountpoint.display()
            ));
        }
    }
    let meta = std::fs::metadata(mountpoint)
        .with_context(|| format!("mountpoint {}", mountpoint.display()))?;
    if !meta.is_dir() {
        return Err(anyhow!(
            "mountpoint {} is not a directory",
            mountpoint.display()
        ));
    }
    // A directory we cannot read is left to mount(2) to judge.
    let non_empty = std::fs::read_dir(mountpoint).is_ok_and(|mut d| d.next().is_some());
    if non_empty && !cfg.nonempty {
        return Err(anyhow!(
            "mountpoint {} is not empty: the mount would hide its files; empty it or pass -o nonempty to mount anyway",
            mountpoint.display()
        ));
    }
    Ok(())
}

/// `path` made absolute without following its last component (which may be a dead mount).
fn absolute(path: &Path) -> PathBuf {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    };
    let parent = if parent.as_os_str().is_empty() {
        Path::new(".")
    } else {
        parent
    };
    match std::fs::canonicalize(parent) {
        Ok(p) => p.join(name),
        Err(_) => path.to_path_buf(),
    }
}

/// One line of /proc/self/mountinfo, the fields cosmount looks at.
#[derive(Debug, PartialEq, Eq)]
struct MountEntry {
    fstype: String,
    source: String,
}

/// The visible (last) mount on `point` in mountinfo text.
fn top_mount(mountinfo: &str, point: &Path) -> Option<MountEntry> {
    mountinfo.lines().rev().find_map(|line| {
        let (head, tail) = line.split_once(" - ")?;
        let here = head.split(' ').nth(4)?;
        if Path::new(&unescape_mountinfo(here)) != point {
            return None;
        }
        let mut t = tail.split(' ');
        let fstype = t.next()?.to_string();
        let source = unescape_mountinfo(t.next().unwrap_or(""));
        Some(MountEntry { fstype, source })
    })
}

fn daemonize(cfg: &MountConfig, creds: (Credentials, String)) -> ExitCode {
    // Opened here, so a log file that cannot be opened fails the command with the reason.
    let log_to = match &cfg.log_file {
        Some(path) => match open_log_file(path) {
            Ok(f) => LogTo::File(f),
            Err(e) => {
                eprintln!("cosmount: {e:#}");
                return ExitCode::from(EXIT_MOUNT_FAILED);
            }
        },
        None => LogTo::Discard,
    };
    let mut fds = [0i32; 2];
    // SAFETY: pipe2 writes two fds into the array we own.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } != 0 {
        eprintln!("cosmount: pipe: {}", std::io::Error::last_os_error());
        return ExitCode::from(EXIT_MOUNT_FAILED);
    }
    // SAFETY: the fds were just created and are owned by nobody else.
    let (read_end, write_end) =
        unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) };
    // SAFETY: no thread has been started yet (no runtime, no logging thread), so the child
    // is a faithful copy and may go on running Rust code.
    match unsafe { libc::fork() } {
        -1 => {
            eprintln!("cosmount: fork: {}", std::io::Error::last_os_error());
            ExitCode::from(EXIT_MOUNT_FAILED)
        }
        0 => {
            drop(read_end);
            // SAFETY: plain syscall; detaches from the terminal's session and signals.
            unsafe { libc::setsid() };
            let mut status = Some(File::from(write_end));
            init_logging(cfg, log_to);
            match serve(cfg, creds, &mut status) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!("{e:#}");
                    // Still set if the mount never went live. The parent may be gone already.
                    if let Some(mut status) = status {
                        let _ = writeln!(status, "{e:#}");
                    }
                    ExitCode::from(EXIT_MOUNT_FAILED)
                }
            }
        }
        child => {
            drop(write_end);
            wait_for_child(File::from(read_end), child)
        }
    }
}

/// Parent side: wait for the child's status line.
fn wait_for_child(status: File, child: libc::pid_t) -> ExitCode {
    let mut pfd = libc::pollfd {
        fd: std::os::fd::AsRawFd::as_raw_fd(&status),
        events: libc::POLLIN,
        revents: 0,
    };
    let timeout_ms = STATUS_TIMEOUT.as_millis() as i32;
    // SAFETY: one valid pollfd.
    let ready = unsafe { libc::poll(&mut pfd, 1, timeout_ms) };
    if ready == 0 {
        eprintln!(
            "cosmount: the mount did not become ready within {} s; giving up",
            STATUS_TIMEOUT.as_secs()
        );
        // SAFETY: our own child.
        unsafe { libc::kill(child, libc::SIGTERM) };
        return ExitCode::from(EXIT_MOUNT_FAILED);
    }
    let mut line = String::new();
    // The child writes "ok\n" and closes, or writes its error and exits.
    let _ = status.take(64 * 1024).read_to_string(&mut line);
    let line = line.trim();
    if line == "ok" {
        return ExitCode::SUCCESS;
    }
    if line.is_empty() {
        let mut wstatus = 0;
        // SAFETY: our own child; it closed the pipe, so it has exited or is exiting.
        unsafe { libc::waitpid(child, &mut wstatus, 0) };
        eprintln!("cosmount: the mount process exited before mounting (wait status {wstatus}); see -o log_file");
    } else {
        eprintln!("cosmount: {line}");
    }
    ExitCode::from(EXIT_MOUNT_FAILED)
}

/// Where the log goes: stderr in the foreground, the log file or nowhere in the background.
enum LogTo {
    Stderr,
    File(File),
    Discard,
}

/// Open (or create, mode 0600: the log carries request ids and bucket names) the log file for
/// appending. An existing file keeps its mode.
fn open_log_file(path: &Path) -> anyhow::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    if path.is_dir() {
        return Err(anyhow!(
            "cannot open log file {}: it is a directory",
            path.display()
        ));
    }
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("cannot open log file {}", path.display()))
}

/// `RUST_LOG` wins; else `-o debug`; else info for cosmount, warnings for fuser.
fn init_logging(cfg: &MountConfig, to: LogTo) {
    use tracing_subscriber::EnvFilter;
    // fuser::session's only warning is "Failed to umount filesystem: Invalid argument", logged
    // on every `umount`/`fusermount3 -u`: the session drop unmounts again what the kernel
    // already removed. Its errors still show.
    let default = if cfg.debug {
        "cosmount=debug,fuser=info,fuser::session=error"
    } else {
        "cosmount=info,fuser=warn,fuser::session=error"
    };
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let result = match to {
        LogTo::Stderr => builder.with_writer(std::io::stderr).try_init(),
        LogTo::File(f) => builder
            .with_ansi(false)
            .with_writer(std::sync::Mutex::new(f))
            .try_init(),
        LogTo::Discard => builder.with_writer(std::io::sink).try_init(),
    };
    // Only fails if a subscriber is already set (tests); keep that one.
    let _ = result;
}

/// The shortest time one COS operation is given, whatever `retry_budget` says.
const MIN_OPERATION_BUDGET: Duration = Duration::from_secs(5);

fn build_client(cfg: &MountConfig, creds: Credentials) -> anyhow::Result<Client> {
    let mut cos_creds = crate::cos::Credentials::new(creds.secret_id, creds.secret_key);
    cos_creds.token = creds.security_token;
    let mut cc = ClientConfig::new(
        cfg.bucket.clone(),
        cfg.region.clone().unwrap_or_default(),
        cos_creds,
    );
    cc.endpoint = cfg.endpoint.clone();
    cc.path_style = cfg.path_style;
    cc.connect_timeout = cfg.connect_timeout;
    cc.stall_timeout = cfg.stall_timeout;
    // One option, two uses: retries past the first attempts continue while within it, and
    // the operation's watch ends attempts that stall once it is spent. `retry_budget=0` keeps
    // only the fixed attempts; their watch still allows a few seconds.
    cc.retry.budget = cfg.retry_budget;
    cc.retry_budget = cfg.retry_budget.max(MIN_OPERATION_BUDGET);
    Client::new(cc).map_err(|e| anyhow!("{e}"))
}

/// HEAD Bucket, turned into the one-line reason a user can act on.
async fn check_bucket<S: ObjectStore>(store: &S, cfg: &MountConfig) -> anyhow::Result<()> {
    let err = match store.head_bucket().await {
        Ok(_) => return Ok(()),
        Err(e) => e,
    };
    // A HEAD answer has no body, so a 403 does not say why. A one-key LIST does; if the why
    // was clock skew, the client learns the server's time from that answer and the LIST's
    // retry succeeds, so ask HEAD again with the corrected clock.
    let err = if err.status() == Some(403) {
        let probe = ListParams {
            max_keys: Some(1),
            ..Default::default()
        };
        match store.list_objects(&probe).await {
            Err(e) if e.status() == Some(403) => e,
            Ok(_) => match store.head_bucket().await {
                Ok(_) => return Ok(()),
                Err(e) => e,
            },
            Err(_) => err,
        }
    } else {
        err
    };
    Err(anyhow!("{}", bucket_check_reason(&err, cfg)))
}

fn where_(cfg: &MountConfig) -> String {
    match (&cfg.endpoint, &cfg.region) {
        (Some(e), _) => format!("endpoint {e}"),
        (None, Some(r)) => format!("region {r}"),
        (None, None) => "the default endpoint".to_string(),
    }
}

pub fn bucket_check_reason(e: &CosError, cfg: &MountConfig) -> String {
    let bucket = &cfg.bucket;
    let at = where_(cfg);
    match e {
        CosError::Service(s) if crate::cos::retry::is_clock_skew(s) => {
            let offset = s
                .server_date
                .as_deref()
                .and_then(|d| httpdate::parse_http_date(d).ok())
                .map(|server| unix_secs(server) - crate::cos::sign::unix_now());
            format!("{}; set the system clock (NTP) ({e})", clock_skew_text(offset))
        }
        CosError::Service(s) => match (s.status, s.code.as_str()) {
            (404, _) => format!("bucket {bucket} not found at {at} (check the name, which includes -APPID, and the region)"),
            (_, "SignatureDoesNotMatch") => format!("signature does not match: wrong SecretKey for this SecretId? ({e})"),
            (_, "InvalidAccessKeyId") => format!("access denied: unknown SecretId ({e})"),
            (403, _) => format!("access denied to bucket {bucket}: bad SecretId/SecretKey or no permission ({e})"),
            _ => format!("bucket check failed for {bucket} at {at}: {e}"),
        },
        CosError::Network { .. } => format!("endpoint unreachable: {e}"),
        _ => format!("bucket check failed for {bucket} at {at}: {e}"),
    }
}

fn unix_secs(t: std::time::SystemTime) -> i64 {
    match t.duration_since(std::time::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => -i64::try_from(e.duration().as_secs()).unwrap_or(i64::MAX),
    }
}

/// "clock skew: this machine's clock is 2 h 0 min behind the server's (offset +7200 s)"; the
/// request was refused even when signed with the server's time, or the server gave none.
fn clock_skew_text(offset: Option<i64>) -> String {
    let Some(offset) = offset else {
        return "clock skew: COS refused the request time and sent no Date to correct it by"
            .to_string();
    };
    let abs = offset.unsigned_abs();
    let way = if offset >= 0 { "behind" } else { "ahead of" };
    let amount = if abs >= 3600 {
        format!("{} h {} min", abs / 3600, abs % 3600 / 60)
    } else if abs >= 60 {
        format!("{} min {} s", abs / 60, abs % 60)
    } else {
        format!("{abs} s")
    };
    format!(
        "clock skew: this machine's clock is {amount} {way} the server's (offset {offset:+} s), and COS refused the request even when signed with the server's time"
    )
}

fn fuse_config(cfg: &MountConfig) -> Config {
    let mut opts = vec![
        MountOption::FSName(
            cfg.fsname
                .clone()
                .unwrap_or_else(|| format!("{}:/{}", cfg.bucket, cfg.prefix)),
        ),
        MountOption::Subtype(
            cfg.subtype
                .clone()
                .unwrap_or_else(|| "cosmount".to_string()),
        ),
        // Always: a bucket must never carry device nodes or setuid binaries onto this host.
        MountOption::NoDev,
        MountOption::NoSuid,
        // The kernel checks mode bits; cosmount only supplies them.
        MountOption::DefaultPermissions,
        MountOption::NoAtime,
    ];
    opts.push(if cfg.read_only {
        MountOption::RO
    } else {
        MountOption::RW
    });
    if cfg.auto_unmount {
        opts.push(MountOption::AutoUnmount);
    }
    let mut config = Config::default();
    config.mount_options = opts;
    config.acl = if cfg.allow_other {
        SessionACL::All
    } else if cfg.allow_root {
        SessionACL::RootAndOwner
    } else {
        SessionACL::Owner
    };
    config
}

fn fs_config(cfg: &MountConfig) -> FsConfig {
    // SAFETY: getuid/getgid cannot fail.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    FsConfig {
        prefix: cfg.prefix.clone(),
        defaults: AttrDefaults {
            uid: cfg.uid.unwrap_or(uid),
            gid: cfg.gid.unwrap_or(gid),
            file_mode: cfg.file_mode(),
            dir_mode: cfg.dir_mode(),
            read_only: cfg.read_only,
        },
        stat_ttl: cfg.stat_ttl,
        open_trust: cfg.attr_timeout.min(cfg.stat_ttl),
        cache_size: cfg.cache_size,
        read_only: cfg.read_only,
        meta: cfg.meta,
        // Keyed by the endpoint too: two servers may hold buckets of the same name.
        learned_file: Some(cache_dir(cfg).join(crate::fs::names::learned::file_name(
            &cfg.bucket,
            &format!(
                "{}|{}|{}",
                cfg.endpoint.as_deref().unwrap_or(""),
                cfg.region.as_deref().unwrap_or(""),
                cfg.prefix
            ),
        ))),
    }
}

/// The cache directory: spool files and the learned metadata kept between mounts.
fn cache_dir(cfg: &MountConfig) -> std::path::PathBuf {
    cfg.cache_dir
        .clone()
        .unwrap_or_else(crate::fs::spool::default_cache_dir)
}

/// Check the bucket, mount, report `ok`, serve until unmounted.
/// `status` is the pipe to the waiting parent (background mode); it is taken and closed once
/// the mount is live, so the parent sees `ok` and end-of-file.
fn serve(
    cfg: &MountConfig,
    (creds, source): (Credentials, String),
    status: &mut Option<File>,
) -> anyhow::Result<()> {
    tracing::info!(bucket = %cfg.bucket, prefix = %cfg.prefix, credentials = %source, "starting");
    // The one memory budget (block cache, prefetch, part buffers, listings), before anything
    // allocates data; and an allocator that does not hoard per-thread arenas.
    crate::memory::tune_allocator();
    crate::memory::configure(cfg.memory_limit);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("cosmount-io")
        .build()
        .context("starting the async runtime")?;
    let client = build_client(cfg, creds)?;
    // The start-up check gets a short retry budget, so a black-hole endpoint fails the mount
    // within about STARTUP_CHECK_BUDGET instead of the full per-operation budget.
    let probe = client.with_retry_budget(cfg.retry_budget.min(STARTUP_CHECK_BUDGET));
    rt.block_on(check_bucket(&probe, cfg))?;

    if let Some(addr) = cfg.metrics_addr {
        // Before mounting, so a taken port fails the mount command with a clear reason.
        let bound = rt
            .block_on(crate::metrics::serve(addr))
            .with_context(|| format!("serving metrics on {addr}"))?;
        tracing::info!(%bound, "metrics at http://{bound}/metrics");
    }
    let core = Arc::new(FsCore::new(Arc::new(client), fs_config(cfg)));
    let settings = write_settings(cfg)?;
    let spool_dir = settings.write.spool_dir.clone();
    // What an earlier crash or stop left: logged, never silently ignored. Files that were
    // closed but whose commit the crash cut short are resumed once the mount is live.
    let to_resume = crate::fs::journal::report_at_start(&spool_dir, &cfg.bucket);
    let resume_cfg = settings.write.clone();
    core.set_write_settings(settings);
    let fs = CosFs::new(core.clone(), rt.handle().clone(), cfg.attr_timeout);
    let fuse_cfg = fuse_config(cfg);
    // Before mounting: a signal that arrives as soon as the mount is visible must already take
    // the orderly path, not the default action (which would leave a dead mount).
    let mut signals = {
        let _in_runtime = rt.enter();
        StopSignals::install()
    };
    let mut session = match dev_fd(&cfg.mountpoint) {
        // SAFETY: mount.fuse3 handed us this open /dev/fuse descriptor to own.
        Some(fd) => Session::from_fd(
            fs,
            unsafe { OwnedFd::from_raw_fd(fd) },
            fuse_cfg.acl,
            fuse_cfg.clone(),
        ),
        None => Session::new(fs, &cfg.mountpoint, &fuse_cfg),
    }
    .map_err(|e| mount_error(e, cfg))?;
    core.names().set_notifier(session.notifier());
    if dev_fd(&cfg.mountpoint).is_none() {
        tune_readahead(&cfg.mountpoint, cfg.read_ahead_kb);
    }

    let saver = core.clone();
    let mut unmounter = session.unmount_callable();
    let mountpoint = cfg.mountpoint.clone();
    let bucket = cfg.bucket.clone();
    let stop_spool_dir = spool_dir.clone();
    rt.spawn(async move {
        wait_for_stop_signal(&mut signals).await;
        // From now on nothing open for writing is committed unless its program closes it:
        // a half-written file stays in the journal. Commits of closed files finish first
        // (bounded, so a dead network cannot keep a stopping service alive).
        crate::fs::journal::set_stopping();
        tracing::info!("signal received: finishing commits of closed files; files still open for writing stay in the spool journal; then unmounting");
        let deadline = tokio::time::Instant::now() + SHUTDOWN_UPLOAD_TIMEOUT;
        while crate::fs::journal::commits_in_progress() > 0 {
            if tokio::time::Instant::now() >= deadline {
                tracing::error!(
                    "{} commit(s) still running after {} s; unmounting anyway (their spool files stay in the journal)",
                    crate::fs::journal::commits_in_progress(),
                    SHUTDOWN_UPLOAD_TIMEOUT.as_secs()
                );
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        drop(core);
        if let Err(e) = unmounter.unmount() {
            // EBUSY while an application holds a file open: detach instead, as `umount -l`.
            tracing::info!("unmount: {e}; detaching lazily");
            if let Err(e) = detach(&mountpoint) {
                tracing::warn!("lazy unmount failed too: {e}");
            }
        }
        // The unmount is lazy: the kernel keeps the connection while an application still
        // holds a file open, and serving it would keep a stopping service alive. The uploads
        // are done, so after a short grace (or a second signal) exit regardless.
        tokio::select! {
            _ = tokio::time::sleep(SHUTDOWN_GRACE) => {}
            _ = wait_for_stop_signal(&mut signals) => {}
        }
        tracing::warn!(
            "files are still open on the unmounted mount; exiting anyway; {}",
            crate::metrics::global().summary()
        );
        log_left_in_journal(&stop_spool_dir, &bucket);
        std::process::exit(0);
    });

    tracing::info!(mountpoint = %cfg.mountpoint.display(), "mounted");
    if !to_resume.is_empty() {
        // In the background: a big upload (or a slow network) must not hold the mount back.
        let resumer = saver.clone();
        let prefix = cfg.prefix.clone();
        rt.spawn(async move {
            let store = resumer.store().clone();
            crate::fs::journal::resume_at_start(store, resume_cfg, to_resume, |key| {
                // A lookup or listing cached before the commit must not hide it.
                if let Some(path) = key.strip_prefix(prefix.as_str()) {
                    resumer.names().invalidate_path(path);
                }
            })
            .await;
        });
    }
    if let Some(mut status) = status.take() {
        status
            .write_all(b"ok\n")
            .context("reporting to the parent")?;
        drop(status);
        detach_stdio();
    }
    let served = session.run();
    // What HEADs learned spares the next mount of this bucket their cost.
    saver.names().save_learned();
    tracing::info!("unmounted; {}", crate::metrics::global().summary());
    rt.shutdown_timeout(Duration::from_secs(2));
    // Handles still open are gone with the runtime: their records stay in the journal.
    log_left_in_journal(&spool_dir, &cfg.bucket);
    served.context("serving the mount")
}

/// At exit: name every file this mount leaves in the spool journal, and how to recover it.
fn log_left_in_journal(spool_dir: &Path, bucket: &str) {
    let left = crate::fs::journal::left_by_this_process(spool_dir);
    if left.is_empty() {
        return;
    }
    for (key, size, state) in &left {
        tracing::warn!(key = %key, size, state = state.as_str(),
            "not committed: left in the spool journal");
    }
    let cache = spool_dir.parent().unwrap_or(spool_dir);
    tracing::warn!(
        "{} file(s) left in the spool journal {}; run `cosmount recover {bucket} --cache-dir {}` to list them, then --push KEY or --drop KEY",
        left.len(),
        spool_dir.display(),
        cache.display()
    );
}

/// Upload settings from the mount options; creates the spool directory.
fn write_settings(cfg: &MountConfig) -> anyhow::Result<WriteSettings> {
    let cache_dir = cache_dir(cfg);
    let mut settings = WriteSettings::in_cache_dir(&cache_dir).with_context(|| {
        format!(
            "cannot create the spool directory under {} (set -o cache_dir=PATH)",
            cache_dir.display()
        )
    })?;
    settings.write.part_size = cfg.part_size;
    settings.write.parallel_parts = cfg.parallel_parts;
    settings.write.bucket = cfg.bucket.clone();
    Ok(settings)
}

/// umount2(MNT_DETACH): the mount disappears from the namespace now; files already open stay
/// usable until closed.
fn detach(mountpoint: &Path) -> std::io::Result<()> {
    use std::os::unix::ffi::OsStrExt;
    let path = std::ffi::CString::new(mountpoint.as_os_str().as_bytes())
        .map_err(|_| std::io::Error::from(std::io::ErrorKind::InvalidInput))?;
    // SAFETY: a valid NUL-terminated path; umount2 does not keep the pointer.
    if unsafe { libc::umount2(path.as_ptr(), libc::MNT_DETACH) } == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

/// SIGTERM and SIGINT, caught from the moment this is called (inside the runtime).
struct StopSignals {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopSignals {
    fn install() -> Option<StopSignals> {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(term), Ok(int)) => Some(StopSignals { term, int }),
            _ => {
                tracing::warn!("cannot install signal handlers; stop with umount");
                None
            }
        }
    }
}

/// The next SIGTERM or SIGINT (never, without handlers).
async fn wait_for_stop_signal(signals: &mut Option<StopSignals>) {
    let Some(s) = signals else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = s.term.recv() => {}
        _ = s.int.recv() => {}
    }
}

fn mount_error(e: std::io::Error, cfg: &MountConfig) -> anyhow::Error {
    if e.kind() == std::io::ErrorKind::NotFound && cfg.auto_unmount {
        return anyhow!(
            "mount failed: {e} (auto_unmount needs fusermount3: apt-get install fuse3)"
        );
    }
    if e.kind() == std::io::ErrorKind::PermissionDenied {
        return anyhow!("mount failed: {e} (is /dev/fuse accessible? non-root users need fusermount3 from the fuse3 package)");
    }
    anyhow!("mount on {} failed: {e}", cfg.mountpoint.display())
}

/// Point stdin/stdout/stderr at /dev/null once the parent is gone (logs go to the log file).
fn detach_stdio() {
    if let Ok(null) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")
    {
        let fd = std::os::fd::AsRawFd::as_raw_fd(&null);
        for target in 0..=2 {
            // SAFETY: dup2 onto the standard descriptors, which we own.
            unsafe { libc::dup2(fd, target) };
        }
    }
}

/// Raise the kernel readahead window of the new mount (sysfs `read_ahead_kb` of its bdi);
/// 128 KiB -> 1–4 MiB is worth +30–45% sequential throughput. Best effort: needs root.
fn tune_readahead(mountpoint: &Path, kb: u32) {
    let Some(dev) = mount_device(mountpoint) else {
        tracing::debug!("mount not found in /proc/self/mountinfo; readahead left as is");
        return;
    };
    let path = PathBuf::from(format!("/sys/class/bdi/{dev}/read_ahead_kb"));
    match std::fs::write(&path, kb.to_string()) {
        Ok(()) => tracing::debug!(%dev, kb, "readahead window set"),
        Err(e) => {
            tracing::info!(%dev, "cannot set {}: {e}; readahead left at the kernel default", path.display())
        }
    }
}

/// The `major:minor` of the mount at `mountpoint`, from /proc/self/mountinfo (never stat the
/// mount itself: the session loop is not answering yet).
fn mount_device(mountpoint: &Path) -> Option<String> {
    let want = std::fs::canonicalize(mountpoint).ok()?;
    let info = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
    // The last mount on a path is the visible one.
    info.lines().rev().find_map(|line| {
        let f: Vec<&str> = line.split(' ').collect();
        let (dev, point) = (f.get(2)?, f.get(4)?);
        (Path::new(&unescape_mountinfo(point)) == want).then(|| dev.to_string())
    })
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape_mountinfo(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let octal = b
            .get(i + 1..i + 4)
            .filter(|d| b[i] == b'\\' && d.iter().all(|c| (b'0'..=b'7').contains(c)));
        let value = octal.map(|d| d.iter().fold(0u32, |acc, c| acc * 8 + u32::from(c - b'0')));
        if let Some(v) = value.and_then(|v| u8::try_from(v).ok()) {
            out.push(v);
            i += 4;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mountinfo_escapes() {
        assert_eq!(unescape_mountinfo(r"/tmp/a\040b"), "/tmp/a b");
        assert_eq!(unescape_mountinfo(r"/plain"), "/plain");
        assert_eq!(unescape_mountinfo(r"/trailing\04"), r"/trailing\04");
    }

    fn cfg() -> MountConfig {
        MountConfig::from_parts(
            "b-1",
            "/m".into(),
            &[("region".into(), Some("ap-x".into()))],
        )
        .unwrap()
    }

    fn service(status: u16, code: &str, message: &str) -> CosError {
        CosError::Service(crate::cos::ServiceError {
            status,
            code: code.into(),
            message: message.into(),
            ..Default::default()
        })
    }

    #[test]
    fn bucket_check_reasons_say_what_to_fix() {
        let reason = |e: CosError| bucket_check_reason(&e, &cfg());
        assert!(reason(service(404, "NoSuchBucket", ""))
            .contains("bucket b-1 not found at region ap-x"));
        assert!(reason(service(403, "SignatureDoesNotMatch", "")).contains("wrong SecretKey"));
        assert!(reason(service(403, "InvalidAccessKeyId", "")).contains("unknown SecretId"));
        assert!(reason(service(403, "AccessDenied", "Request has expired")).contains("clock"));
        assert!(reason(service(403, "RequestTimeTooSkewed", "")).contains("clock"));
        assert!(reason(service(403, "AccessDenied", "")).contains("no permission"));
        let net = CosError::Network {
            endpoint: "http://x".into(),
            message: "refused".into(),
        };
        assert!(reason(net).starts_with("endpoint unreachable"));
    }

    #[test]
    fn clock_skew_is_named_with_its_offset() {
        let mut e = crate::cos::ServiceError {
            status: 403,
            code: "AccessDenied".into(),
            message: "Request has expired".into(),
            ..Default::default()
        };
        let later = std::time::SystemTime::now() + Duration::from_secs(7200);
        e.server_date = Some(httpdate::fmt_http_date(later));
        let r = bucket_check_reason(&CosError::Service(e), &cfg());
        assert!(r.contains("clock skew") && r.contains("2 h"), "{r}");
        assert!(!r.contains("SecretKey"), "{r}");
        assert!(clock_skew_text(None).contains("clock skew"));
    }

    #[test]
    fn top_mount_is_the_last_on_the_path() {
        let info =
            "36 1 0:30 / /m rw - tmpfs tmpfs rw\n37 36 0:31 / /m rw - fuse.cosmount b-1:/ rw\n";
        let m = top_mount(info, Path::new("/m")).unwrap();
        assert_eq!(m.fstype, "fuse.cosmount");
        assert!(top_mount(info, Path::new("/other")).is_none());
    }

    #[test]
    fn dev_fd_mountpoints() {
        assert_eq!(dev_fd(Path::new("/dev/fd/7")), Some(7));
        assert_eq!(dev_fd(Path::new("/mnt/x")), None);
    }
}
