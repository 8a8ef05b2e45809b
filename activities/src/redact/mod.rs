//! Secret redaction: this module owns the catalogue of secret patterns and the rewriting of text
//! so that every secret becomes `[REDACTED:<TYPE>]`.
//!
//! It does not know where text comes from (command output, logs, error messages, files) or where
//! it goes; callers hand it strings, bytes, or a stream of chunks. Keeping it source-agnostic
//! means every sink shares one rule set, so a new pattern protects all of them at once.
//!
//! - `rules`: the built-in table (≈200 typed rules over gitleaks' families), most specific first.
//! - `engine`: one pass over the rules' keywords selects candidate rules and regions; only
//!   those regexes run there; candidates resolve by priority.
//! - `keywords`: the keyword pass itself (a vector Bloom stage where the CPU has AVX-512 VBMI
//!   and GFNI, a trigram filter, then compares in place).
//! - `kv`: the `KEY SEP value` rules scanned by hand.
//! - `checks`: what keeps look-alikes (placeholders, settings, hashes) intact.
//! - `literals`: known values (env) and their base64 / URL / hex / JSON-escaped forms.
//! - `stream`: [`StreamRedactor`], redaction of output as it arrives.
//! - `custom`: custom patterns from configuration.

mod checks;
mod custom;
mod engine;
mod keywords;
mod kv;
mod literals;
mod rules;
mod stream;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::sync::{Arc, LazyLock};

pub use custom::PATTERNS_FILE_ENV;
pub use stream::StreamRedactor;

use checks::Check;
use engine::{Builtin, Cand, Frag, Rule};
use literals::Literals;

/// Type name used for literal values registered with [`Redactor::with_literals`].
const ENV_VALUE: &str = "ENV_VALUE";
const ENV_MARKER: &[u8] = b"[REDACTED:ENV_VALUE]";

static BUILTIN: LazyLock<Arc<Builtin>> = LazyLock::new(|| Arc::new(Builtin::new()));

/// Redacts secrets from text. Cloning is cheap (one `Arc`), so hand copies to every task that
/// needs one.
#[derive(Clone)]
pub struct Redactor {
    inner: Arc<Inner>,
}

struct Inner {
    literals: Literals,
    /// Custom rules, in insertion order; they run over the whole text.
    custom: Vec<Rule>,
    builtin: Arc<Builtin>,
}

/// One secret found by [`Redactor::scan`]. Deliberately holds no part of the secret, so
/// findings can be logged or shown to users safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule type, e.g. `"AWS_ACCESS_KEY"` or `"ENV_VALUE"`.
    pub type_name: String,
    /// 1-based line on which the secret starts.
    pub line: usize,
}

static STANDARD: LazyLock<Redactor> = LazyLock::new(|| Redactor {
    inner: Arc::new(Inner {
        literals: Literals::default(),
        custom: Vec::new(),
        builtin: BUILTIN.clone(),
    }),
});

/// The outcome of one engine run: fragments to replace, in text order.
pub(crate) struct Run {
    frags: Vec<Frag>,
}

impl Redactor {
    /// The built-in rules, compiled once per process; later calls are an `Arc` clone.
    pub fn standard() -> Redactor {
        STANDARD.clone()
    }

    /// Tests only: the built-in rules without the fast paths, to compare with.
    #[cfg(test)]
    pub(crate) fn slow_for_tests() -> Redactor {
        Redactor {
            inner: Arc::new(Inner {
                literals: Literals::default(),
                custom: Vec::new(),
                builtin: Arc::new(Builtin::slow()),
            }),
        }
    }

    /// The number of built-in rules.
    pub fn rule_count() -> usize {
        BUILTIN.rules.len()
    }

    /// Which first stage the keyword filter runs on this CPU: `"vector"` (x86-64 with AVX-512
    /// VBMI and GFNI) or `"scalar"` (elsewhere, or with `AE_REDACT_SCALAR` set).
    pub fn keyword_stage() -> &'static str {
        BUILTIN.keyword_stage()
    }

    /// The keywords the built-in rules' prefilter looks for, each case variant on its own:
    /// for tools that probe the engine (the redaction bench builds hostile inputs from them).
    pub fn keywords() -> Vec<String> {
        BUILTIN.keywords()
    }

    /// The distinct built-in type names.
    pub fn rule_types() -> Vec<String> {
        let mut v: Vec<String> = BUILTIN.rules.iter().map(|r| r.name.to_string()).collect();
        v.sort();
        v.dedup();
        v
    }

    /// A copy that also redacts every given literal value (known secrets, e.g. a command's env
    /// values) as `[REDACTED:ENV_VALUE]`, before any pattern, together with its base64,
    /// URL-encoded, hex and JSON-escaped forms. Values are trimmed; values shorter than 3 bytes,
    /// booleans and plain numbers are ignored. Prefer [`Redactor::with_env`] when the variable
    /// names are known: it also keeps short plain words under non-secret names.
    pub fn with_literals<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let vals: Vec<String> = values
            .into_iter()
            .map(str::trim)
            .filter(|v| literals::should_redact(None, v))
            .map(str::to_owned)
            .collect();
        self.with(|i| i.literals = i.literals.extended(vals))
    }

    /// A copy that redacts the values of these env variables (`(name, value)`), unless obviously
    /// not secret: booleans, numbers, and short plain words (`production`, `us-east-1`) under a
    /// name that does not suggest a secret (`*KEY*`, `*TOKEN*`, `*PASS*`, `*SECRET*`, ...).
    pub fn with_env<'a, K, V>(&self, vars: impl IntoIterator<Item = (K, V)>) -> Redactor
    where
        K: AsRef<str> + 'a,
        V: AsRef<str> + 'a,
    {
        let vals: Vec<String> = vars
            .into_iter()
            .filter_map(|(k, v)| {
                let v = v.as_ref().trim();
                literals::should_redact(Some(k.as_ref()), v).then(|| v.to_owned())
            })
            .collect();
        self.with(|i| i.literals = i.literals.extended(vals))
    }

    /// A copy with one extra regex rule. Custom rules run after literals and before the built-in
    /// rules (they are assumed to be specific). If the pattern has a capture group named `secret`,
    /// only that group is replaced. The type name is upper-cased and any character outside
    /// `[A-Z0-9_]` becomes `_`, so markers stay recognisable (and redaction idempotent).
    pub fn with_pattern(&self, type_name: &str, pattern: &str) -> Result<Redactor, regex::Error> {
        let mut name: String = type_name
            .chars()
            .map(|c| match c.to_ascii_uppercase() {
                c @ ('A'..='Z' | '0'..='9' | '_') => c,
                _ => '_',
            })
            .collect();
        if name.is_empty() {
            name = "CUSTOM".into();
        }
        let rule = Rule::new(&name, pattern, Check::None, false)?;
        Ok(self.with(|i| i.custom.push(rule)))
    }

    fn with(&self, f: impl FnOnce(&mut Inner)) -> Redactor {
        let mut inner = Inner {
            literals: self.inner.literals.clone(),
            custom: self.inner.custom.to_vec(),
            builtin: self.inner.builtin.clone(),
        };
        f(&mut inner);
        Redactor {
            inner: Arc::new(inner),
        }
    }

    /// A streaming redactor: push chunks as they are read, get redacted bytes back. A secret
    /// split across chunks is still caught (a window is held back across boundaries).
    pub fn stream(&self) -> StreamRedactor {
        StreamRedactor::new(self.clone())
    }

    /// Redacts all secrets. Returns the text and how many `[REDACTED:...]` markers were inserted
    /// (markers already in the input are not counted). Text without secrets comes back
    /// borrowed, as `regex`'s `replace_all` does: most output has none, and copying it would
    /// cost as much as searching it.
    pub fn redact<'a>(&self, text: &'a str) -> (Cow<'a, str>, usize) {
        let Some((out, n)) = self.rewrite(text.as_bytes(), true) else {
            return (Cow::Borrowed(text), 0);
        };
        let out = String::from_utf8(out)
            .unwrap_or_else(|e| String::from_utf8_lossy(e.as_bytes()).into_owned());
        (Cow::Owned(out), n)
    }

    /// Convenience: just the text.
    pub fn redact_str(&self, text: &str) -> String {
        self.redact(text).0.into_owned()
    }

    /// Redacts secrets in arbitrary bytes (binary files, raw output): the same rules, literals
    /// and encoded forms; non-UTF-8 bytes are kept as they are.
    pub fn redact_bytes(&self, bytes: &[u8]) -> (Vec<u8>, usize) {
        self.rewrite(bytes, false)
            .unwrap_or_else(|| (bytes.to_vec(), 0))
    }

    /// Redacts `text`; `None` when there is nothing to redact. A marker can create a match an
    /// earlier pass could not see (`]` before `sk-...` is a word boundary where a key character
    /// was not), so when a marker touches a word character the output is redacted again, up to
    /// a few passes: that is what makes redaction idempotent.
    pub(crate) fn rewrite(&self, text: &[u8], utf8: bool) -> Option<(Vec<u8>, usize)> {
        let run = self.run(text, utf8);
        if run.frags.is_empty() {
            return None;
        }
        let again = touches_word(text, &run.frags);
        let (mut out, mut n) = self.render(text, &run.frags);
        if again {
            for _ in 0..3 {
                let run = self.run(&out, utf8);
                if run.frags.is_empty() {
                    break;
                }
                let again = touches_word(&out, &run.frags);
                let (next, m) = self.render(&out, &run.frags);
                (out, n) = (next, n + m);
                if !again {
                    break;
                }
            }
        }
        Some((out, n))
    }

    /// Finds secrets without changing the text (e.g. to scan files before a deploy). Each
    /// finding has the type and 1-based line; never the secret.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        self.scan_bytes(text.as_bytes())
    }

    /// [`Redactor::scan`] for arbitrary bytes.
    pub fn scan_bytes(&self, bytes: &[u8]) -> Vec<Finding> {
        let run = self.run(bytes, false);
        let mut findings = Vec::new();
        let mut seen = std::collections::HashSet::new();
        let (mut line, mut pos) = (1, 0);
        let mut frags: Vec<&Frag> = run.frags.iter().collect();
        frags.sort_by_key(|f| f.start);
        for f in frags {
            line += memchr::memchr_iter(b'\n', &bytes[pos..f.start]).count();
            pos = f.start;
            if seen.insert(f.group) {
                findings.push(Finding {
                    type_name: self.type_of(f.prio).to_owned(),
                    line,
                });
            }
        }
        findings
    }

    fn type_of(&self, prio: u32) -> &str {
        let c = self.inner.custom.len() as u32;
        match prio {
            0 => ENV_VALUE,
            p if p <= c => &self.inner.custom[p as usize - 1].name,
            p => &self.inner.builtin.rules[(p - c - 1) as usize].name,
        }
    }

    fn marker_of(&self, prio: u32) -> &[u8] {
        let c = self.inner.custom.len() as u32;
        match prio {
            0 => ENV_MARKER,
            p if p <= c => &self.inner.custom[p as usize - 1].marker,
            p => &self.inner.builtin.rules[(p - c - 1) as usize].marker,
        }
    }

    /// Longest literal form holding a newline, for the stream window: only such a value can
    /// start on a released line and end on a held one.
    pub(crate) fn max_multiline_literal_len(&self) -> usize {
        self.inner.literals.max_multiline_len
    }

    /// Finds and resolves every secret in `text`.
    pub(crate) fn run(&self, text: &[u8], utf8: bool) -> Run {
        let mut cands: Vec<Cand> = Vec::new();
        let mut markers: Vec<(usize, usize)> = Vec::new();
        if let Some(ac) = &self.inner.literals.ac {
            // Overlapping occurrences (one value a prefix of, or overlapping, another) are
            // merged into one candidate so no fragment of either leaks.
            let mut found: Vec<(usize, usize)> = ac
                .find_overlapping_iter(text)
                .map(|m| (m.start(), m.end()))
                .collect();
            found.sort_unstable();
            let mut merged: Vec<(usize, usize)> = Vec::new();
            for (s, e) in found {
                match merged.last_mut() {
                    Some(last) if s < last.1 => last.1 = last.1.max(e),
                    _ => merged.push((s, e)),
                }
            }
            cands.extend(merged.into_iter().map(|(start, end)| Cand {
                start,
                end,
                prio: 0,
            }));
        }
        for (i, rule) in self.inner.custom.iter().enumerate() {
            rule.run_all(text, 1 + i as u32, &mut cands);
        }
        let base = 1 + self.inner.custom.len() as u32;
        self.inner
            .builtin
            .candidates(text, base, &mut cands, &mut markers);
        // Literal occurrences that touch an existing marker are not occurrences in the input.
        if !markers.is_empty() {
            cands
                .retain(|c| c.prio != 0 || !markers.iter().any(|&(s, e)| c.start < e && s < c.end));
        }
        Run {
            frags: engine::resolve(cands, &markers, text, utf8),
        }
    }

    /// Writes `text` with each fragment replaced by its marker.
    pub(crate) fn render(&self, text: &[u8], frags: &[Frag]) -> (Vec<u8>, usize) {
        let mut out = Vec::with_capacity(text.len() + frags.len() * 16);
        let mut pos = 0;
        for f in frags {
            out.extend_from_slice(&text[pos..f.start]);
            out.extend_from_slice(self.marker_of(f.prio));
            pos = f.end;
        }
        out.extend_from_slice(&text[pos..]);
        (out, frags.len())
    }
}

/// Whether a fragment borders a word or token character (so its marker may enable a new
/// match: `Bearer abc-` followed by a key block becomes a token once the block is a marker).
/// `=` and `:` are left out: they end most `KEY=value` redactions, and a marker after them
/// never starts a token.
fn touches_word(text: &[u8], frags: &[Frag]) -> bool {
    let word =
        |b: u8| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'/' | b'+' | b'~');
    frags.iter().any(|f| {
        (f.start > 0 && word(text[f.start - 1])) || (f.end < text.len() && word(text[f.end]))
    })
}
