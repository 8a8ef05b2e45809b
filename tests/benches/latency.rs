//! Latency of `safeExecuteCode("true")` from a workflow, beside its floors measured in the same
//! run on the same machine: the same workflow calling a no-op activity (Temporal's own
//! round trip), and `docker run --rm <image> true` (the engine's own container start); the
//! fresh-sandbox path and the engine floor also under gVisor (`runsc`, see README "Isolation
//! tiers"; needs `scripts/install-deps.sh --gvisor`).
//!
//! A second table compares the paths inside ONE workflow (a session is bound to the workflow
//! that opened it): a loop workflow calls, in turn, the no-op activity, `safeExecuteCode("true")`
//! in an open session (on the session's task queue), from the warm pool and fresh; each
//! activity's time is read from the workflow's history (scheduled → completed, server clock).
//!
//! Run: `cargo bench -p ae-tests --bench latency` (after `cargo build --workspace --bins`).
//! `AE_BENCH_ITERATIONS` sets the sample count (default 30).

use ae_tests::harness::{RunOpts, WORKER_QUEUE, harness, run_activity, start_worker, temporal_cli};
use ae_tests::workflows::ByName;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};
use temporalio_client::{WorkflowGetResultOptions, WorkflowStartOptions};
use temporalio_common::RetryPolicy;
use temporalio_macros::{activities, workflow, workflow_methods};
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{
    ActivityOptions, Runtime, Worker, WorkerOptions, WorkflowContext, WorkflowResult,
};

const NOOP_QUEUE: &str = "ae-bench-noop";

pub struct Noop;

#[activities]
impl Noop {
    #[activity(name = "noop")]
    pub async fn noop(
        _ctx: ActivityContext,
        input: serde_json::Value,
    ) -> Result<serde_json::Value, ActivityError> {
        Ok(input)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let n: usize = std::env::var("AE_BENCH_ITERATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(30);
    let h = harness();
    let runtime = Runtime::from_current_tokio(Default::default())?;
    let options = WorkerOptions::new(NOOP_QUEUE)
        .register_activities(Noop)
        .register_workflow::<LoopWorkflow>()?
        .build();
    let mut worker = Worker::new(&runtime, h.client().await, options)?;
    // The SDK's worker future is not Send: run it beside the measurements in this task.
    tokio::select! {
        r = worker.run() => anyhow::bail!("no-op worker stopped: {r:?}"),
        r = measure(n) => r,
    }
}

async fn measure(n: usize) -> anyhow::Result<()> {
    let image = std::env::var("AE_SANDBOX_IMAGE").unwrap_or_else(|_| "ae-sandbox:latest".into());

    // A second worker with a warm pool, on its own queue.
    // Guardrails wide open, as on the shared worker: the bench runs one run far faster than the
    // default rate limit (10 a minute) allows.
    let pooled = start_worker(&[
        ("AE_POOL_SIZE", "4"),
        ("AE_RATE_SANDBOX_PER_MIN", "0"),
        ("AE_MAX_CONCURRENT_PER_RUN", "0"),
        ("AE_CIRCUIT_FAILURES", "0"),
    ]);
    let pooled_queue = pooled.task_queue.clone();
    // A gVisor worker without a pool, guardrails open like the shared worker's.
    let mut gvisor_env = ae_tests::tiers::OPEN_GUARDRAILS.to_vec();
    gvisor_env.push(("AE_SANDBOX_RUNTIME", "gvisor"));
    let gvisor = start_worker(&gvisor_env);
    let gvisor_queue = gvisor.task_queue.clone();
    // A running container for the `docker exec` floor.
    let running = docker(&[
        "run",
        "-d",
        "--rm",
        "--network",
        "none",
        &image,
        "sleep",
        "3600",
    ])?;
    let running = running.trim().to_string();

    let noop = || {
        run_activity(
            "noop",
            json!({}),
            RunOpts {
                task_queue: NOOP_QUEUE.into(),
                check_cleanup: false,
                ..Default::default()
            },
        )
    };
    let run = format!("bench-{}", uuid::Uuid::new_v4().simple());
    // `safeExecuteCode("true")` through the worker polling `queue`.
    let execute_true_on = |queue: &str| {
        run_activity(
            "safeExecuteCode",
            json!({"runId": run, "command": "true"}),
            RunOpts {
                task_queue: queue.to_string(),
                check_cleanup: false,
                ..Default::default()
            },
        )
    };
    let cold = || execute_true_on(WORKER_QUEUE);
    let warm = || execute_true_on(&pooled_queue);
    let gvisor_cold = || execute_true_on(&gvisor_queue);
    let runsc = [
        "run",
        "--rm",
        "--runtime",
        "runsc",
        "--network",
        "none",
        &image,
        "true",
    ];

    // Warm every path once so first-use costs (connections, caches) are not sampled.
    noop().await;
    cold().await;
    warm().await;
    gvisor_cold().await;
    docker(&runsc)?;
    docker(&["run", "--rm", "--network", "none", &image, "true"])?;
    docker(&["exec", &running, "true"])?;

    // Interleave them so machine noise hits all alike. The pooled worker gets a moment to
    // refill between its samples, as it would between real executions.
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); 7];
    for _ in 0..n {
        let t = Instant::now();
        let (o, _) = noop().await;
        assert!(o.result.is_some(), "{o:?}");
        samples[0].push(t.elapsed());
        let t = Instant::now();
        let (o, _) = warm().await;
        assert_eq!(
            o.result.as_ref().map(|r| r["exitCode"].clone()),
            Some(json!(0)),
            "{o:?}"
        );
        samples[1].push(t.elapsed());
        let t = Instant::now();
        let (o, _) = cold().await;
        assert_eq!(
            o.result.as_ref().map(|r| r["exitCode"].clone()),
            Some(json!(0)),
            "{o:?}"
        );
        samples[2].push(t.elapsed());
        let t = Instant::now();
        docker(&["exec", &running, "true"])?;
        samples[3].push(t.elapsed());
        let t = Instant::now();
        docker(&["run", "--rm", "--network", "none", &image, "true"])?;
        samples[4].push(t.elapsed());
        let t = Instant::now();
        let (o, _) = gvisor_cold().await;
        let r = o.result.as_ref().expect("gVisor execution");
        assert_eq!(
            (&r["exitCode"], &r["runtime"]),
            (&json!(0), &json!("gvisor")),
            "{r}"
        );
        samples[5].push(t.elapsed());
        let t = Instant::now();
        docker(&runsc)?;
        samples[6].push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let _ = docker(&["rm", "-f", &running]);
    let in_workflow = in_one_workflow(n, &pooled_queue).await?;
    drop(pooled);
    drop(gvisor);
    let names = [
        "workflow -> no-op activity (floor: Temporal)".to_string(),
        "workflow -> safeExecuteCode(\"true\"), warm pool".to_string(),
        "workflow -> safeExecuteCode(\"true\"), no pool".to_string(),
        "docker exec <running> true (floor: exec)".to_string(),
        format!("docker run --rm {image} true (floor: engine)"),
        "workflow -> safeExecuteCode(\"true\"), no pool, gVisor".to_string(),
        format!("docker run --rm --runtime runsc {image} true (floor: engine, gVisor)"),
    ];
    let rows: Vec<(String, Vec<Duration>)> = names.into_iter().zip(samples).collect();

    println!("\nlatency over {n} iterations, interleaved, same machine and run\n");
    println!("| path | p50 ms | p90 ms | p99 ms | mean ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, mut xs) in rows {
        xs.sort();
        let mean = xs.iter().sum::<Duration>() / xs.len() as u32;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms(pct(&xs, 50)),
            ms(pct(&xs, 90)),
            ms(pct(&xs, 99)),
            ms(mean)
        );
    }
    println!(
        "\nin one workflow over {n} iterations, interleaved (history: activity scheduled -> completed)\n"
    );
    println!("| path | p50 ms | p90 ms | p99 ms | mean ms |");
    println!("| --- | ---: | ---: | ---: | ---: |");
    for (name, mut xs) in in_workflow {
        xs.sort();
        let mean = xs.iter().sum::<Duration>() / xs.len().max(1) as u32;
        println!(
            "| {name} | {:.1} | {:.1} | {:.1} | {:.1} |",
            ms(pct(&xs, 50)),
            ms(pct(&xs, 90)),
            ms(pct(&xs, 99)),
            ms(mean)
        );
    }
    Ok(())
}

/// What [`LoopWorkflow`] runs: each `(label, activity, input, queue)` in turn, `n` times; an
/// input string `"$sandboxId"` is the session's id, a queue `"$session"` the session's queue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Loop {
    pub n: usize,
    pub open: Value,
    pub steps: Vec<(String, String, Value, String)>,
}

/// Opens a session, runs the steps `n` times, closes it. The activity id is the step's label.
#[workflow]
#[derive(Default)]
pub struct LoopWorkflow;

#[workflow_methods]
impl LoopWorkflow {
    #[run(name = "benchLoop")]
    pub async fn run(ctx: &mut WorkflowContext<Self>, l: Loop) -> WorkflowResult<()> {
        let opts = |queue: String, id: String| {
            ActivityOptions::with_start_to_close_timeout(Duration::from_secs(60))
                .task_queue(queue)
                .activity_id(id)
                .schedule_to_start_timeout(Duration::from_secs(30))
                .heartbeat_timeout(Duration::from_secs(10))
                .retry_policy(RetryPolicy::builder().maximum_attempts(1).build())
                .build()
        };
        let session = ctx
            .execute_activity(
                ByName("openSandbox".into()),
                l.open.clone(),
                opts(WORKER_QUEUE.into(), "open".into()),
            )
            .await?;
        let queue = session["taskQueue"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        for i in 0..l.n {
            for (label, activity, input, q) in &l.steps {
                let q = if q == "$session" {
                    queue.clone()
                } else {
                    q.clone()
                };
                let mut input = input.clone();
                if input["sandboxId"] == "$sandboxId" {
                    input["sandboxId"] = session["sandboxId"].clone();
                }
                ctx.execute_activity(
                    ByName(activity.clone()),
                    input,
                    opts(q, format!("{label}#{i}")),
                )
                .await?;
            }
        }
        let close = json!({"sandboxId": session["sandboxId"]});
        ctx.execute_activity(
            ByName("closeSandbox".into()),
            close,
            opts(queue, "close".into()),
        )
        .await?;
        Ok(())
    }
}

/// Runs [`LoopWorkflow`] and reads each step's latency from its history.
async fn in_one_workflow(
    n: usize,
    pooled_queue: &str,
) -> anyhow::Result<Vec<(String, Vec<Duration>)>> {
    let run = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let exec = json!({"runId": run, "command": "true"});
    let in_session = json!({"runId": run, "command": "true", "sandboxId": "$sandboxId"});
    let steps = vec![
        (
            "workflow -> no-op activity (floor: Temporal)",
            "noop",
            json!({}),
            NOOP_QUEUE,
        ),
        (
            "workflow -> safeExecuteCode(\"true\"), open session",
            "safeExecuteCode",
            in_session,
            "$session",
        ),
        (
            "workflow -> safeExecuteCode(\"true\"), warm pool",
            "safeExecuteCode",
            exec.clone(),
            pooled_queue,
        ),
        (
            "workflow -> safeExecuteCode(\"true\"), no pool",
            "safeExecuteCode",
            exec,
            WORKER_QUEUE,
        ),
    ];
    let labels: Vec<String> = steps.iter().map(|s| s.0.to_string()).collect();
    let l = Loop {
        // One warm-up round, not sampled.
        n: n + 1,
        open: json!({"runId": run}),
        steps: steps
            .into_iter()
            .map(|(l, a, i, q)| (l.to_string(), a.to_string(), i, q.to_string()))
            .collect(),
    };
    let client = harness().client().await;
    let id = format!("bench-loop-{}", uuid::Uuid::new_v4());
    client
        .start_workflow(
            LoopWorkflow::run,
            l,
            WorkflowStartOptions::new(NOOP_QUEUE, &id)
                .execution_timeout(Duration::from_secs(1800))
                .build(),
        )
        .await?;
    client
        .get_workflow_handle::<LoopWorkflow>(&id)
        .get_result(WorkflowGetResultOptions::default())
        .await?;
    let history_json = temporal_cli(&["workflow", "show", "-w", &id, "-o", "json"]);
    // Kept beside the worker's log, to line the history's times up with the worker's.
    let _ = std::fs::write(
        harness().log_dir.join("loop-workflow-history.json"),
        &history_json,
    );
    let history: Value = serde_json::from_str(&history_json)?;
    let events = history["events"].as_array().cloned().unwrap_or_default();
    let mut scheduled: HashMap<String, (String, f64)> = HashMap::new();
    let mut out: HashMap<String, Vec<Duration>> = HashMap::new();
    for e in &events {
        let id = e["eventId"].to_string().trim_matches('"').to_string();
        let at = seconds_of_day(e["eventTime"].as_str().unwrap_or_default());
        if let Some(a) = e.get("activityTaskScheduledEventAttributes") {
            let activity_id = a["activityId"].as_str().unwrap_or_default().to_string();
            scheduled.insert(id, (activity_id, at));
        } else if let Some(a) = e.get("activityTaskCompletedEventAttributes") {
            let sid = a["scheduledEventId"]
                .to_string()
                .trim_matches('"')
                .to_string();
            if let Some((activity_id, t0)) = scheduled.get(&sid)
                && let Some((label, i)) = activity_id.rsplit_once('#')
                && i != "0"
            {
                let d = Duration::from_secs_f64((at - t0).rem_euclid(86_400.0));
                out.entry(label.to_string()).or_default().push(d);
            }
        }
    }
    Ok(labels
        .into_iter()
        .map(|l| {
            let xs = out.remove(&l).unwrap_or_default();
            (l, xs)
        })
        .collect())
}

/// Seconds since midnight of an RFC 3339 UTC time (`...T12:34:56.789012345Z`).
fn seconds_of_day(t: &str) -> f64 {
    let Some((_, clock)) = t.split_once('T') else {
        return 0.0;
    };
    let clock = clock.trim_end_matches('Z');
    let mut parts = clock.split(':');
    let h: f64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let m: f64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    let s: f64 = parts.next().and_then(|x| x.parse().ok()).unwrap_or(0.0);
    h * 3600.0 + m * 60.0 + s
}

fn docker(args: &[&str]) -> anyhow::Result<String> {
    let out = std::process::Command::new("docker").args(args).output()?;
    anyhow::ensure!(out.status.success(), "docker {args:?} failed");
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
