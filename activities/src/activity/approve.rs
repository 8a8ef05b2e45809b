//! The steps only `deployWithApproval` has, between validation and admission: an approval is
//! required, it must be backed by a signal in the calling workflow's history (see `approval`),
//! and the files to deploy must hold no hardcoded credential. Every decision is audited by the
//! caller through [`Audit`].

use crate::approval::Verified;
use crate::error::Failure;
use crate::pipeline::Engine;
use crate::redact::Redactor;
use crate::workspace::CheckedFile;
use ae_workflows_spec::{DeployWithApprovalInput, DeploymentPlan, FailureType};
use temporalio_sdk::activities::ActivityContext;

/// Writes the audit records of one deploy.
pub struct Audit<'a> {
    pub(super) engine: &'a Engine,
    pub(super) redactor: &'a Redactor,
    pub(super) run_id: &'a str,
    pub(super) workflow_id: String,
}

impl Audit<'_> {
    /// One record in the `production` environment.
    pub fn record(
        &self,
        who: &str,
        action: &str,
        outcome: &str,
        approval: Option<serde_json::Value>,
        detail: &str,
    ) {
        self.engine.audit.record(
            self.redactor,
            who,
            action,
            "production",
            outcome,
            approval,
            self.run_id,
            &self.workflow_id,
            detail,
        );
    }
}

impl Engine {
    /// ApprovalRequired (with the plan to approve) without an approval; ApprovalInvalid unless
    /// the approval is in the workflow's history for this very plan. Returns who approved and
    /// the approval as audited.
    pub(super) async fn require_approval(
        &self,
        ctx: &ActivityContext,
        input: &DeployWithApprovalInput,
        plan: &DeploymentPlan,
        audit: &Audit<'_>,
    ) -> Result<(Verified, serde_json::Value), Failure> {
        let workflow_id = &audit.workflow_id;
        let Some(claimed) = &input.approval else {
            let mut shown = plan.clone();
            shown.command = audit.redactor.redact_str(&shown.command);
            let detail = "deploy attempted without an approval";
            audit.record(workflow_id, "deploy.approval", "blocked", None, detail);
            return Err(Failure::new(
                FailureType::ApprovalRequired,
                format!(
                    "deploying {} to {} needs a human approval: signal approveDeployment to workflow {workflow_id}",
                    input.run_id, input.platform
                ),
            )
            .with_details(serde_json::json!({ "plan": shown })));
        };
        let verified = crate::approval::check(
            &self.approvals,
            &self.budget,
            ctx,
            &claimed.approver,
            &plan.plan_digest,
            input.rollback == Some(true),
        )
        .await
        .inspect_err(|f| {
            audit.record(
                &claimed.approver,
                "deploy.approval",
                "invalid",
                None,
                &f.message,
            )
        })?;
        let approval = serde_json::json!({
            "approver": verified.approver,
            "identity": verified.identity,
            "signed": verified.signed,
            "planDigest": plan.plan_digest,
            "signalEventId": verified.event_id,
        });
        audit.record(
            &verified.approver,
            "deploy.approval",
            "accepted",
            Some(approval.clone()),
            "approval verified against the workflow's signal history",
        );
        Ok((verified, approval))
    }

    /// SecretsDetected naming file, line and type (never the secret) when a file to deploy holds
    /// a hardcoded credential.
    pub(super) fn scan_secrets(&self, files: &[CheckedFile]) -> Result<(), Failure> {
        let mut findings = Vec::new();
        let mut list = Vec::new();
        for f in files {
            let text = String::from_utf8_lossy(&f.content);
            for hit in self.redactor.scan(&text) {
                list.push(format!("{}:{} ({})", f.rel, hit.line, hit.type_name));
                findings.push(
                    serde_json::json!({"path": f.rel, "line": hit.line, "type": hit.type_name}),
                );
            }
        }
        if findings.is_empty() {
            return Ok(());
        }
        let message = format!(
            "hardcoded credentials found, deploy blocked: {}",
            list.join(", ")
        );
        Err(Failure::new(FailureType::SecretsDetected, message)
            .with_details(serde_json::json!({ "findings": findings })))
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
