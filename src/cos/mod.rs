//! A client for the Tencent Cloud COS XML API. Knows nothing of FUSE.

pub mod acl;
pub mod bucket;
pub mod client;
pub mod cors;
pub mod crc64;
pub mod error;
pub mod memory;
pub mod multipart;
pub mod object;
pub mod retry;
pub mod sign;
pub mod store;
pub mod xml;

pub use client::{Client, ClientConfig, Credentials, PutBody};
pub use error::{CosError, ErrorKind, Result, ServiceError};
pub use store::ObjectStore;
