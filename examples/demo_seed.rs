//! Seed a bucket with a few sample files and directories for `scripts/demo.sh`, through the
//! cosmount COS client (so the demo starts with data that did not come through the mount).
//!
//! Usage: `cargo run --example demo_seed -- ENDPOINT BUCKET`, credentials from COS_SECRET_ID and
//! COS_SECRET_KEY (default: cos-local's documented local pair).

use bytes::Bytes;
use cosmount::cos::store::PutOptions;
use cosmount::cos::{Client, ClientConfig, Credentials, ObjectStore};

const COS_LOCAL_ID: &str = "AKIDCOSLOCALEXAMPLE";
const COS_LOCAL_KEY: &str = "cos-local-secret-key";

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (Some(endpoint), Some(bucket)) = (args.get(1), args.get(2)) else {
        eprintln!("usage: demo_seed ENDPOINT BUCKET");
        std::process::exit(2);
    };
    let id = std::env::var("COS_SECRET_ID").unwrap_or_else(|_| COS_LOCAL_ID.into());
    let key = std::env::var("COS_SECRET_KEY").unwrap_or_else(|_| COS_LOCAL_KEY.into());
    let mut cfg = ClientConfig::new(bucket.clone(), "", Credentials::new(id, key));
    cfg.endpoint = Some(endpoint.clone());
    let client = Client::new(cfg)?;

    let big: Vec<u8> = (0..8u32 << 20).map(|i| (i % 251) as u8).collect();
    let files: Vec<(String, Bytes)> = vec![
        (
            "README.txt".into(),
            Bytes::from_static(
                b"Hello from cosmount! These files live in a COS bucket served by cos-local.\n",
            ),
        ),
        ("docs/".into(), Bytes::new()),
        (
            "docs/guide.md".into(),
            Bytes::from_static(b"# Guide\n\nTry: ls -l, cat, sha256sum, cp -r.\n"),
        ),
        (
            "docs/中文 名字.txt".into(),
            Bytes::from_static("你好，对象存储\n".as_bytes()),
        ),
        (
            "photos/2024/img001.jpg".into(),
            Bytes::from(vec![0xffu8; 4096]),
        ),
        (
            "photos/2024/img002.jpg".into(),
            Bytes::from(vec![0xd8u8; 8192]),
        ),
        (
            "data/numbers.csv".into(),
            Bytes::from(
                (1..=1000)
                    .map(|i| format!("{i},{}\n", i * i))
                    .collect::<String>(),
            ),
        ),
        ("data/big.bin".into(), Bytes::from(big)),
    ];
    for (name, body) in files {
        let len = body.len();
        ObjectStore::put_object(&client, &name, body, &PutOptions::default()).await?;
        println!("  put {name} ({len} bytes)");
    }
    Ok(())
}
