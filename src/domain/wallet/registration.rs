//! A customer's wallet registered for payments
//! (docs/wallet.md#registering-the-wallet-for-payments), on plain values:
//! who may register ([`may_register`]: an interaction authenticated with a
//! `customer_ref`, recently, by a method other than a wallet's or a
//! pre-chat assertion), who may remove one ([`may_unregister`]: an admin,
//! or an agent naming a person), what is kept per customer ([`Registrations`]: the
//! attestation's issuer and the RFC 7638 thumbprint of its holder key, at
//! most [`MAX_REGISTERED`], a newer one replacing the oldest), and the
//! thumbprint of a verified presentation's `cnf.jwk`
//! ([`holder_thumbprint`]). A payment of a credential whose `registration`
//! is `required` is approved only by a key registered to the customer by
//! the same issuer ([`Registrations::find`]).
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest as _, Sha256};

use super::jose::{to_b64url, Object};
use crate::domain::interaction::InteractionRecord;
use crate::domain::settings::Settings;
use crate::error::Error;
use crate::time::Timestamp;

/// The `challenge.failed` reason of a payment presented with an
/// attestation not registered to the customer (its result is
/// `invalid_presentation`).
pub const NOT_REGISTERED: &str = "not_registered";

/// How many attestations a customer may have registered.
pub const MAX_REGISTERED: usize = 5;

/// How recent the authentication a registration rests on must be.
pub const RECENT: Duration = Duration::from_secs(10 * 60);

/// How long a customer's registrations are kept after the last time they
/// changed or approved a payment: the store's time to live of the record.
pub const KEPT: Duration = Duration::from_secs(400 * 24 * 60 * 60);

/// One registered attestation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Registered {
    /// The issuer certificate's subject, RFC 4514.
    pub issuer: String,
    /// The RFC 7638 thumbprint (SHA-256, base64url) of its `cnf.jwk`.
    pub thumbprint: String,
    pub registered_at: Timestamp,
    /// When it last approved a payment; `None` until it has.
    pub last_used_at: Option<Timestamp>,
}

/// A customer's registered attestations, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Registrations {
    pub wallets: Vec<Registered>,
}

impl Registrations {
    /// Registers the key `thumbprint` of `issuer` at `now`: one already
    /// registered is registered again (newest, its use kept); beyond
    /// [`MAX_REGISTERED`] the oldest goes, and is answered.
    pub fn register(
        &mut self,
        issuer: &str,
        thumbprint: &str,
        now: Timestamp,
    ) -> Option<Registered> {
        let same = |r: &Registered| r.issuer == issuer && r.thumbprint == thumbprint;
        let last_used_at = self
            .wallets
            .iter()
            .find(|r| same(r))
            .and_then(|r| r.last_used_at);
        self.wallets.retain(|r| !same(r));
        self.wallets.push(Registered {
            issuer: issuer.to_string(),
            thumbprint: thumbprint.to_string(),
            registered_at: now,
            last_used_at,
        });
        (self.wallets.len() > MAX_REGISTERED).then(|| self.wallets.remove(0))
    }

    /// The attestation of `issuer` whose key is `thumbprint`, if registered.
    pub fn find(&self, issuer: &str, thumbprint: &str) -> Option<&Registered> {
        self.wallets
            .iter()
            .find(|r| r.issuer == issuer && r.thumbprint == thumbprint)
    }

    /// Records that the attestation of `issuer` whose key is `thumbprint`
    /// approved a payment at `now`: `false`, changing nothing, when it is
    /// not registered.
    pub fn used(&mut self, issuer: &str, thumbprint: &str, now: Timestamp) -> bool {
        let found = self
            .wallets
            .iter_mut()
            .find(|r| r.issuer == issuer && r.thumbprint == thumbprint);
        match found {
            Some(r) => {
                r.last_used_at = Some(now);
                true
            }
            None => false,
        }
    }

    /// Removes every registration of the key `thumbprint`: those removed
    /// (none when it was not registered).
    pub fn remove(&mut self, thumbprint: &str) -> Vec<Registered> {
        let (gone, kept) = std::mem::take(&mut self.wallets)
            .into_iter()
            .partition(|r| r.thumbprint == thumbprint);
        self.wallets = kept;
        gone
    }
}

/// The `customer_ref` a registration on `rec` at `now` is for: the
/// interaction must be authenticated, with a `customer_ref`, by a method
/// other than `wallet` (a wallet cannot vouch for itself) and `pre_chat`
/// (an assertion the website made, not the customer here now), at most
/// [`RECENT`] ago; else 409 `not_authenticated`. A recognized
/// conversation is not authenticated.
pub fn may_register<'r>(
    rec: &'r InteractionRecord,
    s: &Settings,
    now: Timestamp,
) -> Result<&'r str, Error> {
    let refused = Error::NotAuthenticated(
        "registering a wallet needs the interaction authenticated with a customer_ref, \
         by a method other than wallet or pre_chat, within the last 10 minutes",
    );
    let Some(customer) = rec.customer_ref.as_deref() else {
        return Err(refused);
    };
    let Some(auth) = rec.auth.as_ref().filter(|_| rec.is_authenticated(now, s)) else {
        return Err(refused);
    };
    if !auth.method.vouches_for_a_wallet() || now.since(auth.authenticated_at) > RECENT {
        return Err(refused);
    }
    Ok(customer)
}

/// Whether a caller may remove one of a customer's registered wallets
/// (docs/api.md#wallets-registered-for-payments): an admin (`admin`), or
/// an agent who names the person behind the request (`person_named`: a
/// `Chatgate-Actor`, or a console session), whatever the team's
/// `require_person` says; an agent's key alone is 403 `person_required`.
/// A removal takes away the customer's means of approving payments: it
/// is always someone's.
pub fn may_unregister(admin: bool, person_named: bool) -> Result<(), Error> {
    if admin || person_named {
        return Ok(());
    }
    Err(Error::PersonRequired)
}

/// The RFC 7638 thumbprint (SHA-256, base64url without padding) of the
/// holder key of a verified SD-JWT VC's `claims` (its `cnf.jwk`): the
/// required members of its key type, in lexicographic order, without
/// white space. `None` without one of a type a key binding may use
/// (`EC`, `OKP`).
pub fn holder_thumbprint(claims: &Object) -> Option<String> {
    let jwk = claims.get("cnf")?.get("jwk")?.as_object()?;
    let member = |k: &str| jwk.get(k).and_then(Value::as_str);
    let text = |v: &str| Value::from(v).to_string();
    let canonical = match member("kty")? {
        "EC" => format!(
            "{{\"crv\":{},\"kty\":\"EC\",\"x\":{},\"y\":{}}}",
            text(member("crv")?),
            text(member("x")?),
            text(member("y")?)
        ),
        "OKP" => format!(
            "{{\"crv\":{},\"kty\":\"OKP\",\"x\":{}}}",
            text(member("crv")?),
            text(member("x")?)
        ),
        _ => return None,
    };
    Some(to_b64url(&Sha256::digest(canonical.as_bytes())))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(s)
    }

    #[test]
    fn a_wallet_is_removed_by_an_admin_or_an_agent_naming_a_person() {
        assert!(may_unregister(true, false).is_ok(), "an admin");
        assert!(
            may_unregister(true, true).is_ok(),
            "an admin naming a person"
        );
        assert!(
            may_unregister(false, true).is_ok(),
            "an agent naming a person"
        );
        assert!(matches!(
            may_unregister(false, false),
            Err(Error::PersonRequired)
        ));
    }

    #[test]
    fn a_sixth_registration_replaces_the_oldest() {
        let mut r = Registrations::default();
        for i in 0..5 {
            assert_eq!(r.register("CN=Bank", &format!("k{i}"), at(i)), None);
        }
        let gone = r.register("CN=Bank", "k5", at(5)).expect("the oldest went");
        assert_eq!(gone.thumbprint, "k0");
        assert_eq!(r.wallets.len(), MAX_REGISTERED);
        assert!(r.find("CN=Bank", "k0").is_none());
        assert!(r.find("CN=Bank", "k5").is_some());
    }

    #[test]
    fn a_key_registered_again_is_newest_and_keeps_its_use() {
        let mut r = Registrations::default();
        r.register("CN=Bank", "a", at(1));
        r.register("CN=Bank", "b", at(2));
        assert!(r.used("CN=Bank", "a", at(3)));
        assert_eq!(r.register("CN=Bank", "a", at(4)), None);
        assert_eq!(r.wallets.len(), 2);
        let last = r.wallets.last().unwrap();
        assert_eq!((last.thumbprint.as_str(), last.registered_at), ("a", at(4)));
        assert_eq!(last.last_used_at, Some(at(3)));
    }

    #[test]
    fn a_key_is_found_only_with_its_issuer() {
        let mut r = Registrations::default();
        r.register("CN=Bank", "a", at(1));
        assert!(r.find("CN=Other", "a").is_none());
        assert!(!r.used("CN=Other", "a", at(2)));
        assert!(r.find("CN=Bank", "b").is_none());
        assert_eq!(r.remove("b"), Vec::new());
        assert_eq!(r.remove("a").len(), 1);
        assert!(r.wallets.is_empty());
    }

    /// RFC 7638, section 3.1's example key and its thumbprint.
    #[test]
    fn the_thumbprint_is_rfc_7638_s() {
        let n = "0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw";
        let claims: Object = serde_json::from_value(serde_json::json!({
            "cnf": {"jwk": {"kty": "RSA", "n": n, "e": "AQAB"}}
        }))
        .unwrap();
        // An RSA key binds no SD-JWT VC here.
        assert_eq!(holder_thumbprint(&claims), None);
        // RFC 8037, appendix A.3: an Ed25519 key's thumbprint.
        let claims: Object = serde_json::from_value(serde_json::json!({"cnf": {"jwk": {
            "kty": "OKP", "crv": "Ed25519", "kid": "ignored",
            "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}}}))
        .unwrap();
        assert_eq!(
            holder_thumbprint(&claims).as_deref(),
            Some("kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k")
        );
    }
}
