//! The delivery ladder (docs/api.md#delivery-ladder): one OTP challenge
//! whose code goes out on the team's `otp.ladder` channels in turn, the
//! same code each time, until one delivers it.
//!
//! Which steps may take the code ([`targets`]) is decided here on plain
//! values; the gateway counts each step's destination, sends, and moves
//! the ladder on (`gateway::ladder`).
pub use super::challenge::{Ladder, SentStep};
use super::destination_policy::{self, Reach};
use super::interaction::InteractionRecord;
use super::settings::OtpSettings;
use crate::error::Error;

/// A step that may take the code: where it goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub index: usize,
    pub channel: String,
    /// The phone number (E.164) or address, whose send limit it counts.
    pub destination: String,
}

/// Why a step was passed over.
#[derive(Debug)]
pub enum Skip {
    /// The contact has nothing this step sends to.
    NoDestination,
    /// It is the interaction's own channel under `require_other_channel`.
    OwnChannel,
    /// The destination rules refuse it (the problem they answer).
    Refused(Error),
}

/// Where step `channel`, reaching people as `reach`, would send the code
/// of interaction `rec`, or why it is passed over.
pub fn target(
    index: usize,
    channel: &str,
    reach: Reach,
    otp: &OtpSettings,
    rec: &InteractionRecord,
) -> Result<Target, Skip> {
    if otp.require_other_channel && channel == rec.channel {
        return Err(Skip::OwnChannel);
    }
    let on_file = match reach {
        Reach::Phone | Reach::PhoneChat => rec.contact.phone.clone(),
        Reach::Email => rec.contact.email.clone(),
        Reach::Conversation => None,
    };
    let Some(on_file) = on_file else {
        return Err(Skip::NoDestination);
    };
    let recipient = destination_policy::recipient(
        reach,
        otp,
        &rec.contact,
        &rec.conversation_id,
        Some(on_file.clone()),
    )
    .map_err(Skip::Refused)?;
    let destination = match reach {
        Reach::Phone | Reach::PhoneChat => {
            super::phone::e164(&on_file).unwrap_or(recipient.unwrap_or(on_file))
        }
        _ => recipient.unwrap_or(on_file),
    };
    Ok(Target {
        index,
        channel: channel.to_string(),
        destination,
    })
}

/// The steps of `indices` (of `steps`, each reaching people as `reach_of`
/// says) that may take the code of `rec`, in order. `Err`: none may —
/// 422 when no step has a destination, else the first refusal of the
/// destination rules (403/422).
pub fn targets(
    steps: &[String],
    indices: std::ops::Range<usize>,
    reach_of: impl Fn(&str) -> Reach,
    otp: &OtpSettings,
    rec: &InteractionRecord,
) -> Result<Vec<Target>, Error> {
    let mut found = Vec::new();
    let mut refused = None;
    for i in indices {
        let Some(channel) = steps.get(i) else { break };
        match target(i, channel, reach_of(channel), otp, rec) {
            Ok(t) => found.push(t),
            Err(Skip::Refused(e)) => {
                refused.get_or_insert(e);
            }
            Err(Skip::NoDestination | Skip::OwnChannel) => {}
        }
    }
    if !found.is_empty() {
        return Ok(found);
    }
    Err(refused.unwrap_or_else(|| {
        Error::invalid(
            "delivery",
            "no step of otp.ladder can reach the interaction's contact",
        )
    }))
}

#[cfg(test)]
mod tests {
    use uuid::Uuid;

    use super::*;
    use crate::domain::abuse::NumberType;
    use crate::domain::interaction::Contact;
    use crate::time::Timestamp;

    fn rec(phone: Option<&str>, email: Option<&str>) -> InteractionRecord {
        let mut r = InteractionRecord::new(
            Uuid::now_v7(),
            "acme",
            "webchat",
            "conv-1",
            Timestamp::from_unix_millis(0),
        );
        r.contact = Contact {
            phone: phone.map(str::to_string),
            email: email.map(str::to_string),
        };
        r
    }

    fn reach(channel: &str) -> Reach {
        match channel {
            "email" => Reach::Email,
            "wa" => Reach::PhoneChat,
            "webchat" => Reach::Conversation,
            _ => Reach::Phone,
        }
    }

    fn steps(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn steps_without_a_destination_or_on_the_own_channel_are_skipped() {
        let otp = OtpSettings::default();
        let s = steps(&["wa", "sms", "email"]);
        let r = rec(None, Some("ada@example.com"));
        let t = targets(&s, 0..3, reach, &otp, &r).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(
            (t[0].index, t[0].destination.as_str()),
            (2, "ada@example.com")
        );

        let r = rec(Some("+4407400123456"), None);
        let t = targets(&s, 0..3, reach, &otp, &r).unwrap();
        let names: Vec<&str> = t.iter().map(|t| t.channel.as_str()).collect();
        assert_eq!(names, ["wa", "sms"]);
        assert_eq!(t[0].destination, "+447400123456", "E.164");

        let mut own = rec(Some("+447400123456"), None);
        own.channel = "wa".into();
        let strict = OtpSettings {
            require_other_channel: true,
            ..OtpSettings::default()
        };
        let t = targets(&s, 0..3, reach, &strict, &own).unwrap();
        assert_eq!(t[0].channel, "sms");

        let nobody = rec(None, None);
        let e = targets(&s, 0..3, reach, &otp, &nobody).unwrap_err();
        assert!(matches!(e, Error::Unprocessable(_)), "{e:?}");
    }

    #[test]
    fn a_destination_the_rules_refuse_is_skipped_and_all_refused_is_403() {
        let otp = OtpSettings {
            sms_number_types: vec![NumberType::Mobile],
            ..OtpSettings::default()
        };
        // A UK fixed line: refused on every phone step.
        let r = rec(Some("+442071838750"), Some("ada@example.com"));
        let s = steps(&["wa", "sms", "email"]);
        let t = targets(&s, 0..3, reach, &otp, &r).unwrap();
        assert_eq!(t.len(), 1);
        assert_eq!(t[0].channel, "email");
        let e = targets(&s, 0..2, reach, &otp, &r).unwrap_err();
        assert!(matches!(e, Error::Forbidden(_)), "{e:?}");
    }

    #[test]
    fn later_steps_follow_the_current_one_and_the_last_stays() {
        let otp = OtpSettings::default();
        let now = Timestamp::from_unix_millis(1_000_000);
        let mut l = Ladder {
            steps: steps(&["wa", "sms", "email"]),
            sent: Vec::new(),
            sealed_code: String::new(),
        };
        assert_eq!(l.later_steps(), 0..3);
        l.sent.push(SentStep {
            index: 1,
            channel: "sms".into(),
            destination: "+447400123456".into(),
            message_id: None,
            sent_at: now,
            left_at: None,
        });
        assert_eq!(l.later_steps(), 2..3);
        assert_eq!(l.advance_at(&otp), Some(now.plus(otp.advance_after.get())));
        l.sent.push(SentStep {
            index: 2,
            channel: "email".into(),
            destination: "ada@example.com".into(),
            message_id: None,
            sent_at: now,
            left_at: None,
        });
        assert_eq!(l.later_steps(), 3..3);
        assert_eq!(l.advance_at(&otp), None, "the last step stays");
        assert_eq!(l.via(), ["sms", "email"]);
    }

    #[test]
    fn receipts_count_for_the_current_step_and_an_arrival_once() {
        use crate::domain::delivery_status::DeliveryStatus;
        let now = Timestamp::from_unix_millis(1_000_000);
        let step = |index: usize, m: &str, left_at: Option<DeliveryStatus>| SentStep {
            index,
            channel: format!("c{index}"),
            destination: "+447400123456".into(),
            message_id: Some(m.into()),
            sent_at: now,
            left_at,
        };
        let mut l = Ladder {
            steps: steps(&["wa", "tg", "sms"]),
            sent: vec![step(0, "wamid.1", None)],
            sealed_code: String::new(),
        };
        assert!(l.is_current_message("wamid.1"));
        assert!(!l.arrived_before());
        l.sent[0].left_at = Some(DeliveryStatus::Failed);
        l.sent.push(step(1, "req-1", None));
        assert!(!l.is_current_message("wamid.1"), "a step left behind");
        assert!(l.is_current_message("req-1"));
        assert!(!l.arrived_before(), "it failed");
        l.sent[1].left_at = Some(DeliveryStatus::Delivered);
        l.sent.push(step(2, "SM1", None));
        assert!(l.arrived_before(), "announced on tg already");
    }
}
