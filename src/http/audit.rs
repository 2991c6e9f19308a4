//! The audit trail's endpoints (docs/api.md#the-audit-trail): its pages,
//! its signed head and the keys that sign it.

use axum::extract::State;
use serde::Deserialize;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Auditor;
use super::extract::{NoQuery, Now, QueryParams, RequestVia};
use super::json::Json;
use super::openapi::{ApiKeyErrors, E400, E403, E422};
use super::AppState;
use crate::domain::audit_keys::Jwks;
use crate::error::{Error, Result};
use crate::gateway::audit::{AuditPage, SignedHead, MAX_PAGE};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(list))
        .routes(routes!(head))
        .routes(routes!(keys))
}

/// `GET /v1/audit` query parameters.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct AuditParams {
    /// Entries with `seq` greater than this; default 0 (at most 2^63 − 1,
    /// the document's `int64`).
    #[param(value_type = Option<i64>, minimum = 0)]
    after: Option<String>,
    /// Page size, 1 to 1000; default 100.
    #[param(value_type = Option<u32>, minimum = 1, maximum = 1000)]
    limit: Option<String>,
}

/// The team's audit trail, oldest first (auditor, admin).
///
/// The read is itself recorded (`audit.read`), after the page it answers,
/// never in it: page on with `after` = `next` until a page holds fewer
/// than `limit` entries (`limit` at least 2; each read adds one).
#[utoipa::path(get, path = "/v1/audit", operation_id = "read_audit", tag = "audit", security(("api_key" = [])),
    params(AuditParams),
    responses((status = 200, body = AuditPage), ApiKeyErrors, E400, E403, E422))]
async fn list(
    State(st): State<AppState>,
    Now(now): Now,
    auditor: Auditor,
    RequestVia(via): RequestVia,
    QueryParams(q): QueryParams<AuditParams>,
) -> Result<Json<AuditPage>> {
    let after = match q.after.as_deref() {
        None => 0,
        Some(a) => a
            .parse::<i64>()
            .ok()
            .and_then(|n| u64::try_from(n).ok())
            .ok_or_else(|| Error::invalid("after", "must be a whole number, 0 to 2^63 - 1"))?,
    };
    let limit = match q.limit.as_deref() {
        None => 100,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| Error::invalid("limit", "must be 1 to 1000"))?,
    };
    let acting = auditor.acting(&via);
    let team = &auditor.team().keyspace;
    Ok(Json(
        crate::gateway::audit::page(&st.gateway, team, after, limit, &acting, now).await?,
    ))
}

/// The latest entry's `seq` and `hash`, signed (auditor, admin).
#[utoipa::path(get, path = "/v1/audit/head", operation_id = "read_audit_head", tag = "audit", security(("api_key" = [])),
    responses((status = 200, body = SignedHead), ApiKeyErrors, E403, E422))]
async fn head(
    State(st): State<AppState>,
    Now(now): Now,
    auditor: Auditor,
    RequestVia(via): RequestVia,
    _: NoQuery,
) -> Result<Json<SignedHead>> {
    let acting = auditor.acting(&via);
    let team = &auditor.team().keyspace;
    Ok(Json(
        crate::gateway::audit::head(&st.gateway, team, &acting, now).await?,
    ))
}

/// The public keys that sign audit heads, a JWKS; `{"keys": []}` when
/// none is configured.
#[utoipa::path(get, path = "/.well-known/chatgate-audit-keys", operation_id = "audit_keys", tag = "audit", security(),
    responses((status = 200, body = Object, description = "a JWKS: `kty` `OKP`, `crv` `Ed25519`, `kid` (the RFC 7638 thumbprint), `x`"), E422))]
async fn keys(State(st): State<AppState>, _: NoQuery) -> Json<Jwks> {
    Json(st.gateway.config().audit.keys.jwks().clone())
}
