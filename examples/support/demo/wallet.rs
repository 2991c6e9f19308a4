//! The demo's wallet (DEMO ONLY), played by the chat server as it plays
//! Twilio. At each start it makes the demo's certificates with rcgen, kept
//! in memory and used by nothing else:
//!
//! - team acme's access certificate: a P-256 leaf for `127.0.0.1` issued
//!   by a demo access CA, whose self-signed certificate follows it in the
//!   chain and is never sent in `x5c` (docs/wallet.md#configuration);
//! - a demo PID provider: a root the team's `pid` credential trusts, and
//!   the issuer leaf it certifies, which issues Ada Lovelace's PID as an
//!   SD-JWT VC bound to a holder key that stays here.
//!
//! Team acme's `[wallet]` ([`Wallet::section`]) names them and sends the
//! gateway's wallet page's button here (`invocation`). The wallet page
//! (`GET /wallet?client_id=…&request_uri=…`) fetches the request object
//! from the link by POST, as a wallet does, and takes it only when it is
//! signed by a certificate whose chain reaches the demo access CA and
//! whose hash is the `client_id`; it shows who asks, for which claims, and
//! Ada's PID. "Share" presents the claims asked with a Key Binding JWT to
//! the request's `nonce` and `client_id`, encrypted to the request's key
//! (ECDH-ES, A128GCM), posts it to the request's `response_uri`
//! (`direct_post.jwt`) and opens the `redirect_uri` it gets back: the
//! gateway's page with the binding code to type into the chat
//! (docs/wallet.md#the-code-typed-into-the-chat).
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use aes_gcm::aead::{Aead, KeyInit, Payload};
use axum::extract::{Form, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::Router;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD as B64URL};
use base64::Engine as _;
use chatgate::domain::wallet::issuers::{verify_chain, TrustedIssuers};
use chatgate::domain::wallet::jose::{b64, Jws};
use chatgate::time::{Clock, SystemClock};
use p256::ecdsa::signature::Signer as _;
use p256::elliptic_curve::point::AffineCoordinates as _;
use p256::elliptic_curve::sec1::{FromEncodedPoint as _, ToEncodedPoint as _};
use p256::pkcs8::DecodePrivateKey as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use super::super::login::escape;

/// How many requests shown and not yet shared or declined the demo
/// wallet keeps.
const ASKED_KEPT: usize = 64;

/// Ada's PID as the demo's provider issued it: each claim disclosed on
/// its own, with the label the wallet page shows.
const ADA: [(&str, &str, &str); 3] = [
    ("given_name", "Given name", "Ada"),
    ("family_name", "Family name", "Lovelace"),
    ("birthdate", "Date of birth", "1815-12-10"),
];

/// The PID's SD-JWT VC type.
const VCT: &str = "urn:eudi:pid:1";

/// The demo's wallet: its certificates, Ada's credential and holder key,
/// and the requests its page is showing.
pub struct Wallet {
    gateway: String,
    section: toml::Table,
    /// The access CA a verifier's request must chain to.
    access_ca: TrustedIssuers,
    /// Ada's PID.
    pid: Issued,
    holder: p256::ecdsa::SigningKey,
    http: reqwest::Client,
    /// The request objects fetched, by the id of the page showing each.
    asked: Mutex<HashMap<String, Value>>,
}

/// An SD-JWT VC as issued: the issuer-signed JWT, and each claim's name
/// with its disclosure.
struct Issued {
    jwt: String,
    disclosures: Vec<(&'static str, String)>,
}

/// A CA's key and self-signed certificate.
struct Ca {
    key: KeyPair,
    cert: rcgen::Certificate,
}

fn p256_key() -> Result<KeyPair, rcgen::Error> {
    KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
}

fn ca(name: &str) -> Result<Ca, rcgen::Error> {
    let key = p256_key()?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.self_signed(&key)?;
    Ok(Ca { key, cert })
}

/// A leaf of subject `name` for the names `sans`, issued by `ca`.
fn leaf(ca: &Ca, name: &str, sans: &[&str]) -> Result<(KeyPair, rcgen::Certificate), rcgen::Error> {
    let key = p256_key()?;
    let sans: Vec<String> = sans.iter().map(|s| s.to_string()).collect();
    let mut params = CertificateParams::new(sans)?;
    params.distinguished_name.push(DnType::CommonName, name);
    let cert = params.signed_by(&key, &ca.cert, &ca.key)?;
    Ok((key, cert))
}

impl Wallet {
    /// Makes the demo's certificates and Ada's PID; `gateway` is the
    /// gateway's public URL (whose host the access certificate names),
    /// `page` this wallet's page, where the gateway's page sends wallets.
    pub fn new(gateway: &str, page: &str) -> Result<Wallet, String> {
        let made = |e: rcgen::Error| format!("the demo's certificates: {e}");
        let access_ca = ca("chatgate demo access CA").map_err(made)?;
        let host = url::Url::parse(gateway)
            .ok()
            .and_then(|u| u.host_str().map(str::to_string))
            .ok_or("the gateway's URL has no host")?;
        let (access_key, access) =
            leaf(&access_ca, "Acme Bank (chatgate demo)", &[host.as_str()]).map_err(made)?;
        let pid_ca = ca("chatgate demo PID provider CA").map_err(made)?;
        let (pid_key, pid) = leaf(&pid_ca, "chatgate demo PID provider", &[]).map_err(made)?;
        let holder = p256::ecdsa::SigningKey::random(&mut rand::rngs::OsRng);
        let issued = issue(&pid_key, &pid, &holder)?;
        let section = json!({
            "signing_key": access_key.serialize_pem(),
            "certificate_chain": format!("{}{}", access.pem(), access_ca.cert.pem()),
            "invocation": page,
            "status_lists": false,
            "credentials": [{"id": "pid", "format": "dc+sd-jwt", "vct": [VCT],
                             "claims": ADA.map(|(name, _, _)| name),
                             "trusted_issuers": [pid_ca.cert.pem()]}],
        });
        let Ok(toml::Value::Table(section)) = toml::Value::try_from(section) else {
            return Err("the demo's [wallet] is not a table".into());
        };
        let access_ca = TrustedIssuers::from_pems(&[access_ca.cert.pem()])
            .map_err(|e| format!("the demo access CA: {e}"))?;
        Ok(Wallet {
            gateway: gateway.to_string(),
            section,
            access_ca,
            pid: issued,
            holder,
            http: reqwest::Client::new(),
            asked: Mutex::new(HashMap::new()),
        })
    }

    /// Team acme's `[wallet]`, as a team file would write it: the access
    /// certificate's key and chain, this wallet's page as the
    /// `invocation`, and one credential, `pid`, whose claims a bot may
    /// compare and whose trusted issuer is the demo PID provider's root.
    pub fn section(&self) -> toml::Table {
        self.section.clone()
    }
}

/// Ada's PID issued as an SD-JWT VC (ES256, the issuer leaf in `x5c`),
/// bound to `holder`: the issuer JWT, and each claim's disclosure.
fn issue(
    key: &KeyPair,
    cert: &rcgen::Certificate,
    holder: &p256::ecdsa::SigningKey,
) -> Result<Issued, String> {
    let signer = p256::ecdsa::SigningKey::from_pkcs8_der(&key.serialize_der())
        .map_err(|_| "the demo issuer's key")?;
    let disclosures: Vec<(&'static str, String)> = ADA
        .iter()
        .map(|(name, _, value)| {
            let salt = B64URL.encode(rand::random::<[u8; 16]>());
            (*name, B64URL.encode(json!([salt, name, value]).to_string()))
        })
        .collect();
    let mut digests: Vec<String> = disclosures
        .iter()
        .map(|(_, d)| B64URL.encode(Sha256::digest(d.as_bytes())))
        .collect();
    digests.sort();
    let point = holder.verifying_key().to_encoded_point(false);
    let (Some(x), Some(y)) = (point.x(), point.y()) else {
        return Err("the holder key".into());
    };
    let now = SystemClock.now().unix_seconds();
    let header = json!({"typ": "dc+sd-jwt", "alg": "ES256", "x5c": [STANDARD.encode(cert.der())]});
    let claims = json!({
        "iss": "https://pid-provider.chatgate-demo.invalid", "iat": now,
        "exp": now + 365 * 86_400, "vct": VCT, "_sd_alg": "sha-256", "_sd": digests,
        "cnf": {"jwk": {"kty": "EC", "crv": "P-256", "x": B64URL.encode(x), "y": B64URL.encode(y)}},
    });
    Ok(Issued {
        jwt: signed_jws(&header, &claims, &signer),
        disclosures,
    })
}

/// A compact JWS of `header` and `claims`, ES256 by `key`.
fn signed_jws(header: &Value, claims: &Value, key: &p256::ecdsa::SigningKey) -> String {
    let input = format!(
        "{}.{}",
        B64URL.encode(header.to_string()),
        B64URL.encode(claims.to_string())
    );
    let signature: p256::ecdsa::Signature = key.sign(input.as_bytes());
    format!("{input}.{}", B64URL.encode(signature.to_bytes()))
}

pub fn router(wallet: Arc<Wallet>) -> Router {
    Router::new()
        .route("/wallet", get(open))
        .route("/wallet/share", post(share))
        .with_state(wallet)
}

/// The query of the link the gateway's page opens (OpenID4VP's
/// same-device invocation).
#[derive(Deserialize)]
struct Invoked {
    client_id: String,
    request_uri: String,
    #[serde(default)]
    request_uri_method: String,
}

/// The wallet page's form: its request's id, and `share` or `decline`.
#[derive(Deserialize)]
struct Shared {
    id: String,
    #[serde(default)]
    choice: String,
}

/// The wallet opened by a link: the request fetched and checked, then
/// what it asks and Ada's PID, with "Share".
async fn open(State(w): State<Arc<Wallet>>, Query(q): Query<Invoked>) -> Response {
    let (asked, verifier) = match w.fetch(&q).await {
        Ok(fetched) => fetched,
        Err(why) => return page(&w, StatusCode::BAD_REQUEST, &refused(&why)),
    };
    let Some((_, names)) = pid_query(&asked) else {
        let why = "The request asks for no credential this wallet holds.";
        return page(&w, StatusCode::BAD_REQUEST, &refused(why));
    };
    let id = B64URL.encode(rand::random::<[u8; 16]>());
    if let Ok(mut all) = w.asked.lock() {
        // A page shown and never answered is forgotten once there are many.
        if all.len() >= ASKED_KEPT {
            if let Some(any) = all.keys().next().cloned() {
                all.remove(&any);
            }
        }
        all.insert(id.clone(), asked);
    }
    let rows: String = ADA
        .iter()
        .map(|(name, label, value)| {
            let shared = names.iter().any(|n| n == name);
            format!(
                "<li class=\"{}\"><span>{label}</span> <strong>{value}</strong>{}</li>",
                if shared { "asked" } else { "kept" },
                if shared { " · asked" } else { "" }
            )
        })
        .collect();
    let body = format!(
        "<p><strong>{verifier}</strong> asks to see part of your ID. Its request is signed with a \
         certificate of the demo access CA, which this wallet trusts.</p>\
         <section class=\"card\" aria-label=\"Your PID\"><h2>Personal ID (PID)</h2>\
         <p class=\"issuer\">issued by chatgate demo PID provider</p><ul>{rows}</ul></section>\
         <p>Only the claims marked “asked” are shared.</p>\
         <form method=\"post\" action=\"/wallet/share\"><input type=\"hidden\" name=\"id\" value=\"{id}\">\
         <button type=\"submit\" id=\"share\" name=\"choice\" value=\"share\">Share</button> \
         <button type=\"submit\" id=\"decline\" name=\"choice\" value=\"decline\" class=\"secondary\">Decline</button></form>",
        verifier = escape(common_name(&verifier)),
    );
    page(&w, StatusCode::OK, &body)
}

/// "Share": the presentation posted to the gateway, then its
/// `redirect_uri` opened. "Decline": OpenID4VP's `access_denied` posted
/// instead, which shares nothing and leaves the challenge open.
async fn share(State(w): State<Arc<Wallet>>, Form(s): Form<Shared>) -> Response {
    let asked = w.asked.lock().ok().and_then(|mut all| all.remove(&s.id));
    let Some(asked) = asked else {
        let why = "This request was answered already. Open the link in the chat again.";
        return page(&w, StatusCode::BAD_REQUEST, &refused(why));
    };
    if s.choice == "decline" {
        return match w.decline(&asked).await {
            Ok(()) => {
                let said = "<p role=\"status\">You declined. Nothing was shared; the link in \
                            the chat still works if you change your mind.</p>";
                page(&w, StatusCode::OK, said)
            }
            Err(why) => page(&w, StatusCode::BAD_GATEWAY, &refused(&why)),
        };
    }
    match w.answer(&asked).await {
        Ok(redirect) => Redirect::to(&redirect).into_response(),
        Err(why) => page(&w, StatusCode::BAD_GATEWAY, &refused(&why)),
    }
}

impl Wallet {
    /// The request object of `q`, fetched (by POST with a `wallet_nonce`
    /// when the link says so) and checked: its claims, and the subject of
    /// the certificate that signed it.
    async fn fetch(&self, q: &Invoked) -> Result<(Value, String), String> {
        if !q.request_uri.starts_with(&format!("{}/w/", self.gateway)) {
            return Err("The link's request is not on the demo's gateway.".into());
        }
        let by_post = q.request_uri_method == "post";
        let nonce = B64URL.encode(rand::random::<[u8; 16]>());
        let ask = match by_post {
            true => (self.http.post(&q.request_uri)).form(&[("wallet_nonce", &nonce)]),
            false => self.http.get(&q.request_uri),
        };
        let res = ask
            .send()
            .await
            .map_err(|_| "The gateway cannot be reached.")?;
        if !res.status().is_success() {
            return Err(format!(
                "The gateway refused the request ({}).",
                res.status()
            ));
        }
        let jwt = res
            .text()
            .await
            .map_err(|_| "The request did not arrive.")?;
        self.checked(&jwt, &q.client_id, by_post.then_some(nonce.as_str()))
    }

    /// The request object's claims once its chain reaches the demo access
    /// CA, its signature is that leaf's, its `client_id` the leaf's hash
    /// (`x509_hash`) and the link's, and it is for this wallet's answer by
    /// `direct_post.jwt`, not expired.
    fn checked(
        &self,
        jwt: &str,
        client_id: &str,
        wallet_nonce: Option<&str>,
    ) -> Result<(Value, String), String> {
        let jws = Jws::split(jwt).ok_or("The request is not a signed JWT.")?;
        let x5c: Vec<Vec<u8>> = (jws.header.get("x5c").and_then(Value::as_array))
            .and_then(|certs| certs.iter().map(|c| c.as_str().and_then(b64)).collect())
            .ok_or("The request names no certificate.")?;
        let now = SystemClock.now();
        let verifier = verify_chain(&x5c, &self.access_ca, now)
            .map_err(|_| "The request's certificate is not one of the demo access CA.")?;
        if !jws.signed_by(&verifier.key) {
            return Err("The request's signature is not its certificate's.".into());
        }
        let hash = format!("x509_hash:{}", B64URL.encode(Sha256::digest(&x5c[0])));
        let claims = Value::Object(jws.claims);
        let text = |name: &str| claims[name].as_str().unwrap_or_default();
        if text("client_id") != client_id || client_id != hash {
            return Err("The request's client_id is not its certificate's.".into());
        }
        if wallet_nonce.is_some_and(|n| text("wallet_nonce") != n) {
            return Err("The request does not carry this wallet's nonce.".into());
        }
        if text("response_mode") != "direct_post.jwt"
            || claims["exp"]
                .as_i64()
                .is_none_or(|exp| exp <= now.unix_seconds())
        {
            return Err("The request is expired, or not for a wallet's answer.".into());
        }
        Ok((claims, verifier.subject))
    }

    /// Ada's PID presented to `asked` and posted to its `response_uri`:
    /// the `redirect_uri` the gateway answers.
    async fn answer(&self, asked: &Value) -> Result<String, String> {
        let (query, names) = pid_query(asked).ok_or("The request asks for no PID.")?;
        let mut vp_token = serde_json::Map::new();
        vp_token.insert(query, json!([self.present(asked, &names)]));
        let payload = json!({"state": asked["state"], "vp_token": vp_token});
        let response = encrypt(&asked["client_metadata"], &payload)?;
        let to = self.response_uri(asked)?;
        let res = (self.http.post(to))
            .form(&[("response", response)])
            .send()
            .await
            .map_err(|_| "The gateway cannot be reached.")?;
        let status = res.status();
        let body: Value = res.json().await.unwrap_or_default();
        (body["redirect_uri"].as_str())
            .filter(|u| status.is_success() && self.on_gateway(u))
            .map(str::to_string)
            .ok_or_else(|| format!("The gateway did not take the answer ({status})."))
    }

    /// The customer's refusal of `asked` posted to its `response_uri`.
    async fn decline(&self, asked: &Value) -> Result<(), String> {
        let to = self.response_uri(asked)?;
        let state = asked["state"].as_str().unwrap_or_default();
        let form = [("error", "access_denied"), ("state", state)];
        let res = self.http.post(to).form(&form).send().await;
        match res {
            Ok(r) if r.status().is_success() => Ok(()),
            _ => Err("The gateway did not take the refusal.".into()),
        }
    }

    /// Where `asked` wants its answer: its `response_uri`, on the gateway.
    fn response_uri<'a>(&self, asked: &'a Value) -> Result<&'a str, String> {
        (asked["response_uri"].as_str())
            .filter(|u| self.on_gateway(u))
            .ok_or_else(|| "The request's response_uri is not on the demo's gateway.".into())
    }

    /// Whether `url` is on the demo's gateway: the same origin (scheme,
    /// host and port), compared parsed, never as a prefix of the text
    /// (`http://127.0.0.1:8080@elsewhere/` starts with the gateway's URL).
    fn on_gateway(&self, url: &str) -> bool {
        let origin = |u: &str| url::Url::parse(u).map(|u| u.origin());
        matches!((origin(url), origin(&self.gateway)), (Ok(a), Ok(b)) if a == b)
    }

    /// The credential with the disclosures of `names` only, and a Key
    /// Binding JWT over it to the request's `client_id` and `nonce`, now.
    fn present(&self, asked: &Value, names: &[String]) -> String {
        let shown: String = (self.pid.disclosures.iter())
            .filter(|(name, _)| names.iter().any(|n| n == name))
            .map(|(_, d)| format!("{d}~"))
            .collect();
        let presented = format!("{}~{shown}", self.pid.jwt);
        let claims = json!({
            "iat": SystemClock.now().unix_seconds(), "aud": asked["client_id"],
            "nonce": asked["nonce"], "sd_hash": B64URL.encode(Sha256::digest(presented.as_bytes())),
        });
        let header = json!({"typ": "kb+jwt", "alg": "ES256"});
        format!("{presented}{}", signed_jws(&header, &claims, &self.holder))
    }
}

/// The request's DCQL query this wallet's PID answers: its id, and the
/// claims it asks by name.
fn pid_query(asked: &Value) -> Option<(String, Vec<String>)> {
    let queries = asked["dcql_query"]["credentials"].as_array()?;
    let pid = queries.iter().find(|q| {
        q["format"] == "dc+sd-jwt"
            && (q["meta"]["vct_values"].as_array()).is_some_and(|v| v.iter().any(|v| v == VCT))
    })?;
    let names = (pid["claims"].as_array().into_iter().flatten())
        .filter_map(|c| c["path"][0].as_str().map(str::to_string))
        .collect();
    Some((pid["id"].as_str()?.to_string(), names))
}

/// `payload` as a compact JWE to the request's key (`jwks` of its
/// `client_metadata`): `ECDH-ES`, `A128GCM`, the key's `kid`
/// (docs/wallet.md#the-response).
fn encrypt(metadata: &Value, payload: &Value) -> Result<String, String> {
    let jwk = &metadata["jwks"]["keys"][0];
    let coordinate =
        |c: &str| -> Option<[u8; 32]> { B64URL.decode(jwk[c].as_str()?).ok()?.try_into().ok() };
    let (Some(x), Some(y)) = (coordinate("x"), coordinate("y")) else {
        return Err("The request carries no encryption key.".into());
    };
    let point = p256::EncodedPoint::from_affine_coordinates(&x.into(), &y.into(), false);
    let to = Option::<p256::PublicKey>::from(p256::PublicKey::from_encoded_point(&point))
        .ok_or("The request's encryption key is not on P-256.")?;
    let ephemeral = p256::SecretKey::random(&mut rand::rngs::OsRng);
    let shared = (to.to_projective() * *ephemeral.to_nonzero_scalar())
        .to_affine()
        .x();
    let epk = ephemeral.public_key().to_encoded_point(false);
    let (Some(ex), Some(ey)) = (epk.x(), epk.y()) else {
        return Err("the ephemeral key".into());
    };
    let header = json!({
        "alg": "ECDH-ES", "enc": "A128GCM", "kid": jwk["kid"],
        "epk": {"kty": "EC", "crv": "P-256", "x": B64URL.encode(ex), "y": B64URL.encode(ey)},
    });
    let protected = B64URL.encode(header.to_string());
    let cek = concat_kdf(&shared, "A128GCM", 128);
    let iv: [u8; 12] = rand::random();
    let sealed = aes_gcm::Aes128Gcm::new_from_slice(&cek)
        .map_err(|_| "the content key")?
        .encrypt(
            &iv.into(),
            Payload {
                msg: payload.to_string().as_bytes(),
                aad: protected.as_bytes(),
            },
        )
        .map_err(|_| "the encryption")?;
    let (ciphertext, tag) = sealed.split_at(sealed.len() - 16);
    let [iv, ciphertext, tag] = [&iv[..], ciphertext, tag].map(|p| B64URL.encode(p));
    Ok(format!("{protected}..{iv}.{ciphertext}.{tag}"))
}

/// RFC 7518's Concat KDF with SHA-256 for `enc` (one round, no `apu` or
/// `apv`): the content key of `bits`.
fn concat_kdf(z: &[u8], enc: &str, bits: u32) -> Vec<u8> {
    let mut h = Sha256::new();
    h.update(1u32.to_be_bytes());
    h.update(z);
    h.update((enc.len() as u32).to_be_bytes());
    h.update(enc.as_bytes());
    h.update(0u32.to_be_bytes());
    h.update(0u32.to_be_bytes());
    h.update(bits.to_be_bytes());
    h.finalize()[..(bits / 8) as usize].to_vec()
}

/// The common name of an RFC 4514 subject (`CN=Acme Bank,O=…`), or the
/// whole subject when it names none.
fn common_name(subject: &str) -> &str {
    (subject.split(',').find_map(|rdn| rdn.strip_prefix("CN="))).unwrap_or(subject)
}

fn refused(why: &str) -> String {
    format!("<p class=\"error\" role=\"alert\">{}</p>", escape(why))
}

/// The wallet's page around `body`: the chat's style sheet, no script,
/// a form that posts here and is sent on to the gateway.
fn page(w: &Wallet, status: StatusCode, body: &str) -> Response {
    let html = format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <title>Demo wallet</title><link rel=\"stylesheet\" href=\"/chat.css\"></head>\
         <body class=\"wallet\"><header class=\"brand\"><span class=\"logo\" aria-hidden=\"true\">W</span> \
         Demo wallet <span class=\"tag\">plays the customer's wallet</span></header>\
         <main>{body}</main></body></html>"
    );
    let policy = format!(
        "default-src 'none'; style-src 'self'; form-action 'self' {}; frame-ancestors 'none'; base-uri 'none'",
        w.gateway
    );
    (
        status,
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_string()),
            (header::CACHE_CONTROL, "no-store".to_string()),
            (header::REFERRER_POLICY, "no-referrer".to_string()),
            (header::CONTENT_SECURITY_POLICY, policy),
        ],
        html,
    )
        .into_response()
}
