//! `cosmount BUCKET MOUNTPOINT [-o opts]`: parse, check the bucket, mount.

use std::ffi::OsString;
use std::process::ExitCode;

pub fn main(_args: Vec<OsString>) -> ExitCode {
    eprintln!("cosmount: mounting is not built yet");
    ExitCode::from(2)
}
