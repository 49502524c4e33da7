//! What HEAD requests learned about objects, kept per object version.
//!
//! A listing tells an object's size, ETag and LastModified, but not its type (a cosfs symlink
//! is a small object with S_IFLNK in `x-cos-meta-mode`) nor its mode, owner and mtime. Only a
//! HEAD tells those. What a HEAD learned is kept here under the object's key together with the
//! version it describes (ETag + size + LastModified to the second), and it answers for every
//! later listing entry of the same version: a listing never overwrites it. A listing entry of
//! another version invalidates it. This is the only metadata cache that is never expired by
//! time; it is bounded in bytes, and saved in the cache directory at unmount so an unchanged
//! bucket costs no HEAD after a remount either.
//!
//! Objects cosmount writes itself are recorded here before COS has told their LastModified
//! (a PUT answer does not carry it): such a record is "unpinned" and takes the LastModified
//! of the first listing or HEAD that shows the same ETag and size.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use percent_encoding::{percent_decode_str, utf8_percent_encode, AsciiSet, CONTROLS};

use crate::cache::WeightedLru;
use crate::fs::attr::{Kind, PosixMeta};

/// Bytes a record costs beyond its key and ETag (the struct, the LRU node).
const RECORD_OVERHEAD: usize = 128;
/// First line of the saved file; a file with another header is ignored.
const FILE_HEADER: &str = "cosmount-learned-meta v2";
/// Characters escaped in a saved key: controls, the field separator and `%` itself.
const KEY_ESCAPES: &AsciiSet = &CONTROLS.add(b'%').add(b' ');

/// One object version, as listings and HEADs describe it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Quotes stripped.
    pub etag: String,
    pub size: u64,
    /// Unix seconds; `None` until COS told it (an object cosmount just wrote).
    pub last_modified: Option<u64>,
}

impl Version {
    pub fn seen(etag: &str, size: u64, last_modified: SystemTime) -> Self {
        Version {
            etag: etag.to_string(),
            size,
            last_modified: Some(unix_secs(last_modified)),
        }
    }

    /// A directory with no `dir/` marker (only implied by the keys under it).
    pub fn implied() -> Self {
        Version {
            etag: String::new(),
            size: 0,
            last_modified: Some(0),
        }
    }

    /// A version cosmount itself wrote: LastModified not known yet.
    pub fn written(etag: &str, size: u64) -> Self {
        Version {
            etag: etag.to_string(),
            size,
            last_modified: None,
        }
    }
}

/// What a HEAD learned about one version of an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Learned {
    pub version: Version,
    pub kind: Kind,
    pub posix: PosixMeta,
}

/// The answer for a listing entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Known {
    /// Learned for exactly this version.
    Same(Learned),
    /// Nothing learned, or learned for another version (now forgotten): a HEAD must tell.
    Unknown,
}

pub struct LearnedMeta {
    inner: Mutex<WeightedLru<String, Learned>>,
}

fn unix_secs(t: SystemTime) -> u64 {
    t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs())
}

fn weight(key: &str, l: &Learned) -> usize {
    key.len() + l.version.etag.len() + RECORD_OVERHEAD
}

impl LearnedMeta {
    pub fn new(budget_bytes: usize) -> Self {
        LearnedMeta {
            inner: Mutex::new(WeightedLru::new(budget_bytes)),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, WeightedLru<String, Learned>> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// What is known about `key` at version `seen` (from a listing or a HEAD). A record of
    /// another version is dropped; an unpinned record of the same ETag and size takes `seen`'s
    /// LastModified.
    pub fn check(&self, key: &str, seen: &Version) -> Known {
        let mut inner = self.lock();
        let Some(rec) = inner.get(&key.to_string()).cloned() else {
            return Known::Unknown;
        };
        let same_content = rec.version.etag == seen.etag && rec.version.size == seen.size;
        match (rec.version.last_modified, seen.last_modified) {
            (Some(a), Some(b)) if same_content && a == b => Known::Same(rec),
            (None, Some(_)) if same_content => {
                let pinned = Learned {
                    version: seen.clone(),
                    ..rec
                };
                let w = weight(key, &pinned);
                inner.insert(key.to_string(), pinned.clone(), w);
                Known::Same(pinned)
            }
            (_, None) if same_content => Known::Same(rec),
            _ => {
                inner.remove(&key.to_string());
                Known::Unknown
            }
        }
    }

    /// The record of `key` whatever its version (directory markers, whose version the parent's
    /// listing does not show).
    pub fn any(&self, key: &str) -> Option<Learned> {
        self.lock().get(&key.to_string()).cloned()
    }

    pub fn insert(&self, key: &str, learned: Learned) {
        let w = weight(key, &learned);
        self.lock().insert(key.to_string(), learned, w);
    }

    pub fn remove(&self, key: &str) {
        self.lock().remove(&key.to_string());
    }

    /// Forget every key starting with `prefix` (a directory renamed or removed).
    pub fn remove_under(&self, prefix: &str) {
        self.lock().remove_where(|k: &String| k.starts_with(prefix));
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Save the pinned records (an unpinned one describes a version nobody has confirmed yet).
    /// Written to a temporary file and renamed, so a crash never leaves half a file.
    pub fn save(&self, path: &Path) -> io::Result<usize> {
        let records: Vec<(String, Learned)> = self
            .lock()
            .iter()
            .filter(|(_, l)| l.version.last_modified.is_some())
            .map(|(k, l)| (k.clone(), l.clone()))
            .collect();
        let tmp = path.with_extension("tmp");
        let mut out = io::BufWriter::new(std::fs::File::create(&tmp)?);
        writeln!(out, "{FILE_HEADER}")?;
        // Least recently used first, so loading in order keeps the LRU order.
        for (key, l) in records.iter().rev() {
            writeln!(out, "{}", encode_line(key, l))?;
        }
        out.into_inner().map_err(|e| e.into_error())?.sync_all()?;
        std::fs::rename(&tmp, path)?;
        Ok(records.len())
    }

    /// Load what an earlier mount saved; lines that do not parse are skipped (a foreign or
    /// damaged file must not stop a mount). A missing file is an empty store.
    pub fn load(&self, path: &Path) -> io::Result<usize> {
        let file = match std::fs::File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        let mut lines = io::BufReader::new(file).lines();
        if lines.next().transpose()?.as_deref() != Some(FILE_HEADER) {
            return Ok(0);
        }
        let mut n = 0;
        for line in lines {
            if let Some((key, l)) = decode_line(&line?) {
                self.insert(&key, l);
                n += 1;
            }
        }
        Ok(n)
    }
}

fn kind_name(k: Kind) -> String {
    match k {
        Kind::File => "f".into(),
        Kind::Dir => "d".into(),
        Kind::Symlink => "l".into(),
        Kind::Special(t) => format!("s{t}"),
    }
}

fn opt<T: ToString>(v: Option<T>) -> String {
    v.map_or_else(|| "-".to_string(), |v| v.to_string())
}

fn time_ns(t: Option<SystemTime>) -> Option<u128> {
    t.and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_nanos())
}

fn time_of(ns: Option<u128>) -> Option<Option<SystemTime>> {
    match ns {
        Some(ns) => {
            let secs = u64::try_from(ns / 1_000_000_000).ok()?;
            Some(Some(
                UNIX_EPOCH + Duration::new(secs, (ns % 1_000_000_000) as u32),
            ))
        }
        None => Some(None),
    }
}

/// `key etag size lm kind mode uid gid mtime_ns ctime_ns atime_ns`, space separated, key
/// and ETag percent-escaped, `-` for none.
fn encode_line(key: &str, l: &Learned) -> String {
    format!(
        "{} {} {} {} {} {} {} {} {} {} {}",
        utf8_percent_encode(key, KEY_ESCAPES),
        utf8_percent_encode(&l.version.etag, KEY_ESCAPES),
        l.version.size,
        opt(l.version.last_modified),
        kind_name(l.kind),
        opt(l.posix.mode),
        opt(l.posix.uid),
        opt(l.posix.gid),
        opt(time_ns(l.posix.mtime)),
        opt(time_ns(l.posix.ctime)),
        opt(time_ns(l.posix.atime)),
    )
}

fn decode_line(line: &str) -> Option<(String, Learned)> {
    let f: Vec<&str> = line.split(' ').collect();
    let [key, etag, size, lm, kind, mode, uid, gid, mtime, ctime, atime] = f.as_slice() else {
        return None;
    };
    fn num<T: std::str::FromStr>(s: &str) -> Option<Option<T>> {
        if s == "-" {
            Some(None)
        } else {
            s.parse().ok().map(Some)
        }
    }
    let kind = match *kind {
        "f" => Kind::File,
        "d" => Kind::Dir,
        "l" => Kind::Symlink,
        s => match s.strip_prefix('s').and_then(|t| t.parse().ok()) {
            Some(t) => Kind::Special(t),
            None => return None,
        },
    };
    Some((
        percent_decode_str(key).decode_utf8().ok()?.into_owned(),
        Learned {
            version: Version {
                etag: percent_decode_str(etag).decode_utf8().ok()?.into_owned(),
                size: size.parse().ok()?,
                last_modified: num(lm)?,
            },
            kind,
            posix: PosixMeta {
                mode: num(mode)?,
                uid: num(uid)?,
                gid: num(gid)?,
                mtime: time_of(num(mtime)?)?,
                ctime: time_of(num(ctime)?)?,
                atime: time_of(num(atime)?)?,
            },
        },
    ))
}

/// The file a mount of `bucket` at key prefix `prefix` keeps its records in.
pub fn file_name(bucket: &str, prefix: &str) -> String {
    // Not a security boundary: only a stable, file-name-safe name per (bucket, prefix).
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bucket.bytes().chain([0]).chain(prefix.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let safe: String = bucket
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("meta-{safe}-{h:016x}.txt")
}

/// For tests: the records as a map.
#[cfg(test)]
fn snapshot(m: &LearnedMeta) -> std::collections::BTreeMap<String, Learned> {
    m.lock()
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn learned(etag: &str, lm: Option<u64>, mode: u32) -> Learned {
        Learned {
            version: Version {
                etag: etag.into(),
                size: 3,
                last_modified: lm,
            },
            kind: Kind::Symlink,
            posix: PosixMeta {
                mode: Some(mode),
                uid: Some(1000),
                gid: None,
                mtime: Some(UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789)),
                ctime: Some(UNIX_EPOCH + Duration::new(1_700_000_001, 5)),
                atime: None,
            },
        }
    }

    fn seen(etag: &str, lm: u64) -> Version {
        Version {
            etag: etag.into(),
            size: 3,
            last_modified: Some(lm),
        }
    }

    #[test]
    fn same_version_answers_and_another_version_forgets() {
        let m = LearnedMeta::new(1 << 20);
        m.insert("a", learned("e1", Some(100), 0o120777));
        assert!(matches!(m.check("a", &seen("e1", 100)), Known::Same(_)));
        // A chmod by another client: same content, new LastModified.
        assert_eq!(m.check("a", &seen("e1", 101)), Known::Unknown);
        assert_eq!(m.check("a", &seen("e1", 100)), Known::Unknown, "forgotten");
    }

    #[test]
    fn an_own_write_is_pinned_by_the_first_sighting() {
        let m = LearnedMeta::new(1 << 20);
        m.insert("a", learned("e1", None, 0o100600));
        let Known::Same(l) = m.check("a", &seen("e1", 200)) else {
            panic!("unpinned record must match its etag and size");
        };
        assert_eq!(l.version.last_modified, Some(200));
        assert_eq!(m.check("a", &seen("e1", 201)), Known::Unknown);
    }

    #[test]
    fn bounded_in_bytes() {
        let m = LearnedMeta::new(10 * (RECORD_OVERHEAD + 4));
        for i in 0..100 {
            m.insert(&format!("k{i:02}"), learned("e", Some(1), 0o644));
        }
        assert!(m.len() <= 10);
        assert!(m.any("k99").is_some() && m.any("k00").is_none());
    }

    #[test]
    fn saved_and_loaded_with_odd_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(file_name("b-1250000000", "p/"));
        let m = LearnedMeta::new(1 << 20);
        m.insert(
            "dir with space/100%\n.txt",
            learned("e1", Some(7), 0o120777),
        );
        m.insert("unpinned", learned("e2", None, 0o644));
        assert_eq!(m.save(&path).unwrap(), 1);
        let back = LearnedMeta::new(1 << 20);
        assert_eq!(back.load(&path).unwrap(), 1);
        let snap = snapshot(&back);
        assert_eq!(
            snap.get("dir with space/100%\n.txt"),
            Some(&learned("e1", Some(7), 0o120777))
        );
        std::fs::write(&path, "something else\nx y z\n").unwrap();
        assert_eq!(LearnedMeta::new(1 << 20).load(&path).unwrap(), 0);
        assert_eq!(
            LearnedMeta::new(1 << 20)
                .load(&dir.path().join("missing"))
                .unwrap(),
            0
        );
    }
}
