//! OTP and session-PIN challenges (CONTRACT 3.7): the stored state of one
//! challenge and its rules.
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::time::Timestamp;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeMethod {
    Otp,
    Pin,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Chat,
    Sms,
    Email,
    Agent,
}

/// The open (or last) challenge of an interaction.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub id: Uuid,
    pub method: ChallengeMethod,
    pub delivery: Delivery,
    /// Keyed hash of the code (OTP) or of the session PIN.
    pub code_hash: String,
    /// The OTP sealed for agent reveal (AEAD), when the team allows reveal.
    pub sealed_code: Option<String>,
    pub expires_at: Timestamp,
    pub attempts_used: u32,
    pub max_attempts: u32,
    /// Succeeding authenticates a pending pre-chat step-up.
    #[serde(default)]
    pub step_up: bool,
}

impl Challenge {
    /// Can still be answered at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        now < self.expires_at && self.attempts_used < self.max_attempts
    }
}

/// What became of a challenge that is no longer the interaction's current one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PastOutcome {
    Succeeded,
    Replaced,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PastChallenge {
    pub id: Uuid,
    pub outcome: PastOutcome,
}
