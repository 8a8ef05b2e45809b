//! `safeExecuteBatch`: several commands in order in ONE sandbox (seed 002).

use crate::execute::{ExecutionResult, WorkspaceFile};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// One command of a batch: a plain string, or an object with its own timeout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum BatchCommand {
    /// Runs with the batch's default timeout.
    Plain(String),
    /// Runs with its own timeout (ms).
    Detailed {
        /// The shell command.
        command: String,
        /// Milliseconds; default the batch's `timeout`.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        timeout: Option<u64>,
    },
}

impl BatchCommand {
    /// The command text.
    pub fn command(&self) -> &str {
        match self {
            BatchCommand::Plain(c) => c,
            BatchCommand::Detailed { command, .. } => command,
        }
    }

    /// Its own timeout, if any.
    pub fn timeout(&self) -> Option<u64> {
        match self {
            BatchCommand::Plain(_) => None,
            BatchCommand::Detailed { timeout, .. } => *timeout,
        }
    }
}

/// Input of `safeExecuteBatch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SafeExecuteBatchInput {
    /// Names the budget.
    pub run_id: String,
    /// Run in order in one sandbox; files written by one are seen by the next.
    pub commands: Vec<BatchCommand>,
    /// Files written into `/workspace` before the first command.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspace_files: Vec<WorkspaceFile>,
    /// Default per-command timeout, ms (60000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Hosts the commands may reach; none: no network.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
    /// The commands' environment; values are redacted from outputs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Sandbox image; must be on the worker's allowlist (default: the worker's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Stop at the first command that exits non-zero or times out (default true).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_on_error: Option<bool>,
    /// Run in this open session (see `openSandbox`) instead of a fresh sandbox; schedule the
    /// activity on the session's `taskQueue`. `image` and `allowedDomains` are the session's
    /// and must be absent. Unknown, closed, expired or another run's: SandboxNotFound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
}

/// Output of `safeExecuteBatch`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchResult {
    /// One result per command that ran, in order.
    pub results: Vec<ExecutionResult>,
    /// Every command ran and exited 0.
    pub succeeded: bool,
    /// Index of the first command that failed, if one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failed_index: Option<usize>,
    /// USD charged for the commands that ran.
    pub total_cost: f64,
    /// USD left in the run's budget.
    pub budget_remaining: f64,
    /// Wall time of the whole batch, ms.
    pub duration_ms: u64,
    /// The isolation tier the batch's sandbox ran under (`runc` or `gvisor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<crate::execute::SandboxRuntime>,
}

/// Heartbeat details after every command of a batch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BatchHeartbeat {
    /// Commands finished.
    pub completed: usize,
    /// Commands in the batch.
    pub total: usize,
    /// The command running now (redacted), if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    /// Milliseconds since the batch started.
    #[serde(default)]
    pub elapsed_ms: u64,
    /// Bytes the current command has written to stdout.
    #[serde(default)]
    pub stdout_bytes: u64,
    /// Bytes the current command has written to stderr.
    #[serde(default)]
    pub stderr_bytes: u64,
    /// The end of the current command's stdout (at most 2 KiB), redacted; whole lines only.
    #[serde(default)]
    pub stdout_tail: String,
    /// The end of the current command's stderr (at most 2 KiB), redacted; whole lines only.
    #[serde(default)]
    pub stderr_tail: String,
}
