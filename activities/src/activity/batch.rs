//! `safeExecuteBatch`: several commands in order in ONE sandbox, as the pipeline's steps.
//!
//! Every command is admitted before anything runs (one refusal refuses the batch, nothing
//! charged); the whole batch is reserved up front and what the commands that did not run would
//! have cost is given back at the end. Files written by one command are seen by the next.

use crate::config::Profile;
use crate::error::Failure;
use crate::pipeline::admit::{Admission, Commands};
use crate::pipeline::finish::{conclude, fit_payload};
use crate::pipeline::run::run_command;
use crate::pipeline::validate::check_command;
use crate::pipeline::{Engine, Stop};
use crate::redact::Redactor;
use ae_workflows_spec::execute::DEFAULT_TIMEOUT_MS;
use ae_workflows_spec::{BatchHeartbeat, BatchResult, SafeExecuteBatchInput};
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
        let run_id = input.run_id.as_str();
        let checked = self.validate(
            run_id,
            &input.env,
            &input.workspace_files,
            input.allowed_domains.as_deref(),
        )?;
        let timeouts = self.check_commands(input)?;
        let commands: Vec<&str> = input.commands.iter().map(|c| c.command()).collect();
        let admission = Admission {
            run_id,
            commands: Commands::Batch(commands.clone()),
            image: input.image.as_deref(),
        };
        let image = self.admit(admission, redactor).await?;
        let total = commands.len();
        let reservation = self.reserve(ctx, run_id, total).await?;
        let (sandbox, reservation) = self
            .open_sandbox(ctx, reservation, &checked, Profile::Sandbox, image)
            .await?;
        let heartbeat = |completed: usize, current: Option<String>, p: Option<(u64, u64)>| {
            let (stdout_bytes, stderr_bytes) = p.unwrap_or_default();
            BatchHeartbeat {
                completed,
                total,
                current,
                elapsed_ms: started.elapsed().as_millis() as u64,
                stdout_bytes,
                stderr_bytes,
            }
        };
        let stop_on_error = input.stop_on_error.unwrap_or(true);
        let (mut outcomes, mut failed_index, mut stopped) = (Vec::new(), None, None);
        for (i, command) in commands.iter().enumerate() {
            let shown = redactor.redact_str(command);
            let _ = ctx
                .record_heartbeat(heartbeat(i, Some(shown.clone()), None))
                .await;
            let watched = run_command(ctx, &sandbox, command, &checked.env, timeouts[i], |p| {
                let bytes = (
                    p.stdout_bytes.load(Ordering::Relaxed),
                    p.stderr_bytes.load(Ordering::Relaxed),
                );
                serde_json::to_value(heartbeat(i, Some(shown.clone()), Some(bytes)))
                    .unwrap_or_default()
            })
            .await;
            match conclude(&sandbox, watched, run_id) {
                Err(stop) => {
                    stopped = Some(stop);
                    break;
                }
                Ok(o) => {
                    let failed = o.exit_code != 0 || o.timed_out;
                    outcomes.push(o);
                    failed_index = failed_index.or(failed.then_some(i));
                    if failed && stop_on_error {
                        break;
                    }
                }
            }
        }
        sandbox.destroy().await;
        let ran = outcomes.len();
        let remaining = reservation.settle(total - ran).await;
        if let Some(stop) = stopped {
            return Err(stop);
        }
        let cost = self.config.cost_per_execution;
        let results = outcomes
            .into_iter()
            .map(|o| self.result(Profile::Sandbox, o, cost, remaining, redactor))
            .collect();
        let _ = ctx.record_heartbeat(heartbeat(ran, None, None)).await;
        let succeeded = failed_index.is_none() && ran == total;
        tracing::info!(run_id, ran, total, succeeded, "batch executed");
        let mut batch = BatchResult {
            results,
            succeeded,
            failed_index,
            total_cost: crate::budget::round_usd(cost * ran as f64),
            budget_remaining: crate::budget::round_usd(remaining),
            duration_ms: started.elapsed().as_millis() as u64,
        };
        let max = self.config.sandbox.max_result_bytes / batch.results.len().max(1);
        batch.results.iter_mut().for_each(|r| fit_payload(r, max));
        Ok(batch)
    }

    /// Checks the commands; returns each one's timeout.
    fn check_commands(&self, input: &SafeExecuteBatchInput) -> Result<Vec<Duration>, Failure> {
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
        self.check_timeout(Profile::Sandbox, "timeout", default)?;
        let field = |i| format!("commands[{i}]");
        input
            .commands
            .iter()
            .enumerate()
            .map(|(i, c)| {
                check_command(&field(i), c.command())?;
                let timeout = c.timeout().unwrap_or(default);
                self.check_timeout(Profile::Sandbox, &format!("{}.timeout", field(i)), timeout)
            })
            .collect()
    }
}
