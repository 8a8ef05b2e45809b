//! Per-run budgets in Redis, in the key layout of the existing control plane (seed 003).
//!
//! `budget:<runId>` holds the limit and `spent:<runId>` the spend, both decimal strings in USD;
//! `exceeded:<runId>` is "0" or "1"; all three live 7 days. The Python BudgetTracker and this
//! module read and write the same keys, so budgets it created are honoured here and spend
//! recorded here shows there.
//!
//! This module owns the check-and-charge step and its refund. Both are single Lua scripts, so
//! concurrent executions racing on the last cents can never overspend, and each charge is keyed
//! by the activity attempt that made it, so replaying the same attempt never charges twice. It
//! does not decide what things cost (the activities do) nor create budgets on its own initiative
//! (only the configured default for a run that has none).
//!
//! The charge script also decides budget alerts: the first charge that takes a run's spend to
//! 50, 80, 90 or 100 % of its limit appends one entry to the stream `ae:alerts` (`runId`,
//! `threshold`, `spent`, `limit`, `timestamp`) and the worker logs it (target `ae_alert`); each
//! threshold is emitted once per run (`ae:alerted:<runId>`), however many charges race.

mod ops;
mod webhook;

use redis::aio::ConnectionManager;
use serde::Serialize;
use std::time::Duration;

/// The state of one run's budget, as seed 003's `BudgetStatus`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BudgetStatus {
    /// The run.
    pub run_id: String,
    /// USD spent so far.
    pub spent: f64,
    /// USD limit.
    pub limit: f64,
    /// USD left (never negative).
    pub remaining: f64,
    /// Whether the spend reached the limit.
    pub exceeded: bool,
}

impl BudgetStatus {
    fn new(run_id: &str, spent: f64, limit: f64) -> Self {
        Self {
            run_id: run_id.to_string(),
            spent,
            limit,
            remaining: round_usd((limit - spent).max(0.0)),
            exceeded: spent + EPSILON >= limit,
        }
    }
}

/// Why a charge was not made.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum BudgetError {
    /// The charge would take the spend past the limit. Nothing was charged.
    #[error(
        "budget exceeded for run: {spent:.2}/{limit:.2} USD spent, {amount:.2} USD more refused"
    )]
    Exceeded { spent: f64, limit: f64, amount: f64 },
    /// The run has no budget and the default budget is disabled.
    #[error("no budget exists for this run and the default budget is disabled")]
    NotFound,
    /// Redis could not answer; nothing may run without a budget check.
    #[error("budget store unavailable: {0}")]
    Unavailable(String),
}

/// Amounts are compared with this slack so 0.1 + 0.2 does not exceed 0.3.
const EPSILON: f64 = 1e-9;

/// Check-and-charge, atomically.
///
/// KEYS: budget, spent, exceeded, charge marker. ARGV: amount, default limit, ttl seconds.
/// Returns {status, spent, limit}; status is `ok`, `dup` (this attempt was already charged),
/// `exceeded` or `notfound`. Numbers travel as strings: Lua numbers would be truncated to
/// integers on the way out.
const CHARGE_LUA: &str = include_str!("charge.lua");

/// Gives back (part of) a charge made by [`CHARGE_LUA`]; never more than was charged under that
/// marker, however often it is called. KEYS as above; ARGV: ttl seconds, amount (empty: all).
const REFUND_LUA: &str = include_str!("refund.lua");

/// The Redis-backed budget store shared by every activity of a worker.
#[derive(Clone)]
pub struct BudgetStore {
    conn: ConnectionManager,
    default_limit: f64,
    ttl: Duration,
    charge: redis::Script,
    refund: redis::Script,
    alert_webhook: Option<String>,
}

impl BudgetStore {
    /// Connects lazily: a worker starts even while Redis is down, and every charge attempted
    /// meanwhile fails with [`BudgetError::Unavailable`] instead of running unchecked.
    pub fn new(redis_url: &str, default_limit: f64, ttl: Duration) -> Result<Self, BudgetError> {
        let client =
            redis::Client::open(redis_url).map_err(|e| BudgetError::Unavailable(e.to_string()))?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(2)))
            .set_response_timeout(Some(Duration::from_secs(2)))
            .set_number_of_retries(2)
            .set_max_delay(Duration::from_millis(500));
        let conn = ConnectionManager::new_lazy_with_config(client, config)
            .map_err(|e| BudgetError::Unavailable(e.to_string()))?;
        Ok(Self {
            conn,
            default_limit,
            ttl,
            alert_webhook: None,
            charge: redis::Script::new(CHARGE_LUA),
            refund: redis::Script::new(REFUND_LUA),
        })
    }

    /// Also POST every budget alert to `url` (`AE_ALERT_WEBHOOK_URL`).
    pub fn with_alert_webhook(mut self, url: Option<String>) -> Self {
        self.alert_webhook = url.filter(|u| !u.trim().is_empty());
        self
    }

    /// POSTs `alert` to the alert webhook when one is configured (deployment alerts go where
    /// budget alerts go).
    pub fn post_alert(&self, alert: serde_json::Value) {
        if let Some(url) = &self.alert_webhook {
            webhook::post(url, alert);
        }
    }

    /// How long budget keys live after their last write.
    pub fn ttl(&self) -> Duration {
        self.ttl
    }

    /// The shared Redis connection (reconnecting), for the other Redis-backed controls.
    pub fn connection(&self) -> ConnectionManager {
        self.conn.clone()
    }

    /// Charges `amount` USD to `run_id` unless that would pass its limit. `charge_id` names the
    /// activity attempt: a second call with the same id charges nothing and reports the status.
    pub async fn charge(
        &self,
        run_id: &str,
        charge_id: &str,
        amount: f64,
    ) -> Result<BudgetStatus, BudgetError> {
        let (status, spent, limit) = self
            .invoke(
                &self.charge,
                run_id,
                charge_id,
                &[
                    format_usd(amount),
                    format_usd(self.default_limit),
                    self.ttl.as_secs().max(1).to_string(),
                ],
            )
            .await?;
        match status.as_str() {
            "ok" | "dup" => Ok(BudgetStatus::new(run_id, spent, limit)),
            "exceeded" => Err(BudgetError::Exceeded {
                spent,
                limit,
                amount,
            }),
            "notfound" => Err(BudgetError::NotFound),
            other => Err(BudgetError::Unavailable(format!(
                "unexpected reply from budget script: {other}"
            ))),
        }
    }

    /// Gives back the charge made under `charge_id`, if any: an execution that failed before its
    /// command started is not charged.
    pub async fn refund(&self, run_id: &str, charge_id: &str) -> Result<BudgetStatus, BudgetError> {
        self.refund_part(run_id, charge_id, None).await
    }

    /// Gives back `amount` (at most what is left of the charge), or all of it when None: a
    /// batch reserves for every command and returns what the commands it did not run cost.
    pub async fn refund_part(
        &self,
        run_id: &str,
        charge_id: &str,
        amount: Option<f64>,
    ) -> Result<BudgetStatus, BudgetError> {
        let ttl = self.ttl.as_secs().max(1).to_string();
        let amount = amount.map(format_usd).unwrap_or_default();
        let (_, spent, limit) = self
            .invoke(&self.refund, run_id, charge_id, &[ttl, amount])
            .await?;
        Ok(BudgetStatus::new(run_id, spent, limit))
    }

    /// Runs a budget script on the run's keys and the charge's marker; returns its
    /// (status, spent, limit).
    async fn invoke(
        &self,
        script: &redis::Script,
        run_id: &str,
        charge_id: &str,
        args: &[String],
    ) -> Result<(String, f64, f64), BudgetError> {
        let keys = Keys::new(run_id, charge_id);
        let mut call = script.key(&keys.budget);
        call.key(&keys.spent).key(&keys.exceeded).key(&keys.charge);
        call.key(&keys.alerted).key(ALERT_STREAM);
        for a in args {
            call.arg(a);
        }
        call.arg(run_id).arg(ALERT_STREAM_LEN);
        let reply: Vec<String> = call
            .invoke_async(&mut self.conn.clone())
            .await
            .map_err(|e| BudgetError::Unavailable(e.to_string()))?;
        let [status, spent, limit, alerts @ ..] = reply.as_slice() else {
            return Err(BudgetError::Unavailable(format!(
                "unexpected reply from budget script: {reply:?}"
            )));
        };
        let (spent, limit) = (parse_usd(spent), parse_usd(limit));
        for pct in alerts {
            // The stream entry is written; this is the log event (and webhook) beside it.
            tracing::warn!(target: "ae_alert", run_id, threshold = %pct, spent, limit, "budget alert: {pct}% of the run's budget spent");
            if let Some(url) = &self.alert_webhook {
                let alert = serde_json::json!({
                    "runId": run_id, "threshold": pct.parse::<u32>().unwrap_or(0),
                    "spent": spent, "limit": limit,
                    "timestamp": std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .unwrap_or_default()
                        .as_millis() as u64,
                });
                webhook::post(url, alert);
            }
        }
        Ok((status.clone(), spent, limit))
    }

    /// The run's budget, or None when it has none.
    pub async fn status(&self, run_id: &str) -> Result<Option<BudgetStatus>, BudgetError> {
        let keys = Keys::new(run_id, "");
        let mut conn = self.conn.clone();
        let (limit, spent): (Option<String>, Option<String>) = redis::pipe()
            .get(&keys.budget)
            .get(&keys.spent)
            .query_async(&mut conn)
            .await
            .map_err(|e| BudgetError::Unavailable(e.to_string()))?;
        Ok(limit.map(|l| {
            BudgetStatus::new(
                run_id,
                spent.as_deref().map(parse_usd).unwrap_or(0.0),
                parse_usd(&l),
            )
        }))
    }
}

/// The Redis keys of one run (seed 003) and of one charge (ours).
struct Keys {
    budget: String,
    spent: String,
    exceeded: String,
    charge: String,
    alerted: String,
}

/// The Redis stream every budget alert is appended to (seed 001's 50/80/90 %, and 100 %).
pub const ALERT_STREAM: &str = "ae:alerts";
/// About how many alerts the stream keeps (`XADD MAXLEN ~`).
const ALERT_STREAM_LEN: u32 = 100_000;

impl Keys {
    fn new(run_id: &str, charge_id: &str) -> Self {
        Self {
            budget: format!("budget:{run_id}"),
            spent: format!("spent:{run_id}"),
            exceeded: format!("exceeded:{run_id}"),
            charge: format!("ae:charge:{run_id}:{charge_id}"),
            alerted: format!("ae:alerted:{run_id}"),
        }
    }
}

/// A decimal string with at most 6 places, as the control plane writes them.
pub fn format_usd(x: f64) -> String {
    let s = format!("{x:.6}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    if s.is_empty() { "0".into() } else { s.into() }
}

fn parse_usd(s: &str) -> f64 {
    s.trim().parse().unwrap_or(0.0)
}

/// Rounds to micro-dollars so results do not show float noise like 9.990000000000002.
pub fn round_usd(x: f64) -> f64 {
    (x * 1_000_000.0).round() / 1_000_000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_amounts_as_short_decimals() {
        assert_eq!(format_usd(0.01), "0.01");
        assert_eq!(format_usd(10.0), "10");
        assert_eq!(format_usd(0.0), "0");
        assert_eq!(format_usd(9.99), "9.99");
    }

    #[test]
    fn status_reports_remaining_and_exceeded() {
        let s = BudgetStatus::new("r", 0.3, 0.3);
        assert!(s.exceeded);
        assert_eq!(s.remaining, 0.0);
        let s = BudgetStatus::new("r", 0.1 + 0.2, 1.0);
        assert!(!s.exceeded);
        assert_eq!(s.remaining, 0.7);
    }
}
