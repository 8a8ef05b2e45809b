//! Operating the worker over HTTP: `/metrics` (seed 003's names move after executions, the
//! Temporal SDK's `temporal_*` metrics on the same endpoint), `/healthz`, `/readyz` (503 when
//! Redis is unreachable), and the emergency stop (401 without or with a wrong token; with the
//! right one new executions of the run fail KillSwitchEngaged until it is resumed); fleets (a
//! reaper never touches another fleet's sandboxes); a worker configured only by a Temporal TOML
//! profile; and the README's quickest try, `temporal activity execute`, through the CLI.

use ae_tests::harness::{
    ADMIN_TOKEN, RunOpts, harness, http, outcome_of, run_id, safe_execute, sandboxes_with_label,
    start_activity, start_worker, start_worker_without, temporal_cli, wait_for_http,
    wait_for_no_sandboxes, wait_for_sandbox, worker_pid,
};
use redis::AsyncCommands;
use serde_json::{Value, json};
use std::time::Duration;

/// The sum of every sample of `name` whose labels include all of `labels`.
fn sample_sum(text: &str, name: &str, labels: &[(&str, &str)]) -> f64 {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let (series, value) = l.rsplit_once(' ')?;
            let (metric, rest) = match series.split_once('{') {
                Some((m, r)) => (m, r),
                None => (series, ""),
            };
            if metric != name {
                return None;
            }
            let all = labels
                .iter()
                .all(|(k, v)| rest.contains(&format!("{k}=\"{v}\"")));
            all.then(|| value.parse::<f64>().ok()).flatten()
        })
        .sum()
}

async fn scrape() -> String {
    let h = harness();
    wait_for_http(&h.http_url, "/healthz", 200, Duration::from_secs(30)).await;
    let (status, text) = http(&h.http_url, "GET", "/metrics", None, "").await;
    assert_eq!(status, 200, "{text}");
    text
}

#[tokio::test]
async fn metrics_move_after_executions_and_include_temporal_metrics() {
    let before = scrape().await;
    let exec = [("activity", "safeExecuteCode")];
    let ok = [("activity", "safeExecuteCode"), ("outcome", "ok")];

    // An execution that prints an env value (redacted), a refused one, a failing one, and one
    // past its budget.
    let run = run_id("metrics");
    let o = safe_execute(json!({"runId": run, "command": "echo $TOKEN",
        "env": {"TOKEN": "s3cr3t-value-for-metrics"}}))
    .await;
    assert!(o.result.is_some(), "{o:?}");
    let o = safe_execute(json!({"runId": run, "command": "rm -rf /"})).await;
    assert_eq!(o.error.expect("refused").r#type, "PolicyViolation");
    let o = safe_execute(json!({"runId": run, "command": "exit 3"})).await;
    assert_eq!(o.result.expect("a result")["exitCode"], 3);
    let poor = run_id("metrics-poor");
    let mut r = harness().redis().await;
    let _: () = r.set(format!("budget:{poor}"), "0").await.unwrap();
    let o = safe_execute(json!({"runId": poor, "command": "true"})).await;
    assert_eq!(o.error.expect("refused").r#type, "BudgetExceeded");

    let after = scrape().await;
    let grew = |name: &str, labels: &[(&str, &str)]| {
        let (b, a) = (
            sample_sum(&before, name, labels),
            sample_sum(&after, name, labels),
        );
        assert!(a > b, "{name}{labels:?} did not grow: {b} -> {a}\n{after}");
    };
    grew("policy_checks_total", &[("outcome", "allowed")]);
    grew("policy_checks_total", &[("outcome", "refused")]);
    grew("policy_violations_total", &[("rule", "rm-rf-root")]);
    grew("sandbox_executions_total", &ok);
    grew(
        "sandbox_executions_total",
        &[("activity", "safeExecuteCode"), ("outcome", "nonzero_exit")],
    );
    grew(
        "sandbox_executions_total",
        &[
            ("activity", "safeExecuteCode"),
            ("outcome", "PolicyViolation"),
        ],
    );
    grew("sandbox_execution_duration_seconds_count", &ok);
    grew("budget_spent_dollars", &exec);
    grew("secrets_redacted_total", &exec);
    grew("budget_exceeded_total", &exec);
    grew(
        "activity_failures_total",
        &[
            ("activity", "safeExecuteCode"),
            ("failure", "BudgetExceeded"),
        ],
    );
    for name in [
        "budget_remaining_dollars",
        "sandboxes_active",
        "sandbox_pool_ready",
        "sandbox_pool_size",
        "sandbox_sessions_open",
    ] {
        assert!(
            after.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{after}"
        );
    }
    // No run id in any label.
    assert!(!after.contains(&run), "a run id leaked into the labels");
    // The Temporal SDK's own worker metrics, on the same endpoint.
    for name in [
        "temporal_activity_execution_latency",
        "temporal_num_pollers",
        "temporal_request",
    ] {
        assert!(
            after.lines().any(|l| l.starts_with(name)),
            "{name} missing:\n{after}"
        );
    }
}

#[tokio::test]
async fn health_and_readiness() {
    let h = harness();
    let body = wait_for_http(&h.http_url, "/healthz", 200, Duration::from_secs(30)).await;
    assert!(body.contains("ok"), "{body}");
    let body = wait_for_http(&h.http_url, "/readyz", 200, Duration::from_secs(30)).await;
    assert!(body.contains("ready"), "{body}");
}

#[tokio::test]
async fn readyz_is_503_when_redis_is_unreachable() {
    // Nothing listens on port 1.
    let w = start_worker(&[("REDIS_URL", "redis://127.0.0.1:1")]);
    wait_for_http(&w.http_url, "/healthz", 200, Duration::from_secs(60)).await;
    let body = wait_for_http(&w.http_url, "/readyz", 503, Duration::from_secs(30)).await;
    assert!(body.contains("redis unreachable"), "{body}");
    assert!(!body.contains("docker"), "{body}");
}

#[tokio::test]
async fn emergency_stop_needs_the_token_and_stops_a_run_until_resumed() {
    let h = harness();
    let url = &h.http_url;
    wait_for_http(url, "/healthz", 200, Duration::from_secs(30)).await;
    let run = run_id("http-stop");
    let body = json!({"runId": run, "reason": "runaway agent (http)"}).to_string();
    let bearer = format!("Bearer {ADMIN_TOKEN}");

    let (s, _) = http(url, "POST", "/api/emergency/stop", None, &body).await;
    assert_eq!(s, 401, "no token");
    let (s, _) = http(
        url,
        "POST",
        "/api/emergency/stop",
        Some("Bearer wrong"),
        &body,
    )
    .await;
    assert_eq!(s, 401, "wrong token");
    let (s, _) = http(url, "GET", "/api/emergency/status", Some("Basic x"), "").await;
    assert_eq!(s, 401, "not a bearer token");
    let o = safe_execute(json!({"runId": run, "command": "true"})).await;
    assert!(
        o.result.is_some(),
        "refused requests must not engage the switch: {o:?}"
    );

    let (s, text) = http(url, "POST", "/api/emergency/stop", Some(&bearer), &body).await;
    assert_eq!(s, 200, "{text}");
    let status: Value = serde_json::from_str(&text).unwrap();
    assert!(
        status["runs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|r| r == &json!(run)),
        "{status}"
    );
    let o = safe_execute(json!({"runId": run, "command": "echo must not run"})).await;
    let e = o.error.expect("a failure");
    assert_eq!(e.r#type, "KillSwitchEngaged");
    assert!(e.message.contains("runaway agent (http)"), "{}", e.message);

    let (s, text) = http(url, "GET", "/api/emergency/status", Some(&bearer), "").await;
    assert_eq!(s, 200, "{text}");
    assert!(text.contains(&run), "{text}");

    let resume = json!({"runId": run}).to_string();
    let (s, _) = http(url, "POST", "/api/emergency/resume", None, &resume).await;
    assert_eq!(s, 401);
    let (s, text) = http(url, "POST", "/api/emergency/resume", Some(&bearer), &resume).await;
    assert_eq!(s, 200, "{text}");
    assert!(!text.contains(&run), "{text}");
    let o = safe_execute(json!({"runId": run, "command": "echo back"})).await;
    assert_eq!(o.result.expect("a result")["stdout"], "back\n");
}

#[tokio::test]
async fn admin_routes_are_off_without_a_token() {
    let w = start_worker(&[("AE_ADMIN_TOKEN", "")]);
    wait_for_http(&w.http_url, "/healthz", 200, Duration::from_secs(60)).await;
    let (s, _) = http(&w.http_url, "GET", "/api/emergency/status", None, "").await;
    assert_eq!(s, 404);
    let (s, _) = http(
        &w.http_url,
        "POST",
        "/api/emergency/stop",
        Some("Bearer "),
        "",
    )
    .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn a_reaper_only_touches_its_own_fleet() {
    // Fleet A is the suite's. Fleet B keeps its liveness in another Redis keyspace, where no
    // worker of fleet A is alive: before fleets, B's reaper took A's sandboxes for orphans.
    let url_b = format!("{}/5", harness().redis_url);
    let fleet_b = run_id("fleet-b");
    let a = start_worker(&[]);
    let run_a = run_id("fleet-a");
    let wf_a = start_activity(
        "safeExecuteCode",
        json!({"runId": run_a, "command": "sleep 25; echo survived", "timeout": 120000}),
        &RunOpts {
            task_queue: a.task_queue.clone(),
            ..Default::default()
        },
    )
    .await;
    let doomed = start_worker(&[
        ("REDIS_URL", &url_b),
        ("AE_FLEET", &fleet_b),
        ("AE_WORKER_TTL_SECS", "3"),
        ("AE_REAPER_INTERVAL_SECS", "1"),
    ]);
    let run_b = run_id("fleet-b-run");
    let _wf_b = start_activity(
        "safeExecuteCode",
        json!({"runId": run_b, "command": "sleep 300", "timeout": 300000}),
        &RunOpts {
            task_queue: doomed.task_queue.clone(),
            heartbeat: Duration::from_secs(5),
            ..Default::default()
        },
    )
    .await;
    let sandbox_a = wait_for_sandbox("ae.run-id", &run_a, Duration::from_secs(30))
        .await
        .expect("fleet A's sandbox started");
    let sandbox_b = wait_for_sandbox("ae.run-id", &run_b, Duration::from_secs(30))
        .await
        .expect("fleet B's sandbox started");
    assert!(
        sandboxes_with_label("ae.fleet", &fleet_b)
            .await
            .contains(&sandbox_b)
    );
    assert!(
        sandboxes_with_label("ae.fleet", &ae_tests::harness::fleet())
            .await
            .contains(&sandbox_a)
    );

    let pid = worker_pid(&doomed.identity).expect("the doomed worker's pid");
    let killed = std::process::Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    // Fleet B's next worker reaps B's orphan, and only it.
    let _reaper_b = start_worker(&[
        ("REDIS_URL", &url_b),
        ("AE_FLEET", &fleet_b),
        ("AE_REAPER_INTERVAL_SECS", "1"),
    ]);
    let left = wait_for_no_sandboxes("ae.run-id", &run_b, Duration::from_secs(30)).await;
    assert!(
        left.is_empty(),
        "fleet B's orphan {sandbox_b} was not reaped"
    );
    assert_eq!(
        sandboxes_with_label("ae.run-id", &run_a).await,
        vec![sandbox_a],
        "fleet A's running sandbox must be left alone"
    );
    let o = outcome_of(&wf_a).await;
    assert_eq!(
        o.result.expect("fleet A's execution completed")["stdout"],
        "survived\n"
    );
    drop(doomed);
}

#[tokio::test]
async fn a_worker_configured_only_by_a_temporal_toml_profile() {
    let h = harness();
    let file = h
        .log_dir
        .join(format!("temporal-{}.toml", uuid::Uuid::new_v4().simple()));
    std::fs::write(
        &file,
        format!(
            "[profile.default]\naddress = \"127.0.0.1:1\"\n\n\
             [profile.ops]\naddress = \"{}\"\nnamespace = \"default\"\n",
            h.temporal_address
        ),
    )
    .unwrap();
    let file = file.to_string_lossy().into_owned();
    let w = start_worker_without(
        &[("TEMPORAL_CONFIG_FILE", &file), ("TEMPORAL_PROFILE", "ops")],
        &["TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"],
    );
    let opts = RunOpts {
        task_queue: w.task_queue.clone(),
        ..Default::default()
    };
    let wf = start_activity(
        "safeExecuteCode",
        json!({"runId": run_id("profile"), "command": "echo from-profile"}),
        &opts,
    )
    .await;
    let o = outcome_of(&wf).await;
    assert_eq!(o.result.expect("a result")["stdout"], "from-profile\n");
}

#[tokio::test]
async fn the_quickest_try_runs_through_the_temporal_cli() {
    wait_for_http(&harness().http_url, "/readyz", 200, Duration::from_secs(30)).await;
    let input = json!({"runId": run_id("try"), "command": "echo hi"}).to_string();
    let activity_id = run_id("try");
    let out = tokio::task::spawn_blocking(move || {
        temporal_cli(&[
            "activity",
            "execute",
            "--activity-id",
            &activity_id,
            "--type",
            "safeExecuteCode",
            "--task-queue",
            "autonomous-enterprise",
            "--start-to-close-timeout",
            "1m",
            "--input",
            &input,
        ])
    })
    .await
    .unwrap();
    assert!(out.contains("hi"), "{out}");
    assert!(out.contains("exitCode"), "{out}");
}
