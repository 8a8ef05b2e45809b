//! The worker's activities and the parts they are made of.
//!
//! Each module owns one concept: [`policy`] (which commands may run), [`budget`] (per-run spend
//! in Redis), [`sandbox`] (Docker containers), [`redact`] (secrets out of every string that
//! leaves), [`workspace`] (caller files into the sandbox), [`error`] (typed failures), and
//! [`execute`] (the order the activities run those parts in). [`SafeActivities`] is what a
//! Temporal worker registers.

pub mod budget;
pub mod config;
pub mod error;
pub mod execute;
pub mod policy;
pub mod redact;
pub mod sandbox;
pub mod workspace;

use ae_workflows_spec::ExecutionResult;
use std::sync::Arc;
use temporalio_common::data_converters::RawValue;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub use config::Config;
pub use execute::Engine;

/// The activities of the `autonomous-enterprise` task queue, registered by wire name.
///
/// Inputs arrive as raw payloads and are decoded here rather than by the SDK, so a malformed
/// input becomes a typed, non-retryable `InvalidInput` instead of a generic retryable error.
pub struct SafeActivities {
    engine: Arc<Engine>,
}

impl SafeActivities {
    /// Activities sharing one engine.
    pub fn new(engine: Arc<Engine>) -> Self {
        Self { engine }
    }
}

#[activities]
impl SafeActivities {
    /// Runs one command in a fresh sandbox after policy and budget checks.
    #[activity(name = "safeExecuteCode")]
    pub async fn safe_execute_code(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RawValue,
    ) -> Result<ExecutionResult, ActivityError> {
        self.engine.safe_execute_code(&ctx, input).await
    }
}
