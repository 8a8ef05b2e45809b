//! The end of a stream of redacted output, for heartbeats: at most [`TAIL_BYTES`], never
//! starting inside a redaction marker or a UTF-8 character. It only ever holds redacted bytes
//! (the caller's job), so any cut of it is safe; moving the cut past a marker only keeps the
//! tail readable.

/// Largest tail, bytes.
pub const TAIL_BYTES: usize = 2048;
/// Bytes kept: the tail plus room to see a marker or character the cut falls into.
const KEEP: usize = 2 * TAIL_BYTES;
const MARKER: &[u8] = b"[REDACTED:";
/// Longest marker looked for around the cut.
const MAX_MARKER: usize = 128;

/// The last redacted bytes of one stream.
#[derive(Debug, Default)]
pub struct Tail {
    buf: Vec<u8>,
}

impl Tail {
    /// Appends redacted bytes.
    pub fn push(&mut self, redacted: &[u8]) {
        if redacted.len() >= KEEP {
            self.buf.clear();
            self.buf
                .extend_from_slice(&redacted[redacted.len() - KEEP..]);
            return;
        }
        self.buf.extend_from_slice(redacted);
        if self.buf.len() > 2 * KEEP {
            self.buf.drain(..self.buf.len() - KEEP);
        }
    }

    /// The tail as text (invalid UTF-8 replaced), at most [`TAIL_BYTES`].
    pub fn text(&self) -> String {
        let text = String::from_utf8_lossy(&self.buf);
        let b = text.as_bytes();
        let mut start = b.len().saturating_sub(TAIL_BYTES);
        // A marker the cut falls into (its `[REDACTED:` maybe cut too) is left out whole.
        let look = &b[start.saturating_sub(MAX_MARKER)..(start + MARKER.len() - 1).min(b.len())];
        if start > 0
            && let Some(i) = memchr::memmem::rfind(look, MARKER)
        {
            let open = start.saturating_sub(MAX_MARKER) + i;
            if open < start
                && let Some(close) =
                    memchr::memchr(b']', &b[open..(open + MAX_MARKER).min(b.len())])
                && open + close >= start
            {
                start = open + close + 1;
            }
        }
        while !text.is_char_boundary(start) {
            start += 1;
        }
        text[start..].to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_two_kib() {
        let mut t = Tail::default();
        for i in 0..1000 {
            t.push(format!("line {i}\n").as_bytes());
        }
        let s = t.text();
        assert!(
            s.len() <= TAIL_BYTES && s.len() > TAIL_BYTES - 10,
            "{}",
            s.len()
        );
        assert!(s.ends_with("line 999\n"));
        t.push(&vec![b'x'; 10_000]);
        assert_eq!(t.text(), "x".repeat(TAIL_BYTES));
    }

    #[test]
    fn never_starts_inside_a_marker_or_a_character() {
        let marker = "[REDACTED:GITHUB_TOKEN]";
        for shift in 0..marker.len() + 2 {
            let mut t = Tail::default();
            t.push(b"head ");
            t.push(marker.as_bytes());
            let rest = TAIL_BYTES - marker.len() + shift;
            t.push("é".repeat(rest / 2).as_bytes());
            if rest % 2 == 1 {
                t.push(b"z");
            }
            let s = t.text();
            assert!(s.len() <= TAIL_BYTES, "{shift}");
            let whole = s.contains(marker);
            assert!(whole || !s.contains(']'), "{shift}: {:?}", &s[..40]);
            assert!(s.starts_with(marker) || s.starts_with('é') || s.starts_with('z'));
        }
    }

    #[test]
    fn invalid_utf8_stays_within_the_limit() {
        let mut t = Tail::default();
        t.push(&vec![0xff; 3000]);
        let s = t.text();
        assert!(s.len() <= TAIL_BYTES, "{}", s.len());
        assert!(s.chars().all(|c| c == '\u{fffd}'));
    }
}
