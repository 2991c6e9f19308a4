//! Why a wallet's presentation is invalid (docs/wallet.md#sd-jwt-vc): the
//! name of the rule it broke, for a log line, never a value of it.

/// Why a presentation is invalid: a name, never a value of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{}", self.as_str())]
pub enum Invalid {
    Malformed,
    UnsupportedAlg,
    WrongType,
    BadSignature,
    VctNotAccepted,
    Expired,
    NotYetValid,
    IssuedInTheFuture,
    UnsupportedDigestAlg,
    BadDisclosure,
    DigestTwice,
    UnreferencedDisclosure,
    ProtectedClaimDisclosed,
    NoKeyBinding,
    NoHolderKey,
    WrongAudience,
    WrongNonce,
    StaleKeyBinding,
    WrongSdHash,
    WrongDoctype,
    ResponseStatus,
    DigestMismatch,
    NoDeviceSignature,
    BadDeviceSignature,
    WrongTransactionData,
    WrongResponseMode,
    WeakAuthentication,
    NoAuthenticationCode,
    ReusedAuthenticationCode,
    NotAPayment,
}

impl Invalid {
    /// The reason's name, for a log line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Malformed => "malformed",
            Self::UnsupportedAlg => "unsupported_alg",
            Self::WrongType => "wrong_typ",
            Self::BadSignature => "bad_signature",
            Self::VctNotAccepted => "vct_not_accepted",
            Self::Expired => "expired",
            Self::NotYetValid => "not_yet_valid",
            Self::IssuedInTheFuture => "issued_in_the_future",
            Self::UnsupportedDigestAlg => "unsupported_sd_alg",
            Self::BadDisclosure => "bad_disclosure",
            Self::DigestTwice => "digest_twice",
            Self::UnreferencedDisclosure => "unreferenced_disclosure",
            Self::ProtectedClaimDisclosed => "protected_claim_disclosed",
            Self::NoKeyBinding => "no_key_binding",
            Self::NoHolderKey => "no_holder_key",
            Self::WrongAudience => "wrong_aud",
            Self::WrongNonce => "wrong_nonce",
            Self::StaleKeyBinding => "stale_key_binding",
            Self::WrongSdHash => "wrong_sd_hash",
            Self::WrongDoctype => "wrong_doctype",
            Self::ResponseStatus => "response_status",
            Self::DigestMismatch => "digest_mismatch",
            Self::NoDeviceSignature => "no_device_signature",
            Self::BadDeviceSignature => "bad_device_signature",
            Self::WrongTransactionData => "wrong_transaction_data",
            Self::WrongResponseMode => "wrong_response_mode",
            Self::WeakAuthentication => "weak_authentication",
            Self::NoAuthenticationCode => "no_authentication_code",
            Self::ReusedAuthenticationCode => "reused_authentication_code",
            Self::NotAPayment => "not_a_payment",
        }
    }
}
