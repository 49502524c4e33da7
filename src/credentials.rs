//! Where the SecretId/SecretKey come from, first found wins:
//! 1. `-o passwd_file=PATH`
//! 2. environment `COS_SECRET_ID` + `COS_SECRET_KEY` (+ `COS_SECURITY_TOKEN` for temporary keys)
//! 3. `~/.passwd-cosfs`
//! 4. `/etc/passwd-cosfs`
//!
//! Files use cosfs's format (one `bucket:SecretId:SecretKey` or `SecretId:SecretKey` per line, `#`
//! comments) so cosfs users can switch without rewriting them. A file that group or others can
//! read is refused, as cosfs does: a leaked key is worse than a failed mount. Nothing here ever
//! prints a secret; [`Credentials`]' Debug redacts it.

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// A key pair, and the token when the pair is temporary (STS).
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub secret_id: String,
    pub secret_key: String,
    pub security_token: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("secret_id", &self.secret_id)
            .field("secret_key", &"<redacted>")
            .field(
                "security_token",
                &self.security_token.as_ref().map(|_| "<redacted>"),
            )
            .finish()
    }
}

/// Where the credentials were found (logged at mount, never with the secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    PasswdFileOption(PathBuf),
    Environment,
    HomeFile(PathBuf),
    SystemFile(PathBuf),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::PasswdFileOption(p) => write!(f, "passwd_file {}", p.display()),
            Source::Environment => write!(f, "environment COS_SECRET_ID/COS_SECRET_KEY"),
            Source::HomeFile(p) | Source::SystemFile(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum CredentialsError {
    #[error(
        "credentials file {path} can be read by group or others (mode {mode:04o}); run: chmod 600 {path}"
    )]
    TooOpen { path: String, mode: u32 },
    #[error("credentials file {path} is a directory; passwd_file must name a file of bucket:SecretId:SecretKey lines")]
    IsDirectory { path: String },
    #[error("cannot read credentials file {path}: {reason}")]
    Unreadable { path: String, reason: String },
    #[error("credentials file {path} has no usable line for bucket {bucket} (expected bucket:SecretId:SecretKey or SecretId:SecretKey)")]
    NoEntry { path: String, bucket: String },
    #[error("COS_SECRET_ID is set but COS_SECRET_KEY is not (or the other way round)")]
    HalfEnvironment,
    #[error("no credentials: use -o passwd_file=PATH, COS_SECRET_ID/COS_SECRET_KEY, ~/.passwd-cosfs or /etc/passwd-cosfs")]
    NotFound,
}

/// Where to look; the process environment in production, fixed values in tests.
pub struct Lookup<'a> {
    pub passwd_file: Option<&'a Path>,
    pub env: &'a dyn Fn(&str) -> Option<String>,
    pub home: Option<PathBuf>,
    pub system_file: PathBuf,
}

impl Lookup<'_> {
    /// The real process environment.
    pub fn from_process(passwd_file: Option<&Path>) -> Lookup<'_> {
        fn env(name: &str) -> Option<String> {
            std::env::var(name).ok().filter(|v| !v.is_empty())
        }
        Lookup {
            passwd_file,
            env: &env,
            home: std::env::var_os("HOME").map(PathBuf::from),
            system_file: PathBuf::from("/etc/passwd-cosfs"),
        }
    }
}

/// Find the credentials for `bucket`.
pub fn resolve(bucket: &str, look: &Lookup<'_>) -> Result<(Credentials, Source), CredentialsError> {
    if let Some(path) = look.passwd_file {
        return read_file(path, bucket).map(|c| (c, Source::PasswdFileOption(path.to_path_buf())));
    }
    match ((look.env)("COS_SECRET_ID"), (look.env)("COS_SECRET_KEY")) {
        (Some(secret_id), Some(secret_key)) => {
            let creds = Credentials {
                secret_id,
                secret_key,
                security_token: (look.env)("COS_SECURITY_TOKEN"),
            };
            return Ok((creds, Source::Environment));
        }
        (None, None) => {}
        _ => return Err(CredentialsError::HalfEnvironment),
    }
    if let Some(home) = &look.home {
        let path = home.join(".passwd-cosfs");
        if path.exists() {
            return read_file(&path, bucket).map(|c| (c, Source::HomeFile(path)));
        }
    }
    if look.system_file.exists() {
        let path = look.system_file.clone();
        return read_file(&path, bucket).map(|c| (c, Source::SystemFile(path)));
    }
    Err(CredentialsError::NotFound)
}

fn read_file(path: &Path, bucket: &str) -> Result<Credentials, CredentialsError> {
    let shown = path.display().to_string();
    let unreadable = |e: std::io::Error| CredentialsError::Unreadable {
        path: shown.clone(),
        reason: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    if meta.is_dir() {
        return Err(CredentialsError::IsDirectory { path: shown });
    }
    let mode = meta.permissions().mode() & 0o7777;
    if mode & 0o077 != 0 {
        return Err(CredentialsError::TooOpen { path: shown, mode });
    }
    let text = std::fs::read_to_string(path).map_err(unreadable)?;
    parse_passwd(&text, bucket).ok_or(CredentialsError::NoEntry {
        path: shown,
        bucket: bucket.to_string(),
    })
}

/// Environment variables that hold secrets; [`scrub_environment`] removes them once read.
/// (`COS_SECRET_ID` is not secret and stays.)
pub const SECRET_ENV_VARS: [&str; 2] = ["COS_SECRET_KEY", "COS_SECURITY_TOKEN"];

/// Remove [`SECRET_ENV_VARS`] from the process environment, and overwrite their original text
/// with NUL bytes: `unsetenv` only unlinks the entry, while `/proc/PID/environ` shows the
/// environment block the process started with. Afterwards neither children (fusermount3)
/// nor anyone reading `/proc/PID/environ` sees the secrets.
///
/// Must be called while the process has one thread (early in `main`, before the runtime or
/// logging start): changing the environment races with any other thread reading it.
pub fn scrub_environment() {
    extern "C" {
        static mut environ: *mut *mut libc::c_char;
    }
    for name in SECRET_ENV_VARS {
        let prefix = format!("{name}=");
        let mut texts: Vec<(*mut libc::c_char, usize)> = Vec::new();
        // SAFETY: single-threaded (see above), so nothing changes `environ` while we walk it;
        // it is NULL or a NULL-terminated array of pointers to NUL-terminated strings.
        unsafe {
            let mut entry = std::ptr::addr_of!(environ).read();
            while !entry.is_null() && !(*entry).is_null() {
                let text = std::ffi::CStr::from_ptr(*entry).to_bytes();
                if text.starts_with(prefix.as_bytes()) {
                    texts.push((*entry, text.len()));
                }
                entry = entry.add(1);
            }
        }
        std::env::remove_var(name);
        for (ptr, len) in texts {
            // SAFETY: the string is writable memory (the initial environment block on the
            // stack, or a copy setenv allocated), `len` bytes long, and no longer reachable
            // through `environ`: glibc's unsetenv neither frees nor reuses it.
            unsafe { std::ptr::write_bytes(ptr, 0, len) };
        }
    }
}

/// cosfs format: the line for this bucket wins; otherwise the first `SecretId:SecretKey` line.
pub fn parse_passwd(text: &str, bucket: &str) -> Option<Credentials> {
    let mut generic = None;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split(':').map(str::trim).collect();
        let pair = |id: &str, key: &str| {
            (!id.is_empty() && !key.is_empty()).then(|| Credentials {
                secret_id: id.to_string(),
                secret_key: key.to_string(),
                security_token: None,
            })
        };
        match fields.as_slice() {
            [b, id, key] if *b == bucket => {
                if let Some(c) = pair(id, key) {
                    return Some(c);
                }
            }
            [id, key] if generic.is_none() => generic = pair(id, key),
            _ => {}
        }
    }
    generic
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn write(dir: &Path, name: &str, body: &str, mode: u32) -> PathBuf {
        let p = dir.join(name);
        std::fs::write(&p, body).unwrap();
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
        p
    }

    #[test]
    fn bucket_line_beats_generic_line() {
        let text = "# comment\nAKIDgeneric:keyg\nother-1:AKIDo:keyo\nmine-1:AKIDm:keym\n";
        let c = parse_passwd(text, "mine-1").unwrap();
        assert_eq!(
            (c.secret_id.as_str(), c.secret_key.as_str()),
            ("AKIDm", "keym")
        );
        let c = parse_passwd(text, "nobody-1").unwrap();
        assert_eq!(c.secret_id, "AKIDgeneric");
        assert!(parse_passwd("other-1:a:b\n", "mine-1").is_none());
    }

    #[test]
    fn group_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = write(dir.path(), "pw", "AKID:key\n", 0o640);
        let look = Lookup {
            passwd_file: Some(&p),
            env: &no_env,
            home: None,
            system_file: dir.path().join("none"),
        };
        let e = resolve("b", &look).unwrap_err();
        assert!(matches!(e, CredentialsError::TooOpen { mode: 0o640, .. }));
        assert!(e.to_string().contains("chmod 600"));
    }

    #[test]
    fn order_is_option_env_home_system() {
        let dir = tempfile::tempdir().unwrap();
        let opt = write(dir.path(), "opt", "OPT:k\n", 0o600);
        write(dir.path(), ".passwd-cosfs", "HOME:k\n", 0o600);
        let sys = write(dir.path(), "sys", "SYS:k\n", 0o600);
        let env = |n: &str| match n {
            "COS_SECRET_ID" => Some("ENV".to_string()),
            "COS_SECRET_KEY" => Some("k".to_string()),
            "COS_SECURITY_TOKEN" => Some("tok".to_string()),
            _ => None,
        };
        let mut look = Lookup {
            passwd_file: Some(&opt),
            env: &env,
            home: Some(dir.path().into()),
            system_file: sys.clone(),
        };
        assert_eq!(resolve("b", &look).unwrap().0.secret_id, "OPT");
        look.passwd_file = None;
        let (c, src) = resolve("b", &look).unwrap();
        assert_eq!(
            (c.secret_id.as_str(), c.security_token.as_deref()),
            ("ENV", Some("tok"))
        );
        assert_eq!(src, Source::Environment);
        look.env = &no_env;
        assert_eq!(resolve("b", &look).unwrap().0.secret_id, "HOME");
        look.home = None;
        assert_eq!(resolve("b", &look).unwrap().0.secret_id, "SYS");
        look.system_file = dir.path().join("missing");
        assert_eq!(resolve("b", &look).unwrap_err(), CredentialsError::NotFound);
    }

    #[test]
    fn directory_is_named_as_such() {
        let dir = tempfile::tempdir().unwrap();
        let look = Lookup {
            passwd_file: Some(dir.path()),
            env: &no_env,
            home: None,
            system_file: dir.path().join("none"),
        };
        let e = resolve("b", &look).unwrap_err();
        assert!(matches!(e, CredentialsError::IsDirectory { .. }), "{e:?}");
        assert!(e.to_string().contains("is a directory"), "{e}");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let c = Credentials {
            secret_id: "AKID".into(),
            secret_key: "s3cr3t".into(),
            security_token: Some("t0k3n".into()),
        };
        let shown = format!("{c:?}");
        assert!(shown.contains("AKID") && !shown.contains("s3cr3t") && !shown.contains("t0k3n"));
    }
}
