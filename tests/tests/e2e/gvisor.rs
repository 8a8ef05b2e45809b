//! The gVisor tier itself: a worker configured for a runtime the engine lacks refuses to start
//! (never falling back to runc), the warm pool hands out gVisor sandboxes to a gVisor worker,
//! and batches and sandboxes report their runtime. The abuse and egress suites run under both
//! tiers in their own modules.

use ae_tests::harness::{RunOpts, harness, run_activity, run_id, start_worker};
use ae_tests::tiers::{OPEN_GUARDRAILS, Tier, gvisor_worker};
use serde_json::json;
use std::time::Duration;

/// Runs `ae-worker run` with `env` until it exits (at most 60 s); its status and stderr.
fn worker_exit(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let h = harness();
    let mut cmd = std::process::Command::new(ae_tests::harness::binary("ae-worker"));
    cmd.arg("run")
        .env("REDIS_URL", &h.redis_url)
        .env("TEMPORAL_ADDRESS", &h.temporal_address)
        .env(
            "AE_TASK_QUEUE",
            format!("never-{}", uuid::Uuid::new_v4().simple()),
        )
        .env("AE_HTTP_ADDR", "")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        if child.try_wait().unwrap().is_some() {
            let out = child.wait_with_output().unwrap();
            return (
                out.status.code(),
                String::from_utf8_lossy(&out.stderr).into(),
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    (None, String::from_utf8_lossy(&out.stderr).into())
}

#[test]
fn a_worker_configured_for_a_runtime_the_engine_lacks_refuses_to_start() {
    for env in [
        vec![
            ("AE_SANDBOX_RUNTIME", "gvisor"),
            ("AE_GVISOR_RUNTIME_NAME", "ae-no-such-runtime"),
        ],
        // Only deploys under gVisor, and only its egress name missing: still refused.
        vec![
            ("AE_PRODUCTION_RUNTIME", "gvisor"),
            ("AE_GVISOR_EGRESS_RUNTIME_NAME", "ae-no-such-egress-runtime"),
        ],
    ] {
        let (code, stderr) = worker_exit(&env);
        assert!(
            code.is_some_and(|c| c != 0),
            "the worker did not refuse ({code:?}): {stderr}"
        );
        assert!(stderr.contains("ae-no-such-"), "{stderr}");
        assert!(stderr.contains("install-deps.sh --gvisor"), "{stderr}");
    }
    // An unknown tier is refused too.
    let (code, stderr) = worker_exit(&[("AE_SANDBOX_RUNTIME", "kata")]);
    assert!(code.is_some_and(|c| c != 0), "{stderr}");
    assert!(stderr.contains("runc or gvisor"), "{stderr}");
}

#[tokio::test]
async fn the_warm_pool_of_a_gvisor_worker_hands_out_gvisor_sandboxes() {
    let mut env = OPEN_GUARDRAILS.to_vec();
    env.extend([("AE_SANDBOX_RUNTIME", "gvisor"), ("AE_POOL_SIZE", "1")]);
    let w = start_worker(&env);
    let opts = RunOpts {
        task_queue: w.task_queue.clone(),
        ..Default::default()
    };
    for _ in 0..2 {
        let (o, _) = run_activity(
            "safeExecuteCode",
            // gVisor's /proc has a file Linux's has not: the command really ran under gVisor.
            json!({"runId": run_id("gvisor-pool"), "command": "test -e /proc/sentry-meminfo && echo gvisor"}),
            opts.clone(),
        )
        .await;
        let r = o.result.unwrap_or_else(|| panic!("{:?}", o.error));
        assert_eq!(r["stdout"], "gvisor\n", "{r}");
        assert_eq!(r["runtime"], "gvisor", "{r}");
    }
}

#[tokio::test]
async fn runc_and_gvisor_sandboxes_report_their_runtime_and_really_differ() {
    for tier in [Tier::Runc, Tier::Gvisor] {
        let (o, _) = run_activity(
            "safeExecuteBatch",
            json!({"runId": run_id("tier-batch"), "commands": ["test -e /proc/sentry-meminfo && echo gvisor || echo runc", "true"]}),
            tier.opts(),
        )
        .await;
        let r = o.result.unwrap_or_else(|| panic!("{:?}", o.error));
        assert_eq!(r["runtime"], tier.name(), "{r}");
        assert_eq!(
            r["results"][0]["stdout"],
            format!("{}\n", tier.name()),
            "{r}"
        );
        assert_eq!(r["results"][1]["runtime"], tier.name(), "{r}");
    }
    // The gVisor worker is a separate process with its own queue.
    assert_ne!(gvisor_worker().task_queue, Tier::Runc.queue());
}
