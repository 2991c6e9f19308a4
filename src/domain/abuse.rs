//! The settings that keep the gateway from being turned against the people
//! and the teams it protects: where an OTP may go (`otp.destinations`,
//! `otp.sms_regions`, `otp.sms_number_types`) and how far a lockout reaches
//! (`lockout.scope`). See docs/api.md#where-an-otp-may-go.
//!
//! Region codes and number types are checked against libphonenumber's
//! metadata (the `phonenumber` crate) when the configuration is read, so a
//! misspelt region stops start-up instead of refusing every SMS.
//! `config` reads the files into these values.

/// Where an OTP may be sent.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Destinations {
    /// Wherever the bot names (`to`), or the interaction's contact.
    #[default]
    Any,
    /// Only the interaction's own contact (or its chat): a `to` that differs
    /// from it is refused.
    OnFile,
}

/// An ISO 3166 region that libphonenumber's metadata knows (`GB`, `JE`, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmsRegion(String);

impl SmsRegion {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for SmsRegion {
    type Error = &'static str;

    fn try_from(s: String) -> Result<Self, Self::Error> {
        let letters = s.len() == 2 && s.bytes().all(|b| b.is_ascii_uppercase());
        if letters && phonenumber::metadata::DATABASE.by_id(&s).is_some() {
            Ok(SmsRegion(s))
        } else {
            Err("must be an ISO 3166 region code that libphonenumber knows, in capitals, such as \"GB\"")
        }
    }
}

impl From<SmsRegion> for String {
    fn from(r: SmsRegion) -> String {
        r.0
    }
}

/// A kind of phone number, by libphonenumber's names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NumberType {
    Mobile,
    FixedLine,
    /// Where the number itself does not tell (the USA, Canada, ...).
    FixedLineOrMobile,
    TollFree,
    PremiumRate,
    SharedCost,
    Voip,
    PersonalNumber,
    Pager,
    Uan,
    Voicemail,
}

/// Whom failures, lockouts and bans are counted for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LockoutScope {
    /// The subject, wherever the attempts come from.
    #[default]
    Subject,
    /// Each origin of the subject apart (its device or conversation), with
    /// one shared count for the origins the subject never succeeded from.
    Origin,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn regions_are_the_metadata_s_in_capitals() {
        for ok in ["GB", "GG", "JE", "IM", "US", "DE"] {
            assert!(SmsRegion::try_from(ok.to_string()).is_ok(), "{ok}");
        }
        for bad in ["gb", "UK", "XX", "001", "", "GBR", "G"] {
            assert!(SmsRegion::try_from(bad.to_string()).is_err(), "{bad}");
        }
    }
}
