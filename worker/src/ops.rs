//! Operator commands over the fleet's Redis: `ae-worker budget …` (what the seed's control
//! plane offered, seed 003), `ae-worker circuit …` (the per-run circuit breaker) and
//! `ae-worker audit` (the audit stream).
//!
//! They read and write the same keys the workers use, so they act on every worker at once.

use ae_activities::budget::{BudgetStatus, BudgetStore};
use ae_activities::guard::{GuardSettings, Guards};
use anyhow::Context;
use serde::Serialize;
use std::time::Duration;

/// The Redis the workers share (every operator command's `--redis-url` / `REDIS_URL`).
#[derive(clap::Args, Debug)]
pub struct RedisArgs {
    /// Redis URL.
    #[arg(long, env = "REDIS_URL", default_value = ae_activities::config::DEFAULT_REDIS_URL)]
    pub redis_url: String,
}

impl RedisArgs {
    /// A connection, or a clear error when Redis cannot be reached.
    pub async fn connect(&self) -> anyhow::Result<redis::aio::ConnectionManager> {
        let client = redis::Client::open(self.redis_url.as_str()).context("bad REDIS_URL")?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(Duration::from_secs(3)))
            .set_response_timeout(Some(Duration::from_secs(3)));
        redis::aio::ConnectionManager::new_with_config(client, config)
            .await
            .with_context(|| format!("cannot reach Redis at {}", self.redis_url))
    }
}

/// `ae-worker budget`.
#[derive(clap::Args, Debug)]
pub struct BudgetArgs {
    #[command(subcommand)]
    pub command: BudgetCommand,
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// The budget operations.
#[derive(clap::Subcommand, Debug)]
pub enum BudgetCommand {
    /// Set a run's limit in USD (its spend is kept).
    Set { run: String, limit: f64 },
    /// Print a run's budget as seed 003's BudgetStatus (JSON).
    Get { run: String },
    /// Print every run's budget, one JSON object a line.
    List,
    /// Delete a run's budget and spend.
    Delete { run: String },
}

/// Seed 003's `BudgetStatus`, in its field names.
#[derive(Serialize)]
struct SeedBudgetStatus<'a> {
    run_id: &'a str,
    spent: f64,
    limit: f64,
    remaining: f64,
    exceeded: bool,
}

fn seed_json(s: &BudgetStatus) -> String {
    serde_json::to_string(&SeedBudgetStatus {
        run_id: &s.run_id,
        spent: s.spent,
        limit: s.limit,
        remaining: s.remaining,
        exceeded: s.exceeded,
    })
    .unwrap_or_default()
}

/// Runs one budget operation and prints its result.
pub async fn budget(args: BudgetArgs) -> anyhow::Result<()> {
    args.redis.connect().await?; // fail fast with a clear message
    let ttl = Duration::from_secs(7 * 24 * 3600);
    let store = BudgetStore::new(&args.redis.redis_url, 0.0, ttl)?;
    match args.command {
        BudgetCommand::Set { run, limit } => {
            println!("{}", seed_json(&store.set_limit(&run, limit).await?))
        }
        BudgetCommand::Get { run } => match store.status(&run).await? {
            Some(s) => println!("{}", seed_json(&s)),
            None => anyhow::bail!("run {run:?} has no budget"),
        },
        BudgetCommand::List => {
            for s in store.list().await? {
                println!("{}", seed_json(&s));
            }
        }
        BudgetCommand::Delete { run } => {
            if !store.delete(&run).await? {
                anyhow::bail!("run {run:?} has no budget");
            }
            println!("deleted the budget of {run}");
        }
    }
    Ok(())
}

/// `ae-worker circuit status|reset --run ID`.
#[derive(clap::Args, Debug)]
pub struct CircuitArgs {
    /// `status` or `reset`.
    #[arg(value_parser = ["status", "reset"])]
    pub action: String,
    /// The run.
    #[arg(long)]
    pub run: String,
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// Prints (after resetting, when asked) the run's circuit as JSON.
pub async fn circuit(args: CircuitArgs) -> anyhow::Result<()> {
    let guards = Guards::new(args.redis.connect().await?, GuardSettings::default());
    if args.action == "reset" {
        guards.reset_circuit(&args.run).await?;
    }
    println!(
        "{}",
        serde_json::to_string(&guards.circuit_status(&args.run).await?)?
    );
    Ok(())
}

/// `ae-worker audit [--run ID] [--follow]`.
#[derive(clap::Args, Debug)]
pub struct AuditArgs {
    /// Only this run's entries.
    #[arg(long)]
    pub run: Option<String>,
    /// Keep printing new entries as workers append them.
    #[arg(long)]
    pub follow: bool,
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// Prints the audit stream `ae:audit`, one JSON object a line, oldest first.
pub async fn audit(args: AuditArgs) -> anyhow::Result<()> {
    use redis::streams::{StreamRangeReply, StreamReadOptions, StreamReadReply};
    let mut conn = args.redis.connect().await?;
    let stream = ae_activities::audit::AUDIT_STREAM;
    let print = |id: &redis::streams::StreamId| {
        let mut entry = serde_json::Map::new();
        entry.insert("id".into(), id.id.clone().into());
        for (k, v) in &id.map {
            if let Ok(s) = redis::from_redis_value::<String>(v.clone()) {
                entry.insert(k.clone(), s.into());
            }
        }
        let of_run = args
            .run
            .as_deref()
            .is_none_or(|r| entry.get("runId").and_then(|v| v.as_str()) == Some(r));
        if of_run {
            println!("{}", serde_json::Value::Object(entry));
        }
    };
    let all: StreamRangeReply = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query_async(&mut conn)
        .await?;
    let mut last = "0-0".to_string();
    for id in &all.ids {
        print(id);
        last = id.id.clone();
    }
    if !args.follow {
        return Ok(());
    }
    loop {
        // Under the connection's 3 s response timeout, or the wait itself fails.
        let opts = StreamReadOptions::default().block(1_000).count(100);
        let read: Option<StreamReadReply> =
            redis::AsyncCommands::xread_options(&mut conn, &[stream], &[last.as_str()], &opts)
                .await?;
        for key in read.map(|r| r.keys).unwrap_or_default() {
            for id in &key.ids {
                print(id);
                last = id.id.clone();
            }
        }
    }
}
