//! The one integration-test binary: every behaviour of the gateway from the
//! outside, over HTTP, on the memory store and on Redis; and the store
//! contract suite run against both stores.
#[macro_use]
mod helpers;
mod redis_support;

mod abuse;
mod assurance;
mod binding;
mod browser;
mod callers;
mod challenges;
mod channels;
mod ciba;
mod cluster_outage;
mod connections;
mod delivery;
mod events;
mod history;
mod hostile_clients;
mod identifiers;
mod interactions;
mod interop;
mod ladder;
mod lockouts;
mod login_callback;
mod logs;
mod metrics;
mod oidc;
mod oidc_attacks;
mod oidc_logout;
mod oidc_provider;
mod openapi;
mod operations;
mod outbox;
mod outbox_drain;
mod outbox_lanes;
mod pages;
mod prechat;
mod problems;
mod properties;
mod receipts;
mod recognized;
mod reload;
mod round_trips;
mod ssf;
mod stalls;
mod step_up;
mod store_contract;
mod store_reset;
mod stores;
mod traces;
mod voice;
mod whatsapp_templates;
