//! Challenge links (docs/architecture.md#challenge-links): a code in a
//! URL that a browser opens, naming a team, an interaction and a
//! challenge, answering a page. Each kind of link is a [`LinkKind`] —
//! its name, its key's prefix, its path, what its page needs of the
//! team, how its challenge opens, how a proof made on its page is bound
//! to the chat — implemented once and registered on one line of
//! [`KINDS`], both in [`kinds`]. [`save()`] and [`open()`] are written
//! once over it: the one key ([`key`]), the one stored form
//! (`records::StoredLink`), read through the store's typed read
//! (CONTRIBUTING.md#add-a-page-a-challenge-link,
//! docs/decisions/0506-a-link-kind-is-a-trait.md,
//! docs/decisions/0530-a-link-s-key-is-its-kind-s-prefix.md).
pub mod bind;
pub mod kinds;
pub mod open;
pub mod save;

use uuid::Uuid;

use super::Core;
use crate::config::Team;
use crate::domain::challenge::{Challenge, PastOutcome};
use crate::domain::interaction::InteractionRecord;
use crate::store::keys;
use crate::time::Timestamp;

pub use bind::{binding, Binds};
// Every kind and the registry: a kind added there needs no line here.
pub use kinds::*;
pub use open::{open, team_of, Opened};
pub use save::save;

/// A kind of challenge link: one page of the gateway that a code in a URL
/// opens (CONTRIBUTING.md#add-a-page-a-challenge-link).
pub trait LinkKind: Send + Sync + 'static {
    /// What the team must have for its page to answer (its section:
    /// `[number_verification]`, `[wallet]`; `()` when nothing).
    type Needs: Send + Sync + 'static;

    /// Its name, in a log line and a metric label (`"network"`).
    const NAME: &'static str;
    /// The prefix of its key (`"n:"`): one no other key has, without a
    /// team's hash tag (the code is all a browser brings). The key is
    /// [`key`]'s.
    const PREFIX: &'static str;
    /// The first segment of its page's path (`"n"`: `/n/{code}`).
    const PATH: &'static str;
    /// How a proof made on its page is bound to the chat
    /// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
    const BINDS: Binds;

    /// What `team`'s page of this kind needs; `None`: the team no longer
    /// has it, and the link answers as one whose interaction is gone.
    fn needs(team: &Team) -> Option<&Self::Needs>;

    /// Whether the open challenge `c` the link names waits for this page
    /// (a proof already made waits for its binding code instead).
    fn opens(c: &Challenge) -> bool;
}

/// A link kind as the code written over every one sees it: one line of
/// [`KINDS`], each member made from its [`LinkKind`].
#[derive(Clone, Copy, Debug)]
pub struct Registered {
    pub name: &'static str,
    pub prefix: &'static str,
    pub path: &'static str,
    pub binds: Binds,
}

impl Registered {
    pub const fn of<K: LinkKind>() -> Registered {
        Registered {
            name: K::NAME,
            prefix: K::PREFIX,
            path: K::PATH,
            binds: K::BINDS,
        }
    }
}

/// The key of the link of kind `K` that `code` names: `K::PREFIX`, then
/// the code hashed (`keys::challenge_link`). A kind missing from
/// [`KINDS`] does not build: the registry's tests see every kind that
/// has a key.
pub fn key<K: LinkKind>(code: &str) -> String {
    const {
        assert!(
            registered(Registered::of::<K>()),
            "a link kind not in links::KINDS"
        )
    };
    keys::challenge_link(K::PREFIX, code)
}

/// Whether one line of [`KINDS`] is `kind`: its name, prefix and path
/// all alike, so that a kind borrowing another's prefix, but not on
/// `KINDS` itself, does not build either.
const fn registered(kind: Registered) -> bool {
    let mut i = 0;
    while i < KINDS.len() {
        let k = &KINDS[i];
        if same(k.name.as_bytes(), kind.name.as_bytes())
            && same(k.prefix.as_bytes(), kind.prefix.as_bytes())
            && same(k.path.as_bytes(), kind.path.as_bytes())
        {
            return true;
        }
        i += 1;
    }
    false
}

/// `a == b`, where a `const fn` can ask it.
const fn same(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let mut i = 0;
    while i < a.len() {
        if a[i] != b[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// Where a link's challenge stands, for its page, its poll and its end
/// page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkState {
    /// Open, and waiting for its page.
    Open,
    /// A proof made on the page waits for its binding code to be typed
    /// into the chat.
    Answered,
    /// It succeeded.
    Done,
    /// It failed.
    Failed,
    /// Expired or replaced (or its interaction gone).
    Gone,
}

impl LinkState {
    /// Whether the link was used: its challenge succeeded, or a proof made
    /// on its page waits for its binding code.
    pub fn used(self) -> bool {
        matches!(self, LinkState::Answered | LinkState::Done)
    }
}

/// Where challenge `cid` of `rec` (`None`: forgotten) stands at `now`, for
/// a link of kind `K`.
pub fn state_of<K: LinkKind>(
    rec: Option<&InteractionRecord>,
    cid: Uuid,
    now: Timestamp,
) -> LinkState {
    let Some(rec) = rec else {
        return LinkState::Gone;
    };
    match rec.open_challenge(now).filter(|c| c.id == cid) {
        Some(c) if c.awaits_code() => return LinkState::Answered,
        Some(c) if K::opens(c) => return LinkState::Open,
        _ => {}
    }
    match rec.past_challenges.iter().find(|p| p.id == cid) {
        Some(p) if p.outcome == PastOutcome::Succeeded => LinkState::Done,
        Some(p) if p.outcome == PastOutcome::Failed => LinkState::Failed,
        _ => LinkState::Gone,
    }
}

/// Whose language a page speaks: a team's channel, in `locale` (an entry
/// of its `supported`; docs/api.md#languages).
#[derive(Debug, Clone)]
pub struct Speaks {
    pub team: String,
    pub channel: String,
    pub locale: String,
}

/// What a page of a link names, so that a link relayed out of its
/// conversation says where it belongs: the team (its `display_name`,
/// else its id) and the conversation's channel in words
/// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
#[derive(Debug, Clone)]
pub struct Named {
    pub team_name: String,
    pub channel_words: &'static str,
}

/// What the pages of `rec`'s links name.
pub fn named(core: &Core, team: &Team, rec: &InteractionRecord) -> Named {
    let words = core.config().channels.get(&rec.channel);
    Named {
        team_name: team.display_name.clone().unwrap_or_else(|| team.id.clone()),
        channel_words: words.map_or("chat", |c| c.kind.in_words()),
    }
}

/// The language `rec`'s pages speak.
pub fn speaks(team: &Team, rec: &InteractionRecord) -> Speaks {
    Speaks {
        team: team.id.clone(),
        channel: rec.channel.clone(),
        locale: rec
            .locale(&team.settings_for(&rec.channel).locale)
            .to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_link_kind_has_a_name_a_key_and_a_path_of_its_own() {
        let mut seen = std::collections::BTreeSet::new();
        // The short login link's, which is no challenge link.
        seen.insert("l:".to_string());
        seen.insert("/l".to_string());
        for k in KINDS {
            assert!(seen.insert(k.name.to_string()), "{} name", k.name);
            assert!(seen.insert(k.prefix.to_string()), "{} prefix", k.name);
            assert!(seen.insert(format!("/{}", k.path)), "{} path", k.name);
            let key = keys::challenge_link(k.prefix, "code");
            assert!(key.starts_with(k.prefix), "{}: {key}", k.name);
            assert!(!key.contains("code"), "{}: the key holds the code", k.name);
        }
    }

    /// The keys of the kinds as the stored links have them: `n:`, `wl:`
    /// and `ce:` then the code's hash, as `store/keys.rs` spelled them a
    /// kind each before the key was derived from the prefix.
    #[test]
    fn a_kind_s_key_is_the_key_its_stored_links_have() {
        let hash = "5694d08a2e53ffcae0c3103e5ad6f607";
        assert_eq!(key::<Network>("code"), format!("n:{hash}"));
        assert_eq!(key::<Wallet>("code"), format!("wl:{hash}"));
        assert_eq!(key::<CodeEntry>("code"), format!("ce:{hash}"));
        assert!(KINDS.iter().all(|k| registered(*k)));
        let like = |name, prefix, path| Registered {
            name,
            prefix,
            path,
            ..KINDS[0]
        };
        assert!(!registered(like("consent", "k:", "k")));
        // A kind borrowing a registered kind's prefix is not registered.
        assert!(!registered(like("consent", "n:", "k")));
        assert!(!registered(like(KINDS[0].name, KINDS[0].prefix, "k")));
    }

    #[test]
    fn the_key_table_names_every_link_kind() {
        let doc = include_str!("../../../docs/architecture.md");
        for k in KINDS {
            let row = format!("| `{}<hash>` |", k.prefix);
            assert!(doc.contains(&row), "{}: no row {row}", k.name);
        }
    }
}
