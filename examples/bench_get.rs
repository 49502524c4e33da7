//! Helper for `scripts/bench.sh`: seed objects and measure the raw ranged-GET ceiling with the
//! cosmount COS client, without FUSE in the way.
//!
//! ```text
//! bench_get seed-big  ENDPOINT BUCKET KEY MIB      # one object of MIB MiB
//! bench_get seed-many ENDPOINT BUCKET PREFIX N     # N small objects under PREFIX
//! bench_get raw-get   ENDPOINT BUCKET KEY PART_MIB CONCURRENCY
//! bench_get seed-n    ENDPOINT BUCKET PREFIX N MIB
//! bench_get ttfb      ENDPOINT BUCKET PREFIX N
//! ```
//! Credentials: COS_SECRET_ID / COS_SECRET_KEY (default: cos-local's documented local pair).

use std::time::Instant;

use bytes::Bytes;
use cosmount::cos::store::PutOptions;
use cosmount::cos::ObjectStore;
use futures::stream::{self, StreamExt, TryStreamExt};

#[path = "common/mod.rs"]
mod common;
use common::{arg, client, Res};

#[tokio::main]
async fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let cmd = arg(&args, 1, "command")?;
    let c = client(&arg(&args, 2, "ENDPOINT")?, &arg(&args, 3, "BUCKET")?)?;
    match cmd.as_str() {
        "seed-big" => {
            let key = arg(&args, 4, "KEY")?;
            let mib: usize = arg(&args, 5, "MIB")?.parse()?;
            let body: Vec<u8> = (0..mib << 20).map(|i| (i % 251) as u8).collect();
            ObjectStore::put_object(&c, &key, Bytes::from(body), &PutOptions::default()).await?;
        }
        "seed-many" => {
            let prefix = arg(&args, 4, "PREFIX")?;
            let n: usize = arg(&args, 5, "N")?.parse()?;
            stream::iter(0..n)
                .map(|i| {
                    let (c, key) = (c.clone(), format!("{prefix}obj-{i:06}"));
                    async move {
                        ObjectStore::put_object(
                            &c,
                            &key,
                            Bytes::from(vec![b'x'; i % 100]),
                            &PutOptions::default(),
                        )
                        .await
                    }
                })
                .buffer_unordered(32)
                .try_collect::<Vec<_>>()
                .await?;
        }
        "seed-n" => {
            // N objects PREFIX000, PREFIX001, ... of MIB MiB each, 4 uploads at a time.
            let prefix = arg(&args, 4, "PREFIX")?;
            let n: usize = arg(&args, 5, "N")?.parse()?;
            let mib: usize = arg(&args, 6, "MIB")?.parse()?;
            let body = Bytes::from((0..mib << 20).map(|i| (i % 253) as u8).collect::<Vec<u8>>());
            stream::iter(0..n)
                .map(|i| {
                    let (c, key, body) = (c.clone(), format!("{prefix}{i:03}"), body.clone());
                    async move {
                        ObjectStore::put_object(&c, &key, body, &PutOptions::default()).await
                    }
                })
                .buffer_unordered(4)
                .try_collect::<Vec<_>>()
                .await?;
        }
        "ttfb" => {
            // Median time of one 4 KiB ranged GET of each of PREFIX000..PREFIX{N-1}.
            let prefix = arg(&args, 4, "PREFIX")?;
            let n: usize = arg(&args, 5, "N")?.parse()?;
            let mut ms = Vec::with_capacity(n);
            for i in 0..n {
                let key = format!("{prefix}{i:03}");
                let start = Instant::now();
                ObjectStore::get_range(&c, &key, 0, 4096, None).await?;
                ms.push(start.elapsed().as_secs_f64() * 1e3);
            }
            ms.sort_by(f64::total_cmp);
            println!("median_ms={:.2}", ms.get(n / 2).copied().unwrap_or(0.0));
        }
        "raw-get" => {
            let key = arg(&args, 4, "KEY")?;
            let part: u64 = arg(&args, 5, "PART_MIB")?.parse::<u64>()? << 20;
            let conc: usize = arg(&args, 6, "CONCURRENCY")?.parse()?;
            let size = ObjectStore::head_object(&c, &key).await?.size;
            let start = Instant::now();
            let first = ObjectStore::get_range(&c, &key, 0, 4096.min(size), None).await?;
            let ttfb = start.elapsed();
            drop(first);
            let start = Instant::now();
            let parts: Vec<u64> = (0..size.div_ceil(part)).collect();
            let total: u64 = stream::iter(parts)
                .map(|p| {
                    let (c, key) = (c.clone(), key.clone());
                    async move {
                        let off = p * part;
                        let len = part.min(size - off);
                        ObjectStore::get_range(&c, &key, off, len, None)
                            .await
                            .map(|r| r.data.len() as u64)
                    }
                })
                .buffered(conc)
                .try_fold(0u64, |acc, n| async move { Ok(acc + n) })
                .await?;
            let secs = start.elapsed().as_secs_f64();
            println!(
                "bytes={total} secs={secs:.3} mbps={:.0} ttfb_ms={:.2}",
                total as f64 / secs / 1e6,
                ttfb.as_secs_f64() * 1e3
            );
        }
        other => return Err(format!("unknown command {other}").into()),
    }
    Ok(())
}
