//! Operator control shared by every worker through Redis: the kill switch, worker liveness, and
//! the reaper that removes sandboxes nobody owns any more.
//!
//! Kill switch (seed 000 §4): `ae:killswitch` (all runs) and `ae:killswitch:run:<runId>` hold the
//! reason while engaged. New executions check it and fail with KillSwitchEngaged; each worker's
//! watcher polls it twice a second and kills its running sandboxes that it covers, so a switch
//! stops them within about a second.
//!
//! Liveness: each worker refreshes `ae:worker:<identity>` (short TTL). The reaper, at start-up
//! and periodically, removes managed sandboxes whose expiry label has passed, whose owner's
//! liveness key is gone (a worker killed with SIGKILL), or that are this worker's own but not
//! running anything. It does not own the sandboxes' creation (see `sandbox`).

use crate::sandbox::{LABEL_CREATED, LABEL_EXPIRES, LABEL_MANAGED, LABEL_OWNER};
use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Redis key of the global switch.
pub const GLOBAL_KEY: &str = "ae:killswitch";

/// Redis key of one run's switch.
pub fn run_key(run_id: &str) -> String {
    format!("ae:killswitch:run:{run_id}")
}

/// Redis key of a worker's liveness.
pub fn liveness_key(identity: &str) -> String {
    format!("ae:worker:{identity}")
}

/// A sandbox this worker is running, as the watcher sees it.
#[derive(Clone)]
pub struct Running {
    /// The run it is charged to.
    pub run_id: String,
    /// Set when the kill switch killed it, so the activity reports KillSwitchEngaged.
    pub killed: Arc<AtomicBool>,
}

/// The sandboxes this worker is running, by container id, and its own infrastructure
/// containers (the egress relay), which the reaper keeps and the kill switch spares.
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

    fn snapshot(&self) -> Vec<(String, Running)> {
        self.lock()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Marks an infrastructure container of this worker as in use.
    pub fn keep(&self, container: &str) {
        self.kept().insert(container.to_string());
    }

    /// Forgets an infrastructure container.
    pub fn unkeep(&self, container: &str) {
        self.kept().remove(container);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Running>> {
        self.running.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn kept(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.kept.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Reads and writes the kill switch.
#[derive(Clone)]
pub struct KillSwitch {
    conn: ConnectionManager,
}

impl KillSwitch {
    /// A switch on the budget store's Redis connection.
    pub fn new(conn: ConnectionManager) -> Self {
        Self { conn }
    }

    /// The reason the switch covers `run_id` (globally or for that run), if it does.
    pub async fn engaged_for(&self, run_id: &str) -> redis::RedisResult<Option<String>> {
        let mut c = self.conn.clone();
        let (global, run): (Option<String>, Option<String>) = redis::pipe()
            .get(GLOBAL_KEY)
            .get(run_key(run_id))
            .query_async(&mut c)
            .await?;
        Ok(global.or(run))
    }

    /// Engages the switch for everything or one run.
    pub async fn engage(&self, run_id: Option<&str>, reason: &str) -> redis::RedisResult<()> {
        let mut c = self.conn.clone();
        let key = run_id.map(run_key).unwrap_or_else(|| GLOBAL_KEY.into());
        c.set(key, reason).await
    }

    /// Releases it.
    pub async fn release(&self, run_id: Option<&str>) -> redis::RedisResult<()> {
        let mut c = self.conn.clone();
        let key = run_id.map(run_key).unwrap_or_else(|| GLOBAL_KEY.into());
        c.del(key).await
    }

    /// The global reason and the runs switched off.
    pub async fn status(&self) -> redis::RedisResult<(Option<String>, Vec<String>)> {
        let mut c = self.conn.clone();
        let global: Option<String> = c.get(GLOBAL_KEY).await?;
        let mut runs = Vec::new();
        let mut iter: redis::AsyncIter<String> = c.scan_match("ae:killswitch:run:*").await?;
        while let Some(key) = futures::StreamExt::next(&mut iter).await {
            let key = key?;
            runs.push(key.trim_start_matches("ae:killswitch:run:").to_string());
        }
        runs.sort();
        Ok((global, runs))
    }
}

/// Timings of the background control loop.
#[derive(Debug, Clone)]
pub struct ControlTimings {
    /// How often the kill switch is polled.
    pub watch_every: Duration,
    /// How often liveness is refreshed.
    pub alive_every: Duration,
    /// How long liveness lasts without a refresh.
    pub alive_ttl: Duration,
    /// How often the reaper runs.
    pub reap_every: Duration,
}

impl Default for ControlTimings {
    fn default() -> Self {
        Self {
            watch_every: Duration::from_millis(500),
            alive_every: Duration::from_secs(5),
            alive_ttl: Duration::from_secs(20),
            reap_every: Duration::from_secs(30),
        }
    }
}

/// Runs the watcher, liveness and reaper until the process ends.
pub async fn run_background(
    conn: ConnectionManager,
    docker: bollard::Docker,
    registry: Registry,
    identity: String,
    timings: ControlTimings,
) {
    let switch = KillSwitch::new(conn.clone());
    let mut watch = tokio::time::interval(timings.watch_every);
    let mut alive = tokio::time::interval(timings.alive_every);
    let mut reap = tokio::time::interval(timings.reap_every);
    for t in [&mut watch, &mut alive, &mut reap] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut first_reap = true;
    loop {
        tokio::select! {
            _ = watch.tick() => enforce_switch(&switch, &docker, &registry).await,
            _ = alive.tick() => {
                let mut c = conn.clone();
                let r: redis::RedisResult<()> = c
                    .set_ex(liveness_key(&identity), "1", timings.alive_ttl.as_secs().max(1))
                    .await;
                if let Err(e) = r {
                    tracing::warn!(error = %e, "cannot refresh worker liveness");
                }
            }
            _ = reap.tick() => {
                match reap_once(&conn, &docker, &registry, &identity, first_reap).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(removed = n, "reaper removed orphaned sandboxes"),
                    Err(e) => tracing::warn!(error = %e, "reaper could not list sandboxes"),
                }
                first_reap = false;
            }
        }
    }
}

async fn enforce_switch(switch: &KillSwitch, docker: &bollard::Docker, registry: &Registry) {
    let running = registry.snapshot();
    if running.is_empty() {
        return;
    }
    for (container, r) in running {
        match switch.engaged_for(&r.run_id).await {
            Ok(Some(reason)) => {
                if !r.killed.swap(true, Ordering::SeqCst) {
                    tracing::warn!(run_id = %r.run_id, container = %container, reason = %reason, "kill switch: killing sandbox");
                    force_remove(docker, &container).await;
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot read the kill switch");
                return;
            }
        }
    }
}

/// One reaper pass; returns how many sandboxes it removed.
pub async fn reap_once(
    conn: &ConnectionManager,
    docker: &bollard::Docker,
    registry: &Registry,
    identity: &str,
    starting_up: bool,
) -> Result<usize, bollard::errors::Error> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_MANAGED}=true")])]);
    let list = docker
        .list_containers(Some(
            ListContainersOptionsBuilder::default()
                .all(true)
                .filters(&filters)
                .build(),
        ))
        .await?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let mut running = registry.ids();
    running.extend(registry.kept().iter().cloned());
    let mut removed = 0;
    for c in list {
        let (Some(id), Some(labels)) = (c.id, c.labels) else {
            continue;
        };
        let owner = labels.get(LABEL_OWNER).cloned().unwrap_or_default();
        let created_secs_ago = c.created.map(|t| now as i64 - t).unwrap_or(i64::MAX);
        let reason = match standing(conn, &labels, identity, now, created_secs_ago).await {
            Standing::Expired => Some("expired"),
            // Ours but not running anything: left from a previous life of this identity, or a
            // removal that failed. Young ones may be starting right now.
            Standing::Ours => (!running.contains(&id) && (starting_up || created_secs_ago > 60))
                .then_some("not in use"),
            Standing::OwnerGone => Some("owner is gone"),
            Standing::OwnerAlive => None,
        };
        if let Some(reason) = reason {
            tracing::info!(container = %id, owner = %owner, reason, "reaping sandbox");
            force_remove(docker, &id).await;
            removed += 1;
        }
    }
    removed += reap_networks(conn, docker, registry, identity, now).await?;
    Ok(removed)
}

/// Removes sandbox networks (see `egress`) that expired, whose owner is gone, or that are this
/// worker's and hold no sandbox any more (a minute's grace for one being set up).
async fn reap_networks(
    conn: &ConnectionManager,
    docker: &bollard::Docker,
    registry: &Registry,
    identity: &str,
    now: u64,
) -> Result<usize, bollard::errors::Error> {
    let filters = HashMap::from([("label".to_string(), vec![format!("{LABEL_MANAGED}=true")])]);
    let nets = docker
        .list_networks(Some(
            ListNetworksOptionsBuilder::default()
                .filters(&filters)
                .build(),
        ))
        .await?;
    let kept = registry.kept().clone();
    let mut removed = 0;
    for net in nets {
        let (Some(name), Some(labels)) = (net.name, net.labels) else {
            continue;
        };
        let owner = labels.get(LABEL_OWNER).cloned().unwrap_or_default();
        let created = labels
            .get(LABEL_CREATED)
            .and_then(|v| v.parse::<i64>().ok());
        let age = now as i64 - created.unwrap_or(0);
        let reason = match standing(conn, &labels, identity, now, age).await {
            Standing::Expired => Some("expired"),
            Standing::Ours if age > 60 => {
                let inspected = docker.inspect_network(&name, None).await.ok();
                let in_use = inspected
                    .and_then(|n| n.containers)
                    .unwrap_or_default()
                    .keys()
                    .any(|c| !kept.contains(c));
                (!in_use).then_some("not in use")
            }
            Standing::Ours | Standing::OwnerAlive => None,
            Standing::OwnerGone => Some("owner is gone"),
        };
        if let Some(reason) = reason {
            tracing::info!(network = %name, owner = %owner, reason, "reaping sandbox network");
            for relay in &kept {
                let _ = docker
                    .disconnect_network(
                        &name,
                        bollard::models::NetworkDisconnectRequest {
                            container: relay.clone(),
                            force: Some(true),
                        },
                    )
                    .await;
            }
            if docker.remove_network(&name).await.is_ok() {
                removed += 1;
            }
        }
    }
    Ok(removed)
}

/// Where a managed container or network stands, as the reaper sees it.
enum Standing {
    /// Past its expiry label.
    Expired,
    /// This worker's own.
    Ours,
    /// Another worker's whose liveness key lapsed (and older than a few seconds).
    OwnerGone,
    /// Another live worker's, or Redis could not tell: left alone.
    OwnerAlive,
}

async fn standing(
    conn: &ConnectionManager,
    labels: &HashMap<String, String>,
    identity: &str,
    now: u64,
    age_secs: i64,
) -> Standing {
    let owner = labels.get(LABEL_OWNER).map(String::as_str).unwrap_or("");
    let expired = labels
        .get(LABEL_EXPIRES)
        .and_then(|e| e.parse::<u64>().ok())
        .is_some_and(|e| e <= now);
    if expired {
        return Standing::Expired;
    }
    if owner == identity {
        return Standing::Ours;
    }
    let mut c = conn.clone();
    match c.exists::<_, bool>(liveness_key(owner)).await {
        Ok(false) if age_secs > 5 => Standing::OwnerGone,
        _ => Standing::OwnerAlive,
    }
}

async fn force_remove(docker: &bollard::Docker, id: &str) {
    let opts = RemoveContainerOptionsBuilder::default()
        .force(true)
        .v(true)
        .build();
    if let Err(e) = docker.remove_container(id, Some(opts)).await {
        tracing::debug!(container = id, error = %e, "remove failed (may be gone already)");
    }
}
