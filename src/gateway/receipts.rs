//! Delivery receipts from the providers (docs/api.md#delivery-receipts):
//! the provider's signature is checked first, then the report is read;
//! a report about a message the gateway does not know changes nothing.
use secrecy::ExposeSecret;

use super::Gateway;
use crate::channels::{receipts, twilio, ChannelKind};
use crate::error::{Error, Result};

/// What a signed receipt did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receipt {
    /// It names a message the gateway does not know (or no longer
    /// remembers): answered 200 so the provider does not retry.
    Unknown,
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
        let (Some(_sid), Some(_status)) = (field("MessageSid"), field("MessageStatus")) else {
            return Err(Error::BadRequest(
                "a status callback needs MessageSid and MessageStatus".into(),
            ));
        };
        Ok(Receipt::Unknown)
    }
}
