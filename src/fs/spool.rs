//! The local side of a write handle: a spool file on disk, and the byte-range sets that say
//! which parts of it hold real data.
//!
//! A spool file is created under the cache directory with a random name (object keys never
//! become paths). It is deleted when the handle's upload succeeds; when the upload fails it is
//! kept (renamed out of the temporary state) so no written data is ever lost, and its path is
//! logged. Beside it, the spool journal (see [`super::journal`]) records what it holds; the
//! process using a spool file holds an exclusive `flock` on it, so a leftover can be told
//! from a file in use.

use std::fs::File;
use std::io;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use tempfile::TempPath;

/// Where spool files go when the user gives no `-o cache_dir=`: `$XDG_CACHE_HOME/cosmount`,
/// `/var/cache/cosmount` for root, else `$HOME/.cache/cosmount`.
pub fn default_cache_dir() -> PathBuf {
    if let Some(xdg) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(xdg).join("cosmount");
    }
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        return PathBuf::from("/var/cache/cosmount");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("cosmount"),
        None => std::env::temp_dir().join("cosmount"),
    }
}

/// The spool directory inside a cache directory, created (mode 0700: spooled data may be
/// private) if missing.
pub fn spool_dir(cache_dir: &Path) -> io::Result<PathBuf> {
    let dir = cache_dir.join("spool");
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)?;
    Ok(dir)
}

/// One spool file. Cloning the [`SpoolFile::file`] handle lets upload tasks read parts while
/// the application keeps writing.
pub struct SpoolFile {
    file: Arc<File>,
    /// `Some` while the file is temporary (deleted on drop); `None` once kept.
    temp: Option<TempPath>,
    path: PathBuf,
    /// The length counted in the `cosmount_spool_bytes` gauge for this file.
    counted: std::sync::atomic::AtomicU64,
}

/// Move the process-wide spool gauge by the change from `old` to `new` bytes.
fn count_spool(old: u64, new: u64) {
    let delta = i64::try_from(new).unwrap_or(i64::MAX) - i64::try_from(old).unwrap_or(i64::MAX);
    crate::metrics::global()
        .spool_bytes
        .fetch_add(delta, std::sync::atomic::Ordering::Relaxed);
}

impl Drop for SpoolFile {
    fn drop(&mut self) {
        count_spool(*self.counted.get_mut(), 0);
    }
}

impl std::fmt::Debug for SpoolFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SpoolFile")
            .field("path", &self.path)
            .finish()
    }
}

impl SpoolFile {
    /// A new empty spool file in `dir`.
    pub fn create(dir: &Path) -> io::Result<Self> {
        let named = tempfile::Builder::new()
            .prefix("spool-")
            .suffix(".part")
            .tempfile_in(dir)?;
        let (file, temp) = named.into_parts();
        let path = temp.to_path_buf();
        super::journal::lock_spool(&file)?;
        Ok(SpoolFile {
            file: Arc::new(file),
            temp: Some(temp),
            path,
            counted: std::sync::atomic::AtomicU64::new(0),
        })
    }

    /// Take over an existing spool file (a leftover being recovered). It is deleted when the
    /// handle ends unless kept, like a new one. Fails with `WouldBlock` when a running
    /// process holds it.
    pub fn adopt(path: &Path) -> io::Result<Self> {
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)?;
        super::journal::lock_spool(&file)?;
        let len = file.metadata()?.len();
        let temp = TempPath::try_from_path(path)?;
        count_spool(0, len);
        Ok(SpoolFile {
            file: Arc::new(file),
            temp: Some(temp),
            path: path.to_path_buf(),
            counted: std::sync::atomic::AtomicU64::new(len),
        })
    }

    /// The spool file's length on disk.
    pub fn disk_len(&self) -> io::Result<u64> {
        Ok(self.file.metadata()?.len())
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn file(&self) -> Arc<File> {
        self.file.clone()
    }

    pub fn write_at(&self, offset: u64, data: &[u8]) -> io::Result<()> {
        self.file.write_all_at(data, offset)?;
        let end = offset.saturating_add(data.len() as u64);
        let old = self
            .counted
            .fetch_max(end, std::sync::atomic::Ordering::Relaxed);
        if end > old {
            count_spool(old, end);
        }
        Ok(())
    }

    /// Set the length; growing fills with zeros (a sparse hole), shrinking drops the tail.
    pub fn set_len(&self, len: u64) -> io::Result<()> {
        self.file.set_len(len)?;
        let old = self.counted.swap(len, std::sync::atomic::Ordering::Relaxed);
        count_spool(old, len);
        Ok(())
    }

    /// Keep the file on disk after this handle is gone (the upload failed). Returns its path.
    /// Calling it twice is harmless.
    pub fn keep(&mut self) -> io::Result<PathBuf> {
        if let Some(temp) = self.temp.take() {
            temp.keep().map_err(|e| e.error)?;
        }
        Ok(self.path.clone())
    }

    pub fn is_kept(&self) -> bool {
        self.temp.is_none()
    }
}

/// Read `len` bytes at `offset` of a spool file. Bytes past its end read as zeros (the file
/// may be shorter than the logical size after a sparse extension that was never written).
pub fn read_spool(file: &File, offset: u64, len: usize) -> io::Result<Bytes> {
    let mut buf = vec![0u8; len];
    let mut done = 0;
    while done < len {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(Bytes::from(buf))
}

/// A set of disjoint, sorted, half-open byte ranges `[start, end)`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RangeSet {
    ranges: Vec<(u64, u64)>,
}

impl RangeSet {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    /// Add `[start, end)`, merging with touching neighbours.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut s, mut e) = (start, end);
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, b) in &self.ranges {
            if b < s || a > e {
                kept.push((a, b));
            } else {
                s = s.min(a);
                e = e.max(b);
            }
        }
        let at = kept.partition_point(|&(a, _)| a < s);
        kept.insert(at, (s, e));
        self.ranges = kept;
    }

    /// Remove `[start, end)`.
    pub fn remove(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let mut kept = Vec::with_capacity(self.ranges.len() + 1);
        for &(a, b) in &self.ranges {
            if b <= start || a >= end {
                kept.push((a, b));
                continue;
            }
            if a < start {
                kept.push((a, start));
            }
            if b > end {
                kept.push((end, b));
            }
        }
        self.ranges = kept;
    }

    /// Drop everything at or after `len`.
    pub fn truncate(&mut self, len: u64) {
        self.remove(len, u64::MAX);
    }

    /// Does the set contain every byte of `[start, end)`?
    pub fn covers(&self, start: u64, end: u64) -> bool {
        start >= end || self.ranges.iter().any(|&(a, b)| a <= start && end <= b)
    }

    /// Does the set contain any byte of `[start, end)`?
    pub fn intersects(&self, start: u64, end: u64) -> bool {
        start < end && self.ranges.iter().any(|&(a, b)| a < end && start < b)
    }

    /// The sub-ranges of `[start, end)` the set does not contain.
    pub fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut at = start;
        for &(a, b) in &self.ranges {
            if b <= at {
                continue;
            }
            if a >= end {
                break;
            }
            if a > at {
                gaps.push((at, a));
            }
            at = at.max(b);
            if at >= end {
                break;
            }
        }
        if at < end {
            gaps.push((at, end));
        }
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn range_set_merges_splits_and_finds_gaps() {
        let mut set = RangeSet::new();
        set.insert(10, 20);
        set.insert(30, 40);
        set.insert(20, 25); // touches: merges
        assert_eq!(set.ranges(), &[(10, 25), (30, 40)]);
        assert!(set.covers(12, 25));
        assert!(!set.covers(12, 26));
        assert!(set.intersects(24, 31));
        assert!(!set.intersects(25, 30));
        assert_eq!(set.gaps(0, 50), vec![(0, 10), (25, 30), (40, 50)]);
        assert_eq!(set.gaps(12, 22), vec![]);
        set.remove(15, 35);
        assert_eq!(set.ranges(), &[(10, 15), (35, 40)]);
        set.insert(0, 100);
        assert_eq!(set.ranges(), &[(0, 100)]);
        set.truncate(7);
        assert_eq!(set.ranges(), &[(0, 7)]);
    }

    #[test]
    fn spool_file_is_deleted_unless_kept() {
        let dir = tempfile::tempdir().unwrap();
        let spool = SpoolFile::create(dir.path()).unwrap();
        spool.write_at(3, b"abc").unwrap();
        let path = spool.path().to_path_buf();
        assert_eq!(
            &read_spool(&spool.file(), 0, 8).unwrap()[..],
            b"\0\0\0abc\0\0"
        );
        drop(spool);
        assert!(!path.exists());

        let mut spool = SpoolFile::create(dir.path()).unwrap();
        spool.write_at(0, b"keep me").unwrap();
        let kept = spool.keep().unwrap();
        drop(spool);
        assert_eq!(std::fs::read(&kept).unwrap(), b"keep me");
    }
}
