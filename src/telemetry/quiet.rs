//! Warnings of the Redis client, at most one line per node (or per kind of
//! message) every [`EVERY`]: while a Redis Cluster node is down, the client
//! logs each of its reconnect attempts, hundreds a second
//! (docs/operations.md#logs).
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_log::NormalizeEvent;
use tracing_subscriber::layer::{Context, Layer};

/// How long a repeated warning of the Redis client stays quiet.
pub const EVERY: Duration = Duration::from_secs(5);
/// At most this many kinds are remembered (node addresses are few).
const REMEMBERED: usize = 1024;

/// A layer that lets through the first of the Redis client's warnings with
/// one key (the message up to `, due to`: the node it names) and drops the
/// same key's again for [`EVERY`]. Every other event passes.
#[derive(Default)]
pub struct QuietRedis {
    said: Mutex<HashMap<String, Instant>>,
}

/// The event's message, as written.
struct Message(String);

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        }
    }
}

/// Whether the event comes from the Redis client. The client logs through
/// the `log` crate: a record bridged from there has the target `log` and
/// its own target in the field `log.target`, which its normalized
/// metadata reads.
fn from_redis(event: &Event<'_>) -> bool {
    let normalized = event.normalized_metadata();
    let meta = normalized.as_ref().unwrap_or_else(|| event.metadata());
    let target = meta.target();
    target == "redis" || target.starts_with("redis::")
}

impl QuietRedis {
    /// Whether a warning with `key` may be written at `now`.
    fn may_say(&self, key: &str, now: Instant) -> bool {
        let mut said = self.said.lock().unwrap_or_else(|e| e.into_inner());
        if said
            .get(key)
            .is_some_and(|at| now.duration_since(*at) < EVERY)
        {
            return false;
        }
        if said.len() >= REMEMBERED {
            said.retain(|_, at| now.duration_since(*at) < EVERY);
        }
        said.insert(key.to_string(), now);
        true
    }
}

impl<S: Subscriber> Layer<S> for QuietRedis {
    fn event_enabled(&self, event: &Event<'_>, _: Context<'_, S>) -> bool {
        if !from_redis(event) || *event.metadata().level() > Level::WARN {
            return true;
        }
        let mut message = Message(String::new());
        event.record(&mut message);
        let key = message.0.split(", due to").next().unwrap_or_default();
        self.may_say(key, Instant::now())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use tracing_subscriber::layer::SubscriberExt;

    use super::*;

    /// Counts the events that reach it.
    struct Count(Arc<AtomicUsize>);

    impl<S: Subscriber> Layer<S> for Count {
        fn on_event(&self, _: &Event<'_>, _: Context<'_, S>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_nodes_repeated_connect_warnings_are_one_line() {
        let seen = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(Count(seen.clone()))
            .with(QuietRedis::default());
        tracing::subscriber::with_default(subscriber, || {
            for attempt in 0..200 {
                for node in ["10.0.0.1:7000", "10.0.0.2:7000"] {
                    tracing::warn!(
                        target: "redis::cluster_handling::async_connection",
                        "Failed to connect to node: {node:?}, due to: attempt {attempt}"
                    );
                }
                tracing::warn!(target: "redis::cluster_handling::async_connection", "Can't refresh slots with initial nodes: `x`");
                // Not the Redis client's, or not a warning: always written.
                tracing::warn!(target: "chatgate::gateway", "the gateway's own warning");
                tracing::info!(target: "redis::cluster", "not a warning");
            }
        });
        // Two nodes and one other message once each; the rest every time.
        assert_eq!(seen.load(Ordering::Relaxed), 3 + 200 + 200);
    }

    /// The Redis client's records as the `log` bridge hands them over:
    /// target `log`, the client's own target in `log.target`.
    #[test]
    fn a_nodes_repeated_connect_warnings_bridged_from_log_are_one_line() {
        let seen = Arc::new(AtomicUsize::new(0));
        let subscriber = tracing_subscriber::registry()
            .with(Count(seen.clone()))
            .with(QuietRedis::default());
        tracing::subscriber::with_default(subscriber, || {
            let logger = tracing_log::LogTracer::new();
            for attempt in 0..200 {
                for node in ["10.0.0.1:7000", "10.0.0.2:7000"] {
                    let message =
                        format!("Failed to connect to node: {node:?}, due to: attempt {attempt}");
                    tracing_log::log::Log::log(
                        &logger,
                        &tracing_log::log::Record::builder()
                            .level(tracing_log::log::Level::Warn)
                            .target("redis::cluster_handling::async_connection")
                            .args(format_args!("{message}"))
                            .build(),
                    );
                }
                // Another crate's warning through the same bridge: written.
                tracing_log::log::Log::log(
                    &logger,
                    &tracing_log::log::Record::builder()
                        .level(tracing_log::log::Level::Warn)
                        .target("hyper::client")
                        .args(format_args!("another crate's warning"))
                        .build(),
                );
            }
        });
        // Two nodes once each; the other crate's every time.
        assert_eq!(seen.load(Ordering::Relaxed), 2 + 200);
    }

    #[test]
    fn a_key_speaks_again_after_the_quiet() {
        let quiet = QuietRedis::default();
        let t0 = Instant::now();
        assert!(quiet.may_say("node a", t0));
        assert!(!quiet.may_say("node a", t0 + EVERY / 2));
        assert!(quiet.may_say("node b", t0 + EVERY / 2));
        assert!(quiet.may_say("node a", t0 + EVERY));
    }
}
