//! The console shows a recognized interaction apart from an authenticated
//! one: no ✓, "recognized as …", and a button that forgets the conversation.
use std::time::Duration;

use serde_json::json;

use super::driver::Browser;
use super::{open_console, wait_status, ROW, TWO_S};
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_recognized_interaction_shows_whom_without_a_check_mark() {
    let setup = Setup {
        defaults: r#"recognize_for = "30d""#.into(),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let Some(b) = Browser::start(1280, 900).await else {
        return;
    };
    let conversation = json!({"channel": "sms", "conversation_id": "+15551230020",
        "contact": {"phone": "+15551230020"}});
    let day1 = app.create(conversation.clone()).await;
    app.authenticate(day1["id"].as_str().unwrap(), "cust-42")
        .await;
    app.advance(86_400 + 60);
    open_console(&b, &app.base, &app.keys.agent).await;

    // The next day's interaction of the conversation: recognized, not ✓.
    let day2 = app.create(conversation).await;
    let id = day2["id"].as_str().unwrap().to_string();
    assert_eq!(day2["recognized"]["customer_id"], "cust-42");
    wait_status(&b, &id, "unauthenticated").await;
    let mark = format!("{ROW}.querySelector('.recognized')");
    b.wait_for(
        "recognized as cust-42 is shown",
        &format!("!{mark}.hidden && {mark}.textContent === 'recognized as cust-42'"),
        vec![json!(id)],
        TWO_S,
    )
    .await;
    let text = b
        .js(&format!("return {ROW}.textContent"), vec![json!(id)])
        .await;
    assert!(!text.as_str().unwrap().contains('✓'), "{text}");

    // Forgotten from the console: the words go.
    b.click(&format!("[data-interaction-id=\"{id}\"] .forget"))
        .await;
    b.wait_for(
        "the conversation is forgotten",
        &format!("{mark}.hidden"),
        vec![json!(id)],
        Duration::from_secs(2),
    )
    .await;
    assert_eq!(app.get(&id).await["recognized"], serde_json::Value::Null);
    b.assert_no_script_errors().await;
    b.close().await;
}
