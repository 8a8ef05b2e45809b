//! The writer of `ae:output:<runId>`: one task per worker takes redacted pieces from a bounded
//! queue, coalesces what arrived in about 100 ms into entries of at most [`PIECE_BYTES`], and
//! appends them in one pipeline (`XADD … MAXLEN ~ n`, then `EXPIRE` on every key written).
//!
//! A full queue (Redis slow or down) drops pieces, counted in `live_output_dropped_bytes_total`,
//! and the next entry of that stream says how much is missing; memory stays bounded by the queue
//! (about [`QUEUE`] × [`PIECE_BYTES`]) and one batch. It does not redact: it is only handed
//! redacted bytes.

use super::{Source, Stream};
use redis::aio::ConnectionManager;
use std::sync::{Arc, OnceLock};
use std::time::Duration;
use tokio::sync::mpsc;

/// Key prefix of the live output streams; a run's is `ae:output:<runId>`.
pub const OUTPUT_STREAM_PREFIX: &str = "ae:output:";
/// Largest `data` of one entry, bytes.
pub const PIECE_BYTES: usize = 8 * 1024;
/// Pieces the queue holds before new ones are dropped.
const QUEUE: usize = 512;
/// How long the last pieces of a stream wait for room in a full queue.
const FINAL_WAIT: Duration = Duration::from_secs(10);
/// How long the writer gathers pieces before it writes them.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Most bytes one write carries.
const BATCH_BYTES: usize = 1 << 20;

/// A run's live output stream.
pub fn output_key(run_id: &str) -> String {
    format!("{OUTPUT_STREAM_PREFIX}{run_id}")
}

/// Redacted output of one stream, on its way to Redis.
pub(super) struct Piece {
    pub source: Arc<Source>,
    pub stream: Stream,
    pub data: Vec<u8>,
    /// Bytes of this stream dropped just before this piece.
    pub skipped: u64,
}

/// The worker's way into `ae:output:*` (disabled: every piece is ignored). Cheap to clone; the
/// writer task starts with the first piece.
#[derive(Clone, Default)]
pub struct OutputSink {
    inner: Option<Arc<Inner>>,
}

struct Inner {
    conn: ConnectionManager,
    max_len: usize,
    ttl: Duration,
    tx: OnceLock<mpsc::Sender<Piece>>,
}

impl OutputSink {
    /// Appends to `ae:output:<runId>` on `conn`, each stream capped at about `max_len` entries
    /// (0 disables the streams) and expiring `ttl` after its last write.
    pub fn new(conn: ConnectionManager, max_len: usize, ttl: Duration) -> OutputSink {
        OutputSink {
            inner: (max_len > 0).then(|| {
                Arc::new(Inner {
                    conn,
                    max_len,
                    ttl,
                    tx: OnceLock::new(),
                })
            }),
        }
    }

    /// A sink that writes nothing.
    pub fn disabled() -> OutputSink {
        OutputSink::default()
    }

    pub(super) fn enabled(&self) -> bool {
        self.inner.is_some()
    }

    /// Queues a piece; false when it was dropped (queue full, or no runtime to write from).
    pub(super) fn send(&self, piece: Piece) -> bool {
        let Some(tx) = self.sender() else {
            return false;
        };
        tx.try_send(piece).is_ok()
    }

    /// Queues the last pieces of a stream (the end of a command, or the notice that live output
    /// stops): when the queue is full they wait for room, in order, for at most
    /// [`FINAL_WAIT`], instead of being dropped, so a follower sees how the stream ended. There
    /// are at most two such batches per stream of a command, so waiting keeps memory bounded.
    pub(super) fn send_final(&self, pieces: Vec<Piece>) {
        let Some(tx) = self.sender() else {
            return;
        };
        let mut pieces = pieces.into_iter();
        for piece in pieces.by_ref() {
            match tx.try_send(piece) {
                Ok(()) => continue,
                Err(mpsc::error::TrySendError::Closed(_)) => return,
                Err(mpsc::error::TrySendError::Full(piece)) => {
                    let rest: Vec<Piece> = std::iter::once(piece).chain(pieces).collect();
                    let tx = tx.clone();
                    let Ok(rt) = tokio::runtime::Handle::try_current() else {
                        return;
                    };
                    rt.spawn(async move {
                        for piece in rest {
                            let len = piece.data.len() as u64;
                            if tx.send_timeout(piece, FINAL_WAIT).await.is_err() {
                                crate::metrics::get().live_output_dropped.inc_by(len);
                                return;
                            }
                        }
                    });
                    return;
                }
            }
        }
    }

    /// The queue to the writer task, started on first use.
    fn sender(&self) -> Option<&mpsc::Sender<Piece>> {
        let inner = self.inner.as_ref()?;
        Some(inner.tx.get_or_init(|| {
            let (tx, rx) = mpsc::channel(QUEUE);
            let (conn, max_len, ttl) = (inner.conn.clone(), inner.max_len, inner.ttl);
            match tokio::runtime::Handle::try_current() {
                Ok(rt) => {
                    rt.spawn(write(rx, conn, max_len, ttl));
                }
                Err(_) => tracing::error!("no runtime: live output is not streamed"),
            }
            tx
        }))
    }
}

/// Splits redacted bytes into pieces of at most [`PIECE_BYTES`], at UTF-8 character boundaries
/// where there is one near.
pub(super) fn pieces(data: &[u8]) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let mut rest = data;
    while rest.len() > PIECE_BYTES {
        let mut cut = PIECE_BYTES;
        while cut > PIECE_BYTES - 4 && rest[cut] & 0xC0 == 0x80 {
            cut -= 1;
        }
        if rest[cut] & 0xC0 == 0x80 {
            cut = PIECE_BYTES;
        }
        out.push(&rest[..cut]);
        rest = &rest[cut..];
    }
    if !rest.is_empty() {
        out.push(rest);
    }
    out
}

/// One stream entry: consecutive pieces of the same command's stream, merged.
struct Entry {
    source: Arc<Source>,
    stream: Stream,
    data: Vec<u8>,
}

/// Merges consecutive pieces of one source and stream up to [`PIECE_BYTES`]; a piece after a
/// gap starts a new entry that says how much is missing.
fn coalesce(batch: Vec<Piece>) -> Vec<Entry> {
    let mut out: Vec<Entry> = Vec::new();
    for p in batch {
        if let Some(last) = out.last_mut()
            && p.skipped == 0
            && Arc::ptr_eq(&last.source, &p.source)
            && last.stream == p.stream
            && last.data.len() + p.data.len() <= PIECE_BYTES
        {
            last.data.extend_from_slice(&p.data);
            continue;
        }
        let mut data = Vec::new();
        if p.skipped > 0 {
            data = format!("[ae: {} bytes of output not streamed]\n", p.skipped).into_bytes();
        }
        data.extend_from_slice(&p.data);
        out.push(Entry {
            source: p.source,
            stream: p.stream,
            data,
        });
    }
    out
}

/// The writer task: gathers, coalesces and appends until every sender is gone.
async fn write(
    mut rx: mpsc::Receiver<Piece>,
    mut conn: ConnectionManager,
    max_len: usize,
    ttl: Duration,
) {
    let mut last_warning: Option<tokio::time::Instant> = None;
    while let Some(first) = rx.recv().await {
        let mut bytes = first.data.len();
        let mut batch = vec![first];
        let until = tokio::time::Instant::now() + FLUSH_EVERY;
        while bytes < BATCH_BYTES {
            match tokio::time::timeout_at(until, rx.recv()).await {
                Ok(Some(p)) => {
                    bytes += p.data.len();
                    batch.push(p);
                }
                Ok(None) | Err(_) => break,
            }
        }
        let entries = coalesce(batch);
        let mut pipe = redis::pipe();
        let mut keys = std::collections::BTreeSet::new();
        for e in &entries {
            let key = output_key(&e.source.run_id);
            pipe.cmd("XADD")
                .arg(&key)
                .arg("MAXLEN")
                .arg("~")
                .arg(max_len)
                .arg("*")
                .arg("workflowId")
                .arg(&e.source.workflow_id)
                .arg("activityId")
                .arg(&e.source.activity_id)
                .arg("stream")
                .arg(e.stream.as_str())
                .arg("data")
                .arg(&e.data[..])
                .ignore();
            keys.insert(key);
        }
        for key in keys {
            pipe.cmd("EXPIRE")
                .arg(key)
                .arg(ttl.as_secs().max(1))
                .ignore();
        }
        if let Err(e) = pipe.query_async::<()>(&mut conn).await {
            crate::metrics::get()
                .live_output_dropped
                .inc_by(bytes as u64);
            let now = tokio::time::Instant::now();
            if last_warning.is_none_or(|t| now - t > Duration::from_secs(30)) {
                last_warning = Some(now);
                tracing::warn!(error = %e, "cannot append live output to Redis; dropping it");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn piece(source: &Arc<Source>, stream: Stream, data: &str, skipped: u64) -> Piece {
        Piece {
            source: source.clone(),
            stream,
            data: data.as_bytes().to_vec(),
            skipped,
        }
    }

    #[test]
    fn coalesces_one_streams_consecutive_pieces_and_marks_gaps() {
        let a = Arc::new(Source::default());
        let b = Arc::new(Source::default());
        let batch = vec![
            piece(&a, Stream::Stdout, "1\n", 0),
            piece(&a, Stream::Stdout, "2\n", 0),
            piece(&a, Stream::Stderr, "e\n", 0),
            piece(&b, Stream::Stderr, "f\n", 0),
            piece(&b, Stream::Stderr, "g\n", 42),
        ];
        let out: Vec<(String, &str)> = coalesce(batch)
            .into_iter()
            .map(|e| (String::from_utf8(e.data).unwrap(), e.stream.as_str()))
            .collect();
        assert_eq!(
            out,
            [
                ("1\n2\n".to_string(), "stdout"),
                ("e\n".to_string(), "stderr"),
                ("f\n".to_string(), "stderr"),
                (
                    "[ae: 42 bytes of output not streamed]\ng\n".to_string(),
                    "stderr"
                ),
            ]
        );
    }

    #[test]
    fn pieces_are_bounded_and_cut_between_characters() {
        let text = "é".repeat(PIECE_BYTES);
        let ps = pieces(text.as_bytes());
        assert!(ps.iter().all(|p| p.len() <= PIECE_BYTES));
        assert!(ps.iter().all(|p| std::str::from_utf8(p).is_ok()));
        assert_eq!(ps.concat(), text.as_bytes());
        assert_eq!(pieces(b"").len(), 0);
        let bin = vec![0x80u8; 3 * PIECE_BYTES];
        assert_eq!(pieces(&bin).concat(), bin);
    }
}
