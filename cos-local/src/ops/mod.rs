//! Operation dispatch: COS picks the operation by method *and* query/headers (`?uploads`,
//! `?partNumber&uploadId`, `?acl`, `x-cos-copy-source`, ...), so every request comes here and is
//! matched to one handler, one file per API family. Shared helpers live here too.

pub mod acl;
pub mod bucket;
pub mod cors;
pub mod list_v2;
pub mod multipart;
pub mod object;

use std::sync::Arc;

use axum::body::Body;
use cos_protocol::storage_class::STORAGE_CLASSES;
use hyper::{Response, StatusCode};

use crate::auth::Caller;
use crate::error::{CosErr, OpResult};
use crate::model::{ObjectAttrs, ObjectMeta};
use crate::operation::Operation;
use crate::server::Ctx;
use crate::store::Bucket;

/// COS's limit on the UTF-8 length of an object key.
pub use cos_protocol::limits::MAX_KEY_BYTES;
/// The largest single PUT / part (5 GB).
pub const MAX_OBJECT_BYTES: u64 = cos_protocol::limits::MAX_PUT_OBJECT_BYTES;
/// Bound for XML request bodies (a Complete with 10000 parts is well under this).
pub const MAX_XML_BODY: usize = 4 * 1024 * 1024;

/// Stored content headers (besides `x-cos-meta-*`).
pub const CONTENT_HEADERS: [&str; 5] = [
    "content-type",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "expires",
];

/// Bucket names: lowercase letters, digits and `-`, not at either end, at most 63 bytes
/// (`examplebucket-1250000000`). Safe as a directory name by construction.
pub fn valid_bucket_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && !name.starts_with('-')
        && !name.ends_with('-')
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Route a request to the handler of its operation ([`Operation::classify`]).
pub async fn dispatch(ctx: &mut Ctx) -> OpResult<Response<Body>> {
    use Operation as Op;
    let op = ctx.op;
    let Some(bucket_name) = ctx.bucket.clone() else {
        return match op {
            Op::ListBuckets => bucket::list_buckets(ctx),
            _ => Err(CosErr::method_not_allowed()),
        };
    };
    match op {
        Op::Unsupported => return Err(CosErr::not_implemented()),
        Op::PutBucket => return bucket::put_bucket(ctx, &bucket_name),
        _ => {}
    }
    let bucket = ctx
        .app
        .store
        .bucket(&bucket_name)
        .ok_or_else(CosErr::no_such_bucket)?;
    if !ctx.key.is_empty() && ctx.key.len() > MAX_KEY_BYTES {
        return Err(CosErr::key_too_long());
    }
    match op {
        // Bucket level.
        Op::PutBucketAcl => acl::put_bucket_acl(ctx, &bucket).await,
        Op::PutBucketCors => cors::put_cors(ctx, &bucket).await,
        Op::GetBucketAcl => acl::get_bucket_acl(ctx, &bucket),
        Op::GetBucketCors => cors::get_cors(ctx, &bucket),
        Op::GetBucketLocation => bucket::location(ctx, &bucket),
        Op::ListMultipartUploads => multipart::list_uploads(ctx, &bucket),
        Op::GetBucket if ctx.query.get("list-type") == Some("2") => {
            list_v2::list_objects_v2(ctx, &bucket)
        }
        Op::GetBucket => bucket::list_objects(ctx, &bucket),
        Op::HeadBucket => bucket::head_bucket(ctx, &bucket),
        Op::DeleteBucketCors => cors::delete_cors(ctx, &bucket),
        Op::DeleteBucket => bucket::delete_bucket(ctx, &bucket),
        Op::DeleteMultipleObjects => bucket::delete_multiple(ctx, &bucket).await,
        Op::OptionsObject => cors::preflight(ctx, &bucket),
        // Object level.
        Op::PutObjectAcl => acl::put_object_acl(ctx, &bucket).await,
        Op::UploadPartCopy => multipart::upload_part_copy(ctx, &bucket).await,
        Op::UploadPart => multipart::upload_part(ctx, &bucket).await,
        Op::PutObjectCopy => object::copy_object(ctx, &bucket).await,
        Op::PutObject => object::put_object(ctx, &bucket).await,
        Op::GetObjectAcl => acl::get_object_acl(ctx, &bucket),
        Op::ListParts => multipart::list_parts(ctx, &bucket),
        Op::GetObject => object::get_object(ctx, &bucket, false),
        Op::HeadObject => object::get_object(ctx, &bucket, true),
        Op::AbortMultipartUpload => multipart::abort(ctx, &bucket),
        Op::DeleteObject => object::delete_object(ctx, &bucket),
        Op::InitiateMultipartUpload => multipart::initiate(ctx, &bucket),
        Op::CompleteMultipartUpload => multipart::complete(ctx, &bucket).await,
        Op::ListBuckets
        | Op::PutBucket
        | Op::PostObject
        | Op::Admin
        | Op::Unsupported
        | Op::Unknown => Err(CosErr::method_not_allowed()),
    }
}

// ---- access control ----

/// What a request wants to do, for the anonymous-access rules.
pub enum Access<'a> {
    /// List the bucket / HEAD it.
    ReadBucket,
    /// Create, overwrite or delete objects.
    Write,
    /// Read this object.
    ReadObject(&'a ObjectMeta),
    /// Bucket administration, ACL and CORS changes: signed requests only.
    Owner,
}

/// Any known credential owns everything. An unsigned request may read a public-read object
/// (or, if the object's ACL is `default`, one in a public-read bucket), list a public-read
/// bucket, and write to a public-read-write bucket.
pub fn authorize(ctx: &Ctx, bucket: &Arc<Bucket>, access: Access<'_>) -> OpResult<()> {
    if let Caller::Signed(_) = ctx.caller {
        return Ok(());
    }
    let bucket_acl = bucket.config().acl;
    let allowed = match access {
        Access::ReadBucket => bucket_acl.public_read(),
        Access::Write => bucket_acl.public_write(),
        Access::ReadObject(meta) => {
            if meta.acl.is_default() {
                bucket_acl.public_read()
            } else {
                meta.acl.public_read()
            }
        }
        Access::Owner => false,
    };
    if allowed {
        Ok(())
    } else {
        Err(CosErr::access_denied("Access Denied."))
    }
}

// ---- shared helpers ----

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut r = Response::new(Body::empty());
    *r.status_mut() = status;
    r
}

pub fn xml_response(body: String) -> Response<Body> {
    let mut r = Response::new(Body::from(body.clone()));
    let h = r.headers_mut();
    h.insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/xml"),
    );
    h.insert(hyper::header::CONTENT_LENGTH, body.len().into());
    r
}

/// Set a header from text that might not be a valid header value (skipped then).
pub fn set_header(resp: &mut Response<Body>, name: &str, value: &str) {
    if let (Ok(n), Ok(v)) = (
        hyper::header::HeaderName::from_bytes(name.as_bytes()),
        hyper::header::HeaderValue::from_str(value),
    ) {
        resp.headers_mut().insert(n, v);
    }
}

/// Total size of the `x-cos-meta-*` names and values one object may carry.
pub use cos_protocol::limits::MAX_USER_METADATA;

/// The object attributes a PUT / Initiate / Replaced copy asks for.
pub fn attrs_from_request(ctx: &Ctx) -> OpResult<ObjectAttrs> {
    let mut headers = Vec::new();
    for (name, value) in ctx.headers.iter() {
        let name = name.as_str();
        if CONTENT_HEADERS.contains(&name) || name.starts_with("x-cos-meta-") {
            let value = value
                .to_str()
                .map_err(|_| CosErr::invalid_argument(format!("header {name} is not ASCII")))?;
            headers.push((name.to_string(), value.to_string()));
        }
    }
    // COS caps user metadata at 2 KB, counted here as names (without the prefix) plus values.
    let user_meta = cos_protocol::limits::user_metadata_size(
        headers
            .iter()
            .filter(|(n, _)| n.starts_with("x-cos-meta-"))
            .map(|(n, v)| (n.as_str(), v.as_str())),
    );
    if user_meta > MAX_USER_METADATA {
        return Err(CosErr::new(
            StatusCode::BAD_REQUEST,
            "MetadataTooLarge",
            format!(
                "Your metadata headers are {user_meta} bytes; the limit is {MAX_USER_METADATA}."
            ),
        ));
    }
    Ok(ObjectAttrs {
        headers,
        storage_class: storage_class_from_request(ctx)?,
        acl: acl::acl_from_headers(ctx, true)?
            .unwrap_or_else(|| crate::model::Acl::canned("default")),
    })
}

pub fn storage_class_from_request(ctx: &Ctx) -> OpResult<String> {
    match ctx.header("x-cos-storage-class") {
        None => Ok("STANDARD".to_string()),
        Some(c) => {
            let upper = c.trim().to_ascii_uppercase();
            if STORAGE_CLASSES.contains(&upper.as_str()) {
                Ok(upper)
            } else {
                Err(CosErr::invalid_argument(format!(
                    "The storage class {c} is not supported."
                )))
            }
        }
    }
}

/// The request's `Content-MD5` digest: None without the header, InvalidDigest when it is not
/// base64 of 16 bytes.
fn given_content_md5(ctx: &Ctx) -> OpResult<Option<Vec<u8>>> {
    use base64::Engine;
    let Some(given) = ctx.headers.get("content-md5") else {
        return Ok(None);
    };
    base64::engine::general_purpose::STANDARD
        .decode(given.as_bytes())
        .ok()
        .filter(|d| d.len() == 16)
        .map(Some)
        .ok_or_else(|| {
            CosErr::new(
                StatusCode::BAD_REQUEST,
                "InvalidDigest",
                "The Content-MD5 you specified is not valid.",
            )
        })
}

/// Check an optional `Content-MD5` against the received body.
pub fn check_content_md5(ctx: &Ctx, actual: &[u8; 16]) -> OpResult<()> {
    match given_content_md5(ctx)? {
        Some(given) if given.as_slice() != actual => Err(CosErr::new(
            StatusCode::BAD_REQUEST,
            "BadDigest",
            "The Content-MD5 you specified did not match what we received.",
        )),
        _ => Ok(()),
    }
}

/// A Content-MD5 header that cannot be right is refused before the body is read.
pub fn precheck_content_md5(ctx: &Ctx) -> OpResult<()> {
    given_content_md5(ctx).map(|_| ())
}

/// Receive the request body (an object or a part) into a temp file, at most
/// [`MAX_OBJECT_BYTES`], and check it against the request's `Content-MD5`.
pub async fn receive_body(ctx: &mut Ctx) -> OpResult<crate::store::TempData> {
    let body = ctx.take_body();
    let temp = ctx
        .app
        .store
        .receive(body, MAX_OBJECT_BYTES)
        .await
        .map_err(receive_error)?;
    check_content_md5(ctx, &temp.md5)?;
    Ok(temp)
}

/// Map a body-receiving failure to its COS error.
fn receive_error(e: crate::store::ReceiveError) -> CosErr {
    match e {
        crate::store::ReceiveError::Body(_) => CosErr::new(
            StatusCode::BAD_REQUEST,
            "IncompleteBody",
            "You did not provide the number of bytes specified by the Content-Length header.",
        ),
        crate::store::ReceiveError::TooLarge => CosErr::new(
            StatusCode::BAD_REQUEST,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed object size.",
        ),
        crate::store::ReceiveError::Io(e) => e.into(),
    }
}

/// RFC 1123 date for headers.
pub fn http_date(ms: i64) -> String {
    let secs = (ms.max(0) / 1000) as u64;
    httpdate::fmt_http_date(std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs))
}

/// ISO-8601 with milliseconds, as in listings: `2020-12-10T03:37:30.000Z`.
pub fn iso_date(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000)
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// ISO-8601 without fraction, as in CopyObjectResult: `2020-04-10T18:20:30Z`.
pub fn iso_date_secs(ms: i64) -> String {
    time::OffsetDateTime::from_unix_timestamp(ms.div_euclid(1000))
        .ok()
        .and_then(|t| {
            t.format(time::macros::format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second]Z"
            ))
            .ok()
        })
        .unwrap_or_default()
}

/// The owner id shown in listings and ACLs: the appid suffix of the bucket name.
pub fn owner_uin(bucket: &str) -> String {
    match bucket.rsplit_once('-') {
        Some((_, appid)) if !appid.is_empty() && appid.bytes().all(|b| b.is_ascii_digit()) => {
            appid.to_string()
        }
        _ => "1250000000".to_string(),
    }
}

/// Percent-encode a key for `encoding-type=url` (`/` literal, space `%20`).
pub fn url_encode_key(key: &str) -> String {
    use percent_encoding::{utf8_percent_encode, NON_ALPHANUMERIC};
    const SET: &percent_encoding::AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~')
        .remove(b'/');
    utf8_percent_encode(key, SET).to_string()
}

/// Strip the quotes around an ETag from a header or XML.
pub fn unquote(etag: &str) -> &str {
    etag.trim().trim_matches('"')
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names() {
        assert!(valid_bucket_name("examplebucket-1250000000"));
        assert!(!valid_bucket_name("Example"));
        assert!(!valid_bucket_name("../x"));
        assert!(!valid_bucket_name("-a"));
        assert!(!valid_bucket_name(""));
    }

    #[test]
    fn dates() {
        assert_eq!(iso_date(1_607_571_450_000), "2020-12-10T03:37:30.000Z");
        assert_eq!(iso_date_secs(1_586_542_830_123), "2020-04-10T18:20:30Z");
        assert_eq!(
            http_date(1_586_511_305_000),
            "Fri, 10 Apr 2020 09:35:05 GMT"
        );
    }

    #[test]
    fn url_encoding_of_keys() {
        assert_eq!(
            url_encode_key("照片/a b+c.jpg"),
            "%E7%85%A7%E7%89%87/a%20b%2Bc.jpg"
        );
    }
}
