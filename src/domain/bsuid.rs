//! WhatsApp's business-scoped user ids (docs/channels.md#business-scoped-user-ids):
//! the id Meta names a WhatsApp user by when their number is hidden,
//! `US.13491208655302741918`, or a parent id shared by linked business
//! portfolios, `US.ENT.11815799212886844830`. A conversation on a
//! WhatsApp channel is named by a number or by one of these; one named by
//! an id has no number, so nothing sent into it is a message to a phone.

/// The longest id after its country code (and `ENT.`), in letters and
/// digits.
pub const MAX_ID_CHARS: usize = 256;

/// Whether `s` is a business-scoped user id as Meta writes it: two capital
/// letters (the user's country), a dot, optionally `ENT.` (a parent id),
/// then 1..[`MAX_ID_CHARS`] ASCII letters and digits. Nothing is trimmed
/// or folded: an id is kept and sent exactly as given.
pub fn is_bsuid(s: &str) -> bool {
    let Some((country, rest)) = s.split_once('.') else {
        return false;
    };
    let id = rest.strip_prefix("ENT.").unwrap_or(rest);
    country.len() == 2
        && country.bytes().all(|b| b.is_ascii_uppercase())
        && (1..=MAX_ID_CHARS).contains(&id.len())
        && id.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// What names a WhatsApp conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConversationKind {
    /// The customer's phone number.
    Number,
    /// A business-scoped user id: no number.
    Bsuid,
}

impl ConversationKind {
    pub const ALL: [ConversationKind; 2] = [ConversationKind::Number, ConversationKind::Bsuid];

    pub fn as_str(self) -> &'static str {
        match self {
            ConversationKind::Number => "number",
            ConversationKind::Bsuid => "bsuid",
        }
    }
}

/// What names `conversation_id` on a channel that is (`whatsapp`) or is
/// not a WhatsApp chat: `None` on other channels.
pub fn conversation_kind(whatsapp: bool, conversation_id: &str) -> Option<ConversationKind> {
    whatsapp.then(|| {
        if is_bsuid(conversation_id) {
            ConversationKind::Bsuid
        } else {
            ConversationKind::Number
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_examples_are_ids() {
        assert!(is_bsuid("US.13491208655302741918"));
        assert!(is_bsuid("US.ENT.11815799212886844830"));
        assert!(is_bsuid("BR.a1B2c3"));
        assert!(is_bsuid(&format!("DE.{}", "9".repeat(256))));
        assert!(is_bsuid(&format!("DE.ENT.{}", "z".repeat(256))));
        // `ENT` alone is an id of three letters.
        assert!(is_bsuid("US.ENT"));
    }

    #[test]
    fn anything_else_is_not() {
        for s in [
            "",
            "US.",
            "US.ENT.",
            "us.13491208655302741918",
            "USA.1349",
            "U.1349",
            "US13491208655302741918",
            "US.1349.1",
            "US.1349 ",
            " US.1349",
            "US.13-49",
            "US.ent.1349",
            "US.ENT.ENT.1",
            "+15552223333",
            "15552223333",
            "ÜS.1349",
            "US.１３４９",
        ] {
            assert!(!is_bsuid(s), "{s:?}");
        }
        assert!(!is_bsuid(&format!("DE.{}", "9".repeat(257))));
    }

    #[test]
    fn the_kind_is_said_on_whatsapp_chats_only() {
        use ConversationKind::*;
        assert_eq!(conversation_kind(true, "US.1"), Some(Bsuid));
        assert_eq!(conversation_kind(true, "+15552223333"), Some(Number));
        assert_eq!(conversation_kind(false, "US.1"), None);
    }
}
