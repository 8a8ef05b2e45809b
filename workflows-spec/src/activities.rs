//! Activity names and typed markers for Rust workflows.
//!
//! The names are the compatibility contract with the TypeScript and Python callers; the markers
//! only pair a name with its input and output types.

use crate::batch::{BatchResult, SafeExecuteBatchInput};
use crate::deploy::{DeployWithApprovalInput, DeploymentResult};
use crate::execute::{ExecutionResult, SafeExecuteCodeInput};
use temporalio_common::ActivityDefinition;

/// The task queue this worker polls by default.
pub const TASK_QUEUE: &str = "autonomous-enterprise";

/// Wire name of the single-command activity.
pub const SAFE_EXECUTE_CODE: &str = "safeExecuteCode";
/// Wire name of the batch activity.
pub const SAFE_EXECUTE_BATCH: &str = "safeExecuteBatch";
/// Wire name of the deploy activity.
pub const DEPLOY_WITH_APPROVAL: &str = "deployWithApproval";

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
