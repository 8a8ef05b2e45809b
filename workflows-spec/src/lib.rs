//! The activity contract of the `autonomous-enterprise` task queue.
//!
//! This crate owns the wire shapes: activity names, inputs, outputs, heartbeat details and
//! failure type names, exactly as workflows in any Temporal SDK see them (camelCase JSON, the
//! shapes of the TypeScript system this worker replaces). It does not own behaviour: the
//! activities themselves live in `ae-activities`.
//!
//! Rust workflows call the activities through the marker types in [`activities`], e.g.
//! `ctx.execute_activity(SafeExecuteCode, input, opts)`; other SDKs call them by name.

pub mod activities;
pub mod execute;
pub mod failure;

pub use activities::{SAFE_EXECUTE_CODE, SafeExecuteCode, TASK_QUEUE};
pub use execute::{ExecutionHeartbeat, ExecutionResult, SafeExecuteCodeInput, WorkspaceFile};
pub use failure::FailureType;
