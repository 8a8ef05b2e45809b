//! The test workflows: one schedules any activity by name on any task queue and reports what
//! came back, including the typed failure, so tests can assert on exactly what a workflow sees;
//! one deploys after an approval signal (sent by a person's client or by its own child
//! workflow), so tests can try to misuse an approval; one opens a session and runs steps on
//! the session's own task queue, as a workflow using sessions does.

use ae_workflows_spec::workflow::BuildAndDeployWorkflow;
use ae_workflows_spec::{ApproveDeployment, DeploymentPlan};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::time::Duration;
use temporalio_common::ActivityDefinition;
use temporalio_common::RetryPolicy;
use temporalio_common::protos::temporal::api::failure::v1::{Failure, failure::FailureInfo};
use temporalio_macros::{workflow, workflow_methods};
use temporalio_sdk::{
    ActivityCancellationType, ActivityExecutionError, ActivityOptions, ChildWorkflowOptions,
    SignalWorkflowOptions, SyncWorkflowContext, WorkflowCancellationToken, WorkflowContext,
    WorkflowContextView, WorkflowResult,
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
        Ok(seen(result))
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

/// Input of [`DeployAfterApprovalWorkflow`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeployAfterApproval {
    /// `deployWithApproval` inputs, run one after the other once an approval signal arrived.
    pub deploys: Vec<Value>,
    pub task_queue: String,
    pub max_attempts: u32,
    /// When set, a child workflow sends this `approveDeployment` payload to this workflow
    /// (the attack: a workflow approving its own deploy).
    pub child_approval: Option<ApproveDeployment>,
    /// What the `pendingApproval` query answers (a test can make it show a forged plan).
    pub shown_plan: Option<DeploymentPlan>,
}

/// Waits for an `approveDeployment` signal (from a person's client, or from its own child
/// workflow), then runs each deploy in turn and reports what each one returned.
#[workflow]
#[derive(Default)]
pub struct DeployAfterApprovalWorkflow {
    approvals: usize,
    shown: Option<DeploymentPlan>,
}

#[workflow_methods]
impl DeployAfterApprovalWorkflow {
    #[run(name = "deployAfterApproval")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        req: DeployAfterApproval,
    ) -> WorkflowResult<Vec<Outcome>> {
        ctx.state_mut(|s| s.shown = req.shown_plan.clone());
        if let Some(approval) = req.child_approval.clone() {
            let child = ctx
                .start_child_workflow(
                    SignalWorkflow::run,
                    SignalApproval {
                        workflow_id: ctx.workflow_id().to_string(),
                        approval,
                    },
                    ChildWorkflowOptions::default(),
                )
                .await
                .map_err(|e| fail(format!("start child: {e:?}")))?;
            child
                .result()
                .await
                .map_err(|e| fail(format!("child: {e:?}")))?;
        }
        ctx.wait_condition(|s| s.approvals > 0).await?;
        let mut outcomes = Vec::new();
        for input in req.deploys {
            let opts = ActivityOptions::with_start_to_close_timeout(Duration::from_secs(120))
                .task_queue(req.task_queue.clone())
                .heartbeat_timeout(Duration::from_secs(10))
                .retry_policy(
                    RetryPolicy::builder()
                        .maximum_attempts(req.max_attempts)
                        .initial_interval(Duration::from_millis(200))
                        .build(),
                )
                .build();
            let r = ctx
                .execute_activity(ByName("deployWithApproval".into()), input, opts)
                .await;
            outcomes.push(match r {
                Ok(v) => Outcome {
                    result: Some(v),
                    ..Default::default()
                },
                Err(e) => Outcome {
                    error: e.failure().map(application_failure),
                    ..Default::default()
                },
            });
        }
        Ok(outcomes)
    }

    /// Counts approvals; the worker, not this workflow, judges them.
    #[signal(name = "approveDeployment")]
    pub fn approve_deployment(
        &mut self,
        _ctx: &mut SyncWorkflowContext<Self>,
        _approval: ApproveDeployment,
    ) {
        self.approvals += 1;
    }

    /// Whatever plan the test asked this workflow to show.
    #[query(name = "pendingApproval")]
    pub fn pending_approval(&self, _ctx: &WorkflowContextView) -> Option<DeploymentPlan> {
        self.shown.clone()
    }
}

/// Input of [`SignalWorkflow`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SignalApproval {
    pub workflow_id: String,
    pub approval: ApproveDeployment,
}

/// Sends an `approveDeployment` signal to another workflow, as any workflow can.
#[workflow]
#[derive(Default)]
pub struct SignalWorkflow;

#[workflow_methods]
impl SignalWorkflow {
    #[run(name = "signalApproval")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, req: SignalApproval) -> WorkflowResult<()> {
        ctx.external_workflow(req.workflow_id, None)
            .signal(
                BuildAndDeployWorkflow::approve_deployment,
                req.approval,
                SignalWorkflowOptions::default(),
            )
            .await
            .map_err(|e| fail(format!("signal: {e:?}")))?;
        Ok(())
    }
}

fn fail(message: String) -> temporalio_sdk::error::ApplicationFailure {
    temporalio_sdk::error::ApplicationFailure::builder(message)
        .non_retryable(true)
        .build()
}

/// One activity of a [`SessionScriptWorkflow`], scheduled on the session's task queue. Any
/// JSON string `"$sandboxId"` in `input` becomes the session's id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionStep {
    pub activity: String,
    pub input: Value,
    /// Wait this long (a workflow timer) before scheduling it.
    #[serde(default)]
    pub delay_ms: u64,
}

/// Input of [`SessionScriptWorkflow`].
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionScript {
    /// Where `openSandbox` is scheduled (a worker's shared queue).
    pub task_queue: String,
    /// The `openSandbox` input.
    pub open: Value,
    /// Groups run in order; the steps of a group run at the same time.
    pub groups: Vec<Vec<SessionStep>>,
}

/// What a [`SessionScriptWorkflow`] saw.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionRun {
    /// `openSandbox`'s outcome.
    pub open: Outcome,
    /// Each step's outcome, by group.
    pub groups: Vec<Vec<Outcome>>,
}

/// Opens a session, then runs the steps on its task queue.
#[workflow]
#[derive(Default)]
pub struct SessionScriptWorkflow;

#[workflow_methods]
impl SessionScriptWorkflow {
    #[run(name = "sessionScript")]
    pub async fn run(
        ctx: &mut WorkflowContext<Self>,
        script: SessionScript,
    ) -> WorkflowResult<SessionRun> {
        let opts = |queue: &str| {
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(120))
                .task_queue(queue.to_string())
                .schedule_to_start_timeout(Duration::from_secs(30))
                .heartbeat_timeout(Duration::from_secs(10))
                .retry_policy(RetryPolicy::builder().maximum_attempts(1).build())
                .build()
        };
        let opened = ctx
            .execute_activity(
                ByName("openSandbox".into()),
                script.open.clone(),
                opts(&script.task_queue),
            )
            .await;
        let mut run = SessionRun {
            open: seen(opened),
            groups: Vec::new(),
        };
        let Some(session) = run.open.result.clone() else {
            return Ok(run);
        };
        let id = session["sandboxId"].clone();
        let queue = session["taskQueue"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for group in script.groups {
            let mut pending = Vec::new();
            for step in group {
                if step.delay_ms > 0 {
                    ctx.timer(Duration::from_millis(step.delay_ms)).await;
                }
                let input = with_sandbox_id(step.input, &id);
                pending.push(ctx.execute_activity(ByName(step.activity), input, opts(&queue)));
            }
            let done = futures::future::join_all(pending).await;
            run.groups.push(done.into_iter().map(seen).collect());
        }
        Ok(run)
    }
}

/// `"$sandboxId"` strings replaced by `id`, everywhere in `v`.
fn with_sandbox_id(v: Value, id: &Value) -> Value {
    match v {
        Value::String(s) if s == "$sandboxId" => id.clone(),
        Value::Array(a) => Value::Array(a.into_iter().map(|x| with_sandbox_id(x, id)).collect()),
        Value::Object(o) => Value::Object(
            o.into_iter()
                .map(|(k, x)| (k, with_sandbox_id(x, id)))
                .collect(),
        ),
        other => other,
    }
}

/// What an activity's result looks like to a test.
fn seen(r: Result<Value, ActivityExecutionError>) -> Outcome {
    match r {
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
    }
}
