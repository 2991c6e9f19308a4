//! What the Redis store adds: restarts lose nothing, several instances act
//! as one, and a dead Redis fails closed, fast, and recovers by itself.
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::redis_support::OwnRedis;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_the_same_redis_loses_nothing() {
    let Some(a) = spawn_app(Backend::Redis).await else {
        return;
    };
    let id = a.new_interaction().await;
    let link = a.issue_link(&id, json!({})).await;
    let res = a.succeed(&link, "cust-42").await;
    assert_eq!(res.status(), 200);
    let spare = a.issue_link(&id, json!({})).await;
    let setup = a.same_store();
    let prefix = a.key_prefix.clone();
    // Keep the keys: stop without the cleanup a dropped TestApp does.
    let mut a = a;
    a.backend = Backend::Memory;
    a.stop().await;

    let b = spawn_with(Backend::Redis, setup).await.unwrap();
    assert_eq!(b.key_prefix, prefix);
    let v = b.get(&id).await;
    assert_eq!(v["status"], "authenticated");
    let res = b.succeed(&link, "cust-42").await;
    assert_problem(res, 409, "token_used").await;
    // A link issued before the restart still works after it.
    let res = b.succeed(&spare, "cust-42").await;
    assert_eq!(res.status(), 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_redis_behave_as_one() {
    let Some(a) = spawn_app(Backend::Redis).await else {
        return;
    };
    let setup = a.same_store();
    let b = spawn_with(Backend::Redis, setup).await.unwrap();
    b.clock.set(a.now());
    let id = a.new_interaction().await;
    // The same conversation on the other instance is the same interaction.
    let v = b
        .create(
            json!({"channel": "webchat", "conversation_id": a.get(&id).await["conversation_id"]}),
        )
        .await;
    assert_eq!(v["id"], id.as_str());
    let link = a.issue_link(&id, json!({})).await;
    let res = b.succeed(&link, "cust-42").await;
    assert_eq!(res.status(), 200);
    assert_eq!(a.get(&id).await["status"], "authenticated");
    let res = a.succeed(&link, "cust-42").await;
    assert_problem(res, 409, "token_used").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_unreachable_fails_closed_within_two_seconds() {
    let setup = Setup {
        redis_url: Some("redis://127.0.0.1:1".into()),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup)
        .await
        .expect("starts even while Redis is down");
    let t = Instant::now();
    let res = app
        .post_json(
            "/v1/interactions",
            Some(&app.keys.bot),
            &json!({"channel": "webchat", "conversation_id": "c"}),
        )
        .await;
    assert_problem(res, 503, "store_unavailable").await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    let res = app
        .request(
            Method::GET,
            &format!("/v1/interactions/{}", uuid::Uuid::now_v7()),
            Some(&app.keys.agent),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 503, "store_unavailable").await;
    let t = Instant::now();
    let res = app
        .request(Method::GET, "/readyz", None)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    assert!(t.elapsed() < Duration::from_secs(2));
    assert_eq!(
        app.request(Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_mid_run_then_back_recovers_without_restart() {
    if !redis_available().await {
        return;
    }
    let Some(mut server) =
        OwnRedis::private("redis_stopped_mid_run_then_back_recovers_without_restart").await
    else {
        return;
    };
    let port = server.port;
    let setup = Setup {
        redis_url: Some(server.url()),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    let id = app.new_interaction().await;
    app.authenticate(&id, "cust-42").await;
    assert_eq!(app.get(&id).await["authenticated"], true);

    server.stop();
    let t = Instant::now();
    let res = app
        .request(
            Method::GET,
            &format!("/v1/interactions/{id}"),
            Some(&app.keys.agent),
        )
        .send()
        .await
        .unwrap();
    let body = assert_problem(res, 503, "store_unavailable").await;
    assert!(t.elapsed() < Duration::from_secs(2), "{:?}", t.elapsed());
    assert_ne!(body["authenticated"], Value::Bool(true));
    assert_eq!(
        app.request(Method::GET, "/readyz", None)
            .send()
            .await
            .unwrap()
            .status(),
        503
    );

    let _server = OwnRedis::start(port);
    let mut ready = false;
    for _ in 0..50 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if app
            .request(Method::GET, "/readyz", None)
            .send()
            .await
            .unwrap()
            .status()
            == 200
        {
            ready = true;
            break;
        }
    }
    assert!(ready, "the gateway did not recover when Redis came back");
    // Nothing persisted on the restarted server: the interaction is gone, but the gateway works.
    let res = app
        .request(
            Method::GET,
            &format!("/v1/interactions/{id}"),
            Some(&app.keys.agent),
        )
        .send()
        .await
        .unwrap();
    assert_problem(res, 404, "not_found").await;
    app.new_interaction().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_redis_key_has_a_ttl_after_a_full_flow() {
    let Some(app) = spawn_app(Backend::Redis).await else {
        return;
    };
    let id = app.new_interaction().await;
    app.authenticate(&id, "cust-42").await;
    let other = app
        .create(json!({"channel": "webchat", "conversation_id": "x", "customer_ref": "cust-9"}))
        .await;
    let link = app
        .issue_link(other["id"].as_str().unwrap(), json!({}))
        .await;
    app.callback(link["token"].as_str().unwrap(), "failure", json!(null))
        .await;
    let token = app.assertion(app.assertion_claims("cust-5"));
    let id3 = app.new_interaction().await;
    app.post_json(
        &format!("/v1/interactions/{id3}/assertion"),
        Some(&app.keys.bot),
        &json!({"assertion": token}),
    )
    .await;
    let client = redis::Client::open(crate::redis_support::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:*", app.key_prefix))
        .query_async(&mut c)
        .await
        .unwrap();
    assert!(keys.len() >= 8, "{keys:?}");
    for k in keys {
        let ttl: i64 = redis::cmd("PTTL")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap();
        // -2: delivered and removed since KEYS (the outbox works meanwhile).
        assert!(ttl > 0 || ttl == -2, "{k} has no TTL ({ttl})");
        let v: Option<String> = redis::cmd("GET")
            .arg(&k)
            .query_async(&mut c)
            .await
            .unwrap_or(None);
        if let Some(v) = v {
            assert!(
                !v.contains(&app.keys.acme_security) && !v.contains(&app.keys.bot),
                "{k} holds a secret"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn announcing_an_expiry_does_not_keep_the_interaction_alive() {
    let Some(mut app) = spawn_app(Backend::Redis).await else {
        return;
    };
    let id = app.new_interaction().await;
    app.authenticate(&id, "cust-42").await;
    // 31 minutes later the sweeper announces the expiry (a write of ours).
    app.advance(31 * 60);
    assert!(app
        .next_event("interaction.expired", Duration::from_secs(5))
        .await
        .is_some());
    let client = redis::Client::open(crate::redis_support::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let key = format!("{}:{{acme}}:i:{id}", app.key_prefix);
    let ttl: i64 = redis::cmd("PTTL")
        .arg(&key)
        .query_async(&mut c)
        .await
        .unwrap();
    // The record lives until its last real write + 24 h, not 24 h from the announcement.
    let left = 24 * 3600 * 1000 - 31 * 60 * 1000;
    assert!(ttl > 0 && ttl <= left, "PTTL {ttl} > {left}");
}

/// What points to an interaction in Redis (its conversation key, its
/// listing and customer-index entries) outlives its record by at least half
/// the margin (30 min by default) after every write: one that extends them,
/// those that leave them be, and one that names a new customer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_points_to_an_interaction_outlives_it() {
    use chatgate::store::keys;
    let Some(app) = spawn_app(Backend::Redis).await else {
        return;
    };
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": "outlive", "customer_ref": "cust-o"}),
        )
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let physical = |logical: String| format!("{}:{logical}", app.key_prefix);
    let record = physical(keys::interaction("acme", id.parse().unwrap()));
    let conversation = physical(keys::conversation("acme", "webchat", "outlive"));
    let client = redis::Client::open(crate::redis_support::redis_url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut customers = vec!["cust-o"];
    for step in 0..4 {
        match step {
            0 => {}
            // Left be: 10 min later, and 25 min after that: extended.
            1 | 2 => {
                app.advance(if step == 1 { 600 } else { 1500 });
                let path = format!("/v1/interactions/{id}/activity");
                let res = app.post_json(&path, Some(&app.keys.bot), &json!({})).await;
                assert_eq!(res.status(), 200);
            }
            _ => {
                app.authenticate(&id, "cust-new").await;
                customers.push("cust-new");
            }
        }
        let (secs, micros): (i64, i64) = redis::cmd("TIME").query_async(&mut c).await.unwrap();
        let now_ms = secs * 1000 + micros / 1000;
        let lives: i64 = redis::cmd("PTTL")
            .arg(&record)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(lives > 0, "step {step}: the record lives");
        let at_least = lives + 29 * 60 * 1000;
        let conv: i64 = redis::cmd("PTTL")
            .arg(&conversation)
            .query_async(&mut c)
            .await
            .unwrap();
        assert!(
            conv >= at_least,
            "step {step}: conversation {conv} vs record {lives}"
        );
        let indexes = std::iter::once(keys::interactions_index("acme"))
            .chain(customers.iter().map(|cu| keys::customer_index("acme", cu)));
        for index in indexes {
            let expiry: Option<f64> = redis::cmd("ZSCORE")
                .arg(physical(format!("{index}:exp")))
                .arg(&id)
                .query_async(&mut c)
                .await
                .unwrap();
            // An index of one member keeps no expiry set: its own life is
            // its member's.
            let entry = match expiry {
                Some(at) => at as i64 - now_ms,
                None => {
                    let members: Vec<String> = redis::cmd("ZRANGE")
                        .arg(physical(index.clone()))
                        .arg(0)
                        .arg(-1)
                        .query_async(&mut c)
                        .await
                        .unwrap();
                    assert_eq!(
                        members,
                        std::slice::from_ref(&id),
                        "step {step}: {index} without expiries"
                    );
                    redis::cmd("PTTL")
                        .arg(physical(index.clone()))
                        .query_async(&mut c)
                        .await
                        .unwrap()
                }
            };
            assert!(
                entry >= at_least,
                "step {step}: {index} entry {entry} vs record {lives}"
            );
        }
    }
}
