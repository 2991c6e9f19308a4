//! What the OpenID Foundation's verifier conformance tests ask of the
//! response endpoint (docs/wallet.md#running-the-openid-foundations-conformance-tests):
//! with `[wallet] invalid_answer = "error"` a presentation that fails is
//! answered 400 `{"error": "invalid_request"}` with no `redirect_uri`,
//! failed and counted as with the default `"redirect"`; a Key Binding JWT
//! whose `iat` is more than 60 s ahead fails either way. The wallet is
//! written here, as in `tests/api/wallet.rs`.
use serde_json::{json, Value};

use crate::helpers::*;
use crate::wallet::*;

macro_rules! conformance_test {
    ($name:ident, $extra:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some((app, a)) = spawn_wallet(Backend::Memory, $extra).await {
                    ($body)(app, a).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some((app, a)) = spawn_wallet(Backend::Redis, $extra).await {
                    ($body)(app, a).await;
                }
            }
        }
    };
}

/// `chatgate_wallet_presentations_total` of SD-JWT VCs with `result`: 0
/// before the first.
async fn presentations(app: &TestApp, result: &str) -> f64 {
    let res = app
        .request(reqwest::Method::GET, "/metrics", None)
        .send()
        .await;
    let text = res.unwrap().text().await.unwrap();
    let series =
        format!("chatgate_wallet_presentations_total{{format=\"dc+sd-jwt\",result=\"{result}\"}} ");
    let line = text.lines().find_map(|l| l.strip_prefix(series.as_str()));
    line.map_or(0.0, |n| n.trim().parse().unwrap())
}

/// A fresh challenge for Ada (`expected`) answered by direct_post with the
/// fixture credential `case` bound at `iat`: the challenge id and the
/// answer.
async fn answered(
    app: &TestApp,
    a: &Access,
    id: &str,
    (case, expected, iat): (&str, Value, i64),
) -> (String, reqwest::Response) {
    let (cid, link) = start(app, id, expected).await;
    let asked = fetch_request(app, a, &link).await;
    let res = respond(app, &answer_for(&asked, &present(case, &asked, None, iat))).await;
    (cid, res)
}

conformance_test!(
    with_invalid_answer_error_a_failed_presentation_is_400_invalid_request_and_still_counted,
    "invalid_answer = \"error\"",
    |app: TestApp, a: Access| async move {
        let now = app.now().unix_seconds();
        let id = interaction(&app, "cust-conf").await;
        let failing = [
            ("es256", ada(), now + 61, "invalid_presentation"),
            (
                "es256",
                json!({"family_name": "Babbage"}),
                now,
                "claims_mismatch",
            ),
            ("untrusted_issuer", ada(), now, "untrusted_issuer"),
        ];
        let mut counted = 0;
        for (case, expected, iat, reason) in failing {
            let before = presentations(&app, reason).await;
            let (cid, res) = answered(&app, &a, &id, (case, expected, iat)).await;
            assert_eq!(res.status(), 400, "{reason}");
            assert_eq!(
                res.headers()["content-type"],
                "application/json",
                "{reason}"
            );
            assert!(res.headers()["cache-control"]
                .to_str()
                .unwrap()
                .contains("no-store"));
            let body: Value = res.json().await.unwrap();
            assert_eq!(body, json!({"error": "invalid_request"}), "{reason}");
            counted += 1;
            let r = read(&app, &id, &cid, &app.keys.bot).await;
            assert_eq!(r["state"], "failed", "{reason}: {r}");
            assert_eq!(r["wallet"]["result"], reason, "{r}");
            assert_eq!(failures(&app, "cust-conf").await, counted, "{reason}");
            assert!(
                presentations(&app, reason).await >= before + 1.0,
                "{reason}"
            );
        }
        // A Key Binding JWT exactly 60 s ahead, and a good answer, is
        // still 200 with the redirect that shows the binding code.
        let (cid, res) = answered(&app, &a, &id, ("es256", ada(), now + 60)).await;
        bound(&app, res, &id, &cid).await;
        assert_eq!(app.get(&id).await["status"], "authenticated");
    }
);

conformance_test!(
    by_default_a_key_binding_61_seconds_ahead_fails_with_a_redirect_that_says_so,
    "",
    |app: TestApp, a: Access| async move {
        let now = app.now().unix_seconds();
        let id = interaction(&app, "cust-ahead").await;
        let (cid, res) = answered(&app, &a, &id, ("es256", ada(), now + 61)).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        let redirect = body["redirect_uri"].as_str().expect("a redirect_uri");
        let r = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(r["state"], "failed", "{r}");
        assert_eq!(r["wallet"]["result"], "invalid_presentation");
        assert_eq!(failures(&app, "cust-ahead").await, 1);
        let done = open(&app, redirect.trim_start_matches("http://gateway.test")).await;
        assert_eq!(done.status, 200);
        assert!(
            done.body.contains("This did not confirm it is you"),
            "{}",
            done.body
        );
    }
);
