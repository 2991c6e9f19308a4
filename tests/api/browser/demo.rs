//! The demo from the customer's side, in the browser (a login link, a
//! code by text message, typed in the chat or on the gateway's code page,
//! the demo's wallet, a conversation in Spanish, a blocked customer beside
//! one that is not): the demo's
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
    let before = b.c.windows().await.unwrap();
    assert!(before.contains(chat));
    b.click(css).await;
    let mut tab = None;
    for _ in 0..20 {
        let now = b.c.windows().await.unwrap();
        tab = now.into_iter().find(|w| !before.contains(w));
        if tab.is_some() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let tab = tab.expect("the link opened a tab");
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
    say_in_log(&b, "verified ✓", Duration::from_secs(4)).await;
    notice_then_check_mark(&b, "Thank you, you are now verified.", "verified ✓").await;
    only_the_language_offered(&b).await;

    b.assert_no_script_errors().await;
    demo.stop().await;
    b.close().await;
}

/// The gateway's notice `notice` is in the chat before the bot's
/// `check_mark`, each once.
async fn notice_then_check_mark(b: &Browser, notice: &str, check_mark: &str) {
    let at = |text: &str| {
        let text = text.to_string();
        async move {
            b.js(
                "const all = [...document.querySelectorAll('#log li')].map(l => l.textContent);\
                 return [all.findIndex(t => t.includes(arguments[0])), \
                         all.filter(t => t.includes(arguments[0])).length]",
                vec![json!(text)],
            )
            .await
        }
    };
    let (notice_at, check_at) = (at(notice).await, at(check_mark).await);
    assert_eq!(notice_at[1], 1, "{notice:?} once: {notice_at}");
    assert_eq!(check_at[1], 1, "{check_mark:?} once: {check_at}");
    assert!(
        notice_at[0].as_i64() < check_at[0].as_i64(),
        "{notice:?} before {check_mark:?}: {notice_at} {check_at}"
    );
}

/// Once verified, the chat offers no way to verify: its only suggestion
/// left is the language.
async fn only_the_language_offered(b: &Browser) {
    b.wait_for(
        "only the language on offer",
        "[...document.querySelectorAll('#suggestions button')].filter(x => !x.hidden)\
         .map(x => x.dataset.action).join() === 'language'",
        vec![],
        Duration::from_secs(2),
    )
    .await;
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
    b.click("button[data-action='wallet']").await;
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

/// "Español" switches the demo conversation's language, and everything
/// in it follows (docs/api.md#languages): the bot, the suggestions, the
/// code and the notice, the count of attempts left (ICU4X's plural rules:
/// "te queda 1 intento"), the example login page and the gateway's wallet
/// page; once verified, no way to verify is offered any more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_chat_switches_to_spanish_and_everything_follows() {
    let Some(mut b) = Browser::start(420, 860).await else {
        return;
    };
    let demo = sample_demo().await;
    let chat = b.c.window().await.unwrap();
    b.c.goto(&format!("{}/", demo.chat_url)).await.unwrap();
    say_in_log(&b, "Acme Bank assistant", Duration::from_secs(5)).await;
    b.click("button[data-action='language']").await;
    say_in_log(&b, "seguimos en español", Duration::from_secs(3)).await;
    b.wait_for(
        "the suggestions in Spanish",
        "document.documentElement.lang === 'es' && \
         document.querySelector(\"button[data-action='code']\").textContent === 'Envíame un código' && \
         document.querySelector(\"button[data-action='sign-in']\").textContent === 'Iniciar sesión' && \
         document.querySelector(\"button[data-action='language']\").textContent === 'English'",
        vec![],
        Duration::from_secs(2),
    )
    .await;
    b.click("button[data-action='code']").await;
    say_in_log(&b, "Te he enviado un código", Duration::from_secs(3)).await;
    say_in_log(&b, "Tu código de verificación es", Duration::from_secs(3)).await;
    let code = b
        .js(
            "return [...document.querySelectorAll('#log li.phone')].map(l => l.textContent)\
             .find(t => t.includes('Tu código de verificación es')).split(': ')[1].match(/\\d{4,}/)[0]",
            vec![],
        )
        .await;
    let code = code.as_str().unwrap().to_string();
    type_in_chat(&b, &wrong_code(&code)).await;
    say_in_log(&b, "te quedan 2 intentos.", Duration::from_secs(3)).await;
    type_in_chat(&b, &wrong_code(&code)).await;
    say_in_log(&b, "te queda 1 intento.", Duration::from_secs(3)).await;
    type_in_chat(&b, &code).await;
    say_in_log(&b, "verificado ✓", Duration::from_secs(4)).await;
    notice_then_check_mark(&b, "Gracias, ya estás verificado.", "verificado ✓").await;
    only_the_language_offered(&b).await;
    let english = b
        .js(
            "return [...document.querySelectorAll('#log li.bot')].map(l => l.textContent)\
             .filter(t => /\\b(the|your|code|I've)\\b/.test(t))",
            vec![],
        )
        .await;
    assert_eq!(
        english.as_array().unwrap().len(),
        1,
        "only the greeting: {english}"
    );
    b.screenshot("demo-chat-es.png").await;

    // Another conversation, in Spanish: the login page speaks it.
    b.c.goto(&format!("{}/", demo.chat_url)).await.unwrap();
    say_in_log(&b, "Acme Bank assistant", Duration::from_secs(5)).await;
    type_in_chat(&b, "Español").await;
    say_in_log(&b, "seguimos en español", Duration::from_secs(3)).await;
    b.click("button[data-action='sign-in']").await;
    b.wait_for(
        "a sign-in link named in Spanish",
        "(document.querySelector('#log a') || {}).textContent === 'Iniciar sesión de forma segura'",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    into_new_tab(&mut b, &chat, "#log a", (360, 1000)).await;
    b.wait_for(
        "the login page in Spanish",
        "document.documentElement.lang === 'es' && \
         document.body.innerText.includes('Inicia sesión para seguir con tu chat') && \
         document.querySelector('button[value=success]').textContent === 'Iniciar sesión'",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    b.click("button[value=success]").await;
    b.wait_for(
        "signed in, in Spanish",
        "document.body.innerText.includes('Has iniciado sesión')",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    b.c.close_window().await.unwrap();
    b.c.switch_to_window(chat.clone()).await.unwrap();
    say_in_log(&b, "verificado ✓", Duration::from_secs(4)).await;
    notice_then_check_mark(&b, "Gracias, ya estás verificado.", "verificado ✓").await;

    // A third, in Spanish: the gateway's wallet page and its buttons too.
    b.c.goto(&format!("{}/", demo.chat_url)).await.unwrap();
    say_in_log(&b, "Acme Bank assistant", Duration::from_secs(5)).await;
    type_in_chat(&b, "Español").await;
    say_in_log(&b, "seguimos en español", Duration::from_secs(3)).await;
    b.click("button[data-action='wallet']").await;
    let wallet_link = "#log a[href*='/w/']";
    b.wait_for(
        "a wallet link named in Spanish",
        &format!("(document.querySelector(\"{wallet_link}\") || {{}}).textContent === 'Confirmar con tu cartera'"),
        vec![],
        Duration::from_secs(3),
    )
    .await;
    into_new_tab(&mut b, &chat, wallet_link, (360, 800)).await;
    b.wait_for(
        "the wallet page in Spanish, its buttons named for what they do",
        "document.documentElement.lang === 'es' && \
         document.querySelectorAll('h1').length === 1 && \
         document.getElementById('open').textContent === 'Abrir mi cartera digital' && \
         document.getElementById('dc').textContent === 'Usar una cartera de este dispositivo'",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    b.assert_no_script_errors().await;
    demo.stop().await;
    b.close().await;
}

/// The code the demo's phone received last, shown beside the chat.
async fn texted_code(b: &Browser, said: &str) -> String {
    say_in_log(b, said, Duration::from_secs(3)).await;
    let code = b
        .js(
            "return [...document.querySelectorAll('#log li.phone')].map(l => l.textContent)\
             .filter(t => t.includes(arguments[0])).pop().split(': ')[1].match(/\\d{4,}/)[0]",
            vec![json!(said)],
        )
        .await;
    code.as_str().unwrap().to_string()
}

/// Each chat tab is a customer of its own: wrong codes that block one tab's
/// customer (the bot saying until when, in minutes of UTC) leave another
/// tab free to verify; the admin key the demo prints unlocks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_chat_tab_is_its_own_customer_and_a_block_says_when_it_ends() {
    let Some(mut b) = Browser::start(420, 860).await else {
        return;
    };
    let demo = sample_demo().await;
    let first = b.c.window().await.unwrap();
    b.c.goto(&format!("{}/", demo.chat_url)).await.unwrap();
    say_in_log(&b, "Acme Bank assistant", Duration::from_secs(5)).await;
    let one = b
        .js("return document.body.dataset.conversation", vec![])
        .await;
    let second = b.c.new_window(true).await.unwrap().handle;
    b.c.switch_to_window(second.clone()).await.unwrap();
    b.c.goto(&format!("{}/", demo.chat_url)).await.unwrap();
    say_in_log(&b, "Acme Bank assistant", Duration::from_secs(5)).await;
    let two = b
        .js("return document.body.dataset.conversation", vec![])
        .await;
    let (a, z) = (
        interaction(&demo, one.as_str().unwrap()).await,
        interaction(&demo, two.as_str().unwrap()).await,
    );
    assert_ne!(a["customer_ref"], z["customer_ref"], "{a} {z}");

    // The first tab's customer: three wrong codes use a code up ("1
    // attempt left" on the way), two more of a new code lock them out.
    b.c.switch_to_window(first.clone()).await.unwrap();
    b.click("button[data-action='code']").await;
    let code = texted_code(&b, "is your code").await;
    for left in ["2 attempts left", "1 attempt left."] {
        type_in_chat(&b, &wrong_code(&code)).await;
        say_in_log(&b, left, Duration::from_secs(3)).await;
    }
    type_in_chat(&b, &wrong_code(&code)).await;
    say_in_log(&b, "cannot be used any more", Duration::from_secs(3)).await;
    b.click("button[data-action='code']").await;
    b.wait_for(
        "a second code",
        "[...document.querySelectorAll('#log li.phone')].length === 2",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    let code = texted_code(&b, "is your code").await;
    type_in_chat(&b, &wrong_code(&code)).await;
    say_in_log(&b, "1 attempt left.", Duration::from_secs(3)).await;
    type_in_chat(&b, &wrong_code(&code)).await;
    let until = "[...document.querySelectorAll('#log li.bot')]\
                 .some(l => /blocked until [0-2][0-9]:[0-5][0-9] UTC/.test(l.textContent))";
    b.wait_for(
        "the block and its end",
        until,
        vec![],
        Duration::from_secs(3),
    )
    .await;
    // Signing in is blocked too, and the login page says until when.
    b.click("button[data-action='sign-in']").await;
    b.wait_for(
        "a login link",
        "document.querySelector('#log a') !== null",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    into_new_tab(&mut b, &first, "#log a", (360, 1000)).await;
    b.wait_for(
        "the login form",
        "document.getElementById('customer_id')",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    b.click("button[value=success]").await;
    b.wait_for(
        "the login page says until when",
        "/signing in is blocked until [0-2][0-9]:[0-5][0-9] UTC/.test(document.body.innerText)",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    b.c.close_window().await.unwrap();

    // The other tab's customer is not blocked.
    b.c.switch_to_window(second).await.unwrap();
    b.click("button[data-action='code']").await;
    let code = texted_code(&b, "is your code").await;
    type_in_chat(&b, &code).await;
    say_in_log(&b, "verified ✓", Duration::from_secs(4)).await;

    // The admin key the demo prints unlocks the first tab's customer.
    let unlock = reqwest::Client::new()
        .post(format!(
            "{}/v1/subjects/{}/unlock",
            demo.gateway_url,
            a["customer_ref"].as_str().unwrap()
        ))
        .bearer_auth(demo::SAMPLE_ADMIN_KEY)
        .json(&json!({}))
        .send()
        .await
        .unwrap();
    assert!(unlock.status().is_success(), "{}", unlock.status());
    b.c.switch_to_window(first).await.unwrap();
    b.click("button[data-action='code']").await;
    b.wait_for(
        "a third code",
        "[...document.querySelectorAll('#log li.phone')].length === 3",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    let code = texted_code(&b, "is your code").await;
    type_in_chat(&b, &code).await;
    say_in_log(&b, "verified ✓", Duration::from_secs(4)).await;
    b.assert_no_script_errors().await;
    demo.stop().await;
    b.close().await;
}

/// "Type the code on a page": the code goes by text message, a link named
/// for what it does opens the gateway's code page, whose field is labelled
/// and whose button says "Check code"; the binding code it shows, typed
/// into the chat, verifies the conversation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_code_page_is_reached_from_the_demo_chat() {
    let Some(mut b) = Browser::start(420, 860).await else {
        return;
    };
    let demo = sample_demo().await;
    let chat = b.c.window().await.unwrap();
    b.c.goto(&format!("{}/", demo.chat_url)).await.unwrap();
    say_in_log(&b, "Acme Bank assistant", Duration::from_secs(5)).await;
    b.click("button[data-action='page']").await;
    let code = texted_code(&b, "is your code").await;
    let page_link = "#log a[href*='/c/']";
    b.wait_for(
        "the code page's link, named for what it does",
        &format!("(document.querySelector(\"{page_link}\") || {{}}).textContent === 'Type the code on a page'"),
        vec![],
        Duration::from_secs(3),
    )
    .await;
    into_new_tab(&mut b, &chat, page_link, (360, 800)).await;
    b.wait_for(
        "the code page: a labelled field, a button that says what it does",
        "(document.querySelector('input[name=code]') || {labels: []}).labels.length === 1 && \
         document.querySelector('input[name=code]').labels[0].textContent === 'Code' && \
         document.querySelector('form button').textContent === 'Check code'",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    b.fill("input[name=code]", &code).await;
    b.click("form button").await;
    b.wait_for(
        "the binding code",
        "document.querySelector('h1 strong') !== null",
        vec![],
        Duration::from_secs(3),
    )
    .await;
    let bind = b
        .js(
            "return document.querySelector('h1 strong').textContent",
            vec![],
        )
        .await;
    b.c.close_window().await.unwrap();
    b.c.switch_to_window(chat).await.unwrap();
    type_in_chat(&b, bind.as_str().unwrap()).await;
    say_in_log(&b, "verified ✓", Duration::from_secs(4)).await;
    notice_then_check_mark(&b, "Thank you, you are now verified.", "verified ✓").await;
    b.assert_no_script_errors().await;
    demo.stop().await;
    b.close().await;
}
