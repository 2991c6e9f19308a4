//! A slow receiver only slows itself (docs/api.md#events): while a team's
//! event webhook accepts deliveries and never answers, that team's chat
//! notices still go out at once, a failed one is retried within 5 s, and
//! other teams' deliveries are not held up — on one instance or two.
use std::time::{Duration, Instant};

use chatgate::domain::secrets::generate_whsec;
use chatgate::store::keys;
use serde_json::json;
use wiremock::matchers::{body_partial_json, method};
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::outbox::{header, own_store, requests_where, with_webhook};

/// How soon a delivery that nothing holds up arrives after its commit.
const AT_ONCE: Duration = Duration::from_secs(1);
/// The contract's bound on a failed item's first retry.
const FIRST_RETRY: Duration = Duration::from_secs(5);

/// A webhook receiver that accepts every delivery and answers none before
/// the gateway gives up on it (its timeout is 10 s).
async fn hanging_receiver() -> MockServer {
    let receiver = MockServer::start().await;
    Mock::given(method("POST"))
        .respond_with(ResponseTemplate::new(204).set_delay(Duration::from_secs(15)))
        .mount(&receiver)
        .await;
    receiver
}

/// Waits (real time, checking every 20 ms) until `check` holds; panics
/// after `limit`. Answers how long it took.
async fn within<F, Fut>(what: &str, limit: Duration, mut check: F) -> Duration
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let start = Instant::now();
    loop {
        if check().await {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < limit,
            "not within {limit:?}: {what} (held up behind a hanging delivery?)"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Chat requests for the `authenticated` notice.
async fn authenticated_notices(chat: &MockServer) -> Vec<wiremock::Request> {
    requests_where(chat, |b| b["purpose"] == "authenticated").await
}

both_stores!(
    a_hanging_webhook_holds_up_neither_the_chat_nor_a_retry,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        let Some((store, prefix)) = own_store(backend).await else {
            return;
        };
        let receiver = hanging_receiver().await;
        let setup = Setup {
            key_prefix: Some(prefix),
            store: Some(store.clone()),
            ..with_webhook(&receiver.uri(), &generate_whsec())
        };
        let Some(app) = spawn_with(backend, setup).await else {
            return;
        };
        // The chat refuses the first `authenticated` notice.
        Mock::given(method("POST"))
            .and(body_partial_json(json!({"purpose": "authenticated"})))
            .respond_with(ResponseTemplate::new(500))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&app.chat)
            .await;
        let id = app.new_interaction().await;
        within(
            "the webhook holds the first delivery",
            FIRST_RETRY,
            || async {
                !receiver
                    .received_requests()
                    .await
                    .unwrap_or_default()
                    .is_empty()
            },
        )
        .await;

        // A login while the webhook hangs: its notice goes out at once.
        app.authenticate(&id, "cust-hang").await;
        within("the authenticated notice", AT_ONCE, || async {
            !authenticated_notices(&app.chat).await.is_empty()
        })
        .await;
        let failed = Instant::now();

        // It failed: it is rescheduled as soon as its own delivery ended,
        // not when the hanging one does (then it would still be under its
        // 30 s claim), and retried once its backoff (about 2 s) has passed.
        let outbox = keys::outbox("acme");
        let rescheduled = || async {
            let under_a_claim = app.now().unix_millis() + 10_000;
            let queued = store.index_desc(&outbox, None, 100).await.unwrap();
            queued.iter().any(|e| e.score < under_a_claim)
        };
        within("the failed notice rescheduled", FIRST_RETRY, rescheduled).await;
        app.advance(FIRST_RETRY.as_secs());
        within("the first retry", FIRST_RETRY, || async {
            authenticated_notices(&app.chat).await.len() == 2
        })
        .await;
        assert!(
            failed.elapsed() <= FIRST_RETRY + Duration::from_secs(1),
            "first retry {:?} after the failure",
            failed.elapsed()
        );
        let attempts = authenticated_notices(&app.chat).await;
        assert_eq!(
            header(&attempts[0], "webhook-id"),
            header(&attempts[1], "webhook-id"),
            "one message, one id"
        );
        // Both events' deliveries were under way all along, hanging.
        assert!(receiver.received_requests().await.unwrap().len() >= 2);
    }
);

both_stores!(
    another_team_is_not_held_up_by_a_hanging_webhook,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        let receiver = hanging_receiver().await;
        let Some(mut app) =
            spawn_with(backend, with_webhook(&receiver.uri(), &generate_whsec())).await
        else {
            return;
        };
        for _ in 0..3 {
            app.new_interaction().await;
        }
        within("acme's webhook holds a delivery", FIRST_RETRY, || async {
            !receiver
                .received_requests()
                .await
                .unwrap_or_default()
                .is_empty()
        })
        .await;
        for i in 0..3 {
            let res = app
                .post_json(
                    "/v1/interactions",
                    Some(&app.keys.globex_bot.clone()),
                    &json!({"channel": "webchat", "conversation_id": format!("g-{i}")}),
                )
                .await;
            assert!(res.status().is_success(), "{}", res.status());
            let id = res.json::<serde_json::Value>().await.unwrap()["id"]
                .as_str()
                .unwrap()
                .to_string();
            let committed = Instant::now();
            loop {
                let left = AT_ONCE.checked_sub(committed.elapsed()).unwrap_or_default();
                let next = tokio::time::timeout(left, app.events.recv()).await;
                let event = next
                    .unwrap_or_else(|_| panic!("globex's event not within {AT_ONCE:?}"))
                    .unwrap();
                if event.team == "globex" {
                    assert_eq!(event_data(&event)["interaction"]["id"], id.as_str());
                    break;
                }
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    }
);

/// Two instances on one Redis, one receiver hanging: neither instance's
/// dispatcher freezes, so every notice still goes out at once, whichever
/// instance takes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_beside_a_hanging_receiver_keep_delivering() {
    let receiver = hanging_receiver().await;
    let setup = with_webhook(&receiver.uri(), &generate_whsec());
    let Some(a) = spawn_with(Backend::Redis, setup.clone()).await else {
        return;
    };
    let second = Setup {
        key_prefix: Some(a.key_prefix.clone()),
        keys: Some(a.keys.clone()),
        ..setup
    };
    let b = spawn_with(Backend::Redis, second).await.unwrap();
    let notices = || async {
        authenticated_notices(&a.chat).await.len() + authenticated_notices(&b.chat).await.len()
    };
    for i in 0..6 {
        let on = if i % 2 == 0 { &a } else { &b };
        let id = on.new_interaction().await;
        on.authenticate(&id, &format!("cust-{i}")).await;
        within(
            &format!("login {i}'s notice, with deliveries hanging"),
            AT_ONCE,
            || async { notices().await > i },
        )
        .await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // Meanwhile every event's delivery was under way, hanging.
    within("every event at the webhook", FIRST_RETRY, || async {
        receiver.received_requests().await.unwrap_or_default().len() >= 12
    })
    .await;
}

both_stores!(
    a_receiver_back_after_an_outage_gets_its_backlog_within_10_s,
    |app: TestApp| async move {
        // A thousand events wait for a webhook that is down; it comes back.
        // The gateway's clock stands still meanwhile, so no item's own
        // backoff runs out: a success brings the rest forward.
        const N: usize = 1000;
        let backend = app.backend;
        drop(app);
        let Some((store, prefix)) = own_store(backend).await else {
            return;
        };
        use chatgate::events::{About, Event, EventType};
        use chatgate::gateway::{Outbox, OutboxItem};
        use chatgate::store::Commit;
        use chatgate::time::{Clock, SystemClock, Timestamp};
        let now = Timestamp::from_unix_seconds(SystemClock.now().unix_seconds() - 60);
        let (outbox, mut ops) = (Outbox::new(), Vec::new());
        for i in 0..N {
            let subject = format!("cust-{i}");
            let data = json!({"subject": {"subject": subject}});
            let event = Event::new(EventType::SubjectUnlocked, now, "acme", &data).unwrap();
            let item = OutboxItem::event(event, About::subject(&subject), now);
            ops.extend(outbox.enqueue("acme", item, now).unwrap());
        }
        assert_eq!(store.commit(ops).await.unwrap(), Commit::Applied);
        let receiver = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503))
            .mount(&receiver)
            .await;
        let setup = Setup {
            key_prefix: Some(prefix),
            store: Some(store),
            ..with_webhook(&receiver.uri(), &generate_whsec())
        };
        let Some(_app) = spawn_with(backend, setup).await else {
            return;
        };
        // Every item claimed once: delivered to a failing receiver, or handed
        // back for want of a slot; the attempts stop.
        let attempts = || async { receiver.received_requests().await.unwrap_or_default().len() };
        let mut seen = 0;
        loop {
            tokio::time::sleep(Duration::from_millis(700)).await;
            let now_seen = attempts().await;
            if now_seen >= 32 && now_seen == seen {
                break;
            }
            seen = now_seen;
        }
        receiver.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&receiver)
            .await;
        let back = Instant::now();
        let delivered = || async {
            let ids: std::collections::HashSet<String> = receiver
                .received_requests()
                .await
                .unwrap_or_default()
                .iter()
                .map(|r| header(r, "webhook-id"))
                .collect();
            ids.len()
        };
        loop {
            let n = delivered().await;
            if n == N {
                eprintln!(
                    "{N} delivered {:?} after the receiver came back",
                    back.elapsed()
                );
                break;
            }
            assert!(
                back.elapsed() < Duration::from_secs(10),
                "{n} of {N} delivered 10 s after the receiver came back"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
);

both_stores!(
    a_success_on_one_instance_brings_another_instances_waiting_item_forward,
    |app: TestApp| async move {
        // Instance A's delivery fails while the receiver is down, and its
        // item waits an hour (the receiver's Retry-After); A then goes
        // away. B, on the same store, saw the receiver down too. When the
        // receiver is back, B's own item gets through, and that success
        // brings A's item forward: it arrives within 10 s, not in an hour.
        // The gateways' clocks stand still, so no backoff runs out.
        let backend = app.backend;
        drop(app);
        let Some((store, prefix)) = own_store(backend).await else {
            return;
        };
        let receiver = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(503).insert_header("retry-after", "3600"))
            .mount(&receiver)
            .await;
        let setup = Setup {
            key_prefix: Some(prefix),
            store: Some(store.clone()),
            ..with_webhook(&receiver.uri(), &generate_whsec())
        };
        let Some(a) = spawn_with(backend, setup.clone()).await else {
            return;
        };
        let attempts = || async { receiver.received_requests().await.unwrap_or_default() };
        a.new_interaction().await;
        within("A's attempt", FIRST_RETRY, || async {
            attempts().await.len() == 1
        })
        .await;
        let a_event = header(&attempts().await[0], "webhook-id");
        let outbox = keys::outbox("acme");
        let in_half_an_hour = a.now().unix_millis() + 1_800_000;
        within("A's item rescheduled an hour on", FIRST_RETRY, || async {
            let queued = store.index_desc(&outbox, None, 10).await.unwrap();
            queued.len() == 1 && queued[0].score > in_half_an_hour
        })
        .await;
        let keys = a.keys.clone();
        // B, on the same prefix, deletes the keys when it goes.
        a.stop_keeping_keys().await;

        let b = spawn_with(
            backend,
            Setup {
                keys: Some(keys),
                ..setup
            },
        )
        .await
        .unwrap();
        b.new_interaction().await;
        within("B's attempt", FIRST_RETRY, || async {
            attempts().await.len() == 2
        })
        .await;
        let b_event = header(&attempts().await[1], "webhook-id");
        assert_ne!(a_event, b_event);

        receiver.reset().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&receiver)
            .await;
        let delivered = |id: String| {
            let attempts = &attempts;
            async move {
                attempts()
                    .await
                    .iter()
                    .any(|r| header(r, "webhook-id") == id)
            }
        };
        within(
            "B's own item, after the receiver is back",
            Duration::from_secs(10),
            || delivered(b_event.clone()),
        )
        .await;
        let took = within(
            "A's item, brought forward by B",
            Duration::from_secs(10),
            || delivered(a_event.clone()),
        )
        .await;
        eprintln!("A's item arrived {took:?} after B's");
        drop(b);
    }
);
