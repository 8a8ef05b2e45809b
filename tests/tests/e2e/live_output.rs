//! Live output (issue 14), through the real server, worker, Redis and Docker: a running command
//! (a line a second) is followed in `ae:output:<runId>`, through `ae-worker logs --follow` and in its heartbeats
//! before it ends; a secret printed in two writes never shows anywhere; a command printing a
//! lot keeps the worker's memory bounded and the stream capped.

use ae_tests::harness::{
    ExtraWorker, RunOpts, binary, harness, outcome_of, run_activity, run_id, start_activity,
    start_worker, temporal_cli, worker_pid,
};
use base64::Engine as _;
use redis::AsyncCommands;
use redis::streams::StreamRangeReply;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The GitHub token the command prints in two writes a second apart.
const TOKEN: &str = "ghp_aB3dE5fG7hJ9kL1mN2pQ4rS6tU8vW0xY2zA4";
/// The env value it prints the same way.
const ENV_SECRET: &str = "Zq7-Kp2mW9xT4vB8nR3s-live";

/// Every fragment of a planted secret that must never show (both halves of each split).
fn fragments() -> Vec<&'static str> {
    vec![
        TOKEN,
        &TOKEN[..7],
        &TOKEN[7..],
        ENV_SECRET,
        &ENV_SECRET[..10],
        &ENV_SECRET[10..],
    ]
}

fn assert_no_secret(what: &str, text: &str) {
    for f in fragments() {
        assert!(!text.contains(f), "{what} holds {f:?}: {text}");
    }
}

/// The entries of `ae:output:<run>`: (field map as strings).
async fn entries(run: &str) -> Vec<std::collections::HashMap<String, String>> {
    let mut redis = harness().redis().await;
    let reply: StreamRangeReply = redis.xrange_all(format!("ae:output:{run}")).await.unwrap();
    reply
        .ids
        .into_iter()
        .map(|id| {
            id.map
                .into_iter()
                .map(|(k, v)| {
                    let bytes: Vec<u8> = redis::from_redis_value(v).unwrap();
                    (k, String::from_utf8_lossy(&bytes).into_owned())
                })
                .collect()
        })
        .collect()
}

/// Every string inside a JSON value, and what each decodes to when it is base64.
fn strings(v: &Value, out: &mut String) {
    match v {
        Value::String(s) => {
            out.push_str(s);
            out.push('\n');
            if let Ok(b) = base64::engine::general_purpose::STANDARD.decode(s) {
                out.push_str(&String::from_utf8_lossy(&b));
                out.push('\n');
            }
        }
        Value::Array(a) => a.iter().for_each(|x| strings(x, out)),
        Value::Object(o) => o.iter().for_each(|(k, x)| {
            out.push_str(k);
            out.push('\n');
            strings(x, out)
        }),
        _ => {}
    }
}

/// `temporal workflow describe` as JSON.
fn describe(workflow_id: &str) -> Value {
    let out = temporal_cli(&[
        "workflow",
        "describe",
        "--workflow-id",
        workflow_id,
        "-o",
        "json",
    ]);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"))
}

fn running(d: &Value) -> bool {
    let status = d["workflowExecutionInfo"]["status"].to_string();
    status.to_ascii_uppercase().contains("RUNNING")
}

#[tokio::test]
async fn a_running_command_is_followed_live_and_a_split_secret_never_leaks() {
    let run = run_id("live");
    // `ae-worker logs --follow`, started before the run exists, reads lines as they come.
    let mut follower = Command::new(binary("ae-worker"))
        .args(["logs", "--run", &run, "--follow"])
        .env("REDIS_URL", &harness().redis_url)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel::<(Instant, String)>();
    let stdout = follower.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if tx.send((Instant::now(), line)).is_err() {
                break;
            }
        }
    });
    let (t1, t2) = TOKEN.split_at(7);
    let command = format!(
        "echo start; printf '{t1}'; sleep 1; printf '{t2} and '; \
         printf '%s' \"${{API_TOKEN%${{API_TOKEN#??????????}}}}\"; sleep 1; \
         printf '%s\\n' \"${{API_TOKEN#??????????}}\"; \
         printf 'esc \\033]0;owned\\007\\033[2J\\n'; echo to-stderr >&2; \
         for i in 1 2 3 4 5 6 7 8; do echo \"line $i\"; sleep 1; done"
    );
    let opts = RunOpts {
        heartbeat: Duration::from_secs(3),
        ..RunOpts::default()
    };
    let input = json!({"runId": run, "command": command, "env": {"API_TOKEN": ENV_SECRET}});
    let workflow_id = start_activity("safeExecuteCode", input, &opts).await;

    // 1. The first line reaches the stream while the activity still runs.
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen = entries(&run).await;
        if seen.iter().any(|e| e["data"].contains("line 1")) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(
        seen.iter().any(|e| e["data"].contains("line 1")),
        "no live output: {seen:?}"
    );
    // `ae-worker logs --follow` prints it too, and the run is still going after that.
    let mut followed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && !followed.iter().any(|l: &String| l.contains("line 1")) {
        if let Ok((_, line)) = lines.recv_timeout(Duration::from_millis(200)) {
            followed.push(line);
        }
    }
    assert!(
        followed.iter().any(|l| l.contains("line 1")),
        "logs --follow printed no line 1: {followed:?}"
    );
    let d = describe(&workflow_id);
    assert!(
        running(&d),
        "the run ended before its first line was read: {d}"
    );
    let first = &seen[0];
    assert_eq!(first["workflowId"], workflow_id);
    assert!(!first["activityId"].is_empty());
    assert!(
        seen.iter()
            .all(|e| e["stream"] == "stdout" || e["stream"] == "stderr"),
        "{seen:?}"
    );

    // 2. A heartbeat read through the server carries the tail.
    let mut heartbeats = String::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut tail_seen = false;
    while Instant::now() < deadline && !tail_seen {
        let d = describe(&workflow_id);
        let mut s = String::new();
        strings(&d["pendingActivities"], &mut s);
        tail_seen = running(&d) && s.contains("line ") && s.contains("stdoutTail");
        heartbeats.push_str(&s);
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(
        tail_seen,
        "no tail in the pending activity's heartbeat: {heartbeats}"
    );

    // 3. The run ends normally.
    let outcome = outcome_of(&workflow_id).await;
    let r = outcome
        .result
        .unwrap_or_else(|| panic!("{:?}", outcome.error));
    assert_eq!(r["exitCode"], 0, "{r}");
    assert!(r["stdout"].as_str().unwrap().contains("line 8"), "{r}");

    // 4. Every chunk is in the stream, redacted; nothing of the secrets anywhere.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = entries(&run).await;
    let stdout: String = all
        .iter()
        .filter(|e| e["stream"] == "stdout")
        .map(|e| e["data"].as_str())
        .collect();
    let stderr: String = all
        .iter()
        .filter(|e| e["stream"] == "stderr")
        .map(|e| e["data"].as_str())
        .collect();
    assert!(
        stdout.starts_with("start\n[REDACTED:GITHUB_TOKEN] and [REDACTED:ENV_VALUE]\n"),
        "{stdout}"
    );
    assert!(stdout.ends_with("line 7\nline 8\n"), "{stdout}");
    assert_eq!(stderr, "to-stderr\n");
    assert_no_secret("the stream", &stdout);
    assert_no_secret("heartbeats", &heartbeats);
    let mut rest = String::new();
    while let Ok((_, line)) = lines.recv_timeout(Duration::from_millis(1500)) {
        followed.push(line);
    }
    let _ = follower.kill();
    let _ = follower.wait();
    for line in &followed {
        rest.push_str(line);
        rest.push('\n');
    }
    assert_no_secret("logs --follow", &rest);
    assert!(rest.contains("line 8"), "{rest}");
    // The terminal escapes the command printed are shown as text, never sent raw.
    let out = Command::new(binary("ae-worker"))
        .args(["logs", "--run", &run])
        .env("REDIS_URL", &harness().redis_url)
        .output()
        .unwrap();
    assert!(out.status.success());
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("esc \\u{1b}]0;owned\\u{7}\\u{1b}[2J\n"),
        "{printed}"
    );
    assert!(
        !out.stdout.iter().any(|&b| b == 0x1b || b == 0x07),
        "{printed}"
    );
    assert_no_secret("logs", &printed);
    // The stream expires.
    let ttl: i64 = harness()
        .redis()
        .await
        .ttl(format!("ae:output:{run}"))
        .await
        .unwrap();
    assert!(ttl > 0, "no expiry: {ttl}");
}

#[tokio::test]
async fn every_command_of_a_batch_streams_its_output() {
    let run = run_id("livebatch");
    let (outcome, workflow_id) = run_activity(
        "safeExecuteBatch",
        json!({"runId": run, "commands": ["echo first", "echo second >&2; echo third"]}),
        RunOpts::default(),
    )
    .await;
    assert!(outcome.result.is_some(), "{:?}", outcome.error);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let all = entries(&run).await;
    let data: Vec<(&str, &str)> = all
        .iter()
        .map(|e| (e["stream"].as_str(), e["data"].as_str()))
        .collect();
    // Entries are chunks: the writer may coalesce what one stream printed within ~100 ms.
    let of = |stream: &str| -> String {
        data.iter()
            .filter(|(s, _)| *s == stream)
            .map(|(_, d)| *d)
            .collect()
    };
    assert_eq!(of("stdout"), "first\nthird\n", "{data:?}");
    assert_eq!(of("stderr"), "second\n", "{data:?}");
    assert!(all.iter().all(|e| e["workflowId"] == workflow_id));
}

/// A `/proc/<pid>/status` field in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

async fn execute_on(worker: &ExtraWorker, input: Value) -> Value {
    let opts = RunOpts {
        task_queue: worker.task_queue.clone(),
        start_to_close: Duration::from_secs(240),
        ..RunOpts::default()
    };
    let o = run_activity("safeExecuteCode", input, opts).await.0;
    o.result
        .unwrap_or_else(|| panic!("no result: {:?}", o.error))
}

#[tokio::test]
async fn a_flood_of_output_keeps_the_worker_bounded_and_the_stream_capped() {
    let worker = start_worker(&[("AE_OUTPUT_STREAM_MAX_LEN", "200")]);
    let warm = run_id("floodwarm");
    execute_on(&worker, json!({"runId": warm, "command": "echo warm"})).await;
    let pid = worker_pid(&worker.identity).unwrap();
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_kb(pid, "VmRSS:");
    let run = run_id("flood");
    const BYTES: u64 = 200_000_000;
    let t = Instant::now();
    let r = execute_on(
        &worker,
        json!({
            "runId": run,
            "command": format!("yes 'flood of output 0123456789 abcdefghij' | head -c {BYTES}; echo; echo the-end"),
            "timeout": 200_000,
        }),
    )
    .await;
    let took = t.elapsed();
    assert_eq!(r["exitCode"], 0, "{r}");
    assert_eq!(r["stdoutBytes"], BYTES + 9, "{r}");
    let peak = status_kb(pid, "VmHWM:");
    assert!(
        peak.saturating_sub(before) < 64 * 1024,
        "the worker grew from {before} kB to a peak of {peak} kB"
    );
    // Live redaction stops after 64 MiB of a stream, with a notice; the result has the rest.
    // The notice is never dropped, even when the queue to Redis is full; the writer may still
    // be draining the queue when the activity completes.
    const NOTICE: &str = "[ae: live output stops after 64 MiB; the result has the rest]\n";
    let deadline = Instant::now() + Duration::from_secs(20);
    let all = loop {
        let all = entries(&run).await;
        if all.last().is_some_and(|e| e["data"].ends_with(NOTICE)) || Instant::now() > deadline {
            break all;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let last = &all.last().unwrap()["data"];
    assert!(last.ends_with(NOTICE), "{last}");
    let mut redis = harness().redis().await;
    let key = format!("ae:output:{run}");
    let len: usize = redis.xlen(&key).await.unwrap();
    // `MAXLEN ~` trims whole nodes (100 entries each by default): about the cap, never far past.
    assert!((1..=200 + 100).contains(&len), "{len} entries");
    assert!(all.iter().all(|e| e["data"].len() <= 8 * 1024 + 64));
    let ttl: i64 = redis.ttl(&key).await.unwrap();
    assert!(ttl > 0, "no expiry: {ttl}");
    eprintln!(
        "flood: {BYTES} bytes in {took:?}, worker peak +{} kB, {len} entries",
        peak.saturating_sub(before)
    );
}
