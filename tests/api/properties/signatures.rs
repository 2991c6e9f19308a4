//! Standard Webhooks headers on the back-channel logout and the login
//! callback: unsigned is refused and changes nothing.
use proptest::prelude::*;
use reqwest::header::HeaderValue;
use reqwest::Response;
use serde_json::{json, Value};

use super::{header_value, hostile, problem, run};
use crate::helpers::*;

/// Three optional `webhook-*` header values.
fn webhook_headers() -> impl Strategy<Value = [Option<HeaderValue>; 3]> {
    let one = || {
        prop_oneof![
            Just(None),
            header_value().prop_map(Some),
            "v1,[A-Za-z0-9+/]{43}=( v1,[A-Za-z0-9+/]{43}=){0,2}"
                .prop_map(|s| Some(HeaderValue::from_str(&s).unwrap())),
            "[0-9]{1,12}".prop_map(|s| Some(HeaderValue::from_str(&s).unwrap())),
        ]
    };
    [one(), one(), one()]
}

async fn post_with_headers(
    app: &TestApp,
    path: &str,
    body: &Value,
    headers: [Option<HeaderValue>; 3],
) -> Response {
    let mut rb = app
        .client
        .post(app.url(path))
        .header("content-type", "application/json")
        .body(serde_json::to_vec(body).unwrap());
    for (name, value) in ["webhook-id", "webhook-timestamp", "webhook-signature"]
        .into_iter()
        .zip(headers)
    {
        if let Some(v) = value {
            rb = rb.header(name, v);
        }
    }
    rb.send().await.unwrap()
}

both_stores!(
    unsigned_customer_logout_is_invalid_signature,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-7").await;
        let app = &app;
        let team = prop_oneof![
            Just("acme".to_string()),
            Just("nobody".to_string()),
            "[a-z]{1,10}"
        ];
        run(
            48,
            (webhook_headers(), team),
            |(headers, team)| async move {
                let body = json!({"team": team, "customer_id": "cust-7"});
                let res = post_with_headers(app, "/v1/customers/logout", &body, headers).await;
                problem(res, &[401], &["invalid_signature"]).await?;
                Ok(())
            },
        );
        assert_eq!(app.get(&id).await["status"], "authenticated");
    }
);

both_stores!(
    callback_with_any_signature_headers_is_refused_and_uses_nothing,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let token = link["token"].as_str().unwrap().to_string();
        let app = &app;
        let body = &json!({"token": token, "outcome": "success", "customer": {"id": "cust-1"}});
        run(48, webhook_headers(), |headers| async move {
            let res = post_with_headers(app, "/v1/login/callback", body, headers).await;
            problem(res, &[401], &["invalid_signature"]).await?;
            Ok(())
        });
        // A signed callback with any token text is `invalid_token`.
        run(48, hostile(), |token| async move {
            let body = json!({"token": token, "outcome": "success", "customer": {"id": "c"}});
            let res = app.post_signed("/v1/login/callback", &body, None).await;
            problem(res, &[401], &["invalid_token"]).await?;
            Ok(())
        });
        // Nothing was used up: the real callback still succeeds.
        let res = app
            .callback(&token, "success", json!({"id": "cust-1"}))
            .await;
        assert_eq!(res.status(), 200);
    }
);
