//! An AI agent's whole flow through the MCP server (docs/agents.md), with
//! the customer in a real browser on a 360 px phone: the agent starts a
//! code, the code goes to the customer's phone and the page's link into
//! the chat, the customer types the code on the page while the agent
//! waits, the page shows a binding code, the customer types it into the
//! chat and the agent passes it on; then the agent asks for assurance.
//! No answer the agent gets holds the code, the page's link or a token.
use std::time::{Duration, Instant};

use serde_json::json;

use super::driver::Browser;
use super::TWO_S;
use crate::helpers::*;
use crate::mcp::{call, last_sms_code, open, setup};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_proves_a_customer_who_types_the_code_on_the_page_and_never_holds_it() {
    let Some(app) = spawn_with(Backend::Memory, setup(false)).await else {
        return;
    };
    let Some(b) = Browser::start(360, 740).await else {
        return;
    };
    let session = open(&app, &app.keys.bot).await;
    let conversation = json!({"channel": "webchat", "conversation_id": "agent-flow"});
    let args = json!({"conversation": conversation, "customer_ref": "cust-agent",
                      "contact": {"phone": "+15551230042"}, "proof": "code"});
    let (text, r) = call(&app, &session, "start_verification", args).await;
    let started = &r["structuredContent"];
    assert_eq!(started["sent_to"], "sms", "{text}");
    let id = started["interaction_id"].as_str().unwrap().to_string();
    let mut answers = vec![text];
    let sms_code = last_sms_code(&app).await;
    let chat = app.chat_messages().await;
    let page = chat
        .iter()
        .find(|m| m["purpose"] == "code_entry_link")
        .and_then(|m| m["text"].as_str())
        .and_then(|t| t.split_whitespace().find(|w| w.contains("/c/")))
        .expect("the page's link in the chat")
        .trim_start_matches("http://gateway.test")
        .to_string();
    let get = json!({"interaction_id": id, "wait_seconds": 25});
    let (text, r) = call(&app, &session, "get_verification", get.clone()).await;
    assert_eq!(r["structuredContent"]["challenge"]["awaiting_code"], false);
    answers.push(text);

    // The agent waits while the customer, on their phone, types the code
    // from their SMS on the page the chat linked to.
    let waited = Instant::now();
    let wait = call(&app, &session, "get_verification", get.clone());
    let customer = async {
        b.c.goto(&app.url(&page)).await.unwrap();
        let form = "document.querySelector('input[name=code]') !== null && \
                    document.documentElement.scrollWidth <= 360";
        b.wait_for("the code form, fitting a phone", form, vec![], TWO_S)
            .await;
        let enter = char::from(fantoccini::key::Key::Enter);
        b.fill("input[name=code]", &format!("{sms_code}{enter}"))
            .await;
        let shown = "document.querySelector('h1 strong') !== null";
        b.wait_for("the page shows a binding code", shown, vec![], TWO_S)
            .await;
        b.screenshot("agent-code-page-360.png").await;
        let bind = b
            .js(
                "return document.querySelector('h1 strong').textContent;",
                vec![],
            )
            .await;
        bind.as_str().unwrap().to_string()
    };
    let ((text, r), bind) = tokio::join!(wait, customer);
    assert!(
        waited.elapsed() < Duration::from_secs(20),
        "the wait answered on the change: {text}"
    );
    let v = &r["structuredContent"];
    assert_eq!(v["status"], "pending", "{text}");
    assert_eq!(v["challenge"]["awaiting_code"], true, "{text}");
    answers.push(text);
    assert_ne!(bind, sms_code);

    // The customer types the binding code into the chat; the agent passes
    // on what they typed, the only code it ever holds.
    let (text, r) = call(
        &app,
        &session,
        "confirm_chat_code",
        json!({"interaction_id": id, "code": bind}),
    )
    .await;
    let v = &r["structuredContent"];
    assert_eq!(v["authenticated"], true, "{text}");
    assert_eq!(v["customer_id"], "cust-agent", "{text}");
    answers.push(text);
    let (text, r) = call(
        &app,
        &session,
        "check_assurance",
        json!({"interaction_id": id, "max_age": "5m", "methods": ["otp"]}),
    )
    .await;
    assert_eq!(r["structuredContent"]["satisfied"], true, "{text}");
    answers.push(text);
    assert_eq!(app.get(&id).await["status"], "authenticated");

    let page_code = page.trim_start_matches("/c/");
    for answer in &answers {
        for secret in [sms_code.as_str(), page_code, "/c/"] {
            assert!(!answer.contains(secret), "{secret} in {answer}");
        }
    }
    let fetched: Vec<String> = b.request_urls().await;
    let fetched: Vec<&String> = fetched.iter().filter(|u| u.starts_with("http")).collect();
    assert!(
        fetched.iter().all(|u| u.starts_with(&app.base)),
        "nothing from elsewhere: {fetched:?}"
    );
    b.assert_no_script_errors().await;
    b.close().await;
    app.stop().await;
}
