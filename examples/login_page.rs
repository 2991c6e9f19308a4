//! A tiny external login page, as a company would run beside chatgate
//! (an example: it accepts any password; the page itself is in
//! `examples/support/login.rs`, shared with `cargo run --example demo`).
//!
//! It verifies the login token with a standard JWT library and the team's
//! security key, "logs in" a demo customer, and posts the signed callback
//! back to the gateway (Standard Webhooks).
//!
//! ```sh
//! cargo run --example login_page            # listens on 127.0.0.1:8090
//! ```
//! It also stands in for the sample `webchat` channel on 127.0.0.1:9000 and
//! prints every message the gateway sends into the chat (links, codes,
//! confirmations), so the whole flow can be followed in one terminal.
//! It reads the gateway's sample config (`config/chatgate.toml`, team `acme`)
//! only to learn the key, the issuer and where the gateway is; a real login
//! page would keep the shared key in its own secret store.
use std::sync::Arc;

use axum::Router;
use serde_json::Value;

#[path = "support/login.rs"]
mod login;

/// The sample `webchat` channel posts here; a real chat widget would show it
/// to the customer (after checking the Standard Webhooks signature).
async fn chat_message(axum::Json(m): axum::Json<Value>) -> &'static str {
    println!(
        "[chat {}] {}: {}",
        m["conversation_id"].as_str().unwrap_or("?"),
        m["purpose"].as_str().unwrap_or("?"),
        m["text"].as_str().unwrap_or("")
    );
    "ok"
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "config/chatgate.toml".into());
    let config = chatgate::config::load(std::path::Path::new(&path))?;
    let page = Arc::new(login::LoginPage::from_config(&config, "acme")?);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:8090").await?;
    println!("login page on http://127.0.0.1:8090/login?token=...");
    let chat = Router::new().route("/chatgate/messages", axum::routing::post(chat_message));
    let chat_listener = tokio::net::TcpListener::bind("127.0.0.1:9000").await?;
    println!("webchat stand-in on http://127.0.0.1:9000/chatgate/messages");
    tokio::try_join!(
        axum::serve(listener, login::router(page)),
        axum::serve(chat_listener, chat)
    )?;
    Ok(())
}
