//! The one error type of the COS client. It never mentions errno: `fs/error.rs` maps it.

use std::fmt;

/// An error answered by COS itself (an HTTP error status, or a 200 whose body is `<Error>`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceError {
    /// HTTP status (200 for an `<Error>` inside a 200 body, as Complete and Copy can send).
    pub status: u16,
    /// COS error code, e.g. `NoSuchKey`; for bodiless answers (HEAD) a code derived from the
    /// status (`NoSuchKey`/`NoSuchBucket` for 404, `AccessDenied` for 403, ...).
    pub code: String,
    pub message: String,
    /// `x-cos-request-id` header or `<RequestId>`.
    pub request_id: Option<String>,
    pub trace_id: Option<String>,
    pub resource: Option<String>,
    /// cos-local (and reportedly COS) return the server's StringToSign on SignatureDoesNotMatch.
    pub string_to_sign: Option<String>,
    /// The `Date` header of the answer, used to learn the clock offset on skew errors.
    pub server_date: Option<String>,
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "COS {} (HTTP {})", self.code, self.status)?;
        if !self.message.is_empty() {
            write!(f, ": {}", self.message)?;
        }
        if let Some(id) = &self.request_id {
            write!(f, " [request id {id}]")?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CosError {
    /// COS answered with an error.
    #[error("{0}")]
    Service(ServiceError),
    /// No answer: connection refused, DNS failure, timeout, connection reset.
    #[error("network error talking to {endpoint}: {message}")]
    Network { endpoint: String, message: String },
    /// An answer we could not make sense of (bad XML, missing ETag, CRC mismatch...).
    #[error("invalid response from COS: {0}")]
    InvalidResponse(String),
    /// The caller asked for something COS cannot do (key too long, too many keys...).
    #[error("invalid request: {0}")]
    InvalidInput(String),
    /// A local file (request body source or download target) failed.
    #[error("local I/O error: {0}")]
    Io(#[from] std::io::Error),
}

/// The meaning of a [`CosError`] for the layers above the client (see [`CosError::kind`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// No such object (or copy source).
    NotFound,
    NoSuchBucket,
    /// The multipart upload is gone (completed, aborted or expired).
    NoSuchUpload,
    /// An `If-Match` (or copy-source `If-Match`) condition failed: the object changed.
    PreconditionFailed,
    /// Refused: bad key, signature or permissions.
    AccessDenied,
    /// The request's time is too far from the server's.
    ClockSkew,
    KeyTooLong,
    /// The body is over what the operation accepts.
    TooLarge,
    /// The body did not match its Content-MD5.
    BadDigest,
    /// The store does not offer this operation (501 NotImplemented).
    NotSupported,
    /// The caller asked for something COS cannot do (before any request was sent).
    InvalidInput,
    /// Anything else: network errors, 5xx after retries, bad answers.
    Other,
}

pub type Result<T, E = CosError> = std::result::Result<T, E>;

impl CosError {
    pub fn service(&self) -> Option<&ServiceError> {
        match self {
            CosError::Service(s) => Some(s),
            _ => None,
        }
    }

    /// The COS error code, if COS answered.
    pub fn code(&self) -> Option<&str> {
        self.service().map(|s| s.code.as_str())
    }

    /// The HTTP status, if COS answered.
    pub fn status(&self) -> Option<u16> {
        self.service().map(|s| s.status)
    }

    pub fn is_not_found(&self) -> bool {
        self.kind() == ErrorKind::NotFound
    }

    /// What the error means to a caller, decided here once: the filesystem matches on this
    /// and never reads COS codes or HTTP statuses itself.
    pub fn kind(&self) -> ErrorKind {
        let CosError::Service(s) = self else {
            return match self {
                CosError::InvalidInput(msg)
                    if msg.contains("KeyTooLong") || msg.contains("key too long") =>
                {
                    ErrorKind::KeyTooLong
                }
                CosError::InvalidInput(_) => ErrorKind::InvalidInput,
                _ => ErrorKind::Other,
            };
        };
        match s.code.as_str() {
            "NoSuchKey" | "NoSuchCopySource" => return ErrorKind::NotFound,
            "NoSuchUpload" => return ErrorKind::NoSuchUpload,
            "NoSuchBucket" => return ErrorKind::NoSuchBucket,
            "PreconditionFailed" => return ErrorKind::PreconditionFailed,
            "AccessDenied" | "InvalidAccessKeyId" | "SignatureDoesNotMatch" => {
                return ErrorKind::AccessDenied
            }
            "RequestTimeTooSkewed" => return ErrorKind::ClockSkew,
            "KeyTooLong" => return ErrorKind::KeyTooLong,
            "EntityTooLarge" => return ErrorKind::TooLarge,
            "BadDigest" | "InvalidDigest" => return ErrorKind::BadDigest,
            "NotImplemented" | "MethodNotAllowed" => return ErrorKind::NotSupported,
            _ => {}
        }
        // Bodiless answers (HEAD) carry a code derived from the status only.
        match s.status {
            404 => ErrorKind::NotFound,
            412 => ErrorKind::PreconditionFailed,
            403 => ErrorKind::AccessDenied,
            501 => ErrorKind::NotSupported,
            _ => ErrorKind::Other,
        }
    }

    pub fn request_id(&self) -> Option<&str> {
        self.service().and_then(|s| s.request_id.as_deref())
    }
}
