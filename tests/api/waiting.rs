//! The waiting calls' budget (docs/operations.md#waiting-calls): MCP
//! `get_verification` calls that would wait hold a place of their key's
//! share (`server.max_waits_per_key`) and of the budget of every waiting
//! call (`server.max_waits`, a quarter of `max_connections` at most); past
//! either they answer at once, and the connections left serve everyone
//! else. Places are counted on the gateway's own budget, never timed.
use std::time::Duration;

use futures::future::join_all;
use reqwest::Method;
use serde_json::{json, Value};
use tokio::time::{sleep, Instant};

use crate::helpers::*;
use crate::mcp::{call, open};

/// A `tools/call` of `get_verification` about `id`.
fn get_verification(id: &str, wait: u64) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": "tools/call",
           "params": {"name": "get_verification",
                      "arguments": {"interaction_id": id, "wait_seconds": wait}}})
}

/// Sends a `get_verification` waiting `wait` seconds as `key` in
/// `session` from `client`: its status and answer, in a task of its own.
fn waiting_call(
    client: &reqwest::Client,
    app: &TestApp,
    key: &str,
    session: &str,
    id: &str,
    wait: u64,
) -> tokio::task::JoinHandle<Option<(u16, Value)>> {
    let res = client
        .post(app.url("/mcp"))
        .bearer_auth(key)
        .header("accept", "application/json, text/event-stream")
        .header("mcp-session-id", session)
        .json(&get_verification(id, wait))
        .send();
    tokio::spawn(async move {
        let res = res.await.ok()?;
        let status = res.status().as_u16();
        Some((status, res.json().await.unwrap_or(Value::Null)))
    })
}

/// Until the budget holds `n` calls (20 s at most).
async fn until_held(app: &TestApp, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.waiting.held() != n {
        assert!(
            Instant::now() < deadline,
            "{} held, not {n}",
            app.waiting.held()
        );
        sleep(Duration::from_millis(50)).await;
    }
}

/// Whether an answer is the interaction as it was made: answered at
/// once, before the change every waiting call waits for (the link that
/// `authenticate` issues first, or the login).
fn at_once(answer: &Value) -> bool {
    answer["result"]["structuredContent"]["status"] == "unauthenticated"
}

/// A second bot key of acme's (as in `mcp.rs`).
const OTHER_BOT: &str = "cg_other_bot_key_for_mcp_tests_0123456789";

/// The MCP gateway with a key's share of two waiting calls
/// (`server.max_waits_per_key`).
fn two_waits_a_key() -> Setup {
    Setup {
        server: "max_waits_per_key = 2".into(),
        ..crate::mcp::setup(false)
    }
}

/// A session of each of `keys` whose first call about interaction `id`
/// was answered at once: from now on, its calls about it wait.
async fn waiting_sessions(app: &TestApp, keys: &[&str], id: &str) -> Vec<String> {
    let mut sessions = Vec::new();
    for key in keys {
        let session = open(app, key).await;
        let first = waiting_call(&reqwest::Client::new(), app, key, &session, id, 0);
        assert_eq!(first.await.unwrap().unwrap().0, 200);
        sessions.push(session);
    }
    sessions
}

both_stores!(
    a_wait_past_its_key_s_share_answers_at_once,
    setup: two_waits_a_key(),
    |app: TestApp| async move {
        let (bot, other) = (app.keys.bot.clone(), OTHER_BOT);
        let id = app.new_interaction().await;
        let sessions = waiting_sessions(&app, &[&bot, &bot, other], &id).await;
        let client = reqwest::Client::new();
        let held: Vec<_> = sessions[..2]
            .iter()
            .map(|s| waiting_call(&client, &app, &bot, s, &id, 25))
            .collect();
        until_held(&app, 2).await;
        // The key's third waits for nothing: it answers what it knows.
        let third = waiting_call(&client, &app, &bot, &sessions[0], &id, 25).await.unwrap().unwrap();
        assert_eq!(third.0, 200);
        assert!(at_once(&third.1), "{}", third.1);
        assert_eq!(third.1["result"]["isError"], false, "{}", third.1);
        assert_eq!(app.waiting.held(), 2, "the two still wait");
        // Another key of the same team has a share of its own.
        let others_wait = waiting_call(&client, &app, other, &sessions[2], &id, 25);
        until_held(&app, 3).await;
        // The change answers every waiting call, and the places come back.
        app.authenticate(&id, "cust-waits").await;
        for answer in join_all(held.into_iter().chain([others_wait])).await {
            let (status, answer) = answer.unwrap().unwrap();
            assert_eq!(status, 200);
            assert!(!at_once(&answer), "answered on the change: {answer}");
        }
        until_held(&app, 0).await;
    }
);

both_stores!(
    a_waiting_call_whose_client_leaves_gives_its_place_back,
    setup: two_waits_a_key(),
    |app: TestApp| async move {
        let bot = app.keys.bot.clone();
        let id = app.new_interaction().await;
        let sessions = waiting_sessions(&app, &[&bot, &bot, &bot], &id).await;
        // The key's share full, each call on a connection of its own.
        let (leaving, staying) = (reqwest::Client::new(), reqwest::Client::new());
        let left = waiting_call(&leaving, &app, &bot, &sessions[0], &id, 25);
        let stays = waiting_call(&staying, &app, &bot, &sessions[1], &id, 25);
        until_held(&app, 2).await;
        // A client hangs up: its call ends, its place comes back long
        // before the wait's 25 s.
        left.abort();
        drop(leaving);
        let at = Instant::now();
        until_held(&app, 1).await;
        assert!(at.elapsed() < Duration::from_secs(5), "{:?}", at.elapsed());
        // A new call of the key waits in it rather than answer at once.
        let new = waiting_call(&staying, &app, &bot, &sessions[2], &id, 25);
        until_held(&app, 2).await;
        app.authenticate(&id, "cust-leaves").await;
        for answer in join_all([stays, new]).await {
            let (status, answer) = answer.unwrap().unwrap();
            assert_eq!(status, 200);
            assert!(!at_once(&answer), "answered on the change: {answer}");
        }
        until_held(&app, 0).await;
    }
);

/// The code page a customer opens (a real customer page: 200 while the
/// gateway has connections for it).
async fn code_page(app: &TestApp) -> String {
    let id = app.new_interaction().await;
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges"),
            Some(&app.keys.bot),
            &json!({"method": "otp", "delivery": "agent", "entry": "page"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    last_code_page_link(app, "code_entry_link").await
}

/// A gateway (memory store) whose bot key has a session that had its
/// first answer about a new interaction: its next calls about it wait.
async fn waiting_bot(setup: Setup) -> (TestApp, String, String, String) {
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    let bot = app.keys.bot.clone();
    let session = open(&app, &bot).await;
    let id = app.new_interaction().await;
    let args = json!({"interaction_id": id});
    call(&app, &session, "get_verification", args).await;
    (app, bot, session, id)
}

/// A thousand waiting calls of one bot key, with `max_connections = 64`:
/// a quarter of the connections (16) wait, every other call answers at
/// once (or, while they all arrive, is refused its connection), and
/// another team's bot, a customer's page and `/healthz` are answered as
/// before while the 16 wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_waiting_calls_of_one_key_leave_everyone_else_served() {
    let setup = Setup {
        server: "max_connections = 64".into(),
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    };
    let (app, bot, session, id) = waiting_bot(setup).await;
    let page = code_page(&app).await;

    // Each call on a connection of its own, closed after its answer.
    let flood_client = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let flood: Vec<_> = (0..1000)
        .map(|_| waiting_call(&flood_client, &app, &bot, &session, &id, 25))
        .collect();
    // Every call but the budget's 16 is answered while those wait.
    let deadline = Instant::now() + Duration::from_secs(20);
    while flood.iter().filter(|h| !h.is_finished()).count() > 16 {
        assert!(
            Instant::now() < deadline,
            "calls still held past the budget"
        );
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(app.waiting.held(), 16, "a quarter of 64 connections");

    // Everyone else is served.
    let health = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let globex = app
        .create_as(
            &app.keys.globex_bot,
            json!({"channel": "webchat", "conversation_id": "another-team"}),
        )
        .await;
    assert!(globex["id"].is_string(), "{globex}");
    let res = app
        .request(Method::GET, &page, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200, "the customer's page");

    // The waiting ones answer the change; the others answered at once.
    app.authenticate(&id, "cust-flood").await;
    let (mut waited, mut answered, mut refused) = (0, 0, 0);
    for answer in join_all(flood).await {
        match answer.unwrap() {
            Some((200, a)) if at_once(&a) => answered += 1,
            Some((200, a)) => {
                let status = &a["result"]["structuredContent"]["status"];
                assert!(
                    ["pending", "authenticated"].contains(&status.as_str().unwrap_or("")),
                    "{a}"
                );
                waited += 1;
            }
            Some((503, _)) | None => refused += 1,
            Some((status, a)) => panic!("{status} {a}"),
        }
    }
    assert_eq!(waited, 16);
    assert_eq!(waited + answered + refused, 1000);
    assert!(answered > 0, "calls past the budget are answered at once");
    eprintln!("1000 waiting calls: {waited} waited, {answered} answered at once, {refused} refused a connection");
    until_held(&app, 0).await;
}

/// `ping` in `session` as `key`: its HTTP status (404: the session ended).
async fn ping(app: &TestApp, key: &str, session: &str) -> u16 {
    app.request(Method::POST, "/mcp", Some(key))
        .header("accept", "application/json")
        .header("mcp-session-id", session)
        .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "ping"}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

both_stores!(
    a_key_s_sessions_past_its_cap_end_the_least_recently_used,
    setup: Setup {
        server: "max_mcp_sessions_per_key = 3".into(),
        ..crate::mcp::setup(false)
    },
    |app: TestApp| async move {
        let bot = app.keys.bot.clone();
        let others = open(&app, OTHER_BOT).await;
        let mut mine = Vec::new();
        for _ in 0..3 {
            mine.push(open(&app, &bot).await);
            app.advance(61);
        }
        // The first is used again: the second is now the least recently used.
        assert_eq!(ping(&app, &bot, &mine[0]).await, 200);
        app.advance(61);
        let fourth = open(&app, &bot).await;
        assert_eq!(ping(&app, &bot, &mine[1]).await, 404, "the least recently used ended");
        for s in [&mine[0], &mine[2], &fourth] {
            assert_eq!(ping(&app, &bot, s).await, 200);
        }
        // Another key's sessions are its own.
        assert_eq!(ping(&app, OTHER_BOT, &others).await, 200);
        // A session ended by DELETE leaves its place: one more ends none.
        let end = app.request(Method::DELETE, "/mcp", Some(&bot))
            .header("mcp-session-id", &fourth).send().await.unwrap();
        assert_eq!(end.status(), 204);
        let fifth = open(&app, &bot).await;
        for s in [&mine[0], &mine[2], &fifth] {
            assert_eq!(ping(&app, &bot, s).await, 200);
        }
        // Forty more, a second apart: the key keeps three, the newest.
        let mut last = Vec::new();
        for _ in 0..40 {
            app.advance(1);
            last.push(open(&app, &bot).await);
        }
        let live = join_all(last.iter().chain(&mine).map(|s| ping(&app, &bot, s))).await;
        assert_eq!(live.iter().filter(|s| **s == 200).count(), 3, "{live:?}");
        assert_eq!(&live[37..40], [200, 200, 200]);
    }
);

both_stores!(
    an_mcp_session_unused_for_an_hour_ends_and_none_outlives_its_day,
    setup: crate::mcp::setup(false),
    |app: TestApp| async move {
        let bot = app.keys.bot.clone();
        let idle = open(&app, &bot).await;
        let used = open(&app, &bot).await;
        // Used every 50 minutes, a session lives on; unused an hour, it ends.
        for _ in 0..28 {
            app.advance(50 * 60);
            assert_eq!(ping(&app, &bot, &used).await, 200);
        }
        assert_eq!(ping(&app, &bot, &idle).await, 404, "unused for an hour");
        // Its 24 hours end it however it is used.
        app.advance(50 * 60);
        assert_eq!(ping(&app, &bot, &used).await, 404, "past its 24 hours");
        // A fresh one: used at 59 minutes it lives on, unused 60 more it ends.
        let fresh = open(&app, &bot).await;
        app.advance(59 * 60);
        assert_eq!(ping(&app, &bot, &fresh).await, 200);
        app.advance(59 * 60);
        assert_eq!(ping(&app, &bot, &fresh).await, 200);
        app.advance(60 * 60);
        assert_eq!(ping(&app, &bot, &fresh).await, 404);
    }
);

/// A bot's waits hold the whole budget (16 of 64 connections) when a
/// customer of another team opens a hosted login whose provider hangs:
/// the login takes the oldest wait's place — that call answers at once,
/// as past the budget — and waits on its provider, answered as a hung
/// provider is (502), never 503 for want of a place.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_waiting_on_its_provider_takes_a_bot_s_wait_s_place() {
    let (issuer, hung) = crate::oidc_logout::hung_provider().await;
    let setup = Setup {
        server: "max_connections = 64".into(),
        globex_extra: format!(
            "[oidc]\nissuer = \"{issuer}\"\nclient_id = \"cg\"\nclient_secret = \"client-secret-of-globex\"\n"
        ),
        ..Setup::default()
    };
    let (app, bot, session, id) = waiting_bot(setup).await;
    let client = reqwest::Client::new();
    let waits: Vec<_> = (0..16)
        .map(|_| waiting_call(&client, &app, &bot, &session, &id, 25))
        .collect();
    until_held(&app, 16).await;

    let globex = app
        .create_as(
            &app.keys.globex_bot,
            json!({"channel": "webchat", "conversation_id": "a-login"}),
        )
        .await;
    let path = format!(
        "/v1/interactions/{}/login-links",
        globex["id"].as_str().unwrap()
    );
    let link = app
        .post_json(
            &path,
            Some(&app.keys.globex_bot),
            &json!({"provider": "oidc"}),
        )
        .await;
    assert_eq!(link.status(), 201);
    let link: Value = link.json().await.unwrap();
    let link = crate::pages::short_path(&link);
    let login = app
        .request(Method::GET, &link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(
        login.status(),
        502,
        "its provider hangs: never 503 for want of a place"
    );
    // One wait, and one only, gave its place and answered at once.
    let deadline = Instant::now() + Duration::from_secs(15);
    while !waits.iter().any(|w| w.is_finished()) && Instant::now() < deadline {
        sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(waits.iter().filter(|w| w.is_finished()).count(), 1);
    let mut waits = waits;
    let given = waits.remove(waits.iter().position(|w| w.is_finished()).unwrap());
    let (status, answer) = given.await.unwrap().unwrap();
    assert_eq!(status, 200);
    assert!(at_once(&answer), "{answer}");
    for w in waits {
        w.abort();
    }
    hung.abort();
}
