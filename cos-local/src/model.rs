//! The data cos-local stores about buckets, objects and uploads (serialised as JSON sidecars).

use serde::{Deserialize, Serialize};

use cos_protocol::acl::ALL_USERS_URI;

/// An access control list: a canned ACL plus explicit grants (`x-cos-grant-*` or an XML body).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Acl {
    /// `default` (objects: inherit the bucket's), `private`, `public-read`, `public-read-write`, ...
    pub canned: String,
    pub grants: Vec<Grant>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Grant {
    pub grantee: Grantee,
    /// READ, WRITE, READ_ACP, WRITE_ACP or FULL_CONTROL.
    pub permission: String,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum Grantee {
    /// A CAM user, `qcs::cam::uin/...`.
    User(String),
    /// A group URI such as [`ALL_USERS_URI`].
    Group(String),
}

impl Acl {
    pub fn canned(name: &str) -> Acl {
        Acl {
            canned: name.to_string(),
            grants: Vec::new(),
        }
    }

    /// Whether this ACL says nothing of its own (an object ACL that defers to the bucket's).
    pub fn is_default(&self) -> bool {
        (self.canned.is_empty() || self.canned == "default") && self.grants.is_empty()
    }

    fn everyone_has(&self, permission: &str) -> bool {
        self.grants.iter().any(|g| {
            g.grantee == Grantee::Group(ALL_USERS_URI.to_string())
                && (g.permission == permission || g.permission == "FULL_CONTROL")
        })
    }

    /// May an anonymous caller read?
    pub fn public_read(&self) -> bool {
        matches!(self.canned.as_str(), "public-read" | "public-read-write")
            || self.everyone_has("READ")
    }

    /// May an anonymous caller write (bucket ACLs only)?
    pub fn public_write(&self) -> bool {
        self.canned == "public-read-write" || self.everyone_has("WRITE")
    }
}

/// A bucket's CORS configuration (stored in `bucket.json` with the field names as they are).
pub use cos_protocol::cors::{CorsConfiguration, CorsRule};

/// Everything kept about a bucket besides its objects.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BucketConfig {
    pub name: String,
    pub created_ms: i64,
    pub acl: Acl,
    pub cors: Option<CorsConfiguration>,
}

/// One stored object's metadata (the sidecar of its data file).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ObjectMeta {
    pub key: String,
    pub size: u64,
    /// Without quotes: 32 hex digits, or `{32 hex}-{parts}` for a multipart object.
    pub etag: String,
    pub crc64: Option<u64>,
    pub last_modified_ms: i64,
    /// Stored response headers: content headers and `x-cos-meta-*`, names lower-case.
    pub headers: Vec<(String, String)>,
    pub storage_class: String,
    pub acl: Acl,
    /// The data file's name in the object directory (a fresh name per write).
    pub data_file: String,
}

/// The request-derived part of an object's metadata (from PUT, Initiate or a Replaced copy).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct ObjectAttrs {
    pub headers: Vec<(String, String)>,
    pub storage_class: String,
    pub acl: Acl,
}

/// An initiated multipart upload.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UploadMeta {
    pub upload_id: String,
    pub key: String,
    pub initiated_ms: i64,
    pub attrs: ObjectAttrs,
}

/// One uploaded part.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartMeta {
    pub number: u32,
    /// 32 hex digits, no quotes.
    pub etag: String,
    pub size: u64,
    pub crc64: u64,
    pub last_modified_ms: i64,
    pub data_file: String,
}

/// Milliseconds since the Unix epoch, server time (`--clock-offset` applied).
pub use crate::clock::now_ms;
