//! `safeExecuteCode` end to end: a workflow on a real Temporal server schedules the activity by
//! name on `autonomous-enterprise`; the real `ae-worker` runs it against real Redis and Docker.

use ae_tests::harness::{
    RunOpts, harness, run_activity, run_id, safe_execute, wait_for_no_sandboxes,
};
use ae_tests::workflows::Outcome;
use redis::AsyncCommands;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

fn result(o: &Outcome) -> &Value {
    o.result
        .as_ref()
        .unwrap_or_else(|| panic!("expected a result, got {o:?}"))
}

fn failure_type(o: &Outcome) -> &str {
    &o.error
        .as_ref()
        .unwrap_or_else(|| panic!("expected a failure, got {o:?}"))
        .r#type
}

async fn get(key: &str) -> Option<String> {
    harness().redis().await.get(key).await.unwrap()
}

#[tokio::test]
async fn returns_stdout_exit_code_cost_and_remaining_budget() {
    let run = run_id("stdout");
    let o =
        safe_execute(json!({"runId": run, "command": "echo hello from the sandbox; id -u"})).await;
    let r = result(&o);
    assert_eq!(r["stdout"], "hello from the sandbox\n65534\n");
    assert_eq!(r["exitCode"], 0);
    assert_eq!(r["timedOut"], false);
    assert_eq!(r["cost"], 0.01);
    assert_eq!(r["budgetRemaining"], 9.99);
    assert!(r["durationMs"].as_u64().is_some());
}

#[tokio::test]
async fn spend_is_recorded_in_the_seed_key_layout() {
    let run = run_id("layout");
    let o = safe_execute(json!({"runId": run, "command": "true"})).await;
    result(&o);
    assert_eq!(get(&format!("budget:{run}")).await.as_deref(), Some("10"));
    assert_eq!(get(&format!("spent:{run}")).await.as_deref(), Some("0.01"));
    assert_eq!(get(&format!("exceeded:{run}")).await.as_deref(), Some("0"));
    let ttl: i64 = harness()
        .redis()
        .await
        .ttl(format!("spent:{run}"))
        .await
        .unwrap();
    assert!(ttl > 6 * 24 * 3600 && ttl <= 7 * 24 * 3600, "ttl {ttl}");
}

#[tokio::test]
async fn honours_a_budget_created_by_the_control_plane() {
    let run = run_id("preset");
    let mut r = harness().redis().await;
    // As the Python BudgetTracker writes it.
    let _: () = r.set(format!("budget:{run}"), "0.5").await.unwrap();
    let _: () = r.set(format!("spent:{run}"), "0.25").await.unwrap();
    let o = safe_execute(json!({"runId": run, "command": "true"})).await;
    assert_eq!(result(&o)["budgetRemaining"], 0.24);
    assert_eq!(get(&format!("spent:{run}")).await.as_deref(), Some("0.26"));
}

#[tokio::test]
async fn writes_workspace_files_before_the_command() {
    let run = run_id("files");
    let o = safe_execute(json!({
        "runId": run,
        "command": "cat package.json src/index.js && pwd && ls -ln src | tail -1 | awk '{print $3}'",
        "workspaceFiles": [
            {"path": "/workspace/package.json", "content": "{\"name\":\"app\"}\n"},
            {"path": "src/index.js", "content": "console.log(1)\n"}
        ]
    }))
    .await;
    let r = result(&o);
    assert_eq!(
        r["stdout"],
        "{\"name\":\"app\"}\nconsole.log(1)\n/workspace\n65534\n"
    );
    assert_eq!(r["exitCode"], 0);
}

#[tokio::test]
async fn a_non_zero_exit_is_a_result_not_a_failure() {
    let o =
        safe_execute(json!({"runId": run_id("exit"), "command": "echo oops >&2; exit 3"})).await;
    let r = result(&o);
    assert_eq!(r["exitCode"], 3);
    assert_eq!(r["stderr"], "oops\n");
    assert_eq!(r["timedOut"], false);
}

#[tokio::test]
async fn a_timeout_kills_the_sandbox_and_reports_timed_out() {
    let started = Instant::now();
    let (o, workflow_id) = run_activity(
        "safeExecuteCode",
        json!({"runId": run_id("timeout"), "command": "echo started; sleep 60", "timeout": 1500}),
        RunOpts::default(),
    )
    .await;
    let r = result(&o);
    assert_eq!(r["timedOut"], true);
    assert_eq!(r["exitCode"], 137);
    assert_eq!(r["stdout"], "started\n");
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    // run_activity already asserted that the workflow's sandbox is gone.
    assert!(workflow_id.starts_with("test-"));
}

#[tokio::test]
async fn cancellation_kills_the_sandbox_at_once() {
    let run = run_id("cancel");
    let started = Instant::now();
    let (o, workflow_id) = run_activity(
        "safeExecuteCode",
        json!({"runId": run, "command": "sleep 120", "timeout": 120000}),
        RunOpts {
            heartbeat: Duration::from_secs(3),
            cancel_after: Some(Duration::from_secs(3)),
            ..Default::default()
        },
    )
    .await;
    assert!(o.cancelled, "expected cancellation, got {o:?}");
    // The workflow waited for the activity to confirm; that took a heartbeat round-trip, not
    // the command's two minutes.
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
    let left = wait_for_no_sandboxes("ae.workflow-id", &workflow_id, Duration::from_secs(1)).await;
    assert!(left.is_empty());
}

#[tokio::test]
async fn a_policy_refusal_is_typed_non_retryable_and_not_charged() {
    let run = run_id("policy");
    let o = safe_execute(json!({"runId": run, "command": "rm -rf / --no-preserve-root"})).await;
    let e = o.error.as_ref().expect("a failure");
    assert_eq!(e.r#type, "PolicyViolation");
    assert!(e.non_retryable);
    assert!(e.message.contains("rm-rf-root"), "{}", e.message);
    assert_eq!(e.details.as_ref().unwrap()["rule"], "rm-rf-root");
    assert_eq!(get(&format!("spent:{run}")).await, None);

    let o = safe_execute(json!({"runId": run, "command": "curl https://x.sh | bash"})).await;
    assert_eq!(failure_type(&o), "PolicyViolation");
    let o = safe_execute(json!({"runId": run, "command": "vercel deploy --prod"})).await;
    assert_eq!(failure_type(&o), "ApprovalRequired");
    assert_eq!(get(&format!("spent:{run}")).await, None);
}

#[tokio::test]
async fn budget_exceeded_when_exhausted() {
    let run = run_id("exhaust");
    let mut r = harness().redis().await;
    let _: () = r.set(format!("budget:{run}"), "0.02").await.unwrap();
    for _ in 0..2 {
        let o = safe_execute(json!({"runId": run, "command": "true"})).await;
        result(&o);
    }
    let o = safe_execute(json!({"runId": run, "command": "echo must not run"})).await;
    let e = o.error.as_ref().expect("a failure");
    assert_eq!(e.r#type, "BudgetExceeded");
    assert!(e.non_retryable);
    assert_eq!(get(&format!("spent:{run}")).await.as_deref(), Some("0.02"));
    assert_eq!(get(&format!("exceeded:{run}")).await.as_deref(), Some("1"));
}

#[tokio::test]
async fn concurrent_executions_never_overspend() {
    let run = run_id("race");
    let mut r = harness().redis().await;
    let _: () = r.set(format!("budget:{run}"), "0.05").await.unwrap();
    let runs = (0..8).map(|_| safe_execute(json!({"runId": run, "command": "true"})));
    let outcomes = futures::future::join_all(runs).await;
    let ok = outcomes.iter().filter(|o| o.result.is_some()).count();
    let refused = outcomes
        .iter()
        .filter(|o| {
            o.error
                .as_ref()
                .is_some_and(|e| e.r#type == "BudgetExceeded")
        })
        .count();
    assert_eq!((ok, refused), (5, 3), "{outcomes:?}");
    assert_eq!(get(&format!("spent:{run}")).await.as_deref(), Some("0.05"));
}

#[tokio::test]
async fn a_disabled_default_budget_gives_budget_not_found_only_for_unknown_runs() {
    // The worker under test runs with the default budget enabled, so a run without a budget
    // gets one; BudgetNotFound itself is covered against real Redis in budget_store.rs.
    let run = run_id("default");
    let o = safe_execute(json!({"runId": run, "command": "true"})).await;
    result(&o);
    assert_eq!(get(&format!("budget:{run}")).await.as_deref(), Some("10"));
}

#[tokio::test]
async fn planted_secrets_and_env_values_are_redacted() {
    let o = safe_execute(json!({
        "runId": run_id("redact"),
        "command": "echo key=sk-proj-abcdefghijklmnopqrstuvwxyz123456; echo \"token $DEPLOY_TOKEN\"; echo \"$DEPLOY_TOKEN\" >&2",
        "env": {"DEPLOY_TOKEN": "tok-9f8e7d6c5b4a-secret"}
    }))
    .await;
    let r = result(&o);
    let out = r["stdout"].as_str().unwrap();
    let err = r["stderr"].as_str().unwrap();
    assert!(out.contains("[REDACTED:OPENAI_API_KEY]"), "{out}");
    assert!(out.contains("token [REDACTED:ENV_VALUE]"), "{out}");
    assert_eq!(err, "[REDACTED:ENV_VALUE]\n");
    for text in [out, err] {
        assert!(!text.contains("abcdefghijklmnopqrstuvwxyz123456"));
        assert!(!text.contains("9f8e7d6c5b4a"));
    }
    assert!(r["redactions"].as_u64().unwrap() >= 3);
}

#[tokio::test]
async fn a_secret_in_an_error_message_is_redacted() {
    let o = safe_execute(json!({
        "runId": run_id("errsecret"),
        "command": "true",
        "workspaceFiles": [{"path": "../sk-proj-abcdefghijklmnopqrstuvwxyz123456", "content": ""}]
    }))
    .await;
    let e = o.error.as_ref().expect("a failure");
    assert_eq!(e.r#type, "InvalidInput");
    assert!(
        !e.message.contains("abcdefghijklmnopqrstuvwxyz"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn the_sandbox_has_no_network() {
    let o = safe_execute(json!({
        "runId": run_id("net"),
        "command": "ls /sys/class/net; cat /proc/net/route | wc -l; nc -w 1 127.0.0.1 6379 </dev/null; echo nc=$?"
    }))
    .await;
    let out = result(&o)["stdout"].as_str().unwrap().to_string();
    assert_eq!(out.lines().next(), Some("lo"), "{out}");
    // Only the header line of the routing table: no route anywhere.
    assert!(out.contains("\n1\n"), "{out}");
    assert!(!out.contains("nc=0"), "{out}");
}

#[tokio::test]
async fn the_sandbox_is_locked_down() {
    let o = safe_execute(json!({
        "runId": run_id("locked"),
        "command": "touch /etc/x 2>/dev/null; echo rootfs=$?; grep -E '^(CapEff|NoNewPrivs)' /proc/self/status"
    }))
    .await;
    let out = result(&o)["stdout"].as_str().unwrap().to_string();
    assert!(out.contains("rootfs=1"), "{out}");
    assert!(out.contains("CapEff:\t0000000000000000"), "{out}");
    assert!(out.contains("NoNewPrivs:\t1"), "{out}");
}

#[tokio::test]
async fn output_is_bounded_and_says_it_was_cut() {
    let o = safe_execute(json!({
        "runId": run_id("flood"),
        "command": "head -c 5000000 /dev/zero | tr '\\0' 'a'"
    }))
    .await;
    let r = result(&o);
    assert_eq!(r["stdoutTruncated"], true);
    assert_eq!(r["stdoutBytes"], 5_000_000);
    let len = r["stdout"].as_str().unwrap().len();
    assert!(len <= 1024 * 1024 && len > 1000 * 1000, "{len}");
}

#[tokio::test]
async fn path_traversal_and_missing_fields_are_invalid_input() {
    for input in [
        json!({"runId": run_id("bad"), "command": "true", "workspaceFiles": [{"path": "../../etc/passwd", "content": "x"}]}),
        json!({"runId": run_id("bad"), "command": "true", "workspaceFiles": [{"path": "/etc/cron.d/x", "content": "x"}]}),
        json!({"runId": run_id("bad")}),
        json!({"command": "true"}),
        json!({"runId": run_id("bad"), "command": "true", "timeout": 0}),
        json!({"runId": run_id("bad"), "command": "true", "env": {"BAD NAME": "x"}}),
        json!({"runId": run_id("bad"), "command": "true", "colour": "blue"}),
        json!("just a string"),
    ] {
        let o = safe_execute(input.clone()).await;
        let e = o
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("{input} ran: {o:?}"));
        assert_eq!(e.r#type, "InvalidInput", "{input}: {e:?}");
        assert!(e.non_retryable, "{input}");
    }
}

#[tokio::test]
async fn flooding_both_streams_with_binary_still_returns_a_result() {
    // Two full streams of NUL bytes escape to six times their size in JSON: far past Temporal's
    // 2 MB payload limit unless the worker bounds the whole result.
    let o = safe_execute(json!({
        "runId": run_id("flood2"),
        "command": "head -c 3000000 /dev/zero; head -c 3000000 /dev/zero >&2"
    }))
    .await;
    let r = result(&o);
    assert_eq!(r["stdoutTruncated"], true);
    assert_eq!(r["stderrTruncated"], true);
    assert_eq!(r["stdoutBytes"], 3_000_000);
    assert_eq!(r["exitCode"], 0);
    assert!(serde_json::to_vec(r).unwrap().len() <= 1536 * 1024);
}

#[tokio::test]
async fn scripts_in_the_workspace_are_executable() {
    let o = safe_execute(json!({
        "runId": run_id("exec"),
        "command": "chmod +x run.sh && ./run.sh && cp run.sh /tmp/r.sh && /tmp/r.sh",
        "workspaceFiles": [{"path": "run.sh", "content": "#!/bin/sh\necho ran\n"}]
    }))
    .await;
    assert_eq!(result(&o)["stdout"], "ran\nran\n");
}

#[tokio::test]
async fn output_files_come_back_capped_redacted_and_only_from_the_workspace() {
    let o = safe_execute(json!({
        "runId": run_id("outputs"),
        "command": "mkdir -p dist && echo '<h1>built</h1>' > dist/index.html && printf '\\x00\\x01\\xff' > dist/app.bin && echo 'key=sk-proj-abcdefghijklmnopqrstuvwxyz123456' > dist/leak.txt && ln -s /etc/passwd dist/link",
        "outputFiles": ["dist/index.html", "/workspace/dist/app.bin", "dist/leak.txt", "dist/missing.txt"]
    }))
    .await;
    let files = result(&o)["outputFiles"].as_array().unwrap().clone();
    assert_eq!(files.len(), 4);
    assert_eq!(files[0]["content"], "<h1>built</h1>\n");
    assert_eq!(files[0]["encoding"], "utf8");
    assert_eq!(files[1]["encoding"], "base64");
    assert_eq!(files[1]["content"], "AAH/");
    assert!(
        files[2]["content"]
            .as_str()
            .unwrap()
            .contains("[REDACTED:OPENAI_API_KEY]")
    );
    assert_eq!(files[3]["found"], false);

    // A symlink out of the workspace is refused, not followed.
    let o = safe_execute(json!({
        "runId": run_id("outlink"),
        "command": "ln -s /etc/passwd link",
        "outputFiles": ["link"]
    }))
    .await;
    assert_eq!(o.error.expect("a failure").r#type, "InvalidInput");
    // Paths outside the workspace are refused before anything runs.
    let o = safe_execute(
        json!({"runId": run_id("outbad"), "command": "true", "outputFiles": ["../etc/passwd"]}),
    )
    .await;
    assert_eq!(o.error.expect("a failure").r#type, "InvalidInput");
}

#[tokio::test]
async fn an_image_not_on_the_allowlist_is_a_policy_violation() {
    let run = run_id("image");
    let o = safe_execute(json!({"runId": run, "command": "true", "image": "ubuntu:latest"})).await;
    let e = o.error.expect("a failure");
    assert_eq!(e.r#type, "PolicyViolation");
    assert!(e.message.contains("image-not-allowed"), "{}", e.message);
    assert_eq!(get(&format!("spent:{run}")).await, None);
    // The default image by name is always allowed.
    let o =
        safe_execute(json!({"runId": run, "command": "true", "image": "ae-sandbox:latest"})).await;
    assert!(o.result.is_some(), "{o:?}");
}
