//! Phone numbers the gateway sends to: read with libphonenumber and kept in
//! E.164 (one number, however written, is one destination), and the SMS
//! rules (`otp.sms_regions`, `otp.sms_number_types`) for every message to a
//! phone, not only `delivery: "sms"` (docs/api.md#where-an-otp-may-go).
//! On both stores.
use std::time::Duration;

use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::destinations::sms_sent;
use crate::challenges::start;
use crate::helpers::*;

/// A create request's answer, whatever its status.
async fn create(app: &TestApp, body: Value) -> reqwest::Response {
    app.post_json("/v1/interactions", Some(&app.keys.bot), &body)
        .await
}

async fn on_sms(app: &TestApp, customer: &str, phone: &str) -> String {
    let body = json!({"channel": "sms", "conversation_id": uuid::Uuid::now_v7().to_string(),
                      "customer_ref": customer, "contact": {"phone": phone}});
    app.create(body).await["id"].as_str().unwrap().to_string()
}

async fn subject(app: &TestApp, s: &str) -> Value {
    app.get_json(&format!("/v1/subjects/{s}"), Some(&app.keys.agent))
        .await
}

both_stores!(
    one_number_many_spellings_is_one_destination_in_e164,
    |app: TestApp| async move {
        // The national prefix after the country code, no `+`: one number.
        let spellings = [
            "+4407400123457",
            "+447400123457",
            "447400123457",
            "4407400123457",
            "+447400123457",
        ];
        for (i, phone) in spellings.iter().enumerate() {
            let v = app
                .create(json!({"channel": "webchat", "conversation_id": format!("spell-{i}"),
                               "customer_ref": format!("cust-spell-{i}"), "contact": {"phone": phone}}))
                .await;
            assert_eq!(
                v["contact"]["phone"], "+447400123457",
                "answered in E.164: {v}"
            );
            let id = v["id"].as_str().unwrap();
            let res = start(&app, id, json!({"method": "otp", "delivery": "sms"})).await;
            assert_eq!(res.status(), 201, "{phone}");
        }
        // A sixth subject naming it in a `to`, in yet another spelling: the limit of 5.
        let v = app
            .create(json!({"channel": "webchat", "conversation_id": "spell-6", "customer_ref": "cust-spell-6"}))
            .await;
        let id = v["id"].as_str().unwrap();
        let res = start(
            &app,
            id,
            json!({"method": "otp", "delivery": "sms", "to": "4407400123457"}),
        )
        .await;
        assert_problem(res, 429, "rate_limited").await;
        assert_eq!(
            sms_sent(&app).await,
            vec!["+447400123457"; 5],
            "sent in E.164"
        );
    }
);

both_stores!(
    on_file_compares_numbers_in_e164,
    setup: Setup {
        defaults: "[defaults.otp]\ndestinations = \"on_file\"".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let v = app
            .create(json!({"channel": "webchat", "conversation_id": "onfile-e164", "contact": {"phone": "+4407400123457"}}))
            .await;
        let id = v["id"].as_str().unwrap();
        for to in ["+447400123457", "447400123457"] {
            let res = start(&app, id, json!({"method": "otp", "delivery": "sms", "to": to})).await;
            assert_eq!(res.status(), 201, "{to}");
        }
        let res = start(&app, id, json!({"method": "otp", "delivery": "sms", "to": "+447400123458"})).await;
        assert_problem(res, 403, "forbidden").await;
    }
);

both_stores!(
    a_phone_that_is_not_a_number_is_422,
    |app: TestApp| async move {
        // Letters (a vanity number), no country code libphonenumber knows,
        // a national number, too short, not E.164's digits.
        for phone in [
            "+1800FLOWERS",
            "+999123456789",
            "07400123457",
            "+44",
            "+44 7400 123457",
        ] {
            let res = create(&app, json!({"channel": "webchat", "conversation_id": "bad-phone", "contact": {"phone": phone}})).await;
            let body = assert_problem(res, 422, "invalid_request").await;
            assert!(
                body["detail"]
                    .as_str()
                    .unwrap()
                    .starts_with("contact.phone:"),
                "{phone}: {body}"
            );
        }
        let id = app.new_interaction().await;
        let res = start(
            &app,
            &id,
            json!({"method": "otp", "delivery": "sms", "to": "+999123456789"}),
        )
        .await;
        let body = assert_problem(res, 422, "invalid_request").await;
        assert!(
            body["detail"].as_str().unwrap().starts_with("to:"),
            "{body}"
        );
        assert!(sms_sent(&app).await.is_empty());
        // Valid or not matters only to the SMS rules: a number that parses goes.
        assert_eq!(
            start(
                &app,
                &id,
                json!({"method": "otp", "delivery": "sms", "to": "+4412345"})
            )
            .await
            .status(),
            201
        );
        assert_eq!(sms_sent(&app).await, ["+4412345"]);
    }
);

/// A WhatsApp Cloud channel whose provider accepts everything; its requests
/// are the server's.
async fn with_whatsapp(backend: Backend, defaults: &str) -> Option<(TestApp, MockServer)> {
    let provider = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200).set_body_json(
            json!({"messaging_product": "whatsapp", "messages": [{"id": "wamid.1"}]}),
        ))
        .mount(&provider)
        .await;
    let file = format!(
        "name = \"wa\"\nkind = \"whatsapp\"\nbase_url = \"{}\"\napi_version = \"v21.0\"\nphone_number_id = \"1065\"\ntoken = \"${{CG_TEST_UNSET_WA:-wa-token}}\"\n",
        provider.uri()
    );
    let setup = Setup {
        defaults: defaults.to_string(),
        extra_channels: vec![("wa".into(), file)],
        ..Setup::default()
    };
    let app = spawn_with(backend, setup).await?;
    Some((app, provider))
}

async fn whatsapp_sent(provider: &MockServer) -> Vec<String> {
    provider
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter_map(|r| serde_json::from_slice::<Value>(&r.body).ok())
        .filter_map(|b| b["to"].as_str().map(str::to_string))
        .collect()
}

async fn whatsapp_conversation_is_a_number_in_e164(backend: Backend) {
    let Some((app, provider)) = with_whatsapp(backend, "").await else {
        return;
    };
    let res = create(
        &app,
        json!({"channel": "wa", "conversation_id": "447400123457"}),
    )
    .await;
    assert_eq!(res.status(), 201);
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["conversation_id"], "+447400123457", "{v}");
    // Another spelling of it is the same conversation.
    let res = create(
        &app,
        json!({"channel": "wa", "conversation_id": "+4407400123457"}),
    )
    .await;
    assert_eq!(res.status(), 200);
    let again: Value = res.json().await.unwrap();
    assert_eq!(again["id"], v["id"]);
    let page = app
        .get_json(
            "/v1/interactions?channel=wa&conversation_id=447400123457",
            Some(&app.keys.agent),
        )
        .await;
    assert_eq!(page_ids(&page), [v["id"].as_str().unwrap()]);
    let res = create(
        &app,
        json!({"channel": "wa", "conversation_id": "not a number"}),
    )
    .await;
    let body = assert_problem(res, 422, "invalid_request").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("conversation_id:"),
        "{body}"
    );
    let id = v["id"].as_str().unwrap();
    assert_eq!(
        start(&app, id, json!({"method": "otp"})).await.status(),
        201
    );
    assert_eq!(whatsapp_sent(&provider).await, ["+447400123457"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_conversation_is_a_number_in_e164_memory() {
    whatsapp_conversation_is_a_number_in_e164(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_conversation_is_a_number_in_e164_redis() {
    whatsapp_conversation_is_a_number_in_e164(Backend::Redis).await;
}

both_stores!(
    sms_rules_hold_for_a_code_into_an_sms_conversation,
    setup: Setup {
        defaults: "[defaults.otp]\nsms_regions = [\"GB\"]\nmax_sends = 1".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let us = on_sms(&app, "cust-sms-chat", "+12015550123").await;
        let body = assert_problem(start(&app, &us, json!({"method": "otp"})).await, 403, "forbidden").await;
        assert!(body["detail"].as_str().unwrap().contains("otp.sms_regions"), "{body}");
        // A login link delivered into that conversation: refused, no link issued.
        let res = app
            .post_json(&format!("/v1/interactions/{us}/login-links"), Some(&app.keys.bot), &json!({"deliver": true}))
            .await;
        assert_problem(res, 403, "forbidden").await;
        assert_eq!(app.get(&us).await["status"], "unauthenticated");
        assert!(sms_sent(&app).await.is_empty(), "nothing was sent");
        assert_eq!(subject(&app, "cust-sms-chat").await["failures"], 0);
        // The one send allowed is whole: a British number of the same customer.
        let gb = on_sms(&app, "cust-sms-chat", "+447400123457").await;
        assert_eq!(start(&app, &gb, json!({"method": "otp"})).await.status(), 201);
        assert_eq!(sms_sent(&app).await, ["+447400123457"]);
    }
);

async fn sms_rules_hold_for_every_message_on_whatsapp(backend: Backend) {
    let rules = "[defaults.otp]\nsms_number_types = [\"mobile\"]";
    let Some((app, provider)) = with_whatsapp(backend, rules).await else {
        return;
    };
    // A UK premium-rate number as the conversation.
    let v = app
        .create(json!({"channel": "wa", "conversation_id": "449012345678", "session_pin": "4829"}))
        .await;
    let id = v["id"].as_str().unwrap();
    let body = assert_problem(
        start(&app, id, json!({"method": "otp"})).await,
        403,
        "forbidden",
    )
    .await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("otp.sms_number_types"),
        "{body}"
    );
    assert_problem(
        start(&app, id, json!({"method": "pin"})).await,
        403,
        "forbidden",
    )
    .await;
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/login-links"),
            Some(&app.keys.bot),
            &json!({"deliver": true}),
        )
        .await;
    assert_problem(res, 403, "forbidden").await;
    // Not valid at all: 422 naming the conversation.
    let v = app
        .create(json!({"channel": "wa", "conversation_id": "4412345"}))
        .await;
    let res = start(&app, v["id"].as_str().unwrap(), json!({"method": "otp"})).await;
    let body = assert_problem(res, 422, "invalid_request").await;
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .starts_with("conversation_id:"),
        "{body}"
    );
    assert!(
        whatsapp_sent(&provider).await.is_empty(),
        "nothing was sent"
    );
    // A mobile conversation is served.
    let ok = app
        .create(json!({"channel": "wa", "conversation_id": "447400123457"}))
        .await;
    assert_eq!(
        start(&app, ok["id"].as_str().unwrap(), json!({"method": "otp"}))
            .await
            .status(),
        201
    );
    assert_eq!(whatsapp_sent(&provider).await, ["+447400123457"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_rules_hold_for_every_message_on_whatsapp_memory() {
    sms_rules_hold_for_every_message_on_whatsapp(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sms_rules_hold_for_every_message_on_whatsapp_redis() {
    sms_rules_hold_for_every_message_on_whatsapp(Backend::Redis).await;
}

both_stores!(
    a_notice_to_a_refused_number_is_dropped,
    setup: Setup {
        defaults: "[defaults.otp]\nsms_regions = [\"GB\"]".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        // Authenticated by a login link not delivered: the `authenticated`
        // notice would go to a US number.
        let us = on_sms(&app, "cust-notice-us", "+12015550123").await;
        app.authenticate(&us, "cust-notice-us").await;
        let gb = on_sms(&app, "cust-notice-gb", "+447400123457").await;
        app.authenticate(&gb, "cust-notice-gb").await;
        let mut sent = Vec::new();
        for _ in 0..50 {
            sent = sms_sent(&app).await;
            if !sent.is_empty() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        // The British notice went; the American one is dropped, not retried.
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(sms_sent(&app).await, ["+447400123457"]);
        assert_eq!(sent, ["+447400123457"]);
    }
);

/// A code into a WhatsApp conversation goes to a phone number: it counts
/// against that number's send limit, the same limit SMS sends to the number
/// use (docs/api.md#where-an-otp-may-go).
async fn whatsapp_codes_count_against_their_number(backend: Backend) {
    let Some((app, provider)) = with_whatsapp(backend, "[defaults.otp]\nmax_sends = 2").await
    else {
        return;
    };
    // Two customers have the number's two sends by SMS, in another spelling.
    for customer in ["cust-wa-count-1", "cust-wa-count-2"] {
        let id = on_sms(&app, customer, "+4407400123457").await;
        assert_eq!(
            start(&app, &id, json!({"method": "otp"})).await.status(),
            201
        );
    }
    // A third customer writing from that number on WhatsApp: the number's
    // allowance is used up, nothing goes out.
    let v = app
        .create(json!({"channel": "wa", "conversation_id": "447400123457",
                       "customer_ref": "cust-wa-count-3"}))
        .await;
    let id = v["id"].as_str().unwrap();
    assert_problem(
        start(&app, id, json!({"method": "otp"})).await,
        429,
        "rate_limited",
    )
    .await;
    assert!(
        whatsapp_sent(&provider).await.is_empty(),
        "nothing was sent"
    );
    // Another number on WhatsApp is served.
    let other = app
        .create(json!({"channel": "wa", "conversation_id": "447400123458",
                       "customer_ref": "cust-wa-count-4"}))
        .await;
    let other = other["id"].as_str().unwrap();
    assert_eq!(
        start(&app, other, json!({"method": "otp"})).await.status(),
        201
    );
    assert_eq!(whatsapp_sent(&provider).await, ["+447400123458"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_codes_count_against_their_number_memory() {
    whatsapp_codes_count_against_their_number(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn whatsapp_codes_count_against_their_number_redis() {
    whatsapp_codes_count_against_their_number(Backend::Redis).await;
}
