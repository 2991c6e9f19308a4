//! Attacks from outside that the gateway must survive: a step-up
//! outliving its assertion, a client that hangs up mid-delivery, replays and
//! retries of signed requests, hostile identity values, answers that tell
//! teams apart, and bearer tokens at rest.
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

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

// --- Finding 3: a pending step-up ends with its assertion. ---

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

// --- Finding 4: a client that hangs up does not leave work half-done. ---

both_stores!(
    a_client_hanging_up_mid_delivery_leaves_nothing_behind,
    setup: Setup {
        team_extra: "[settings.otp]\nmax_sends = 1\n".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        // The chat provider fails, slowly.
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_delay(Duration::from_millis(1500)))
            .with_priority(1)
            .mount(&app.chat)
            .await;
        let impatient = reqwest::Client::builder()
            .timeout(Duration::from_millis(300))
            .build()
            .unwrap();
        let gave_up = impatient
            .post(app.url(&format!("/v1/interactions/{id}/challenges")))
            .bearer_auth(&app.keys.bot)
            .json(&json!({"method": "otp"}))
            .send()
            .await;
        assert!(gave_up.is_err(), "the client hung up before the answer");
        // The delivery fails after the client left; its rollback still runs.
        let mut v = app.get(&id).await;
        for _ in 0..40 {
            if v["open_challenge"].is_null() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
            v = app.get(&id).await;
        }
        assert!(v["open_challenge"].is_null(), "{v}");
        // The send allowance (1) was given back: a new challenge may be sent.
        app.chat.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(200))
            .mount(&app.chat)
            .await;
        let res = app
            .post_json(
                &format!("/v1/interactions/{id}/challenges"),
                Some(&app.keys.bot),
                &json!({"method": "otp"}),
            )
            .await;
        assert_eq!(res.status(), 201);
    }
);

// --- Finding 5: replays and retries of signed requests. ---

both_stores!(
    a_retried_callback_gets_its_first_answer,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let body =
            json!({"token": link["token"], "outcome": "success", "customer": {"id": "cust-5"}});
        let signed = app.sign(&body, None);
        let first = app.send_signed("/v1/login/callback", &signed).await;
        assert_eq!(first.status(), 200);
        let first: Value = first.json().await.unwrap();
        assert_eq!(first["authenticated"], true);
        // The login page did not see that answer (a 503, a timeout) and retries.
        let again = app.send_signed("/v1/login/callback", &signed).await;
        assert_eq!(again.status(), 200);
        assert_eq!(again.json::<Value>().await.unwrap(), first);
        // One authentication: one confirmation into the chat.
        tokio::time::sleep(Duration::from_millis(300)).await;
        let confirmations = app
            .chat_messages()
            .await
            .iter()
            .filter(|m| m["purpose"] == "authenticated")
            .count();
        assert_eq!(confirmations, 1);
        // Another request with the same token is still refused.
        let res = app.post_signed("/v1/login/callback", &body, None).await;
        assert_problem(res, 409, "token_used").await;
    }
);

both_stores!(
    a_retried_failed_callback_counts_once,
    |app: TestApp| async move {
        let v = app
            .create(json!({"channel": "webchat", "conversation_id": "r", "customer_ref": "cust-r"}))
            .await;
        let id = v["id"].as_str().unwrap();
        let link = app.issue_link(id, json!({})).await;
        let body = json!({"token": link["token"], "outcome": "failure"});
        let signed = app.sign(&body, None);
        for _ in 0..3 {
            let res = app.send_signed("/v1/login/callback", &signed).await;
            assert_eq!(res.status(), 200);
            assert_eq!(
                res.json::<Value>().await.unwrap(),
                json!({"authenticated": false})
            );
        }
        let s = app
            .get_json("/v1/subjects/cust-r", Some(&app.keys.agent))
            .await;
        assert_eq!(s["failures"], 1, "{s}");
    }
);

both_stores!(
    a_replayed_logout_changes_nothing,
    |app: TestApp| async move {
        let v = app
            .create(
                json!({"channel": "webchat", "conversation_id": "lo", "customer_ref": "cust-7"}),
            )
            .await;
        let id = v["id"].as_str().unwrap();
        app.authenticate(id, "cust-7").await;
        let logout = app.sign(&json!({"team": "acme", "customer_id": "cust-7"}), None);
        let res = app.send_signed("/v1/customers/logout", &logout).await;
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 1}));
        // The customer signs in again; the same signed logout comes back.
        app.advance(60);
        app.authenticate(id, "cust-7").await;
        let res = app.send_signed("/v1/customers/logout", &logout).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 1}));
        assert_eq!(app.get(id).await["status"], "authenticated");
        // A new logout request does log them out.
        let res = app
            .post_signed(
                "/v1/customers/logout",
                &json!({"team": "acme", "customer_id": "cust-7"}),
                None,
            )
            .await;
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 1}));
        assert_eq!(app.get(id).await["status"], "unauthenticated");
    }
);

// --- Finding 6: identity values are held to the identifier rules. ---

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

both_stores!(
    hostile_callback_customers_are_refused_and_use_nothing,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let long = "x".repeat(2000);
        for customer in [
            json!({"id": "c", "": "empty name"}),
            json!({"id": "c", "na me": "x"}),
            json!({"id": "c", "n\u{0}": "x"}),
            json!({"id": "c", "x".repeat(65): "x"}),
            json!({"id": "c\u{0}"}),
            json!({"id": "c\u{2066}"}),
            json!({"id": long}),
            json!({"id": "c", "name": "\u{1b}]0;pwned\u{7}"}),
        ] {
            let res = app
                .callback(link["token"].as_str().unwrap(), "success", customer.clone())
                .await;
            let b = assert_problem(res, 422, "invalid_request").await;
            assert!(!b.to_string().contains('\u{0}'), "{b}");
        }
        // Nothing was used up.
        let res = app
            .callback(
                link["token"].as_str().unwrap(),
                "success",
                json!({"id": " ｃ-1 ", "first.name": "Ada"}),
            )
            .await;
        assert_eq!(res.status(), 200);
        let v = app.get(&id).await;
        // The proven id is normalised like a customer_ref.
        assert_eq!(v["customer"]["id"], "c-1", "{v}");
    }
);

both_stores!(
    lookalike_refs_are_one_subject,
    setup: Setup {
        defaults: "lockout = { threshold = 10 }".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let mut ids = Vec::new();
        for (i, r) in ["cust-42", "ｃｕｓｔ－４２", " cust-42 "].iter().enumerate() {
            let v = app
                .create(json!({"channel": "webchat", "conversation_id": format!("l{i}"), "customer_ref": r}))
                .await;
            assert_eq!(v["customer_ref"], "cust-42", "{v}");
            ids.push(v["id"].as_str().unwrap().to_string());
        }
        for id in &ids {
            let (cid, code) = app.start_otp(id).await;
            let wrong = wrong_code(&code);
            assert_problem(app.verify_code(id, &cid, &wrong).await, 401, "invalid_code").await;
        }
        let s = app.get_json("/v1/subjects/cust-42", Some(&app.keys.agent)).await;
        assert_eq!(s["failures"], 3, "{s}");
        // The URL form folds the same way.
        let s = app
            .get_json("/v1/subjects/%EF%BD%83ust-42", Some(&app.keys.agent))
            .await;
        assert_eq!(s["failures"], 3, "{s}");
        for bad in ["cust\u{200B}-42", "cust-42\u{202E}", "a\u{2028}b"] {
            let res = app
                .post_json(
                    "/v1/interactions",
                    Some(&app.keys.bot),
                    &json!({"channel": "webchat", "conversation_id": "z", "customer_ref": bad}),
                )
                .await;
            assert_problem(res, 422, "invalid_request").await;
        }
    }
);

// --- Finding 7: one answer for an unknown team and a wrong key. ---

both_stores!(
    logout_does_not_tell_teams_apart,
    |app: TestApp| async move {
        let wrong_key = vec![7u8; 32];
        let unknown = app
            .post_signed(
                "/v1/customers/logout",
                &json!({"team": "no-such-team", "customer_id": "c"}),
                None,
            )
            .await;
        let wrong = app
            .post_signed(
                "/v1/customers/logout",
                &json!({"team": "acme", "customer_id": "c"}),
                Some(&wrong_key),
            )
            .await;
        let a = assert_problem(unknown, 401, "invalid_signature").await;
        let b = assert_problem(wrong, 401, "invalid_signature").await;
        assert_eq!(a, b);
        // Unsigned: the same answer for both too.
        let unsigned = |team: &str| {
            app.client
                .post(app.url("/v1/customers/logout"))
                .json(&json!({"team": team, "customer_id": "c"}))
                .send()
        };
        let a = assert_problem(
            unsigned("no-such-team").await.unwrap(),
            401,
            "invalid_signature",
        )
        .await;
        let b = assert_problem(unsigned("acme").await.unwrap(), 401, "invalid_signature").await;
        assert_eq!(a, b);
    }
);

// --- Finding 8: no live credential at rest. ---

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_holds_no_login_token() {
    let Some(app) = spawn_app(Backend::Redis).await else {
        return;
    };
    let id = app.new_interaction().await;
    let link = app.issue_link(&id, json!({})).await;
    let token = link["token"].as_str().unwrap();
    let signature = token.rsplit('.').next().unwrap();
    let code = link["short_url"]
        .as_str()
        .unwrap()
        .rsplit('/')
        .next()
        .unwrap();
    let client = redis::Client::open(crate::redis_support::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", app.key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!(!keys.is_empty());
    for k in keys {
        assert!(!k.contains(code), "{k}");
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        let dump: Vec<String> = match kind.as_str() {
            // Nothing if the outbox removed the item since KEYS.
            "string" => redis::cmd("GET")
                .arg(&k)
                .query_async::<Option<String>>(&mut conn)
                .await
                .unwrap()
                .into_iter()
                .collect(),
            "hash" => redis::cmd("HVALS")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap(),
            "zset" => redis::cmd("ZRANGE")
                .arg(&k)
                .arg(0)
                .arg(-1)
                .query_async(&mut conn)
                .await
                .unwrap(),
            // The team's event log: events carry no token.
            "stream" => redis::cmd("XRANGE")
                .arg(&k)
                .arg("-")
                .arg("+")
                .query_async::<Vec<(String, Vec<String>)>>(&mut conn)
                .await
                .unwrap()
                .into_iter()
                .flat_map(|(_, fields)| fields)
                .collect(),
            _ => Vec::new(),
        };
        for v in dump {
            assert!(!v.contains(signature), "{k} holds the token");
        }
    }
    // The short link still leads to the very URL issued.
    let res = app
        .request(reqwest::Method::GET, &format!("/l/{code}"), None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    assert_eq!(
        res.headers()["location"].to_str().unwrap(),
        link["url"].as_str().unwrap()
    );
}
