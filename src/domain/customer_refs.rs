//! How log lines name a customer (`server.log_customer_refs`). A subject
//! that is a `customer_ref` is often a phone number or an e-mail address:
//! with `digest` (the default) a line carries `ref:` and 16 hex digits of a
//! keyed hash of it (the pepper's), enough to follow one customer through
//! the logs and to find their lines given the value, but not to read it
//! back. `interaction:{id}` subjects name no customer and are kept.
use std::borrow::Cow;
use std::sync::Arc;

use super::interaction::OWN_SUBJECT_PREFIX;
use super::secrets::Pepper;

/// What a keyed hash of a logged customer ref is for.
const PURPOSE: &str = "log-customer-ref";

/// Hex digits of the digest in a log line (64 bits).
const SHOWN: usize = 16;

/// `server.log_customer_refs`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CustomerRefLogging {
    /// A keyed digest of the `customer_ref` (the pepper's), never the value.
    #[default]
    Digest,
    /// The value itself.
    Plain,
}

/// How a log line writes a subject.
#[derive(Clone, Default)]
pub enum SubjectNames {
    /// As it is.
    #[default]
    Plain,
    /// A customer ref as `ref:` and a keyed digest.
    Digest(Arc<Pepper>),
}

impl SubjectNames {
    pub fn new(mode: CustomerRefLogging, pepper: Pepper) -> Self {
        match mode {
            CustomerRefLogging::Plain => SubjectNames::Plain,
            CustomerRefLogging::Digest => SubjectNames::Digest(Arc::new(pepper)),
        }
    }

    /// `subject` as a log line shows it.
    pub fn show<'a>(&self, subject: &'a str) -> Cow<'a, str> {
        match self {
            SubjectNames::Digest(pepper) if !subject.starts_with(OWN_SUBJECT_PREFIX) => {
                let mut hash = pepper.keyed_hash(PURPOSE, subject.as_bytes());
                hash.truncate(SHOWN);
                Cow::Owned(format!("ref:{hash}"))
            }
            _ => Cow::Borrowed(subject),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_customer_ref_is_shown_as_a_keyed_digest_by_default() {
        let names = SubjectNames::new(CustomerRefLogging::Digest, Pepper::new("pepper-one-16byte"));
        let shown = names.show("+15551230000");
        // What the openssl one-liner of the operations guide computes.
        assert_eq!(shown, "ref:e126c067ec792458");
        assert_eq!(shown.len(), 4 + SHOWN);
        assert!(!shown.contains("5551230000"));
        assert_eq!(
            names.show("+15551230000"),
            shown,
            "stable: lines can be followed"
        );
        assert_ne!(names.show("+15551230001"), shown);
        let other = SubjectNames::new(CustomerRefLogging::Digest, Pepper::new("pepper-two-16byte"));
        assert_ne!(other.show("+15551230000"), shown, "keyed by the pepper");
        let own = "interaction:0193a1b2-0000-7000-8000-000000000001";
        assert_eq!(names.show(own), own);
        let plain = SubjectNames::new(CustomerRefLogging::Plain, Pepper::new("pepper-one-16byte"));
        assert_eq!(plain.show("+15551230000"), "+15551230000");
    }
}
