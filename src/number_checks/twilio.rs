//! Twilio Lookup v2 (docs/number-checks.md#twilio-lookup): `GET
//! {base_url}/v2/PhoneNumbers/{number}?Fields=sim_swap` (with
//! `call_forwarding` for a voice code), HTTP basic auth with the account
//! SID and auth token. The request's URL holds the number: it is never
//! logged, and errors name only the question.
use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use url::Url;

use super::Goes;
use super::{
    by_status, transport, verdict_body, Asked, CheckError, MayReach, Problem, Provider,
    ProviderInfo, Question,
};
use crate::domain::number_check::{twilio_swapped, CheckSettings, Finding, Source};
use crate::domain::secrets::Secret;
use crate::spans::SendTraced;
use crate::time::Timestamp;

/// `kind = "twilio_lookup"`.
#[derive(Debug)]
pub struct TwilioConfig {
    pub account_sid: String,
    pub auth_token: SecretString,
    /// Default `https://lookups.twilio.com`.
    pub base_url: Url,
}

/// The keys of `kind = "twilio_lookup"` as written.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TwilioKeys {
    account_sid: Option<String>,
    /// Read only as the loader hands it over (`Secret`).
    auth_token: Option<Secret>,
    base_url: Option<String>,
}

#[async_trait]
impl Provider for TwilioConfig {
    const INFO: ProviderInfo = ProviderInfo {
        source: Source::TwilioLookup,
        stored: 't',
        keys: &["account_sid", "auth_token", "base_url"],
        secrets_go: &[Goes {
            secret: "auth_token",
            to: &["base_url"],
        }],
    };

    type Keys = TwilioKeys;

    /// Its account and base URL.
    fn from_keys(raw: TwilioKeys, may_reach: MayReach) -> Result<Self, Problem> {
        let base_url = match raw.base_url {
            None => Some("https://lookups.twilio.com".to_string()),
            some => some,
        };
        Ok(TwilioConfig {
            account_sid: super::filled("account_sid", &raw.account_sid)?,
            auth_token: super::filled_secret("auth_token", raw.auth_token)?,
            base_url: super::url("base_url", &base_url, may_reach)?,
        })
    }

    async fn ask(&self, q: &Question<'_>) -> (Asked, Option<Asked>) {
        ask(q.http, self, q.number, q.forwarding, q.settings, q.now).await
    }
}

#[derive(Deserialize)]
struct Lookup {
    sim_swap: Option<SimSwap>,
    call_forwarding: Option<CallForwarding>,
}

#[derive(Deserialize)]
struct SimSwap {
    last_sim_swap: Option<LastSwap>,
    error_code: Option<serde_json::Value>,
}

#[derive(Deserialize)]
struct LastSwap {
    last_sim_swap_date: Option<String>,
    swapped_in_period: Option<bool>,
}

#[derive(Deserialize)]
struct CallForwarding {
    call_forwarding_status: Option<bool>,
    error_code: Option<serde_json::Value>,
}

/// Asks Twilio about `number`: its `sim_swap` package, and its
/// `call_forwarding` one when `forwarding`.
async fn ask(
    http: &reqwest::Client,
    t: &TwilioConfig,
    number: &str,
    forwarding: bool,
    settings: &CheckSettings,
    now: Timestamp,
) -> (Asked, Option<Asked>) {
    const WHAT: &str = "lookup";
    let both = |e: CheckError| (Err(e.clone()), forwarding.then_some(Err(e)));
    let encoded: String = url::form_urlencoded::byte_serialize(number.as_bytes()).collect();
    let fields = if forwarding {
        "sim_swap,call_forwarding"
    } else {
        "sim_swap"
    };
    let root = t.base_url.as_str().trim_end_matches('/');
    let url = format!("{root}/v2/PhoneNumbers/{encoded}?Fields={fields}");
    let sent = http
        .get(url)
        .basic_auth(&t.account_sid, Some(t.auth_token.expose_secret()))
        .send_traced()
        .await;
    let res = match sent {
        Ok(res) => res,
        Err(e) => return both(transport(WHAT, &e)),
    };
    if let Some(asked) = by_status(WHAT, res.status()) {
        return (asked.clone(), forwarding.then_some(asked));
    }
    let lookup = match verdict_body(WHAT, res).await.and_then(|b| {
        serde_json::from_slice::<Lookup>(&b)
            .map_err(|_| CheckError(format!("{WHAT}: unreadable answer")))
    }) {
        Ok(l) => l,
        Err(e) => return both(e),
    };
    let sim_swap = match lookup.sim_swap {
        Some(s) if s.error_code.as_ref().is_some_and(|c| !c.is_null()) => {
            Err(CheckError("sim_swap: an error code".into()))
        }
        Some(SimSwap {
            last_sim_swap: Some(last),
            ..
        }) => swap_finding(&last, settings, now),
        _ => Err(CheckError("sim_swap: missing".into())),
    };
    let call_forwarding = forwarding.then(|| match lookup.call_forwarding {
        Some(c) if c.error_code.as_ref().is_some_and(|c| !c.is_null()) => {
            Err(CheckError("call_forwarding: an error code".into()))
        }
        Some(CallForwarding {
            call_forwarding_status: Some(on),
            ..
        }) => Ok(if on { Finding::Yes } else { Finding::No }),
        _ => Err(CheckError("call_forwarding: missing".into())),
    });
    (sim_swap, call_forwarding)
}

/// A swap is a `last_sim_swap_date` within `sim_swap_max_age`, or, when
/// the date is null, `swapped_in_period` true; both null is no answer.
fn swap_finding(last: &LastSwap, settings: &CheckSettings, now: Timestamp) -> Asked {
    let date = match &last.last_sim_swap_date {
        None => None,
        Some(d) => Some(
            Timestamp::parse_rfc3339(d)
                .ok_or_else(|| CheckError("sim_swap: unreadable date".into()))?,
        ),
    };
    let max_age = settings.sim_swap_max_age;
    match twilio_swapped(date, last.swapped_in_period, max_age, now) {
        Some(true) => Ok(Finding::Yes),
        Some(false) => Ok(Finding::No),
        None => Err(CheckError(
            "sim_swap: neither a date nor swapped_in_period".into(),
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::domain::number_check::{OnError, OnForwarding, OnSwap};

    #[test]
    fn an_answer_without_a_date_or_a_period_is_no_answer() {
        let settings = CheckSettings {
            sim_swap_max_age: Duration::from_secs(72 * 3600),
            on_sim_swap: OnSwap::Refuse,
            call_forwarding: OnForwarding::Refuse,
            on_error: OnError::Closed,
        };
        let now = Timestamp::from_unix_seconds(1_800_000_000);
        let last: LastSwap =
            serde_json::from_str(r#"{"last_sim_swap_date": null, "swapped_in_period": null}"#)
                .unwrap();
        assert!(swap_finding(&last, &settings, now).is_err());
        let last: LastSwap =
            serde_json::from_str(r#"{"last_sim_swap_date": null, "swapped_in_period": false}"#)
                .unwrap();
        assert_eq!(swap_finding(&last, &settings, now), Ok(Finding::No));
    }
}
