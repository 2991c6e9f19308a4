//! The `chatgate` binary: parse the command line, hand over to the library.
use std::process::ExitCode;

/// mimalloc instead of the system allocator: glibc's malloc and free were
/// about a fifth of the gateway's CPU under load (a profile of the load test).
/// Built with the `system-allocator` feature, the system's instead, for a
/// heap profiler (docs/performance.md#what-a-team-costs).
#[cfg(not(feature = "system-allocator"))]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    chatgate::cli::main()
}
