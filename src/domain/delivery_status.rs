//! How far a challenge's message got, as its provider reports it
//! (docs/api.md#delivery-status): the statuses in their order, the
//! provider's error, and the rule that a status only moves forward.

/// A message's status. Declared in their order: a status only moves to a
/// later one (`failed` before `delivered`: a message reported failed and
/// then delivered did arrive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum DeliveryStatus {
    /// The provider took the message.
    Accepted,
    Sent,
    Failed,
    Delivered,
    Read,
}

impl DeliveryStatus {
    pub const ALL: [DeliveryStatus; 5] = [
        DeliveryStatus::Accepted,
        DeliveryStatus::Sent,
        DeliveryStatus::Failed,
        DeliveryStatus::Delivered,
        DeliveryStatus::Read,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            DeliveryStatus::Accepted => "accepted",
            DeliveryStatus::Sent => "sent",
            DeliveryStatus::Failed => "failed",
            DeliveryStatus::Delivered => "delivered",
            DeliveryStatus::Read => "read",
        }
    }

    /// The status named `name` (as [`Self::as_str`] writes it).
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the customer has the message.
    pub fn arrived(self) -> bool {
        self >= DeliveryStatus::Delivered
    }
}

/// Why the provider could not deliver: its error code (as text) and title.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryError {
    pub code: String,
    pub title: Option<String>,
}

/// The most characters of a provider's error code a record keeps
/// (docs/api.md#delivery-status).
pub const MAX_ERROR_CODE_CHARS: usize = 64;
/// The most characters of a provider's error title a record keeps.
pub const MAX_ERROR_TITLE_CHARS: usize = 256;

impl DeliveryError {
    /// The error as a record keeps it: its code cut to
    /// [`MAX_ERROR_CODE_CHARS`] characters and its title to
    /// [`MAX_ERROR_TITLE_CHARS`] (docs/decisions/0090-a-provider-s-error-is-cut.md).
    pub fn bounded(self) -> Self {
        DeliveryError {
            code: cut(self.code, MAX_ERROR_CODE_CHARS),
            title: self.title.map(|t| cut(t, MAX_ERROR_TITLE_CHARS)),
        }
    }
}

/// `s` with at most `max` characters (Unicode scalar values), cut on a
/// character's boundary.
fn cut(mut s: String, max: usize) -> String {
    if let Some((end, _)) = s.char_indices().nth(max) {
        s.truncate(end);
    }
    s
}

/// Where a message stands: its status and, with `failed`, the error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryState {
    pub status: DeliveryStatus,
    pub error: Option<DeliveryError>,
}

/// What a report did to a [`DeliveryState`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Moved {
    /// A repeat, a lower status, or `failed` after `delivered`: nothing.
    No,
    /// The first move to `delivered` or beyond.
    Arrived,
    /// A move to `failed`.
    Failed,
    /// Another move forward (`sent`; `read` after `delivered`).
    On,
}

impl DeliveryState {
    /// A message the provider took.
    pub fn accepted() -> Self {
        DeliveryState {
            status: DeliveryStatus::Accepted,
            error: None,
        }
    }

    /// Applies a report of `status` (with `error`, kept only for
    /// `failed`, [bounded](DeliveryError::bounded)): only a later status
    /// moves it.
    pub fn report(&mut self, status: DeliveryStatus, error: Option<DeliveryError>) -> Moved {
        if status <= self.status {
            return Moved::No;
        }
        let arrived_before = self.status.arrived();
        self.status = status;
        self.error = error
            .filter(|_| status == DeliveryStatus::Failed)
            .map(DeliveryError::bounded);
        match status {
            DeliveryStatus::Failed => Moved::Failed,
            s if s.arrived() && !arrived_before => Moved::Arrived,
            _ => Moved::On,
        }
    }
}

/// One provider report, read from a signed receipt: the provider's id of
/// a message a channel sent, and how far it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    pub message_id: String,
    pub status: DeliveryStatus,
    /// With `failed`: the provider's error.
    pub error: Option<DeliveryError>,
}

#[cfg(test)]
mod tests {
    use super::DeliveryStatus::*;
    use super::*;

    fn error() -> Option<DeliveryError> {
        Some(DeliveryError {
            code: "131047".into(),
            title: Some("Re-engagement message".into()),
        })
    }

    #[test]
    fn a_status_only_moves_forward() {
        // Each report in turn, and what it did.
        let reports = [
            (Sent, Moved::On, Sent),
            (Sent, Moved::No, Sent),
            (Accepted, Moved::No, Sent),
            (Failed, Moved::Failed, Failed),
            (Failed, Moved::No, Failed),
            (Sent, Moved::No, Failed),
            // Reported failed, then delivered: it did arrive.
            (Delivered, Moved::Arrived, Delivered),
            (Failed, Moved::No, Delivered),
            (Delivered, Moved::No, Delivered),
            (Read, Moved::On, Read),
            (Delivered, Moved::No, Read),
        ];
        let mut state = DeliveryState::accepted();
        for (status, moved, now) in reports {
            assert_eq!(state.report(status, error()), moved, "{status:?}");
            assert_eq!(state.status, now, "{status:?}");
            assert_eq!(state.error.is_some(), now == Failed, "{status:?}");
        }
        // Straight to read is the arrival.
        let mut state = DeliveryState::accepted();
        assert_eq!(state.report(Read, None), Moved::Arrived);
        let mut order = DeliveryStatus::ALL.to_vec();
        order.sort();
        assert_eq!(order, DeliveryStatus::ALL);
    }

    #[test]
    fn a_providers_error_is_kept_cut_to_its_bounds() {
        // 5 KB of code and title, with a character of two bytes across
        // each cut: kept as the first 64 and 256 characters.
        let long = |n: usize| "é".repeat(n);
        let mut state = DeliveryState::accepted();
        state.report(
            Failed,
            Some(DeliveryError {
                code: long(2_500),
                title: Some(long(2_500)),
            }),
        );
        let kept = state.error.unwrap();
        assert_eq!(kept.code, long(64));
        assert_eq!(kept.title.as_deref(), Some(long(256).as_str()));
        // Within the bounds: kept as sent.
        let mut state = DeliveryState::accepted();
        state.report(Failed, error());
        assert_eq!(state.error, error());
    }
}
