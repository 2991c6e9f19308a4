//! OpenTelemetry traces (docs/operations.md#traces): the spans of
//! `crate::spans` go, batched, as OTLP/HTTP protobuf to
//! `{otlp_endpoint}/v1/traces`. The batch processor runs on its own thread
//! with a bounded queue, so a collector that is down or slow costs a
//! request nothing: spans beyond the queue are dropped and counted in
//! `chatgate_trace_spans_dropped_total`. [`ALLOWED`] is the one place that
//! decides which attributes a span may carry; everything else (log events,
//! status messages, code locations) is removed before export.
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use opentelemetry::trace::{Status, TracerProvider as _};
use opentelemetry_otlp::{Protocol, WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{
    BatchConfigBuilder, BatchSpanProcessor, Sampler, SdkTracerProvider, SpanData, SpanExporter,
    SpanProcessor,
};
use opentelemetry_sdk::Resource;
use tracing_subscriber::filter::filter_fn;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

use crate::config::TelemetryConfig;

/// The only attribute names a span may carry. None of them can hold a
/// code, PIN, token, key, secret, phone number, e-mail address or customer
/// reference: methods, route templates, status codes, team ids and host
/// names.
pub const ALLOWED: [&str; 5] = [
    "http.request.method",
    "http.route",
    "http.response.status_code",
    "chatgate.team",
    "server.address",
];

/// Spans waiting for export at most; more are dropped and counted.
pub const QUEUE: usize = 2048;
/// Spans per export request.
const BATCH: usize = 512;
/// How long a span waits for its batch at most: well inside the 5 s
/// within which an ended span is exported.
const DELAY: Duration = Duration::from_secs(1);
/// How long one export may take before it is given up.
const EXPORT_TIMEOUT: Duration = Duration::from_secs(3);

/// The installed trace pipeline; [`Traces::shutdown`] sends what is left.
pub struct Traces {
    provider: SdkTracerProvider,
}

/// Why traces could not start (a start-up error).
#[derive(Debug, thiserror::Error)]
#[error("telemetry.otlp_endpoint: the OTLP exporter cannot start: {0}")]
pub struct TracesError(#[source] opentelemetry_otlp::ExporterBuildError);

impl Traces {
    /// The pipeline of `config`, or `None` while no endpoint is set.
    pub fn start(config: &TelemetryConfig) -> Result<Option<Traces>, TracesError> {
        let Some(endpoint) = &config.otlp_endpoint else {
            return Ok(None);
        };
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(Protocol::HttpBinary)
            .with_endpoint(format!("{endpoint}/v1/traces"))
            .with_timeout(EXPORT_TIMEOUT)
            .with_headers(Default::default())
            .build()
            .map_err(TracesError)?;
        let pending = Arc::new(AtomicUsize::new(0));
        let batches = BatchSpanProcessor::builder(Counted {
            inner: exporter,
            pending: pending.clone(),
            failing: AtomicBool::new(false),
        })
        .with_batch_config(
            BatchConfigBuilder::default()
                // Never full: `Bounded` keeps at most QUEUE waiting.
                .with_max_queue_size(QUEUE + BATCH)
                .with_max_export_batch_size(BATCH)
                .with_scheduled_delay(DELAY)
                .build(),
        )
        .build();
        let provider = SdkTracerProvider::builder()
            .with_span_processor(Bounded {
                inner: batches,
                pending,
            })
            .with_sampler(Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(
                config.sample_ratio,
            ))))
            .with_resource(
                Resource::builder()
                    .with_service_name(config.service_name.clone())
                    .build(),
            )
            .build();
        crate::spans::turn_on();
        Ok(Some(Traces { provider }))
    }

    /// The `tracing` layer that turns the spans of `crate::spans` (and no
    /// others, nor any log event) into OpenTelemetry spans.
    pub fn layer<S>(&self) -> impl Layer<S>
    where
        S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    {
        tracing_opentelemetry::layer()
            .with_tracer(self.provider.tracer("chatgate"))
            .with_location(false)
            .with_threads(false)
            .with_level(false)
            .with_target(false)
            .with_tracked_inactivity(false)
            // A request's span starts when something needs it, not when it
            // is entered: its caller's `traceparent` is adopted only once
            // a key vouched for the caller (`crate::spans::RemoteParent`).
            .with_context_activation(false)
            .with_filter(filter_fn(|meta| {
                meta.is_span() && meta.target() == crate::spans::TARGET
            }))
    }

    /// Exports what is still queued (bounded by the export time-out).
    pub fn shutdown(self) {
        let _ = self.provider.shutdown();
    }
}

/// Keeps at most [`QUEUE`] spans waiting, counts the rest, and strips
/// every span to [`ALLOWED`] before it is queued.
#[derive(Debug)]
struct Bounded {
    inner: BatchSpanProcessor,
    /// Spans handed on and not yet exported (or failed).
    pending: Arc<AtomicUsize>,
}

impl SpanProcessor for Bounded {
    fn on_start(&self, _: &mut opentelemetry_sdk::trace::Span, _: &opentelemetry::Context) {}

    fn on_end(&self, mut span: SpanData) {
        if self.pending.fetch_add(1, Ordering::Relaxed) >= QUEUE {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            metrics::counter!("chatgate_trace_spans_dropped_total").increment(1);
            return;
        }
        strip(&mut span);
        self.inner.on_end(span);
    }

    fn force_flush(&self) -> OTelSdkResult {
        self.inner.force_flush()
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}

/// What a span keeps: its name, kind, times, links to its parent, and the
/// [`ALLOWED`] attributes; no events, no status message.
pub fn strip(span: &mut SpanData) {
    span.attributes
        .retain(|kv| ALLOWED.contains(&kv.key.as_str()));
    span.events.events.clear();
    span.links.links.clear();
    if let Status::Error { .. } = span.status {
        span.status = Status::error("");
    }
}

/// The exporter, counting what left the queue and saying once when the
/// collector starts or stops failing.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    pending: Arc<AtomicUsize>,
    failing: AtomicBool,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let n = batch.len();
        let result = self.inner.export(batch).await;
        self.pending.fetch_sub(n, Ordering::Relaxed);
        let failed = result.is_err();
        if failed {
            metrics::counter!("chatgate_trace_spans_dropped_total").increment(n as u64);
        }
        if self.failing.swap(failed, Ordering::Relaxed) != failed {
            if failed {
                tracing::warn!(
                    "the trace collector does not take spans; they are dropped until it does"
                );
            } else {
                tracing::info!("the trace collector takes spans again");
            }
        }
        result
    }

    fn shutdown_with_timeout(&mut self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &Resource) {
        self.inner.set_resource(resource);
    }
}
