//! `ladder-race`: moves of one delivery ladder at once
//! (docs/api.md#delivery-ladder). The tool is every step's provider
//! (`--listen`: it takes any `POST`, holds it `--hold-ms`, and answers as
//! WhatsApp, Twilio and Telegram's gateway all accept), starts a ladder's
//! OTP for a new interaction of the team whose bot key is `--key`
//! (channel `webchat`, contact `--phone`), then sends `--moves` `POST
//! .../advance` at once with the code's `verify` among them, and
//! `--moves` more after the code's use. It counts the sends it received:
//! at most one for the moves, none after the use, and never more than
//! `--max-sends` (the team's `otp.max_sends`) to the phone in all.
//!
//! The team's files name the tool as each step's provider, e.g.
//! `base_url = "http://127.0.0.1:9100"` in a `whatsapp`, `twilio` or
//! `telegram_gateway` channel on its `otp.ladder` (three steps or more,
//! a long `advance_after`).
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::Uri;
use axum::Json;
use serde_json::{json, Value};

use super::Args;

/// The sends received: (path, the code found in it).
type Sends = Arc<Mutex<Vec<(String, String)>>>;

/// Runs the scenario; `Err` says what went wrong, or which rule broke.
pub async fn run(a: &Args) -> Result<(), String> {
    let sends = Sends::default();
    let listener = tokio::net::TcpListener::bind(a.listen)
        .await
        .map_err(|e| format!("--listen {}: {e}", a.listen))?;
    let hold = Duration::from_millis(a.hold_ms);
    let app = axum::Router::new()
        .fallback(take)
        .with_state((Arc::clone(&sends), hold));
    tokio::spawn(async move { axum::serve(listener, app).await });
    let gw = Gateway::new(a.target, &a.key);
    let id = gw.interaction(&a.phone).await?;
    let (status, c) = gw
        .post(
            &format!("/v1/interactions/{id}/challenges"),
            json!({"method": "otp", "delivery": "ladder"}),
        )
        .await?;
    let cid = c["challenge_id"]
        .as_str()
        .ok_or(format!("the start answered {status}: {c}"))?;
    let code = first_code(&sends).await?;
    let advance = format!("/v1/interactions/{id}/challenges/{cid}/advance");
    let verify = format!("/v1/interactions/{id}/challenges/{cid}/verify");
    let moves = (0..a.moves).map(|_| gw.post(&advance, json!({})));
    let (moved, used) = tokio::join!(
        futures::future::join_all(moves),
        gw.post(&verify, json!({"code": code}))
    );
    println!("verify: {}", used?.0);
    println!("{} moves with the code's use: {}", a.moves, tally(moved));
    let after = (0..a.moves).map(|_| gw.post(&advance, json!({})));
    let after = futures::future::join_all(after).await;
    println!("{} moves after the use: {}", a.moves, tally(after));
    tokio::time::sleep(hold + Duration::from_secs(1)).await;
    let sends = sends.lock().map_err(|_| "poisoned")?.clone();
    for (path, _) in &sends {
        println!("  sent: POST {path}");
    }
    let moved_sends = sends.len().saturating_sub(1);
    println!(
        "sends to {}: {} (the start's and {moved_sends} for the moves); otp.max_sends {}",
        a.phone,
        sends.len(),
        a.max_sends
    );
    if moved_sends > 1 {
        return Err(format!(
            "{moved_sends} sends for moves at once: at most one"
        ));
    }
    if sends.len() > a.max_sends {
        return Err("the destination's send limit was passed".into());
    }
    println!("ok: one send at most for the moves, none after the use, within the limit");
    Ok(())
}

/// Counts answers by status: `200×3 409×7`.
fn tally(answers: Vec<Result<(u16, Value), String>>) -> String {
    let mut by: std::collections::BTreeMap<String, usize> = Default::default();
    for a in answers {
        let k = a.map_or_else(|e| format!("error ({e})"), |(s, _)| s.to_string());
        *by.entry(k).or_default() += 1;
    }
    by.iter()
        .map(|(k, n)| format!("{k}×{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The code of the first send, waited for up to 10 s.
async fn first_code(sends: &Sends) -> Result<String, String> {
    for _ in 0..100 {
        let first = sends.lock().map_err(|_| "poisoned")?.first().cloned();
        if let Some((_, code)) = first {
            return Ok(code);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err("no step's send reached the tool in 10 s: do the team's steps name it?".into())
}

/// Any step's send: recorded, held, answered as every kind accepts.
async fn take(
    State((sends, hold)): State<(Sends, Duration)>,
    uri: Uri,
    body: Bytes,
) -> Json<Value> {
    let code = code_in(&body);
    let n = match sends.lock() {
        Ok(mut s) => {
            s.push((uri.path().to_string(), code));
            s.len()
        }
        Err(_) => 0,
    };
    tokio::time::sleep(hold).await;
    Json(json!({
        "messages": [{"id": format!("wamid.race{n}")}],
        "sid": format!("SMrace{n}"),
        "ok": true,
        "result": {"request_id": format!("race-{n}")},
    }))
}

/// The code in a send: Telegram's `code`, WhatsApp's text (or its
/// template's parameter), Twilio's `Body`.
fn code_in(body: &[u8]) -> String {
    let text = match serde_json::from_slice::<Value>(body) {
        Ok(v) => v["code"]
            .as_str()
            .or(v["text"]["body"].as_str())
            .map(str::to_string)
            .unwrap_or_else(|| v["template"].to_string()),
        Err(_) => url::form_urlencoded::parse(body)
            .find(|(k, _)| k == "Body")
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default(),
    };
    text.split(|c: char| !c.is_ascii_digit())
        .find(|w| (4..=10).contains(&w.len()))
        .unwrap_or_default()
        .to_string()
}

/// The gateway, as the team's bot.
struct Gateway {
    http: reqwest::Client,
    base: String,
    key: String,
}

impl Gateway {
    fn new(target: SocketAddr, key: &str) -> Gateway {
        Gateway {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap_or_default(),
            base: format!("http://{target}"),
            key: key.to_string(),
        }
    }

    async fn post(&self, path: &str, body: Value) -> Result<(u16, Value), String> {
        let res = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.key)
            .json(&body)
            .send()
            .await
            .map_err(|e| format!("POST {path}: {e}"))?;
        let status = res.status().as_u16();
        Ok((status, res.json().await.unwrap_or(Value::Null)))
    }

    /// A new interaction on `webchat` whose contact is `phone`.
    async fn interaction(&self, phone: &str) -> Result<String, String> {
        let conversation = uuid::Uuid::now_v7().to_string();
        let body = json!({"channel": "webchat", "conversation_id": conversation, "contact": {"phone": phone}});
        let (status, v) = self.post("/v1/interactions", body).await?;
        v["id"]
            .as_str()
            .map(str::to_string)
            .ok_or(format!("the interaction's creation answered {status}: {v}"))
    }
}
