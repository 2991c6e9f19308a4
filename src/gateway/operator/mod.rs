//! The operator API's room (docs/operator-api.md): the teams and channels
//! written through it, kept in the store under their own hash tags, each
//! write compare-and-set against the `ETag` its writer names.
//!
//! - [`resource`]: what a resource of the operator API is (a team, a
//!   channel), the one trait the HTTP writes are written over;
//! - [`teams`] and [`channels`]: its two implementations, a write or a delete of one, its
//!   `config.changed` entry in the same commit, then the index moved;
//!   [`keys`]: a team's API and security keys added or removed one at a time;
//!   [`claims`]: each API key claimed in the store by the one team that holds it;
//! - [`forms`]: the stored (sealed) form of a body, and what every write
//!   shares (conditions, secrets kept, the stored forms read);
//! - [`index`]: the index of the API teams, its generation, the marks of
//!   the writes under way;
//! - [`look`]: what the store holds that an instance has not put in force;
//! - [`in_force`]: the worker that keeps them in force on this instance;
//! - [`restore`]: written back when the store comes back empty, exported
//!   and imported.
pub mod channels;
pub mod claims;
pub mod forms;
pub mod in_force;
pub mod index;
pub mod keys;
pub mod look;
pub mod resource;
pub mod restore;
pub mod teams;
