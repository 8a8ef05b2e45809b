//! The TypeScript sample's plan digest (`samples/typescript/planDigest.ts`, what a TypeScript
//! workflow shows and names in its approval) equals `DeploymentPlan::of` for the same inputs:
//! plain and progressive plans, defaults, env and files, non-ASCII text. It runs the sample
//! under Deno (installed by `scripts/install-deps.sh`, from PyPI), which runs TypeScript as is.

use std::io::Write;
use std::process::{Command, Stdio};

use ae_workflows_spec::deploy::{DeployWithApprovalInput, DeploymentPlan};
use serde_json::{Value, json};

fn inputs() -> Vec<Value> {
    let base = json!({
        "runId": "run-1",
        "platform": "vercel",
        "command": "vercel deploy --prod",
        "allowedDomains": ["api.vercel.com"],
        "workspaceFiles": [{"path": "index.html", "content": "<h1>hi</h1>"}],
        "env": {"VERCEL_TOKEN": "t"}
    });
    let with = |extra: Value| {
        let mut v = base.clone();
        for (k, x) in extra.as_object().unwrap() {
            v[k] = x.clone();
        }
        v
    };
    vec![
        base.clone(),
        // Defaults: domains per platform, timeout, no files, no env.
        json!({"runId": "r", "platform": "netlify", "command": "netlify deploy --prod"}),
        with(json!({"timeout": 60000, "image": "ae-sandbox:full"})),
        with(json!({"env": {"ZED": "z", "A_TOKEN": "é", "B": "tab\there"}})),
        with(json!({"command": "echo \"ünïcödé\" \u{1F680} && printf '\\n'"})),
        // Progressive stages: each key alone and all three.
        with(
            json!({"phase": "canary", "healthCheckCommand": "curl -fsS https://x/health",
                    "rollbackCommand": "vercel rollback"}),
        ),
        with(
            json!({"phase": "promote", "healthCheckCommand": "curl -fsS https://x/health",
                    "rollbackCommand": "vercel rollback"}),
        ),
        with(json!({"phase": "canary"})),
        with(json!({"healthCheckCommand": "true"})),
        with(json!({"rollbackCommand": "undo"})),
    ]
}

#[test]
fn the_typescript_sample_computes_the_workers_plan_digest() {
    let inputs = inputs();
    let expected: Vec<String> = inputs
        .iter()
        .map(|v| {
            let input: DeployWithApprovalInput =
                serde_json::from_value(v.clone()).expect("a valid input");
            DeploymentPlan::of(&input).plan_digest
        })
        .collect();
    // Distinct inputs, distinct digests: the progressive keys are covered.
    let mut unique = expected.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), expected.len(), "{expected:?}");

    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../samples/typescript");
    // `--check`: the sample is also type-checked (strict), as `tsc` would.
    let mut child = Command::new("deno")
        .args(["run", "--check", "--no-config", "check/planDigestCheck.ts"])
        .current_dir(dir)
        .env("DENO_NO_UPDATE_CHECK", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("deno (scripts/install-deps.sh installs it)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(serde_json::to_string(&inputs).unwrap().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "deno failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let got: Vec<String> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect();
    assert_eq!(got, expected);
}
