//! The activity contract of the `autonomous-enterprise` task queue, and the reference workflow.
//!
//! This crate owns the wire shapes: activity names, inputs, outputs, heartbeat details, signal
//! and query payloads and failure type names, exactly as workflows in any Temporal SDK see them
//! (camelCase JSON, the shapes of the TypeScript system this worker replaces), plus
//! `buildAndDeployWorkflow`, the seed's install/test/build/approve/deploy flow, and
//! `progressiveDeployWorkflow` (build, canary, monitoring, promotion, automatic rollback) with
//! `productionMonitorWorkflow` (alerts on production's health after a promotion). It does not
//! own the activities' behaviour: that lives in `ae-activities`.
//!
//! Rust workflows call the activities through the marker types in [`activities`], e.g.
//! `ctx.execute_activity(SafeExecuteCode, input, opts)`; other SDKs call them by name.
//! `schema/contract.schema.json` is generated from these types (see [`schema`]).

pub mod activities;
pub mod batch;
pub mod deploy;
pub mod execute;
pub mod failure;
pub mod progressive;
pub mod schema;
pub mod session;
pub mod workflow;

pub use activities::{
    CLOSE_SANDBOX, CloseSandbox, DEPLOY_WITH_APPROVAL, DeployWithApproval, OPEN_SANDBOX,
    OpenSandbox, SAFE_EXECUTE_BATCH, SAFE_EXECUTE_CODE, SafeExecuteBatch, SafeExecuteCode,
    TASK_QUEUE,
};
pub use batch::{BatchCommand, BatchHeartbeat, BatchResult, SafeExecuteBatchInput};
pub use deploy::{
    Approval, ApproveDeployment, DeployWithApprovalInput, DeploymentPlan, DeploymentResult,
    RejectDeployment,
};
pub use execute::{
    ExecutionHeartbeat, ExecutionResult, SafeExecuteCodeInput, SandboxRuntime, WorkspaceFile,
};
pub use failure::FailureType;
pub use session::{CloseSandboxInput, CloseSandboxResult, OpenSandboxInput, OpenSandboxResult};
