//! Recognized conversations (docs/api.md#recognized-conversations): which
//! channels remember who authenticated in a conversation, how the
//! remembered authentication is stored (one key per team, channel and
//! conversation, living exactly as long as it is remembered), and the ways
//! it is forgotten outside an authentication: `/forget`, and a website's
//! back-channel logout of the customer. A logout and a ban forget it in
//! their own unit of work (`work`).
use std::time::Duration;

use uuid::Uuid;

use super::records::{put, Loaded, StoredRecognition};
use super::{Gateway, InteractionView};
use crate::config::Team;
use crate::domain::interaction::InteractionRecord;
use crate::domain::recognition::Recognition;
use crate::error::Result;
use crate::store::{keys, Commit, Op};
use crate::time::Timestamp;

/// Index entries of a customer's recognized conversations read at once.
const PAGE: usize = 500;

impl Gateway {
    /// How long a conversation on `channel` of `team` is remembered after an
    /// authentication: `recognize_for` when the channel vouches for its
    /// sender, else never (`None`).
    pub(super) fn recognize_for(&self, team: &Team, channel: &str) -> Option<Duration> {
        let vouches = self
            .config
            .channels
            .get(channel)
            .is_some_and(|c| c.vouches_for_sender);
        if !vouches {
            return None;
        }
        team.settings_for(channel).recognize_for.enabled()
    }

    /// The key of `rec`'s recognized conversation, when its channel
    /// remembers one.
    pub(super) fn recognition_key(&self, team: &Team, rec: &InteractionRecord) -> Option<String> {
        self.recognize_for(team, &rec.channel)?;
        Some(keys::recognition(
            &team.id,
            &rec.channel,
            &rec.conversation_id,
        ))
    }

    /// `POST /v1/interactions/{id}/forget`: the conversation is no longer
    /// recognized. Answers the interaction.
    pub async fn forget_conversation(
        &self,
        team: &Team,
        id: Uuid,
        now: Timestamp,
    ) -> Result<InteractionView> {
        let (view, ()) = self
            .update_interaction(team, id, now, |w| {
                w.forget_recognition();
                Ok(())
            })
            .await?;
        Ok(view)
    }

    /// Forgets every conversation of `team` that remembers `customer_id` (a
    /// website's back-channel logout of that customer), also those whose
    /// interactions are long gone. A conversation that now remembers
    /// another customer is left be. Returns how many were forgotten.
    pub(super) async fn forget_recognitions_of(
        &self,
        team: &Team,
        customer_id: &str,
    ) -> Result<usize> {
        let index = keys::recognitions_of(&team.id, customer_id);
        let mut forgotten = 0;
        let mut before = None;
        loop {
            let entries = self.store.index_desc(&index, before.take(), PAGE).await?;
            let full = entries.len() == PAGE;
            if let Some(last) = entries.last() {
                before = Some((last.score, last.member.clone()));
            }
            let rkeys: Vec<String> = entries.into_iter().map(|e| e.member).collect();
            for rkey in &rkeys {
                forgotten += usize::from(self.forget_if_theirs(&index, rkey, customer_id).await?);
            }
            if !full {
                return Ok(forgotten);
            }
        }
    }

    /// Deletes the recognition `rkey` if it remembers `customer_id`
    /// (re-read after a concurrent write), and its entry in `index`.
    async fn forget_if_theirs(&self, index: &str, rkey: &str, customer_id: &str) -> Result<bool> {
        super::records::retry(|| async {
            let raw = self.store.get(&[rkey.to_string()]).await?.pop().flatten();
            let loaded = Loaded::<Recognition>::parse(rkey.to_string(), raw)?;
            let theirs = loaded
                .value
                .as_ref()
                .is_some_and(|r| r.customer_id == customer_id);
            let mut ops = vec![Op::IndexRemove {
                key: index.to_string(),
                member: rkey.to_string(),
            }];
            if theirs {
                ops.push(Op::Delete {
                    key: loaded.key.clone(),
                    expected: loaded.version,
                });
            }
            match self.store.commit(ops).await? {
                Commit::Applied => Ok(Some(theirs)),
                Commit::Conflict { .. } => Ok(None),
            }
        })
        .await
    }

    /// The recognitions of many interactions (a list page), in one round
    /// trip; `None` where the channel remembers none.
    pub(super) async fn load_recognitions(
        &self,
        team: &Team,
        recs: &[&InteractionRecord],
    ) -> Result<Vec<Option<Recognition>>> {
        let rkeys: Vec<Option<String>> =
            recs.iter().map(|r| self.recognition_key(team, r)).collect();
        let wanted: Vec<String> = rkeys.iter().flatten().cloned().collect();
        if wanted.is_empty() {
            return Ok(vec![None; recs.len()]);
        }
        let mut raw = self.store.get(&wanted).await?.into_iter();
        rkeys
            .into_iter()
            .map(|k| match k {
                None => Ok(None),
                Some(k) => Ok(Loaded::<Recognition>::parse(k, raw.next().flatten())?.value),
            })
            .collect()
    }
}

/// The ops that write what a conversation remembers over `read`: the
/// record, living until it is forgotten, and its customer's index entry;
/// or its deletion. Also the record as the commit leaves it.
pub(super) fn recognition_ops(
    team: &Team,
    read: &Loaded<Recognition>,
    next: Option<&Recognition>,
    now: Timestamp,
) -> Result<(Vec<Op>, Loaded<Recognition>)> {
    let Some(next) = next else {
        let op = Op::Delete {
            key: read.key.clone(),
            expected: read.version,
        };
        let gone = Loaded {
            key: read.key.clone(),
            version: 0,
            value: None,
        };
        return Ok((vec![op], gone));
    };
    let ttl = next.until.since(now).max(Duration::from_secs(1));
    let op = put(
        &read.key,
        read.version,
        &StoredRecognition::from(next),
        Some(ttl),
    )?;
    let version = match &op {
        Op::Put { version, .. } => *version,
        _ => 0,
    };
    let index = Op::IndexAdd {
        key: keys::recognitions_of(&team.id, &next.customer_id),
        member: read.key.clone(),
        score: next.authenticated_at.unix_millis(),
        ttl,
    };
    let written = Loaded {
        key: read.key.clone(),
        version,
        value: Some(next.clone()),
    };
    Ok((vec![op, index], written))
}
