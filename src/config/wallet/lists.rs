//! A team's `[wallet.trusted_lists.NAME]` (docs/wallet.md#trusted-lists):
//! where a list of trusted entities is published, whose certificates may
//! sign it, what kind of list it must be, how often it is fetched again and
//! how long past its `NextUpdate` it still counts. Checked at start and at
//! each reload, each problem naming its key; a list that cannot be reached
//! then is not a problem of the configuration.
use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;
use sha2::{Digest as _, Sha256};

use crate::domain::wallet::issuers::TrustedIssuers;
use crate::domain::wallet::trusted_list::ListKind;
use crate::time::Dur;

/// The shortest and longest `refresh`, and its default.
const REFRESH: (Duration, Duration) = (Duration::from_secs(300), Duration::from_secs(86_400));
const DEFAULT_REFRESH: Duration = Duration::from_secs(3600);

/// The longest `max_stale`.
const MAX_STALE: Duration = Duration::from_secs(7 * 86_400);

/// One trusted list, checked.
#[derive(Debug, Clone)]
pub struct TrustedListConfig {
    /// Letters, digits and `_`: the key of `[wallet.trusted_lists]`.
    pub name: String,
    /// `https://`, or `http://` on a loopback address.
    pub url: String,
    /// The operator's signing certificates, or CAs above them.
    pub signers: TrustedIssuers,
    pub kind: ListKind,
    pub refresh: Duration,
    pub max_stale: Duration,
    /// The SHA-256 (hex) of the url, signers and kind: a list whose
    /// definition changes at a reload starts afresh, its old copy dropped.
    pub fingerprint: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawList {
    url: String,
    #[serde(default)]
    signers: Vec<String>,
    #[serde(rename = "type")]
    kind: String,
    issuance: Option<String>,
    revocation: Option<String>,
    refresh: Option<Dur>,
    max_stale: Option<Dur>,
}

/// The lists of `raw`, or `(key, problem)` naming the first refused (its
/// key below `trusted_lists.`).
pub(super) fn trusted_lists(
    raw: BTreeMap<String, RawList>,
) -> Result<Vec<TrustedListConfig>, (String, String)> {
    raw.into_iter()
        .map(|(name, list)| {
            let at = |k: &str| format!("trusted_lists.{name}.{k}");
            if !is_name(&name) {
                let problem = "must be 1 to 64 letters, digits or _".to_string();
                return Err((format!("trusted_lists.{name}"), problem));
            }
            one(name.clone(), list).map_err(|(k, p)| (at(&k), p))
        })
        .collect()
}

/// Whether `name` is 1 to 64 letters, digits or `_`.
fn is_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn one(name: String, raw: RawList) -> Result<TrustedListConfig, (String, String)> {
    let bad = |k: &str, p: &str| Err((k.to_string(), p.to_string()));
    let fits = url::Url::parse(&raw.url).is_ok_and(|u| crate::config::https_or_loopback(&u));
    if !fits {
        return bad(
            "url",
            "must be an https:// URL (http:// on a loopback address only)",
        );
    }
    if raw.signers.is_empty() {
        return bad("signers", "must name at least one certificate (PEM)");
    }
    for (i, pem) in raw.signers.iter().enumerate() {
        if let Err(e) = TrustedIssuers::from_pems(std::slice::from_ref(pem)) {
            return bad(&format!("signers[{i}]"), &e.to_string());
        }
    }
    let signers =
        TrustedIssuers::from_pems(&raw.signers).map_err(|e| ("signers".into(), e.to_string()))?;
    let kind = kind(&raw.kind, raw.issuance, raw.revocation)?;
    let refresh = raw.refresh.map_or(DEFAULT_REFRESH, Dur::get);
    if !(REFRESH.0..=REFRESH.1).contains(&refresh) {
        return bad("refresh", "must be from \"5m\" to \"24h\"");
    }
    let max_stale = raw.max_stale.map_or(Duration::ZERO, Dur::get);
    if max_stale > MAX_STALE {
        return bad("max_stale", "must be at most \"7d\"");
    }
    let mut hash = Sha256::new();
    for part in [&raw.url, &kind.lote_type, &kind.issuance, &kind.revocation] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for pem in &raw.signers {
        hash.update(pem.trim().as_bytes());
        hash.update([0]);
    }
    Ok(TrustedListConfig {
        name,
        url: raw.url,
        signers,
        kind,
        refresh,
        max_stale,
        fingerprint: hex::encode(hash.finalize()),
    })
}

/// The kind `type` names: one of the EU's (`pid`, `wallet`, `pub_eaa`,
/// `wrpac`, `wrprc`), or an absolute URI with the `issuance` and
/// `revocation` service types given.
fn kind(
    name: &str,
    issuance: Option<String>,
    revocation: Option<String>,
) -> Result<ListKind, (String, String)> {
    let bad = |k: &str, p: &str| Err((k.to_string(), p.to_string()));
    if let Some(kind) = ListKind::named(name) {
        if issuance.is_some() || revocation.is_some() {
            return bad("issuance", "is for a type given as a URI only");
        }
        return Ok(kind);
    }
    if !is_absolute_uri(name) {
        return bad(
            "type",
            "must be \"pid\", \"wallet\", \"pub_eaa\", \"wrpac\", \"wrprc\" or an absolute URI",
        );
    }
    let (Some(issuance), Some(revocation)) = (issuance, revocation) else {
        return bad(
            "issuance",
            "a type given as a URI needs issuance and revocation (service type URIs)",
        );
    };
    for (key, uri) in [("issuance", &issuance), ("revocation", &revocation)] {
        if !is_absolute_uri(uri) {
            return bad(key, "must be an absolute URI");
        }
    }
    Ok(ListKind {
        lote_type: name.to_string(),
        territory: None,
        issuance,
        revocation,
    })
}

/// Whether `text` is an absolute URI: a scheme and something after it.
fn is_absolute_uri(text: &str) -> bool {
    url::Url::parse(text).is_ok_and(|u| !u.cannot_be_a_base() || u.scheme() == "urn")
}

/// `verify_own = true` (docs/wallet.md#the-banks-own-certificates): the
/// bank's own certificates, to be found on its `wrpac` and `wrprc` lists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifyOwn {
    /// The registration certificate's `x5c` (DER, leaf first), when the
    /// team sends one: a `wrprc` list's issuance service must hold it.
    pub registration: Option<Vec<Vec<u8>>>,
}

/// What `verify_own` asks of a team whose `lists` are read and whose
/// registration certificate's header holds `registration` (`None`: it
/// sends none; `Some(None)`: its header has no `x5c` that can be read):
/// `None` when off; else `(key, problem)` naming the key refused (below
/// `wallet.`).
pub(super) fn verify_own(
    on: bool,
    lists: &[TrustedListConfig],
    registration: Option<Option<Vec<Vec<u8>>>>,
) -> Result<Option<VerifyOwn>, (String, String)> {
    if !on {
        return Ok(None);
    }
    let has = |kind: &str| {
        let kind = ListKind::named(kind);
        lists.iter().any(|l| Some(&l.kind) == kind.as_ref())
    };
    let bad = |k: &str, p: &str| Err((k.to_string(), p.to_string()));
    if !has("wrpac") {
        return bad(
            "verify_own",
            "needs a [wallet.trusted_lists] list of type \"wrpac\" to find the access certificate on",
        );
    }
    let Some(x5c) = registration else {
        return Ok(Some(VerifyOwn { registration: None }));
    };
    if !has("wrprc") {
        return bad(
            "verify_own",
            "needs a [wallet.trusted_lists] list of type \"wrprc\" to find registration_certificate on",
        );
    }
    match x5c {
        Some(chain) => Ok(Some(VerifyOwn {
            registration: Some(chain),
        })),
        None => bad(
            "registration_certificate",
            "must carry an x5c header (base64 DER certificates, leaf first) for verify_own",
        ),
    }
}

/// A certificate chain: each certificate's DER, leaf first.
pub(super) type Chain = Vec<Vec<u8>>;

/// The `x5c` of a JWT's `header`, read once: at least one base64 DER.
pub(super) fn x5c_in(header: &serde_json::Map<String, serde_json::Value>) -> Option<Chain> {
    use base64::Engine as _;
    let chain: Vec<Vec<u8>> = header
        .get("x5c")?
        .as_array()?
        .iter()
        .map(|c| {
            base64::engine::general_purpose::STANDARD
                .decode(c.as_str()?)
                .ok()
        })
        .collect::<Option<_>>()?;
    (!chain.is_empty()).then_some(chain)
}
