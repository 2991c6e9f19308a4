//! "Recent and strong enough for this action?" (docs/api.md#assurance-for-one-action).
use serde_json::{json, Value};

use crate::helpers::*;

async fn assurance(app: &TestApp, id: &str, query: &str) -> reqwest::Response {
    app.request(
        reqwest::Method::GET,
        &format!("/v1/interactions/{id}/assurance?{query}"),
        Some(&app.keys.bot),
    )
    .send()
    .await
    .unwrap()
}

async fn ok(app: &TestApp, id: &str, query: &str) -> Value {
    let res = assurance(app, id, query).await;
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.unwrap()
}

/// Authenticates `id` again with an OTP sent into the chat (a step-up).
async fn otp_step_up(app: &TestApp, id: &str) {
    let (cid, code) = app.start_otp(id).await;
    assert_eq!(app.verify_code(id, &cid, &code).await.status(), 200);
}

both_stores!(
    a_fresh_login_satisfies_and_a_method_filter_does_not,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-a").await;
        let v = ok(&app, &id, "max_age=5m&methods=login_link,otp").await;
        assert_eq!(v["satisfied"], true, "{v}");
        assert_eq!(v["unmet"], json!([]));
        assert_eq!(v["interaction_id"], id.as_str());
        assert_eq!(v["status"], "authenticated");
        assert_eq!(v["method"], "login_link");
        assert_eq!(v["age_seconds"], 0);
        assert!(v["authenticated_at"].is_string());
        let v = ok(&app, &id, "methods=otp,pin").await;
        assert_eq!(v["satisfied"], false);
        assert_eq!(v["unmet"], json!(["method"]));
        // No requirement at all: authenticated is enough.
        assert_eq!(ok(&app, &id, "").await["satisfied"], true);
    }
);

both_stores!(
    an_old_authentication_is_unmet_until_an_otp_renews_it,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-b").await;
        app.advance(400);
        let v = ok(&app, &id, "max_age=5m").await;
        assert_eq!(v["unmet"], json!(["max_age"]), "{v}");
        assert_eq!(v["age_seconds"], 400);
        otp_step_up(&app, &id).await;
        let v = ok(&app, &id, "max_age=5m&methods=otp").await;
        assert_eq!(v["satisfied"], true, "{v}");
        assert_eq!(v["method"], "otp");
        assert_eq!(v["age_seconds"], 0);
        // The step-up keeps whom the login proved: the website's logout of
        // that customer still finds the interaction.
        assert_eq!(app.get(&id).await["customer"]["id"], "cust-b");
        let res = app
            .post_signed(
                "/v1/customers/logout",
                &json!({"team": "acme", "customer_id": "cust-b"}),
                None,
            )
            .await;
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 1}));
    }
);

both_stores!(
    unauthenticated_lists_authenticated_first,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let v = ok(&app, &id, "max_age=5m&methods=otp").await;
        assert_eq!(v["satisfied"], false);
        assert_eq!(v["status"], "unauthenticated");
        assert_eq!(v["unmet"], json!(["authenticated", "max_age", "method"]));
        assert!(v["age_seconds"].is_null());
        assert_eq!(ok(&app, &id, "").await["unmet"], json!(["authenticated"]));
    }
);

both_stores!(
    named_intents_come_from_settings_channel_over_team,
    setup: Setup {
        team_extra: [
            "[settings.intents.payment]",
            "max_age = \"5m\"",
            "methods = [\"otp\"]",
            "[settings.intents.balance]",
            "max_age = \"30m\"",
            "[channel_settings.webchat.intents.payment]",
            "methods = [\"otp\", \"login_link\"]",
        ]
        .join("\n"),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-c").await;
        // The webchat channel lets a login link pay; max_age stays the team's.
        assert_eq!(ok(&app, &id, "intent=payment").await["satisfied"], true);
        assert_eq!(ok(&app, &id, "intent=balance").await["satisfied"], true);
        app.advance(301);
        let v = ok(&app, &id, "intent=payment").await;
        assert_eq!(v["unmet"], json!(["max_age"]), "{v}");
        assert_eq!(ok(&app, &id, "intent=balance").await["satisfied"], true);
    }
);

both_stores!(
    bad_assurance_queries_are_422_and_scope_is_the_team,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        for query in [
            "max_age=soon",
            "max_age=0s",
            "max_age=",
            "methods=sms",
            "methods=",
            "methods=otp,,pin",
            "intent=payment&max_age=5m",
            "intent=payment&methods=otp",
            "intent=no-such-intent",
            "intent=",
            "maxage=5m",
        ] {
            let res = assurance(&app, &id, query).await;
            assert_eq!(res.status(), 422, "{query}");
            assert_problem(res, 422, "invalid_request").await;
        }
        // Another team's interaction does not exist for this caller.
        let res = app
            .request(
                reqwest::Method::GET,
                &format!("/v1/interactions/{id}/assurance"),
                Some(&app.keys.globex_agent),
            )
            .send()
            .await
            .unwrap();
        assert_problem(res, 404, "not_found").await;
        // An agent may ask too.
        let res = app
            .request(
                reqwest::Method::GET,
                &format!("/v1/interactions/{id}/assurance"),
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
    }
);
