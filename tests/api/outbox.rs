//! What a state change tells others is delivered at least once (docs/architecture.md#the-outbox):
//! chat notices and team webhooks are retried from the store with the same
//! message id, survive a restart, go out once across instances, and one bad
//! record never stops the others.
use std::sync::Arc;
use std::time::Duration;

use chatgate::domain::secrets::generate_whsec;
use chatgate::store::{keys, Commit, Op, SharedStore};
use serde_json::Value;
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, Request, ResponseTemplate};

use crate::helpers::*;

/// Waits (real time, up to 5 s) until `check` holds.
pub(crate) async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..50 {
        if check().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("not within 5 s: {what}");
}

pub(crate) fn body(r: &Request) -> Value {
    serde_json::from_slice(&r.body).unwrap_or(Value::Null)
}

pub(crate) fn header(r: &Request, name: &str) -> String {
    r.headers
        .get(name)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string()
}

pub(crate) async fn requests_where(
    server: &MockServer,
    f: impl Fn(&Value) -> bool,
) -> Vec<Request> {
    let all = server.received_requests().await.unwrap_or_default();
    all.into_iter().filter(|r| f(&body(r))).collect()
}

/// Every attempt `receiver` got of an `interaction.created` event.
pub(crate) async fn created_events(receiver: &MockServer) -> Vec<Request> {
    requests_where(receiver, |b| b["type"] == "interaction.created").await
}

both_stores!(
    a_failing_chat_provider_still_gets_every_notice,
    |app: TestApp| async move {
        // The chat answers 500 twice, then 200 again.
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(2)
            .with_priority(1)
            .mount(&app.chat)
            .await;
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-n").await;
        let confirmations =
            || async { requests_where(&app.chat, |b| b["purpose"] == "authenticated").await };
        eventually("the first attempt", || async {
            confirmations().await.len() == 1
        })
        .await;
        // First retry within 5 s, then a longer wait.
        app.advance(3);
        eventually("the second attempt", || async {
            confirmations().await.len() == 2
        })
        .await;
        app.advance(6);
        eventually("the third attempt", || async {
            confirmations().await.len() == 3
        })
        .await;
        let attempts = confirmations().await;
        let ids: Vec<String> = attempts.iter().map(|r| header(r, "webhook-id")).collect();
        assert!(!ids[0].is_empty());
        assert!(
            ids.iter().all(|i| *i == ids[0]),
            "one message, one id: {ids:?}"
        );
        // Delivered: no more attempts.
        app.advance(120);
        tokio::time::sleep(Duration::from_millis(600)).await;
        assert_eq!(confirmations().await.len(), 3);
    }
);

/// A store for the app that the test can also write to directly, and the
/// key prefix it uses on Redis (the app's own, for the cleanup).
pub(crate) async fn own_store(backend: Backend) -> Option<(SharedStore, String)> {
    let prefix = format!("chatgate-test-{}", uuid::Uuid::now_v7());
    let store: SharedStore = match backend {
        Backend::Memory => Arc::new(chatgate::store::memory::MemoryStore::new()),
        Backend::Redis => {
            let s = chatgate::store::redis::RedisStore::connect(
                &crate::redis_support::redis_url(),
                &prefix,
            )
            .await
            .ok()?;
            Arc::new(s)
        }
    };
    Some((store, prefix))
}

both_stores!(
    an_unreadable_record_does_not_stop_the_other_expiries,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        let Some((store, prefix)) = own_store(backend).await else {
            return;
        };
        let setup = Setup {
            key_prefix: Some(prefix),
            store: Some(store.clone()),
            ..Setup::default()
        };
        let Some(mut app) = spawn_with(backend, setup).await else {
            return;
        };
        let mut ids = Vec::new();
        for i in 0..3 {
            let id = app.new_interaction().await;
            app.authenticate(&id, &format!("cust-{i}")).await;
            ids.push(id);
        }
        // A record this gateway cannot read (a newer or foreign writer) sits
        // among the due ones.
        let bad = keys::interaction("acme", ids[0].parse().unwrap());
        let version = store.get(std::slice::from_ref(&bad)).await.unwrap()[0]
            .as_ref()
            .unwrap()
            .version;
        let garbage = Op::Put {
            key: bad,
            expected: version,
            version: chatgate::store::fresh_version(),
            value: "{\"written by\": \"a future version\"".into(),
            ttl: Some(Duration::from_secs(600)),
            companion: None,
        };
        assert_eq!(store.commit(vec![garbage]).await.unwrap(), Commit::Applied);
        app.advance(31 * 60);
        let mut good = ids[1..].to_vec();
        good.sort();
        assert_eq!(app.next_expired(2).await, good, "the good ones expire");
        eventually("both expired texts", || async {
            app.chat_messages()
                .await
                .iter()
                .filter(|m| m["purpose"] == "expired")
                .count()
                == 2
        })
        .await;
    }
);

/// A webhook receiver that answers its first `n` deliveries with `status`,
/// then 204.
pub(crate) async fn receiver_failing_first(n: u64, status: u16) -> MockServer {
    receiver_answering_first(n, ResponseTemplate::new(status)).await
}

/// A webhook receiver that answers its first `n` deliveries with `answer`,
/// then 204.
async fn receiver_answering_first(n: u64, answer: ResponseTemplate) -> MockServer {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(answer)
        .up_to_n_times(n)
        .with_priority(1)
        .mount(&receiver)
        .await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    receiver
}

pub(crate) fn with_webhook(url: &str, secret: &str) -> Setup {
    Setup {
        team_extra: format!("[webhook]\nurl = \"{url}/events\"\nsecret = \"{secret}\"\n"),
        ..Setup::default()
    }
}

fn decoded(whsec: &str) -> Vec<u8> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD
        .decode(whsec.trim_start_matches("whsec_"))
        .unwrap()
}

both_stores!(
    team_webhooks_are_signed_and_retried_with_the_same_id,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        let receiver = receiver_failing_first(2, 500).await;
        let secret = generate_whsec();
        let Some(app) = spawn_with(backend, with_webhook(&receiver.uri(), &secret)).await else {
            return;
        };
        let id = app.new_interaction().await;
        let created = || created_events(&receiver);
        eventually("the first delivery", || async {
            created().await.len() == 1
        })
        .await;
        app.advance(3);
        eventually("the second delivery", || async {
            created().await.len() == 2
        })
        .await;
        app.advance(6);
        eventually("the third delivery", || async {
            created().await.len() == 3
        })
        .await;
        let attempts = created().await;
        let event_id = body(&attempts[0])["id"].as_str().unwrap().to_string();
        assert_eq!(body(&attempts[0])["data"]["interaction"]["id"], id.as_str());
        let key = decoded(&secret);
        for r in &attempts {
            assert_eq!(
                header(r, "webhook-id"),
                event_id,
                "webhook-id is the event id"
            );
            // Standard Webhooks, verified as a receiver would.
            let ts: i64 = header(r, "webhook-timestamp").parse().unwrap();
            chatgate::domain::webhook_sig::verify(
                &[&key],
                Some(&event_id),
                Some(&ts.to_string()),
                Some(&header(r, "webhook-signature")),
                &r.body,
                chatgate::time::Timestamp::from_unix_seconds(ts),
            )
            .expect("a valid signature");
        }
    }
);

/// A team webhook that answers a redirect has it as a failed attempt
/// (docs/decisions/0246-no-redirect-is-followed.md): followed, a 302 would
/// turn the POST into a `GET` without the event, which the other host
/// answers 200, counted delivered. The event is tried again at the
/// configured URL, and the host the redirect names gets nothing.
#[tokio::test]
async fn a_team_webhook_that_redirects_is_retried_not_followed() {
    let elsewhere = MockServer::start().await;
    Mock::given(wiremock::matchers::any())
        .respond_with(ResponseTemplate::new(200))
        .mount(&elsewhere)
        .await;
    let redirect =
        ResponseTemplate::new(302).insert_header("location", format!("{}/", elsewhere.uri()));
    let receiver = receiver_answering_first(1, redirect).await;
    let setup = with_webhook(&receiver.uri(), &generate_whsec());
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    app.new_interaction().await;
    let created = || created_events(&receiver);
    eventually("the redirected attempt", || async {
        created().await.len() == 1
    })
    .await;
    app.advance(3);
    eventually("the attempt again, at the same URL", || async {
        created().await.len() == 2
    })
    .await;
    let reached = elsewhere.received_requests().await.unwrap();
    assert!(reached.is_empty(), "the redirect was followed: {reached:?}");
}

both_stores!(
    a_backlog_due_at_once_goes_out_once_in_batches_side_by_side,
    |app: TestApp| async move {
        // Three batches' worth of events fail their first delivery, so all
        // come due again at one instant: the dispatcher claims batch after
        // batch while the first are delivering (a destination's deliveries
        // in flight are bounded; the rest wait for a slot), each claim
        // taking items of its own.
        const N: usize = 3 * chatgate::gateway::OUTBOX_BATCH;
        let backend = app.backend;
        drop(app);
        let receiver = receiver_failing_first(N as u64, 500).await;
        let Some(app) = spawn_with(backend, with_webhook(&receiver.uri(), &generate_whsec())).await
        else {
            return;
        };
        for _ in 0..N {
            app.new_interaction().await;
        }
        let created = || created_events(&receiver);
        eventually("every first attempt", || async {
            created().await.len() == N
        })
        .await;
        app.advance(3);
        eventually("every retry", || async { created().await.len() >= 2 * N }).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut attempts = std::collections::HashMap::<String, usize>::new();
        for r in created().await {
            *attempts.entry(header(&r, "webhook-id")).or_default() += 1;
        }
        assert_eq!(attempts.len(), N);
        assert!(
            attempts.values().all(|&n| n == 2),
            "each event: one failed attempt, one delivery: {attempts:?}"
        );
    }
);

both_stores!(
    a_backlog_reaches_the_live_stream_in_the_order_it_came_due,
    |app: TestApp| async move {
        // Three batches' worth of events, due at once and none published yet
        // (written while no gateway ran), and a webhook that takes its time:
        // the dispatcher claims on while deliveries are in flight, and still
        // each event reaches the live stream after every one due before it.
        const N: usize = 3 * chatgate::gateway::OUTBOX_BATCH;
        let backend = app.backend;
        drop(app);
        let Some((store, prefix)) = own_store(backend).await else {
            return;
        };
        use chatgate::events::{About, Event, EventType};
        use chatgate::gateway::{Outbox, OutboxItem};
        use chatgate::time::{Clock, SystemClock, Timestamp};
        // Due before the gateway's clock starts (at a whole second).
        let now = Timestamp::from_unix_seconds(SystemClock.now().unix_seconds() - 60);
        let (outbox, mut ops, mut due) = (Outbox::new(), Vec::new(), Vec::new());
        for i in 0..N {
            let subject = format!("cust-{i}");
            let data = serde_json::json!({"subject": {"subject": subject}});
            let event = Event::new(EventType::SubjectUnlocked, now, "acme", &data).unwrap();
            due.push(event.id);
            let item = OutboxItem::event(event, About::subject(&subject), now);
            ops.extend(outbox.enqueue("acme", item, now).unwrap());
        }
        assert_eq!(store.commit(ops).await.unwrap(), Commit::Applied);
        let receiver = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_millis(100)))
            .mount(&receiver)
            .await;
        let setup = Setup {
            key_prefix: Some(prefix),
            store: Some(store),
            ..with_webhook(&receiver.uri(), &generate_whsec())
        };
        let Some(mut app) = spawn_with(backend, setup).await else {
            return;
        };
        let mut published = Vec::new();
        while published.len() < N {
            let next = tokio::time::timeout(Duration::from_secs(10), app.events.recv()).await;
            published.push(next.expect("every event within 10 s").unwrap().id);
        }
        let first_out_of_order = published.iter().zip(&due).position(|(p, d)| p != d);
        assert_eq!(
            first_out_of_order, None,
            "published in the order they came due"
        );
        eventually("every webhook delivery", || async {
            receiver.received_requests().await.unwrap_or_default().len() == N
        })
        .await;
    }
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pending_delivery_survives_a_restart() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(503))
        .mount(&receiver)
        .await;
    let secret = generate_whsec();
    let Some(a) = spawn_with(Backend::Redis, with_webhook(&receiver.uri(), &secret)).await else {
        return;
    };
    let id = a.new_interaction().await;
    let created = || created_events(&receiver);
    eventually("a failed delivery", || async {
        !created().await.is_empty()
    })
    .await;
    let (prefix, keys) = (a.key_prefix.clone(), a.keys.clone());
    // Keep the keys: stop without the cleanup a dropped TestApp does.
    let mut a = a;
    a.backend = Backend::Memory;
    a.stop().await;
    // The receiver recovers; a new gateway process takes the delivery over.
    receiver.reset().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(200))
        .mount(&receiver)
        .await;
    let setup = Setup {
        key_prefix: Some(prefix),
        keys: Some(keys),
        ..with_webhook(&receiver.uri(), &secret)
    };
    let b = spawn_with(Backend::Redis, setup).await.unwrap();
    // Past the next retry (2 s ± 20 %, then 4 s) and past the 30 s claim
    // of an attempt the stop cut short: on a slow machine the first
    // gateway may have been delivering again as it stopped, and its claim
    // holds the item until the lease ends.
    b.advance(35);
    eventually("the delivery after the restart", || async {
        created().await.len() == 1
    })
    .await;
    assert_eq!(
        body(&created().await[0])["data"]["interaction"]["id"],
        id.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_expiry_is_announced_once_across_instances() {
    let setup = Setup {
        defaults: "authenticated_ttl = \"2s\"".into(),
        ..Setup::default()
    };
    let Some(mut a) = spawn_with(Backend::Redis, setup.clone()).await else {
        return;
    };
    let second = Setup {
        key_prefix: Some(a.key_prefix.clone()),
        keys: Some(a.keys.clone()),
        ..setup
    };
    let mut b = spawn_with(Backend::Redis, second).await.unwrap();
    let id = a.new_interaction().await;
    a.authenticate(&id, "cust-once").await;
    a.advance(3);
    b.advance(3);
    let (on_a, on_b) = tokio::join!(
        a.next_event("interaction.expired", Duration::from_secs(4)),
        b.next_event("interaction.expired", Duration::from_secs(4)),
    );
    let seen = usize::from(on_a.is_some()) + usize::from(on_b.is_some());
    assert_eq!(seen, 1, "interaction.expired once, by one instance");
    let expired_texts = || async {
        let (ma, mb) = (a.chat_messages().await, b.chat_messages().await);
        ma.iter()
            .chain(mb.iter())
            .filter(|m| m["purpose"] == "expired")
            .count()
    };
    eventually("the expired text", || async { expired_texts().await >= 1 }).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(expired_texts().await, 1, "sent once");
}

both_stores!(
    due_entries_of_no_known_kind_are_dropped_and_the_rest_handled,
    setup: Setup {
        defaults: "authenticated_ttl = \"2s\"".into(),
        ..Setup::default()
    },
    |mut app: TestApp| async move {
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-kinds").await;
        // Entries due before the interaction's: a kind no arm names, and
        // the interaction kind with no id.
        let queue = keys::due_queue("acme");
        let at = app.now().unix_millis();
        let strays = ["zz:1", "x:not-an-id", "no-kind"];
        let ops = strays
            .iter()
            .map(|member| Op::QueueAdd {
                key: queue.clone(),
                member: member.to_string(),
                score: at,
                ttl: Duration::from_secs(600),
            })
            .collect();
        assert!(matches!(
            app.gateway.store().commit(ops).await.unwrap(),
            Commit::Applied
        ));
        app.advance(3);
        assert_eq!(app.next_expired(1).await, vec![id], "expired");
        let store = app.gateway.store().clone();
        eventually("the strays dropped", || async {
            store.index_desc(&queue, None, 10).await.unwrap().is_empty()
        })
        .await;
    }
);

both_stores!(
    sigterm_drains_before_it_stops,
    setup: Setup {
        server: "shutdown_drain = \"1500ms\"".into(),
        ..Setup::default()
    },
    |mut app: TestApp| async move {
        let (client, url) = (app.client.clone(), app.url("/readyz"));
        let ready = || async {
            client
                .get(url.as_str())
                .send()
                .await
                .map(|r| r.status().as_u16())
                .ok()
        };
        assert_eq!(ready().await, Some(200));
        app.begin_shutdown();
        eventually("/readyz turns 503", || async { ready().await == Some(503) }).await;
        // Still serving everything else while draining.
        let res = app
            .request(reqwest::Method::GET, "/healthz", None)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        let id = app.new_interaction().await;
        assert_eq!(app.get(&id).await["status"], "unauthenticated");
        // Then it stops accepting.
        eventually("the listener closes", || async { ready().await.is_none() }).await;
    }
);

/// Redis stalls for 3 s just as authentications come due: afterwards every
/// expiry is announced all the same, none lost.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redis_stall_at_the_due_time_loses_no_expiry() {
    use crate::redis_support::OwnRedis;
    if !redis_available().await {
        return;
    }
    let Some(server) = OwnRedis::private("a_redis_stall_at_the_due_time_loses_no_expiry").await
    else {
        return;
    };
    let setup = Setup {
        redis_url: Some(server.url()),
        defaults: "authenticated_ttl = \"2s\"".into(),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = app.new_interaction().await;
        app.authenticate(&id, &format!("cust-{i}")).await;
        ids.push(id);
    }
    // Every client of this Redis blocks for 3 s; the gateway's calls time out.
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(3000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    app.advance(3);
    tokio::time::sleep(Duration::from_millis(3500)).await;
    // Claims made while Redis stalled (their answers timed out, but they
    // applied) come due again when their 30 s lease runs out.
    let texts = || async {
        app.chat_messages()
            .await
            .iter()
            .filter(|m| m["purpose"] == "expired")
            .count()
    };
    for _ in 0..3 {
        if texts().await >= ids.len() {
            break;
        }
        app.advance(31);
        tokio::time::sleep(Duration::from_millis(1500)).await;
    }
    eventually("every expired text", || async {
        texts().await >= ids.len()
    })
    .await;
    let mut expired: Vec<String> = app
        .chat_messages()
        .await
        .iter()
        .filter(|m| m["purpose"] == "expired")
        .map(|m| m["interaction_id"].as_str().unwrap().to_string())
        .collect();
    expired.sort();
    expired.dedup();
    ids.sort();
    assert_eq!(expired, ids);
}

/// Claims the sweeper sent while Redis was paused run when it resumes,
/// after their callers gave up: they take nothing (else they would lease
/// the due entries for 30 s to nobody), and every expiry is announced
/// within 5 s of the pause's end, the clock not moved past any lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expiries_are_announced_within_5_s_after_a_redis_pause() {
    use crate::redis_support::OwnRedis;
    if !redis_available().await {
        return;
    }
    let Some(server) =
        OwnRedis::private("expiries_are_announced_within_5_s_after_a_redis_pause").await
    else {
        return;
    };
    let setup = Setup {
        redis_url: Some(server.url()),
        defaults: "authenticated_ttl = \"2s\"".into(),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Redis, setup).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..20 {
        let id = app.new_interaction().await;
        app.authenticate(&id, &format!("cust-{i}")).await;
        ids.push(id);
    }
    let client = redis::Client::open(server.url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let _: () = redis::cmd("CLIENT")
        .arg("PAUSE")
        .arg(4000)
        .arg("ALL")
        .query_async(&mut conn)
        .await
        .unwrap();
    let paused = std::time::Instant::now();
    // Due now: the sweeper's claims queue up behind the pause.
    app.advance(3);
    let texts = || async {
        let mut expired: Vec<String> = app
            .chat_messages()
            .await
            .iter()
            .filter(|m| m["purpose"] == "expired")
            .map(|m| m["interaction_id"].as_str().unwrap().to_string())
            .collect();
        expired.sort();
        expired.dedup();
        expired
    };
    ids.sort();
    let resumed = paused + Duration::from_secs(4);
    loop {
        if texts().await == ids {
            break;
        }
        let late = std::time::Instant::now().saturating_duration_since(resumed);
        assert!(
            late < Duration::from_secs(5),
            "{} of {} expiries announced 5 s after the pause ended",
            texts().await.len(),
            ids.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

both_stores!(
    an_sms_conversation_gets_its_notices_at_its_contact,
    |app: TestApp| async move {
        let v = app
            .create(
                serde_json::json!({"channel": "sms", "conversation_id": "sms-1",
                "contact": {"phone": "+15551239876"}}),
            )
            .await;
        let id = v["id"].as_str().unwrap();
        app.authenticate(id, "cust-sms").await;
        let sent_to_contact = || async {
            app.chat
                .received_requests()
                .await
                .unwrap_or_default()
                .iter()
                .filter(|r| r.url.path().ends_with("/Messages.json"))
                .map(|r| String::from_utf8_lossy(&r.body).to_string())
                .any(|form| form.contains("To=%2B15551239876") && form.contains("verified"))
        };
        eventually("the authenticated SMS", || async {
            sent_to_contact().await
        })
        .await;
    }
);

both_stores!(
    a_late_sweep_announces_every_expiry_once,
    setup: Setup {
        defaults: "authenticated_ttl = \"30s\"\nexpiry_notice = \"10s\"".into(),
        ..Setup::default()
    },
    |mut app: TestApp| async move {
        // More notices come due at once than one batch holds, and all of
        // them only after their authentications ended (a restart, an outage).
        for i in 0..105 {
            let id = app.new_interaction().await;
            app.authenticate(&id, &format!("cust-{i}")).await;
        }
        app.advance(60);
        let mut expired = 0;
        while app
            .next_event("interaction.expired", Duration::from_secs(5))
            .await
            .is_some()
        {
            expired += 1;
            if expired == 105 {
                break;
            }
        }
        assert_eq!(expired, 105);
    }
);

/// An event of an item queued the earlier way (the dispatcher to publish
/// it) reaches the history (`Last-Event-ID`'s log) before the item leaves
/// the outbox: while Redis refuses the team's stream, the item stays
/// queued, to be published again; once the stream takes it, the event is
/// in the history and the item is gone. (The memory log appends in the
/// same call as the publication: nothing to wait for there.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_is_in_the_history_before_its_item_leaves_the_queue() {
    let Some(app) = spawn_app(Backend::Redis).await else {
        return;
    };
    let client = redis::Client::open(crate::redis_support::redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    let stream = format!("{}:{{acme}}:ev", app.key_prefix);
    let queue = format!("{}:{}", app.key_prefix, keys::outbox("acme"));
    // The team's stream is not a stream: every append is refused.
    let _: () = redis::cmd("SET")
        .arg(&stream)
        .arg("not a stream")
        .arg("EX")
        .arg(60)
        .query_async(&mut conn)
        .await
        .unwrap();
    // An item as an earlier version queued it: its event not yet published.
    use chatgate::events::{About, Event, EventType};
    use chatgate::gateway::{Outbox, OutboxItem};
    let now = app.now();
    let id = uuid::Uuid::now_v7().to_string();
    let data = serde_json::json!({"interaction": {"id": id}});
    let event = Event::new(EventType::InteractionCreated, now, "acme", &data).unwrap();
    let item = OutboxItem::event(event, About::default(), now);
    let ops = Outbox::new().enqueue("acme", item, now).unwrap().to_vec();
    assert_eq!(
        app.gateway.store().commit(ops).await.unwrap(),
        Commit::Applied
    );
    app.gateway.outbox().wake("acme");
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let queued = crate::redis_support::queue_items(&mut conn, &queue).await;
    assert_eq!(queued, 1, "the item waits while its event is not logged");

    let _: () = redis::cmd("DEL")
        .arg(&stream)
        .query_async(&mut conn)
        .await
        .unwrap();
    app.advance(2);
    let logged = || {
        let (mut conn, stream, id) = (conn.clone(), stream.clone(), id.clone());
        async move {
            let entries: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
                .arg(&stream)
                .arg("-")
                .arg("+")
                .query_async(&mut conn)
                .await
                .unwrap_or_default();
            entries
                .iter()
                .flat_map(|(_, fields)| fields)
                .any(|(_, json)| json.contains(&id) && json.contains("interaction.created"))
        }
    };
    eventually("the event in the history", logged).await;
    eventually("the item gone from the queue", || {
        let (mut conn, queue) = (conn.clone(), queue.clone());
        async move { crate::redis_support::queue_items(&mut conn, &queue).await == 0 }
    })
    .await;
}

/// A change whose events its commit appends to the team's stream: while
/// Redis refuses that stream, the commit fails (503) with nothing written,
/// so no change goes without its event.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_whose_history_is_refused_writes_nothing() {
    let Some(app) = spawn_app(Backend::Redis).await else {
        return;
    };
    let keys_of = crate::redis_support::TestPrefix::for_prefix(&app.key_prefix);
    let stream = keys_of.physical("{acme}:ev");
    keys_of.raw(&["SET", &stream, "not a stream", "EX", "60"]);
    // The teams' store markers, written at start-up, and the file teams'
    // reserved keys, written in the background after it, are not the
    // request's.
    let keys = || -> Vec<String> {
        let all = keys_of.keys();
        let instance_s = |k: &String| k.ends_with("}:ep") || k.contains("{~teams}:rk:");
        all.into_iter().filter(|k| !instance_s(k)).collect()
    };
    let before = keys();
    let res = app
        .request(
            reqwest::Method::POST,
            "/v1/interactions",
            Some(&app.keys.bot),
        )
        .json(&serde_json::json!({"channel": "webchat", "conversation_id": "c-1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 503);
    for key in ["{acme}:idx", "{acme}:obq", "{acme}:dueq"] {
        let exists = keys_of.raw(&["EXISTS", &keys_of.physical(key)]);
        assert_eq!(exists, redis::Value::Int(0), "{key}: nothing written");
    }
    // Nor the interaction, nor its conversation's key (created before the
    // append, then deleted again).
    assert_eq!(keys(), before, "nothing written");
    // Once the stream takes it, the same request goes through.
    keys_of.raw(&["DEL", &stream]);
    let created = app
        .create(serde_json::json!({"channel": "webchat", "conversation_id": "c-1"}))
        .await;
    let ttl = keys_of.pttl(&stream);
    assert!(ttl > 15 * 60 * 1000, "the stream has its lifetime: {ttl}");
    let entries = keys_of.raw(&["XLEN", &stream]);
    assert_eq!(entries, redis::Value::Int(1), "{created}");
}

/// `server.metrics_token` of [`oldest_pending_event`]'s app: the team
/// series are shown only with it.
const METRICS_TOKEN: &str = "outbox-metrics-token-0123456789";

/// The value of `chatgate_outbox_oldest_pending_seconds` for acme's events.
async fn oldest_pending_event(app: &TestApp) -> f64 {
    let text = app
        .request(reqwest::Method::GET, "/metrics", None)
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("chatgate_outbox_oldest_pending_seconds{"))
        .filter(|l| l.contains("kind=\"event\"") && l.contains("team=\"acme\""))
        .find_map(|l| l.rsplit_once(' ')?.1.parse().ok())
        .unwrap_or(0.0)
}

both_stores!(
    the_oldest_pending_age_grows_while_deliveries_fail_whatever_else_settles,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        // Every event delivery fails; chat notices are delivered meanwhile.
        let receiver = receiver_failing_first(u64::MAX, 500).await;
        let setup = Setup {
            server: format!("metrics_token = \"{METRICS_TOKEN}\""),
            ..with_webhook(&receiver.uri(), &generate_whsec())
        };
        let Some(app) = spawn_with(backend, setup).await else {
            return;
        };
        app.new_interaction().await;
        // A minute of the gateway's time, a login (and its delivered chat
        // notice) every 6 s.
        for i in 0..10 {
            let id = app.new_interaction().await;
            app.authenticate(&id, &format!("cust-{i}")).await;
            for _ in 0..6 {
                tokio::time::sleep(Duration::from_millis(50)).await;
                app.advance(1);
            }
        }
        eventually("the age of the oldest failing event", || async {
            oldest_pending_event(&app).await >= 50.0
        })
        .await;
    }
);

/// A team's loop that ends — here its claim panics, as a fault nobody
/// foresaw would — is started again, naming the team in one error line:
/// the team's later events are delivered, not left until a restart.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_team_s_loop_that_ends_is_started_again() {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204))
        .mount(&receiver)
        .await;
    let counting = Arc::new(crate::round_trips::Counting::default());
    counting.panic_at_claim_of(&keys::outbox("acme"));
    let setup = Setup {
        store: Some(counting.clone()),
        ..with_webhook(&receiver.uri(), &generate_whsec())
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let delivered = |id: String| {
        let receiver = &receiver;
        async move { requests_where(receiver, |b| b["data"]["interaction"]["id"] == id.as_str()).await }
    };
    // The first write starts acme's loop, whose first claim panics.
    app.new_interaction().await;
    eventually("the loop's claim panicked", || async {
        counting.panicked.load(std::sync::atomic::Ordering::SeqCst) == 1
    })
    .await;
    // A write after it: delivered by the loop started again.
    let id = app.new_interaction().await;
    eventually("delivered after the loop ended", || async {
        !delivered(id.clone()).await.is_empty()
    })
    .await;
    assert_eq!(delivered(id).await.len(), 1, "once");
    assert_eq!(app.gateway.outbox().team_loops(), 1, "acme's loop, once");
}

both_stores!(a_deleted_team_s_bell_and_loop_are_forgotten, setup: crate::operator_writes::with_operator(), |app: TestApp| async move {
    use crate::operator_writes::{delete, etag_of, keyspace, put, team};
    let outbox = app.gateway.outbox();
    let (bells, loops) = (outbox.bells(), outbox.team_loops());
    let mut body = team("gone", &generate_whsec());
    body.as_object_mut().unwrap().remove("webhook");
    let res = put(&app, "gone", &body, &[("If-None-Match", "*")]).await;
    assert_eq!(res.status(), 201);
    let etag = etag_of(&res);
    // The team's wake: a bell and a loop of its own.
    outbox.wake(&keyspace(&app, "gone").await);
    assert_eq!((outbox.bells(), outbox.team_loops()), (bells + 1, loops + 1));
    let res = delete(&app, "gone", &[("If-Match", &etag)]).await;
    assert_eq!(res.status(), 204);
    // Its loop, idle, sees the team gone: neither is held any more.
    eventually("the deleted team forgotten", || async {
        (outbox.bells(), outbox.team_loops()) == (bells, loops)
    })
    .await;
});
