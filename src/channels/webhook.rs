//! The `webhook` channel kind: POST JSON to the bot's URL, signed by
//! Standard Webhooks. (Implementation pending.)
use async_trait::async_trait;
use url::Url;

use super::{Channel, ChannelError, Message};
use crate::domain::secrets::SecretBytes;

pub struct WebhookChannel {}

impl WebhookChannel {
    pub fn new(_http: reqwest::Client, _url: Url, _secret: &SecretBytes) -> Self {
        WebhookChannel {}
    }
}

#[async_trait]
impl Channel for WebhookChannel {
    async fn send(&self, _msg: &Message) -> Result<(), ChannelError> {
        Err(ChannelError("todo".into()))
    }
}
