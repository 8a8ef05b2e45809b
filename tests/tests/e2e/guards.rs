//! The guardrails (seeds 000 and 004) with their defaults, on workers of their own: several
//! workers on one queue sharing the suite's Redis, as a fleet would. Rate limit, concurrency
//! slots (also after a worker is SIGKILLed) and the circuit breaker.

use ae_tests::harness::{
    ExtraWorker, RunOpts, binary, harness, outcome_of, run_activity, run_id, sandboxes_with_label,
    start_activity, start_worker, start_worker_on, wait_for_no_sandboxes, wait_for_sandbox,
    worker_pid,
};
use ae_tests::workflows::Outcome;
use redis::AsyncCommands;
use serde_json::{Value, json};
use std::process::Command;
use std::time::{Duration, Instant};

/// Two workers with the default guardrails (plus `env`) on a queue of their own.
fn fleet(env: &[(&str, &str)]) -> (String, ExtraWorker, ExtraWorker) {
    let queue = format!("guards-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let a = start_worker_on(Some(&queue), env);
    let b = start_worker_on(Some(&queue), env);
    (queue, a, b)
}

fn on(queue: &str) -> RunOpts {
    RunOpts {
        task_queue: queue.to_string(),
        ..RunOpts::default()
    }
}

async fn execute(queue: &str, input: Value) -> Outcome {
    run_activity("safeExecuteCode", input, on(queue)).await.0
}

fn failure_type(o: &Outcome) -> &str {
    o.error.as_ref().map_or("-", |e| e.r#type.as_str())
}

fn succeeded(o: &Outcome) -> bool {
    o.result.as_ref().is_some_and(|r| r["exitCode"] == 0)
}

async fn spent(run: &str) -> f64 {
    let v: Option<String> = harness()
        .redis()
        .await
        .get(format!("spent:{run}"))
        .await
        .unwrap();
    v.map_or(0.0, |s| s.parse().unwrap())
}

/// The limit is a GCRA cell: a burst of 10, then one more every 6 s. So of requests admitted
/// within `t` of the first, at most `10 + t / 6 s` go through. Thirteen are started at once:
/// unless their admissions spread over 18 s, some are refused. (Starting ten, waiting for them,
/// then an eleventh, as this test once did, fails whenever ten sandboxes take over 6 s.)
#[tokio::test]
async fn the_eleventh_execution_in_a_minute_is_rate_limited_and_retried_at_the_given_delay() {
    let (queue, _a, _b) = fleet(&[]);
    let run = run_id("rate");
    let mut started = Vec::new();
    for _ in 0..13 {
        let input = json!({"runId": run, "command": "true"});
        started.push(start_activity("safeExecuteCode", input, &on(&queue)).await);
    }
    let mut admitted = 0;
    let mut refused = 0;
    for id in started {
        let o = outcome_of(&id).await;
        if succeeded(&o) {
            admitted += 1;
            continue;
        }
        // Refused: retryable, told when to come back, and not charged.
        let wait = rate_limited(&o);
        assert!(wait > 0 && wait <= 6_000, "{wait}");
        refused += 1;
    }
    assert!(admitted >= 10, "the burst is 10; {admitted} went through");
    assert!(refused >= 1, "13 at once, none refused");
    assert!((spent(&run).await - 0.01 * admitted as f64).abs() < 1e-9);

    // Spend what came back while those ran, until a request is refused.
    let mut probes = 0;
    let wait = loop {
        let o = execute(&queue, json!({"runId": run, "command": "true"})).await;
        if !succeeded(&o) {
            break rate_limited(&o);
        }
        admitted += 1;
        probes += 1;
        assert!(probes < 5, "five in a row went through");
    };
    // With retries, Temporal waits the given delay and the execution goes through.
    let t = Instant::now();
    let opts = RunOpts {
        max_attempts: 5,
        ..on(&queue)
    };
    let input = json!({"runId": run, "command": "echo through"});
    let (o, _) = run_activity("safeExecuteCode", input, opts).await;
    assert!(succeeded(&o), "{o:?}");
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(wait.saturating_sub(1_000)),
        "went through after {took:?}, before the {wait} ms delay"
    );
    assert!(took < Duration::from_millis(wait + 10_000), "{took:?}");
    assert!((spent(&run).await - 0.01 * (admitted + 1) as f64).abs() < 1e-9);
}

/// The retry delay of a RateLimited outcome, after checking that it is one and retryable.
fn rate_limited(o: &Outcome) -> u64 {
    let e = o.error.as_ref().expect("rate limited");
    assert_eq!(e.r#type, "RateLimited", "{o:?}");
    assert!(!e.non_retryable, "RateLimited must be retryable");
    e.details.as_ref().unwrap()["retryAfterMs"]
        .as_u64()
        .unwrap()
}

#[tokio::test]
async fn five_simultaneous_executions_hold_at_most_three_sandboxes_and_all_finish() {
    let (queue, _a, _b) = fleet(&[]);
    let run = run_id("slots");
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let watch = {
        let (run, done) = (run.clone(), done.clone());
        tokio::spawn(async move {
            let mut most = 0;
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                most = most.max(sandboxes_with_label("ae.run-id", &run).await.len());
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            most
        })
    };
    let mut started = Vec::new();
    for i in 0..5 {
        let input = json!({"runId": run, "command": format!("sleep 2; echo {i}")});
        started.push(start_activity("safeExecuteCode", input, &on(&queue)).await);
    }
    for id in started {
        let o = outcome_of(&id).await;
        assert!(succeeded(&o), "{o:?}");
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let most = watch.await.unwrap();
    assert!(most <= 3, "{most} sandboxes of one run at once");
    assert!(most >= 2, "the executions did not overlap at all ({most})");
    assert!((spent(&run).await - 0.05).abs() < 1e-9);
}

#[tokio::test]
async fn a_sigkilled_workers_slot_is_freed() {
    let queue = format!("guards-{}", &uuid::Uuid::new_v4().simple().to_string()[..8]);
    let env = [
        ("AE_MAX_CONCURRENT_PER_RUN", "1"),
        ("AE_REAPER_INTERVAL_SECS", "2"),
    ];
    let doomed = start_worker_on(Some(&queue), &env);
    let run = run_id("dead-slot");
    let long = json!({"runId": run, "command": "sleep 300", "timeout": 300_000});
    let opts = RunOpts {
        heartbeat: Duration::from_secs(5),
        start_to_close: Duration::from_secs(600),
        check_cleanup: false,
        ..on(&queue)
    };
    let held = start_activity("safeExecuteCode", long, &opts).await;
    wait_for_sandbox("ae.run-id", &run, Duration::from_secs(60))
        .await
        .expect("the first execution holds the run's only slot");
    let _survivor = start_worker_on(Some(&queue), &env);
    let pid = worker_pid(&doomed.identity).expect("the doomed worker's pid");
    assert!(
        Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()
            .unwrap()
            .success()
    );
    // The dead worker's lease lapses (15 s) and the survivor takes the slot.
    let t = Instant::now();
    let o = execute(&queue, json!({"runId": run, "command": "echo after"})).await;
    assert!(succeeded(&o), "{o:?}");
    assert!(t.elapsed() < Duration::from_secs(60), "{:?}", t.elapsed());
    // The first execution's heartbeats stopped with its worker.
    assert!(outcome_of(&held).await.error.is_some());
    let left = wait_for_no_sandboxes("ae.run-id", &run, Duration::from_secs(90)).await;
    assert!(
        left.is_empty(),
        "the dead worker's sandbox was not reaped: {left:?}"
    );
}

#[tokio::test]
async fn three_refused_commands_open_the_circuit_and_one_trial_closes_it() {
    // The default threshold; a short cooldown so the test need not wait five minutes.
    let (queue, _a, _b) = fleet(&[("AE_CIRCUIT_COOLDOWN_SECS", "3")]);
    let run = run_id("circuit");
    for _ in 0..3 {
        let o = execute(&queue, json!({"runId": run, "command": "rm -rf /"})).await;
        assert_eq!(failure_type(&o), "PolicyViolation", "{o:?}");
    }
    let o = execute(&queue, json!({"runId": run, "command": "echo fine"})).await;
    let e = o.error.as_ref().expect("circuit open");
    assert_eq!(e.r#type, "CircuitOpen", "{o:?}");
    assert!(e.non_retryable);
    let wait = e.details.as_ref().unwrap()["retryAfterMs"]
        .as_u64()
        .unwrap();
    assert!(wait <= 3_000, "{wait}");
    assert_eq!(circuit(&run)["state"], "open");
    tokio::time::sleep(Duration::from_millis(wait + 300)).await;

    // Half-open: of two simultaneous requests exactly one is the trial.
    let trial = json!({"runId": run, "command": "sleep 2; echo trial"});
    let a = start_activity("safeExecuteCode", trial.clone(), &on(&queue)).await;
    let b = start_activity("safeExecuteCode", trial, &on(&queue)).await;
    let (a, b) = (outcome_of(&a).await, outcome_of(&b).await);
    let ok = [&a, &b].iter().filter(|o| succeeded(o)).count();
    let open = [&a, &b]
        .iter()
        .filter(|o| failure_type(o) == "CircuitOpen")
        .count();
    assert_eq!((ok, open), (1, 1), "{a:?} {b:?}");
    // The trial succeeded: closed again.
    assert_eq!(circuit(&run)["state"], "closed");
    let o = execute(&queue, json!({"runId": run, "command": "echo closed"})).await;
    assert!(succeeded(&o), "{o:?}");
    // Refusals were never charged: 2 executions ran.
    assert!((spent(&run).await - 0.02).abs() < 1e-9);
}

/// `ae-worker circuit status --run RUN` as JSON.
fn circuit(run: &str) -> Value {
    let out = Command::new(binary("ae-worker"))
        .args(["circuit", "status", "--run", run])
        .env("REDIS_URL", &harness().redis_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test]
async fn a_blocked_and_a_successful_execution_each_have_their_audit_entry() {
    let run = run_id("audited");
    let ok =
        ae_tests::harness::safe_execute(json!({"runId": run, "command": "echo audited"})).await;
    assert!(succeeded(&ok), "{ok:?}");
    let refused =
        ae_tests::harness::safe_execute(json!({"runId": run, "command": "rm -rf /"})).await;
    assert_eq!(failure_type(&refused), "PolicyViolation");
    let out = Command::new(binary("ae-worker"))
        .args(["audit", "--run", &run])
        .env("REDIS_URL", &harness().redis_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let entries: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{entries:?}");
    let (success, blocked) = (&entries[0], &entries[1]);
    assert_eq!(success["outcome"], "success");
    assert_eq!(success["action"], "echo audited");
    assert_eq!(success["activity"], "safeExecuteCode");
    assert_eq!(success["environment"], "sandbox");
    assert_eq!(success["actor"], harness().worker_identity.as_str());
    assert!(success["workflowId"].as_str().unwrap().starts_with("test-"));
    assert!(
        success["timestamp"]
            .as_str()
            .unwrap()
            .parse::<u64>()
            .is_ok()
    );
    assert_eq!(blocked["outcome"], "blocked");
    assert_eq!(blocked["reason"], "rm-rf-root");
}

/// A webhook receiver on loopback: the JSON bodies POSTed to it.
fn webhook() -> (String, std::sync::Arc<std::sync::Mutex<Vec<Value>>>) {
    use std::io::{BufRead, BufReader, Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", listener.local_addr().unwrap());
    let got = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let seen = got.clone();
    std::thread::spawn(move || {
        for conn in listener.incoming().flatten() {
            let mut reader = BufReader::new(conn);
            let mut length = 0;
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; length];
            if reader.read_exact(&mut body).is_ok()
                && let Ok(v) = serde_json::from_slice(&body)
            {
                seen.lock().unwrap().push(v);
            }
            let _ = reader
                .get_mut()
                .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n");
        }
    });
    (url, got)
}

#[tokio::test]
async fn racing_executions_to_the_limit_emit_each_alert_once_and_post_it() {
    let (url, posted) = webhook();
    let worker = start_worker(&[
        ("AE_ALERT_WEBHOOK_URL", url.as_str()),
        ("AE_RATE_SANDBOX_PER_MIN", "0"),
        ("AE_MAX_CONCURRENT_PER_RUN", "0"),
    ]);
    let run = run_id("alerts");
    let out = Command::new(binary("ae-worker"))
        .args(["budget", "set", &run, "0.1"])
        .env("REDIS_URL", &harness().redis_url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut started = Vec::new();
    for _ in 0..14 {
        let input = json!({"runId": run, "command": "true"});
        started.push(start_activity("safeExecuteCode", input, &on(&worker.task_queue)).await);
    }
    let mut ran = 0;
    for id in started {
        let o = outcome_of(&id).await;
        match failure_type(&o) {
            "-" => ran += 1,
            t => assert_eq!(t, "BudgetExceeded", "{o:?}"),
        }
    }
    assert_eq!(ran, 10, "exactly the budget was spent");
    let reply: redis::streams::StreamRangeReply = redis::cmd("XRANGE")
        .arg("ae:alerts")
        .arg("-")
        .arg("+")
        .query_async(&mut harness().redis().await)
        .await
        .unwrap();
    let mut thresholds: Vec<u32> = reply
        .ids
        .iter()
        .filter(|e| e.get::<String>("runId").as_deref() == Some(run.as_str()))
        .map(|e| e.get::<String>("threshold").unwrap().parse().unwrap())
        .collect();
    thresholds.sort();
    assert_eq!(thresholds, [50, 80, 90, 100]);
    // The webhook got each one too.
    let t = Instant::now();
    loop {
        let mut got: Vec<u64> = posted
            .lock()
            .unwrap()
            .iter()
            .filter(|a| a["runId"] == run.as_str())
            .map(|a| a["threshold"].as_u64().unwrap())
            .collect();
        got.sort();
        if got == [50, 80, 90, 100] {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(20), "webhook got {got:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
