//! Which members of a form hold a secret, and the place a channel's
//! secrets are bound to (docs/operator-api.md#secrets).

/// The members that hold a secret wherever they are (a webhook's or an
/// audit webhook's `secret`, a provider's `client_secret`, a channel's
/// `auth_token`, `token`, `app_secret`, `verify_token`, `password`, a
/// network-verification provider's `private_key`, a wallet's `signing_key`).
pub const SECRET_MEMBERS: [&str; 9] = [
    "secret",
    "client_secret",
    "auth_token",
    "token",
    "app_secret",
    "verify_token",
    "password",
    "private_key",
    "signing_key",
];

/// Whether a member named `name` holds a secret.
pub fn is_secret_member(name: &str) -> bool {
    SECRET_MEMBERS.contains(&name)
}

/// The place a channel's secrets are bound to, sealed and read back: no
/// team id has a `~`, so no channel and team share one.
pub fn channel_place(name: &str) -> String {
    format!("~channel:{name}")
}
