//! `safeExecuteCode`: one command in a fresh sandbox, as the pipeline's steps.

use crate::config::Profile;
use crate::pipeline::admit::{Admission, Commands, Guarded};
use crate::pipeline::finish::{conclude, fit_payload};
use crate::pipeline::run::{Watched, run_command, watch};
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
        let redactor = self.session_redactor(redactor, input.sandbox_id.as_deref());
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
            .sandbox_for(ctx, reservation, &checked, image, session)
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
        let live = self.live(ctx, run_id, redactor);
        let (command, env) = (&input.command, &checked.env);
        let watched = run_command(ctx, &sandbox, command, env, timeout, &live, |p| {
            serde_json::to_value(ExecutionHeartbeat {
                status: "running".into(),
                elapsed_ms: started.elapsed().as_millis() as u64,
                stdout_bytes: p.stdout_bytes.load(Ordering::Relaxed),
                stderr_bytes: p.stderr_bytes.load(Ordering::Relaxed),
                stdout_tail: p.stdout_tail(),
                stderr_tail: p.stderr_tail(),
            })
            .unwrap_or_default()
        })
        .await;
        // 5. Finish.
        let outcome = conclude(&sandbox, watched, run_id)?;
        // Reading and redacting many output files can take longer than a heartbeat timeout.
        let collecting = self.collect_output_files(&sandbox, &outputs, redactor);
        let files = match watch(ctx, collecting, || {
            serde_json::to_value(ExecutionHeartbeat {
                status: "collecting output files".into(),
                elapsed_ms: started.elapsed().as_millis() as u64,
                stdout_bytes: outcome.stdout_bytes,
                stderr_bytes: outcome.stderr_bytes,
                stdout_tail: String::new(),
                stderr_tail: String::new(),
            })
            .unwrap_or_default()
        })
        .await
        {
            Watched::Done(files) => files,
            Watched::Cancelled => return Err(Stop::Cancelled),
        };
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
