//! The audit log: every approval decision and deployment, as structured records, and every
//! activity execution as an entry of the Redis stream `ae:audit` (seed 004's who, what, where,
//! outcome, when), which any worker of the fleet appends to and `ae-worker audit` prints.
//!
//! Each record carries the fields of seed 000 §3 and seed 004 (who, action, environment,
//! outcome, approval, time) and is emitted as a `tracing` event with target `ae_audit`, so it
//! flows wherever the worker's logs go (JSON with `AE_LOG_FORMAT=json`). When `AE_AUDIT_FILE`
//! names a file, records are also appended there as JSON lines. Every string is redacted.
//! Workflows (which cannot reach Redis) append their phases and decisions, and their alerts to
//! `ae:alerts`, through the `recordDeploymentEvent` activity ([`AuditLog::append_event`]). This
//! module does not decide anything; it records what others decided.

use crate::redact::Redactor;
use redis::aio::ConnectionManager;
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
    /// The fleet's Redis and about how many entries `ae:audit` keeps.
    stream: Option<(ConnectionManager, usize)>,
}

/// The Redis stream of audit entries.
pub const AUDIT_STREAM: &str = "ae:audit";

/// One entry of the audit stream: one activity execution or one approval decision.
#[derive(Debug, Clone, Default)]
pub struct StreamEntry<'a> {
    /// The run.
    pub run_id: &'a str,
    /// The calling workflow (empty for a standalone activity).
    pub workflow_id: &'a str,
    /// `safeExecuteCode`, `safeExecuteBatch` or `deployWithApproval`.
    pub activity: &'a str,
    /// `sandbox` or `production`.
    pub environment: &'a str,
    /// The redacted command (or the deploy, or `deploy.approval`).
    pub action: &'a str,
    /// `success`, `failure` or `blocked`.
    pub outcome: &'a str,
    /// The rule id or failure type behind a refusal or failure; empty on success.
    pub reason: &'a str,
    /// The approver for deploys, the worker's identity otherwise.
    pub actor: &'a str,
    /// The identity the server stored with the approving signal (deploys).
    pub client_identity: &'a str,
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
        Ok(Self {
            file,
            path,
            stream: None,
        })
    }

    /// Also append to the Redis stream `ae:audit`, capped at about `max_len` entries.
    pub fn with_stream(mut self, conn: ConnectionManager, max_len: usize) -> Self {
        self.stream = Some((conn, max_len));
        self
    }

    /// Appends one entry to `ae:audit` (when configured). A failure to append is logged, not
    /// raised: the execution it records has already happened.
    pub async fn append(&self, e: &StreamEntry<'_>) {
        let Some((conn, max_len)) = &self.stream else {
            return;
        };
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis()
            .to_string();
        // Long commands are cut: the stream is an index of what happened, not a transcript.
        let action: String = e.action.chars().take(2000).collect();
        let fields = [
            ("timestamp", now.as_str()),
            ("runId", e.run_id),
            ("workflowId", e.workflow_id),
            ("activity", e.activity),
            ("environment", e.environment),
            ("action", action.as_str()),
            ("outcome", e.outcome),
            ("reason", e.reason),
            ("actor", e.actor),
            ("clientIdentity", e.client_identity),
        ]
        .map(|(k, v)| (k, v.to_string()));
        xadd(conn.clone(), *max_len, fields).await;
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
        // Approval decisions also go to the stream (executions are appended by `append`).
        if let Some((conn, max_len)) = &self.stream
            && action == "deploy.approval"
        {
            let identity = r
                .approval
                .as_ref()
                .and_then(|a| a["identity"].as_str())
                .unwrap_or_default();
            let fields = [
                ("timestamp", r.time_ms.to_string()),
                ("runId", r.run_id.clone()),
                ("workflowId", r.workflow_id.clone()),
                ("activity", "deployWithApproval".into()),
                ("environment", r.environment.clone()),
                ("action", r.action.clone()),
                ("outcome", r.outcome.clone()),
                ("reason", redactor.redact_str(&r.detail)),
                ("actor", r.who.clone()),
                ("clientIdentity", identity.to_string()),
            ];
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(xadd(conn.clone(), *max_len, fields));
            }
        }
        if let Some(file) = &self.file {
            let mut f = file.lock().unwrap_or_else(|e| e.into_inner());
            if let Err(e) = writeln!(f, "{line}") {
                tracing::error!(path = ?self.path, error = %e, "cannot append to the audit file");
            }
        }
    }
}

/// Appends one audit entry and, when `alert` is not empty, one alert, unless `marker` says an
/// earlier attempt did: KEYS marker, audit stream, alert stream; ARGV ttl, max len, number of
/// audit arguments, the audit field/value pairs, then the alert's.
const EVENT_LUA: &str = r#"
if not redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) then return 0 end
local n = tonumber(ARGV[3])
local audit = {}
for i = 4, 3 + n do audit[#audit + 1] = ARGV[i] end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', unpack(audit))
if #ARGV > 3 + n then
  local alert = {}
  for i = 4 + n, #ARGV do alert[#alert + 1] = ARGV[i] end
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[2], '*', unpack(alert))
end
return 1
"#;

impl AuditLog {
    /// Appends an event of a workflow (and its alert) exactly once per `marker` key, kept
    /// `ttl_secs`. Ok(false): already recorded. Err: Redis did not answer (nothing written).
    pub async fn append_event(
        &self,
        marker: &str,
        ttl_secs: u64,
        entry: &[(&str, String)],
        alert: &[(&str, String)],
    ) -> Result<bool, String> {
        let Some((conn, max_len)) = &self.stream else {
            return Err("the audit stream is not configured".into());
        };
        let script = redis::Script::new(EVENT_LUA);
        let mut call = script.prepare_invoke();
        call.key(marker)
            .key(AUDIT_STREAM)
            .key(crate::budget::ALERT_STREAM)
            .arg(ttl_secs.max(1))
            .arg(*max_len)
            .arg(entry.len() * 2);
        for (k, v) in entry.iter().chain(alert) {
            call.arg(*k).arg(v);
        }
        let added: i64 = call
            .invoke_async(&mut conn.clone())
            .await
            .map_err(|e| e.to_string())?;
        Ok(added == 1)
    }
}

/// Appends `fields` to `ae:audit`, capped at about `max_len` entries; a failure is logged.
async fn xadd(mut conn: ConnectionManager, max_len: usize, fields: [(&'static str, String); 10]) {
    let added: Result<String, _> = redis::cmd("XADD")
        .arg(AUDIT_STREAM)
        .arg("MAXLEN")
        .arg("~")
        .arg(max_len)
        .arg("*")
        .arg(&fields[..])
        .query_async(&mut conn)
        .await;
    if let Err(e) = added {
        tracing::error!(error = %e, "cannot append to the audit stream");
    }
}
