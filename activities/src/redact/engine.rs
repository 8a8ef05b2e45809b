//! The matching engine: one pass over every rule's keywords (`keywords`) selects candidate rules
//! and regions (windows around each keyword hit, within its line), only those rules' regexes
//! (or, for `KEY SEP value` rules, the hand scanner in `kv`) run there, and overlapping
//! candidates are resolved by priority into disjoint fragments. Every step is linear in the
//! input: the keyword pass is one filter step per byte, windows are bounded and merged per rule,
//! and the `regex` crate's searches and the hand scanner are linear. The keyword pass hands its
//! hits on a block at a time and the rules run over the windows found every 64 KiB, so each
//! piece of text is looked at while it is still in cache (on a 64 MiB log this alone took
//! one-shot redaction from 1.07 to 1.42 GiB/s).

use std::collections::BTreeMap;
use std::sync::Arc;

use regex::bytes::{CaptureLocations, Regex, RegexBuilder};

use super::checks::Check;
use super::keywords::Keywords;
use super::kv::{KeySepValue, Kv};
use super::rules::{Spec, multiline_specs, specs};

/// Bytes before a keyword a match may start (the key before `_PASSWORD`, a scheme before `://`).
const BACK: usize = 256;
/// Bytes after a keyword a single-line match may start in (a window). It may end further on, up
/// to its line's end: a window cut inside its line is searched with the rest of the line.
const FWD: usize = 4096;
/// Windows of one rule closer than this are searched as one. Zero: only windows that touch
/// (a wider gap made keyword-only rules scan nearly all of key=value-dense text).
const MERGE_GAP: usize = 0;
/// Rescanning after refused candidates allowed per window: this many times its length, plus
/// [`RESCAN_SLACK`] bytes (so short texts never reach it).
const RESCAN_FACTOR: usize = 4;
const RESCAN_SLACK: usize = 64 << 10;
/// The longest match whose secret group is resolved; a longer one is redacted whole.
const MAX_CAPTURED: usize = 16 << 10;
/// Text between two runs of the rules over the windows found so far.
const RUN_EVERY: usize = 64 << 10;
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
        scratch: &mut Scratch,
    ) {
        let Scratch {
            locs,
            done,
            ahead,
            line,
        } = scratch;
        // A window ends FWD after its last keyword or at its line's end. One cut inside its line
        // is searched with the rest of the line as haystack: matches start in the window but
        // end where the rule says (a quoted value or a header over 4 KiB, spaces and all).
        let end = if self.multiline || to >= text.len() || text[to] == b'\n' {
            to
        } else {
            if !(line.0..=line.1).contains(&to) {
                *line = (
                    to,
                    memchr::memchr(b'\n', &text[to..]).map_or(text.len(), |i| to + i),
                );
            }
            line.1
        };
        let hay = &text[..end];
        // Text inside this rule's last kept match is redacted already (a window of a later
        // keyword inside a long value would search it again, to the same far end).
        let mut pos = from.max(*done);
        // Searching again after a refused candidate rescans its text, so a long token full of
        // refused look-alikes (`sk-` repeated) would cost quadratic time. Past this budget a
        // refused candidate is redacted instead (the safe side) and the search goes on after
        // it: time stays linear whatever the text.
        let mut rescan_budget = RESCAN_FACTOR * (to - from) + RESCAN_SLACK;
        while pos <= to {
            // Where a search past the window's end last looked (see `Ahead`).
            if let Some(a) = ahead.filter(|a| a.end == end && a.from <= pos) {
                match a.next {
                    None => break,
                    Some(n) if pos <= n && n > to => break,
                    _ => {}
                }
            }
            let searched_from = pos;
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
                    // As for the regex below: a match too long to resolve is redacted whole.
                    if w1 - w0 > MAX_CAPTURED {
                        Err((w0, w1, w0, w1))
                    } else {
                        Err((w0, w1, v0, v1))
                    }
                }
                Some(Kv::None) => {
                    debug_assert!(self.re.find_at(hay, pos).is_none(), "{}", self.name);
                    *ahead = Ahead::none(searched_from, end, to);
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
            let (ws, we, s, e) = match from {
                Err(found) => found,
                Ok(from) if self.groups.is_empty() => {
                    // No secret group: the whole match is the secret, no captures needed.
                    let Some(m) = self.re.find_at(hay, from) else {
                        *ahead = Ahead::none(searched_from, end, to);
                        break;
                    };
                    (m.start(), m.end(), m.start(), m.end())
                }
                Ok(from) => {
                    // The match first (lazy DFA); its secret group only for a match of
                    // ordinary length: the regex crate resolves groups over a long match with
                    // a PikeVM at a few MiB/s (a line of `Authorization: Bearer /` repeated).
                    // A longer match is redacted whole.
                    let Some(m) = self.re.find_at(hay, from) else {
                        *ahead = Ahead::none(searched_from, end, to);
                        break;
                    };
                    let (ws, we) = (m.start(), m.end());
                    // Past the window it is only remembered (below), its groups not needed.
                    if we - ws > MAX_CAPTURED || ws > to {
                        (ws, we, ws, we)
                    } else {
                        // The leftmost match from its own start is the same match.
                        let _whole = self.re.captures_read_at(locs, hay, ws);
                        debug_assert_eq!(_whole.map(|w| (w.start(), w.end())), Some((ws, we)));
                        let (s, e) = self
                            .groups
                            .iter()
                            .find_map(|&g| locs.get(g))
                            .unwrap_or((ws, we));
                        (ws, we, s, e)
                    }
                }
            };
            if ws > to {
                // The next match starts past this window: a later window may reach it.
                *ahead = Some(Ahead {
                    from: searched_from,
                    end,
                    next: Some(ws),
                });
                break;
            }
            let mut kept = self.check.keep(&text[ws..we], &text[s..e]);
            if !kept {
                let cost = we.saturating_sub(pos);
                if cost > rescan_budget {
                    kept = true;
                } else {
                    rescan_budget -= cost;
                }
            }
            if kept {
                *done = (*done).max(we);
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
        self.run(text, 0, text.len(), prio, out, &mut Scratch::new(self));
    }
}

/// What one rule's searches reuse from one window to the next (windows come in order).
pub(crate) struct Scratch {
    locs: CaptureLocations,
    /// The end of the last kept match: later windows start no earlier.
    done: usize,
    /// The last search that looked past its window's end.
    ahead: Option<Ahead>,
    /// The end of the line holding a position (`line.0..=line.1` holds no newline but at
    /// `line.1`): the windows of one long line find its end once.
    line: (usize, usize),
}

impl Scratch {
    fn new(rule: &Rule) -> Scratch {
        Scratch {
            locs: rule.re.capture_locations(),
            done: 0,
            ahead: None,
            line: (1, 0),
        }
    }
}

/// A search from `from` over `text[..end]` (the rest of a line, past its window's end) found
/// its next match starting at `next`, or none. A later window of the same line searching from
/// a position up to `next` would find the same: it stops there instead of scanning the rest of
/// a long line again, which would make many keyword hits on one long line cost quadratic time.
#[derive(Clone, Copy)]
struct Ahead {
    from: usize,
    end: usize,
    next: Option<usize>,
}

impl Ahead {
    /// No match from `from` in `text[..end]`: worth remembering when the search looked past `to`.
    fn none(from: usize, end: usize, to: usize) -> Option<Ahead> {
        (end > to).then_some(Ahead {
            from,
            end,
            next: None,
        })
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

    /// The keywords the pass looks for (each case variant, the marker prefix too).
    pub(crate) fn keywords(&self) -> Vec<String> {
        self.keywords
            .patterns()
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect()
    }

    /// Which first stage the keyword pass runs on this CPU.
    pub(crate) fn keyword_stage(&self) -> &'static str {
        self.keywords.stage()
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
        let mut scratch: Vec<Option<Scratch>> = (0..n).map(|_| None).collect();
        // Runs each rule over its windows that no later hit can widen (those ending before
        // `bound`), so the regexes see text the keyword pass has just read (still in cache).
        let mut run_closed =
            |wins: &mut [Vec<(usize, usize)>], out: &mut Vec<Cand>, bound: usize| {
                for (i, ws) in wins.iter_mut().enumerate() {
                    let Some(last) = ws.last() else { continue };
                    let k = if last.1 < bound {
                        ws.len()
                    } else {
                        ws.len() - 1
                    };
                    if k == 0 {
                        continue;
                    }
                    let rule = &self.rules[i];
                    let scratch = scratch[i].get_or_insert_with(|| Scratch::new(rule));
                    for &(from, to) in &ws[..k] {
                        rule.run(text, from, to, base + i as u32, out, scratch);
                    }
                    ws.drain(..k);
                }
            };
        let mut next_run = RUN_EVERY;
        let mut on_hit = |s: usize, e: usize, pattern: usize| {
            if s >= next_run {
                // Hits come in order of start and a window starts at most BACK before its hit,
                // so a window ending before `s - BACK` is never merged with a later one.
                run_closed(&mut wins, out, s.saturating_sub(BACK));
                next_run = s + RUN_EVERY;
            }
            let Some(list) = &self.pattern_rules[pattern] else {
                if let Some(end) = marker_at(text, s) {
                    markers.push((s, end));
                }
                return;
            };
            if s > nl {
                // Only the last BACK bytes matter (the window starts no earlier): a line start
                // before them is as good as `lo`, and the text between sparse hits is not
                // searched at all.
                line_start = line_start_from(text, s.saturating_sub(BACK).max(nl), s);
                nl = memchr::memchr(b'\n', &text[s..]).map_or(len, |i| s + i);
            }
            let (ls, le) = if s >= line_start && e <= nl {
                (line_start.max(s.saturating_sub(BACK)), nl.min(e + FWD))
            } else {
                let hi = (e + FWD).min(len);
                (
                    line_start_from(text, s.saturating_sub(BACK), s),
                    memchr::memchr(b'\n', &text[e..hi]).map_or(hi, |i| e + i),
                )
            };
            push_windows(list, &self.rules, &mut wins, ls, le, s, len);
        };
        #[cfg(test)]
        if self.slow {
            for (s, e, p) in self.keywords.find_all_ac(text) {
                on_hit(s, e, p);
            }
        } else {
            self.keywords.for_each_hit(text, &mut on_hit);
        }
        #[cfg(not(test))]
        self.keywords.for_each_hit(text, &mut on_hit);
        run_closed(&mut wins, out, usize::MAX);
    }
}

/// The start of the line holding `s`, or `lo` if the line starts before it.
fn line_start_from(text: &[u8], lo: usize, s: usize) -> usize {
    memchr::memrchr(b'\n', &text[lo..s]).map_or(lo, |i| lo + i + 1)
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
