//! The JSON Schema of every activity input and output, signal and query, generated from the Rust
//! types so other languages can validate against the same contract. `schema/contract.schema.json`
//! is the checked-in copy; a test fails when it is stale (regenerate with
//! `cargo run -p ae-workflows-spec --bin gen-schema > workflows-spec/schema/contract.schema.json`).

use crate::batch::{BatchHeartbeat, BatchResult, SafeExecuteBatchInput};
use crate::deploy::{
    ApproveDeployment, DeployWithApprovalInput, DeploymentPlan, DeploymentResult, RejectDeployment,
};
use crate::execute::{ExecutionHeartbeat, ExecutionResult, SafeExecuteCodeInput};
use crate::failure::FailureType;
use crate::progressive::production::{
    ProductionMonitorInput, ProductionMonitorResult, ProductionMonitorStatus, StopMonitoring,
};
use crate::progressive::{
    AbortDeployment, DeploymentEvent, DeploymentStatus, EventRecorded, PendingStage,
    ProgressiveDeployInput, ProgressiveDeployResult,
};
use crate::session::{CloseSandboxInput, CloseSandboxResult, OpenSandboxInput, OpenSandboxResult};
use crate::workflow::{BuildAndDeployInput, BuildAndDeployResult};
use schemars::{JsonSchema, SchemaGenerator};
use serde_json::{Value, json};

fn schema<T: JsonSchema>(generator: &mut SchemaGenerator) -> Value {
    serde_json::to_value(generator.subschema_for::<T>()).unwrap_or_default()
}

/// The whole contract as one JSON Schema document.
pub fn contract() -> Value {
    let mut g = SchemaGenerator::default();
    let activities = json!({
        "safeExecuteCode": {"input": schema::<SafeExecuteCodeInput>(&mut g), "output": schema::<ExecutionResult>(&mut g), "heartbeat": schema::<ExecutionHeartbeat>(&mut g)},
        "safeExecuteBatch": {"input": schema::<SafeExecuteBatchInput>(&mut g), "output": schema::<BatchResult>(&mut g), "heartbeat": schema::<BatchHeartbeat>(&mut g)},
        "deployWithApproval": {"input": schema::<DeployWithApprovalInput>(&mut g), "output": schema::<DeploymentResult>(&mut g)},
        "recordDeploymentEvent": {"input": schema::<DeploymentEvent>(&mut g), "output": schema::<EventRecorded>(&mut g)},
        "openSandbox": {"input": schema::<OpenSandboxInput>(&mut g), "output": schema::<OpenSandboxResult>(&mut g)},
        "closeSandbox": {"input": schema::<CloseSandboxInput>(&mut g), "output": schema::<CloseSandboxResult>(&mut g)},
    });
    let workflows = json!({
        "buildAndDeployWorkflow": {
            "input": schema::<BuildAndDeployInput>(&mut g),
            "output": schema::<BuildAndDeployResult>(&mut g),
            "signals": {
                "approveDeployment": schema::<ApproveDeployment>(&mut g),
                "rejectDeployment": schema::<RejectDeployment>(&mut g),
            },
            "queries": {"pendingApproval": {"output": {"anyOf": [schema::<DeploymentPlan>(&mut g), {"type": "null"}]}}},
        },
        "progressiveDeployWorkflow": {
            "input": schema::<ProgressiveDeployInput>(&mut g),
            "output": schema::<ProgressiveDeployResult>(&mut g),
            "signals": {
                "approveDeployment": schema::<ApproveDeployment>(&mut g),
                "rejectDeployment": schema::<RejectDeployment>(&mut g),
                "abortDeployment": schema::<AbortDeployment>(&mut g),
            },
            "queries": {
                "pendingApproval": {"output": {"anyOf": [schema::<PendingStage>(&mut g), {"type": "null"}]}},
                "deploymentStatus": {"output": schema::<DeploymentStatus>(&mut g)},
            },
        },
        "productionMonitorWorkflow": {
            "input": schema::<ProductionMonitorInput>(&mut g),
            "output": schema::<ProductionMonitorResult>(&mut g),
            "signals": {"stopMonitoring": schema::<StopMonitoring>(&mut g)},
            "queries": {"monitorStatus": {"output": schema::<ProductionMonitorStatus>(&mut g)}},
        }
    });
    let failures: Vec<&str> = FailureType::ALL.iter().map(|f| f.as_str()).collect();
    let defs = serde_json::to_value(g.definitions()).unwrap_or_default();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "autonomous-enterprise activity contract",
        "description": "Activities on task queue autonomous-enterprise, the reference workflows, their signals and queries. Generated from workflows-spec; do not edit.",
        "taskQueue": crate::TASK_QUEUE,
        "activities": activities,
        "workflows": workflows,
        "failureTypes": failures,
        "$defs": defs,
    })
}

/// The checked-in text: pretty JSON with a trailing newline.
pub fn contract_text() -> String {
    let mut s = serde_json::to_string_pretty(&contract()).unwrap_or_default();
    s.push('\n');
    s
}
