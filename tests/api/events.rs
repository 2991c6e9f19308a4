//! The live event stream `GET /v1/events` (docs/api.md#events): events of the
//! caller's team as Server-Sent Events, resumable with `Last-Event-ID`,
//! shared by every instance on one Redis.
use std::time::Duration;

use chatgate::events::{history_op, Event, EventType};
use chatgate::store::Commit;
use reqwest::{Method, Response};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::helpers::*;

/// Generous bound for "arrives at once" on a busy machine; the API reference's
/// 2 s is asserted where it matters.
const SOON: Duration = Duration::from_secs(2);

/// One SSE frame: an event, or a comment.
#[derive(Debug, Default, Clone)]
struct Frame {
    id: Option<String>,
    event: Option<String>,
    data: Option<String>,
    comment: Option<String>,
}

impl Frame {
    fn json(&self) -> Value {
        serde_json::from_str(self.data.as_deref().unwrap()).unwrap()
    }
    fn id(&self) -> &str {
        self.id.as_deref().unwrap()
    }
}

/// An open `GET /v1/events`, read frame by frame.
struct EventStream {
    res: Response,
    buf: String,
}

impl EventStream {
    async fn open(app: &TestApp, key: &str, last_event_id: Option<&str>) -> EventStream {
        let mut rb = app.request(Method::GET, "/v1/events", Some(key));
        if let Some(id) = last_event_id {
            rb = rb.header("last-event-id", id);
        }
        let res = rb.send().await.unwrap();
        assert_eq!(res.status(), 200);
        let ct = res.headers()["content-type"].to_str().unwrap();
        assert!(ct.starts_with("text/event-stream"), "{ct}");
        EventStream {
            res,
            buf: String::new(),
        }
    }

    /// The next frame within `within`; `None` on timeout or end of stream.
    async fn frame(&mut self, within: Duration) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(i) = self.buf.find("\n\n") {
                let block: String = self.buf.drain(..i + 2).collect();
                return Some(parse(&block));
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            match tokio::time::timeout(left, self.res.chunk()).await {
                Ok(Ok(Some(bytes))) => self.buf.push_str(std::str::from_utf8(&bytes).unwrap()),
                _ => return None,
            }
        }
    }

    /// The next event (comments skipped) within `within`.
    async fn event(&mut self, within: Duration) -> Option<Frame> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            let f = self.frame(left).await?;
            if f.event.is_some() {
                return Some(f);
            }
        }
    }

    /// The next `n` events, each within [`SOON`].
    async fn events(&mut self, n: usize) -> Vec<Frame> {
        let mut out = Vec::new();
        for _ in 0..n {
            out.push(self.event(SOON).await.expect("an event"));
        }
        out
    }

    /// Whether the server ended the stream within `within`.
    async fn ends_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        loop {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            match tokio::time::timeout(left, self.res.chunk()).await {
                Ok(Ok(None)) | Ok(Err(_)) => return true,
                Ok(Ok(Some(_))) => continue,
                Err(_) => return false,
            }
        }
    }
}

fn parse(block: &str) -> Frame {
    let mut f = Frame::default();
    for line in block.lines().filter(|l| !l.is_empty()) {
        if let Some(c) = line.strip_prefix(':') {
            f.comment = Some(c.trim().to_string());
        } else if let Some((name, value)) = line.split_once(": ") {
            let slot = match name {
                "id" => &mut f.id,
                "event" => &mut f.event,
                "data" => {
                    assert!(f.data.is_none(), "data on one line: {block}");
                    &mut f.data
                }
                other => panic!("unexpected field {other} in {block}"),
            };
            *slot = Some(value.to_string());
        } else {
            panic!("unexpected line {line:?} in {block}");
        }
    }
    f
}

/// The ids of `created` events' interactions, in order.
fn created_ids(frames: &[Frame]) -> Vec<String> {
    frames
        .iter()
        .map(|f| {
            assert_eq!(f.event.as_deref(), Some("interaction.created"));
            f.json()["data"]["interaction"]["id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect()
}

both_stores!(
    an_authentication_arrives_on_the_stream_within_two_seconds,
    |app: TestApp| async move {
        let mut stream = EventStream::open(&app, &app.keys.agent, None).await;
        let id = app.new_interaction().await;
        let created = stream.event(SOON).await.expect("interaction.created");
        assert_eq!(created.event.as_deref(), Some("interaction.created"));
        let link = app.issue_link(&id, json!({})).await;
        let res = app.succeed(&link, "cust-42").await;
        assert_eq!(res.status(), 200);
        let t = Instant::now();
        let f = loop {
            let f = stream
                .event(Duration::from_secs(2))
                .await
                .expect("interaction.authenticated within 2 s");
            if f.event.as_deref() == Some("interaction.authenticated") {
                break f;
            }
        };
        assert!(t.elapsed() <= Duration::from_secs(2), "{:?}", t.elapsed());
        let e = f.json();
        assert_eq!(e["type"], "interaction.authenticated");
        assert_eq!(e["team"], "acme");
        assert_eq!(e["data"]["interaction"]["id"], id.as_str());
        assert_eq!(e["data"]["interaction"]["authenticated"], true);
        assert!(e["id"]
            .as_str()
            .is_some_and(|s| uuid::Uuid::parse_str(s).is_ok()));
        assert!(e["timestamp"].is_string());
        assert!(!f
            .data
            .as_deref()
            .unwrap()
            .contains(link["token"].as_str().unwrap()));
        assert!(
            f.id() > created.id(),
            "ids grow: {} then {}",
            created.id(),
            f.id()
        );
    }
);

both_stores!(
    resuming_with_last_event_id_yields_exactly_the_missed_events,
    |app: TestApp| async move {
        let mut first = EventStream::open(&app, &app.keys.agent, None).await;
        let a = app.new_interaction().await;
        let seen = first.event(SOON).await.expect("the first event");
        assert_eq!(created_ids(std::slice::from_ref(&seen)), [a.as_str()]);
        drop(first);
        // Missed while disconnected:
        let b = app.new_interaction().await;
        let c = app.new_interaction().await;

        let mut resumed = EventStream::open(&app, &app.keys.agent, Some(seen.id())).await;
        let missed = resumed.events(2).await;
        assert_eq!(created_ids(&missed), [b.clone(), c.clone()]);
        // Then live, without repeats.
        let d = app.new_interaction().await;
        let live = resumed.events(1).await;
        assert_eq!(created_ids(&live), [d.as_str()]);
        assert!(
            resumed.event(Duration::from_millis(500)).await.is_none(),
            "nothing more"
        );

        // Resuming from the newest id: nothing missed, nothing repeated.
        let mut current = EventStream::open(&app, &app.keys.agent, Some(live[0].id())).await;
        assert!(current.event(Duration::from_millis(500)).await.is_none());
        let e = app.new_interaction().await;
        assert_eq!(created_ids(&current.events(1).await), [e.as_str()]);

        // An id the log does not know starts from the oldest retained event.
        for unknown in ["not-an-id", "1-0"] {
            let mut s = EventStream::open(&app, &app.keys.agent, Some(unknown)).await;
            assert_eq!(
                created_ids(&s.events(5).await),
                [a.clone(), b.clone(), c.clone(), d.clone(), e.clone()]
            );
        }
    }
);

/// More than 10 000 events of one team.
const MANY: usize = 10_500;

both_stores!(
    a_resume_from_the_first_of_more_than_10_000_events_gets_every_later_one,
    |app: TestApp| async move {
        // The history is trimmed by age only (docs/events.md#history). The
        // events are committed as the gateway commits them (appended by a
        // commit, in commit order), 500 a commit: creating 10 500
        // interactions through the API takes too long in a debug build.
        let ids: Vec<String> = (0..MANY)
            .map(|_| uuid::Uuid::now_v7().to_string())
            .collect();
        for chunk in ids.chunks(500) {
            let ops = chunk
                .iter()
                .map(|id| {
                    let data = json!({ "interaction": { "id": id } });
                    let event = Event::new(EventType::InteractionCreated, app.now(), "acme", &data);
                    history_op("acme", &event.unwrap()).unwrap()
                })
                .collect();
            let committed = app.gateway.store().commit(ops).await.unwrap();
            assert_eq!(committed, Commit::Applied);
        }
        let log = app.gateway.events().log();
        let first = log.read_after("acme", None, 1).await.unwrap().remove(0);
        let first_data: Value = serde_json::from_str(first.event.data.get()).unwrap();
        assert_eq!(
            first_data["interaction"]["id"],
            ids[0].as_str(),
            "the first is kept"
        );
        let first = first.id.to_string();
        let mut resumed = EventStream::open(&app, &app.keys.agent, Some(&first)).await;
        let missed = resumed.events(MANY - 1).await;
        let missed = created_ids(&missed);
        let in_order = missed == ids[1..];
        assert!(
            in_order,
            "every later event, in order: {:?}",
            missed.first()
        );
        assert!(
            resumed.event(Duration::from_millis(500)).await.is_none(),
            "nothing more"
        );
    }
);

both_stores!(a_team_sees_only_its_own_events, |app: TestApp| async move {
    let mut globex = EventStream::open(&app, &app.keys.globex_agent, None).await;
    let mut acme = EventStream::open(&app, &app.keys.admin, None).await;
    let acme_id = app.new_interaction().await;
    let res = app
        .post_json(
            "/v1/interactions",
            Some(&app.keys.globex_bot),
            &json!({"channel": "webchat", "conversation_id": "g-1"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let globex_id: Value = res.json().await.unwrap();
    // globex's first event is its own, though acme's came first.
    let f = globex.event(SOON).await.unwrap();
    assert_eq!(f.json()["team"], "globex");
    assert_eq!(created_ids(&[f]), [globex_id["id"].as_str().unwrap()]);
    let f = acme.event(SOON).await.unwrap();
    assert_eq!(created_ids(&[f]), [acme_id.as_str()]);
    assert!(acme.event(Duration::from_millis(500)).await.is_none());
    // Nor does resuming from the oldest reveal another team's history.
    let mut all = EventStream::open(&app, &app.keys.globex_agent, Some("1-0")).await;
    let f = all.event(SOON).await.unwrap();
    assert_eq!(f.json()["team"], "globex");
    assert!(all.event(Duration::from_millis(500)).await.is_none());
});

both_stores!(
    bots_may_not_stream_and_callers_need_a_key,
    |app: TestApp| async move {
        let res = app
            .request(Method::GET, "/v1/events", Some(&app.keys.bot))
            .send()
            .await
            .unwrap();
        assert_problem(res, 403, "forbidden").await;
        let res = app
            .request(Method::GET, "/v1/events", None)
            .send()
            .await
            .unwrap();
        assert_problem(res, 401, "unauthorized").await;
        let res = app
            .request(Method::GET, "/v1/events", Some("not-a-key"))
            .send()
            .await
            .unwrap();
        assert_problem(res, 401, "unauthorized").await;
        let res = app
            .request(Method::GET, "/v1/events?since=1", Some(&app.keys.agent))
            .send()
            .await
            .unwrap();
        let body = assert_problem(res, 422, "invalid_request").await;
        assert!(body["detail"].as_str().unwrap().contains("since"), "{body}");
    }
);

mod keep_alive {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_idle_stream_gets_keep_alive_comments() {
        let setup = Setup {
            sse_keep_alive: Some(Duration::from_millis(200)),
            ..Setup::default()
        };
        let app = spawn_with(Backend::Memory, setup).await.unwrap();
        let mut stream = EventStream::open(&app, &app.keys.agent, None).await;
        let f = stream
            .frame(Duration::from_secs(10))
            .await
            .expect("a frame");
        assert_eq!(f.comment.as_deref(), Some("keep-alive"), "{f:?}");
        assert!(f.event.is_none() && f.id.is_none());
    }

    /// The connection's idle timer does not close a stream that is
    /// still sending (its request is answered, its body goes on).
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stream_outlives_the_connection_keep_alive_timeout() {
        let setup = Setup {
            server: "keep_alive_timeout = \"1s\"".into(),
            ..Setup::default()
        };
        let app = spawn_with(Backend::Memory, setup).await.unwrap();
        let mut stream = EventStream::open(&app, &app.keys.agent, None).await;
        tokio::time::sleep(Duration::from_millis(2500)).await;
        let id = app.new_interaction().await;
        assert_eq!(created_ids(&stream.events(1).await), [id]);
    }

    /// Shutdown ends open streams, so the server stops promptly.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_ends_open_streams() {
        let app = spawn_app(Backend::Memory).await.unwrap();
        let mut stream = EventStream::open(&app, &app.keys.agent, None).await;
        let id = app.new_interaction().await;
        assert_eq!(created_ids(&stream.events(1).await), [id]);
        let t = std::time::Instant::now();
        tokio::time::timeout(Duration::from_secs(10), app.stop())
            .await
            .expect("the server stops with a stream open");
        assert!(t.elapsed() < Duration::from_secs(10));
        assert!(stream.ends_within(Duration::from_secs(5)).await);
    }
}

mod redis_only {
    use super::*;
    use crate::redis_support::{shared_cluster, OwnRedis, TestPrefix};

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_instance_streams_every_event() {
        let Some(a) = spawn_app(Backend::Redis).await else {
            return;
        };
        let setup = a.same_store();
        let b = spawn_with(Backend::Redis, setup).await.unwrap();
        let mut on_a = EventStream::open(&a, &a.keys.agent, None).await;
        let mut on_b = EventStream::open(&b, &b.keys.agent, None).await;
        let x = a.new_interaction().await;
        let y = b.new_interaction().await;
        let from_a = on_a.events(2).await;
        let from_b = on_b.events(2).await;
        assert_eq!(created_ids(&from_a), [x.clone(), y.clone()]);
        assert_eq!(created_ids(&from_b), [x.clone(), y.clone()]);
        // One log: the same ids on both instances, resumable on either.
        let ids = |fs: &[Frame]| fs.iter().map(|f| f.id().to_string()).collect::<Vec<_>>();
        assert_eq!(ids(&from_a), ids(&from_b));
        let mut resumed = EventStream::open(&b, &b.keys.agent, Some(from_a[0].id())).await;
        assert_eq!(created_ids(&resumed.events(1).await), [y]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_history_is_one_stream_per_team_with_a_ttl() {
        let Some(app) = spawn_app(Backend::Redis).await else {
            return;
        };
        let mut stream = EventStream::open(&app, &app.keys.agent, None).await;
        app.new_interaction().await;
        stream.events(1).await;
        let keys = TestPrefix::for_prefix(&app.key_prefix);
        let key = keys.physical("{acme}:ev");
        let ttl = keys.pttl(&key);
        assert!(ttl > 15 * 60 * 1000 && ttl <= 20 * 60 * 1000, "pttl {ttl}");
        // The commit appended the event: no appender's batch to remember
        // (see below).
        assert_eq!(keys.pttl(&keys.physical("{acme}:evb")), -2, "no such key");
    }

    /// The appender sends a batch again when its answer was lost (Redis
    /// applied it, then went away, or answered too late): the script it
    /// sends remembers the batches it appended, so the history holds each
    /// event once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_batch_sent_again_is_appended_once() {
        let Some((_store, keys)) = crate::redis_support::redis_store().await else {
            return;
        };
        let (stream, batches) = (keys.physical("{acme}:ev"), keys.physical("{acme}:evb"));
        let script = include_str!("../../src/events/redis/append.lua");
        let append = |batch: &str| {
            let args = [
                "EVAL",
                script,
                "2",
                &stream,
                &batches,
                batch,
                "900000",
                "1200000",
                "120000",
                r#"{"n":1}"#,
                r#"{"n":2}"#,
            ];
            keys.raw(&args)
        };
        assert_eq!(append("b1"), redis::Value::Int(2));
        assert_eq!(append("b1"), redis::Value::Int(0), "sent again");
        assert_eq!(keys.raw(&["XLEN", &stream]), redis::Value::Int(2));
        assert_eq!(append("b2"), redis::Value::Int(2), "another batch");
        assert_eq!(keys.raw(&["XLEN", &stream]), redis::Value::Int(4));
        let ttl = keys.pttl(&batches);
        assert!(ttl > 0 && ttl <= 120_000, "pttl {ttl}");
    }

    /// Redis going away and coming back: the stream stays open, answers
    /// what it can, and carries events again once Redis is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_stream_survives_a_redis_restart() {
        if !redis_available().await {
            return;
        }
        let Some(mut server) = OwnRedis::private("the_stream_survives_a_redis_restart").await
        else {
            return;
        };
        let port = server.port;
        let setup = Setup {
            redis_url: Some(server.url()),
            sse_keep_alive: Some(Duration::from_millis(200)),
            ..Setup::default()
        };
        let app = spawn_with(Backend::Redis, setup).await.unwrap();
        let mut stream = EventStream::open(&app, &app.keys.agent, None).await;
        let first = app.new_interaction().await;
        let seen = stream.events(1).await;
        assert_eq!(created_ids(&seen), [first]);

        server.stop();
        // Resuming needs the history: 503 while Redis is away, fast.
        let res = app
            .request(Method::GET, "/v1/events", Some(&app.keys.agent))
            .header("last-event-id", seen[0].id())
            .send()
            .await
            .unwrap();
        assert_problem(res, 503, "store_unavailable").await;
        // The open stream lives on (keep-alives).
        let f = stream
            .frame(Duration::from_secs(5))
            .await
            .expect("still open");
        assert_eq!(f.comment.as_deref(), Some("keep-alive"));

        let _server = OwnRedis::start(port);
        let deadline = Instant::now() + Duration::from_secs(15);
        let second = loop {
            let res = app
                .post_json(
                    "/v1/interactions",
                    Some(&app.keys.bot),
                    &json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()}),
                )
                .await;
            if res.status() == 201 {
                let v: Value = res.json().await.unwrap();
                break v["id"].as_str().unwrap().to_string();
            }
            assert!(Instant::now() < deadline, "the store did not come back");
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        let f = stream
            .event(Duration::from_secs(10))
            .await
            .expect("an event after the restart");
        assert_eq!(created_ids(&[f]), [second]);
    }

    /// On a Redis Cluster: a reader per team (a blocking read names keys
    /// of one slot), and still every instance streams every event.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn on_a_cluster_every_instance_streams_every_event() {
        const TEST: &str = "on_a_cluster_every_instance_streams_every_event";
        let Some(cluster) = tokio::task::spawn_blocking(|| shared_cluster(TEST))
            .await
            .unwrap()
        else {
            return;
        };
        let setup = Setup {
            cluster_nodes: cluster.urls(),
            ..Setup::default()
        };
        let a = spawn_with(Backend::Redis, setup.clone()).await.unwrap();
        let b = spawn_with(
            Backend::Redis,
            Setup {
                key_prefix: Some(a.key_prefix.clone()),
                keys: Some(a.keys.clone()),
                ..setup
            },
        )
        .await
        .unwrap();
        let mut acme_on_b = EventStream::open(&b, &b.keys.agent, None).await;
        let mut globex_on_a = EventStream::open(&a, &a.keys.globex_agent, None).await;
        let x = a.new_interaction().await;
        let res = b
            .post_json(
                "/v1/interactions",
                Some(&b.keys.globex_bot),
                &json!({"channel": "webchat", "conversation_id": "g-1"}),
            )
            .await;
        assert_eq!(res.status(), 201);
        let y: Value = res.json().await.unwrap();
        let from_a = acme_on_b.events(1).await;
        assert_eq!(created_ids(&from_a), [x.as_str()]);
        assert_eq!(
            created_ids(&globex_on_a.events(1).await),
            [y["id"].as_str().unwrap()]
        );
        let z = a.new_interaction().await;
        let mut resumed = EventStream::open(&a, &a.keys.agent, Some(from_a[0].id())).await;
        assert_eq!(created_ids(&resumed.events(1).await), [z.as_str()]);
        let keys = tokio::task::block_in_place(|| cluster.keys(&a.key_prefix));
        assert!(keys.iter().any(|k| k.ends_with("{acme}:ev")), "{keys:?}");
    }
}

/// The document describes a frame of `GET /v1/events` as a client parses
/// it: its `id`, its `event` (the type) and its `data`, a string (the
/// `data:` line) whose content is the `Event`'s JSON.
#[tokio::test]
async fn each_frame_is_what_the_document_states() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let doc = app.get_json("/openapi.json", None).await;
    let schema = doc
        .pointer("/paths/~1v1~1events/get/responses/200/content/text~1event-stream/schema")
        .cloned()
        .expect("a schema of the stream");
    let mut stream = EventStream::open(&app, &app.keys.agent, None).await;
    let id = app.new_interaction().await;
    let link = app.issue_link(&id, json!({})).await;
    assert_eq!(app.succeed(&link, "cust-42").await.status(), 200);
    let frame_schema = &doc["components"]["schemas"]["EventFrame"];
    let data = &frame_schema["properties"]["data"];
    assert_eq!(data["type"], "string", "{frame_schema}");
    assert_eq!(data["contentMediaType"], "application/json");
    let event_schema = data["contentSchema"].clone();
    for f in stream.events(2).await {
        let text = f.data.clone().unwrap();
        let frame = json!({"id": f.id(), "event": f.event.as_deref().unwrap(), "data": text});
        if let Err(problem) = crate::openapi::conforms(&doc, &schema, &frame, "frame") {
            panic!("the frame does not match the document: {problem}\n{frame}");
        }
        // Its content is the Event.
        let parsed: Value = serde_json::from_str(&text).unwrap();
        if let Err(problem) = crate::openapi::conforms(&doc, &event_schema, &parsed, "data") {
            panic!("the frame's data is not the Event: {problem}\n{parsed}");
        }
        let mut wrong = parsed.clone();
        wrong["type"] = json!("no.such_type");
        assert!(
            crate::openapi::conforms(&doc, &event_schema, &wrong, "data").is_err(),
            "data holds the Event"
        );
        // `data` is the line's text, not an object.
        let object = json!({"id": f.id(), "event": f.event.as_deref().unwrap(), "data": parsed});
        assert!(crate::openapi::conforms(&doc, &schema, &object, "frame").is_err());
    }
}
