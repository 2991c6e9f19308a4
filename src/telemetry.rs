//! Logging and metrics setup. (Implementation pending.)

/// Installs the tracing subscriber (`RUST_LOG`, default `info`).
pub fn init() {}
