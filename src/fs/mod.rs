pub mod namespace;
pub mod spool;
pub mod write;
