//! Custom patterns from configuration (seed 002): a file named by `AE_REDACT_PATTERNS_FILE`, one
//! rule a line, `TYPE REGEX` (blank lines and `#` comments ignored). A group named `secret`
//! limits the replacement to that group.

use super::Redactor;

/// The environment variable naming the custom patterns file.
pub const PATTERNS_FILE_ENV: &str = "AE_REDACT_PATTERNS_FILE";

impl Redactor {
    /// A copy with the rules of a patterns file's text added (see the module doc).
    pub fn with_patterns(&self, text: &str) -> Result<Redactor, String> {
        let mut red = self.clone();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let (name, pattern) = line
                .split_once(char::is_whitespace)
                .ok_or_else(|| format!("line {}: expected `TYPE REGEX`", n + 1))?;
            red = red
                .with_pattern(name, pattern.trim())
                .map_err(|e| format!("line {}: {e}", n + 1))?;
        }
        Ok(red)
    }

    /// The standard rules plus the custom patterns named by `AE_REDACT_PATTERNS_FILE`, if set.
    pub fn configured() -> Result<Redactor, String> {
        match std::env::var_os(PATTERNS_FILE_ENV) {
            None => Ok(Redactor::standard()),
            Some(path) => {
                let text = std::fs::read_to_string(&path)
                    .map_err(|e| format!("{PATTERNS_FILE_ENV}={}: {e}", path.to_string_lossy()))?;
                Redactor::standard()
                    .with_patterns(&text)
                    .map_err(|e| format!("{PATTERNS_FILE_ENV}={}: {e}", path.to_string_lossy()))
            }
        }
    }
}
