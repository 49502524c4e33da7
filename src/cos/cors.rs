//! Bucket CORS configuration: GET/PUT/DELETE `?cors`. (The preflight itself, OPTIONS Object,
//! is in `object.rs`.)

// `CosError` (error.rs) carries its `ServiceError` inline; it is shared by every layer, so
// its size is accepted here rather than boxed.
#![allow(clippy::result_large_err)]

use reqwest::Method;

use super::client::{Client, CosRequest};
use super::error::{CosError, Result};
use super::xml;

// The rule types are shared with cos-local (which stores and evaluates them).
pub use cos_protocol::cors::{CorsConfiguration, CorsRule};

fn config_from_xml(body: &[u8]) -> Result<CorsConfiguration> {
    let raw: xml::CorsConfigurationXml = xml::parse(body, "CORSConfiguration")?;
    let trimmed =
        |v: Vec<String>| -> Vec<String> { v.into_iter().map(|s| s.trim().to_string()).collect() };
    Ok(CorsConfiguration {
        rules: raw
            .rules
            .into_iter()
            .map(|r| CorsRule {
                id: r.id.filter(|s| !s.is_empty()),
                allowed_origins: trimmed(r.allowed_origins),
                allowed_methods: trimmed(r.allowed_methods),
                allowed_headers: trimmed(r.allowed_headers),
                expose_headers: trimmed(r.expose_headers),
                max_age_seconds: r.max_age_seconds.map(u64::from),
            })
            .collect(),
    })
}

impl Client {
    /// GET Bucket CORS; 404 `NoSuchCORSConfiguration` when none is set.
    pub async fn get_bucket_cors(&self) -> Result<CorsConfiguration> {
        let req = CosRequest::new(Method::GET, None).query("cors", "");
        let answer = self.execute_xml(&req).await?;
        config_from_xml(answer.bytes())
    }

    /// PUT Bucket CORS (replaces every rule).
    pub async fn put_bucket_cors(&self, config: &CorsConfiguration) -> Result<()> {
        if config.rules.is_empty() {
            return Err(CosError::InvalidInput(
                "a CORS configuration needs at least one rule (use delete_bucket_cors to clear)"
                    .into(),
            ));
        }
        let req = CosRequest::new(Method::PUT, None)
            .query("cors", "")
            .xml_body(config.to_xml());
        self.execute_xml(&req).await.map(|_| ())
    }

    pub async fn delete_bucket_cors(&self) -> Result<()> {
        let req = CosRequest::new(Method::DELETE, None).query("cors", "");
        self.execute_xml(&req).await.map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn configuration_round_trips_through_xml() {
        let c = CorsConfiguration {
            rules: vec![CorsRule {
                id: Some("r1".into()),
                allowed_origins: vec!["https://a.example".into(), "*".into()],
                allowed_methods: vec!["GET".into(), "PUT".into()],
                allowed_headers: vec!["*".into()],
                expose_headers: vec!["ETag".into()],
                max_age_seconds: Some(600),
            }],
        };
        assert_eq!(config_from_xml(c.to_xml().as_bytes()).unwrap(), c);
    }
}
