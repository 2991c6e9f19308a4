//! Operations endpoints: liveness, readiness, Prometheus metrics, OpenAPI.
use super::json::Json;
use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use secrecy::ExposeSecret;
use serde_json::json;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{NoQuery, QueryParams};
use super::openapi::{E400, E422, E503};
use super::{AppState, DocumentVersion};
use crate::error::Error;

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics_text))
        .routes(routes!(openapi))
}

/// `{"status": "ok"}` or `{"status": "ready"}`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)]
pub struct Health {
    status: String,
}

/// 200 while the process runs.
#[utoipa::path(get, path = "/healthz", tag = "operations", security(),
    responses((status = 200, body = Health, example = json!({"status": "ok"})), E422))]
async fn healthz(_: NoQuery) -> Response {
    // A fixed body: probes come often, and building a JSON value to say
    // the same thing each time cost a map and its serialisation.
    (
        [(header::CONTENT_TYPE, "application/json")],
        r#"{"status":"ok"}"#,
    )
        .into_response()
}

/// 200 when the store answers, else 503 (also while shutting down).
#[utoipa::path(get, path = "/readyz", tag = "operations", security(),
    responses((status = 200, body = Health, example = json!({"status": "ready"})), E422, E503))]
async fn readyz(State(st): State<AppState>, _: NoQuery) -> Response {
    if st
        .gateway
        .draining()
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return super::problem::response(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this instance is shutting down and takes no new work",
        );
    }
    match st.gateway.store().ping().await {
        Ok(()) => Json(json!({"status": "ready"})).into_response(),
        Err(e) => Error::from(e).into_response(),
    }
}

/// Prometheus text; names prefixed `chatgate_`. With `server.metrics_token`
/// set, only for `Authorization: Bearer <metrics_token>` (else 401
/// `unauthorized`); without it, public and without the series labelled by
/// team (a team id is not for everyone to list).
#[utoipa::path(get, path = "/metrics", tag = "operations", security((), ("metrics_token" = [])),
    responses((status = 200, body = String, content_type = "text/plain"),
        (status = 401, description = "`unauthorized`: `server.metrics_token` is set and the request does not carry it",
         body = super::problem::Problem, content_type = "application/problem+json"), E422))]
async fn metrics_text(State(st): State<AppState>, headers: HeaderMap, _: NoQuery) -> Response {
    let body = match &st.gateway.config().server.metrics_token {
        Some(token) => {
            if !bearer_is(&headers, token.expose_secret()) {
                return Error::Unauthorized.into_response();
            }
            st.metrics.render()
        }
        None => crate::telemetry::without_team_series(&st.metrics.render()),
    };
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

/// Whether `headers` carry `Authorization: Bearer <token>`, compared in
/// constant time (digests of equal length, so not even the length leaks).
fn bearer_is(headers: &HeaderMap, token: &str) -> bool {
    let given = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
        .map_or("", |(_, t)| t.trim());
    let digest = |s: &str| Sha256::digest(s.as_bytes());
    !given.is_empty() && bool::from(digest(given).ct_eq(&digest(token)))
}

/// `GET /openapi.json` query parameters.
#[derive(Debug, serde::Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct DocumentParams {
    /// `3.1` (the default), or the same API as OpenAPI `3.0` (3.0.3) or
    /// Swagger `2.0`, for bot platforms and client generators; any other
    /// value is 422.
    #[param(value_type = Option<String>, pattern = "^(3\\.1|3\\.0|2\\.0)$")]
    version: Option<String>,
}

/// This document: OpenAPI 3.1 of the whole API, or the same API as
/// OpenAPI 3.0 or Swagger 2.0 (docs/api.md#the-openapi-documents).
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(),
    params(DocumentParams),
    responses((status = 200, body = Object, content_type = "application/json",
               description = "an OpenAPI 3.1, OpenAPI 3.0.3 or Swagger 2.0 document"), E400, E422))]
async fn openapi(
    State(st): State<AppState>,
    QueryParams(q): QueryParams<DocumentParams>,
) -> Result<Response, Error> {
    let version = match q.version.as_deref() {
        None => DocumentVersion::V3_1,
        Some(v) => DocumentVersion::parse(v)
            .ok_or_else(|| Error::invalid("version", "is not one of 3.1, 3.0 and 2.0"))?,
    };
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        st.openapi.get(version),
    )
        .into_response())
}
