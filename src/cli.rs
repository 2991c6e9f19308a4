//! The command line. (Implementation pending.)
use std::process::ExitCode;

pub fn main() -> ExitCode {
    ExitCode::SUCCESS
}
