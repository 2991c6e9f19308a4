//! The one error type of the gateway. Every variant is one of the API reference's
//! problem codes (docs/api.md#errors); `http::problem` gives it its HTTP
//! status and maps it to problem+json once: nothing here knows HTTP.
//!
//! Messages are safe to send to clients: they never contain a secret, code,
//! PIN, token or key. An internal error carries what failed, its source and
//! where it was raised ([`Bug`]); the answer logs them once, the client
//! sees a generic sentence.
use std::fmt;
use std::panic::Location;

use crate::time::Timestamp;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// 400: not JSON, a required field missing, a field of the wrong type.
    #[error("{0}")]
    BadRequest(String),
    /// 422: a value that is present and typed right but not allowed.
    #[error("{0}")]
    Unprocessable(String),
    /// 422: a delivery the rules refuse for where the message would go
    /// (a code into a chat that does not vouch for its sender); a bot
    /// platform says `not_allowed` for it.
    #[error("{0}")]
    DeliveryRefused(&'static str),
    #[error("missing or unknown API key")]
    Unauthorized,
    /// 401: an `Authorization` header whose scheme is not `Bearer`
    /// (docs/api.md#callers-and-roles); the header's value is not repeated.
    #[error(
        "the Authorization header must be \"Bearer <api key>\": its \"Bearer \" prefix is missing"
    )]
    NotBearer,
    /// 401 as [`Error::Unauthorized`]: a bearer token on the MCP server
    /// that looked like an OAuth access token and was refused
    /// (docs/agents.md#oauth-access-tokens); `scope` is the team's scope
    /// when that was all it lacked (`insufficient_scope`, RFC 6750).
    #[error("the bearer token is neither a known API key nor an access token this gateway takes")]
    BearerRefused { scope: Option<String> },
    /// Login token or assertion not acceptable. The reason is generic on purpose.
    #[error("{0}")]
    InvalidToken(&'static str),
    #[error("{0}")]
    InvalidSignature(&'static str),
    #[error("wrong code")]
    InvalidCode { attempts_remaining: u32 },
    #[error("{0}")]
    Forbidden(&'static str),
    /// 403: the caller's role may not call this endpoint; says the role
    /// (`caller` is "API key" or "console session") and what is needed.
    #[error("this {caller}'s role is {role}, which may not do this: it needs {needs}")]
    RoleRefused {
        caller: &'static str,
        role: &'static str,
        needs: &'static str,
    },
    /// 403: the team requires a person (`Chatgate-Actor`) for this action.
    #[error("this team requires a person (Chatgate-Actor) for this action")]
    PersonRequired,
    #[error("the proven customer is not the one this interaction expects")]
    CustomerMismatch,
    #[error("the subject is banned")]
    Banned,
    /// 403: a number check refused the phone number a code would go to
    /// (docs/number-checks.md); the reason (`sim_swap`, `call_forwarding`,
    /// `check_failed`) is in the body.
    #[error("a number check refused the phone number the code would go to")]
    NumberRefused(&'static str),
    #[error("{0}")]
    NotFound(&'static str),
    #[error("this login token or assertion was already used")]
    TokenUsed,
    #[error("this challenge already succeeded")]
    ChallengeUsed,
    #[error("this interaction has no session PIN")]
    NoSessionPin,
    /// 409: a wallet registration on an interaction not authenticated
    /// with a `customer_ref`, by a method other than `wallet`,
    /// `recognized` and `pre_chat`, recently enough
    /// (docs/wallet.md#registering-the-wallet-for-payments).
    #[error("{0}")]
    NotAuthenticated(&'static str),
    /// 409: a payment in the wallet for a customer with no registered
    /// attestation (docs/wallet.md#registering-the-wallet-for-payments).
    #[error("{0}")]
    NotRegistered(&'static str),
    /// 409: a ladder has no step left to move to, or the challenge has no ladder.
    #[error("{0}")]
    NoNextStep(&'static str),
    /// 409: a code typed on the gateway's page, never through the bot
    /// (docs/api.md#codes-typed-on-the-gateways-page).
    #[error("this challenge's code is typed on the gateway's page, not verified by the bot")]
    EntryPage,
    #[error("the login token or assertion has expired")]
    TokenExpired,
    #[error("the challenge has expired or was replaced by a newer one")]
    ChallengeExpired,
    #[error("the challenge has no attempts left; start a new one")]
    ChallengeExhausted,
    /// 408: the client did not send its body within `server.body_read_timeout`.
    #[error("the request body did not arrive in time")]
    RequestTimeout,
    #[error("request body too large (64 KiB at most; 1 MiB for an operator's team or channel)")]
    PayloadTooLarge,
    #[error("request body must be application/json")]
    UnsupportedMediaType,
    #[error("the subject is locked out")]
    Locked { until: Timestamp, retry_after: u64 },
    #[error("too many challenges sent; try again later")]
    RateLimited { retry_after: u64 },
    /// A provider refused or failed a message that had to be sent. The string
    /// is a short, secret-free description (status code, provider error name).
    #[error("the channel provider failed: {0}")]
    Channel(String),
    #[error("the store cannot be reached")]
    StoreUnavailable,
    /// 409: an operator's write to a team or channel kept in a file
    /// (docs/operator-api.md#two-sources-one-namespace).
    #[error("{0}")]
    ManagedByFile(&'static str),
    /// 409: an operator's key that the team, another team or an operator
    /// has already (docs/operator-api.md#keys).
    #[error("{0}")]
    KeyExists(&'static str),
    /// 409: an operator's removal of a key the team still needs: its
    /// primary security key, or its last.
    #[error("{0}")]
    KeyInUse(&'static str),
    /// 428: an operator's replace or delete without `If-Match`.
    #[error("this change needs If-Match with the current ETag")]
    PreconditionRequired,
    /// 412: `If-Match` names another version, or `If-None-Match: *` and it
    /// exists.
    #[error("the precondition does not hold: the ETag is not the current one")]
    PreconditionFailed,
    /// 422: an operator's team or channel breaks a configuration rule;
    /// each problem named by its pointer into the body.
    #[error("the configuration breaks a rule: see errors")]
    InvalidConfig(Vec<Pointed>),
    /// 409: an operator's change of a channel that API teams list (by
    /// id) and would be left without: its delete, or a replace that one
    /// of them cannot be built with (docs/operator-api.md#endpoints).
    #[error("the channel is used by teams written through this API: see teams")]
    ChannelInUse(Vec<String>),
    /// A bug, never an input problem. Logged with its cause and place when
    /// answered; the client sees only a generic sentence.
    #[error("internal error")]
    Internal(Box<Bug>),
}

/// One problem of an operator's body: where, as an RFC 6901 JSON pointer
/// into it (`""` for the body as a whole), and what, never the value.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Pointed {
    pub pointer: String,
    pub detail: String,
}

/// What went wrong inside the gateway: never sent to a client.
#[derive(Debug)]
pub struct Bug {
    /// What failed, in a few words ("an event could not be encoded").
    pub what: &'static str,
    /// The error that caused it, when there is one (never a secret: only
    /// encoders', decoders' and the store's own errors are kept).
    pub source: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// Where it was raised.
    pub at: &'static Location<'static>,
}

impl fmt::Display for Bug {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (at {})", self.what, self.at)?;
        if let Some(source) = &self.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl Error {
    /// The API's `code` for this error.
    pub fn code(&self) -> &'static str {
        match self {
            Error::BadRequest(_) | Error::Unprocessable(_) | Error::DeliveryRefused(_) => {
                "invalid_request"
            }
            Error::Unauthorized | Error::NotBearer | Error::BearerRefused { .. } => "unauthorized",
            Error::InvalidToken(_) => "invalid_token",
            Error::InvalidSignature(_) => "invalid_signature",
            Error::InvalidCode { .. } => "invalid_code",
            Error::Forbidden(_) | Error::RoleRefused { .. } => "forbidden",
            Error::PersonRequired => "person_required",
            Error::CustomerMismatch => "customer_mismatch",
            Error::Banned => "banned",
            Error::NumberRefused(_) => "number_refused",
            Error::NotFound(_) => "not_found",
            Error::TokenUsed => "token_used",
            Error::ChallengeUsed => "challenge_used",
            Error::NoSessionPin => "no_session_pin",
            Error::NotAuthenticated(_) => "not_authenticated",
            Error::NotRegistered(_) => "not_registered",
            Error::NoNextStep(_) => "no_next_step",
            Error::EntryPage => "entry_page",
            Error::TokenExpired => "token_expired",
            Error::ChallengeExpired => "challenge_expired",
            Error::ChallengeExhausted => "challenge_exhausted",
            Error::RequestTimeout => "request_timeout",
            Error::PayloadTooLarge => "payload_too_large",
            Error::UnsupportedMediaType => "unsupported_media_type",
            Error::Locked { .. } => "locked",
            Error::RateLimited { .. } => "rate_limited",
            Error::Channel(_) => "channel_error",
            Error::StoreUnavailable => "store_unavailable",
            Error::ManagedByFile(_) => "managed_by_file",
            Error::KeyExists(_) => "key_exists",
            Error::KeyInUse(_) => "key_in_use",
            Error::PreconditionRequired => "precondition_required",
            Error::PreconditionFailed => "precondition_failed",
            Error::InvalidConfig(_) => "invalid_config",
            Error::ChannelInUse(_) => "channel_in_use",
            Error::Internal(_) => "internal_error",
        }
    }

    /// An internal error: `what` failed here, with no further cause.
    #[track_caller]
    pub fn internal(what: &'static str) -> Self {
        Error::Internal(Box::new(Bug {
            what,
            source: None,
            at: Location::caller(),
        }))
    }

    /// An internal error: `what` failed here, because of `source`.
    #[track_caller]
    pub fn internal_from(
        what: &'static str,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> Self {
        Error::Internal(Box::new(Bug {
            what,
            source: Some(Box::new(source)),
            at: Location::caller(),
        }))
    }

    pub fn invalid(field: &str, why: &str) -> Self {
        Error::Unprocessable(format!("{field}: {why}"))
    }

    /// 422 naming `name`, a member or parameter the request may not have
    /// (docs/api.md#errors): shown without control characters, at most 64
    /// characters of it.
    pub fn undefined(name: &str) -> Self {
        let shown: String = name.chars().filter(|c| !c.is_control()).take(64).collect();
        Error::invalid(&shown, "is not defined by this operation")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_internal_error_keeps_what_failed_its_cause_and_where() {
        let cause = std::io::Error::other("disk on fire");
        let line = line!() + 1;
        let e = Error::internal_from("a record could not be encoded", cause);
        let Error::Internal(bug) = &e else {
            panic!("{e:?}")
        };
        assert_eq!(bug.what, "a record could not be encoded");
        assert_eq!(bug.at.file(), file!());
        assert_eq!(bug.at.line(), line);
        let shown = bug.to_string();
        assert!(shown.contains("disk on fire"), "{shown}");
        assert!(shown.contains(&format!("{}:{line}", file!())), "{shown}");
        // What a client sees (the problem's `detail`) says none of it.
        assert_eq!(e.to_string(), "internal error");
        assert_eq!(e.code(), "internal_error");
    }
}
