//! The per-run circuit breaker (`circuit_admit.lua`, `circuit_record.lua`).
//!
//! Closed, it admits everything and counts consecutive failures (a policy refusal, a timeout,
//! an OOM kill, a sandbox error; a non-zero exit is an ordinary result). At the threshold it
//! opens for the cooldown and admits nothing. Then it is half-open: exactly one trial request
//! across the fleet; the trial's success closes it, its failure opens it again.

use super::{GuardError, Guards, KEY_TTL, keys};
use redis::AsyncCommands;
use serde::Serialize;
use std::time::Duration;

/// What the circuit said to one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CircuitAdmission {
    /// Admitted. `trial` is set when this request is the half-open circuit's one trial, and
    /// must be passed back to [`Guards::record_outcome`].
    Admitted {
        /// The trial id, when this request is the trial.
        trial: Option<String>,
    },
    /// Refused: the circuit is open (or half-open with its trial running) for `retry_in`.
    Open {
        /// When the circuit will admit a request again, at the earliest.
        retry_in: Duration,
    },
}

/// A run's circuit, for operators.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct CircuitStatus {
    /// The run.
    pub run_id: String,
    /// `closed`, `open` or `half-open`.
    pub state: String,
    /// Consecutive failures counted while closed.
    pub failures: u32,
    /// Unix time (ms) the open circuit half-opens.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub open_until_ms: Option<u64>,
}

impl Guards {
    /// Asks the run's circuit to admit one request. `trial_window` is how long this request may
    /// run if it becomes the trial (after that another trial may start).
    pub async fn admit_circuit(
        &self,
        run_id: &str,
        trial_window: Duration,
    ) -> Result<CircuitAdmission, GuardError> {
        if self.settings.circuit_failures == 0 {
            return Ok(CircuitAdmission::Admitted { trial: None });
        }
        let trial = uuid::Uuid::new_v4().simple().to_string();
        let (state, ms): (String, i64) = self
            .circuit_admit
            .key(keys::circuit(run_id))
            .arg(&trial)
            .arg(trial_window.as_millis().max(1000) as u64)
            .arg(KEY_TTL.as_secs())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(match state.as_str() {
            "closed" => CircuitAdmission::Admitted { trial: None },
            "trial" => CircuitAdmission::Admitted { trial: Some(trial) },
            _ => CircuitAdmission::Open {
                retry_in: Duration::from_millis(ms.max(0) as u64),
            },
        })
    }

    /// Records how an admitted request ended (`ok`: it ran and finished normally). Returns the
    /// circuit's state after it.
    pub async fn record_outcome(
        &self,
        run_id: &str,
        trial: Option<&str>,
        ok: bool,
    ) -> Result<String, GuardError> {
        self.record(run_id, trial, if ok { "ok" } else { "fail" })
            .await
    }

    /// Records that an admitted request ended without a verdict (kill switch, cancellation):
    /// nothing is counted, and a trial gives up its place.
    pub async fn record_no_verdict(
        &self,
        run_id: &str,
        trial: Option<&str>,
    ) -> Result<String, GuardError> {
        self.record(run_id, trial, "skip").await
    }

    async fn record(
        &self,
        run_id: &str,
        trial: Option<&str>,
        verdict: &str,
    ) -> Result<String, GuardError> {
        if self.settings.circuit_failures == 0 {
            return Ok("closed".into());
        }
        let state: String = self
            .circuit_record
            .key(keys::circuit(run_id))
            .arg(verdict)
            .arg(trial.unwrap_or(""))
            .arg(self.settings.circuit_failures)
            .arg(self.settings.circuit_cooldown.as_millis() as u64)
            .arg(KEY_TTL.as_secs())
            .invoke_async(&mut self.conn())
            .await?;
        Ok(state)
    }

    /// The run's circuit as it stands.
    pub async fn circuit_status(&self, run_id: &str) -> Result<CircuitStatus, GuardError> {
        let (state, failures, until): (Option<String>, Option<u32>, Option<u64>) =
            redis::cmd("HMGET")
                .arg(keys::circuit(run_id))
                .arg("state")
                .arg("failures")
                .arg("until")
                .query_async(&mut self.conn())
                .await?;
        let state = match state.as_deref() {
            None | Some("closed") => "closed",
            Some("half") => "half-open",
            Some(_) => "open",
        };
        Ok(CircuitStatus {
            run_id: run_id.to_string(),
            state: state.to_string(),
            failures: failures.unwrap_or(0),
            open_until_ms: until.filter(|_| state != "closed"),
        })
    }

    /// Closes the run's circuit (operator reset).
    pub async fn reset_circuit(&self, run_id: &str) -> Result<(), GuardError> {
        let _: i64 = self.conn().del(keys::circuit(run_id)).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::{GuardSettings, Guards};
    use super::*;
    use crate::testing::TestRedis;

    fn settings(cooldown_ms: u64) -> GuardSettings {
        GuardSettings {
            circuit_cooldown: Duration::from_millis(cooldown_ms),
            ..GuardSettings::default()
        }
    }

    async fn admitted(g: &Guards, run: &str) -> Option<Option<String>> {
        match g.admit_circuit(run, Duration::from_secs(60)).await.unwrap() {
            CircuitAdmission::Admitted { trial } => Some(trial),
            CircuitAdmission::Open { .. } => None,
        }
    }

    #[tokio::test]
    async fn three_failures_open_then_one_trial_closes() {
        let redis = TestRedis::start().await;
        let g = Guards::new(redis.conn().await, settings(300));
        for _ in 0..2 {
            assert_eq!(admitted(&g, "r").await, Some(None));
            assert_eq!(g.record_outcome("r", None, false).await.unwrap(), "closed");
        }
        // A success in between resets the count: failures must be consecutive.
        g.record_outcome("r", None, true).await.unwrap();
        for _ in 0..2 {
            g.record_outcome("r", None, false).await.unwrap();
        }
        assert_eq!(g.record_outcome("r", None, false).await.unwrap(), "open");
        match g.admit_circuit("r", Duration::from_secs(60)).await.unwrap() {
            CircuitAdmission::Open { retry_in } => assert!(retry_in <= Duration::from_millis(300)),
            other => panic!("{other:?}"),
        }
        assert_eq!(g.circuit_status("r").await.unwrap().state, "open");
        tokio::time::sleep(Duration::from_millis(350)).await;
        // Half-open: racing requests, exactly one trial.
        let tries = (0..10).map(|_| {
            let g = g.clone();
            tokio::spawn(async move { admitted(&g, "r").await })
        });
        let mut trials = Vec::new();
        for t in tries {
            if let Some(trial) = t.await.unwrap() {
                trials.push(trial.expect("admitted while half-open means a trial"));
            }
        }
        assert_eq!(trials.len(), 1);
        assert_eq!(g.circuit_status("r").await.unwrap().state, "half-open");
        // A request admitted earlier finishing now does not decide; the trial does.
        assert_eq!(g.record_outcome("r", None, true).await.unwrap(), "half");
        assert_eq!(
            g.record_outcome("r", Some(&trials[0]), true).await.unwrap(),
            "closed"
        );
        assert_eq!(admitted(&g, "r").await, Some(None));
    }

    #[tokio::test]
    async fn a_failed_trial_opens_again_and_reset_closes() {
        let redis = TestRedis::start().await;
        let g = Guards::new(redis.conn().await, settings(200));
        for _ in 0..3 {
            g.record_outcome("r", None, false).await.unwrap();
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
        let trial = admitted(&g, "r").await.unwrap().unwrap();
        assert_eq!(
            g.record_outcome("r", Some(&trial), false).await.unwrap(),
            "open"
        );
        assert_eq!(admitted(&g, "r").await, None);
        tokio::time::sleep(Duration::from_millis(250)).await;
        // A trial that ends without a verdict gives its place to the next request.
        let trial = admitted(&g, "r").await.unwrap().unwrap();
        assert_eq!(admitted(&g, "r").await, None);
        g.record_no_verdict("r", Some(&trial)).await.unwrap();
        assert!(admitted(&g, "r").await.unwrap().is_some());
        g.reset_circuit("r").await.unwrap();
        assert_eq!(admitted(&g, "r").await, Some(None));
        assert_eq!(g.circuit_status("r").await.unwrap().state, "closed");
    }
}
