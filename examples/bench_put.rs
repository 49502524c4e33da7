//! Helper for `scripts/bench.sh write`: the raw upload ceiling. Uploads a local file as one
//! multipart upload with the cosmount COS client (no FUSE, no spool), parts read from the file
//! and sent `CONCURRENCY` at a time, the same part size the mount uses.
//!
//! ```text
//! bench_put raw-multipart ENDPOINT BUCKET KEY FILE PART_MIB CONCURRENCY
//! ```
//! Credentials: COS_SECRET_ID / COS_SECRET_KEY (default: cos-local's documented local pair).

use std::os::unix::fs::FileExt;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use cosmount::cos::store::{CompletedPart, PutOptions};
use cosmount::cos::ObjectStore;
use futures::stream::{self, StreamExt, TryStreamExt};

#[path = "common/mod.rs"]
mod common;
use common::{arg, client, Res};

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let cmd = arg(&args, 1, "command")?;
    if cmd != "raw-multipart" {
        return Err(format!("unknown command {cmd:?} (expected raw-multipart)").into());
    }
    let c = client(&arg(&args, 2, "ENDPOINT")?, &arg(&args, 3, "BUCKET")?)?;
    let key = arg(&args, 4, "KEY")?;
    let file = Arc::new(std::fs::File::open(arg(&args, 5, "FILE")?)?);
    let part: u64 = arg(&args, 6, "PART_MIB")?.parse::<u64>()? << 20;
    let conc: usize = arg(&args, 7, "CONCURRENCY")?.parse()?;
    let size = file.metadata()?.len();

    let start = Instant::now();
    let upload_id = ObjectStore::initiate_multipart(&c, &key, &PutOptions::default()).await?;
    let numbers: Vec<u64> = (0..size.div_ceil(part).max(1)).collect();
    let parts: Vec<CompletedPart> = stream::iter(numbers)
        .map(|i| {
            let (c, key, upload_id, file) =
                (c.clone(), key.clone(), upload_id.clone(), file.clone());
            async move {
                let off = i * part;
                let len = part.min(size - off) as usize;
                let body = tokio::task::spawn_blocking(move || {
                    let mut buf = vec![0u8; len];
                    file.read_exact_at(&mut buf, off).map(|_| Bytes::from(buf))
                })
                .await??;
                let r = ObjectStore::upload_part(&c, &key, &upload_id, i as u32 + 1, body).await?;
                Ok::<_, Box<dyn std::error::Error>>(CompletedPart {
                    part_number: i as u32 + 1,
                    etag: r.etag,
                })
            }
        })
        .buffered(conc)
        .try_collect()
        .await?;
    ObjectStore::complete_multipart(&c, &key, &upload_id, &parts).await?;
    let secs = start.elapsed().as_secs_f64();
    println!(
        "bytes={size} secs={secs:.3} mbps={:.0} parts={}",
        size as f64 / secs / 1e6,
        parts.len()
    );
    Ok(())
}
