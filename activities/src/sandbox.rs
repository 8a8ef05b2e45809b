//! Docker sandboxes through bollard: one fresh, locked-down container per execution.
//!
//! This module owns a container's whole life: create it hardened (no network, every capability
//! dropped, no-new-privileges, read-only root, size-capped tmpfs `/workspace` and `/tmp`, memory
//! with swap equal to it, CPU and pids limits, an init process, a non-root user, labels naming
//! who made it and when it expires), copy files in, run commands in it with bounded output
//! capture and a hard timeout, and remove it on every path, including when the [`Sandbox`]
//! value is dropped because the activity was cancelled or the worker code failed.
//!
//! The container's main process is a `sleep` for the configured maximum lifetime, so even a
//! sandbox whose worker was killed expires by itself; commands run in it through `docker exec`
//! (or, in a pooled sandbox, through a standby shell started ahead of time). It also keeps the
//! warm pool. It does not own policy, budgets or redaction (the bytes it returns are raw), nor
//! the network of a sandbox with `allowedDomains` (see `egress`).

use crate::config::SandboxConfig;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecResults};
use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, ResourcesUlimits};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, ListContainersOptionsBuilder, ListNetworksOptionsBuilder,
    RemoveContainerOptionsBuilder,
};
use futures::StreamExt;
use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::AsyncWriteExt;
use tokio::sync::OnceCell;

/// Label present on every container this project creates.
pub const LABEL_MANAGED: &str = "ae.managed";
/// Label naming the worker process that created the container.
pub const LABEL_OWNER: &str = "ae.owner";
/// Label naming the image a sandbox runs (also how a caller asks `start` for a non-default one).
pub const LABEL_IMAGE: &str = "ae.image";
/// Label holding the unix time after which the container must not exist.
pub const LABEL_EXPIRES: &str = "ae.expires";
/// Label holding the unix time a sandbox network was created.
pub const LABEL_CREATED: &str = "ae.created";

/// Bytes kept beyond the output cap so a secret straddling the cap is still whole when the
/// caller redacts; the caller cuts to the cap after redacting.
pub const REDACTION_MARGIN: usize = 8 * 1024;

/// Exit code reported for a command killed at its timeout (128 + SIGKILL).
pub const KILLED_EXIT_CODE: i64 = 137;

const PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// Why a sandbox operation failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SandboxError {
    /// Docker is unreachable, or refused to create or start the sandbox (e.g. image missing).
    #[error("sandbox unavailable: {0}")]
    Unavailable(String),
    /// The sandbox broke after the command had started.
    #[error("sandbox failed during execution: {0}")]
    Failed(String),
    /// Uploaded files could not be unpacked in the sandbox.
    #[error("workspace upload failed: {0}")]
    Upload(String),
}

/// Live byte counts of a running command, read by the heartbeat.
#[derive(Debug, Default)]
pub struct Progress {
    /// Bytes written to stdout so far.
    pub stdout_bytes: AtomicU64,
    /// Bytes written to stderr so far.
    pub stderr_bytes: AtomicU64,
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
}

/// Creates sandboxes. Connects to Docker on first use, so a worker starts while Docker is down
/// and every execution meanwhile fails closed with [`SandboxError::Unavailable`].
pub struct SandboxEngine {
    docker: OnceCell<Docker>,
    cfg: SandboxConfig,
    owner: String,
    registry: crate::control::Registry,
    pool: std::sync::Mutex<std::collections::VecDeque<Sandbox>>,
    pool_wanted: tokio::sync::Notify,
    egress: crate::egress::Egress,
}

impl SandboxEngine {
    /// An engine creating sandboxes labelled with `owner` (the worker's identity).
    pub fn new(cfg: SandboxConfig, owner: impl Into<String>) -> Self {
        let owner = owner.into();
        let registry = crate::control::Registry::default();
        let egress = crate::egress::Egress::new(
            cfg.egress.clone(),
            owner.clone(),
            registry.clone(),
            cfg.max_lifetime,
        );
        Self {
            docker: OnceCell::new(),
            cfg,
            owner,
            registry,
            pool: Default::default(),
            pool_wanted: tokio::sync::Notify::new(),
            egress,
        }
    }

    /// A sandbox for one execution: a healthy pre-started one from the warm pool when there is
    /// one, else a fresh one. Either way it is used once and then destroyed.
    pub async fn take(&self, labels: HashMap<String, String>) -> Result<Sandbox, SandboxError> {
        let run_id = labels.get("ae.run-id").cloned().unwrap_or_default();
        let image = labels.get(LABEL_IMAGE).unwrap_or(&self.cfg.image);
        if *image != self.cfg.image {
            // Only the default image is pooled.
            return self.start(labels).await;
        }
        while let Some(sandbox) = self.pop_pooled() {
            self.pool_wanted.notify_one();
            if sandbox.created.elapsed() < self.cfg.pool_max_age && sandbox.is_alive().await {
                self.registry.assign(&sandbox.id, &run_id);
                tracing::info!(
                    sandbox = &sandbox.id[..12],
                    workflow_id = labels
                        .get("ae.workflow-id")
                        .map(String::as_str)
                        .unwrap_or("-"),
                    activity_id = labels
                        .get("ae.activity-id")
                        .map(String::as_str)
                        .unwrap_or("-"),
                    "sandbox taken from the warm pool"
                );
                return Ok(sandbox);
            }
            sandbox.release();
        }
        self.start(labels).await
    }

    fn pop_pooled(&self) -> Option<Sandbox> {
        self.pool
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .pop_front()
    }

    /// Keeps `cfg.pool_size` healthy sandboxes ready, replacing aged ones; runs forever.
    pub async fn run_pool(&self) {
        if self.cfg.pool_size == 0 {
            return;
        }
        loop {
            // Replace aged sandboxes.
            let aged: Vec<Sandbox> = {
                let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
                let (old, fresh): (Vec<_>, Vec<_>) = pool
                    .drain(..)
                    .partition(|s| s.created.elapsed() >= self.cfg.pool_max_age);
                pool.extend(fresh);
                old
            };
            for s in aged {
                s.release();
            }
            let have = self.pool.lock().unwrap_or_else(|e| e.into_inner()).len();
            if have < self.cfg.pool_size {
                let labels = HashMap::from([("ae.pool".to_string(), "true".to_string())]);
                match self.start(labels).await {
                    Ok(s) => match s.health_check().await.and(s.prepare_standby().await) {
                        Ok(()) => {
                            self.pool
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .push_back(s);
                            continue;
                        }
                        Err(e) => {
                            tracing::warn!(error = %e, "pooled sandbox failed its health check");
                            s.release();
                        }
                    },
                    Err(e) => tracing::warn!(error = %e, "cannot fill the warm pool"),
                }
                tokio::time::sleep(Duration::from_secs(2)).await;
                continue;
            }
            let _ = tokio::time::timeout(Duration::from_secs(5), self.pool_wanted.notified()).await;
        }
    }

    /// How many sandboxes wait in the pool.
    pub fn pooled(&self) -> usize {
        self.pool.lock().unwrap_or_else(|e| e.into_inner()).len()
    }

    /// The sandboxes running now (for the kill switch and the reaper).
    pub fn registry(&self) -> &crate::control::Registry {
        &self.registry
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
        self.docker
            .get_or_try_init(|| async {
                let docker = Docker::connect_with_defaults()
                    .map_err(|e| SandboxError::Unavailable(format!("cannot reach Docker: {e}")))?;
                // The engine may be older than bollard's default API version.
                docker
                    .negotiate_version()
                    .await
                    .map_err(|e| SandboxError::Unavailable(format!("cannot reach Docker: {e}")))
            })
            .await
    }

    /// Creates and starts a fresh sandbox without network. `labels` are added to the standard
    /// ones.
    pub async fn start(&self, labels: HashMap<String, String>) -> Result<Sandbox, SandboxError> {
        self.create(labels, Vec::new()).await
    }

    /// Creates and starts a fresh sandbox that reaches the hosts `domains` allow through the
    /// egress proxy, and nothing else. With no domains it has no network device at all.
    pub async fn start_networked(
        &self,
        labels: HashMap<String, String>,
        domains: Vec<crate::egress::DomainRule>,
    ) -> Result<Sandbox, SandboxError> {
        self.create(labels, domains).await
    }

    async fn create(
        &self,
        labels: HashMap<String, String>,
        domains: Vec<crate::egress::DomainRule>,
    ) -> Result<Sandbox, SandboxError> {
        let docker = self.docker().await?.clone();
        let cfg = &self.cfg;
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        let lifetime = cfg.max_lifetime.as_secs().max(1);
        let run_id = labels.get("ae.run-id").cloned().unwrap_or_default();
        let image = labels
            .get(LABEL_IMAGE)
            .cloned()
            .unwrap_or_else(|| cfg.image.clone());
        let profile = labels
            .get("ae.profile")
            .map(String::as_str)
            .unwrap_or("sandbox");
        let limits = cfg.profile(profile);
        let mut all_labels = labels;
        all_labels.insert(LABEL_IMAGE.into(), image.clone());
        all_labels.insert(LABEL_MANAGED.into(), "true".into());
        all_labels.insert(LABEL_OWNER.into(), self.owner.clone());
        all_labels.insert(LABEL_EXPIRES.into(), (now.as_secs() + lifetime).to_string());
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
        let lease = if domains.is_empty() {
            None
        } else {
            Some(self.egress.lease(&docker, &run_id, domains).await?)
        };
        let mut env = vec![PATH.to_string(), "HOME=/workspace".to_string()];
        if let Some(l) = &lease {
            env.extend(l.env());
        }
        let mut base = hardened();
        // Without an explicit profile the engine applies its default one (checked by a test).
        if let Some(profile) = &limits.seccomp_profile {
            base.security_opt
                .get_or_insert_with(Vec::new)
                .push(format!("seccomp={profile}"));
        }
        let host_config = HostConfig {
            network_mode: Some(lease.as_ref().map_or("none", |l| l.network()).into()),
            // The embedded DNS of a sandbox network forwards to this, which answers nothing:
            // names are resolved by the proxy, never by the sandbox (no DNS tunnels).
            dns: lease.as_ref().map(|_| vec!["127.0.0.1".to_string()]),
            tmpfs: Some(tmpfs),
            memory: Some(limits.memory_bytes),
            memory_swap: Some(limits.memory_bytes),
            nano_cpus: Some(limits.nano_cpus),
            pids_limit: Some(limits.pids_limit),
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
            .map_err(|e| SandboxError::Unavailable(describe_create_error(&image, &e)))?;
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
        };
        if let Err(e) = sandbox.docker.start_container(&sandbox.id, None).await {
            sandbox.destroy().await;
            return Err(SandboxError::Unavailable(format!(
                "cannot start sandbox: {e}"
            )));
        }
        Ok(sandbox)
    }

    /// Removes every sandbox labelled with this engine's owner. For graceful shutdown and for
    /// tests that must leave nothing behind.
    pub async fn remove_own(&self) -> Result<usize, SandboxError> {
        let docker = self.docker().await?;
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{LABEL_OWNER}={}", self.owner)],
        )]);
        let opts = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = docker
            .list_containers(Some(opts))
            .await
            .map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        let mut n = 0;
        for c in list {
            if let Some(id) = c.id {
                let opts = RemoveContainerOptionsBuilder::default().force(true).build();
                if docker.remove_container(&id, Some(opts)).await.is_ok() {
                    n += 1;
                }
            }
        }
        // The relay went with the containers; now the sandbox networks are empty.
        let nets = docker
            .list_networks(Some(
                ListNetworksOptionsBuilder::default()
                    .filters(&filters)
                    .build(),
            ))
            .await
            .map_err(|e| SandboxError::Unavailable(e.to_string()))?;
        for net in nets {
            if let Some(name) = net.name {
                crate::egress::remove_network(docker, &name, None).await;
            }
        }
        Ok(n)
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
    registry: crate::control::Registry,
    switched: Arc<AtomicBool>,
    lease: std::sync::Mutex<Option<crate::egress::Lease>>,
    standby: std::sync::Mutex<Option<Standby>>,
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

    fn take_lease(&self) -> Option<crate::egress::Lease> {
        self.lease.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// True when the kill switch killed this sandbox.
    pub fn killed_by_switch(&self) -> bool {
        self.switched.load(Ordering::SeqCst)
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

    /// Whether a pooled sandbox is still usable. With a standby shell this is a local check of
    /// its output stream, which the engine closes when the container dies: no API round trip on
    /// the hot path.
    async fn is_alive(&self) -> bool {
        let standby = {
            let mut standby = self.standby.lock().unwrap_or_else(|e| e.into_inner());
            // Pending: the shell waits for its command, as it should. Anything else (the
            // stream ended, broke, or the shell printed something) means it is not usable.
            standby
                .as_mut()
                .map(|s| futures::FutureExt::now_or_never(s.output.next()).is_none())
        };
        match standby {
            Some(alive) => alive,
            None => self.is_running().await,
        }
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

    /// Runs `true` as the command user: the sandbox can exec and is ready.
    async fn health_check(&self) -> Result<(), SandboxError> {
        let outcome = self
            .exec("true", &[], Duration::from_secs(10), &Progress::default())
            .await?;
        if outcome.exit_code == 0 {
            Ok(())
        } else {
            Err(SandboxError::Failed(format!(
                "health check exited {}",
                outcome.exit_code
            )))
        }
    }

    /// Unpacks an uncompressed tar (built by `workspace::pack`) into `/workspace`.
    pub async fn upload(&self, tar: Vec<u8>) -> Result<(), SandboxError> {
        let (exec_id, mut output, mut input) = self
            .open_exec(&["tar", "-x", "-f", "-", "-C", "/workspace"], &[], true)
            .await
            .map_err(|e| match e {
                SandboxError::Failed(m) => SandboxError::Unavailable(format!("upload: {m}")),
                other => other,
            })?;
        let transfer = async {
            input.write_all(&tar).await?;
            input.flush().await?;
            // tar stops at the archive's end marker; shutting down also closes its stdin.
            input.shutdown().await?;
            Ok::<_, std::io::Error>(())
        };
        let mut messages = Vec::new();
        let drain = async {
            while let Some(item) = output.next().await {
                match item {
                    Ok(m) if messages.len() < 4096 => messages.extend_from_slice(m.as_ref()),
                    Ok(_) => {}
                    Err(e) => return Err(e.to_string()),
                }
            }
            Ok(())
        };
        let result = tokio::time::timeout(Duration::from_secs(120), async {
            let (t, d) = tokio::join!(transfer, drain);
            t.map_err(|e| e.to_string())?;
            d
        })
        .await;
        match result {
            Err(_) => return Err(SandboxError::Upload("timed out after 120 s".into())),
            Ok(Err(e)) => return Err(SandboxError::Upload(e)),
            Ok(Ok(())) => {}
        }
        let code = self.exit_code(&exec_id).await?;
        if code != 0 {
            return Err(SandboxError::Upload(format!(
                "tar exited with {code}: {}",
                String::from_utf8_lossy(&messages).trim()
            )));
        }
        Ok(())
    }

    /// Runs `/bin/sh -c command` in `/workspace` with `env` (`NAME=value` strings). At `timeout`
    /// the whole sandbox is killed and the outcome says `timed_out`.
    pub async fn exec(
        &self,
        command: &str,
        env: &[String],
        timeout: Duration,
        progress: &Progress,
    ) -> Result<ExecOutcome, SandboxError> {
        let started = Instant::now();
        let denied_before = self.egress_denied();
        let standby = self
            .standby
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take();
        let (exec_id, mut output) = match standby {
            Some(standby) => standby.run(command, env).await?,
            None => self.start_exec(command, env).await?,
        };
        let mut stdout = Capture::new(self.keep_bytes);
        let mut stderr = Capture::new(self.keep_bytes);
        let deadline = tokio::time::Instant::now() + timeout;
        let mut timed_out = false;
        loop {
            tokio::select! {
                item = output.next() => match item {
                    None => break,
                    Some(Ok(item)) => {
                        route(item, &mut stdout, &mut stderr);
                        progress.stdout_bytes.store(stdout.total, Ordering::Relaxed);
                        progress.stderr_bytes.store(stderr.total, Ordering::Relaxed);
                    }
                    Some(Err(e)) => {
                        return Err(SandboxError::Failed(format!("output stream broke: {e}")));
                    }
                },
                _ = tokio::time::sleep_until(deadline) => {
                    timed_out = true;
                    break;
                }
            }
        }
        if timed_out {
            // SIGKILL every process of the command's user (ignoring SIGTERM does not help,
            // nor does double-forking), then collect what they printed until the stream
            // closes. If it does not close, the whole sandbox goes.
            let killed = self.kill_user_processes().await;
            let drained = tokio::time::timeout(Duration::from_secs(2), async {
                while let Some(Ok(item)) = output.next().await {
                    route(item, &mut stdout, &mut stderr);
                }
            })
            .await;
            if !killed || drained.is_err() {
                self.kill().await;
            }
        }
        let duration = started.elapsed();
        let exit_code = if timed_out {
            KILLED_EXIT_CODE
        } else {
            self.exit_code(&exec_id).await?
        };
        let stats = if timed_out && self.removed.load(Ordering::SeqCst) {
            CgroupStats::default()
        } else {
            self.cgroup_stats().await
        };
        let oom_killed = !timed_out && exit_code == KILLED_EXIT_CODE && stats.oom_kills > 0;
        Ok(ExecOutcome {
            signal: signal_name(exit_code),
            peak_memory_bytes: stats.peak_memory_bytes,
            stdout: stdout.buf,
            stderr: stderr.buf,
            stdout_bytes: stdout.total,
            stderr_bytes: stderr.total,
            exit_code,
            timed_out,
            oom_killed,
            duration,
            egress_denied: self.egress_denied().saturating_sub(denied_before),
        })
    }

    /// Creates and starts `sh -c command` as the command user; returns its id and output.
    async fn start_exec(
        &self,
        command: &str,
        env: &[String],
    ) -> Result<(String, Output), SandboxError> {
        let (id, output, _) = self
            .open_exec(&["/bin/sh", "-c", command], env, false)
            .await?;
        Ok((id, output))
    }

    /// Starts the standby shell of a pooled sandbox (see [`Standby`]).
    async fn prepare_standby(&self) -> Result<(), SandboxError> {
        let (exec_id, output, input) = self.open_exec(&["/bin/sh", "-s"], &[], true).await?;
        *self.standby.lock().unwrap_or_else(|e| e.into_inner()) = Some(Standby {
            exec_id,
            output,
            input,
        });
        Ok(())
    }

    /// Creates and starts `cmd` as the command user in `/workspace`, attached to its output
    /// (and stdin when asked; otherwise stdin is /dev/null).
    async fn open_exec(
        &self,
        cmd: &[&str],
        env: &[String],
        stdin: bool,
    ) -> Result<(String, Output, Input), SandboxError> {
        let exec = self
            .docker
            .create_exec(
                &self.id,
                CreateExecOptions {
                    cmd: Some(cmd.iter().map(|c| c.to_string()).collect()),
                    env: Some(env.to_vec()),
                    attach_stdin: Some(stdin),
                    attach_stdout: Some(true),
                    attach_stderr: Some(true),
                    user: Some(self.user.clone()),
                    working_dir: Some("/workspace".to_string()),
                    ..Default::default()
                },
            )
            .await
            .map_err(|e| SandboxError::Failed(format!("cannot create exec: {e}")))?;
        match self.docker.start_exec(&exec.id, None).await {
            Ok(StartExecResults::Attached { output, input }) => Ok((exec.id, output, input)),
            Ok(_) => Err(SandboxError::Failed("exec did not attach".into())),
            Err(e) => Err(SandboxError::Failed(format!("cannot start exec: {e}"))),
        }
    }

    async fn exit_code(&self, exec_id: &str) -> Result<i64, SandboxError> {
        // The stream ends when the process closes its output; the exit code follows shortly.
        for _ in 0..50 {
            let info = self
                .docker
                .inspect_exec(exec_id)
                .await
                .map_err(|e| SandboxError::Failed(format!("cannot inspect exec: {e}")))?;
            if info.running != Some(true)
                && let Some(code) = info.exit_code
            {
                return Ok(code);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Err(SandboxError::Failed(
            "exit code never became available".into(),
        ))
    }

    /// Sends SIGKILL to every process of the command user (not to init, which is uid 0).
    async fn kill_user_processes(&self) -> bool {
        self.run_script(&["kill -9 -1"], 0).await.is_ok()
    }

    /// Runs a short helper `sh -c script [args...]` as the command user until it exits, and
    /// returns the first `keep` bytes of its stdout and the exec id (for its exit code).
    async fn run_script(
        &self,
        script: &[&str],
        keep: usize,
    ) -> Result<(Vec<u8>, String), SandboxError> {
        let mut cmd = vec!["/bin/sh", "-c"];
        cmd.extend_from_slice(script);
        let (exec_id, mut output, _) = self.open_exec(&cmd, &[], false).await?;
        let mut out = Capture::new(keep);
        let mut ignored = Capture::new(0);
        while let Some(Ok(item)) = output.next().await {
            route(item, &mut out, &mut ignored);
        }
        Ok((out.buf, exec_id))
    }

    /// OOM kills and peak memory of this sandbox's memory cgroup. Read from the host's cgroup
    /// filesystem when the worker runs beside the engine (microseconds), else from inside the
    /// sandbox with an exec.
    async fn cgroup_stats(&self) -> CgroupStats {
        if let Some(stats) = host_cgroup_stats(&self.id) {
            return stats;
        }
        self.cgroup_stats_by_exec().await
    }

    /// Right after an OOM kill the cgroup may still be at its limit and an exec fail: retry
    /// briefly.
    async fn cgroup_stats_by_exec(&self) -> CgroupStats {
        for attempt in 0..10 {
            let stats = self.read_cgroup_stats().await;
            if stats.peak_memory_bytes.is_some() {
                return stats;
            }
            tracing::debug!(attempt, "cgroup stats not readable yet");
            tokio::time::sleep(Duration::from_millis(50 * (attempt + 1))).await;
        }
        CgroupStats::default()
    }

    async fn read_cgroup_stats(&self) -> CgroupStats {
        let script = "cd /sys/fs/cgroup; for f in memory.events memory.peak memory/memory.oom_control memory/memory.max_usage_in_bytes; do [ -r $f ] && echo \"$f $(cat $f | tr '\\n' ' ')\"; done";
        match self.run_script(&[script], 64 * 1024).await {
            Ok((text, _)) => CgroupStats::parse(&String::from_utf8_lossy(&text)),
            Err(_) => CgroupStats::default(),
        }
    }

    /// Reads files the command left under `/workspace`, at most `cap` bytes each. A path that
    /// resolves (through symlinks) outside `/workspace` is refused inside the sandbox.
    pub async fn read_file(&self, rel: &str, cap: usize) -> Result<Option<Vec<u8>>, SandboxError> {
        let script = format!(
            "p=$(realpath \"/workspace/$1\" 2>/dev/null) || exit 44; case \"$p\" in /workspace/*) [ -f \"$p\" ] || exit 44; head -c {} \"$p\";; *) exit 45;; esac",
            cap + 1
        );
        let (data, exec_id) = self
            .run_script(&[&script, "sh", rel], cap + 1)
            .await
            .map_err(|e| SandboxError::Failed(format!("cannot read {rel}: {e}")))?;
        match self.exit_code(&exec_id).await? {
            0 => Ok(Some(data)),
            44 => Ok(None),
            45 => Err(SandboxError::Upload(format!(
                "{rel} resolves outside /workspace"
            ))),
            code => Err(SandboxError::Failed(format!("reading {rel} exited {code}"))),
        }
    }

    /// Kills and removes the container at once (idempotent).
    pub async fn kill(&self) {
        if self.removed.swap(true, Ordering::SeqCst) {
            return;
        }
        remove(&self.docker, &self.id).await;
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
            handle.spawn(async move {
                remove(&docker, &id).await;
                registry.remove(&id);
                drop(lease);
            });
        }
    }
}

/// The hardening every container this project starts gets (sandboxes and the egress relay): no
/// capabilities, no-new-privileges, read-only root, an init, never privileged, no log driver
/// (commands' output is streamed through exec; main processes print nothing). Callers add
/// network, limits and mounts.
pub(crate) fn hardened() -> HostConfig {
    HostConfig {
        cap_drop: Some(vec!["ALL".into()]),
        security_opt: Some(vec!["no-new-privileges:true".into()]),
        readonly_rootfs: Some(true),
        init: Some(true),
        privileged: Some(false),
        log_config: Some(HostConfigLogConfig {
            typ: Some("none".into()),
            config: None,
        }),
        ..Default::default()
    }
}

/// Force-removes a container (and its anonymous volumes), retrying briefly; gone is fine.
pub(crate) async fn remove(docker: &Docker, id: &str) {
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    for attempt in 0..3 {
        match docker.remove_container(id, Some(opts.clone())).await {
            Ok(()) => return,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return,
            // 409: removal already in progress.
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 409, ..
            }) => return,
            Err(e) => {
                tracing::warn!(container = id, attempt, error = %e, "sandbox removal failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

type Output = std::pin::Pin<
    Box<dyn futures::Stream<Item = Result<LogOutput, bollard::errors::Error>> + Send>,
>;

type Input = std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>;

/// A shell started ahead of time in a pooled sandbox, as the command user in `/workspace`,
/// waiting on stdin for the one command it will become. Handing out a pooled sandbox then
/// costs no `docker exec` round trips (create, start: most of a pooled execution's time);
/// the command still runs exactly as through `docker exec` (same user, directory, environment,
/// stdin from /dev/null), and the exit code still comes from the engine.
struct Standby {
    exec_id: String,
    output: Output,
    input: Input,
}

impl Standby {
    /// Sends the command; returns the exec id and output like [`Sandbox::start_exec`].
    async fn run(
        mut self,
        command: &str,
        env: &[String],
    ) -> Result<(String, Output), SandboxError> {
        let script = standby_script(command, env);
        let sent = async {
            self.input.write_all(script.as_bytes()).await?;
            self.input.flush().await?;
            self.input.shutdown().await
        };
        sent.await
            .map_err(|e| SandboxError::Failed(format!("standby shell is gone: {e}")))?;
        Ok((self.exec_id, self.output))
    }
}

/// The script the standby shell reads: export the environment, then become the command.
fn standby_script(command: &str, env: &[String]) -> String {
    let mut script = String::new();
    for pair in env {
        if let Some((name, value)) = pair.split_once('=') {
            script.push_str(&format!("export {name}={}\n", shell_quote(value)));
        }
    }
    script.push_str(&format!(
        "exec /bin/sh -c {} </dev/null\n",
        shell_quote(command)
    ));
    script
}

/// Single-quotes `s` for sh: every byte literal.
fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// What the sandbox's memory cgroup says.
#[derive(Debug, Default, Clone, PartialEq)]
struct CgroupStats {
    oom_kills: u64,
    peak_memory_bytes: Option<u64>,
}

impl CgroupStats {
    /// Parses `file value...` lines written by [`Sandbox::cgroup_stats`].
    fn parse(text: &str) -> Self {
        let mut stats = CgroupStats::default();
        for line in text.lines() {
            let mut words = line.split_whitespace();
            let Some(file) = words.next() else { continue };
            let rest: Vec<&str> = words.collect();
            match file {
                "memory.events" | "memory/memory.oom_control" => {
                    for pair in rest.chunks(2) {
                        if let [k, v] = pair
                            && *k == "oom_kill"
                        {
                            stats.oom_kills += v.parse::<u64>().unwrap_or(0);
                        }
                    }
                }
                "memory.peak" | "memory/memory.max_usage_in_bytes" => {
                    stats.peak_memory_bytes = rest.first().and_then(|v| v.parse().ok());
                }
                _ => {}
            }
        }
        stats
    }
}

/// Reads a container's memory cgroup from the host, for the cgroupfs and systemd drivers on
/// cgroup v1 and v2. None when none of the places exist (e.g. a remote engine).
fn host_cgroup_stats(id: &str) -> Option<CgroupStats> {
    let v1 = [
        format!("/sys/fs/cgroup/memory/docker/{id}"),
        format!("/sys/fs/cgroup/memory/system.slice/docker-{id}.scope"),
    ];
    for dir in &v1 {
        let Ok(oom) = std::fs::read_to_string(format!("{dir}/memory.oom_control")) else {
            continue;
        };
        let peak = std::fs::read_to_string(format!("{dir}/memory.max_usage_in_bytes")).ok()?;
        let text = format!(
            "memory/memory.oom_control {}\nmemory/memory.max_usage_in_bytes {peak}",
            oom.replace('\n', " ")
        );
        return Some(CgroupStats::parse(&text));
    }
    let v2 = [
        format!("/sys/fs/cgroup/docker/{id}"),
        format!("/sys/fs/cgroup/system.slice/docker-{id}.scope"),
    ];
    for dir in &v2 {
        let Ok(events) = std::fs::read_to_string(format!("{dir}/memory.events")) else {
            continue;
        };
        let peak = std::fs::read_to_string(format!("{dir}/memory.peak")).unwrap_or_default();
        let text = format!(
            "memory.events {}\nmemory.peak {peak}",
            events.replace('\n', " ")
        );
        return Some(CgroupStats::parse(&text));
    }
    None
}

/// The signal behind an exit code of 128 + n.
pub fn signal_name(exit_code: i64) -> Option<&'static str> {
    const NAMES: [&str; 32] = [
        "",
        "SIGHUP",
        "SIGINT",
        "SIGQUIT",
        "SIGILL",
        "SIGTRAP",
        "SIGABRT",
        "SIGBUS",
        "SIGFPE",
        "SIGKILL",
        "SIGUSR1",
        "SIGSEGV",
        "SIGUSR2",
        "SIGPIPE",
        "SIGALRM",
        "SIGTERM",
        "SIGSTKFLT",
        "SIGCHLD",
        "SIGCONT",
        "SIGSTOP",
        "SIGTSTP",
        "SIGTTIN",
        "SIGTTOU",
        "SIGURG",
        "SIGXCPU",
        "SIGXFSZ",
        "SIGVTALRM",
        "SIGPROF",
        "SIGWINCH",
        "SIGIO",
        "SIGPWR",
        "SIGSYS",
    ];
    let n = exit_code.checked_sub(128)?;
    (1..32).contains(&n).then(|| NAMES[n as usize])
}

/// Sends one chunk of exec output to the capture of its stream.
fn route(item: LogOutput, stdout: &mut Capture, stderr: &mut Capture) {
    match item {
        LogOutput::StdOut { message } | LogOutput::Console { message } => stdout.push(&message),
        LogOutput::StdErr { message } => stderr.push(&message),
        LogOutput::StdIn { .. } => {}
    }
}

/// Keeps the first `keep` bytes of a stream and counts all of them.
struct Capture {
    buf: Vec<u8>,
    total: u64,
    keep: usize,
}

impl Capture {
    fn new(keep: usize) -> Self {
        Self {
            buf: Vec::new(),
            total: 0,
            keep,
        }
    }

    fn push(&mut self, bytes: &[u8]) {
        self.total += bytes.len() as u64;
        let room = self.keep.saturating_sub(self.buf.len());
        self.buf.extend_from_slice(&bytes[..room.min(bytes.len())]);
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

fn describe_create_error(image: &str, e: &bollard::errors::Error) -> String {
    match e {
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
    fn capture_keeps_a_bounded_prefix_and_counts_everything() {
        let mut c = Capture::new(5);
        c.push(b"abc");
        c.push(b"defgh");
        c.push(b"ij");
        assert_eq!(c.buf, b"abcde");
        assert_eq!(c.total, 10);
    }

    #[test]
    fn reads_cgroup_v1_and_v2_stats() {
        let v1 = "memory/memory.oom_control oom_kill_disable 0 under_oom 0 oom_kill 1 \nmemory/memory.max_usage_in_bytes 67108864 \n";
        assert_eq!(
            CgroupStats::parse(v1),
            CgroupStats {
                oom_kills: 1,
                peak_memory_bytes: Some(67108864)
            }
        );
        let v2 = "memory.events low 0 high 0 max 3 oom 1 oom_kill 2 \nmemory.peak 1234 \n";
        assert_eq!(
            CgroupStats::parse(v2),
            CgroupStats {
                oom_kills: 2,
                peak_memory_bytes: Some(1234)
            }
        );
        assert_eq!(CgroupStats::parse(""), CgroupStats::default());
    }

    #[test]
    fn names_signals_from_exit_codes() {
        assert_eq!(signal_name(137), Some("SIGKILL"));
        assert_eq!(signal_name(143), Some("SIGTERM"));
        assert_eq!(signal_name(139), Some("SIGSEGV"));
        assert_eq!(signal_name(1), None);
        assert_eq!(signal_name(0), None);
        assert_eq!(signal_name(255), None);
    }

    #[test]
    fn the_standby_script_runs_the_command_and_env_verbatim() {
        // Through a real sh, as in the sandbox: quoting must keep every byte literal.
        let tricky = "it's $HOME `id` \"q\" \\ \n$(echo no) ; exit 3 'x'";
        let env = vec![format!("ODD={tricky}"), "EMPTY=".to_string()];
        let script = standby_script("printf '%s|%s' \"$ODD\" \"$EMPTY\"; exit 7", &env);
        let out = std::process::Command::new("sh")
            .arg("-s")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(script.as_bytes())?;
                child.wait_with_output()
            })
            .unwrap();
        assert_eq!(String::from_utf8_lossy(&out.stdout), format!("{tricky}|"));
        assert_eq!(out.status.code(), Some(7));
    }

    #[test]
    fn parses_numeric_users() {
        assert_eq!(parse_user("1000:1001"), (1000, 1001));
        assert_eq!(parse_user("1000"), (1000, 1000));
        assert_eq!(parse_user("nobody"), (65534, 65534));
    }
}
