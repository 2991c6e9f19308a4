//! Identifiers that name a customer are one subject however they are
//! spelled (trimmed, NFKC, case-folded), lookalikes that mix scripts are
//! refused, and the send limit holds per destination as well as per
//! subject (docs/api.md#identifiers, docs/api.md#challenges-otp-and-session-pin);
//! hostile customer refs in a login callback are refused and use nothing.
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

async fn create_for(app: &TestApp, conversation: &str, customer_ref: &str) -> Value {
    app.create(json!({"channel": "webchat", "conversation_id": conversation, "customer_ref": customer_ref}))
        .await
}

both_stores!(
    case_folded_spellings_share_one_lockout,
    |app: TestApp| async move {
        // Lockout threshold 5, three tries per challenge: the five wrong
        // codes come from two interactions naming the customer differently.
        let a = create_for(&app, "fold-a", "Cust-42").await;
        let b = create_for(&app, "fold-b", " cust-42 ").await;
        // What the API shows back is the folded form.
        assert_eq!(a["customer_ref"], "cust-42", "{a}");
        let (a, b) = (a["id"].as_str().unwrap(), b["id"].as_str().unwrap());
        let (cid, code) = app.start_otp(a).await;
        for _ in 0..3 {
            let res = app.verify_code(a, &cid, &wrong_code(&code)).await;
            assert_problem(res, 401, "invalid_code").await;
        }
        let (cid, code) = app.start_otp(b).await;
        let res = app.verify_code(b, &cid, &wrong_code(&code)).await;
        assert_problem(res, 401, "invalid_code").await;
        let res = app.verify_code(b, &cid, &wrong_code(&code)).await;
        assert_problem(res, 423, "locked").await;
        for id in [a, b] {
            assert_eq!(app.get(id).await["status"], "locked");
        }
        // The subject in a URL folds too: every spelling names the record.
        for spelling in ["CUST-42", "Cust-42", "cust-42"] {
            let s = app
                .get_json(&format!("/v1/subjects/{spelling}"), Some(&app.keys.agent))
                .await;
            assert_eq!(s["subject"], "cust-42", "{s}");
            assert!(s["locked_until"].is_string(), "{spelling}: {s}");
        }
    }
);

both_stores!(
    a_logout_names_the_customer_in_any_case,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let done = app.authenticate(&id, "Ada.Lovelace@Example.com").await;
        assert_eq!(done["authenticated"], true);
        assert_eq!(
            app.get(&id).await["customer"]["id"],
            "ada.lovelace@example.com"
        );
        let res = app
            .post_signed(
                "/v1/customers/logout",
                &json!({"team": "acme", "customer_id": "ADA.LOVELACE@EXAMPLE.COM"}),
                None,
            )
            .await;
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 1}));
        assert_eq!(app.get(&id).await["status"], "unauthenticated");
    }
);

both_stores!(
    mixed_script_identifiers_are_422,
    |app: TestApp| async move {
        // A Cyrillic `с` (U+0441) in front of Latin letters.
        let lookalike = "\u{0441}ust-42";
        let res = app
        .post_json(
            "/v1/interactions",
            Some(&app.keys.bot),
            &json!({"channel": "webchat", "conversation_id": "mixed-1", "customer_ref": lookalike}),
        )
        .await;
        let body = assert_problem(res, 422, "invalid_request").await;
        assert!(
            body["detail"].as_str().unwrap().contains("customer_ref"),
            "{body}"
        );
        let path = format!("/v1/subjects/{}", urlencoding(lookalike));
        let res = app
            .request(Method::GET, &path, Some(&app.keys.agent))
            .send()
            .await
            .unwrap();
        assert_problem(res, 422, "invalid_request").await;
        // As the proven customer of a login, too: refused before anything is used.
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let token = link["token"].as_str().unwrap();
        let res = app
            .callback(token, "success", json!({"id": "P\u{0430}ypal-1"}))
            .await;
        assert_problem(res, 422, "invalid_request").await;
        let res = app
            .callback(token, "success", json!({"id": "paypal-1"}))
            .await;
        assert_eq!(res.status(), 200);
        // Cyrillic alone is one script, and a customer of its own.
        let ok = create_for(&app, "mixed-2", "Иван-42").await;
        assert_eq!(ok["customer_ref"], "иван-42");
    }
);

/// Percent-encodes every non-ASCII byte of `s`.
fn urlencoding(s: &str) -> String {
    s.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b == b'-' {
                char::from(b).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

/// Starts an SMS OTP on `id` to `to`.
async fn sms(app: &TestApp, id: &str, to: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/challenges"),
        Some(&app.keys.bot),
        &json!({"method": "otp", "delivery": "sms", "to": to}),
    )
    .await
}

/// The SMS the fake Twilio received for `to`.
async fn sms_to(app: &TestApp, to: &str) -> usize {
    let reqs = app.chat.received_requests().await.unwrap_or_default();
    reqs.iter()
        .filter(|r| r.url.path().ends_with("/Messages.json"))
        .filter(|r| url::form_urlencoded::parse(&r.body).any(|(k, v)| k == "To" && v == to))
        .count()
}

both_stores!(
    the_sixth_sms_to_one_phone_is_429_whatever_the_subject,
    |app: TestApp| async move {
        let phone = "+15551230000";
        // Five subjects, one message each, all to one phone.
        for i in 0..5 {
            let v = create_for(&app, &format!("pump-{i}"), &format!("cust-{i}")).await;
            let res = sms(&app, v["id"].as_str().unwrap(), phone).await;
            assert_eq!(res.status(), 201, "send {i}");
        }
        assert_eq!(sms_to(&app, phone).await, 5);
        // A sixth subject, and the same number written without its `+`.
        let v = create_for(&app, "pump-5", "cust-5").await;
        let sixth = v["id"].as_str().unwrap();
        for to in [phone, "15551230000"] {
            let res = sms(&app, sixth, to).await;
            assert_eq!(res.headers()["retry-after"], "600");
            assert_problem(res, 429, "rate_limited").await;
        }
        assert_eq!(sms_to(&app, phone).await, 5, "nothing more was sent");
        // Another phone is another destination; the window frees the first.
        assert_eq!(sms(&app, sixth, "+15551239999").await.status(), 201);
        app.advance(600);
        assert_eq!(sms(&app, sixth, phone).await.status(), 201);
        if app.backend == Backend::Redis {
            // The destination is stored as a keyed hash, with a TTL.
            let redis = crate::redis_support::TestPrefix::for_prefix(&app.key_prefix);
            let keys = redis.keys();
            let ds: Vec<&String> = keys.iter().filter(|k| k.contains("}:ds:")).collect();
            assert_eq!(ds.len(), 2, "{keys:?}");
            for k in keys.iter() {
                assert!(!k.contains("5551230000"), "{k}");
            }
            for k in ds {
                let ttl = redis.pttl(k);
                assert!(ttl > 0 && ttl <= 600_000, "{k}: {ttl}");
                let value: String = redis::from_redis_value(&redis.raw(&["GET", k])).unwrap();
                assert!(!value.contains("5551230000"), "{value}");
            }
        }
    }
);

both_stores!(
    a_failed_sms_uses_no_allowance_of_its_destination,
    |app: TestApp| async move {
        let phone = "+15551230001";
        for i in 0..4 {
            let v = create_for(&app, &format!("fail-{i}"), &format!("f-{i}")).await;
            assert_eq!(
                sms(&app, v["id"].as_str().unwrap(), phone).await.status(),
                201
            );
        }
        app.chat.reset().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(503))
            .mount(&app.chat)
            .await;
        let v = create_for(&app, "fail-x", "f-x").await;
        let id = v["id"].as_str().unwrap();
        for _ in 0..3 {
            assert_problem(sms(&app, id, phone).await, 502, "channel_error").await;
        }
        app.chat.reset().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&app.chat)
            .await;
        assert_eq!(sms(&app, id, phone).await.status(), 201);
        let v = create_for(&app, "fail-y", "f-y").await;
        let res = sms(&app, v["id"].as_str().unwrap(), phone).await;
        assert_problem(res, 429, "rate_limited").await;
    }
);

both_stores!(
    concurrent_sends_to_one_phone_count_exactly,
    |app: TestApp| async move {
        let phone = "+15551230002";
        let mut ids = Vec::new();
        for i in 0..12 {
            let v = create_for(&app, &format!("race-{i}"), &format!("r-{i}")).await;
            ids.push(v["id"].as_str().unwrap().to_string());
        }
        let app = std::sync::Arc::new(app);
        let sends = ids.iter().map(|id| {
            let (app, id) = (app.clone(), id.clone());
            tokio::spawn(async move { sms(&app, &id, phone).await.status().as_u16() })
        });
        let mut statuses = Vec::new();
        for s in sends {
            statuses.push(s.await.unwrap());
        }
        statuses.sort_unstable();
        let created = statuses.iter().filter(|s| **s == 201).count();
        let limited = statuses.iter().filter(|s| **s == 429).count();
        assert_eq!((created, limited), (5, 7), "{statuses:?}");
        assert_eq!(sms_to(&app, phone).await, 5);
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
