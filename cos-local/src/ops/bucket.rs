//! Bucket operations: PUT/HEAD/DELETE Bucket, GET Bucket (List Objects v1), location,
//! DELETE Multiple Objects, and GET Service (list buckets).

use std::sync::Arc;

use axum::body::Body;
use hyper::{Response, StatusCode};

use super::{
    authorize, empty, iso_date, owner_uin, set_header, url_encode_key, valid_bucket_name,
    xml_response, Access, MAX_KEY_BYTES, MAX_XML_BODY,
};
use crate::auth::Caller;
use crate::error::{CosErr, OpResult};
use crate::model::Acl;
use crate::server::Ctx;
use crate::store::Bucket;
use crate::xml::{self, Xml};

/// ListObjects returns at most 1000 entries per page (and by default).
const MAX_LIST_KEYS: usize = cos_protocol::limits::MAX_LIST_KEYS as usize;
/// DELETE Multiple Objects takes at most 1000 keys.
const MAX_DELETE_KEYS: usize = cos_protocol::limits::MAX_DELETE_KEYS;

pub fn put_bucket(ctx: &mut Ctx, name: &str) -> OpResult<Response<Body>> {
    if !matches!(ctx.caller, Caller::Signed(_)) {
        return Err(CosErr::access_denied("Access Denied."));
    }
    if !valid_bucket_name(name) {
        return Err(CosErr::new(
            StatusCode::BAD_REQUEST,
            "InvalidBucketName",
            "The specified bucket name is not valid.",
        ));
    }
    let acl = super::acl::acl_from_headers(ctx, false)?.unwrap_or_else(|| Acl::canned("private"));
    if !ctx.app.store.create_bucket(name, acl)? {
        // COS answers BucketAlreadyExists even to the bucket's owner; so do we.
        return Err(CosErr::new(
            StatusCode::CONFLICT,
            "BucketAlreadyExists",
            "The requested bucket name is not available.",
        ));
    }
    Ok(empty(StatusCode::OK))
}

pub fn head_bucket(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::ReadBucket)?;
    let mut resp = empty(StatusCode::OK);
    set_header(&mut resp, "x-cos-bucket-region", &ctx.app.region);
    Ok(resp)
}

pub fn delete_bucket(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Owner)?;
    if !ctx.app.store.delete_bucket(&bucket.name)? {
        return Err(CosErr::new(
            StatusCode::CONFLICT,
            "BucketNotEmpty",
            "The bucket you tried to delete is not empty.",
        ));
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

pub fn location(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Owner)?;
    let mut x = Xml::new();
    x.leaf("LocationConstraint", &ctx.app.region);
    Ok(xml_response(x.finish()))
}

pub fn list_buckets(ctx: &mut Ctx) -> OpResult<Response<Body>> {
    if !matches!(ctx.caller, Caller::Signed(_)) {
        return Err(CosErr::access_denied("Access Denied."));
    }
    let mut x = Xml::new();
    x.open("ListAllMyBucketsResult")
        .open("Owner")
        .leaf("ID", "qcs::cam::uin/1250000000:uin/1250000000")
        .leaf("DisplayName", "1250000000")
        .close("Owner")
        .open("Buckets");
    for (name, created) in ctx.app.store.bucket_names() {
        x.open("Bucket")
            .leaf("Name", &name)
            .leaf("Location", &ctx.app.region)
            .leaf("CreationDate", iso_date(created))
            .close("Bucket");
    }
    x.close("Buckets").close("ListAllMyBucketsResult");
    Ok(xml_response(x.finish()))
}

/// One entry of a listing page.
pub(super) enum Entry {
    Object(crate::model::ObjectMeta),
    CommonPrefix(String),
}

/// One page of a listing (V1 and V2 alike): objects under `prefix` after `marker`, keys
/// sharing a `delimiter`-ended prefix rolled up into one common prefix, at most `max_keys`
/// entries; true when more follow.
pub(super) fn scan_page(
    bucket: &Bucket,
    prefix: &str,
    delimiter: &str,
    marker: &str,
    max_keys: usize,
) -> (Vec<Entry>, bool) {
    let mut entries: Vec<Entry> = Vec::new();
    let mut truncated = false;
    let after = (!marker.is_empty()).then_some(marker);
    bucket.scan(prefix, after, |meta| {
        let common = if delimiter.is_empty() {
            None
        } else {
            meta.key[prefix.len()..]
                .find(delimiter)
                .map(|i| meta.key[..prefix.len() + i + delimiter.len()].to_string())
        };
        if let Some(cp) = common {
            // Keys under a prefix already returned (or under the marker itself) are skipped.
            let seen = matches!(entries.last(), Some(Entry::CommonPrefix(last)) if *last == cp);
            if seen || cp.as_str() <= marker {
                return true;
            }
            if entries.len() >= max_keys {
                truncated = true;
                return false;
            }
            entries.push(Entry::CommonPrefix(cp));
        } else {
            if entries.len() >= max_keys {
                truncated = true;
                return false;
            }
            entries.push(Entry::Object(meta.clone()));
        }
        true
    });
    (entries, truncated)
}

pub fn list_objects(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::ReadBucket)?;
    let q = &ctx.query;
    let prefix = q.get("prefix").unwrap_or("").to_string();
    let delimiter = q.get("delimiter").unwrap_or("").to_string();
    let marker = q.get("marker").unwrap_or("").to_string();
    let max_keys = match q.get("max-keys") {
        None | Some("") => MAX_LIST_KEYS,
        Some(v) => v
            .parse::<usize>()
            .map_err(|_| CosErr::invalid_argument("max-keys must be an integer."))?
            .min(MAX_LIST_KEYS),
    };
    let url = match q.get("encoding-type") {
        None | Some("") => false,
        Some("url") => true,
        Some(_) => return Err(CosErr::invalid_argument("encoding-type must be url.")),
    };

    let (entries, truncated) = scan_page(bucket, &prefix, &delimiter, &marker, max_keys);

    let enc = |s: &str| {
        if url {
            url_encode_key(s)
        } else {
            s.to_string()
        }
    };
    let owner = owner_uin(&bucket.name);
    let mut x = Xml::new();
    x.open("ListBucketResult").leaf("Name", &bucket.name);
    if url {
        x.leaf("EncodingType", "url");
    }
    x.leaf("Prefix", enc(&prefix))
        .leaf("Marker", enc(&marker))
        .leaf("MaxKeys", max_keys.to_string());
    if !delimiter.is_empty() {
        x.leaf("Delimiter", enc(&delimiter));
    }
    x.leaf("IsTruncated", truncated.to_string());
    if truncated {
        let next = match entries.last() {
            Some(Entry::Object(m)) => m.key.clone(),
            Some(Entry::CommonPrefix(p)) => p.clone(),
            None => String::new(),
        };
        x.leaf("NextMarker", enc(&next));
    }
    for e in &entries {
        if let Entry::CommonPrefix(p) = e {
            x.open("CommonPrefixes")
                .leaf("Prefix", enc(p))
                .close("CommonPrefixes");
        }
    }
    for e in &entries {
        if let Entry::Object(m) = e {
            x.open("Contents")
                .leaf("Key", enc(&m.key))
                .leaf("LastModified", iso_date(m.last_modified_ms))
                .leaf("ETag", format!("\"{}\"", m.etag))
                .leaf("Size", m.size.to_string())
                .open("Owner")
                .leaf("ID", &owner)
                .leaf("DisplayName", &owner)
                .close("Owner")
                .leaf("StorageClass", &m.storage_class)
                .close("Contents");
        }
    }
    x.close("ListBucketResult");
    let mut resp = xml_response(x.finish());
    set_header(&mut resp, "x-cos-bucket-region", &ctx.app.region);
    Ok(resp)
}

pub async fn delete_multiple(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    super::precheck_content_md5(ctx)?;
    let body = ctx.small_body(MAX_XML_BODY).await?;
    {
        use md5::{Digest, Md5};
        let digest: [u8; 16] = Md5::digest(body.as_bytes()).into();
        super::check_content_md5(ctx, &digest)?;
    }
    let request: xml::DeleteRequest = xml::parse(&body)?;
    if request.objects.len() > MAX_DELETE_KEYS {
        return Err(CosErr::malformed_xml(
            "A DELETE Multiple Objects request may name at most 1000 keys.",
        ));
    }
    let quiet = request
        .quiet
        .as_deref()
        .is_some_and(|q| q.trim().eq_ignore_ascii_case("true"));
    let mut x = Xml::new();
    x.open("DeleteResult");
    for obj in &request.objects {
        let failure = if obj.key.len() > MAX_KEY_BYTES {
            Some(("KeyTooLong".to_string(), "The key is too long.".to_string()))
        } else {
            match bucket.delete(&obj.key) {
                Ok(_) => None,
                Err(e) => Some(("InternalError".to_string(), e.to_string())),
            }
        };
        match failure {
            None if quiet => {}
            None => {
                x.open("Deleted").leaf("Key", &obj.key).close("Deleted");
            }
            Some((code, message)) => {
                x.open("Error")
                    .leaf("Key", &obj.key)
                    .leaf("Code", code)
                    .leaf("Message", message)
                    .close("Error");
            }
        }
    }
    x.close("DeleteResult");
    Ok(xml_response(x.finish()))
}
