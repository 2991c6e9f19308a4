//! OAuth access tokens on the MCP server
//! (docs/agents.md#oauth-access-tokens): acme's `[mcp] oauth` names the
//! fake provider of `oidc_provider.rs`, whose keys sign the tokens these
//! tests make. A valid one acts as acme's bot, named `oauth:` + its `sub`,
//! beside the bot keys; its key set is fetched once and refetched as the
//! OpenID login's is; every refusal is 401 with RFC 6750's `error`,
//! logged without the token.
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::oidc_provider::{sign, FakeIdp, Signing};

const METADATA: &str =
    "resource_metadata=\"http://gateway.test/.well-known/oauth-protected-resource/mcp\"";

/// acme with `[mcp] oauth` for a fresh fake provider (`more`: more keys
/// of the inline table, each starting with a comma).
async fn spawn_oauth(backend: Backend, more: &str) -> Option<(TestApp, FakeIdp)> {
    let idp = FakeIdp::start().await;
    let setup = Setup {
        team_extra: format!("[mcp]\noauth = {{ issuer = \"{}\"{more} }}\n", idp.issuer),
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await?;
    Some((app, idp))
}

/// A valid access token's claims, with `change` merged in (a null
/// removes the claim).
fn claims(app: &TestApp, idp: &FakeIdp, change: Value) -> Value {
    let now = app.now().unix_seconds();
    let mut c = json!({
        "iss": idp.issuer, "aud": "http://gateway.test/mcp", "sub": "agent-7",
        "scope": "openid chatgate:bot", "client_id": "claude", "iat": now, "exp": now + 300,
    });
    for (k, v) in change.as_object().unwrap() {
        if v.is_null() {
            c.as_object_mut().unwrap().remove(k);
        } else {
            c[k] = v.clone();
        }
    }
    c
}

/// A valid access token (RFC 9068's `typ`), with `change` merged in.
fn token(app: &TestApp, idp: &FakeIdp, change: Value) -> String {
    sign(
        &claims(app, idp, change),
        Signing::KeyTyp("a", Some("at+jwt")),
    )
}

async fn post(
    app: &TestApp,
    bearer: &str,
    session: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut rb = app
        .request(Method::POST, "/mcp", Some(bearer))
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(s) = session {
        rb = rb.header("mcp-session-id", s);
    }
    rb.send().await.unwrap()
}

/// `tools/call` of `tool` in `session`: its result.
async fn call(app: &TestApp, bearer: &str, session: &str, tool: &str, args: Value) -> Value {
    let body = json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
                      "params": {"name": tool, "arguments": args}});
    let res = post(app, bearer, Some(session), &body).await;
    assert_eq!(res.status(), 200);
    let v: Value = res.json().await.unwrap();
    v["result"].clone()
}

fn ping() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})
}

async fn acts_as_acme_s_bot(backend: Backend) {
    let Some((app, idp)) = spawn_oauth(backend, "").await else {
        return;
    };
    // The protected-resource metadata names the issuer.
    let res = app
        .request(
            Method::GET,
            "/.well-known/oauth-protected-resource/mcp",
            None,
        )
        .send()
        .await
        .unwrap();
    let doc: Value = res.json().await.unwrap();
    assert_eq!(doc["authorization_servers"], json!([idp.issuer]));
    assert_eq!(doc["scopes_supported"], json!(["chatgate:bot"]));

    let t = token(&app, &idp, json!({}));
    let session = crate::mcp::open(&app, &t).await;
    let conversation =
        json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()});
    let started = call(
        &app,
        &t,
        &session,
        "start_verification",
        json!({"conversation": conversation, "customer_ref": "cust-oauth", "proof": "link"}),
    )
    .await;
    assert_eq!(started["isError"], false, "{started}");
    let id = started["structuredContent"]["interaction_id"]
        .as_str()
        .unwrap()
        .to_string();
    // It is acme's interaction, as its bot key's would be.
    let res = app
        .request(
            Method::GET,
            &format!("/v1/interactions/{id}"),
            Some(&app.keys.agent),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let got = call(
        &app,
        &t,
        &session,
        "get_verification",
        json!({"interaction_id": id}),
    )
    .await;
    assert_eq!(got["structuredContent"]["status"], "pending", "{got}");
    // The key set was fetched once, for the first token.
    assert_eq!(idp.jwks_fetches(), 1);

    // The session is the token's issuer and sub's: another token of that
    // sub uses it; another sub's, or the bot key, is 404.
    let later = token(&app, &idp, json!({"exp": app.now().unix_seconds() + 600}));
    assert_eq!(
        post(&app, &later, Some(&session), &ping()).await.status(),
        200
    );
    let other = token(&app, &idp, json!({"sub": "agent-8"}));
    assert_problem(
        post(&app, &other, Some(&session), &ping()).await,
        404,
        "not_found",
    )
    .await;
    assert_problem(
        post(&app, &app.keys.bot, Some(&session), &ping()).await,
        404,
        "not_found",
    )
    .await;
    // The bot key works beside it, and so do 5 s of clock skew.
    let bot_session = crate::mcp::open(&app, &app.keys.bot).await;
    assert_eq!(
        post(&app, &app.keys.bot, Some(&bot_session), &ping())
            .await
            .status(),
        200
    );
    let now = app.now().unix_seconds();
    let skewed = token(&app, &idp, json!({"exp": now - 4, "nbf": now + 5}));
    assert_eq!(
        post(&app, &skewed, Some(&session), &ping()).await.status(),
        200
    );
    assert_eq!(
        idp.jwks_fetches(),
        1,
        "every token checked with the cached set"
    );
    // Globex has no `[mcp] oauth`: its bot key is as before.
    let globex = crate::mcp::open(&app, &app.keys.globex_bot).await;
    assert_eq!(
        post(&app, &app.keys.globex_bot, Some(&globex), &ping())
            .await
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_acts_as_its_team_s_bot_beside_the_bot_key_memory() {
    acts_as_acme_s_bot(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_access_token_acts_as_its_team_s_bot_beside_the_bot_key_redis() {
    acts_as_acme_s_bot(Backend::Redis).await;
}

async fn every_bad_token_is_refused(backend: Backend) {
    let Some((app, idp)) = spawn_oauth(backend, "").await else {
        return;
    };
    let now = app.now().unix_seconds();
    let valid = claims(&app, &idp, json!({}));
    let invalid = format!("Bearer error=\"invalid_token\", {METADATA}");
    let bad = [
        ("alg none", sign(&valid, Signing::AlgNone("a"))),
        ("HS256", sign(&valid, Signing::Hs256WithSecret("a"))),
        (
            "a logout token's typ",
            sign(&valid, Signing::KeyTyp("a", Some("logout+jwt"))),
        ),
        (
            "another issuer",
            token(&app, &idp, json!({"iss": "https://other.example"})),
        ),
        (
            "another audience",
            token(&app, &idp, json!({"aud": "https://other.example/mcp"})),
        ),
        ("expired", token(&app, &idp, json!({"exp": now - 6}))),
        ("no exp", token(&app, &idp, json!({"exp": null}))),
        ("not yet valid", token(&app, &idp, json!({"nbf": now + 6}))),
        ("no sub", token(&app, &idp, json!({"sub": null}))),
        (
            "an unknown key",
            sign(&valid, Signing::KeyTyp("b", Some("at+jwt"))),
        ),
        ("a forged signature", {
            let t = token(&app, &idp, json!({}));
            let (head, _) = t.rsplit_once('.').unwrap();
            format!("{head}.{}", "A".repeat(342))
        }),
    ];
    for (what, t) in &bad {
        for method in [Method::POST, Method::GET, Method::DELETE] {
            let res = app
                .request(method.clone(), "/mcp", Some(t))
                .header("accept", "application/json, text/event-stream")
                .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
                    "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                               "clientInfo": {"name": "t", "version": "1"}}}))
                .send()
                .await
                .unwrap();
            let challenge = res
                .headers()
                .get("www-authenticate")
                .map(|v| v.to_str().unwrap().to_string());
            assert_eq!(
                challenge.as_deref(),
                Some(invalid.as_str()),
                "{what} {method}"
            );
            assert!(!res.headers().contains_key("mcp-session-id"), "{what}");
            let body = assert_problem(res, 401, "unauthorized").await;
            assert!(!body.to_string().contains(t.as_str()), "{what}");
        }
    }
    // A token without the scope: insufficient_scope, naming it.
    for scope in [json!("openid"), json!(null)] {
        let t = token(&app, &idp, json!({"scope": scope}));
        let res = post(&app, &t, None, &ping()).await;
        let challenge = res.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .to_string();
        assert_eq!(
            challenge,
            format!("Bearer error=\"insufficient_scope\", scope=\"chatgate:bot\", {METADATA}")
        );
        assert_problem(res, 401, "unauthorized").await;
    }
    // A bearer that is no JWT is an unknown key, as before.
    let res = post(&app, "cg_unknown_key_0000000000000000", None, &ping()).await;
    assert_eq!(
        res.headers()["www-authenticate"].to_str().unwrap(),
        format!("Bearer {METADATA}")
    );
    assert_problem(res, 401, "unauthorized").await;

    // The unknown kid fetched the set again once; published since, it is
    // refused without a fetch for a minute (the OpenID login's rule), then
    // fetched.
    let fetched = idp.jwks_fetches();
    assert_eq!(fetched, 2, "the first fetch, and one refetch for kid b");
    idp.keys(vec!["a", "b"], "a");
    let by_b = sign(&claims(&app, &idp, json!({})), Signing::KeyTyp("b", None));
    let res = post(&app, &by_b, None, &ping()).await;
    assert_problem(res, 401, "unauthorized").await;
    assert_eq!(idp.jwks_fetches(), fetched);
    app.advance(61);
    let by_b = sign(&claims(&app, &idp, json!({})), Signing::KeyTyp("b", None));
    let session = crate::mcp::open(&app, &by_b).await;
    assert!(!session.is_empty());
    assert_eq!(idp.jwks_fetches(), fetched + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_access_token_is_401_with_rfc_6750_s_error_memory() {
    every_bad_token_is_refused(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_access_token_is_401_with_rfc_6750_s_error_redis() {
    every_bad_token_is_refused(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_s_own_audience_and_scope_are_asked_for() {
    let more = ", audience = \"api://acme-mcp\", scope = \"mcp:tools\"";
    let Some((app, idp)) = spawn_oauth(Backend::Memory, more).await else {
        return;
    };
    let own = json!({"aud": ["api://acme-mcp", "other"], "scope": "mcp:tools"});
    let session = crate::mcp::open(&app, &token(&app, &idp, own)).await;
    assert!(!session.is_empty());
    // The gateway's default audience or scope is not this team's.
    let default_aud = token(&app, &idp, json!({"scope": "mcp:tools"}));
    assert_problem(
        post(&app, &default_aud, None, &ping()).await,
        401,
        "unauthorized",
    )
    .await;
    let default_scope = token(&app, &idp, json!({"aud": "api://acme-mcp"}));
    let res = post(&app, &default_scope, None, &ping()).await;
    let challenge = res.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.contains("scope=\"mcp:tools\""), "{challenge}");
    // Entra's and Okta's `scp`, without `scope`.
    let scp = token(
        &app,
        &idp,
        json!({"aud": "api://acme-mcp", "scope": null, "scp": ["mcp:tools"]}),
    );
    assert!(!crate::mcp::open(&app, &scp).await.is_empty());
}

/// The request line of a call names the token's actor; a refusal is one
/// line naming the check, and no line holds a token.
#[tokio::test]
async fn a_token_s_actor_is_logged_and_no_token_is() {
    // This test's own thread (a current-thread runtime runs the gateway here too).
    let (capture, _guard) = crate::logs::Capture::at_info();
    let Some((app, idp)) = spawn_oauth(Backend::Memory, "").await else {
        return;
    };
    let good = token(&app, &idp, json!({}));
    let session = crate::mcp::open(&app, &good).await;
    assert_eq!(
        post(&app, &good, Some(&session), &ping()).await.status(),
        200
    );
    let foreign = token(&app, &idp, json!({"iss": "https://other.example"}));
    let expired = token(&app, &idp, json!({"exp": app.now().unix_seconds() - 60}));
    for t in [&foreign, &expired] {
        assert_eq!(post(&app, t, None, &ping()).await.status(), 401);
    }
    let text = String::from_utf8_lossy(&capture.0.lock().unwrap()).to_string();
    let requests: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("route=\"/mcp\"") || l.contains("route=/mcp"))
        .collect();
    assert!(
        requests
            .iter()
            .filter(|l| l.contains("oauth:agent-7"))
            .count()
            >= 2,
        "{text}"
    );
    let refusals: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("an OAuth access token was refused"))
        .collect();
    assert_eq!(refusals.len(), 2, "{text}");
    assert!(
        refusals[0].contains("iss") && refusals[1].contains("exp"),
        "{text}"
    );
    assert!(
        refusals[1].contains("acme"),
        "the team once the token named it: {text}"
    );
    for t in [&good, &foreign, &expired] {
        let signature = t.rsplit('.').next().unwrap();
        assert!(!text.contains(signature), "a token in the log: {text}");
    }
}

/// A call its HTTP twin would refuse 403 `forbidden` (a code to a number
/// outside `otp.sms_regions`) is the audit entry the twin's is,
/// `access.denied`, its actor the token's `oauth:` + `sub` where the
/// twin's is the bot key's id: read back through `GET /v1/audit`.
async fn a_refused_call_is_audited_as_the_token_s_actor(backend: Backend) {
    let idp = FakeIdp::start().await;
    let setup = Setup {
        defaults: "[defaults.otp]\nsms_regions = [\"GB\"]".into(),
        team_extra: format!("[mcp]\noauth = {{ issuer = \"{}\" }}\n", idp.issuer),
        ..Setup::default()
    };
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    let abroad = |key: &str| {
        let conversation = json!({"channel": "webchat", "conversation_id": format!("{key}-{}", uuid::Uuid::now_v7())});
        json!({"conversation": conversation, "customer_ref": "cust-abroad",
               "contact": {"phone": "+12015550123"}, "proof": "code", "delivery": "sms"})
    };
    let t = token(&app, &idp, json!({}));
    let session = crate::mcp::open(&app, &t).await;
    let refused = call(&app, &t, &session, "start_verification", abroad("oauth")).await;
    assert_eq!(refused["isError"], true, "{refused}");
    let problem: Value =
        serde_json::from_str(refused["content"][0]["text"].as_str().unwrap()).unwrap();
    assert_eq!(
        (problem["status"].as_u64(), problem["code"].as_str()),
        (Some(403), Some("forbidden")),
        "{problem}"
    );
    // The bot key's call, refused alike.
    let bot_session = crate::mcp::open(&app, &app.keys.bot).await;
    let by_key = call(
        &app,
        &app.keys.bot,
        &bot_session,
        "start_verification",
        abroad("key"),
    )
    .await;
    assert_eq!(by_key["isError"], true, "{by_key}");
    // A call that is not refused is no entry.
    assert_eq!(post(&app, &t, Some(&session), &ping()).await.status(), 200);

    let page = app.get_json("/v1/audit", Some(&app.keys.admin)).await;
    let entries = page["entries"].as_array().unwrap();
    let denied: Vec<&Value> = entries
        .iter()
        .filter(|e| e["action"] == "access.denied")
        .collect();
    let actors: Vec<&Value> = denied.iter().map(|e| &e["actor"]["api_key_id"]).collect();
    assert_eq!(
        actors,
        [&json!("oauth:agent-7"), &json!("acme-bot")],
        "{page:#}"
    );
    let by_token = denied[0];
    assert_eq!(by_token["outcome"], "denied");
    assert_eq!(by_token["actor"]["type"], "api_key");
    assert_eq!(by_token["detail"]["reason"], "forbidden");
    assert_eq!(by_token["detail"]["route"], "/mcp");
    assert!(by_token["actor"]["ip"].is_string(), "{by_token}");
    assert!(!page.to_string().contains(&t), "no token in the trail");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_is_audited_as_the_token_s_actor_memory() {
    a_refused_call_is_audited_as_the_token_s_actor(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_call_is_audited_as_the_token_s_actor_redis() {
    a_refused_call_is_audited_as_the_token_s_actor(Backend::Redis).await;
}
