//! A vectorised first stage for the keyword filter, on x86-64 CPUs with AVX-512 (BW and VBMI)
//! and GFNI, chosen at run time; elsewhere the scalar filter runs alone.
//!
//! It owns only *which positions are worth the scalar filter's look*. Each step tests 64 text
//! positions at once:
//! - against a Bloom filter of the patterns' anchor trigrams, case-folded (bit 5 of every byte
//!   is ignored, so `key`, `KEY` and `Key` share their entries), held in registers: four tables
//!   of 1024 bits, each indexed by its own GF(2)-linear hash of the trigram
//!   (`gf2p8affineqb`, one instruction per byte and hash) and looked up with one `vpermi2b`;
//! - against the two-byte patterns, by compare (their anchor is any trigram they begin).
//!
//! A position passes only where every table has its bit, about 1 in 50 on a build log, and only
//! those reach the scalar filter's exact bitmap. Every anchor is in every table, so a position
//! where an anchor starts always passes: the stage can only let through too much, never too
//! little. Debug builds check every call against Aho-Corasick (see `Keywords::find_all`).

use std::arch::x86_64::*;

/// Bloom tables; each adds about 10 vector instructions per 64 positions.
const K: usize = 4;

/// The Bloom filter and the two-byte patterns, ready for the vector scan.
pub(super) struct Prefilter {
    /// Per table, 1024 bits: byte `h1` (7 bits), bit `h2` (3 bits).
    tables: [[u8; 128]; K],
    /// Per table, the GF(2) matrices of `h1` for the trigram's bytes 0, 1, 2, then of `h2`.
    matrices: [[u64; 6]; K],
    pairs: Vec<[u8; 2]>,
}

/// `gf2p8affineqb` on one byte: bit `i` of the result is the parity of `x` AND byte `7 - i` of
/// the matrix `a` (Intel's definition; a test checks it against the instruction).
fn affine(a: u64, x: u8) -> u8 {
    (0..8).fold(0, |r, i| {
        let row = (a >> (8 * (7 - i))) as u8;
        r | ((((row & x).count_ones() & 1) as u8) << i)
    })
}

/// The table byte and bit of a trigram under one table's matrices.
fn cell(m: &[u64; 6], t: [u8; 3]) -> (usize, u8) {
    let h1 = affine(m[0], t[0]) ^ affine(m[1], t[1]) ^ affine(m[2], t[2]);
    let h2 = affine(m[3], t[0]) ^ affine(m[4], t[1]) ^ affine(m[5], t[2]);
    (h1 as usize & 127, 1 << (h2 & 7))
}

/// Fixed pseudo-random matrices: `rows` output rows each (the rest zero, so `h1` < 128 and
/// `h2` < 8), with input bit 5 (ASCII case) ignored.
fn matrices() -> [[u64; 6]; K] {
    let mut s: u64 = 0x6A09_E667_F3BC_C909;
    let mut next = || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let mut out = [[0u64; 6]; K];
    for m in &mut out {
        for (j, q) in m.iter_mut().enumerate() {
            let rows = if j < 3 { 7 } else { 3 };
            // Output bit i is byte 7 - i: keep bytes 7 - rows + 1 ..= 7.
            let keep = !0u64 << (8 * (8 - rows));
            *q = next() & keep & 0xDFDF_DFDF_DFDF_DFDF;
        }
    }
    out
}

impl Prefilter {
    /// `None` when this CPU lacks the instructions.
    pub(super) fn new(anchors: impl Iterator<Item = [u8; 3]>, pairs: Vec<[u8; 2]>) -> Option<Self> {
        if !(is_x86_feature_detected!("avx512f")
            && is_x86_feature_detected!("avx512bw")
            && is_x86_feature_detected!("avx512vbmi")
            && is_x86_feature_detected!("gfni"))
        {
            return None;
        }
        let matrices = matrices();
        let mut tables = [[0u8; 128]; K];
        for t in anchors {
            for (table, m) in tables.iter_mut().zip(&matrices) {
                let (byte, bit) = cell(m, t);
                table[byte] |= bit;
            }
        }
        Some(Prefilter {
            tables,
            matrices,
            pairs,
        })
    }

    /// Calls `f(i)` for every position `i` in `from..to` that may start an anchor or a
    /// two-byte pattern, in order, over whole steps of 64; returns the first position it did
    /// not test (the caller tests the rest).
    pub(super) fn scan(&self, text: &[u8], from: usize, to: usize, f: impl FnMut(usize)) -> usize {
        // SAFETY: `new` returned a prefilter only after checking the CPU has these features.
        unsafe { self.scan_avx512(text, from, to, f) }
    }

    #[target_feature(enable = "avx512f,avx512bw,avx512vbmi,gfni")]
    unsafe fn scan_avx512(
        &self,
        text: &[u8],
        from: usize,
        to: usize,
        mut f: impl FnMut(usize),
    ) -> usize {
        let load = |b: &[u8]| {
            assert!(b.len() >= 64);
            // SAFETY: the 64 bytes read are in `b`.
            unsafe { _mm512_loadu_si512(b.as_ptr().cast()) }
        };
        let tables: [(__m512i, __m512i); K] =
            std::array::from_fn(|t| (load(&self.tables[t][..64]), load(&self.tables[t][64..])));
        let mats: [[__m512i; 6]; K] = std::array::from_fn(|t| {
            std::array::from_fn(|j| _mm512_set1_epi64(self.matrices[t][j] as i64))
        });
        let bits = _mm512_broadcast_i32x4(_mm_setr_epi8(
            1, 2, 4, 8, 16, 32, 64, -128, 1, 2, 4, 8, 16, 32, 64, -128,
        ));
        let pairs: Vec<(__m512i, __m512i)> = self
            .pairs
            .iter()
            .map(|p| (_mm512_set1_epi8(p[0] as i8), _mm512_set1_epi8(p[1] as i8)))
            .collect();
        let mut i = from;
        // Positions i..i + 64 read bytes up to i + 66.
        while i + 64 <= to && i + 66 <= text.len() {
            let v = [load(&text[i..]), load(&text[i + 1..]), load(&text[i + 2..])];
            let mut m = !0u64;
            for ((lo, hi), mat) in tables.iter().zip(&mats) {
                let h = |k: usize| {
                    let a = _mm512_gf2p8affine_epi64_epi8::<0>(v[0], mat[k]);
                    let b = _mm512_gf2p8affine_epi64_epi8::<0>(v[1], mat[k + 1]);
                    let c = _mm512_gf2p8affine_epi64_epi8::<0>(v[2], mat[k + 2]);
                    _mm512_ternarylogic_epi64::<0x96>(a, b, c)
                };
                let byte = _mm512_permutex2var_epi8(*lo, h(0), *hi);
                let bit = _mm512_shuffle_epi8(bits, h(3));
                m &= _mm512_test_epi8_mask(byte, bit);
            }
            for (a, b) in &pairs {
                m |= _mm512_cmpeq_epi8_mask(v[0], *a) & _mm512_cmpeq_epi8_mask(v[1], *b);
            }
            while m != 0 {
                f(i + m.trailing_zeros() as usize);
                m &= m - 1;
            }
            i += 64;
        }
        i
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scalar model of `gf2p8affineqb` (used to fill the tables) equals the instruction.
    #[test]
    fn the_table_hash_is_the_instructions() {
        if !is_x86_feature_detected!("gfni") || !is_x86_feature_detected!("avx512f") {
            eprintln!("skipped: no GFNI/AVX-512 here, the scalar filter runs alone");
            return;
        }
        #[target_feature(enable = "avx512f,gfni")]
        unsafe fn vector(a: u64, x: &[u8; 64]) -> [u8; 64] {
            let mut out = [0u8; 64];
            unsafe {
                let v = _mm512_loadu_si512(x.as_ptr().cast());
                let r = _mm512_gf2p8affine_epi64_epi8::<0>(v, _mm512_set1_epi64(a as i64));
                _mm512_storeu_si512(out.as_mut_ptr().cast(), r);
            }
            out
        }
        for m in matrices().iter().flatten() {
            for base in (0..256).step_by(64) {
                let x: [u8; 64] = std::array::from_fn(|j| (base + j) as u8);
                let got = unsafe { vector(*m, &x) };
                for j in 0..64 {
                    assert_eq!(got[j], affine(*m, x[j]), "matrix {m:#x} byte {}", x[j]);
                }
                // Case is ignored and the hashes stay in range.
                for &b in &x {
                    assert_eq!(affine(*m, b), affine(*m, b ^ 0x20));
                }
            }
        }
        for m in matrices() {
            for t in [*b"key", *b"KEY", *b"Key", *b"\xff\xfe\x00"] {
                let (byte, _) = cell(&m, t);
                assert!(byte < 128);
            }
        }
    }
}
