//! Logging and metrics setup. (Implementation pending.)
