//! ACL vocabulary (cos-protocol.md §8): canned ACL names, grant headers, permissions and the
//! grantee groups. The ACL document types live with their users (the client's XML model,
//! cos-local's stored model); these tables are what both must agree on.

/// Canned ACLs an object accepts in `x-cos-acl` (`default`: inherit the bucket's).
pub const OBJECT_CANNED_ACLS: [&str; 6] = [
    "default",
    "private",
    "public-read",
    "authenticated-read",
    "bucket-owner-read",
    "bucket-owner-full-control",
];
/// Canned ACLs a bucket accepts in `x-cos-acl`.
pub const BUCKET_CANNED_ACLS: [&str; 4] = [
    "private",
    "public-read",
    "public-read-write",
    "authenticated-read",
];
/// The `x-cos-grant-*` headers and the permission each one grants.
pub const GRANT_HEADERS: [(&str, &str); 5] = [
    ("x-cos-grant-read", "READ"),
    ("x-cos-grant-write", "WRITE"),
    ("x-cos-grant-read-acp", "READ_ACP"),
    ("x-cos-grant-write-acp", "WRITE_ACP"),
    ("x-cos-grant-full-control", "FULL_CONTROL"),
];
/// The permissions a grant may give.
pub const PERMISSIONS: [&str; 5] = ["READ", "WRITE", "READ_ACP", "WRITE_ACP", "FULL_CONTROL"];
/// The grantee group that means "everyone, signed or not".
pub const ALL_USERS_URI: &str = "http://cam.qcloud.com/groups/global/AllUsers";
/// The grantee group that means "any signed request".
pub const AUTHENTICATED_USERS_URI: &str = "http://cam.qcloud.com/groups/global/AuthenticatedUsers";

/// The most grants one ACL may hold.
pub const MAX_GRANTS: usize = 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_grant_header_grants_a_known_permission() {
        for (header, permission) in GRANT_HEADERS {
            assert!(header.starts_with("x-cos-grant-"));
            assert!(PERMISSIONS.contains(&permission));
        }
        assert!(OBJECT_CANNED_ACLS.contains(&"default"));
        assert!(!BUCKET_CANNED_ACLS.contains(&"default"));
    }
}
