//! Logging and metrics. Logs go to stderr through `tracing` (`RUST_LOG`,
//! default `info`); metrics are recorded with the `metrics` facade and
//! rendered as Prometheus text at `/metrics`.
use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tracing_subscriber::EnvFilter;

/// Installs the tracing subscriber once; later calls do nothing.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .try_init();
}

/// The Prometheus recorder. The `metrics` facade has one global recorder
/// per process, so every app in a process (tests start several) shares it.
#[derive(Clone)]
pub struct Metrics(Option<PrometheusHandle>);

static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();

impl Metrics {
    pub fn install() -> Self {
        let handle = HANDLE.get_or_init(|| {
            // Histograms render as summaries unless given buckets.
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full("chatgate_channel_send_seconds".into()),
                    &crate::channels::SEND_SECONDS_BUCKETS,
                )
                .map(PrometheusBuilder::build_recorder);
            let Ok(recorder) = recorder else {
                return None;
            };
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok().map(|_| handle)
        });
        Metrics(handle.clone())
    }

    pub fn render(&self) -> String {
        self.0
            .as_ref()
            .map(PrometheusHandle::render)
            .unwrap_or_default()
    }
}
