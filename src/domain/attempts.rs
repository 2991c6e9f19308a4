//! Answering an interaction's challenges (docs/api.md#challenges-otp-and-session-pin):
//! an attempt at a code, and an agent's reveal of an OTP
//! (docs/api.md#get-v1interactionsidchallengescidcode), refused alike once
//! the challenge cannot be answered.
//!
//! Lock and ban checks and failure counting belong to the subject
//! (`domain::subject`); the caller applies them around [`attempt`].
use uuid::Uuid;

use super::challenge::{AttemptOutcome, Challenge, PastChallenge, PastOutcome};
use super::interaction::InteractionRecord;
use super::otp::OtpCode;
use super::pin;
use super::reveal;
use super::secrets::Pepper;
use crate::error::Error;
use crate::time::Timestamp;

/// The current challenge `challenge_id` if it can be answered at `now`, else
/// the API's error for why not (shared by [`attempt`] and [`reveal_code`]).
fn answerable(
    rec: &InteractionRecord,
    challenge_id: Uuid,
    now: Timestamp,
) -> Result<&Challenge, Error> {
    if let Some(c) = rec.challenge.as_ref().filter(|c| c.id == challenge_id) {
        return if now >= c.expires_at {
            Err(Error::ChallengeExpired)
        } else if c.out_of_attempts() {
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
            outcome:
                PastOutcome::Replaced | PastOutcome::Denied | PastOutcome::Failed | PastOutcome::Expired,
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
    attempt_as(rec, challenge_id, code, pepper, now, true)?
        .ok_or_else(|| Error::internal("a right code that was not taken"))
}

/// [`attempt`] for a code typed on the gateway's page: a wrong code
/// counted alike, but the right one leaves the challenge open (`Ok(None)`)
/// for its caller to bind it to the chat
/// (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat).
pub fn attempt_kept(
    rec: &mut InteractionRecord,
    challenge_id: Uuid,
    code: &str,
    pepper: &Pepper,
    now: Timestamp,
) -> Result<Option<AttemptOutcome>, Error> {
    attempt_as(rec, challenge_id, code, pepper, now, false)
}

/// [`attempt`]; with `take` false, a right code is `None` and changes
/// nothing but `last_write_at`.
fn attempt_as(
    rec: &mut InteractionRecord,
    challenge_id: Uuid,
    code: &str,
    pepper: &Pepper,
    now: Timestamp,
    take: bool,
) -> Result<Option<AttemptOutcome>, Error> {
    let code = pin::parse_code(code)?;
    let right = answerable(rec, challenge_id, now)?.matches(rec.id, code, pepper);
    rec.last_write_at = now;
    if right && !take {
        return Ok(None);
    }
    if right {
        let Some(c) = rec.challenge.take() else {
            return Err(Error::internal("a right code for no open challenge"));
        };
        rec.remember_challenge(&c, PastOutcome::Succeeded);
        return Ok(Some(AttemptOutcome::Success {
            method: c.method(),
            step_up: c.step_up,
        }));
    }
    let Some(c) = rec.challenge.as_mut() else {
        return Err(Error::internal("a wrong code for no open challenge"));
    };
    c.attempts_used = c.attempts_used.saturating_add(1);
    Ok(Some(AttemptOutcome::Wrong {
        attempts_remaining: c.attempts_remaining(),
    }))
}

/// The code of OTP challenge `challenge_id` for an agent
/// (`GET .../challenges/{cid}/code`), with its `expires_at`, while it can
/// still be answered (refused otherwise exactly as [`attempt`]
/// would). A PIN challenge, or an OTP not sealed for reveal, is `Forbidden`.
/// The caller still checks the team's `otp.show_to_agents` and the role.
pub fn reveal_code(
    rec: &InteractionRecord,
    challenge_id: Uuid,
    pepper: &Pepper,
    now: Timestamp,
) -> Result<(OtpCode, Timestamp), Error> {
    let c = answerable(rec, challenge_id, now)?;
    match &c.sealed_code {
        Some(sealed) if c.method().revealable() => {
            Ok((reveal::open(sealed, c.id, pepper)?, c.expires_at))
        }
        _ => Err(Error::Forbidden("this challenge's code cannot be revealed")),
    }
}

#[cfg(test)]
mod tests {
    use super::AttemptOutcome::{Success, Wrong};
    use super::*;
    use crate::domain::challenge::{ChallengeMethod, Delivery, MAX_PAST_CHALLENGES};
    use crate::domain::pin::SessionPin;
    use crate::domain::settings::{OtpSettings, PinSettings};
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
        r.open_new_challenge(c, t(0));
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
            (c.method(), c.delivery, c.step_up),
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
            (p.method(), p.delivery, p.step_up),
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
        let past: Vec<_> = r
            .past_challenges
            .iter()
            .map(|p| (p.id, p.outcome))
            .collect();
        assert_eq!(past, vec![(id, PastOutcome::Succeeded)]);
        // Remembered whole, without its hash.
        let ended = r.past_challenges[0].ended.as_ref().unwrap();
        assert_eq!((ended.id, ended.code_hash.as_str()), (id, ""));
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
    fn debug_holds_neither_code_nor_pin() {
        let c = otp(false, true);
        assert!(!format!("{c:?}").contains(&c.code_hash));
        assert!(!format!("{c:?}").contains(CODE));
        let mut r = rec();
        with_pin(&mut r);
        assert!(!format!("{r:?}").contains(PIN));
    }

    #[test]
    fn agents_see_only_answerable_sealed_otps() {
        let p = pepper();
        let t = |s: i64| Timestamp::from_unix_seconds(1_800_000_000 + s);
        let mut r = InteractionRecord::new(Uuid::now_v7(), "acme", "webchat", "c-1", t(0));
        let o = OtpSettings::default();
        let code = crate::domain::otp::generate(6);
        let new = |seal: bool| {
            let id = Uuid::now_v7();
            Challenge::new_otp(id, Delivery::Agent, &code, &p, &o, seal, false, t(0)).unwrap()
        };
        let sealed = new(true);
        let id = sealed.id;
        r.open_new_challenge(sealed, t(0));
        let (shown, exp) = reveal_code(&r, id, &p, t(1)).unwrap();
        assert_eq!((shown.expose(), exp), (code.expose(), t(180)));
        assert_eq!(
            reveal_code(&r, id, &p, t(180)).unwrap_err().code(),
            "challenge_expired"
        );
        assert_eq!(
            reveal_code(&r, Uuid::now_v7(), &p, t(1))
                .unwrap_err()
                .code(),
            "not_found"
        );
        let unsealed = new(false);
        let unsealed_id = unsealed.id;
        r.open_new_challenge(unsealed, t(0));
        assert_eq!(
            reveal_code(&r, unsealed_id, &p, t(1)).unwrap_err().code(),
            "forbidden"
        );
        assert_eq!(
            reveal_code(&r, id, &p, t(1)).unwrap_err().code(),
            "challenge_expired"
        );
        let pin = Challenge::new_pin(Uuid::now_v7(), "00", &PinSettings::default(), t(0));
        let pin_id = pin.id;
        r.open_new_challenge(pin, t(0));
        assert_eq!(
            reveal_code(&r, pin_id, &p, t(1)).unwrap_err().code(),
            "forbidden"
        );
    }
}
