//! The console's sign-in at the workforce provider in a real browser
//! (docs/console-sign-in.md): the "Sign in to acme" link of
//! `/console/acme`, the fake
//! provider (its user signs in at once), back to the console working from
//! the session cookie, and a reveal whose event names the person. Prints
//! what the browser sent and kept (values masked).
use std::time::Duration;

use serde_json::json;

use super::driver::Browser;
use super::oidc::forwarder;
use super::ROW;
use crate::helpers::*;
use crate::oidc_provider::{FakeIdp, CLIENT_ID, CLIENT_SECRET};

/// The first and last 3 characters of a secret value.
fn masked(v: &str) -> String {
    if v.len() <= 8 {
        return "…".into();
    }
    format!("{}…{} ({} chars)", &v[..3], &v[v.len() - 3..], v.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_signs_in_at_the_workforce_provider_and_reveals_as_herself() {
    let Some(b) = Browser::start(1280, 900).await else {
        return;
    };
    let (public, target) = forwarder().await;
    let idp = FakeIdp::start_for(&format!("{public}/console/acme/callback")).await;
    let setup = Setup {
        public_url: Some(public.clone()),
        team_extra: format!(
            "[console.oidc]\nissuer = \"{}\"\nclient_id = \"{CLIENT_ID}\"\nclient_secret = \"{CLIENT_SECRET}\"\nagent_values = [\"agents\"]\n[settings.otp]\nshow_to_agents = true\n",
            idp.issuer
        ),
        ..Setup::default()
    };
    let mut app = spawn_with(Backend::Memory, setup).await.unwrap();
    target
        .send(app.base.trim_start_matches("http://").to_string())
        .unwrap();
    idp.use_clock(app.clock.clone());
    idp.sign_in_as("jane-0001");
    idp.id_token_claims(json!({"groups": ["agents"], "preferred_username": "jane.doe"}));
    let id = app.new_interaction().await;
    let _cid = app.agent_challenge(&id).await;

    b.c.goto(&format!("{public}/console/acme")).await.unwrap();
    b.click("a.sign-in[data-team=acme]").await;
    b.wait_for(
        "the console works from the session",
        "document.body.dataset.stream === 'open' && !document.getElementById('who').hidden",
        vec![],
        Duration::from_secs(5),
    )
    .await;
    let url = b.c.current_url().await.unwrap();
    assert_eq!(url.as_str(), format!("{public}/console"));
    let who = b
        .js("return document.getElementById('who').textContent", vec![])
        .await;
    assert!(who.as_str().unwrap().contains("jane.doe"), "{who}");

    // What the browser sent the provider, and the cookie it keeps.
    let asked = idp.last_authorize();
    let mut shown: Vec<String> = asked
        .iter()
        .map(|(k, v)| match k.as_str() {
            "state" | "nonce" | "code_challenge" => format!("{k}={}", masked(v)),
            _ => format!("{k}={v}"),
        })
        .collect();
    shown.sort();
    eprintln!("authorization request: {}", shown.join("&"));
    assert_eq!(asked["code_challenge_method"], "S256");
    let cookies = b.c.get_all_cookies().await.unwrap();
    let session = cookies
        .iter()
        .find(|c| c.name() == "chatgate-console")
        .expect("the session cookie");
    eprintln!(
        "session cookie: {}={}; Path={:?}; HttpOnly={:?}; SameSite={:?}; Secure={:?}; Domain={:?}",
        session.name(),
        masked(session.value()),
        session.path(),
        session.http_only(),
        session.same_site(),
        session.secure(),
        session.domain(),
    );
    assert_eq!(session.http_only(), Some(true));
    assert_eq!(session.path(), Some("/"));
    assert_eq!(format!("{:?}", session.same_site()), "Some(Strict)");
    for c in &cookies {
        eprintln!("browser cookie: {}={}", c.name(), masked(c.value()));
    }

    // Reveal from the row, as the person.
    let row = format!("[data-interaction-id=\"{id}\"] .reveal");
    b.wait_for(
        "the row offers the reveal",
        &format!("{ROW} && !{ROW}.querySelector('.reveal').hidden"),
        vec![json!(id)],
        Duration::from_secs(5),
    )
    .await;
    b.click(&row).await;
    b.wait_for(
        "the code is shown",
        &format!("{ROW}.querySelector('.note .code')"),
        vec![json!(id)],
        Duration::from_secs(5),
    )
    .await;
    let e = app
        .next_event("challenge.code_revealed", Duration::from_secs(2))
        .await
        .unwrap();
    assert_eq!(
        event_data(&e)["actor"],
        json!({"type": "person", "sub": "jane-0001", "name": "jane.doe"})
    );
    b.screenshot("console-signed-in.png").await;
    b.assert_no_script_errors().await;
    b.close().await;
}
