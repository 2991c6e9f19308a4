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

use super::extract::NoQuery;
use super::openapi::{E422, E503};
use super::AppState;
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
        .draining
        .load(std::sync::atomic::Ordering::Relaxed)
    {
        return super::problem::response(
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "draining",
            "this instance is shutting down and takes no new work",
        );
    }
    match st.gateway.store.ping().await {
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
    let body = match &st.gateway.config.server.metrics_token {
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

/// This document: OpenAPI 3.1 of the whole API.
#[utoipa::path(get, path = "/openapi.json", tag = "operations", security(),
    responses((status = 200, body = Object, content_type = "application/json",
               description = "an OpenAPI 3.1 document"), E422))]
async fn openapi(State(st): State<AppState>, _: NoQuery) -> Response {
    (
        StatusCode::OK,
        [(header::CONTENT_TYPE, "application/json")],
        st.openapi.clone(),
    )
        .into_response()
}
