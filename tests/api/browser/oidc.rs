//! Hosted login in a real browser: the chat's link, the team's identity
//! provider (the in-process fake, whose user signs in at once), the page
//! saying so, and the check mark on the agent console
//! (docs/api.md#hosted-login-openid-connect).
use serde_json::json;
use tokio::net::TcpListener;

use super::driver::Browser;
use super::{open_console, wait_status};
use crate::helpers::*;
use crate::oidc_provider::FakeIdp;

/// A loopback address that forwards to the gateway once it is known: the
/// gateway's `public_url` must be set before it starts on port 0.
pub(super) async fn forwarder() -> (String, tokio::sync::oneshot::Sender<String>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let (tx, rx) = tokio::sync::oneshot::channel::<String>();
    tokio::spawn(async move {
        let target = rx.await.unwrap();
        while let Ok((mut inbound, _)) = listener.accept().await {
            let target = target.clone();
            tokio::spawn(async move {
                if let Ok(mut out) = tokio::net::TcpStream::connect(&target).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut out).await;
                }
            });
        }
    });
    (base, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_customer_signs_in_at_the_provider_and_the_console_shows_the_check_mark() {
    let Some(b) = Browser::start(390, 844).await else {
        return;
    };
    let (public, target) = forwarder().await;
    let idp = FakeIdp::start_for(&format!("{public}/oidc/callback/acme")).await;
    let setup = Setup {
        public_url: Some(public.clone()),
        team_extra: idp.team_section(""),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    target
        .send(app.base.trim_start_matches("http://").to_string())
        .unwrap();
    idp.use_clock(app.clock.clone());

    let conversation = format!("oidc-{}", uuid::Uuid::now_v7().simple());
    let v = app
        .create(json!({"channel": "webchat", "conversation_id": conversation, "customer_ref": "cust-42"}))
        .await;
    let id = v["id"].as_str().unwrap().to_string();
    let link = app
        .issue_link(&id, json!({"provider": "oidc", "deliver": true}))
        .await;
    // The customer taps the link the chat received.
    let sent = app
        .chat_messages()
        .await
        .into_iter()
        .find(|m| m["purpose"] == "login_link")
        .expect("the link went into the chat");
    let short = link["short_url"].as_str().unwrap();
    assert!(sent["text"].as_str().unwrap().contains(short));
    b.c.goto(short).await.unwrap();
    b.wait_for(
        "the page says signed in",
        "document.querySelector('h1') && document.querySelector('h1').textContent.includes('signed in')",
        vec![],
        std::time::Duration::from_secs(5),
    )
    .await;
    let url = b.c.current_url().await.unwrap();
    assert!(
        url.as_str().starts_with(&format!("{public}/oidc/callback")),
        "{url}"
    );
    b.screenshot("oidc-signed-in.png").await;
    // The agent sees the check mark.
    open_console(&b, &public, &app.keys.agent).await;
    wait_status(&b, &id, "authenticated").await;
    b.assert_no_script_errors().await;
    b.close().await;
    assert_eq!(app.get(&id).await["method"], "oidc");
}
