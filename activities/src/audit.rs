//! The audit log: every approval decision and deployment, as structured records.
//!
//! Each record carries the fields of seed 000 §3 and seed 004 (who, action, environment,
//! outcome, approval, time) and is emitted as a `tracing` event with target `ae_audit`, so it
//! flows wherever the worker's logs go (JSON with `AE_LOG_FORMAT=json`). When `AE_AUDIT_FILE`
//! names a file, records are also appended there as JSON lines. Every string is redacted. This
//! module does not decide anything; it records what others decided.

use crate::redact::Redactor;
use serde::Serialize;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// One audit record.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AuditRecord {
    /// Unix time, milliseconds.
    pub time_ms: u128,
    /// Who acted: the approver, or the workflow for unapproved attempts.
    pub who: String,
    /// e.g. `deploy.approval`, `deploy`.
    pub action: String,
    /// `production` or `sandbox`.
    pub environment: String,
    /// `accepted`, `rejected`, `invalid`, `blocked`, `success`, `failure`.
    pub outcome: String,
    /// The approval behind the action: approver, identity the server stored, plan digest.
    pub approval: Option<serde_json::Value>,
    /// The run.
    pub run_id: String,
    /// The calling workflow.
    pub workflow_id: String,
    /// Free text: why, or what happened.
    pub detail: String,
}

/// Writes audit records.
pub struct AuditLog {
    file: Option<Mutex<std::fs::File>>,
    path: Option<PathBuf>,
}

impl AuditLog {
    /// A log that also appends to `path`, when given.
    pub fn new(path: Option<PathBuf>) -> std::io::Result<Self> {
        let file = match &path {
            Some(p) => Some(Mutex::new(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(p)?,
            )),
            None => None,
        };
        Ok(Self { file, path })
    }

    /// Records one event, redacted.
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &self,
        redactor: &Redactor,
        who: &str,
        action: &str,
        environment: &str,
        outcome: &str,
        approval: Option<serde_json::Value>,
        run_id: &str,
        workflow_id: &str,
        detail: &str,
    ) {
        let r = AuditRecord {
            time_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_millis(),
            who: who.into(),
            action: action.into(),
            environment: environment.into(),
            outcome: outcome.into(),
            approval,
            run_id: run_id.into(),
            workflow_id: workflow_id.into(),
            detail: detail.into(),
        };
        let line = redactor.redact_str(&serde_json::to_string(&r).unwrap_or_default());
        tracing::info!(target: "ae_audit", record = %line, "audit");
        if let Some(file) = &self.file {
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = writeln!(f, "{line}") {
                tracing::error!(path = ?self.path, error = %e, "cannot append to the audit file");
            }
        }
    }
}
