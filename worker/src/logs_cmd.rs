//! `ae-worker logs --run ID [--follow]`: prints a run's live output stream `ae:output:<runId>`
//! (already redacted by the workers), oldest first, then follows it when asked.
//!
//! The bytes come from a sandbox, so they are escaped before they reach the operator's
//! terminal: newlines and tabs stay, every other control character (escape sequences, carriage
//! returns, backspaces) is printed as `\u{1b}`-style text. It does not write to the stream.

use crate::ops::RedisArgs;
use redis::streams::{StreamId, StreamRangeReply, StreamReadOptions, StreamReadReply};
use std::io::Write;

/// `ae-worker logs`.
#[derive(clap::Args, Debug)]
pub struct LogsArgs {
    /// The run whose output to print.
    #[arg(long)]
    pub run: String,
    /// Keep printing new output as workers append it.
    #[arg(long)]
    pub follow: bool,
    /// One JSON object a line (id, workflowId, activityId, stream, data) instead of the text.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// Prints the stream, then follows it when asked.
pub async fn logs(args: LogsArgs) -> anyhow::Result<()> {
    let mut conn = args.redis.connect().await?;
    let key = ae_activities::live::output_key(&args.run);
    let all: StreamRangeReply = redis::cmd("XRANGE")
        .arg(&key)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await?;
    let mut last = "0-0".to_string();
    for id in &all.ids {
        print_entry(id, args.json)?;
        last = id.id.clone();
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        // Under the connection's 3 s response timeout, or the wait itself would fail.
        let opts = StreamReadOptions::default().block(1_000).count(100);
        let read: Option<StreamReadReply> = redis::AsyncCommands::xread_options(
            &mut conn,
            &[key.as_str()],
            &[last.as_str()],
            &opts,
        )
        .await?;
        for k in read.map(|r| r.keys).unwrap_or_default() {
            for id in &k.ids {
                print_entry(id, args.json)?;
                last = id.id.clone();
            }
        }
    }
}

/// Prints one entry: its data escaped, or the entry as JSON.
fn print_entry(id: &StreamId, json: bool) -> anyhow::Result<()> {
    let field = |name: &str| -> Vec<u8> {
        id.map
            .get(name)
            .and_then(|v| redis::from_redis_value::<Vec<u8>>(v.clone()).ok())
            .unwrap_or_default()
    };
    let data = String::from_utf8_lossy(&field("data")).into_owned();
    let mut out = std::io::stdout().lock();
    if json {
        let text = |name: &str| String::from_utf8_lossy(&field(name)).into_owned();
        let entry = serde_json::json!({
            "id": id.id,
            "workflowId": text("workflowId"),
            "activityId": text("activityId"),
            "stream": text("stream"),
            "data": data,
        });
        writeln!(out, "{entry}")?;
    } else {
        out.write_all(escape_output(&data).as_bytes())?;
    }
    out.flush()?;
    Ok(())
}

/// Output text with every control character but newlines and tabs escaped.
pub fn escape_output(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\n' | '\t' => out.push(c),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => out.extend(c.escape_default()),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape_output;

    #[test]
    fn terminal_escapes_are_printed_as_text() {
        let out = escape_output("ok\n\x1b[2J\x1b]0;owned\x07\rback\x08\tx\u{9b}31m\n");
        assert!(
            !out.chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t'),
            "{out:?}"
        );
        assert_eq!(out.matches('\n').count(), 2);
        assert!(out.contains("\\u{1b}[2J") && out.contains("\\r") && out.contains("\\u{9b}"));
    }
}
