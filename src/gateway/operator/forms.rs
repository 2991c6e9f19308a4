//! What the operator API's teams and channels share
//! (docs/operator-api.md): a write as its request asked it, its
//! conditions, and the stored form of either — its `ETag`, its secrets
//! sealed at their place and opened again, an `{"hmac"}` a write sends
//! back replaced by the stored secret it names.
use std::collections::BTreeMap;

use serde_json::Value;

use crate::config::{
    api_url_problems, is_secret_member, secret_goes_to, Config, FormProblem, OperatorConfig,
};
use crate::domain::audit::Acting;
use crate::domain::preconditions::{self, Refusal};
use crate::domain::secrets_cipher::{Salt, Salts};
use crate::domain::team_secrets::{self, GoesTo, IsSecret};
use crate::error::{Error, Pointed, Result};
use crate::gateway::records::{Loaded, StoredApiForm};
use crate::gateway::Core;
use crate::time::Timestamp;

/// A write of a team or a channel through the operator API.
pub struct Write<'a> {
    /// The team's id, or the channel's name, as the path names it.
    pub id: &'a str,
    /// The body as sent (secrets written, or sent back as `{"hmac"}`).
    pub body: &'a Value,
    pub conditions: Conditions,
    /// Check everything and answer as the write would, writing nothing.
    pub dry_run: bool,
    pub acting: Acting,
}

/// A write's conditions, as its request sent them.
#[derive(Debug, Clone, Default)]
pub struct Conditions {
    pub if_match: Option<String>,
    pub if_none_match: Option<String>,
}

impl Conditions {
    /// Whether these conditions let a write to what has the quoted ETag
    /// `current` (`None`: nothing) go ahead: 428 without `If-Match` for a
    /// replace or delete, 412 with another.
    pub fn hold(&self, current: Option<&str>) -> Result<()> {
        let (m, n) = (&self.if_match, &self.if_none_match);
        preconditions::check(m.as_deref(), n.as_deref(), current).map_err(|r| match r {
            Refusal::Required => Error::PreconditionRequired,
            Refusal::Failed => Error::PreconditionFailed,
        })
    }
}

/// The operator section in force: a write needs it.
pub(super) fn operator(config: &Config) -> Result<&OperatorConfig> {
    (config.operator.as_deref()).ok_or(Error::NotFound("no such resource"))
}

/// The quoted `ETag` of a stored form.
pub(super) fn etag_of(stored: &Loaded<StoredApiForm>) -> Option<String> {
    let StoredApiForm::V1 { digest, .. } = stored.value.as_ref()?;
    Some(format!("\"{digest}\""))
}

/// `body` with its secrets sealed at `place` (a team's id, a channel's
/// [`channel_place`]), each with its salt of `salts`, as the store keeps
/// it; a team's `incarnation` beside it.
pub(super) fn sealed(
    op: &OperatorConfig,
    place: &str,
    (body, salts): (&Value, &Salts),
    digest: String,
    incarnation: Option<&str>,
    now: Timestamp,
) -> StoredApiForm {
    StoredApiForm::V1 {
        body: team_secrets::seal(body, place, members(), &op.secrets, salts),
        digest,
        at: now,
        incarnation: incarnation.map(str::to_string),
    }
}

/// A stored body's secrets, sealed at `place`, opened: a secret that does
/// not open is a bug here (a start-up refuses a key id no longer listed).
pub(super) fn opened(op: &OperatorConfig, place: &str, body: &Value) -> Result<Value> {
    team_secrets::open(body, place, members(), &op.secrets)
        .map_err(|(_, e)| Error::internal_from("a stored secret does not open", e))
}

/// Which members of a body hold a secret, and where each goes
/// (`config::secret_goes_to`): what a sealed secret is bound to.
pub fn members() -> (IsSecret<'static>, GoesTo) {
    (&is_secret_member, secret_goes_to)
}

/// A stored body's secrets opened, by pointer, and their salts.
pub(super) fn kept_secrets(
    op: &OperatorConfig,
    place: &str,
    body: &Value,
) -> Result<(BTreeMap<String, String>, Salts)> {
    let secrets = team_secrets::secrets_at(&opened(op, place, body)?, &is_secret_member);
    Ok((secrets, team_secrets::salts_of(body, &is_secret_member)))
}

/// The salts of `edited`, an edit of the stored `body` whose secrets
/// `opened` holds opened: a secret kept where it stands keeps its salt,
/// any other is salted anew.
pub(super) fn salts_of_edit(body: &Value, opened: &Value, edited: &Value) -> Salts {
    let secrets = team_secrets::secrets_at(opened, &is_secret_member);
    let salts = team_secrets::salts_of(body, &is_secret_member);
    let kept = team_secrets::Kept {
        secrets: &secrets,
        salts: &salts,
    };
    team_secrets::salts_of_edit(edited, &is_secret_member, &kept)
}

/// Which secrets a written body keeps though where they go changed from
/// the stored body's (`config::team_secrets_moved`,
/// `config::channel_secrets_moved`).
pub(super) type Moved = fn(&Value, &Value) -> Vec<Pointed>;

/// The body `w` writes over what `stored` (sealed at `place`) keeps, and
/// the salts of its secrets: its `member` (`id`, `name`) the path's, each
/// `{"hmac"}` replaced by the secret stored at its pointer whose
/// read-back it is (422 at its pointer for any other), and none kept
/// where a member that decides where it goes changed (`moved`: 422 at
/// the secret, docs/operator-api.md#secrets).
pub(super) fn written_body(
    op: &OperatorConfig,
    w: &Write<'_>,
    (member, place): (&str, &str),
    stored: &Loaded<StoredApiForm>,
    moved: Moved,
) -> Result<(Value, Salts)> {
    if (w.body.get(member).and_then(Value::as_str)).is_some_and(|b| b != w.id) {
        return Err(Error::InvalidConfig(vec![Pointed {
            pointer: format!("/{member}"),
            detail: format!("is not the {member} of the path"),
        }]));
    }
    let ((secrets, salts), mut moved) = match &stored.value {
        Some(StoredApiForm::V1 { body, .. }) => {
            (kept_secrets(op, place, body)?, moved(w.body, body))
        }
        None => Default::default(),
    };
    moved.sort_by(|a, b| a.pointer.cmp(&b.pointer));
    let kept = team_secrets::Kept {
        secrets: &secrets,
        salts: &salts,
    };
    let read_back = |p: &str, salt: Option<&Salt>, v: &str| op.secrets.read_back(place, p, salt, v);
    match team_secrets::keep(w.body, &is_secret_member, &kept, &read_back) {
        Ok(written) if moved.is_empty() => Ok(written),
        Ok(_) => Err(Error::InvalidConfig(moved)),
        Err(mut problems) => {
            problems.extend(moved);
            problems.sort_by(|a, b| a.pointer.cmp(&b.pointer));
            problems.dedup_by(|a, b| a.pointer == b.pointer);
            Err(Error::InvalidConfig(problems))
        }
    }
}

/// What `build` made of `body`, a write's body with its secrets kept, or
/// every problem found: those of its URLs (a destination beside the
/// gateway, a credential: docs/operator-api.md#destinations) with those
/// of `build`, by pointer.
pub(super) fn built<T>(
    op: &OperatorConfig,
    body: &Value,
    build: std::result::Result<T, Vec<FormProblem>>,
) -> Result<T> {
    let mut problems = api_url_problems(body, op.allow_private_destinations);
    match build {
        Ok(made) if problems.is_empty() => Ok(made),
        Ok(_) => Err(Error::InvalidConfig(problems)),
        Err(more) if problems.is_empty() => Err(Error::InvalidConfig(more)),
        Err(more) => {
            problems.extend(more);
            problems.sort_by(|a, b| a.pointer.cmp(&b.pointer));
            problems.dedup_by(|a, b| a.pointer == b.pointer);
            Err(Error::InvalidConfig(problems))
        }
    }
}

/// Why a stored form (`body`, its secrets sealed) cannot be put in force
/// in `config`, for a log line: each rule it breaks in words, at its
/// pointer (docs/operator-api.md#every-instance-at-once). The rules'
/// words never quote a value (a wrong-typed one may be a secret); a
/// channel the form lists that `config` no longer holds is named, as its
/// rule names it.
pub(super) fn breaks(config: &Config, body: &Value, problems: Vec<FormProblem>) -> String {
    let said: Vec<String> = problems.iter().map(|p| in_words(config, body, p)).collect();
    format!("breaks a rule: {}", said.join("; "))
}

/// One problem of a stored form in words: "the channel `flaky` it lists
/// is gone" where the form names a channel that `config` no longer holds
/// (the loader's rule says no channel defines it), else the rule's own
/// words; each with its pointer.
fn in_words(config: &Config, body: &Value, p: &FormProblem) -> String {
    let at = match p.pointer.as_str() {
        "" => String::new(),
        pointer => format!(" (at {pointer})"),
    };
    let named = body.pointer(&p.pointer).and_then(Value::as_str);
    match named {
        Some(name)
            if !config.channels.contains_key(name) && p.detail.contains(&format!("{name:?}")) =>
        {
            format!("the channel `{name}` it lists is gone{at}")
        }
        _ => format!("{}{at}", p.detail),
    }
}

/// The stored forms of `names` (each kept under `key_of` its name), read
/// in one call: `None` for one the store does not hold.
pub(super) async fn stored_forms<N: AsRef<str>>(
    core: &Core,
    names: &[N],
    key_of: fn(&str) -> String,
) -> Result<Vec<Option<StoredApiForm>>> {
    let keys: Vec<String> = names.iter().map(|n| key_of(n.as_ref())).collect();
    let raw = core.get(&keys).await?;
    let read = keys.into_iter().zip(raw);
    read.map(|(key, raw)| Ok(Loaded::<StoredApiForm>::parse(key, raw)?.value))
        .collect()
}

/// [`stored_forms`] of API teams `ids`, each with the text the store
/// keeps: what an instance holds for a store reset ([`super::look::HeldTexts`]).
pub(super) async fn stored_teams_and_texts<N: AsRef<str>>(
    core: &Core,
    ids: &[N],
) -> Result<Vec<Option<(StoredApiForm, Box<str>)>>> {
    let keys: Vec<String> = ids
        .iter()
        .map(|n| crate::store::keys::api_team(n.as_ref()))
        .collect();
    let raw = core.get(&keys).await?;
    let read = keys.into_iter().zip(raw);
    read.map(|(key, raw)| {
        let text = raw.as_ref().map(|r| Box::<str>::from(r.value.as_str()));
        let form = Loaded::<StoredApiForm>::parse(key, raw)?.value;
        Ok(form.zip(text))
    })
    .collect()
}

/// The place a channel's sealed secrets are bound to: no team id has a `~`.
pub use crate::config::channel_place;
