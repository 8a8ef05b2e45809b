//! The `KEY SEP value` rules (`PASSWORD`, `GENERIC_SECRET`) without their regex: the most
//! frequent candidates of key=value-dense text, found by hand.
//!
//! The regex is `[A-Za-z0-9_.-]*(?i:ALT)[A-Za-z0-9_.-]*` + separator + value (see `rules`). Its
//! key can only be a run of identifier bytes ending where the separator part begins, so the
//! leftmost match is found by walking to each `=` or `:`, taking the identifier run before it by
//! hand, and testing `ALT` on that run only (after a cheap test for the rule's keywords). Quoted
//! or escaped values go back to the regex, from the key's start. Debug builds compare every
//! answer with the regex.

use aho_corasick::{AhoCorasick, AhoCorasickKind};
use regex::bytes::{Regex, RegexBuilder};

/// The hand scanner of one `KEY SEP value` rule.
#[derive(Clone)]
pub(crate) struct KeySepValue {
    /// `(?i:ALT)`, run on a key only.
    alt: Regex,
    /// The rule's keywords, case-insensitive: every `ALT` match contains one.
    words: AhoCorasick,
    /// Per keyword: it is an `ALT` match by itself (`secret`, `pass`), so a key containing it
    /// needs no regex.
    sufficient: Vec<bool>,
    /// Minimum value length.
    min: usize,
}

/// The next match from a position.
pub(crate) enum Kv {
    /// `(start, end, secret start, secret end)`.
    Found(usize, usize, usize, usize),
    /// A match may start at this key start but its value begins with a backslash: ask the
    /// regex.
    Regex(usize),
    /// No match at all.
    None,
}

fn key_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-')
}

/// `\s` of the regex (ASCII, with vertical tab and form feed).
fn space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0B' | b'\x0C' | b'\r')
}

impl KeySepValue {
    pub(crate) fn new(alt: &str, keywords: &[&str], min: usize) -> KeySepValue {
        let alt = RegexBuilder::new(alt)
            .unicode(false)
            .build()
            .expect("key alternation");
        KeySepValue {
            sufficient: keywords
                .iter()
                .map(|k| {
                    // Every case variant of the keyword matches by itself.
                    alt.is_match(k.as_bytes())
                        && alt.is_match(k.to_ascii_uppercase().as_bytes())
                        && alt.is_match(k.to_ascii_lowercase().as_bytes())
                })
                .collect(),
            alt,
            words: AhoCorasick::builder()
                .ascii_case_insensitive(true)
                .kind(Some(AhoCorasickKind::DFA))
                .build(keywords)
                .expect("key words"),
            min,
        }
    }

    /// The leftmost match in `hay` starting at or after `pos`.
    pub(crate) fn find(&self, hay: &[u8], pos: usize) -> Kv {
        let mut j = pos;
        while let Some(k) = memchr::memchr2(b'=', b':', &hay[j..]) {
            let sep = j + k;
            j = sep + 1;
            // `?=` begins at the `?`.
            let sep_start = if hay[sep] == b'=' && sep > pos && hay[sep - 1] == b'?' {
                sep - 1
            } else {
                sep
            };
            // Back over blanks, then an optional (escaped) closing quote, to the key's end.
            let mut b = sep_start;
            while b > pos && matches!(hay[b - 1], b' ' | b'\t') {
                b -= 1;
            }
            if b > pos && matches!(hay[b - 1], b'"' | b'\'' | b'`') {
                b -= 1;
                if b > pos && hay[b - 1] == b'\\' {
                    b -= 1;
                }
            }
            let mut a = b;
            while a > pos && key_byte(hay[a - 1]) {
                a -= 1;
            }
            if a == b || !self.key_matches(&hay[a..b]) {
                continue;
            }
            // The separator (`:=`, `=>`, `?=` before `:` and `=`), blanks, the value.
            let mut v = match (hay[sep_start], hay.get(sep_start + 1)) {
                (b':', Some(b'=')) | (b'=', Some(b'>')) | (b'?', _) => sep_start + 2,
                _ => sep_start + 1,
            };
            while v < hay.len() && matches!(hay[v], b' ' | b'\t') {
                v += 1;
            }
            let Some(&first) = hay.get(v) else { continue };
            let found = match first {
                b'\\' => return Kv::Regex(a),
                b'"' | b'\'' => self.quoted_value(hay, v + 1, first),
                _ => self.bare_value(hay, v).map(|end| (end, v, end)),
            };
            if let Some((end, s, e)) = found {
                return Kv::Found(a, end, s, e);
            }
        }
        Kv::None
    }

    /// Whether `ALT` matches somewhere in `key`.
    fn key_matches(&self, key: &[u8]) -> bool {
        let mut any = false;
        for m in self.words.find_overlapping_iter(key) {
            if self.sufficient[m.pattern().as_usize()] {
                debug_assert!(self.alt.is_match(key));
                return true;
            }
            any = true;
        }
        any && self.alt.is_match(key)
    }

    /// A value in quotes whose inside starts at `q`: `(match end, inside start, inside end)`.
    /// Double quotes: any byte but a quote, a backslash or a line end, or a backslash and any
    /// byte but a quote or a line end; closed by a quote or an escaped quote. Single quotes: any
    /// byte but a quote or a line end. At least `min` of those units inside.
    fn quoted_value(&self, hay: &[u8], q: usize, quote: u8) -> Option<(usize, usize, usize)> {
        let line_end = |b: u8| b == b'\r' || b == b'\n';
        let (mut i, mut units) = (q, 0);
        loop {
            let &c = hay.get(i)?;
            if c == quote {
                return (units >= self.min).then_some((i + 1, q, i));
            }
            if line_end(c) {
                return None;
            }
            if quote == b'"' && c == b'\\' {
                match hay.get(i + 1) {
                    Some(b'"') => return (units >= self.min).then_some((i + 2, q, i)),
                    Some(&n) if !line_end(n) => i += 2,
                    _ => return None,
                }
            } else {
                i += 1;
            }
            units += 1;
        }
    }

    /// The end of a bare value at `v` (an existing marker and what follows it, or a run of value
    /// bytes at least `min` long), if there is one.
    fn bare_value(&self, hay: &[u8], v: usize) -> Option<usize> {
        const MARKER: &[u8] = b"[REDACTED:";
        let rest = &hay[v..];
        if rest.starts_with(MARKER) {
            let n = rest[MARKER.len()..]
                .iter()
                .take_while(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || **b == b'_')
                .count();
            let close = MARKER.len() + n;
            if n > 0 && rest.get(close) == Some(&b']') {
                let tail = rest[close + 1..]
                    .iter()
                    .take_while(|&&b| {
                        !space(b) && !matches!(b, b'&' | b';' | b',' | b'"' | b'\'' | b'<' | b'>')
                    })
                    .count();
                return Some(v + close + 1 + tail);
            }
            return None;
        }
        let stop =
            |b: u8| space(b) || matches!(b, b'&' | b';' | b',' | b'"' | b'\'' | b'`' | b'<' | b'>');
        if stop(rest[0]) || matches!(rest[0], b'[' | b'{' | b'=' | b'(' | b')') {
            return None;
        }
        let n = 1 + rest[1..].iter().take_while(|&&b| !stop(b)).count();
        (n >= self.min).then_some(v + n)
    }
}
