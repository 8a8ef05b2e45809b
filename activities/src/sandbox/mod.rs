//! Docker sandboxes: one fresh, locked-down container per execution.
//!
//! This module owns a container's whole life: create it hardened (no network, every capability
//! dropped, no-new-privileges, read-only root, size-capped tmpfs `/workspace` and `/tmp`, memory
//! with swap equal to it, CPU and pids limits, an init process, a non-root user, labels naming
//! who made it and when it expires), copy files in, run commands in it with bounded output
//! capture and a hard timeout ([`exec`]), and remove it on every path, including when the
//! [`Sandbox`] value is dropped because the activity was cancelled or the worker code failed.
//!
//! What a caller wants is a typed [`SandboxRequest`] (profile, image, network); nothing is read
//! back from labels. The profile's isolation tier picks the OCI runtime: `runc`, or gVisor's
//! `runsc` under one of two engine names (without network, or on an internal egress network),
//! with a pids limit scaled for gVisor's own threads ([`host_pids_limit`]). The container's main process is a `sleep` for the configured maximum
//! lifetime, so even a sandbox whose worker was killed expires by itself; commands run in it
//! through `docker exec` (or, in a pooled sandbox, through a [`standby`] shell started ahead of
//! time, see [`pool`]); [`cgroup`] reads its memory statistics. A [`session`] keeps one sandbox
//! open for many executions of one run.
//!
//! It does not own the engine connection, labels or removal (`docker`), policy, budgets or
//! redaction (the bytes it returns are raw), nor the network of a sandbox with `allowedDomains`
//! (`egress`).

mod cgroup;
mod exec;
mod pool;
pub mod session;
mod standby;

pub use crate::docker::SandboxError;
pub use exec::signal_name;

use crate::config::{Limits, Profile, SandboxConfig, SandboxRuntime};
use crate::docker::{self, Connection, Origin, Registry, label};
use crate::egress::{DomainRule, Egress, Lease};
use bollard::Docker;
use bollard::models::{ContainerCreateBody, HostConfig, ResourcesUlimits};
use bollard::query_parameters::CreateContainerOptionsBuilder;
use standby::Standby;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Bytes kept beyond the output cap so a secret straddling the cap is still whole when the
/// caller redacts; the caller cuts to the cap after redacting.
pub const REDACTION_MARGIN: usize = 8 * 1024;

/// Exit code reported for a command killed at its timeout (128 + SIGKILL).
pub const KILLED_EXIT_CODE: i64 = 137;

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What kind of sandbox a caller wants.
#[derive(Debug, Clone)]
pub struct SandboxRequest {
    /// Who it serves (labels, kill switch); None for a pooled sandbox not handed out yet.
    pub origin: Option<Origin>,
    /// Selects the limits.
    pub profile: Profile,
    /// The image, already checked against the allowlist.
    pub image: String,
    /// Hosts it may reach through the egress proxy; empty means no network device at all.
    pub domains: Vec<DomainRule>,
}

impl SandboxRequest {
    /// The run it is charged to ("" for a pooled sandbox).
    fn run_id(&self) -> &str {
        self.origin.as_ref().map_or("", |o| o.run_id.as_str())
    }

    /// Only the default profile and image without network are pooled: production deploys,
    /// other images and sandboxes with egress always get a fresh sandbox.
    fn poolable(&self, cfg: &SandboxConfig) -> bool {
        self.profile == Profile::Sandbox && self.domains.is_empty() && self.image == cfg.image
    }
}

/// Live byte counts of a running command, read by the heartbeat.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes written to stdout so far.
    pub stdout_bytes: AtomicU64,
    /// Bytes written to stderr so far.
    pub stderr_bytes: AtomicU64,
    /// Where every chunk of output also goes as it arrives (live output), if anywhere.
    pub live: Option<crate::live::LiveCapture>,
}

impl Progress {
    /// Progress that also hands every chunk of output to `live`.
    pub fn live(live: crate::live::LiveCapture) -> Progress {
        Progress {
            live: Some(live),
            ..Progress::default()
        }
    }

    /// The redacted tail of stdout so far (empty without live output).
    pub fn stdout_tail(&self) -> String {
        self.live
            .as_ref()
            .map_or_else(String::new, |l| l.tail(crate::live::Stream::Stdout))
    }

    /// The redacted tail of stderr so far (empty without live output).
    pub fn stderr_tail(&self) -> String {
        self.live
            .as_ref()
            .map_or_else(String::new, |l| l.tail(crate::live::Stream::Stderr))
    }
}

/// What a command did.
#[derive(Debug, Clone, PartialEq)]
pub struct ExecOutcome {
    /// The first `cap + REDACTION_MARGIN` bytes of stdout.
    pub stdout: Vec<u8>,
    /// The first `cap + REDACTION_MARGIN` bytes of stderr.
    pub stderr: Vec<u8>,
    /// Every byte written to stdout.
    pub stdout_bytes: u64,
    /// Every byte written to stderr.
    pub stderr_bytes: u64,
    /// Exit code; [`KILLED_EXIT_CODE`] on timeout.
    pub exit_code: i64,
    /// Killed at its timeout.
    pub timed_out: bool,
    /// A process of the command was killed by the kernel's OOM killer.
    pub oom_killed: bool,
    /// The signal that ended the command, when one did (from an exit code of 128 + n).
    pub signal: Option<&'static str>,
    /// Peak memory of the sandbox so far, bytes, where the engine's cgroup reports it.
    pub peak_memory_bytes: Option<u64>,
    /// Wall time of the command.
    pub duration: Duration,
    /// Requests the egress proxy refused while the command ran.
    pub egress_denied: u64,
    /// The isolation tier the command ran under.
    pub runtime: SandboxRuntime,
    /// The whole sandbox died during the command (gVisor: a memory or process limit ends the
    /// sandbox, not one process).
    pub sandbox_ended: bool,
}

/// Creates sandboxes. Connects to Docker on first use, so a worker starts while Docker is down
/// and every execution meanwhile fails closed with [`SandboxError::Unavailable`].
pub struct SandboxEngine {
    docker: Connection,
    cfg: SandboxConfig,
    owner: String,
    registry: Registry,
    pool: std::sync::Mutex<std::collections::VecDeque<Sandbox>>,
    pool_wanted: tokio::sync::Notify,
    egress: Egress,
    sessions: session::Sessions,
}

impl SandboxEngine {
    /// An engine creating sandboxes labelled with `owner` (the worker's identity).
    pub fn new(
        cfg: SandboxConfig,
        owner: impl Into<String>,
        egress_stop: tokio_util::sync::CancellationToken,
    ) -> Self {
        let owner = owner.into();
        let registry = Registry::default();
        let egress = Egress::new(
            cfg.egress.clone(),
            owner.clone(),
            registry.clone(),
            cfg.max_lifetime,
            egress_stop,
        );
        Self {
            docker: Connection::default(),
            sessions: session::Sessions::new(cfg.max_sessions),
            cfg,
            owner,
            registry,
            pool: Default::default(),
            pool_wanted: tokio::sync::Notify::new(),
            egress,
        }
    }

    /// The sandboxes running now (for the kill switch and the reaper).
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The open sessions (sandboxes kept between executions).
    pub fn sessions(&self) -> &session::Sessions {
        &self.sessions
    }

    /// This engine's owner label (the worker identity).
    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// The configuration sandboxes are made with.
    pub fn config(&self) -> &SandboxConfig {
        &self.cfg
    }

    /// The Docker client, connected with the API version the engine speaks.
    pub async fn docker(&self) -> Result<&Docker, SandboxError> {
        self.docker.get().await
    }

    /// Creates and starts a fresh sandbox as `request` says: it reaches the hosts its domains
    /// allow through the egress proxy, and nothing else; with no domains it has no network
    /// device at all.
    pub async fn start(&self, request: &SandboxRequest) -> Result<Sandbox, SandboxError> {
        let docker = self.docker().await?.clone();
        let cfg = &self.cfg;
        let lifetime = cfg.max_lifetime.as_secs().max(1);
        let run_id = request.run_id().to_string();
        let image = request.image.clone();
        let limits = cfg.limits(request.profile);
        let runtime = limits.runtime;
        let mut all_labels = match &request.origin {
            Some(origin) => {
                let mut l = origin.labels();
                l.insert(label::PROFILE.into(), request.profile.as_str().into());
                l
            }
            None => HashMap::from([(label::POOL.to_string(), "true".to_string())]),
        };
        all_labels.insert(label::IMAGE.into(), image.clone());
        all_labels.insert(label::RUNTIME.into(), runtime.as_str().into());
        all_labels.extend(docker::managed(&self.owner, Some(cfg.max_lifetime)));
        let (uid, gid) = parse_user(&cfg.user);
        let tmpfs = HashMap::from([
            (
                "/workspace".to_string(),
                format!(
                    "rw,exec,nosuid,nodev,size={},uid={uid},gid={gid},mode=0755",
                    limits.workspace_size
                ),
            ),
            (
                "/tmp".to_string(),
                format!("rw,exec,nosuid,nodev,size={},mode=1777", limits.tmp_size),
            ),
        ]);
        let lease = if request.domains.is_empty() {
            None
        } else {
            Some(
                self.egress
                    .lease(&docker, &run_id, request.domains.clone())
                    .await?,
            )
        };
        let mut env = vec![PATH.to_string(), "HOME=/workspace".to_string()];
        if let Some(l) = &lease {
            env.extend(l.env());
        }
        let mut base = docker::hardened();
        // Without an explicit profile the engine applies its default one (checked by a test).
        if let Some(profile) = &limits.seccomp_profile {
            base.security_opt
                .get_or_insert_with(Vec::new)
                .push(format!("seccomp={profile}"));
        }
        let oci_runtime = cfg.oci_runtime(runtime, lease.is_some()).to_string();
        let host_config = HostConfig {
            runtime: Some(oci_runtime.clone()),
            network_mode: Some(lease.as_ref().map_or("none", |l| l.network()).into()),
            // The embedded DNS of a sandbox network forwards to this, which answers nothing:
            // names are resolved by the proxy, never by the sandbox (no DNS tunnels).
            dns: lease.as_ref().map(|_| vec!["127.0.0.1".to_string()]),
            tmpfs: Some(tmpfs),
            memory: Some(limits.memory_bytes),
            memory_swap: Some(limits.memory_bytes),
            nano_cpus: Some(limits.nano_cpus),
            pids_limit: Some(host_pids_limit(limits)),
            ulimits: Some(vec![
                ulimit("nofile", limits.nofile),
                ulimit("core", 0),
                // No RLIMIT_NPROC: it counts a uid's processes across the whole host, and every
                // sandbox runs as the same uid, so one sandbox's fork bomb would stop the others
                // from forking. The per-container pids cgroup limit bounds processes instead.
                ulimit("fsize", cfg.max_written_file_bytes),
            ]),
            ..base
        };
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            cmd: Some(vec!["sleep".into(), lifetime.to_string()]),
            // Only the init and its `sleep` run as uid 0 (with no capabilities and
            // no-new-privileges). Every command runs as `cfg.user`, which therefore cannot
            // signal them: `kill -9 -1` from that user ends a timed-out command's whole process
            // tree, however it forked, and leaves the sandbox alive for the next command.
            user: Some("0:0".into()),
            working_dir: Some("/workspace".into()),
            env: Some(env),
            labels: Some(all_labels),
            network_disabled: Some(lease.is_none()),
            host_config: Some(host_config),
            ..Default::default()
        };
        let name = format!("ae-sbx-{}", uuid::Uuid::new_v4().simple());
        let opts = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = docker
            .create_container(Some(opts), body)
            .await
            .map_err(|e| {
                SandboxError::Unavailable(describe_create_error(&image, &oci_runtime, &e))
            })?;
        let switched = self.registry.add(&created.id, &run_id);
        let sandbox = Sandbox {
            created: Instant::now(),
            docker,
            id: created.id,
            user: cfg.user.clone(),
            keep_bytes: limits.output_cap_bytes + REDACTION_MARGIN,
            removed: Arc::new(AtomicBool::new(false)),
            registry: self.registry.clone(),
            switched,
            lease: std::sync::Mutex::new(lease),
            standby: Default::default(),
            held: Default::default(),
            runtime,
        };
        if let Err(e) = sandbox.docker.start_container(&sandbox.id, None).await {
            // Force removal also ends whatever a failed gVisor start left running (the sandbox,
            // gofer and shim processes); the container is never created with auto-remove.
            sandbox.destroy().await;
            return Err(SandboxError::Unavailable(format!(
                "cannot start sandbox: {e}"
            )));
        }
        Ok(sandbox)
    }

    /// The OCI runtimes some profile needs that the engine has not registered (empty when all
    /// are there). Fails when Docker cannot be asked. A sandbox names its runtime explicitly, so
    /// a missing one is never replaced by the engine's default: creation fails instead.
    pub async fn missing_runtimes(&self) -> Result<Vec<String>, SandboxError> {
        let info = self
            .docker()
            .await?
            .info()
            .await
            .map_err(|e| SandboxError::Unavailable(format!("cannot ask Docker: {e}")))?;
        let registered = info.runtimes.unwrap_or_default();
        Ok(self
            .cfg
            .required_runtimes()
            .into_iter()
            .filter(|name| !registered.contains_key(*name))
            .map(str::to_string)
            .collect())
    }

    /// Removes every sandbox and network labelled with this engine's owner. For graceful
    /// shutdown and for tests that must leave nothing behind.
    pub async fn remove_own(&self) -> Result<usize, SandboxError> {
        docker::remove_owned(self.docker().await?, &self.owner).await
    }
}

/// One running sandbox. Removed by [`Sandbox::destroy`], or in the background when released
/// or dropped.
pub struct Sandbox {
    created: Instant,
    docker: Docker,
    id: String,
    user: String,
    keep_bytes: usize,
    removed: Arc<AtomicBool>,
    registry: Registry,
    switched: Arc<AtomicBool>,
    lease: std::sync::Mutex<Option<Lease>>,
    standby: std::sync::Mutex<Option<Standby>>,
    /// Kept alive until the container is gone (see [`Sandbox::release_holding`]).
    held: std::sync::Mutex<Option<Box<dyn Send>>>,
    /// The isolation tier it runs under.
    runtime: SandboxRuntime,
}

impl Sandbox {
    /// Requests the egress proxy refused for this sandbox so far (0 without network).
    pub fn egress_denied(&self) -> u64 {
        self.lease
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |l| l.denied())
    }

    fn take_lease(&self) -> Option<Lease> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// True when the kill switch killed this sandbox.
    pub fn killed_by_switch(&self) -> bool {
        self.switched.load(Ordering::SeqCst)
    }

    /// The isolation tier it runs under.
    pub fn runtime(&self) -> SandboxRuntime {
        self.runtime
    }

    /// The container id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The first 12 characters of the container id, as `docker ps` shows it.
    pub fn short_id(&self) -> &str {
        &self.id[..12.min(self.id.len())]
    }

    /// Removes the container in the background: the caller's result need not wait for Docker.
    pub fn release(self) {
        drop(self);
    }

    /// [`Sandbox::release`], keeping `held` alive until the container is gone: a run's
    /// concurrency slot must not free before its sandbox does.
    pub fn release_holding(self, held: impl Send + 'static) {
        *self.held.lock().unwrap_or_else(|e| e.into_inner()) = Some(Box::new(held));
        drop(self);
    }

    /// Whether the container still runs.
    async fn is_running(&self) -> bool {
        self.docker
            .inspect_container(&self.id, None)
            .await
            .ok()
            .and_then(|c| c.state)
            .and_then(|s| s.running)
            .unwrap_or(false)
    }

    /// Kills and removes the container at once (idempotent).
    pub async fn kill(&self) {
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        docker::remove_container(&self.docker, &self.id).await;
        self.registry.remove(&self.id);
        // The network goes once the sandbox has left it.
        drop(self.take_lease());
    }

    /// Removes the container; the end of every sandbox's life.
    pub async fn destroy(&self) {
        self.kill().await;
    }
}

impl Drop for Sandbox {
    fn drop(&mut self) {
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        // Dropped without destroy(): cancelled mid-await or an error path. Remove in the
        // background; the runtime outlives the activity.
        if let Ok(handle) = tokio::runtime::Handle::try_current() {
            let docker = self.docker.clone();
            let id = self.id.clone();
            let registry = self.registry.clone();
            let lease = self.take_lease();
            let held = self.held.lock().unwrap_or_else(|e| e.into_inner()).take();
            handle.spawn(async move {
                docker::remove_container(&docker, &id).await;
                registry.remove(&id);
                drop(lease);
                drop(held);
            });
        }
    }
}

/// Host processes and threads one idle gVisor sandbox needs (measured: about 53).
pub const GVISOR_BASE_PIDS: i64 = 64;
/// Host processes and threads each guest process of a gVisor sandbox adds (measured: 8 to 10
/// on the ptrace platform).
pub const GVISOR_PIDS_PER_PROCESS: i64 = 10;

/// The engine's pids limit for a sandbox of `limits`. The configured limit counts the command's
/// processes: under runc that is the host count; under gVisor the host sees the sandbox's own
/// kernel threads plus several per guest process, and gVisor does not enforce the limit inside,
/// so the host limit is scaled to let about that many guest processes run. Reaching it ends the
/// whole gVisor sandbox (the host stays safe).
pub fn host_pids_limit(limits: &Limits) -> i64 {
    match limits.runtime {
        SandboxRuntime::Runc => limits.pids_limit,
        SandboxRuntime::Gvisor => limits
            .pids_limit
            .saturating_mul(GVISOR_PIDS_PER_PROCESS)
            .saturating_add(GVISOR_BASE_PIDS),
    }
}

fn ulimit(name: &str, value: i64) -> ResourcesUlimits {
    ResourcesUlimits {
        name: Some(name.into()),
        soft: Some(value),
        hard: Some(value),
    }
}

/// `uid:gid` as numbers, for tmpfs ownership; nobody (65534) when not numeric.
pub fn parse_user(user: &str) -> (u64, u64) {
    let mut it = user.split(':');
    let uid = it.next().and_then(|u| u.parse().ok()).unwrap_or(65534);
    let gid = it.next().and_then(|g| g.parse().ok()).unwrap_or(uid);
    (uid, gid)
}

fn describe_create_error(image: &str, runtime: &str, e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. }
            if message.contains("runtime") =>
        {
            format!(
                "the Docker engine cannot run OCI runtime {runtime:?} ({message}); register it with `scripts/install-deps.sh --gvisor`"
            )
        }
        bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        } => format!(
            "sandbox image {image:?} is missing on the Docker engine; build it with `ae-worker image build`"
        ),
        other => format!("cannot create sandbox: {other}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_numeric_users() {
        assert_eq!(parse_user("1000:1001"), (1000, 1001));
        assert_eq!(parse_user("1000"), (1000, 1000));
        assert_eq!(parse_user("nobody"), (65534, 65534));
    }

    #[test]
    fn gvisor_gets_a_host_pids_limit_scaled_for_its_own_threads() {
        let runc = Limits::default();
        assert_eq!(host_pids_limit(&runc), 256);
        let gvisor = Limits {
            runtime: SandboxRuntime::Gvisor,
            ..Limits::default()
        };
        assert_eq!(host_pids_limit(&gvisor), 256 * 10 + 64);
        let huge = Limits {
            pids_limit: i64::MAX,
            ..gvisor
        };
        assert_eq!(host_pids_limit(&huge), i64::MAX);
    }
}
