//! The change signals' subscriber (docs/architecture.md#change-signals):
//! one connection per process, started at its first watch, that
//! `PSUBSCRIBE`s to every team's change channel under the store's prefix
//! (`<prefix>:{team}:chg`, which the commit script `PUBLISH`es to) and
//! hands each signal to the process's [`Signals`]. On a Cluster it is one
//! connection to one of the seed nodes: a classic `PUBLISH` reaches every
//! node (docs/decisions/0640-change-signals-are-published-by-the-commit.md).
//! A `PING` every [`PING_EVERY`] tells a hung link from a quiet one; a
//! link lost or hung puts the signals down (every watch wakes as lost)
//! until a new subscription is up, tried every [`RECONNECT_EVERY`]. Its
//! loss is logged once, and its return once, with the attempts that failed.
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::watch;

use crate::store::signals::Signals;

/// How often the subscription's link is asked whether it still answers.
const PING_EVERY: Duration = Duration::from_secs(5);
/// Connecting, subscribing and a ping's answer.
const CALL_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often a lost subscription is tried again.
const RECONNECT_EVERY: Duration = Duration::from_secs(1);

/// Starts the subscriber of the store under `prefix` on `servers` (a
/// Redis URL, or a cluster's seed nodes): it runs until the returned
/// sender is dropped.
pub(super) fn start(
    servers: Vec<String>,
    prefix: &str,
    signals: Arc<Signals>,
) -> watch::Sender<()> {
    let (stop, stopped) = watch::channel(());
    let pattern = format!("{}:{{*}}:*chg", glob_escaped(prefix));
    tokio::spawn(run(servers, pattern, signals, stopped));
    stop
}

/// `text` as a literal in a Redis glob pattern.
fn glob_escaped(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if matches!(c, '*' | '?' | '[' | ']' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// How a subscription ended.
enum Ended {
    Lost,
    Stopped,
}

async fn run(
    servers: Vec<String>,
    pattern: String,
    signals: Arc<Signals>,
    mut stopped: watch::Receiver<()>,
) {
    // Failed attempts since the subscription was lost (or never came up).
    let mut failing: Option<u64> = None;
    loop {
        for url in &servers {
            let subscribed = tokio::select! {
                s = subscribe(url, &pattern) => s,
                _ = stopped.changed() => return,
            };
            let Some(pubsub) = subscribed else {
                if failing.is_none() {
                    tracing::warn!("change signals: no subscription to Redis; waits answer at once until there is one");
                }
                *failing.get_or_insert(0) += 1;
                continue;
            };
            signals.set_down(false);
            if let Some(failed) = failing.take() {
                tracing::info!(
                    failed_attempts = failed,
                    "change signals: subscribed to Redis again"
                );
            }
            let ended = listen(pubsub, &signals, &mut stopped).await;
            signals.set_down(true);
            if let Ended::Stopped = ended {
                return;
            }
            tracing::warn!("change signals: the subscription to Redis was lost; waits answer what they know until it is back");
            failing = Some(0);
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_EVERY) => {}
            _ = stopped.changed() => return,
        }
    }
}

/// A subscription to `pattern` at `url`, once Redis confirmed it.
async fn subscribe(url: &str, pattern: &str) -> Option<::redis::aio::PubSub> {
    let client = ::redis::Client::open(url).ok()?;
    let connect = tokio::time::timeout(CALL_TIMEOUT, client.get_async_pubsub());
    let mut pubsub = connect.await.ok()?.ok()?;
    let confirmed = tokio::time::timeout(CALL_TIMEOUT, pubsub.psubscribe(pattern));
    confirmed.await.ok()?.ok()?;
    Some(pubsub)
}

/// Hands each signal to `signals` until the link is lost, stops answering
/// a ping, or the store is dropped.
async fn listen(
    pubsub: ::redis::aio::PubSub,
    signals: &Signals,
    stopped: &mut watch::Receiver<()>,
) -> Ended {
    let (mut sink, mut stream) = pubsub.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    ping.tick().await;
    loop {
        tokio::select! {
            message = stream.next() => match message {
                Some(m) => {
                    // The records one commit wrote, one a line.
                    if let Ok(records) = m.get_payload::<String>() {
                        records.lines().for_each(|r| signals.raise(r));
                    }
                }
                None => return Ended::Lost,
            },
            _ = ping.tick() => {
                let answer = tokio::time::timeout(CALL_TIMEOUT, sink.ping::<::redis::Value>()).await;
                if !matches!(answer, Ok(Ok(_))) {
                    return Ended::Lost;
                }
            }
            _ = stopped.changed() => return Ended::Stopped,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_is_a_literal_in_the_pattern() {
        assert_eq!(glob_escaped("cg"), "cg");
        assert_eq!(glob_escaped("a*b?[c]\\"), "a\\*b\\?\\[c\\]\\\\");
    }
}
