//! `scripts/demo.sh`, as a new user runs it after `scripts/up.sh`: the sample npm project
//! (`samples/demo-app`) is installed, tested and built in the full sandbox image, the plan is
//! printed with how to approve it, an approval is sent from the CLI, and the demo platform
//! (`samples/demo-platform/server.py`, reached through the egress proxy) serves the deployed
//! page. The worker is configured as `up.sh` configures it.

use ae_tests::harness::{free_port, harness, start_worker};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

#[tokio::test]
async fn the_demo_deploys_the_sample_npm_project_after_a_cli_approval() {
    let h = harness();
    let port = free_port().unwrap().to_string();
    let state = h
        .log_dir
        .join(format!("demo-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&state).unwrap();
    // A token only this run knows: it must never be printed (the plan shows its hash, the
    // result is redacted).
    let token = format!("dpt_{}", uuid::Uuid::new_v4().simple());
    let w = start_worker(&[
        ("AE_SANDBOX_IMAGE", "ae-sandbox:full"),
        ("AE_ALLOWED_IMAGES", "ae-sandbox:full,ae-sandbox:latest"),
        ("AE_EGRESS_HOSTS", "demo-platform.local=127.0.0.1"),
        ("AE_EGRESS_PORTS", &format!("80,443,{port}")),
        ("AE_EGRESS_PRIVATE_ALLOW", &format!("127.0.0.1:{port}")),
    ]);
    // The platform is started here (demo.sh starts one only when none runs) so the test can
    // stop it.
    let mut platform = tokio::process::Command::new("python3")
        .arg(repo_root().join("samples/demo-platform/server.py"))
        .args(["--port", &port, "--dir"])
        .arg(state.join("platform"))
        .env("DEMO_PLATFORM_TOKEN", &token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("start the demo platform");
    ae_tests::harness::wait_for_http(
        &format!("http://127.0.0.1:{port}"),
        "/deployments",
        200,
        Duration::from_secs(20),
    )
    .await;
    let demo = tokio::process::Command::new("bash")
        .arg(repo_root().join("scripts/demo.sh"))
        .args(["--approve", "demo-tester"])
        .env("TEMPORAL_ADDRESS", &h.temporal_address)
        .env("AE_TASK_QUEUE", &w.task_queue)
        .env("DEMO_PLATFORM_PORT", &port)
        .env("DEMO_PLATFORM_TOKEN", &token)
        .env("DEMO_STATE_DIR", &state)
        .env("DEMO_TIMEOUT_SECS", "400")
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(480), demo)
        .await
        .expect("demo.sh finishes")
        .expect("run demo.sh");
    let _ = platform.kill().await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "demo.sh failed\nstdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for expected in [
        "install, test and build passed",
        "\"planDigest\"",
        "\"command\": \"npm run deploy\"",
        "demo-platform.local",
        "approveDeployment",
        "Web UI: http://127.0.0.1:8233/namespaces/default/workflows/demo-",
        "\"success\": true",
        "demo: deployed",
        "Good ",
        "deployed after a human approval",
    ] {
        assert!(
            stdout.contains(expected),
            "missing {expected:?} in\n{stdout}"
        );
    }
    assert!(
        !stdout.contains(&token) && !stderr.contains(&token),
        "the platform token leaked:\n{stdout}\n{stderr}"
    );
}
