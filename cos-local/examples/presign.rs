//! Print a presigned path-style URL for cos-local (used by scripts/bench-cos-local.sh):
//!
//! `presign METHOD http://IP:PORT BUCKET KEY SECRETID SECRETKEY [EXPIRES_SECS]`
//!
//! Only the path is signed (no headers), so any client (curl) can use the URL as is.

use cos_protocol::sign::{sign, KeyTime, SignRequest};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

const PATH_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn main() -> std::process::ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.len() < 6 {
        eprintln!(
            "usage: presign METHOD http://IP:PORT BUCKET KEY SECRETID SECRETKEY [EXPIRES_SECS]"
        );
        return std::process::ExitCode::from(2);
    }
    let (method, endpoint, bucket, key, id, secret) =
        (&args[0], &args[1], &args[2], &args[3], &args[4], &args[5]);
    let expires = args.get(6).and_then(|e| e.parse().ok()).unwrap_or(3600);
    let signed_path = format!("/{bucket}/{key}");
    let sig = sign(
        secret,
        KeyTime::around_now(expires, 0),
        &SignRequest {
            method,
            key: &signed_path,
            params: &[],
            headers: &[],
        },
    );
    println!(
        "{}{}?{}",
        endpoint.trim_end_matches('/'),
        utf8_percent_encode(&signed_path, PATH_SET),
        sig.query_string(id)
    );
    std::process::ExitCode::SUCCESS
}
