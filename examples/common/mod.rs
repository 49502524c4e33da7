//! What the benchmark examples share: a client for a cos-local endpoint and argument access.

use cosmount::cos::{Client, ClientConfig, Credentials};

pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

/// A client for `bucket` at `endpoint`, with COS_SECRET_ID/COS_SECRET_KEY or cos-local's
/// documented default pair.
pub fn client(endpoint: &str, bucket: &str) -> Res<Client> {
    let id = std::env::var("COS_SECRET_ID").unwrap_or_else(|_| "AKIDCOSLOCALEXAMPLE".into());
    let key = std::env::var("COS_SECRET_KEY").unwrap_or_else(|_| "cos-local-secret-key".into());
    let mut cfg = ClientConfig::new(bucket, "", Credentials::new(id, key));
    cfg.endpoint = Some(endpoint.to_string());
    Ok(Client::new(cfg)?)
}

/// Positional argument `i`, or an error naming what is missing.
pub fn arg(args: &[String], i: usize, what: &str) -> Res<String> {
    args.get(i)
        .cloned()
        .ok_or_else(|| format!("missing argument: {what}").into())
}
