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
    a_new_link_or_a_logout_ends_the_binding_and_a_retry_gets_a_fresh_code,
    setup: binding(),
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let body = json!({"token": link["token"], "outcome": "success", "customer": {"id": "cust-r"}});
        let signed = app.sign(&body, None);
        let first: Value = app.send_signed("/v1/login/callback", &signed).await.json().await.unwrap();
        // The login page retries the same request (it lost the answer): a fresh code.
        let again: Value = app.send_signed("/v1/login/callback", &signed).await.json().await.unwrap();
        assert_eq!(again["authenticated"], false, "{again}");
        let (c1, c2) = (first["binding_code"].as_str().unwrap(), again["binding_code"].as_str().unwrap());
        let cid = app.get(&id).await["open_challenge"]["challenge_id"]
            .as_str()
            .unwrap()
            .to_string();
        // A new link ends the waiting login.
        app.issue_link(&id, json!({})).await;
        let res = app.verify_code(&id, &cid, c2).await;
        assert_problem(res, 410, "challenge_expired").await;
        let _ = c1;
        // And a logout ends one too.
        let answer = bound_login(&app, &id, "cust-r").await;
        let cid = app.get(&id).await["open_challenge"]["challenge_id"]
            .as_str()
            .unwrap()
            .to_string();
        let res = app
            .post_json(&format!("/v1/interactions/{id}/logout"), Some(&app.keys.bot), &json!({}))
            .await;
        assert_eq!(res.status(), 200);
        let res = app.verify_code(&id, &cid, answer["binding_code"].as_str().unwrap()).await;
        assert_problem(res, 410, "challenge_expired").await;
        assert_eq!(app.get(&id).await["status"], "unauthenticated");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binding_code_is_not_in_redis() {
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
    let client = redis::Client::open(crate::redis_support::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", app.key_prefix))
        .query_async(&mut conn)
        .await
        .unwrap();
    for k in keys {
        assert!(!k.contains(&code));
        let kind: String = redis::cmd("TYPE")
            .arg(&k)
            .query_async(&mut conn)
            .await
            .unwrap();
        if kind == "string" {
            let v: Option<String> = redis::cmd("GET")
                .arg(&k)
                .query_async(&mut conn)
                .await
                .unwrap();
            assert!(
                !v.unwrap_or_default().contains(&code),
                "{k} holds the binding code"
            );
        }
    }
}
