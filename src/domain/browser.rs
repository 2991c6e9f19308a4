//! The browser's small rules, shared by every page a customer opens from a
//! link (docs/architecture.md#the-pages): the form token that ties a
//! page's form to its link and browser, how often one link may be used
//! within a minute ([`LinkUses`]), and the name of every cookie the
//! gateway sets.
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::secrets::Pepper;
use crate::time::Timestamp;

/// The form token of the page of link `code` for the browser whose cookie
/// keeps `browser`: a keyed hash of both, so a token works only for its
/// link, in its browser, and nothing is stored for it
/// (docs/network-authentication.md#the-link).
pub fn form_token(pepper: &Pepper, code: &str, browser: &str) -> String {
    pepper.keyed_hash(FORM_TOKEN, &form_input(code, browser))
}

/// Whether `token` is the form token of link `code` for `browser` (in
/// constant time); none, or no browser cookie, never is.
pub fn form_token_holds(
    pepper: &Pepper,
    code: &str,
    browser: Option<&str>,
    token: Option<&str>,
) -> bool {
    match (browser, token) {
        (Some(b), Some(t)) if !b.is_empty() => pepper.verify(FORM_TOKEN, &form_input(code, b), t),
        _ => false,
    }
}

/// The purpose that keeps form tokens apart from every other keyed hash
/// (named after the first page that had one; tokens of pages open now
/// are made with it).
const FORM_TOKEN: &str = "network-confirm";

fn form_input(code: &str, browser: &str) -> Vec<u8> {
    [code.as_bytes(), &[0], browser.as_bytes()].concat()
}

/// The uses of one link a minute takes: a page-entry link's POSTs, a
/// wallet link's page fetches (docs/api.md#codes-typed-on-the-gateways-page,
/// docs/wallet.md#the-link-page). More are refused, counting nothing.
pub const USES_PER_MINUTE: usize = 10;

/// The window [`USES_PER_MINUTE`] counts in: a link's count lives as long.
pub const USE_WINDOW: Duration = Duration::from_secs(60);

/// The recent uses of one link, each at its time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LinkUses {
    pub at: Vec<Timestamp>,
}

impl LinkUses {
    /// Counts one more use at `now` when fewer than [`USES_PER_MINUTE`]
    /// fall within the [`USE_WINDOW`] before it (the older ones are
    /// dropped); `false`, counting nothing, when that many already do.
    pub fn admit(&mut self, now: Timestamp) -> bool {
        self.at.retain(|t| now < t.plus(USE_WINDOW));
        if self.at.len() >= USES_PER_MINUTE {
            return false;
        }
        self.at.push(now);
        true
    }
}

/// The browser secret a network link's confirm page makes its form token
/// for (`Path=/n/`).
pub const NETWORK_BROWSER_COOKIE: &str = "cg_nb";

/// The browser secret a page-entry link's form token is made for
/// (`Path=/c/`).
pub const CODE_ENTRY_BROWSER_COOKIE: &str = "cg_cb";

/// The browser secret a wallet answer's binding code is shown again for
/// (`Path=/w/`).
pub const WALLET_BROWSER_COOKIE: &str = "cg_wb";

/// The state of a provider's verification that answers on the landing
/// page, one cookie of a fixed name (`Path=/n/`).
pub const LANDING_COOKIE: &str = "chatgate_landing";

/// The cookies that tie a started login's or check's state to the browser
/// that started it begin with this; see [`state_cookie_name`].
pub const STATE_COOKIE: &str = "chatgate_oidc";

/// The console's session cookie on https (`__Host-`: the browser keeps
/// it to this host, `Secure`, `Path=/`).
pub const SESSION_COOKIE_HTTPS: &str = "__Host-chatgate-console";

/// The console's session cookie on plain http (a loopback test setup).
pub const SESSION_COOKIE_HTTP: &str = "chatgate-console";

/// The name of the cookie of `state`: one cookie per started login or
/// check, so that several in one browser each keep theirs.
pub fn state_cookie_name(state: &str) -> String {
    let digest = hex::encode(Sha256::digest(state.as_bytes()));
    format!("{STATE_COOKIE}_{}", &digest[..16])
}

/// Every cookie name of a fixed name the gateway sets.
pub const FIXED_COOKIES: [&str; 6] = [
    NETWORK_BROWSER_COOKIE,
    CODE_ENTRY_BROWSER_COOKIE,
    WALLET_BROWSER_COOKIE,
    LANDING_COOKIE,
    SESSION_COOKIE_HTTPS,
    SESSION_COOKIE_HTTP,
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_form_token_holds_for_its_link_in_its_browser_only() {
        let pepper = Pepper::new("test-pepper");
        let token = form_token(&pepper, "link-a", "browser-1");
        let holds = |code, browser, token| form_token_holds(&pepper, code, browser, token);
        assert!(holds("link-a", Some("browser-1"), Some(token.as_str())));
        assert!(
            !holds("link-a", Some("browser-2"), Some(token.as_str())),
            "another browser"
        );
        assert!(
            !holds("link-b", Some("browser-1"), Some(token.as_str())),
            "another link"
        );
        assert!(!holds("link-a", None, Some(token.as_str())), "no cookie");
        assert!(
            !holds("link-a", Some(""), Some(token.as_str())),
            "an empty cookie"
        );
        assert!(!holds("link-a", Some("browser-1"), None), "no token");
        assert!(
            !holds("link-a", Some("browser-1"), Some("00")),
            "another token"
        );
        // The code and the browser are kept apart.
        assert_ne!(token, form_token(&pepper, "link-ab", "rowser-1"));
    }

    #[test]
    fn a_link_admits_ten_a_minute_then_nothing_until_the_oldest_leaves() {
        let t0 = Timestamp::from_unix_millis(1_800_000_000_000);
        let mut uses = LinkUses::default();
        for i in 0..10 {
            assert!(uses.admit(t0.plus(Duration::from_secs(i))));
        }
        let late = t0.plus(Duration::from_secs(59));
        assert!(!uses.admit(late));
        assert_eq!(uses.at.len(), 10, "a refused one is not counted");
        assert!(uses.admit(t0.plus(USE_WINDOW)), "the first left the window");
        assert_eq!(uses.at.len(), 10);
    }

    #[test]
    fn every_cookie_has_a_name_of_its_own_that_no_state_cookie_takes() {
        let mut names: Vec<&str> = FIXED_COOKIES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), FIXED_COOKIES.len(), "a name used twice");
        let state = state_cookie_name("s");
        assert_eq!(state, "chatgate_oidc_043a718774c572bd");
        for name in FIXED_COOKIES {
            assert!(!name.starts_with(STATE_COOKIE), "{name}");
            // A cookie name is an RFC 6265 token.
            let token = |b: u8| b.is_ascii_alphanumeric() || b"-_".contains(&b);
            assert!(name.bytes().all(token), "{name}");
        }
    }
}
