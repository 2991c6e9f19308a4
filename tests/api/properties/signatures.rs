//! The login callback and the back-channel logout: unsigned is refused and
//! changes nothing; a signed callback's `customer` is held to the identity
//! rules, and a refused one uses nothing up.
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

/// A login page's `customer`: usually an `id`, other members with names
/// valid or not; values plausible, lookalike (fullwidth) or hostile.
fn customer_members() -> impl Strategy<Value = Vec<(String, String)>> {
    let name = prop_oneof![
        3 => prop::sample::select(vec!["name", "email", "phone", "first.name_2-x"])
            .prop_map(String::from),
        1 => "[A-Za-z0-9_.-]{1,70}",
        1 => hostile(),
    ];
    let value = || {
        prop_oneof![
            3 => "[A-Za-z0-9._@+ -]{1,20}",
            2 => "[\\u{3000} ]{0,1}[\\u{ff10}-\\u{ff19}\\u{ff41}-\\u{ff5a}]{1,10}",
            1 => hostile(),
        ]
    };
    let id = prop::option::weighted(0.8, value());
    (id, prop::collection::vec((name, value()), 0..3)).prop_map(|(id, mut members)| {
        members.extend(id.map(|v| ("id".to_string(), v)));
        members
    })
}

// A signed callback's `customer` is taken member by member under the
// identity rules: accepted, the interaction holds exactly the normalised
// members; refused, it is a 422 (400 without `id`) naming `customer` and
// the link is not used up (the same link then succeeds).
both_stores!(
    callback_customers_are_normalised_or_refused_without_using_the_link,
    |app: TestApp| async move {
        let app = &app;
        run(32, customer_members(), |members| async move {
            let id = app.new_interaction().await;
            let link = app.issue_link(&id, json!({})).await;
            let token = link["token"].as_str().unwrap();
            let object: serde_json::Map<String, Value> =
                members.iter().map(|(k, v)| (k.clone(), json!(v))).collect();
            let res = app
                .callback(token, "success", Value::Object(object.clone()))
                .await;
            let pairs = object
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str().unwrap()));
            match chatgate::domain::input::customer("customer", pairs) {
                Ok(want) if want.contains_key("id") => {
                    prop_assert_eq!(res.status().as_u16(), 200);
                    let got = app.get(&id).await["customer"].clone();
                    prop_assert_eq!(got, serde_json::to_value(&want).unwrap());
                }
                refused => {
                    let status: &[u16] = if refused.is_ok() { &[400] } else { &[422] };
                    let body = problem(res, status, &["invalid_request"]).await?;
                    let detail = body["detail"].as_str().unwrap_or("");
                    prop_assert!(detail.starts_with("customer"), "{}", body);
                    let retry = app
                        .callback(token, "success", json!({"id": "cust-1"}))
                        .await;
                    prop_assert_eq!(retry.status().as_u16(), 200);
                }
            }
            Ok(())
        });
    }
);
