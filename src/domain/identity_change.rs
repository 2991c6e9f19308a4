//! When the person behind a WhatsApp conversation changes
//! (docs/channels.md#identity-changes): whether an identity hash says so,
//! and what a change does to the conversation's interaction.
use super::challenge::{Challenge, PastOutcome};
use super::interaction::InteractionRecord;
use super::settings::Settings;
use crate::time::Timestamp;

/// The `reason` of the `challenge.failed` a change closes a challenge
/// with, and the `cause` of its `interaction.logged_out`.
pub const REASON: &str = "identity_changed";

/// Whether `hash`, given now for a conversation that last had `previous`,
/// is a change: a different hash is; the first one seen is not.
pub fn is_change(previous: Option<&str>, hash: &str) -> bool {
    previous.is_some_and(|p| p != hash)
}

/// The id Meta names the person behind WhatsApp conversation
/// `conversation` by, under which its identity hash is remembered: a
/// number without its `+` (Meta writes digits alone), a business-scoped
/// user id as given.
pub fn meta_user_id(conversation: &str) -> &str {
    match conversation.strip_prefix('+') {
        Some(digits) if !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()) => digits,
        _ => conversation,
    }
}

/// What a change ended in one interaction.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Ended {
    /// It was authenticated, and no longer is.
    pub logged_out: bool,
    /// Its open challenge as it stood (with the attempts it had left),
    /// now `failed`.
    pub challenge: Option<Challenge>,
}

/// Ends what `rec` had proven or had under way at `now`, the person
/// behind its conversation having changed: an open challenge is `failed`,
/// the authentication (a step-up, a login waiting for its binding code,
/// its links) ends as a logout ends it. Nothing to end changes nothing.
pub fn end(rec: &mut InteractionRecord, s: &Settings, now: Timestamp) -> Ended {
    let challenge = match rec.open_challenge(now) {
        Some(_) => rec.challenge.take(),
        None => None,
    };
    if let Some(c) = &challenge {
        rec.remember_challenge(c, PastOutcome::Failed);
    }
    let logged_out = rec.is_authenticated(now, s);
    if logged_out || rec.auth.is_some() || rec.is_pending(now) {
        rec.log_out(now);
    } else if challenge.is_some() {
        rec.last_write_at = now;
    }
    Ended {
        logged_out,
        challenge,
    }
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::app_challenge;
    use crate::domain::challenge::ChallengeState;
    use crate::domain::interaction::Method;

    #[test]
    fn a_conversation_is_looked_up_by_the_id_meta_gives() {
        assert_eq!(meta_user_id("+15552223333"), "15552223333");
        assert_eq!(meta_user_id("15552223333"), "15552223333");
        assert_eq!(meta_user_id("US.ENT.118157"), "US.ENT.118157");
        assert_eq!(meta_user_id("+"), "+");
        assert_eq!(meta_user_id("+1a"), "+1a");
    }
    use crate::domain::secrets::Pepper;
    use crate::domain::subject::SubjectRecord;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }

    fn rec() -> InteractionRecord {
        let mut r = InteractionRecord::new(Uuid::now_v7(), "acme", "whatsapp", "15552223333", t(0));
        r.customer_ref = Some("cust-42".into());
        r
    }

    /// Opens an app challenge on `r` at `t(1)`: its id.
    fn open(r: &mut InteractionRecord) -> Uuid {
        let id = Uuid::now_v7();
        let code = crate::domain::otp::generate(app_challenge::BINDING_DIGITS);
        let pepper = Pepper::new("test-pepper");
        let s = Settings::default();
        app_challenge::decide(
            id,
            &code,
            r,
            &mut SubjectRecord::default(),
            &s,
            &pepper,
            t(1),
        )
        .unwrap();
        id
    }

    #[test]
    fn the_first_hash_is_no_change_and_another_one_is() {
        assert!(!is_change(None, "h1"));
        assert!(!is_change(Some("h1"), "h1"));
        assert!(is_change(Some("h1"), "h2"));
    }

    #[test]
    fn a_change_logs_out_and_fails_the_open_challenge() {
        let s = Settings::default();
        let mut r = rec();
        let customer = [("id".to_string(), "cust-42".to_string())].into();
        r.authenticate(Method::Otp, customer, t(1), &s);
        let cid = open(&mut r);
        let ended = end(&mut r, &s, t(2));
        assert!(ended.logged_out);
        assert_eq!(ended.challenge.map(|c| c.id), Some(cid));
        assert!(!r.is_authenticated(t(2), &s));
        assert_eq!(
            r.challenge_at(cid, t(2)).map(|c| c.1),
            Some(ChallengeState::Failed)
        );
    }

    #[test]
    fn a_change_fails_the_challenge_of_an_unauthenticated_interaction() {
        let s = Settings::default();
        let mut r = rec();
        let cid = open(&mut r);
        let ended = end(&mut r, &s, t(2));
        assert!(!ended.logged_out);
        assert_eq!(ended.challenge.map(|c| c.id), Some(cid));
        assert_eq!(
            r.challenge_at(cid, t(2)).map(|c| c.1),
            Some(ChallengeState::Failed)
        );
    }

    #[test]
    fn nothing_to_end_changes_nothing() {
        let s = Settings::default();
        let mut r = rec();
        let before = r.clone();
        assert_eq!(end(&mut r, &s, t(2)), Ended::default());
        assert_eq!(r, before);
    }
}
