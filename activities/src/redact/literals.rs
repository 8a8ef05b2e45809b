//! Known secret values (a command's `env`): which values to hide, and the encoded forms they
//! may appear in (base64 at every alignment, URL-encoded, hex, JSON-escaped).

use aho_corasick::{AhoCorasick, AhoCorasickKind, MatchKind};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD_NO_PAD, URL_SAFE_NO_PAD};

/// Values shorter than this (after trimming) are ignored: redacting every `a` or `42` would
/// destroy the output without protecting anything.
pub(crate) const MIN_LITERAL_LEN: usize = 3;

/// Encoded forms are only searched for values at least this long (shorter encodings would
/// match by chance).
const MIN_ENCODED_VALUE: usize = 6;
/// Shortest encoded form kept.
const MIN_ENCODED_FORM: usize = 8;

/// Words and shapes that are never secrets whatever the variable's name.
fn never_secret(v: &str) -> bool {
    const WORDS: &[&str] = &[
        "true",
        "false",
        "yes",
        "no",
        "on",
        "off",
        "null",
        "none",
        "nil",
        "undefined",
        "enabled",
        "disabled",
    ];
    WORDS.iter().any(|w| v.eq_ignore_ascii_case(w))
        || v.bytes()
            .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
            && v.len() <= 10
}

/// Whether an env variable's name suggests its value is a secret.
pub(crate) fn name_suggests_secret(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "pass",
        "pwd",
        "secret",
        "token",
        "key",
        "auth",
        "cred",
        "cert",
        "private",
        "signature",
        "sig",
        "salt",
        "session",
        "cookie",
        "dsn",
        "conn",
        "url",
        "uri",
    ]
    .iter()
    .any(|k| n.contains(k))
}

/// Whether to hide `value` of the variable `name` (`None`: name unknown). Obviously non-secret
/// values are kept: booleans and numbers always; short plain words (`production`, `debug`,
/// `us-east-1`) when the name does not suggest a secret.
pub(crate) fn should_redact(name: Option<&str>, value: &str) -> bool {
    if value.len() < MIN_LITERAL_LEN || never_secret(value) {
        return false;
    }
    let secretish = name.is_none_or(name_suggests_secret);
    if secretish {
        return true;
    }
    let plain = value.len() <= 16
        && value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || matches!(b, b'-' | b'_' | b'.' | b'/'))
        || value.len() <= 24
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
            && value.bytes().filter(u8::is_ascii_digit).count() <= 2
            && !value.bytes().any(|b| b.is_ascii_uppercase());
    !plain
}

/// Every form of `v` to search for.
pub(crate) fn forms(v: &str) -> Vec<String> {
    let mut out = vec![v.to_string()];
    if v.len() < MIN_ENCODED_VALUE {
        return out;
    }
    let b = v.as_bytes();
    // Base64 (standard and URL-safe) at each of the three alignments the value can have inside
    // a larger encoded stream: encode with 0-2 filler bytes in front, keep only the characters
    // that depend on the value alone.
    for pad in 0..3usize {
        let mut buf = vec![0u8; pad];
        buf.extend_from_slice(b);
        for eng in [&STANDARD_NO_PAD, &URL_SAFE_NO_PAD] {
            let enc = eng.encode(&buf);
            // Characters fully determined by the value: skip those touching the filler, and the
            // last (partial) group's incomplete character.
            let skip = if pad == 0 { 0 } else { (pad * 8).div_ceil(6) };
            let full = (buf.len() * 8) / 6;
            if full > skip && full - skip >= MIN_ENCODED_FORM {
                out.push(enc[skip..full].to_string());
            }
        }
    }
    // URL (percent) encoding, also with `+` for spaces.
    let mut url = String::new();
    for &c in b {
        if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
            url.push(c as char);
        } else {
            url.push_str(&format!("%{c:02X}"));
        }
    }
    if url != v {
        let lower_hex: String = {
            let mut s = String::new();
            for &c in b {
                if c.is_ascii_alphanumeric() || matches!(c, b'-' | b'_' | b'.' | b'~') {
                    s.push(c as char);
                } else {
                    s.push_str(&format!("%{c:02x}"));
                }
            }
            s
        };
        out.push(lower_hex);
        out.push(url.replace("%20", "+"));
        out.push(url);
    }
    // Hex, both cases.
    let hex: String = b.iter().map(|c| format!("{c:02x}")).collect();
    out.push(hex.to_ascii_uppercase());
    out.push(hex);
    // JSON string escaping.
    let json = serde_json::to_string(v).unwrap_or_default();
    let json = json.trim_matches('"');
    if json != v {
        out.push(json.to_string());
        out.push(json.replace('/', "\\/"));
    }
    out.retain(|f| f.len() >= MIN_LITERAL_LEN);
    out.sort();
    out.dedup();
    out
}

/// The literal set of a redactor and its automaton.
#[derive(Clone, Default)]
pub(crate) struct Literals {
    pub values: Vec<String>,
    pub ac: Option<AhoCorasick>,
    /// Longest form holding a newline (0 when none does): only such a form can cross a line end.
    pub max_multiline_len: usize,
}

impl Literals {
    pub(crate) fn extended(&self, more: impl IntoIterator<Item = String>) -> Literals {
        let mut values = self.values.clone();
        for v in more {
            values.extend(forms(&v));
        }
        values.sort_unstable();
        values.dedup();
        let ac = (!values.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .kind(Some(AhoCorasickKind::DFA))
                .build(&values)
                .or_else(|_| {
                    AhoCorasick::builder()
                        .match_kind(MatchKind::Standard)
                        .build(&values)
                })
                .expect("literal set too large for aho-corasick")
        });
        let max_multiline_len = values
            .iter()
            .filter(|v| v.contains('\n'))
            .map(String::len)
            .max()
            .unwrap_or(0);
        Literals {
            values,
            ac,
            max_multiline_len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policy() {
        assert!(!should_redact(Some("NODE_ENV"), "production"));
        assert!(!should_redact(Some("DEBUG"), "true"));
        assert!(!should_redact(Some("PORT"), "8080"));
        assert!(!should_redact(Some("REGION"), "us-east-1"));
        assert!(should_redact(Some("DB_PASSWORD"), "production"));
        assert!(should_redact(
            Some("DEPLOY_TOKEN"),
            "tok-9f8e7d6c5b4a-secret"
        ));
        assert!(should_redact(Some("FOO"), "Xk9#mP2q"));
        assert!(should_redact(None, "hunter2"));
        assert!(!should_redact(None, "true"));
    }

    #[test]
    fn encoded_forms() {
        let f = forms("s3cr3t/value+1");
        assert!(f.contains(&"s3cr3t%2Fvalue%2B1".to_string()));
        assert!(f.contains(&("733363723374".to_string() + "2f76616c75652b31")));
        // Base64 of the value inside a larger message still matches one of the forms.
        let msg = base64::engine::general_purpose::STANDARD.encode(b"user:s3cr3t/value+1@x");
        assert!(
            f.iter()
                .any(|form| form.len() >= 8 && msg.contains(form.as_str())),
            "{msg}"
        );
    }
}
