//! Login links and the login callback (docs/api.md#the-login-callback):
//! signed delivery, retries and replays of the callback, logout and time-outs
//! (docs/api.md#activity-logout-and-time-outs), and no live login token in
//! the store.
use std::collections::HashSet;
use std::time::Duration;

use jsonwebtoken::{decode, decode_header, Algorithm, DecodingKey, Validation};
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

both_stores!(
    link_token_verifies_with_a_standard_jwt_library,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app
            .issue_link(
                &id,
                json!({"scope": "statement_copy", "expected_customer": "cust-42"}),
            )
            .await;
        let token = link["token"].as_str().unwrap();
        let header = decode_header(token).unwrap();
        assert_eq!(header.alg, Algorithm::HS256);
        assert_eq!(header.kid.as_deref(), Some("2026-11"));
        assert_eq!(header.typ.as_deref(), Some("JWT"));
        let mut v = Validation::new(Algorithm::HS256);
        v.set_audience(&["acme"]);
        v.set_issuer(&["chatgate-test"]);
        v.validate_exp = false; // the test clock is not the wall clock
        let claims = decode::<Value>(
            token,
            &DecodingKey::from_secret(&app.keys.acme_key_bytes()),
            &v,
        )
        .unwrap()
        .claims;
        assert_eq!(claims["sub"], id.as_str());
        assert_eq!(claims["jti"], link["link_id"]);
        assert_eq!(claims["team"], "acme");
        assert_eq!(claims["channel"], "webchat");
        assert_eq!(claims["stage"], "mid_chat");
        assert_eq!(claims["scope"], "statement_copy");
        assert_eq!(claims["expected_customer"], "cust-42");
        assert_eq!(
            claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(),
            600
        );
        let url = link["url"].as_str().unwrap();
        assert!(
            url.starts_with("https://login.acme.test/chat?lang=en&token="),
            "{url}"
        );
        assert!(link["short_url"]
            .as_str()
            .unwrap()
            .starts_with("http://gateway.test/l/"));
        assert_eq!(link["delivered"], false);
        assert_eq!(app.get(&id).await["status"], "pending");
    }
);

both_stores!(
    short_link_redirects_without_using_the_link_then_expires,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let path = link["short_url"]
            .as_str()
            .unwrap()
            .trim_start_matches("http://gateway.test");
        let code = path.trim_start_matches("/l/");
        assert!(code.len() >= 22, "at least 128 bits");
        for _ in 0..3 {
            let res = app.request(Method::GET, path, None).send().await.unwrap();
            assert_eq!(res.status(), 302);
            assert_eq!(
                res.headers()["location"].to_str().unwrap(),
                link["url"].as_str().unwrap()
            );
        }
        // Fetching never used it up.
        let res = app.succeed(&link, "c1").await;
        assert_eq!(res.status(), 200);
        let res = app.request(Method::GET, path, None).send().await.unwrap();
        assert_eq!(res.status(), 410);
        let res = app
            .request(Method::GET, "/l/neverissued0000000000000000", None)
            .send()
            .await
            .unwrap();
        assert_problem(res, 404, "not_found").await;
        let link2 = app.issue_link(&id, json!({})).await;
        let path2 = crate::pages::short_path(&link2);
        app.advance(600);
        assert_eq!(
            app.request(Method::GET, &path2, None)
                .send()
                .await
                .unwrap()
                .status(),
            410
        );
    }
);

both_stores!(
    callback_authenticates_until_ttl_to_the_second,
    |mut app: TestApp| async move {
        let id = app.new_interaction().await;
        let out = app.authenticate(&id, "cust-42").await;
        assert_eq!(out["authenticated"], true);
        assert_eq!(out["interaction_id"], id.as_str());
        let v = app.get(&id).await;
        assert_eq!(v["status"], "authenticated");
        assert_eq!(v["authenticated"], true);
        assert_eq!(v["method"], "login_link");
        assert_eq!(v["customer"]["id"], "cust-42");
        assert_eq!(v["customer"]["name"], "Ada");
        assert!(app
            .next_event(
                "interaction.authenticated",
                std::time::Duration::from_secs(2)
            )
            .await
            .is_some());
        // authenticated_ttl is 30 minutes by default: still authenticated at 29:59, expired at 30:01.
        app.advance(30 * 60 - 1);
        assert_eq!(app.get(&id).await["status"], "authenticated");
        app.advance(2);
        let v = app.get(&id).await;
        assert_eq!(v["status"], "expired");
        assert_eq!(v["authenticated"], false);
        // The expiry is announced within 5 s and the expired template goes into the chat.
        let e = app
            .next_event("interaction.expired", std::time::Duration::from_secs(5))
            .await
            .expect("interaction.expired");
        assert_eq!(event_data(&e)["interaction"]["id"], id.as_str());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        let texts: Vec<String> = app
            .chat_messages()
            .await
            .iter()
            .map(|m| m["purpose"].as_str().unwrap_or("").to_string())
            .collect();
        assert!(texts.contains(&"authenticated".to_string()), "{texts:?}");
        assert!(texts.contains(&"expired".to_string()), "{texts:?}");
    }
);

both_stores!(
    idle_timeout_expires_and_activity_extends,
    |app: TestApp| async move {
        let _ = app;
        let Some(app) = spawn_with(
            app.backend,
            Setup {
                defaults: "idle_timeout = \"5m\"".into(),
                ..Setup::default()
            },
        )
        .await
        else {
            return;
        };
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-42").await;
        app.advance(299);
        let res = app
            .request(
                Method::POST,
                &format!("/v1/interactions/{id}/activity"),
                Some(&app.keys.bot),
            )
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        app.advance(299);
        assert_eq!(app.get(&id).await["status"], "authenticated");
        app.advance(2);
        assert_eq!(app.get(&id).await["status"], "expired");
        // Activity after the idle end does not bring it back.
        let res = app
            .post_json(
                &format!("/v1/interactions/{id}/activity"),
                Some(&app.keys.bot),
                &json!({}),
            )
            .await;
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["status"], "expired");
    }
);

both_stores!(
    replayed_token_is_409_and_uses_are_exactly_once_under_a_race,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let token = link["token"].as_str().unwrap().to_string();
        let app = std::sync::Arc::new(app);
        let mut tasks = Vec::new();
        for _ in 0..50 {
            let app = app.clone();
            let token = token.clone();
            tasks.push(tokio::spawn(async move {
                app.callback(&token, "success", json!({"id": "cust-42"}))
                    .await
                    .status()
                    .as_u16()
            }));
        }
        let mut codes = Vec::new();
        for t in tasks {
            codes.push(t.await.unwrap());
        }
        assert_eq!(codes.iter().filter(|c| **c == 200).count(), 1, "{codes:?}");
        assert_eq!(codes.iter().filter(|c| **c == 409).count(), 49, "{codes:?}");
        let res = app
            .callback(&token, "success", json!({"id": "cust-42"}))
            .await;
        assert_problem(res, 409, "token_used").await;
    }
);

both_stores!(
    callback_checks_in_contract_order,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app
            .issue_link(&id, json!({"expected_customer": "cust-42"}))
            .await;
        let token = link["token"].as_str().unwrap();
        // Body rules first, and they use nothing up.
        for (body, status) in [
            (json!({"outcome": "success", "customer": {"id": "x"}}), 400),
            (
                json!({"token": token, "outcome": "maybe", "customer": {"id": "x"}}),
                422,
            ),
            (json!({"token": token, "outcome": "success"}), 400),
            (
                json!({"token": token, "outcome": "success", "customer": {"id": "x", "age": 7}}),
                422,
            ),
            (json!({"token": 5, "outcome": "success"}), 400),
        ] {
            let res = app.post_signed("/v1/login/callback", &body, None).await;
            assert_problem(res, status, "invalid_request").await;
        }
        // A garbage token: 401 invalid_token even with a bad signature.
        let res = app
            .post_signed(
                "/v1/login/callback",
                &json!({"token": "abc", "outcome": "success", "customer": {"id": "x"}}),
                Some(&[7u8; 32]),
            )
            .await;
        assert_problem(res, 401, "invalid_token").await;
        // A good token with a wrong signature: 401 invalid_signature, token not used.
        let body = json!({"token": token, "outcome": "success", "customer": {"id": "cust-42"}});
        let res = app
            .post_signed("/v1/login/callback", &body, Some(&[7u8; 32]))
            .await;
        assert_problem(res, 401, "invalid_signature").await;
        let res = app.post_json("/v1/login/callback", None, &body).await;
        assert_problem(res, 401, "invalid_signature").await;
        // The wrong customer: 403 customer_mismatch, counted as a failure, token used.
        let res = app
            .callback(token, "success", json!({"id": "someone-else"}))
            .await;
        assert_problem(res, 403, "customer_mismatch").await;
        let subj: Value = app
            .request(
                Method::GET,
                &format!("/v1/subjects/interaction:{id}"),
                Some(&app.keys.agent),
            )
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap_or(Value::Null);
        if !subj.is_null() {
            assert_eq!(subj["failures"], 1, "{subj}");
        }
        let res = app
            .callback(token, "success", json!({"id": "cust-42"}))
            .await;
        assert_problem(res, 409, "token_used").await;
        assert_eq!(app.get(&id).await["status"], "unauthenticated");
    }
);

both_stores!(failure_outcome_uses_the_token, |app: TestApp| async move {
    let id = app.new_interaction().await;
    let link = app.issue_link(&id, json!({})).await;
    let res = app
        .callback(link["token"].as_str().unwrap(), "failure", json!(null))
        .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.json::<Value>().await.unwrap(),
        json!({"authenticated": false})
    );
    let res = app.succeed(&link, "c").await;
    assert_problem(res, 409, "token_used").await;
});

both_stores!(
    expired_token_is_410_within_5s_leeway,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let a = app.issue_link(&id, json!({})).await;
        let b = app.issue_link(&id, json!({})).await;
        app.advance(600 + 5);
        let res = app.succeed(&a, "c").await;
        assert_eq!(res.status(), 200, "exp + 5 s is still inside the leeway");
        app.advance(1);
        let res = app.succeed(&b, "c").await;
        assert_problem(res, 410, "token_expired").await;
    }
);

both_stores!(
    token_from_another_team_or_forged_is_invalid,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let token = link["token"].as_str().unwrap();
        // Re-sign the same claims with globex's key: refused.
        let payload = token.split('.').nth(1).unwrap();
        let claims: Value = serde_json::from_slice(
            &base64::Engine::decode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, payload)
                .unwrap(),
        )
        .unwrap();
        {
            let mut h = jsonwebtoken::Header::new(Algorithm::HS256);
            h.kid = Some("2026-11".into());
            let globex = base64::Engine::decode(
                &base64::engine::general_purpose::STANDARD,
                app.keys.globex_security.trim_start_matches("whsec_"),
            )
            .unwrap();
            let forged = jsonwebtoken::encode(
                &h,
                &claims,
                &jsonwebtoken::EncodingKey::from_secret(&globex),
            )
            .unwrap();
            let res = app.callback(&forged, "success", json!({"id": "c"})).await;
            assert_problem(res, 401, "invalid_token").await;
        }
        // alg none
        let parts: Vec<&str> = token.split('.').collect();
        let none_header = base64::Engine::encode(
            &base64::engine::general_purpose::URL_SAFE_NO_PAD,
            br#"{"alg":"none","typ":"JWT","kid":"2026-11"}"#,
        );
        let res = app
            .callback(
                &format!("{none_header}.{}.", parts[1]),
                "success",
                json!({"id": "c"}),
            )
            .await;
        assert_problem(res, 401, "invalid_token").await;
        assert_eq!(app.get(&id).await["status"], "pending");
    }
);

both_stores!(
    delivery_goes_into_the_chat_signed,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({"deliver": true})).await;
        assert_eq!(link["delivered"], true);
        let reqs = app.chat.received_requests().await.unwrap();
        let req = reqs
            .iter()
            .find(|r| {
                serde_json::from_slice::<Value>(&r.body)
                    .map(|b| b["purpose"] == "login_link")
                    .unwrap_or(false)
            })
            .expect("login link sent");
        let body: Value = serde_json::from_slice(&req.body).unwrap();
        assert_eq!(body["type"], "message");
        assert_eq!(body["interaction_id"], id.as_str());
        assert_eq!(body["channel"], "webchat");
        assert_eq!(
            body["text"],
            format!(
                "Please sign in to continue: {}",
                link["short_url"].as_str().unwrap()
            )
        );
        let h = |n: &str| {
            req.headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .map(str::to_string)
        };
        let secret = base64::Engine::decode(
            &base64::engine::general_purpose::STANDARD,
            app.keys.webchat_secret.trim_start_matches("whsec_"),
        )
        .unwrap();
        let expected = chatgate::domain::webhook_sig::sign(
            &secret,
            &h("webhook-id").unwrap(),
            h("webhook-timestamp").unwrap().parse().unwrap(),
            &req.body,
        );
        assert!(h("webhook-signature")
            .unwrap()
            .split(' ')
            .any(|s| s == expected));
    }
);

both_stores!(delivery_failure_keeps_the_link, |app: TestApp| async move {
    app.chat.reset().await;
    wiremock::Mock::given(wiremock::matchers::method("POST"))
        .respond_with(wiremock::ResponseTemplate::new(500))
        .mount(&app.chat)
        .await;
    let id = app.new_interaction().await;
    let link = app.issue_link(&id, json!({"deliver": true})).await;
    assert_eq!(link["delivered"], false);
    assert!(link["delivery_error"].as_str().unwrap().contains("500"));
    let res = app.succeed(&link, "c").await;
    assert_eq!(res.status(), 200);
});

both_stores!(logouts_end_authentications, |mut app: TestApp| async move {
    let a = app.new_interaction().await;
    let b = app
        .create(json!({"channel": "sms", "conversation_id": "b", "customer_ref": "cust-7"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let c = app.new_interaction().await;
    app.authenticate(&a, "cust-7").await;
    app.authenticate(&b, "cust-7").await;
    app.authenticate(&c, "cust-8").await;
    // Bot logout of one interaction.
    let res = app
        .request(
            Method::POST,
            &format!("/v1/interactions/{c}/logout"),
            Some(&app.keys.agent),
        )
        .send()
        .await
        .unwrap();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["status"], "unauthenticated");
    assert_eq!(v["method"], Value::Null);
    assert!(app
        .next_event("interaction.logged_out", std::time::Duration::from_secs(2))
        .await
        .is_some());
    // Back-channel logout of customer cust-7: unsigned is refused, signed logs out both.
    let body = json!({"team": "acme", "customer_id": "cust-7"});
    let res = app.post_json("/v1/customers/logout", None, &body).await;
    assert_problem(res, 401, "invalid_signature").await;
    let res = app
        .post_signed(
            "/v1/customers/logout",
            &json!({"team": "nope", "customer_id": "cust-7"}),
            None,
        )
        .await;
    assert_problem(res, 401, "invalid_signature").await;
    let res = app.post_signed("/v1/customers/logout", &body, None).await;
    assert_eq!(res.status(), 200);
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 2}));
    for id in [&a, &b] {
        assert_eq!(app.get(id).await["status"], "unauthenticated");
    }
    let res = app.post_signed("/v1/customers/logout", &body, None).await;
    assert_eq!(res.json::<Value>().await.unwrap(), json!({"logged_out": 0}));
});

both_stores!(
    expiring_notice_before_expiry,
    |mut app: TestApp| async move {
        let id = app.new_interaction().await;
        app.authenticate(&id, "c").await;
        app.advance(30 * 60 - 61);
        assert!(app
            .next_event(
                "interaction.expiring",
                std::time::Duration::from_millis(1500)
            )
            .await
            .is_none());
        app.advance(2);
        let e = app
            .next_event("interaction.expiring", std::time::Duration::from_secs(5))
            .await
            .expect("expiring");
        assert_eq!(event_data(&e)["interaction"]["id"], id.as_str());
        let ids: HashSet<String> = HashSet::from([id]);
        assert!(ids.contains(event_data(&e)["interaction"]["id"].as_str().unwrap()));
    }
);

both_stores!(
    one_due_entry_brings_the_notice_then_the_expiry,
    |mut app: TestApp| async move {
        let id = app.new_interaction().await;
        app.authenticate(&id, "c").await;
        let store = app.gateway.store().clone();
        // The interaction's entries (the `authenticated` notice, born
        // claimed, waits in the same queue until it is delivered:
        // docs/decisions/0243-a-born-claimed-item-waits-in-the-due-queue.md).
        let due = || {
            let store = store.clone();
            async move {
                let queue = chatgate::store::keys::due_queue("acme");
                let entries = store.index_desc(&queue, None, 10).await.unwrap();
                entries
                    .into_iter()
                    .filter(|e| !e.member.starts_with("o:"))
                    .map(|e| (e.member, e.score))
                    .collect::<Vec<_>>()
            }
        };
        let end = app.now().plus(Duration::from_secs(30 * 60)).unix_millis();
        let entries = due().await;
        assert_eq!(entries.len(), 1, "one entry: {entries:?}");
        assert_eq!(entries[0].0, format!("x:{id}"));
        assert!(
            (end - 61_000..=end - 59_000).contains(&entries[0].1),
            "the notice's time"
        );
        app.advance(30 * 60 - 59);
        let e = app
            .next_event("interaction.expiring", Duration::from_secs(5))
            .await
            .expect("expiring");
        assert_eq!(event_data(&e)["interaction"]["id"], id.as_str());
        crate::outbox::eventually("the entry moved to the expiry", || async {
            let entries = due().await;
            entries.len() == 1 && (end - 1_000..=end + 1_000).contains(&entries[0].1)
        })
        .await;
        app.advance(60);
        assert_eq!(app.next_expired(1).await, vec![id.clone()], "expired");
        crate::outbox::eventually("no entry left", || async { due().await.is_empty() }).await;
    }
);

/// An interaction authenticated by a gateway whose `[defaults]` are
/// `before`, and the gateway that replaces it on the same store with
/// `after` (`app` stands for the backend only, and is dropped). `earlier`:
/// the record is then as an earlier version wrote it, without the due time
/// the queue holds for it (`dq`).
async fn restarted_with(
    app: TestApp,
    before: &str,
    after: &str,
    earlier: bool,
) -> Option<(TestApp, String)> {
    let backend = app.backend;
    drop(app);
    let (store, prefix) = crate::outbox::own_store(backend).await?;
    let setup = |defaults: &str| Setup {
        key_prefix: Some(prefix.clone()),
        store: Some(store.clone()),
        defaults: defaults.into(),
        ..Setup::default()
    };
    let first = spawn_with(backend, setup(before)).await?;
    let id = first.new_interaction().await;
    first.authenticate(&id, "cust-r").await;
    let keys = Some(first.keys.clone());
    first.stop_keeping_keys().await;
    if earlier {
        let key = chatgate::store::keys::interaction("acme", id.parse().unwrap());
        let read = store.get(std::slice::from_ref(&key)).await.unwrap();
        let read = read[0].as_ref().unwrap();
        let at = read.value.find(r#","dq":"#).expect("the held due time");
        let len = read.value[at + 6..]
            .find(|c: char| !c.is_ascii_digit())
            .unwrap();
        let value = format!("{}{}", &read.value[..at], &read.value[at + 6 + len..]);
        let put = chatgate::store::Op::Put {
            key,
            expected: read.version,
            version: chatgate::store::fresh_version(),
            value,
            ttl: Some(Duration::from_secs(3600)),
            companion: None,
        };
        let applied = store.commit(vec![put]).await.unwrap();
        assert_eq!(applied, chatgate::store::Commit::Applied);
    }
    let app = spawn_with(
        backend,
        Setup {
            keys,
            ..setup(after)
        },
    )
    .await?;
    Some((app, id))
}

// After `expiry_notice` or `idle_timeout` changes, the next write of an
// interaction authenticated before, even one that moves not its end, puts
// its due entry where the new setting has it (docs/architecture.md#time-outs).

/// A notice enabled at a restart, for an interaction authenticated without
/// one (its record as an `earlier` version wrote it, or not): activity a
/// minute later moves not its end, and the notice comes a minute before it.
async fn notice_enabled_at_a_restart(app: TestApp, earlier: bool) {
    let quiet = "expiry_notice = \"0s\"";
    let Some((mut app, id)) = restarted_with(app, quiet, "", earlier).await else {
        return;
    };
    app.advance(60);
    let path = format!("/v1/interactions/{id}/activity");
    let res = app.post_json(&path, Some(&app.keys.bot), &json!({})).await;
    assert_eq!(res.status(), 200);
    app.advance(30 * 60 - 60 - 59);
    let e = app
        .next_event("interaction.expiring", Duration::from_secs(5))
        .await
        .expect("the notice, a minute before the expiry");
    assert_eq!(event_data(&e)["interaction"]["id"], id.as_str());
}

both_stores!(
    a_notice_enabled_later_is_sent_after_the_next_write,
    |app: TestApp| notice_enabled_at_a_restart(app, false)
);

// A record an earlier version wrote does not say what the queue holds for
// it: its next write queues what is due, under the settings of today.
both_stores!(
    a_notice_enabled_with_the_upgrade_is_sent_after_the_next_write,
    |app: TestApp| notice_enabled_at_a_restart(app, true)
);

both_stores!(
    a_shorter_idle_timeout_expires_on_time_after_the_next_write,
    |app: TestApp| async move {
        let idle = |t: &str| format!("idle_timeout = \"{t}\"\nexpiry_notice = \"0s\"");
        let (before, after) = (idle("20m"), idle("10m"));
        let Some((mut app, id)) = restarted_with(app, &before, &after, false).await else {
            return;
        };
        // A link issued a minute later: written, but no activity, so the
        // end stays.
        app.advance(60);
        app.issue_link(&id, json!({})).await;
        app.advance(9 * 60 + 1);
        assert_eq!(
            app.next_expired(1).await,
            vec![id],
            "expired at the new idle end"
        );
    }
);

both_stores!(
    nothing_issued_before_a_logout_works_after_it,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-42").await;
        let link = app.issue_link(&id, json!({})).await;
        let c: Value = app
            .post_json(
                &format!("/v1/interactions/{id}/challenges"),
                Some(&app.keys.bot),
                &json!({"method": "otp"}),
            )
            .await
            .json()
            .await
            .unwrap();
        let res = app
            .post_json(
                &format!("/v1/interactions/{id}/logout"),
                Some(&app.keys.bot),
                &json!({}),
            )
            .await;
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["status"], "unauthenticated", "{v}");
        assert_eq!(v["open_challenge"], Value::Null);
        let res = app.succeed(&link, "cust-42").await;
        assert_problem(res, 409, "token_used").await;
        let cid = c["challenge_id"].as_str().unwrap();
        let res = app
            .post_json(
                &format!("/v1/interactions/{id}/challenges/{cid}/verify"),
                Some(&app.keys.bot),
                &json!({"code": "123456"}),
            )
            .await;
        assert_problem(res, 410, "challenge_expired").await;
        assert_eq!(app.get(&id).await["status"], "unauthenticated");
    }
);

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
    // The team's event log too: events carry no token.
    let keys = crate::redis_support::dump_prefix(&app.key_prefix).await;
    assert!(!keys.is_empty());
    for d in keys {
        let k = &d.key;
        assert!(!k.contains(code), "{k}");
        for v in d.values {
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

both_stores!(
    many_fetches_of_one_short_link_at_once_are_answered_by_its_state,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let link = app.issue_link(&id, json!({})).await;
        let path = crate::pages::short_path(&link);
        let want = link["url"].as_str().unwrap().to_string();
        // A chat app's previews, a link tracker and the customer, at once.
        let fetches = (0..600).map(|_| {
            let rb = app.request(Method::GET, &path, None);
            async move { rb.send().await.unwrap() }
        });
        let answers = futures::future::join_all(fetches).await;
        let mut statuses = std::collections::BTreeMap::new();
        for res in &answers {
            *statuses.entry(res.status().as_u16()).or_insert(0) += 1;
            if res.status() == 302 {
                assert_eq!(res.headers()["location"].to_str().unwrap(), want);
            }
        }
        assert_eq!(statuses, [(302, 600)].into(), "{statuses:?}");
    }
);
