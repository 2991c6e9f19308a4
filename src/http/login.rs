//! Login links, the login page's callback, short links and back-channel
//! logout (CONTRACT 3.5).
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::Json;
use serde_json::Value;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Caller;
use super::extract::{json_bytes, parse_id, JsonBody, Now, PathParam};
use super::AppState;
use crate::domain::input;
use crate::domain::interaction::Customer;
use crate::error::{Error, Result};
use crate::gateway::{
    Callback, CallbackOutcome, IssuedLink, LinkRequest, ShortLinkTarget, SignatureHeaders,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_link))
        .routes(routes!(callback))
        .routes(routes!(short_link))
        .routes(routes!(customer_logout))
}

/// Issue a signed login link for an interaction.
#[utoipa::path(post, path = "/v1/interactions/{id}/login-links", tag = "login", security(("api_key" = [])),
    params(("id" = String, Path)), request_body = LinkRequest, responses((status = 201, body = IssuedLink)))]
async fn issue_link(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    PathParam(id): PathParam<String>,
    req: Request,
) -> Result<(StatusCode, Json<IssuedLink>)> {
    caller.require_bot()?;
    let team = st.gateway.team(&caller.team)?;
    let id = parse_id(&id, "no such interaction")?;
    let body: LinkRequest = match json_bytes(req, &st).await? {
        Some(bytes) => super::extract::parse_json(&bytes)?,
        None => LinkRequest::default(),
    };
    Ok((
        StatusCode::CREATED,
        Json(st.gateway.issue_link(team, id, body, now).await?),
    ))
}

fn signature_headers(h: &HeaderMap) -> SignatureHeaders<'_> {
    let get = |n: &str| h.get(n).and_then(|v| v.to_str().ok());
    SignatureHeaders {
        id: get("webhook-id"),
        timestamp: get("webhook-timestamp"),
        signature: get("webhook-signature"),
    }
}

/// The body rules, checked before anything else (400 shape, 422 values).
fn parse_callback(v: &Value) -> Result<Callback> {
    let obj = v
        .as_object()
        .ok_or_else(|| Error::BadRequest("the body must be a JSON object".into()))?;
    let token = match obj.get("token") {
        Some(Value::String(s)) => s.clone(),
        Some(_) => return Err(Error::BadRequest("token: must be a string".into())),
        None => return Err(Error::BadRequest("token: required".into())),
    };
    let success = match obj.get("outcome") {
        Some(Value::String(s)) if s == "success" => true,
        Some(Value::String(s)) if s == "failure" => false,
        Some(Value::String(_)) => {
            return Err(Error::invalid("outcome", "must be success or failure"))
        }
        Some(_) => return Err(Error::BadRequest("outcome: must be a string".into())),
        None => return Err(Error::BadRequest("outcome: required".into())),
    };
    let mut customer = Customer::new();
    match obj.get("customer") {
        None | Some(Value::Null) => {}
        Some(Value::Object(members)) => {
            for (k, v) in members {
                input::member_name("customer", k)?;
                let Value::String(s) = v else {
                    return Err(Error::invalid(&format!("customer.{k}"), "must be a string"));
                };
                let (name, value) = input::customer_member("customer", k, s)?;
                customer.insert(name, value);
            }
        }
        Some(_) => return Err(Error::BadRequest("customer: must be an object".into())),
    }
    if success && !customer.contains_key("id") {
        return Err(Error::BadRequest("customer.id: required on success".into()));
    }
    Ok(Callback {
        token,
        success,
        customer,
    })
}

/// The login page posts the login result, signed by Standard Webhooks.
#[utoipa::path(post, path = "/v1/login/callback", tag = "login",
    responses((status = 200, body = CallbackOutcome)))]
async fn callback(
    State(st): State<AppState>,
    Now(now): Now,
    headers: HeaderMap,
    body: JsonBody<Value>,
) -> Result<Json<CallbackOutcome>> {
    let cb = parse_callback(&body.value)?;
    let outcome = st
        .gateway
        .login_callback(cb, signature_headers(&headers), &body.raw, now)
        .await?;
    Ok(Json(outcome))
}

/// Short login link: 302 to the full URL while the token is valid.
#[utoipa::path(get, path = "/l/{code}", tag = "login", params(("code" = String, Path)),
    responses((status = 302, description = "to the login page"), (status = 410, description = "expired"),
              (status = 404, description = "never issued")))]
async fn short_link(
    State(st): State<AppState>,
    Now(now): Now,
    PathParam(code): PathParam<String>,
    headers: HeaderMap,
) -> Result<Response> {
    if code.len() > 128 {
        return Err(Error::NotFound("no such link"));
    }
    match st.gateway.resolve_short_link(&code, now).await? {
        ShortLinkTarget::Redirect(url) => {
            let mut res = Redirect::to(&url).into_response();
            *res.status_mut() = StatusCode::FOUND;
            res.headers_mut().insert(
                header::CACHE_CONTROL,
                header::HeaderValue::from_static("no-store"),
            );
            res.headers_mut().insert(
                header::REFERRER_POLICY,
                header::HeaderValue::from_static("no-referrer"),
            );
            Ok(res)
        }
        ShortLinkTarget::Expired => {
            let wants_html = headers
                .get(header::ACCEPT)
                .and_then(|v| v.to_str().ok())
                .is_some_and(|a| a.contains("text/html"));
            if wants_html {
                let page = "<!doctype html><html><head><meta charset=\"utf-8\"><title>Link expired</title></head>\
                    <body><h1>This sign-in link has expired</h1><p>Please ask in the chat for a new one.</p></body></html>";
                Ok((
                    StatusCode::GONE,
                    [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
                    page,
                )
                    .into_response())
            } else {
                Ok(Error::TokenExpired.into_response())
            }
        }
    }
}

/// A website logs a customer out of every authenticated interaction.
#[utoipa::path(post, path = "/v1/customers/logout", tag = "login",
    responses((status = 200, body = Object, example = json!({"logged_out": 1}))))]
async fn customer_logout(
    State(st): State<AppState>,
    Now(now): Now,
    headers: HeaderMap,
    body: JsonBody<Value>,
) -> Result<Json<Value>> {
    let obj = body
        .value
        .as_object()
        .ok_or_else(|| Error::BadRequest("the body must be a JSON object".into()))?;
    let field = |name: &str| match obj.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Error::BadRequest(format!("{name}: must be a string"))),
        None => Err(Error::BadRequest(format!("{name}: required"))),
    };
    let team = field("team")?;
    let customer_id = input::customer_id("customer_id", &field("customer_id")?)?;
    let n = st
        .gateway
        .logout_customer(
            &team,
            &customer_id,
            signature_headers(&headers),
            &body.raw,
            now,
        )
        .await?;
    Ok(Json(serde_json::json!({ "logged_out": n })))
}
