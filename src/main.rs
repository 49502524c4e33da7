//! The `cosmount` command: mount a bucket, or one of the tool subcommands.

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // Tool subcommands come first; anything else is `cosmount BUCKET MOUNTPOINT [-o ...]`, the
    // form mount(8) and fstab use, which has no subcommand word.
    match args.get(1).and_then(|a| a.to_str()) {
        Some("sign") | Some("presign") | Some("uploads") | Some("recover") => {
            cosmount::tools::main(args)
        }
        _ => cosmount::app::main(args),
    }
}
