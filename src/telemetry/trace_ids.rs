//! The `trace_id` of log lines written inside a traced request or piece of
//! background work: ` trace_id=…` at the end of a text line, `"trace_id"`
//! first in a JSON object. Lines outside a trace, and every line while
//! traces are off, are written as before.
use std::fmt;

use tracing::{Event, Subscriber};
use tracing_subscriber::fmt::format::Writer;
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

/// An event format that adds the current trace id to what `inner` writes.
pub struct TraceIds<F> {
    inner: F,
    json: bool,
}

impl<F> TraceIds<F> {
    pub fn text(inner: F) -> Self {
        TraceIds { inner, json: false }
    }

    pub fn json(inner: F) -> Self {
        TraceIds { inner, json: true }
    }
}

impl<S, N, F> FormatEvent<S, N> for TraceIds<F>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
    F: FormatEvent<S, N>,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &Event<'_>,
    ) -> fmt::Result {
        let Some(trace_id) = crate::spans::trace_id() else {
            return self.inner.format_event(ctx, writer, event);
        };
        let mut line = String::new();
        self.inner
            .format_event(ctx, Writer::new(&mut line), event)?;
        writer.write_str(&with_trace_id(&line, &trace_id, self.json))
    }
}

/// `line` (one log line, ending in a newline) with `trace_id` added.
fn with_trace_id(line: &str, trace_id: &str, json: bool) -> String {
    let body = line.strip_suffix('\n').unwrap_or(line);
    if json {
        if let Some(rest) = body.strip_prefix('{') {
            let sep = if rest.starts_with('}') { "" } else { "," };
            return format!("{{\"trace_id\":\"{trace_id}\"{sep}{rest}\n");
        }
    }
    format!("{body} trace_id={trace_id}\n")
}

#[cfg(test)]
mod tests {
    use super::with_trace_id;

    #[test]
    fn the_trace_id_ends_a_text_line_and_opens_a_json_object() {
        let id = "4bf92f3577b34da6a3ce929d0e0e4736";
        assert_eq!(
            with_trace_id("INFO request status=200\n", id, false),
            format!("INFO request status=200 trace_id={id}\n")
        );
        assert_eq!(
            with_trace_id("{\"level\":\"INFO\"}\n", id, true),
            format!("{{\"trace_id\":\"{id}\",\"level\":\"INFO\"}}\n")
        );
        let line: serde_json::Value =
            serde_json::from_str(&with_trace_id("{}\n", id, true)).unwrap();
        assert_eq!(line["trace_id"], id);
    }
}
