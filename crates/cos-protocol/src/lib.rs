//! The facts of the Tencent COS XML API that both sides of the wire must agree on, in one
//! place: cosmount's client signs, checks and counts with them, cos-local verifies, enforces
//! and dispatches with them, and the tests of both count by them.
//!
//! Pure data and pure functions only (no I/O, no async, no HTTP types), so the server does not
//! pull the FUSE client's dependencies and an edit to the filesystem code rebuilds neither this
//! crate nor the server.
//!
//! - [`sign`]: the q-sign request signature (signing and the parts a verifier needs).
//! - [`crc64`]: CRC-64/XZ (ECMA-182), as `x-cos-hash-crc64ecma` reports it, and its combine.
//! - [`limits`]: key length, part numbers and sizes, page sizes, user-metadata size.
//! - [`acl`]: canned ACL names, grant headers, permissions, grantee group URIs.
//! - [`storage_class`]: the storage classes `x-cos-storage-class` accepts.
//! - [`cors`]: bucket CORS rules, their XML body and how a rule matches a request.
//! - [`operation`]: the COS API operation of a request, from method, key, query and headers.

pub mod acl;
pub mod cors;
pub mod crc64;
pub mod limits;
pub mod operation;
pub mod sign;
pub mod storage_class;
pub mod xml;

pub use operation::Operation;
