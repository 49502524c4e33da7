//! Object operations: PUT, GET/HEAD (ranges, conditionals), DELETE, PUT Copy.

use std::sync::Arc;

use axum::body::Body;
use hyper::{Response, StatusCode};

use super::{
    attrs_from_request, authorize, empty, http_date, iso_date_secs, precheck_content_md5,
    receive_body, set_header, storage_class_from_request, unquote, Access,
};
use crate::error::{CosErr, OpResult};
use crate::model::{Acl, ObjectAttrs, ObjectMeta};
use crate::server::Ctx;
use crate::store::Bucket;
use crate::xml::Xml;

/// Read buffer for object bodies: large enough that a GET streams at memory speed.
const READ_CHUNK: usize = 1024 * 1024;

/// Query params that override response headers on GET (signed requests only).
const RESPONSE_OVERRIDES: [(&str, &str); 6] = [
    ("response-cache-control", "cache-control"),
    ("response-content-disposition", "content-disposition"),
    ("response-content-encoding", "content-encoding"),
    ("response-content-language", "content-language"),
    ("response-content-type", "content-type"),
    ("response-expires", "expires"),
];

pub async fn put_object(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    precheck_content_md5(ctx)?;
    let attrs = attrs_from_request(ctx)?;
    let temp = receive_body(ctx).await?;
    let etag = temp.md5_hex();
    let crc = temp.crc64;
    let meta = bucket.commit(&ctx.key, temp, etag, Some(crc), attrs)?;
    let mut resp = empty(StatusCode::OK);
    set_header(&mut resp, "etag", &format!("\"{}\"", meta.etag));
    set_header(&mut resp, "x-cos-hash-crc64ecma", &crc.to_string());
    Ok(resp)
}

pub fn delete_object(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    bucket.delete(&ctx.key)?;
    Ok(empty(StatusCode::NO_CONTENT))
}

/// The outcome of the If-* headers.
enum Conditional {
    Proceed,
    NotModified,
}

/// Evaluate conditionals in RFC 7232 order; `prefix` is `""` or `x-cos-copy-source-`.
fn check_conditionals(ctx: &Ctx, meta: &ObjectMeta, prefix: &str) -> OpResult<Conditional> {
    let header = |name: &str| ctx.header(&format!("{prefix}{name}"));
    let modified_secs = meta.last_modified_ms.div_euclid(1000);
    let parse_date = |v: &str| {
        httpdate::parse_http_date(v)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs() as i64)
    };
    let etag_matches = |list: &str| {
        list.split(',')
            .map(|e| unquote(e.trim().trim_start_matches("W/")))
            .any(|e| e == "*" || e.eq_ignore_ascii_case(&meta.etag))
    };
    if let Some(v) = header("if-match") {
        if !etag_matches(v) {
            return Err(CosErr::precondition_failed());
        }
    } else if let Some(t) = header("if-unmodified-since").and_then(parse_date) {
        if modified_secs > t {
            return Err(CosErr::precondition_failed());
        }
    }
    if let Some(v) = header("if-none-match") {
        if etag_matches(v) {
            return Ok(Conditional::NotModified);
        }
    } else if let Some(t) = header("if-modified-since").and_then(parse_date) {
        if modified_secs <= t {
            return Ok(Conditional::NotModified);
        }
    }
    Ok(Conditional::Proceed)
}

/// A single byte range `bytes=a-b`, `bytes=a-` or `bytes=-n`, resolved against `size`.
/// Ok(None) = no usable Range header (serve everything), Err = unsatisfiable.
fn parse_range(value: &str, size: u64) -> OpResult<Option<(u64, u64)>> {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None); // multi-range is not supported by COS: whole object
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        let Ok(n) = last.parse::<u64>() else {
            return Ok(None);
        };
        if n == 0 || size == 0 {
            return Err(CosErr::invalid_range());
        }
        return Ok(Some((size.saturating_sub(n), size - 1)));
    }
    let Ok(first) = first.parse::<u64>() else {
        return Ok(None);
    };
    if first >= size {
        return Err(CosErr::invalid_range());
    }
    let last = if last.is_empty() {
        size - 1
    } else {
        match last.parse::<u64>() {
            Ok(l) if l >= first => l.min(size - 1),
            _ => return Ok(None),
        }
    };
    Ok(Some((first, last)))
}

/// The headers every GET/HEAD of an object carries.
pub fn object_headers(resp: &mut Response<Body>, meta: &ObjectMeta) {
    set_header(resp, "etag", &format!("\"{}\"", meta.etag));
    set_header(resp, "last-modified", &http_date(meta.last_modified_ms));
    if let Some(crc) = meta.crc64 {
        set_header(resp, "x-cos-hash-crc64ecma", &crc.to_string());
    }
    if meta.storage_class != "STANDARD" {
        set_header(resp, "x-cos-storage-class", &meta.storage_class);
    }
    set_header(resp, "content-type", "application/octet-stream");
    for (name, value) in &meta.headers {
        set_header(resp, name, value);
    }
}

pub fn get_object(
    ctx: &mut Ctx,
    bucket: &Arc<Bucket>,
    head_only: bool,
) -> OpResult<Response<Body>> {
    let (meta, file) = if head_only {
        (bucket.head(&ctx.key).ok_or_else(CosErr::no_such_key)?, None)
    } else {
        let (meta, file) = bucket.open(&ctx.key)?.ok_or_else(CosErr::no_such_key)?;
        (meta, Some(file))
    };
    authorize(ctx, bucket, Access::ReadObject(&meta))?;
    if let Conditional::NotModified = check_conditionals(ctx, &meta, "")? {
        let mut resp = empty(StatusCode::NOT_MODIFIED);
        set_header(&mut resp, "etag", &format!("\"{}\"", meta.etag));
        set_header(
            &mut resp,
            "last-modified",
            &http_date(meta.last_modified_ms),
        );
        return Ok(resp);
    }
    let range = match ctx.header("range") {
        Some(r) => parse_range(r, meta.size)?,
        None => None,
    };
    let (offset, len) = match range {
        Some((first, last)) => (first, last - first + 1),
        None => (0, meta.size),
    };
    let mut resp = empty(StatusCode::OK);
    object_headers(&mut resp, &meta);
    set_header(&mut resp, "accept-ranges", "bytes");
    set_header(&mut resp, "content-length", &len.to_string());
    if let Some((first, last)) = range {
        *resp.status_mut() = StatusCode::PARTIAL_CONTENT;
        set_header(
            &mut resp,
            "content-range",
            &format!("bytes {first}-{last}/{}", meta.size),
        );
    }
    if matches!(ctx.caller, crate::auth::Caller::Signed(_)) {
        for (param, header) in RESPONSE_OVERRIDES {
            if let Some(v) = ctx.query.get(param) {
                set_header(&mut resp, header, v);
            }
        }
    }
    if let Some(file) = file {
        *resp.body_mut() = file_body(file, offset, len);
    }
    Ok(resp)
}

/// `len` bytes of `file` from `offset`, read in [`READ_CHUNK`]s straight into the buffers that
/// go out. (tokio's `File` reads into a buffer of its own and copies from there: a second copy
/// of every byte served, 12% of cos-local's CPU during a GET.)
fn file_body(file: std::fs::File, offset: u64, len: u64) -> Body {
    let file = Arc::new(file);
    let chunks = futures::stream::try_unfold((offset, len), move |(pos, left)| {
        let file = file.clone();
        async move {
            if left == 0 {
                return Ok(None);
            }
            let want = left.min(READ_CHUNK as u64) as usize;
            let chunk = tokio::task::spawn_blocking(move || read_chunk(&file, pos, want))
                .await
                .map_err(std::io::Error::other)??;
            if chunk.is_empty() {
                // The file is shorter than its metadata says: end the body early, so the
                // client sees a short body rather than a hang.
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "object file shorter than its recorded size",
                ));
            }
            let n = chunk.len() as u64;
            Ok(Some((chunk, (pos + n, left - n))))
        }
    });
    Body::from_stream(chunks)
}

/// Up to `want` bytes at `pos` (fewer only at the end of the file), into a fresh buffer.
fn read_chunk(file: &std::fs::File, pos: u64, want: usize) -> std::io::Result<bytes::Bytes> {
    use std::os::fd::AsRawFd;
    let mut buf = bytes::BytesMut::with_capacity(want);
    let mut filled = 0usize;
    while filled < want {
        let spare = buf.spare_capacity_mut();
        let offset = libc::off_t::try_from(pos + filled as u64)
            .map_err(|_| std::io::Error::other("offset out of range"))?;
        // SAFETY: pread writes at most `want - filled` bytes into the spare capacity, which is
        // at least that long, and the length is only advanced by what it wrote.
        let n = unsafe {
            libc::pread(
                file.as_raw_fd(),
                spare.as_mut_ptr().cast(),
                want - filled,
                offset,
            )
        };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if n == 0 {
            break;
        }
        filled += n as usize;
        // SAFETY: the first `filled` bytes were written by pread above.
        unsafe { buf.set_len(filled) };
    }
    Ok(buf.freeze())
}

/// `x-cos-copy-source` -> (bucket, key). Accepts `{bucket}.cos.{region}.myqcloud.com/{key}`,
/// any `{bucket}.{host}/{key}`, `/{bucket}/{key}` and `{bucket}/{key}`, with or without a
/// scheme and `?versionId=`; the key is percent-decoded once.
pub fn parse_copy_source(value: &str) -> OpResult<(String, String)> {
    let invalid = || {
        CosErr::new(
            StatusCode::BAD_REQUEST,
            "InvalidCopySource",
            "The x-cos-copy-source header is not valid.",
        )
    };
    let v = value.trim();
    let v = v
        .strip_prefix("http://")
        .or_else(|| v.strip_prefix("https://"))
        .unwrap_or(v);
    let v = v.split_once('?').map(|(a, _)| a).unwrap_or(v);
    let (bucket, raw_key) = if let Some(rest) = v.strip_prefix('/') {
        rest.split_once('/').ok_or_else(invalid)?
    } else {
        let (host, key) = v.split_once('/').ok_or_else(invalid)?;
        (host.split('.').next().unwrap_or(host), key)
    };
    let key = percent_encoding::percent_decode_str(raw_key)
        .decode_utf8()
        .map_err(|_| invalid())?
        .into_owned();
    if bucket.is_empty() || key.is_empty() {
        return Err(invalid());
    }
    Ok((bucket.to_string(), key))
}

/// Resolve and authorise the copy source; returns its bucket and meta.
pub fn copy_source(ctx: &Ctx) -> OpResult<(Arc<Bucket>, ObjectMeta)> {
    let (src_bucket, src_key) = parse_copy_source(ctx.header("x-cos-copy-source").unwrap_or(""))?;
    let bucket = ctx
        .app
        .store
        .bucket(&src_bucket)
        .ok_or_else(CosErr::no_such_bucket)?;
    let meta = bucket.head(&src_key).ok_or_else(CosErr::no_such_key)?;
    authorize(ctx, &bucket, Access::ReadObject(&meta))?;
    if let Conditional::NotModified = check_conditionals(ctx, &meta, "x-cos-copy-source-")? {
        // For copies every failed condition is a 412 (there is nothing to "not modify").
        return Err(CosErr::precondition_failed());
    }
    Ok((bucket, meta))
}

pub async fn copy_object(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Write)?;
    let (src_bucket, src_meta) = copy_source(ctx)?;
    let directive = ctx
        .header("x-cos-metadata-directive")
        .unwrap_or("Copy")
        .to_string();
    let replace = match directive.as_str() {
        // COS's spelling (Copy / Replaced) and S3's (COPY / REPLACE), in any case: cosfs
        // sends REPLACE for every rename, chmod and utimens.
        d if d.trim().eq_ignore_ascii_case("copy") => false,
        d if d.trim().eq_ignore_ascii_case("replaced")
            || d.trim().eq_ignore_ascii_case("replace") =>
        {
            true
        }
        _ => {
            return Err(CosErr::invalid_argument(
                "x-cos-metadata-directive must be Copy or Replaced (COPY or REPLACE).",
            ))
        }
    };
    if src_bucket.name == bucket.name && src_meta.key == ctx.key && !replace {
        return Err(CosErr::invalid_request(
            "This copy request is illegal because it is trying to copy an object to itself \
             without changing the object's metadata (use x-cos-metadata-directive: Replaced).",
        ));
    }
    // Storage class and ACL are never inherited (cos-protocol.md §5.1).
    let attrs = if replace {
        attrs_from_request(ctx)?
    } else {
        ObjectAttrs {
            headers: src_meta.headers.clone(),
            storage_class: storage_class_from_request(ctx)?,
            acl: super::acl::acl_from_headers(ctx, true)?.unwrap_or_else(|| Acl::canned("default")),
        }
    };
    let src_path = src_bucket.data_path(&src_meta);
    let temp = ctx
        .app
        .store
        .copy_range_to_temp(src_path, 0, src_meta.size)
        .await?;
    let meta = bucket.commit(&ctx.key, temp, src_meta.etag.clone(), src_meta.crc64, attrs)?;
    let mut x = Xml::new();
    x.open("CopyObjectResult")
        .leaf("ETag", format!("\"{}\"", meta.etag))
        .leaf("LastModified", iso_date_secs(meta.last_modified_ms));
    if let Some(crc) = meta.crc64 {
        x.leaf("CRC64", crc.to_string());
    }
    x.close("CopyObjectResult");
    let mut resp = super::xml_response(x.finish());
    if let Some(crc) = meta.crc64 {
        set_header(&mut resp, "x-cos-hash-crc64ecma", &crc.to_string());
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        assert_eq!(parse_range("bytes=0-9", 100).ok().flatten(), Some((0, 9)));
        assert_eq!(parse_range("bytes=90-", 100).ok().flatten(), Some((90, 99)));
        assert_eq!(parse_range("bytes=-10", 100).ok().flatten(), Some((90, 99)));
        assert_eq!(
            parse_range("bytes=95-200", 100).ok().flatten(),
            Some((95, 99))
        );
        assert_eq!(
            parse_range("bytes=100-200", 100)
                .map(|_| ())
                .unwrap_err()
                .code,
            "InvalidRange"
        );
        assert_eq!(parse_range("bytes=0-1,5-6", 100).ok().flatten(), None);
        assert_eq!(parse_range("items=0-1", 100).ok().flatten(), None);
        assert_eq!(parse_range("bytes=5-2", 100).ok().flatten(), None);
    }

    #[test]
    fn copy_sources() {
        let p = |s| parse_copy_source(s).ok();
        let want = Some((
            "examplebucket-1250000000".to_string(),
            "dir/a b.txt".to_string(),
        ));
        assert_eq!(
            p("examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/dir/a%20b.txt"),
            want
        );
        assert_eq!(p("/examplebucket-1250000000/dir/a%20b.txt"), want);
        assert_eq!(p("http://examplebucket-1250000000.cos.ap-guangzhou.myqcloud.com/dir/a%20b.txt?versionId=x"), want);
        assert_eq!(p("examplebucket-1250000000/dir/a%20b.txt"), want);
        assert!(p("nothing").is_none());
    }
}
