//! `progressiveDeployWorkflow` end to end: the worker hosts it, the sandboxes reach a fake
//! platform this test serves on the host (through the egress allowlist: `platform.test` maps to
//! it), and people approve, reject and abort with the real `temporal` CLI. Short windows
//! (monitorSecs 6, checkIntervalSecs 2) stand in for the day-long canary.

use ae_tests::harness::{
    ApproverKey, ExtraWorker, approver_key, binary, harness, read_request_head, respond, run_id,
    start_worker, temporal_cli, wait_for_no_sandboxes, wait_for_sandbox,
};
use ae_tests::workflows::{
    DeployAfterApproval, DeployAfterApprovalWorkflow, SeenFailure, TEST_WORKFLOW_QUEUE,
    application_failure,
};
use ae_workflows_spec::progressive::production::{
    ProductionMonitorInput, ProductionMonitorStatus, ProductionMonitorWorkflow,
    STOP_MONITORING_SIGNAL,
};
use ae_workflows_spec::progressive::workflow::ProgressiveDeployWorkflow;
use ae_workflows_spec::progressive::{
    DeploymentOutcome, DeploymentPhase, DeploymentStatus, PendingStage, ProgressiveDeployInput,
    ProgressiveDeployResult,
};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::TcpListener;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{
    WorkflowDescribeOptions, WorkflowGetResultOptions, WorkflowQueryOptions, WorkflowStartOptions,
};

/// What the fake platform reports for one deployment, and the calls it received.
#[derive(Default)]
struct Deployment {
    /// What `/health` answers: a JSON line, or anything else to test unreadable output.
    health: String,
    /// Paths (with query) received, in order.
    calls: Vec<String>,
}

struct Platform {
    port: u16,
    worker: ExtraWorker,
    deployments: &'static Mutex<HashMap<String, Deployment>>,
}

static PLATFORM: OnceLock<Platform> = OnceLock::new();

fn platform() -> &'static Platform {
    PLATFORM.get_or_init(|| {
        let deployments: &'static Mutex<HashMap<String, Deployment>> = Box::leak(Box::default());
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fake platform");
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for conn in listener.incoming().flatten() {
                std::thread::spawn(move || serve(conn, deployments));
            }
        });
        let worker = start_worker(&[
            ("AE_EGRESS_HOSTS", "platform.test=127.0.0.1"),
            ("AE_EGRESS_PORTS", &format!("80,443,{port}")),
            ("AE_EGRESS_PRIVATE_ALLOW", &format!("127.0.0.1:{port}")),
        ]);
        Platform {
            port,
            worker,
            deployments,
        }
    })
}

/// `/d/<id>/<action>`: records the call; `/d/<id>/health` answers the deployment's health.
fn serve(mut conn: std::net::TcpStream, deployments: &Mutex<HashMap<String, Deployment>>) {
    let Some(head) = read_request_head(&mut conn) else {
        return;
    };
    let target = head
        .lines()
        .next()
        .unwrap_or("")
        .split(' ')
        .nth(1)
        .unwrap_or("");
    // Through the proxy the target may be absolute: keep the path.
    let path = target
        .split_once("://")
        .map(|(_, rest)| &rest[rest.find('/').unwrap_or(rest.len())..])
        .unwrap_or(target);
    let mut parts = path.trim_start_matches('/').splitn(3, '/');
    let (status, body) = match (parts.next(), parts.next(), parts.next()) {
        (Some("d"), Some(id), Some(action)) => {
            let mut all = deployments.lock().unwrap();
            match all.get_mut(id) {
                Some(d) => {
                    d.calls.push(action.to_string());
                    if action == "health" {
                        ("200 OK", d.health.clone())
                    } else {
                        ("200 OK", format!("{action} done\n"))
                    }
                }
                None => ("404 Not Found", "no such deployment\n".into()),
            }
        }
        _ => ("404 Not Found", "no such route\n".into()),
    };
    respond(&mut conn, status, &body);
}

fn set_health(id: &str, error_rate: f64, p95: u64) {
    let line = json!({"errorRate": error_rate, "p95LatencyMs": p95}).to_string();
    set_health_raw(id, &line);
}

fn set_health_raw(id: &str, body: &str) {
    let mut all = platform().deployments.lock().unwrap();
    all.entry(id.to_string()).or_default().health = body.to_string();
}

/// The calls the platform received for `id`, health checks left out.
fn actions(id: &str) -> Vec<String> {
    let all = platform().deployments.lock().unwrap();
    all.get(id)
        .map(|d| d.calls.iter().filter(|c| *c != "health").cloned().collect())
        .unwrap_or_default()
}

fn health_checks(id: &str) -> usize {
    let all = platform().deployments.lock().unwrap();
    all.get(id)
        .map(|d| d.calls.iter().filter(|c| *c == "health").count())
        .unwrap_or(0)
}

/// A deployment whose steps work in the busybox sandbox and whose platform is the fake one.
fn input(id: &str, monitor_secs: u64) -> ProgressiveDeployInput {
    let base = format!("http://platform.test:{}/d/{id}", platform().port);
    serde_json::from_value(json!({
        "runId": run_id("progressive"),
        "platform": "fake",
        "workspaceFiles": [{"path": "src/index.html", "content": "<h1>v2</h1>\n"}],
        "installCommand": "echo installed > .installed",
        "testCommand": "test -f .installed && echo tests passed",
        "buildCommand": "mkdir -p dist && cp src/index.html dist/",
        "canaryCommand": format!("wget -q -O- \"{base}/canary?percent=$CANARY_PERCENT\""),
        "healthCheckCommand": format!("wget -q -O- {base}/health"),
        "promoteCommand": format!("wget -q -O- {base}/promote"),
        "rollbackCommand": format!("wget -q -O- {base}/rollback"),
        "canaryPercent": 1,
        "monitorSecs": monitor_secs,
        "checkIntervalSecs": 2,
        "maxErrorRate": 0.05,
        "maxLatencyMs": 5000,
        "allowedDomains": ["platform.test"],
        "deployEnv": {"PLATFORM_TOKEN": "pt_live_0123456789abcdef"},
        "approvalTimeoutSecs": 120
    }))
    .unwrap()
}

async fn start(id: &str, input: ProgressiveDeployInput) -> String {
    start_on(&platform().worker.task_queue, id, input).await
}

async fn start_on(queue: &str, id: &str, input: ProgressiveDeployInput) -> String {
    let client = harness().client().await;
    let workflow_id = format!("progressive-{id}");
    client
        .start_workflow(
            ProgressiveDeployWorkflow::run,
            input,
            WorkflowStartOptions::new(queue, &workflow_id)
                .execution_timeout(Duration::from_secs(300))
                .build(),
        )
        .await
        .expect("start progressiveDeployWorkflow");
    workflow_id
}

async fn status(workflow_id: &str) -> DeploymentStatus {
    let client = harness().client().await;
    client
        .get_workflow_handle::<ProgressiveDeployWorkflow>(workflow_id)
        .query(
            ProgressiveDeployWorkflow::deployment_status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("query deploymentStatus")
}

async fn pending(workflow_id: &str) -> Option<PendingStage> {
    let client = harness().client().await;
    client
        .get_workflow_handle::<ProgressiveDeployWorkflow>(workflow_id)
        .query(
            ProgressiveDeployWorkflow::pending_approval,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("query pendingApproval")
}

/// Waits until the workflow is in `phase`.
async fn wait_for_phase(workflow_id: &str, phase: DeploymentPhase) -> DeploymentStatus {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let s = status(workflow_id).await;
        if s.phase == phase {
            return s;
        }
        assert!(
            Instant::now() < deadline,
            "{workflow_id} never reached {phase:?}: {s:?}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Waits for the stage's plan in `pendingApproval`.
async fn wait_for_stage(workflow_id: &str, stage: &str) -> PendingStage {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        if let Some(p) = pending(workflow_id).await
            && p.plan.phase.as_deref() == Some(stage)
        {
            return p;
        }
        assert!(
            Instant::now() < deadline,
            "no {stage} plan from {workflow_id}: {:?}",
            status(workflow_id).await
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

fn signal(workflow_id: &str, name: &str, body: Value) {
    temporal_cli(&[
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id,
        "--name",
        name,
        "--input",
        &body.to_string(),
    ]);
}

fn approve(workflow_id: &str, approver: &str, digest: &str) {
    signal(
        workflow_id,
        "approveDeployment",
        json!({"approver": approver, "planDigest": digest}),
    );
}

async fn result_of(workflow_id: &str) -> Result<ProgressiveDeployResult, SeenFailure> {
    let client = harness().client().await;
    let handle = client.get_workflow_handle::<ProgressiveDeployWorkflow>(workflow_id);
    match handle.get_result(WorkflowGetResultOptions::default()).await {
        Ok(r) => Ok(r),
        Err(WorkflowGetResultError::Failed(e)) => Err(application_failure(e.failure())),
        Err(e) => panic!("{workflow_id}: {e:?}"),
    }
}

/// Entries of a Redis stream whose `field` is `value`.
async fn stream(name: &str, field: &str, value: &str) -> Vec<Value> {
    ae_tests::harness::stream_entries(name)
        .await
        .into_iter()
        .filter(|e| e[field] == value)
        .collect()
}

/// The progressive events of a workflow in the audit stream, as (action, outcome, actor).
async fn events(workflow_id: &str) -> Vec<(String, String, String)> {
    stream("ae:audit", "workflowId", workflow_id)
        .await
        .iter()
        .filter(|e| e["activity"] == "recordDeploymentEvent")
        .map(|e| {
            let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
            (s("action"), s("outcome"), s("actor"))
        })
        .collect()
}

/// Sends `abortDeployment` from the on-call engineer; the result, and how long it took to come.
async fn abort(workflow_id: &str, reason: &str) -> (ProgressiveDeployResult, Duration) {
    let t = Instant::now();
    signal(
        workflow_id,
        "abortDeployment",
        json!({"approver": "on-call", "reason": reason}),
    );
    let r = result_of(workflow_id)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(
        r.reason.contains("on-call") && r.reason.contains(reason),
        "{r:?}"
    );
    (r, t.elapsed())
}

/// How many of the workflow's `activity` steps the worker audited as cancelled.
async fn cancelled(workflow_id: &str, activity: &str) -> usize {
    stream("ae:audit", "workflowId", workflow_id)
        .await
        .iter()
        .filter(|e| e["activity"] == activity && e["reason"] == "cancelled")
        .count()
}

/// Starts a deployment, approves its canary plan, waits until the canary is monitored.
async fn start_canary(id: &str, monitor_secs: u64) -> (String, PendingStage) {
    set_health(id, 0.01, 120);
    let wf = start(id, input(id, monitor_secs)).await;
    let canary = wait_for_stage(&wf, "canary").await;
    approve(&wf, "release-manager", &canary.plan.plan_digest);
    wait_for_phase(&wf, DeploymentPhase::Monitoring).await;
    (wf, canary)
}

#[tokio::test]
async fn a_healthy_canary_is_promoted_after_a_second_approval() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    set_health(&id, 0.01, 120);
    let wf = start(&id, input(&id, 6)).await;
    let canary = wait_for_stage(&wf, "canary").await;
    // The canary plan shows (and its digest covers) the health check and the rollback.
    let plan = &canary.plan;
    assert!(plan.command.contains("/canary?percent="), "{plan:?}");
    assert!(
        plan.command.starts_with("export CANARY_PERCENT=1;"),
        "{plan:?}"
    );
    assert!(
        plan.health_check_command
            .as_deref()
            .unwrap()
            .ends_with("/health")
    );
    assert!(
        plan.rollback_command
            .as_deref()
            .unwrap()
            .ends_with("/rollback")
    );
    assert_eq!(plan.recompute_digest(), plan.plan_digest);
    assert!(actions(&id).is_empty(), "nothing deployed before approval");
    // What an operator sees with the CLI: the plan, never the token.
    let shown = temporal_cli(&[
        "workflow",
        "query",
        "--workflow-id",
        &wf,
        "--name",
        "pendingApproval",
    ]);
    assert!(shown.contains(&plan.plan_digest), "{shown}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    approve(&wf, "release-manager", &plan.plan_digest);

    let promotion = wait_for_stage(&wf, "promote").await;
    // The person deciding sees the canary's measurements: every check healthy.
    assert_eq!(promotion.measurements.len(), 3, "{promotion:?}");
    assert!(
        promotion
            .measurements
            .iter()
            .all(|m| m.healthy && m.error_rate == Some(0.01))
    );
    assert_ne!(promotion.plan.plan_digest, plan.plan_digest);
    assert_eq!(actions(&id), ["canary?percent=1"]);
    assert_eq!(health_checks(&id), 3);

    // Attack: replaying the canary's approval (its digest) does not promote.
    approve(&wf, "release-manager", &plan.plan_digest);
    approve(&wf, "release-manager", "0000");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let s = status(&wf).await;
    assert_eq!(s.phase, DeploymentPhase::AwaitingPromotionApproval, "{s:?}");
    assert_eq!(actions(&id), ["canary?percent=1"]);
    assert!(s.approvals.iter().all(|a| a.phase == "canary"), "{s:?}");

    approve(&wf, "sre-lead", &promotion.plan.plan_digest);
    let r = result_of(&wf).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r.outcome, DeploymentOutcome::Promoted, "{r:?}");
    assert_eq!(actions(&id), ["canary?percent=1", "promote"]);
    let s = status(&wf).await;
    assert_eq!(s.phase, DeploymentPhase::Promoted);
    let who: Vec<_> = s
        .approvals
        .iter()
        .map(|a| {
            (
                a.phase.as_str(),
                a.approver.as_str(),
                a.plan_digest.as_str(),
            )
        })
        .collect();
    assert_eq!(
        who,
        [
            ("canary", "release-manager", plan.plan_digest.as_str()),
            ("promote", "sre-lead", promotion.plan.plan_digest.as_str())
        ]
    );
    assert!(r.total_cost > 0.0);
    // Every phase and decision is in the audit stream.
    let ev = events(&wf).await;
    for (action, outcome, actor) in [
        ("progressive.build", "success", "workflow"),
        ("progressive.canary.approval", "approved", "release-manager"),
        ("progressive.canary.deploy", "success", "release-manager"),
        ("progressive.monitor.passed", "success", "workflow"),
        ("progressive.promote.approval", "approved", "sre-lead"),
        ("progressive.promote.deploy", "success", "sre-lead"),
    ] {
        assert!(
            ev.iter()
                .any(|e| (e.0.as_str(), e.1.as_str(), e.2.as_str()) == (action, outcome, actor)),
            "{action} {outcome} {actor} missing from {ev:?}"
        );
    }
    assert!(!format!("{ev:?}").contains("0123456789abcdef"));
}

#[tokio::test]
async fn a_canary_whose_error_rate_rises_is_rolled_back_without_a_person() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (wf, _) = start_canary(&id, 6).await;
    // The first check sees a healthy canary; then its error rate climbs to 30 %.
    let deadline = Instant::now() + Duration::from_secs(60);
    while status(&wf).await.measurements.is_empty() {
        assert!(Instant::now() < deadline, "no first check");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    set_health(&id, 0.3, 120);
    let r = result_of(&wf).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r.outcome, DeploymentOutcome::RolledBack, "{r:?}");
    assert!(r.reason.contains("error rate 0.3"), "{}", r.reason);
    // The evidence: a healthy check, then the breach.
    let last = r.measurements.last().unwrap();
    assert!(!last.healthy && last.error_rate == Some(0.3), "{r:?}");
    assert!(r.measurements[0].healthy, "{r:?}");
    assert_eq!(actions(&id), ["canary?percent=1", "rollback"]);
    let s = status(&wf).await;
    assert_eq!(s.phase, DeploymentPhase::RolledBack);
    assert!(
        s.approvals.iter().all(|a| a.phase == "canary"),
        "no one else decided: {s:?}"
    );
    // The breach is audited and alerted where budget alerts go.
    let ev = events(&wf).await;
    assert!(
        ev.iter().any(|e| e.0 == "progressive.monitor.breach"),
        "{ev:?}"
    );
    assert!(
        ev.iter()
            .any(|e| e.0 == "progressive.rollback" && e.1 == "success"),
        "{ev:?}"
    );
    let alerts = stream("ae:alerts", "workflowId", &wf).await;
    let breach = alerts
        .iter()
        .find(|a| a["event"] == "monitor.breach")
        .unwrap_or_else(|| panic!("{alerts:?}"));
    assert_eq!(breach["severity"], "critical");
    assert_eq!(breach["type"], "deployment");
    // The rollback is the worker's own, audited deploy of the approved plan's rollback.
    let deploys = stream("ae:audit", "workflowId", &wf).await;
    let rollback = deploys
        .iter()
        .find(|e| {
            e["activity"] == "deployWithApproval"
                && e["action"].as_str().unwrap().ends_with("/rollback")
        })
        .unwrap_or_else(|| panic!("{deploys:?}"));
    assert_eq!(rollback["outcome"], "success");
    assert_eq!(rollback["actor"], "release-manager");
}

#[tokio::test]
async fn an_unreadable_health_check_counts_as_a_breach() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (wf, _) = start_canary(&id, 6).await;
    set_health_raw(&id, "<html>502 Bad Gateway</html>");
    let r = result_of(&wf).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r.outcome, DeploymentOutcome::RolledBack, "{r:?}");
    assert!(r.reason.contains("no JSON line"), "{}", r.reason);
    assert_eq!(actions(&id), ["canary?percent=1", "rollback"]);
}

#[tokio::test]
async fn an_abort_signal_rolls_the_canary_back() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    // A long window: only the abort ends it.
    let (wf, _) = start_canary(&id, 120).await;
    let s = status(&wf).await;
    assert!(
        s.next_check_at_ms.is_some() && s.monitor_ends_at_ms.is_some(),
        "{s:?}"
    );
    let (r, _) = abort(&wf, "pager storm").await;
    assert_eq!(r.outcome, DeploymentOutcome::RolledBack, "{r:?}");
    assert_eq!(actions(&id), ["canary?percent=1", "rollback"]);
    let s = status(&wf).await;
    assert_eq!(s.phase, DeploymentPhase::RolledBack);
    assert!(
        s.approvals
            .iter()
            .any(|a| a.phase == "abort" && a.approver == "on-call")
    );
    let ev = events(&wf).await;
    assert!(
        ev.iter()
            .any(|e| e.0 == "progressive.rollback" && e.2 == "on-call"),
        "{ev:?}"
    );
}

/// An abort stops a running build: the workflow ends Aborted long before the build would have
/// (`sleep 120`), its sandbox is gone, and nothing reached the platform.
#[tokio::test]
async fn an_abort_cancels_a_running_build() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let mut inp = input(&id, 6);
    inp.build_command = Some("sleep 120".into());
    let run = inp.run_id.clone();
    let wf = start(&id, inp).await;
    wait_for_sandbox("ae.run-id", &run, Duration::from_secs(60))
        .await
        .expect("the build's sandbox");
    let (r, took) = abort(&wf, "wrong branch").await;
    assert_eq!(r.outcome, DeploymentOutcome::Aborted, "{r:?}");
    assert!(took < Duration::from_secs(40), "aborted after {took:?}");
    let left = wait_for_no_sandboxes("ae.run-id", &run, Duration::from_secs(5)).await;
    assert!(
        left.is_empty(),
        "the build's sandbox outlived the abort: {left:?}"
    );
    assert!(actions(&id).is_empty(), "{:?}", actions(&id));
    assert_eq!(status(&wf).await.phase, DeploymentPhase::Aborted);
    // The batch was cancelled (the worker stopped it), not finished.
    assert_eq!(cancelled(&wf, "safeExecuteBatch").await, 1);
}

/// An abort stops a running health check (`sleep 50` before it asks the platform) and rolls
/// the canary back at once.
#[tokio::test]
async fn an_abort_cancels_a_running_health_check_and_rolls_back() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    set_health(&id, 0.01, 120);
    let mut inp = input(&id, 120);
    inp.health_check_command = format!("sleep 50; {}", inp.health_check_command);
    let run = inp.run_id.clone();
    let wf = start(&id, inp).await;
    let canary = wait_for_stage(&wf, "canary").await;
    approve(&wf, "release-manager", &canary.plan.plan_digest);
    wait_for_phase(&wf, DeploymentPhase::Monitoring).await;
    // The canary deploy's sandbox was removed before its step ended: the run's next sandbox
    // is the first check's (due 2 s in).
    wait_for_sandbox("ae.run-id", &run, Duration::from_secs(60))
        .await
        .expect("the health check's sandbox");
    assert!(status(&wf).await.measurements.is_empty());
    let (r, took) = abort(&wf, "pager storm").await;
    assert_eq!(r.outcome, DeploymentOutcome::RolledBack, "{r:?}");
    assert!(took < Duration::from_secs(35), "rolled back after {took:?}");
    assert_eq!(actions(&id), ["canary?percent=1", "rollback"]);
    assert_eq!(health_checks(&id), 0, "the check ran to its end");
    assert_eq!(
        cancelled(&wf, "safeExecuteCode").await,
        1,
        "the check was not cancelled"
    );
    let left = wait_for_no_sandboxes("ae.run-id", &run, Duration::from_secs(5)).await;
    assert!(left.is_empty(), "a sandbox outlived the rollback: {left:?}");
}

/// `ae-worker approve` signs each stage of a progressive deploy on a worker that requires
/// signed approvals, and refuses to sign a stage other than the one the operator read: the
/// canary's digest, presented again once the promotion is pending, approves nothing.
#[tokio::test]
async fn ae_worker_approve_signs_each_stage_and_only_the_one_read() {
    let ApproverKey { key, keys_file } = approver_key("release-manager");
    let port = platform().port;
    let worker = start_worker(&[
        ("AE_EGRESS_HOSTS", "platform.test=127.0.0.1"),
        ("AE_EGRESS_PORTS", &format!("80,443,{port}")),
        ("AE_EGRESS_PRIVATE_ALLOW", &format!("127.0.0.1:{port}")),
        ("AE_APPROVER_KEYS_FILE", keys_file.to_str().unwrap()),
    ]);
    let sign = |wf: &str, digest: &str| {
        std::process::Command::new(binary("ae-worker"))
            .args([
                "approve",
                "--workflow-id",
                wf,
                "--approver",
                "release-manager",
            ])
            .args(["--yes", "--plan-digest", digest, "--key"])
            .arg(&key)
            .env("TEMPORAL_ADDRESS", &harness().temporal_address)
            .output()
            .unwrap()
    };

    let id = uuid::Uuid::new_v4().simple().to_string();
    set_health(&id, 0.01, 120);
    let wf = start_on(&worker.task_queue, &id, input(&id, 4)).await;
    let canary = wait_for_stage(&wf, "canary").await;
    let out = sign(&wf, &canary.plan.plan_digest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&canary.plan.plan_digest));

    let promote = wait_for_stage(&wf, "promote").await;
    assert_ne!(promote.plan.plan_digest, canary.plan.plan_digest);
    // The digest the operator read was the canary's: nothing is signed or sent.
    let out = sign(&wf, &canary.plan.plan_digest);
    assert!(
        !out.status.success(),
        "signed a plan the operator did not read"
    );
    assert_eq!(
        pending(&wf).await.map(|p| p.plan.plan_digest),
        Some(promote.plan.plan_digest.clone())
    );
    let out = sign(&wf, &promote.plan.plan_digest);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    let r = result_of(&wf).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r.outcome, DeploymentOutcome::Promoted, "{r:?}");
    assert_eq!(actions(&id), ["canary?percent=1", "promote"]);
    // Both deploys ran on signed approvals that the worker verified, sent by the CLI.
    let (approvals, deploys): (Vec<Value>, Vec<Value>) = stream("ae:audit", "workflowId", &wf)
        .await
        .into_iter()
        .filter(|e| e["activity"] == "deployWithApproval")
        .partition(|e| e["action"] == "deploy.approval");
    assert_eq!(
        (approvals.len(), deploys.len()),
        (2, 2),
        "{approvals:?} {deploys:?}"
    );
    for e in approvals.iter().chain(&deploys) {
        assert_eq!(e["actor"], "release-manager", "{e}");
        assert_eq!(
            e["clientIdentity"], "ae-worker-approve:release-manager",
            "{e}"
        );
    }
    assert!(approvals.iter().all(|e| e["outcome"] == "accepted"));
    assert!(deploys.iter().all(|e| e["outcome"] == "success"));
}

async fn monitor_status(workflow_id: &str) -> ProductionMonitorStatus {
    harness()
        .client()
        .await
        .get_workflow_handle::<ProductionMonitorWorkflow>(workflow_id)
        .query(
            ProductionMonitorWorkflow::monitor_status,
            (),
            WorkflowQueryOptions::default(),
        )
        .await
        .expect("query monitorStatus")
}

/// Waits until the production monitor's status satisfies `done`.
async fn wait_for_monitor(
    workflow_id: &str,
    done: impl Fn(&ProductionMonitorStatus) -> bool,
) -> ProductionMonitorStatus {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let s = monitor_status(workflow_id).await;
        if done(&s) {
            return s;
        }
        assert!(Instant::now() < deadline, "{workflow_id}: {s:?}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// With `productionMonitorSecs`, a `productionMonitorWorkflow` keeps checking production after
/// the deployment has ended: one critical alert when production turns unhealthy (not one per
/// unhealthy check), an audit entry when it recovers, no rollback, and `stopMonitoring` ends it.
#[tokio::test]
async fn production_is_monitored_after_the_promotion_with_one_alert_per_breach() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    set_health(&id, 0.01, 120);
    let mut inp = input(&id, 4);
    inp.production_monitor_secs = Some(600);
    let wf = start(&id, inp).await;
    let canary = wait_for_stage(&wf, "canary").await;
    approve(&wf, "release-manager", &canary.plan.plan_digest);
    let promote = wait_for_stage(&wf, "promote").await;
    approve(&wf, "release-manager", &promote.plan.plan_digest);
    let r = result_of(&wf).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r.outcome, DeploymentOutcome::Promoted, "{r:?}");
    let monitor = r.production_monitor.clone().expect("a production monitor");
    assert_eq!(monitor, format!("{wf}-production"));

    // The deployment has ended; production is still checked.
    let s = wait_for_monitor(&monitor, |s| s.checks >= 2).await;
    assert!(!s.in_breach && s.breaches == 0, "{s:?}");
    set_health(&id, 0.3, 120);
    let s = wait_for_monitor(&monitor, |s| s.in_breach).await;
    let first = s.checks;
    wait_for_monitor(&monitor, |s| s.checks >= first + 2).await;
    set_health(&id, 0.01, 120);
    let s = wait_for_monitor(&monitor, |s| !s.in_breach).await;
    assert_eq!(s.breaches, 1, "{s:?}");
    assert!(s.last.as_ref().is_some_and(|m| m.healthy), "{s:?}");

    let alerts = stream("ae:alerts", "workflowId", &monitor).await;
    let breaches: Vec<_> = alerts
        .iter()
        .filter(|a| a["event"] == "production.breach")
        .collect();
    assert_eq!(breaches.len(), 1, "one alert for one breach: {alerts:?}");
    assert_eq!(breaches[0]["severity"], "critical");
    assert!(
        breaches[0]["message"]
            .as_str()
            .unwrap()
            .contains("error rate 0.3"),
        "{:?}",
        breaches[0]
    );
    let audit = stream("ae:audit", "workflowId", &monitor).await;
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "progressive.production.recovered"),
        "{audit:?}"
    );

    signal(
        &monitor,
        STOP_MONITORING_SIGNAL,
        json!({"approver": "on-call", "reason": "release done"}),
    );
    let ended = harness()
        .client()
        .await
        .get_workflow_handle::<ProductionMonitorWorkflow>(&monitor)
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("the monitor's result");
    assert_eq!(ended.breaches, 1, "{ended:?}");
    assert!(ended.ended.contains("stopped by on-call"), "{ended:?}");
    // Silencing production's alerts is itself an alert.
    let alerts = stream("ae:alerts", "workflowId", &monitor).await;
    let stopped = alerts
        .iter()
        .find(|a| a["event"] == "production.monitor.stopped")
        .unwrap_or_else(|| panic!("{alerts:?}"));
    assert_eq!(stopped["severity"], "warning");
    assert!(
        stopped["message"]
            .as_str()
            .unwrap()
            .contains("release done"),
        "{stopped:?}"
    );
    // Monitoring never deploys or rolls back.
    assert_eq!(actions(&id), ["canary?percent=1", "promote"]);
}

/// The monitor keeps its history bounded by continuing as new (here every 2 checks), and what
/// it carries over holds: counts keep growing, and a breach that spans several runs is alerted
/// once.
#[tokio::test]
async fn the_production_monitor_continues_as_new_without_forgetting_a_breach() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    set_health(&id, 0.01, 120);
    let base = format!("http://platform.test:{}/d/{id}", platform().port);
    let now_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as u64;
    let input: ProductionMonitorInput = serde_json::from_value(json!({
        "runId": run_id("production"),
        "healthCheckCommand": format!("wget -q -O- {base}/health"),
        "allowedDomains": ["platform.test"],
        "checkIntervalSecs": 1,
        "maxErrorRate": 0.05,
        "maxLatencyMs": 5000,
        "untilMs": now_ms + 120_000,
        "checksPerRun": 2
    }))
    .unwrap();
    let monitor = format!("production-{id}");
    let client = harness().client().await;
    client
        .start_workflow(
            ProductionMonitorWorkflow::run,
            input,
            WorkflowStartOptions::new(&platform().worker.task_queue, &monitor)
                .execution_timeout(Duration::from_secs(300))
                .build(),
        )
        .await
        .expect("start productionMonitorWorkflow");
    let run_of = || async {
        client
            .get_workflow_handle::<ProductionMonitorWorkflow>(&monitor)
            .describe(WorkflowDescribeOptions::default())
            .await
            .expect("describe")
            .run_id()
            .to_string()
    };
    let first_run = run_of().await;
    wait_for_monitor(&monitor, |s| s.checks >= 1).await;
    set_health(&id, 0.3, 120);
    let s = wait_for_monitor(&monitor, |s| s.in_breach).await;
    // Four more unhealthy checks: at least two runs later.
    let s = wait_for_monitor(&monitor, |x| x.checks >= s.checks + 4).await;
    assert!(s.in_breach && s.breaches == 1, "{s:?}");
    assert_ne!(run_of().await, first_run, "never continued as new");
    let alerts = stream("ae:alerts", "workflowId", &monitor).await;
    let breaches = alerts
        .iter()
        .filter(|a| a["event"] == "production.breach")
        .count();
    assert_eq!(breaches, 1, "{alerts:?}");
    signal(
        &monitor,
        STOP_MONITORING_SIGNAL,
        json!({"approver": "on-call", "reason": "test over"}),
    );
    let ended = client
        .get_workflow_handle::<ProductionMonitorWorkflow>(&monitor)
        .get_result(WorkflowGetResultOptions::default())
        .await
        .expect("the monitor's result");
    assert!(ended.checks >= s.checks && ended.breaches == 1, "{ended:?}");
}

#[tokio::test]
async fn a_rejected_promotion_is_rolled_back() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let (wf, _) = start_canary(&id, 6).await;
    let promotion = wait_for_stage(&wf, "promote").await;
    assert_eq!(promotion.measurements.len(), 3);
    signal(
        &wf,
        "rejectDeployment",
        json!({"approver": "sre-lead", "reason": "latency looks odd"}),
    );
    let r = result_of(&wf).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(r.outcome, DeploymentOutcome::RolledBack, "{r:?}");
    assert!(r.reason.contains("latency looks odd"), "{}", r.reason);
    // The rejection did not void the canary approval's pre-approved rollback.
    assert_eq!(actions(&id), ["canary?percent=1", "rollback"]);
    let s = status(&wf).await;
    assert_eq!(s.phase, DeploymentPhase::RolledBack);
    assert!(
        s.approvals
            .iter()
            .any(|a| a.phase == "promote" && a.decision == "rejected" && a.approver == "sre-lead"),
        "{s:?}"
    );
}

/// The Python starter (`samples/python/progressive_deploy.py`) drives a deployment: it
/// recomputes each plan's digest (refusing to approve otherwise) and checks the stage before
/// approving the canary and the promotion.
#[tokio::test]
async fn the_python_starter_approves_both_stages_after_checking_their_digests() {
    let id = uuid::Uuid::new_v4().simple().to_string();
    set_health(&id, 0.0, 80);
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../samples/python/progressive_deploy.py"
    );
    let input = serde_json::to_string(&input(&id, 4)).unwrap();
    let address = harness().temporal_address.clone();
    let queue = platform().worker.task_queue.clone();
    let workflow_id = format!("progressive-py-{id}");
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new("python3")
            .arg(script)
            .args(["--address", &address, "--task-queue", &queue])
            .args(["--workflow-id", &workflow_id, "--input", &input])
            .args([
                "--approve-canary",
                "py-release",
                "--approve-promotion",
                "py-sre",
            ])
            .args(["--timeout-secs", "200"])
            .output()
            .expect("python3")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let plans: Vec<Value> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("PLAN "))
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(plans.len(), 2, "{stdout}");
    assert_eq!(
        (plans[0]["phase"].as_str(), plans[1]["phase"].as_str()),
        (Some("canary"), Some("promote"))
    );
    assert_eq!(
        plans[1]["measurements"].as_array().unwrap().len(),
        2,
        "{stdout}"
    );
    let result: Value = serde_json::from_str(
        stdout
            .lines()
            .rev()
            .find_map(|l| l.strip_prefix("RESULT "))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(result["outcome"], "Promoted", "{stdout}");
    assert_eq!(result["approvals"][1]["approver"], "py-sre");
    assert_eq!(actions(&id), ["canary?percent=1", "promote"]);
}

/// A hostile workflow (the test host's `deployAfterApproval`, which passes whatever it is
/// given) tries to stretch a canary approval: a rollback before the deploy, a changed rollback,
/// the promotion, a second rollback. The worker allows the canary once and its approved
/// rollback once, after it.
#[tokio::test]
async fn a_canary_approval_backs_its_own_rollback_once_after_its_deploy_and_nothing_else() {
    let run = run_id("rollback-once");
    let canary = json!({
        "runId": run, "platform": "vercel", "command": "echo canary ran",
        "approval": {"approver": "ops-lead"}, "phase": "canary",
        "healthCheckCommand": "echo check", "rollbackCommand": "echo rollback ran"
    });
    let with = |k: &str, v: Value| {
        let mut i = canary.clone();
        i[k] = v;
        i
    };
    let rollback = with("rollback", json!(true));
    let mut changed_rollback = rollback.clone();
    changed_rollback["rollbackCommand"] = json!("echo something else");
    let promote = with("phase", json!("promote"));
    let digest = {
        let i: ae_workflows_spec::DeployWithApprovalInput =
            serde_json::from_value(canary.clone()).unwrap();
        ae_workflows_spec::DeploymentPlan::of(&i).plan_digest
    };
    let client = harness().client().await;
    let workflow_id = format!("hostile-{}", uuid::Uuid::new_v4());
    let req = DeployAfterApproval {
        deploys: vec![
            rollback.clone(),
            changed_rollback,
            promote,
            canary.clone(),
            rollback.clone(),
            rollback,
        ],
        task_queue: ae_workflows_spec::TASK_QUEUE.into(),
        max_attempts: 1,
        child_approval: None,
        shown_plan: None,
    };
    let handle = client
        .start_workflow(
            DeployAfterApprovalWorkflow::run,
            req,
            WorkflowStartOptions::new(TEST_WORKFLOW_QUEUE, &workflow_id)
                .execution_timeout(Duration::from_secs(300))
                .build(),
        )
        .await
        .expect("start deployAfterApproval");
    approve(&workflow_id, "ops-lead", &digest);
    let outcomes = handle
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{workflow_id}: {e:?}"));
    assert_eq!(outcomes.len(), 6);
    let refused = |n: usize, says: &str| {
        let e = outcomes[n]
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("{n} ran: {:?}", outcomes[n]));
        assert_eq!(e.r#type, "ApprovalInvalid", "{n}: {e:?}");
        assert!(e.message.contains(says), "{n}: {}", e.message);
    };
    refused(0, "not used by a deployment yet");
    refused(1, "no approveDeployment signal");
    refused(2, "not for the plan being deployed");
    let ran = |n: usize| {
        let r = outcomes[n]
            .result
            .as_ref()
            .unwrap_or_else(|| panic!("{n} refused: {:?}", outcomes[n].error));
        r["stdout"].as_str().unwrap().to_string()
    };
    assert_eq!(ran(3), "canary ran\n");
    assert_eq!(ran(4), "rollback ran\n");
    refused(5, "already used");
}
