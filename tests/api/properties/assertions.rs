//! Pre-chat assertions through the server: any text or any one-character
//! change of a real assertion is `invalid_token`; a signed assertion with
//! any claims authenticates exactly the normalised customer, or is a 422
//! naming the claim (docs/decisions/0019-identity-values.md).
use chatgate::domain::input::{customer_id, display, MAX_IDENTITY_CHARS};
use proptest::prelude::*;
use serde_json::{json, Value};

use super::{hostile, problem, run, MARK};
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_assertion_text_is_invalid_token() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let id = app.new_interaction().await;
    let app = &app;
    let path = &format!("/v1/interactions/{id}/assertion");
    let text = prop_oneof![
        hostile(),
        "[A-Za-z0-9_-]{10,40}\\.[A-Za-z0-9_-]{10,80}\\.[A-Za-z0-9_-]{0,43}",
    ];
    run(64, text, |assertion| async move {
        let res = app
            .post_json(
                path,
                Some(&app.keys.bot),
                &json!({ "assertion": assertion }),
            )
            .await;
        problem(res, &[401], &["invalid_token"]).await?;
        Ok(())
    });
    // A real assertion with one character changed.
    let good = app.assertion(app.assertion_claims("cust-1"));
    run(
        64,
        (any::<prop::sample::Index>(), "[A-Za-z0-9_.=-]"),
        |(i, c)| {
            let mut t = good.clone();
            let at = i.index(t.len());
            let changed = &t[at..=at] != c.as_str();
            t.replace_range(at..=at, &c);
            async move {
                if changed {
                    let res = app
                        .post_json(path, Some(&app.keys.bot), &json!({ "assertion": t }))
                        .await;
                    problem(res, &[401], &["invalid_token"]).await?;
                }
                Ok(())
            }
        },
    );
}

/// A claim value: plausible, lookalike (fullwidth, padded), hostile, or
/// carrying [`MARK`].
fn claim() -> impl Strategy<Value = String> {
    prop_oneof![
        "[A-Za-z0-9._@+-]{1,20}",
        "[ \u{3000}]{0,2}[\u{ff10}-\u{ff19}\u{ff21}-\u{ff3a}\u{ff41}-\u{ff5a}]{1,12}[ \u{3000}]{0,2}",
        hostile(),
        hostile().prop_map(|s| format!("{s}{MARK}")),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn any_signed_claims_authenticate_the_normalised_customer_or_are_422() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let app = &app;
    let claims = (
        claim(),
        prop::option::of(claim()),
        prop::option::of(claim()),
        prop::option::of(claim()),
    );
    run(48, claims, |(sub, name, phone, region)| async move {
        let id = app.new_interaction().await;
        let mut c = app.assertion_claims(&sub);
        c.as_object_mut().unwrap().remove("name");
        for (k, v) in [("name", &name), ("phone", &phone), ("region", &region)] {
            if let Some(v) = v {
                c[k] = json!(v);
            }
        }
        let res = app
            .post_json(
                &format!("/v1/interactions/{id}/assertion"),
                Some(&app.keys.bot),
                &json!({ "assertion": app.assertion(c) }),
            )
            .await;
        // An empty `sub` is a required claim missing (docs/api.md#pre-chat-assertions): 401.
        if sub.is_empty() {
            problem(res, &[401], &["invalid_token"]).await?;
            return Ok(());
        }
        let want_id = customer_id("assertion.sub", &sub);
        let displays_ok = [&name, &phone, &region]
            .into_iter()
            .flatten()
            .all(|v| display("x", v, MAX_IDENTITY_CHARS).is_ok());
        match want_id {
            Ok(want) if displays_ok => {
                prop_assert_eq!(res.status().as_u16(), 200);
                let body: Value = res.json().await.unwrap();
                prop_assert_eq!(&body["interaction"]["customer"]["id"], &json!(want));
                if let Some(name) = &name {
                    prop_assert_eq!(&body["interaction"]["customer"]["name"], &json!(name));
                }
            }
            _ => {
                let body = problem(res, &[422], &["invalid_request"]).await?;
                let detail = body["detail"].as_str().unwrap_or("");
                prop_assert!(detail.starts_with("assertion."), "{}", body);
            }
        }
        Ok(())
    });
}
