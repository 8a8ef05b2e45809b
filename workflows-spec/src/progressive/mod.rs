//! `progressiveDeployWorkflow`'s wire contract: its input and result, the `deploymentStatus`
//! query, the `abortDeployment` signal, the promotion plan shown by `pendingApproval`, and the
//! `recordDeploymentEvent` activity's input. The workflow itself is in [`workflow`], the health
//! verdict (pure, unit-tested) in [`health`]. Behaviour of the activities lives in
//! `ae-activities`.

pub mod health;
pub mod production;
pub mod workflow;

use crate::deploy::DeploymentPlan;
use crate::execute::WorkspaceFile;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The workflow's name.
pub const PROGRESSIVE_WORKFLOW: &str = "progressiveDeployWorkflow";
/// Query returning [`DeploymentStatus`].
pub const STATUS_QUERY: &str = "deploymentStatus";
/// Signal carrying [`AbortDeployment`].
pub const ABORT_SIGNAL: &str = "abortDeployment";
/// Wire name of the audit/alert activity.
pub const RECORD_DEPLOYMENT_EVENT: &str = "recordDeploymentEvent";

/// The stage a plan is approved for (the `phase` of its [`DeploymentPlan`]).
pub const CANARY: &str = "canary";
/// The stage of the promotion to 100 %.
pub const PROMOTE: &str = "promote";

/// Input of `progressiveDeployWorkflow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProgressiveDeployInput {
    /// Names the budget.
    pub run_id: String,
    /// e.g. `vercel`; a plain name.
    pub platform: String,
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
    /// Deploys the canary; `$CANARY_PERCENT` holds `canaryPercent`.
    pub canary_command: String,
    /// Prints one JSON line `{"errorRate": 0.01, "p95LatencyMs": 120}`; runs as an ordinary
    /// sandboxed execution with egress to `allowedDomains`.
    pub health_check_command: String,
    /// Sends all traffic to the new version.
    pub promote_command: String,
    /// Undoes the canary (or the promotion); approved with the canary plan.
    pub rollback_command: String,
    /// Default 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_percent: Option<f64>,
    /// Length of the monitoring window, seconds; default 86400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_secs: Option<u64>,
    /// Seconds between health checks; default 300.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_interval_secs: Option<u64>,
    /// Highest healthy error rate (0..1); default 0.05.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_error_rate: Option<f64>,
    /// Highest healthy p95 latency, ms; default 5000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_latency_ms: Option<f64>,
    /// Hosts the deploys and the health check may reach (default per platform).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
    /// Environment of the canary, promote and rollback commands (tokens); redacted everywhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deploy_env: BTreeMap<String, String>,
    /// Environment of the health check (e.g. a read-only metrics token); redacted everywhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub health_check_env: BTreeMap<String, String>,
    /// How long to wait for each approval; default 86400. No decision in time deploys nothing
    /// (canary) or rolls back (promotion).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval_timeout_secs: Option<u64>,
    /// After the promotion, how long to keep checking production (seconds) with the same health
    /// check, interval and limits, in a `productionMonitorWorkflow` that outlives this one and
    /// alerts on a breach (see [`production`]). Absent or 0: production is not monitored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_monitor_secs: Option<u64>,
}

/// How a progressive deployment ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeploymentOutcome {
    /// The canary was healthy, the promotion approved and deployed.
    Promoted,
    /// The pre-approved rollback ran (breach, failed check, rejection, timeout, abort).
    RolledBack,
    /// Aborted before anything was deployed; nothing to roll back.
    Aborted,
}

/// Output of `progressiveDeployWorkflow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProgressiveDeployResult {
    /// How it ended.
    pub outcome: DeploymentOutcome,
    /// Why (the breach, the rejection, the abort), empty when promoted.
    pub reason: String,
    /// Every health check of the canary, the evidence of a rollback.
    pub measurements: Vec<HealthMeasurement>,
    /// Who approved what.
    pub approvals: Vec<ApprovalRecord>,
    /// USD charged for everything.
    pub total_cost: f64,
    /// The `productionMonitorWorkflow` watching production after the promotion, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_monitor: Option<String>,
}

/// Where a progressive deployment is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum DeploymentPhase {
    /// Install, test, build.
    Building,
    /// Waiting for the canary plan's approval.
    AwaitingCanaryApproval,
    /// The canary deploy is running.
    DeployingCanary,
    /// Health checks of the canary.
    Monitoring,
    /// Waiting for the promotion's approval.
    AwaitingPromotionApproval,
    /// The promote deploy is running.
    Promoting,
    /// The rollback is running.
    RollingBack,
    /// Ended: see the result.
    Promoted,
    /// Ended after the rollback.
    RolledBack,
    /// Ended before anything was deployed.
    Aborted,
    /// Ended with a failure (build failed, canary plan rejected, rollback failed, ...).
    Failed,
}

/// One health check of the canary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HealthMeasurement {
    /// Workflow time of the check, Unix ms.
    pub at_ms: u64,
    /// Reported error rate, when the output could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_rate: Option<f64>,
    /// Reported p95 latency, ms, when the output could be read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p95_latency_ms: Option<f64>,
    /// Within both limits. A check that failed or printed no readable line is never healthy.
    pub healthy: bool,
    /// Why it is not healthy (or `ok`).
    pub note: String,
}

/// One decision by a person.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApprovalRecord {
    /// `canary`, `promote` or `abort`.
    pub phase: String,
    /// Who.
    pub approver: String,
    /// `approved`, `rejected` or `aborted`.
    pub decision: String,
    /// The plan digest approved (empty for a rejection or an abort).
    #[serde(default)]
    pub plan_digest: String,
    /// The comment or reason.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// Workflow time, Unix ms.
    pub at_ms: u64,
}

/// Result of the `deploymentStatus` query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentStatus {
    /// Where the deployment is.
    pub phase: DeploymentPhase,
    /// The canary's share of traffic, percent.
    pub canary_percent: f64,
    /// Health checks so far.
    pub measurements: Vec<HealthMeasurement>,
    /// When the next health check runs, Unix ms (monitoring only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_check_at_ms: Option<u64>,
    /// When monitoring ends, Unix ms.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitor_ends_at_ms: Option<u64>,
    /// Who approved, rejected or aborted what.
    pub approvals: Vec<ApprovalRecord>,
    /// Why it rolled back, aborted or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// Payload of the `abortDeployment` signal: roll back from any phase.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AbortDeployment {
    /// Who aborts.
    pub approver: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// What `pendingApproval` shows during the promotion: the plan to approve (its `planDigest` is
/// what the approval names; `phase` is `promote`) and the canary's measurements.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PendingStage {
    /// The plan; `ae-worker approve` reads these fields.
    #[serde(flatten)]
    pub plan: DeploymentPlan,
    /// The canary's share of traffic, percent.
    pub canary_percent: f64,
    /// The canary's health checks so far (empty for the canary plan).
    pub measurements: Vec<HealthMeasurement>,
}

/// Input of `recordDeploymentEvent`: one phase change or decision, to the audit stream
/// `ae:audit` and, with `alert`, to `ae:alerts` and the alert webhook.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeploymentEvent {
    /// The run.
    pub run_id: String,
    /// e.g. `canary.approved`, `monitor.breach`, `rollback.success`.
    pub event: String,
    /// `success`, `failure`, `blocked`, `info`.
    pub outcome: String,
    /// Who decided (the approver), or the workflow.
    pub actor: String,
    /// What happened, redacted by the worker.
    #[serde(default)]
    pub detail: String,
    /// `warning` or `critical`: also an alert.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<String>,
}

/// Output of `recordDeploymentEvent`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct EventRecorded {
    /// False when a retry found the event already recorded.
    pub recorded: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::deploy::DeployWithApprovalInput;

    #[test]
    fn a_pending_stage_reads_as_the_plan_it_shows() {
        // `ae-worker approve` and other clients read `pendingApproval` as a plain plan and
        // recompute its digest from it, stage included.
        let input: DeployWithApprovalInput = serde_json::from_value(serde_json::json!({
            "runId": "r", "platform": "fake", "command": "promote",
            "phase": "promote", "healthCheckCommand": "check", "rollbackCommand": "undo"
        }))
        .unwrap();
        let stage = PendingStage {
            plan: DeploymentPlan::of(&input),
            canary_percent: 1.0,
            measurements: vec![],
        };
        let text = serde_json::to_string(&stage).unwrap();
        let plan: DeploymentPlan = serde_json::from_str(&text).unwrap();
        assert_eq!(plan.phase.as_deref(), Some("promote"));
        assert_eq!(plan.recompute_digest(), stage.plan.plan_digest);
        let back: PendingStage = serde_json::from_str(&text).unwrap();
        assert_eq!(back, stage);
    }
}
