//! Typed COS XML bodies: serde structs for what COS answers, small writers for what we send.
//!
//! COS spells some element names inconsistently (`EncodingType`/`Encoding-Type`/`Encoding-type`,
//! `UploadId`/`UploadID`); the structs accept every spelling seen in docs and SDKs. Unknown
//! elements are ignored, so a newer COS adding fields does not break parsing.
//!
//! Nothing here panics on malformed input: every parser returns `Result`, and the error-body
//! parser falls back to a generic error built from the HTTP status.

// `CosError` (error.rs) carries its `ServiceError` inline; it is shared by every layer, so
// its size is accepted here rather than boxed.
#![allow(clippy::result_large_err)]

use std::time::SystemTime;

use percent_encoding::percent_decode_str;
use quick_xml::escape::escape;
use quick_xml::events::Event;
use quick_xml::Reader;
use serde::de::DeserializeOwned;
use serde::Deserialize;

use super::error::{CosError, ServiceError};

/// Deserialize `body` into `T`, mapping a parse failure to `InvalidResponse` naming `what`.
pub(crate) fn parse<T: DeserializeOwned>(body: &[u8], what: &str) -> Result<T, CosError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| CosError::InvalidResponse(format!("{what}: body is not UTF-8")))?;
    quick_xml::de::from_str(text.trim_start())
        .map_err(|e| CosError::InvalidResponse(format!("{what}: malformed XML ({e})")))
}

/// The name of the document's root element, skipping the declaration, comments and the
/// leading whitespace Complete Multipart Upload streams while it works.
pub(crate) fn root_element(body: &[u8]) -> Option<String> {
    let mut reader = Reader::from_reader(body);
    let mut buf = Vec::new();
    loop {
        match reader.read_event_into(&mut buf) {
            Ok(Event::Start(e)) | Ok(Event::Empty(e)) => {
                return Some(e.local_name().into_inner().to_string());
            }
            Ok(Event::Eof) | Err(_) => return None,
            Ok(_) => {}
        }
        buf.clear();
    }
}

/// Strip the quotes COS puts around ETags (`"abc"` -> `abc`).
pub(crate) fn unquote_etag(etag: &str) -> String {
    etag.trim().trim_matches('"').to_string()
}

/// Decode a value returned with `encoding-type=url` (plain percent-decoding: `+` stays `+`).
pub(crate) fn url_decode(s: &str) -> Result<String, CosError> {
    percent_decode_str(s)
        .decode_utf8()
        .map(|c| c.into_owned())
        .map_err(|_| CosError::InvalidResponse(format!("url-encoded value is not UTF-8: {s:?}")))
}

/// Parse an ISO-8601 time from an XML body (`2020-12-10T03:37:30.000Z`, `2020-04-10T18:20:30Z`),
/// or the old `Wed Jan 18 16:04:17 2017` form some docs show. `None` when neither fits.
pub(crate) fn parse_xml_time(s: &str) -> Option<SystemTime> {
    let s = s.trim();
    if let Ok(t) = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339) {
        return Some(t.into());
    }
    let asctime = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
    );
    let lenient = s.split_whitespace().collect::<Vec<_>>().join(" ");
    let asctime_single = time::macros::format_description!(
        "[weekday repr:short] [month repr:short] [day padding:none] [hour]:[minute]:[second] [year]"
    );
    time::PrimitiveDateTime::parse(s, &asctime)
        .or_else(|_| time::PrimitiveDateTime::parse(&lenient, &asctime_single))
        .ok()
        .map(|t| t.assume_utc().into())
}

// ---------------------------------------------------------------------------------------------
// Errors

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ErrorBody {
    #[serde(rename = "Code")]
    code: String,
    #[serde(rename = "Message")]
    message: String,
    #[serde(rename = "Resource")]
    resource: Option<String>,
    #[serde(rename = "RequestId")]
    request_id: Option<String>,
    #[serde(rename = "TraceId")]
    trace_id: Option<String>,
    #[serde(rename = "StringToSign")]
    string_to_sign: Option<String>,
}

/// The code COS means when it answers `status` without a body (HEAD, or a body we cannot read).
/// `on_object` tells a 404 on an object (NoSuchKey) from one on the bucket (NoSuchBucket).
pub fn code_for_status(status: u16, on_object: bool) -> &'static str {
    match status {
        304 => "NotModified",
        400 => "BadRequest",
        403 => "AccessDenied",
        404 if on_object => "NoSuchKey",
        404 => "NoSuchBucket",
        405 => "MethodNotAllowed",
        409 => "Conflict",
        411 => "MissingContentLength",
        412 => "PreconditionFailed",
        416 => "InvalidRange",
        500 => "InternalError",
        501 => "NotImplemented",
        503 => "ServiceUnavailable",
        s if s >= 500 => "InternalError",
        _ => "UnknownError",
    }
}

/// Build the `ServiceError` for an answer with `status` and `body`. A body that is not a COS
/// `<Error>` document (empty, HTML from a proxy, truncated XML) gives a generic error whose code
/// is derived from the status; parsing never panics.
pub fn service_error(status: u16, body: &[u8], on_object: bool) -> ServiceError {
    let parsed = if root_element(body).as_deref() == Some("Error") {
        parse::<ErrorBody>(body, "error").ok()
    } else {
        None
    };
    match parsed {
        Some(e) if !e.code.is_empty() => ServiceError {
            status,
            code: e.code,
            message: e.message,
            request_id: e.request_id.filter(|s| !s.is_empty()),
            trace_id: e.trace_id.filter(|s| !s.is_empty()),
            resource: e.resource.filter(|s| !s.is_empty()),
            string_to_sign: e.string_to_sign.filter(|s| !s.is_empty()),
            server_date: None,
        },
        _ => {
            // Keep a short, printable excerpt of a non-XML body: it usually says who answered.
            let excerpt: String = String::from_utf8_lossy(body)
                .chars()
                .filter(|c| !c.is_control())
                .take(200)
                .collect();
            ServiceError {
                status,
                code: code_for_status(status, on_object).to_string(),
                message: excerpt.trim().to_string(),
                ..ServiceError::default()
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Listing

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct Owner {
    #[serde(rename = "ID")]
    pub id: String,
    #[serde(rename = "DisplayName")]
    pub display_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PrefixEntry {
    #[serde(rename = "Prefix")]
    pub prefix: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ContentsXml {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "Size")]
    pub size: u64,
    #[serde(rename = "StorageClass")]
    pub storage_class: Option<String>,
    #[serde(rename = "Owner")]
    pub owner: Option<Owner>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListBucketResultXml {
    #[serde(rename = "Name")]
    pub name: String,
    #[serde(
        rename = "EncodingType",
        alias = "Encoding-Type",
        alias = "Encoding-type"
    )]
    pub encoding_type: Option<String>,
    #[serde(rename = "Prefix")]
    pub prefix: String,
    #[serde(rename = "Marker")]
    pub marker: String,
    #[serde(rename = "MaxKeys")]
    pub max_keys: Option<u32>,
    #[serde(rename = "Delimiter")]
    pub delimiter: Option<String>,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(rename = "NextMarker")]
    pub next_marker: Option<String>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<PrefixEntry>,
    #[serde(rename = "Contents")]
    pub contents: Vec<ContentsXml>,
}

// ---------------------------------------------------------------------------------------------
// Copy and multipart

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CopyResultXml {
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "CRC64")]
    pub crc64: Option<String>,
    #[serde(rename = "VersionId")]
    pub version_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct InitiateResultXml {
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "UploadId", alias = "UploadID")]
    pub upload_id: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CompleteResultXml {
    #[serde(rename = "Location")]
    pub location: String,
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "ETag")]
    pub etag: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct PartXml {
    #[serde(rename = "PartNumber")]
    pub part_number: u32,
    #[serde(rename = "LastModified")]
    pub last_modified: String,
    #[serde(rename = "ETag")]
    pub etag: String,
    #[serde(rename = "Size")]
    pub size: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListPartsResultXml {
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(
        rename = "EncodingType",
        alias = "Encoding-Type",
        alias = "Encoding-type"
    )]
    pub encoding_type: Option<String>,
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "UploadId", alias = "UploadID")]
    pub upload_id: String,
    #[serde(rename = "Initiator")]
    pub initiator: Option<Owner>,
    #[serde(rename = "Owner")]
    pub owner: Option<Owner>,
    // Strings: an upload without parts answers an empty `<NextPartNumberMarker/>`.
    #[serde(rename = "PartNumberMarker")]
    pub part_number_marker: Option<String>,
    #[serde(rename = "NextPartNumberMarker")]
    pub next_part_number_marker: Option<String>,
    #[serde(rename = "StorageClass")]
    pub storage_class: Option<String>,
    #[serde(rename = "MaxParts")]
    pub max_parts: Option<u32>,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(rename = "Part")]
    pub parts: Vec<PartXml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct UploadXml {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "UploadId", alias = "UploadID")]
    pub upload_id: String,
    #[serde(rename = "StorageClass")]
    pub storage_class: Option<String>,
    #[serde(rename = "Initiator")]
    pub initiator: Option<Owner>,
    #[serde(rename = "Owner")]
    pub owner: Option<Owner>,
    #[serde(rename = "Initiated")]
    pub initiated: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct ListUploadsResultXml {
    #[serde(rename = "Bucket")]
    pub bucket: String,
    #[serde(
        rename = "EncodingType",
        alias = "Encoding-Type",
        alias = "Encoding-type"
    )]
    pub encoding_type: Option<String>,
    #[serde(rename = "KeyMarker")]
    pub key_marker: String,
    #[serde(rename = "UploadIdMarker", alias = "UploadIDMarker")]
    pub upload_id_marker: String,
    #[serde(rename = "NextKeyMarker")]
    pub next_key_marker: Option<String>,
    #[serde(rename = "NextUploadIdMarker", alias = "NextUploadIDMarker")]
    pub next_upload_id_marker: Option<String>,
    #[serde(rename = "MaxUploads")]
    pub max_uploads: Option<u32>,
    #[serde(rename = "IsTruncated")]
    pub is_truncated: bool,
    #[serde(rename = "Prefix")]
    pub prefix: String,
    #[serde(rename = "Delimiter")]
    pub delimiter: Option<String>,
    #[serde(rename = "Upload")]
    pub uploads: Vec<UploadXml>,
    #[serde(rename = "CommonPrefixes")]
    pub common_prefixes: Vec<PrefixEntry>,
}

/// `<CompleteMultipartUpload>` with the parts in the order given (the caller sorts).
pub(crate) fn complete_body(parts: &[(u32, &str)]) -> String {
    let mut xml = String::from("<CompleteMultipartUpload>");
    for (number, etag) in parts {
        xml.push_str(&format!(
            "<Part><PartNumber>{number}</PartNumber><ETag>{}</ETag></Part>",
            escape(format!("\"{}\"", etag.trim_matches('"')))
        ));
    }
    xml.push_str("</CompleteMultipartUpload>");
    xml
}

// ---------------------------------------------------------------------------------------------
// Delete multiple

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DeletedXml {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "VersionId")]
    pub version_id: Option<String>,
    #[serde(rename = "DeleteMarker")]
    pub delete_marker: Option<String>,
    #[serde(rename = "DeleteMarkerVersionId")]
    pub delete_marker_version_id: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DeleteErrorXml {
    #[serde(rename = "Key")]
    pub key: String,
    #[serde(rename = "VersionId")]
    pub version_id: Option<String>,
    #[serde(rename = "Code")]
    pub code: String,
    #[serde(rename = "Message")]
    pub message: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct DeleteResultXml {
    #[serde(rename = "Deleted")]
    pub deleted: Vec<DeletedXml>,
    #[serde(rename = "Error")]
    pub errors: Vec<DeleteErrorXml>,
}

/// `<Delete>` body for DELETE Multiple Objects. Keys are plain XML text (not URL-encoded).
pub(crate) fn delete_body(keys: &[&str], quiet: bool) -> String {
    let mut xml = format!("<Delete><Quiet>{quiet}</Quiet>");
    for key in keys {
        xml.push_str(&format!("<Object><Key>{}</Key></Object>", escape(*key)));
    }
    xml.push_str("</Delete>");
    xml
}

// ---------------------------------------------------------------------------------------------
// ACL

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GranteeXml {
    #[serde(rename = "@type", alias = "@xsi:type")]
    pub kind: Option<String>,
    #[serde(rename = "ID")]
    pub id: Option<String>,
    #[serde(rename = "DisplayName")]
    pub display_name: Option<String>,
    #[serde(rename = "URI")]
    pub uri: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GrantXml {
    #[serde(rename = "Grantee")]
    pub grantee: GranteeXml,
    #[serde(rename = "Permission")]
    pub permission: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct GrantListXml {
    #[serde(rename = "Grant")]
    pub grants: Vec<GrantXml>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct AccessControlPolicyXml {
    #[serde(rename = "Owner")]
    pub owner: Owner,
    #[serde(rename = "AccessControlList")]
    pub acl: GrantListXml,
}

// ---------------------------------------------------------------------------------------------
// CORS and location

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CorsRuleXml {
    #[serde(rename = "ID")]
    pub id: Option<String>,
    #[serde(rename = "AllowedOrigin")]
    pub allowed_origins: Vec<String>,
    #[serde(rename = "AllowedMethod")]
    pub allowed_methods: Vec<String>,
    #[serde(rename = "AllowedHeader")]
    pub allowed_headers: Vec<String>,
    #[serde(rename = "ExposeHeader")]
    pub expose_headers: Vec<String>,
    #[serde(rename = "MaxAgeSeconds")]
    pub max_age_seconds: Option<u32>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub(crate) struct CorsConfigurationXml {
    #[serde(rename = "CORSRule")]
    pub rules: Vec<CorsRuleXml>,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LocationXml {
    #[serde(rename = "$text", default)]
    pub region: String,
}

/// Escape text for an element body we write.
pub(crate) fn text(s: &str) -> String {
    escape(s).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_body_recorded_from_cos_is_parsed() {
        let body = br#"<?xml version='1.0' encoding='utf-8' ?>
<Error>
  <Code>NoSuchKey</Code>
  <Message>The specified key does not exist.</Message>
  <Resource>examplebucket-1250000000.cos.ap-beijing.myqcloud.com/exampleobject</Resource>
  <RequestId>NWU5MDNkZDRfZDgyNzVkNjRfN2Q5M18xOWVi****</RequestId>
  <TraceId>OGVmYzZiMmQzYjA2</TraceId>
</Error>"#;
        let e = service_error(404, body, true);
        assert_eq!(e.status, 404);
        assert_eq!(e.code, "NoSuchKey");
        assert_eq!(e.message, "The specified key does not exist.");
        assert_eq!(
            e.request_id.as_deref(),
            Some("NWU5MDNkZDRfZDgyNzVkNjRfN2Q5M18xOWVi****")
        );
        assert_eq!(e.trace_id.as_deref(), Some("OGVmYzZiMmQzYjA2"));
        assert_eq!(
            e.resource.as_deref(),
            Some("examplebucket-1250000000.cos.ap-beijing.myqcloud.com/exampleobject")
        );
    }

    #[test]
    fn signature_error_keeps_string_to_sign_and_ignores_unknown_elements() {
        let body = b"<Error><Code>SignatureDoesNotMatch</Code><Message>m</Message>\
<StringToSign>sha1\n1;2\nabc\n</StringToSign><FormatString>x</FormatString>\
<ServerTime>2026-11-25T10:00:00Z</ServerTime></Error>";
        let e = service_error(403, body, true);
        assert_eq!(e.code, "SignatureDoesNotMatch");
        assert_eq!(e.string_to_sign.as_deref(), Some("sha1\n1;2\nabc\n"));
    }

    #[test]
    fn malformed_or_foreign_error_bodies_fall_back_to_the_status() {
        for body in [
            &b""[..],
            b"<Error><Code>NoSuch",
            b"<html><body>502 Bad Gateway</body></html>",
            b"\xff\xfe\x00garbage",
            b"<Error><Code></Code></Error>",
            b"<Error><Code>A</Code><Code>B</Code><Message><x></Message></Error>",
        ] {
            let e = service_error(503, body, true);
            assert_eq!(e.status, 503);
            assert_eq!(e.code, "ServiceUnavailable", "body {body:?}");
        }
        assert_eq!(service_error(404, b"", true).code, "NoSuchKey");
        assert_eq!(service_error(404, b"", false).code, "NoSuchBucket");
        assert_eq!(service_error(412, b"", true).code, "PreconditionFailed");
        assert_eq!(service_error(304, b"", true).code, "NotModified");
        assert_eq!(service_error(403, b"", false).code, "AccessDenied");
    }

    #[test]
    fn root_element_skips_whitespace_and_declaration() {
        assert_eq!(
            root_element(b"   \n\n  <?xml version='1.0'?><Error><Code>X</Code></Error>").as_deref(),
            Some("Error")
        );
        assert_eq!(
            root_element(b"<CompleteMultipartUploadResult xmlns=\"http://x\"/>").as_deref(),
            Some("CompleteMultipartUploadResult")
        );
        assert_eq!(root_element(b"   "), None);
        assert_eq!(root_element(b"not xml"), None);
    }

    #[test]
    fn list_result_with_url_encoding_parses() {
        let body = r#"<?xml version='1.0' encoding='utf-8' ?>
<ListBucketResult>
  <Name>examplebucket-1250000000</Name>
  <EncodingType>url</EncodingType>
  <Prefix>dir/</Prefix>
  <Marker/>
  <MaxKeys>1000</MaxKeys>
  <Delimiter>/</Delimiter>
  <IsTruncated>true</IsTruncated>
  <NextMarker>dir/b.txt</NextMarker>
  <CommonPrefixes><Prefix>dir/sub/</Prefix></CommonPrefixes>
  <CommonPrefixes><Prefix>dir/%E4%B8%AD/</Prefix></CommonPrefixes>
  <Contents>
    <Key>dir/b.txt</Key>
    <LastModified>2020-12-10T03:37:30.000Z</LastModified>
    <ETag>&quot;f173c1199e3d3b53dd91223cae16fb42&quot;</ETag>
    <Size>37</Size>
    <Owner><ID>1250000000</ID><DisplayName>1250000000</DisplayName></Owner>
    <StorageClass>STANDARD</StorageClass>
  </Contents>
</ListBucketResult>"#;
        let r: ListBucketResultXml = parse(body.as_bytes(), "list").unwrap();
        assert_eq!(r.encoding_type.as_deref(), Some("url"));
        assert!(r.is_truncated);
        assert_eq!(r.next_marker.as_deref(), Some("dir/b.txt"));
        assert_eq!(r.common_prefixes.len(), 2);
        assert_eq!(r.contents.len(), 1);
        assert_eq!(r.contents[0].etag, "\"f173c1199e3d3b53dd91223cae16fb42\"");
        assert_eq!(r.contents[0].size, 37);
        assert_eq!(r.marker, "");
    }

    #[test]
    fn list_parts_and_uploads_accept_both_spellings() {
        let parts = r#"<ListPartsResult><Bucket>b</Bucket><Encoding-type>url</Encoding-type>
<Key>k</Key><UploadId>u1</UploadId><PartNumberMarker>0</PartNumberMarker>
<NextPartNumberMarker>2</NextPartNumberMarker><MaxParts>2</MaxParts><IsTruncated>true</IsTruncated>
<Part><PartNumber>1</PartNumber><LastModified>2020-12-10T03:37:30.000Z</LastModified><ETag>"aa"</ETag><Size>1048576</Size></Part>
<Part><PartNumber>2</PartNumber><LastModified>2020-12-10T03:37:30.000Z</LastModified><ETag>&quot;bb&quot;</ETag><Size>5</Size></Part>
</ListPartsResult>"#;
        let r: ListPartsResultXml = parse(parts.as_bytes(), "parts").unwrap();
        assert_eq!(r.encoding_type.as_deref(), Some("url"));
        assert_eq!(r.next_part_number_marker.as_deref(), Some("2"));
        assert_eq!(r.parts.len(), 2);
        assert_eq!(r.parts[1].etag, "\"bb\"");
        // An upload without parts: empty markers (as cos-local answers).
        let none = r#"<ListPartsResult><Bucket>b</Bucket><Key>k</Key><UploadId>u1</UploadId>
<PartNumberMarker>0</PartNumberMarker><NextPartNumberMarker></NextPartNumberMarker>
<MaxParts>1000</MaxParts><IsTruncated>false</IsTruncated></ListPartsResult>"#;
        let r: ListPartsResultXml = parse(none.as_bytes(), "parts").unwrap();
        assert!(r.parts.is_empty());

        let uploads = r#"<ListMultipartUploadsResult><Bucket>b</Bucket><Encoding-Type>url</Encoding-Type>
<KeyMarker/><UploadIdMarker/><NextKeyMarker>k2</NextKeyMarker><NextUploadIdMarker>u2</NextUploadIdMarker>
<MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated><Prefix/>
<Upload><Key>k1</Key><UploadID>u1</UploadID><StorageClass>STANDARD</StorageClass><Initiated>Wed Jan 18 16:04:17 2017</Initiated></Upload>
<Upload><Key>k2</Key><UploadId>u2</UploadId><Initiated>2020-12-10T03:37:30.000Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let r: ListUploadsResultXml = parse(uploads.as_bytes(), "uploads").unwrap();
        assert_eq!(r.uploads.len(), 2);
        assert_eq!(r.uploads[0].upload_id, "u1");
        assert_eq!(r.uploads[1].upload_id, "u2");
        assert!(parse_xml_time(&r.uploads[0].initiated).is_some());
        assert!(parse_xml_time(&r.uploads[1].initiated).is_some());
    }

    #[test]
    fn acl_policy_parses_groups_and_users() {
        let body = r#"<AccessControlPolicy>
  <Owner><ID>qcs::cam::uin/1:uin/1</ID><DisplayName>qcs::cam::uin/1:uin/1</DisplayName></Owner>
  <AccessControlList>
    <Grant>
      <Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="Group"><URI>http://cam.qcloud.com/groups/global/AllUsers</URI></Grantee>
      <Permission>READ</Permission>
    </Grant>
    <Grant>
      <Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser"><ID>qcs::cam::uin/2:uin/2</ID><DisplayName>two</DisplayName></Grantee>
      <Permission>READ_ACP</Permission>
    </Grant>
  </AccessControlList>
</AccessControlPolicy>"#;
        let r: AccessControlPolicyXml = parse(body.as_bytes(), "acl").unwrap();
        assert_eq!(r.owner.id, "qcs::cam::uin/1:uin/1");
        assert_eq!(r.acl.grants.len(), 2);
        assert_eq!(r.acl.grants[0].grantee.kind.as_deref(), Some("Group"));
        assert_eq!(
            r.acl.grants[0].grantee.uri.as_deref(),
            Some("http://cam.qcloud.com/groups/global/AllUsers")
        );
        assert_eq!(
            r.acl.grants[1].grantee.kind.as_deref(),
            Some("CanonicalUser")
        );
        assert_eq!(r.acl.grants[1].permission, "READ_ACP");
    }

    #[test]
    fn writers_escape_text() {
        assert_eq!(
            complete_body(&[(1, "aa"), (2, "\"bb\"")]),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber><ETag>&quot;aa&quot;</ETag></Part>\
<Part><PartNumber>2</PartNumber><ETag>&quot;bb&quot;</ETag></Part></CompleteMultipartUpload>"
        );
        assert_eq!(
            delete_body(&["a&b<c>.txt"], true),
            "<Delete><Quiet>true</Quiet><Object><Key>a&amp;b&lt;c&gt;.txt</Key></Object></Delete>"
        );
    }

    #[test]
    fn times_parse_leniently() {
        assert!(parse_xml_time("2020-12-10T03:37:30.000Z").is_some());
        assert!(parse_xml_time("2020-04-10T18:20:30Z").is_some());
        assert!(parse_xml_time("Wed Jan 18 16:04:17 2017").is_some());
        assert!(parse_xml_time("Wed Jan  8 16:04:17 2017").is_some());
        assert!(parse_xml_time("yesterday").is_none());
    }

    /// Every parser, fed truncations and byte flips of real bodies, answers Ok or Err and
    /// never panics.
    #[test]
    fn parsers_survive_truncated_and_corrupted_bodies() {
        let samples: [&[u8]; 4] = [
            b"<ListBucketResult><EncodingType>url</EncodingType><IsTruncated>true</IsTruncated><Contents><Key>a%20b</Key><Size>5</Size><ETag>&quot;x&quot;</ETag></Contents><CommonPrefixes><Prefix>p/</Prefix></CommonPrefixes></ListBucketResult>",
            b"<Error><Code>NoSuchKey</Code><Message>m</Message><RequestId>r</RequestId></Error>",
            b"<ListPartsResult><Part><PartNumber>1</PartNumber><Size>3</Size></Part><IsTruncated>false</IsTruncated></ListPartsResult>",
            b"<AccessControlPolicy><Owner><ID>o</ID></Owner><AccessControlList><Grant><Grantee xsi:type=\"Group\"><URI>u</URI></Grantee><Permission>READ</Permission></Grant></AccessControlList></AccessControlPolicy>",
        ];
        for sample in samples {
            for cut in 0..=sample.len() {
                let mut body = sample[..cut].to_vec();
                check_all_parsers(&body);
                if let Some(b) = body.get_mut(cut / 2) {
                    *b ^= 0x5a;
                }
                check_all_parsers(&body);
            }
        }
    }

    fn check_all_parsers(body: &[u8]) {
        let _ = parse::<ListBucketResultXml>(body, "t");
        let _ = parse::<ListPartsResultXml>(body, "t");
        let _ = parse::<ListUploadsResultXml>(body, "t");
        let _ = parse::<AccessControlPolicyXml>(body, "t");
        let _ = parse::<CorsConfigurationXml>(body, "t");
        let _ = parse::<DeleteResultXml>(body, "t");
        let _ = parse::<CopyResultXml>(body, "t");
        let _ = parse::<CompleteResultXml>(body, "t");
        let e = service_error(500, body, true);
        assert!(!e.code.is_empty());
        let _ = root_element(body);
    }

    #[test]
    fn url_decoding_keeps_plus() {
        assert_eq!(url_decode("a%20b+c%2B%E4%B8%AD").unwrap(), "a b+c+中");
        assert!(url_decode("%FF").is_err());
    }
}
