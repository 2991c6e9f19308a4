//! The operator API's room (docs/operator-api.md): the teams and channels
//! written through it, kept in the store under their own hash tags, each
//! write compare-and-set against the `ETag` its writer names.
//!
//! - [`resource`]: what a resource of the operator API is (a team, a
//!   channel), the one trait the HTTP writes are written over, and what a
//!   resource kept by name beside the teams' index is (a channel), the
//!   trait the look, the export and the write-back are written over;
//!   [`kept`]: each such resource as that code sees it, one entry of
//!   [`KEPT`];
//! - [`teams`] and [`channels`]: its two implementations, a write or a delete of one, its
//!   `config.changed` entry in the same commit, then the index moved;
//!   [`keys`]: a team's API and security keys added or removed one at a time;
//!   [`claims`]: each API key claimed in the store by the one team that holds it;
//!   [`uses`]: each API channel a team's write lists claimed before it commits;
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
pub mod kept;
pub mod keys;
pub mod look;
pub mod resource;
pub mod restore;
pub mod teams;
pub mod uses;

use resource::Resource;

/// Every resource kept by name beside the index of the API teams, in the
/// order they are put in force (before the teams, which are built against
/// them): one line a resource. What reads them when they move, keeps them
/// across a reload, writes them back, exports and imports them, and the
/// paths whose bodies may be up to the operator API's limit, is written
/// once over this list (CONTRIBUTING.md#add-an-operator-resource).
pub static KEPT: &[kept::Registered] = &[kept::Registered::of::<channels::Channels>()];

/// The URL prefix of every resource of the operator API: the teams', then
/// each of [`KEPT`].
pub fn resource_paths() -> impl Iterator<Item = &'static str> {
    std::iter::once(teams::Teams::PATH).chain(KEPT.iter().map(|k| k.path))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::keys;

    #[test]
    fn every_kept_resource_has_keys_and_a_path_of_its_own() {
        let mut seen = std::collections::BTreeSet::new();
        // The teams' own keys under `{~teams}`: their index, its parts and
        // the generation.
        for taken in ["ix", "gen", "key", "cu"] {
            seen.insert(taken.to_string());
        }
        for k in KEPT {
            assert!(seen.insert(k.tag.to_string()), "{} tag {}", k.what, k.tag);
            assert!(
                seen.insert(k.index.to_string()),
                "{} index {}",
                k.what,
                k.index
            );
            assert_eq!((k.store_key)("x"), keys::api_kept(k.tag, "x"), "{}", k.what);
        }
        let paths: Vec<&str> = resource_paths().collect();
        let distinct: std::collections::BTreeSet<&str> = paths.iter().copied().collect();
        assert_eq!(distinct.len(), paths.len(), "{paths:?}");
        let exported: std::collections::BTreeSet<&str> =
            KEPT.iter().map(|k| k.exported_as).collect();
        assert_eq!(exported.len(), KEPT.len());
        assert!(!exported.contains("teams"));
    }
}
