//! Asking a team's provider about a phone number before a code goes to it
//! (docs/number-checks.md): the mobile operator's CAMARA SIM Swap and Call
//! Forwarding Signal APIs ([`camara`]) or Twilio Lookup v2 ([`twilio`]).
//!
//! A team's [`NumberChecks`] holds its provider's settings, its own HTTP
//! client (so a provider that hangs holds no other team's connections),
//! its tokens, and the answers it reuses for `cache`. Every check has
//! [`TIMEOUT`]; the answer is a [`Answer`] of `domain::number_check`,
//! whose `verdict` decides. The number is never logged, nor put in a
//! span or a metric label: errors name the question, never the request.
pub mod camara;
pub mod twilio;

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use secrecy::SecretString;
use sha2::{Digest, Sha256};
use url::Url;

use crate::answers::{body_capped, Uncapped};
use crate::domain::number_check::{self, Answer, CheckSettings, Finding, Source};
use crate::fared::{Failing, Fared};
use crate::time::Timestamp;

/// The longest a check may take, tokens included: past it the answer is
/// an error (`on_error` decides).
pub const TIMEOUT: Duration = Duration::from_secs(5);

/// The most answers a team keeps; past it the expired ones go, then the
/// oldest.
const CACHE_MAX: usize = 10_000;

/// How a CAMARA client gets its token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CamaraAuth {
    /// `grant_type=client_credentials`: one token, reused until 30 s
    /// before it expires.
    ClientCredentials,
    /// GSMA Open Gateway's backend flow (OpenID Connect CIBA): a token per
    /// number, asked at `bc_authorize_url` with `login_hint=tel:+…`, then
    /// polled at the token endpoint every `interval` the operator names
    /// (default 5 s) while it answers `authorization_pending`.
    Ciba { bc_authorize_url: Url },
}

/// `kind = "camara"`: the operator's APIs and its OAuth 2.0 client.
#[derive(Debug)]
pub struct CamaraConfig {
    /// The SIM Swap API root with its version (`…/sim-swap/v2`).
    pub sim_swap_url: Url,
    /// The Call Forwarding Signal API root, when voice codes ask it.
    pub call_forwarding_url: Option<Url>,
    pub token_url: Url,
    pub client_id: String,
    pub client_secret: SecretString,
    pub auth: CamaraAuth,
    pub scopes: Vec<String>,
}

/// `kind = "twilio_lookup"`.
#[derive(Debug)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: SecretString,
    /// Default `https://lookups.twilio.com`.
    pub base_url: Url,
}

/// Who a team asks.
#[derive(Debug)]
pub enum ProviderConfig {
    Camara(Box<CamaraConfig>),
    TwilioLookup(TwilioConfig),
}

/// Answers by the number's digest and whether forwarding was asked (each
/// dated when it was answered).
type Kept = HashMap<([u8; 32], bool), Answer>;

/// A team's `[number_checks]` and what its checks keep between requests.
pub struct NumberChecks {
    pub team: String,
    pub settings: CheckSettings,
    /// How long one number's answer is reused.
    pub cache_for: Duration,
    pub provider: ProviderConfig,
    http: reqwest::Client,
    cache: Mutex<Kept>,
    /// The client-credentials token and when it stops being used.
    token: tokio::sync::Mutex<Option<(SecretString, Timestamp)>>,
    failing: Failing,
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
pub(crate) type Asked = Result<Finding, CheckError>;

impl NumberChecks {
    pub fn new(
        team: &str,
        settings: CheckSettings,
        cache_for: Duration,
        provider: ProviderConfig,
    ) -> Self {
        let http = reqwest::Client::builder()
            .timeout(TIMEOUT)
            .connect_timeout(TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            // A proxy from the environment would carry the numbers and the
            // client's secret off the machine.
            .no_proxy()
            .build()
            .unwrap_or_default();
        NumberChecks {
            team: team.to_string(),
            settings,
            cache_for,
            provider,
            http,
            cache: Mutex::new(HashMap::new()),
            token: tokio::sync::Mutex::new(None),
            failing: Failing::default(),
        }
    }

    pub fn source(&self) -> Source {
        match self.provider {
            ProviderConfig::Camara(_) => Source::Camara,
            ProviderConfig::TwilioLookup(_) => Source::TwilioLookup,
        }
    }

    /// What the provider says of `number` (E.164) for a voice code
    /// (`voice`) or not, at `now`: from the cache while an answer without
    /// an error is younger than `cache` (dated when it was answered, not
    /// now), else asked within [`TIMEOUT`].
    /// Counted in `chatgate_number_checks_total`; a provider that starts
    /// failing is logged once, and once when it answers again.
    pub async fn ask(&self, number: &str, voice: bool, now: Timestamp) -> Answer {
        let forwarding = self.settings.asks_forwarding(voice);
        let key = (Sha256::digest(number.as_bytes()).into(), forwarding);
        if let Some(answer) = self.cached(&key, now) {
            return answer;
        }
        let asked = tokio::time::timeout(TIMEOUT, self.ask_provider(number, forwarding, now));
        let (sim_swap, call_forwarding) = match asked.await {
            Ok(answers) => answers,
            Err(_) => {
                let late = || Err(CheckError("no answer within 5 s".into()));
                (late(), forwarding.then(late))
            }
        };
        let error = [Some(&sim_swap), call_forwarding.as_ref()]
            .into_iter()
            .flatten()
            .find_map(|a| a.as_ref().err())
            .cloned();
        let answer = Answer {
            sim_swap: sim_swap.unwrap_or(Finding::Error),
            call_forwarding: call_forwarding.map(|a| a.unwrap_or(Finding::Error)),
            at: now,
        };
        let source = self.source().as_str();
        let result = number_check::result(&answer);
        metrics::counter!("chatgate_number_checks_total", "kind" => source, "result" => result)
            .increment(1);
        self.log(error.as_ref(), now);
        if error.is_none() {
            self.keep(key, answer, now);
        }
        answer
    }

    async fn ask_provider(
        &self,
        number: &str,
        forwarding: bool,
        now: Timestamp,
    ) -> (Asked, Option<Asked>) {
        match &self.provider {
            ProviderConfig::Camara(c) => camara::ask(self, c, number, forwarding, now).await,
            ProviderConfig::TwilioLookup(t) => {
                twilio::ask(&self.http, t, number, forwarding, &self.settings, now).await
            }
        }
    }

    /// A kept answer younger than `cache`: an answer that asked about
    /// forwarding serves a question that does not.
    fn cached(&self, key: &([u8; 32], bool), now: Timestamp) -> Option<Answer> {
        let cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        let fresh = |k: &([u8; 32], bool)| {
            let answer = cache.get(k)?;
            (now < answer.at.plus(self.cache_for)).then_some(*answer)
        };
        fresh(key).or_else(|| {
            let (digest, forwarding) = key;
            let wider = fresh(&(*digest, true)).filter(|_| !forwarding)?;
            Some(Answer {
                call_forwarding: None,
                ..wider
            })
        })
    }

    fn keep(&self, key: ([u8; 32], bool), answer: Answer, now: Timestamp) {
        if self.cache_for.is_zero() {
            return;
        }
        let mut cache = self.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= CACHE_MAX {
            let cache_for = self.cache_for;
            cache.retain(|_, answer| now < answer.at.plus(cache_for));
            if cache.len() >= CACHE_MAX {
                cache.clear();
            }
        }
        cache.insert(key, answer);
    }

    fn log(&self, error: Option<&CheckError>, now: Timestamp) {
        let kind = self.source().as_str();
        match (error, self.failing.fared(&self.team, error.is_some(), now)) {
            (Some(e), Fared::StartedFailing) => {
                tracing::warn!(team = %self.team, kind, error = %e.0,
                "number checks failing: one line when they answer again")
            }
            (Some(e), _) => {
                tracing::debug!(team = %self.team, kind, error = %e.0, "number check failed")
            }
            (None, Fared::Recovered { since, failed }) => tracing::info!(team = %self.team, kind,
                failing_secs = now.since(since).as_secs_f64(), failed_attempts = failed,
                "number checks answer again"),
            (None, _) => {}
        }
    }
}

/// The words of a transport error (reqwest's own text names the URL).
fn transport(what: &str, e: &reqwest::Error) -> CheckError {
    CheckError(if e.is_timeout() {
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

/// An answer's status as a finding's error: a 404 or 422 (the provider
/// does not serve that number) is `Unknown`, any other non-2xx an error.
fn by_status(what: &str, status: reqwest::StatusCode) -> Option<Asked> {
    match status.as_u16() {
        200..=299 => None,
        404 | 422 => Some(Ok(Finding::Unknown)),
        s => Some(Err(CheckError(format!("{what}: status {s}")))),
    }
}
