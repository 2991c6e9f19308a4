//! Lists of trusted entities (ETSI TS 119 602 v1.1.1, "LoTE"; how the EU
//! publishes PID, wallet, PuB-EAA, access- and registration-certificate
//! providers; docs/wallet.md#trusted-lists): the JSON binding signed as a
//! JWS (compact or JSON serialization, one signature, ES256, ES384 or
//! EdDSA) whose `x5c` chain reaches the operator's pinned `signers`, read
//! into the certificates of its issuance and revocation services. Plain
//! functions over `now`: the gateway fetches and keeps the lists
//! (`src/trusted_lists.rs`).
//!
//! The payload is checked against ETSI's own JSON schema, vendored beside
//! this file unchanged: `trusted_list/1960201_json_schema.json` and the
//! `rfcs/rfc7517.json` it refers to, from ETSI's repository of the
//! standard's JSON binding (forge.etsi.org, `esi/x19_60201_lists_of_trusted_entities`,
//! `1960201_json_schema/`, BSD-3-Clause; SHA-256 of the schema
//! `37c0f827…1d5c`), as the ForkbombEu trusted-list publisher vendors it.
//! Nothing inside a list vouches for a list: `PointersToOtherLoTE` is not
//! followed.
use std::sync::LazyLock;
use std::time::Duration;

use serde_json::Value;

use super::issuers::{verify_chain, TrustedIssuers};
use super::jose::{b64, b64url, object, JwsAlg, Object};
use crate::time::Timestamp;

/// The most bytes a served list may have.
pub const MAX_LIST: usize = 1024 * 1024;

/// What a list is asked for as.
pub const ACCEPT: &str = "application/jwt, application/jose+json";

/// How far a list's `ListIssueDateTime` may be ahead of the clock.
const LEEWAY: i64 = 60;

/// The start of the list and service types of the EU's profiles.
const LOTE_TYPE: &str = "http://uri.etsi.org/19602/LoTEType/EU";
const SVC_TYPE: &str = "http://uri.etsi.org/19602/SvcType/";

/// Where the vendored schema says it comes from, so that its relative
/// reference to the JWK schema resolves as it does at ETSI.
const SCHEMA_BASE: &str =
    "https://forge.etsi.org/rep/esi/x19_60201_lists_of_trusted_entities/1960201_json_schema/1960201_json_schema.json";
const JWK_SCHEMA: &str =
    "https://forge.etsi.org/rep/esi/x19_60201_lists_of_trusted_entities/1960201_json_schema/rfcs/rfc7517.json";

/// ETSI's schema, compiled once; `None` only if the vendored files do not
/// compile (a test holds that they do).
static SCHEMA: LazyLock<Option<jsonschema::Validator>> = LazyLock::new(|| {
    let root: Value =
        serde_json::from_str(include_str!("trusted_list/1960201_json_schema.json")).ok()?;
    let jwk: Value = serde_json::from_str(include_str!("trusted_list/rfc7517.json")).ok()?;
    let registry = jsonschema::Registry::new()
        .add(JWK_SCHEMA, jwk)
        .ok()?
        .prepare()
        .ok()?;
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft7)
        .with_base_uri(SCHEMA_BASE)
        .should_validate_formats(true)
        .with_registry(&registry)
        .build(&root)
        .ok()
});

/// What a list must be: its `LoTEType`, its `SchemeTerritory` (the EU's
/// named types: `EU`), and the service types of its issuance and
/// revocation services.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListKind {
    pub lote_type: String,
    pub territory: Option<String>,
    pub issuance: String,
    pub revocation: String,
}

impl ListKind {
    /// The kind a configuration's short `type` names: `pid`, `wallet`,
    /// `pub_eaa`, `wrpac` or `wrprc`.
    pub fn named(name: &str) -> Option<Self> {
        let (list, service) = match name {
            "pid" => ("PIDProviders", "PID"),
            "wallet" => ("WalletProviders", "WalletSolution"),
            "pub_eaa" => ("PubEAAProviders", "PubEAA"),
            "wrpac" => ("WRPACProviders", "WRPAC"),
            "wrprc" => ("WRPRCProviders", "WRPRC"),
            _ => return None,
        };
        Some(ListKind {
            lote_type: format!("{LOTE_TYPE}{list}List"),
            territory: Some("EU".to_string()),
            issuance: format!("{SVC_TYPE}{service}/Issuance"),
            revocation: format!("{SVC_TYPE}{service}/Revocation"),
        })
    }
}

/// Why a served list is not usable, as the fetch metric's `result` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.as_str())]
pub enum Fault {
    /// No signature that verifies: `alg` none or HMAC, no `x5c`, a chain
    /// that does not reach the signers or is not valid now.
    BadSignature,
    /// Not a JWS, not the JSON binding, against the schema, another type
    /// or territory, too long, issued ahead, a certificate that cannot be read.
    BadList,
    /// Past its `NextUpdate` and the staleness allowed.
    Expired,
    /// A sequence number lower than the last usable copy's.
    Rollback,
}

impl Fault {
    pub fn as_str(self) -> &'static str {
        match self {
            Fault::BadSignature => "bad_signature",
            Fault::BadList => "bad_list",
            Fault::Expired => "expired",
            Fault::Rollback => "rollback",
        }
    }
}

/// A usable list: its sequence number and times, and the certificates
/// (DER) of its services of the issuance and of the revocation type whose
/// status is absent or `…/notified`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub sequence: i64,
    pub issued: Timestamp,
    pub next_update: Timestamp,
    pub issuance: Vec<Vec<u8>>,
    pub revocation: Vec<Vec<u8>>,
}

impl Listed {
    /// Whether the list still counts at `now`: before its `NextUpdate`
    /// and `max_stale` after it.
    pub fn usable_at(&self, now: Timestamp, max_stale: Duration) -> bool {
        now < self.next_update.plus(max_stale)
    }
}

/// What a list is read against: its kind, its operator's certificates,
/// the last usable copy's sequence number and how stale it may be.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub kind: &'a ListKind,
    pub signers: &'a TrustedIssuers,
    pub last_sequence: Option<i64>,
    pub max_stale: Duration,
}

/// The list `body` as served, read at `now`.
pub fn read(body: &str, expected: Expected<'_>, now: Timestamp) -> Result<Listed, Fault> {
    if body.len() > MAX_LIST {
        return Err(Fault::BadList);
    }
    let signed = Signed::parse(body.trim()).ok_or(Fault::BadList)?;
    signed.verify(expected.signers, now)?;
    let payload: Value = serde_json::from_slice(&signed.payload).map_err(|_| Fault::BadList)?;
    let schema = SCHEMA.as_ref().ok_or(Fault::BadList)?;
    if !schema.is_valid(&payload) {
        return Err(Fault::BadList);
    }
    let info = &payload["LoTE"]["ListAndSchemeInformation"];
    let text = |key: &str| info.get(key).and_then(Value::as_str);
    if text("LoTEType") != Some(expected.kind.lote_type.as_str()) {
        return Err(Fault::BadList);
    }
    if let Some(territory) = &expected.kind.territory {
        if text("SchemeTerritory") != Some(territory.as_str()) {
            return Err(Fault::BadList);
        }
    }
    let time = |key: &str| text(key).and_then(Timestamp::parse_rfc3339);
    let (Some(issued), Some(next_update)) = (time("ListIssueDateTime"), time("NextUpdate")) else {
        return Err(Fault::BadList);
    };
    if issued.unix_seconds() > now.unix_seconds() + LEEWAY {
        return Err(Fault::BadList);
    }
    let sequence = info
        .get("LoTESequenceNumber")
        .and_then(Value::as_i64)
        .ok_or(Fault::BadList)?;
    let (issuance, revocation) = services(&payload["LoTE"], expected.kind)?;
    let listed = Listed {
        sequence,
        issued,
        next_update,
        issuance,
        revocation,
    };
    if !listed.usable_at(now, expected.max_stale) {
        return Err(Fault::Expired);
    }
    if expected.last_sequence.is_some_and(|last| sequence < last) {
        return Err(Fault::Rollback);
    }
    Ok(listed)
}

/// The certificates of `lote`'s services of `kind`'s issuance and
/// revocation types whose status is absent or `…/notified`; every
/// certificate of every service must be base64 DER that can be read.
type Services = (Vec<Vec<u8>>, Vec<Vec<u8>>);

fn services(lote: &Value, kind: &ListKind) -> Result<Services, Fault> {
    let (mut issuance, mut revocation) = (Vec::new(), Vec::new());
    let entities = lote["TrustedEntitiesList"].as_array();
    let services = entities
        .into_iter()
        .flatten()
        .filter_map(|e| e["TrustedEntityServices"].as_array())
        .flatten()
        .map(|s| &s["ServiceInformation"]);
    for info in services {
        let mut certs = Vec::new();
        let listed = info["ServiceDigitalIdentity"]["X509Certificates"].as_array();
        for cert in listed.into_iter().flatten() {
            let der = cert["val"].as_str().and_then(b64).ok_or(Fault::BadList)?;
            TrustedIssuers::from_ders(std::slice::from_ref(&der)).map_err(|_| Fault::BadList)?;
            certs.push(der);
        }
        let status = info["ServiceStatus"].as_str();
        if !status.is_none_or(|s| s.ends_with("/notified")) {
            continue;
        }
        match info["ServiceTypeIdentifier"].as_str() {
            Some(t) if t == kind.issuance => issuance.extend(certs),
            Some(t) if t == kind.revocation => revocation.extend(certs),
            _ => {}
        }
    }
    Ok((issuance, revocation))
}

/// A JWS as served: its protected header, its payload (decoded), what the
/// signature covers and the signature.
struct Signed {
    header: Object,
    payload: Vec<u8>,
    signing_input: String,
    signature: Vec<u8>,
}

/// The header parameters a list's `crit` may name: JAdES's claimed signing
/// time, read as information only.
const CRITICAL_KNOWN: &[&str] = &["sigT"];

impl Signed {
    /// A compact JWS, or a JSON serialization (general with one signature,
    /// or flattened); `None` when it is neither.
    fn parse(body: &str) -> Option<Self> {
        let (protected, payload, signature) = if body.starts_with('{') {
            let json = object(body.as_bytes())?;
            let one = match json.get("signatures") {
                Some(Value::Array(all)) if all.len() == 1 => all[0].as_object()?.clone(),
                Some(_) => return None,
                None => json.clone(),
            };
            let text = |o: &Object, k: &str| o.get(k).and_then(Value::as_str).map(str::to_string);
            (
                text(&one, "protected")?,
                text(&json, "payload")?,
                text(&one, "signature")?,
            )
        } else {
            let mut parts = body.split('.');
            let (h, p, s) = (parts.next()?, parts.next()?, parts.next()?);
            if parts.next().is_some() {
                return None;
            }
            (h.to_string(), p.to_string(), s.to_string())
        };
        Some(Signed {
            header: object(&b64url(&protected)?)?,
            payload: b64url(&payload)?,
            signing_input: format!("{protected}.{payload}"),
            signature: b64url(&signature)?,
        })
    }

    /// The signature checked: an `alg` of [`JwsAlg`], no `crit` but the
    /// known, an `x5c` chain reaching `signers` and valid at `now`, and
    /// its leaf's key's signature.
    fn verify(&self, signers: &TrustedIssuers, now: Timestamp) -> Result<(), Fault> {
        let alg = self
            .header
            .get("alg")
            .and_then(Value::as_str)
            .and_then(JwsAlg::parse)
            .ok_or(Fault::BadSignature)?;
        if let Some(crit) = self.header.get("crit") {
            let known = crit.as_array().is_some_and(|names| {
                names
                    .iter()
                    .all(|n| n.as_str().is_some_and(|n| CRITICAL_KNOWN.contains(&n)))
            });
            if !known {
                return Err(Fault::BadSignature);
            }
        }
        let x5c: Vec<Vec<u8>> = match self.header.get("x5c") {
            Some(Value::Array(certs)) if !certs.is_empty() => certs
                .iter()
                .map(|c| c.as_str().and_then(b64))
                .collect::<Option<_>>()
                .ok_or(Fault::BadSignature)?,
            _ => return Err(Fault::BadSignature),
        };
        let signer = verify_chain(&x5c, signers, now).map_err(|_| Fault::BadSignature)?;
        if !signer
            .key
            .verifies(alg, self.signing_input.as_bytes(), &self.signature)
        {
            return Err(Fault::BadSignature);
        }
        Ok(())
    }
}
