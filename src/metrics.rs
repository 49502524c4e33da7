//! Process-wide counters: COS requests by API and status, retries, bytes moved, cache hits and
//! misses, spool bytes and uploads in flight. Rendered in the Prometheus text format on
//! `-o metrics_addr=` and summarised in the log at unmount.
//!
//! One global registry, because the counters are bumped from layers that do not otherwise share
//! state (client, caches, uploader); every counter is an atomic or a short-held lock.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};

#[derive(Default)]
pub struct Metrics {
    /// (API name, HTTP status or 0 for a network error) -> count.
    requests: Mutex<BTreeMap<(&'static str, u16), u64>>,
    pub retries: AtomicU64,
    pub bytes_downloaded: AtomicU64,
    pub bytes_uploaded: AtomicU64,
    pub meta_cache_hits: AtomicU64,
    pub meta_cache_misses: AtomicU64,
    pub block_cache_hits: AtomicU64,
    pub block_cache_misses: AtomicU64,
    /// Bytes currently held in spool files.
    pub spool_bytes: AtomicI64,
    /// key -> (bytes uploaded, bytes to upload) of each upload in flight.
    uploads: Mutex<BTreeMap<String, (u64, u64)>>,
}

static GLOBAL: OnceLock<Metrics> = OnceLock::new();

/// The process-wide registry.
pub fn global() -> &'static Metrics {
    GLOBAL.get_or_init(Metrics::default)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding a counter lock cannot leave the map inconsistent; keep counting.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// Count one answered request (status 0 = no answer: network error).
    pub fn record_request(&self, api: &'static str, status: u16) {
        *lock(&self.requests).entry((api, status)).or_default() += 1;
    }

    pub fn add(counter: &AtomicU64, n: u64) {
        counter.fetch_add(n, Ordering::Relaxed);
    }

    /// Requests counted so far for `api` (all statuses).
    pub fn requests_for(&self, api: &str) -> u64 {
        lock(&self.requests)
            .iter()
            .filter(|((a, _), _)| *a == api)
            .map(|(_, n)| *n)
            .sum()
    }

    pub fn upload_progress(&self, key: &str, done: u64, total: u64) {
        lock(&self.uploads).insert(key.to_string(), (done, total));
    }

    pub fn upload_finished(&self, key: &str) {
        lock(&self.uploads).remove(key);
    }

    /// The Prometheus text exposition format (version 0.0.4).
    pub fn render_prometheus(&self) -> String {
        let mut out = String::new();
        out.push_str("# HELP cosmount_cos_requests_total COS requests by API and HTTP status (0 = no answer).\n");
        out.push_str("# TYPE cosmount_cos_requests_total counter\n");
        for ((api, status), n) in lock(&self.requests).iter() {
            let _ = writeln!(
                out,
                "cosmount_cos_requests_total{{api=\"{api}\",status=\"{status}\"}} {n}"
            );
        }
        let counters: [(&str, &str, &AtomicU64); 7] = [
            (
                "cosmount_cos_retries_total",
                "Requests sent again after a retryable failure.",
                &self.retries,
            ),
            (
                "cosmount_cos_bytes_downloaded_total",
                "Body bytes received from COS.",
                &self.bytes_downloaded,
            ),
            (
                "cosmount_cos_bytes_uploaded_total",
                "Body bytes sent to COS.",
                &self.bytes_uploaded,
            ),
            (
                "cosmount_metadata_cache_hits_total",
                "Metadata cache (lookups, listings) queries answered from a fresh entry.",
                &self.meta_cache_hits,
            ),
            (
                "cosmount_metadata_cache_misses_total",
                "Metadata cache queries that found no fresh entry.",
                &self.meta_cache_misses,
            ),
            (
                "cosmount_block_cache_hits_total",
                "Read blocks served from the block cache.",
                &self.block_cache_hits,
            ),
            (
                "cosmount_block_cache_misses_total",
                "Read blocks fetched from COS.",
                &self.block_cache_misses,
            ),
        ];
        for (name, help, value) in counters {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} counter");
            let _ = writeln!(out, "{name} {}", value.load(Ordering::Relaxed));
        }
        let _ = writeln!(
            out,
            "# HELP cosmount_spool_bytes Bytes held in spool files.\n# TYPE cosmount_spool_bytes gauge\ncosmount_spool_bytes {}",
            self.spool_bytes.load(Ordering::Relaxed)
        );
        render_memory(&mut out);
        let uploads = lock(&self.uploads);
        let _ = writeln!(
            out,
            "# HELP cosmount_uploads_in_flight Files being uploaded now.\n# TYPE cosmount_uploads_in_flight gauge\ncosmount_uploads_in_flight {}",
            uploads.len()
        );
        out.push_str("# HELP cosmount_upload_bytes Bytes uploaded so far / to upload, per upload in flight.\n");
        out.push_str("# TYPE cosmount_upload_bytes gauge\n");
        for (key, (done, total)) in uploads.iter() {
            let key = escape_label(key);
            let _ = writeln!(
                out,
                "cosmount_upload_bytes{{key=\"{key}\",kind=\"done\"}} {done}"
            );
            let _ = writeln!(
                out,
                "cosmount_upload_bytes{{key=\"{key}\",kind=\"total\"}} {total}"
            );
        }
        out
    }

    /// One line for the log at unmount.
    pub fn summary(&self) -> String {
        let requests = lock(&self.requests);
        let total: u64 = requests.values().sum();
        let errors: u64 = requests
            .iter()
            .filter(|((_, s), _)| *s == 0 || *s >= 400)
            .map(|(_, n)| *n)
            .sum();
        let load = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "COS requests {total} ({errors} failed, {} retried), downloaded {} B, uploaded {} B, \
             metadata cache {}/{} hits, block cache {}/{} hits",
            load(&self.retries),
            load(&self.bytes_downloaded),
            load(&self.bytes_uploaded),
            load(&self.meta_cache_hits),
            load(&self.meta_cache_hits) + load(&self.meta_cache_misses),
            load(&self.block_cache_hits),
            load(&self.block_cache_hits) + load(&self.block_cache_misses),
        )
    }
}

/// The memory budget (`-o memory_limit=`) and what holds it.
fn render_memory(out: &mut String) {
    let m = crate::memory::global();
    let _ = writeln!(
        out,
        "# HELP cosmount_memory_limit_bytes The data memory budget (memory_limit).\n# TYPE cosmount_memory_limit_bytes gauge\ncosmount_memory_limit_bytes {}",
        m.limit()
    );
    let _ = writeln!(
        out,
        "# HELP cosmount_memory_used_bytes Budget reserved now (all uses, cache included).\n# TYPE cosmount_memory_used_bytes gauge\ncosmount_memory_used_bytes {}",
        m.used()
    );
    out.push_str("# HELP cosmount_memory_bytes Budget held by use: read (reads in flight, prefetch windows), write (part buffers), listing (listing pages), cache (block cache; blocks shared with reads count in both).\n");
    out.push_str("# TYPE cosmount_memory_bytes gauge\n");
    for (name, bytes) in m.breakdown() {
        let _ = writeln!(out, "cosmount_memory_bytes{{use=\"{name}\"}} {bytes}");
    }
    let _ = writeln!(
        out,
        "# HELP cosmount_receive_buffers_idle_bytes GET receive buffers kept for reuse, outside the budget (at most 32 MiB).\n# TYPE cosmount_receive_buffers_idle_bytes gauge\ncosmount_receive_buffers_idle_bytes {}",
        crate::cos::buffers::idle_bytes()
    );
    let _ = writeln!(
        out,
        "# HELP cosmount_memory_prefetch_bytes Budget held by prefetch not yet read.\n# TYPE cosmount_memory_prefetch_bytes gauge\ncosmount_memory_prefetch_bytes {}",
        m.prefetch_bytes()
    );
    let _ = writeln!(
        out,
        "# HELP cosmount_memory_waiting Whether requests wait for memory now (1) or not (0).\n# TYPE cosmount_memory_waiting gauge\ncosmount_memory_waiting {}",
        u8::from(m.has_waiters())
    );
}

fn escape_label(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// Serve `GET /metrics` on `addr` until the runtime stops. A deliberately tiny HTTP/1.0
/// responder: one request per connection, no keep-alive, which is all a Prometheus scrape needs.
pub async fn serve(addr: std::net::SocketAddr) -> std::io::Result<std::net::SocketAddr> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((mut sock, _)) = listener.accept().await else {
                // e.g. out of file descriptors: back off instead of spinning on the error.
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            };
            tokio::spawn(async move {
                let mut buf = vec![0u8; 4096];
                let mut len = 0;
                // Read until the end of the request head, or give up on a client that sends junk.
                while len < buf.len() {
                    // A scraper that connects and says nothing must not hold a task forever.
                    let read = tokio::time::timeout(
                        std::time::Duration::from_secs(10),
                        sock.read(&mut buf[len..]),
                    );
                    match read.await {
                        Ok(Ok(0)) | Ok(Err(_)) | Err(_) => break,
                        Ok(Ok(n)) => len += n,
                    }
                    if buf[..len].windows(4).any(|w| w == b"\r\n\r\n") {
                        break;
                    }
                }
                let head = String::from_utf8_lossy(&buf[..len]);
                let path = head.split_whitespace().nth(1).unwrap_or("");
                let (status, body) = if path == "/metrics" || path == "/" {
                    ("200 OK", global().render_prometheus())
                } else {
                    ("404 Not Found", "not found; try /metrics\n".to_string())
                };
                let resp = format!(
                    "HTTP/1.0 {status}\r\nContent-Type: text/plain; version=0.0.4\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                );
                let _ = sock.write_all(resp.as_bytes()).await;
                let _ = sock.shutdown().await;
            });
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_counters_and_labels() {
        let m = Metrics::default();
        m.record_request("GetObject", 206);
        m.record_request("GetObject", 206);
        m.record_request("HeadObject", 404);
        Metrics::add(&m.bytes_downloaded, 10);
        m.upload_progress("a \"b\".txt", 5, 9);
        let text = m.render_prometheus();
        assert!(text.contains("cosmount_cos_requests_total{api=\"GetObject\",status=\"206\"} 2"));
        assert!(text.contains("cosmount_cos_requests_total{api=\"HeadObject\",status=\"404\"} 1"));
        assert!(text.contains("cosmount_cos_bytes_downloaded_total 10"));
        assert!(text.contains("cosmount_uploads_in_flight 1"));
        assert!(text.contains("key=\"a \\\"b\\\".txt\",kind=\"total\"} 9"));
        let limit = crate::memory::global().limit();
        assert!(text.contains(&format!("cosmount_memory_limit_bytes {limit}")));
        assert!(text.contains("cosmount_memory_bytes{use=\"write\"}"));
        assert!(text.contains("cosmount_memory_bytes{use=\"cache\"}"));
        assert_eq!(m.requests_for("GetObject"), 2);
        m.upload_finished("a \"b\".txt");
        assert!(m
            .render_prometheus()
            .contains("cosmount_uploads_in_flight 0"));
        assert!(m.summary().starts_with("COS requests 3 (1 failed"));
    }

    #[tokio::test]
    async fn serves_metrics_over_http() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        global().record_request("HeadBucket", 200);
        let addr = serve("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut out = String::new();
        s.read_to_string(&mut out).await.unwrap();
        assert!(out.starts_with("HTTP/1.0 200 OK"), "{out}");
        assert!(out.contains("api=\"HeadBucket\",status=\"200\""));
    }
}
