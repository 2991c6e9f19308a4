//! A wallet link's page (docs/wallet.md#the-link-page) in a real browser,
//! on a 360 px phone, through the Digital Credentials API: before the
//! page's script runs, the API is stubbed (`window.DigitalCredential`
//! present, `navigator.credentials.get` recording what it is handed and
//! keeping its promise's resolver); the test wallet of `wallet.rs` answers
//! the request the page handed over, and the test settles the promise with
//! its answer or a refusal: a verified answer shows the binding code, and
//! only that code typed into the chat authenticates; after a refusal (no
//! wallet on the device answered) the API's button is no longer offered.
//! The page's sentence is its one heading, and each button is named for
//! what it does. Without the API the
//! page offers the `openid4vp://` link and its QR code only; relayed to
//! the credential's owner, its wallet's answer shows the code in the
//! owner's browser alone, never on the page that showed the QR code
//! (docs/wallet.md#the-code-typed-into-the-chat). On both stores.
use std::time::Duration;

use p256::pkcs8::DecodePrivateKey as _;
use serde_json::{json, Value};

use super::driver::Browser;
use super::TWO_S;
use crate::helpers::*;
use crate::wallet::{
    ada, answer_for, code_at, encrypt, failures, interaction, present, present_to_page, read,
    respond, spawn_wallet, start, typed_in_chat, verified_jwt, Access,
};

/// Run in every document before the page's script: the Digital
/// Credentials API stubbed in `window.__dc` (`calls`: what `get` was
/// handed; `resolve`, `reject`: its last promise's), and the page's POSTs
/// recorded (`posted`: url, body, status). At `#no-dc` the browser has no
/// such API instead.
const STUB: &str = "(function(){\
if(location.hash==='#no-dc'){Object.defineProperty(window,'DigitalCredential',\
{value:undefined,configurable:true,writable:true});return;}\
var dc={calls:[],posted:[]};window.__dc=dc;\
if(!window.DigitalCredential){window.DigitalCredential=function DigitalCredential(){};}\
var creds=navigator.credentials;\
if(!creds){creds={};Object.defineProperty(navigator,'credentials',{value:creds});}\
Object.defineProperty(creds,'get',{configurable:true,writable:true,value:function(arg){\
dc.calls.push(JSON.parse(JSON.stringify(arg)));\
return new Promise(function(resolve,reject){dc.resolve=resolve;dc.reject=reject;});}});\
var f=window.fetch;window.fetch=function(url,opts){var p=f.apply(this,arguments);\
if(!opts||opts.method!=='POST'){return p;}\
var rec={url:String(url),body:opts.body};dc.posted.push(rec);\
return p.then(function(r){rec.status=r.status;return r;});};})();";

/// The page's poll moves on within a few seconds of the answer.
const WITHIN: Duration = Duration::from_secs(5);

const DONE: &str = "Thank you. You can go back to the chat.";
const FAILED: &str = "This did not confirm it is you";

/// Whether the page's Digital Credentials button is offered.
const DC_SHOWN: &str = "!document.getElementById('dc').hidden && \
    getComputedStyle(document.getElementById('dc')).display !== 'none'";

/// A wallet gateway on `backend`, and a phone's browser with the API
/// stubbed; `None` (skipped) without Redis or a browser.
async fn stubbed(backend: Backend) -> Option<(TestApp, Access, Browser)> {
    let (app, a) = spawn_wallet(backend, "").await?;
    let b = Browser::start(360, 740).await?;
    b.on_new_document(STUB).await;
    Some((app, a, b))
}

/// A browser on `link`'s page with the API stubbed, its button shown.
async fn page_with_the_api(b: &Browser, app: &TestApp, link: &str) {
    b.c.goto(&app.url(link)).await.unwrap();
    b.wait_for("the API's button", DC_SHOWN, vec![], TWO_S)
        .await;
}

/// Waits for the page's `n`th call of `navigator.credentials.get`; checks
/// what it handed the API (one `openid4vp-v1-signed` request, the page's
/// signed request object for `dc_api.jwt`, signed by the access key of
/// `a`) and returns the request's claims.
async fn handed_request(b: &Browser, a: &Access, n: usize) -> Value {
    b.wait_for(
        &format!("call {n} of navigator.credentials.get"),
        "window.__dc.calls.length === arguments[0]",
        vec![json!(n)],
        TWO_S,
    )
    .await;
    let arg = b
        .js("return window.__dc.calls[arguments[0] - 1]", vec![json!(n)])
        .await;
    let requests = arg["digital"]["requests"].as_array().expect("requests");
    assert_eq!(requests.len(), 1, "{arg}");
    assert_eq!(requests[0]["protocol"], "openid4vp-v1-signed");
    let jwt = requests[0]["data"]["request"].as_str().expect("a request");
    let on_page = b
        .js(
            "return document.getElementById('w').dataset.request",
            vec![],
        )
        .await;
    assert_eq!(on_page, json!(jwt), "the page's own request object");
    let signing = p256::ecdsa::SigningKey::from_pkcs8_pem(&a.key_pem).unwrap();
    let (header, claims) = verified_jwt(jwt, signing.verifying_key());
    assert_eq!(header["typ"], "oauth-authz-req+jwt");
    assert_eq!(claims["response_mode"], "dc_api.jwt");
    assert_eq!(claims["expected_origins"], json!(["http://gateway.test"]));
    assert!(claims.get("response_uri").is_none(), "{claims}");
    assert!(claims["nonce"].as_str().is_some_and(|n| n.len() >= 22));
    claims
}

/// The wallet's answer to `asked` (the fixtures' `case` credential, key
/// bound to the request's `nonce` and the page's origin, as
/// docs/wallet.md#results says of the Digital Credentials API), given to
/// the page as the API's result.
async fn answer(b: &Browser, app: &TestApp, asked: &Value, case: &str) {
    let now = app.now().unix_seconds();
    let payload = json!({"vp_token": {"pid": [present_to_page(case, asked, now)]}});
    let jwe = encrypt(asked, &payload);
    b.js(
        "window.__dc.resolve({protocol: 'openid4vp-v1-signed', data: {response: arguments[0]}})",
        vec![json!(jwe)],
    )
    .await;
}

/// The end page the page's poll opened shows `text`.
async fn ends_with(b: &Browser, text: &str) {
    b.wait_for(
        &format!("the end page: {text}"),
        "location.pathname.endsWith('/done') && document.body.textContent.includes(arguments[0])",
        vec![json!(text)],
        WITHIN,
    )
    .await;
}

/// The binding code the page shows once the wallet's verified answer
/// came back to it (`page_wallet_code`), while nothing is authenticated.
async fn shown_code(b: &Browser) -> String {
    b.wait_for(
        "the binding code on the page",
        "document.querySelector('h1').textContent.includes('in the chat to finish')",
        vec![],
        WITHIN,
    )
    .await;
    let h1 = b
        .js("return document.querySelector('h1').textContent", vec![])
        .await;
    let h1 = h1.as_str().unwrap();
    assert!(
        h1.starts_with("Your wallet confirmed it is you. Type "),
        "{h1}"
    );
    let code: String = h1.chars().filter(char::is_ascii_digit).collect();
    assert_eq!(code.len(), 6, "{h1}");
    code
}

/// The page's sentence (`page_wallet_start`) is shown once, as its one
/// heading; each button says what it does (`page_wallet_here`,
/// `page_wallet_open`), and says nothing else.
async fn labelled_once(b: &Browser) {
    let page = b
        .js(
            "return {h1: [...document.querySelectorAll('h1')].map(h => h.textContent), \
             text: document.body.innerText, \
             dc: document.getElementById('dc').textContent, \
             open: document.getElementById('open').textContent}",
            vec![],
        )
        .await;
    let h1 = page["h1"].as_array().expect("headings");
    assert_eq!(h1.len(), 1, "{page}");
    let heading = h1[0].as_str().unwrap();
    assert!(
        heading.contains("is asking you to confirm it is you with your wallet"),
        "{page}"
    );
    assert_eq!(
        page["text"].as_str().unwrap().matches(heading).count(),
        1,
        "{page}"
    );
    assert_eq!(page["dc"], "Use a wallet on this device", "{page}");
    assert_eq!(page["open"], "Open my wallet", "{page}");
}

/// The page loaded nothing from elsewhere and raised no script error.
async fn clean(b: &Browser, app: &TestApp) {
    b.assert_no_script_errors().await;
    let urls = b.request_urls().await;
    let fetched: Vec<&String> = urls.iter().filter(|u| u.starts_with("http")).collect();
    assert!(
        fetched.iter().all(|u| u.starts_with(&app.base)),
        "nothing from elsewhere: {fetched:?}"
    );
}

async fn a_customer_presents_through_the_api(backend: Backend) {
    let Some((app, a, b)) = stubbed(backend).await else {
        return;
    };
    let id = interaction(&app, "cust-dc").await;
    let (cid, link) = start(&app, &id, ada()).await;

    // A browser without the API: the wallet link and its QR code only.
    b.c.goto(&app.url(&format!("{link}#no-dc"))).await.unwrap();
    b.wait_for(
        "the page without the API",
        "document.querySelector('.qr svg') !== null",
        vec![],
        TWO_S,
    )
    .await;
    let shown = b
        .js(
            "return ['dc', 'open'].map(function(i){\
             return getComputedStyle(document.getElementById(i)).display;})",
            vec![],
        )
        .await;
    assert_eq!(shown, json!(["none", "block"]), "no API, no button for it");

    page_with_the_api(&b, &app, &link).await;
    labelled_once(&b).await;
    b.screenshot("wallet-dc-360.png").await;
    b.click("#dc").await;
    let asked = handed_request(&b, &a, 1).await;
    answer(&b, &app, &asked, "es256").await;
    let code = shown_code(&b).await;
    // The credential is proven, not yet the person in the chat.
    assert_eq!(app.get(&id).await["status"], "pending");
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let h1 = b
        .js("return document.querySelector('h1').textContent", vec![])
        .await;
    assert!(
        h1.as_str().unwrap().contains(&code),
        "the poll leaves the code shown"
    );
    typed_in_chat(&app, &id, &cid, &code).await;
    ends_with(&b, DONE).await;

    let v = app.get(&id).await;
    assert_eq!(v["status"], "authenticated");
    assert_eq!(v["method"], "wallet");
    let c = read(&app, &id, &cid, &app.keys.bot).await;
    assert_eq!(c["state"], "used", "{c}");
    assert_eq!(c["wallet"]["result"], "verified", "{c}");
    clean(&b, &app).await;
    b.close().await;
}

async fn claims_that_do_not_match_fail_on_the_page(backend: Backend) {
    let Some((app, a, b)) = stubbed(backend).await else {
        return;
    };
    let id = interaction(&app, "cust-dc-other").await;
    let (cid, link) = start(&app, &id, json!({"family_name": "Babbage"})).await;
    page_with_the_api(&b, &app, &link).await;
    b.click("#dc").await;
    let asked = handed_request(&b, &a, 1).await;
    answer(&b, &app, &asked, "es256").await;
    ends_with(&b, FAILED).await;
    let text = b.js("return document.body.textContent", vec![]).await;
    let text = text.as_str().unwrap();
    assert!(!text.contains("family_name") && !text.contains("Babbage"));

    let c = read(&app, &id, &cid, &app.keys.bot).await;
    assert_eq!(c["state"], "failed", "{c}");
    assert_eq!(c["wallet"]["result"], "claims_mismatch", "{c}");
    assert_eq!(failures(&app, "cust-dc-other").await, 1);
    assert_ne!(app.get(&id).await["status"], "authenticated");
    clean(&b, &app).await;
    b.close().await;
}

async fn a_refusal_counts_nothing_and_the_page_offers_to_try_again(backend: Backend) {
    let Some((app, a, b)) = stubbed(backend).await else {
        return;
    };
    let id = interaction(&app, "cust-dc-refuses").await;
    let (cid, link) = start(&app, &id, ada()).await;
    page_with_the_api(&b, &app, &link).await;
    b.click("#dc").await;
    let first = handed_request(&b, &a, 1).await;
    b.js(
        "window.__dc.reject(new DOMException('The user declined', 'NotAllowedError'))",
        vec![],
    )
    .await;
    b.wait_for(
        "the refusal is posted and taken",
        "window.__dc.posted.length === 1 && window.__dc.posted[0].status === 200",
        vec![],
        TWO_S,
    )
    .await;
    let posted = b.js("return window.__dc.posted[0]", vec![]).await;
    assert_eq!(posted["url"], format!("{link}/response"), "{posted}");
    let body: Value = serde_json::from_str(posted["body"].as_str().unwrap()).unwrap();
    assert_eq!(body, json!({"error": "access_denied"}));
    // Nothing counted: the challenge open, no failure, not authenticated.
    let c = read(&app, &id, &cid, &app.keys.bot).await;
    assert_eq!(c["state"], "open", "{c}");
    assert_eq!(c["wallet"]["result"], Value::Null, "{c}");
    assert_eq!(failures(&app, "cust-dc-refuses").await, 0);
    assert_ne!(app.get(&id).await["status"], "authenticated");
    let path = b
        .js("return location.pathname + location.hash", vec![])
        .await;
    assert_eq!(path, json!(link), "the page stays");

    // No wallet on this device answered: its button is no longer offered,
    // and the link's button, which opens a wallet here or by the QR code
    // on another device, has the focus.
    b.wait_for(
        "the API's button no longer offered, the link's focused",
        "getComputedStyle(document.getElementById('dc')).display === 'none' \
         && document.activeElement === document.getElementById('open')",
        vec![],
        TWO_S,
    )
    .await;
    // The page fetched again offers it again: the customer tries again
    // with that page's request.
    page_with_the_api(&b, &app, &link).await;
    b.click("#dc").await;
    let again = handed_request(&b, &a, 1).await;
    assert_ne!(again["nonce"], first["nonce"], "each fetch its own request");
    answer(&b, &app, &again, "es256").await;
    let code = shown_code(&b).await;
    typed_in_chat(&app, &id, &cid, &code).await;
    ends_with(&b, DONE).await;
    assert_eq!(app.get(&id).await["method"], "wallet");
    clean(&b, &app).await;
    b.close().await;
}

/// The attacker's chat asks for the credential's owner's wallet; the
/// attacker opens the page in their browser and relays its QR code; the
/// owner's wallet fetches the request, answers, and opens its redirect in
/// the owner's browser (another cookie jar), which alone shows the code.
/// The attacker's page moves on to where to look, never the code, and
/// the attacker's chat is not authenticated.
async fn a_relayed_qr_code_shows_the_code_only_where_the_wallet_answered(backend: Backend) {
    let Some((app, a, b)) = stubbed(backend).await else {
        return;
    };
    let attacker = interaction(&app, "cust-ada").await;
    let (cid, link) = start(&app, &attacker, ada()).await;
    b.c.goto(&app.url(&format!("{link}#no-dc"))).await.unwrap();
    b.wait_for(
        "the QR code",
        "document.querySelector('.qr svg') !== null",
        vec![],
        TWO_S,
    )
    .await;
    let href = b
        .js(
            "return document.getElementById('open').getAttribute('href')",
            vec![],
        )
        .await;
    let query = href
        .as_str()
        .unwrap()
        .trim_start_matches("openid4vp://?")
        .to_string();
    let request_uri = url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == "request_uri")
        .map(|(_, v)| v.into_owned())
        .expect("the request_uri");
    // The owner's wallet, scanning the relayed QR code.
    let res = app
        .request(
            reqwest::Method::POST,
            request_uri.trim_start_matches("http://gateway.test"),
            None,
        )
        .header("content-type", "application/x-www-form-urlencoded")
        .body("wallet_nonce=wn-7")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let signing = p256::ecdsa::SigningKey::from_pkcs8_pem(&a.key_pem).unwrap();
    let (_, asked) = verified_jwt(&res.text().await.unwrap(), signing.verifying_key());
    let now = app.now().unix_seconds();
    let answered = respond(
        &app,
        &answer_for(&asked, &present("es256", &asked, None, now)),
    )
    .await;
    assert_eq!(answered.status(), 200);
    let body: Value = answered.json().await.unwrap();
    let (code, _) = code_at(&app, body["redirect_uri"].as_str().unwrap()).await;
    // The attacker's page: where to look, never the code.
    ends_with(&b, "Continue on the device where your wallet opened.").await;
    let text = b.js("return document.body.textContent", vec![]).await;
    assert!(!text.as_str().unwrap().contains(&code));
    let v = app.get(&attacker).await;
    assert_ne!(v["status"], "authenticated", "{v}");
    let c = read(&app, &attacker, &cid, &app.keys.bot).await;
    assert_eq!(c["awaiting_code"], true, "{c}");
    clean(&b, &app).await;
    b.close().await;
}

macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {$(
        mod $name {
            use crate::helpers::Backend;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                super::$name(Backend::Memory).await;
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                super::$name(Backend::Redis).await;
            }
        }
    )*};
}

on_both_stores!(
    a_customer_presents_through_the_api,
    claims_that_do_not_match_fail_on_the_page,
    a_refusal_counts_nothing_and_the_page_offers_to_try_again,
    a_relayed_qr_code_shows_the_code_only_where_the_wallet_answered,
);
