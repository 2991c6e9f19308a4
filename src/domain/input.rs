//! Parsing of caller-supplied identifiers and contacts ("parse, don't
//! validate"): each constructor refuses a bad value with a 422 naming the
//! field, so later code only ever holds valid ones.
use crate::error::Error;

/// 1..=`max` characters, none of them control characters.
fn printable(field: &str, s: &str, max: usize) -> Result<String, Error> {
    let n = s.chars().count();
    if n == 0 || n > max {
        return Err(Error::invalid(
            field,
            &format!("must be 1 to {max} characters"),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(Error::invalid(field, "must be printable characters"));
    }
    Ok(s.to_string())
}

/// The chat's own id of the conversation (1..256 printable characters).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConversationId(String);

impl ConversationId {
    pub fn parse(s: &str) -> Result<Self, Error> {
        printable("conversation_id", s, 256).map(ConversationId)
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The bot's reference to the customer (phone, CRM id, e-mail).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CustomerRef(String);

impl CustomerRef {
    pub fn parse(s: &str) -> Result<Self, Error> {
        let v = printable("customer_ref", s, 256)?;
        if v.starts_with("interaction:") {
            return Err(Error::invalid(
                "customer_ref",
                "must not start with \"interaction:\"",
            ));
        }
        Ok(CustomerRef(v))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn into_string(self) -> String {
        self.0
    }
}

/// An E.164-style phone number: optional `+`, 6 to 15 digits.
pub fn phone(field: &str, s: &str) -> Result<String, Error> {
    let digits = s.strip_prefix('+').unwrap_or(s);
    if (6..=15).contains(&digits.len()) && digits.bytes().all(|b| b.is_ascii_digit()) {
        Ok(s.to_string())
    } else {
        Err(Error::invalid(
            field,
            "must be a phone number like +15551230000",
        ))
    }
}

/// A plausible e-mail address: one `@`, something on both sides, no spaces.
pub fn email(field: &str, s: &str) -> Result<String, Error> {
    let ok = s.len() <= 254
        && !s.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(s.split_once('@'), Some((l, d)) if !l.is_empty() && d.contains('.') && !d.contains('@'));
    if ok {
        Ok(s.to_string())
    } else {
        Err(Error::invalid(field, "must be an e-mail address"))
    }
}

/// A customer member given by a login page or assertion: up to 1024 printable characters.
pub fn customer_field(field: &str, s: &str) -> Result<String, Error> {
    printable(field, s, 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn conversation_ids() {
        assert!(ConversationId::parse("abc-123").is_ok());
        assert!(ConversationId::parse("").is_err());
        assert!(ConversationId::parse(&"x".repeat(256)).is_ok());
        assert!(ConversationId::parse(&"x".repeat(257)).is_err());
        assert!(ConversationId::parse("a\nb").is_err());
        assert!(ConversationId::parse("ünïcödé ok").is_ok());
    }

    #[test]
    fn contacts() {
        assert!(phone("p", "+15551230000").is_ok());
        assert!(phone("p", "555").is_err());
        assert!(phone("p", "+1555abc0000").is_err());
        assert!(email("e", "ada@example.com").is_ok());
        assert!(email("e", "ada@@example.com").is_err());
        assert!(email("e", "ada example.com").is_err());
        assert!(CustomerRef::parse("interaction:x").is_err());
    }
}
