//! `recordDeploymentEvent`: a workflow's phase change or decision (workflows cannot reach
//! Redis) as one `ae:audit` entry, and, when it is an alert, one `ae:alerts` entry, the log
//! event `ae_alert` and a POST to the alert webhook, where budget alerts go. A retry of the same
//! activity records nothing twice (a marker per workflow run and activity id). Every string is
//! redacted. It runs no command and charges nothing.

use crate::error::Failure;
use crate::pipeline::Engine;
use ae_workflows_spec::FailureType;
use ae_workflows_spec::progressive::{DeploymentEvent, EventRecorded};
use std::collections::BTreeMap;
use std::time::{SystemTime, UNIX_EPOCH};
use temporalio_common::data_converters::RawValue;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// How long the once-only marker of an event is kept.
const MARKER_TTL_SECS: u64 = 7 * 24 * 60 * 60;

static NO_ENV: BTreeMap<String, String> = BTreeMap::new();

impl Engine {
    /// The `recordDeploymentEvent` activity.
    pub async fn record_deployment_event(
        &self,
        ctx: &ActivityContext,
        raw: RawValue,
    ) -> Result<EventRecorded, ActivityError> {
        let (e, redactor) = self.begin(&raw, |_: &DeploymentEvent| &NO_ENV)?;
        let fail = |f: Failure| f.into_activity_error(&redactor);
        crate::pipeline::validate::check_run_id(&e.run_id).map_err(fail)?;
        let alert = match e.alert.as_deref() {
            None => None,
            Some(a @ ("warning" | "critical")) => Some(a),
            Some(other) => {
                return Err(fail(Failure::invalid_input(format!(
                    "alert must be warning or critical, not {other:?}"
                ))));
            }
        };
        let info = ctx.info();
        let workflow_id = info.workflow_id.clone().unwrap_or_default();
        let workflow_run = info.workflow_run_id.clone().unwrap_or_default();
        let cut = |s: &str, n: usize| redactor.redact_str(&s.chars().take(n).collect::<String>());
        let (event, actor, detail) = (cut(&e.event, 100), cut(&e.actor, 200), cut(&e.detail, 2000));
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .to_string();
        let entry = [
            ("timestamp", now.clone()),
            ("runId", e.run_id.clone()),
            ("workflowId", workflow_id.clone()),
            ("activity", "recordDeploymentEvent".to_string()),
            ("environment", "production".to_string()),
            ("action", format!("progressive.{event}")),
            ("outcome", cut(&e.outcome, 50)),
            ("reason", detail.clone()),
            ("actor", actor.clone()),
            ("clientIdentity", String::new()),
        ];
        let alert_fields: Vec<(&str, String)> = match alert {
            None => Vec::new(),
            Some(severity) => vec![
                ("runId", e.run_id.clone()),
                ("type", "deployment".to_string()),
                ("severity", severity.to_string()),
                ("event", event.clone()),
                ("workflowId", workflow_id.clone()),
                ("message", detail.clone()),
                ("timestamp", now.clone()),
            ],
        };
        let marker = format!("ae:event:{workflow_run}:{}", info.activity_id);
        let recorded = self
            .audit
            .append_event(&marker, MARKER_TTL_SECS, &entry, &alert_fields)
            .await
            .map_err(|m| {
                fail(Failure::new(
                    FailureType::BudgetStoreUnavailable,
                    format!("cannot record the deployment event: {m}"),
                ))
            })?;
        tracing::info!(target: "ae_audit", run_id = %e.run_id, workflow_id, event, outcome = %e.outcome, actor, detail, "deployment event");
        if recorded && let Some(severity) = alert {
            tracing::warn!(target: "ae_alert", run_id = %e.run_id, workflow_id, event, severity, detail, "deployment alert");
            self.budget.post_alert(serde_json::json!({
                "runId": e.run_id, "type": "deployment", "severity": severity, "event": event,
                "workflowId": workflow_id, "message": detail,
                "timestamp": now.parse::<u64>().unwrap_or(0),
            }));
        }
        Ok(EventRecorded { recorded })
    }
}
