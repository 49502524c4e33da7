//! Objects on the local disk.
//!
//! Layout under `--data-dir` (keys never become paths: a key is hashed to a file name, so `a`,
//! `a/b`, `..` and 850-byte keys all coexist):
//!
//! ```text
//! tmp/                                     bodies being received (swept at start)
//! buckets/{bucket}/bucket.json             BucketConfig (ACL, CORS)
//! buckets/{bucket}/objects/{h[0..2]}/{h}.json          ObjectMeta sidecar, h = sha1(key)
//! buckets/{bucket}/objects/{h[0..2]}/{h}.{uuid}.data   the bytes (fresh name per write)
//! buckets/{bucket}/uploads/{upload_id}/upload.json     UploadMeta
//! buckets/{bucket}/uploads/{upload_id}/{n}.json, {n}.{uuid}.data   parts
//! ```
//!
//! A write streams into `tmp/` while hashing, is fsynced, renamed beside the object, and becomes
//! visible when its sidecar (naming the new data file) is atomically renamed over the old one.
//! So a reader never sees half an object, a crash leaves either the old or the new version
//! (orphan data files are removed at start), and an open reader keeps its old file.

use std::collections::BTreeMap;
use std::fs::{self, File};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};

use bytes::Bytes;
use cos_protocol::crc64::{self, Crc64};
use futures::{Stream, StreamExt};
use md5::{Digest, Md5};
use serde::{de::DeserializeOwned, Serialize};
use sha1::Sha1;

use crate::model::{now_ms, Acl, BucketConfig, ObjectAttrs, ObjectMeta, PartMeta, UploadMeta};

/// Received bytes are handed to the disk writer and the hasher in batches of this size.
const WRITE_BATCH: usize = 1024 * 1024;
/// Batches in flight between the network and the disk writer / hasher.
const WRITE_QUEUE_CHUNKS: usize = 8;
/// While a body streams in, ask the kernel to start writing every this many bytes, so the
/// final fsync finds little left to do (disk writes overlap with receiving).
const WRITEBACK_STEP: u64 = 8 * 1024 * 1024;

/// Start (not wait for) writeback of a file range; a hint, so failures are ignored.
fn start_writeback(f: &File, offset: u64, len: u64) {
    use std::os::fd::AsRawFd;
    let (Ok(offset), Ok(len)) = (i64::try_from(offset), i64::try_from(len)) else {
        return;
    };
    // SAFETY: sync_file_range only reads the descriptor, which `f` keeps open for the call.
    unsafe {
        libc::sync_file_range(f.as_raw_fd(), offset, len, libc::SYNC_FILE_RANGE_WRITE);
    }
}

/// Buffer for hashing copies and ranges read from disk.
const COPY_BUFFER: usize = 1 << 20;

/// A lock that a panicking holder poisoned still guards valid data here (every critical
/// section leaves the maps consistent before any fallible call), so recover the guard.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}
fn read<T>(m: &RwLock<T>) -> std::sync::RwLockReadGuard<'_, T> {
    m.read().unwrap_or_else(|p| p.into_inner())
}
fn write<T>(m: &RwLock<T>) -> std::sync::RwLockWriteGuard<'_, T> {
    m.write().unwrap_or_else(|p| p.into_inner())
}

/// Write `value` as JSON to `path` atomically (temp file in the same dir, fsync, rename).
fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> io::Result<()> {
    let json = serde_json::to_vec(value).map_err(io::Error::other)?;
    let tmp = path.with_extension(format!("tmp-{}", uuid::Uuid::new_v4().simple()));
    let result = (|| {
        let mut f = File::create(&tmp)?;
        f.write_all(&json)?;
        f.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

fn read_json<T: DeserializeOwned>(path: &Path) -> io::Result<T> {
    let bytes = fs::read(path)?;
    serde_json::from_slice(&bytes).map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))
}

fn key_hash(key: &str) -> String {
    hex::encode(Sha1::digest(key.as_bytes()))
}

/// A received body in `tmp/`, with its size and hashes. Removed on drop unless committed.
pub struct TempData {
    path: Option<PathBuf>,
    pub size: u64,
    pub md5: [u8; 16],
    pub crc64: u64,
}

impl TempData {
    pub fn md5_hex(&self) -> String {
        hex::encode(self.md5)
    }
    /// Move the file to `dest` (same filesystem); it is no longer ours to delete.
    fn persist(mut self, dest: &Path) -> io::Result<()> {
        match self.path.take() {
            Some(p) => fs::rename(p, dest),
            None => Err(io::Error::other("temp data already persisted")),
        }
    }
}

impl Drop for TempData {
    fn drop(&mut self) {
        if let Some(p) = self.path.take() {
            let _ = fs::remove_file(p);
        }
    }
}

/// Why receiving a body failed.
#[derive(Debug)]
pub enum ReceiveError {
    /// The client's body stream broke off.
    Body(String),
    /// The body is longer than allowed.
    TooLarge,
    Io(io::Error),
}

/// The whole on-disk store.
pub struct Store {
    root: PathBuf,
    buckets: RwLock<BTreeMap<String, Arc<Bucket>>>,
}

/// One bucket: its config, the sorted object index and the open uploads.
pub struct Bucket {
    pub name: String,
    dir: PathBuf,
    config: RwLock<BucketConfig>,
    objects: RwLock<BTreeMap<String, ObjectMeta>>,
    uploads: RwLock<BTreeMap<String, UploadMeta>>,
    /// Serialises sidecar renames with index updates so disk and index agree on the winner.
    commit: Mutex<()>,
}

impl Store {
    /// Open (or create) the store at `root` and rebuild every index from the sidecars.
    pub fn open(root: &Path) -> io::Result<Store> {
        fs::create_dir_all(root.join("buckets"))?;
        let tmp = root.join("tmp");
        if tmp.exists() {
            fs::remove_dir_all(&tmp)?;
        }
        fs::create_dir_all(&tmp)?;
        let mut buckets = BTreeMap::new();
        for entry in fs::read_dir(root.join("buckets"))? {
            let dir = entry?.path();
            if !dir.join("bucket.json").is_file() {
                continue;
            }
            match Bucket::load(&dir) {
                Ok(b) => {
                    buckets.insert(b.name.clone(), Arc::new(b));
                }
                Err(e) => tracing::warn!("skipping bucket dir {}: {e}", dir.display()),
            }
        }
        Ok(Store {
            root: root.to_path_buf(),
            buckets: RwLock::new(buckets),
        })
    }

    pub fn bucket(&self, name: &str) -> Option<Arc<Bucket>> {
        read(&self.buckets).get(name).cloned()
    }

    pub fn bucket_names(&self) -> Vec<(String, i64)> {
        read(&self.buckets)
            .values()
            .map(|b| (b.name.clone(), b.config().created_ms))
            .collect()
    }

    /// Create a bucket; Ok(false) if it already exists.
    pub fn create_bucket(&self, name: &str, acl: Acl) -> io::Result<bool> {
        let mut buckets = write(&self.buckets);
        if buckets.contains_key(name) {
            return Ok(false);
        }
        let dir = self.root.join("buckets").join(name);
        fs::create_dir_all(dir.join("objects"))?;
        fs::create_dir_all(dir.join("uploads"))?;
        let config = BucketConfig {
            name: name.to_string(),
            created_ms: now_ms(),
            acl,
            cors: None,
        };
        write_json_atomic(&dir.join("bucket.json"), &config)?;
        buckets.insert(name.to_string(), Arc::new(Bucket::empty(dir, config)));
        Ok(true)
    }

    /// Delete an empty bucket. Err(false) when it still holds objects.
    pub fn delete_bucket(&self, name: &str) -> io::Result<bool> {
        let mut buckets = write(&self.buckets);
        let Some(bucket) = buckets.get(name) else {
            return Ok(true);
        };
        if !read(&bucket.objects).is_empty() {
            return Ok(false);
        }
        // Removing bucket.json first makes a half-finished removal invisible after a restart.
        fs::remove_file(bucket.dir.join("bucket.json"))?;
        let dir = bucket.dir.clone();
        buckets.remove(name);
        drop(buckets);
        fs::remove_dir_all(dir)?;
        Ok(true)
    }

    fn tmp_path(&self) -> PathBuf {
        self.root
            .join("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string())
    }

    /// Stream a request body into a temp file while computing its MD5 and CRC-64, then fsync.
    /// The writer and the two hashes run on blocking threads so the runtime stays free.
    pub async fn receive<S, E>(&self, mut body: S, max_len: u64) -> Result<TempData, ReceiveError>
    where
        S: Stream<Item = Result<Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        let path = self.tmp_path();
        let mut temp = TempData {
            path: Some(path.clone()),
            size: 0,
            md5: [0; 16],
            crc64: 0,
        };
        let (file_tx, mut file_rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE_CHUNKS);
        let (hash_tx, mut hash_rx) = tokio::sync::mpsc::channel::<Bytes>(WRITE_QUEUE_CHUNKS);
        let writer = tokio::task::spawn_blocking(move || -> io::Result<u64> {
            let mut f = File::create(&path)?;
            let mut crc = Crc64::new();
            let (mut written, mut flushed) = (0u64, 0u64);
            while let Some(chunk) = file_rx.blocking_recv() {
                crc.update(&chunk);
                f.write_all(&chunk)?;
                written += chunk.len() as u64;
                if written - flushed >= WRITEBACK_STEP {
                    start_writeback(&f, flushed, written - flushed);
                    flushed = written;
                }
            }
            f.sync_all()?;
            Ok(crc.finish())
        });
        let hasher = tokio::task::spawn_blocking(move || {
            let mut md5 = Md5::new();
            while let Some(chunk) = hash_rx.blocking_recv() {
                md5.update(&chunk);
            }
            <[u8; 16]>::from(md5.finalize())
        });
        // Network chunks are small (a few KiB); batching them into large buffers keeps the
        // channel traffic and the write syscalls few.
        let mut batch = bytes::BytesMut::with_capacity(WRITE_BATCH);
        let mut failure = None;
        let mut writer_gone = false;
        loop {
            let next = body.next().await;
            let flush = match &next {
                Some(Ok(chunk)) => batch.len() + chunk.len() > WRITE_BATCH,
                _ => true,
            };
            if flush && !batch.is_empty() {
                let full = batch.split().freeze();
                batch.reserve(WRITE_BATCH);
                let sent_hash = hash_tx.send(full.clone()).await;
                if file_tx.send(full).await.is_err() || sent_hash.is_err() {
                    writer_gone = true; // its error is collected below
                }
            }
            match next {
                Some(Ok(chunk)) if !writer_gone => {
                    temp.size += chunk.len() as u64;
                    if temp.size > max_len {
                        failure = Some(ReceiveError::TooLarge);
                        break;
                    }
                    batch.extend_from_slice(&chunk);
                }
                Some(Ok(_)) => break,
                Some(Err(e)) => {
                    failure = Some(ReceiveError::Body(e.to_string()));
                    break;
                }
                None => break,
            }
        }
        drop(file_tx);
        drop(hash_tx);
        let crc = writer
            .await
            .map_err(|e| ReceiveError::Io(io::Error::other(e)));
        let md5 = hasher
            .await
            .map_err(|e| ReceiveError::Io(io::Error::other(e)));
        if let Some(f) = failure {
            return Err(f);
        }
        temp.crc64 = crc?.map_err(ReceiveError::Io)?;
        temp.md5 = md5?;
        Ok(temp)
    }

    /// Copy `len` bytes at `offset` of a file into a new temp file, hashing them.
    pub async fn copy_range_to_temp(
        &self,
        src: PathBuf,
        offset: u64,
        len: u64,
    ) -> io::Result<TempData> {
        let path = self.tmp_path();
        let mut temp = TempData {
            path: Some(path.clone()),
            size: len,
            md5: [0; 16],
            crc64: 0,
        };
        let (md5, crc) = tokio::task::spawn_blocking(move || -> io::Result<([u8; 16], u64)> {
            let mut input = File::open(&src)?;
            input.seek(SeekFrom::Start(offset))?;
            let mut input = input.take(len);
            let mut out = File::create(&path)?;
            let (mut md5, mut crc) = (Md5::new(), Crc64::new());
            let mut buf = vec![0u8; COPY_BUFFER];
            let mut copied = 0u64;
            loop {
                let n = input.read(&mut buf)?;
                if n == 0 {
                    break;
                }
                md5.update(&buf[..n]);
                crc.update(&buf[..n]);
                out.write_all(&buf[..n])?;
                copied += n as u64;
            }
            if copied != len {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "source shorter than its metadata says",
                ));
            }
            out.sync_all()?;
            Ok((md5.finalize().into(), crc.finish()))
        })
        .await
        .map_err(io::Error::other)??;
        temp.md5 = md5;
        temp.crc64 = crc;
        Ok(temp)
    }

    /// Concatenate files into a temp file (kernel-side copies); hashes are the caller's.
    pub async fn concat_to_temp(&self, sources: Vec<PathBuf>) -> io::Result<TempData> {
        let path = self.tmp_path();
        let mut temp = TempData {
            path: Some(path.clone()),
            size: 0,
            md5: [0; 16],
            crc64: 0,
        };
        temp.size = tokio::task::spawn_blocking(move || -> io::Result<u64> {
            let mut out = File::create(&path)?;
            let mut total = 0;
            for src in sources {
                total += io::copy(&mut File::open(src)?, &mut out)?;
            }
            out.sync_all()?;
            Ok(total)
        })
        .await
        .map_err(io::Error::other)??;
        Ok(temp)
    }
}

/// Where one object's files live.
struct ObjectPaths {
    dir: PathBuf,
    hash: String,
}

impl ObjectPaths {
    fn sidecar(&self) -> PathBuf {
        self.dir.join(format!("{}.json", self.hash))
    }
    fn new_data_name(&self) -> String {
        format!("{}.{}.data", self.hash, uuid::Uuid::new_v4().simple())
    }
}

impl Bucket {
    fn empty(dir: PathBuf, config: BucketConfig) -> Bucket {
        Bucket {
            name: config.name.clone(),
            dir,
            config: RwLock::new(config),
            objects: RwLock::new(BTreeMap::new()),
            uploads: RwLock::new(BTreeMap::new()),
            commit: Mutex::new(()),
        }
    }

    /// Load a bucket from disk: its config, every object sidecar and upload, and remove data
    /// files no sidecar names (left by a crash between a rename and the sidecar write).
    fn load(dir: &Path) -> io::Result<Bucket> {
        let config: BucketConfig = read_json(&dir.join("bucket.json"))?;
        fs::create_dir_all(dir.join("objects"))?;
        fs::create_dir_all(dir.join("uploads"))?;
        let bucket = Bucket::empty(dir.to_path_buf(), config);
        let mut objects = BTreeMap::new();
        for shard in fs::read_dir(dir.join("objects"))? {
            let shard = shard?.path();
            if !shard.is_dir() {
                continue;
            }
            let mut referenced = Vec::new();
            let mut data_files = Vec::new();
            for entry in fs::read_dir(&shard)? {
                let path = entry?.path();
                let name = path
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                if name.ends_with(".json") {
                    match read_json::<ObjectMeta>(&path) {
                        Ok(meta) if shard.join(&meta.data_file).is_file() => {
                            referenced.push(meta.data_file.clone());
                            objects.insert(meta.key.clone(), meta);
                        }
                        Ok(_) | Err(_) => {
                            tracing::warn!("dropping unreadable sidecar {}", path.display());
                            let _ = fs::remove_file(&path);
                        }
                    }
                } else if name.ends_with(".data") {
                    data_files.push(name);
                } else {
                    // A sidecar temp file from an interrupted write.
                    let _ = fs::remove_file(&path);
                }
            }
            for name in data_files {
                if !referenced.contains(&name) {
                    let _ = fs::remove_file(shard.join(name));
                }
            }
        }
        *write(&bucket.objects) = objects;
        let mut uploads = BTreeMap::new();
        for entry in fs::read_dir(dir.join("uploads"))? {
            let path = entry?.path();
            if let Ok(meta) = read_json::<UploadMeta>(&path.join("upload.json")) {
                uploads.insert(meta.upload_id.clone(), meta);
            } else {
                let _ = fs::remove_dir_all(&path);
            }
        }
        *write(&bucket.uploads) = uploads;
        Ok(bucket)
    }

    pub fn config(&self) -> BucketConfig {
        read(&self.config).clone()
    }

    /// Change the bucket config and persist it.
    pub fn update_config(&self, change: impl FnOnce(&mut BucketConfig)) -> io::Result<()> {
        let mut config = write(&self.config);
        let mut updated = config.clone();
        change(&mut updated);
        write_json_atomic(&self.dir.join("bucket.json"), &updated)?;
        *config = updated;
        Ok(())
    }

    fn paths(&self, key: &str) -> ObjectPaths {
        let hash = key_hash(key);
        ObjectPaths {
            dir: self.dir.join("objects").join(&hash[..2]),
            hash,
        }
    }

    pub fn head(&self, key: &str) -> Option<ObjectMeta> {
        read(&self.objects).get(key).cloned()
    }

    pub fn is_empty(&self) -> bool {
        read(&self.objects).is_empty()
    }

    /// The data file of an object version.
    pub fn data_path(&self, meta: &ObjectMeta) -> PathBuf {
        self.paths(&meta.key).dir.join(&meta.data_file)
    }

    /// Open the current version of `key` for reading. The open file stays readable even if the
    /// object is overwritten or deleted meanwhile.
    pub fn open(&self, key: &str) -> io::Result<Option<(ObjectMeta, File)>> {
        // An overwrite may delete the data file between reading the index and opening it;
        // the index then already names the new file, so a second look succeeds.
        for _ in 0..3 {
            let Some(meta) = self.head(key) else {
                return Ok(None);
            };
            match File::open(self.data_path(&meta)) {
                Ok(f) => return Ok(Some((meta, f))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            }
        }
        Err(io::Error::other("object changed too often while opening"))
    }

    /// Make `temp` the new content of `key`. Last complete commit wins.
    pub fn commit(
        &self,
        key: &str,
        temp: TempData,
        etag: String,
        crc64: Option<u64>,
        attrs: ObjectAttrs,
    ) -> io::Result<ObjectMeta> {
        let paths = self.paths(key);
        fs::create_dir_all(&paths.dir)?;
        let data_file = paths.new_data_name();
        let size = temp.size;
        temp.persist(&paths.dir.join(&data_file))?;
        let meta = ObjectMeta {
            key: key.to_string(),
            size,
            etag,
            crc64,
            last_modified_ms: now_ms(),
            headers: attrs.headers,
            storage_class: attrs.storage_class,
            acl: attrs.acl,
            data_file,
        };
        let _guard = lock(&self.commit);
        if let Err(e) = write_json_atomic(&paths.sidecar(), &meta) {
            let _ = fs::remove_file(paths.dir.join(&meta.data_file));
            return Err(e);
        }
        let old = write(&self.objects).insert(key.to_string(), meta.clone());
        if let Some(old) = old {
            let _ = fs::remove_file(paths.dir.join(old.data_file));
        }
        Ok(meta)
    }

    /// Replace only the metadata of the current version (ACL change).
    pub fn update_meta(&self, key: &str, change: impl FnOnce(&mut ObjectMeta)) -> io::Result<bool> {
        let paths = self.paths(key);
        let _guard = lock(&self.commit);
        let Some(mut meta) = self.head(key) else {
            return Ok(false);
        };
        change(&mut meta);
        write_json_atomic(&paths.sidecar(), &meta)?;
        write(&self.objects).insert(key.to_string(), meta);
        Ok(true)
    }

    /// Delete `key`; Ok(false) if it did not exist.
    pub fn delete(&self, key: &str) -> io::Result<bool> {
        let paths = self.paths(key);
        let _guard = lock(&self.commit);
        let Some(old) = read(&self.objects).get(key).cloned() else {
            return Ok(false);
        };
        fs::remove_file(paths.sidecar())?;
        write(&self.objects).remove(key);
        let _ = fs::remove_file(paths.dir.join(old.data_file));
        Ok(true)
    }

    /// Up to `limit` objects with keys > `after` (or all when None) starting with `prefix`,
    /// in byte order, passed to `visit` until it returns false.
    pub fn scan(
        &self,
        prefix: &str,
        after: Option<&str>,
        mut visit: impl FnMut(&ObjectMeta) -> bool,
    ) {
        use std::ops::Bound;
        let objects = read(&self.objects);
        let start = match after {
            Some(a) if a >= prefix => Bound::Excluded(a.to_string()),
            _ => Bound::Included(prefix.to_string()),
        };
        for (key, meta) in objects.range((start, Bound::Unbounded)) {
            if !key.starts_with(prefix) {
                break;
            }
            if !visit(meta) {
                break;
            }
        }
    }

    // ---- multipart ----

    fn upload_dir(&self, upload_id: &str) -> PathBuf {
        self.dir.join("uploads").join(upload_id)
    }

    pub fn create_upload(&self, key: &str, attrs: ObjectAttrs) -> io::Result<UploadMeta> {
        // Upload ids are ours: a timestamp plus random hex, safe as a directory name.
        let upload_id = format!("{}{}", now_ms(), uuid::Uuid::new_v4().simple());
        let meta = UploadMeta {
            upload_id: upload_id.clone(),
            key: key.to_string(),
            initiated_ms: now_ms(),
            attrs,
        };
        let dir = self.upload_dir(&upload_id);
        fs::create_dir_all(&dir)?;
        write_json_atomic(&dir.join("upload.json"), &meta)?;
        write(&self.uploads).insert(upload_id, meta.clone());
        Ok(meta)
    }

    /// The upload with this id if it belongs to `key`.
    pub fn upload(&self, key: &str, upload_id: &str) -> Option<UploadMeta> {
        read(&self.uploads)
            .get(upload_id)
            .filter(|u| u.key == key)
            .cloned()
    }

    pub fn uploads(&self) -> Vec<UploadMeta> {
        read(&self.uploads).values().cloned().collect()
    }

    /// Store a part (replacing an earlier one with the same number).
    pub fn put_part(
        &self,
        upload_id: &str,
        number: u32,
        temp: TempData,
    ) -> io::Result<Option<PartMeta>> {
        let dir = self.upload_dir(upload_id);
        let _guard = lock(&self.commit);
        if !read(&self.uploads).contains_key(upload_id) {
            return Ok(None);
        }
        let data_file = format!("{number}.{}.data", uuid::Uuid::new_v4().simple());
        let meta = PartMeta {
            number,
            etag: temp.md5_hex(),
            size: temp.size,
            crc64: temp.crc64,
            last_modified_ms: now_ms(),
            data_file: data_file.clone(),
        };
        temp.persist(&dir.join(&data_file))?;
        let sidecar = dir.join(format!("{number}.json"));
        let old = read_json::<PartMeta>(&sidecar).ok();
        write_json_atomic(&sidecar, &meta)?;
        if let Some(old) = old {
            let _ = fs::remove_file(dir.join(old.data_file));
        }
        Ok(Some(meta))
    }

    /// The parts of an upload, by number.
    pub fn parts(&self, upload_id: &str) -> io::Result<BTreeMap<u32, PartMeta>> {
        let dir = self.upload_dir(upload_id);
        let mut parts = BTreeMap::new();
        for entry in fs::read_dir(&dir)? {
            let path = entry?.path();
            let is_part = path
                .file_stem()
                .map(|s| s.to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
                .unwrap_or(false);
            if is_part && path.extension().is_some_and(|e| e == "json") {
                if let Ok(p) = read_json::<PartMeta>(&path) {
                    parts.insert(p.number, p);
                }
            }
        }
        Ok(parts)
    }

    pub fn part_path(&self, upload_id: &str, part: &PartMeta) -> PathBuf {
        self.upload_dir(upload_id).join(&part.data_file)
    }

    /// Forget an upload and its parts; Ok(false) if unknown.
    pub fn remove_upload(&self, upload_id: &str) -> io::Result<bool> {
        let _guard = lock(&self.commit);
        if write(&self.uploads).remove(upload_id).is_none() {
            return Ok(false);
        }
        fs::remove_dir_all(self.upload_dir(upload_id))?;
        Ok(true)
    }
}

/// The multipart ETag: MD5 of the concatenated binary part MD5s, then `-N`.
pub fn multipart_etag(part_md5_hex: &[&str]) -> String {
    let mut md5 = Md5::new();
    for h in part_md5_hex {
        if let Ok(bytes) = hex::decode(h) {
            md5.update(&bytes);
        }
    }
    format!("{}-{}", hex::encode(md5.finalize()), part_md5_hex.len())
}

/// The CRC-64 of a concatenation from its parts' CRCs and sizes.
pub fn combined_crc(parts: &[(u64, u64)]) -> u64 {
    parts
        .iter()
        .fold(0u64, |acc, &(crc, len)| crc64::combine(acc, crc, len))
}
