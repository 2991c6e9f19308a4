//! What the operator API writes, one resource at a time
//! (docs/operator-api.md): a team, a channel. Each is a [`Resource`]: its
//! name, the store key of its stored form, the digest its `ETag` is,
//! the one a file keeps, and how a write and a delete of it are
//! checked, stored, indexed and put in force. The HTTP `PUT` and `DELETE`
//! are written once over it (`http::operator_writes::put` and `delete`);
//! a new resource is an implementation of this trait and two routes
//! (CONTRIBUTING.md#add-an-operator-resource,
//! docs/decisions/0494-one-operator-resource-trait.md).
use std::future::Future;

use serde_json::Value;

use super::forms::{Conditions, Write};
use crate::config::{Config, ConfigError, ConfigPrint, FormProblem, Team};
use crate::domain::audit::Acting;
use crate::domain::secrets_cipher::Salts;
use crate::error::Result;
use crate::gateway::Core;
use crate::time::Timestamp;

/// What a write made: the resource as built, whether it is new, and the
/// generation of the API teams and channels that holds it (`0` for a dry
/// run).
pub struct Written<B> {
    pub built: B,
    pub created: bool,
    pub generation: u64,
}

/// A resource the operator API writes and deletes by name.
pub trait Resource: Send + Sync + 'static {
    /// What the configuration in force holds of one, as built from its
    /// JSON form.
    type Built: Send;

    /// What one is called in a refusal or a log line (`"team"`,
    /// `"channel"`).
    const NAME: &'static str;
    /// The prefix of its URL (`"/v1/teams/"`): a body sent to a path under
    /// it may be up to the operator API's own limit
    /// (`http::operator_writes::MAX_OPERATOR_BODY`), once it is in
    /// [`super::RESOURCES`].
    const PATH: &'static str;

    /// The 409 `managed_by_file` detail for one a file keeps.
    const MANAGED: &'static str;
    /// The 404 detail for a name none has.
    const MISSING: &'static str;

    /// The store key of the stored (sealed) form of `name`.
    fn store_key(name: &str) -> String;

    /// The place the secrets of `name` are bound to, sealed and read
    /// back (a team's id; a channel's `~channel:<name>`).
    fn place(name: &str) -> String;

    /// The print of `name` when a file of `config` keeps it (its writes
    /// are then 409 `managed_by_file`).
    fn in_a_file<'c>(config: &'c Config, name: &str) -> Option<&'c ConfigPrint>;

    /// The digest a built one's `ETag` is: of what the store keeps of it,
    /// its body alone (not the `[defaults]` or channel files a team
    /// inherits, which another process may resolve otherwise:
    /// docs/decisions/0630-an-etag-is-of-what-the-store-keeps.md).
    fn digest(built: &Self::Built) -> String;

    /// A built one's JSON form, as a read shows it (secrets as `{"hmac"}`).
    fn form(built: &Self::Built) -> std::borrow::Cow<'_, Value>;

    /// Writes `w` (or, for a dry run, checks that it would be written):
    /// the conditions, the body checked, the sealed form stored with the
    /// index and the generation moved.
    fn write(
        core: &Core,
        w: Write<'_>,
        now: Timestamp,
    ) -> impl Future<Output = Result<Written<Self::Built>>> + Send;

    /// Deletes `name` under `conditions` by `acting`: the generation
    /// without it.
    fn delete(
        core: &Core,
        name: &str,
        conditions: &Conditions,
        acting: &Acting,
        now: Timestamp,
    ) -> impl Future<Output = Result<u64>> + Send;
}

/// A resource kept beside the index of the API teams, by name, in the
/// slot of `{~teams}` (a channel): its stored form under
/// `{~teams}:<TAG>:<name>`, its index (name → digest) under
/// `{~teams}:<INDEX>`. Registered in [`super::KEPT`], it is read, put in
/// force, kept across a reload, written back, exported and imported by the
/// code written once over this trait (`look.rs`, `restore.rs`, `kept.rs`);
/// each item is what those steps ask of it.
pub trait Kept: Resource<Built: Clone + Send + Sync> {
    /// The tag of its stored form's key (`"ch"`: `{~teams}:ch:<name>`).
    const TAG: &'static str;
    /// The key of its index beside the teams' (`"cx"`: `{~teams}:cx`).
    const INDEX: &'static str;
    /// The member of `chatgate teams export`'s JSON that holds them
    /// (`"channels"`).
    const EXPORTED_AS: &'static str;

    /// The name of a built one.
    fn name(built: &Self::Built) -> &str;

    /// One built from its stored body (secrets opened; `salts`: theirs),
    /// written at `at`, as put in force from the operator API; the
    /// problems of a body that breaks a rule.
    fn of_stored(
        config: &Config,
        body: &Value,
        salts: &Salts,
        at: Timestamp,
    ) -> std::result::Result<Self::Built, Vec<FormProblem>>;

    /// Those `config` has in force from the operator API.
    fn api_in_force(config: &Config) -> Vec<&Self::Built>;

    /// `config` with `put` in force (each in place of its name's API one)
    /// and the API ones of `gone` taken out; one of a name a file keeps is
    /// an error naming both sources.
    fn put_in_force(
        config: &Config,
        put: Vec<Self::Built>,
        gone: &[String],
    ) -> std::result::Result<Config, ConfigError>;

    /// Whether `team` lists the one named `name`: such a team is built
    /// again when it moves, refused while it is refused, and keeps a
    /// deleted one in force until it changes.
    fn listed_by(team: &Team, name: &str) -> bool;
}
