//! Credentials from the customer's wallet (docs/wallet.md), end to end
//! with a wallet written here, not the gateway's code: the issuer-signed
//! SD-JWT VC comes from the independent fixtures
//! (tests/fixtures/wallet/fixtures.json); the holder's Key Binding JWT is
//! signed here with p256 (ES256) over this request's `client_id` and
//! `nonce`, and the ECDH-ES JWE is made here with p256 (the key
//! agreement), sha2 (the Concat KDF) and aes-gcm (A128GCM). The gateway's
//! access certificate is made by rcgen. The gateway's clock stands at the
//! fixtures' `now`, where their certificates and credentials hold.
use aes_gcm::aead::{Aead, KeyInit, Payload};
use base64::engine::general_purpose::URL_SAFE_NO_PAD as B64URL;
use base64::Engine as _;
use chatgate::time::Timestamp;
use p256::ecdsa::signature::{Signer as _, Verifier as _};
use p256::elliptic_curve::point::AffineCoordinates as _;
use p256::elliptic_curve::sec1::{FromEncodedPoint as _, ToEncodedPoint as _};
use p256::pkcs8::DecodePrivateKey as _;
use reqwest::Method;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::helpers::*;

pub(crate) fn fixtures() -> Value {
    serde_json::from_str(include_str!("../fixtures/wallet/fixtures.json")).unwrap()
}

/// The gateway's access certificate: a P-256 key (PKCS#8 PEM), and its
/// chain: a leaf naming `gateway.test`, the test's public host, issued by
/// a CA whose self-signed certificate follows it (never sent in `x5c`).
pub(crate) struct Access {
    pub(crate) key_pem: String,
    pub(crate) chain_pem: String,
}

pub(crate) fn access() -> Access {
    let ca_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut ca = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca.distinguished_name
        .push(rcgen::DnType::CommonName, "Test Access CA");
    let ca = ca.self_signed(&ca_key).unwrap();
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let cert = rcgen::CertificateParams::new(vec!["gateway.test".to_string()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    Access {
        key_pem: key.serialize_pem(),
        chain_pem: format!("{}{}", cert.pem(), ca.pem()),
    }
}

/// acme with a `[wallet]` of one SD-JWT VC credential, `pid`.
pub(crate) fn wallet_setup(a: &Access, extra: &str) -> Setup {
    let f = fixtures();
    let trusted = f["trusted"][0].as_str().unwrap();
    Setup {
        team_extra: format!(
            "[wallet]\nsigning_key = '''\n{}'''\ncertificate_chain = '''\n{}'''\n\
             trusted_issuers = ['''\n{trusted}''']\n{extra}\n\
             [[wallet.credentials]]\nid = \"pid\"\nformat = \"dc+sd-jwt\"\n\
             vct = [\"urn:eudi:pid:1\"]\nclaims = [\"given_name\", \"family_name\", \"birthdate\"]\n",
            a.key_pem, a.chain_pem
        ),
        ..Setup::default()
    }
}

/// A gateway with acme's `[wallet]`, its clock at the fixtures' `now`.
pub(crate) async fn spawn_wallet(backend: Backend, extra: &str) -> Option<(TestApp, Access)> {
    let a = access();
    let app = spawn_with(backend, wallet_setup(&a, extra)).await?;
    let now = fixtures()["now"].as_i64().unwrap();
    app.clock.set(Timestamp::from_unix_seconds(now));
    Some((app, a))
}

macro_rules! wallet_test {
    ($name:ident, $body:expr) => {
        wallet_test!($name, "", $body);
    };
    ($name:ident, $extra:expr, $body:expr) => {
        mod $name {
            use super::*;
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn memory() {
                if let Some((app, a)) = spawn_wallet(Backend::Memory, $extra).await {
                    ($body)(app, a).await;
                }
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn redis() {
                if let Some((app, a)) = spawn_wallet(Backend::Redis, $extra).await {
                    ($body)(app, a).await;
                }
            }
        }
    };
}

/// The expected values the bank knows of Ada.
pub(crate) fn ada() -> Value {
    json!({"family_name": "Lovelace", "birthdate": "1815-12-10"})
}

pub(crate) async fn interaction(app: &TestApp, customer: &str) -> String {
    let v = app
        .create(
            json!({"channel": "webchat", "conversation_id": uuid::Uuid::now_v7().to_string(),
                       "customer_ref": customer}),
        )
        .await;
    v["id"].as_str().unwrap().to_string()
}

pub(crate) async fn ask(app: &TestApp, id: &str, body: Value) -> reqwest::Response {
    let path = format!("/v1/interactions/{id}/challenges");
    app.post_json(&path, Some(&app.keys.bot), &body).await
}

/// Asks for the wallet challenge `body`: (challenge id, the path of the
/// link the chat got).
pub(crate) async fn started(app: &TestApp, id: &str, body: Value) -> (String, String) {
    started_as(app, &app.keys.bot, id, body).await
}

/// [`started`] with the bot key `key` (of any team).
pub(crate) async fn started_as(
    app: &TestApp,
    key: &str,
    id: &str,
    body: Value,
) -> (String, String) {
    let path = format!("/v1/interactions/{id}/challenges");
    let res = app.post_json(&path, Some(key), &body).await;
    assert_eq!(res.status(), 201, "{}", res.text().await.unwrap());
    let c: Value = res.json().await.unwrap();
    assert_eq!(c["method"], "wallet");
    let cid = c["challenge_id"].as_str().unwrap().to_string();
    let link = app.chat_messages().await.iter().rev().find_map(|m| {
        let text = m["text"]
            .as_str()
            .filter(|_| m["purpose"] == "wallet_link")?;
        let url = text.split_whitespace().find(|w| w.contains("/w/"))?;
        url.strip_prefix("http://gateway.test").map(str::to_string)
    });
    (cid, link.expect("the wallet link"))
}

/// Starts a wallet challenge for `expected`: (challenge id, link path).
pub(crate) async fn start(app: &TestApp, id: &str, expected: Value) -> (String, String) {
    let (cid, link) = started(app, id, json!({"method": "wallet", "match": expected})).await;
    let code = link.trim_start_matches("/w/");
    assert!(code.len() >= 22, "at least 128 random bits: {code}");
    (cid, link)
}

pub(crate) struct Page {
    pub(crate) status: u16,
    headers: reqwest::header::HeaderMap,
    pub(crate) body: String,
}

pub(crate) async fn open(app: &TestApp, path: &str) -> Page {
    let res = app
        .request(Method::GET, path, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    let (status, headers) = (res.status().as_u16(), res.headers().clone());
    Page {
        status,
        headers,
        body: res.text().await.unwrap(),
    }
}

/// The `openid4vp://` link of a page: its `client_id` and the path of
/// its `request_uri`.
pub(crate) fn wallet_link(page: &Page) -> (String, String) {
    let href = page
        .body
        .split("href=\"openid4vp://?")
        .nth(1)
        .and_then(|r| r.split('"').next())
        .expect("the wallet link")
        .replace("&amp;", "&");
    let pairs: Vec<(String, String)> = url::form_urlencoded::parse(href.as_bytes())
        .into_owned()
        .collect();
    let get = |k: &str| pairs.iter().find(|(n, _)| n == k).unwrap().1.clone();
    assert_eq!(get("request_uri_method"), "post");
    let uri = get("request_uri");
    (
        get("client_id"),
        uri.trim_start_matches("http://gateway.test").to_string(),
    )
}

fn b64(s: &str) -> Vec<u8> {
    B64URL.decode(s).unwrap()
}

/// A JWT's header and claims, its ES256 signature checked with `key`.
pub(crate) fn verified_jwt(jwt: &str, key: &p256::ecdsa::VerifyingKey) -> (Value, Value) {
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3);
    let sig = p256::ecdsa::Signature::from_slice(&b64(parts[2])).unwrap();
    key.verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &sig)
        .expect("signed by the access certificate's key");
    let json = |p: &str| serde_json::from_slice::<Value>(&b64(p)).unwrap();
    (json(parts[0]), json(parts[1]))
}

/// Fetches the link's page and its request object as a wallet would
/// (`request_uri_method=post`, with a `wallet_nonce`): the request's claims.
pub(crate) async fn fetch_request(app: &TestApp, a: &Access, link: &str) -> Value {
    let page = open(app, link).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let (client_id, request_path) = wallet_link(&page);
    let res = app
        .request(Method::POST, &request_path, None)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("wallet_nonce=wn-42&wallet_metadata=%7B%7D")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    assert_eq!(
        res.headers()["content-type"],
        "application/oauth-authz-req+jwt"
    );
    let jwt = res.text().await.unwrap();
    let signing = p256::ecdsa::SigningKey::from_pkcs8_pem(&a.key_pem).unwrap();
    let (header, claims) = verified_jwt(&jwt, signing.verifying_key());
    assert_eq!(header["typ"], "oauth-authz-req+jwt");
    assert_eq!(header["alg"], "ES256");
    assert_eq!(header["x5c"].as_array().unwrap().len(), 1);
    assert_eq!(claims["client_id"], client_id);
    assert_eq!(claims["wallet_nonce"], "wn-42");
    claims
}

/// The fixture credential `case` presented to `asked` (its `client_id`
/// and `nonce`, unless `nonce` says otherwise), with a Key Binding JWT
/// signed here by the holder's key at `iat`.
pub(crate) fn present(case: &str, asked: &Value, nonce: Option<&str>, iat: i64) -> String {
    let f = fixtures();
    bind(f["cases"][case].as_str().unwrap(), asked, nonce, iat)
}

/// The issued SD-JWT VC `full` (its own Key Binding JWT, if any, left
/// out) presented as [`present`] says.
fn bind(full: &str, asked: &Value, nonce: Option<&str>, iat: i64) -> String {
    let (without_kb, _) = full.rsplit_once('~').unwrap();
    let presented = format!("{without_kb}~");
    let sd_hash = B64URL.encode(Sha256::digest(presented.as_bytes()));
    let header = json!({"typ": "kb+jwt", "alg": "ES256"});
    let claims = json!({
        "iat": iat, "aud": asked["client_id"],
        "nonce": nonce.map_or(asked["nonce"].clone(), Value::from), "sd_hash": sd_hash,
    });
    let holder = signing_key(&fixtures()["holder"]["d"]);
    format!("{presented}{}", signed_jws(&header, &claims, &holder))
}

/// A P-256 key from its JWK `d`.
pub(crate) fn signing_key(d: &Value) -> p256::ecdsa::SigningKey {
    p256::ecdsa::SigningKey::from_slice(&b64(d.as_str().unwrap())).unwrap()
}

/// A compact JWS of `header` and `claims`, ES256 by `key`.
pub(crate) fn signed_jws(header: &Value, claims: &Value, key: &p256::ecdsa::SigningKey) -> String {
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let sig: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64URL.encode(sig.to_bytes()))
}

/// As [`present`], for an answer through the page (the Digital
/// Credentials API): the key binding's `aud` is `origin:` and the page's
/// origin, not the `client_id` (docs/wallet.md#results).
pub(crate) fn present_to_page(case: &str, asked: &Value, iat: i64) -> String {
    let mut to_page = asked.clone();
    to_page["client_id"] = json!("origin:http://gateway.test");
    present(case, &to_page, None, iat)
}

/// RFC 7518's Concat KDF with SHA-256, one round, no apu/apv.
fn concat_kdf(z: &[u8], alg: &str, bits: u32) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update((alg.len() as u32).to_be_bytes());
    h.update(alg.as_bytes());
    h.update(0u32.to_be_bytes());
    h.update(0u32.to_be_bytes());
    h.update(bits.to_be_bytes());
    h.finalize()[..(bits / 8) as usize].to_vec()
}

/// `payload` encrypted to the request's key: a compact JWE, `ECDH-ES`,
/// `A128GCM`, `kid` the key's.
pub(crate) fn encrypt(asked: &Value, payload: &Value) -> String {
    let jwk = &asked["client_metadata"]["jwks"]["keys"][0];
    let x: [u8; 32] = b64(jwk["x"].as_str().unwrap()).try_into().unwrap();
    let y: [u8; 32] = b64(jwk["y"].as_str().unwrap()).try_into().unwrap();
    let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
    let to = p256::PublicKey::from_encoded_point(&point).unwrap();
    let eph = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let z = (to.to_projective() * *eph.to_nonzero_scalar())
        .to_affine()
        .x();
    let epk = eph.public_key().to_encoded_point(false);
    let header = json!({
        "alg": "ECDH-ES", "enc": "A128GCM", "kid": jwk["kid"],
        "epk": {"kty": "EC", "crv": "P-256",
                "x": B64URL.encode(epk.x().unwrap()), "y": B64URL.encode(epk.y().unwrap())},
    });
    let h = B64URL.encode(header.to_string());
    let cek = concat_kdf(&z, "A128GCM", 128);
    let iv: [u8; 12] = rand::random();
    let cipher = aes_gcm::Aes128Gcm::new_from_slice(&cek).unwrap();
    let sealed = cipher
        .encrypt(
            &iv.into(),
            Payload {
                msg: payload.to_string().as_bytes(),
                aad: h.as_bytes(),
            },
        )
        .unwrap();
    let (ct, tag) = sealed.split_at(sealed.len() - 16);
    format!(
        "{h}..{}.{}.{}",
        B64URL.encode(iv),
        B64URL.encode(ct),
        B64URL.encode(tag)
    )
}

/// The wallet's answer for `presentation` (direct_post: with `state`).
pub(crate) fn answer_for(asked: &Value, presentation: &str) -> String {
    let payload = json!({"state": asked["state"], "vp_token": {"pid": [presentation]}});
    encrypt(asked, &payload)
}

async fn post_form(app: &TestApp, path: &str, form: String) -> reqwest::Response {
    app.request(Method::POST, path, None)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form)
        .send()
        .await
        .unwrap()
}

pub(crate) async fn respond(app: &TestApp, jwe: &str) -> reqwest::Response {
    let form = format!(
        "response={}",
        url::form_urlencoded::byte_serialize(jwe.as_bytes()).collect::<String>()
    );
    post_form(app, "/w/response", form).await
}

pub(crate) async fn read(app: &TestApp, id: &str, cid: &str, key: &str) -> Value {
    app.get_json(
        &format!("/v1/interactions/{id}/challenges/{cid}"),
        Some(key),
    )
    .await
}

pub(crate) async fn failures(app: &TestApp, customer: &str) -> Value {
    app.get_json(&format!("/v1/subjects/{customer}"), Some(&app.keys.agent))
        .await["failures"]
        .clone()
}

/// The binding code a verified answer's `redirect_uri` shows where the
/// wallet opens it (a browser without cookies): 200 `page_wallet_code`,
/// its cookie for that browser, and the code.
pub(crate) async fn code_at(app: &TestApp, redirect_uri: &str) -> (String, String) {
    let path = redirect_uri.trim_start_matches("http://gateway.test");
    assert!(path.contains("/done?response_code="), "{redirect_uri}");
    let res = app
        .request(Method::GET, path, None)
        .header("accept", "text/html")
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), 200);
    let cookie = res.headers()["set-cookie"].to_str().unwrap().to_string();
    for part in ["Path=/w/", "HttpOnly", "SameSite=Lax"] {
        assert!(cookie.contains(part), "{cookie}");
    }
    let body = res.text().await.unwrap();
    assert!(
        body.contains("Your wallet confirmed it is you. Type <strong>"),
        "{body}"
    );
    let code = body
        .split("<strong>")
        .nth(1)
        .and_then(|r| r.split("</strong>").next())
        .unwrap()
        .to_string();
    let cookie = cookie.split(';').next().unwrap().to_string();
    (code, cookie)
}

/// The code typed into the chat, passed on by the bot: authenticated.
pub(crate) async fn typed_in_chat(app: &TestApp, id: &str, cid: &str, code: &str) {
    let res = app.verify_code(id, cid, code).await;
    assert_eq!(res.status(), 200, "{}", res.text().await.unwrap());
}

/// A `direct_post` answer's `redirect_uri` opened by the wallet, and the
/// code it shows typed into the chat: the code and the redirect.
pub(crate) async fn bound(
    app: &TestApp,
    answered: reqwest::Response,
    id: &str,
    cid: &str,
) -> (String, String) {
    assert_eq!(answered.status(), 200);
    let body: Value = answered.json().await.unwrap();
    let redirect = body["redirect_uri"].as_str().unwrap().to_string();
    let (code, _) = code_at(app, &redirect).await;
    typed_in_chat(app, id, cid, &code).await;
    (code, redirect)
}

/// A Digital Credentials API answer the page posted: the code its answer
/// carries typed into the chat.
pub(crate) async fn bound_on_page(app: &TestApp, answered: reqwest::Response, id: &str, cid: &str) {
    assert_eq!(answered.status(), 200);
    let body: Value = answered.json().await.unwrap();
    assert_eq!(body["state"], "answered", "{body}");
    let code = body["code"].as_str().expect("the binding code");
    assert!(
        code.len() == 6 && code.bytes().all(|b| b.is_ascii_digit()),
        "{code}"
    );
    typed_in_chat(app, id, cid, code).await;
}

async fn presentations(app: &TestApp, result: &str) -> f64 {
    let text = app
        .request(Method::GET, "/metrics", None)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let series =
        format!("chatgate_wallet_presentations_total{{format=\"dc+sd-jwt\",result=\"{result}\"}} ");
    let line = text.lines().find_map(|l| l.strip_prefix(series.as_str()));
    line.expect("the series").trim().parse().unwrap()
}

wallet_test!(
    a_matching_credential_shows_a_binding_code_where_it_came_back_then_authenticates,
    |app: TestApp, a: Access| async move {
        let now = app.now().unix_seconds();
        let id = interaction(&app, "cust-ada").await;
        let (cid, link) = start(&app, &id, ada()).await;
        let opened = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(opened["state"], "open");
        assert_eq!(opened["wallet"]["credential"], "pid");
        assert_eq!(opened["wallet"]["result"], Value::Null);

        // The page: its own script only, nothing loaded from anywhere.
        let page = open(&app, &link).await;
        assert_eq!(page.status, 200);
        let h = &page.headers;
        assert_eq!(h["cache-control"], "no-store");
        assert_eq!(h["referrer-policy"], "no-referrer");
        assert_eq!(h["x-frame-options"], "DENY");
        let csp = h["content-security-policy"].to_str().unwrap();
        assert!(
            csp.starts_with("default-src 'none'") && csp.contains("script-src 'sha256-"),
            "{csp}"
        );
        assert!(!csp.contains("unsafe"), "{csp}");
        let said = "acme is asking you to confirm it is you with your wallet, for the chat \
                    conversation you are in now. Only continue if you are chatting with acme \
                    right now.";
        assert!(page.body.contains(said), "{}", page.body);
        assert!(page.body.contains("<svg"), "the QR code is inline");
        assert!(!page.body.contains(" src="), "{}", page.body);

        let asked = fetch_request(&app, &a, &link).await;
        assert_eq!(asked["aud"], "https://self-issued.me/v2");
        assert_eq!(asked["iss"], asked["client_id"]);
        assert!(asked["client_id"]
            .as_str()
            .unwrap()
            .starts_with("x509_hash:"));
        assert_eq!(asked["response_type"], "vp_token");
        assert_eq!(asked["response_mode"], "direct_post.jwt");
        assert_eq!(asked["response_uri"], "http://gateway.test/w/response");
        let exp = asked["exp"].as_i64().unwrap();
        assert!(exp - asked["iat"].as_i64().unwrap() <= 300);
        let query = &asked["dcql_query"]["credentials"][0];
        assert_eq!(query["id"], "pid");
        assert_eq!(query["format"], "dc+sd-jwt");
        assert_eq!(query["meta"]["vct_values"], json!(["urn:eudi:pid:1"]));
        assert_eq!(
            query["claims"],
            json!([{"path": ["birthdate"]}, {"path": ["family_name"]}])
        );
        let jwk = &asked["client_metadata"]["jwks"]["keys"][0];
        assert_eq!(
            (jwk["use"].as_str(), jwk["alg"].as_str()),
            (Some("enc"), Some("ECDH-ES"))
        );
        assert!(jwk.get("d").is_none(), "no private key in the request");

        let before = presentations(&app, "verified").await;
        let jwe = answer_for(&asked, &present("es256", &asked, None, now));
        let res = respond(&app, &jwe).await;
        assert_eq!(res.status(), 200);
        let body: Value = res.json().await.unwrap();
        let redirect = body["redirect_uri"].as_str().unwrap().to_string();
        let prefix = format!("http://gateway.test{link}/done?response_code=");
        let rc = redirect.strip_prefix(&prefix).expect("the response_code");
        assert!(rc.len() >= 22, "at least 128 random bits: {rc}");
        assert!(presentations(&app, "verified").await >= before + 1.0);

        // Verified: the credential, not yet the person in the chat.
        let v = app.get(&id).await;
        assert_eq!(v["status"], "pending");
        let bot = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(bot["state"], "open");
        assert_eq!(bot["awaiting_code"], true);
        assert_eq!(bot["wallet"]["result"], "verified");
        assert_eq!(bot["wallet"]["awaiting_code"], true);
        assert_eq!(bot["attempts_remaining"], 3);
        assert_eq!(
            bot["expires_at"],
            json!(app.now().plus(std::time::Duration::from_secs(180))),
            "otp.ttl from the answer"
        );
        let status = app.get_json(&format!("{link}/status"), None).await;
        assert_eq!(status, json!({"state": "answered"}), "never the code");
        // The page that showed the QR code, and the link, show no code.
        let elsewhere = "Continue on the device where your wallet opened.";
        for path in [link.clone(), format!("{link}/done")] {
            let p = open(&app, &path).await;
            assert_eq!(p.status, 200, "{path}");
            assert!(
                p.body.contains(elsewhere) && !p.body.contains("<strong>"),
                "{}",
                p.body
            );
        }
        // Only where the wallet's answer came back, in the first browser.
        let (code, cookie) = code_at(&app, &redirect).await;
        assert_eq!(code.len(), 6);
        let again = app
            .request(
                Method::GET,
                &redirect.replace("http://gateway.test", ""),
                None,
            )
            .header("accept", "text/html")
            .header("cookie", &cookie)
            .send()
            .await
            .unwrap();
        assert!(again
            .text()
            .await
            .unwrap()
            .contains(&format!("<strong>{code}</strong>")));
        let other = open(&app, &redirect.replace("http://gateway.test", "")).await;
        assert!(other.body.contains(elsewhere) && !other.body.contains(&code));
        let wrong_rc = format!("{link}/done?response_code=AAAAAAAAAAAAAAAAAAAAAAAAAAAA");
        assert!(!open(&app, &wrong_rc).await.body.contains("<strong>"));

        typed_in_chat(&app, &id, &cid, &code).await;
        let v = app.get(&id).await;
        assert_eq!(v["status"], "authenticated");
        assert_eq!(v["method"], "wallet");
        let bot = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(bot["state"], "used");
        let w = &bot["wallet"];
        assert_eq!(w["result"], "verified");
        assert_eq!(w["awaiting_code"], false);
        assert_eq!(w["format"], "dc+sd-jwt");
        assert_eq!(w["issuer"], fixtures()["issuer_subject"]);
        assert_eq!(w["matched"], json!(["birthdate", "family_name"]));
        assert_eq!(
            w["claims"],
            json!({"family_name": "Lovelace", "birthdate": "1815-12-10"})
        );
        // An agent sees the names, never the values.
        let agent = read(&app, &id, &cid, &app.keys.agent).await;
        assert_eq!(
            agent["wallet"]["matched"],
            json!(["birthdate", "family_name"])
        );
        assert!(agent["wallet"].get("claims").is_none(), "{agent}");
        assert!(!agent.to_string().contains("Lovelace"));

        // The wallet's page, the poll, the link now used.
        let done = open(&app, &format!("{link}/done")).await;
        assert_eq!(done.status, 200);
        assert!(done
            .body
            .contains("Thank you. You can go back to the chat."));
        let status = app.get_json(&format!("{link}/status"), None).await;
        assert_eq!(status["state"], "done");
        assert_eq!(open(&app, &link).await.status, 410);
        // A second response for the request: 400, nothing changes.
        let again = respond(&app, &jwe).await;
        assert_eq!(again.status(), 400);
        assert_eq!(app.get(&id).await["method"], "wallet");
    }
);

wallet_test!(
    a_wallet_link_relayed_to_the_credential_s_owner_authenticates_no_stranger_s_chat,
    |app: TestApp, a: Access| async move {
        let now = app.now().unix_seconds();
        // The attacker claims to be Ada: the bank asks for Ada's
        // credential, and the link lands in the attacker's chat.
        let attacker = interaction(&app, "cust-ada").await;
        let (cid, link) = start(&app, &attacker, ada()).await;
        // The attacker opens the page and relays its QR code to Ada, whose
        // wallet shows a request genuinely signed by the bank.
        let page = open(&app, &link).await;
        assert!(page
            .body
            .contains("Only continue if you are chatting with acme right now"));
        let asked = fetch_request(&app, &a, &link).await;
        // Ada consents: her wallet answers and opens its redirect in her
        // browser, which alone shows the binding code.
        let res = respond(
            &app,
            &answer_for(&asked, &present("es256", &asked, None, now)),
        )
        .await;
        assert_eq!(res.status(), 200);
        let redirect = res.json::<Value>().await.unwrap()["redirect_uri"]
            .as_str()
            .unwrap()
            .to_string();
        let (code, _) = code_at(&app, &redirect).await;
        // The attacker's chat is not authenticated.
        let v = app.get(&attacker).await;
        assert_ne!(v["status"], "authenticated", "{v}");
        assert!(v["method"].is_null(), "{v}");
        let c = read(&app, &attacker, &cid, &app.keys.bot).await;
        assert_eq!(
            (c["state"].as_str(), c["awaiting_code"].as_bool()),
            (Some("open"), Some(true))
        );
        // The attacker's page (the one that showed the QR code), its poll,
        // its end page and the redirect in the attacker's browser show no
        // code.
        let status = app.get_json(&format!("{link}/status"), None).await;
        assert_eq!(status, json!({"state": "answered"}));
        let elsewhere = "Continue on the device where your wallet opened.";
        let redirect_path = redirect.replace("http://gateway.test", "");
        for path in [link.clone(), format!("{link}/done"), redirect_path] {
            let p = open(&app, &path).await;
            assert!(p.body.contains(elsewhere), "{path}: {}", p.body);
            assert!(!p.body.contains(&code), "{path}");
        }
        // Whatever the attacker's bot passes on but Ada's code is wrong,
        // and counted.
        let res = app.verify_code(&attacker, &cid, &wrong_code(&code)).await;
        assert_problem(res, 401, "invalid_code").await;
        assert_ne!(app.get(&attacker).await["status"], "authenticated");
        // Once the code's life ends, the challenge has expired: nothing
        // counted, nothing authenticated.
        app.advance(181);
        let res = app.verify_code(&attacker, &cid, &code).await;
        assert_problem(res, 410, "challenge_expired").await;
        assert_ne!(app.get(&attacker).await["status"], "authenticated");
    }
);

/// Whether the store holds the record of the request whose key id is
/// `kid`.
async fn request_kept(app: &TestApp, kid: &str) -> bool {
    let key = chatgate::store::keys::wallet_key(kid);
    let store = app.gateway.store();
    store.get(&[key]).await.unwrap()[0].is_some()
}

wallet_test!(
    a_link_is_fetched_ten_times_a_minute_and_the_store_keeps_its_five_newest_requests,
    |app: TestApp, a: Access| async move {
        let id = interaction(&app, "cust-fetches").await;
        let (_, link) = start(&app, &id, ada()).await;
        // Six fetches (each with its request object): the sixth's request
        // removes the oldest's record.
        let mut kids = Vec::new();
        for _ in 0..6 {
            let asked = fetch_request(&app, &a, &link).await;
            let kid = asked["client_metadata"]["jwks"]["keys"][0]["kid"].as_str();
            kids.push(kid.unwrap().to_string());
        }
        assert!(
            !request_kept(&app, &kids[0]).await,
            "the oldest's record is gone"
        );
        for kid in &kids[1..] {
            assert!(request_kept(&app, kid).await);
        }
        // Four more make ten this minute; the eleventh is 429 and makes
        // nothing (the newest five's records stay).
        for _ in 0..4 {
            assert_eq!(open(&app, &link).await.status, 200);
        }
        assert!(request_kept(&app, &kids[5]).await);
        let limited = open(&app, &link).await;
        assert_eq!(limited.status, 429, "{}", limited.body);
        assert_eq!(limited.headers["retry-after"], "60");
        assert!(!limited.body.contains("openid4vp://"));
        assert!(request_kept(&app, &kids[5]).await, "no request was made");
        app.advance(61);
        assert_eq!(open(&app, &link).await.status, 200);
        assert!(!request_kept(&app, &kids[5]).await);
    }
);

wallet_test!(
    each_failure_fails_the_challenge_and_counts_toward_the_lockout,
    |app: TestApp, a: Access| async move {
        let now = app.now().unix_seconds();
        let id = interaction(&app, "cust-fail").await;
        let cases: [(&str, Value, Option<&str>, &str); 4] = [
            (
                "es256",
                json!({"family_name": "Babbage"}),
                None,
                "claims_mismatch",
            ),
            ("untrusted_issuer", ada(), None, "untrusted_issuer"),
            ("expired_issuer", ada(), None, "untrusted_issuer"),
            (
                "es256",
                ada(),
                Some("another-nonce"),
                "invalid_presentation",
            ),
        ];
        let mut counted = 0;
        for (case, expected, nonce, reason) in cases {
            let (cid, link) = start(&app, &id, expected).await;
            let asked = fetch_request(&app, &a, &link).await;
            let res = respond(
                &app,
                &answer_for(&asked, &present(case, &asked, nonce, now)),
            )
            .await;
            assert_eq!(res.status(), 200, "{case}");
            counted += 1;
            let r = read(&app, &id, &cid, &app.keys.bot).await;
            assert_eq!(r["state"], "failed", "{case}: {r}");
            assert_eq!(r["wallet"]["result"], reason, "{case}");
            assert_eq!(failures(&app, "cust-fail").await, counted, "{case}");
            let done = open(&app, &format!("{link}/done")).await;
            assert!(
                done.body.contains("This did not confirm it is you"),
                "{}",
                done.body
            );
            assert!(!done.body.contains("family_name") && !done.body.contains("Babbage"));
            assert_eq!(open(&app, &link).await.status, 410);
        }
        assert_ne!(app.get(&id).await["status"], "authenticated");
    }
);

wallet_test!(
    a_wallet_error_counts_nothing_and_the_challenge_stays_open,
    |app: TestApp, a: Access| async move {
        let now = app.now().unix_seconds();
        let id = interaction(&app, "cust-err").await;
        let (cid, link) = start(&app, &id, ada()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let state = asked["state"].as_str().unwrap();
        let res = post_form(
            &app,
            "/w/response",
            format!("error=access_denied&state={state}"),
        )
        .await;
        assert_eq!(res.status(), 200);
        let refused = app
            .post_json(
                &format!("{link}/response"),
                None,
                &json!({"error": "access_denied"}),
            )
            .await;
        assert_eq!(refused.status(), 200);
        assert_eq!(refused.json::<Value>().await.unwrap()["state"], "open");
        assert_eq!(read(&app, &id, &cid, &app.keys.bot).await["state"], "open");
        assert_eq!(failures(&app, "cust-err").await, 0);
        // The same request can still be answered, here through the page
        // (the Digital Credentials API's result: no state).
        let payload = json!({"vp_token": {"pid": [present_to_page("es256", &asked, now)]}});
        let body = json!({"protocol": "openid4vp-v1-signed", "data": {"response": encrypt(&asked, &payload)}});
        let res = app
            .post_json(&format!("{link}/response"), None, &body)
            .await;
        bound_on_page(&app, res, &id, &cid).await;
        assert_eq!(app.get(&id).await["method"], "wallet");
    }
);

wallet_test!(
    bad_answers_are_400_or_413_and_change_nothing,
    |app: TestApp, a: Access| async move {
        let now = app.now().unix_seconds();
        let id = interaction(&app, "cust-bad").await;
        let (cid, link) = start(&app, &id, ada()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let good = answer_for(&asked, &present("es256", &asked, None, now));
        // A JWE for a key of no request.
        let mut stranger = asked.clone();
        let other = p256::SecretKey::random(&mut rand::rngs::OsRng)
            .public_key()
            .to_encoded_point(false);
        stranger["client_metadata"]["jwks"]["keys"][0] = json!({
            "kty": "EC", "crv": "P-256", "kid": "not-a-request",
            "x": B64URL.encode(other.x().unwrap()), "y": B64URL.encode(other.y().unwrap()),
        });
        assert_eq!(
            respond(&app, &answer_for(&stranger, "x~")).await.status(),
            400
        );
        for form in [
            "response=abc",
            "response=a.b.c.d.e",
            "",
            "response=x&error=y",
        ] {
            let res = post_form(&app, "/w/response", form.to_string()).await;
            assert_eq!(res.status(), 400, "{form}");
        }
        // A request id never made, or a link never issued.
        assert_eq!(
            post_form(&app, &format!("{link}/request/nope"), String::new())
                .await
                .status(),
            400
        );
        let unknown = "/w/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
        assert_eq!(open(&app, unknown).await.status, 404);
        // The page's answer for another link: 400.
        let body = json!({"protocol": "openid4vp-v1-signed", "data": {"response": good}});
        let res = app
            .post_json(&format!("{unknown}/response"), None, &body)
            .await;
        assert_eq!(res.status(), 400);
        // A refusal that carries a result too, or a result of another type:
        // 400 on the link's own page.
        for body in [
            json!({"data": true, "error": "access_denied"}),
            json!({"data": {"response": good}, "error": "access_denied"}),
            json!({"protocol": "openid4vp-v1-signed", "data": true}),
        ] {
            let res = app
                .post_json(&format!("{link}/response"), None, &body)
                .await;
            assert_eq!(res.status(), 400, "{body}");
        }
        // Over 64 KiB: 413 (a fresh client, no pooled connection).
        let fresh = reqwest::Client::builder()
            .pool_max_idle_per_host(0)
            .build()
            .unwrap();
        let big = format!("response={}", "a".repeat(70 * 1024));
        let res = fresh
            .post(app.url("/w/response"))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(big)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 413);
        assert_eq!(read(&app, &id, &cid, &app.keys.bot).await["state"], "open");
        assert_eq!(failures(&app, "cust-bad").await, 0);
        // The good answer still counts once.
        bound(&app, respond(&app, &good).await, &id, &cid).await;
        assert_eq!(app.get(&id).await["method"], "wallet");
    }
);

wallet_test!(
    asking_refuses_what_a_wallet_challenge_cannot_take,
    |app: TestApp, _a: Access| async move {
        let id = interaction(&app, "cust-ask").await;
        let refused = [
            (json!({"method": "wallet"}), "match"),
            (json!({"method": "wallet", "match": {}}), "match"),
            (
                json!({"method": "wallet", "credential": "mdl", "match": ada()}),
                "credential",
            ),
            (
                json!({"method": "wallet", "match": {"nationality": "GB"}}),
                "match.nationality",
            ),
            (
                json!({"method": "wallet", "match": {"family_name": ""}}),
                "match.family_name",
            ),
            (
                json!({"method": "wallet", "match": {"family_name": "x".repeat(201)}}),
                "match.family_name",
            ),
            (
                json!({"method": "wallet", "match": {"family_name": 7}}),
                "match.family_name",
            ),
            (
                json!({"method": "wallet", "match": ada(), "to": "+447400123456"}),
                "to",
            ),
            (
                json!({"method": "wallet", "match": ada(), "entry": "page"}),
                "entry",
            ),
            (
                json!({"method": "wallet", "match": ada(), "delivery": "voice"}),
                "delivery",
            ),
            (json!({"method": "otp", "match": ada()}), "match"),
            (
                json!({"method": "wallet", "match": ada(),
                       "transaction": crate::payments::payment()}),
                "transaction",
            ),
        ];
        let many: serde_json::Map<String, Value> = (0..11)
            .map(|i| (format!("c{i}"), Value::from("v")))
            .collect();
        for (body, member) in refused
            .into_iter()
            .chain([(json!({"method": "wallet", "match": many}), "match")])
        {
            let res = ask(&app, &id, body.clone()).await;
            let p = assert_problem(res, 422, "invalid_request").await;
            let detail = p["detail"].as_str().unwrap_or_default().to_string();
            assert!(
                detail.starts_with(member) || p.to_string().contains(member),
                "{body}: {p}"
            );
        }
        // A team without [wallet].
        let g = app
            .create_as(
                &app.keys.globex_bot,
                json!({"channel": "webchat", "conversation_id": "g-1"}),
            )
            .await;
        let gid = g["id"].as_str().unwrap();
        let path = format!("/v1/interactions/{gid}/challenges");
        let res = app
            .post_json(
                &path,
                Some(&app.keys.globex_bot),
                &json!({"method": "wallet", "match": ada()}),
            )
            .await;
        assert_problem(res, 422, "invalid_request").await;
        // An agent may not reveal its link.
        let (cid, _) = start(&app, &id, ada()).await;
        let path = format!("/v1/interactions/{id}/challenges/{cid}/code");
        let res = app
            .request(Method::GET, &path, Some(&app.keys.agent))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 403);
    }
);

wallet_test!(
    pages_make_requests_keep_five_and_an_expired_link_answers_410,
    |app: TestApp, a: Access| async move {
        let id = interaction(&app, "cust-pages").await;
        let (cid, link) = start(&app, &id, ada()).await;
        let first = open(&app, &link).await;
        let (_, first_request) = wallet_link(&first);
        for _ in 0..5 {
            assert_eq!(open(&app, &link).await.status, 200);
        }
        // The sixth fetch let the first request go.
        let res = post_form(&app, &first_request, String::new()).await;
        assert_eq!(res.status(), 400);
        let asked = fetch_request(&app, &a, &link).await;
        assert_eq!(read(&app, &id, &cid, &app.keys.bot).await["state"], "open");
        // Expired: the link's 410 page, its request 400, its status 410.
        app.advance(301);
        assert_eq!(open(&app, &link).await.status, 410);
        let res = respond(&app, &answer_for(&asked, "x~")).await;
        assert_eq!(res.status(), 400);
        let res = app
            .request(Method::GET, &format!("{link}/status"), None)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 410);
    }
);

/// No claim value (expected or disclosed) in any event or log line.
async fn no_claim_value_in_events_or_logs(backend: Backend) {
    let (capture, _guard) = crate::logs::Capture::at_info();
    let Some((mut app, a)) = spawn_wallet(backend, MDL).await else {
        return;
    };
    let now = app.now().unix_seconds();
    let id = interaction(&app, "cust-logs").await;
    let (_, link) = start_for(&app, &id, "pid", json!({"family_name": "Babbage"})).await;
    let asked = fetch_request(&app, &a, &link).await;
    respond(
        &app,
        &answer_for(&asked, &present("es256", &asked, None, now)),
    )
    .await;
    // An mdoc's disclosed values, failed and verified.
    let (_, link) = start_for(&app, &id, "mdl", json!({"family_name": "Babbage"})).await;
    let asked = fetch_request(&app, &a, &link).await;
    let mdoc = present_mdoc("no_status", &asked, Via::Redirect(None), |_| {});
    respond(&app, &answer_with(&asked, "mdl", &mdoc, true)).await;
    let other = interaction(&app, "cust-logs-mdl").await;
    let (cid, link) = start_for(&app, &other, "mdl", ada_mdl()).await;
    let asked = fetch_request(&app, &a, &link).await;
    let mdoc = present_mdoc("no_status", &asked, Via::Redirect(None), |_| {});
    let res = respond(&app, &answer_with(&asked, "mdl", &mdoc, true)).await;
    let mut secrets = Vec::new();
    let (_, redirect) = bound(&app, res, &other, &cid).await;
    secrets.push(redirect.split("response_code=").nth(1).unwrap().to_string());
    let (cid, link) = start_for(&app, &id, "pid", ada()).await;
    let asked = fetch_request(&app, &a, &link).await;
    let res = respond(
        &app,
        &answer_for(&asked, &present("es256", &asked, None, now)),
    )
    .await;
    let (_, redirect) = bound(&app, res, &id, &cid).await;
    secrets.push(redirect.split("response_code=").nth(1).unwrap().to_string());
    let mut events = Vec::new();
    for _ in 0..100 {
        while let Ok(e) = app.events.try_recv() {
            events.push((
                e.kind.as_str().to_string(),
                serde_json::to_string(&*e).unwrap(),
            ));
        }
        let authenticated = events
            .iter()
            .filter(|(k, _)| k == "interaction.authenticated");
        if authenticated.count() >= 2 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
    assert!(kinds.contains(&"challenge.failed"), "{kinds:?}");
    assert!(kinds.contains(&"interaction.authenticated"), "{kinds:?}");
    let events: Vec<String> = events.into_iter().map(|(_, e)| e).collect();
    let logged = String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    for value in ["Lovelace", "Babbage", "1815-12-10", "2026-01-15", "D-1815"] {
        assert!(!logged.contains(value), "{value} logged");
        for e in &events {
            assert!(!e.contains(value), "{value} in an event: {e}");
        }
    }
    assert!(
        logged.contains("claims_mismatch"),
        "the result is logged by name"
    );
    // No response_code is logged (its redirect's request line neither).
    for rc in &secrets {
        assert!(!logged.contains(rc.as_str()), "a response_code logged");
    }
}

mod no_claim_value_in_events_or_logs {
    use super::*;
    #[tokio::test]
    async fn memory() {
        super::no_claim_value_in_events_or_logs(Backend::Memory).await
    }
    #[tokio::test]
    async fn redis() {
        super::no_claim_value_in_events_or_logs(Backend::Redis).await
    }
}

/// With `client_id_prefix = "x509_san_dns"` the verifier is named by its
/// host, which the access certificate's SAN holds: the request says so,
/// the wallet's key binding is to that name, and the credential proves
/// the customer as with the default prefix.
async fn the_x509_san_dns_prefix_names_the_gateway_s_host(backend: Backend) {
    let extra = r#"client_id_prefix = "x509_san_dns""#;
    let Some((app, a)) = spawn_wallet(backend, extra).await else {
        return;
    };
    let now = app.now().unix_seconds();
    let id = interaction(&app, "cust-dns").await;
    let (cid, link) = start(&app, &id, ada()).await;
    let asked = fetch_request(&app, &a, &link).await;
    assert_eq!(asked["client_id"], "x509_san_dns:gateway.test");
    assert_eq!(asked["iss"], asked["client_id"]);
    // A key binding to the default prefix's name is to another verifier.
    let mut other = asked.clone();
    other["client_id"] = json!("x509_hash:not-this-one");
    let res = respond(
        &app,
        &answer_for(&asked, &present("es256", &other, None, now)),
    )
    .await;
    assert_eq!(res.status(), 200);
    assert_eq!(
        read(&app, &id, &cid, &app.keys.bot).await["wallet"]["result"],
        "invalid_presentation"
    );
    let (cid, link) = start(&app, &id, ada()).await;
    let asked = fetch_request(&app, &a, &link).await;
    let res = respond(
        &app,
        &answer_for(&asked, &present("es256", &asked, None, now)),
    )
    .await;
    bound(&app, res, &id, &cid).await;
    let v = app.get(&id).await;
    assert_eq!(
        (v["status"].as_str(), v["method"].as_str()),
        (Some("authenticated"), Some("wallet"))
    );
}

mod the_x509_san_dns_prefix_names_the_gateway_s_host {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory() {
        super::the_x509_san_dns_prefix_names_the_gateway_s_host(Backend::Memory).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        super::the_x509_san_dns_prefix_names_the_gateway_s_host(Backend::Redis).await
    }
}

// mdoc credentials and Token Status Lists (docs/wallet.md#mdoc,
// docs/wallet.md#status-lists).

/// A `[wallet]` credential `mdl`, before acme's `pid`.
pub(crate) const MDL: &str = "[[wallet.credentials]]\nid = \"mdl\"\nformat = \"mso_mdoc\"\n\
    doctype = \"org.iso.18013.5.1.mDL\"\nnamespace = \"org.iso.18013.5.1\"\n\
    claims = [\"family_name\", \"given_name\", \"birth_date\", \"age_over_18\"]\n";

/// Starts a wallet challenge for `credential` and `expected`: (challenge
/// id, link path).
pub(crate) async fn start_for(
    app: &TestApp,
    id: &str,
    credential: &str,
    expected: Value,
) -> (String, String) {
    let body = json!({"method": "wallet", "credential": credential, "match": expected});
    started(app, id, body).await
}

/// Ada's mdl, as the bank knows her.
pub(crate) fn ada_mdl() -> Value {
    json!({"family_name": "Lovelace", "birth_date": "1815-12-10", "age_over_18": "true"})
}

fn cbor(v: &ciborium::Value) -> Vec<u8> {
    let mut out = Vec::new();
    ciborium::into_writer(v, &mut out).unwrap();
    out
}

fn cbor_text(s: &str) -> ciborium::Value {
    ciborium::Value::Text(s.to_string())
}

/// The member `key` of a CBOR map.
fn cbor_member<'v>(v: &'v mut ciborium::Value, key: &str) -> &'v mut ciborium::Value {
    let ciborium::Value::Map(m) = v else {
        panic!("not a map")
    };
    &mut m
        .iter_mut()
        .find(|(k, _)| k.as_text() == Some(key))
        .unwrap()
        .1
}

/// How the wallet's answer reaches the gateway, and so the handover its
/// device signs (OpenID4VP 1.0, Appendix B.2), computed here from the
/// request as the wallet sees it.
#[derive(Clone, Copy)]
pub(crate) enum Via<'a> {
    /// `direct_post.jwt` to `/w/response`, for a nonce (the request's
    /// unless given).
    Redirect(Option<&'a str>),
    /// The Digital Credentials API, through the page.
    DcApi,
}

/// The RFC 7638 thumbprint of the request's encryption key, computed here.
fn thumbprint(asked: &Value) -> Vec<u8> {
    let jwk = &asked["client_metadata"]["jwks"]["keys"][0];
    let canonical = format!(
        r#"{{"crv":"P-256","kty":"EC","x":"{}","y":"{}"}}"#,
        jwk["x"].as_str().unwrap(),
        jwk["y"].as_str().unwrap()
    );
    Sha256::digest(canonical.as_bytes()).to_vec()
}

/// The SessionTranscript of `asked` reached `via`.
fn session_transcript(asked: &Value, via: Via<'_>) -> ciborium::Value {
    use ciborium::Value as C;
    let s = |k: &str| cbor_text(asked[k].as_str().unwrap());
    let print = C::Bytes(thumbprint(asked));
    let (name, info) = match via {
        Via::Redirect(nonce) => (
            "OpenID4VPHandover",
            vec![
                s("client_id"),
                nonce.map_or_else(|| s("nonce"), cbor_text),
                print,
                s("response_uri"),
            ],
        ),
        Via::DcApi => (
            "OpenID4VPDCAPIHandover",
            vec![cbor_text("http://gateway.test"), s("nonce"), print],
        ),
    };
    let hash = Sha256::digest(cbor(&C::Array(info))).to_vec();
    C::Array(vec![
        C::Null,
        C::Null,
        C::Array(vec![cbor_text(name), C::Bytes(hash)]),
    ])
}

/// The fixtures' mdoc `case` presented to `asked` reached `via`: its
/// issuer-signed part as issued (after `tamper`), its `deviceSignature`
/// made again here by the device key (ES256, COSE_Sign1 with a detached
/// payload) over this request's DeviceAuthentication.
pub(crate) fn present_mdoc(
    case: &str,
    asked: &Value,
    via: Via<'_>,
    tamper: impl FnOnce(&mut ciborium::Value),
) -> String {
    use ciborium::Value as C;
    let f = fixtures();
    let bytes = b64(f["mdoc"]["cases"][case].as_str().unwrap());
    let mut response: C = ciborium::from_reader(bytes.as_slice()).unwrap();
    let documents = cbor_member(&mut response, "documents");
    let C::Array(documents) = documents else {
        panic!("documents")
    };
    let document = &mut documents[0];
    tamper(cbor_member(document, "issuerSigned"));
    let doctype = cbor_member(document, "docType").clone();
    let device_signed = cbor_member(document, "deviceSigned");
    let namespaces = cbor_member(device_signed, "nameSpaces").clone();
    let authentication = C::Array(vec![
        cbor_text("DeviceAuthentication"),
        session_transcript(asked, via),
        doctype,
        namespaces,
    ]);
    let payload = cbor(&C::Tag(24, Box::new(C::Bytes(cbor(&authentication)))));
    let protected = cbor(&C::Map(vec![(
        C::Integer(1.into()),
        C::Integer((-7).into()),
    )]));
    let to_sign = C::Array(vec![
        cbor_text("Signature1"),
        C::Bytes(protected.clone()),
        C::Bytes(Vec::new()),
        C::Bytes(payload),
    ]);
    let device = signing_key(&f["mdoc"]["device"]["d"]);
    let sig: p256::ecdsa::Signature = device.sign(&cbor(&to_sign));
    let signature = C::Array(vec![
        C::Bytes(protected),
        C::Map(Vec::new()),
        C::Null,
        C::Bytes(sig.to_bytes().to_vec()),
    ]);
    *cbor_member(device_signed, "deviceAuth") =
        C::Map(vec![(cbor_text("deviceSignature"), signature)]);
    B64URL.encode(cbor(&response))
}

/// An issuer-signed item's `family_name` changed after issuance: its
/// digest is no longer the MSO's.
fn renamed(issuer_signed: &mut ciborium::Value) {
    use ciborium::Value as C;
    let C::Map(namespaces) = cbor_member(issuer_signed, "nameSpaces") else {
        panic!("nameSpaces")
    };
    let C::Array(items) = &mut namespaces[0].1 else {
        panic!("items")
    };
    for item in items {
        let C::Tag(24, inner) = item else {
            panic!("an embedded item")
        };
        let C::Bytes(raw) = inner.as_mut() else {
            panic!("bytes")
        };
        let mut decoded: C = ciborium::from_reader(raw.as_slice()).unwrap();
        if cbor_member(&mut decoded, "elementIdentifier").as_text() == Some("family_name") {
            *cbor_member(&mut decoded, "elementValue") = cbor_text("Babbage");
            *raw = cbor(&decoded);
        }
    }
}

/// The wallet's encrypted answer for credential `id`, with `state` when
/// it goes by direct post.
pub(crate) fn answer_with(asked: &Value, id: &str, presentation: &str, direct: bool) -> String {
    let mut payload = json!({"vp_token": {id: [presentation]}});
    if direct {
        payload["state"] = asked["state"].clone();
    }
    encrypt(asked, &payload)
}

/// `jwe` posted by the page (the Digital Credentials API's result).
pub(crate) async fn respond_page(app: &TestApp, link: &str, jwe: &str) -> reqwest::Response {
    let body = json!({"protocol": "openid4vp-v1-signed", "data": {"response": jwe}});
    app.post_json(&format!("{link}/response"), None, &body)
        .await
}

wallet_test!(
    an_mdoc_authenticates_through_a_wallet_and_through_the_page,
    MDL,
    |app: TestApp, a: Access| async move {
        let id = interaction(&app, "cust-mdl").await;
        let (cid, link) = start_for(&app, &id, "mdl", ada_mdl()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let query = &asked["dcql_query"]["credentials"][0];
        assert_eq!(query["format"], "mso_mdoc");
        assert_eq!(query["meta"]["doctype_value"], "org.iso.18013.5.1.mDL");
        assert_eq!(
            query["claims"],
            json!([{"path": ["org.iso.18013.5.1", "age_over_18"]},
                   {"path": ["org.iso.18013.5.1", "birth_date"]},
                   {"path": ["org.iso.18013.5.1", "family_name"]}])
        );
        assert!(asked["client_metadata"]["vp_formats_supported"]["mso_mdoc"].is_object());
        let mdoc = present_mdoc("no_status", &asked, Via::Redirect(None), |_| {});
        let res = respond(&app, &answer_with(&asked, "mdl", &mdoc, true)).await;
        bound(&app, res, &id, &cid).await;
        let v = app.get(&id).await;
        assert_eq!(v["status"], "authenticated");
        assert_eq!(v["method"], "wallet");
        let w = read(&app, &id, &cid, &app.keys.bot).await["wallet"].clone();
        assert_eq!(w["result"], "verified");
        assert_eq!(w["format"], "mso_mdoc");
        assert_eq!(w["issuer"], fixtures()["issuer_subject"]);
        assert_eq!(
            w["claims"],
            json!({"family_name": "Lovelace", "birth_date": "1815-12-10", "age_over_18": true})
        );

        // The Digital Credentials API: the page posts the browser's answer,
        // whose device signed the page's origin.
        let id = interaction(&app, "cust-mdl-dc").await;
        let (_, link) = start_for(&app, &id, "mdl", ada_mdl()).await;
        let asked = fetch_request(&app, &a, &link).await;
        // The redirect's transcript does not do for the page.
        let wrong = present_mdoc("no_status", &asked, Via::Redirect(None), |_| {});
        let res = respond_page(&app, &link, &answer_with(&asked, "mdl", &wrong, false)).await;
        assert_eq!(res.status(), 200);
        assert_eq!(res.json::<Value>().await.unwrap()["state"], "failed");
        assert_eq!(failures(&app, "cust-mdl-dc").await, 1);
        let (cid, link) = start_for(&app, &id, "mdl", ada_mdl()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let mdoc = present_mdoc("no_status", &asked, Via::DcApi, |_| {});
        let res = respond_page(&app, &link, &answer_with(&asked, "mdl", &mdoc, false)).await;
        bound_on_page(&app, res, &id, &cid).await;
        assert_eq!(app.get(&id).await["method"], "wallet");
    }
);

/// A failing mdoc: its fixture case, the expected claims, how it is
/// answered, what is changed after issuance, the result.
type MdocCase<'a> = (&'a str, Value, Via<'a>, fn(&mut ciborium::Value), &'a str);

wallet_test!(
    each_mdoc_failure_fails_the_challenge_and_counts,
    MDL,
    |app: TestApp, a: Access| async move {
        let id = interaction(&app, "cust-mdl-fail").await;
        let babbage = json!({"family_name": "Babbage"});
        let cases: [MdocCase<'_>; 4] = [
            (
                "no_status",
                babbage,
                Via::Redirect(None),
                |_| {},
                "claims_mismatch",
            ),
            (
                "untrusted_issuer",
                ada_mdl(),
                Via::Redirect(None),
                |_| {},
                "untrusted_issuer",
            ),
            (
                "no_status",
                ada_mdl(),
                Via::Redirect(None),
                renamed,
                "invalid_presentation",
            ),
            (
                "no_status",
                ada_mdl(),
                Via::Redirect(Some("n-another")),
                |_| {},
                "invalid_presentation",
            ),
        ];
        for (n, (case, expected, via, tamper, result)) in cases.into_iter().enumerate() {
            let (cid, link) = start_for(&app, &id, "mdl", expected).await;
            let asked = fetch_request(&app, &a, &link).await;
            let mdoc = present_mdoc(case, &asked, via, tamper);
            let res = respond(&app, &answer_with(&asked, "mdl", &mdoc, true)).await;
            assert_eq!(res.status(), 200, "{case} {result}");
            let c = read(&app, &id, &cid, &app.keys.bot).await;
            assert_eq!(c["state"], "failed", "{case} {result}");
            assert_eq!(c["wallet"]["result"], result, "{case}");
            assert!(c["wallet"]["claims"]
                .as_object()
                .is_none_or(|o| o.is_empty() || result == "claims_mismatch"));
            assert_eq!(failures(&app, "cust-mdl-fail").await, n as u64 + 1);
        }
        assert_ne!(app.get(&id).await["status"], "authenticated");
    }
);

/// The fixtures' ES256 issuer's key, which signs their credentials and
/// status lists.
fn issuer_key() -> p256::ecdsa::SigningKey {
    signing_key(&fixtures()["issuer_key"]["d"])
}

/// The header and claims of a compact JWS, unchecked.
fn jws_parts(jws: &str) -> (Value, Value) {
    let mut parts = jws.split('.');
    let mut json = || serde_json::from_slice::<Value>(&b64(parts.next().unwrap())).unwrap();
    (json(), json())
}

/// The fixtures' SD-JWT VC issued again by their issuer, naming entry
/// `idx` of the list at `uri`.
fn issued_with_status(idx: u64, uri: &str) -> String {
    let full = fixtures()["cases"]["with_status"]
        .as_str()
        .unwrap()
        .to_string();
    let (jwt, rest) = full.split_once('~').unwrap();
    let (header, mut claims) = jws_parts(jwt);
    claims["status"] = json!({"status_list": {"idx": idx, "uri": uri}});
    format!("{}~{rest}", signed_jws(&header, &claims, &issuer_key()))
}

/// The fixtures' packed status list (2 bits: 0 valid, 1 invalid, 2
/// suspended, 3 other) signed again by their issuer for `uri`.
fn status_list(uri: &str) -> String {
    let good = fixtures()["status"]["lists"]["good"]
        .as_str()
        .unwrap()
        .to_string();
    let (header, mut claims) = jws_parts(&good);
    claims["sub"] = json!(uri);
    signed_jws(&header, &claims, &issuer_key())
}

fn served_list(uri: &str) -> wiremock::ResponseTemplate {
    wiremock::ResponseTemplate::new(200)
        .set_body_raw(status_list(uri).into_bytes(), "application/statuslist+jwt")
}

wallet_test!(
    a_revoked_or_suspended_credential_fails_with_revoked_and_counts,
    |app: TestApp, a: Access| async move {
        use wiremock::matchers::{method, path};
        let server = wiremock::MockServer::start().await;
        let uri = format!("{}/statuslists/1", server.uri());
        // Fetched once: kept for its ttl across the three presentations.
        wiremock::Mock::given(method("GET"))
            .and(path("/statuslists/1"))
            .respond_with(served_list(&uri))
            .expect(1)
            .mount(&server)
            .await;
        let now = app.now().unix_seconds();
        let id = interaction(&app, "cust-revoked").await;
        for (n, idx) in [1u64, 2].into_iter().enumerate() {
            let (cid, link) = start(&app, &id, ada()).await;
            let asked = fetch_request(&app, &a, &link).await;
            let presented = bind(&issued_with_status(idx, &uri), &asked, None, now);
            let res = respond(&app, &answer_for(&asked, &presented)).await;
            assert_eq!(res.status(), 200, "entry {idx}");
            let c = read(&app, &id, &cid, &app.keys.bot).await;
            assert_eq!(c["state"], "failed");
            assert_eq!(c["wallet"]["result"], "revoked", "entry {idx}");
            assert_eq!(failures(&app, "cust-revoked").await, n as u64 + 1);
        }
        let (cid, link) = start(&app, &id, ada()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let presented = bind(&issued_with_status(0, &uri), &asked, None, now);
        let res = respond(&app, &answer_for(&asked, &presented)).await;
        bound(&app, res, &id, &cid).await;
        assert_eq!(app.get(&id).await["method"], "wallet");
        server.verify().await;
    }
);

wallet_test!(
    a_status_list_that_fails_or_hangs_is_502_and_the_challenge_stays_open,
    |app: TestApp, a: Access| async move {
        use wiremock::matchers::path;
        let server = wiremock::MockServer::start().await;
        let uri = format!("{}/statuslists/1", server.uri());
        let now = app.now().unix_seconds();
        let id = interaction(&app, "cust-502").await;
        let (cid, link) = start(&app, &id, ada()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let jwe = answer_for(
            &asked,
            &bind(&issued_with_status(0, &uri), &asked, None, now),
        );
        let failing = [
            wiremock::ResponseTemplate::new(500),
            // Past the 5 s budget.
            served_list(&uri).set_delay(std::time::Duration::from_secs(30)),
            wiremock::ResponseTemplate::new(200).set_body_raw("x", "text/plain"),
        ];
        for (n, template) in failing.into_iter().enumerate() {
            // Past the hold of the previous failure: asked again.
            app.advance(5);
            server.reset().await;
            wiremock::Mock::given(path("/statuslists/1"))
                .respond_with(template)
                .expect(1)
                .mount(&server)
                .await;
            let res = respond(&app, &jwe).await;
            assert_problem(res, 502, "channel_error").await;
            assert_eq!(
                read(&app, &id, &cid, &app.keys.bot).await["state"],
                "open",
                "{n}"
            );
            assert_eq!(failures(&app, "cust-502").await, 0);
            server.verify().await;
        }
        // The list back: the same answer now succeeds.
        app.advance(5);
        server.reset().await;
        wiremock::Mock::given(path("/statuslists/1"))
            .respond_with(served_list(&uri))
            .mount(&server)
            .await;
        bound(&app, respond(&app, &jwe).await, &id, &cid).await;
        assert_eq!(app.get(&id).await["method"], "wallet");
    }
);

/// docs/wallet.md#status-lists: three answers against a list answering
/// 500 ask its issuer once and log one warning; past the 5 s hold it is
/// asked again, still one warning; back, one line says it is read again.
#[tokio::test]
async fn a_failing_status_list_is_asked_and_logged_once_while_it_fails() {
    use wiremock::matchers::path;
    // This test's own thread (a current-thread runtime runs the gateway here too).
    let (capture, _guard) = crate::logs::Capture::at_info();
    let Some((app, a)) = spawn_wallet(Backend::Memory, "").await else {
        return;
    };
    let server = wiremock::MockServer::start().await;
    let uri = format!("{}/statuslists/1", server.uri());
    let down = || {
        wiremock::Mock::given(path("/statuslists/1"))
            .respond_with(wiremock::ResponseTemplate::new(500))
            .expect(1)
    };
    down().mount(&server).await;
    let now = app.now().unix_seconds();
    let id = interaction(&app, "cust-held").await;
    let (cid, link) = start(&app, &id, ada()).await;
    let asked = fetch_request(&app, &a, &link).await;
    let jwe = answer_for(
        &asked,
        &bind(&issued_with_status(0, &uri), &asked, None, now),
    );
    for _ in 0..3 {
        assert_problem(respond(&app, &jwe).await, 502, "channel_error").await;
    }
    server.verify().await;
    let logged = || String::from_utf8(capture.0.lock().unwrap().clone()).unwrap();
    let warnings = |text: &str| {
        let about = |l: &&str| l.contains(" WARN ") && l.contains("status list");
        text.lines().filter(about).count()
    };
    assert_eq!(warnings(&logged()), 1, "{}", logged());
    assert!(
        logged().contains("a status list cannot be read"),
        "{}",
        logged()
    );
    // Past the hold: asked again, and still failing says nothing more.
    server.reset().await;
    down().mount(&server).await;
    app.advance(5);
    for _ in 0..2 {
        assert_problem(respond(&app, &jwe).await, 502, "channel_error").await;
    }
    server.verify().await;
    assert_eq!(warnings(&logged()), 1, "{}", logged());
    assert_eq!(read(&app, &id, &cid, &app.keys.bot).await["state"], "open");
    // Back: the answer succeeds, and one line says the list is read again.
    server.reset().await;
    wiremock::Mock::given(path("/statuslists/1"))
        .respond_with(served_list(&uri))
        .mount(&server)
        .await;
    app.advance(5);
    assert_eq!(respond(&app, &jwe).await.status(), 200);
    let text = logged();
    let back: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("a status list is read again"))
        .collect();
    assert_eq!(back.len(), 1, "{text}");
    assert!(back[0].contains("failed_attempts=5"), "{text}");
    assert!(
        !text.contains("/statuslists/1"),
        "the list's path is never logged: {text}"
    );
}

/// The MSO of `issuer_signed` made to name entry `idx` of the list at
/// `uri`, and signed again by the fixtures' issuer (ES256).
fn mso_naming(issuer_signed: &mut ciborium::Value, idx: u64, uri: &str) {
    use ciborium::Value as C;
    let C::Array(auth) = cbor_member(issuer_signed, "issuerAuth") else {
        panic!("issuerAuth")
    };
    let C::Bytes(payload) = &auth[2] else {
        panic!("payload")
    };
    let C::Tag(24, inner) = ciborium::from_reader::<C, _>(payload.as_slice()).unwrap() else {
        panic!("an embedded MSO")
    };
    let C::Bytes(mso) = *inner else {
        panic!("bytes")
    };
    let mut mso: C = ciborium::from_reader(mso.as_slice()).unwrap();
    let C::Map(entries) = &mut mso else {
        panic!("the MSO")
    };
    entries.retain(|(k, _)| k.as_text() != Some("status"));
    let list = C::Map(vec![
        (cbor_text("idx"), C::Integer(idx.into())),
        (cbor_text("uri"), cbor_text(uri)),
    ]);
    entries.push((
        cbor_text("status"),
        C::Map(vec![(cbor_text("status_list"), list)]),
    ));
    let payload = cbor(&C::Tag(24, Box::new(C::Bytes(cbor(&mso)))));
    let to_sign = C::Array(vec![
        cbor_text("Signature1"),
        auth[0].clone(),
        C::Bytes(Vec::new()),
        C::Bytes(payload.clone()),
    ]);
    let sig: p256::ecdsa::Signature = issuer_key().sign(&cbor(&to_sign));
    auth[2] = C::Bytes(payload);
    auth[3] = C::Bytes(sig.to_bytes().to_vec());
}

wallet_test!(
    an_mdoc_revoked_in_the_list_its_mso_names_fails_with_revoked,
    MDL,
    |app: TestApp, a: Access| async move {
        use wiremock::matchers::path;
        let server = wiremock::MockServer::start().await;
        let uri = format!("{}/statuslists/1", server.uri());
        wiremock::Mock::given(path("/statuslists/1"))
            .respond_with(served_list(&uri))
            .expect(1)
            .mount(&server)
            .await;
        let id = interaction(&app, "cust-mdl-revoked").await;
        let (cid, link) = start_for(&app, &id, "mdl", ada_mdl()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let at = uri.as_str();
        let named = |idx| move |s: &mut ciborium::Value| mso_naming(s, idx, at);
        let mdoc = present_mdoc("no_status", &asked, Via::Redirect(None), named(1));
        let res = respond(&app, &answer_with(&asked, "mdl", &mdoc, true)).await;
        assert_eq!(res.status(), 200);
        let c = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(c["wallet"]["result"], "revoked");
        assert_eq!(failures(&app, "cust-mdl-revoked").await, 1);
        let (cid, link) = start_for(&app, &id, "mdl", ada_mdl()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let mdoc = present_mdoc("no_status", &asked, Via::Redirect(None), named(0));
        let res = respond(&app, &answer_with(&asked, "mdl", &mdoc, true)).await;
        bound(&app, res, &id, &cid).await;
        assert_eq!(app.get(&id).await["method"], "wallet");
        server.verify().await;
    }
);

wallet_test!(
    through_the_page_a_key_binding_is_to_the_origin_not_the_client_id,
    |app: TestApp, a: Access| async move {
        let now = app.now().unix_seconds();
        let id = interaction(&app, "cust-origin").await;
        // Bound to the client_id, as by direct post: another audience.
        let (cid, link) = start(&app, &id, ada()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let payload = json!({"vp_token": {"pid": [present("es256", &asked, None, now)]}});
        let res = respond_page(&app, &link, &encrypt(&asked, &payload)).await;
        assert_eq!(res.status(), 200);
        let r = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(r["wallet"]["result"], "invalid_presentation", "{r}");
        // Bound to the page's origin: the customer is proven.
        let (cid, link) = start(&app, &id, ada()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let payload = json!({"vp_token": {"pid": [present_to_page("es256", &asked, now)]}});
        let res = respond_page(&app, &link, &encrypt(&asked, &payload)).await;
        assert_eq!(res.status(), 200);
        let r = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(r["wallet"]["result"], "verified", "{r}");
        // And by direct post, the origin is no audience.
        let (cid, link) = start(&app, &id, ada()).await;
        let asked = fetch_request(&app, &a, &link).await;
        let jwe = answer_for(&asked, &present_to_page("es256", &asked, now));
        assert_eq!(respond(&app, &jwe).await.status(), 200);
        let r = read(&app, &id, &cid, &app.keys.bot).await;
        assert_eq!(r["wallet"]["result"], "invalid_presentation", "{r}");
    }
);

/// A status list that hangs holds only its own team's answers: of 40
/// answers at once, 32 wait on the list (each 502 once its 5 s are up),
/// 8 are answered 503 `overloaded` with `Retry-After` at once (as every
/// endpoint that may wait on a team's provider); meanwhile globex and
/// `/healthz` are answered as usual, and the challenge stays open.
async fn a_hanging_status_list_holds_its_own_team_only(backend: Backend) {
    use wiremock::matchers::path;
    let Some((app, a)) = spawn_wallet(backend, "").await else {
        return;
    };
    let server = wiremock::MockServer::start().await;
    let uri = format!("{}/statuslists/1", server.uri());
    wiremock::Mock::given(path("/statuslists/1"))
        .respond_with(served_list(&uri).set_delay(std::time::Duration::from_secs(30)))
        .mount(&server)
        .await;
    let now = app.now().unix_seconds();
    let id = interaction(&app, "cust-gate").await;
    let (cid, link) = start(&app, &id, ada()).await;
    let asked = fetch_request(&app, &a, &link).await;
    let jwe = answer_for(
        &asked,
        &bind(&issued_with_status(0, &uri), &asked, None, now),
    );
    let started = std::time::Instant::now();
    let answers: Vec<_> = (0..40)
        .map(|_| {
            let form = format!(
                "response={}",
                url::form_urlencoded::byte_serialize(jwe.as_bytes()).collect::<String>()
            );
            let req = app
                .client
                .post(app.url("/w/response"))
                .header("content-type", "application/x-www-form-urlencoded")
                .body(form);
            tokio::spawn(async move {
                let res = req.send().await.unwrap();
                let retry_after = res.headers().get("retry-after").is_some();
                (res.status().as_u16(), retry_after, started.elapsed())
            })
        })
        .collect();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
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
    let (mut busy, mut failed) = (0, 0);
    for answer in answers {
        let (status, retry_after, took) = answer.await.unwrap();
        match status {
            503 => {
                assert!(retry_after, "503 says when to come back");
                assert!(
                    took < std::time::Duration::from_secs(4),
                    "at once: {took:?}"
                );
                busy += 1;
            }
            502 => failed += 1,
            s => panic!("{s}"),
        }
    }
    assert_eq!((busy, failed), (8, 32), "only 32 wait on the list");
    assert_eq!(read(&app, &id, &cid, &app.keys.bot).await["state"], "open");
    assert_eq!(failures(&app, "cust-gate").await, 0);
}

mod a_hanging_status_list_holds_its_own_team_only {
    use super::*;
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn memory() {
        super::a_hanging_status_list_holds_its_own_team_only(Backend::Memory).await
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn redis() {
        super::a_hanging_status_list_holds_its_own_team_only(Backend::Redis).await
    }
}
