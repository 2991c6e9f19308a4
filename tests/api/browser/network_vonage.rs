//! Silent network authentication with Vonage
//! (docs/network-authentication.md#the-vonage-landing) in a real browser,
//! on a 360 px phone: the confirm page's button starts Vonage's
//! verification and follows its `check_url`; Vonage (the fake of
//! `network_vonage_fake.rs`) sends the phone back to `/n/landing` with
//! the result in the URL's fragment, which no server sees; the landing
//! page's own script posts it, the gateway checks the code with Vonage,
//! and the page shows the code to type into the chat. Nothing is loaded
//! from elsewhere and no script error (a blocked script or form
//! included) is raised.
use std::time::Duration;

use super::driver::Browser;
use super::TWO_S;
use crate::helpers::*;
use crate::network_vonage_fake::FakeVonage;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_phone_comes_back_from_vonage_through_the_landing_page() {
    let vonage = FakeVonage::start().await;
    let setup = Setup {
        team_extra: vonage.team_section(""),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let Some(b) = Browser::start(360, 740).await else {
        return;
    };
    // The gateway listens elsewhere than its public URL.
    vonage.land_at(&app.url("/n/landing"));
    let id = crate::network::interaction(&app).await;
    let (cid, link) = crate::network::start(&app, &id).await;
    b.c.goto(&app.url(&link)).await.unwrap();
    b.wait_for(
        "the confirm page",
        "document.querySelector('form button') !== null",
        vec![],
        TWO_S,
    )
    .await;
    b.click("form button").await;
    let shown = "location.pathname === '/n/landing' && location.hash === '' && \
                 document.querySelector('h1 strong') !== null";
    b.wait_for("the page's code", shown, vec![], Duration::from_secs(10))
        .await;
    let code = b
        .js(
            "return document.querySelector('h1 strong').textContent",
            vec![],
        )
        .await;
    let code = code.as_str().unwrap().to_string();
    assert!(
        code.len() == 6 && code.bytes().all(|c| c.is_ascii_digit()),
        "{code}"
    );
    assert_eq!(vonage.started().len(), 1);
    assert_eq!(vonage.checks(), 1);
    assert_eq!(vonage.refused(), Vec::<String>::new());
    let res = app.verify_code(&id, &cid, &code).await;
    assert_eq!(res.status(), 200);
    assert_eq!(app.get(&id).await["method"], "network");
    let urls = b.request_urls().await;
    let fetched: Vec<&String> = urls.iter().filter(|u| u.starts_with("http")).collect();
    assert!(
        fetched
            .iter()
            .all(|u| u.starts_with(&app.base) || u.starts_with(&vonage.base)),
        "nothing from elsewhere: {fetched:?}"
    );
    b.assert_no_script_errors().await;
    b.close().await;
}
