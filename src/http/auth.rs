//! Who is calling: the `Authorization: Bearer <api key>` of a bot, agent or
//! admin. Keys are compared by SHA-256 in constant time, against every
//! configured key, so the answer takes the same time for any wrong key.
use std::sync::Arc;

use axum::extract::FromRequestParts;
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;

use super::AppState;
use crate::config::{Config, Role};
use crate::domain::secrets::ApiKeyHash;
use crate::error::Error;

struct Entry {
    hash: ApiKeyHash,
    team: Arc<str>,
    key_id: Arc<str>,
    role: Role,
}

/// Every configured API key, by hash.
pub struct ApiKeys(Vec<Entry>);

impl ApiKeys {
    pub fn from_config(config: &Config) -> Self {
        let entries = config
            .teams
            .values()
            .flat_map(|t| {
                t.api_keys.iter().map(|k| Entry {
                    hash: k.sha256,
                    team: t.id.as_str().into(),
                    key_id: k.id.as_str().into(),
                    role: k.role,
                })
            })
            .collect();
        ApiKeys(entries)
    }

    fn find(&self, presented: &str) -> Option<Caller> {
        let hash = ApiKeyHash::of_key(presented);
        let mut found = None;
        for e in &self.0 {
            // No early exit: every key is compared.
            if e.hash.matches(&hash) && found.is_none() {
                found = Some(Caller {
                    team: e.team.clone(),
                    key_id: e.key_id.clone(),
                    role: e.role,
                });
            }
        }
        found
    }
}

/// An authenticated caller (its names shared with the configured key's:
/// a request copies no string).
#[derive(Debug, Clone)]
pub struct Caller {
    pub team: Arc<str>,
    pub key_id: Arc<str>,
    pub role: Role,
}

impl Caller {
    pub fn require_bot(&self) -> Result<(), Error> {
        if self.role.acts_as_bot() {
            Ok(())
        } else {
            Err(Error::Forbidden("this API key's role may not do this"))
        }
    }
    pub fn require_agent(&self) -> Result<(), Error> {
        if self.role.acts_as_agent() {
            Ok(())
        } else {
            Err(Error::Forbidden("this API key's role may not do this"))
        }
    }
    pub fn require_admin(&self) -> Result<(), Error> {
        if self.role == Role::Admin {
            Ok(())
        } else {
            Err(Error::Forbidden("only an admin API key may do this"))
        }
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Error> {
        let header = parts
            .headers
            .get(AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or(Error::Unauthorized)?;
        let (scheme, key) = header.trim().split_once(' ').ok_or(Error::Unauthorized)?;
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Err(Error::Unauthorized);
        }
        let caller = state.api_keys.find(key.trim()).ok_or(Error::Unauthorized)?;
        if let Some(slot) = parts.extensions.get::<super::TeamSlot>() {
            slot.set(&caller.team);
        }
        Ok(caller)
    }
}
