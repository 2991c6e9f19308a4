//! Approving one payment (docs/api.md#approving-one-payment): the
//! transaction a challenge is for, its rules, its canonical hash, the
//! texts' `#AMOUNT#` and `#PAYEE#`, the provider's
//! `authorization_details`, and the approval token's claims, signed by
//! the gateway's own `[approvals]` key.
//!
//! A transaction is parsed once, member by member: a missing member or one
//! of the wrong JSON type is 400, an unknown member or a value not allowed
//! 422, each naming the member. Its hash is the base64url (no padding)
//! SHA-256 of its RFC 8785 canonical JSON, so a bank computes the same hash
//! from the same object in any language.
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use serde::Serialize;
use serde_json::{json, Map, Value};
use sha2::{Digest, Sha256};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};
use unicode_security::{skeleton, MixedScript};
use uuid::Uuid;

use super::audit_keys::SigningKeys;
use super::characters::refused_in_identifier;
use crate::error::Error;
use crate::time::Timestamp;

/// The members a transaction may have.
const MEMBERS: [&str; 6] = [
    "type",
    "amount",
    "currency",
    "payee",
    "reference",
    "payee_id",
];
/// The longest payee, and reference, in characters.
const MAX_PAYEE: usize = 70;
const MAX_REFERENCE: usize = 35;
/// The longest `payee_id`, in characters.
const MAX_PAYEE_ID: usize = 70;
/// How long an approval token is good for.
pub const APPROVAL_TTL_SECS: i64 = 300;

/// One transaction a challenge is for, its members valid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transaction {
    /// `type`: 1..32 of `a-z` and `_` (`payment`).
    pub kind: String,
    /// A decimal string, more than zero, no more decimals than the
    /// currency's minor unit.
    pub amount: String,
    /// An ISO 4217 alphabetic code, upper case.
    pub currency: String,
    pub payee: String,
    pub reference: Option<String>,
    /// The payee's account as the payment system knows it (an IBAN, a
    /// card acceptor id): 1..70 of `A-Z`, `a-z`, `0-9`, `-`, `.`, `/`,
    /// `:`; required for a payment approved in the wallet.
    pub payee_id: Option<String>,
}

impl Transaction {
    /// The request's `transaction` (`field` names it in errors).
    pub fn parse(field: &str, v: &Value) -> Result<Transaction, Error> {
        let Value::Object(o) = v else {
            return Err(Error::BadRequest(format!("{field}: must be an object")));
        };
        // An unknown member is named as any body's is (docs/api.md#errors).
        if let Some(k) = o.keys().find(|k| !MEMBERS.contains(&k.as_str())) {
            return Err(Error::undefined(&format!("{field}.{k}")));
        }
        let at = |m: &str| format!("{field}.{m}");
        let kind = string(o, field, "type")?.ok_or_else(|| missing(&at("type")))?;
        let amount = string(o, field, "amount")?.ok_or_else(|| missing(&at("amount")))?;
        let currency = string(o, field, "currency")?.ok_or_else(|| missing(&at("currency")))?;
        let payee = string(o, field, "payee")?.ok_or_else(|| missing(&at("payee")))?;
        let reference = string(o, field, "reference")?;
        let payee_id = string(o, field, "payee_id")?;
        check_kind(&at("type"), kind)?;
        let minor = currency_minor_unit(&at("currency"), currency)?;
        check_amount(&at("amount"), amount, minor)?;
        check_words(&at("payee"), payee, MAX_PAYEE)?;
        check_printed(&at("payee"), payee, Digits::Refused)?;
        if let Some(r) = reference {
            check_words(&at("reference"), r, MAX_REFERENCE)?;
            check_printed(&at("reference"), r, Digits::Allowed)?;
        }
        if let Some(p) = payee_id {
            check_payee_id(&at("payee_id"), p)?;
        }
        Ok(Transaction {
            kind: kind.to_string(),
            amount: amount.to_string(),
            currency: currency.to_string(),
            payee: payee.to_string(),
            reference: reference.map(str::to_string),
            payee_id: payee_id.map(str::to_string),
        })
    }

    /// The transaction as the API writes it (`reference` only when given).
    pub fn to_json(&self) -> Value {
        let mut o = Map::new();
        o.insert("type".into(), json!(self.kind));
        o.insert("amount".into(), json!(self.amount));
        o.insert("currency".into(), json!(self.currency));
        o.insert("payee".into(), json!(self.payee));
        if let Some(r) = &self.reference {
            o.insert("reference".into(), json!(r));
        }
        if let Some(p) = &self.payee_id {
            o.insert("payee_id".into(), json!(p));
        }
        Value::Object(o)
    }

    /// The base64url (no padding) SHA-256 of [`Self::to_json`]'s RFC 8785
    /// canonical form.
    pub fn hash(&self) -> String {
        // Strings and an object of strings: canonical JSON cannot fail.
        let canonical = serde_json_canonicalizer::to_vec(&self.to_json()).unwrap_or_default();
        URL_SAFE_NO_PAD.encode(Sha256::digest(&canonical))
    }

    /// `#AMOUNT#`: the amount and the currency code as given (`120.00 EUR`).
    pub fn amount_text(&self) -> String {
        format!("{} {}", self.amount, self.currency)
    }

    /// RFC 9396 `authorization_details` for the identity provider: one
    /// entry, of type `payment_initiation` for a `payment`, else the
    /// transaction's own `type`.
    pub fn authorization_details(&self) -> Value {
        let kind = match self.kind.as_str() {
            "payment" => "payment_initiation",
            other => other,
        };
        let mut d = Map::new();
        d.insert("type".into(), json!(kind));
        d.insert(
            "instructedAmount".into(),
            json!({"amount": self.amount, "currency": self.currency}),
        );
        d.insert("creditorName".into(), json!(self.payee));
        if let Some(r) = &self.reference {
            d.insert("remittanceInformationUnstructured".into(), json!(r));
        }
        Value::Array(vec![Value::Object(d)])
    }
}

/// The steps of a delivery ladder that may carry a code for a
/// transaction: those whose channel shows the text (`shows_text`), the
/// others skipped as a step without a destination is; 422 when none is
/// left.
pub fn steps_showing(
    steps: Vec<String>,
    shows_text: impl Fn(&str) -> bool,
) -> Result<Vec<String>, Error> {
    let kept: Vec<String> = steps.into_iter().filter(|c| shows_text(c)).collect();
    if kept.is_empty() {
        return Err(Error::invalid(
            "delivery",
            "no step of otp.ladder can show the payment: each sends codes without the text",
        ));
    }
    Ok(kept)
}

fn missing(member: &str) -> Error {
    Error::BadRequest(format!("{member}: required"))
}

/// Member `name` of `o`: `None` when absent, 400 when not a string.
fn string<'a>(
    o: &'a Map<String, Value>,
    field: &str,
    name: &str,
) -> Result<Option<&'a str>, Error> {
    match o.get(name) {
        // A null member is one not given: a required one is then missing.
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(Error::BadRequest(format!(
            "{field}.{name}: must be a string"
        ))),
    }
}

/// A payee's account: 1..[`MAX_PAYEE_ID`] of `A-Z`, `a-z`, `0-9`, `-`,
/// `.`, `/`, `:`, and no link: neither `://` nor a leading `www.`
/// (docs/payments.md#the-payee).
fn check_payee_id(field: &str, id: &str) -> Result<(), Error> {
    let allowed = |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'/' | b':');
    if id.is_empty() || id.len() > MAX_PAYEE_ID || !id.bytes().all(allowed) {
        return Err(Error::invalid(
            field,
            "must be 1 to 70 of A-Z, a-z, 0-9, -, ., / and :",
        ));
    }
    let www = id.get(..4).is_some_and(|s| s.eq_ignore_ascii_case("www."));
    if id.contains("://") || www {
        return Err(Error::invalid(
            field,
            "must not be a link (`://`, a leading `www.`): it is the payee's account as the payment system knows it",
        ));
    }
    Ok(())
}

fn check_kind(field: &str, kind: &str) -> Result<(), Error> {
    let ok =
        (1..=32).contains(&kind.len()) && kind.bytes().all(|b| b.is_ascii_lowercase() || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(Error::invalid(field, "must be 1 to 32 of a-z and _"))
    }
}

/// The minor unit (decimals) of ISO 4217 currency `code`; 422 for a code
/// that is not one, or names no currency one pays in (no minor unit:
/// gold, SDR, the testing code).
fn currency_minor_unit(field: &str, code: &str) -> Result<u16, Error> {
    let upper = code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase());
    iso_currency::Currency::from_code(code)
        .filter(|_| upper)
        .and_then(|c| c.exponent())
        .ok_or_else(|| Error::invalid(field, "must be an ISO 4217 currency code, such as EUR"))
}

/// `^[0-9]{1,12}(\.[0-9]{1,4})?$`, more than zero, and no more decimals
/// than the currency has.
fn check_amount(field: &str, amount: &str, minor: u16) -> Result<(), Error> {
    let (whole, fraction) = match amount.split_once('.') {
        Some((w, f)) => (w, Some(f)),
        None => (amount, None),
    };
    let digits =
        |s: &str, max: usize| (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole, 12) || !fraction.is_none_or(|f| digits(f, 4)) {
        return Err(Error::invalid(
            field,
            "must be a decimal string of up to 12 digits and 4 decimals, such as 120.00",
        ));
    }
    if amount.bytes().all(|b| b == b'0' || b == b'.') {
        return Err(Error::invalid(field, "must be more than zero"));
    }
    if fraction.map_or(0, str::len) > usize::from(minor) {
        return Err(Error::invalid(
            field,
            &format!("has more decimals than the currency's {minor}"),
        ));
    }
    Ok(())
}

/// 1..=`max` characters shown to the payer: no control, format (bidi),
/// invisible or private-use characters, no space but U+0020 (a no-break
/// or thin space looks like one and is another), and each word (between
/// spaces) letters of one script, as identifiers (docs/api.md#identifiers).
fn check_words(field: &str, s: &str, max: usize) -> Result<(), Error> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(Error::invalid(
            field,
            &format!("must be 1 to {max} characters"),
        ));
    }
    let refused = |c: char| {
        refused_in_identifier(c)
            || c.general_category() == GeneralCategory::PrivateUse
            || (c.general_category() == GeneralCategory::SpaceSeparator && c != ' ')
    };
    if s.chars().any(refused) {
        return Err(Error::invalid(
            field,
            "must not contain control, invisible, bidi or private-use characters, nor a space other than U+0020",
        ));
    }
    if !s.split_whitespace().all(|w| w.is_single_script()) {
        return Err(Error::invalid(
            field,
            "must not mix letters of several scripts in one word (such as Latin with Cyrillic)",
        ));
    }
    if s.split_whitespace().any(looks_latin) {
        return Err(Error::invalid(
            field,
            "must not have a word written wholly in letters that look Latin (such as ACME in Cyrillic letters): write it in Latin letters",
        ));
    }
    Ok(())
}

/// Whether a run of seven or more digits is refused: in a payee (it
/// reads as a phone number or an account to pay), not in a reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Digits {
    Refused,
    Allowed,
}

/// A payee, or a reference, is printed where the code arrives and must
/// read as a name, never as an instruction (docs/payments.md#the-payee):
/// nothing that reads as a link (`://`, `:/`, a word starting `www.`, a
/// domain name, an e-mail address), a phone number (a run of seven
/// digits, a payee only), a question, an exclamation, a sentence after a
/// name, a layout (two spaces in a row) or a smudge over a letter
/// (stacked combining marks, [`stacked_marks`]). The value is never
/// echoed.
fn check_printed(field: &str, text: &str, digits: Digits) -> Result<(), Error> {
    if let Some(refusal) = refusal(text, digits) {
        return Err(Error::invalid(field, refusal));
    }
    Ok(())
}

/// Why `text` may not be printed where the code arrives, if it may not:
/// the first rule it breaks.
fn refusal(text: &str, digits: Digits) -> Option<&'static str> {
    let www = |w: &str| {
        let w = w.trim_start_matches(|c: char| !c.is_alphanumeric());
        w.get(..4)
            .is_some_and(|start| start.eq_ignore_ascii_case("www."))
    };
    let words = || text.split(' ');
    let rules: [(bool, &'static str); 8] = [
        (text.contains(":/") || words().any(www),
         "must not be or hold a link (`:/`, a word starting `www.`): a payee is the name the bank's payment system holds"),
        (words().any(holds_email), "must not hold an e-mail address"),
        (words().any(holds_domain),
         "must not hold a domain name (letters, a dot, letters, such as example.com): a payee is a name, not an address"),
        (digits == Digits::Refused && longest_digit_run(text) >= 7,
         "must not hold a run of 7 or more digits (spaces, dots and dashes between them counted): it reads as a phone number or an account"),
        (text.contains(['!', '?', '\u{FF01}', '\u{FF1F}']),
         "must not hold ! or ?: it is a name, not a sentence"),
        (sentence_after_a_dot(text),
         "must not have three or more words after a `.` and a space: it is a name, not a sentence"),
        (text.contains("  "), "must not have two spaces in a row"),
        (stacked_marks(text),
         "must not stack combining marks on a letter: at most one accent of the combining diacritical marks, and at most two marks of any kind"),
    ];
    rules
        .into_iter()
        .find(|(broken, _)| *broken)
        .map(|(_, why)| why)
}

/// Whether `word` holds a domain name: a dot with a letter or digit right
/// before it and a letter right after it, `evil.example` and
/// `EVIL.EXAMPLE` whatever the top-level domain, unless the labels on
/// both sides are one character each, as initials are (`e.V.`, `U.K.`,
/// `S.A.`; docs/decisions/0562-what-a-payee-may-not-read-as.md).
fn holds_domain(word: &str) -> bool {
    let c: Vec<char> = word.chars().collect();
    let label = |c: &char| c.is_alphanumeric() || *c == '-';
    (1..c.len().saturating_sub(1)).any(|i| {
        if c[i] != '.' || !c[i - 1].is_alphanumeric() || !c[i + 1].is_alphabetic() {
            return false;
        }
        let before = c[..i].iter().rev().take_while(|c| label(c)).count();
        let after = c[i + 1..].iter().take_while(|c| label(c)).count();
        before > 1 || after > 1
    })
}

/// Whether `word` holds an e-mail address: an `@` between a letter or
/// digit and another.
fn holds_email(word: &str) -> bool {
    let c: Vec<char> = word.chars().collect();
    (1..c.len().saturating_sub(1))
        .any(|i| c[i] == '@' && c[i - 1].is_alphanumeric() && c[i + 1].is_alphanumeric())
}

/// The most digits in one run of `text`, spaces, dots and dashes between
/// them counted as one run (`+44 7400-123.456` is 12).
fn longest_digit_run(text: &str) -> usize {
    let digit = |c: char| c.general_category() == GeneralCategory::DecimalNumber;
    let between = |c: char| matches!(c, ' ' | '.' | '-' | '\u{2010}'..='\u{2015}' | '\u{2212}');
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        if digit(c) {
            run += 1;
            longest = longest.max(run);
        } else if !between(c) {
            run = 0;
        }
    }
    longest
}

/// Whether a `.` and a space are followed by three or more words (a word
/// has a letter or a digit): `Bob. Ignore the amount` is a sentence after
/// a name, `Dr. Smith` and `ACME Ltd. Energy Services` are names.
fn sentence_after_a_dot(text: &str) -> bool {
    text.match_indices(". ").any(|(i, _)| {
        let rest = &text[i + 2..];
        let words = rest.split_whitespace();
        words
            .filter(|w| w.chars().any(char::is_alphanumeric))
            .count()
            >= 3
    })
}

/// Whether a letter of `s` carries more than one combining diacritical
/// mark (the script-less accents of U+0300..U+036F and their
/// supplements, the stuff of "zalgo" text), or more than two marks of
/// any kind: a Thai consonant's vowel and tone, or a Devanagari vowel
/// sign and anusvara, are two marks of their own scripts, and stay
/// (docs/decisions/0497-stacked-marks-on-a-payee.md).
fn stacked_marks(s: &str) -> bool {
    let (mut generic, mut any) = (0, 0);
    for c in s.chars() {
        let mark = matches!(
            c.general_category(),
            GeneralCategory::NonspacingMark
                | GeneralCategory::SpacingMark
                | GeneralCategory::EnclosingMark
        );
        if !mark {
            (generic, any) = (0, 0);
            continue;
        }
        any += 1;
        generic += usize::from(is_generic_mark(c));
        if generic > 1 || any > 2 {
            return true;
        }
    }
    false
}

/// Whether `c` is in a block of combining marks that belong to no script:
/// Combining Diacritical Marks and their Extended and Supplement blocks,
/// those for Symbols, and the Combining Half Marks.
fn is_generic_mark(c: char) -> bool {
    matches!(
        c,
        '\u{0300}'..='\u{036F}'
            | '\u{1AB0}'..='\u{1AFF}'
            | '\u{1DC0}'..='\u{1DFF}'
            | '\u{20D0}'..='\u{20FF}'
            | '\u{FE20}'..='\u{FE2F}'
    )
}

/// Whether `word` has letters, and each is a letter other than `a-z` and
/// `A-Z` that UTS #39's confusables (the `unicode-security` crate's
/// skeleton) write as ASCII letters: `АСМЕ` in Cyrillic is read as `ACME`,
/// `Ромашка` is not (its `м`, `ш` and `к` look like no ASCII letter).
/// A word with an ASCII letter is Latin, and mixed scripts are refused
/// before (docs/decisions/0310-a-payee-word-may-not-look-latin.md).
fn looks_latin(word: &str) -> bool {
    let mut letters = word.chars().filter(|c| c.is_alphabetic()).peekable();
    letters.peek().is_some()
        && letters.all(|c| {
            let mut buf = [0u8; 4];
            let one: &str = c.encode_utf8(&mut buf);
            !c.is_ascii() && skeleton(one).all(|p| p.is_ascii_alphabetic())
        })
}

/// The claims of an approval token (docs/api.md#the-approval-token).
#[derive(Debug, Clone, Serialize)]
pub struct ApprovalClaims {
    pub iss: String,
    pub aud: String,
    /// The interaction's `customer_ref`, null when none.
    pub sub: Option<String>,
    pub interaction_id: Uuid,
    pub challenge_id: Uuid,
    /// The transaction's hash.
    pub txn: String,
    pub transaction: Value,
    /// `["otp"]` for a code, `["app"]` for an app approval, `["wallet"]`
    /// for a wallet's.
    pub amr: Vec<&'static str>,
    /// The channels a code went through; absent for an app or a wallet
    /// approval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub via: Option<Vec<String>>,
    /// A wallet's approval: its strong customer authentication.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sca: Option<ApprovalSca>,
    pub iat: i64,
    pub exp: i64,
    /// 128 bits no one can guess, one per approval.
    pub jti: String,
}

/// What an approval is of: who approved which transaction, and how.
pub struct Approved<'a> {
    pub issuer: &'a str,
    pub team: &'a str,
    pub customer_ref: Option<&'a str>,
    pub interaction_id: Uuid,
    pub challenge_id: Uuid,
    pub transaction: &'a Transaction,
    /// `Some(via)` for a code, `None` for an app or a wallet approval.
    pub via: Option<Vec<String>>,
    /// `Some` for a wallet's approval
    /// (docs/wallet.md#a-payment-approved-in-the-wallet).
    pub sca: Option<ApprovalSca>,
}

/// A wallet's approval as its token says it: `code` the Key Binding
/// JWT's `jti` (the PSD2 authentication code), `amr` its factor objects,
/// `issuer` the SCA attestation issuer certificate's subject (RFC 4514).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalSca {
    pub code: String,
    pub amr: Value,
    pub issuer: String,
}

/// The `jti` of the approval by challenge `challenge_id`: 128 bits of a
/// keyed hash of it (`keyed_hash`, under the gateway's pepper), so that
/// every read of one approval gives the same token and no one without the
/// pepper can guess it.
pub fn approval_jti(keyed_hash: impl Fn(&[u8]) -> String, challenge_id: Uuid) -> String {
    keyed_hash(challenge_id.as_bytes())
        .chars()
        .take(32)
        .collect()
}

impl ApprovalClaims {
    /// The claims of `approved`, approved at `at` (`iat`; `exp` 5 minutes
    /// later), with `jti`.
    pub fn new(approved: Approved<'_>, at: Timestamp, jti: String) -> ApprovalClaims {
        let iat = at.unix_seconds();
        let amr = match (&approved.sca, &approved.via) {
            (Some(_), _) => "wallet",
            (None, Some(_)) => "otp",
            (None, None) => "app",
        };
        ApprovalClaims {
            iss: approved.issuer.to_string(),
            aud: approved.team.to_string(),
            sub: approved.customer_ref.map(str::to_string),
            interaction_id: approved.interaction_id,
            challenge_id: approved.challenge_id,
            txn: approved.transaction.hash(),
            transaction: approved.transaction.to_json(),
            amr: vec![amr],
            via: approved.via,
            sca: approved.sca,
            iat,
            exp: iat + APPROVAL_TTL_SECS,
            jti,
        }
    }

    /// Signed EdDSA by `keys` (`[approvals] signing_key`, `kid` its
    /// RFC 7638 thumbprint); `None` without a signing key.
    pub fn sign(&self, keys: &SigningKeys) -> Option<String> {
        keys.sign(self)
    }
}

/// A challenge may carry a `transaction` only when the gateway can sign
/// its approval (`[approvals] signing_key`): 422 naming `transaction`
/// otherwise, before anything is read, sent or counted
/// (docs/decisions/0311-approvals-are-signed-by-the-gateway-alone.md).
pub fn approvals_signed(
    transaction: Option<&Transaction>,
    keys: &SigningKeys,
) -> Result<(), Error> {
    if transaction.is_some() && !keys.signs() {
        return Err(Error::invalid(
            "transaction",
            "payments cannot be approved on this gateway: it has no [approvals] signing_key",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
