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

/// The authentication method a setting names; `Err` for `recognized`,
/// which is no authentication (see `domain::recognition`).
impl TryFrom<crate::domain::settings::AuthMethod> for Method {
    type Error = ();
    fn try_from(m: crate::domain::settings::AuthMethod) -> Result<Self, ()> {
        use crate::domain::settings::AuthMethod as A;
        Ok(match m {
            A::LoginLink => Method::LoginLink,
            A::Oidc => Method::Oidc,
            A::PreChat => Method::PreChat,
            A::Otp => Method::Otp,
            A::Pin => Method::Pin,
            A::App => Method::App,
            A::Network => Method::Network,
            A::Wallet => Method::Wallet,
            A::Recognized => return Err(()),
        })
    }
}

/// The setting that names `m`: one arm a method, so a method added here
/// does not build until settings can name it (an assurance rule could
/// not require it otherwise).
impl From<Method> for crate::domain::settings::AuthMethod {
    fn from(m: Method) -> Self {
        use crate::domain::settings::AuthMethod as A;
        match m {
            Method::LoginLink => A::LoginLink,
            Method::Oidc => A::Oidc,
            Method::PreChat => A::PreChat,
            Method::Otp => A::Otp,
            Method::Pin => A::Pin,
            Method::App => A::App,
            Method::Network => A::Network,
            Method::Wallet => A::Wallet,
        }
    }
}

impl Method {
    /// The method named `s` (`login_link`, `oidc`, `pre_chat`, `otp`, `pin`, `app`, `network`, `wallet`).
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|m| m.as_str() == s)
    }

    pub fn as_str(self) -> &'static str {
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
}

#[cfg(test)]
mod tests {
    use super::Method;
    use crate::domain::settings::AuthMethod;

    /// Every method is one a setting can name, and comes back as itself.
    #[test]
    fn every_method_is_named_by_a_setting_and_back() {
        for m in Method::ALL {
            assert_eq!(
                Method::try_from(AuthMethod::from(m)),
                Ok(m),
                "{}",
                m.as_str()
            );
        }
    }
}
