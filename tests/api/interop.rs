//! The OpenID Connect features against an independent provider: panva's
//! `oidc-provider` (Node.js), run by `tests/interop/provider.mjs`, rather
//! than the fake of `oidc_provider.rs` written with the gateway. Approval
//! in the customer's app (docs/ciba.md, CIBA poll mode): approved,
//! denied, and approved for a customer the provider knows under another
//! subject; a hosted login ended by the provider's back-channel logout
//! (docs/revocation.md); and an agent's sign-in to the console with
//! another client of the same provider (docs/console-sign-in.md). Its
//! test-only endpoints play the customer
//! (`/test/approve`, `/test/deny`) and the provider's logout
//! (`/test/logout`).
//!
//! And a wallet round (docs/wallet.md) with a maintained holder library
//! in the wallet's place: `tests/interop/wallet.mjs` opens the link's
//! page and hands its `openid4vp://` link to the OpenWallet Foundation's
//! `@openid4vc/openid4vp` (`Openid4vpClient`), which fetches the request
//! object by POST, verifies it (ES256 under the one `x5c` certificate,
//! which must be the gateway's access certificate the test trusts, and
//! the `x509_hash` client identifier as that certificate's hash), reads it
//! as OpenID4VP 1.0 and its DCQL query, then makes the `direct_post.jwt`
//! answer (ECDH-ES to the request's key, with the `apu` and `apv` it
//! chooses) and posts it to the `response_uri`; `@sd-jwt/sd-jwt-vc` makes
//! the presentation of the fixtures' credential with the disclosures the
//! query asks and a Key Binding JWT over the library's `client_id` and
//! `nonce`; `jose` and `node:crypto` are its crypto callbacks. No step is
//! done by hand. It proves that what the gateway asks, signs and accepts
//! is what an independent wallet stack reads, checks and sends: the
//! answer for Ada, with the binding code its redirect shows typed into
//! the chat, authenticates her with method `wallet`, the same
//! answer to another expectation fails the challenge (`claims_mismatch`),
//! and a request object under a certificate the wallet does not trust is
//! refused by the wallet and changes nothing. With the `x509_san_dns`
//! prefix the library checks the certificate's DNS name and the
//! `response_uri`'s host against the client identifier, and the round
//! authenticates as well. The library checks the
//! request object's `exp` against `new Date()` and takes no time of its
//! own: the script sets the wallet's clock to the gateway's test clock
//! (the fixtures' `now`), which is also its Key Binding JWT's `iat`.
//!
//! The payment round (docs/wallet.md#a-payment-approved-in-the-wallet):
//! the library parses the request's `transaction_data` itself, the wallet
//! presents the bank's SCA attestation (issued by `@sd-jwt/sd-jwt-vc` with
//! the fixtures' issuer key) with the payment's claims in its Key Binding
//! JWT, the hash computed as the library's `verifyTransactionData`
//! computes it and confirmed by that function; the approval comes once
//! the binding code is typed into the chat. Its refusal round alters one
//! thing at a time (`--tamper`, a used `--jti`).
//!
//! Needs `node` and the installed modules: `npm ci --prefix tests/interop`
//! (or `CHATGATE_TEST_OIDC_PROVIDER_DIR` naming a `node_modules` folder
//! holding them). Missing, the tests skip, loudly; with `CI=true` they fail
//! (`.ci/run` installs them). The memory store only: the store adds
//! nothing to what is checked here.
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt, BufReader};

use crate::helpers::*;
use crate::oidc::oidc_link;

const CLIENT_ID: &str = "chatgate";
/// The console's client at the same provider.
const WORKFORCE_ID: &str = "chatgate-console";

/// `node` and the `node_modules` folder holding `packages`, or None:
/// mandatory with `CI=true`, else the test skips, loudly.
fn node_and_modules(packages: &[&str]) -> Option<(String, PathBuf)> {
    let node = std::env::var("CHATGATE_TEST_NODE").unwrap_or_else(|_| "node".to_string());
    let modules = std::env::var("CHATGATE_TEST_OIDC_PROVIDER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/node_modules")
        });
    let has_node = std::process::Command::new(&node)
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    let missing = packages
        .iter()
        .find(|p| !modules.join(p).join("package.json").is_file());
    let why = match missing {
        None if has_node => return Some((node, modules)),
        Some(p) if has_node => format!("no {p} in {}", modules.display()),
        _ => format!("no `{node}`"),
    };
    assert!(
        std::env::var("CI").as_deref() != Ok("true"),
        "the interop tests are required in CI (.ci/run installs them): {why}"
    );
    eprintln!("SKIPPED: {why}; run `npm ci --prefix tests/interop` (or set CHATGATE_TEST_OIDC_PROVIDER_DIR); the interop tests did not run");
    None
}

/// The running `oidc-provider`, stopped on drop.
struct Provider {
    _child: tokio::process::Child,
    issuer: String,
    http: reqwest::Client,
}

impl Provider {
    /// Starts it on `port` for the gateway at `gateway` (its real address:
    /// the provider POSTs logout tokens there).
    async fn start(node: &str, modules: &Path, port: u16, secret: &str, gateway: &str) -> Self {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/interop/provider.mjs");
        let mut child = tokio::process::Command::new(node)
            .arg(script)
            .env("PORT", port.to_string())
            .env("OIDC_PROVIDER_MODULES", modules)
            .env("CLIENT_ID", CLIENT_ID)
            .env("CLIENT_SECRET", secret)
            .env("REDIRECT_URI", "http://gateway.test/oidc/callback/acme")
            .env("WORKFORCE_CLIENT_ID", WORKFORCE_ID)
            .env("WORKFORCE_CLIENT_SECRET", secret)
            .env(
                "WORKFORCE_REDIRECT_URI",
                "http://gateway.test/console/acme/callback",
            )
            .env(
                "BACKCHANNEL_LOGOUT_URI",
                format!("{gateway}/oidc/backchannel-logout/acme"),
            )
            .stdout(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("node starts");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = tokio::time::timeout(Duration::from_secs(20), lines.next_line())
            .await
            .expect("oidc-provider ready within 20 s")
            .unwrap();
        assert_eq!(
            ready,
            Some(format!("ready {port}")),
            "oidc-provider's first line"
        );
        // What it says later goes to the test's output (a closed pipe
        // would stop it).
        tokio::spawn(async move {
            while let Ok(Some(line)) = lines.next_line().await {
                eprintln!("oidc-provider: {line}");
            }
        });
        Provider {
            _child: child,
            issuer: format!("http://127.0.0.1:{port}"),
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
        }
    }

    /// One of its test-only endpoints: status and JSON answer.
    async fn test(&self, method: reqwest::Method, path: &str) -> (u16, Value) {
        let res = self
            .http
            .request(method, format!("{}/test/{path}", self.issuer))
            .send()
            .await
            .unwrap();
        (res.status().as_u16(), res.json().await.unwrap())
    }
}

/// The acme team with `oidc-provider` as its identity provider (CIBA and
/// back-channel logout on), on the memory store; None when skipped.
async fn spawn_interop() -> Option<(TestApp, Provider)> {
    let (node, modules) = node_and_modules(&["oidc-provider"])?;
    let port = free_port();
    let secret = chatgate::domain::secrets::generate_api_key();
    let setup = Setup {
        team_extra: format!(
            "[oidc]\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"{CLIENT_ID}\"\n\
             client_secret = \"{secret}\"\nscopes = [\"openid\", \"profile\", \"email\"]\n\
             ciba = true\nbackchannel_logout = true\n\
             [console.oidc]\nissuer = \"http://127.0.0.1:{port}\"\nclient_id = \"{WORKFORCE_ID}\"\n\
             client_secret = \"{secret}\"\nscopes = [\"profile\"]\nagent_values = [\"cc-agents\"]\n"
        ),
        ..Setup::default()
    };
    // The gateway reads the provider's discovery when it first needs it.
    let app = spawn_with(Backend::Memory, setup).await?;
    let provider = Provider::start(&node, &modules, port, &secret, &app.base).await;
    Some((app, provider))
}

async fn start_app_challenge(app: &TestApp, customer_ref: &str) -> (String, String, String) {
    let created = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                       "customer_ref": customer_ref}),
        )
        .await;
    let id = created["id"].as_str().unwrap().to_string();
    let res = app
        .post_json(
            &format!("/v1/interactions/{id}/challenges"),
            Some(&app.keys.bot),
            &json!({"method": "app"}),
        )
        .await;
    assert_eq!(res.status(), 201);
    let c: Value = res.json().await.unwrap();
    (
        id,
        c["challenge_id"].as_str().unwrap().to_string(),
        c["binding_code"].as_str().unwrap().to_string(),
    )
}

async fn challenge_state(app: &TestApp, id: &str, cid: &str) -> Value {
    app.get_json(
        &format!("/v1/interactions/{id}/challenges/{cid}"),
        Some(&app.keys.bot),
    )
    .await["state"]
        .clone()
}

/// Moves the gateway's clock on by one poll interval (5 s: the provider
/// names none) at a time, giving it real time to poll, until `done` holds
/// (at most 10 s of real time).
async fn poll_until<F, Fut>(app: &TestApp, what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        app.advance(5);
        tokio::time::sleep(Duration::from_millis(700)).await;
        if done().await {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{what} within 10 s");
    }
}

/// What the provider's newest CIBA request asked, and its token requests.
async fn ciba_seen(provider: &Provider) -> Value {
    let (status, seen) = provider.test(reqwest::Method::GET, "ciba").await;
    assert_eq!(status, 200, "{seen}");
    seen
}

/// The provider got one backchannel request as the docs describe it: the
/// binding code as `binding_message`, the folded `customer_ref` as
/// `login_hint`, the team's scopes, `otp.ttl` as `requested_expiry`.
async fn assert_asked(provider: &Provider, code: &str) {
    let asked = ciba_seen(provider).await;
    assert_eq!(asked["requests"], 1);
    assert_eq!(asked["binding_message"], code);
    assert_eq!(asked["login_hint"], "cust-42", "the folded customer_ref");
    assert_eq!(asked["scope"], "openid profile email");
    assert_eq!(asked["requested_expiry"], "180", "otp.ttl");
    assert_eq!(asked["polls"], 0, "no poll before the interval");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciba_approval_at_oidc_provider_authenticates_with_method_app() {
    let Some((mut app, provider)) = spawn_interop().await else {
        return;
    };
    let (id, cid, code) = start_app_challenge(&app, "Cust-42").await;
    assert_asked(&provider, &code).await;
    // The provider answers the first poll authorization_pending: the
    // challenge stays open.
    poll_until(&app, "the first poll", || async {
        ciba_seen(&provider).await["polls"] != 0
    })
    .await;
    assert_eq!(challenge_state(&app, &id, &cid).await, "open");
    assert_eq!(app.get(&id).await["status"], "pending");
    let (status, answer) = provider.test(reqwest::Method::POST, "approve").await;
    assert_eq!(status, 200, "{answer}");
    poll_until(&app, "authenticated", || async {
        app.get(&id).await["status"] == "authenticated"
    })
    .await;
    let v = app.get(&id).await;
    assert_eq!(v["method"], "app");
    assert_eq!(
        v["customer"],
        json!({"id": "cust-42", "name": "Ada Lovelace", "email": "ada@example.com"})
    );
    assert_eq!(challenge_state(&app, &id, &cid).await, "used");
    let e = app
        .next_event("interaction.authenticated", Duration::from_secs(5))
        .await
        .expect("interaction.authenticated");
    assert_eq!(event_data(&e)["interaction"]["method"], "app");
    // Answered: no more polls.
    let polls = ciba_seen(&provider).await["polls"].clone();
    for _ in 0..2 {
        app.advance(5);
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    assert_eq!(ciba_seen(&provider).await["polls"], polls);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciba_denial_at_oidc_provider_denies_the_challenge() {
    let Some((app, provider)) = spawn_interop().await else {
        return;
    };
    let (id, cid, code) = start_app_challenge(&app, "cust-42").await;
    assert_asked(&provider, &code).await;
    let (status, answer) = provider.test(reqwest::Method::POST, "deny").await;
    assert_eq!(status, 200, "{answer}");
    poll_until(&app, "denied", || async {
        challenge_state(&app, &id, &cid).await == "denied"
    })
    .await;
    assert_ne!(app.get(&id).await["status"], "authenticated");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ciba_approval_naming_another_customer_fails() {
    let Some((mut app, provider)) = spawn_interop().await else {
        return;
    };
    // The provider signs `renamed` in as `cust-7`: its ID token's `sub`.
    let (id, cid, _) = start_app_challenge(&app, "renamed").await;
    let (status, answer) = provider.test(reqwest::Method::POST, "approve").await;
    assert_eq!(status, 200, "{answer}");
    poll_until(&app, "failed", || async {
        challenge_state(&app, &id, &cid).await == "failed"
    })
    .await;
    let e = app
        .next_event("challenge.failed", Duration::from_secs(5))
        .await
        .expect("challenge.failed");
    let data = event_data(&e);
    // The reason is in `data.reason` (or, before that, `data.challenge.reason`).
    let reason = [&data["reason"], &data["challenge"]["reason"]]
        .into_iter()
        .find(|r| !r.is_null())
        .cloned();
    assert_eq!(reason, Some(json!("customer_mismatch")), "{data}");
    assert_ne!(app.get(&id).await["status"], "authenticated");
    assert_eq!(crate::oidc::failures(&app, "renamed").await, 1);
}

/// A browser without cookies of the provider: opens the gateway's link,
/// signs in at the provider (its interaction signs in at once, as the
/// `login_hint`) and comes back to the gateway's callback. The page's
/// status and body.
async fn hosted_login(app: &TestApp, link: &str) -> (u16, String) {
    let res = through_provider(app, link).await;
    (res.status().as_u16(), res.text().await.unwrap())
}

/// A browser without cookies of the provider opens `start` at the
/// gateway, signs in at the provider and comes back: the gateway's answer.
async fn through_provider(app: &TestApp, start: &str) -> reqwest::Response {
    let res = app
        .request(reqwest::Method::GET, start, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 302, "GET {start}");
    let gateway_cookie = res.headers()["set-cookie"].to_str().unwrap();
    let gateway_cookie = gateway_cookie.split(';').next().unwrap().to_string();
    let mut at = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    // The provider's cookies, sent back on every request (one host).
    let mut jar: Vec<String> = Vec::new();
    for _ in 0..10 {
        if at.as_str().starts_with("http://gateway.test/") {
            let callback = at.as_str().replace("http://gateway.test", &app.base);
            return app
                .client
                .get(&callback)
                .header("accept", "text/html")
                .header("cookie", &gateway_cookie)
                .send()
                .await
                .unwrap();
        }
        let res = app
            .client
            .get(at.clone())
            .header("cookie", jar.join("; "))
            .send()
            .await
            .unwrap();
        for c in res.headers().get_all("set-cookie") {
            let pair = c.to_str().unwrap().split(';').next().unwrap().to_string();
            let name = pair.split('=').next().unwrap().to_string();
            jar.retain(|p| !p.starts_with(&format!("{name}=")));
            jar.push(pair);
        }
        assert!(
            res.status().is_redirection(),
            "the provider at {}: {}",
            at.path(),
            res.status()
        );
        at = at
            .join(res.headers()["location"].to_str().unwrap())
            .unwrap();
    }
    panic!("no way back to the gateway in 10 redirects");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_backchannel_logout_ends_its_sessions_interaction() {
    let Some((mut app, provider)) = spawn_interop().await else {
        return;
    };
    // Two hosted logins, two provider sessions; the provider ends the last.
    let mut ids = Vec::new();
    for _ in 0..2 {
        let (id, link) = oidc_link(&app, json!({})).await;
        let (status, body) = hosted_login(&app, &link).await;
        assert_eq!(status, 200, "{body}");
        let v = app.get(&id).await;
        assert_eq!(
            (v["status"].clone(), v["method"].clone()),
            (json!("authenticated"), json!("oidc"))
        );
        assert_eq!(v["customer"]["id"], "cust-42");
        ids.push(id);
    }
    while app
        .next_event("interaction.logged_out", Duration::from_millis(50))
        .await
        .is_some()
    {}
    let (status, answer) = provider.test(reqwest::Method::POST, "logout").await;
    assert_eq!(
        status, 200,
        "the gateway took the provider's logout token: {answer}"
    );
    assert_eq!(app.get(&ids[1]).await["status"], "unauthenticated");
    assert_eq!(
        app.get(&ids[0]).await["status"],
        "authenticated",
        "another provider session"
    );
    assert_eq!(
        crate::oidc_logout::logged_out_causes(&mut app, Duration::from_secs(2)).await,
        [(ids[1].clone(), "oidc_logout".to_string())]
    );
}

/// The workforce round: an agent signs in to the console at the same
/// provider with the console's own client; the session names the person
/// the provider's ID token does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oidc_provider_signs_an_agent_in_to_the_console() {
    let Some((app, _provider)) = spawn_interop().await else {
        return;
    };
    let res = through_provider(&app, "/console/acme/sign-in").await;
    assert_eq!(res.status(), 303, "{:?}", res.headers());
    assert_eq!(res.headers()["location"], "/console");
    let session = res
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().split(';').next().unwrap().to_string())
        .find(|c| c.starts_with("chatgate-console="))
        .expect("the session cookie");
    let me = app
        .request(reqwest::Method::GET, "/console/session", None)
        .header("cookie", &session)
        .send()
        .await
        .unwrap();
    assert_eq!(me.status(), 200);
    let me: Value = me.json().await.unwrap();
    assert_eq!(
        me,
        json!({"team": "acme", "sub": "cust-42", "name": "cust-42@bank.example", "role": "agent"})
    );
}

/// The packages `tests/interop/wallet.mjs` loads.
const WALLET_PACKAGES: [&str; 4] = [
    "@openid4vc/openid4vp",
    "@openid4vc/utils",
    "@sd-jwt/sd-jwt-vc",
    "jose",
];

/// What `tests/interop/wallet.mjs` did for the link `path` (`/w/{code}`),
/// given `extra` arguments (`--jti`, `--tamper`): whether it exited 0,
/// and its JSON line. It trusts exactly the certificate `trusted` (PEM)
/// and its clock stands at the gateway's.
async fn holder_library(
    app: &TestApp,
    (node, modules): (&str, &Path),
    (trusted, path): (&str, &str),
    extra: &[&str],
) -> (bool, Value) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let root = std::env::temp_dir().join(format!("chatgate-wallet-{}.pem", uuid::Uuid::now_v7()));
    std::fs::write(&root, trusted).unwrap();
    let run = tokio::process::Command::new(node)
        .arg(dir.join("tests/interop/wallet.mjs"))
        .args(["--link", &format!("http://gateway.test{path}")])
        .args(["--connect", &app.base])
        .arg("--fixtures")
        .arg(dir.join("tests/fixtures/wallet/fixtures.json"))
        .arg("--trust")
        .arg(&root)
        .args(["--now", &app.now().unix_seconds().to_string()])
        .args(extra)
        .env("WALLET_MODULES", modules)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the wallet within 60 s")
        .expect("node runs");
    std::fs::remove_file(&root).unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!(
        "wallet.mjs: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout.lines().last().expect("the wallet's line");
    (out.status.success(), serde_json::from_str(line).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintained_holder_library_presents_ada_s_credential() {
    use crate::wallet::{ada, interaction, read, spawn_wallet, start};
    let Some(tools) = node_and_modules(&WALLET_PACKAGES) else {
        return;
    };
    let Some((app, access)) = spawn_wallet(Backend::Memory, "").await else {
        return;
    };
    let tools = (tools.0.as_str(), tools.1.as_path());
    let id = interaction(&app, "cust-ada").await;

    // The bank's expectation of Ada: the library's wallet answers, the
    // gateway verifies, Ada is signed in.
    let (cid, link) = start(&app, &id, ada()).await;
    // A wallet that trusts another certificate refuses the request
    // object: nothing is answered, the challenge stays open.
    let other = crate::wallet::access().chain_pem;
    let (ok, did) = holder_library(&app, tools, (&other, &link), &[]).await;
    assert!(!ok, "{did}");
    assert!(
        did["error"].as_str().unwrap().contains("verif"),
        "the request object's signature: {did}"
    );
    assert_eq!(read(&app, &id, &cid, &app.keys.bot).await["state"], "open");
    let (ok, did) = holder_library(&app, tools, (&access.chain_pem, &link), &[]).await;
    assert!(ok, "{did}");
    assert_eq!(did["response_uri"]["status"], 200, "{did}");
    let redirect = did["response_uri"]["body"]["redirect_uri"]
        .as_str()
        .unwrap()
        .to_string();
    let done = format!("http://gateway.test{link}/done?response_code=");
    assert!(redirect.starts_with(&done), "{redirect}");
    assert_eq!(did["response_mode"], "direct_post.jwt");
    assert_eq!(did["version"], 100, "read as OpenID4VP 1.0");
    assert!(did["client_id"].as_str().unwrap().starts_with("x509_hash:"));
    assert_eq!(did["disclosed"], json!(["birthdate", "family_name"]));
    assert_eq!(did["kb_iat"], app.now().unix_seconds());
    // The page, the request object by POST, the answer: nothing else.
    let requests: Vec<&str> = did["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r.as_str().unwrap())
        .collect();
    assert_eq!(requests.len(), 3, "{requests:?}");
    assert_eq!(requests[0], format!("GET {link}"));
    assert!(requests[1].starts_with(&format!("POST {link}/request/")));
    assert_eq!(requests[2], "POST /w/response");
    // Verified: the binding code its redirect shows, typed into the chat.
    assert_eq!(app.get(&id).await["status"], "pending");
    let (code, _) = crate::wallet::code_at(&app, &redirect).await;
    crate::wallet::typed_in_chat(&app, &id, &cid, &code).await;
    let v = app.get(&id).await;
    assert_eq!(
        (v["status"].as_str(), v["method"].as_str()),
        (Some("authenticated"), Some("wallet"))
    );
    let c = read(&app, &id, &cid, &app.keys.bot).await;
    assert_eq!(
        (c["state"].as_str(), c["wallet"]["result"].as_str()),
        (Some("used"), Some("verified")),
        "{c}"
    );

    // Another expectation: the same credential does not match, the
    // challenge fails.
    let (cid, link) = start(&app, &id, json!({"family_name": "Babbage"})).await;
    let (ok, did) = holder_library(&app, tools, (&access.chain_pem, &link), &[]).await;
    assert!(ok, "the gateway took the answer: {did}");
    let c = read(&app, &id, &cid, &app.keys.bot).await;
    assert_eq!(
        (c["state"].as_str(), c["wallet"]["result"].as_str()),
        (Some("failed"), Some("claims_mismatch")),
        "{c}"
    );
}

/// A bank asks for the PID as an mdoc or as an SD-JWT VC in one request
/// (DCQL `credential_sets`): the library's wallet, which holds the SD-JWT
/// VC, answers that query alone, and Ada is signed in with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintained_holder_library_answers_one_of_two_credentials() {
    use crate::wallet::{ada, interaction, read, spawn_wallet};
    let Some(tools) = node_and_modules(&WALLET_PACKAGES) else {
        return;
    };
    let extra = "[[wallet.credentials]]\nid = \"pid_mdoc\"\nformat = \"mso_mdoc\"\n\
        doctype = \"eu.europa.ec.eudi.pid.1\"\nnamespace = \"eu.europa.ec.eudi.pid.1\"\n\
        claims = { family_name = \"family_name\", birthdate = \"birth_date\" }\n";
    let Some((app, access)) = spawn_wallet(Backend::Memory, extra).await else {
        return;
    };
    let tools = (tools.0.as_str(), tools.1.as_path());
    let id = interaction(&app, "cust-ada").await;
    let body = json!({"method": "wallet", "credential": ["pid_mdoc", "pid"], "match": ada()});
    let (cid, link) = crate::wallet::started(&app, &id, body).await;
    let (ok, did) = holder_library(&app, tools, (&access.chain_pem, &link), &[]).await;
    assert!(ok, "{did}");
    assert_eq!(did["credential_queries"], json!(["pid_mdoc", "pid"]));
    assert_eq!(
        did["credential_sets"],
        json!([{"options": [["pid_mdoc"], ["pid"]]}])
    );
    assert_eq!(did["credential_query"], "pid");
    assert_eq!(did["trusted_authorities"][0]["type"], "aki");
    assert_eq!(did["disclosed"], json!(["birthdate", "family_name"]));
    let redirect = did["response_uri"]["body"]["redirect_uri"]
        .as_str()
        .unwrap();
    let (code, _) = crate::wallet::code_at(&app, redirect).await;
    crate::wallet::typed_in_chat(&app, &id, &cid, &code).await;
    assert_eq!(app.get(&id).await["status"], "authenticated");
    let w = read(&app, &id, &cid, &app.keys.bot).await["wallet"].clone();
    assert_eq!(
        (w["credential"].as_str(), w["format"].as_str()),
        (Some("pid"), Some("dc+sd-jwt"))
    );
    assert_eq!(w["credentials"], json!(["pid", "pid_mdoc"]), "{w}");
}

/// With `client_id_prefix = "x509_san_dns"` the library checks another
/// name: the certificate's DNS name must be the client identifier, and the
/// `response_uri`'s host that name; Ada's answer authenticates her.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintained_holder_library_takes_the_verifier_named_by_its_host() {
    use crate::wallet::{ada, interaction, spawn_wallet, start};
    let Some(tools) = node_and_modules(&WALLET_PACKAGES) else {
        return;
    };
    let extra = r#"client_id_prefix = "x509_san_dns""#;
    let Some((app, access)) = spawn_wallet(Backend::Memory, extra).await else {
        return;
    };
    let tools = (tools.0.as_str(), tools.1.as_path());
    let id = interaction(&app, "cust-ada").await;
    let (cid, link) = start(&app, &id, ada()).await;
    let (ok, did) = holder_library(&app, tools, (&access.chain_pem, &link), &[]).await;
    assert!(ok, "{did}");
    assert_eq!(did["client_id"], "x509_san_dns:gateway.test");
    let redirect = did["response_uri"]["body"]["redirect_uri"]
        .as_str()
        .unwrap();
    let (code, _) = crate::wallet::code_at(&app, redirect).await;
    crate::wallet::typed_in_chat(&app, &id, &cid, &code).await;
    let v = app.get(&id).await;
    assert_eq!(
        (v["status"].as_str(), v["method"].as_str()),
        (Some("authenticated"), Some("wallet"))
    );
}

/// The bank's SCA attestation as `tests/interop/wallet.mjs` holds it: the
/// type it issues it under (`SCA_VCT` there), no claims, a payment only.
/// These rounds approve payments of a wallet not registered first
/// (`registration = "none"`); the registration round has its own bank.
const SCA: &str = "[[wallet.credentials]]\nid = \"sca\"\nformat = \"dc+sd-jwt\"\n\
                   vct = [\"https://bank.acme.example/sca/1\"]\npurpose = \"sca\"\n\
                   registration = \"none\"\n";

/// The same attestation with `registration` left at its default,
/// `"required"`: a payment is approved only by a registered wallet.
const SCA_REGISTERED: &str = "[[wallet.credentials]]\nid = \"sca\"\nformat = \"dc+sd-jwt\"\n\
                   vct = [\"https://bank.acme.example/sca/1\"]\npurpose = \"sca\"\n";

/// Starts a payment of `wallet_payments::payment()` in the wallet for a
/// new interaction of `customer`: (interaction, challenge, link path).
async fn payment_in_the_wallet(app: &TestApp, customer: &str) -> (String, String, String) {
    let id = crate::wallet::interaction(app, customer).await;
    let body = json!({"method": "wallet", "credential": "sca",
                      "transaction": crate::wallet_payments::payment()});
    let (cid, link) = crate::wallet::started(app, &id, body).await;
    (id, cid, link)
}

/// A bank whose `[wallet]` has the `sca` credential, on the memory store,
/// and `node` with the wallet's modules; None when skipped.
async fn bank_and_wallet() -> Option<(TestApp, crate::wallet::Access, (String, PathBuf))> {
    let tools = node_and_modules(&WALLET_PACKAGES)?;
    let (app, access) = crate::wallet::spawn_wallet(Backend::Memory, SCA).await?;
    Some((app, access, tools))
}

/// The base64url SHA-256 of the string `entry` itself, as the gateway
/// expects it in `transaction_data_hashes`.
fn hash_of(entry: &Value) -> Value {
    use base64::Engine as _;
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(entry.as_str().expect("an entry").as_bytes());
    json!([base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(digest)])
}

/// The payment round (docs/wallet.md#a-payment-approved-in-the-wallet):
/// the library parses the request's `transaction_data` itself, the wallet
/// shows the payment it approves and presents the bank's SCA attestation
/// with a Key Binding JWT whose `transaction_data_hashes` the library
/// computed; the binding code typed into the chat gives the approval,
/// whose token names the wallet and its authentication code.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintained_holder_library_approves_a_payment_in_the_wallet() {
    use crate::wallet::{code_at, read};
    let Some((app, access, (node, modules))) = bank_and_wallet().await else {
        return;
    };
    let tools = (node.as_str(), modules.as_path());
    let (id, cid, link) = payment_in_the_wallet(&app, "cust-pay").await;
    let jti = ["--jti", "psd2-interop-1"];
    let (ok, did) = holder_library(&app, tools, (&access.chain_pem, &link), &jti).await;
    assert!(ok, "{did}");
    // What the library read of the request: the payment, for this
    // challenge, to be approved by the sca credential.
    let p = &did["payment"];
    assert_eq!(p["type"], "urn:eudi:sca:payment:1", "{did}");
    assert_eq!(p["credential_ids"], json!(["sca"]));
    assert_eq!(p["transaction_id"], cid.as_str());
    assert_eq!(p["amount"].as_f64(), Some(120.0));
    assert_eq!(p["currency"], "EUR");
    assert_eq!(
        p["payee"],
        json!({"name": "ACME Energy Ltd", "id": "DE89370400440532013000"})
    );
    assert_eq!(did["credential_query"], "sca");
    assert_eq!(did["disclosed"], json!([]));
    assert_eq!(
        did["kb_payment"],
        json!([
            "amr",
            "jti",
            "response_mode",
            "transaction_data_hashes",
            "transaction_data_hashes_alg"
        ])
    );
    // The library's hash is the one this test computes of the entry sent.
    assert_eq!(
        did["transaction_data_hashes"],
        hash_of(&did["transaction_data"])
    );

    // Verified, not yet approved: the binding code, typed into the chat.
    assert_eq!(app.get(&id).await["status"], "pending");
    let c = read(&app, &id, &cid, &app.keys.bot).await;
    assert_eq!(
        (c["state"].as_str(), c["wallet"]["result"].as_str()),
        (Some("open"), Some("verified")),
        "{c}"
    );
    assert!(c["approval"].is_null(), "{c}");
    let redirect = did["response_uri"]["body"]["redirect_uri"]
        .as_str()
        .unwrap();
    let (code, _) = code_at(&app, redirect).await;
    let res = app.verify_code(&id, &cid, &code).await;
    assert_eq!(res.status(), 200);
    let verified: Value = res.json().await.unwrap();
    let token = verified["approval"]["token"].as_str().expect("a token");
    let claims = crate::wallet_payments::jwt_claims(token);
    assert_eq!(claims["amr"], json!(["wallet"]));
    assert_eq!(claims["transaction"], crate::wallet_payments::payment());
    assert_eq!(claims["sca"]["code"], "psd2-interop-1");
    assert_eq!(
        claims["sca"]["amr"],
        json!([{"knowledge": "pin_6_or_more_digits"},
               {"possession": "key_in_local_native_wscd"}])
    );
    assert_eq!(
        claims["sca"]["issuer"],
        crate::wallet::fixtures()["issuer_subject"]
    );
    let v = app.get(&id).await;
    assert_eq!(
        (v["status"].as_str(), v["method"].as_str()),
        (Some("authenticated"), Some("wallet"))
    );
}

/// The registration round (docs/wallet.md#registering-the-wallet-for-payments):
/// the customer, proven by a login link, registers the library's SCA
/// attestation (the bank asks for it with no payment; its binding code
/// typed into the chat registers its holder key); that wallet then
/// approves a payment, and a second wallet's attestation of the same
/// issuer, bound to another key, is refused as `invalid_presentation`,
/// reason `not_registered`, counted as a failed presentation.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintained_holder_library_registers_its_attestation_and_only_it_approves() {
    use crate::wallet::{code_at, failures, read, typed_in_chat};
    let Some(tools) = node_and_modules(&WALLET_PACKAGES) else {
        return;
    };
    let Some((app, access)) = crate::wallet::spawn_wallet(Backend::Memory, SCA_REGISTERED).await
    else {
        return;
    };
    let tools = (tools.0.as_str(), tools.1.as_path());
    let customer = "cust-registers";
    // No registration yet: the payment is refused at the ask.
    let id = crate::wallet::interaction(&app, customer).await;
    let body = json!({"method": "wallet", "credential": "sca",
                      "transaction": crate::wallet_payments::payment()});
    let res = crate::wallet::ask(&app, &id, body).await;
    assert_problem(res, 409, "not_registered").await;
    // Registered after a login link.
    app.authenticate(&id, customer).await;
    let body = json!({"method": "wallet", "credential": "sca", "register": true});
    let (cid, link) = crate::wallet::started(&app, &id, body).await;
    let registering = ["--register"];
    let (ok, did) = holder_library(&app, tools, (&access.chain_pem, &link), &registering).await;
    assert!(ok, "{did}");
    assert!(did["payment"].is_null(), "{did}");
    assert!(did["transaction_data"].is_null(), "{did}");
    let redirect = did["response_uri"]["body"]["redirect_uri"]
        .as_str()
        .unwrap();
    let (code, _) = code_at(&app, redirect).await;
    typed_in_chat(&app, &id, &cid, &code).await;
    let c = read(&app, &id, &cid, &app.keys.bot).await;
    assert_eq!(c["wallet"]["registered"], true, "{c}");
    let listed = app
        .get_json(
            &format!("/v1/subjects/{customer}/wallets"),
            Some(&app.keys.agent),
        )
        .await;
    let issuer = crate::wallet::fixtures()["issuer_subject"].clone();
    assert_eq!(listed.as_array().map(Vec::len), Some(1), "{listed}");
    assert_eq!(listed[0]["issuer"], issuer);
    assert!(listed[0]["last_used_at"].is_null(), "{listed}");

    // That wallet approves a payment.
    let (id, cid, link) = payment_in_the_wallet(&app, customer).await;
    let jti = ["--jti", "psd2-registered-1"];
    let (ok, did) = holder_library(&app, tools, (&access.chain_pem, &link), &jti).await;
    assert!(ok, "{did}");
    let redirect = did["response_uri"]["body"]["redirect_uri"]
        .as_str()
        .unwrap();
    let (code, _) = code_at(&app, redirect).await;
    let res = app.verify_code(&id, &cid, &code).await;
    assert_eq!(res.status(), 200);
    let verified: Value = res.json().await.unwrap();
    assert!(verified["approval"]["token"].is_string(), "{verified}");
    let listed = app
        .get_json(
            &format!("/v1/subjects/{customer}/wallets"),
            Some(&app.keys.bot),
        )
        .await;
    assert!(listed[0]["last_used_at"].is_string(), "{listed}");

    // A second wallet: the same issuer's attestation, another key.
    let other = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let other = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(other.to_bytes())
    };
    let (id, cid, link) = payment_in_the_wallet(&app, customer).await;
    let second = ["--holder", other.as_str(), "--jti", "psd2-second-1"];
    let (ok, did) = holder_library(&app, tools, (&access.chain_pem, &link), &second).await;
    assert!(ok, "the gateway took the answer: {did}");
    let c = read(&app, &id, &cid, &app.keys.bot).await;
    assert_eq!(
        (c["state"].as_str(), c["wallet"]["result"].as_str()),
        (Some("failed"), Some("invalid_presentation")),
        "{c}"
    );
    assert!(c["approval"].is_null(), "{c}");
    assert_eq!(failures(&app, customer).await, json!(1));
    assert_ne!(app.get(&id).await["status"], "authenticated");
}

/// The refusal round: the same wallet with one thing altered (the amount
/// in its own hash input, no `amr`, an authentication code already used)
/// is answered 200 as every presentation is, and the challenge fails as
/// `invalid_presentation`, counted as a wrong code; nothing approves.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_maintained_holder_library_s_altered_payment_is_refused_and_counts() {
    use crate::wallet::{failures, read};
    let Some((app, access, (node, modules))) = bank_and_wallet().await else {
        return;
    };
    let tools = (node.as_str(), modules.as_path());
    // A payment verified with the authentication code `psd2-used`: the code
    // is claimed once the presentation verifies, its binding code untyped.
    let (id, cid, link) = payment_in_the_wallet(&app, "cust-first").await;
    let used = ["--jti", "psd2-used"];
    let (ok, did) = holder_library(&app, tools, (&access.chain_pem, &link), &used).await;
    assert!(ok, "{did}");
    let c = read(&app, &id, &cid, &app.keys.bot).await;
    assert_eq!(c["wallet"]["result"], "verified", "{c}");
    let cases: [(&str, &[&str]); 3] = [
        ("amount", &["--tamper", "amount", "--jti", "psd2-amount"]),
        ("amr", &["--tamper", "amr", "--jti", "psd2-amr"]),
        ("jti", &used),
    ];
    for (altered, extra) in cases {
        let customer = format!("cust-altered-{altered}");
        let (id, cid, link) = payment_in_the_wallet(&app, &customer).await;
        let (ok, did) = holder_library(&app, tools, (&access.chain_pem, &link), extra).await;
        assert!(ok, "the gateway took the answer: {altered}: {did}");
        let signed = &did["transaction_data_hashes"];
        assert_eq!(
            signed == &hash_of(&did["transaction_data"]),
            altered != "amount",
            "{altered}: {did}"
        );
        let c = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(
            (c["state"].as_str(), c["wallet"]["result"].as_str()),
            (Some("failed"), Some("invalid_presentation")),
            "{altered}: {c}"
        );
        assert!(c["approval"].is_null(), "{altered}: {c}");
        assert_eq!(failures(&app, &customer).await, json!(1), "{altered}");
        assert_ne!(app.get(&id).await["status"], "authenticated", "{altered}");
    }
}

/// The official TypeScript SDK's client (`tests/interop/mcp.mjs`) drives
/// the MCP server (docs/agents.md#tests): the handshake, the tools
/// checked against their output schemas, a wait, a tool error and a
/// JSON-RPC error, and the session ended.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_mcp_sdk_client_lists_calls_waits_and_meets_errors() {
    let Some((node, modules)) = node_and_modules(&["@modelcontextprotocol/sdk"]) else {
        return;
    };
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let mut client = tokio::process::Command::new(node);
    client.env("MCP_MODULES", modules);
    let seen = mcp_client(client, "mcp.mjs", &app).await;
    assert_eq!(seen["server"], "chatgate");
    assert_eq!(seen["session"], true);
    assert_eq!(
        seen["tools"],
        json!([
            "start_verification",
            "get_verification",
            "confirm_chat_code",
            "check_assurance"
        ])
    );
    assert_eq!(seen["started"]["sent_to"], "chat");
    assert_eq!(seen["first"]["status"], "pending");
    assert_eq!(
        seen["waited"], seen["first"],
        "nothing changed: the wait ends as it stood"
    );
    assert_eq!(seen["refused"]["isError"], true);
    assert_eq!(
        seen["refused"]["problem"]["status"], 410,
        "no challenge open: {seen}"
    );
    assert_eq!(seen["assurance"]["satisfied"], false);
    assert_eq!(seen["unknown"], -32602);
}

/// PyPI's `mcp` 2.x client (`tests/interop/mcp_client.py`), which speaks
/// the stateless 2026-07-28 (docs/agents.md#tests): it negotiates that
/// version by `server/discover`, lists the tools, starts a verification
/// and reads it with no session, and meets a tool error for arguments
/// that break a schema and a JSON-RPC error for an unknown tool.
/// `CHATGATE_TEST_MCP_PYTHON` names a Python that has it (.ci/run
/// installs one); without it the test says so and does not run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_python_mcp_client_speaks_2026_07_28_without_a_session() {
    let Ok(python) = std::env::var("CHATGATE_TEST_MCP_PYTHON") else {
        eprintln!("SKIPPED: CHATGATE_TEST_MCP_PYTHON is not set (a Python with PyPI's mcp 2.x; .ci/run sets it)");
        return;
    };
    let Some(app) = spawn_app(Backend::Memory).await else {
        return;
    };
    let seen = mcp_client(tokio::process::Command::new(python), "mcp_client.py", &app).await;
    assert_eq!(seen["version"], "2026-07-28", "{seen}");
    assert_eq!(seen["server"], "chatgate");
    assert_eq!(
        seen["tools"],
        json!([
            "start_verification",
            "get_verification",
            "confirm_chat_code",
            "check_assurance"
        ])
    );
    assert_eq!(seen["started"]["sent_to"], "chat");
    assert_eq!(seen["read"]["status"], "pending");
    assert!(
        seen["seconds"].as_f64().unwrap() < 20.0,
        "a stateless read without `after` does not wait: {seen}"
    );
    assert_eq!(seen["broken"]["isError"], true);
    let problem = &seen["broken"]["problem"];
    assert_eq!(problem["status"], 422, "{seen}");
    assert!(problem["detail"]
        .as_str()
        .unwrap()
        .contains("/wait_seconds"));
    assert_eq!(seen["unknown"], -32602);
}

/// Runs an MCP client of `tests/interop/` (`script`, by `program`) against
/// `app`'s `/mcp` as its bot, on the channel `webchat`: the JSON line it
/// printed last, once it exited with success.
async fn mcp_client(mut program: tokio::process::Command, script: &str, app: &TestApp) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = program
        .arg(dir.join("tests/interop").join(script))
        .args(["--url", &app.url("/mcp")])
        .args(["--key", &app.keys.bot])
        .args(["--channel", "webchat"])
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the client within 60 s")
        .expect("the client runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("{script}: {stdout}{}", String::from_utf8_lossy(&out.stderr));
    let seen: Value = serde_json::from_str(stdout.lines().last().expect("its line")).unwrap();
    assert!(out.status.success(), "{seen}");
    seen
}
