//! The one handle table: every open fh is a read handle, a write handle (several fhs may share
//! one open file, as on a local disk), or a directory handle. Handles increase monotonically and
//! are never reused, so a stale fh is EBADF.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use crate::cos::ObjectStore;
use crate::fs::read::ReadHandle;

use super::mutate::OpenWriter;
use super::DirHandle;

pub(super) enum Handle<S: ObjectStore> {
    Read(Arc<ReadHandle>),
    Write {
        file: Arc<OpenWriter<S>>,
        /// Thread group of the process that opened it (only its close commits).
        opener: Option<u32>,
        /// Opened for reading while the file was open for writing: it reads what the writers
        /// wrote (as on a local disk) and its close never commits.
        read_only: bool,
    },
    Dir(Arc<DirHandle>),
}

pub(super) struct HandleTable<S: ObjectStore> {
    next: AtomicU64,
    map: Mutex<HashMap<u64, Handle<S>>>,
    /// Superseded read handles in `map` (changed under its lock): while there are none, the
    /// per-request [`Self::has_superseded_reader`] answers without scanning the table.
    superseded: AtomicUsize,
}

impl<S: ObjectStore> HandleTable<S> {
    pub(super) fn new() -> Self {
        HandleTable {
            next: AtomicU64::new(1),
            map: Mutex::new(HashMap::new()),
            superseded: AtomicUsize::new(0),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Handle<S>>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(super) fn insert(&self, handle: Handle<S>) -> u64 {
        let fh = self.next.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(fh, handle);
        fh
    }

    pub(super) fn read(&self, fh: u64) -> Option<Arc<ReadHandle>> {
        match self.lock().get(&fh) {
            Some(Handle::Read(h)) => Some(h.clone()),
            _ => None,
        }
    }

    /// Put `new` in place of read handle `old` at `fh`, unless a racing caller already did (or
    /// the fh was released); the handle now at `fh` is returned either way.
    pub(super) fn replace_read(
        &self,
        fh: u64,
        old: &Arc<ReadHandle>,
        new: Arc<ReadHandle>,
    ) -> Option<Arc<ReadHandle>> {
        match self.lock().get_mut(&fh) {
            Some(Handle::Read(h)) => {
                if Arc::ptr_eq(h, old) {
                    // A write may have superseded `old` since the caller looked: under the
                    // lock, the replacement inherits that (the count keeps one for the fh).
                    if old.is_superseded() {
                        new.supersede();
                    }
                    *h = new;
                }
                Some(h.clone())
            }
            _ => None,
        }
    }

    pub(super) fn write(&self, fh: u64) -> Option<Arc<OpenWriter<S>>> {
        match self.lock().get(&fh) {
            Some(Handle::Write { file, .. }) => Some(file.clone()),
            _ => None,
        }
    }

    pub(super) fn dir(&self, fh: u64) -> Option<Arc<DirHandle>> {
        match self.lock().get(&fh) {
            Some(Handle::Dir(h)) => Some(h.clone()),
            _ => None,
        }
    }

    pub(super) fn remove(&self, fh: u64) {
        let mut map = self.lock();
        if let Some(Handle::Read(r)) = map.remove(&fh) {
            if r.is_superseded() {
                self.superseded.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    pub(super) fn set_opener(&self, fh: u64, tgid: u32) {
        if let Some(Handle::Write { opener, .. }) = self.lock().get_mut(&fh) {
            *opener = Some(tgid);
        }
    }

    pub(super) fn opener(&self, fh: u64) -> Option<u32> {
        match self.lock().get(&fh) {
            Some(Handle::Write { opener, .. }) => *opener,
            _ => None,
        }
    }

    /// Is `fh` a read-only fh sharing an open file?
    pub(super) fn is_read_only_share(&self, fh: u64) -> bool {
        matches!(
            self.lock().get(&fh),
            Some(Handle::Write {
                read_only: true,
                ..
            })
        )
    }

    /// Mark every read handle of `ino` superseded (a write through this mount begins).
    pub(super) fn supersede_readers(&self, ino: u64) {
        let map = self.lock();
        for h in map.values() {
            if let Handle::Read(r) = h {
                if r.ino == ino && r.supersede() {
                    self.superseded.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    /// Is a read handle of `ino` open that a write through this mount superseded? (Asked for
    /// every lookup, getattr and open: no scan while there is none at all.)
    pub(super) fn has_superseded_reader(&self, ino: u64) -> bool {
        if self.superseded.load(Ordering::Relaxed) == 0 {
            return false;
        }
        self.lock()
            .values()
            .any(|h| matches!(h, Handle::Read(r) if r.ino == ino && r.is_superseded()))
    }

    /// The open files matching `pred`, each once (however many fhs share it).
    pub(super) fn writers_where(
        &self,
        pred: impl Fn(&OpenWriter<S>) -> bool,
    ) -> Vec<Arc<OpenWriter<S>>> {
        let mut found: Vec<Arc<OpenWriter<S>>> = Vec::new();
        for h in self.lock().values() {
            if let Handle::Write { file, .. } = h {
                if pred(file) && !found.iter().any(|f| Arc::ptr_eq(f, file)) {
                    found.push(file.clone());
                }
            }
        }
        found
    }

    /// How many fhs share this open file.
    pub(super) fn fhs_of(&self, writer: &Arc<OpenWriter<S>>) -> usize {
        self.lock()
            .values()
            .filter(|h| matches!(h, Handle::Write { file, .. } if Arc::ptr_eq(file, writer)))
            .count()
    }

    /// Remove `fh` if another fh still shares its open file (true), decided under the lock so
    /// that of two racing releases exactly one is the last.
    pub(super) fn remove_if_shared(&self, fh: u64, writer: &Arc<OpenWriter<S>>) -> bool {
        let mut map = self.lock();
        let others = map
            .iter()
            .filter(|(other, h)| {
                **other != fh
                    && matches!(h, Handle::Write { file, .. } if Arc::ptr_eq(file, writer))
            })
            .count();
        if others > 0 {
            map.remove(&fh);
        }
        others > 0
    }
}
