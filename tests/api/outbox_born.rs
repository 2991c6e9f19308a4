//! An item born claimed by its writer waits in the team's due queue, not in
//! the outbox (docs/decisions/0243-a-born-claimed-item-waits-in-the-due-queue.md):
//! its writer's settlement takes it out of there, a failure moves it into
//! the outbox for its retry, and one its writer never settled (it died) is
//! moved into the outbox by a sweeper when its lease ends, and delivered
//! once.
use std::time::Duration;

use chatgate::domain::secrets::generate_whsec;
use chatgate::store::{keys, Commit, Op};
use wiremock::matchers::method;
use wiremock::{Mock, MockServer, ResponseTemplate};

use crate::helpers::*;
use crate::outbox::{eventually, requests_where, with_webhook};

/// The entries of acme's queue `key`: (member, score).
async fn entries(app: &TestApp, key: &str) -> Vec<(String, i64)> {
    let read = app.gateway.store().index_desc(key, None, 1000).await;
    let entries = read.expect("the queue reads");
    entries.into_iter().map(|e| (e.member, e.score)).collect()
}

/// acme's born-claimed entries (`o:<item>`) in its due queue.
async fn born(app: &TestApp) -> Vec<String> {
    let queued = entries(app, &keys::due_queue("acme")).await;
    let born = queued.into_iter().map(|(m, _)| m);
    born.filter(|m| m.starts_with("o:")).collect()
}

/// acme's outbox entries (the items themselves).
async fn outbox(app: &TestApp) -> Vec<String> {
    let queued = entries(app, &keys::outbox("acme")).await;
    queued.into_iter().map(|(m, _)| m).collect()
}

both_stores!(
    a_born_item_leaves_the_due_queue_when_settled_and_is_retried_from_the_outbox,
    |app: TestApp| async move {
        // The chat answers the first notice late, and with a failure.
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(500).set_delay(Duration::from_millis(1500)))
            .up_to_n_times(1)
            .with_priority(1)
            .mount(&app.chat)
            .await;
        let id = app.new_interaction().await;
        app.authenticate(&id, "cust-born").await;
        // In flight: its entry waits in the due queue, born claimed at a
        // lease's end; the outbox holds nothing.
        let lease_end = app.now().unix_millis() + 30_000;
        let in_flight = born(&app).await;
        assert_eq!(in_flight.len(), 1, "one born entry: {in_flight:?}");
        assert!(in_flight[0].contains("\"authenticated\""));
        let scores = entries(&app, &keys::due_queue("acme")).await;
        assert!(scores
            .iter()
            .any(|(m, s)| *m == in_flight[0] && *s == lease_end));
        assert!(outbox(&app).await.is_empty(), "nothing in the outbox");

        // The failure: out of the due queue, into the outbox for its retry.
        eventually("the retry queued in the outbox", || async {
            outbox(&app).await.len() == 1
        })
        .await;
        assert!(born(&app).await.is_empty(), "the born entry is gone");
        assert!(outbox(&app).await[0].contains("\"attempts\":1"));
        let confirmations =
            || async { requests_where(&app.chat, |b| b["purpose"] == "authenticated").await };
        app.advance(3);
        eventually("the retry delivered and settled", || async {
            confirmations().await.len() == 2 && outbox(&app).await.is_empty()
        })
        .await;

        // Delivered at once: its settlement takes the born entry out.
        let other = app.new_interaction().await;
        app.authenticate(&other, "cust-born-2").await;
        eventually("the second notice delivered, its entry gone", || async {
            confirmations().await.len() == 3 && born(&app).await.is_empty()
        })
        .await;
        assert!(outbox(&app).await.is_empty());
    }
);

both_stores!(
    a_born_item_whose_writer_died_is_delivered_once_after_its_lease,
    |app: TestApp| async move {
        let backend = app.backend;
        drop(app);
        let receiver = MockServer::start().await;
        Mock::given(method("POST"))
            .respond_with(ResponseTemplate::new(204))
            .mount(&receiver)
            .await;
        let setup = with_webhook(&receiver.uri(), &generate_whsec());
        let Some(app) = spawn_with(backend, setup).await else {
            return;
        };
        // What a writer that died after its commit leaves: an item born
        // claimed, in the due queue until its lease's end, handed to no
        // dispatcher.
        use chatgate::events::{About, Event, EventType};
        use chatgate::gateway::OutboxItem;
        let now = app.now();
        let interaction = uuid::Uuid::now_v7().to_string();
        let data = serde_json::json!({"interaction": {"id": interaction}});
        let event = Event::new(EventType::InteractionCreated, now, "acme", &data).unwrap();
        let item = OutboxItem::event(event, About::default(), now);
        let text = serde_json::to_string(&item).unwrap();
        let left_by_the_dead = Op::QueueAdd {
            key: keys::due_queue("acme"),
            member: format!("o:{text}"),
            score: now.unix_millis() + 30_000,
            ttl: Duration::from_secs(3600),
        };
        let store = app.gateway.store();
        assert_eq!(
            store.commit(vec![left_by_the_dead]).await.unwrap(),
            Commit::Applied
        );
        let delivered = || async {
            requests_where(&receiver, |b| {
                b["data"]["interaction"]["id"] == interaction.as_str()
            })
            .await
        };
        // Within its lease nobody touches it.
        app.advance(20);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert!(delivered().await.is_empty(), "held by its writer's lease");
        assert_eq!(born(&app).await.len(), 1);

        // Its lease ends: a sweeper moves it into the outbox, a dispatcher
        // delivers it.
        app.advance(11);
        eventually("delivered after the lease", || async {
            delivered().await.len() == 1
        })
        .await;
        eventually("nothing left", || async {
            let left = chatgate::gateway::outbox_left(store.as_ref(), "acme", app.now(), 10);
            born(&app).await.is_empty() && left.await.unwrap() == 0
        })
        .await;
        // Once: nothing comes due again.
        app.advance(120);
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(delivered().await.len(), 1, "delivered once");
    }
);
