//! A wallet challenge's state (docs/wallet.md#results), kept in its
//! challenge: what it asks for, the requests its page made (each a fresh
//! key, `state` and `nonce`; the newest [`MAX_REQUESTS`] kept), and what a
//! presentation answered. Plain values with no rule of the interaction's:
//! `domain::wallet::challenge` applies answers.
use std::collections::BTreeMap;
use std::fmt;

use serde_json::Value;

use crate::domain::wallet_format::Format;

use crate::time::Timestamp;

/// How many requests a challenge keeps: a page fetch makes one, and the
/// oldest goes when a sixth is made.
pub const MAX_REQUESTS: usize = 5;

/// How many credentials one challenge may ask for, of which the
/// customer presents any one.
pub const MAX_CREDENTIALS: usize = 4;

/// How many claims a challenge may compare, and how long each expected
/// value may be, in characters.
pub const MAX_MATCH: usize = 10;
pub const MAX_VALUE_CHARS: usize = 200;

/// A wallet challenge: the credential asked for and what the bank expects
/// of it; its `Debug` shows neither the expected values nor the
/// disclosed ones, nor any request's key.
#[derive(Clone, PartialEq, Eq)]
pub struct WalletChallenge {
    /// One of the team's `[wallet] credentials` ids: the first asked for,
    /// or once one was presented, that one.
    pub credential: String,
    /// `credential`'s format.
    pub format: Format,
    /// The other credentials asked for, any one of which the customer may
    /// present instead (at most [`MAX_CREDENTIALS`] - 1).
    pub also: Vec<String>,
    /// Claim name → the value the bank expects; 1..=[`MAX_MATCH`].
    pub asked: BTreeMap<String, String>,
    /// The open requests, oldest first.
    pub requests: Vec<WalletRequest>,
    /// What the presentation answered, once one did.
    pub answer: Option<WalletAnswer>,
    /// A verified `direct_post` answer's `response_code`, as its keyed hash:
    /// the `redirect_uri` the wallet opens carries it, and only there is
    /// the binding code shown (docs/wallet.md#the-code-typed-into-the-chat).
    pub response_code: Option<String>,
    /// The keyed hash of the secret of the browser that first opened that
    /// `redirect_uri` (its cookie keeps the secret): the code is shown
    /// again in that browser only.
    pub code_browser: Option<String>,
    /// For a payment, the `transaction_data` entry every request of the
    /// challenge carries, written once at its start
    /// (docs/wallet.md#a-payment-approved-in-the-wallet).
    pub transaction_data: Option<String>,
    /// What the challenge has to do with the customer's attestations
    /// registered for payments
    /// (docs/wallet.md#registering-the-wallet-for-payments); `None` for
    /// a challenge that has nothing to do with them.
    pub registration: Option<KeyRegistration>,
}

/// A wallet challenge that registers the attestation presented
/// (`register`), or a payment that only a registered one approves; once
/// a presentation verified, the thumbprint of its holder key, which the
/// binding code's verification registers or marks used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyRegistration {
    pub register: bool,
    pub thumbprint: Option<String>,
}

/// One request a page fetch made: its ids, the nonce the key binding must
/// carry, and the private scalar of its encryption key (base64url), kept
/// only while the challenge is open.
#[derive(Clone, PartialEq, Eq)]
pub struct WalletRequest {
    pub rid: String,
    /// The encryption key's id (its RFC 7638 thumbprint).
    pub kid: String,
    pub state: String,
    pub nonce: String,
    pub key: String,
    pub made_at: Timestamp,
    /// A response to it was taken: another is 400.
    pub answered: bool,
}

/// What a presentation answered.
#[derive(Clone, PartialEq, Eq)]
pub struct WalletAnswer {
    pub result: WalletResult,
    /// The issuer certificate's subject (RFC 4514), when verified that far.
    pub issuer: Option<String>,
    /// The asked claims that were disclosed and equal.
    pub matched: Vec<String>,
    /// The asked claims as disclosed (never one not asked for); shown to
    /// bot keys only, never in events, logs or traces.
    pub claims: BTreeMap<String, Value>,
    pub answered_at: Timestamp,
    /// A verified payment's strong customer authentication: the Key
    /// Binding JWT's `jti` (its authentication code) and `amr`, which the
    /// approval token carries.
    pub sca: Option<ScaProof>,
}

/// A payment's strong customer authentication, as a verified answer
/// keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScaProof {
    pub code: String,
    pub amr: Value,
}

impl fmt::Debug for WalletAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletAnswer")
            .field("result", &self.result)
            .field("matched", &self.matched)
            .field("answered_at", &self.answered_at)
            .finish_non_exhaustive()
    }
}

/// The result of a presentation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WalletResult {
    Verified,
    ClaimsMismatch,
    UntrustedIssuer,
    Revoked,
    InvalidPresentation,
}

impl WalletResult {
    pub const ALL: [WalletResult; 5] = [
        WalletResult::Verified,
        WalletResult::ClaimsMismatch,
        WalletResult::UntrustedIssuer,
        WalletResult::Revoked,
        WalletResult::InvalidPresentation,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            WalletResult::Verified => "verified",
            WalletResult::ClaimsMismatch => "claims_mismatch",
            WalletResult::UntrustedIssuer => "untrusted_issuer",
            WalletResult::Revoked => "revoked",
            WalletResult::InvalidPresentation => "invalid_presentation",
        }
    }
}

impl WalletChallenge {
    /// A challenge asking `credential` (of `format`) for `asked`.
    pub fn asking(credential: String, format: Format, asked: BTreeMap<String, String>) -> Self {
        WalletChallenge {
            credential,
            format,
            also: Vec::new(),
            asked,
            requests: Vec::new(),
            answer: None,
            response_code: None,
            code_browser: None,
            transaction_data: None,
            registration: None,
        }
    }

    /// Every credential asked for, `credential` first.
    pub fn credentials(&self) -> Vec<&str> {
        std::iter::once(self.credential.as_str())
            .chain(self.also.iter().map(String::as_str))
            .collect()
    }

    /// Records that credential `id` (of `format`) was the one presented:
    /// it becomes `credential`, the others asked `also`. `false`,
    /// changing nothing, when it was not asked for.
    pub fn presented(&mut self, id: &str, format: Format) -> bool {
        let all: Vec<String> = self.credentials().into_iter().map(str::to_string).collect();
        if !all.iter().any(|c| c == id) {
            return false;
        }
        self.also = all.into_iter().filter(|c| c != id).collect();
        self.credential = id.to_string();
        self.format = format;
        true
    }

    /// Keeps `request`, the oldest going beyond [`MAX_REQUESTS`]: the key
    /// ids of those that went.
    pub fn add_request(&mut self, request: WalletRequest) -> Vec<String> {
        self.requests.push(request);
        let over = self.requests.len().saturating_sub(MAX_REQUESTS);
        self.requests.drain(..over).map(|r| r.kid).collect()
    }

    /// The request `rid` names, while it is unanswered.
    pub fn open_request(&self, rid: &str) -> Option<&WalletRequest> {
        self.requests.iter().find(|r| r.rid == rid && !r.answered)
    }

    /// The request whose key is `kid`, while it is unanswered.
    pub fn request_for_key(&self, kid: &str) -> Option<&WalletRequest> {
        self.requests.iter().find(|r| r.kid == kid && !r.answered)
    }

    /// The challenge as remembered once ended: its answer, no request
    /// and nothing of where its binding code was shown.
    pub fn ended(&self) -> Self {
        WalletChallenge {
            requests: Vec::new(),
            response_code: None,
            code_browser: None,
            ..self.clone()
        }
    }
}

impl fmt::Debug for WalletChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletChallenge")
            .field("credential", &self.credential)
            .field("format", &self.format)
            .field("also", &self.also)
            .field("asked", &self.asked.keys().collect::<Vec<_>>())
            .field("requests", &self.requests.len())
            .field("result", &self.answer.as_ref().map(|a| a.result))
            .finish()
    }
}

impl fmt::Debug for WalletRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WalletRequest")
            .field("made_at", &self.made_at)
            .field("answered", &self.answered)
            .finish_non_exhaustive()
    }
}
