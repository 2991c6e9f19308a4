//! The demo's happy path from the customer's side, in the browser: the
//! demo's servers (`examples/support/`, the very code `cargo run --example
//! demo` runs) are started in-process on free ports with the sample config.
use std::path::Path;
use std::time::Duration;

use serde_json::json;

use super::driver::Browser;
use super::open_console;
use super::support::demo::{self, Ports};

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
    b.click("#log a").await;
    let login =
        b.c.windows()
            .await
            .unwrap()
            .into_iter()
            .find(|w| *w != chat)
            .expect("the link opened a tab");
    b.c.switch_to_window(login).await.unwrap();
    b.resize(360, 1000).await;
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
    b.fill("#text", code.as_str().unwrap()).await;
    b.click("#composer button[type=submit]").await;
    say_in_log(&b, "verified ✓", Duration::from_secs(2)).await;

    b.assert_no_script_errors().await;
    demo.stop().await;
    b.close().await;
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
    b.fill("#text", code.as_str().unwrap()).await;
    b.click("#composer button[type=submit]").await;
    say_in_log(&b, "Gracias, ya estás verificado.", Duration::from_secs(3)).await;
    b.screenshot("demo-chat-es.png").await;
    demo.stop().await;
}
