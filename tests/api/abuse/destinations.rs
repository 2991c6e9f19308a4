//! Where an OTP may go: `otp.destinations`, `otp.sms_regions` and
//! `otp.sms_number_types`, through system, team and channel settings. A
//! refused destination is 403 (a number that is not one, 422), sends
//! nothing, uses no send allowance and counts no failure.
use serde_json::{json, Value};

use crate::challenges::start;
use crate::helpers::*;

/// The SMS provider's endpoint in the test config (the chat mock serves it).
const TWILIO: &str = "/2010-04-01/Accounts/AC123/Messages.json";

/// Numbers the SMS provider was asked to send to, in order.
pub(super) async fn sms_sent(app: &TestApp) -> Vec<String> {
    app.chat
        .received_requests()
        .await
        .unwrap_or_default()
        .iter()
        .filter(|r| r.url.path() == TWILIO)
        .filter_map(|r| {
            url::form_urlencoded::parse(&r.body)
                .find(|(k, _)| k == "To")
                .map(|(_, v)| v.into_owned())
        })
        .collect()
}

async fn interaction(app: &TestApp, channel: &str, customer: &str, phone: Option<&str>) -> String {
    let mut body = json!({"channel": channel, "conversation_id": uuid::Uuid::now_v7().to_string(),
                          "customer_ref": customer});
    if let Some(p) = phone {
        body["contact"] = json!({"phone": p});
    }
    app.create(body).await["id"].as_str().unwrap().to_string()
}

async fn subject(app: &TestApp, s: &str) -> Value {
    app.get_json(&format!("/v1/subjects/{s}"), Some(&app.keys.agent))
        .await
}

/// The refusal's body, after checking it is `status`/`code` and that the
/// provider was asked for nothing more.
async fn refused(app: &TestApp, res: reqwest::Response, status: u16, code: &str) -> Value {
    let before = sms_sent(app).await.len();
    let body = assert_problem(res, status, code).await;
    assert_eq!(sms_sent(app).await.len(), before, "nothing is sent");
    body
}

both_stores!(
    on_file_sends_only_to_the_interaction_s_own_contact,
    setup: Setup {
        defaults: "[defaults.otp]\ndestinations = \"on_file\"\nmax_sends = 2".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let id = interaction(&app, "webchat", "cust-onfile", Some("+447400123456")).await;
        // A bot relaying a number typed into the chat: refused, three times.
        for to in ["+447400999999", "+12015550123", "+447400999999"] {
            let res = start(&app, &id, json!({"method": "otp", "delivery": "sms", "to": to})).await;
            let body = refused(&app, res, 403, "forbidden").await;
            assert!(body["detail"].as_str().unwrap().contains("otp.destinations"), "{body}");
        }
        assert!(sms_sent(&app).await.is_empty());
        let s = subject(&app, "cust-onfile").await;
        assert_eq!((s["failures"].as_u64(), s["locked_until"].is_null()), (Some(0), true), "{s}");
        // The allowance is whole: two sends (the contact, named or not), then 429.
        let ok = start(&app, &id, json!({"method": "otp", "delivery": "sms"})).await;
        assert_eq!(ok.status(), 201);
        let ok = start(&app, &id, json!({"method": "otp", "delivery": "sms", "to": "+447400123456"})).await;
        assert_eq!(ok.status(), 201);
        assert_eq!(sms_sent(&app).await, ["+447400123456", "+447400123456"]);
        assert_problem(start(&app, &id, json!({"method": "otp", "delivery": "sms"})).await, 429, "rate_limited").await;
        // The chat is the interaction's own: always allowed (rate limits aside).
        let other = interaction(&app, "webchat", "cust-onfile-2", None).await;
        assert_eq!(start(&app, &other, json!({"method": "otp"})).await.status(), 201);
        let body = refused(&app, start(&app, &other, json!({"method": "otp", "delivery": "sms", "to": "+447400123456"})).await, 403, "forbidden").await;
        assert!(body["detail"].as_str().unwrap().contains("own contact"), "{body}");
    }
);

both_stores!(
    sms_regions_follow_libphonenumber_s_metadata,
    setup: Setup {
        defaults: "[defaults.otp]\nsms_regions = [\"GB\"]\nmax_sends = 1".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let id = interaction(&app, "webchat", "cust-region", Some("+447797123456")).await;
        // Jersey looks British (+44 7797) but is its own region; a US number.
        let body = refused(&app, start(&app, &id, json!({"method": "otp", "delivery": "sms"})).await, 403, "forbidden").await;
        assert!(body["detail"].as_str().unwrap().contains("otp.sms_regions"), "{body}");
        refused(&app, start(&app, &id, json!({"method": "otp", "delivery": "sms", "to": "+12015550123"})).await, 403, "forbidden").await;
        // Not a number: 422 where a policy applies.
        let body = refused(&app, start(&app, &id, json!({"method": "otp", "delivery": "sms", "to": "+4412345"})).await, 422, "invalid_request").await;
        assert!(body["detail"].as_str().unwrap().starts_with("to:"), "{body}");
        // None of it used the one send allowed, nor counted a failure.
        assert_eq!(start(&app, &id, json!({"method": "otp", "delivery": "sms", "to": "+447400123456"})).await.status(), 201);
        assert_eq!(sms_sent(&app).await, ["+447400123456"]);
        assert_eq!(subject(&app, "cust-region").await["failures"], 0);
    }
);

both_stores!(
    sms_number_types_refuse_premium_rate,
    setup: Setup {
        defaults: "[defaults.otp]\nsms_number_types = [\"mobile\"]".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let id = interaction(&app, "webchat", "cust-type", None).await;
        // UK premium rate, UK fixed line, US (fixed_line_or_mobile).
        for to in ["+449012345678", "+442079460000", "+12015550123"] {
            let body = refused(&app, start(&app, &id, json!({"method": "otp", "delivery": "sms", "to": to})).await, 403, "forbidden").await;
            assert!(body["detail"].as_str().unwrap().contains("otp.sms_number_types"), "{body}");
        }
        assert_eq!(start(&app, &id, json!({"method": "otp", "delivery": "sms", "to": "+447400123456"})).await.status(), 201);
        assert_eq!(sms_sent(&app).await, ["+447400123456"]);
    }
);

// No rule: any number the bot names goes, read as a number and sent in
// E.164 (docs/api.md#phone-numbers), valid or not.
both_stores!(
    without_rules_any_destination_goes,
    |app: TestApp| async move {
        let id = interaction(&app, "webchat", "cust-any", Some("+447400123456")).await;
        for to in ["+449012345678", "+12015550123", "4412345"] {
            let res = start(
                &app,
                &id,
                json!({"method": "otp", "delivery": "sms", "to": to}),
            )
            .await;
            assert_eq!(res.status(), 201, "{to}");
        }
        assert_eq!(
            sms_sent(&app).await,
            ["+449012345678", "+12015550123", "+4412345"]
        );
    }
);

// System → team → channel: the team narrows the system's regions, a
// channel lifts them again, and `on_file` comes from the system.
both_stores!(
    destination_rules_follow_the_settings_hierarchy,
    setup: Setup {
        defaults: "[defaults.otp]\ndestinations = \"on_file\"\nsms_regions = [\"GB\", \"US\"]".into(),
        team_extra: "[settings.otp]\nsms_regions = [\"GB\"]\n[channel_settings.sms.otp]\nsms_regions = []\ndestinations = \"any\"".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let us = "+12015550123";
        let web = interaction(&app, "webchat", "cust-h1", Some(us)).await;
        refused(&app, start(&app, &web, json!({"method": "otp", "delivery": "sms"})).await, 403, "forbidden").await;
        let body = refused(&app, start(&app, &web, json!({"method": "otp", "delivery": "sms", "to": "+447400123456"})).await, 403, "forbidden").await;
        assert!(body["detail"].as_str().unwrap().contains("otp.destinations"), "{body}");
        // An interaction of the sms channel: its settings allow any.
        let sms = interaction(&app, "sms", "cust-h2", Some(us)).await;
        assert_eq!(start(&app, &sms, json!({"method": "otp", "delivery": "sms", "to": "+447400999999"})).await.status(), 201);
        assert_eq!(start(&app, &sms, json!({"method": "otp", "delivery": "sms"})).await.status(), 201);
        assert_eq!(sms_sent(&app).await, ["+447400999999", us]);
    }
);
