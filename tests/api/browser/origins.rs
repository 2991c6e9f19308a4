//! The console shows a subject's origins (lockout scope "origin") and lets
//! an admin unlock one of them alone.
use serde_json::json;

use super::driver::Browser;
use super::{open_console, wait_status, ROW, TWO_S};
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_a_customer_s_origins_and_unlocks_one() {
    let setup = Setup {
        defaults: "[defaults.lockout]\nscope = \"origin\"\nthreshold = 3\n[defaults.otp]\nmax_attempts = 10"
            .into(),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let Some(b) = Browser::start(1280, 900).await else {
        return;
    };
    open_console(&b, &app.base, &app.keys.admin).await;
    let create = |conv: &'static str| {
        let app = &app;
        async move {
            app.create(json!({"channel": "webchat", "conversation_id": conv, "customer_ref": "cust-console"}))
                .await["id"]
                .as_str()
                .unwrap()
                .to_string()
        }
    };
    let home = create("home").await;
    let (cid, code) = app.start_otp(&home).await;
    assert_eq!(app.verify_code(&home, &cid, &code).await.status(), 200);
    let eve = create("eve").await;
    let (cid, code) = app.start_otp(&eve).await;
    for _ in 0..3 {
        app.verify_code(&eve, &cid, &wrong_code(&code)).await;
    }
    wait_status(&b, &eve, "locked").await;
    b.click(&format!(
        "[data-interaction-id=\"{eve}\"] button.show-origins"
    ))
    .await;
    let origin = |name: &str| format!("{ROW}.querySelector('[data-origin=\"{name}\"]')");
    b.wait_for(
        "eve's row lists both origins, eve's locked",
        &format!(
            "{} && {}.dataset.locked === 'true' && {} && {}.textContent.includes('familiar')",
            origin("webchat:eve"),
            origin("webchat:eve"),
            origin("webchat:home"),
            origin("webchat:home")
        ),
        vec![json!(eve)],
        TWO_S,
    )
    .await;
    b.screenshot("console-origins").await;
    b.click(&format!(
        "[data-interaction-id=\"{eve}\"] [data-origin=\"webchat:eve\"] button.unlock-origin"
    ))
    .await;
    wait_status(&b, &eve, "pending").await;
    let v = app
        .get_json("/v1/subjects/cust-console", Some(&app.keys.agent))
        .await;
    let eve_origin = v["origins"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["origin"] == "webchat:eve")
        .unwrap()
        .clone();
    assert!(eve_origin["locked_until"].is_null(), "{v}");
    assert_eq!(eve_origin["lockouts"], 0, "{v}");
    b.assert_no_script_errors().await;
    b.close().await;
}
