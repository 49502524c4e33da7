//! The COS operation a request asks for, decided from its method, whether it names an object,
//! its query and its headers (COS picks the operation by all four: `?uploads`,
//! `?partNumber&uploadId`, `?acl`, `x-cos-copy-source`, ...). cos-local dispatches on it, the
//! access log names it and fault injection can be limited to some operations.

use hyper::header::HeaderMap;

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

impl Operation {
    /// A service-level request (no bucket in host or path).
    pub fn classify_service(method: &str) -> Operation {
        match method {
            "GET" => Operation::ListBuckets,
            _ => Operation::Unknown,
        }
    }

    /// A bucket-level (`has_key` false) or object-level request. `query` is form-decoded, in
    /// request order.
    pub fn classify(
        method: &str,
        has_key: bool,
        query: &[(String, String)],
        headers: &HeaderMap,
    ) -> Operation {
        let has = |name: &str| query.iter().any(|(k, _)| k == name);
        let copy = headers.contains_key("x-cos-copy-source");
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

    #[test]
    fn classification() {
        let none = HeaderMap::new();
        let mut copy = HeaderMap::new();
        copy.insert(
            "x-cos-copy-source",
            "b-1.cos.r.myqcloud.com/k".parse().unwrap(),
        );
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
}
