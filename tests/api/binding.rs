//! Binding the login to the chat (docs/api.md#the-login-callback, `login_binding`): a link
//! forwarded to a victim cannot authenticate the attacker's chat, because the
//! login finishes only with a code the login page shows and the customer
//! types into *their* chat.
use serde_json::{json, Value};

use crate::helpers::*;

fn binding() -> Setup {
    Setup {
        defaults: "login_binding = \"chat_code\"".into(),
        ..Setup::default()
    }
}

/// A successful callback for `customer` on a fresh link of `id`: its answer.
async fn bound_login(app: &TestApp, id: &str, customer: &str) -> Value {
    let link = app.issue_link(id, json!({})).await;
    let res = app
        .callback(
            link["token"].as_str().unwrap(),
            "success",
            json!({"id": customer, "name": "Ada"}),
        )
        .await;
    assert_eq!(res.status(), 200);
    res.json().await.unwrap()
}

both_stores!(
    a_bound_login_finishes_only_with_the_code_typed_into_the_chat,
    setup: binding(),
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let answer = bound_login(&app, &id, "cust-b").await;
        assert_eq!(answer["authenticated"], false, "{answer}");
        assert_eq!(answer["interaction_id"], id.as_str());
        let code = answer["binding_code"].as_str().unwrap().to_string();
        assert_eq!(code.len(), 6);
        assert!(code.bytes().all(|b| b.is_ascii_digit()));
        assert!(answer["binding_expires_at"].is_string());
        // Pending, with a binding challenge the login page delivered.
        let v = app.get(&id).await;
        assert_eq!(v["status"], "pending");
        assert_eq!(v["open_challenge"]["method"], "binding");
        assert_eq!(v["open_challenge"]["delivery"], "login_page");
        assert_eq!(v["open_challenge"]["expires_at"], answer["binding_expires_at"]);
        let cid = v["open_challenge"]["challenge_id"].as_str().unwrap().to_string();
        // Nothing told yet.
        tokio::time::sleep(std::time::Duration::from_millis(400)).await;
        assert!(app.chat_messages().await.iter().all(|m| m["purpose"] != "authenticated"));
        // A wrong code is a failed attempt of the subject.
        let res = app.verify_code(&id, &cid, &wrong_code(&code)).await;
        let b = assert_problem(res, 401, "invalid_code").await;
        assert_eq!(b["attempts_remaining"], 2);
        // The right code finishes the login as the callback's customer.
        let res = app.verify_code(&id, &cid, &code).await;
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["interaction"]["status"], "authenticated");
        assert_eq!(v["interaction"]["method"], "login_link");
        assert_eq!(v["interaction"]["customer"]["id"], "cust-b");
        assert_eq!(v["interaction"]["customer"]["name"], "Ada");
        let mut told = false;
        for _ in 0..30 {
            told = app.chat_messages().await.iter().any(|m| m["purpose"] == "authenticated");
            if told {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        assert!(told, "the authenticated text goes out on completion");
    }
);

both_stores!(
    a_forwarded_link_leaves_the_asking_chat_unauthenticated,
    setup: binding(),
    |app: TestApp| async move {
        // The attacker's chat asks for a link; the victim signs in with it.
        let attacker = app.new_interaction().await;
        let answer = bound_login(&app, &attacker, "victim-1").await;
        assert_eq!(answer["authenticated"], false);
        // The victim sees the code on the bank's page, in *their* browser;
        // the attacker's chat has no code to type.
        let v = app.get(&attacker).await;
        assert_ne!(v["status"], "authenticated");
        assert!(v["customer"].is_null(), "{v}");
        // A guess is a failed attempt; the challenge runs out.
        let cid = v["open_challenge"]["challenge_id"].as_str().unwrap().to_string();
        let code = answer["binding_code"].as_str().unwrap();
        for _ in 0..3 {
            let res = app.verify_code(&attacker, &cid, &wrong_code(code)).await;
            assert_eq!(res.status(), 401);
        }
        let res = app.verify_code(&attacker, &cid, code).await;
        assert_problem(res, 410, "challenge_exhausted").await;
        assert_ne!(app.get(&attacker).await["status"], "authenticated");
    }
);

both_stores!(
    wrong_binding_codes_lock_the_subject,
    setup: Setup {
        defaults: "login_binding = \"chat_code\"\nlockout = { threshold = 2 }".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let v = app
            .create(json!({"channel": "webchat", "conversation_id": "bl", "customer_ref": "cust-l"}))
            .await;
        let id = v["id"].as_str().unwrap();
        let answer = bound_login(&app, id, "cust-l").await;
        let code = answer["binding_code"].as_str().unwrap();
        let cid = app.get(id).await["open_challenge"]["challenge_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(app.verify_code(id, &cid, &wrong_code(code)).await.status(), 401);
        let res = app.verify_code(id, &cid, &wrong_code(code)).await;
        assert_problem(res, 423, "locked").await;
        // Locked: even the right code is refused.
        let res = app.verify_code(id, &cid, code).await;
        assert_problem(res, 423, "locked").await;
    }
);

both_stores!(
    a_channel_setting_overrides_the_team_setting,
    setup: Setup {
        team_extra: "[settings]\nlogin_binding = \"chat_code\"\n[channel_settings.webchat]\nlogin_binding = \"none\"\n".into(),
        ..Setup::default()
    },
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let answer = bound_login(&app, &id, "cust-o").await;
        assert_eq!(answer["authenticated"], true, "{answer}");
        assert!(answer.get("binding_code").is_none());
    }
);

both_stores!(
    a_new_link_or_a_logout_ends_the_binding_and_a_retry_gets_the_same_code,
    setup: binding(),
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let body = json!({"token": link["token"], "outcome": "success", "customer": {"id": "cust-r"}});
        let signed = app.sign(&body, None);
        let first: Value = app.send_signed("/v1/login/callback", &signed).await.json().await.unwrap();
        // The login page retries the same request (it lost the answer): the
        // first answer again, code and all.
        let again: Value = app.send_signed("/v1/login/callback", &signed).await.json().await.unwrap();
        assert_eq!(again, first);
        let code = first["binding_code"].as_str().unwrap();
        let cid = open_challenge(&app, &id).await;
        // A new link ends the waiting login, and the retry has nothing to give.
        app.issue_link(&id, json!({})).await;
        let res = app.verify_code(&id, &cid, code).await;
        assert_problem(res, 410, "challenge_expired").await;
        let res = app.send_signed("/v1/login/callback", &signed).await;
        assert_problem(res, 410, "challenge_expired").await;
        // And a logout ends one too.
        let answer = bound_login(&app, &id, "cust-r").await;
        let cid = open_challenge(&app, &id).await;
        let res = app
            .post_json(&format!("/v1/interactions/{id}/logout"), Some(&app.keys.bot), &json!({}))
            .await;
        assert_eq!(res.status(), 200);
        let res = app.verify_code(&id, &cid, answer["binding_code"].as_str().unwrap()).await;
        assert_problem(res, 410, "challenge_expired").await;
        assert_eq!(app.get(&id).await["status"], "unauthenticated");
    }
);

/// The id of the interaction's open challenge.
async fn open_challenge(app: &TestApp, id: &str) -> String {
    let v = app.get(id).await;
    v["open_challenge"]["challenge_id"]
        .as_str()
        .unwrap_or_else(|| panic!("{v}"))
        .to_string()
}

/// Types `answer`'s binding code, if it has one, into `id`'s open
/// challenge: what an attacker does with a code the gateway hands out.
async fn type_any_code(app: &TestApp, id: &str, answer: &Value) {
    let Some(code) = answer["binding_code"].as_str() else {
        return;
    };
    if let Some(cid) = app.get(id).await["open_challenge"]["challenge_id"].as_str() {
        let _ = app.verify_code(id, cid, code).await;
    }
}

both_stores!(
    a_retried_callback_never_hands_out_the_code_of_another_login,
    setup: binding(),
    |app: TestApp| async move {
        // 1. The attacker signs in as himself through link L1 in his chat.
        let chat = app.new_interaction().await;
        let l1 = app.issue_link(&chat, json!({})).await;
        let body = json!({"token": l1["token"], "outcome": "success", "customer": {"id": "attacker-1"}});
        let l1_callback = app.sign(&body, None);
        let res = app.send_signed("/v1/login/callback", &l1_callback).await;
        assert_eq!(res.status(), 200);
        // 2. He sends link L2 of the same chat to the victim, who signs in:
        // the victim's page shows a code the victim never types there.
        let victim = bound_login(&app, &chat, "victim-1").await;
        assert_eq!(victim["authenticated"], false);
        // 3. He sends L1's callback again.
        let res = app.send_signed("/v1/login/callback", &l1_callback).await;
        let status = res.status();
        let answer: Value = res.json().await.unwrap();
        type_any_code(&app, &chat, &answer).await;
        let v = app.get(&chat).await;
        assert_ne!(v["status"], "authenticated", "{v}");
        assert!(v["customer"].is_null(), "{v}");
        assert!(answer.get("binding_code").is_none(), "a code after the binding ended: {answer}");
        assert_eq!(status, 410, "{answer}");
        assert_eq!(answer["code"], "challenge_expired");
        // The victim's own binding is untouched: the victim's code would
        // still work (in the victim's chat; here it proves the victim).
        assert_eq!(v["open_challenge"]["method"], "binding");
    }
);

both_stores!(
    a_used_webhook_id_with_another_body_is_token_used,
    setup: binding(),
    |app: TestApp| async move {
        let chat = app.new_interaction().await;
        let l1 = app.issue_link(&chat, json!({})).await;
        let body = json!({"token": l1["token"], "outcome": "success", "customer": {"id": "cust-d"}});
        let first = app.sign(&body, None);
        let res = app.send_signed("/v1/login/callback", &first).await;
        assert_eq!(res.status(), 200);
        let resign = |body: &Value| signed_as(&app, body, &first.id);
        // The same `webhook-id`, the same token, another body.
        for other in [
            json!({"token": l1["token"], "outcome": "failure"}),
            json!({"token": l1["token"], "outcome": "success", "customer": {"id": "cust-e"}}),
        ] {
            let res = app.send_signed("/v1/login/callback", &resign(&other)).await;
            assert_problem(res, 409, "token_used").await;
        }
        // The same `webhook-id` on another link's callback.
        let l2 = app.issue_link(&chat, json!({})).await;
        let other = json!({"token": l2["token"], "outcome": "success", "customer": {"id": "cust-d"}});
        let res = app.send_signed("/v1/login/callback", &resign(&other)).await;
        assert_problem(res, 409, "token_used").await;
        // That refusal used nothing up: L2's own request goes through.
        let res = app.send_signed("/v1/login/callback", &app.sign(&other, None)).await;
        assert_eq!(res.status(), 200);
        let answer: Value = res.json().await.unwrap();
        assert!(answer["binding_code"].is_string(), "{answer}");
    }
);

both_stores!(
    an_expired_binding_never_comes_back_through_a_retry,
    setup: binding(),
    |app: TestApp| async move {
        let chat = app.new_interaction().await;
        let link = app.issue_link(&chat, json!({})).await;
        let body = json!({"token": link["token"], "outcome": "success", "customer": {"id": "cust-x"}});
        let signed = app.sign(&body, None);
        let res = app.send_signed("/v1/login/callback", &signed).await;
        assert_eq!(res.status(), 200);
        // The code lives `otp.ttl` (3 minutes); the retry comes after it
        // (and within the signature's five minutes).
        app.advance(181);
        let res = app.send_signed("/v1/login/callback", &signed).await;
        let status = res.status();
        let answer: Value = res.json().await.unwrap();
        type_any_code(&app, &chat, &answer).await;
        let v = assurance(&app, &chat, "max_age=10s").await;
        assert_eq!(v["satisfied"], false, "{v}");
        assert_eq!(v["unmet"][0], "authenticated", "{v}");
        assert_eq!(status, 410, "{answer}");
        assert_eq!(answer["code"], "challenge_expired");
        assert_eq!(app.get(&chat).await["status"], "unauthenticated");
    }
);

both_stores!(
    a_bound_login_is_as_old_as_its_callback,
    setup: binding(),
    |app: TestApp| async move {
        let chat = app.new_interaction().await;
        let called_back = app.now();
        let answer = bound_login(&app, &chat, "cust-t").await;
        let cid = open_challenge(&app, &chat).await;
        // The customer types the code 20 seconds after signing in.
        app.advance(20);
        let res = app.verify_code(&chat, &cid, answer["binding_code"].as_str().unwrap()).await;
        assert_eq!(res.status(), 200);
        let v = assurance(&app, &chat, "max_age=10s").await;
        assert_eq!(v["satisfied"], false, "{v}");
        assert_eq!(v["unmet"], json!(["max_age"]));
        assert_eq!(v["age_seconds"], 20);
        let at = |v: &Value| chatgate::time::Timestamp::parse_rfc3339(v["authenticated_at"].as_str().unwrap()).unwrap();
        assert_eq!(at(&v).unix_seconds(), called_back.unix_seconds());
        // The interaction says the same; it stays authenticated for
        // `authenticated_ttl` from the callback.
        let i = app.get(&chat).await;
        assert_eq!(i["status"], "authenticated");
        assert_eq!(at(&i), at(&v));
        assert_eq!(assurance(&app, &chat, "max_age=30s").await["satisfied"], true);
    }
);

both_stores!(
    a_website_logout_ends_a_login_waiting_for_its_binding_code,
    setup: binding(),
    |app: TestApp| async move {
        let chat = app.new_interaction().await;
        let link = app.issue_link(&chat, json!({})).await;
        let body = json!({"token": link["token"], "outcome": "success", "customer": {"id": "cust-w"}});
        let signed = app.sign(&body, None);
        let res = app.send_signed("/v1/login/callback", &signed).await;
        let answer: Value = res.json().await.unwrap();
        let cid = open_challenge(&app, &chat).await;
        let res = app
            .post_signed("/v1/customers/logout", &json!({"team": "acme", "customer_id": "cust-w"}), None)
            .await;
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 1}));
        // The code typed afterwards proves nobody.
        let res = app.verify_code(&chat, &cid, answer["binding_code"].as_str().unwrap()).await;
        assert_problem(res, 410, "challenge_expired").await;
        let v = app.get(&chat).await;
        assert_eq!(v["status"], "unauthenticated", "{v}");
        assert!(v["customer"].is_null());
        // Nor does the login page's retry bring it back.
        let res = app.send_signed("/v1/login/callback", &signed).await;
        assert_problem(res, 410, "challenge_expired").await;
        // Another customer's logout counts nothing here.
        bound_login(&app, &chat, "cust-v").await;
        let res = app
            .post_signed("/v1/customers/logout", &json!({"team": "acme", "customer_id": "cust-w"}), None)
            .await;
        assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 0}));
        assert_eq!(app.get(&chat).await["open_challenge"]["method"], "binding");
    }
);

/// `body` signed with acme's key under the `webhook-id` `id`.
fn signed_as(app: &TestApp, body: &Value, id: &str) -> Signed {
    let bytes = serde_json::to_vec(body).unwrap();
    let ts = app.now().unix_seconds();
    let key = app.keys.acme_key_bytes();
    let signature = chatgate::domain::webhook_sig::sign(&key, id, ts, &bytes);
    Signed {
        bytes,
        id: id.to_string(),
        ts,
        signature,
    }
}

both_stores!(
    concurrent_retries_get_one_binding_and_one_code,
    setup: binding(),
    |app: TestApp| async move {
        let chat = app.new_interaction().await;
        let link = app.issue_link(&chat, json!({})).await;
        let body = json!({"token": link["token"], "outcome": "success", "customer": {"id": "cust-c"}});
        let signed = app.sign(&body, None);
        let sends = (0..12).map(|_| app.send_signed("/v1/login/callback", &signed));
        let mut answers = Vec::new();
        for res in futures::future::join_all(sends).await {
            assert_eq!(res.status(), 200);
            answers.push(res.json::<Value>().await.unwrap());
        }
        assert!(answers.iter().all(|a| *a == answers[0]), "{answers:?}");
        let cid = open_challenge(&app, &chat).await;
        let res = app.verify_code(&chat, &cid, answers[0]["binding_code"].as_str().unwrap()).await;
        assert_eq!(res.status(), 200);
        assert_eq!(app.get(&chat).await["customer"]["id"], "cust-c");
    }
);

both_stores!(
    one_webhook_id_on_many_links_at_once_uses_one,
    setup: binding(),
    |app: TestApp| async move {
        // Eight chats, a link each; one `webhook-id` for all eight callbacks.
        let mut chats = Vec::new();
        for _ in 0..8 {
            let chat = app.new_interaction().await;
            let link = app.issue_link(&chat, json!({})).await;
            let body = json!({"token": link["token"], "outcome": "success", "customer": {"id": "cust-m"}});
            chats.push((chat, body));
        }
        let id = format!("msg_{}", uuid::Uuid::now_v7().simple());
        let signed: Vec<Signed> = chats.iter().map(|(_, b)| signed_as(&app, b, &id)).collect();
        let sends = signed.iter().map(|s| app.send_signed("/v1/login/callback", s));
        let statuses: Vec<u16> = futures::future::join_all(sends)
            .await
            .iter()
            .map(|r| r.status().as_u16())
            .collect();
        assert_eq!(statuses.iter().filter(|s| **s == 200).count(), 1, "{statuses:?}");
        assert_eq!(statuses.iter().filter(|s| **s == 409).count(), 7, "{statuses:?}");
        // The refused ones used nothing up: each link's own request works.
        for ((chat, body), status) in chats.iter().zip(&statuses) {
            let bound = app.get(chat).await["open_challenge"]["method"] == "binding";
            assert_eq!(bound, *status == 200);
            if *status == 409 {
                let res = app.send_signed("/v1/login/callback", &app.sign(body, None)).await;
                assert_eq!(res.status(), 200);
            }
        }
    }
);

async fn assurance(app: &TestApp, id: &str, query: &str) -> Value {
    let res = app
        .request(
            reqwest::Method::GET,
            &format!("/v1/interactions/{id}/assurance?{query}"),
            Some(&app.keys.bot),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "{query}");
    res.json().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binding_code_is_not_in_redis_and_what_the_callback_wrote_expires() {
    // Ten digits: a shorter code could turn up inside some other number.
    let setup = Setup {
        defaults: "login_binding = \"chat_code\"\notp = { length = 10 }".into(),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Redis, setup).await else {
        return;
    };
    let id = app.new_interaction().await;
    let answer = bound_login(&app, &id, "cust-s").await;
    let code = answer["binding_code"].as_str().unwrap().to_string();
    let redis = crate::redis_support::TestPrefix::for_prefix(&app.key_prefix);
    let keys = redis.keys();
    assert!(
        keys.iter().any(|k| k.contains(":wr:cb:")),
        "the webhook-id is kept: {keys:?}"
    );
    let mut read = 0;
    for k in keys {
        assert!(!k.contains(&code));
        // Everything the callback wrote (its `webhook-id` too) expires.
        let ttl = redis.pttl(&k);
        assert!(ttl > 0 || ttl == -2, "{k} has no TTL ({ttl})");
        if redis.raw(&["TYPE", &k]) != redis::Value::SimpleString("string".into()) {
            continue;
        }
        let redis::Value::BulkString(v) = redis.raw(&["GET", &k]) else {
            continue; // expired meanwhile
        };
        let v = String::from_utf8_lossy(&v);
        assert!(!v.contains(&code), "{k} holds the binding code");
        read += 1;
    }
    assert!(read > 0, "no record was read");
}

both_stores!(
    a_bound_login_of_a_delivered_link_names_its_channel_as_via,
    setup: binding(),
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({"deliver": true})).await;
        assert_eq!(link["delivered"], true);
        let res = app
            .callback(link["token"].as_str().unwrap(), "success", json!({"id": "cust-v"}))
            .await;
        assert_eq!(res.status(), 200);
        let answer: Value = res.json().await.unwrap();
        let code = answer["binding_code"].as_str().unwrap().to_string();
        let cid = app.get(&id).await["open_challenge"]["challenge_id"]
            .as_str()
            .unwrap()
            .to_string();
        assert_eq!(app.verify_code(&id, &cid, &code).await.status(), 200);
        let v = app.get(&id).await;
        assert_eq!(
            (v["method"].clone(), v["via"].clone()),
            (json!("login_link"), json!(["webchat"])),
            "the chat's channel delivered the link"
        );
    }
);
