//! Logging and metrics. Logs go to stderr through `tracing` (`RUST_LOG`,
//! default `info`) as text (colour only on a terminal) or JSON lines
//! (`server.log_format`); metrics are recorded with the `metrics` facade and
//! rendered as Prometheus text at `/metrics` (families and their help in
//! [`families`], process metrics in [`process`]). Traces go to an
//! OpenTelemetry collector when one is configured ([`traces`]).
mod by_team;
mod capped;
mod families;
mod process;
mod quiet;
mod text;
mod trace_ids;
pub mod traces;

use std::io::IsTerminal;
use std::sync::{Arc, OnceLock};

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::filter::{filter_fn, FilterExt};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

use trace_ids::TraceIds;
pub use traces::Traces;

pub use crate::config::LogFormat;
pub use crate::config::{deferring, Deferred};
pub use crate::domain::customer_refs::SubjectNames;
pub use families::{
    register_config, register_team, Kind, BACKGROUND_KINDS, FAMILIES, OUTBOX_KINDS,
};

/// Installs the process's log subscriber once (stderr, `RUST_LOG` or
/// `info`); later calls do nothing.
pub fn init(format: LogFormat) {
    init_traced(format, None);
}

/// [`init`], and with `traces` the layer that exports the spans of
/// `crate::spans` ([`traces`]); log lines written inside a traced request
/// carry its `trace_id`.
pub fn init_traced(format: LogFormat, traces: Option<&Traces>) {
    install(
        format,
        std::io::stderr,
        std::io::stderr().is_terminal(),
        traces,
    );
}

/// [`init`] with another writer (the load benchmark's sink): colour only
/// when `terminal`.
pub fn init_to<W>(format: LogFormat, writer: W, terminal: bool)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    install(format, writer, terminal, None);
}

/// [`init_to`] with traces (the load benchmark's traced run).
pub fn init_to_traced<W>(format: LogFormat, writer: W, terminal: bool, traces: &Traces)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    install(format, writer, terminal, Some(traces));
}

fn install<W>(format: LogFormat, writer: W, terminal: bool, traces: Option<&Traces>)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    // The spans made for traces are not the log's: lines stay as they are.
    let logs = filter.and(filter_fn(|meta| meta.target() != crate::spans::TARGET));
    // No line longer than 4 KiB, whatever a field holds ([`capped`]).
    let json = matches!(format, LogFormat::Json);
    let fmt = tracing_subscriber::fmt::layer()
        .with_writer(capped::Capped::new(writer, json))
        .with_target(false);
    // The Redis client's repeated warnings are written once per node
    // every few seconds ([`quiet`]).
    let registry = tracing_subscriber::registry()
        .with(traces.map(Traces::layer))
        .with(quiet::QuietRedis::default());
    let _ = match format {
        LogFormat::Text if terminal => registry
            .with(
                fmt.with_ansi(true)
                    .map_event_format(TraceIds::text)
                    .with_filter(logs),
            )
            .try_init(),
        LogFormat::Text => registry
            .with(
                fmt.with_ansi(false)
                    .fmt_fields(text::Fields)
                    .with_timer(text::Time)
                    .map_event_format(TraceIds::text)
                    .with_filter(logs),
            )
            .try_init(),
        LogFormat::Json => registry
            .with(
                fmt.json()
                    .flatten_event(true)
                    .with_current_span(false)
                    .with_span_list(false)
                    .map_event_format(TraceIds::json)
                    .with_filter(logs),
            )
            .try_init(),
    };
}

/// The buckets of `chatgate_http_request_duration_seconds`: 0.5 ms to 10 s.
pub const HTTP_SECONDS_BUCKETS: [f64; 14] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// The Prometheus recorder. The `metrics` facade has one global recorder
/// per process, so every app in a process (tests start several) shares it.
#[derive(Clone)]
pub struct Metrics(Option<PrometheusHandle>);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

/// The series labelled by a team ([`by_team`]), beside the recorder's.
static TEAM_SERIES: OnceLock<Arc<by_team::TeamSeries>> = OnceLock::new();

/// Drops the series labelled by team `id` (a team that left the
/// configuration in force, and whose id no team in force has): a fleet
/// that writes and deletes teams does not grow `/metrics`
/// (docs/decisions/0890-a-gone-team-s-series-and-health-are-dropped.md).
/// A later use of the id starts its series again at 0.
pub fn forget_team(id: &str) {
    if let Some(teams) = TEAM_SERIES.get() {
        teams.forget(id);
    }
}

/// How often histogram samples are folded in when nobody scrapes.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

impl Metrics {
    /// Installs the recorder once: histograms with buckets, `# HELP` for
    /// every family, every counter present at 0.
    pub fn install() -> Self {
        let handle = HANDLE.get_or_init(|| {
            // Histograms render as summaries unless given buckets.
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("chatgate_channel_send_seconds".into()),
                    &crate::channels::SEND_SECONDS_BUCKETS,
                )
                .and_then(|b| {
                    b.set_buckets_for_metric(
                        Matcher::Full("chatgate_http_request_duration_seconds".into()),
                        &HTTP_SECONDS_BUCKETS,
                    )
                })
                .map(PrometheusBuilder::build_recorder);
            let Ok(inner) = recorder else {
                return None;
            };
            let handle = inner.handle();
            let teams = Arc::clone(TEAM_SERIES.get_or_init(Arc::default));
            metrics::set_global_recorder(by_team::ByTeam { inner, teams }).ok()?;
            families::describe_and_register();
            // Histogram samples are folded into their buckets only by a
            // scrape or by upkeep: without this, a gateway nobody scrapes
            // would keep every request's sample.
            let upkeep = handle.clone();
            std::thread::Builder::new()
                .name("metrics-upkeep".into())
                .spawn(move || loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                })
                .ok()?;
            Some(handle)
        });
        Metrics(handle.clone())
    }

    /// The Prometheus text: the recorder's families, then `process_*`.
    pub fn render(&self) -> String {
        let mut out = self
            .0
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default();
        if let (Some(_), Some(teams)) = (&self.0, TEAM_SERIES.get()) {
            teams.render(&mut out);
        }
        process::render(&mut out);
        out
    }
}

/// `text` without the samples labelled by `team` (`# HELP` and `# TYPE`
/// stay): what a `/metrics` without `server.metrics_token` shows, so
/// that nobody can list the team ids by scraping it.
pub fn without_team_series(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.split_inclusive('\n') {
        let labels = line
            .split_once('{')
            .and_then(|(_, rest)| rest.rsplit_once('}'))
            .map_or("", |(labels, _)| labels);
        let by_team = !line.starts_with('#')
            && (labels.starts_with("team=\"") || labels.contains(",team=\""));
        if !by_team {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::without_team_series;

    #[test]
    fn team_labelled_samples_are_left_out_and_nothing_else() {
        let text = "# HELP chatgate_outbox_delivered_total Outbox items.\n\
# TYPE chatgate_outbox_delivered_total counter\n\
chatgate_outbox_delivered_total{team=\"acme\",kind=\"event\"} 3\n\
chatgate_outbox_delivered_total{kind=\"event\",team=\"globex\"} 1\n\
chatgate_http_requests_total{route=\"/v1/interactions/{id}\",method=\"GET\",status=\"200\"} 2\n\
chatgate_interactions_created_total 7\n\
chatgate_steam_total{steam=\"x\"} 1\n";
        let out = without_team_series(text);
        assert!(!out.contains("acme") && !out.contains("globex"), "{out}");
        for kept in [
            "# HELP chatgate_outbox_delivered_total",
            "# TYPE chatgate_outbox_delivered_total counter",
            "route=\"/v1/interactions/{id}\"",
            "chatgate_interactions_created_total 7\n",
            "steam=\"x\"",
        ] {
            assert!(out.contains(kept), "{kept}: {out}");
        }
    }
}
