//! The console's list in the browser: paging with the list cursor, the
//! status and channel filters (also for live events), a 360 px wide window,
//! and unlocking a subject (admin only; an agent sees the refusal).
use std::time::Duration;

use serde_json::json;

use super::driver::Browser;
use super::{open_console, wait_status, ROW, TWO_S};
use crate::helpers::*;

const ROW_IDS: &str =
    "return [...document.querySelectorAll('#list > li')].map(li => li.dataset.interactionId)";

async fn shown(b: &Browser) -> Vec<String> {
    serde_json::from_value(b.js(ROW_IDS, vec![]).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_pages_newest_first_and_filters_by_status_and_channel() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let mut ids = Vec::new();
    for _ in 0..27 {
        ids.push(app.new_interaction().await);
    }
    let sms = app
        .create(json!({"channel": "sms", "conversation_id": "sms-conv-1"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    ids.push(sms.clone());
    app.authenticate(&ids[3], "cust-7").await;
    let Some(mut b) = Browser::start(1280, 900).await else {
        return;
    };
    open_console(&b, &app.base, &app.keys.agent).await;
    let first = shown(&b).await;
    let mut newest_first = ids.clone();
    newest_first.reverse();
    assert_eq!(first, newest_first[..25], "one page of 25, newest first");
    b.click("#more").await;
    b.wait_for(
        "the second page",
        "document.querySelectorAll('#list > li').length === 28",
        vec![],
        TWO_S,
    )
    .await;
    assert_eq!(shown(&b).await, newest_first, "both pages, in order");
    assert_eq!(
        b.js("return document.getElementById('more').hidden", vec![])
            .await,
        json!(true)
    );

    // Status filter: only the authenticated one, also as events arrive.
    b.js(
        "const s = document.getElementById('filter-status'); s.value = 'authenticated'; \
         s.dispatchEvent(new Event('change'));",
        vec![],
    )
    .await;
    b.wait_for(
        "only the authenticated one",
        "document.querySelectorAll('#list > li').length === 1",
        vec![],
        TWO_S,
    )
    .await;
    assert_eq!(shown(&b).await, vec![ids[3].clone()]);
    let later = app.new_interaction().await;
    app.authenticate(&ids[5], "cust-8").await;
    wait_status(&b, &ids[5], "authenticated").await;
    assert!(
        !shown(&b).await.contains(&later),
        "an unauthenticated one is not shown"
    );

    // Channel filter (status any).
    b.js(
        "document.getElementById('filter-status').value = '';",
        vec![],
    )
    .await;
    b.fill("#filter-channel", "sms").await;
    b.click("#filters button[type=submit]").await;
    b.wait_for(
        "only the sms one",
        "document.querySelectorAll('#list > li').length === 1",
        vec![],
        TWO_S,
    )
    .await;
    assert_eq!(shown(&b).await, vec![sms]);

    // Readable at 360 px: nothing wider than the window.
    b.resize(360, 800).await;
    let fits = b
        .js(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            vec![],
        )
        .await;
    assert_eq!(fits, json!(true), "no horizontal scrolling at 360 px");
    b.assert_no_script_errors().await;
    b.close().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_an_admin_key_unlocks_a_subject_from_the_console() {
    let setup = Setup {
        team_extra: "[settings.lockout]\nthreshold = 1\n".into(),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let Some(b) = Browser::start(1280, 900).await else {
        return;
    };
    let id = app
        .create(json!({"channel": "webchat", "conversation_id": "lock-me", "customer_ref": "cust-lock"}))
        .await["id"]
        .as_str()
        .unwrap()
        .to_string();
    let (cid, code) = app.start_otp(&id).await;
    let res = app.verify_code(&id, &cid, &wrong_code(&code)).await;
    assert_eq!(res.status(), 423);

    open_console(&b, &app.base, &app.keys.agent).await;
    wait_status(&b, &id, "locked").await;
    let unlock = format!("[data-interaction-id=\"{id}\"] button.unlock");
    b.click(&unlock).await;
    b.wait_for(
        "the agent is refused",
        &format!("{ROW}.querySelector('.note').textContent.includes('it needs an admin')"),
        vec![json!(id)],
        TWO_S,
    )
    .await;
    assert_eq!(app.get(&id).await["status"], "locked");

    b.click("#forget").await;
    open_console(&b, &app.base, &app.keys.admin).await;
    wait_status(&b, &id, "locked").await;
    b.click(&unlock).await;
    b.wait_for(
        "unlocked",
        &format!("{ROW} && {ROW}.dataset.status !== 'locked'"),
        vec![json!(id)],
        Duration::from_secs(2),
    )
    .await;
    let subject = app
        .get_json("/v1/subjects/cust-lock", Some(&app.keys.agent))
        .await;
    assert_eq!(
        subject["locked_until"],
        serde_json::Value::Null,
        "{subject}"
    );
    b.close().await;
}
