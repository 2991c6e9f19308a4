//! The console shows a delivery ladder's steps (docs/api.md#the-agent-console):
//! where the code went, how far each message got, and the step that has it
//! now, updated live when the ladder moves.
use serde_json::json;

use super::driver::Browser;
use super::{open_console, ROW, TWO_S};
use crate::helpers::*;
use crate::ladder::{
    ladder, providers_answer_with_ids, start_ladder, wa_report, with_phone, PHONE,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_a_ladder_s_steps_and_where_the_code_is() {
    let Some(app) = spawn_with(Backend::Memory, ladder(&["wa", "sms"], "")).await else {
        return;
    };
    let Some(b) = Browser::start(1000, 860).await else {
        return;
    };
    providers_answer_with_ids(&app).await;
    let id = with_phone(&app, PHONE).await;
    assert_eq!(start_ladder(&app, &id).await.status(), 201);
    open_console(&b, &app.base, &app.keys.agent).await;
    let steps = |text: &str, current: &str| {
        let dd = format!("{ROW}.querySelector('.ladder')");
        (
            format!(
                "{ROW} && !{ROW}.querySelector('.ladder-fact').hidden && {dd}.textContent === arguments[1] \
                 && {dd}.querySelector('strong').textContent === arguments[2]"
            ),
            vec![json!(id), json!(text), json!(current)],
        )
    };
    let (js, args) = steps("wa → sms", "wa");
    b.wait_for("the code on WhatsApp", &js, args, TWO_S).await;
    // WhatsApp reports failure: the row follows the code to SMS live.
    wa_report(&app, "wamid.L1", "failed").await;
    let (js, args) = steps("wa ✗ → sms", "sms");
    b.wait_for("the code moved on to SMS", &js, args, TWO_S)
        .await;
    b.screenshot("images/console-ladder.png").await;
    b.assert_no_script_errors().await;
    b.close().await;
}
