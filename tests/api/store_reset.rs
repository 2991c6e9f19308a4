//! A store that comes back empty (docs/operations.md#when-redis-comes-back-empty):
//! the one-time ids that stopped replays are gone, so what was issued
//! before the loss is refused for `assertion_max_age`, and what is issued
//! after is accepted.
use std::time::Duration;

use serde_json::{json, Value};

use crate::helpers::*;
use crate::redis_support::TestPrefix;

async fn post_assertion(app: &TestApp, id: &str, token: &str) -> reqwest::Response {
    app.post_json(
        &format!("/v1/interactions/{id}/assertion"),
        Some(&app.keys.bot),
        &json!({"assertion": token}),
    )
    .await
}

/// Waits (real time, at most the 5 s docs/operations.md allows) until both
/// teams' reset markers are in the store.
async fn markers_written(keys: &TestPrefix) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    loop {
        let markers = keys
            .keys()
            .into_iter()
            .filter(|k| k.ends_with("}:ep") && !k.contains("{~"))
            .count();
        if markers == 2 || tokio::time::Instant::now() > deadline {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A gateway on Redis whose teams' markers are in the store, and its keys.
async fn gateway_with_markers() -> Option<(TestApp, TestPrefix)> {
    let app = spawn_app(Backend::Redis).await?;
    let keys = TestPrefix::for_prefix(&app.key_prefix);
    markers_written(&keys).await;
    Some((app, keys))
}

/// Redis loses everything of this gateway, half a second later.
fn empty_the_store(app: &TestApp, keys: &TestPrefix) {
    app.clock.advance(Duration::from_millis(500));
    keys.cleanup();
}

/// The answer refuses a token as issued before the reset.
async fn assert_issued_before_reset(res: reqwest::Response) {
    let problem = assert_problem(res, 401, "invalid_token").await;
    assert_eq!(problem["detail"], "issued before the store was reset");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_was_issued_before_the_store_was_emptied_is_refused() {
    let Some((app, keys)) = gateway_with_markers().await else {
        return;
    };

    // Before: an assertion used once (a replay is refused by its jti),
    // and a login link nobody used yet.
    let first = app.new_interaction().await;
    let captured = app.assertion(app.assertion_claims("cust-42"));
    assert_eq!(post_assertion(&app, &first, &captured).await.status(), 200);
    let waiting = app.new_interaction().await;
    let link = app.issue_link(&waiting, json!({})).await;

    empty_the_store(&app, &keys);
    markers_written(&keys).await;
    tokio::time::sleep(Duration::from_millis(200)).await;

    // The replay of the captured assertion, and the old link, are refused.
    let again = app.new_interaction().await;
    assert_issued_before_reset(post_assertion(&app, &again, &captured).await).await;
    assert_issued_before_reset(app.succeed(&link, "cust-42").await).await;
    assert_eq!(app.get(&again).await["status"], "unauthenticated");

    // What is issued after the reset is accepted.
    app.advance(1);
    let fresh = app.assertion(app.assertion_claims("cust-42"));
    let res = post_assertion(&app, &again, &fresh).await;
    assert_eq!(res.status(), 200);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["authenticated"], true);
    let other = app.new_interaction().await;
    let link = app.issue_link(&other, json!({})).await;
    assert_eq!(app.succeed(&link, "cust-7").await.status(), 200);

    // After assertion_max_age (10 minutes) nothing issued before the reset
    // is valid any more: the captured assertion has expired.
    app.advance(601);
    let late = app.new_interaction().await;
    let res = post_assertion(&app, &late, &captured).await;
    assert_problem(res, 410, "token_expired").await;
}

both_stores!(
    a_store_that_keeps_its_data_refuses_nothing,
    |app: TestApp| async move {
        let id = app.new_interaction().await;
        let token = app.assertion(app.assertion_claims("cust-42"));
        let link = app
            .issue_link(&app.new_interaction().await, json!({}))
            .await;
        // Several checks of the store's marker pass.
        tokio::time::sleep(Duration::from_millis(2500)).await;
        app.advance(1);
        assert_eq!(post_assertion(&app, &id, &token).await.status(), 200);
        assert_eq!(app.succeed(&link, "cust-7").await.status(), 200);
    }
);

/// A captured assertion, or a login link, used before the store was
/// emptied, presented again right after it was emptied: the request that
/// first finds the store empty notices it, so it is refused too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_first_request_after_the_store_was_emptied_refuses_a_replay() {
    let Some((app, keys)) = gateway_with_markers().await else {
        return;
    };
    let first = app.new_interaction().await;
    let captured = app.assertion(app.assertion_claims("cust-42"));
    assert_eq!(post_assertion(&app, &first, &captured).await.status(), 200);

    // Emptied, and the replay at once: no marker check ran in between.
    empty_the_store(&app, &keys);
    let again = app.new_interaction().await;
    assert_issued_before_reset(post_assertion(&app, &again, &captured).await).await;
    assert_eq!(app.get(&again).await["status"], "unauthenticated");
}

/// The same for a login link issued before the store was emptied: its
/// first use afterwards is refused as issued before the reset.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_login_link_used_first_after_the_store_was_emptied_is_refused() {
    let Some((app, keys)) = gateway_with_markers().await else {
        return;
    };
    let waiting = app.new_interaction().await;
    let link = app.issue_link(&waiting, json!({})).await;

    empty_the_store(&app, &keys);
    assert_issued_before_reset(app.succeed(&link, "cust-42").await).await;
}
