//! Delivery receipts from the providers (docs/api.md#delivery-receipts):
//! the provider's signature is checked first, then the report is read;
//! a report about a message the gateway does not know changes nothing.
use secrecy::ExposeSecret;
use subtle::ConstantTimeEq;

use super::challenges::ladder;
use super::reports::{self, Receipt};
use super::Core;
use crate::channels::{receipts, twilio, ChannelKind};
use crate::config::Team;
use crate::domain::delivery_status::{DeliveryError, DeliveryStatus, Report};
use crate::error::{Error, Result};
use crate::time::Timestamp;

/// Applies signed `reports` about messages `channel` sent to the
/// challenges that sent them, one at a time, moving a ladder on when a
/// report failed its current step: `Taken` when one of them named a
/// message the gateway knows. A report about a message not (yet) known
/// is parked for the write that makes it known.
pub async fn take_reports_at(
    core: &Core,
    channel: &str,
    reports: Vec<Report>,
    now: Timestamp,
) -> Result<Receipt> {
    let config = std::sync::Arc::clone(&core.config);
    let teams: Vec<&Team> = config
        .teams
        .values()
        .map(AsRef::as_ref)
        .filter(|t: &&Team| t.uses_channel(channel))
        .collect();
    let mut receipt = Receipt::Unknown;
    for report in reports.iter().filter(|r| reports::names_a_message(r)) {
        let taken = reports::take_report(core, &teams, channel, report, now).await?;
        if let Some(step) = taken.failed_step {
            ladder::move_on_failure(core, step, now).await?;
        }
        if taken.known {
            receipt = Receipt::Taken;
        }
    }
    Ok(receipt)
}

/// What a Twilio `MessageStatus` (with its `ErrorCode`) reports; `None`
/// for the statuses that change nothing (`queued`, `sending`, …).
pub fn twilio_status(
    status: &str,
    error_code: Option<&str>,
) -> Option<(DeliveryStatus, Option<DeliveryError>)> {
    let status = receipts::twilio_status(status)?;
    let error = error_code
        .filter(|c| !c.is_empty() && status == DeliveryStatus::Failed)
        .map(|code| DeliveryError {
            code: code.to_string(),
            title: None,
        });
    Some((status, error))
}

/// A Twilio status callback posted to `channel`'s receipt route with
/// form `fields` and header `X-Twilio-Signature` `signature`: 404 for
/// a channel that is not `twilio`, 401 `invalid_signature` for a
/// missing or wrong signature, 400 without `MessageSid` or
/// `MessageStatus`.
pub async fn twilio_receipt(
    core: &Core,
    channel: &str,
    fields: &[(String, String)],
    signature: Option<&str>,
    now: Timestamp,
) -> Result<Receipt> {
    let token = match core.config.channels.get(channel).map(|c| &c.kind) {
        Some(ChannelKind::Twilio(keys)) => keys.auth_token.get(),
        _ => return Err(Error::NotFound("no twilio channel of this name")),
    };
    let url = twilio::status_callback(&core.config.server.public_url, channel);
    let signed = signature.is_some_and(|sig| {
        receipts::twilio_signed(token.expose_secret().as_bytes(), &url, fields, sig)
    });
    if !signed {
        return Err(Error::InvalidSignature(
            "X-Twilio-Signature is missing or wrong",
        ));
    }
    let field = |name: &str| {
        fields
            .iter()
            .find(|(k, v)| k == name && !v.is_empty())
            .map(|(_, v)| v.as_str())
    };
    let (Some(sid), Some(status)) = (field("MessageSid"), field("MessageStatus")) else {
        return Err(Error::BadRequest(
            "a status callback needs MessageSid and MessageStatus".into(),
        ));
    };
    let Some((status, error)) = twilio_status(status, field("ErrorCode")) else {
        return Ok(Receipt::Unknown);
    };
    let report = Report {
        message_id: sid.to_string(),
        status,
        error,
    };
    take_reports_at(core, channel, vec![report], now).await
}

/// A report of Telegram's verification gateway posted to `channel`'s
/// report route: body `body` as received, headers `X-Request-Timestamp`
/// `timestamp` and `X-Request-Signature` `signature`. 404 for a channel
/// that is not `telegram_gateway`, 401 `invalid_signature` for a
/// missing or wrong signature, 400 for a body without `request_id` or
/// `delivery_status.status`.
pub async fn telegram_gateway_report(
    core: &Core,
    channel: &str,
    body: &[u8],
    timestamp: Option<&str>,
    signature: Option<&str>,
    now: Timestamp,
) -> Result<Receipt> {
    let token = match core.config.channels.get(channel).map(|c| &c.kind) {
        Some(ChannelKind::TelegramGateway(keys)) => keys.token.get(),
        _ => return Err(Error::NotFound("no telegram_gateway channel of this name")),
    };
    let signed = match (timestamp, signature) {
        (Some(ts), Some(sig)) => {
            receipts::telegram_gateway_signed(token.expose_secret().as_bytes(), ts, body, sig)
        }
        _ => false,
    };
    if !signed {
        return Err(Error::InvalidSignature(
            "X-Request-Timestamp or X-Request-Signature is missing or wrong",
        ));
    }
    let unreadable =
        || Error::BadRequest("a report needs request_id and delivery_status.status".into());
    let report: serde_json::Value = serde_json::from_slice(body).map_err(|_| unreadable())?;
    let text = |pointer: &str| {
        report
            .pointer(pointer)
            .and_then(serde_json::Value::as_str)
            .filter(|v| !v.is_empty())
    };
    let (Some(request_id), Some(status)) = (text("/request_id"), text("/delivery_status/status"))
    else {
        return Err(unreadable());
    };
    let Some(status) = receipts::telegram_gateway_status(status) else {
        return Ok(Receipt::Unknown);
    };
    let error = (status == DeliveryStatus::Failed).then(|| DeliveryError {
        code: text("/delivery_status/status")
            .unwrap_or_default()
            .to_string(),
        title: None,
    });
    let report = Report {
        message_id: request_id.to_string(),
        status,
        error,
    };
    take_reports_at(core, channel, vec![report], now).await
}

/// Meta's subscription handshake on `channel`'s webhook: the
/// `hub.challenge` to answer when `hub.mode` is `subscribe` and
/// `hub.verify_token` is the channel's `verify_token` (compared in
/// constant time); 403 otherwise; 404 for a channel that is not
/// `whatsapp` or has no `verify_token`.
pub fn whatsapp_handshake(
    core: &Core,
    channel: &str,
    mode: Option<&str>,
    verify_token: Option<&str>,
    challenge: Option<&str>,
) -> Result<String> {
    let want = match core.config.channels.get(channel).map(|c| &c.kind) {
        Some(ChannelKind::Whatsapp(keys)) => keys.verify_token.as_ref(),
        _ => None,
    }
    .ok_or(Error::NotFound(
        "no whatsapp channel with a verify_token of this name",
    ))?;
    let matches = verify_token.is_some_and(|given| {
        bool::from(
            given
                .as_bytes()
                .ct_eq(want.get().expose_secret().as_bytes()),
        )
    });
    match (mode, challenge) {
        (Some("subscribe"), Some(challenge)) if matches => Ok(challenge.to_string()),
        _ => Err(Error::Forbidden("the verify token does not match")),
    }
}

/// A WhatsApp Cloud webhook posted to `channel` with the raw `body` and
/// header `X-Hub-Signature-256` `signature`: 404 for a channel that is
/// not `whatsapp` or has no `app_secret`, 401 `invalid_signature` for a
/// missing or wrong signature, 400 for a body that cannot be read or a
/// status without `id` or `status`. Incoming messages are ignored.
pub async fn whatsapp_receipt(
    core: &Core,
    channel: &str,
    body: &[u8],
    signature: Option<&str>,
    now: Timestamp,
) -> Result<Receipt> {
    let secret = match core.config.channels.get(channel).map(|c| &c.kind) {
        Some(ChannelKind::Whatsapp(keys)) => keys.app_secret.as_ref(),
        _ => None,
    }
    .ok_or(Error::NotFound(
        "no whatsapp channel with an app_secret of this name",
    ))?;
    let signed = signature.is_some_and(|sig| {
        receipts::hub_signed(secret.get().expose_secret().as_bytes(), body, sig)
    });
    if !signed {
        return Err(Error::InvalidSignature(
            "X-Hub-Signature-256 is missing or wrong",
        ));
    }
    let reports = whatsapp_reports(body)?;
    if reports.is_empty() {
        return Ok(Receipt::Unknown);
    }
    take_reports_at(core, channel, reports, now).await
}

/// The reports of a WhatsApp Cloud webhook body: each
/// `entry[].changes[].value.statuses[]` with a status this gateway names
/// (others, and incoming messages, change nothing). 400 for a body that is
/// not such an object, or a status without `id` or `status`.
pub fn whatsapp_reports(body: &[u8]) -> Result<Vec<Report>> {
    use serde_json::Value;
    let unreadable = |what: &str| Error::BadRequest(format!("the webhook body {what}"));
    let body: Value = serde_json::from_slice(body).map_err(|_| unreadable("is not JSON"))?;
    let list = |v: &Value, name: &str| -> Result<Vec<Value>> {
        match v.get(name) {
            None | Some(Value::Null) => Ok(Vec::new()),
            Some(Value::Array(items)) => Ok(items.clone()),
            Some(_) => Err(unreadable(&format!("has `{name}` that is not a list"))),
        }
    };
    if !body.is_object() {
        return Err(unreadable("is not a JSON object"));
    }
    let text = |v: &Value, name: &str| v.get(name).and_then(Value::as_str).map(str::to_string);
    let mut reports = Vec::new();
    for entry in list(&body, "entry")? {
        for change in list(&entry, "changes")? {
            let Some(value) = change.get("value") else {
                continue;
            };
            for status in list(value, "statuses")? {
                let (Some(id), Some(name)) = (
                    text(&status, "id").filter(|s| !s.is_empty()),
                    text(&status, "status").filter(|s| !s.is_empty()),
                ) else {
                    return Err(Error::BadRequest(
                        "a status of the webhook needs `id` and `status`".into(),
                    ));
                };
                let Some(status_of) = receipts::whatsapp_status(&name) else {
                    continue;
                };
                let error = (status_of == DeliveryStatus::Failed)
                    .then(|| status.get("errors").and_then(|e| e.get(0)))
                    .flatten()
                    .map(|e| DeliveryError {
                        code: match e.get("code") {
                            Some(Value::Number(n)) => n.to_string(),
                            Some(Value::String(s)) => s.clone(),
                            _ => String::new(),
                        },
                        title: text(e, "title"),
                    })
                    .filter(|e| !e.code.is_empty());
                reports.push(Report {
                    message_id: id,
                    status: status_of,
                    error,
                });
            }
        }
    }
    Ok(reports)
}

#[cfg(test)]
mod tests {
    use super::*;
    use DeliveryStatus::*;

    #[test]
    fn twilio_statuses_become_reports_with_their_error_code_only_when_failed() {
        let failed = |code: &str| {
            Some((
                Failed,
                Some(DeliveryError {
                    code: code.into(),
                    title: None,
                }),
            ))
        };
        assert_eq!(twilio_status("sent", Some("30008")), Some((Sent, None)));
        assert_eq!(twilio_status("delivered", None), Some((Delivered, None)));
        assert_eq!(twilio_status("read", Some("")), Some((Read, None)));
        assert_eq!(twilio_status("undelivered", Some("30003")), failed("30003"));
        assert_eq!(twilio_status("failed", Some("30008")), failed("30008"));
        assert_eq!(twilio_status("failed", Some("")), Some((Failed, None)));
        assert_eq!(twilio_status("failed", None), Some((Failed, None)));
        for nothing in ["queued", "accepted", "sending", "scheduled", "canceled", ""] {
            assert_eq!(twilio_status(nothing, Some("1")), None, "{nothing}");
        }
    }

    #[test]
    fn whatsapp_statuses_become_reports_and_messages_are_ignored() {
        let body = br#"{"object":"whatsapp_business_account","entry":[{"id":"1","changes":[
            {"field":"messages","value":{"messaging_product":"whatsapp",
              "messages":[{"from":"15550001111","id":"wamid.in","type":"text","text":{"body":"hi"}}],
              "statuses":[
                {"id":"wamid.A","status":"delivered","timestamp":"1"},
                {"id":"wamid.B","status":"failed","errors":[{"code":131047,"title":"Re-engagement message"}]},
                {"id":"wamid.C","status":"deleted"}]}}]}]}"#;
        let reports = whatsapp_reports(body).unwrap();
        assert_eq!(
            reports,
            vec![
                Report {
                    message_id: "wamid.A".into(),
                    status: Delivered,
                    error: None
                },
                Report {
                    message_id: "wamid.B".into(),
                    status: Failed,
                    error: Some(DeliveryError {
                        code: "131047".into(),
                        title: Some("Re-engagement message".into())
                    })
                },
            ]
        );
        assert!(
            whatsapp_reports(br#"{"entry":[{"changes":[{"value":{"messages":[{}]}}]}]}"#)
                .unwrap()
                .is_empty()
        );
        for bad in [
            &b"not json"[..],
            b"[]",
            br#"{"entry":{}}"#,
            br#"{"entry":[{"changes":[{"value":{"statuses":[{"status":"read"}]}}]}]}"#,
            br#"{"entry":[{"changes":[{"value":{"statuses":[{"id":"wamid.A"}]}}]}]}"#,
        ] {
            assert!(
                matches!(whatsapp_reports(bad), Err(Error::BadRequest(_))),
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
