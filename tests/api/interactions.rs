//! Interactions (docs/api.md): create is idempotent per conversation, lists
//! are newest first, filtered and paged at O(page), a living conversation
//! keeps its interaction, and nothing outlives the interactions it belongs to.
use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

both_stores!(
    create_is_idempotent_per_conversation,
    |app: TestApp| async move {
        let body = json!({"channel": "webchat", "conversation_id": "abc-123", "customer_ref": "cust-42",
                      "session_pin": "482913", "contact": {"phone": "+15551230000", "email": "ada@example.com"}});
        let res = app
            .post_json("/v1/interactions", Some(&app.keys.bot), &body)
            .await;
        assert_eq!(res.status(), 201);
        let first: serde_json::Value = res.json().await.unwrap();
        assert_eq!(first["status"], "unauthenticated");
        assert_eq!(first["authenticated"], false);
        assert_eq!(first["has_session_pin"], true);
        assert_eq!(first["team"], "acme");
        assert!(!first.to_string().contains("482913"));
        let res = app
            .post_json("/v1/interactions", Some(&app.keys.bot), &body)
            .await;
        assert_eq!(res.status(), 200);
        let second: serde_json::Value = res.json().await.unwrap();
        assert_eq!(first["id"], second["id"]);
        // Another channel is another interaction.
        let other = app
            .create(json!({"channel": "sms", "conversation_id": "abc-123"}))
            .await;
        assert_ne!(other["id"], first["id"]);
    }
);

/// A create-or-get reads the interaction this gateway last found or
/// created in the conversation together with the conversation
/// (docs/performance.md#targets). A guess gone stale still answers the
/// conversation's interaction: another instance, its clock ahead, took
/// the first for forgotten and started a new one there, while the first
/// is still live on this instance's clock; and a guess of one forgotten
/// since is a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stale_guess_of_a_conversations_interaction_answers_the_right_one() {
    let ttl = || "interaction_ttl = \"1h\"".to_string();
    let setup = Setup {
        defaults: ttl(),
        ..Setup::default()
    };
    let Some(a) = spawn_with(Backend::Redis, setup).await else {
        return;
    };
    let setup = Setup {
        defaults: ttl(),
        ..a.same_store()
    };
    let b = spawn_with(Backend::Redis, setup).await.unwrap();
    b.clock.set(a.now());
    let body = json!({"channel": "webchat", "conversation_id": "stale-guess"});

    let (status, first) = create_or_get(&a, &body).await;
    assert_eq!(status, 201);
    assert_eq!(
        create_or_get(&b, &body).await,
        (200, first.clone()),
        "b finds it"
    );
    assert_eq!(
        create_or_get(&a, &body).await,
        (200, first.clone()),
        "a finds it"
    );
    // Two hours later on b's clock only: b takes the first for forgotten.
    b.advance(2 * 3600);
    let (status, second) = create_or_get(&b, &body).await;
    assert_eq!(status, 201, "the first is forgotten: a new one");
    assert_ne!(second, first);
    // a last found the first there, still live on its clock; the
    // conversation names the second.
    let stale = create_or_get(&a, &body).await;
    assert_eq!(stale, (200, second.clone()), "a's guess is stale");
    let right = create_or_get(&a, &body).await;
    assert_eq!(right, (200, second.clone()), "a's guess is right");
    // a's guess names the second, which the conversation names too, but
    // it is forgotten: a new one, which b (its guess the second) finds.
    a.advance(4 * 3600);
    b.clock.set(a.now());
    let (status, third) = create_or_get(&a, &body).await;
    assert_eq!(status, 201, "the second is forgotten: a new one");
    assert_ne!(third, second);
    assert_eq!(create_or_get(&a, &body).await, (200, third.clone()));
    assert_eq!(
        create_or_get(&b, &body).await,
        (200, third),
        "b's guess is stale"
    );
}

/// `POST /v1/interactions` as the bot: its status and the interaction's id.
async fn create_or_get(app: &TestApp, body: &Value) -> (u16, String) {
    let res = app
        .post_json("/v1/interactions", Some(&app.keys.bot), body)
        .await;
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap();
    (status, v["id"].as_str().unwrap().to_string())
}

both_stores!(
    list_is_newest_first_filtered_and_paged,
    |app: TestApp| async move {
        let mut ids = Vec::new();
        for _ in 0..5 {
            ids.push(app.new_interaction().await);
            app.clock.advance(std::time::Duration::from_millis(5));
        }
        app.authenticate(&ids[1], "cust-1").await;
        let agent = Some(app.keys.agent.as_str());
        let page: serde_json::Value = app.get_json("/v1/interactions?limit=2", agent).await;
        assert_eq!(page_ids(&page), vec![ids[4].clone(), ids[3].clone()]);
        let cursor = page["next_cursor"].as_str().unwrap();
        let page2: serde_json::Value = app
            .get_json(&format!("/v1/interactions?limit=2&cursor={cursor}"), agent)
            .await;
        assert_eq!(page_ids(&page2), vec![ids[2].clone(), ids[1].clone()]);
        let auth: serde_json::Value = app
            .get_json("/v1/interactions?status=authenticated", agent)
            .await;
        let items = auth["items"].as_array().unwrap();
        assert_eq!(items.len(), 1);
        assert_eq!(items[0]["id"], ids[1].as_str());
        assert_eq!(auth["next_cursor"], serde_json::Value::Null);
        for bad in [
            "limit=0",
            "limit=501",
            "limit=x",
            "status=nope",
            "channel=fax",
        ] {
            let res = app
                .request(Method::GET, &format!("/v1/interactions?{bad}"), agent)
                .send()
                .await
                .unwrap();
            assert_problem(res, 422, "invalid_request").await;
        }
        // Another team sees none of them.
        let g: serde_json::Value = app
            .get_json("/v1/interactions", Some(&app.keys.globex_agent))
            .await;
        assert_eq!(g["items"].as_array().unwrap().len(), 0);
    }
);

both_stores!(
    a_living_conversation_keeps_its_interaction,
    |app: TestApp| async move {
        let _ = app;
        // Writes keep the interaction, and its conversation, alive: the
        // conversation key never ends before the interaction. With a margin
        // of 0.5 s a write keeps that key until 2.5 s after it, and leaves
        // it be while its own end stays 0.25 s within.
        let setup = Setup {
            defaults: "interaction_ttl = \"2s\"".into(),
            ..Setup::default()
        };
        let Some(app) = spawn_with(app.backend, setup).await else {
            return;
        };
        let body = json!({"channel": "webchat", "conversation_id": "margins"});
        let id = app.create(body.clone()).await["id"].clone();
        let activity = || async {
            let path = format!("/v1/interactions/{}/activity", id.as_str().unwrap());
            let res = app.post_json(&path, Some(&app.keys.bot), &json!({})).await;
            assert_eq!(res.status(), 200);
        };
        // Both clocks, the gateway's and the store's TTLs, move together.
        let clock = app.clock.clone();
        let wait = |ms: u64| {
            let clock = clock.clone();
            async move {
                tokio::time::sleep(std::time::Duration::from_millis(ms)).await;
                clock.advance(std::time::Duration::from_millis(ms));
            }
        };
        wait(200).await;
        activity().await; // ends at 2.2 s: left be (kept until 2.5 s)
        wait(600).await;
        activity().await; // ends at 2.8 s: extended to 3.3 s
        wait(1850).await;
        // At 2.65 s the interaction lives, and so does its conversation.
        let res = app
            .post_json("/v1/interactions", Some(&app.keys.bot), &body)
            .await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<serde_json::Value>().await.unwrap()["id"], id);
    }
);

both_stores!(
    an_exactly_full_last_page_has_no_next_cursor,
    |app: TestApp| async move {
        let agent = Some(app.keys.agent.as_str());
        for _ in 0..3 {
            app.new_interaction().await;
            app.clock.advance(std::time::Duration::from_millis(5));
        }
        let page = app.get_json("/v1/interactions?limit=3", agent).await;
        assert_eq!(page_ids(&page).len(), 3);
        assert_eq!(page["next_cursor"], serde_json::Value::Null, "{page}");
        app.new_interaction().await; // a fourth: the oldest moves to a second page
        let page = app.get_json("/v1/interactions?limit=3", agent).await;
        let cursor = page["next_cursor"]
            .as_str()
            .expect("a fourth item follows")
            .to_string();
        let rest = app
            .get_json(&format!("/v1/interactions?limit=3&cursor={cursor}"), agent)
            .await;
        assert_eq!(page_ids(&rest).len(), 1);
        assert_eq!(rest["next_cursor"], serde_json::Value::Null);
    }
);

both_stores!(
    a_filtered_page_costs_a_page_not_the_team,
    |app: TestApp| async move {
        // 300 unauthenticated interactions, one authenticated at the bottom.
        let first = app.new_interaction().await;
        app.authenticate(&first, "cust-old").await;
        for _ in 0..300 {
            app.new_interaction().await;
        }
        let page = |cursor: Option<String>| {
            let app = &app;
            async move {
                let mut path = "/v1/interactions?status=authenticated&limit=1".to_string();
                if let Some(c) = cursor {
                    path.push_str(&format!("&cursor={c}"));
                }
                app.get_json(&path, Some(&app.keys.agent)).await
            }
        };
        // A page walks a bounded stretch of the team: it may come back
        // short, with a cursor to go on; following cursors finds the match.
        let mut cursor = None;
        let mut found = Vec::new();
        let mut pages = 0;
        loop {
            let p = page(cursor.take()).await;
            pages += 1;
            found.extend(page_ids(&p));
            match p["next_cursor"].as_str() {
                Some(c) => cursor = Some(c.to_string()),
                None => break,
            }
            assert!(pages < 50, "the walk never ends");
        }
        assert_eq!(found, vec![first]);
        assert!(pages > 1, "the first page walked the whole team");
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_outlives_a_burst_of_short_lived_interactions() {
    let setup = Setup {
        defaults: [
            "interaction_ttl = \"3s\"",
            "authenticated_ttl = \"1s\"",
            "token_ttl = \"2s\"",
            "expiry_notice = \"0s\"",
            "otp = { ttl = \"2s\", send_window = \"2s\" }",
            "lockout = { window = \"2s\", threshold = 100 }",
        ]
        .join("\n"),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Redis, setup).await else {
        return;
    };
    for i in 0..20 {
        let v = app
            .create(json!({"channel": "webchat", "conversation_id": format!("b{i}"), "customer_ref": format!("cust-{}", i % 4)}))
            .await;
        let id = v["id"].as_str().unwrap();
        match i % 3 {
            0 => {
                app.authenticate(id, &format!("cust-{}", i % 4)).await;
            }
            1 => {
                let res = app
                    .post_json(
                        &format!("/v1/interactions/{id}/challenges"),
                        Some(&app.keys.bot),
                        &json!({"method": "otp"}),
                    )
                    .await;
                let c: Value = res.json().await.unwrap();
                let cid = c["challenge_id"].as_str().unwrap();
                let res = app
                    .post_json(
                        &format!("/v1/interactions/{id}/challenges/{cid}/verify"),
                        Some(&app.keys.bot),
                        &json!({"code": "000000000"}),
                    )
                    .await;
                assert!(res.status().is_client_error());
            }
            _ => {
                app.issue_link(id, json!({})).await;
            }
        }
    }
    // The authentications end 1 s later (the sweeper announces them), and
    // everything is forgotten 3 s after its last write.
    app.advance(1);
    let client = redis::Client::open(crate::redis_support::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let redis = crate::redis_support::TestPrefix::for_prefix(&app.key_prefix);
    let deadline = std::time::Instant::now() + Duration::from_secs(12);
    let left = loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        let keys = redis.keys();
        // The team's event history (`{team}:ev`) keeps its own 15 minutes
        // (docs/api.md#events: at least 10 minutes), the batches appended to it
        // (`{team}:evb`) two minutes; their TTLs are checked below.
        let (history, keys): (Vec<String>, Vec<String>) = keys
            .into_iter()
            .partition(|k| k.ends_with(":ev") || k.ends_with(":evb"));
        for k in &history {
            let ttl = redis.pttl(k);
            assert!(ttl > 0 && ttl <= 20 * 60 * 1000, "{k} (pttl {ttl})");
        }
        // The team's store marker (`{team}:ep`) lives as long as a gateway
        // runs, and 7 days after (docs/operations.md#when-redis-comes-back-empty).
        // The due queue's index (`{~due}:dueq`) lists the team until the
        // lease of the last outbox item written ends (items are born
        // claimed by their writer and wait in the due queue:
        // docs/decisions/0243-a-born-claimed-item-waits-in-the-due-queue.md),
        // 30 s, then a sweep takes it; so may the outbox's (`{~due}:obq`),
        // for an item retried there. Each lives 7 days past its last write.
        let (markers, keys): (Vec<String>, Vec<String>) = keys.into_iter().partition(|k| {
            k.ends_with("}:ep") || k.ends_with("{~due}:obq") || k.ends_with("{~due}:dueq")
        });
        for k in &markers {
            let ttl = redis.pttl(k);
            assert!(ttl > 0 && ttl <= 7 * 86_400 * 1000, "{k} (pttl {ttl})");
        }
        // The keys of the file teams an instance reserves against the
        // operator API (`{~teams}:rk:<sha256>`) live a day, renewed while
        // it runs (docs/operator-api.md#keys).
        let (reserved, keys): (Vec<String>, Vec<String>) =
            keys.into_iter().partition(|k| k.contains("{~teams}:rk:"));
        for k in &reserved {
            let ttl = redis.pttl(k);
            assert!(ttl > 0 && ttl <= 86_400 * 1000, "{k} (pttl {ttl})");
        }
        // The audit trail (`{team}:a:<seq>`, its head `{team}:ah`, the
        // configuration it last recorded `{team}:acfg` and its digest
        // `{team}:acfgd`) stays for `[audit] retention`, 400 days by
        // default (docs/audit.md#retention).
        let audit = |k: &str| {
            k.contains("}:a:")
                || k.ends_with("}:ah")
                || k.ends_with("}:acfg")
                || k.ends_with("}:acfgd")
        };
        let (trail, keys): (Vec<String>, Vec<String>) = keys.into_iter().partition(|k| audit(k));
        for k in &trail {
            let ttl = redis.pttl(k);
            assert!(ttl > 0 && ttl <= 400 * 86_400 * 1000, "{k} (pttl {ttl})");
        }
        // A drained queue (`{team}:dueq`, `{team}:obq`) keeps its key,
        // holding only its keeper, until its TTL (docs/architecture.md#keys-and-slots).
        let mut left = Vec::new();
        for k in keys {
            let queue = k.ends_with(":dueq") || k.ends_with(":obq");
            if queue && crate::redis_support::queue_items(&mut conn, &k).await == 0 {
                // -2: emptied and so deleted since it was listed (a due
                // index holds no keeper).
                let ttl = redis.pttl(&k);
                assert!(
                    ttl > 0 || ttl == -2,
                    "a drained {k} keeps a TTL (pttl {ttl})"
                );
            } else {
                left.push(k);
            }
        }
        let keys = left;
        if keys.is_empty() || std::time::Instant::now() > deadline {
            break keys;
        }
    };
    let mut described = Vec::new();
    for k in &left {
        described.push(format!("{k} (pttl {})", redis.pttl(k)));
    }
    assert!(left.is_empty(), "still in Redis: {described:#?}");
}
