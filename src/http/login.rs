//! Login links, the login page's callback, short links and back-channel
//! logout (docs/api.md#the-login-callback); a provider's short link leads
//! to the hosted login, its own page (`login/oidc.rs`).
use super::json::Json;
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::Bot;
use super::extract::{
    json_bytes, only_members, parse_json, InteractionId, JsonBody, NoQuery, Now, PathParam,
    RequestVia,
};
use super::openapi::{
    raw_schema, ApiKeyErrors, CallbackE409, CallbackE410, JsonBodyErrors, RawSchema, E401, E403,
    E404, E423, E503,
};
use super::pages::{self, Said};
use super::AppState;
use crate::domain::input;
use crate::domain::interaction::Customer;
use crate::domain::locale::LocaleTag;
use crate::domain::settings::TextKey;
use crate::error::{Error, Result};
use crate::gateway::{
    Callback, CallbackOutcome, IssuedLink, LinkProvider, LinkRequest, ShortLinkTarget,
    SignatureHeaders,
};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(issue_link))
        .routes(routes!(callback))
        .routes(routes!(short_link))
        .routes(routes!(customer_logout))
        .merge(oidc::router())
}

mod oidc;

/// `mid_chat` (default) or `pre_chat`.
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum Stage {
    MidChat,
    PreChat,
}

/// `login_page` (default: the team's login page posts the signed callback)
/// or `oidc` (the team's identity provider; the team needs `[oidc]`).
#[derive(utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
#[allow(dead_code)]
pub enum Provider {
    LoginPage,
    Oidc,
}

/// `POST /v1/interactions/{id}/login-links` body; every member optional.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = NewLoginLink)]
pub struct LinkBody {
    #[schema(value_type = Option<Stage>)]
    pub stage: Option<String>,
    /// What the login is for; carried in the token.
    #[schema(value_type = Option<super::openapi::DisplayText>)]
    pub scope: Option<String>,
    /// The customer id the login must prove, else 403 `customer_mismatch`.
    #[schema(value_type = Option<super::openapi::CustomerIdText>)]
    pub expected_customer: Option<String>,
    /// Send the `login_link` template into the chat (default false).
    pub deliver: Option<bool>,
    /// Who runs the login; `oidc` answers `token: null` and both URLs short.
    #[schema(value_type = Option<Provider>)]
    pub provider: Option<String>,
    /// The language of the conversation from now on, this link's message
    /// and token included (docs/api.md#languages).
    #[schema(value_type = Option<super::openapi::LocaleText>)]
    pub locale: Option<String>,
    /// With `provider` `oidc`: the `acr_values` sent to the identity
    /// provider for this link instead of the team's, 1 to 5 values of 1 to
    /// 128 visible ASCII characters (a passkey's, say `phrh`); the ID
    /// token's `acr` must then be one of them. With `login_page`: 422.
    #[schema(min_items = 1, max_items = 5, example = json!(["phrh"]))]
    pub acr_values: Option<Vec<String>>,
}

impl TryFrom<LinkBody> for LinkRequest {
    type Error = Error;
    fn try_from(b: LinkBody) -> Result<Self> {
        let provider = match b.provider.as_deref() {
            None | Some("login_page") => LinkProvider::LoginPage,
            Some("oidc") => LinkProvider::Oidc,
            Some(_) => return Err(Error::invalid("provider", "must be login_page or oidc")),
        };
        Ok(LinkRequest {
            stage: b.stage,
            scope: b.scope,
            expected_customer: b.expected_customer,
            deliver: b.deliver,
            provider,
            locale: b.locale.as_deref().map(LocaleTag::requested).transpose()?,
            acr_values: b.acr_values,
        })
    }
}

/// Issue a signed login link for an interaction.
///
/// With `deliver: true` into a conversation that reaches a phone number
/// (a Twilio or WhatsApp channel), the team's `otp.sms_regions` and
/// `otp.sms_number_types` apply: outside them 403 `forbidden`, a number
/// that is not a valid one where they apply 422; no link is issued.
#[utoipa::path(post, path = "/v1/interactions/{id}/login-links", tag = "login", security(("api_key" = [])),
    params(("id" = Uuid, Path)), request_body(content = Option<LinkBody>, description = "optional"),
    responses((status = 201, body = IssuedLink), ApiKeyErrors, E403, E404, JsonBodyErrors))]
async fn issue_link(
    State(st): State<AppState>,
    Now(now): Now,
    bot: Bot,
    _: NoQuery,
    InteractionId(id): InteractionId,
    req: Request,
) -> Result<(StatusCode, Json<IssuedLink>)> {
    let body: LinkBody = match json_bytes(req, &st).await? {
        Some(bytes) => parse_json(&bytes)?,
        None => LinkBody::default(),
    };
    let body = LinkRequest::try_from(body)?;
    Ok((
        StatusCode::CREATED,
        Json(crate::gateway::login::issue_link(&st.gateway, bot.team(), id, body, now).await?),
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
    only_members(obj, &["token", "outcome", "customer"])?;
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

/// The login page's callback body (docs/api.md#the-login-callback). Parsed by hand
/// ([`parse_callback`]) so each rule answers its own status; this type
/// states the same rules for the document: `customer.id` is required on
/// `success`, other `customer` members are kept strings.
pub struct LoginCallback;

impl RawSchema for LoginCallback {
    fn json() -> Value {
        let customer = |required: bool| {
            let mut c = json!({
                "type": "object",
                "description": "The proven customer; members other than `id` are kept as the interaction's `customer`.",
                "properties": {"id": {"$ref": "#/components/schemas/CustomerIdText"}},
                "propertyNames": {"pattern": "^[A-Za-z0-9_.-]{1,64}$"},
                "additionalProperties": {"$ref": "#/components/schemas/DisplayText"},
            });
            if required {
                c["required"] = json!(["id"]);
            }
            c
        };
        let token = json!({"type": "string", "description": "The login token from the link."});
        json!({
            "description": "The login result, posted server to server by the login page.",
            "oneOf": [
                {"title": "success", "type": "object", "additionalProperties": false,
                 "required": ["token", "outcome", "customer"],
                 "properties": {"token": token, "outcome": {"const": "success"}, "customer": customer(true)}},
                {"title": "failure", "type": "object", "additionalProperties": false,
                 "required": ["token", "outcome"],
                 "properties": {"token": token, "outcome": {"const": "failure"},
                                "customer": {"oneOf": [{"type": "null"}, customer(false)]}}}
            ]
        })
    }
}
raw_schema!(LoginCallback);

/// The callback's answer for the document: [`CallbackOutcome`] as
/// serialized, with `authenticated` fixed per variant so that exactly one
/// variant matches an answer (the derived schema let a binding answer match
/// the bare `{"authenticated": false}` one too).
pub struct CallbackOutcomeSchema;

impl RawSchema for CallbackOutcomeSchema {
    fn json() -> Value {
        let id = json!({"type": "string", "format": "uuid"});
        let at = json!({"$ref": "#/components/schemas/Timestamp"});
        json!({
            "description": "The login's result. `authenticated: true` with the interaction's new `expires_at`; \
                with `login_binding = \"chat_code\"` a `binding_code` to show the customer instead; \
                for `outcome: failure` just `authenticated: false`.",
            "oneOf": [
                {"title": "authenticated", "type": "object", "additionalProperties": false,
                 "required": ["interaction_id", "authenticated", "expires_at"],
                 "properties": {"interaction_id": id, "authenticated": {"const": true},
                                "expires_at": {"oneOf": [{"type": "null"}, at]}}},
                {"title": "waiting for the binding code", "type": "object", "additionalProperties": false,
                 "required": ["interaction_id", "authenticated", "binding_code", "binding_expires_at"],
                 "properties": {"interaction_id": id, "authenticated": {"const": false},
                                "binding_code": {"type": "string", "pattern": "^[0-9]{1,20}$",
                                                 "description": "Show it to the customer: they type it into the chat."},
                                "binding_expires_at": at}},
                {"title": "failure", "type": "object", "additionalProperties": false,
                 "required": ["authenticated"],
                 "properties": {"authenticated": {"const": false}}}
            ]
        })
    }
}

/// The login page posts the login result, signed by Standard Webhooks.
///
/// Checked in order: the body (400/422, nothing used up), the token (401
/// `invalid_token`, 410 `token_expired`), the signature (401
/// `invalid_signature`), one-time use (409 `token_used`), the subject's lock
/// (423 `locked`, 403 `banned`), `expected_customer` (403 `customer_mismatch`).
///
/// A retry of the request that used the token (the same `webhook-id` and the
/// same body) gets the first answer again; for a login waiting for its
/// binding code, that code while its binding is open, else 410
/// `challenge_expired`. The same `webhook-id` with another body is 409
/// `token_used`.
#[utoipa::path(post, path = "/v1/login/callback", operation_id = "login_callback", tag = "login", security(),
    params(SignedHeaders), request_body = LoginCallback,
    responses((status = 200, body = CallbackOutcome), E401, E403, E404, CallbackE409, CallbackE410, E423, E503,
              JsonBodyErrors))]
async fn callback(
    State(st): State<AppState>,
    Now(now): Now,
    _: NoQuery,
    headers: HeaderMap,
    body: JsonBody<Value>,
) -> Result<Json<CallbackOutcome>> {
    let cb = parse_callback(&body.value)?;
    let outcome = crate::gateway::login::login_callback(
        &st.gateway,
        cb,
        signature_headers(&headers),
        &body.raw,
        now,
    )
    .await?;
    Ok(Json(outcome))
}

/// Short login link: 302 to the full URL while the token is valid.
///
/// Fetching it never uses the link up. Query parameters are ignored here
/// (chat apps and link trackers decorate links). A browser (`Accept` naming
/// `text/html`) gets every other answer as a page in its visitor's words;
/// other clients get problem+json.
#[utoipa::path(get, path = "/l/{code}", tag = "login", security(),
    params(("code" = String, Path, max_length = 128, description = "the code of a short URL")),
    responses(
        (status = 302, description = "to the login page; for an `oidc` link, to the team's identity provider \
         (with `state`, `nonce` and a PKCE S256 challenge) and a cookie tying that state to this browser",
         headers(("Location" = String, description = "the full login URL, or the provider's authorization request"),
                 ("Set-Cookie" = String, description = "`oidc` links only: HttpOnly, SameSite=Lax, Path=/oidc/"))),
        (status = 404, description = "`not_found`: a code that was never issued (a page \"We don't know this link\" when `text/html` is accepted)",
         content((super::problem::Problem = "application/problem+json"), (String = "text/html"))),
        (status = 410, description = "`token_expired`: the link has expired or was already used (a page saying which when `text/html` is accepted)",
         content((super::problem::Problem = "application/problem+json"), (String = "text/html"))),
        (status = 502, description = "`oidc` links: the identity provider cannot be reached (a page)",
         content((String = "text/html"))),
        (status = 503, description = "`store_unavailable`: the link cannot be checked now (a page when `text/html` is accepted); \
         `oidc` links: 32 requests of the team, or a quarter of `max_connections` of all teams, wait on identity providers (a page, `Retry-After`)",
         content((super::problem::Problem = "application/problem+json"), (String = "text/html")))))]
async fn short_link(
    State(st): State<AppState>,
    Now(now): Now,
    code: std::result::Result<PathParam<String>, Error>,
    headers: HeaderMap,
) -> Response {
    let target = match code {
        Ok(PathParam(code)) if code.len() <= 128 => {
            crate::gateway::login::resolve_short_link(&st.gateway, &code, now).await
        }
        _ => Err(Error::NotFound("no such link")),
    };
    let html = pages::wants_html(&headers);
    let config = st.gateway.config();
    match target {
        Ok(ShortLinkTarget::Provider(link)) => oidc::start(&st, link, &headers, now).await,
        Ok(ShortLinkTarget::Redirect(url)) => {
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
            res
        }
        Ok(ShortLinkTarget::Expired(speaks)) if html => {
            let said = Said::of(config, speaks.as_ref(), &headers, TextKey::PageLinkExpired);
            pages::render_said(StatusCode::GONE, &said, None)
        }
        Ok(ShortLinkTarget::Used(speaks)) if html => {
            let said = Said::of(config, Some(&speaks), &headers, TextKey::PageLinkUsed);
            pages::render_said(StatusCode::GONE, &said, None)
        }
        Ok(ShortLinkTarget::Expired(_)) => Error::TokenExpired.into_response(),
        Ok(ShortLinkTarget::Used(_)) => super::problem::response(
            StatusCode::GONE,
            "token_expired",
            "the link was already used; ask for a new one",
        ),
        Err(e) if html => {
            // The error's own answer gives the status, logs an internal
            // error and labels the request's log line; the visitor gets a
            // page: an unknown link, or (the store, or a bug) try again.
            let problem = e.into_response();
            let key = if problem.status() == StatusCode::NOT_FOUND {
                TextKey::PageLinkUnknown
            } else {
                TextKey::PageTryAgain
            };
            let said = Said::of(config, None, &headers, key);
            let mut res = pages::render_said(problem.status(), &said, None);
            *res.status_mut() = problem.status();
            if let Some(label) = problem.extensions().get::<super::ProblemLabel>() {
                res.extensions_mut().insert(*label);
            }
            res
        }
        Err(e) => e.into_response(),
    }
}

/// The Standard Webhooks headers of a signed request.
#[derive(utoipa::IntoParams)]
#[into_params(parameter_in = Header)]
#[allow(dead_code)]
pub struct SignedHeaders {
    /// Unique id of this message.
    #[param(rename = "webhook-id")]
    webhook_id: String,
    /// Unix seconds; within ±5 minutes of the gateway's clock.
    #[param(rename = "webhook-timestamp")]
    webhook_timestamp: String,
    /// Space-separated `v1,<base64 HMAC-SHA256 of "id.timestamp.body">`, with one of the team's security keys.
    #[param(rename = "webhook-signature")]
    webhook_signature: String,
}

/// `POST /v1/customers/logout` body.
#[derive(utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
pub struct CustomerLogout {
    /// The team id.
    team: String,
    /// The customer whose authenticated interactions end (`customer.id` or `customer_ref`).
    #[schema(value_type = super::openapi::CustomerIdText)]
    customer_id: String,
}

/// How many interactions a back-channel logout ended.
#[derive(Serialize, utoipa::ToSchema)]
pub struct LoggedOut {
    #[schema(minimum = 0)]
    logged_out: usize,
}

/// A website logs a customer out of every authenticated interaction.
///
/// The body is checked first (400/422), then the signature: an unknown team
/// is 401 `invalid_signature`, like a wrong key.
#[utoipa::path(post, path = "/v1/customers/logout", tag = "login", security(),
    params(SignedHeaders), request_body = CustomerLogout,
    responses((status = 200, body = LoggedOut), E401, E503, JsonBodyErrors))]
async fn customer_logout(
    State(st): State<AppState>,
    Now(now): Now,
    _: NoQuery,
    RequestVia(via): RequestVia,
    headers: HeaderMap,
    body: JsonBody<Value>,
) -> Result<Json<LoggedOut>> {
    let obj = body
        .value
        .as_object()
        .ok_or_else(|| Error::BadRequest("the body must be a JSON object".into()))?;
    only_members(obj, &["team", "customer_id"])?;
    let field = |name: &str| match obj.get(name) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(_) => Err(Error::BadRequest(format!("{name}: must be a string"))),
        None => Err(Error::BadRequest(format!("{name}: required"))),
    };
    let team = field("team")?;
    let customer_id = input::customer_id("customer_id", &field("customer_id")?)?;
    let n = crate::gateway::website::logout_customer(
        &st.gateway,
        &team,
        &customer_id,
        signature_headers(&headers),
        &body.raw,
        &via,
        now,
    )
    .await?;
    Ok(Json(LoggedOut { logged_out: n }))
}
