//! The operator API's writes (docs/operator-api.md): the role, the
//! person, the preconditions (428, 412), 409 `managed_by_file` for a team
//! or channel kept in a file; one `PUT` ([`put`]) and one `DELETE`
//! ([`delete`]) over every resource (`gateway::operator::resource`: a
//! team, a channel), each route a one-line handler that carries its
//! OpenAPI annotation; `?dry_run=true` answering as the write would.
use axum::extract::{FromRequest, FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{
    json_bytes, parse_json, JsonBody, NoQuery, Now, PathParam, QueryParams, RequestVia, MAX_BODY,
};
use super::openapi::{
    ApiKeyErrors, ChannelE409, JsonBodyErrors, KeyAddE409, KeyRemoveE409, ManagedE409,
    OperatorActorHeader, OperatorBodyErrors, E403, E404, E412, E422, E428,
};
use super::operator::{etag, is_name, read_back, ChannelForm, Source, TeamForm};
use super::operator_auth::Operator;
use super::AppState;
use crate::config::ConfigPrint;
use crate::domain::audit::{Acting, Actor, Via};
use crate::error::{Error, Result};
use crate::gateway::operator::channels::Channels;
use crate::gateway::operator::forms::{Conditions, Write};
use crate::gateway::operator::keys as operator_keys;
use crate::gateway::operator::resource::Resource;
use crate::gateway::operator::teams::Teams;
use secrecy::ExposeSecret;

/// The largest body of a team or channel.
pub const MAX_OPERATOR_BODY: usize = 1024 * 1024;

/// The writes: a team's or channel's body up to [`MAX_OPERATOR_BODY`],
/// a key endpoint's up to the API's [`MAX_BODY`] (docs/api.md#errors).
pub fn router() -> OpenApiRouter<AppState> {
    let keys = OpenApiRouter::new()
        .routes(routes!(add_api_key))
        .routes(routes!(remove_api_key))
        .routes(routes!(add_security_key))
        .routes(routes!(remove_security_key))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY));
    OpenApiRouter::new()
        .routes(routes!(put_team, delete_team))
        .routes(routes!(put_channel, delete_channel))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_OPERATOR_BODY))
        .merge(keys)
}

/// Whether `path` is one resource's own (`/v1/teams/{id}`,
/// `/v1/channels/{name}`: a prefix of `gateway::operator::resource_paths`,
/// read from its registry), whose body may be up to [`MAX_OPERATOR_BODY`].
pub fn is_resource_path(path: &str) -> bool {
    crate::gateway::operator::resource_paths().any(|prefix| {
        path.strip_prefix(prefix)
            .is_some_and(|rest| !rest.is_empty() && !rest.contains('/'))
    })
}

/// `PUT /v1/teams/{id}` query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct PutParams {
    /// `true`: check everything a write checks and answer as it would,
    /// changing nothing.
    #[param(value_type = Option<bool>)]
    dry_run: Option<String>,
}

impl PutParams {
    fn dry_run(&self) -> Result<bool> {
        match self.dry_run.as_deref() {
            None | Some("false") => Ok(false),
            Some("true") => Ok(true),
            Some(_) => Err(Error::invalid("dry_run", "must be true or false")),
        }
    }
}

/// Creates or replaces a team (operator): 201 created, 200 replaced, the
/// team as a read shows it with its `ETag`; `?dry_run=true` checks
/// everything and answers as the write would, writing nothing.
///
/// A file team's id is 409 `managed_by_file` once the preconditions hold.
#[utoipa::path(put, path = "/v1/teams/{id}", operation_id = "put_team", tag = "operator", security(("api_key" = [])),
    params(("id" = String, Path, description = "the team's id"), PutParams, OperatorActorHeader,
        ("If-Match" = Option<String>, Header, description = "the current ETag: needed to replace (`*` names no version: 428)"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only")),
    request_body(content = TeamForm, description = "the team, as the JSON form of its file"),
    responses((status = 201, body = TeamForm, description = "created (or, for a dry run, would be)", headers(("ETag" = String), ("Chatgate-Source" = Source))),
        (status = 200, body = TeamForm, description = "replaced (or, for a dry run, would be)", headers(("ETag" = String), ("Chatgate-Source" = Source))),
        ManagedE409,
        E412,
        E428,
        ApiKeyErrors, OperatorBodyErrors, E403, E404))]
async fn put_team(asked: Put) -> Result<Response> {
    put::<Teams>(asked).await
}

/// A team's or channel's `PUT` as asked, its parts read in the order a
/// handler's arguments would be (the operator first, then the path,
/// then the query).
struct Put {
    st: AppState,
    operator: Operator,
    name: String,
    dry_run: Result<bool>,
    via: Via,
    now: crate::time::Timestamp,
    headers: HeaderMap,
    req: Request,
}

impl FromRequest<AppState> for Put {
    type Rejection = Error;

    async fn from_request(req: Request, st: &AppState) -> Result<Self> {
        let (mut parts, body) = req.into_parts();
        let operator = Operator::from_request_parts(&mut parts, st).await?;
        let PathParam(name) = PathParam::<String>::from_request_parts(&mut parts, st).await?;
        let QueryParams(q) = QueryParams::<PutParams>::from_request_parts(&mut parts, st).await?;
        let RequestVia(via) = RequestVia::from_request_parts(&mut parts, st).await?;
        let Now(now) = Now::from_request_parts(&mut parts, st).await?;
        let headers = parts.headers.clone();
        Ok(Put {
            st: st.clone(),
            operator,
            name,
            dry_run: q.dry_run(),
            via,
            now,
            headers,
            req: Request::from_parts(parts, body),
        })
    }
}

/// Creates or replaces resource `R` named by the path: a file's is 409
/// `managed_by_file` once the conditions hold, then the body is checked
/// and written (or, for a dry run, only checked); the answer is what a
/// read shows, with its `ETag`, once this instance has it in force.
async fn put<R: Resource>(asked: Put) -> Result<Response> {
    let dry_run = asked.dry_run?;
    let (st, name, headers) = (&asked.st, asked.name.as_str(), &asked.headers);
    not_kept_in_a_file::<R>(R::in_a_file(st.gateway.config(), name), headers, name)?;
    let body = required_body(asked.req, st).await?;
    let write = Write {
        id: name,
        body: &body,
        conditions: conditions(headers),
        dry_run,
        acting: acting(&asked.operator, &asked.via),
    };
    let written = R::write(&st.gateway, write, asked.now).await?;
    if !dry_run {
        in_force(st, written.generation).await;
    }
    let (status, built) = (created_or_replaced(written.created), &written.built);
    let tag = format!("\"{}\"", R::digest(built));
    Ok(read_back(status, &R::form(built), &tag, Source::Api))
}

/// A `PUT`'s JSON body: 400 without one.
async fn required_body(req: Request, st: &AppState) -> Result<serde_json::Value> {
    let bytes = (json_bytes(req, st).await?)
        .ok_or_else(|| Error::BadRequest("a body is required".into()))?;
    parse_json(&bytes)
}

/// How long a write waits for this instance to put it in force.
const APPLY_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

/// Waits until this instance has the API teams of `generation` in force,
/// so that the next request it starts sees the write (at most
/// [`APPLY_WITHIN`]: the store holds the write either way, and the
/// instance puts it in force at its next look).
async fn in_force(st: &AppState, generation: u64) {
    if !st.api_teams.applied(generation, APPLY_WITHIN).await {
        tracing::warn!(
            generation,
            "a team written was not yet put in force on this instance"
        );
    }
}

/// A write to `name` goes ahead for what no file keeps: a file's `R`
/// (`file`, its print) is 409 `managed_by_file` once the request's
/// conditions hold against its `ETag` (428, 412 first); a name none can
/// have is 404.
fn not_kept_in_a_file<R: Resource>(
    file: Option<&ConfigPrint>,
    headers: &HeaderMap,
    name: &str,
) -> Result<()> {
    if let Some(print) = file {
        conditions(headers).hold(Some(&etag(print)))?;
        return Err(Error::ManagedByFile(R::MANAGED));
    }
    match is_name(name) {
        true => Ok(()),
        false => Err(Error::NotFound(R::MISSING)),
    }
}

/// 201 for what a write created, 200 for what it replaced.
fn created_or_replaced(created: bool) -> StatusCode {
    match created {
        true => StatusCode::CREATED,
        false => StatusCode::OK,
    }
}

/// A write's `If-Match` and `If-None-Match`, as sent.
fn conditions(headers: &HeaderMap) -> Conditions {
    let text = |name| (headers.get(name).and_then(|v| v.to_str().ok())).map(str::to_string);
    Conditions {
        if_match: text(axum::http::header::IF_MATCH),
        if_none_match: text(axum::http::header::IF_NONE_MATCH),
    }
}

/// Who writes: the person a `Chatgate-Actor` named, through the operator
/// key, or the key itself.
fn acting(operator: &Operator, via: &Via) -> Acting {
    let actor = match &operator.person {
        Some(p) => Actor::person(&p.sub, p.name.as_deref(), &operator.key_id),
        None => Actor::api_key(&operator.key_id),
    };
    Acting::new(actor, via)
}

/// Deletes a team (operator): 204; a file team's is 409 once `If-Match`
/// holds.
#[utoipa::path(delete, path = "/v1/teams/{id}", operation_id = "delete_team", tag = "operator", security(("api_key" = [])),
    params(("id" = String, Path, description = "the team's id"), OperatorActorHeader,
        ("If-Match" = Option<String>, Header, description = "the current ETag (`*` names no version: 428)")),
    responses((status = 204, description = "deleted"),
        ManagedE409,
        E412,
        E428,
        ApiKeyErrors, E403, E404, E422))]
async fn delete_team(asked: Delete) -> Result<Response> {
    delete::<Teams>(asked).await
}

/// A team's or channel's `DELETE` as asked, its parts read in the order
/// a handler's arguments would be.
struct Delete {
    st: AppState,
    operator: Operator,
    name: String,
    via: Via,
    now: crate::time::Timestamp,
    headers: HeaderMap,
}

impl FromRequestParts<AppState> for Delete {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, st: &AppState) -> Result<Self> {
        let operator = Operator::from_request_parts(parts, st).await?;
        let PathParam(name) = PathParam::<String>::from_request_parts(parts, st).await?;
        NoQuery::from_request_parts(parts, st).await?;
        let RequestVia(via) = RequestVia::from_request_parts(parts, st).await?;
        let Now(now) = Now::from_request_parts(parts, st).await?;
        Ok(Delete {
            st: st.clone(),
            operator,
            name,
            via,
            now,
            headers: parts.headers.clone(),
        })
    }
}

/// Deletes resource `R` named by the path: a file's is 409
/// `managed_by_file` once `If-Match` holds; 204 once this instance has
/// the generation without it in force.
async fn delete<R: Resource>(asked: Delete) -> Result<Response> {
    let (st, name, headers) = (&asked.st, asked.name.as_str(), &asked.headers);
    not_kept_in_a_file::<R>(R::in_a_file(st.gateway.config(), name), headers, name)?;
    let acting = acting(&asked.operator, &asked.via);
    let conditions = conditions(headers);
    let generation = R::delete(&st.gateway, name, &conditions, &acting, asked.now).await?;
    in_force(st, generation).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Creates or replaces a channel (operator): 201 created, 200 replaced,
/// the channel as a read shows it with its `ETag`; `?dry_run=true` checks
/// everything and answers as the write would, writing nothing. Each API
/// team that lists it is built again against it, with its
/// `config.changed` entry.
///
/// A file channel's name is 409 `managed_by_file` once the preconditions
/// hold; a replace that an API team listing the channel cannot be built
/// with is 409 `channel_in_use`.
#[utoipa::path(put, path = "/v1/channels/{name}", operation_id = "put_channel", tag = "operator", security(("api_key" = [])),
    params(("name" = String, Path, description = "the channel's name"), PutParams, OperatorActorHeader,
        ("If-Match" = Option<String>, Header, description = "the current ETag: needed to replace (`*` names no version: 428)"),
        ("If-None-Match" = Option<String>, Header, description = "`*`: create only")),
    request_body(content = ChannelForm, description = "the channel, as the JSON form of its file, its secrets written as themselves"),
    responses((status = 201, body = ChannelForm, description = "created (or, for a dry run, would be)", headers(("ETag" = String), ("Chatgate-Source" = Source))),
        (status = 200, body = ChannelForm, description = "replaced (or, for a dry run, would be)", headers(("ETag" = String), ("Chatgate-Source" = Source))),
        ChannelE409,
        E412,
        E428,
        ApiKeyErrors, OperatorBodyErrors, E403, E404))]
async fn put_channel(asked: Put) -> Result<Response> {
    put::<Channels>(asked).await
}

/// Deletes a channel (operator): 204; a file channel's is 409
/// `managed_by_file` once `If-Match` holds, one that API teams list 409
/// `channel_in_use` naming them.
#[utoipa::path(delete, path = "/v1/channels/{name}", operation_id = "delete_channel", tag = "operator", security(("api_key" = [])),
    params(("name" = String, Path, description = "the channel's name"), OperatorActorHeader,
        ("If-Match" = Option<String>, Header, description = "the current ETag (`*` names no version: 428)")),
    responses((status = 204, description = "deleted"),
        ChannelE409,
        E412,
        E428,
        ApiKeyErrors, E403, E404, E422))]
async fn delete_channel(asked: Delete) -> Result<Response> {
    delete::<Channels>(asked).await
}

/// `POST /v1/teams/{id}/api-keys`: a key for the team, made by the
/// gateway, or by the operator (`sha256`).
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewApiKey {
    /// The key's id in the team: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    id: String,
    /// `bot`, `agent`, `admin` or `auditor`.
    #[schema(value_type = KeyRole)]
    role: String,
    /// Hex SHA-256 of a key the operator made; absent: the gateway makes
    /// one and shows it in this answer only.
    #[schema(pattern = "^[0-9a-fA-F]{64}$", min_length = 64, max_length = 64)]
    sha256: Option<String>,
}

/// A team's API key role.
#[derive(utoipa::ToSchema)]
#[schema(rename_all = "snake_case")]
#[allow(dead_code)] // the schema of `NewApiKey::role`, read as a string
pub enum KeyRole {
    Bot,
    Agent,
    Admin,
    Auditor,
}

/// An API key added: `key` only when the gateway made it, shown in this
/// answer and never again.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct ApiKeyAdded {
    id: String,
    role: String,
    /// The key (`cg_…`), when the gateway made it.
    #[serde(skip_serializing_if = "Option::is_none")]
    key: Option<String>,
}

/// `POST /v1/teams/{id}/security-keys`: a new `whsec_` key for the team.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewSecurityKey {
    /// The key's id: 1 to 64 of `A-Z a-z 0-9 . _ -`.
    #[schema(pattern = "^[A-Za-z0-9._-]{1,64}$", min_length = 1, max_length = 64)]
    kid: String,
    /// `true`: the new key signs from now on (default `false`).
    primary: Option<bool>,
}

/// A security key made: its secret, shown in this answer and never again.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct SecurityKeyAdded {
    kid: String,
    /// `whsec_` and 32 random bytes in base64.
    secret: String,
}

/// A key change of team `id` goes ahead for a team not kept in a file
/// (the store holds it or it is 404); a file team's keys are its file's.
fn not_a_file_team(st: &AppState, id: &str) -> Result<()> {
    match Teams::in_a_file(st.gateway.config(), id) {
        Some(_) => Err(Error::ManagedByFile(Teams::MANAGED)),
        None if !is_name(id) => Err(Error::NotFound("no such team")),
        None => Ok(()),
    }
}

/// The answer of a key change after this instance put it in force.
async fn applied(st: &AppState, generation: Option<u64>) {
    if let Some(generation) = generation {
        in_force(st, generation).await;
    }
}

/// Adds an API key to a team (operator): 201 with the key the gateway
/// made, shown once, or without a key for one the operator made (its
/// `sha256`); 200 when that very key was the team's already.
#[utoipa::path(post, path = "/v1/teams/{id}/api-keys", operation_id = "add_team_api_key", tag = "operator", security(("api_key" = [])),
    params(("id" = String, Path, description = "the team's id"), OperatorActorHeader),
    request_body = NewApiKey,
    responses((status = 201, body = ApiKeyAdded, description = "added"),
        (status = 200, body = ApiKeyAdded, description = "the very same key was the team's already: nothing changed"),
        KeyAddE409,
        ApiKeyErrors, JsonBodyErrors, E403, E404))]
#[allow(clippy::too_many_arguments)]
async fn add_api_key(
    State(st): State<AppState>,
    operator: Operator,
    PathParam(id): PathParam<String>,
    _: NoQuery,
    RequestVia(via): RequestVia,
    Now(now): Now,
    JsonBody { value: body, .. }: JsonBody<NewApiKey>,
) -> Result<Response> {
    not_a_file_team(&st, &id)?;
    let asked = operator_keys::AskedApiKey {
        id: &body.id,
        role: &body.role,
        sha256: body.sha256.as_deref(),
    };
    let acting = acting(&operator, &via);
    let made = operator_keys::add_api_key(&st.gateway, &id, &asked, &acting, now).await?;
    applied(&st, made.generation).await;
    let status = created_or_replaced(made.created);
    let added = ApiKeyAdded {
        id: body.id,
        role: body.role,
        key: made.shown.map(|k| k.expose_secret().to_string()),
    };
    Ok((status, no_store(), axum::Json(added)).into_response())
}

/// Removes an API key of a team (operator): 204; 404 when it has none.
#[utoipa::path(delete, path = "/v1/teams/{id}/api-keys/{key_id}", operation_id = "remove_team_api_key", tag = "operator", security(("api_key" = [])),
    params(("id" = String, Path, description = "the team's id"), ("key_id" = String, Path, description = "the key's id"), OperatorActorHeader),
    responses((status = 204, description = "removed"), ManagedE409,
        ApiKeyErrors, E403, E404, E422))]
async fn remove_api_key(
    State(st): State<AppState>,
    operator: Operator,
    PathParam((id, key)): PathParam<(String, String)>,
    _: NoQuery,
    RequestVia(via): RequestVia,
    Now(now): Now,
) -> Result<Response> {
    not_a_file_team(&st, &id)?;
    let acting = acting(&operator, &via);
    let generation = operator_keys::remove_api_key(&st.gateway, &id, &key, &acting, now).await?;
    applied(&st, generation).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Adds a security key to a team (operator): 201 with its secret, shown
/// once; `primary: true` makes it the key that signs.
#[utoipa::path(post, path = "/v1/teams/{id}/security-keys", operation_id = "add_team_security_key", tag = "operator", security(("api_key" = [])),
    params(("id" = String, Path, description = "the team's id"), OperatorActorHeader),
    request_body = NewSecurityKey,
    responses((status = 201, body = SecurityKeyAdded, description = "added"),
        KeyAddE409,
        ApiKeyErrors, JsonBodyErrors, E403, E404))]
#[allow(clippy::too_many_arguments)]
async fn add_security_key(
    State(st): State<AppState>,
    operator: Operator,
    PathParam(id): PathParam<String>,
    _: NoQuery,
    RequestVia(via): RequestVia,
    Now(now): Now,
    JsonBody { value: body, .. }: JsonBody<NewSecurityKey>,
) -> Result<Response> {
    not_a_file_team(&st, &id)?;
    let acting = acting(&operator, &via);
    let primary = body.primary.unwrap_or(false);
    let made =
        operator_keys::add_security_key(&st.gateway, &id, &body.kid, primary, &acting, now).await?;
    applied(&st, made.generation).await;
    let added = SecurityKeyAdded {
        kid: body.kid,
        secret: (made.shown.map(|k| k.expose_secret().to_string())).unwrap_or_default(),
    };
    Ok((StatusCode::CREATED, no_store(), axum::Json(added)).into_response())
}

/// Removes a security key of a team (operator): 204; 409 `key_in_use`
/// for the primary key or the last.
#[utoipa::path(delete, path = "/v1/teams/{id}/security-keys/{kid}", operation_id = "remove_team_security_key", tag = "operator", security(("api_key" = [])),
    params(("id" = String, Path, description = "the team's id"), ("kid" = String, Path, description = "the key's kid"), OperatorActorHeader),
    responses((status = 204, description = "removed"), KeyRemoveE409,
        ApiKeyErrors, E403, E404, E422))]
async fn remove_security_key(
    State(st): State<AppState>,
    operator: Operator,
    PathParam((id, kid)): PathParam<(String, String)>,
    _: NoQuery,
    RequestVia(via): RequestVia,
    Now(now): Now,
) -> Result<Response> {
    not_a_file_team(&st, &id)?;
    let acting = acting(&operator, &via);
    let generation =
        operator_keys::remove_security_key(&st.gateway, &id, &kid, &acting, now).await?;
    applied(&st, generation).await;
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// `Cache-Control: no-store`: an answer that shows a key once.
fn no_store() -> [(axum::http::HeaderName, &'static str); 1] {
    [(axum::http::header::CACHE_CONTROL, "no-store")]
}
