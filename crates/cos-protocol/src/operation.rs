//! The COS operation a request asks for, decided from its method, whether it names an object,
//! its query and its headers (COS picks the operation by all four: `?uploads`,
//! `?partNumber&uploadId`, `?acl`, `x-cos-copy-source`, ...). One table for both ends: the
//! client tags each request with it (request counters, which calls may take long), cos-local
//! dispatches on it, names it in its access log and limits fault injection by it, and the tests
//! count requests by it.

/// The request headers [`Operation::classify`] looks at, by name (case-insensitive). Implemented
/// for `(name, value)` pairs and for any `Fn(&str) -> bool` answering "is this header present",
/// so an HTTP library's header map plugs in as `&|name: &str| map.contains_key(name)`.
pub trait HeaderNames {
    /// Whether a header of this (lower-case) name is present.
    fn contains(&self, name: &str) -> bool;
}

impl<F: Fn(&str) -> bool> HeaderNames for F {
    fn contains(&self, name: &str) -> bool {
        self(name)
    }
}

impl HeaderNames for [(String, String)] {
    fn contains(&self, name: &str) -> bool {
        self.iter().any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

impl HeaderNames for Vec<(String, String)> {
    fn contains(&self, name: &str) -> bool {
        HeaderNames::contains(self.as_slice(), name)
    }
}

/// The headers that make a PUT a copy (COS's, and the S3 spelling COS also accepts).
pub const COPY_SOURCE_HEADERS: [&str; 2] = ["x-cos-copy-source", "x-amz-copy-source"];

macro_rules! operations {
    ($($(#[$doc:meta])* $name:ident),* $(,)?) => {
        /// One COS API operation (the names are COS's API names).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum Operation {
            $($(#[$doc])* $name,)*
        }

        impl Operation {
            /// Every operation, in declaration order.
            pub const ALL: &'static [Operation] = &[$(Operation::$name,)*];

            /// The COS API name, as written in the access log and accepted by `ops=`.
            pub fn name(self) -> &'static str {
                match self {
                    $(Operation::$name => stringify!($name),)*
                }
            }
        }
    };
}

operations! {
    ListBuckets,
    PutBucket,
    HeadBucket,
    DeleteBucket,
    /// GET Bucket (ListObjects).
    GetBucket,
    GetBucketLocation,
    PutBucketAcl,
    GetBucketAcl,
    PutBucketCors,
    GetBucketCors,
    DeleteBucketCors,
    /// A CORS preflight, on a bucket or an object.
    OptionsObject,
    PutObject,
    GetObject,
    HeadObject,
    DeleteObject,
    DeleteMultipleObjects,
    PutObjectCopy,
    PutObjectAcl,
    GetObjectAcl,
    /// A browser form upload (`POST /` without `?delete`).
    PostObject,
    InitiateMultipartUpload,
    UploadPart,
    UploadPartCopy,
    CompleteMultipartUpload,
    AbortMultipartUpload,
    ListParts,
    ListMultipartUploads,
    /// cos-local's own control requests under `/_cos-local/`.
    Admin,
    /// A request naming a COS sub-resource (`?tagging`, `?versioning`, ...) that is not
    /// implemented for its method: answered 501 NotImplemented and never applied.
    Unsupported,
    /// Anything else (a method that means nothing for the resource).
    Unknown,
}

impl std::fmt::Display for Operation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Operation {
    type Err = String;
    fn from_str(s: &str) -> Result<Operation, String> {
        let s = s.trim();
        Operation::ALL
            .iter()
            .copied()
            .find(|op| op.name() == s)
            .ok_or_else(|| format!("unknown operation {s:?}"))
    }
}

/// COS sub-resources: query parameters that name a different API on the same bucket or object
/// (`?acl`, `?tagging`, ...), as opposed to parameters of an API (`prefix`, `uploadId`,
/// `partNumber`, `response-content-type`, `versionId`, ...). A request naming one of these is
/// only served when the (method, level, sub-resource) is in [`IMPLEMENTED`]; otherwise it is
/// [`Operation::Unsupported`] and never falls through to the plain operation.
pub const SUB_RESOURCES: &[&str] = &[
    "acl",
    "cors",
    "location",
    "uploads",
    "delete",
    "tagging",
    "symlink",
    "versioning",
    "versions",
    "lifecycle",
    "policy",
    "website",
    "domain",
    "inventory",
    "inventory-configuration",
    "replication",
    "encryption",
    "origin",
    "logging",
    "referer",
    "intelligenttiering",
    "restore",
    "select",
    "append",
    "accelerate",
    "object-lock",
    "retention",
    "legal-hold",
    "notification",
    "requestPayment",
    "torrent",
    "analytics",
    "metrics",
    "publicAccessBlock",
    "ownershipControls",
    "attributes",
    "rename",
];

/// Whether a sub-resource is at the bucket or the object level.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    Bucket,
    Object,
}

/// The (method, level, sub-resource) triples cos-local implements; every other use of a
/// [`SUB_RESOURCES`] name is answered 501 NotImplemented.
pub const IMPLEMENTED: &[(&str, Level, &str)] = &[
    ("PUT", Level::Bucket, "acl"),
    ("GET", Level::Bucket, "acl"),
    ("PUT", Level::Bucket, "cors"),
    ("GET", Level::Bucket, "cors"),
    ("DELETE", Level::Bucket, "cors"),
    ("GET", Level::Bucket, "location"),
    ("GET", Level::Bucket, "uploads"),
    ("POST", Level::Bucket, "delete"),
    ("PUT", Level::Object, "acl"),
    ("GET", Level::Object, "acl"),
    ("POST", Level::Object, "uploads"),
];

/// True when the query names a sub-resource that is not implemented for this method and level
/// (names are matched case-insensitively, so `?Tagging` cannot slip through as a plain PUT).
pub fn names_unsupported_sub_resource(
    method: &str,
    level: Level,
    query: &[(String, String)],
) -> bool {
    // Preflights are answered from the CORS rules alone and never change anything.
    if method == "OPTIONS" {
        return false;
    }
    query.iter().any(|(name, _)| {
        SUB_RESOURCES
            .iter()
            .any(|sub| sub.eq_ignore_ascii_case(name))
            && !IMPLEMENTED
                .iter()
                .any(|&(m, l, sub)| m == method && l == level && sub == name)
    })
}

impl Operation {
    /// Whether COS does real work before it answers (merging parts, copying data), so a long
    /// silence before the status line is normal.
    pub fn server_works(self) -> bool {
        matches!(
            self,
            Operation::CompleteMultipartUpload
                | Operation::PutObjectCopy
                | Operation::UploadPartCopy
        )
    }

    /// A service-level request (no bucket in host or path).
    pub fn classify_service(method: &str) -> Operation {
        match method {
            "GET" => Operation::ListBuckets,
            _ => Operation::Unknown,
        }
    }

    /// A bucket-level (`has_key` false) or object-level request. `method` is upper-case,
    /// `query` is form-decoded, in request order.
    pub fn classify<H: HeaderNames + ?Sized>(
        method: &str,
        has_key: bool,
        query: &[(String, String)],
        headers: &H,
    ) -> Operation {
        let has = |name: &str| query.iter().any(|(k, _)| k == name);
        let copy = COPY_SOURCE_HEADERS.iter().any(|h| headers.contains(h));
        let level = if has_key {
            Level::Object
        } else {
            Level::Bucket
        };
        if names_unsupported_sub_resource(method, level, query) {
            return Operation::Unsupported;
        }
        if !has_key {
            return match method {
                "PUT" if has("acl") => Operation::PutBucketAcl,
                "PUT" if has("cors") => Operation::PutBucketCors,
                "PUT" => Operation::PutBucket,
                "GET" if has("acl") => Operation::GetBucketAcl,
                "GET" if has("cors") => Operation::GetBucketCors,
                "GET" if has("location") => Operation::GetBucketLocation,
                "GET" if has("uploads") => Operation::ListMultipartUploads,
                "GET" => Operation::GetBucket,
                "HEAD" => Operation::HeadBucket,
                "DELETE" if has("cors") => Operation::DeleteBucketCors,
                "DELETE" => Operation::DeleteBucket,
                "POST" if has("delete") => Operation::DeleteMultipleObjects,
                "POST" => Operation::PostObject,
                "OPTIONS" => Operation::OptionsObject,
                _ => Operation::Unknown,
            };
        }
        let part = has("partNumber") && has("uploadId");
        match method {
            "PUT" if has("acl") => Operation::PutObjectAcl,
            "PUT" if part && copy => Operation::UploadPartCopy,
            "PUT" if part => Operation::UploadPart,
            "PUT" if copy => Operation::PutObjectCopy,
            "PUT" => Operation::PutObject,
            "GET" if has("acl") => Operation::GetObjectAcl,
            "GET" if has("uploadId") => Operation::ListParts,
            "GET" => Operation::GetObject,
            "HEAD" => Operation::HeadObject,
            "DELETE" if has("uploadId") => Operation::AbortMultipartUpload,
            "DELETE" => Operation::DeleteObject,
            "POST" if has("uploads") => Operation::InitiateMultipartUpload,
            "POST" if has("uploadId") => Operation::CompleteMultipartUpload,
            "OPTIONS" => Operation::OptionsObject,
            _ => Operation::Unknown,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn q(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn names_round_trip() {
        for op in Operation::ALL {
            assert_eq!(op.name().parse::<Operation>(), Ok(*op));
        }
        assert!("putobject".parse::<Operation>().is_err());
    }

    fn headers(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        q(pairs)
    }

    #[test]
    fn classification() {
        let none = headers(&[]);
        let copy = headers(&[("X-Cos-Copy-Source", "b-1.cos.r.myqcloud.com/k")]);
        let c = Operation::classify;
        assert_eq!(c("PUT", true, &[], &none), Operation::PutObject);
        assert_eq!(c("PUT", true, &[], &copy), Operation::PutObjectCopy);
        let part = q(&[("partNumber", "1"), ("uploadId", "u")]);
        assert_eq!(c("PUT", true, &part, &none), Operation::UploadPart);
        assert_eq!(c("PUT", true, &part, &copy), Operation::UploadPartCopy);
        assert_eq!(
            c("POST", true, &q(&[("uploads", "")]), &none),
            Operation::InitiateMultipartUpload
        );
        assert_eq!(
            c("POST", true, &q(&[("uploadId", "u")]), &none),
            Operation::CompleteMultipartUpload
        );
        assert_eq!(
            c("GET", false, &q(&[("prefix", "a/")]), &none),
            Operation::GetBucket
        );
        assert_eq!(
            c("POST", false, &q(&[("delete", "")]), &none),
            Operation::DeleteMultipleObjects
        );
        assert_eq!(Operation::classify_service("GET"), Operation::ListBuckets);
    }

    #[test]
    fn headers_as_a_predicate() {
        let copy = |name: &str| name == "x-amz-copy-source";
        assert_eq!(
            Operation::classify("PUT", true, &[], &copy),
            Operation::PutObjectCopy
        );
        let none = |_: &str| false;
        assert_eq!(
            Operation::classify("PUT", true, &[], &none),
            Operation::PutObject
        );
        assert!(Operation::PutObjectCopy.server_works());
        assert!(!Operation::PutObject.server_works());
    }

    #[test]
    fn unimplemented_sub_resources_are_unsupported() {
        let none = headers(&[]);
        let c = Operation::classify;
        for m in ["PUT", "GET", "DELETE", "POST", "HEAD"] {
            assert_eq!(
                c(m, true, &q(&[("tagging", "")]), &none),
                Operation::Unsupported
            );
            assert_eq!(
                c(m, false, &q(&[("lifecycle", "")]), &none),
                Operation::Unsupported
            );
        }
        assert_eq!(
            c("PUT", true, &q(&[("Tagging", "")]), &none),
            Operation::Unsupported
        );
        assert_eq!(
            c("DELETE", true, &q(&[("acl", "")]), &none),
            Operation::Unsupported
        );
        assert_eq!(
            c("PUT", true, &q(&[("ACL", "")]), &none),
            Operation::Unsupported
        );
        assert_eq!(
            c("PUT", true, &q(&[("acl", "")]), &none),
            Operation::PutObjectAcl
        );
        // Parameters that are not sub-resources keep their meaning.
        assert_eq!(
            c(
                "GET",
                true,
                &q(&[("response-content-type", "text/plain"), ("versionId", "x")]),
                &none
            ),
            Operation::GetObject
        );
        assert_eq!(
            c(
                "GET",
                false,
                &q(&[("prefix", "a"), ("max-keys", "2")]),
                &none
            ),
            Operation::GetBucket
        );
        assert_eq!(
            c("OPTIONS", true, &q(&[("tagging", "")]), &none),
            Operation::OptionsObject
        );
    }
}
