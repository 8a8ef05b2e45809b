//! The same flow written with the official Python SDK (`samples/python`) runs against this
//! worker: the Python workflow schedules the Rust activities by name, payloads interoperate both
//! ways, and the approval is verified from the Python workflow's history.

use ae_tests::harness::harness;
use serde_json::{Value, json};
use std::process::Command;

fn run_flow(decision: &[&str], input: Value) -> (i32, String) {
    let h = harness();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/python/run_flow.py");
    let workflow_id = format!("py-{}", uuid::Uuid::new_v4());
    let out = Command::new("python3")
        .arg(script)
        .args([
            "--address",
            &h.temporal_address,
            "--task-queue",
            "python-samples",
        ])
        .args(["--workflow-id", &workflow_id, "--input", &input.to_string()])
        .args(decision)
        .output()
        .expect("python3");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.code() != Some(2),
        "run_flow timed out: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code().unwrap_or(-1), stdout)
}

fn input(run: &str) -> Value {
    json!({
        "runId": run,
        "deployPlatform": "netlify",
        "workspaceFiles": [{"path": "index.html", "content": "<h1>py</h1>\n"}],
        "installCommand": "echo ok > .installed",
        "testCommand": "test -f .installed",
        "buildCommand": "cp index.html built.html",
        "deployCommand": "echo 'Website URL: https://py-demo.netlify.app'"
    })
}

fn last(stdout: &str, tag: &str) -> Value {
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(tag))
        .unwrap_or_else(|| panic!("no {tag} line in {stdout}"));
    serde_json::from_str(line.trim()).unwrap()
}

#[test]
fn the_python_workflow_builds_waits_for_approval_and_deploys() {
    let run = format!("py-{}", uuid::Uuid::new_v4().simple());
    let (code, stdout) = run_flow(
        &["--approve", "ops-lead", "--comment", "from python"],
        input(&run),
    );
    assert_eq!(code, 0, "{stdout}");
    let plan = last(&stdout, "PLAN ");
    // The Python workflow computes the same plan digest as the Rust side.
    let files = vec![ae_workflows_spec::WorkspaceFile {
        path: "index.html".into(),
        content: "<h1>py</h1>\n".into(),
    }];
    let expected = ae_workflows_spec::DeploymentPlan::new(
        &run,
        "netlify",
        "echo 'Website URL: https://py-demo.netlify.app'",
        &ae_workflows_spec::deploy::default_domains("netlify"),
        &files,
        &Default::default(),
        None,
        300_000,
    );
    assert_eq!(plan["planDigest"], expected.plan_digest.as_str());
    let r = last(&stdout, "RESULT ");
    assert_eq!(r["success"], true);
    assert_eq!(r["url"], "https://py-demo.netlify.app");
    assert_eq!(r["approvedBy"], "ops-lead");
    assert!(!r["approverIdentity"].as_str().unwrap().is_empty());
    assert_eq!(r["totalCost"], 0.04);
}

#[test]
fn a_python_rejection_fails_the_workflow() {
    let run = format!("pyr-{}", uuid::Uuid::new_v4().simple());
    let (code, stdout) = run_flow(
        &["--reject", "sec-team", "--comment", "freeze"],
        input(&run),
    );
    assert_eq!(code, 1, "{stdout}");
    let f = last(&stdout, "FAILURE ");
    assert_eq!(f["type"], "DeploymentRejected");
}
