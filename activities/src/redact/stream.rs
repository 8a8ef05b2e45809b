//! Streaming redaction: output is redacted as it arrives, holding back a window across chunk
//! boundaries so a secret split between two reads is still caught.
//!
//! Only whole lines are released (every rule but the private-key blocks matches within a line),
//! and never a line that a candidate secret crosses, nor one a known value could still reach
//! into. So for lines shorter than [`MAX_PENDING`] the output equals one-shot redaction of the
//! whole stream, whatever the chunking. Truncation is the caller's job, after redaction.

use super::Redactor;

/// Held-back bytes beyond which the stream releases text even without a safe line boundary.
pub const MAX_PENDING: usize = 1 << 20;
/// What is kept back when the stream has to release mid-line.
const FORCE_KEEP: usize = 64 << 10;
/// Held-back bytes from which a release that freed nothing is only retried once the pending
/// bytes grew by an eighth: each attempt scans everything pending, so retrying at every line
/// (an open key block followed by many short lines) would cost quadratic time. Skipping an
/// attempt is the same as receiving two chunks as one, so the output does not change.
const RETRY_FROM: usize = 64 << 10;

/// Redacts a stream of chunks. Create with [`Redactor::stream`]; call [`push`](Self::push) per
/// chunk read and [`finish`](Self::finish) at the end of the stream.
pub struct StreamRedactor {
    red: Redactor,
    pending: Vec<u8>,
    redactions: usize,
    bytes_in: u64,
    /// Pending bytes at the last release that freed nothing (0: the last one freed some).
    fruitless_at: usize,
}

impl StreamRedactor {
    pub(super) fn new(red: Redactor) -> StreamRedactor {
        StreamRedactor {
            red,
            pending: Vec::new(),
            redactions: 0,
            bytes_in: 0,
            fruitless_at: 0,
        }
    }

    /// Adds a chunk; returns the redacted bytes that are now safe to release (maybe none).
    pub fn push(&mut self, chunk: &[u8]) -> Vec<u8> {
        self.bytes_in += chunk.len() as u64;
        let len = self.pending.len() + chunk.len();
        let wait = (memchr::memchr(b'\n', chunk).is_none() && len < MAX_PENDING)
            || ((RETRY_FROM..MAX_PENDING).contains(&len)
                && len < self.fruitless_at + self.fruitless_at / 8);
        if wait {
            self.pending.extend_from_slice(chunk);
            return Vec::new();
        }
        let out = if self.pending.is_empty() {
            // Nothing held back (the usual case): redact the chunk where it is and keep only
            // what has to wait, instead of copying all of it in first.
            let (out, cut) = self.release(chunk, false);
            self.pending.extend_from_slice(&chunk[cut..]);
            out
        } else {
            let mut pending = std::mem::take(&mut self.pending);
            pending.extend_from_slice(chunk);
            let (out, cut) = self.release(&pending, false);
            pending.drain(..cut);
            self.pending = pending;
            out
        };
        self.fruitless_at = if out.is_empty() { len } else { 0 };
        out
    }

    /// Ends the stream: returns the rest, redacted.
    pub fn finish(&mut self) -> Vec<u8> {
        let pending = std::mem::take(&mut self.pending);
        self.release(&pending, true).0
    }

    /// Markers inserted so far.
    pub fn redactions(&self) -> usize {
        self.redactions
    }

    /// Raw bytes pushed so far (before redaction).
    pub fn bytes_in(&self) -> u64 {
        self.bytes_in
    }

    /// Bytes held back, waiting for more input.
    pub fn pending(&self) -> usize {
        self.pending.len()
    }

    /// Redacts what of `pending` (held back and new bytes) is safe to release, everything when
    /// `all`; returns it and how many bytes of `pending` it covers.
    fn release(&mut self, pending: &[u8], all: bool) -> (Vec<u8>, usize) {
        let len = pending.len();
        if len == 0 {
            return (Vec::new(), 0);
        }
        let run = self.red.run(pending, false);
        let mut cut = if all {
            len
        } else {
            // A known value starting before the cut must be wholly inside `pending`. Only a value
            // holding a newline can cross the cut (a line end), so only those widen the window:
            // a finished line goes out at once (live output) unless such a value is known.
            let limit = len.saturating_sub(self.red.max_multiline_literal_len());
            memchr::memrchr(b'\n', &pending[..limit]).map_or(0, |i| i + 1)
        };
        if !all {
            // Never cut through a candidate (all fragments of one candidate go out together):
            // move the cut to the start of its line.
            let mut spans: std::collections::HashMap<usize, (usize, usize)> =
                std::collections::HashMap::new();
            for f in &run.frags {
                let e = spans.entry(f.group).or_insert((f.start, f.cand_end));
                e.0 = e.0.min(f.start);
                e.1 = e.1.max(f.cand_end);
            }
            loop {
                let crossing = spans
                    .values()
                    // A block still open at the end of what we have (a key without its END
                    // line yet) may grow: hold it back too.
                    .filter(|&&(s, e)| s < cut && (e > cut || e == len))
                    .map(|&(s, _)| s)
                    .min();
                let Some(start) = crossing else { break };
                cut = memchr::memrchr(b'\n', &pending[..start]).map_or(0, |i| i + 1);
            }
            if cut == 0 && len >= MAX_PENDING {
                // A line longer than the window: release all but the tail, at a space if one is
                // near, and never inside a secret (a secret crossing the cut goes out whole).
                cut = len - FORCE_KEEP.min(len);
                let lo = cut.saturating_sub(4096);
                if let Some(i) = pending[lo..cut].iter().rposition(u8::is_ascii_whitespace) {
                    cut = lo + i + 1;
                }
                for f in &run.frags {
                    if f.start < cut && f.end > cut {
                        cut = f.end;
                    }
                }
            }
        }
        if cut == 0 {
            return (Vec::new(), 0);
        }
        let frags: Vec<_> = run.frags.into_iter().filter(|f| f.end <= cut).collect();
        // The same passes as one-shot redaction, on whole lines.
        // The fragments found in `pending` are those of its first `cut` bytes alone (matches are
        // line-local and none crosses the cut); only when a marker touches a word character are
        // the further passes of one-shot redaction needed.
        let (out, n) = if frags.is_empty() {
            (pending[..cut].to_vec(), 0)
        } else if !super::touches_word(&pending[..cut], &frags) {
            self.red.render(&pending[..cut], &frags)
        } else {
            self.red
                .rewrite(&pending[..cut], false)
                .unwrap_or_else(|| (pending[..cut].to_vec(), 0))
        };
        self.redactions += n;
        (out, cut)
    }
}
