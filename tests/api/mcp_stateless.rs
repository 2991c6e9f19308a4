//! The MCP server's stateless protocol version, 2026-07-28
//! (docs/agents.md#protocol-versions): no `initialize` and no session,
//! `server/discover`, the version in each request's `_meta` and header,
//! the mirrored `Mcp-Method` and `Mcp-Name` headers and their errors,
//! `resultType`, `serverInfo` and the lists' caching hints — over the
//! very tools the session-bound versions serve.
use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::mcp::{call, delivered_token, open, setup};

const MODERN: &str = "2026-07-28";

/// The `_meta` a 2026-07-28 request carries.
fn meta(version: &str) -> Value {
    json!({"io.modelcontextprotocol/protocolVersion": version,
           "io.modelcontextprotocol/clientInfo": {"name": "test", "version": "1"},
           "io.modelcontextprotocol/clientCapabilities": {}})
}

/// A 2026-07-28 request of `method` as the bot: `_meta` added to
/// `params` unless it has one, the version, `Mcp-Method` and (for a
/// tool) `Mcp-Name` headers, each replaced by `extra` (an empty value
/// leaves it out). Its HTTP status and JSON-RPC answer; never a session.
async fn stateless(
    app: &TestApp,
    method: &str,
    mut params: Value,
    extra: &[(&str, &str)],
) -> (u16, Value) {
    if params.get("_meta").is_none() {
        params["_meta"] = meta(MODERN);
    }
    let mut headers = vec![
        ("mcp-protocol-version".to_string(), MODERN.to_string()),
        ("mcp-method".to_string(), method.to_string()),
    ];
    if let Some(name) = params.get("name").and_then(Value::as_str) {
        headers.push(("mcp-name".into(), name.into()));
    }
    for (k, v) in extra {
        headers.retain(|(h, _)| h != k);
        if !v.is_empty() {
            headers.push((k.to_string(), v.to_string()));
        }
    }
    let body = json!({"jsonrpc": "2.0", "id": "s-1", "method": method, "params": params});
    let mut rb = app
        .request(Method::POST, "/mcp", Some(&app.keys.bot))
        .header("accept", "application/json, text/event-stream")
        .json(&body);
    for (k, v) in headers {
        rb = rb.header(k, v);
    }
    let res = rb.send().await.unwrap();
    assert!(res.headers().get("mcp-session-id").is_none());
    assert_eq!(res.headers()["content-type"], "application/json");
    let status = res.status().as_u16();
    let v: Value = res.json().await.unwrap();
    assert_eq!(v["id"], "s-1", "{v}");
    (status, v)
}

/// A stateless `tools/call`: its result, checked as every result is.
async fn tool(app: &TestApp, name: &str, args: Value) -> Value {
    let params = json!({"name": name, "arguments": args});
    let (status, v) = stateless(app, "tools/call", params, &[]).await;
    assert_eq!(status, 200, "{v}");
    complete(&v["result"])
}

/// A stateless result: `resultType` `complete`, chatgate named in `_meta`.
fn complete(result: &Value) -> Value {
    assert_eq!(result["resultType"], "complete", "{result}");
    let info = &result["_meta"]["io.modelcontextprotocol/serverInfo"];
    assert_eq!(info["name"], "chatgate", "{result}");
    assert!(info["version"].is_string());
    result.clone()
}

/// A JSON-RPC error's code.
fn code(v: &Value) -> i64 {
    v["error"]["code"]
        .as_i64()
        .unwrap_or_else(|| panic!("an error: {v}"))
}

/// How many links this test's gateway has delivered into its chat, once
/// `want` have arrived or five seconds have passed. The chat sink is this
/// gateway's own; the metrics recorder is the whole test process's, where
/// other tests' calls land too.
async fn links_delivered(app: &TestApp, want: usize) -> usize {
    for _ in 0..50 {
        if app.chat_messages().await.len() >= want {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    app.chat_messages().await.len()
}

both_stores!(
    mcp_2026_07_28_discovers_and_lists_the_very_tools_of_a_session,
    setup: setup(false),
    |app: TestApp| async move {
        let (status, v) = stateless(&app, "server/discover", json!({}), &[]).await;
        assert_eq!(status, 200, "{v}");
        let d = complete(&v["result"]);
        assert_eq!(d["supportedVersions"], json!([MODERN, "2025-11-25", "2025-06-18"]));
        assert!(d["capabilities"]["tools"].is_object(), "{d}");
        assert!(d["capabilities"].get("resources").is_none());
        assert!(d["instructions"].as_str().unwrap().contains("Never ask the customer"));
        // clientInfo is optional.
        let mut bare = meta(MODERN);
        bare.as_object_mut().unwrap().remove("io.modelcontextprotocol/clientInfo");
        let (status, _) = stateless(&app, "server/discover", json!({"_meta": bare}), &[]).await;
        assert_eq!(status, 200);
        // The list: the same tools as a session's, cacheable by this caller.
        let (status, v) = stateless(&app, "tools/list", json!({}), &[]).await;
        assert_eq!(status, 200);
        let listed = complete(&v["result"]);
        assert!(listed["ttlMs"].as_u64().unwrap() >= 60_000, "{listed}");
        assert_eq!(listed["cacheScope"], "private");
        let session = open(&app, &app.keys.bot).await;
        let res = app
            .request(Method::POST, "/mcp", Some(&app.keys.bot))
            .header("mcp-session-id", &session)
            .json(&json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}))
            .send()
            .await
            .unwrap();
        let legacy: Value = res.json().await.unwrap();
        assert_eq!(listed["tools"], legacy["result"]["tools"]);
        assert!(legacy["result"].get("resultType").is_none(), "{legacy}");
        // Removed with the handshake, or never offered: 404 and -32601.
        for method in ["initialize", "ping", "logging/setLevel", "resources/list", "prompts/list", "unknown/method"] {
            let (status, v) = stateless(&app, method, json!({}), &[]).await;
            assert_eq!((status, code(&v)), (404, -32601), "{method}: {v}");
        }
        // A notification is taken, as under every version.
        let res = app
            .request(Method::POST, "/mcp", Some(&app.keys.bot))
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "notifications/cancelled")
            .json(&json!({"jsonrpc": "2.0", "method": "notifications/cancelled",
                          "params": {"_meta": meta(MODERN), "requestId": "x"}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 202);
    }
);

both_stores!(
    mcp_2026_07_28_refuses_mismatched_headers_and_unknown_versions_and_does_nothing,
    setup: setup(false),
    |app: TestApp| async move {
        let conversation = json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()});
        let start = json!({"name": "start_verification", "arguments": {"conversation": conversation, "proof": "link"}});
        let mismatches: [&[(&str, &str)]; 6] = [
            &[("mcp-method", "")],
            &[("mcp-method", "tools/list")],
            &[("mcp-method", "TOOLS/CALL")],
            &[("mcp-name", "")],
            &[("mcp-name", "get_verification")],
            &[("mcp-protocol-version", "2025-11-25")],
        ];
        for extra in mismatches {
            let (status, v) = stateless(&app, "tools/call", start.clone(), extra).await;
            assert_eq!((status, code(&v)), (400, -32020), "{extra:?}: {v}");
        }
        // Another version named in both: -32022 with the versions served.
        let mut params = start.clone();
        params["_meta"] = meta("2099-01-01");
        let (status, v) = stateless(&app, "tools/call", params, &[("mcp-protocol-version", "2099-01-01")]).await;
        assert_eq!((status, code(&v)), (400, -32022), "{v}");
        assert_eq!(v["error"]["data"]["supported"], json!([MODERN, "2025-11-25", "2025-06-18"]));
        assert_eq!(v["error"]["data"]["requested"], "2099-01-01");
        // A _meta without the version, or without the client's capabilities.
        let mut no_caps = meta(MODERN);
        no_caps.as_object_mut().unwrap().remove("io.modelcontextprotocol/clientCapabilities");
        for m in [json!({}), no_caps] {
            let mut params = start.clone();
            params["_meta"] = m;
            let (status, v) = stateless(&app, "tools/call", params, &[]).await;
            assert_eq!((status, code(&v)), (400, -32602), "{v}");
        }
        // None of them started anything.
        assert_eq!(links_delivered(&app, 1).await, 0, "a refused call sent a link");
        // The name as =?base64?…?= is the name; whitespace around it too.
        let encoded = format!("=?base64?{}?=", base64_of("start_verification"));
        for name in [encoded.as_str(), "  start_verification "] {
            let (status, v) = stateless(&app, "tools/call", start.clone(), &[("mcp-name", name)]).await;
            assert_eq!(status, 200, "{v}");
            assert_eq!(v["result"]["isError"], false, "{v}");
        }
        assert_eq!(links_delivered(&app, 2).await, 2, "each accepted call sent one link");
        // Without a key, 401 as under every version: the key comes first.
        let res = app
            .request(Method::POST, "/mcp", None)
            .header("mcp-protocol-version", MODERN)
            .header("mcp-method", "server/discover")
            .json(&json!({"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {"_meta": meta(MODERN)}}))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 401);
    }
);

fn base64_of(s: &str) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(s)
}

both_stores!(
    mcp_2026_07_28_runs_a_verification_without_a_session,
    setup: setup(false),
    |app: TestApp| async move {
        let conversation = json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()});
        // A session id is ignored: not looked up, not answered.
        let params = json!({"name": "start_verification", "arguments": {"conversation": conversation, "proof": "link"}});
        let (status, v) = stateless(&app, "tools/call", params, &[("mcp-session-id", "not-a-session")]).await;
        assert_eq!(status, 200, "{v}");
        let started = complete(&v["result"])["structuredContent"].clone();
        assert_eq!(started["sent_to"], "chat", "{started}");
        let id = started["interaction_id"].as_str().unwrap().to_string();
        // Without `after`, a stateless call answers at once, whatever its wait.
        let r = tool(&app, "get_verification", json!({"interaction_id": id, "wait_seconds": 25})).await;
        assert_eq!(r["structuredContent"]["status"], "pending", "{r}");
        let cursor = r["structuredContent"]["cursor"].as_str().unwrap().to_string();
        // With `after`, it waits for the change: the login made meanwhile.
        let waited = tool(&app, "get_verification", json!({"interaction_id": id, "after": cursor, "wait_seconds": 25}));
        let login = async {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            let (_, token) = delivered_token(&app).await;
            app.callback(&token, "success", json!({"id": "cust-s", "name": "Ada"})).await
        };
        let (r, res) = tokio::join!(waited, login);
        assert_eq!(res.status(), 200);
        assert_eq!(r["structuredContent"]["status"], "authenticated", "the wait saw the login: {r}");
        assert_ne!(r["structuredContent"]["cursor"].as_str(), Some(cursor.as_str()));
        let r = tool(&app, "get_verification", json!({"interaction_id": id})).await;
        let v = &r["structuredContent"];
        assert_eq!((v["authenticated"].as_bool(), v["method"].as_str()), (Some(true), Some("login_link")), "{r}");
        assert_eq!(v["customer_id"], "cust-s");
        let r = tool(&app, "check_assurance", json!({"interaction_id": id, "max_age": "5m"})).await;
        assert_eq!(r["structuredContent"]["satisfied"], true, "{r}");
        // Arguments that break the schema: a tool error naming the pointer.
        let r = tool(&app, "check_assurance", json!({"interaction_id": id, "methods": ["otp", 5]})).await;
        assert_eq!(r["isError"], true, "{r}");
        let p: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
        assert_eq!((p["status"].as_u64(), p["code"].as_str()), (Some(400), Some("invalid_request")), "{p}");
        assert!(p["detail"].as_str().unwrap().contains("/methods/1"), "{p}");
        // An unknown tool stays a JSON-RPC error.
        let params = json!({"name": "verify_code", "arguments": {}});
        let (status, v) = stateless(&app, "tools/call", params, &[]).await;
        assert_eq!((status, code(&v)), (200, -32602), "{v}");
    }
);

both_stores!(
    mcp_arguments_that_break_a_schema_are_tool_errors_naming_their_pointer,
    setup: setup(false),
    |app: TestApp| async move {
        let session = open(&app, &app.keys.bot).await;
        let id = app.new_interaction().await;
        let cases = [
            ("get_verification", json!({}), 400, "/interaction_id"),
            ("get_verification", json!({"interaction_id": id, "wait_seconds": 26}), 422, "/wait_seconds"),
            ("get_verification", json!({"interaction_id": id, "wait_seconds": "soon"}), 400, "/wait_seconds"),
            ("get_verification", json!({"interaction_id": id, "code": "123456"}), 422, "/code"),
            ("get_verification", json!({"interaction_id": 123456}), 400, "/interaction_id"),
            ("start_verification", json!({"proof": "link"}), 422, "/interaction_id"),
            ("start_verification", json!({"proof": "sms", "interaction_id": id}), 422, "/proof"),
            ("start_verification", json!({"proof": "link", "conversation": {"conversation_id": "c"}}), 400, "/conversation/channel"),
            ("start_verification", json!({"proof": "link", "interaction_id": id, "delivery": "sms"}), 422, "/delivery"),
            ("check_assurance", json!({"interaction_id": id, "methods": ["otp", 5]}), 400, "/methods/1"),
        ];
        for (name, args, status, pointer) in cases {
            let before = app
                .metric_value(&format!("chatgate_mcp_calls_total{{tool=\"{name}\",result=\"error\"}}"))
                .await
                .unwrap_or(0.0);
            let (text, r) = call(&app, &session, name, args).await;
            assert_eq!(r["isError"], true, "{text}");
            assert!(r.get("structuredContent").is_none(), "{text}");
            let p: Value = serde_json::from_str(r["content"][0]["text"].as_str().unwrap()).unwrap();
            assert_eq!((p["status"].as_u64(), p["code"].as_str()), (Some(status), Some("invalid_request")), "{text}");
            let detail = p["detail"].as_str().unwrap();
            assert!(detail.starts_with(&format!("arguments {pointer}: ")), "{detail}");
            assert!(!text.contains("123456") && !text.contains("soon"), "no value echoed: {text}");
            // Counted as an error. The recorder is the test process's, so
            // other tests' calls may have counted too: at least ours.
            let after = app
                .metric_value(&format!("chatgate_mcp_calls_total{{tool=\"{name}\",result=\"error\"}}"))
                .await
                .unwrap_or(0.0);
            assert!(after >= before + 1.0, "{name}: {before} then {after}");
        }
    }
);
