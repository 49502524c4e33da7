//! A client for the Tencent Cloud COS XML API. Knows nothing of FUSE.

pub mod acl;
pub mod bucket;
pub mod buffers;
pub mod client;
pub mod cors;
pub mod error;
pub mod memory;
pub mod multipart;
pub mod object;
pub mod retry;
pub mod store;
pub mod xml;

// The protocol facts shared with cos-local live in the cos-protocol crate; these paths keep
// `crate::cos::sign`, `crate::cos::crc64`, ... working.
pub use cos_protocol::{crc64, limits, operation, sign, storage_class};

pub use client::{Client, ClientConfig, Credentials, PutBody};
pub use error::{CosError, ErrorKind, Result, ServiceError};
pub use store::ObjectStore;
