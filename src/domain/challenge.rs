//! OTP and session-PIN challenges (docs/api.md#challenges-otp-and-session-pin): the stored state of one
//! challenge and its rules.
//!
//! Lock and ban checks and failure counting belong to the subject
//! (`domain::subject`); the caller applies them around [`attempt`].
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::interaction::InteractionRecord;
use super::otp::{self, OtpCode};
use super::pin;
use super::reveal;
use super::secrets::Pepper;
use crate::domain::settings::{OtpSettings, PinSettings};
use crate::error::Error;
use crate::time::{stored, Timestamp};

/// How many finished challenges an interaction remembers (oldest forgotten
/// first; a forgotten id is answered `not_found`).
pub const MAX_PAST_CHALLENGES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeMethod {
    Otp,
    Pin,
    /// The code a login page showed, to type into the chat (login binding).
    Binding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Chat,
    Sms,
    Email,
    Agent,
    /// Shown to the customer by the login page (a binding code).
    LoginPage,
}

/// The open (or last) challenge of an interaction. Holds no code or PIN, only
/// a keyed hash and, for agent reveal, an AEAD-sealed copy of the OTP;
/// `Debug` hides even those.
///
/// Stored under short member names, times as unix milliseconds, the long
/// names of earlier versions read as aliases (as the [`InteractionRecord`]
/// that holds it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub id: Uuid,
    #[serde(rename = "m", alias = "method")]
    pub method: ChallengeMethod,
    #[serde(rename = "d", alias = "delivery")]
    pub delivery: Delivery,
    /// Keyed hash of the code (OTP) or of the session PIN.
    #[serde(rename = "h", alias = "code_hash")]
    pub code_hash: String,
    /// The OTP sealed for agent reveal (AEAD), when the team allows reveal.
    #[serde(
        rename = "s",
        alias = "sealed_code",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sealed_code: Option<String>,
    #[serde(rename = "e", alias = "expires_at", with = "stored")]
    pub expires_at: Timestamp,
    #[serde(rename = "n", alias = "attempts_used")]
    pub attempts_used: u32,
    #[serde(rename = "mx", alias = "max_attempts")]
    pub max_attempts: u32,
    /// Succeeding authenticates a pending pre-chat step-up.
    #[serde(
        rename = "su",
        alias = "step_up",
        default,
        skip_serializing_if = "super::is_false"
    )]
    pub step_up: bool,
}

impl Challenge {
    /// A new OTP challenge for `code`, open from `now` for `otp.ttl`. The code
    /// is kept only as its keyed hash (bound to `id`) and, when
    /// `seal_for_reveal`, sealed for agent reveal (bound to `id`).
    /// `step_up`: succeeding completes the interaction's pending pre-chat
    /// step-up.
    #[allow(clippy::too_many_arguments)]
    pub fn new_otp(
        id: Uuid,
        delivery: Delivery,
        code: &OtpCode,
        pepper: &Pepper,
        otp: &OtpSettings,
        seal_for_reveal: bool,
        step_up: bool,
        now: Timestamp,
    ) -> Result<Challenge, Error> {
        let sealed_code = if seal_for_reveal {
            Some(reveal::seal(code, id, pepper)?)
        } else {
            None
        };
        Ok(Challenge {
            id,
            method: ChallengeMethod::Otp,
            delivery,
            code_hash: otp::hash(pepper, id, code),
            sealed_code,
            expires_at: now.plus(otp.ttl.get()),
            attempts_used: 0,
            max_attempts: otp.max_attempts,
            step_up,
        })
    }

    /// A login-binding challenge for `code` (docs/api.md#the-login-callback): drawn and kept
    /// like an OTP (`otp.length`, `otp.ttl`, `otp.max_attempts`, a keyed
    /// hash bound to `id`), shown by the login page, typed into the chat.
    pub fn new_binding(
        id: Uuid,
        code: &OtpCode,
        pepper: &Pepper,
        otp: &OtpSettings,
        now: Timestamp,
    ) -> Challenge {
        Challenge {
            id,
            method: ChallengeMethod::Binding,
            delivery: Delivery::LoginPage,
            code_hash: otp::hash(pepper, id, code),
            sealed_code: None,
            expires_at: now.plus(otp.ttl.get()),
            attempts_used: 0,
            max_attempts: otp.max_attempts,
            step_up: false,
        }
    }

    /// A new session-PIN challenge, open from `now` for `pin.ttl`. Its hash is
    /// the interaction's `session_pin_hash` (made by
    /// [`pin::SessionPin::keyed_hash`]); the prompt goes into the chat.
    pub fn new_pin(
        id: Uuid,
        session_pin_hash: &str,
        pin: &PinSettings,
        now: Timestamp,
    ) -> Challenge {
        Challenge {
            id,
            method: ChallengeMethod::Pin,
            delivery: Delivery::Chat,
            code_hash: session_pin_hash.to_string(),
            sealed_code: None,
            expires_at: now.plus(pin.ttl.get()),
            attempts_used: 0,
            max_attempts: pin.max_attempts,
            step_up: false,
        }
    }

    /// A step-up challenge ends with its step-up: no later than `until`.
    pub fn ending_by(mut self, until: Option<Timestamp>) -> Challenge {
        if let Some(until) = until {
            self.expires_at = self.expires_at.min(until);
        }
        self
    }

    /// Can still be answered at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        now < self.expires_at && self.attempts_used < self.max_attempts
    }

    /// Wrong codes still allowed.
    pub fn attempts_remaining(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts_used)
    }

    /// Constant-time comparison of `code` with the stored hash.
    fn matches(&self, interaction_id: Uuid, code: &str, pepper: &Pepper) -> bool {
        match self.method {
            ChallengeMethod::Otp | ChallengeMethod::Binding => {
                otp::verify(pepper, self.id, code, &self.code_hash)
            }
            ChallengeMethod::Pin => pin::verify(pepper, interaction_id, code, &self.code_hash),
        }
    }
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("delivery", &self.delivery)
            .field("code_hash", &"..")
            .field("sealed_code", &self.sealed_code.as_ref().map(|_| ".."))
            .field("expires_at", &self.expires_at)
            .field("attempts_used", &self.attempts_used)
            .field("max_attempts", &self.max_attempts)
            .field("step_up", &self.step_up)
            .finish()
    }
}

/// What became of a challenge that is no longer the interaction's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PastOutcome {
    Succeeded,
    Replaced,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastChallenge {
    pub id: Uuid,
    #[serde(rename = "o", alias = "outcome")]
    pub outcome: PastOutcome,
}

/// What a well-formed code did to an answerable challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The right code: the challenge is used up. With `step_up`, the success
    /// completes the interaction's pending pre-chat step-up.
    Success {
        method: ChallengeMethod,
        step_up: bool,
    },
    /// A wrong code, counted on the challenge; 0 left on the
    /// `max_attempts`-th. The caller counts the subject's failure.
    Wrong { attempts_remaining: u32 },
}

fn remember(rec: &mut InteractionRecord, id: Uuid, outcome: PastOutcome) {
    rec.past_challenges.push(PastChallenge { id, outcome });
    let excess = rec
        .past_challenges
        .len()
        .saturating_sub(MAX_PAST_CHALLENGES);
    rec.past_challenges.drain(..excess);
}

/// Makes `challenge` the interaction's current one. An earlier challenge, open
/// or not, is replaced: answering it from now on is `challenge_expired`.
/// The caller stamps the write (`last_write_at`), as for any write.
pub fn open_new(rec: &mut InteractionRecord, challenge: Challenge) {
    if let Some(old) = rec.challenge.replace(challenge) {
        remember(rec, old.id, PastOutcome::Replaced);
    }
}

/// Closes the interaction's current challenge, if any: answering it from now
/// on is `challenge_expired` (a logout ends what was under way).
pub fn close(rec: &mut InteractionRecord) {
    if let Some(old) = rec.challenge.take() {
        remember(rec, old.id, PastOutcome::Replaced);
    }
}

/// The current challenge `challenge_id` if it can be answered at `now`, else
/// the API's error for why not (shared by [`attempt`] and agent reveal).
pub(super) fn answerable(
    rec: &InteractionRecord,
    challenge_id: Uuid,
    now: Timestamp,
) -> Result<&Challenge, Error> {
    if let Some(c) = rec.challenge.as_ref().filter(|c| c.id == challenge_id) {
        return if now >= c.expires_at {
            Err(Error::ChallengeExpired)
        } else if c.attempts_used >= c.max_attempts {
            Err(Error::ChallengeExhausted)
        } else {
            Ok(c)
        };
    }
    match rec
        .past_challenges
        .iter()
        .rev()
        .find(|p| p.id == challenge_id)
    {
        Some(PastChallenge {
            outcome: PastOutcome::Succeeded,
            ..
        }) => Err(Error::ChallengeUsed),
        Some(PastChallenge {
            outcome: PastOutcome::Replaced,
            ..
        }) => Err(Error::ChallengeExpired),
        None => Err(Error::NotFound("no such challenge")),
    }
}

/// Answers challenge `challenge_id` of `rec` with `code` at `now`.
///
/// A `code` that is not 1..20 ASCII digits is 422 before anything else and
/// counts nothing. Then: unknown id `NotFound`; replaced `ChallengeExpired`;
/// already succeeded `ChallengeUsed`; past its ttl `ChallengeExpired`; no
/// attempts left `ChallengeExhausted` (even for the right code). Otherwise
/// the code is compared in constant time: success moves the challenge to the
/// past as used; a wrong code uses one attempt. Both stamp `last_write_at`.
pub fn attempt(
    rec: &mut InteractionRecord,
    challenge_id: Uuid,
    code: &str,
    pepper: &Pepper,
    now: Timestamp,
) -> Result<AttemptOutcome, Error> {
    let code = pin::parse_code(code)?;
    let right = answerable(rec, challenge_id, now)?.matches(rec.id, code, pepper);
    rec.last_write_at = now;
    if right {
        let Some(c) = rec.challenge.take() else {
            return Err(Error::internal("a right code for no open challenge"));
        };
        remember(rec, c.id, PastOutcome::Succeeded);
        return Ok(AttemptOutcome::Success {
            method: c.method,
            step_up: c.step_up,
        });
    }
    let Some(c) = rec.challenge.as_mut() else {
        return Err(Error::internal("a wrong code for no open challenge"));
    };
    c.attempts_used = c.attempts_used.saturating_add(1);
    Ok(AttemptOutcome::Wrong {
        attempts_remaining: c.attempts_remaining(),
    })
}

#[cfg(test)]
mod tests {
    use super::AttemptOutcome::{Success, Wrong};
    use super::*;
    use crate::domain::pin::SessionPin;
    use crate::time::Dur;

    const CODE: &str = "4829137650";
    const PIN: &str = "97315864";
    const OTP: ChallengeMethod = ChallengeMethod::Otp;
    const OK_OTP: AttemptOutcome = Success {
        method: OTP,
        step_up: false,
    };

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_unix_millis(1_800_000_000_000 + ms)
    }

    fn pepper() -> Pepper {
        Pepper::new("test-pepper")
    }

    fn rec() -> InteractionRecord {
        InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0))
    }

    fn otp(step_up: bool, seal: bool) -> Challenge {
        let code = OtpCode::from_digits(CODE).unwrap();
        let o = OtpSettings {
            ttl: Dur::from_secs(180),
            max_attempts: 3,
            ..Default::default()
        };
        let id = Uuid::now_v7();
        Challenge::new_otp(id, Delivery::Sms, &code, &pepper(), &o, seal, step_up, t(0)).unwrap()
    }

    /// Opens `c` on `r`; returns its id.
    fn open(r: &mut InteractionRecord, c: Challenge) -> Uuid {
        let id = c.id;
        open_new(r, c);
        id
    }

    fn with_otp(r: &mut InteractionRecord) -> Uuid {
        open(r, otp(false, false))
    }

    fn with_pin(r: &mut InteractionRecord) -> Uuid {
        let ps = PinSettings {
            min_length: 4,
            max_length: 8,
            ..Default::default()
        };
        let hash = SessionPin::parse(PIN, &ps)
            .unwrap()
            .keyed_hash(r.id, &pepper());
        r.session_pin_hash = Some(hash.clone());
        open(r, Challenge::new_pin(Uuid::now_v7(), &hash, &ps, t(0)))
    }

    /// `attempt`, with errors as their contract code.
    fn try_code(
        r: &mut InteractionRecord,
        id: Uuid,
        code: &str,
        at: i64,
    ) -> Result<AttemptOutcome, &'static str> {
        attempt(r, id, code, &pepper(), t(at)).map_err(|e| e.code())
    }

    fn used(r: &InteractionRecord) -> u32 {
        r.challenge.as_ref().map_or(u32::MAX, |c| c.attempts_used)
    }

    #[test]
    fn constructors_take_ttl_and_attempts_from_settings() {
        let c = otp(true, true);
        assert_eq!(
            (c.method, c.delivery, c.step_up),
            (OTP, Delivery::Sms, true)
        );
        assert_eq!(
            (c.expires_at, c.max_attempts, c.attempts_remaining()),
            (t(180_000), 3, 3)
        );
        assert!(c.sealed_code.is_some() && otp(false, false).sealed_code.is_none());
        let ps = PinSettings {
            ttl: Dur::from_secs(600),
            max_attempts: 5,
            ..Default::default()
        };
        let p = Challenge::new_pin(Uuid::now_v7(), "abcd", &ps, t(0));
        assert_eq!(
            (p.method, p.delivery, p.step_up),
            (ChallengeMethod::Pin, Delivery::Chat, false)
        );
        assert_eq!(
            (p.expires_at, p.max_attempts, p.code_hash.as_str()),
            (t(600_000), 5, "abcd")
        );
    }

    #[test]
    fn unknown_challenge_is_not_found() {
        let mut r = rec();
        assert_eq!(try_code(&mut r, Uuid::now_v7(), CODE, 1), Err("not_found"));
        with_otp(&mut r);
        assert_eq!(try_code(&mut r, Uuid::now_v7(), CODE, 1), Err("not_found"));
    }

    #[test]
    fn otp_success_uses_the_challenge_up_and_reuse_is_challenge_used() {
        let mut r = rec();
        let id = open(&mut r, otp(true, false));
        assert_eq!(
            try_code(&mut r, id, CODE, 1000),
            Ok(Success {
                method: OTP,
                step_up: true
            })
        );
        assert!(r.challenge.is_none());
        assert_eq!(r.last_write_at, t(1000));
        let past = PastChallenge {
            id,
            outcome: PastOutcome::Succeeded,
        };
        assert_eq!(r.past_challenges, vec![past]);
        assert_eq!(try_code(&mut r, id, CODE, 1001), Err("challenge_used"));
        assert_eq!(try_code(&mut r, id, "1", 1001), Err("challenge_used"));
    }

    #[test]
    fn wrong_codes_count_down_to_exhaustion_then_even_the_right_code_is_refused() {
        let mut r = rec();
        let id = with_otp(&mut r);
        for left in [2, 1, 0] {
            assert_eq!(
                try_code(&mut r, id, "4829137651", 1),
                Ok(Wrong {
                    attempts_remaining: left
                })
            );
        }
        assert!(r.open_challenge(t(1)).is_none());
        assert_eq!(try_code(&mut r, id, CODE, 2), Err("challenge_exhausted"));
        assert_eq!(try_code(&mut r, id, "0", 2), Err("challenge_exhausted"));
        assert_eq!(used(&r), 3);
    }

    #[test]
    fn expiry_holds_to_the_millisecond() {
        let mut open = rec();
        let id = with_otp(&mut open);
        let mut closed = open.clone();
        assert_eq!(try_code(&mut open, id, CODE, 179_999), Ok(OK_OTP));
        assert_eq!(
            try_code(&mut closed, id, CODE, 180_000),
            Err("challenge_expired")
        );
        assert_eq!(
            try_code(&mut closed, id, "1", 180_000),
            Err("challenge_expired")
        );
        assert_eq!(used(&closed), 0);
    }

    #[test]
    fn a_replaced_challenge_is_expired_and_the_past_is_bounded() {
        let mut r = rec();
        let first = with_otp(&mut r);
        let second = with_otp(&mut r);
        assert_eq!(try_code(&mut r, first, CODE, 1), Err("challenge_expired"));
        assert_eq!(try_code(&mut r, second, CODE, 1), Ok(OK_OTP));
        for _ in 0..40 {
            with_otp(&mut r);
        }
        assert_eq!(r.past_challenges.len(), MAX_PAST_CHALLENGES);
        // A forgotten past id is refused all the same.
        assert_eq!(try_code(&mut r, second, CODE, 2), Err("not_found"));
    }

    #[test]
    fn malformed_codes_are_422_and_count_nothing() {
        let mut r = rec();
        let id = with_otp(&mut r);
        for bad in ["", "12a", "123456789012345678901", " 4829137650"] {
            for cid in [id, Uuid::now_v7()] {
                let err = attempt(&mut r, cid, bad, &pepper(), t(1)).unwrap_err();
                assert!(matches!(err, Error::Unprocessable(_)), "{err:?}");
            }
        }
        assert_eq!(used(&r), 0);
    }

    #[test]
    fn pin_success_and_wrong_pin() {
        let mut r = rec();
        let id = with_pin(&mut r);
        assert_eq!(
            try_code(&mut r, id, "97315865", 1),
            Ok(Wrong {
                attempts_remaining: 2
            })
        );
        let ok = Success {
            method: ChallengeMethod::Pin,
            step_up: false,
        };
        assert_eq!(try_code(&mut r, id, PIN, 2), Ok(ok));
        assert_eq!(try_code(&mut r, id, PIN, 3), Err("challenge_used"));
    }

    #[test]
    fn a_pin_hash_from_another_interaction_never_verifies() {
        let mut other = rec();
        with_pin(&mut other);
        let mut r = rec();
        let hash = other.session_pin_hash.clone().unwrap();
        let id = open(
            &mut r,
            Challenge::new_pin(Uuid::now_v7(), &hash, &Default::default(), t(0)),
        );
        assert_eq!(
            try_code(&mut r, id, PIN, 1),
            Ok(Wrong {
                attempts_remaining: 2
            })
        );
    }

    #[test]
    fn stored_json_and_debug_hold_neither_code_nor_pin() {
        let c = otp(false, true);
        let json = serde_json::to_string(&c).unwrap();
        assert!(!json.contains(CODE), "{json}");
        assert!(!format!("{c:?}").contains(&c.code_hash));
        assert_eq!(serde_json::from_str::<Challenge>(&json).unwrap(), c);
        let mut r = rec();
        with_pin(&mut r);
        let rec_json = serde_json::to_string(&r).unwrap();
        assert!(!rec_json.contains(PIN), "{rec_json}");
        assert!(!format!("{r:?}").contains(PIN));
    }
}
