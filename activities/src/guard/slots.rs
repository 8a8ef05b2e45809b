//! A run's concurrent executions, across the fleet: a semaphore of leases (`slot_acquire.lua`).
//!
//! A lease lapses unless its holder renews it, so a worker killed with SIGKILL frees its slots
//! within [`LEASE_TTL`]. A [`SlotLease`] renews itself while alive and gives its slot back when
//! dropped.

use super::{GuardError, Guards, keys};
use redis::AsyncCommands;
use std::time::Duration;
use tokio_util::sync::CancellationToken;

/// How long a slot stays taken without a renewal.
pub const LEASE_TTL: Duration = Duration::from_secs(15);
/// How often a holder renews its lease.
const RENEW_EVERY: Duration = Duration::from_secs(5);

/// One held concurrency slot. Dropping it releases the slot.
pub struct SlotLease {
    run_id: String,
    id: String,
    guards: Option<Guards>,
    stop: CancellationToken,
}

impl SlotLease {
    /// A lease that holds nothing (the limit is disabled).
    fn unlimited() -> Self {
        Self {
            run_id: String::new(),
            id: String::new(),
            guards: None,
            stop: CancellationToken::new(),
        }
    }
}

impl Drop for SlotLease {
    fn drop(&mut self) {
        self.stop.cancel();
        let Some(guards) = self.guards.take() else {
            return;
        };
        let (key, id) = (keys::slots(&self.run_id), std::mem::take(&mut self.id));
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move {
                let released: Result<i64, _> = guards.conn().zrem(&key, &id).await;
                if let Err(e) = released {
                    // The lease lapses on its own within LEASE_TTL.
                    tracing::warn!(error = %e, "could not release a concurrency slot");
                }
            });
        }
    }
}

impl Guards {
    /// Takes one of the run's slots if one is free: `Some(lease)`, or `None` when all are
    /// taken (the caller waits and asks again).
    pub async fn try_acquire_slot(&self, run_id: &str) -> Result<Option<SlotLease>, GuardError> {
        let limit = self.settings.max_concurrent_per_run;
        if limit == 0 {
            return Ok(Some(SlotLease::unlimited()));
        }
        let id = uuid::Uuid::new_v4().simple().to_string();
        if !self.acquire(run_id, &id, limit).await? {
            return Ok(None);
        }
        let lease = SlotLease {
            run_id: run_id.to_string(),
            id: id.clone(),
            guards: Some(self.clone()),
            stop: CancellationToken::new(),
        };
        let (guards, run_id, stop) = (self.clone(), run_id.to_string(), lease.stop.clone());
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stop.cancelled() => return,
                    _ = tokio::time::sleep(RENEW_EVERY) => {}
                }
                if let Err(e) = guards.acquire(&run_id, &id, limit).await {
                    tracing::warn!(error = %e, "could not renew a concurrency slot");
                }
            }
        });
        Ok(Some(lease))
    }

    /// Takes or renews the slot of lease `id`.
    async fn acquire(&self, run_id: &str, id: &str, limit: u32) -> Result<bool, GuardError> {
        let held: i64 = self
            .slot_acquire
            .key(keys::slots(run_id))
            .arg(limit)
            .arg(id)
            .arg(LEASE_TTL.as_millis() as u64)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(held == 1)
    }

    /// How many slots of the run are held now (lapsed leases not counted).
    pub async fn slots_held(&self, run_id: &str) -> Result<u64, GuardError> {
        let now_ms = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis() as u64;
        let n: u64 = self
            .conn()
            .zcount(keys::slots(run_id), now_ms, "+inf")
            .await?;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::{GuardSettings, Guards};
    use super::*;
    use crate::testing::TestRedis;

    #[tokio::test]
    async fn at_most_the_limit_is_held_and_a_drop_frees_a_slot() {
        let redis = TestRedis::start().await;
        let guards = Guards::new(redis.conn().await, GuardSettings::default());
        let a = guards.try_acquire_slot("r").await.unwrap().unwrap();
        let _b = guards.try_acquire_slot("r").await.unwrap().unwrap();
        let _c = guards.try_acquire_slot("r").await.unwrap().unwrap();
        assert!(guards.try_acquire_slot("r").await.unwrap().is_none());
        assert!(guards.try_acquire_slot("other").await.unwrap().is_some());
        assert_eq!(guards.slots_held("r").await.unwrap(), 3);
        drop(a);
        let started = std::time::Instant::now();
        loop {
            if guards.try_acquire_slot("r").await.unwrap().is_some() {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(2), "slot not freed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn a_lapsed_lease_frees_its_slot() {
        let redis = TestRedis::start().await;
        let settings = GuardSettings {
            max_concurrent_per_run: 1,
            ..GuardSettings::default()
        };
        let guards = Guards::new(redis.conn().await, settings);
        // A lease taken by a worker that then died: in Redis, with nobody renewing it.
        assert!(guards.acquire("r", "dead-worker", 1).await.unwrap());
        assert!(guards.try_acquire_slot("r").await.unwrap().is_none());
        let _: () = redis::cmd("ZADD")
            .arg(keys::slots("r"))
            .arg("XX")
            .arg(1)
            .arg("dead-worker")
            .query_async(&mut guards.conn())
            .await
            .unwrap();
        assert!(guards.try_acquire_slot("r").await.unwrap().is_some());
    }

    #[tokio::test]
    async fn racing_acquirers_never_exceed_the_limit() {
        let redis = TestRedis::start().await;
        let guards = Guards::new(redis.conn().await, GuardSettings::default());
        let tries = (0..20).map(|_| {
            let g = guards.clone();
            tokio::spawn(async move { g.try_acquire_slot("race").await.unwrap() })
        });
        let mut held = Vec::new();
        for t in tries {
            if let Some(l) = t.await.unwrap() {
                held.push(l);
            }
        }
        assert_eq!(held.len(), 3);
    }
}
