//! Step 3: charge the budget, atomically and once per attempt, and hold the charge in a
//! [`Reservation`] that gives it back unless the command started: explicitly on a failure
//! before the start ([`Reservation::refund`]), in the background when dropped (cancelled while
//! starting). After the start, [`Reservation::settle`] gives back what went unused (a batch's
//! commands that did not run).

use super::Engine;
use crate::budget::{BudgetError, BudgetStore};
use crate::error::Failure;
use ae_workflows_spec::FailureType;
use temporalio_sdk::activities::ActivityContext;

/// A charge for `units` executions of one attempt.
pub struct Reservation {
    budget: BudgetStore,
    run_id: String,
    charge_id: String,
    /// USD per execution.
    pub cost: f64,
    /// USD left after the charge.
    pub remaining: f64,
    armed: bool,
}

impl Engine {
    /// Charges `units` executions to `run_id` (BudgetExceeded when it cannot all be paid).
    pub async fn reserve(
        &self,
        ctx: &ActivityContext,
        run_id: &str,
        units: usize,
    ) -> Result<Reservation, Failure> {
        let charge_id = charge_id(ctx);
        let cost = self.config.cost_per_execution;
        let status = self
            .budget
            .charge(run_id, &charge_id, cost * units as f64)
            .await
            .map_err(budget_failure)?;
        Ok(Reservation {
            budget: self.budget.clone(),
            run_id: run_id.to_string(),
            charge_id,
            cost,
            remaining: status.remaining,
            armed: true,
        })
    }
}

impl Reservation {
    /// The run charged.
    pub fn run_id(&self) -> &str {
        &self.run_id
    }

    /// The command started: the charge stands (until [`Reservation::settle`]).
    pub fn started(&mut self) {
        self.armed = false;
    }

    /// Gives the whole charge back now: the execution never started.
    pub async fn refund(mut self) {
        self.armed = false;
        if let Err(e) = self.budget.refund(&self.run_id, &self.charge_id).await {
            tracing::error!(run_id = %self.run_id, error = %e, "could not refund a charge for an execution that never started");
        }
    }

    /// Gives back `unused` executions' worth (nothing when 0; the script reports the run's
    /// status either way); returns what the run has left.
    pub async fn settle(mut self, unused: usize) -> f64 {
        self.armed = false;
        let amount = self.cost * unused as f64;
        match self
            .budget
            .refund_part(&self.run_id, &self.charge_id, Some(amount))
            .await
        {
            Ok(s) => s.remaining,
            Err(e) => {
                tracing::error!(run_id = %self.run_id, error = %e, "could not settle the budget");
                0.0
            }
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        // Dropped before the command started (the activity was cancelled mid-start).
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let (budget, run_id, charge_id) = (
                self.budget.clone(),
                self.run_id.clone(),
                self.charge_id.clone(),
            );
            handle.spawn(async move {
                if let Err(e) = budget.refund(&run_id, &charge_id).await {
                    tracing::error!(%run_id, error = %e, "could not refund a dropped charge");
                }
            });
        }
    }
}

/// Identifies one attempt of one activity: the key that makes a charge idempotent. A standalone
/// activity (no workflow) may reuse its activity id in a later execution, so it is named by its
/// activity run id, or failing that by its task token (one per attempt), never by the id alone.
pub fn charge_id(ctx: &ActivityContext) -> String {
    let info = ctx.info();
    match info.workflow_run_id.as_deref().filter(|r| !r.is_empty()) {
        Some(run) => format!("{run}:{}:{}", info.activity_id, info.attempt),
        None => {
            let execution = match info.activity_run_id.as_deref().filter(|r| !r.is_empty()) {
                Some(run) => run.to_string(),
                None => ae_workflows_spec::deploy::sha256_hex(&info.task_token)[..32].to_string(),
            };
            format!(
                "standalone-{execution}:{}:{}",
                info.activity_id, info.attempt
            )
        }
    }
}

/// The contract's failure for a budget problem.
pub fn budget_failure(e: BudgetError) -> Failure {
    let kind = match e {
        BudgetError::Exceeded { .. } => FailureType::BudgetExceeded,
        BudgetError::NotFound => FailureType::BudgetNotFound,
        BudgetError::Unavailable(_) => FailureType::BudgetStoreUnavailable,
    };
    let details = match &e {
        BudgetError::Exceeded {
            spent,
            limit,
            amount,
        } => Some(serde_json::json!({"spent": spent, "limit": limit, "amount": amount})),
        _ => None,
    };
    let f = Failure::new(kind, e.to_string());
    match details {
        Some(d) => f.with_details(d),
        None => f,
    }
}
