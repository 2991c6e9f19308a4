//! Approval in the customer's app on the agent console
//! (docs/api.md#approval-in-the-customers-app,
//! docs/decisions/0080-app-approval-in-the-console.md): an admin key of a
//! team with CIBA asks for it and sees the binding code, an agent key sees
//! the code but no action, and the check mark comes when the app approves.
use std::time::Duration;

use serde_json::json;

use super::driver::Browser;
use super::{open_console, wait_status, ROW};
use crate::helpers::*;
use crate::oidc_provider::Approval;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_asks_for_approval_in_the_app_and_agents_see_its_code() {
    let Some(b) = Browser::start(1280, 900).await else {
        return;
    };
    let (app, idp) = crate::oidc::spawn_idp(Backend::Memory, "ciba = true", "")
        .await
        .unwrap();
    let v = app
        .create(json!({"channel": "webchat", "conversation_id": "ciba-console", "customer_ref": "cust-42"}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    // An agent key: no action.
    open_console(&b, &app.base, &app.keys.agent).await;
    wait_status(&b, &id, "unauthenticated").await;
    let hidden = b
        .js(
            &format!("return {ROW}.querySelector('.ask-app').hidden"),
            vec![json!(id)],
        )
        .await;
    assert_eq!(hidden, json!(true));
    b.click("#forget").await;
    // An admin key: the action, then the code the app shows.
    open_console(&b, &app.base, &app.keys.admin).await;
    wait_status(&b, &id, "unauthenticated").await;
    b.wait_for(
        "the app action is offered",
        &format!("{ROW} && !{ROW}.querySelector('.ask-app').hidden"),
        vec![json!(id)],
        Duration::from_secs(2),
    )
    .await;
    b.click(&format!("[data-interaction-id=\"{id}\"] button.ask-app"))
        .await;
    wait_status(&b, &id, "pending").await;
    let code = idp.ciba_seen()[0].form["binding_message"].clone();
    b.wait_for(
        "the binding code is shown",
        &format!("{ROW} && {ROW}.querySelector('.binding').textContent === arguments[1]"),
        vec![json!(id), json!(code)],
        Duration::from_secs(2),
    )
    .await;
    // The customer approves in the app: the check mark.
    idp.approval(Approval::Approve);
    app.advance(5);
    wait_status(&b, &id, "authenticated").await;
    b.assert_no_script_errors().await;
}
