//! The kinds of challenge link, one [`LinkKind`] each, and their
//! registry [`KINDS`]: the network challenge's page
//! (docs/network-authentication.md#the-link), the wallet's
//! (docs/wallet.md#the-link-page) and the page a code is typed on
//! (docs/api.md#codes-typed-on-the-gateways-page); the one key of a
//! link ([`key`]), and the checks that hold the registry when it builds:
//! a kind with a key is on it, and every `Page` has exactly one line.
use super::kind::{Binds, LinkKind, Registered};
use crate::config::{NumberVerification, Team, WalletConfig};
use crate::domain::challenge::Page;
use crate::store::keys;

/// Every kind of challenge link, one line a kind.
pub const KINDS: &[Registered] = &[
    Registered::of::<Network>(),
    Registered::of::<Wallet>(),
    Registered::of::<CodeEntry>(),
];

/// `/n/{code}`: the page that sends the browser to the mobile operator.
pub struct Network;

impl LinkKind for Network {
    type Needs = NumberVerification;
    const NAME: &'static str = "network";
    const PREFIX: &'static str = "n:";
    const PATH: &'static str = "n";
    const BINDS: Binds = Binds::Drawn;
    /// A network challenge, or a ladder at its network step.
    const PAGE: Page = Page::Network;

    fn needs(team: &Team) -> Option<&NumberVerification> {
        team.number_verification.as_ref()
    }
}

/// `/w/{code}`: the page that hands a request to a wallet.
pub struct Wallet;

impl LinkKind for Wallet {
    type Needs = WalletConfig;
    const NAME: &'static str = "wallet";
    const PREFIX: &'static str = "wl:";
    const PATH: &'static str = "w";
    const BINDS: Binds = Binds::FromResponse;
    /// A wallet challenge.
    const PAGE: Page = Page::Wallet;

    fn needs(team: &Team) -> Option<&WalletConfig> {
        team.wallet.as_ref()
    }
}

/// `/c/{code}`: the one-field page a code is typed on.
pub struct CodeEntry;

impl LinkKind for CodeEntry {
    type Needs = ();
    const NAME: &'static str = "code_entry";
    const PREFIX: &'static str = "ce:";
    const PATH: &'static str = "c";
    const BINDS: Binds = Binds::Drawn;
    /// A challenge whose code or PIN is typed on the page.
    const PAGE: Page = Page::CodeEntry;

    fn needs(_: &Team) -> Option<&()> {
        Some(&())
    }
}

/// The key of the link of kind `K` that `code` names: `K::PREFIX`, then
/// the code hashed (`keys::challenge_link`). A kind missing from
/// [`KINDS`] does not build: the registry's tests see every kind that
/// has a key.
pub fn key<K: LinkKind>(code: &str) -> String {
    key_of(line::<K>(), code)
}

/// The line of [`KINDS`] that kind `K` is; a kind not on it does not
/// build.
pub(super) fn line<K: LinkKind>() -> Registered {
    const {
        assert!(
            registered(Registered::of::<K>()),
            "a link kind not in links::KINDS"
        )
    };
    Registered::of::<K>()
}

/// The key of the link of `kind`, a line of [`KINDS`], that `code` names.
pub(super) fn key_of(kind: Registered, code: &str) -> String {
    keys::challenge_link(kind.prefix, code)
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

/// Whether every [`Page`] has exactly one line of [`KINDS`]: a page
/// with none has no link to open it, and one with two could be opened by
/// either.
pub(super) const fn one_line_a_page() -> bool {
    let mut p = 0;
    while p < Page::ALL.len() {
        let mut lines = 0;
        let mut i = 0;
        while i < KINDS.len() {
            if KINDS[i].page as u8 == Page::ALL[p] as u8 {
                lines += 1;
            }
            i += 1;
        }
        if lines != 1 {
            return false;
        }
        p += 1;
    }
    true
}

const _: () = assert!(
    one_line_a_page(),
    "a page without exactly one line in links::KINDS"
);

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
