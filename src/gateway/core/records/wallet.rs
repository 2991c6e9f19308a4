//! A wallet challenge as the store holds it, inside its challenge
//! (docs/wallet.md#results): what it asks for, its open requests (each
//! key's private scalar, kept only while the challenge is open) and its
//! answer, with the disclosed values of the asked claims, which live as
//! long as the interaction's record and nowhere else.
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::domain::wallet::registration::{Registered, Registrations};
use crate::domain::wallet::Format;
use crate::domain::wallet_state::{
    KeyRegistration, ScaProof, WalletAnswer, WalletChallenge, WalletRequest, WalletResult,
};
use crate::time::{stored, Timestamp};

/// A [`WalletChallenge`]: `c` its credential, `f` format, `o` the other
/// credentials asked (none in a record written before a challenge could
/// ask several), `m` what is expected, `q` requests, `a` its answer, `rc`
/// the keyed hash of its answer's `response_code`, `rb` of the browser
/// that opened it, `td` a payment's `transaction_data` entry, `rg` what
/// it has to do with the customer's registered attestations.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct StoredWallet {
    c: String,
    #[serde(with = "stored_format")]
    f: Format,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    o: Vec<String>,
    m: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    q: Vec<StoredRequest>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    a: Option<StoredAnswer>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rc: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rb: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    td: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rg: Option<StoredRegistration>,
}

/// A [`KeyRegistration`]: `r` it registers (else a payment only a
/// registered attestation approves), `t` the verified holder key's
/// thumbprint.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredRegistration {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    r: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    t: Option<String>,
}

/// A [`Format`] by its stored name (`Format::stored`: `sd`, `md`).
mod stored_format {
    use serde::{de, Deserialize as _, Deserializer, Serializer};

    use crate::domain::wallet::Format;

    pub fn serialize<S: Serializer>(f: &Format, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(f.stored())
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Format, D::Error> {
        let name = std::borrow::Cow::<'de, str>::deserialize(d)?;
        Format::from_stored(&name).ok_or_else(|| de::Error::custom("an unknown credential format"))
    }
}

/// A [`WalletRequest`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredRequest {
    r: String,
    k: String,
    s: String,
    n: String,
    d: String,
    #[serde(with = "stored")]
    at: Timestamp,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    x: bool,
}

/// A [`WalletAnswer`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredAnswer {
    r: StoredResult,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    i: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    mt: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    cl: BTreeMap<String, serde_json::Value>,
    #[serde(with = "stored")]
    at: Timestamp,
    /// A verified payment's authentication: `j` its code, `m` its `amr`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    sc: Option<StoredSca>,
}

/// A [`ScaProof`].
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredSca {
    j: String,
    m: serde_json::Value,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum StoredResult {
    Verified,
    ClaimsMismatch,
    UntrustedIssuer,
    Revoked,
    InvalidPresentation,
}

impl From<&WalletChallenge> for StoredWallet {
    fn from(w: &WalletChallenge) -> Self {
        StoredWallet {
            c: w.credential.clone(),
            f: w.format,
            o: w.also.clone(),
            m: w.asked.clone(),
            q: w.requests
                .iter()
                .map(|r| StoredRequest {
                    r: r.rid.clone(),
                    k: r.kid.clone(),
                    s: r.state.clone(),
                    n: r.nonce.clone(),
                    d: r.key.clone(),
                    at: r.made_at,
                    x: r.answered,
                })
                .collect(),
            a: w.answer.as_ref().map(|a| StoredAnswer {
                r: match a.result {
                    WalletResult::Verified => StoredResult::Verified,
                    WalletResult::ClaimsMismatch => StoredResult::ClaimsMismatch,
                    WalletResult::UntrustedIssuer => StoredResult::UntrustedIssuer,
                    WalletResult::Revoked => StoredResult::Revoked,
                    WalletResult::InvalidPresentation => StoredResult::InvalidPresentation,
                },
                i: a.issuer.clone(),
                mt: a.matched.clone(),
                cl: a.claims.clone(),
                at: a.answered_at,
                sc: a.sca.as_ref().map(|p| StoredSca {
                    j: p.code.clone(),
                    m: p.amr.clone(),
                }),
            }),
            rc: w.response_code.clone(),
            rb: w.code_browser.clone(),
            td: w.transaction_data.clone(),
            rg: w.registration.as_ref().map(|k| StoredRegistration {
                r: k.register,
                t: k.thumbprint.clone(),
            }),
        }
    }
}

impl From<StoredWallet> for WalletChallenge {
    fn from(w: StoredWallet) -> Self {
        WalletChallenge {
            credential: w.c,
            format: w.f,
            also: w.o,
            asked: w.m,
            requests: w
                .q
                .into_iter()
                .map(|r| WalletRequest {
                    rid: r.r,
                    kid: r.k,
                    state: r.s,
                    nonce: r.n,
                    key: r.d,
                    made_at: r.at,
                    answered: r.x,
                })
                .collect(),
            answer: w.a.map(|a| WalletAnswer {
                result: match a.r {
                    StoredResult::Verified => WalletResult::Verified,
                    StoredResult::ClaimsMismatch => WalletResult::ClaimsMismatch,
                    StoredResult::UntrustedIssuer => WalletResult::UntrustedIssuer,
                    StoredResult::Revoked => WalletResult::Revoked,
                    StoredResult::InvalidPresentation => WalletResult::InvalidPresentation,
                },
                issuer: a.i,
                matched: a.mt,
                claims: a.cl,
                answered_at: a.at,
                sca: a.sc.map(|p| ScaProof {
                    code: p.j,
                    amr: p.m,
                }),
            }),
            response_code: w.rc,
            code_browser: w.rb,
            transaction_data: w.td,
            registration: w.rg.map(|k| KeyRegistration {
                register: k.r,
                thumbprint: k.t,
            }),
        }
    }
}

/// A wallet request's key id → where its answer goes
/// (`keys::wallet_key`): `t` its team, `i` its interaction, `c` its
/// challenge, `w` its link's code (the answer's `redirect_uri` names it).
/// No `Debug`: the code is a bearer secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredWalletKey {
    pub t: String,
    pub i: uuid::Uuid,
    pub c: uuid::Uuid,
    pub w: String,
}

impl super::Record for StoredWalletKey {}

/// A customer's attestations registered for payments
/// (`keys::wallet_registrations`,
/// docs/wallet.md#registering-the-wallet-for-payments), oldest first: each
/// `i` its issuer's subject, `t` its holder key's thumbprint, `at` when
/// registered, `u` when it last approved a payment. Kept
/// `registration::KEPT` after its last write.
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredRegistrations {
    w: Vec<StoredRegistered>,
}

#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
struct StoredRegistered {
    i: String,
    t: String,
    #[serde(with = "stored")]
    at: Timestamp,
    #[serde(default, skip_serializing_if = "Option::is_none", with = "stored::opt")]
    u: Option<Timestamp>,
}

impl From<&Registrations> for StoredRegistrations {
    fn from(r: &Registrations) -> Self {
        StoredRegistrations {
            w: r.wallets
                .iter()
                .map(|r| StoredRegistered {
                    i: r.issuer.clone(),
                    t: r.thumbprint.clone(),
                    at: r.registered_at,
                    u: r.last_used_at,
                })
                .collect(),
        }
    }
}

impl From<StoredRegistrations> for Registrations {
    fn from(r: StoredRegistrations) -> Self {
        Registrations {
            wallets: r
                .w
                .into_iter()
                .map(|r| Registered {
                    issuer: r.i,
                    thumbprint: r.t,
                    registered_at: r.at,
                    last_used_at: r.u,
                })
                .collect(),
        }
    }
}

impl super::Readable for Registrations {
    fn read(text: &str, _key: &str) -> Result<Self, String> {
        serde_json::from_str::<StoredRegistrations>(text)
            .map(Into::into)
            .map_err(|e| e.to_string())
    }
}
