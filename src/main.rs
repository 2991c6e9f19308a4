//! The `chatgate` binary: parse the command line, hand over to the library.
use std::process::ExitCode;

fn main() -> ExitCode {
    chatgate::cli::main()
}
