//! Bucket and object ACL: GET/PUT `?acl`, with canned ACL / grant headers or an XML policy.

// `CosError` (error.rs) carries its `ServiceError` inline; it is shared by every layer, so
// its size is accepted here rather than boxed.
#![allow(clippy::result_large_err)]

use reqwest::Method;

use super::client::{Client, CosRequest};
use super::error::Result;
use super::store::AclInfo;
use super::xml::{self, text};

pub use cos_protocol::acl::{
    ALL_USERS_URI, AUTHENTICATED_USERS_URI, BUCKET_CANNED_ACLS, GRANT_HEADERS, OBJECT_CANNED_ACLS,
    PERMISSIONS,
};

/// Who a grant is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Grantee {
    /// A root account, `qcs::cam::uin/{uin}:uin/{uin}`.
    CanonicalUser {
        id: String,
        display_name: Option<String>,
    },
    /// `http://cam.qcloud.com/groups/global/AllUsers` or `.../AuthenticatedUsers`.
    Group { uri: String },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Grant {
    pub grantee: Grantee,
    /// `READ`, `WRITE`, `READ_ACP`, `WRITE_ACP` or `FULL_CONTROL`.
    pub permission: String,
}

/// An `AccessControlPolicy`: the owner and every grant.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AccessControlPolicy {
    pub owner_id: String,
    pub owner_display_name: Option<String>,
    pub grants: Vec<Grant>,
}

impl AccessControlPolicy {
    /// The body PUT `?acl` takes (Owner with only ID; users with ID, groups with URI).
    pub fn to_xml(&self) -> String {
        let mut out = format!(
            "<AccessControlPolicy><Owner><ID>{}</ID></Owner><AccessControlList>",
            text(&self.owner_id)
        );
        for g in &self.grants {
            let grantee = match &g.grantee {
                Grantee::CanonicalUser { id, .. } => format!(
                    "<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>{}</ID></Grantee>",
                    text(id)
                ),
                Grantee::Group { uri } => format!(
                    "<Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\"><URI>{}</URI></Grantee>",
                    text(uri)
                ),
            };
            out.push_str(&format!(
                "<Grant>{grantee}<Permission>{}</Permission></Grant>",
                text(&g.permission)
            ));
        }
        out.push_str("</AccessControlList></AccessControlPolicy>");
        out
    }

    fn from_xml(body: &[u8]) -> Result<AccessControlPolicy> {
        let raw: xml::AccessControlPolicyXml = xml::parse(body, "AccessControlPolicy")?;
        let grants = raw
            .acl
            .grants
            .into_iter()
            .map(|g| {
                // The xsi:type says which; absent, a URI means a group.
                let is_group = match g.grantee.kind.as_deref() {
                    Some(k) => k.eq_ignore_ascii_case("Group"),
                    None => g.grantee.uri.is_some() && g.grantee.id.is_none(),
                };
                let grantee = if is_group {
                    Grantee::Group {
                        uri: g.grantee.uri.unwrap_or_default(),
                    }
                } else {
                    Grantee::CanonicalUser {
                        id: g.grantee.id.unwrap_or_default(),
                        display_name: g.grantee.display_name.filter(|d| !d.is_empty()),
                    }
                };
                Grant {
                    grantee,
                    permission: g.permission.trim().to_string(),
                }
            })
            .collect();
        Ok(AccessControlPolicy {
            owner_id: raw.owner.id,
            owner_display_name: Some(raw.owner.display_name).filter(|d| !d.is_empty()),
            grants,
        })
    }
}

/// Grant headers: comma-separated `id="..."` / `uri="..."` lists as COS documents them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GrantHeaders {
    pub read: Option<String>,
    /// Bucket only.
    pub write: Option<String>,
    pub read_acp: Option<String>,
    pub write_acp: Option<String>,
    pub full_control: Option<String>,
}

impl GrantHeaders {
    /// The value of each header, in [`GRANT_HEADERS`] order.
    fn values(&self) -> [&Option<String>; 5] {
        [
            &self.read,
            &self.write,
            &self.read_acp,
            &self.write_acp,
            &self.full_control,
        ]
    }
}

impl GrantHeaders {
    /// The header values that give exactly `grants` (users as `id="..."`, groups as
    /// `uri="..."`, several grantees of one permission comma-separated). Permissions COS does
    /// not know are skipped.
    pub fn from_grants(grants: &[Grant]) -> GrantHeaders {
        let mut out = GrantHeaders::default();
        for g in grants {
            let who = match &g.grantee {
                Grantee::CanonicalUser { id, .. } => format!("id=\"{id}\""),
                Grantee::Group { uri } => format!("uri=\"{uri}\""),
            };
            let slot = match g.permission.as_str() {
                "READ" => &mut out.read,
                "WRITE" => &mut out.write,
                "READ_ACP" => &mut out.read_acp,
                "WRITE_ACP" => &mut out.write_acp,
                "FULL_CONTROL" => &mut out.full_control,
                _ => continue,
            };
            match slot {
                Some(list) => {
                    list.push(',');
                    list.push_str(&who);
                }
                None => *slot = Some(who),
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.values().iter().all(|v| v.is_none())
    }
}

/// An object's ACL as request headers: a canned `x-cos-acl` and/or `x-cos-grant-*` lists.
/// PUT Object, Initiate Multipart Upload and PUT Copy take these, and COS resets the ACL of
/// what they write to `default` unless they are sent (cos-protocol.md §5.1), so every rewrite
/// of an existing object sends its ACL again.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AclHeaders {
    pub canned: Option<String>,
    pub grants: GrantHeaders,
}

impl AclHeaders {
    pub fn canned(acl: impl Into<String>) -> Self {
        AclHeaders {
            canned: Some(acl.into()),
            grants: GrantHeaders::default(),
        }
    }

    /// Nothing to send: the object gets (or keeps) the `default` ACL.
    pub fn is_default(&self) -> bool {
        self.canned.as_deref().is_none_or(|c| c == "default") && self.grants.is_empty()
    }

    /// The canned name when there are no explicit grants.
    pub fn canned_only(&self) -> Option<&str> {
        self.grants
            .is_empty()
            .then_some(self.canned.as_deref())
            .flatten()
    }

    pub(crate) fn apply(&self, req: CosRequest) -> CosRequest {
        let mut req = req.header_opt("x-cos-acl", self.canned.clone());
        for ((header, _), value) in GRANT_HEADERS.iter().zip(self.grants.values()) {
            req = req.header_opt(header, value.clone());
        }
        req
    }
}

impl From<&str> for AclHeaders {
    fn from(canned: &str) -> Self {
        AclHeaders::canned(canned)
    }
}

impl From<AclHeaders> for AclUpdate {
    fn from(h: AclHeaders) -> Self {
        AclUpdate::Headers {
            canned: h.canned,
            grants: h.grants,
        }
    }
}

/// What PUT `?acl` sends: headers, or an XML policy (COS refuses both at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AclUpdate {
    /// A canned `x-cos-acl` (`private`, `public-read`, `default` for objects...) and/or grants.
    Headers {
        canned: Option<String>,
        grants: GrantHeaders,
    },
    Policy(AccessControlPolicy),
}

impl AclUpdate {
    pub fn canned(acl: impl Into<String>) -> Self {
        AclUpdate::Headers {
            canned: Some(acl.into()),
            grants: GrantHeaders::default(),
        }
    }

    fn apply(&self, req: CosRequest) -> CosRequest {
        match self {
            AclUpdate::Headers { canned, grants } => AclHeaders {
                canned: canned.clone(),
                grants: grants.clone(),
            }
            .apply(req),
            AclUpdate::Policy(p) => req.xml_body(p.to_xml()),
        }
    }
}

impl Client {
    pub async fn get_bucket_acl(&self) -> Result<AccessControlPolicy> {
        let req = CosRequest::new(Method::GET, None).query("acl", "");
        let answer = self.execute_xml(&req).await?;
        AccessControlPolicy::from_xml(answer.bytes())
    }

    /// PUT Bucket ACL (replaces the whole ACL).
    pub async fn put_bucket_acl(&self, update: &AclUpdate) -> Result<()> {
        let req = update.apply(CosRequest::new(Method::PUT, None).query("acl", ""));
        self.execute_xml(&req).await.map(|_| ())
    }

    pub async fn get_object_acl(&self, key: &str) -> Result<AccessControlPolicy> {
        let req = CosRequest::new(Method::GET, Some(key)).query("acl", "");
        let answer = self.execute_xml(&req).await?;
        AccessControlPolicy::from_xml(answer.bytes())
    }

    /// PUT Object ACL (replaces the whole ACL).
    pub async fn put_object_acl(&self, key: &str, update: &AclUpdate) -> Result<()> {
        let req = update.apply(CosRequest::new(Method::PUT, Some(key)).query("acl", ""));
        self.execute_xml(&req).await.map(|_| ())
    }

    /// GET `?acl` of an object (or of the bucket for `None`), with the `x-cos-acl` header
    /// when the answer carries one (the filesystem shows canned ACLs by name).
    pub async fn get_acl_with_canned(&self, key: Option<&str>) -> Result<AclInfo> {
        let req = CosRequest::new(Method::GET, key).query("acl", "");
        let answer = self.execute_xml(&req).await?;
        Ok(AclInfo {
            policy: AccessControlPolicy::from_xml(answer.bytes())?,
            canned: answer
                .header("x-cos-acl")
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty()),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy_round_trips_through_xml() {
        let p = AccessControlPolicy {
            owner_id: "qcs::cam::uin/1:uin/1".into(),
            owner_display_name: None,
            grants: vec![
                Grant {
                    grantee: Grantee::Group {
                        uri: "http://cam.qcloud.com/groups/global/AllUsers".into(),
                    },
                    permission: "READ".into(),
                },
                Grant {
                    grantee: Grantee::CanonicalUser {
                        id: "qcs::cam::uin/2:uin/2".into(),
                        display_name: None,
                    },
                    permission: "FULL_CONTROL".into(),
                },
            ],
        };
        let back = AccessControlPolicy::from_xml(p.to_xml().as_bytes()).unwrap();
        assert_eq!(back, p);
    }
}
