//! `ae-worker kill-switch on|off|status [--run ID]` (seed 000 §4's emergency stop).
//!
//! The state lives in Redis, so one command reaches every worker: while on, new executions fail
//! with KillSwitchEngaged and each worker kills its running sandboxes of that run (or all of
//! them) within about a second.

use crate::ops::RedisArgs;
use ae_activities::control::KillSwitch;

/// Options of `ae-worker kill-switch`.
#[derive(clap::Args, Debug)]
pub struct KillSwitchArgs {
    /// `on`, `off` or `status`.
    #[arg(value_parser = ["on", "off", "status"])]
    pub action: String,
    /// Only this run (default: every run).
    #[arg(long)]
    pub run: Option<String>,
    /// Why, shown to callers in the KillSwitchEngaged message.
    #[arg(long, default_value = "engaged by an operator")]
    pub reason: String,
    #[command(flatten)]
    pub redis: RedisArgs,
}

/// Carries out the action and prints the resulting state.
pub async fn run(args: KillSwitchArgs) -> anyhow::Result<()> {
    let switch = KillSwitch::new(args.redis.connect().await?);
    let run = args.run.as_deref();
    match args.action.as_str() {
        "on" => switch.engage(run, &args.reason).await?,
        "off" => switch.release(run).await?,
        _ => {}
    }
    let (global, runs) = switch.status().await?;
    match global {
        Some(reason) => println!("global: on ({reason})"),
        None => println!("global: off"),
    }
    if let Some(run) = run {
        let on = runs.iter().any(|r| r == run);
        println!("run {run}: {}", if on { "on" } else { "off" });
    } else if !runs.is_empty() {
        println!("runs on: {}", runs.join(", "));
    }
    Ok(())
}
