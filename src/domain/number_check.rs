//! Number checks before a phone code is trusted (docs/number-checks.md):
//! the verdict on a phone number from what its operator (or Twilio
//! Lookup) answered and the team's `[number_checks]`, on plain values.
//!
//! [`verdict`] refuses the number (the reason answered with 403
//! `number_refused`) or lets the code go with what was found, the
//! challenge's `number_check`; [`result`] names the answer in the
//! metric; [`twilio_swapped`] reads Twilio's dates.
use std::time::Duration;

use crate::error::Error;
use crate::time::Timestamp;

/// What a team does with a SIM swap (`on_sim_swap`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnSwap {
    #[default]
    Refuse,
    Flag,
}

/// What a team does with call forwarding on a voice code
/// (`call_forwarding`): `Ignore` does not ask.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnForwarding {
    #[default]
    Refuse,
    Flag,
    Ignore,
}

/// What a check that fails does (`on_error`): the code goes (`Open`) or
/// the number is refused (`Closed`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    #[default]
    Open,
    Closed,
}

/// The team's rules of a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckSettings {
    /// A SIM change at most this long ago is a swap.
    pub sim_swap_max_age: Duration,
    pub on_sim_swap: OnSwap,
    pub call_forwarding: OnForwarding,
    pub on_error: OnError,
}

impl CheckSettings {
    /// Whether a code to a number of this kind asks about forwarding: a
    /// voice code, unless the team ignores forwarding.
    pub fn asks_forwarding(&self, voice: bool) -> bool {
        voice && self.call_forwarding != OnForwarding::Ignore
    }
}

/// What an intent asks of a code to a phone number (`number_check`):
/// `clean`, no swap and, where asked, no forwarding
/// (docs/api.md#assurance-for-one-action).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberCheckRule {
    Clean,
}

/// Who answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    Camara,
    TwilioLookup,
}

impl Source {
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Camara => "camara",
            Source::TwilioLookup => "twilio_lookup",
        }
    }
}

/// One question's answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finding {
    /// Yes: swapped, or forwarding active.
    Yes,
    No,
    /// The provider does not serve that number (its 404 or 422).
    Unknown,
    /// No usable answer: a failure, a malformed body, a time-out.
    Error,
}

/// What the provider answered about one number, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Answer {
    pub sim_swap: Finding,
    /// `None`: not asked.
    pub call_forwarding: Option<Finding>,
    /// When the provider answered: an answer reused (kept for `cache`,
    /// or shared by a ladder's steps to one number) keeps its time.
    pub at: Timestamp,
}

impl Answer {
    /// Whether this answer serves a code to its number for a voice call
    /// (`voice`) or not: it asked about forwarding where that code's
    /// question does (docs/number-checks.md#what-is-checked-and-when).
    pub fn serves(&self, settings: &CheckSettings, voice: bool) -> bool {
        !settings.asks_forwarding(voice) || self.call_forwarding.is_some()
    }
}

/// The answer about one phone number (E.164), as a ladder keeps it so
/// that its steps to that number share it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NumberAnswer {
    pub number: String,
    pub answer: Answer,
}

/// What a check found, as the challenge keeps it
/// (docs/api.md#number-checks): `None` where not asked or unknown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NumberCheck {
    pub sim_swap: Option<bool>,
    pub call_forwarding: Option<bool>,
    /// Whether forwarding was asked: a `None` where it was is not clean.
    pub forwarding_asked: bool,
    pub checked_at: Timestamp,
    pub source: Source,
}

impl NumberCheck {
    /// Clean for an intent's `number_check = "clean"`: no swap, and no
    /// forwarding where it was asked; an unknown answer is not clean.
    pub fn is_clean(&self) -> bool {
        self.sim_swap == Some(false)
            && (!self.forwarding_asked || self.call_forwarding == Some(false))
    }
}

/// Why a number was refused: the `reason` of 403 `number_refused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    SimSwap,
    CallForwarding,
    CheckFailed,
}

impl Refusal {
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::SimSwap => "sim_swap",
            Refusal::CallForwarding => "call_forwarding",
            Refusal::CheckFailed => "check_failed",
        }
    }
}

/// 403 `number_refused` with the reason.
impl From<Refusal> for Error {
    fn from(r: Refusal) -> Error {
        Error::NumberRefused(r.as_str())
    }
}

/// The verdict on one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Nothing is sent to it.
    Refuse(Refusal),
    /// The code goes; the challenge says what was found.
    Go(NumberCheck),
}

/// The verdict on a number whose provider `source` gave `answer`, for a
/// code read by a voice call (`voice`) or not; what was found is dated
/// when the provider answered (`answer.at`). The rungs,
/// in order:
///
/// 1. a swap, with `on_sim_swap = "refuse"`: refused (`sim_swap`);
/// 2. active forwarding on a voice code, with `call_forwarding =
///    "refuse"`: refused (`call_forwarding`);
/// 3. an error (of either question), with `on_error = "closed"`:
///    refused (`check_failed`);
/// 4. otherwise the code goes, flagged with what was found.
pub fn verdict(settings: &CheckSettings, answer: &Answer, voice: bool, source: Source) -> Verdict {
    let forwarding = answer
        .call_forwarding
        .filter(|_| settings.asks_forwarding(voice));
    if answer.sim_swap == Finding::Yes && settings.on_sim_swap == OnSwap::Refuse {
        return Verdict::Refuse(Refusal::SimSwap);
    }
    if forwarding == Some(Finding::Yes) && settings.call_forwarding == OnForwarding::Refuse {
        return Verdict::Refuse(Refusal::CallForwarding);
    }
    let failed = answer.sim_swap == Finding::Error || forwarding == Some(Finding::Error);
    if failed && settings.on_error == OnError::Closed {
        return Verdict::Refuse(Refusal::CheckFailed);
    }
    Verdict::Go(NumberCheck {
        sim_swap: known(answer.sim_swap),
        call_forwarding: forwarding.and_then(known),
        forwarding_asked: forwarding.is_some(),
        checked_at: answer.at,
        source,
    })
}

fn known(f: Finding) -> Option<bool> {
    match f {
        Finding::Yes => Some(true),
        Finding::No => Some(false),
        Finding::Unknown | Finding::Error => None,
    }
}

/// Every `result` of [`result`].
pub const RESULTS: [&str; 5] = ["clean", "swapped", "forwarded", "unknown", "error"];

/// The `result` label of `chatgate_number_checks_total`: `error` when a
/// question failed, else `swapped`, `forwarded`, `unknown` (the provider
/// does not serve the number), or `clean`.
pub fn result(answer: &Answer) -> &'static str {
    let findings = [Some(answer.sim_swap), answer.call_forwarding];
    let any = |f: Finding| findings.contains(&Some(f));
    if any(Finding::Error) {
        "error"
    } else if answer.sim_swap == Finding::Yes {
        "swapped"
    } else if answer.call_forwarding == Some(Finding::Yes) {
        "forwarded"
    } else if any(Finding::Unknown) {
        "unknown"
    } else {
        "clean"
    }
}

/// Whether Twilio Lookup's `sim_swap` says the SIM changed within
/// `max_age` of `now`: its `last_sim_swap_date` when it gives one, else
/// its `swapped_in_period`; `None` when it gives neither (no answer, not
/// a clean number).
pub fn twilio_swapped(
    last_swap: Option<Timestamp>,
    swapped_in_period: Option<bool>,
    max_age: Duration,
    now: Timestamp,
) -> Option<bool> {
    match last_swap {
        Some(at) => Some(at >= now.minus(max_age)),
        None => swapped_in_period,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings() -> CheckSettings {
        CheckSettings {
            sim_swap_max_age: Duration::from_secs(72 * 3600),
            on_sim_swap: OnSwap::Refuse,
            call_forwarding: OnForwarding::Refuse,
            on_error: OnError::Open,
        }
    }
    fn now() -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000)
    }
    fn answer(sim_swap: Finding, call_forwarding: Option<Finding>) -> Answer {
        Answer {
            sim_swap,
            call_forwarding,
            at: now(),
        }
    }
    fn go(v: Verdict) -> NumberCheck {
        match v {
            Verdict::Go(c) => c,
            Verdict::Refuse(r) => panic!("refused: {r:?}"),
        }
    }

    #[test]
    fn a_swap_is_refused_or_flagged_as_the_team_says() {
        let a = answer(Finding::Yes, None);
        let v = verdict(&settings(), &a, false, Source::Camara);
        assert_eq!(v, Verdict::Refuse(Refusal::SimSwap));
        let flag = CheckSettings {
            on_sim_swap: OnSwap::Flag,
            ..settings()
        };
        let c = go(verdict(&flag, &a, false, Source::Camara));
        assert_eq!(c.sim_swap, Some(true));
        assert!(!c.is_clean());
    }

    #[test]
    fn forwarding_refuses_only_a_voice_code_and_only_when_asked() {
        let a = answer(Finding::No, Some(Finding::Yes));
        let v = verdict(&settings(), &a, true, Source::TwilioLookup);
        assert_eq!(v, Verdict::Refuse(Refusal::CallForwarding));
        let sms = go(verdict(&settings(), &a, false, Source::Camara));
        assert_eq!(sms.call_forwarding, None, "not asked for an SMS code");
        assert!(sms.is_clean());
        let flag = CheckSettings {
            call_forwarding: OnForwarding::Flag,
            ..settings()
        };
        let c = go(verdict(&flag, &a, true, Source::Camara));
        assert_eq!((c.call_forwarding, c.forwarding_asked), (Some(true), true));
        let ignore = CheckSettings {
            call_forwarding: OnForwarding::Ignore,
            ..settings()
        };
        let c = go(verdict(&ignore, &a, true, Source::Camara));
        assert!(!c.forwarding_asked && c.is_clean());
    }

    #[test]
    fn an_error_goes_open_as_unknown_or_is_refused_closed() {
        let a = answer(Finding::Error, None);
        let c = go(verdict(&settings(), &a, false, Source::Camara));
        assert_eq!(c.sim_swap, None);
        assert!(!c.is_clean(), "an unknown answer is not clean");
        let closed = CheckSettings {
            on_error: OnError::Closed,
            ..settings()
        };
        let v = verdict(&closed, &a, false, Source::Camara);
        assert_eq!(v, Verdict::Refuse(Refusal::CheckFailed));
        let forwarding_failed = answer(Finding::No, Some(Finding::Error));
        let v = verdict(&closed, &forwarding_failed, true, Source::Camara);
        assert_eq!(v, Verdict::Refuse(Refusal::CheckFailed));
        // An operator that does not serve the number is unknown, not an
        // error: the code goes even closed.
        let unknown = answer(Finding::Unknown, None);
        let c = go(verdict(&closed, &unknown, false, Source::Camara));
        assert_eq!(c.sim_swap, None);
    }

    #[test]
    fn a_clean_voice_check_needs_forwarding_answered() {
        let a = answer(Finding::No, Some(Finding::No));
        let c = go(verdict(&settings(), &a, true, Source::Camara));
        assert!(c.is_clean());
        let unknown = answer(Finding::No, Some(Finding::Unknown));
        let c = go(verdict(&settings(), &unknown, true, Source::Camara));
        assert!(!c.is_clean(), "asked and not answered");
    }

    #[test]
    fn what_was_found_is_dated_when_the_provider_answered() {
        let earlier = now().minus(Duration::from_secs(300));
        let kept = Answer {
            at: earlier,
            ..answer(Finding::No, None)
        };
        let c = go(verdict(&settings(), &kept, false, Source::Camara));
        assert_eq!(c.checked_at, earlier, "a reused answer keeps its time");
    }

    #[test]
    fn an_answer_serves_a_voice_code_only_when_it_asked_about_forwarding() {
        let sms = answer(Finding::No, None);
        assert!(sms.serves(&settings(), false));
        assert!(!sms.serves(&settings(), true), "forwarding not asked");
        let voice = answer(Finding::No, Some(Finding::Unknown));
        assert!(voice.serves(&settings(), true) && voice.serves(&settings(), false));
        let ignore = CheckSettings {
            call_forwarding: OnForwarding::Ignore,
            ..settings()
        };
        assert!(
            sms.serves(&ignore, true),
            "forwarding is not this team's question"
        );
    }

    #[test]
    fn the_metric_names_the_worst_finding() {
        assert_eq!(result(&answer(Finding::No, None)), "clean");
        assert_eq!(result(&answer(Finding::Yes, Some(Finding::Yes))), "swapped");
        assert_eq!(
            result(&answer(Finding::No, Some(Finding::Yes))),
            "forwarded"
        );
        assert_eq!(result(&answer(Finding::Unknown, None)), "unknown");
        assert_eq!(result(&answer(Finding::Yes, Some(Finding::Error))), "error");
    }

    #[test]
    fn twilio_dates_within_max_age_are_swaps() {
        let max = Duration::from_secs(72 * 3600);
        let recent = now().minus(Duration::from_secs(3600));
        let old = now().minus(Duration::from_secs(100 * 3600));
        assert_eq!(
            twilio_swapped(Some(recent), Some(false), max, now()),
            Some(true)
        );
        assert_eq!(
            twilio_swapped(Some(old), Some(true), max, now()),
            Some(false),
            "the date wins"
        );
        assert_eq!(twilio_swapped(None, Some(true), max, now()), Some(true));
        assert_eq!(twilio_swapped(None, Some(false), max, now()), Some(false));
        assert_eq!(twilio_swapped(None, None, max, now()), None, "no answer");
    }
}
