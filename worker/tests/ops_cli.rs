//! `ae-worker budget` and `ae-worker circuit` against a real redis-server holding keys as the
//! seed's Python control plane writes them (SET limit, SET 0, INCRBYFLOAT spend).

use ae_activities::testing::TestRedis;
use std::process::{Command, Output};

/// A throw-away redis-server (`ae_activities::testing`).
fn redis() -> TestRedis {
    TestRedis::start_blocking()
}

fn cli(redis: &TestRedis, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_ae-worker"))
        .args(args)
        .env("REDIS_URL", &redis.url)
        .output()
        .unwrap()
}

fn redis_cli(redis: &TestRedis, args: &[&str]) -> String {
    let port = redis.url.rsplit(':').next().unwrap();
    let out = Command::new("redis-cli")
        .args(["-p", port])
        .args(args)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

fn json(out: &Output) -> serde_json::Value {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[test]
fn budget_commands_round_trip_with_control_plane_keys() {
    let r = redis();
    redis_cli(&r, &["SET", "budget:py-1", "10.0", "EX", "604800"]);
    redis_cli(&r, &["SET", "spent:py-1", "0", "EX", "604800"]);
    redis_cli(&r, &["INCRBYFLOAT", "spent:py-1", "0.05"]);
    redis_cli(&r, &["INCRBYFLOAT", "spent:py-1", "0.01"]);

    let s = json(&cli(&r, &["budget", "get", "py-1"]));
    assert_eq!(s["run_id"], "py-1");
    assert_eq!(s["limit"], 10.0);
    assert!((s["spent"].as_f64().unwrap() - 0.06).abs() < 1e-9, "{s}");
    assert!(
        (s["remaining"].as_f64().unwrap() - 9.94).abs() < 1e-9,
        "{s}"
    );
    assert_eq!(s["exceeded"], false);

    let s = json(&cli(&r, &["budget", "set", "py-1", "0.06"]));
    assert_eq!(s["exceeded"], true);
    assert_eq!(redis_cli(&r, &["GET", "exceeded:py-1"]), "1");
    assert_eq!(redis_cli(&r, &["GET", "budget:py-1"]), "0.06");
    let spent: f64 = redis_cli(&r, &["GET", "spent:py-1"]).parse().unwrap();
    assert!((spent - 0.06).abs() < 1e-9);

    json(&cli(&r, &["budget", "set", "other", "5"]));
    let list = cli(&r, &["budget", "list"]);
    assert!(list.status.success());
    let runs: Vec<String> = String::from_utf8_lossy(&list.stdout)
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["run_id"].to_string())
        .collect();
    assert_eq!(runs, ["\"other\"", "\"py-1\""]);

    assert!(cli(&r, &["budget", "delete", "py-1"]).status.success());
    assert_eq!(
        redis_cli(
            &r,
            &["EXISTS", "budget:py-1", "spent:py-1", "exceeded:py-1"]
        ),
        "0"
    );
    let missing = cli(&r, &["budget", "get", "py-1"]);
    assert!(!missing.status.success());
    assert!(String::from_utf8_lossy(&missing.stderr).contains("no budget"));
}

#[test]
fn circuit_commands_show_and_reset() {
    let r = redis();
    redis_cli(
        &r,
        &[
            "HSET",
            "ae:circuit:run-9",
            "state",
            "open",
            "until",
            "99999999999999",
        ],
    );
    let s = json(&cli(&r, &["circuit", "status", "--run", "run-9"]));
    assert_eq!(s["state"], "open");
    let s = json(&cli(&r, &["circuit", "reset", "--run", "run-9"]));
    assert_eq!(s["state"], "closed");
    assert_eq!(redis_cli(&r, &["EXISTS", "ae:circuit:run-9"]), "0");
}

#[test]
fn an_unreachable_redis_is_a_clear_error() {
    let out = Command::new(env!("CARGO_BIN_EXE_ae-worker"))
        .args(["budget", "get", "x"])
        .env("REDIS_URL", "redis://127.0.0.1:1")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot reach Redis"));
}
