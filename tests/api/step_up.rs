//! Step-up (docs/api.md#pre-chat-assertions): a pending step-up ends with
//! its assertion, on back-channel logout, and on a new link or assertion;
//! an assertion whose identity claims break the identifier rules is refused.
use serde_json::{json, Value};

use crate::helpers::*;

fn step_up_always() -> Setup {
    Setup {
        team_extra: "[settings.step_up]\nalways = true\n".into(),
        ..Setup::default()
    }
}

async fn post_assertion(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/assertion"),
        Some(&app.keys.bot),
        &json!({"assertion": token}),
    )
    .await
}

/// An assertion for `sub` that answers `requires_2fa`, valid for `secs`.
async fn step_up_for(app: &TestApp, id: &str, sub: &str, secs: i64) {
    let mut claims = app.assertion_claims(sub);
    claims["exp"] = json!(app.now().unix_seconds() + secs);
    let res = post_assertion(app, id, &app.assertion(claims)).await;
    assert_eq!(res.status(), 200);
    let b: Value = res.json().await.unwrap();
    assert_eq!(b["requires_2fa"], true, "{b}");
    assert_eq!(b["interaction"]["status"], "pending");
}

fn proven(v: &Value) -> &Value {
    &v["customer"]["id"]
}

both_stores!(
    stale_step_up_cannot_complete,
    setup: step_up_always(),
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        step_up_for(&app, &id, "victim-7", 8).await;
        app.advance(20);
        // The assertion is dead, and so is the step-up it asked for.
        assert_eq!(app.get(&id).await["status"], "unauthenticated");
        let (cid, code) = app.start_otp(&id).await;
        let res = app.verify_code(&id, &cid, &code).await;
        let v: Value = res.json().await.unwrap();
        assert_ne!(proven(&v["interaction"]), "victim-7", "{v}");
        assert_ne!(proven(&app.get(&id).await), "victim-7");
    }
);

both_stores!(
    step_up_challenge_ends_with_its_assertion,
    setup: step_up_always(),
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        step_up_for(&app, &id, "victim-7", 30).await;
        let (cid, code) = app.start_otp(&id).await;
        // The OTP lives 3 minutes, the step-up 30 s: the step-up wins.
        app.advance(31);
        assert_problem(app.verify_code(&id, &cid, &code).await, 410, "challenge_expired").await;
        let v = app.get(&id).await;
        assert_eq!(v["status"], "unauthenticated", "{v}");
        assert!(v["customer"].is_null(), "{v}");
    }
);

both_stores!(
    step_up_ends_on_back_channel_logout,
    setup: step_up_always(),
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        step_up_for(&app, &id, "victim-7", 300).await;
        let (cid, code) = app.start_otp(&id).await;
        let res = app
            .post_signed(
                "/v1/customers/logout",
                &json!({"team": "acme", "customer_id": "victim-7"}),
                None,
            )
            .await;
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 1}));
        assert_problem(app.verify_code(&id, &cid, &code).await, 410, "challenge_expired").await;
        assert_eq!(app.get(&id).await["status"], "unauthenticated");
    }
);

both_stores!(
    step_up_ends_on_a_new_link_or_assertion,
    setup: step_up_always(),
    |app: TestApp| async move {
        // A new link.
        let id = app.new_interaction().await;
        step_up_for(&app, &id, "victim-7", 300).await;
        let (cid, code) = app.start_otp(&id).await;
        app.issue_link(&id, json!({})).await;
        assert_problem(app.verify_code(&id, &cid, &code).await, 410, "challenge_expired").await;
        assert_ne!(proven(&app.get(&id).await), "victim-7");

        // A new assertion for someone else: the first step-up's OTP cannot
        // complete the second (nor the first).
        let id = app.new_interaction().await;
        step_up_for(&app, &id, "victim-7", 300).await;
        let (cid, code) = app.start_otp(&id).await;
        step_up_for(&app, &id, "other-8", 300).await;
        assert_problem(app.verify_code(&id, &cid, &code).await, 410, "challenge_expired").await;
        // The second step-up's own OTP completes it, as other-8.
        let (cid, code) = app.start_otp(&id).await;
        let v: Value = app.verify_code(&id, &cid, &code).await.json().await.unwrap();
        assert_eq!(proven(&v["interaction"]), "other-8", "{v}");
        assert_eq!(v["interaction"]["method"], "otp");
    }
);

both_stores!(
    hostile_assertion_claims_are_refused,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let long = "x".repeat(2000);
        for (claim, value) in [
            ("sub", "cust\u{0}42"),
            ("sub", "cust\u{200B}42"),
            ("sub", "\u{202E}24-tsuc"),
            ("sub", long.as_str()),
            ("name", "Ada\u{1b}[31m"),
            ("name", "Ada\nEve"),
            ("name", long.as_str()),
            ("phone", "+1555\r\n"),
            ("email", "a\u{202E}@x.example"),
        ] {
            let mut claims = app.assertion_claims("cust-42");
            claims[claim] = json!(value);
            let res = post_assertion(&app, &id, &app.assertion(claims.clone())).await;
            let b = assert_problem(res, 422, "invalid_request").await;
            assert!(
                b["detail"]
                    .as_str()
                    .unwrap()
                    .contains(&format!("assertion.{claim}")),
                "{b}"
            );
            // Refused before anything changed.
            let v = app.get(&id).await;
            assert_eq!(v["status"], "unauthenticated", "{claim}: {v}");
        }
        // An empty `sub` is a required claim missing: 401, as docs/api.md#pre-chat-assertions says.
        let mut claims = app.assertion_claims("cust-42");
        claims["sub"] = json!("");
        let res = post_assertion(&app, &id, &app.assertion(claims)).await;
        assert_problem(res, 401, "invalid_token").await;
        // A refused assertion used nothing up: its jti still works, mended.
        let mut claims = app.assertion_claims("cust-42");
        let jti = claims["jti"].clone();
        claims["name"] = json!("Ada\u{0}");
        assert_problem(
            post_assertion(&app, &id, &app.assertion(claims)).await,
            422,
            "invalid_request",
        )
        .await;
        let mut claims = app.assertion_claims("cust-42");
        claims["jti"] = jti;
        assert_eq!(
            post_assertion(&app, &id, &app.assertion(claims))
                .await
                .status(),
            200
        );
    }
);
