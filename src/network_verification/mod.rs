//! Asking a team's network-verification provider whether the phone that
//! opened a network link holds the number on file
//! (docs/network-authentication.md): CAMARA Number Verification's
//! front-end flow at the mobile operator ([`camara`]), or Vonage Verify
//! v2's `silent_auth` workflow ([`vonage`]).
//!
//! A provider is a kind, as a number-check provider is: a type of its
//! keys that implements [`Provider`] (its name and keys, the rules serde
//! does not state, where the confirm button sends the browser, and how
//! the answer the browser brings back is read), registered once in
//! `providers!` below. A team's [`NumberVerification`] is its
//! configuration: the settings every kind shares and its provider's
//! keys. What the answer means for the challenge is the domain's
//! (`domain::network_auth`, over a [`NetworkResult`]); how the provider
//! says it is the provider's. Every call has [`TIMEOUT`]; errors name
//! what failed, never a code, token, state or number.
pub mod camara;
pub mod vonage;

use std::sync::OnceLock;
use std::time::Duration;

use async_trait::async_trait;
use serde::{Deserialize, Deserializer};
use url::Url;

pub use crate::domain::team_secrets::Goes;
use crate::outbound::{Clients, Reach};
use crate::time::Timestamp;

pub use camara::CamaraConfig;
pub use vonage::VonageConfig;

pub use crate::domain::network_auth::NetworkResult;

/// The longest one call to a provider may take.
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The key of `[number_verification]` that is wrong, and what is wrong
/// with it.
pub type Problem = (String, String);

/// Whether the gateway may send a request to a URL a team names (the
/// configuration's rule: https, or http on a loopback address).
pub type MayReach = fn(&Url) -> bool;

/// The facts of one provider kind that the loader reads.
#[derive(Debug, Clone, Copy)]
pub struct ProviderInfo {
    /// Its name as written in `provider = "…"`.
    pub name: &'static str,
    /// The keys of `[number_verification]` this kind takes besides the
    /// settings every kind shares: a key of another kind is refused by
    /// name.
    pub keys: &'static [&'static str],
    /// How the phone comes back from the provider.
    pub back: Back,
    /// For each secret it takes, the keys that decide where it (or what
    /// it signs or buys) is sent: a write through the operator API that
    /// changes one while keeping the secret as its `{"hmac"}` is refused
    /// (docs/operator-api.md#secrets).
    pub secrets_go: &'static [Goes],
}

/// How a provider's answer comes back through the customer's browser.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Back {
    /// An OAuth 2.0 redirect to `GET /n/callback` whose `state` names the
    /// check: the confirm button sends the browser to the provider at
    /// once ([`Provider::begin`] makes the address).
    Callback,
    /// The provider is asked first (a round trip at the confirm button,
    /// which starts one check for the challenge and sends the browser to
    /// the address it answers), and the result comes back in a URL
    /// fragment that `/n/landing`'s page posts; the browser's state
    /// cookie, named after the provider's request, names the check.
    Landing,
}

impl Back {
    /// The gateway's path the provider sends the browser back to.
    pub fn path(self) -> &'static str {
        match self {
            Back::Callback => "/n/callback",
            Back::Landing => "/n/landing",
        }
    }
}

/// Why a provider gave no usable answer: a few safe words (never a code,
/// a token, a state or the number).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the provider failed: {0}")]
pub struct NetworkError(pub String);

impl NetworkError {
    /// `what` failed for `why`.
    pub fn of(what: &str, why: impl std::fmt::Display) -> Self {
        NetworkError(format!("{what}: {why}"))
    }
}

/// The confirm button's check, as the gateway started it.
pub struct Begin<'a> {
    /// The client every provider call goes through ([`client`]).
    pub http: &'a reqwest::Client,
    /// Where the provider sends the browser back (`{public_url}` and
    /// [`Back::path`]).
    pub redirect_uri: &'a str,
    /// The check's fresh state, which names it when the browser comes back.
    pub state: &'a str,
    /// The PKCE S256 challenge of the check's verifier.
    pub code_challenge: &'a str,
    /// The number on file, `+E.164`.
    pub number: &'a str,
    /// How long the link has left.
    pub left: Duration,
    /// When the check starts (a provider's signed request says it).
    pub now: Timestamp,
}

/// Where the confirm button sends the browser.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Begun {
    /// To this address ([`Back::Callback`]).
    Redirect(String),
    /// To the provider's `url` of the check it started as `id`, which
    /// runs for `runs` ([`Back::Landing`]).
    Check {
        id: String,
        url: String,
        runs: Duration,
    },
}

/// The answer a browser brought back for a started check, to be read
/// with the provider.
pub struct Ask<'a> {
    /// The client every provider call goes through ([`client`]).
    pub http: &'a reqwest::Client,
    /// What the provider handed the browser (an authorization code, or
    /// the code of a landing's fragment).
    pub code: &'a str,
    /// The provider's request the code answers ([`Back::Landing`]).
    pub check: Option<&'a str>,
    /// The `redirect_uri` the check was started with.
    pub redirect_uri: &'a str,
    /// The check's PKCE verifier.
    pub verifier: &'a str,
    /// The number on file, `+E.164`.
    pub number: &'a str,
    /// When it is asked.
    pub now: Timestamp,
}

/// One provider kind: its keys (`Self::Keys`, read with serde, unknown
/// keys refused), its facts, where its checks begin and how their answer
/// is read. Register it in `providers!` (below).
#[async_trait]
pub trait Provider: std::fmt::Debug + Send + Sync + Sized {
    const INFO: ProviderInfo;

    /// Its keys as written.
    type Keys: for<'de> Deserialize<'de>;

    /// The provider of `keys`, checked for what serde does not state (a
    /// value not empty, a URL the gateway may reach); an error names the
    /// key.
    fn from_keys(keys: Self::Keys, may_reach: MayReach) -> Result<Self, Problem>;

    /// Where the confirm page's button sends the browser: the page's
    /// only destination besides the gateway, and the provider a started
    /// check belongs to (an answer to a check started with another is
    /// refused).
    fn operator(&self) -> &Url;

    /// The sources of the confirm page's `form-action` besides the
    /// gateway: where the button's redirect may lead. The operator's
    /// origin unless the kind says otherwise.
    fn form_action(&self) -> String {
        self.operator().origin().ascii_serialization()
    }

    /// Where the confirm button sends the browser for check `q`: an
    /// address made here ([`Back::Callback`]), or the check the provider
    /// started when asked ([`Back::Landing`]).
    async fn begin(&self, q: &Begin<'_>) -> Result<Begun, NetworkError>;

    /// What an error the browser brought back on the callback says: any
    /// error is a phone off the mobile network. (A landing's
    /// `error_description` is never read: a landing without a code is
    /// always that, docs/network-authentication.md#the-vonage-landing.)
    fn read_error(&self, _error: &str) -> NetworkResult {
        NetworkResult::NotOnMobileNetwork
    }

    /// What the provider says of the phone, from the answer the browser
    /// brought back: only a well-formed verdict is a result; anything
    /// else is an error.
    async fn answer(&self, q: &Ask<'_>) -> Result<NetworkResult, NetworkError>;
}

/// Registers the provider kinds: each line a variant and the provider of
/// that kind, which implements [`Provider`]. Everything that differs by
/// kind asks that type.
macro_rules! providers {
    ($($variant:ident($provider:ty)),+ $(,)?) => {
        /// Who a team asks, with its checked keys (boxed: kinds differ
        /// much in size).
        #[derive(Debug)]
        pub enum ProviderConfig {
            $($variant(Box<$provider>)),+
        }

        impl ProviderConfig {
            /// Every kind, in the order docs/network-authentication.md
            /// lists them.
            pub const ALL: &'static [ProviderInfo] = &[$(<$provider as Provider>::INFO),+];

            pub fn info(&self) -> &'static ProviderInfo {
                match self {
                    $(ProviderConfig::$variant(_) => &<$provider as Provider>::INFO),+
                }
            }

            /// Reads the keys of the kind named `name` from `keys`, then
            /// checks them. `None`: no kind has that name.
            pub fn parse<'de, D: Deserializer<'de>>(
                name: &str,
                keys: D,
                may_reach: MayReach,
            ) -> Option<Result<Result<Self, Problem>, D::Error>> {
                $(
                    if name == <$provider as Provider>::INFO.name {
                        return Some(<<$provider as Provider>::Keys>::deserialize(keys).map(|k| {
                            <$provider>::from_keys(k, may_reach).map(|p| ProviderConfig::$variant(Box::new(p)))
                        }));
                    }
                )+
                None
            }

            /// See [`Provider::operator`].
            pub fn operator(&self) -> &Url {
                match self {
                    $(ProviderConfig::$variant(p) => p.operator()),+
                }
            }

            /// See [`Provider::form_action`].
            pub fn form_action(&self) -> String {
                match self {
                    $(ProviderConfig::$variant(p) => p.form_action()),+
                }
            }

            /// See [`Provider::begin`].
            pub async fn begin(&self, q: &Begin<'_>) -> Result<Begun, NetworkError> {
                match self {
                    $(ProviderConfig::$variant(p) => p.begin(q).await),+
                }
            }

            /// See [`Provider::read_error`].
            pub fn read_error(&self, error: &str) -> NetworkResult {
                match self {
                    $(ProviderConfig::$variant(p) => p.read_error(error)),+
                }
            }

            /// See [`Provider::answer`].
            pub async fn answer(&self, q: &Ask<'_>) -> Result<NetworkResult, NetworkError> {
                match self {
                    $(ProviderConfig::$variant(p) => p.answer(q).await),+
                }
            }
        }
    };
}

providers! {
    Camara(camara::CamaraConfig),
    Vonage(vonage::VonageConfig),
}

impl ProviderConfig {
    /// The kind names, for a message: `a or b`.
    pub fn names() -> String {
        crate::domain::challenge::one_of(Self::ALL, |p: ProviderInfo| p.name)
    }

    /// Whether `key` is a key of a kind other than the one named `name`,
    /// and not of that one: written under `name`, it is refused by name.
    pub fn foreign(name: &str, key: &str) -> bool {
        let (own, others): (Vec<&ProviderInfo>, Vec<&ProviderInfo>) =
            Self::ALL.iter().partition(|p| p.name == name);
        !own.iter().any(|p| p.keys.contains(&key)) && others.iter().any(|p| p.keys.contains(&key))
    }
}

/// A team's `[number_verification]`: the settings every kind shares and
/// its provider's keys.
#[derive(Debug)]
pub struct NumberVerification {
    /// How long a network link stays open.
    pub link_ttl: Duration,
    pub provider: ProviderConfig,
    /// Where its provider may be reached: its team's reach
    /// (docs/operator-api.md#destinations).
    pub reach: Reach,
}

/// The client every provider call of a team of `reach` goes through
/// (`answers::client`: [`TIMEOUT`], no redirect followed, no proxy from
/// the environment); an error where TLS cannot be set up.
pub fn client(reach: Reach) -> Result<&'static reqwest::Client, NetworkError> {
    static CLIENTS: OnceLock<Clients> = OnceLock::new();
    let clients = CLIENTS.get_or_init(|| crate::answers::client(TIMEOUT));
    clients.of(reach).map_err(|e| NetworkError(e.to_string()))
}

/// The words of a transport error (reqwest's own text names the URL).
fn transport(e: &reqwest::Error) -> &'static str {
    if crate::outbound::is_refused(e) {
        crate::outbound::Refused::TEXT
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_decode() {
        "unreadable answer"
    } else {
        "request failed"
    }
}

/// The most of any answer that is read: one byte more and the provider
/// counts as failing.
const MAX_BODY: usize = 1 << 20;

/// The body of `res`, read up to [`MAX_BODY`]: a longer one (declared or
/// sent) fails as soon as it is known to be longer.
async fn capped(what: &str, res: reqwest::Response) -> Result<Vec<u8>, NetworkError> {
    use crate::answers::{body_capped, Uncapped};
    body_capped(res, MAX_BODY).await.map_err(|e| match e {
        Uncapped::TooLong => NetworkError::of(what, format!("answer over {MAX_BODY} bytes")),
        Uncapped::Read(e) => NetworkError::of(what, transport(&e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind has its own name; a key of another kind is foreign, a
    /// kind's own keys and keys of no kind are not (serde names the
    /// latter unknown).
    #[test]
    fn every_network_kind_has_its_own_name_and_keys() {
        for (i, p) in ProviderConfig::ALL.iter().enumerate() {
            for o in &ProviderConfig::ALL[i + 1..] {
                assert_ne!(p.name, o.name);
            }
            for k in p.keys {
                assert!(!ProviderConfig::foreign(p.name, k), "{} {k}", p.name);
            }
        }
        assert!(!ProviderConfig::foreign("camara", "surprise"));
        assert_eq!(ProviderConfig::names(), "camara or vonage");
        assert!(ProviderConfig::foreign("camara", "private_key"));
        assert!(ProviderConfig::foreign("vonage", "client_secret"));
        // A key both take is neither's foreign key.
        assert!(!ProviderConfig::foreign("vonage", "hash_number"));
    }
}
