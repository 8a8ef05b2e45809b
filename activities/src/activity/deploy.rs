//! `deployWithApproval`: a production deploy behind a verified human approval, as the
//! pipeline's steps plus the deploy's own gates (see `approve`). Every decision and the
//! deployment itself are audited.

use super::approve::{Audit, first_https_url};
use crate::config::Profile;
use crate::error::Failure;
use crate::pipeline::admit::{Admission, Commands, Guarded};
use crate::pipeline::finish::{conclude, fit_payload};
use crate::pipeline::run::run_command;
use crate::pipeline::validate::check_command;
use crate::pipeline::{Engine, Finished, Stop};
use crate::redact::Redactor;
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
        let mut guarded = Guarded::default();
        let outcome = self.deploy(ctx, &input, &redactor, &mut guarded).await;
        let done = Finished {
            activity: "deployWithApproval",
            profile: Profile::Production,
            run_id: &input.run_id,
            action: match (input.rollback, &input.rollback_command) {
                (Some(true), Some(rollback)) => rollback,
                _ => &input.command,
            },
        };
        self.settle(ctx, done, guarded, &outcome, &redactor).await;
        outcome.map_err(|stop| stop.into_activity_error(&redactor))
    }

    async fn deploy(
        &self,
        ctx: &ActivityContext,
        input: &DeployWithApprovalInput,
        redactor: &Redactor,
        guarded: &mut Guarded,
    ) -> Result<DeploymentResult, Stop> {
        let run_id = input.run_id.as_str();
        let workflow_id = ctx.info().workflow_id.clone().unwrap_or_default();
        let audit = Audit {
            engine: self,
            redactor,
            run_id,
            workflow_id,
        };
        // 1. Validate; the approved plan names the hosts, and the approval covers exactly those.
        check_command("command", &input.command)?;
        check_platform(&input.platform)?;
        let timeout = input.timeout.unwrap_or(DEFAULT_DEPLOY_TIMEOUT_MS);
        let timeout = self.check_timeout(Profile::Production, "timeout", timeout)?;
        let plan = DeploymentPlan::of(input);
        // What runs: the deploy, or the rollback approved with the same plan.
        let command = match (input.rollback, &input.rollback_command) {
            (Some(true), Some(rollback)) => rollback.as_str(),
            (Some(true), None) => {
                return Err(Failure::invalid_input(
                    "rollback: true needs the plan's rollbackCommand",
                )
                .into());
            }
            _ => input.command.as_str(),
        };
        check_command(
            "rollbackCommand",
            input.rollback_command.as_deref().unwrap_or("true"),
        )?;
        let action = if input.rollback == Some(true) {
            "rollback"
        } else {
            "deploy"
        };
        let domains = Some(plan.allowed_domains.as_slice());
        let checked = self.validate(run_id, &input.env, &input.workspace_files, domains)?;
        // Deploy gates: a verified approval, no hardcoded credentials.
        let (verified, approval) = self.require_approval(ctx, input, &plan, &audit).await?;
        let who = verified.approver.as_str();
        let blocked =
            |f: &Failure| audit.record(who, action, "blocked", Some(approval.clone()), &f.message);
        self.scan_secrets(&checked.files).inspect_err(blocked)?;
        // 2. Admit: the approval covers the approval rule, never the deny rules.
        let admission = Admission {
            run_id,
            profile: Profile::Production,
            files: &checked.files,
            commands: Commands::Approved(command),
            image: input.image.as_deref(),
        };
        let image = self
            .admit(ctx, admission, guarded, redactor)
            .await
            .inspect_err(|stop| {
                if let Stop::Fail(f) = stop
                    && f.kind == FailureType::PolicyViolation
                {
                    blocked(f)
                }
            })?;
        // 3. Reserve, 4. run.
        let reservation = self.reserve(ctx, run_id, 1).await?;
        let started = Instant::now();
        let (sandbox, reservation) = self
            .open_sandbox(ctx, reservation, &checked, Profile::Production, image)
            .await?;
        let live = self.live(ctx, run_id, redactor);
        let watched = run_command(ctx, &sandbox, command, &checked.env, timeout, &live, |p| {
            serde_json::to_value(ExecutionHeartbeat {
                status: "deploying".into(),
                elapsed_ms: started.elapsed().as_millis() as u64,
                stdout_bytes: p.stdout_bytes.load(Ordering::Relaxed),
                stderr_bytes: p.stderr_bytes.load(Ordering::Relaxed),
                stdout_tail: p.stdout_tail(),
                stderr_tail: p.stderr_tail(),
            })
            .unwrap_or_default()
        })
        .await;
        sandbox.destroy().await;
        // 5. Finish.
        let outcome = conclude(&sandbox, watched, run_id).inspect_err(|stop| {
            audit.record(
                who,
                action,
                "failure",
                Some(approval.clone()),
                &stop.describe(),
            )
        })?;
        let (cost, remaining) = (reservation.cost, reservation.remaining);
        let mut r = self.result(Profile::Production, outcome, cost, remaining, redactor);
        fit_payload(&mut r, self.config.sandbox.max_result_bytes);
        let url = first_https_url(&r.stdout).or_else(|| first_https_url(&r.stderr));
        let success = r.exit_code == 0 && !r.timed_out;
        let detail = format!(
            "{} exit {} url {}",
            input.platform,
            r.exit_code,
            url.as_deref().unwrap_or("-")
        );
        audit.record(
            who,
            action,
            if success { "success" } else { "failure" },
            Some(approval),
            &detail,
        );
        Ok(DeploymentResult {
            success,
            url,
            exit_code: r.exit_code,
            stdout: r.stdout,
            stderr: r.stderr,
            cost: r.cost,
            budget_remaining: r.budget_remaining,
            approved_by: verified.approver.clone(),
            approver_identity: verified.identity,
            duration_ms: r.duration_ms,
            runtime: r.runtime,
        })
    }
}

/// A platform is a plain name like `vercel` or `netlify`.
fn check_platform(platform: &str) -> Result<(), Failure> {
    let plain = |c: char| c.is_ascii_alphanumeric() || c == '-' || c == '_';
    if platform.is_empty() || !platform.chars().all(plain) {
        return Err(Failure::invalid_input(
            "platform must be a non-empty name like vercel or netlify",
        ));
    }
    Ok(())
}
