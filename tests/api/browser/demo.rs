//! The demo's happy paths from the customer's side, in the browser (a
//! login link, a code by text message, the demo's wallet): the demo's
//! servers (`examples/support/`, the very code `cargo run --example demo`
//! runs) are started in-process on free ports with the sample config.
use std::path::Path;
use std::time::Duration;

use fantoccini::wd::WindowHandle;
use serde_json::json;

use super::driver::Browser;
use super::open_console;
use super::support::demo::{self, Ports};
use crate::helpers::wrong_code;

const LOG_HAS: &str =
    "[...document.querySelectorAll('#log li')].some(l => l.textContent.includes(arguments[0]))";

async fn sample_demo() -> demo::Running {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/chatgate.toml");
    let mut config = chatgate::config::load(&path).expect("the sample config loads");
    config.server.shutdown_drain = Duration::ZERO;
    let ports = Ports {
        gateway: 0,
        login: 0,
        chat: 0,
    };
    demo::start(config, ports, demo::SAMPLE_BOT_KEY.into())
        .await
        .expect("the demo starts")
}

async fn say_in_log(b: &Browser, text: &str, within: Duration) {
    b.wait_for(
        &format!("the chat shows {text:?}"),
        LOG_HAS,
        vec![json!(text)],
        within,
    )
    .await;
}

/// Clicks the chat's link `css` (it opens a tab) and goes on in that tab,
/// its window `size`.
async fn into_new_tab(b: &mut Browser, chat: &WindowHandle, css: &str, size: (u32, u32)) {
    b.click(css).await;
    let tab =
        b.c.windows()
            .await
            .unwrap()
            .into_iter()
            .find(|w| w != chat)
            .expect("the link opened a tab");
    b.c.switch_to_window(tab).await.unwrap();
    b.resize(size.0, size.1).await;
}

/// The customer types `text` into the chat and sends it.
async fn type_in_chat(b: &Browser, text: &str) {
    b.fill("#text", text).await;
    b.click("#composer button[type=submit]").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_signs_in_or_types_a_code_in_the_demo_chat_and_the_console_shows_it() {
    let Some(mut b) = Browser::start(420, 860).await else {
        return;
    };
    let demo = sample_demo().await;
    let chat = b.c.window().await.unwrap();

    // The bot greets; "Sign in" brings a login link into the chat.
    b.c.goto(&format!("{}/", demo.chat_url)).await.unwrap();
    say_in_log(&b, "Acme Bank assistant", Duration::from_secs(5)).await;
    let conversation = b
        .js("return document.body.dataset.conversation", vec![])
        .await;
    b.click("button[data-say='Sign in']").await;
    b.wait_for(
        "a login link",
        "document.querySelector('#log a')",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    let link = b
        .js("return document.querySelector('#log a').href", vec![])
        .await;
    assert!(
        link.as_str()
            .unwrap()
            .starts_with(&format!("{}/l/", demo.gateway_url)),
        "{link}"
    );

    // The customer opens it (a new tab), sees the login page at 360 px, signs in.
    into_new_tab(&mut b, &chat, "#log a", (360, 1000)).await;
    b.wait_for(
        "the login form",
        "document.getElementById('customer_id')",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    let page = b.js("return document.body.innerText", vec![]).await;
    let page = page.as_str().unwrap();
    assert!(
        page.contains("Simulate a failed login") && !page.contains("scope:"),
        "{page}"
    );
    b.screenshot("login-page-360.png").await;
    b.click("button[value=success]").await;
    b.wait_for(
        "signed in",
        "document.body.innerText.includes('You are signed in')",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    b.c.close_window().await.unwrap();
    b.c.switch_to_window(chat.clone()).await.unwrap();
    b.resize(420, 860).await;
    say_in_log(&b, "verified ✓", Duration::from_secs(2)).await;
    b.screenshot("demo-chat.png").await;

    // The agent console, in another tab, shows the check mark.
    let console = b.c.new_window(true).await.unwrap().handle;
    b.c.switch_to_window(console).await.unwrap();
    b.resize(1280, 900).await;
    open_console(&b, &demo.gateway_url, demo::SAMPLE_AGENT_KEY).await;
    b.wait_for(
        "the console shows the conversation authenticated",
        "[...document.querySelectorAll('[data-status=authenticated]')].some(r => r.textContent.includes(arguments[0]) && r.textContent.includes('✓'))",
        vec![conversation],
        Duration::from_secs(2),
    )
    .await;
    b.c.close_window().await.unwrap();
    b.c.switch_to_window(chat).await.unwrap();

    // A new conversation: "Send me a code": it comes by text message to
    // the customer's phone (an anonymous web chat takes no code), shown
    // beside the chat; type it, verified.
    b.c.goto(&format!("{}/", demo.chat_url)).await.unwrap();
    say_in_log(&b, "Acme Bank assistant", Duration::from_secs(5)).await;
    b.click("button[data-say='Send me a code']").await;
    say_in_log(&b, "is your code", Duration::from_secs(3)).await;
    let code = b
        .js(
            "return [...document.querySelectorAll('#log li.phone')].map(l => l.textContent)\
             .find(t => t.includes('is your code')).split(': ')[1].match(/\\d{4,}/)[0]",
            vec![],
        )
        .await;
    type_in_chat(&b, code.as_str().unwrap()).await;
    say_in_log(&b, "verified ✓", Duration::from_secs(2)).await;

    b.assert_no_script_errors().await;
    demo.stop().await;
    b.close().await;
}

/// "Prove it with your wallet": the wallet link in the chat opens the
/// gateway's wallet page, whose button opens the demo's wallet (the team's
/// `invocation`); "Share" presents Ada's PID to the request the wallet
/// fetched and lands on the gateway's page with the binding code
/// (docs/wallet.md#the-code-typed-into-the-chat); "Decline" first shares
/// nothing and leaves the challenge open. A wrong code typed into
/// the chat authenticates nothing; the right one authenticates the
/// conversation with method `wallet`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_proves_it_with_the_demo_wallet_and_types_the_binding_code() {
    let Some(mut b) = Browser::start(420, 860).await else {
        return;
    };
    let demo = sample_demo().await;
    let chat = b.c.window().await.unwrap();
    b.c.goto(&format!("{}/", demo.chat_url)).await.unwrap();
    say_in_log(&b, "prove it with your wallet", Duration::from_secs(5)).await;
    let conversation = b
        .js("return document.body.dataset.conversation", vec![])
        .await;
    b.click("button[data-say='Prove it with your wallet']")
        .await;
    let wallet_link = "#log a[href*='/w/']";
    b.wait_for(
        "a wallet link",
        &format!("document.querySelector(\"{wallet_link}\")"),
        vec![],
        Duration::from_secs(3),
    )
    .await;
    into_new_tab(&mut b, &chat, wallet_link, (360, 800)).await;

    // The gateway's page: its same-device button opens the demo's wallet.
    b.wait_for(
        "the gateway's wallet page",
        "document.getElementById('open')",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    let open = b
        .js("return document.getElementById('open').href", vec![])
        .await;
    let invoked = format!("{}/wallet?client_id=x509_hash", demo.chat_url);
    assert!(open.as_str().unwrap().starts_with(&invoked), "{open}");
    b.click("#open").await;

    // The wallet checked the request: who asks, what, and Ada's PID.
    b.wait_for(
        "the demo wallet shows the request",
        "document.getElementById('share')",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    let page = b.js("return document.body.innerText", vec![]).await;
    let page = page.as_str().unwrap();
    for shown in [
        "Acme Bank (chatgate demo)",
        "Lovelace",
        "1815-12-10",
        "asked",
    ] {
        assert!(page.contains(shown), "{shown}: {page}");
    }
    b.screenshot("demo-wallet.png").await;

    // Declining shares nothing: the challenge stays open, and the wallet
    // opened again from the gateway's page can still share.
    b.click("#decline").await;
    b.wait_for(
        "the wallet says nothing was shared",
        "document.body.innerText.includes('Nothing was shared')",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    let read = interaction(&demo, conversation.as_str().unwrap()).await;
    assert_eq!(read["open_challenge"]["method"], "wallet", "{read}");
    b.c.goto(open.as_str().unwrap()).await.unwrap();
    b.wait_for(
        "the demo wallet shows the request again",
        "document.getElementById('share')",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    b.click("#share").await;

    // Where the wallet's answer came back: the binding code.
    b.wait_for(
        "the gateway's page shows the binding code",
        "location.pathname.endsWith('/done') && /^[0-9]{6}$/.test((document.querySelector('main strong') || {}).textContent)",
        vec![],
        Duration::from_secs(5),
    )
    .await;
    let code = b
        .js(
            "return document.querySelector('main strong').textContent",
            vec![],
        )
        .await;
    let code = code.as_str().unwrap().to_string();
    b.c.close_window().await.unwrap();
    b.c.switch_to_window(chat).await.unwrap();
    b.resize(420, 860).await;

    // A wrong code authenticates nothing; the right one, with the wallet.
    type_in_chat(&b, &wrong_code(&code)).await;
    say_in_log(&b, "That code is not right", Duration::from_secs(3)).await;
    let read = interaction(&demo, conversation.as_str().unwrap()).await;
    assert_eq!(read["authenticated"], false, "{read}");
    type_in_chat(&b, &code).await;
    say_in_log(&b, "verified ✓", Duration::from_secs(3)).await;
    let read = interaction(&demo, conversation.as_str().unwrap()).await;
    assert_eq!(read["status"], "authenticated", "{read}");
    assert_eq!(read["method"], "wallet", "{read}");

    b.assert_no_script_errors().await;
    demo.stop().await;
    b.close().await;
}

/// The demo conversation's interaction, as an agent finds it.
async fn interaction(demo: &demo::Running, conversation: &str) -> serde_json::Value {
    let page: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/v1/interactions", demo.gateway_url))
        .query(&[("channel", "webchat"), ("conversation_id", conversation)])
        .bearer_auth(demo::SAMPLE_AGENT_KEY)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    page["items"][0].clone()
}

/// "Español" switches the demo conversation's language: the code and the
/// notice that follow come in Spanish (docs/api.md#languages).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_chat_switches_to_spanish_and_the_code_follows() {
    let Some(b) = Browser::start(420, 860).await else {
        return;
    };
    let demo = sample_demo().await;
    b.c.goto(&format!("{}/", demo.chat_url)).await.unwrap();
    say_in_log(&b, "Acme Bank assistant", Duration::from_secs(5)).await;
    b.click("button[data-say='Español']").await;
    say_in_log(&b, "seguimos en español", Duration::from_secs(3)).await;
    b.click("button[data-say='Send me a code']").await;
    say_in_log(&b, "Tu código de verificación es", Duration::from_secs(3)).await;
    let code = b
        .js(
            "return [...document.querySelectorAll('#log li.phone')].map(l => l.textContent)\
             .find(t => t.includes('Tu código de verificación es')).split(': ')[1].match(/\\d{4,}/)[0]",
            vec![],
        )
        .await;
    type_in_chat(&b, code.as_str().unwrap()).await;
    say_in_log(&b, "Gracias, ya estás verificado.", Duration::from_secs(3)).await;
    b.screenshot("demo-chat-es.png").await;
    demo.stop().await;
}
