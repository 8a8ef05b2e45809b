//! The kill switch (seed 000 §4): `ae:killswitch` (all runs) and `ae:killswitch:run:<runId>`
//! hold the reason while engaged. New executions check it; [`enforce`] kills this worker's
//! running sandboxes it covers.

use crate::docker::{self, Registry};
use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::sync::atomic::Ordering;

/// Redis key of the global switch.
pub const GLOBAL_KEY: &str = "ae:killswitch";

/// Redis key of one run's switch.
pub fn run_key(run_id: &str) -> String {
    format!("ae:killswitch:run:{run_id}")
}

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

/// Kills every running sandbox of this worker that the switch covers.
pub(super) async fn enforce(switch: &KillSwitch, docker: &bollard::Docker, registry: &Registry) {
    let running = registry.snapshot();
    if running.is_empty() {
        return;
    }
    for (container, r) in running {
        match switch.engaged_for(&r.run_id).await {
            Ok(Some(reason)) => {
                if !r.killed.swap(true, Ordering::SeqCst) {
                    tracing::warn!(run_id = %r.run_id, container = %container, reason = %reason, "kill switch: killing sandbox");
                    docker::remove_container(docker, &container).await;
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
