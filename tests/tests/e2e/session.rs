//! Sessions against real Temporal, Redis and Docker: a workflow opens a sandbox
//! (`openSandbox`), runs executions in it on the returned task queue (files persist), closes it,
//! and cannot use it afterwards; a session is its run's and workflow's only; it idles out; its
//! executions are charged and rate-limited like any other; concurrent executions take turns;
//! the kill switch stops it; a killed worker's session is reaped.

use ae_tests::harness::{
    ExtraWorker, RunOpts, WORKER_QUEUE, audit_stream, harness, run_activity, run_id,
    sandboxes_with_label, start_worker, wait_for_no_sandboxes, wait_for_sandbox, worker_pid,
};
use ae_tests::workflows::{Outcome, SessionRun, SessionScript, SessionScriptWorkflow, SessionStep};
use redis::AsyncCommands;
use serde_json::{Value, json};
use std::time::Duration;
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};

/// Starts the session script; returns its workflow id.
async fn start_script(script: SessionScript) -> String {
    let client = harness().client().await;
    let workflow_id = format!("session-{}", uuid::Uuid::new_v4());
    client
        .start_workflow(
            SessionScriptWorkflow::run,
            script,
            WorkflowStartOptions::new(ae_tests::workflows::TEST_WORKFLOW_QUEUE, &workflow_id)
                .execution_timeout(Duration::from_secs(300))
                .build(),
        )
        .await
        .expect("start the session script");
    workflow_id
}

async fn script_result(workflow_id: &str) -> SessionRun {
    harness()
        .client()
        .await
        .get_workflow_handle::<SessionScriptWorkflow>(workflow_id)
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap_or_else(|e| panic!("session script {workflow_id} failed: {e:?}"))
}

/// Opens a session on `queue` with `open`, runs `groups`; returns what it saw and its id.
async fn script(queue: &str, open: Value, groups: Vec<Vec<SessionStep>>) -> (SessionRun, String) {
    let id = start_script(SessionScript {
        task_queue: queue.into(),
        open,
        groups,
    })
    .await;
    (script_result(&id).await, id)
}

fn step(activity: &str, input: Value) -> SessionStep {
    SessionStep {
        activity: activity.into(),
        input,
        delay_ms: 0,
    }
}

fn exec(run: &str, command: &str) -> SessionStep {
    step(
        "safeExecuteCode",
        json!({"runId": run, "command": command, "sandboxId": "$sandboxId"}),
    )
}

fn close() -> SessionStep {
    step("closeSandbox", json!({"sandboxId": "$sandboxId"}))
}

fn ok(o: &Outcome) -> &Value {
    o.result
        .as_ref()
        .unwrap_or_else(|| panic!("expected a result: {o:?}"))
}

fn failure(o: &Outcome) -> &str {
    o.error
        .as_ref()
        .map(|e| e.r#type.as_str())
        .unwrap_or_else(|| panic!("expected a failure: {o:?}"))
}

fn not_found(o: &Outcome) {
    assert_eq!(failure(o), "SandboxNotFound", "{o:?}");
    assert!(o.error.as_ref().unwrap().non_retryable, "{o:?}");
}

async fn spent(run: &str) -> f64 {
    let mut r = harness().redis().await;
    let v: Option<String> = r.get(format!("spent:{run}")).await.unwrap();
    v.map_or(0.0, |v| v.parse().unwrap())
}

#[tokio::test]
async fn files_persist_between_executions_until_the_session_is_closed() {
    let run = run_id("session");
    let secret = "s3ss10n-v4lue-9f8e7d6c";
    let open = json!({
        "runId": run,
        "workspaceFiles": [{"path": "given.txt", "content": "from open\n"}],
        "env": {"SESSION_SECRET": secret},
    });
    let (seen, wf) = script(
        WORKER_QUEUE,
        open,
        vec![
            vec![exec(&run, "cat given.txt; echo written > note.txt")],
            vec![exec(&run, "cat note.txt; echo \"$SESSION_SECRET\"")],
            vec![step(
                "safeExecuteBatch",
                json!({"runId": run, "sandboxId": "$sandboxId", "commands": ["echo more >> note.txt", "cat note.txt"]}),
            )],
            vec![close()],
            vec![exec(&run, "cat note.txt")],
            vec![close()],
        ],
    )
    .await;
    let session = ok(&seen.open);
    let queue = session["taskQueue"].as_str().unwrap();
    assert!(
        queue.starts_with(&format!("{WORKER_QUEUE}/{}", harness().worker_identity)),
        "the session queue is the worker's own: {queue}"
    );
    assert!(session["sandboxId"].as_str().unwrap().starts_with("sbx-"));
    let first = ok(&seen.groups[0][0]);
    assert_eq!(first["stdout"], "from open\n");
    let second = ok(&seen.groups[1][0]);
    let out = second["stdout"].as_str().unwrap();
    assert!(out.starts_with("written\n"), "{second}");
    assert!(!out.contains(secret), "the session env is redacted: {out}");
    assert!(out.contains("[REDACTED"), "{out}");
    assert_eq!(first["sandboxId"], second["sandboxId"], "one container");
    let batch = ok(&seen.groups[2][0]);
    assert_eq!(batch["results"][1]["stdout"], "written\nmore\n");
    assert_eq!(ok(&seen.groups[3][0])["closed"], true);
    not_found(&seen.groups[4][0]);
    assert_eq!(
        ok(&seen.groups[5][0])["closed"],
        false,
        "closing twice is harmless"
    );
    let left = wait_for_no_sandboxes("ae.workflow-id", &wf, Duration::from_secs(10)).await;
    assert!(
        left.is_empty(),
        "the closed session's sandbox is gone: {left:?}"
    );
    // Both closes are audited: the first closed it, the second found nothing open.
    let sandbox_id = session["sandboxId"].as_str().unwrap();
    let closes: Vec<(String, String, String)> = audit_stream(&wf)
        .await
        .iter()
        .filter(|e| e["activity"] == "closeSandbox")
        .map(|e| {
            let f = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (f("runId"), f("action"), f("reason"))
        })
        .collect();
    let action = format!("close {sandbox_id}");
    assert_eq!(
        closes,
        [
            (run.clone(), action.clone(), String::new()),
            (String::new(), action, "not open".to_string()),
        ]
    );
}

#[tokio::test]
async fn a_session_serves_only_its_own_run_and_workflow() {
    let run = run_id("session-own");
    let other = run_id("session-other");
    let (seen, wf) = script(
        WORKER_QUEUE,
        json!({"runId": run, "idleTimeoutMs": 3000}),
        vec![vec![
            exec(&other, "echo stolen"),
            step(
                "safeExecuteCode",
                json!({"runId": run, "command": "true", "sandboxId": "$sandboxId", "image": "alpine:latest"}),
            ),
            step(
                "safeExecuteCode",
                json!({"runId": run, "command": "true", "sandboxId": "sbx-00000000000000000000000000000000"}),
            ),
            exec(&run, "echo mine > mine.txt"),
        ]],
    )
    .await;
    let session = ok(&seen.open).clone();
    not_found(&seen.groups[0][0]);
    assert_eq!(failure(&seen.groups[0][1]), "InvalidInput");
    not_found(&seen.groups[0][2]);
    assert_eq!(ok(&seen.groups[0][3])["exitCode"], 0);
    assert!(
        (spent(&other).await).abs() < 1e-9,
        "the foreign run was not charged"
    );

    // Another workflow of the same run, with the right id and queue: refused, and cannot close.
    let on_session = RunOpts {
        task_queue: session["taskQueue"].as_str().unwrap().into(),
        check_cleanup: false,
        ..Default::default()
    };
    let input = json!({"runId": run, "command": "cat mine.txt", "sandboxId": session["sandboxId"]});
    let (o, _) = run_activity("safeExecuteCode", input, on_session.clone()).await;
    not_found(&o);
    let (o, _) = run_activity(
        "closeSandbox",
        json!({"sandboxId": session["sandboxId"]}),
        on_session,
    )
    .await;
    assert_eq!(ok(&o)["closed"], false);
    assert_eq!(sandboxes_with_label("ae.workflow-id", &wf).await.len(), 1);

    // Never closed: its idle timeout (3 s) reaps it.
    let left = wait_for_no_sandboxes("ae.workflow-id", &wf, Duration::from_secs(15)).await;
    assert!(left.is_empty(), "the idle session was not reaped: {left:?}");
}

#[tokio::test]
async fn an_idle_session_expires_and_is_then_not_found() {
    let run = run_id("session-idle");
    let mut late = exec(&run, "true");
    late.delay_ms = 4_000;
    let (seen, wf) = script(
        WORKER_QUEUE,
        json!({"runId": run, "idleTimeoutMs": 1500}),
        vec![vec![exec(&run, "true")], vec![late], vec![close()]],
    )
    .await;
    assert_eq!(ok(&seen.groups[0][0])["exitCode"], 0);
    not_found(&seen.groups[1][0]);
    assert_eq!(ok(&seen.groups[2][0])["closed"], false);
    assert!(
        sandboxes_with_label("ae.workflow-id", &wf).await.is_empty(),
        "reaped at its idle timeout"
    );
}

#[tokio::test]
async fn bad_session_terms_are_invalid_input() {
    let run = run_id("session-terms");
    for open in [
        json!({"runId": run, "idleTimeoutMs": 10}),
        json!({"runId": run, "maxLifetimeMs": 25 * 3600 * 1000}),
        json!({"runId": run, "idleTimout": 1000}),
    ] {
        let (seen, _) = script(WORKER_QUEUE, open.clone(), vec![]).await;
        assert_eq!(failure(&seen.open), "InvalidInput", "{open}");
    }
}

#[tokio::test]
async fn concurrent_executions_in_a_session_take_turns() {
    let run = run_id("session-turns");
    // Each holds a lock directory for a second; overlapping, one would exit 9.
    let cmd = "mkdir held || exit 9; sleep 1; rmdir held";
    let (seen, _) = script(
        WORKER_QUEUE,
        json!({"runId": run}),
        vec![
            vec![exec(&run, cmd), exec(&run, cmd), exec(&run, cmd)],
            vec![close()],
        ],
    )
    .await;
    for o in &seen.groups[0] {
        assert_eq!(ok(o)["exitCode"], 0, "executions overlapped: {seen:?}");
    }
    assert_eq!(ok(&seen.groups[1][0])["closed"], true);
}

#[tokio::test]
async fn session_executions_are_charged_and_rate_limited_like_any_other() {
    let worker = start_worker(&[("AE_RATE_SANDBOX_PER_MIN", "4")]);
    let run = run_id("session-charged");
    // Rate: a burst of four, then one every 15 s. The open is one request, then three
    // executions; of the six after them, in well under 90 s, some are refused.
    let mut groups: Vec<Vec<SessionStep>> = (0..9).map(|_| vec![exec(&run, "true")]).collect();
    groups.push(vec![close()]);
    let (seen, _) = script(&worker.task_queue, json!({"runId": run}), groups).await;
    for o in &seen.groups[..3] {
        let r = ok(&o[0]);
        assert_eq!(r["cost"], 0.01, "{r}");
    }
    assert_eq!(ok(&seen.groups[2][0])["budgetRemaining"], 9.97);
    let rest = &seen.groups[3..9];
    let charged = 3 + rest.iter().filter(|g| g[0].result.is_some()).count();
    for g in rest.iter().filter(|g| g[0].result.is_none()) {
        assert_eq!(failure(&g[0]), "RateLimited");
    }
    assert!(charged < 9, "none of nine executions was rate limited");
    assert!(
        (spent(&run).await - 0.01 * charged as f64).abs() < 1e-9,
        "the executions that ran are charged, the open and the refused ones not"
    );

    // An exhausted budget refuses a session's execution like any other.
    let run = run_id("session-broke");
    let mut r = harness().redis().await;
    let _: () = r.set(format!("budget:{run}"), "0.015").await.unwrap();
    let (seen, _) = script(
        WORKER_QUEUE,
        json!({"runId": run}),
        vec![
            vec![exec(&run, "true")],
            vec![exec(&run, "true")],
            vec![close()],
        ],
    )
    .await;
    assert_eq!(ok(&seen.groups[0][0])["exitCode"], 0);
    assert_eq!(failure(&seen.groups[1][0]), "BudgetExceeded");
    drop(worker);
}

#[tokio::test]
async fn the_kill_switch_stops_a_runs_session() {
    let run = run_id("session-switch");
    let mut later = exec(&run, "true");
    later.delay_ms = 4_000;
    let wf = start_script(SessionScript {
        task_queue: WORKER_QUEUE.into(),
        open: json!({"runId": run}),
        groups: vec![vec![exec(&run, "true")], vec![later]],
    })
    .await;
    let container = wait_for_sandbox("ae.workflow-id", &wf, Duration::from_secs(30))
        .await
        .expect("the session's sandbox");
    let mut r = harness().redis().await;
    let key = format!("ae:killswitch:run:{run}");
    let _: () = r.set(&key, "test").await.unwrap();
    let left = wait_for_no_sandboxes("ae.workflow-id", &wf, Duration::from_secs(5)).await;
    assert!(left.is_empty(), "switched session {container} still runs");
    let seen = script_result(&wf).await;
    let _: () = r.del(&key).await.unwrap();
    assert_eq!(failure(&seen.groups[1][0]), "KillSwitchEngaged");
}

#[tokio::test]
async fn a_killed_workers_session_is_reaped() {
    let doomed: ExtraWorker = start_worker(&[
        ("AE_WORKER_TTL_SECS", "3"),
        ("AE_REAPER_INTERVAL_SECS", "1"),
    ]);
    let run = run_id("session-sigkill");
    let (seen, wf) = script(
        &doomed.task_queue,
        json!({"runId": run}),
        vec![vec![exec(&run, "echo alive > f")]],
    )
    .await;
    assert_eq!(ok(&seen.groups[0][0])["exitCode"], 0);
    let container = sandboxes_with_label("ae.workflow-id", &wf).await;
    assert_eq!(container.len(), 1, "the session is open");
    let pid = worker_pid(&doomed.identity).expect("the doomed worker's pid");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    // Another worker of the fleet reaps it once the dead owner's liveness lapsed.
    let _reaper = start_worker(&[("AE_REAPER_INTERVAL_SECS", "1")]);
    let left = wait_for_no_sandboxes("ae.workflow-id", &wf, Duration::from_secs(30)).await;
    assert!(left.is_empty(), "the dead worker's session was not reaped");
    drop(doomed);
}

#[tokio::test]
async fn graceful_shutdown_closes_every_session() {
    let worker = start_worker(&[]);
    let seen_identity = worker.identity.clone();
    let run = run_id("session-shutdown");
    let (seen, wf) = script(&worker.task_queue, json!({"runId": run}), vec![]).await;
    ok(&seen.open);
    assert_eq!(sandboxes_with_label("ae.workflow-id", &wf).await.len(), 1);
    let pid = worker_pid(&worker.identity).expect("the worker's pid");
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let left = wait_for_no_sandboxes("ae.workflow-id", &wf, Duration::from_secs(30)).await;
    assert!(
        left.is_empty(),
        "the session outlived its worker's shutdown"
    );
    drop(worker);
    // Closed as a session, not only swept with the worker's leftovers.
    let log = harness()
        .log_dir
        .join(format!("worker-{seen_identity}.log"));
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("session closed") && text.contains("worker shutting down"),
        "{log:?}"
    );
}

/// Runs the reference workflow with `steps` (install, test, build) until it waits for an
/// approval or fails; returns its id and how it failed (no approval comes).
async fn reference_workflow(run: &str, steps: [&str; 3]) -> (String, String) {
    use ae_workflows_spec::workflow::{BuildAndDeployInput, BuildAndDeployWorkflow};
    let input: BuildAndDeployInput = serde_json::from_value(json!({
        "runId": run,
        "deployPlatform": "vercel",
        "workspaceFiles": [{"path": "src/index.html", "content": "<h1>demo</h1>\n"}],
        "installCommand": steps[0],
        "testCommand": steps[1],
        "buildCommand": steps[2],
        "approvalTimeoutSecs": 1,
    }))
    .unwrap();
    let client = harness().client().await;
    let workflow_id = format!("ref-session-{}", uuid::Uuid::new_v4());
    let handle = client
        .start_workflow(
            BuildAndDeployWorkflow::run,
            input,
            WorkflowStartOptions::new(WORKER_QUEUE, &workflow_id)
                .execution_timeout(Duration::from_secs(120))
                .build(),
        )
        .await
        .expect("start buildAndDeployWorkflow");
    let failed = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect_err("no approval comes: the workflow fails");
    (workflow_id, format!("{failed:?}"))
}

/// The activities the audit stream `ae:audit` recorded for `workflow_id`, in order.
async fn activities_of(workflow_id: &str) -> Vec<String> {
    audit_stream(workflow_id)
        .await
        .iter()
        .filter_map(|e| e["activity"].as_str().map(str::to_string))
        .collect()
}

#[tokio::test]
async fn the_reference_workflow_builds_in_a_session_and_closes_it_on_every_path() {
    let run = run_id("ref-session");
    let (wf, waited) = reference_workflow(
        &run,
        [
            "echo installed > .installed",
            "test -f .installed",
            "mkdir -p dist && cp src/index.html dist/",
        ],
    )
    .await;
    assert!(
        waited.contains("ApprovalTimeout"),
        "the build succeeded and the workflow waited for approval: {waited}"
    );
    let seen = activities_of(&wf).await;
    assert_eq!(
        seen,
        [
            "openSandbox",
            "safeExecuteCode",
            "safeExecuteCode",
            "safeExecuteCode",
            "closeSandbox"
        ],
        "the three steps ran in the session, then it was closed"
    );
    assert!(sandboxes_with_label("ae.workflow-id", &wf).await.is_empty());

    // A failing step: BuildFailed, and the session is still closed.
    let run = run_id("ref-session-fail");
    let (wf, waited) = reference_workflow(&run, ["true", "echo broken >&2; exit 3", "true"]).await;
    assert!(waited.contains("BuildFailed"), "{waited}");
    assert_eq!(
        activities_of(&wf).await,
        [
            "openSandbox",
            "safeExecuteCode",
            "safeExecuteCode",
            "closeSandbox"
        ],
        "open, install, test, close"
    );
    assert!(
        sandboxes_with_label("ae.workflow-id", &wf).await.is_empty(),
        "closed after the failure"
    );
}
