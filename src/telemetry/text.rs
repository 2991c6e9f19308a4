//! The text log line exactly as `tracing-subscriber`'s default format
//! writes it without colour, for less: a request writes one, and its
//! fields and time were 15 % of a status read's instructions (callgrind,
//! under the load test). A plain field value (printable ASCII without `"` or `\`) is
//! written as is between quotes rather than through `Debug`'s escaping,
//! numbers and booleans without the styling machinery, the time from our
//! own RFC 3339 writer; everything else (the message, errors, floats, any
//! value that needs escaping) goes to `tracing-subscriber`'s own visitor.
//! With colour (a terminal) the default format is used as it is.
use std::fmt;

use tracing::field::{Field, Visit};
use tracing_subscriber::field::{RecordFields, VisitOutput};
use tracing_subscriber::fmt::format::{DefaultVisitor, Writer};
use tracing_subscriber::fmt::time::FormatTime;
use tracing_subscriber::fmt::FormatFields;

/// The fields of a line (see the module).
#[derive(Debug, Clone, Copy, Default)]
pub struct Fields;

impl<'w> FormatFields<'w> for Fields {
    fn format_fields<R: RecordFields>(&self, writer: Writer<'w>, fields: R) -> fmt::Result {
        let mut v = Visitor {
            writer,
            empty: true,
            result: Ok(()),
        };
        fields.record(&mut v);
        v.result
    }
}

/// The time of a line, `2026-11-23T21:00:00.123456Z`.
#[derive(Debug, Clone, Copy, Default)]
pub struct Time;

impl FormatTime for Time {
    fn format_time(&self, w: &mut Writer<'_>) -> fmt::Result {
        let now = std::time::SystemTime::now();
        let micros = now
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_micros()).ok());
        match micros.and_then(crate::time::rfc3339_micros) {
            Some(b) => w.write_str(std::str::from_utf8(&b).map_err(|_| fmt::Error)?),
            None => tracing_subscriber::fmt::time::SystemTime.format_time(w),
        }
    }
}

struct Visitor<'a> {
    writer: Writer<'a>,
    empty: bool,
    result: fmt::Result,
}

/// Written as is between quotes, it reads as `Debug` would write it.
fn plain(s: &str) -> bool {
    s.bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
}

impl Visitor<'_> {
    /// `name=` after a space if a field came before, unless the default
    /// visitor must write this one (the message, a raw or `log.` name).
    fn start(&mut self, field: &Field) -> bool {
        let name = field.name();
        if self.result.is_err()
            || name == "message"
            || name.starts_with("r#")
            || name.starts_with("log.")
        {
            return false;
        }
        let pad = if self.empty { "" } else { " " };
        self.empty = false;
        self.result = self
            .writer
            .write_str(pad)
            .and_then(|()| self.writer.write_str(name))
            .and_then(|()| self.writer.write_char('='));
        true
    }

    /// A number or a boolean: `value` as it displays, after `name=`, without
    /// the default visitor's styling machinery (it writes the same text);
    /// the default visitor where [`Visitor::start`] leaves the field to it.
    fn shown(
        &mut self,
        field: &Field,
        value: impl fmt::Display,
        fallback: impl FnOnce(&mut DefaultVisitor<'_>),
    ) {
        if self.start(field) {
            self.result = self.result.and_then(|()| write!(self.writer, "{value}"));
        } else {
            self.default(field, fallback);
        }
    }

    /// Hands one field to `tracing-subscriber`'s own visitor.
    fn default(&mut self, field: &Field, record: impl FnOnce(&mut DefaultVisitor<'_>)) {
        if self.result.is_err() {
            return;
        }
        let mut v = DefaultVisitor::new(self.writer.by_ref(), self.empty);
        record(&mut v);
        self.result = v.finish();
        // It writes every field but a `log.` one (`tracing-log` is on).
        self.empty = self.empty && field.name().starts_with("log.");
    }
}

impl Visit for Visitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if plain(value) && self.start(field) {
            self.result = self
                .result
                .and_then(|()| self.writer.write_char('"'))
                .and_then(|()| self.writer.write_str(value))
                .and_then(|()| self.writer.write_char('"'));
        } else {
            self.default(field, |v| v.record_str(field, value));
        }
    }

    fn record_u64(&mut self, field: &Field, value: u64) {
        self.shown(field, value, |v| v.record_u64(field, value));
    }

    fn record_i64(&mut self, field: &Field, value: i64) {
        self.shown(field, value, |v| v.record_i64(field, value));
    }

    /// As `Debug` writes it, which is what the default visitor writes.
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.shown(field, format_args!("{value:?}"), |v| {
            v.record_f64(field, value)
        });
    }

    fn record_bool(&mut self, field: &Field, value: bool) {
        self.shown(field, value, |v| v.record_bool(field, value));
    }

    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.default(field, |v| v.record_error(field, value));
    }

    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.default(field, |v| v.record_debug(field, value));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use tracing::Level;

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Buffer {
        fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(b);
            Ok(b.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[derive(Debug)]
    struct Failed(Option<Box<Failed>>);
    impl fmt::Display for Failed {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(if self.0.is_some() {
                "outer"
            } else {
                "inner \"cause\""
            })
        }
    }
    impl std::error::Error for Failed {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.0.as_deref().map(|e| e as _)
        }
    }

    /// Every kind of field and message the gateway logs, and a few it
    /// could: values that need escaping, empty ones, numbers, errors, a
    /// span's fields.
    fn log_everything() {
        let span = tracing::info_span!("request", method = "GET", id = 7u64, odd = "a\"b");
        let _in = span.enter();
        for value in [
            "plain",
            "",
            "quote\"d",
            "back\\slash",
            "new\nline",
            "é",
            "\u{1b}[31m",
            "~ !",
        ] {
            let team: Option<&str> = Some(value);
            let code: Option<&str> = None;
            tracing::event!(
                Level::INFO,
                method = value,
                route = "/v1/interactions/{id}",
                status = 200u16,
                latency_ms = 1.25f64,
                request_id = value,
                team,
                code,
                "request"
            );
        }
        let err = Failed(Some(Box::new(Failed(None))));
        tracing::warn!(
            error = &err as &dyn std::error::Error,
            ok = true,
            n = -3i64,
            "it {} failed",
            "all"
        );
        tracing::warn!(error = %err, debug = ?Some("x"), "plain \"message\"\n");
        tracing::info!(big = u64::MAX, f = f64::NAN, flag = false);
        tracing::info!(
            a = 0.0f64,
            b = -0.0f64,
            c = 0.001f64,
            d = 1e-7f64,
            e = 1e16f64,
            f = f64::INFINITY,
            g = f64::NEG_INFINITY,
            h = 12.5f32,
            i = 1.0f64
        );
        // `log.` fields (skipped, as `tracing-log` records them) and raw
        // names, first and in the middle.
        tracing::info!(
            log.target = "x",
            r#type = "t",
            a = "b",
            log.line = 3u64,
            c = 1u64
        );
        tracing::info!(r#type = "t", log.file = "f.rs", a = "b");
        tracing::info!("message only");
    }

    fn logged(ours: bool) -> String {
        let out = Buffer::default();
        let writer = out.clone();
        let builder = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_target(false)
            .without_time();
        if ours {
            let subscriber = builder.fmt_fields(Fields).finish();
            tracing::subscriber::with_default(subscriber, log_everything);
        } else {
            tracing::subscriber::with_default(builder.finish(), log_everything);
        }
        let text = out.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn lines_are_as_the_default_format_writes_them() {
        let (ours, theirs) = (logged(true), logged(false));
        assert!(ours.contains(r#"method="plain""#), "{ours}");
        assert!(ours.contains(r#"request_id="quote\"d""#), "{ours}");
        assert!(ours.contains("error.sources=[inner"), "{ours}");
        // Fifteen events; one message ends in a new line.
        assert_eq!(ours.lines().count(), 16, "{ours}");
        assert!(ours.contains(" latency_ms=1.25 "), "{ours}");
        assert!(ours.contains(" c=0.001 d=1e-7 e=1e16 f=inf"), "{ours}");
        assert!(ours.contains(" type=\"t\" a=\"b\" c=1\n"), "{ours}");
        assert_eq!(ours, theirs);
    }

    #[test]
    fn time_is_written_as_the_default_clock_writes_it() {
        let mut ours = String::new();
        Time.format_time(&mut Writer::new(&mut ours)).unwrap();
        let mut theirs = String::new();
        tracing_subscriber::fmt::time::SystemTime
            .format_time(&mut Writer::new(&mut theirs))
            .unwrap();
        assert_eq!(ours.len(), theirs.len(), "{ours} {theirs}");
        // The same second (or the next, across a tick) and form.
        let (a, b) = (
            crate::time::Timestamp::parse_rfc3339(&ours).unwrap(),
            crate::time::Timestamp::parse_rfc3339(&theirs).unwrap(),
        );
        assert!(
            b.since(a) < std::time::Duration::from_secs(1),
            "{ours} {theirs}"
        );
        assert_eq!(ours.as_bytes()[ours.len() - 8], b'.');
    }
}
