//! Step 2: may this run? Every guardrail is a check in [`Engine::admit`], in one place, so
//! all three activities get it, in this order: the run's rate limit, its circuit breaker, the
//! command policy, the image allowlist, the kill switch, then a concurrency slot (waited for,
//! heartbeating and cancellable). A refusal is a typed failure; nothing has been charged yet.
//!
//! The circuit breaker needs to know how each admitted request ended, so admission leaves a
//! [`Guarded`] behind that the activity hands back with its outcome ([`Engine::conclude`]),
//! which also gives the concurrency slot back.

use super::run::heartbeat_interval;
use super::{Engine, Stop};
use crate::config::Profile;
use crate::error::Failure;
use crate::guard::{CircuitAdmission, GuardError, SlotLease};
use crate::policy::PolicyContext;
use crate::redact::Redactor;
use crate::workspace::CheckedFile;
use ae_workflows_spec::{BatchResult, DeploymentResult, ExecutionResult, FailureType};
use std::time::{Duration, Instant, SystemTime};
use temporalio_sdk::activities::ActivityContext;

/// What asks to be admitted.
pub struct Admission<'a> {
    /// The run (rate limit, circuit, kill switch, concurrency).
    pub run_id: &'a str,
    /// The profile (its rate limit, the policy's environment).
    pub profile: Profile,
    /// The workspace files (the policy reads `package.json` scripts, Makefiles, scripts).
    pub files: &'a [CheckedFile],
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

/// A request's hold on the guardrails, from admission to its end: [`Engine::admit`] fills it,
/// [`Engine::conclude`] reports the outcome and lets go of it.
#[derive(Default)]
pub struct Guarded {
    run_id: String,
    /// Admitted by the circuit: `Some(trial)` when this request is a half-open circuit's trial.
    circuit: Option<Option<String>>,
    /// The concurrency slot, released when this is dropped.
    slot: Option<SlotLease>,
}

impl Guarded {
    /// The concurrency slot, to hold until the sandbox is gone.
    pub fn take_slot(&mut self) -> Option<SlotLease> {
        self.slot.take()
    }
}

/// Whether a finished request counts as a failure for the circuit breaker: it was killed at
/// its timeout or by the OOM killer. A non-zero exit is an ordinary result.
pub trait Verdict {
    /// True when the request failed.
    fn failed(&self) -> bool;
}

impl Verdict for ExecutionResult {
    fn failed(&self) -> bool {
        self.timed_out || self.oom_killed
    }
}

impl Verdict for BatchResult {
    fn failed(&self) -> bool {
        self.results.iter().any(Verdict::failed)
    }
}

impl Verdict for DeploymentResult {
    fn failed(&self) -> bool {
        self.exit_code == 137 // killed: timeout or OOM
    }
}

impl Engine {
    /// Runs every admission check; returns the image to run. `guarded` receives what the
    /// activity must hand back to [`Engine::conclude`].
    pub async fn admit(
        &self,
        ctx: &ActivityContext,
        a: Admission<'_>,
        guarded: &mut Guarded,
        redactor: &Redactor,
    ) -> Result<String, Stop> {
        self.check_rate(a.profile, a.run_id).await?;
        guarded.run_id = a.run_id.to_string();
        guarded.circuit = Some(self.check_circuit(ctx, a.run_id).await?);
        let image = self.check_request(&a, redactor).await?;
        guarded.slot = Some(self.wait_for_slot(ctx, a.run_id).await?);
        Ok(image)
    }

    /// Reports how an admitted request ended to the run's circuit breaker and gives its
    /// concurrency slot back. Policy refusals and sandbox failures count as failures, as do
    /// results killed at their timeout or by the OOM killer; a cancellation, the kill switch or
    /// a refused budget tells nothing.
    pub async fn conclude<T: Verdict>(&self, guarded: Guarded, outcome: &Result<T, Stop>) {
        let Guarded {
            run_id,
            circuit,
            slot,
        } = guarded;
        drop(slot);
        let Some(trial) = circuit else {
            return;
        };
        let verdict = match outcome {
            Ok(r) => Some(!r.failed()),
            Err(Stop::Fail(f)) => matches!(
                f.kind,
                FailureType::PolicyViolation | FailureType::SandboxUnavailable
            )
            .then_some(false),
            Err(Stop::Cancelled) => None,
        };
        let recorded = match verdict {
            Some(ok) => {
                self.guards
                    .record_outcome(&run_id, trial.as_deref(), ok)
                    .await
            }
            None => {
                self.guards
                    .record_no_verdict(&run_id, trial.as_deref())
                    .await
            }
        };
        match recorded {
            Ok(state) if state == "open" && verdict == Some(false) => {
                tracing::warn!(run_id, "circuit breaker open after repeated failures")
            }
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(run_id, error = %e, "could not record an outcome with the circuit breaker")
            }
        }
    }

    /// RateLimited, retryable exactly when the run may go again.
    async fn check_rate(&self, profile: Profile, run_id: &str) -> Result<(), Failure> {
        let name = profile.as_str();
        match self
            .guards
            .admit_rate(name, run_id)
            .await
            .map_err(unavailable)?
        {
            Ok(()) => Ok(()),
            Err(wait) => {
                let per_min = match profile {
                    Profile::Production => self.guards.settings().rate_production_per_min,
                    Profile::Sandbox => self.guards.settings().rate_sandbox_per_min,
                };
                tracing::info!(
                    run_id,
                    profile = name,
                    retry_in_ms = wait.as_millis() as u64,
                    "rate limited"
                );
                Err(Failure::new(
                    FailureType::RateLimited,
                    format!("the run made more than {per_min} {name} requests in a minute; it may go again in {} ms", wait.as_millis()),
                )
                .with_details(serde_json::json!({"limitPerMinute": per_min, "profile": name, "retryAfterMs": wait.as_millis() as u64}))
                .with_retry_after(wait))
            }
        }
    }

    /// CircuitOpen while the run's breaker is open; otherwise whether this request is the trial.
    async fn check_circuit(
        &self,
        ctx: &ActivityContext,
        run_id: &str,
    ) -> Result<Option<String>, Failure> {
        // A trial holds its place for as long as this attempt may run.
        let window = ctx
            .info()
            .deadline
            .and_then(|d| d.duration_since(SystemTime::now()).ok())
            .unwrap_or(Duration::from_secs(3600))
            + Duration::from_secs(30);
        match self
            .guards
            .admit_circuit(run_id, window)
            .await
            .map_err(unavailable)?
        {
            CircuitAdmission::Admitted { trial } => Ok(trial),
            CircuitAdmission::Open { retry_in } => {
                let at = SystemTime::now() + retry_in;
                let at_ms = at
                    .duration_since(SystemTime::UNIX_EPOCH)
                    .unwrap_or_default()
                    .as_millis() as u64;
                Err(Failure::new(
                    FailureType::CircuitOpen,
                    format!("the run's circuit breaker is open after repeated failures; it lets one trial request through in {} s", retry_in.as_secs().max(1)),
                )
                .with_details(serde_json::json!({"retryAfterMs": retry_in.as_millis() as u64, "halfOpensAtMs": at_ms})))
            }
        }
    }

    /// Waits for one of the run's concurrency slots, heartbeating, until one is free or the
    /// activity is cancelled.
    async fn wait_for_slot(&self, ctx: &ActivityContext, run_id: &str) -> Result<SlotLease, Stop> {
        let started = Instant::now();
        let every = heartbeat_interval(ctx.info().heartbeat_timeout);
        let mut beat_at = started;
        loop {
            if let Some(lease) = self
                .guards
                .try_acquire_slot(run_id)
                .await
                .map_err(unavailable)?
            {
                return Ok(lease);
            }
            if beat_at <= Instant::now() {
                if beat_at == started {
                    tracing::info!(run_id, "waiting for a concurrency slot");
                }
                let details = serde_json::json!({"status": "waiting for a slot", "elapsedMs": started.elapsed().as_millis() as u64});
                if let Err(e) = ctx.record_heartbeat(details).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
                beat_at = Instant::now() + every;
            }
            tokio::select! {
                _ = ctx.cancelled() => return Err(Stop::Cancelled),
                _ = tokio::time::sleep(Duration::from_millis(200)) => {}
            }
        }
    }

    /// The request's own checks: policy, image, kill switch.
    async fn check_request(
        &self,
        a: &Admission<'_>,
        redactor: &Redactor,
    ) -> Result<String, Failure> {
        let texts: Vec<_> = a
            .files
            .iter()
            .map(|f| String::from_utf8_lossy(&f.content))
            .collect();
        let mut policy = PolicyContext::new(a.profile);
        for (f, text) in a.files.iter().zip(&texts) {
            policy = policy.with_file(&f.rel, text);
        }
        let policy = &policy;
        match &a.commands {
            Commands::One(c) => self.check_policy(c, policy, redactor)?,
            Commands::Batch(list) => {
                for (i, c) in list.iter().enumerate() {
                    self.check_policy(c, policy, redactor).map_err(|mut f| {
                        f.message = format!("commands[{i}]: {}", f.message);
                        if let Some(serde_json::Value::Object(d)) = f.details.as_mut() {
                            d.insert("index".into(), i.into());
                        }
                        f
                    })?;
                }
            }
            Commands::Approved(c) => match self.check_policy(c, policy, redactor) {
                Err(f) if f.kind == FailureType::PolicyViolation => return Err(f),
                _ => {}
            },
        }
        let image = self.check_image(a.image)?;
        self.check_kill_switch(a.run_id).await?;
        Ok(image)
    }

    /// PolicyViolation or ApprovalRequired, naming the rule.
    fn check_policy(
        &self,
        command: &str,
        context: &PolicyContext<'_>,
        redactor: &Redactor,
    ) -> Result<(), Failure> {
        let decision = self.policy.check(command, context);
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

/// Nothing runs when the guardrails cannot decide.
fn unavailable(e: GuardError) -> Failure {
    Failure::new(FailureType::BudgetStoreUnavailable, e.to_string())
}
