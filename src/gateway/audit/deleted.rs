//! The trail an API team left when it was deleted
//! (docs/audit.md#the-trail-of-a-deleted-team): kept in its keyspace for its
//! retention, apart from any team written again under its id, and read
//! back for `chatgate audit export --team ID --deleted`.
use crate::gateway::records::{entry_json, DeletedTeam, Loaded, StoredHead};
use crate::store::{keys, Store};

/// Entries read from the store in one call.
const READ_AT_ONCE: u64 = 500;

/// The entries, oldest first, each its JSON as `GET /v1/audit` answers
/// it, of the trail the API team last deleted under `id` left: `None`
/// when no such team was deleted within the retention. Entries the
/// retention dropped already are left out (the oldest go first).
pub async fn deleted_trail(store: &dyn Store, id: &str) -> Result<Option<Vec<String>>, String> {
    let read = |keys: Vec<String>| async move {
        store
            .get(&keys)
            .await
            .map_err(|e| format!("the store: {e}"))
    };
    let marker = keys::deleted_team(id);
    let raw = read(vec![marker.clone()]).await?.pop().flatten();
    let deleted = Loaded::<DeletedTeam>::parse(marker, raw).map_err(|e| e.to_string())?;
    let Some(DeletedTeam { keyspace, .. }) = deleted.value else {
        return Ok(None);
    };
    let head = keys::audit_head(&keyspace);
    let raw = read(vec![head.clone()]).await?.pop().flatten();
    let head = Loaded::<StoredHead>::parse(head, raw).map_err(|e| e.to_string())?;
    let last = head.value.map_or(0, |h| h.found().seq);
    let mut entries = Vec::new();
    let mut from = 1;
    while from <= last {
        let to = last.min(from + READ_AT_ONCE - 1);
        let wanted = (from..=to)
            .map(|seq| keys::audit_entry(&keyspace, seq))
            .collect();
        for raw in read(wanted).await?.into_iter().flatten() {
            entries.push(entry_json(raw.value)?);
        }
        from = to + 1;
    }
    Ok(Some(entries))
}
