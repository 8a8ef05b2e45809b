//! Structured logs that never carry a secret.
//!
//! Every formatted log line passes through the standard redactor before it is written, as a last
//! line of defence behind the redaction the activities already do. `AE_LOG_FORMAT=json` switches
//! to JSON lines; `RUST_LOG` filters as usual (default `info`).

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
        let _ = io::stderr().write_all(redact(&text).as_bytes());
    }
}
