//! Codes read by a voice call (docs/channels.md#twilio_voice-codes-read-by-a-phone-call):
//! the rules of a call, on plain values. The id a key press comes back
//! under ([`GatherId`]), whether a press reads the code ([`press`]), how a
//! code is spoken ([`spoken_digits`]), which `<Say language>` a locale
//! gets ([`say_language`]) and what a call's status reports
//! ([`call_report`]).
use std::collections::BTreeMap;
use std::fmt::Write as _;

use rand::rngs::OsRng;
use rand::RngCore;

use super::delivery_status::{DeliveryError, DeliveryStatus};

/// The most times one challenge's code is read aloud.
pub const MAX_READINGS: u32 = 3;

/// The error code of a call that ended without the code being read.
pub const NOT_HEARD: &str = "not_heard";

/// Random bytes in a [`GatherId`]: 128 bits.
const GATHER_BYTES: usize = 16;

/// The opaque id of one call's key press, in the URL Twilio posts the
/// press to: 32 lowercase hex digits of 128 random bits, a `.`, and the
/// team that placed the call, so that the press is looked up in that team
/// alone (docs/decisions/0212-a-gather-id-names-its-team.md). It names a
/// call, not a challenge or an interaction, and says nothing of either.
/// An id of an earlier version is the 32 digits alone, and names no team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherId(String);

impl GatherId {
    /// A fresh id of a call of `team`, from the operating system's CSPRNG.
    pub fn new(team: &str) -> Self {
        let mut bytes = [0u8; GATHER_BYTES];
        OsRng.fill_bytes(&mut bytes);
        GatherId(format!("{}.{team}", hex::encode(bytes)))
    }

    /// `s` when it has the shape of an id the gateway issues, or issued
    /// before ids named their team (anything else names no call).
    pub fn parse(s: &str) -> Option<Self> {
        let (random, team) = match s.split_once('.') {
            Some((random, team)) => (random, Some(team)),
            None => (s, None),
        };
        let random_shaped = random.len() == GATHER_BYTES * 2
            && random
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        let team_shaped = team.is_none_or(|t| {
            (1..=64).contains(&t.len())
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
        });
        (random_shaped && team_shaped).then(|| GatherId(s.to_string()))
    }

    /// The team that placed the call (`None`: an id of an earlier version).
    pub fn team(&self) -> Option<&str> {
        self.0.split_once('.').map(|(_, team)| team)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A signed key press, as Twilio's form said it (read at the edge,
/// `channels::twilio_voice`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPress {
    /// The call it is for (`None`: the URL names no call the gateway could
    /// have issued).
    pub gather: Option<GatherId>,
    /// A key was pressed (`Digits` given and not blank).
    pub pressed: bool,
    /// Twilio's id of the call (`CallSid`; empty when absent).
    pub call_sid: String,
}

/// The call that reads a challenge's code: its channel, its gather id, and
/// the version its gather record was last written at, so that the commit
/// that ends the challenge deletes that record
/// (docs/decisions/0213-a-call-s-record-ends-with-its-challenge.md).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoiceCall {
    pub channel: String,
    pub gather: GatherId,
    pub version: u64,
}

/// The texts a voice call says (template keys `voice_gate`, `voice_otp`,
/// `voice_unavailable`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VoiceText {
    /// Before the code: asks for a key press.
    Gate,
    /// The code (`#PIN#`), after the press.
    Otp,
    /// The code for a transaction, with `#AMOUNT#` and `#PAYEE#`
    /// (docs/api.md#approving-one-payment).
    OtpTransaction,
    /// A press once the code cannot be read.
    Unavailable,
}

/// What a key press answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Press {
    /// Read the code; `first`: no press read it before.
    Read { first: bool },
    /// Say that the code is no longer available.
    Unavailable,
}

/// The verdict on a press (`pressed`: a key was pressed) for a call whose
/// challenge is `open` and whose code was read `readings` times: read while
/// the challenge is open and the code was read fewer than
/// [`MAX_READINGS`] times; otherwise unavailable.
pub fn press(pressed: bool, open: bool, readings: u32) -> Press {
    if pressed && open && readings < MAX_READINGS {
        Press::Read {
            first: readings == 0,
        }
    } else {
        Press::Unavailable
    }
}

/// The code as a voice reads it: digit by digit, separated by ", "
/// (`"4821"` → `"4, 8, 2, 1"`).
pub fn spoken_digits(code: &str) -> String {
    let mut out = String::with_capacity(code.len() * 3);
    for (i, digit) in code.chars().enumerate() {
        if i > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{digit}");
    }
    out
}

/// The `<Say language>` for locale `tag` in a channel's `languages`
/// (supported tag → Twilio's code): the entry of the tag itself, else of
/// its primary language (`es-AR` → `es`), compared without regard to
/// case; `None` when the table has neither
/// (docs/decisions/0112-the-language-of-a-voice-call.md).
pub fn say_language<'a>(languages: &'a BTreeMap<String, String>, tag: &str) -> Option<&'a str> {
    let entry = |wanted: &str| {
        languages
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(wanted))
            .map(|(_, v)| v.as_str())
    };
    let primary = tag.split(['-', '_']).next().unwrap_or(tag);
    entry(tag).or_else(|| entry(primary))
}

/// What a call's `CallStatus` reports (`None`: nothing, as `answered`
/// without a press). A call that ends (`completed`) reports a failure
/// `not_heard`, which a reading already recorded as delivered outranks.
pub fn call_report(status: &str) -> Option<(DeliveryStatus, Option<DeliveryError>)> {
    let failed = |code: &str| {
        Some((
            DeliveryStatus::Failed,
            Some(DeliveryError {
                code: code.to_string(),
                title: None,
            }),
        ))
    };
    match status {
        "initiated" | "ringing" | "in-progress" => Some((DeliveryStatus::Sent, None)),
        "busy" | "no-answer" | "failed" | "canceled" => failed(status),
        "completed" => failed(NOT_HEARD),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gather_id_is_128_random_bits_in_hex_and_its_team_and_only_that_shape_parses() {
        let a = GatherId::new("acme");
        let b = GatherId::new("acme");
        assert_ne!(a, b);
        let (random, team) = a.as_str().split_once('.').unwrap();
        assert_eq!((random.len(), team), (32, "acme"));
        assert_eq!(a.team(), Some("acme"));
        assert_eq!(GatherId::parse(a.as_str()), Some(a.clone()));
        // An earlier version's id: the digits alone, no team.
        let legacy = GatherId::parse(random).unwrap();
        assert_eq!(legacy.team(), None);
        for bad in [
            "",
            "abc",
            &a.as_str().to_uppercase(),
            &format!("{random}0"),
            &format!("{random}."),
            &format!("{random}.Acme"),
            &format!("{random}.a/b"),
            &format!("{random}.{}", "a".repeat(65)),
        ] {
            assert_eq!(GatherId::parse(bad), None, "{bad}");
        }
        assert_eq!(GatherId::parse(&"g".repeat(32)), None);
    }

    #[test]
    fn a_press_reads_three_times_while_open_then_never() {
        assert_eq!(press(true, true, 0), Press::Read { first: true });
        assert_eq!(press(true, true, 1), Press::Read { first: false });
        assert_eq!(press(true, true, 2), Press::Read { first: false });
        assert_eq!(press(true, true, 3), Press::Unavailable);
        assert_eq!(press(true, false, 0), Press::Unavailable);
        assert_eq!(press(false, true, 0), Press::Unavailable);
    }

    #[test]
    fn a_code_is_spoken_digit_by_digit() {
        assert_eq!(spoken_digits("4821"), "4, 8, 2, 1");
        assert_eq!(spoken_digits("7"), "7");
        assert_eq!(spoken_digits(""), "");
    }

    #[test]
    fn the_say_language_is_the_tag_s_entry_else_its_primary_language_s() {
        let languages: BTreeMap<String, String> =
            [("en", "en-US"), ("es", "es-MX"), ("pt-BR", "pt-BR")]
                .into_iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        assert_eq!(say_language(&languages, "en"), Some("en-US"));
        assert_eq!(say_language(&languages, "es-AR"), Some("es-MX"));
        assert_eq!(say_language(&languages, "PT-br"), Some("pt-BR"));
        assert_eq!(say_language(&languages, "pt"), None);
        assert_eq!(say_language(&languages, "de"), None);
        assert_eq!(say_language(&BTreeMap::new(), "en"), None);
    }

    #[test]
    fn call_statuses_report_as_documented() {
        use DeliveryStatus::{Failed, Sent};
        for sent in ["initiated", "ringing", "in-progress"] {
            assert_eq!(call_report(sent), Some((Sent, None)), "{sent}");
        }
        for failed in ["busy", "no-answer", "failed", "canceled"] {
            let (status, error) = call_report(failed).unwrap();
            assert_eq!(status, Failed);
            assert_eq!(error.unwrap().code, failed);
        }
        let (status, error) = call_report("completed").unwrap();
        assert_eq!(
            (status, error.unwrap().code.as_str()),
            (Failed, "not_heard")
        );
        for nothing in ["answered", "queued", ""] {
            assert_eq!(call_report(nothing), None, "{nothing}");
        }
    }
}
