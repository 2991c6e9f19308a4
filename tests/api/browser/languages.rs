//! Languages in a browser (docs/api.md#languages): the console shows each
//! conversation's language, and the expired-link page in Arabic reads
//! right to left on a 360 px phone.
use serde_json::json;

use super::driver::Browser;
use super::{open_console, ROW, TWO_S};
use crate::helpers::*;

fn arabic() -> Setup {
    Setup {
        defaults:
            "[defaults.locale]\nsupported = [\"en\", \"es\", \"ar\"]\n\
                   [defaults.translations.ar]\n\
                   page_link_expired = \"انتهت صلاحية هذا الرابط\\nاطلب رابطًا جديدًا في المحادثة.\"\n"
                .into(),
        ..Setup::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_each_conversation_s_language() {
    let Some(app) = spawn_with(Backend::Memory, arabic()).await else {
        return;
    };
    let Some(b) = Browser::start(1000, 860).await else {
        return;
    };
    let body = json!({"channel": "webchat", "conversation_id": "lang-1", "locale": "es-MX"});
    let id = app.create(body).await["id"].as_str().unwrap().to_string();
    open_console(&b, &app.base, &app.keys.agent).await;
    let locale = format!("{ROW} && {ROW}.querySelector('.locale').textContent === 'es (es-MX)'");
    b.wait_for("the language is shown", &locale, vec![json!(id)], TWO_S)
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_expired_link_page_in_arabic_reads_right_to_left_on_a_phone() {
    let Some(app) = spawn_with(Backend::Memory, arabic()).await else {
        return;
    };
    let Some(b) = Browser::start(360, 740).await else {
        return;
    };
    let id = app.new_interaction().await;
    let link = app.issue_link(&id, json!({"locale": "ar"})).await;
    app.advance(601);
    let short = link["short_url"].as_str().unwrap();
    let path = short.trim_start_matches("http://gateway.test");
    b.c.goto(&app.url(path)).await.unwrap();
    let rtl = "document.documentElement.lang === 'ar' && document.dir === 'rtl' && \
               getComputedStyle(document.querySelector('h1')).direction === 'rtl' && \
               document.documentElement.scrollWidth <= 360";
    b.wait_for("a right-to-left page that fits", rtl, vec![], TWO_S)
        .await;
    b.screenshot("link-expired-ar-360.png").await;
}
