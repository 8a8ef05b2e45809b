//! Sessions: `openSandbox` and `closeSandbox`. A session is one sandbox kept open on the worker
//! that opened it, so files survive from one `safeExecuteCode`/`safeExecuteBatch` (given its
//! `sandboxId`) to the next. Its activities must be scheduled on the returned `taskQueue`, the
//! opening worker's own queue (Temporal's worker-specific task queue pattern).

use crate::execute::WorkspaceFile;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default idle timeout of a session: 10 minutes without an execution closes it.
pub const DEFAULT_IDLE_TIMEOUT_MS: u64 = 600_000;
/// Default maximum lifetime of a session: one hour after it opened it is closed.
pub const DEFAULT_MAX_LIFETIME_MS: u64 = 3_600_000;
/// Recommended `scheduleToStartTimeout` of activities on a session's task queue: when the
/// worker that owns the session has died nobody polls its queue, and the call fails after this
/// instead of waiting for its start-to-close timeout.
pub const RECOMMENDED_SCHEDULE_TO_START_MS: u64 = 30_000;

/// Input of `openSandbox`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct OpenSandboxInput {
    /// The run the session belongs to: only executions of this run (and this workflow) may use
    /// it, and each is charged to it.
    pub run_id: String,
    /// Sandbox image; must be on the worker's allowlist (default: the worker's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Hosts the session's commands may reach; none: no network at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
    /// Files written into `/workspace` when the session opens.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspace_files: Vec<WorkspaceFile>,
    /// Environment of every command in the session (an execution's own `env` overrides a
    /// name); every value is redacted from outputs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Milliseconds without an execution after which the session is closed (default 600000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub idle_timeout_ms: Option<u64>,
    /// Milliseconds after opening at which the session is closed whatever it does (default
    /// 3600000, at most the worker's sandbox lifetime, 24 h by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_lifetime_ms: Option<u64>,
}

impl OpenSandboxInput {
    /// A session of `run_id` with every default.
    pub fn new(run_id: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            image: None,
            allowed_domains: None,
            workspace_files: Vec::new(),
            env: BTreeMap::new(),
            idle_timeout_ms: None,
            max_lifetime_ms: None,
        }
    }
}

/// Output of `openSandbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OpenSandboxResult {
    /// Pass as `sandboxId` to `safeExecuteCode`, `safeExecuteBatch` and `closeSandbox`.
    pub sandbox_id: String,
    /// The task queue of the worker holding the sandbox: schedule the session's activities
    /// (executions and `closeSandbox`) here.
    pub task_queue: String,
    /// Unix milliseconds at which the session closes whatever it does (its maximum lifetime).
    pub expires_at_ms: u64,
}

/// Input of `closeSandbox`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct CloseSandboxInput {
    /// The session to close.
    pub sandbox_id: String,
}

/// Output of `closeSandbox`. Closing is idempotent: a session already closed, expired, reaped
/// or unknown to this worker is reported with `closed: false`, not as a failure, so a retried
/// close (or a close in a workflow's cleanup path) never fails the workflow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CloseSandboxResult {
    /// The session asked for.
    pub sandbox_id: String,
    /// True when this call closed it; false when it was already gone.
    pub closed: bool,
}
