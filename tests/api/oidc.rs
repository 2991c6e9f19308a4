//! Hosted login with the team's identity provider
//! (docs/api.md#hosted-login-openid-connect), against the in-process fake
//! provider of `oidc_provider.rs`: the whole browser round trip, every
//! refusal of the provider's answer and of the ID token (each uses nothing
//! up), and the login callback's rules on a valid token.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::oidc_provider::{FakeIdp, Misbehave};

/// `max_age` and `acr_values` on, so that their checks are exercised.
const STRICT: &str = "max_age = \"5m\"\nacr_values = [\"gold\"]";

pub(crate) async fn spawn_idp(
    backend: Backend,
    oidc: &str,
    defaults: &str,
) -> Option<(TestApp, FakeIdp)> {
    let idp = FakeIdp::start().await;
    let setup = Setup {
        team_extra: idp.team_section(oidc),
        defaults: defaults.into(),
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await?;
    idp.use_clock(app.clock.clone());
    Some((app, idp))
}

/// A fresh interaction for `cust-42` and an `oidc` link for it: (id, link path).
pub(crate) async fn oidc_link(app: &TestApp, extra: Value) -> (String, String) {
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                       "customer_ref": "cust-42"}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let mut body = json!({"provider": "oidc"});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    let link = app.issue_link(&id, body).await;
    let short = link["short_url"].as_str().unwrap();
    (
        id,
        short.trim_start_matches("http://gateway.test").to_string(),
    )
}

/// What the browser got at the end.
pub(crate) struct Page {
    pub status: u16,
    pub body: String,
    pub cache_control: String,
}

/// A browser: opens the link (302 to the provider, with the cookie), lets
/// the provider send it back, and follows that to the gateway's callback.
pub(crate) struct Started {
    pub cookie: String,
    pub callback: String,
}

pub(crate) async fn start(app: &TestApp, link: &str) -> Started {
    let res = app
        .request(Method::GET, link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "GET {link}");
    let set_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(set_cookie.contains("HttpOnly") && set_cookie.contains("SameSite=Lax"));
    assert!(set_cookie.contains("Path=/oidc/") && !set_cookie.contains("Secure"));
    let cookie = set_cookie.split(';').next().unwrap().to_string();
    let location = res.headers()["location"].to_str().unwrap().to_string();
    // The provider (its user signs in at once) sends the browser back.
    let res = app.client.get(&location).send().await.unwrap();
    assert_eq!(res.status(), 303, "the provider's answer to {location}");
    let back = res.headers()["location"].to_str().unwrap();
    let callback = back.replace("http://gateway.test", &app.base);
    Started { cookie, callback }
}

pub(crate) async fn finish(app: &TestApp, s: &Started, cookie: Option<&str>) -> Page {
    let mut req = app.client.get(&s.callback).header("accept", "text/html");
    if let Some(c) = cookie {
        req = req.header("cookie", c);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let cache_control = res
        .headers()
        .get("cache-control")
        .map(|v| v.to_str().unwrap().to_string())
        .unwrap_or_default();
    let body = res.text().await.unwrap();
    assert!(body.starts_with("<!doctype html>"), "{body}");
    Page {
        status,
        body,
        cache_control,
    }
}

pub(crate) async fn login(app: &TestApp, link: &str) -> Page {
    let s = start(app, link).await;
    finish(app, &s, Some(&s.cookie)).await
}

pub(crate) async fn failures(app: &TestApp, subject: &str) -> Value {
    app.get_json(&format!("/v1/subjects/{subject}"), Some(&app.keys.agent))
        .await["failures"]
        .clone()
}

async fn happy_path(backend: Backend) {
    let Some((mut app, idp)) = spawn_idp(backend, "", "").await else {
        return;
    };
    let (id, link) = oidc_link(&app, json!({"deliver": true})).await;
    let page = login(&app, &link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("signed in"), "{}", page.body);
    assert_eq!(page.cache_control, "no-store");
    let v = app.get(&id).await;
    assert_eq!(v["status"], "authenticated");
    assert_eq!(v["method"], "oidc");
    assert_eq!(
        v["customer"],
        json!({"id": "cust-42", "name": "Ada Lovelace", "email": "ada@example.com"})
    );
    let e = app
        .next_event("interaction.authenticated", Duration::from_secs(5))
        .await
        .expect("interaction.authenticated");
    assert_eq!(event_data(&e)["interaction"]["method"], "oidc");
    // The notice goes into the chat.
    let mut told = false;
    for _ in 0..50 {
        told = app
            .chat_messages()
            .await
            .iter()
            .any(|m| m["purpose"] == "authenticated");
        if told {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(told, "the authenticated notice");
    // `oidc` is a method for the assurance endpoint.
    let a = app
        .get_json(
            &format!("/v1/interactions/{id}/assurance?methods=oidc"),
            Some(&app.keys.bot),
        )
        .await;
    assert_eq!(a["satisfied"], true, "{a}");
    // The link is used: the next fetch is its 410 page.
    let res = app
        .request(Method::GET, &link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410);
    assert_eq!(idp.token_calls(), 1);
    if backend == Backend::Redis {
        started_logins_expire_in_redis(&app).await;
    }
}

/// A started login is one Redis key with a TTL of at most 10 minutes,
/// named and holding neither its state nor the browser's secret; an
/// answered one is gone.
async fn started_logins_expire_in_redis(app: &TestApp) {
    let client = redis::Client::open(crate::redis_support::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    // In the team's slot, under a tag of that slot
    // (docs/decisions/0590-a-browser-s-code-carries-its-team-s-slot.md).
    let pattern = format!("{}:{{~s*}}:o:*", app.key_prefix);
    let keys = |c: &mut redis::aio::MultiplexedConnection| {
        let mut c = c.clone();
        let pattern = pattern.clone();
        async move {
            redis::cmd("KEYS")
                .arg(pattern)
                .query_async::<Vec<String>>(&mut c)
                .await
                .unwrap()
        }
    };
    assert!(
        keys(&mut c).await.is_empty(),
        "the answered state is consumed"
    );
    let (_, link) = oidc_link(app, json!({})).await;
    let s = start(app, &link).await;
    let found = keys(&mut c).await;
    assert_eq!(found.len(), 1, "{found:?}");
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&found[0])
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(ttl > 0 && ttl <= 600_000, "{ttl}");
    let value: String = redis::cmd("GET")
        .arg(&found[0])
        .query_async(&mut c)
        .await
        .unwrap();
    let state = url::Url::parse(&s.callback)
        .unwrap()
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .to_string();
    let secret = s.cookie.split_once('=').unwrap().1;
    for (what, v) in [("state", state.as_str()), ("browser secret", secret)] {
        assert!(
            !found[0].contains(v) && !value.contains(v),
            "the {what} is stored"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_signs_in_at_the_providers_page_memory() {
    happy_path(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_signs_in_at_the_providers_page_redis() {
    happy_path(Backend::Redis).await;
}

#[tokio::test]
async fn the_link_sends_the_browser_to_the_provider_with_a_fresh_state_per_fetch() {
    let Some((app, idp)) = spawn_idp(Backend::Memory, STRICT, "").await else {
        return;
    };
    let (id, _) = oidc_link(&app, json!({})).await;
    let link = app
        .issue_link(
            &id,
            json!({"provider": "oidc", "expected_customer": "cust-42"}),
        )
        .await;
    assert_eq!(link["token"], Value::Null);
    assert_eq!(link["url"], link["short_url"]);
    let path = link["short_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://gateway.test");
    let first = start(&app, path).await;
    let q = idp.last_authorize();
    assert_eq!(q["response_type"], "code");
    assert_eq!(q["client_id"], "chatgate");
    assert_eq!(q["redirect_uri"], "http://gateway.test/oidc/callback/acme");
    assert_eq!(q["scope"], "openid profile email");
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(q["max_age"], "300");
    assert_eq!(q["acr_values"], "gold");
    assert_eq!(q["login_hint"], "cust-42");
    assert!(q["state"].len() >= 22 && q["nonce"].len() >= 22);
    // A preview's fetch: another state, nothing used up.
    let second = start(&app, path).await;
    assert_ne!(idp.last_authorize()["state"], q["state"]);
    assert_ne!(second.cookie, first.cookie);
    assert_eq!(app.get(&id).await["status"], "pending");
    // Either browser may still finish; the first one does.
    let page = finish(&app, &first, Some(&first.cookie)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    for secret in [&q["state"], &q["nonce"], &q["code_challenge"]] {
        assert!(!page.body.contains(secret.as_str()));
    }
    // The other state now meets a used link: 409.
    let page = finish(&app, &second, Some(&second.cookie)).await;
    assert_eq!(page.status, 409, "{}", page.body);
}

#[tokio::test]
async fn oidc_links_need_the_teams_provider() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let id = app.new_interaction().await;
    let path = format!("/v1/interactions/{id}/login-links");
    let res = app
        .post_json(&path, Some(&app.keys.bot), &json!({"provider": "oidc"}))
        .await;
    let b = assert_problem(res, 422, "invalid_request").await;
    assert!(b["detail"].as_str().unwrap().contains("provider"), "{b}");
    let res = app
        .post_json(&path, Some(&app.keys.bot), &json!({"provider": "saml"}))
        .await;
    assert_problem(res, 422, "invalid_request").await;
    let link = app.issue_link(&id, json!({"provider": "login_page"})).await;
    assert!(link["token"].is_string());
}

/// One way the provider misbehaves: the customer's page has `status`, the
/// link is not used up and no failure is counted; once the provider
/// behaves, the same link signs in.
pub(crate) async fn refused(misbehave: Misbehave, status: u16, says: &str) {
    let Some((app, idp)) = spawn_idp(Backend::Memory, STRICT, "").await else {
        return;
    };
    let (id, link) = oidc_link(&app, json!({})).await;
    // The key set is cached by a first login on another link.
    let (_, warm) = oidc_link(&app, json!({})).await;
    assert_eq!(login(&app, &warm).await.status, 200);
    idp.misbehave(misbehave);
    let page = login(&app, &link).await;
    assert_eq!(page.status, status, "{misbehave:?}: {}", page.body);
    assert!(page.body.contains(says), "{misbehave:?}: {}", page.body);
    assert_eq!(page.cache_control, "no-store");
    assert_eq!(
        failures(&app, "cust-42").await,
        0,
        "{misbehave:?} counts nothing"
    );
    assert_ne!(app.get(&id).await["status"], "authenticated");
    idp.misbehave(Misbehave::None);
    let page = login(&app, &link).await;
    assert_eq!(
        page.status, 200,
        "{misbehave:?}: the link still works: {}",
        page.body
    );
    assert_eq!(app.get(&id).await["method"], "oidc");
}

macro_rules! refusal {
    ($name:ident, $misbehave:expr, $status:expr, $says:expr) => {
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            refused($misbehave, $status, $says).await;
        }
    };
    ($name:ident, $misbehave:expr, 401) => {
        refusal!($name, $misbehave, 401, "This sign-in could not be finished");
    };
}

refusal!(a_wrong_nonce_is_401, Misbehave::WrongNonce, 401);
refusal!(a_missing_nonce_is_401, Misbehave::NoNonce, 401);
refusal!(a_wrong_aud_is_401, Misbehave::WrongAud, 401);
refusal!(
    several_aud_without_azp_is_401,
    Misbehave::SeveralAudNoAzp,
    401
);
refusal!(
    several_aud_with_a_foreign_azp_is_401,
    Misbehave::SeveralAudForeignAzp,
    401
);
refusal!(a_wrong_iss_is_401, Misbehave::WrongIss, 401);
refusal!(an_expired_id_token_is_401, Misbehave::Expired, 401);
refusal!(alg_none_is_401, Misbehave::AlgNone, 401);
refusal!(
    hs256_signed_with_the_client_secret_is_401,
    Misbehave::Hs256WithSecret,
    401
);
refusal!(a_kid_not_in_the_key_set_is_401, Misbehave::UnknownKid, 401);
refusal!(an_old_auth_time_is_401, Misbehave::OldAuthTime, 401);
refusal!(a_wrong_acr_is_401, Misbehave::WrongAcr, 401);
refusal!(
    the_customer_cancelling_is_400,
    Misbehave::AccessDenied,
    400,
    "could not be finished"
);
refusal!(
    a_failing_token_endpoint_is_502,
    Misbehave::TokenEndpointFails,
    502,
    "Please try again in a minute"
);
refusal!(
    a_token_answer_over_a_mebibyte_is_502,
    Misbehave::OversizedToken,
    502,
    "Please try again in a minute"
);
refusal!(
    an_iss_parameter_of_another_provider_is_400,
    Misbehave::IssFromOther,
    400,
    "could not be finished"
);

#[tokio::test]
async fn several_aud_with_azp_is_accepted() {
    let Some((app, idp)) = spawn_idp(Backend::Memory, STRICT, "").await else {
        return;
    };
    idp.misbehave(Misbehave::SeveralAudWithAzp);
    let (id, link) = oidc_link(&app, json!({})).await;
    assert_eq!(login(&app, &link).await.status, 200);
    assert_eq!(app.get(&id).await["method"], "oidc");
}

#[tokio::test]
async fn a_rotated_key_is_fetched_at_once_then_unknown_kids_at_most_every_ten_seconds() {
    let Some((app, idp)) = spawn_idp(Backend::Memory, "", "").await else {
        return;
    };
    let (_, link) = oidc_link(&app, json!({})).await;
    assert_eq!(login(&app, &link).await.status, 200);
    assert_eq!(idp.jwks_fetches(), 1);
    // The provider rotates to key b: the unknown kid fetches the set again.
    idp.keys(vec!["b"], "b");
    let (id, link) = oidc_link(&app, json!({})).await;
    let page = login(&app, &link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(app.get(&id).await["method"], "oidc");
    assert_eq!(idp.jwks_fetches(), 2);
    // An unknown kid within 10 s of that refetch: refused without asking
    // again.
    idp.keys(vec!["b"], "a");
    let (_, link) = oidc_link(&app, json!({})).await;
    assert_eq!(login(&app, &link).await.status, 401);
    assert_eq!(idp.jwks_fetches(), 2);
    // 10 s later the set is fetched again, and the new key is there.
    idp.keys(vec!["a", "b"], "a");
    app.advance(11);
    assert_eq!(login(&app, &link).await.status, 200);
    assert_eq!(idp.jwks_fetches(), 3);
}

#[tokio::test]
async fn a_state_is_this_browsers_once_and_for_ten_minutes() {
    let Some((app, _idp)) = spawn_idp(Backend::Memory, "", "").await else {
        return;
    };
    let (id, link) = oidc_link(&app, json!({})).await;
    let s = start(&app, &link).await;
    // Another browser: no cookie, or another one.
    assert_eq!(finish(&app, &s, None).await.status, 400);
    let other = start(&app, &link).await;
    assert_eq!(finish(&app, &s, Some(&other.cookie)).await.status, 400);
    // An unknown state.
    let forged = Started {
        cookie: s.cookie.clone(),
        callback: app.url("/oidc/callback/acme?code=x&state=never-issued"),
    };
    assert_eq!(finish(&app, &forged, Some(&s.cookie)).await.status, 400);
    assert_eq!(finish(&app, &forged, None).await.status, 400);
    // The right browser: once.
    assert_eq!(finish(&app, &s, Some(&s.cookie)).await.status, 200);
    assert_eq!(finish(&app, &s, Some(&s.cookie)).await.status, 400);
    assert_eq!(app.get(&id).await["method"], "oidc");
    // A state older than ten minutes.
    let (_, link) = oidc_link(&app, json!({})).await;
    let late = start(&app, &link).await;
    app.advance(601);
    assert_eq!(finish(&app, &late, Some(&late.cookie)).await.status, 400);
}

#[tokio::test]
async fn another_customer_than_expected_is_a_counted_failure_and_uses_the_link() {
    let Some((app, idp)) = spawn_idp(Backend::Memory, "", "").await else {
        return;
    };
    let (id, link) = oidc_link(&app, json!({"expected_customer": "cust-42"})).await;
    idp.sign_in_as("cust-99");
    let page = login(&app, &link).await;
    assert_eq!(page.status, 403, "{}", page.body);
    assert_eq!(failures(&app, "cust-42").await, 1);
    assert_ne!(app.get(&id).await["status"], "authenticated");
    idp.sign_in_as("cust-42");
    let res = app
        .request(Method::GET, &link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 410, "the link is used");
}

#[tokio::test]
async fn a_locked_subject_is_refused_423() {
    let lockout = "[defaults.lockout]\nthreshold = 2";
    let Some((app, idp)) = spawn_idp(Backend::Memory, "", lockout).await else {
        return;
    };
    idp.sign_in_as("cust-99");
    let (_, link) = oidc_link(&app, json!({"expected_customer": "cust-42"})).await;
    assert_eq!(login(&app, &link).await.status, 403);
    let (_, link) = oidc_link(&app, json!({"expected_customer": "cust-42"})).await;
    assert_eq!(
        login(&app, &link).await.status,
        423,
        "the failure reaching the threshold"
    );
    idp.sign_in_as("cust-42");
    let (id, link) = oidc_link(&app, json!({})).await;
    assert_eq!(
        login(&app, &link).await.status,
        423,
        "locked: even a valid login"
    );
    assert_eq!(app.get(&id).await["status"], "locked");
}

#[tokio::test]
async fn with_login_binding_the_page_shows_the_code_that_signs_in_with_oidc() {
    let binding = "login_binding = \"chat_code\"";
    let Some((app, _idp)) = spawn_idp(Backend::Memory, "", binding).await else {
        return;
    };
    let (id, link) = oidc_link(&app, json!({})).await;
    let page = login(&app, &link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let code: String = page
        .body
        .split("<strong>")
        .nth(1)
        .and_then(|s| s.split("</strong>").next())
        .expect("the page shows the binding code")
        .to_string();
    assert_eq!(code.len(), 6);
    let v = app.get(&id).await;
    assert_eq!(v["status"], "pending");
    let cid = v["open_challenge"]["challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app.verify_code(&id, &cid, &code).await;
    assert_eq!(res.status(), 200);
    let v = app.get(&id).await;
    assert_eq!(v["method"], "oidc");
    assert_eq!(v["customer"]["id"], "cust-42");
}

#[tokio::test]
async fn a_provider_down_at_start_does_not_stop_the_gateway_and_answers_502() {
    let setup = Setup {
        team_extra: format!(
            "[oidc]\nissuer = \"http://127.0.0.1:{}\"\nclient_id = \"c\"\nclient_secret = \"s\"\n",
            free_port()
        ),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let (id, link) = oidc_link(&app, json!({})).await;
    let res = app
        .request(Method::GET, &link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 502);
    assert_eq!(res.headers()["cache-control"], "no-store");
    assert_eq!(app.get(&id).await["status"], "pending", "nothing used up");
}

/// The hosted login asks the provider for the conversation's language:
/// the requested tag, then the matched one when it differs; the matched
/// default when nothing was asked (docs/api.md#languages).
async fn the_provider_is_asked_for_the_conversation_s_language(backend: Backend) {
    let supported = "[defaults.locale]\nsupported = [\"en\", \"es\"]\n";
    let Some((app, idp)) = spawn_idp(backend, "", supported).await else {
        return;
    };
    for (asked, ui_locales) in [
        (Some("es-MX"), "es-MX es"),
        (Some("es"), "es"),
        (Some("fr"), "fr en"),
        (None, "en"),
    ] {
        let extra = asked.map_or(json!({}), |l| json!({"locale": l}));
        let (_, path) = oidc_link(&app, extra).await;
        start(&app, &path).await;
        assert_eq!(idp.last_authorize()["ui_locales"], ui_locales, "{asked:?}");
    }
}

#[tokio::test]
async fn the_provider_is_asked_for_the_conversation_s_language_memory() {
    the_provider_is_asked_for_the_conversation_s_language(Backend::Memory).await;
}

#[tokio::test]
async fn the_provider_is_asked_for_the_conversation_s_language_redis() {
    the_provider_is_asked_for_the_conversation_s_language(Backend::Redis).await;
}

/// The callback's pages speak the interaction's language: signed in, and
/// the binding code to type into the chat (docs/api.md#languages).
#[tokio::test]
async fn the_callback_pages_speak_the_interaction_s_language() {
    let defaults = "login_binding = \"chat_code\"\n[defaults.locale]\nsupported = [\"en\", \"es\", \"ar\"]\n\
                    [defaults.translations.es]\n\
                    page_binding_code = \"Escribe este código en el chat: #CODE#\\nY vuelve al chat.\"\n\
                    [defaults.translations.ar]\npage_signed_in = \"لقد سجلت الدخول\\nعد إلى المحادثة.\"\n";
    let Some((app, _idp)) = spawn_idp(Backend::Memory, "", defaults).await else {
        return;
    };
    let (_, link) = oidc_link(&app, json!({"locale": "es-MX"})).await;
    let page = login(&app, &link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("<html lang=\"es\">"), "{}", page.body);
    assert!(
        page.body
            .contains("<h1>Escribe este código en el chat: <strong>"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<p>Y vuelve al chat.</p>"),
        "{}",
        page.body
    );
    let Some((app, _idp)) = spawn_idp(
        Backend::Memory,
        "",
        &defaults.replacen("login_binding = \"chat_code\"\n", "", 1),
    )
    .await
    else {
        return;
    };
    let (_, link) = oidc_link(&app, json!({"locale": "ar"})).await;
    let page = login(&app, &link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(
        page.body.contains("<html lang=\"ar\" dir=\"rtl\">"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("<h1>لقد سجلت الدخول</h1>"),
        "{}",
        page.body
    );
}

/// A refused sign-in's page speaks the interaction's language too: a
/// provider's answer whose ID token fails its check is 401, said with
/// `page_sign_in_failed` in Spanish (docs/api.md#languages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_sign_in_speaks_the_interaction_s_language() {
    let defaults = "[defaults.locale]\nsupported = [\"en\", \"es\"]\n\
                    [defaults.translations.es]\n\
                    page_sign_in_failed = \"No se pudo iniciar sesión\\nAbre otra vez el enlace.\"\n";
    let Some((app, idp)) = spawn_idp(Backend::Memory, STRICT, defaults).await else {
        return;
    };
    let (_, warm) = oidc_link(&app, json!({})).await;
    assert_eq!(login(&app, &warm).await.status, 200);
    let (_, link) = oidc_link(&app, json!({"locale": "es-AR"})).await;
    idp.misbehave(Misbehave::WrongNonce);
    let page = login(&app, &link).await;
    assert_eq!(page.status, 401, "{}", page.body);
    assert!(page.body.contains("<html lang=\"es\">"), "{}", page.body);
    assert!(
        page.body.contains("<h1>No se pudo iniciar sesión</h1>"),
        "{}",
        page.body
    );
}

/// Many fetches of one hosted login's short link at once (previews, a
/// tracker, the customer's browser): each is answered by the link's state,
/// a 302 to the provider, never 503 while the store is healthy.
async fn many_fetches_of_one_link_at_once(backend: Backend) {
    let Some((app, _idp)) = spawn_idp(backend, STRICT, "").await else {
        return;
    };
    let (_, path) = oidc_link(&app, json!({})).await;
    // As many as the team's gate lets in at once.
    let fetches = (0..32).map(|_| {
        let rb = app
            .request(Method::GET, &path, None)
            .header("accept", "text/html");
        async move { rb.send().await.unwrap().status().as_u16() }
    });
    let mut statuses = std::collections::BTreeMap::new();
    for status in futures::future::join_all(fetches).await {
        *statuses.entry(status).or_insert(0) += 1;
    }
    assert_eq!(statuses, [(302, 32)].into(), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_fetches_of_one_link_at_once_are_answered_by_its_state_memory() {
    many_fetches_of_one_link_at_once(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_fetches_of_one_link_at_once_are_answered_by_its_state_redis() {
    many_fetches_of_one_link_at_once(Backend::Redis).await;
}
