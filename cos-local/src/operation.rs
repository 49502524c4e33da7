//! The operation table is shared with cosmount's client and the tests: it lives in the
//! cos-protocol crate ([`cos_protocol::operation`]); this path keeps `crate::operation` working.

pub use cos_protocol::operation::*;
