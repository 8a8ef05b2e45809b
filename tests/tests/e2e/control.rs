//! Operator control against real Redis, Docker and Temporal: the kill switch (new executions
//! refused, running sandboxes killed within 2 s) and the reaper (a worker killed with SIGKILL
//! leaves no sandbox behind once its liveness lapses).

use ae_tests::harness::{
    RunOpts, binary, harness, outcome_of, run_id, safe_execute, sandboxes_with_label,
    start_activity, start_worker, wait_for_no_networks, wait_for_no_sandboxes, wait_for_sandbox,
    worker_pid,
};
use serde_json::json;
use std::process::Command;
use std::time::{Duration, Instant};

fn kill_switch(redis_url: &str, args: &[&str]) -> String {
    let out = Command::new(binary("ae-worker"))
        .arg("kill-switch")
        .args(args)
        .env("REDIS_URL", redis_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_run_kill_switch_refuses_new_executions_until_released() {
    let url = &harness().redis_url;
    let run = run_id("ks-run");
    let status = kill_switch(url, &["on", "--run", &run, "--reason", "runaway agent"]);
    assert!(status.contains(&format!("run {run}: on")), "{status}");

    let o = safe_execute(json!({"runId": run, "command": "echo must not run"})).await;
    let e = o.error.expect("a failure");
    assert_eq!(e.r#type, "KillSwitchEngaged");
    assert!(e.non_retryable);
    assert!(e.message.contains("runaway agent"), "{}", e.message);
    // Other runs are unaffected.
    let o = safe_execute(json!({"runId": run_id("ks-other"), "command": "true"})).await;
    assert!(o.result.is_some(), "{o:?}");

    kill_switch(url, &["off", "--run", &run]);
    let o = safe_execute(json!({"runId": run, "command": "echo back"})).await;
    assert_eq!(o.result.expect("a result")["stdout"], "back\n");
}

#[tokio::test]
async fn the_kill_switch_kills_a_running_sandbox_within_two_seconds() {
    let url = &harness().redis_url;
    let run = run_id("ks-running");
    let workflow_id = start_activity(
        "safeExecuteCode",
        json!({"runId": run, "command": "sleep 120", "timeout": 120000}),
        &RunOpts::default(),
    )
    .await;
    let container = wait_for_sandbox("ae.run-id", &run, Duration::from_secs(30))
        .await
        .expect("the sandbox started");
    // Let the command really be running.
    tokio::time::sleep(Duration::from_millis(500)).await;

    let engaged = Instant::now();
    kill_switch(url, &["on", "--run", &run]);
    let left = wait_for_no_sandboxes("ae.run-id", &run, Duration::from_secs(5)).await;
    let took = engaged.elapsed();
    assert!(left.is_empty(), "{container} still there");
    assert!(took < Duration::from_secs(2), "took {took:?}");

    let o = outcome_of(&workflow_id).await;
    assert_eq!(o.error.expect("a failure").r#type, "KillSwitchEngaged");
    kill_switch(url, &["off", "--run", &run]);
}

/// Copies every worker's liveness key from the shared database to the one at `url`.
async fn mirror_liveness(url: &str) {
    use redis::AsyncCommands;
    let mut from = harness().redis().await;
    let keys: Vec<String> = from.keys("ae:worker:*").await.unwrap();
    let mut to = redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for key in keys {
        let _: () = to.set_ex(key, "1", 120).await.unwrap();
    }
}

#[tokio::test]
async fn the_global_kill_switch_stops_every_run() {
    // Its own Redis database, so the global switch does not stop the other tests.
    let url = format!("{}/3", harness().redis_url);
    // Its reaper reads liveness there too: show it every worker of the shared suite as alive,
    // or it would take their running sandboxes for orphans (all e2e tests share one Docker).
    mirror_liveness(&url).await;
    let w = start_worker(&[("REDIS_URL", &url), ("AE_REAPER_INTERVAL_SECS", "3600")]);
    let status = kill_switch(&url, &["on", "--reason", "incident 42"]);
    assert!(status.contains("global: on (incident 42)"), "{status}");
    let opts = RunOpts {
        task_queue: w.task_queue.clone(),
        ..Default::default()
    };
    let id = start_activity(
        "safeExecuteCode",
        json!({"runId": run_id("ks-global"), "command": "true"}),
        &opts,
    )
    .await;
    let e = outcome_of(&id).await.error.expect("a failure");
    assert_eq!(e.r#type, "KillSwitchEngaged");
    assert!(kill_switch(&url, &["off"]).contains("global: off"));
    let id = start_activity(
        "safeExecuteCode",
        json!({"runId": run_id("ks-global"), "command": "true"}),
        &opts,
    )
    .await;
    assert!(outcome_of(&id).await.result.is_some());
}

#[tokio::test]
async fn a_worker_killed_with_sigkill_leaves_no_sandbox_after_the_reaper_runs() {
    let doomed = start_worker(&[
        ("AE_WORKER_TTL_SECS", "3"),
        ("AE_REAPER_INTERVAL_SECS", "1"),
    ]);
    let run = run_id("sigkill");
    let _workflow = start_activity(
        "safeExecuteCode",
        // With a network, so the orphan also leaves a sandbox network and the egress relay.
        json!({"runId": run, "command": "sleep 300", "timeout": 300000, "allowedDomains": ["example.com"]}),
        &RunOpts {
            task_queue: doomed.task_queue.clone(),
            heartbeat: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .await;
    let container = wait_for_sandbox("ae.run-id", &run, Duration::from_secs(30))
        .await
        .expect("the sandbox started");
    let pid = worker_pid(&doomed.identity).expect("the doomed worker's pid");
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Nobody removes it on the way down: it is an orphan now.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sandboxes_with_label("ae.run-id", &run).await,
        vec![container.clone()]
    );

    // Any live worker's reaper removes it once the dead owner's liveness has lapsed.
    let _reaper = start_worker(&[("AE_REAPER_INTERVAL_SECS", "1")]);
    let left = wait_for_no_sandboxes("ae.run-id", &run, Duration::from_secs(20)).await;
    assert!(left.is_empty(), "orphan {container} was not reaped");
    let left = wait_for_no_sandboxes("ae.owner", &doomed.identity, Duration::from_secs(20)).await;
    assert!(
        left.is_empty(),
        "the dead worker's relay was not reaped: {left:?}"
    );
    let left = wait_for_no_networks("ae.run-id", &run, Duration::from_secs(20)).await;
    assert!(
        left.is_empty(),
        "the orphan's network was not reaped: {left:?}"
    );
    drop(doomed);
}
