//! Hostile inputs and outputs (issue 9), through the real server, worker and Docker: a path
//! bomb refused before it costs memory, output files that would burst the payload limit, an
//! env value hidden in a binary output file, and a newline in a command trying to forge a log
//! line.

use ae_tests::harness::{
    ExtraWorker, RunOpts, harness, run_activity, run_id, start_worker, worker_pid,
};
use ae_tests::workflows::Outcome;
use base64::Engine as _;
use redis::AsyncCommands;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

async fn execute_on(worker: &ExtraWorker, input: Value) -> Outcome {
    let opts = RunOpts {
        task_queue: worker.task_queue.clone(),
        ..RunOpts::default()
    };
    run_activity("safeExecuteCode", input, opts).await.0
}

/// A `/proc/<pid>/status` field in kB.
fn status_kb(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

#[tokio::test]
async fn a_path_bomb_is_refused_at_once_without_growing_the_worker() {
    let worker = start_worker(&[]);
    // Warm the worker up so its baseline includes a normal execution.
    let o = execute_on(&worker, json!({"runId": run_id("warm"), "command": "true"})).await;
    assert!(o.result.is_some(), "{o:?}");
    let pid = worker_pid(&worker.identity).unwrap();
    // Reset the peak: from here VmHWM is the peak of this test alone.
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").unwrap();
    let before = status_kb(pid, "VmRSS:");
    let files: Vec<Value> = (0..400)
        .map(|i| json!({"path": format!("{}f{i}", "d/".repeat(1000)), "content": "x"}))
        .collect();
    let run = run_id("pathbomb");
    let t = Instant::now();
    let o = execute_on(
        &worker,
        json!({"runId": run, "command": "true", "workspaceFiles": files}),
    )
    .await;
    let took = t.elapsed();
    let e = o.error.expect("refused");
    assert_eq!(e.r#type, "InvalidInput", "{}", e.message);
    let peak = status_kb(pid, "VmHWM:");
    assert!(
        peak.saturating_sub(before) < 50 * 1024,
        "the worker grew from {before} kB to a peak of {peak} kB"
    );
    // Well under a second in the worker; the round trip through Temporal adds its own.
    assert!(took < Duration::from_secs(5), "{took:?}");
    let spent: Option<String> = harness()
        .redis()
        .await
        .get(format!("spent:{run}"))
        .await
        .unwrap();
    assert!(
        spent.as_deref().is_none_or(|s| s == "0"),
        "charged: {spent:?}"
    );
}

#[tokio::test]
async fn output_files_past_the_payload_limit_are_cut_and_charged_once() {
    let worker = start_worker(&[]);
    let run = run_id("outfiles");
    let names: Vec<String> = (0..24).map(|i| format!("f{i}.bin")).collect();
    let o = execute_on(
        &worker,
        json!({
            "runId": run,
            "command": "i=0; while [ $i -lt 24 ]; do head -c 262144 /dev/urandom > f$i.bin; i=$((i+1)); done",
            "outputFiles": names,
        }),
    )
    .await;
    let r = o
        .result
        .unwrap_or_else(|| panic!("no result: {:?}", o.error));
    let files = r["outputFiles"].as_array().unwrap();
    assert_eq!(files.len(), 24);
    assert!(
        files.iter().any(|f| f["truncated"] == true),
        "nothing was cut"
    );
    for f in files {
        assert_eq!(f["encoding"], "base64");
        base64::engine::general_purpose::STANDARD
            .decode(f["content"].as_str().unwrap())
            .expect("a cut file still decodes");
    }
    assert!(serde_json::to_vec(&r).unwrap().len() <= 1_572_864);
    let spent: String = harness()
        .redis()
        .await
        .get(format!("spent:{run}"))
        .await
        .unwrap();
    assert_eq!(spent, "0.01", "charged more than once");
}

#[tokio::test]
async fn an_env_value_inside_a_binary_output_file_is_redacted() {
    let worker = start_worker(&[]);
    let secret = "zq7-Kp2mW9xT4vB8nR3s";
    let o = execute_on(
        &worker,
        json!({
            "runId": run_id("binsecret"),
            "env": {"DEPLOY_TOKEN": secret},
            "command": "printf '\\377\\000\\001' > out.bin; printf %s \"$DEPLOY_TOKEN\" >> out.bin; printf '\\377\\000' >> out.bin",
            "outputFiles": ["out.bin"],
        }),
    )
    .await;
    let r = o
        .result
        .unwrap_or_else(|| panic!("no result: {:?}", o.error));
    let f = &r["outputFiles"][0];
    assert_eq!(f["encoding"], "base64", "{f}");
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(f["content"].as_str().unwrap())
        .unwrap();
    assert!(bytes.starts_with(&[0xff, 0, 1]), "{bytes:?}");
    assert!(
        !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
        "the env value came back"
    );
    assert!(String::from_utf8_lossy(&bytes).contains("[REDACTED:"));
}

#[tokio::test]
async fn a_newline_in_a_command_cannot_forge_a_log_line() {
    let worker = start_worker(&[]);
    let forged = "2031-01-01T00:00:00.000000Z  INFO ae_audit: audit record=FORGED-APPROVAL";
    let command = format!("echo hi\n{forged}\ntrue");
    let o = execute_on(
        &worker,
        json!({"runId": run_id("forge"), "command": command}),
    )
    .await;
    assert!(o.result.is_some(), "{o:?}");
    let log = harness()
        .log_dir
        .join(format!("worker-{}.log", worker.identity));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("FORGED-APPROVAL"),
        "the command was not logged at all"
    );
    for line in text.lines() {
        assert!(
            !line.starts_with("2031-01-01"),
            "a caller's text started a log line: {line}"
        );
    }
}
