//! The trait every kind of challenge link implements ([`LinkKind`]),
//! how a proof made on its page is bound to the chat ([`Binds`]), and
//! the line of the registry each kind is ([`Registered`]); the registry
//! itself and its checks are `kinds.rs`'s
//! (docs/decisions/0506-a-link-kind-is-a-trait.md).
use crate::config::Team;
use crate::domain::challenge::Page;

/// A kind of challenge link: one page of the gateway that a code in a URL
/// opens (CONTRIBUTING.md#add-a-proof-on-a-page).
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
    /// The page it opens: a challenge waits for it as its proof says
    /// (`Challenge::opens_on`), and each page has one kind.
    const PAGE: Page;

    /// What `team`'s page of this kind needs; `None`: the team no longer
    /// has it, and the link answers as one whose interaction is gone.
    fn needs(team: &Team) -> Option<&Self::Needs>;
}

/// A link kind as the code written over every one sees it: one line of
/// `KINDS`, each member made from its [`LinkKind`].
#[derive(Clone, Copy, Debug)]
pub struct Registered {
    pub name: &'static str,
    pub prefix: &'static str,
    pub path: &'static str,
    pub binds: Binds,
    pub page: Page,
}

impl Registered {
    pub const fn of<K: LinkKind>() -> Registered {
        Registered {
            name: K::NAME,
            prefix: K::PREFIX,
            path: K::PATH,
            binds: K::BINDS,
            page: K::PAGE,
        }
    }
}

/// How the binding code a page shows is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Binds {
    /// Drawn afresh, never the code typed on the page (what the proof
    /// carried).
    Drawn,
    /// Derived from the `response_code` the answer carries, where it
    /// carries one, so that only the URL holding it can show the code
    /// again (docs/wallet.md#the-code-typed-into-the-chat); else drawn.
    FromResponse,
    /// Derived from the challenge's id, so that a retry of the request
    /// that made the proof is answered the code it was shown first (a
    /// login's `chat_code`, docs/api.md#the-login-callback).
    FromChallenge,
}
