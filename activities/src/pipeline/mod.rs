//! The one request path every activity runs, as steps in this order:
//!
//! 1. [`validate`]: decode the input (InvalidInput when malformed) and check what serde cannot
//!    (run id, commands, env, timeouts, files, domains). No side effects.
//! 2. [`admit`]: may this run? The run's rate limit and circuit breaker, the policy, the image
//!    allowlist, the kill switch, a concurrency slot. Every guardrail is one more check in
//!    [`Engine::admit`], and so applies to all three activities; [`Engine::conclude`] tells the
//!    circuit breaker how the request ended.
//! 3. [`reserve`]: charge the budget atomically, once per attempt. The [`reserve::Reservation`]
//!    gives the charge back if the command never starts, on every path (also when dropped).
//! 4. [`run`]: start the sandbox, copy the files in, run the command while heartbeating and
//!    watching for cancellation.
//! 5. [`finish`]: how the run ended (kill switch, sandbox failure, cancellation), output
//!    redacted and capped, output files, the result fitted under the payload limit.
//!
//! The activities (`activity/*`) call these steps in this order and add only what is theirs.
//! This module owns the steps and the shared [`Engine`]; the parts the steps use (policy,
//! budget, sandbox, redaction) live in their own modules.

pub mod admit;
pub mod finish;
pub mod reserve;
pub mod run;
pub mod validate;

use crate::approval::ApprovalPolicy;
use crate::audit::AuditLog;
use crate::budget::BudgetStore;
use crate::config::Config;
use crate::control::KillSwitch;
use crate::error::Failure;
use crate::guard::Guards;
use crate::policy::Policy;
use crate::redact::Redactor;
use crate::sandbox::SandboxEngine;
use ae_workflows_spec::FailureType;
use temporalio_sdk::activities::ActivityError;
use tokio_util::sync::CancellationToken;

/// Shared state of every activity in one worker.
pub struct Engine {
    pub(crate) config: Config,
    pub(crate) policy: Policy,
    pub(crate) redactor: Redactor,
    pub(crate) budget: BudgetStore,
    pub(crate) sandbox: SandboxEngine,
    pub(crate) approvals: ApprovalPolicy,
    pub(crate) audit: AuditLog,
    pub(crate) kill_switch: KillSwitch,
    pub(crate) guards: Guards,
    /// Live output: `ae:output:<runId>`.
    pub(crate) output: crate::live::OutputSink,
}

impl Engine {
    /// Builds the engine from configuration. Connections to Redis and Docker are made lazily.
    /// `stop` ends the egress proxy at shutdown (see `shutdown`).
    pub fn new(config: Config, stop: CancellationToken) -> anyhow::Result<Engine> {
        let budget = BudgetStore::new(&config.redis_url, config.default_budget, config.budget_ttl)?
            .with_alert_webhook(config.alert_webhook_url.clone());
        let sandbox = SandboxEngine::new(config.sandbox.clone(), config.worker_id.clone(), stop);
        let keys = match &config.approver_keys_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read approver keys {}: {e}", path.display())
                })?;
                ApprovalPolicy::parse_keys(&text)
                    .map_err(|e| anyhow::anyhow!("approver keys {}: {e}", path.display()))?
            }
            None => Default::default(),
        };
        let approvals = ApprovalPolicy {
            allowed: config.approvers.clone(),
            keys,
        };
        let audit = AuditLog::new(config.audit_file.clone())?
            .with_stream(budget.connection(), config.audit_stream_max_len);
        let kill_switch = KillSwitch::new(budget.connection());
        let guards = Guards::new(budget.connection(), config.guards.clone());
        let output = crate::live::OutputSink::new(
            budget.connection(),
            config.output_stream_max_len,
            config.output_stream_ttl,
        );
        Ok(Engine {
            output,
            kill_switch,
            guards,
            policy: Policy::configured(config.policy_file.as_deref())
                .map_err(|e| anyhow::anyhow!("AE_POLICY_FILE: {}", e.0))?,
            // The standard rules plus the operator's patterns (`AE_REDACT_PATTERNS_FILE`).
            redactor: Redactor::configured().map_err(anyhow::Error::msg)?,
            budget,
            sandbox,
            approvals,
            audit,
            config,
        })
    }

    /// The sandboxes (the binary runs the warm pool and removes leftovers at shutdown).
    pub fn sandbox(&self) -> &SandboxEngine {
        &self.sandbox
    }

    /// The budget store (its Redis connection also carries the kill switch and liveness).
    pub fn budget(&self) -> &BudgetStore {
        &self.budget
    }

    /// The configuration the worker started with.
    pub fn config(&self) -> &Config {
        &self.config
    }
}

/// What the end of an activity needs to know about it, for the audit stream.
pub struct Finished<'a> {
    /// The activity's wire name.
    pub activity: &'a str,
    /// Its profile.
    pub profile: crate::config::Profile,
    /// The run.
    pub run_id: &'a str,
    /// What it ran (redacted here before it is recorded).
    pub action: &'a str,
}

/// The approval behind a result, when there is one: (approver, client identity).
pub trait Approved {
    /// The approver and the identity the server stored with the approving signal.
    fn approved(&self) -> Option<(&str, &str)> {
        None
    }
}

impl Approved for ae_workflows_spec::ExecutionResult {}
impl Approved for ae_workflows_spec::BatchResult {}
impl Approved for ae_workflows_spec::DeploymentResult {
    fn approved(&self) -> Option<(&str, &str)> {
        Some((&self.approved_by, &self.approver_identity))
    }
}

impl Engine {
    /// The end of every activity, in one place: the circuit breaker learns the outcome (and the
    /// concurrency slot is given back), the metrics count it, and the audit stream records it.
    pub async fn settle<T>(
        &self,
        ctx: &temporalio_sdk::activities::ActivityContext,
        done: Finished<'_>,
        guarded: admit::Guarded,
        outcome: &Result<T, Stop>,
        redactor: &Redactor,
    ) where
        T: admit::Verdict + crate::metrics::Observe + Approved,
    {
        self.conclude(guarded, outcome).await;
        crate::metrics::observe(done.activity, done.profile.as_str(), outcome);
        let (result, reason) = match outcome {
            Ok(r) if r.observation().outcome == "ok" => ("success", String::new()),
            Ok(r) => ("failure", r.observation().outcome.to_string()),
            Err(Stop::Cancelled) => ("failure", "cancelled".to_string()),
            Err(Stop::Fail(f)) => {
                let rule = f.details.as_ref().and_then(|d| d["rule"].as_str());
                let refused = !matches!(
                    f.kind,
                    FailureType::SandboxUnavailable | FailureType::BudgetStoreUnavailable
                );
                let why = rule.map_or_else(|| f.kind.as_str().to_string(), str::to_string);
                (if refused { "blocked" } else { "failure" }, why)
            }
        };
        let approval = outcome.as_ref().ok().and_then(Approved::approved);
        let workflow_id = ctx.info().workflow_id.clone().unwrap_or_default();
        self.audit
            .append(&crate::audit::StreamEntry {
                run_id: done.run_id,
                workflow_id: &workflow_id,
                activity: done.activity,
                environment: done.profile.as_str(),
                action: &redactor.redact_str(done.action),
                outcome: result,
                reason: &reason,
                actor: approval.map_or(self.config.worker_id.as_str(), |a| a.0),
                client_identity: approval.map_or("", |a| a.1),
            })
            .await;
    }
}

/// How an execution ended when it did not produce a result.
pub enum Stop {
    /// A typed failure for the caller.
    Fail(Failure),
    /// The activity was cancelled; the sandbox is already gone.
    Cancelled,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Fail(f)
    }
}

impl Stop {
    /// The error handed to the SDK, redacted with `redactor`.
    pub fn into_activity_error(self, redactor: &Redactor) -> ActivityError {
        match self {
            Stop::Fail(f) => f.into_activity_error(redactor),
            Stop::Cancelled => ActivityError::cancelled(),
        }
    }

    /// What to write in an audit record about it.
    pub fn describe(&self) -> String {
        match self {
            Stop::Fail(f) if f.kind == ae_workflows_spec::FailureType::KillSwitchEngaged => {
                "stopped by the kill switch".into()
            }
            Stop::Fail(f) => f.message.clone(),
            Stop::Cancelled => "cancelled".into(),
        }
    }
}
