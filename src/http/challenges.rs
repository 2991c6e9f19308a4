//! OTP and session-PIN challenges (docs/api.md#challenges-otp-and-session-pin).
use super::json::Json;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::json;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use super::auth::{Acting, Agent, Bot, Caller};
use super::extract::{empty_body, ChallengeIds, InteractionId, JsonBody, NoQuery, Now};
use super::openapi::{
    raw_schema, ActorHeader, ApiKeyErrors, EmptyBody, JsonBodyErrors, RawSchema, E403, E404, E409,
    E410, E422, E423, E429, E502,
};
use super::AppState;
use crate::domain::audit_keys::Jwks;
use crate::domain::challenge::{one_of, ChallengeMethod as M};
use crate::domain::locale::LocaleTag;
use crate::domain::start_challenge::{Addressee, ChallengeRequest, Deliveries, RequestForm};
use crate::domain::transaction::Transaction;
use crate::error::Result;
use crate::gateway::{self, ChallengeView, RevealedCode, StartedChallenge, Verified};

pub fn router() -> OpenApiRouter<AppState> {
    OpenApiRouter::new()
        .routes(routes!(start))
        .routes(routes!(verify))
        .routes(routes!(read))
        .routes(routes!(reveal))
        .routes(routes!(advance))
        .routes(routes!(approval_keys))
}

/// The public keys that sign payment approval tokens
/// (docs/api.md#get-well-knownchatgate-approval-keys), a JWKS; `{"keys": []}`
/// without `[approvals] signing_key`.
#[utoipa::path(get, path = "/.well-known/chatgate-approval-keys", operation_id = "approval_keys", tag = "challenges", security(),
    responses((status = 200, body = Object, description = "a JWKS: `kty` `OKP`, `crv` `Ed25519`, `kid` (the RFC 7638 thumbprint), `x`; the signing key's first, then `[approvals] previous_signing_keys`"), E422))]
async fn approval_keys(State(st): State<AppState>, _: NoQuery) -> Json<Jwks> {
    Json(st.gateway.config().approvals.keys.jwks().clone())
}

/// `POST /v1/interactions/{id}/challenges` body (docs/api.md#challenges-otp-and-session-pin).
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewChallenge {
    pub method: String,
    pub delivery: Option<String>,
    pub to: Option<String>,
    pub locale: Option<String>,
    /// The payment the code approves (docs/api.md#approving-one-payment),
    /// read member by member by the domain.
    pub transaction: Option<serde_json::Value>,
    /// `"page"`: the code or PIN is typed on the gateway's page
    /// (docs/api.md#codes-typed-on-the-gateways-page); `"chat"` (default).
    pub entry: Option<String>,
    /// A wallet challenge's credential, one of the team's `[wallet]
    /// credentials` ids, or an array of 1 to 4 of them of which the
    /// customer presents any one (docs/wallet.md#asking).
    pub credential: Option<serde_json::Value>,
    /// A wallet challenge's expected claims: name → value.
    #[serde(rename = "match")]
    pub expected: Option<serde_json::Value>,
    /// `true`: register the customer's `sca` attestation for payments
    /// (docs/wallet.md#registering-the-wallet-for-payments).
    pub register: Option<bool>,
}

impl NewChallenge {
    /// The domain's request: 422 for a method, delivery or `to` it does
    /// not name, or that do not go together, and for a `locale` that is
    /// not a BCP 47 tag.
    pub(super) fn parse(&self) -> Result<ChallengeRequest> {
        let mut req = ChallengeRequest::parse_entered(
            &self.method,
            self.delivery.as_deref(),
            self.to.as_deref(),
            self.entry.as_deref(),
        )?;
        req.locale = self
            .locale
            .as_deref()
            .map(LocaleTag::requested)
            .transpose()?;
        let transaction = self
            .transaction
            .as_ref()
            .filter(|t| !t.is_null())
            .map(|t| Transaction::parse("transaction", t))
            .transpose()?;
        req.for_transaction(transaction)?
            .for_wallet(self.credential.as_ref(), self.expected.as_ref())?
            .registering(self.register.unwrap_or(false))
    }
}

/// The rules of [`NewChallenge`] for the document: which `delivery` goes
/// with which `method`, and `to` only for `sms` (a phone number) or `email`,
/// each method's forms and sentence its own (`ChallengeMethod::request_doc`),
/// taken in the order of `ChallengeMethod::STARTABLE`: a method added is in
/// the document with no line here.
/// The variants exclude each other (by `method`, and by `delivery`, which
/// the first and last leave optional), so `anyOf` means what `oneOf` would;
/// it is `anyOf` because linters cannot see exclusion by an optional member
/// (redocly's `no-illogical-composition-keywords`).
impl RawSchema for NewChallenge {
    fn json() -> serde_json::Value {
        let methods = M::STARTABLE;
        let ticked = |m: M| format!("`{}`", m.as_str());
        let prose: Vec<&str> = methods.iter().map(|m| m.request_doc().prose).collect();
        let paying: Vec<M> = methods
            .into_iter()
            .filter(|m| m.approves_payment())
            .collect();
        let description = format!(
            "`method` {}. {} `transaction` (with {}) names the one payment the code or approval \
             is for (docs/api.md#approving-one-payment). {ENTRY}",
            one_of(&methods, ticked),
            prose.join(" "),
            one_of(&paying, ticked),
        );
        let variants: Vec<serde_json::Value> = methods
            .into_iter()
            .flat_map(|m| m.request_doc().forms.iter().map(move |f| variant(m, f)))
            .collect();
        json!({"description": description, "anyOf": variants})
    }
}

/// The last sentence of [`NewChallenge`]'s description: a code typed on
/// the gateway's page.
const ENTRY: &str = "`entry` `page` (default `chat`), for an `otp` whose code does not go into \
    the chat (`sms`, `email`, `voice`, `ladder`, `agent`) or a `pin`: the customer types it on \
    the gateway's page `/c/{code}`, reached by a link the gateway sends into the conversation \
    after the code (docs/api.md#codes-typed-on-the-gateways-page); `verify` of such a challenge \
    is 409 `entry_page`. With a code into the chat or another method it is 422.";

/// One variant of [`NewChallenge`]'s `anyOf`: `form` of method `m`. A
/// method that approves no payment takes no `transaction`; one that takes
/// no code is never typed on the page (`entry` `chat` alone).
fn variant(m: M, form: &RequestForm) -> serde_json::Value {
    let null = json!({"type": "null"});
    let or_null = |schema: &str| json!({"oneOf": [{"type": "null"}, {"$ref": format!("#/components/schemas/{schema}")}]});
    let (delivery, required) = match form.delivery {
        Deliveries::None => (null.clone(), json!(["method"])),
        Deliveries::Optional(named) => {
            let mut named: Vec<_> = named.iter().map(|d| json!(d.as_str())).collect();
            named.push(serde_json::Value::Null);
            (json!({ "enum": named }), json!(["method"]))
        }
        Deliveries::Required(d) => (json!({"const": d.as_str()}), json!(["method", "delivery"])),
    };
    let to = match form.to {
        Some(Addressee::Phone) => or_null("PhoneText"),
        Some(Addressee::Email) => or_null("EmailText"),
        None => null.clone(),
    };
    let transaction = if m.approves_payment() {
        or_null("Transaction")
    } else {
        null
    };
    let entry = if m.takes_code() {
        json!({"enum": ["chat", "page", null]})
    } else {
        json!({"enum": ["chat", null]})
    };
    let mut variant = json!({"title": form.title, "type": "object", "additionalProperties": false, "required": required,
           "properties": {"method": {"const": m.as_str()}, "delivery": delivery, "to": to,
                          "locale": or_null("LocaleText"),
                          "transaction": transaction,
                          "entry": entry}});
    if m.request_doc().credential {
        credential_members(&mut variant["properties"]);
    }
    variant
}

/// The members of a request that asks for a credential from the
/// customer's wallet (docs/wallet.md#asking). A credential proves who the
/// customer is; the team's `sca` credential approves a payment, and takes
/// no `match` when it compares no claim.
fn credential_members(properties: &mut serde_json::Value) {
    let credential_id = json!({"type": "string", "minLength": 1, "maxLength": 64});
    properties["credential"] = json!({"oneOf": [
        credential_id.clone(),
        {"type": "array", "items": credential_id, "minItems": 1, "maxItems": 4, "uniqueItems": true},
    ], "description": "one of the team's [wallet] credentials ids, or 1 to 4 of them of which the customer presents any one (one request with DCQL credential_sets); may be left out when it has one"});
    properties["register"] = json!({"oneOf": [{"type": "null"}, {"type": "boolean"}],
        "description": "`true`: register the customer's attestation of the team's `sca` credential for payments, with no `transaction`; needs the interaction authenticated with a `customer_ref` by a method other than `wallet`, `recognized` and `pre_chat` in the last 10 minutes, else 409 `not_authenticated` (docs/wallet.md#registering-the-wallet-for-payments)"});
    properties["match"] = json!({"type": "object", "maxProperties": 10,
        "description": "claim name → the value the bank expects; each a claim (by the name its `claims` gives) of every credential asked; 1 to 10, required but for an `sca` credential whose `claims` are empty",
        "additionalProperties": {"type": "string", "minLength": 1, "maxLength": 200}});
}
raw_schema!(NewChallenge);

/// Start an OTP, PIN or app challenge; replaces the interaction's open one.
///
/// Never answers the code. An `app` challenge answers its `binding_code`
/// (shown by the customer's app too) and `delivery` null; a team without
/// CIBA, an interaction without `customer_ref`, or a provider without a
/// backchannel authentication endpoint is 422; a provider that refuses or
/// cannot be reached is 502 (after the 404, 422, 423, 403 and 429 refusals);
/// an `app` challenge replaced while its provider was asked is 410. A
/// delivery failure is 502 and uses no send allowance.
/// A destination the team's `otp.destinations`, `otp.sms_regions` or
/// `otp.sms_number_types` refuses is 403 `forbidden` (a number that is not a
/// valid one where those lists apply, 422): nothing is sent, counted or
/// used up. The SMS rules hold for any message to a phone number: a code or
/// PIN prompt into a Twilio or WhatsApp conversation too. With the team's
/// `[number_checks]`, a code to a phone number whose check refuses it is
/// 403 `number_refused` with `reason` (`sim_swap`, `call_forwarding`,
/// `check_failed`), nothing sent or counted; otherwise the answer has
/// `number_check`.
/// An OTP into the chat (`delivery` `chat`, the default) on a channel that
/// does not vouch for its sender (a web chat, Slack, Telegram, e-mail) is
/// 422: its `detail` says to send the code to the customer's contact or to
/// use a login link.
#[utoipa::path(post, path = "/v1/interactions/{id}/challenges", operation_id = "start_challenge", tag = "challenges",
    security(("api_key" = [])), params(("id" = Uuid, Path)), request_body = NewChallenge,
    responses((status = 201, body = StartedChallenge, links(
                  ("verify" = (operation_id = "verify_code",
                      parameters(("id" = "$request.path.id"), ("cid" = "$response.body#/challenge_id")))),
                  ("reveal" = (operation_id = "reveal_code",
                      parameters(("id" = "$request.path.id"), ("cid" = "$response.body#/challenge_id")))),
                  ("read" = (operation_id = "read_challenge",
                      parameters(("id" = "$request.path.id"), ("cid" = "$response.body#/challenge_id")))),
              )), ApiKeyErrors, E403, E404, E409, E410, E423, E429, E502,
              JsonBodyErrors))]
async fn start(
    State(st): State<AppState>,
    bot: Bot,
    _: NoQuery,
    InteractionId(id): InteractionId,
    body: JsonBody<NewChallenge>,
) -> Result<(StatusCode, Json<StartedChallenge>)> {
    let req = body.value.parse()?;
    let started =
        gateway::challenges::start_challenge(&st.gateway, bot.team(), id, req, st.clock.as_ref())
            .await?;
    Ok((StatusCode::CREATED, Json(started)))
}

/// `POST .../verify` body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = Code)]
pub struct CodeBody {
    /// What the customer typed: 1 to 20 ASCII digits (else 422, not counted);
    /// a PIN also within the channel's PIN lengths.
    #[schema(pattern = "^[0-9]{1,20}$")]
    pub code: String,
}

/// Check a code.
///
/// A wrong code is 401 `invalid_code` with `attempts_remaining`; the failure
/// that reaches the lockout threshold is 423 `locked` (403 `banned` when it bans).
/// An `app` challenge is approved in the customer's app: a code for it is 422.
#[utoipa::path(post, path = "/v1/interactions/{id}/challenges/{cid}/verify", operation_id = "verify_code", tag = "challenges",
    security(("api_key" = [])), params(("id" = Uuid, Path), ("cid" = Uuid, Path)), request_body = CodeBody,
    responses((status = 200, body = Verified), ApiKeyErrors, E403, E404, E409, E410, E423,
              JsonBodyErrors))]
async fn verify(
    State(st): State<AppState>,
    Now(now): Now,
    bot: Bot,
    _: NoQuery,
    ChallengeIds { id, cid }: ChallengeIds,
    body: JsonBody<CodeBody>,
) -> Result<Json<Verified>> {
    Ok(Json(
        crate::gateway::challenges::verify::verify_challenge(
            &st.gateway,
            bot.team(),
            id,
            cid,
            &body.value.code,
            now,
        )
        .await?,
    ))
}

/// One challenge of the interaction, current or past: where it stands and
/// how far its message got (docs/api.md#reading-a-challenge).
///
/// A challenge of another interaction or team, or one the interaction no
/// longer remembers, is 404.
#[utoipa::path(get, path = "/v1/interactions/{id}/challenges/{cid}", operation_id = "read_challenge", tag = "challenges",
    security(("api_key" = [])), params(("id" = Uuid, Path), ("cid" = Uuid, Path)),
    responses((status = 200, body = ChallengeView), ApiKeyErrors, E404))]
async fn read(
    State(st): State<AppState>,
    Now(now): Now,
    caller: Caller,
    _: NoQuery,
    ChallengeIds { id, cid }: ChallengeIds,
) -> Result<Json<ChallengeView>> {
    Ok(Json(
        crate::gateway::challenges::read::read_challenge(
            &st.gateway,
            caller.team(),
            id,
            cid,
            caller.role.acts_as_bot(),
            now,
        )
        .await?,
    ))
}

/// Move a delivery ladder's code on to its next step now
/// (docs/api.md#delivery-ladder): the same code, the same attempts.
///
/// Answers the challenge's read, now naming the new `channel`, and emits
/// `challenge.advanced` (`reason` `requested`). 409 `no_next_step` when
/// no step is left or the challenge has no ladder, 409 `challenge_used`,
/// 410 once it ended otherwise, 429 when the next step's destination has
/// used its send limit, 502 when every step left refused the message; the
/// ladder then stays where it is. A move is recorded before its message is
/// sent: of moves at once one sends, and the others (or one made while a
/// step's send is under way) send nothing and answer the read as it
/// stands, or 409 `challenge_used` once the code was used.
#[utoipa::path(post, path = "/v1/interactions/{id}/challenges/{cid}/advance", operation_id = "advance_challenge", tag = "challenges",
    security(("api_key" = [])), params(("id" = Uuid, Path), ("cid" = Uuid, Path)),
    request_body(content = Option<EmptyBody>, description = "empty, or `{}`"),
    responses((status = 200, body = ChallengeView), ApiKeyErrors, E404, E409, E410, E429, E502,
              JsonBodyErrors))]
async fn advance(
    State(st): State<AppState>,
    Now(now): Now,
    bot: Bot,
    _: NoQuery,
    ChallengeIds { id, cid }: ChallengeIds,
    req: Request,
) -> Result<Json<ChallengeView>> {
    empty_body(req, &st).await?;
    let reason = crate::events::types::AdvanceReason::Requested;
    Ok(Json(
        crate::gateway::challenges::ladder::advance_ladder(
            &st.gateway,
            bot.team(),
            id,
            cid,
            reason,
            now,
        )
        .await?,
    ))
}

/// The open OTP, for an agent, where the team allows it (`otp.show_to_agents`).
#[utoipa::path(get, path = "/v1/interactions/{id}/challenges/{cid}/code", operation_id = "reveal_code", tag = "challenges",
    security(("api_key" = []), ("console_session" = [])), params(("id" = Uuid, Path), ("cid" = Uuid, Path), ActorHeader),
    responses((status = 200, body = RevealedCode), ApiKeyErrors, E403, E404, E409, E410, E422, E423))]
async fn reveal(
    State(st): State<AppState>,
    Now(now): Now,
    Acting {
        caller: agent,
        acting,
    }: Acting<Agent>,
    _: NoQuery,
    ChallengeIds { id, cid }: ChallengeIds,
) -> Result<Json<RevealedCode>> {
    Ok(Json(
        crate::gateway::challenges::verify::reveal_code(
            &st.gateway,
            agent.team(),
            id,
            cid,
            &acting,
            now,
        )
        .await?,
    ))
}

/// The names of challenge methods and deliveries are spelled once
/// (`as_str` over `ALL`): the names `Method::parse` reads, the metric
/// labels, the request parser and the `anyOf` of `NewChallenge` (made
/// from each method's `request_doc`) must all be those.
#[cfg(test)]
mod names {
    use std::collections::BTreeSet;

    use serde_json::Value;

    use super::super::openapi::RawSchema;
    use super::NewChallenge;
    use crate::channels::Purpose;
    use crate::domain::challenge::{ChallengeMethod, Delivery};
    use crate::domain::interaction::Method;

    fn serde_name<T: serde::Serialize>(x: T) -> String {
        serde_json::to_value(x)
            .unwrap()
            .as_str()
            .unwrap()
            .to_string()
    }

    /// (The API's names of the methods and deliveries are held to `as_str`
    /// in `gateway::view`.)
    #[test]
    fn names_read_back_and_purposes_are_their_serde_names() {
        for m in Method::ALL {
            assert_eq!(Method::parse(m.as_str()), Some(m));
        }
        for p in Purpose::ALL {
            assert_eq!(p.as_str(), serde_name(p));
        }
    }

    #[test]
    fn the_document_names_what_the_parser_accepts() {
        let schema = NewChallenge::json();
        let mut methods = BTreeSet::new();
        let mut deliveries = BTreeSet::new();
        for variant in schema["anyOf"].as_array().unwrap() {
            let props = &variant["properties"];
            methods.insert(props["method"]["const"].as_str().unwrap().to_string());
            let d = &props["delivery"];
            let named = d["enum"]
                .as_array()
                .cloned()
                .unwrap_or_else(|| vec![d["const"].clone()]);
            deliveries.extend(named.iter().filter_map(Value::as_str).map(str::to_string));
        }
        let startable = ChallengeMethod::STARTABLE.map(|m| m.as_str().to_string());
        assert_eq!(methods, BTreeSet::from(startable));
        let requestable = Delivery::REQUESTABLE.map(|d| d.as_str().to_string());
        assert_eq!(deliveries, BTreeSet::from(requestable));
    }
}
