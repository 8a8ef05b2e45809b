//! The Docker engine, as every other module sees it.
//!
//! This module owns: the connection (made on first use, so a worker starts while Docker is
//! down), the error an engine operation reports ([`SandboxError`]), the labels every managed
//! container and network carries (names in [`label`], values built in one place), the hardened
//! base configuration of every container ([`hardened`]), the [`Registry`] of what this worker
//! runs, and removal of containers and networks. It does not own what a sandbox looks like
//! (`sandbox`), the egress networks' shape (`egress`), nor when things are reaped (`control`).
//! It depends on nothing else in the crate, so `sandbox`, `egress` and `control` can all use it
//! without depending on each other.

use bollard::Docker;
use bollard::models::{HostConfig, HostConfigLogConfig};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use std::collections::{HashMap, HashSet};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tokio::sync::OnceCell;

/// Label names, defined once. Their values are part of the contract with operators' tooling.
pub mod label {
    /// Present on every container and network this project creates.
    pub const MANAGED: &str = "ae.managed";
    /// The worker process that created it.
    pub const OWNER: &str = "ae.owner";
    /// The fleet of that worker (see [`super::fleet_id`]): a reaper only touches its own.
    pub const FLEET: &str = "ae.fleet";
    /// The image a sandbox runs.
    pub const IMAGE: &str = "ae.image";
    /// The profile a sandbox was made with (`sandbox`, `production`).
    pub const PROFILE: &str = "ae.profile";
    /// The isolation tier a sandbox runs under (`runc`, `gvisor`).
    pub const RUNTIME: &str = "ae.runtime";
    /// Unix time after which it must not exist.
    pub const EXPIRES: &str = "ae.expires";
    /// Unix time a sandbox network was created.
    pub const CREATED: &str = "ae.created";
    /// What an infrastructure container is for (an egress relay).
    pub const ROLE: &str = "ae.role";
    /// The sandbox network an egress relay serves.
    pub const NETWORK: &str = "ae.network";
    /// The run whose sandbox an egress relay serves (not `ae.run-id`: the relay is not a
    /// sandbox).
    pub const RELAY_RUN_ID: &str = "ae.relay-run-id";
    /// A sandbox pre-started for the warm pool.
    pub const POOL: &str = "ae.pool";
    /// The run an execution is charged to.
    pub const RUN_ID: &str = "ae.run-id";
    /// The calling workflow.
    pub const WORKFLOW_ID: &str = "ae.workflow-id";
    /// The calling activity.
    pub const ACTIVITY_ID: &str = "ae.activity-id";
    /// The activity's type (`safeExecuteCode`, ...).
    pub const ACTIVITY_TYPE: &str = "ae.activity-type";
    /// The activity's attempt.
    pub const ATTEMPT: &str = "ae.attempt";
}

/// Why an engine operation failed.
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

/// The connection to the engine, made on first use with the API version it speaks.
#[derive(Default)]
pub struct Connection {
    docker: OnceCell<Docker>,
}

impl Connection {
    /// The client; every call while Docker is unreachable fails with
    /// [`SandboxError::Unavailable`] (fail closed).
    pub async fn get(&self) -> Result<&Docker, SandboxError> {
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
}

/// Who asked for a sandbox: the workflow and activity it serves, put on its labels.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Origin {
    /// The run charged.
    pub run_id: String,
    /// The calling workflow.
    pub workflow_id: String,
    /// The calling activity.
    pub activity_id: String,
    /// Its type.
    pub activity_type: String,
    /// Its attempt.
    pub attempt: u32,
}

impl Origin {
    /// The labels naming it.
    pub fn labels(&self) -> HashMap<String, String> {
        HashMap::from([
            (label::RUN_ID.into(), self.run_id.clone()),
            (label::WORKFLOW_ID.into(), self.workflow_id.clone()),
            (label::ACTIVITY_ID.into(), self.activity_id.clone()),
            (label::ACTIVITY_TYPE.into(), self.activity_type.clone()),
            (label::ATTEMPT.into(), self.attempt.to_string()),
        ])
    }
}

/// The fleet this process belongs to, set once at start-up ([`set_fleet`]).
static FLEET: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// The fleet id when `AE_FLEET` is not set: the workers sharing a Temporal namespace, a task
/// queue and a Redis (where liveness is read) are one fleet. A digest, so a password in the
/// Redis URL never reaches a label.
pub fn fleet_id(namespace: &str, task_queue: &str, redis_url: &str) -> String {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(format!("{namespace}\n{task_queue}\n{redis_url}"));
    digest[..6].iter().map(|b| format!("{b:02x}")).collect()
}

/// Sets this process's fleet (first call wins); objects it creates are labelled with it and its
/// reaper looks at nothing else.
pub fn set_fleet(fleet: &str) {
    let _ = FLEET.set(fleet.to_string());
}

/// This process's fleet (`default` until set).
pub fn fleet() -> &'static str {
    FLEET.get().map(String::as_str).unwrap_or("default")
}

/// Docker's label filter for this fleet's managed objects (label filters are ANDed).
pub fn fleet_filter() -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_string(),
        vec![
            format!("{}=true", label::MANAGED),
            format!("{}={}", label::FLEET, fleet()),
        ],
    )])
}

/// The labels every managed object carries: managed, its owner and fleet, and (when it has a
/// lifetime) when it expires.
pub fn managed(owner: &str, lifetime: Option<Duration>) -> HashMap<String, String> {
    let mut labels = HashMap::from([
        (label::MANAGED.to_string(), "true".to_string()),
        (label::OWNER.to_string(), owner.to_string()),
        (label::FLEET.to_string(), fleet().to_string()),
    ]);
    if let Some(lifetime) = lifetime {
        let expires = now_secs() + lifetime.as_secs().max(1);
        labels.insert(label::EXPIRES.into(), expires.to_string());
    }
    labels
}

/// Seconds since the epoch.
pub fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The hardening every container this project starts gets (sandboxes and the egress relays): no
/// capabilities, no-new-privileges, read-only root, an init, never privileged, no log driver
/// (commands' output is streamed through exec; main processes print nothing). Callers add
/// network, limits and mounts.
pub fn hardened() -> HostConfig {
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

/// A sandbox this worker is running, as the kill switch sees it.
#[derive(Clone)]
pub struct Running {
    /// The run it is charged to.
    pub run_id: String,
    /// Set when the kill switch killed it, so the activity reports KillSwitchEngaged.
    pub killed: Arc<AtomicBool>,
}

/// The sandboxes this worker is running, by container id, and its own infrastructure
/// containers (the egress relays), which the reaper keeps and the kill switch spares.
#[derive(Clone, Default)]
pub struct Registry {
    running: Arc<Mutex<HashMap<String, Running>>>,
    kept: Arc<Mutex<HashSet<String>>>,
}

impl Registry {
    /// Registers a running sandbox; returns its kill flag.
    pub fn add(&self, container: &str, run_id: &str) -> Arc<AtomicBool> {
        let killed = Arc::new(AtomicBool::new(false));
        self.lock().insert(
            container.to_string(),
            Running {
                run_id: run_id.to_string(),
                killed: killed.clone(),
            },
        );
        killed
    }

    /// Records which run a (pooled) sandbox now serves.
    pub fn assign(&self, container: &str, run_id: &str) {
        if let Some(r) = self.lock().get_mut(container) {
            r.run_id = run_id.to_string();
        }
    }

    /// Forgets a sandbox.
    pub fn remove(&self, container: &str) {
        self.lock().remove(container);
    }

    /// Container ids now running.
    pub fn ids(&self) -> HashSet<String> {
        self.lock().keys().cloned().collect()
    }

    /// Every running sandbox with its run.
    pub fn snapshot(&self) -> Vec<(String, Running)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Marks an infrastructure container of this worker as in use.
    pub fn keep(&self, container: &str) {
        self.kept_set().insert(container.to_string());
    }

    /// Forgets an infrastructure container.
    pub fn unkeep(&self, container: &str) {
        self.kept_set().remove(container);
    }

    /// The infrastructure containers in use.
    pub fn kept(&self) -> HashSet<String> {
        self.kept_set().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kept_set(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// How long a removal may take before the container is judged wedged (see [`unwedge`]).
const WEDGED_AFTER: Duration = Duration::from_secs(5);
/// How long a removal may still take after the wedge was broken.
const REMOVAL_AFTER_UNWEDGE: Duration = Duration::from_secs(30);

/// Force-removes a container (and its anonymous volumes), retrying briefly; gone is fine.
///
/// Bounded: a removal stuck past [`WEDGED_AFTER`] gets [`unwedge`] once, and the caller waits
/// at most [`REMOVAL_AFTER_UNWEDGE`] more (the request stays in flight; the reaper retries
/// whatever is still listed).
pub async fn remove_container(docker: &Docker, id: &str) {
    let removal = remove_container_retrying(docker, id);
    tokio::pin!(removal);
    if tokio::time::timeout(WEDGED_AFTER, &mut removal)
        .await
        .is_ok()
    {
        return;
    }
    let shim = unwedge(id);
    tracing::warn!(container = id, ?shim, "container removal is stuck");
    if tokio::time::timeout(REMOVAL_AFTER_UNWEDGE, &mut removal)
        .await
        .is_err()
    {
        tracing::error!(
            container = id,
            "container removal still stuck; the reaper will retry"
        );
    }
}

/// Breaks a known wedge of the engine: under a process flood, Debian's gVisor release (runsc
/// 2022) can die or hang at the host's pids limit in a way its containerd shim never recovers
/// from (seen: `[runsc] <defunct>` never reaped; and a shim whose gVisor processes linger), and
/// every engine request on that container (inspect, kill, removal) then hangs.
///
/// Called only when a force removal has been stuck for [`WEDGED_AFTER`]: the container is
/// being removed anyway. When the container's shim runs on this host and every live process
/// under it is gVisor's (`runsc-sandbox`, `runsc-gofer`, ...; corpses are ignored), those
/// processes and their descendants and then the shim get SIGKILL: containerd reports the task
/// gone and the pending removal completes. A shim with any other live child (a runc
/// container's processes) is never touched. Returns the shim's pid when it was killed; needs
/// the worker to run as root beside the engine, and otherwise does nothing.
pub fn unwedge(container_id: &str) -> Option<u32> {
    let id_arg = format!("-id\0{container_id}\0");
    let shim = pids().find(|&pid| {
        let cmdline = cmdline_of(pid);
        program_of(&cmdline).starts_with("containerd-shim") && cmdline.contains(&id_arg)
    })?;
    let live: Vec<u32> = children_of(shim)
        .into_iter()
        .filter(|&c| !is_zombie(c))
        .collect();
    if !live
        .iter()
        .all(|&c| program_of(&cmdline_of(c)).starts_with("runsc"))
    {
        return None;
    }
    let mut doomed = Vec::new();
    let mut next = live;
    while let Some(pid) = next.pop() {
        next.extend(children_of(pid));
        doomed.push(pid);
    }
    for pid in doomed.into_iter().chain([shim]) {
        // SAFETY: kill(2) with a pid read from /proc and a constant signal has no memory
        // effects.
        unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
    }
    Some(shim)
}

/// Every process id on this host (as this process sees them).
fn pids() -> impl Iterator<Item = u32> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse().ok())
}

/// A process's command line, NUL-separated (empty for a corpse or a vanished process).
fn cmdline_of(pid: u32) -> String {
    std::fs::read(format!("/proc/{pid}/cmdline"))
        .map(|c| String::from_utf8_lossy(&c).into_owned())
        .unwrap_or_default()
}

/// The file name of a command line's argv[0].
fn program_of(cmdline: &str) -> &str {
    let argv0 = cmdline.split('\0').next().unwrap_or_default();
    argv0.rsplit('/').next().unwrap_or_default()
}

/// Whether a process is a corpse (state Z) or already gone.
fn is_zombie(pid: u32) -> bool {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // `pid (comm) state ...`; comm may hold spaces and parentheses.
    stat.rsplit_once(')')
        .is_none_or(|(_, rest)| rest.trim_start().starts_with(['Z', 'X']))
}

/// The pids of a process's children (over all its threads).
fn children_of(pid: u32) -> Vec<u32> {
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|c| {
            c.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<u32>>()
        })
        .collect()
}

/// [`remove_container`] without the bound.
async fn remove_container_retrying(docker: &Docker, id: &str) {
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
                tracing::warn!(container = id, attempt, error = %e, "container removal failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Removes a network, retrying while a sandbox (or its relay) is still leaving it.
pub async fn remove_network(docker: &Docker, network: &str) {
    for attempt in 0..20 {
        match docker.remove_network(network).await {
            Ok(()) => return,
            Err(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            }) => return,
            Err(e) => {
                if attempt == 19 {
                    tracing::warn!(network, error = %e, "cannot remove sandbox network; the reaper will");
                }
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }
}

/// Removes every container, then every network, labelled with `owner`. For graceful shutdown
/// and for tests that must leave nothing behind. Returns how many containers went.
pub async fn remove_owned(docker: &Docker, owner: &str) -> Result<usize, SandboxError> {
    let filters = HashMap::from([(
        "label".to_string(),
        vec![format!("{}={owner}", label::OWNER)],
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
    // The relays went with the containers; now the sandbox networks are empty.
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
            remove_network(docker, &name).await;
        }
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Child, Command};
    use std::time::Instant;

    /// A process that looks like a containerd shim of container `id` (its command line holds
    /// `containerd-shim` and `-id <id>`), with one child started from `program` renamed `name`,
    /// never reaped.
    fn fake_shim(id: &str, program: &str, name: &str) -> (Child, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("unwedge-{id}"));
        std::fs::create_dir_all(&dir).unwrap();
        let child = dir.join(name);
        std::fs::copy(program, &child).unwrap();
        let script = "import os, sys, time\n\
                      os.posix_spawn(sys.argv[3], [sys.argv[3], '30'], dict(os.environ))\n\
                      time.sleep(60)\n";
        // The interpreter itself (`python3` may be a launcher that drops argv[0]).
        let python = Command::new("python3")
            .args(["-c", "import sys; print(sys.executable)"])
            .output()
            .unwrap();
        let python = String::from_utf8(python.stdout).unwrap();
        let shim = Command::new(python.trim())
            .arg0("containerd-shim-runc-v2")
            .args(["-c", script, "-id", id])
            .arg(&child)
            .spawn()
            .unwrap();
        let t = Instant::now();
        while children_of(shim.id()).is_empty() && t.elapsed() < Duration::from_secs(10) {
            std::thread::sleep(Duration::from_millis(20));
        }
        // Let a short-lived child exit and become a corpse.
        std::thread::sleep(Duration::from_millis(200));
        (shim, dir)
    }

    use std::os::unix::process::CommandExt;

    #[test]
    fn only_a_shim_holding_nothing_but_gvisor_is_killed() {
        // A live child that is not gVisor's (a runc container's process): never touched.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (mut runc, dir) = fake_shim(&id, "/bin/sleep", "sleep");
        assert_eq!(unwedge(&id), None, "a shim with a runc child was killed");
        assert!(runc.try_wait().unwrap().is_none());
        let child = children_of(runc.id());
        runc.kill().unwrap();
        runc.wait().unwrap();
        for c in child {
            unsafe { libc::kill(c as libc::pid_t, libc::SIGKILL) };
        }
        std::fs::remove_dir_all(dir).unwrap();

        // A lingering gVisor process: it and the shim go.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (mut lingering, dir) = fake_shim(&id, "/bin/sleep", "runsc-sandbox");
        let child = children_of(lingering.id());
        assert_eq!(child.len(), 1);
        assert_eq!(unwedge(&id), Some(lingering.id()));
        assert!(!lingering.wait().unwrap().success());
        let t = Instant::now();
        while !is_zombie(child[0]) && t.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(20));
        }
        assert!(is_zombie(child[0]), "the gVisor process survived");
        std::fs::remove_dir_all(dir).unwrap();

        // A gVisor corpse the shim never reaped: the shim goes.
        let id = uuid::Uuid::new_v4().simple().to_string();
        let (mut wedged, dir) = fake_shim(&id, "/bin/true", "runsc");
        assert_eq!(unwedge(&id), Some(wedged.id()));
        assert!(!wedged.wait().unwrap().success());
        std::fs::remove_dir_all(dir).unwrap();

        assert_eq!(unwedge("no-such-container"), None);
    }
}
