//! A wallet's answer judged on plain values (docs/wallet.md#the-response):
//! the request key its JWE names ([`kid_of`]), its presentation verified
//! as its credential's format asks for the mode it came by ([`verify`]),
//! the payment it approves ([`paying`]), its claims compared with what
//! the bank expects ([`compared`]) or the result it went no further than
//! ([`refused`]), and what its holder key came to kept on the challenge
//! ([`held_by`]). Finding the request, reading the trusted and status
//! lists and committing the result are the gateway's
//! (`gateway::wallet`); nothing here reads the clock, the store or the
//! network.
use std::collections::BTreeMap;

use uuid::Uuid;

use super::challenge::{Ending, WalletAnswer, WalletChallenge, WalletResult};
use super::invalid::Invalid;
use super::issuers::TrustedIssuers;
use super::jose::{b64url, object, Object};
use super::mdoc::{self, Handover};
use super::outcome::Outcome;
use super::{matching, payment, registration, sd_jwt, Format};
use crate::domain::interaction::InteractionRecord;
use crate::time::Timestamp;

/// The `kid` of a compact JWE's protected header; `Err` says why there
/// is none to read.
pub fn kid_of(jwe: &str) -> Result<String, &'static str> {
    let header = jwe
        .split('.')
        .next()
        .and_then(b64url)
        .and_then(|h| object(&h))
        .ok_or("not a compact JWE")?;
    header
        .get("kid")
        .and_then(serde_json::Value::as_str)
        .filter(|k| !k.is_empty() && k.len() <= 128)
        .map(str::to_string)
        .ok_or("a JWE without the request key's kid")
}

/// The credential a presentation is verified as, by its format's names:
/// an SD-JWT VC's accepted `vct`s, an mdoc's `docType` and namespace.
#[derive(Debug, Clone, Copy)]
pub struct Asked<'a> {
    pub format: Format,
    pub vct: &'a [String],
    pub doctype: &'a str,
    pub namespace: &'a str,
}

/// How an answer came, and so what its presentation is bound to.
#[derive(Debug, Clone, Copy)]
pub enum Came<'a> {
    /// Posted by the wallet (`direct_post.jwt`) to `response_uri`, for
    /// the verifier's `client_id`.
    Direct {
        client_id: &'a str,
        response_uri: &'a str,
    },
    /// Through the browser's Digital Credentials API (`dc_api.jwt`) on
    /// the page of `origin` (without an `origin:` prefix).
    DcApi { origin: &'a str },
}

impl Came<'_> {
    /// By `direct_post.jwt`.
    pub fn direct(&self) -> bool {
        match self {
            Came::Direct { .. } => true,
            Came::DcApi { .. } => false,
        }
    }
}

/// What a presentation is verified against: the credential asked, its
/// trusted issuers, the request's `nonce` and its key's thumbprint, and
/// how the answer came.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    pub asked: Asked<'a>,
    pub trusted: &'a TrustedIssuers,
    pub nonce: &'a str,
    /// The request key's RFC 7638 thumbprint, base64url.
    pub jwk_thumbprint: &'a str,
    pub came: Came<'a>,
}

/// `presented` verified as its credential's format asks: an SD-JWT VC
/// bound to the `nonce` and, by `direct_post.jwt`, the `client_id`,
/// through the Digital Credentials API `origin:` and the page's origin
/// (OpenID4VP 1.0, Appendix A.4); an mdoc whose device signed the
/// SessionTranscript of the mode it came by (OpenID4VP 1.0, Appendix B.2:
/// `OpenID4VPHandover` with the `client_id`, `nonce`, the request key's
/// thumbprint and the `response_uri` for `direct_post.jwt`;
/// `OpenID4VPDCAPIHandover` with the page's origin, `nonce` and thumbprint
/// for `dc_api.jwt`; docs/decisions/0483-an-mdocs-session-transcript-for-each-mode.md).
pub fn verify(presented: &str, expected: &Expected<'_>, now: Timestamp) -> Outcome {
    let (asked, nonce) = (expected.asked, expected.nonce);
    let trusted = expected.trusted;
    match asked.format {
        Format::SdJwt => {
            let audience = match expected.came {
                Came::Direct { client_id, .. } => client_id.to_string(),
                Came::DcApi { origin } => format!("origin:{origin}"),
            };
            let vct = asked.vct;
            let expected = sd_jwt::Expected {
                trusted,
                vct,
                audience: &audience,
                nonce,
                now,
            };
            sd_jwt::verify(presented, &expected)
        }
        Format::Mdoc => {
            let jwk_thumbprint = Some(expected.jwk_thumbprint);
            let handover = match expected.came {
                Came::Direct {
                    client_id,
                    response_uri,
                } => Handover::Redirect {
                    client_id,
                    nonce,
                    jwk_thumbprint,
                    response_uri,
                },
                Came::DcApi { origin } => Handover::DcApi {
                    origin,
                    nonce,
                    jwk_thumbprint,
                },
            };
            let (doctype, namespace) = (asked.doctype, asked.namespace);
            let expected = mdoc::Expected {
                trusted,
                doctype,
                namespace,
                handover,
                now,
            };
            mdoc::verify(presented, &expected)
        }
    }
}

/// The payment a presentation approves, when its credential is the
/// team's `sca` one: its Key Binding JWT's claims `kb` checked against
/// challenge `asked`'s `transaction_data` and the mode it came by
/// (`direct`: `direct_post.jwt`; docs/wallet.md#a-payment-approved-in-the-wallet).
/// A registration approves none.
pub fn paying(
    asked: &WalletChallenge,
    sca: bool,
    kb: &Object,
    direct: bool,
) -> Result<Option<payment::ScaProof>, Invalid> {
    let data = asked.transaction_data.as_deref();
    // A registration approves no payment: its attestation is checked as
    // any other, its key kept.
    if asked.registration.as_ref().is_some_and(|k| k.register) {
        return match (sca, data) {
            (true, None) => Ok(None),
            _ => Err(Invalid::NotAPayment),
        };
    }
    payment::presented((sca, data), kb, payment::response_mode(direct))
}

/// A presentation that went no further than `result`.
pub fn refused(result: WalletResult, issuer: Option<String>, now: Timestamp) -> WalletAnswer {
    WalletAnswer {
        result,
        issuer,
        matched: Vec::new(),
        claims: BTreeMap::new(),
        answered_at: now,
        sca: None,
    }
}

/// A verified credential's `claims` compared with what the bank expects
/// (`asked`, by the names a `match` uses, each read from the claim the
/// credential calls `own_name` of it): `verified` when every asked claim
/// matched, else `claims_mismatch`; the asked claims as disclosed are
/// kept, by the `match` names, none other.
pub fn compared<'c>(
    asked: &BTreeMap<String, String>,
    own_name: impl Fn(&str) -> Option<&'c str>,
    claims: &Object,
    (issuer, now): (Option<String>, Timestamp),
) -> WalletAnswer {
    let disclosed: Object = asked
        .keys()
        .filter_map(|name| Some((name.clone(), claims.get(own_name(name)?)?.clone())))
        .collect();
    let c = matching::compare(asked, &disclosed);
    let disclosed = disclosed.into_iter().collect();
    WalletAnswer {
        result: match c.all {
            true => WalletResult::Verified,
            false => WalletResult::ClaimsMismatch,
        },
        issuer,
        matched: c.matched,
        claims: disclosed,
        answered_at: now,
        sca: None,
    }
}

/// What the presentation's holder key came to, kept on wallet challenge
/// `cid` of `rec` as it `ending`s: a verified one's `thumbprint`, which
/// the binding code's verification registers or marks used; a failure's
/// reason `not_registered` for a payment's key `not_registered` to the
/// customer (docs/wallet.md#registering-the-wallet-for-payments).
pub fn held_by(
    rec: &mut InteractionRecord,
    cid: Uuid,
    ending: &mut Ending,
    (thumbprint, not_registered): (Option<String>, bool),
) {
    match ending {
        Ending::AwaitingCode => {
            let wallet = rec.challenge.as_mut().filter(|c| c.id == cid);
            let kept = wallet.and_then(|c| c.proof.wallet_mut()?.registration.as_mut());
            if let Some(k) = kept {
                k.thumbprint = thumbprint;
            }
        }
        Ending::Failed { reason, .. } if not_registered => {
            *reason = registration::NOT_REGISTERED;
        }
        Ending::Failed { .. } | Ending::Open => {}
    }
}

#[cfg(test)]
mod tests;
