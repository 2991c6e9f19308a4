//! The resources kept beside the index of the API teams, by name (a
//! channel: [`Kept`]), as the look, a reload, the write-back, the export
//! and the import see each: its entry of [`super::KEPT`] ([`Registered`],
//! made from its implementation by [`Registered::of`]), what a look read
//! of it ([`KeptChanges`], [`read_kept`]), as the store holds one
//! ([`stored`]), and why a stored one is not put in force
//! ([`NotInForce`]).
use std::collections::BTreeMap;
use std::sync::Arc;

use super::forms::{breaks, operator, stored_forms};
use super::resource::Kept;
use crate::config::{is_secret_member, Config, ConfigError, Team};
use crate::domain::secrets_cipher::OpenError;
use crate::domain::team_secrets;
use crate::error::Result as StoreResult;
use crate::gateway::records::{Loaded, StoredApiChannels, StoredApiForm};
use crate::gateway::Core;
use crate::store::keys;

/// What stops a start-up or refuses a reload: what (`"team"`,
/// `"channel"`), its name, why.
pub type Stops = Vec<(&'static str, String, String)>;

/// Stored forms read, by name (`None`: the store holds none).
pub type Read = Vec<(String, Option<StoredApiForm>)>;

/// Why a stored team or kept resource is not put in force: a rule it
/// breaks (it is left out), or what stops a start-up (a secret sealed
/// under a key id no longer listed, a file of this instance with its
/// name).
pub enum NotInForce {
    Breaks(String),
    Stops(String),
}

impl NotInForce {
    /// Why, as said.
    pub fn said(self) -> String {
        match self {
            NotInForce::Breaks(why) | NotInForce::Stops(why) => why,
        }
    }

    /// Why, as said of `what` named `name`; one that stops a start-up is
    /// also added to `stops`.
    pub fn why(self, what: &'static str, name: &str, stops: &mut Stops) -> String {
        match self {
            NotInForce::Breaks(why) => why,
            NotInForce::Stops(why) => {
                stops.push((what, name.to_string(), why.clone()));
                why
            }
        }
    }
}

/// A stored body's secrets, sealed at `place`, opened; why not (the
/// pointer and the key id of the first that does not open).
pub fn opened_at(
    config: &Config,
    place: &str,
    body: &serde_json::Value,
) -> std::result::Result<serde_json::Value, NotInForce> {
    let op = operator(config).map_err(|_| NotInForce::Breaks("the operator API is off".into()))?;
    team_secrets::open(body, place, super::forms::members(), &op.secrets).map_err(|(pointer, e)| {
        let why = format!("{pointer}: {e}");
        match e {
            OpenError::UnknownKey(_) => NotInForce::Stops(why),
            _ => NotInForce::Breaks(why),
        }
    })
}

/// `config` with what a look built of one kept resource put in force, and
/// the names given taken out.
type Built = Arc<dyn Fn(&Config, &[String]) -> Result<Config, ConfigError> + Send + Sync>;

/// A kept resource as the code written over every one sees it: one entry
/// of [`super::KEPT`], each member made from its [`Kept`] implementation.
#[derive(Clone, Copy)]
pub struct Registered {
    /// [`super::resource::Resource::NAME`].
    pub what: &'static str,
    /// [`super::resource::Resource::PATH`].
    pub path: &'static str,
    /// [`Kept::TAG`] and [`Kept::INDEX`].
    pub tag: &'static str,
    pub index: &'static str,
    /// [`Kept::EXPORTED_AS`].
    pub exported_as: &'static str,
    /// The key of one's stored form, by name.
    pub store_key: fn(&str) -> String,
    /// [`super::resource::Resource::place`].
    pub place: fn(&str) -> String,
    /// Whether a file of the configuration keeps the one of a name.
    pub in_a_file: fn(&Config, &str) -> bool,
    /// [`Kept::listed_by`].
    pub listed_by: fn(&Team, &str) -> bool,
    /// Those in force from the operator API: name → digest.
    pub in_force: fn(&Config) -> BTreeMap<String, String>,
    /// The files' configuration with the API ones of the running one kept.
    pub keep: fn(&Config, &Config) -> Result<Config, ConfigError>,
    /// A configuration with the held ones (name → stored form) that can be
    /// put in force in it put in force.
    pub with_held: fn(&Config, &BTreeMap<String, StoredApiForm>) -> Config,
    /// One of an import (name, its stored form) checked as a write of it
    /// would be: the form with the digest made here, or why not.
    pub checked: fn(&Config, &str, &StoredApiForm) -> Result<StoredApiForm, String>,
    build: fn(&Config, Read, &mut KeptChanges, &mut Stops),
    take_out: fn(&Config, &[String]) -> Result<Config, ConfigError>,
}

impl Registered {
    /// The entry of `R`.
    pub const fn of<R: Kept>() -> Registered {
        Registered {
            what: R::NAME,
            path: R::PATH,
            tag: R::TAG,
            index: R::INDEX,
            exported_as: R::EXPORTED_AS,
            store_key: R::store_key,
            place: R::place,
            in_a_file: in_a_file::<R>,
            listed_by: R::listed_by,
            in_force: in_force::<R>,
            keep: keep::<R>,
            with_held: with_held::<R>,
            checked: checked::<R>,
            build: build::<R>,
            take_out: take_out::<R>,
        }
    }

    /// The key of its index: name → digest.
    pub fn index_key(&self) -> String {
        keys::api_kept_index(self.index)
    }

    /// A look's read of it: `gone` taken out, nothing put yet.
    pub fn changes(&self, gone: Vec<String>) -> KeptChanges {
        KeptChanges {
            of: *self,
            put: Vec::new(),
            gone,
            refused: Vec::new(),
            forms: BTreeMap::new(),
            built: None,
        }
    }

    /// `config` with the ones of the operator API named `gone` taken out.
    pub fn take_out(&self, config: &Config, gone: &[String]) -> Result<Config, ConfigError> {
        (self.take_out)(config, gone)
    }

    /// Into `changes`: the stored forms `read` (name, form; `None`: not
    /// stored, then gone) built against `config`, or refused, each with why.
    pub fn build(&self, config: &Config, read: Read, changes: &mut KeptChanges, stops: &mut Stops) {
        (self.build)(config, read, changes, stops)
    }
}

/// What a look read of one kept resource that differs from what an
/// instance put in force.
pub struct KeptChanges {
    pub of: Registered,
    /// The names put in force (new or changed).
    pub put: Vec<String>,
    /// The names taken out.
    pub gone: Vec<String>,
    /// Stored ones that could not be put in force, each with why (never a
    /// value: a pointer, a key id).
    pub refused: Vec<(String, String)>,
    /// The stored forms (sealed) of `put`.
    pub forms: BTreeMap<String, StoredApiForm>,
    built: Option<Built>,
}

impl KeptChanges {
    /// Whether nothing is to be put in force or taken out.
    pub fn is_empty(&self) -> bool {
        self.put.is_empty() && self.gone.is_empty()
    }

    /// Whether `team` lists one put in force or taken out.
    pub fn touches(&self, team: &Team) -> bool {
        let listed = |name: &String| (self.of.listed_by)(team, name);
        self.put.iter().chain(&self.gone).any(listed)
    }

    /// The first refused one `team` lists.
    pub fn refused_of(&self, team: &Team) -> Option<&String> {
        let names = self.refused.iter().map(|(name, _)| name);
        names.clone().find(|name| (self.of.listed_by)(team, name))
    }

    /// `config` with these changes in force.
    pub fn applied_to(&self, config: &Config) -> Result<Config, ConfigError> {
        match &self.built {
            Some(built) => built(config, &self.gone),
            None => (self.of.take_out)(config, &self.gone),
        }
    }
}

fn in_a_file<R: Kept>(config: &Config, name: &str) -> bool {
    R::in_a_file(config, name).is_some()
}

fn in_force<R: Kept>(config: &Config) -> BTreeMap<String, String> {
    let each = R::api_in_force(config).into_iter();
    each.map(|b| (R::name(b).to_string(), R::digest(b)))
        .collect()
}

fn keep<R: Kept>(files: &Config, running: &Config) -> Result<Config, ConfigError> {
    let kept = R::api_in_force(running).into_iter().cloned().collect();
    R::put_in_force(files, kept, &[])
}

fn take_out<R: Kept>(config: &Config, gone: &[String]) -> Result<Config, ConfigError> {
    R::put_in_force(config, Vec::new(), gone)
}

fn with_held<R: Kept>(config: &Config, held: &BTreeMap<String, StoredApiForm>) -> Config {
    let built = (held.iter())
        .filter(|(name, _)| R::in_a_file(config, name).is_none())
        .filter_map(|(name, form)| of_record::<R>(config, name, form.clone()).ok());
    let with = R::put_in_force(config, built.collect(), &[]);
    with.unwrap_or_else(|_| config.clone())
}

fn build<R: Kept>(config: &Config, read: Read, changes: &mut KeptChanges, stops: &mut Stops) {
    let mut built = Vec::new();
    for (name, stored) in read {
        if R::in_a_file(config, &name).is_some() {
            let why = format!(
                "a {} file of this instance has its name: one name, one source",
                R::NAME
            );
            let why = NotInForce::Stops(why).why(R::NAME, &name, stops);
            changes.refused.push((name, why));
            continue;
        }
        let form = stored.clone();
        match stored.map(|s| of_record::<R>(config, &name, s)) {
            Some(Ok(one)) => {
                built.push(one);
                changes.put.push(name.clone());
                changes.forms.extend(form.map(|f| (name, f)));
            }
            Some(Err(not)) => {
                let why = not.why(R::NAME, &name, stops);
                changes.refused.push((name, why));
            }
            None => changes.gone.push(name),
        }
    }
    changes.built = Some(Arc::new(move |config, gone| {
        R::put_in_force(config, built.clone(), gone)
    }));
}

/// The one a stored record writes, put in force from the operator API;
/// why not (a secret sealed under a key no longer listed, a rule it now
/// breaks: in words, by key id and pointer, never by value).
fn of_record<R: Kept>(
    config: &Config,
    name: &str,
    stored: StoredApiForm,
) -> std::result::Result<R::Built, NotInForce> {
    let StoredApiForm::V1 { body, at, .. } = stored;
    let salts = team_secrets::salts_of(&body, &is_secret_member);
    let opened = opened_at(config, &R::place(name), &body)?;
    let built = R::of_stored(config, &opened, &salts, at);
    built.map_err(|p| NotInForce::Breaks(breaks(config, &body, p)))
}

/// `stored`, one of an import named `name`, checked as a write of it
/// would be: its secrets opened at its place (one sealed for another
/// name or under another key does not open), its body by every rule a
/// write checks, its URLs' too; the form with the digest made here,
/// whatever the import says, or why not (pointers and rules, never a
/// value).
fn checked<R: Kept>(
    config: &Config,
    name: &str,
    stored: &StoredApiForm,
) -> Result<StoredApiForm, String> {
    let StoredApiForm::V1 {
        body,
        at,
        incarnation,
        ..
    } = stored;
    unbound(body)?;
    let salts = team_secrets::salts_of(body, &is_secret_member);
    let opened = opened_at(config, &R::place(name), body).map_err(NotInForce::said)?;
    let op = operator(config).map_err(|e| e.to_string())?;
    let built = R::of_stored(config, &opened, &salts, *at);
    let built = super::forms::built(op, &opened, built).map_err(|e| match e {
        crate::error::Error::InvalidConfig(problems) => said_problems(&problems),
        e => e.to_string(),
    })?;
    Ok(StoredApiForm::V1 {
        body: body.clone(),
        digest: R::digest(&built),
        at: *at,
        incarnation: incarnation.clone(),
    })
}

/// `Err` naming the first secret of an import's `body` sealed before
/// secrets were bound to where they go: it could have been sent anywhere
/// (docs/decisions/0550-a-sealed-secret-is-bound-to-its-destination.md).
pub fn unbound(body: &serde_json::Value) -> std::result::Result<(), String> {
    match team_secrets::first_unbound(body, &is_secret_member) {
        None => Ok(()),
        Some(pointer) => Err(format!(
            "{pointer}: sealed before secrets were bound to where they go: export it again with this version, or write the secret again"
        )),
    }
}

/// Every problem of a body, each its pointer and its rule.
pub fn said_problems(problems: &[crate::error::Pointed]) -> String {
    let said: Vec<String> = problems
        .iter()
        .map(|p| format!("{} {}", p.pointer, p.detail))
        .collect();
    said.join("; ")
}

/// The names of `index` whose digest is not the one of `known`.
fn moved<'a>(
    index: &'a BTreeMap<String, String>,
    known: Option<&'a BTreeMap<String, String>>,
) -> impl Iterator<Item = &'a String> {
    (index.iter())
        .filter(move |(name, digest)| known.and_then(|k| k.get(*name)) != Some(digest))
        .map(|(name, _)| name)
}

/// The names of `known` that `index` no longer has.
fn gone(index: &BTreeMap<String, String>, known: Option<&BTreeMap<String, String>>) -> Vec<String> {
    let gone = known.into_iter().flat_map(|k| k.keys());
    gone.filter(|name| !index.contains_key(*name))
        .cloned()
        .collect()
}

/// Kept resource `k`'s changes: the names of `index` whose digest moved
/// from `known`, read (one slot: one call) and built, and those gone.
pub async fn read_kept(
    core: &Core,
    config: &Config,
    k: &Registered,
    index: &BTreeMap<String, String>,
    known: Option<&BTreeMap<String, String>>,
    stops: &mut Stops,
) -> StoreResult<KeptChanges> {
    let mut changes = k.changes(gone(index, known));
    let moved: Vec<&String> = moved(index, known).collect();
    if moved.is_empty() {
        return Ok(changes);
    }
    let read = stored_forms(core, &moved, k.store_key).await?;
    let read = moved.into_iter().cloned().zip(read).collect();
    k.build(config, read, &mut changes, stops);
    Ok(changes)
}

/// A kept resource as the store holds it, beside those `config` has in
/// force: what a team that lists one is built against.
pub struct StoredKept {
    /// `config` with the stored ones in force.
    pub config: Config,
    /// The index read: name → digest.
    pub digests: BTreeMap<String, String>,
    /// Stored ones that could not be put in force (a file's of the name on
    /// this instance, a key no longer listed).
    pub refused: Vec<String>,
}

/// The kept resource `R` the store holds, read where it differs from what
/// `config` has in force.
pub async fn stored<R: Kept>(core: &Core, config: &Config) -> StoreResult<StoredKept> {
    let k = Registered::of::<R>();
    let digests = digests::<R>(core).await?;
    let in_force = (k.in_force)(config);
    let mut stops = Vec::new();
    let read = read_kept(core, config, &k, &digests, Some(&in_force), &mut stops).await?;
    let config = (read.applied_to(config))
        .map_err(|e| crate::error::Error::internal_from("API channels put in force", e))?;
    let refused = read.refused.into_iter().map(|(name, _)| name).collect();
    Ok(StoredKept {
        config,
        digests,
        refused,
    })
}

/// The index of kept resource `R`: name → digest.
pub async fn digests<R: Kept>(core: &Core) -> StoreResult<BTreeMap<String, String>> {
    let cx = keys::api_kept_index(R::INDEX);
    let raw = core.get(std::slice::from_ref(&cx)).await?.pop().flatten();
    let read = Loaded::<StoredApiChannels>::parse(cx, raw)?;
    Ok(read.value.unwrap_or_default().channels)
}
