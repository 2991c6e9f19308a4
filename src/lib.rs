//! chatgate — a self-hosted authentication gateway for conversational messaging.
//!
//! # Map
//!
//! ```text
//!  HTTP request
//!     │
//!  http/        axum routers, one file per resource; extractors (API key, JSON),
//!     │         problem+json errors. Reads the clock once per request.
//!     │         Also the agent console page (`http/console/`), which
//!     │         calls this same API from the browser.
//!     ▼
//!  gateway/     a small core (`gateway::core`, below the families: the store,
//!     │         the live config and channels, events, the unit of work) and
//!     │         one module of use cases per feature family over it
//!     │         ("issue a login link", "start a challenge", ...), each a
//!     │         function taking `&Core`. A use case that changes an
//!     │         interaction is one unit of work (`gateway::work`): load
//!     │         records, let the domain decide, commit atomically
//!     │         (retrying on a concurrent write) together with the events
//!     │         and notices it causes (the outbox). The background
//!     │         workers, each a type app.rs starts and stops: the
//!     │         `Dispatcher` delivers those from the store, at least once
//!     │         (`gateway::outbox`); the `Sweeper` handles each team's due
//!     │         queue (`gateway::expiry`) and hands provider round trips
//!     │         to the `Poller` (`gateway::poller`).
//!     ├──► domain/    the rules: interaction status, tokens, signatures,
//!     │               assertions, secrets. Plain types and functions that
//!     │               take `now` and know nothing of HTTP or Redis, nor
//!     │               how a value is written (but for the token claims
//!     │               it signs and verifies): the stored forms are in
//!     │               `gateway::records`, the API's in `gateway::view`.
//!     ├──► store/     a small versioned key-value trait with compare-and-set
//!     │               transactions; `memory` and `redis` implementations.
//!     ├──► channels/  sending text into chat / SMS / e-mail providers.
//!     ├──► number_checks/  asking a team's operator (CAMARA) or Twilio
//!     │               Lookup about a phone number before a code goes to it.
//!     ├──► network_verification/  asking a team's provider (CAMARA
//!     │               Number Verification) whether the phone that opened
//!     │               a network link holds the number on file.
//!     └──► events/    the publisher the dispatcher hands events to, the
//!                     event log (memory, or a Redis stream per team) and the
//!                     live stream `GET /v1/events` reads.
//!
//!  oidc/        hosted login with a team's OpenID Connect provider:
//!               discovery, key set, ID and logout token checks (plain
//!               functions).
//!  wallet_status.rs  the Token Status Lists the wallet method asks:
//!               fetched, kept for their `ttl`, verified at each use.
//!  ssf/         the Shared Signals receiver's rules: Security Event Token
//!               claims, subjects, event types (plain functions).
//!  config/      system, team and channel files; `${VAR}` and env overrides.
//!  spans.rs     the spans of traces (request, outbound call, commit) and
//!               the `traceparent` in and out; `telemetry/` exports them.
//!  waits.rs     which provider a request waits on, for its deadline's answer.
//!  fared.rs     how each destination fares: one warning when it starts
//!               failing, one line when it recovers.
//!  answers.rs   an outbound call's answer read up to a cap.
//!  app.rs       builds everything from a config, binds, serves, shuts down.
//!  server/      the connection loop: header/idle timeouts, connection cap.
//!  cli.rs       `serve`, `check-config`, `keygen`, `sign`.
//! ```
//!
//! Time is a parameter: every use case and domain function takes a
//! [`time::Timestamp`] instead of reading the clock; the background
//! workers, and a use case that waits on a provider's round trip, read
//! the injected [`time::Clock`] (docs/architecture.md#time-is-a-parameter).
//! So expiry and lockout rules are tested with a [`time::ManualClock`].
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod answers;
pub mod app;
pub mod channels;
pub mod cli;
pub mod config;
#[cfg(test)]
mod counted_allocations;
pub mod domain;
pub mod error;
pub mod events;
pub mod fared;
pub mod gateway;
pub mod http;
pub mod network_verification;
pub mod number_checks;
pub mod oidc;
pub mod outbound;
mod server;
pub mod spans;
pub mod ssf;
pub mod start_phases;
pub mod store;
pub mod telemetry;
pub mod time;
pub mod trusted_lists;
pub mod waits;
pub mod wallet_status;

pub use error::{Error, Result};
