//! `deployWithApproval` and `buildAndDeployWorkflow` end to end. The worker hosts the reference
//! workflow; approvals and rejections are sent with the real `temporal` CLI, as an operator would.

use ae_tests::harness::{
    RunOpts, audit_records, binary, harness, run_activity, start_worker, temporal_cli,
};
use ae_tests::workflows::{SeenFailure, application_failure};
use ae_workflows_spec::DeploymentPlan;
use ae_workflows_spec::workflow::{
    BuildAndDeployInput, BuildAndDeployResult, BuildAndDeployWorkflow,
};
use serde_json::json;
use std::time::{Duration, Instant};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{WorkflowGetResultOptions, WorkflowQueryOptions, WorkflowStartOptions};

fn run_id(tag: &str) -> String {
    format!("{tag}-{}", uuid::Uuid::new_v4().simple())
}

/// A project whose steps work in the busybox sandbox and whose deploy prints a URL.
fn project(run: &str) -> BuildAndDeployInput {
    serde_json::from_value(json!({
        "runId": run,
        "deployPlatform": "vercel",
        "projectPath": "/projects/demo",
        "workspaceFiles": [
            {"path": "package.json", "content": "{\"name\":\"demo\"}\n"},
            {"path": "src/index.html", "content": "<h1>demo</h1>\n"}
        ],
        "installCommand": "echo installed > .installed",
        "testCommand": "test -f .installed && echo tests passed",
        "buildCommand": "mkdir -p dist && cp src/index.html dist/",
        "deployCommand": "echo \"deploying with $VERCEL_TOKEN\"; echo 'Production: https://demo-app.vercel.app [2s]'",
        "deployEnv": {"VERCEL_TOKEN": "vt_live_0123456789abcdef"},
        "approvalTimeoutSecs": 120
    }))
    .unwrap()
}

/// Starts the reference workflow on `queue` and waits until it publishes its plan.
async fn start_and_wait_for_plan(
    queue: &str,
    input: BuildAndDeployInput,
) -> (String, DeploymentPlan) {
    let client = harness().client().await;
    let workflow_id = format!("deploy-{}", uuid::Uuid::new_v4());
    let handle = client
        .start_workflow(
            BuildAndDeployWorkflow::run,
            input,
            WorkflowStartOptions::new(queue, &workflow_id)
                .execution_timeout(Duration::from_secs(300))
                .build(),
        )
        .await
        .expect("start buildAndDeployWorkflow");
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let plan = handle
            .query(
                BuildAndDeployWorkflow::pending_approval,
                (),
                WorkflowQueryOptions::default(),
            )
            .await
            .expect("query pendingApproval");
        if let Some(plan) = plan {
            return (workflow_id, plan);
        }
        assert!(
            Instant::now() < deadline,
            "no plan published by {workflow_id}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// What an operator does after reading the plan: approve it by its digest with the CLI.
fn approve_with_cli(workflow_id: &str, plan: &DeploymentPlan) {
    temporal_cli(&[
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id,
        "--name",
        "approveDeployment",
        "--input",
        &json!({"approver": "ops-lead", "planDigest": plan.plan_digest}).to_string(),
    ]);
}

async fn result_of(workflow_id: &str) -> Result<BuildAndDeployResult, SeenFailure> {
    let client = harness().client().await;
    let handle = client.get_workflow_handle::<BuildAndDeployWorkflow>(workflow_id);
    match handle.get_result(WorkflowGetResultOptions::default()).await {
        Ok(r) => Ok(r),
        Err(WorkflowGetResultError::Failed(e)) => Err(application_failure(e.failure())),
        Err(e) => panic!("{workflow_id}: {e:?}"),
    }
}

#[tokio::test]
async fn an_approval_sent_with_the_temporal_cli_lets_the_deploy_run() {
    let run = run_id("approve");
    let (workflow_id, plan) =
        start_and_wait_for_plan(ae_workflows_spec::TASK_QUEUE, project(&run)).await;
    assert_eq!(plan.run_id, run);
    assert_eq!(plan.platform, "vercel");
    assert_eq!(plan.plan_digest.len(), 64);
    assert!(plan.warning.contains("PRODUCTION"));
    assert_eq!(plan.files.len(), 2);

    // What an operator sees and does.
    let shown = temporal_cli(&[
        "workflow",
        "query",
        "--workflow-id",
        &workflow_id,
        "--name",
        "pendingApproval",
    ]);
    assert!(shown.contains(&plan.plan_digest), "{shown}");
    temporal_cli(&[
        "workflow",
        "signal",
        "--workflow-id",
        &workflow_id,
        "--name",
        "approveDeployment",
        "--input",
        &json!({"approver": "ops-lead", "comment": "ship it", "planDigest": plan.plan_digest})
            .to_string(),
    ]);

    let r = result_of(&workflow_id)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert!(r.success);
    assert_eq!(r.url.as_deref(), Some("https://demo-app.vercel.app"));
    assert_eq!(r.approved_by, "ops-lead");
    // The identity the server stored with the CLI's signal, not anything the workflow claimed.
    assert!(
        r.approver_identity.contains("temporal-cli"),
        "{}",
        r.approver_identity
    );
    assert_eq!(r.total_cost, 0.04);

    let audit = audit_records(&workflow_id);
    let outcomes: Vec<_> = audit
        .iter()
        .map(|a| {
            (
                a["action"].as_str().unwrap(),
                a["outcome"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        outcomes.contains(&("deploy.approval", "accepted")),
        "{audit:?}"
    );
    assert!(outcomes.contains(&("deploy", "success")), "{audit:?}");
    let deploy = audit.iter().find(|a| a["action"] == "deploy").unwrap();
    assert_eq!(deploy["who"], "ops-lead");
    assert_eq!(deploy["environment"], "production");
    assert_eq!(deploy["approval"]["identity"], r.approver_identity.as_str());
    assert!(deploy["timeMs"].as_u64().is_some());
    // The deploy token never reaches the audit log.
    assert!(
        !serde_json::to_string(&audit)
            .unwrap()
            .contains("0123456789abcdef")
    );
}

#[tokio::test]
async fn a_rejection_ends_the_workflow_and_deploys_nothing() {
    let run = run_id("reject");
    let (workflow_id, _) =
        start_and_wait_for_plan(ae_workflows_spec::TASK_QUEUE, project(&run)).await;
    temporal_cli(&[
        "workflow",
        "signal",
        "--workflow-id",
        &workflow_id,
        "--name",
        "rejectDeployment",
        "--input",
        r#"{"approver":"sec-team","reason":"change freeze"}"#,
    ]);
    let e = result_of(&workflow_id).await.expect_err("rejected");
    assert_eq!(e.r#type, "DeploymentRejected");
    assert!(
        e.message.contains("sec-team") && e.message.contains("change freeze"),
        "{}",
        e.message
    );
    assert!(
        audit_records(&workflow_id)
            .iter()
            .all(|a| a["action"] != "deploy")
    );
    // Only install, test and build were charged.
    let spent: Option<String> =
        redis::AsyncCommands::get(&mut harness().redis().await, format!("spent:{run}"))
            .await
            .unwrap();
    assert_eq!(spent.as_deref(), Some("0.03"));
}

#[tokio::test]
async fn a_hardcoded_credential_blocks_the_deploy_naming_file_and_line() {
    let run = run_id("secrets");
    let mut input = project(&run);
    input.workspace_files.push(ae_workflows_spec::WorkspaceFile {
        path: "src/config.js".into(),
        content: "export const region = 'eu';\nexport const apiKey = \"sk-proj-abcdefghijklmnopqrstuvwxyz123456\";\n".into(),
    });
    let (workflow_id, plan) = start_and_wait_for_plan(ae_workflows_spec::TASK_QUEUE, input).await;
    approve_with_cli(&workflow_id, &plan);
    let e = result_of(&workflow_id).await.expect_err("blocked");
    assert_eq!(e.r#type, "SecretsDetected");
    assert!(e.message.contains("src/config.js:2"), "{}", e.message);
    assert!(e.message.contains("OPENAI_API_KEY"), "{}", e.message);
    assert!(!e.message.contains("abcdefghijklmnop"), "{}", e.message);
    let audit = audit_records(&workflow_id);
    assert!(
        audit
            .iter()
            .any(|a| a["action"] == "deploy" && a["outcome"] == "blocked"),
        "{audit:?}"
    );
}

fn deploy_input(run: &str) -> serde_json::Value {
    json!({
        "runId": run,
        "platform": "vercel",
        "command": "echo https://x.vercel.app",
        "workspaceFiles": [{"path": "index.html", "content": "<h1>x</h1>"}]
    })
}

#[tokio::test]
async fn deploying_without_an_approval_is_approval_required_with_the_plan() {
    let run = run_id("noapproval");
    let (o, workflow_id) =
        run_activity("deployWithApproval", deploy_input(&run), RunOpts::default()).await;
    let e = o.error.expect("a failure");
    assert_eq!(e.r#type, "ApprovalRequired");
    assert!(e.non_retryable);
    let plan = &e.details.as_ref().expect("details")["plan"];
    assert_eq!(plan["runId"], run.as_str());
    assert_eq!(plan["command"], "echo https://x.vercel.app");
    assert_eq!(
        plan["allowedDomains"],
        json!(["api.vercel.com", "vercel.com"])
    );
    assert!(plan["warning"].as_str().unwrap().contains("PRODUCTION"));
    assert_eq!(plan["planDigest"].as_str().unwrap().len(), 64);
    assert!(
        audit_records(&workflow_id)
            .iter()
            .any(|a| a["outcome"] == "blocked")
    );
}

#[tokio::test]
async fn an_approval_field_without_a_signal_is_approval_invalid() {
    let run = run_id("forged");
    let mut input = deploy_input(&run);
    input["approval"] = json!({"approver": "ops-lead"});
    let (o, workflow_id) = run_activity("deployWithApproval", input, RunOpts::default()).await;
    let e = o.error.expect("a failure");
    assert_eq!(e.r#type, "ApprovalInvalid");
    assert!(e.non_retryable);
    assert!(e.message.contains("approveDeployment"), "{}", e.message);
    assert!(
        audit_records(&workflow_id)
            .iter()
            .any(|a| a["outcome"] == "invalid")
    );
}

#[tokio::test]
async fn signed_approvals_are_required_when_keys_are_configured() {
    let dir = harness()
        .log_dir
        .join(format!("keys-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).unwrap();
    let key = dir.join("ops-lead.key");
    let out = std::process::Command::new(binary("ae-worker"))
        .args(["keygen", "--approver", "ops-lead", "--out"])
        .arg(&key)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let keys = dir.join("approvers.keys");
    std::fs::write(&keys, &out.stdout).unwrap();
    let w = start_worker(&[("AE_APPROVER_KEYS_FILE", keys.to_str().unwrap())]);

    // An unsigned approval from the CLI is not enough.
    let (unsigned, plan) =
        start_and_wait_for_plan(&w.task_queue, project(&run_id("unsigned"))).await;
    approve_with_cli(&unsigned, &plan);
    let e = result_of(&unsigned).await.expect_err("unsigned");
    assert_eq!(e.r#type, "ApprovalInvalid");

    // `ae-worker approve` signs the pending plan with the approver's key.
    let (signed, plan) = start_and_wait_for_plan(&w.task_queue, project(&run_id("signed"))).await;
    let out = std::process::Command::new(binary("ae-worker"))
        .args([
            "approve",
            "--workflow-id",
            &signed,
            "--approver",
            "ops-lead",
            "--yes",
            "--key",
        ])
        .arg(&key)
        .env("TEMPORAL_ADDRESS", &harness().temporal_address)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains(&plan.plan_digest));
    let r = result_of(&signed).await.unwrap_or_else(|e| panic!("{e:?}"));
    assert!(r.success);
    assert_eq!(r.approver_identity, "ae-worker-approve:ops-lead");
}

#[tokio::test]
async fn the_production_profile_has_its_own_limits() {
    let w = start_worker(&[
        ("AE_PRODUCTION_PIDS_LIMIT", "64"),
        ("AE_PRODUCTION_MEMORY_BYTES", "268435456"),
        ("AE_PRODUCTION_WORKSPACE_SIZE", "32m"),
        ("AE_PRODUCTION_NOFILE", "512"),
        ("AE_MAX_TIMEOUT_MS", "300000"),
        ("AE_PRODUCTION_MAX_TIMEOUT_MS", "3600000"),
    ]);
    // The deploy reports its sandbox's limits in the URL it prints: pids, memory, the
    // /workspace disk in KiB, open files.
    let limits = "$(cat /sys/fs/cgroup/pids/pids.max 2>/dev/null || cat /sys/fs/cgroup/pids.max)-$(cat /sys/fs/cgroup/memory/memory.limit_in_bytes 2>/dev/null || cat /sys/fs/cgroup/memory.max)-$(df -k /workspace | tail -n 1 | tr -s ' ' | cut -d' ' -f2)-$(ulimit -n)";
    let mut input = project(&run_id("profile"));
    input.deploy_command = Some(format!("echo https://limits.example/{limits}"));
    let (workflow_id, plan) = start_and_wait_for_plan(&w.task_queue, input).await;
    approve_with_cli(&workflow_id, &plan);
    let r = result_of(&workflow_id)
        .await
        .unwrap_or_else(|e| panic!("{e:?}"));
    assert_eq!(
        r.url.as_deref(),
        Some("https://limits.example/64-268435456-32768-512")
    );

    // An ordinary execution on the same worker keeps the default limits.
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run_id("profile-sbx"), "command": format!("echo {limits}")}),
        RunOpts {
            task_queue: w.task_queue.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        o.result.expect("a result")["stdout"],
        "256-536870912-262144-1024\n"
    );

    // And the default profile's maximum timeout.
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run_id("profile-max"), "command": "true", "timeout": 350000}),
        RunOpts {
            task_queue: w.task_queue.clone(),
            ..Default::default()
        },
    )
    .await;
    let e = o.error.expect("a timeout above the maximum is refused");
    assert_eq!(e.r#type, "InvalidInput");
    assert!(e.message.contains("300000"), "{}", e.message);
}
