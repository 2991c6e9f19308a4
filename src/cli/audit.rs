//! `chatgate audit verify` (docs/audit.md#verifying-an-export): an
//! export's chain, per team, and, given one, its signed head.
use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};

use crate::domain::audit::{verify_chain, GENESIS};
use crate::domain::audit_keys::{verify_signed, Jwks};

/// The entries of the trail the API team last deleted under `team` left
/// (docs/audit.md#the-trail-of-a-deleted-team), read from `config`'s store:
/// each its JSON, oldest first. `Err`: none was deleted within the
/// retention, the store is the memory store, or it cannot be read.
pub fn export_deleted(config: &crate::config::Config, team: &str) -> Result<Vec<String>, String> {
    use crate::config::StoreBackend;
    if matches!(config.store.backend, StoreBackend::Memory) {
        return Err("store.backend is memory: a trail lives only as long as its gateway".into());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    let trail = runtime.block_on(async {
        let store = crate::app::store_of(config).await;
        let store = store.map_err(|e| format!("the store: {e}"))?;
        crate::gateway::audit::deleted_trail(store.as_ref(), team).await
    })?;
    trail.ok_or_else(|| format!("no API team {team:?} was deleted within the audit retention"))
}

/// A `GET /v1/audit/head` answer.
#[derive(Debug, Deserialize)]
struct Head {
    team: String,
    seq: u64,
    hash: String,
    signature: Option<String>,
}

/// What a head's signature signs (the members that must match).
#[derive(Debug, Deserialize)]
struct Signed {
    team: String,
    seq: u64,
    hash: String,
}

/// The entries of `text`: JSON lines, or one or more `GET /v1/audit`
/// answers (`{"entries": [...]}`), one after another.
fn entries_of(text: &str) -> Result<Vec<Map<String, Value>>, String> {
    let mut entries = Vec::new();
    let stream = serde_json::Deserializer::from_str(text).into_iter::<Value>();
    for (i, item) in stream.enumerate() {
        let item = item.map_err(|e| format!("input: not JSON ({e})"))?;
        match item {
            Value::Object(mut m) if m.contains_key("entries") && !m.contains_key("seq") => {
                let Some(Value::Array(page)) = m.remove("entries") else {
                    return Err(format!("input: item {} has no entries array", i + 1));
                };
                for e in page {
                    match e {
                        Value::Object(e) => entries.push(e),
                        _ => return Err("input: an entry is not an object".into()),
                    }
                }
            }
            Value::Object(m) => entries.push(m),
            _ => return Err(format!("input: item {} is not an object", i + 1)),
        }
    }
    Ok(entries)
}

/// Checks the entries of `input`, and `head` (a head answer) against
/// them and `keys` (a JWKS). `Ok`: the line to print; `Err`: what is
/// wrong, naming the first bad `seq`.
pub fn verify(input: &str, head: Option<&str>, keys: Option<&str>) -> Result<String, String> {
    let entries = entries_of(input)?;
    let ends = verify_chain(&entries).map_err(|b| b.to_string())?;
    if let Some(head) = head {
        let head: Head =
            serde_json::from_str(head).map_err(|e| format!("head: not a head ({e})"))?;
        check_head(&head, &entries, keys)?;
    }
    let teams: Vec<&str> = ends.keys().map(String::as_str).collect();
    Ok(format!(
        "ok: {} entries, teams {}",
        entries.len(),
        if teams.is_empty() {
            "-".to_string()
        } else {
            teams.join(",")
        }
    ))
}

fn check_head(
    head: &Head,
    entries: &[Map<String, Value>],
    keys: Option<&str>,
) -> Result<(), String> {
    let at = format!("team {}, seq {}", head.team, head.seq);
    if let Some(keys) = keys {
        let jwks: Jwks =
            serde_json::from_str(keys).map_err(|e| format!("keys: not a JWKS ({e})"))?;
        let signed = head
            .signature
            .as_deref()
            .and_then(|jws| verify_signed::<Signed>(jws, &jwks))
            .filter(|s| s.team == head.team && s.seq == head.seq && s.hash == head.hash);
        if signed.is_none() {
            return Err(format!("{at}: bad signature"));
        }
    }
    let hashes: BTreeMap<(&str, u64), &str> = entries
        .iter()
        .filter_map(|e| {
            let team = e.get("team")?.as_str()?;
            Some(((team, e.get("seq")?.as_u64()?), e.get("hash")?.as_str()?))
        })
        .collect();
    let want = if head.seq == 0 {
        Some(GENESIS)
    } else {
        hashes.get(&(head.team.as_str(), head.seq)).copied()
    };
    match want {
        Some(h) if h == head.hash => Ok(()),
        Some(_) => Err(format!("{at}: hash mismatch (the head is not this entry)")),
        None => Err(format!("{at}: the head's entry is not among the entries")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::audit::{seal, Acting, Action, Draft, Head as ChainHead, Target};
    use crate::domain::audit_keys::{new_signing_key_pem, SigningKeys};
    use crate::time::Timestamp;

    fn lines(n: usize) -> Vec<String> {
        let mut head = ChainHead::genesis();
        (0..n)
            .map(|i| {
                let d = Draft::success(Action::AuditRead, &Acting::system(None), Target::default());
                let now = Timestamp::from_unix_millis(1_800_000_000_000 + i as i64);
                let e = seal(&head, "acme", d, uuid::Uuid::now_v7(), now);
                head = ChainHead::of(&e);
                serde_json::to_string(&e).unwrap()
            })
            .collect()
    }

    fn head_of(line: &str, keys: &SigningKeys) -> String {
        let e: Value = serde_json::from_str(line).unwrap();
        let claims = serde_json::json!({"team": e["team"], "seq": e["seq"], "hash": e["hash"], "time": e["time"], "iat": 1});
        serde_json::json!({"team": e["team"], "seq": e["seq"], "hash": e["hash"], "time": e["time"],
            "signature": keys.sign(&claims)})
        .to_string()
    }

    #[test]
    fn json_lines_and_pages_verify() {
        let l = lines(3);
        assert_eq!(
            verify(&l.join("\n"), None, None).unwrap(),
            "ok: 3 entries, teams acme"
        );
        let page = format!(
            r#"{{"entries": [{}, {}], "next": 2}} {{"entries": [{}], "next": 3}}"#,
            l[0], l[1], l[2]
        );
        assert_eq!(
            verify(&page, None, None).unwrap(),
            "ok: 3 entries, teams acme"
        );
        let gap = format!("{}\n{}", l[0], l[2]);
        assert_eq!(
            verify(&gap, None, None).unwrap_err(),
            "team acme, seq 3: gap before seq 3"
        );
    }

    #[test]
    fn a_head_is_checked_by_its_signature_and_its_entry() {
        let keys = SigningKeys::from_pem(&new_signing_key_pem().unwrap(), &[]).unwrap();
        let jwks = serde_json::to_string(keys.jwks()).unwrap();
        let l = lines(3);
        let input = l.join("\n");
        let head = head_of(&l[2], &keys);
        assert!(verify(&input, Some(&head), Some(&jwks)).is_ok());
        // Another key's JWKS: the signature does not verify.
        let other = SigningKeys::from_pem(&new_signing_key_pem().unwrap(), &[]).unwrap();
        let other = serde_json::to_string(other.jwks()).unwrap();
        assert_eq!(
            verify(&input, Some(&head), Some(&other)).unwrap_err(),
            "team acme, seq 3: bad signature"
        );
        // A head whose seq was changed after signing.
        let forged = head.replace("\"seq\":3", "\"seq\":2");
        assert!(verify(&input, Some(&forged), Some(&jwks))
            .unwrap_err()
            .ends_with("bad signature"));
        // A head of an entry the export does not hold.
        let short = l[..2].join("\n");
        assert!(verify(&short, Some(&head), Some(&jwks))
            .unwrap_err()
            .contains("not among"));
    }
}
