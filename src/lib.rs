//! cosmount: mount a Tencent Cloud COS bucket as a local directory.
//!
//! Layers (dependencies point one way): `fs` -> `cache`, `fs` -> `cos`; `cos` knows nothing of FUSE.

pub mod app;
pub mod cache;
pub mod cli;
pub mod cos;
pub mod credentials;
pub mod fs;
pub mod memory;
pub mod metrics;
pub mod tools;
