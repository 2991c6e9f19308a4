//! Asking a team's provider about a phone number before a code goes to it
//! (docs/number-checks.md): the mobile operator's CAMARA SIM Swap and Call
//! Forwarding Signal APIs ([`camara`]) or Twilio Lookup v2 ([`twilio`]).
//!
//! A provider is a kind, as a channel is: a type of its keys that
//! implements [`Provider`] (its name, stored tag and keys, the rules
//! serde does not state, its question), registered once in `providers!`
//! below. A team's [`NumberChecks`] is its configuration: the settings
//! and its provider's keys. What its checks keep between requests (the
//! HTTP client, the token, the answers reused for `cache`) is [`Askers`]'
//! ([`live`]), which the gateway keeps across reloads. Every check has
//! [`TIMEOUT`]; the answer is an `Answer` of `domain::number_check`,
//! whose `verdict` decides. The number is never logged, nor put in a
//! span or a metric label: errors name the question, never the request.
pub mod camara;
pub mod live;
pub mod twilio;

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Deserializer};
use sha2::{Digest, Sha256};
use url::Url;

pub use camara::{CamaraAuth, CamaraConfig};
pub use live::Askers;
pub use twilio::TwilioConfig;

use crate::answers::{body_capped, Uncapped};
use crate::domain::number_check::{CheckSettings, Finding, Source};
use crate::domain::secrets::Secret;
pub use crate::domain::team_secrets::Goes;
use crate::time::Timestamp;

/// The longest a check may take, tokens included: past it the answer is
/// an error (`on_error` decides).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The key of `[number_checks]` that is wrong, and what is wrong with it.
pub type Problem = (String, String);

/// Whether the gateway may send a request to a URL a team names (the
/// configuration's rule: https, or http on a loopback address).
pub type MayReach = fn(&Url) -> bool;

/// The facts of one provider kind that the loader, the stored records and
/// the metrics read.
#[derive(Debug, Clone, Copy)]
pub struct ProviderInfo {
    /// Who answers, in the domain's words; its `as_str` is the kind as
    /// written in `kind = "…"`, the metric label and the challenge's
    /// `number_check.source`.
    pub source: Source,
    /// The one character a stored number check names it by (the stored
    /// forms of docs/architecture.md#keys-and-slots); never reused.
    pub stored: char,
    /// The keys of `[number_checks]` this kind takes besides the settings
    /// every kind shares: a key of another kind is refused by name.
    pub keys: &'static [&'static str],
    /// For each secret it takes, the keys that decide where it (or the
    /// token it buys) is sent: a write through the operator API that
    /// changes one while keeping the secret as its `{"hmac"}` is
    /// refused (docs/operator-api.md#secrets).
    pub secrets_go: &'static [Goes],
}

/// One provider kind: its keys (`Self::Keys`, read with serde, unknown
/// keys refused), its facts and its question. Register it in
/// `providers!` (below).
#[async_trait]
pub trait Provider: std::fmt::Debug + Send + Sync + Sized {
    const INFO: ProviderInfo;

    /// Its keys as written.
    type Keys: for<'de> Deserialize<'de>;

    /// The provider of `keys`, checked for what serde does not state (a
    /// value not empty, a URL the gateway may reach, a key that needs
    /// another); an error names the key.
    fn from_keys(keys: Self::Keys, may_reach: MayReach) -> Result<Self, Problem>;

    /// What the provider answers about `q.number`: SIM swap, and
    /// forwarding when `q.forwarding` (`None` when not asked).
    async fn ask(&self, q: &Question<'_>) -> (Asked, Option<Asked>);
}

/// Registers the provider kinds: each line a variant of the domain's
/// [`Source`] and the provider of that kind, which implements
/// [`Provider`]. Everything that differs by kind asks that type; a
/// [`Source`] without a line, or a line without a [`Source`], does not
/// compile.
macro_rules! providers {
    ($($variant:ident($provider:ty)),+ $(,)?) => {
        /// Who a team asks, with its checked keys (boxed: kinds differ
        /// much in size).
        #[derive(Debug)]
        pub enum ProviderConfig {
            $($variant(Box<$provider>)),+
        }

        $(const _: () = assert!(
            matches!(<$provider as Provider>::INFO.source, Source::$variant),
            "a provider is registered under its own source"
        );)+

        impl ProviderConfig {
            /// Every kind, in the order docs/number-checks.md lists them.
            pub const ALL: &'static [ProviderInfo] = &[$(<$provider as Provider>::INFO),+];

            /// The facts of the kind that answered as `source`.
            pub fn info_of(source: Source) -> &'static ProviderInfo {
                match source {
                    $(Source::$variant => &<$provider as Provider>::INFO),+
                }
            }

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
                    if name == <$provider as Provider>::INFO.source.as_str() {
                        return Some(<<$provider as Provider>::Keys>::deserialize(keys).map(|k| {
                            <$provider>::from_keys(k, may_reach).map(|p| ProviderConfig::$variant(Box::new(p)))
                        }));
                    }
                )+
                None
            }

            async fn ask(&self, q: &Question<'_>) -> (Asked, Option<Asked>) {
                match self {
                    $(ProviderConfig::$variant(p) => p.ask(q).await),+
                }
            }
        }
    };
}

providers! {
    Camara(camara::CamaraConfig),
    TwilioLookup(twilio::TwilioConfig),
}

impl ProviderConfig {
    /// The kind names, for a message: `a or b`.
    pub fn names() -> String {
        crate::domain::challenge::one_of(Self::ALL, |p: ProviderInfo| p.source.as_str())
    }

    /// The kind stored as `tag`, if any: a tag no kind has is no source,
    /// never a default one.
    pub fn stored(tag: char) -> Option<Source> {
        Self::ALL.iter().find(|p| p.stored == tag).map(|p| p.source)
    }

    /// Whether `key` is a key of a kind other than the one named `name`,
    /// and not of that one: written under `name`, it is refused by name.
    pub fn foreign(name: &str, key: &str) -> bool {
        let (own, others): (Vec<&ProviderInfo>, Vec<&ProviderInfo>) =
            Self::ALL.iter().partition(|p| p.source.as_str() == name);
        !own.iter().any(|p| p.keys.contains(&key)) && others.iter().any(|p| p.keys.contains(&key))
    }
}

/// A client-credentials token and when it stops being used.
pub type TokenSlot = tokio::sync::Mutex<Option<(SecretString, Timestamp)>>;

/// One question to a provider, with what the team's checks keep.
pub struct Question<'a> {
    /// The team's own HTTP client.
    pub http: &'a reqwest::Client,
    /// The team's kept token (a provider without one leaves it empty).
    pub token: &'a TokenSlot,
    pub settings: &'a CheckSettings,
    /// E.164.
    pub number: &'a str,
    /// Whether forwarding is asked too.
    pub forwarding: bool,
    pub now: Timestamp,
}

/// A team's `[number_checks]`: its settings and its provider's keys.
pub struct NumberChecks {
    pub team: String,
    pub settings: CheckSettings,
    /// How long one number's answer is reused.
    pub cache_for: Duration,
    pub provider: ProviderConfig,
    /// The digest of the section as read: state kept for it serves only
    /// the same section.
    fingerprint: [u8; 32],
    /// Where its provider may be reached: its team's reach
    /// (docs/operator-api.md#destinations).
    pub reach: crate::outbound::Reach,
}

impl std::fmt::Debug for NumberChecks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NumberChecks")
            .field("settings", &self.settings)
            .field("cache_for", &self.cache_for)
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

/// Why a question got no usable answer: a few safe words (never the
/// number, a token or a URL, which for Twilio holds the number).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError(pub String);

/// One question's outcome.
pub type Asked = Result<Finding, CheckError>;

impl NumberChecks {
    /// Team `team`'s checks, read from a section whose text (as the
    /// loader read it, secrets included) is `section`: only its digest
    /// is kept.
    pub fn new(
        team: &str,
        settings: CheckSettings,
        cache_for: Duration,
        provider: ProviderConfig,
        section: &str,
    ) -> Self {
        NumberChecks {
            team: team.to_string(),
            settings,
            cache_for,
            provider,
            fingerprint: Sha256::digest(section.as_bytes()).into(),
            reach: crate::outbound::Reach::Anywhere,
        }
    }

    pub fn source(&self) -> Source {
        self.provider.info().source
    }

    /// The digest of the section this was read from.
    pub fn fingerprint(&self) -> [u8; 32] {
        self.fingerprint
    }
}

/// A required URL `key` of value `v`, one the gateway may reach.
fn url(key: &str, v: &Option<String>, may_reach: MayReach) -> Result<Url, Problem> {
    let v = v
        .as_deref()
        .ok_or_else(|| (key.to_string(), "required but missing".to_string()))?;
    Url::parse(v).ok().filter(may_reach).ok_or_else(|| {
        (
            key.to_string(),
            "must be an https URL (http only on a loopback address)".to_string(),
        )
    })
}

/// A required value `key` that is not blank, trimmed.
fn filled(key: &str, v: &Option<String>) -> Result<String, Problem> {
    let problem = |p: &str| (key.to_string(), p.to_string());
    match v.as_deref().map(str::trim) {
        None => Err(problem("required but missing")),
        Some("") => Err(problem("must not be empty")),
        Some(v) => Ok(v.to_string()),
    }
}

/// A required secret `key` that is not blank, trimmed as [`filled`].
fn filled_secret(key: &str, v: Option<Secret>) -> Result<SecretString, Problem> {
    let text = v.map(|s| s.get().expose_secret().to_string());
    filled(key, &text).map(SecretString::from)
}

/// The words of a transport error (reqwest's own text names the URL).
fn transport(what: &str, e: &reqwest::Error) -> CheckError {
    CheckError(if crate::outbound::is_refused(e) {
        format!("{what}: {}", crate::outbound::Refused)
    } else if e.is_timeout() {
        format!("{what}: no answer in time")
    } else if e.is_connect() {
        format!("{what}: unreachable")
    } else {
        format!("{what}: request failed")
    })
}

/// The body of an answer, at most 64 KiB (a longer one given up as soon
/// as it passes that), read within the client's time.
async fn body(what: &str, res: reqwest::Response) -> Result<Vec<u8>, CheckError> {
    body_capped(res, 65_536).await.map_err(|e| match e {
        Uncapped::TooLong => CheckError(format!("{what}: answer too long")),
        Uncapped::Read(e) => transport(what, &e),
    })
}

/// The body of a 2xx answer a finding is read from, at most 64 KiB,
/// strictly JSON (`answers::strict_json`): one not declared
/// `application/json`, or naming a member twice, is an error, never a
/// finding (docs/number-checks.md#how-answers-are-read).
async fn verdict_body(what: &str, res: reqwest::Response) -> Result<Vec<u8>, CheckError> {
    let content_type = res.headers().get(reqwest::header::CONTENT_TYPE).cloned();
    let bytes = body(what, res).await?;
    crate::answers::strict_json(content_type.as_ref(), &bytes)
        .map_err(|e| CheckError(format!("{what}: {}", e.as_str())))?;
    Ok(bytes)
}

/// An answer's status as a finding's error: a 404 or 422 (the provider
/// does not serve that number) is `Unknown`, any other non-2xx an error.
fn by_status(what: &str, status: reqwest::StatusCode) -> Option<Asked> {
    match status.as_u16() {
        200..=299 => None,
        404 | 422 => Some(Ok(Finding::Unknown)),
        s => Some(Err(CheckError(format!("{what}: status {s}")))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each kind has its own name and stored tag, and is found by both.
    #[test]
    fn every_kind_is_found_by_its_source_and_its_stored_tag() {
        for (i, p) in ProviderConfig::ALL.iter().enumerate() {
            assert_eq!(ProviderConfig::info_of(p.source).stored, p.stored);
            assert_eq!(ProviderConfig::stored(p.stored), Some(p.source));
            for o in &ProviderConfig::ALL[i + 1..] {
                assert_ne!(p.stored, o.stored);
                assert_ne!(p.source.as_str(), o.source.as_str());
            }
        }
        assert_eq!(ProviderConfig::stored('c'), Some(Source::Camara));
        assert_eq!(ProviderConfig::stored('t'), Some(Source::TwilioLookup));
        assert_eq!(ProviderConfig::stored('x'), None, "never a default kind");
    }

    /// A key of another kind is foreign; a kind's own keys and keys of no
    /// kind are not (serde names the latter unknown).
    #[test]
    fn a_key_is_foreign_only_to_the_kinds_that_lack_it() {
        assert!(ProviderConfig::foreign("camara", "account_sid"));
        assert!(ProviderConfig::foreign("twilio_lookup", "token_url"));
        assert!(!ProviderConfig::foreign("camara", "token_url"));
        assert!(!ProviderConfig::foreign("camara", "max_age"));
    }
}
