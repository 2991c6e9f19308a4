//! A bot platform's turn (docs/integrating-bot-platforms.md#dialogflow-cx):
//! the action a tag names, what the customer said as a code, and which
//! result (and text) the answer gives for what the action did.
use super::interaction::Status;
use super::settings::TextKey;
use crate::error::Error;

/// The action a webhook call asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tag {
    /// Find or create the interaction, and say where it stands.
    Status,
    /// Send an OTP.
    SendCode,
    /// Check the code the customer gave.
    CheckCode,
    /// Send a login link into the conversation.
    SendLink,
}

impl Tag {
    pub const ALL: [Tag; 4] = [Tag::Status, Tag::SendCode, Tag::CheckCode, Tag::SendLink];

    pub fn as_str(self) -> &'static str {
        match self {
            Tag::Status => "chatgate.status",
            Tag::SendCode => "chatgate.send_code",
            Tag::CheckCode => "chatgate.check_code",
            Tag::SendLink => "chatgate.send_link",
        }
    }

    pub fn parse(s: &str) -> Option<Tag> {
        Tag::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// What the customer gave as a code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// 1 to 20 ASCII digits: checked, and counted when wrong.
    Digits(String),
    /// A number's digits (1 to 20): a number drops a code's leading zeros,
    /// so it is left-padded with zeros to the code's length when shorter.
    Number(String),
    /// Anything else: a wrong code that is not counted.
    NotACode,
}

impl Said {
    /// Text (surrounding white space ignored) as a code.
    pub fn text(s: &str) -> Said {
        let s = s.trim();
        match (1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()) {
            true => Said::Digits(s.to_string()),
            false => Said::NotACode,
        }
    }

    /// A number (a platform's number entity gives `123456.0`): its
    /// integer's digits when it is integral and not negative.
    pub fn number(n: f64) -> Said {
        match n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < 1e20 {
            true => Said::digits_of_number(&format!("{n:.0}")),
            false => Said::NotACode,
        }
    }

    /// An integer (a number without a fraction in the JSON).
    pub fn integer(n: u64) -> Said {
        Said::digits_of_number(&n.to_string())
    }

    fn digits_of_number(digits: &str) -> Said {
        match Said::text(digits) {
            Said::Digits(d) => Said::Number(d),
            other => other,
        }
    }

    /// The code to check against a code of `length` digits: the digits
    /// said, a number's padded to `length` when shorter; `None` for what is
    /// not a code.
    pub fn code(&self, length: u32) -> Option<String> {
        match self {
            Said::Digits(d) => Some(d.clone()),
            Said::Number(d) => {
                let width = usize::try_from(length).unwrap_or(0);
                Some(format!("{d:0>width$}"))
            }
            Said::NotACode => None,
        }
    }
}

/// What an action did, when it did not refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// Read (or created) the interaction.
    Read,
    CodeSent,
    /// A login link was issued; `delivered`: the channel took it.
    LinkSent {
        delivered: bool,
    },
    /// The code was right.
    Verified,
    /// A code was to be checked but no challenge is open.
    NoChallenge,
    /// What the customer said is not a code.
    NotACode,
}

/// The `chatgate_result` of an answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BotResult {
    Authenticated,
    NotAuthenticated,
    CodeSent,
    LinkSent,
    WrongCode,
    CodeExpired,
    Locked,
    Banned,
    SendFailed,
    RateLimited,
    /// The rules refuse to send a code there (docs/api.md#what-a-code-proves).
    NotAllowed,
}

impl BotResult {
    pub const ALL: [BotResult; 11] = [
        BotResult::Authenticated,
        BotResult::NotAuthenticated,
        BotResult::CodeSent,
        BotResult::LinkSent,
        BotResult::WrongCode,
        BotResult::CodeExpired,
        BotResult::Locked,
        BotResult::Banned,
        BotResult::SendFailed,
        BotResult::RateLimited,
        BotResult::NotAllowed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            BotResult::Authenticated => "authenticated",
            BotResult::NotAuthenticated => "not_authenticated",
            BotResult::CodeSent => "code_sent",
            BotResult::LinkSent => "link_sent",
            BotResult::WrongCode => "wrong_code",
            BotResult::CodeExpired => "code_expired",
            BotResult::Locked => "locked",
            BotResult::Banned => "banned",
            BotResult::SendFailed => "send_failed",
            BotResult::RateLimited => "rate_limited",
            BotResult::NotAllowed => "not_allowed",
        }
    }

    /// Its template key: `say_` and its name.
    pub fn key(self) -> TextKey {
        match self {
            BotResult::Authenticated => TextKey::SayAuthenticated,
            BotResult::NotAuthenticated => TextKey::SayNotAuthenticated,
            BotResult::CodeSent => TextKey::SayCodeSent,
            BotResult::LinkSent => TextKey::SayLinkSent,
            BotResult::WrongCode => TextKey::SayWrongCode,
            BotResult::CodeExpired => TextKey::SayCodeExpired,
            BotResult::Locked => TextKey::SayLocked,
            BotResult::Banned => TextKey::SayBanned,
            BotResult::SendFailed => TextKey::SaySendFailed,
            BotResult::RateLimited => TextKey::SayRateLimited,
            BotResult::NotAllowed => TextKey::SayNotAllowed,
        }
    }
}

/// The result of an action that did `done`, the interaction's `status`
/// afterwards (a code checked right may still need a second factor; a
/// code to check without a challenge is not news to a locked subject).
pub fn result_of(done: Done, status: Status) -> BotResult {
    let standing = match status {
        Status::Authenticated => BotResult::Authenticated,
        Status::Locked => BotResult::Locked,
        Status::Banned => BotResult::Banned,
        Status::Unauthenticated | Status::Pending | Status::Expired => BotResult::NotAuthenticated,
    };
    match done {
        Done::Read | Done::Verified => standing,
        Done::CodeSent => BotResult::CodeSent,
        Done::LinkSent { delivered: true } => BotResult::LinkSent,
        Done::LinkSent { delivered: false } => BotResult::SendFailed,
        Done::NoChallenge => match standing {
            BotResult::Locked | BotResult::Banned => standing,
            _ => BotResult::CodeExpired,
        },
        Done::NotACode => BotResult::WrongCode,
    }
}

/// The result of an action the API refused with `e`; `None` for an error
/// that is no refusal a customer should hear (the store down, a bad
/// request): it stays the API's error.
pub fn refusal(e: &Error) -> Option<BotResult> {
    Some(match e {
        Error::InvalidCode { .. } => BotResult::WrongCode,
        Error::ChallengeExpired | Error::ChallengeExhausted | Error::ChallengeUsed => {
            BotResult::CodeExpired
        }
        Error::Locked { .. } => BotResult::Locked,
        Error::Banned => BotResult::Banned,
        Error::RateLimited { .. } => BotResult::RateLimited,
        Error::DeliveryRefused(_) => BotResult::NotAllowed,
        // The channel failed, or the team's rules or a number check
        // refused the destination.
        Error::Channel(_) | Error::Forbidden(_) | Error::NumberRefused(_) => BotResult::SendFailed,
        _ => return None,
    })
}

/// A `say_*` text with `#LEFT#` filled with `left`.
pub fn say(text: &str, left: Option<u32>) -> String {
    match left {
        Some(n) => text.replace("#LEFT#", &n.to_string()),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn ok(d: Done) -> BotResult {
        result_of(d, Status::Unauthenticated)
    }

    fn err(e: Error) -> Option<BotResult> {
        refusal(&e)
    }

    #[test]
    fn tags_read_back() {
        for t in Tag::ALL {
            assert_eq!(Tag::parse(t.as_str()), Some(t));
        }
        assert_eq!(Tag::parse("chatgate.unknown"), None);
    }

    #[test]
    fn authenticated() {
        assert_eq!(
            result_of(Done::Verified, Status::Authenticated),
            BotResult::Authenticated
        );
        assert_eq!(
            result_of(Done::Read, Status::Authenticated),
            BotResult::Authenticated
        );
    }

    #[test]
    fn not_authenticated() {
        for s in [Status::Unauthenticated, Status::Pending, Status::Expired] {
            assert_eq!(result_of(Done::Read, s), BotResult::NotAuthenticated);
        }
        // A right code that still needs a second factor.
        assert_eq!(ok(Done::Verified), BotResult::NotAuthenticated);
    }

    #[test]
    fn code_sent() {
        assert_eq!(ok(Done::CodeSent), BotResult::CodeSent);
    }

    #[test]
    fn link_sent() {
        assert_eq!(ok(Done::LinkSent { delivered: true }), BotResult::LinkSent);
    }

    #[test]
    fn wrong_code() {
        let wrong = Error::InvalidCode {
            attempts_remaining: 2,
        };
        assert_eq!(err(wrong), Some(BotResult::WrongCode));
        assert_eq!(ok(Done::NotACode), BotResult::WrongCode);
    }

    #[test]
    fn code_expired() {
        assert_eq!(ok(Done::NoChallenge), BotResult::CodeExpired);
        for e in [
            Error::ChallengeExpired,
            Error::ChallengeExhausted,
            Error::ChallengeUsed,
        ] {
            assert_eq!(err(e), Some(BotResult::CodeExpired));
        }
    }

    #[test]
    fn locked() {
        let until = Timestamp::from_unix_seconds(1_800_000_000);
        let e = Error::Locked {
            until,
            retry_after: 60,
        };
        assert_eq!(err(e), Some(BotResult::Locked));
        assert_eq!(result_of(Done::Read, Status::Locked), BotResult::Locked);
        assert_eq!(
            result_of(Done::NoChallenge, Status::Locked),
            BotResult::Locked
        );
    }

    #[test]
    fn banned() {
        assert_eq!(err(Error::Banned), Some(BotResult::Banned));
        assert_eq!(result_of(Done::Read, Status::Banned), BotResult::Banned);
        assert_eq!(
            result_of(Done::NoChallenge, Status::Banned),
            BotResult::Banned
        );
    }

    #[test]
    fn send_failed() {
        assert_eq!(
            ok(Done::LinkSent { delivered: false }),
            BotResult::SendFailed
        );
        let e = Error::Channel("twilio: 21211".into());
        assert_eq!(err(e), Some(BotResult::SendFailed));
        assert_eq!(err(Error::Forbidden("no")), Some(BotResult::SendFailed));
        let swap = Error::NumberRefused("sim_swap");
        assert_eq!(err(swap), Some(BotResult::SendFailed));
    }

    #[test]
    fn rate_limited() {
        let e = Error::RateLimited { retry_after: 30 };
        assert_eq!(err(e), Some(BotResult::RateLimited));
    }

    #[test]
    fn a_delivery_the_rules_refuse_there_is_not_allowed() {
        assert_eq!(
            err(Error::DeliveryRefused("x")),
            Some(BotResult::NotAllowed)
        );
        assert_eq!(BotResult::NotAllowed.key(), TextKey::SayNotAllowed);
    }

    #[test]
    fn other_errors_stay_errors() {
        assert_eq!(err(Error::StoreUnavailable), None);
        assert_eq!(err(Error::Unprocessable("x".into())), None);
        assert_eq!(err(Error::NotFound("x")), None);
    }

    #[test]
    fn a_number_is_padded_to_the_code_s_length_text_is_not() {
        // `@sys.number` gives 012345 as 12345.0.
        assert_eq!(Said::number(12345.0).code(6).as_deref(), Some("012345"));
        assert_eq!(Said::integer(12345).code(6).as_deref(), Some("012345"));
        assert_eq!(Said::number(0.0).code(6).as_deref(), Some("000000"));
        // Longer or as long: as it is; typed text is never padded.
        assert_eq!(Said::integer(1234567).code(6).as_deref(), Some("1234567"));
        assert_eq!(Said::text("12345").code(6).as_deref(), Some("12345"));
        assert_eq!(Said::NotACode.code(6), None);
    }

    #[test]
    fn codes_said_as_text_or_number() {
        assert_eq!(Said::text(" 123456 "), Said::Digits("123456".into()));
        assert_eq!(Said::text("012345"), Said::Digits("012345".into()));
        assert_eq!(Said::text("12 34"), Said::NotACode);
        assert_eq!(Said::text("my code is 123456"), Said::NotACode);
        assert_eq!(Said::text(""), Said::NotACode);
        assert_eq!(Said::text(&"1".repeat(21)), Said::NotACode);
        assert_eq!(Said::number(123456.0), Said::Number("123456".into()));
        assert_eq!(Said::number(123456.5), Said::NotACode);
        assert_eq!(Said::number(-5.0), Said::NotACode);
        assert_eq!(Said::number(f64::NAN), Said::NotACode);
        assert_eq!(Said::number(1e20), Said::NotACode);
    }

    #[test]
    fn every_result_has_its_text_and_left_is_filled() {
        let t = crate::domain::settings::Templates::default();
        for r in BotResult::ALL {
            let text = t.text(r.key());
            assert!(!say(text, None).is_empty(), "{}", r.key().as_str());
        }
        let said = say(&t.say_wrong_code, Some(2));
        assert!(said.contains(" 2 ") && !said.contains("#LEFT#"), "{said}");
    }
}
