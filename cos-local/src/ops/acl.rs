//! Object and bucket ACLs (cos-protocol.md §8): canned `x-cos-acl`, `x-cos-grant-*` headers or
//! an `AccessControlPolicy` body; stored, rendered, and enforced for anonymous requests.

use std::sync::Arc;

use axum::body::Body;
use cos_protocol::acl::{
    ALL_USERS_URI, BUCKET_CANNED_ACLS, GRANT_HEADERS, OBJECT_CANNED_ACLS, PERMISSIONS,
};
use hyper::{Response, StatusCode};

use super::{authorize, empty, owner_uin, xml_response, Access, MAX_XML_BODY};
use crate::error::{CosErr, OpResult};
use crate::model::{Acl, Grant, Grantee};
use crate::server::Ctx;
use crate::store::Bucket;
use crate::xml::{self, Xml};

/// Parse `id="qcs::cam::uin/1:uin/1",uri="http://..."` into grantees.
fn parse_grantees(value: &str) -> OpResult<Vec<Grantee>> {
    value
        .split(',')
        .filter(|s| !s.trim().is_empty())
        .map(|item| {
            let (kind, v) = item
                .trim()
                .split_once('=')
                .ok_or_else(|| CosErr::invalid_argument(format!("bad grant {item:?}")))?;
            let v = v.trim().trim_matches('"').to_string();
            match kind.trim().to_ascii_lowercase().as_str() {
                "id" => Ok(Grantee::User(v)),
                "uri" => Ok(Grantee::Group(v)),
                _ => Err(CosErr::invalid_argument(format!("bad grant {item:?}"))),
            }
        })
        .collect()
}

/// The ACL the request's headers ask for, or None when it sets none.
pub fn acl_from_headers(ctx: &Ctx, object: bool) -> OpResult<Option<Acl>> {
    let mut acl = Acl::default();
    let mut any = false;
    if let Some(canned) = ctx.header("x-cos-acl") {
        let canned = canned.trim();
        let allowed: &[&str] = if object {
            &OBJECT_CANNED_ACLS
        } else {
            &BUCKET_CANNED_ACLS
        };
        if !allowed.contains(&canned) {
            return Err(CosErr::invalid_argument(format!(
                "The canned ACL {canned} is not valid here."
            )));
        }
        acl.canned = canned.to_string();
        any = true;
    }
    for (header, permission) in GRANT_HEADERS {
        if let Some(v) = ctx.header(header) {
            for grantee in parse_grantees(v)? {
                acl.grants.push(Grant {
                    grantee,
                    permission: permission.to_string(),
                });
            }
            any = true;
        }
    }
    if any && acl.canned.is_empty() {
        acl.canned = if object { "default" } else { "private" }.to_string();
    }
    Ok(any.then_some(acl))
}

/// The ACL of an `AccessControlPolicy` body.
fn acl_from_body(body: &str, object: bool) -> OpResult<Acl> {
    let policy: xml::AccessControlPolicy = xml::parse(body)?;
    let mut acl = Acl::canned(if object { "default" } else { "private" });
    for g in policy.list.map(|l| l.grants).unwrap_or_default() {
        let permission = g.permission.trim().to_ascii_uppercase();
        if !PERMISSIONS.contains(&permission.as_str()) {
            return Err(CosErr::malformed_xml(format!(
                "unknown permission {permission}"
            )));
        }
        let grantee = match (g.grantee.id, g.grantee.uri) {
            (Some(id), _) => Grantee::User(id.trim().to_string()),
            (None, Some(uri)) => Grantee::Group(uri.trim().to_string()),
            (None, None) => return Err(CosErr::malformed_xml("a Grantee needs an ID or a URI")),
        };
        acl.grants.push(Grant {
            grantee,
            permission,
        });
    }
    Ok(acl)
}

async fn requested_acl(ctx: &mut Ctx, object: bool) -> OpResult<Acl> {
    let from_headers = acl_from_headers(ctx, object)?;
    let body = ctx.small_body(MAX_XML_BODY).await?;
    match (from_headers, body.trim().is_empty()) {
        (Some(_), false) => Err(CosErr::invalid_request(
            "Give the ACL either in headers or in the body, not both.",
        )),
        (Some(acl), true) => Ok(acl),
        (None, false) => acl_from_body(&body, object),
        (None, true) => Err(CosErr::invalid_request("No ACL given.")),
    }
}

/// Render an ACL as COS does: the owner's FULL_CONTROL, the canned ACL's group grants, then
/// the explicit grants (duplicates dropped).
fn render(bucket: &str, acl: &Acl) -> String {
    let uin = owner_uin(bucket);
    let owner = format!("qcs::cam::uin/{uin}:uin/{uin}");
    let mut grants = vec![Grant {
        grantee: Grantee::User(owner.clone()),
        permission: "FULL_CONTROL".to_string(),
    }];
    let group = |p: &str| Grant {
        grantee: Grantee::Group(ALL_USERS_URI.to_string()),
        permission: p.to_string(),
    };
    match acl.canned.as_str() {
        "public-read" => grants.push(group("READ")),
        "public-read-write" => {
            grants.push(group("READ"));
            grants.push(group("WRITE"));
        }
        _ => {}
    }
    for g in &acl.grants {
        if !grants.contains(g) {
            grants.push(g.clone());
        }
    }
    let mut x = Xml::new();
    x.open("AccessControlPolicy")
        .open("Owner")
        .leaf("ID", &owner)
        .leaf("DisplayName", &owner)
        .close("Owner")
        .open("AccessControlList");
    for g in &grants {
        x.open("Grant");
        match &g.grantee {
            Grantee::User(id) => {
                x.open_with(
                    "Grantee",
                    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"",
                )
                .leaf("ID", id)
                .leaf("DisplayName", id);
            }
            Grantee::Group(uri) => {
                x.open_with(
                    "Grantee",
                    "xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\"",
                )
                .leaf("URI", uri);
            }
        }
        x.close("Grantee")
            .leaf("Permission", &g.permission)
            .close("Grant");
    }
    x.close("AccessControlList").close("AccessControlPolicy");
    x.finish()
}

fn with_canned_header(mut resp: Response<Body>, acl: &Acl) -> Response<Body> {
    if !acl.canned.is_empty() {
        super::set_header(&mut resp, "x-cos-acl", &acl.canned);
    }
    resp
}

pub fn get_bucket_acl(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Owner)?;
    let acl = bucket.config().acl;
    Ok(with_canned_header(
        xml_response(render(&bucket.name, &acl)),
        &acl,
    ))
}

pub async fn put_bucket_acl(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Owner)?;
    let acl = requested_acl(ctx, false).await?;
    bucket.update_config(|c| c.acl = acl)?;
    Ok(empty(StatusCode::OK))
}

pub fn get_object_acl(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Owner)?;
    let meta = bucket.head(&ctx.key).ok_or_else(CosErr::no_such_key)?;
    Ok(with_canned_header(
        xml_response(render(&bucket.name, &meta.acl)),
        &meta.acl,
    ))
}

pub async fn put_object_acl(ctx: &mut Ctx, bucket: &Arc<Bucket>) -> OpResult<Response<Body>> {
    authorize(ctx, bucket, Access::Owner)?;
    if bucket.head(&ctx.key).is_none() {
        return Err(CosErr::no_such_key());
    }
    let acl = requested_acl(ctx, true).await?;
    if !bucket.update_meta(&ctx.key, |m| m.acl = acl)? {
        return Err(CosErr::no_such_key());
    }
    Ok(empty(StatusCode::OK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grant_header_values() {
        let g = parse_grantees(
            "id=\"qcs::cam::uin/1:uin/1\", uri=\"http://cam.qcloud.com/groups/global/AllUsers\"",
        )
        .expect("parses");
        assert_eq!(
            g,
            vec![
                Grantee::User("qcs::cam::uin/1:uin/1".into()),
                Grantee::Group(ALL_USERS_URI.into())
            ]
        );
        assert!(parse_grantees("nonsense").is_err());
    }

    #[test]
    fn body_acl_with_all_users_read_is_public() {
        let body = format!(
            "<AccessControlPolicy><Owner><ID>x</ID></Owner><AccessControlList>\
             <Grant><Grantee><URI>{ALL_USERS_URI}</URI></Grantee><Permission>READ</Permission></Grant>\
             </AccessControlList></AccessControlPolicy>"
        );
        let acl = acl_from_body(&body, true).expect("parses");
        assert!(acl.public_read());
        assert!(!acl.is_default());
    }
}
