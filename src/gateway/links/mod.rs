//! Challenge links (docs/architecture.md#challenge-links): a code in a
//! URL that a browser opens, naming a team, an interaction and a
//! challenge, answering a page. Each kind of link is a [`LinkKind`] —
//! its name, its key's prefix, its path, what its page needs of the
//! team, how its challenge opens, how a proof made on its page is bound
//! to the chat — implemented once and registered on one line of
//! [`KINDS`], both in [`kinds`]. [`save()`] and [`open()`] are written
//! once over it: the one key ([`key`]), the one stored form
//! (`records::StoredLink`), read through the store's typed read
//! (CONTRIBUTING.md#add-a-proof-on-a-page,
//! docs/decisions/0506-a-link-kind-is-a-trait.md,
//! docs/decisions/0530-a-link-s-key-is-its-kind-s-prefix.md).
//!
//! This file is the room's face: what lives here is in its children, the
//! trait in `kind.rs`, the kinds in `kinds.rs`.
pub mod bind;
pub mod kind;
pub mod kinds;
pub mod open;
pub mod save;
pub mod state;
pub mod words;

pub use bind::binding;
pub use kind::{Binds, LinkKind, Registered};
// Every kind and the registry: a kind added there needs no line here.
pub use kinds::*;
pub use open::{open, team_of, Opened};
pub use save::{save, save_for};
pub use state::{state_of, LinkState};
pub use words::{named, speaks, Named, Speaks};
