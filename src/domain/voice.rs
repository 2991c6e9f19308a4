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
/// press to: 32 lowercase hex digits of 128 random bits. It names a call,
/// not a challenge, and says nothing of either.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatherId(String);

impl GatherId {
    /// A fresh id, from the operating system's CSPRNG.
    pub fn new() -> Self {
        let mut bytes = [0u8; GATHER_BYTES];
        OsRng.fill_bytes(&mut bytes);
        GatherId(hex::encode(bytes))
    }

    /// `s` when it has the shape of an id the gateway issues (anything
    /// else names no call).
    pub fn parse(s: &str) -> Option<Self> {
        let shaped = s.len() == GATHER_BYTES * 2
            && s.bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        shaped.then(|| GatherId(s.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Default for GatherId {
    fn default() -> Self {
        Self::new()
    }
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

/// The verdict on a press that sent `digits` (`None`: no `Digits` field)
/// for a call whose challenge is `open` and whose code was read `readings`
/// times: read while the challenge is open and the code was read fewer
/// than [`MAX_READINGS`] times; otherwise unavailable.
pub fn press(digits: Option<&str>, open: bool, readings: u32) -> Press {
    let pressed = digits.is_some_and(|d| !d.trim().is_empty());
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
    fn a_gather_id_is_128_random_bits_in_hex_and_only_that_shape_parses() {
        let a = GatherId::new();
        let b = GatherId::new();
        assert_ne!(a, b);
        assert_eq!(a.as_str().len(), 32);
        assert_eq!(GatherId::parse(a.as_str()), Some(a.clone()));
        for bad in [
            "",
            "abc",
            &a.as_str().to_uppercase(),
            &format!("{}0", a.as_str()),
        ] {
            assert_eq!(GatherId::parse(bad), None, "{bad}");
        }
        assert_eq!(GatherId::parse(&"g".repeat(32)), None);
    }

    #[test]
    fn a_press_reads_three_times_while_open_then_never() {
        assert_eq!(press(Some("1"), true, 0), Press::Read { first: true });
        assert_eq!(press(Some("#"), true, 1), Press::Read { first: false });
        assert_eq!(press(Some("9"), true, 2), Press::Read { first: false });
        assert_eq!(press(Some("1"), true, 3), Press::Unavailable);
        assert_eq!(press(Some("1"), false, 0), Press::Unavailable);
        assert_eq!(press(None, true, 0), Press::Unavailable);
        assert_eq!(press(Some(""), true, 0), Press::Unavailable);
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
