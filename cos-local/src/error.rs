//! Every COS error cos-local can answer with, in one place (codes and statuses from
//! cos-protocol.md §10). The XML body is rendered by `server` because it needs the request id
//! and the resource.

use hyper::StatusCode;

/// A COS service error: HTTP status, `<Code>`, `<Message>` and optional extra elements
/// (`<ServerTime>`, `<StringToSign>`, ...).
#[derive(Debug, Clone)]
pub struct CosErr {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub extra: Vec<(&'static str, String)>,
}

pub type OpResult<T> = Result<T, CosErr>;

impl CosErr {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> CosErr {
        CosErr {
            status,
            code,
            message: message.into(),
            extra: Vec::new(),
        }
    }

    pub fn with(mut self, element: &'static str, value: impl Into<String>) -> CosErr {
        self.extra.push((element, value.into()));
        self
    }

    pub fn no_such_bucket() -> CosErr {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchBucket",
            "The specified bucket does not exist.",
        )
    }
    pub fn no_such_key() -> CosErr {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchKey",
            "The specified key does not exist.",
        )
    }
    pub fn no_such_upload() -> CosErr {
        Self::new(
            StatusCode::NOT_FOUND,
            "NoSuchUpload",
            "The specified upload does not exist.",
        )
    }
    pub fn access_denied(message: impl Into<String>) -> CosErr {
        Self::new(StatusCode::FORBIDDEN, "AccessDenied", message)
    }
    pub fn invalid_argument(message: impl Into<String>) -> CosErr {
        Self::new(StatusCode::BAD_REQUEST, "InvalidArgument", message)
    }
    pub fn invalid_request(message: impl Into<String>) -> CosErr {
        Self::new(StatusCode::BAD_REQUEST, "InvalidRequest", message)
    }
    pub fn malformed_xml(message: impl Into<String>) -> CosErr {
        Self::new(StatusCode::BAD_REQUEST, "MalformedXML", message)
    }
    pub fn precondition_failed() -> CosErr {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "At least one of the preconditions you specified did not hold.",
        )
    }
    pub fn invalid_range() -> CosErr {
        Self::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "InvalidRange",
            "The requested range is not satisfiable.",
        )
    }
    pub fn key_too_long() -> CosErr {
        Self::new(
            StatusCode::BAD_REQUEST,
            "KeyTooLong",
            "Your key is too long (the limit is 850 bytes).",
        )
    }
    pub fn method_not_allowed() -> CosErr {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        )
    }
    /// A sub-resource or feature COS has but cos-local does not implement.
    pub fn not_implemented() -> CosErr {
        Self::new(
            StatusCode::NOT_IMPLEMENTED,
            "NotImplemented",
            "A header or query you provided requested a function that is not implemented.",
        )
    }
    pub fn internal(message: impl Into<String>) -> CosErr {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "InternalError", message)
    }
    pub fn slow_down() -> CosErr {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "SlowDown",
            "Please reduce your request rate (fault injected by cos-local).",
        )
    }
}

/// Disk trouble is the server's fault: 500 InternalError (the detail goes to the log only).
impl From<std::io::Error> for CosErr {
    fn from(e: std::io::Error) -> CosErr {
        tracing::error!("storage I/O error: {e}");
        CosErr::internal("We encountered an internal error. Please try again.")
    }
}
