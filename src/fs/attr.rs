//! Object metadata -> `stat`. Size, ETag and LastModified come from listings (or HEAD);
//! mode/uid/gid/mtime come from cosfs's `x-cos-meta-mode/uid/gid/mtime` once a HEAD has seen
//! them, else from the mount options. Nothing here ever produces mode 0000.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use fuser::{FileAttr, FileType, INodeNo};

/// Reported block size: large, so `cp` and friends use big buffers.
const BLKSIZE: u32 = 1024 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    /// A cosfs-style symlink: an object whose `x-cos-meta-mode` has S_IFLNK and whose body
    /// is the target. Only a HEAD can tell (listings show it as a file).
    Symlink,
    /// A FIFO, socket or device node, stored as s3fs and cosfs do: an empty object whose
    /// `x-cos-meta-mode` carries the type (the `S_IFMT` bits held here). The mount is nodev,
    /// so device nodes are inert.
    Special(u32),
}

impl Kind {
    pub fn file_type(self) -> FileType {
        match self {
            Kind::File => FileType::RegularFile,
            Kind::Dir => FileType::Directory,
            Kind::Symlink => FileType::Symlink,
            Kind::Special(t) => match t {
                libc::S_IFIFO => FileType::NamedPipe,
                libc::S_IFSOCK => FileType::Socket,
                libc::S_IFCHR => FileType::CharDevice,
                libc::S_IFBLK => FileType::BlockDevice,
                _ => FileType::RegularFile,
            },
        }
    }

    /// The kind `S_IFMT` bits of an `x-cos-meta-mode` stand for (regular for none).
    pub fn from_type_bits(t: u32) -> Kind {
        match t {
            libc::S_IFDIR => Kind::Dir,
            libc::S_IFLNK => Kind::Symlink,
            libc::S_IFIFO | libc::S_IFSOCK | libc::S_IFCHR | libc::S_IFBLK => Kind::Special(t),
            _ => Kind::File,
        }
    }
}

/// What cosmount knows about an entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stat {
    pub size: u64,
    /// Quotes stripped; `None` for directories without a marker.
    pub etag: Option<String>,
    pub mtime: SystemTime,
    /// POSIX metadata from x-cos-meta-*; `None` until a HEAD has been done.
    pub posix: Option<PosixMeta>,
}

impl Stat {
    pub fn directory(mtime: SystemTime) -> Self {
        Stat {
            size: 0,
            etag: None,
            mtime,
            posix: None,
        }
    }
}

/// cosfs-compatible metadata (`x-cos-meta-mode` is the decimal st_mode including type bits).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PosixMeta {
    pub mode: Option<u32>,
    pub uid: Option<u32>,
    pub gid: Option<u32>,
    pub mtime: Option<SystemTime>,
    /// `x-cos-meta-ctime`: the last change of data or attributes made through cosmount.
    pub ctime: Option<SystemTime>,
    /// `x-cos-meta-atime`: only when set explicitly (utimensat).
    pub atime: Option<SystemTime>,
}

/// A time as `x-cos-meta-mtime/ctime/atime` hold it: decimal seconds since the epoch, with
/// nine decimals when there is a fraction (readers that parse an integer stop at the point).
pub fn format_meta_time(t: SystemTime) -> String {
    let d = t.duration_since(UNIX_EPOCH).unwrap_or_default();
    if d.subsec_nanos() == 0 {
        d.as_secs().to_string()
    } else {
        format!("{}.{:09}", d.as_secs(), d.subsec_nanos())
    }
}

/// Parse `secs` or `secs.fraction` exactly (no float rounding); None for anything else.
pub fn parse_meta_time(v: &str) -> Option<SystemTime> {
    let v = v.trim();
    let (secs, frac) = v.split_once('.').unwrap_or((v, ""));
    if secs.is_empty() || !secs.bytes().all(|b| b.is_ascii_digit()) || secs.len() > 12 {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let secs: u64 = secs.parse().ok()?;
    let digits = &frac[..frac.len().min(9)];
    let nanos = if digits.is_empty() {
        0
    } else {
        digits.parse::<u32>().ok()? * 10u32.pow(9 - digits.len() as u32)
    };
    Some(UNIX_EPOCH + Duration::new(secs, nanos))
}

impl PosixMeta {
    /// From the `x-cos-meta-*` map (names without the prefix, lower case). Values that do not
    /// parse are ignored: foreign metadata must not make a file unreadable.
    pub fn from_meta(meta: &BTreeMap<String, String>) -> Self {
        let num = |name: &str| meta.get(name).and_then(|v| v.trim().parse::<u32>().ok());
        let time = |name: &str| meta.get(name).and_then(|v| parse_meta_time(v));
        PosixMeta {
            // A bare 0 says nothing (no type bits either); S_IFREG|0000 is a real chmod 000.
            mode: num("mode").filter(|m| *m != 0),
            uid: num("uid"),
            gid: num("gid"),
            mtime: time("mtime"),
            ctime: time("ctime"),
            atime: time("atime"),
        }
    }
}

/// Mount-wide defaults for what objects do not say.
#[derive(Debug, Clone)]
pub struct AttrDefaults {
    pub uid: u32,
    pub gid: u32,
    pub file_mode: u32,
    pub dir_mode: u32,
    /// Read-only mounts drop the write bits so tools do not try and fail.
    pub read_only: bool,
}

pub fn file_attr(ino: u64, kind: Kind, stat: &Stat, d: &AttrDefaults) -> FileAttr {
    let posix = stat.posix.clone().unwrap_or_default();
    let default_mode = match kind {
        Kind::File | Kind::Special(_) => d.file_mode,
        Kind::Dir => d.dir_mode,
        Kind::Symlink => 0o777,
    };
    let mut perm = posix.mode.map(|m| m & 0o7777).unwrap_or(default_mode);
    if d.read_only {
        perm &= !0o222;
    }
    let mtime = posix.mtime.unwrap_or(stat.mtime);
    FileAttr {
        ino: INodeNo(ino),
        size: stat.size,
        blocks: stat.size.div_ceil(512),
        atime: posix.atime.unwrap_or(mtime),
        mtime,
        ctime: posix.ctime.unwrap_or(mtime),
        crtime: mtime,
        kind: kind.file_type(),
        perm: perm as u16,
        nlink: match kind {
            Kind::File | Kind::Symlink | Kind::Special(_) => 1,
            Kind::Dir => 2,
        },
        uid: posix.uid.unwrap_or(d.uid),
        gid: posix.gid.unwrap_or(d.gid),
        rdev: 0,
        blksize: BLKSIZE,
        flags: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> AttrDefaults {
        AttrDefaults {
            uid: 1000,
            gid: 100,
            file_mode: 0o644,
            dir_mode: 0o755,
            read_only: false,
        }
    }

    #[test]
    fn defaults_without_metadata() {
        let s = Stat {
            size: 1000,
            etag: Some("e".into()),
            mtime: UNIX_EPOCH,
            posix: None,
        };
        let a = file_attr(5, Kind::File, &s, &defaults());
        assert_eq!(
            (a.perm, a.uid, a.gid, a.size, a.blocks),
            (0o644, 1000, 100, 1000, 2)
        );
        let d = file_attr(6, Kind::Dir, &Stat::directory(UNIX_EPOCH), &defaults());
        assert_eq!((d.perm, d.kind), (0o755, FileType::Directory));
    }

    #[test]
    fn cosfs_metadata_wins_and_bad_values_are_ignored() {
        let meta: BTreeMap<String, String> = [
            ("mode", "33200"), // 0100660
            ("uid", "42"),
            ("gid", "nope"),
            ("mtime", "1700000000"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let s = Stat {
            size: 1,
            etag: None,
            mtime: UNIX_EPOCH,
            posix: Some(PosixMeta::from_meta(&meta)),
        };
        let a = file_attr(5, Kind::File, &s, &defaults());
        assert_eq!((a.perm, a.uid, a.gid), (0o660, 42, 100));
        assert_eq!(a.mtime, UNIX_EPOCH + Duration::from_secs(1_700_000_000));
        let zero: BTreeMap<String, String> = [("mode".to_string(), "32768".to_string())].into();
        let s = Stat {
            posix: Some(PosixMeta::from_meta(&zero)),
            ..s
        };
        assert_eq!(
            file_attr(5, Kind::File, &s, &defaults()).perm,
            0o000,
            "chmod 000 is kept"
        );
        let bare: BTreeMap<String, String> = [("mode".to_string(), "0".to_string())].into();
        let s = Stat {
            posix: Some(PosixMeta::from_meta(&bare)),
            ..s
        };
        assert_eq!(file_attr(5, Kind::File, &s, &defaults()).perm, 0o644);
    }

    #[test]
    fn times_keep_nanoseconds_and_old_integer_seconds_parse() {
        let t = UNIX_EPOCH + Duration::new(1_700_000_000, 123_456_789);
        assert_eq!(format_meta_time(t), "1700000000.123456789");
        assert_eq!(parse_meta_time("1700000000.123456789"), Some(t));
        assert_eq!(format_meta_time(UNIX_EPOCH + Duration::from_secs(5)), "5");
        assert_eq!(
            parse_meta_time(" 1700000000 "),
            Some(UNIX_EPOCH + Duration::from_secs(1_700_000_000))
        );
        assert_eq!(
            parse_meta_time("1.5"),
            Some(UNIX_EPOCH + Duration::from_millis(1500))
        );
        for bad in ["", "-1", "x", "1e9", "1.2.3", "99999999999999"] {
            assert_eq!(parse_meta_time(bad), None, "{bad}");
        }
    }

    #[test]
    fn read_only_drops_write_bits() {
        let d = AttrDefaults {
            read_only: true,
            ..defaults()
        };
        let a = file_attr(5, Kind::File, &Stat::directory(UNIX_EPOCH), &d);
        assert_eq!(a.perm, 0o444);
    }
}
