//! Log lines raised while the configuration loads, before the log format
//! is known, are kept and written once it is (`serve` and `check-config`
//! load under [`deferring`]; a channel file's warnings wait for the teams).
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field, Visit};
use tracing::{Level, Subscriber};
use tracing_subscriber::layer::{Context, SubscriberExt};
use tracing_subscriber::Layer;

/// Log lines raised before the log format is known (while the config
/// loads), kept to be written once it is: `(level, line)`.
#[derive(Default)]
pub struct Deferred(Vec<(Level, String)>);

/// Runs `f` (loading the config) with its log lines kept in a [`Deferred`].
pub fn deferring<T>(f: impl FnOnce() -> T) -> (T, Deferred) {
    let kept = Arc::new(Mutex::new(Vec::new()));
    let subscriber = tracing_subscriber::registry().with(Keep(Arc::clone(&kept)));
    let out = tracing::subscriber::with_default(subscriber, f);
    let lines = kept.lock().map(|mut v| std::mem::take(&mut *v));
    (out, Deferred(lines.unwrap_or_default()))
}

impl Deferred {
    /// The kept lines, in order (tests).
    #[cfg(test)]
    pub(crate) fn lines(&self) -> Vec<String> {
        self.0.iter().map(|(_, line)| line.clone()).collect()
    }

    /// Writes the kept lines through the installed subscriber.
    pub fn replay(self) {
        for (level, line) in self.0 {
            match level {
                Level::ERROR => tracing::error!("{line}"),
                Level::WARN => tracing::warn!("{line}"),
                Level::INFO => tracing::info!("{line}"),
                _ => tracing::debug!("{line}"),
            }
        }
    }
}

struct Keep(Arc<Mutex<Vec<(Level, String)>>>);

impl<S: Subscriber> Layer<S> for Keep {
    fn on_event(&self, event: &tracing::Event<'_>, _: Context<'_, S>) {
        let mut line = Line::default();
        event.record(&mut line);
        if let Ok(mut kept) = self.0.lock() {
            kept.push((*event.metadata().level(), line.message + &line.fields));
        }
    }
}

/// An event as one line of text: its message, then ` name=value` pairs.
#[derive(Default)]
struct Line {
    message: String,
    fields: String,
}

impl Visit for Line {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else {
            let _ = write!(self.fields, " {}={value:?}", field.name());
        }
    }
}
