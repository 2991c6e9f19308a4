//! Where an OTP may go (docs/api.md#where-an-otp-may-go): the team's
//! answer to SMS pumping, where a bot that relays a number typed into the
//! chat would otherwise send codes to premium or foreign numbers at the
//! team's expense.
//!
//! One decision, [`allow`], taken before anything is counted or sent: a
//! refusal sends nothing, uses no send allowance and counts no failure.
use phonenumber::{metadata::DATABASE, PhoneNumber, Type};

use super::challenge::Delivery;
use super::interaction::Contact;
use crate::domain::abuse::{Destinations, NumberType};
use crate::domain::settings::OtpSettings;
use crate::error::Error;

/// `Ok` when an OTP delivered by `delivery`, to `to` (the request's, already
/// shaped as a phone number or e-mail address) or else to the interaction's
/// `contact`, obeys the `otp` settings. 403 `forbidden` names the rule that
/// refuses; 422 an SMS number that is not a valid number where a region or
/// type rule applies. A missing recipient is left to the caller (its own
/// 422).
pub fn allow(
    otp: &OtpSettings,
    delivery: Delivery,
    to: Option<&str>,
    contact: &Contact,
) -> Result<(), Error> {
    if otp.destinations == Destinations::OnFile {
        if let Some(to) = to {
            let on_file = match delivery {
                Delivery::Sms => contact.phone.as_deref().is_some_and(|p| same_number(p, to)),
                Delivery::Email => contact
                    .email
                    .as_deref()
                    .is_some_and(|e| e.eq_ignore_ascii_case(to)),
                _ => false,
            };
            if !on_file {
                return Err(Error::Forbidden(
                    "otp.destinations is on_file: a code goes only to the interaction's own contact",
                ));
            }
        }
    }
    if delivery != Delivery::Sms || (otp.sms_regions.is_empty() && otp.sms_number_types.is_empty())
    {
        return Ok(());
    }
    let (field, number) = match (to, contact.phone.as_deref()) {
        (Some(to), _) => ("to", to),
        (None, Some(phone)) => ("contact.phone", phone),
        (None, None) => return Ok(()),
    };
    let number = parse(number).ok_or_else(|| {
        Error::invalid(
            field,
            "must be a valid phone number in E.164 form (like +447400123456) where otp.sms_regions or otp.sms_number_types apply",
        )
    })?;
    if !otp.sms_regions.is_empty() {
        let region = number.country().id();
        let served =
            region.is_some_and(|r| otp.sms_regions.iter().any(|s| s.as_str() == r.as_ref()));
        if !served {
            return Err(Error::Forbidden(
                "the number's region is not one of otp.sms_regions",
            ));
        }
    }
    if !otp.sms_number_types.is_empty() {
        let kind = number_type(number.number_type(&DATABASE));
        if !kind.is_some_and(|k| otp.sms_number_types.contains(&k)) {
            return Err(Error::Forbidden(
                "the number's type is not one of otp.sms_number_types",
            ));
        }
    }
    Ok(())
}

/// A valid number written in E.164 (`+` and the country code).
fn parse(s: &str) -> Option<PhoneNumber> {
    if !s.starts_with('+') {
        return None;
    }
    phonenumber::parse(None, s)
        .ok()
        .filter(PhoneNumber::is_valid)
}

/// Whether two written numbers are one: the same E.164 number, or (when
/// either is not a valid one) the same text.
fn same_number(a: &str, b: &str) -> bool {
    match (parse(a), parse(b)) {
        (Some(a), Some(b)) => a.code().value() == b.code().value() && a.national() == b.national(),
        _ => a == b,
    }
}

/// libphonenumber's type as the settings name it; `None` for the kinds no
/// setting can allow (unknown, emergency, short codes, ...).
fn number_type(t: Type) -> Option<NumberType> {
    Some(match t {
        Type::Mobile => NumberType::Mobile,
        Type::FixedLine => NumberType::FixedLine,
        Type::FixedLineOrMobile => NumberType::FixedLineOrMobile,
        Type::TollFree => NumberType::TollFree,
        Type::PremiumRate => NumberType::PremiumRate,
        Type::SharedCost => NumberType::SharedCost,
        Type::Voip => NumberType::Voip,
        Type::PersonalNumber => NumberType::PersonalNumber,
        Type::Pager => NumberType::Pager,
        Type::Uan => NumberType::Uan,
        Type::Voicemail => NumberType::Voicemail,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::abuse::SmsRegion;

    fn regions(r: &[&str]) -> Vec<SmsRegion> {
        r.iter()
            .map(|s| SmsRegion::try_from(s.to_string()).expect("region"))
            .collect()
    }

    fn contact(phone: Option<&str>, email: Option<&str>) -> Contact {
        Contact {
            phone: phone.map(str::to_string),
            email: email.map(str::to_string),
        }
    }

    fn forbidden(r: Result<(), Error>) -> bool {
        matches!(r, Err(Error::Forbidden(_)))
    }

    #[test]
    fn on_file_allows_the_contact_and_refuses_any_other_to() {
        let otp = OtpSettings {
            destinations: Destinations::OnFile,
            ..OtpSettings::default()
        };
        let c = contact(Some("+447400123456"), Some("Ada@example.com"));
        assert!(allow(&otp, Delivery::Sms, None, &c).is_ok());
        assert!(allow(&otp, Delivery::Sms, Some("+447400123456"), &c).is_ok());
        assert!(allow(&otp, Delivery::Email, Some("ada@EXAMPLE.com"), &c).is_ok());
        assert!(allow(&otp, Delivery::Chat, None, &c).is_ok());
        assert!(forbidden(allow(
            &otp,
            Delivery::Sms,
            Some("+447400999999"),
            &c
        )));
        assert!(forbidden(allow(
            &otp,
            Delivery::Email,
            Some("eve@example.com"),
            &c
        )));
        let none = contact(None, None);
        assert!(forbidden(allow(
            &otp,
            Delivery::Sms,
            Some("+447400123456"),
            &none
        )));
        // Any destination: whatever `to` says.
        let any = OtpSettings::default();
        assert!(allow(&any, Delivery::Sms, Some("+447400999999"), &c).is_ok());
    }

    /// UK-looking numbers of the Crown Dependencies are their own regions
    /// in libphonenumber's metadata.
    #[test]
    fn regions_follow_libphonenumber_s_metadata() {
        let otp = OtpSettings {
            sms_regions: regions(&["GB"]),
            ..OtpSettings::default()
        };
        let none = contact(None, None);
        assert!(allow(&otp, Delivery::Sms, Some("+447400123456"), &none).is_ok());
        // Jersey, Guernsey, Isle of Man mobiles; a US number.
        for other in [
            "+447797123456",
            "+447781123456",
            "+447624123456",
            "+12015550123",
        ] {
            assert!(
                forbidden(allow(&otp, Delivery::Sms, Some(other), &none)),
                "{other}"
            );
        }
        let islands = OtpSettings {
            sms_regions: regions(&["GB", "JE", "GG", "IM"]),
            ..OtpSettings::default()
        };
        assert!(allow(&islands, Delivery::Sms, Some("+447797123456"), &none).is_ok());
        // The contact is checked when there is no `to`; e-mail is not an SMS.
        let us = contact(Some("+12015550123"), Some("a@example.com"));
        assert!(forbidden(allow(&otp, Delivery::Sms, None, &us)));
        assert!(allow(&otp, Delivery::Email, None, &us).is_ok());
        assert!(allow(&otp, Delivery::Chat, None, &us).is_ok());
    }

    #[test]
    fn types_are_libphonenumber_s() {
        let otp = OtpSettings {
            sms_number_types: vec![NumberType::Mobile],
            ..OtpSettings::default()
        };
        let none = contact(None, None);
        assert!(allow(&otp, Delivery::Sms, Some("+447400123456"), &none).is_ok());
        // A UK premium-rate and a UK fixed line.
        assert!(forbidden(allow(
            &otp,
            Delivery::Sms,
            Some("+449012345678"),
            &none
        )));
        assert!(forbidden(allow(
            &otp,
            Delivery::Sms,
            Some("+442079460000"),
            &none
        )));
        // A US number is fixed_line_or_mobile, not mobile.
        assert!(forbidden(allow(
            &otp,
            Delivery::Sms,
            Some("+12015550123"),
            &none
        )));
        let both = OtpSettings {
            sms_number_types: vec![NumberType::Mobile, NumberType::FixedLineOrMobile],
            ..OtpSettings::default()
        };
        assert!(allow(&both, Delivery::Sms, Some("+12015550123"), &none).is_ok());
    }

    #[test]
    fn a_number_that_is_not_valid_is_422_only_where_a_rule_applies() {
        let otp = OtpSettings {
            sms_regions: regions(&["GB"]),
            ..OtpSettings::default()
        };
        let none = contact(None, None);
        for bad in ["+4412", "447400123456", "+999123456789"] {
            let r = allow(&otp, Delivery::Sms, Some(bad), &none);
            assert!(
                matches!(r, Err(Error::Unprocessable(ref m)) if m.starts_with("to:")),
                "{bad}: {r:?}"
            );
        }
        let r = allow(&otp, Delivery::Sms, None, &contact(Some("+4412"), None));
        assert!(
            matches!(r, Err(Error::Unprocessable(ref m)) if m.starts_with("contact.phone:")),
            "{r:?}"
        );
        let any = OtpSettings::default();
        assert!(allow(&any, Delivery::Sms, Some("+4412"), &none).is_ok());
    }
}
