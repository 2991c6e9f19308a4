//! The stored forms of the audit trail (docs/audit.md#how-it-is-stored):
//! the head of a team's chain, versioned, and each entry as its own JSON
//! text, exactly as it is answered and hashed.
use serde::{Deserialize, Serialize};

use crate::domain::audit::{Entry, Head};
use crate::gateway::core::records::Record;

/// `{team}:ah`: the latest entry's `seq`, `hash` and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum StoredHead {
    #[serde(rename = "1")]
    V1 {
        seq: u64,
        hash: String,
        time: String,
    },
}

impl Record for StoredHead {}

impl From<&Entry> for StoredHead {
    fn from(e: &Entry) -> Self {
        StoredHead::V1 {
            seq: e.seq,
            hash: e.hash.clone(),
            time: e.time.clone(),
        }
    }
}

impl From<StoredHead> for Head {
    fn from(s: StoredHead) -> Self {
        match s {
            StoredHead::V1 { seq, hash, time } => Head {
                seq,
                hash,
                time: Some(time),
            },
        }
    }
}

/// `{team}:a:<seq>`: the entry's JSON, as written.
pub fn entry_text(entry: &Entry) -> serde_json::Result<String> {
    serde_json::to_string(entry)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What an earlier version wrote is read the same way.
    #[test]
    fn the_head_keeps_its_bytes() {
        let head = StoredHead::V1 {
            seq: 42,
            hash: "ab".repeat(32),
            time: "2026-11-21T10:00:00.000Z".into(),
        };
        let text = serde_json::to_string(&head).unwrap();
        let want = format!(
            r#"{{"v":"1","seq":42,"hash":"{}","time":"2026-11-21T10:00:00.000Z"}}"#,
            "ab".repeat(32)
        );
        assert_eq!(text, want);
        let back: StoredHead = serde_json::from_str(&want).unwrap();
        assert_eq!(Head::from(back).seq, 42);
    }
}
