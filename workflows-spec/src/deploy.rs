//! `deployWithApproval`, the approval signals and query, and the deployment plan.
//!
//! The plan digest is what an approval is bound to: the worker, the reference workflow and
//! `ae-worker approve` all compute it with [`DeploymentPlan::of`], from everything that changes
//! what a deploy does: the run, the platform, the command, the allowed domains, the image, the
//! timeout, the sandbox profile, the SHA-256 of every workspace file and the name and SHA-256 of
//! every `env` value (never the value), serialised as compact JSON with keys in sorted order.
//! Other languages recompute it (see the samples); `ae-worker approve` recomputes it from the
//! plan it shows ([`DeploymentPlan::recompute_digest`]) and refuses a plan whose digest does not
//! match.

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

/// Default deploy timeout, ms (part of the plan when the input names none).
pub const DEFAULT_DEPLOY_TIMEOUT_MS: u64 = 300_000;

/// The sandbox profile every deploy runs in (part of the plan).
pub const DEPLOY_PROFILE: &str = "production";

/// How long a signed approval is valid by default, seconds (24 h).
pub const DEFAULT_APPROVAL_VALIDITY_SECS: u64 = 24 * 60 * 60;

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
    /// The sandbox image (default: the worker's configured image; others must be on its
    /// allowlist).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Progressive deployments: the stage this plan is for (`canary`, `promote`). Part of the
    /// plan and its digest, so an approval (and its signature) names the stage it approves.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Progressive deployments: the health check the approver approves with the plan (run by
    /// the workflow through `safeExecuteCode`, not by this activity). Part of the digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_command: Option<String>,
    /// Progressive deployments: the rollback approved with the plan. Part of the digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_command: Option<String>,
    /// Run the plan's `rollbackCommand` instead of `command`, on the approval of the plan (the
    /// rollback was approved with it). Allowed once per approval, and only after the approval
    /// was used by the plan's deploy. Not part of the digest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback: Option<bool>,
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

/// Payload of the `approveDeployment` signal. Only a signal sent by a client (the `temporal`
/// CLI, the Web UI, an SDK client, `ae-worker approve`) counts; one sent by a workflow does not.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ApproveDeployment {
    /// Who approves.
    pub approver: String,
    /// Optional note.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
    /// The `planDigest` of the plan approved, as shown by `pendingApproval`. Required: an
    /// approval without it is ApprovalInvalid. (Optional in the schema only so that a workflow
    /// can still receive such a signal and report the typed failure.)
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plan_digest: Option<String>,
    /// Base64 Ed25519 signature over [`approval_message`] (required with approver keys).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<String>,
    /// Unix time (seconds) after which the signed approval is no longer valid (required with a
    /// signature; part of the signed message).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<u64>,
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
/// Never holds an `env` value, only its name and SHA-256.
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
    /// Every `env` variable by name with the SHA-256 of its value, sorted by name.
    #[serde(default)]
    pub env: Vec<PlanEnv>,
    /// The sandbox image; null means the worker's configured default image.
    #[serde(default)]
    pub image: Option<String>,
    /// The deploy's timeout, ms.
    pub timeout: u64,
    /// The sandbox profile (always `production`).
    pub profile: String,
    /// Progressive deployments: the stage approved (`canary`, `promote`); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<String>,
    /// Progressive deployments: the health check approved with the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_check_command: Option<String>,
    /// Progressive deployments: the rollback approved with the plan.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollback_command: Option<String>,
    /// SHA-256 (hex) binding an approval to exactly this plan.
    pub plan_digest: String,
    /// Seed 000 §5.
    pub warning: String,
}

/// One `env` variable of a plan: its name and the SHA-256 of its value, never the value.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PlanEnv {
    /// The variable's name.
    pub name: String,
    /// SHA-256 of the value, hex.
    pub sha256: String,
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

/// The fields the digest covers, keys in sorted order (the canonical form other languages
/// reproduce: compact JSON, `files` and `env` in input order / sorted by name). The progressive
/// fields appear only when set, so the digest of every other plan is unchanged.
#[derive(Serialize)]
struct Canonical<'a> {
    #[serde(rename = "allowedDomains")]
    allowed_domains: &'a [String],
    command: &'a str,
    env: &'a [PlanEnv],
    files: &'a [PlanFile],
    #[serde(rename = "healthCheckCommand", skip_serializing_if = "Option::is_none")]
    health_check_command: &'a Option<String>,
    image: &'a Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    phase: &'a Option<String>,
    platform: &'a str,
    profile: &'a str,
    #[serde(rename = "rollbackCommand", skip_serializing_if = "Option::is_none")]
    rollback_command: &'a Option<String>,
    #[serde(rename = "runId")]
    run_id: &'a str,
    timeout: u64,
}

impl DeploymentPlan {
    /// The plan of a deploy; its digest is computed with [`Self::recompute_digest`].
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        run_id: &str,
        platform: &str,
        command: &str,
        allowed_domains: &[String],
        files: &[WorkspaceFile],
        env: &BTreeMap<String, String>,
        image: Option<&str>,
        timeout: u64,
    ) -> DeploymentPlan {
        let mut plan = DeploymentPlan {
            run_id: run_id.into(),
            platform: platform.into(),
            command: command.into(),
            allowed_domains: allowed_domains.to_vec(),
            files: files
                .iter()
                .map(|f| PlanFile {
                    path: f.path.clone(),
                    sha256: sha256_hex(f.content.as_bytes()),
                })
                .collect(),
            env: env
                .iter()
                .map(|(name, value)| PlanEnv {
                    name: name.clone(),
                    sha256: sha256_hex(value.as_bytes()),
                })
                .collect(),
            image: image.map(str::to_string),
            timeout,
            profile: DEPLOY_PROFILE.into(),
            phase: None,
            health_check_command: None,
            rollback_command: None,
            plan_digest: String::new(),
            warning: PRODUCTION_WARNING.into(),
        };
        plan.plan_digest = plan.recompute_digest();
        plan
    }

    /// The plan of a `deployWithApproval` input, with its domains defaulted per platform and
    /// its timeout defaulted to [`DEFAULT_DEPLOY_TIMEOUT_MS`].
    pub fn of(input: &DeployWithApprovalInput) -> DeploymentPlan {
        let domains = input
            .allowed_domains
            .clone()
            .unwrap_or_else(|| default_domains(&input.platform));
        let mut plan = Self::new(
            &input.run_id,
            &input.platform,
            &input.command,
            &domains,
            &input.workspace_files,
            &input.env,
            input.image.as_deref(),
            input.timeout.unwrap_or(DEFAULT_DEPLOY_TIMEOUT_MS),
        );
        if input.phase.is_some()
            || input.health_check_command.is_some()
            || input.rollback_command.is_some()
        {
            plan.phase = input.phase.clone();
            plan.health_check_command = input.health_check_command.clone();
            plan.rollback_command = input.rollback_command.clone();
            plan.plan_digest = plan.recompute_digest();
        }
        plan
    }

    /// The digest of the fields this plan shows (not the `planDigest` it claims): what an
    /// approver checks before approving.
    pub fn recompute_digest(&self) -> String {
        let canonical = Canonical {
            allowed_domains: &self.allowed_domains,
            command: &self.command,
            env: &self.env,
            files: &self.files,
            health_check_command: &self.health_check_command,
            image: &self.image,
            phase: &self.phase,
            platform: &self.platform,
            profile: &self.profile,
            rollback_command: &self.rollback_command,
            run_id: &self.run_id,
            timeout: self.timeout,
        };
        sha256_hex(&serde_json::to_vec(&canonical).unwrap_or_default())
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

/// What a signed approval binds together.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalSubject<'a> {
    /// The Temporal namespace.
    pub namespace: &'a str,
    /// The workflow that received the signal.
    pub workflow_id: &'a str,
    /// Its run.
    pub run_id: &'a str,
    /// The plan approved.
    pub plan_digest: &'a str,
    /// Who approves.
    pub approver: &'a str,
    /// Unix seconds after which the approval is void.
    pub expires_at: u64,
}

/// The bytes an approver signs: `ae-approval-v2` and the subject's fields, one per line.
pub fn approval_message(s: &ApprovalSubject<'_>) -> String {
    format!(
        "ae-approval-v2\n{}\n{}\n{}\n{}\n{}\n{}",
        s.namespace, s.workflow_id, s.run_id, s.plan_digest, s.approver, s.expires_at
    )
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
    /// The isolation tier the deploy ran under (`runc` or `gvisor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<crate::execute::SandboxRuntime>,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// SHA-256 of `bytes`, lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input() -> DeployWithApprovalInput {
        serde_json::from_value(serde_json::json!({
            "runId": "r",
            "platform": "vercel",
            "command": "vercel deploy --prod",
            "workspaceFiles": [{"path": "index.html", "content": "<h1>hi</h1>"}],
            "env": {"VERCEL_ORG_ID": "team_1", "VERCEL_TOKEN": "vt_secret"}
        }))
        .unwrap()
    }

    #[test]
    fn the_digest_binds_every_field() {
        let base = DeploymentPlan::of(&input());
        assert_eq!(base.plan_digest.len(), 64);
        assert_eq!(base.plan_digest, DeploymentPlan::of(&input()).plan_digest);
        assert_eq!(base.plan_digest, base.recompute_digest());
        type Change = Box<dyn Fn(&mut DeployWithApprovalInput)>;
        let changed: Vec<Change> = vec![
            Box::new(|i| i.run_id = "r2".into()),
            Box::new(|i| i.platform = "netlify".into()),
            Box::new(|i| i.command = "vercel deploy".into()),
            Box::new(|i| i.workspace_files[0].content = "<h1>bye</h1>".into()),
            Box::new(|i| i.workspace_files[0].path = "other.html".into()),
            Box::new(|i| i.allowed_domains = Some(vec!["evil.example".into()])),
            Box::new(|i| i.image = Some("other:latest".into())),
            Box::new(|i| i.timeout = Some(1000)),
            Box::new(|i| {
                i.env.insert("VERCEL_ORG_ID".into(), "team_2".into());
            }),
            Box::new(|i| {
                i.env
                    .insert("LD_PRELOAD".into(), "/workspace/index.html".into());
            }),
            Box::new(|i| {
                i.env.remove("VERCEL_TOKEN");
            }),
            Box::new(|i| i.phase = Some("canary".into())),
            Box::new(|i| i.health_check_command = Some("check".into())),
            Box::new(|i| i.rollback_command = Some("undo".into())),
        ];
        for (n, change) in changed.iter().enumerate() {
            let mut i = input();
            change(&mut i);
            assert_ne!(
                base.plan_digest,
                DeploymentPlan::of(&i).plan_digest,
                "change {n}"
            );
        }
        // The approval itself is not part of the plan.
        let mut i = input();
        i.approval = Some(Approval {
            approver: "a".into(),
            comment: None,
        });
        assert_eq!(base.plan_digest, DeploymentPlan::of(&i).plan_digest);
        // Nor is which of the plan's commands runs.
        i.rollback = Some(true);
        assert_eq!(base.plan_digest, DeploymentPlan::of(&i).plan_digest);
    }

    #[test]
    fn the_stage_of_a_progressive_plan_is_bound_into_its_digest() {
        let staged = |phase: &str| {
            let mut i = input();
            i.phase = Some(phase.into());
            i.health_check_command = Some("check".into());
            i.rollback_command = Some("undo".into());
            DeploymentPlan::of(&i)
        };
        let canary = staged("canary");
        assert_ne!(canary.plan_digest, staged("promote").plan_digest);
        assert_eq!(canary.plan_digest, canary.recompute_digest());
        // What other languages reproduce: the progressive keys in sorted order.
        let mut shown = canary.clone();
        shown.phase = Some("promote".into());
        assert_ne!(shown.recompute_digest(), canary.plan_digest);
    }

    #[test]
    fn the_plan_never_holds_env_values() {
        let plan = DeploymentPlan::of(&input());
        let text = serde_json::to_string(&plan).unwrap();
        assert!(
            !text.contains("vt_secret") && !text.contains("team_1"),
            "{text}"
        );
        assert_eq!(plan.env[0].name, "VERCEL_ORG_ID");
        assert_eq!(plan.env[0].sha256, sha256_hex(b"team_1"));
    }

    #[test]
    fn a_shown_plan_that_differs_from_its_digest_is_detected() {
        let mut plan = DeploymentPlan::of(&input());
        plan.command = "vercel deploy --prod --scope other".into();
        assert_ne!(plan.recompute_digest(), plan.plan_digest);
    }

    #[test]
    fn the_canonical_form_is_stable() {
        // Pinned so other languages can check their implementation against it (the samples'
        // planDigest.ts and plan_digest.py reproduce this string and digest).
        let p = DeploymentPlan::new(
            "run-1",
            "vercel",
            "vercel deploy --prod",
            &["api.vercel.com".into()],
            &[WorkspaceFile {
                path: "index.html".into(),
                content: "<h1>hi</h1>".into(),
            }],
            &BTreeMap::from([("VERCEL_TOKEN".to_string(), "t".to_string())]),
            None,
            300_000,
        );
        let canonical = format!(
            r#"{{"allowedDomains":["api.vercel.com"],"command":"vercel deploy --prod","env":[{{"name":"VERCEL_TOKEN","sha256":"{}"}}],"files":[{{"path":"index.html","sha256":"{}"}}],"image":null,"platform":"vercel","profile":"production","runId":"run-1","timeout":300000}}"#,
            sha256_hex(b"t"),
            sha256_hex(b"<h1>hi</h1>")
        );
        assert_eq!(p.plan_digest, sha256_hex(canonical.as_bytes()));
        assert_eq!(
            p.plan_digest,
            "ca90ee9b82be7cb1d47e64d5d2fdf3139c7e38e48af849c7a86e2002d9ccf0d6"
        );
    }

    #[test]
    fn the_signed_message_names_every_field() {
        let m = approval_message(&ApprovalSubject {
            namespace: "default",
            workflow_id: "wf",
            run_id: "run",
            plan_digest: "d",
            approver: "a",
            expires_at: 42,
        });
        assert_eq!(m, "ae-approval-v2\ndefault\nwf\nrun\nd\na\n42");
    }
}
