//! The console signs agents in at the team's workforce provider
//! (docs/console-sign-in.md), against the strict fake provider of
//! `oidc_provider.rs` (it checks the client, the redirect URI, one-time
//! codes and the PKCE verifier): the round trip, the session cookie's
//! attributes, every refused sign-in (an HTML page, no session, audited),
//! the session's limits on the suite's clock, a second instance, what a
//! session may reach, and the cross-site rule for changes.
use std::collections::HashMap;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Map, Value};

use crate::actors::trail;
use crate::helpers::*;
use crate::oidc_provider::{FakeIdp, Misbehave, CLIENT_ID, CLIENT_SECRET};

/// The `[console]` section of acme: the fake provider as its workforce
/// provider, `agents` and `admins` its role values, and sign-ins started
/// without a limit a test meets (unless `more` names `sign_in_rate`, if
/// only in a comment).
pub(crate) fn console_section(idp: &FakeIdp, more: &str) -> String {
    let rate = if more.contains("sign_in_rate") {
        ""
    } else {
        "sign_in_rate = 10000"
    };
    format!(
        "[console]\n{rate}\n{more}\n[console.oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nscopes = [\"profile\"]\nagent_values = [\"agents\"]\nadmin_values = [\"admins\"]\nsession_idle = \"1m\"\nsession_max = \"3m\"\n[settings.otp]\nshow_to_agents = true\n",
        idp.issuer
    )
}

async fn spawn_console(
    backend: Backend,
    public_url: &str,
    more: &str,
) -> Option<(TestApp, FakeIdp)> {
    spawn_console_with(backend, public_url, more, Setup::default()).await
}

/// [`spawn_console`] from `setup` (another store, say).
pub(crate) async fn spawn_console_with(
    backend: Backend,
    public_url: &str,
    more: &str,
    setup: Setup,
) -> Option<(TestApp, FakeIdp)> {
    let idp = FakeIdp::start_for(&format!("{public_url}/console/acme/callback")).await;
    let setup = Setup {
        team_extra: console_section(&idp, more),
        public_url: Some(public_url.to_string()),
        ..setup
    };
    let app = spawn_with(backend, setup).await?;
    idp.use_clock(app.clock.clone());
    idp.sign_in_as("jane-0001");
    idp.id_token_claims(json!({"groups": ["staff", "agents"], "preferred_username": "jane.doe"}));
    Some((app, idp))
}

pub(crate) const HTTP: &str = "http://gateway.test";

/// What a browser saw of one sign-in: the gateway's answer to the
/// callback, and the cookies it set (name → whole `Set-Cookie`).
pub(crate) struct SignIn {
    status: u16,
    location: Option<String>,
    set_cookies: HashMap<String, String>,
    body: String,
    /// The callback the provider sent the browser to, and the state cookie.
    callback: String,
    state_cookie: String,
}

impl SignIn {
    /// `name=value` of the session cookie, for a request's `Cookie`.
    pub(crate) fn session(&self) -> String {
        let (name, c) = self
            .set_cookies
            .iter()
            .find(|(n, _)| n.contains("chatgate-console"))
            .unwrap_or_else(|| panic!("no session cookie: {:?}", self.set_cookies));
        format!("{name}={}", cookie_value(c))
    }

    fn has_session(&self) -> bool {
        self.set_cookies
            .keys()
            .any(|n| n.contains("chatgate-console"))
    }
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie
        .split(';')
        .next()
        .and_then(|nv| nv.split_once('='))
        .unwrap()
        .1
}

fn set_cookies(res: &reqwest::Response) -> HashMap<String, String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| {
            let v = v.to_str().unwrap().to_string();
            (v.split('=').next().unwrap().to_string(), v)
        })
        .collect()
}

/// The browser opens the sign-in, the provider signs the person in at
/// once, and the browser comes back with `cookie` (its state cookie when
/// `None`).
async fn sign_in_with(app: &TestApp, public_url: &str, cookie: Option<&str>) -> SignIn {
    let res = app
        .request(Method::GET, "/console/acme/sign-in", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "{:?}", res.text().await);
    let state_cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    assert!(
        state_cookie.contains("HttpOnly") && state_cookie.contains("SameSite=Lax"),
        "{state_cookie}"
    );
    assert!(state_cookie.contains("Path=/console/"), "{state_cookie}");
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let q: HashMap<String, String> = url::Url::parse(&location)
        .unwrap()
        .query_pairs()
        .into_owned()
        .collect();
    assert_eq!(q["code_challenge_method"], "S256");
    assert_eq!(
        q["redirect_uri"],
        format!("{public_url}/console/acme/callback")
    );
    assert!(q["state"].len() >= 22 && q["nonce"].len() >= 22, "{q:?}");
    let res = app.client.get(&location).send().await.unwrap();
    assert_eq!(res.status(), 303, "the provider's answer");
    let back = res.headers()["location"].to_str().unwrap();
    let callback = back.replace(public_url, &app.base);
    let state_cookie = state_cookie.split(';').next().unwrap().to_string();
    finish(
        app,
        &callback,
        cookie.unwrap_or(&state_cookie),
        &state_cookie,
    )
    .await
}

async fn finish(app: &TestApp, callback: &str, cookie: &str, state_cookie: &str) -> SignIn {
    let res = app
        .client
        .get(callback)
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let location = res
        .headers()
        .get("location")
        .map(|v| v.to_str().unwrap().to_string());
    let set_cookies = set_cookies(&res);
    let body = res.text().await.unwrap();
    SignIn {
        status,
        location,
        set_cookies,
        body,
        callback: callback.to_string(),
        state_cookie: state_cookie.to_string(),
    }
}

pub(crate) async fn sign_in(app: &TestApp) -> SignIn {
    let s = sign_in_with(app, HTTP, None).await;
    assert_eq!(s.status, 303, "{}", s.body);
    s
}

/// A request with the session cookie (and `Chatgate-Console: 1` when
/// `header`).
pub(crate) fn with_session(
    app: &TestApp,
    m: Method,
    path: &str,
    session: &str,
    header: bool,
) -> reqwest::RequestBuilder {
    let mut req = app.request(m, path, None).header("cookie", session);
    if header {
        req = req.header("Chatgate-Console", "1");
    }
    req
}

fn of_action<'e>(entries: &'e [Map<String, Value>], action: &str) -> Vec<&'e Map<String, Value>> {
    entries.iter().filter(|e| e["action"] == action).collect()
}

async fn a_person_signs_in_acts_and_signs_out(backend: Backend) {
    let Some((mut app, idp)) = spawn_console(backend, HTTP, "").await else {
        return;
    };
    let s = sign_in(&app).await;
    assert_eq!(s.location.as_deref(), Some("/console"));
    // The session cookie: random bits only, HttpOnly, Strict, Path=/, no
    // Domain, not Secure on http.
    let set = &s.set_cookies["chatgate-console"];
    let value = cookie_value(set);
    assert!(value.len() >= 22, "{set}");
    assert!(!value.contains("jane") && !value.contains("acme"), "{set}");
    assert!(
        set.contains("; HttpOnly") && set.contains("; SameSite=Strict"),
        "{set}"
    );
    assert!(
        set.contains("; Path=/;") || set.ends_with("; Path=/"),
        "{set}"
    );
    assert!(!set.contains("Domain") && !set.contains("Secure"), "{set}");
    // The state's cookie has served: cleared.
    let state_name = s.state_cookie.split('=').next().unwrap();
    assert!(s.set_cookies[state_name].contains("Max-Age=0"));
    let session = s.session();

    let me = with_session(&app, Method::GET, "/console/session", &session, false)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(
        me,
        json!({"team": "acme", "sub": "jane-0001", "name": "jane.doe", "role": "agent"})
    );

    // Reads and a reveal, as the person.
    let id = app.new_interaction().await;
    let cid = app.agent_challenge(&id).await;
    let list = with_session(&app, Method::GET, "/v1/interactions", &session, false)
        .send()
        .await
        .unwrap();
    assert_eq!(list.status(), 200);
    let path = format!("/v1/interactions/{id}/challenges/{cid}/code");
    let res = with_session(&app, Method::GET, &path, &session, false)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let person = json!({"type": "person", "sub": "jane-0001", "name": "jane.doe"});
    let e = app
        .next_event("challenge.code_revealed", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(event_data(&e)["actor"], person);

    // A change without the header a cross-site form cannot send: 403,
    // nothing done; with it, done.
    app.authenticate(&id, "cust-42").await;
    let logout = format!("/v1/interactions/{id}/logout");
    let res = with_session(&app, Method::POST, &logout, &session, false)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    assert!(of_action(&trail(&app).await, "interaction.logged_out").is_empty());
    assert_eq!(app.get(&id).await["status"], "authenticated");
    let res = with_session(&app, Method::POST, &logout, &session, true)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(app.get(&id).await["status"], "unauthenticated");

    // Sign-out: the header again, then 204 and the cookie removed; the
    // cookie is 401 from then on.
    let res = with_session(&app, Method::POST, "/console/sign-out", &session, false)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let res = with_session(&app, Method::POST, "/console/sign-out", &session, true)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let cleared = set_cookies(&res);
    assert!(cleared["chatgate-console"].contains("Max-Age=0"));
    for path in ["/console/session", "/v1/interactions"] {
        let res = with_session(&app, Method::GET, path, &session, false)
            .send()
            .await
            .unwrap();
        assert_problem(res, 401, "unauthorized").await;
    }

    let entries = trail(&app).await;
    let signed_in = of_action(&entries, "console.signed_in");
    assert_eq!(signed_in.len(), 1, "{entries:#?}");
    assert_eq!(signed_in[0]["outcome"], "success");
    assert_eq!(signed_in[0]["actor"]["type"], "person");
    assert_eq!(signed_in[0]["actor"]["sub"], "jane-0001");
    assert_eq!(signed_in[0]["actor"]["name"], "jane.doe");
    assert!(signed_in[0]["actor"].get("api_key_id").is_none());
    let revealed = of_action(&entries, "challenge.code_revealed");
    assert_eq!(revealed[0]["actor"]["sub"], "jane-0001");
    let denied = of_action(&entries, "access.denied");
    assert_eq!(denied.len(), 2, "{entries:#?}");
    assert!(denied.iter().all(|d| d["actor"]["sub"] == "jane-0001"));
    let out = of_action(&entries, "interaction.logged_out");
    assert_eq!(out[0]["actor"]["sub"], "jane-0001");
    let signed_out = of_action(&entries, "console.signed_out");
    assert_eq!(signed_out.len(), 1);
    assert_eq!(signed_out[0]["detail"]["ended"], "logout");
    // The cookie's value is in no entry.
    assert!(!serde_json::to_string(&entries).unwrap().contains(value));
    // The provider saw one code exchange, with the PKCE verifier it checks.
    assert_eq!(idp.token_calls(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_acts_and_signs_out_memory() {
    a_person_signs_in_acts_and_signs_out(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_person_signs_in_acts_and_signs_out_redis() {
    a_person_signs_in_acts_and_signs_out(Backend::Redis).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_https_the_cookie_is_host_prefixed_and_secure() {
    let url = "https://gateway.test";
    let Some((app, _idp)) = spawn_console(Backend::Memory, url, "").await else {
        return;
    };
    let s = sign_in_with(&app, url, None).await;
    assert_eq!(s.status, 303, "{}", s.body);
    let set = &s.set_cookies["__Host-chatgate-console"];
    assert!(
        set.contains("; Secure") && set.contains("; HttpOnly"),
        "{set}"
    );
    assert!(
        set.contains("; SameSite=Strict") && set.contains("; Path=/"),
        "{set}"
    );
    assert!(!set.contains("Domain"), "{set}");
    assert!(!s.set_cookies.contains_key("chatgate-console"));
    let session = s.session();
    let res = with_session(&app, Method::GET, "/console/session", &session, false)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    // The http name is not read on https.
    let plain = format!("chatgate-console={}", cookie_value(set));
    let res = with_session(&app, Method::GET, "/console/session", &plain, false)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
}

/// Each refusal: its status, an HTML page, no session cookie, and the
/// reason of its `console.sign_in_failed`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refused_sign_in_is_a_page_without_a_session_and_audited() {
    let Some((app, idp)) = spawn_console(Backend::Memory, HTTP, "").await else {
        return;
    };
    let cases = [
        (Misbehave::WrongNonce, 401, "invalid_token"),
        (Misbehave::NoNonce, 401, "invalid_token"),
        (Misbehave::WrongAud, 401, "invalid_token"),
        (Misbehave::SeveralAudNoAzp, 401, "invalid_token"),
        (Misbehave::WrongIss, 401, "invalid_token"),
        (Misbehave::Expired, 401, "invalid_token"),
        (Misbehave::AlgNone, 401, "invalid_token"),
        (Misbehave::Hs256WithSecret, 401, "invalid_token"),
        (Misbehave::UnknownKid, 401, "invalid_token"),
        (Misbehave::AccessDenied, 400, "provider_error"),
        (Misbehave::TokenEndpointFails, 502, "provider_error"),
        (Misbehave::IssFromOther, 400, "state_mismatch"),
    ];
    let mut expected = Vec::new();
    for (misbehave, status, reason) in cases {
        idp.misbehave(misbehave);
        let s = sign_in_with(&app, HTTP, None).await;
        assert_eq!(s.status, status, "{misbehave:?}: {}", s.body);
        assert!(s.body.starts_with("<!doctype html>"), "{misbehave:?}");
        assert!(!s.has_session(), "{misbehave:?}: {:?}", s.set_cookies);
        expected.push(reason);
    }
    idp.misbehave(Misbehave::None);
    // No listed value in the role claim: 403, no role.
    idp.id_token_claims(json!({"groups": ["staff"], "preferred_username": "jane.doe"}));
    let s = sign_in_with(&app, HTTP, None).await;
    assert_eq!(s.status, 403, "{}", s.body);
    assert!(s.body.contains("no role"), "{}", s.body);
    assert!(!s.has_session());
    expected.push("no_role");
    // No role claim at all: the same.
    idp.id_token_claims(json!({"groups": null}));
    let s = sign_in_with(&app, HTTP, None).await;
    assert_eq!(s.status, 403);
    expected.push("no_role");
    idp.id_token_claims(json!({"groups": "agents"}));
    // Another browser's cookie: 400, and the state stays good for its own.
    let s = sign_in_with(&app, HTTP, Some("chatgate_oidc_x=y")).await;
    assert_eq!(s.status, 400, "{}", s.body);
    assert!(!s.has_session());
    expected.push("state_mismatch");
    // Presented by another browser again: refused, recorded once only.
    for cookie in ["chatgate_oidc_x=y", "other=z"] {
        let again = finish(&app, &s.callback, cookie, &s.state_cookie).await;
        assert_eq!(again.status, 400, "{}", again.body);
        assert!(!again.has_session());
    }
    let own = finish(&app, &s.callback, &s.state_cookie, &s.state_cookie).await;
    assert_eq!(own.status, 303, "{}", own.body);
    // Answered: the same answer again is refused, and recorded nowhere.
    let again = finish(&app, &s.callback, &s.state_cookie, &s.state_cookie).await;
    assert_eq!(again.status, 400);
    assert!(again.body.starts_with("<!doctype html>"));
    assert!(!again.has_session());

    let entries = trail(&app).await;
    let failed: Vec<&str> = of_action(&entries, "console.sign_in_failed")
        .iter()
        .map(|e| {
            assert_eq!(e["outcome"], "denied");
            assert_eq!(e["actor"]["type"], "person");
            e["detail"]["reason"].as_str().unwrap()
        })
        .collect();
    assert_eq!(failed, expected, "{entries:#?}");
    // The person is named once the token was read (no role), not before.
    let no_role = of_action(&entries, "console.sign_in_failed")
        .into_iter()
        .find(|e| e["detail"]["reason"] == "no_role")
        .unwrap();
    assert_eq!(no_role["actor"]["sub"], "jane-0001");
    let bad_token = of_action(&entries, "console.sign_in_failed")[0];
    assert!(bad_token["actor"].get("sub").is_none());
    assert_eq!(of_action(&entries, "console.signed_in").len(), 1);
}

/// The `seq` of the team's latest audit entry (the read itself then
/// adds its own `audit.read`).
async fn head_seq(app: &TestApp) -> u64 {
    let head = app.get_json("/v1/audit/head", Some(&app.keys.admin)).await;
    head["seq"].as_u64().unwrap()
}

/// A callback whose state this gateway never issued for the team, or
/// answered already, is a 400 page and writes nothing: `junk` such
/// callbacks (and each other shape a stranger can send) leave the trail
/// as it was.
async fn a_stranger_s_callbacks_write_nothing(backend: Backend, junk: usize) {
    let Some((app, _idp)) = spawn_console(backend, HTTP, "").await else {
        return;
    };
    let answered = sign_in(&app).await;
    let before = head_seq(&app).await;
    let callback = format!("{}/console/acme/callback", app.base);
    let mut urls = vec![
        callback.clone(),
        format!("{callback}?code=c"),
        format!("{callback}?state="),
        format!("{callback}?state=a&state=b&code=c"),
        format!("{callback}?state=junk&error=access_denied"),
        format!("{callback}?code=c&state={}", "s".repeat(300)),
        answered.callback.clone(),
    ];
    urls.extend((0..junk).map(|i| format!("{callback}?code=c&state=junk-{i}")));
    for url in &urls {
        let res = finish(&app, url, &answered.state_cookie, &answered.state_cookie).await;
        assert_eq!(res.status, 400, "{url}: {}", res.body);
        assert!(res.body.starts_with("<!doctype html>"), "{url}");
        assert!(!res.has_session(), "{url}");
    }
    // The second read's `seq` counts the first read's own `audit.read`.
    let written = head_seq(&app).await - before - 1;
    eprintln!(
        "entries written by {} stranger callbacks: {written}",
        urls.len()
    );
    assert_eq!(written, 0, "{:#?}", trail(&app).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_s_callbacks_write_nothing_memory() {
    a_stranger_s_callbacks_write_nothing(Backend::Memory, 2000).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stranger_s_callbacks_write_nothing_redis() {
    a_stranger_s_callbacks_write_nothing(Backend::Redis, 200).await;
}

/// Sign-ins started per team are limited by `[console] sign_in_rate`
/// (default 10 a second): beyond it 429 `rate_limited` with `Retry-After`,
/// no state made; the next second starts again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_starts_are_limited_per_team() {
    for (more, rate) in [("sign_in_rate = 3", 3), ("# sign_in_rate: the default", 10)] {
        let Some((app, _idp)) = spawn_console(Backend::Memory, HTTP, more).await else {
            return;
        };
        let start = || {
            app.request(Method::GET, "/console/acme/sign-in", None)
                .send()
        };
        for _ in 0..rate {
            assert_eq!(start().await.unwrap().status(), 302);
        }
        let res = start().await.unwrap();
        assert!(res.headers().get("set-cookie").is_none());
        assert_eq!(res.headers()["retry-after"], "1");
        assert_problem(res, 429, "rate_limited").await;
        // Another team is not held by acme's starts.
        let res = app
            .request(Method::GET, "/console/globex/sign-in", None)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
        app.clock.advance(Duration::from_secs(1));
        assert_eq!(start().await.unwrap().status(), 302);
    }
}

/// `GET /console` names no team; `GET /console/{team}` is the same page
/// with that team's sign-in link when it has `[console.oidc]`, and an
/// unknown team's page is a team's without it: no answer lists or tells
/// the teams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_page_names_no_team_but_the_one_asked_for() {
    let Some((app, _idp)) = spawn_console(Backend::Memory, HTTP, "").await else {
        return;
    };
    let page = |path: &'static str| {
        let app = &app;
        async move {
            let res = app.request(Method::GET, path, None).send().await.unwrap();
            assert_eq!(res.status(), 200, "{path}");
            assert!(res.headers()["content-security-policy"]
                .to_str()
                .unwrap()
                .contains("script-src 'self'"));
            res.text().await.unwrap()
        }
    };
    let plain = page("/console").await;
    assert!(
        !plain.contains("acme") && !plain.contains("globex"),
        "{plain}"
    );
    assert!(!plain.contains("/sign-in\""), "{plain}");
    let acme = page("/console/acme").await;
    assert!(
        acme.contains("<a class=\"sign-in\" data-team=\"acme\" href=\"/console/acme/sign-in\">"),
        "{acme}"
    );
    assert!(!acme.contains("globex"));
    // A team without [console.oidc] and one that does not exist: the very
    // page `GET /console` is.
    assert_eq!(page("/console/globex").await, plain);
    assert_eq!(page("/console/no-such-team").await, plain);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_ends_idle_or_at_its_absolute_limit() {
    let Some((app, _idp)) = spawn_console(Backend::Memory, HTTP, "").await else {
        return;
    };
    let ask = |session: String| {
        let app = &app;
        async move {
            with_session(app, Method::GET, "/console/session", &session, false)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Idle: each request restarts the minute.
    let session = sign_in(&app).await.session();
    for _ in 0..2 {
        app.clock.advance(Duration::from_secs(50));
        assert_eq!(ask(session.clone()).await, 200);
    }
    app.clock.advance(Duration::from_secs(60));
    assert_eq!(ask(session.clone()).await, 401);
    assert_eq!(ask(session).await, 401);
    // Absolute: three minutes after sign-in, however busy.
    let session = sign_in(&app).await.session();
    for _ in 0..3 {
        app.clock.advance(Duration::from_secs(55));
        assert_eq!(ask(session.clone()).await, 200);
    }
    app.clock.advance(Duration::from_secs(15));
    assert_eq!(ask(session).await, 401);
    let entries = trail(&app).await;
    let ended: Vec<&Value> = of_action(&entries, "console.signed_out")
        .iter()
        .map(|e| &e["detail"]["ended"])
        .collect();
    assert_eq!(ended, [&json!("idle"), &json!("max_age")], "{entries:#?}");
}

/// A request soon after the session's recorded last one (within a
/// minute, or a tenth of `session_idle`: 6 s here) does not write it, so
/// the session ends idle up to that much early, never late; its due entry
/// follows what was written, so a session in use is never ended by it
/// (docs/decisions/0350-a-session-is-renewed-once-a-minute.md).
async fn a_request_soon_after_the_last_does_not_restart_the_idle_time(backend: Backend) {
    let Some((app, _idp)) = spawn_console(backend, HTTP, "").await else {
        return;
    };
    let ask = |session: String| {
        let app = &app;
        async move {
            with_session(app, Method::GET, "/console/session", &session, false)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // 5 s after the sign-in: not written; idle a minute after the sign-in.
    let early = sign_in(&app).await.session();
    app.clock.advance(Duration::from_secs(5));
    assert_eq!(ask(early.clone()).await, 200);
    app.clock.advance(Duration::from_secs(56));
    assert_eq!(ask(early).await, 401);
    assert_eq!(ends_recorded(&app, 1).await, [json!("idle")]);
    // Every 3 s, half of them written: alive past its first due time,
    // which the sweeper meets with the last written and queues again.
    let busy = sign_in(&app).await.session();
    for _ in 0..30 {
        app.clock.advance(Duration::from_secs(3));
        assert_eq!(ask(busy.clone()).await, 200);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(1200)).await;
    app.clock.advance(Duration::from_secs(3));
    assert_eq!(ask(busy).await, 200);
    assert_eq!(ends_recorded(&app, 1).await, [json!("idle")]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_soon_after_the_last_does_not_restart_the_idle_time_memory() {
    a_request_soon_after_the_last_does_not_restart_the_idle_time(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_soon_after_the_last_does_not_restart_the_idle_time_redis() {
    a_request_soon_after_the_last_does_not_restart_the_idle_time(Backend::Redis).await;
}

/// The `detail.ended` of every `console.signed_out` once there are `n`
/// (the sweeper records an end by time within its half-second round).
async fn ends_recorded(app: &TestApp, n: usize) -> Vec<Value> {
    let mut ended = Vec::new();
    for _ in 0..100 {
        let entries = trail(app).await;
        ended = of_action(&entries, "console.signed_out")
            .iter()
            .map(|e| e["detail"]["ended"].clone())
            .collect();
        if ended.len() >= n {
            return ended;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("{n} ends not recorded: {ended:?}");
}

/// A session that ends by time is recorded (`console.signed_out`, `idle`
/// or `max_age`) when it ends, whether or not its cookie comes back, once,
/// even with two instances sweeping (on Redis); one a request kept alive
/// is not ended early, and one signed out is not recorded again.
async fn an_end_by_time_is_recorded_without_the_cookie(backend: Backend) {
    let Some((app, idp)) = spawn_console(backend, HTTP, "").await else {
        return;
    };
    let second = match backend {
        Backend::Redis => Some(
            spawn_with(
                Backend::Redis,
                Setup {
                    team_extra: console_section(&idp, ""),
                    ..app.same_store()
                },
            )
            .await
            .unwrap(),
        ),
        _ => None,
    };
    let advance = |secs: u64| {
        app.clock.advance(Duration::from_secs(secs));
        if let Some(second) = &second {
            second.clock.set(app.now());
        }
    };
    advance(0);
    let ask = |session: String| {
        let app = &app;
        async move {
            with_session(app, Method::GET, "/console/session", &session, false)
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    // Idle, and the cookie never comes back.
    let idle = sign_in(&app).await.session();
    advance(61);
    assert_eq!(ends_recorded(&app, 1).await, [json!("idle")]);
    // It comes back later: 401, and no second entry.
    assert_eq!(ask(idle).await, 401);
    // Kept alive by requests, then its absolute limit, without the cookie.
    let busy = sign_in(&app).await.session();
    for _ in 0..3 {
        advance(55);
        assert_eq!(ask(busy.clone()).await, 200);
    }
    assert_eq!(ends_recorded(&app, 1).await.len(), 1);
    advance(16);
    assert_eq!(
        ends_recorded(&app, 2).await,
        [json!("idle"), json!("max_age")]
    );
    // Signed out: its due entry records nothing more.
    let out = sign_in(&app).await.session();
    let res = with_session(&app, Method::POST, "/console/sign-out", &out, true)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    advance(240);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        ends_recorded(&app, 3).await,
        [json!("idle"), json!("max_age"), json!("logout")]
    );
    if let Some(second) = second {
        second.stop_keeping_keys().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_by_time_is_recorded_without_the_cookie_memory() {
    an_end_by_time_is_recorded_without_the_cookie(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_end_by_time_is_recorded_without_the_cookie_redis() {
    an_end_by_time_is_recorded_without_the_cookie(Backend::Redis).await;
}

/// A sign-out while the same session's other requests keep touching it
/// (each restarts its idle time, a write: the clock moves on 6 s before
/// each, the renewal step of a one-minute `session_idle`, for the first 20):
/// the 204 means the session is gone, never that another request's touch
/// was taken for its end.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sign_out_raced_by_the_session_s_own_requests_still_ends_it() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::Arc;
    let Some((app, _idp)) = spawn_console(Backend::Memory, HTTP, "").await else {
        return;
    };
    for round in 0..12 {
        let session = sign_in(&app).await.session();
        let stop = Arc::new(AtomicBool::new(false));
        let touched = Arc::new(AtomicUsize::new(0));
        let busy = {
            let (stop, touched) = (stop.clone(), touched.clone());
            let request = with_session(&app, Method::GET, "/console/session", &session, false);
            let clock = app.clock.clone();
            tokio::spawn(async move {
                while !stop.load(Ordering::SeqCst) {
                    if touched.load(Ordering::SeqCst) < 20 {
                        clock.advance(Duration::from_secs(6));
                    }
                    let res = request.try_clone().unwrap().send().await.unwrap();
                    if res.status() != 200 {
                        break;
                    }
                    touched.fetch_add(1, Ordering::SeqCst);
                }
            })
        };
        while touched.load(Ordering::SeqCst) < 3 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let res = with_session(&app, Method::POST, "/console/sign-out", &session, true)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 204, "round {round}");
        stop.store(true, Ordering::SeqCst);
        busy.await.unwrap();
        let res = with_session(&app, Method::GET, "/console/session", &session, false)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401, "round {round}: signed out, yet alive");
    }
}

/// An event stream opened with a session's cookie ends with the session:
/// signed out, the stream closes (within its 5 s look), where a key's
/// stream would stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_stream_opened_by_a_session_ends_with_it() {
    let Some((app, _idp)) = spawn_console(Backend::Memory, HTTP, "").await else {
        return;
    };
    let session = sign_in(&app).await.session();
    let mut stream = with_session(&app, Method::GET, "/v1/events", &session, false)
        .send()
        .await
        .unwrap();
    assert_eq!(stream.status(), 200);
    let res = with_session(&app, Method::POST, "/console/sign-out", &session, true)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let ended = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(_)) = stream.chunk().await {}
    })
    .await;
    assert!(ended.is_ok(), "the stream outlived its session");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_holds_on_a_second_instance_sharing_the_store() {
    let Some((app, idp)) = spawn_console(Backend::Redis, HTTP, "").await else {
        return;
    };
    let session = sign_in(&app).await.session();
    let second = spawn_with(
        Backend::Redis,
        Setup {
            team_extra: console_section(&idp, ""),
            ..app.same_store()
        },
    )
    .await
    .unwrap();
    second.clock.set(app.now());
    let res = with_session(&second, Method::GET, "/v1/interactions", &session, false)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let res = with_session(&second, Method::POST, "/console/sign-out", &session, true)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 204);
    let res = with_session(&app, Method::GET, "/v1/interactions", &session, false)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    second.stop_keeping_keys().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_session_reaches_only_its_roles_agent_endpoints_of_its_team() {
    let Some((app, idp)) = spawn_console(Backend::Memory, HTTP, "").await else {
        return;
    };
    let agent = sign_in(&app).await.session();
    // Another team's interaction is not found.
    let res = app
        .request(Method::POST, "/v1/interactions", Some(&app.keys.globex_bot))
        .json(&json!({"channel": "webchat", "conversation_id": "g-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 201);
    let globex: Value = res.json().await.unwrap();
    let path = format!("/v1/interactions/{}", globex["id"].as_str().unwrap());
    let res = with_session(&app, Method::GET, &path, &agent, false)
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
    // A bot's endpoint and the audit trail: the session is no key there.
    let res = with_session(&app, Method::POST, "/v1/interactions", &agent, true)
        .json(&json!({"channel": "webchat", "conversation_id": "c-1"}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    let res = with_session(&app, Method::GET, "/v1/audit", &agent, false)
        .send()
        .await
        .unwrap();
    assert_problem(res, 401, "unauthorized").await;
    // Unlock is an admin's.
    let unlock = "/v1/subjects/cust-42/unlock";
    let res = with_session(&app, Method::POST, unlock, &agent, true)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    // Authorization wins over the cookie: a bot key lists nothing.
    let res = with_session(&app, Method::GET, "/v1/interactions", &agent, false)
        .bearer_auth(&app.keys.bot)
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    // An admin's session unlocks, as the person.
    idp.id_token_claims(json!({"groups": ["agents", "admins"], "preferred_username": "ann.admin"}));
    let admin = sign_in(&app).await.session();
    let res = with_session(&app, Method::POST, unlock, &admin, true)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(res.status().is_success(), "{}", res.status());
    let entries = trail(&app).await;
    let unlocked = of_action(&entries, "subject.unlocked");
    assert_eq!(unlocked.len(), 1, "{entries:#?}");
    assert_eq!(unlocked[0]["actor"]["name"], "ann.admin");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_person_is_met_by_a_session() {
    let Some((app, _idp)) = spawn_console(Backend::Memory, HTTP, "require_person = true").await
    else {
        return;
    };
    let id = app.new_interaction().await;
    let logout = format!("/v1/interactions/{id}/logout");
    let res = app
        .request(Method::POST, &logout, Some(&app.keys.agent))
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "person_required").await;
    let session = sign_in(&app).await.session();
    let res = with_session(&app, Method::POST, &logout, &session, true)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
}
