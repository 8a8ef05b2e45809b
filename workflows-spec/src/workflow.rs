//! `buildAndDeployWorkflow`: seed 001's flow with a human in the loop.
//!
//! Install, test and build run in one session (`openSandbox`, three `safeExecuteCode` on the
//! session's own task queue, `closeSandbox` on every path), so `npm test` sees what `npm
//! install` wrote. Then the workflow publishes the deployment plan through the
//! `pendingApproval` query and waits for an `approveDeployment` or `rejectDeployment` signal
//! (from the `temporal` CLI, the Web UI, or `ae-worker approve`), at most `approvalTimeoutSecs`
//! (default 24 h). A rejection or a timeout ends the workflow with a typed failure
//! (`DeploymentRejected`, `ApprovalTimeout`) and deploys nothing. An approval is passed to
//! `deployWithApproval`, which re-verifies it against this workflow's signal history: it must
//! come from a client (not a workflow), name this plan's `planDigest`, and not have been used by
//! another deployment. The workflow does not judge the approval itself, so a bad one ends in the
//! worker's typed `ApprovalInvalid`.

use crate::activities::{CloseSandbox, DeployWithApproval, OpenSandbox, SafeExecuteCode};
use crate::deploy::{
    Approval, ApproveDeployment, DeployWithApprovalInput, DeploymentPlan, RejectDeployment,
};
use crate::execute::SafeExecuteCodeInput;
use crate::execute::WorkspaceFile;
use crate::session::{
    CloseSandboxInput, OpenSandboxInput, OpenSandboxResult, RECOMMENDED_SCHEDULE_TO_START_MS,
};
use futures::FutureExt;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use temporalio_common::RetryPolicy;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::error::ApplicationFailure;
use temporalio_sdk::{
    ActivityOptions, SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult,
};

/// Input of `buildAndDeployWorkflow` (seed 001's `{runId, projectPath, deployPlatform}` plus the
/// project files and optional command overrides).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildAndDeployInput {
    /// Names the budget.
    pub run_id: String,
    /// `vercel` or `netlify` (or any platform the deploy command targets).
    pub deploy_platform: String,
    /// Informational, as in seed 001.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_path: Option<String>,
    /// The project's files.
    #[serde(default)]
    pub workspace_files: Vec<WorkspaceFile>,
    /// Default `npm install`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub install_command: Option<String>,
    /// Default `npm test`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub test_command: Option<String>,
    /// Default `npm run build`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build_command: Option<String>,
    /// Default `<platform> deploy --prod`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_command: Option<String>,
    /// Hosts the deploy may reach; default per platform (`vercel`: api.vercel.com, ...; other
    /// platforms: none).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_domains: Option<Vec<String>>,
    /// Environment of the deploy (tokens); redacted everywhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deploy_env: BTreeMap<String, String>,
    /// How long to wait for a decision; default 86400 (24 h).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
}

/// Output of `buildAndDeployWorkflow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BuildAndDeployResult {
    /// The deploy exited 0.
    pub success: bool,
    /// The deployment URL, if the output had one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// USD charged for build and deploy.
    pub total_cost: f64,
    /// USD left.
    pub budget_remaining: f64,
    /// Who approved.
    pub approved_by: String,
    /// The identity the server stored with the approval signal.
    pub approver_identity: String,
}

/// A decision an operator sent.
#[derive(Debug, Clone)]
enum Decision {
    Approved(ApproveDeployment),
    Rejected(RejectDeployment),
}

/// The reference workflow.
#[workflow]
#[derive(Default)]
pub struct BuildAndDeployWorkflow {
    pending: Option<DeploymentPlan>,
    decision: Option<Decision>,
}

pub(crate) fn activity_options(minutes: u64) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(minutes * 60))
        .heartbeat_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::builder()
                .maximum_attempts(3)
                .initial_interval(Duration::from_secs(1))
                .build(),
        )
        .build()
}

/// The build session closes itself after this long without an execution, should the workflow
/// be unable to close it.
const SESSION_IDLE_MS: u64 = 15 * 60 * 1000;

/// Options of an activity on the session's own task queue: if the worker holding the session
/// died, nobody polls that queue, and the call fails after the schedule-to-start timeout
/// (never retried) instead of waiting for its start-to-close timeout.
fn on_session(session: &OpenSandboxResult, minutes: u64) -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(minutes * 60))
        .task_queue(session.task_queue.clone())
        .schedule_to_start_timeout(Duration::from_millis(RECOMMENDED_SCHEDULE_TO_START_MS))
        .heartbeat_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::builder()
                .maximum_attempts(3)
                .initial_interval(Duration::from_secs(1))
                .build(),
        )
        .build()
}

/// Install, test and build in the session, in order; stops at the first that exits non-zero.
/// Returns what they cost and, if one failed, its name and stderr.
async fn run_steps(
    ctx: &mut WorkflowContext<BuildAndDeployWorkflow>,
    run_id: &str,
    session: &OpenSandboxResult,
    steps: &[(&'static str, String)],
) -> WorkflowResult<(f64, Option<(&'static str, String)>)> {
    let mut cost = 0.0;
    for (name, command) in steps {
        let result = ctx
            .execute_activity(
                SafeExecuteCode,
                SafeExecuteCodeInput {
                    timeout: Some(300_000),
                    sandbox_id: Some(session.sandbox_id.clone()),
                    ..SafeExecuteCodeInput::new(run_id, command.clone())
                },
                on_session(session, 6),
            )
            .await?;
        cost += result.cost;
        if result.exit_code != 0 || result.timed_out {
            return Ok((cost, Some((name, result.stderr))));
        }
    }
    Ok((cost, None))
}

pub(crate) fn fail(kind: &str, message: String) -> ApplicationFailure {
    ApplicationFailure::builder(message)
        .type_name(kind.to_string())
        .non_retryable(true)
        .build()
}

/// The install, test and build steps, named, with seed 001's defaults (`npm install`, `npm
/// test`, `npm run build`) for the commands not given. Shared by every reference workflow.
pub(crate) fn build_steps(
    install: &Option<String>,
    test: &Option<String>,
    build: &Option<String>,
) -> [(&'static str, String); 3] {
    let or = |c: &Option<String>, default: &str| c.clone().unwrap_or_else(|| default.into());
    [
        ("install", or(install, "npm install")),
        ("test", or(test, "npm test")),
        ("build", or(build, "npm run build")),
    ]
}

#[workflow_methods]
impl BuildAndDeployWorkflow {
    /// Install, test, build, wait for approval, deploy.
    #[run(name = "buildAndDeployWorkflow")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: BuildAndDeployInput,
    ) -> WorkflowResult<BuildAndDeployResult> {
        let steps = build_steps(
            &input.install_command,
            &input.test_command,
            &input.build_command,
        );
        // One session for the three steps: `npm test` sees what `npm install` wrote. It is
        // closed on every path; if the close itself cannot run, the session's idle timeout
        // reaps it.
        let session = ctx
            .execute_activity(
                OpenSandbox,
                OpenSandboxInput {
                    workspace_files: input.workspace_files.clone(),
                    idle_timeout_ms: Some(SESSION_IDLE_MS),
                    ..OpenSandboxInput::new(input.run_id.clone())
                },
                activity_options(5),
            )
            .await?;
        let built = run_steps(ctx, &input.run_id, &session, &steps).await;
        let closed = ctx
            .execute_activity(
                CloseSandbox,
                CloseSandboxInput {
                    sandbox_id: session.sandbox_id.clone(),
                },
                on_session(&session, 1),
            )
            .await;
        if let Err(e) = closed {
            // The session's idle timeout reaps it; the build's outcome is what matters.
            let _ = e;
        }
        let (build_cost, failed) = built?;
        if let Some((step, stderr)) = failed {
            let tail: String = stderr
                .chars()
                .rev()
                .take(2000)
                .collect::<Vec<_>>()
                .into_iter()
                .rev()
                .collect();
            return Err(fail("BuildFailed", format!("{step} failed: {tail}")).into());
        }

        let deploy = DeployWithApprovalInput {
            run_id: input.run_id.clone(),
            platform: input.deploy_platform.clone(),
            command: input
                .deploy_command
                .clone()
                .unwrap_or_else(|| format!("{} deploy --prod", input.deploy_platform)),
            workspace_files: input.workspace_files.clone(),
            env: input.deploy_env.clone(),
            allowed_domains: input.deploy_domains.clone(),
            approval: None,
            timeout: Some(300_000),
            image: None,
            phase: None,
            health_check_command: None,
            rollback_command: None,
            rollback: None,
        };
        let plan = DeploymentPlan::of(&deploy);
        ctx.state_mut(|s| s.pending = Some(plan));

        let wait = Duration::from_secs(input.approval_timeout_secs.unwrap_or(24 * 60 * 60));
        let decided = {
            let condition = ctx.wait_condition(|s| s.decision.is_some()).fuse();
            let timer = ctx.timer(wait).fuse();
            futures::pin_mut!(condition, timer);
            futures::select! {
                r = condition => { r?; true },
                _ = timer => false,
            }
        };
        ctx.state_mut(|s| s.pending = None);
        let decision = ctx.state(|s| s.decision.clone());
        let approval = match (decided, decision) {
            (true, Some(Decision::Approved(a))) => a,
            (true, Some(Decision::Rejected(r))) => {
                return Err(fail(
                    "DeploymentRejected",
                    format!("deployment rejected by {}: {}", r.approver, r.reason),
                )
                .into());
            }
            _ => {
                return Err(fail(
                    "ApprovalTimeout",
                    format!(
                        "no approval within {} s; nothing was deployed",
                        wait.as_secs()
                    ),
                )
                .into());
            }
        };

        let result = ctx
            .execute_activity(
                DeployWithApproval,
                DeployWithApprovalInput {
                    approval: Some(Approval {
                        approver: approval.approver,
                        comment: approval.comment,
                    }),
                    ..deploy
                },
                activity_options(10),
            )
            .await?;
        Ok(BuildAndDeployResult {
            success: result.success,
            url: result.url,
            total_cost: ((build_cost + result.cost) * 1e6).round() / 1e6,
            budget_remaining: result.budget_remaining,
            approved_by: result.approved_by,
            approver_identity: result.approver_identity,
        })
    }

    /// An operator approves. The latest decision wins, as the worker's history check assumes.
    #[signal(name = "approveDeployment")]
    pub fn approve_deployment(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        approval: ApproveDeployment,
    ) {
        self.decision = Some(Decision::Approved(approval));
    }

    /// An operator rejects.
    #[signal(name = "rejectDeployment")]
    pub fn reject_deployment(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        rejection: RejectDeployment,
    ) {
        self.decision = Some(Decision::Rejected(rejection));
    }

    /// The plan awaiting approval, or null.
    #[query(name = "pendingApproval")]
    pub fn pending_approval(&self, _ctx: &WorkflowContextView) -> Option<DeploymentPlan> {
        self.pending.clone()
    }
}
