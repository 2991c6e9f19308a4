//! How an interaction was authenticated ([`Method`]): what a login, a
//! pre-chat assertion or a challenge's proof authenticates as. Its own
//! file, below both the interaction and the challenge, which each name it
//! (`domain::challenge::Proof` says what a proof made on a page
//! authenticates as). Its `ALL`, every method, is made with it
//! (`every!`: metric series are registered for each).
use crate::domain::every::every;

every! {
    /// How an interaction was authenticated.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub enum Method {
        LoginLink,
        Oidc,
        PreChat,
        Otp,
        Pin,
        /// Approved in the customer's own app (docs/api.md#approval-in-the-customers-app).
        App,
        /// The mobile operator confirmed the phone holds the number on file
        /// (docs/network-authentication.md).
        Network,
        /// A credential from the customer's wallet matched what the bank
        /// expects (docs/wallet.md).
        Wallet,
    }
}

impl Method {
    /// The method named `s` (`login_link`, `oidc`, `pre_chat`, `otp`, `pin`, `app`, `network`, `wallet`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Method::LoginLink => "login_link",
            Method::Oidc => "oidc",
            Method::PreChat => "pre_chat",
            Method::Otp => "otp",
            Method::Pin => "pin",
            Method::App => "app",
            Method::Network => "network",
            Method::Wallet => "wallet",
        }
    }

    /// Whether an authentication by it vouches for registering the
    /// customer's wallet for payments
    /// (docs/wallet.md#registering-the-wallet-for-payments): every method
    /// but `wallet` (a wallet cannot vouch for itself) and `pre_chat` (an
    /// assertion the website made, not the customer here now). One
    /// `match`: a method added decides here.
    pub const fn vouches_for_a_wallet(self) -> bool {
        match self {
            Method::LoginLink
            | Method::Oidc
            | Method::Otp
            | Method::Pin
            | Method::App
            | Method::Network => true,
            Method::PreChat | Method::Wallet => false,
        }
    }
}
