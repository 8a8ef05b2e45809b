// The redaction engine as it was before issue 11 (commit a5b70cc), kept only so the bench can
// measure it beside the new one in the same run.
#![allow(dead_code, clippy::all)]
//! Secret redaction: this module owns the catalogue of secret patterns and the
//! rewriting of text so that every secret becomes `[REDACTED:<TYPE>]`.
//!
//! It does not know where text comes from (command output, logs, error messages)
//! or where it goes; callers hand it strings. Keeping it source-agnostic means
//! every sink shares one rule set, so a new pattern protects all of them at once.

use std::borrow::Cow;
use std::collections::HashSet;
use std::sync::{Arc, LazyLock};

use aho_corasick::{AhoCorasick, MatchKind};
use regex::Regex;

/// Type name used for literal values registered with [`Redactor::with_literals`].
const ENV_VALUE: &str = "ENV_VALUE";
const ENV_MARKER: &str = "[REDACTED:ENV_VALUE]";

/// Literals shorter than this (after trimming) are ignored: redacting every `a`
/// or `42` in the output would destroy it without protecting anything.
const MIN_LITERAL_LEN: usize = 3;

/// Capture-group names that mark "the secret part" of a match. When a rule has
/// one of them, only that group is replaced, so keys like `password=` stay
/// visible and the output remains debuggable.
const SECRET_GROUPS: [&str; 5] = ["secret", "s", "dq", "sq", "u"];

/// A marker this module produced. Text inside markers is never redacted again,
/// which is what makes `redact` idempotent.
static MARKER: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\[REDACTED:[A-Z0-9_]+\]").expect("marker regex"));

/// Extra check run on a candidate match: `(whole_match, secret_part) -> keep?`.
/// Regexes cannot express "contains a digit" or "is not `true`" cheaply, and
/// these checks are what keep prose and config flags from being mangled.
type Check = fn(&str, &str) -> bool;

#[derive(Clone)]
struct Rule {
    name: Arc<str>,
    marker: Arc<str>,
    re: Regex,
    check: Option<Check>,
    /// Whether `re` has a secret capture group; if not, the cheaper `find_iter` is used.
    captures: bool,
}

impl Rule {
    fn new(name: &str, pattern: &str, check: Option<Check>) -> Result<Rule, regex::Error> {
        let re = Regex::new(pattern)?;
        let captures = re
            .capture_names()
            .flatten()
            .any(|n| SECRET_GROUPS.contains(&n));
        Ok(Rule {
            marker: marker_for(name),
            name: name.into(),
            re,
            check,
            captures,
        })
    }

    /// Byte ranges of the secrets this rule finds in `text`, sorted and disjoint.
    fn hits(&self, text: &str) -> Vec<(usize, usize)> {
        let keep = |whole: &str, secret: &str| {
            !secret.is_empty() && self.check.is_none_or(|check| check(whole, secret))
        };
        if !self.captures {
            return self
                .re
                .find_iter(text)
                .filter(|m| keep(m.as_str(), m.as_str()))
                .map(|m| (m.start(), m.end()))
                .collect();
        }
        let mut hits = Vec::new();
        for caps in self.re.captures_iter(text) {
            let whole = caps.get(0).expect("group 0 always participates");
            let secret = SECRET_GROUPS
                .iter()
                .find_map(|n| caps.name(n))
                .unwrap_or(whole);
            if keep(whole.as_str(), secret.as_str()) {
                hits.push((secret.start(), secret.end()));
            }
        }
        hits
    }
}

fn marker_for(name: &str) -> Arc<str> {
    format!("[REDACTED:{name}]").into()
}

/// Redacts secrets from text. Cloning is cheap (one `Arc`), so hand copies to
/// every task that needs one.
#[derive(Clone)]
pub struct Redactor {
    inner: Arc<Inner>,
}

struct Inner {
    literals: Vec<String>,
    matcher: Option<AhoCorasick>,
    /// Custom rules first (in insertion order), then the built-in rules.
    rules: Vec<Rule>,
    n_custom: usize,
}

/// One secret found by [`Redactor::scan`]. Deliberately holds no part of the
/// secret, so findings can be logged or shown to users safely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// The rule type, e.g. `"AWS_ACCESS_KEY"` or `"ENV_VALUE"`.
    pub type_name: String,
    /// 1-based line on which the secret starts.
    pub line: usize,
}

/// A marker present in the text being rewritten.
struct Mark {
    start: usize,
    end: usize,
    /// Index into the stage list (0 = literals, i + 1 = rule i), or `PRE` for a
    /// marker that was already in the input.
    stage: usize,
    /// Which match produced it: one match may be split into several markers
    /// around markers that were already there.
    group: usize,
    /// Newlines the marker replaced, so `scan` can map back to input lines.
    newlines: usize,
}

const PRE: usize = usize::MAX;

/// Upper bound on redaction passes over one text (see `Redactor::run`).
const MAX_PASSES: usize = 4;

/// Checks for the built-in rules.
fn has_digit(_: &str, s: &str) -> bool {
    s.bytes().any(|b| b.is_ascii_digit())
}

/// "Bearer authentication" is prose; real tokens have digits or punctuation,
/// or are long.
fn bearer_ok(_: &str, s: &str) -> bool {
    s.len() >= 20 || s.bytes().any(|b| !b.is_ascii_alphabetic())
}

/// Values that are config flags or placeholders, not secrets.
fn plausible_value(s: &str) -> bool {
    const NOT_SECRETS: [&str; 8] = [
        "true",
        "false",
        "null",
        "none",
        "nil",
        "undefined",
        "yes",
        "no",
    ];
    !s.bytes().all(|b| b == b'*') && !NOT_SECRETS.iter().any(|n| s.eq_ignore_ascii_case(n))
}

/// The key of a `key=value` match: its leading identifier characters.
fn key_of(whole: &str) -> String {
    let end = whole
        .find(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
        .unwrap_or(whole.len());
    whole[..end].to_ascii_lowercase()
}

/// `pass` and `pwd` only count as whole key segments (`DB_PASS`, not `bypass`),
/// and `PWD=/home/me` from an env dump is a directory, not a password.
fn password_ok(whole: &str, s: &str) -> bool {
    let key = key_of(whole);
    if !plausible_value(s) {
        return false;
    }
    if ["password", "passwd", "passphrase"]
        .iter()
        .any(|k| key.contains(k))
    {
        return true;
    }
    let mut segments = key.split(['_', '.', '-']);
    segments.any(|seg| seg == "pass" || (seg == "pwd" && !s.starts_with(['/', '~'])))
}

/// Token counters (`total_tokens: 123456789`) and `tokenizer:` settings are
/// common in logs and are not secrets.
fn generic_ok(whole: &str, s: &str) -> bool {
    !key_of(whole).contains("tokeniz")
        && !s.bytes().all(|b| b.is_ascii_digit())
        && plausible_value(s)
}

/// Separator between a key and its value: `=`, `:`, `:=`, `=>`, with an optional
/// closing quote on the key and an optional opening quote on the value. Only
/// spaces and tabs are skipped so a `Password:` prompt never eats the next line.
const SEP: &str = r#"["']?[ \t]*(?::=|=>|[:=])[ \t]*"#;

/// A value after [`SEP`]: quoted (the inside is the secret) or bare up to
/// whitespace, `&`, `;` or `,`. A bare value may not start with `[` or `{`
/// (a nested structure) or `=` (`password == x`), except that it may start with
/// an existing marker: then whatever follows the marker is still redacted
/// (`api_key=<github token>.tail` must not leak `.tail`).
fn value(min: usize) -> String {
    let rest = min.saturating_sub(1);
    format!(
        r#"(?:"(?P<dq>[^"\r\n]{{{min},}})"|'(?P<sq>[^'\r\n]{{{min},}})'|(?P<u>\[REDACTED:[A-Z0-9_]+\][^\s&;,]*|[^\s&;,"'\[{{=][^\s&;,]{{{rest},}}))"#
    )
}

fn builtin_rules() -> Vec<Rule> {
    // Order is priority: each rule runs on the output of the ones before it, and
    // never touches existing markers. Specific formats therefore win over the
    // key-based catch-alls, and the type reported is the most precise one.
    let key = r"[A-Za-z0-9_.-]*";
    let password = format!(r"{key}(?i:pass|pwd){key}{SEP}{}", value(1));
    let generic = format!(
        r"{key}(?i:api[_-]?key|secret|token|access[_-]?key|private[_-]?key){key}{SEP}{}",
        value(8)
    );
    let aws_secret = format!(
        r#"(?i:{key}(?:aws{key}secret|secret{key}access){key}){SEP}["']?(?P<s>[A-Za-z0-9/+=]{{40}})(?:[^A-Za-z0-9/+=]|\z)"#
    );
    let specs: Vec<(&str, String, Option<Check>)> = vec![
        // Through the END line, or through the end of the text when a stream was
        // cut: a truncated key body must not leak.
        (
            "PRIVATE_KEY",
            r"(?s)-----BEGIN[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----.*?(?:-----END[ A-Z0-9]*PRIVATE KEY(?: BLOCK)?-----|\z)".into(),
            None,
        ),
        // Before OpenAI, which would also match `sk-ant-...`.
        ("ANTHROPIC_API_KEY", r"sk-ant-[A-Za-z0-9_-]{20,}".into(), None),
        // Long form (`sk-proj-...`), or short `sk-` + 10 alphanumerics; a digit
        // is required so kebab-case names like `sk-learn-some-module` survive.
        (
            "OPENAI_API_KEY",
            r"(?-u:\b)sk-(?:[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{10,}(?-u:\b))".into(),
            Some(has_digit),
        ),
        (
            "AWS_ACCESS_KEY",
            r"(?-u:\b)(?:AKIA|ASIA|AGPA|AIDA|AROA|ANPA|ANVA|AIPA)[0-9A-Z]{16}(?-u:\b)".into(),
            None,
        ),
        ("AWS_SECRET_KEY", aws_secret, None),
        ("GOOGLE_API_KEY", r"AIza[0-9A-Za-z_-]{35}".into(), None),
        (
            "GITHUB_TOKEN",
            r"(?-u:\b)(?:gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{22,})".into(),
            None,
        ),
        (
            "STRIPE_KEY",
            r"(?-u:\b)(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{16,}".into(),
            None,
        ),
        // Tokens, and webhook URLs (the path is the secret; the host stays).
        (
            "SLACK_TOKEN",
            r"(?-u:\b)xox[abposr]-[0-9A-Za-z-]{10,}|https://hooks\.slack\.com/services/(?P<s>[A-Za-z0-9_/-]{8,})".into(),
            None,
        ),
        (
            "JWT",
            r"(?-u:\b)eyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{5,}".into(),
            None,
        ),
        // `scheme://user:password@host`; the colon is required so `user@host`
        // and `ssh://git@host:22` are left alone.
        (
            "URL_CREDENTIALS",
            r#"(?-u:\b)[A-Za-z][A-Za-z0-9+.-]*://(?P<s>[^\s:/?#@\[\]"'<>]*:[^\s/?#\[\]"'<>]+)@"#
                .into(),
            None,
        ),
        // `Authorization: Basic <b64>` is its own type; a bare "Basic word" is
        // too common in prose to match without the header name.
        (
            "BASIC_AUTH",
            format!(r#"(?i:authorization){SEP}["']?(?i:basic)[ \t]+(?P<s>[A-Za-z0-9+/=]{{6,}})"#),
            None,
        ),
        (
            "BEARER_TOKEN",
            r"(?-u:\b)(?i:bearer)[ \t]+(?P<s>[A-Za-z0-9._~+/=-]{8,})".into(),
            Some(bearer_ok),
        ),
        ("PASSWORD", password, Some(password_ok)),
        ("GENERIC_SECRET", generic, Some(generic_ok)),
    ];
    specs
        .into_iter()
        .map(|(name, pattern, check)| {
            Rule::new(name, &pattern, check).expect("built-in redaction rule must compile")
        })
        .collect()
}

static STANDARD: LazyLock<Redactor> = LazyLock::new(|| Redactor {
    inner: Arc::new(Inner {
        literals: Vec::new(),
        matcher: None,
        rules: builtin_rules(),
        n_custom: 0,
    }),
});

impl Redactor {
    /// The built-in rules, compiled once per process; later calls are an `Arc` clone.
    pub fn standard() -> Redactor {
        STANDARD.clone()
    }

    /// A copy that also redacts every given literal value (e.g. the values of a
    /// command's env vars) as `[REDACTED:ENV_VALUE]`, before any pattern, since
    /// they are known secrets. Values are trimmed; those shorter than 3 bytes are
    /// ignored. One Aho-Corasick pass handles any number of values; overlapping
    /// occurrences (one value a prefix of, or overlapping, another) are merged
    /// into one marker so no fragment of either leaks.
    pub fn with_literals<'a>(&self, values: impl IntoIterator<Item = &'a str>) -> Redactor {
        let mut literals = self.inner.literals.clone();
        literals.extend(
            values
                .into_iter()
                .map(str::trim)
                .filter(|v| v.len() >= MIN_LITERAL_LEN)
                .map(str::to_owned),
        );
        literals.sort_unstable();
        literals.dedup();
        let matcher = (!literals.is_empty()).then(|| {
            AhoCorasick::builder()
                .match_kind(MatchKind::Standard)
                .build(&literals)
                .expect("literal set too large for aho-corasick")
        });
        self.rebuild(
            literals,
            matcher,
            self.inner.rules.clone(),
            self.inner.n_custom,
        )
    }

    /// A copy with one extra regex rule. Custom rules run after literals and
    /// before the built-in rules (they are assumed to be specific). If the pattern
    /// has a capture group named `secret`, only that group is replaced. The type
    /// name is upper-cased and any character outside `[A-Z0-9_]` becomes `_`, so
    /// markers stay recognisable (and redaction idempotent).
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
        let rule = Rule::new(&name, pattern, None)?;
        let mut rules = self.inner.rules.clone();
        rules.insert(self.inner.n_custom, rule);
        let matcher = self.inner.matcher.clone();
        Ok(self.rebuild(
            self.inner.literals.clone(),
            matcher,
            rules,
            self.inner.n_custom + 1,
        ))
    }

    fn rebuild(
        &self,
        literals: Vec<String>,
        matcher: Option<AhoCorasick>,
        rules: Vec<Rule>,
        n_custom: usize,
    ) -> Redactor {
        Redactor {
            inner: Arc::new(Inner {
                literals,
                matcher,
                rules,
                n_custom,
            }),
        }
    }

    /// Redacts all secrets. Returns the text and how many `[REDACTED:...]`
    /// markers were inserted (markers already in the input are not counted).
    pub fn redact(&self, text: &str) -> (String, usize) {
        let (out, marks) = self.run(text);
        let count = marks.iter().filter(|m| m.stage != PRE).count();
        (out.into_owned(), count)
    }

    /// Convenience: just the text.
    pub fn redact_str(&self, text: &str) -> String {
        self.redact(text).0
    }

    /// Finds secrets without changing the text (e.g. to scan files before a
    /// deploy). Each finding has the type and 1-based line; never the secret.
    pub fn scan(&self, text: &str) -> Vec<Finding> {
        let (out, marks) = self.run(text);
        let mut findings = Vec::new();
        let mut seen = HashSet::new();
        let (mut line, mut pos) = (1, 0);
        for m in &marks {
            line += count_newlines(&out[pos..m.start]);
            pos = m.end;
            if m.stage != PRE && seen.insert(m.group) {
                findings.push(Finding {
                    type_name: self.stage_name(m.stage).to_owned(),
                    line,
                });
            }
            line += m.newlines;
        }
        findings
    }

    fn stage_name(&self, stage: usize) -> &str {
        match stage {
            0 => ENV_VALUE,
            i => &self.inner.rules[i - 1].name,
        }
    }

    /// Runs every stage in priority order. Each stage sees the output of the
    /// previous ones, so a rule never re-matches a secret that an earlier rule
    /// already replaced. Text is only copied when a stage finds something.
    fn run<'t>(&self, text: &'t str) -> (Cow<'t, str>, Vec<Mark>) {
        let mut cur = Cow::Borrowed(text);
        let mut marks: Vec<Mark> = MARKER
            .find_iter(text)
            .map(|m| Mark {
                start: m.start(),
                end: m.end(),
                stage: PRE,
                group: PRE,
                newlines: 0,
            })
            .collect();
        let mut groups = 0;
        // A marker can enable a match an earlier stage could not see (e.g. `]`
        // before `sk-...` is a word boundary where a key character was not), so
        // repeat until nothing changes; that is what makes `redact` idempotent.
        // Non-marker text shrinks every pass, and in practice the second pass
        // finds nothing; the cap only bounds adversarial input.
        for _ in 0..MAX_PASSES {
            let mut changed = false;
            if let Some(ac) = &self.inner.matcher {
                // Occurrences touching a marker are not occurrences of the value in
                // the input. Overlapping occurrences are merged into one hit.
                let mut found: Vec<(usize, usize)> = ac
                    .find_overlapping_iter(cur.as_ref())
                    .map(|m| (m.start(), m.end()))
                    .filter(|&(s, e)| !overlaps_mark(&marks, s, e))
                    .collect();
                found.sort_unstable();
                let mut hits: Vec<(usize, usize)> = Vec::with_capacity(found.len());
                for (s, e) in found {
                    match hits.last_mut() {
                        Some(last) if s < last.1 => last.1 = last.1.max(e),
                        _ => hits.push((s, e)),
                    }
                }
                if let Some(next) = apply(&cur, &marks, &hits, 0, ENV_MARKER, &mut groups) {
                    (cur, marks) = (Cow::Owned(next.0), next.1);
                    changed = true;
                }
            }
            for (i, rule) in self.inner.rules.iter().enumerate() {
                let hits = rule.hits(&cur);
                if let Some(next) = apply(&cur, &marks, &hits, i + 1, &rule.marker, &mut groups) {
                    (cur, marks) = (Cow::Owned(next.0), next.1);
                    changed = true;
                }
            }
            if !changed {
                break;
            }
        }
        (cur, marks)
    }
}

fn overlaps_mark(marks: &[Mark], s: usize, e: usize) -> bool {
    let i = marks.partition_point(|m| m.end <= s);
    marks.get(i).is_some_and(|m| m.start < e)
}

fn count_newlines(s: &str) -> usize {
    s.bytes().filter(|&b| b == b'\n').count()
}

/// Replaces each hit (minus any existing markers inside it) with `marker`.
/// Existing markers are kept verbatim, which is what prevents nested output
/// like `[REDACTED:[REDACTED:...]]`. Returns `None` (and allocates nothing)
/// when there is nothing new to replace.
fn apply(
    cur: &str,
    marks: &[Mark],
    hits: &[(usize, usize)],
    stage: usize,
    marker: &str,
    groups: &mut usize,
) -> Option<(String, Vec<Mark>)> {
    // New fragments: each hit with the existing markers cut out.
    let mut frags: Vec<(usize, usize, usize)> = Vec::new();
    for &(s, e) in hits {
        let group = *groups;
        *groups += 1;
        let mut from = s;
        let mut j = marks.partition_point(|m| m.end <= s);
        while let Some(m) = marks.get(j).filter(|m| m.start < e) {
            if m.start > from {
                frags.push((from, m.start, group));
            }
            from = from.max(m.end);
            j += 1;
        }
        if from < e {
            frags.push((from, e, group));
        }
    }

    if frags.is_empty() {
        return None;
    }
    let mut out = String::with_capacity(cur.len());
    let mut new_marks = Vec::with_capacity(marks.len() + frags.len());
    let (mut pos, mut a, mut b) = (0, 0, 0);
    loop {
        let take_old = match (marks.get(a), frags.get(b)) {
            (None, None) => break,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (Some(m), Some(f)) => m.start < f.0,
        };
        if take_old {
            let m = &marks[a];
            out.push_str(&cur[pos..m.start]);
            let start = out.len();
            out.push_str(&cur[m.start..m.end]);
            new_marks.push(Mark {
                start,
                end: out.len(),
                stage: m.stage,
                group: m.group,
                newlines: m.newlines,
            });
            pos = m.end;
            a += 1;
        } else {
            let (s, e, group) = frags[b];
            out.push_str(&cur[pos..s]);
            let start = out.len();
            out.push_str(marker);
            new_marks.push(Mark {
                start,
                end: out.len(),
                stage,
                group,
                newlines: count_newlines(&cur[s..e]),
            });
            pos = e;
            b += 1;
        }
    }
    out.push_str(&cur[pos..]);
    Some((out, new_marks))
}
