//! The identity provider's back-channel logout
//! (docs/api.md#revocation-from-the-identity-provider), against the fake
//! provider of `oidc_provider.rs`: a `sid` ends exactly that session's
//! interactions, a `sub` every interaction of the customer; each check of
//! the logout token refuses its case with the specification's error and
//! changes nothing; every `interaction.logged_out` says its cause; a
//! hosted login is answered only by the provider it was begun with.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::oidc::{finish, login, oidc_link, start};
use crate::oidc_provider::{sign, FakeIdp, Misbehave, Signing, CLIENT_ID};

const EVENT: &str = "http://schemas.openid.net/event/backchannel-logout";

/// The acme team with the fake provider, its back-channel logout served
/// (`oidc`: more `[oidc]` lines).
pub(crate) async fn spawn_logout(backend: Backend, oidc: &str) -> Option<(TestApp, FakeIdp)> {
    let idp = FakeIdp::start().await;
    let setup = Setup {
        team_extra: idp.team_section(&format!("backchannel_logout = true\n{oidc}")),
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await?;
    idp.use_clock(app.clock.clone());
    Some((app, idp))
}

/// `base` with the members of `change` set (null: removed).
pub(crate) fn changed(mut base: Value, change: &Value) -> Value {
    for (k, v) in change.as_object().unwrap() {
        if v.is_null() {
            base.as_object_mut().unwrap().remove(k);
        } else {
            base[k] = v.clone();
        }
    }
    base
}

/// A valid logout token's claims, changed by `change` (null removes).
fn claims(app: &TestApp, idp: &FakeIdp, change: Value) -> Value {
    let valid = json!({"iss": idp.issuer, "aud": CLIENT_ID, "iat": app.now().unix_seconds(),
        "jti": uuid::Uuid::now_v7().to_string(), "events": {EVENT: {}}});
    changed(valid, &change)
}

/// Runs `$body(app, idp)` on the memory store and on Redis, the acme team
/// with the fake provider and its back-channel logout (`$oidc`: more
/// `[oidc]` lines).
macro_rules! both_stores_idp {
    ($name:ident, $oidc:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some((app, idp)) = spawn_logout(Backend::Memory, $oidc).await {
                    ($body)(app, idp).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some((app, idp)) = spawn_logout(Backend::Redis, $oidc).await {
                    ($body)(app, idp).await;
                }
            }
        }
    };
}

/// What the gateway answered a logout: status, `Cache-Control`, content
/// type and the JSON body (null when there is none).
pub(crate) struct Answer {
    pub status: u16,
    pub cache_control: String,
    pub content_type: String,
    pub body: Value,
}

pub(crate) async fn post_logout(app: &TestApp, team: &str, token: &str) -> Answer {
    let res = app
        .client
        .post(app.url(&format!("/oidc/backchannel-logout/{team}")))
        .form(&[("logout_token", token)])
        .send()
        .await
        .unwrap();
    let header = |name: &str| {
        res.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default()
    };
    let (status, cache_control, content_type) = (
        res.status().as_u16(),
        header("cache-control"),
        header("content-type"),
    );
    let text = res.text().await.unwrap();
    Answer {
        status,
        cache_control,
        content_type,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
    }
}

/// A hosted login of a fresh interaction (for cust-42) in provider
/// session `sid`: the interaction's id.
async fn hosted_login(app: &TestApp, idp: &FakeIdp, sid: &str) -> String {
    idp.in_session(sid);
    let (id, link) = oidc_link(app, json!({})).await;
    let page = login(app, &link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    id
}

async fn status(app: &TestApp, id: &str) -> Value {
    app.get(id).await["status"].clone()
}

/// The causes of the `interaction.logged_out` events of the next `within`,
/// by interaction id.
pub(crate) async fn logged_out_causes(
    app: &mut TestApp,
    within: Duration,
) -> Vec<(String, String)> {
    let mut seen = Vec::new();
    while let Some(e) = app.next_event("interaction.logged_out", within).await {
        let d = event_data(&e);
        seen.push((
            d["interaction"]["id"].as_str().unwrap().to_string(),
            d["cause"].as_str().unwrap_or("none").to_string(),
        ));
    }
    seen
}

/// Every Redis key the receivers wrote (sessions, subjects, used token
/// ids) carries a TTL.
pub(crate) async fn revocation_keys_expire(app: &TestApp) {
    let client = redis::Client::open(crate::redis_support::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}*", app.key_prefix))
        .query_async(&mut c)
        .await
        .unwrap();
    let ours: Vec<&String> = keys
        .iter()
        .filter(|k| {
            ["}:os:", "}:ose:", "}:osu:", "}:rj:"]
                .iter()
                .any(|m| k.contains(m))
        })
        .collect();
    assert!(!ours.is_empty(), "no revocation keys among {keys:?}");
    for k in ours {
        let ttl: i64 = redis::cmd("PTTL").arg(k).query_async(&mut c).await.unwrap();
        assert!(ttl > 0, "{k} has no TTL ({ttl})");
    }
}

both_stores_idp!(
    a_sid_logout_ends_only_that_sessions_interactions,
    "",
    |mut app: TestApp, idp: FakeIdp| async move {
        let a = hosted_login(&app, &idp, "s-1").await;
        let b = hosted_login(&app, &idp, "s-2").await;
        // The same customer, signed in by the website's login page.
        let c = app.new_interaction().await;
        app.authenticate(&c, "cust-42").await;
        while app
            .next_event("interaction.logged_out", Duration::from_millis(50))
            .await
            .is_some()
        {}
        let token = sign(
            &claims(&app, &idp, json!({"sid": "s-1"})),
            Signing::Key("a"),
        );
        let answer = post_logout(&app, "acme", &token).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(answer.cache_control, "no-store");
        assert_eq!(status(&app, &a).await, "unauthenticated");
        assert_eq!(status(&app, &b).await, "authenticated", "another session");
        assert_eq!(status(&app, &c).await, "authenticated", "another login");
        assert_eq!(
            logged_out_causes(&mut app, Duration::from_secs(2)).await,
            [(a.clone(), "oidc_logout".to_string())]
        );
        // The same token again is a replay: refused, and it changes nothing.
        let again = post_logout(&app, "acme", &token).await;
        assert_eq!(again.status, 400);
        assert_eq!(again.body["error"], "invalid_request");
        // A session whose interaction signed in anew since (another provider
        // session) ends nothing: the login it named is over.
        app.advance(1);
        idp.in_session("s-3");
        let link = app.issue_link(&b, json!({"provider": "oidc"})).await;
        let path = link["short_url"]
            .as_str()
            .unwrap()
            .trim_start_matches("http://gateway.test");
        assert_eq!(login(&app, path).await.status, 200);
        let token = sign(
            &claims(&app, &idp, json!({"sid": "s-2"})),
            Signing::Key("a"),
        );
        assert_eq!(post_logout(&app, "acme", &token).await.status, 200);
        assert_eq!(status(&app, &b).await, "authenticated");
        let token = sign(
            &claims(&app, &idp, json!({"sid": "s-3"})),
            Signing::Key("a"),
        );
        assert_eq!(post_logout(&app, "acme", &token).await.status, 200);
        assert_eq!(status(&app, &b).await, "unauthenticated");
        if app.backend == Backend::Redis {
            revocation_keys_expire(&app).await;
        }
    }
);

both_stores_idp!(
    a_login_of_a_session_ended_while_it_completes_does_not_authenticate,
    "",
    |app: TestApp, idp: FakeIdp| async move {
        // The browser is back from the provider; the code exchange is held.
        idp.in_session("s-race");
        let (id, link) = oidc_link(&app, json!({})).await;
        let begun = start(&app, &link).await;
        idp.hold_exchanges();
        let calls = idp.token_calls();
        let logout = async {
            let deadline = std::time::Instant::now() + Duration::from_secs(3);
            while idp.token_calls() == calls {
                assert!(std::time::Instant::now() < deadline, "no code exchange");
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            // The provider ends the session meanwhile, then answers the code.
            let token = sign(
                &claims(&app, &idp, json!({"sid": "s-race"})),
                Signing::Key("a"),
            );
            let answer = post_logout(&app, "acme", &token).await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            idp.release_exchanges();
        };
        let (page, ()) = tokio::join!(finish(&app, &begun, Some(&begun.cookie)), logout);
        assert_eq!(page.status, 401, "{}", page.body);
        assert!(page.body.contains("could not be finished"), "{}", page.body);
        let v = app.get(&id).await;
        assert_eq!(v["authenticated"], false, "{v}");
        assert_ne!(v["status"], "authenticated", "{v}");
        // A login of another session is not concerned.
        let other = hosted_login(&app, &idp, "s-other").await;
        assert_eq!(status(&app, &other).await, "authenticated");
        if app.backend == Backend::Redis {
            revocation_keys_expire(&app).await;
        }
    }
);

both_stores_idp!(
    a_sub_logout_ends_every_interaction_of_the_customer,
    "",
    |mut app: TestApp, idp: FakeIdp| async move {
        let a = hosted_login(&app, &idp, "s-1").await;
        let c = app.new_interaction().await;
        app.authenticate(&c, "cust-42").await;
        let d = app
            .create(json!({"channel": "webchat", "conversation_id": "d", "customer_ref": "cust-7"}))
            .await["id"]
            .as_str()
            .unwrap()
            .to_string();
        app.authenticate(&d, "cust-7").await;
        while app
            .next_event("interaction.logged_out", Duration::from_millis(50))
            .await
            .is_some()
        {}
        // `customer_claim = "sub"`: the sub names the customer, whatever the
        // method of the interaction.
        let token = sign(
            &claims(&app, &idp, json!({"sub": "CUST-42"})),
            Signing::Key("a"),
        );
        let answer = post_logout(&app, "acme", &token).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
        assert_eq!(status(&app, &a).await, "unauthenticated");
        assert_eq!(status(&app, &c).await, "unauthenticated");
        assert_eq!(status(&app, &d).await, "authenticated");
        let mut causes = logged_out_causes(&mut app, Duration::from_secs(2)).await;
        causes.sort();
        let mut expected = vec![
            (a, "oidc_logout".to_string()),
            (c, "oidc_logout".to_string()),
        ];
        expected.sort();
        assert_eq!(causes, expected);
    }
);

both_stores_idp!(
    a_sub_finds_the_customer_a_hosted_login_mapped_it_to,
    "customer_claim = \"email\"",
    |app: TestApp, idp: FakeIdp| async move {
        idp.email_verified(Some(json!(true)));
        let a = hosted_login(&app, &idp, "s-1").await;
        assert_eq!(app.get(&a).await["customer"]["id"], "ada@example.com");
        let c = app.new_interaction().await;
        app.authenticate(&c, "ada@example.com").await;
        let token = sign(
            &claims(&app, &idp, json!({"sub": "cust-42"})),
            Signing::Key("a"),
        );
        assert_eq!(post_logout(&app, "acme", &token).await.status, 200);
        assert_eq!(status(&app, &a).await, "unauthenticated");
        assert_eq!(status(&app, &c).await, "unauthenticated");
    }
);

/// Each check of the logout token: the token that breaks only it is 400
/// `invalid_request` with a description, and the session it names stays
/// signed in.
async fn refusal_matrix(backend: Backend) {
    let Some((mut app, idp)) = spawn_logout(backend, "").await else {
        return;
    };
    // A session ended: its token, sent again, is the replay below.
    let ended = hosted_login(&app, &idp, "s-0").await;
    let replayed = sign(
        &claims(&app, &idp, json!({"sid": "s-0"})),
        Signing::Key("a"),
    );
    assert_eq!(post_logout(&app, "acme", &replayed).await.status, 200);
    assert_eq!(status(&app, &ended).await, "unauthenticated");
    let a = hosted_login(&app, &idp, "s-1").await;
    let now = app.now().unix_seconds();
    let valid = |change: Value| changed(claims(&app, &idp, json!({"sid": "s-1"})), &change);
    let cases: Vec<(&str, String)> = vec![
        (
            "a key outside the set",
            sign(&valid(json!({})), Signing::Key("b")),
        ),
        ("alg none", sign(&valid(json!({})), Signing::AlgNone("a"))),
        (
            "HMAC with the client secret",
            sign(&valid(json!({})), Signing::Hs256WithSecret("a")),
        ),
        (
            "iss",
            sign(
                &valid(json!({"iss": "https://other-provider.example"})),
                Signing::Key("a"),
            ),
        ),
        (
            "aud",
            sign(&valid(json!({"aud": "another-client"})), Signing::Key("a")),
        ),
        (
            "several aud, no azp",
            sign(
                &valid(json!({"aud": [CLIENT_ID, "another-client"]})),
                Signing::Key("a"),
            ),
        ),
        (
            "azp another client",
            sign(
                &valid(json!({"aud": [CLIENT_ID, "another-client"], "azp": "another-client"})),
                Signing::Key("a"),
            ),
        ),
        (
            "iat older than 5 minutes",
            sign(&valid(json!({"iat": now - 301})), Signing::Key("a")),
        ),
        (
            "iat over 60 s ahead",
            sign(&valid(json!({"iat": now + 61})), Signing::Key("a")),
        ),
        (
            "no iat",
            sign(&valid(json!({"iat": null})), Signing::Key("a")),
        ),
        (
            "expired",
            sign(&valid(json!({"exp": now - 61})), Signing::Key("a")),
        ),
        (
            "no jti",
            sign(&valid(json!({"jti": null})), Signing::Key("a")),
        ),
        (
            "no events",
            sign(&valid(json!({"events": null})), Signing::Key("a")),
        ),
        (
            "another event",
            sign(
                &valid(json!({"events": {"http://schemas.openid.net/event/other": {}}})),
                Signing::Key("a"),
            ),
        ),
        (
            "the event not an object",
            sign(&valid(json!({"events": {EVENT: true}})), Signing::Key("a")),
        ),
        (
            "neither sub nor sid",
            sign(&valid(json!({"sid": null})), Signing::Key("a")),
        ),
        (
            "a nonce",
            sign(&valid(json!({"nonce": "n-1"})), Signing::Key("a")),
        ),
        ("replay", replayed.clone()),
        ("not a token", "not-a-token".to_string()),
    ];
    while app
        .next_event("interaction.logged_out", Duration::from_millis(50))
        .await
        .is_some()
    {}
    for (case, token) in &cases {
        let answer = post_logout(&app, "acme", token).await;
        assert_eq!(answer.status, 400, "{case}: {}", answer.body);
        assert!(
            answer.content_type.starts_with("application/json"),
            "{case}"
        );
        assert_eq!(answer.body["error"], "invalid_request", "{case}");
        assert!(
            answer.body["error_description"]
                .as_str()
                .is_some_and(|d| !d.is_empty()),
            "{case}"
        );
        assert_eq!(answer.cache_control, "no-store", "{case}");
        assert_eq!(
            status(&app, &a).await,
            "authenticated",
            "{case} changed something"
        );
    }
    // No body, or not a form: 400 too.
    let res = app
        .request(Method::POST, "/oidc/backchannel-logout/acme", None)
        .header("content-type", "application/json")
        .body(json!({"logout_token": replayed}).to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 400);
    assert!(app
        .next_event("interaction.logged_out", Duration::from_millis(300))
        .await
        .is_none());
    // A team that does not serve it: 404 (globex has no [oidc]).
    assert_eq!(post_logout(&app, "globex", &replayed).await.status, 404);
    assert_eq!(post_logout(&app, "nope", &replayed).await.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_logout_token_check_refuses_its_case_memory() {
    refusal_matrix(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_logout_token_check_refuses_its_case_redis() {
    refusal_matrix(Backend::Redis).await;
}

#[tokio::test]
async fn without_backchannel_logout_the_address_is_404() {
    let Some((app, idp)) = crate::oidc::spawn_idp(Backend::Memory, "", "").await else {
        return;
    };
    let token = sign(
        &claims(&app, &idp, json!({"sub": "cust-42"})),
        Signing::Key("a"),
    );
    assert_eq!(post_logout(&app, "acme", &token).await.status, 404);
}

both_stores!(
    every_logged_out_event_says_its_cause,
    |mut app: TestApp| async move {
        let a = app.new_interaction().await;
        app.authenticate(&a, "cust-7").await;
        let res = app
            .request(
                Method::POST,
                &format!("/v1/interactions/{a}/logout"),
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        app.authenticate(&a, "cust-7").await;
        let res = app
            .post_signed(
                "/v1/customers/logout",
                &json!({"team": "acme", "customer_id": "cust-7"}),
                None,
            )
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(
            logged_out_causes(&mut app, Duration::from_secs(2)).await,
            [(a.clone(), "api".to_string()), (a, "website".to_string())]
        );
    }
);

/// A login begun with one provider is not finished by another: after the
/// team's `issuer` changed (here: a second instance on the same store with
/// another provider), the answer is 400 and no code goes to either.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_is_finished_only_by_the_issuer_it_was_begun_with() {
    let Some((first, idp_x)) = crate::oidc::spawn_idp(Backend::Memory, "", "").await else {
        return;
    };
    // X does not name itself in its answer (as Entra ID): only the issuer
    // the login was begun with tells the answer is not Y's.
    idp_x.misbehave(Misbehave::NoIss);
    let idp_y = FakeIdp::start().await;
    let second = spawn_with(
        Backend::Memory,
        Setup {
            store: Some(first.gateway.store().clone()),
            team_extra: idp_y.team_section(""),
            ..first.same_store()
        },
    )
    .await
    .unwrap();
    let (id, link) = oidc_link(&first, json!({})).await;
    let mut begun = start(&first, &link).await;
    begun.callback = begun.callback.replace(&first.base, &second.base);
    let page = finish(&second, &begun, Some(&begun.cookie)).await;
    assert_eq!(page.status, 400, "{}", page.body);
    assert_eq!((idp_x.token_calls(), idp_y.token_calls()), (0, 0));
    assert_ne!(status(&first, &id).await, "authenticated");
}

/// A `sid` logout forgets the conversation that remembers that session's
/// login, also once the chat's own authentication has ended by itself: a
/// recognized conversation outlives its authentication.
async fn a_sid_logout_forgets_the_recognition_of_its_login(backend: Backend) {
    let idp = FakeIdp::start().await;
    let setup = Setup {
        defaults: "recognize_for = \"30d\"\nauthenticated_ttl = \"15m\"\ninteraction_ttl = \"24h\""
            .into(),
        team_extra: idp.team_section("backchannel_logout = true\n"),
        ..Setup::default()
    };
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    idp.use_clock(app.clock.clone());
    idp.in_session("s-rec");
    let number = "+447400123459";
    let v = app
        .create(json!({"channel": "sms", "conversation_id": number,
                       "customer_ref": "cust-42", "contact": {"phone": number}}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let link = app.issue_link(&id, json!({"provider": "oidc"})).await;
    let path = link["short_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://gateway.test")
        .to_string();
    assert_eq!(login(&app, &path).await.status, 200);
    // The authentication ends by itself; the conversation still remembers.
    app.advance(20 * 60);
    let v = app.get(&id).await;
    assert_eq!(v["authenticated"], false, "{v}");
    assert_eq!(v["recognized"]["customer_id"], "cust-42", "{v}");
    let token = sign(
        &claims(&app, &idp, json!({"sid": "s-rec"})),
        Signing::Key("a"),
    );
    let answer = post_logout(&app, "acme", &token).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let v = app.get(&id).await;
    assert!(
        v["recognized"].is_null(),
        "the session's login is forgotten: {v}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sid_logout_forgets_the_recognition_of_its_login_memory() {
    a_sid_logout_forgets_the_recognition_of_its_login(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sid_logout_forgets_the_recognition_of_its_login_redis() {
    a_sid_logout_forgets_the_recognition_of_its_login(Backend::Redis).await;
}

/// One team's hung provider holds none of another team's requests
/// (docs/operations.md#one-team-never-holds-another): a flood of junk
/// logout tokens to a team whose provider accepts connections and never
/// answers is held 32 at a time, the rest answered at once 503
/// `temporarily_unavailable` with `Retry-After`; none waits on the
/// provider past its 5 s; meanwhile another team is answered as usual.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_provider_holds_its_own_team_only() {
    let (issuer, held) = hung_provider().await;
    let setup = Setup {
        team_extra: format!(
            "[oidc]\nissuer = \"{issuer}\"\nclient_id = \"cg\"\nclient_secret = \"client-secret-of-a-hung-provider\"\nbackchannel_logout = true\n"
        ),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let junk = "eyJhbGciOiJSUzI1NiIsImtpZCI6Imp1bmsifQ.eyJzdWIiOiJ4In0.c2ln";
    let form = format!("logout_token={junk}");
    let flood = Flood {
        path: "/oidc/backchannel-logout/acme",
        content_type: "application/x-www-form-urlencoded",
        body: &form,
        error_member: "error",
    };
    flood.holds_its_own_team_only(&app).await;
    held.abort();
}

/// A provider that takes every connection and never answers: its
/// address, and the task holding the connections.
pub(crate) async fn hung_provider() -> (String, tokio::task::JoinHandle<()>) {
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let issuer = format!("http://{}", hung.local_addr().unwrap());
    let held = tokio::spawn(async move {
        let mut open = Vec::new();
        while let Ok((socket, _)) = hung.accept().await {
            open.push(socket);
        }
    });
    (issuer, held)
}

/// 48 junk tokens at once to one team's receiver whose provider hangs,
/// and meanwhile a request of another team.
pub(crate) struct Flood<'a> {
    pub path: &'a str,
    pub content_type: &'a str,
    pub body: &'a str,
    /// The member of the receiver's error object that holds its code.
    pub error_member: &'a str,
}

impl Flood<'_> {
    /// 32 of the flood wait (each at most about the provider's 5 s), the
    /// rest are answered at once 503 in the receiver's own format with
    /// `Retry-After`, and the other team is answered as usual meanwhile.
    pub(crate) async fn holds_its_own_team_only(&self, app: &TestApp) {
        let started = std::time::Instant::now();
        let flood: Vec<_> = (0..48)
            .map(|_| {
                let request = app
                    .client
                    .post(app.url(self.path))
                    .header("content-type", self.content_type)
                    .body(self.body.to_string());
                tokio::spawn(async move {
                    let res = request.send().await.unwrap();
                    let retry_after = res.headers().get("retry-after").is_some();
                    let status = res.status().as_u16();
                    let body: Value = res.json().await.unwrap_or(Value::Null);
                    (status, retry_after, body, started.elapsed())
                })
            })
            .collect();
        // Meanwhile, another team is answered as usual, at once.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let other = app
            .client
            .post(app.url("/v1/interactions"))
            .bearer_auth(&app.keys.globex_bot)
            .json(
                &json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()}),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(other.status().as_u16(), 201, "globex is not held");
        assert!(started.elapsed() < Duration::from_secs(4), "at once");
        let mut refused_at_once = 0;
        for answer in flood {
            let (status, retry_after, body, took) = answer.await.unwrap();
            assert_eq!(status, 503, "{body}");
            assert_eq!(body[self.error_member], "temporarily_unavailable", "{body}");
            // Nobody waits on the hung provider much past its 5 s.
            assert!(took < Duration::from_secs(15), "answered after {took:?}");
            if retry_after {
                refused_at_once += 1;
            }
        }
        assert_eq!(refused_at_once, 48 - 32, "only the 32 in flight wait");
    }
}
