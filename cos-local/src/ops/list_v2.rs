//! ListObjectsV2 (`GET /?list-type=2`), the S3 listing: `continuation-token`, `start-after`,
//! `fetch-owner`, `KeyCount`, `encoding-type=url`; otherwise the same walk as GET Bucket.

use std::sync::Arc;

use axum::body::Body;
use base64::Engine;
use hyper::Response;

use super::bucket::{scan_page, Entry};
use super::{authorize, iso_date, owner_uin, set_header, url_encode_key, xml_response, Access};
use crate::error::{CosErr, OpResult};
use crate::server::Ctx;
use crate::store::Bucket;
use crate::xml::Xml;

/// At most (and by default) 1000 entries per page.
const MAX_LIST_KEYS: usize = 1000;

/// The S3 namespace of ListBucketResult.
const S3_XMLNS: &str = "xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"";

/// Continuation tokens are the last key (or common prefix) of the page, base64url: opaque to
/// clients, and a token that does not decode is refused.
fn encode_token(last: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(last.as_bytes())
}

fn decode_token(token: &str) -> OpResult<String> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token.trim())
        .ok()
        .and_then(|b| String::from_utf8(b).ok())
        .ok_or_else(|| CosErr::invalid_argument("The continuation token provided is incorrect"))
}

pub fn list_objects_v2(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::ReadBucket)?;
    let q = &ctx.query;
    let prefix = q.get("prefix").unwrap_or("").to_string();
    let delimiter = q.get("delimiter").unwrap_or("").to_string();
    let token = q.get("continuation-token").map(str::to_string);
    let start_after = q.get("start-after").unwrap_or("").to_string();
    let fetch_owner = q
        .get("fetch-owner")
        .is_some_and(|v| v.eq_ignore_ascii_case("true"));
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
    // The token wins over start-after (S3: start-after is ignored with a token).
    let marker = match &token {
        Some(t) => decode_token(t)?,
        None => start_after.clone(),
    };

    // max-keys=0 is an empty, untruncated page (S3), not "truncated before the first key".
    let (entries, truncated) = if max_keys > 0 {
        scan_page(bucket, &prefix, &delimiter, &marker, max_keys)
    } else {
        (Vec::new(), false)
    };

    let enc = |s: &str| {
        if url {
            url_encode_key(s)
        } else {
            s.to_string()
        }
    };
    let owner = owner_uin(&bucket.name);
    let mut x = Xml::new();
    x.open_with("ListBucketResult", S3_XMLNS)
        .leaf("Name", &bucket.name)
        .leaf("Prefix", enc(&prefix));
    if !delimiter.is_empty() {
        x.leaf("Delimiter", enc(&delimiter));
    }
    x.leaf("MaxKeys", max_keys.to_string());
    if url {
        x.leaf("EncodingType", "url");
    }
    x.leaf("KeyCount", entries.len().to_string());
    if let Some(t) = &token {
        x.leaf("ContinuationToken", t);
    }
    if token.is_none() && !start_after.is_empty() {
        x.leaf("StartAfter", enc(&start_after));
    }
    x.leaf("IsTruncated", truncated.to_string());
    if truncated {
        let last = match entries.last() {
            Some(Entry::Object(m)) => m.key.as_str(),
            Some(Entry::CommonPrefix(p)) => p.as_str(),
            None => "",
        };
        x.leaf("NextContinuationToken", encode_token(last));
    }
    for e in &entries {
        if let Entry::Object(m) = e {
            x.open("Contents")
                .leaf("Key", enc(&m.key))
                .leaf("LastModified", iso_date(m.last_modified_ms))
                .leaf("ETag", format!("\"{}\"", m.etag))
                .leaf("Size", m.size.to_string());
            if fetch_owner {
                x.open("Owner")
                    .leaf("ID", &owner)
                    .leaf("DisplayName", &owner)
                    .close("Owner");
            }
            x.leaf("StorageClass", &m.storage_class).close("Contents");
        }
    }
    for e in &entries {
        if let Entry::CommonPrefix(p) = e {
            x.open("CommonPrefixes")
                .leaf("Prefix", enc(p))
                .close("CommonPrefixes");
        }
    }
    x.close("ListBucketResult");
    let mut resp = xml_response(x.finish());
    set_header(&mut resp, "x-cos-bucket-region", &ctx.app.region);
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        for key in ["a/b", "照片/x y+z", ""] {
            assert_eq!(decode_token(&encode_token(key)).unwrap(), key);
        }
        assert!(decode_token("***").is_err());
    }
}
