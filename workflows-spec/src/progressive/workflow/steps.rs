//! The steps of `progressiveDeployWorkflow` (see the parent module): settings, build,
//! approval waits, monitoring, rollback, results and audit records. Each takes the workflow's
//! context; all are deterministic (workflow time, timers, activities only).

use super::*;
use crate::activities::{
    DeployWithApproval, RecordDeploymentEvent, SafeExecuteBatch, SafeExecuteCode,
};
use crate::batch::{BatchCommand, SafeExecuteBatchInput};
use crate::deploy::{DeployWithApprovalInput, DeploymentPlan, default_domains};
use crate::execute::SafeExecuteCodeInput;
use crate::progressive::health::{CheckRun, Limits, judge};
use crate::progressive::production::{ProductionMonitorInput, ProductionMonitorWorkflow};
use crate::workflow::{activity_options, fail};
use futures::FutureExt;
use std::collections::BTreeMap;
use std::time::{Duration, UNIX_EPOCH};
use temporalio_common::RetryPolicy;
use temporalio_sdk::{
    ActivityCancellationType, ActivityOptions, CancellableFuture, ChildWorkflowOptions,
    ParentClosePolicy, WorkflowContext, WorkflowResult,
};

/// The input with its defaults applied and checked.
pub(super) struct Settings {
    pub(super) percent: f64,
    pub(super) monitor: u64,
    pub(super) interval: u64,
    pub(super) limits: Limits,
    pub(super) approval_wait: Duration,
    pub(super) domains: Vec<String>,
}

/// The longest window or wait the workflow takes, seconds (10 years).
const MAX_SECS: u64 = 10 * 365 * 86_400;

pub(super) fn settings(input: &ProgressiveDeployInput) -> Result<Settings, String> {
    let percent = input.canary_percent.unwrap_or(1.0);
    if !(percent > 0.0 && percent <= 100.0) {
        return Err(format!("canaryPercent must be in (0, 100], got {percent}"));
    }
    let monitor = input.monitor_secs.unwrap_or(86_400);
    let interval = input.check_interval_secs.unwrap_or(300);
    if monitor == 0 || interval == 0 {
        return Err("monitorSecs and checkIntervalSecs must be at least 1".into());
    }
    // Workflow time is counted in ms: bounded, no duration can overflow it.
    for (field, secs) in [
        ("monitorSecs", Some(monitor)),
        ("checkIntervalSecs", Some(interval)),
        ("approvalTimeoutSecs", input.approval_timeout_secs),
        ("productionMonitorSecs", input.production_monitor_secs),
    ] {
        if secs.is_some_and(|n| n > MAX_SECS) {
            return Err(format!("{field} must be at most {MAX_SECS} (10 years)"));
        }
    }
    let limits = Limits::new(
        input.max_error_rate.unwrap_or(0.05),
        input.max_latency_ms.unwrap_or(5000.0),
    )?;
    for (field, command) in [
        ("canaryCommand", &input.canary_command),
        ("healthCheckCommand", &input.health_check_command),
        ("promoteCommand", &input.promote_command),
        ("rollbackCommand", &input.rollback_command),
    ] {
        if command.trim().is_empty() {
            return Err(format!("{field} is empty"));
        }
    }
    Ok(Settings {
        percent,
        monitor,
        interval,
        limits,
        approval_wait: Duration::from_secs(input.approval_timeout_secs.unwrap_or(86_400)),
        domains: input
            .allowed_domains
            .clone()
            .unwrap_or_else(|| default_domains(&input.platform)),
    })
}

/// The deploy of `stage`; the canary's and the promotion's differ in phase and command only.
pub(super) fn stage_input(
    input: &ProgressiveDeployInput,
    s: &Settings,
    stage: &str,
) -> DeployWithApprovalInput {
    let command = if stage == CANARY {
        format!(
            "export CANARY_PERCENT={}; {}",
            s.percent, input.canary_command
        )
    } else {
        input.promote_command.clone()
    };
    DeployWithApprovalInput {
        run_id: input.run_id.clone(),
        platform: input.platform.clone(),
        command,
        workspace_files: input.workspace_files.clone(),
        env: input.deploy_env.clone(),
        allowed_domains: Some(s.domains.clone()),
        approval: None,
        timeout: Some(300_000),
        image: None,
        phase: Some(stage.into()),
        health_check_command: Some(input.health_check_command.clone()),
        rollback_command: Some(input.rollback_command.clone()),
        rollback: None,
    }
}

/// Audit and alert calls: a few quick attempts; a lost record never holds up a rollback.
pub(super) fn record_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(10))
        .retry_policy(
            RetryPolicy::builder()
                .maximum_attempts(3)
                .initial_interval(Duration::from_millis(500))
                .build(),
        )
        .build()
}

/// The health check's execution: `command` with `env`, reaching only `domains`, for at most a
/// minute.
pub(crate) fn health_check(
    run_id: &str,
    command: &str,
    env: &BTreeMap<String, String>,
    domains: &[String],
) -> SafeExecuteCodeInput {
    SafeExecuteCodeInput {
        allowed_domains: Some(domains.to_vec()),
        env: env.clone(),
        timeout: Some(60_000),
        ..SafeExecuteCodeInput::new(run_id, command)
    }
}

/// A health check: one attempt plus one retry of an outage, then it counts as failed.
pub(crate) fn check_options() -> ActivityOptions {
    ActivityOptions::with_start_to_close_timeout(Duration::from_secs(120))
        .heartbeat_timeout(Duration::from_secs(30))
        .retry_policy(
            RetryPolicy::builder()
                .maximum_attempts(2)
                .initial_interval(Duration::from_secs(1))
                .build(),
        )
        .build()
}

/// Workflow time, ms since the epoch.
pub(crate) fn now_ms<W>(ctx: &WorkflowContext<W>) -> u64 {
    ctx.workflow_time()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Install, test and build in one sandbox; the cost, or why it failed.
pub(super) async fn build(
    ctx: &WorkflowContext<ProgressiveDeployWorkflow>,
    input: &ProgressiveDeployInput,
) -> Result<Option<f64>, String> {
    let steps = crate::workflow::build_steps(
        &input.install_command,
        &input.test_command,
        &input.build_command,
    );
    let batch = ctx.execute_activity(
        SafeExecuteBatch,
        SafeExecuteBatchInput {
            run_id: input.run_id.clone(),
            commands: steps
                .iter()
                .map(|(_, c)| BatchCommand::Detailed {
                    command: c.clone(),
                    timeout: Some(300_000),
                })
                .collect(),
            workspace_files: input.workspace_files.clone(),
            timeout: None,
            allowed_domains: None,
            env: Default::default(),
            image: None,
            stop_on_error: Some(true),
            sandbox_id: None,
        },
        cancellable(activity_options(20)),
    );
    let Some(batch) = unless_aborted(ctx, batch).await else {
        return Ok(None);
    };
    let batch = batch.map_err(|e| format!("{e}"))?;
    if batch.succeeded {
        return Ok(Some(batch.total_cost));
    }
    let i = batch.failed_index.unwrap_or(0);
    let step = steps.get(i).map(|s| s.0).unwrap_or("build");
    let stderr = batch
        .results
        .get(i)
        .map(|r| r.stderr.as_str())
        .unwrap_or("");
    let tail: Vec<char> = stderr.chars().rev().take(2000).collect();
    Err(format!(
        "{step} failed: {}",
        tail.into_iter().rev().collect::<String>()
    ))
}

/// Publishes `plan` and waits for a decision on it, an abort, or the timeout.
pub(super) async fn decide(
    ctx: &WorkflowContext<ProgressiveDeployWorkflow>,
    run: &Run<'_>,
    plan: DeploymentPlan,
    phase: DeploymentPhase,
    wait: Duration,
) -> (Wake, Option<Decision>) {
    let stage = plan.phase.clone().unwrap_or_default();
    let digest = plan.plan_digest.clone();
    ctx.state_mut(|w| {
        w.status.phase = phase;
        w.status.next_check_at_ms = None;
        w.decision = None;
        w.pending = Some(PendingStage {
            plan,
            canary_percent: w.status.canary_percent,
            measurements: w.status.measurements.clone(),
        });
    });
    let detail = format!("{stage} plan {digest} awaits approval");
    record(
        ctx,
        run,
        &format!("{stage}.pending"),
        "info",
        "workflow",
        &detail,
        None,
    )
    .await;
    let wake = wait_for(ctx, wait, |w| w.decision.is_some()).await;
    let decision = ctx.state_mut(|w| {
        w.pending = None;
        w.decision.take()
    });
    let (outcome, actor, detail) = match &decision {
        Some(Decision::Approved(a)) => ("approved", a.approver.clone(), format!("plan {digest}")),
        Some(Decision::Rejected(r)) => ("rejected", r.approver.clone(), r.reason.clone()),
        None => ("undecided", "workflow".to_string(), String::new()),
    };
    if decision.is_some() {
        let alert = (outcome == "rejected").then_some("warning");
        record(
            ctx,
            run,
            &format!("{stage}.approval"),
            outcome,
            &actor,
            &detail,
            alert,
        )
        .await;
    }
    (wake, decision)
}

/// `opts` for a step an abort cancels: Temporal reports the cancellation only once the worker
/// has stopped the step (its sandbox is gone), and the worker hears of it within a few seconds
/// (it heartbeats every third of the heartbeat timeout, and is told of a cancellation in the
/// reply).
pub(super) fn cancellable(mut opts: ActivityOptions) -> ActivityOptions {
    opts.heartbeat_timeout = Some(Duration::from_secs(9));
    opts.cancellation_type = ActivityCancellationType::WaitCancellationCompleted;
    opts
}

/// Runs `step` until it ends or an abort arrives. On an abort the step is cancelled and its
/// end awaited (see [`cancellable`]), and the answer is None. The build and the health checks
/// run this way; a deploy does not: one stopped half-way would leave the platform in a state
/// nobody planned, so an abort waits for it and then rolls back.
pub(super) async fn unless_aborted<T>(
    ctx: &WorkflowContext<ProgressiveDeployWorkflow>,
    step: impl CancellableFuture<Output = T>,
) -> Option<T> {
    futures::pin_mut!(step);
    {
        let aborted = ctx.wait_condition(|w| w.abort.is_some()).fuse();
        futures::pin_mut!(aborted);
        // Biased, so replay takes the same branch: a step that ended wins over an abort.
        futures::select_biased! {
            r = step => return Some(r),
            _ = aborted => {}
        }
    }
    step.cancel();
    let _ = step.await;
    None
}

/// Waits until `condition` holds or `wait` has passed; whether `condition` woke it. Biased,
/// so a replay that finds both ready takes the same branch.
pub(crate) async fn woke_within<W>(
    ctx: &WorkflowContext<W>,
    wait: Duration,
    condition: impl FnMut(&W) -> bool,
) -> bool {
    let condition = ctx.wait_condition(condition).fuse();
    let timer = ctx.timer(wait).fuse();
    futures::pin_mut!(condition, timer);
    futures::select_biased! {
        r = condition => r.is_ok(),
        _ = timer => false,
    }
}

/// Waits until `ready`, an abort, or `wait` has passed.
pub(super) async fn wait_for(
    ctx: &WorkflowContext<ProgressiveDeployWorkflow>,
    wait: Duration,
    ready: impl Fn(&ProgressiveDeployWorkflow) -> bool,
) -> Wake {
    let woke = woke_within(ctx, wait, |w| w.abort.is_some() || ready(w)).await;
    if ctx.state(|w| w.abort.is_some()) {
        Wake::Aborted
    } else if woke {
        Wake::Ready
    } else {
        Wake::TimedOut
    }
}

/// Runs the health checks of the window. Some(reason) on a breach or an abort.
pub(super) async fn monitor(
    ctx: &WorkflowContext<ProgressiveDeployWorkflow>,
    run: &mut Run<'_>,
    s: &Settings,
) -> WorkflowResult<Option<String>> {
    let start = now_ms(ctx);
    let checks = s.monitor.div_ceil(s.interval).max(1);
    // The first check's time is shown with the phase: a query between the two would see
    // `Monitoring` with no check due.
    ctx.state_mut(|w| {
        w.status.phase = DeploymentPhase::Monitoring;
        w.status.monitor_ends_at_ms = Some(start + s.monitor * 1000);
        w.status.next_check_at_ms = Some(start + s.interval.min(s.monitor) * 1000);
    });
    let detail = format!("{checks} checks over {} s", s.monitor);
    record(
        ctx,
        run,
        "monitor.started",
        "info",
        "workflow",
        &detail,
        None,
    )
    .await;
    for k in 1..=checks {
        let due = start + (k * s.interval).min(s.monitor) * 1000;
        ctx.state_mut(|w| w.status.next_check_at_ms = Some(due));
        // At least 1 ms: a check that outlasted the interval is followed by the next at once.
        let wait = Duration::from_millis(due.saturating_sub(now_ms(ctx)).max(1));
        if let Wake::Aborted = wait_for(ctx, wait, |_| false).await {
            return Ok(Some(abort_reason(ctx)));
        }
        let input = health_check(
            &run.input.run_id,
            &run.input.health_check_command,
            &run.input.health_check_env,
            &s.domains,
        );
        let checked = ctx.execute_activity(SafeExecuteCode, input, cancellable(check_options()));
        let Some(checked) = unless_aborted(ctx, checked).await else {
            return Ok(Some(abort_reason(ctx)));
        };
        if let Ok(r) = &checked {
            run.cost += r.cost;
        }
        let m = judge(&CheckRun::of(checked), s.limits, now_ms(ctx));
        let healthy = m.healthy;
        let note = m.note.clone();
        ctx.state_mut(|w| w.status.measurements.push(m));
        if ctx.state(|w| w.abort.is_some()) {
            return Ok(Some(abort_reason(ctx)));
        }
        if !healthy {
            let reason = format!("health check {k}/{checks}: {note}");
            record(
                ctx,
                run,
                "monitor.breach",
                "failure",
                "workflow",
                &reason,
                Some("critical"),
            )
            .await;
            return Ok(Some(reason));
        }
    }
    ctx.state_mut(|w| w.status.next_check_at_ms = None);
    record(
        ctx,
        run,
        "monitor.passed",
        "success",
        "workflow",
        &detail,
        None,
    )
    .await;
    Ok(None)
}

pub(super) fn abort_reason(ctx: &WorkflowContext<ProgressiveDeployWorkflow>) -> String {
    ctx.state(|w| {
        w.abort
            .as_ref()
            .map(|a| format!("aborted by {}: {}", a.approver, a.reason))
            .unwrap_or_default()
    })
}

/// Ends the run as Aborted: an abort arrived before anything was deployed.
pub(super) async fn aborted_before_deploy(
    ctx: &WorkflowContext<ProgressiveDeployWorkflow>,
    run: &Run<'_>,
) -> ProgressiveDeployResult {
    let who = ctx.state(|w| w.abort.as_ref().map(|a| a.approver.clone()));
    let who = who.unwrap_or_else(|| "workflow".into());
    let reason = abort_reason(ctx);
    ctx.state_mut(|w| {
        w.status.phase = DeploymentPhase::Aborted;
        w.status.reason = Some(reason.clone());
    });
    record(
        ctx,
        run,
        "abort",
        "success",
        &who,
        &format!("{reason}; nothing was deployed"),
        Some("warning"),
    )
    .await;
    result(ctx, run, DeploymentOutcome::Aborted, reason)
}

/// Runs the rollback approved with the canary plan and ends the run.
pub(super) async fn rollback(
    ctx: &WorkflowContext<ProgressiveDeployWorkflow>,
    run: &Run<'_>,
    reason: String,
) -> WorkflowResult<ProgressiveDeployResult> {
    ctx.state_mut(|w| {
        w.status.phase = DeploymentPhase::RollingBack;
        w.status.next_check_at_ms = None;
        w.status.reason = Some(reason.clone());
    });
    let actor = ctx.state(|w| w.abort.as_ref().map(|a| a.approver.clone()));
    let actor = actor.unwrap_or_else(|| "workflow".into());
    record(
        ctx,
        run,
        "rollback.started",
        "info",
        &actor,
        &reason,
        Some("warning"),
    )
    .await;
    let input = DeployWithApprovalInput {
        rollback: Some(true),
        ..run.canary.clone()
    };
    let done = ctx
        .execute_activity(DeployWithApproval, input, activity_options(10))
        .await;
    let failure = match done {
        Ok(d) if d.success => None,
        Ok(d) => Some(format!("the rollback exited {}", d.exit_code)),
        Err(e) => Some(format!("the rollback failed: {e}")),
    };
    if let Some(f) = failure {
        let message = format!("{reason}; {f}");
        ctx.state_mut(|w| {
            w.status.phase = DeploymentPhase::Failed;
            w.status.reason = Some(message.clone());
        });
        record(
            ctx,
            run,
            "rollback",
            "failure",
            &actor,
            &message,
            Some("critical"),
        )
        .await;
        return Err(fail("RollbackFailed", message).into());
    }
    record(
        ctx,
        run,
        "rollback",
        "success",
        &actor,
        &reason,
        Some("warning"),
    )
    .await;
    ctx.state_mut(|w| w.status.phase = DeploymentPhase::RolledBack);
    Ok(result(ctx, run, DeploymentOutcome::RolledBack, reason))
}

pub(super) fn result(
    ctx: &WorkflowContext<ProgressiveDeployWorkflow>,
    run: &Run<'_>,
    outcome: DeploymentOutcome,
    reason: String,
) -> ProgressiveDeployResult {
    ctx.state(|w| ProgressiveDeployResult {
        outcome,
        reason,
        measurements: w.status.measurements.clone(),
        approvals: w.status.approvals.clone(),
        total_cost: (run.cost * 1_000_000.0).round() / 1_000_000.0,
        production_monitor: None,
    })
}

/// Starts the production monitor when `productionMonitorSecs` is set, as a child this workflow
/// abandons (it outlives the deployment): its workflow id. None when not asked for, or when it
/// could not start (recorded, with a warning alert: production is then unwatched).
pub(super) async fn watch_production(
    ctx: &WorkflowContext<ProgressiveDeployWorkflow>,
    run: &Run<'_>,
    s: &Settings,
) -> Option<String> {
    let secs = run.input.production_monitor_secs.filter(|&n| n > 0)?;
    let id = format!("{}-production", ctx.workflow_id());
    let input = ProductionMonitorInput {
        run_id: run.input.run_id.clone(),
        health_check_command: run.input.health_check_command.clone(),
        health_check_env: run.input.health_check_env.clone(),
        allowed_domains: s.domains.clone(),
        check_interval_secs: s.interval,
        max_error_rate: s.limits.max_error_rate,
        max_latency_ms: s.limits.max_latency_ms,
        until_ms: now_ms(ctx).saturating_add(secs.saturating_mul(1000)),
        checks: 0,
        breaches: 0,
        in_breach: false,
        checks_per_run: None,
    };
    let opts = ChildWorkflowOptions::builder()
        .workflow_id(id.clone())
        .parent_close_policy(ParentClosePolicy::Abandon)
        .build();
    match ctx
        .start_child_workflow(ProductionMonitorWorkflow::run, input, opts)
        .await
    {
        Ok(_) => {
            let detail = format!("{id}: a check every {} s for {secs} s", s.interval);
            record(
                ctx,
                run,
                "production.monitor.started",
                "info",
                "workflow",
                &detail,
                None,
            )
            .await;
            Some(id)
        }
        Err(e) => {
            let detail = format!("production is not monitored: {e}");
            record(
                ctx,
                run,
                "production.monitor.started",
                "failure",
                "workflow",
                &detail,
                Some("warning"),
            )
            .await;
            None
        }
    }
}

/// One phase or decision to the audit stream (and alerts); failures to record are ignored.
pub(super) async fn record(
    ctx: &WorkflowContext<ProgressiveDeployWorkflow>,
    run: &Run<'_>,
    event: &str,
    outcome: &str,
    actor: &str,
    detail: &str,
    alert: Option<&str>,
) {
    let what = (event, outcome, actor);
    record_event(ctx, &run.input.run_id, what, detail, alert).await;
}

/// One event (name, outcome, actor) of either progressive workflow to the audit stream, and
/// with `alert` (`warning` or `critical`) to the alerts; failures to record are ignored.
pub(crate) async fn record_event<W>(
    ctx: &WorkflowContext<W>,
    run_id: &str,
    (event, outcome, actor): (&str, &str, &str),
    detail: &str,
    alert: Option<&str>,
) {
    let event = DeploymentEvent {
        run_id: run_id.into(),
        event: event.into(),
        outcome: outcome.into(),
        actor: actor.into(),
        detail: detail.into(),
        alert: alert.map(str::to_string),
    };
    let _ = ctx
        .execute_activity(RecordDeploymentEvent, event, record_options())
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(extra: serde_json::Value) -> ProgressiveDeployInput {
        let mut v = serde_json::json!({
            "runId": "r", "platform": "fake", "canaryCommand": "c",
            "healthCheckCommand": "h", "promoteCommand": "p", "rollbackCommand": "r"
        });
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value(v).unwrap()
    }

    /// Durations that would overflow workflow time (ms) are refused, not panicked on.
    #[test]
    fn durations_past_ten_years_are_refused() {
        assert!(settings(&input(serde_json::json!({}))).is_ok());
        for field in [
            "monitorSecs",
            "checkIntervalSecs",
            "approvalTimeoutSecs",
            "productionMonitorSecs",
        ] {
            let e = settings(&input(serde_json::json!({ field: u64::MAX }))).err();
            assert!(e.is_some_and(|e| e.contains(field)), "{field}");
        }
    }
}
