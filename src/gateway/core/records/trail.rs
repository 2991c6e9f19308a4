//! The stored forms of the audit trail (docs/audit.md#how-it-is-stored):
//! the head of a team's chain, versioned, and each entry as its own JSON
//! text, exactly as it is answered and hashed; a sink's cursor
//! (docs/audit.md#wiring-a-siem) and the configuration last recorded for
//! a team (docs/audit.md#configuration-changes).
use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::Record;
use crate::domain::audit::{Entry, Found, Head};

/// `{team}:ah`: the latest entry's `seq`, `hash` and time, and the
/// latest `audit.trail_reset` entry of the chain (docs/audit.md#resets):
/// its `seq` (`rs`) and `id` (`ri`), absent before the first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum StoredHead {
    #[serde(rename = "1")]
    V1 {
        seq: u64,
        hash: String,
        time: String,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rs: Option<u64>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ri: Option<String>,
    },
}

impl Record for StoredHead {}

impl StoredHead {
    /// The head once `e` is its latest entry, the chain's latest reset
    /// being `reset` (`seq`, `id`).
    pub fn after(e: &Entry, reset: Option<(u64, String)>) -> Self {
        let (rs, ri) = reset.unzip();
        StoredHead::V1 {
            seq: e.seq,
            hash: e.hash.clone(),
            time: e.time.clone(),
            rs,
            ri,
        }
    }

    /// The head as the reset rules read it.
    pub fn found(&self) -> Found {
        let StoredHead::V1 { seq, rs, ri, .. } = self;
        Found {
            seq: *seq,
            reset: rs.zip(ri.clone()),
        }
    }
}

impl From<StoredHead> for Head {
    fn from(s: StoredHead) -> Self {
        match s {
            StoredHead::V1 {
                seq, hash, time, ..
            } => Head {
                seq,
                hash,
                time: Some(time),
            },
        }
    }
}

/// An entry whose JSON is longer than this many bytes is stored packed:
/// in practice a team's first `config.changed`, which names every key
/// (docs/decisions/0840-a-long-audit-entry-is-stored-packed.md).
const PACK_OVER: usize = 1024;

/// What the stored text of a packed entry starts with (that of an entry
/// stored as its JSON starts with `{`).
const PACKED: &str = "z1:";

/// `{team}:a:<seq>`: the entry's JSON, as written; one longer than
/// [`PACK_OVER`] bytes deflated (RFC 1951), in base64 without padding,
/// after [`PACKED`]. What is hashed and answered is the JSON
/// ([`entry_json`]).
pub fn entry_text(entry: &Entry) -> serde_json::Result<String> {
    let json = serde_json::to_string(entry)?;
    if json.len() <= PACK_OVER {
        return Ok(json);
    }
    Ok(format!("{PACKED}{}", packed::deflated(json.as_bytes())))
}

/// The JSON of an entry as [`entry_text`] stored it, byte for byte what
/// was hashed; why not, for a packed one that does not inflate to text.
pub fn entry_json(stored: String) -> Result<String, String> {
    let Some(text) = stored.strip_prefix(PACKED) else {
        return Ok(stored);
    };
    let json = packed::inflated(text)?;
    String::from_utf8(json).map_err(|_| "a packed audit entry inflates to no text".to_string())
}

/// A sink's cursor of a team (`{team}:asl`, `{team}:awh`, …): the last
/// `seq` confirmed sent by the sink, the instance sending the team's
/// entries until when, and the `id` of the
/// latest `audit.trail_reset` entry the cursor knew (`r`, absent before
/// the first).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum StoredCursor {
    #[serde(rename = "1")]
    V1 {
        seq: u64,
        holder: String,
        until: i64,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        r: Option<String>,
    },
}

impl Record for StoredCursor {}

/// `{team}:acfg`: the configuration last recorded for the team. Written
/// as `V2`, its keys packed ([`packed`]); a `V1` record, written before,
/// is read as it was
/// (docs/decisions/0800-a-recorded-configuration-keeps-its-keys-packed.md).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "v")]
pub enum StoredConfig {
    #[serde(rename = "1")]
    V1 {
        digest: String,
        /// Dotted key → SHA-256 of its value, hex: its first 16 digits
        /// (`config::RECORDED_DIGEST`; the whole 64 in records written
        /// before docs/decisions/0703-a-recorded-configuration-keeps-short-digests.md).
        keys: BTreeMap<String, String>,
        api_keys: Vec<String>,
        security_keys: Vec<String>,
    },
    #[serde(rename = "2")]
    V2 {
        digest: String,
        /// `V1`'s keys, packed.
        #[serde(with = "packed")]
        keys: BTreeMap<String, String>,
        api_keys: Vec<String>,
        security_keys: Vec<String>,
    },
}

impl Record for StoredConfig {}

/// A recorded configuration's digest, keys, API keys and security keys.
pub type ConfigParts = (String, BTreeMap<String, String>, Vec<String>, Vec<String>);

impl StoredConfig {
    /// The record written of `parts`.
    pub fn of_parts((digest, keys, api_keys, security_keys): ConfigParts) -> Self {
        StoredConfig::V2 {
            digest,
            keys,
            api_keys,
            security_keys,
        }
    }

    /// Its digest, keys, API keys and security keys.
    pub fn into_parts(self) -> ConfigParts {
        match self {
            StoredConfig::V1 {
                digest,
                keys,
                api_keys,
                security_keys,
            }
            | StoredConfig::V2 {
                digest,
                keys,
                api_keys,
                security_keys,
            } => (digest, keys, api_keys, security_keys),
        }
    }
}

/// A recorded configuration's keys as `V2` keeps them: their JSON (as
/// `V1` wrote it) deflated (RFC 1951), in base64 without padding. Most of
/// a team's keys are the `[defaults]` it inherits, whose names share long
/// prefixes: a quarter of the bytes.
mod packed {
    use std::collections::BTreeMap;

    use base64::engine::general_purpose::STANDARD_NO_PAD as B64;
    use base64::Engine as _;
    use serde::de::Error as _;
    use serde::ser::Error as _;
    use serde::{Deserialize, Deserializer, Serializer};

    /// The most a packed record inflates to: a thousand times a team's.
    const MOST: usize = 8 << 20;

    /// The deflate level: the middle one, a team's keys in tens of
    /// microseconds.
    const LEVEL: u8 = 6;

    pub fn serialize<S: Serializer>(
        keys: &BTreeMap<String, String>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        let json = serde_json::to_vec(keys).map_err(S::Error::custom)?;
        s.serialize_str(&deflated(&json))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<BTreeMap<String, String>, D::Error> {
        let text = String::deserialize(d)?;
        let json = inflated(&text).map_err(D::Error::custom)?;
        serde_json::from_slice(&json).map_err(D::Error::custom)
    }

    /// `bytes` deflated, in base64 without padding.
    pub fn deflated(bytes: &[u8]) -> String {
        B64.encode(miniz_oxide::deflate::compress_to_vec(bytes, LEVEL))
    }

    /// What [`deflated`] made `text` of; why not.
    pub fn inflated(text: &str) -> Result<Vec<u8>, String> {
        let deflated = B64.decode(text).map_err(|e| e.to_string())?;
        miniz_oxide::inflate::decompress_to_vec_with_limit(&deflated, MOST)
            .map_err(|e| format!("packed text does not inflate: {:?}", e.status))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `config.changed` naming `keys` dotted keys, sealed.
    fn changed(keys: usize) -> Entry {
        use crate::domain::audit::{seal, Acting, Action, Draft, Target};
        let names: Vec<String> = (0..keys)
            .map(|i| format!("settings.translations.es.templates.text_{i}"))
            .collect();
        let draft = Draft::success(
            Action::ConfigChanged,
            &Acting::system(None),
            Target::default(),
        )
        .with("changed", names);
        let now = crate::time::Timestamp::from_unix_seconds(1_764_000_000);
        seal(&Head::genesis(), "acme", draft, uuid::Uuid::nil(), now)
    }

    /// A long entry is stored packed and read back as its JSON, byte for
    /// byte; a short one is stored as its JSON; what an earlier version
    /// stored reads as it was.
    #[test]
    fn a_long_entry_is_stored_packed_and_read_back_as_its_json() {
        let long = changed(150);
        let json = serde_json::to_string(&long).unwrap();
        let stored = entry_text(&long).unwrap();
        assert!(stored.starts_with(PACKED), "{stored}");
        assert!(
            stored.len() * 3 <= json.len(),
            "{} of {}",
            stored.len(),
            json.len()
        );
        assert_eq!(entry_json(stored).unwrap(), json);
        let short = changed(1);
        let json = serde_json::to_string(&short).unwrap();
        assert_eq!(entry_text(&short).unwrap(), json);
        assert_eq!(entry_json(json.clone()).unwrap(), json);
        assert!(entry_json(format!("{PACKED}not deflated")).is_err());
    }

    /// What an earlier version wrote is read the same way.
    #[test]
    fn the_head_keeps_its_bytes() {
        let head = StoredHead::V1 {
            seq: 42,
            hash: "ab".repeat(32),
            time: "2026-11-21T10:00:00.000Z".into(),
            rs: None,
            ri: None,
        };
        let text = serde_json::to_string(&head).unwrap();
        let want = format!(
            r#"{{"v":"1","seq":42,"hash":"{}","time":"2026-11-21T10:00:00.000Z"}}"#,
            "ab".repeat(32)
        );
        assert_eq!(text, want);
        let back: StoredHead = serde_json::from_str(&want).unwrap();
        assert_eq!(Head::from(back).seq, 42);
        // With a reset in its chain.
        let head = StoredHead::V1 {
            seq: 42,
            hash: "ab".repeat(32),
            time: "2026-11-21T10:00:00.000Z".into(),
            rs: Some(40),
            ri: Some("0193".into()),
        };
        let text = serde_json::to_string(&head).unwrap();
        let want = format!(
            r#"{{"v":"1","seq":42,"hash":"{}","time":"2026-11-21T10:00:00.000Z","rs":40,"ri":"0193"}}"#,
            "ab".repeat(32)
        );
        assert_eq!(text, want);
        let back: StoredHead = serde_json::from_str(&want).unwrap();
        assert_eq!(back.found().reset, Some((40, "0193".to_string())));
    }

    #[test]
    fn the_cursor_keeps_its_bytes() {
        let c = StoredCursor::V1 {
            seq: 7,
            holder: "i-1".into(),
            until: 1_800_000_000_000,
            r: None,
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"v":"1","seq":7,"holder":"i-1","until":1800000000000}"#
        );
        assert_eq!(serde_json::from_str::<StoredCursor>(&text).unwrap(), c);
        let c = StoredCursor::V1 {
            seq: 7,
            holder: "i-1".into(),
            until: 1_800_000_000_000,
            r: Some("0193".into()),
        };
        let text = serde_json::to_string(&c).unwrap();
        assert_eq!(
            text,
            r#"{"v":"1","seq":7,"holder":"i-1","until":1800000000000,"r":"0193"}"#
        );
        assert_eq!(serde_json::from_str::<StoredCursor>(&text).unwrap(), c);
    }
}
