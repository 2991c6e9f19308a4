//! The identity provider's revocation receivers
//! (docs/api.md#revocation-from-the-identity-provider), each answering in
//! its own specification's format rather than problem+json:
//! `POST /oidc/backchannel-logout/{team}` (OpenID Connect Back-Channel
//! Logout 1.0) and `POST /ssf/{team}/events` (RFC 8935 push of RFC 8417
//! Security Event Tokens).
use super::team_gate::Full;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::extract::{Now, PathParam, RequestVia};
use super::openapi::{E404, E413};
use super::AppState;
use crate::error::Error;
use crate::gateway::{LogoutRefusal, SsfRefusal};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(backchannel_logout))
        .routes(routes!(ssf_events))
}

/// `Cache-Control: no-store` on every answer: none may be cached.
fn no_store(mut res: Response) -> Response {
    res.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    res
}

/// A JSON error object of a receiver's specification.
fn spec_error(status: StatusCode, body: serde_json::Value) -> Response {
    no_store((status, axum::Json(body)).into_response())
}

/// The `logout_token` of a form body; `None` when the body is not a form,
/// has none, or has it twice.
fn logout_token(headers: &HeaderMap, body: &[u8]) -> Option<String> {
    let form = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| {
            v.trim()
                .eq_ignore_ascii_case("application/x-www-form-urlencoded")
        });
    if !form {
        return None;
    }
    let mut tokens = url::form_urlencoded::parse(body)
        .filter(|(k, _)| k == "logout_token")
        .map(|(_, v)| v.into_owned());
    let token = tokens.next()?;
    tokens.next().is_none().then_some(token)
}

/// The identity provider logs a session (`sid`) or a customer (`sub`) out.
///
/// Served when the team's `[oidc]` says `backchannel_logout = true`; the
/// provider posts the form field `logout_token`. The token is checked as an
/// ID token is (signature by the provider's key set, `iss`, `aud`, `azp`),
/// then: `iat` not older than 5 minutes nor more than 60 s ahead, `jti` not
/// seen before, the back-channel logout member in `events`, `sub` or `sid`,
/// no `nonce`. A `sid` logs out the interactions hosted logins of that
/// session authenticated; a `sub` alone every interaction of the customer.
/// Answers 200 (no body, `Cache-Control: no-store`); 400
/// `{"error": "invalid_request", "error_description"}` for a token that
/// fails (nothing changes); 404 for a team that does not serve it; 503
/// when the provider's key set or the store cannot be reached (the
/// provider may retry).
#[utoipa::path(post, path = "/oidc/backchannel-logout/{team}", operation_id = "oidc_backchannel_logout", tag = "login", security(),
    params(("team" = String, Path, description = "the team whose provider sends the logout")),
    request_body(content_type = "application/x-www-form-urlencoded", content = LogoutForm),
    responses(
        (status = 200, description = "logged out (also when no interaction was concerned)"),
        (status = 400, description = "the logout token failed a check; nothing changed", content_type = "application/json", body = OidcLogoutError),
        E404,
        E413,
        (status = 503, description = "the provider's key set or the store cannot be reached, or 32 requests of this team are in flight (`Retry-After`); nothing changed", content_type = "application/json", body = OidcLogoutError)))]
async fn backchannel_logout(
    State(st): State<AppState>,
    Now(now): Now,
    PathParam(team): PathParam<String>,
    RequestVia(via): RequestVia,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Ok(_place) = st.team_gates.enter(st.gateway.config(), &team) else {
        return Full::answer(spec_error(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily_unavailable", "error_description": "too many requests for this team at once; try again shortly"}),
        ));
    };
    let token = logout_token(&headers, &body);
    let token = token.as_deref();
    match crate::gateway::oidc_logout::backchannel_logout(&st.gateway, &team, token, &via, now)
        .await
    {
        Ok(_) => no_store(StatusCode::OK.into_response()),
        Err(LogoutRefusal::NotServed) => {
            no_store(Error::NotFound("no back-channel logout for this team").into_response())
        }
        Err(LogoutRefusal::Invalid(why)) => spec_error(
            StatusCode::BAD_REQUEST,
            json!({"error": "invalid_request", "error_description": why}),
        ),
        Err(LogoutRefusal::Provider(_)) => spec_error(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"error": "temporarily_unavailable", "error_description": "the identity provider's key set cannot be fetched"}),
        ),
        Err(LogoutRefusal::Store(e)) => {
            tracing::warn!(error = %e, "back-channel logout: the store failed");
            spec_error(
                StatusCode::SERVICE_UNAVAILABLE,
                json!({"error": "temporarily_unavailable", "error_description": "the store cannot be reached"}),
            )
        }
    }
}

/// The back-channel logout's form body.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct LogoutForm {
    /// The logout token (a JWT signed by the provider).
    logout_token: String,
}

/// The logout specification's error object.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct OidcLogoutError {
    /// `invalid_request` (400) or `temporarily_unavailable` (503).
    error: String,
    /// What failed, in words (never the token).
    error_description: String,
}

/// Whether the request declares `application/secevent+jwt`.
fn secevent(headers: &HeaderMap) -> bool {
    headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("application/secevent+jwt"))
}

/// The team's Shared Signals transmitter pushes a Security Event Token.
///
/// RFC 8935 push: the body is the token, `Content-Type:
/// application/secevent+jwt`, signed RS256, PS256 or ES256 by a key of the
/// `[ssf]` `jwks_uri`; `iss` is `issuer`, `aud` contains `audience`, `iat`
/// not more than 60 s ahead. `session-revoked`, and `credential-change`
/// with `on_credential_change = "logout"`, log the subject (`sub_id`, else
/// the event's `subject`; format `iss_sub` or `opaque`) out everywhere.
/// Answers 202 (no body), also for a `jti` seen in the last 24 hours (which
/// does nothing) and for events that change nothing; 400 with RFC 8935's
/// `{"err", "description"}` (nothing changes); 404 for a team without
/// `[ssf]`; 503 when the key set or the store cannot be reached.
#[utoipa::path(post, path = "/ssf/{team}/events", operation_id = "ssf_events", tag = "login", security(),
    params(("team" = String, Path, description = "the team whose transmitter pushes")),
    request_body(content_type = "application/secevent+jwt", content = String, description = "the Security Event Token"),
    responses(
        (status = 202, description = "accepted (a replay or an event that changes nothing too)"),
        (status = 400, description = "refused; nothing changed", content_type = "application/json", body = SsfError),
        E404,
        E413,
        (status = 503, description = "the transmitter's key set or the store cannot be reached, or 32 requests of this team are in flight (`Retry-After`); nothing changed", content_type = "application/json", body = SsfError)))]
async fn ssf_events(
    State(st): State<AppState>,
    Now(now): Now,
    PathParam(team): PathParam<String>,
    RequestVia(via): RequestVia,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let unavailable = |what: &str| {
        spec_error(
            StatusCode::SERVICE_UNAVAILABLE,
            json!({"err": "temporarily_unavailable", "description": what}),
        )
    };
    let Ok(_place) = st.team_gates.enter(st.gateway.config(), &team) else {
        return Full::answer(unavailable(
            "too many requests for this team at once; try again shortly",
        ));
    };
    let set = (secevent(&headers), &body[..]);
    match crate::gateway::ssf::ssf_event(&st.gateway, &team, set, &via, now).await {
        Ok(()) => no_store(StatusCode::ACCEPTED.into_response()),
        Err(SsfRefusal::NotServed) => {
            no_store(Error::NotFound("no Shared Signals receiver for this team").into_response())
        }
        Err(SsfRefusal::Invalid(e)) => spec_error(
            StatusCode::BAD_REQUEST,
            json!({"err": e.code(), "description": e.description()}),
        ),
        Err(SsfRefusal::Provider(_)) => unavailable("the transmitter's key set cannot be fetched"),
        Err(SsfRefusal::Store(e)) => {
            tracing::warn!(error = %e, "Shared Signals event: the store failed");
            unavailable("the store cannot be reached")
        }
    }
}

/// RFC 8935's error object.
#[derive(utoipa::ToSchema)]
#[allow(dead_code)]
struct SsfError {
    /// `invalid_request`, `invalid_key`, `invalid_issuer` or
    /// `invalid_audience` (400); `temporarily_unavailable` (503).
    err: String,
    /// What failed, in words (never the token).
    description: String,
}
