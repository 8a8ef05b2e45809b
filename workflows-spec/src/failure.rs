//! The failure types callers match on.
//!
//! Each activity failure is a Temporal application failure whose `type` is one of these names,
//! so a TypeScript `ApplicationFailure.type` or Python `ApplicationError.type` check works.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::fmt;

/// Application failure type names raised by this worker's activities.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
pub enum FailureType {
    /// The policy refused the command; the message names the rule.
    PolicyViolation,
    /// The policy says the action needs a human approval.
    ApprovalRequired,
    /// The charge would take the run's spend past its limit.
    BudgetExceeded,
    /// No budget for the run and the default budget is disabled.
    BudgetNotFound,
    /// Malformed input: missing fields, bad paths, oversized files.
    InvalidInput,
    /// Docker is unreachable or the image is missing. Retryable.
    SandboxUnavailable,
    /// Redis is unreachable. Retryable: nothing runs without a budget check.
    BudgetStoreUnavailable,
    /// An approval was given but could not be verified against the workflow's signals.
    ApprovalInvalid,
    /// Workspace files contain hardcoded credentials; the message names file and line.
    SecretsDetected,
    /// An operator engaged the kill switch for this run or for everything.
    KillSwitchEngaged,
    /// The run sent more requests a minute than its profile allows. Retryable: the failure's
    /// next retry delay is exactly when the run may go again. Nothing was charged.
    RateLimited,
    /// The run's circuit breaker is open after repeated failures; details say when it
    /// half-opens. Nothing was charged.
    CircuitOpen,
    /// The `sandboxId` names no open session of this run and workflow on this worker: never
    /// opened, closed, expired (idle or lifetime), reaped, or another run's.
    SandboxNotFound,
}

impl FailureType {
    /// Every type, for docs and schema.
    pub const ALL: [FailureType; 13] = [
        FailureType::PolicyViolation,
        FailureType::ApprovalRequired,
        FailureType::BudgetExceeded,
        FailureType::BudgetNotFound,
        FailureType::InvalidInput,
        FailureType::SandboxUnavailable,
        FailureType::BudgetStoreUnavailable,
        FailureType::ApprovalInvalid,
        FailureType::SecretsDetected,
        FailureType::KillSwitchEngaged,
        FailureType::RateLimited,
        FailureType::CircuitOpen,
        FailureType::SandboxNotFound,
    ];

    /// The wire name, e.g. `PolicyViolation`.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureType::PolicyViolation => "PolicyViolation",
            FailureType::ApprovalRequired => "ApprovalRequired",
            FailureType::BudgetExceeded => "BudgetExceeded",
            FailureType::BudgetNotFound => "BudgetNotFound",
            FailureType::InvalidInput => "InvalidInput",
            FailureType::SandboxUnavailable => "SandboxUnavailable",
            FailureType::BudgetStoreUnavailable => "BudgetStoreUnavailable",
            FailureType::ApprovalInvalid => "ApprovalInvalid",
            FailureType::SecretsDetected => "SecretsDetected",
            FailureType::KillSwitchEngaged => "KillSwitchEngaged",
            FailureType::RateLimited => "RateLimited",
            FailureType::CircuitOpen => "CircuitOpen",
            FailureType::SandboxNotFound => "SandboxNotFound",
        }
    }

    /// Whether Temporal may retry the activity after this failure. Infrastructure outages and
    /// rate limits are worth retrying; a refused command or an empty budget stays refused.
    pub fn retryable(self) -> bool {
        matches!(
            self,
            FailureType::SandboxUnavailable
                | FailureType::BudgetStoreUnavailable
                | FailureType::RateLimited
        )
    }
}

impl fmt::Display for FailureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
