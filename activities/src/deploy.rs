//! `deployWithApproval`: a production deploy that needs a verified human approval.
//!
//! In order: decode and validate; without an approval, refuse with ApprovalRequired carrying the
//! plan to approve; verify the approval against the workflow's signal history (see
//! `approval`); scan the workspace files for hardcoded credentials (SecretsDetected names file
//! and line, never the secret); check the command against the policy's deny rules (the
//! approval satisfies its approval rule); charge; run the command in a `production` sandbox;
//! return the first https URL of the output. Every decision and deployment is audited.

use crate::error::Failure;
use crate::execute::{
    Engine, SandboxSpec, Stop, Watched, budget_failure, charge_id, check_command, check_domains,
    check_env, check_run_id, effective_timeout, env_list, watch,
};
use crate::redact::Redactor;
use crate::sandbox::Progress;
use crate::workspace;
use ae_workflows_spec::{
    DeployWithApprovalInput, DeploymentPlan, DeploymentResult, ExecutionHeartbeat, FailureType,
};
use std::sync::atomic::Ordering;
use std::time::Instant;
use temporalio_common::data_converters::RawValue;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// Default deploy timeout, ms.
pub use ae_workflows_spec::deploy::DEFAULT_DEPLOY_TIMEOUT_MS;

impl Engine {
    /// The `deployWithApproval` activity.
    pub async fn deploy_with_approval(
        &self,
        ctx: &ActivityContext,
        raw: RawValue,
    ) -> Result<DeploymentResult, ActivityError> {
        let (input, redactor) = self.begin(&raw, |i: &DeployWithApprovalInput| &i.env)?;
        self.deploy(ctx, &input, &redactor)
            .await
            .map_err(|stop| stop.into_activity_error(&redactor))
    }

    async fn deploy(
        &self,
        ctx: &ActivityContext,
        input: &DeployWithApprovalInput,
        redactor: &Redactor,
    ) -> Result<DeploymentResult, Stop> {
        let workflow_id = ctx.info().workflow_id.clone().unwrap_or_default();
        let audit = |who: &str,
                     action: &str,
                     outcome: &str,
                     approval: Option<serde_json::Value>,
                     detail: &str| {
            self.audit.record(
                redactor,
                who,
                action,
                "production",
                outcome,
                approval,
                &input.run_id,
                &workflow_id,
                detail,
            );
        };
        check_run_id(&input.run_id)?;
        check_command("command", &input.command)?;
        check_env(&input.env)?;
        if input.platform.is_empty()
            || !input
                .platform
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(Failure::invalid_input(
                "platform must be a non-empty name like vercel or netlify",
            )
            .into());
        }
        let timeout = self.check_timeout(
            "production",
            "timeout",
            input.timeout.unwrap_or(DEFAULT_DEPLOY_TIMEOUT_MS),
        )?;
        let files = workspace::check_files(
            &input.workspace_files,
            self.config.sandbox.max_file_bytes,
            self.config.sandbox.max_total_file_bytes,
        )?;
        let plan = DeploymentPlan::of(input);
        let domains = check_domains(Some(&plan.allowed_domains))?;
        let image = self.check_image(input.image.as_deref())?;

        // 1. An approval is always needed.
        let Some(claimed) = &input.approval else {
            let mut shown = plan.clone();
            shown.command = redactor.redact_str(&shown.command);
            audit(
                &workflow_id,
                "deploy.approval",
                "blocked",
                None,
                "deploy attempted without an approval",
            );
            return Err(Failure::new(
                FailureType::ApprovalRequired,
                format!(
                    "deploying {} to {} needs a human approval: signal approveDeployment to workflow {workflow_id}",
                    input.run_id, input.platform
                ),
            )
            .with_details(serde_json::json!({ "plan": shown }))
            .into());
        };

        // 2. ... and it must be in the workflow's history.
        let verified = match crate::approval::check(
            &self.approvals,
            &self.budget,
            ctx,
            &claimed.approver,
            &plan.plan_digest,
        )
        .await
        {
            Ok(v) => v,
            Err(f) => {
                audit(
                    &claimed.approver,
                    "deploy.approval",
                    "invalid",
                    None,
                    &f.message,
                );
                return Err(f.into());
            }
        };
        let approval = serde_json::json!({
            "approver": verified.approver,
            "identity": verified.identity,
            "signed": verified.signed,
            "planDigest": plan.plan_digest,
            "signalEventId": verified.event_id,
        });
        audit(
            &verified.approver,
            "deploy.approval",
            "accepted",
            Some(approval.clone()),
            "approval verified against the workflow's signal history",
        );

        // 3. No hardcoded credentials in what gets deployed.
        let mut findings = Vec::new();
        for f in &files {
            let text = String::from_utf8_lossy(&f.content);
            for hit in self.redactor.scan(&text) {
                findings.push(
                    serde_json::json!({"path": f.rel, "line": hit.line, "type": hit.type_name}),
                );
            }
        }
        if !findings.is_empty() {
            let list: Vec<String> = findings
                .iter()
                .map(|f| {
                    format!(
                        "{}:{} ({})",
                        f["path"].as_str().unwrap_or(""),
                        f["line"],
                        f["type"].as_str().unwrap_or("")
                    )
                })
                .collect();
            let message = format!(
                "hardcoded credentials found, deploy blocked: {}",
                list.join(", ")
            );
            audit(
                &verified.approver,
                "deploy",
                "blocked",
                Some(approval),
                &message,
            );
            return Err(Failure::new(FailureType::SecretsDetected, message)
                .with_details(serde_json::json!({ "findings": findings }))
                .into());
        }

        // 4. The approval covers the policy's approval rule, never its deny rules.
        if let Err(f) = self.check_policy(&input.command, redactor)
            && f.kind == FailureType::PolicyViolation
        {
            audit(
                &verified.approver,
                "deploy",
                "blocked",
                Some(approval),
                &f.message,
            );
            return Err(f.into());
        }

        // 5. Charge, deploy, settle, unless an operator pulled the plug.
        self.check_kill_switch(&input.run_id).await?;
        let cost = self.config.cost_per_execution;
        let charge_id = charge_id(ctx);
        let status = self
            .budget
            .charge(&input.run_id, &charge_id, cost)
            .await
            .map_err(budget_failure)?;
        let started = Instant::now();
        let sandbox = self
            .prepare_sandbox(
                ctx,
                &input.run_id,
                &charge_id,
                &files,
                SandboxSpec {
                    profile: "production",
                    image,
                    // The approved plan names the hosts; the approval covers exactly those.
                    domains,
                },
            )
            .await?;
        let progress = Progress::default();
        let env = env_list(&input.env);
        let outcome = {
            let exec = sandbox.exec(
                &input.command,
                &env,
                effective_timeout(timeout, ctx.info().deadline),
                &progress,
            );
            watch(ctx, exec, || {
                serde_json::to_value(ExecutionHeartbeat {
                    status: "deploying".into(),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    stdout_bytes: progress.stdout_bytes.load(Ordering::Relaxed),
                    stderr_bytes: progress.stderr_bytes.load(Ordering::Relaxed),
                })
                .unwrap_or_default()
            })
            .await
        };
        sandbox.destroy().await;
        if sandbox.killed_by_switch() {
            audit(
                &verified.approver,
                "deploy",
                "failure",
                Some(approval),
                "stopped by the kill switch",
            );
            return Err(crate::execute::kill_switch_failure(&input.run_id));
        }
        let outcome = match outcome {
            Watched::Done(Ok(o)) => o,
            Watched::Done(Err(e)) => {
                audit(
                    &verified.approver,
                    "deploy",
                    "failure",
                    Some(approval),
                    &e.to_string(),
                );
                return Err(Failure::new(FailureType::SandboxUnavailable, e.to_string()).into());
            }
            Watched::Cancelled => {
                audit(
                    &verified.approver,
                    "deploy",
                    "failure",
                    Some(approval),
                    "cancelled",
                );
                return Err(Stop::Cancelled);
            }
        };
        let r = self.result("production", outcome, cost, status.remaining, redactor);
        let url = first_https_url(&r.stdout).or_else(|| first_https_url(&r.stderr));
        let success = r.exit_code == 0 && !r.timed_out;
        audit(
            &verified.approver,
            "deploy",
            if success { "success" } else { "failure" },
            Some(approval),
            &format!(
                "{} exit {} url {}",
                input.platform,
                r.exit_code,
                url.as_deref().unwrap_or("-")
            ),
        );
        Ok(DeploymentResult {
            success,
            url,
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
            cost: r.cost,
            budget_remaining: r.budget_remaining,
            approved_by: verified.approver,
            approver_identity: verified.identity,
            duration_ms: r.duration_ms,
        })
    }
}

/// The first `https://` URL in `text`.
pub fn first_https_url(text: &str) -> Option<String> {
    let start = text.find("https://")?;
    let rest = &text[start..];
    let end = rest
        .find(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '<' | '>' | ')' | ']' | '`'))
        .unwrap_or(rest.len());
    let url = rest[..end].trim_end_matches(['.', ',', ';']);
    (url.len() > "https://".len()).then(|| url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_first_https_url() {
        assert_eq!(
            first_https_url(
                "Inspect: http://x\nProduction: https://app-1.vercel.app [2s]\nhttps://other"
            )
            .as_deref(),
            Some("https://app-1.vercel.app")
        );
        assert_eq!(
            first_https_url("Deployed to (https://a.netlify.app).").as_deref(),
            Some("https://a.netlify.app")
        );
        assert_eq!(first_https_url("no url here"), None);
        assert_eq!(first_https_url("https:// nothing"), None);
    }
}
