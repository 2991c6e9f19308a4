//! Where a message may go (docs/api.md#where-an-otp-may-go): the team's
//! answer to SMS pumping, where a bot that relays a number typed into the
//! chat would otherwise send codes to premium or foreign numbers at the
//! team's expense.
//!
//! Two decisions, taken before anything is counted or sent, so a refusal
//! sends nothing, uses no send allowance and counts no failure:
//! [`allow`], whether an OTP may go to the `to` a request names
//! (`otp.destinations`), and [`recipient`], whom any message on a channel
//! goes to and whether the SMS rules (`otp.sms_regions`,
//! `otp.sms_number_types`) let it go there. Every message the gateway
//! sends takes its recipient from [`recipient`]: codes, PIN prompts, login
//! links and the notices of the outbox alike.
use phonenumber::{metadata::DATABASE, PhoneNumber, Type};

use super::bsuid::is_bsuid;
use super::challenge::Delivery;
use super::interaction::Contact;
use super::phone;
use crate::domain::abuse::{Destinations, NumberType, SmsRegion};
use crate::domain::settings::OtpSettings;
use crate::error::Error;

/// Whom a channel's messages reach: a conversation, or a person by phone
/// or e-mail (docs/channels.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach {
    Conversation,
    /// A conversation that is the customer's phone number (WhatsApp): its
    /// messages go to the conversation, and obey the SMS rules as any
    /// message to a phone (docs/api.md#where-an-otp-may-go).
    PhoneChat,
    Phone,
    /// A person by phone, called (`twilio_voice`): obeys the voice rules
    /// (`otp.voice_regions`, `otp.voice_number_types`) in place of the SMS
    /// rules (docs/api.md#codes-read-by-a-voice-call).
    Voice,
    Email,
}

impl Reach {
    /// Whom a message on a channel of this reach goes to: `to` when given,
    /// else the contact it addresses (`None`: a conversation, or nobody to
    /// send to).
    pub fn recipient(self, contact: &Contact, to: Option<String>) -> Option<String> {
        to.or_else(|| match self {
            Reach::Conversation | Reach::PhoneChat => None,
            Reach::Phone | Reach::Voice => contact.phone.clone(),
            Reach::Email => contact.email.clone(),
        })
    }
}

/// `Ok` when an OTP delivered by `delivery` to `to` (the request's, already
/// shaped as a phone number or e-mail address) obeys
/// `otp.destinations`: with `on_file`, a `to` must be the interaction's own
/// `contact`, else 403 `forbidden`.
pub fn allow(
    otp: &OtpSettings,
    delivery: Delivery,
    to: Option<&str>,
    contact: &Contact,
) -> Result<(), Error> {
    if otp.destinations != Destinations::OnFile {
        return Ok(());
    }
    let Some(to) = to else {
        return Ok(());
    };
    let on_file = match delivery {
        Delivery::Sms | Delivery::Voice => {
            contact.phone.as_deref().is_some_and(|p| same_number(p, to))
        }
        Delivery::Email => contact
            .email
            .as_deref()
            .is_some_and(|e| e.eq_ignore_ascii_case(to)),
        Delivery::Chat
        | Delivery::Agent
        | Delivery::LoginPage
        | Delivery::Ladder
        | Delivery::App => false,
    };
    if on_file {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "otp.destinations is on_file: a code goes only to the interaction's own contact",
        ))
    }
}

/// Whom a message goes to on a channel of `reach`, in the conversation
/// `conversation_id` of an interaction with `contact`: `to` when given,
/// else the contact the channel addresses (`None`: the conversation, or
/// nobody to send to; a phone number in E.164). `Err` when the message
/// would reach a phone number the SMS rules refuse (see [`sms_rules`]):
/// a twilio channel's recipient, or the number a WhatsApp conversation is.
pub fn recipient(
    reach: Reach,
    otp: &OtpSettings,
    contact: &Contact,
    conversation_id: &str,
    to: Option<String>,
) -> Result<Option<String>, Error> {
    let named = |field: &'static str, number: &str| {
        let field = match contact.phone.as_deref() {
            Some(p) if field == "to" && p == number => "contact.phone",
            _ => field,
        };
        (field, number.to_string())
    };
    let (field, number) = match (reach, to.as_deref(), contact.phone.as_deref()) {
        (Reach::Phone | Reach::Voice | Reach::PhoneChat, Some(to), _) => named("to", to),
        (Reach::Phone | Reach::Voice, None, Some(p)) => ("contact.phone", p.to_string()),
        // A WhatsApp conversation named by a business-scoped user id has
        // no number: no phone rule reads it
        // (docs/channels.md#business-scoped-user-ids).
        (Reach::PhoneChat, None, _) if is_bsuid(conversation_id) => return Ok(None),
        (Reach::PhoneChat, None, _) => ("conversation_id", conversation_id.to_string()),
        (Reach::Phone | Reach::Voice, None, None) | (Reach::Conversation | Reach::Email, _, _) => {
            return Ok(reach.recipient(contact, to));
        }
    };
    if reach == Reach::Voice {
        phone_rules(&PhoneRules::voice(otp), field, &number)?;
    } else {
        sms_rules(otp, field, &number)?;
    }
    Ok(match reach {
        Reach::PhoneChat => to,
        _ => Some(phone::e164(&number).unwrap_or(number)),
    })
}

/// `otp.sms_regions` and `otp.sms_number_types` for a message to `number`
/// (named `field` in a 422): 422 when a rule is set and it is not a valid
/// number, 403 `forbidden` outside the regions or types. Empty lists read
/// nothing.
pub fn sms_rules(otp: &OtpSettings, field: &str, number: &str) -> Result<(), Error> {
    phone_rules(&PhoneRules::sms(otp), field, number)
}

/// The regions and types a phone number must be in, and the words that
/// refuse one outside them.
pub struct PhoneRules<'a> {
    regions: &'a [SmsRegion],
    types: &'a [NumberType],
    invalid: &'static str,
    other_region: &'static str,
    other_type: &'static str,
}

impl<'a> PhoneRules<'a> {
    /// `otp.sms_regions` and `otp.sms_number_types`.
    pub fn sms(otp: &'a OtpSettings) -> Self {
        PhoneRules {
            regions: &otp.sms_regions,
            types: &otp.sms_number_types,
            invalid: "must be a valid phone number in E.164 form (like +447400123456) where otp.sms_regions or otp.sms_number_types apply",
            other_region: "the number's region is not one of otp.sms_regions",
            other_type: "the number's type is not one of otp.sms_number_types",
        }
    }

    /// `otp.voice_regions` and `otp.voice_number_types`, for a call.
    pub fn voice(otp: &'a OtpSettings) -> Self {
        PhoneRules {
            regions: &otp.voice_regions,
            types: &otp.voice_number_types,
            invalid: "must be a valid phone number in E.164 form (like +447400123456) where otp.voice_regions or otp.voice_number_types apply",
            other_region: "the number's region is not one of otp.voice_regions",
            other_type: "the number's type is not one of otp.voice_number_types",
        }
    }
}

/// `rules` for a message to `number` (named `field` in a 422): 422 when a
/// rule is set and it is not a valid number, 403 `forbidden` outside the
/// regions or types. Empty lists read nothing.
pub fn phone_rules(rules: &PhoneRules<'_>, field: &str, number: &str) -> Result<(), Error> {
    if rules.regions.is_empty() && rules.types.is_empty() {
        return Ok(());
    }
    let number = parse(number).ok_or_else(|| Error::invalid(field, rules.invalid))?;
    if !rules.regions.is_empty() {
        let region = number.country().id();
        let served = region.is_some_and(|r| rules.regions.iter().any(|s| s.as_str() == r.as_ref()));
        if !served {
            return Err(Error::Forbidden(rules.other_region));
        }
    }
    if !rules.types.is_empty() {
        let kind = number_type(number.number_type(&DATABASE));
        if !kind.is_some_and(|k| rules.types.contains(&k)) {
            return Err(Error::Forbidden(rules.other_type));
        }
    }
    Ok(())
}

/// A valid number (a missing leading `+` is implied).
fn parse(s: &str) -> Option<PhoneNumber> {
    phone::read(s).filter(PhoneNumber::is_valid)
}

/// Whether two written numbers are one: the same E.164 number, or (when
/// either cannot be read as one) the same text.
fn same_number(a: &str, b: &str) -> bool {
    match (phone::e164(a), phone::e164(b)) {
        (Some(a), Some(b)) => a == b,
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

    /// An OTP by SMS: the request's `to` (`otp.destinations`), then its
    /// recipient on an SMS channel (the SMS rules).
    fn sms(otp: &OtpSettings, to: Option<&str>, c: &Contact) -> Result<(), Error> {
        allow(otp, Delivery::Sms, to, c)?;
        recipient(Reach::Phone, otp, c, "conv-1", to.map(str::to_string)).map(|_| ())
    }

    fn forbidden<T>(r: Result<T, Error>) -> bool {
        matches!(r, Err(Error::Forbidden(_)))
    }

    #[test]
    fn on_file_allows_the_contact_and_refuses_any_other_to() {
        let otp = OtpSettings {
            destinations: Destinations::OnFile,
            ..OtpSettings::default()
        };
        let c = contact(Some("+447400123456"), Some("Ada@example.com"));
        assert!(sms(&otp, None, &c).is_ok());
        assert!(sms(&otp, Some("+447400123456"), &c).is_ok());
        assert!(allow(&otp, Delivery::Email, Some("ada@EXAMPLE.com"), &c).is_ok());
        assert!(allow(&otp, Delivery::Chat, None, &c).is_ok());
        assert!(forbidden(sms(&otp, Some("+447400999999"), &c)));
        assert!(forbidden(allow(
            &otp,
            Delivery::Email,
            Some("eve@example.com"),
            &c
        )));
        let none = contact(None, None);
        assert!(forbidden(sms(&otp, Some("+447400123456"), &none)));
        // Any destination: whatever `to` says.
        let any = OtpSettings::default();
        assert!(sms(&any, Some("+447400999999"), &c).is_ok());
    }

    /// A WhatsApp conversation named by a business-scoped user id has no
    /// number: no SMS rule reads it, and the message goes to the
    /// conversation. A `to` given is a number, ruled as ever.
    #[test]
    fn a_business_scoped_user_id_is_no_number() {
        let otp = OtpSettings {
            sms_regions: regions(&["GB"]),
            ..OtpSettings::default()
        };
        let none = contact(None, None);
        let id = "US.13491208655302741918";
        assert_eq!(
            recipient(Reach::PhoneChat, &otp, &none, id, None).unwrap(),
            None
        );
        assert!(recipient(Reach::PhoneChat, &otp, &none, "+15552223333", None).is_err());
        let to = Some("+15552223333".to_string());
        assert!(recipient(Reach::PhoneChat, &otp, &none, id, to).is_err());
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
        assert!(sms(&otp, Some("+447400123456"), &none).is_ok());
        // Jersey, Guernsey, Isle of Man mobiles; a US number.
        for other in [
            "+447797123456",
            "+447781123456",
            "+447624123456",
            "+12015550123",
        ] {
            assert!(forbidden(sms(&otp, Some(other), &none)), "{other}");
        }
        let islands = OtpSettings {
            sms_regions: regions(&["GB", "JE", "GG", "IM"]),
            ..OtpSettings::default()
        };
        assert!(sms(&islands, Some("+447797123456"), &none).is_ok());
        // The contact is checked when there is no `to`; e-mail is not an SMS.
        let us = contact(Some("+12015550123"), Some("a@example.com"));
        assert!(forbidden(sms(&otp, None, &us)));
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
        assert!(sms(&otp, Some("+447400123456"), &none).is_ok());
        // A UK premium-rate and a UK fixed line.
        assert!(forbidden(sms(&otp, Some("+449012345678"), &none)));
        assert!(forbidden(sms(&otp, Some("+442079460000"), &none)));
        // A US number is fixed_line_or_mobile, not mobile.
        assert!(forbidden(sms(&otp, Some("+12015550123"), &none)));
        let both = OtpSettings {
            sms_number_types: vec![NumberType::Mobile, NumberType::FixedLineOrMobile],
            ..OtpSettings::default()
        };
        assert!(sms(&both, Some("+12015550123"), &none).is_ok());
    }

    #[test]
    fn a_number_that_is_not_valid_is_422_only_where_a_rule_applies() {
        let otp = OtpSettings {
            sms_regions: regions(&["GB"]),
            ..OtpSettings::default()
        };
        let none = contact(None, None);
        for bad in ["+4412", "+44740012", "+999123456789"] {
            let r = sms(&otp, Some(bad), &none);
            assert!(
                matches!(r, Err(Error::Unprocessable(ref m)) if m.starts_with("to:")),
                "{bad}: {r:?}"
            );
        }
        let r = sms(&otp, None, &contact(Some("+4412"), None));
        assert!(
            matches!(r, Err(Error::Unprocessable(ref m)) if m.starts_with("contact.phone:")),
            "{r:?}"
        );
        let any = OtpSettings::default();
        assert!(sms(&any, Some("+4412"), &none).is_ok());
    }

    /// Every message to a phone obeys the SMS rules: a twilio channel's
    /// recipient, a WhatsApp conversation's number; a chat or an e-mail
    /// reads no number.
    #[test]
    fn the_rules_hold_for_every_channel_that_reaches_a_phone() {
        let otp = OtpSettings {
            sms_regions: regions(&["GB"]),
            ..OtpSettings::default()
        };
        let us = contact(Some("+12015550123"), Some("a@example.com"));
        let to = |t: &str| Some(t.to_string());
        assert!(forbidden(recipient(Reach::Phone, &otp, &us, "c", None)));
        assert!(forbidden(recipient(
            Reach::PhoneChat,
            &otp,
            &us,
            "12015550123",
            None
        )));
        assert_eq!(
            recipient(Reach::PhoneChat, &otp, &us, "447400123456", None).unwrap(),
            None,
            "the conversation itself"
        );
        assert_eq!(
            recipient(Reach::Phone, &otp, &us, "c", to("+4407400123456")).unwrap(),
            to("+447400123456"),
            "in E.164"
        );
        assert_eq!(
            recipient(Reach::Conversation, &otp, &us, "c", None).unwrap(),
            None
        );
        assert_eq!(
            recipient(Reach::Email, &otp, &us, "c", None).unwrap(),
            to("a@example.com")
        );
        let r = recipient(Reach::PhoneChat, &otp, &us, "not a number", None);
        assert!(
            matches!(r, Err(Error::Unprocessable(ref m)) if m.starts_with("conversation_id:")),
            "{r:?}"
        );
    }
}
