//! The signed request object (docs/wallet.md#the-request): a JWT signed
//! with ES256 by the verifier's access certificate key, header `typ`
//! `oauth-authz-req+jwt` and `x5c` its chain, asking for one credential by
//! a DCQL query naming only the claims to compare, and carrying the
//! request's fresh encryption key.
use p256::ecdsa::signature::Signer as _;
use serde_json::{json, Value};

use super::jose::{to_b64url, Object};
use super::request_key::RequestKey;
use super::Format;
use crate::time::Timestamp;

/// The audience of a request to a wallet (OpenID4VP's static discovery).
pub const AUDIENCE: &str = "https://self-issued.me/v2";

/// How long a request object holds, in seconds, from its `iat`.
pub const LIFETIME: i64 = 300;

/// The JWS algorithms this verifier accepts from issuers and holders.
const JWS_ALGS: [&str; 3] = ["ES256", "ES384", "EdDSA"];

/// The verifier's signing key and its certificate chain (DER, leaf first).
pub struct Signer {
    pub key: p256::ecdsa::SigningKey,
    pub chain: Vec<Vec<u8>>,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signer")
            .field("chain", &self.chain.len())
            .finish_non_exhaustive()
    }
}

/// A credential asked for: its `id`, [`Format`], what names its type in
/// that format, and the claims to compare by its own names.
#[derive(Debug, Clone)]
pub struct Credential<'a> {
    pub id: &'a str,
    pub format: Format,
    /// SD-JWT VC: the accepted `vct` values.
    pub vct: &'a [String],
    /// mdoc: its doctype and the namespace of its claims.
    pub doctype: &'a str,
    pub namespace: &'a str,
    /// The names of the claims to compare, as this credential names them.
    pub claims: Vec<&'a str>,
    /// The base64url Subject Key Identifiers of its trusted issuers that
    /// have one: the query's `trusted_authorities` (`aki`), left out when
    /// none has.
    pub authorities: &'a [String],
}

/// Where the answer goes.
#[derive(Debug, Clone, Copy)]
pub enum Mode<'a> {
    /// The wallet POSTs the answer to `response_uri`.
    DirectPost { response_uri: &'a str },
    /// The page hands the request to the Digital Credentials API.
    DcApi { expected_origins: &'a [String] },
}

/// One request.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    pub client_id: &'a str,
    pub mode: Mode<'a>,
    pub state: &'a str,
    pub nonce: &'a str,
    /// The credentials asked for (one or more), of which one is presented.
    pub credentials: &'a [Credential<'a>],
    pub key: &'a RequestKey,
    /// The wallet's `wallet_nonce`, when its POST carried one.
    pub wallet_nonce: Option<&'a str>,
    /// The bank's registration certificate (a JWT), sent as
    /// `verifier_info`.
    pub registration: Option<&'a str>,
    /// A payment's `transaction_data` entry, the same in every request of
    /// its challenge (docs/wallet.md#a-payment-approved-in-the-wallet).
    pub transaction_data: Option<&'a str>,
    pub now: Timestamp,
}

/// The request object of `request`, signed by `signer`.
pub fn sign(request: &Request<'_>, signer: &Signer) -> String {
    let x5c: Vec<String> = signer.chain.iter().map(|c| base64_std(c)).collect();
    let header = json!({"alg": "ES256", "typ": "oauth-authz-req+jwt", "x5c": x5c});
    let input = format!(
        "{}.{}",
        to_b64url(header.to_string().as_bytes()),
        to_b64url(Value::Object(claims(request)).to_string().as_bytes())
    );
    let signature: p256::ecdsa::Signature = signer.key.sign(input.as_bytes());
    format!("{input}.{}", to_b64url(&signature.to_bytes()))
}

/// The claims of the request object.
pub fn claims(request: &Request<'_>) -> Object {
    let iat = request.now.unix_seconds();
    let claims = json!({
        "iss": request.client_id, "aud": AUDIENCE, "client_id": request.client_id,
        "response_type": "vp_token", "state": request.state, "nonce": request.nonce,
        "dcql_query": dcql_query(request.credentials),
        "client_metadata": {
            "jwks": {"keys": [request.key.public_jwk()]},
            "encrypted_response_enc_values_supported": ["A128GCM", "A256GCM"],
            "vp_formats_supported": formats(request.credentials),
        },
        "iat": iat, "exp": iat.saturating_add(LIFETIME),
    });
    let Value::Object(mut object) = claims else {
        return Object::new();
    };
    match request.mode {
        Mode::DirectPost { response_uri } => {
            object.insert("response_mode".into(), json!("direct_post.jwt"));
            object.insert("response_uri".into(), json!(response_uri));
        }
        Mode::DcApi { expected_origins } => {
            object.insert("response_mode".into(), json!("dc_api.jwt"));
            object.insert("expected_origins".into(), json!(expected_origins));
        }
    }
    if let Some(wallet_nonce) = request.wallet_nonce {
        object.insert("wallet_nonce".into(), json!(wallet_nonce));
    }
    if let Some(jwt) = request.registration {
        object.insert(
            "verifier_info".into(),
            json!([{"format": "registration_cert", "data": jwt}]),
        );
    }
    if let Some(data) = request.transaction_data {
        object.insert("transaction_data".into(), json!([data]));
    }
    object
}

/// The DCQL query: one credential query per credential, and with two or
/// more, one credential set of which any one answers.
fn dcql_query(credentials: &[Credential<'_>]) -> Value {
    let queries: Vec<Value> = credentials.iter().map(credential_query).collect();
    match credentials {
        [_] | [] => json!({"credentials": queries}),
        _ => {
            let options: Vec<Value> = credentials.iter().map(|c| json!([c.id])).collect();
            json!({"credentials": queries, "credential_sets": [{"options": options}]})
        }
    }
}

/// A DCQL credential query: the credential's id, format, meta, the asked
/// claims' paths (no `claims` for a credential that compares none: DCQL's
/// is a non-empty array when present), and the authorities its issuer
/// must come from, nothing else.
fn credential_query(c: &Credential<'_>) -> Value {
    let (meta, path): (Value, &dyn Fn(&&str) -> Value) = match c.format {
        Format::SdJwt => (json!({"vct_values": c.vct}), &|n| json!([n])),
        Format::Mdoc => (json!({"doctype_value": c.doctype}), &|n| {
            json!([c.namespace, n])
        }),
    };
    let mut query = json!({"id": c.id, "format": c.format.as_str(), "meta": meta});
    if !c.claims.is_empty() {
        let claims: Vec<Value> = c.claims.iter().map(|n| json!({"path": path(n)})).collect();
        query["claims"] = json!(claims);
    }
    if !c.authorities.is_empty() {
        query["trusted_authorities"] = json!([{"type": "aki", "values": c.authorities}]);
    }
    query
}

/// `vp_formats_supported` for the credentials' formats.
fn formats(credentials: &[Credential<'_>]) -> Value {
    let mut formats = Object::new();
    for c in credentials {
        formats.insert(c.format.as_str().into(), format_algs(c.format));
    }
    Value::Object(formats)
}

/// The algorithms this verifier accepts in `format`.
fn format_algs(format: Format) -> Value {
    match format {
        Format::SdJwt => json!({"sd-jwt_alg_values": JWS_ALGS, "kb-jwt_alg_values": JWS_ALGS}),
        // COSE's ES256 (-7), ES384 (-35) and EdDSA (-8) for the issuer, as
        // `mdoc::verify` accepts them; ES256 only for the device.
        Format::Mdoc => {
            json!({"issuerauth_alg_values": [-7, -35, -8], "deviceauth_alg_values": [-7]})
        }
    }
}

/// Padded standard base64, as `x5c` writes a certificate.
fn base64_std(der: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(der)
}
