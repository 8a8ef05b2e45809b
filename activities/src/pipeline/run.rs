//! Step 4: start the sandbox, copy the files in, and run commands in it while heartbeating and
//! watching for cancellation. A sandbox that cannot be made ready refunds the reservation; once
//! it is ready the command counts as started.

use super::Engine;
use super::reserve::Reservation;
use super::{Stop, validate::Checked};
use crate::config::Profile;
use crate::docker::Origin;
use crate::error::Failure;
use crate::live::{Live, Source};
use crate::redact::Redactor;
use crate::sandbox::{ExecOutcome, Progress, Sandbox, SandboxError, SandboxRequest, parse_user};
use crate::workspace;
use ae_workflows_spec::FailureType;
use std::time::{Duration, SystemTime};
use temporalio_sdk::activities::ActivityContext;

impl Engine {
    /// A fresh (or pooled) sandbox of `profile` running `image`, with the checked files in
    /// `/workspace`. On failure the charge is given back and the sandbox (if any) is gone: an
    /// execution that never started costs nothing.
    pub async fn open_sandbox(
        &self,
        ctx: &ActivityContext,
        mut reservation: Reservation,
        checked: &Checked,
        profile: Profile,
        image: String,
    ) -> Result<(Sandbox, Reservation), Stop> {
        let request = SandboxRequest {
            origin: Some(origin(ctx, reservation.run_id())),
            profile,
            image,
            domains: checked.domains.clone(),
        };
        let sandbox = match self.sandbox.take(&request).await {
            Ok(s) => s,
            Err(e) => {
                reservation.refund().await;
                return Err(start_failure(e));
            }
        };
        if !checked.files.is_empty() {
            let (uid, gid) = parse_user(&self.config.sandbox.user);
            let upload = match workspace::pack(&checked.files, uid, gid) {
                Ok(tar) => sandbox.upload(tar).await,
                Err(e) => Err(SandboxError::Upload(e.to_string())),
            };
            if let Err(e) = upload {
                sandbox.destroy().await;
                reservation.refund().await;
                return Err(start_failure(e));
            }
        }
        reservation.started();
        Ok((sandbox, reservation))
    }
}

/// Runs `command` in `sandbox` with `env` until it ends or `timeout` (shortened to end before
/// the attempt's deadline), heartbeating `details(progress)` and watching for cancellation.
/// Its output also goes, redacted, to `live` (heartbeat tails, `ae:output:<runId>`).
pub async fn run_command(
    ctx: &ActivityContext,
    sandbox: &Sandbox,
    command: &str,
    env: &[String],
    timeout: Duration,
    live: &Live,
    details: impl Fn(&Progress) -> serde_json::Value,
) -> Watched<Result<ExecOutcome, SandboxError>> {
    let progress = Progress::live(live.capture());
    let timeout = effective_timeout(timeout, ctx.info().deadline);
    let exec = sandbox.exec(command, env, timeout, &progress);
    let watched = watch(ctx, exec, || details(&progress)).await;
    if let Some(capture) = &progress.live {
        capture.finish();
    }
    watched
}

impl Engine {
    /// Where the output of this activity's commands goes live, redacted with `redactor` (the
    /// activity's own, env values included).
    pub fn live(&self, ctx: &ActivityContext, run_id: &str, redactor: &Redactor) -> Live {
        let info = ctx.info();
        let source = Source {
            run_id: run_id.into(),
            workflow_id: info.workflow_id.clone().unwrap_or_default(),
            activity_id: info.activity_id.clone(),
        };
        Live::new(&self.output, source, redactor)
    }
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

/// The workflow and activity a sandbox serves.
pub fn origin(ctx: &ActivityContext, run_id: &str) -> Origin {
    let info = ctx.info();
    Origin {
        run_id: run_id.into(),
        workflow_id: info.workflow_id.clone().unwrap_or_default(),
        activity_id: info.activity_id.clone(),
        activity_type: info.activity_type.clone(),
        attempt: info.attempt,
    }
}

/// A sandbox that could not be made ready: bad uploads are the caller's fault.
fn start_failure(e: SandboxError) -> Stop {
    let kind = match e {
        SandboxError::Upload(_) => FailureType::InvalidInput,
        _ => FailureType::SandboxUnavailable,
    };
    Stop::Fail(Failure::new(kind, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

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
