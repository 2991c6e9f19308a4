//! The operator API's reads (docs/operator-api.md): the teams and channels
//! listed by id and read as the JSON form of their files, each with its
//! `ETag` (for a file's, the digest its `config.changed` entries carry;
//! for one of the API, the one the store keeps, of its body alone) and
//! its source. Writes are `operator_writes.rs`.
use std::collections::BTreeMap;

use axum::extract::State;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{NoQuery, PathParam, QueryParams};
use super::json::Json;
use super::openapi::{raw_schema, ApiKeyErrors, RawSchema, E400, E403, E404, E422};
use super::operator_auth::Operator;
use super::AppState;
use crate::config::ConfigPrint;
use crate::error::{Error, Result};
use crate::gateway::operator::channels::Channels;
use crate::gateway::operator::look;
use crate::gateway::operator::resource::Resource;
use crate::gateway::operator::teams::Teams;
use crate::time::Timestamp;

/// The header that says where a team or channel is kept.
pub const SOURCE_HEADER: &str = "chatgate-source";

/// The header of a read of a stored team or channel no instance can put in
/// force as it is (a secret that does not open here): why, by pointer.
pub const REFUSED_HEADER: &str = "chatgate-refused";

/// The largest page of a list, and the default.
const MAX_LIMIT: usize = 500;
const DEFAULT_LIMIT: usize = 100;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list_teams))
        .routes(routes!(read_team))
        .routes(routes!(list_channels))
        .routes(routes!(read_channel))
}

/// Where a team or channel is kept.
#[derive(Debug, Clone, Copy, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// A file in `teams_dir` (`channels_dir`): changed by its file, never here.
    File,
    /// Written through this API and kept in the store.
    Api,
}

/// One team of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamItem {
    #[schema(example = "acme")]
    id: String,
    source: Source,
    /// The team's current `ETag`, quoted.
    etag: String,
    /// When its file was last modified, as this instance read it; for a
    /// team of the API, when it was written.
    updated_at: Option<Timestamp>,
}

/// A page of teams, by id.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TeamPage {
    teams: Vec<TeamItem>,
    /// The `cursor` of the next page; `null` on the last.
    next_cursor: Option<String>,
}

/// One channel of a list.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelItem {
    #[schema(example = "sms")]
    name: String,
    source: Source,
    etag: String,
    updated_at: Option<Timestamp>,
}

/// A page of channels, by name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ChannelPage {
    channels: Vec<ChannelItem>,
    next_cursor: Option<String>,
}

/// `GET /v1/teams` and `GET /v1/channels` query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListParams {
    /// Page size, 1 to 500; default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 500)]
    limit: Option<String>,
    /// `next_cursor` of the page before: the page starts after it.
    #[param(value_type = Option<String>, pattern = "^[a-z0-9_-]{1,64}$")]
    cursor: Option<String>,
}

impl ListParams {
    /// The page size and the name the page starts after.
    fn read(&self) -> Result<(usize, Option<&str>)> {
        let limit = match self.limit.as_deref() {
            None => DEFAULT_LIMIT,
            Some(l) => l
                .parse::<usize>()
                .ok()
                .filter(|n| (1..=MAX_LIMIT).contains(n))
                .ok_or_else(|| Error::invalid("limit", "must be 1 to 500"))?,
        };
        let cursor = self.cursor.as_deref();
        if cursor.is_some_and(|c| !is_name(c)) {
            return Err(Error::invalid("cursor", "is not a cursor this API gave"));
        }
        Ok((limit, cursor))
    }
}

/// A team id or channel name: `[a-z0-9_-]{1,64}`.
pub fn is_name(s: &str) -> bool {
    (1..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// The quoted `ETag` of a configuration's print.
pub fn etag(print: &ConfigPrint) -> String {
    format!("\"{}\"", print.digest())
}

/// The quoted `ETag` of a team in force: for a team of the API, the
/// digest the store keeps (the same on every instance).
pub fn team_etag(team: &crate::config::Team) -> String {
    match &team.api {
        Some(digest) => format!("\"{digest}\""),
        None => etag(&team.print),
    }
}

/// One page of `names` (sorted) after `cursor`, and the next cursor.
fn page<'a, T>(
    items: impl Iterator<Item = (&'a String, T)>,
    limit: usize,
    cursor: Option<&str>,
) -> (Vec<T>, Option<String>) {
    let mut after = items.filter(|(name, _)| cursor.is_none_or(|c| name.as_str() > c));
    let page: Vec<(&String, T)> = after.by_ref().take(limit).collect();
    let next = match after.next() {
        Some(_) => page.last().map(|(name, _)| (*name).clone()),
        None => None,
    };
    (page.into_iter().map(|(_, t)| t).collect(), next)
}

/// The teams, by id (operator, operator_read): those in force, each API
/// team with the `ETag` the store keeps, as a read answers it.
#[utoipa::path(get, path = "/v1/teams", operation_id = "list_teams", tag = "operator", security(("api_key" = [])),
    params(ListParams),
    responses((status = 200, body = TeamPage), ApiKeyErrors, E400, E403, E404, E422))]
async fn list_teams(
    State(st): State<AppState>,
    _: Operator,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<TeamPage>> {
    let (limit, cursor) = q.read()?;
    let stored = look::stored_team_etags(&st.gateway).await;
    let config = st.gateway.config();
    let in_force = config.teams.iter().map(|(id, t)| Row {
        name: id.clone(),
        source: Source::of(t),
        etag: team_etag(t),
        updated_at: t.modified,
    });
    let (rows, next_cursor) = listed::<Teams>(&st, in_force, stored, limit, cursor).await?;
    let teams = rows
        .into_iter()
        .map(|r| TeamItem {
            id: r.name,
            source: r.source,
            etag: r.etag,
            updated_at: r.updated_at,
        })
        .collect();
    Ok(Json(TeamPage { teams, next_cursor }))
}

/// One team or channel of a list.
struct Row {
    name: String,
    source: Source,
    etag: String,
    updated_at: Option<Timestamp>,
}

/// A page of resources `R`: those `in_force` here, each of the API with
/// the `ETag` the store's index lists, `stored` (docs/operator-api.md#concurrency:
/// every read, on every instance, answers the stored version), an API one
/// the store no longer holds left out and one it holds that is not in
/// force here added; a store that does not answer leaves the ones in
/// force, as this instance serves them (as [`api_read`]).
async fn listed<R: Resource>(
    st: &AppState,
    in_force: impl Iterator<Item = Row>,
    stored: Result<BTreeMap<String, String>>,
    limit: usize,
    cursor: Option<&str>,
) -> Result<(Vec<Row>, Option<String>)> {
    let stored = match stored {
        Ok(stored) => Some(stored),
        Err(Error::StoreUnavailable) => None,
        Err(e) => return Err(e),
    };
    let mut rows: BTreeMap<String, (Row, bool)> = BTreeMap::new();
    for mut row in in_force {
        let kept = stored
            .as_ref()
            .filter(|_| matches!(row.source, Source::Api));
        let moved = match kept.map(|s| s.get(&row.name)) {
            None => false,
            Some(None) => continue,
            Some(Some(tag)) => std::mem::replace(&mut row.etag, tag.clone()) != *tag,
        };
        rows.insert(row.name.clone(), (row, moved));
    }
    for (name, etag) in stored.into_iter().flatten() {
        let row = Row {
            name: name.clone(),
            source: Source::Api,
            etag,
            updated_at: None,
        };
        rows.entry(name).or_insert((row, true));
    }
    let (names, next) = page(rows.keys().map(|n| (n, n.clone())), limit, cursor);
    let mut page: Vec<(Row, bool)> = names.iter().filter_map(|n| rows.remove(n)).collect();
    // Written at another version than the one in force here: when, as stored.
    let unknown: Vec<&str> = (page.iter().filter(|(_, moved)| *moved))
        .map(|(row, _)| row.name.as_str())
        .collect();
    if !unknown.is_empty() {
        let times = look::stored_times::<R>(&st.gateway, &unknown).await?;
        let moved = page.iter_mut().filter(|(_, moved)| *moved);
        for ((row, _), at) in moved.zip(times) {
            row.updated_at = at.or(row.updated_at);
        }
    }
    Ok((page.into_iter().map(|(row, _)| row).collect(), next))
}

/// A team as the JSON form of its file, secrets as `{"hmac"}` (operator,
/// operator_read).
#[utoipa::path(get, path = "/v1/teams/{id}", operation_id = "read_team", tag = "operator", security(("api_key" = [])),
    params(("id" = String, Path, description = "the team's id")),
    responses((status = 200, body = TeamForm, headers(("ETag" = String), ("Chatgate-Source" = Source),
            ("Chatgate-Refused" = String, description = "on a stored team this gateway cannot open a secret of: the secret's pointer and why (it reads as null)"))),
        ApiKeyErrors, E403, E404, E422))]
async fn read_team(
    State(st): State<AppState>,
    _: Operator,
    PathParam(id): PathParam<String>,
    _: NoQuery,
) -> Result<Response> {
    let config = st.gateway.config();
    let team = config.teams.get(&id);
    if let Some(file) = team.filter(|t| t.api.is_none()) {
        return Ok(read_back(
            StatusCode::OK,
            &file.form.value(),
            &etag(&file.print),
            Source::File,
        ));
    }
    let in_force = team.map(|t| (t.form.value(), team_etag(t)));
    let in_force = in_force.as_ref().map(|(form, tag)| (form, tag.clone()));
    api_read::<Teams>(&st, &id, in_force).await
}

/// Resource `R` named `id` (an API team or channel) as read: the `ETag`
/// the store keeps (docs/operator-api.md#concurrency), the form in force
/// here, or the stored one where none is (one left out); a store that
/// does not answer leaves the one in force, as this instance serves it.
pub(super) async fn api_read<R: Resource>(
    st: &AppState,
    id: &str,
    in_force: Option<(&serde_json::Value, String)>,
) -> Result<Response> {
    use crate::gateway::operator::look::stored_read;
    let stored = match stored_read::<R>(&st.gateway, id).await {
        Ok(stored) => stored.ok_or(Error::NotFound(R::MISSING))?,
        Err(Error::StoreUnavailable) => {
            let (form, tag) = in_force.ok_or(Error::StoreUnavailable)?;
            return Ok(read_back(StatusCode::OK, form, &tag, Source::Api));
        }
        Err(e) => return Err(e),
    };
    let (form, refused) = match in_force {
        Some((form, _)) => (form.clone(), None),
        None => stored.form(&st.gateway)?,
    };
    let mut res = read_back(StatusCode::OK, &form, &stored.etag, Source::Api);
    let refused = refused.and_then(|why| HeaderValue::from_str(&why).ok());
    if let Some(why) = refused {
        res.headers_mut().insert(REFUSED_HEADER, why);
    }
    Ok(res)
}

/// The channels, by name (operator, operator_read): those in force,
/// each API channel with the `ETag` the store keeps, as a read answers it.
#[utoipa::path(get, path = "/v1/channels", operation_id = "list_channels", tag = "operator", security(("api_key" = [])),
    params(ListParams),
    responses((status = 200, body = ChannelPage), ApiKeyErrors, E400, E403, E404, E422))]
async fn list_channels(
    State(st): State<AppState>,
    _: Operator,
    QueryParams(q): QueryParams<ListParams>,
) -> Result<Json<ChannelPage>> {
    let (limit, cursor) = q.read()?;
    let stored = look::stored_channel_etags(&st.gateway).await;
    let config = st.gateway.config();
    let in_force = config.channels.iter().map(|(name, c)| Row {
        name: name.clone(),
        source: Source::of_channel(c),
        etag: etag(&c.print),
        updated_at: c.modified,
    });
    let (rows, next_cursor) = listed::<Channels>(&st, in_force, stored, limit, cursor).await?;
    let channels = rows
        .into_iter()
        .map(|r| ChannelItem {
            name: r.name,
            source: r.source,
            etag: r.etag,
            updated_at: r.updated_at,
        })
        .collect();
    Ok(Json(ChannelPage {
        channels,
        next_cursor,
    }))
}

/// A channel as the JSON form of its file, secrets as `{"hmac"}`
/// (operator, operator_read).
#[utoipa::path(get, path = "/v1/channels/{name}", operation_id = "read_channel", tag = "operator", security(("api_key" = [])),
    params(("name" = String, Path, description = "the channel's name")),
    responses((status = 200, body = ChannelForm, headers(("ETag" = String), ("Chatgate-Source" = Source),
            ("Chatgate-Refused" = String, description = "on a stored channel this gateway cannot open a secret of: the secret's pointer and why (it reads as null)"))),
        ApiKeyErrors, E403, E404, E422))]
async fn read_channel(
    State(st): State<AppState>,
    _: Operator,
    PathParam(name): PathParam<String>,
    _: NoQuery,
) -> Result<Response> {
    let config = st.gateway.config();
    let channel = config.channels.get(&name);
    if let Some(file) = channel.filter(|c| !c.api) {
        return Ok(read_back(
            StatusCode::OK,
            &file.form,
            &etag(&file.print),
            Source::File,
        ));
    }
    let in_force = channel.map(|c| (&c.form, etag(&c.print)));
    api_read::<Channels>(&st, &name, in_force).await
}

/// A secret member as a read gives it back, or as a write sends it.
fn secret_member() -> serde_json::Value {
    json!({"oneOf": [
        {"type": "string", "description": "the secret, written (never read back)"},
        {"type": "object", "required": ["hmac"], "additionalProperties": false,
         "properties": {"hmac": {"type": "string", "pattern": "^[0-9a-f]{64}$"}},
         "description": "what a read shows of a secret: HMAC-SHA-256 of its salt and value under a key derived from the first secrets key, the team (or channel) and the member's pointer; written back at that same pointer, it keeps the stored value"}
    ]})
}

/// An object whose members the team file's table of that name defines
/// (docs/configuration.md).
fn table(description: &str) -> serde_json::Value {
    json!({"type": "object", "description": description})
}

/// A team: the JSON form of its team file.
pub struct TeamForm;

impl RawSchema for TeamForm {
    fn json() -> serde_json::Value {
        let secret = secret_member();
        json!({
            "type": "object",
            "description": "A team as the JSON form of its team file (docs/configuration.md#files): the same keys, tables as objects, durations as strings such as \"90s\". Every secret member reads back as `{\"hmac\": \"<64 hex>\"}`.",
            "required": ["id", "login_url"],
            "additionalProperties": false,
            "properties": {
                "id": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"},
                "display_name": {"type": "string", "minLength": 1, "maxLength": 64,
                    "description": "how the gateway's pages name the team to a customer (default: its id)"},
                "login_url": {"type": "string", "format": "uri"},
                "channels": {"type": "array", "items": {"type": "string"}},
                "sms_channel": {"type": "string"},
                "email_channel": {"type": "string"},
                "voice_channel": {"type": "string"},
                "security_keys": {"type": "array", "items": {
                    "type": "object", "required": ["kid", "secret"], "additionalProperties": false,
                    "properties": {"kid": {"type": "string"}, "secret": secret, "primary": {"type": "boolean"}}}},
                "api_keys": {"type": "array", "items": {
                    "type": "object", "required": ["id", "role", "sha256"], "additionalProperties": false,
                    "properties": {"id": {"type": "string"},
                        "role": {"type": "string", "enum": ["bot", "agent", "admin", "auditor"]},
                        "sha256": {"type": "string", "pattern": "^[0-9a-fA-F]{64}$"}}}},
                "webhook": table("where events go: `url`, `secret`"),
                "audit": table("`webhook`: `url`, `secret`"),
                "oidc": table("the team's OpenID Connect provider"),
                "console": table("`require_person`, `sign_in_rate`, `oidc`"),
                "ssf": table("the team's Shared Signals transmitter"),
                "dialogflow": table("`channel`"),
                "number_checks": table("SIM swap and call forwarding checks"),
                "number_verification": table("silent network authentication"),
                "wallet": table("credentials from the customer's wallet (docs/wallet.md#configuration); `signing_key` reads back as `{\"hmac\"}`"),
                "mcp": table("`oauth`: `issuer`, `audience`, `scope` (docs/agents.md#oauth-access-tokens)"),
                "settings": table("overrides of the system's [defaults], same shape"),
                "channel_settings": table("overrides for one channel of the team, by channel name"),
            }
        })
    }
}
raw_schema!(TeamForm);

/// A channel: the JSON form of its channel file.
pub struct ChannelForm;

impl RawSchema for ChannelForm {
    fn json() -> serde_json::Value {
        json!({
            "type": "object",
            "description": "A channel as the JSON form of its channel file (docs/channels.md): `name`, `kind` and the kind's keys. Every secret member (`secret`, `auth_token`, `token`, `app_secret`, `verify_token`, `password`) reads back as `{\"hmac\": \"<64 hex>\"}`.",
            "required": ["name", "kind"],
            "properties": {
                "name": {"type": "string", "pattern": "^[a-z0-9_-]{1,64}$"},
                "kind": {"type": "string"},
            }
        })
    }
}
raw_schema!(ChannelForm);

impl Source {
    /// Where `team` is kept.
    pub fn of(team: &crate::config::Team) -> Source {
        match team.api {
            Some(_) => Source::Api,
            None => Source::File,
        }
    }

    /// Where `channel` is kept.
    pub fn of_channel(channel: &crate::config::ChannelConfig) -> Source {
        match channel.api {
            true => Source::Api,
            false => Source::File,
        }
    }

    fn header(self) -> HeaderValue {
        match self {
            Source::File => HeaderValue::from_static("file"),
            Source::Api => HeaderValue::from_static("api"),
        }
    }
}

/// `form` answered with its `ETag` and `Chatgate-Source`.
pub fn read_back(
    status: StatusCode,
    form: &serde_json::Value,
    etag: &str,
    source: Source,
) -> Response {
    let mut res = Json(form).into_response();
    *res.status_mut() = status;
    let h = res.headers_mut();
    if let Ok(v) = HeaderValue::from_str(etag) {
        h.insert(header::ETAG, v);
    }
    h.insert(SOURCE_HEADER, source.header());
    res
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_team_schema_has_every_member_of_a_team_file() {
        let schema = TeamForm::json();
        let properties = schema["properties"].as_object().unwrap();
        let mut named: Vec<&str> = properties.keys().map(String::as_str).collect();
        let mut members = crate::config::team_file_members();
        assert!(members.len() > 10, "{members:?}");
        named.sort_unstable();
        members.sort_unstable();
        assert_eq!(
            named, members,
            "TeamForm's properties are TeamFile's members"
        );
    }

    #[test]
    fn a_page_starts_after_its_cursor_and_names_the_next() {
        let names: Vec<String> = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
        let items = || names.iter().map(|n| (n, n.clone()));
        assert_eq!(
            page(items(), 2, None),
            (vec!["a".into(), "b".into()], Some("b".into()))
        );
        assert_eq!(page(items(), 2, Some("b")).0, ["c", "d"]);
        assert_eq!(
            page(items(), 2, Some("c")),
            (vec!["d".into(), "e".into()], None)
        );
        assert_eq!(page(items(), 5, None).1, None);
        assert_eq!(page(items(), 2, Some("e")), (Vec::<String>::new(), None));
    }
}
