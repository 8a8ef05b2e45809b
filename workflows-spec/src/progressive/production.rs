//! `productionMonitorWorkflow`: seed 000's phase 3, continuous monitoring of full production.
//!
//! `progressiveDeployWorkflow` starts it after a promotion when `productionMonitorSecs` is set,
//! as a child it abandons, so it outlives the deployment. Every `checkIntervalSecs` until
//! `untilMs` (or a `stopMonitoring` signal) it runs the deployment's health check, judged as the
//! canary's were (see [`health`](super::health)), and alerts where budget alerts go:
//! `production.breach` (critical) when production turns unhealthy, once per breach, and
//! `production.recovered` (audit only) when a check is healthy again. It never deploys or rolls
//! back: production was approved, so what to do about a breach is a person's decision. A stop
//! is itself a warning alert (whoever may signal may silence it). Its
//! history stays bounded: every [`CHECKS_PER_RUN`] checks it continues as new, carrying its
//! counts and whether production is in breach.

use super::HealthMeasurement;
use super::health::{CheckRun, Limits, judge};
use super::workflow::{check_options, health_check, now_ms, record_event, woke_within};
use crate::activities::SafeExecuteCode;
use crate::workflow::fail;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ContinueAsNewOptions, SyncWorkflowContext, WorkflowContext, WorkflowContextView, WorkflowResult,
};

/// The workflow's name.
pub const PRODUCTION_MONITOR_WORKFLOW: &str = "productionMonitorWorkflow";
/// Signal carrying [`StopMonitoring`].
pub const STOP_MONITORING_SIGNAL: &str = "stopMonitoring";
/// Query returning [`ProductionMonitorStatus`].
pub const MONITOR_STATUS_QUERY: &str = "monitorStatus";
/// Checks per run before it continues as new (each check is a few history events).
pub const CHECKS_PER_RUN: u64 = 500;

/// Input of `productionMonitorWorkflow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ProductionMonitorInput {
    /// Names the budget the checks are charged to.
    pub run_id: String,
    /// Prints one JSON line `{"errorRate": 0.01, "p95LatencyMs": 120}`.
    pub health_check_command: String,
    /// Environment of the health check; redacted everywhere.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub health_check_env: BTreeMap<String, String>,
    /// Hosts the health check may reach.
    pub allowed_domains: Vec<String>,
    /// Seconds between checks (at least 1).
    pub check_interval_secs: u64,
    /// Highest healthy error rate (0..1).
    pub max_error_rate: f64,
    /// Highest healthy p95 latency, ms.
    pub max_latency_ms: f64,
    /// When monitoring ends, ms since the epoch (workflow time).
    pub until_ms: u64,
    /// Checks so far (carried over when it continues as new).
    #[serde(default)]
    pub checks: u64,
    /// Breaches so far (carried over).
    #[serde(default)]
    pub breaches: u64,
    /// Whether the last check was a breach (carried over: a breach is alerted once).
    #[serde(default)]
    pub in_breach: bool,
    /// Checks per run before it continues as new; default [`CHECKS_PER_RUN`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub checks_per_run: Option<u64>,
}

/// Payload of the `stopMonitoring` signal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StopMonitoring {
    /// Who stops it.
    pub approver: String,
    /// Why.
    #[serde(default)]
    pub reason: String,
}

/// What `monitorStatus` answers.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductionMonitorStatus {
    /// Checks so far, over every run.
    pub checks: u64,
    /// Breaches so far (a breach lasting several checks counts once).
    pub breaches: u64,
    /// Whether production is in breach now.
    pub in_breach: bool,
    /// The last check.
    pub last: Option<HealthMeasurement>,
    /// When monitoring ends, ms since the epoch.
    pub until_ms: u64,
}

/// Output of `productionMonitorWorkflow`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProductionMonitorResult {
    /// Checks, over every run.
    pub checks: u64,
    /// Breaches.
    pub breaches: u64,
    /// `window ended`, or who stopped it and why.
    pub ended: String,
}

/// The workflow's state, read by its query and written by its signal.
#[workflow]
#[derive(Default)]
pub struct ProductionMonitorWorkflow {
    status: ProductionMonitorStatus,
    stop: Option<StopMonitoring>,
}

#[workflow_methods]
impl ProductionMonitorWorkflow {
    /// Checks production until the window ends or someone stops it.
    #[run(name = "productionMonitorWorkflow")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        input: ProductionMonitorInput,
    ) -> WorkflowResult<ProductionMonitorResult> {
        let limits = match check(&input) {
            Ok(limits) => limits,
            Err(e) => return Err(fail("InvalidInput", e).into()),
        };
        ctx.state_mut(|w| {
            w.status = ProductionMonitorStatus {
                checks: input.checks,
                breaches: input.breaches,
                in_breach: input.in_breach,
                last: None,
                until_ms: input.until_ms,
            }
        });
        let interval = input.check_interval_secs.saturating_mul(1000);
        let per_run = input.checks_per_run.unwrap_or(CHECKS_PER_RUN).max(1);
        let mut this_run = 0;
        loop {
            let now = now_ms(ctx);
            if now >= input.until_ms || ctx.state(|w| w.stop.is_some()) {
                break;
            }
            // Only after the stop is looked at: a stop that came during the last check is not
            // handed to a new run that knows nothing of it.
            if this_run >= per_run || ctx.continue_as_new_suggested() {
                let status = ctx.state(|w| w.status.clone());
                ctx.continue_as_new(
                    ProductionMonitorInput {
                        checks: status.checks,
                        breaches: status.breaches,
                        in_breach: status.in_breach,
                        ..input.clone()
                    },
                    ContinueAsNewOptions::default(),
                )?;
            }
            let wait = Duration::from_millis(interval.min(input.until_ms - now).max(1));
            woke_within(ctx, wait, |w| w.stop.is_some()).await;
            if ctx.state(|w| w.stop.is_some()) || now_ms(ctx) >= input.until_ms {
                break;
            }
            let check = health_check(
                &input.run_id,
                &input.health_check_command,
                &input.health_check_env,
                &input.allowed_domains,
            );
            let checked = ctx
                .execute_activity(SafeExecuteCode, check, check_options())
                .await;
            let m = judge(&CheckRun::of(checked), limits, now_ms(ctx));
            let was = ctx.state(|w| w.status.in_breach);
            let (event, alert) = match (was, m.healthy) {
                (false, false) => (Some("production.breach"), Some("critical")),
                (true, true) => (Some("production.recovered"), None),
                _ => (None, None),
            };
            let note = m.note.clone();
            ctx.state_mut(|w| {
                w.status.checks += 1;
                w.status.in_breach = !m.healthy;
                if event == Some("production.breach") {
                    w.status.breaches += 1;
                }
                w.status.last = Some(m);
            });
            if let Some(event) = event {
                let outcome = if alert.is_some() {
                    "failure"
                } else {
                    "success"
                };
                record_event(
                    ctx,
                    &input.run_id,
                    (event, outcome, "workflow"),
                    &note,
                    alert,
                )
                .await;
            }
            this_run += 1;
        }
        let stop = ctx.state(|w| w.stop.clone());
        let ended = match &stop {
            Some(s) => format!("stopped by {}: {}", s.approver, s.reason),
            None => "window ended".to_string(),
        };
        let status = ctx.state(|w| w.status.clone());
        let detail = format!(
            "{}; {} checks, {} breaches",
            ended, status.checks, status.breaches
        );
        // Anyone who may signal may stop it, a hostile workflow too: silencing production's
        // alerts is itself an alert.
        match &stop {
            Some(s) => {
                let e = ("production.monitor.stopped", "info", s.approver.as_str());
                record_event(ctx, &input.run_id, e, &detail, Some("warning")).await
            }
            None => {
                let e = ("production.monitor.ended", "success", "workflow");
                record_event(ctx, &input.run_id, e, &detail, None).await
            }
        }
        Ok(ProductionMonitorResult {
            checks: status.checks,
            breaches: status.breaches,
            ended,
        })
    }

    /// Ends the monitoring (the first stop counts).
    #[signal(name = "stopMonitoring")]
    pub fn stop_monitoring(&mut self, _ctx: &mut SyncWorkflowContext<Self>, stop: StopMonitoring) {
        if self.stop.is_none() {
            self.stop = Some(stop);
        }
    }

    /// Checks and breaches so far, the last check, when it ends.
    #[query(name = "monitorStatus")]
    pub fn monitor_status(&self, _ctx: &WorkflowContextView) -> ProductionMonitorStatus {
        self.status.clone()
    }
}

/// The limits, or why the input could never run: no command, no interval, limits out of range.
fn check(input: &ProductionMonitorInput) -> Result<Limits, String> {
    if input.health_check_command.trim().is_empty() {
        return Err("healthCheckCommand is empty".into());
    }
    if input.check_interval_secs == 0 {
        return Err("checkIntervalSecs must be at least 1".into());
    }
    Limits::new(input.max_error_rate, input.max_latency_ms)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_that_could_never_run_are_refused() {
        let good: ProductionMonitorInput = serde_json::from_value(serde_json::json!({
            "runId": "r", "healthCheckCommand": "true", "allowedDomains": [],
            "checkIntervalSecs": 60, "maxErrorRate": 0.05, "maxLatencyMs": 5000, "untilMs": 1
        }))
        .unwrap();
        assert!(check(&good).is_ok());
        let bad = [
            ProductionMonitorInput {
                health_check_command: " ".into(),
                ..good.clone()
            },
            ProductionMonitorInput {
                check_interval_secs: 0,
                ..good.clone()
            },
            ProductionMonitorInput {
                max_error_rate: 1.5,
                ..good.clone()
            },
            ProductionMonitorInput {
                max_latency_ms: f64::NAN,
                ..good.clone()
            },
        ];
        for input in bad {
            assert!(check(&input).is_err(), "{input:?}");
        }
    }
}
