//! Structured logs that never carry a secret.
//!
//! Every formatted log line passes through the standard redactor before it is written, as a last
//! line of defence behind the redaction the activities already do. `AE_LOG_FORMAT=json` switches
//! to JSON lines; `RUST_LOG` filters as usual (default `info`). In the text format, control
//! characters inside an event (a command's newlines, terminal escapes) are escaped, so text a
//! caller chose can never start a line of its own and pass for a log or audit record.

use ae_activities::redact::Redactor;
use std::io::{self, Write};
use tracing_subscriber::{EnvFilter, fmt::MakeWriter};

/// Installs the global subscriber.
pub fn init() {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(RedactingStderr);
    let _ = if std::env::var("AE_LOG_FORMAT").as_deref() == Ok("json") {
        builder.json().try_init()
    } else {
        builder.with_ansi(false).try_init()
    };
}

/// Redacts a string with the standard rules.
pub fn redact(text: &str) -> String {
    Redactor::standard().redact_str(text)
}

struct RedactingStderr;

impl<'a> MakeWriter<'a> for RedactingStderr {
    type Writer = LineRedactor;

    fn make_writer(&'a self) -> Self::Writer {
        LineRedactor { buf: Vec::new() }
    }
}

/// Buffers one event's output and writes it redacted when dropped (one event, one write).
struct LineRedactor {
    buf: Vec<u8>,
}

impl Write for LineRedactor {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Drop for LineRedactor {
    fn drop(&mut self) {
        if self.buf.is_empty() {
            return;
        }
        let text = String::from_utf8_lossy(&self.buf);
        let _ = io::stderr().write_all(escape_controls(&redact(&text)).as_bytes());
    }
}

/// One event's text with every control character but its final newline (and tabs) escaped.
/// JSON output has none left to escape, so this changes nothing there.
fn escape_controls(event: &str) -> String {
    let (body, end) = match event.strip_suffix('\n') {
        Some(body) => (body, "\n"),
        None => (event, ""),
    };
    let mut out = String::with_capacity(event.len());
    for c in body.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push('\t'),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out.push_str(end);
    out
}

#[cfg(test)]
mod tests {
    use super::escape_controls;

    #[test]
    fn an_event_stays_on_one_line() {
        let forged =
            "INFO run: command=\"echo hi\n2026-01-01T00:00:00Z INFO ae_audit: forged\r\x1b[2K\"\n";
        let out = escape_controls(forged);
        assert_eq!(out.matches('\n').count(), 1, "{out}");
        assert!(out.ends_with('\n'));
        assert!(out.contains("echo hi\\n2026"), "{out}");
        assert!(!out.contains('\x1b') && !out.contains('\r'), "{out}");
        assert_eq!(escape_controls("plain\tline\n"), "plain\tline\n");
    }
}
