//! OTP and session-PIN challenges (docs/api.md#challenges-otp-and-session-pin): the stored state of one
//! challenge and its rules.
//!
//! Opening one on an interaction, answering it and an agent's reveal are
//! `domain::attempts`. Lock and ban checks and failure counting belong to
//! the subject (`domain::subject`); the caller applies them around
//! `attempts::attempt`.
use std::fmt;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use super::otp::{self, OtpCode};
use super::pin;
use super::reveal;
use super::secrets::Pepper;
use crate::domain::settings::{OtpSettings, PinSettings};
use crate::error::Error;
use crate::time::{stored, Timestamp};

/// How many finished challenges an interaction remembers (oldest forgotten
/// first; a forgotten id is answered `not_found`).
pub const MAX_PAST_CHALLENGES: usize = 16;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ChallengeMethod {
    Otp,
    Pin,
    /// The code a login page showed, to type into the chat (login binding).
    Binding,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Delivery {
    Chat,
    Sms,
    Email,
    Agent,
    /// Shown to the customer by the login page (a binding code).
    LoginPage,
}

/// The open (or last) challenge of an interaction. Holds no code or PIN, only
/// a keyed hash and, for agent reveal, an AEAD-sealed copy of the OTP;
/// `Debug` hides even those.
///
/// Stored under short member names, times as unix milliseconds, the long
/// names of earlier versions read as aliases (as the interaction record
/// that holds it).
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Challenge {
    pub id: Uuid,
    #[serde(rename = "m", alias = "method")]
    pub method: ChallengeMethod,
    #[serde(rename = "d", alias = "delivery")]
    pub delivery: Delivery,
    /// Keyed hash of the code (OTP) or of the session PIN.
    #[serde(rename = "h", alias = "code_hash")]
    pub code_hash: String,
    /// The OTP sealed for agent reveal (AEAD), when the team allows reveal.
    #[serde(
        rename = "s",
        alias = "sealed_code",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub sealed_code: Option<String>,
    #[serde(rename = "e", alias = "expires_at", with = "stored")]
    pub expires_at: Timestamp,
    #[serde(rename = "n", alias = "attempts_used")]
    pub attempts_used: u32,
    #[serde(rename = "mx", alias = "max_attempts")]
    pub max_attempts: u32,
    /// Succeeding authenticates a pending pre-chat step-up.
    #[serde(
        rename = "su",
        alias = "step_up",
        default,
        skip_serializing_if = "super::is_false"
    )]
    pub step_up: bool,
}

impl Challenge {
    /// A new OTP challenge for `code`, open from `now` for `otp.ttl`. The code
    /// is kept only as its keyed hash (bound to `id`) and, when
    /// `seal_for_reveal`, sealed for agent reveal (bound to `id`).
    /// `step_up`: succeeding completes the interaction's pending pre-chat
    /// step-up.
    #[allow(clippy::too_many_arguments)]
    pub fn new_otp(
        id: Uuid,
        delivery: Delivery,
        code: &OtpCode,
        pepper: &Pepper,
        otp: &OtpSettings,
        seal_for_reveal: bool,
        step_up: bool,
        now: Timestamp,
    ) -> Result<Challenge, Error> {
        let sealed_code = if seal_for_reveal {
            Some(reveal::seal(code, id, pepper)?)
        } else {
            None
        };
        Ok(Challenge {
            id,
            method: ChallengeMethod::Otp,
            delivery,
            code_hash: otp::hash(pepper, id, code),
            sealed_code,
            expires_at: now.plus(otp.ttl.get()),
            attempts_used: 0,
            max_attempts: otp.max_attempts,
            step_up,
        })
    }

    /// A login-binding challenge for `code` (docs/api.md#the-login-callback): drawn and kept
    /// like an OTP (`otp.length`, `otp.ttl`, `otp.max_attempts`, a keyed
    /// hash bound to `id`), shown by the login page, typed into the chat.
    pub fn new_binding(
        id: Uuid,
        code: &OtpCode,
        pepper: &Pepper,
        otp: &OtpSettings,
        now: Timestamp,
    ) -> Challenge {
        Challenge {
            id,
            method: ChallengeMethod::Binding,
            delivery: Delivery::LoginPage,
            code_hash: otp::hash(pepper, id, code),
            sealed_code: None,
            expires_at: now.plus(otp.ttl.get()),
            attempts_used: 0,
            max_attempts: otp.max_attempts,
            step_up: false,
        }
    }

    /// A new session-PIN challenge, open from `now` for `pin.ttl`. Its hash is
    /// the interaction's `session_pin_hash` (made by
    /// [`pin::SessionPin::keyed_hash`]); the prompt goes into the chat.
    pub fn new_pin(
        id: Uuid,
        session_pin_hash: &str,
        pin: &PinSettings,
        now: Timestamp,
    ) -> Challenge {
        Challenge {
            id,
            method: ChallengeMethod::Pin,
            delivery: Delivery::Chat,
            code_hash: session_pin_hash.to_string(),
            sealed_code: None,
            expires_at: now.plus(pin.ttl.get()),
            attempts_used: 0,
            max_attempts: pin.max_attempts,
            step_up: false,
        }
    }

    /// A step-up challenge ends with its step-up: no later than `until`.
    pub fn ending_by(mut self, until: Option<Timestamp>) -> Challenge {
        if let Some(until) = until {
            self.expires_at = self.expires_at.min(until);
        }
        self
    }

    /// Can still be answered at `now`.
    pub fn is_open(&self, now: Timestamp) -> bool {
        now < self.expires_at && self.attempts_used < self.max_attempts
    }

    /// Wrong codes still allowed.
    pub fn attempts_remaining(&self) -> u32 {
        self.max_attempts.saturating_sub(self.attempts_used)
    }

    /// Constant-time comparison of `code` with the stored hash.
    pub(super) fn matches(&self, interaction_id: Uuid, code: &str, pepper: &Pepper) -> bool {
        match self.method {
            ChallengeMethod::Otp | ChallengeMethod::Binding => {
                otp::verify(pepper, self.id, code, &self.code_hash)
            }
            ChallengeMethod::Pin => pin::verify(pepper, interaction_id, code, &self.code_hash),
        }
    }
}

impl fmt::Debug for Challenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Challenge")
            .field("id", &self.id)
            .field("method", &self.method)
            .field("delivery", &self.delivery)
            .field("code_hash", &"..")
            .field("sealed_code", &self.sealed_code.as_ref().map(|_| ".."))
            .field("expires_at", &self.expires_at)
            .field("attempts_used", &self.attempts_used)
            .field("max_attempts", &self.max_attempts)
            .field("step_up", &self.step_up)
            .finish()
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
    #[serde(rename = "o", alias = "outcome")]
    pub outcome: PastOutcome,
}

/// What a well-formed code did to an answerable challenge.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The right code: the challenge is used up. With `step_up`, the success
    /// completes the interaction's pending pre-chat step-up.
    Success {
        method: ChallengeMethod,
        step_up: bool,
    },
    /// A wrong code, counted on the challenge; 0 left on the
    /// `max_attempts`-th. The caller counts the subject's failure.
    Wrong { attempts_remaining: u32 },
}
