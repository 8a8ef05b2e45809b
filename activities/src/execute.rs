//! `safeExecuteCode`: one command, end to end.
//!
//! The steps, in order: decode and validate the input; ask the policy; charge the budget
//! (atomically, once per attempt); start a fresh sandbox and copy the files in; run the command
//! while heartbeating and watching for cancellation; remove the sandbox; redact; return. A
//! failure before the command starts gives the charge back. Every failure leaves as a typed
//! application failure whose message has been redacted.
//!
//! This module owns that order and the activity-facing behaviour. The parts (policy, budget,
//! sandbox, redaction) live in their own modules.

use crate::budget::{BudgetError, BudgetStore, round_usd};
use crate::config::Config;
use crate::egress::DomainRule;
use crate::error::Failure;
use crate::policy::Policy;
use crate::redact::Redactor;
use crate::sandbox::{ExecOutcome, Progress, SandboxEngine, SandboxError};
use crate::workspace;
use ae_workflows_spec::{
    ExecutionHeartbeat, ExecutionResult, FailureType, SafeExecuteCodeInput,
    execute::DEFAULT_TIMEOUT_MS,
};
use serde::de::DeserializeOwned;
use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant, SystemTime};
use temporalio_common::data_converters::RawValue;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// Shared state of every activity in one worker.
pub struct Engine {
    /// The configuration the worker started with.
    pub config: Config,
    /// The in-process command policy.
    pub policy: Policy,
    /// The standard redactor; per-execution copies add the env values.
    pub redactor: Redactor,
    /// Per-run budgets in Redis.
    pub budget: BudgetStore,
    /// Docker sandboxes.
    pub sandbox: SandboxEngine,
    /// Who may approve deployments, and their keys.
    pub approvals: crate::approval::ApprovalPolicy,
    /// Approval decisions and deployments.
    pub audit: crate::audit::AuditLog,
    /// The operators' emergency stop.
    pub kill_switch: crate::control::KillSwitch,
}

/// How an execution ended when it did not produce a result.
pub enum Stop {
    /// A typed failure for the caller.
    Fail(Failure),
    /// The activity was cancelled; the sandbox is already gone.
    Cancelled,
}

impl From<Failure> for Stop {
    fn from(f: Failure) -> Self {
        Stop::Fail(f)
    }
}

impl Stop {
    /// The error handed to the SDK, redacted with `redactor`.
    pub fn into_activity_error(self, redactor: &Redactor) -> ActivityError {
        match self {
            Stop::Fail(f) => f.into_activity_error(redactor),
            Stop::Cancelled => ActivityError::cancelled(),
        }
    }
}

impl Engine {
    /// Builds the engine from configuration. Connections to Redis and Docker are made lazily.
    pub fn new(config: Config) -> anyhow::Result<Engine> {
        let budget = BudgetStore::new(&config.redis_url, config.default_budget, config.budget_ttl)?;
        let sandbox = SandboxEngine::new(config.sandbox.clone(), config.worker_id.clone());
        let keys = match &config.approver_keys_file {
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|e| {
                    anyhow::anyhow!("cannot read approver keys {}: {e}", path.display())
                })?;
                crate::approval::ApprovalPolicy::parse_keys(&text)
                    .map_err(|e| anyhow::anyhow!("approver keys {}: {e}", path.display()))?
            }
            None => Default::default(),
        };
        let approvals = crate::approval::ApprovalPolicy {
            allowed: config.approvers.clone(),
            keys,
        };
        let audit = crate::audit::AuditLog::new(config.audit_file.clone())?;
        let kill_switch = crate::control::KillSwitch::new(budget.connection());
        Ok(Engine {
            kill_switch,
            policy: Policy::standard(),
            redactor: Redactor::standard(),
            budget,
            sandbox,
            approvals,
            audit,
            config,
        })
    }

    /// The common start of every activity: decode the input (InvalidInput when malformed) and
    /// build the redactor that also hides the values of the input's `env`.
    pub fn begin<I: DeserializeOwned>(
        &self,
        raw: &RawValue,
        env: impl Fn(&I) -> &std::collections::BTreeMap<String, String>,
    ) -> Result<(I, Redactor), ActivityError> {
        let input: I = decode_input(raw).map_err(|f| f.into_activity_error(&self.redactor))?;
        let redactor = self
            .redactor
            .with_literals(env(&input).values().map(String::as_str));
        Ok((input, redactor))
    }

    /// The `safeExecuteCode` activity.
    pub async fn safe_execute_code(
        &self,
        ctx: &ActivityContext,
        raw: RawValue,
    ) -> Result<ExecutionResult, ActivityError> {
        let (input, redactor) = self.begin(&raw, |i: &SafeExecuteCodeInput| &i.env)?;
        self.execute_code(ctx, &input, &redactor)
            .await
            .map_err(|stop| stop.into_activity_error(&redactor))
    }

    async fn execute_code(
        &self,
        ctx: &ActivityContext,
        input: &SafeExecuteCodeInput,
        redactor: &Redactor,
    ) -> Result<ExecutionResult, Stop> {
        let info = ctx.info();
        let timeout = self.check_input(input)?;
        let files = workspace::check_files(
            &input.workspace_files,
            self.config.sandbox.max_file_bytes,
            self.config.sandbox.max_total_file_bytes,
        )?;
        self.check_policy(&input.command, redactor)?;
        let image = self.check_image(input.image.as_deref())?;
        let outputs = check_output_files(&input.output_files)?;
        let domains = check_domains(input.allowed_domains.as_deref())?;
        self.check_kill_switch(&input.run_id).await?;

        let charge_id = charge_id(ctx);
        let cost = self.config.cost_per_execution;
        let status = self
            .budget
            .charge(&input.run_id, &charge_id, cost)
            .await
            .map_err(budget_failure)?;

        let env = env_list(&input.env);
        let started = Instant::now();
        let sandbox = self
            .prepare_sandbox(
                ctx,
                &input.run_id,
                &charge_id,
                &files,
                SandboxSpec::sandbox(image, domains),
            )
            .await?;

        tracing::info!(
            run_id = %input.run_id,
            workflow_id = info.workflow_id.as_deref().unwrap_or("-"),
            activity_id = %info.activity_id,
            attempt = info.attempt,
            sandbox = &sandbox.id()[..12.min(sandbox.id().len())],
            command = %redactor.redact_str(&input.command),
            "executing"
        );
        let deadline_timeout = effective_timeout(timeout, info.deadline);
        let progress = Progress::default();
        let outcome = {
            let exec = sandbox.exec(&input.command, &env, deadline_timeout, &progress);
            watch(ctx, exec, || {
                serde_json::to_value(ExecutionHeartbeat {
                    status: "running".into(),
                    elapsed_ms: started.elapsed().as_millis() as u64,
                    stdout_bytes: progress.stdout_bytes.load(Ordering::Relaxed),
                    stderr_bytes: progress.stderr_bytes.load(Ordering::Relaxed),
                })
                .unwrap_or_default()
            })
            .await
        };
        let sandbox_id = sandbox.short_id().to_string();
        if sandbox.killed_by_switch() {
            return Err(kill_switch_failure(&input.run_id));
        }
        let output_files = if matches!(outcome, Watched::Done(Ok(_))) && !outputs.is_empty() {
            self.collect_output_files(&sandbox, &outputs, redactor)
                .await
        } else {
            Ok(Vec::new())
        };
        sandbox.release();
        let output_files = output_files?;
        let outcome = match outcome {
            Watched::Done(Ok(o)) => o,
            Watched::Done(Err(e)) => {
                return Err(Failure::new(FailureType::SandboxUnavailable, e.to_string()).into());
            }
            Watched::Cancelled => {
                tracing::info!(run_id = %input.run_id, "cancelled; sandbox removed");
                return Err(Stop::Cancelled);
            }
        };
        let mut result = self.result("sandbox", outcome, cost, status.remaining, redactor);
        result.sandbox_id = Some(sandbox_id);
        result.output_files = output_files;
        fit_payload(&mut result, self.config.sandbox.max_result_bytes);
        tracing::info!(
            run_id = %input.run_id,
            exit_code = result.exit_code,
            timed_out = result.timed_out,
            duration_ms = result.duration_ms,
            redactions = result.redactions,
            "executed"
        );
        Ok(result)
    }

    /// Starts a fresh sandbox and copies the files in. On failure the charge is given back and
    /// the sandbox (if any) is gone: an execution that never started costs nothing.
    pub async fn prepare_sandbox(
        &self,
        ctx: &ActivityContext,
        run_id: &str,
        charge_id: &str,
        files: &[workspace::CheckedFile],
        spec: SandboxSpec,
    ) -> Result<crate::sandbox::Sandbox, Stop> {
        let mut labels = labels(ctx, run_id);
        labels.insert("ae.profile".into(), spec.profile.into());
        labels.insert(crate::sandbox::LABEL_IMAGE.into(), spec.image);
        // Only the default profile without network is pooled; production deploys and sandboxes
        // with egress always get a fresh sandbox.
        let sandbox = if !spec.domains.is_empty() {
            self.sandbox.start_networked(labels, spec.domains).await
        } else if spec.profile == "sandbox" {
            self.sandbox.take(labels).await
        } else {
            self.sandbox.start(labels).await
        };
        let sandbox = match sandbox {
            Ok(s) => s,
            Err(e) => return Err(self.refund_and_fail(run_id, charge_id, e).await),
        };
        if !files.is_empty() {
            let (uid, gid) = crate::sandbox::parse_user(&self.config.sandbox.user);
            let upload = match workspace::pack(files, uid, gid) {
                Ok(tar) => sandbox.upload(tar).await,
                Err(e) => Err(SandboxError::Upload(e.to_string())),
            };
            if let Err(e) = upload {
                sandbox.destroy().await;
                return Err(self.refund_and_fail(run_id, charge_id, e).await);
            }
        }
        Ok(sandbox)
    }

    /// Validates what serde cannot: returns the timeout to use.
    fn check_input(&self, input: &SafeExecuteCodeInput) -> Result<Duration, Failure> {
        check_run_id(&input.run_id)?;
        check_command("command", &input.command)?;
        check_env(&input.env)?;
        self.check_timeout(
            "sandbox",
            "timeout",
            input.timeout.unwrap_or(DEFAULT_TIMEOUT_MS),
        )
    }

    /// A timeout between 1 ms and the configured maximum.
    pub fn check_timeout(
        &self,
        profile: &str,
        field: &str,
        timeout: u64,
    ) -> Result<Duration, Failure> {
        let max = self.config.sandbox.profile(profile).max_timeout.as_millis() as u64;
        if timeout == 0 || timeout > max {
            return Err(Failure::invalid_input(format!(
                "{field} must be between 1 and {max} milliseconds, got {timeout}"
            )));
        }
        Ok(Duration::from_millis(timeout))
    }

    /// The image to run: the default, or one on the allowlist; anything else is refused.
    pub fn check_image(&self, image: Option<&str>) -> Result<String, Failure> {
        let cfg = &self.config.sandbox;
        match image {
            None => Ok(cfg.image.clone()),
            Some(i) if i == cfg.image || cfg.allowed_images.iter().any(|a| a == i) => Ok(i.into()),
            Some(i) => Err(Failure::new(
                FailureType::PolicyViolation,
                format!("refused by policy rule 'image-not-allowed': image {i:?} is not on the worker's allowlist"),
            )
            .with_details(serde_json::json!({"allowed": false, "rule": "image-not-allowed", "requiresApproval": false, "reason": "image not on the allowlist"}))),
        }
    }

    /// Reads the requested files back, redacting text; binary content comes back as base64.
    async fn collect_output_files(
        &self,
        sandbox: &crate::sandbox::Sandbox,
        paths: &[(String, String)],
        redactor: &Redactor,
    ) -> Result<Vec<ae_workflows_spec::execute::OutputFile>, Stop> {
        use base64::Engine as _;
        let cap = self.config.sandbox.max_output_file_bytes;
        let mut out = Vec::new();
        for (asked, rel) in paths {
            let read = sandbox.read_file(rel, cap).await.map_err(|e| match e {
                SandboxError::Upload(m) => {
                    Stop::Fail(Failure::invalid_input(format!("outputFiles: {m}")))
                }
                other => Stop::Fail(Failure::new(
                    FailureType::SandboxUnavailable,
                    other.to_string(),
                )),
            })?;
            let file = match read {
                None => ae_workflows_spec::execute::OutputFile {
                    path: asked.clone(),
                    content: String::new(),
                    encoding: "utf8".into(),
                    found: false,
                    truncated: false,
                },
                Some(mut bytes) => {
                    let truncated = bytes.len() > cap;
                    bytes.truncate(cap);
                    let (content, encoding) = match String::from_utf8(bytes) {
                        Ok(text) => (redactor.redact_str(&text), "utf8"),
                        Err(e) => (
                            base64::engine::general_purpose::STANDARD.encode(e.into_bytes()),
                            "base64",
                        ),
                    };
                    ae_workflows_spec::execute::OutputFile {
                        path: asked.clone(),
                        content,
                        encoding: encoding.into(),
                        found: true,
                        truncated,
                    }
                }
            };
            out.push(file);
        }
        Ok(out)
    }

    /// KillSwitchEngaged when an operator stopped this run or everything; fails closed when
    /// Redis cannot say.
    pub async fn check_kill_switch(&self, run_id: &str) -> Result<(), Failure> {
        match self.kill_switch.engaged_for(run_id).await {
            Ok(None) => Ok(()),
            Ok(Some(reason)) => Err(Failure::new(
                FailureType::KillSwitchEngaged,
                format!("the kill switch is engaged: {reason}"),
            )),
            Err(e) => Err(Failure::new(
                FailureType::BudgetStoreUnavailable,
                format!("cannot read the kill switch: {e}"),
            )),
        }
    }

    /// PolicyViolation or ApprovalRequired, naming the rule.
    pub fn check_policy(&self, command: &str, redactor: &Redactor) -> Result<(), Failure> {
        let decision = self.policy.check_command(command);
        let details = serde_json::to_value(&decision).unwrap_or_default();
        if !decision.allowed {
            tracing::warn!(rule = ?decision.rule, command = %redactor.redact_str(command), "policy refused command");
            return Err(
                Failure::new(FailureType::PolicyViolation, decision.reason).with_details(details)
            );
        }
        if decision.requires_approval {
            tracing::info!(rule = ?decision.rule, "policy requires approval");
            return Err(
                Failure::new(FailureType::ApprovalRequired, decision.reason).with_details(details)
            );
        }
        Ok(())
    }

    async fn refund_and_fail(&self, run_id: &str, charge_id: &str, e: SandboxError) -> Stop {
        if let Err(re) = self.budget.refund(run_id, charge_id).await {
            tracing::error!(run_id, error = %re, "could not refund a charge for an execution that never started");
        }
        let kind = match e {
            SandboxError::Upload(_) => FailureType::InvalidInput,
            _ => FailureType::SandboxUnavailable,
        };
        Stop::Fail(Failure::new(kind, e.to_string()))
    }

    /// Redacts and caps the outputs into the contract's result.
    pub fn result(
        &self,
        profile: &str,
        o: ExecOutcome,
        cost: f64,
        remaining: f64,
        redactor: &Redactor,
    ) -> ExecutionResult {
        let cap = self.config.sandbox.profile(profile).output_cap_bytes;
        let (stdout, out_cut, n_out) = finish_stream(&o.stdout, o.stdout_bytes, cap, redactor);
        let (stderr, err_cut, n_err) = finish_stream(&o.stderr, o.stderr_bytes, cap, redactor);
        let mut result = ExecutionResult {
            stdout,
            stderr,
            exit_code: o.exit_code,
            timed_out: o.timed_out,
            cost,
            budget_remaining: round_usd(remaining),
            duration_ms: o.duration.as_millis() as u64,
            stdout_truncated: out_cut,
            stderr_truncated: err_cut,
            stdout_bytes: o.stdout_bytes,
            stderr_bytes: o.stderr_bytes,
            redactions: (n_out + n_err) as u64,
            oom_killed: o.oom_killed,
            signal: o.signal.map(str::to_string),
            peak_memory_bytes: o.peak_memory_bytes,
            sandbox_id: None,
            output_files: Vec::new(),
            egress_denied: o.egress_denied,
        };
        fit_payload(&mut result, self.config.sandbox.max_result_bytes);
        result
    }
}

/// Shrinks the longer stream until the serialised result fits `max` bytes. Temporal refuses
/// payloads over its blob limit (2 MB by default), and JSON escaping can make binary output
/// several times longer than its bytes, so the per-stream cap alone is not enough.
pub fn fit_payload(result: &mut ExecutionResult, max: usize) {
    loop {
        let size = serde_json::to_vec(&*result).map(|v| v.len()).unwrap_or(0);
        if size <= max {
            return;
        }
        let excess = size - max;
        let (text, cut) = if result.stdout.len() >= result.stderr.len() {
            (&mut result.stdout, &mut result.stdout_truncated)
        } else {
            (&mut result.stderr, &mut result.stderr_truncated)
        };
        if text.is_empty() {
            return;
        }
        // Escaped characters take up to 6 bytes each: cut at least a sixth of the excess.
        let mut end = text
            .len()
            .saturating_sub((excess / 6).max(1).max(excess.min(text.len()) / 2));
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
        *cut = true;
    }
}

/// Redacts a captured stream, then cuts it to `cap` bytes on a character boundary. Redacting
/// before cutting means a secret straddling the cap is replaced whole, never half-shown.
pub fn finish_stream(
    kept: &[u8],
    total: u64,
    cap: usize,
    redactor: &Redactor,
) -> (String, bool, usize) {
    let text = String::from_utf8_lossy(kept);
    let (mut redacted, count) = redactor.redact(&text);
    let truncated = total > cap as u64;
    if truncated && redacted.len() > cap {
        let mut end = cap;
        while !redacted.is_char_boundary(end) {
            end -= 1;
        }
        redacted.truncate(end);
    }
    (redacted, truncated, count)
}

/// What happened while watching a command.
pub enum Watched<T> {
    /// The command finished (or failed) by itself.
    Done(T),
    /// The activity was cancelled first.
    Cancelled,
}

/// Drives `work` while heartbeating `details()` well inside the heartbeat timeout and watching
/// for cancellation, which arrives through heartbeats.
pub async fn watch<T>(
    ctx: &ActivityContext,
    work: impl Future<Output = T>,
    details: impl Fn() -> serde_json::Value,
) -> Watched<T> {
    let interval = heartbeat_interval(ctx.info().heartbeat_timeout);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return Watched::Done(out),
            _ = ctx.cancelled() => return Watched::Cancelled,
            _ = tick.tick() => {
                if let Err(e) = ctx.record_heartbeat(details()).await {
                    tracing::warn!(error = %e, "heartbeat failed");
                }
            }
        }
    }
}

/// A third of the heartbeat timeout, between 200 ms and 10 s.
pub fn heartbeat_interval(heartbeat_timeout: Option<Duration>) -> Duration {
    heartbeat_timeout
        .map(|t| t / 3)
        .unwrap_or(Duration::from_secs(5))
        .clamp(Duration::from_millis(200), Duration::from_secs(10))
}

/// The command's timeout, shortened so the sandbox dies before Temporal gives up on the attempt.
pub fn effective_timeout(requested: Duration, deadline: Option<SystemTime>) -> Duration {
    match deadline.and_then(|d| d.duration_since(SystemTime::now()).ok()) {
        Some(left) => requested.min(
            left.saturating_sub(Duration::from_millis(500))
                .max(Duration::from_millis(100)),
        ),
        None => requested,
    }
}

/// The failure of an execution the kill switch stopped.
pub fn kill_switch_failure(run_id: &str) -> Stop {
    tracing::warn!(run_id, "execution stopped by the kill switch");
    Stop::Fail(Failure::new(
        FailureType::KillSwitchEngaged,
        "the kill switch was engaged while the command ran; its sandbox was killed",
    ))
}

/// Identifies one attempt of one activity: the key that makes a charge idempotent. A standalone
/// activity (no workflow) may reuse its activity id in a later execution, so it is named by its
/// activity run id, or failing that by its task token (one per attempt), never by the id alone.
pub fn charge_id(ctx: &ActivityContext) -> String {
    let info = ctx.info();
    match info.workflow_run_id.as_deref().filter(|r| !r.is_empty()) {
        Some(run) => format!("{run}:{}:{}", info.activity_id, info.attempt),
        None => {
            let execution = match info.activity_run_id.as_deref().filter(|r| !r.is_empty()) {
                Some(run) => run.to_string(),
                None => ae_workflows_spec::deploy::sha256_hex(&info.task_token)[..32].to_string(),
            };
            format!(
                "standalone-{execution}:{}:{}",
                info.activity_id, info.attempt
            )
        }
    }
}

/// Labels naming the workflow and activity a sandbox serves.
pub fn labels(ctx: &ActivityContext, run_id: &str) -> HashMap<String, String> {
    let info = ctx.info();
    HashMap::from([
        ("ae.run-id".into(), run_id.into()),
        (
            "ae.workflow-id".into(),
            info.workflow_id.clone().unwrap_or_default(),
        ),
        ("ae.activity-id".into(), info.activity_id.clone()),
        ("ae.activity-type".into(), info.activity_type.clone()),
        ("ae.attempt".into(), info.attempt.to_string()),
    ])
}

/// The contract's failure for a budget problem.
pub fn budget_failure(e: BudgetError) -> Failure {
    let kind = match e {
        BudgetError::Exceeded { .. } => FailureType::BudgetExceeded,
        BudgetError::NotFound => FailureType::BudgetNotFound,
        BudgetError::Unavailable(_) => FailureType::BudgetStoreUnavailable,
    };
    let details = match &e {
        BudgetError::Exceeded {
            spent,
            limit,
            amount,
        } => Some(serde_json::json!({"spent": spent, "limit": limit, "amount": amount})),
        _ => None,
    };
    let f = Failure::new(kind, e.to_string());
    match details {
        Some(d) => f.with_details(d),
        None => f,
    }
}

/// Decodes a JSON payload into the input type; anything else is InvalidInput saying why.
pub fn decode_input<T: DeserializeOwned>(raw: &RawValue) -> Result<T, Failure> {
    let Some(payload) = raw.payloads.first() else {
        return Err(Failure::invalid_input(
            "the activity was called without an input",
        ));
    };
    let encoding = payload
        .metadata
        .get("encoding")
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .unwrap_or_default();
    if encoding == "binary/null" || payload.data.is_empty() {
        return Err(Failure::invalid_input("the activity input is null"));
    }
    if encoding != "json/plain" {
        return Err(Failure::invalid_input(format!(
            "the activity input must be a JSON object (payload encoding json/plain), got {encoding:?}"
        )));
    }
    serde_json::from_slice(&payload.data)
        .map_err(|e| Failure::invalid_input(format!("invalid input: {e}")))
}

/// What kind of sandbox an execution gets.
pub struct SandboxSpec {
    /// `sandbox` or `production`: selects the profile's limits.
    pub profile: &'static str,
    /// The image, already checked against the allowlist.
    pub image: String,
    /// Hosts it may reach through the egress proxy; empty means no network at all.
    pub domains: Vec<DomainRule>,
}

impl SandboxSpec {
    /// The default profile.
    pub fn sandbox(image: String, domains: Vec<DomainRule>) -> Self {
        Self {
            profile: "sandbox",
            image,
            domains,
        }
    }
}

/// Parses `allowedDomains`; a malformed entry is InvalidInput.
pub fn check_domains(list: Option<&[String]>) -> Result<Vec<DomainRule>, Failure> {
    crate::egress::parse_domains(list.unwrap_or_default())
        .map_err(|e| Failure::invalid_input(format!("allowedDomains: {e}")))
}

/// Validates `outputFiles`: at most 32, each under `/workspace`. Returns (as asked, relative).
pub fn check_output_files(paths: &[String]) -> Result<Vec<(String, String)>, Failure> {
    if paths.len() > 32 {
        return Err(Failure::invalid_input(
            "outputFiles has more than 32 entries",
        ));
    }
    paths
        .iter()
        .enumerate()
        .map(|(i, p)| {
            workspace::normalise(p)
                .map(|rel| (p.clone(), rel))
                .map_err(|why| Failure::invalid_input(format!("outputFiles[{i}] {p:?}: {why}")))
        })
        .collect()
}

/// `NAME=value` strings for exec.
pub fn env_list(env: &std::collections::BTreeMap<String, String>) -> Vec<String> {
    env.iter().map(|(k, v)| format!("{k}={v}")).collect()
}

/// A command must have text and no NUL byte.
pub fn check_command(field: &str, command: &str) -> Result<(), Failure> {
    if command.trim().is_empty() {
        return Err(Failure::invalid_input(format!("{field} is empty")));
    }
    if command.contains('\0') {
        return Err(Failure::invalid_input(format!(
            "{field} contains a NUL byte"
        )));
    }
    Ok(())
}

/// A run id names Redis keys and labels: printable, no whitespace, at most 256 bytes.
pub fn check_run_id(run_id: &str) -> Result<(), Failure> {
    if run_id.is_empty() {
        return Err(Failure::invalid_input("runId is empty"));
    }
    if run_id.len() > 256 {
        return Err(Failure::invalid_input("runId is longer than 256 bytes"));
    }
    if run_id.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Failure::invalid_input(
            "runId must not contain whitespace or control characters",
        ));
    }
    Ok(())
}

/// Environment names must be shell identifiers; values must not contain NUL.
pub fn check_env(env: &std::collections::BTreeMap<String, String>) -> Result<(), Failure> {
    if env.len() > 256 {
        return Err(Failure::invalid_input("env has more than 256 variables"));
    }
    for (k, v) in env {
        let valid = !k.is_empty()
            && k.len() <= 256
            && k.chars()
                .next()
                .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(Failure::invalid_input(format!(
                "env name {k:?} is not a valid variable name ([A-Za-z_][A-Za-z0-9_]*)"
            )));
        }
        if v.contains('\0') {
            return Err(Failure::invalid_input(format!(
                "env value of {k} contains a NUL byte"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use temporalio_common::protos::temporal::api::common::v1::Payload;

    fn json_payload(v: &str) -> RawValue {
        RawValue::new(vec![Payload {
            metadata: HashMap::from([("encoding".to_string(), b"json/plain".to_vec())]),
            data: v.as_bytes().to_vec(),
            ..Default::default()
        }])
    }

    #[test]
    fn decode_reports_missing_and_unknown_fields() {
        let e =
            decode_input::<SafeExecuteCodeInput>(&json_payload(r#"{"command":"ls"}"#)).unwrap_err();
        assert_eq!(e.kind, FailureType::InvalidInput);
        assert!(e.message.contains("runId"), "{}", e.message);
        let e = decode_input::<SafeExecuteCodeInput>(&json_payload(
            r#"{"runId":"r","command":"ls","timout":5}"#,
        ))
        .unwrap_err();
        assert!(e.message.contains("timout"), "{}", e.message);
        let ok = decode_input::<SafeExecuteCodeInput>(&json_payload(
            r#"{"runId":"r","command":"ls","timeout":5}"#,
        ))
        .unwrap();
        assert_eq!(ok.timeout, Some(5));
    }

    #[test]
    fn decode_refuses_null_and_non_json() {
        assert!(decode_input::<SafeExecuteCodeInput>(&RawValue::new(vec![])).is_err());
        let mut p = json_payload("{}");
        p.payloads[0]
            .metadata
            .insert("encoding".into(), b"binary/plain".to_vec());
        assert!(decode_input::<SafeExecuteCodeInput>(&p).is_err());
    }

    #[test]
    fn run_ids_and_env_names_are_checked() {
        assert!(check_run_id("build-deploy-app-1").is_ok());
        assert!(check_run_id("").is_err());
        assert!(check_run_id("a b").is_err());
        let ok = std::collections::BTreeMap::from([("API_TOKEN".to_string(), "x".to_string())]);
        assert!(check_env(&ok).is_ok());
        let bad = std::collections::BTreeMap::from([("1X".to_string(), "x".to_string())]);
        assert!(check_env(&bad).is_err());
    }

    #[test]
    fn secret_straddling_the_cap_is_never_half_shown() {
        let r = Redactor::standard();
        let secret = "sk-abcdefghijklmnopqrstuvwxyz0123456789";
        let text = format!("{} {}", "x".repeat(94), secret);
        let (out, cut, n) = finish_stream(text.as_bytes(), text.len() as u64 + 1000, 100, &r);
        assert!(cut);
        assert_eq!(n, 1);
        assert!(out.len() <= 100);
        assert!(!out.contains("sk-abc"), "{out}");
    }

    #[test]
    fn results_are_shrunk_to_fit_the_payload_limit() {
        let mut r = ExecutionResult {
            stdout: "a".repeat(1_000_000),
            stderr: "\u{1}".repeat(500_000),
            exit_code: 0,
            timed_out: false,
            cost: 0.01,
            budget_remaining: 1.0,
            duration_ms: 1,
            stdout_truncated: false,
            stderr_truncated: false,
            stdout_bytes: 1_000_000,
            stderr_bytes: 500_000,
            redactions: 0,
            oom_killed: false,
            signal: None,
            peak_memory_bytes: None,
            sandbox_id: None,
            output_files: Vec::new(),
            egress_denied: 0,
        };
        fit_payload(&mut r, 1_500_000);
        assert!(serde_json::to_vec(&r).unwrap().len() <= 1_500_000);
        assert!(r.stderr_truncated || r.stdout_truncated);
        assert!(
            r.stdout.len() > 100_000,
            "stdout kept what fits: {}",
            r.stdout.len()
        );
    }

    #[test]
    fn heartbeat_interval_is_a_third_of_the_timeout_within_bounds() {
        assert_eq!(
            heartbeat_interval(Some(Duration::from_secs(30))),
            Duration::from_secs(10)
        );
        assert_eq!(
            heartbeat_interval(Some(Duration::from_secs(3))),
            Duration::from_secs(1)
        );
        assert_eq!(
            heartbeat_interval(Some(Duration::from_millis(100))),
            Duration::from_millis(200)
        );
        assert_eq!(heartbeat_interval(None), Duration::from_secs(5));
    }
}
