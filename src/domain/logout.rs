//! Why an interaction was logged out: the `cause` every
//! `interaction.logged_out` event carries (docs/events.md#the-events);
//! the identity provider's revocation receivers and why they refuse a
//! token (their metrics' labels); and which authentication a provider's
//! logout of one session ends.
use crate::domain::interaction::{InteractionRecord, Method};
use crate::domain::recognition::Recognition;
use crate::domain::settings::Settings;
use crate::time::Timestamp;

/// What ended the authentication. The one list of causes: an event's
/// `data.cause` is [`LogoutCause::as_str`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogoutCause {
    /// A Shared Signals event of the team's `[ssf]` transmitter.
    Ssf,
    /// An OpenID Connect back-channel logout of the team's provider.
    OidcLogout,
    /// The website's signed back-channel logout (`POST /v1/customers/logout`).
    Website,
    /// `POST /v1/interactions/{id}/logout`.
    Api,
    /// The person behind a WhatsApp conversation changed
    /// (docs/channels.md#identity-changes).
    IdentityChanged,
}

impl LogoutCause {
    /// Every cause, in the order the docs list them.
    pub const ALL: [LogoutCause; 5] = [
        LogoutCause::Ssf,
        LogoutCause::OidcLogout,
        LogoutCause::Website,
        LogoutCause::Api,
        LogoutCause::IdentityChanged,
    ];

    /// The name in `data.cause`.
    pub fn as_str(self) -> &'static str {
        match self {
            LogoutCause::Ssf => "ssf",
            LogoutCause::OidcLogout => "oidc_logout",
            LogoutCause::Website => "website",
            LogoutCause::Api => "api",
            LogoutCause::IdentityChanged => crate::domain::identity_change::REASON,
        }
    }
}

impl serde::Serialize for LogoutCause {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

/// The two receivers, as the metrics' `receiver` label names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Receiver {
    /// `POST /oidc/backchannel-logout/{team}`.
    OidcLogout,
    /// `POST /ssf/{team}/events`.
    Ssf,
}

impl Receiver {
    pub const ALL: [Receiver; 2] = [Receiver::OidcLogout, Receiver::Ssf];

    pub fn as_str(self) -> &'static str {
        match self {
            Receiver::OidcLogout => "oidc_logout",
            Receiver::Ssf => "ssf",
        }
    }

    /// The `cause` of the logouts it makes.
    pub fn cause(self) -> LogoutCause {
        match self {
            Receiver::OidcLogout => LogoutCause::OidcLogout,
            Receiver::Ssf => LogoutCause::Ssf,
        }
    }
}

/// Why a receiver refused a token (or, `Replay`, ignored it), as the
/// metrics' `reason` label names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefusalReason {
    /// No token, a token that cannot be read, a wrong media type.
    Malformed,
    /// An algorithm outside the three, no `kid`, a key not in the set, a
    /// signature that does not verify.
    Key,
    Issuer,
    Audience,
    /// Another claim wrong or missing (`iat`, `events`, `sub`/`sid`, `nonce`).
    Claims,
    /// A token id seen before.
    Replay,
    /// The key set or the store could not be reached.
    Unavailable,
}

impl RefusalReason {
    pub const ALL: [RefusalReason; 7] = [
        RefusalReason::Malformed,
        RefusalReason::Key,
        RefusalReason::Issuer,
        RefusalReason::Audience,
        RefusalReason::Claims,
        RefusalReason::Replay,
        RefusalReason::Unavailable,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            RefusalReason::Malformed => "malformed",
            RefusalReason::Key => "key",
            RefusalReason::Issuer => "issuer",
            RefusalReason::Audience => "audience",
            RefusalReason::Claims => "claims",
            RefusalReason::Replay => "replay",
            RefusalReason::Unavailable => "unavailable",
        }
    }
}

/// Whether `remembered` (a recognized conversation) remembers the hosted
/// login that proved the customer at `proven_at`: a logout of that login's
/// session forgets it, also once the chat's own authentication has ended.
pub fn remembers_login_at(remembered: &Recognition, proven_at: Timestamp) -> bool {
    remembered.method == Method::Oidc && remembered.authenticated_at == proven_at
}

/// Whether `rec`'s authentication (or its login waiting for the binding
/// code) is the one a hosted login proved at `proven_at`: what a provider's
/// logout of that login's session ends, and nothing proven since.
pub fn proven_by_login_at(
    rec: &InteractionRecord,
    proven_at: Timestamp,
    now: Timestamp,
    s: &Settings,
) -> bool {
    let authenticated = rec.is_authenticated(now, s)
        && rec
            .auth
            .as_ref()
            .is_some_and(|a| a.method == Method::Oidc && a.authenticated_at == proven_at);
    let binding = rec
        .live_binding(now)
        .is_some_and(|b| b.method == Method::Oidc && b.proven_at == Some(proven_at));
    authenticated || binding
}
