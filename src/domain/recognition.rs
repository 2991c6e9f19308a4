//! Recognized conversations (docs/api.md#recognized-conversations): a
//! conversation on a channel whose provider vouches for who writes in it
//! (an SMS number, a WhatsApp account; a Slack or Telegram conversation
//! only where the channel's file says each is a direct message) remembers
//! the customer who last authenticated in it, for `recognize_for`, and
//! shows them to its interactions that name no other customer. Being
//! recognized is not being authenticated: it only satisfies an assurance
//! policy that lists `recognized` among its methods.
use std::time::Duration;

use super::input::same_identifier;
use super::interaction::{InteractionRecord, Method};
use super::subject::Standing;
use crate::time::Timestamp;

/// What a conversation remembers of its last authentication that named a
/// customer. Its stored form is `gateway::records`'.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Recognition {
    pub customer_id: String,
    pub method: Method,
    pub authenticated_at: Timestamp,
    /// Forgotten then: `authenticated_at + recognize_for`.
    pub until: Timestamp,
}

impl Recognition {
    /// What `rec` remembers when its authentication is new compared with
    /// `read` (the record before this change): the customer the
    /// authentication named (the login's customer id, the assertion's
    /// `sub`), else the interaction's `customer_ref` (a code or PIN). `None`
    /// when nothing new was authenticated or no customer is named.
    pub fn of_new_authentication(
        read: &InteractionRecord,
        rec: &InteractionRecord,
        recognize_for: Duration,
    ) -> Option<Self> {
        let auth = rec.auth.as_ref()?;
        if read.auth.as_ref() == Some(auth) {
            return None;
        }
        let customer_id = auth
            .customer
            .get("id")
            .or(rec.customer_ref.as_ref())?
            .clone();
        Some(Recognition {
            customer_id,
            method: auth.method,
            authenticated_at: auth.authenticated_at,
            until: auth.authenticated_at.plus(recognize_for),
        })
    }

    /// Shown at `now` for an interaction with `customer_ref` whose subject
    /// stands as `standing`, the remembered customer's as `remembered`
    /// (Clear when that is the interaction's own subject): not after
    /// `until`, never while either subject is locked or banned — also when
    /// the interaction names no customer — and only when the interaction
    /// names no customer or the one remembered.
    pub fn shown(
        &self,
        now: Timestamp,
        standing: &Standing,
        remembered: &Standing,
        customer_ref: Option<&str>,
    ) -> bool {
        now < self.until
            && matches!(standing, Standing::Clear)
            && matches!(remembered, Standing::Clear)
            && self.names(customer_ref)
    }

    /// An interaction's `customer_ref` names the remembered customer, or no
    /// one. Both are identifiers, folded where they were parsed
    /// (`input::identifier`); folding them again changes nothing, and
    /// keeps the comparison right for a value stored before folding.
    fn names(&self, customer_ref: Option<&str>) -> bool {
        customer_ref.is_none_or(|r| same_identifier(r, &self.customer_id))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use uuid::Uuid;

    fn t(s: i64) -> Timestamp {
        Timestamp::from_unix_seconds(1_800_000_000 + s)
    }

    #[test]
    fn a_new_authentication_names_its_customer_or_the_customer_ref() {
        let s = crate::domain::settings::Settings::default();
        let day = Duration::from_secs(86_400);
        let read = InteractionRecord::new(Uuid::now_v7(), "acme", "sms", "+1555", t(0));
        let mut rec = read.clone();
        assert_eq!(Recognition::of_new_authentication(&read, &rec, day), None);
        // A code without customer_ref proves no one in particular.
        rec.authenticate(Method::Otp, Default::default(), t(5), &s);
        assert_eq!(Recognition::of_new_authentication(&read, &rec, day), None);
        rec.customer_ref = Some("cust-7".into());
        let r = Recognition::of_new_authentication(&read, &rec, day).expect("named");
        assert_eq!(r.customer_id, "cust-7");
        assert_eq!(
            (r.method, r.authenticated_at, r.until),
            (Method::Otp, t(5), t(5 + 86_400))
        );
        // The login's customer wins over the customer_ref.
        let customer = [("id".to_string(), "cust-8".to_string())].into();
        rec.authenticate(Method::LoginLink, customer, t(9), &s);
        let r = Recognition::of_new_authentication(&read, &rec, day).expect("named");
        assert_eq!(r.customer_id, "cust-8");
        // Unchanged: nothing new to remember.
        assert_eq!(Recognition::of_new_authentication(&rec, &rec, day), None);
    }

    /// `customer` remembered from an OTP at 0 until 100.
    fn remembered(customer: &str) -> Recognition {
        Recognition {
            customer_id: customer.into(),
            method: Method::Otp,
            authenticated_at: t(0),
            until: t(100),
        }
    }

    #[test]
    fn shown_until_its_end_and_never_while_locked_or_banned() {
        let r = remembered("c");
        let clear = Standing::Clear;
        assert!(r.shown(t(99), &clear, &clear, None));
        assert!(!r.shown(t(100), &clear, &clear, None));
        assert!(!r.shown(t(1), &Standing::Locked { until: t(50) }, &clear, None));
        assert!(!r.shown(t(1), &Standing::Banned { until: None }, &clear, None));
    }

    #[test]
    fn never_while_the_remembered_customer_is_locked_or_banned() {
        let r = remembered("cust-42");
        let clear = Standing::Clear;
        let locked = Standing::Locked { until: t(50) };
        let banned = Standing::Banned { until: None };
        // The interaction names no one: its own subject is clear, the
        // customer's is not.
        assert!(!r.shown(t(1), &clear, &locked, None));
        assert!(!r.shown(t(1), &clear, &banned, None));
        assert!(!r.shown(t(1), &clear, &locked, Some("cust-42")));
        assert!(r.shown(t(51), &clear, &clear, None), "the lock ended");
    }

    #[test]
    fn shown_only_to_an_interaction_naming_no_one_or_the_remembered_customer() {
        let r = remembered("cust-42");
        let clear = Standing::Clear;
        assert!(r.shown(t(1), &clear, &clear, None));
        assert!(r.shown(t(1), &clear, &clear, Some("cust-42")));
        assert!(r.shown(t(1), &clear, &clear, Some("CUST-42")), "folded");
        assert!(!r.shown(t(1), &clear, &clear, Some("cust-43")));
        assert!(!r.shown(t(1), &clear, &clear, Some("cust-4")));
    }
}
