//! Worker configuration: costs, budgets, sandbox limits, endpoints.
//!
//! This module owns the typed configuration the activities read ([`Config`]), with both
//! profiles resolved once at start-up, and in [`settings`] every setting an operator may change,
//! each declared once as a command-line option with its environment variable and default (so
//! `ae-worker run --help` lists them all). It does not own any behaviour that uses the values.

mod settings;

pub use ae_workflows_spec::SandboxRuntime;
pub use settings::{DEFAULT_REDIS_URL, Settings};

use std::time::Duration;

/// Everything the activities need to know that an operator may change.
#[derive(Debug, Clone)]
pub struct Config {
    /// Redis holding the budgets, e.g. `redis://127.0.0.1:6379`.
    pub redis_url: String,
    /// USD charged for one execution (seed 001: 0.01).
    pub cost_per_execution: f64,
    /// Limit given to a run that has no budget yet; 0 disables it (BudgetNotFound).
    pub default_budget: f64,
    /// Lifetime of the budget keys (seed 003: 7 days).
    pub budget_ttl: Duration,
    /// Names this worker process on container labels and in logs.
    pub worker_id: String,
    /// This worker's own task queue, where the activities of the sessions it opens are
    /// scheduled (set by `ae-worker run`); empty: sessions cannot be opened.
    pub session_queue: String,
    /// Sandbox limits.
    pub sandbox: SandboxConfig,
    /// When not empty, only these approvers may approve deployments (`AE_APPROVERS`, comma
    /// separated).
    pub approvers: Vec<String>,
    /// `name base64-ed25519-public-key` lines; when set, approvals must be signed
    /// (`AE_APPROVER_KEYS_FILE`).
    pub approver_keys_file: Option<std::path::PathBuf>,
    /// Also append audit records here as JSON lines (`AE_AUDIT_FILE`).
    pub audit_file: Option<std::path::PathBuf>,
    /// Rate limits, concurrency and circuit breaker per run.
    pub guards: crate::guard::GuardSettings,
    /// Operator policy rules added to the built-in ones (`AE_POLICY_FILE`).
    pub policy_file: Option<std::path::PathBuf>,
    /// About how many entries `ae:audit` keeps (`AE_AUDIT_STREAM_MAX_LEN`).
    pub audit_stream_max_len: usize,
    /// Where budget alerts are also POSTed (`AE_ALERT_WEBHOOK_URL`).
    pub alert_webhook_url: Option<String>,
    /// About how many entries each live output stream `ae:output:<runId>` keeps; 0: no stream
    /// (`AE_OUTPUT_STREAM_MAX_LEN`).
    pub output_stream_max_len: usize,
    /// How long a live output stream lives after its last entry (`AE_OUTPUT_STREAM_TTL_SECS`).
    pub output_stream_ttl: Duration,
}

/// Limits and shape of every sandbox.
#[derive(Debug, Clone)]
pub struct SandboxConfig {
    /// Image the sandboxes run (`ae-worker image build` makes the default).
    pub image: String,
    /// Other images callers may ask for with the input field `image` (`AE_ALLOWED_IMAGES`).
    pub allowed_images: Vec<String>,
    /// Largest output file returned, bytes.
    pub max_output_file_bytes: usize,
    /// The `sandbox` profile: every execution but deploys.
    pub default_profile: Limits,
    /// The `production` profile (deploys): each setting is the `sandbox` profile's unless
    /// `AE_PRODUCTION_*` says otherwise.
    pub production: Limits,
    /// Largest serialised result; keeps both streams together under Temporal's payload limit.
    pub max_result_bytes: usize,
    /// Largest file a command may write (RLIMIT_FSIZE).
    pub max_written_file_bytes: i64,
    /// Largest single workspace file.
    pub max_file_bytes: usize,
    /// Largest total of workspace files in one request.
    pub max_total_file_bytes: usize,
    /// The uid:gid commands run as.
    pub user: String,
    /// Pre-started sandboxes kept ready (0: no warm pool).
    pub pool_size: usize,
    /// A pooled sandbox older than this is replaced, never handed out.
    pub pool_max_age: Duration,
    /// Most sessions (`openSandbox`) this worker holds open at once (`AE_MAX_SESSIONS`).
    pub max_sessions: usize,
    /// Outer bound on a sandbox's life (seed 000: 24 hours), even if the worker dies.
    pub max_lifetime: Duration,
    /// Egress for sandboxes that list `allowedDomains`.
    pub egress: EgressConfig,
    /// The engine's name of gVisor registered with `--network=none` (sandboxes without network).
    pub gvisor_runtime: String,
    /// The engine's name of gVisor registered with `--network=host` (sandboxes on their internal
    /// egress network keep the namespace Docker gives them; see README "Isolation tiers").
    pub gvisor_egress_runtime: String,
}

/// The egress proxy, the relays and the sandbox networks (see `egress`).
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// Where the proxy opens each sandbox's listener (a free port each); default: Docker's
    /// bridge gateway.
    pub listen: Option<std::net::IpAddr>,
    /// The address relays dial (with their sandbox's port), when it differs from `listen` (a
    /// worker in a container).
    pub upstream: Option<std::net::IpAddr>,
    /// Image of the relay container: needs busybox `nc`.
    pub relay_image: String,
    /// Range the per-sandbox /29 networks are carved from.
    pub subnets: (std::net::Ipv4Addr, u8),
    /// Destination ports the proxy admits.
    pub ports: Vec<u16>,
    /// Fixed name-to-address answers used instead of DNS (tests; split-horizon setups).
    pub hosts: std::collections::HashMap<String, std::net::IpAddr>,
    /// Private destinations admitted anyway (an internal package mirror), as `ip:port`.
    pub private_allow: Vec<std::net::SocketAddr>,
}

impl Default for EgressConfig {
    fn default() -> Self {
        Self {
            listen: None,
            upstream: None,
            relay_image: "ae-sandbox:latest".into(),
            subnets: (std::net::Ipv4Addr::new(10, 213, 0, 0), 16),
            ports: vec![80, 443],
            hosts: Default::default(),
            private_allow: Vec::new(),
        }
    }
}

/// Which limits a sandbox gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Profile {
    /// Every execution but deploys.
    #[default]
    Sandbox,
    /// Deploys (`deployWithApproval`).
    Production,
}

impl Profile {
    /// `sandbox`, or `production` (also `prod`).
    pub fn parse(s: &str) -> Option<Profile> {
        match s {
            "sandbox" => Some(Profile::Sandbox),
            "production" | "prod" => Some(Profile::Production),
            _ => None,
        }
    }

    /// The name on labels and in audit records.
    pub fn as_str(self) -> &'static str {
        match self {
            Profile::Sandbox => "sandbox",
            Profile::Production => "production",
        }
    }
}

/// Everything that may differ between the `sandbox` and `production` profiles.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    /// Memory limit in bytes; swap is set equal so nothing swaps.
    pub memory_bytes: i64,
    /// CPU quota in billionths of a CPU.
    pub nano_cpus: i64,
    /// Maximum number of processes and threads.
    pub pids_limit: i64,
    /// Size of the writable `/workspace` tmpfs (disk), e.g. `256m`.
    pub workspace_size: String,
    /// Size of the writable `/tmp` tmpfs.
    pub tmp_size: String,
    /// Kept bytes of each output stream; the rest is counted and dropped.
    pub output_cap_bytes: usize,
    /// Longest timeout a caller may ask for.
    pub max_timeout: Duration,
    /// Open files per process (RLIMIT_NOFILE).
    pub nofile: i64,
    /// A seccomp profile (JSON) replacing the engine's default; None keeps the default, which
    /// is already strict. Never `unconfined`.
    pub seccomp_profile: Option<String>,
    /// The isolation tier: `runc` (shared kernel) or `gvisor` (gVisor's user-space kernel).
    pub runtime: SandboxRuntime,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            memory_bytes: 512 * 1024 * 1024,
            nano_cpus: 1_000_000_000,
            pids_limit: 256,
            workspace_size: "256m".into(),
            tmp_size: "64m".into(),
            output_cap_bytes: 1024 * 1024,
            max_timeout: Duration::from_secs(60 * 60),
            nofile: 1024,
            seccomp_profile: None,
            runtime: SandboxRuntime::Runc,
        }
    }
}

impl SandboxConfig {
    /// The limits of a profile, resolved once at start-up.
    pub fn limits(&self, profile: Profile) -> &Limits {
        match profile {
            Profile::Production => &self.production,
            Profile::Sandbox => &self.default_profile,
        }
    }

    /// The engine's OCI runtime name for a sandbox of `runtime`, with or without network.
    pub fn oci_runtime(&self, runtime: SandboxRuntime, network: bool) -> &str {
        match (runtime, network) {
            (SandboxRuntime::Runc, _) => "runc",
            (SandboxRuntime::Gvisor, false) => &self.gvisor_runtime,
            (SandboxRuntime::Gvisor, true) => &self.gvisor_egress_runtime,
        }
    }

    /// Every OCI runtime name some profile needs (checked against the engine at start-up).
    pub fn required_runtimes(&self) -> Vec<&str> {
        let mut names = Vec::new();
        for limits in [&self.default_profile, &self.production] {
            for network in [false, true] {
                let name = self.oci_runtime(limits.runtime, network);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
        names
    }
}

impl Default for SandboxConfig {
    fn default() -> Self {
        Self {
            image: "ae-sandbox:latest".into(),
            allowed_images: Vec::new(),
            max_output_file_bytes: 256 * 1024,
            default_profile: Limits::default(),
            production: Limits::default(),
            max_result_bytes: 1536 * 1024,
            max_written_file_bytes: 1024 * 1024 * 1024,
            max_file_bytes: 5 * 1024 * 1024,
            max_total_file_bytes: 20 * 1024 * 1024,
            user: "65534:65534".into(),
            max_lifetime: Duration::from_secs(24 * 60 * 60),
            pool_size: 0,
            pool_max_age: Duration::from_secs(10 * 60),
            max_sessions: 32,
            egress: EgressConfig::default(),
            gvisor_runtime: "runsc".into(),
            gvisor_egress_runtime: "runsc-egress".into(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis_url: DEFAULT_REDIS_URL.into(),
            cost_per_execution: 0.01,
            default_budget: 10.0,
            budget_ttl: Duration::from_secs(7 * 24 * 60 * 60),
            worker_id: "ae-worker".into(),
            session_queue: String::new(),
            sandbox: SandboxConfig::default(),
            approvers: Vec::new(),
            approver_keys_file: None,
            audit_file: None,
            guards: crate::guard::GuardSettings::default(),
            policy_file: None,
            audit_stream_max_len: 100_000,
            alert_webhook_url: None,
            output_stream_max_len: 1000,
            output_stream_ttl: Duration::from_secs(7 * 24 * 60 * 60),
        }
    }
}
