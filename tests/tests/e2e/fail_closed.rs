//! Fail closed: when Docker, the sandbox image or Redis cannot answer, nothing runs, the caller
//! gets a typed retryable failure, and nothing is charged.

use ae_tests::harness::{RunOpts, harness, run_activity, run_id, start_worker};
use redis::AsyncCommands;
use serde_json::json;

async fn spent(run: &str) -> Option<String> {
    harness()
        .redis()
        .await
        .get(format!("spent:{run}"))
        .await
        .unwrap()
}

#[tokio::test]
async fn unreachable_docker_is_sandbox_unavailable_and_refunded() {
    let w = start_worker(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    let run = run_id("nodocker");
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run, "command": "echo must not run"}),
        RunOpts {
            task_queue: w.task_queue.clone(),
            ..Default::default()
        },
    )
    .await;
    let e = o.error.expect("a failure");
    assert_eq!(e.r#type, "SandboxUnavailable");
    assert!(!e.non_retryable, "an outage is worth retrying");
    // Charged before the sandbox was tried, then given back.
    assert_eq!(spent(&run).await.as_deref(), Some("0"));
}

#[tokio::test]
async fn a_missing_image_is_sandbox_unavailable_with_a_clear_message() {
    let w = start_worker(&[("AE_SANDBOX_IMAGE", "ae-sandbox:does-not-exist")]);
    let run = run_id("noimage");
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run, "command": "true"}),
        RunOpts {
            task_queue: w.task_queue.clone(),
            ..Default::default()
        },
    )
    .await;
    let e = o.error.expect("a failure");
    assert_eq!(e.r#type, "SandboxUnavailable");
    assert!(e.message.contains("ae-worker image build"), "{}", e.message);
    assert_eq!(spent(&run).await.as_deref(), Some("0"));
}

#[tokio::test]
async fn unreachable_redis_is_budget_store_unavailable_and_nothing_runs() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("redis://127.0.0.1:{port}");
    let w = start_worker(&[("REDIS_URL", &url)]);
    let run = run_id("noredis");
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run, "command": "true"}),
        RunOpts {
            task_queue: w.task_queue.clone(),
            ..Default::default()
        },
    )
    .await;
    let e = o.error.expect("a failure");
    assert_eq!(e.r#type, "BudgetStoreUnavailable");
    assert!(!e.non_retryable);
    // run_activity asserted no sandbox of this workflow exists; none was ever created.
    assert_eq!(spent(&run).await, None);
}
