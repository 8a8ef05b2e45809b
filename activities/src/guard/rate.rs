//! The per-run rate limit: a GCRA cell per run and profile (`rate.lua`).

use super::{GuardError, Guards, keys};
use std::time::Duration;

impl Guards {
    /// Admits one request of `run_id` in `profile` (`sandbox` or `production`), or says how
    /// long until the run may send the next one. A refused request is not counted.
    pub async fn admit_rate(
        &self,
        profile: &str,
        run_id: &str,
    ) -> Result<Result<(), Duration>, GuardError> {
        let per_min = match profile {
            "production" => self.settings.rate_production_per_min,
            _ => self.settings.rate_sandbox_per_min,
        };
        if per_min == 0 {
            return Ok(Ok(()));
        }
        let (admitted, wait_ms): (i64, i64) = self
            .rate
            .key(keys::rate(profile, run_id))
            .arg(per_min)
            .arg(60_000)
            .invoke_async(&mut self.conn())
            .await?;
        Ok(if admitted == 1 {
            Ok(())
        } else {
            Err(Duration::from_millis(wait_ms.max(1) as u64))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::{GuardSettings, Guards};
    use crate::testing::TestRedis;
    use std::time::Duration;

    #[tokio::test]
    async fn the_eleventh_request_in_a_minute_waits_one_interval() {
        let redis = TestRedis::start().await;
        let guards = Guards::new(redis.conn().await, GuardSettings::default());
        for i in 0..10 {
            assert_eq!(
                guards.admit_rate("sandbox", "r1").await.unwrap(),
                Ok(()),
                "#{i}"
            );
        }
        let wait = guards
            .admit_rate("sandbox", "r1")
            .await
            .unwrap()
            .unwrap_err();
        assert!(
            wait > Duration::from_millis(5_500) && wait <= Duration::from_secs(6),
            "{wait:?}"
        );
        // Refusals are not counted: asking again does not push the wait further out.
        let again = guards
            .admit_rate("sandbox", "r1")
            .await
            .unwrap()
            .unwrap_err();
        assert!(again <= wait, "{again:?} > {wait:?}");
        // Other runs and the other profile have their own cells.
        assert_eq!(guards.admit_rate("sandbox", "r2").await.unwrap(), Ok(()));
        assert_eq!(guards.admit_rate("production", "r1").await.unwrap(), Ok(()));
    }

    #[tokio::test]
    async fn a_zero_rate_disables_the_limit() {
        let redis = TestRedis::start().await;
        let settings = GuardSettings {
            rate_sandbox_per_min: 0,
            ..GuardSettings::default()
        };
        let guards = Guards::new(redis.conn().await, settings);
        for _ in 0..50 {
            assert_eq!(guards.admit_rate("sandbox", "r").await.unwrap(), Ok(()));
        }
    }

    #[tokio::test]
    async fn racing_workers_admit_exactly_the_limit() {
        let redis = TestRedis::start().await;
        let guards = Guards::new(redis.conn().await, GuardSettings::default());
        let tries = (0..40).map(|_| {
            let g = guards.clone();
            tokio::spawn(async move { g.admit_rate("sandbox", "race").await.unwrap().is_ok() })
        });
        let mut admitted = 0;
        for t in tries {
            admitted += t.await.unwrap() as u32;
        }
        assert_eq!(admitted, 10);
    }

    #[tokio::test]
    async fn an_unreachable_store_fails_closed() {
        let redis = TestRedis::start().await;
        let conn = redis.conn().await;
        drop(redis);
        let guards = Guards::new(conn, GuardSettings::default());
        assert!(guards.admit_rate("sandbox", "r").await.is_err());
    }
}
