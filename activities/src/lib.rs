//! The worker's activities and the parts they are made of.
//!
//! Map of the modules, from the activities down (an arrow is "uses"; there are no cycles):
//!
//! ```text
//! SafeActivities ─► activity/{execute, batch, deploy (+ approve), session}
//!                      │ each one screen: its steps, in order
//!                      ▼
//!                   pipeline/{validate ─► admit ─► reserve ─► run ─► finish}  + Engine
//!                      │
//!   ┌──────────┬───────┼────────┬──────────┬──────────┬───────────┬──────────┐
//!   ▼          ▼       ▼        ▼          ▼          ▼           ▼          ▼
//! policy    redact   budget   control   sandbox   workspace   approval    audit   guard
//! (rules)  (secrets) (Redis,  (kill      (exec,    (files in)  (signals)  (records) (rate,
//!                    Lua)     switch,    standby,                                    slots,
//!                             liveness,  pool,                                       circuit)
//!                             reaper)    cgroup) ─► egress (allowlist, proxy, networks)
//!                                │         │          │
//!                                └─────────┴──────────┴─► docker (connection, labels,
//!                                                          hardening, registry, removal)
//! ```
//!
//! Beside them: [`live`] (a running command's output, redacted, for heartbeat tails and the
//! `ae:output:<runId>` stream), [`config`] (every setting, resolved once), [`error`] (typed failures),
//! [`shutdown`] (the token and tasks that stop the worker's background work), [`metrics`] (the
//! Prometheus counters the activities and `admit` record; the binary's /metrics renders them).
//! [`SafeActivities`] is what a Temporal worker registers.

pub mod activity;
pub mod approval;
pub mod audit;
pub mod budget;
pub mod config;
pub mod control;
pub mod docker;
pub mod egress;
pub mod error;
pub mod guard;
pub mod live;
pub mod metrics;
pub mod pipeline;
pub mod policy;
pub mod redact;
pub mod sandbox;
pub mod shutdown;
#[doc(hidden)]
pub mod testing;
pub mod workspace;

use ae_workflows_spec::progressive::EventRecorded;
use ae_workflows_spec::{
    BatchResult, CloseSandboxResult, DeploymentResult, ExecutionResult, OpenSandboxResult,
};
use std::sync::Arc;
use temporalio_common::data_converters::RawValue;
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

pub use config::Config;
pub use pipeline::Engine;

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

    /// Runs several commands in order in one sandbox.
    #[activity(name = "safeExecuteBatch")]
    pub async fn safe_execute_batch(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RawValue,
    ) -> Result<BatchResult, ActivityError> {
        self.engine.safe_execute_batch(&ctx, input).await
    }

    /// Deploys after verifying a human approval in the calling workflow's history.
    #[activity(name = "deployWithApproval")]
    pub async fn deploy_with_approval(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RawValue,
    ) -> Result<DeploymentResult, ActivityError> {
        self.engine.deploy_with_approval(&ctx, input).await
    }

    /// Appends a workflow's phase or decision to the audit stream (and alerts).
    #[activity(name = "recordDeploymentEvent")]
    pub async fn record_deployment_event(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RawValue,
    ) -> Result<EventRecorded, ActivityError> {
        self.engine.record_deployment_event(&ctx, input).await
    }

    /// Opens a session: a sandbox kept on this worker for many executions of one run.
    #[activity(name = "openSandbox")]
    pub async fn open_sandbox(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RawValue,
    ) -> Result<OpenSandboxResult, ActivityError> {
        self.engine.open_session(&ctx, input).await
    }

    /// Closes a session (idempotent).
    #[activity(name = "closeSandbox")]
    pub async fn close_sandbox(
        self: Arc<Self>,
        ctx: ActivityContext,
        input: RawValue,
    ) -> Result<CloseSandboxResult, ActivityError> {
        self.engine.close_session(&ctx, input).await
    }
}
