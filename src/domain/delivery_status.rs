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
    /// `failed`): only a later status moves it.
    pub fn report(&mut self, status: DeliveryStatus, error: Option<DeliveryError>) -> Moved {
        if status <= self.status {
            return Moved::No;
        }
        let arrived_before = self.status.arrived();
        self.status = status;
        self.error = error.filter(|_| status == DeliveryStatus::Failed);
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
}
