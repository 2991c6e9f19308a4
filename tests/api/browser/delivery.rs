//! The console shows how far the open challenge's message got
//! (docs/receipts.md): ✔ delivered, ✔✔ read, ✗ not delivered, updated live
//! from the receipts' events.
use serde_json::json;

use super::driver::Browser;
use super::{open_console, ROW, TWO_S};
use crate::helpers::*;
use crate::receipts::{fake_twilio, sms_challenge, twilio};

/// Waits for the delivery mark of `id` to say `status` with `text`.
async fn wait_mark(b: &Browser, id: &str, status: &str, text: &str) {
    let mark = format!("{ROW}.querySelector('.delivery')");
    b.wait_for(
        &format!("{id} shows {text}"),
        &format!(
            "{ROW} && !{mark}.hidden && {mark}.dataset.delivery === arguments[1] && {mark}.textContent === arguments[2]"
        ),
        vec![json!(id), json!(status), json!(text)],
        TWO_S,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_each_open_challenge_s_delivery_status_live() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let Some(b) = Browser::start(1000, 860).await else {
        return;
    };
    let ids = fake_twilio(&app.chat).await;
    let (arrives, _) = sms_challenge(&app, "+15551230031").await;
    let arrives_sid = ids.last();
    let (fails, _) = sms_challenge(&app, "+15551230032").await;
    let fails_sid = ids.last();
    let (waits, _) = sms_challenge(&app, "+15551230033").await;
    open_console(&b, &app.base, &app.keys.agent).await;
    // Accepted only: no mark yet.
    let hidden = format!("{ROW} && {ROW}.querySelector('.delivery').hidden");
    for id in [&arrives, &fails, &waits] {
        b.wait_for("no mark before a receipt", &hidden, vec![json!(id)], TWO_S)
            .await;
    }
    // The receipts come: each row changes without a reload.
    assert_eq!(
        twilio(&app, &arrives_sid, "delivered", None).await.status(),
        200
    );
    wait_mark(&b, &arrives, "delivered", "✔ delivered").await;
    assert_eq!(
        twilio(&app, &fails_sid, "undelivered", Some("30003"))
            .await
            .status(),
        200
    );
    wait_mark(&b, &fails, "failed", "✗ not delivered").await;
    b.wait_for("still no mark", &hidden, vec![json!(waits)], TWO_S)
        .await;
    b.screenshot("images/console-delivery.png").await;
    // Read moves on without an event: shown when the page reads the
    // interaction again (a reload; the key is kept for the tab).
    assert_eq!(twilio(&app, &arrives_sid, "read", None).await.status(), 200);
    b.c.refresh().await.unwrap();
    wait_mark(&b, &arrives, "read", "✔✔ read").await;
    b.assert_no_script_errors().await;
    b.close().await;
}
