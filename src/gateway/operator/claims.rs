//! The claims of the API teams' keys (docs/operator-api.md#keys): a write
//! of an API team claims each API key its body holds in the store
//! (`{~teams}:key:<sha256>`, the team's id) after marking itself and
//! before its team's commit, so that of two writers that give one key to
//! two teams at once one is 409 `key_exists` and two stored teams never
//! hold one key. A write that fails releases the claims it made; a write
//! or a delete that drops a key releases its claim once it committed. A
//! claim left behind (a writer that stopped) is taken over once it is
//! [`STOPPED_AFTER`] old and its team does not hold the key
//! (docs/decisions/0488-an-api-key-is-claimed-in-the-store.md). Every
//! instance reserves beside them the keys its configuration holds outside
//! the operator API (its file teams' and `[operator]`'s,
//! `{~teams}:rk:<sha256>`), which no claim takes for another team
//! (docs/decisions/0632-a-file-team-s-key-is-reserved-in-the-store.md).
use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::forms::stored_forms;
use super::index::STOPPED_AFTER;
use crate::config::Config;
use crate::domain::secrets::ApiKeyHash;
use crate::error::{Error, Result};
use crate::gateway::change::{self, Change, Round};
use crate::gateway::records::{
    ApiKeyClaim, ApiTeamsGeneration, KeyReservation, Loaded, StoredApiForm,
};
use crate::gateway::work::Step;
use crate::gateway::{Core, Live};
use crate::store::keys;
use crate::time::every::Every;
use crate::time::{Clock, Timestamp};

/// The detail of a key another team or an operator has.
pub const KEY_TAKEN: &str = "this key is another team's or an operator's: a key names one team";

/// How old a team's own claim is when its write claims it again, so that
/// a write under way holds a claim no younger than
/// `STOPPED_AFTER - RENEW_AFTER`, which no other team takes over.
const RENEW_AFTER: std::time::Duration = std::time::Duration::from_secs(10);

/// How often a claim is tried again after taking over claims left behind.
const TRIES: usize = 3;

/// Claims read in one change of a restore.
const AT_ONCE: usize = 256;

/// The digests (64 lowercase hex digits) of the API keys `body` (a team's
/// JSON form) holds; an entry that is no digest is left out (its write
/// is refused by the team's check).
pub fn digests_of(body: &Value) -> BTreeSet<String> {
    keys_of(body).map(|(_, digest)| digest).collect()
}

/// The digests of `body`'s API keys, each with its place in `api_keys`.
pub fn keys_of(body: &Value) -> impl Iterator<Item = (usize, String)> + '_ {
    let entries = body.get("api_keys").and_then(Value::as_array);
    entries
        .into_iter()
        .flatten()
        .enumerate()
        .filter_map(|(i, e)| {
            let hex = e.get("sha256").and_then(Value::as_str)?;
            let hash = (hex.len() == 64).then(|| ApiKeyHash::from_hex(hex).ok())??;
            Some((i, hash.to_hex()))
        })
}

/// The digests a stored team's body holds (none for no team).
fn stored_digests(form: Option<&StoredApiForm>) -> BTreeSet<String> {
    form.map_or_else(BTreeSet::new, |StoredApiForm::V1 { body, .. }| {
        digests_of(body)
    })
}

/// What a claim's change found.
enum Claimed {
    /// Claimed (or checked, for a dry run): the digests whose claim it
    /// made, none of them the team's before.
    Made(BTreeSet<String>),
    /// Claims of other teams, each with its digest: nothing written.
    Held(Vec<(String, ApiKeyClaim)>),
    /// The digest of a key an instance reserved for a file team of
    /// another id or an operator: nothing written, never taken over.
    Reserved(String),
}

/// Claims `digests` for API team `team` (`dry_run`: only checks), as a
/// key endpoint asks: 409 `key_exists` when another team holds the claim
/// of one, unless that claim was left behind ([`left_behind`]). The
/// digests whose claim this made, to [`release`] when the write fails.
pub async fn take(
    core: &Core,
    team: &str,
    digests: &BTreeSet<String>,
    dry_run: bool,
    now: Timestamp,
) -> Result<BTreeSet<String>> {
    taken(core, team, digests, dry_run, now)
        .await?
        .map_err(|_| Error::KeyExists(KEY_TAKEN))
}

/// [`take`] for a team's body (a `PUT`): the keys of `body` claimed, and a
/// key another team holds is a rule the body breaks, 422 `invalid_config`
/// at that key's pointer, as the check against the teams in force answers
/// it (docs/operator-api.md#keys).
pub async fn take_for_body(
    core: &Core,
    team: &str,
    body: &Value,
    dry_run: bool,
    now: Timestamp,
) -> Result<BTreeSet<String>> {
    match taken(core, team, &digests_of(body), dry_run, now).await? {
        Ok(made) => Ok(made),
        Err(held) => Err(taken_at(body, &held)),
    }
}

/// [`take_for_body`]'s dry run for each team of an import (`bodies`, by
/// id): the claims and reservations of their keys read in changes of
/// [`AT_ONCE`] keys' claims, as a restore's are written ([`claim_held`]),
/// not a round trip a team; a team whose key another team's claim holds
/// is checked on its own then ([`take_for_body`]: a claim left behind is
/// taken over). Each team's answer, in order.
pub async fn check_bodies(
    core: &Core,
    bodies: &[(&str, &Value)],
    now: Timestamp,
) -> Result<Vec<Result<()>>> {
    let digests: Vec<BTreeSet<String>> = bodies.iter().map(|(_, b)| digests_of(b)).collect();
    let mut found = Vec::with_capacity(bodies.len());
    let mut from = 0;
    while from < bodies.len() {
        // Teams while their keys fit in one change (one team at least).
        let mut to = from + 1;
        let mut held = digests[from].len();
        while to < bodies.len() && held + digests[to].len() <= AT_ONCE {
            held += digests[to].len();
            to += 1;
        }
        let chunk: Vec<(&str, &BTreeSet<String>)> =
            (from..to).map(|i| (bodies[i].0, &digests[i])).collect();
        found.extend(checked_at_once(core, &chunk, now).await?);
        from = to;
    }
    let mut answers = Vec::with_capacity(bodies.len());
    for ((team, body), claimed) in bodies.iter().zip(found) {
        answers.push(match claimed {
            Claimed::Made(_) => Ok(()),
            Claimed::Reserved(digest) => Err(taken_at(body, &digest)),
            Claimed::Held(_) => take_for_body(core, team, body, true, now).await.map(drop),
        });
    }
    Ok(answers)
}

/// What a dry run of [`take`] finds for each of `teams` (each with its
/// keys' digests), their claims and reservations read in one change.
async fn checked_at_once(
    core: &Core,
    teams: &[(&str, &BTreeSet<String>)],
    now: Timestamp,
) -> Result<Vec<Claimed>> {
    let all = teams.iter().flat_map(|(_, digests)| digests.iter());
    let read: Vec<String> = (all.clone().map(|d| keys::api_key_claim(d)))
        .chain(all.map(|d| keys::api_key_reserved(d)))
        .collect();
    if read.is_empty() {
        return Ok(teams
            .iter()
            .map(|_| Claimed::Made(BTreeSet::new()))
            .collect());
    }
    let none = BTreeMap::new();
    core.change(change::NO_TEAM, &read, now, |c| {
        let mut each = Vec::with_capacity(teams.len());
        for (team, digests) in teams {
            each.push(match claim_in(c, team, digests, &none, true, now)? {
                Step::Answer(found) | Step::Write(found) | Step::WriteIfChanged(found) => found,
            });
        }
        Ok(Step::Answer(each))
    })
    .await
}

/// The refusal of `body`, a key of which (`digest`) another team or an
/// operator holds: 422 at that key's pointer.
fn taken_at(body: &Value, digest: &str) -> Error {
    let at = keys_of(body).find(|(_, d)| d == digest);
    let problem = crate::config::api_key_taken_at(at.map_or(0, |(i, _)| i));
    Error::InvalidConfig(vec![problem])
}

/// [`take`]: `Err` names a digest another team holds the claim of.
async fn taken(
    core: &Core,
    team: &str,
    digests: &BTreeSet<String>,
    dry_run: bool,
    now: Timestamp,
) -> Result<std::result::Result<BTreeSet<String>, String>> {
    if digests.is_empty() {
        return Ok(Ok(BTreeSet::new()));
    }
    let claims = digests.iter().map(|d| keys::api_key_claim(d));
    let reserved = digests.iter().map(|d| keys::api_key_reserved(d));
    let read: Vec<String> = claims.chain(reserved).collect();
    let mut over = BTreeMap::new();
    let mut last = String::new();
    let settled = change::until!(TRIES, |_| {
        let claimed = core.change(change::NO_TEAM, &read, now, |c| {
            claim_in(c, team, digests, &over, dry_run, now)
        });
        match claimed.await? {
            Claimed::Made(made) => Round::Done(Ok(made)),
            Claimed::Reserved(digest) => Round::Done(Err(digest)),
            Claimed::Held(held) => match left_behind(core, held, now).await? {
                Ok(taken_over) => {
                    last = taken_over.keys().next().cloned().unwrap_or_default();
                    over.extend(taken_over);
                    Round::Again
                }
                Err(digest) => Round::Done(Err(digest)),
            },
        }
    });
    Ok(settled.unwrap_or(Err(last)))
}

/// [`take`] in `c`, which read the claims and reservations of `digests`:
/// each absent, or the team's and older than [`RENEW_AFTER`], or in
/// `over` as read (left behind), written as the team's; nothing when
/// another team holds one, or an instance reserved one for a holder of
/// another id.
fn claim_in(
    c: &mut Change,
    team: &str,
    digests: &BTreeSet<String>,
    over: &BTreeMap<String, ApiKeyClaim>,
    dry_run: bool,
    now: Timestamp,
) -> Result<Step<Claimed>> {
    let (mut held, mut writes, mut made) = (Vec::new(), Vec::new(), BTreeSet::new());
    for digest in digests {
        let reserved: Loaded<KeyReservation> = c.read(&keys::api_key_reserved(digest))?;
        if reserved.value.is_some_and(|r| r.holder != team) {
            return Ok(Step::Answer(Claimed::Reserved(digest.clone())));
        }
        let claim: Loaded<ApiKeyClaim> = c.read(&keys::api_key_claim(digest))?;
        match &claim.value {
            Some(own) if own.team == team => {
                if own.at.plus(RENEW_AFTER) <= now {
                    writes.push(claim);
                }
            }
            Some(other) if over.get(digest) != Some(other) => {
                held.push((digest.clone(), other.clone()));
            }
            _ => {
                made.insert(digest.clone());
                writes.push(claim);
            }
        }
    }
    if !held.is_empty() {
        return Ok(Step::Answer(Claimed::Held(held)));
    }
    if dry_run || writes.is_empty() {
        return Ok(Step::Answer(Claimed::Made(made)));
    }
    let mine = ApiKeyClaim {
        team: team.to_string(),
        at: now,
    };
    for claim in &writes {
        c.put(claim, &mine, None)?;
    }
    Ok(Step::Write(Claimed::Made(made)))
}

/// The claims of `held` a writer left behind, to take over: each at least
/// [`STOPPED_AFTER`] old, of a team the store holds without its key (or
/// holds not at all); `Err` names the digest of one that is not.
async fn left_behind(
    core: &Core,
    held: Vec<(String, ApiKeyClaim)>,
    now: Timestamp,
) -> Result<std::result::Result<BTreeMap<String, ApiKeyClaim>, String>> {
    if let Some((digest, _)) = held.iter().find(|(_, c)| c.at.plus(STOPPED_AFTER) > now) {
        return Ok(Err(digest.clone()));
    }
    let owners: Vec<&str> = held.iter().map(|(_, c)| c.team.as_str()).collect();
    let stored = stored_forms(core, &owners, keys::api_team).await?;
    for ((digest, _), form) in held.iter().zip(&stored) {
        if stored_digests(form.as_ref()).contains(digest) {
            return Ok(Err(digest.clone()));
        }
    }
    tracing::warn!(
        claims = held.len(),
        "claims of API keys left behind by a write that stopped are taken over"
    );
    Ok(Ok(held.into_iter().collect()))
}

/// Releases team `team`'s claims of `digests` that its stored team does
/// not hold, unless another write of the team is under way (its mark,
/// younger than [`STOPPED_AFTER`]): what a write that failed claimed, or
/// what a write or a delete dropped once it committed. A claim not
/// released (the store failing) is one warning; another team takes it
/// over once it is old.
pub async fn release(core: &Core, team: &str, digests: &BTreeSet<String>, now: Timestamp) {
    if digests.is_empty() {
        return;
    }
    if let Err(e) = released(core, team, digests, now).await {
        tracing::warn!(team = %team, error = %e, "claims of API keys were not released; another team takes them over once they are old");
    }
}

/// [`release`], failing when the store does.
async fn released(
    core: &Core,
    team: &str,
    digests: &BTreeSet<String>,
    now: Timestamp,
) -> Result<()> {
    let stored = stored_forms(core, &[team], keys::api_team).await?.pop();
    let holds = stored_digests(stored.flatten().as_ref());
    let free: Vec<&String> = digests.difference(&holds).collect();
    if free.is_empty() {
        return Ok(());
    }
    let mut read: Vec<String> = free.iter().map(|d| keys::api_key_claim(d)).collect();
    read.push(keys::api_teams_generation());
    core.change(change::NO_TEAM, &read, now, |c| {
        let gen: Loaded<ApiTeamsGeneration> = c.read(&keys::api_teams_generation())?;
        let marks = gen.value.as_ref().and_then(|g| g.pending.get(team));
        let under_way = marks.is_some_and(|m| m.iter().any(|m| m.at.plus(STOPPED_AFTER) > now));
        let mut deleted = false;
        for digest in free.iter().filter(|_| !under_way) {
            let claim: Loaded<ApiKeyClaim> = c.read(&keys::api_key_claim(digest))?;
            if claim.value.as_ref().is_some_and(|c| c.team == team) {
                c.delete(&claim);
                deleted = true;
            }
        }
        Ok(match deleted {
            true => Step::Write(()),
            false => Step::Answer(()),
        })
    })
    .await
}

/// The keys of `teams` (as the store keeps them) claimed where no claim
/// is: what a restore or an import writes back. A key another team
/// claimed is left to it (logged): the look keeps one team per key.
pub async fn claim_held(
    core: &Core,
    teams: &BTreeMap<String, StoredApiForm>,
    now: Timestamp,
) -> Result<()> {
    let mut wanted: BTreeMap<String, &String> = BTreeMap::new();
    for (id, form) in teams {
        for digest in stored_digests(Some(form)) {
            wanted.entry(digest).or_insert(id);
        }
    }
    let wanted: Vec<(String, &String)> = wanted.into_iter().collect();
    for chunk in wanted.chunks(AT_ONCE) {
        let read: Vec<String> = chunk.iter().map(|(d, _)| keys::api_key_claim(d)).collect();
        let clashes = core.change(change::NO_TEAM, &read, now, |c| {
            let mut clashes = 0;
            let mut wrote = false;
            for (digest, id) in chunk {
                let claim: Loaded<ApiKeyClaim> = c.read(&keys::api_key_claim(digest))?;
                match &claim.value {
                    Some(held) if held.team != **id => clashes += 1,
                    Some(_) => {}
                    None => {
                        let team = id.to_string();
                        c.put(&claim, &ApiKeyClaim { team, at: now }, None)?;
                        wrote = true;
                    }
                }
            }
            Ok(match wrote {
                true => Step::Write(clashes),
                false => Step::Answer(clashes),
            })
        });
        let clashes = clashes.await?;
        if clashes > 0 {
            tracing::error!(
                keys = clashes,
                "API teams written back hold keys other API teams claimed; each key stays with its claim"
            );
        }
    }
    Ok(())
}

/// Who a reserved `[operator]` key is for: no team id has a `~`.
pub const OPERATORS: &str = "~operator";

/// How long a reservation lives when no instance renews it: a key a file
/// team no longer holds is free for an API team a day after.
const RESERVED_FOR: Duration = Duration::from_secs(24 * 60 * 60);

/// How old a reservation is when an instance that holds its key renews it.
const RENEW_RESERVATION_AFTER: Duration = Duration::from_secs(6 * 60 * 60);

/// How often an instance looks at the reservations of its keys: a store
/// come back empty has them again within this.
pub const RESERVE_EVERY: Duration = Duration::from_secs(5 * 60);

/// The keys `config` holds outside the operator API, by digest, each
/// with who holds it: its file teams' API keys, `[operator]`'s.
fn configured_keys(config: &Config) -> BTreeMap<String, String> {
    let mut held = BTreeMap::new();
    for team in config.teams.values().filter(|t| t.api.is_none()) {
        for key in &team.api_keys {
            held.insert(key.sha256.to_hex(), team.id.clone());
        }
    }
    for key in config.operator.iter().flat_map(|o| &o.api_keys) {
        held.insert(key.sha256.to_hex(), OPERATORS.to_string());
    }
    held
}

/// Reserves in the store each key `core`'s configuration holds outside
/// the operator API, for its holder: those not reserved, reserved for
/// another, or reserved more than [`RENEW_RESERVATION_AFTER`] ago, kept
/// [`RESERVED_FOR`]; [`AT_ONCE`] a change. What lets an instance or an
/// import whose configuration lacks that team or operator refuse the key
/// to an API team (docs/decisions/0632-a-file-team-s-key-is-reserved-in-the-store.md).
pub async fn reserve_configured(core: &Core, now: Timestamp) -> Result<()> {
    let wanted: Vec<(String, String)> = configured_keys(core.config()).into_iter().collect();
    for chunk in wanted.chunks(AT_ONCE) {
        let read: Vec<String> = chunk
            .iter()
            .map(|(d, _)| keys::api_key_reserved(d))
            .collect();
        core.change(change::NO_TEAM, &read, now, |c| {
            let mut wrote = false;
            for (digest, holder) in chunk {
                let at: Loaded<KeyReservation> = c.read(&keys::api_key_reserved(digest))?;
                let current = at.value.as_ref().is_some_and(|r| {
                    r.holder == *holder && now < r.at.plus(RENEW_RESERVATION_AFTER)
                });
                if !current {
                    let mine = KeyReservation {
                        holder: holder.clone(),
                        at: now,
                    };
                    c.put(&at, &mine, Some(RESERVED_FOR))?;
                    wrote = true;
                }
            }
            Ok(match wrote {
                true => Step::Write(()),
                false => Step::Answer(()),
            })
        })
        .await?;
    }
    Ok(())
}

/// [`reserve_configured`] with the configuration in force, every
/// [`RESERVE_EVERY`] from the start, until `shutdown`; a round the store
/// refuses is one warning, and the next tries again.
pub async fn run_reservations(
    live: Arc<Live>,
    clock: Arc<dyn Clock>,
    shutdown: impl std::future::Future<Output = ()>,
) {
    let mut rounds = Every::new(RESERVE_EVERY, shutdown);
    while rounds.next().await {
        if let Err(e) = reserve_configured(&live.current(), clock.now()).await {
            tracing::warn!(error = %e, "the keys of the file teams and operators are not reserved in the store yet; tried again at the next round");
        }
    }
}
