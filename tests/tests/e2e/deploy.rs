//! `deployWithApproval` and `buildAndDeployWorkflow` end to end. The worker hosts the reference
//! workflow; approvals and rejections are sent with the real `temporal` CLI, as an operator would.

use ae_tests::harness::{
    ApproverKey, RunOpts, approver_key, audit_records, audit_stream, binary, harness, run_activity,
    run_id, start_worker, temporal_cli,
};
use ae_tests::workflows::{
    DeployAfterApproval, DeployAfterApprovalWorkflow, Outcome, SeenFailure, TEST_WORKFLOW_QUEUE,
    application_failure,
};
use ae_workflows_spec::workflow::{
    BuildAndDeployInput, BuildAndDeployResult, BuildAndDeployWorkflow,
};
use ae_workflows_spec::{ApproveDeployment, DeploymentPlan};
use serde_json::json;
use std::time::{Duration, Instant};
use temporalio_client::errors::WorkflowGetResultError;
use temporalio_client::{
    WorkflowDescribeOptions, WorkflowGetResultOptions, WorkflowQueryOptions, WorkflowStartOptions,
};

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
    // The plan names the deploy's env variables with the SHA-256 of their values, never a value.
    assert_eq!(plan.env.len(), 1);
    assert_eq!(plan.env[0].name, "VERCEL_TOKEN");
    assert!(shown.contains("VERCEL_TOKEN"), "{shown}");
    assert!(!shown.contains("0123456789abcdef"), "{shown}");
    assert_eq!(plan.recompute_digest(), plan.plan_digest);
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
    // The audit stream has the approval decision and the deploy, with who approved.
    let stream = audit_stream(&workflow_id).await;
    let decision = stream
        .iter()
        .find(|e| e["action"] == "deploy.approval")
        .expect("decision");
    assert_eq!(decision["outcome"], "accepted", "{stream:?}");
    assert_eq!(decision["actor"], "ops-lead");
    assert_eq!(decision["clientIdentity"], r.approver_identity.as_str());
    let deployed = stream
        .iter()
        .find(|e| e["activity"] == "deployWithApproval" && e["action"] != "deploy.approval")
        .expect("the deploy's own entry");
    assert_eq!(deployed["outcome"], "success", "{stream:?}");
    assert_eq!(deployed["environment"], "production");
    assert_eq!(deployed["actor"], "ops-lead");
    assert_eq!(deployed["clientIdentity"], r.approver_identity.as_str());
}

/// The `ae:audit` stream's entries of one workflow.
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
    assert_eq!(plan["profile"], "production");
    assert_eq!(plan["timeout"], 300000);
    assert_eq!(plan["image"], serde_json::Value::Null);
    assert_eq!(plan["planDigest"].as_str().unwrap().len(), 64);
    // The worker and a workflow compute the same digest from the same input.
    assert_eq!(plan["planDigest"], digest_of(&deploy_input(&run)).as_str());
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
    let ApproverKey { key, keys_file } = approver_key("ops-lead");
    let w = start_worker(&[("AE_APPROVER_KEYS_FILE", keys_file.to_str().unwrap())]);

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

// ---- Approvals a workflow cannot forge or reuse (issue 9) ----

/// A deploy input citing ops-lead's approval, with an env the digest must cover.
fn approved_deploy(run: &str) -> serde_json::Value {
    let mut input = deploy_input(run);
    input["env"] = json!({"VERCEL_ORG_ID": "team_approved"});
    input["approval"] = json!({"approver": "ops-lead"});
    input
}

fn digest_of(input: &serde_json::Value) -> String {
    let input: ae_workflows_spec::DeployWithApprovalInput =
        serde_json::from_value(input.clone()).unwrap();
    DeploymentPlan::of(&input).plan_digest
}

async fn start_deploy_after_approval(req: DeployAfterApproval) -> String {
    let client = harness().client().await;
    let workflow_id = format!("approval-{}", uuid::Uuid::new_v4());
    client
        .start_workflow(
            DeployAfterApprovalWorkflow::run,
            req,
            WorkflowStartOptions::new(TEST_WORKFLOW_QUEUE, &workflow_id)
                .execution_timeout(Duration::from_secs(300))
                .build(),
        )
        .await
        .expect("start deployAfterApproval");
    workflow_id
}

async fn outcomes_of(workflow_id: &str) -> Vec<Outcome> {
    harness()
        .client()
        .await
        .get_workflow_handle::<DeployAfterApprovalWorkflow>(workflow_id)
        .get_result(WorkflowGetResultOptions::default())
        .await
        .unwrap_or_else(|e| panic!("{workflow_id}: {e:?}"))
}

fn request(deploys: Vec<serde_json::Value>, task_queue: &str) -> DeployAfterApproval {
    DeployAfterApproval {
        deploys,
        task_queue: task_queue.into(),
        max_attempts: 1,
        child_approval: None,
        shown_plan: None,
    }
}

async fn spent(run: &str) -> Option<String> {
    redis::AsyncCommands::get(&mut harness().redis().await, format!("spent:{run}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn a_child_workflows_approval_signal_is_approval_invalid() {
    let run = run_id("child");
    let deploy = approved_deploy(&run);
    let mut req = request(vec![deploy.clone()], ae_workflows_spec::TASK_QUEUE);
    // The child names the right approver and the right digest: only its sender is wrong.
    req.child_approval = Some(ApproveDeployment {
        approver: "ops-lead".into(),
        comment: Some("approved by a workflow".into()),
        plan_digest: Some(digest_of(&deploy)),
        signature: None,
        expires_at: None,
    });
    let workflow_id = start_deploy_after_approval(req).await;
    let outcomes = outcomes_of(&workflow_id).await;
    let e = outcomes[0].error.as_ref().expect("refused");
    assert_eq!(e.r#type, "ApprovalInvalid", "{e:?}");
    assert!(e.non_retryable);
    assert!(e.message.contains("sent by workflow"), "{}", e.message);
    assert!(spent(&run).await.is_none(), "nothing may be charged");
}

#[tokio::test]
async fn an_approval_without_a_plan_digest_is_approval_invalid() {
    let (workflow_id, plan) =
        start_and_wait_for_plan(ae_workflows_spec::TASK_QUEUE, project(&run_id("nodigest"))).await;
    temporal_cli(&[
        "workflow",
        "signal",
        "--workflow-id",
        &workflow_id,
        "--name",
        "approveDeployment",
        "--input",
        r#"{"approver":"ops-lead"}"#,
    ]);
    let e = result_of(&workflow_id).await.expect_err("no digest");
    assert_eq!(e.r#type, "ApprovalInvalid");
    assert!(e.message.contains("names no planDigest"), "{}", e.message);
    // The failure tells the approver which digest to approve.
    assert!(e.message.contains(&plan.plan_digest), "{}", e.message);
}

#[tokio::test]
async fn an_approval_covers_only_its_plan_and_only_one_deployment() {
    let run = run_id("once");
    let approved = approved_deploy(&run);
    let mut other_command = approved.clone();
    other_command["command"] = json!("echo https://x.vercel.app; echo and something else");
    let mut other_env = approved.clone();
    other_env["env"] = json!({"VERCEL_ORG_ID": "team_attacker"});
    let mut preload = approved.clone();
    preload["env"] =
        json!({"VERCEL_ORG_ID": "team_approved", "LD_PRELOAD": "/workspace/index.html"});
    let workflow_id = start_deploy_after_approval(request(
        vec![
            other_command,
            other_env,
            preload,
            approved.clone(),
            approved.clone(),
        ],
        ae_workflows_spec::TASK_QUEUE,
    ))
    .await;
    temporal_cli(&[
        "workflow",
        "signal",
        "--workflow-id",
        &workflow_id,
        "--name",
        "approveDeployment",
        "--input",
        &json!({"approver": "ops-lead", "planDigest": digest_of(&approved)}).to_string(),
    ]);
    let outcomes = outcomes_of(&workflow_id).await;
    assert_eq!(outcomes.len(), 5);
    for (n, o) in outcomes[..3].iter().enumerate() {
        let e = o
            .error
            .as_ref()
            .unwrap_or_else(|| panic!("changed plan {n} deployed"));
        assert_eq!(e.r#type, "ApprovalInvalid", "{n}: {e:?}");
        assert!(
            e.message.contains("not for the plan being deployed"),
            "{n}: {}",
            e.message
        );
    }
    // The approved plan deploys once...
    let r = outcomes[3]
        .result
        .as_ref()
        .unwrap_or_else(|| panic!("the approved plan was refused: {:?}", outcomes[3].error));
    assert_eq!(r["success"], true);
    assert_eq!(r["approvedBy"], "ops-lead");
    // ... and a second deployment citing the same approval is refused.
    let e = outcomes[4].error.as_ref().expect("second use refused");
    assert_eq!(e.r#type, "ApprovalInvalid");
    assert!(e.message.contains("already used"), "{}", e.message);
    assert_eq!(spent(&run).await.as_deref(), Some("0.01"));
}

#[tokio::test]
async fn a_retry_of_the_same_deployment_still_uses_its_approval() {
    // Docker is unreachable, so each attempt fails retryably after the approval was spent: the
    // second attempt must get past the approval again and fail the same way.
    let w = start_worker(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    let run = run_id("retry");
    let approved = approved_deploy(&run);
    let mut req = request(vec![approved.clone()], &w.task_queue);
    req.max_attempts = 2;
    let workflow_id = start_deploy_after_approval(req).await;
    temporal_cli(&[
        "workflow",
        "signal",
        "--workflow-id",
        &workflow_id,
        "--name",
        "approveDeployment",
        "--input",
        &json!({"approver": "ops-lead", "planDigest": digest_of(&approved)}).to_string(),
    ]);
    let outcomes = outcomes_of(&workflow_id).await;
    let e = outcomes[0].error.as_ref().expect("no Docker");
    assert_eq!(e.r#type, "SandboxUnavailable", "{e:?}");
    let run_id = harness()
        .client()
        .await
        .get_workflow_handle::<DeployAfterApprovalWorkflow>(&workflow_id)
        .describe(WorkflowDescribeOptions::default())
        .await
        .unwrap()
        .run_id()
        .to_string();
    let keys: Vec<String> = redis::AsyncCommands::keys(
        &mut harness().redis().await,
        format!("ae:approval:used:{run_id}:*"),
    )
    .await
    .unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let history = temporal_cli(&[
        "workflow",
        "show",
        "--workflow-id",
        &workflow_id,
        "--output",
        "json",
    ]);
    assert!(history.contains("\"attempt\": 2"), "not retried: {history}");
}

#[tokio::test]
async fn an_approval_that_cannot_be_recorded_fails_closed_and_retryably() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let w = start_worker(&[("REDIS_URL", &format!("redis://127.0.0.1:{port}"))]);
    let run = run_id("noredis-approval");
    let approved = approved_deploy(&run);
    let workflow_id =
        start_deploy_after_approval(request(vec![approved.clone()], &w.task_queue)).await;
    temporal_cli(&[
        "workflow",
        "signal",
        "--workflow-id",
        &workflow_id,
        "--name",
        "approveDeployment",
        "--input",
        &json!({"approver": "ops-lead", "planDigest": digest_of(&approved)}).to_string(),
    ]);
    let outcomes = outcomes_of(&workflow_id).await;
    let e = outcomes[0].error.as_ref().expect("no Redis");
    assert_eq!(e.r#type, "BudgetStoreUnavailable", "{e:?}");
    assert!(!e.non_retryable);
    assert!(e.message.contains("approval"), "{}", e.message);
}

#[tokio::test]
async fn ae_worker_approve_refuses_a_plan_that_does_not_match_its_digest() {
    let run = run_id("forged-plan");
    let approved = approved_deploy(&run);
    let real: ae_workflows_spec::DeployWithApprovalInput =
        serde_json::from_value(approved.clone()).unwrap();
    let real = DeploymentPlan::of(&real);
    // The workflow shows a harmless plan but claims the real plan's digest.
    let mut forged = real.clone();
    forged.command = "echo harmless".into();
    let mut req = request(vec![approved], ae_workflows_spec::TASK_QUEUE);
    req.shown_plan = Some(forged);
    let workflow_id = start_deploy_after_approval(req).await;

    let key = approver_key("ops-lead").key;
    let approve = |extra: &[&str]| {
        std::process::Command::new(binary("ae-worker"))
            .args([
                "approve",
                "--workflow-id",
                &workflow_id,
                "--approver",
                "ops-lead",
                "--key",
            ])
            .arg(&key)
            .args(extra)
            .env("TEMPORAL_ADDRESS", &harness().temporal_address)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap()
    };
    let out = approve(&["--yes"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("does not match its planDigest"), "{stderr}");

    // No signal was sent; the workflow is still waiting.
    let history = temporal_cli(&["workflow", "show", "--workflow-id", &workflow_id]);
    assert!(!history.contains("WorkflowExecutionSignaled"), "{history}");
    temporal_cli(&[
        "workflow",
        "terminate",
        "--workflow-id",
        &workflow_id,
        "--reason",
        "test done",
    ]);
}

#[tokio::test]
async fn ae_worker_approve_asks_before_signing() {
    let (workflow_id, plan) =
        start_and_wait_for_plan(ae_workflows_spec::TASK_QUEUE, project(&run_id("ask"))).await;
    let key = approver_key("ops-lead").key;
    // Answering anything but "yes" sends nothing.
    let mut child = std::process::Command::new(binary("ae-worker"))
        .args([
            "approve",
            "--workflow-id",
            &workflow_id,
            "--approver",
            "ops-lead",
            "--key",
        ])
        .arg(&key)
        .env("TEMPORAL_ADDRESS", &harness().temporal_address)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().unwrap();
        stdin.write_all(b"no\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(!out.status.success());
    let stdout = String::from_utf8_lossy(&out.stdout);
    // The person saw the plan: command, env names (no values), digest.
    assert!(
        stdout.contains(&plan.command.escape_debug().to_string()),
        "{stdout}"
    );
    assert!(stdout.contains("VERCEL_TOKEN"), "{stdout}");
    assert!(!stdout.contains("0123456789abcdef"), "{stdout}");
    assert!(stdout.contains(&plan.plan_digest), "{stdout}");
    let history = temporal_cli(&["workflow", "show", "--workflow-id", &workflow_id]);
    assert!(!history.contains("WorkflowExecutionSignaled"), "{history}");
    temporal_cli(&[
        "workflow",
        "terminate",
        "--workflow-id",
        &workflow_id,
        "--reason",
        "test done",
    ]);
}

/// Runs a standalone activity (no workflow) with the `temporal` CLI; returns its JSON outcome.
fn standalone(activity: &str, activity_id: &str, input: serde_json::Value) -> serde_json::Value {
    let out = std::process::Command::new("temporal")
        .args([
            "activity",
            "execute",
            "--activity-id",
            activity_id,
            "--type",
            activity,
            "--task-queue",
            ae_workflows_spec::TASK_QUEUE,
            "--start-to-close-timeout",
            "60s",
            "--input",
            &input.to_string(),
            "--output",
            "json",
            "--address",
            &harness().temporal_address,
        ])
        .output()
        .expect("temporal activity execute");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("{e}: {stdout} {}", String::from_utf8_lossy(&out.stderr)))
}

#[tokio::test]
async fn standalone_deploys_are_approval_invalid_and_executions_charged_per_execution() {
    let run = run_id("standalone");
    let id = format!("sa-{}", uuid::Uuid::new_v4().simple());
    let o = standalone("deployWithApproval", &id, approved_deploy(&run));
    assert_eq!(o["status"], "FAILED", "{o}");
    let info = &o["failure"]["applicationFailureInfo"];
    assert_eq!(info["type"], "ApprovalInvalid", "{o}");
    assert_eq!(info["nonRetryable"], true, "{o}");

    // safeExecuteCode and safeExecuteBatch work standalone; reusing an activity id in a new
    // execution is a new execution, charged again.
    let id = format!("sa-{}", uuid::Uuid::new_v4().simple());
    for _ in 0..2 {
        let o = standalone(
            "safeExecuteCode",
            &id,
            json!({"runId": run, "command": "echo standalone"}),
        );
        assert_eq!(o["status"], "COMPLETED", "{o}");
        assert_eq!(o["result"]["stdout"], "standalone\n", "{o}");
    }
    let o = standalone(
        "safeExecuteBatch",
        &format!("sab-{}", uuid::Uuid::new_v4().simple()),
        json!({"runId": run, "commands": ["echo a", "echo b"]}),
    );
    assert_eq!(o["status"], "COMPLETED", "{o}");
    assert_eq!(spent(&run).await.as_deref(), Some("0.04"));
}
