//! The use cases, over a small core (docs/architecture.md#the-core-and-its-families).
//!
//! [`core`] is the floor: [`Core`] holds what every feature needs — the
//! store, the live configuration and channels, the events, the pepper,
//! the record locks and the outbox's entry points, in private fields —
//! with the operations they share: the unit of work ([`work`]: load the
//! interaction and its subject, let the domain decide, commit
//! atomically, retry on a concurrent write), load, send, emit and
//! enqueue. No file of the core imports a family
//! (docs/decisions/0460-the-core-is-the-floor-and-families-are-functions.md).
//!
//! Each feature family is a module of functions that take `&Core` (never
//! methods on it):
//!
//! - the interaction and its proofs: [`interactions`], [`login`],
//!   [`oidc`] and [`oidc_logout`], [`assertion`], [`assurance`],
//!   [`challenges`] (single sends, the ladder and app approval, each a
//!   file of its own), [`code_entry`] (a code typed on the gateway's
//!   page), [`network`] (silent network authentication), [`wallet`]
//!   (a credential from the customer's wallet) and [`registrations`]
//!   (the customer's wallets registered for payments), [`voice`]
//!   (codes read by a call), [`number_checks`];
//! - what providers report back: [`receipts`] and [`reports`],
//!   [`identity_changes`] (a WhatsApp user who changed);
//! - who the customer is and stays: [`recognition`], [`subjects`],
//!   [`revocation`], [`ssf`], [`website`], [`store_epoch`];
//! - the operators and auditors: [`operator`] (teams and channels
//!   written through the API, and the worker that keeps them in force on
//!   every instance), [`console`] (the agents' sign-in), [`audit`] (the
//!   trail's pages, head and sinks);
//! - [`bots`]: a bot platform's turn over the API's use cases; [`mcp`]:
//!   the tools of the MCP server over them, and its sessions.
//!
//! A family calls another only through its public functions, so every
//! call between them is an import.
//!
//! Every use case takes `now`; the workers (`expiry`, `poller`,
//! `outbox`) read the injected clock. This file only declares and
//! re-exports.
pub mod assertion;
pub mod assurance;
pub mod audit;
pub mod bots;
pub mod challenges;
pub mod code_entry;
pub mod console;
pub mod core;
mod expiry;
pub mod identity_changes;
pub mod interactions;
pub mod links;
pub mod login;
pub mod mcp;
pub mod mcp_oauth;
pub mod network;
pub mod number_checks;
pub mod oidc;
pub mod oidc_logout;
pub mod operator;
mod poller;
mod polls;
mod provider_tokens;
pub mod receipts;
pub mod recognition;
pub mod registrations;
pub mod reports;
pub mod revocation;
pub mod ssf;
pub mod store_epoch;
pub mod subjects;
pub mod voice;
pub mod wallet;
pub mod website;
mod workers;

pub use provider_tokens::{actor_person, actor_person_of, ActorRefusal, Person};

pub use self::core::view;
use self::core::{change, create, doors, due_teams, outbox, records, work, writes};
pub use self::core::{
    decode_interaction, encode_interaction, outbox_left, Bookkeeping, Chat, Core, Dispatcher,
    InteractionView, Live, Outbox, OutboxItem, Task, OUTBOX_BATCH,
};

pub use assertion::AssertionOutcome;
pub use assurance::{AssuranceAsk, AssuranceView};
pub use audit::spawn_sinks;
pub use challenges::read::{ChallengeView, DeliveryErrorView, StartedChallenge};
pub use challenges::verify::{RevealedCode, Verified};
pub use expiry::Sweeper;
pub use interactions::{ListQuery, NewInteraction, Page};
pub use login::{
    Callback, CallbackOutcome, IssuedLink, LinkProvider, LinkRequest, ProviderLink,
    ShortLinkTarget, Speaks,
};
pub use oidc::{ProviderAnswer, ProviderFinish, ProviderRefusal, ProviderStart};
pub use oidc_logout::LogoutRefusal;
pub use poller::Poller;
pub use polls::Polls;
pub use reports::Receipt;
pub use ssf::SsfRefusal;
pub use store_epoch::run_store_watch;
pub use website::SignatureHeaders;
pub use workers::Workers;
