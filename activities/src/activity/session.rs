//! `openSandbox` and `closeSandbox`, and what `safeExecuteCode`/`safeExecuteBatch` do
//! differently when given a `sandboxId`: find the session (bound to its run and workflow),
//! wait for its turn, and run in its sandbox instead of a fresh one. Everything else (policy,
//! guardrails, kill switch, budget, redaction) is the ordinary pipeline, unchanged.
//!
//! Opening checks the input, the run's rate limit and circuit, the image allowlist, the kill
//! switch and that the run's budget can pay for an execution (read only: nothing is charged,
//! executions are); the session's container then lives until it is closed, idles out, reaches its lifetime
//! or the worker stops (`sandbox::session`).

use crate::budget::BudgetError;
use crate::config::Profile;
use crate::error::Failure;
use crate::pipeline::admit::{Admission, Commands, Guarded};
use crate::pipeline::reserve::{Reservation, budget_failure};
use crate::pipeline::run::origin;
use crate::pipeline::run::{Watched, watch};
use crate::pipeline::validate::Checked;
use crate::pipeline::{Engine, Finished, Stop};
use crate::redact::Redactor;
use crate::sandbox::session::{Session, SessionLease, SessionTerms};
use crate::sandbox::{Sandbox, SandboxError, SandboxRequest, parse_user};
use crate::workspace;
use ae_workflows_spec::session::{DEFAULT_IDLE_TIMEOUT_MS, DEFAULT_MAX_LIFETIME_MS};
use ae_workflows_spec::{
    CloseSandboxInput, CloseSandboxResult, FailureType, OpenSandboxInput, OpenSandboxResult,
};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use temporalio_common::data_converters::RawValue;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// Shortest idle timeout and lifetime accepted.
const MIN_TIMEOUT_MS: u64 = 1_000;

impl Engine {
    /// The `openSandbox` activity.
    pub async fn open_session(
        &self,
        ctx: &ActivityContext,
        raw: RawValue,
    ) -> Result<OpenSandboxResult, ActivityError> {
        let (input, redactor) = self.begin(&raw, |i: &OpenSandboxInput| &i.env)?;
        let mut guarded = Guarded::default();
        let outcome = self.open(ctx, &input, &redactor, &mut guarded).await;
        let done = Finished {
            activity: "openSandbox",
            profile: Profile::Sandbox,
            run_id: &input.run_id,
            action: "open session",
        };
        self.settle(ctx, done, guarded, &outcome, &redactor).await;
        outcome.map_err(|stop| stop.into_activity_error(&redactor))
    }

    async fn open(
        &self,
        ctx: &ActivityContext,
        input: &OpenSandboxInput,
        redactor: &Redactor,
        guarded: &mut Guarded,
    ) -> Result<OpenSandboxResult, Stop> {
        // 1. Validate.
        let run_id = input.run_id.as_str();
        let checked = self.validate(
            run_id,
            &input.env,
            &input.workspace_files,
            input.allowed_domains.as_deref(),
        )?;
        let max = self.config.sandbox.max_lifetime.as_millis() as u64;
        let idle = bounded(
            "idleTimeoutMs",
            input.idle_timeout_ms.unwrap_or(DEFAULT_IDLE_TIMEOUT_MS),
            max,
        )?;
        let lifetime = bounded(
            "maxLifetimeMs",
            input.max_lifetime_ms.unwrap_or(DEFAULT_MAX_LIFETIME_MS),
            max,
        )?;
        let queue = self.config.session_queue.clone();
        if queue.is_empty() {
            return Err(Failure::new(
                FailureType::SandboxUnavailable,
                "this worker has no session task queue; sessions are off",
            )
            .into());
        }
        if !self.sandbox.sessions().has_room() {
            return Err(Failure::new(
                FailureType::SandboxUnavailable,
                format!(
                    "this worker already holds its limit of {} open sessions",
                    self.config.sandbox.max_sessions
                ),
            )
            .into());
        }
        // 2. Admit: no command yet, so no policy decision; rate, circuit, image, kill switch.
        let admission = Admission {
            run_id,
            profile: Profile::Sandbox,
            files: &checked.files,
            commands: Commands::Batch(Vec::new()),
            image: input.image.as_deref(),
        };
        let image = self.admit(ctx, admission, guarded, redactor).await?;
        drop(guarded.take_slot());
        // 3. The run must be able to pay for an execution; opening itself costs nothing.
        self.check_affordable(run_id).await?;
        // 4. Start the sandbox and copy the files in.
        let request = SandboxRequest {
            origin: Some(origin(ctx, run_id)),
            profile: Profile::Sandbox,
            image,
            domains: checked.domains.clone(),
        };
        let sandbox = self.sandbox.start(&request).await.map_err(start_failure)?;
        if let Err(e) = upload(&sandbox, &checked, &self.config.sandbox.user).await {
            sandbox.destroy().await;
            return Err(start_failure(e));
        }
        let terms = SessionTerms {
            run_id: run_id.to_string(),
            workflow_id: ctx.info().workflow_id.clone().unwrap_or_default(),
            env: input.env.clone(),
            idle,
            lifetime,
        };
        let container = sandbox.short_id().to_string();
        let sandbox_id = self
            .sandbox
            .sessions()
            .open(sandbox, terms)
            .await
            .map_err(|e| Failure::new(FailureType::SandboxUnavailable, e.to_string()))?;
        tracing::info!(run_id, sandbox_id, container, task_queue = %queue, "session opened");
        let expires = SystemTime::now() + lifetime;
        Ok(OpenSandboxResult {
            sandbox_id,
            task_queue: queue,
            expires_at_ms: expires
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis() as u64,
        })
    }

    /// BudgetExceeded when the run cannot pay for one more execution, BudgetNotFound when it
    /// has no budget and there is no default one. Reads only: nothing charged, no alert.
    async fn check_affordable(&self, run_id: &str) -> Result<(), Failure> {
        let cost = self.config.cost_per_execution;
        let status = self.budget.status(run_id).await.map_err(budget_failure)?;
        match status {
            None if self.config.default_budget <= 0.0 => Err(budget_failure(BudgetError::NotFound)),
            Some(s) if s.spent + cost > s.limit + 1e-9 => {
                Err(budget_failure(BudgetError::Exceeded {
                    spent: s.spent,
                    limit: s.limit,
                    amount: cost,
                }))
            }
            _ => Ok(()),
        }
    }

    /// The `closeSandbox` activity: idempotent (see [`CloseSandboxResult`]).
    pub async fn close_session(
        &self,
        ctx: &ActivityContext,
        raw: RawValue,
    ) -> Result<CloseSandboxResult, ActivityError> {
        let (input, _) = self.begin(&raw, |_: &CloseSandboxInput| &NO_ENV)?;
        let workflow_id = ctx.info().workflow_id.clone().unwrap_or_default();
        let (run_id, closed) = self
            .sandbox
            .sessions()
            .close(&input.sandbox_id, &workflow_id)
            .await
            .unwrap_or_default();
        let action = format!("close {}", input.sandbox_id);
        self.audit
            .append(&crate::audit::StreamEntry {
                run_id: &run_id,
                workflow_id: &workflow_id,
                activity: "closeSandbox",
                environment: Profile::Sandbox.as_str(),
                action: &action,
                outcome: "success",
                reason: if closed { "" } else { "not open" },
                actor: &self.config.worker_id,
                client_identity: "",
            })
            .await;
        Ok(CloseSandboxResult {
            sandbox_id: input.sandbox_id,
            closed,
        })
    }

    /// The redactor of an execution in session `sandbox_id`: the session's env values are
    /// secrets of its outputs too.
    pub(crate) fn session_redactor(
        &self,
        redactor: Redactor,
        sandbox_id: Option<&str>,
    ) -> Redactor {
        match sandbox_id.and_then(|id| self.sandbox.sessions().peek(id)) {
            Some(s) => redactor.with_env(s.terms().env.iter()),
            None => redactor,
        }
    }

    /// The session an execution asks for, checked before anything is charged: it must be open,
    /// of this run and workflow, and the input must not ask for an image or network of its own
    /// (those are the session's). Its env goes under the execution's own into `checked`.
    pub(crate) async fn find_session(
        &self,
        ctx: &ActivityContext,
        sandbox_id: Option<&str>,
        run_id: &str,
        own_sandbox_fields: bool,
        checked: &mut Checked,
    ) -> Result<Option<Arc<Session>>, Failure> {
        let Some(id) = sandbox_id else {
            return Ok(None);
        };
        if own_sandbox_fields {
            return Err(Failure::invalid_input(
                "image and allowedDomains belong to the session (openSandbox); they cannot be given with sandboxId",
            ));
        }
        if id.is_empty() || id.len() > 128 {
            return Err(Failure::invalid_input(
                "sandboxId must be 1 to 128 characters",
            ));
        }
        let workflow_id = ctx.info().workflow_id.clone().unwrap_or_default();
        let Some(session) = self.sandbox.sessions().get(id, run_id, &workflow_id) else {
            // A stopped run's sessions are gone; say why rather than just "not found".
            if let Ok(Some(reason)) = self.kill_switch.engaged_for(run_id).await {
                return Err(Failure::new(
                    FailureType::KillSwitchEngaged,
                    format!("the kill switch is engaged: {reason}"),
                ));
            }
            return Err(not_found());
        };
        let own: Vec<&str> = checked
            .env
            .iter()
            .filter_map(|p| p.split_once('=').map(|(k, _)| k))
            .collect();
        let inherited: Vec<String> = session
            .terms()
            .env
            .iter()
            .filter(|(k, _)| !own.contains(&k.as_str()))
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        checked.env.splice(0..0, inherited);
        Ok(Some(session))
    }

    /// The sandbox an admitted, reserved execution runs in: its session's (after waiting for
    /// its turn, heartbeating) or a fresh one ([`Engine::open_sandbox`]). The files are copied
    /// in either way; the charge is given back if the command cannot start.
    pub(crate) async fn sandbox_for(
        &self,
        ctx: &ActivityContext,
        mut reservation: Reservation,
        checked: &Checked,
        image: String,
        session: Option<Arc<Session>>,
    ) -> Result<(Held, Reservation), Stop> {
        let Some(session) = session else {
            let (sandbox, reservation) = self
                .open_sandbox(ctx, reservation, checked, Profile::Sandbox, image)
                .await?;
            return Ok((Held::Fresh(Box::new(sandbox)), reservation));
        };
        let waiting = serde_json::json!({"status": "waiting for the session"});
        let lease = match watch(ctx, session.lease(), || waiting.clone()).await {
            Watched::Done(Some(lease)) => lease,
            Watched::Done(None) => {
                reservation.refund().await;
                return Err(not_found().into());
            }
            Watched::Cancelled => {
                reservation.refund().await;
                return Err(Stop::Cancelled);
            }
        };
        if let Err(e) = upload(lease.sandbox(), checked, &self.config.sandbox.user).await {
            reservation.refund().await;
            lease.finish();
            return Err(start_failure(e));
        }
        reservation.started();
        Ok((Held::Session(lease), reservation))
    }
}

static NO_ENV: std::collections::BTreeMap<String, String> = std::collections::BTreeMap::new();

/// The sandbox an execution runs in.
pub enum Held {
    /// Its own, removed when it is done.
    Fresh(Box<Sandbox>),
    /// A session's, kept for the next execution.
    Session(SessionLease),
}

impl std::ops::Deref for Held {
    type Target = Sandbox;
    fn deref(&self) -> &Sandbox {
        match self {
            Held::Fresh(s) => s,
            Held::Session(l) => l.sandbox(),
        }
    }
}

impl Held {
    /// The command ended: a fresh sandbox is removed (in the background, keeping `held`, the
    /// concurrency slot, until it is gone); a session's is kept and readied for the next one.
    pub fn release_holding(self, held: impl Send + 'static) {
        match self {
            Held::Fresh(s) => s.release_holding(held),
            Held::Session(l) => {
                l.finish();
                drop(held);
            }
        }
    }

    /// The commands are over: a fresh sandbox is removed now; a session's is kept, after
    /// killing what an `interrupted` command left running.
    pub async fn done(self, interrupted: bool) {
        match self {
            Held::Fresh(s) => s.destroy().await,
            Held::Session(l) if interrupted => drop(l),
            Held::Session(l) => l.finish(),
        }
    }
}

/// SandboxNotFound, saying nothing about whether the session exists for someone else.
fn not_found() -> Failure {
    Failure::new(
        FailureType::SandboxNotFound,
        "no open session with this sandboxId for this run and workflow on this worker (never opened, closed, expired, or another run's)",
    )
}

/// A timeout in ms between [`MIN_TIMEOUT_MS`] and `max`.
fn bounded(field: &str, ms: u64, max: u64) -> Result<Duration, Failure> {
    if !(MIN_TIMEOUT_MS..=max).contains(&ms) {
        return Err(Failure::invalid_input(format!(
            "{field} must be between {MIN_TIMEOUT_MS} and {max} milliseconds, got {ms}"
        )));
    }
    Ok(Duration::from_millis(ms))
}

/// Copies the checked files into `/workspace`.
async fn upload(sandbox: &Sandbox, checked: &Checked, user: &str) -> Result<(), SandboxError> {
    if checked.files.is_empty() {
        return Ok(());
    }
    let (uid, gid) = parse_user(user);
    match workspace::pack(&checked.files, uid, gid) {
        Ok(tar) => sandbox.upload(tar).await,
        Err(e) => Err(SandboxError::Upload(e.to_string())),
    }
}

/// A sandbox that could not be made ready: bad uploads are the caller's fault.
fn start_failure(e: SandboxError) -> Stop {
    let kind = match e {
        SandboxError::Upload(_) => FailureType::InvalidInput,
        _ => FailureType::SandboxUnavailable,
    };
    Stop::Fail(Failure::new(kind, e.to_string()))
}

impl crate::pipeline::admit::Verdict for OpenSandboxResult {
    fn failed(&self) -> bool {
        false
    }
}

impl crate::pipeline::Approved for OpenSandboxResult {}

impl crate::metrics::Observe for OpenSandboxResult {
    fn observation(&self) -> crate::metrics::Observation {
        crate::metrics::Observation {
            outcome: "ok",
            cost: 0.0,
            remaining: 0.0,
            redactions: 0,
            egress_denied: 0,
            duration: Duration::ZERO,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_timeouts_are_bounded() {
        let day = 24 * 60 * 60 * 1000;
        assert!(bounded("idleTimeoutMs", 999, day).is_err());
        assert!(bounded("idleTimeoutMs", day + 1, day).is_err());
        assert_eq!(
            bounded("maxLifetimeMs", 1_000, day).unwrap(),
            Duration::from_secs(1)
        );
    }
}
