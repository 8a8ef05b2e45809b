//! The warm pool: pre-started sandboxes, each used for exactly one execution then destroyed,
//! refilled in the background, skipped when dead, removed on graceful shutdown.

use ae_tests::harness::{
    RunOpts, run_activity, sandboxes_with_label, start_worker, wait_for_no_sandboxes,
};
use serde_json::json;
use std::collections::HashSet;
use std::time::{Duration, Instant};

async fn pooled(identity: &str) -> Vec<String> {
    let mine: HashSet<String> = sandboxes_with_label("ae.owner", identity)
        .await
        .into_iter()
        .collect();
    sandboxes_with_label("ae.pool", "true")
        .await
        .into_iter()
        .filter(|id| mine.contains(id))
        .collect()
}

async fn wait_for_pool(identity: &str, n: usize) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let p = pooled(identity).await;
        if p.len() >= n || Instant::now() > deadline {
            return p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn pooled_sandboxes_are_used_once_refilled_and_removed_at_shutdown() {
    let w = start_worker(&[("AE_POOL_SIZE", "2")]);
    assert_eq!(wait_for_pool(&w.identity, 2).await.len(), 2);
    let opts = RunOpts {
        task_queue: w.task_queue.clone(),
        ..Default::default()
    };
    let run = format!("pool-{}", uuid::Uuid::new_v4().simple());

    let mut used = HashSet::new();
    for _ in 0..4 {
        let (o, _) = run_activity(
            "safeExecuteCode",
            json!({"runId": run, "command": "cat /workspace/marker 2>/dev/null; echo x > /workspace/marker; echo fresh"}),
            opts.clone(),
        )
        .await;
        let r = o.result.clone().unwrap_or_else(|| panic!("{o:?}"));
        // Nothing a previous execution wrote is visible: no sandbox is ever reused.
        assert_eq!(r["stdout"], "fresh\n");
        assert!(
            used.insert(r["sandboxId"].as_str().unwrap().to_string()),
            "reused {r}"
        );
    }

    // Used sandboxes are gone (removed in the background) and the pool is full again.
    let deadline = Instant::now() + Duration::from_secs(20);
    let pool = loop {
        let p = pooled(&w.identity).await;
        let stale = p
            .iter()
            .any(|id| used.iter().any(|u| id.starts_with(u.as_str())));
        if (p.len() == 2 && !stale) || Instant::now() > deadline {
            break p;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(pool.len(), 2, "{pool:?}");
    assert!(
        pool.iter()
            .all(|id| !used.iter().any(|u| id.starts_with(u.as_str())))
    );

    // A pooled sandbox that died while waiting is skipped, not handed out.
    let killed = &pool[0];
    assert!(
        std::process::Command::new("docker")
            .args(["rm", "-f", killed])
            .output()
            .unwrap()
            .status
            .success()
    );
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run, "command": "echo ok"}),
        opts.clone(),
    )
    .await;
    assert_eq!(o.result.expect("a result")["stdout"], "ok\n");

    // Graceful shutdown removes everything the worker created, pool included.
    let identity = w.identity.clone();
    drop(w);
    let left = wait_for_no_sandboxes("ae.owner", &identity, Duration::from_secs(15)).await;
    assert!(left.is_empty(), "{left:?}");
}

#[tokio::test]
async fn a_pooled_sandbox_runs_commands_exactly_like_a_fresh_one() {
    // Pooled sandboxes hand the command to a shell started ahead of time (no docker exec on
    // the hot path); what the command sees and what the result says must not differ.
    let w = start_worker(&[("AE_POOL_SIZE", "2")]);
    assert_eq!(wait_for_pool(&w.identity, 2).await.len(), 2);
    let opts = RunOpts {
        task_queue: w.task_queue.clone(),
        ..Default::default()
    };
    let run = format!("pool-same-{}", uuid::Uuid::new_v4().simple());
    let tricky = "it's $HOME `id` \"q\" \\ $(echo no)";
    // The value comes back upper-cased: verbatim, the redactor would hide it.
    let command = "printf '%s|' \"$(printf %s \"$ODD\" | tr a-z A-Z)\" \"$(id -u)\" \"$(pwd)\" \"$0\"; cat; echo; echo err >&2; exit 7";
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run, "command": command, "env": {"ODD": tricky}}),
        opts.clone(),
    )
    .await;
    let pooled = o.result.clone().unwrap_or_else(|| panic!("{o:?}"));
    assert_eq!(
        pooled["stdout"],
        format!("{}|65534|/workspace|/bin/sh|\n", tricky.to_uppercase())
    );
    assert_eq!(pooled["stderr"], "err\n");
    assert_eq!(pooled["exitCode"], 7);
    let log = std::fs::read_to_string(
        ae_tests::harness::harness()
            .log_dir
            .join(format!("worker-{}.log", w.identity)),
    )
    .unwrap();
    assert!(
        log.contains("sandbox taken from the warm pool"),
        "the execution did not use the pool"
    );

    // A timeout still kills the command, and the result says so.
    let started = Instant::now();
    let (o, _) = run_activity(
        "safeExecuteCode",
        json!({"runId": run, "command": "trap '' TERM; sleep 30", "timeout": 1000}),
        opts.clone(),
    )
    .await;
    let r = o.result.clone().unwrap_or_else(|| panic!("{o:?}"));
    assert_eq!(r["timedOut"], true, "{r}");
    assert_eq!(r["exitCode"], 137, "{r}");
    assert!(started.elapsed() < Duration::from_secs(15));
}
