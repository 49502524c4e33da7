//! Multipart upload: initiate, upload part (and part copy), complete, abort, list parts, list
//! uploads — with COS's limits (cos-protocol.md §6).

use std::sync::Arc;

use axum::body::Body;
use hyper::{Response, StatusCode};

use super::{
    attrs_from_request, authorize, empty, iso_date, owner_uin, precheck_content_md5, receive_body,
    set_header, unquote, url_encode_key, xml_response, Access, MAX_XML_BODY,
};
use crate::error::{CosErr, OpResult};
use crate::server::Ctx;
use crate::store::{combined_crc, multipart_etag, Bucket};
use crate::xml::{self, Xml};

/// Part numbers run 1..=10000.
const MAX_PART_NUMBER: u32 = cos_protocol::limits::MAX_PARTS;
/// Every part but the last must be at least 1 MB (1048576 bytes).
const MIN_PART_SIZE: u64 = cos_protocol::limits::MIN_PART_SIZE;

fn upload_id(ctx: &Ctx) -> String {
    ctx.query.get("uploadId").unwrap_or("").to_string()
}

fn part_number(ctx: &Ctx) -> OpResult<u32> {
    ctx.query
        .get("partNumber")
        .and_then(|n| n.parse::<u32>().ok())
        .filter(|n| (1..=MAX_PART_NUMBER).contains(n))
        .ok_or_else(|| {
            CosErr::invalid_argument("Part number must be an integer between 1 and 10000.")
        })
}

pub fn initiate(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    let attrs = attrs_from_request(ctx)?;
    let upload = bucket.create_upload(&ctx.key, attrs)?;
    let mut x = Xml::new();
    x.open("InitiateMultipartUploadResult")
        .leaf("Bucket", &bucket.name)
        .leaf("Key", &upload.key)
        .leaf("UploadId", &upload.upload_id)
        .close("InitiateMultipartUploadResult");
    Ok(xml_response(x.finish()))
}

pub async fn upload_part(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    let number = part_number(ctx)?;
    let id = upload_id(ctx);
    bucket
        .upload(&ctx.key, &id)
        .ok_or_else(CosErr::no_such_upload)?;
    precheck_content_md5(ctx)?;
    let temp = receive_body(ctx).await?;
    let part = bucket
        .put_part(&id, number, temp)?
        .ok_or_else(CosErr::no_such_upload)?;
    let mut resp = empty(StatusCode::OK);
    set_header(&mut resp, "etag", &format!("\"{}\"", part.etag));
    set_header(&mut resp, "x-cos-hash-crc64ecma", &part.crc64.to_string());
    Ok(resp)
}

pub async fn upload_part_copy(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    let number = part_number(ctx)?;
    let id = upload_id(ctx);
    bucket
        .upload(&ctx.key, &id)
        .ok_or_else(CosErr::no_such_upload)?;
    let (src_bucket, src_meta) = super::object::copy_source(ctx)?;
    let (offset, len) = match ctx.header("x-cos-copy-source-range") {
        None => (0, src_meta.size),
        Some(r) => {
            let (first, last) = r
                .trim()
                .strip_prefix("bytes=")
                .and_then(|s| s.split_once('-'))
                .and_then(|(a, b)| {
                    Some((a.trim().parse::<u64>().ok()?, b.trim().parse::<u64>().ok()?))
                })
                .filter(|(a, b)| a <= b)
                .ok_or_else(|| {
                    CosErr::invalid_argument("x-cos-copy-source-range must be bytes=first-last.")
                })?;
            if last >= src_meta.size {
                return Err(CosErr::invalid_range());
            }
            (first, last - first + 1)
        }
    };
    let temp = ctx
        .app
        .store
        .copy_range_to_temp(src_bucket.data_path(&src_meta), offset, len)
        .await?;
    let part = bucket
        .put_part(&id, number, temp)?
        .ok_or_else(CosErr::no_such_upload)?;
    let mut x = Xml::new();
    x.open("CopyPartResult")
        .leaf("ETag", format!("\"{}\"", part.etag))
        .leaf("LastModified", iso_date(part.last_modified_ms))
        .close("CopyPartResult");
    let mut resp = xml_response(x.finish());
    set_header(&mut resp, "x-cos-hash-crc64ecma", &part.crc64.to_string());
    Ok(resp)
}

pub async fn complete(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    let id = upload_id(ctx);
    let upload = bucket
        .upload(&ctx.key, &id)
        .ok_or_else(CosErr::no_such_upload)?;
    let body = ctx.small_body(MAX_XML_BODY).await?;
    let request: xml::CompleteMultipartUpload = xml::parse(&body)?;
    if request.parts.is_empty() {
        return Err(CosErr::malformed_xml(
            "The XML you provided did not list any part.",
        ));
    }
    if request.parts.windows(2).any(|w| w[0].number >= w[1].number) {
        return Err(CosErr::new(
            StatusCode::BAD_REQUEST,
            "InvalidPartOrder",
            "The list of parts was not in ascending order.",
        ));
    }
    // COS wants the listed parts to be continuous from 1 (stricter than S3, which allows gaps).
    if let Some((i, p)) = request
        .parts
        .iter()
        .enumerate()
        .find(|(i, p)| p.number as usize != i + 1)
    {
        return Err(CosErr::new(
            StatusCode::BAD_REQUEST,
            "InvalidPart",
            format!(
                "Part numbers must be continuous from 1: part {} is listed where part {} belongs.",
                p.number,
                i + 1
            ),
        ));
    }
    let stored = bucket.parts(&id)?;
    let invalid_part = |n: u32| {
        CosErr::new(
            StatusCode::BAD_REQUEST,
            "InvalidPart",
            format!("Part {n} could not be found or its ETag does not match."),
        )
    };
    let mut chosen = Vec::with_capacity(request.parts.len());
    for p in &request.parts {
        let part = stored
            .get(&p.number)
            .ok_or_else(|| invalid_part(p.number))?;
        if !unquote(&p.etag).eq_ignore_ascii_case(&part.etag) {
            return Err(invalid_part(p.number));
        }
        chosen.push(part.clone());
    }
    if let Some(small) = chosen[..chosen.len() - 1]
        .iter()
        .find(|p| p.size < MIN_PART_SIZE)
    {
        return Err(CosErr::new(
            StatusCode::BAD_REQUEST,
            "EntityTooSmall",
            format!(
                "Part {} is {} bytes; every part but the last must be at least 1 MB.",
                small.number, small.size
            ),
        ));
    }
    let sources = chosen.iter().map(|p| bucket.part_path(&id, p)).collect();
    let temp = ctx.app.store.concat_to_temp(sources).await?;
    let etags: Vec<&str> = chosen.iter().map(|p| p.etag.as_str()).collect();
    let etag = multipart_etag(&etags);
    let crc = combined_crc(&chosen.iter().map(|p| (p.crc64, p.size)).collect::<Vec<_>>());
    let meta = bucket.commit(&ctx.key, temp, etag, Some(crc), upload.attrs.clone())?;
    bucket.remove_upload(&id)?;
    let mut x = Xml::new();
    x.open_with(
        "CompleteMultipartUploadResult",
        "xmlns=\"http://www.qcloud.com/document/product/436/7751\"",
    )
    .leaf(
        "Location",
        format!("http://{}/{}", ctx.host, url_encode_key(&meta.key)),
    )
    .leaf("Bucket", &bucket.name)
    .leaf("Key", &meta.key)
    .leaf("ETag", format!("\"{}\"", meta.etag))
    .close("CompleteMultipartUploadResult");
    let mut resp = xml_response(x.finish());
    set_header(&mut resp, "x-cos-hash-crc64ecma", &crc.to_string());
    Ok(resp)
}

pub fn abort(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    let id = upload_id(ctx);
    bucket
        .upload(&ctx.key, &id)
        .ok_or_else(CosErr::no_such_upload)?;
    if !bucket.remove_upload(&id)? {
        return Err(CosErr::no_such_upload());
    }
    Ok(empty(StatusCode::NO_CONTENT))
}

/// A page size (`max-parts`, `max-uploads`): absent means the most a page holds.
fn bounded_param(ctx: &Ctx, name: &str) -> OpResult<usize> {
    const MAX: usize = cos_protocol::limits::MAX_LIST_UPLOADS as usize;
    match ctx.query.get(name) {
        None | Some("") => Ok(MAX),
        Some(v) => v
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX).contains(n))
            .ok_or_else(|| {
                CosErr::invalid_argument(format!("{name} must be between 1 and {MAX}."))
            }),
    }
}

fn encoding_url(ctx: &Ctx) -> OpResult<bool> {
    match ctx.query.get("encoding-type") {
        None | Some("") => Ok(false),
        Some("url") => Ok(true),
        Some(_) => Err(CosErr::invalid_argument("encoding-type must be url.")),
    }
}

pub fn list_parts(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    let id = upload_id(ctx);
    let upload = bucket
        .upload(&ctx.key, &id)
        .ok_or_else(CosErr::no_such_upload)?;
    let max = bounded_param(ctx, "max-parts")?;
    let marker: u32 = ctx
        .query
        .get("part-number-marker")
        .and_then(|m| m.parse().ok())
        .unwrap_or(0);
    let url = encoding_url(ctx)?;
    let parts = bucket.parts(&id)?;
    let page: Vec<_> = parts
        .range(marker.saturating_add(1)..)
        .take(max + 1)
        .collect();
    let truncated = page.len() > max;
    let page = &page[..page.len().min(max)];
    let owner = owner_uin(&bucket.name);
    let principal = format!("qcs::cam::uin/{owner}:uin/{owner}");
    let mut x = Xml::new();
    x.open("ListPartsResult").leaf("Bucket", &bucket.name);
    if url {
        x.leaf("EncodingType", "url");
    }
    x.leaf(
        "Key",
        if url {
            url_encode_key(&upload.key)
        } else {
            upload.key.clone()
        },
    )
    .leaf("UploadId", &id);
    initiator_and_owner(&mut x, &principal)
        .leaf("PartNumberMarker", marker.to_string())
        .leaf(
            "NextPartNumberMarker",
            page.last().map(|(n, _)| n.to_string()).unwrap_or_default(),
        )
        .leaf("StorageClass", &upload.attrs.storage_class)
        .leaf("MaxParts", max.to_string())
        .leaf("IsTruncated", truncated.to_string());
    for (_, p) in page {
        x.open("Part")
            .leaf("PartNumber", p.number.to_string())
            .leaf("LastModified", iso_date(p.last_modified_ms))
            .leaf("ETag", format!("\"{}\"", p.etag))
            .leaf("Size", p.size.to_string())
            .close("Part");
    }
    x.close("ListPartsResult");
    Ok(xml_response(x.finish()))
}

pub fn list_uploads(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    let prefix = ctx.query.get("prefix").unwrap_or("").to_string();
    let delimiter = ctx.query.get("delimiter").unwrap_or("").to_string();
    let key_marker = ctx.query.get("key-marker").unwrap_or("").to_string();
    let id_marker = ctx.query.get("upload-id-marker").unwrap_or("").to_string();
    let max = bounded_param(ctx, "max-uploads")?;
    let url = encoding_url(ctx)?;
    let enc = |s: &str| {
        if url {
            url_encode_key(s)
        } else {
            s.to_string()
        }
    };

    let mut uploads = bucket.uploads();
    uploads.sort_by(|a, b| {
        (&a.key, a.initiated_ms, &a.upload_id).cmp(&(&b.key, b.initiated_ms, &b.upload_id))
    });
    let mut entries: Vec<Result<&crate::model::UploadMeta, String>> = Vec::new();
    let mut truncated = false;
    for u in &uploads {
        if !u.key.starts_with(&prefix) {
            continue;
        }
        if !key_marker.is_empty() {
            let after = u.key.as_str() > key_marker.as_str()
                || (u.key == key_marker
                    && !id_marker.is_empty()
                    && u.upload_id.as_str() > id_marker.as_str());
            if !after {
                continue;
            }
        }
        let common = if delimiter.is_empty() {
            None
        } else {
            u.key[prefix.len()..]
                .find(&delimiter)
                .map(|i| u.key[..prefix.len() + i + delimiter.len()].to_string())
        };
        if let Some(cp) = common {
            if entries.iter().any(|e| e.as_ref().err() == Some(&cp)) {
                continue;
            }
            if entries.len() == max {
                truncated = true;
                break;
            }
            entries.push(Err(cp));
        } else {
            if entries.len() == max {
                truncated = true;
                break;
            }
            entries.push(Ok(u));
        }
    }
    let (next_key, next_id) = match entries.last() {
        Some(Ok(u)) if truncated => (u.key.clone(), u.upload_id.clone()),
        Some(Err(cp)) if truncated => (cp.clone(), String::new()),
        _ => (String::new(), String::new()),
    };
    let owner = owner_uin(&bucket.name);
    let principal = format!("qcs::cam::uin/{owner}:uin/{owner}");
    let mut x = Xml::new();
    x.open("ListMultipartUploadsResult")
        .leaf("Bucket", &bucket.name);
    if url {
        x.leaf("EncodingType", "url");
    }
    x.leaf("KeyMarker", enc(&key_marker))
        .leaf("UploadIdMarker", &id_marker)
        .leaf("NextKeyMarker", enc(&next_key))
        .leaf("NextUploadIdMarker", &next_id)
        .leaf("MaxUploads", max.to_string())
        .leaf("IsTruncated", truncated.to_string())
        .leaf("Prefix", enc(&prefix));
    if !delimiter.is_empty() {
        x.leaf("Delimiter", enc(&delimiter));
    }
    for e in &entries {
        match e {
            Ok(u) => {
                x.open("Upload")
                    .leaf("Key", enc(&u.key))
                    .leaf("UploadId", &u.upload_id)
                    .leaf("StorageClass", &u.attrs.storage_class);
                initiator_and_owner(&mut x, &principal)
                    .leaf("Initiated", iso_date(u.initiated_ms))
                    .close("Upload");
            }
            Err(cp) => {
                x.open("CommonPrefixes")
                    .leaf("Prefix", enc(cp))
                    .close("CommonPrefixes");
            }
        }
    }
    x.close("ListMultipartUploadsResult");
    Ok(xml_response(x.finish()))
}

/// `<Initiator>` and `<Owner>` of an upload: in cos-local both are the bucket owner's account.
fn initiator_and_owner<'x>(x: &'x mut Xml, principal: &str) -> &'x mut Xml {
    for element in ["Initiator", "Owner"] {
        x.open(element)
            .leaf("ID", principal)
            .leaf("DisplayName", principal)
            .close(element);
    }
    x
}
