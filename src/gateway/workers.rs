//! The background workers a gateway runs beside its server (the poller,
//! the sweeper, the dispatcher, the audit sinks, the store watch): each a
//! named task, all told to stop at once and joined at shutdown
//! (docs/architecture.md#the-core-and-its-families). `app.rs` lists them.
use std::future::Future;

use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The workers started, by name, and the signal that stops them.
pub struct Workers {
    stop: watch::Receiver<bool>,
    running: Vec<(String, JoinHandle<()>)>,
}

impl Workers {
    /// No workers yet; those started stop once `stop` holds `true`.
    pub fn new(stop: watch::Receiver<bool>) -> Self {
        Workers {
            stop,
            running: Vec::new(),
        }
    }

    /// What a worker awaits to stop: resolves once the stop is sent (or
    /// its sender is gone).
    pub fn stopped(&self) -> impl Future<Output = ()> + Send + 'static {
        let mut stop = self.stop.clone();
        async move {
            let _ = stop.wait_for(|stop| *stop).await;
        }
    }

    /// Starts `task` as the worker `name`.
    pub fn spawn(
        &mut self,
        name: impl Into<String>,
        task: impl Future<Output = ()> + Send + 'static,
    ) {
        self.running.push((name.into(), tokio::spawn(task)));
    }

    /// The workers' names, in the order they started.
    pub fn names(&self) -> Vec<&str> {
        self.running.iter().map(|(name, _)| name.as_str()).collect()
    }

    /// Waits for every worker to end (once stopped, each ends at its next
    /// turn); one that panicked is logged by name.
    pub async fn join(self) {
        for (name, task) in self.running {
            if let Err(e) = task.await {
                tracing::error!(worker = %name, error = %e, "a background worker ended abnormally");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    use super::*;

    #[tokio::test]
    async fn every_worker_stops_on_the_one_signal_and_is_joined() {
        let (tx, rx) = watch::channel(false);
        let mut workers = Workers::new(rx);
        let ended = Arc::new(AtomicUsize::new(0));
        for name in ["a", "b", "c"] {
            let (stopped, ended) = (workers.stopped(), ended.clone());
            workers.spawn(name, async move {
                stopped.await;
                ended.fetch_add(1, Ordering::SeqCst);
            });
        }
        assert_eq!(workers.names(), ["a", "b", "c"]);
        tokio::task::yield_now().await;
        assert_eq!(
            ended.load(Ordering::SeqCst),
            0,
            "none stops before the signal"
        );
        tx.send(true).unwrap();
        workers.join().await;
        assert_eq!(ended.load(Ordering::SeqCst), 3, "join waits for all");
    }
}
