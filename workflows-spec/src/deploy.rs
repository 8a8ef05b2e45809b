//! `deployWithApproval`, the approval signals and query, and the deployment plan.
//!
//! The plan digest is what an approval is bound to: the worker, the reference workflow and
//! `ae-worker approve` all compute it with [`DeploymentPlan::new`], from the run, the platform,
//! the command, the allowed domains and the SHA-256 of every workspace file, serialised as
//! compact JSON with keys in a fixed order. Other languages can recompute it (see the samples).

use crate::execute::WorkspaceFile;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;

/// Signal that approves the pending deployment.
pub const APPROVE_SIGNAL: &str = "approveDeployment";
/// Signal that rejects it.
pub const REJECT_SIGNAL: &str = "rejectDeployment";
/// Query returning the plan awaiting approval, or null.
pub const PENDING_QUERY: &str = "pendingApproval";

/// Seed 000 §5: what an approver acknowledges.
pub const PRODUCTION_WARNING: &str = "WARNING: You are about to deploy to PRODUCTION. This \
integration will access real customer data, make real API calls that count against your quota, \
and potentially modify data (if write operations are enabled).";

/// Input of `deployWithApproval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DeployWithApprovalInput {
    /// Names the budget.
    pub run_id: String,
    /// e.g. `vercel`, `netlify`.
    pub platform: String,
    /// The deploy command, run as `/bin/sh -c`.
    pub command: String,
    /// The project files, scanned for hardcoded credentials before anything runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspace_files: Vec<WorkspaceFile>,
    /// Deploy tokens and the like; redacted from everything that leaves the worker.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Hosts the deploy may reach (default per platform, e.g. api.vercel.com).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
    /// Who approved; verified against the workflow's signal history.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub approval: Option<Approval>,
    /// Milliseconds, default 300000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
}

/// The approval a workflow passes to `deployWithApproval`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Approval {
    /// The approver's name, as in their `approveDeployment` signal.
    pub approver: String,
    /// Optional note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// Payload of the `approveDeployment` signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApproveDeployment {
    /// Who approves.
    pub approver: String,
    /// Optional note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The digest of the plan approved (required when approver keys are configured).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// Base64 Ed25519 signature over [`approval_message`] (required with approver keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
}

/// Payload of the `rejectDeployment` signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RejectDeployment {
    /// Who rejects.
    pub approver: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// What an approver approves: returned by `pendingApproval` and in ApprovalRequired details.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentPlan {
    /// The run.
    pub run_id: String,
    /// The platform.
    pub platform: String,
    /// The deploy command (redacted when it comes from the worker).
    pub command: String,
    /// Hosts the deploy may reach.
    pub allowed_domains: Vec<String>,
    /// Every workspace file with its SHA-256.
    pub files: Vec<PlanFile>,
    /// SHA-256 (hex) binding an approval to exactly this plan.
    pub plan_digest: String,
    /// Seed 000 §5.
    pub warning: String,
}

/// One file of a plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanFile {
    /// The path as given.
    pub path: String,
    /// SHA-256 of the content, hex.
    pub sha256: String,
}

/// The fields the digest covers, in their canonical order.
#[derive(Serialize)]
struct Canonical<'a> {
    #[serde(rename = "allowedDomains")]
    allowed_domains: &'a [String],
    command: &'a str,
    files: &'a [PlanFile],
    platform: &'a str,
    #[serde(rename = "runId")]
    run_id: &'a str,
}

impl DeploymentPlan {
    /// The plan of a deploy: digest over the canonical JSON of its fields.
    pub fn new(
        run_id: &str,
        platform: &str,
        command: &str,
        allowed_domains: &[String],
        files: &[WorkspaceFile],
    ) -> DeploymentPlan {
        let files: Vec<PlanFile> = files
            .iter()
            .map(|f| PlanFile {
                path: f.path.clone(),
                sha256: hex(&Sha256::digest(f.content.as_bytes())),
            })
            .collect();
        let canonical = Canonical {
            allowed_domains,
            command,
            files: &files,
            platform,
            run_id,
        };
        let json = serde_json::to_vec(&canonical).unwrap_or_default();
        DeploymentPlan {
            run_id: run_id.into(),
            platform: platform.into(),
            command: command.into(),
            allowed_domains: allowed_domains.to_vec(),
            files,
            plan_digest: hex(&Sha256::digest(&json)),
            warning: PRODUCTION_WARNING.into(),
        }
    }

    /// The plan of a `deployWithApproval` input, with its domains defaulted per platform.
    pub fn of(input: &DeployWithApprovalInput) -> DeploymentPlan {
        let domains = input
            .allowed_domains
            .clone()
            .unwrap_or_else(|| default_domains(&input.platform));
        Self::new(
            &input.run_id,
            &input.platform,
            &input.command,
            &domains,
            &input.workspace_files,
        )
    }
}

/// The hosts a platform's CLI needs.
pub fn default_domains(platform: &str) -> Vec<String> {
    let hosts: &[&str] = match platform {
        "vercel" => &["api.vercel.com", "vercel.com"],
        "netlify" => &["api.netlify.com", "app.netlify.com"],
        "fly" => &["api.fly.io"],
        _ => &[],
    };
    hosts.iter().map(|h| h.to_string()).collect()
}

/// The bytes an approver signs: binds workflow, plan and approver together.
pub fn approval_message(workflow_id: &str, plan_digest: &str, approver: &str) -> String {
    format!("ae-approval-v1\n{workflow_id}\n{plan_digest}\n{approver}")
}

/// Output of `deployWithApproval`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DeploymentResult {
    /// The deploy command exited 0.
    pub success: bool,
    /// The first https URL in the output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// The deploy command's exit code.
    pub exit_code: i64,
    /// Redacted.
    pub stdout: String,
    /// Redacted.
    pub stderr: String,
    /// USD charged.
    pub cost: f64,
    /// USD left.
    pub budget_remaining: f64,
    /// The approver named in the verified signal.
    pub approved_by: String,
    /// The client identity the Temporal server stored with that signal.
    pub approver_identity: String,
    /// Wall time, ms.
    pub duration_ms: u64,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_digest_binds_every_field() {
        let files = vec![WorkspaceFile {
            path: "index.html".into(),
            content: "<h1>hi</h1>".into(),
        }];
        let d = |run: &str, cmd: &str, content: &str| {
            let f = vec![WorkspaceFile {
                path: "index.html".into(),
                content: content.into(),
            }];
            DeploymentPlan::new(run, "vercel", cmd, &default_domains("vercel"), &f).plan_digest
        };
        let base = DeploymentPlan::new(
            "r",
            "vercel",
            "vercel deploy --prod",
            &default_domains("vercel"),
            &files,
        );
        assert_eq!(base.plan_digest.len(), 64);
        assert_eq!(
            base.plan_digest,
            d("r", "vercel deploy --prod", "<h1>hi</h1>")
        );
        assert_ne!(
            base.plan_digest,
            d("r2", "vercel deploy --prod", "<h1>hi</h1>")
        );
        assert_ne!(base.plan_digest, d("r", "vercel deploy", "<h1>hi</h1>"));
        assert_ne!(
            base.plan_digest,
            d("r", "vercel deploy --prod", "<h1>bye</h1>")
        );
    }

    #[test]
    fn the_canonical_form_is_stable() {
        // Pinned so other languages can check their implementation against it.
        let p = DeploymentPlan::new(
            "run-1",
            "vercel",
            "vercel deploy --prod",
            &["api.vercel.com".into()],
            &[],
        );
        let canonical = r#"{"allowedDomains":["api.vercel.com"],"command":"vercel deploy --prod","files":[],"platform":"vercel","runId":"run-1"}"#;
        assert_eq!(p.plan_digest, hex(&Sha256::digest(canonical.as_bytes())));
    }
}
