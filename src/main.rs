//! The `chatgate` binary: parse the command line, hand over to the library.
use std::process::ExitCode;

/// mimalloc instead of the system allocator: glibc's malloc and free were
/// about a fifth of the gateway's CPU under load (a profile of the load test).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    chatgate::cli::main()
}
