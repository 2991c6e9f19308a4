//! What a presentation comes to, whatever its format
//! (docs/wallet.md#results): [`sd_jwt::verify`](super::sd_jwt::verify)
//! and [`mdoc::verify`](super::mdoc::verify) both answer an [`Outcome`],
//! so the challenge takes one path for both.
use super::invalid::Invalid;
use super::jose::Object;
use super::status_list::StatusRef;

/// The outcome of a presentation.
#[derive(Debug, Clone)]
pub enum Outcome {
    Verified(Verified),
    /// The issuer chain reaches no trusted issuer, or is not valid now.
    UntrustedIssuer,
    /// Anything else fails; the reason is for logs and holds no value.
    InvalidPresentation(Invalid),
}

/// A verified credential.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The credential's claims: an SD-JWT VC's claims with the disclosed
    /// ones put back (without `_sd`, `_sd_alg`); an mdoc's disclosed items
    /// of the expected namespace, element identifier → value as JSON (a
    /// `full-date` or a `tdate` as `YYYY-MM-DD`).
    pub claims: Object,
    /// The issuer certificate's subject, RFC 4514.
    pub issuer: String,
    /// What names its type: an SD-JWT VC's `vct`, an mdoc's `docType`.
    pub credential_type: String,
    /// Where the credential's status is kept (an SD-JWT VC's issuer JWT's
    /// or an mdoc's MSO's `status.status_list`), if it names a Token
    /// Status List.
    pub status: Option<StatusRef>,
    /// An SD-JWT VC's Key Binding JWT's claims, checked as far as the
    /// format asks (a payment's are checked by `payment::check`); an
    /// mdoc's: none.
    pub key_binding: Object,
}

/// Why a presentation did not verify, inside a verifier.
pub(super) enum Refused {
    Untrusted,
    Invalid(Invalid),
}

impl From<Invalid> for Refused {
    fn from(i: Invalid) -> Self {
        Refused::Invalid(i)
    }
}

impl From<Result<Verified, Refused>> for Outcome {
    fn from(r: Result<Verified, Refused>) -> Self {
        match r {
            Ok(v) => Outcome::Verified(v),
            Err(Refused::Untrusted) => Outcome::UntrustedIssuer,
            Err(Refused::Invalid(i)) => Outcome::InvalidPresentation(i),
        }
    }
}
