//! Typed activity failures.
//!
//! This module owns the mapping from what went wrong to the Temporal application failure a
//! caller sees: its type name (so PolicyViolation and BudgetExceeded are distinguishable in every
//! SDK), whether it is retryable, optional details, and a message that has been redacted. It does
//! not decide when to fail.

use crate::redact::Redactor;
use ae_workflows_spec::FailureType;
use temporalio_sdk::activities::ActivityError;
use temporalio_sdk::error::ApplicationFailure;

/// An activity failure with its contract type.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    /// The contract type, e.g. `InvalidInput`.
    pub kind: FailureType,
    /// Human explanation. Redacted before it leaves the worker.
    pub message: String,
    /// Optional structured details (a JSON object), also redacted.
    pub details: Option<serde_json::Value>,
    /// When set, Temporal's next retry waits exactly this long (a rate limit's wait).
    pub retry_after: Option<std::time::Duration>,
}

impl Failure {
    /// A failure of `kind` with a message.
    pub fn new(kind: FailureType, message: impl Into<String>) -> Self {
        Self {
            kind,
            message: message.into(),
            details: None,
            retry_after: None,
        }
    }

    /// `InvalidInput` with what is wrong.
    pub fn invalid_input(message: impl Into<String>) -> Self {
        Self::new(FailureType::InvalidInput, message)
    }

    /// Asks Temporal to retry after exactly `delay` (retryable kinds only).
    pub fn with_retry_after(mut self, delay: std::time::Duration) -> Self {
        self.retry_after = Some(delay);
        self
    }

    /// Attaches details.
    pub fn with_details(mut self, details: serde_json::Value) -> Self {
        self.details = Some(details);
        self
    }

    /// The Temporal failure: typed, retryable only for outages, message and details redacted.
    pub fn into_activity_error(self, redactor: &Redactor) -> ActivityError {
        let message = redactor.redact_str(&self.message);
        let builder = ApplicationFailure::builder(message)
            .type_name(self.kind.as_str().to_string())
            .non_retryable(!self.kind.retryable())
            .maybe_next_retry_delay(self.retry_after);
        let failure = match self.details {
            Some(details) => {
                let text = redactor.redact_str(&details.to_string());
                let details: serde_json::Value =
                    serde_json::from_str(&text).unwrap_or(serde_json::Value::String(text));
                builder.details(details).build()
            }
            None => builder.build(),
        };
        ActivityError::application(failure)
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Failure {}
