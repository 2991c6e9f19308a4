//! Teams written through the operator API (docs/operator-api.md): kept in
//! the store under their own hash tag, secrets sealed, each write
//! compare-and-set against the `ETag` the writer names and recorded as a
//! `config.changed` entry of the team in the same commit; then the index
//! of the API teams, and its generation, moved
//! (docs/operator-api.md#how-the-store-keeps-them).
use std::collections::BTreeSet;
use std::sync::Arc;

use serde_json::Value;

use super::forms::{
    built, etag_of, opened, operator, salts_of_edit, sealed, stored_forms, written_body,
    Conditions, Write,
};
use super::{claims, index, uses};
use crate::config::{team_secrets_moved, Config, ConfigPrint, Team};
use crate::domain::audit::Acting;
use crate::domain::secrets_cipher::Salts;
use crate::error::{Error, Result};
use crate::gateway::audit::{record_api_write, recorded_keys};
use crate::gateway::change::{self, Change, Round};
use crate::gateway::records::{DeletedTeam, Loaded, StoredApiTeam};
use crate::gateway::work::Step;
use crate::gateway::Core;
use crate::store::keys;
use crate::time::Timestamp;

/// What a team's write made.
type Written = super::resource::Written<Team>;

/// The teams the operator API writes (`/v1/teams/{id}`).
pub struct Teams;

impl super::resource::Resource for Teams {
    type Built = Team;
    const NAME: &'static str = "team";
    const PATH: &'static str = "/v1/teams/";
    const MANAGED: &'static str = "this team is kept in a file: change its file";
    const MISSING: &'static str = "no such team";

    fn store_key(name: &str) -> String {
        keys::api_team(name)
    }

    fn place(name: &str) -> String {
        name.to_string()
    }

    fn in_a_file<'c>(config: &'c Config, name: &str) -> Option<&'c ConfigPrint> {
        config.file_team(name).map(|t| &t.print)
    }

    fn digest(built: &Team) -> String {
        built.own_digest.clone()
    }

    fn form(built: &Team) -> std::borrow::Cow<'_, Value> {
        std::borrow::Cow::Owned(built.form.value())
    }

    async fn write(core: &Core, w: Write<'_>, now: Timestamp) -> Result<Written> {
        write_team(core, w, now).await
    }

    async fn delete(
        core: &Core,
        name: &str,
        conditions: &Conditions,
        acting: &Acting,
        now: Timestamp,
    ) -> Result<u64> {
        delete_team(core, name, conditions, acting, now).await
    }
}

/// Decides a write on what `c` read: the conditions against the stored
/// team, the body checked, the sealed form put with its audit entry in
/// `tenant`'s trail; `held`: the API keys the stored team holds. `None`:
/// the stored team is no longer `tenant`'s (it was deleted, or written
/// again, since it was read): to try again.
fn decide_write(
    c: &mut Change,
    config: &Config,
    w: &Write<'_>,
    tenant: &Tenant,
    held: &mut BTreeSet<String>,
    now: Timestamp,
) -> Result<Step<Option<Written>>> {
    let stored: Loaded<StoredApiTeam> = c.read(&keys::api_team(w.id))?;
    *held = claimed_keys(&stored);
    w.conditions.hold(etag_of(&stored).as_deref())?;
    if !tenant.holds(w.id, &stored) {
        return Ok(Step::Answer(None));
    }
    let op = operator(config)?;
    let (body, salts) = written_body(op, w, ("id", w.id), &stored, team_secrets_moved)?;
    let mut team = built(op, &body, config.team_of_json(&body, &salts))?;
    team.keyspace = tenant.keyspace.clone();
    let created = stored.value.is_none();
    let generation = 0;
    if w.dry_run {
        return Ok(Step::Answer(Some(Written {
            built: team,
            created,
            generation,
        })));
    }
    put_team(c, config, &stored, &team, (&body, &salts), &w.acting, now)?;
    Ok(Step::Write(Some(Written {
        built: team,
        created,
        generation,
    })))
}

/// The digests of the API keys `stored` holds (docs/operator-api.md#keys).
fn claimed_keys(stored: &Loaded<StoredApiTeam>) -> BTreeSet<String> {
    match &stored.value {
        Some(StoredApiTeam::V1 { body, .. }) => claims::digests_of(body),
        None => BTreeSet::new(),
    }
}

/// In `c`, which read `stored` and [`recorded_keys`] of `team`'s
/// keyspace: `team`, made of `body`, stored with its secrets sealed with
/// their salts and its incarnation, and its `config.changed` entry by
/// `acting`.
fn put_team(
    c: &mut Change,
    config: &Config,
    stored: &Loaded<StoredApiTeam>,
    team: &Team,
    body: (&Value, &Salts),
    acting: &Acting,
    now: Timestamp,
) -> Result<()> {
    let incarnation = keys::incarnation_of(&team.keyspace);
    let digest = team.own_digest.clone();
    let record = sealed(operator(config)?, &team.id, body, digest, incarnation, now);
    c.put(stored, &record, None)?;
    let retention = config.audit.retention;
    record_api_write(c, &team.keyspace, Some(team), acting, retention).map(drop)
}

/// Whose keys a write of team `id` makes and reads: the keyspace of the
/// team the store holds, or, for a team it does not hold, a new
/// incarnation's — never a deleted team's
/// (docs/decisions/0437-a-team-id-written-again-is-a-new-tenant.md).
pub struct Tenant {
    pub keyspace: String,
    /// Made for a team the store did not hold.
    fresh: bool,
}

impl Tenant {
    /// The tenant of team `id` to try at attempt `n` of a write: first the
    /// one in force on this instance (no read; a new incarnation's when
    /// it has none), then the store's. A write's change checks it against
    /// the stored team it reads ([`Tenant::holds`]).
    async fn at(core: &Core, id: &str, n: usize) -> Result<Tenant> {
        match core.config().team(id).filter(|t| t.api.is_some()) {
            Some(team) if n == 0 => Ok(Tenant {
                keyspace: team.keyspace.clone(),
                fresh: false,
            }),
            None if n == 0 => Ok(Tenant {
                keyspace: keys::keyspace(id, Some(&new_incarnation())),
                fresh: true,
            }),
            _ => Tenant::of(core, id).await,
        }
    }

    /// The tenant of stored team `id` to edit or delete at attempt `n`:
    /// `None` to try again (none in force here: the store is read next),
    /// 404 when the store holds no such team.
    async fn held_at(core: &Core, id: &str, n: usize) -> Result<Option<Tenant>> {
        let tenant = Tenant::at(core, id, n).await?;
        match (tenant.fresh, n) {
            (true, 0) => Ok(None),
            (true, _) => Err(Error::NotFound("no such team")),
            (false, _) => Ok(Some(tenant)),
        }
    }

    /// The tenant of team `id` as the store holds it now (one read).
    async fn of(core: &Core, id: &str) -> Result<Tenant> {
        let stored = stored_forms(core, &[id], keys::api_team).await?.pop();
        Ok(match stored.flatten() {
            Some(StoredApiTeam::V1 { incarnation, .. }) => Tenant {
                keyspace: keys::keyspace(id, incarnation.as_deref()),
                fresh: false,
            },
            None => Tenant {
                keyspace: keys::keyspace(id, Some(&new_incarnation())),
                fresh: true,
            },
        })
    }

    /// Whether team `id` as `stored` holds it is this tenant's: the one
    /// read, or none for a fresh one.
    fn holds(&self, id: &str, stored: &Loaded<StoredApiTeam>) -> bool {
        match &stored.value {
            Some(StoredApiTeam::V1 { incarnation, .. }) => {
                keys::keyspace(id, incarnation.as_deref()) == self.keyspace
            }
            None => self.fresh,
        }
    }

    /// What a change of this tenant reads: the stored team and what its
    /// `config.changed` entry needs.
    fn read(&self, id: &str) -> Vec<String> {
        let mut read = vec![keys::api_team(id)];
        read.extend(recorded_keys(&self.keyspace));
        read
    }
}

/// A new incarnation: 48 random bits, in hex.
fn new_incarnation() -> String {
    use rand::RngCore as _;
    let mut bytes = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// How often a write tries its team's tenant: the one in force here,
/// then the store's, read again while another writer deletes or creates
/// the team between that read and the write's change.
const TENANT_TRIES: usize = 5;

/// A write that found its team of another tenant [`TENANT_TRIES`] times.
fn tenant_moved() -> Error {
    Error::PreconditionFailed
}

/// An edit of a stored API team: the body it makes and what to answer,
/// or only what to answer when nothing changes.
pub enum Edited<T> {
    To(Value, T),
    Unchanged(T),
}

/// Changes stored API team `id` by `edit`, given the configuration in
/// force and the team's body with its secrets opened: the body it makes
/// is checked as a `PUT`'s (422), stored sealed with its `config.changed`
/// entry by `acting`, and indexed, after `claim` (API key digests) is
/// claimed for it (409 `key_exists`: another team's). 404 when the store
/// holds no such team; no precondition (the change is made on the version
/// read, and made again on a newer one). Answers what `edit` answered and
/// the generation of the API teams that holds the change (`None`: nothing
/// changed).
pub async fn edit_team<T>(
    core: &Core,
    id: &str,
    claim: &BTreeSet<String>,
    acting: &Acting,
    now: Timestamp,
    edit: impl FnMut(&Config, &Value) -> Result<Edited<T>>,
) -> Result<(T, Option<u64>)> {
    let config = Arc::clone(core.config());
    let mut made = BTreeSet::new();
    let edit = async {
        made = claims::take(core, id, claim, false, now).await?;
        edited(core, &config, id, Purpose::Edit, acting, now, edit).await
    };
    let done = marked(core, id, now, edit).await;
    if done.is_err() {
        claims::release(core, id, &made, now).await;
    }
    done
}

/// Why a stored team is built again.
#[derive(Clone, Copy, PartialEq)]
enum Purpose {
    /// A change of its own, checked as a `PUT` (its API keys against the
    /// API teams in force too); nothing to index when nothing changed.
    Edit,
    /// A channel it lists written: built as the look builds it; indexed
    /// at its digest even when that did not move, so that a writer that
    /// stopped between the team's commit and the index's leaves nothing
    /// behind.
    Rebuild,
}

/// Stored API team `id` built again against `config` (which has a channel
/// it lists written), under mark `token`: its `config.changed` entry by
/// `acting` when its effective configuration moved (its record, and its
/// `ETag`, stay: its body did not change, unless it was stored by an
/// earlier version with another digest, then stored again), and indexed.
/// The generation that holds it (`None`: nothing changed, or the team is
/// gone or no longer builds, logged).
pub async fn rebuild_team(
    core: &Core,
    config: &Config,
    id: &str,
    token: u64,
    acting: &Acting,
    now: Timestamp,
) -> Result<Option<u64>> {
    let same = |_: &Config, body: &Value| Ok(Edited::To(body.clone(), ()));
    let rebuilt = async {
        match edited(core, config, id, Purpose::Rebuild, acting, now, same).await {
            Err(Error::NotFound(_)) => Ok(((), ToIndex::Nothing)),
            Err(Error::InvalidConfig(problems)) => {
                let at: Vec<&str> = problems.iter().map(|p| p.pointer.as_str()).collect();
                tracing::error!(team = %id, pointers = %at.join(","), "an API team no longer builds with a channel written; it stays as it was");
                Ok(((), ToIndex::Nothing))
            }
            other => other,
        }
    };
    Ok(with_mark(core, id, token, now, rebuilt).await?.1)
}

/// In one change of team `id`'s slot: the stored team, its secrets
/// opened, changed by `edit` and checked against `config`, stored with
/// its `config.changed` entry by `acting` when its digest moved; what
/// `edit` answered and what is left to index.
async fn edited<T>(
    core: &Core,
    config: &Config,
    id: &str,
    purpose: Purpose,
    acting: &Acting,
    now: Timestamp,
    mut edit: impl FnMut(&Config, &Value) -> Result<Edited<T>>,
) -> Result<(T, ToIndex)> {
    let edited = change::until!(TENANT_TRIES, |n| {
        match Tenant::held_at(core, id, n).await? {
            Some(tenant) => {
                let read = tenant.read(id);
                let edited = core.change(&tenant.keyspace, &read, now, |c| {
                    edit_in(c, config, id, &tenant, purpose, acting, now, &mut edit)
                });
                edited.await?.map_or(Round::Again, Round::Done)
            }
            None => Round::Again,
        }
    });
    edited.ok_or_else(tenant_moved)
}

/// [`edited`] in a change of `tenant`, which read [`Tenant::read`]:
/// `None` when the stored team is another tenant's.
#[allow(clippy::too_many_arguments)]
fn edit_in<T>(
    c: &mut Change,
    config: &Config,
    id: &str,
    tenant: &Tenant,
    purpose: Purpose,
    acting: &Acting,
    now: Timestamp,
    edit: &mut impl FnMut(&Config, &Value) -> Result<Edited<T>>,
) -> Result<Step<Option<(T, ToIndex)>>> {
    let stored: Loaded<StoredApiTeam> = c.read(&keys::api_team(id))?;
    let Some(StoredApiTeam::V1 { body, digest, .. }) = &stored.value else {
        return Err(Error::NotFound("no such team"));
    };
    if !tenant.holds(id, &stored) {
        return Ok(Step::Answer(None));
    }
    let stored_body = body;
    let opened = opened(operator(config)?, id, body)?;
    let (body, answer) = match edit(config, &opened)? {
        Edited::Unchanged(answer) => return Ok(Step::Answer(Some((answer, ToIndex::Nothing)))),
        Edited::To(body, answer) => (body, answer),
    };
    let salts = salts_of_edit(stored_body, &opened, &body);
    let team = match purpose {
        Purpose::Edit => config.team_of_json(&body, &salts),
        Purpose::Rebuild => config.stored_team_of_json(&body, &salts),
    };
    let mut team = team.map_err(Error::InvalidConfig)?;
    team.keyspace = tenant.keyspace.clone();
    let index = index::indexed_as(&team.own_digest, keys::incarnation_of(&team.keyspace));
    if team.own_digest != *digest {
        put_team(c, config, &stored, &team, (&body, &salts), acting, now)?;
        return Ok(Step::Write(Some((answer, ToIndex::At(index)))));
    }
    match purpose {
        Purpose::Edit => Ok(Step::Answer(Some((answer, ToIndex::Nothing)))),
        // Its record as it was (its `ETag` too), what it lists moved: its
        // entry when its effective configuration did.
        Purpose::Rebuild => {
            let retention = config.audit.retention;
            let recorded = record_api_write(c, &team.keyspace, Some(&team), acting, retention)?;
            let done = Some((answer, ToIndex::At(index)));
            Ok(if recorded {
                Step::Write(done)
            } else {
                Step::Answer(done)
            })
        }
    }
}

/// Writes team `w.id` (or, for a dry run, checks that it would be
/// written): 412 when the conditions do not hold against the stored team,
/// 428 for a replace that names no version, 422 for a body that breaks a
/// rule. Two writers naming one `ETag`: the commit's compare-and-set lets
/// one through, the other reads again and is 412.
/// Each API key of the body is claimed for the team first (422
/// `invalid_config` at its pointer: another team's), and a key the stored team held that the
/// body drops is released after (docs/operator-api.md#keys).
pub async fn write_team(core: &Core, w: Write<'_>, now: Timestamp) -> Result<Written> {
    let digests = claims::digests_of(w.body);
    if w.dry_run {
        claims::take_for_body(core, w.id, w.body, true, now).await?;
        let checked = written(core, &w, &mut BTreeSet::new(), now).await?;
        own_on_its_lists(core, &checked.built, now).await?;
        return Ok(checked);
    }
    if w.body.pointer("/wallet/verify_own") == Some(&Value::Bool(true)) {
        // The team as it would be written, its own certificates looked
        // for on its lists before anything is claimed or written.
        let trial = Write {
            conditions: w.conditions.clone(),
            dry_run: true,
            acting: w.acting.clone(),
            ..w
        };
        let checked = written(core, &trial, &mut BTreeSet::new(), now).await?;
        own_on_its_lists(core, &checked.built, now).await?;
    }
    let (mut made, mut held) = (BTreeSet::new(), BTreeSet::new());
    let listed = api_channels_named(core, w.body);
    // What the team in force here listed that the write drops: its claims
    // go once it is written.
    let mut dropped = match core.config().team(w.id) {
        Some(team) if team.api.is_some() => api_channels_named(core, &team.form.value()),
        _ => Default::default(),
    };
    dropped.retain(|name, _| !listed.contains_key(name));
    let write = async {
        made = claims::take_for_body(core, w.id, w.body, false, now).await?;
        uses::claim(core, w.id, &listed, now).await?;
        let written = written(core, &w, &mut held, now).await?;
        let index = index::indexed_as(
            &written.built.own_digest,
            keys::incarnation_of(&written.built.keyspace),
        );
        Ok((written, ToIndex::At(index)))
    };
    let (mut written, generation) = match marked(core, w.id, now, write).await {
        Ok(done) => done,
        Err(e) => {
            claims::release(core, w.id, &made, now).await;
            uses::release(core, w.id, &listed, now).await;
            return Err(e);
        }
    };
    claims::release(core, w.id, &(&held - &digests), now).await;
    uses::release(core, w.id, &dropped, now).await;
    written.generation = generation.unwrap_or_default();
    Ok(written)
}

/// With `verify_own`, `team`'s access and registration certificates
/// looked for on its `wrpac` and `wrprc` lists, read now and not kept:
/// 422 `invalid_config` at the pointer of one a usable list of its kind
/// does not hold, as a team file that breaks it stops a start
/// (docs/wallet.md#the-banks-own-certificates). A list with no usable
/// copy is no refusal. An import checks its teams by it too
/// (docs/decisions/0851-an-import-checks-a-team-s-own-certificates-as-a-put-does.md).
pub(super) async fn own_on_its_lists(core: &Core, team: &Team, now: Timestamp) -> Result<()> {
    if team.wallet.as_ref().is_none_or(|w| w.verify_own.is_none()) {
        return Ok(());
    }
    let held = crate::gateway::wallet::verify_own_written(core, team, now).await;
    held.map_err(|(key, detail)| {
        Error::InvalidConfig(vec![crate::error::Pointed {
            pointer: format!("/{}", key.replace('.', "/")),
            detail,
        }])
    })
}

/// The channels of the operator API in force that `body` (a team's JSON
/// form) names, each with its pointer: what its write claims.
fn api_channels_named(core: &Core, body: &Value) -> std::collections::BTreeMap<String, String> {
    let channels = &core.config().channels;
    let mut named = uses::named(body);
    named.retain(|name, _| channels.get(name).is_some_and(|c| c.api));
    named
}

/// [`write_team`]'s change of the team's tenant as read, read again
/// while another writer deleted or created the team meanwhile; `held`:
/// the API keys the stored team held.
async fn written(
    core: &Core,
    w: &Write<'_>,
    held: &mut BTreeSet<String>,
    now: Timestamp,
) -> Result<Written> {
    let config = std::sync::Arc::clone(core.config());
    let written = change::until!(TENANT_TRIES, |n| {
        let tenant = Tenant::at(core, w.id, n).await?;
        let read = tenant.read(w.id);
        let decide = |c: &mut Change| decide_write(c, &config, w, &tenant, held, now);
        let written = core.change(&tenant.keyspace, &read, now, decide).await?;
        written.map_or(Round::Again, Round::Done)
    });
    written.ok_or_else(tenant_moved)
}

/// What a write leaves the index to do.
enum ToIndex {
    At(String),
    Gone,
    Nothing,
}

/// `write` of team `id`, marked under way before and indexed after
/// (docs/operator-api.md#a-writer-that-stops): what it answered and the
/// generation that holds it (`None`: nothing changed). A write refused
/// clears its mark (a mark left behind is repaired by the next look).
async fn marked<T>(
    core: &Core,
    id: &str,
    now: Timestamp,
    write: impl std::future::Future<Output = Result<(T, ToIndex)>>,
) -> Result<(T, Option<u64>)> {
    let token = index::mark(core, id, now).await?;
    with_mark(core, id, token, now, write).await
}

/// `write` of team `id`, marked under way by `token`, then indexed and the
/// mark cleared (see [`marked`]).
async fn with_mark<T>(
    core: &Core,
    id: &str,
    token: u64,
    now: Timestamp,
    write: impl std::future::Future<Output = Result<(T, ToIndex)>>,
) -> Result<(T, Option<u64>)> {
    let (answer, digest) = match write.await {
        Ok((answer, ToIndex::At(digest))) => (answer, Some(digest)),
        Ok((answer, ToIndex::Gone)) => (answer, None),
        Ok((answer, ToIndex::Nothing)) => {
            unmark(core, id, token, now).await;
            return Ok((answer, None));
        }
        Err(e) => {
            unmark(core, id, token, now).await;
            return Err(e);
        }
    };
    let generation = index::index(core, id, digest, token, now).await?;
    Ok((answer, Some(generation)))
}

/// Clears mark `token` of a write that changed nothing; one that is not
/// cleared is repaired by the next look.
async fn unmark(core: &Core, id: &str, token: u64, now: Timestamp) {
    if let Err(e) = index::unmark(core, id, token, now).await {
        tracing::warn!(team = %id, error = %e, "the mark of a write was not cleared; the next look clears it");
    }
}

/// Deletes team `id` written through the operator API: 404 when there is
/// none, 428 without `If-Match`, 412 with another `ETag`. Its last
/// `config.changed` entry records the empty configuration, and the claims
/// of its API keys are released. Answers the generation of the API teams
/// without it.
pub async fn delete_team(
    core: &Core,
    id: &str,
    conditions: &Conditions,
    acting: &Acting,
    now: Timestamp,
) -> Result<u64> {
    let (mut held, mut listed) = (BTreeSet::new(), Default::default());
    let delete = async {
        let deleted = change::until!(TENANT_TRIES, |n| {
            match Tenant::held_at(core, id, n).await? {
                Some(tenant) => {
                    let mut read = tenant.read(id);
                    read.push(keys::deleted_team(id));
                    let deleted = core.change(&tenant.keyspace, &read, now, |c| {
                        let stored: Loaded<StoredApiTeam> = c.read(&keys::api_team(id))?;
                        held = claimed_keys(&stored);
                        if let Some(StoredApiTeam::V1 { body, .. }) = &stored.value {
                            listed = api_channels_named(core, body);
                        }
                        delete_in(c, core.config(), id, &tenant, conditions, acting, now)
                    });
                    deleted.await?.map_or(Round::Again, Round::Done)
                }
                None => Round::Again,
            }
        });
        deleted.ok_or_else(tenant_moved)?;
        Ok(((), ToIndex::Gone))
    };
    let ((), generation) = marked(core, id, now, delete).await?;
    claims::release(core, id, &held, now).await;
    uses::release(core, id, &listed, now).await;
    Ok(generation.unwrap_or_default())
}

/// [`delete_team`] in a change of `tenant`, which read [`Tenant::read`]
/// and [`keys::deleted_team`]: the stored team deleted, its last
/// `config.changed` entry (the empty configuration) in its trail, and
/// where that trail stays noted for its retention. `None` when the
/// stored team is another tenant's.
fn delete_in(
    c: &mut Change,
    config: &Config,
    id: &str,
    tenant: &Tenant,
    conditions: &Conditions,
    acting: &Acting,
    now: Timestamp,
) -> Result<Step<Option<()>>> {
    let retention = config.audit.retention;
    let stored: Loaded<StoredApiTeam> = c.read(&keys::api_team(id))?;
    let current = etag_of(&stored).ok_or(Error::NotFound("no such team"))?;
    conditions.hold(Some(&current))?;
    if !tenant.holds(id, &stored) {
        return Ok(Step::Answer(None));
    }
    c.delete(&stored);
    record_api_write(c, &tenant.keyspace, None, acting, retention)?;
    let deleted: Loaded<DeletedTeam> = c.read(&keys::deleted_team(id))?;
    let keyspace = tenant.keyspace.clone();
    c.put(
        &deleted,
        &DeletedTeam { keyspace, at: now },
        Some(retention),
    )?;
    Ok(Step::Write(Some(())))
}

/// Rung by a write to have the API teams put in force at once; says which
/// generation is in force.
pub struct ApiTeamsBell {
    ring: tokio::sync::Notify,
    applied: tokio::sync::watch::Sender<u64>,
}

impl Default for ApiTeamsBell {
    fn default() -> Self {
        ApiTeamsBell {
            ring: tokio::sync::Notify::new(),
            applied: tokio::sync::watch::channel(0).0,
        }
    }
}

impl ApiTeamsBell {
    /// Waits until `generation` (or a later one) is in force, at most
    /// `within`, after ringing: whether it is.
    pub async fn applied(&self, generation: u64, within: std::time::Duration) -> bool {
        let mut seen = self.applied.subscribe();
        self.ring.notify_one();
        let reached = tokio::time::timeout(within, seen.wait_for(|g| *g >= generation)).await;
        matches!(reached, Ok(Ok(_)))
    }

    /// Resolves when a write rang.
    pub async fn rung(&self) {
        self.ring.notified().await;
    }

    /// `generation` is in force.
    pub fn in_force(&self, generation: u64) {
        self.applied.send_if_modified(|g| {
            let moved = generation > *g;
            *g = (*g).max(generation);
            moved
        });
    }
}
