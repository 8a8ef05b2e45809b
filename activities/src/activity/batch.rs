//! `safeExecuteBatch`: several commands in order in ONE sandbox, as the pipeline's steps.
//!
//! Every command is admitted before anything runs (one refusal refuses the batch, nothing
//! charged); the whole batch is reserved up front and what the commands that did not run would
//! have cost is given back at the end. Files written by one command are seen by the next.

use crate::config::Profile;
use crate::error::Failure;
use crate::pipeline::admit::{Admission, Commands, Guarded};
use crate::pipeline::finish::{conclude, fit_payload};
use crate::pipeline::run::run_command;
use crate::pipeline::validate::check_command;
use crate::pipeline::{Engine, Finished, Stop};
use crate::redact::Redactor;
use crate::sandbox::{ExecOutcome, Progress, Sandbox};
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
        let redactor = self.session_redactor(redactor, input.sandbox_id.as_deref());
        let mut guarded = Guarded::default();
        let outcome = self
            .execute_batch(ctx, &input, &redactor, &mut guarded)
            .await;
        let done = Finished {
            activity: "safeExecuteBatch",
            profile: Profile::Sandbox,
            run_id: &input.run_id,
            action: &batch_action(&input),
        };
        self.settle(ctx, done, guarded, &outcome, &redactor).await;
        outcome.map_err(|stop| stop.into_activity_error(&redactor))
    }

    async fn execute_batch(
        &self,
        ctx: &ActivityContext,
        input: &SafeExecuteBatchInput,
        redactor: &Redactor,
        guarded: &mut Guarded,
    ) -> Result<BatchResult, Stop> {
        let started = Instant::now();
        let run_id = input.run_id.as_str();
        // 1. Validate.
        let mut checked = self.validate(
            run_id,
            &input.env,
            &input.workspace_files,
            input.allowed_domains.as_deref(),
        )?;
        // In a session (sandboxId): see `activity::session`.
        let own = input.image.is_some() || input.allowed_domains.is_some();
        let session = self
            .find_session(ctx, input.sandbox_id.as_deref(), run_id, own, &mut checked)
            .await?;
        let timeouts = self.check_commands(input)?;
        let commands: Vec<&str> = input.commands.iter().map(|c| c.command()).collect();
        // 2. Admit every command before any runs.
        let admission = Admission {
            run_id,
            profile: Profile::Sandbox,
            files: &checked.files,
            commands: Commands::Batch(commands.clone()),
            image: input.image.as_deref(),
        };
        let image = self.admit(ctx, admission, guarded, redactor).await?;
        // 3. Reserve the whole batch, 4. run the commands in order in one sandbox.
        let total = commands.len();
        let reservation = self.reserve(ctx, run_id, total).await?;
        let (sandbox, reservation) = self
            .sandbox_for(ctx, reservation, &checked, image, session)
            .await?;
        let beat = Beat { total, started };
        let stop_on_error = input.stop_on_error.unwrap_or(true);
        let steps = Steps {
            commands: &commands,
            timeouts: &timeouts,
            env: &checked.env,
            live: self.live(ctx, run_id, redactor),
        };
        let ran = run_in_order(ctx, &sandbox, steps, stop_on_error, redactor, &beat, run_id).await;
        let Ran {
            outcomes,
            failed_index,
            stopped,
        } = ran;
        // 5. Finish: give back what did not run, then the results.
        let runtime = sandbox.runtime();
        sandbox.done(stopped.is_some()).await;
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
        let _ = ctx.record_heartbeat(beat.at(ran, None, None)).await;
        let succeeded = failed_index.is_none() && ran == total;
        tracing::info!(run_id, ran, total, succeeded, "batch executed");
        let mut batch = BatchResult {
            results,
            succeeded,
            failed_index,
            total_cost: crate::budget::round_usd(cost * ran as f64),
            budget_remaining: crate::budget::round_usd(remaining),
            duration_ms: started.elapsed().as_millis() as u64,
            runtime: Some(runtime),
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

/// What a batch ran, for the audit stream: its commands in order.
fn batch_action(input: &SafeExecuteBatchInput) -> String {
    let commands: Vec<&str> = input.commands.iter().map(|c| c.command()).collect();
    commands.join(" ; ")
}

/// The commands to run, with their timeouts and the environment.
struct Steps<'a> {
    commands: &'a [&'a str],
    timeouts: &'a [Duration],
    env: &'a [String],
    /// Where each command's output goes live.
    live: crate::live::Live,
}

/// What the commands did: their outcomes in order, the first that failed, and what stopped the
/// batch early (kill switch, sandbox failure, cancellation), if anything did.
struct Ran {
    outcomes: Vec<ExecOutcome>,
    failed_index: Option<usize>,
    stopped: Option<Stop>,
}

/// Runs the commands in order in `sandbox`, heartbeating before each and while it runs; stops at
/// the first failure when `stop_on_error`, and at any stop.
async fn run_in_order(
    ctx: &ActivityContext,
    sandbox: &Sandbox,
    steps: Steps<'_>,
    stop_on_error: bool,
    redactor: &Redactor,
    beat: &Beat,
    run_id: &str,
) -> Ran {
    let mut ran = Ran {
        outcomes: Vec::new(),
        failed_index: None,
        stopped: None,
    };
    for (i, command) in steps.commands.iter().enumerate() {
        let shown = redactor.redact_str(command);
        let _ = ctx.record_heartbeat(beat.at(i, Some(&shown), None)).await;
        let (env, timeout, live) = (steps.env, steps.timeouts[i], &steps.live);
        let watched = run_command(ctx, sandbox, command, env, timeout, live, |p| {
            serde_json::to_value(beat.at(i, Some(&shown), Some(p))).unwrap_or_default()
        })
        .await;
        match conclude(sandbox, watched, run_id) {
            Err(stop) => {
                ran.stopped = Some(stop);
                break;
            }
            Ok(o) => {
                let failed = o.exit_code != 0 || o.timed_out;
                ran.outcomes.push(o);
                ran.failed_index = ran.failed_index.or(failed.then_some(i));
                if failed && stop_on_error {
                    break;
                }
            }
        }
    }
    ran
}

/// Builds the batch's heartbeats.
struct Beat {
    total: usize,
    started: Instant,
}

impl Beat {
    /// `completed` commands done, `current` (redacted) running with `progress`.
    fn at(
        &self,
        completed: usize,
        current: Option<&str>,
        progress: Option<&Progress>,
    ) -> BatchHeartbeat {
        let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        BatchHeartbeat {
            completed,
            total: self.total,
            current: current.map(str::to_string),
            elapsed_ms: self.started.elapsed().as_millis() as u64,
            stdout_bytes: progress.map_or(0, |p| load(&p.stdout_bytes)),
            stderr_bytes: progress.map_or(0, |p| load(&p.stderr_bytes)),
            stdout_tail: progress.map_or_else(String::new, Progress::stdout_tail),
            stderr_tail: progress.map_or_else(String::new, Progress::stderr_tail),
        }
    }
}
