//! Operator budget operations: what the seed's FastAPI control plane offered (seed 003), over
//! the same keys and TTLs, so budgets set here and there are interchangeable.
//!
//! Executions never call these; they charge through [`crate::budget::BudgetStore`].

use super::{BudgetError, BudgetStatus, BudgetStore, format_usd};
use redis::AsyncCommands;

/// Sets a run's limit: KEYS budget, spent, exceeded; ARGV limit, ttl seconds. Spend is kept
/// (created as 0 when missing) and `exceeded` recomputed, all in one step.
const SET_LUA: &str = r#"
local ttl = tonumber(ARGV[2])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
local spent = tonumber(redis.call('GET', KEYS[2]) or '0') or 0
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[2], '0', 'EX', ttl)
else
  redis.call('EXPIRE', KEYS[2], ttl)
end
local exceeded = '0'
if spent + 1e-9 >= tonumber(ARGV[1]) then exceeded = '1' end
redis.call('SET', KEYS[3], exceeded, 'EX', ttl)
return exceeded
"#;

impl BudgetStore {
    /// Sets (or replaces) the limit of `run_id`, keeping what it has spent.
    pub async fn set_limit(&self, run_id: &str, limit: f64) -> Result<BudgetStatus, BudgetError> {
        if !(limit.is_finite() && limit >= 0.0) {
            return Err(BudgetError::Unavailable(format!(
                "a limit must be a non-negative number of USD, not {limit}"
            )));
        }
        let _: String = redis::Script::new(SET_LUA)
            .key(format!("budget:{run_id}"))
            .key(format!("spent:{run_id}"))
            .key(format!("exceeded:{run_id}"))
            .arg(format_usd(limit))
            .arg(self.ttl().as_secs().max(1))
            .invoke_async(&mut self.connection())
            .await
            .map_err(|e| BudgetError::Unavailable(e.to_string()))?;
        self.status(run_id).await?.ok_or(BudgetError::NotFound)
    }

    /// Every run that has a budget, sorted by run id.
    pub async fn list(&self) -> Result<Vec<BudgetStatus>, BudgetError> {
        let mut conn = self.connection();
        let mut runs = Vec::new();
        {
            let mut iter: redis::AsyncIter<String> = conn
                .scan_match("budget:*")
                .await
                .map_err(|e| BudgetError::Unavailable(e.to_string()))?;
            while let Some(key) = iter.next_item().await {
                let key = key.map_err(|e| BudgetError::Unavailable(e.to_string()))?;
                if let Some(run) = key.strip_prefix("budget:") {
                    runs.push(run.to_string());
                }
            }
        }
        runs.sort();
        runs.dedup();
        let mut out = Vec::with_capacity(runs.len());
        for run in runs {
            if let Some(s) = self.status(&run).await? {
                out.push(s);
            }
        }
        Ok(out)
    }

    /// Deletes a run's budget, spend and exceeded flag. Returns whether it had a budget.
    pub async fn delete(&self, run_id: &str) -> Result<bool, BudgetError> {
        let deleted: i64 = self
            .connection()
            .del(&[
                format!("budget:{run_id}"),
                format!("spent:{run_id}"),
                format!("exceeded:{run_id}"),
            ])
            .await
            .map_err(|e| BudgetError::Unavailable(e.to_string()))?;
        Ok(deleted > 0)
    }
}

#[cfg(test)]
mod tests {
    use crate::budget::BudgetStore;
    use crate::testing::TestRedis;
    use redis::AsyncCommands;
    use std::time::Duration;

    #[tokio::test]
    async fn operations_round_trip_with_the_control_planes_keys() {
        let redis = TestRedis::start().await;
        let store = BudgetStore::new(&redis.url, 10.0, Duration::from_secs(3600)).unwrap();
        let mut conn = redis.conn().await;
        // What the seed's Python BudgetTracker writes: SET limit, SET 0, INCRBYFLOAT spend.
        let _: () = conn.set_ex("budget:py-run", "2.5", 600).await.unwrap();
        let _: () = conn.set_ex("spent:py-run", "0", 600).await.unwrap();
        let _: f64 = conn.incr("spent:py-run", 0.05f64).await.unwrap();
        let s = store.status("py-run").await.unwrap().unwrap();
        assert_eq!(
            (s.spent, s.limit, s.remaining, s.exceeded),
            (0.05, 2.5, 2.45, false)
        );

        // Lowering the limit under the spend keeps the spend and flags the run.
        let s = store.set_limit("py-run", 0.05).await.unwrap();
        assert!(s.exceeded);
        let flag: String = conn.get("exceeded:py-run").await.unwrap();
        assert_eq!(flag, "1");
        let ttl: i64 = conn.ttl("budget:py-run").await.unwrap();
        assert!(ttl > 3000, "the TTL is the store's, not the old one: {ttl}");

        let s = store.set_limit("new-run", 3.0).await.unwrap();
        assert_eq!((s.spent, s.limit, s.exceeded), (0.0, 3.0, false));
        let runs: Vec<_> = store
            .list()
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.run_id)
            .collect();
        assert_eq!(runs, ["new-run", "py-run"]);
        assert!(store.delete("py-run").await.unwrap());
        assert!(!store.delete("py-run").await.unwrap());
        assert!(store.status("py-run").await.unwrap().is_none());
        let spent: Option<String> = conn.get("spent:py-run").await.unwrap();
        assert_eq!(spent, None);
        assert!(store.set_limit("bad", f64::NAN).await.is_err());
    }

    #[tokio::test]
    async fn racing_charges_to_the_limit_emit_each_alert_exactly_once() {
        let redis = TestRedis::start().await;
        let store = BudgetStore::new(&redis.url, 10.0, Duration::from_secs(3600)).unwrap();
        store.set_limit("race", 0.2).await.unwrap();
        let charges = (0..40).map(|i| {
            let s = store.clone();
            tokio::spawn(async move { s.charge("race", &format!("c{i}"), 0.01).await.is_ok() })
        });
        let mut ok = 0;
        for c in charges {
            ok += c.await.unwrap() as u32;
        }
        assert_eq!(ok, 20, "exactly the limit was charged");
        let mut conn = redis.conn().await;
        let entries: redis::streams::StreamRangeReply =
            conn.xrange_all(crate::budget::ALERT_STREAM).await.unwrap();
        let mut thresholds: Vec<String> = entries
            .ids
            .iter()
            .map(|e| {
                assert_eq!(e.get::<String>("runId").unwrap(), "race");
                assert_eq!(e.get::<String>("limit").unwrap(), "0.2");
                assert!(e.get::<String>("timestamp").is_some());
                e.get::<String>("threshold").unwrap()
            })
            .collect();
        thresholds.sort_by_key(|t| t.parse::<u32>().unwrap());
        assert_eq!(thresholds, ["50", "80", "90", "100"]);
        // The crossing charge's spend is recorded: the 50 % alert fired at exactly 0.1.
        let fifty = entries
            .ids
            .iter()
            .find(|e| e.get::<String>("threshold").unwrap() == "50");
        assert_eq!(fifty.unwrap().get::<String>("spent").unwrap(), "0.1");
        // A refund and new charges do not emit any threshold again.
        store.refund("race", "c0").await.unwrap();
        store.charge("race", "again", 0.01).await.unwrap();
        let len: usize = conn.xlen(crate::budget::ALERT_STREAM).await.unwrap();
        assert_eq!(len, 4);
    }
}
