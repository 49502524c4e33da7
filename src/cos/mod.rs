//! A client for the Tencent Cloud COS XML API. Knows nothing of FUSE.

pub mod crc64;
pub mod error;
pub mod memory;
pub mod sign;
pub mod store;

pub use error::{CosError, Result, ServiceError};
pub use store::ObjectStore;
