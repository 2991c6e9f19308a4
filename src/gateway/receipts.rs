//! Delivery receipts from the providers (docs/api.md#delivery-receipts):
//! the provider's signature is checked first, then the report is read;
//! a report about a message the gateway does not know changes nothing.
use secrecy::ExposeSecret;

use super::Gateway;
use crate::channels::{receipts, twilio, ChannelKind};
use crate::domain::delivery_status::{DeliveryError, DeliveryStatus};
use crate::error::{Error, Result};

/// What a signed receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// It names a message the gateway does not know (or no longer
    /// remembers): answered 200 so the provider does not retry.
    Unknown,
}

/// One provider report, read from a signed receipt: the provider's id of
/// a message a channel sent, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub message_id: String,
    pub status: DeliveryStatus,
    /// With `failed`: the provider's error.
    pub error: Option<DeliveryError>,
}

/// What a Twilio `MessageStatus` (with its `ErrorCode`) reports; `None`
/// for the statuses that change nothing (`queued`, `sending`, …).
pub fn twilio_status(
    status: &str,
    error_code: Option<&str>,
) -> Option<(DeliveryStatus, Option<DeliveryError>)> {
    let error = || {
        error_code
            .filter(|c| !c.is_empty())
            .map(|code| DeliveryError {
                code: code.to_string(),
                title: None,
            })
    };
    match status {
        "sent" => Some((DeliveryStatus::Sent, None)),
        "delivered" => Some((DeliveryStatus::Delivered, None)),
        "read" => Some((DeliveryStatus::Read, None)),
        "undelivered" | "failed" => Some((DeliveryStatus::Failed, error())),
        _ => None,
    }
}

impl Gateway {
    /// A Twilio status callback posted to `channel`'s receipt route with
    /// form `fields` and header `X-Twilio-Signature` `signature`: 404 for
    /// a channel that is not `twilio`, 401 `invalid_signature` for a
    /// missing or wrong signature, 400 without `MessageSid` or
    /// `MessageStatus`.
    pub async fn twilio_receipt(
        &self,
        channel: &str,
        fields: &[(String, String)],
        signature: Option<&str>,
    ) -> Result<Receipt> {
        let token = match self.config.channels.get(channel).map(|c| &c.kind) {
            Some(ChannelKind::Twilio(keys)) => keys.auth_token.get(),
            _ => return Err(Error::NotFound("no twilio channel of this name")),
        };
        let url = twilio::status_callback(&self.config.server.public_url, channel);
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
        self.take_reports(channel, vec![report]).await
    }

    /// A report of Telegram's verification gateway posted to `channel`'s
    /// report route: body `body` as received, headers `X-Request-Timestamp`
    /// `timestamp` and `X-Request-Signature` `signature`. 404 for a channel
    /// that is not `telegram_gateway`, 401 `invalid_signature` for a
    /// missing or wrong signature, 400 for a body without `request_id` or
    /// `delivery_status.status`.
    pub async fn telegram_gateway_report(
        &self,
        channel: &str,
        body: &[u8],
        timestamp: Option<&str>,
        signature: Option<&str>,
    ) -> Result<Receipt> {
        let token = match self.config.channels.get(channel).map(|c| &c.kind) {
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
        let (Some(request_id), Some(status)) =
            (text("/request_id"), text("/delivery_status/status"))
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
        self.take_reports(channel, vec![report]).await
    }

    /// Applies signed `reports` about messages `channel` sent to the
    /// challenges that sent them. Not yet built: every report is about a
    /// message the gateway does not know.
    pub async fn take_reports(&self, _channel: &str, _reports: Vec<Report>) -> Result<Receipt> {
        Ok(Receipt::Unknown)
    }
}
