//! Tool subcommands: `cosmount sign`, `cosmount presign`.

use std::ffi::OsString;
use std::process::ExitCode;

pub fn main(_args: Vec<OsString>) -> ExitCode {
    eprintln!("cosmount: this subcommand is not built yet");
    ExitCode::from(2)
}
