//! Latency of `safeExecuteCode("true")` from a workflow, beside its floors measured in the same
//! run on the same machine: the same workflow calling a no-op activity (Temporal's own
//! round trip), and `docker run --rm <image> true` (the engine's own container start).
//!
//! Run: `cargo bench -p ae-tests --bench latency` (after `cargo build --workspace --bins`).
//! `AE_BENCH_ITERATIONS` sets the sample count (default 30).

use ae_tests::harness::{RunOpts, harness, run_activity, start_worker};
use serde_json::json;
use std::time::{Duration, Instant};
use temporalio_macros::activities;
use temporalio_sdk::activities::{ActivityContext, ActivityError};
use temporalio_sdk::{Runtime, Worker, WorkerOptions};

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
    let pooled = start_worker(&[("AE_POOL_SIZE", "4")]);
    let pooled_queue = pooled.task_queue.clone();
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
    let cold = || {
        run_activity(
            "safeExecuteCode",
            json!({"runId": run, "command": "true"}),
            RunOpts {
                check_cleanup: false,
                ..Default::default()
            },
        )
    };
    let warm = || {
        run_activity(
            "safeExecuteCode",
            json!({"runId": run, "command": "true"}),
            RunOpts {
                task_queue: pooled_queue.clone(),
                check_cleanup: false,
                ..Default::default()
            },
        )
    };

    // Warm every path once so first-use costs (connections, caches) are not sampled.
    noop().await;
    cold().await;
    warm().await;
    docker(&["run", "--rm", "--network", "none", &image, "true"])?;
    docker(&["exec", &running, "true"])?;

    // Interleave them so machine noise hits all alike. The pooled worker gets a moment to
    // refill between its samples, as it would between real executions.
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); 5];
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
        tokio::time::sleep(Duration::from_millis(600)).await;
    }
    let _ = docker(&["rm", "-f", &running]);
    drop(pooled);
    let names = [
        "workflow -> no-op activity (floor: Temporal)".to_string(),
        "workflow -> safeExecuteCode(\"true\"), warm pool".to_string(),
        "workflow -> safeExecuteCode(\"true\"), no pool".to_string(),
        "docker exec <running> true (floor: exec)".to_string(),
        format!("docker run --rm {image} true (floor: engine)"),
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
    Ok(())
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
