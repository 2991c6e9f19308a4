//! What a challenge says of its message (docs/api.md#reading-a-challenge):
//! `delivery_status` and `delivery_error` on every challenge answer, and
//! the read of one challenge with its `state`, on both stores.
use serde_json::{json, Value};

use crate::helpers::*;

async fn read(app: &TestApp, id: &str, cid: &str, key: &str) -> reqwest::Response {
    app.request(
        reqwest::Method::GET,
        &format!("/v1/interactions/{id}/challenges/{cid}"),
        Some(key),
    )
    .send()
    .await
    .unwrap()
}

async fn read_ok(app: &TestApp, id: &str, cid: &str) -> Value {
    let res = read(app, id, cid, &app.keys.bot).await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

fn agents_see_codes() -> Setup {
    Setup {
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    }
}

both_stores!(
    a_challenge_reads_back_with_its_state_and_delivery_status,
    setup: agents_see_codes(),
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let res = crate::challenges::start(&app, &id, json!({"method": "otp"})).await;
        assert_eq!(res.status(), 201);
        let started: Value = res.json().await.unwrap();
        // The provider took the message: accepted, no error.
        assert_eq!(started["delivered"], true);
        assert_eq!(started["delivery_status"], "accepted");
        assert_eq!(started["delivery_error"], Value::Null);
        let first = started["challenge_id"].as_str().unwrap().to_string();
        let code = app.last_code().await;

        let c = read_ok(&app, &id, &first).await;
        assert_eq!(
            c,
            json!({
                "challenge_id": first,
                "method": "otp",
                "delivery": "chat",
                "entry": "chat",
                "channel": app.get(&id).await["channel"],
                "expires_at": started["expires_at"],
                "attempts_remaining": 3,
                "state": "open",
                "delivery_status": "accepted",
                "delivery_error": null,
            })
        );
        // An agent reads it too.
        let res = read(&app, &id, &first, &app.keys.agent).await;
        assert_eq!(res.status(), 200);
        // A wrong code counts.
        let res = app.verify_code(&id, &first, &wrong_code(&code)).await;
        assert_eq!(res.status(), 401);
        assert_eq!(read_ok(&app, &id, &first).await["attempts_remaining"], 2);

        // A new challenge replaces it; agent delivery sends nothing, so it
        // has no channel and no delivery status.
        let (second, code) = app.agent_otp(&id).await;
        assert_eq!(read_ok(&app, &id, &first).await["state"], "replaced");
        let c = read_ok(&app, &id, &second).await;
        assert_eq!(c["state"], "open");
        assert_eq!(c["delivery"], "agent");
        assert_eq!(c["channel"], Value::Null);
        assert_eq!(c["delivery_status"], Value::Null);
        let res = app.verify_code(&id, &second, &code).await;
        assert_eq!(res.status(), 200);
        assert_eq!(read_ok(&app, &id, &second).await["state"], "used");
        // The replaced one still reads as it was.
        let c = read_ok(&app, &id, &first).await;
        assert_eq!((c["state"].clone(), c["attempts_remaining"].clone()), (json!("replaced"), json!(2)));
        assert_eq!(c["delivery_status"], "accepted");

        // Exhausted, then expired.
        let other = app.new_interaction().await;
        let (cid, code) = app.start_otp(&other).await;
        for _ in 0..3 {
            app.verify_code(&other, &cid, &wrong_code(&code)).await;
        }
        assert_eq!(read_ok(&app, &other, &cid).await["state"], "exhausted");
        let (expiring, _) = app.start_otp(&other).await;
        // The exhausted one stays exhausted once a newer one replaced it.
        assert_eq!(read_ok(&app, &other, &cid).await["state"], "exhausted");
        app.advance(3600);
        assert_eq!(read_ok(&app, &other, &expiring).await["state"], "expired");
        // So does the expired one, once a newer one replaced it.
        app.start_otp(&other).await;
        assert_eq!(read_ok(&app, &other, &expiring).await["state"], "expired");

        // Another interaction's challenge, or none at all: 404.
        assert_problem(read(&app, &other, &second, &app.keys.bot).await, 404, "not_found").await;
        let none = uuid::Uuid::now_v7().to_string();
        assert_problem(read(&app, &id, &none, &app.keys.bot).await, 404, "not_found").await;
        // An admin acts as both.
        assert_eq!(read(&app, &id, &first, &app.keys.admin).await.status(), 200);
        // Without a key, 401.
        let res = app
            .request(
                reqwest::Method::GET,
                &format!("/v1/interactions/{id}/challenges/{first}"),
                None,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
);

/// The form fields of every message the fake Twilio received.
async fn twilio_forms(app: &TestApp) -> Vec<std::collections::HashMap<String, String>> {
    app.chat
        .received_requests()
        .await
        .unwrap()
        .iter()
        .filter(|r| r.url.path() == "/2010-04-01/Accounts/AC123/Messages.json")
        .map(|r| url::form_urlencoded::parse(&r.body).into_owned().collect())
        .collect()
}

both_stores!(
    every_twilio_message_names_the_status_callback,
    |app: TestApp| async move {
        let v = app
            .create(json!({"channel": "webchat", "conversation_id": "receipts", "contact": {"phone": "+15551230000"}}))
            .await;
        let id = v["id"].as_str().unwrap();
        let res =
            crate::challenges::start(&app, id, json!({"method": "otp", "delivery": "sms"})).await;
        assert_eq!(res.status(), 201);
        let forms = twilio_forms(&app).await;
        assert_eq!(forms.len(), 1, "one SMS sent");
        // The channel's receipt route under `server.public_url`
        // (docs/api.md#delivery-receipts).
        assert_eq!(
            forms[0].get("StatusCallback").map(String::as_str),
            Some("http://gateway.test/v1/providers/twilio/sms/status"),
            "fields: {:?}",
            forms[0].keys().collect::<Vec<_>>()
        );
    }
);

const TWILIO_STATUS: &str = "http://gateway.test/v1/providers/twilio/sms/status";

/// Posts a Twilio status callback with `fields`, signed with `token` as
/// Twilio signs (None: no signature header).
async fn twilio_receipt(
    app: &TestApp,
    fields: &[(&str, &str)],
    token: Option<&str>,
) -> reqwest::Response {
    let owned: Vec<(String, String)> = fields
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let body = url::form_urlencoded::Serializer::new(String::new())
        .extend_pairs(&owned)
        .finish();
    let mut rb = app
        .request(
            reqwest::Method::POST,
            "/v1/providers/twilio/sms/status",
            None,
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body(body);
    if let Some(token) = token {
        let sig =
            chatgate::channels::twilio::twilio_signature(token.as_bytes(), TWILIO_STATUS, &owned);
        rb = rb.header("x-twilio-signature", sig);
    }
    rb.send().await.unwrap()
}

both_stores!(
    twilio_receipts_are_checked_by_signature_first,
    |app: TestApp| async move {
        let fields = [("MessageSid", "SM0123"), ("MessageStatus", "delivered")];
        // No signature, or one under another token: 401.
        assert_problem(
            twilio_receipt(&app, &fields, None).await,
            401,
            "invalid_signature",
        )
        .await;
        assert_problem(
            twilio_receipt(&app, &fields, Some("another-token")).await,
            401,
            "invalid_signature",
        )
        .await;
        // Signed, but without the message or its status: 400.
        for unreadable in [
            &[("MessageStatus", "delivered")][..],
            &[("MessageSid", "SM0123")][..],
            &[("MessageSid", ""), ("MessageStatus", "delivered")][..],
        ] {
            assert_problem(
                twilio_receipt(&app, unreadable, Some("twilio-test-token")).await,
                400,
                "invalid_request",
            )
            .await;
        }
        // Signed, about a message the gateway never sent: 200, ignored.
        let res = twilio_receipt(&app, &fields, Some("twilio-test-token")).await;
        assert_eq!(res.status(), 200);
        // Only twilio channels have the route.
        let res = app
            .request(
                reqwest::Method::POST,
                "/v1/providers/twilio/webchat/status",
                None,
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 404);
    }
);
