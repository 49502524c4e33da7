//! Bucket operations: PUT (create), HEAD, GET (ListObjects v1), DELETE, GET location.
//! Bucket ACL is in `acl.rs`, CORS in `cors.rs`.

// `CosError` (error.rs) carries its `ServiceError` inline; it is shared by every layer, so
// its size is accepted here rather than boxed.
#![allow(clippy::result_large_err)]

use std::time::UNIX_EPOCH;

use reqwest::Method;

use super::client::{Client, CosRequest};
use super::error::{CosError, Result};
use super::store::{BucketInfo, ListEntry, ListPage, ListParams};
use super::xml::{self, parse_xml_time, unquote_etag, url_decode};

/// Options for PUT Bucket.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CreateBucketOptions {
    /// Canned `x-cos-acl` (`private`, `public-read`, ...).
    pub acl: Option<String>,
}

/// COS counts Contents plus CommonPrefixes against max-keys and allows at most 1000.
pub use cos_protocol::limits::MAX_LIST_KEYS;

impl Client {
    /// PUT Bucket: create the bucket this client is configured for.
    pub async fn create_bucket(&self, opts: &CreateBucketOptions) -> Result<()> {
        let req = CosRequest::new(Method::PUT, None).header_opt("x-cos-acl", opts.acl.clone());
        self.execute_xml(&req).await.map(|_| ())
    }

    /// HEAD Bucket: Ok when it exists and we may read it (403 AccessDenied / 404 NoSuchBucket
    /// otherwise, codes derived from the status because HEAD answers carry no body).
    pub async fn head_bucket(&self) -> Result<BucketInfo> {
        let req = CosRequest::new(Method::HEAD, None);
        let answer = self.execute_xml(&req).await?;
        Ok(BucketInfo {
            region: answer.header("x-cos-bucket-region").map(str::to_string),
        })
    }

    /// DELETE Bucket (409 BucketNotEmpty unless empty).
    pub async fn delete_bucket(&self) -> Result<()> {
        let req = CosRequest::new(Method::DELETE, None);
        self.execute_xml(&req).await.map(|_| ())
    }

    /// GET Bucket location: the region name, e.g. `ap-guangzhou`.
    pub async fn get_bucket_location(&self) -> Result<String> {
        let req = CosRequest::new(Method::GET, None).query("location", "");
        let answer = self.execute_xml(&req).await?;
        let loc: xml::LocationXml = xml::parse(answer.bytes(), "LocationConstraint")?;
        Ok(loc.region.trim().to_string())
    }

    /// GET Bucket (ListObjects v1) with `encoding-type=url`; keys and prefixes come back
    /// decoded. Entries are in COS order (UTF-8 byte order).
    pub async fn list_objects(&self, params: &ListParams) -> Result<ListPage> {
        if let Some(max) = params.max_keys {
            if max == 0 || max > MAX_LIST_KEYS {
                return Err(CosError::InvalidInput(format!(
                    "max-keys must be 1..={MAX_LIST_KEYS}, not {max}"
                )));
            }
        }
        let req = CosRequest::new(Method::GET, None)
            .query("prefix", params.prefix.clone())
            .query_opt("delimiter", params.delimiter.clone())
            .query_opt("marker", params.marker.clone())
            .query_opt("max-keys", params.max_keys.map(|m| m.to_string()))
            .query("encoding-type", "url");
        let answer = self.execute_xml(&req).await?;
        let raw: xml::ListBucketResultXml = xml::parse(answer.bytes(), "ListBucketResult")?;
        list_page_from_xml(raw)
    }

    /// Every entry under `prefix` (following NextMarker), for tools and tests. Memory grows
    /// with the result: callers with huge prefixes page with [`Client::list_objects`].
    pub async fn list_all(
        &self,
        prefix: &str,
        delimiter: Option<&str>,
    ) -> Result<(Vec<ListEntry>, Vec<String>)> {
        let mut params = ListParams {
            prefix: prefix.to_string(),
            delimiter: delimiter.map(str::to_string),
            marker: None,
            max_keys: None,
        };
        let (mut objects, mut prefixes) = (Vec::new(), Vec::new());
        loop {
            let page = self.list_objects(&params).await?;
            objects.extend(page.objects);
            prefixes.extend(page.common_prefixes);
            match (page.is_truncated, page.next_marker) {
                (true, Some(next)) if Some(&next) != params.marker.as_ref() => {
                    params.marker = Some(next)
                }
                (true, _) => {
                    return Err(CosError::InvalidResponse(
                        "truncated listing without a new NextMarker".into(),
                    ))
                }
                (false, _) => return Ok((objects, prefixes)),
            }
        }
    }
}

/// Decode a listing. Values are URL-encoded only when COS says so (`EncodingType` = url).
fn list_page_from_xml(raw: xml::ListBucketResultXml) -> Result<ListPage> {
    let encoded = raw
        .encoding_type
        .as_deref()
        .is_some_and(|e| e.eq_ignore_ascii_case("url"));
    let decode = |s: &str| -> Result<String> {
        if encoded {
            url_decode(s)
        } else {
            Ok(s.to_string())
        }
    };
    let mut objects = Vec::with_capacity(raw.contents.len());
    for c in &raw.contents {
        objects.push(ListEntry {
            key: decode(&c.key)?,
            size: c.size,
            etag: unquote_etag(&c.etag),
            last_modified: parse_xml_time(&c.last_modified).unwrap_or(UNIX_EPOCH),
            storage_class: c
                .storage_class
                .clone()
                .filter(|s| !s.is_empty())
                .unwrap_or_else(|| "STANDARD".into()),
        });
    }
    let common_prefixes = raw
        .common_prefixes
        .iter()
        .map(|p| decode(&p.prefix))
        .collect::<Result<Vec<_>>>()?;
    let mut next_marker = match raw.next_marker.as_deref() {
        Some(m) if !m.is_empty() => Some(decode(m)?),
        _ => None,
    };
    // COS documents NextMarker whenever the page is truncated; should it be missing, the last
    // key or prefix of the page is where the next page starts (S3's rule).
    if raw.is_truncated && next_marker.is_none() {
        let last_key = objects.last().map(|o| o.key.clone());
        let last_prefix = common_prefixes.last().cloned();
        next_marker = match (last_key, last_prefix) {
            (Some(k), Some(p)) => Some(if k > p { k } else { p }),
            (k, p) => k.or(p),
        };
    }
    Ok(ListPage {
        prefix: decode(&raw.prefix)?,
        objects,
        common_prefixes,
        is_truncated: raw.is_truncated,
        next_marker,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_encoded_listing_is_decoded() {
        let body = r#"<ListBucketResult><Name>b</Name><EncodingType>url</EncodingType>
<Prefix>%E7%85%A7%E7%89%87/</Prefix><Marker/><MaxKeys>2</MaxKeys><Delimiter>/</Delimiter>
<IsTruncated>true</IsTruncated><NextMarker>%E7%85%A7%E7%89%87/a%20b+c.jpg</NextMarker>
<CommonPrefixes><Prefix>%E7%85%A7%E7%89%87/2020%E5%B9%B4/</Prefix></CommonPrefixes>
<Contents><Key>%E7%85%A7%E7%89%87/a%20b+c.jpg</Key><LastModified>2020-12-10T03:37:30.000Z</LastModified>
<ETag>&quot;abc&quot;</ETag><Size>5</Size></Contents></ListBucketResult>"#;
        let raw: xml::ListBucketResultXml = xml::parse(body.as_bytes(), "l").unwrap();
        let page = list_page_from_xml(raw).unwrap();
        assert_eq!(page.prefix, "照片/");
        assert_eq!(page.common_prefixes, vec!["照片/2020年/".to_string()]);
        assert_eq!(page.objects[0].key, "照片/a b+c.jpg");
        assert_eq!(page.objects[0].etag, "abc");
        assert_eq!(page.objects[0].storage_class, "STANDARD");
        assert_eq!(page.next_marker.as_deref(), Some("照片/a b+c.jpg"));
    }

    #[test]
    fn missing_next_marker_falls_back_to_last_entry() {
        let body = r#"<ListBucketResult><IsTruncated>true</IsTruncated>
<Contents><Key>a%25</Key><Size>1</Size></Contents></ListBucketResult>"#;
        let raw: xml::ListBucketResultXml = xml::parse(body.as_bytes(), "l").unwrap();
        // Not url-encoded per the answer (no EncodingType), so `%25` stays literal.
        let page = list_page_from_xml(raw).unwrap();
        assert_eq!(page.next_marker.as_deref(), Some("a%25"));
    }
}
