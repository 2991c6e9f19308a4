//! The records of background work as the store holds them: a provider's
//! message id and what it leads to (docs/decisions/0058-message-ids-and-early-receipts.md),
//! and a pending approval in the customer's app that the poller asks
//! about (docs/api.md#approval-in-the-customers-app). Pinned by the bytes
//! tests in `tests.rs`: a rolling upgrade reads what the previous version
//! wrote.
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::Record;
use crate::domain::delivery_status::{DeliveryError, DeliveryStatus, Report};

/// The record under a message id, as stored: the interaction and challenge
/// it leads to, once known, and the reports that came before.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredMessage {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub i: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub c: Option<Uuid>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub p: Vec<StoredReport>,
}

impl Record for StoredMessage {}

/// A voice call's key press, as stored under its gather id
/// (docs/decisions/0110-a-code-read-aloud-is-sealed-until-the-press.md):
/// the interaction and challenge whose code it reads, that code sealed as
/// an agent's reveal seals it (`domain::reveal`, bound to the challenge),
/// and how many times it was read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredGather {
    pub i: Uuid,
    pub c: Uuid,
    pub k: String,
    #[serde(default, skip_serializing_if = "is_zero")]
    pub n: u32,
}

impl Record for StoredGather {}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// A parked report: its status's name, and the provider's error.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredReport {
    pub s: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ec: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub et: Option<String>,
}

impl StoredReport {
    /// Parked as its error will be kept once applied: cut to its bounds
    /// (docs/decisions/0090-a-provider-s-error-is-cut.md).
    pub fn of(r: &Report) -> Self {
        let error = r.error.clone().map(DeliveryError::bounded);
        StoredReport {
            s: r.status.as_str().to_string(),
            ec: error.as_ref().map(|e| e.code.clone()),
            et: error.and_then(|e| e.title),
        }
    }

    /// The report, if its status is one this gateway names.
    pub fn report(&self) -> Option<(DeliveryStatus, Option<DeliveryError>)> {
        let status = DeliveryStatus::parse(&self.s)?;
        let error = self.ec.clone().map(|code| DeliveryError {
            code,
            title: self.et.clone(),
        });
        Some((status, error))
    }
}

/// A pending approval as stored: `i` the interaction, `r` the provider's
/// `auth_req_id` (never logged), `v` the poll interval in seconds.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredPoll {
    pub i: Uuid,
    pub r: String,
    pub v: u64,
}

impl Record for StoredPoll {}
