//! Multipart upload: initiate, upload part, upload part copy, complete, abort, list parts,
//! list multipart uploads.

// `CosError` (error.rs) carries its `ServiceError` inline; it is shared by every layer, so
// its size is accepted here rather than boxed.
#![allow(clippy::result_large_err)]

use std::time::SystemTime;

use reqwest::Method;

use super::client::{Client, CosRequest, PutBody};
use super::error::{CosError, Result};
use super::object::{
    apply_put_options, copy_result, error_in_body, put_result_from_headers, CopyResult,
};
use super::store::{CompletedPart, PutOptions, PutResult};
use super::xml::{self, parse_xml_time, unquote_etag, url_decode};

/// COS part numbers run from 1 to 10000.
pub const MAX_PART_NUMBER: u32 = 10_000;

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InitiateResult {
    pub bucket: String,
    pub key: String,
    pub upload_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CompleteResult {
    pub location: String,
    pub bucket: String,
    pub key: String,
    /// Quotes stripped; `{md5}-{parts}` for multipart objects.
    pub etag: String,
    /// Whole-object CRC-64 (only when every part had one).
    pub crc64: Option<u64>,
}

impl From<CompleteResult> for PutResult {
    fn from(c: CompleteResult) -> Self {
        PutResult {
            etag: c.etag,
            crc64: c.crc64,
        }
    }
}

/// Paging for List Parts.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPartsParams {
    /// 1..=1000.
    pub max_parts: Option<u32>,
    /// List parts after this number (`NextPartNumberMarker` of the previous page).
    pub part_number_marker: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartInfo {
    pub part_number: u32,
    pub etag: String,
    pub size: u64,
    pub last_modified: Option<SystemTime>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListPartsResult {
    pub key: String,
    pub upload_id: String,
    pub storage_class: Option<String>,
    pub part_number_marker: Option<u32>,
    pub next_part_number_marker: Option<u32>,
    pub max_parts: Option<u32>,
    pub is_truncated: bool,
    pub parts: Vec<PartInfo>,
}

/// Filters and paging for List Multipart Uploads.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListUploadsParams {
    pub prefix: Option<String>,
    pub delimiter: Option<String>,
    pub key_marker: Option<String>,
    pub upload_id_marker: Option<String>,
    /// 1..=1000.
    pub max_uploads: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UploadInfo {
    pub key: String,
    pub upload_id: String,
    pub storage_class: Option<String>,
    pub initiated: Option<SystemTime>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ListUploadsResult {
    pub prefix: String,
    pub key_marker: String,
    pub upload_id_marker: String,
    pub next_key_marker: Option<String>,
    pub next_upload_id_marker: Option<String>,
    pub max_uploads: Option<u32>,
    pub is_truncated: bool,
    pub uploads: Vec<UploadInfo>,
    pub common_prefixes: Vec<String>,
}

fn check_part_number(n: u32) -> Result<()> {
    if (1..=MAX_PART_NUMBER).contains(&n) {
        Ok(())
    } else {
        Err(CosError::InvalidInput(format!(
            "part number {n} outside 1..={MAX_PART_NUMBER}"
        )))
    }
}

fn check_page_size(name: &str, v: Option<u32>) -> Result<()> {
    match v {
        Some(n) if n == 0 || n > 1000 => Err(CosError::InvalidInput(format!(
            "{name} must be 1..=1000, not {n}"
        ))),
        _ => Ok(()),
    }
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

impl Client {
    /// Initiate Multipart Upload with the metadata, storage class and ACL of `opts`.
    pub async fn initiate_multipart(&self, key: &str, opts: &PutOptions) -> Result<InitiateResult> {
        let req =
            apply_put_options(CosRequest::new(Method::POST, Some(key)), opts).query("uploads", "");
        let answer = self.execute_xml(&req).await?;
        let raw: xml::InitiateResultXml =
            xml::parse(answer.bytes(), "InitiateMultipartUploadResult")?;
        if raw.upload_id.trim().is_empty() {
            return Err(CosError::InvalidResponse(
                "InitiateMultipartUploadResult without an UploadId".into(),
            ));
        }
        Ok(InitiateResult {
            bucket: raw.bucket,
            key: raw.key,
            upload_id: raw.upload_id.trim().to_string(),
        })
    }

    /// Upload Part `part_number` (1..=10000). The body is re-sent on a retry.
    pub async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        body: PutBody,
    ) -> Result<PutResult> {
        check_part_number(part_number)?;
        // Content-MD5: a part damaged on the way is refused (BadDigest), not stored.
        let md5 = super::object::body_md5(&body).await?;
        let req = CosRequest::new(Method::PUT, Some(key))
            .query("partNumber", part_number.to_string())
            .query("uploadId", upload_id)
            .header("Content-MD5", md5)
            .body(body);
        let answer = self.execute_xml(&req).await?;
        let result = put_result_from_headers(&answer.headers);
        if result.etag.is_empty() {
            return Err(CosError::InvalidResponse(format!(
                "Upload Part {part_number} answered without an ETag"
            )));
        }
        Ok(result)
    }

    /// Upload Part - Copy: bytes `range` (inclusive) of `source_key` in this bucket, or the
    /// whole source, become part `part_number`.
    pub async fn upload_part_copy(
        &self,
        key: &str,
        upload_id: &str,
        part_number: u32,
        source_key: &str,
        range: Option<(u64, u64)>,
    ) -> Result<CopyResult> {
        check_part_number(part_number)?;
        super::client::validate_key(source_key)?;
        if let Some((first, last)) = range {
            if first > last {
                return Err(CosError::InvalidInput(format!(
                    "copy range {first}-{last} is empty"
                )));
            }
        }
        let req = CosRequest::new(Method::PUT, Some(key))
            .query("partNumber", part_number.to_string())
            .query("uploadId", upload_id)
            .header("x-cos-copy-source", self.copy_source(source_key))
            .header_opt(
                "x-cos-copy-source-range",
                range.map(|(a, b)| format!("bytes={a}-{b}")),
            );
        let answer = self.execute_xml(&req).await?;
        copy_result(answer.bytes(), &answer.headers, "CopyPartResult")
    }

    /// Complete Multipart Upload. Parts are sent in ascending order. COS answers 200 at once
    /// and streams whitespace while it merges; the final XML may still be `<Error>`, and a
    /// result without an ETag is treated as a failure too.
    pub async fn complete_multipart(
        &self,
        key: &str,
        upload_id: &str,
        parts: &[CompletedPart],
    ) -> Result<CompleteResult> {
        if parts.is_empty() {
            return Err(CosError::InvalidInput(
                "Complete Multipart Upload needs at least one part".into(),
            ));
        }
        let mut sorted: Vec<(u32, &str)> = parts
            .iter()
            .map(|p| (p.part_number, p.etag.as_str()))
            .collect();
        sorted.sort_by_key(|(n, _)| *n);
        for (n, _) in &sorted {
            check_part_number(*n)?;
        }
        let req = CosRequest::new(Method::POST, Some(key))
            .query("uploadId", upload_id)
            .xml_body(xml::complete_body(&sorted));
        let answer = self.execute_xml(&req).await?;
        let body = answer.bytes();
        if let Some(e) = error_in_body(body, &answer.headers) {
            return Err(e);
        }
        let raw: xml::CompleteResultXml = xml::parse(body, "CompleteMultipartUploadResult")?;
        let etag = unquote_etag(&raw.etag);
        if etag.is_empty() {
            return Err(CosError::InvalidResponse(
                "CompleteMultipartUploadResult without an ETag".into(),
            ));
        }
        Ok(CompleteResult {
            location: raw.location,
            bucket: raw.bucket,
            key: raw.key,
            etag,
            crc64: answer
                .header("x-cos-hash-crc64ecma")
                .and_then(|v| v.trim().parse().ok()),
        })
    }

    /// Abort Multipart Upload (204); the uploaded parts are discarded.
    pub async fn abort_multipart(&self, key: &str, upload_id: &str) -> Result<()> {
        let req = CosRequest::new(Method::DELETE, Some(key)).query("uploadId", upload_id);
        self.execute_xml(&req).await.map(|_| ())
    }

    /// List Parts of an upload, one page.
    pub async fn list_parts(
        &self,
        key: &str,
        upload_id: &str,
        params: &ListPartsParams,
    ) -> Result<ListPartsResult> {
        check_page_size("max-parts", params.max_parts)?;
        let req = CosRequest::new(Method::GET, Some(key))
            .query("uploadId", upload_id)
            .query_opt("max-parts", params.max_parts.map(|v| v.to_string()))
            .query_opt(
                "part-number-marker",
                params.part_number_marker.map(|v| v.to_string()),
            )
            .query("encoding-type", "url");
        let answer = self.execute_xml(&req).await?;
        let raw: xml::ListPartsResultXml = xml::parse(answer.bytes(), "ListPartsResult")?;
        let encoded = raw
            .encoding_type
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("url"));
        Ok(ListPartsResult {
            key: if encoded {
                url_decode(&raw.key)?
            } else {
                raw.key
            },
            upload_id: raw.upload_id,
            storage_class: non_empty(raw.storage_class),
            part_number_marker: raw.part_number_marker.and_then(|m| m.trim().parse().ok()),
            next_part_number_marker: raw
                .next_part_number_marker
                .and_then(|m| m.trim().parse().ok()),
            max_parts: raw.max_parts,
            is_truncated: raw.is_truncated,
            parts: raw
                .parts
                .into_iter()
                .map(|p| PartInfo {
                    part_number: p.part_number,
                    etag: unquote_etag(&p.etag),
                    size: p.size,
                    last_modified: parse_xml_time(&p.last_modified),
                })
                .collect(),
        })
    }

    /// List Multipart Uploads in progress in this bucket, one page.
    pub async fn list_multipart_uploads(
        &self,
        params: &ListUploadsParams,
    ) -> Result<ListUploadsResult> {
        check_page_size("max-uploads", params.max_uploads)?;
        let req = CosRequest::new(Method::GET, None)
            .query("uploads", "")
            .query_opt("prefix", params.prefix.clone())
            .query_opt("delimiter", params.delimiter.clone())
            .query_opt("key-marker", params.key_marker.clone())
            .query_opt("upload-id-marker", params.upload_id_marker.clone())
            .query_opt("max-uploads", params.max_uploads.map(|v| v.to_string()))
            .query("encoding-type", "url");
        let answer = self.execute_xml(&req).await?;
        let raw: xml::ListUploadsResultXml =
            xml::parse(answer.bytes(), "ListMultipartUploadsResult")?;
        let encoded = raw
            .encoding_type
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case("url"));
        let decode = |s: String| -> Result<String> {
            if encoded {
                url_decode(&s)
            } else {
                Ok(s)
            }
        };
        let decode_opt =
            |s: Option<String>| -> Result<Option<String>> { non_empty(s).map(decode).transpose() };
        let mut uploads = Vec::with_capacity(raw.uploads.len());
        for u in raw.uploads {
            uploads.push(UploadInfo {
                key: decode(u.key)?,
                upload_id: u.upload_id,
                storage_class: non_empty(u.storage_class),
                initiated: parse_xml_time(&u.initiated),
            });
        }
        Ok(ListUploadsResult {
            prefix: decode(raw.prefix)?,
            key_marker: decode(raw.key_marker)?,
            upload_id_marker: raw.upload_id_marker,
            next_key_marker: decode_opt(raw.next_key_marker)?,
            next_upload_id_marker: non_empty(raw.next_upload_id_marker),
            max_uploads: raw.max_uploads,
            is_truncated: raw.is_truncated,
            uploads,
            common_prefixes: raw
                .common_prefixes
                .into_iter()
                .map(|p| decode(p.prefix))
                .collect::<Result<Vec<_>>>()?,
        })
    }
}
