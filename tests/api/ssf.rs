//! The Shared Signals (CAEP) push receiver
//! (docs/api.md#revocation-from-the-identity-provider), with the fake
//! provider's key set as the transmitter's: a `session-revoked` (and a
//! `credential-change`, per `on_credential_change`) logs the customer out
//! everywhere; a replay is 202 and does nothing; every refusal is RFC
//! 8935's error object with its code and changes nothing; a storm of
//! 1 000 tokens with 10 % replays logs out exactly whom it names.
use std::time::Duration;

use futures::StreamExt;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::oidc_logout::{changed, logged_out_causes};
use crate::oidc_provider::{sign, FakeIdp, Signing};

const SESSION_REVOKED: &str = "https://schemas.openid.net/secevent/caep/event-type/session-revoked";
const CREDENTIAL_CHANGE: &str =
    "https://schemas.openid.net/secevent/caep/event-type/credential-change";
const VERIFICATION: &str = "https://schemas.openid.net/secevent/ssf/event-type/verification";
const AUDIENCE: &str = "https://gateway.test/ssf/acme";

/// The acme team with an `[ssf]` whose transmitter is the fake provider
/// (`extra`: more `[ssf]` lines).
async fn spawn_ssf(backend: Backend, extra: &str) -> Option<(TestApp, FakeIdp)> {
    let idp = FakeIdp::start().await;
    let setup = Setup {
        team_extra: format!(
            "[ssf]\nissuer = \"{0}\"\njwks_uri = \"{0}/jwks\"\naudience = \"{AUDIENCE}\"\n{extra}\n",
            idp.issuer
        ),
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await?;
    Some((app, idp))
}

/// A valid token's claims: `events` for the customer, changed by `change`.
fn set(app: &TestApp, idp: &FakeIdp, events: Value, change: Value) -> Value {
    let valid = json!({"iss": idp.issuer, "aud": AUDIENCE, "iat": app.now().unix_seconds(),
        "jti": uuid::Uuid::now_v7().to_string(), "events": events});
    changed(valid, &change)
}

/// A `session-revoked` of `subject`.
fn revoked(subject: Value) -> Value {
    json!({SESSION_REVOKED: {"subject": subject, "event_timestamp": 1_795_000_000}})
}

fn opaque(id: &str) -> Value {
    json!({"format": "opaque", "id": id})
}

/// The status and JSON body (null when none) of a push.
async fn push(app: &TestApp, team: &str, token: &str, content_type: &str) -> (u16, Value) {
    let res = app
        .client
        .post(app.url(&format!("/ssf/{team}/events")))
        .header("content-type", content_type)
        .body(token.to_string())
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    let text = res.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn push_set(app: &TestApp, token: &str) -> (u16, Value) {
    push(app, "acme", token, "application/secevent+jwt").await
}

async fn signed_in(app: &TestApp, customer: &str) -> String {
    let id = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
            "customer_ref": customer}),
        )
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    app.authenticate(&id, customer).await;
    id
}

async fn status(app: &TestApp, id: &str) -> Value {
    app.get(id).await["status"].clone()
}

macro_rules! both_stores_ssf {
    ($name:ident, $extra:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some((app, idp)) = spawn_ssf(Backend::Memory, $extra).await {
                    ($body)(app, idp).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some((app, idp)) = spawn_ssf(Backend::Redis, $extra).await {
                    ($body)(app, idp).await;
                }
            }
        }
    };
}

both_stores_ssf!(
    a_session_revoked_logs_the_customer_out_everywhere_once,
    "",
    |mut app: TestApp, idp: FakeIdp| async move {
        let a = signed_in(&app, "cust-42").await;
        let b = signed_in(&app, "cust-42").await;
        let other = signed_in(&app, "cust-7").await;
        // The subject as the transmitter spells it: folded as every identifier is.
        let token = sign(
            &set(&app, &idp, revoked(opaque("CUST-42")), json!({})),
            Signing::Key("a"),
        );
        assert_eq!(push_set(&app, &token).await, (202, Value::Null));
        assert_eq!(status(&app, &a).await, "unauthenticated");
        assert_eq!(status(&app, &b).await, "unauthenticated");
        assert_eq!(status(&app, &other).await, "authenticated");
        let mut causes = logged_out_causes(&mut app, Duration::from_secs(2)).await;
        causes.sort();
        let mut expected = vec![(a.clone(), "ssf".to_string()), (b, "ssf".to_string())];
        expected.sort();
        assert_eq!(causes, expected);
        // A replay is accepted and does nothing: the customer signed in since stays.
        app.authenticate(&a, "cust-42").await;
        assert_eq!(push_set(&app, &token).await, (202, Value::Null));
        assert_eq!(status(&app, &a).await, "authenticated");
        if app.backend == Backend::Redis {
            crate::oidc_logout::revocation_keys_expire(&app).await;
        }
    }
);

both_stores_ssf!(
    subjects_and_event_types,
    "",
    |app: TestApp, idp: FakeIdp| async move {
        let (app_r, idp_r) = (&app, &idp);
        let push_events = move |events: Value, change: Value| {
            let token = sign(&set(app_r, idp_r, events, change), Signing::Key("a"));
            async move { push_set(app_r, &token).await.0 }
        };
        let a = signed_in(&app, "cust-42").await;
        // Change nothing: the verification event, an unknown type, an unknown
        // subject format, another customer.
        for events in [
            json!({VERIFICATION: {"state": "abc"}}),
            json!({"https://example.com/event-type/other": {"subject": opaque("cust-42")}}),
            revoked(json!({"format": "email", "email": "ada@example.com"})),
            revoked(opaque("cust-7")),
        ] {
            assert_eq!(
                push_events(events.clone(), json!({})).await,
                202,
                "{events}"
            );
            assert_eq!(status(&app, &a).await, "authenticated", "{events}");
        }
        // iss_sub names its sub; a top-level sub_id wins over the event's subject.
        assert_eq!(
            push_events(
                revoked(json!({"format": "iss_sub", "iss": idp.issuer, "sub": "cust-42"})),
                json!({})
            )
            .await,
            202
        );
        assert_eq!(status(&app, &a).await, "unauthenticated");
        app.authenticate(&a, "cust-42").await;
        assert_eq!(
            push_events(
                revoked(opaque("cust-7")),
                json!({"sub_id": opaque("cust-42")})
            )
            .await,
            202
        );
        assert_eq!(status(&app, &a).await, "unauthenticated");
        // credential-change logs out by default.
        app.authenticate(&a, "cust-42").await;
        let change = json!({CREDENTIAL_CHANGE: {"subject": opaque("cust-42"), "credential_type": "password", "change_type": "update"}});
        assert_eq!(push_events(change, json!({})).await, 202);
        assert_eq!(status(&app, &a).await, "unauthenticated");
    }
);

both_stores_ssf!(
    an_iss_sub_subject_names_a_customer_only_under_the_transmitter_s_issuer,
    "",
    |app: TestApp, idp: FakeIdp| async move {
        let a = signed_in(&app, "cust-42").await;
        // Another issuer's `sub`, and a `sub` without its issuer: nobody.
        for subject in [
            json!({"format": "iss_sub", "iss": "https://other-idp.example", "sub": "cust-42"}),
            json!({"format": "iss_sub", "sub": "cust-42"}),
        ] {
            let token = sign(
                &set(&app, &idp, revoked(subject.clone()), json!({})),
                Signing::Key("a"),
            );
            assert_eq!(push_set(&app, &token).await.0, 202, "{subject}");
            assert_eq!(status(&app, &a).await, "authenticated", "{subject}");
        }
        // The transmitter's own issuer names the customer.
        let ours = json!({"format": "iss_sub", "iss": idp.issuer, "sub": "cust-42"});
        let token = sign(
            &set(&app, &idp, revoked(ours), json!({})),
            Signing::Key("a"),
        );
        assert_eq!(push_set(&app, &token).await.0, 202);
        assert_eq!(status(&app, &a).await, "unauthenticated");
    }
);

both_stores_ssf!(
    credential_change_can_be_ignored,
    "on_credential_change = \"ignore\"",
    |app: TestApp, idp: FakeIdp| async move {
        let a = signed_in(&app, "cust-42").await;
        let change = json!({CREDENTIAL_CHANGE: {"subject": opaque("cust-42"), "credential_type": "password", "change_type": "update"}});
        let token = sign(&set(&app, &idp, change, json!({})), Signing::Key("a"));
        assert_eq!(push_set(&app, &token).await.0, 202);
        assert_eq!(status(&app, &a).await, "authenticated");
        let token = sign(
            &set(&app, &idp, revoked(opaque("cust-42")), json!({})),
            Signing::Key("a"),
        );
        assert_eq!(push_set(&app, &token).await.0, 202);
        assert_eq!(status(&app, &a).await, "unauthenticated");
    }
);

/// Each refusal: RFC 8935's error object with its code, and nothing
/// changes (the customer it names stays signed in).
async fn refusal_matrix(backend: Backend) {
    let Some((app, idp)) = spawn_ssf(backend, "").await else {
        return;
    };
    let a = signed_in(&app, "cust-42").await;
    let now = app.now().unix_seconds();
    let valid = |change: Value| set(&app, &idp, revoked(opaque("cust-42")), change);
    let key = |c: Value| sign(&valid(c), Signing::Key("a"));
    let cases: Vec<(&str, String, &str, &str)> = vec![
        (
            "a key outside the set",
            sign(&valid(json!({})), Signing::Key("b")),
            "application/secevent+jwt",
            "invalid_key",
        ),
        (
            "alg none",
            sign(&valid(json!({})), Signing::AlgNone("a")),
            "application/secevent+jwt",
            "invalid_key",
        ),
        (
            "HMAC",
            sign(&valid(json!({})), Signing::Hs256WithSecret("a")),
            "application/secevent+jwt",
            "invalid_key",
        ),
        (
            "a signature of other claims",
            {
                let good = key(json!({}));
                let other = key(json!({"iss": "https://other.example"}));
                let sig = good.rsplit('.').next().unwrap();
                let (head, _) = other.rsplit_once('.').unwrap();
                format!("{head}.{sig}")
            },
            "application/secevent+jwt",
            "invalid_key",
        ),
        (
            "iss",
            key(json!({"iss": "https://other.example"})),
            "application/secevent+jwt",
            "invalid_issuer",
        ),
        (
            "aud",
            key(json!({"aud": "https://other.example/ssf"})),
            "application/secevent+jwt",
            "invalid_audience",
        ),
        (
            "iat ahead",
            key(json!({"iat": now + 61})),
            "application/secevent+jwt",
            "invalid_request",
        ),
        (
            "no iat",
            key(json!({"iat": null})),
            "application/secevent+jwt",
            "invalid_request",
        ),
        (
            "no jti",
            key(json!({"jti": null})),
            "application/secevent+jwt",
            "invalid_request",
        ),
        (
            "no events",
            key(json!({"events": null})),
            "application/secevent+jwt",
            "invalid_request",
        ),
        (
            "the media type",
            key(json!({})),
            "application/jwt",
            "invalid_request",
        ),
        (
            "not a token",
            "not-a-token".to_string(),
            "application/secevent+jwt",
            "invalid_request",
        ),
    ];
    for (case, token, media, code) in &cases {
        let (status_code, body) = push(&app, "acme", token, media).await;
        assert_eq!(status_code, 400, "{case}: {body}");
        assert_eq!(body["err"], *code, "{case}: {body}");
        assert!(
            body["description"].as_str().is_some_and(|d| !d.is_empty()),
            "{case}"
        );
        assert_eq!(
            status(&app, &a).await,
            "authenticated",
            "{case} changed something"
        );
    }
    // A team without [ssf]: 404.
    let (status_code, _) = push(&app, "globex", &key(json!({})), "application/secevent+jwt").await;
    assert_eq!(status_code, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_is_rfc_8935s_error_memory() {
    refusal_matrix(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_refusal_is_rfc_8935s_error_redis() {
    refusal_matrix(Backend::Redis).await;
}

/// 1 000 tokens at once, 100 of them replays of others: every one is 202,
/// each customer named is logged out once, and nobody else.
async fn storm(backend: Backend) {
    let Some((mut app, idp)) = spawn_ssf(backend, "").await else {
        return;
    };
    const SIGNED_IN: usize = 50;
    let mut ids = Vec::new();
    for i in 0..SIGNED_IN {
        ids.push(signed_in(&app, &format!("cust-{i}")).await);
    }
    let bystander = signed_in(&app, "cust-bystander").await;
    while app
        .next_event("interaction.logged_out", Duration::from_millis(50))
        .await
        .is_some()
    {}
    // 900 distinct tokens for 900 customers (the first 50 signed in), and
    // 100 replays of the tokens of the signed-in ones (each twice).
    let tokens: Vec<String> = (0..900)
        .map(|i| {
            sign(
                &set(&app, &idp, revoked(opaque(&format!("cust-{i}"))), json!({})),
                Signing::Key("a"),
            )
        })
        .collect();
    let mut all: Vec<&String> = tokens.iter().collect();
    for i in 0..100 {
        all.push(&tokens[i % SIGNED_IN]);
    }
    let statuses: Vec<u16> = futures::stream::iter(all)
        .map(|t| {
            let app = &app;
            async move { push_set(app, t).await.0 }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    assert_eq!(statuses.len(), 1000);
    assert!(statuses.iter().all(|s| *s == 202), "{statuses:?}");
    for id in &ids {
        assert_eq!(status(&app, id).await, "unauthenticated");
    }
    assert_eq!(status(&app, &bystander).await, "authenticated");
    let causes = logged_out_causes(&mut app, Duration::from_secs(3)).await;
    assert_eq!(causes.len(), SIGNED_IN, "one logout each");
    let mut logged: Vec<&String> = causes.iter().map(|(id, _)| id).collect();
    logged.sort();
    logged.dedup();
    assert_eq!(logged.len(), SIGNED_IN);
    assert!(causes.iter().all(|(_, c)| c == "ssf"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_with_replays_logs_out_exactly_memory() {
    storm(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_storm_with_replays_logs_out_exactly_redis() {
    storm(Backend::Redis).await;
}

/// A transmitter whose key set hangs holds its own team's receiver only
/// (the flood of `oidc_logout::Flood`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_transmitter_holds_its_own_team_only() {
    let (issuer, held) = crate::oidc_logout::hung_provider().await;
    let setup = Setup {
        team_extra: format!(
            "[ssf]\nissuer = \"{issuer}\"\njwks_uri = \"{issuer}/jwks\"\naudience = \"{AUDIENCE}\"\n"
        ),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let flood = crate::oidc_logout::Flood {
        path: "/ssf/acme/events",
        content_type: "application/secevent+jwt",
        body: "eyJhbGciOiJSUzI1NiIsImtpZCI6Imp1bmsifQ.eyJzdWIiOiJ4In0.c2ln",
        error_member: "err",
    };
    flood.holds_its_own_team_only(&app).await;
    held.abort();
}
