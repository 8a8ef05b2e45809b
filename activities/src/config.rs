//! Worker configuration: costs, budgets, sandbox limits, endpoints.
//!
//! This module owns the defaults and reading them from the environment. It does not own the
//! command line (the `ae-worker` binary) nor any behaviour that uses the values.

use std::{env, time::Duration};

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
    /// Outer bound on a sandbox's life (seed 000: 24 hours), even if the worker dies.
    pub max_lifetime: Duration,
    /// Egress for sandboxes that list `allowedDomains`.
    pub egress: EgressConfig,
}

/// The egress proxy, its relay and the sandbox networks (see `egress`).
#[derive(Debug, Clone)]
pub struct EgressConfig {
    /// Where the proxy listens; default: Docker's bridge gateway, port `listen_port`.
    pub listen: Option<std::net::SocketAddr>,
    /// The proxy's port on the bridge gateway; 0 picks a free one.
    pub listen_port: u16,
    /// The address the relay dials, when it differs from `listen` (a worker in a container).
    pub upstream: Option<std::net::SocketAddr>,
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
            listen_port: 0,
            upstream: None,
            relay_image: "ae-sandbox:latest".into(),
            subnets: (std::net::Ipv4Addr::new(10, 213, 0, 0), 16),
            ports: vec![80, 443],
            hosts: Default::default(),
            private_allow: Vec::new(),
        }
    }
}

impl EgressConfig {
    fn with_env(mut self) -> Result<Self, ConfigError> {
        self.listen = parse_opt("AE_EGRESS_LISTEN")?;
        self.listen_port = parse("AE_EGRESS_PROXY_PORT", self.listen_port)?;
        self.upstream = parse_opt("AE_EGRESS_UPSTREAM")?;
        if let Ok(v) = env::var("AE_EGRESS_RELAY_IMAGE") {
            self.relay_image = v;
        }
        if let Ok(v) = env::var("AE_EGRESS_SUBNETS") {
            let bad = |why| ConfigError {
                name: "AE_EGRESS_SUBNETS",
                value: v.clone(),
                why,
            };
            let (ip, prefix) = v.trim().split_once('/').ok_or(bad("not a CIDR range"))?;
            let ip: std::net::Ipv4Addr = ip.parse().map_err(|_| bad("not an IPv4 address"))?;
            let prefix: u8 = prefix.parse().map_err(|_| bad("not a prefix length"))?;
            if !(8..=29).contains(&prefix) || u32::from(ip) & (u32::MAX >> prefix) != 0 {
                return Err(bad("prefix must be 8 to 29 with no host bits set"));
            }
            self.subnets = (ip, prefix);
        }
        if let Some(ports) = parse_list("AE_EGRESS_PORTS")? {
            self.ports = ports;
        }
        self.private_allow = parse_list("AE_EGRESS_PRIVATE_ALLOW")?.unwrap_or_default();
        if let Ok(v) = env::var("AE_EGRESS_HOSTS") {
            for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                let parsed = pair.split_once('=').and_then(|(n, ip)| {
                    Some((n.trim().to_ascii_lowercase(), ip.trim().parse().ok()?))
                });
                let Some((name, ip)) = parsed else {
                    return Err(ConfigError {
                        name: "AE_EGRESS_HOSTS",
                        value: v.clone(),
                        why: "expected name=ip pairs separated by commas",
                    });
                };
                self.hosts.insert(name, ip);
            }
        }
        Ok(self)
    }
}

/// Which limits a sandbox gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profile {
    /// Every execution but deploys.
    Sandbox,
    /// Deploys (`deployWithApproval`).
    Production,
}

impl Profile {
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
        }
    }
}

impl Limits {
    /// The `sandbox` profile from `AE_SANDBOX_*` (and the older unprefixed names).
    fn sandbox_from_env() -> Result<Self, ConfigError> {
        let d = Limits::default();
        Ok(Limits {
            memory_bytes: parse("AE_SANDBOX_MEMORY_BYTES", d.memory_bytes)?,
            nano_cpus: parse("AE_SANDBOX_NANO_CPUS", d.nano_cpus)?,
            pids_limit: parse("AE_SANDBOX_PIDS_LIMIT", d.pids_limit)?,
            workspace_size: parse_size("AE_SANDBOX_WORKSPACE_SIZE")?.unwrap_or(d.workspace_size),
            tmp_size: parse_size("AE_SANDBOX_TMP_SIZE")?.unwrap_or(d.tmp_size),
            output_cap_bytes: parse("AE_OUTPUT_CAP_BYTES", d.output_cap_bytes)?,
            max_timeout: Duration::from_millis(parse(
                "AE_MAX_TIMEOUT_MS",
                d.max_timeout.as_millis() as u64,
            )?),
            nofile: parse("AE_SANDBOX_NOFILE", d.nofile)?,
            seccomp_profile: read_seccomp("AE_SANDBOX_SECCOMP_PROFILE")?,
        })
    }

    /// The `production` profile: this one, overridden by whatever `AE_PRODUCTION_*` sets.
    fn production_from_env(&self) -> Result<Self, ConfigError> {
        Ok(Limits {
            memory_bytes: parse("AE_PRODUCTION_MEMORY_BYTES", self.memory_bytes)?,
            nano_cpus: parse("AE_PRODUCTION_NANO_CPUS", self.nano_cpus)?,
            pids_limit: parse("AE_PRODUCTION_PIDS_LIMIT", self.pids_limit)?,
            workspace_size: parse_size("AE_PRODUCTION_WORKSPACE_SIZE")?
                .unwrap_or_else(|| self.workspace_size.clone()),
            tmp_size: parse_size("AE_PRODUCTION_TMP_SIZE")?
                .unwrap_or_else(|| self.tmp_size.clone()),
            output_cap_bytes: parse("AE_PRODUCTION_OUTPUT_CAP_BYTES", self.output_cap_bytes)?,
            max_timeout: Duration::from_millis(parse(
                "AE_PRODUCTION_MAX_TIMEOUT_MS",
                self.max_timeout.as_millis() as u64,
            )?),
            nofile: parse("AE_PRODUCTION_NOFILE", self.nofile)?,
            seccomp_profile: read_seccomp("AE_PRODUCTION_SECCOMP_PROFILE")?
                .or_else(|| self.seccomp_profile.clone()),
        })
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
            egress: EgressConfig::default(),
        }
    }
}

impl Default for Config {
    fn default() -> Self {
        Self {
            redis_url: "redis://127.0.0.1:6379".into(),
            cost_per_execution: 0.01,
            default_budget: 10.0,
            budget_ttl: Duration::from_secs(7 * 24 * 60 * 60),
            worker_id: "ae-worker".into(),
            sandbox: SandboxConfig::default(),
            approvers: Vec::new(),
            approver_keys_file: None,
            audit_file: None,
        }
    }
}

/// A configuration value that could not be parsed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {name}={value:?} is not valid: {why}")]
pub struct ConfigError {
    name: &'static str,
    value: String,
    why: &'static str,
}

impl Config {
    /// Defaults overridden by the environment (`REDIS_URL`, `AE_*`; the README's configuration
    /// table lists every variable).
    pub fn from_env() -> Result<Config, ConfigError> {
        let mut c = Config::default();
        if let Ok(v) = env::var("REDIS_URL") {
            c.redis_url = v;
        }
        if let Ok(v) = env::var("AE_APPROVERS") {
            c.approvers = v
                .split(',')
                .map(|a| a.trim().to_string())
                .filter(|a| !a.is_empty())
                .collect();
        }
        c.approver_keys_file = env::var_os("AE_APPROVER_KEYS_FILE").map(Into::into);
        c.audit_file = env::var_os("AE_AUDIT_FILE").map(Into::into);
        if let Ok(v) = env::var("AE_SANDBOX_IMAGE") {
            c.sandbox.image = v;
        }
        if let Ok(v) = env::var("AE_ALLOWED_IMAGES") {
            c.sandbox.allowed_images = v
                .split(',')
                .map(|i| i.trim().to_string())
                .filter(|i| !i.is_empty())
                .collect();
        }
        c.cost_per_execution = parse_usd("AE_COST_PER_EXECUTION", c.cost_per_execution)?;
        c.default_budget = parse_usd("AE_DEFAULT_BUDGET", c.default_budget)?;
        c.sandbox.max_result_bytes = parse("AE_MAX_RESULT_BYTES", c.sandbox.max_result_bytes)?;
        c.sandbox.default_profile = Limits::sandbox_from_env()?;
        c.sandbox.production = c.sandbox.default_profile.production_from_env()?;
        c.sandbox.pool_size = parse("AE_POOL_SIZE", c.sandbox.pool_size)?;
        let age = parse("AE_POOL_MAX_AGE_SECS", c.sandbox.pool_max_age.as_secs())?;
        c.sandbox.pool_max_age = Duration::from_secs(age.max(1));
        c.sandbox.egress = c.sandbox.egress.with_env()?;
        Ok(c)
    }
}

fn parse<T: std::str::FromStr>(name: &'static str, default: T) -> Result<T, ConfigError> {
    match env::var(name) {
        Ok(v) => v.trim().parse().map_err(|_| ConfigError {
            name,
            value: v,
            why: "not a number of the expected kind",
        }),
        Err(_) => Ok(default),
    }
}

fn parse_opt<T: std::str::FromStr>(name: &'static str) -> Result<Option<T>, ConfigError> {
    match env::var(name) {
        Ok(v) => v.trim().parse().map(Some).map_err(|_| ConfigError {
            name,
            value: v,
            why: "not a number of the expected kind",
        }),
        Err(_) => Ok(None),
    }
}

fn parse_list<T: std::str::FromStr>(name: &'static str) -> Result<Option<Vec<T>>, ConfigError> {
    match env::var(name) {
        Ok(v) => v
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse())
            .collect::<Result<Vec<T>, _>>()
            .map(Some)
            .map_err(|_| ConfigError {
                name,
                value: v.clone(),
                why: "expected a comma-separated list of values of the expected kind",
            }),
        Err(_) => Ok(None),
    }
}

/// A tmpfs size: digits with an optional k, m or g.
fn parse_size(name: &'static str) -> Result<Option<String>, ConfigError> {
    match env::var(name) {
        Ok(v) => {
            let t = v.trim().to_ascii_lowercase();
            let digits = t.trim_end_matches(['k', 'm', 'g']);
            if !digits.is_empty()
                && digits.len() + 1 >= t.len()
                && digits.bytes().all(|b| b.is_ascii_digit())
                && digits != "0"
            {
                Ok(Some(t))
            } else {
                Err(ConfigError {
                    name,
                    value: v,
                    why: "expected a size such as 256m or 1g",
                })
            }
        }
        Err(_) => Ok(None),
    }
}

/// Reads a seccomp profile file named by `name`: must be a JSON object; `unconfined` is refused.
fn read_seccomp(name: &'static str) -> Result<Option<String>, ConfigError> {
    let Ok(path) = env::var(name) else {
        return Ok(None);
    };
    let bad = |why| ConfigError {
        name,
        value: path.clone(),
        why,
    };
    if path.trim().eq_ignore_ascii_case("unconfined") {
        return Err(bad("sandboxes never run without seccomp"));
    }
    let text = std::fs::read_to_string(&path).map_err(|_| bad("cannot read the file"))?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Ok(Some(text)),
        _ => Err(bad("not a JSON seccomp profile")),
    }
}

fn parse_usd(name: &'static str, default: f64) -> Result<f64, ConfigError> {
    let v: f64 = parse(name, default)?;
    if v.is_finite() && v >= 0.0 {
        Ok(v)
    } else {
        Err(ConfigError {
            name,
            value: v.to_string(),
            why: "must be a finite, non-negative amount of USD",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn production_overrides_only_what_it_sets() {
        // SAFETY: no other test reads or writes these variables.
        unsafe {
            env::set_var("AE_PRODUCTION_PIDS_LIMIT", "64");
            env::set_var("AE_PRODUCTION_WORKSPACE_SIZE", "1g");
            env::set_var("AE_PRODUCTION_MAX_TIMEOUT_MS", "7200000");
        }
        let mut c = SandboxConfig::default();
        c.production = c.default_profile.production_from_env().unwrap();
        let sandbox = c.limits(Profile::Sandbox);
        let production = c.limits(Profile::Production);
        assert_eq!(sandbox.pids_limit, 256);
        assert_eq!(production.pids_limit, 64);
        assert_eq!(sandbox.workspace_size, "256m");
        assert_eq!(production.workspace_size, "1g");
        assert_eq!(production.max_timeout, Duration::from_secs(7200));
        assert_eq!(production.memory_bytes, sandbox.memory_bytes);
        assert_eq!(production.output_cap_bytes, sandbox.output_cap_bytes);
        assert_eq!(production.nofile, 1024);
    }
}
