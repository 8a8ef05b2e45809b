//! Operator control shared by every worker through Redis: the [`killswitch`], worker
//! [`liveness`], and the [`reaper`] that removes sandboxes nobody owns any more. This file runs
//! them as one background loop until shutdown.
//!
//! Kill switch: new executions check it and fail with KillSwitchEngaged; each worker's watcher
//! polls it twice a second and kills its running sandboxes that it covers, so a switch stops
//! them within about a second. Liveness: each worker refreshes `ae:worker:<identity>` (short
//! TTL). The reaper, at start-up and periodically, removes managed sandboxes whose expiry label
//! has passed, whose owner's liveness key is gone, or that are this worker's own but not running
//! anything. It does not own the sandboxes' creation (`sandbox`); it uses `docker` for labels
//! and removal and the `docker::Registry` for what runs.

mod killswitch;
mod liveness;
mod reaper;

pub use killswitch::{GLOBAL_KEY, KillSwitch, run_key};
pub use liveness::liveness_key;
pub use reaper::reap_once;

use crate::docker::Registry;
use redis::aio::ConnectionManager;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

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

/// Runs the watcher, liveness and reaper until `stop` is cancelled.
pub async fn run_background(
    conn: ConnectionManager,
    docker: bollard::Docker,
    registry: Registry,
    identity: String,
    timings: ControlTimings,
    stop: CancellationToken,
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
            _ = stop.cancelled() => return,
            _ = watch.tick() => killswitch::enforce(&switch, &docker, &registry).await,
            _ = alive.tick() => liveness::refresh(&conn, &identity, timings.alive_ttl).await,
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
