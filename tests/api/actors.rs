//! A person behind an agent action
//! (docs/api.md#a-person-behind-every-agent-action): a portal's
//! `Chatgate-Actor` token, checked against the team's workforce provider
//! (the fake of `oidc_provider.rs`), names the person in the audit entry;
//! each refusal is 401 and audited, nothing done; `require_person` holds
//! every changing agent endpoint and no read.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::helpers::*;
use crate::oidc_provider::{sign, FakeIdp, Signing};

/// The workforce client: another than the customers' login's.
const WORKFORCE: &str = "chatgate-console";

/// A day and a year, in seconds.
const DAY: i64 = 24 * 3600;
const YEAR: i64 = 365 * DAY;

async fn spawn_console(backend: Backend, require_person: bool) -> Option<(TestApp, FakeIdp)> {
    let idp = FakeIdp::start().await;
    let setup = Setup {
        team_extra: format!(
            "[console]\nrequire_person = {require_person}\n[console.oidc]\nissuer = \"{}\"\nclient_id = \"{WORKFORCE}\"\nclient_secret = \"workforce-secret-0123456789\"\nagent_values = [\"agents\"]\n[settings.otp]\nshow_to_agents = true\n",
            idp.issuer
        ),
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await?;
    idp.use_clock(app.clock.clone());
    Some((app, idp))
}

/// A valid actor token's claims for Alice, with `change` merged in.
fn claims(app: &TestApp, idp: &FakeIdp, change: Value) -> Value {
    let now = app.now().unix_seconds();
    let mut c = json!({
        "iss": idp.issuer, "aud": WORKFORCE, "sub": "alice-0001",
        "preferred_username": "alice@bank.example", "iat": now, "exp": now + 300,
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

fn actor_token(app: &TestApp, idp: &FakeIdp, change: Value) -> String {
    sign(&claims(app, idp, change), Signing::Key("a"))
}

async fn reveal(app: &TestApp, id: &str, cid: &str, actor: Option<&str>) -> reqwest::Response {
    let path = format!("/v1/interactions/{id}/challenges/{cid}/code");
    let mut req = app.request(Method::GET, &path, Some(&app.keys.agent));
    if let Some(t) = actor {
        req = req.header("Chatgate-Actor", t);
    }
    req.send().await.unwrap()
}

async fn post_as(app: &TestApp, path: &str, key: &str, actor: Option<&str>) -> reqwest::Response {
    let mut req = app.request(Method::POST, path, Some(key)).json(&json!({}));
    if let Some(t) = actor {
        req = req.header("Chatgate-Actor", t);
    }
    req.send().await.unwrap()
}

/// acme's trail, as its admin reads it (without the configuration and
/// the reads of the trail; also `console_sign_in`'s).
pub(crate) async fn trail(app: &TestApp) -> Vec<Map<String, Value>> {
    let page = app
        .get_json("/v1/audit?after=0&limit=1000", Some(&app.keys.admin))
        .await;
    page["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_object().unwrap().clone())
        .filter(|e| e["action"] != "config.changed" && e["action"] != "audit.read")
        .collect()
}

async fn a_portal_names_its_agent(backend: Backend) {
    let Some((mut app, idp)) = spawn_console(backend, false).await else {
        return;
    };
    let id = app.new_interaction().await;
    let cid = app.agent_challenge(&id).await;
    let token = actor_token(&app, &idp, json!({}));
    let res = reveal(&app, &id, &cid, Some(&token)).await;
    assert_eq!(res.status(), 200);
    // The event names the person as the entry does, without the address.
    let person = json!({"type": "person", "api_key_id": "acme-agent",
        "sub": "alice-0001", "name": "alice@bank.example"});
    let e = app
        .next_event("challenge.code_revealed", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(event_data(&e)["actor"], person);
    // Another request of hers: the key set is the cached one.
    let res = reveal(&app, &id, &cid, Some(&token)).await;
    assert_eq!(res.status(), 200);
    assert_eq!(idp.jwks_fetches(), 1);
    // The key alone still reveals, as the key.
    let res = reveal(&app, &id, &cid, None).await;
    assert_eq!(res.status(), 200);
    let entries = trail(&app).await;
    let revealed: Vec<_> = entries
        .iter()
        .filter(|e| e["action"] == "challenge.code_revealed")
        .collect();
    assert_eq!(revealed.len(), 3, "{entries:#?}");
    let actor = &revealed[0]["actor"];
    assert_eq!(actor["type"], "person");
    assert_eq!(actor["sub"], "alice-0001");
    assert_eq!(actor["name"], "alice@bank.example");
    assert_eq!(actor["api_key_id"], "acme-agent");
    assert_eq!(revealed[2]["actor"]["type"], "api_key");
    // The token is in no entry.
    assert!(!serde_json::to_string(&entries).unwrap().contains(&token));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_names_its_agent_memory() {
    a_portal_names_its_agent(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_portal_names_its_agent_redis() {
    a_portal_names_its_agent(Backend::Redis).await;
}

async fn every_refused_actor_token_is_401_audited_and_reveals_nothing(backend: Backend) {
    let Some((app, idp)) = spawn_console(backend, false).await else {
        return;
    };
    let id = app.new_interaction().await;
    let cid = app.agent_challenge(&id).await;
    let now = app.now().unix_seconds();
    let valid = claims(&app, &idp, json!({}));
    let tampered = {
        let t = actor_token(&app, &idp, json!({}));
        let parts: Vec<&str> = t.split('.').collect();
        let forged = sign(
            &claims(&app, &idp, json!({"sub": "mallory"})),
            Signing::Key("a"),
        );
        let forged_body = forged.split('.').nth(1).unwrap().to_string();
        format!("{}.{forged_body}.{}", parts[0], parts[2])
    };
    let cases: Vec<(String, &str)> = vec![
        (sign(&valid, Signing::AlgNone("a")), "actor_alg"),
        (sign(&valid, Signing::Hs256WithSecret("a")), "actor_alg"),
        ("not-a-jwt".into(), "actor_alg"),
        (sign(&valid, Signing::Key("b")), "actor_key"),
        (tampered, "actor_signature"),
        (
            actor_token(&app, &idp, json!({"iss": "https://other.example"})),
            "actor_iss",
        ),
        (
            actor_token(&app, &idp, json!({"aud": "chatgate"})),
            "actor_aud",
        ),
        (actor_token(&app, &idp, json!({"aud": null})), "actor_aud"),
        (
            actor_token(&app, &idp, json!({"exp": now - 31})),
            "actor_exp",
        ),
        (actor_token(&app, &idp, json!({"exp": null})), "actor_exp"),
        (
            actor_token(&app, &idp, json!({"nbf": now + 31})),
            "actor_nbf",
        ),
        (actor_token(&app, &idp, json!({"nbf": "soon"})), "actor_nbf"),
        (
            actor_token(&app, &idp, json!({"iat": now + 31})),
            "actor_iat",
        ),
        (
            actor_token(
                &app,
                &idp,
                json!({"iat": now + YEAR, "exp": now + YEAR + 300}),
            ),
            "actor_iat",
        ),
        (actor_token(&app, &idp, json!({"iat": "now"})), "actor_iat"),
        (
            actor_token(&app, &idp, json!({"exp": now + 10 * YEAR})),
            "actor_life",
        ),
        (
            actor_token(&app, &idp, json!({"exp": now + DAY + 1})),
            "actor_life",
        ),
        (
            actor_token(&app, &idp, json!({"iat": null, "exp": now + DAY + 31})),
            "actor_life",
        ),
        (
            actor_token(&app, &idp, json!({"iat": now - DAY, "exp": now + 60})),
            "actor_life",
        ),
        (
            sign(&valid, Signing::KeyTyp("a", Some("logout+jwt"))),
            "actor_typ",
        ),
        (
            sign(&valid, Signing::KeyTyp("a", Some("secevent+jwt"))),
            "actor_typ",
        ),
        (actor_token(&app, &idp, json!({"sub": null})), "actor_sub"),
        (actor_token(&app, &idp, json!({"sub": ""})), "actor_sub"),
    ];
    for (token, _) in &cases {
        let res = reveal(&app, &id, &cid, Some(token)).await;
        assert_problem(res, 401, "invalid_token").await;
    }
    // Within the 30 s leeway (`exp`, `nbf` and `iat`), with `aud` an
    // array naming it, a life of 24 hours, and an ID token's or an access
    // token's `typ`, or none: accepted.
    let accepted = [
        actor_token(
            &app,
            &idp,
            json!({"exp": now - 29, "nbf": now + 29, "aud": ["x", WORKFORCE]}),
        ),
        actor_token(&app, &idp, json!({"iat": now + 30, "exp": now + 30 + DAY})),
        actor_token(&app, &idp, json!({"iat": null, "exp": now + DAY})),
        sign(&valid, Signing::KeyTyp("a", Some("at+jwt"))),
        sign(&valid, Signing::KeyTyp("a", None)),
    ];
    for token in &accepted {
        let res = reveal(&app, &id, &cid, Some(token)).await;
        assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
    }
    let entries = trail(&app).await;
    let denied: Vec<_> = entries
        .iter()
        .filter(|e| e["action"] == "access.denied")
        .map(|e| {
            assert_eq!(e["outcome"], "denied");
            assert_eq!(e["actor"]["api_key_id"], "acme-agent");
            e["detail"]["reason"].as_str().unwrap()
        })
        .collect();
    let expected: Vec<&str> = cases.iter().map(|(_, r)| *r).collect();
    assert_eq!(denied, expected, "{entries:#?}");
    // Only the accepted tokens revealed.
    let revealed: Vec<_> = entries
        .iter()
        .filter(|e| e["action"] == "challenge.code_revealed")
        .collect();
    assert_eq!(revealed.len(), accepted.len());
    assert_eq!(revealed[0]["actor"]["sub"], "alice-0001");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_actor_token_is_401_audited_and_reveals_nothing_memory() {
    every_refused_actor_token_is_401_audited_and_reveals_nothing(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_actor_token_is_401_audited_and_reveals_nothing_redis() {
    every_refused_actor_token_is_401_audited_and_reveals_nothing(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bot_key_with_an_actor_is_422_and_a_team_without_a_workforce_provider_refuses_it() {
    let Some((app, idp)) = spawn_console(Backend::Memory, false).await else {
        return;
    };
    let token = actor_token(&app, &idp, json!({}));
    let res = app
        .request(Method::POST, "/v1/interactions", Some(&app.keys.bot))
        .header("Chatgate-Actor", &token)
        .json(&json!({"channel": "webchat", "conversation_id": "conv-actor"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 422, "invalid_request").await;

    let Some(plain) = spawn_app(Backend::Memory).await else {
        return;
    };
    let id = plain.new_interaction().await;
    let res = plain
        .request(
            Method::GET,
            &format!("/v1/interactions/{id}"),
            Some(&plain.keys.agent),
        )
        .header("Chatgate-Actor", &token)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "invalid_token").await;
}

async fn require_person_holds_every_changing_agent_endpoint(backend: Backend) {
    let Some((mut app, idp)) = spawn_console(backend, true).await else {
        return;
    };
    let token = actor_token(&app, &idp, json!({}));
    let id = app.new_interaction().await;
    let cid = app.agent_challenge(&id).await;
    app.authenticate(&id, "cust-person").await;
    let agent = app.keys.agent.clone();
    let admin = app.keys.admin.clone();
    // Reads stay allowed with the key alone.
    let res = app
        .request(Method::GET, &format!("/v1/interactions/{id}"), Some(&agent))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // Each changing action, without a person: 403, nothing changed.
    let res = reveal(&app, &id, &cid, None).await;
    assert_problem(res, 403, "person_required").await;
    let logout = format!("/v1/interactions/{id}/logout");
    let forget = format!("/v1/interactions/{id}/forget");
    let unlock = "/v1/subjects/cust-person/unlock";
    for (path, key) in [(&logout, &agent), (&forget, &agent), (&logout, &admin)] {
        let res = post_as(&app, path, key, None).await;
        assert_problem(res, 403, "person_required").await;
    }
    let res = post_as(&app, unlock, &admin, None).await;
    assert_problem(res, 403, "person_required").await;
    let view = app
        .get_json(&format!("/v1/interactions/{id}"), Some(&agent))
        .await;
    assert_eq!(view["status"], "authenticated", "{view:#}");
    let entries = trail(&app).await;
    assert_eq!(
        entries
            .iter()
            .map(|e| e["action"].as_str().unwrap())
            .collect::<Vec<_>>(),
        ["access.denied"; 5],
        "{entries:#?}"
    );
    assert!(entries
        .iter()
        .all(|e| e["detail"]["reason"] == "person_required"));
    // With a person, each is done, the person its actor.
    let res = reveal(&app, &id, &cid, Some(&token)).await;
    assert_eq!(res.status(), 200);
    let res = post_as(&app, unlock, &admin, Some(&token)).await;
    assert_eq!(res.status(), 200);
    let res = post_as(&app, &logout, &agent, Some(&token)).await;
    assert_eq!(res.status(), 200);
    // (A conversation never recognized: forgetting it records nothing.)
    let res = post_as(&app, &forget, &agent, Some(&token)).await;
    assert_eq!(res.status(), 200);
    let entries = trail(&app).await;
    let done: Vec<_> = entries
        .iter()
        .filter(|e| e["outcome"] == "success")
        .collect();
    let done_actions: Vec<&str> = done.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        done_actions,
        [
            "challenge.code_revealed",
            "subject.unlocked",
            "interaction.logged_out"
        ],
        "{entries:#?}"
    );
    assert!(done
        .iter()
        .all(|e| e["actor"]["type"] == "person" && e["actor"]["sub"] == "alice-0001"));
    // The unlock's and the logout's events name the person too.
    let person = json!({"type": "person", "api_key_id": "acme-agent",
        "sub": "alice-0001", "name": "alice@bank.example"});
    let within = Duration::from_secs(2);
    let unlocked = app.next_event("subject.unlocked", within).await.unwrap();
    let mut by_admin = person.clone();
    by_admin["api_key_id"] = json!("acme-admin");
    assert_eq!(event_data(&unlocked)["actor"], by_admin);
    let out = app
        .next_event("interaction.logged_out", within)
        .await
        .unwrap();
    assert_eq!(event_data(&out)["cause"], "api");
    assert_eq!(event_data(&out)["actor"], person);
    // A bot key is not held.
    let other = app.new_interaction().await;
    let res = post_as(
        &app,
        &format!("/v1/interactions/{other}/logout"),
        &app.keys.bot,
        None,
    )
    .await;
    assert_eq!(res.status(), 200);
}

/// The person a team requires is asked with the key's role, before the
/// path, query or body are looked at: each changing endpoint, whatever
/// else is wrong with the request, is 403 `person_required` and audited
/// as such; a bot's key is not affected
/// (docs/decisions/0351-a-required-person-is-asked-with-the-role.md).
async fn a_required_person_is_asked_before_the_path_query_or_body(backend: Backend) {
    let Some((app, _idp)) = spawn_console(backend, true).await else {
        return;
    };
    let id = app.new_interaction().await;
    let (agent, admin) = (app.keys.agent.clone(), app.keys.admin.clone());
    // A path that names nothing.
    let res = reveal(&app, "not-an-id", "nor-this", None).await;
    assert_problem(res, 403, "person_required").await;
    // A query parameter the operation does not define.
    let res = post_as(
        &app,
        &format!("/v1/interactions/{id}/logout?x=1"),
        &agent,
        None,
    )
    .await;
    assert_problem(res, 403, "person_required").await;
    // A body that is no JSON.
    let res = app
        .request(
            Method::POST,
            &format!("/v1/interactions/{id}/forget"),
            Some(&agent),
        )
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "person_required").await;
    // A body member out of its range.
    let res = app
        .request(Method::POST, "/v1/subjects/cust-x/unlock", Some(&admin))
        .json(&json!({"origin": ""}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "person_required").await;
    let entries = trail(&app).await;
    assert_eq!(entries.len(), 4, "{entries:#?}");
    assert!(
        entries
            .iter()
            .all(|e| e["action"] == "access.denied" && e["detail"]["reason"] == "person_required"),
        "{entries:#?}"
    );
    // A bot's key meets the path's check as before.
    let res = post_as(
        &app,
        "/v1/interactions/not-an-id/logout",
        &app.keys.bot,
        None,
    )
    .await;
    assert_problem(res, 404, "not_found").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_person_is_asked_before_the_path_query_or_body_memory() {
    a_required_person_is_asked_before_the_path_query_or_body(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_required_person_is_asked_before_the_path_query_or_body_redis() {
    a_required_person_is_asked_before_the_path_query_or_body(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_person_holds_every_changing_agent_endpoint_memory() {
    require_person_holds_every_changing_agent_endpoint(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_person_holds_every_changing_agent_endpoint_redis() {
    require_person_holds_every_changing_agent_endpoint(Backend::Redis).await;
}
