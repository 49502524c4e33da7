//! The filesystem's error type and the one place where errors become errno.
//!
//! Every choice of errno is made in [`FsError::errno`], an exhaustive match (no catch-all over
//! our own variants), so a new variant does not compile until someone picks its errno. COS error
//! codes are strings, so that part of the match has a final arm: everything COS answered that
//! has no better meaning is EIO, logged with the code and request id by the caller.

use std::sync::Arc;

use fuser::Errno;

use super::namespace::NsError;
use super::write::WriteError;
use super::xattr::XattrError;
use crate::cos::{CosError, ErrorKind};

#[derive(Debug, thiserror::Error)]
pub enum FsError {
    /// Boxed: COS errors are large and rare, `FsResult` is on every hot path.
    #[error(transparent)]
    Cos(Box<CosError>),
    #[error("no such file or directory")]
    NotFound,
    #[error("not a directory")]
    NotADirectory,
    #[error("is a directory")]
    IsADirectory,
    /// A name over 255 bytes, or a full key over COS's 850-byte limit.
    #[error("name too long: {0}")]
    NameTooLong(String),
    /// A name no COS key can hold (e.g. not UTF-8, or containing CR/LF).
    #[error("invalid name: {0}")]
    InvalidName(String),
    #[error("unknown inode {0}")]
    UnknownInode(u64),
    #[error("unknown file handle {0}")]
    BadHandle(u64),
    #[error("read-only file system")]
    ReadOnly,
    /// The object changed (new ETag) while a handle had it open: reading on would mix versions.
    #[error("object {key} changed while open (ETag {opened} at open)")]
    ObjectChanged { key: String, opened: String },
    /// A GET answered with a different length than asked for.
    #[error("short read of {key}: wanted {wanted} bytes at {offset}, got {got}")]
    ShortRead {
        key: String,
        offset: u64,
        wanted: u64,
        got: u64,
    },
    /// An upload (write, flush, fsync, close) failed; the error picks its errno.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// A namespace operation (rename, mkdir, rmdir, symlink, chmod...) failed.
    #[error(transparent)]
    Namespace(Box<NsError>),
    #[error("file exists")]
    Exists,
    #[error("directory not empty")]
    NotEmpty,
    /// Something COS cannot store (hard links, device nodes, FIFOs...); says what.
    #[error("operation not supported: {0}")]
    Unsupported(&'static str),
    #[error("invalid argument: {0}")]
    InvalidArgument(&'static str),
    /// A bug or a cancelled task inside cosmount; never expected.
    #[error("internal error: {0}")]
    Internal(String),
    /// The same failure seen by several waiters (one GET feeds many reads).
    #[error("{0}")]
    Shared(Arc<FsError>),
}

pub type FsResult<T> = Result<T, FsError>;

impl From<CosError> for FsError {
    fn from(e: CosError) -> Self {
        FsError::Cos(Box::new(e))
    }
}

impl From<NsError> for FsError {
    fn from(e: NsError) -> Self {
        FsError::Namespace(Box::new(e))
    }
}

/// An error that a FUSE reply reports as an errno. Every implementation is in this file: it is
/// the one table of errno choices (SEMANTICS.md quotes it).
pub trait ToErrno: std::fmt::Display {
    fn errno(&self) -> Errno;

    /// Errors a user expects in normal operation (a missing file, a name too long, mkdir of
    /// an existing name); not worth a warning.
    fn is_routine(&self) -> bool {
        is_routine_errno(self.errno())
    }
}

fn is_routine_errno(e: Errno) -> bool {
    [
        Errno::ENOENT,
        Errno::ENOTDIR,
        Errno::EISDIR,
        Errno::EROFS,
        Errno::ENAMETOOLONG,
        Errno::EEXIST,
        Errno::ENOTEMPTY,
    ]
    .contains(&e)
}

impl FsError {
    /// A GET's If-Match failed: the object is no longer the version the handle read.
    pub fn is_object_changed(&self) -> bool {
        match self {
            FsError::ObjectChanged { .. } => true,
            FsError::Shared(inner) => inner.is_object_changed(),
            _ => false,
        }
    }
}

impl ToErrno for FsError {
    fn errno(&self) -> Errno {
        match self {
            FsError::Cos(e) => e.errno(),
            FsError::NotFound => Errno::ENOENT,
            FsError::NotADirectory => Errno::ENOTDIR,
            FsError::IsADirectory => Errno::EISDIR,
            FsError::NameTooLong(_) => Errno::ENAMETOOLONG,
            FsError::InvalidName(_) => Errno::EINVAL,
            FsError::UnknownInode(_) => Errno::ENOENT,
            FsError::BadHandle(_) => Errno::EBADF,
            FsError::ReadOnly => Errno::EROFS,
            // EIO, not ESTALE: the caller should see a hard error and reopen deliberately.
            FsError::ObjectChanged { .. } => Errno::EIO,
            FsError::ShortRead { .. } => Errno::EIO,
            FsError::Write(e) => e.errno(),
            FsError::Namespace(e) => e.errno(),
            FsError::Exists => Errno::EEXIST,
            FsError::NotEmpty => Errno::ENOTEMPTY,
            // EPERM is what link(2) and mknod(2) answer on filesystems without such objects.
            FsError::Unsupported(_) => Errno::EPERM,
            FsError::InvalidArgument(_) => Errno::EINVAL,
            FsError::Internal(_) => Errno::EIO,
            FsError::Shared(inner) => inner.errno(),
        }
    }

    fn is_routine(&self) -> bool {
        match self {
            FsError::Shared(inner) => inner.is_routine(),
            other => is_routine_errno(other.errno()),
        }
    }
}

/// What COS answered, by the meaning [`CosError::kind`] gave it.
impl ToErrno for CosError {
    fn errno(&self) -> Errno {
        match self.kind() {
            ErrorKind::NotFound => Errno::ENOENT,
            ErrorKind::AccessDenied => Errno::EACCES,
            ErrorKind::KeyTooLong => Errno::ENAMETOOLONG,
            ErrorKind::TooLarge => Errno::EFBIG,
            // The object changed between our look and this request (If-Match on a read or
            // a copy): a hard error; the caller logs which object.
            ErrorKind::PreconditionFailed => Errno::EIO,
            ErrorKind::NotSupported => Errno::ENOTSUP,
            ErrorKind::InvalidInput => Errno::EINVAL,
            // NoSuchBucket while mounted, a lost upload, a clock problem, a bad digest,
            // throttling that outlived the retries, 5xx, network errors...
            ErrorKind::NoSuchBucket
            | ErrorKind::NoSuchUpload
            | ErrorKind::ClockSkew
            | ErrorKind::BadDigest
            | ErrorKind::Other => Errno::EIO,
        }
    }
}

impl ToErrno for WriteError {
    fn errno(&self) -> Errno {
        match self {
            // Only these COS answers say something the writer can act on; any other
            // failure of an upload is EIO (the log has the code and request id).
            WriteError::Cos { source, .. } => match source.kind() {
                ErrorKind::AccessDenied => Errno::EACCES,
                ErrorKind::KeyTooLong => Errno::ENAMETOOLONG,
                ErrorKind::TooLarge => Errno::EFBIG,
                _ => Errno::EIO,
            },
            WriteError::Spool { source, .. } => source
                .raw_os_error()
                .map(Errno::from_i32)
                .unwrap_or(Errno::EIO),
            WriteError::ChecksumMismatch { .. } => Errno::EIO,
            WriteError::TooLarge { .. } => Errno::EFBIG,
            WriteError::Internal { .. } => Errno::EIO,
        }
    }
}

impl ToErrno for NsError {
    fn errno(&self) -> Errno {
        match self {
            // PreconditionFailed: the source changed between our look and the copy (EIO,
            // as for reads: one meaning for one condition).
            NsError::Cos { source, .. } => source.errno(),
            NsError::NotEmpty { .. } => Errno::ENOTEMPTY,
            NsError::NotASymlink { .. } => Errno::EINVAL,
            NsError::LinkTooLong { .. } => Errno::ENAMETOOLONG,
            NsError::IntoItself { .. } => Errno::EINVAL,
            NsError::ChecksumMismatch { .. } => Errno::EIO,
        }
    }
}

impl ToErrno for XattrError {
    fn errno(&self) -> Errno {
        match self {
            XattrError::NoData => Errno::ENODATA,
            XattrError::Range(_) => Errno::ERANGE,
            XattrError::ReadOnly(_) => Errno::EPERM,
            XattrError::TooBig(_) => Errno::E2BIG,
            XattrError::Exists => Errno::EEXIST,
            XattrError::NotSupported(_) | XattrError::ForeignNamespace(_) => Errno::ENOTSUP,
            XattrError::Invalid(_) => Errno::EINVAL,
            XattrError::Fs(e) => e.errno(),
        }
    }

    /// Misses and probes tools make all the time; not worth a warning in the log.
    fn is_routine(&self) -> bool {
        match self {
            XattrError::NoData | XattrError::Range(_) => true,
            // Tools probe system.posix_acl_* and trusted.* on every copy: answered ENOTSUP.
            XattrError::ForeignNamespace(_) => true,
            XattrError::Fs(e) => e.is_routine(),
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cos::ServiceError;

    fn service(code: &str, status: u16) -> FsError {
        FsError::from(CosError::Service(ServiceError {
            status,
            code: code.into(),
            ..Default::default()
        }))
    }

    #[test]
    fn cos_codes_map_as_designed() {
        assert_eq!(service("NoSuchKey", 404).errno(), Errno::ENOENT);
        assert_eq!(service("AccessDenied", 403).errno(), Errno::EACCES);
        assert_eq!(service("KeyTooLong", 400).errno(), Errno::ENAMETOOLONG);
        assert_eq!(service("PreconditionFailed", 412).errno(), Errno::EIO);
        assert_eq!(service("SlowDown", 503).errno(), Errno::EIO);
        let long = FsError::from(CosError::InvalidInput(
            "key too long (KeyTooLong): 900 bytes".into(),
        ));
        assert_eq!(long.errno(), Errno::ENAMETOOLONG);
        let shared = FsError::Shared(Arc::new(FsError::NotFound));
        assert_eq!(shared.errno(), Errno::ENOENT);
        assert!(shared.is_routine());
        assert!(!service("InternalError", 500).is_routine());
    }
}
