//! Hosted login against hostile identity providers and browsers
//! (docs/api.md#hosted-login-openid-connect,
//! docs/operations.md#teams-that-bring-their-own-identity-provider-the-threat-model):
//! the mix-up across teams, provider answers over 1 MiB, endpoints over
//! plain `http`, a flood of states on one link, several logins in one
//! browser, and an `email` claim that is not verified.
use std::collections::BTreeMap;

use reqwest::Method;
use serde_json::{json, Value};

use crate::helpers::*;
use crate::oidc::{finish, login, oidc_link, spawn_idp, start, Started};
use crate::oidc_provider::{FakeIdp, Misbehave, REDIRECT_URI};

/// The query parameters of `url`.
fn query(url: &str) -> BTreeMap<String, String> {
    url::Url::parse(url)
        .unwrap()
        .query_pairs()
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// `url` without its query's `state`.
fn without_state(url: &str) -> String {
    let mut u = url::Url::parse(url).unwrap();
    let kept: Vec<(String, String)> = u
        .query_pairs()
        .filter(|(k, _)| k != "state")
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect();
    u.query_pairs_mut().clear().extend_pairs(kept);
    u.to_string()
}

/// GET `url` as a browser with `cookie`, following redirects across the
/// providers and the gateway (`http://gateway.test` is the app); the last
/// answer's status, body and `Set-Cookie` headers.
async fn browse(app: &TestApp, url: &str, cookie: &str) -> (u16, String, Vec<String>) {
    let mut url = url.replace("http://gateway.test", &app.base);
    for _ in 0..5 {
        let res = app
            .client
            .get(&url)
            .header("accept", "text/html")
            .header("cookie", cookie)
            .send()
            .await
            .unwrap();
        match res.headers().get("location") {
            Some(next) if res.status().is_redirection() => {
                url = next
                    .to_str()
                    .unwrap()
                    .replace("http://gateway.test", &app.base);
            }
            _ => {
                let status = res.status().as_u16();
                let cookies = set_cookies(&res);
                return (status, res.text().await.unwrap(), cookies);
            }
        }
    }
    panic!("too many redirects from {url}");
}

fn set_cookies(res: &reqwest::Response) -> Vec<String> {
    res.headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_string())
        .collect()
}

/// A new webchat interaction of `team` (by its bot key) and an `oidc` link
/// for it: (id, link path).
async fn team_link(app: &TestApp, bot: &str) -> (String, String) {
    let res = app
        .post_json(
            "/v1/interactions",
            Some(bot),
            &json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()}),
        )
        .await;
    assert!(res.status().is_success());
    let id = res.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/login-links"),
            Some(bot),
            &json!({"provider": "oidc"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let link: Value = res.json().await.unwrap();
    let path = link["short_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://gateway.test")
        .to_string();
    (id, path)
}

/// The attacker runs globex's provider and has a chat at acme, whose
/// provider does not send RFC 9207's `iss` (as Entra ID does not). He
/// starts a login in his acme chat and keeps its authorization request;
/// he sends the victim a globex link, whose provider (his) forwards the
/// victim's browser to acme's real provider with *that* request and
/// globex's state. The victim signs in there; acme's provider sends the
/// code to acme's callback. The attacker replays every code his provider
/// got under his own acme state. His chat stays unauthenticated, the
/// victim sees a 400 page, and no token endpoint ever sees the code.
async fn mix_up(backend: Backend) {
    let acme_idp = FakeIdp::start_for(REDIRECT_URI).await;
    acme_idp.misbehave(Misbehave::NoIss);
    acme_idp.sign_in_as("cust-victim");
    let hostile = FakeIdp::start_for("http://gateway.test/oidc/callback/globex").await;
    let setup = Setup {
        team_extra: acme_idp.team_section(""),
        globex_extra: hostile.team_section(""),
        ..Setup::default()
    };
    let Some(app) = spawn_with(backend, setup).await else {
        return;
    };
    acme_idp.use_clock(app.clock.clone());
    hostile.use_clock(app.clock.clone());
    // The attacker's own login in his acme chat: he keeps the request.
    let (attackers_chat, link) = team_link(&app, &app.keys.bot).await;
    let res = app
        .request(Method::GET, &link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let attackers_cookie = set_cookies(&res)[0].split(';').next().unwrap().to_string();
    let request = res.headers()["location"].to_str().unwrap().to_string();
    let attackers = query(&request);
    // acme registered, at its provider, the redirect URI the gateway uses.
    acme_idp.register(&attackers["redirect_uri"]);
    hostile.forward_authorize_to(&without_state(&request));
    // The victim opens a globex link (the attacker's team) in her browser.
    let (_, globex_link) = team_link(&app, &app.keys.globex_bot).await;
    let res = app
        .request(Method::GET, &globex_link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302);
    let victims_cookie = set_cookies(&res)[0].split(';').next().unwrap().to_string();
    let to_hostile = res.headers()["location"].to_str().unwrap().to_string();
    let (victims_status, victims_page, _) = browse(&app, &to_hostile, &victims_cookie).await;
    // The attacker replays whatever code reached his provider, under his
    // own acme state, in his own browser.
    let stolen = hostile.codes_received();
    for code in &stolen {
        let mut replay = url::Url::parse(&attackers["redirect_uri"]).unwrap();
        replay
            .query_pairs_mut()
            .append_pair("code", code)
            .append_pair("state", &attackers["state"]);
        browse(&app, replay.as_str(), &attackers_cookie).await;
    }
    let v = app.get(&attackers_chat).await;
    assert_ne!(
        v["status"], "authenticated",
        "the attacker's chat is authenticated as {}",
        v["customer"]
    );
    assert!(stolen.is_empty(), "the hostile provider got {stolen:?}");
    assert_eq!(acme_idp.token_calls(), 0, "the code went nowhere");
    assert_eq!(victims_status, 400, "{victims_page}");
    assert!(
        victims_page.contains("could not be finished"),
        "{victims_page}"
    );
    assert_eq!(attackers["redirect_uri"], REDIRECT_URI);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_mix_up_across_teams_is_refused_and_the_code_goes_nowhere_memory() {
    mix_up(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_provider_mix_up_across_teams_is_refused_and_the_code_goes_nowhere_redis() {
    mix_up(Backend::Redis).await;
}

/// A state answered at another team's callback is 400 there, and stays
/// good for its own team's.
#[tokio::test]
async fn a_state_is_refused_at_another_teams_callback() {
    let Some((app, idp)) = spawn_idp(Backend::Memory, "", "").await else {
        return;
    };
    let (id, link) = oidc_link(&app, json!({})).await;
    let s = start(&app, &link).await;
    assert!(
        s.callback.contains("/oidc/callback/acme?"),
        "{}",
        s.callback
    );
    let foreign = Started {
        cookie: s.cookie.clone(),
        callback: s
            .callback
            .replace("/oidc/callback/acme?", "/oidc/callback/globex?"),
    };
    let (status, body, cookies) = browse(&app, &foreign.callback, &s.cookie).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(cookies, Vec::<String>::new(), "cookies left alone");
    assert_eq!(idp.token_calls(), 0);
    let page = finish(&app, &s, Some(&s.cookie)).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(app.get(&id).await["method"], "oidc");
}

/// The one callback address of earlier versions answers a page saying it
/// is no longer used; the code goes nowhere and the state stays good.
#[tokio::test]
async fn the_retired_shared_callback_is_a_404_page() {
    let Some((app, idp)) = spawn_idp(Backend::Memory, "", "").await else {
        return;
    };
    let (_, link) = oidc_link(&app, json!({})).await;
    let s = start(&app, &link).await;
    let retired = Started {
        cookie: s.cookie.clone(),
        callback: s
            .callback
            .replace("/oidc/callback/acme?", "/oidc/callback?"),
    };
    let page = finish(&app, &retired, Some(&s.cookie)).await;
    assert_eq!(page.status, 404, "{}", page.body);
    assert!(page.body.contains("no longer used"), "{}", page.body);
    assert_eq!(page.cache_control, "no-store");
    assert_eq!(idp.token_calls(), 0);
    assert_eq!(finish(&app, &s, Some(&s.cookie)).await.status, 200);
}

/// A provider that misbehaves before anything is cached: the customer's
/// page is 502; nothing is used up. Answers the app, the provider and the
/// link's path.
async fn refused_cold(misbehave: Misbehave) -> (TestApp, FakeIdp, String) {
    let idp = FakeIdp::start().await;
    idp.misbehave(misbehave);
    let setup = Setup {
        team_extra: idp.team_section(""),
        ..Setup::default()
    };
    let app = spawn_with(Backend::Memory, setup).await.unwrap();
    idp.use_clock(app.clock.clone());
    let (id, link) = oidc_link(&app, json!({})).await;
    let res = app
        .request(Method::GET, &link, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let page = if res.status() == 302 {
        login(&app, &link).await
    } else {
        crate::oidc::Page {
            status: res.status().as_u16(),
            cache_control: res.headers()["cache-control"].to_str().unwrap().into(),
            body: res.text().await.unwrap(),
        }
    };
    assert_eq!(page.status, 502, "{misbehave:?}: {}", page.body);
    assert!(
        page.body.contains("Please try again in a minute"),
        "{}",
        page.body
    );
    assert_eq!(page.cache_control, "no-store");
    assert_eq!(app.get(&id).await["status"], "pending", "nothing used up");
    (app, idp, link)
}

/// An answer over 1 MiB is a failing provider; once it answers less, the
/// same link signs in.
async fn oversized(misbehave: Misbehave) {
    let (app, idp, link) = refused_cold(misbehave).await;
    idp.misbehave(Misbehave::None);
    // A fetch that failed is not tried again for that provider for 5 s
    // (docs/operations.md#one-team-never-holds-another): mended, the
    // provider is asked again once they have passed.
    app.clock.advance(std::time::Duration::from_secs(5));
    assert_eq!(login(&app, &link).await.status, 200, "{misbehave:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_discovery_document_over_a_mebibyte_is_502() {
    oversized(Misbehave::OversizedDiscovery).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_over_a_mebibyte_is_502() {
    oversized(Misbehave::OversizedJwks).await;
}

/// The token endpoint discovery names is `http` off loopback (as
/// written): 502 at the callback, and the code is never sent there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_endpoint_over_plain_http_off_loopback_is_never_called() {
    let (_app, idp, _) = refused_cold(Misbehave::PlainHttpTokenEndpoint).await;
    assert_eq!(idp.codes_received(), Vec::<String>::new());
}

/// The key set over plain `http` off loopback: 502, never fetched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_set_over_plain_http_off_loopback_is_never_fetched() {
    let (_app, idp, _) = refused_cold(Misbehave::PlainHttpJwks).await;
    assert_eq!(idp.jwks_fetches(), 0);
}

/// The authorization endpoint over plain `http` off loopback: the link's
/// page is 502, and no browser is sent there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_authorization_endpoint_over_plain_http_off_loopback_is_never_used() {
    let (_app, idp, _) = refused_cold(Misbehave::PlainHttpAuthorize).await;
    assert_eq!(idp.token_calls(), 0);
}

/// A state with a live link's tag and a made-up rest finds that link's
/// record and is still unknown: 400, no cookie set or cleared, nothing
/// sent to the provider, and the real state still signs in.
#[tokio::test]
async fn a_forged_state_of_a_live_link_is_refused_and_leaves_cookies_alone() {
    let Some((app, idp)) = spawn_idp(Backend::Memory, "", "").await else {
        return;
    };
    let (id, link) = oidc_link(&app, json!({})).await;
    let s = start(&app, &link).await;
    let state = query(&s.callback)["state"].clone();
    let (tag, _) = state.split_once('.').expect("a state names its link");
    let forged = s
        .callback
        .replace(&state, &format!("{tag}.{}", "A".repeat(43)));
    assert_ne!(forged, s.callback);
    let (status, body, cookies) = browse(&app, &forged, &s.cookie).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(cookies, Vec::<String>::new(), "cookies left alone");
    assert_eq!(idp.token_calls(), 0);
    assert_eq!(finish(&app, &s, Some(&s.cookie)).await.status, 200);
    assert_eq!(app.get(&id).await["method"], "oidc");
}

/// Twenty fetches of one link at once: five states live on (the newest
/// kept), fifteen are dropped. Finishing each in turn: one signs in, four
/// meet a used link (409), fifteen are unknown (400).
async fn five_states_per_link(backend: Backend) {
    let Some((app, _idp)) = spawn_idp(backend, "", "").await else {
        return;
    };
    let (id, link) = oidc_link(&app, json!({})).await;
    let started = futures::future::join_all((0..20).map(|_| start(&app, &link))).await;
    let mut statuses = BTreeMap::<u16, usize>::new();
    for s in &started {
        *statuses
            .entry(finish(&app, s, Some(&s.cookie)).await.status)
            .or_default() += 1;
    }
    assert_eq!(
        statuses,
        BTreeMap::from([(200, 1), (400, 15), (409, 4)]),
        "by status"
    );
    assert_eq!(app.get(&id).await["method"], "oidc");
    // One after another: the sixth fetch drops the oldest only.
    let (_, link) = oidc_link(&app, json!({})).await;
    let mut started = Vec::new();
    for _ in 0..6 {
        started.push(start(&app, &link).await);
    }
    let oldest = finish(&app, &started[0], Some(&started[0].cookie)).await;
    assert_eq!(oldest.status, 400, "{}", oldest.body);
    let next = finish(&app, &started[1], Some(&started[1].cookie)).await;
    assert_eq!(next.status, 200, "{}", next.body);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_keeps_its_five_newest_states_memory() {
    five_states_per_link(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_link_keeps_its_five_newest_states_redis() {
    five_states_per_link(Backend::Redis).await;
}

/// A browser's cookie jar, as far as these tests need one.
#[derive(Default)]
struct Jar(BTreeMap<String, String>);

impl Jar {
    fn take(&mut self, set_cookies: &[String]) {
        for c in set_cookies {
            let (pair, attributes) = c.split_once(';').unwrap_or((c, ""));
            let (name, value) = pair.split_once('=').unwrap();
            if attributes.contains("Max-Age=0") {
                self.0.remove(name);
            } else {
                self.0.insert(name.to_string(), value.to_string());
            }
        }
    }
    fn header(&self) -> String {
        self.0
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

/// Two links opened in one browser both sign in, whatever the order; an
/// answer for an unknown state or another browser's leaves the cookies.
async fn two_logins_in_one_browser(backend: Backend) {
    let Some((app, _idp)) = spawn_idp(backend, "", "").await else {
        return;
    };
    let mut jar = Jar::default();
    let mut callbacks = Vec::new();
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (id, link) = oidc_link(&app, json!({})).await;
        let res = app
            .request(Method::GET, &link, None)
            .header("accept", "text/html")
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 302);
        jar.take(&set_cookies(&res));
        let location = res.headers()["location"].to_str().unwrap().to_string();
        let res = app.client.get(&location).send().await.unwrap();
        callbacks.push(res.headers()["location"].to_str().unwrap().to_string());
        ids.push(id);
    }
    assert_eq!(jar.0.len(), 2, "a cookie per login: {:?}", jar.0);
    // Unknown, and another browser's: no cookie touched.
    let before = jar.header();
    let (status, _, set) = browse(
        &app,
        "http://gateway.test/oidc/callback/acme?code=x&state=never-issued",
        &before,
    )
    .await;
    assert_eq!((status, set.len()), (400, 0), "{set:?}");
    let (status, _, set) = browse(&app, &callbacks[0], "").await;
    assert_eq!((status, set.len()), (400, 0), "{set:?}");
    // The second login first, then the first: both sign in.
    for i in [1, 0] {
        let (status, page, set) = browse(&app, &callbacks[i], &jar.header()).await;
        assert_eq!(status, 200, "login {i}: {page}");
        jar.take(&set);
        assert_eq!(app.get(&ids[i]).await["method"], "oidc");
    }
    assert!(jar.0.is_empty(), "answered logins clear their own cookie");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_logins_in_one_browser_each_work_memory() {
    two_logins_in_one_browser(Backend::Memory).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn several_logins_in_one_browser_each_work_redis() {
    two_logins_in_one_browser(Backend::Redis).await;
}

/// With `customer_claim = "email"` the token must say the address is
/// verified (`true`, or the string `"true"`); else 401, nothing used up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_email_customer_claim_needs_email_verified() {
    let claim = "customer_claim = \"email\"";
    let Some((app, idp)) = spawn_idp(Backend::Memory, claim, "").await else {
        return;
    };
    let (id, link) = oidc_link(&app, json!({})).await;
    for unverified in [
        None,
        Some(json!(false)),
        Some(json!("false")),
        Some(json!(1)),
    ] {
        idp.email_verified(unverified.clone());
        let page = login(&app, &link).await;
        assert_eq!(
            page.status, 401,
            "email_verified {unverified:?}: {}",
            page.body
        );
        assert_ne!(app.get(&id).await["status"], "authenticated");
    }
    for verified in [json!(true), json!("true")] {
        idp.email_verified(Some(verified.clone()));
        let (id, link) = oidc_link(&app, json!({})).await;
        let page = login(&app, &link).await;
        assert_eq!(page.status, 200, "email_verified {verified}: {}", page.body);
        assert_eq!(app.get(&id).await["customer"]["id"], "ada@example.com");
    }
}

/// GET `link` as a browser: the status, whether `Retry-After` came, the
/// time it took since `started`.
async fn open_link(
    app: &TestApp,
    link: &str,
    started: std::time::Instant,
) -> tokio::task::JoinHandle<(u16, bool, std::time::Duration)> {
    let request = app
        .request(Method::GET, link, None)
        .header("accept", "text/html");
    tokio::spawn(async move {
        let res = request.send().await.unwrap();
        let retry_after = res.headers().get("retry-after").is_some();
        (res.status().as_u16(), retry_after, started.elapsed())
    })
}

/// A hung provider's team under 48 fetches of one hosted login's short
/// link at once: 32 wait for the provider (the first for its 4.5 s, the
/// rest answered 502 as soon as its fetch has failed), 16 are answered
/// 503 with `Retry-After` at once; meanwhile another team and `/healthz`
/// are answered as usual; after the flood, the link answers 502 at once
/// (the failed discovery is remembered for 5 s), never a second wait.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_provider_s_short_link_holds_its_own_team_only() {
    let (issuer, held) = crate::oidc_logout::hung_provider().await;
    let setup = Setup {
        team_extra: format!(
            "[oidc]\nissuer = \"{issuer}\"\nclient_id = \"cg\"\nclient_secret = \"client-secret-of-a-hung-provider\"\n"
        ),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let (_, link) = oidc_link(&app, json!({})).await;
    let started = std::time::Instant::now();
    let mut flood = Vec::new();
    for _ in 0..48 {
        flood.push(open_link(&app, &link, started).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let other = app
        .client
        .post(app.url("/v1/interactions"))
        .bearer_auth(&app.keys.globex_bot)
        .json(&json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string()}))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status().as_u16(), 201, "globex is not held");
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(3),
        "at once"
    );
    let (mut refused, mut failed) = (0, 0);
    for answer in flood {
        let (status, retry_after, took) = answer.await.unwrap();
        match status {
            503 => {
                assert!(retry_after, "503 says when to come back");
                refused += 1;
            }
            502 => failed += 1,
            s => panic!("{s}"),
        }
        assert!(
            took < std::time::Duration::from_secs(7),
            "answered after {took:?}"
        );
    }
    assert_eq!((refused, failed), (16, 32), "only the 32 in flight wait");
    // The failed discovery is remembered: the next fetch is answered at once.
    let again = std::time::Instant::now();
    let (status, _, _) = open_link(&app, &link, again).await.await.unwrap();
    assert_eq!(status, 502);
    assert!(
        again.elapsed() < std::time::Duration::from_secs(1),
        "{:?}",
        again.elapsed()
    );
    held.abort();
}

/// Teams that share one slow provider (a bank's brands): with
/// `max_connections = 64`, all of them together hold at most 16 requests
/// waiting on identity providers; the rest of every team is answered 503
/// at once, and the connections stay free for everything else.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn teams_sharing_a_hung_provider_hold_a_quarter_of_the_connections() {
    let (issuer, held) = crate::oidc_logout::hung_provider().await;
    let oidc = |secret: &str| {
        format!("[oidc]\nissuer = \"{issuer}\"\nclient_id = \"cg\"\nclient_secret = \"{secret}\"\n")
    };
    let setup = Setup {
        server: "max_connections = 64\n".into(),
        team_extra: oidc("client-secret-of-brand-one"),
        globex_extra: oidc("client-secret-of-brand-two"),
        ..Setup::default()
    };
    let Some(app) = spawn_with(Backend::Memory, setup).await else {
        return;
    };
    let (_, acme_link) = oidc_link(&app, json!({})).await;
    let globex = app
        .client
        .post(app.url("/v1/interactions"))
        .bearer_auth(&app.keys.globex_bot)
        .json(&json!({"channel": "webchat", "conversation_id": "brand-two"}))
        .send()
        .await
        .unwrap();
    let globex_id = globex.json::<Value>().await.unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let globex_link: Value = app
        .client
        .post(app.url(&format!("/v1/interactions/{globex_id}/login-links")))
        .bearer_auth(&app.keys.globex_bot)
        .json(&json!({"provider": "oidc"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let globex_link = globex_link["short_url"]
        .as_str()
        .unwrap()
        .trim_start_matches("http://gateway.test")
        .to_string();
    let started = std::time::Instant::now();
    let mut flood = Vec::new();
    for i in 0..40 {
        let link = if i % 2 == 0 { &acme_link } else { &globex_link };
        flood.push(open_link(&app, link, started).await);
    }
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status().as_u16(), 200, "the connections stay free");
    let mut refused = 0;
    for answer in flood {
        let (status, retry_after, _) = answer.await.unwrap();
        if status == 503 {
            assert!(retry_after);
            refused += 1;
        } else {
            assert_eq!(status, 502);
        }
    }
    assert_eq!(
        refused,
        40 - 16,
        "a quarter of 64 wait, whatever their team"
    );
    held.abort();
}
