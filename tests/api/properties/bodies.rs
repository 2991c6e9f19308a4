//! What a client puts in a JSON body: create bodies, submitted codes, and
//! any body to any endpoint.
use proptest::prelude::*;
use reqwest::Method;
use serde_json::{json, Value};
use uuid::Uuid;

use super::{hostile, json_value, problem, run};
use crate::helpers::*;

/// A create body with each member either right or arbitrary.
fn create_body() -> impl Strategy<Value = Vec<u8>> {
    let member =
        |right: Value| prop_oneof![Just(Some(right)), Just(None), json_value().prop_map(Some)];
    let object = (
        member(json!("webchat")),
        member(json!("conv-1")),
        member(json!("cust-1")),
        member(json!("4829")),
    )
        .prop_map(|(channel, conversation, customer, pin)| {
            let mut o = serde_json::Map::new();
            for (k, v) in [
                ("channel", channel),
                ("conversation_id", conversation),
                ("customer_ref", customer),
                ("session_pin", pin),
            ] {
                if let Some(v) = v {
                    o.insert(k.into(), v);
                }
            }
            serde_json::to_vec(&Value::Object(o)).unwrap()
        });
    prop_oneof![
        object,
        json_value().prop_map(|v| serde_json::to_vec(&v).unwrap()),
        prop::collection::vec(any::<u8>(), 1..256),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_create_body_is_created_or_refused_as_documented() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let app = &app;
    run(96, create_body(), |body| async move {
        let res = app
            .request(Method::POST, "/v1/interactions", Some(&app.keys.bot))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        if res.status().is_success() {
            prop_assert!(matches!(res.status().as_u16(), 200 | 201));
        } else {
            problem(res, &[400, 422], &["invalid_request"]).await?;
        }
        Ok(())
    });
}

both_stores!(
    malformed_codes_are_422_and_cost_no_attempt,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let res = app
            .post_json(
                &format!("/v1/interactions/{id}/challenges"),
                Some(&app.keys.bot),
                &json!({"method": "otp"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let c: Value = res.json().await.unwrap();
        let path = format!(
            "/v1/interactions/{id}/challenges/{}/verify",
            c["challenge_id"].as_str().unwrap()
        );
        let app = &app;
        let path = &path;
        let code = prop_oneof![
            hostile(),
            "[0-9]{21,40}",
            ("[0-9]{0,10}", "[^0-9]", "[0-9]{0,10}").prop_map(|(a, x, b)| format!("{a}{x}{b}")),
            "[\u{ff10}-\u{ff19}\u{660}-\u{669}]{1,10}",
        ]
        .prop_filter("not 1 to 20 ASCII digits", |s| {
            !((1..=20).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit()))
        });
        run(48, code, |code| async move {
            let res = app
                .post_json(path, Some(&app.keys.bot), &json!({ "code": code }))
                .await;
            let body = problem(res, &[422], &["invalid_request"]).await?;
            prop_assert_eq!(
                body["detail"].as_str(),
                Some("code: must be 1 to 20 digits")
            );
            Ok(())
        });
        let wrong_type = [json!(123456), json!(null), json!(["1"]), json!({"c": 1})];
        for code in wrong_type {
            let res = app
                .post_json(path, Some(&app.keys.bot), &json!({ "code": code }))
                .await;
            assert_problem(res, 400, "invalid_request").await;
        }
        // No attempt was spent: a well-formed wrong code finds all three left.
        let res = app
            .post_json(path, Some(&app.keys.bot), &json!({"code": "0"}))
            .await;
        let body = assert_problem(res, 401, "invalid_code").await;
        assert_eq!(body["attempts_remaining"], 2, "{body}");
    }
);

/// A body for any endpoint: members the handlers know, each with a
/// plausible or an arbitrary value, plus arbitrary members and values.
fn any_endpoint_body() -> impl Strategy<Value = Value> {
    let key = prop::sample::select(vec![
        "method",
        "delivery",
        "to",
        "code",
        "assertion",
        "token",
        "outcome",
        "customer",
        "team",
        "customer_id",
        "channel",
        "conversation_id",
        "customer_ref",
        "session_pin",
        "contact",
        "stage",
        "scope",
        "expected_customer",
        "deliver",
        "phone",
        "email",
        "id",
        "name",
    ]);
    let plausible = prop::sample::select(vec![
        json!("otp"),
        json!("pin"),
        json!("chat"),
        json!("sms"),
        json!("email"),
        json!("success"),
        json!("failure"),
        json!("webchat"),
        json!("acme"),
        json!("123456"),
        json!("4829"),
        json!("cust-1"),
        json!("+15551230000"),
        json!("a@b.example"),
        json!("mid_chat"),
        json!("pre_chat"),
        json!(true),
        json!({"id": "cust-1", "name": "Ada"}),
        json!({"phone": "+15551230000", "email": "a@b.example"}),
    ]);
    let value = prop_oneof![3 => plausible, 2 => json_value()];
    prop_oneof![
        4 => prop::collection::btree_map(key, value, 0..5)
            .prop_map(|m| Value::Object(m.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        1 => json_value(),
    ]
}

// Whatever a caller posts to whichever endpoint, with whichever key, the
// answer is a success or a documented problem: a 4xx, or 502 when a
// provider fails. Never a 500 or 503, never an echo.
both_stores!(
    any_body_to_any_endpoint_is_a_documented_answer,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let cid = Uuid::now_v7().to_string();
        let app = &app;
        let paths = vec![
            "/v1/interactions".to_string(),
            format!("/v1/interactions/{id}/login-links"),
            format!("/v1/interactions/{id}/challenges"),
            format!("/v1/interactions/{id}/challenges/{cid}/verify"),
            format!("/v1/interactions/{id}/assertion"),
            format!("/v1/interactions/{id}/activity"),
            format!("/v1/interactions/{id}/logout"),
            "/v1/login/callback".to_string(),
            "/v1/customers/logout".to_string(),
            format!("/v1/subjects/interaction%3A{id}/unlock"),
        ];
        let keys = vec![
            Some(app.keys.bot.clone()),
            Some(app.keys.agent.clone()),
            Some(app.keys.admin.clone()),
            Some(app.keys.globex_bot.clone()),
            None,
        ];
        let strategy = (
            prop::sample::select(paths),
            prop::sample::select(keys),
            any_endpoint_body(),
        );
        run(96, strategy, |(path, key, body)| async move {
            let res = app.post_json(&path, key.as_deref(), &body).await;
            let status = res.status().as_u16();
            if !(200..300).contains(&status) {
                let codes = [
                    "invalid_request",
                    "unauthorized",
                    "invalid_token",
                    "invalid_signature",
                    "invalid_code",
                    "forbidden",
                    "customer_mismatch",
                    "banned",
                    "not_found",
                    "token_used",
                    "challenge_used",
                    "no_session_pin",
                    "not_authenticated",
                    "not_registered",
                    "token_expired",
                    "challenge_expired",
                    "challenge_exhausted",
                    "locked",
                    "rate_limited",
                    "channel_error",
                ];
                let allowed: Vec<u16> = (400..500).chain([502]).collect();
                problem(res, &allowed, &codes).await?;
            }
            Ok(())
        });
    }
);
