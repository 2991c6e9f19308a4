//! The keys of a team written through the operator API, changed one at a
//! time (docs/operator-api.md#keys): an API key the gateway makes and
//! shows once, or one the operator made (its hash only); a security key
//! made and shown once; either removed. Each change is a write of the
//! team as a whole (`teams::edit_team`): checked as a `PUT`,
//! sealed, recorded as `config.changed`, in force on every instance as
//! any write. What is made is never stored as it is: an API key as its
//! hash, a security key sealed.
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use std::collections::BTreeSet;

use super::claims::{self, KEY_TAKEN};
use super::teams::{edit_team, Edited};
use crate::config::check_label;
use crate::domain::audit::Acting;
use crate::domain::secrets::{generate_api_key, generate_whsec, ApiKeyHash};
use crate::domain::team_keys::{self, Added, ApiKeyEntry, KeyRefusal, ROLES};
use crate::error::{Error, Result};
use crate::gateway::Core;
use crate::time::Timestamp;

const ID_TAKEN: &str = "the team has a key of this id, or this very key under another id";
const NO_KEY: &str = "the team has no key of this id";
const KEY_IN_USE: &str =
    "the team's primary security key, or its last: add another and make it primary first";

/// An API key asked for: its id and role, and the hex SHA-256 of a key
/// the operator made (`None`: the gateway makes one).
pub struct AskedApiKey<'a> {
    pub id: &'a str,
    pub role: &'a str,
    pub sha256: Option<&'a str>,
}

/// What adding a key did.
pub struct KeyMade {
    /// `false`: the very same key was the team's already; nothing changed.
    pub created: bool,
    /// The key the gateway made, for this answer only.
    pub shown: Option<SecretString>,
    /// The generation of the API teams that holds the change.
    pub generation: Option<u64>,
}

/// A refusal of the team's keys as the answer's error.
fn refused(r: KeyRefusal) -> Error {
    match r {
        KeyRefusal::Exists => Error::KeyExists(ID_TAKEN),
        KeyRefusal::NotFound => Error::NotFound(NO_KEY),
        KeyRefusal::InUse => Error::KeyInUse(KEY_IN_USE),
    }
}

/// The asked key's members checked as a team file's (422 naming the
/// member, never its value): the hash it names, if any.
fn checked_hash(asked: &AskedApiKey<'_>) -> Result<Option<ApiKeyHash>> {
    check_label(asked.id).map_err(|p| Error::invalid("id", &p))?;
    if !ROLES.contains(&asked.role) {
        return Err(Error::invalid(
            "role",
            "must be bot, agent, admin or auditor",
        ));
    }
    let Some(hex) = asked.sha256 else {
        return Ok(None);
    };
    let hash = (hex.len() == 64)
        .then(|| ApiKeyHash::from_hex(hex).ok())
        .flatten();
    hash.map(Some)
        .ok_or_else(|| Error::invalid("sha256", "must be 64 hex digits"))
}

/// Adds API key `asked` to API team `team`: made by the gateway (shown
/// once) unless `asked` names its hash. The same id, role and hash again
/// changes nothing; another key of a used id, or a key another team or an
/// operator has, is 409 `key_exists`.
pub async fn add_api_key(
    core: &Core,
    team: &str,
    asked: &AskedApiKey<'_>,
    acting: &Acting,
    now: Timestamp,
) -> Result<KeyMade> {
    let (hash, shown) = match checked_hash(asked)? {
        Some(hash) => (hash, None),
        None => {
            let key = generate_api_key();
            (ApiKeyHash::of_key(&key), Some(SecretString::from(key)))
        }
    };
    let entry = ApiKeyEntry {
        id: asked.id.to_string(),
        role: asked.role.to_string(),
        sha256: hash.to_hex(),
    };
    let claim = BTreeSet::from([hash.to_hex()]);
    let (created, generation) = edit_team(core, team, &claim, acting, now, |config, body| {
        if config.api_key_taken(team, &hash, true) {
            return Err(Error::KeyExists(KEY_TAKEN));
        }
        match team_keys::add_api_key(body, &entry).map_err(refused)? {
            Added::To(body) => Ok(Edited::To(body, true)),
            Added::AlreadyThere => Ok(Edited::Unchanged(false)),
        }
    })
    .await?;
    Ok(KeyMade {
        created,
        shown,
        generation,
    })
}

/// Removes API key `key_id` of API team `team` (404 when it has none):
/// the generation that holds the change.
pub async fn remove_api_key(
    core: &Core,
    team: &str,
    key_id: &str,
    acting: &Acting,
    now: Timestamp,
) -> Result<Option<u64>> {
    removed(core, team, acting, now, |body| {
        team_keys::remove_api_key(body, key_id)
    })
    .await
}

/// API team `team` with what `remove` takes out of its body (refused as
/// [`refused`] says), the claims of the API keys it took out released:
/// the generation that holds the change.
async fn removed(
    core: &Core,
    team: &str,
    acting: &Acting,
    now: Timestamp,
    remove: impl Fn(&Value) -> std::result::Result<Value, KeyRefusal>,
) -> Result<Option<u64>> {
    let none = BTreeSet::new();
    let (dropped, generation) = edit_team(core, team, &none, acting, now, |_, body| {
        let next = remove(body).map_err(refused)?;
        let dropped = &claims::digests_of(body) - &claims::digests_of(&next);
        Ok(Edited::To(next, dropped))
    })
    .await?;
    claims::release(core, team, &dropped, now).await;
    Ok(generation)
}

/// Adds a security key `kid` the gateway makes (32 random bytes, shown
/// once) to API team `team`; `primary`: it signs from now on. A used
/// `kid` is 409 `key_exists`.
pub async fn add_security_key(
    core: &Core,
    team: &str,
    kid: &str,
    primary: bool,
    acting: &Acting,
    now: Timestamp,
) -> Result<KeyMade> {
    check_label(kid).map_err(|p| Error::invalid("kid", &p))?;
    let secret = SecretString::from(generate_whsec());
    let none = BTreeSet::new();
    let ((), generation) = edit_team(core, team, &none, acting, now, |_, body| {
        let body = team_keys::add_security_key(body, kid, secret.expose_secret(), primary)
            .map_err(refused)?;
        Ok(Edited::To(body, ()))
    })
    .await?;
    Ok(KeyMade {
        created: true,
        shown: Some(secret),
        generation,
    })
}

/// Removes security key `kid` of API team `team`: 404 when it has none,
/// 409 `key_in_use` for its primary key and its last.
pub async fn remove_security_key(
    core: &Core,
    team: &str,
    kid: &str,
    acting: &Acting,
    now: Timestamp,
) -> Result<Option<u64>> {
    removed(core, team, acting, now, |body| {
        team_keys::remove_security_key(body, kid)
    })
    .await
}
