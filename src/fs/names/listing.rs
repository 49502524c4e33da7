//! Directories from ListObjects: readdir listings, remote lookups, and which keys can be shown.
//!
//! COS is flat; a directory is a `dir/` marker object, or only implied by keys under `dir/`
//! (a common prefix). Both show up as directories. When `a` is both an object and a prefix
//! (`a` and `a/x` both exist), the directory wins and the object `a` is not shown: a
//! directory hides more data than a file, so hiding the file loses less. Keys that cannot be a
//! file name (empty segment from `a//b`, `.` or `..` segments, segments over 255 bytes) are
//! hidden and logged once.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;
use std::time::SystemTime;

use crate::cos::store::{ListEntry, ListParams};
use crate::cos::{CosError, ObjectStore};

use crate::fs::attr::{Kind, Stat};

use super::learned::Version;

/// Linux NAME_MAX.
pub const MAX_NAME_BYTES: usize = 255;
/// cosfs's legacy directory marker suffix (`name_$folder$`).
const LEGACY_FOLDER_SUFFIX: &str = "_$folder$";
/// How many distinct hidden keys are remembered for "log once"; past this they are logged at
/// debug level only, so the memory stays bounded.
const HIDDEN_LOG_CAP: usize = 10_000;

#[derive(Debug, Clone)]
pub struct DirEntry {
    pub name: String,
    pub kind: Kind,
    pub stat: Stat,
}

/// One directory's entries, sorted by name (byte order), which gives readdir stable offsets.
#[derive(Debug, Default)]
pub struct Listing {
    pub entries: Vec<DirEntry>,
    index: HashMap<String, usize>,
}

impl Listing {
    fn from_map(map: BTreeMap<String, DirEntry>) -> Self {
        let entries: Vec<DirEntry> = map.into_values().collect();
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        Listing { entries, index }
    }

    /// From entries already sorted by name.
    pub fn from_entries(entries: Vec<DirEntry>) -> Self {
        let index = entries
            .iter()
            .enumerate()
            .map(|(i, e)| (e.name.clone(), i))
            .collect();
        Listing { entries, index }
    }

    pub fn get(&self, name: &str) -> Option<&DirEntry> {
        self.index.get(name).and_then(|&i| self.entries.get(i))
    }

    /// This listing with `entry` added or replacing the one of the same name.
    pub fn with_entry(&self, entry: DirEntry) -> Listing {
        let mut map = self.to_map();
        map.insert(entry.name.clone(), entry);
        Listing::from_map(map)
    }

    /// This listing without the entry `name`.
    pub fn without(&self, name: &str) -> Listing {
        let mut map = self.to_map();
        map.remove(name);
        Listing::from_map(map)
    }

    fn to_map(&self) -> BTreeMap<String, DirEntry> {
        self.entries
            .iter()
            .map(|e| (e.name.clone(), e.clone()))
            .collect()
    }

    /// This listing plus `extra` entries whose names it does not have (files being written
    /// through the mount that COS does not list yet).
    pub fn with_extra(&self, extra: Vec<DirEntry>) -> Listing {
        let mut map = self.to_map();
        for e in extra {
            map.entry(e.name.clone()).or_insert(e);
        }
        Listing::from_map(map)
    }
}

/// Can `name` be a file name? (Used for listed keys; FUSE never sends `.`/`..` lookups here.)
pub fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name != "."
        && name != ".."
        && name.len() <= MAX_NAME_BYTES
        && !name.contains('/')
        && !name.contains('\0')
}

/// Remembers which hidden keys were already logged.
#[derive(Default)]
pub struct HiddenKeys {
    seen: Mutex<HashSet<String>>,
}

impl HiddenKeys {
    pub fn report(&self, key: &str, why: &str) {
        let mut seen = self.seen.lock().unwrap_or_else(|p| p.into_inner());
        if seen.len() < HIDDEN_LOG_CAP && seen.insert(key.to_string()) {
            tracing::warn!(key, why, "key hidden: it cannot be shown as a file name");
        } else {
            tracing::debug!(key, why, "key hidden");
        }
    }
}

pub(crate) fn file_stat(o: &ListEntry) -> Stat {
    Stat {
        size: o.size,
        etag: Some(o.etag.clone()),
        mtime: o.last_modified,
        posix: None,
    }
}

/// List the directory whose key prefix is `prefix` ("" for the bucket root, else ending in `/`),
/// and the version of its own `dir/` marker when it has one. Costs ceil(entries / 1000) LIST
/// requests and no HEAD; the entries carry no POSIX metadata yet (see `Names::complete`).
pub async fn list_dir<S: ObjectStore>(
    store: &S,
    prefix: &str,
    dir_mtime: SystemTime,
    hidden: &HiddenKeys,
) -> Result<(Listing, Option<Version>), CosError> {
    let mut own_marker = None;
    let mut files: BTreeMap<String, DirEntry> = BTreeMap::new();
    let mut dirs: BTreeMap<String, DirEntry> = BTreeMap::new();
    let mut marker: Option<String> = None;
    loop {
        let params = ListParams {
            prefix: prefix.to_string(),
            delimiter: Some("/".to_string()),
            marker: marker.clone(),
            max_keys: None,
        };
        let page = store.list_objects(&params).await?;
        for o in &page.objects {
            let Some(name) = o.key.strip_prefix(prefix) else {
                continue;
            };
            if name.is_empty() {
                // The directory's own marker: its version validates what a HEAD learned.
                own_marker = Some(Version::seen(&o.etag, o.size, o.last_modified));
                continue;
            }
            if let Some(dir) = name.strip_suffix(LEGACY_FOLDER_SUFFIX) {
                if valid_name(dir) {
                    let e = DirEntry {
                        name: dir.to_string(),
                        kind: Kind::Dir,
                        stat: Stat::directory(o.last_modified),
                    };
                    dirs.insert(dir.to_string(), e);
                    continue;
                }
            }
            if !valid_name(name) {
                hidden.report(&o.key, "invalid file name");
                continue;
            }
            files.insert(
                name.to_string(),
                DirEntry {
                    name: name.to_string(),
                    kind: Kind::File,
                    stat: file_stat(o),
                },
            );
        }
        for p in &page.common_prefixes {
            let name = p
                .strip_prefix(prefix)
                .and_then(|n| n.strip_suffix('/'))
                .unwrap_or("");
            if !valid_name(name) {
                hidden.report(p, "invalid directory name");
                continue;
            }
            dirs.insert(
                name.to_string(),
                DirEntry {
                    name: name.to_string(),
                    kind: Kind::Dir,
                    stat: Stat::directory(dir_mtime),
                },
            );
        }
        if !page.is_truncated {
            break;
        }
        let last = page.objects.last().map(|o| o.key.clone());
        let last_prefix = page.common_prefixes.last().cloned();
        let next = page.next_marker.clone().or_else(|| last.max(last_prefix));
        match next {
            // A marker that does not move forward would loop forever.
            Some(n) if marker.as_deref().is_none_or(|m| n.as_str() > m) => marker = Some(n),
            _ => {
                return Err(CosError::InvalidResponse(
                    "listing is truncated but its marker does not advance".into(),
                ))
            }
        }
    }
    for (name, d) in dirs {
        if files.remove(&name).is_some() {
            tracing::debug!(
                prefix,
                name,
                "key is both an object and a prefix: shown as the directory"
            );
        }
        files.insert(name, d);
    }
    Ok((Listing::from_map(files), own_marker))
}

/// What `key` (no trailing `/`) is in the bucket: a directory (marker or common prefix), a
/// file, or nothing. One LIST (prefix=`key`, delimiter `/`) answers both questions; a second,
/// one-key LIST is needed only when the first page ends before `key/` would sort.
pub async fn lookup_key<S: ObjectStore>(
    store: &S,
    key: &str,
    dir_mtime: SystemTime,
) -> Result<Option<(Kind, Stat)>, CosError> {
    let dir_prefix = format!("{key}/");
    let params = ListParams {
        prefix: key.to_string(),
        delimiter: Some("/".to_string()),
        marker: None,
        max_keys: None,
    };
    let page = store.list_objects(&params).await?;
    let mut is_dir = page.common_prefixes.contains(&dir_prefix)
        || page
            .objects
            .iter()
            .any(|o| o.key == format!("{key}{LEGACY_FOLDER_SUFFIX}"));
    if !is_dir && page.is_truncated {
        let last_seen = page
            .objects
            .last()
            .map(|o| o.key.as_str())
            .max(page.common_prefixes.last().map(String::as_str));
        if last_seen.is_none_or(|l| l < dir_prefix.as_str()) {
            let probe = ListParams {
                prefix: dir_prefix.clone(),
                delimiter: None,
                marker: None,
                max_keys: Some(1),
            };
            let p = store.list_objects(&probe).await?;
            is_dir = !p.objects.is_empty() || !p.common_prefixes.is_empty();
        }
    }
    if is_dir {
        return Ok(Some((Kind::Dir, Stat::directory(dir_mtime))));
    }
    Ok(page
        .objects
        .iter()
        .find(|o| o.key == key)
        .map(|o| (Kind::File, file_stat(o))))
}
