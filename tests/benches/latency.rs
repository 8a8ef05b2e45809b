//! Latency of `safeExecuteCode("true")` from a workflow, beside its floors measured in the same
//! run on the same machine: the same workflow calling a no-op activity (Temporal's own
//! round trip), and `docker run --rm <image> true` (the engine's own container start).
//!
//! Run: `cargo bench -p ae-tests --bench latency` (after `cargo build --workspace --bins`).
//! `AE_BENCH_ITERATIONS` sets the sample count (default 30).

use ae_tests::harness::{RunOpts, harness, run_activity};
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

    // Warm every path once so first-use costs (connections, caches) are not sampled.
    let noop = || {
        run_activity(
            "noop",
            json!({}),
            RunOpts {
                task_queue: NOOP_QUEUE.into(),
                ..Default::default()
            },
        )
    };
    let run = format!("bench-{}", uuid::Uuid::new_v4().simple());
    let exec = || {
        run_activity(
            "safeExecuteCode",
            json!({"runId": run, "command": "true"}),
            RunOpts::default(),
        )
    };
    noop().await;
    exec().await;
    docker_run(&image)?;

    let mut rows = Vec::new();
    // Interleave the three so machine noise hits them alike.
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..n {
        let t = Instant::now();
        let (o, _) = noop().await;
        assert!(o.result.is_some(), "{o:?}");
        a.push(t.elapsed());
        let t = Instant::now();
        let (o, _) = exec().await;
        assert_eq!(
            o.result.as_ref().map(|r| r["exitCode"].clone()),
            Some(json!(0)),
            "{o:?}"
        );
        b.push(t.elapsed());
        let t = Instant::now();
        docker_run(&image)?;
        c.push(t.elapsed());
    }
    rows.push(("workflow -> no-op activity (floor: Temporal)", a));
    rows.push(("workflow -> safeExecuteCode(\"true\")", b));
    rows.push((
        &*Box::leak(format!("docker run --rm {image} true (floor: engine)").into_boxed_str()),
        c,
    ));

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

fn docker_run(image: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("docker")
        .args(["run", "--rm", "--network", "none", image, "true"])
        .status()?;
    anyhow::ensure!(status.success(), "docker run failed");
    Ok(())
}

fn pct(sorted: &[Duration], p: usize) -> Duration {
    let i = ((sorted.len() * p).div_ceil(100)).clamp(1, sorted.len()) - 1;
    sorted[i]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
