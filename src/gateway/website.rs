//! What a company's website and login page send server to server, signed
//! by Standard Webhooks with one of the team's security keys: the signature
//! check (shared with the login callback) and the back-channel logout of a
//! customer (CONTRACT 3.5).
use std::sync::Arc;

use uuid::Uuid;

use super::Gateway;
use crate::config::Team;
use crate::domain::webhook_sig;
use crate::error::{Error, Result};
use crate::events::EventType;
use crate::store::keys;
use crate::time::Timestamp;

/// The Standard Webhooks headers of a signed request.
#[derive(Debug, Clone, Copy)]
pub struct SignatureHeaders<'a> {
    pub id: Option<&'a str>,
    pub timestamp: Option<&'a str>,
    pub signature: Option<&'a str>,
}

impl SignatureHeaders<'_> {
    /// Valid with any of the team's security keys.
    pub fn verify(&self, team: &Team, body: &[u8], now: Timestamp) -> Result<()> {
        let keys: Vec<&[u8]> = team
            .security_keys
            .iter()
            .map(|k| k.secret.expose())
            .collect();
        webhook_sig::verify(&keys, self.id, self.timestamp, self.signature, body, now)
    }
}

impl Gateway {
    /// Back-channel logout of a customer's interactions. Returns how many
    /// authenticated interactions were logged out.
    pub async fn logout_customer(
        self: &Arc<Self>,
        team_id: &str,
        customer_id: &str,
        sig: SignatureHeaders<'_>,
        body: &[u8],
        now: Timestamp,
    ) -> Result<usize> {
        let team = self
            .config
            .team(team_id)
            .ok_or(Error::InvalidSignature("unknown team or wrong key"))?;
        sig.verify(team, body, now)?;
        let index = keys::customer_index(&team.id, customer_id);
        let mut n = 0;
        let mut before = None;
        loop {
            let entries = self.store.index_desc(&index, before.take(), PAGE).await?;
            let full = entries.len() == PAGE;
            for e in entries {
                before = Some((e.score, e.member.clone()));
                let Ok(id) = Uuid::parse_str(&e.member) else {
                    continue;
                };
                if self.log_out_if_theirs(team, id, customer_id, now).await? {
                    n += 1;
                }
            }
            if !full {
                break;
            }
        }
        Ok(n)
    }

    /// Logs out interaction `id` if it is authenticated and belongs to `customer_id`.
    async fn log_out_if_theirs(
        self: &Arc<Self>,
        team: &Team,
        id: Uuid,
        customer_id: &str,
        now: Timestamp,
    ) -> Result<bool> {
        let result = self
            .update_interaction(team, id, now, |rec, s| {
                let hit = rec.is_authenticated(now, s) && rec.belongs_to(customer_id);
                if hit {
                    rec.log_out(now);
                }
                Ok(hit)
            })
            .await;
        match result {
            Ok((view, true)) => {
                self.emit(EventType::InteractionLoggedOut, now, &view);
                Ok(true)
            }
            Ok((_, false)) | Err(Error::NotFound(_)) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Customer-index entries read per round trip.
const PAGE: usize = 500;
