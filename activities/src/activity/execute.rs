//! `safeExecuteCode`: one command in a fresh sandbox, as the pipeline's steps.

use crate::config::Profile;
use crate::pipeline::admit::{Admission, Commands, Guarded};
use crate::pipeline::finish::{conclude, fit_payload};
use crate::pipeline::run::run_command;
use crate::pipeline::validate::{check_command, check_output_files};
use crate::pipeline::{Engine, Finished, Stop};
use crate::redact::Redactor;
use ae_workflows_spec::execute::DEFAULT_TIMEOUT_MS;
use ae_workflows_spec::{ExecutionHeartbeat, ExecutionResult, SafeExecuteCodeInput};
use std::sync::atomic::Ordering;
use std::time::Instant;
use temporalio_common::data_converters::RawValue;
use temporalio_sdk::activities::{ActivityContext, ActivityError};

impl Engine {
    /// The `safeExecuteCode` activity.
    pub async fn safe_execute_code(
        &self,
        ctx: &ActivityContext,
        raw: RawValue,
    ) -> Result<ExecutionResult, ActivityError> {
        let (input, redactor) = self.begin(&raw, |i: &SafeExecuteCodeInput| &i.env)?;
        let mut guarded = Guarded::default();
        let outcome = self
            .execute_code(ctx, &input, &redactor, &mut guarded)
            .await;
        let done = Finished {
            activity: "safeExecuteCode",
            profile: Profile::Sandbox,
            run_id: &input.run_id,
            action: &input.command,
        };
        self.settle(ctx, done, guarded, &outcome, &redactor).await;
        outcome.map_err(|stop| stop.into_activity_error(&redactor))
    }

    async fn execute_code(
        &self,
        ctx: &ActivityContext,
        input: &SafeExecuteCodeInput,
        redactor: &Redactor,
        guarded: &mut Guarded,
    ) -> Result<ExecutionResult, Stop> {
        // 1. Validate.
        let run_id = input.run_id.as_str();
        let checked = self.validate(
            run_id,
            &input.env,
            &input.workspace_files,
            input.allowed_domains.as_deref(),
        )?;
        check_command("command", &input.command)?;
        let timeout = self.check_timeout(
            Profile::Sandbox,
            "timeout",
            input.timeout.unwrap_or(DEFAULT_TIMEOUT_MS),
        )?;
        let outputs = check_output_files(&input.output_files)?;
        // 2. Admit.
        let admission = Admission {
            run_id,
            profile: Profile::Sandbox,
            files: &checked.files,
            commands: Commands::One(&input.command),
            image: input.image.as_deref(),
        };
        let image = self.admit(ctx, admission, guarded, redactor).await?;
        // 3. Reserve, 4. run.
        let reservation = self.reserve(ctx, run_id, 1).await?;
        let started = Instant::now();
        let (sandbox, reservation) = self
            .open_sandbox(ctx, reservation, &checked, Profile::Sandbox, image)
            .await?;
        let info = ctx.info();
        tracing::info!(
            run_id,
            workflow_id = info.workflow_id.as_deref().unwrap_or("-"),
            activity_id = %info.activity_id,
            attempt = info.attempt,
            sandbox = sandbox.short_id(),
            command = %redactor.redact_str(&input.command),
            "executing"
        );
        let watched = run_command(ctx, &sandbox, &input.command, &checked.env, timeout, |p| {
            serde_json::to_value(ExecutionHeartbeat {
                status: "running".into(),
                elapsed_ms: started.elapsed().as_millis() as u64,
                stdout_bytes: p.stdout_bytes.load(Ordering::Relaxed),
                stderr_bytes: p.stderr_bytes.load(Ordering::Relaxed),
            })
            .unwrap_or_default()
        })
        .await;
        // 5. Finish.
        let outcome = conclude(&sandbox, watched, run_id)?;
        let files = self
            .collect_output_files(&sandbox, &outputs, redactor)
            .await;
        let sandbox_id = sandbox.short_id().to_string();
        sandbox.release_holding(guarded.take_slot());
        let cost = reservation.cost;
        let mut result = self.result(
            Profile::Sandbox,
            outcome,
            cost,
            reservation.remaining,
            redactor,
        );
        result.sandbox_id = Some(sandbox_id);
        result.output_files = files?;
        fit_payload(&mut result, self.config.sandbox.max_result_bytes);
        tracing::info!(
            run_id,
            exit_code = result.exit_code,
            timed_out = result.timed_out,
            duration_ms = result.duration_ms,
            redactions = result.redactions,
            "executed"
        );
        Ok(result)
    }
}
