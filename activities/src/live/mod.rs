//! Live output: a running command's output, redacted as it arrives, for the heartbeat details
//! (a short [`Tail`] of each stream) and for the Redis stream `ae:output:<runId>` (appended by one
//! [`OutputSink`] writer task per worker).
//!
//! Nothing unredacted leaves this module: every byte goes through the execution's own redactor
//! (env values included) as a [`StreamRedactor`], which holds back a window across chunk
//! boundaries; tails and stream entries are cut from what it released, never from raw bytes.
//! The stream never slows a command on Redis: entries go through a bounded queue and are dropped
//! (and counted) when it is full. Redacting is done inline, so a command's output is read no
//! faster than it can be redacted.
//!
//! It does not capture the result's output (`sandbox::exec` keeps its bounded prefix, redacted
//! at the end by `pipeline::finish`) nor heartbeat (`pipeline::run`).

mod tail;
mod writer;

pub use tail::{TAIL_BYTES, Tail};
pub use writer::{OUTPUT_STREAM_PREFIX, OutputSink, PIECE_BYTES, output_key};

use crate::redact::{Redactor, StreamRedactor};

/// Raw bytes of one stream of one command that are redacted live; past them the stream gets a
/// notice and the rest is only counted (and captured for the result as usual). Redaction runs
/// inline, so this bounds what a flood of output costs in worker CPU and command time.
pub const LIVE_BYTES: u64 = 64 << 20;
use std::sync::{Arc, Mutex};
use writer::Piece;

/// One of a command's output streams.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stream {
    Stdout,
    Stderr,
}

impl Stream {
    /// The stream entry's `stream` field.
    pub fn as_str(self) -> &'static str {
        match self {
            Stream::Stdout => "stdout",
            Stream::Stderr => "stderr",
        }
    }
}

/// Whose output it is: the stream key's run and the entries' other fields.
#[derive(Debug, Clone, Default)]
pub struct Source {
    pub run_id: String,
    pub workflow_id: String,
    pub activity_id: String,
}

/// Where one activity's commands report their output: the worker's sink, who they are, and the
/// activity's redactor (built with its env). Cheap to clone.
#[derive(Clone)]
pub struct Live {
    sink: OutputSink,
    source: Arc<Source>,
    redactor: Redactor,
}

impl Live {
    /// Output of `source`'s commands, redacted with `redactor`, appended through `sink`.
    pub fn new(sink: &OutputSink, source: Source, redactor: &Redactor) -> Live {
        Live {
            sink: sink.clone(),
            source: Arc::new(source),
            redactor: redactor.clone(),
        }
    }

    /// A capture for one command.
    pub fn capture(&self) -> LiveCapture {
        let lane = || Lane {
            redactor: self.redactor.stream(),
            tail: Tail::default(),
            skipped: 0,
            stopped: false,
        };
        LiveCapture {
            state: Mutex::new(State {
                live: self.clone(),
                lanes: [lane(), lane()],
            }),
        }
    }
}

/// One command's live output: per stream, a stream redactor and the tail of what it released.
pub struct LiveCapture {
    state: Mutex<State>,
}

struct State {
    live: Live,
    lanes: [Lane; 2],
}

struct Lane {
    redactor: StreamRedactor,
    tail: Tail,
    /// Redacted bytes dropped since the last piece queued (the queue was full).
    skipped: u64,
    /// Past [`LIVE_BYTES`]: what is still held back was discarded, nothing more is redacted.
    stopped: bool,
}

impl std::fmt::Debug for LiveCapture {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("LiveCapture")
    }
}

impl LiveCapture {
    /// Takes a chunk the command wrote to `stream`.
    pub fn push(&self, stream: Stream, bytes: &[u8]) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let lane = &mut st.lanes[stream as usize];
        if lane.stopped {
            return;
        }
        if lane.redactor.bytes_in() + bytes.len() as u64 > LIVE_BYTES {
            // What is held back is dropped unreleased: it may be half a secret.
            lane.stopped = true;
            let notice = format!(
                "\n[ae: live output stops after {} MiB; the result has the rest]\n",
                LIVE_BYTES >> 20
            );
            st.emit(stream, notice.into_bytes(), true);
            return;
        }
        let out = lane.redactor.push(bytes);
        st.emit(stream, out, false);
    }

    /// The command ended: releases what the redactors held back.
    pub fn finish(&self) {
        let mut st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        for stream in [Stream::Stdout, Stream::Stderr] {
            if st.lanes[stream as usize].stopped {
                continue;
            }
            let out = st.lanes[stream as usize].redactor.finish();
            st.emit(stream, out, true);
        }
    }

    /// The redacted tail of `stream` (at most [`TAIL_BYTES`]).
    pub fn tail(&self, stream: Stream) -> String {
        let st = self.state.lock().unwrap_or_else(|e| e.into_inner());
        st.lanes[stream as usize].tail.text()
    }
}

impl State {
    /// Hands redacted bytes to the tail and the stream. `last`: nothing more of this stream
    /// follows, so these bytes wait for room in the queue rather than being dropped.
    fn emit(&mut self, stream: Stream, redacted: Vec<u8>, last: bool) {
        if redacted.is_empty() {
            return;
        }
        let lane = &mut self.lanes[stream as usize];
        lane.tail.push(&redacted);
        if !self.live.sink.enabled() {
            return;
        }
        let piece = |data: &[u8], skipped: u64| Piece {
            source: self.live.source.clone(),
            stream,
            data: data.to_vec(),
            skipped,
        };
        if last {
            let mut skipped = std::mem::take(&mut lane.skipped);
            let pieces = writer::pieces(&redacted)
                .into_iter()
                .map(|data| piece(data, std::mem::take(&mut skipped)))
                .collect();
            self.live.sink.send_final(pieces);
            return;
        }
        for data in writer::pieces(&redacted) {
            let queued = self.live.sink.send(piece(data, lane.skipped));
            if queued {
                lane.skipped = 0;
            } else {
                lane.skipped += data.len() as u64;
                crate::metrics::get()
                    .live_output_dropped
                    .inc_by(data.len() as u64);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_split_across_writes_never_reaches_the_tail() {
        let red = Redactor::standard().with_env([("MY_TOKEN", "hunter2-very-secret")]);
        let live = Live::new(&OutputSink::disabled(), Source::default(), &red);
        let cap = live.capture();
        let token = ["ghp_", "aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4"].concat();
        let (a, b) = token.split_at(7);
        cap.push(Stream::Stdout, b"start\n");
        cap.push(Stream::Stdout, a.as_bytes());
        assert_eq!(cap.tail(Stream::Stdout), "start\n");
        cap.push(Stream::Stdout, b.as_bytes());
        cap.push(Stream::Stdout, b" hunter2-very");
        cap.push(Stream::Stdout, b"-secret\n");
        cap.push(Stream::Stderr, b"err ");
        cap.finish();
        let out = cap.tail(Stream::Stdout);
        assert_eq!(
            out, "start\n[REDACTED:GITHUB_TOKEN] [REDACTED:ENV_VALUE]\n",
            "{out}"
        );
        assert_eq!(cap.tail(Stream::Stderr), "err ");
    }

    #[test]
    fn a_flood_stops_live_redaction_without_releasing_what_was_held() {
        let live = Live::new(
            &OutputSink::disabled(),
            Source::default(),
            &Redactor::standard(),
        );
        let cap = live.capture();
        let chunk = vec![b'y'; 1 << 20];
        for _ in 0..(LIVE_BYTES >> 20) - 1 {
            cap.push(Stream::Stdout, &chunk);
        }
        cap.push(Stream::Stdout, b"line\nghp_aB3dE5fG7hJ9kL1mN2");
        cap.push(Stream::Stdout, &chunk);
        cap.push(Stream::Stdout, b"pQ4rS6tU8vW0xY2zA4\n");
        cap.finish();
        let tail = cap.tail(Stream::Stdout);
        assert!(
            tail.ends_with(
                "line\n\n[ae: live output stops after 64 MiB; the result has the rest]\n"
            ),
            "{tail}"
        );
        assert!(!tail.contains("ghp_"));
    }

    /// Redis stalls (CLIENT PAUSE) while a command prints fast: the queue fills, later pieces
    /// are dropped and counted, the next entry says how much is missing, and the end of the
    /// stream still arrives once Redis answers again.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_stalled_redis_drops_pieces_with_a_notice_but_never_a_streams_end() {
        use crate::testing::TestRedis;
        use std::time::Duration;
        let redis = TestRedis::start().await;
        let sink = OutputSink::new(redis.conn().await, 100_000, Duration::from_secs(60));
        let source = Source {
            run_id: "stalled".into(),
            workflow_id: "wf".into(),
            activity_id: "1".into(),
        };
        let live = Live::new(&sink, source, &Redactor::standard());
        let cap = live.capture();
        let dropped_before = crate::metrics::get().live_output_dropped.get();
        let mut admin = redis.conn().await;
        let _: () = redis::cmd("CLIENT")
            .arg("PAUSE")
            .arg(1500)
            .arg("ALL")
            .query_async(&mut admin)
            .await
            .unwrap();
        const LINES: usize = 3000;
        cap.push(Stream::Stdout, b"line 0\n");
        // The writer gathers for ~100 ms, then blocks on the paused Redis with line 0.
        tokio::time::sleep(Duration::from_millis(400)).await;
        for i in 1..LINES {
            cap.push(Stream::Stdout, format!("line {i}\n").as_bytes());
        }
        // Held back until the end (no newline), then released as the stream's last piece.
        cap.push(Stream::Stdout, b"the-end");
        cap.finish();
        let dropped = crate::metrics::get().live_output_dropped.get() - dropped_before;
        assert!(dropped > 0, "nothing was dropped: the queue never filled");

        let mut conn = redis.conn().await;
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        let data: Vec<String> = loop {
            // Times out while Redis is paused.
            let reply: Result<redis::streams::StreamRangeReply, _> =
                redis::AsyncCommands::xrange_all(&mut conn, "ae:output:stalled").await;
            let data: Vec<String> = reply
                .map(|r| r.ids)
                .unwrap_or_default()
                .iter()
                .map(|id| id.get::<String>("data").unwrap_or_default())
                .collect();
            if data.last().is_some_and(|d| d.ends_with("the-end"))
                || std::time::Instant::now() > deadline
            {
                break data;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        assert!(
            data.last().is_some_and(|d| d.ends_with("the-end")),
            "the end never arrived: {:?}",
            data.last()
        );
        let all = data.concat();
        assert!(
            all.contains("bytes of output not streamed]\n"),
            "no gap notice"
        );
        assert!(all.len() < LINES * 8, "nothing was missing");
    }
}
