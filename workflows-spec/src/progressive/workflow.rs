//! `progressiveDeployWorkflow`: build, canary, monitoring, promotion, with the pre-approved
//! rollback on any trouble.
//!
//! 1. Install, test and build run as one `safeExecuteBatch`.
//! 2. The canary plan (phase `canary`; its digest covers the canary, health-check and rollback
//!    commands) is published through `pendingApproval`; an `approveDeployment` naming its digest
//!    lets `deployWithApproval` run the canary. A rejection or a timeout deploys nothing.
//! 3. Every `checkIntervalSecs` for `monitorSecs` the health check runs through
//!    `safeExecuteCode` (egress to the platform's domains only). A breach, a failed check or an
//!    unreadable output (see [`health`](super::health)) runs the rollback at once.
//! 4. The promotion plan (phase `promote`, a different digest) is published with the canary's
//!    measurements; an approval naming it runs the promote deploy. A rejection or a timeout
//!    rolls back.
//! 5. With `productionMonitorSecs`, a `productionMonitorWorkflow` (see
//!    [`production`](super::production)) is started to watch production, and outlives this one.
//!
//! The rollback is `deployWithApproval` with `rollback: true` on the canary plan and its
//! approval: the worker runs the plan's `rollbackCommand`, nothing else. `abortDeployment`
//! rolls back from any phase: it cancels a running build or health check (the worker stops its
//! sandbox), and lets a running deploy finish first. An approval counts only while
//! its stage is pending and only if it names that stage's digest, so an approval of the canary
//! never promotes, and an approval sent before the promotion was shown is ignored; the worker
//! re-verifies every approval against the signal history and spends it once. Every phase and
//! decision goes to the audit stream through `recordDeploymentEvent`, alerts to `ae:alerts`.

mod steps;

pub(crate) use steps::{check_options, health_check, now_ms, record_event, woke_within};

use super::*;
use crate::activities::DeployWithApproval;
use crate::deploy::{
    Approval, ApproveDeployment, DeployWithApprovalInput, DeploymentPlan, RejectDeployment,
};
use crate::workflow::{activity_options, fail};
use std::time::UNIX_EPOCH;
use steps::*;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult};

/// A decision on the pending stage.
#[derive(Debug, Clone)]
enum Decision {
    Approved(ApproveDeployment),
    Rejected(RejectDeployment),
}

/// What woke a wait.
enum Wake {
    Ready,
    TimedOut,
    Aborted,
}

/// The workflow's state, read by its query and written by its signals.
#[workflow]
pub struct ProgressiveDeployWorkflow {
    status: DeploymentStatus,
    pending: Option<PendingStage>,
    decision: Option<Decision>,
    abort: Option<AbortDeployment>,
}

impl Default for ProgressiveDeployWorkflow {
    fn default() -> Self {
        Self {
            status: DeploymentStatus {
                phase: DeploymentPhase::Building,
                canary_percent: 1.0,
                measurements: Vec::new(),
                next_check_at_ms: None,
                monitor_ends_at_ms: None,
                approvals: Vec::new(),
                reason: None,
            },
            pending: None,
            decision: None,
            abort: None,
        }
    }
}

/// Where the run stands while it deploys: the canary's approval (for the rollback) and cost.
struct Run<'a> {
    input: &'a ProgressiveDeployInput,
    canary: DeployWithApprovalInput,
    cost: f64,
}

#[workflow_methods]
impl ProgressiveDeployWorkflow {
    /// Build, canary, monitor, promote; roll back on trouble.
    #[run(name = "progressiveDeployWorkflow")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: ProgressiveDeployInput,
    ) -> WorkflowResult<ProgressiveDeployResult> {
        let s = match settings(&input) {
            Ok(s) => s,
            Err(e) => return Err(fail("InvalidInput", e).into()),
        };
        ctx.state_mut(|w| w.status.canary_percent = s.percent);
        let mut run = Run {
            input: &input,
            canary: stage_input(&input, &s, CANARY),
            cost: 0.0,
        };

        // 1. Build.
        record(ctx, &run, "build.started", "info", "workflow", "", None).await;
        let built = build(ctx, &input).await;
        let batch = match built {
            Ok(Some(b)) => b,
            Ok(None) => return Ok(aborted_before_deploy(ctx, &run).await),
            Err(e) => {
                ctx.state_mut(|w| w.status.phase = DeploymentPhase::Failed);
                record(ctx, &run, "build", "failure", "workflow", &e, None).await;
                return Err(fail("BuildFailed", e).into());
            }
        };
        run.cost += batch;
        record(ctx, &run, "build", "success", "workflow", "", None).await;
        if ctx.state(|w| w.abort.is_some()) {
            return Ok(aborted_before_deploy(ctx, &run).await);
        }

        // 2. Canary approval, canary deploy.
        let plan = DeploymentPlan::of(&run.canary);
        let canary_approval = match decide(
            ctx,
            &run,
            plan,
            DeploymentPhase::AwaitingCanaryApproval,
            s.approval_wait,
        )
        .await
        {
            (Wake::Ready, Some(Decision::Approved(a))) => a,
            (Wake::Aborted, _) => {
                return Ok(aborted_before_deploy(ctx, &run).await);
            }
            (Wake::Ready, Some(Decision::Rejected(r))) => {
                ctx.state_mut(|w| {
                    w.status.phase = DeploymentPhase::Failed;
                    w.status.reason =
                        Some(format!("canary rejected by {}: {}", r.approver, r.reason));
                });
                return Err(fail(
                    "DeploymentRejected",
                    format!("canary plan rejected by {}: {}", r.approver, r.reason),
                )
                .into());
            }
            _ => {
                let message = format!(
                    "no approval of the canary plan within {} s; nothing was deployed",
                    s.approval_wait.as_secs()
                );
                ctx.state_mut(|w| {
                    w.status.phase = DeploymentPhase::Failed;
                    w.status.reason = Some(message.clone());
                });
                record(
                    ctx,
                    &run,
                    "canary.approval",
                    "timeout",
                    "workflow",
                    &message,
                    Some("warning"),
                )
                .await;
                return Err(fail("ApprovalTimeout", message).into());
            }
        };
        run.canary.approval = Some(Approval {
            approver: canary_approval.approver.clone(),
            comment: canary_approval.comment.clone(),
        });
        ctx.state_mut(|w| w.status.phase = DeploymentPhase::DeployingCanary);
        let deployed = ctx
            .execute_activity(DeployWithApproval, run.canary.clone(), activity_options(10))
            .await;
        match deployed {
            Ok(d) if d.success => {
                run.cost += d.cost;
                let detail = format!("canary at {} % by {}", s.percent, d.approved_by);
                record(
                    ctx,
                    &run,
                    "canary.deploy",
                    "success",
                    &d.approved_by,
                    &detail,
                    None,
                )
                .await;
            }
            Ok(d) => {
                run.cost += d.cost;
                let reason = format!("the canary deploy exited {}", d.exit_code);
                record(
                    ctx,
                    &run,
                    "canary.deploy",
                    "failure",
                    &d.approved_by,
                    &reason,
                    Some("critical"),
                )
                .await;
                return rollback(ctx, &run, reason).await;
            }
            Err(e) => {
                let message = format!("the canary deploy failed: {e}");
                ctx.state_mut(|w| {
                    w.status.phase = DeploymentPhase::Failed;
                    w.status.reason = Some(message.clone());
                });
                record(
                    ctx,
                    &run,
                    "canary.deploy",
                    "failure",
                    "workflow",
                    &message,
                    Some("critical"),
                )
                .await;
                return Err(e.into());
            }
        }

        // 3. Monitoring.
        if let Some(reason) = monitor(ctx, &mut run, &s).await? {
            return rollback(ctx, &run, reason).await;
        }

        // 4. Promotion approval, promote deploy.
        let mut promote = stage_input(&input, &s, PROMOTE);
        let plan = DeploymentPlan::of(&promote);
        let reason = match decide(
            ctx,
            &run,
            plan,
            DeploymentPhase::AwaitingPromotionApproval,
            s.approval_wait,
        )
        .await
        {
            (Wake::Ready, Some(Decision::Approved(a))) => {
                promote.approval = Some(Approval {
                    approver: a.approver,
                    comment: a.comment,
                });
                None
            }
            (Wake::Aborted, _) => Some(abort_reason(ctx)),
            (Wake::Ready, Some(Decision::Rejected(r))) => Some(format!(
                "promotion rejected by {}: {}",
                r.approver, r.reason
            )),
            _ => Some(format!(
                "no approval of the promotion within {} s",
                s.approval_wait.as_secs()
            )),
        };
        if let Some(reason) = reason {
            return rollback(ctx, &run, reason).await;
        }
        ctx.state_mut(|w| w.status.phase = DeploymentPhase::Promoting);
        let promoted = ctx
            .execute_activity(DeployWithApproval, promote, activity_options(10))
            .await;
        let reason = match promoted {
            Ok(d) if d.success => {
                run.cost += d.cost;
                record(
                    ctx,
                    &run,
                    "promote.deploy",
                    "success",
                    &d.approved_by,
                    "100 %",
                    None,
                )
                .await;
                None
            }
            Ok(d) => {
                run.cost += d.cost;
                Some(format!("the promote deploy exited {}", d.exit_code))
            }
            Err(e) => Some(format!("the promote deploy failed: {e}")),
        };
        if let Some(reason) = reason {
            record(
                ctx,
                &run,
                "promote.deploy",
                "failure",
                "workflow",
                &reason,
                Some("critical"),
            )
            .await;
            return rollback(ctx, &run, reason).await;
        }
        if ctx.state(|w| w.abort.is_some()) {
            let reason = abort_reason(ctx);
            return rollback(ctx, &run, reason).await;
        }
        ctx.state_mut(|w| w.status.phase = DeploymentPhase::Promoted);
        let monitor = watch_production(ctx, &run, &s).await;
        Ok(ProgressiveDeployResult {
            production_monitor: monitor,
            ..result(ctx, &run, DeploymentOutcome::Promoted, String::new())
        })
    }

    /// An operator approves the pending stage: counted only if it names that stage's digest.
    #[signal(name = "approveDeployment")]
    pub fn approve_deployment(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        approval: ApproveDeployment,
    ) {
        let Some(pending) = &self.pending else {
            return;
        };
        if approval.plan_digest.as_deref() != Some(pending.plan.plan_digest.as_str()) {
            return;
        }
        let at_ms = signal_time(ctx);
        self.status.approvals.push(ApprovalRecord {
            phase: pending.plan.phase.clone().unwrap_or_default(),
            approver: approval.approver.clone(),
            decision: "approved".into(),
            plan_digest: pending.plan.plan_digest.clone(),
            comment: approval.comment.clone(),
            at_ms,
        });
        self.decision = Some(Decision::Approved(approval));
    }

    /// An operator rejects the pending stage.
    #[signal(name = "rejectDeployment")]
    pub fn reject_deployment(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        rejection: RejectDeployment,
    ) {
        let Some(pending) = &self.pending else {
            return;
        };
        self.status.approvals.push(ApprovalRecord {
            phase: pending.plan.phase.clone().unwrap_or_default(),
            approver: rejection.approver.clone(),
            decision: "rejected".into(),
            plan_digest: String::new(),
            comment: Some(rejection.reason.clone()),
            at_ms: signal_time(ctx),
        });
        self.decision = Some(Decision::Rejected(rejection));
    }

    /// Roll back from any phase (the first abort counts).
    #[signal(name = "abortDeployment")]
    pub fn abort_deployment(
        &mut self,
        ctx: &mut SyncWorkflowContext<Self>,
        abort: AbortDeployment,
    ) {
        if self.abort.is_some() {
            return;
        }
        self.status.approvals.push(ApprovalRecord {
            phase: "abort".into(),
            approver: abort.approver.clone(),
            decision: "aborted".into(),
            plan_digest: String::new(),
            comment: Some(abort.reason.clone()),
            at_ms: signal_time(ctx),
        });
        self.abort = Some(abort);
    }

    /// The stage awaiting approval (its plan and the canary's measurements), or null.
    #[query(name = "pendingApproval")]
    pub fn pending_approval(&self, _ctx: &WorkflowContextView) -> Option<PendingStage> {
        self.pending.clone()
    }

    /// Phase, measurements, next check, who approved what.
    #[query(name = "deploymentStatus")]
    pub fn deployment_status(&self, _ctx: &WorkflowContextView) -> DeploymentStatus {
        self.status.clone()
    }
}

fn signal_time(ctx: &SyncWorkflowContext<ProgressiveDeployWorkflow>) -> u64 {
    ctx.workflow_time()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}
