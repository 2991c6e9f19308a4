//! HTTP API. (Implementation pending.)
