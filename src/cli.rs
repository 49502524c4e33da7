//! The mount command line: clap flags plus mount(8)-style `-o a,b=c` options, turned once into a
//! typed [`MountConfig`].
//!
//! Every option exists both as a `--flag` and as an `-o` option because fstab and mount.fuse3
//! only ever pass `-o`. Flags and `-o` options are funnelled into one list of `(name, value)`
//! pairs and validated in one place ([`MountConfig::from_parts`]), so both spellings behave the
//! same and an unknown option is always an error that names it.

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Default byte budget of the block cache (`-o cache_size=`).
pub const DEFAULT_CACHE_SIZE: u64 = 256 * 1024 * 1024;
/// Default budget of the daemon's data memory (`-o memory_limit=`): block cache, prefetch,
/// upload part buffers and listing pages together. With the binary itself, a mount stays under
/// about 128 MiB of RSS whatever the number of open files.
pub const DEFAULT_MEMORY_LIMIT: u64 = 64 * 1024 * 1024;
/// Default kernel entry/attribute TTL. Short, so changes made by other COS clients show up
/// quickly; `ls -l` still costs no extra request because READDIRPLUS fills the kernel cache.
pub const DEFAULT_ATTR_TIMEOUT: Duration = Duration::from_secs(1);
/// Default TTL of cosmount's own metadata and listing cache (including negative entries).
pub const DEFAULT_STAT_TTL: Duration = Duration::from_secs(10);
/// Readahead window written to the mount's bdi (`read_ahead_kb`); 1–4 MiB measured best here.
pub const DEFAULT_READ_AHEAD_KB: u32 = 4096;

const AFTER_HELP: &str = "\
SOURCE is BUCKET, BUCKET:/prefix (mount only keys under prefix/), or cosfs#BUCKET.

Every option can also be given as -o NAME[=VALUE] (comma separated, repeatable), which is the
only form mount(8) and /etc/fstab pass:
  mount -t fuse.cosmount examplebucket-1250000000 /mnt/cos -o region=ap-guangzhou,allow_other
  # /etc/fstab
  examplebucket-1250000000 /mnt/cos fuse.cosmount _netdev,region=ap-guangzhou,allow_other 0 0

-o options: region=R endpoint=URL (alias url=) path_style ro rw allow_other allow_root
  auto_unmount nonempty uid=N gid=N umask=OCTAL attr_timeout=SECS stat_ttl=SECS cache_size=SIZE
  read_ahead_kb=N cache_dir=PATH part_size=SIZE parallel_parts=N passwd_file=PATH
  log_file=PATH debug foreground fsname=NAME subtype=NAME memory_limit=SIZE
  connect_timeout=SECS stall_timeout=SECS retry_budget=SECS meta=head|list
  metrics_addr=IP:PORT (Prometheus text format on http://IP:PORT/metrics).

Bounded waits: a COS request that cannot connect within connect_timeout (default 5), or that
makes no progress (no byte sent or received) for stall_timeout (default 5), is retried; one
operation, retries included, gives up after retry_budget seconds (default 30) with EIO. Only
Complete Multipart Upload and copies, where COS works before answering, may take up to 20 min.

Memory: memory_limit (default 64M) bounds what the daemon holds in RAM for data: block cache,
prefetch windows, upload part buffers and listing pages. Under pressure prefetch shrinks and
writers wait; cache_size only caps the block cache's share.
Accepted and ignored (mount(8), fstab and mount.fuse3 pass them): _netdev nofail auto noauto
  user nouser users defaults x-systemd.* dev suid nodev nosuid exec noexec atime noatime
  relatime norelatime strictatime sync async default_permissions. cosmount always mounts
  nodev,nosuid and lets the kernel check permissions (default_permissions).

Credentials, first found wins: -o passwd_file=PATH; environment COS_SECRET_ID and
COS_SECRET_KEY (plus COS_SECURITY_TOKEN for temporary keys); ~/.passwd-cosfs; /etc/passwd-cosfs.
Files use the cosfs format, one `bucket:SecretId:SecretKey` or `SecretId:SecretKey` per line,
and must not be readable by group or others (chmod 600).

Without -f, cosmount checks the bucket, mounts, and returns once the mount is live; errors are
printed and the exit status is non-zero. Unmount with `umount MOUNTPOINT` or
`fusermount3 -u MOUNTPOINT`. A mountpoint that is already a FUSE mount is refused; one that is
not empty is refused unless -o nonempty. Logs: RUST_LOG or -o debug; in the background they go
to -o log_file=PATH (created mode 0600; a file that cannot be opened fails the mount), otherwise
they are discarded.";

/// What clap parses. Only validation close to the command line happens here; the typed
/// [`MountConfig`] is built from it by [`parse`].
#[derive(Debug, Parser)]
#[command(
    name = "cosmount",
    version,
    about = "Mount a Tencent Cloud COS bucket as a local directory (FUSE)",
    after_help = AFTER_HELP
)]
struct RawArgs {
    /// BUCKET, BUCKET:/prefix or cosfs#BUCKET (bucket name includes the -APPID suffix).
    #[arg(value_name = "BUCKET[:/prefix]")]
    source: String,

    /// Directory to mount on (or /dev/fd/N when mount.fuse3 passes an open /dev/fuse).
    #[arg(value_name = "MOUNTPOINT")]
    mountpoint: PathBuf,

    /// Mount options, comma separated: -o ro,allow_other,uid=1000 (see below).
    #[arg(short = 'o', value_name = "OPT[,OPT...]", action = clap::ArgAction::Append)]
    options: Vec<String>,

    /// Stay in the foreground (do not daemonize); logs go to stderr.
    #[arg(short = 'f', long, help_heading = "Mount")]
    foreground: bool,

    /// COS region, e.g. ap-guangzhou (needed unless --endpoint is given).
    #[arg(long, value_name = "REGION", help_heading = "Bucket")]
    region: Option<String>,

    /// Endpoint URL, e.g. http://127.0.0.1:9000 for cos-local (alias: -o url=).
    #[arg(long, value_name = "URL", help_heading = "Bucket")]
    endpoint: Option<String>,

    /// Use path-style addressing (http://host/bucket/key) even for a host name.
    #[arg(long, help_heading = "Bucket")]
    path_style: bool,

    /// Read the credentials from this cosfs-format file.
    #[arg(long, value_name = "PATH", help_heading = "Credentials")]
    passwd_file: Option<PathBuf>,

    /// Mount read-only: every write gets EROFS.
    #[arg(long = "read-only", help_heading = "Mount")]
    read_only: bool,

    /// Let other users access the mount (needs user_allow_other in /etc/fuse.conf for non-root).
    #[arg(long, help_heading = "Mount")]
    allow_other: bool,

    /// Let root access the mount too.
    #[arg(long, help_heading = "Mount")]
    allow_root: bool,

    /// Unmount automatically when cosmount exits (uses fusermount3).
    #[arg(long, help_heading = "Mount")]
    auto_unmount: bool,

    /// Mount even if the mountpoint is not empty (its files are hidden while mounted).
    #[arg(long, help_heading = "Mount")]
    nonempty: bool,

    /// Owner of every file (default: the mounting user), unless x-cos-meta-uid says otherwise.
    #[arg(long, value_name = "UID", help_heading = "Permissions")]
    uid: Option<String>,

    /// Group of every file (default: the mounting user's group), unless x-cos-meta-gid says otherwise.
    #[arg(long, value_name = "GID", help_heading = "Permissions")]
    gid: Option<String>,

    /// Octal umask applied to 0666 (files) and 0777 (directories); default 022.
    #[arg(long, value_name = "OCTAL", help_heading = "Permissions")]
    umask: Option<String>,

    /// Kernel entry and attribute cache TTL in seconds (fractions allowed; default 1).
    #[arg(long, value_name = "SECS", help_heading = "Cache")]
    attr_timeout: Option<String>,

    /// TTL in seconds of cosmount's metadata and listing cache, negative entries included (default 10).
    #[arg(long, value_name = "SECS", help_heading = "Cache")]
    stat_ttl: Option<String>,

    /// Where POSIX metadata (mode, owner, mtime, symlinks) comes from: `head` (default; a HEAD
    /// per object version nothing is known about, cosfs-faithful) or `list` (listings only:
    /// the mount's defaults, never a HEAD; for data-lake buckets).
    #[arg(long, value_name = "head|list", help_heading = "Cache")]
    meta: Option<String>,

    /// Byte budget of the data block cache, e.g. 256M, 1G (default 256M; 0 disables it).
    #[arg(long, value_name = "SIZE", help_heading = "Cache")]
    cache_size: Option<String>,

    /// Kernel readahead window for the mount in KiB (default 4096).
    #[arg(long, value_name = "KIB", help_heading = "Cache")]
    read_ahead_kb: Option<String>,

    /// Directory for spool files of files being written (default $XDG_CACHE_HOME/cosmount,
    /// /var/cache/cosmount for root). A failed upload leaves its data here.
    #[arg(long, value_name = "PATH", help_heading = "Upload")]
    cache_dir: Option<PathBuf>,

    /// Multipart part size, 1M..5G (default 8M; grows automatically for huge files).
    #[arg(long, value_name = "SIZE", help_heading = "Upload")]
    part_size: Option<String>,

    /// Parts uploaded in parallel per file (default 4).
    #[arg(long, value_name = "N", help_heading = "Upload")]
    parallel_parts: Option<String>,

    /// Log file used when running in the background.
    #[arg(long, value_name = "PATH", help_heading = "Logging")]
    log_file: Option<PathBuf>,

    /// Debug logging (same as RUST_LOG=cosmount=debug).
    #[arg(long, help_heading = "Logging")]
    debug: bool,

    /// Serve Prometheus metrics (COS requests, bytes, cache hits, uploads) on IP:PORT.
    #[arg(long, value_name = "IP:PORT", help_heading = "Logging")]
    metrics_addr: Option<String>,

    /// RAM budget for data (block cache, prefetch, part buffers, listings), e.g. 64M (default).
    #[arg(long, value_name = "SIZE", help_heading = "Cache")]
    memory_limit: Option<String>,

    /// Seconds to wait for a connection to COS (default 5).
    #[arg(long, value_name = "SECS", help_heading = "Network")]
    connect_timeout: Option<String>,

    /// Seconds a COS request may go without any progress before it is retried (default 5).
    #[arg(long, value_name = "SECS", help_heading = "Network")]
    stall_timeout: Option<String>,

    /// Seconds one COS operation, retries included, may take before EIO (default 30).
    #[arg(long, value_name = "SECS", help_heading = "Network")]
    retry_budget: Option<String>,
}

/// Everything the mount needs, typed and checked.
#[derive(Debug, Clone, PartialEq)]
pub struct MountConfig {
    pub bucket: String,
    /// Key prefix the mount root maps to: "" or "some/dir/" (always ends with `/`).
    pub prefix: String,
    pub mountpoint: PathBuf,
    pub region: Option<String>,
    pub endpoint: Option<String>,
    pub path_style: bool,
    pub foreground: bool,
    pub read_only: bool,
    pub allow_other: bool,
    pub allow_root: bool,
    pub auto_unmount: bool,
    /// Mount on a directory that is not empty (`-o nonempty`); refused otherwise.
    pub nonempty: bool,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub umask: u32,
    pub attr_timeout: Duration,
    pub stat_ttl: Duration,
    /// `-o meta=`: where POSIX metadata comes from.
    pub meta: crate::fs::names::MetaSource,
    pub cache_size: u64,
    pub read_ahead_kb: u32,
    /// Spool directory parent (`None` = the default cache directory).
    pub cache_dir: Option<PathBuf>,
    pub part_size: u64,
    pub parallel_parts: usize,
    pub passwd_file: Option<PathBuf>,
    pub log_file: Option<PathBuf>,
    pub debug: bool,
    pub fsname: Option<String>,
    pub subtype: Option<String>,
    /// Serve Prometheus metrics on this address (`-o metrics_addr=127.0.0.1:9100`).
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Byte budget of the daemon's data memory (`-o memory_limit=`).
    pub memory_limit: u64,
    pub connect_timeout: Duration,
    pub stall_timeout: Duration,
    pub retry_budget: Duration,
}

/// Why the command line was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CliError {
    #[error("unknown mount option{}: {}", if .0.len() > 1 { "s" } else { "" }, .0.join(", "))]
    UnknownOptions(Vec<String>),
    #[error("invalid value for option {name}: {value:?} ({why})")]
    InvalidValue {
        name: String,
        value: String,
        why: String,
    },
    #[error("option {0} needs a value ({0}=...)")]
    MissingValue(String),
    #[error("option {0} takes no value")]
    UnexpectedValue(String),
    #[error("invalid source {0:?}: expected BUCKET, BUCKET:/prefix or cosfs#BUCKET")]
    InvalidSource(String),
    #[error("no region: pass --region REGION (or -o region=REGION), or --endpoint URL")]
    NoRegion,
}

/// Outcome of parsing: run a mount, or clap already produced help/version text.
pub enum Parsed {
    Mount(Box<MountConfig>),
    /// `--help`, `--version` or a clap usage error: print it and exit with the code.
    Clap(clap::Error),
}

/// Parse the full argv (program name first).
pub fn parse(args: Vec<OsString>) -> Result<Parsed, CliError> {
    let raw = match RawArgs::try_parse_from(args) {
        Ok(raw) => raw,
        Err(e) => return Ok(Parsed::Clap(e)),
    };
    MountConfig::from_raw(raw).map(|c| Parsed::Mount(Box::new(c)))
}

/// Split `-o` values into `(name, value)` pairs: `"ro,uid=1000"` -> `[("ro", None), ("uid",
/// Some("1000"))]`. Empty items (`a,,b`) are skipped; a value may itself contain `=`.
pub fn split_mount_options<'a>(
    values: impl IntoIterator<Item = &'a str>,
) -> Vec<(String, Option<String>)> {
    values
        .into_iter()
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .filter(|item| !item.is_empty())
        .map(|item| match item.split_once('=') {
            Some((name, value)) => (name.trim().to_string(), Some(value.to_string())),
            None => (item.to_string(), None),
        })
        .collect()
}

/// Options mount(8), fstab or mount.fuse3 pass that mean nothing to cosmount (or that cosmount
/// overrides: it always mounts nodev,nosuid with kernel permission checks).
fn is_ignored_option(name: &str) -> bool {
    const IGNORED: &[&str] = &[
        "_netdev",
        "nofail",
        "auto",
        "noauto",
        "user",
        "nouser",
        "users",
        "defaults",
        "dev",
        "suid",
        "nodev",
        "nosuid",
        "exec",
        "noexec",
        "atime",
        "noatime",
        "relatime",
        "norelatime",
        "strictatime",
        "nodiratime",
        "sync",
        "async",
        "default_permissions",
        "drop_privileges",
        "setuid",
    ];
    IGNORED.contains(&name) || name.starts_with("x-systemd.") || name.starts_with("x-")
}

impl MountConfig {
    fn from_raw(raw: RawArgs) -> Result<Self, CliError> {
        // Flags first, then -o options in order: a later -o wins, as with mount(8).
        let mut pairs: Vec<(String, Option<String>)> = Vec::new();
        let flag = |pairs: &mut Vec<_>, on: bool, name: &str| {
            if on {
                pairs.push((name.to_string(), None));
            }
        };
        let valued = |pairs: &mut Vec<_>, v: Option<String>, name: &str| {
            if let Some(v) = v {
                pairs.push((name.to_string(), Some(v)));
            }
        };
        valued(&mut pairs, raw.region, "region");
        valued(&mut pairs, raw.endpoint, "endpoint");
        flag(&mut pairs, raw.path_style, "path_style");
        valued(
            &mut pairs,
            raw.passwd_file.map(|p| p.display().to_string()),
            "passwd_file",
        );
        flag(&mut pairs, raw.read_only, "ro");
        flag(&mut pairs, raw.allow_other, "allow_other");
        flag(&mut pairs, raw.allow_root, "allow_root");
        flag(&mut pairs, raw.auto_unmount, "auto_unmount");
        flag(&mut pairs, raw.nonempty, "nonempty");
        valued(&mut pairs, raw.uid, "uid");
        valued(&mut pairs, raw.gid, "gid");
        valued(&mut pairs, raw.umask, "umask");
        valued(&mut pairs, raw.attr_timeout, "attr_timeout");
        valued(&mut pairs, raw.stat_ttl, "stat_ttl");
        valued(&mut pairs, raw.meta, "meta");
        valued(&mut pairs, raw.cache_size, "cache_size");
        valued(&mut pairs, raw.read_ahead_kb, "read_ahead_kb");
        valued(
            &mut pairs,
            raw.cache_dir.map(|p| p.display().to_string()),
            "cache_dir",
        );
        valued(&mut pairs, raw.part_size, "part_size");
        valued(&mut pairs, raw.parallel_parts, "parallel_parts");
        valued(
            &mut pairs,
            raw.log_file.map(|p| p.display().to_string()),
            "log_file",
        );
        flag(&mut pairs, raw.debug, "debug");
        valued(&mut pairs, raw.metrics_addr, "metrics_addr");
        valued(&mut pairs, raw.memory_limit, "memory_limit");
        valued(&mut pairs, raw.connect_timeout, "connect_timeout");
        valued(&mut pairs, raw.stall_timeout, "stall_timeout");
        valued(&mut pairs, raw.retry_budget, "retry_budget");
        flag(&mut pairs, raw.foreground, "foreground");
        pairs.extend(split_mount_options(raw.options.iter().map(String::as_str)));
        Self::from_parts(&raw.source, raw.mountpoint, &pairs)
    }

    /// Build the config from the source, the mountpoint and the option pairs. Pure; every
    /// option's meaning lives here.
    pub fn from_parts(
        source: &str,
        mountpoint: PathBuf,
        options: &[(String, Option<String>)],
    ) -> Result<Self, CliError> {
        let (bucket, prefix) = parse_source(source)?;
        let mut cfg = MountConfig {
            bucket,
            prefix,
            mountpoint,
            region: None,
            endpoint: None,
            path_style: false,
            foreground: false,
            read_only: false,
            allow_other: false,
            allow_root: false,
            auto_unmount: false,
            nonempty: false,
            uid: None,
            gid: None,
            umask: 0o022,
            attr_timeout: DEFAULT_ATTR_TIMEOUT,
            stat_ttl: DEFAULT_STAT_TTL,
            meta: crate::fs::names::MetaSource::Head,
            cache_size: DEFAULT_CACHE_SIZE,
            read_ahead_kb: DEFAULT_READ_AHEAD_KB,
            cache_dir: None,
            part_size: crate::fs::write::DEFAULT_PART_SIZE,
            parallel_parts: crate::fs::write::DEFAULT_PARALLEL_PARTS,
            passwd_file: None,
            log_file: None,
            debug: false,
            fsname: None,
            subtype: None,
            metrics_addr: None,
            memory_limit: DEFAULT_MEMORY_LIMIT,
            connect_timeout: crate::cos::retry::DEFAULT_CONNECT_TIMEOUT,
            stall_timeout: crate::cos::retry::DEFAULT_STALL_TIMEOUT,
            retry_budget: crate::cos::retry::DEFAULT_RETRY_BUDGET,
        };
        let mut unknown = Vec::new();
        for (name, value) in options {
            let name = name.as_str();
            let need = || {
                value
                    .clone()
                    .ok_or_else(|| CliError::MissingValue(name.into()))
            };
            let no_value = || match value {
                None => Ok(()),
                Some(_) => Err(CliError::UnexpectedValue(name.into())),
            };
            match name {
                "region" => cfg.region = Some(need()?),
                "endpoint" | "url" => cfg.endpoint = Some(need()?),
                "path_style" => {
                    no_value()?;
                    cfg.path_style = true
                }
                "passwd_file" => cfg.passwd_file = Some(PathBuf::from(need()?)),
                "ro" => {
                    no_value()?;
                    cfg.read_only = true
                }
                "rw" => {
                    no_value()?;
                    cfg.read_only = false
                }
                "allow_other" => {
                    no_value()?;
                    cfg.allow_other = true
                }
                "allow_root" => {
                    no_value()?;
                    cfg.allow_root = true
                }
                "auto_unmount" => {
                    no_value()?;
                    cfg.auto_unmount = true
                }
                "nonempty" => {
                    no_value()?;
                    cfg.nonempty = true
                }
                "uid" => cfg.uid = Some(parse_id(name, &need()?)?),
                "gid" => cfg.gid = Some(parse_id(name, &need()?)?),
                "umask" => cfg.umask = parse_umask(&need()?)?,
                "attr_timeout" => cfg.attr_timeout = parse_seconds(name, &need()?)?,
                "stat_ttl" => cfg.stat_ttl = parse_seconds(name, &need()?)?,
                "meta" => {
                    let v = need()?;
                    cfg.meta = match v.as_str() {
                        "head" => crate::fs::names::MetaSource::Head,
                        "list" => crate::fs::names::MetaSource::List,
                        _ => return Err(invalid(name, &v, "head or list")),
                    }
                }
                "cache_size" => cfg.cache_size = parse_size(name, &need()?)?,
                "read_ahead_kb" => {
                    let v = need()?;
                    cfg.read_ahead_kb = v.parse().map_err(|_| invalid(name, &v, "KiB count"))?
                }
                "cache_dir" => cfg.cache_dir = Some(PathBuf::from(need()?)),
                "part_size" => {
                    let v = need()?;
                    let size = parse_size(name, &v)?;
                    // COS: parts are 1 MB .. 5 GB (cos-protocol.md §6).
                    if !(crate::cos::limits::MIN_PART_SIZE..=crate::cos::limits::MAX_PART_SIZE)
                        .contains(&size)
                    {
                        return Err(invalid(name, &v, "size between 1M and 5G"));
                    }
                    cfg.part_size = size
                }
                "retry_budget" => {
                    // 0 keeps only the fixed number of attempts (see cos::retry).
                    let v = need()?;
                    let d = parse_seconds(name, &v)?;
                    if d > Duration::from_secs(3600) {
                        return Err(invalid(name, &v, "seconds 0..3600"));
                    }
                    cfg.retry_budget = d
                }
                "parallel_parts" => {
                    let v = need()?;
                    cfg.parallel_parts = v
                        .parse()
                        .ok()
                        .filter(|n| (1..=64).contains(n))
                        .ok_or_else(|| invalid(name, &v, "count 1..64"))?
                }
                "log_file" => cfg.log_file = Some(PathBuf::from(need()?)),
                "debug" => {
                    no_value()?;
                    cfg.debug = true
                }
                "foreground" => {
                    no_value()?;
                    cfg.foreground = true
                }
                "fsname" => cfg.fsname = Some(need()?),
                "subtype" => cfg.subtype = Some(need()?),
                "metrics_addr" => {
                    let v = need()?;
                    cfg.metrics_addr = Some(
                        v.parse()
                            .map_err(|_| invalid(name, &v, "an address like 127.0.0.1:9100"))?,
                    )
                }
                "memory_limit" => {
                    let v = need()?;
                    let size = parse_size(name, &v)?;
                    // Below a few MiB not even one read, listing page or part fits.
                    if size < crate::memory::MIN_LIMIT {
                        return Err(invalid(name, &v, "at least 16M"));
                    }
                    cfg.memory_limit = size
                }
                "connect_timeout" | "stall_timeout" => {
                    let v = need()?;
                    let d = parse_seconds(name, &v)?;
                    if d < Duration::from_millis(100) {
                        return Err(invalid(name, &v, "at least 0.1 seconds"));
                    }
                    match name {
                        "connect_timeout" => cfg.connect_timeout = d,
                        _ => cfg.stall_timeout = d,
                    }
                }
                n if is_ignored_option(n) => {}
                n => unknown.push(n.to_string()),
            }
        }
        if !unknown.is_empty() {
            return Err(CliError::UnknownOptions(unknown));
        }
        if cfg.region.is_none() && cfg.endpoint.is_none() {
            return Err(CliError::NoRegion);
        }
        Ok(cfg)
    }

    /// Permission bits of files without x-cos-meta-mode.
    pub fn file_mode(&self) -> u32 {
        0o666 & !self.umask
    }

    /// Permission bits of directories without x-cos-meta-mode.
    pub fn dir_mode(&self) -> u32 {
        0o777 & !self.umask
    }
}

fn invalid(name: &str, value: &str, why: &str) -> CliError {
    CliError::InvalidValue {
        name: name.to_string(),
        value: value.to_string(),
        why: why.to_string(),
    }
}

/// `BUCKET`, `BUCKET:/prefix`, `BUCKET:prefix`, `cosfs#BUCKET` (the fstab `fuse` type form,
/// also `ANYTHING#BUCKET`). Returns (bucket, prefix ending with `/` or empty).
pub fn parse_source(source: &str) -> Result<(String, String), CliError> {
    let source = match source.rsplit_once('#') {
        Some((_, after)) => after,
        None => source,
    };
    let (bucket, prefix) = match source.split_once(':') {
        Some((b, p)) => (b, p),
        None => (source, ""),
    };
    let bad = || CliError::InvalidSource(source.to_string());
    if bucket.is_empty() || bucket.contains('/') || bucket.contains(char::is_whitespace) {
        return Err(bad());
    }
    let segments: Vec<&str> = prefix.split('/').filter(|s| !s.is_empty()).collect();
    if segments.iter().any(|s| *s == "." || *s == "..") {
        return Err(bad());
    }
    let prefix = if segments.is_empty() {
        String::new()
    } else {
        format!("{}/", segments.join("/"))
    };
    Ok((bucket.to_string(), prefix))
}

fn parse_id(name: &str, v: &str) -> Result<u32, CliError> {
    v.parse().map_err(|_| invalid(name, v, "a numeric id"))
}

fn parse_umask(v: &str) -> Result<u32, CliError> {
    let m = u32::from_str_radix(v.trim_start_matches("0o"), 8)
        .map_err(|_| invalid("umask", v, "an octal number like 022"))?;
    if m > 0o777 {
        return Err(invalid("umask", v, "at most 777"));
    }
    Ok(m)
}

/// Seconds, fractions allowed ("0.5"); at most a day, which is already longer than useful.
fn parse_seconds(name: &str, v: &str) -> Result<Duration, CliError> {
    let secs: f64 = v
        .parse()
        .map_err(|_| invalid(name, v, "a number of seconds"))?;
    if !secs.is_finite() || !(0.0..=86_400.0).contains(&secs) {
        return Err(invalid(name, v, "between 0 and 86400 seconds"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// A byte size: plain bytes, or with a K/M/G/T suffix (powers of 1024, optional `iB`/`B`).
pub fn parse_size(name: &str, v: &str) -> Result<u64, CliError> {
    let t = v.trim();
    let lower = t.to_ascii_lowercase();
    let digits_end = lower
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(lower.len());
    let (num, unit) = lower.split_at(digits_end);
    let n: u64 = num
        .parse()
        .map_err(|_| invalid(name, v, "a size like 512M or 2G"))?;
    let shift = match unit {
        "" | "b" => 0,
        "k" | "kb" | "kib" => 10,
        "m" | "mb" | "mib" => 20,
        "g" | "gb" | "gib" => 30,
        "t" | "tb" | "tib" => 40,
        _ => return Err(invalid(name, v, "a size like 512M or 2G")),
    };
    n.checked_mul(1u64 << shift)
        .ok_or_else(|| invalid(name, v, "too large"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, Option<&str>)]) -> Vec<(String, Option<String>)> {
        v.iter()
            .map(|(n, v)| (n.to_string(), v.map(str::to_string)))
            .collect()
    }

    fn cfg(source: &str, opts: &[&str]) -> Result<MountConfig, CliError> {
        MountConfig::from_parts(
            source,
            "/mnt".into(),
            &split_mount_options(opts.iter().copied()),
        )
    }

    #[test]
    fn splitter_handles_commas_values_and_repeats() {
        assert_eq!(
            split_mount_options([
                "ro,uid=1000",
                "endpoint=http://h:9000/x?a=b",
                ",,allow_other,"
            ]),
            pairs(&[
                ("ro", None),
                ("uid", Some("1000")),
                ("endpoint", Some("http://h:9000/x?a=b")),
                ("allow_other", None)
            ])
        );
        assert!(split_mount_options([""]).is_empty());
    }

    #[test]
    fn mount_fuse3_argv_is_accepted() {
        // What mount.fuse3 really passes for an fstab line (rust-stack.md).
        let c = cfg(
            "bucket-125",
            &["rw,_netdev,nofail,region=ap-guangzhou,allow_other,dev,suid,x-systemd.automount"],
        )
        .unwrap();
        assert!(!c.read_only && c.allow_other);
        assert_eq!(c.region.as_deref(), Some("ap-guangzhou"));
    }

    #[test]
    fn memory_and_timeout_options() {
        let c = cfg("b", &["region=r"]).unwrap();
        assert_eq!(c.memory_limit, DEFAULT_MEMORY_LIMIT);
        assert_eq!(c.retry_budget, crate::cos::retry::DEFAULT_RETRY_BUDGET);
        let c = cfg(
            "b",
            &["region=r,memory_limit=256M,connect_timeout=2,stall_timeout=1.5,retry_budget=60"],
        )
        .unwrap();
        assert_eq!(c.memory_limit, 256 << 20);
        assert_eq!(c.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.stall_timeout, Duration::from_millis(1500));
        assert_eq!(c.retry_budget, Duration::from_secs(60));
        assert!(cfg("b", &["region=r,memory_limit=1M"]).is_err());
        assert!(cfg("b", &["region=r,stall_timeout=0"]).is_err());
    }

    #[test]
    fn unknown_options_are_named() {
        let e = cfg("b", &["region=r,bogus,frob=1"]).unwrap_err();
        assert_eq!(
            e,
            CliError::UnknownOptions(vec!["bogus".into(), "frob".into()])
        );
        assert_eq!(e.to_string(), "unknown mount options: bogus, frob");
    }

    #[test]
    fn typed_values() {
        let c = cfg(
            "b",
            &["url=http://127.0.0.1:9000,ro,uid=1000,gid=100,umask=027,attr_timeout=0.5,stat_ttl=30,cache_size=1G"],
        )
        .unwrap();
        assert_eq!(c.endpoint.as_deref(), Some("http://127.0.0.1:9000"));
        assert!(c.read_only);
        assert_eq!((c.uid, c.gid), (Some(1000), Some(100)));
        assert_eq!(c.file_mode(), 0o640);
        assert_eq!(c.dir_mode(), 0o750);
        assert_eq!(c.attr_timeout, Duration::from_millis(500));
        assert_eq!(c.stat_ttl, Duration::from_secs(30));
        assert_eq!(c.cache_size, 1 << 30);
    }

    #[test]
    fn defaults_are_sane() {
        let c = cfg("b", &["region=ap-beijing"]).unwrap();
        assert_eq!(c.file_mode(), 0o644);
        assert_eq!(c.dir_mode(), 0o755);
        assert_eq!(c.cache_size, DEFAULT_CACHE_SIZE);
        assert!(!c.read_only);
    }

    #[test]
    fn bad_values_are_refused() {
        assert!(matches!(
            cfg("b", &["region=r,uid=abc"]),
            Err(CliError::InvalidValue { .. })
        ));
        assert!(matches!(
            cfg("b", &["region=r,umask=999"]),
            Err(CliError::InvalidValue { .. })
        ));
        assert!(matches!(
            cfg("b", &["region=r,cache_size=12Q"]),
            Err(CliError::InvalidValue { .. })
        ));
        assert_eq!(
            cfg("b", &["region"]).unwrap_err(),
            CliError::MissingValue("region".into())
        );
        assert_eq!(
            cfg("b", &["region=r,ro=1"]).unwrap_err(),
            CliError::UnexpectedValue("ro".into())
        );
        assert_eq!(cfg("b", &[]).unwrap_err(), CliError::NoRegion);
    }

    #[test]
    fn sources() {
        assert_eq!(parse_source("b-1").unwrap(), ("b-1".into(), "".into()));
        assert_eq!(
            parse_source("cosfs#b-1").unwrap(),
            ("b-1".into(), "".into())
        );
        assert_eq!(
            parse_source("b-1:/a/b").unwrap(),
            ("b-1".into(), "a/b/".into())
        );
        assert_eq!(
            parse_source("b-1:/a//b/").unwrap(),
            ("b-1".into(), "a/b/".into())
        );
        assert_eq!(parse_source("b-1:/").unwrap(), ("b-1".into(), "".into()));
        assert!(parse_source("b-1:/a/../b").is_err());
        assert!(parse_source("").is_err());
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("x", "0").unwrap(), 0);
        assert_eq!(parse_size("x", "512K").unwrap(), 512 << 10);
        assert_eq!(parse_size("x", "256MiB").unwrap(), 256 << 20);
        assert_eq!(parse_size("x", "2g").unwrap(), 2 << 30);
        assert!(parse_size("x", "99999999999T").is_err());
    }

    #[test]
    fn flags_and_options_mean_the_same() {
        let argv = |v: &[&str]| -> MountConfig {
            match parse(v.iter().map(OsString::from).collect()).unwrap() {
                Parsed::Mount(c) => *c,
                Parsed::Clap(e) => panic!("{e}"),
            }
        };
        let a = argv(&[
            "cosmount",
            "b",
            "/m",
            "--endpoint",
            "http://e",
            "--read-only",
            "--uid",
            "7",
            "-f",
        ]);
        let b = argv(&[
            "cosmount",
            "b",
            "/m",
            "-o",
            "endpoint=http://e,ro",
            "-o",
            "uid=7,foreground",
        ]);
        assert_eq!(a, b);
        assert!(a.foreground && a.read_only);
    }
}
