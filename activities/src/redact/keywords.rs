//! The keyword pass: every occurrence of every rule keyword (each case variant is its own
//! pattern) in one linear scan, with the same hits as an overlapping Aho-Corasick search.
//!
//! It owns only *finding* keywords; which rules and windows a hit selects is the engine's job.
//!
//! An Aho-Corasick DFA walk costs a dependent table load per byte whatever the text. Most text
//! contains no keyword at all, so the scan here is a filter first: each pattern is anchored by
//! one of its trigrams (the rarest by a fixed estimate; two-byte patterns by their two bytes and
//! any third), the trigrams go into a 256 Kibit hashed bitmap, and each text position costs one
//! unaligned load, a multiply and a bit test, with no dependency between positions. Only where
//! the bit is set are the patterns of that trigram compared in place. Every occurrence of a
//! pattern contains its anchor trigram, so no hit is lost; debug builds compare every call
//! with the Aho-Corasick search.
//!
//! That scalar filter costs about three cycles a byte. Where the CPU has AVX-512 VBMI and GFNI,
//! a vector stage (`simd`) runs first and tests 64 positions at a time against a case-blind
//! Bloom filter of the same anchors; only the positions it passes (under 1 % of a build log)
//! reach the bitmap. Anchors are chosen by their case-folded score, so a keyword's case
//! variants share one Bloom entry. `AE_REDACT_SCALAR=1` turns the vector stage off.

#[cfg(target_arch = "x86_64")]
mod simd;

/// Trigrams common in logs, code and prose (most common first), avoided as anchors when a
/// pattern has a rarer one. Measured on this repository's sources, docs and a build log.
const COMMON: &str = r#"   inged estletand thion -- =  st retedteser et  lease co in  lthe  }constrtio  "argatehe is ng -> st triainstaterleauil bulescomeasbuirelele | se servalpro// verompuse  .ontrun no/ap-->int, " seappactwortarinerat deorkati pataigetin pacs, iterealon", for is/reporon ///s::  aoutnta ane cack &&&& depelfline: edithinerut sts chockluetatntealusel caoneckepatt c as| "npm //ort  /nd urargerinhisque---entlowsed rubleripildileathtemng:puberssrcablemorc/es ::twebmpl vate  sus n lo ta"#;

/// One anchored pattern: where its anchor sits in it.
#[derive(Clone, Copy)]
struct Entry {
    /// The anchor's three bytes (a two-byte pattern has one entry per third byte).
    tri: [u8; 3],
    pattern: u32,
    offset: u32,
}

/// The keyword finder. Hits are `(start, end, pattern)`.
pub(crate) struct Keywords {
    patterns: Vec<Box<[u8]>>,
    bitmap: Box<[u64; SLOTS / 64]>,
    /// Entries grouped by hash slot: slot `h` holds `entries[first[h]..first[h + 1]]`.
    first: Box<[u32]>,
    entries: Box<[Entry]>,
    /// The largest anchor offset: how far before its anchor a hit may start.
    max_offset: usize,
    /// The vector first stage, where the CPU has it.
    #[cfg(target_arch = "x86_64")]
    simd: Option<simd::Prefilter>,
    /// The plain automaton, to check the filter against.
    #[cfg(any(test, debug_assertions))]
    ac: aho_corasick::AhoCorasick,
}

/// Set (to anything) to run the scalar filter alone, e.g. to measure it on a CPU that has the
/// vector stage.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(crate) const SCALAR_ENV: &str = "AE_REDACT_SCALAR";

/// Bits of the hashed trigram bitmap: 2^18 bits (32 KiB) keep random collisions (a wasted
/// `verify`) rarer than 2^16 did, at the same cost per position (measured: +9 % on the build
/// log; 2^20 gains 2 % more for 4 MiB of slot index).
const BITS: u32 = 18;
const SLOTS: usize = 1 << BITS;
/// Text scanned before its hits are handed on (fits in a core's L2 cache beside the tables).
const BLOCK: usize = 64 << 10;

#[inline(always)]
fn slot(w: u32) -> usize {
    (w.wrapping_mul(0x9E37_79B1) >> (32 - BITS)) as usize
}

/// Estimated frequency of a trigram in ordinary text (lower is rarer).
fn score(t: &[u8]) -> f64 {
    if let Some(i) = COMMON.as_bytes().chunks(3).position(|c| c == t) {
        return 1.0 + (COMMON.len() / 3 - i) as f64;
    }
    // English letter frequencies, rarest last; other bytes are rarer than most letters.
    const ORDER: &[u8] = b"etaoinshrdlcumwfgypbvkjxqz";
    t.iter()
        .map(|&b| {
            if let Some(i) = ORDER.iter().position(|&o| o == b) {
                0.12 * 0.83f64.powi(i as i32) + 0.002
            } else if let Some(i) = ORDER.iter().position(|&o| o == b.to_ascii_lowercase()) {
                (0.12 * 0.83f64.powi(i as i32) + 0.002) / 8.0
            } else if b.is_ascii_digit() {
                0.02
            } else if b == b' ' {
                0.15
            } else {
                0.01
            }
        })
        .product()
}

impl Keywords {
    /// `patterns` must each be at least two bytes long.
    pub(crate) fn new(patterns: &[String]) -> Keywords {
        let mut bitmap = Box::new([0u64; SLOTS / 64]);
        let mut by_slot: Vec<Vec<Entry>> = vec![Vec::new(); SLOTS];
        let mut anchors = Vec::new();
        let mut pairs = Vec::new();
        for (id, p) in patterns.iter().enumerate() {
            let p = p.as_bytes();
            assert!(p.len() >= 2, "keyword {p:?} shorter than two bytes");
            let mut add = |tri: [u8; 3], offset: usize| {
                let h = slot(u32::from_le_bytes([tri[0], tri[1], tri[2], 0]));
                bitmap[h / 64] |= 1 << (h % 64);
                by_slot[h].push(Entry {
                    tri,
                    pattern: id as u32,
                    offset: offset as u32,
                });
            };
            if p.len() == 2 {
                for b in 0..=255u8 {
                    add([p[0], p[1], b], 0);
                }
                pairs.push([p[0], p[1]]);
            } else {
                // Scored case-folded, so `key`, `KEY` and `Key` share their anchor's place
                // (one entry in the vector stage's case-blind tables).
                let folded = p.to_ascii_lowercase();
                let off = (0..p.len() - 2)
                    .min_by(|&a, &b| score(&folded[a..a + 3]).total_cmp(&score(&folded[b..b + 3])))
                    .unwrap_or(0);
                add([p[off], p[off + 1], p[off + 2]], off);
                anchors.push([p[off], p[off + 1], p[off + 2]]);
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = (anchors, pairs);
        let mut first = Vec::with_capacity(SLOTS + 1);
        let mut entries = Vec::new();
        for list in by_slot {
            first.push(entries.len() as u32);
            entries.extend(list);
        }
        first.push(entries.len() as u32);
        Keywords {
            patterns: patterns
                .iter()
                .map(|p| p.as_bytes().to_vec().into_boxed_slice())
                .collect(),
            bitmap,
            first: first.into_boxed_slice(),
            max_offset: entries.iter().map(|e| e.offset as usize).max().unwrap_or(0),
            entries: entries.into_boxed_slice(),
            #[cfg(target_arch = "x86_64")]
            simd: if std::env::var_os(SCALAR_ENV).is_some() {
                None
            } else {
                simd::Prefilter::new(anchors.into_iter(), pairs)
            },
            #[cfg(any(test, debug_assertions))]
            ac: aho_corasick::AhoCorasick::builder()
                .kind(Some(aho_corasick::AhoCorasickKind::DFA))
                .build(patterns)
                .expect("keyword automaton"),
        }
    }

    /// The patterns, as given.
    pub(crate) fn patterns(&self) -> impl Iterator<Item = &[u8]> {
        self.patterns.iter().map(|p| &p[..])
    }

    /// Which first stage runs: `"vector"` (AVX-512 VBMI and GFNI) or `"scalar"`.
    pub(crate) fn stage(&self) -> &'static str {
        #[cfg(target_arch = "x86_64")]
        if self.simd.is_some() {
            return "vector";
        }
        "scalar"
    }

    /// Every occurrence of every pattern, ordered by start then end.
    #[cfg(test)]
    pub(crate) fn find_all(&self, text: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut hits = Vec::new();
        self.for_each_hit(text, |s, e, p| hits.push((s, e, p)));
        hits
    }

    /// Hands every occurrence `(start, end, pattern)` to `f`, ordered by start then end, a block
    /// of text at a time: the caller looks at each hit while its text is still in cache (on a
    /// 64 MiB log, looking back for the line start after the whole scan cost a cache miss per
    /// hit).
    pub(crate) fn for_each_hit(&self, text: &[u8], mut f: impl FnMut(usize, usize, usize)) {
        let mut pending = Vec::new();
        #[cfg(debug_assertions)]
        let mut all = Vec::new();
        let mut from = 0;
        while from < text.len() {
            let to = (from + BLOCK).min(text.len());
            self.scan(text, from, to, &mut pending);
            pending.sort_unstable();
            // A hit anchored at or after `to` starts at most `max_offset` before it: hits
            // starting earlier than that are in their final order.
            let done = if to == text.len() {
                pending.len()
            } else {
                pending.partition_point(|h| h.0 + self.max_offset < to)
            };
            for &(s, e, p) in &pending[..done] {
                #[cfg(debug_assertions)]
                all.push((s, e, p));
                f(s, e, p);
            }
            pending.drain(..done);
            from = to;
        }
        #[cfg(debug_assertions)]
        debug_assert_eq!(
            all,
            self.find_all_ac(text),
            "keyword filter disagrees with Aho-Corasick"
        );
    }

    /// Pushes the occurrences anchored at positions `from..to` (in no particular order).
    fn scan(&self, text: &[u8], from: usize, to: usize, hits: &mut Vec<(usize, usize, usize)>) {
        let n = text.len();
        let bitmap: &[u64; SLOTS / 64] = &self.bitmap;
        let mut check = |i: usize, tri: u32| {
            let h = slot(tri);
            if bitmap[(h / 64) % (SLOTS / 64)] & (1 << (h % 64)) != 0 {
                self.verify(text, i, tri, h, hits);
            }
        };
        let mut i = from;
        #[cfg(target_arch = "x86_64")]
        if let Some(simd) = &self.simd {
            let tri = |i: usize| u32::from_le_bytes([text[i], text[i + 1], text[i + 2], 0]);
            i = simd.scan(text, from, to, |i| check(i, tri(i)));
        }
        // Six trigrams per eight-byte load.
        while i + 6 <= to && i + 8 <= n {
            let mut w = [0u8; 8];
            w.copy_from_slice(&text[i..i + 8]);
            let w = u64::from_le_bytes(w);
            for k in 0..6 {
                check(i + k, (w >> (8 * k)) as u32 & 0xFF_FFFF);
            }
            i += 6;
        }
        // The rest, with zeros past the end (a two-byte pattern there still hits).
        while i < to {
            let b = |j: usize| text.get(j).copied().unwrap_or(0) as u32;
            check(i, b(i) | b(i + 1) << 8 | b(i + 2) << 16);
            i += 1;
        }
    }

    /// [`Keywords::find_all`] by the plain overlapping Aho-Corasick search.
    #[cfg(any(test, debug_assertions))]
    pub(crate) fn find_all_ac(&self, text: &[u8]) -> Vec<(usize, usize, usize)> {
        let mut ac: Vec<_> = self
            .ac
            .find_overlapping_iter(text)
            .map(|m| (m.start(), m.end(), m.pattern().as_usize()))
            .collect();
        ac.sort_unstable();
        ac
    }

    #[cold]
    fn verify(
        &self,
        text: &[u8],
        i: usize,
        w: u32,
        h: usize,
        hits: &mut Vec<(usize, usize, usize)>,
    ) {
        let tri = w.to_le_bytes();
        let range = self.first[h] as usize..self.first[h + 1] as usize;
        for e in &self.entries[range] {
            if e.tri != tri[..3] {
                continue;
            }
            let off = e.offset as usize;
            let p = &self.patterns[e.pattern as usize];
            if i >= off
                && text.len() >= i - off + p.len()
                && text[i - off..i - off + p.len()] == p[..]
            {
                hits.push((i - off, i - off + p.len(), e.pattern as usize));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::redact::tests::xorshift;

    /// The filter finds exactly what the automaton finds, on random text made of the patterns,
    /// their pieces and noise, including at the very start and end.
    #[test]
    fn filter_equals_automaton() {
        let pats: Vec<String> = [
            "SK",
            "q~",
            "pat",
            "PAT",
            "key",
            "ghp_",
            "password",
            "-----BEGIN",
            "[REDACTED:",
            "aaaa",
            "eyJ",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let kw = Keywords::new(&pats);
        let pieces = [
            "S", "K", "q", "~", "pa", "t", "PA", "ke", "y", "ghp", "_", "pass", "word", "-----",
            "BEGIN", "[RED", "ACTED:", "a", "aa", "eyJ", " ", "\n", "x", "é",
        ];
        let mut next = xorshift(0x2545_F491_4F6C_DD1D);
        for _ in 0..5_000 {
            let mut text = String::new();
            for _ in 0..(next() % 30) {
                text.push_str(pieces[(next() % pieces.len() as u64) as usize]);
            }
            assert_eq!(
                kw.find_all(text.as_bytes()),
                kw.find_all_ac(text.as_bytes()),
                "{text:?}"
            );
        }
    }

    /// Hits handed on a block at a time are all the automaton's hits, in order, even when a
    /// long pattern's anchor is in one block and its start in the previous one; the vector
    /// stage (where this CPU has it) and the scalar filter alone agree.
    #[test]
    fn blocks_and_both_stages_equal_the_automaton() {
        let pats: Vec<String> = [
            "SK",
            "q~",
            "key",
            "KEY",
            "Key",
            "pat",
            "password",
            "-----BEGIN OPENSSH PRIVATE KEY-----",
            "sk_live_",
            "xoxb-",
            // Anchored at its end ("zzz"), with `pat` just after its start: found in the
            // block after `pat`, it must still be handed on first.
            "epatetaoinshrdlu-etaoinshrdlu-etaoinshrdlu-etaoinshrdlu-etaoinshrzzz",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        let with = Keywords::new(&pats);
        let mut without = Keywords::new(&pats);
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx512f")
                && has!("avx512bw")
                && has!("avx512vbmi")
                && has!("gfni")
                && std::env::var_os(SCALAR_ENV).is_none()
            {
                assert!(with.simd.is_some(), "this CPU has the vector stage");
            }
            without.simd = None;
        }
        let mut next = xorshift(0x9E37_79B9_7F4A_7C15);
        for round in 0..6 {
            let mut text = Vec::with_capacity(3 * BLOCK);
            while text.len() < 2 * BLOCK + 5_000 {
                let r = next();
                match r % 7 {
                    0 => text.extend_from_slice(pats[(r >> 8) as usize % pats.len()].as_bytes()),
                    1 => text.push(b'\n'),
                    _ => text
                        .extend((0..(r >> 20) % 90).map(|k| b"abcdefghijkz_-. "[k as usize % 16])),
                }
            }
            // A long pattern across each block boundary, at a different place each round.
            for b in [BLOCK, 2 * BLOCK] {
                let p = pats[10].as_bytes();
                let at = b - p.len() + 1 + round * 11;
                text[at..at + p.len()].copy_from_slice(p);
            }
            let expected = with.find_all_ac(&text);
            assert!(expected.iter().any(|h| h.0 < BLOCK && h.1 > BLOCK));
            assert_eq!(with.find_all(&text), expected, "round {round}");
            assert_eq!(without.find_all(&text), expected, "round {round}, scalar");
        }
    }
}
