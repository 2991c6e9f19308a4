//! The operations endpoints from the outside (docs/operations.md): `/healthz`,
//! `/readyz` and `/metrics` answer without a key.
use reqwest::Method;

use crate::helpers::*;

#[tokio::test]
async fn operations_endpoints() {
    let app = spawn_app(Backend::Memory).await.unwrap();
    let health = app
        .request(Method::GET, "/healthz", None)
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(
        health.headers()["content-type"].to_str().unwrap(),
        "application/json"
    );
    let body: serde_json::Value = health.json().await.unwrap();
    assert_eq!(body, serde_json::json!({"status": "ok"}));
    assert_eq!(
        app.request(Method::GET, "/readyz", None)
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    app.new_interaction().await;
    let metrics = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("chatgate_http_requests_total"),
        "{metrics}"
    );
    assert!(metrics.contains("chatgate_interactions_created_total"));
    for line in metrics
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
    {
        assert!(
            line.starts_with("chatgate_") || line.starts_with("process_"),
            "{line}"
        );
    }
    let doc: serde_json::Value = app.get_json("/openapi.json", None).await;
    assert!(doc["openapi"].as_str().unwrap().starts_with("3.1"));
    for path in [
        "/v1/interactions",
        "/v1/interactions/{id}",
        "/v1/interactions/{id}/login-links",
        "/v1/login/callback",
        "/l/{code}",
        "/v1/customers/logout",
        "/v1/interactions/{id}/assertion",
        "/v1/interactions/{id}/activity",
        "/v1/interactions/{id}/logout",
        "/healthz",
        "/readyz",
        "/metrics",
    ] {
        assert!(doc["paths"].get(path).is_some(), "openapi lacks {path}");
    }
}
