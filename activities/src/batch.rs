//! `safeExecuteBatch`: several commands in order in ONE sandbox.
//!
//! Every command passes the policy before anything runs, so one refused command refuses the
//! whole batch and nothing is charged. The budget for every command is reserved in one atomic
//! charge up front (a batch that cannot be paid for in full is refused), and what the commands
//! that did not run would have cost is given back at the end. Files written by one command are
//! seen by the next. This module owns that sequencing; the parts are shared with
//! `safeExecuteCode` (see `execute`).

use crate::error::Failure;
use crate::execute::{
    Engine, SandboxSpec, Stop, Watched, budget_failure, charge_id, check_command, check_domains,
    check_env, check_run_id, effective_timeout, env_list, watch,
};
use crate::redact::Redactor;
use crate::sandbox::Progress;
use crate::workspace;
use ae_workflows_spec::execute::DEFAULT_TIMEOUT_MS;
use ae_workflows_spec::{BatchHeartbeat, BatchResult, FailureType, SafeExecuteBatchInput};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};
use temporalio_common::data_converters::RawValue;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

/// Most commands one batch may hold.
pub const MAX_COMMANDS: usize = 100;

impl Engine {
    /// The `safeExecuteBatch` activity.
    pub async fn safe_execute_batch(
        &self,
        ctx: &ActivityContext,
        raw: RawValue,
    ) -> Result<BatchResult, ActivityError> {
        let (input, redactor) = self.begin(&raw, |i: &SafeExecuteBatchInput| &i.env)?;
        self.execute_batch(ctx, &input, &redactor)
            .await
            .map_err(|stop| stop.into_activity_error(&redactor))
    }

    async fn execute_batch(
        &self,
        ctx: &ActivityContext,
        input: &SafeExecuteBatchInput,
        redactor: &Redactor,
    ) -> Result<BatchResult, Stop> {
        let started = Instant::now();
        let timeouts = self.check_batch(input)?;
        let files = workspace::check_files(
            &input.workspace_files,
            self.config.sandbox.max_file_bytes,
            self.config.sandbox.max_total_file_bytes,
        )?;
        for (i, c) in input.commands.iter().enumerate() {
            self.check_policy(c.command(), redactor).map_err(|f| {
                let mut f = f;
                f.message = format!("commands[{i}]: {}", f.message);
                if let Some(serde_json::Value::Object(d)) = f.details.as_mut() {
                    d.insert("index".into(), i.into());
                }
                f
            })?;
        }

        let image = self.check_image(input.image.as_deref())?;
        let domains = check_domains(input.allowed_domains.as_deref())?;
        self.check_kill_switch(&input.run_id).await?;
        let total = input.commands.len();
        let cost = self.config.cost_per_execution;
        let charge_id = charge_id(ctx);
        self.budget
            .charge(&input.run_id, &charge_id, cost * total as f64)
            .await
            .map_err(budget_failure)?;
        let sandbox = self
            .prepare_sandbox(
                ctx,
                &input.run_id,
                &charge_id,
                &files,
                SandboxSpec::sandbox(image, domains),
            )
            .await?;

        let env = env_list(&input.env);
        let stop_on_error = input.stop_on_error.unwrap_or(true);
        let mut outcomes = Vec::new();
        let mut failed_index = None;
        let mut cancelled = false;
        let mut broken = None;
        for (i, c) in input.commands.iter().enumerate() {
            let shown = redactor.redact_str(c.command());
            let heartbeat = |p: Option<&Progress>| BatchHeartbeat {
                completed: i,
                total,
                current: Some(shown.clone()),
                elapsed_ms: started.elapsed().as_millis() as u64,
                stdout_bytes: p.map_or(0, |p| p.stdout_bytes.load(Ordering::Relaxed)),
                stderr_bytes: p.map_or(0, |p| p.stderr_bytes.load(Ordering::Relaxed)),
            };
            let _ = ctx.record_heartbeat(heartbeat(None)).await;
            let progress = Progress::default();
            let timeout = effective_timeout(timeouts[i], ctx.info().deadline);
            let exec = sandbox.exec(c.command(), &env, timeout, &progress);
            let watched = watch(ctx, exec, || {
                serde_json::to_value(heartbeat(Some(&progress))).unwrap_or_default()
            })
            .await;
            match watched {
                Watched::Cancelled => {
                    cancelled = true;
                    break;
                }
                Watched::Done(Err(e)) => {
                    broken = Some(e);
                    break;
                }
                Watched::Done(Ok(o)) => {
                    let failed = o.exit_code != 0 || o.timed_out;
                    outcomes.push(o);
                    if failed && failed_index.is_none() {
                        failed_index = Some(i);
                    }
                    if failed && stop_on_error {
                        break;
                    }
                }
            }
        }
        sandbox.destroy().await;

        // Give back what the commands that did not run would have cost (nothing when all ran;
        // the script reports the run's status either way).
        let unused = total - outcomes.len();
        let status = self
            .budget
            .refund_part(&input.run_id, &charge_id, Some(cost * unused as f64))
            .await;
        let remaining = match status {
            Ok(s) => s.remaining,
            Err(e) => {
                tracing::error!(run_id = %input.run_id, error = %e, "could not settle the batch's budget");
                0.0
            }
        };
        if sandbox.killed_by_switch() {
            return Err(crate::execute::kill_switch_failure(&input.run_id));
        }
        if cancelled {
            tracing::info!(run_id = %input.run_id, ran = outcomes.len(), "batch cancelled; sandbox removed");
            return Err(Stop::Cancelled);
        }
        if let Some(e) = broken {
            return Err(Failure::new(FailureType::SandboxUnavailable, e.to_string()).into());
        }
        let ran = outcomes.len();
        let results: Vec<_> = outcomes
            .into_iter()
            .map(|o| {
                self.result(
                    crate::config::Profile::Sandbox,
                    o,
                    cost,
                    remaining,
                    redactor,
                )
            })
            .collect();
        let _ = ctx
            .record_heartbeat(BatchHeartbeat {
                completed: ran,
                total,
                current: None,
                elapsed_ms: started.elapsed().as_millis() as u64,
                stdout_bytes: 0,
                stderr_bytes: 0,
            })
            .await;
        let succeeded = failed_index.is_none() && ran == total;
        tracing::info!(run_id = %input.run_id, ran, total, succeeded, "batch executed");
        let mut batch = BatchResult {
            results,
            succeeded,
            failed_index,
            total_cost: crate::budget::round_usd(cost * ran as f64),
            budget_remaining: crate::budget::round_usd(remaining),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        fit_batch(&mut batch, self.config.sandbox.max_result_bytes);
        Ok(batch)
    }

    /// Validates the batch; returns each command's timeout.
    fn check_batch(&self, input: &SafeExecuteBatchInput) -> Result<Vec<Duration>, Failure> {
        check_run_id(&input.run_id)?;
        check_env(&input.env)?;
        if input.commands.is_empty() {
            return Err(Failure::invalid_input("commands is empty"));
        }
        if input.commands.len() > MAX_COMMANDS {
            return Err(Failure::invalid_input(format!(
                "commands has {} entries; at most {MAX_COMMANDS} are allowed",
                input.commands.len()
            )));
        }
        let default = input.timeout.unwrap_or(DEFAULT_TIMEOUT_MS);
        self.check_timeout(crate::config::Profile::Sandbox, "timeout", default)?;
        input
            .commands
            .iter()
            .enumerate()
            .map(|(i, c)| {
                check_command(&format!("commands[{i}]"), c.command())?;
                self.check_timeout(
                    crate::config::Profile::Sandbox,
                    &format!("commands[{i}].timeout"),
                    c.timeout().unwrap_or(default),
                )
            })
            .collect()
    }
}

/// Keeps a batch's serialised result under the payload limit by shrinking its largest outputs.
fn fit_batch(batch: &mut BatchResult, max: usize) {
    let n = batch.results.len().max(1);
    for r in &mut batch.results {
        crate::execute::fit_payload(r, max / n);
    }
}
