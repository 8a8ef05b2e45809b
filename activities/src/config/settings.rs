//! Every setting an operator may change, declared once: its option, its environment variable,
//! its default and its meaning (`ae-worker run --help` prints them all). [`Settings::resolve`]
//! turns them into the typed [`Config`], resolving the `production` profile (the `sandbox`
//! profile overridden by whatever `--production-*` / `AE_PRODUCTION_*` sets) once.

use super::{Config, EgressConfig, Limits, SandboxConfig, SandboxRuntime};
use crate::guard::GuardSettings;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

/// Redis holding budgets, the kill switch and worker liveness, unless `REDIS_URL` says otherwise.
pub const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

/// The worker's settings; each from its option or environment variable, else its default.
#[derive(clap::Args, Debug, Clone)]
pub struct Settings {
    /// Redis holding budgets, the kill switch and worker liveness.
    #[arg(long, env = "REDIS_URL", default_value = DEFAULT_REDIS_URL)]
    pub redis_url: String,
    /// USD charged for one execution (seed 001).
    #[arg(long, env = "AE_COST_PER_EXECUTION", default_value_t = 0.01, value_parser = usd)]
    pub cost_per_execution: f64,
    /// Limit given to a run without a budget; 0 makes that BudgetNotFound.
    #[arg(long, env = "AE_DEFAULT_BUDGET", default_value_t = 10.0, value_parser = usd)]
    pub default_budget: f64,
    /// Comma-separated approvers allowed to approve deployments (default: anyone).
    #[arg(long, env = "AE_APPROVERS", value_delimiter = ',', value_parser = trimmed::<String>)]
    pub approvers: Vec<String>,
    /// `name base64-ed25519-key` lines; approvals must then be signed.
    #[arg(long, env = "AE_APPROVER_KEYS_FILE")]
    pub approver_keys_file: Option<PathBuf>,
    /// Also append audit records here as JSON lines.
    #[arg(long, env = "AE_AUDIT_FILE")]
    pub audit_file: Option<PathBuf>,
    /// A policy rules file (TOML) adding to or overriding the built-in rules.
    #[arg(long, env = "AE_POLICY_FILE")]
    pub policy_file: Option<PathBuf>,
    /// Also POST every budget alert (JSON) to this URL (http://), retried, in the background.
    #[arg(long, env = "AE_ALERT_WEBHOOK_URL")]
    pub alert_webhook_url: Option<String>,
    /// About how many entries the Redis audit stream `ae:audit` keeps (`XADD MAXLEN ~`).
    #[arg(long, env = "AE_AUDIT_STREAM_MAX_LEN", default_value_t = 100_000, value_parser = trimmed::<usize>)]
    pub audit_stream_max_len: usize,
    /// About how many entries (each at most 8 KiB of redacted output) each live output stream
    /// `ae:output:<runId>` keeps (`XADD MAXLEN ~`); 0 turns the streams off.
    #[arg(long, env = "AE_OUTPUT_STREAM_MAX_LEN", default_value_t = 1000, value_parser = trimmed::<usize>)]
    pub output_stream_max_len: usize,
    /// Seconds a live output stream is kept after its last entry (as long as budgets by default).
    #[arg(long, env = "AE_OUTPUT_STREAM_TTL_SECS", default_value_t = 7 * 24 * 3600, value_parser = trimmed::<u64>)]
    pub output_stream_ttl_secs: u64,
    /// Image the sandboxes run (built by `ae-worker image build`).
    #[arg(long, env = "AE_SANDBOX_IMAGE", default_value = "ae-sandbox:latest")]
    pub sandbox_image: String,
    /// Other images callers may name in `image`, comma-separated.
    #[arg(long, env = "AE_ALLOWED_IMAGES", value_delimiter = ',', value_parser = trimmed::<String>)]
    pub allowed_images: Vec<String>,
    /// Largest serialised result, bytes.
    #[arg(long, env = "AE_MAX_RESULT_BYTES", default_value_t = 1536 * 1024, value_parser = trimmed::<usize>)]
    pub max_result_bytes: usize,
    /// Requests a minute one run may make in the `sandbox` profile (0: no limit).
    #[arg(long, env = "AE_RATE_SANDBOX_PER_MIN", default_value_t = 10, value_parser = trimmed::<u32>)]
    pub rate_sandbox_per_min: u32,
    /// Deploys a minute one run may make (the `production` profile; 0: no limit).
    #[arg(long, env = "AE_RATE_PRODUCTION_PER_MIN", default_value_t = 100, value_parser = trimmed::<u32>)]
    pub rate_production_per_min: u32,
    /// Executions of one run at once across the fleet; more wait for a slot (0: no limit).
    #[arg(long, env = "AE_MAX_CONCURRENT_PER_RUN", default_value_t = 3, value_parser = trimmed::<u32>)]
    pub max_concurrent_per_run: u32,
    /// Consecutive failures that open a run's circuit breaker (0: no breaker).
    #[arg(long, env = "AE_CIRCUIT_FAILURES", default_value_t = 3, value_parser = trimmed::<u32>)]
    pub circuit_failures: u32,
    /// Seconds an open circuit stays open before one trial request is let through.
    #[arg(long, env = "AE_CIRCUIT_COOLDOWN_SECS", default_value_t = 300, value_parser = trimmed::<u64>)]
    pub circuit_cooldown_secs: u64,
    /// Pre-started sandboxes kept ready (0: no warm pool).
    #[arg(long, env = "AE_POOL_SIZE", default_value_t = 0, value_parser = trimmed::<usize>)]
    pub pool_size: usize,
    /// A pooled sandbox older than this many seconds is replaced.
    #[arg(long, env = "AE_POOL_MAX_AGE_SECS", default_value_t = 600, value_parser = trimmed::<u64>)]
    pub pool_max_age_secs: u64,
    /// Most sessions (`openSandbox`) this worker holds open at once; more are refused.
    #[arg(long, env = "AE_MAX_SESSIONS", default_value_t = 32, value_parser = trimmed::<usize>)]
    pub max_sessions: usize,

    /// `sandbox` profile: memory limit, bytes (swap equal, so nothing swaps).
    #[arg(long, env = "AE_SANDBOX_MEMORY_BYTES", default_value_t = 512 * 1024 * 1024, value_parser = trimmed::<i64>)]
    pub sandbox_memory_bytes: i64,
    /// `sandbox` profile: CPU quota in billionths of a CPU.
    #[arg(long, env = "AE_SANDBOX_NANO_CPUS", default_value_t = 1_000_000_000, value_parser = trimmed::<i64>)]
    pub sandbox_nano_cpus: i64,
    /// `sandbox` profile: processes and threads.
    #[arg(long, env = "AE_SANDBOX_PIDS_LIMIT", default_value_t = 256, value_parser = trimmed::<i64>)]
    pub sandbox_pids_limit: i64,
    /// `sandbox` profile: size of the `/workspace` tmpfs (e.g. 256m, 1g).
    #[arg(long, env = "AE_SANDBOX_WORKSPACE_SIZE", default_value = "256m", value_parser = size)]
    pub sandbox_workspace_size: String,
    /// `sandbox` profile: size of the `/tmp` tmpfs.
    #[arg(long, env = "AE_SANDBOX_TMP_SIZE", default_value = "64m", value_parser = size)]
    pub sandbox_tmp_size: String,
    /// `sandbox` profile: kept bytes of each output stream.
    #[arg(long, env = "AE_OUTPUT_CAP_BYTES", default_value_t = 1024 * 1024, value_parser = trimmed::<usize>)]
    pub output_cap_bytes: usize,
    /// `sandbox` profile: longest timeout a caller may ask for, ms.
    #[arg(long, env = "AE_MAX_TIMEOUT_MS", default_value_t = 3_600_000, value_parser = trimmed::<u64>)]
    pub max_timeout_ms: u64,
    /// `sandbox` profile: open files per process.
    #[arg(long, env = "AE_SANDBOX_NOFILE", default_value_t = 1024, value_parser = trimmed::<i64>)]
    pub sandbox_nofile: i64,
    /// `sandbox` profile: path of a seccomp profile (JSON) replacing the engine's default;
    /// `unconfined` is refused.
    #[arg(long, env = "AE_SANDBOX_SECCOMP_PROFILE", value_parser = sandbox_seccomp)]
    pub sandbox_seccomp_profile: Option<String>,
    /// `sandbox` profile: isolation tier, `runc` (shared-kernel container) or `gvisor` (gVisor's
    /// `runsc`, installed by `scripts/install-deps.sh --gvisor`). A worker whose engine lacks the
    /// runtime refuses to start.
    #[arg(long, env = "AE_SANDBOX_RUNTIME", default_value = "runc", value_parser = runtime)]
    pub sandbox_runtime: SandboxRuntime,
    /// The engine's runtime name for gVisor sandboxes without network (registered with
    /// `--network=none`).
    #[arg(long, env = "AE_GVISOR_RUNTIME_NAME", default_value = "runsc", value_parser = trimmed::<String>)]
    pub gvisor_runtime_name: String,
    /// The engine's runtime name for gVisor sandboxes with egress (registered with
    /// `--network=host`: the sandbox keeps its internal network namespace).
    #[arg(long, env = "AE_GVISOR_EGRESS_RUNTIME_NAME", default_value = "runsc-egress", value_parser = trimmed::<String>)]
    pub gvisor_egress_runtime_name: String,

    /// `production` profile (deploys): memory, bytes [default: the `sandbox` profile's].
    #[arg(long, env = "AE_PRODUCTION_MEMORY_BYTES", value_parser = trimmed::<i64>)]
    pub production_memory_bytes: Option<i64>,
    /// `production` profile: CPU quota [default: the `sandbox` profile's].
    #[arg(long, env = "AE_PRODUCTION_NANO_CPUS", value_parser = trimmed::<i64>)]
    pub production_nano_cpus: Option<i64>,
    /// `production` profile: processes and threads [default: the `sandbox` profile's].
    #[arg(long, env = "AE_PRODUCTION_PIDS_LIMIT", value_parser = trimmed::<i64>)]
    pub production_pids_limit: Option<i64>,
    /// `production` profile: `/workspace` size [default: the `sandbox` profile's].
    #[arg(long, env = "AE_PRODUCTION_WORKSPACE_SIZE", value_parser = size)]
    pub production_workspace_size: Option<String>,
    /// `production` profile: `/tmp` size [default: the `sandbox` profile's].
    #[arg(long, env = "AE_PRODUCTION_TMP_SIZE", value_parser = size)]
    pub production_tmp_size: Option<String>,
    /// `production` profile: kept bytes per stream [default: the `sandbox` profile's].
    #[arg(long, env = "AE_PRODUCTION_OUTPUT_CAP_BYTES", value_parser = trimmed::<usize>)]
    pub production_output_cap_bytes: Option<usize>,
    /// `production` profile: longest timeout, ms [default: the `sandbox` profile's].
    #[arg(long, env = "AE_PRODUCTION_MAX_TIMEOUT_MS", value_parser = trimmed::<u64>)]
    pub production_max_timeout_ms: Option<u64>,
    /// `production` profile: open files per process [default: the `sandbox` profile's].
    #[arg(long, env = "AE_PRODUCTION_NOFILE", value_parser = trimmed::<i64>)]
    pub production_nofile: Option<i64>,
    /// `production` profile: seccomp profile path [default: the `sandbox` profile's].
    #[arg(long, env = "AE_PRODUCTION_SECCOMP_PROFILE", value_parser = production_seccomp)]
    pub production_seccomp_profile: Option<String>,
    /// `production` profile: isolation tier, `runc` or `gvisor` [default: the `sandbox`
    /// profile's].
    #[arg(long, env = "AE_PRODUCTION_RUNTIME", value_parser = runtime)]
    pub production_runtime: Option<SandboxRuntime>,

    /// Address the egress proxy opens each sandbox's listener on, a free port each [default:
    /// Docker's bridge gateway].
    #[arg(long, env = "AE_EGRESS_LISTEN", value_parser = trimmed::<IpAddr>)]
    pub egress_listen: Option<IpAddr>,
    /// The address the relays dial (with their sandbox's port), when it differs from where the
    /// proxy listens (a worker in a container).
    #[arg(long, env = "AE_EGRESS_UPSTREAM", value_parser = trimmed::<IpAddr>)]
    pub egress_upstream: Option<IpAddr>,
    /// Image of the egress relay (needs busybox `nc`).
    #[arg(
        long,
        env = "AE_EGRESS_RELAY_IMAGE",
        default_value = "ae-sandbox:latest"
    )]
    pub egress_relay_image: String,
    /// Range the per-sandbox /29 networks are carved from.
    #[arg(long, env = "AE_EGRESS_SUBNETS", default_value = "10.213.0.0/16", value_parser = subnets)]
    pub egress_subnets: (Ipv4Addr, u8),
    /// Destination ports the egress proxy admits, comma-separated.
    #[arg(long, env = "AE_EGRESS_PORTS", default_value = "80,443", value_delimiter = ',', value_parser = trimmed::<u16>)]
    pub egress_ports: Vec<u16>,
    /// `name=ip,...` fixed answers used instead of DNS (tests, split horizon).
    #[arg(long, env = "AE_EGRESS_HOSTS", value_parser = hosts)]
    pub egress_hosts: Option<HashMap<String, IpAddr>>,
    /// `ip:port` private destinations admitted anyway (an internal mirror), comma-separated.
    #[arg(long, env = "AE_EGRESS_PRIVATE_ALLOW", value_delimiter = ',', value_parser = trimmed::<SocketAddr>)]
    pub egress_private_allow: Vec<SocketAddr>,
}

impl Settings {
    /// The typed configuration, both profiles resolved.
    pub fn resolve(self) -> Config {
        let sandbox = Limits {
            memory_bytes: self.sandbox_memory_bytes,
            nano_cpus: self.sandbox_nano_cpus,
            pids_limit: self.sandbox_pids_limit,
            workspace_size: self.sandbox_workspace_size,
            tmp_size: self.sandbox_tmp_size,
            output_cap_bytes: self.output_cap_bytes,
            max_timeout: Duration::from_millis(self.max_timeout_ms),
            nofile: self.sandbox_nofile,
            seccomp_profile: self.sandbox_seccomp_profile,
            runtime: self.sandbox_runtime,
        };
        let production = Limits {
            memory_bytes: self.production_memory_bytes.unwrap_or(sandbox.memory_bytes),
            nano_cpus: self.production_nano_cpus.unwrap_or(sandbox.nano_cpus),
            pids_limit: self.production_pids_limit.unwrap_or(sandbox.pids_limit),
            workspace_size: (self.production_workspace_size)
                .unwrap_or_else(|| sandbox.workspace_size.clone()),
            tmp_size: (self.production_tmp_size).unwrap_or_else(|| sandbox.tmp_size.clone()),
            output_cap_bytes: (self.production_output_cap_bytes)
                .unwrap_or(sandbox.output_cap_bytes),
            max_timeout: (self.production_max_timeout_ms)
                .map_or(sandbox.max_timeout, Duration::from_millis),
            nofile: self.production_nofile.unwrap_or(sandbox.nofile),
            seccomp_profile: (self.production_seccomp_profile)
                .or_else(|| sandbox.seccomp_profile.clone()),
            runtime: self.production_runtime.unwrap_or(sandbox.runtime),
        };
        let nonempty = |v: Vec<String>| v.into_iter().filter(|s| !s.is_empty()).collect();
        let defaults = Config::default();
        Config {
            redis_url: self.redis_url,
            cost_per_execution: self.cost_per_execution,
            default_budget: self.default_budget,
            approvers: nonempty(self.approvers),
            approver_keys_file: self.approver_keys_file,
            audit_file: self.audit_file,
            audit_stream_max_len: self.audit_stream_max_len,
            output_stream_max_len: self.output_stream_max_len,
            output_stream_ttl: Duration::from_secs(self.output_stream_ttl_secs.max(1)),
            alert_webhook_url: self.alert_webhook_url,
            policy_file: self.policy_file,
            guards: GuardSettings {
                rate_sandbox_per_min: self.rate_sandbox_per_min,
                rate_production_per_min: self.rate_production_per_min,
                max_concurrent_per_run: self.max_concurrent_per_run,
                circuit_failures: self.circuit_failures,
                circuit_cooldown: Duration::from_secs(self.circuit_cooldown_secs),
            },
            sandbox: SandboxConfig {
                image: self.sandbox_image,
                allowed_images: nonempty(self.allowed_images),
                max_result_bytes: self.max_result_bytes,
                default_profile: sandbox,
                production,
                pool_size: self.pool_size,
                pool_max_age: Duration::from_secs(self.pool_max_age_secs.max(1)),
                max_sessions: self.max_sessions,
                egress: EgressConfig {
                    listen: self.egress_listen,
                    upstream: self.egress_upstream,
                    relay_image: self.egress_relay_image,
                    subnets: self.egress_subnets,
                    ports: self.egress_ports,
                    hosts: self.egress_hosts.unwrap_or_default(),
                    private_allow: self.egress_private_allow,
                },
                gvisor_runtime: self.gvisor_runtime_name,
                gvisor_egress_runtime: self.gvisor_egress_runtime_name,
                ..defaults.sandbox
            },
            ..defaults
        }
    }
}

/// A value of `T`, surrounding whitespace ignored.
fn trimmed<T: FromStr>(v: &str) -> Result<T, String> {
    v.trim()
        .parse()
        .map_err(|_| format!("{v:?} is not a value of the expected kind"))
}

/// An isolation tier: `runc` or `gvisor`.
fn runtime(v: &str) -> Result<SandboxRuntime, String> {
    SandboxRuntime::parse(v).ok_or_else(|| format!("{v:?} is not a runtime: use runc or gvisor"))
}

/// A finite, non-negative amount of USD.
fn usd(v: &str) -> Result<f64, String> {
    let x: f64 = trimmed(v)?;
    if x.is_finite() && x >= 0.0 {
        Ok(x)
    } else {
        Err("must be a finite, non-negative amount of USD".into())
    }
}

/// A tmpfs size: digits with an optional k, m or g.
fn size(v: &str) -> Result<String, String> {
    let t = v.trim().to_ascii_lowercase();
    let digits = t.trim_end_matches(['k', 'm', 'g']);
    if !digits.is_empty()
        && digits.len() + 1 >= t.len()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && digits != "0"
    {
        Ok(t)
    } else {
        Err("expected a size such as 256m or 1g".into())
    }
}

/// [`seccomp`], naming the variable (operators set these through the environment).
fn sandbox_seccomp(path: &str) -> Result<String, String> {
    seccomp(path).map_err(|e| format!("AE_SANDBOX_SECCOMP_PROFILE: {e}"))
}

/// [`seccomp`], naming the variable.
fn production_seccomp(path: &str) -> Result<String, String> {
    seccomp(path).map_err(|e| format!("AE_PRODUCTION_SECCOMP_PROFILE: {e}"))
}

/// Reads a seccomp profile file: must be a JSON object; `unconfined` is refused.
fn seccomp(path: &str) -> Result<String, String> {
    if path.trim().eq_ignore_ascii_case("unconfined") {
        return Err("sandboxes never run without seccomp".into());
    }
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read {path}: {e}"))?;
    match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(_)) => Ok(text),
        _ => Err("not a JSON seccomp profile".into()),
    }
}

/// An IPv4 CIDR range with a prefix of 8 to 29 and no host bits set.
fn subnets(v: &str) -> Result<(Ipv4Addr, u8), String> {
    let (ip, prefix) = v.trim().split_once('/').ok_or("not a CIDR range")?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| "not an IPv4 address")?;
    let prefix: u8 = prefix.parse().map_err(|_| "not a prefix length")?;
    if !(8..=29).contains(&prefix) || u32::from(ip) & (u32::MAX >> prefix) != 0 {
        return Err("prefix must be 8 to 29 with no host bits set".into());
    }
    Ok((ip, prefix))
}

/// `name=ip` pairs separated by commas; names are case-insensitive.
fn hosts(v: &str) -> Result<HashMap<String, IpAddr>, String> {
    let mut map = HashMap::new();
    for pair in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let parsed = pair
            .split_once('=')
            .and_then(|(n, ip)| Some((n.trim().to_ascii_lowercase(), ip.trim().parse().ok()?)));
        let (name, ip) = parsed.ok_or("expected name=ip pairs separated by commas")?;
        map.insert(name, ip);
    }
    Ok(map)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Profile;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    fn resolve(args: &[&str]) -> Config {
        let mut argv = vec!["ae-worker"];
        argv.extend_from_slice(args);
        Cli::try_parse_from(argv).unwrap().settings.resolve()
    }

    #[test]
    fn defaults_match_the_documented_ones() {
        let c = resolve(&[]);
        let d = Config::default();
        assert_eq!(c.redis_url, d.redis_url);
        assert_eq!(c.cost_per_execution, d.cost_per_execution);
        assert_eq!(c.default_budget, d.default_budget);
        assert_eq!(c.guards, d.guards);
        assert_eq!(c.sandbox.default_profile, Limits::default());
        assert_eq!(c.sandbox.production, Limits::default());
        assert_eq!(c.sandbox.max_result_bytes, d.sandbox.max_result_bytes);
        assert_eq!(c.sandbox.egress.ports, vec![80, 443]);
        assert_eq!(c.sandbox.egress.subnets, d.sandbox.egress.subnets);
    }

    #[test]
    fn production_overrides_only_what_it_sets() {
        let c = resolve(&[
            "--production-pids-limit",
            "64",
            "--production-workspace-size",
            "1g",
            "--production-max-timeout-ms",
            "7200000",
        ]);
        let sandbox = c.sandbox.limits(Profile::Sandbox);
        let production = c.sandbox.limits(Profile::Production);
        assert_eq!(sandbox.pids_limit, 256);
        assert_eq!(production.pids_limit, 64);
        assert_eq!(sandbox.workspace_size, "256m");
        assert_eq!(production.workspace_size, "1g");
        assert_eq!(production.max_timeout, Duration::from_secs(7200));
        assert_eq!(production.memory_bytes, sandbox.memory_bytes);
        assert_eq!(production.output_cap_bytes, sandbox.output_cap_bytes);
        assert_eq!(production.nofile, 1024);
    }

    #[test]
    fn the_runtime_is_per_profile_and_gvisor_picks_a_name_per_network() {
        let c = resolve(&[]);
        assert_eq!(
            c.sandbox.limits(Profile::Sandbox).runtime,
            SandboxRuntime::Runc
        );
        assert_eq!(c.sandbox.required_runtimes(), vec!["runc"]);
        let c = resolve(&["--production-runtime", "gvisor"]);
        assert_eq!(
            c.sandbox.limits(Profile::Sandbox).runtime,
            SandboxRuntime::Runc
        );
        assert_eq!(
            c.sandbox.limits(Profile::Production).runtime,
            SandboxRuntime::Gvisor
        );
        assert_eq!(
            c.sandbox.required_runtimes(),
            vec!["runc", "runsc", "runsc-egress"]
        );
        let c = resolve(&["--sandbox-runtime", "gvisor", "--gvisor-runtime-name", "gv"]);
        assert_eq!(
            c.sandbox.limits(Profile::Production).runtime,
            SandboxRuntime::Gvisor
        );
        assert_eq!(c.sandbox.oci_runtime(SandboxRuntime::Gvisor, false), "gv");
        assert_eq!(
            c.sandbox.oci_runtime(SandboxRuntime::Gvisor, true),
            "runsc-egress"
        );
        assert_eq!(c.sandbox.oci_runtime(SandboxRuntime::Runc, true), "runc");
        assert!(runtime("kata").is_err());
    }

    #[test]
    fn malformed_values_are_refused() {
        assert!(size("0").is_err() && size("12x").is_err() && size("1G").is_ok());
        assert!(subnets("10.213.0.1/16").is_err() && subnets("10.213.0.0/30").is_err());
        assert!(
            hosts("a.test=127.0.0.1, B.test=::1")
                .unwrap()
                .contains_key("b.test")
        );
        assert!(hosts("nonsense").is_err());
        assert!(usd("-1").is_err() && usd("NaN").is_err());
        assert!(seccomp("unconfined").is_err());
    }
}
