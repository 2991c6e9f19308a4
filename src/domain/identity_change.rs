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

/// How many hashes a conversation keeps: the newest and the ones before
/// it, so that one of them arriving late is known.
pub const KEPT: usize = 8;

/// An identity hash Meta gave, with Meta's time for it (the message's or
/// status's `timestamp`, in seconds; `None` for a hash kept before times
/// were: older than any).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SeenHash {
    pub hash: String,
    pub at: Option<i64>,
}

/// The hashes a conversation had, by Meta's time: the newest, and up to
/// [`KEPT`] - 1 before it, newest first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownHashes {
    pub newest: SeenHash,
    pub earlier: Vec<SeenHash>,
}

/// What a hash given for a conversation does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HashTaken {
    /// The person behind the conversation changed.
    pub change: bool,
    /// What the conversation keeps from now on; `None`: as it was.
    pub keep: Option<KnownHashes>,
}

/// What hash `given` does to a conversation that had `known`
/// (docs/channels.md#identity-changes), ordered by Meta's time, not by
/// arrival: the first hash is no change; a hash the conversation had
/// before is no change, whenever it arrives; a different hash with the
/// same or a later time than the newest is a change, and the newest; one
/// with an older time arrived late: no change, kept among the earlier.
pub fn take_hash(known: Option<&KnownHashes>, given: SeenHash) -> HashTaken {
    let Some(known) = known else {
        let keep = KnownHashes {
            newest: given,
            earlier: Vec::new(),
        };
        return HashTaken {
            change: false,
            keep: Some(keep),
        };
    };
    let had = |h: &SeenHash| h.hash == given.hash;
    if had(&known.newest) || known.earlier.iter().any(had) {
        return HashTaken {
            change: false,
            keep: None,
        };
    }
    let change = given.at >= known.newest.at;
    let mut all = Vec::with_capacity(known.earlier.len() + 2);
    all.push(given);
    all.push(known.newest.clone());
    all.extend(known.earlier.iter().cloned());
    // Newest first (stable: on a tie the later arrival, the change).
    all.sort_by_key(|h| std::cmp::Reverse(h.at));
    all.truncate(KEPT);
    let newest = all.remove(0);
    HashTaken {
        change,
        keep: Some(KnownHashes {
            newest,
            earlier: all,
        }),
    }
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

    fn seen(hash: &str, at: i64) -> SeenHash {
        SeenHash {
            hash: hash.into(),
            at: Some(at),
        }
    }

    /// Takes `given` hashes in arrival order: whether each was a change,
    /// and what is kept at the end.
    fn arrive(given: &[(&str, i64)]) -> (Vec<bool>, KnownHashes) {
        let mut known: Option<KnownHashes> = None;
        let mut changes = Vec::new();
        for (hash, at) in given {
            let taken = take_hash(known.as_ref(), seen(hash, *at));
            changes.push(taken.change);
            if let Some(keep) = taken.keep {
                known = Some(keep);
            }
        }
        (changes, known.unwrap())
    }

    #[test]
    fn the_first_hash_is_no_change_and_another_one_is() {
        let (changes, known) = arrive(&[("h1", 10), ("h1", 10), ("h1", 12), ("h2", 20)]);
        assert_eq!(changes, [false, false, false, true]);
        assert_eq!(known.newest, seen("h2", 20));
        assert_eq!(known.earlier, [seen("h1", 10)]);
    }

    #[test]
    fn a_hash_had_before_or_older_than_the_newest_is_no_change() {
        // h2 then h3 were changes; h2 again (Meta's late retry), and h0,
        // older than h3 and never seen, are not.
        let (changes, known) =
            arrive(&[("h1", 10), ("h2", 20), ("h3", 30), ("h2", 20), ("h0", 25)]);
        assert_eq!(changes, [false, true, true, false, false]);
        assert_eq!(known.newest, seen("h3", 30));
        let order: Vec<&str> = known.earlier.iter().map(|h| h.hash.as_str()).collect();
        assert_eq!(order, ["h0", "h2", "h1"]);
        // Seen before, even with a later time: no change.
        let again = take_hash(Some(&known), seen("h1", 99));
        assert_eq!(
            again,
            HashTaken {
                change: false,
                keep: None
            }
        );
    }

    #[test]
    fn the_same_time_as_the_newest_is_a_change_and_the_newest() {
        let (changes, known) = arrive(&[("h1", 10), ("h2", 10)]);
        assert_eq!(changes, [false, true]);
        assert_eq!(known.newest, seen("h2", 10));
    }

    #[test]
    fn a_hash_kept_before_times_were_is_older_than_any() {
        let old = KnownHashes {
            newest: SeenHash {
                hash: "h1".into(),
                at: None,
            },
            earlier: vec![],
        };
        let taken = take_hash(Some(&old), seen("h2", 1));
        assert!(taken.change);
        assert_eq!(taken.keep.unwrap().earlier, [old.newest]);
    }

    #[test]
    fn only_the_last_few_are_kept() {
        let given: Vec<(String, i64)> = (0..20).map(|n| (format!("h{n}"), n)).collect();
        let given: Vec<(&str, i64)> = given.iter().map(|(h, n)| (h.as_str(), *n)).collect();
        let (_, known) = arrive(&given);
        assert_eq!(known.newest, seen("h19", 19));
        assert_eq!(known.earlier.len(), KEPT - 1);
        assert_eq!(known.earlier.last(), Some(&seen("h12", 12)));
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
