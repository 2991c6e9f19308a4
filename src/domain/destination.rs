//! The send limit per destination (docs/api.md#challenges-otp-and-session-pin): at most
//! `otp.max_sends` challenges within `otp.send_window` to one phone number
//! or e-mail address, whichever subjects ask for them, so spelling a
//! subject anew cannot multiply the messages one person receives.
//!
//! A destination is stored under a keyed hash of its canonical form (with
//! the pepper): the store never holds the number or address in clear.
use unicode_normalization::UnicodeNormalization;

use super::secrets::Pepper;
use super::subject::check_sends;
use crate::domain::settings::OtpSettings;
use crate::error::Error;
use crate::time::Timestamp;

/// What the pepper's hash of a destination is for.
const PURPOSE: &str = "destination";

/// The challenges recently sent to one destination.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DestinationSends {
    pub sends: Vec<Timestamp>,
}

impl DestinationSends {
    /// Drops the sends that left the window, then `Err(RateLimited)` when
    /// `max_sends` remain; else counts one at `now`.
    pub fn take(&mut self, now: Timestamp, otp: &OtpSettings) -> Result<(), Error> {
        let w = otp.send_window.get();
        self.sends.retain(|s| now < s.plus(w));
        check_sends(&self.sends, now, otp)?;
        self.sends.push(now);
        Ok(())
    }

    /// Gives back the send counted at `now` (its message could not be sent).
    pub fn give_back(&mut self, now: Timestamp) {
        if let Some(pos) = self.sends.iter().rposition(|t| *t == now) {
            self.sends.remove(pos);
        }
    }
}

/// The keyed hash naming a destination: a phone number by its E.164 form
/// (so `+44 07400 123456`, `447400123456` and `whatsapp:+447400123456` are
/// one, docs/api.md#phone-numbers), an e-mail address trimmed,
/// NFKC-normalised and case-folded whole.
pub fn digest(pepper: &Pepper, destination: &str) -> String {
    digest_for(pepper, destination, None)
}

/// The keyed hash of `destination`'s sends from `allowance` (see
/// `SubjectRecord::allowance_of`): under `lockout.scope = "origin"` the
/// strangers together and each familiar origin apart each have their
/// own count of a destination's sends; `None`, the destination's one.
pub fn digest_for(pepper: &Pepper, destination: &str, allowance: Option<&str>) -> String {
    let d = destination.trim();
    let phone = d.strip_prefix("whatsapp:").unwrap_or(d);
    let canonical = match super::phone::e164(phone) {
        Some(e164) => format!("tel:{}", e164.trim_start_matches('+')),
        None => {
            let folded: String = caseless::default_case_fold_str(&d.nfkc().collect::<String>())
                .nfkc()
                .collect();
            format!("mailto:{folded}")
        }
    };
    let counted = match allowance {
        Some(a) => format!("{canonical}\n{a}"),
        None => canonical,
    };
    pepper.keyed_hash(PURPOSE, counted.as_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Dur;

    fn otp() -> OtpSettings {
        OtpSettings {
            max_sends: 2,
            send_window: Dur::from_secs(600),
            ..OtpSettings::default()
        }
    }

    fn t(secs: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_795_000_000 + secs)
    }

    #[test]
    fn at_most_max_sends_per_window_then_retry_after() {
        let mut d = DestinationSends::default();
        d.take(t(0), &otp()).unwrap();
        d.take(t(10), &otp()).unwrap();
        assert!(matches!(
            d.take(t(20), &otp()),
            Err(Error::RateLimited { retry_after: 580 })
        ));
        assert_eq!(d.sends.len(), 2, "a refused send is not counted");
        d.give_back(t(10));
        d.take(t(30), &otp()).unwrap();
        // The first leaves the window at 600 s.
        assert!(d.take(t(599), &otp()).is_err());
        d.take(t(600), &otp()).unwrap();
        assert_eq!(d.sends, [t(30), t(600)]);
    }

    #[test]
    fn one_destination_however_written_and_never_in_clear() {
        let p = Pepper::new("a pepper of sixteen bytes or more");
        let phone = digest(&p, "+15551230000");
        for same in ["15551230000", " +15551230000", "whatsapp:+15551230000"] {
            assert_eq!(digest(&p, same), phone, "{same}");
        }
        assert_ne!(digest(&p, "+15551230001"), phone);
        let uk = digest(&p, "+447400123456");
        assert_eq!(digest(&p, "+4407400123456"), uk, "the national prefix");
        let mail = digest(&p, "ada@example.com");
        assert_eq!(digest(&p, "Ada@Example.COM"), mail);
        assert_eq!(digest(&p, "ａｄａ@example.com"), mail);
        assert!(!mail.contains("ada") && !phone.contains("5551230000"));
        // Another pepper, another name.
        assert_ne!(
            digest(
                &Pepper::new("another pepper, sixteen+ bytes"),
                "ada@example.com"
            ),
            mail
        );
    }
}
