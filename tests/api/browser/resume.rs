//! The console's event stream survives a broken connection: it reconnects
//! after a backoff with `Last-Event-ID` and so shows what happened while it
//! was cut off (without resuming, those events would be lost: the page does
//! not reload the list on reconnect).
use std::time::Duration;

use serde_json::json;

use super::driver::Browser;
use super::proxy::Proxy;
use super::{open_console, wait_status, ROW, TWO_S};
use crate::helpers::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_resumes_the_event_stream_with_last_event_id_after_a_cut() {
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let Some(b) = Browser::start(1280, 900).await else {
        return;
    };
    let proxy = Proxy::start(app.base.trim_start_matches("http://").to_string()).await;
    open_console(&b, &proxy.base, &app.keys.agent).await;
    // One event seen, so the page has an id to resume after.
    let seen = app.new_interaction().await;
    wait_status(&b, &seen, "unauthenticated").await;

    proxy.cut();
    b.wait_for(
        "the page notices the cut",
        "document.body.dataset.stream === 'retrying'",
        vec![],
        TWO_S,
    )
    .await;
    let missed = app.new_interaction().await;
    app.authenticate(&missed, "cust-9").await;
    app.authenticate(&seen, "cust-10").await;
    proxy.restore();

    // Backoff 0.5 s, 1 s, 2 s, …: back within a few seconds, then caught up.
    b.wait_for(
        "the stream is open again",
        "document.body.dataset.stream === 'open'",
        vec![],
        Duration::from_secs(6),
    )
    .await;
    for id in [&missed, &seen] {
        b.wait_for(
            "the missed events are shown",
            &format!("{ROW} && {ROW}.dataset.status === 'authenticated'"),
            vec![json!(id)],
            TWO_S,
        )
        .await;
    }
    b.assert_no_script_errors().await;
    b.close().await;
}
