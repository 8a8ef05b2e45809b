//! Activity names and typed markers for Rust workflows.
//!
//! The names are the compatibility contract with the TypeScript and Python callers; the markers
//! only pair a name with its input and output types.

use crate::batch::{BatchResult, SafeExecuteBatchInput};
use crate::deploy::{DeployWithApprovalInput, DeploymentResult};
use crate::execute::{ExecutionResult, SafeExecuteCodeInput};
use crate::progressive::{DeploymentEvent, EventRecorded, RECORD_DEPLOYMENT_EVENT};
use crate::session::{CloseSandboxInput, CloseSandboxResult, OpenSandboxInput, OpenSandboxResult};
use temporalio_common::ActivityDefinition;

/// The task queue this worker polls by default.
pub const TASK_QUEUE: &str = "autonomous-enterprise";

/// Wire name of the single-command activity.
pub const SAFE_EXECUTE_CODE: &str = "safeExecuteCode";
/// Wire name of the batch activity.
pub const SAFE_EXECUTE_BATCH: &str = "safeExecuteBatch";
/// Wire name of the deploy activity.
pub const DEPLOY_WITH_APPROVAL: &str = "deployWithApproval";
/// Wire name of the activity opening a session.
pub const OPEN_SANDBOX: &str = "openSandbox";
/// Wire name of the activity closing a session.
pub const CLOSE_SANDBOX: &str = "closeSandbox";

macro_rules! marker {
    ($(#[$doc:meta])* $name:ident, $wire:expr, $input:ty, $output:ty) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, Default)]
        pub struct $name;

        impl ActivityDefinition for $name {
            type Input = $input;
            type Output = $output;

            fn name(&self) -> &str {
                $wire
            }
        }
    };
}

marker!(
    /// `ctx.execute_activity(SafeExecuteCode, input, opts)`.
    SafeExecuteCode, SAFE_EXECUTE_CODE, SafeExecuteCodeInput, ExecutionResult
);
marker!(
    /// `ctx.execute_activity(SafeExecuteBatch, input, opts)`.
    SafeExecuteBatch, SAFE_EXECUTE_BATCH, SafeExecuteBatchInput, BatchResult
);
marker!(
    /// `ctx.execute_activity(DeployWithApproval, input, opts)`.
    DeployWithApproval, DEPLOY_WITH_APPROVAL, DeployWithApprovalInput, DeploymentResult
);
marker!(
    /// `ctx.execute_activity(RecordDeploymentEvent, event, opts)`: audit and alert.
    RecordDeploymentEvent, RECORD_DEPLOYMENT_EVENT, DeploymentEvent, EventRecorded
);
marker!(
    /// `ctx.execute_activity(OpenSandbox, input, opts)`.
    OpenSandbox, OPEN_SANDBOX, OpenSandboxInput, OpenSandboxResult
);
marker!(
    /// `ctx.execute_activity(CloseSandbox, input, opts)` on the session's task queue.
    CloseSandbox, CLOSE_SANDBOX, CloseSandboxInput, CloseSandboxResult
);
