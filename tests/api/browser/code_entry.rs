//! The page where a code is typed instead of the chat
//! (docs/api.md#codes-typed-on-the-gateways-page) in a real browser, on a
//! 360 px phone: the field labelled, the button "Check code"; the link
//! relayed out of its chat to the code's owner, who types the code and
//! presses Enter, shows a binding code and
//! authenticates nobody; only that code, typed into the chat, does
//! (docs/api.md#a-proof-made-on-a-page-is-bound-to-the-chat). The page
//! loads nothing from anywhere else.
use serde_json::{json, Value};

use super::driver::Browser;
use super::TWO_S;
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relayed_link_typed_on_a_phone_shows_a_binding_code_and_authenticates_no_one() {
    let setup = Setup {
        team_top: "display_name = \"Acme Bank\"".into(),
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

    // The link, taken from the chat by whoever is in it, relayed to the
    // number's owner: their browser, their cookies.
    b.c.goto(&app.url(link)).await.unwrap();
    let fits = "document.querySelector('input[name=code]') !== null && \
                document.documentElement.lang === 'en' && \
                document.documentElement.scrollWidth <= 360 && \
                document.querySelector('h1').textContent.includes('chatting with Acme Bank')";
    b.wait_for(
        "the form fits a phone and names the team",
        fits,
        vec![],
        TWO_S,
    )
    .await;
    // The field has a label of its own, and the button says what it does.
    let named = b
        .js(
            "return [document.querySelector('input[name=code]').labels[0].textContent, \
             document.querySelector('form button').textContent]",
            vec![],
        )
        .await;
    assert_eq!(named, json!(["Code", "Check code"]));
    b.screenshot("code-entry-360.png").await;
    let enter = char::from(fantoccini::key::Key::Enter);
    b.fill("input[name=code]", &format!("{code}{enter}")).await;
    let shown = "document.querySelector('h1 strong') !== null && \
                 document.querySelector('h1').textContent.includes('in the chat to finish')";
    b.wait_for("the page shows the binding code", shown, vec![], TWO_S)
        .await;
    let bind = b
        .js(
            "return document.querySelector('h1 strong').textContent;",
            vec![],
        )
        .await;
    let bind = bind.as_str().unwrap().to_string();
    assert_ne!(bind, code);
    // The code's owner proved the code, not who is in the chat: the chat
    // the link came from is not authenticated.
    assert_eq!(app.get(&id).await["status"], "pending");
    let elsewhere = app
        .request(reqwest::Method::GET, link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(elsewhere.status(), 410, "another browser sees nothing more");
    assert!(!elsewhere.text().await.unwrap().contains(&bind));
    // Only the binding code typed into that chat authenticates it.
    let res = app.verify_code(&id, &cid, &bind).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get(&id).await["status"], "authenticated");
    b.c.goto(&app.url(link)).await.unwrap();
    let done = "document.querySelector('h1') !== null && \
                document.querySelector('h1').textContent.includes('verified')";
    b.wait_for("the link says it is done", done, vec![], TWO_S)
        .await;
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
