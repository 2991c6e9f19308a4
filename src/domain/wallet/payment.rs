//! A payment approved in the customer's wallet
//! (docs/wallet.md#a-payment-approved-in-the-wallet), on plain values:
//! the request's `transaction_data` entry for one payment
//! ([`transaction_data`]), written once per challenge, and the checks of
//! the Key Binding JWT that approves it ([`check`]): the hash of that
//! entry, its algorithm, the response mode, two factor categories in
//! `amr`, and a `jti` (the payment's authentication code, which the
//! caller keeps [`JTI_KEPT`] so that it is used once).
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest as _, Sha256};
use uuid::Uuid;

use super::invalid::Invalid;
use super::jose::{to_b64url, Object};
use super::sd_jwt::same;
use crate::domain::transaction::Transaction;
pub use crate::domain::wallet_state::ScaProof;
use crate::error::Error;
use crate::time::Timestamp;

/// The transaction data type of one payment.
pub const PAYMENT_TYPE: &str = "urn:eudi:sca:payment:1";

/// The one hash algorithm asked and accepted.
pub const HASH_ALG: &str = "sha-256";

/// How long a `jti` is kept once used: 400 days.
pub const JTI_KEPT: Duration = Duration::from_secs(400 * 24 * 60 * 60);

/// The longest `jti`, in characters.
const MAX_JTI: usize = 128;

/// The factor categories an `amr` object may name.
const FACTORS: [&str; 3] = ["knowledge", "possession", "inherence"];

/// The amount as a JSON number written with exactly its digits
/// (`120.00`), when it is one: a decimal string as a transaction holds,
/// without a leading zero before another digit (`007.50` is no JSON
/// number).
pub fn amount_number(amount: &str) -> Option<&str> {
    let whole = amount.split('.').next().unwrap_or_default();
    let leading_zero = whole.len() > 1 && whole.starts_with('0');
    let number = serde_json::from_str::<&serde_json::value::RawValue>(amount).is_ok();
    (number && !leading_zero).then_some(amount)
}

/// The `transaction_data` entry of payment `t` approved by a presentation
/// of `credential` for challenge `challenge`, dated `at` (whole seconds):
/// the base64url (no padding) of the JSON
/// `{"type", "credential_ids", "transaction_data_hashes_alg", "payload":
/// {"transaction_id", "date_time", "payee": {"name", "id"}, "currency",
/// "amount"}}`, `amount` a number written with the transaction's digits.
/// `None` when the transaction has no `payee_id` or its amount is no
/// JSON number ([`amount_number`]).
pub fn transaction_data(
    credential: &str,
    challenge: Uuid,
    at: Timestamp,
    t: &Transaction,
) -> Option<String> {
    let amount = amount_number(&t.amount)?;
    let text = |s: &str| Value::from(s).to_string();
    let date_time = Timestamp::from_unix_seconds(at.unix_seconds()).to_rfc3339();
    let json = format!(
        "{{\"type\":{},\"credential_ids\":[{}],\"transaction_data_hashes_alg\":[{}],\
         \"payload\":{{\"transaction_id\":{},\"date_time\":{},\"payee\":{{\"name\":{},\"id\":{}}},\
         \"currency\":{},\"amount\":{amount}}}}}",
        text(PAYMENT_TYPE),
        text(credential),
        text(HASH_ALG),
        text(&challenge.to_string()),
        text(&date_time),
        text(&t.payee),
        text(t.payee_id.as_deref()?),
        text(&t.currency),
    );
    Some(to_b64url(json.as_bytes()))
}

/// The asking rules of a wallet challenge for `transaction` of a
/// credential whose purpose is `sca` (or not) and whose `claims` are
/// empty (or not), comparing `matched` claims: an `sca` credential is
/// asked with a payment that names its `payee_id` and whose amount is a
/// JSON number ([`amount_number`]), any other never with one; `match`
/// names at least one claim, unless the credential is an `sca` one that
/// compares none. 422 naming the member otherwise.
pub fn asking(
    (sca, no_claims): (bool, bool),
    transaction: Option<&Transaction>,
    matched: usize,
) -> Result<(), Error> {
    match (sca, transaction) {
        (true, None) => {
            return Err(Error::invalid(
                "transaction",
                "required: an sca credential approves one payment",
            ))
        }
        (false, Some(_)) => {
            return Err(Error::invalid(
                "transaction",
                "only with the team's sca credential: this credential proves who the customer is",
            ))
        }
        (true, Some(t)) if t.payee_id.is_none() => {
            return Err(Error::invalid(
                "transaction.payee_id",
                "required for a payment approved in the wallet",
            ))
        }
        (true, Some(t)) if amount_number(&t.amount).is_none() => {
            return Err(Error::invalid(
                "transaction.amount",
                "must be written without a leading zero for a payment approved in the wallet",
            ))
        }
        _ => {}
    }
    if matched == 0 && !(sca && no_claims) {
        return Err(Error::invalid(
            "match",
            "required: the claims the credential must show, and their values",
        ));
    }
    Ok(())
}

/// The `response_mode` of a request answered by `direct_post.jwt`
/// (`direct`) or through the Digital Credentials API.
pub fn response_mode(direct: bool) -> &'static str {
    match direct {
        true => "direct_post.jwt",
        false => "dc_api.jwt",
    }
}

/// The payment a verified presentation approves, for a credential whose
/// purpose is `sca` (or not) presented to a challenge with
/// `transaction_data` (or none): `None` for neither; the checked
/// authentication ([`check`]) for both; a credential and a challenge that
/// disagree (the configuration changed since the start) approve nothing.
pub fn presented(
    (sca, transaction_data): (bool, Option<&str>),
    kb: &Object,
    response_mode: &str,
) -> Result<Option<ScaProof>, Invalid> {
    match (sca, transaction_data) {
        (false, None) => Ok(None),
        (true, Some(transaction_data)) => check(
            kb,
            &Expected {
                transaction_data,
                response_mode,
            },
        )
        .map(Some),
        _ => Err(Invalid::NotAPayment),
    }
}

/// What the Key Binding JWT of a payment must say.
#[derive(Debug, Clone, Copy)]
pub struct Expected<'a> {
    /// The request's `transaction_data` entry, as sent.
    pub transaction_data: &'a str,
    /// The request's `response_mode`.
    pub response_mode: &'a str,
}

/// The Key Binding JWT's claims `kb` checked for the payment `expected`
/// names: `transaction_data_hashes` exactly the base64url SHA-256 of the
/// entry (the string itself), `transaction_data_hashes_alg` `sha-256`,
/// `response_mode` the request's, `amr` at least two objects of
/// different factor categories, and a `jti` of 1 to 128 characters.
/// Whether that `jti` was seen before is the caller's to ask.
pub fn check(kb: &Object, expected: &Expected<'_>) -> Result<ScaProof, Invalid> {
    let want = to_b64url(&Sha256::digest(expected.transaction_data.as_bytes()));
    let hashes = kb.get("transaction_data_hashes").and_then(Value::as_array);
    match hashes.map(Vec::as_slice) {
        Some([Value::String(h)]) if same(h, &want) => {}
        _ => return Err(Invalid::WrongTransactionData),
    }
    let text = |name: &str| kb.get(name).and_then(Value::as_str).unwrap_or("");
    if text("transaction_data_hashes_alg") != HASH_ALG {
        return Err(Invalid::WrongTransactionData);
    }
    if !same(text("response_mode"), expected.response_mode) {
        return Err(Invalid::WrongResponseMode);
    }
    let amr = kb.get("amr").ok_or(Invalid::WeakAuthentication)?;
    if factor_categories(amr).is_none_or(|n| n < 2) {
        return Err(Invalid::WeakAuthentication);
    }
    let jti = text("jti");
    if jti.is_empty() || jti.chars().count() > MAX_JTI {
        return Err(Invalid::NoAuthenticationCode);
    }
    Ok(ScaProof {
        code: jti.to_string(),
        amr: amr.clone(),
    })
}

/// How many different factor categories `amr` names: `None` unless it is
/// an array of objects, each of one member, a category
/// (`knowledge`, `possession`, `inherence`) whose value names a method.
fn factor_categories(amr: &Value) -> Option<usize> {
    let mut seen: Vec<&str> = Vec::new();
    for entry in amr.as_array()? {
        let object = entry.as_object().filter(|o| o.len() == 1)?;
        let (category, method) = object.iter().next()?;
        let category = FACTORS.iter().find(|f| **f == category.as_str())?;
        method.as_str().filter(|m| !m.is_empty())?;
        if !seen.contains(category) {
            seen.push(category);
        }
    }
    Some(seen.len())
}

#[cfg(test)]
mod tests;
