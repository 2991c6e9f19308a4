//! The page where a code is typed instead of the chat
//! (docs/api.md#codes-typed-on-the-gateways-page) in a real browser, on a
//! 360 px phone: the customer types the code the agent read out, presses
//! Enter, and the interaction is authenticated; the page loads nothing
//! from anywhere else.
use serde_json::{json, Value};

use super::driver::Browser;
use super::TWO_S;
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_types_the_code_on_the_page_on_a_phone() {
    let setup = Setup {
        team_extra: "[settings.otp]\nshow_to_agents = true\n".into(),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let Some(b) = Browser::start(360, 740).await else {
        return;
    };
    let id = app.new_interaction().await;
    let asked = json!({"method": "otp", "delivery": "agent", "entry": "page"});
    let path = format!("/v1/interactions/{id}/challenges");
    let res = app.post_json(&path, Some(&app.keys.bot), &asked).await;
    assert_eq!(res.status(), 201);
    let cid = res.json::<Value>().await.unwrap()["challenge_id"]
        .as_str()
        .unwrap()
        .to_string();
    let reveal = format!("/v1/interactions/{id}/challenges/{cid}/code");
    let code = app.get_json(&reveal, Some(&app.keys.agent)).await["code"]
        .as_str()
        .unwrap()
        .to_string();
    let msgs = app.chat_messages().await;
    let text = msgs
        .iter()
        .find(|m| m["purpose"] == "code_entry_link")
        .expect("the page's link")["text"]
        .as_str()
        .unwrap()
        .to_string();
    let url = text
        .split_whitespace()
        .find(|w| w.starts_with("http://gateway.test/c/"))
        .unwrap();
    let link = url.trim_start_matches("http://gateway.test");

    b.c.goto(&app.url(link)).await.unwrap();
    let fits = "document.querySelector('input[name=code]') !== null && \
                document.documentElement.lang === 'en' && \
                document.documentElement.scrollWidth <= 360";
    b.wait_for("the form fits a phone", fits, vec![], TWO_S)
        .await;
    b.screenshot("code-entry-360.png").await;
    let enter = char::from(fantoccini::key::Key::Enter);
    b.fill("input[name=code]", &format!("{code}{enter}")).await;
    let done = "document.querySelector('h1') !== null && \
                document.querySelector('h1').textContent.includes('verified')";
    b.wait_for("the page says it is done", done, vec![], TWO_S)
        .await;
    assert_eq!(app.get(&id).await["status"], "authenticated");
    // The browser's own pages (its new tab) load chrome:// resources.
    let urls = b.request_urls().await;
    let fetched: Vec<&String> = urls.iter().filter(|u| u.starts_with("http")).collect();
    assert!(
        fetched.iter().all(|u| u.starts_with(&app.base)),
        "nothing from elsewhere: {fetched:?}"
    );
    b.assert_no_script_errors().await;
    b.close().await;
}
