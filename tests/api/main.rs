//! The one integration-test binary: every behaviour of the gateway from the
//! outside, over HTTP, on the memory store and on Redis.
#[macro_use]
mod helpers;

mod basics;
mod challenges;
mod login_flow;
mod logs;
mod prechat;
mod stores;
