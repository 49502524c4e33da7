//! The inode table: inode number <-> path, with the kernel's lookup counts.
//!
//! A path keeps its inode number while the kernel remembers it (lookup count > 0), so hard-won
//! metadata (a HEAD's x-cos-meta-*, the ETag seen at the last open) stays attached to it. A path
//! that changes kind (a file replaced by a directory) gets a fresh inode number.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::fs::attr::{Kind, Stat};

pub const ROOT_INO: u64 = 1;

/// A copy of what the table knows about one inode.
#[derive(Debug, Clone)]
pub struct Node {
    /// Path relative to the mount root, without leading or trailing `/`; "" is the root.
    pub path: Arc<str>,
    pub kind: Kind,
    pub stat: Stat,
    /// When `stat` was last confirmed by COS.
    pub stat_at: Instant,
}

struct Entry {
    node: Node,
    lookups: u64,
    /// ETag seen by the last open(); an open that sees the same ETag keeps the page cache.
    opened_etag: Option<String>,
    /// Removed (unlink, or replaced by a rename) while the kernel still holds it, e.g. open.
    unlinked: bool,
}

struct Inner {
    next_ino: u64,
    nodes: HashMap<u64, Entry>,
    by_path: HashMap<Arc<str>, u64>,
    /// Path -> the number its inode had when the kernel forgot it: the next inode at that path
    /// of the same kind gets it back, so `stat` shows one number while the object exists.
    retired: lru::LruCache<Arc<str>, (u64, Kind)>,
}

/// Forgotten paths whose inode numbers are kept for reuse (about 100 bytes each).
const RETIRED_PATHS: usize = 200_000;

pub struct InodeTable {
    inner: Mutex<Inner>,
}

impl InodeTable {
    pub fn new(root: Stat) -> Self {
        let path: Arc<str> = Arc::from("");
        let root = Entry {
            node: Node {
                path: path.clone(),
                kind: Kind::Dir,
                stat: root,
                stat_at: Instant::now(),
            },
            // The root is never forgotten.
            lookups: 1,
            opened_etag: None,
            unlinked: false,
        };
        Self {
            inner: Mutex::new(Inner {
                next_ino: ROOT_INO + 1,
                nodes: HashMap::from([(ROOT_INO, root)]),
                by_path: HashMap::from([(path, ROOT_INO)]),
                retired: lru::LruCache::new(
                    std::num::NonZeroUsize::new(RETIRED_PATHS)
                        .unwrap_or(std::num::NonZeroUsize::MIN),
                ),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn get(&self, ino: u64) -> Option<Node> {
        self.lock().nodes.get(&ino).map(|e| e.node.clone())
    }

    /// Record that the kernel now knows `path` (one more lookup) and return its inode number
    /// and the stat to report (which keeps HEAD-learned metadata when the ETag is unchanged).
    pub fn remember(&self, path: &str, kind: Kind, stat: Stat) -> (u64, Stat) {
        let (ino, _, stat) = self.remember_kind(path, kind, stat);
        (ino, stat)
    }

    /// [`InodeTable::remember`], also returning the kind to report. A path whose kind changed
    /// (a file replaced by a directory or a symlink) gets a new inode.
    pub fn remember_kind(&self, path: &str, kind: Kind, stat: Stat) -> (u64, Kind, Stat) {
        let mut inner = self.lock();
        if let Some(&ino) = inner.by_path.get(path) {
            if let Some(e) = inner.nodes.get_mut(&ino) {
                if e.node.kind == kind {
                    e.lookups += 1;
                    merge_stat(&mut e.node, stat);
                    return (ino, e.node.kind, e.node.stat.clone());
                }
            }
        }
        let path: Arc<str> = Arc::from(path);
        let ino = match inner.retired.pop(&path) {
            Some((ino, was)) if was == kind && !inner.nodes.contains_key(&ino) => ino,
            _ => {
                let ino = inner.next_ino;
                inner.next_ino += 1;
                ino
            }
        };
        let node = Node {
            path: path.clone(),
            kind,
            stat: stat.clone(),
            stat_at: Instant::now(),
        };
        inner.nodes.insert(
            ino,
            Entry {
                node,
                lookups: 1,
                opened_etag: None,
                unlinked: false,
            },
        );
        inner.by_path.insert(path, ino);
        (ino, kind, stat)
    }

    /// The kernel dropped `n` references to `ino`.
    pub fn forget(&self, ino: u64, n: u64) {
        if ino == ROOT_INO {
            return;
        }
        let mut inner = self.lock();
        let gone = match inner.nodes.get_mut(&ino) {
            Some(e) => {
                e.lookups = e.lookups.saturating_sub(n);
                (e.lookups == 0).then(|| e.node.path.clone())
            }
            None => None,
        };
        if let Some(path) = gone {
            let kind = inner.nodes.remove(&ino).map(|e| e.node.kind);
            if inner.by_path.get(&path) == Some(&ino) {
                inner.by_path.remove(&path);
                if let Some(kind) = kind {
                    inner.retired.put(path, (ino, kind));
                }
            }
        }
    }

    /// COS confirmed (or changed) what we know about `ino`.
    pub fn refresh(&self, ino: u64, stat: Stat) -> Option<Node> {
        let mut inner = self.lock();
        let e = inner.nodes.get_mut(&ino)?;
        merge_stat(&mut e.node, stat);
        Some(e.node.clone())
    }

    /// Whether the last open of `ino` was of version `etag` (the kernel may hold its pages).
    pub fn was_opened_at(&self, ino: u64, etag: &str) -> bool {
        let inner = self.lock();
        inner
            .nodes
            .get(&ino)
            .is_some_and(|e| e.opened_etag.as_deref() == Some(etag))
    }

    /// Forget the ETag of the last open: the kernel's pages of the inode may hold another
    /// version (filled by a superseded reader), so the next open must not keep them.
    pub fn forget_open(&self, ino: u64) {
        if let Some(e) = self.lock().nodes.get_mut(&ino) {
            e.opened_etag = None;
        }
    }

    /// Record the ETag an open() saw; true when it equals the previous open's, so the kernel
    /// may keep its page cache.
    pub fn note_open(&self, ino: u64, etag: &str) -> bool {
        let mut inner = self.lock();
        match inner.nodes.get_mut(&ino) {
            Some(e) => {
                let same = e.opened_etag.as_deref() == Some(etag);
                e.opened_etag = Some(etag.to_string());
                same
            }
            None => false,
        }
    }
}

/// Namespace changes made through the mount.
impl InodeTable {
    /// The inode currently known at `path`, and its number.
    pub fn by_path(&self, path: &str) -> Option<(u64, Node)> {
        let inner = self.lock();
        let ino = *inner.by_path.get(path)?;
        inner.nodes.get(&ino).map(|e| (ino, e.node.clone()))
    }

    /// `path` was removed: it maps to no inode any more (the inode itself lives on until the
    /// kernel forgets it, e.g. for a file still open).
    pub fn unlink_path(&self, path: &str) {
        let mut inner = self.lock();
        if let Some(ino) = inner.by_path.remove(path) {
            if let Some(e) = inner.nodes.get_mut(&ino) {
                e.unlinked = true;
            }
        }
    }

    /// Was `ino` removed while the kernel still holds it? (st_nlink 0, as POSIX says.)
    pub fn is_unlinked(&self, ino: u64) -> bool {
        self.lock().nodes.get(&ino).is_some_and(|e| e.unlinked)
    }

    /// `from` (and everything under it, for a directory) was renamed to `to`; a node that was
    /// at `to` is unlinked. Inode numbers stay, as the kernel expects.
    pub fn rename_path(&self, from: &str, to: &str) {
        let mut inner = self.lock();
        let under = format!("{from}/");
        let moved: Vec<(Arc<str>, u64)> = inner
            .by_path
            .iter()
            .filter(|(p, _)| &***p == from || p.starts_with(&under))
            .map(|(p, ino)| (p.clone(), *ino))
            .collect();
        let replaced_under = format!("{to}/");
        let replaced: Vec<u64> = inner
            .by_path
            .iter()
            .filter(|(p, _)| &***p == to || p.starts_with(&replaced_under))
            .map(|(_, ino)| *ino)
            .collect();
        for ino in replaced {
            if let Some(e) = inner.nodes.get_mut(&ino) {
                e.unlinked = true;
            }
        }
        inner
            .by_path
            .retain(|p, _| &**p != to && !p.starts_with(&replaced_under));
        for (old, ino) in moved {
            inner.by_path.remove(&old);
            let new: Arc<str> = Arc::from(format!("{to}{}", &old[from.len()..]));
            if let Some(e) = inner.nodes.get_mut(&ino) {
                e.node.path = new.clone();
            }
            inner.by_path.insert(new, ino);
        }
    }

    /// Replace what is known about `ino` (after cosmount itself changed the object).
    pub fn set_stat(&self, ino: u64, stat: Stat) -> Option<Node> {
        let mut inner = self.lock();
        let e = inner.nodes.get_mut(&ino)?;
        e.node.stat = stat;
        e.node.stat_at = Instant::now();
        Some(e.node.clone())
    }
}

fn merge_stat(node: &mut Node, mut fresh: Stat) {
    if fresh.posix.is_none() && fresh.etag == node.stat.etag {
        // Something that cannot see x-cos-meta-* (a listing with meta=list, a `..` entry):
        // keep what is known of the same version (directories have no ETag here).
        fresh.posix = node.stat.posix.take();
    }
    node.stat = fresh;
    node.stat_at = Instant::now();
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fs::attr::PosixMeta;
    use std::time::UNIX_EPOCH;

    fn file(etag: &str) -> Stat {
        Stat {
            size: 1,
            etag: Some(etag.into()),
            mtime: UNIX_EPOCH,
            posix: None,
        }
    }

    #[test]
    fn same_path_same_inode_until_forgotten() {
        let t = InodeTable::new(Stat::directory(UNIX_EPOCH));
        let (a, _) = t.remember("a", Kind::File, file("1"));
        let (a2, _) = t.remember("a", Kind::File, file("1"));
        assert_eq!(a, a2);
        t.forget(a, 1);
        assert!(t.get(a).is_some());
        t.forget(a, 1);
        assert!(t.get(a).is_none());
        let (a3, _) = t.remember("a", Kind::File, file("1"));
        assert_eq!(a3, a, "a forgotten path gets its number back");
        t.forget(a3, 1);
        let (d, _) = t.remember("a", Kind::Dir, Stat::directory(UNIX_EPOCH));
        assert_ne!(d, a3, "a kind change gets a new inode");
        t.forget(ROOT_INO, 100);
        assert!(t.get(ROOT_INO).is_some());
    }

    #[test]
    fn head_metadata_survives_a_listing_of_the_same_version() {
        let t = InodeTable::new(Stat::directory(UNIX_EPOCH));
        let posix = PosixMeta {
            uid: Some(7),
            ..Default::default()
        };
        let (a, _) = t.remember(
            "a",
            Kind::File,
            Stat {
                posix: Some(posix.clone()),
                ..file("1")
            },
        );
        let (_, s) = t.remember("a", Kind::File, file("1"));
        assert_eq!(s.posix, Some(posix));
        let n = t.refresh(a, file("2")).unwrap();
        assert_eq!(n.stat.posix, None, "a new version drops the old metadata");
    }

    #[test]
    fn keep_cache_only_for_the_same_etag() {
        let t = InodeTable::new(Stat::directory(UNIX_EPOCH));
        let (a, _) = t.remember("a", Kind::File, file("1"));
        assert!(!t.note_open(a, "1"));
        assert!(t.note_open(a, "1"));
        assert!(!t.note_open(a, "2"));
    }
}
