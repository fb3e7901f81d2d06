//! skiff-runtime: Skiff's OCI runtime, with runc's command line.
//!
//! This first cut answers `--version` (and `-v`) the way runc does; the commands
//! (create, start, state, kill, delete, exec, ...) arrive with the runtime issue.

use std::process::ExitCode;

const VERSION: &str = env!("CARGO_PKG_VERSION");
/// The OCI runtime spec version this runtime implements.
const OCI_SPEC_VERSION: &str = "1.2.0";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("--version") | Some("-v") | Some("version") => {
            println!("skiff-runtime version {VERSION}");
            println!("spec: {OCI_SPEC_VERSION}");
            ExitCode::SUCCESS
        }
        Some("--help") | Some("-h") | None => {
            println!("usage: skiff-runtime [--version] COMMAND [ARGS...]");
            ExitCode::SUCCESS
        }
        Some(other) => {
            eprintln!("skiff-runtime: unknown command {other:?}");
            ExitCode::from(2)
        }
    }
}
