//! The ceilings every figure is divided by, built with the gateway's own
//! stack in this process: axum answering a fixed 80-byte JSON, and axum
//! answering after one Redis read through the gateway's own Redis client
//! (`RedisStore::get`: the same connection manager, timeouts and decoding).
use std::net::SocketAddr;
use std::sync::Arc;

use axum::http::header::CONTENT_TYPE;
use axum::routing::get;
use axum::Router;
use chatgate::store::redis::RedisStore;
use chatgate::store::{Commit, Op, Store};

/// Exactly 80 bytes.
pub const BODY: &str =
    r#"{"id":"0193c0de-0000-7000-8000-000000000000","status":"authenticated","ok":true}"#;

async fn serve(router: Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move { axum::serve(listener, router).await });
    addr
}

/// Bare axum: `GET /` answers [`BODY`].
pub async fn bare() -> SocketAddr {
    assert_eq!(BODY.len(), 80);
    serve(Router::new().route(
        "/",
        get(|| async { ([(CONTENT_TYPE, "application/json")], BODY) }),
    ))
    .await
}

/// Axum plus one Redis GET: `GET /` reads one 80-byte record under
/// `prefix` and answers it.
pub async fn redis_get(url: &str, prefix: &str) -> SocketAddr {
    let store = Arc::new(RedisStore::connect(url, prefix).await.expect("redis"));
    let key = "ceiling".to_string();
    let put = Op::Put {
        key: key.clone(),
        expected: 0,
        version: chatgate::store::fresh_version(),
        value: BODY.into(),
        ttl: Some(std::time::Duration::from_secs(3600)),
        companion: None,
    };
    assert_eq!(store.commit(vec![put]).await.ok(), Some(Commit::Applied));
    let keys = Arc::new(vec![key]);
    let router = Router::new().route(
        "/",
        get(move || {
            let (store, keys) = (store.clone(), keys.clone());
            async move {
                let v = store
                    .get(&keys)
                    .await
                    .ok()
                    .and_then(|mut v| v.pop().flatten());
                let body = v.map(|v| v.value).unwrap_or_default();
                ([(CONTENT_TYPE, "application/json")], body)
            }
        }),
    );
    serve(router).await
}
