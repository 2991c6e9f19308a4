//! The MCP server (docs/agents.md): `POST /mcp` behind bot keys, sessions
//! bound to their key and kept in the store, the tools over the API's
//! own use cases, errors as tool results or JSON-RPC errors, and no
//! code, link or token in any answer.
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;

/// A second bot key of acme's, to hold another key's session.
const OTHER_BOT: &str = "cg_other_bot_key_for_mcp_tests_0123456789";

pub(crate) fn setup(binding: bool) -> Setup {
    let hash = chatgate::domain::secrets::ApiKeyHash::of_key(OTHER_BOT).to_hex();
    Setup {
        team_extra: format!(
            "[[api_keys]]\nid = \"acme-bot-2\"\nrole = \"bot\"\nsha256 = \"{hash}\"\n"
        ),
        defaults: if binding {
            "login_binding = \"chat_code\"".into()
        } else {
            String::new()
        },
        ..Setup::default()
    }
}

/// POSTs `body` to `/mcp` as `key` in `session`.
async fn post(
    app: &TestApp,
    key: Option<&str>,
    session: Option<&str>,
    body: &Value,
) -> reqwest::Response {
    let mut rb = app
        .request(Method::POST, "/mcp", key)
        .header("accept", "application/json, text/event-stream")
        .json(body);
    if let Some(s) = session {
        rb = rb.header("mcp-session-id", s);
    }
    rb.send().await.unwrap()
}

/// `initialize` as `key`: the session id.
pub(crate) async fn open(app: &TestApp, key: &str) -> String {
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
        "params": {"protocolVersion": "2025-06-18", "capabilities": {},
                   "clientInfo": {"name": "test", "version": "1"}}});
    let res = post(app, Some(key), None, &body).await;
    assert_eq!(res.status(), 200);
    let id = res.headers()["mcp-session-id"]
        .to_str()
        .unwrap()
        .to_string();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["result"]["protocolVersion"], "2025-06-18");
    id
}

/// A request in `session`: the whole JSON-RPC answer, as text (checked
/// for secrets by the caller) and parsed.
async fn rpc(
    app: &TestApp,
    key: &str,
    session: &str,
    method: &str,
    params: Value,
) -> (String, Value) {
    let body = json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params});
    let res = post(app, Some(key), Some(session), &body).await;
    assert_eq!(res.status(), 200);
    let text = res.text().await.unwrap();
    let v: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["id"], 7);
    (text, v)
}

/// `tools/call` of `tool`: the answer's text and its `result`.
pub(crate) async fn call(app: &TestApp, session: &str, tool: &str, args: Value) -> (String, Value) {
    let (text, v) = rpc(
        app,
        &app.keys.bot,
        session,
        "tools/call",
        json!({"name": tool, "arguments": args}),
    )
    .await;
    let result = v["result"].clone();
    assert!(result.is_object(), "{text}");
    // The same JSON as structured content and as its one text content.
    if result["isError"] == false {
        let said: Value =
            serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!(said, result["structuredContent"]);
    }
    (text, result)
}

/// The problem of a tool error.
fn problem(result: &Value) -> Value {
    assert_eq!(result["isError"], true, "{result}");
    serde_json::from_str(result["content"][0]["text"].as_str().unwrap()).unwrap()
}

fn conversation() -> Value {
    json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()})
}

async fn mcp_calls(app: &TestApp, tool: &str, result: &str) -> f64 {
    let series = format!("chatgate_mcp_calls_total{{tool=\"{tool}\",result=\"{result}\"}}");
    app.metric_value(&series).await.unwrap_or(0.0)
}

both_stores!(
    mcp_initialize_names_the_server_and_lists_its_tools_with_schemas,
    setup: setup(false),
    |app: TestApp| async move {
        // A version it does not speak gets the newest.
        let body = json!({"jsonrpc": "2.0", "id": "a", "method": "initialize",
            "params": {"protocolVersion": "1999-01-01", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        let res = post(&app, Some(&app.keys.bot), None, &body).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "application/json");
        let session = res.headers()["mcp-session-id"].to_str().unwrap().to_string();
        assert!(session.len() >= 22, "at least 128 bits");
        let v: Value = res.json().await.unwrap();
        assert_eq!(v["id"], "a");
        assert_eq!(v["result"]["protocolVersion"], "2025-11-25");
        assert_eq!(v["result"]["serverInfo"]["name"], "chatgate");
        assert!(v["result"]["serverInfo"]["version"].is_string());
        assert_eq!(v["result"]["capabilities"]["tools"]["listChanged"], false);
        // A notification is taken without an answer.
        let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
        let res = post(&app, Some(&app.keys.bot), Some(&session), &note).await;
        assert_eq!(res.status(), 202);
        let (_, pong) = rpc(&app, &app.keys.bot, &session, "ping", json!({})).await;
        assert_eq!(pong["result"], json!({}));
        let (_, listed) = rpc(&app, &app.keys.bot, &session, "tools/list", json!({})).await;
        let tools = listed["result"]["tools"].as_array().unwrap();
        let names: Vec<&str> = tools.iter().map(|t| t["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["start_verification", "get_verification", "confirm_chat_code", "check_assurance"]);
        for t in tools {
            assert!(t["title"].is_string() && t["description"].as_str().unwrap().len() > 100, "{t}");
            assert_eq!(t["inputSchema"]["type"], "object", "{t}");
            assert_eq!(t["outputSchema"]["type"], "object", "{t}");
            assert!(t["annotations"]["readOnlyHint"].is_boolean(), "{t}");
        }
        assert_eq!(tools[1]["annotations"]["readOnlyHint"], true);
        assert_eq!(tools[1]["inputSchema"]["properties"]["wait_seconds"]["maximum"], 25);
        // A client that accepts only an event stream gets one event.
        let res = app
            .request(Method::POST, "/mcp", Some(&app.keys.bot))
            .header("accept", "text/event-stream")
            .header("mcp-session-id", &session)
            .json(&json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        assert_eq!(res.headers()["content-type"], "text/event-stream");
        let text = res.text().await.unwrap();
        let data = text.lines().find_map(|l| l.strip_prefix("data: ")).unwrap();
        assert_eq!(serde_json::from_str::<Value>(data).unwrap()["id"], 9);
    }
);

both_stores!(
    mcp_is_for_bot_keys_and_a_session_for_the_key_that_opened_it,
    setup: setup(false),
    |app: TestApp| async move {
        let ping = json!({"jsonrpc": "2.0", "id": 1, "method": "ping"});
        for key in [None, Some("cg_unknown_key_0000000000000000")] {
            let res = post(&app, key, None, &ping).await;
            assert!(res.headers().contains_key("www-authenticate"));
            assert_problem(res, 401, "unauthorized").await;
        }
        for key in [&app.keys.agent, &app.keys.admin] {
            let res = post(&app, Some(key), None, &ping).await;
            let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_string();
            assert!(challenge.contains("insufficient_scope"), "{challenge}");
            assert_problem(res, 403, "forbidden").await;
        }
        let session = open(&app, &app.keys.bot).await;
        // Another key's use of it, another team's, or an unknown one: 404.
        for key in [OTHER_BOT, app.keys.globex_bot.as_str()] {
            let res = post(&app, Some(key), Some(&session), &ping).await;
            assert_problem(res, 404, "not_found").await;
        }
        let res = post(&app, Some(&app.keys.bot), Some("not-a-session"), &ping).await;
        assert_problem(res, 404, "not_found").await;
        // Without one, only initialize.
        let res = post(&app, Some(&app.keys.bot), None, &ping).await;
        assert_problem(res, 400, "invalid_request").await;
        // The other key's own session works for it alone.
        let other = open(&app, OTHER_BOT).await;
        let res = post(&app, Some(&app.keys.bot), Some(&other), &ping).await;
        assert_problem(res, 404, "not_found").await;
        let (_, pong) = rpc(&app, OTHER_BOT, &other, "ping", json!({})).await;
        assert_eq!(pong["result"], json!({}));
        // A GET offers no stream; DELETE ends the session, once.
        let res = app.request(Method::GET, "/mcp", Some(&app.keys.bot)).send().await.unwrap();
        assert_eq!(res.status(), 405);
        assert!(res.headers().contains_key("allow"));
        let delete = |key: &str| {
            app.request(Method::DELETE, "/mcp", Some(key))
                .header("mcp-session-id", &session)
                .send()
        };
        assert_problem(delete(OTHER_BOT).await.unwrap(), 404, "not_found").await;
        assert_eq!(delete(&app.keys.bot).await.unwrap().status(), 204);
        assert_problem(delete(&app.keys.bot).await.unwrap(), 404, "not_found").await;
        let res = post(&app, Some(&app.keys.bot), Some(&session), &ping).await;
        assert_problem(res, 404, "not_found").await;
    }
);

both_stores!(
    mcp_refuses_bad_bodies_methods_and_arguments,
    setup: setup(false),
    |app: TestApp| async move {
        let session = open(&app, &app.keys.bot).await;
        let bot = app.keys.bot.clone();
        let send = |body: Vec<u8>| {
            app.request(Method::POST, "/mcp", Some(&bot))
                .header("content-type", "application/json")
                .header("mcp-session-id", &session)
                .body(body)
                .send()
        };
        // Over 64 KiB: 413 from the declared length, the body never read.
        let head = format!(
            "POST /mcp HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {bot}\r\n\
             Content-Type: application/json\r\nMcp-Session-Id: {session}\r\n\
             Connection: close\r\nContent-Length: {}\r\n\r\n",
            70 * 1024
        );
        let (status, answer) = app.raw(head.as_bytes()).await;
        assert_eq!(status, 413, "{answer}");
        assert!(answer.contains("\"payload_too_large\""), "{answer}");
        let deep = format!(r#"{{"jsonrpc":"2.0","id":1,"method":"ping","params":{}1{}}}"#, "[".repeat(5000), "]".repeat(5000));
        let b = assert_problem(send(deep.into_bytes()).await.unwrap(), 400, "invalid_request").await;
        assert!(b["detail"].as_str().unwrap().contains("deeper"), "{b}");
        for bad in [&b"{not json"[..], br#"[{"jsonrpc":"2.0","id":1,"method":"ping"}]"#, br#"{"id":1,"method":"ping"}"#] {
            assert_problem(send(bad.to_vec()).await.unwrap(), 400, "invalid_request").await;
        }
        let (_, v) = rpc(&app, &bot, &session, "resources/list", json!({})).await;
        assert_eq!(v["error"]["code"], -32601);
        let (_, v) = rpc(&app, &bot, &session, "tools/call", json!({"name": "verify_code", "arguments": {}})).await;
        assert_eq!(v["error"]["code"], -32602);
        let id = app.new_interaction().await;
        // Arguments that are not an object at all: the call's params are wrong.
        let (_, v) = rpc(&app, &bot, &session, "tools/call", json!({"name": "get_verification", "arguments": [id]})).await;
        assert_eq!(v["error"]["code"], -32602);
        // Arguments that break a tool's schema are tool errors
        // (mcp_stateless.rs, under every version): a member of another proof.
        let args = json!({"proof": "link", "conversation": conversation(), "delivery": "sms"});
        let (_, r) = call(&app, &session, "start_verification", args).await;
        assert_eq!(problem(&r)["status"], 422);
        // What the HTTP API refuses is a tool error with its problem.
        let before = mcp_calls(&app, "get_verification", "error").await;
        let (_, r) = call(&app, &session, "get_verification", json!({"interaction_id": uuid::Uuid::now_v7().to_string()})).await;
        let p = problem(&r);
        assert_eq!((p["status"].as_u64(), p["code"].as_str()), (Some(404), Some("not_found")));
        assert!(mcp_calls(&app, "get_verification", "error").await > before);
        let (_, r) = call(&app, &session, "check_assurance", json!({"interaction_id": id, "intent": "payment", "max_age": "5m"})).await;
        assert_eq!(problem(&r)["status"], 422);
    }
);

/// The code of the last SMS the fake Twilio took.
pub(crate) async fn last_sms_code(app: &TestApp) -> String {
    let reqs = app.chat.received_requests().await.unwrap();
    let form = reqs
        .iter()
        .rev()
        .filter(|r| r.url.path().ends_with("/Messages.json"))
        .map(|r| {
            url::form_urlencoded::parse(&r.body)
                .into_owned()
                .collect::<std::collections::HashMap<String, String>>()
        })
        .find(|f| f.get("Body").is_some_and(|b| b.contains("code")))
        .expect("an SMS with a code");
    let body = &form["Body"];
    body.split(|c: char| !c.is_ascii_digit())
        .find(|w| w.len() >= 4)
        .unwrap()
        .to_string()
}

both_stores!(
    mcp_a_code_goes_to_the_phone_and_is_never_taken_by_a_tool,
    setup: setup(false),
    |app: TestApp| async move {
        let session = open(&app, &app.keys.bot).await;
        let before = mcp_calls(&app, "start_verification", "ok").await;
        let args = json!({"conversation": conversation(), "customer_ref": "cust-mcp",
                          "contact": {"phone": "+15551230000"}, "proof": "code"});
        let (text, r) = call(&app, &session, "start_verification", args).await;
        let started = r["structuredContent"].clone();
        assert_eq!(started["sent_to"], "sms", "{text}");
        assert_eq!(started["status"], "pending");
        assert_eq!(started["say"], "I have sent you a code and a link. Please type the code on that page, not here.");
        assert!(mcp_calls(&app, "start_verification", "ok").await > before);
        let id = started["interaction_id"].as_str().unwrap().to_string();
        let cid = started["challenge_id"].as_str().unwrap().to_string();
        let code = last_sms_code(&app).await;
        assert!(!text.contains(&code), "{text}");
        // Typed on the page: the chat got the page's link, never the code.
        let chat = app.chat_messages().await;
        assert!(chat.iter().all(|m| !m.to_string().contains(&code)));
        let page_link = chat.iter().find_map(|m| {
            let t = m["text"].as_str()?;
            t.split_whitespace().find(|w| w.contains("/c/")).map(str::to_string)
        });
        let page_link = page_link.expect("the page's link in the chat");
        let page_code = page_link.rsplit('/').next().unwrap().to_string();
        // The code itself is refused: it is typed on the page, nothing counted.
        let (text, r) = call(&app, &session, "confirm_chat_code", json!({"interaction_id": id, "code": code})).await;
        let p = problem(&r);
        assert_eq!((p["status"].as_u64(), p["code"].as_str()), (Some(409), Some("entry_page")));
        assert!(!text.contains(&code));
        let read = app.get_json(&format!("/v1/interactions/{id}/challenges/{cid}"), Some(&app.keys.bot)).await;
        assert_eq!(read["attempts_remaining"], 3, "{read}");
        // The answer says where it stands, and no code, link or page code.
        let (text, r) = call(&app, &session, "get_verification", json!({"interaction_id": id})).await;
        let v = &r["structuredContent"];
        assert_eq!(v["status"], "pending");
        assert_eq!(v["challenge"]["challenge_id"], cid.as_str());
        assert_eq!(v["challenge"]["state"], "open");
        assert_eq!(v["challenge"]["awaiting_code"], false);
        for secret in [&code, &page_code] {
            assert!(!text.contains(secret.as_str()), "{text}");
        }
        let (text, r) = call(&app, &session, "check_assurance", json!({"interaction_id": id, "max_age": "5m", "methods": ["otp"]})).await;
        let a = &r["structuredContent"];
        assert_eq!(a["satisfied"], false, "{text}");
        assert_eq!(a["unmet"][0], "authenticated");
    }
);

/// The login token of the last link delivered into the chat, by its short link.
pub(crate) async fn delivered_token(app: &TestApp) -> (String, String) {
    let chat = app.chat_messages().await;
    let text = chat
        .iter()
        .rev()
        .find(|m| m["purpose"] == "login_link")
        .expect("a link")["text"]
        .as_str()
        .unwrap()
        .to_string();
    let short = text.split_whitespace().find(|w| w.contains("/l/")).unwrap();
    let path = short.trim_start_matches("http://gateway.test");
    let res = app.request(Method::GET, path, None).send().await.unwrap();
    assert_eq!(res.status(), 302);
    let location = res.headers()["location"].to_str().unwrap().to_string();
    let token = location.split("token=").nth(1).unwrap().to_string();
    (path.trim_start_matches("/l/").to_string(), token)
}

both_stores!(
    mcp_a_link_the_binding_code_typed_into_the_chat_and_assurance,
    setup: setup(true),
    |app: TestApp| async move {
        let session = open(&app, &app.keys.bot).await;
        let (text, r) = call(&app, &session, "start_verification", json!({"conversation": conversation(), "proof": "link"})).await;
        let started = r["structuredContent"].clone();
        assert_eq!(started["sent_to"], "chat", "{text}");
        assert_eq!(started["challenge_id"], Value::Null);
        assert_eq!(started["say"], "I have sent you a link to sign in. Please open it to continue.");
        let id = started["interaction_id"].as_str().unwrap().to_string();
        let (link_code, token) = delivered_token(&app).await;
        let mut answers = vec![text];
        // The session's first call answers at once.
        let (text, r) = call(&app, &session, "get_verification", json!({"interaction_id": id, "wait_seconds": 25})).await;
        assert_eq!(r["structuredContent"]["status"], "pending", "{text}");
        answers.push(text);
        // Nothing changed: a short wait ends with the same answer.
        let (text, again) = call(&app, &session, "get_verification", json!({"interaction_id": id, "wait_seconds": 1})).await;
        assert_eq!(again["structuredContent"], r["structuredContent"]);
        answers.push(text);
        // The customer signs in while the bot waits: the wait answers on
        // the change (the binding challenge's `challenge.created`).
        let waited = Instant::now();
        let wait = call(&app, &session, "get_verification", json!({"interaction_id": id, "wait_seconds": 25}));
        let sign_in = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            let res = app.callback(&token, "success", json!({"id": "cust-7", "name": "Ada"})).await;
            assert_eq!(res.status(), 200);
            res.json::<Value>().await.unwrap()
        };
        let ((text, r), bound) = tokio::join!(wait, sign_in);
        assert!(waited.elapsed() < Duration::from_secs(20), "answered on the change: {text}");
        let binding = bound["binding_code"].as_str().unwrap().to_string();
        let v = &r["structuredContent"];
        assert_eq!(v["challenge"]["method"], "binding", "{text}");
        assert_eq!(v["challenge"]["awaiting_code"], true);
        assert_eq!(v["authenticated"], false);
        answers.push(text);
        // A wrong binding code counts as a wrong code does.
        let (text, r) = call(&app, &session, "confirm_chat_code", json!({"interaction_id": id, "code": wrong_code(&binding)})).await;
        let p = problem(&r);
        assert_eq!((p["code"].as_str(), p["attempts_remaining"].as_u64()), (Some("invalid_code"), Some(2)));
        answers.push(text);
        let (text, r) = call(&app, &session, "confirm_chat_code", json!({"interaction_id": id, "code": binding})).await;
        let v = &r["structuredContent"];
        assert_eq!(v["authenticated"], true, "{text}");
        assert_eq!(v["method"], "login_link");
        assert_eq!(v["customer_id"], "cust-7");
        assert_eq!(v["challenge"]["awaiting_code"], false);
        answers.push(text);
        let (text, r) = call(&app, &session, "check_assurance", json!({"interaction_id": id, "max_age": "5m", "methods": ["login_link"]})).await;
        assert_eq!(r["structuredContent"]["satisfied"], true, "{text}");
        answers.push(text);
        // No answer held the link, its code, the token or the binding code
        // (but the one the bot itself passed, echoed nowhere).
        for text in &answers {
            for secret in [&link_code, &token, &binding] {
                assert!(!text.contains(secret.as_str()), "{text}");
            }
            assert!(!text.contains("\"Ada\""), "no claim value: {text}");
        }
    }
);

both_stores!(
    mcp_a_waiting_get_verification_answers_when_another_task_changes_the_interaction,
    setup: setup(false),
    |app: TestApp| async move {
        let session = open(&app, &app.keys.bot).await;
        let id = app.new_interaction().await;
        let (cid, code) = app.start_otp(&id).await;
        let (_, first) = call(&app, &session, "get_verification", json!({"interaction_id": id, "wait_seconds": 25})).await;
        assert_eq!(first["structuredContent"]["status"], "pending");
        assert_eq!(first["structuredContent"]["challenge"]["state"], "open");
        // Unchanged since: the call waits until the code is verified elsewhere.
        let waited = Instant::now();
        let wait = call(&app, &session, "get_verification", json!({"interaction_id": id, "wait_seconds": 25}));
        let verify = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            assert_eq!(app.verify_code(&id, &cid, &code).await.status(), 200);
        };
        let ((text, r), ()) = tokio::join!(wait, verify);
        assert!(waited.elapsed() < Duration::from_secs(20), "answered on the change, not at the wait's end");
        let v = &r["structuredContent"];
        assert_eq!(v["authenticated"], true, "{text}");
        assert_eq!(v["method"], "otp");
        assert_eq!(v["challenge"]["state"], "used");
        assert!(!text.contains(&code), "{text}");
    }
);

/// Two instances on one Redis: a session one opened is honoured by the
/// other, and a wait on one answers a change made through the other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mcp_sessions_and_waits_hold_across_instances() {
    let Some(a) = spawn_with(Backend::Redis, setup(false)).await else {
        return;
    };
    let b = spawn_beside(&a, setup(false)).await;
    let session = open(&a, &a.keys.bot).await;
    let (_, pong) = rpc(&b, &b.keys.bot, &session, "ping", json!({})).await;
    assert_eq!(pong["result"], json!({}));
    let id = a.new_interaction().await;
    let (cid, code) = a.start_otp(&id).await;
    let (_, first) = call(
        &b,
        &session,
        "get_verification",
        json!({"interaction_id": id}),
    )
    .await;
    assert_eq!(first["structuredContent"]["status"], "pending");
    let waited = Instant::now();
    let wait = call(
        &b,
        &session,
        "get_verification",
        json!({"interaction_id": id, "wait_seconds": 25}),
    );
    let verify = async {
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert_eq!(a.verify_code(&id, &cid, &code).await.status(), 200);
    };
    let ((text, r), ()) = tokio::join!(wait, verify);
    assert!(
        waited.elapsed() < Duration::from_secs(20),
        "answered on the change: {text}"
    );
    assert_eq!(r["structuredContent"]["authenticated"], true, "{text}");
    b.stop_keeping_keys().await;
    a.stop().await;
}

/// What `get_verification` costs the store beside the status read it
/// wraps (docs/performance.md#an-mcp-tool-call): the session's read, the
/// interaction's one read, and, without `after`, the session's note of
/// its answer — a commit only when the answer changed since the
/// session's last.
async fn what_a_get_verification_call_costs_the_store(backend: Backend) {
    let Some((counting, prefix)) = crate::round_trips::counting_on(backend).await else {
        return;
    };
    let store: chatgate::store::SharedStore = counting.clone();
    let app = spawn_with(
        backend,
        Setup {
            key_prefix: Some(prefix),
            store: Some(store),
            ..setup(false)
        },
    )
    .await
    .unwrap();
    let calls = || {
        use std::sync::atomic::Ordering::SeqCst;
        (counting.reads.load(SeqCst), counting.commits.load(SeqCst))
    };
    let session = open(&app, &app.keys.bot).await;
    let id = app.new_interaction().await;
    let mut rows: Vec<(&str, (usize, usize))> = Vec::new();
    let mut count = |what: &'static str, before: (usize, usize)| {
        let after = calls();
        rows.push((what, (after.0 - before.0, after.1 - before.1)));
    };

    let before = calls();
    let res = app
        .request(
            Method::GET,
            &format!("/v1/interactions/{id}"),
            Some(&app.keys.bot),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    count("status read", before);
    let get = json!({"interaction_id": id});
    let mut cursor = Value::Null;
    for what in ["get_verification, first", "get_verification, unchanged"] {
        let before = calls();
        let (_, r) = call(&app, &session, "get_verification", get.clone()).await;
        assert_eq!(r["structuredContent"]["authenticated"], false);
        count(what, before);
        cursor = r["structuredContent"]["cursor"].clone();
    }
    // With the cursor: the interaction's one read, the session untouched
    // but for the transport's check of it; a wait that ends unchanged
    // reads nothing more.
    for (what, wait) in [
        ("get_verification, after its cursor", 0),
        ("get_verification, waited unchanged", 1),
    ] {
        let before = calls();
        let args = json!({"interaction_id": id, "after": cursor, "wait_seconds": wait});
        let (_, r) = call(&app, &session, "get_verification", args).await;
        assert_eq!(r["structuredContent"]["cursor"], cursor);
        count(what, before);
    }
    app.authenticate(&id, "cust-mcp").await;
    let before = calls();
    let (_, r) = call(&app, &session, "get_verification", get.clone()).await;
    assert_eq!(r["structuredContent"]["authenticated"], true);
    count("get_verification, changed", before);

    let expected = [
        ("status read", (1, 0)),
        ("get_verification, first", (3, 1)),
        ("get_verification, unchanged", (3, 0)),
        ("get_verification, after its cursor", (2, 0)),
        ("get_verification, waited unchanged", (2, 0)),
        ("get_verification, changed", (3, 1)),
    ];
    assert_eq!(rows, expected, "store calls (reads, commits)");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_get_verification_call_costs_the_store_on_memory() {
    what_a_get_verification_call_costs_the_store(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_a_get_verification_call_costs_the_store_on_redis() {
    what_a_get_verification_call_costs_the_store(Backend::Redis).await;
}

/// The setup of the door's tests: one origin allowed, one internal name.
fn door_setup() -> Setup {
    Setup {
        system_extra: "[mcp]\nallowed_origins = [\"https://console.acme.test\"]\nallowed_hosts = [\"127.0.0.1\", \"chatgate.internal\"]\n".into(),
        ..setup(false)
    }
}

both_stores!(
    mcp_refuses_a_foreign_origin_or_host_before_the_key_and_does_nothing,
    setup: door_setup(),
    |app: TestApp| async move {
        let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize",
            "params": {"protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}});
        // A foreign Origin: 403 before the key, no session made.
        for key in [Some(app.keys.bot.as_str()), None] {
            let mut rb = app.request(Method::POST, "/mcp", key)
                .header("origin", "http://evil.example.com")
                .json(&init);
            rb = rb.header("accept", "application/json");
            let res = rb.send().await.unwrap();
            assert!(!res.headers().contains_key("mcp-session-id"));
            assert_problem(res, 403, "forbidden").await;
        }
        // In a session: a start from a foreign Origin sends nothing.
        let session = open(&app, &app.keys.bot).await;
        let before = app.chat_messages().await.len();
        let args = json!({"name": "start_verification", "arguments": {"conversation": conversation(), "proof": "link"}});
        let res = app.request(Method::POST, "/mcp", Some(&app.keys.bot))
            .header("origin", "null")
            .header("mcp-session-id", &session)
            .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/call", "params": args}))
            .send().await.unwrap();
        assert_problem(res, 403, "forbidden").await;
        assert_eq!(app.chat_messages().await.len(), before, "nothing delivered");
        let res = app.request(Method::DELETE, "/mcp", Some(&app.keys.bot))
            .header("origin", "http://evil.example.com")
            .header("mcp-session-id", &session)
            .send().await.unwrap();
        assert_problem(res, 403, "forbidden").await;
        // A foreign Host (DNS rebinding), with or without a key, any method.
        let port = app.base.rsplit(':').next().unwrap().to_string();
        for (method, key) in [("POST", app.keys.bot.as_str()), ("GET", ""), ("PUT", "")] {
            let auth = if key.is_empty() { String::new() } else { format!("Authorization: Bearer {key}\r\n") };
            let body = init.to_string();
            let req = format!("{method} /mcp HTTP/1.1\r\nHost: evil.example.com:{port}\r\n{auth}Content-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}", body.len());
            let (status, text) = app.raw(req.as_bytes()).await;
            assert_eq!(status, 403, "{method}: {text}");
            assert!(text.contains("\"forbidden\"") && !text.to_ascii_lowercase().contains("mcp-session-id"), "{text}");
        }
        // The session still works, and an allowed name and origin pass.
        let ping = json!({"jsonrpc": "2.0", "id": 3, "method": "ping"}).to_string();
        let req = format!("POST /mcp HTTP/1.1\r\nHost: chatgate.internal\r\nAuthorization: Bearer {}\r\nMcp-Session-Id: {session}\r\nContent-Type: application/json\r\nAccept: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{ping}", app.keys.bot, ping.len());
        let (status, text) = app.raw(req.as_bytes()).await;
        assert_eq!(status, 200, "{text}");
        let res = app.request(Method::POST, "/mcp", Some(&app.keys.bot))
            .header("origin", "https://console.acme.test")
            .header("mcp-session-id", &session)
            .header("accept", "application/json")
            .json(&json!({"jsonrpc": "2.0", "id": 4, "method": "ping"}))
            .send().await.unwrap();
        assert_eq!(res.status(), 200);
        // Without an Origin (every test above's `open`): passes.
        let (_, pong) = rpc(&app, &app.keys.bot, &session, "ping", json!({})).await;
        assert_eq!(pong["result"], json!({}));
    }
);

both_stores!(
    mcp_reads_the_key_before_the_method_and_names_its_metadata,
    setup: setup(false),
    |app: TestApp| async move {
        let metadata = "resource_metadata=\"http://gateway.test/.well-known/oauth-protected-resource/mcp\"";
        for method in [Method::GET, Method::DELETE, Method::POST, Method::PUT, Method::PATCH] {
            for key in [None, Some("cg_unknown_key_0000000000000000")] {
                let res = app.request(method.clone(), "/mcp", key)
                    .header("mcp-session-id", "x")
                    .send().await.unwrap();
                let challenge = res.headers().get("www-authenticate").map(|v| v.to_str().unwrap().to_string());
                assert_eq!(challenge.as_deref(), Some(format!("Bearer {metadata}").as_str()), "{method}");
                assert_problem(res, 401, "unauthorized").await;
            }
        }
        // With a bot's key, a GET is still 405: no stream to offer.
        let res = app.request(Method::GET, "/mcp", Some(&app.keys.bot)).send().await.unwrap();
        assert_eq!(res.status(), 405);
        // A role that may not is 403, naming the metadata too.
        let res = post(&app, Some(&app.keys.agent), None, &json!({"jsonrpc": "2.0", "id": 1, "method": "ping"})).await;
        let challenge = res.headers()["www-authenticate"].to_str().unwrap().to_string();
        assert!(challenge.contains("insufficient_scope") && challenge.contains(metadata), "{challenge}");
        assert_problem(res, 403, "forbidden").await;
        // The protected-resource metadata, no key needed.
        let res = app.request(Method::GET, "/.well-known/oauth-protected-resource/mcp", None).send().await.unwrap();
        assert_eq!(res.status(), 200);
        let v: Value = res.json().await.unwrap();
        assert_eq!(v, json!({"resource": "http://gateway.test/mcp",
            "bearer_methods_supported": ["header"], "authorization_servers": [],
            "scopes_supported": ["chatgate:bot"], "resource_name": "chatgate"}));
    }
);

both_stores!(
    mcp_says_where_a_code_is_typed_in_the_conversation_s_language,
    setup: Setup {
        defaults: concat!(
            "[defaults.locale]\nsupported = [\"en\", \"es\"]\n",
            "[defaults.translations.es]\n",
            "say_code_sent = \"Dime el código.\"\n",
            "say_code_page_sent = \"Escribe el código en esa página, no aquí.\"\n",
        ).into(),
        ..setup(false)
    },
    |app: TestApp| async move {
        let session = open(&app, &app.keys.bot).await;
        for (locale, phone, said) in [("es", "+15551230001", "Escribe el código en esa página, no aquí."),
                                      ("en", "+15551230002", "I have sent you a code and a link. Please type the code on that page, not here.")] {
            let args = json!({"conversation": conversation(), "customer_ref": format!("cust-say-{locale}"),
                              "contact": {"phone": phone}, "proof": "code", "locale": locale});
            let (text, r) = call(&app, &session, "start_verification", args).await;
            assert_eq!(r["structuredContent"]["say"], said, "{text}");
        }
    }
);
