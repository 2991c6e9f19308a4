//! OTP and session-PIN challenges, lockouts, bans and unlock (docs/api.md#challenges-otp-and-session-pin),
//! step-up (docs/api.md#pre-chat-assertions), on both stores, with the clock injected;
//! a client that hangs up mid-delivery leaves nothing half-done.
use std::sync::Arc;
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};
use wiremock::matchers::method;
use wiremock::{Mock, ResponseTemplate};

use crate::helpers::*;

pub(crate) async fn start(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/challenges"),
        Some(&app.keys.bot),
        &body,
    )
    .await
}

async fn start_ok(app: &TestApp, id: &str, body: Value) -> Value {
    let res = start(app, id, body).await;
    assert_eq!(res.status(), 201);
    res.json().await.unwrap()
}

async fn subject(app: &TestApp, s: &str) -> Value {
    let path = format!("/v1/subjects/{}", s.replace(':', "%3A"));
    app.get_json(&path, Some(&app.keys.agent)).await
}

fn wrong(code: &str) -> String {
    let first = if code.starts_with('9') { '0' } else { '9' };
    format!("{first}{}", &code[1..])
}

both_stores!(
    otp_in_chat_then_right_code_authenticates,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let c = start_ok(&app, &id, json!({"method": "otp"})).await;
        assert_eq!(c["method"], "otp");
        assert_eq!(c["delivery"], "chat");
        assert_eq!(c["attempts_allowed"], 3);
        assert_eq!(c["delivered"], true);
        assert!(c.get("code").is_none());
        let code = app.last_code().await;
        assert_eq!(code.len(), 6);
        let msgs = app.chat_messages().await;
        assert!(msgs
            .iter()
            .any(|m| m["text"]
                == format!("Your verification code is {code}. It expires in 3 minutes.")));
        let v = app.get(&id).await;
        assert_eq!(v["status"], "pending");
        assert_eq!(v["open_challenge"]["challenge_id"], c["challenge_id"]);
        let cid = c["challenge_id"].as_str().unwrap();
        let res = app.verify_code(&id, cid, &code).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        assert_eq!(body["authenticated"], true);
        assert_eq!(body["requires_2fa"], false);
        assert_eq!(body["interaction"]["method"], "otp");
        assert_eq!(body["interaction"]["open_challenge"], Value::Null);
        assert_problem(
            app.verify_code(&id, cid, &code).await,
            409,
            "challenge_used",
        )
        .await;
    }
);

both_stores!(
    wrong_codes_exhaust_the_challenge,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let c = start_ok(&app, &id, json!({"method": "otp"})).await;
        let cid = c["challenge_id"].as_str().unwrap();
        let code = app.last_code().await;
        for remaining in [2, 1, 0] {
            let b = assert_problem(
                app.verify_code(&id, cid, &wrong(&code)).await,
                401,
                "invalid_code",
            )
            .await;
            assert_eq!(b["requires_2fa"], true);
            assert_eq!(b["attempts_remaining"], remaining);
        }
        assert_problem(
            app.verify_code(&id, cid, &code).await,
            410,
            "challenge_exhausted",
        )
        .await;
        // Malformed codes are 422 and not counted.
        let id2 = app.new_interaction().await;
        let c2 = start_ok(&app, &id2, json!({"method": "otp"})).await;
        for bad in ["", "12a456", "123456789012345678901", " 123"] {
            assert_problem(
                app.verify_code(&id2, c2["challenge_id"].as_str().unwrap(), bad)
                    .await,
                422,
                "invalid_request",
            )
            .await;
        }
        assert_eq!(
            subject(&app, &format!("interaction:{id2}")).await["failures"],
            0
        );
    }
);

both_stores!(
    expired_and_replaced_challenges_are_410,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let a = start_ok(&app, &id, json!({"method": "otp"})).await;
        let code_a = app.last_code().await;
        let b = start_ok(&app, &id, json!({"method": "otp"})).await;
        assert_problem(
            app.verify_code(&id, a["challenge_id"].as_str().unwrap(), &code_a)
                .await,
            410,
            "challenge_expired",
        )
        .await;
        let code_b = app.last_code().await;
        app.advance(180);
        assert_problem(
            app.verify_code(&id, b["challenge_id"].as_str().unwrap(), &code_b)
                .await,
            410,
            "challenge_expired",
        )
        .await;
        let unknown = uuid::Uuid::now_v7().to_string();
        assert_problem(
            app.verify_code(&id, &unknown, &code_b).await,
            404,
            "not_found",
        )
        .await;
    }
);

both_stores!(session_pin_challenge, |app: TestApp| async move {
    let v = app
        .create(json!({"channel": "webchat", "conversation_id": "p", "session_pin": "482913"}))
        .await;
    let id = v["id"].as_str().unwrap();
    let c = start_ok(&app, id, json!({"method": "pin"})).await;
    assert!(app
        .chat_messages()
        .await
        .iter()
        .any(|m| m["purpose"] == "pin_prompt" && m["text"] == "Please enter your session PIN."));
    let cid = c["challenge_id"].as_str().unwrap();
    assert_problem(
        app.verify_code(id, cid, "482914").await,
        401,
        "invalid_code",
    )
    .await;
    let res = app.verify_code(id, cid, "482913").await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap()["interaction"]["method"],
        "pin"
    );
    let plain = app.new_interaction().await;
    assert_problem(
        start(&app, &plain, json!({"method": "pin"})).await,
        409,
        "no_session_pin",
    )
    .await;
    assert_problem(
        start(&app, &plain, json!({"method": "sms"})).await,
        422,
        "invalid_request",
    )
    .await;
});

both_stores!(
    lockout_boundaries_with_an_injected_clock,
    |app: TestApp| async move {
        let v = app
            .create(
                json!({"channel": "webchat", "conversation_id": "l", "customer_ref": "cust-lock"}),
            )
            .await;
        let id = v["id"].as_str().unwrap();
        // threshold 5 failures per hour, 3 attempts per challenge: two challenges.
        let c = start_ok(&app, id, json!({"method": "otp"})).await;
        let code = app.last_code().await;
        for _ in 0..3 {
            assert_problem(
                app.verify_code(id, c["challenge_id"].as_str().unwrap(), &wrong(&code))
                    .await,
                401,
                "invalid_code",
            )
            .await;
        }
        let c = start_ok(&app, id, json!({"method": "otp"})).await;
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let code = app.last_code().await;
        assert_problem(
            app.verify_code(id, &cid, &wrong(&code)).await,
            401,
            "invalid_code",
        )
        .await;
        assert_eq!(subject(&app, "cust-lock").await["failures"], 4);
        // The fifth failure locks for 15 minutes.
        let res = app.verify_code(id, &cid, &wrong(&code)).await;
        assert_eq!(res.headers()["retry-after"], "900");
        let b = assert_problem(res, 423, "locked").await;
        assert!(b["locked_until"].is_string());
        let s = subject(&app, "cust-lock").await;
        assert_eq!(s["failures"], 0);
        assert_eq!(s["lockouts"], 1);
        assert_eq!(app.get(id).await["status"], "locked");
        // Locked at duration - 1 s: even a new challenge is refused, nothing sent.
        app.advance(899);
        // A right code while locked is refused too, and does not extend the lock.
        assert_problem(app.verify_code(id, &cid, &code).await, 423, "locked").await;
        let sent = app.chat_messages().await.len();
        assert_problem(
            start(&app, id, json!({"method": "otp"})).await,
            423,
            "locked",
        )
        .await;
        assert_eq!(app.chat_messages().await.len(), sent);
        // Open at duration.
        app.advance(1);
        let c = start_ok(&app, id, json!({"method": "otp"})).await;
        let code = app.last_code().await;
        assert_eq!(
            app.verify_code(id, c["challenge_id"].as_str().unwrap(), &code)
                .await
                .status(),
            200
        );
        assert_eq!(
            subject(&app, "cust-lock").await["lockouts"],
            0,
            "a success clears lockouts"
        );
    }
);

both_stores!(
    third_lockout_bans_until_an_admin_unlocks,
    |app: TestApp| async move {
        let _ = app;
        let setup = Setup {
            defaults: "lockout = { threshold = 1 }\notp = { max_sends = 50 }".into(),
            ..Setup::default()
        };
        let Some(app) = spawn_with(app.backend, setup).await else {
            return;
        };
        let mut app = app;
        let v = app
            .create(
                json!({"channel": "webchat", "conversation_id": "b", "customer_ref": "cust-ban"}),
            )
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        for round in 0..3 {
            let c = start_ok(&app, &id, json!({"method": "otp"})).await;
            let code = app.last_code().await;
            let res = app
                .verify_code(&id, c["challenge_id"].as_str().unwrap(), &wrong(&code))
                .await;
            if round < 2 {
                assert_problem(res, 423, "locked").await;
                app.advance(900);
            } else {
                assert_problem(res, 403, "banned").await;
            }
        }
        assert!(app
            .next_event("subject.banned", std::time::Duration::from_secs(2))
            .await
            .is_some());
        // Long after any lockout would have ended (but before the interaction is forgotten).
        app.advance(20 * 3600);
        assert_problem(
            start(&app, &id, json!({"method": "otp"})).await,
            403,
            "banned",
        )
        .await;
        assert_eq!(app.get(&id).await["status"], "banned");
        // The ban follows the subject: a new conversation is born banned.
        let other = app
            .create(
                json!({"channel": "webchat", "conversation_id": "b2", "customer_ref": "cust-ban"}),
            )
            .await;
        assert_eq!(other["status"], "banned", "{other}");
        let s = subject(&app, "cust-ban").await;
        assert_eq!(s["banned"], true);
        // Only an admin unlocks.
        let res = app
            .request(
                Method::POST,
                "/v1/subjects/cust-ban/unlock",
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap();
        assert_problem(res, 403, "forbidden").await;
        let res = app
            .request(
                Method::POST,
                "/v1/subjects/cust-ban/unlock",
                Some(&app.keys.admin),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let s: Value = res.json().await.unwrap();
        assert_eq!(
            s,
            json!({"subject": "cust-ban", "failures": 0, "lockouts": 0, "locked_until": null, "banned": false})
        );
        assert!(app
            .next_event("subject.unlocked", std::time::Duration::from_secs(2))
            .await
            .is_some());
        assert_eq!(
            start(&app, &id, json!({"method": "otp"})).await.status(),
            201
        );
        // An unknown subject is all zeros, not 404.
        assert_eq!(subject(&app, "nobody").await["failures"], 0);
    }
);

both_stores!(
    fifty_simultaneous_right_codes_one_succeeds,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let c = start_ok(&app, &id, json!({"method": "otp"})).await;
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let code = app.last_code().await;
        let app = Arc::new(app);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (app, id, cid, code) = (app.clone(), id.clone(), cid.clone(), code.clone());
                tokio::spawn(
                    async move { app.verify_code(&id, &cid, &code).await.status().as_u16() },
                )
            })
            .collect();
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
        assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
        assert_eq!(codes.iter().filter(|c| **c == 409).count(), 49, "{codes:?}");
    }
);

both_stores!(
    fifty_simultaneous_wrong_codes_count_fifty,
    |app: TestApp| async move {
        let _ = app;
        let setup = Setup {
            defaults: "lockout = { threshold = 1000 }\notp = { max_attempts = 100 }".into(),
            ..Setup::default()
        };
        let Some(app) = spawn_with(app.backend, setup).await else {
            return;
        };
        let v = app
            .create(
                json!({"channel": "webchat", "conversation_id": "w", "customer_ref": "cust-50"}),
            )
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        let c = start_ok(&app, &id, json!({"method": "otp"})).await;
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let bad = wrong(&app.last_code().await);
        let app = Arc::new(app);
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (app, id, cid, bad) = (app.clone(), id.clone(), cid.clone(), bad.clone());
                tokio::spawn(async move {
                    app.verify_code(&id, &cid, &bad)
                        .await
                        .json::<Value>()
                        .await
                        .unwrap()
                })
            })
            .collect();
        let mut remaining = Vec::new();
        for t in tasks {
            let b = t.await.unwrap();
            assert_eq!(b["code"], "invalid_code");
            remaining.push(b["attempts_remaining"].as_u64().unwrap());
        }
        remaining.sort();
        assert_eq!(
            remaining,
            (50..100).collect::<Vec<u64>>(),
            "each attempt saw its own count"
        );
        assert_eq!(subject(&app, "cust-50").await["failures"], 50);
    }
);

both_stores!(
    fifty_simultaneous_wrong_codes_lock_once,
    |app: TestApp| async move {
        let _ = app;
        let setup = Setup {
            defaults: "otp = { max_attempts = 100 }".into(),
            ..Setup::default()
        };
        let Some(mut app) = spawn_with(app.backend, setup).await else {
            return;
        };
        let v = app
            .create(
                json!({"channel": "webchat", "conversation_id": "w5", "customer_ref": "cust-5"}),
            )
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        let c = start_ok(&app, &id, json!({"method": "otp"})).await;
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let bad = wrong(&app.last_code().await);
        let shared = Arc::new(app.base.clone());
        let client = app.client.clone();
        let bot = app.keys.bot.clone();
        let tasks: Vec<_> = (0..50)
            .map(|_| {
                let (client, bot, base, id, cid, bad) = (
                    client.clone(),
                    bot.clone(),
                    shared.clone(),
                    id.clone(),
                    cid.clone(),
                    bad.clone(),
                );
                tokio::spawn(async move {
                    client
                        .post(format!(
                            "{base}/v1/interactions/{id}/challenges/{cid}/verify"
                        ))
                        .bearer_auth(bot)
                        .json(&json!({"code": bad}))
                        .send()
                        .await
                        .unwrap()
                        .status()
                        .as_u16()
                })
            })
            .collect();
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
        assert_eq!(codes.iter().filter(|c| **c == 401).count(), 4, "{codes:?}");
        assert_eq!(codes.iter().filter(|c| **c == 423).count(), 46, "{codes:?}");
        let s = subject(&app, "cust-5").await;
        assert_eq!(s["lockouts"], 1, "{s}");
        assert!(app
            .next_event("subject.locked", std::time::Duration::from_secs(2))
            .await
            .is_some());
        assert!(
            app.next_event("subject.locked", std::time::Duration::from_millis(500))
                .await
                .is_none(),
            "locked once"
        );
    }
);

both_stores!(
    send_limit_is_429_and_provider_not_called,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        for _ in 0..5 {
            start_ok(&app, &id, json!({"method": "otp"})).await;
        }
        let sent = app.chat_messages().await.len();
        let res = start(&app, &id, json!({"method": "otp"})).await;
        assert_eq!(res.headers()["retry-after"], "600");
        assert_problem(res, 429, "rate_limited").await;
        assert_eq!(app.chat_messages().await.len(), sent);
        app.advance(600);
        start_ok(&app, &id, json!({"method": "otp"})).await;
    }
);

both_stores!(
    failed_delivery_is_502_and_uses_no_allowance,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        for _ in 0..4 {
            start_ok(&app, &id, json!({"method": "otp"})).await;
        }
        app.chat.reset().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(503))
            .mount(&app.chat)
            .await;
        for _ in 0..3 {
            assert_problem(
                start(&app, &id, json!({"method": "otp"})).await,
                502,
                "channel_error",
            )
            .await;
        }
        app.chat.reset().await;
        wiremock::Mock::given(wiremock::matchers::method("POST"))
            .respond_with(wiremock::ResponseTemplate::new(200))
            .mount(&app.chat)
            .await;
        start_ok(&app, &id, json!({"method": "otp"})).await;
        assert_problem(
            start(&app, &id, json!({"method": "otp"})).await,
            429,
            "rate_limited",
        )
        .await;
    }
);

both_stores!(agent_reveal_where_allowed, |mut app: TestApp| async move {
    let id = app.new_interaction().await;
    let c = start_ok(&app, &id, json!({"method": "otp"})).await;
    let cid = c["challenge_id"].as_str().unwrap();
    let path = format!("/v1/interactions/{id}/challenges/{cid}/code");
    let res = app
        .request(Method::GET, &path, Some(&app.keys.agent))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    assert_problem(
        start(&app, &id, json!({"method": "otp", "delivery": "agent"})).await,
        422,
        "invalid_request",
    )
    .await;

    let setup = Setup {
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    };
    let Some(mut app2) = spawn_with(app.backend, setup).await else {
        return;
    };
    std::mem::swap(&mut app, &mut app2);
    let id = app.new_interaction().await;
    let c = start_ok(&app, &id, json!({"method": "otp", "delivery": "agent"})).await;
    assert_eq!(c["delivered"], false);
    assert!(app
        .chat_messages()
        .await
        .iter()
        .all(|m| m["purpose"] != "otp"));
    let cid = c["challenge_id"].as_str().unwrap();
    let path = format!("/v1/interactions/{id}/challenges/{cid}/code");
    let res = app
        .request(Method::GET, &path, Some(&app.keys.bot))
        .send()
        .await
        .unwrap();
    assert_problem(res, 403, "forbidden").await;
    let res = app
        .request(Method::GET, &path, Some(&app.keys.agent))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let r: Value = res.json().await.unwrap();
    let e = app
        .next_event("challenge.code_revealed", std::time::Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(event_data(&e)["api_key_id"], "acme-agent");
    assert!(!e.data.to_string().contains(r["code"].as_str().unwrap()));
    assert_eq!(
        app.verify_code(&id, cid, r["code"].as_str().unwrap())
            .await
            .status(),
        200
    );

    // A locked subject's code is not shown either: 423, as its verify is.
    let id = app.new_interaction().await;
    let reveal = |cid: String| {
        let path = format!("/v1/interactions/{id}/challenges/{cid}/code");
        app.request(Method::GET, &path, Some(&app.keys.agent))
            .send()
    };
    let mut last = None;
    'lock: for _ in 0..2 {
        let c = start_ok(&app, &id, json!({"method": "otp", "delivery": "agent"})).await;
        let cid = c["challenge_id"].as_str().unwrap().to_string();
        let r: Value = reveal(cid.clone()).await.unwrap().json().await.unwrap();
        let code = r["code"].as_str().unwrap();
        for _ in 0..3 {
            let res = app.verify_code(&id, &cid, &wrong(code)).await;
            if res.status() == 423 {
                last = Some(cid);
                break 'lock;
            }
            assert_problem(res, 401, "invalid_code").await;
        }
    }
    let cid = last.expect("five wrong codes lock the subject");
    assert_problem(reveal(cid).await.unwrap(), 423, "locked").await;
});

both_stores!(
    require_other_channel_refuses_the_chat,
    |app: TestApp| async move {
        let _ = app;
        let setup = Setup {
            defaults: "otp = { require_other_channel = true }".into(),
            ..Setup::default()
        };
        let Some(app) = spawn_with(app.backend, setup).await else {
            return;
        };
        let id = app.new_interaction().await;
        assert_problem(
            start(&app, &id, json!({"method": "otp"})).await,
            422,
            "invalid_request",
        )
        .await;
        assert_problem(
            start(&app, &id, json!({"method": "otp", "delivery": "chat"})).await,
            422,
            "invalid_request",
        )
        .await;
        // By SMS: no number known is 422; with one, it goes to the sms channel.
        assert_problem(
            start(&app, &id, json!({"method": "otp", "delivery": "sms"})).await,
            422,
            "invalid_request",
        )
        .await;
        // The test team has no e-mail channel.
        assert_problem(
            start(
                &app,
                &id,
                json!({"method": "otp", "delivery": "email", "to": "a@b.example"}),
            )
            .await,
            422,
            "invalid_request",
        )
        .await;
        let v = app.create(json!({"channel": "webchat", "conversation_id": "o", "contact": {"phone": "+15551230000"}})).await;
        let c = start_ok(
            &app,
            v["id"].as_str().unwrap(),
            json!({"method": "otp", "delivery": "sms"}),
        )
        .await;
        assert_eq!(c["delivery"], "sms");
        let reqs = app.chat.received_requests().await.unwrap();
        let sms = reqs
            .iter()
            .find(|r| r.url.path() == "/2010-04-01/Accounts/AC123/Messages.json")
            .expect("twilio called");
        let form: std::collections::HashMap<String, String> =
            url::form_urlencoded::parse(&sms.body)
                .into_owned()
                .collect();
        assert_eq!(form["To"], "+15551230000");
        assert_eq!(form["From"], "+15550006666");
        assert!(
            form["Body"].starts_with("Your verification code is "),
            "{}",
            form["Body"]
        );
        assert!(
            app.chat_messages()
                .await
                .iter()
                .all(|m| m["purpose"] != "otp"),
            "nothing went into the chat"
        );
    }
);

/// acme with an anonymous web chat, `anon` (a webhook channel that does
/// not vouch for its sender).
fn anonymous() -> Setup {
    Setup {
        extra_channels: vec![anonymous_chat("anon")],
        ..Setup::default()
    }
}

both_stores!(
    a_code_into_a_chat_that_does_not_vouch_is_refused_and_says_what_to_do,
    setup: anonymous(),
    |app: TestApp| async move {
        let v = app
            .create(json!({"channel": "anon", "conversation_id": "a-1", "customer_ref": "victim-42",
                           "session_pin": "482913", "contact": {"phone": "+15551230000"}}))
            .await;
        let id = v["id"].as_str().unwrap().to_string();
        // The default delivery and `chat` alike: 422, saying what to do.
        for body in [json!({"method": "otp"}), json!({"method": "otp", "delivery": "chat"})] {
            let p = assert_problem(start(&app, &id, body).await, 422, "invalid_request").await;
            let detail = p["detail"].as_str().unwrap();
            assert!(detail.contains("customer's contact"), "{detail}");
            assert!(detail.contains("login link"), "{detail}");
        }
        // Nothing was sent, opened or counted.
        assert!(app.chat_messages().await.iter().all(|m| m["purpose"] != "otp"));
        let read = app.get(&id).await;
        assert_eq!(read["open_challenge"], Value::Null, "{read}");
        assert_eq!(read["status"], "unauthenticated");
        // The contact's SMS goes; a PIN prompt into the chat is not a code.
        let sms = start_ok(&app, &id, json!({"method": "otp", "delivery": "sms"})).await;
        assert_eq!(sms["delivery"], "sms");
        let pin = start_ok(&app, &id, json!({"method": "pin"})).await;
        assert_eq!((pin["method"].clone(), pin["delivery"].clone()), (json!("pin"), json!("chat")));
        // The tests' `webchat` vouches (its file says so): its chat takes codes.
        let other = app.new_interaction().await;
        start_ok(&app, &other, json!({"method": "otp"})).await;
    }
);

both_stores!(
    step_up_on_new_fingerprint_then_otp,
    |app: TestApp| async move {
        let _ = app;
        let setup = Setup {
            team_extra: "[settings.step_up]\non_new_fingerprint = true\non_region_change = true\n"
                .into(),
            ..Setup::default()
        };
        let Some(app) = spawn_with(app.backend, setup).await else {
            return;
        };
        let id = app.new_interaction().await;
        let mut claims = app.assertion_claims("cust-42");
        claims["fingerprint"] = json!("device-1");
        claims["region"] = json!("EU");
        let post = |token: String, id: String| {
            let app = &app;
            async move {
                app.post_json(
                    &format!("/v1/interactions/{id}/assertion"),
                    Some(&app.keys.bot),
                    &json!({"assertion": token}),
                )
                .await
            }
        };
        let res = post(app.assertion(claims.clone()), id.clone()).await;
        assert_eq!(res.status(), 200);
        let b: Value = res.json().await.unwrap();
        assert_eq!(b["authenticated"], false);
        assert_eq!(b["requires_2fa"], true);
        assert_eq!(b["reason"], "new_fingerprint");
        assert_eq!(b["interaction"]["status"], "pending");
        let c = start_ok(&app, &id, json!({"method": "otp"})).await;
        let res = app
            .verify_code(
                &id,
                c["challenge_id"].as_str().unwrap(),
                &app.last_code().await,
            )
            .await;
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["interaction"]["method"], "otp");
        assert_eq!(v["interaction"]["customer"]["id"], "cust-42");
        assert_eq!(v["interaction"]["customer"]["name"], "Ada");
        // The same device and region next time: no step-up.
        let id2 = app.new_interaction().await;
        claims["jti"] = json!(uuid::Uuid::now_v7().to_string());
        let b: Value = post(app.assertion(claims.clone()), id2.clone())
            .await
            .json()
            .await
            .unwrap();
        assert_eq!(b["authenticated"], true, "{b}");
        assert_eq!(b["interaction"]["method"], "pre_chat");
        // Another region: step-up again.
        let id3 = app.new_interaction().await;
        claims["jti"] = json!(uuid::Uuid::now_v7().to_string());
        claims["region"] = json!("US");
        let b: Value = post(app.assertion(claims), id3).await.json().await.unwrap();
        assert_eq!(b["reason"], "region_change");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_holds_no_code_or_pin_and_every_key_has_a_ttl() {
    // Long code and PIN: Redis also holds event streams full of numbers, in
    // which a 6-digit string could turn up by chance.
    let setup = Setup {
        defaults: "otp = { length = 10 }".into(),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Redis, setup).await else {
        return;
    };
    let v = app.create(json!({"channel": "webchat", "conversation_id": "s", "customer_ref": "cust-scan", "session_pin": "739401628153"})).await;
    let id = v["id"].as_str().unwrap();
    let c = start_ok(&app, id, json!({"method": "otp"})).await;
    let code = app.last_code().await;
    app.verify_code(id, c["challenge_id"].as_str().unwrap(), &wrong(&code))
        .await;
    start_ok(&app, id, json!({"method": "pin"})).await;
    let keys = crate::redis_support::dump_prefix(&app.key_prefix).await;
    assert!(!keys.is_empty());
    for d in keys {
        let (k, ttl) = (&d.key, d.pttl);
        assert!(!k.contains(&code) && !k.contains("739401628153"));
        // -2: delivered and removed since it was listed (the outbox works
        // meanwhile); such a key holds nothing any more.
        assert!(ttl > 0 || ttl == -2, "{k} has no TTL ({ttl})");
        // The team's event log (`{team}:ev`) too: events carry no code or PIN.
        let dump = d.values.join(",");
        assert!(!dump.contains(&code), "{k} holds the OTP");
        assert!(!dump.contains("739401628153"), "{k} holds the PIN");
    }
}

both_stores!(
    channel_settings_override_the_code_length,
    |app: TestApp| async move {
        let _ = app;
        let setup = Setup {
            team_extra: "[channel_settings.webchat.otp]\nlength = 8\n".into(),
            ..Setup::default()
        };
        let Some(app) = spawn_with(app.backend, setup).await else {
            return;
        };
        let id = app.new_interaction().await;
        let c = start_ok(&app, &id, json!({"method": "otp"})).await;
        let code = app.last_code().await;
        assert_eq!(code.len(), 8, "{code}");
        assert_eq!(
            app.verify_code(&id, c["challenge_id"].as_str().unwrap(), &code)
                .await
                .status(),
            200
        );
    }
);

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
