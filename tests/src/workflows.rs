//! The test workflow: schedules any activity by name on any task queue and reports what came
//! back, including the typed failure, so tests can assert on exactly what a workflow sees.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use temporalio_common::ActivityDefinition;
use temporalio_common::RetryPolicy;
use temporalio_common::protos::temporal::api::failure::v1::{Failure, failure::FailureInfo};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCancellationType, ActivityExecutionError, ActivityOptions, WorkflowCancellationToken,
    WorkflowContext, WorkflowResult,
};

/// Task queue the test workflow worker polls.
pub const TEST_WORKFLOW_QUEUE: &str = "ae-tests";

/// An activity called by wire name with a JSON input.
pub struct ByName(pub String);

impl ActivityDefinition for ByName {
    type Input = Value;
    type Output = Value;
    fn name(&self) -> &str {
        &self.0
    }
}

/// What to schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RunActivity {
    pub activity: String,
    pub input: Value,
    pub task_queue: String,
    pub start_to_close_ms: u64,
    pub heartbeat_ms: u64,
    pub max_attempts: u32,
    /// Cancel the activity this long after scheduling it.
    pub cancel_after_ms: Option<u64>,
}

/// What the workflow saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Outcome {
    pub result: Option<Value>,
    pub error: Option<SeenFailure>,
    pub cancelled: bool,
}

/// The application failure under the activity failure.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SeenFailure {
    pub r#type: String,
    pub message: String,
    pub non_retryable: bool,
    pub details: Option<Value>,
}

#[workflow]
#[derive(Default)]
pub struct RunActivityWorkflow;

#[workflow_methods]
impl RunActivityWorkflow {
    #[run(name = "runActivity")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, req: RunActivity) -> WorkflowResult<Outcome> {
        let token = WorkflowCancellationToken::new();
        let opts = ActivityOptions::with_start_to_close_timeout(Duration::from_millis(
            req.start_to_close_ms,
        ))
        .task_queue(req.task_queue.clone())
        .heartbeat_timeout(Duration::from_millis(req.heartbeat_ms))
        .retry_policy(
            RetryPolicy::builder()
                .maximum_attempts(req.max_attempts)
                .initial_interval(Duration::from_millis(200))
                .build(),
        )
        .cancellation_type(ActivityCancellationType::WaitCancellationCompleted)
        .cancellation_token(token.clone())
        .build();
        let activity = ctx.execute_activity(ByName(req.activity.clone()), req.input.clone(), opts);
        let result = match req.cancel_after_ms {
            None => activity.await,
            Some(ms) => {
                let timer = ctx.timer(Duration::from_millis(ms));
                futures::pin_mut!(activity);
                futures::pin_mut!(timer);
                match futures::future::select(activity, timer).await {
                    futures::future::Either::Left((r, _)) => r,
                    futures::future::Either::Right((_, activity)) => {
                        token.cancel();
                        activity.await
                    }
                }
            }
        };
        Ok(match result {
            Ok(v) => Outcome {
                result: Some(v),
                ..Default::default()
            },
            Err(ActivityExecutionError::Cancelled(_)) => Outcome {
                cancelled: true,
                ..Default::default()
            },
            Err(e) => Outcome {
                error: e.failure().map(application_failure),
                ..Default::default()
            },
        })
    }
}

/// The first application failure in `f`'s cause chain (activity and workflow failures alike).
pub fn application_failure(f: &Failure) -> SeenFailure {
    let mut cur = Some(f);
    while let Some(x) = cur {
        if let Some(FailureInfo::ApplicationFailureInfo(info)) = &x.failure_info {
            let details = info
                .details
                .as_ref()
                .and_then(|d| d.payloads.first())
                .and_then(|p| serde_json::from_slice(&p.data).ok());
            return SeenFailure {
                r#type: info.r#type.clone(),
                message: x.message.clone(),
                non_retryable: info.non_retryable,
                details,
            };
        }
        cur = x.cause.as_deref();
    }
    SeenFailure {
        r#type: "<not an application failure>".into(),
        message: format!("{f:?}"),
        non_retryable: false,
        details: None,
    }
}
