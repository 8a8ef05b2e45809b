//! What the guardrails cost an execution in Redis round trips: the budget charge alone beside
//! the whole admission an execution now makes (rate limit, concurrency slot, circuit admit,
//! charge, circuit record, slot release), against a real redis-server on loopback.
//!
//! `cargo bench -p ae-activities --bench guards` prints p50/p99 per execution.

use ae_activities::budget::BudgetStore;
use ae_activities::guard::{GuardSettings, Guards};
use ae_activities::testing::TestRedis;
use std::time::{Duration, Instant};

const ROUNDS: usize = 2000;

fn percentile(samples: &mut [Duration], p: f64) -> Duration {
    samples.sort();
    samples[((samples.len() as f64 - 1.0) * p).round() as usize]
}

fn row(name: &str, samples: &mut [Duration]) {
    let us = |d: Duration| d.as_secs_f64() * 1e6;
    println!(
        "| {name} | {:.0} µs | {:.0} µs |",
        us(percentile(samples, 0.50)),
        us(percentile(samples, 0.99))
    );
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let redis = TestRedis::start_blocking();
    let url = redis.url.clone();
    let store = BudgetStore::new(&url, 1e9, Duration::from_secs(3600)).unwrap();
    let settings = GuardSettings {
        rate_sandbox_per_min: 1_000_000_000,
        max_concurrent_per_run: 1_000,
        ..GuardSettings::default()
    };
    let guards = Guards::new(store.connection(), settings);
    // Warm up: connection, script cache.
    for i in 0..100 {
        store.charge("warm", &format!("w{i}"), 0.01).await.unwrap();
        guards.admit_rate("sandbox", "warm").await.unwrap().unwrap();
    }

    let mut charge_only = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        let t = Instant::now();
        store
            .charge("bench-a", &format!("c{i}"), 0.01)
            .await
            .unwrap();
        charge_only.push(t.elapsed());
    }

    let mut guarded = Vec::with_capacity(ROUNDS);
    let mut guards_only = Vec::with_capacity(ROUNDS);
    for i in 0..ROUNDS {
        let t = Instant::now();
        guards
            .admit_rate("sandbox", "bench-b")
            .await
            .unwrap()
            .unwrap();
        let lease = guards.try_acquire_slot("bench-b").await.unwrap().unwrap();
        let admission = guards
            .admit_circuit("bench-b", Duration::from_secs(60))
            .await
            .unwrap();
        let before_charge = t.elapsed();
        let c = Instant::now();
        store
            .charge("bench-b", &format!("c{i}"), 0.01)
            .await
            .unwrap();
        let charge = c.elapsed();
        let r = Instant::now();
        let trial = match &admission {
            ae_activities::guard::CircuitAdmission::Admitted { trial } => trial.clone(),
            _ => None,
        };
        guards
            .record_outcome("bench-b", trial.as_deref(), true)
            .await
            .unwrap();
        drop(lease);
        guards_only.push(before_charge + r.elapsed());
        guarded.push(t.elapsed());
        let _ = charge;
    }
    println!("guardrail cost per execution, {ROUNDS} executions, Redis on loopback");
    println!();
    println!("| path | p50 | p99 |");
    println!("| --- | --- | --- |");
    row("budget charge alone", &mut charge_only);
    row(
        "guardrail scripts (rate, slot, circuit admit + record)",
        &mut guards_only,
    );
    row("whole admission (guardrails + charge)", &mut guarded);
    drop(redis);
}
