//! What a request is waiting on when its deadline passes
//! (docs/api.md#errors): a provider — a chat, SMS or e-mail provider, the
//! team's identity provider — or, when none is told, the store. The HTTP
//! layer gives each request its [`Waits`]; every wait on a provider runs
//! inside [`on_provider`], so that a deadline reached there is answered
//! 502 `channel_error` and logged naming the provider, never 503
//! `store_unavailable` (docs/decisions/0102-a-deadline-reached-on-a-provider.md).
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// A provider waited on: its kind (`twilio`, `identity provider`, `http`
/// for any other outbound call) and its name (a channel's name, an
/// issuer, a host); never a secret, so never a URL that may carry one (a
/// bot token in a path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provider {
    pub kind: &'static str,
    pub name: String,
}

/// The providers one request is waiting on now (several when it waits on
/// them side by side), oldest first.
#[derive(Clone, Default)]
pub struct Waits {
    now: Arc<Mutex<Vec<(u64, Provider)>>>,
}

tokio::task_local! {
    static WAITS: Waits;
}

/// Tells each wait apart, for its removal.
static NEXT: AtomicU64 = AtomicU64::new(0);

impl Waits {
    /// Runs `request` with these as its waits: the provider waits it makes
    /// (in its own task) are told here.
    pub fn scope<F: Future>(&self, request: F) -> impl Future<Output = F::Output> {
        WAITS.scope(self.clone(), request)
    }

    /// The waits of the request this runs in, if any: for a task of its
    /// own that the request spawns, to run in [`Waits::scope`].
    pub fn current() -> Option<Waits> {
        WAITS.try_with(Waits::clone).ok()
    }

    /// The provider waited on now, if any: the outermost wait, which
    /// names it best (a channel's send, around its HTTP call).
    pub fn provider(&self) -> Option<Provider> {
        self.lock().first().map(|(_, p)| p.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<(u64, Provider)>> {
        self.now.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// A wait on a provider, told to its request's [`Waits`] until dropped.
struct Told {
    waits: Waits,
    id: u64,
}

impl Drop for Told {
    fn drop(&mut self) {
        self.waits.lock().retain(|(id, _)| *id != self.id);
    }
}

/// Awaits `work`, a wait on the provider of `kind` named `name`, told to
/// the request it runs in (outside a request, only awaited).
pub async fn on_provider<F: Future>(kind: &'static str, name: &str, work: F) -> F::Output {
    let Ok(waits) = WAITS.try_with(Waits::clone) else {
        return work.await;
    };
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let provider = Provider {
        kind,
        name: name.to_string(),
    };
    waits.lock().push((id, provider));
    let _told = Told { waits, id };
    work.await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_wait_is_told_while_it_lasts_and_only_inside_its_request() {
        let waits = Waits::default();
        let seen = waits.clone();
        waits
            .scope(async move {
                assert_eq!(seen.provider(), None);
                let inside = on_provider("twilio", "sms", async { seen.provider() }).await;
                assert_eq!(
                    inside,
                    Some(Provider {
                        kind: "twilio",
                        name: "sms".into()
                    })
                );
                assert_eq!(seen.provider(), None, "over: no longer told");
            })
            .await;
        // Outside a request: only awaited.
        assert_eq!(on_provider("twilio", "sms", async { 7 }).await, 7);
        assert_eq!(waits.provider(), None);
    }
}
