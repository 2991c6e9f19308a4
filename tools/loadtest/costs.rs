//! Rows that price one feature against the same request without it
//! (docs/performance.md#what-a-feature-costs): an audited action (an agent's
//! reveal of a code, one audit entry each, every one chained on the team's
//! one head) beside the status read of the same interactions; and an OTP
//! by SMS with and without a number check whose provider (a fake Twilio
//! Lookup in this process) answers in 50 ms; and a network challenge's
//! link by SMS beside an OTP by SMS, and its callback (the link opened,
//! then the operator's answer: a fake CAMARA operator in this process
//! that answers at once).
use std::sync::Arc;
use std::time::Duration;

use axum::routing::get as get_route;
use chatgate::domain::interaction::Contact;
use chatgate::domain::start_challenge::ChallengeRequest;
use chatgate::gateway::NewInteraction;
use futures::{FutureExt, StreamExt};
use uuid::Uuid;

use crate::bench::{rand_index, status_read, Bench};
use crate::engine::{request, MakeReq};
use crate::gateway::Running;
use crate::report::{Row, Target};

/// Reveals per second of the paced audit rows: a busy agent floor of one
/// team, far below what the chain takes.
const REVEAL_RATE: f64 = 200.0;

/// Challenges per second of the number-check rows.
const CHALLENGE_RATE: f64 = 50.0;

/// How long the fake number-check provider takes to answer.
pub const PROVIDER_DELAY: Duration = Duration::from_millis(50);

/// The audit row and its unaudited twin, on one store.
pub async fn audit_rows(b: &mut Bench, redis: bool, n: usize, ceiling: &'static str) {
    if !b.wants("reveal (audited)") {
        return;
    }
    let store = if redis { "redis" } else { "memory" };
    let g = Arc::new(Running::start(redis).await);
    let seeded = Arc::new(g.seed(0, n.min(5000), 32).await);
    // One open challenge shown to agents per interaction.
    let challenges: Vec<(Uuid, Uuid)> = futures::stream::iter(seeded.iter())
        .map(|s| {
            let g = g.clone();
            async move { (s.id, g.start_otp(s.id).await) }
        })
        .buffer_unordered(32)
        .collect()
        .await;
    g.settle().await;
    let row = |name: &str, (o, c): (crate::engine::Outcome, crate::report::Ceiling)| {
        Row::new(name, store, o, (ceiling, c), Target::none())
    };
    let auth = format!("Bearer {}", g.agent);
    let challenges = Arc::new(challenges);
    let reveal: MakeReq = Arc::new(move |_, _| {
        let (id, cid) = challenges[rand_index(challenges.len())];
        let path = format!("/v1/interactions/{id}/challenges/{cid}/code");
        let r = request("GET", &path, &[("authorization", &auth)], Vec::new());
        async move { Some(r) }.boxed()
    });
    // Closed loop on every connection (64 reveals of one team at once,
    // all chaining on its one head), then paced at a rate an agent floor
    // might reach, where the request's own cost shows rather than the
    // queue on the head.
    let saved = b.plan;
    for rate in [None, Some(REVEAL_RATE)] {
        b.plan = crate::engine::Plan { rate, ..saved };
        let how = rate.map_or(String::new(), |r| format!(", paced {r:.0}/s"));
        let o = b
            .measure_on(&g, status_read(&g, seeded.clone()), None)
            .await;
        b.rows.push(row(
            &format!("status read (the reveal's interactions, not audited){how}"),
            o,
        ));
        let o = b.measure_on(&g, reveal.clone(), None).await;
        b.rows
            .push(row(&format!("reveal (audited): one team's chain{how}"), o));
    }
    b.plan = saved;
    if let Ok(g) = Arc::try_unwrap(g) {
        g.stop().await;
    }
}

/// A fake Twilio Lookup v2 that answers every number "no SIM swap" after
/// [`PROVIDER_DELAY`]: its base URL.
async fn slow_lookup() -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let answer = || async {
        tokio::time::sleep(PROVIDER_DELAY).await;
        axum::Json(serde_json::json!({
            "sim_swap": {
                "last_sim_swap": {"last_sim_swap_date": null, "swapped_in_period": false},
                "error_code": null
            }
        }))
    };
    let router = axum::Router::new().route("/v2/PhoneNumbers/{number}", get_route(answer));
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// `n` interactions with a phone number each (none shared: a number's
/// answer is never reused from the cache in these rows anyway).
async fn seed_phones(g: &Running, n: usize) -> Vec<Uuid> {
    futures::stream::iter(0..n)
        .map(|i| async move {
            let team = g.gateway.team("acme").expect("team");
            let req = NewInteraction {
                channel: "webchat".into(),
                conversation_id: format!("nc{i}"),
                contact: Some(Contact {
                    phone: Some(format!("+1555{:07}", 3_000_000 + i)),
                    email: None,
                }),
                ..NewInteraction::default()
            };
            chatgate::gateway::interactions::create_interaction(
                &g.gateway,
                team,
                req,
                Running::now(),
            )
            .await
            .expect("create")
            .0
            .id
        })
        .buffer_unordered(32)
        .collect()
        .await
}

/// OTP challenges by SMS on random interactions of `ids` (each replacing
/// the interaction's open one).
fn sms_challenges(g: &Running, ids: Arc<Vec<Uuid>>) -> MakeReq {
    let auth = format!("Bearer {}", g.bot);
    Arc::new(move |_, _| {
        let id = ids[rand_index(ids.len())];
        let path = format!("/v1/interactions/{id}/challenges");
        let body = br#"{"method":"otp","delivery":"sms"}"#.to_vec();
        let r = request("POST", &path, &[("authorization", &auth)], body);
        async move { Some(r) }.boxed()
    })
}

/// The team settings of both number-check rows: sends limited by nothing
/// the load reaches.
const SENDS: &str = "[settings.otp]\nmax_sends = 1000000000\n";

/// An OTP by SMS without, then with, a number check answered in 50 ms
/// (`cache = "0s"`: every challenge asks).
pub async fn number_check_rows(b: &mut Bench, redis: bool, n: usize, ceiling: &'static str) {
    if !b.wants("OTP by SMS") {
        return;
    }
    let store = if redis { "redis" } else { "memory" };
    let lookup = slow_lookup().await;
    let checked = format!(
        "{SENDS}\n[number_checks]\nkind = \"twilio_lookup\"\naccount_sid = \"AC1\"\n\
         auth_token = \"bench-lookup-token\"\nbase_url = \"{lookup}\"\ncache = \"0s\"\n"
    );
    let delay = PROVIDER_DELAY.as_millis();
    for (name, extra) in [
        (
            format!("OTP by SMS (challenge), paced {CHALLENGE_RATE:.0}/s"),
            SENDS.to_string(),
        ),
        (
            format!("OTP by SMS, number check answered in {delay} ms, paced {CHALLENGE_RATE:.0}/s"),
            checked,
        ),
    ] {
        let g = Arc::new(Running::start_with(redis, &extra).await);
        let ids = Arc::new(seed_phones(&g, n.min(5000)).await);
        // One challenge through the use case first: the team is set up
        // as the row expects (a refusal would show here, not as 4xx rows).
        let team = g.gateway.team("acme").expect("team");
        let req = ChallengeRequest::parse("otp", Some("sms"), None).expect("request");
        chatgate::gateway::challenges::start_challenge(
            &g.gateway,
            team,
            ids[0],
            req,
            &chatgate::time::SystemClock,
        )
        .await
        .expect("an SMS challenge");
        g.settle().await;
        // Paced well below either row's capacity: the latency is the
        // request's own, not a queue's.
        let saved = b.plan;
        b.plan = crate::engine::Plan {
            rate: Some(CHALLENGE_RATE),
            ..saved
        };
        let (o, c) = b.measure_on(&g, sms_challenges(&g, ids), None).await;
        b.plan = saved;
        b.rows
            .push(Row::new(&name, store, o, (ceiling, c), Target::none()));
        if let Ok(g) = Arc::try_unwrap(g) {
            g.stop().await;
        }
    }
}

/// A fake mobile operator (CAMARA Number Verification) that answers at
/// once: every code is exchanged for a token, every number is verified.
/// Its base URL.
async fn instant_operator() -> String {
    use axum::routing::post as post_route;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let token = || async {
        axum::Json(serde_json::json!({"access_token": "bench-at", "token_type": "Bearer"}))
    };
    let verify = || async { axum::Json(serde_json::json!({"devicePhoneNumberVerified": true})) };
    let router = axum::Router::new()
        .route("/token", post_route(token))
        .route("/nv/verify", post_route(verify));
    tokio::spawn(async move { axum::serve(listener, router).await });
    format!("http://{addr}")
}

/// Network links by SMS (`{"method":"network","delivery":"sms"}`) on
/// random interactions of `ids`.
fn network_challenges(g: &Running, ids: Arc<Vec<Uuid>>) -> MakeReq {
    let auth = format!("Bearer {}", g.bot);
    Arc::new(move |_, _| {
        let id = ids[rand_index(ids.len())];
        let path = format!("/v1/interactions/{id}/challenges");
        let body = br#"{"method":"network","delivery":"sms"}"#.to_vec();
        let r = request("POST", &path, &[("authorization", &auth)], body);
        async move { Some(r) }.boxed()
    })
}

/// Starts one network challenge by SMS on each of `ids`, through the use
/// case (its link goes to the fake Twilio, which keeps its code).
async fn prime_links(g: &Running, ids: &[Uuid]) {
    let team = g.gateway.team("acme").expect("team");
    futures::stream::iter(ids.iter().copied())
        .for_each_concurrent(32, |id| async move {
            let req = ChallengeRequest::parse("network", Some("sms"), None).expect("request");
            chatgate::gateway::challenges::start_challenge(
                &g.gateway,
                team,
                id,
                req,
                &chatgate::time::SystemClock,
            )
            .await
            .expect("a network challenge");
        })
        .await;
}

/// Opens each network link sent so far once, as a phone's browser does:
/// the callback's path (its `state`, a code the operator takes) and the
/// cookie that ties the state to the browser.
async fn opened_links(g: &Running) -> Vec<(String, String)> {
    let codes = std::mem::take(
        &mut *crate::gateway::NETWORK_LINKS
            .lock()
            .unwrap_or_else(|p| p.into_inner()),
    );
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client");
    let addr = g.addr;
    futures::stream::iter(codes)
        .map(|code| {
            let http = http.clone();
            async move {
                let res = http
                    .get(format!("http://{addr}/n/{code}"))
                    .send()
                    .await
                    .ok()?;
                let location = res.headers().get("location")?.to_str().ok()?;
                let state = url::Url::parse(location)
                    .ok()?
                    .query_pairs()
                    .find(|(k, _)| k == "state")?
                    .1
                    .into_owned();
                let cookie = res.headers().get("set-cookie")?.to_str().ok()?;
                let cookie = cookie.split(';').next()?.to_string();
                Some((format!("/n/callback?code=bench&state={state}"), cookie))
            }
        })
        .buffer_unordered(32)
        .filter_map(|o| async move { o })
        .collect()
        .await
}

/// The callbacks of `opened`, each once, in turn (none when used up).
fn network_callbacks(opened: Arc<Vec<(String, String)>>) -> MakeReq {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    Arc::new(move |_, _| {
        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let r = opened
            .get(i)
            .map(|(path, cookie)| request("GET", path, &[("cookie", cookie)], Vec::new()));
        async move { r }.boxed()
    })
}

/// A network challenge's link by SMS beside an OTP by SMS, then the
/// link's callback (the operator answers at once, every number
/// verified): the gateway's own CPU and store commands for each, paced
/// at [`CHALLENGE_RATE`].
pub async fn network_rows(b: &mut Bench, redis: bool, n: usize, ceiling: &'static str) {
    if !b.wants("network") {
        return;
    }
    let store = if redis { "redis" } else { "memory" };
    let op = instant_operator().await;
    let extra = format!(
        "{SENDS}\n[number_verification]\nauthorization_endpoint = \"{op}/authorize\"\n\
         token_endpoint = \"{op}/token\"\nverify_url = \"{op}/nv\"\nclient_id = \"bench\"\n\
         client_secret = \"bench-nv-secret\"\nlink_ttl = \"30m\"\n"
    );
    let g = Arc::new(Running::start_with(redis, &extra).await);
    let ids = Arc::new(seed_phones(&g, n.min(5000)).await);
    g.settle().await;
    let saved = b.plan;
    b.plan = crate::engine::Plan {
        rate: Some(CHALLENGE_RATE),
        ..saved
    };
    let rate = format!("paced {CHALLENGE_RATE:.0}/s");
    let row = |name: String, (o, c): (crate::engine::Outcome, crate::report::Ceiling)| {
        Row::new(&name, store, o, (ceiling, c), Target::none())
    };
    let o = b
        .measure_on(&g, sms_challenges(&g, ids.clone()), None)
        .await;
    b.rows
        .push(row(format!("OTP by SMS (network's twin), {rate}"), o));
    crate::gateway::NETWORK_LINKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    let o = b
        .measure_on(&g, network_challenges(&g, ids.clone()), None)
        .await;
    b.rows
        .push(row(format!("network link by SMS (challenge), {rate}"), o));
    // One more link for each interaction (the newest is the open one),
    // opened once each: the callbacks then answer every one of them.
    crate::gateway::NETWORK_LINKS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clear();
    prime_links(&g, &ids).await;
    let opened = Arc::new(opened_links(&g).await);
    g.settle().await;
    let o = b.measure_on(&g, network_callbacks(opened), None).await;
    b.rows.push(row(
        format!("network callback (operator answers at once), {rate}"),
        o,
    ));
    b.plan = saved;
    if let Ok(g) = Arc::try_unwrap(g) {
        g.stop().await;
    }
}
