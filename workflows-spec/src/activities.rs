//! Activity names and typed markers for Rust workflows.
//!
//! The names are the compatibility contract with the TypeScript and Python callers; the markers
//! only pair a name with its input and output types.

use crate::execute::{ExecutionResult, SafeExecuteCodeInput};
use temporalio_common::ActivityDefinition;

/// The task queue this worker polls by default.
pub const TASK_QUEUE: &str = "autonomous-enterprise";

/// Wire name of the single-command activity.
pub const SAFE_EXECUTE_CODE: &str = "safeExecuteCode";

/// Marker for `safeExecuteCode`: `ctx.execute_activity(SafeExecuteCode, input, opts)`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SafeExecuteCode;

impl ActivityDefinition for SafeExecuteCode {
    type Input = SafeExecuteCodeInput;
    type Output = ExecutionResult;

    fn name(&self) -> &str {
        SAFE_EXECUTE_CODE
    }
}
