//! Worker liveness: each worker refreshes `ae:worker:<identity>` with a short TTL, so the
//! reaper of another worker can tell a dead owner from a live one.

use redis::AsyncCommands;
use redis::aio::ConnectionManager;
use std::time::Duration;

/// Redis key of a worker's liveness.
pub fn liveness_key(identity: &str) -> String {
    format!("ae:worker:{identity}")
}

/// Refreshes this worker's liveness key.
pub(super) async fn refresh(conn: &ConnectionManager, identity: &str, ttl: Duration) {
    let mut c = conn.clone();
    let r: redis::RedisResult<()> = c
        .set_ex(liveness_key(identity), "1", ttl.as_secs().max(1))
        .await;
    if let Err(e) = r {
        tracing::warn!(error = %e, "cannot refresh worker liveness");
    }
}

/// Whether `owner`'s liveness key exists.
pub(super) async fn is_alive(conn: &ConnectionManager, owner: &str) -> redis::RedisResult<bool> {
    let mut c = conn.clone();
    c.exists::<_, bool>(liveness_key(owner)).await
}
