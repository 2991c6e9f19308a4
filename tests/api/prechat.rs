//! Pre-chat assertions (docs/api.md#pre-chat-assertions), without step-up.
use serde_json::{json, Value};

use crate::helpers::*;

async fn post_assertion(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/assertion"),
        Some(&app.keys.bot),
        &json!({"assertion": token}),
    )
    .await
}

both_stores!(
    assertion_authenticates_with_pre_chat,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let token = app.assertion(app.assertion_claims("cust-42"));
        let res = post_assertion(&app, &id, &token).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["authenticated"], true);
        assert_eq!(body["requires_2fa"], false);
        assert_eq!(body["interaction"]["method"], "pre_chat");
        assert_eq!(body["interaction"]["customer"]["id"], "cust-42");
        assert_eq!(body["interaction"]["customer"]["name"], "Ada");
        assert_eq!(app.get(&id).await["status"], "authenticated");
        // One-time.
        let res = post_assertion(&app, &id, &token).await;
        assert_problem(res, 409, "token_used").await;
    }
);

both_stores!(assertion_claims_are_checked, |app: TestApp| async move {
    let id = app.new_interaction().await;
    let base = app.assertion_claims("cust-42");
    let with = |k: &str, v: Value| {
        let mut c = base.clone();
        c[k] = v;
        c["jti"] = json!(uuid::Uuid::now_v7().to_string());
        c
    };
    let without = |k: &str| {
        let mut c = base.clone();
        c["jti"] = json!(uuid::Uuid::now_v7().to_string());
        c.as_object_mut().unwrap().remove(k);
        c
    };
    let now = app.now().unix_seconds();
    for claims in [
        with("iss", json!("globex")),
        with("aud", json!("someone-else")),
        without("sub"),
        without("iat"),
        without("exp"),
        without("jti"),
        // exp - iat over assertion_max_age (10 minutes).
        with("exp", json!(now + 601)),
    ] {
        let res = post_assertion(&app, &id, &app.assertion(claims.clone())).await;
        assert_eq!(res.status(), 401, "{claims}");
        assert_problem(res, 401, "invalid_token").await;
    }
    // Unknown kid.
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256);
    h.kid = Some("nope".into());
    let t = jsonwebtoken::encode(
        &h,
        &with("name", json!("x")),
        &jsonwebtoken::EncodingKey::from_secret(&app.keys.acme_key_bytes()),
    )
    .unwrap();
    assert_problem(post_assertion(&app, &id, &t).await, 401, "invalid_token").await;
    // HS512 with the right key.
    let mut h = jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS512);
    h.kid = Some("2026-11".into());
    let t = jsonwebtoken::encode(
        &h,
        &with("name", json!("x")),
        &jsonwebtoken::EncodingKey::from_secret(&app.keys.acme_key_bytes()),
    )
    .unwrap();
    assert_problem(post_assertion(&app, &id, &t).await, 401, "invalid_token").await;
    // Expired.
    let t = app.assertion(with("exp", json!(now + 60)));
    app.advance(66);
    assert_problem(post_assertion(&app, &id, &t).await, 410, "token_expired").await;
    assert_eq!(app.get(&id).await["status"], "unauthenticated");
    // Missing body field.
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/assertion"),
            Some(&app.keys.bot),
            &json!({}),
        )
        .await;
    assert_problem(res, 400, "invalid_request").await;
});

both_stores!(
    assertion_for_another_customer_is_a_mismatch,
    |app: TestApp| async move {
        let v = app
            .create(
                json!({"channel": "webchat", "conversation_id": "x", "customer_ref": "cust-42"}),
            )
            .await;
        let id = v["id"].as_str().unwrap();
        let res = post_assertion(&app, id, &app.assertion(app.assertion_claims("cust-43"))).await;
        assert_problem(res, 403, "customer_mismatch").await;
        let res = post_assertion(&app, id, &app.assertion(app.assertion_claims("cust-42"))).await;
        assert_eq!(res.status(), 200);
    }
);

both_stores!(
    no_device_record_is_kept_when_no_step_up_reads_it,
    |app: TestApp| async move {
        // With every step-up rule off (the default), a pre-chat login
        // remembers no device: no record waits 90 days for nothing.
        let backend = app.backend;
        drop(app);
        let Some((store, prefix)) = crate::outbox::own_store(backend).await else {
            return;
        };
        let setup = Setup {
            key_prefix: Some(prefix),
            store: Some(store.clone()),
            ..Setup::default()
        };
        let Some(app) = spawn_with(backend, setup).await else {
            return;
        };
        let devices = |sub: &str| chatgate::store::keys::devices("acme", sub);
        for sub in ["cust-1", "cust-2"] {
            let id = app.new_interaction().await;
            let mut claims = app.assertion_claims(sub);
            claims["fingerprint"] = json!("fp-1");
            claims["region"] = json!("eu");
            let res = post_assertion(&app, &id, &app.assertion(claims)).await;
            assert_eq!(res.status(), 200);
            let kept = store.get(&[devices(sub)]).await.unwrap();
            assert_eq!(kept, vec![None], "no device record for {sub}");
        }
    }
);
