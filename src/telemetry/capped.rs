//! The last bound on a log line: none is longer than [`MAX_LINE`] bytes
//! (docs/operations.md#logs). What the gateway logs is short by design (a
//! list of teams is counted, not listed); this catches what slips through
//! (a long error text, a field nobody bounded). A longer line is cut to its
//! head and says how many bytes it had; in JSON it stays one JSON object.
use std::io::{self, Write};

use tracing::Metadata;
use tracing_subscriber::fmt::MakeWriter;

/// The longest line the log writes, its end of line included.
pub const MAX_LINE: usize = 4096;

/// A [`MakeWriter`] whose writers cut each line longer than [`MAX_LINE`].
pub struct Capped<M> {
    inner: M,
    json: bool,
}

impl<M> Capped<M> {
    /// Over `inner`; `json`: lines are JSON objects (a cut one stays one).
    pub fn new(inner: M, json: bool) -> Self {
        Capped { inner, json }
    }
}

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Capped<M> {
    type Writer = CappedWriter<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        CappedWriter {
            inner: self.inner.make_writer(),
            json: self.json,
        }
    }

    fn make_writer_for(&'a self, meta: &Metadata<'_>) -> Self::Writer {
        CappedWriter {
            inner: self.inner.make_writer_for(meta),
            json: self.json,
        }
    }
}

/// One event's writer: the formatter hands it the whole line at once.
pub struct CappedWriter<W> {
    inner: W,
    json: bool,
}

impl<W: Write> Write for CappedWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if buf.len() <= MAX_LINE {
            self.inner.write_all(buf)?;
        } else {
            self.inner.write_all(cut(buf, self.json).as_bytes())?;
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// `line` cut to at most [`MAX_LINE`] bytes: its head, and how long it was.
fn cut(line: &[u8], json: bool) -> String {
    let text = String::from_utf8_lossy(line);
    let mut keep = MAX_LINE - 128;
    loop {
        let head = head(&text, keep);
        let out = if json {
            let head = serde_json::Value::String(head.to_owned());
            format!(
                "{{\"level\":\"WARN\",\"message\":\"log line cut\",\"bytes\":{},\"head\":{head}}}\n",
                line.len()
            )
        } else {
            format!("{head} …[log line cut: {} bytes]\n", line.len())
        };
        if out.len() <= MAX_LINE || keep == 0 {
            return out;
        }
        keep /= 2;
    }
}

/// The first `at most` bytes of `text`, on a character's boundary, without
/// its end of line.
fn head(text: &str, at_most: usize) -> &str {
    let mut end = at_most.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    text[..end].trim_end_matches('\n')
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    #[derive(Clone, Default)]
    struct Buffer(Arc<Mutex<Vec<u8>>>);

    impl Write for Buffer {
        fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> io::Result<()> {
            Ok(())
        }
    }

    fn logged(json: bool) -> String {
        let out = Buffer::default();
        let writer = out.clone();
        let capped = Capped::new(move || writer.clone(), json);
        let builder = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(capped);
        let log = || {
            let long = "t-ü\"".repeat(20_000);
            tracing::warn!(teams = %long, "a line too long");
            tracing::info!(teams = 3, "a short line");
        };
        if json {
            tracing::subscriber::with_default(builder.json().finish(), log);
        } else {
            tracing::subscriber::with_default(builder.finish(), log);
        }
        let text = out.0.lock().unwrap().clone();
        String::from_utf8(text).unwrap()
    }

    #[test]
    fn no_line_is_longer_than_4_kib_and_a_cut_one_says_so() {
        for json in [false, true] {
            let out = logged(json);
            let lines: Vec<&str> = out.lines().collect();
            assert_eq!(lines.len(), 2, "{out}");
            for line in &lines {
                assert!(line.len() < MAX_LINE, "{} bytes", line.len());
            }
            assert!(lines[0].contains("log line cut"), "{}", lines[0]);
            assert!(lines[0].contains("a line too long") || json, "{}", lines[0]);
            assert!(lines[1].contains("a short line"), "{}", lines[1]);
            if json {
                let cut: serde_json::Value = serde_json::from_str(lines[0]).unwrap();
                assert!(cut["bytes"].as_u64().unwrap() > 80_000);
                assert!(cut["head"].as_str().unwrap().starts_with('{'));
                let short: serde_json::Value = serde_json::from_str(lines[1]).unwrap();
                assert_eq!(short["fields"]["teams"], 3);
            }
        }
    }
}
