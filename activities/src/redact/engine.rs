//! The matching engine: one pass over every rule's keywords (`keywords`) selects candidate rules
//! and regions (windows around each keyword hit, within its line), only those rules' regexes
//! (or, for `KEY SEP value` rules, the hand scanner in `kv`) run there, and overlapping
//! candidates are resolved by priority into disjoint fragments. Every step is linear in the
//! input: the keyword pass is one filter step per byte, windows are bounded and merged per rule,
//! and the `regex` crate's searches and the hand scanner are linear.

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::bytes::{CaptureLocations, Regex, RegexBuilder};

use super::checks::Check;
use super::keywords::Keywords;
use super::kv::{KeySepValue, Kv};
use super::rules::{Spec, multiline_specs, specs};

/// Bytes before a keyword a match may start (the key before `_PASSWORD`, a scheme before `://`).
const BACK: usize = 256;
/// Bytes after a keyword a single-line match may reach before it is extended to the end of its
/// run of non-space bytes (so a cut never leaks a token's tail).
const FWD: usize = 4096;
/// Windows of one rule closer than this are searched as one. Zero: only windows that touch
/// (a wider gap made keyword-only rules scan nearly all of key=value-dense text).
const MERGE_GAP: usize = 0;
/// How far a multi-line rule (a private key block) may reach.
pub(crate) const MULTILINE_FWD: usize = 1 << 20;

/// Capture-group names that mark "the secret part" of a match.
const SECRET_GROUPS: [&str; 5] = ["secret", "s", "dq", "sq", "u"];

/// The prefix of a marker this module produced; text inside markers is never redacted again.
const MARKER_KEYWORD: &str = "[REDACTED:";

#[derive(Clone)]
pub(crate) struct Rule {
    pub name: Arc<str>,
    pub marker: Arc<[u8]>,
    re: Regex,
    check: Check,
    multiline: bool,
    /// The pattern is `KEY SEP value` (see [`super::rules::key_sep_value`]): matches are found
    /// by hand (see [`super::kv`]), the regex runs only for quoted values.
    kv: Option<KeySepValue>,
    /// Capture slots of the secret groups, in preference order.
    groups: Vec<usize>,
}

impl Rule {
    pub(crate) fn new(
        name: &str,
        pattern: &str,
        check: Check,
        multiline: bool,
    ) -> Result<Rule, regex::Error> {
        let re = RegexBuilder::new(pattern)
            .unicode(false)
            .size_limit(1 << 24)
            .dfa_size_limit(1 << 22)
            .build()?;
        let names: Vec<Option<&str>> = re.capture_names().collect();
        let groups = SECRET_GROUPS
            .iter()
            .filter_map(|g| names.iter().position(|n| *n == Some(*g)))
            .collect();
        Ok(Rule {
            marker: format!("[REDACTED:{name}]").into_bytes().into(),
            name: name.into(),
            re,
            check,
            multiline,
            kv: None,
            groups,
        })
    }

    /// Runs the rule on `text[from..to]` (with the text before `from` as context) and pushes
    /// one candidate per kept match.
    fn run(
        &self,
        text: &[u8],
        from: usize,
        to: usize,
        prio: u32,
        out: &mut Vec<Cand>,
        locs: &mut CaptureLocations,
    ) {
        let hay = &text[..to];
        let mut pos = from;
        while pos <= to {
            let from = match self.kv.as_ref().map(|kv| kv.find(hay, pos)) {
                Some(Kv::Found(w0, w1, v0, v1)) => {
                    #[cfg(debug_assertions)]
                    {
                        let w = self
                            .re
                            .captures_read_at(locs, hay, pos)
                            .map(|m| (m.start(), m.end()));
                        let g = self.groups.iter().find_map(|&g| locs.get(g));
                        debug_assert_eq!((w, g), (Some((w0, w1)), Some((v0, v1))), "{}", self.name);
                    }
                    Err((w0, w1, v0, v1))
                }
                Some(Kv::None) => {
                    debug_assert!(self.re.find_at(hay, pos).is_none(), "{}", self.name);
                    break;
                }
                Some(Kv::Regex(from)) => {
                    // No match starts between `pos` and the key (a quoted value that does
                    // not close is the regex's to skip).
                    debug_assert_eq!(
                        self.re.find_at(hay, pos).map(|m| m.start()),
                        self.re.find_at(hay, from).map(|m| m.start()),
                        "{}",
                        self.name
                    );
                    Ok(from)
                }
                None => Ok(pos),
            };
            let (ws, we, s, mut e) = match from {
                Err(found) => found,
                Ok(from) if self.groups.is_empty() => {
                    // No secret group: the whole match is the secret, no captures needed.
                    let Some(m) = self.re.find_at(hay, from) else {
                        break;
                    };
                    (m.start(), m.end(), m.start(), m.end())
                }
                Ok(from) => {
                    let Some(whole) = self.re.captures_read_at(locs, hay, from) else {
                        break;
                    };
                    let (ws, we) = (whole.start(), whole.end());
                    let (s, e) = self
                        .groups
                        .iter()
                        .find_map(|&g| locs.get(g))
                        .unwrap_or((ws, we));
                    (ws, we, s, e)
                }
            };
            let kept = self.check.keep(&text[ws..we], &text[s..e]);
            if kept {
                // A window cut mid-token: take the rest of the token too.
                if e == to && e == we && !self.multiline {
                    while e < text.len()
                        && !text[e].is_ascii_whitespace()
                        && !matches!(text[e], b'"' | b'\'')
                    {
                        e += 1;
                    }
                }
                if s < e {
                    out.push(Cand {
                        start: s,
                        end: e,
                        prio,
                    });
                }
            }
            // A refused candidate must not hide a match inside it (`Authorization: Basic -----x
            // Authorization: Basic y`): search again from its secret part.
            pos = if !kept {
                s.max(ws + 1)
            } else if we > ws {
                we
            } else {
                we + 1
            };
        }
    }

    /// Runs the rule over the whole text (custom rules have no keywords).
    pub(crate) fn run_all(&self, text: &[u8], prio: u32, out: &mut Vec<Cand>) {
        let mut locs = self.re.capture_locations();
        self.run(text, 0, text.len(), prio, out, &mut locs);
    }
}

/// A candidate secret: a byte range and its priority (lower wins).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Cand {
    pub start: usize,
    pub end: usize,
    pub prio: u32,
}

/// The compiled built-in rules and their keyword automaton.
pub(crate) struct Builtin {
    pub rules: Vec<Rule>,
    keywords: Keywords,
    /// Tests only: the plain automaton and the rules' regexes, without the fast paths.
    #[cfg(test)]
    slow: bool,
    /// For each automaton pattern, the rules it selects (`None` for the marker keyword).
    pattern_rules: Vec<Option<Vec<u16>>>,
}

/// Case variants under which a keyword is searched: as written when it has capitals of its own,
/// otherwise lower, UPPER and Capitalised (which covers `password`, `PASSWORD`, `dbPassword`).
fn variants(kw: &str) -> Vec<String> {
    if kw.bytes().any(|b| b.is_ascii_uppercase()) {
        return vec![kw.to_string()];
    }
    let mut v = vec![kw.to_string(), kw.to_ascii_uppercase()];
    let mut cap = kw.to_string();
    if let Some(f) = cap.get_mut(0..1) {
        f.make_ascii_uppercase();
    }
    v.push(cap);
    v.sort();
    v.dedup();
    v
}

impl Builtin {
    pub(crate) fn new() -> Builtin {
        let all: Vec<Spec> = multiline_specs().into_iter().chain(specs()).collect();
        let mut rules = Vec::with_capacity(all.len());
        let mut by_kw: BTreeMap<String, Vec<u16>> = BTreeMap::new();
        for (i, spec) in all.iter().enumerate() {
            let mut rule = Rule::new(spec.name, &spec.pattern, spec.check, spec.multiline)
                .unwrap_or_else(|e| {
                    panic!("built-in redaction rule {} must compile: {e}", spec.name)
                });
            rule.kv = super::rules::key_sep_value(&spec.pattern)
                .map(|(alt, min)| KeySepValue::new(&alt, &spec.keywords, min));
            rules.push(rule);
            for kw in &spec.keywords {
                for v in variants(kw) {
                    let list = by_kw.entry(v).or_default();
                    if list.last() != Some(&(i as u16)) {
                        list.push(i as u16);
                    }
                }
            }
        }
        let mut patterns: Vec<String> = vec![MARKER_KEYWORD.to_string()];
        let mut pattern_rules: Vec<Option<Vec<u16>>> = vec![None];
        for (kw, list) in by_kw {
            patterns.push(kw);
            pattern_rules.push(Some(list));
        }
        Builtin {
            rules,
            keywords: Keywords::new(&patterns),
            #[cfg(test)]
            slow: false,
            pattern_rules,
        }
    }

    /// Tests only: the same rules without the fast paths (keyword filter, hand-scanned
    /// `KEY SEP value` rules), to compare with.
    #[cfg(test)]
    pub(crate) fn slow() -> Builtin {
        let mut b = Builtin::new();
        b.slow = true;
        for r in &mut b.rules {
            r.kv = None;
        }
        b
    }

    /// Candidates of the built-in rules (priorities `base..`) and the markers already present.
    pub(crate) fn candidates(
        &self,
        text: &[u8],
        base: u32,
        out: &mut Vec<Cand>,
        markers: &mut Vec<(usize, usize)>,
    ) {
        let n = self.rules.len();
        let mut wins: Vec<Vec<(usize, usize)>> = vec![Vec::new(); n];
        // The current line: `line_start` is just after the last newline before the hit, `nl` the
        // first newline at or after it. Both only move forward, so finding them is linear.
        let len = text.len();
        let mut line_start = 0;
        let mut nl = memchr::memchr(b'\n', text).unwrap_or(len);
        #[cfg(test)]
        let hits = if self.slow {
            self.keywords.find_all_ac(text)
        } else {
            self.keywords.find_all(text)
        };
        #[cfg(not(test))]
        let hits = self.keywords.find_all(text);
        for (s, e, pattern) in hits {
            let Some(list) = &self.pattern_rules[pattern] else {
                if let Some(end) = marker_at(text, s) {
                    markers.push((s, end));
                }
                continue;
            };
            if s > nl {
                line_start = memchr::memrchr(b'\n', &text[nl..s]).map_or(nl + 1, |i| nl + i + 1);
                nl = memchr::memchr(b'\n', &text[s..]).map_or(len, |i| s + i);
            }
            let (ls, le) = if s >= line_start && e <= nl {
                (line_start.max(s.saturating_sub(BACK)), nl.min(e + FWD))
            } else {
                let lo = s.saturating_sub(BACK);
                let hi = (e + FWD).min(len);
                (
                    memchr::memrchr(b'\n', &text[lo..s]).map_or(lo, |i| lo + i + 1),
                    memchr::memchr(b'\n', &text[e..hi]).map_or(hi, |i| e + i),
                )
            };
            push_windows(list, &self.rules, &mut wins, ls, le, s, len);
        }
        for (i, ws) in wins.iter().enumerate() {
            if ws.is_empty() {
                continue;
            }
            let rule = &self.rules[i];
            let mut locs = rule.re.capture_locations();
            for &(from, to) in ws {
                rule.run(text, from, to, base + i as u32, out, &mut locs);
            }
        }
    }
}

fn push_windows(
    list: &[u16],
    rules: &[Rule],
    wins: &mut [Vec<(usize, usize)>],
    ls: usize,
    le: usize,
    s: usize,
    len: usize,
) {
    for &r in list {
        let r = r as usize;
        let (from, to) = if rules[r].multiline {
            (s, (s + MULTILINE_FWD).min(len))
        } else {
            (ls, le)
        };
        let w = &mut wins[r];
        match w.last_mut() {
            // Close windows are merged (one regex search instead of many): every rule's match
            // contains one of its keywords, so the text between them adds no false match.
            Some(last) if from <= last.1 + MERGE_GAP => last.1 = last.1.max(to),
            _ => w.push((from, to)),
        }
    }
}

/// The end of the `[REDACTED:TYPE]` marker starting at `s`, if there is one.
fn marker_at(text: &[u8], s: usize) -> Option<usize> {
    let rest = &text[s + MARKER_KEYWORD.len()..];
    let n = rest
        .iter()
        .take(64)
        .position(|b| !(b.is_ascii_uppercase() || b.is_ascii_digit() || *b == b'_'))?;
    (n > 0 && rest[n] == b']').then_some(s + MARKER_KEYWORD.len() + n + 1)
}

/// A resolved fragment to replace: `[start, end)` becomes `marker`; `group` identifies the
/// candidate it came from (one candidate may be split around earlier fragments or markers).
pub(crate) struct Frag {
    pub start: usize,
    pub end: usize,
    pub prio: u32,
    pub group: usize,
    /// Where the whole candidate ended (past `end` when a higher-priority match took its
    /// tail): a stream must not release a block that is still open at the end of its input.
    pub cand_end: usize,
}

/// Resolves candidates into disjoint fragments: in priority order, each candidate keeps only
/// what no earlier fragment or existing marker covers.
pub(crate) fn resolve(
    mut cands: Vec<Cand>,
    markers: &[(usize, usize)],
    text: &[u8],
    utf8: bool,
) -> Vec<Frag> {
    if cands.is_empty() {
        return Vec::new();
    }
    if utf8 {
        let cont = |b: u8| (b & 0xC0) == 0x80;
        for c in &mut cands {
            while c.start > 0 && c.start < text.len() && cont(text[c.start]) {
                c.start -= 1;
            }
            while c.end < text.len() && cont(text[c.end]) {
                c.end += 1;
            }
        }
    }
    if !markers.is_empty() {
        return claim(cands, markers, 0);
    }
    // Candidates that overlap no other (most of them) are fragments as they are; only clusters
    // of overlapping candidates go through the priority claim, each on its own (a candidate
    // only ever interacts with those it overlaps).
    cands.sort_unstable_by_key(|c| (c.start, std::cmp::Reverse(c.end)));
    let mut frags = Vec::with_capacity(cands.len());
    let mut k = 0;
    while k < cands.len() {
        let mut end = cands[k].end;
        let mut j = k + 1;
        while j < cands.len() && cands[j].start < end {
            end = end.max(cands[j].end);
            j += 1;
        }
        if j == k + 1 {
            let c = cands[k];
            if c.start < c.end {
                frags.push(Frag {
                    start: c.start,
                    end: c.end,
                    prio: c.prio,
                    group: k,
                    cand_end: c.end,
                });
            }
        } else {
            frags.extend(claim(cands[k..j].to_vec(), &[], k));
        }
        k = j;
    }
    #[cfg(debug_assertions)]
    {
        let key = |f: &Frag| (f.start, f.end, f.prio);
        let all: Vec<_> = claim(cands, &[], 0).iter().map(key).collect();
        debug_assert_eq!(frags.iter().map(key).collect::<Vec<_>>(), all);
    }
    frags
}

/// Claims text for candidates in priority order: each keeps what no earlier fragment or marker
/// covers. Fragment groups are `group_base` + the candidate's rank.
fn claim(mut cands: Vec<Cand>, markers: &[(usize, usize)], group_base: usize) -> Vec<Frag> {
    const PRE: u32 = u32::MAX;
    cands.sort_unstable_by_key(|c| (c.prio, c.start, std::cmp::Reverse(c.end)));
    let mut taken: BTreeMap<usize, (usize, u32, usize, usize)> = BTreeMap::new();
    for &(s, e) in markers {
        taken.insert(s, (e, PRE, usize::MAX, e));
    }
    for (rank, c) in cands.iter().enumerate() {
        let group = group_base + rank;
        // Intervals in `taken` are disjoint; collect those overlapping [c.start, c.end).
        let mut cover: Vec<(usize, usize)> = taken
            .range(..c.end)
            .rev()
            .take_while(|(_, (e, _, _, _))| *e > c.start)
            .map(|(&s, &(e, _, _, _))| (s, e))
            .collect();
        cover.reverse();
        let mut from = c.start;
        for (s, e) in cover {
            if s > from {
                taken.insert(from, (s, c.prio, group, c.end));
            }
            from = from.max(e);
        }
        if from < c.end {
            taken.insert(from, (c.end, c.prio, group, c.end));
        }
    }
    taken
        .into_iter()
        .filter(|(_, (_, p, _, _))| *p != PRE)
        .map(|(start, (end, prio, group, cand_end))| Frag {
            start,
            end,
            prio,
            group,
            cand_end,
        })
        .collect()
}
