//! Step 2: may this run? Every guardrail is a check in [`Engine::admit`], in one place, so
//! all three activities get it: the command policy, the image allowlist, the kill switch.
//! A refusal is a typed failure; nothing has been charged yet.

use super::Engine;
use crate::error::Failure;
use crate::redact::Redactor;
use ae_workflows_spec::FailureType;

/// What asks to be admitted.
pub struct Admission<'a> {
    /// The run (kill switch).
    pub run_id: &'a str,
    /// The commands, in order; a batch's refusals name `commands[i]`.
    pub commands: Commands<'a>,
    /// The requested image; None is the worker's default.
    pub image: Option<&'a str>,
}

/// The command(s) of a request.
pub enum Commands<'a> {
    /// One command (`safeExecuteCode`).
    One(&'a str),
    /// Several, checked all before any runs (`safeExecuteBatch`).
    Batch(Vec<&'a str>),
    /// A deploy carrying a verified approval: the approval covers the policy's approval rule,
    /// never its deny rules.
    Approved(&'a str),
}

impl Engine {
    /// Runs every admission check; returns the image to run.
    pub async fn admit(&self, a: Admission<'_>, redactor: &Redactor) -> Result<String, Failure> {
        match &a.commands {
            Commands::One(c) => self.check_policy(c, redactor)?,
            Commands::Batch(list) => {
                for (i, c) in list.iter().enumerate() {
                    self.check_policy(c, redactor).map_err(|mut f| {
                        f.message = format!("commands[{i}]: {}", f.message);
                        if let Some(serde_json::Value::Object(d)) = f.details.as_mut() {
                            d.insert("index".into(), i.into());
                        }
                        f
                    })?;
                }
            }
            Commands::Approved(c) => match self.check_policy(c, redactor) {
                Err(f) if f.kind == FailureType::PolicyViolation => return Err(f),
                _ => {}
            },
        }
        let image = self.check_image(a.image)?;
        self.check_kill_switch(a.run_id).await?;
        Ok(image)
    }

    /// PolicyViolation or ApprovalRequired, naming the rule.
    fn check_policy(&self, command: &str, redactor: &Redactor) -> Result<(), Failure> {
        let decision = self.policy.check_command(command);
        crate::metrics::policy_check(&decision);
        let details = serde_json::to_value(&decision).unwrap_or_default();
        if !decision.allowed {
            tracing::warn!(rule = ?decision.rule, command = %redactor.redact_str(command), "policy refused command");
            return Err(
                Failure::new(FailureType::PolicyViolation, decision.reason).with_details(details)
            );
        }
        if decision.requires_approval {
            tracing::info!(rule = ?decision.rule, "policy requires approval");
            return Err(
                Failure::new(FailureType::ApprovalRequired, decision.reason).with_details(details)
            );
        }
        Ok(())
    }

    /// The image to run: the default, or one on the allowlist; anything else is refused.
    fn check_image(&self, image: Option<&str>) -> Result<String, Failure> {
        let cfg = &self.config.sandbox;
        match image {
            None => Ok(cfg.image.clone()),
            Some(i) if i == cfg.image || cfg.allowed_images.iter().any(|a| a == i) => Ok(i.into()),
            Some(i) => Err(Failure::new(
                FailureType::PolicyViolation,
                format!("refused by policy rule 'image-not-allowed': image {i:?} is not on the worker's allowlist"),
            )
            .with_details(serde_json::json!({"allowed": false, "rule": "image-not-allowed", "requiresApproval": false, "reason": "image not on the allowlist"}))),
        }
    }

    /// KillSwitchEngaged when an operator stopped this run or everything; fails closed when
    /// Redis cannot say.
    async fn check_kill_switch(&self, run_id: &str) -> Result<(), Failure> {
        match self.kill_switch.engaged_for(run_id).await {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => Err(Failure::new(
                FailureType::KillSwitchEngaged,
                format!("the kill switch is engaged: {reason}"),
            )),
            Err(e) => Err(Failure::new(
                FailureType::BudgetStoreUnavailable,
                format!("cannot read the kill switch: {e}"),
            )),
        }
    }
}
