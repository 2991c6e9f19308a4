//! The whole flow in a browser, one command:
//!
//! ```sh
//! cargo run --example demo
//! ```
//! starts, in this one process, the gateway on the memory store with the
//! sample config (http://127.0.0.1:8080, the agent console at `/console`),
//! the example login page (http://127.0.0.1:8090) and a demo web chat
//! (http://127.0.0.1:9000, also the sample `webchat` channel, and the
//! Twilio of the sample `sms` channel, and the customer's wallet, at
//! http://127.0.0.1:9000/wallet) whose scripted bot asks the customer to
//! sign in, to type a code sent to their phone (in the chat, or on the
//! gateway's code page), or to prove it with their wallet and type the
//! code the wallet's answer shows; typing `español` (or `english`)
//! switches the conversation's language, and the bot, the code, the
//! notices, the login page and the gateway's pages follow. Each chat (each
//! browser tab) is a customer of its own (`cust-42`, `cust-43`, …); the
//! admin key printed at start unlocks one in the console. The servers are in
//! `examples/support/` (shared with `login_page.rs` and the browser test).
#[path = "support/mod.rs"]
mod support;

use support::demo::{self, Ports};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "config/chatgate.toml".into());
    let mut config = chatgate::config::load(std::path::Path::new(&path))?;
    // No load balancer to drain: Ctrl-C stops at once.
    config.server.shutdown_drain = std::time::Duration::ZERO;
    let bot_key =
        std::env::var("CHATGATE_DEMO_BOT_KEY").unwrap_or_else(|_| demo::SAMPLE_BOT_KEY.into());
    let gateway = config
        .server
        .listen
        .rsplit(':')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap_or(8080);
    let running = demo::start(
        config,
        Ports {
            gateway,
            login: 8090,
            chat: 9000,
        },
        bot_key,
    )
    .await?;
    println!("chatgate demo: everything runs in this process (Ctrl-C stops it)");
    println!();
    println!("  customer's chat   {}/", running.chat_url);
    println!("  agent console     {}/console", running.gateway_url);
    println!(
        "                    (paste the demo agent key {})",
        demo::SAMPLE_AGENT_KEY
    );
    println!(
        "                    (or the demo admin key {}",
        demo::SAMPLE_ADMIN_KEY
    );
    println!("                    to unlock a customer that wrong codes blocked)");
    println!(
        "  login page        {}/login (opened from the chat's link)",
        running.login_url
    );
    println!(
        "  demo wallet       {}/wallet (opened from the chat's wallet link)",
        running.chat_url
    );
    println!();
    println!("In the chat press \"Sign in\" (then \"Sign in\" on the login page),");
    println!("\"Send me a code\" (then type the code), \"Type the code on a page\"");
    println!("(type it on the linked page, then the code that page shows) or");
    println!("\"Prove it with your wallet\" (open the link, \"Open my wallet\", \"Share\",");
    println!("then type the code it shows); \"Español\" switches the conversation to");
    println!("Spanish. Each chat tab is a customer of its own. Watch the console show ✓.");
    tokio::signal::ctrl_c().await?;
    running.stop().await;
    Ok(())
}
