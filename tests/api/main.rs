//! The one integration-test binary: every behaviour of the gateway from the
//! outside, over HTTP, on the memory store and on Redis; and the store
//! contract suite run against both stores.
#[macro_use]
mod helpers;
mod redis_support;

mod abuse;
mod assurance;
mod basics;
mod binding;
mod browser;
mod challenges;
mod channels;
mod connections;
mod edge;
mod events;
mod hardening;
mod identifiers;
mod integrity;
mod login_flow;
mod logs;
mod metrics;
mod oidc;
mod oidc_provider;
mod openapi;
mod outbox;
mod outbox_lanes;
mod pages;
mod prechat;
mod properties;
mod recognized;
mod round_trips;
mod store_contract;
mod stores;
