//! Input, output and heartbeat shapes of `safeExecuteCode` (seed 001's activity signature).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Default command timeout when the caller gives none, as in seed 001.
pub const DEFAULT_TIMEOUT_MS: u64 = 60_000;

/// Input of `safeExecuteCode`. Unknown fields are refused: a misspelt `timout` silently ignored
/// would be worse than an error for a tool whose job is safety.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SafeExecuteCodeInput {
    /// Names the budget this execution is charged to (`budget:<runId>` in Redis).
    pub run_id: String,
    /// Run as `/bin/sh -c <command>` in `/workspace` of a fresh sandbox.
    pub command: String,
    /// Files written into `/workspace` before the command runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workspace_files: Vec<WorkspaceFile>,
    /// Milliseconds before the sandbox is killed; default 60000.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout: Option<u64>,
    /// Hosts the command may reach. None or empty: no network at all.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allowed_domains: Option<Vec<String>>,
    /// The command's environment. Every value is also redacted from the outputs.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Sandbox image; must be on the worker's allowlist (default: the worker's image).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Files under `/workspace` to return after the command (artifacts), size-capped.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_files: Vec<String>,
    /// Run in this open session (see `openSandbox`) instead of a fresh sandbox; schedule the
    /// activity on the session's `taskQueue`. `image` and `allowedDomains` are the session's
    /// and must be absent. Unknown, closed, expired or another run's: SandboxNotFound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
}

impl SafeExecuteCodeInput {
    /// A minimal input: a run and a command, everything else defaulted.
    pub fn new(run_id: impl Into<String>, command: impl Into<String>) -> Self {
        Self {
            run_id: run_id.into(),
            command: command.into(),
            workspace_files: Vec::new(),
            timeout: None,
            allowed_domains: None,
            env: BTreeMap::new(),
            image: None,
            output_files: Vec::new(),
            sandbox_id: None,
        }
    }
}

/// A file returned from the sandbox.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OutputFile {
    /// The path as asked.
    pub path: String,
    /// The content: text (redacted) or base64, per `encoding`; empty when missing.
    pub content: String,
    /// `utf8` or `base64`.
    pub encoding: String,
    /// False when the file does not exist (or is not a regular file).
    pub found: bool,
    /// True when the file was longer than the cap and cut.
    pub truncated: bool,
}

/// One file written into the sandbox before the command runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct WorkspaceFile {
    /// Relative to `/workspace`, or absolute under it. Anything else is InvalidInput.
    pub path: String,
    /// The file's text.
    pub content: String,
}

/// Result of one command. A non-zero exit or a timeout is a normal result, not a failure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionResult {
    /// Standard output, redacted, at most the configured cap.
    pub stdout: String,
    /// Standard error, redacted, at most the configured cap.
    pub stderr: String,
    /// The command's exit code (137 when it was killed).
    pub exit_code: i64,
    /// True when the command was killed at its timeout.
    pub timed_out: bool,
    /// USD charged to the run's budget for this execution.
    pub cost: f64,
    /// USD left in the run's budget after the charge.
    pub budget_remaining: f64,
    /// Wall time of the sandboxed run, milliseconds.
    pub duration_ms: u64,
    /// True when stdout was cut at the cap.
    #[serde(default)]
    pub stdout_truncated: bool,
    /// True when stderr was cut at the cap.
    #[serde(default)]
    pub stderr_truncated: bool,
    /// Bytes the command wrote to stdout, including any cut.
    #[serde(default)]
    pub stdout_bytes: u64,
    /// Bytes the command wrote to stderr, including any cut.
    #[serde(default)]
    pub stderr_bytes: u64,
    /// How many secrets were replaced by `[REDACTED:<TYPE>]` in stdout and stderr.
    #[serde(default)]
    pub redactions: u64,
    /// True when the kernel's OOM killer killed a process of the command.
    #[serde(default)]
    pub oom_killed: bool,
    /// The signal that ended the command (e.g. `SIGKILL`), when one did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<String>,
    /// Peak memory of the sandbox, bytes, where the engine reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_memory_bytes: Option<u64>,
    /// The sandbox's container id (12 characters), for logs and audits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sandbox_id: Option<String>,
    /// The requested `outputFiles`, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub output_files: Vec<OutputFile>,
    /// Requests to hosts outside `allowedDomains` (or to private addresses) that the egress
    /// proxy refused while the command ran.
    #[serde(default)]
    pub egress_denied: u64,
    /// The isolation tier the command ran under (`runc` or `gvisor`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runtime: Option<SandboxRuntime>,
    /// True when the whole sandbox died during the command (under gVisor a memory or process
    /// limit ends the sandbox, not one process); the exit code is then 137.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub sandbox_ended: bool,
}

/// The OCI runtime (isolation tier) a sandbox runs under.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum SandboxRuntime {
    /// Docker's default runtime: a shared-kernel container (namespaces, cgroups, seccomp).
    #[default]
    Runc,
    /// gVisor's `runsc`: a user-space kernel between the command and the host's kernel.
    Gvisor,
}

impl SandboxRuntime {
    /// The wire name: `runc` or `gvisor`.
    pub fn as_str(self) -> &'static str {
        match self {
            SandboxRuntime::Runc => "runc",
            SandboxRuntime::Gvisor => "gvisor",
        }
    }

    /// Parses the wire name (`runsc` is accepted for `gvisor`).
    pub fn parse(s: &str) -> Option<SandboxRuntime> {
        match s.trim().to_ascii_lowercase().as_str() {
            "runc" => Some(SandboxRuntime::Runc),
            "gvisor" | "runsc" => Some(SandboxRuntime::Gvisor),
            _ => None,
        }
    }
}

impl std::fmt::Display for SandboxRuntime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Heartbeat details while a command runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExecutionHeartbeat {
    /// `starting`, `running` or `finishing`.
    pub status: String,
    /// Milliseconds since the activity attempt started.
    pub elapsed_ms: u64,
    /// Bytes the command has written to stdout so far.
    pub stdout_bytes: u64,
    /// Bytes the command has written to stderr so far.
    pub stderr_bytes: u64,
    /// The end of stdout so far (at most 2 KiB), redacted; whole lines only (a line shows once
    /// it ends).
    #[serde(default)]
    pub stdout_tail: String,
    /// The end of stderr so far (at most 2 KiB), redacted; whole lines only.
    #[serde(default)]
    pub stderr_tail: String,
}
